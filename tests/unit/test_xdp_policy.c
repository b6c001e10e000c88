// SPDX-License-Identifier: MIT
/*
 * The XDP program's per-source policy under the kernel's test-run
 * facility: bans (prefix tries, exact hashes and their index, expiry,
 * nesting bound, gc), the per-source token buckets (per-CPU slots in front
 * of the LRU, the LRU's bound), the global budget of unvalidated sources
 * and the guard's mirror of validated sources and bans in xdp mode. The
 * parser's verdicts are test_xdp_prog.c; the fixture and run() are
 * xdp_testrun.h. Needs root (skips otherwise).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weft/guard.h"
#include "weft/xdp_policy.h"
#include "xdp_testrun.h"

static int setup_small_lru(void **state)
{
	return setup_n(state, 128);
}

static void ban(struct fx *f, const char *cidr, uint64_t expires)
{
	struct wxdp_ban b;

	assert_int_equal(wxdp_cidr_parse(cidr, &b), 0);
	b.expires_ns = expires;
	assert_int_equal(wxdp_ban_add(f->x, &b), 0);
}

static void test_bans(void **state)
{
	struct fx *f = *state;
	struct wxdp_ban list[8], b;
	struct tpkt t;
	size_t n;

	NEED_ROOT();
	ban(f, "192.0.2.0/24", T0 + 10 * MS);
	dht_pkt(&t, 0);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
	quic_pkt(&t, 0);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
	/* Malformed beats banned: the reason is the more specific one. */
	t.payload = (const uint8_t *)"\x01";
	t.plen = 1;
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_QUIC_FIXED);
	/* Another source passes; not-weft traffic from the ban passes. */
	dht_pkt(&t, 0);
	t.src[2] = 3;
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	dht_pkt(&t, 0);
	t.dport = 80;
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NOT_WEFT);
	/* Expiry: live until expires_ns, gone at it. */
	set_now(f, T0 + 10 * MS - 1);
	dht_pkt(&t, 0);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
	set_now(f, T0 + 10 * MS);
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	/* An expired /32 inside a live /16: the /16 still bans. */
	ban(f, "192.0.2.1/32", T0);
	ban(f, "192.0.0.0/16", 0);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
	assert_int_equal(wxdp_ban_list(f->x, list, 8, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		char s[64];

		wxdp_cidr_fmt(&list[i], s, sizeof(s));
		if (!strcmp(s, "192.0.0.0/16"))
			assert_int_equal(list[i].drops, 1);
		else if (!strcmp(s, "192.0.2.0/24"))
			assert_int_equal(list[i].drops, 3);
	}
	/* GC removes the two expired entries, keeps the permanent one. */
	assert_int_equal(wxdp_ban_gc(f->x, T0 + 10 * MS), 2);
	assert_int_equal(wxdp_ban_list(f->x, list, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(wxdp_cidr_parse("192.0.0.0/16", &b), 0);
	assert_int_equal(wxdp_ban_del(f->x, &b), 0);
	assert_int_equal(wxdp_ban_del(f->x, &b), -ENOENT);
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	/* IPv6 prefix ban. */
	ban(f, "2001:db8::/48", 0);
	dht_pkt(&t, 1);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
	t.src[7] = 9; /* 2001:db8:0:9::1: inside the /48 */
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
	t.src[5] = 1; /* 2001:db8:1:9::1: outside */
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	/* Host bits are cleared by the parser. */
	assert_int_equal(wxdp_cidr_parse("2001:db8::1/48", &b), 0);
	assert_int_equal(wxdp_ban_del(f->x, &b), 0);
	assert_int_equal(wxdp_cidr_parse("10.0.0.0/33", &b), -EINVAL);
	assert_int_equal(wxdp_cidr_parse("nonsense", &b), -EINVAL);
}

/* Exactly WXDP_BAN_MAX_NESTED (8) nested expired covering prefixes are
 * skipped to reach a live one; behind 9 the packet is not banned (the
 * documented fail-open bound). */
static void test_bans_nested(void **state)
{
	struct fx *f = *state;
	struct tpkt t;
	char cidr[64];

	NEED_ROOT();
	for (int v6 = 0; v6 < 2; v6++) {
		int full = v6 ? 128 : 32;

		dht_pkt(&t, v6);
		for (int i = 0; i < WXDP_BAN_MAX_NESTED; i++) {
			snprintf(cidr, sizeof(cidr), v6 ? "2001:db8:0:1::1/%d" : "192.0.2.1/%d",
				 full - i);
			ban(f, cidr, T0 - 1);
		}
		snprintf(cidr, sizeof(cidr), v6 ? "2001:db8:0:1::1/%d" : "192.0.2.1/%d",
			 full - WXDP_BAN_MAX_NESTED);
		ban(f, cidr, 0);
		assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
		/* The live one expires too: a 9th expired entry, with a live
		 * shorter prefix behind it, is past the bound. */
		ban(f, cidr, T0 - 1);
		snprintf(cidr, sizeof(cidr), v6 ? "2001:db8:0:1::1/%d" : "192.0.2.1/%d",
			 full - WXDP_BAN_MAX_NESTED - 1);
		ban(f, cidr, 0);
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
		/* Garbage collection removes the expired ones: banned again. */
		assert_int_equal(wxdp_ban_gc(f->x, T0), WXDP_BAN_MAX_NESTED + 1);
		assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
	}
}

/* The "may hold entries" flag of ban table t (enum wxdp_ban_table). */
static uint32_t ban_flag(struct fx *f, uint32_t t)
{
	struct wxdp_ban_state st;

	assert_int_equal(bpf_map_lookup_elem(wxdp_fd(f->x, WXDP_FD_BANST), &t, &st), 0);
	return st.may_hold;
}

/* Full-length bans live in the exact hashes, others in the tries; each
 * table's flag is set while it holds an entry and cleared when the last
 * one goes; the verdicts do not depend on where a ban lives. */
static void test_ban_tables(void **state)
{
	struct fx *f = *state;
	struct wxdp_ban list[8], b;
	struct tpkt t;
	size_t n;

	NEED_ROOT();
	for (uint32_t i = 0; i < WXDP_BANT__MAX; i++)
		assert_int_equal(ban_flag(f, i), 0);
	dht_pkt(&t, 0);
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	ban(f, "192.0.2.1/32", 0);
	assert_int_equal(ban_flag(f, WXDP_BANT_EXACT4), 1);
	assert_int_equal(ban_flag(f, WXDP_BANT_TRIE4), 0);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
	ban(f, "192.0.2.0/24", 0);
	assert_int_equal(ban_flag(f, WXDP_BANT_TRIE4), 1);
	/* The exact entry counts its drops; get reads it from its table. */
	assert_int_equal(wxdp_cidr_parse("192.0.2.1/32", &b), 0);
	assert_int_equal(wxdp_ban_get(f->x, &b), 0);
	assert_int_equal(b.drops, 1);
	assert_int_equal(wxdp_ban_del(f->x, &b), 0);
	assert_int_equal(ban_flag(f, WXDP_BANT_EXACT4), 0);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED); /* the /24 */
	assert_int_equal(wxdp_cidr_parse("192.0.2.0/24", &b), 0);
	assert_int_equal(wxdp_ban_del(f->x, &b), 0);
	assert_int_equal(ban_flag(f, WXDP_BANT_TRIE4), 0);
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	/* A flag left set over an empty table (another instance's add in
	 * flight) changes nothing. */
	{
		struct wxdp_ban_state on = { .may_hold = 1 };

		for (uint32_t i = 0; i < WXDP_BANT__MAX; i++)
			assert_int_equal(bpf_map_update_elem(wxdp_fd(f->x, WXDP_FD_BANST), &i, &on, 0),
					 0);
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
		dht_pkt(&t, 1);
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	}
	/* IPv6: the /128 and a /64, both listed with their prefixes. */
	ban(f, "2001:db8:0:1::1/128", 0); /* dht_pkt()'s IPv6 source */
	ban(f, "2001:db8:0:1::/64", T0 + MS);
	dht_pkt(&t, 1);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
	assert_int_equal(wxdp_ban_list(f->x, list, 8, &n), 0);
	assert_int_equal(n, 2);
	assert_true((list[0].prefixlen == 128 && list[1].prefixlen == 64) ||
		    (list[0].prefixlen == 64 && list[1].prefixlen == 128));
	/* GC walks both tables: the expired /64 goes, the /128 stays. */
	assert_int_equal(wxdp_ban_gc(f->x, T0 + MS), 1);
	assert_int_equal(ban_flag(f, WXDP_BANT_TRIE6), 0);
	assert_int_equal(ban_flag(f, WXDP_BANT_EXACT6), 1);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
	assert_int_equal(wxdp_cidr_parse("2001:db8:0:1::1/128", &b), 0);
	assert_int_equal(wxdp_ban_del(f->x, &b), 0);
	assert_int_equal(ban_flag(f, WXDP_BANT_EXACT6), 0);
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
}

/* ---- the exact-ban index (xdp_abi.h struct wxdp_bani4) ---- */

static uint32_t bani_slot_of(int v6, const uint8_t *a)
{
	return wxdp_bani_slot(v6 ? wxdp_bani_hash6(a) : wxdp_bani_hash4(a));
}

/* The nth address after a (in its last three bytes) whose index slot is
 * a's: a deterministic search (one in 32768 addresses collides, so it
 * ends well within the 2^24 it may try). */
static void bani_collider(int v6, const uint8_t *a, uint8_t *out, int nth)
{
	size_t len = v6 ? 16 : 4;
	uint32_t slot = bani_slot_of(v6, a);

	for (uint32_t i = 1; i < (1U << 24); i++) {
		memcpy(out, a, len);
		out[len - 3] = (uint8_t)(a[len - 3] + (i >> 16));
		out[len - 2] = (uint8_t)(a[len - 2] + (i >> 8));
		out[len - 1] = (uint8_t)(a[len - 1] + i);
		if (memcmp(out, a, len) && bani_slot_of(v6, out) == slot && nth-- == 0)
			return;
	}
	fail_msg("no colliding address");
}

static void ban_exact(struct fx *f, int v6, const uint8_t *a, uint64_t expires, int add)
{
	struct wxdp_ban b = { .family = v6 ? AF_INET6 : AF_INET, .prefixlen = v6 ? 128 : 32,
			      .expires_ns = expires };

	memcpy(b.addr, a, v6 ? 16 : 4);
	assert_int_equal(add ? wxdp_ban_add(f->x, &b) : wxdp_ban_del(f->x, &b), 0);
}

static uint64_t exact_drops(struct fx *f, int v6, const uint8_t *a)
{
	struct wxdp_ban b = { .family = v6 ? AF_INET6 : AF_INET, .prefixlen = v6 ? 128 : 32 };

	memcpy(b.addr, a, v6 ? 16 : 4);
	assert_int_equal(wxdp_ban_get(f->x, &b), 0);
	return b.drops;
}

static int run_from(struct fx *f, int v6, const uint8_t *a)
{
	struct tpkt t;

	dht_pkt(&t, v6);
	memcpy(t.src, a, v6 ? 16 : 4);
	return run_t(f, &t);
}

/* Does a's slot name a (a ban's slot: check nonzero)? */
static int bani_names(struct fx *f, int v6, const uint8_t *a)
{
	uint32_t i = bani_slot_of(v6, a);
	union {
		struct wxdp_bani4 s4;
		struct wxdp_bani6 s6;
	} s;

	assert_int_equal(bpf_map_lookup_elem(wxdp_fd(f->x, v6 ? WXDP_FD_BANI6 : WXDP_FD_BANI4), &i,
					     &s),
			 0);
	if (v6)
		return s.s6.check != 0 && !memcmp(s.s6.addr, a, 16);
	return s.s4.check != 0 && !memcmp(s.s4.addr, a, 4);
}

static int bani_bit(struct fx *f, int v6, const uint8_t *a)
{
	uint32_t i = bani_slot_of(v6, a), w = (v6 ? WXDP_BANI_WORDS : 0) + i / 64;
	uint64_t bits;

	assert_int_equal(bpf_map_lookup_elem(wxdp_fd(f->x, WXDP_FD_BANC), &w, &bits), 0);
	return (int)((bits >> (i % 64)) & 1);
}

/*
 * The index in front of the exact hashes, both families: a ban is seen by
 * the first packet after the add returns, an unban by the first after the
 * delete; a second ban in a taken slot lives in the hash behind its
 * collision bit (dropped, counted); an unbanned address that shares the
 * slot is looked up in the hash and passes; gc's rebuild moves the hash-
 * only ban into the freed slot and clears the bit; a slot whose check does
 * not match (a torn read) is not trusted; an expired slot ban stops
 * dropping at its expiry.
 */
static void test_ban_index(void **state)
{
	struct fx *f = *state;

	NEED_ROOT();
	for (int v6 = 0; v6 < 2; v6++) {
		uint8_t a[16] = { 198, 51, 100, 7 }, b[16], c[16];

		if (v6) {
			static const uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 0,
							0, 0, 0, 0, 0, 0, 0, 7 };

			memcpy(a, a6, 16);
		}
		bani_collider(v6, a, b, 0);
		bani_collider(v6, a, c, 1);
		set_now(f, T0);
		assert_int_equal(run_from(f, v6, a), WXDP_STAT_PASS_NO_SOCKET);

		/* Visible at once, counted in its slot. */
		ban_exact(f, v6, a, 0, 1);
		assert_true(bani_names(f, v6, a));
		assert_int_equal(bani_bit(f, v6, a), 0);
		assert_int_equal(run_from(f, v6, a), WXDP_STAT_DROP_BANNED);
		assert_int_equal(exact_drops(f, v6, a), 1);

		/* A collision: b in the hash behind the bit, a keeps its slot. */
		ban_exact(f, v6, b, 0, 1);
		assert_true(bani_names(f, v6, a));
		assert_int_equal(bani_bit(f, v6, b), 1);
		assert_int_equal(run_from(f, v6, b), WXDP_STAT_DROP_BANNED);
		assert_int_equal(exact_drops(f, v6, b), 1);
		assert_int_equal(run_from(f, v6, a), WXDP_STAT_DROP_BANNED);
		assert_int_equal(exact_drops(f, v6, a), 2);
		assert_int_equal(run_from(f, v6, c), WXDP_STAT_PASS_NO_SOCKET);

		/* Unban takes effect at once; b still found through the hash. */
		ban_exact(f, v6, a, 0, 0);
		assert_false(bani_names(f, v6, a));
		assert_int_equal(run_from(f, v6, a), WXDP_STAT_PASS_NO_SOCKET);
		assert_int_equal(run_from(f, v6, b), WXDP_STAT_DROP_BANNED);
		assert_int_equal(exact_drops(f, v6, b), 2);

		/* gc's rebuild: b takes the free slot, the bit goes, the
		 * counts add up (hash 2 + slot 1). */
		assert_int_equal(wxdp_ban_gc(f->x, T0), 0);
		assert_true(bani_names(f, v6, b));
		assert_int_equal(bani_bit(f, v6, b), 0);
		assert_int_equal(run_from(f, v6, b), WXDP_STAT_DROP_BANNED);
		assert_int_equal(exact_drops(f, v6, b), 3);
		assert_int_equal(run_from(f, v6, c), WXDP_STAT_PASS_NO_SOCKET);

		/* A slot whose check does not match its fields is not trusted:
		 * naming c (not banned), the hash says pass; naming b (banned),
		 * the hash says drop. */
		{
			int fd = wxdp_fd(f->x, v6 ? WXDP_FD_BANI6 : WXDP_FD_BANI4);
			uint32_t i = bani_slot_of(v6, a);
			union {
				struct wxdp_bani4 s4;
				struct wxdp_bani6 s6;
			} s, keep;

			assert_int_equal(bpf_map_lookup_elem(fd, &i, &keep), 0);
			s = keep;
			if (v6) {
				memcpy(s.s6.addr, c, 16);
				s.s6.expires_ns = 0;
				s.s6.check ^= 2;
			} else {
				memcpy(s.s4.addr, c, 4);
				s.s4.expires_ns = 0;
				s.s4.check ^= 2;
			}
			assert_int_equal(bpf_map_update_elem(fd, &i, &s, 0), 0);
			assert_int_equal(run_from(f, v6, c), WXDP_STAT_PASS_NO_SOCKET);
			s = keep;
			if (v6)
				s.s6.check ^= 2;
			else
				s.s4.check ^= 2;
			assert_int_equal(bpf_map_update_elem(fd, &i, &s, 0), 0);
			assert_int_equal(run_from(f, v6, b), WXDP_STAT_DROP_BANNED);
			assert_int_equal(bpf_map_update_elem(fd, &i, &keep, 0), 0);
		}
		ban_exact(f, v6, b, 0, 0);
		assert_int_equal(run_from(f, v6, b), WXDP_STAT_PASS_NO_SOCKET);

		/* Expiry in the slot: dropped until it, passed from it; gc
		 * then empties the slot. */
		ban_exact(f, v6, a, T0 + MS, 1);
		assert_true(bani_names(f, v6, a));
		assert_int_equal(run_from(f, v6, a), WXDP_STAT_DROP_BANNED);
		set_now(f, T0 + MS);
		assert_int_equal(run_from(f, v6, a), WXDP_STAT_PASS_NO_SOCKET);
		assert_int_equal(wxdp_ban_gc(f->x, T0 + MS), 1);
		assert_false(bani_names(f, v6, a));
	}
}

