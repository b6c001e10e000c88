// SPDX-License-Identifier: MIT
/*
 * The relay bind message (docs/PROTOCOL.md, "Relay bind"): a STUN Binding
 * request (RFC 8489) whose WEFT-CIRCUIT attribute (0xC057, 16 bytes)
 * carries an end's circuit token, with a FINGERPRINT. A bind is exactly
 * RELAY_BIND_LEN bytes; anything else is not a bind.
 */
#include <errno.h>
#include <string.h>

#include "weft/conn.h"
#include "weft/relay_wire.h"

#define STUN_HDR 20
#define STUN_BINDING_REQ 0x0001
#define ATTR_FINGERPRINT 0x8028

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

int relay_bind_request(const uint8_t tok[RELAY_TOKEN_LEN], const uint8_t tid[12], uint8_t *out,
		       size_t cap)
{
	uint32_t fp;

	if (!tok || !tid || !out || cap < RELAY_BIND_LEN)
		return -ENOBUFS;
	put16(out, STUN_BINDING_REQ);
	put16(out + 2, RELAY_BIND_LEN - STUN_HDR);
	put16(out + 4, CONN_STUN_COOKIE >> 16);
	put16(out + 6, CONN_STUN_COOKIE & 0xffff);
	memcpy(out + 8, tid, 12);
	put16(out + 20, RELAY_STUN_ATTR);
	put16(out + 22, RELAY_TOKEN_LEN);
	memcpy(out + 24, tok, RELAY_TOKEN_LEN);
	put16(out + 40, ATTR_FINGERPRINT);
	put16(out + 42, 4);
	fp = conn_stun_fingerprint(out, 40);
	put16(out + 44, (uint16_t)(fp >> 16));
	put16(out + 46, (uint16_t)fp);
	return RELAY_BIND_LEN;
}

int relay_bind_parse(const uint8_t *buf, size_t len, uint8_t tok[RELAY_TOKEN_LEN])
{
	uint32_t fp;

	if (!buf || len != RELAY_BIND_LEN || !conn_stun_is(buf, len) ||
	    get16(buf) != STUN_BINDING_REQ || get16(buf + 20) != RELAY_STUN_ATTR ||
	    get16(buf + 22) != RELAY_TOKEN_LEN || get16(buf + 40) != ATTR_FINGERPRINT ||
	    get16(buf + 42) != 4)
		return -EINVAL;
	fp = conn_stun_fingerprint(buf, 40);
	if (get16(buf + 44) != (uint16_t)(fp >> 16) || get16(buf + 46) != (uint16_t)fp)
		return -EINVAL;
	if (tok)
		memcpy(tok, buf + 24, RELAY_TOKEN_LEN);
	return 0;
}
