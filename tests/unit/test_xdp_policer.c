// SPDX-License-Identifier: MIT
/*
 * Software policer: its own behaviour (bans with LPM + expiry semantics,
 * buckets, bounded table), and equivalence with the XDP program: a seeded
 * random corpus of packets, bans and clock steps is fed to both, and every
 * verdict must be identical. The BPF half needs root and is skipped
 * otherwise.
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "weft/guard.h"
#include "weft/io.h"
#include "weft/policer.h"
#include "weft/store.h"
#include "weft/xdp.h"
#include "weft/xdp_abi.h"
#include "weft/xdp_policy.h"
#include "xdp_testpkt.h"

#define T0 1000000000000ULL
#define MS 1000000ULL

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

static struct policer *mk(const struct wxdp_config *c, uint32_t buckets)
{
	struct policer_opts o = { .config = c, .buckets = buckets, .seed = 42 };
	struct policer *p = NULL;

	assert_int_equal(policer_new(&p, &o), 0);
	return p;
}

static unsigned int chk(struct policer *p, int fam, const uint8_t *src, uint16_t port,
			const char *payload, size_t len, uint64_t now)
{
	struct policer_pkt k = { .family = (uint8_t)fam, .dport = port,
				 .payload = (const uint8_t *)payload, .len = len, .now_ns = now };

	memcpy(k.src, src, fam == AF_INET ? 4 : 16);
	return policer_check(p, &k);
}

static void pban(struct policer *p, const char *cidr, uint64_t exp)
{
	struct wxdp_ban b;

	assert_int_equal(wxdp_cidr_parse(cidr, &b), 0);
	b.expires_ns = exp;
	assert_int_equal(policer_ban_add(p, &b), 0);
}

static void test_policer_basic(void **state)
{
	static const uint8_t a4[4] = { 192, 0, 2, 1 }, b4[4] = { 198, 51, 100, 7 };
	static const uint8_t a9[4] = { 192, 0, 2, 9 };
	uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, [15] = 1 };
	struct wxdp_config c;
	struct policer *p;
	struct wxdp_ban b;
	uint64_t st[WXDP_STAT__MAX];

	(void)state;
	wxdp_config_default(&c);
	c.dht = (struct wxdp_rate){ .pps = 10, .burst = 2 };
	p = mk(&c, 0);
	assert_int_equal(chk(p, AF_INET, a4, 53, "x", 1, T0), WXDP_STAT_PASS_NOT_WEFT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "x", 1, T0), WXDP_STAT_DROP_DHT_NOT_DICT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "", 0, T0), WXDP_STAT_DROP_SHORT);
	assert_int_equal(chk(p, AF_INET, a4, 4433, "\x01", 1, T0), WXDP_STAT_DROP_QUIC_FIXED);
	/* A small Initial is accepted (the endpoint applies the 1200-byte
	 * rule) and pays the Initial bucket. */
	assert_int_equal(chk(p, AF_INET, a4, 4433, "\xc0\x00\x00\x00\x01", 5, T0),
			 WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0), WXDP_STAT_DROP_RATE_DHT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0 + 100 * MS), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, b4, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	/* Bans: nested, expiry falls back to the shorter prefix. */
	pban(p, "192.0.2.9", T0 + MS);
	pban(p, "192.0.2.0/24", T0 + 2 * MS);
	pban(p, "2001:db8::/32", 0);
	assert_int_equal(chk(p, AF_INET, a9, 6881, "de", 2, T0), WXDP_STAT_DROP_BANNED);
	assert_int_equal(chk(p, AF_INET, a9, 6881, "de", 2, T0 + MS), WXDP_STAT_DROP_BANNED);
	assert_int_equal(chk(p, AF_INET, a9, 6881, "de", 2, T0 + 2 * MS), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET6, a6, 6881, "de", 2, T0), WXDP_STAT_DROP_BANNED);
	assert_int_equal(policer_ban_gc(p, T0 + 2 * MS), 2);
	assert_int_equal(wxdp_cidr_parse("2001:db8::/32", &b), 0);
	assert_int_equal(policer_ban_del(p, &b), 0);
	assert_int_equal(policer_ban_del(p, &b), -ENOENT);
	assert_int_equal(chk(p, AF_INET6, a6, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	policer_stats(p, st);
	assert_int_equal(st[WXDP_STAT_RX], 15);
	assert_int_equal(st[WXDP_STAT_DROP_SHORT], 1);
	assert_int_equal(st[WXDP_STAT_DROP_BANNED], 3);
	/* Bad config refused. */
	c.v6_prefix = 0;
	assert_int_equal(policer_config_set(p, &c), -EINVAL);
	policer_free(p);
	policer_free(NULL);
}

static int train_valid_calls, train_valid_answer;

static int train_valid(void *arg, const struct wxdp_src_key *k, uint64_t now)
{
	(void)arg;
	(void)k;
	(void)now;
	train_valid_calls++;
	return train_valid_answer;
}

/* A GRO train (datagrams of one source in one pass, one now): each pays
 * its own token, as one at a time would; the validation is asked once
 * for the train and again for a new pass, another source in between, or
 * a config change; a ban added within the train stops the next datagram. */
static void test_policer_train(void **state)
{
	static const uint8_t a4[4] = { 192, 0, 2, 1 }, b4[4] = { 198, 51, 100, 7 };
	struct policer_opts o = { .seed = 42, .valid = train_valid };
	struct wxdp_config c;
	struct policer *p = NULL;
	uint64_t st[WXDP_STAT__MAX];

	(void)state;
	wxdp_config_default(&c);
	c.dht = (struct wxdp_rate){ .pps = 10, .burst = 3 };
	c.unval_dht = (struct wxdp_rate){ .pps = 1000, .burst = 1000 };
	o.config = &c;
	assert_int_equal(policer_new(&p, &o), 0);
	train_valid_calls = 0;
	train_valid_answer = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0), WXDP_STAT_DROP_RATE_DHT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0), WXDP_STAT_DROP_RATE_DHT);
	assert_int_equal(train_valid_calls, 1);
	/* the next pass (a new now): asked again; 100 ms is one token */
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0 + 100 * MS), WXDP_STAT_REDIRECT);
	assert_int_equal(train_valid_calls, 2);
	/* another source between two of a's: a is asked again */
	assert_int_equal(chk(p, AF_INET, b4, 6881, "de", 2, T0 + 100 * MS), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0 + 100 * MS), WXDP_STAT_DROP_RATE_DHT);
	assert_int_equal(train_valid_calls, 4);
	/* validated meanwhile: seen from the next pass (or config change) on */
	train_valid_answer = 1;
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0 + 100 * MS), WXDP_STAT_DROP_RATE_DHT);
	assert_int_equal(train_valid_calls, 4);
	c.dht = (struct wxdp_rate){ .pps = 10, .burst = 5 };
	assert_int_equal(policer_config_set(p, &c), 0);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0 + 100 * MS), WXDP_STAT_DROP_RATE_DHT);
	assert_int_equal(train_valid_calls, 5);
	/* a ban within a train: the next datagram is dropped */
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0 + 300 * MS), WXDP_STAT_REDIRECT);
	pban(p, "192.0.2.1", 0);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0 + 300 * MS), WXDP_STAT_DROP_BANNED);
	policer_stats(p, st);
	assert_int_equal(st[WXDP_STAT_RX], 12);
	assert_int_equal(st[WXDP_STAT_REDIRECT], 6);
	assert_int_equal(st[WXDP_STAT_DROP_RATE_DHT], 5);
	assert_int_equal(st[WXDP_STAT_DROP_BANNED], 1);
	policer_free(p);
}