static void test_token_bucket(void **state)
{
	struct fx *f = *state;
	struct tpkt t, ti;
	uint64_t now = T0;

	NEED_ROOT();
	f->cfg.dht = (struct wxdp_rate){ .pps = 10, .burst = 5 };
	f->cfg.quic_initial = (struct wxdp_rate){ .pps = 1, .burst = 2 };
	f->cfg.quic = (struct wxdp_rate){ .pps = 0, .burst = 0 }; /* unlimited */
	set_cfg(f);
	dht_pkt(&t, 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_RATE_DHT);
	/* 99.999 ms: not yet a token. 100 ms: exactly one. */
	set_now(f, now += 100 * MS - 1);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_RATE_DHT);
	set_now(f, now += 1);
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_RATE_DHT);
	/* A long pause refills to the burst, not beyond. */
	set_now(f, now += 3600 * 1000 * MS);
	for (int i = 0; i < 5; i++)
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_RATE_DHT);
	/* Other sources have their own bucket. */
	t.src[3] = 9;
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	/* Initials: own stricter bucket; short headers unaffected. */
	quic_pkt(&ti, 0);
	ti.payload = quic_initial;
	ti.plen = sizeof(quic_initial);
	assert_int_equal(run_t(f, &ti), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_t(f, &ti), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_t(f, &ti), WXDP_STAT_DROP_RATE_INITIAL);
	/* A small Initial is an Initial too: same bucket, no free pass. */
	ti.plen = 60;
	assert_int_equal(run_t(f, &ti), WXDP_STAT_DROP_RATE_INITIAL);
	quic_pkt(&t, 0);
	for (int i = 0; i < 50; i++)
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	/* Run-time change: limit QUIC to burst 1 without reloading. */
	f->cfg.quic = (struct wxdp_rate){ .pps = 1, .burst = 1 };
	set_cfg(f);
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_RATE_QUIC);
	/* IPv6: bucketed by /64 by default, by /128 when configured. */
	dht_pkt(&t, 1);
	for (int i = 0; i < 5; i++) {
		t.src[15] = (uint8_t)(10 + i); /* five addresses, one /64 */
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	}
	t.src[15] = 99;
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_RATE_DHT);
	t.src[7] = 2; /* next /64 */
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	f->cfg.v6_prefix = 128;
	set_cfg(f);
	t.src[7] = 1;
	t.src[15] = 100;
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	/* Ports change at run time too. */
	f->cfg.dht_ports[0] = 6882;
	set_cfg(f);
	dht_pkt(&t, 0);
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NOT_WEFT);
	t.dport = 6882;
	t.src[3] = 50;
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
}

