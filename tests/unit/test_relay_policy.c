// SPDX-License-Identifier: MIT
/*
 * include/weft/relay_policy.h, the per-packet relay policy both forwarders
 * run: verdicts at every limit's boundary, and the incremental checksum
 * update checked against a full recomputation on seeded random headers
 * (IPv4 header, UDP over IPv4 and IPv6).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include "weft/relay_policy.h"

#define MS 1000000ULL
#define T0 (1000 * WXDP_NS_PER_S)

static struct wxdp_circ circ(uint64_t max_bytes, uint32_t pps, uint32_t burst)
{
	struct wxdp_circ c;

	memset(&c, 0, sizeof(c));
	c.id = 1;
	c.max_bytes = max_bytes;
	c.expires_ns = T0 + 10000 * MS;
	c.idle_ns = 1000 * MS;
	c.last_ns = T0;
	c.rate.pps = pps;
	c.rate.burst = burst;
	return c;
}

static void test_bytes(void **state)
{
	struct wxdp_circ c = circ(1000, 0, 0);

	(void)state;
	/* Both directions count: 600 + 400 = 1000 fits exactly... */
	assert_int_equal(wrelay_decide(&c, 0, 600, T0), WRELAY_FORWARD);
	wrelay_account(&c, 0, 600, T0);
	assert_int_equal(wrelay_decide(&c, 1, 400, T0), WRELAY_FORWARD);
	wrelay_account(&c, 1, 400, T0);
	assert_int_equal(c.dir[0].pkts, 1);
	assert_int_equal(c.dir[1].bytes, 400);
	/* ...one more byte either way ends the circuit, for good. */
	assert_int_equal(wrelay_decide(&c, 0, 1, T0), WRELAY_DROP_END);
	assert_int_equal(c.ended, WXDP_RELAY_END_BYTES);
	assert_int_equal(wrelay_decide(&c, 1, 0, T0), WRELAY_DROP_END);
	assert_int_equal(wrelay_over(&c, T0), WXDP_RELAY_END_BYTES);
	/* max_bytes 0: unlimited. */
	c = circ(0, 0, 0);
	c.dir[0].bytes = 1ULL << 60;
	assert_int_equal(wrelay_decide(&c, 0, 65507, T0), WRELAY_FORWARD);
}

static void test_time(void **state)
{
	struct wxdp_circ c = circ(0, 0, 0);

	(void)state;
	/* Idle: 1 s after the last forwarded packet, not before. */
	assert_int_equal(wrelay_over(&c, T0 + 999 * MS), 0);
	assert_int_equal(wrelay_over(&c, T0 + 1000 * MS), WXDP_RELAY_END_IDLE);
	wrelay_account(&c, 0, 10, T0 + 900 * MS);
	assert_int_equal(wrelay_over(&c, T0 + 1000 * MS), 0);
	assert_int_equal(wrelay_over(&c, T0 + 1900 * MS), WXDP_RELAY_END_IDLE);
	/* A clock that reads before last_ns (another CPU's packet) is not idle. */
	assert_int_equal(wrelay_over(&c, T0), 0);
	/* Lifetime wins whatever the traffic. */
	c = circ(0, 0, 0);
	for (uint64_t t = T0; t < T0 + 10000 * MS; t += 500 * MS) {
		assert_int_equal(wrelay_decide(&c, 0, 10, t), WRELAY_FORWARD);
		wrelay_account(&c, 0, 10, t);
	}
	assert_int_equal(wrelay_decide(&c, 0, 10, T0 + 10000 * MS), WRELAY_DROP_END);
	assert_int_equal(c.ended, WXDP_RELAY_END_LIFETIME);
	/* No lifetime, no idle: never over. */
	c = circ(0, 0, 0);
	c.expires_ns = c.idle_ns = 0;
	assert_int_equal(wrelay_over(&c, UINT64_MAX), 0);
}

static void test_rate(void **state)
{
	struct wxdp_circ c = circ(0, 100, 10);
	int fwd = 0;

	(void)state;
	/* A burst of 50 at one instant: the bucket's 10 pass, per direction. */
	for (int i = 0; i < 50; i++)
		fwd += wrelay_decide(&c, 0, 10, T0) == WRELAY_FORWARD;
	assert_int_equal(fwd, 10);
	assert_int_equal(wrelay_decide(&c, 1, 10, T0), WRELAY_FORWARD);
	assert_int_equal(c.ended, 0); /* rate drops never end a circuit */
	/* 10 ms later: one token (100 pps). */
	assert_int_equal(wrelay_decide(&c, 0, 10, T0 + 10 * MS), WRELAY_FORWARD);
	assert_int_equal(wrelay_decide(&c, 0, 10, T0 + 10 * MS), WRELAY_DROP_RATE);
}

