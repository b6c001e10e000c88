// SPDX-License-Identifier: MIT
/*
 * Connectivity cores without I/O: node record vectors (docs/PROTOCOL.md,
 * "Node records") and the strict parser's refusals, observed-address
 * vectors, reflexive address votes (one peer cannot move the decision, a
 * majority of distinct peers does, the table stays bounded), NAT
 * classification, address classes, and the STUN responder against the
 * RFC 5769 sample request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "weft/conn.h"

/* "IP", "IP:PORT" or "[IP6]:PORT". */
static struct io_addr A(const char *s)
{
	char ip[64];
	const char *c = strrchr(s, ':');
	unsigned int port = 0;
	struct io_addr a;

	if (s[0] == '[') {
		c = strchr(s, ']');
		snprintf(ip, sizeof(ip), "%.*s", (int)(c - s - 1), s + 1);
		port = (unsigned int)atoi(c + 2);
	} else if (c && strchr(s, ':') == c && strchr(s, '.')) {
		snprintf(ip, sizeof(ip), "%.*s", (int)(c - s), s);
		port = (unsigned int)atoi(c + 1);
	} else {
		snprintf(ip, sizeof(ip), "%s", s);
	}
	assert_int_equal(io_addr_parse(&a, ip, (uint16_t)port), 0);
	return a;
}

/* R1: one IPv4 address, seed, no relay. */
static const char R1[] = "d1:al6:\xc6\x33\x64\x07\x11\x51"
			 "e1:ci2e1:rle1:ti1700000000e1:vi1ee";

static void test_record_vectors(void **state)
{
	struct conn_record r = { 0 }, p;
	uint8_t buf[CONN_REC_MAX_LEN];
	int n;

	(void)state;
	r.version = 1;
	r.caps = CONN_CAP_SEED;
	r.ts = 1700000000;
	r.naddrs = 1;
	r.addrs[0] = A("198.51.100.7:4433");
	n = conn_record_encode(&r, buf, sizeof(buf));
	assert_int_equal(n, (int)sizeof(R1) - 1);
	assert_memory_equal(buf, R1, sizeof(R1) - 1);
	assert_int_equal(conn_record_parse(buf, (size_t)n, &p), 0);
	assert_int_equal(p.naddrs, 1);
	assert_int_equal(p.addrs[0].port, 4433);
	assert_int_equal(p.caps, CONN_CAP_SEED);
	assert_int_equal(p.ts, 1700000000);

	/* R2: IPv6 + IPv4, every capability, one relay (key 32 x 0x11). */
	memset(&r, 0, sizeof(r));
	r.version = 1;
	r.caps = CONN_CAP_RELAY | CONN_CAP_SEED | CONN_CAP_GATEWAY;
	r.ts = 1700000001;
	r.naddrs = 2;
	r.addrs[0] = A("[2001:db8::1]:4433");
	r.addrs[1] = A("203.0.113.9:20000");
	r.nrelays = 1;
	memset(r.relays[0].key, 0x11, 32);
	r.relays[0].addr = A("198.51.100.1:4433");
	n = conn_record_encode(&r, buf, sizeof(buf));
	{
		static const char R2[] =
		    "d1:al18:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x11\x51"
		    "6:\xcb\x00\x71\x09\x4e\x20"
		    "e1:ci7e1:rld1:a6:\xc6\x33\x64\x01\x11\x51"
		    "1:k32:\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11"
		    "\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11"
		    "ee1:ti1700000001e1:vi1ee";

		assert_int_equal(n, (int)sizeof(R2) - 1);
		assert_memory_equal(buf, R2, sizeof(R2) - 1);
	}
	assert_int_equal(conn_record_parse(buf, (size_t)n, &p), 0);
	assert_int_equal(p.nrelays, 1);
	assert_int_equal(p.relays[0].addr.port, 4433);
	assert_int_equal(p.addrs[0].family, AF_INET6);

	/* The largest record fits BEP 44's 1000 bytes with room to spare. */
	memset(&r, 0, sizeof(r));
	r.version = 1;
	r.caps = UINT32_MAX;
	r.ts = INT64_MAX;
	r.naddrs = CONN_REC_MAX_ADDRS;
	for (unsigned int i = 0; i < CONN_REC_MAX_ADDRS; i++)
		r.addrs[i] = A("[2001:db8::1]:65535");
	r.nrelays = CONN_REC_MAX_RELAYS;
	for (unsigned int i = 0; i < CONN_REC_MAX_RELAYS; i++)
		r.relays[i].addr = A("[2001:db8::2]:65535");
	n = conn_record_encode(&r, buf, sizeof(buf));
	assert_true(n > 0 && n <= 600);
	print_message("largest record: %d bytes\n", n);
	assert_int_equal(conn_record_parse(buf, (size_t)n, &p), 0);
}

