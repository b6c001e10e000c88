// SPDX-License-Identifier: MIT
/*
 * The allocator ngtcp2 connections get (userspace/quic/quic_mem.c): large
 * blocks have their whole pages given back before they are handed out, so
 * calloc must still return zeroes (also in memory that held data before),
 * malloc'd blocks must be writable end to end, and realloc keeps contents.
 * A connection's own pool (quic_mem_pool) clears its large blocks instead
 * and quic_mem_trim gives back their all-zero pages later: what was
 * written stays (and resident), the rest is given back (mincore), and
 * blocks handed out after the trim are given back at once. The node's
 * chunk-answer blocks (quic_node_buf.c) are kept for reuse and freed by
 * quic_node_trim only after 30 s unused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "quic/quic_int.h"
#include "quic/quic_node_int.h"
#include "weft/quic_node.h"
#include "weft/util.h"

static const size_t sizes[] = {1, 100, 4095, 6143, 6144, 7192, 8216, 8352, 12184, 65536, 300000};

static void test_calloc_zero_after_reuse(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];

		for (int round = 0; round < 4; round++) {
			/* dirty memory of that size, freed, then calloc'd again:
			 * the heap hands back the same chunk most of the time */
			uint8_t *d = quic_mem.malloc(n, quic_mem.user_data);
			uint8_t *z;

			assert_non_null(d);
			memset(d, 0xa5, n);
			quic_mem.free(d, quic_mem.user_data);
			z = quic_mem.calloc(1, n, quic_mem.user_data);
			assert_non_null(z);
			for (size_t i = 0; i < n; i++)
				if (z[i])
					fail_msg("calloc(%zu): byte %zu is %u", n, i, z[i]);
			quic_mem.free(z, quic_mem.user_data);
		}
	}
}

static void test_malloc_writable_realloc_keeps(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		uint8_t *p = quic_mem.malloc(n, quic_mem.user_data);

		assert_non_null(p);
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)(i * 7 + k);
		p = quic_mem.realloc(p, n * 2, quic_mem.user_data);
		assert_non_null(p);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(p[i], (uint8_t)(i * 7 + k));
		quic_mem.free(p, quic_mem.user_data);
	}
	/* an overflowing calloc fails instead of wrapping */
	assert_null(quic_mem.calloc(SIZE_MAX / 2, 4, quic_mem.user_data));
	quic_mem.free(NULL, quic_mem.user_data);
}

/* Is the page holding p resident? */
static int resident(const void *p)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	unsigned char v = 0;

	assert_int_equal(mincore((void *)((uintptr_t)p & ~(pg - 1)), pg, &v), 0);
	return v & 1;
}

static void test_pool_trim(void **state)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = 6 * pg;
	struct quic_mem_pool m;
	uint8_t *a, *b, *late, *extra[QUIC_MEM_TRACK + 2];
	uintptr_t w;

	(void)state;
	quic_mem_pool_init(&m);
	/* dirty memory first, so that the blocks below reuse written pages */
	a = malloc(4 * n);
	assert_non_null(a);
	memset(a, 0x5a, 4 * n);
	free(a);
	a = m.mem.malloc(n, m.mem.user_data);
	b = m.mem.calloc(1, n, m.mem.user_data);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(m.n, 2);
	w = ((uintptr_t)a + pg - 1) & ~(uintptr_t)(pg - 1); /* first whole page of a */
	for (size_t i = 0; i < n; i++)
		if (b[i])
			fail_msg("calloc: byte %zu is %u", i, b[i]);
	for (uintptr_t q = w; q + pg <= (uintptr_t)a + n; q += pg)
		for (size_t i = 0; i < pg; i++)
			if (((uint8_t *)q)[i])
				fail_msg("a: whole page byte %zu not cleared", (size_t)(q - (uintptr_t)a) + i);
	/* objects written into a's first and third whole pages, b's first byte */
	memset((void *)w, 0x11, 64);
	((uint8_t *)w)[2 * pg + 5] = 0x22;
	b[0] = 0x33;
	assert_true(quic_mem_trim(&m) >= 3 * pg);
	assert_int_equal(m.n, 0);
	assert_true(resident((void *)w));
	assert_true(resident((void *)(w + 2 * pg)));
	assert_false(resident((void *)(w + pg)));
	assert_false(resident((void *)(w + 3 * pg)));
	assert_int_equal(((uint8_t *)w)[63], 0x11);
	assert_int_equal(((uint8_t *)w)[2 * pg + 5], 0x22);
	assert_int_equal(((uint8_t *)w)[pg + 7], 0); /* given back: reads as zero */
	assert_int_equal(b[0], 0x33);
	assert_int_equal(quic_mem_trim(&m), 0); /* once */
	/* after the trim: given back when handed out, calloc still zero */
	late = m.mem.calloc(1, n, m.mem.user_data);
	assert_non_null(late);
	assert_int_equal(m.n, 0);
	w = ((uintptr_t)late + pg - 1) & ~(uintptr_t)(pg - 1);
	assert_false(resident((void *)(w + pg)));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(late[i], 0);
	m.mem.free(late, m.mem.user_data);
	m.mem.free(a, m.mem.user_data);
	m.mem.free(b, m.mem.user_data);

	/* a young pool remembers at most QUIC_MEM_TRACK blocks; free and
	 * realloc forget theirs */
	quic_mem_pool_init(&m);
	for (size_t i = 0; i < QUIC_MEM_TRACK + 2; i++) {
		extra[i] = m.mem.malloc(n, m.mem.user_data);
		assert_non_null(extra[i]);
	}
	assert_int_equal(m.n, QUIC_MEM_TRACK);
	m.mem.free(extra[0], m.mem.user_data);
	assert_int_equal(m.n, QUIC_MEM_TRACK - 1);
	memset(extra[1], 0x44, n);
	extra[1] = m.mem.realloc(extra[1], 2 * n, m.mem.user_data);
	assert_non_null(extra[1]);
	assert_int_equal(m.n, QUIC_MEM_TRACK - 2);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(extra[1][i], 0x44);
	quic_mem_trim(&m);
	for (size_t i = 1; i < QUIC_MEM_TRACK + 2; i++)
		m.mem.free(extra[i], m.mem.user_data);
}

