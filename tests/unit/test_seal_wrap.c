// SPDX-License-Identifier: MIT
/*
 * seal, keys, wrapping and groups: Ed25519 -> X25519, wrap and unwrap up to
 * the cap, the cap before any crypto, non-recipients, changed entries,
 * group records (owner's signature, membership, rotation), and the group
 * record parser on hostile lengths (docs/PRIVATE.md sections 1, 4, 6).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "weft/seal.h"

/* A node: Ed25519 key pair and its X25519 conversion. */
struct node {
	uint8_t ed_pk[32], ed_sk[64], x_pk[32], x_sk[32];
};

static void node_make(struct node *n, uint64_t seed)
{
	uint8_t s[32];

	tu_fill(s, sizeof(s), seed);
	crypto_sign_seed_keypair(n->ed_pk, n->ed_sk, s);
	assert_int_equal(seal_x25519_from_ed25519_pk(n->ed_pk, n->x_pk), 0);
	assert_int_equal(seal_x25519_from_ed25519_sk(n->ed_sk, n->x_sk), 0);
}

static int setup(void **state)
{
	return sodium_init() < 0 ? -1 : 0;
}

static void test_convert(void **state)
{
	struct node a, b;
	uint8_t x[32], bad[64];
	/* the identity point, of small order: libsodium refuses it */
	uint8_t small[32] = {1};

	node_make(&a, 1);
	node_make(&b, 2);
	assert_int_equal(crypto_scalarmult_base(x, a.x_sk), 0);
	assert_memory_equal(x, a.x_pk, 32);
	assert_int_equal(seal_x25519_from_ed25519_pk(small, x), -EINVAL);
	/* a's seed with b's public half */
	memcpy(bad, a.ed_sk, 32);
	memcpy(bad + 32, b.ed_pk, 32);
	assert_int_equal(seal_x25519_from_ed25519_sk(bad, x), -EINVAL);
}

static void test_wrap_round_trip(void **state)
{
	struct node r[3], outsider;
	uint8_t xs[3][32], ck[32], got[32], epk[32], ent[3 * SEAL_ENTRY_LEN];

	for (int i = 0; i < 3; i++) {
		node_make(&r[i], 10 + i);
		memcpy(xs[i], r[i].x_pk, 32);
	}
	node_make(&outsider, 20);
	seal_content_key_new(ck);
	assert_int_equal(seal_wrap(ck, (const uint8_t(*)[32])xs, 3, epk, ent), 0);
	for (int i = 0; i < 3; i++) {
		memset(got, 0, 32);
		assert_int_equal(seal_unwrap(r[i].x_sk, r[i].x_pk, epk, ent, 3, got), 0);
		assert_memory_equal(got, ck, 32);
	}
	for (int i = 1; i < 3; i++)
		assert_true(memcmp(ent + (i - 1) * SEAL_ENTRY_LEN, ent + i * SEAL_ENTRY_LEN, 8) < 0);
	assert_int_equal(seal_unwrap(outsider.x_sk, outsider.x_pk, epk, ent, 3, got), -ENOENT);
	/* a changed entry: the hint still matches, the AEAD does not */
	for (size_t off = 8; off < 3 * SEAL_ENTRY_LEN; off += SEAL_ENTRY_LEN) {
		for (size_t k = 0; k < SEAL_ENTRY_LEN - 8; k += 13) {
			ent[off + k] ^= 0x80;
			int rc0 = seal_unwrap(r[0].x_sk, r[0].x_pk, epk, ent, 3, got);
			int rc1 = seal_unwrap(r[1].x_sk, r[1].x_pk, epk, ent, 3, got);
			int rc2 = seal_unwrap(r[2].x_sk, r[2].x_pk, epk, ent, 3, got);
			/* exactly one recipient's entry broke */
			assert_int_equal((rc0 == -EBADMSG) + (rc1 == -EBADMSG) + (rc2 == -EBADMSG), 1);
			assert_int_equal((rc0 == 0) + (rc1 == 0) + (rc2 == 0), 2);
			ent[off + k] ^= 0x80;
		}
	}
	/* another epk: nobody's hint matches */
	epk[0] ^= 1;
	assert_true(seal_unwrap(r[0].x_sk, r[0].x_pk, epk, ent, 3, got) < 0);
}

