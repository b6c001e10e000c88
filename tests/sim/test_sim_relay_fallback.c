// SPDX-License-Identifier: MIT
/*
 * A circuit request on a reservation connection that has no stream to
 * spare (simnet, no root; docs/CONNECTIVITY.md, "Circuit"):
 *
 *   B  198.51.100.2  public DHT bootstrap
 *   R  198.51.101.3  public relay; quic.max_streams = 4 (each peer opens
 *                    at most 4 streams at once on a connection to R)
 *   D  10.0.0.4      behind an EIM NAT with APDF filtering, holds a
 *                    reservation with R
 *   E  10.0.1.5      the same behind a NAT of its own
 *
 * D asks R for circuits to E. Each goes on D's reservation connection
 * (`dials_shared`) and keeps its CONNECT stream open while the circuit
 * lives, so with the reservation's stream R's limit is soon reached: the
 * next request cannot open its stream there (QUIC's stream limit) and
 * dials a connection of its own to R (`dials_own`, `dials_fallback`;
 * `dials_shared` does not move). That circuit works: D pings E by key
 * through it, and R's data plane forwarded that circuit's packets both
 * ways. D's reservation is still held, never lost.
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
	struct simnet_nat *nd, *ne;
	struct simnode b, r, d, e;
};

static struct scene W;

static int setup(void **state)
{
	/* Circuits never idle out during the test (each keeps its CONNECT
	 * stream on D's connection only while it lives). */
	static const char *const relay[] = { "quic.max_streams=4",
					     "relay.circuits_per_reservation=8",
					     "relay.circuit_idle_ms=600000", NULL };
	const char *nat[] = { W.w.use, "relay.reserve=always", NULL };

	(void)state;
	world_new(&W.w, 1417);
	world_bootstrap(&W.w, &W.b, NULL);
	world_relay(&W.w, &W.r, relay);
	W.nd = world_nat(&W.w, "198.51.102.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.d, "D", "10.0.0.4", W.nd, nat);
	W.ne = world_nat(&W.w, "198.51.103.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.e, "E", "10.0.1.5", W.ne, nat);
	world_dht_formed(1, 30000, &W.r, &W.d, &W.e, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

/* x's reservation with R: its state ("held") and how often it was lost. */
static int held(struct simnode *x, json_int_t *lost)
{
	json_t *o = simnode_ok(x, "GET", "/v1/relay/status", NULL);
	json_t *u = json_array_get(json_object_get(o, "use"), 0);
	const char *st = u ? json_string_value(json_object_get(u, "state")) : NULL;
	int ok = st && !strcmp(st, "held");

	if (lost)
		*lost = u ? json_integer_value(json_object_get(u, "lost")) : -1;
	json_decref(o);
	return ok;
}

static int reserved_at_r(const char *key)
{
	return simnode_relay_holds(&W.r, key);
}

static int both_held(void *arg)
{
	(void)arg;
	return held(&W.d, NULL) && held(&W.e, NULL) && reserved_at_r(W.d.key) &&
	       reserved_at_r(W.e.key);
}

static json_int_t d_counter(const char *name)
{
	return simnode_get_int(&W.d, "/v1/relay/status", "counters", name, NULL);
}

/* R's data plane: packets forwarded from each end of the circuit at port. */
static void circuit_pkts(uint16_t port, json_int_t *from_dialler, json_int_t *from_holder)
{
	json_t *o = simnode_ok(&W.r, "GET", "/v1/relay/circuits", NULL), *x;
	size_t i;

	*from_dialler = *from_holder = -1;
	json_array_foreach(json_object_get(o, "circuits"), i, x) {
		json_t *ends = json_object_get(x, "ends");

		if (json_integer_value(json_object_get(x, "port")) != port)
			continue;
		*from_dialler = json_integer_value(json_object_get(json_array_get(ends, 0), "pkts"));
		*from_holder = json_integer_value(json_object_get(json_array_get(ends, 1), "pkts"));
	}
	json_decref(o);
}

static void test_fallback(void **state)
{
	char via[160], addr[64] = "", target[160];
	json_int_t shared0, own0, fb0, lost = -1, pd, ph;
	int k, fell_back = 0, shared_first = 0;
	const char *colon;
	json_t *o;

	(void)state;
	assert_int_equal(simnode_wait(both_held, NULL, 30000), 0);
	snprintf(via, sizeof(via), "%s@198.51.101.3:4433", W.r.key);
	/* R lets D open 4 streams at once: the reservation's and at most 3
	 * CONNECT streams of live circuits, fewer when another stream of D's
	 * is open there (the observed-address one). So by the 4th request
	 * one has fallen back; 8 circuits are allowed towards E. */
	for (k = 0; k < 6 && !fell_back; k++) {
		json_int_t s, w, f;

		shared0 = d_counter("dials_shared");
		own0 = d_counter("dials_own");
		fb0 = d_counter("dials_fallback");
		o = simnode_ok(&W.d, "POST", "/v1/relay/connect",
			       json_pack("{s:s,s:s}", "relay", via, "target", W.e.key));
		snprintf(addr, sizeof(addr), "%s", json_string_value(json_object_get(o, "addr")));
		json_decref(o);
		s = d_counter("dials_shared");
		w = d_counter("dials_own");
		f = d_counter("dials_fallback");
		if (s == shared0 + 1) {
			/* On the reservation connection. */
			assert_int_equal(w, own0);
			assert_int_equal(f, fb0);
			shared_first++;
			continue;
		}
		/* No stream to spare there: a connection of its own. */
		assert_int_equal(s, shared0);
		assert_int_equal(w, own0 + 1);
		assert_int_equal(f, fb0 + 1);
		fell_back = 1;
	}
	assert_true(fell_back);
	assert_true(shared_first >= 1); /* the limit was reached by shared requests */
	assert_int_equal(d_counter("dials_own"), 1);
	/* The fallback's circuit carries a QUIC connection to E, pinned to
	 * E's key: a ping through relay:PORT. */
	colon = strrchr(addr, ':');
	assert_non_null(colon);
	assert_non_null(strstr(addr, "198.51.101.3:"));
	snprintf(target, sizeof(target), "%s@%s", W.e.key, addr);
	o = simnode_ok(&W.d, "POST", "/v1/quic/ping",
		       json_pack("{s:s,s:i}", "addr", target, "timeout_ms", 10000));
	assert_string_equal(json_string_value(json_object_get(o, "peer_key")), W.e.key);
	json_decref(o);
	circuit_pkts((uint16_t)atoi(colon + 1), &pd, &ph);
	assert_true(pd > 0);
	assert_true(ph > 0);
	/* D's reservation never noticed: still held at both ends, never lost. */
	assert_true(held(&W.d, &lost));
	assert_int_equal(lost, 0);
	assert_true(reserved_at_r(W.d.key));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fallback),
	};

	return cmocka_run_group_tests_name("sim_relay_fallback", tests, setup, teardown);
}
