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

#include "simnode.h"
#include "testutil.h"
#include "weft/simnet.h"

struct world {
	struct simnet *sn;
	struct simnet_nat *nx, *ng, *nk;
	struct simnode b, r, x, g, k;
	char use[160]; /* relay.use=R */
};

static struct world W;

static int dht_formed(void *arg)
{
	struct simnode *n[] = { &W.r, &W.x, &W.g, &W.k };

	(void)arg;
	for (size_t i = 0; i < 4; i++)
		if (simnode_get_int(n[i], "/v1/dht/status", "nodes4", NULL) < 1)
			return 0;
	return 1;
}

static int setup(void **state)
{
	struct simnet_opts so = { .seed = 1416, .clock = SIMNET_CLOCK_REAL };
	static const char *const pub[] = { "dht.bootstrap=198.51.100.2:6881", NULL };
	static const char *const relay[] = { "dht.bootstrap=198.51.100.2:6881", "relay.enable=true",
					     "relay.announce=false", NULL };
	const char *natx[] = { "dht.bootstrap=198.51.100.2:6881", W.use, NULL };
	struct io_addr out;

	(void)state;
	assert_int_equal(simnet_new(&W.sn, &so), 0);
	simnode_new(&W.b, W.sn, "B", "198.51.100.2", NULL, NULL, NULL, NULL);
	simnode_new(&W.r, W.sn, "R", "198.51.101.3", NULL, relay, NULL, NULL);
	snprintf(W.use, sizeof(W.use), "relay.use=%s@198.51.101.3:4433", W.r.key);
	assert_int_equal(io_addr_parse(&out, "198.51.102.100", 0), 0);
	assert_int_equal(simnet_nat_add(W.sn, &out, SIMNET_NAT_APDF, 0, &W.nx), 0);
	simnode_new(&W.x, W.sn, "X", "10.0.0.4", W.nx, natx, NULL, NULL);
	assert_int_equal(io_addr_parse(&out, "198.51.103.100", 0), 0);
	assert_int_equal(simnet_nat_add(W.sn, &out, SIMNET_NAT_APDF, 0, &W.ng), 0);
	simnode_new(&W.g, W.sn, "G", "10.0.1.5", W.ng, pub, NULL, NULL);
	assert_int_equal(io_addr_parse(&out, "198.51.104.100", 0), 0);
	assert_int_equal(simnet_nat_add(W.sn, &out, SIMNET_NAT_APDF, 0, &W.nk), 0);
	simnode_new(&W.k, W.sn, "K", "10.0.2.6", W.nk, pub, NULL, NULL);
	assert_int_equal(simnode_wait(dht_formed, NULL, 30000), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	simnode_free(&W.k);
	simnode_free(&W.g);
	simnode_free(&W.x);
	simnode_free(&W.r);
	simnode_free(&W.b);
	simnet_free(W.sn);
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
	o = simnode_ok(&W.g, "POST", "/v1/node/resolve", json_pack("{s:s}", "key", W.x.key));
	json_decref(o);
	assert_int_equal(simnode_wait(held_from_record, &W.g, 30000), 0);
	assert_int_equal(simnode_get_int(&W.g, "/v1/relay/status", "relays_from_records", NULL), 1);
	/* K sees R's own record (relay capability, R's address). */
	o = simnode_ok(&W.k, "POST", "/v1/node/resolve", json_pack("{s:s}", "key", W.r.key));
	json_decref(o);
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