static void test_record_refusals(void **state)
{
	static const char *const bad[] = {
		"",
		"de",								/* no keys */
		"d1:ale1:ci0e1:rle1:ti0ee",					/* no v */
		"d1:ci0e1:rle1:ti0e1:vi1ee",					/* no a */
		"d1:ale1:ci0e1:rle1:ti0e1:vi0ee",				/* version 0 */
		"d1:ci0e1:ale1:rle1:ti0e1:vi1ee",				/* unsorted */
		"d1:al5:abcdee1:ci0e1:rle1:ti0e1:vi1ee",			/* 5-byte address */
		"d1:al6:\x01\x02\x03\x04\x00\x00" "e1:ci0e1:rle1:ti0e1:vi1ee",	/* port 0 */
		"d1:ale1:ci-1e1:rle1:ti0e1:vi1ee",				/* negative caps */
		"d1:ale1:ci0e1:rle1:ti-5e1:vi1ee",				/* negative time */
		"d1:ale1:ci0e1:rld1:a6:\x01\x02\x03\x04\x00\x01" "1:k3:abcee1:ti0e1:vi1ee", /* short key */
		"d1:ale1:ci0e1:rle1:ti0e1:vi1eex",				/* trailing byte */
		"d1:ale1:ci0e1:rle1:ti0e1:vi1e",				/* truncated */
		"d1:ale1:ci0e1:rle1:ti00e1:vi1ee",				/* non-canonical int */
		"d1:ai0e1:ci0e1:rle1:ti0e1:vi1ee",				/* a not a list */
	};
	static const char nine[] = "d1:al6:AAAAAA6:AAAAAB6:AAAAAC6:AAAAAD6:AAAAAE6:AAAAAF"
				   "6:AAAAAG6:AAAAAH6:AAAAAIe1:ci0e1:rle1:ti0e1:vi1ee";
	struct conn_record r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(conn_record_parse((const uint8_t *)bad[i], strlen(bad[i]), &r),
				 -EINVAL);
	assert_int_equal(conn_record_parse((const uint8_t *)nine, strlen(nine), &r), -EINVAL);
	/* A later version is refused as such; an unknown key of this one skipped. */
	assert_int_equal(conn_record_parse((const uint8_t *)"d1:ale1:ci0e1:rle1:ti0e1:vi2ee", 30,
					   &r),
			 -EPROTONOSUPPORT);
	assert_int_equal(conn_record_parse((const uint8_t *)"d1:ale1:ci0e1:rle1:ti0e1:vi1e1:xi9ee",
					   36, &r),
			 0);
}

