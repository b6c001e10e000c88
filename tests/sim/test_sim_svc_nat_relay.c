// SPDX-License-Identifier: MIT
/*
 * A service provider behind a filtering NAT is found by name and called
 * through a relay (simnet, no root):
 *
 *   B  198.51.100.2  public DHT bootstrap
 *   R  198.51.101.3  public relay (relay.enable)
 *   C  198.51.102.3  public client
 *   Q  10.0.0.4      provider behind an address-dependent mapping with
 *                    address- and port-dependent filtering (outside
 *                    198.51.103.100: a new port per remote address, like
 *                    nftables `masquerade random-fully`), relay.use = R
 *
 * The DHT stores Q's announce at the NAT's address; C's descriptor fetch
 * there is dropped by Q's NAT (nothing Q sent to C opened it), and the
 * QUIC port behind it is unknown anyway. Q's announce carries its key
 * claim (the DHT's "wk"): C checks the signature, resolves Q's node
 * record, which lists R, fetches the descriptor through a circuit of R
 * with Q's key pinned, and calls Q's service by name.
 *
 * Then the same from behind a NAT: D (10.0.2.5, behind another
 * random-fully NAT, outside 198.51.104.100) finds Q's echo by its key
 * claim and calls it through R.
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

#include "testutil.h"
#include "weft/simnet.h"
#include "world.h"

struct scene {
	struct world w; /* the network and its nodes (tests/lib/world.h) */
	struct simnet_nat *nat, *nat_d;
	struct simnode b, r, c, q, d;
};

static struct scene W;

static int setup(void **state)
{
	const char *natq[] = { W.w.use, NULL };

	(void)state;
	world_new(&W.w, 1417);
	world_bootstrap(&W.w, &W.b, NULL);
	world_relay(&W.w, &W.r, NULL);
	world_node(&W.w, &W.c, "C", "198.51.102.3", NULL, NULL);
	W.nat = world_nat(&W.w, "198.51.103.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_ADM);
	world_node(&W.w, &W.q, "Q", "10.0.0.4", W.nat, natq);
	W.nat_d = world_nat(&W.w, "198.51.104.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_ADM);
	world_node(&W.w, &W.d, "D", "10.0.2.5", W.nat_d, NULL);
	world_dht_formed(1, 30000, &W.r, &W.c, &W.q, &W.d, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

/* Q's record, resolved fresh from B, lists R. */
static int q_lists_r(void *arg)
{
	(void)arg;
	return simnode_lists_relay(&W.b, W.q.key, W.r.key);
}

/* Q's announce of echo was stored. */
static int q_announced(void *arg)
{
	json_t *o = simnode_ok(&W.q, "GET", "/v1/svc/ls", NULL), *s;
	size_t i;
	int ok = 0;

	(void)arg;
	json_array_foreach(json_object_get(o, "services"), i, s)
		ok |= json_integer_value(json_object_get(s, "announced")) > 0;
	json_decref(o);
	return ok;
}

static void test_found_behind_filtering_nat(void **state)
{
	json_t *o, *r;

	(void)state;
	json_decref(simnode_ok(&W.q, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s}", "name", "echo", "backend", "builtin")));
	assert_int_equal(simnode_wait(q_lists_r, NULL, 30000), 0);
	assert_int_equal(simnode_wait(q_announced, NULL, 30000), 0);
	/* Found by name: the announce's address gave nothing, its key claim
	 * led to Q's record and R's circuit. */
	o = simnode_ok(&W.c, "GET", "/v1/svc/find/echo", NULL);
	r = json_array_get(json_object_get(o, "results"), 0);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "owner")), W.q.key);
	json_decref(o);
	assert_int_equal(simnode_get_int(&W.c, "/v1/svc/stats", "fabric", "find_by_key", "found",
					 NULL),
			 1);
	assert_true(simnode_get_int(&W.r, "/v1/relay/status", "counters", "circuits", NULL) >= 1);
	/* Called by name, through the relay. */
	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s,s:i}", "name", "echo", "method", "ping", "data",
				 "through the relay", "timeout_ms", 20000));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	assert_string_equal(json_string_value(json_object_get(o, "peer")), W.q.key);
	assert_string_equal(json_string_value(json_object_get(o, "data")), "through the relay");
	json_decref(o);
}

/* A caller behind a random-fully NAT of its own finds and calls Q. */
static void test_called_from_behind_a_nat(void **state)
{
	json_t *o, *r;

	(void)state;
	o = simnode_ok(&W.d, "GET", "/v1/svc/find/echo", NULL);
	r = json_array_get(json_object_get(o, "results"), 0);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "owner")), W.q.key);
	json_decref(o);
	o = simnode_ok(&W.d, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s,s:i}", "name", "echo", "method", "ping", "data",
				 "nat to nat", "timeout_ms", 20000));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	assert_string_equal(json_string_value(json_object_get(o, "peer")), W.q.key);
	assert_string_equal(json_string_value(json_object_get(o, "data")), "nat to nat");
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_found_behind_filtering_nat),
		cmocka_unit_test(test_called_from_behind_a_nat),
	};

	return cmocka_run_group_tests_name("sim_svc_nat_relay", tests, setup, teardown);
}
