// SPDX-License-Identifier: MIT
/*
 * A NATed node whose only contact is its relay learns its address (issue
 * 30, item 6; simnet, no root):
 *
 *   R  198.51.101.3  public relay (relay.enable), the only other node
 *   Q  10.0.0.4      behind an endpoint-independent NAT (outside
 *                    198.51.102.100), dht.bootstrap = R, relay.use = R
 *
 * Every observation Q gets comes from R's network (R's QUIC
 * observed-address stream, the `ip` of R's KRPC replies): one voter, never
 * a quorum, and Q stayed `nat unknown` with no reflexive address. R holds
 * a reservation for Q, so its vote now decides alone (no other voter says
 * otherwise): Q reports `behind-nat` and the NAT's outside address, and
 * turns its DHT read-only like any node that knows it is behind a NAT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include "weft/simnet.h"
#include "world.h"

static struct world W;
static struct simnode R, Q;

/* Q's status names its NAT class and the reflexive address decided. */
static int q_knows(void *arg)
{
	json_t *o = simnode_ok(&Q, "GET", "/v1/status", NULL), *r;
	const char *nat = json_string_value(json_object_get(o, "nat"));
	int ok = nat && !strcmp(nat, "behind-nat");
	size_t i;

	(void)arg;
	if (ok) {
		ok = 0;
		json_array_foreach(json_object_get(o, "reflexive"), i, r)
		{
			const char *a = json_string_value(json_object_get(r, "addr"));

			ok |= a && !strncmp(a, "198.51.102.100", 14);
		}
	}
	json_decref(o);
	return ok;
}

static int q_read_only(void *arg)
{
	json_t *o = simnode_ok(&Q, "GET", "/v1/dht/status", NULL);
	int ro = json_is_true(json_object_get(o, "read_only"));

	(void)arg;
	json_decref(o);
	return ro;
}

static void test_relay_only_contact(void **state)
{
	const char *q[] = { "dht.bootstrap=" WORLD_RELAY_IP ":6881", NULL, NULL };
	struct simnet_nat *nat;

	(void)state;
	world_new(&W, 3006);
	world_relay(&W, &R, NULL);
	q[1] = W.use;
	nat = world_nat(&W, "198.51.102.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_EIM);
	world_node(&W, &Q, "Q", "10.0.0.4", nat, q);
	assert_int_equal(simnode_wait(q_knows, NULL, 30000), 0);
	assert_int_equal(simnode_wait(q_read_only, NULL, 30000), 0);
	world_free(&W);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay_only_contact),
	};

	return cmocka_run_group_tests_name("sim_relay_only", tests, NULL, NULL);
}
