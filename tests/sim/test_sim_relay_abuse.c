// SPDX-License-Identifier: MIT
/*
 * Abuse of a relay feeds the ban pipeline, on validated sources only
 * (simnet, no root; docs/OPERATIONS.md, "The abuse pipeline"):
 *
 *   B  198.51.100.2  public DHT bootstrap
 *   R  198.51.101.3  public relay: circuit_pps 50, burst 50, flood_drops 20
 *   D  10.0.0.4      behind an EIM NAT with APDF filtering, holds a
 *                    reservation with R
 *   C  198.51.102.3  public dialler
 *   X  198.51.106.6  a bare host (no weft) that sends junk to relay ports
 *
 * C pings D by key: a circuit of R joins C (its CONNECT connection from
 * 198.51.102.3:4433, validated by the handshake) and D. X's junk at the
 * circuit's port comes from no latched end: dropped and counted, never
 * charged to an end, never banned. Then C floods the circuit from its
 * QUIC port, far over the circuit's rate: three windows in a row over
 * flood_drops end the circuit and ban C's address (the latched address is
 * the one C's QUIC handshake validated); D is told (ENDED, deleted).
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
	struct simnet_nat *nat;
	struct simnet_host *x;
	struct simnode b, r, d, c;
	struct io_addr circ; /* relay:PORT of C's circuit */
};

static struct scene W;

static int setup(void **state)
{
	static const char *const relay[] = { "relay.circuit_pps=50", "relay.circuit_burst=50",
					     "relay.flood_drops=20", NULL };
	const char *natd[] = { W.w.use, NULL };
	struct io_addr a;

	(void)state;
	world_new(&W.w, 1416);
	world_bootstrap(&W.w, &W.b, NULL);
	world_relay(&W.w, &W.r, relay);
	W.nat = world_nat(&W.w, "198.51.102.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.d, "D", "10.0.0.4", W.nat, natd);
	world_node(&W.w, &W.c, "C", "198.51.102.3", NULL, NULL);
	assert_int_equal(io_addr_parse(&a, "198.51.106.6", 0), 0);
	assert_int_equal(simnet_host_add(W.w.sn, &a, NULL, &W.x), 0);
	world_dht_formed(1, 30000, &W.r, &W.d, &W.c, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

/* D holds its reservation and its record (seen from C) lists R. */
static int d_reachable(void *arg)
{
	json_t *o = NULL;
	int ok = 0;

	(void)arg;
	if (simnode_ctl(&W.c, "POST", "/v1/node/resolve",
			json_pack("{s:s,s:b}", "key", W.d.key, "fresh", 1), &o) == 200)
		ok = json_array_size(json_object_get(o, "relays")) >= 1;
	json_decref(o);
	return ok;
}

static json_int_t r_counter(const char *name)
{
	return simnode_get_int(&W.r, "/v1/relay/status", "counters", name, NULL);
}

/* R's ban list has cidr. */
static int r_bans(const char *cidr)
{
	json_t *o = simnode_ok(&W.r, "GET", "/v1/bans", NULL), *x;
	size_t i;
	int found = 0;

	json_array_foreach(json_object_get(o, "bans"), i, x)
		found |= !strcmp(json_string_value(json_object_get(x, "cidr")), cidr);
	json_decref(o);
	return found;
}

static json_int_t r_drop_unknown(void)
{
	return simnode_get_int(&W.r, "/v1/relay/status", "data_plane", "drop_unknown", NULL);
}

struct flood {
	struct simnet_host *h;
	uint16_t sport;
	json_int_t want_unknown; /* X: until R counted this many unknown drops */
};

/* Send a burst at the circuit's port; done when R banned C (C's flood) or
 * counted X's junk (X's). 100 datagrams a turn, a turn a millisecond:
 * far over 50/s, whatever the machine's speed (a slow turn only makes
 * the windows longer, never quieter than 100 datagrams). */
static int flood_turn(void *arg)
{
	struct flood *f = arg;
	uint8_t junk[100];

	memset(junk, 0x5a, sizeof(junk));
	for (int i = 0; i < 100; i++)
		simnet_send(f->h, f->sport, &W.circ, junk, sizeof(junk));
	if (f->want_unknown)
		return r_drop_unknown() >= f->want_unknown;
	return r_counter("flood_bans") >= 1;
}

static void test_flood_banned_validated_only(void **state)
{
	struct flood fx = { 0 }, fc = { 0 };
	json_t *o, *c;
	const char *addr;

	(void)state;
	assert_int_equal(simnode_wait(d_reachable, NULL, 30000), 0);
	/* C reaches D through a circuit of R. */
	o = simnode_ok(&W.c, "POST", "/v1/quic/ping",
		       json_pack("{s:s,s:i}", "addr", W.d.key, "timeout_ms", 10000));
	assert_string_equal(json_string_value(json_object_get(o, "peer_key")), W.d.key);
	json_decref(o);
	o = simnode_ok(&W.r, "GET", "/v1/relay/circuits", NULL);
	c = json_array_get(json_object_get(o, "circuits"), 0);
	assert_non_null(c);
	assert_string_equal(json_string_value(json_object_get(c, "dialler")), W.c.key);
	addr = json_string_value(json_object_get(json_array_get(json_object_get(c, "ends"), 0), "addr"));
	assert_string_equal(addr, "198.51.102.3:4433");
	assert_int_equal(io_addr_parse(&W.circ, "198.51.101.3", 0), 0);
	W.circ.port = (uint16_t)json_integer_value(json_object_get(c, "port"));
	json_decref(o);

	/* X's junk at the circuit's port: from no latched end, so dropped as
	 * unknown and never counted against an end. */
	fx.h = W.x;
	fx.sport = 5000;
	fx.want_unknown = r_drop_unknown() + 2000;
	assert_int_equal(simnode_wait(flood_turn, &fx, 30000), 0);
	assert_int_equal(r_counter("flood_cuts"), 0);
	assert_int_equal(r_counter("flood_bans"), 0);
	assert_false(r_bans("198.51.106.6/32"));

	/* C floods from its QUIC port (its latched end, the address its
	 * handshake validated): cut and banned. */
	fc.h = W.c.host;
	fc.sport = 4433;
	assert_int_equal(simnode_wait(flood_turn, &fc, 30000), 0);
	assert_true(r_counter("flood_cuts") >= 1);
	assert_true(r_bans("198.51.102.3/32"));
	assert_false(r_bans("198.51.106.6/32"));
	o = simnode_ok(&W.r, "GET", "/v1/relay/circuits", NULL);
	assert_int_equal(json_array_size(json_object_get(o, "circuits")), 0);
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flood_banned_validated_only),
	};

	return cmocka_run_group_tests_name("sim_relay_abuse", tests, setup, teardown);
}
