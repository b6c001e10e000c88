// SPDX-License-Identifier: MIT
/*
 * Node records: canonical bencoded value of the BEP 44 item a node
 * publishes under its key with salt "weft:node" (docs/PROTOCOL.md,
 * "Node records"), and the address classes that decide what goes in it.
 *
 *   d 1:a l <6 or 18 bytes: ip || port>... e    reachable QUIC addresses
 *     1:c i<caps>e                               capability flags
 *     1:m l d 1:a <6 or 18> 1:k 32:<key> e ... e mailbox anchors (optional)
 *     1:r l d 1:a <6 or 18> 1:k 32:<key> e ... e relays with a reservation
 *     1:t i<unix seconds>e                       when written
 *     1:v i1e                                    format version
 *   e
 */
#include <errno.h>
#include <string.h>

#include "weft/bencode.h"
#include "weft/conn.h"

/* Nodes a valid record can use: root, 6 pairs, addresses, relays and
 * anchors (each a dict of 2 pairs), with room for a few unknown keys. */
#define REC_NODES 160

static int put_compact(struct bencode_buf *b, const struct io_addr *a)
{
	uint8_t c[18];
	size_t l;

	if (a->port == 0)
		return -EINVAL;
	if (a->family == AF_INET) {
		memcpy(c, a->addr, 4);
		l = 4;
	} else if (a->family == AF_INET6) {
		memcpy(c, a->addr, 16);
		l = 16;
	} else {
		return -EINVAL;
	}
	c[l] = (uint8_t)(a->port >> 8);
	c[l + 1] = (uint8_t)a->port;
	bencode_put_str(b, c, l + 2);
	return 0;
}

/* key, then a list of { a: compact address, k: node key } */
static int put_keyed(struct bencode_buf *b, const char *key, const struct conn_relay *r,
		     unsigned int n)
{
	bencode_put_cstr(b, key);
	bencode_put_list(b);
	for (unsigned int i = 0; i < n; i++) {
		bencode_put_dict(b);
		bencode_put_cstr(b, "a");
		if (put_compact(b, &r[i].addr))
			return -EINVAL;
		bencode_put_cstr(b, "k");
		bencode_put_str(b, r[i].key, CONN_KEY_LEN);
		bencode_put_end(b);
	}
	bencode_put_end(b);
	return 0;
}

int conn_record_encode(const struct conn_record *rec, uint8_t *out, size_t cap)
{
	struct bencode_buf b;
	unsigned int i;

	if (!rec || !out || rec->version == 0 || rec->naddrs > CONN_REC_MAX_ADDRS ||
	    rec->nrelays > CONN_REC_MAX_RELAYS || rec->nanchors > CONN_REC_MAX_ANCHORS ||
	    rec->ts > INT64_MAX)
		return -EINVAL;
	bencode_buf_init(&b, out, cap);
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "a");
	bencode_put_list(&b);
	for (i = 0; i < rec->naddrs; i++)
		if (put_compact(&b, &rec->addrs[i]))
			return -EINVAL;
	bencode_put_end(&b);
	bencode_put_cstr(&b, "c");
	bencode_put_int(&b, rec->caps);
	/* "m" only when there are anchors: a record without any is the
	 * same bytes as before the key existed. */
	if (rec->nanchors && put_keyed(&b, "m", rec->anchors, rec->nanchors))
		return -EINVAL;
	if (put_keyed(&b, "r", rec->relays, rec->nrelays))
		return -EINVAL;
	bencode_put_cstr(&b, "t");
	bencode_put_int(&b, (int64_t)rec->ts);
	bencode_put_cstr(&b, "v");
	bencode_put_int(&b, rec->version);
	bencode_put_end(&b);
	if (b.err)
		return b.err;
	return (int)b.len;
}

static int get_compact(const struct bencode_node *n, struct io_addr *a)
{
	if (n->type != BENCODE_STR || (n->slen != 6 && n->slen != 18))
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	a->family = n->slen == 6 ? AF_INET : AF_INET6;
	memcpy(a->addr, n->s, n->slen - 2);
	a->port = (uint16_t)(n->s[n->slen - 2] << 8 | n->s[n->slen - 1]);
	return a->port ? 0 : -EINVAL;
}

static int key_is(const struct bencode_node *k, const char *s)
{
	return k->slen == strlen(s) && !memcmp(k->s, s, k->slen);
}

static int parse_relay(const struct bencode_doc *d, const struct bencode_node *n,
		       struct conn_relay *r)
{
	const struct bencode_node *k, *v;
	int have_a = 0, have_k = 0;

	if (n->type != BENCODE_DICT)
		return -EINVAL;
	for (k = bencode_first(d, n); k; k = bencode_next(d, v)) {
		v = bencode_next(d, k);
		if (!v)
			return -EINVAL;
		if (key_is(k, "a")) {
			if (get_compact(v, &r->addr))
				return -EINVAL;
			have_a = 1;
		} else if (key_is(k, "k")) {
			if (v->type != BENCODE_STR || v->slen != CONN_KEY_LEN)
				return -EINVAL;
			memcpy(r->key, v->s, CONN_KEY_LEN);
			have_k = 1;
		}
	}
	return have_a && have_k ? 0 : -EINVAL;
}