/* STUN on the QUIC port: recognised by its top bits and magic cookie,
 * classed on its own per-source bucket and unvalidated budget; anything
 * else without the QUIC fixed bit stays malformed. rx == sum of verdicts. */
static void test_policer_stun(void **state)
{
	static const uint8_t a4[4] = { 192, 0, 2, 1 }, b4[4] = { 198, 51, 100, 7 };
	static const char req[20] = "\x00\x01\x00\x00\x21\x12\xa4\x42" "abcdefghijkl";
	static const char nocookie[20] = "\x00\x01\x00\x00\x21\x12\xa4\x43" "abcdefghijkl";
	uint64_t st[WXDP_STAT__MAX], sum = 0;
	struct wxdp_config c;
	struct policer *p;

	(void)state;
	wxdp_config_default(&c);
	assert_int_equal(c.stun.pps, WXDP_DEFAULT_STUN_PPS);
	c.stun = (struct wxdp_rate){ .pps = 10, .burst = 2 };
	c.unval_stun = (struct wxdp_rate){ .pps = 10, .burst = 3 };
	p = mk(&c, 0);
	assert_int_equal(chk(p, AF_INET, a4, 4433, req, 20, T0), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, a4, 4433, req, 20, T0), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, a4, 4433, req, 20, T0), WXDP_STAT_DROP_RATE_STUN);
	/* QUIC from the same source is not charged by STUN. */
	assert_int_equal(chk(p, AF_INET, a4, 4433, "\x40\x00", 2, T0), WXDP_STAT_REDIRECT);
	/* Another source: its own bucket, the global budget (3) is spent. */
	assert_int_equal(chk(p, AF_INET, b4, 4433, req, 20, T0), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, b4, 4433, req, 20, T0), WXDP_STAT_DROP_UNVAL_STUN);
	/* Not STUN: no cookie, shorter than a header, on the DHT port. */
	assert_int_equal(chk(p, AF_INET, b4, 4433, nocookie, 20, T0), WXDP_STAT_DROP_QUIC_FIXED);
	assert_int_equal(chk(p, AF_INET, b4, 4433, req, 19, T0), WXDP_STAT_DROP_QUIC_FIXED);
	assert_int_equal(chk(p, AF_INET, b4, 6881, req, 20, T0), WXDP_STAT_DROP_DHT_NOT_DICT);
	policer_stats(p, st);
	for (int i = 1; i < WXDP_STAT__MAX; i++)
		sum += st[i];
	assert_int_equal(st[WXDP_STAT_RX], 9);
	assert_int_equal(sum, st[WXDP_STAT_RX]);
	assert_int_equal(st[WXDP_STAT_DROP_RATE_STUN], 1);
	assert_int_equal(st[WXDP_STAT_DROP_UNVAL_STUN], 1);
	policer_free(p);
}

static int valid_b4(void *arg, const struct wxdp_src_key *k, uint64_t now)
{
	struct wxdp_src_key b;

	(void)arg;
	(void)now;
	wxdp_src_key_v4(&b, (const uint8_t[4]){ 198, 51, 100, 7 });
	return !memcmp(&b, k, sizeof(b));
}

/* A validated source's QUIC packets (not its Initials) take quic_valid in
 * place of quic, whether or not the QUIC class has an unvalidated budget
 * (its validation is looked up for the rate alone then); an unvalidated
 * source keeps quic. */
