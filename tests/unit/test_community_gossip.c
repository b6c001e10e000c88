// SPDX-License-Identifier: MIT
/*
 * community, gossip core: envelopes round-trip and a forwarder's hop count
 * does not break the signature; a duplicate (at any hop count), an
 * envelope past its hop limit or ours, an expired or future one, a changed
 * byte, an origin over its rate are refused and counted; forwarding stops
 * at the hop limit; fan-out picks distinct peers and never the sender; a
 * chain of nodes carries an envelope exactly max_hops links.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "weft/comm.h"

#define NOW 1700000000000ull

static uint8_t pk[32], sk[64], pk2[32], sk2[64];

static int setup(void **state)
{
	uint8_t s[32];

	(void)state;
	if (sodium_init() < 0)
		return -1;
	tu_fill(s, sizeof(s), 11);
	crypto_sign_seed_keypair(pk, sk, s);
	tu_fill(s, sizeof(s), 12);
	crypto_sign_seed_keypair(pk2, sk2, s);
	return 0;
}

static size_t build(uint8_t *buf, uint8_t max_hops, uint64_t ts, const char *p)
{
	size_t n;

	assert_int_equal(comm_env_build(sk, 0x34000001u, max_hops, ts, 600, (const uint8_t *)p,
					strlen(p), buf, COMM_ENV_MAX_LEN, &n),
			 0);
	return n;
}

static void test_envelope(void **state)
{
	uint8_t buf[COMM_ENV_MAX_LEN], big[COMM_ENV_MAX_PAYLOAD + 1];
	struct comm_env e, e2;
	size_t n, m;

	(void)state;
	n = build(buf, 4, NOW, "hello");
	assert_int_equal(n, COMM_ENV_HDR_LEN + 5 + COMM_SIG_LEN);
	assert_int_equal(comm_env_parse(buf, n, &e), 0);
	assert_int_equal(e.hops, 1);
	assert_int_equal(e.max_hops, 4);
	assert_int_equal(e.kind, 0x34000001u);
	assert_int_equal(e.ts_ms, NOW);
	assert_int_equal(e.ttl_s, 600);
	assert_int_equal(e.payload_len, 5);
	assert_memory_equal(e.payload, "hello", 5);
	assert_memory_equal(e.origin, pk, 32);
	/* The hop count is outside the signature and the id. */
	buf[1] = 3;
	assert_int_equal(comm_env_parse(buf, n, &e2), 0);
	assert_memory_equal(e.id, e2.id, COMM_ENV_ID_LEN);
	for (size_t i = 0; i < n; i++) {
		if (i == 1)
			continue;
		buf[i] ^= 0x04;
		assert_int_equal(comm_env_parse(buf, n, &e2), -EBADMSG);
		buf[i] ^= 0x04;
	}
	for (size_t i = 0; i < n; i++)
		assert_int_equal(comm_env_parse(buf, i, &e2), -EBADMSG);
	memset(big, 'x', sizeof(big));
	assert_int_equal(comm_env_build(sk, 1, 4, NOW, 60, big, sizeof(big), buf, sizeof(buf), &m),
			 -E2BIG);
	assert_int_equal(comm_env_build(sk, 1, 0, NOW, 60, big, 1, buf, sizeof(buf), &m), -EINVAL);
	assert_int_equal(comm_env_build(sk, 1, COMM_HOPS_MAX + 1, NOW, 60, big, 1, buf,
					sizeof(buf), &m),
			 -EINVAL);
	assert_int_equal(comm_env_build(sk, 1, 4, NOW, 60, big, 10, buf, 20, &m), -ENOSPC);
}

static void test_refusals(void **state)
{
	uint8_t buf[COMM_ENV_MAX_LEN], fwd[COMM_ENV_MAX_LEN];
	struct comm_gossip_opts o = {.rate_per_s = 1, .burst = 3};
	struct comm_gossip_stats st;
	struct comm_gossip *g;
	struct comm_env e;
	size_t n;

	(void)state;
	assert_int_equal(comm_gossip_new(&g, &o), 0);
	n = build(buf, 2, NOW, "a");
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), 0);
	/* A duplicate, and the same one forwarded (another hop count). */
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), -EALREADY);
	assert_int_equal(comm_gossip_forward(g, buf, n, fwd, sizeof(fwd)), 0);
	assert_int_equal(fwd[1], 2);
	assert_int_equal(comm_gossip_input(g, fwd, n, NOW, &e), -EALREADY);
	/* At its limit: not forwarded again. */
	assert_int_equal(comm_gossip_forward(g, fwd, n, buf, sizeof(buf)), -ELOOP);
	/* Past its hop limit (a forwarder that lied). */
	n = build(buf, 2, NOW, "b");
	buf[1] = 3;
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), -ELOOP);
	buf[1] = 0;
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), -ELOOP);
	/* Past our own cap (default 6) though within its own (16). */
	n = build(buf, 16, NOW, "c");
	buf[1] = 7;
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), -ELOOP);
	/* Expired, from the future. */
	n = build(buf, 4, NOW - 601000, "d");
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), -ETIME);
	n = build(buf, 4, NOW + 61000, "e");
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), -ETIME);
	/* A changed byte. */
	n = build(buf, 4, NOW, "f");
	buf[n - 1] ^= 1;
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), -EBADMSG);
	/* Rate: burst 3 per origin, "a" took one; two more pass, then no. */
	n = build(buf, 4, NOW, "g");
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), 0);
	n = build(buf, 4, NOW, "h");
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), 0);
	n = build(buf, 4, NOW, "i");
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), -EBUSY);
	/* Another origin is not starved. */
	assert_int_equal(comm_env_build(sk2, 1, 4, NOW, 60, (const uint8_t *)"j", 1, buf,
					sizeof(buf), &n),
			 0);
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), 0);
	/* One second later, a token. */
	n = build(buf, 4, NOW, "i");
	assert_int_equal(comm_gossip_input(g, buf, n, NOW + 1000, &e), 0);
	comm_gossip_stats(g, &st);
	assert_int_equal(st.accepted, 5);
	assert_int_equal(st.duplicate, 2);
	assert_int_equal(st.hop_limit, 3);
	assert_int_equal(st.expired, 2);
	assert_int_equal(st.bad, 1);
	assert_int_equal(st.rate_limited, 1);
	assert_int_equal(st.forwarded, 1);
	comm_gossip_free(g);
}