static void valid_set(struct fx *f, const struct tpkt *t, uint64_t expires)
{
	struct wxdp_src_key k;

	if (t->v6)
		wxdp_src_key_v6(&k, t->src, f->cfg.v6_prefix);
	else
		wxdp_src_key_v4(&k, t->src);
	assert_int_equal(wxdp_valid_set(f->x, &k, expires), 0);
}

/* Global budget of unvalidated sources: many sources, each under its own
 * limit, share one budget per class; validated sources skip it but keep
 * their per-source bucket. */
static void test_unvalidated_budget(void **state)
{
	struct fx *f = *state;
	struct tpkt t, v, ti;
	uint64_t now = T0;

	NEED_ROOT();
	f->cfg.dht = (struct wxdp_rate){ .pps = 100, .burst = 3 };
	f->cfg.unval_dht = (struct wxdp_rate){ .pps = 10, .burst = 5 };
	f->cfg.unval_quic = (struct wxdp_rate){ .pps = 0, .burst = 0 };
	f->cfg.unval_initial = (struct wxdp_rate){ .pps = 1, .burst = 2 };
	set_cfg(f);
	dht_pkt(&t, 0);
	for (int i = 0; i < 5; i++) {
		t.src[3] = (uint8_t)(10 + i); /* five sources, one packet each */
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	}
	t.src[3] = 20;
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_UNVAL_DHT);
	/* An empty budget drops before a per-source bucket is made: a
	 * many-source flood beyond the budget costs no LRU insert per
	 * packet (that insert made the program slower than the sender,
	 * docs/XDP.md). */
	{
		struct tpkt u = t;
		size_t n0 = 0, n1 = 0;

		assert_int_equal(wxdp_bucket_count(f->x, &n0), 0);
		for (int i = 0; i < 50; i++) {
			u.src[2] = 77;
			u.src[3] = (uint8_t)i;
			assert_int_equal(run_t(f, &u), WXDP_STAT_DROP_UNVAL_DHT);
		}
		assert_int_equal(wxdp_bucket_count(f->x, &n1), 0);
		assert_int_equal(n1, n0);
	}
	/* A validated source skips the spent budget ... */
	dht_pkt(&v, 0);
	v.src[3] = 99;
	valid_set(f, &v, now + 1000 * MS);
	for (int i = 0; i < 3; i++)
		assert_int_equal(run_t(f, &v), WXDP_STAT_PASS_NO_SOCKET);
	/* ... but not its own bucket (burst 3). */
	assert_int_equal(run_t(f, &v), WXDP_STAT_DROP_RATE_DHT);
	/* Per-source first: a loud unvalidated source is cut by its bucket
	 * and does not spend the budget for others. */
	set_now(f, now += 100 * MS); /* one budget token back, 10 bucket tokens */
	t.src[3] = 21;
	for (int i = 0; i < 3; i++)
		assert_int_equal(run_t(f, &t), i ? WXDP_STAT_DROP_UNVAL_DHT : WXDP_STAT_PASS_NO_SOCKET);
	/* Validation expires: the source pays the budget again. */
	set_now(f, now = T0 + 1000 * MS);
	for (int i = 0; i < 5; i++) {
		t.src[3] = (uint8_t)(30 + i);
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	}
	assert_int_equal(run_t(f, &v), WXDP_STAT_DROP_UNVAL_DHT);
	/* Other classes have their own budgets: QUIC has none here, Initials
	 * a burst of 2 whatever the source. */
	quic_pkt(&t, 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	quic_pkt(&ti, 0);
	ti.payload = quic_initial;
	ti.plen = sizeof(quic_initial);
	for (int i = 0; i < 3; i++) {
		ti.src[3] = (uint8_t)(40 + i);
		assert_int_equal(run_t(f, &ti),
				 i < 2 ? WXDP_STAT_PASS_NO_SOCKET : WXDP_STAT_DROP_UNVAL_INITIAL);
	}
	/* IPv6: validated by /64, like the buckets. */
	dht_pkt(&v, 1);
	valid_set(f, &v, now + 1000 * MS);
	v.src[15] = 77; /* same /64 */
	assert_int_equal(run_t(f, &v), WXDP_STAT_PASS_NO_SOCKET);
	v.src[7] = 5; /* another /64 */
	assert_int_equal(run_t(f, &v), WXDP_STAT_DROP_UNVAL_DHT);
	/* Budget off ("priority off"): everyone passes. */
	f->cfg.unval_dht.pps = 0;
	set_cfg(f);
	assert_int_equal(run_t(f, &v), WXDP_STAT_PASS_NO_SOCKET);
	/* The mirror can be emptied. */
	{
		struct wxdp_src_key k;

		wxdp_src_key_v4(&k, (const uint8_t[4]){ 192, 0, 2, 99 });
		assert_int_equal(wxdp_valid_del(f->x, &k), 0);
		assert_int_equal(wxdp_valid_del(f->x, &k), -ENOENT);
	}
}