static void test_addr_classes(void **state)
{
	static const char *const pub[] = { "198.51.100.7", "203.0.113.1", "8.8.8.8", "2001:db8::1",
					   "2a00:1450::1", "::ffff:8.8.8.8" };
	static const char *const priv[] = { "10.1.2.3",	  "172.16.0.1", "192.168.1.1", "127.0.0.1",
					    "169.254.1.1", "100.64.0.1", "0.0.0.0",	"224.0.0.1",
					    "::1",	  "fe80::1",	"fd00::1",	"::",
					    "::ffff:10.0.0.1", "ff02::1" };
	struct io_addr a;

	(void)state;
	for (size_t i = 0; i < sizeof(pub) / sizeof(pub[0]); i++) {
		assert_int_equal(io_addr_parse(&a, pub[i], 0), 0);
		if (!conn_addr_public(&a))
			fail_msg("%s should be public", pub[i]);
	}
	for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++) {
		assert_int_equal(io_addr_parse(&a, priv[i], 0), 0);
		if (conn_addr_public(&a))
			fail_msg("%s should not be public", priv[i]);
	}
}

static void test_observed_vectors(void **state)
{
	static const uint8_t v4[] = { 0x04, 0x4e, 0x20, 0xc6, 0x33, 0x64, 0x07 };
	static const uint8_t v6[] = { 0x06, 0x11, 0x51, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
				      0,    0,	  0,	0,    0,    0,	  0,	0x01 };
	uint8_t buf[CONN_OBS_MAX];
	struct io_addr a = A("198.51.100.7:20000"), p;

	(void)state;
	assert_int_equal(conn_obs_encode(&a, buf, sizeof(buf)), 7);
	assert_memory_equal(buf, v4, 7);
	a = A("[2001:db8::1]:4433");
	assert_int_equal(conn_obs_encode(&a, buf, sizeof(buf)), 19);
	assert_memory_equal(buf, v6, 19);
	assert_int_equal(conn_obs_parse(v6, sizeof(v6), &p), 0);
	assert_int_equal(p.port, 4433);
	assert_int_equal(conn_obs_parse(v4, 6, &p), -EINVAL);
	assert_int_equal(conn_obs_parse(v6, 7, &p), -EINVAL);
	buf[0] = 5;
	assert_int_equal(conn_obs_parse(buf, 7, &p), -EINVAL);
	memcpy(buf, v4, 7);
	buf[1] = buf[2] = 0;
	assert_int_equal(conn_obs_parse(buf, 7, &p), -EINVAL);
}

static void vote(struct conn_votes *v, const char *voter, const char *seen, uint16_t lport,
		 uint64_t now)
{
	struct io_addr a = A(voter), b = A(seen);

	assert_true(conn_votes_add(v, CONN_VOTE_QUIC, &a, &b, lport, now) >= 0);
}

static void decided(struct conn_votes *v, const char *want, enum conn_nat nat, uint64_t now)
{
	struct conn_vote_state st;
	char buf[64];

	conn_votes_state(v, 4433, now, &st);
	if (!want) {
		assert_int_equal(st.nrefl, 0);
	} else {
		assert_int_equal(st.nrefl, 1);
		assert_string_equal(io_addr_fmt(&st.refl[0].addr, buf, sizeof(buf)), want);
	}
	assert_int_equal(st.nat, nat);
}

/* node.vote_networks: voters of a listed range count although it is not
 * public (a lab on 198.18.0.0/15); the seen address must still be public. */
static void test_vote_networks(void **state)
{
	struct conn_votes *v;
	struct conn_net net = {.addr = A("198.18.0.0:0"), .bits = 15};
	struct io_addr in = A("198.19.255.1:0"), out = A("198.20.0.1:0"), v6 = A("[2001:db8::1]:0");
	uint64_t t = 1000;

	(void)state;
	assert_true(conn_net_contains(&net, &in));
	assert_false(conn_net_contains(&net, &out));
	assert_false(conn_net_contains(&net, &v6));
	assert_int_equal(conn_votes_new(&v), 0);
	vote(v, "198.18.1.2:6881", "203.0.113.5:4433", 4433, t++);
	vote(v, "198.18.2.2:6881", "203.0.113.5:4433", 4433, t++);
	decided(v, NULL, CONN_NAT_UNKNOWN, t); /* not public: ignored */
	conn_votes_set_voter_nets(v, &net, 1);
	vote(v, "198.18.1.2:6881", "203.0.113.5:4433", 4433, t++);
	vote(v, "198.18.2.2:6881", "203.0.113.5:4433", 4433, t++);
	decided(v, "203.0.113.5:4433", CONN_NAT_EIM, t);
	/* a claim of a non-public address still counts for nothing */
	vote(v, "198.18.3.2:6881", "198.18.9.9:4433", 4433, t++);
	vote(v, "198.18.4.2:6881", "198.18.9.9:4433", 4433, t++);
	vote(v, "198.18.5.2:6881", "198.18.9.9:4433", 4433, t++);
	decided(v, "203.0.113.5:4433", CONN_NAT_EIM, t);
	conn_votes_free(v);
}

