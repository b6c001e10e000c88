// SPDX-License-Identifier: MIT
/*
 * A worker's connection records by id (userspace/quic/quic_node_conn.c):
 * found after every insertion while the table doubles from 64 chains to
 * past its maximum (more records than QN_CONN_HASH_MAX chains: longer
 * chains, still found), never found once freed, freed in an order unlike
 * their creation, the list of records kept alike, and an id that was
 * never made is not found.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quic/quic_node_int.h"

#define N (QN_CONN_HASH_MAX + 3000)

/* ids as qn_conn_id_new makes them (a counter above the worker's index
 * in the low byte), and a few arbitrary ones */
static uint64_t id_of(unsigned int i)
{
	return i % 7 == 0 ? 0x9e3779b97f4a7c15ull * (i + 1) : ((uint64_t)(i + 1) << 8) | 3;
}

static size_t list_len(const struct qn_worker *wk)
{
	size_t n = 0;

	for (const struct qn_conn *c = wk->conns; c; c = c->next)
		n++;
	return n;
}

static void test_conn_table(void **state)
{
	struct qn_worker *wk = calloc(1, sizeof(*wk));
	struct qn_conn **recs = calloc(N, sizeof(*recs));

	(void)state;
	assert_non_null(wk);
	assert_non_null(recs);
	for (unsigned int i = 0; i < N; i++) {
		recs[i] = qn_conn_new(wk, id_of(i));
		assert_non_null(recs[i]);
		/* the newest and one made long before, at every size */
		assert_ptr_equal(qn_conn_find(wk, id_of(i)), recs[i]);
		assert_ptr_equal(qn_conn_find(wk, id_of(i / 2)), recs[i / 2]);
	}
	assert_int_equal(wk->nconns, N);
	assert_int_equal(wk->nchash, QN_CONN_HASH_MAX); /* grown, and no further */
	for (unsigned int i = 0; i < N; i++)
		assert_ptr_equal(qn_conn_find(wk, id_of(i)), recs[i]);
	assert_null(qn_conn_find(wk, 0x42)); /* never made */
	assert_null(qn_conn_find(wk, ((uint64_t)(N + 5) << 8) | 3));

	/* every third, from the end: gone, the others still found */
	for (unsigned int i = N; i-- > 0;)
		if (i % 3 == 1) {
			qn_conn_free(wk, recs[i]);
			recs[i] = NULL;
		}
	for (unsigned int i = 0; i < N; i++)
		assert_ptr_equal(qn_conn_find(wk, id_of(i)), recs[i]);
	assert_int_equal(list_len(wk), wk->nconns);

	/* the rest, from the start */
	for (unsigned int i = 0; i < N; i++)
		if (recs[i]) {
			qn_conn_free(wk, recs[i]);
			assert_null(qn_conn_find(wk, id_of(i)));
		}
	assert_int_equal(wk->nconns, 0);
	assert_null(wk->conns);
	qn_conn_table_free(wk);
	assert_null(wk->chash);
	free(recs);
	free(wk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conn_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