static void test_dedup_bound(void **state)
{
	uint8_t buf[COMM_ENV_MAX_LEN], first[COMM_ENV_MAX_LEN];
	struct comm_gossip_opts o = {.dedup_max = 4, .dedup_ms = 1000, .rate_per_s = 1000, .burst = 1000};
	struct comm_gossip *g;
	struct comm_env e;
	size_t n, n0;
	char p[8];

	(void)state;
	assert_int_equal(comm_gossip_new(&g, &o), 0);
	n0 = build(first, 4, NOW, "p0");
	assert_int_equal(comm_gossip_input(g, first, n0, NOW, &e), 0);
	for (int i = 1; i <= 3; i++) {
		snprintf(p, sizeof(p), "p%d", i);
		n = build(buf, 4, NOW, p);
		assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), 0);
	}
	assert_int_equal(comm_gossip_input(g, first, n0, NOW, &e), -EALREADY);
	/* A fifth pushes the first out of the ring (the documented bound). */
	n = build(buf, 4, NOW, "p4");
	assert_int_equal(comm_gossip_input(g, buf, n, NOW, &e), 0);
	assert_int_equal(comm_gossip_input(g, first, n0, NOW, &e), 0);
	/* And ids expire after dedup_ms. */
	assert_int_equal(comm_gossip_input(g, buf, n, NOW + 999, &e), -EALREADY);
	assert_int_equal(comm_gossip_input(g, buf, n, NOW + 1001, &e), 0);
	comm_gossip_free(g);
}

static void test_pick(void **state)
{
	size_t idx[16];

	(void)state;
	for (uint64_t r = 0; r < 500; r++) {
		uint64_t rnd = r * 0x9E3779B97F4A7C15ull;
		size_t n = 1 + (size_t)(r % 12), skip = (size_t)(r % (n + 1)), k;
		int hit[16] = {0};

		k = comm_gossip_pick(n, skip, 4, rnd, idx);
		assert_int_equal(k, (n - (skip < n)) < 4 ? n - (skip < n) : 4);
		for (size_t i = 0; i < k; i++) {
			assert_true(idx[i] < n);
			assert_int_not_equal(idx[i], skip);
			assert_int_equal(hit[idx[i]], 0);
			hit[idx[i]] = 1;
		}
	}
	assert_int_equal(comm_gossip_pick(0, 0, 4, 1, idx), 0);
	assert_int_equal(comm_gossip_pick(1, 0, 4, 1, idx), 0);
}

/* A line of 8 nodes: an envelope with max_hops 3 reaches nodes 1..3. */
static void test_chain(void **state)
{
	uint8_t buf[COMM_ENV_MAX_LEN], nxt[COMM_ENV_MAX_LEN];
	struct comm_gossip *g[8];
	struct comm_env e;
	int reached = 0;
	size_t n;

	(void)state;
	for (int i = 0; i < 8; i++)
		assert_int_equal(comm_gossip_new(&g[i], NULL), 0);
	n = build(buf, 3, NOW, "chain");
	assert_int_equal(comm_env_parse(buf, n, &e), 0);
	comm_gossip_note(g[0], e.id, NOW);
	for (int i = 1; i < 8; i++) {
		if (comm_gossip_input(g[i], buf, n, NOW, &e) != 0)
			break;
		reached = i;
		if (comm_gossip_forward(g[i], buf, n, nxt, sizeof(nxt)) != 0)
			break;
		memcpy(buf, nxt, n);
	}
	assert_int_equal(reached, 3);
	for (int i = 0; i < 8; i++)
		comm_gossip_free(g[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope),    cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_dedup_bound), cmocka_unit_test(test_pick),
		cmocka_unit_test(test_chain),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