/* A relay holding a reservation for us decides alone when nobody says
 * otherwise (a NATed node whose only contact is its relay): behind-nat,
 * port 0 (one voter cannot classify the mapping). A vote for another
 * address from anyone undoes it; a second voter agreeing makes an
 * ordinary quorum. A QUIC vote of the relay's network, cast before the
 * reservation, becomes the relay's when the reservation is known. */
static void test_vote_relay(void **state)
{
	struct conn_votes *v;
	struct io_addr relay = A("198.51.100.7:4433"), seen = A("203.0.113.5:20000"),
		       other = A("198.51.101.1:4433"), elsewhere = A("203.0.113.66:20000");
	uint64_t t = 1000;

	(void)state;
	assert_int_equal(conn_votes_new(&v), 0);
	vote(v, "198.51.100.7:4433", "203.0.113.5:20000", 4433, t++);
	decided(v, NULL, CONN_NAT_UNKNOWN, t); /* a plain peer: no quorum */
	conn_votes_mark_relay(v, &relay);
	decided(v, "203.0.113.5:0", CONN_NAT_BEHIND, t);
	assert_string_equal(conn_nat_name(CONN_NAT_BEHIND), "behind-nat");
	/* someone else says another address: one against one, nothing */
	assert_true(conn_votes_add(v, CONN_VOTE_QUIC, &other, &elsewhere, 4433, t++) >= 0);
	decided(v, NULL, CONN_NAT_UNKNOWN, t);
	/* it agrees instead: an ordinary quorum of two, ports equal: EIM */
	assert_true(conn_votes_add(v, CONN_VOTE_QUIC, &other, &seen, 4433, t++) >= 0);
	decided(v, "203.0.113.5:20000", CONN_NAT_EIM, t);
	conn_votes_free(v);

	/* a relay vote cast as one from the start */
	assert_int_equal(conn_votes_new(&v), 0);
	assert_true(conn_votes_add(v, CONN_VOTE_RELAY, &relay, &seen, 4433, t++) >= 0);
	decided(v, "203.0.113.5:0", CONN_NAT_BEHIND, t);
	decided(v, NULL, CONN_NAT_UNKNOWN, t + CONN_VOTE_TTL_MS + 1); /* it expires too */
	conn_votes_free(v);
}

