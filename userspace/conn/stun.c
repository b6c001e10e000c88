// SPDX-License-Identifier: MIT
/*
 * STUN Binding responder (RFC 8489) for the QUIC port: standard STUN
 * clients learn their reflexive address from any weft host. Stateless:
 * one request in, at most one answer out, never larger than the request
 * plus a fixed 44 bytes (XOR-MAPPED-ADDRESS of IPv6 and FINGERPRINT), so
 * the port cannot amplify. Every attribute length is checked.
 */
#include <errno.h>
#include <string.h>

#include "weft/conn.h"

#define STUN_HDR 20
#define STUN_BINDING_REQ 0x0001
#define STUN_BINDING_OK 0x0101
#define STUN_BINDING_ERR 0x0111
#define ATTR_USERNAME 0x0006
#define ATTR_MESSAGE_INTEGRITY 0x0008
#define ATTR_ERROR_CODE 0x0009
#define ATTR_UNKNOWN 0x000A
#define ATTR_MI_SHA256 0x001C
#define ATTR_USERHASH 0x001E
#define ATTR_XOR_MAPPED 0x0020
#define ATTR_PRIORITY 0x0024	 /* ICE (RFC 8445) */
#define ATTR_USE_CANDIDATE 0x0025 /* ICE */
#define ATTR_FINGERPRINT 0x8028
#define FP_XOR 0x5354554eU
#define MAX_UNKNOWN 4 /* attributes listed in a 420 answer */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* CRC-32 (ISO-HDLC, the one of zlib) as FINGERPRINT needs. Bitwise: STUN
 * messages here are at most a few hundred bytes. */
static uint32_t crc32_iso(const uint8_t *p, size_t len)
{
	uint32_t c = 0xffffffffU;

	while (len--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320U & (0U - (c & 1)));
	}
	return ~c;
}

uint32_t conn_stun_fingerprint(const uint8_t *buf, size_t len)
{
	return crc32_iso(buf, len) ^ FP_XOR;
}

int conn_stun_is(const uint8_t *buf, size_t len)
{
	return buf && len >= STUN_HDR && (buf[0] & 0xc0) == 0 && get32(buf + 4) == CONN_STUN_COOKIE &&
	       get16(buf + 2) == len - STUN_HDR && (len & 3) == 0;
}

/* Append FINGERPRINT to the message in out (length fixed first). */
static size_t add_fingerprint(uint8_t *out, size_t n)
{
	put16(out + 2, (uint16_t)(n + 8 - STUN_HDR));
	put16(out + n, ATTR_FINGERPRINT);
	put16(out + n + 2, 4);
	put32(out + n + 4, crc32_iso(out, n) ^ FP_XOR);
	return n + 8;
}

static int understood(uint16_t t)
{
	return t == ATTR_USERNAME || t == ATTR_MESSAGE_INTEGRITY || t == ATTR_MI_SHA256 ||
	       t == ATTR_USERHASH || t == ATTR_PRIORITY || t == ATTR_USE_CANDIDATE ||
	       t == ATTR_XOR_MAPPED;
}

