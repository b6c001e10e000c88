// SPDX-License-Identifier: MIT
/*
 * Connectivity across complete nodes in this process (simnet, no root):
 *
 *  - every node publishes its node record (no service published anywhere);
 *  - a node behind a NAT resolves a public node's key and pings it by key
 *    alone (POST /v1/quic/ping {"addr": KEY});
 *  - address discovery: the QUIC observed-address streams and the `ip`
 *    field of KRPC replies vote; the public nodes find no NAT, the node
 *    behind an endpoint-independent NAT finds its outside address and
 *    "endpoint-independent", the one behind an address-dependent NAT
 *    "address-dependent"; the NATed node's record carries its reflexive
 *    address, never its private interface address;
 *  - D and E, once they know they are behind a NAT, turn BEP 43
 *    read-only (dht.read_only_behind_nat) and still resolve keys;
 *  - errors: a key without a record is not_found, a key whose record
 *    lists only an unreachable address is unreachable;
 *  - the resolution cache: a second resolution is cached; with
 *    node.resolve_cache_max = 2 a third key evicts the least recently used;
 *    node.resolve_cache_ttl_s expires entries (simulated clock advanced).
 *
 * Voters are counted per /24, so the public nodes sit in different /24s.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "weft/conn.h"
#include "weft/simnet.h"
#include "world.h"

struct scene {
	struct world w; /* the network and its nodes (tests/lib/world.h) */
	struct simnet_nat *eim, *adm;
	struct simnode b, a, c, d, e; /* d behind the EIM NAT, e behind the ADM one */
};

static struct scene W;

static const char *nat_of(struct simnode *x, char *buf, size_t len)
{
	json_t *o = simnode_ok(x, "GET", "/v1/status", NULL);

	snprintf(buf, len, "%s", json_string_value(json_object_get(o, "nat")));
	json_decref(o);
	return buf;
}

static int published(struct simnode *x)
{
	json_t *o = simnode_ok(x, "GET", "/v1/status", NULL);
	int ok = json_integer_value(json_object_get(o, "record_puts")) >= 1 &&
		 json_is_object(json_object_get(o, "record"));

	json_decref(o);
	return ok;
}

static int all_published(void *arg)
{
	struct scene *w = arg;

	return published(&w->a) && published(&w->b) && published(&w->c) && published(&w->d) &&
	       published(&w->e);
}

/* A resolves key (fresh: no cache) to a record whose addresses include want. */
static int resolves_to(struct simnode *from, const char *key, const char *want)
{
	json_t *o = NULL, *x;
	size_t i;
	int st, ok = 0;

	st = simnode_ctl(from, "POST", "/v1/node/resolve",
			 json_pack("{s:s,s:b}", "key", key, "fresh", 1), &o);
	if (st == 200)
		json_array_foreach(json_object_get(o, "addrs"), i, x) ok |=
		    !want || !strcmp(json_string_value(x), want);
	json_decref(o);
	return ok;
}

struct rwait {
	struct simnode *from;
	const char *key, *want;
};

static int rwait_cond(void *arg)
{
	struct rwait *r = arg;

	return resolves_to(r->from, r->key, r->want);
}

