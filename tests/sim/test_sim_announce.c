// SPDX-License-Identifier: MIT
/*
 * Announcing many blobs in a small simulated DHT (tests/lib/dhtsim.c: 128
 * DHT cores and ours on a virtual clock, 20 ms links), driven by the
 * content announce schedule (userspace/content/annsched.c) as weftd's
 * announcer drives it:
 * - every one of 4096 ids is announced (some node acknowledged it), in
 *   far fewer lookups than ids (batches by neighbourhood);
 * - no node receives more than CN_ANQ_NODE_PER_MIN announce_peer queries
 *   from us in any minute (the pacer), nor more than CN_ANQ_BUDGET_PER_MIN
 *   queries of any kind (lookups included, the DHT's upkeep too), counted
 *   at the receiving side;
 * - another node's get_peers finds us for a sample of the ids (the
 *   batch's nodes are those its lookups reach).
 * The benchmark (bench/announce.sh) runs the same with 65,536 ids and 512
 * nodes.
 */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "content/annsched.h"
#include "dhtsim.h"

#define NODES 128
#define IDS 4096

static void test_announce_many(void **state)
{
	struct dhtsim_opts o = {.nodes = NODES, .seed = 31, .latency_ms = 20, .max_s = 3600};
	uint8_t(*ids)[DHT_ID_LEN] = malloc(IDS * DHT_ID_LEN);
	struct sockaddr_storage us, peers[64];
	struct dhtsim_report r;
	struct dhtsim *s;
	unsigned int found = 0;

	(void)state;
	assert_non_null(ids);
	randombytes_buf_deterministic(ids, IDS * DHT_ID_LEN,
				      (const uint8_t *)"weft test_sim_announce seed 0031");
	assert_int_equal(dhtsim_new(&s, &o), 0);
	dhtsim_form(s, 20000);
	dhtsim_announce(s, (const uint8_t(*)[DHT_ID_LEN])ids, IDS, 4433, 600000, &r);
	print_message("announce: %llu of %llu ids in %.1f s (virtual), %llu lookups, %llu "
		      "batches, %llu queries; busiest node: %llu queries in a minute (%llu "
		      "announce_peer)\n",
		      (unsigned long long)r.announced, (unsigned long long)r.ids,
		      (double)r.all_ms / 1000, (unsigned long long)r.lookups,
		      (unsigned long long)r.batches, (unsigned long long)r.queries,
		      (unsigned long long)r.max_node_min, (unsigned long long)r.max_node_min_ann);
	assert_int_equal(r.announced, IDS);
	assert_true(r.all_ms > 0 && r.all_ms < 600000);
	assert_true(r.lookups * 4 < IDS); /* batched: many ids per lookup */
	assert_true(r.max_node_min_ann <= CN_ANQ_NODE_PER_MIN);
	assert_true(r.max_node_min <= CN_ANQ_BUDGET_PER_MIN);
	/* Found by someone else: a sample of the ids, looked up from node 7. */
	dhtsim_us_addr(s, &us);
	for (unsigned int i = 0; i < IDS; i += IDS / 32) {
		int n = dhtsim_get_peers(s, 7, ids[i], peers, 64);

		for (int k = 0; k < n; k++)
			if (!memcmp(&((struct sockaddr_in *)&peers[k])->sin_addr,
				    &((struct sockaddr_in *)&us)->sin_addr, 4)) {
				found++;
				break;
			}
	}
	print_message("get_peers from another node found us for %u of 32 ids\n", found);
	assert_true(found >= 30);
	dhtsim_free(s);
	free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_announce_many),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("sim_announce", tests, NULL, NULL);
}
