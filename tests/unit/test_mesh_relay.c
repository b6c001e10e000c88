// SPDX-License-Identifier: MIT
/*
 * mesh, the relay's checks: a duplicate is refused at any hop count; a
 * chain of relays carries an announce exactly its hop limit, and a relay
 * that lowers its cap for a type stops it sooner (a raise is ignored); a
 * flood from one provider key is cut at its bucket while another key's
 * announce still passes; a flood of Queries under one-time keys is cut by
 * the per-type bucket; an announce below the required level, from the
 * future or expired is dropped; every drop is counted by reason; the
 * reverse path of queries and reservation boxes.
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

#include "weft/mesh.h"

#define NOW 1767225600000ull
#define SVC 9u

static uint8_t pk[2][32], sk[2][64];

static int setup(void **state)
{
	uint8_t seed[32];

	(void)state;
	if (sodium_init() < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		memset(seed, 0x50 + i, 32);
		crypto_sign_seed_keypair(pk[i], sk[i], seed);
	}
	return 0;
}

static size_t ann(uint8_t *out, const uint8_t *key, uint8_t max_hops, uint64_t ts, int n)
{
	char body[32];
	struct mesh_msg m = { .type = MESH_ANNOUNCE, .service = SVC, .max_hops = max_hops,
			      .ttl_s = 600, .ts_ms = ts };
	size_t len;

	snprintf(body, sizeof(body), "d1:ni%dee", n);
	m.body = (const uint8_t *)body;
	m.body_len = strlen(body);
	assert_int_equal(mesh_env_build(key, &m, out, MESH_ENV_MAX, &len), 0);
	return len;
}

static void test_dedup_hops(void **state)
{
	struct mesh_relay_opts o = { 0 };
	struct mesh_relay *r[10];
	uint8_t buf[MESH_ENV_MAX], fwd[MESH_ENV_MAX];
	struct mesh_relay_stats st;
	struct mesh_env e;
	enum mesh_drop why;
	size_t n;
	int reached;

	(void)state;
	for (int i = 0; i < 10; i++)
		assert_int_equal(mesh_relay_new(&r[i], &o), 0);
	n = ann(buf, sk[0], 6, NOW, 1);
	/* A chain: each relay takes it and forwards to the next. */
	reached = 0;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(mesh_relay_input(r[i], buf, n, NOW, &e, &why), 0);
		reached++;
		assert_int_equal(mesh_relay_input(r[i], buf, n, NOW, &e, &why), -EALREADY);
		assert_int_equal(why, MESH_DROP_DUPLICATE);
		if (mesh_relay_forward(r[i], buf, n, fwd, sizeof(fwd)) != 0)
			break;
		memcpy(buf, fwd, n);
		/* The same envelope at another hop count: still a duplicate. */
		assert_int_equal(mesh_relay_input(r[i], buf, n, NOW, &e, &why), -EALREADY);
	}
	assert_int_equal(reached, 6);
	/* A copy over fewer hops than the first one seen: forward again (1),
	 * once; the same hop count again is a duplicate. */
	buf[1] = 3;
	assert_int_equal(mesh_relay_input(r[9], buf, n, NOW, &e, &why), 0);
	buf[1] = 2;
	assert_int_equal(mesh_relay_input(r[9], buf, n, NOW, &e, &why), 1);
	assert_int_equal(mesh_relay_input(r[9], buf, n, NOW, &e, &why), -EALREADY);
	mesh_relay_stats(r[9], &st);
	assert_int_equal(st.reforward, 1);
	mesh_relay_stats(r[0], &st);
	assert_int_equal(st.accepted, 1);
	assert_int_equal(st.drop[MESH_DROP_DUPLICATE], 2);
	for (int i = 0; i < 10; i++)
		mesh_relay_free(r[i]);

	/* A relay lowers its cap for announces to 2; a raise to 12 is ignored. */
	o.limits.max_hops[MESH_ANNOUNCE] = 2;
	o.limits.max_hops[MESH_QUERY] = 12;
	assert_int_equal(mesh_relay_new(&r[0], &o), 0);
	n = ann(buf, sk[0], 6, NOW, 2);
	buf[1] = 2;
	assert_int_equal(mesh_relay_input(r[0], buf, n, NOW, &e, &why), 0);
	assert_int_equal(mesh_relay_forward(r[0], buf, n, fwd, sizeof(fwd)), -ELOOP);
	n = ann(buf, sk[0], 6, NOW, 3);
	buf[1] = 3;
	assert_int_equal(mesh_relay_input(r[0], buf, n, NOW, &e, &why), -ELOOP);
	assert_int_equal(why, MESH_DROP_HOP_LIMIT);
	{
		uint8_t q[MESH_BODY_QUERY];
		size_t qn;
		struct mesh_msg m = { .type = MESH_QUERY, .service = SVC, .max_hops = 16,
				      .ttl_s = 60, .ts_ms = NOW };

		assert_int_equal(mesh_query_body("", 5, q, sizeof(q), &qn), 0);
		m.body = q;
		m.body_len = qn;
		assert_int_equal(mesh_env_build(sk[1], &m, buf, sizeof(buf), &n), 0);
		buf[1] = 5; /* past the Query default of 4 */
		assert_int_equal(mesh_relay_input(r[0], buf, n, NOW, &e, &why), -ELOOP);
	}
	mesh_relay_stats(r[0], &st);
	assert_int_equal(st.drop[MESH_DROP_HOP_LIMIT], 2);
	mesh_relay_free(r[0]);
}

