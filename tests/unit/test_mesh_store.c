// SPDX-License-Identifier: MIT
/*
 * mesh, the per-service store in LMDB: announces are taken, queried with a
 * filter and survive a reopen; Update and Revoke apply for the provider
 * with a newer timestamp only, and are refused for anyone else; a revoked
 * announce cannot come back; expired announces are not answered and are
 * collected; caps per provider and per service evict in the documented
 * order (the provider's own first; expired, tombstones, lowest level,
 * earliest expiry), and a worse newcomer is refused; a minimum level and
 * the served services are enforced; a damaged record is dropped at open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "weft/mesh.h"
#include "weft/store.h"
#include "weft/util.h"

#define NOW 1767225600000ull
#define SVC 7u

static uint8_t pk[4][32], sk[4][64];

struct env {
	uint8_t b[MESH_ENV_MAX];
	size_t n;
	struct mesh_env e;
};

struct world {
	char *dir;
	struct store *st;
	struct mesh_store *ms;
};

static int setup(void **state)
{
	uint8_t seed[32];

	(void)state;
	if (sodium_init() < 0)
		return -1;
	for (int i = 0; i < 4; i++) {
		memset(seed, 0x40 + i, 32);
		crypto_sign_seed_keypair(pk[i], sk[i], seed);
	}
	return 0;
}

static void mk(struct env *v, int who, uint8_t type, uint32_t svc, const uint8_t *ref,
	       const char *body, uint64_t ts, uint32_t ttl, const uint8_t *endorse)
{
	struct mesh_msg m = {
		.type = type, .service = svc, .ref = ref, .body = (const uint8_t *)body,
		.body_len = body ? strlen(body) : 0, .max_hops = 6, .ttl_s = ttl, .ts_ms = ts,
		.endorse = endorse, .n_endorse = endorse ? 1 : 0,
	};

	assert_int_equal(mesh_env_build(sk[who], &m, v->b, sizeof(v->b), &v->n), 0);
	assert_int_equal(mesh_env_parse(v->b, v->n, &v->e, NULL), 0);
}

static void open_all(struct world *w, const struct mesh_store_opts *o, uint64_t now)
{
	struct store_opts so = { .dir = w->dir, .map_size = 64u << 20 };

	assert_int_equal(store_new(&w->st, &so), 0);
	assert_int_equal(mesh_store_new(&w->ms, w->st, o, now), 0);
}

static void close_all(struct world *w)
{
	mesh_store_free(w->ms);
	store_free(w->st);
	w->ms = NULL;
	w->st = NULL;
}

static int put(struct world *w, struct env *v, uint64_t now)
{
	int would = mesh_store_would_take(w->ms, &v->e, now);
	int r = mesh_store_put(w->ms, &v->e, v->b, v->n, now);

	assert_int_equal(would, r < 0 ? r : 0); /* the dry run says the same */
	return r;
}

struct hits {
	int n;
	char bodies[8][64];
};

static void on_hit(void *arg, const uint8_t *env, size_t len)
{
	struct hits *h = arg;
	struct mesh_env e;

	assert_int_equal(mesh_env_parse(env, len, &e, NULL), 0);
	if (h->n < 8)
		snprintf(h->bodies[h->n], sizeof(h->bodies[0]), "%.*s", (int)e.body_len,
			 (const char *)e.body);
	h->n++;
}

static struct hits query(struct world *w, const char *filter, uint8_t level, uint64_t now)
{
	struct mesh_filter f;
	struct hits h = { 0 };
	int given;

	assert_int_equal(mesh_filter_parse(filter, strlen(filter), &f), 0);
	given = mesh_store_query(w->ms, SVC, &f, level, 64, now, on_hit, &h);
	assert_int_equal(given, h.n);
	return h;
}