int conn_record_parse(const uint8_t *buf, size_t len, struct conn_record *rec)
{
	struct bencode_node nodes[REC_NODES];
	struct bencode_doc d = { .nodes = nodes, .cap = REC_NODES, .max_depth = 4 };
	const struct bencode_node *root, *k, *v, *e;
	unsigned int seen = 0;
	int err;

	if (!buf || !rec || len > CONN_REC_MAX_LEN)
		return -EINVAL;
	memset(rec, 0, sizeof(*rec));
	err = bencode_decode(&d, buf, len, BENCODE_STRICT, NULL);
	if (err)
		return -EINVAL;
	root = bencode_root(&d);
	if (root->type != BENCODE_DICT)
		return -EINVAL;
	for (k = bencode_first(&d, root); k; k = bencode_next(&d, v)) {
		v = bencode_next(&d, k);
		if (!v)
			return -EINVAL;
		if (key_is(k, "a")) {
			if (v->type != BENCODE_LIST || v->count > CONN_REC_MAX_ADDRS)
				return -EINVAL;
			for (e = bencode_first(&d, v); e; e = bencode_next(&d, e))
				if (get_compact(e, &rec->addrs[rec->naddrs++]))
					return -EINVAL;
			seen |= 1;
		} else if (key_is(k, "c")) {
			if (v->type != BENCODE_INT || v->i < 0 || v->i > UINT32_MAX)
				return -EINVAL;
			rec->caps = (uint32_t)v->i;
			seen |= 2;
		} else if (key_is(k, "m")) {
			if (v->type != BENCODE_LIST || v->count > CONN_REC_MAX_ANCHORS)
				return -EINVAL;
			for (e = bencode_first(&d, v); e; e = bencode_next(&d, e))
				if (parse_relay(&d, e, &rec->anchors[rec->nanchors++]))
					return -EINVAL;
		} else if (key_is(k, "r")) {
			if (v->type != BENCODE_LIST || v->count > CONN_REC_MAX_RELAYS)
				return -EINVAL;
			for (e = bencode_first(&d, v); e; e = bencode_next(&d, e))
				if (parse_relay(&d, e, &rec->relays[rec->nrelays++]))
					return -EINVAL;
			seen |= 4;
		} else if (key_is(k, "t")) {
			if (v->type != BENCODE_INT || v->i < 0)
				return -EINVAL;
			rec->ts = (uint64_t)v->i;
			seen |= 8;
		} else if (key_is(k, "v")) {
			if (v->type != BENCODE_INT || v->i < 1 || v->i > UINT32_MAX)
				return -EINVAL;
			rec->version = (uint32_t)v->i;
			seen |= 16;
		}
	}
	if (!(seen & 16))
		return -EINVAL;
	if (rec->version > CONN_REC_VERSION)
		return -EPROTONOSUPPORT;
	return seen == 31 ? 0 : -EINVAL;
}

static int v4_in(const uint8_t *a, uint32_t net, unsigned int bits)
{
	uint32_t x = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];

	return bits == 0 || (x >> (32 - bits)) == (net >> (32 - bits));
}

int conn_addr_public(const struct io_addr *a)
{
	static const uint8_t zero[16];
	const uint8_t *p = a->addr;

	if (a->family == AF_INET6 && !memcmp(p, zero, 10) && p[10] == 0xff && p[11] == 0xff) {
		struct io_addr v4 = { .family = AF_INET };

		memcpy(v4.addr, p + 12, 4);
		return conn_addr_public(&v4);
	}
	if (a->family == AF_INET)
		return !(v4_in(p, 0x00000000, 8) ||  /* this network */
			 v4_in(p, 0x0a000000, 8) ||  /* RFC 1918 */
			 v4_in(p, 0x64400000, 10) || /* RFC 6598 shared (CGN) */
			 v4_in(p, 0x7f000000, 8) ||  /* loopback */
			 v4_in(p, 0xa9fe0000, 16) || /* link-local */
			 v4_in(p, 0xac100000, 12) || /* RFC 1918 */
			 v4_in(p, 0xc0000000, 24) || /* IETF protocol assignments */
			 v4_in(p, 0xc0a80000, 16) || /* RFC 1918 */
			 v4_in(p, 0xc6120000, 15) || /* benchmarking */
			 v4_in(p, 0xe0000000, 3));   /* multicast, reserved, broadcast */
	if (a->family != AF_INET6)
		return 0;
	if (!memcmp(p, zero, 16) || (!memcmp(p, zero, 15) && p[15] == 1))
		return 0;				/* unspecified, loopback */
	if (p[0] == 0xff || (p[0] & 0xfe) == 0xfc)	/* multicast, ULA */
		return 0;
	if (p[0] == 0xfe && (p[1] & 0xc0) == 0x80)	/* link-local */
		return 0;
	return (p[0] & 0xe0) == 0x20;			/* global unicast 2000::/3 */
}

int conn_obs_encode(const struct io_addr *a, uint8_t *out, size_t cap)
{
	size_t l = a->family == AF_INET ? 4 : a->family == AF_INET6 ? 16 : 0;

	if (!l)
		return -EINVAL;
	if (cap < 3 + l)
		return -ENOBUFS;
	out[0] = a->family == AF_INET ? 4 : 6;
	out[1] = (uint8_t)(a->port >> 8);
	out[2] = (uint8_t)a->port;
	memcpy(out + 3, a->addr, l);
	return (int)(3 + l);
}

int conn_obs_parse(const uint8_t *buf, size_t len, struct io_addr *a)
{
	if (!buf || len < 1)
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	if (buf[0] == 4 && len == 7)
		a->family = AF_INET;
	else if (buf[0] == 6 && len == 19)
		a->family = AF_INET6;
	else
		return -EINVAL;
	a->port = (uint16_t)(buf[1] << 8 | buf[2]);
	memcpy(a->addr, buf + 3, len - 3);
	return a->port ? 0 : -EINVAL;
}