static void test_flood(void **state)
{
	struct mesh_relay *r;
	uint8_t buf[MESH_ENV_MAX];
	struct mesh_relay_stats st;
	struct mesh_env e;
	enum mesh_drop why;
	int ok = 0, limited = 0;
	size_t n;

	(void)state;
	assert_int_equal(mesh_relay_new(&r, NULL), 0);
	for (int i = 0; i < 100; i++) {
		n = ann(buf, sk[0], 6, NOW, i);
		if (mesh_relay_input(r, buf, n, NOW, &e, &why) == 0)
			ok++;
		else if (why == MESH_DROP_RATE)
			limited++;
	}
	/* The burst of a (provider, type) bucket, the rest refused. */
	assert_int_equal(ok, 10);
	assert_int_equal(limited, 90);
	/* Another provider is not starved. */
	n = ann(buf, sk[1], 6, NOW, 1000);
	assert_int_equal(mesh_relay_input(r, buf, n, NOW, &e, &why), 0);
	/* The flooder gets 2 a second back. */
	n = ann(buf, sk[0], 6, NOW + 1000, 1001);
	assert_int_equal(mesh_relay_input(r, buf, n, NOW + 1000, &e, &why), 0);
	n = ann(buf, sk[0], 6, NOW + 1000, 1002);
	assert_int_equal(mesh_relay_input(r, buf, n, NOW + 1000, &e, &why), 0);
	n = ann(buf, sk[0], 6, NOW + 1000, 1003);
	assert_int_equal(mesh_relay_input(r, buf, n, NOW + 1000, &e, &why), -EBUSY);
	/* Responses are bounded by the reverse path, not by the responder's
	 * bucket: 20 from one key pass. */
	for (int i = 0; i < 20; i++) {
		uint8_t a[MESH_ENV_MAX], qid[32];
		size_t an = ann(a, sk[1], 6, NOW, 2000 + i);
		struct mesh_msg m = { .type = MESH_RESPONSE, .service = SVC, .ref = qid, .body = a,
				      .body_len = an, .max_hops = 8, .ttl_s = 60, .ts_ms = NOW };

		memset(qid, i + 1, sizeof(qid));
		assert_int_equal(mesh_env_build(sk[0], &m, buf, sizeof(buf), &n), 0);
		assert_int_equal(mesh_relay_input(r, buf, n, NOW, &e, &why), 0);
	}
	mesh_relay_stats(r, &st);
	assert_int_equal(st.drop[MESH_DROP_RATE], 91);
	assert_int_equal(st.by_type[MESH_ANNOUNCE], 13);
	mesh_relay_free(r);
}

static void test_query_flood(void **state)
{
	struct mesh_relay_opts o = { .type_total_per_s = 50 };
	struct mesh_relay *r;
	uint8_t buf[MESH_ENV_MAX], q[MESH_BODY_QUERY], opk[32], osk[64];
	struct mesh_env e;
	enum mesh_drop why;
	int ok = 0;
	size_t n, qn;

	(void)state;
	assert_int_equal(mesh_relay_new(&r, &o), 0);
	assert_int_equal(mesh_query_body("n>1", 5, q, sizeof(q), &qn), 0);
	for (int i = 0; i < 80; i++) {
		struct mesh_msg m = { .type = MESH_QUERY, .service = SVC, .body = q,
				      .body_len = qn, .max_hops = 4, .ttl_s = 60, .ts_ms = NOW };

		crypto_sign_keypair(opk, osk); /* a one-time key each */
		assert_int_equal(mesh_env_build(osk, &m, buf, sizeof(buf), &n), 0);
		if (mesh_relay_input(r, buf, n, NOW, &e, &why) == 0)
			ok++;
		else
			assert_int_equal(why, MESH_DROP_RATE);
	}
	assert_int_equal(ok, 50);
	/* Announces have their own type bucket. */
	n = ann(buf, sk[0], 6, NOW, 1);
	assert_int_equal(mesh_relay_input(r, buf, n, NOW, &e, &why), 0);
	mesh_relay_free(r);
}