static void test_policer_quic_validated(void **state)
{
	static const uint8_t a4[4] = { 192, 0, 2, 1 }, b4[4] = { 198, 51, 100, 7 };
	static uint8_t initial[1200] = { 0xc3, 0, 0, 0, 1 };
	uint64_t st[WXDP_STAT__MAX];
	struct wxdp_config c;
	struct policer *p;

	(void)state;
	wxdp_config_default(&c);
	assert_int_equal(c.quic_valid.pps, WXDP_DEFAULT_QUIC_VALID_PPS);
	assert_int_equal(c.quic_valid.burst, WXDP_DEFAULT_QUIC_VALID_BURST);
	assert_true(c.quic_valid.pps > c.quic.pps);
	for (int budget = 1; budget >= 0; budget--) {
		struct policer_opts o = { .config = &c, .seed = 42, .valid = valid_b4 };

		c.quic = (struct wxdp_rate){ .pps = 1, .burst = 2 };
		c.quic_valid = (struct wxdp_rate){ .pps = 1, .burst = 5 };
		c.quic_initial = (struct wxdp_rate){ .pps = 1, .burst = 1 };
		c.unval_quic =
		    budget ? (struct wxdp_rate){ .pps = 100, .burst = 100 } : (struct wxdp_rate){ 0 };
		assert_int_equal(policer_new(&p, &o), 0);
		for (int i = 0; i < 2; i++) {
			assert_int_equal(chk(p, AF_INET, a4, 4433, "\x40\x00", 2, T0),
					 WXDP_STAT_REDIRECT);
		}
		assert_int_equal(chk(p, AF_INET, a4, 4433, "\x40\x00", 2, T0),
				 WXDP_STAT_DROP_RATE_QUIC);
		for (int i = 0; i < 5; i++)
			assert_int_equal(chk(p, AF_INET, b4, 4433, "\x40\x00", 2, T0),
					 WXDP_STAT_REDIRECT);
		assert_int_equal(chk(p, AF_INET, b4, 4433, "\x40\x00", 2, T0),
				 WXDP_STAT_DROP_RATE_QUIC);
		/* its Initials keep the Initial bucket */
		assert_int_equal(
		    chk(p, AF_INET, b4, 4433, (const char *)initial, sizeof(initial), T0),
		    WXDP_STAT_REDIRECT);
		assert_int_equal(
		    chk(p, AF_INET, b4, 4433, (const char *)initial, sizeof(initial), T0),
		    WXDP_STAT_DROP_RATE_INITIAL);
		/* refilled at quic_valid's rate: one packet a second */
		assert_int_equal(chk(p, AF_INET, b4, 4433, "\x40\x00", 2, T0 + 1000 * MS),
				 WXDP_STAT_REDIRECT);
		assert_int_equal(chk(p, AF_INET, b4, 4433, "\x40\x00", 2, T0 + 1000 * MS),
				 WXDP_STAT_DROP_RATE_QUIC);
		policer_stats(p, st);
		assert_int_equal(st[WXDP_STAT_DROP_RATE_QUIC], 3);
		policer_free(p);
	}
	/* The same rates: no lookup needed, the same verdicts. */
	c.quic_valid = c.quic;
	p = mk(&c, 0);
	assert_int_equal(chk(p, AF_INET, b4, 4433, "\x40\x00", 2, T0), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, b4, 4433, "\x40\x00", 2, T0), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, b4, 4433, "\x40\x00", 2, T0), WXDP_STAT_DROP_RATE_QUIC);
	policer_free(p);
}