/* The per-CPU validated-source cache (xdp_abi.h struct wxdp_vlc_slot) says
 * what the map says: a validation counts at once, ends at its expiry, a
 * refresh counts at once, a deletion counts within a tick. */
static void test_valid_cache(void **state)
{
	struct fx *f = *state;
	struct tpkt t, v;
	uint64_t now = T0;

	NEED_ROOT();
	f->cfg.dht = (struct wxdp_rate){ .pps = 0, .burst = 0 };
	f->cfg.unval_dht = (struct wxdp_rate){ .pps = 1, .burst = 1 };
	set_cfg(f);
	dht_pkt(&t, 0);
	t.src[3] = 10;
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET); /* the budget's token */
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_UNVAL_DHT);
	dht_pkt(&v, 0);
	v.src[3] = 11;
	valid_set(f, &v, now + 1000 * MS);
	for (int i = 0; i < 20; i++) /* the first fills the slot, the next hit it */
		assert_int_equal(run_t(f, &v), WXDP_STAT_PASS_NO_SOCKET);
	/* A validation is seen at once: a miss is not cached. */
	valid_set(f, &t, now + 1000 * MS);
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	/* The cached expiry is checked: expired, the source pays the budget
	 * again (one token back in the second that passed) ... */
	set_now(f, now += 1000 * MS);
	assert_int_equal(run_t(f, &v), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_t(f, &v), WXDP_STAT_DROP_UNVAL_DHT);
	/* ... and a refresh counts at once (the expired slot asks the map). */
	valid_set(f, &v, now + 1000 * MS);
	assert_int_equal(run_t(f, &v), WXDP_STAT_PASS_NO_SOCKET);
	/* A deletion counts within a tick (a slot answers only in the tick
	 * it was filled in; 30 ms is three ticks at HZ 100). */
	{
		struct wxdp_src_key k;

		wxdp_src_key_v4(&k, v.src);
		assert_int_equal(wxdp_valid_del(f->x, &k), 0);
		usleep(30000);
		assert_int_equal(run_t(f, &v), WXDP_STAT_DROP_UNVAL_DHT);
	}
	/* Another source in the same slot is not taken for the cached one. */
	{
		struct wxdp_src_key kt, ku;
		struct tpkt u = t;

		wxdp_src_key_v4(&kt, t.src);
		for (int i = 0; i < 65536; i++) {
			u.src[2] = (uint8_t)(i >> 8);
			u.src[3] = (uint8_t)i;
			wxdp_src_key_v4(&ku, u.src);
			if (wxdp_rlc_slot(&ku) == wxdp_rlc_slot(&kt) && memcmp(&ku, &kt, sizeof(ku)))
				break;
		}
		assert_int_equal(wxdp_rlc_slot(&ku), wxdp_rlc_slot(&kt));
		valid_set(f, &t, now + 1000 * MS);
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET); /* fills the slot */
		assert_int_equal(run_t(f, &u), WXDP_STAT_DROP_UNVAL_DHT);
	}
}