static void test_wrap_refusals(void **state)
{
	struct node a;
	uint8_t xs[2][32], ck[32], got[32], epk[32], ent[2 * SEAL_ENTRY_LEN], esk[32];

	node_make(&a, 30);
	tu_fill(ck, 32, 31);
	tu_fill(esk, 32, 32);
	/* the cap is checked before any crypto: NULL lists are never read, and
	 * the output is left as it was */
	memset(epk, 0xee, 32);
	assert_int_equal(seal_wrap(ck, NULL, SEAL_MAX_RECIPIENTS + 1, epk, NULL), -E2BIG);
	assert_int_equal(seal_wrap_det(ck, NULL, SEAL_MAX_RECIPIENTS + 1, esk, epk, NULL), -E2BIG);
	for (int i = 0; i < 32; i++)
		assert_int_equal(epk[i], 0xee);
	assert_int_equal(seal_unwrap(a.x_sk, a.x_pk, epk, NULL, SEAL_MAX_RECIPIENTS + 1, got),
			 -E2BIG);
	assert_int_equal(seal_wrap(ck, NULL, 0, epk, ent), -EINVAL);
	/* the same recipient twice */
	memcpy(xs[0], a.x_pk, 32);
	memcpy(xs[1], a.x_pk, 32);
	assert_int_equal(seal_wrap(ck, (const uint8_t(*)[32])xs, 2, epk, ent), -EINVAL);
	/* a low-order recipient key (all-zero shared secret) */
	memset(xs[1], 0, 32);
	assert_int_equal(seal_wrap(ck, (const uint8_t(*)[32])xs, 2, epk, ent), -EINVAL);
	/* a low-order epk */
	memset(epk, 0, 32);
	assert_int_equal(seal_unwrap(a.x_sk, a.x_pk, epk, ent, 2, got), -EINVAL);
}

/* The full cap, and the order of recipients does not show. */
static void test_wrap_cap(void **state)
{
	enum { N = SEAL_MAX_RECIPIENTS };
	static uint8_t xs[N][32], rev[N][32], ent[N * SEAL_ENTRY_LEN], ent2[N * SEAL_ENTRY_LEN];
	static struct node r[N];
	uint8_t ck[32], got[32], epk[32], epk2[32], esk[32];

	for (int i = 0; i < N; i++) {
		node_make(&r[i], 1000 + i);
		memcpy(xs[i], r[i].x_pk, 32);
		memcpy(rev[N - 1 - i], r[i].x_pk, 32);
	}
	tu_fill(ck, 32, 40);
	tu_fill(esk, 32, 41);
	assert_int_equal(seal_wrap_det(ck, (const uint8_t(*)[32])xs, N, esk, epk, ent), 0);
	assert_int_equal(seal_wrap_det(ck, (const uint8_t(*)[32])rev, N, esk, epk2, ent2), 0);
	assert_memory_equal(epk, epk2, 32);
	assert_memory_equal(ent, ent2, sizeof(ent));
	for (int i = 0; i < N; i += 49) {
		assert_int_equal(seal_unwrap(r[i].x_sk, r[i].x_pk, epk, ent, N, got), 0);
		assert_memory_equal(got, ck, 32);
	}
}

/* Group fixtures: owner, members m[0..2], an outsider. */
struct group_fx {
	struct node owner, m[3], outsider;
	uint8_t gid[32], seed[32], gpk[32], gx_pk[32], gx_sk[32];
	uint8_t mem[3][32];
	uint8_t rec[SEAL_GROUP_MAX_LEN];
	size_t len;
};