static void test_update_revoke(void **state)
{
	struct world w = { .dir = tu_tmpdir() };
	struct env a, b, u, r;
	struct mesh_store_stats s;
	struct hits h;

	(void)state;
	open_all(&w, NULL, NOW);
	mk(&a, 0, MESH_ANNOUNCE, SVC, NULL, "d4:renti450ee", NOW, 3600, NULL);
	mk(&b, 1, MESH_ANNOUNCE, SVC, NULL, "d4:renti700ee", NOW, 3600, NULL);
	assert_int_equal(put(&w, &a, NOW), 0);
	assert_int_equal(put(&w, &b, NOW), 0);
	assert_int_equal(put(&w, &a, NOW), -EALREADY);
	h = query(&w, "rent<500", 0, NOW);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.bodies[0], "d4:renti450ee");
	assert_int_equal(query(&w, "", 0, NOW).n, 2);

	/* Update: by another key refused, not newer refused, by the provider applied. */
	mk(&u, 1, MESH_UPDATE, SVC, a.e.g.id, "d4:renti999ee", NOW + 10, 3600, NULL);
	assert_int_equal(put(&w, &u, NOW), -EPERM);
	mk(&u, 0, MESH_UPDATE, SVC, a.e.g.id, "d4:renti400ee", NOW, 3600, NULL);
	assert_int_equal(put(&w, &u, NOW), -EALREADY);
	mk(&u, 0, MESH_UPDATE, SVC + 1, a.e.g.id, "d4:renti400ee", NOW + 5, 3600, NULL);
	assert_int_equal(put(&w, &u, NOW), -EPERM); /* another service */
	mk(&u, 0, MESH_UPDATE, SVC, a.e.g.id, "d4:renti400ee", NOW + 5, 3600, NULL);
	assert_int_equal(put(&w, &u, NOW), 1);
	h = query(&w, "rent<500", 0, NOW);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.bodies[0], "d4:renti400ee");
	mk(&u, 0, MESH_UPDATE, SVC, b.e.g.id, "d4:renti1ee", NOW + 5, 3600, NULL);
	assert_int_equal(put(&w, &u, NOW), -EPERM); /* b is key 1's */

	/* Unknown announce. */
	mk(&u, 0, MESH_UPDATE, SVC, pk[3], "d4:renti1ee", NOW + 5, 3600, NULL);
	assert_int_equal(put(&w, &u, NOW), -ENOENT);

	/* Revoke: by another key refused; by the provider applied; then the
	 * announce cannot come back, nor an update. */
	mk(&r, 1, MESH_REVOKE, SVC, a.e.g.id, NULL, NOW + 20, 3600, NULL);
	assert_int_equal(put(&w, &r, NOW), -EPERM);
	mk(&r, 0, MESH_REVOKE, SVC, a.e.g.id, NULL, NOW + 2, 3600, NULL);
	assert_int_equal(put(&w, &r, NOW), -EALREADY); /* older than the update */
	mk(&r, 0, MESH_REVOKE, SVC, a.e.g.id, NULL, NOW + 20, 3600, NULL);
	assert_int_equal(put(&w, &r, NOW), 2);
	assert_int_equal(query(&w, "rent<500", 0, NOW).n, 0);
	assert_int_equal(put(&w, &a, NOW), -EALREADY);
	mk(&u, 0, MESH_UPDATE, SVC, a.e.g.id, "d4:renti300ee", NOW + 30, 3600, NULL);
	assert_int_equal(put(&w, &u, NOW), -EALREADY);

	/* All of it survives a reopen (the tombstone too). */
	close_all(&w);
	open_all(&w, NULL, NOW);
	assert_int_equal(query(&w, "", 0, NOW).n, 1);
	assert_int_equal(put(&w, &a, NOW), -EALREADY);
	mesh_store_stats(w.ms, &s);
	assert_int_equal(s.held, 1);
	close_all(&w);
	tu_rmrf_free(w.dir);
}

static void test_expiry(void **state)
{
	struct world w = { .dir = tu_tmpdir() };
	struct env a, b;
	struct mesh_store_stats s;

	(void)state;
	open_all(&w, NULL, NOW);
	mk(&a, 0, MESH_ANNOUNCE, SVC, NULL, "d1:ai1ee", NOW, 10, NULL);
	mk(&b, 0, MESH_ANNOUNCE, SVC, NULL, "d1:ai2ee", NOW, 100, NULL);
	assert_int_equal(put(&w, &a, NOW), 0);
	assert_int_equal(put(&w, &b, NOW), 0);
	assert_int_equal(query(&w, "", 0, NOW + 9999).n, 2);
	assert_int_equal(query(&w, "", 0, NOW + 10000).n, 1); /* expired: not answered */
	assert_int_equal(mesh_store_gc(w.ms, NOW + 10000), 1);
	assert_int_equal(mesh_store_gc(w.ms, NOW + 10000), 0);
	mesh_store_stats(w.ms, &s);
	assert_int_equal(s.expired, 1);
	assert_int_equal(s.held, 1);
	/* At open, what expired meanwhile is dropped. */
	close_all(&w);
	open_all(&w, NULL, NOW + 100000);
	mesh_store_stats(w.ms, &s);
	assert_int_equal(s.held, 0);
	assert_int_equal(s.expired, 1);
	close_all(&w);
	tu_rmrf_free(w.dir);
}

