// SPDX-License-Identifier: MIT
/*
 * The service fabric across three complete nodes in this process, on a
 * simulated network (the in-process port of the first and last parts of
 * tests/integration/test_svc_fabric.sh; no root, no namespace):
 *
 *  - discover and call: A publishes echo; B is the only DHT contact of A
 *    and C; C finds echo through the DHT (owner A, A's endpoint) and calls
 *    it over QUIC, once and 40 times with concurrency 8.
 *  - a caller behind an address-dependent NAT (D) discovers and calls the
 *    same service through its mappings.
 *  - the ban pipeline: A allows 80 calls a minute per peer
 *    (svc.peer_calls_per_min); C makes 130: it gets rate_limited answers,
 *    A answered at most 80, A's guard bans C's address, and then A's
 *    software policer drops C's datagrams (drop_banned rises, A's router
 *    sees no more calls) while C's calls fail.
 *
 * Every step goes through the control handlers (ctl_dispatch).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "weft/simnet.h"
#include "world.h"

struct scene {
	struct world w; /* the network and its nodes (tests/lib/world.h) */
	struct simnet_nat *nat;
	struct simnode a, b, c, d; /* d: behind an address-dependent NAT */
};

static struct scene W;

static int announced(void *arg)
{
	struct scene *w = arg;
	json_t *o = simnode_ok(&w->a, "GET", "/v1/svc/ls", NULL), *s;
	size_t i;
	int ok = 1;

	json_array_foreach(json_object_get(o, "services"), i, s) ok &=
	    json_integer_value(json_object_get(s, "announced")) >= 1;
	json_decref(o);
	return ok;
}

static int setup(void **state)
{
	static const char *const a_set[] = {"svc.peer_calls_per_min=80", NULL};
	struct simnet_link lan = {.latency_us = 500, .jitter_us = 200};

	(void)state;
	world_new(&W.w, 13);
	world_bootstrap(&W.w, &W.b, NULL);
	world_node(&W.w, &W.a, "A", "198.51.100.1", NULL, a_set);
	world_node(&W.w, &W.c, "C", "198.51.100.3", NULL, NULL);
	W.nat = world_nat(&W.w, "198.51.100.100", SIMNET_NAT_ADF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.d, "D", "10.0.0.4", W.nat, NULL);
	simnet_host_set_link(W.a.host, &lan);
	simnet_host_set_link(W.c.host, &lan);
	world_dht_formed(1, 10000, &W.a, &W.c, NULL);
	assert_int_equal(
	    simnode_get_int(&W.a, "/v1/svc/stats", "limits", "peer_calls_per_min", NULL), 80);
	assert_int_equal(
	    simnode_get_int(&W.c, "/v1/svc/stats", "limits", "peer_calls_per_min", NULL), 100);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

static void test_discover_and_call(void **state)
{
	json_t *o, *r0;
	char want_ep[64];
	const char *id;
	char path[128];

	(void)state;
	json_decref(simnode_ok(&W.a, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s}", "name", "echo", "backend", "builtin")));
	assert_int_equal(simnode_ctl(&W.a, "POST", "/v1/svc/publish",
				     json_pack("{s:s,s:s}", "name", "nope", "backend", "ftp:x"),
				     NULL),
			 400);
	assert_int_equal(simnode_wait(announced, &W, 10000), 0);

	o = simnode_ok(&W.c, "GET", "/v1/svc/find/echo", NULL);
	r0 = json_array_get(json_object_get(o, "results"), 0);
	assert_non_null(r0);
	assert_string_equal(json_string_value(json_object_get(r0, "owner")), W.a.key);
	snprintf(want_ep, sizeof(want_ep), "\"%s:4433\"", W.a.ip);
	{
		char *s = json_dumps(r0, JSON_COMPACT);

		if (!strstr(s, want_ep))
			fail_msg("endpoint %s missing: %s", want_ep, s);
		free(s);
	}
	id = json_string_value(json_object_get(r0, "id"));
	assert_non_null(id);
	snprintf(path, sizeof(path), "/v1/svc/find/%s", id);
	json_decref(o);
	o = simnode_ok(&W.c, "GET", path, NULL);
	r0 = json_array_get(json_object_get(o, "results"), 0);
	assert_string_equal(json_string_value(json_object_get(r0, "owner")), W.a.key);
	json_decref(o);

	o = simnode_ok(
	    &W.c, "POST", "/v1/svc/call",
	    json_pack("{s:s,s:s,s:s}", "name", "echo", "method", "ping", "data", "hello mesh"));
	assert_string_equal(json_string_value(json_object_get(o, "data")), "hello mesh");
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	json_decref(o);

	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s,s:i,s:i}", "name", "echo", "method", "ping", "data",
				 "x", "count", 40, "concurrency", 8));
	assert_int_equal(json_integer_value(json_object_get(o, "ok")), 40);
	json_decref(o);
	assert_int_equal(simnode_ctl(&W.c, "POST", "/v1/svc/call",
				     json_pack("{s:s,s:s}", "name", "nosuch", "method", "x"), NULL),
			 404);
}