/* The same cache on the program's own clock (no test hook): a slot hit
 * answers without reading the clock, which reads the same all tick long
 * (bpf/weft_xdp.bpf.c src_validated). A validation is still seen at once,
 * and one that expires stops counting within a tick of its expiry: the
 * slot of an earlier tick asks the map again, which checks the expiry. */
static void test_valid_cache_clock(void **state)
{
	struct fx *f = *state;
	struct timespec ts;
	struct tpkt t;
	uint64_t mono;

	NEED_ROOT();
	f->cfg.dht = (struct wxdp_rate){ .pps = 0, .burst = 0 };
	f->cfg.unval_dht = (struct wxdp_rate){ .pps = 1, .burst = 1 };
	f->cfg.now_override_ns = 0;
	set_cfg(f);
	dht_pkt(&t, 0);
	t.src[3] = 12;
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET); /* the budget's token */
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_UNVAL_DHT);
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	mono = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	/* Live for 200 ms: seen at once, then every packet hits the slot. */
	valid_set(f, &t, mono + 200 * MS);
	for (int i = 0; i < 50; i++)
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	/* 300 ms on (tens of ticks at any HZ): expired, the source pays the
	 * budget again, whose token has not come back (1 a second). */
	usleep(300000);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_UNVAL_DHT);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_UNVAL_DHT);
}