/* Same nesting bound as the XDP program (test_xdp_policy test_bans_nested). */
static void test_policer_nested(void **state)
{
	static const uint8_t a4[4] = { 192, 0, 2, 1 };
	static const uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	struct policer *p = mk(NULL, 0);
	char cidr[64];

	(void)state;
	for (int v6 = 0; v6 < 2; v6++) {
		int full = v6 ? 128 : 32, fam = v6 ? AF_INET6 : AF_INET;
		const uint8_t *src = v6 ? a6 : a4;

		for (int i = 0; i < WXDP_BAN_MAX_NESTED; i++) {
			snprintf(cidr, sizeof(cidr), v6 ? "2001:db8::1/%d" : "192.0.2.1/%d",
				 full - i);
			pban(p, cidr, T0 - 1);
		}
		snprintf(cidr, sizeof(cidr), v6 ? "2001:db8::1/%d" : "192.0.2.1/%d",
			 full - WXDP_BAN_MAX_NESTED);
		pban(p, cidr, 0);
		assert_int_equal(chk(p, fam, src, 6881, "de", 2, T0), WXDP_STAT_DROP_BANNED);
		pban(p, cidr, T0 - 1);
		snprintf(cidr, sizeof(cidr), v6 ? "2001:db8::1/%d" : "192.0.2.1/%d",
			 full - WXDP_BAN_MAX_NESTED - 1);
		pban(p, cidr, 0);
		assert_int_equal(chk(p, fam, src, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
		assert_int_equal(policer_ban_gc(p, T0), WXDP_BAN_MAX_NESTED + 1);
		assert_int_equal(chk(p, fam, src, 6881, "de", 2, T0), WXDP_STAT_DROP_BANNED);
	}
	policer_free(p);
}

static void test_policer_bounded(void **state)
{
	struct wxdp_config c;
	struct policer *p;
	struct wxdp_ban b;
	uint8_t a4[4] = { 10, 0, 0, 0 };
	char cidr[32];

	(void)state;
	wxdp_config_default(&c);
	c.unval_dht.pps = 0; /* this test is about the per-source table */
	p = mk(&c, 256);
	for (int i = 0; i < 20000; i++) {
		a4[1] = (uint8_t)(i >> 16);
		a4[2] = (uint8_t)(i >> 8);
		a4[3] = (uint8_t)i;
		assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0 + (uint64_t)i),
				 WXDP_STAT_REDIRECT);
	}
	assert_true(policer_bucket_count(p) <= 256);
	assert_true(policer_bucket_count(p) >= 128);
	policer_free(p);

	/* An empty unvalidated budget drops before a per-source entry is
	 * made: a many-source flood beyond the budget adds none (the kernel
	 * program does the same; each entry made per forged source cost the
	 * program more than the sender spent, docs/XDP.md). */
	wxdp_config_default(&c);
	c.unval_dht = (struct wxdp_rate){ .pps = 1, .burst = 2 };
	p = mk(&c, 256);
	for (int i = 0; i < 1000; i++) {
		a4[2] = (uint8_t)(i >> 8);
		a4[3] = (uint8_t)i;
		assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0),
				 i < 2 ? WXDP_STAT_REDIRECT : WXDP_STAT_DROP_UNVAL_DHT);
	}
	assert_int_equal(policer_bucket_count(p), 2);
	policer_free(p);

	/* Ban table: capacity is enforced; deletes keep lookups correct. */
	{
		struct policer_opts o = { .bans = 64, .seed = 1 };

		assert_int_equal(policer_new(&p, &o), 0);
	}
	for (int i = 0; i < 64; i++) {
		snprintf(cidr, sizeof(cidr), "10.%d.0.0/16", i);
		pban(p, cidr, 0);
	}
	assert_int_equal(wxdp_cidr_parse("11.0.0.0/8", &b), 0);
	assert_int_equal(policer_ban_add(p, &b), -ENOSPC);
	for (int i = 0; i < 64; i += 2) {
		snprintf(cidr, sizeof(cidr), "10.%d.0.0/16", i);
		assert_int_equal(wxdp_cidr_parse(cidr, &b), 0);
		assert_int_equal(policer_ban_del(p, &b), 0);
	}
	for (int i = 0; i < 64; i++) {
		a4[1] = (uint8_t)i;
		assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0),
				 i % 2 ? WXDP_STAT_DROP_BANNED : WXDP_STAT_REDIRECT);
	}
	policer_free(p);
}

/* --- equivalence with the XDP program --- */

static int bpf_verdict(struct wxdp *x, const uint8_t *pkt, size_t len)
{
	uint64_t before[WXDP_STAT__MAX], after[WXDP_STAT__MAX];
	uint8_t out[TPKT_MAX];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = (__u32)len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);
	int v = -1;

	assert_int_equal(wxdp_stats_read(x, before), 0);
	assert_int_equal(bpf_prog_test_run_opts(wxdp_fd(x, WXDP_FD_PROG), &opts), 0);
	assert_int_equal(wxdp_stats_read(x, after), 0);
	for (int i = 1; i < WXDP_STAT__MAX; i++)
		if (after[i] != before[i])
			v = i;
	/* No socket under test-run: "accepted" shows as pass-no-socket. */
	return v == WXDP_STAT_PASS_NO_SOCKET ? WXDP_STAT_REDIRECT : v;
}

/* Validated sources of the equivalence corpus: the same keys go into the
 * program's map and answer the policer's lookup. */
#define NVALID 3

struct valid_set {
	struct wxdp_src_key k[NVALID];
	uint64_t exp[NVALID];
};

static int valid_lookup(void *arg, const struct wxdp_src_key *k, uint64_t now)
{
	const struct valid_set *v = arg;

	for (int i = 0; i < NVALID; i++)
		if (!memcmp(&v->k[i], k, sizeof(*k)) && now < v->exp[i])
			return 1;
	return 0;
}