static int d_knows_b(void *arg)
{
	struct scene *w = arg;

	return simnode_get_int(&w->d, "/v1/dht/status", "nodes4", NULL) >= 1;
}

/* D sits behind an address-dependent NAT: it reaches B's DHT and A's
 * service through its mapping, and the answers come back through it. */
static void test_call_from_behind_nat(void **state)
{
	struct simnet_stats st;
	json_t *o;

	(void)state;
	assert_int_equal(simnode_wait(d_knows_b, &W, 10000), 0);
	o = simnode_ok(&W.d, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s}", "name", "echo", "method", "ping", "data",
				 "through the NAT"));
	assert_string_equal(json_string_value(json_object_get(o, "data")), "through the NAT");
	json_decref(o);
	simnet_stats_get(W.w.sn, &st);
	/* One mapping for the DHT port, one for QUIC (both used). */
	assert_true(st.nat_mapped >= 2);
	assert_true(simnet_nat_mappings(W.nat) >= 2);
}

static int c_banned(void *arg)
{
	struct scene *w = arg;
	json_t *o = simnode_ok(&w->a, "GET", "/v1/bans", NULL);
	char *s = json_dumps(o, JSON_COMPACT);
	char want[64];
	int r;

	snprintf(want, sizeof(want), "\"%s/32\"", w->c.ip);
	r = strstr(s, want) != NULL;
	free(s);
	json_decref(o);
	return r;
}

static void test_ban_pipeline(void **state)
{
	json_int_t n0, nok, c0, c1, r0, r1;
	json_t *o;
	int st;

	(void)state;
	/* Over A's per-peer rate: rate_limited answers. Everything C sent A
	 * so far fits in one minute: its 41 earlier calls (1 + 40) and the
	 * flood's ok answers are at most 80 together. */
	n0 = simnode_get_int(&W.a, "/v1/svc/stats", "router", "results", "ok", NULL);
	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "name", "echo", "method", "x", "data",
				 "x", "count", 130, "concurrency", 8, "timeout_ms", 300));
	assert_true(json_integer_value(
			json_object_get(json_object_get(o, "errors"), "rate_limited")) >= 10);
	nok = json_integer_value(json_object_get(o, "ok"));
	json_decref(o);
	assert_int_equal(
	    simnode_get_int(&W.a, "/v1/svc/stats", "router", "results", "ok", NULL) - n0, nok);
	assert_in_range(41 + nok, 60, 80);

	/* The guard bans C's address... */
	if (simnode_wait(c_banned, &W, 5000)) {
		o = simnode_ok(&W.a, "GET", "/v1/bans", NULL);
		fail_msg("C not banned: %s", json_dumps(o, JSON_COMPACT));
	}

	/* ...and A's software policer drops C's datagrams before any
	 * handler: C's calls fail, A's router sees none of them. */
	c0 = simnode_get_int(&W.a, "/v1/xdp/status", "counters", "drop_banned", NULL);
	r0 = simnode_get_int(&W.a, "/v1/svc/stats", "fabric", "calls_in", NULL);
	st = simnode_ctl(&W.c, "POST", "/v1/svc/call",
			 json_pack("{s:s,s:s,s:s,s:i}", "name", "echo", "method", "x", "data", "x",
				   "timeout_ms", 300),
			 &o);
	/* An error status, or a 200 whose call result is not ok. */
	if (st == 200)
		assert_string_not_equal(json_string_value(json_object_get(o, "error")), "ok");
	else
		assert_true(st >= 400);
	json_decref(o);
	c1 = simnode_get_int(&W.a, "/v1/xdp/status", "counters", "drop_banned", NULL);
	r1 = simnode_get_int(&W.a, "/v1/svc/stats", "fabric", "calls_in", NULL);
	assert_true(c1 > c0);
	assert_int_equal(r1, r0);
	print_message("ban pipeline: %lld flood calls ok of 130, drop_banned %lld -> %lld\n",
		      (long long)nok, (long long)c0, (long long)c1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_discover_and_call),
	    cmocka_unit_test(test_call_from_behind_nat),
	    cmocka_unit_test(test_ban_pipeline),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("sim_svc", tests, setup, teardown);
}
