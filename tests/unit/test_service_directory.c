// SPDX-License-Identifier: MIT
/* Directory cache: ordering, TTL, per-name and name-count bounds, by id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "weft/svc.h"
#include "weft/util.h"

static void mk_desc(struct svc_desc *d, const char *name, uint32_t owner)
{
	memset(d, 0, sizeof(*d));
	d->name = name;
	d->name_len = strlen(name);
	d->version = owner;
	memcpy(d->owner, &owner, sizeof(owner));
	d->owner[31] = 0xee;
	d->n_endpoints = 1;
	d->endpoints[0] = "198.51.100.7:4433";
	d->endpoint_lens[0] = strlen(d->endpoints[0]);
	d->created = 1000;
	d->expires = 5000;
}

static void test_order(void **state)
{
	struct {
		int32_t rep;
		uint32_t rtt;
	} in[] = {
	    {5, 900}, {10, 500}, {5, 100}, {10, 200}, {-3, 1}, {5, 100},
	};
	struct svc_dir_opts o = {.seed = 1};
	struct svc_dir_result res[8];
	struct svc_dir *dir;
	struct svc_desc d;
	int n;

	assert_int_equal(svc_dir_new(&dir, &o), 0);
	for (uint32_t i = 0; i < WEFT_ARRAY_SIZE(in); i++) {
		mk_desc(&d, "kv", i + 1);
		assert_int_equal(svc_dir_add(dir, &d, in[i].rep, in[i].rtt, 0), 0);
	}
	n = svc_dir_find(dir, "kv", 2, 10, res, 8);
	assert_int_equal(n, 6);
	for (int i = 1; i < n; i++) {
		assert_true(res[i - 1].reputation >= res[i].reputation);
		if (res[i - 1].reputation == res[i].reputation)
			assert_true(res[i - 1].rtt_us <= res[i].rtt_us);
	}
	assert_int_equal(res[0].reputation, 10);
	assert_int_equal(res[0].rtt_us, 200);
	assert_int_equal(res[5].reputation, -3);
	assert_string_equal(res[0].name, "kv");
	assert_string_equal(res[0].endpoints[0], "198.51.100.7:4433");
	/* max smaller than the count: the best ones */
	assert_int_equal(svc_dir_find(dir, "kv", 2, 10, res, 2), 2);
	assert_int_equal(res[1].rtt_us, 500);
	/* same owner again: replaces, with the new figures */
	mk_desc(&d, "kv", 5); /* was { -3, 1 } */
	assert_int_equal(svc_dir_add(dir, &d, 20, 50, 0), 0);
	assert_int_equal(svc_dir_results(dir), 6);
	assert_int_equal(svc_dir_find(dir, "kv", 2, 10, res, 8), 6);
	assert_int_equal(res[0].reputation, 20);
	assert_int_equal(res[0].version, 5);
	/* unknown and invalid names */
	assert_int_equal(svc_dir_find(dir, "nope", 4, 10, res, 8), 0);
	assert_int_equal(svc_dir_find(dir, "No", 2, 10, res, 8), -EINVAL);
	svc_dir_free(dir);
}

static void test_ttl(void **state)
{
	struct svc_dir_opts o = {.seed = 2, .ttl_ms = 60000};
	struct svc_dir_result res[4];
	struct svc_dir *dir;
	struct svc_desc d;
	uint8_t id[SVC_ID_LEN];

	assert_int_equal(svc_dir_new(&dir, &o), 0);
	assert_int_equal(svc_dir_next_expiry(dir), UINT64_MAX);
	mk_desc(&d, "a", 1);
	assert_int_equal(svc_dir_add(dir, &d, 0, 10, 1000), 0);
	mk_desc(&d, "a", 2);
	assert_int_equal(svc_dir_add(dir, &d, 0, 10, 31000), 0);
	assert_int_equal(svc_dir_next_expiry(dir), 61000);
	assert_int_equal(svc_dir_find(dir, "a", 1, 60999, res, 4), 2);
	assert_int_equal(svc_dir_find(dir, "a", 1, 61000, res, 4), 1);
	assert_int_equal(res[0].version, 2);
	assert_int_equal(res[0].expires_ms, 91000);
	svc_id(id, d.owner, "a", 1);
	assert_int_equal(svc_dir_find_id(dir, id, 90999, &res[0]), 0);
	assert_int_equal(svc_dir_find_id(dir, id, 91000, &res[0]), -ENOENT);
	assert_int_equal(svc_dir_names(dir), 0);
	assert_int_equal(svc_dir_results(dir), 0);
	/* bulk expiry */
	for (uint32_t i = 0; i < 10; i++) {
		char name[8];

		snprintf(name, sizeof(name), "n%u", i);
		mk_desc(&d, name, i);
		assert_int_equal(svc_dir_add(dir, &d, 0, 1, i < 4 ? 0 : 5000), 0);
	}
	assert_int_equal(svc_dir_expire(dir, 60000), 4);
	assert_int_equal(svc_dir_names(dir), 6);
	assert_int_equal(svc_dir_expire(dir, 65000), 6);
	assert_int_equal(svc_dir_names(dir), 0);
	svc_dir_free(dir);
}