static void test_eviction(void **state)
{
	struct mesh_store_opts o = { .per_service = 3, .per_provider = 2 };
	struct world w = { .dir = tu_tmpdir() };
	struct env a1, a2, a3, b1, c1, c2, d1, r;
	struct hits h;

	(void)state;
	open_all(&w, &o, NOW);
	mk(&a1, 0, MESH_ANNOUNCE, SVC, NULL, "d1:ni1ee", NOW, 100, NULL);
	mk(&a2, 0, MESH_ANNOUNCE, SVC, NULL, "d1:ni2ee", NOW, 200, NULL);
	mk(&a3, 0, MESH_ANNOUNCE, SVC, NULL, "d1:ni3ee", NOW, 150, NULL);
	mk(&b1, 1, MESH_ANNOUNCE, SVC, NULL, "d1:ni4ee", NOW, 50, NULL);
	assert_int_equal(put(&w, &a1, NOW), 0);
	assert_int_equal(put(&w, &a2, NOW), 0);
	/* The provider's cap: its own entry that expires first gives way. */
	assert_int_equal(put(&w, &a3, NOW), 0);
	h = query(&w, "n<=3", 0, NOW);
	assert_int_equal(h.n, 2);
	assert_int_equal(query(&w, "n=1", 0, NOW).n, 0);
	assert_int_equal(put(&w, &b1, NOW), 0); /* the service is full: a2 a3 b1 */
	/* A newcomer that lives longer evicts the earliest expiry (b1)... */
	mk(&c1, 2, MESH_ANNOUNCE, SVC, NULL, "d1:ni5ee", NOW, 300, NULL);
	assert_int_equal(put(&w, &c1, NOW), 0);
	assert_int_equal(query(&w, "n=4", 0, NOW).n, 0);
	/* ... one that would die first is refused. */
	mk(&c2, 2, MESH_ANNOUNCE, SVC, NULL, "d1:ni6ee", NOW, 10, NULL);
	assert_int_equal(put(&w, &c2, NOW), -ENOSPC);
	/* A tombstone goes before any live announce. */
	mk(&r, 0, MESH_REVOKE, SVC, a2.e.g.id, NULL, NOW + 1, 60, NULL);
	assert_int_equal(put(&w, &r, NOW), 2);
	mk(&d1, 3, MESH_ANNOUNCE, SVC, NULL, "d1:ni7ee", NOW, 20, NULL);
	assert_int_equal(put(&w, &d1, NOW), 0);
	assert_int_equal(query(&w, "", 0, NOW).n, 3); /* a3 c1 d1 */
	/* An expired announce goes first, whatever the newcomer. */
	assert_int_equal(put(&w, &c2, NOW + 30000), 0); /* d1 (20 s) expired */
	assert_int_equal(query(&w, "n=7", 0, NOW).n, 0);
	close_all(&w);
	tu_rmrf_free(w.dir);
}