static void test_drops(void **state)
{
	struct mesh_trust t = { 0 };
	struct mesh_relay_opts o = { .min_level = MESH_LEVEL_ENDORSED, .trust = &t };
	struct mesh_relay *r;
	uint8_t buf[MESH_ENV_MAX];
	struct mesh_relay_stats st;
	struct mesh_env e;
	enum mesh_drop why;
	size_t n;

	(void)state;
	assert_int_equal(mesh_relay_new(&r, &o), 0);
	n = ann(buf, sk[0], 6, NOW, 1);
	assert_int_equal(mesh_relay_input(r, buf, n, NOW, &e, &why), -EACCES);
	assert_int_equal(why, MESH_DROP_LEVEL);
	n = ann(buf, sk[0], 6, NOW + 120000, 2);
	assert_int_equal(mesh_relay_input(r, buf, n, NOW, &e, &why), -ETIME);
	assert_int_equal(why, MESH_DROP_FUTURE);
	n = ann(buf, sk[0], 6, NOW - 600000, 3);
	assert_int_equal(mesh_relay_input(r, buf, n, NOW, &e, &why), -ETIME);
	assert_int_equal(why, MESH_DROP_EXPIRED);
	buf[n - 1] ^= 1;
	assert_int_equal(mesh_relay_input(r, buf, n, NOW, &e, &why), -EBADMSG);
	assert_int_equal(why, MESH_DROP_BAD_SIG);
	assert_int_equal(mesh_relay_input(r, buf, 10, NOW, &e, NULL), -EBADMSG);
	mesh_relay_stats(r, &st);
	assert_int_equal(st.drop[MESH_DROP_LEVEL], 1);
	assert_int_equal(st.drop[MESH_DROP_FUTURE], 1);
	assert_int_equal(st.drop[MESH_DROP_EXPIRED], 1);
	assert_int_equal(st.drop[MESH_DROP_BAD_SIG], 1);
	assert_int_equal(st.drop[MESH_DROP_MALFORMED], 1);
	assert_int_equal(st.accepted, 0);
	mesh_relay_free(r);
}

/* The reverse path: answers go back to the neighbour a Query came from,
 * each announce once, no more than asked, not after the Query expired; a
 * full table gives the entry that expires first. Boxes open for their key
 * only. */
static void test_path_box(void **state)
{
	uint8_t q1[32], q2[32], q3[32], a[3][32], box[MESH_BODY_SEALED], out[MESH_BODY_SEALED];
	uint8_t big[MESH_BODY_SEALED];
	struct mesh_path *p;
	uint64_t tok;
	size_t n, m;

	(void)state;
	memset(q1, 1, 32);
	memset(q2, 2, 32);
	memset(q3, 3, 32);
	for (int i = 0; i < 3; i++)
		memset(a[i], 0x10 + i, 32);
	assert_int_equal(mesh_path_new(&p, 2), 0);
	assert_int_equal(mesh_path_add(p, q1, 7, 2, NOW + 1000), 0);
	assert_int_equal(mesh_path_add(p, q1, 8, 2, NOW + 1000), -EALREADY);
	assert_int_equal(mesh_path_take(p, q1, a[0], NOW, &tok), 0);
	assert_int_equal(tok, 7);
	assert_int_equal(mesh_path_take(p, q1, a[0], NOW, &tok), -EALREADY);
	assert_int_equal(mesh_path_take(p, q1, a[1], NOW, &tok), 0);
	assert_int_equal(mesh_path_take(p, q1, a[2], NOW, &tok), -EDQUOT);
	assert_int_equal(mesh_path_take(p, q2, a[0], NOW, &tok), -ENOENT);
	assert_int_equal(mesh_path_add(p, q2, MESH_PATH_LOCAL, 5, NOW + 500), 0);
	assert_int_equal(mesh_path_take(p, q2, a[0], NOW + 500, &tok), -ENOENT); /* expired */
	assert_int_equal(mesh_path_add(p, q3, 9, 5, NOW + 2000), 0);                /* q2 goes */
	assert_int_equal(mesh_path_take(p, q3, a[0], NOW, &tok), 0);
	assert_int_equal(tok, 9);
	assert_int_equal(mesh_path_take(p, q1, a[2], NOW, &tok), -EDQUOT); /* q1 stayed */
	mesh_path_free(p);

	assert_int_equal(mesh_box_seal(pk[0], (const uint8_t *)"hello", 5, box, sizeof(box), &n), 0);
	assert_int_equal(n, 5 + MESH_BOX_OVERHEAD);
	assert_int_equal(mesh_box_open(sk[1], box, n, out, sizeof(out), &m), -EBADMSG);
	assert_int_equal(mesh_box_open(sk[0], box, n, out, sizeof(out), &m), 0);
	assert_int_equal(m, 5);
	assert_memory_equal(out, "hello", 5);
	box[n - 1] ^= 1;
	assert_int_equal(mesh_box_open(sk[0], box, n, out, sizeof(out), &m), -EBADMSG);
	assert_int_equal(mesh_box_open(sk[0], box, 10, out, sizeof(out), &m), -EBADMSG);
	memset(big, 1, sizeof(big));
	assert_int_equal(mesh_box_seal(pk[0], big, MESH_BODY_SEALED - MESH_BOX_OVERHEAD + 1, box,
				       sizeof(box), &n),
			 -E2BIG);
	assert_int_equal(mesh_box_seal(pk[0], big, 10, box, 20, &n), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dedup_hops),
		cmocka_unit_test(test_flood),
		cmocka_unit_test(test_query_flood),
		cmocka_unit_test(test_drops),
		cmocka_unit_test(test_path_box),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