static void test_per_name_bound(void **state)
{
	struct svc_dir_result res[SVC_DIR_DEFAULT_RESULTS + 5];
	struct svc_dir_opts o = {.seed = 3};
	struct svc_dir *dir;
	struct svc_desc d;
	uint8_t id[SVC_ID_LEN];

	assert_int_equal(svc_dir_new(&dir, &o), 0);
	/* rtt 100, 200, ..., 2000 */
	for (uint32_t i = 1; i <= SVC_DIR_DEFAULT_RESULTS; i++) {
		mk_desc(&d, "busy", i);
		assert_int_equal(svc_dir_add(dir, &d, 0, i * 100, 0), 0);
	}
	/* a worse one is not kept */
	mk_desc(&d, "busy", 100);
	assert_int_equal(svc_dir_add(dir, &d, 0, 5000, 0), -ENOSPC);
	/* a better one evicts the worst (rtt 2000) */
	mk_desc(&d, "busy", 101);
	assert_int_equal(svc_dir_add(dir, &d, 0, 50, 0), 0);
	assert_int_equal(svc_dir_find(dir, "busy", 4, 1, res, WEFT_ARRAY_SIZE(res)),
			 SVC_DIR_DEFAULT_RESULTS);
	assert_int_equal(res[0].rtt_us, 50);
	assert_int_equal(res[SVC_DIR_DEFAULT_RESULTS - 1].rtt_us, 1900);
	mk_desc(&d, "busy", SVC_DIR_DEFAULT_RESULTS);
	svc_id(id, d.owner, "busy", 4);
	assert_int_equal(svc_dir_find_id(dir, id, 1, &res[0]), -ENOENT);
	mk_desc(&d, "busy", 101);
	svc_id(id, d.owner, "busy", 4);
	assert_int_equal(svc_dir_find_id(dir, id, 1, &res[0]), 0);
	assert_int_equal(res[0].version, 101);
	assert_int_equal(svc_dir_results(dir), SVC_DIR_DEFAULT_RESULTS);
	svc_dir_free(dir);
}

static void test_name_bound_lru(void **state)
{
	struct svc_dir_opts o = {.seed = 4};
	struct svc_dir_result res[2];
	struct svc_dir *dir;
	struct svc_desc d;
	char name[16];

	assert_int_equal(svc_dir_new(&dir, &o), 0);
	for (uint32_t i = 0; i < SVC_DIR_DEFAULT_NAMES + 500; i++) {
		snprintf(name, sizeof(name), "svc-%u", i);
		mk_desc(&d, name, i);
		assert_int_equal(svc_dir_add(dir, &d, 0, 1, 0), 0);
		/* keep "svc-0" recently used */
		assert_int_equal(svc_dir_find(dir, "svc-0", 5, 0, res, 2), 1);
		assert_true(svc_dir_names(dir) <= SVC_DIR_DEFAULT_NAMES);
	}
	assert_int_equal(svc_dir_names(dir), SVC_DIR_DEFAULT_NAMES);
	assert_int_equal(svc_dir_results(dir), SVC_DIR_DEFAULT_NAMES);
	/* svc-0 was used all along: still there; svc-1 (LRU) is gone */
	assert_int_equal(svc_dir_find(dir, "svc-0", 5, 0, res, 2), 1);
	assert_int_equal(svc_dir_find(dir, "svc-1", 5, 0, res, 2), 0);
	snprintf(name, sizeof(name), "svc-%u", SVC_DIR_DEFAULT_NAMES + 499);
	assert_int_equal(svc_dir_find(dir, name, strlen(name), 0, res, 2), 1);
	svc_dir_free(dir);
}

static void test_bad_input(void **state)
{
	struct svc_dir_opts o = {.max_results = 65};
	struct svc_dir *dir = NULL;
	struct svc_desc d;

	assert_int_equal(svc_dir_new(&dir, &o), -EINVAL);
	assert_null(dir);
	assert_int_equal(svc_dir_new(&dir, NULL), 0);
	mk_desc(&d, "UPPER", 1);
	assert_int_equal(svc_dir_add(dir, &d, 0, 1, 0), -EINVAL);
	mk_desc(&d, "ok", 1);
	d.n_endpoints = SVC_DESC_MAX_ENDPOINTS + 1;
	assert_int_equal(svc_dir_add(dir, &d, 0, 1, 0), -EINVAL);
	assert_int_equal(svc_dir_names(dir), 0);
	svc_dir_free(dir);
	svc_dir_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order),	   cmocka_unit_test(test_ttl),
	    cmocka_unit_test(test_per_name_bound), cmocka_unit_test(test_name_bound_lru),
	    cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests_name("service_directory", tests, NULL, NULL);
}