static int setup(void **state)
{
	static const char *const small_cache[] = { "node.resolve_cache_max=2",
						   "node.resolve_cache_ttl_s=5", NULL };

	(void)state;
	world_new(&W.w, 14);
	world_bootstrap(&W.w, &W.b, NULL);
	world_node(&W.w, &W.a, "A", "203.0.113.1", NULL, NULL);
	world_node(&W.w, &W.c, "C", "198.51.101.3", NULL, small_cache);
	W.eim = world_nat(&W.w, "198.51.102.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.d, "D", "10.0.0.4", W.eim, NULL);
	W.adm = world_nat(&W.w, "198.51.103.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_ADM);
	world_node(&W.w, &W.e, "E", "10.0.1.5", W.adm, NULL);
	world_dht_formed(2, 30000, &W.a, &W.c, &W.d, &W.e, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

static void test_records_everywhere(void **state)
{
	struct rwait r = { &W.d, W.a.key, "203.0.113.1:4433" };
	json_t *o;

	(void)state;
	/* No node publishes a service, and every one has put its record. */
	assert_int_equal(simnode_wait(all_published, &W, 30000), 0);
	/* D, behind a NAT, resolves A's key to A's public address. */
	assert_int_equal(simnode_wait(rwait_cond, &r, 30000), 0);
	o = simnode_ok(&W.d, "POST", "/v1/node/resolve", json_pack("{s:s}", "key", W.a.key));
	assert_true(json_is_true(json_object_get(o, "cached")));
	assert_int_equal(json_integer_value(json_object_get(o, "version")), 1);
	assert_true(json_array_size(json_object_get(o, "relays")) == 0);
	json_decref(o);
	/* ...and pings it by key alone. */
	o = simnode_ok(&W.d, "POST", "/v1/quic/ping", json_pack("{s:s}", "addr", W.a.key));
	assert_string_equal(json_string_value(json_object_get(o, "peer_key")), W.a.key);
	json_decref(o);
}

struct nwait {
	struct simnode *x;
	const char *want;
};

static int dht_ro(struct simnode *x)
{
	json_t *o = simnode_ok(x, "GET", "/v1/dht/status", NULL);
	int ro = json_is_true(json_object_get(o, "read_only"));

	json_decref(o);
	return ro;
}

static int natted_read_only(void *arg)
{
	struct scene *w = arg;

	return dht_ro(&w->d) && dht_ro(&w->e);
}

static int nat_is(void *arg)
{
	struct nwait *n = arg;
	char buf[64];

	return !strcmp(nat_of(n->x, buf, sizeof(buf)), n->want);
}

/* D and E talk to several networks over QUIC (and the DHT did already). */
static void ping_all(struct simnode *from)
{
	struct simnode *to[] = { &W.a, &W.b, &W.c };

	for (size_t i = 0; i < 3; i++) {
		char t[128];

		snprintf(t, sizeof(t), "%s@%s:4433", to[i]->key, to[i]->ip);
		json_decref(simnode_ok(from, "POST", "/v1/quic/ping", json_pack("{s:s}", "addr", t)));
	}
}

static void test_nat_classes(void **state)
{
	struct nwait none = { &W.a, "none" }, eim = { &W.d, "endpoint-independent" },
		     adm = { &W.e, "address-dependent" };
	struct rwait r = { &W.c, W.d.key, NULL };
	json_t *o, *x;
	size_t i;

	(void)state;
	ping_all(&W.d);
	ping_all(&W.e);
	assert_int_equal(simnode_wait(nat_is, &eim, 30000), 0);
	assert_int_equal(simnode_wait(nat_is, &adm, 30000), 0);
	assert_int_equal(simnode_wait(nat_is, &none, 30000), 0);
	o = simnode_ok(&W.d, "GET", "/v1/status", NULL);
	x = json_array_get(json_object_get(o, "reflexive"), 0);
	assert_non_null(x);
	assert_true(!strncmp(json_string_value(json_object_get(x, "addr")), "198.51.102.100:",
			     15));
	assert_true(json_integer_value(json_object_get(x, "voters")) >= 2);
	json_decref(o);
	/* Found behind a NAT, D and E turn BEP 43 read-only (their DHT ticks
	 * at least once a second): others keep them out of their routing
	 * tables. The public nodes do not. D's own lookups still work. */
	assert_int_equal(simnode_wait(natted_read_only, &W, 30000), 0);
	assert_false(dht_ro(&W.a));
	assert_false(dht_ro(&W.b));
	assert_false(dht_ro(&W.c));
	{
		struct rwait ra = { &W.d, W.a.key, "203.0.113.1:4433" };

		assert_int_equal(simnode_wait(rwait_cond, &ra, 30000), 0);
	}
	/* D's record (republished when its addresses changed, at most once
	 * per CONN_MIN_REPUBLISH_MS: the clock jumps past that) carries the
	 * NAT's outside address, never 10.0.0.4. */
	simnet_advance(W.w.sn, 11000000000ULL);
	for (int tries = 0; tries < 600; tries++) {
		int found = 0;

		assert_int_equal(simnode_wait(rwait_cond, &r, 30000), 0);
		o = simnode_ok(&W.c, "POST", "/v1/node/resolve",
			       json_pack("{s:s,s:b}", "key", W.d.key, "fresh", 1));
		json_array_foreach(json_object_get(o, "addrs"), i, x) {
			assert_null(strstr(json_string_value(x), "10.0.0.4"));
			found |= !strncmp(json_string_value(x), "198.51.102.100:", 15);
		}
		json_decref(o);
		if (found)
			break;
		assert_true(tries < 599);
		usleep(100000);
	}
}

static void test_errors(void **state)
{
	static const char nokey[] =
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	json_t *o = NULL;

	(void)state;
	assert_int_equal(simnode_ctl(&W.c, "POST", "/v1/node/resolve",
				     json_pack("{s:s}", "key", nokey), &o),
			 404);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "code")),
			    "not_found");
	json_decref(o);
	assert_int_equal(simnode_ctl(&W.c, "POST", "/v1/quic/ping",
				     json_pack("{s:s}", "addr", nokey), &o),
			 404);
	json_decref(o);
	assert_int_equal(simnode_ctl(&W.c, "POST", "/v1/node/resolve",
				     json_pack("{s:s}", "key", "abc"), NULL),
			 400);
	/* E's record lists its NAT's outside address with its QUIC port: the
	 * address-dependent NAT has no such mapping, nobody answers there. */
	{
		struct rwait r = { &W.c, W.e.key, NULL };

		assert_int_equal(simnode_wait(rwait_cond, &r, 30000), 0);
	}
	assert_int_equal(simnode_ctl(&W.c, "POST", "/v1/quic/ping",
				     json_pack("{s:s,s:i}", "addr", W.e.key, "timeout_ms", 1500),
				     &o),
			 502);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "code")),
			    "unreachable");
	json_decref(o);
}