/* Full one's-complement checksum of n 16-bit words (network order bytes). */
static uint16_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* UDP checksum (RFC 768 / 8200) over pseudo header + header + payload. */
static uint16_t udp_csum(const uint8_t *src, const uint8_t *dst, int alen, const uint8_t *udp,
			 size_t ulen)
{
	uint8_t ph[40];
	uint32_t s;
	uint16_t r;

	memcpy(ph, src, (size_t)alen);
	memcpy(ph + alen, dst, (size_t)alen);
	s = sum16(ph, (size_t)(2 * alen), 0);
	s += 17 + (uint32_t)ulen;
	r = (uint16_t)~sum16(udp, ulen, s);
	return r ? r : 0xffff;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/*
 * The rewrite the XDP program does, on a buffer: (src, dst, sport, dport)
 * -> (dst, peer, dport, peer_port), with the UDP checksum updated
 * incrementally; checked against a recomputation. 2000 seeded cases per
 * family, payload lengths 0..1500, odd ones included.
 */
static void csum_case(int alen, uint64_t seed)
{
	uint8_t src[16], dst[16], peer[16], udp[8 + 1500], buf[64];
	__u16 ow[WRELAY_CSUM_MAX_WORDS], nw[WRELAY_CSUM_MAX_WORDS], c;
	size_t plen, ulen;
	uint16_t sport, dport, pport, got;

	tu_fill(buf, sizeof(buf), seed);
	memcpy(src, buf, 16);
	memcpy(dst, buf + 16, 16);
	memcpy(peer, buf + 32, 16);
	sport = rd16(buf + 48);
	dport = rd16(buf + 50);
	pport = rd16(buf + 52);
	plen = rd16(buf + 54) % 1501;
	ulen = 8 + plen;
	tu_fill(udp + 8, plen, seed ^ 0x5a5a);
	wr16(udp, sport);
	wr16(udp + 2, dport);
	wr16(udp + 4, (uint16_t)ulen);
	wr16(udp + 6, 0);
	wr16(udp + 6, udp_csum(src, dst, alen, udp, ulen));

	/* Old and new words as they sit in the packet (memcpy: byte order
	 * is whatever the host's, as in the program). */
	memcpy(ow, src, (size_t)alen);
	memcpy((uint8_t *)ow + alen, dst, (size_t)alen);
	memcpy(nw, dst, (size_t)alen);
	memcpy((uint8_t *)nw + alen, peer, (size_t)alen);
	memcpy(&ow[alen], udp, 4);
	wr16(udp, dport);
	wr16(udp + 2, pport);
	memcpy(&nw[alen], udp, 4);
	memcpy(&c, udp + 6, 2);
	c = wrelay_udp_csum_fix(wrelay_csum_replace(c, ow, nw, alen + 2));
	memcpy(udp + 6, &c, 2);
	got = rd16(udp + 6);
	wr16(udp + 6, 0);
	assert_int_equal(got, udp_csum(dst, peer, alen, udp, ulen));
}

static void test_csum_udp(void **state)
{
	(void)state;
	for (uint64_t s = 1; s <= 2000; s++) {
		csum_case(4, s);
		csum_case(16, s * 7919);
	}
}

/* The IPv4 header: addresses and TTL changed, header checksum updated. */
static void test_csum_ipv4(void **state)
{
	(void)state;
	for (uint64_t s = 1; s <= 2000; s++) {
		uint8_t h[20], peer[4];
		__u16 ow[4], nw[4], ot, nt, c;

		tu_fill(h, sizeof(h), s);
		tu_fill(peer, sizeof(peer), s + 99);
		h[0] = 0x45;
		h[8] = (uint8_t)(2 + h[8] % 250); /* TTL > 1 */
		wr16(h + 10, 0);
		wr16(h + 10, (uint16_t)~sum16(h, 20, 0));
		memcpy(ow, h + 12, 8);
		memcpy(nw, h + 16, 4);
		memcpy(&nw[2], peer, 4);
		memcpy(&ot, h + 8, 2);
		h[8]--;
		memcpy(&nt, h + 8, 2);
		memcpy(&c, h + 10, 2);
		c = wrelay_csum_replace(c, ow, nw, 4);
		c = wrelay_csum_replace(c, &ot, &nt, 1);
		memcpy(h + 10, &c, 2);
		memcpy(h + 12, nw, 8);
		/* A valid header sums to 0xffff. */
		assert_int_equal(sum16(h, 20, 0), 0xffff);
	}
}

static void test_key(void **state)
{
	struct wxdp_relay_key a, b;
	uint8_t v4[16] = {198, 51, 100, 1, 9, 9, 9, 9}, v6[16] = {0x20, 0x01, 0x0d, 0xb8};

	(void)state;
	/* IPv4 keys ignore bytes past the address (padding is zero). */
	wrelay_key(&a, 4, v4, 0x1234, 0xa410);
	v4[4] = 0;
	wrelay_key(&b, 4, v4, 0x1234, 0xa410);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(a.addr[4], 0);
	wrelay_key(&b, 6, v6, 0x1234, 0xa410);
	assert_int_equal(b.family, 6);
	assert_memory_equal(b.addr, v6, 16);
	assert_memory_not_equal(&a, &b, sizeof(a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bytes),	   cmocka_unit_test(test_time),
		cmocka_unit_test(test_rate),	   cmocka_unit_test(test_csum_udp),
		cmocka_unit_test(test_csum_ipv4), cmocka_unit_test(test_key),
	};

	return cmocka_run_group_tests_name("relay_policy", tests, NULL, NULL);
}
