// SPDX-License-Identifier: MIT
/*
 * A service provider behind a NAT is found and called from outside
 * (simnet, no root):
 *
 *   B  198.51.100.2  public DHT bootstrap
 *   C  198.51.102.3  public client
 *   P  10.0.0.4      provider behind an endpoint-independent NAT with
 *                    endpoint-independent filtering (outside address
 *                    198.51.103.100; outside ports from 20000, never the
 *                    inside port)
 *
 * The DHT records an announce at the address it came from (the NAT's)
 * with the port the announce names. P's QUIC socket is mapped to another
 * port than 4433, so an announce of 4433 points at nothing. Once P's
 * address votes agree on the mapped port of its QUIC socket (two QUIC
 * peers in distinct /24s: P pings B and C), P announces its services
 * again with that port; C's `svc find` then fetches the descriptor
 * through the NAT, and C's call reaches P (its descriptor lists P's
 * inside address; the call goes on to P's key: its node record lists the
 * reflexive address).
 *
 * Then from behind a NAT: D (10.0.2.5, behind an address-dependent
 * mapping with address- and port-dependent filtering, outside
 * 198.51.104.100) finds and calls P's echo.
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
	struct simnode b, c, p, d;
};

static struct scene W;

static int setup(void **state)
{
	(void)state;
	world_new(&W.w, 1415);
	world_bootstrap(&W.w, &W.b, NULL);
	world_node(&W.w, &W.c, "C", "198.51.102.3", NULL, NULL);
	W.nat = world_nat(&W.w, "198.51.103.100", SIMNET_NAT_EIF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.p, "P", "10.0.0.4", W.nat, NULL);
	W.nat_d = world_nat(&W.w, "198.51.104.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_ADM);
	world_node(&W.w, &W.d, "D", "10.0.2.5", W.nat_d, NULL);
	world_dht_formed(1, 30000, &W.c, &W.p, &W.d, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

/* P's reflexive IPv4 address, as its status shows it, into buf. */
static int p_reflexive(char *buf, size_t len)
{
	json_t *o = simnode_ok(&W.p, "GET", "/v1/status", NULL);
	json_t *r = json_array_get(json_object_get(o, "reflexive"), 0);
	int ok = r != NULL;

	snprintf(buf, len, "%s", r ? json_string_value(json_object_get(r, "addr")) : "");
	json_decref(o);
	return ok;
}

/* The votes agree on the NAT's address and the mapped port of P's QUIC
 * socket (a port 0 means "not agreed"). */
static int p_port_known(void *arg)
{
	char a[64];

	(void)arg;
	return p_reflexive(a, sizeof(a)) && !strncmp(a, "198.51.103.100:", 15) &&
	       strcmp(a, "198.51.103.100:0") && strcmp(a, "198.51.103.100:4433");
}

static int c_finds_echo(void *arg)
{
	(void)arg;
	return simnode_finds(&W.c, "echo");
}

static void test_found_behind_eif_nat(void **state)
{
	json_t *o;

	(void)state;
	json_decref(simnode_ok(&W.p, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s}", "name", "echo", "backend", "builtin")));
	/* P talks QUIC to two peers in distinct /24s: each tells P the
	 * address and port it sees P's QUIC socket at. */
	json_decref(simnode_ok(&W.p, "POST", "/v1/quic/ping",
			       json_pack("{s:s}", "addr", "198.51.100.2:4433")));
	json_decref(simnode_ok(&W.p, "POST", "/v1/quic/ping",
			       json_pack("{s:s}", "addr", "198.51.102.3:4433")));
	assert_int_equal(simnode_wait(p_port_known, NULL, 30000), 0);
	/* P announces again with the mapped port (within the 2 s refresh
	 * turn); C finds it through the NAT. */
	assert_int_equal(simnode_wait(c_finds_echo, NULL, 30000), 0);
	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s,s:i}", "name", "echo", "method", "ping", "data",
				 "through the NAT", "timeout_ms", 20000));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	assert_string_equal(json_string_value(json_object_get(o, "peer")), W.p.key);
	assert_string_equal(json_string_value(json_object_get(o, "data")), "through the NAT");
	json_decref(o);
}

/* A caller behind a random-fully NAT of its own finds and calls P. */
static void test_called_from_behind_a_nat(void **state)
{
	json_t *o, *r;

	(void)state;
	o = simnode_ok(&W.d, "GET", "/v1/svc/find/echo", NULL);
	r = json_array_get(json_object_get(o, "results"), 0);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "owner")), W.p.key);
	json_decref(o);
	o = simnode_ok(&W.d, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s,s:i}", "name", "echo", "method", "ping", "data",
				 "nat to nat", "timeout_ms", 20000));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	assert_string_equal(json_string_value(json_object_get(o, "peer")), W.p.key);
	assert_string_equal(json_string_value(json_object_get(o, "data")), "nat to nat");
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_found_behind_eif_nat),
		cmocka_unit_test(test_called_from_behind_a_nat),
	};

	return cmocka_run_group_tests_name("sim_svc_nat", tests, setup, teardown);
}