/* A validated source's QUIC packets (not its Initials) take quic_valid in
 * place of quic, with the QUIC budget on and off (the validation looked
 * up for the rate alone then); an unvalidated source keeps quic. The
 * software policer's twin: test_xdp_policer test_policer_quic_validated. */
static void test_quic_validated(void **state)
{
	struct fx *f = *state;
	struct tpkt t, v, vi;

	NEED_ROOT();
	for (int budget = 1; budget >= 0; budget--) {
		f->cfg.quic = (struct wxdp_rate){ .pps = 1, .burst = 2 };
		f->cfg.quic_valid = (struct wxdp_rate){ .pps = 1, .burst = 5 };
		f->cfg.quic_initial = (struct wxdp_rate){ .pps = 1, .burst = 1 };
		f->cfg.unval_quic =
		    budget ? (struct wxdp_rate){ .pps = 100, .burst = 100 } : (struct wxdp_rate){ 0 };
		set_cfg(f);
		quic_pkt(&t, 0);
		t.src[3] = (uint8_t)(20 + budget); /* fresh buckets each round */
		quic_pkt(&v, 0);
		v.src[3] = (uint8_t)(30 + budget);
		valid_set(f, &v, T0 + 3600000 * MS);
		for (int i = 0; i < 2; i++)
			assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
		assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_RATE_QUIC);
		for (int i = 0; i < 5; i++)
			assert_int_equal(run_t(f, &v), WXDP_STAT_PASS_NO_SOCKET);
		assert_int_equal(run_t(f, &v), WXDP_STAT_DROP_RATE_QUIC);
		vi = v;
		vi.payload = quic_initial;
		vi.plen = sizeof(quic_initial);
		assert_int_equal(run_t(f, &vi), WXDP_STAT_PASS_NO_SOCKET);
		assert_int_equal(run_t(f, &vi), WXDP_STAT_DROP_RATE_INITIAL);
	}
}

