// SPDX-License-Identifier: MIT
/*
 * mesh, the node's reservations (docs/MESH.md "Reservations on a node"):
 * a record round-trips; every truncation, a length past the record, a
 * bad version, role or state, an invalid body and a pending entry with
 * an answer time are refused; the inbox keeps one entry per Reserve id,
 * refuses a new one at its cap, replaces only a held one, survives a
 * reopen, and drops damaged and expired entries at open and at GC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "weft/mesh.h"
#include "weft/store.h"

#define NOW 1767225600000ull

static void mk(struct mesh_rsv *r, uint8_t id, uint64_t expires)
{
	memset(r, 0, sizeof(*r));
	memset(r->id, id, MESH_ID_LEN);
	r->role = MESH_RSV_SENT;
	r->service = 42;
	memset(r->ref, 0xaa, MESH_ID_LEN);
	memset(r->peer, 0xbb, MESH_PK_LEN);
	memset(r->otk, 0xcc, sizeof(r->otk));
	r->ts_ms = NOW;
	r->expires_ms = expires;
	memcpy(r->data, "d4:name3:adae", 13);
	r->data_len = 13;
}

static void test_record(void **state)
{
	uint8_t b[MESH_RSV_REC_MAX], c[MESH_RSV_REC_MAX];
	struct mesh_rsv r, o;
	size_t n;

	(void)state;
	mk(&r, 1, NOW + 1000);
	assert_int_equal(mesh_rsv_encode(&r, b, sizeof(b), &n), 0);
	assert_int_equal(n, MESH_RSV_HDR + 2 + 13);
	assert_int_equal(mesh_rsv_decode(b, n, &o), 0);
	assert_int_equal(o.service, 42);
	assert_memory_equal(o.otk, r.otk, sizeof(r.otk));
	assert_int_equal(o.data_len, 13);
	assert_int_equal(o.answer_len, 0);
	/* answered */
	r.state = MESH_RSV_CONFIRMED;
	r.answer_ms = NOW + 5;
	memcpy(r.answer, "d4:roomi3ee", 11);
	r.answer_len = 11;
	assert_int_equal(mesh_rsv_encode(&r, b, sizeof(b), &n), 0);
	assert_int_equal(mesh_rsv_decode(b, n, &o), 0);
	assert_int_equal(o.state, MESH_RSV_CONFIRMED);
	assert_memory_equal(o.answer, "d4:roomi3ee", 11);
	/* every truncation, one byte more */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(mesh_rsv_decode(b, k, &o), -EBADMSG);
	memcpy(c, b, n);
	c[n] = 0;
	assert_int_equal(mesh_rsv_decode(c, n + 1, &o), -EBADMSG);
	/* version, role, state */
	for (int f = 0; f < 3; f++) {
		static const uint8_t bad[3] = {2, 3, 3};

		memcpy(c, b, n);
		c[f] = bad[f];
		assert_int_equal(mesh_rsv_decode(c, n, &o), -EBADMSG);
	}
	memcpy(c, b, n);
	c[1] = 0;
	assert_int_equal(mesh_rsv_decode(c, n, &o), -EBADMSG);
	/* the data's length past the record, or over the cap */
	memcpy(c, b, n);
	c[MESH_RSV_HDR - 2] = 0xff;
	assert_int_equal(mesh_rsv_decode(c, n, &o), -EBADMSG);
	/* an invalid body (not a dictionary) */
	memcpy(c, b, n);
	c[MESH_RSV_HDR] = 'x';
	assert_int_equal(mesh_rsv_decode(c, n, &o), -EBADMSG);
	/* pending with an answer time */
	memcpy(c, b, n);
	c[2] = MESH_RSV_PENDING;
	assert_int_equal(mesh_rsv_decode(c, n, &o), -EBADMSG);
	/* encode refuses what decode would */
	r.role = 0;
	assert_int_equal(mesh_rsv_encode(&r, b, sizeof(b), &n), -EINVAL);
	r.role = MESH_RSV_RECEIVED;
	assert_int_equal(mesh_rsv_encode(&r, b, 10, &n), -ENOSPC);
}

static int count(void *arg, const struct mesh_rsv *r)
{
	(void)r;
	(*(int *)arg)++;
	return 0;
}

static void test_inbox(void **state)
{
	char *dir = tu_tmpdir();
	struct store_opts so = {.dir = dir, .map_size = 16u << 20};
	struct store *st;
	struct mesh_inbox *ib;
	struct mesh_rsv r, o;
	unsigned int dbi;
	uint8_t key[MESH_ID_LEN];
	int n = 0;

	(void)state;
	assert_int_equal(store_new(&st, &so), 0);
	assert_int_equal(mesh_inbox_new(&ib, st, 3, NOW), 0);
	mk(&r, 1, NOW + 1000);
	assert_int_equal(mesh_inbox_put(ib, &r, 1), -ENOENT);
	assert_int_equal(mesh_inbox_put(ib, &r, 0), 0);
	assert_int_equal(mesh_inbox_put(ib, &r, 0), -EALREADY);
	r.state = MESH_RSV_CANCELLED;
	r.answer_ms = NOW + 1;
	assert_int_equal(mesh_inbox_put(ib, &r, 1), 0);
	assert_int_equal(mesh_inbox_get(ib, r.id, &o), 0);
	assert_int_equal(o.state, MESH_RSV_CANCELLED);
	mk(&r, 2, NOW + 10);
	assert_int_equal(mesh_inbox_put(ib, &r, 0), 0);
	mk(&r, 3, NOW + 1000);
	assert_int_equal(mesh_inbox_put(ib, &r, 0), 0);
	mk(&r, 4, NOW + 1000);
	assert_int_equal(mesh_inbox_put(ib, &r, 0), -EDQUOT);
	assert_int_equal(mesh_inbox_count(ib), 3);
	/* a damaged record, then a reopen after entry 2 expired */
	mesh_inbox_free(ib);
	assert_int_equal(store_db(st, "mesh_inbox", &dbi), 0);
	memset(key, 9, sizeof(key));
	assert_int_equal(store_put(st, dbi, key, sizeof(key), "junk", 4), 0);
	assert_int_equal(mesh_inbox_new(&ib, st, 3, NOW + 20), 0);
	assert_int_equal(mesh_inbox_count(ib), 2);
	assert_int_equal(mesh_inbox_get(ib, key, &o), -ENOENT);
	assert_int_equal(mesh_inbox_each(ib, count, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(mesh_inbox_put(ib, &r, 0), 0); /* room again */
	assert_int_equal(mesh_inbox_del(ib, r.id), 0);
	assert_int_equal(mesh_inbox_del(ib, r.id), -ENOENT);
	assert_int_equal(mesh_inbox_gc(ib, NOW + 2000), 2);
	assert_int_equal(mesh_inbox_count(ib), 0);
	mesh_inbox_free(ib);
	store_free(st);
	tu_rmrf_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record),
	    cmocka_unit_test(test_inbox),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
