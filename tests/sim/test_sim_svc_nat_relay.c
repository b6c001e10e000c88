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

#include "simnode.h"
#include "testutil.h"
#include "weft/simnet.h"

struct world {
	struct simnet *sn;
	struct simnet_nat *nat;
	struct simnode b, r, c, q;
	char use[160]; /* relay.use=R */
};

static struct world W;

static int dht_formed(void *arg)
{
	struct simnode *n[] = { &W.r, &W.c, &W.q };

	(void)arg;
	for (size_t i = 0; i < 3; i++)
		if (simnode_get_int(n[i], "/v1/dht/status", "nodes4", NULL) < 1)
			return 0;
	return 1;
}

static int setup(void **state)
{
	struct simnet_opts so = { .seed = 1417, .clock = SIMNET_CLOCK_REAL };
	static const char *const pub[] = { "dht.bootstrap=198.51.100.2:6881", NULL };
	static const char *const relay[] = { "dht.bootstrap=198.51.100.2:6881", "relay.enable=true",
					     NULL };
	const char *natq[] = { "dht.bootstrap=198.51.100.2:6881", W.use, NULL };
	struct io_addr out;

	(void)state;
	assert_int_equal(simnet_new(&W.sn, &so), 0);
	simnode_new(&W.b, W.sn, "B", "198.51.100.2", NULL, NULL, NULL, NULL);
	simnode_new(&W.r, W.sn, "R", "198.51.101.3", NULL, relay, NULL, NULL);
	snprintf(W.use, sizeof(W.use), "relay.use=%s@198.51.101.3:4433", W.r.key);
	simnode_new(&W.c, W.sn, "C", "198.51.102.3", NULL, pub, NULL, NULL);
	assert_int_equal(io_addr_parse(&out, "198.51.103.100", 0), 0);
	assert_int_equal(simnet_nat_add(W.sn, &out, SIMNET_NAT_APDF, 0, &W.nat), 0);
	assert_int_equal(simnet_nat_set_mapping(W.nat, SIMNET_NAT_MAP_ADM), 0);
	simnode_new(&W.q, W.sn, "Q", "10.0.0.4", W.nat, natq, NULL, NULL);
	assert_int_equal(simnode_wait(dht_formed, NULL, 30000), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	simnode_free(&W.q);
	simnode_free(&W.c);
	simnode_free(&W.r);
	simnode_free(&W.b);
	simnet_free(W.sn);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_found_behind_filtering_nat),
	};

	return cmocka_run_group_tests_name("sim_svc_nat_relay", tests, setup, teardown);
}