static void test_levels(void **state)
{
	struct mesh_trust t = { 0 };
	struct mesh_store_opts o = { .per_service = 2, .trust = &t };
	struct world w = { .dir = tu_tmpdir() };
	uint8_t en[MESH_ENDORSE_LEN];
	struct env a, b, c;
	char entry[80];

	(void)state;
	util_hex(entry, pk[3], 32);
	strcat(entry, ":registry");
	assert_int_equal(mesh_trust_add(&t, entry), 0);
	assert_int_equal(mesh_endorse_sign(sk[3], MESH_LEVEL_REGISTRY, SVC, pk[0], NOW + 500000, en),
			 0);
	open_all(&w, &o, NOW);
	mk(&a, 0, MESH_ANNOUNCE, SVC, NULL, "d1:ni1ee", NOW, 100, en);
	mk(&b, 1, MESH_ANNOUNCE, SVC, NULL, "d1:ni2ee", NOW, 1000, NULL);
	mk(&c, 2, MESH_ANNOUNCE, SVC, NULL, "d1:ni3ee", NOW, 2000, NULL);
	assert_int_equal(put(&w, &a, NOW), 0);
	assert_int_equal(put(&w, &b, NOW), 0);
	/* Full: the lowest level goes first (b), though a expires sooner. */
	assert_int_equal(put(&w, &c, NOW), 0);
	assert_int_equal(query(&w, "n=2", 0, NOW).n, 0);
	assert_int_equal(query(&w, "", MESH_LEVEL_REGISTRY, NOW).n, 1);
	assert_int_equal(query(&w, "", MESH_LEVEL_CREDENTIAL, NOW).n, 0);
	assert_int_equal(query(&w, "", MESH_LEVEL_ENDORSED, NOW).n, 1);
	close_all(&w);

	/* A store that requires a level refuses what lacks it. */
	o.min_level = MESH_LEVEL_ENDORSED;
	o.per_service = 0;
	open_all(&w, &o, NOW);
	assert_int_equal(put(&w, &b, NOW), -EACCES);
	close_all(&w);
	tu_rmrf_free(w.dir);
}

static void test_services(void **state)
{
	static const uint32_t served[] = { SVC, SVC + 1 };
	struct mesh_store_opts o = { .services = served, .n_services = 2, .services_max = 1 };
	struct world w = { .dir = tu_tmpdir() };
	struct env a, b, c;

	(void)state;
	open_all(&w, &o, NOW);
	mk(&a, 0, MESH_ANNOUNCE, SVC, NULL, "de", NOW, 100, NULL);
	mk(&b, 0, MESH_ANNOUNCE, SVC + 1, NULL, "de", NOW, 100, NULL);
	mk(&c, 0, MESH_ANNOUNCE, SVC + 2, NULL, "de", NOW, 100, NULL);
	assert_int_equal(put(&w, &c, NOW), -EXDEV);
	assert_int_equal(put(&w, &a, NOW), 0);
	assert_int_equal(put(&w, &b, NOW), -ENOSPC); /* services_max */
	close_all(&w);
	tu_rmrf_free(w.dir);
}

static void test_damaged(void **state)
{
	struct world w = { .dir = tu_tmpdir() };
	struct store_opts so;
	struct mesh_store_stats s;
	unsigned int dbi;
	struct env a, b;
	uint8_t key[32];

	(void)state;
	open_all(&w, NULL, NOW);
	mk(&a, 0, MESH_ANNOUNCE, SVC, NULL, "d1:ai1ee", NOW, 100, NULL);
	mk(&b, 0, MESH_ANNOUNCE, SVC, NULL, "d1:ai2ee", NOW, 100, NULL);
	assert_int_equal(put(&w, &a, NOW), 0);
	assert_int_equal(put(&w, &b, NOW), 0);
	close_all(&w);
	/* One record's envelope changed on disk, one record of garbage. */
	so = (struct store_opts){ .dir = w.dir, .map_size = 64u << 20 };
	assert_int_equal(store_new(&w.st, &so), 0);
	assert_int_equal(store_db(w.st, "mesh_announces", &dbi), 0);
	{
		void *v;
		size_t vlen;

		assert_int_equal(store_get(w.st, dbi, b.e.g.id, 32, &v, &vlen), 0);
		((uint8_t *)v)[vlen - 1] ^= 1;
		assert_int_equal(store_put(w.st, dbi, b.e.g.id, 32, v, vlen), 0);
		free(v);
	}
	memset(key, 9, sizeof(key));
	assert_int_equal(store_put(w.st, dbi, key, 32, "junk", 4), 0);
	assert_int_equal(mesh_store_new(&w.ms, w.st, NULL, NOW), 0);
	mesh_store_stats(w.ms, &s);
	assert_int_equal(s.held, 1);
	assert_int_equal(s.bad, 2);
	close_all(&w);
	open_all(&w, NULL, NOW);
	mesh_store_stats(w.ms, &s);
	assert_int_equal(s.held, 1);
	assert_int_equal(s.bad, 0); /* they were deleted */
	close_all(&w);
	tu_rmrf_free(w.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_update_revoke), cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_eviction),      cmocka_unit_test(test_levels),
		cmocka_unit_test(test_services),      cmocka_unit_test(test_damaged),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