static void group_make(struct group_fx *g)
{
	node_make(&g->owner, 50);
	for (int i = 0; i < 3; i++) {
		node_make(&g->m[i], 51 + i);
		memcpy(g->mem[i], g->m[i].ed_pk, 32);
	}
	node_make(&g->outsider, 60);
	tu_fill(g->seed, 32, 61);
	tu_fill(g->gid, 32, 63);
	assert_int_equal(seal_group_keys(g->seed, g->gpk, g->gx_pk, g->gx_sk), 0);
	assert_int_equal(seal_group_seal(g->owner.ed_sk, g->gid, g->seed, 1, (const uint8_t(*)[32])g->mem,
					 3, g->rec, sizeof(g->rec), &g->len),
			 0);
	assert_int_equal(g->len, SEAL_GROUP_FIXED_LEN + 3 * SEAL_ENTRY_LEN + SEAL_SIG_LEN);
}

static void test_group(void **state)
{
	static struct group_fx g;
	struct seal_group_record r;
	uint8_t seed[32], ck[32], got[32], epk[32], ent[SEAL_ENTRY_LEN];
	uint8_t gpk[32], x_pk[32], x_sk[32];

	group_make(&g);
	assert_int_equal(seal_group_decode(&r, g.rec, g.len, g.owner.ed_pk), 0);
	assert_int_equal(r.epoch, 1);
	assert_int_equal(r.nmembers, 3);
	assert_memory_equal(r.group_pk, g.gpk, 32);
	assert_memory_equal(r.group_id, g.gid, 32);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(seal_group_open(&r, g.m[i].ed_sk, seed), 0);
		assert_memory_equal(seed, g.seed, 32);
	}
	assert_int_equal(seal_group_open(&r, g.outsider.ed_sk, seed), -ENOENT);
	/* a post to the group: the content key wrapped once, for the group */
	tu_fill(ck, 32, 62);
	assert_int_equal(seal_wrap(ck, (const uint8_t(*)[32])g.gx_pk, 1, epk, ent), 0);
	assert_int_equal(seal_group_open(&r, g.m[2].ed_sk, seed), 0);
	assert_int_equal(seal_group_keys(seed, gpk, x_pk, x_sk), 0);
	assert_int_equal(seal_unwrap(x_sk, x_pk, epk, ent, 1, got), 0);
	assert_memory_equal(got, ck, 32);
}

static void test_group_not_owner(void **state)
{
	static struct group_fx g;
	static uint8_t forged[SEAL_GROUP_MAX_LEN];
	struct seal_group_record r;
	size_t len;

	group_make(&g);
	/* the outsider signs a record for the same group, naming the owner */
	assert_int_equal(seal_group_seal(g.outsider.ed_sk, g.gid, g.seed, 2, (const uint8_t(*)[32])g.mem,
					 3, forged, sizeof(forged), &len),
			 0);
	memcpy(forged + 73, g.owner.ed_pk, 32);
	assert_int_equal(seal_group_decode(&r, forged, len, NULL), -EPERM);
	assert_int_equal(seal_group_decode(&r, forged, len, g.owner.ed_pk), -EPERM);
	/* naming itself, it verifies, but it is not the owner the fetcher pinned */
	memcpy(forged + 73, g.outsider.ed_pk, 32);
	assert_int_equal(seal_group_decode(&r, forged, len, NULL), 0);
	assert_int_equal(seal_group_decode(&r, forged, len, g.owner.ed_pk), -EPERM);
	/* any changed byte of the owner's record */
	for (size_t i = 0; i < g.len; i += 5) {
		g.rec[i] ^= 4;
		assert_true(seal_group_decode(&r, g.rec, g.len, g.owner.ed_pk) < 0);
		g.rec[i] ^= 4;
	}
	assert_int_equal(seal_group_decode(&r, g.rec, g.len, g.owner.ed_pk), 0);
}

