// SPDX-License-Identifier: MIT
/*
 * Relays taken from records seen (simnet, no root): the only way G and K
 * can find a relay is a node record they resolved earlier.
 *
 *   B  198.51.100.2  public DHT bootstrap
 *   R  198.51.101.3  public relay, relay.announce = false: nothing under
 *                    the relay infohash in the DHT
 *   X  10.0.0.4      behind an EIM NAT (APDF filtering), relay.use = R:
 *                    its record lists R
 *   G  10.0.1.5      behind an EIM NAT (APDF filtering), no relay.use
 *   K  10.0.2.6      behind an EIM NAT (APDF filtering), no relay.use
 *
 * G and K want a relay (relay.reserve = auto: behind NAT, no public
 * address) and find none: R does not announce, they have no relay.use.
 * G resolves X's record, which lists R (key and address): G takes a
 * reservation with R ("source": "record"). K resolves R's own record (the
 * relay capability flag and its address): K takes one too. B then pings G
 * by key alone: G's record lists R, the ping goes through a circuit.
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
	struct simnet_nat *nx, *ng, *nk;
	struct simnode b, r, x, g, k;
};

static struct scene W;

static int setup(void **state)
{
	static const char *const relay[] = { "relay.announce=false", NULL };
	const char *natx[] = { W.w.use, NULL };

	(void)state;
	world_new(&W.w, 1416);
	world_bootstrap(&W.w, &W.b, NULL);
	world_relay(&W.w, &W.r, relay);
	W.nx = world_nat(&W.w, "198.51.102.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.x, "X", "10.0.0.4", W.nx, natx);
	W.ng = world_nat(&W.w, "198.51.103.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.g, "G", "10.0.1.5", W.ng, NULL);
	W.nk = world_nat(&W.w, "198.51.104.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.k, "K", "10.0.2.6", W.nk, NULL);
	world_dht_formed(1, 30000, &W.r, &W.x, &W.g, &W.k, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

/* x's first relay slot: state and source into the buffers; 0 when none. */
static int first_use(struct simnode *x, char *st, char *src, size_t len)
{
	json_t *o = simnode_ok(x, "GET", "/v1/relay/status", NULL);
	json_t *u = json_array_get(json_object_get(o, "use"), 0);
	int ok = u != NULL;

	snprintf(st, len, "%s", u ? json_string_value(json_object_get(u, "state")) : "");
	snprintf(src, len, "%s", u ? json_string_value(json_object_get(u, "source")) : "");
	if (u)
		assert_string_equal(json_string_value(json_object_get(u, "key")), W.r.key);
	json_decref(o);
	return ok;
}

static int held_from_record(void *arg)
{
	struct simnode *x = arg;
	char st[32], src[32];

	return first_use(x, st, src, sizeof(st)) && !strcmp(st, "held") && !strcmp(src, "record");
}

/* x's record, resolved fresh from B, lists R. */
static int lists_r(void *arg)
{
	struct simnode *x = arg;

	return simnode_lists_relay(&W.b, x->key, W.r.key);
}

/* resolves[0] resolves resolves[1]'s record (one lookup, 10 s deadline):
 * retried by simnode_wait, since a lookup on a loaded host can miss its
 * deadline while the DHT holds the record (CI of stop 40). */
static int resolves(void *arg)
{
	struct simnode **xy = arg;

	return simnode_ctl(xy[0], "POST", "/v1/node/resolve",
			   json_pack("{s:s}", "key", xy[1]->key), NULL) == 200;
}

static int no_relay(struct simnode *x)
{
	json_t *o = simnode_ok(x, "GET", "/v1/relay/status", NULL);
	size_t n = json_array_size(json_object_get(o, "use"));

	json_decref(o);
	return n == 0;
}

static void test_relay_from_record(void **state)
{
	json_t *o;
	char st[32], src[32];

	(void)state;
	/* X holds R (configured); its record lists R. */
	assert_int_equal(simnode_wait(lists_r, &W.x, 30000), 0);
	/* R never announced itself; G and K know no relay. */
	assert_int_equal(simnode_get_int(&W.r, "/v1/relay/status", "dht", "announces", NULL), 0);
	assert_true(no_relay(&W.g));
	assert_true(no_relay(&W.k));
	assert_int_equal(simnode_get_int(&W.g, "/v1/relay/status", "dht", "relays_found", NULL), 0);
	/* G sees X's record: R becomes its relay. */
	assert_int_equal(simnode_wait(resolves, (struct simnode *[]){&W.g, &W.x}, 60000), 0);
	assert_int_equal(simnode_wait(held_from_record, &W.g, 30000), 0);
	assert_int_equal(simnode_get_int(&W.g, "/v1/relay/status", "relays_from_records", NULL), 1);
	/* K sees R's own record (relay capability, R's address). */
	assert_int_equal(simnode_wait(resolves, (struct simnode *[]){&W.k, &W.r}, 60000), 0);
	assert_int_equal(simnode_wait(held_from_record, &W.k, 30000), 0);
	/* Neither found anything in the DHT: the records were the only source. */
	assert_int_equal(simnode_get_int(&W.g, "/v1/relay/status", "dht", "relays_found", NULL), 0);
	assert_int_equal(simnode_get_int(&W.k, "/v1/relay/status", "dht", "relays_found", NULL), 0);
	assert_true(first_use(&W.g, st, src, sizeof(st)));
	/* G's record lists R now; B reaches G by key through a circuit. */
	assert_int_equal(simnode_wait(lists_r, &W.g, 30000), 0);
	o = simnode_ok(&W.b, "POST", "/v1/quic/ping",
		       json_pack("{s:s,s:i}", "addr", W.g.key, "timeout_ms", 10000));
	assert_string_equal(json_string_value(json_object_get(o, "peer_key")), W.g.key);
	json_decref(o);
	assert_true(simnode_get_int(&W.r, "/v1/relay/status", "counters", "circuits", NULL) >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay_from_record),
	};

	return cmocka_run_group_tests_name("sim_relay_seen", tests, setup, teardown);
}