struct jwait {
	struct simnode *x;
	char path[64];
};

static int job_finished(void *arg)
{
	struct jwait *jw = arg;
	json_t *o = simnode_ok(jw->x, "GET", jw->path, NULL);
	const char *st = json_string_value(json_object_get(o, "state"));
	int done = st && (!strcmp(st, "done") || !strcmp(st, "failed"));

	json_decref(o);
	return done;
}

/* content get --from KEY: D (behind a NAT) downloads from A named by its
 * key alone; an unknown key is not_found before any job starts. */
static void test_content_from_key(void **state)
{
	static const char nokey[] =
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	static uint8_t data[300000], back[sizeof(data)];
	char path[1200], out[512], id[65];
	struct jwait jw = { .x = &W.d };
	json_t *o;
	FILE *f;

	(void)state;
	tu_fill(data, sizeof(data), 3);
	assert_int_equal(tu_write(W.a.dir, "blob.bin", data, sizeof(data), 0600), 0);
	snprintf(path, sizeof(path), "%s/blob.bin", W.a.dir);
	o = simnode_ok(&W.a, "POST", "/v1/content/add", json_pack("{s:[s]}", "paths", path));
	snprintf(id, sizeof(id), "%s",
		 json_string_value(json_object_get(json_array_get(json_object_get(o, "items"), 0),
						   "id")));
	json_decref(o);
	snprintf(out, sizeof(out), "%s/out", W.d.dir);
	assert_int_equal(mkdir(out, 0700), 0);
	assert_int_equal(simnode_ctl(&W.d, "POST", "/v1/content/get",
				     json_pack("{s:s,s:s,s:[s]}", "id", id, "out", out, "from", nokey),
				     &o),
			 404);
	json_decref(o);
	o = simnode_ok(&W.d, "POST", "/v1/content/get",
		       json_pack("{s:s,s:s,s:[s]}", "id", id, "out", out, "from", W.a.key));
	snprintf(jw.path, sizeof(jw.path), "/v1/content/jobs/%lld",
		 (long long)json_integer_value(json_object_get(o, "job")));
	json_decref(o);
	assert_int_equal(simnode_wait(job_finished, &jw, 60000), 0);
	o = simnode_ok(&W.d, "GET", jw.path, NULL);
	if (strcmp(json_string_value(json_object_get(o, "state")), "done"))
		fail_msg("download failed: %s", json_dumps(o, JSON_COMPACT));
	json_decref(o);
	snprintf(path, sizeof(path), "%s/%s", out, id);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(back, 1, sizeof(back), f), sizeof(back));
	fclose(f);
	assert_memory_equal(back, data, sizeof(data));
}