static void test_group_rotation(void **state)
{
	static struct group_fx g;
	struct seal_group_record r;
	uint8_t seed2[32], seed[32], rec2[SEAL_GROUP_MAX_LEN];
	size_t len2;

	group_make(&g);
	/* m[1] removed: a new seed and epoch for m[0] and m[2] */
	memcpy(g.mem[1], g.mem[2], 32);
	tu_fill(seed2, 32, 70);
	assert_int_equal(seal_group_seal(g.owner.ed_sk, g.gid, seed2, 2, (const uint8_t(*)[32])g.mem, 2,
					 rec2, sizeof(rec2), &len2),
			 0);
	assert_int_equal(seal_group_decode(&r, rec2, len2, g.owner.ed_pk), 0);
	assert_int_equal(r.epoch, 2);
	assert_int_equal(seal_group_open(&r, g.m[1].ed_sk, seed), -ENOENT);
	assert_int_equal(seal_group_open(&r, g.m[0].ed_sk, seed), 0);
	assert_memory_equal(seed, seed2, 32);
	assert_int_equal(seal_group_open(&r, g.m[2].ed_sk, seed), 0);
	/* the group keeps its id; its key is the new epoch's */
	assert_memory_equal(r.group_id, g.gid, 32);
	assert_memory_not_equal(r.group_pk, g.gpk, 32);
}

static void test_group_refusals(void **state)
{
	static struct group_fx g;
	uint8_t buf[SEAL_GROUP_MAX_LEN + 8], bad[64];
	size_t len;

	group_make(&g);
	assert_int_equal(seal_group_seal(g.owner.ed_sk, g.gid, g.seed, 1, NULL, SEAL_MAX_RECIPIENTS + 1,
					 buf, sizeof(buf), &len),
			 -E2BIG);
	assert_int_equal(seal_group_seal(g.owner.ed_sk, g.gid, g.seed, 1, NULL, 0, buf, sizeof(buf), &len),
			 -EINVAL);
	assert_int_equal(seal_group_seal(g.owner.ed_sk, g.gid, g.seed, 1, (const uint8_t(*)[32])g.mem, 3,
					 buf, g.len - 1, &len),
			 -ENOSPC);
	memcpy(bad, g.owner.ed_sk, 32);
	memcpy(bad + 32, g.m[0].ed_pk, 32);
	assert_int_equal(seal_group_seal(bad, g.gid, g.seed, 1, (const uint8_t(*)[32])g.mem, 3, buf,
					 sizeof(buf), &len),
			 -EINVAL);
}

/* The parser on every truncation and on length fields that lie. */
static void test_group_parse_hostile(void **state)
{
	static struct group_fx g;
	static uint8_t buf[SEAL_GROUP_MAX_LEN + 64];
	struct seal_group_record r;
	static const struct {
		uint16_t n;
		int err;
	} counts[] = {{0, -EBADMSG}, {2, -EBADMSG}, {4, -EBADMSG}, {0xffff, -E2BIG},
		      {SEAL_MAX_RECIPIENTS + 1, -E2BIG}, {SEAL_MAX_RECIPIENTS, -EBADMSG}};

	group_make(&g);
	for (size_t l = 0; l < g.len; l++)
		assert_int_equal(seal_group_parse(&r, g.rec, l), -EBADMSG);
	memcpy(buf, g.rec, g.len);
	buf[g.len] = 0;
	assert_int_equal(seal_group_parse(&r, buf, g.len + 1), -EBADMSG);
	assert_int_equal(seal_group_parse(&r, buf, g.len), 0);
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		memcpy(buf, g.rec, g.len);
		buf[137] = (uint8_t)counts[i].n;
		buf[138] = (uint8_t)(counts[i].n >> 8);
		assert_int_equal(seal_group_parse(&r, buf, g.len), counts[i].err);
	}
	memcpy(buf, g.rec, g.len);
	buf[0] = 2;
	assert_int_equal(seal_group_parse(&r, buf, g.len), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_convert),
		cmocka_unit_test(test_wrap_round_trip),
		cmocka_unit_test(test_wrap_refusals),
		cmocka_unit_test(test_wrap_cap),
		cmocka_unit_test(test_group),
		cmocka_unit_test(test_group_not_owner),
		cmocka_unit_test(test_group_rotation),
		cmocka_unit_test(test_group_refusals),
		cmocka_unit_test(test_group_parse_hostile),
	};
	return cmocka_run_group_tests_name("seal_wrap", tests, setup, NULL);
}