static void test_votes(void **state)
{
	struct conn_votes *v;
	uint64_t t = 1000;

	(void)state;
	assert_int_equal(conn_votes_new(&v), 0);
	/* One voter is no quorum, however often it votes. */
	for (int i = 0; i < 10; i++)
		vote(v, "198.51.100.1:4433", "203.0.113.5:20000", 4433, t++);
	decided(v, NULL, CONN_NAT_UNKNOWN, t);
	/* Another host of the same /24 is the same voter. */
	vote(v, "198.51.100.2:4433", "203.0.113.5:20000", 4433, t++);
	decided(v, NULL, CONN_NAT_UNKNOWN, t);
	/* A second network decides; both saw the same port: EIM. */
	vote(v, "198.51.101.1:4433", "203.0.113.5:20000", 4433, t++);
	decided(v, "203.0.113.5:20000", CONN_NAT_EIM, t);
	/* One peer claiming another address, however often, moves nothing. */
	for (int i = 0; i < 50; i++)
		vote(v, "198.51.102.1:4433", "203.0.113.66:20000", 4433, t++);
	decided(v, "203.0.113.5:20000", CONN_NAT_EIM, t);
	/* Private voters and private claims are ignored. */
	vote(v, "10.0.0.1:4433", "203.0.113.66:20000", 4433, t++);
	vote(v, "198.51.103.1:4433", "192.168.1.5:20000", 4433, t++);
	decided(v, "203.0.113.5:20000", CONN_NAT_EIM, t);
	/* A tie does not decide: a second network for .66 makes 2 against 2. */
	vote(v, "198.51.103.1:4433", "203.0.113.66:20000", 4433, t++);
	decided(v, NULL, CONN_NAT_UNKNOWN, t);
	/* A majority of distinct networks moves it. */
	vote(v, "198.51.104.1:4433", "203.0.113.66:20000", 4433, t++);
	decided(v, "203.0.113.66:20000", CONN_NAT_EIM, t);
	/* Votes expire. */
	decided(v, NULL, CONN_NAT_UNKNOWN, t + CONN_VOTE_TTL_MS + 1);
	conn_votes_free(v);

	/* The table is bounded: 1000 networks later it holds CONN_VOTE_SLOTS
	 * votes, and the latest decide. */
	assert_int_equal(conn_votes_new(&v), 0);
	for (int i = 0; i < 1000; i++) {
		char voter[32];

		snprintf(voter, sizeof(voter), "11.%d.%d.1:4433", i / 250, i % 250);
		vote(v, voter, i < 990 ? "203.0.113.1:1" : "203.0.113.2:1", 4433, t++);
	}
	{
		struct conn_vote_state st;

		conn_votes_state(v, 4433, t, &st);
		assert_int_equal(st.voters, CONN_VOTE_SLOTS);
		assert_int_equal(st.refl[0].voters, CONN_VOTE_SLOTS - 10);
	}
	conn_votes_free(v);
}

static void test_nat_classes(void **state)
{
	struct conn_votes *v;
	struct io_addr self = A("203.0.113.5");
	uint64_t t = 1000;

	(void)state;
	/* Address-dependent mapping: each network saw another port. */
	assert_int_equal(conn_votes_new(&v), 0);
	vote(v, "198.51.100.1:4433", "203.0.113.5:20000", 4433, t++);
	vote(v, "198.51.101.1:4433", "203.0.113.5:20001", 4433, t++);
	decided(v, "203.0.113.5:0", CONN_NAT_ADM, t);
	conn_votes_free(v);
	/* Different local sockets map to different ports: still EIM when each
	 * socket's port is seen alike. */
	assert_int_equal(conn_votes_new(&v), 0);
	vote(v, "198.51.100.1:4433", "203.0.113.5:20000", 4433, t++);
	vote(v, "198.51.101.1:4433", "203.0.113.5:20000", 4433, t++);
	vote(v, "198.51.100.1:6881", "203.0.113.5:20001", 6881, t++);
	vote(v, "198.51.101.1:6881", "203.0.113.5:20001", 6881, t++);
	decided(v, "203.0.113.5:20000", CONN_NAT_EIM, t);
	/* The reflexive address is one of ours: no NAT. */
	conn_votes_set_local(v, &self, 1);
	decided(v, "203.0.113.5:20000", CONN_NAT_NONE, t);
	conn_votes_free(v);
}

/* RFC 5769 section 2.1 sample request (the FINGERPRINT checks our CRC). */
static const uint8_t rfc5769_req[] = {
	0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
	0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
	0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
	0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
	0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
	0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
	0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
	0x7a, 0x3b, 0xcf,
};

