/* SPDX-License-Identifier: MIT */
/*
 * Test-only frame builder shared by the BPF test-run tests (through
 * xdp_testrun.h), test_xdp_policer.c and bench/bench_xdp.c: Ethernet (+
 * VLAN tags) / IPv4 (+ options) or IPv6 (+ extension headers) / UDP /
 * payload, with knobs to corrupt each length.
 * Static functions in a header on purpose: each test is one binary.
 */
#ifndef WEFT_XDP_TESTPKT_H
#define WEFT_XDP_TESTPKT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TPKT_MAX 2048

struct tpkt_ext {
	uint8_t type; /* IPPROTO_HOPOPTS, _ROUTING, _DSTOPTS, _FRAGMENT */
	uint8_t len8; /* length in 8-byte units minus 1 (hdrlen field) */
	uint16_t frag_off; /* fragment header: offset (8-byte units) */
	uint8_t more;      /* fragment header: M flag */
};

struct tpkt {
	int v6;
	int vlans;          /* 0..3 tags */
	int ip_opt_words;   /* IPv4 option words (0..10) */
	struct tpkt_ext ext[8];
	int next;           /* number of IPv6 extension headers */
	uint8_t proto;      /* 0 = UDP */
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	const uint8_t *payload;
	size_t plen;
	uint16_t v4_frag;   /* raw frag_off field (host order) */
	int udp_len_delta;  /* added to the UDP length field */
	int ip_len_delta;   /* added to tot_len / payload_len */
	size_t hdr_end;     /* out: offset of the UDP payload */
	size_t udp_end;     /* out: offset just past the UDP header */
};

static inline void tpkt_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint16_t tpkt_csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Build the frame into buf (TPKT_MAX bytes); returns its length. */
static inline size_t tpkt_build(uint8_t *buf, struct tpkt *t)
{
	size_t o = 0, ip, l4, udplen = 8 + t->plen;
	uint8_t proto = t->proto ? t->proto : IPPROTO_UDP;

	memset(buf, 0, TPKT_MAX);
	memcpy(buf, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", 12);
	o = 12;
	for (int i = 0; i < t->vlans; i++) {
		tpkt_put16(buf + o, i == 0 && t->vlans > 1 ? 0x88a8 : 0x8100);
		tpkt_put16(buf + o + 2, (uint16_t)(100 + i));
		o += 4;
	}
	tpkt_put16(buf + o, t->v6 ? 0x86dd : 0x0800);
	o += 2;
	ip = o;
	if (!t->v6) {
		size_t hl = 20 + 4 * (size_t)t->ip_opt_words;

		buf[o] = (uint8_t)(0x40 | (hl / 4));
		tpkt_put16(buf + o + 2, (uint16_t)(hl + udplen + t->ip_len_delta));
		tpkt_put16(buf + o + 4, 0x1234);
		tpkt_put16(buf + o + 6, t->v4_frag);
		buf[o + 8] = 64;
		buf[o + 9] = proto;
		memcpy(buf + o + 12, t->src, 4);
		memcpy(buf + o + 16, t->dst, 4);
		for (int i = 0; i < t->ip_opt_words * 4; i++)
			buf[o + 20 + i] = 1; /* NOP options */
		tpkt_put16(buf + o + 10, tpkt_csum(buf + o, hl));
		l4 = o + hl;
	} else {
		size_t e = o + 40, extlen = 0;
		uint8_t *nhp = buf + o + 6;

		buf[o] = 0x60;
		buf[o + 7] = 64;
		memcpy(buf + o + 8, t->src, 16);
		memcpy(buf + o + 24, t->dst, 16);
		for (int i = 0; i < t->next; i++) {
			const struct tpkt_ext *x = &t->ext[i];
			size_t len = x->type == IPPROTO_FRAGMENT ? 8 : (size_t)(x->len8 + 1) * 8;

			*nhp = x->type;
			nhp = buf + e;
			if (x->type == IPPROTO_FRAGMENT) {
				tpkt_put16(buf + e + 2, (uint16_t)(x->frag_off << 3 | (x->more ? 1 : 0)));
				memcpy(buf + e + 4, "\x00\x00\x12\x34", 4);
			} else {
				buf[e + 1] = x->len8;
			}
			e += len;
			extlen += len;
		}
		*nhp = proto;
		tpkt_put16(buf + o + 4, (uint16_t)(extlen + udplen + t->ip_len_delta));
		l4 = e;
	}
	tpkt_put16(buf + l4, t->sport);
	tpkt_put16(buf + l4 + 2, t->dport);
	tpkt_put16(buf + l4 + 4, (uint16_t)(udplen + t->udp_len_delta));
	if (t->plen)
		memcpy(buf + l4 + 8, t->payload, t->plen);
	t->udp_end = l4 + 8;
	t->hdr_end = l4 + 8;
	(void)ip;
	return l4 + udplen;
}

/* Default addresses: 192.0.2.1 -> 192.0.2.2, 2001:db8::1 -> 2001:db8::2. */
static inline void tpkt_v4(struct tpkt *t, uint8_t last)
{
	static const uint8_t a[4] = { 192, 0, 2, 0 };

	memcpy(t->src, a, 4);
	t->src[3] = last;
	memcpy(t->dst, a, 4);
	t->dst[3] = 2;
	t->v6 = 0;
}

static inline void tpkt_v6(struct tpkt *t, uint16_t hi64_last, uint8_t last)
{
	memset(t->src, 0, 16);
	t->src[0] = 0x20;
	t->src[1] = 0x01;
	t->src[2] = 0x0d;
	t->src[3] = 0xb8;
	tpkt_put16(t->src + 6, hi64_last);
	t->src[15] = last;
	memcpy(t->dst, t->src, 16);
	t->dst[15] = 2;
	t->v6 = 1;
}

#endif