int conn_stun_answer(const uint8_t *buf, size_t len, const struct io_addr *from, uint8_t *out,
		     size_t cap)
{
	uint16_t unknown[MAX_UNKNOWN];
	unsigned int nunknown = 0;
	int fingerprint = 0;
	size_t off = STUN_HDR, n;

	if (!conn_stun_is(buf, len) || !from || !out)
		return -EINVAL;
	if (get16(buf) != STUN_BINDING_REQ)
		return 0; /* responses, indications, other methods: never answered */
	while (off < len) {
		uint16_t t, l;
		size_t padded;

		if (len - off < 4)
			return -EINVAL;
		t = get16(buf + off);
		l = get16(buf + off + 2);
		padded = ((size_t)l + 3) & ~(size_t)3;
		if (padded > len - off - 4)
			return -EINVAL;
		if (fingerprint)
			return -EINVAL; /* FINGERPRINT must be the last attribute */
		if (t == ATTR_FINGERPRINT) {
			if (l != 4)
				return -EINVAL;
			if ((crc32_iso(buf, off) ^ FP_XOR) != get32(buf + off + 4))
				return -EINVAL;
			fingerprint = 1;
		} else if (t < 0x8000 && !understood(t) && nunknown < MAX_UNKNOWN) {
			unknown[nunknown++] = t;
		}
		off += 4 + padded;
	}
	if (cap < CONN_STUN_MAX_REPLY)
		return -ENOBUFS;
	memcpy(out, buf, STUN_HDR); /* cookie and transaction id */
	n = STUN_HDR;
	if (nunknown) {
		put16(out, STUN_BINDING_ERR);
		put16(out + n, ATTR_ERROR_CODE);
		put16(out + n + 2, 4);
		put32(out + n + 4, 4U << 8 | 20); /* class 4, number 20: 420 */
		n += 8;
		put16(out + n, ATTR_UNKNOWN);
		put16(out + n + 2, (uint16_t)(2 * nunknown));
		memset(out + n + 4, 0, 8);
		for (unsigned int i = 0; i < nunknown; i++)
			put16(out + n + 4 + 2 * i, unknown[i]);
		n += 4 + ((2 * nunknown + 3) & ~3U);
	} else {
		size_t al = from->family == AF_INET ? 4 : 16;

		if (from->family != AF_INET && from->family != AF_INET6)
			return -EINVAL;
		put16(out, STUN_BINDING_OK);
		put16(out + n, ATTR_XOR_MAPPED);
		put16(out + n + 2, (uint16_t)(4 + al));
		out[n + 4] = 0;
		out[n + 5] = from->family == AF_INET ? 1 : 2;
		put16(out + n + 6, from->port ^ (CONN_STUN_COOKIE >> 16));
		for (size_t i = 0; i < al; i++) /* cookie || transaction id */
			out[n + 8 + i] = from->addr[i] ^ buf[4 + i];
		n += 8 + al;
	}
	put16(out + 2, (uint16_t)(n - STUN_HDR));
	if (fingerprint)
		n = add_fingerprint(out, n);
	return (int)n;
}

int conn_stun_request(const uint8_t tid[12], uint8_t *out, size_t cap)
{
	return conn_stun_request_attr(tid, 0, NULL, 0, out, cap);
}

int conn_stun_request_attr(const uint8_t tid[12], uint16_t type, const uint8_t *val, size_t vlen,
			   uint8_t *out, size_t cap)
{
	size_t n = STUN_HDR, pad = (4 - (vlen & 3)) & 3;

	if (vlen > 512 || (vlen && !val))
		return -EINVAL;
	if (cap < STUN_HDR + (type ? 4 + vlen + pad : 0) + 8)
		return -ENOBUFS;
	put16(out, STUN_BINDING_REQ);
	put32(out + 4, CONN_STUN_COOKIE);
	memcpy(out + 8, tid, 12);
	if (type) {
		put16(out + n, type);
		put16(out + n + 2, (uint16_t)vlen);
		memcpy(out + n + 4, val, vlen);
		memset(out + n + 4 + vlen, 0, pad);
		n += 4 + vlen + pad;
	}
	put16(out + 2, (uint16_t)(n - STUN_HDR));
	return (int)add_fingerprint(out, n);
}

int conn_stun_parse_response(const uint8_t *buf, size_t len, const uint8_t tid[12],
			     struct io_addr *mapped)
{
	size_t off = STUN_HDR;

	if (!conn_stun_is(buf, len) || get16(buf) != STUN_BINDING_OK || memcmp(buf + 8, tid, 12))
		return -EINVAL;
	while (len - off >= 4) {
		uint16_t t = get16(buf + off), l = get16(buf + off + 2);
		size_t padded = ((size_t)l + 3) & ~(size_t)3;

		if (padded > len - off - 4)
			return -EINVAL;
		if (t == ATTR_XOR_MAPPED && (l == 8 || l == 20)) {
			size_t al = l - 4;

			memset(mapped, 0, sizeof(*mapped));
			if (buf[off + 5] != (al == 4 ? 1 : 2))
				return -EINVAL;
			mapped->family = al == 4 ? AF_INET : AF_INET6;
			mapped->port = get16(buf + off + 6) ^ (CONN_STUN_COOKIE >> 16);
			for (size_t i = 0; i < al; i++)
				mapped->addr[i] = buf[off + 8 + i] ^ buf[4 + i];
			return 0;
		}
		off += 4 + padded;
	}
	return -EINVAL;
}