static void pin_cpu(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void test_same_verdicts(void **state)
{
	static uint8_t initial[1300] = { 0xc3, 0, 0, 0, 1 };
	static uint8_t initial2[1250] = { 0xd0, 0x6b, 0x33, 0x43, 0xcf };
	static uint8_t vneg[40] = { 0xc0, 0, 0, 0, 0 };
	static const struct {
		uint16_t port;
		const char *pl;
		size_t len;
	} kinds[] = {
		{ 6881, "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:xx1:y1:qe", 56 },
		{ 6881, "de", 2 },
		{ 6881, "l1:xe", 5 },
		{ 6881, "", 0 },
		{ 4433, "\x41\x00\x01\x02\x03\x04\x05\x06", 8 },
		{ 4433, "\x01\x00\x01\x02", 4 },
		{ 4433, "\xc0\x00\x00", 3 },
		{ 4433, (const char *)initial, sizeof(initial) },
		{ 4433, (const char *)initial, 1199 },
		{ 4433, (const char *)initial2, sizeof(initial2) },
		{ 4433, (const char *)vneg, sizeof(vneg) },
		{ 4433, "", 0 },
		{ 4433, "\x00\x01\x00\x00\x21\x12\xa4\x42" "abcdefghijkl", 20 }, /* STUN */
		{ 4433, "\x00\x01\x00\x00\x21\x12\xa4\x42" "abcdefghijkl", 20 },
		{ 4433, "\x00\x01\x00\x00\x21\x12\xa4\x43" "abcdefghijkl", 20 }, /* no cookie */
		{ 5353, "hello", 5 },
	};
	static const char *ban_pool[] = { "192.0.2.0/24", "192.0.2.3", "198.51.100.0/25",
					  "2001:db8::/48", "2001:db8:0:2::/64", "2001:db8:0:2::5",
					  "0.0.0.0/1", "203.0.113.0/24" };
	struct wxdp_opts xo = { .no_attach = 1 };
	struct wxdp_config c;
	struct wxdp *x = NULL;
	struct policer *p;
	struct valid_set vs;
	uint8_t buf[TPKT_MAX];
	uint64_t now = T0, nverd[WXDP_STAT__MAX] = { 0 };
	int compared = 0;

	(void)state;
	if (geteuid() != 0) {
		print_message("SKIP: BPF half needs root\n");
		skip();
	}
	rng_state = 0x5eed1234abcdULL;
	wxdp_config_default(&c);
	c.dht = (struct wxdp_rate){ .pps = 2, .burst = 3 };
	c.quic = (struct wxdp_rate){ .pps = 1, .burst = 2 };
	c.quic_initial = (struct wxdp_rate){ .pps = 1, .burst = 1 };
	/* Budgets small enough that a dozen sources spend them. */
	c.unval_dht = (struct wxdp_rate){ .pps = 6, .burst = 8 };
	c.unval_quic = (struct wxdp_rate){ .pps = 3, .burst = 4 };
	c.unval_initial = (struct wxdp_rate){ .pps = 1, .burst = 2 };
	c.stun = (struct wxdp_rate){ .pps = 1, .burst = 2 };
	c.unval_stun = (struct wxdp_rate){ .pps = 2, .burst = 3 };
	/* validated sources' QUIC: a rate of its own (checked against the
	 * program's, with and without the QUIC budget below) */
	c.quic_valid = (struct wxdp_rate){ .pps = 3, .burst = 5 };
	c.now_override_ns = now;
	pin_cpu(); /* the program's budgets are per CPU */
	assert_int_equal(wxdp_new(&x, &xo), 0);
	assert_int_equal(wxdp_config_set(x, &c), 0);
	{
		struct policer_opts o = { .config = &c, .seed = 42, .valid = valid_lookup,
					  .valid_arg = &vs };

		assert_int_equal(policer_new(&p, &o), 0);
	}
	/* Validated: 192.0.2.1 (for 2 s), 198.51.100.1, 2001:db8:0:1::/64. */
	wxdp_src_key_v4(&vs.k[0], (const uint8_t[4]){ 192, 0, 2, 1 });
	wxdp_src_key_v4(&vs.k[1], (const uint8_t[4]){ 198, 51, 100, 1 });
	wxdp_src_key_v6(&vs.k[2], (const uint8_t[16]){ 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1 }, 64);
	vs.exp[0] = now + 2000 * MS;
	vs.exp[1] = vs.exp[2] = now + 3600000 * MS;
	for (int i = 0; i < NVALID; i++)
		assert_int_equal(wxdp_valid_set(x, &vs.k[i], vs.exp[i]), 0);

	for (int step = 0; step < 4000; step++) {
		uint32_t r = rnd() % 100;

		if (r < 3) {
			/* Ban or unban (in both), sometimes with a short expiry. */
			struct wxdp_ban b;

			assert_int_equal(wxdp_cidr_parse(ban_pool[rnd() % 8], &b), 0);
			if (rnd() % 2) {
				b.expires_ns = rnd() % 3 ? now + (rnd() % 200) * MS : 0;
				assert_int_equal(wxdp_ban_add(x, &b), 0);
				assert_int_equal(policer_ban_add(p, &b), 0);
			} else {
				int e1 = wxdp_ban_del(x, &b), e2 = policer_ban_del(p, &b);

				assert_int_equal(e1, e2);
			}
			continue;
		}
		if (r < 5) {
			c.v6_prefix = (uint8_t)(rnd() % 2 ? 64 : 56 + rnd() % 73);
			/* the QUIC budget off at times: the validated rate
			 * must still be looked up for */
			c.unval_quic = rnd() % 3 ? (struct wxdp_rate){ .pps = 3, .burst = 4 }
						 : (struct wxdp_rate){ 0 };
			assert_int_equal(wxdp_config_set(x, &c), 0);
			assert_int_equal(policer_config_set(p, &c), 0);
			continue;
		}
		if (r < 20) {
			now += (rnd() % 50) * MS + rnd() % 1000;
			c.now_override_ns = now;
			assert_int_equal(wxdp_config_set(x, &c), 0);
			assert_int_equal(policer_config_set(p, &c), 0);
			continue;
		}
		{
			struct tpkt t = { 0 };
			struct policer_pkt k = { 0 };
			int kind = (int)(rnd() % (sizeof(kinds) / sizeof(kinds[0]))), vb;
			unsigned int vp;
			size_t len;

			if (rnd() % 2) {
				tpkt_v4(&t, (uint8_t)(1 + rnd() % 6));
				if (rnd() % 4 == 0)
					t.src[0] = 198, t.src[1] = 51, t.src[2] = 100;
			} else {
				tpkt_v6(&t, (uint16_t)(1 + rnd() % 3), (uint8_t)(1 + rnd() % 6));
			}
			t.vlans = (int)(rnd() % 3);
			t.sport = 40000;
			t.dport = kinds[kind].port;
			t.payload = (const uint8_t *)kinds[kind].pl;
			t.plen = kinds[kind].len;
			len = tpkt_build(buf, &t);
			vb = bpf_verdict(x, buf, len);
			k.family = t.v6 ? AF_INET6 : AF_INET;
			memcpy(k.src, t.src, 16);
			k.dport = t.dport;
			k.payload = t.payload;
			k.len = t.plen;
			k.now_ns = 1; /* ignored: the override wins on both sides */
			vp = policer_check(p, &k);
			if ((int)vp != vb)
				fail_msg("step %d kind %d: bpf %s, policer %s", step, kind,
					 wxdp_stat_name((unsigned)vb), wxdp_stat_name(vp));
			nverd[vp]++;
			compared++;
		}
	}
	/* The corpus exercised every verdict the policer can give. */
	for (int i = WXDP_STAT_PASS_NOT_WEFT; i < WXDP_STAT__MAX; i++) {
		if (i == WXDP_STAT_PASS_FRAGMENT || i == WXDP_STAT_PASS_NO_SOCKET ||
		    i == WXDP_STAT_DROP_UDP_LEN)
			continue; /* L3/L4 verdicts: the kernel's job on the socket path */
		if (i >= WXDP_STAT_RELAY_TX && i <= WXDP_STAT_RELAY_DROP)
			continue; /* relay ports: the relay's own path (relay_policy.h) */
		if (!nverd[i])
			fail_msg("corpus never produced %s", wxdp_stat_name((unsigned)i));
	}
	print_message("compared %d packets, identical verdicts:", compared);
	for (int i = WXDP_STAT_PASS_NOT_WEFT; i < WXDP_STAT__MAX; i++)
		if (nverd[i])
			print_message(" %s=%llu", wxdp_stat_name((unsigned)i),
				      (unsigned long long)nverd[i]);
	print_message("\n");
	policer_free(p);
	wxdp_free(x);
}

/* --- the guard in software mode: validated sources, ban quotas --- */

static struct guard *mk_guard(struct store *st)
{
	struct guard_opts o = { .npolicers = 1, .store = st };
	struct guard *g = NULL;

	assert_int_equal(guard_new(&g, &o), 0);
	return g;
}

/* One DHT ping from src through the guard's filter: 0 accepted, 1 dropped. */
static int gsend(struct guard *g, int fam, const uint8_t *src)
{
	static uint8_t ping[] = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
	struct io_pkt k = { .data = ping, .len = sizeof(ping) - 1 };

	k.src.family = (uint16_t)fam;
	memcpy(k.src.addr, src, fam == AF_INET ? 4 : 16);
	k.dst.port = WXDP_DEFAULT_DHT_PORT;
	return guard_filter(g, &k, 0);
}

static void test_guard_validated(void **state)
{
	uint8_t a4[4] = { 203, 0, 113, 1 }, b6[16] = { 0x20, 0x01, 0x0d, 0xb8, [7] = 9, [15] = 1 };
	uint64_t st[WXDP_STAT__MAX];
	struct wxdp_config c;
	struct guard *g = mk_guard(NULL);

	(void)state;
	assert_false(guard_validated(g, AF_INET, a4));
	assert_int_equal(guard_validated_add(g, AF_INET, a4, GUARD_EV_REPLY), 0);
	assert_int_equal(guard_validated_add(g, AF_INET, a4, GUARD_EV_REPLY), 0); /* refresh */
	assert_true(guard_validated(g, AF_INET, a4));
	assert_int_equal(guard_validated_add(g, AF_INET6, b6, GUARD_EV_HANDSHAKE), 0);
	b6[15] = 2; /* same /64 */
	assert_true(guard_validated(g, AF_INET6, b6));
	b6[7] = 8;
	assert_false(guard_validated(g, AF_INET6, b6));
	assert_int_equal(guard_validated_add(g, AF_INET, a4, 0), -EINVAL);
	assert_int_equal(guard_validated_add(g, AF_UNIX, a4, GUARD_EV_TOKEN), -EINVAL);
	assert_false(guard_validated(g, AF_UNIX, a4));
	/* A budget of 2 unvalidated DHT packets at a frozen clock: 50
	 * unvalidated sources get 2 through; the validated one all 30. */
	assert_int_equal(guard_config_get(g, &c), 0);
	c.unval_dht = (struct wxdp_rate){ .pps = 1, .burst = 2 };
	c.now_override_ns = T0;
	assert_int_equal(guard_config_set(g, &c), 0);
	{
		int acc = 0;

		for (int i = 0; i < 50; i++) {
			uint8_t s4[4] = { 10, 9, (uint8_t)(i >> 8), (uint8_t)i };

			acc += !gsend(g, AF_INET, s4);
		}
		assert_int_equal(acc, 2);
		for (int i = 0; i < 30; i++)
			assert_int_equal(gsend(g, AF_INET, a4), 0);
	}
	assert_int_equal(guard_stats(g, st), 0);
	assert_int_equal(st[WXDP_STAT_DROP_UNVAL_DHT], 48);
	assert_int_equal(st[WXDP_STAT_RX], 80);
	guard_free(g);
}

static int count_kind(struct guard *g, int kind, size_t *total)
{
	static struct wxdp_ban list[GUARD_MAX_BANS];
	size_t n = 0;
	int k = 0;

	assert_int_equal(guard_ban_list(g, list, GUARD_MAX_BANS, &n), 0);
	for (size_t i = 0; i < n; i++)
		k += list[i].kind == kind;
	if (total)
		*total = n;
	return k;
}

/* Operator bans survive a flood of automatic bans ten times the automatic
 * quota: none fails, none is evicted, and they still drop. */
static void test_guard_ban_quotas(void **state)
{
	struct guard *g = mk_guard(NULL);
	struct wxdp_ban b = { 0 };
	uint8_t a[4];
	size_t n;

	(void)state;
	/* The operator quota, full. */
	for (unsigned int i = 0; i < GUARD_MAX_OPERATOR_BANS; i++) {
		b = (struct wxdp_ban){ .family = AF_INET, .prefixlen = 32,
				       .kind = WXDP_BAN_OPERATOR };
		b.addr[0] = 100;
		b.addr[1] = (uint8_t)(i >> 16);
		b.addr[2] = (uint8_t)(i >> 8);
		b.addr[3] = (uint8_t)i;
		assert_int_equal(guard_ban_add(g, &b), 0);
	}
	b.addr[0] = 101;
	assert_int_equal(guard_ban_add(g, &b), -ENOSPC);
	/* 10x the automatic quota of automatic bans: each one succeeds. */
	for (unsigned int i = 0; i < 10 * GUARD_MAX_AUTO_BANS; i++) {
		a[0] = 10;
		a[1] = (uint8_t)(i >> 16);
		a[2] = (uint8_t)(i >> 8);
		a[3] = (uint8_t)i;
		assert_int_equal(guard_ban_addr(g, AF_INET, a, 600), 0);
	}
	assert_int_equal(count_kind(g, WXDP_BAN_OPERATOR, &n), GUARD_MAX_OPERATOR_BANS);
	assert_int_equal(n, GUARD_MAX_BANS);
	/* Every operator ban still drops; the newest automatic bans drop, the
	 * oldest were evicted (least recently banned first). */
	for (unsigned int i = 0; i < GUARD_MAX_OPERATOR_BANS; i += 97) {
		uint8_t o[4] = { 100, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };

		assert_int_equal(gsend(g, AF_INET, o), 1);
	}
	a[1] = 0, a[2] = 0, a[3] = 0;
	assert_int_equal(gsend(g, AF_INET, a), 0); /* first automatic: evicted */
	{
		unsigned int last = 10 * GUARD_MAX_AUTO_BANS - 1;
		uint8_t l[4] = { 10, (uint8_t)(last >> 16), (uint8_t)(last >> 8), (uint8_t)last };

		assert_int_equal(gsend(g, AF_INET, l), 1);
		/* An automatic ban of an operator-banned CIDR leaves it as is. */
		uint8_t o[4] = { 100, 0, 0, 7 };

		assert_int_equal(guard_ban_addr(g, AF_INET, o, 1), 0);
		assert_int_equal(count_kind(g, WXDP_BAN_OPERATOR, NULL), GUARD_MAX_OPERATOR_BANS);
	}
	/* Refreshing an automatic ban makes it the most recent: re-ban the
	 * oldest surviving one, add one more, and it survives. */
	{
		unsigned int oldest = 9 * GUARD_MAX_AUTO_BANS;
		uint8_t o[4] = { 10, (uint8_t)(oldest >> 16), (uint8_t)(oldest >> 8),
				 (uint8_t)oldest };
		uint8_t nx[4] = { 11, 0, 0, 1 };

		assert_int_equal(guard_ban_addr(g, AF_INET, o, 600), 0);
		assert_int_equal(guard_ban_addr(g, AF_INET, nx, 600), 0);
		assert_int_equal(gsend(g, AF_INET, o), 1);
		o[3]++; /* the next oldest went instead */
		assert_int_equal(gsend(g, AF_INET, o), 0);
	}
	/* Deleting operator bans frees their quota. */
	b.addr[0] = 100, b.addr[1] = 0, b.addr[2] = 0, b.addr[3] = 7;
	b.kind = WXDP_BAN_OPERATOR;
	assert_int_equal(guard_ban_del(g, &b), 0);
	b.addr[0] = 101;
	assert_int_equal(guard_ban_add(g, &b), 0);
	guard_free(g);
}

/* Kinds persist; automatic bans never become permanent. */
static void test_guard_ban_persist(void **state)
{
	char dir[] = "/tmp/weft-guard-XXXXXX";
	struct store_opts so = { 0 };
	struct store *st = NULL;
	struct guard *g;
	struct wxdp_ban b;
	uint8_t a[4] = { 192, 0, 2, 77 };
	static struct wxdp_ban list[GUARD_MAX_BANS];
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	so.dir = dir;
	assert_int_equal(store_new(&st, &so), 0);
	g = mk_guard(st);
	assert_int_equal(wxdp_cidr_parse("198.51.100.0/24", &b), 0);
	b.kind = WXDP_BAN_OPERATOR;
	assert_int_equal(guard_ban_add(g, &b), 0);
	assert_int_equal(guard_ban_addr(g, AF_INET, a, 0), 0); /* "permanent" */
	guard_free(g);
	g = mk_guard(st);
	assert_int_equal(guard_ban_list(g, list, GUARD_MAX_BANS, &n), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		if (list[i].prefixlen == 24) {
			assert_int_equal(list[i].kind, WXDP_BAN_OPERATOR);
			assert_int_equal(list[i].expires_ns, 0);
		} else {
			assert_int_equal(list[i].kind, WXDP_BAN_AUTO);
			assert_true(list[i].expires_ns > 0);
		}
	}
	guard_free(g);
	store_free(st);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
}

/*
 * No lock per packet: the owner checks packets while another thread adds
 * and deletes bans (hundreds of neighbours of the owner's sources, and one
 * of them) and changes the config. A source never banned is never dropped
 * as banned (a read that races a write is retried, never half-used); the
 * toggled one is banned once the writer leaves it banned; the counters add
 * up.
 */
struct race {
	struct policer *p;
	_Atomic int stop;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	struct wxdp_config c;
	char cidr[32];

	wxdp_config_default(&c);
	c.dht = (struct wxdp_rate){ .pps = 0, .burst = 0 };
	c.unval_dht = c.dht;
	for (int i = 0; i < 20000; i++) {
		struct wxdp_ban b;

		snprintf(cidr, sizeof(cidr), "198.51.%d.%d/32", 100 + (i % 3), i % 250);
		assert_int_equal(wxdp_cidr_parse(cidr, &b), 0);
		if (policer_ban_add(r->p, &b) == 0 && (i & 1))
			policer_ban_del(r->p, &b);
		assert_int_equal(wxdp_cidr_parse("192.0.2.66/32", &b), 0);
		if (i & 1)
			policer_ban_add(r->p, &b);
		else
			policer_ban_del(r->p, &b);
		c.v6_prefix = (uint8_t)(48 + (i % 17));
		policer_config_set(r->p, &c);
	}
	{
		struct wxdp_ban b;

		assert_int_equal(wxdp_cidr_parse("192.0.2.66/32", &b), 0);
		policer_ban_add(r->p, &b);
	}
	r->stop = 1;
	return NULL;
}

static void test_policer_owner_lockfree(void **state)
{
	static const uint8_t good[4] = { 192, 0, 2, 7 }, toggled[4] = { 192, 0, 2, 66 };
	struct wxdp_config c;
	struct race r = { 0 };
	uint64_t st[WXDP_STAT__MAX], sum = 0, n = 0;
	pthread_t t;

	(void)state;
	wxdp_config_default(&c);
	c.dht = (struct wxdp_rate){ .pps = 0, .burst = 0 }; /* no bucket: only bans decide */
	c.unval_dht = c.dht;
	r.p = mk(&c, 0);
	assert_int_equal(pthread_create(&t, NULL, race_writer, &r), 0);
	while (!r.stop) {
		assert_int_equal(chk(r.p, AF_INET, good, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
		(void)chk(r.p, AF_INET, toggled, 6881, "de", 2, T0);
		n += 2;
	}
	pthread_join(t, NULL);
	assert_int_equal(chk(r.p, AF_INET, toggled, 6881, "de", 2, T0), WXDP_STAT_DROP_BANNED);
	assert_int_equal(chk(r.p, AF_INET, good, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	n += 2;
	policer_stats(r.p, st);
	for (int i = 1; i < WXDP_STAT__MAX; i++)
		sum += st[i];
	assert_int_equal(st[WXDP_STAT_RX], n);
	assert_int_equal(sum, n);
	policer_free(r.p);
}

/*
 * The per-source table starts small and doubles up to its capacity instead
 * of evicting (policer.c SRC_INIT_SETS): 5000 sources in a table of 65,536
 * are all kept (none evicted), and a source's rate state survives the
 * growths its successors cause: a source that spent its burst is still
 * dropped after 5000 others arrived at the same instant.
 */
static void test_policer_grows(void **state)
{
	struct wxdp_config c;
	struct policer *p;
	uint8_t a4[4] = { 10, 9, 0, 1 };
	unsigned int v;
	int i;

	(void)state;
	wxdp_config_default(&c);
	c.unval_dht.pps = 0; /* this test is about the per-source table */
	c.dht = (struct wxdp_rate){ .pps = 1, .burst = 3 };
	p = mk(&c, 65536);
	for (i = 0; i < 3; i++)
		assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	v = chk(p, AF_INET, a4, 6881, "de", 2, T0);
	assert_int_not_equal(v, WXDP_STAT_REDIRECT);
	for (i = 0; i < 5000; i++) {
		uint8_t b4[4] = { 10, 1, (uint8_t)(i >> 8), (uint8_t)i };

		assert_int_equal(chk(p, AF_INET, b4, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	}
	assert_int_equal(policer_bucket_count(p), 5001);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0), v);
	policer_free(p);
}

/*
 * The validated-source table starts small and doubles up to its capacity
 * (65,536) instead of evicting (valid.c VALID_INIT_SETS): 5000 sources
 * validated one after the other are all still validated, and a source
 * never validated is not.
 */
static void test_guard_valid_grows(void **state)
{
	struct guard *g = mk_guard(NULL);
	uint8_t a4[4] = { 10, 0, 0, 0 };
	int i;

	(void)state;
	for (i = 0; i < 5000; i++) {
		a4[2] = (uint8_t)(i >> 8);
		a4[3] = (uint8_t)i;
		assert_int_equal(guard_validated_add(g, AF_INET, a4, GUARD_EV_REPLY), 0);
	}
	for (i = 0; i < 5000; i++) {
		a4[2] = (uint8_t)(i >> 8);
		a4[3] = (uint8_t)i;
		if (!guard_validated(g, AF_INET, a4))
			fail_msg("source %d lost its validation", i);
	}
	a4[1] = 1;
	assert_false(guard_validated(g, AF_INET, a4));
	guard_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policer_basic),
		cmocka_unit_test(test_policer_train),
		cmocka_unit_test(test_policer_stun),
		cmocka_unit_test(test_policer_owner_lockfree),
		cmocka_unit_test(test_policer_nested),
		cmocka_unit_test(test_policer_bounded),
		cmocka_unit_test(test_policer_grows),
		cmocka_unit_test(test_same_verdicts),
		cmocka_unit_test(test_policer_quic_validated),
		cmocka_unit_test(test_guard_validated),
		cmocka_unit_test(test_guard_valid_grows),
		cmocka_unit_test(test_guard_ban_quotas),
		cmocka_unit_test(test_guard_ban_persist),
	};

	return cmocka_run_group_tests_name("xdp_policer", tests, NULL, NULL);
}
