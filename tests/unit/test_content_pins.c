// SPDX-License-Identifier: MIT
/*
 * Which blobs eviction takes (cn_evict_plan, userspace/content/pins.c;
 * pinned blobs and a node's own shares never reach it): bad blobs first,
 * then blobs no held manifest lists (older versions of a share), then
 * the rest, oldest first within each; only as many as the new entry
 * needs; none when even all of them would not make room. The sim test
 * tests/sim/test_sim_content_seed.c checks that a pinned blob survives an
 * eviction in a running node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "content/content_node_int.h"

static struct cn_evict_cand cand(uint8_t tag, uint64_t size, uint64_t added, int listed)
{
	struct cn_evict_cand c;

	memset(&c, 0, sizeof(c));
	c.id[0] = tag;
	c.size = size;
	c.added = added;
	c.listed = listed;
	return c;
}

static void test_order(void **state)
{
	struct cn_evict_cand c[5];

	(void)state;
	c[0] = cand('a', 100, 10, 1);  /* listed, oldest */
	c[1] = cand('b', 100, 50, 0);  /* an old version, newer */
	c[2] = cand('c', 100, 20, 0);  /* an old version, older */
	c[3] = cand('d', 100, 99, -1); /* bad */
	c[4] = cand('e', 100, 30, 1);
	/* 500 used of 500: 150 more needs two to go */
	assert_int_equal(cn_evict_plan(c, 5, 150, 500, 500, 5, 0), 2);
	assert_int_equal(c[0].id[0], 'd');
	assert_int_equal(c[1].id[0], 'c');
	assert_int_equal(c[2].id[0], 'b');
	assert_int_equal(c[3].id[0], 'a');
	assert_int_equal(c[4].id[0], 'e');
	/* 250 needs three: the old versions before anything listed */
	assert_int_equal(cn_evict_plan(c, 5, 250, 500, 500, 5, 0), 3);
	/* room already: nothing */
	assert_int_equal(cn_evict_plan(c, 5, 100, 300, 500, 5, 0), 0);
	/* more than everything evictable frees: nothing is evicted */
	assert_int_equal(cn_evict_plan(c, 5, 700, 500, 600, 5, 0), 0);
	/* the entry bound: one must go for one more entry */
	assert_int_equal(cn_evict_plan(c, 5, 1, 0, 1000, 5, 5), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order),
	};

	return cmocka_run_group_tests_name("content_pins", tests, NULL, NULL);
}