static int cached(struct simnode *x, const char *key)
{
	json_t *o = simnode_ok(x, "POST", "/v1/node/resolve", json_pack("{s:s}", "key", key));
	int c = json_is_true(json_object_get(o, "cached"));

	json_decref(o);
	return c;
}

static void test_cache(void **state)
{
	(void)state;
	/* C keeps 2 records for 5 s. */
	json_decref(simnode_ok(&W.c, "POST", "/v1/node/resolve",
			       json_pack("{s:s,s:b}", "key", W.a.key, "fresh", 1)));
	assert_true(cached(&W.c, W.a.key));
	assert_false(cached(&W.c, W.b.key));
	assert_true(cached(&W.c, W.b.key));
	assert_true(cached(&W.c, W.a.key)); /* A is now the most recently used */
	assert_false(cached(&W.c, W.d.key)); /* evicts B */
	assert_true(cached(&W.c, W.a.key));
	assert_false(cached(&W.c, W.b.key));
	/* 6 s later every entry has expired. */
	simnet_advance(W.w.sn, 6000000000ULL);
	assert_false(cached(&W.c, W.a.key));
}

struct pwait {
	struct simnode *x;
	json_int_t above;
};

static int puts_above(void *arg)
{
	struct pwait *pw = arg;

	return simnode_get_int(pw->x, "/v1/status", "record_puts", NULL) > pw->above;
}

static int retry_set(void *arg)
{
	return simnode_get_int(arg, "/v1/status", "record_put_retry_ms", NULL) > 0;
}

/* A put stored on fewer than CONN_PUT_FULL nodes (this world has 5: every
 * put is short) is put again after record_put_retry_ms, which then
 * doubles, with no change to the record (a node that put its record while
 * the DHT was still small would otherwise be found by nobody for 30 min). */
static void test_put_retry(void **state)
{
	struct pwait pw = { &W.b, 0 };
	json_int_t retry, again;

	(void)state;
	/* the first put's lookup may still be on its way */
	assert_int_equal(simnode_wait(retry_set, &W.b, 30000), 0);
	retry = simnode_get_int(&W.b, "/v1/status", "record_put_retry_ms", NULL);
	assert_true(retry >= CONN_CHECK_MS);
	assert_true(retry < CONN_REPUBLISH_S * 1000LL);
	pw.above = simnode_get_int(&W.b, "/v1/status", "record_puts", NULL);
	simnet_advance(W.w.sn, ((uint64_t)retry + CONN_CHECK_MS) * 1000000ULL);
	assert_int_equal(simnode_wait(puts_above, &pw, 30000), 0);
	again = simnode_get_int(&W.b, "/v1/status", "record_put_retry_ms", NULL);
	for (int i = 0; i < 300 && again == retry; i++) {
		usleep(10000); /* the put's lookup ends on worker 0 */
		again = simnode_get_int(&W.b, "/v1/status", "record_put_retry_ms", NULL);
	}
	/* doubled (more than once if a put fell due on its own meanwhile) */
	assert_true(again >= retry * 2 || (again == 0 && retry * 2 >= CONN_REPUBLISH_S * 1000LL));
}

/* Republish before BEP 44's 2 h expiry: 31 min later (simulated clock)
 * every node has put its record again. Last: the jump ages everything. */
static void test_republish(void **state)
{
	struct pwait pw[] = { { &W.a, 0 }, { &W.b, 0 }, { &W.d, 0 } };

	(void)state;
	for (size_t i = 0; i < 3; i++)
		pw[i].above = simnode_get_int(pw[i].x, "/v1/status", "record_puts", NULL);
	simnet_advance(W.w.sn, (CONN_REPUBLISH_S + 60) * 1000000000ULL);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(simnode_wait(puts_above, &pw[i], 30000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records_everywhere),
		cmocka_unit_test(test_put_retry),
		cmocka_unit_test(test_nat_classes),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_content_from_key),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_republish),
	};

	return cmocka_run_group_tests_name("sim_conn", tests, setup, teardown);
}