/* The guard in xdp mode mirrors validated sources into the program's map
 * and keeps operator bans through a flood of automatic ones. */
static void test_guard_xdp(void **state)
{
	struct fx *f = *state;
	struct guard_opts go = { 0 };
	struct guard *g = NULL;
	struct wxdp_ban b, *list;
	struct tpkt t;
	size_t n;
	int ops = 0;

	NEED_ROOT(); /* no fixture (f is NULL) when not root */
	go.xdp = f->x;
	assert_int_equal(guard_new(&g, &go), 0);
	f->cfg.unval_dht = (struct wxdp_rate){ .pps = 1, .burst = 1 };
	assert_int_equal(guard_config_set(g, &f->cfg), 0);
	dht_pkt(&t, 0);
	t.src[3] = 50;
	assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_UNVAL_DHT);
	assert_int_equal(guard_validated_add(g, AF_INET, t.src, GUARD_EV_REPLY), 0);
	assert_true(guard_validated(g, AF_INET, t.src));
	/* The map's expiry is CLOCK_MONOTONIC + 30 min; the test clock (1000
	 * s) is before it. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	/* Operator ban, then 2x the automatic quota of automatic bans. */
	assert_int_equal(wxdp_cidr_parse("192.0.2.0/24", &b), 0);
	b.kind = WXDP_BAN_OPERATOR;
	assert_int_equal(guard_ban_add(g, &b), 0);
	for (unsigned int i = 0; i < 2 * GUARD_MAX_AUTO_BANS; i++) {
		uint8_t a[4] = { 10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };

		assert_int_equal(guard_ban_addr(g, AF_INET, a, 600), 0);
	}
	assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_BANNED);
	list = calloc(GUARD_MAX_BANS, sizeof(*list));
	assert_non_null(list);
	assert_int_equal(guard_ban_list(g, list, GUARD_MAX_BANS, &n), 0);
	assert_int_equal(n, GUARD_MAX_AUTO_BANS + 1);
	for (size_t i = 0; i < n; i++)
		if (list[i].kind == WXDP_BAN_OPERATOR) {
			ops++;
			assert_int_equal(list[i].prefixlen, 24);
			assert_int_equal(list[i].drops, 1);
		}
	assert_int_equal(ops, 1);
	/* The trie holds exactly what the guard holds. */
	assert_int_equal(wxdp_ban_list(f->x, NULL, 0, &n), 0);
	assert_int_equal(n, GUARD_MAX_AUTO_BANS + 1);
	free(list);
	guard_free(g);
}

static size_t lru_entries(struct fx *f)
{
	struct wxdp_src_key k, next;
	int fd = wxdp_fd(f->x, WXDP_FD_BUCKETS);
	size_t n = 0;

	while (!bpf_map_get_next_key(fd, n ? &k : NULL, &next)) {
		k = next;
		n++;
	}
	return n;
}

/* Does some CPU's bucket slot of IPv4 source a hold a's buckets? */
static int rlc_holds(struct fx *f, const uint8_t *a)
{
	struct wxdp_src_key k;
	struct wxdp_rlc_slot *v;
	uint32_t i;
	int ncpu = libbpf_num_possible_cpus(), hit = 0;

	wxdp_src_key_v4(&k, a);
	i = wxdp_rlc_slot(&k);
	assert_true(ncpu > 0);
	v = calloc((size_t)ncpu, sizeof(*v));
	assert_non_null(v);
	assert_int_equal(bpf_map_lookup_elem(wxdp_fd(f->x, WXDP_FD_RLC), &i, v), 0);
	for (int c = 0; c < ncpu; c++)
		hit |= !memcmp(&v[c].key, &k, sizeof(k));
	free(v);
	return hit;
}