static void test_stun(void **state)
{
	/* RFC 5769 2.2: XOR-MAPPED-ADDRESS of 192.0.2.1:32853 for that id. */
	static const uint8_t xma4[] = { 0x00, 0x20, 0x00, 0x08, 0x00, 0x01,
					0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43 };
	uint8_t out[CONN_STUN_MAX_REPLY], req[64], bad[sizeof(rfc5769_req)];
	uint8_t tid[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	struct io_addr from = A("192.0.2.1:32853"), m;
	int n;

	(void)state;
	assert_true(conn_stun_is(rfc5769_req, sizeof(rfc5769_req)));
	n = conn_stun_answer(rfc5769_req, sizeof(rfc5769_req), &from, out, sizeof(out));
	assert_int_equal(n, 20 + 12 + 8);
	assert_int_equal(out[0], 0x01);
	assert_int_equal(out[1], 0x01);
	assert_memory_equal(out + 4, rfc5769_req + 4, 16);
	assert_memory_equal(out + 20, xma4, sizeof(xma4));
	assert_true(conn_stun_is(out, (size_t)n));
	assert_int_equal(conn_stun_parse_response(out, (size_t)n, rfc5769_req + 8, &m), 0);
	assert_int_equal(m.port, 32853);
	assert_memory_equal(m.addr, from.addr, 4);
	/* A broken FINGERPRINT is dropped. */
	memcpy(bad, rfc5769_req, sizeof(bad));
	bad[sizeof(bad) - 1] ^= 1;
	assert_int_equal(conn_stun_answer(bad, sizeof(bad), &from, out, sizeof(out)), -EINVAL);
	/* An attribute length past the end is dropped. */
	memcpy(bad, rfc5769_req, sizeof(bad));
	bad[23] = 0xf0;
	assert_int_equal(conn_stun_answer(bad, sizeof(bad), &from, out, sizeof(out)), -EINVAL);
	/* Our own request, IPv6 source: round trip. */
	n = conn_stun_request(tid, req, sizeof(req));
	assert_int_equal(n, 28);
	from = A("[2001:db8::7]:5000");
	n = conn_stun_answer(req, (size_t)n, &from, out, sizeof(out));
	assert_int_equal(n, 20 + 24 + 8);
	assert_int_equal(conn_stun_parse_response(out, (size_t)n, tid, &m), 0);
	assert_int_equal(m.family, AF_INET6);
	assert_int_equal(m.port, 5000);
	assert_memory_equal(m.addr, from.addr, 16);
	/* A response is never answered (no reflection loops). */
	assert_int_equal(conn_stun_answer(out, (size_t)n, &from, req, sizeof(req)), 0);
	/* An unknown comprehension-required attribute: 420 listing it. */
	{
		uint8_t u[28] = { 0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6,
				  7,    8,    9,    10,   11,	  12,	0x00, 0x77, 0x00, 0x00 };

		n = conn_stun_answer(u, 24, &from, out, sizeof(out));
		assert_int_equal(n, -EINVAL); /* length field says 8, 4 bytes follow */
		u[3] = 4;
		n = conn_stun_answer(u, 24, &from, out, sizeof(out));
		assert_int_equal(n, 20 + 8 + 8);
		assert_int_equal(out[0], 0x01);
		assert_int_equal(out[1], 0x11);
		assert_int_equal(out[26], 4);
		assert_int_equal(out[27], 20);
		assert_int_equal(out[32], 0x00);
		assert_int_equal(out[33], 0x77);
	}
	/* QUIC is not STUN. */
	out[0] = 0xc0;
	assert_false(conn_stun_is(out, 40));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_vectors), cmocka_unit_test(test_record_refusals),
		cmocka_unit_test(test_addr_classes),   cmocka_unit_test(test_observed_vectors),
		cmocka_unit_test(test_votes),
		cmocka_unit_test(test_vote_relay),	       cmocka_unit_test(test_nat_classes),
		cmocka_unit_test(test_vote_networks),
		cmocka_unit_test(test_stun),
	};

	return cmocka_run_group_tests_name("conn_core", tests, NULL, NULL);
}