/* Write commands of a chunk answer's size come back to the node's cache
 * when freed and are handed out again; quic_node_trim frees the cache only
 * once it went 30 s unused (ASan: no block freed twice or leaked). */
static void test_chunk_block_cache_trim(void **state)
{
	struct quic_node *qn = calloc(1, sizeof(*qn));
	struct qn_op *a, *b, *c;
	uint64_t now;

	(void)state;
	assert_non_null(qn);
	pthread_mutex_init(&qn->buf_mu, NULL);
	a = qn_op_new(qn, OP_WRITE, 1, 256 << 10);
	b = qn_op_new(qn, OP_WRITE, 1, 200 << 10);
	assert_non_null(a);
	assert_non_null(b);
	memset(a + 1, 0xa5, 256 << 10); /* the whole data room is writable */
	qn_op_free(a);
	qn_op_free(b);
	assert_int_equal(qn->nbuf, 2);
	assert_int_equal(qn->buf_allocated, 2);
	assert_int_equal(qn->buf_out_max, 2);
	assert_int_equal(qn->buf_out, 0);
	c = qn_op_new(qn, OP_WRITE, 2, 180 << 10); /* one of them again */
	assert_true(c == a || c == b);
	assert_int_equal(qn->nbuf, 1);
	assert_int_equal(qn->buf_reused, 1);
	assert_int_equal(qn->buf_out, 1);
	qn_op_free(c);
	now = util_now_ns();
	assert_int_equal(quic_node_trim(qn, now), 0); /* just used */
	assert_int_equal(quic_node_trim(qn, now + QN_BUF_IDLE_NS - 1000000000ull), 0);
	assert_int_equal(qn->nbuf, 2);
	assert_int_equal(quic_node_trim(qn, now + QN_BUF_IDLE_NS + 1000000000ull), 2);
	assert_int_equal(qn->nbuf, 0);
	assert_int_equal(quic_node_trim(qn, now + 2 * QN_BUF_IDLE_NS), 0);
	assert_int_equal(quic_node_trim(NULL, now), 0);
	/* small commands never go to the cache */
	a = qn_op_new(qn, OP_WRITE, 1, 1000);
	qn_op_free(a);
	assert_int_equal(qn->nbuf, 0);
	/* more blocks out at once than the cache keeps: QN_BUF_CACHE come
	 * back to it, the rest are freed */
	{
		struct qn_op *many[QN_BUF_CACHE + 3];

		for (size_t i = 0; i < QN_BUF_CACHE + 3; i++)
			assert_non_null(many[i] = qn_op_new(qn, OP_WRITE, 1, 256 << 10));
		assert_int_equal(qn->buf_out, QN_BUF_CACHE + 3);
		assert_int_equal(qn->buf_out_max, QN_BUF_CACHE + 3);
		for (size_t i = 0; i < QN_BUF_CACHE + 3; i++)
			qn_op_free(many[i]);
		assert_int_equal(qn->nbuf, QN_BUF_CACHE);
		assert_int_equal(qn->buf_out, 0);
		qn_buf_drain(qn);
		assert_int_equal(qn->nbuf, 0);
	}
	pthread_mutex_destroy(&qn->buf_mu);
	free(qn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_calloc_zero_after_reuse),
	    cmocka_unit_test(test_malloc_writable_realloc_keeps),
	    cmocka_unit_test(test_pool_trim),
	    cmocka_unit_test(test_chunk_block_cache_trim),
	};

	return cmocka_run_group_tests_name("quic_mem", tests, NULL, NULL);
}