/* An IPv4 source after a whose bucket slot is a's. */
static void rlc_collider(const uint8_t *a, uint8_t *out)
{
	struct wxdp_src_key ka, kb;

	wxdp_src_key_v4(&ka, a);
	for (uint32_t i = 1; i < (1U << 24); i++) {
		memcpy(out, a, 4);
		out[1] = (uint8_t)(a[1] + (i >> 16));
		out[2] = (uint8_t)(a[2] + (i >> 8));
		out[3] = (uint8_t)(a[3] + i);
		wxdp_src_key_v4(&kb, out);
		if (memcmp(out, a, 4) && wxdp_rlc_slot(&kb) == wxdp_rlc_slot(&ka))
			return;
	}
	fail_msg("no colliding source");
}

/*
 * The per-CPU bucket slots (xdp_abi.h struct wxdp_rlc_slot): a drained
 * source keeps its slot against a colliding source, which is limited
 * through the LRU instead (a collision never refills anyone); once the
 * holder is full again the slot changes hands, and the former holder,
 * back in the LRU, starts from a full bucket and is cut at its burst.
 */
static void test_bucket_slots(void **state)
{
	struct fx *f = *state;
	const uint8_t a[4] = { 203, 0, 113, 5 };
	uint8_t b[4];
	uint64_t now = T0;

	NEED_ROOT();
	f->cfg.unval_dht.pps = 0; /* this test is about the per-source buckets */
	f->cfg.dht = (struct wxdp_rate){ .pps = 10, .burst = 3 };
	set_cfg(f);
	rlc_collider(a, b);
	for (int i = 0; i < 3; i++)
		assert_int_equal(run_from(f, 0, a), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_from(f, 0, a), WXDP_STAT_DROP_RATE_DHT);
	assert_true(rlc_holds(f, a));
	assert_int_equal(lru_entries(f), 0);
	/* b collides: a is drained, so b goes to the LRU with its own
	 * bucket, and a stays drained. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(run_from(f, 0, b), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_from(f, 0, b), WXDP_STAT_DROP_RATE_DHT);
	assert_true(rlc_holds(f, a));
	assert_false(rlc_holds(f, b));
	assert_int_equal(lru_entries(f), 1);
	assert_int_equal(run_from(f, 0, a), WXDP_STAT_DROP_RATE_DHT);
	/* 299.999 ms: a not yet full, b stays in the LRU (one token each). */
	set_now(f, now += 300 * MS - 1);
	assert_int_equal(run_from(f, 0, b), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_from(f, 0, b), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_from(f, 0, b), WXDP_STAT_DROP_RATE_DHT);
	assert_true(rlc_holds(f, a));
	/* 300 ms: a is full again (3 tokens). b takes the slot with its
	 * LRU state: the 1 ns since made its one token whole, and no more
	 * (a new bucket would hold 3). */
	set_now(f, now += 1);
	assert_int_equal(run_from(f, 0, b), WXDP_STAT_PASS_NO_SOCKET);
	assert_true(rlc_holds(f, b));
	assert_int_equal(run_from(f, 0, b), WXDP_STAT_DROP_RATE_DHT);
	/* a, back in the LRU: a full bucket (what it had), cut at 3. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(run_from(f, 0, a), WXDP_STAT_PASS_NO_SOCKET);
	assert_int_equal(run_from(f, 0, a), WXDP_STAT_DROP_RATE_DHT);
	assert_true(rlc_holds(f, b));
	assert_int_equal(lru_entries(f), 2);
}

static void test_lru_bounded(void **state)
{
	struct fx *f = *state;
	struct tpkt t;
	size_t n = 0;

	NEED_ROOT();
	f->cfg.unval_dht.pps = 0; /* this test is about the per-source LRU */
	set_cfg(f);
	dht_pkt(&t, 0);
	for (int i = 0; i < 2000; i++) {
		t.src[1] = (uint8_t)(i >> 8);
		t.src[2] = (uint8_t)i;
		/* Every new source starts with a full bucket. */
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
	}
	/* The LRU stays within its 128 entries; the per-CPU slots (this
	 * test runs pinned to one CPU) within theirs. */
	assert_true(lru_entries(f) <= 128);
	assert_int_equal(wxdp_bucket_count(f->x, &n), 0);
	assert_true(n > 0);
	assert_true(n <= 128 + WXDP_RLC_SLOTS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bans_nested, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ban_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ban_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_bucket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unvalidated_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_valid_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_valid_cache_clock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quic_validated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guard_xdp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bucket_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lru_bounded, setup_small_lru, teardown),
	};

	return cmocka_run_group_tests_name("xdp_policy", tests, NULL, NULL);
}
