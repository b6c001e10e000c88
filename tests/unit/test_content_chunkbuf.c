// SPDX-License-Identifier: MIT
/*
 * Chunk buffers on 2 MiB pages (userspace/content/chunkbuf.c, docs/CONTENT.md
 * "Chunk buffers on 2 MiB pages"): slots of populated slabs, the heap beyond
 * them, slabs unmapped when their last slot goes, and two threads at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "content/chunkbuf.h"

#define PER_SLAB (CN_BUF_SLAB / CN_BUF_LEN) /* 15, with ASan's guard pages too */
#define ALL (CN_BUF_SLABS_MAX * PER_SLAB + 3)

static void expect_stats(unsigned int slabs, unsigned int used)
{
	unsigned int s, u;

	cn_buf_stats(&s, &u);
	assert_int_equal(s, slabs);
	assert_int_equal(u, used);
}

/* Every page of [p, p + len) resident (mincore). */
static int resident(const void *p, size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = (len + pg - 1) / pg;
	unsigned char vec[CN_BUF_LEN / 4096 + 1];

	assert_true(n <= sizeof(vec));
	assert_int_equal(mincore((void *)p, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		if (!(vec[i] & 1))
			return 0;
	return 1;
}

/* A slot is page aligned, in a slab at a 2 MiB boundary, resident before
 * its first write (populated), and writable end to end; slots are
 * distinct; the last slot's free unmaps its slab; a length over
 * CN_BUF_LEN comes from the heap. */
static void test_slots(void **state)
{
	unsigned int per = 0;
	uint8_t *p[PER_SLAB + 2], *big;

	(void)state;
	expect_stats(0, 0);
	p[0] = cn_buf_alloc(CN_BUF_LEN);
	assert_non_null(p[0]);
	assert_int_equal((uintptr_t)p[0] % (2u << 20), 0);
	assert_true(resident(p[0], CN_BUF_LEN));
	expect_stats(1, 1);
	for (unsigned int i = 1; i < PER_SLAB + 2; i++) {
		p[i] = cn_buf_alloc(i % 2 ? CN_BUF_LEN : 256u << 10);
		assert_non_null(p[i]);
		assert_int_equal((uintptr_t)p[i] % 4096, 0);
		per += p[i] >= p[0] && p[i] < p[0] + CN_BUF_SLAB;
	}
	/* the slab fills before a second is mapped */
	assert_int_equal(per, PER_SLAB - 1);
	cn_buf_stats(&per, NULL);
	assert_int_equal(per, 2);
	for (unsigned int i = 0; i < PER_SLAB + 2; i++) {
		memset(p[i], (int)i, 256u << 10);
		if (i % 2)
			p[i][CN_BUF_LEN - 1] = (uint8_t)i;
	}
	for (unsigned int i = 0; i < PER_SLAB + 2; i++) {
		assert_int_equal(p[i][0], (uint8_t)i);
		assert_int_equal(p[i][(256u << 10) - 1], (uint8_t)i);
		for (unsigned int j = 0; j < i; j++)
			assert_true(p[i] >= p[j] + CN_BUF_LEN || p[j] >= p[i] + CN_BUF_LEN);
	}
	big = cn_buf_alloc(CN_BUF_LEN + 1);
	assert_non_null(big);
	memset(big, 7, CN_BUF_LEN + 1);
	cn_buf_stats(NULL, &per);
	assert_int_equal(per, PER_SLAB + 2);
	cn_buf_free(big);
	for (unsigned int i = 0; i < PER_SLAB + 2; i++)
		cn_buf_free(p[i]);
	expect_stats(0, 0);
	cn_buf_free(NULL);
	big = cn_buf_alloc(0); /* the heap's, as malloc(0) may be */
	cn_buf_free(big);
	expect_stats(0, 0);
}

/* Past CN_BUF_SLABS_MAX slabs, the heap (still page aligned); a slot freed
 * in a slab that is not the last one is taken first again (the fullest
 * slab with room), so emptier slabs can go. */
static void test_bound_and_reuse(void **state)
{
	static uint8_t *p[ALL];
	uint8_t *again;
	unsigned int slabs, used;

	(void)state;
	for (unsigned int i = 0; i < ALL; i++) {
		p[i] = cn_buf_alloc(CN_BUF_LEN);
		assert_non_null(p[i]);
		assert_int_equal((uintptr_t)p[i] % 4096, 0);
		p[i][0] = p[i][CN_BUF_LEN - 1] = (uint8_t)i;
	}
	cn_buf_stats(&slabs, &used);
	assert_int_equal(slabs, CN_BUF_SLABS_MAX);
	assert_int_equal(used, CN_BUF_SLABS_MAX * PER_SLAB);
	/* two slots of the first slab freed: the next allocation takes one */
	cn_buf_free(p[1]);
	cn_buf_free(p[2]);
	again = cn_buf_alloc(CN_BUF_LEN);
	assert_true(again == p[1] || again == p[2]);
	p[again == p[1] ? 2 : 1] = NULL; /* the other stays free */
	again[0] = again[CN_BUF_LEN - 1] = (uint8_t)(again == p[1] ? 1 : 2);
	for (unsigned int i = 0; i < ALL; i++) {
		if (p[i])
			assert_int_equal(p[i][CN_BUF_LEN - 1], (uint8_t)i);
		cn_buf_free(p[i]);
	}
	expect_stats(0, 0);
}

static void *churn(void *arg)
{
	uint8_t *held[8] = {0};
	unsigned int seed = (unsigned int)(uintptr_t)arg;

	for (unsigned int i = 0; i < 4000; i++) {
		unsigned int k = (seed = seed * 1103515245u + 12345u) >> 16 & 7;

		if (held[k]) {
			assert_int_equal(held[k][100], (uint8_t)k);
			cn_buf_free(held[k]);
			held[k] = NULL;
		} else {
			held[k] = cn_buf_alloc(CN_BUF_LEN);
			assert_non_null(held[k]);
			held[k][100] = (uint8_t)k;
		}
	}
	for (unsigned int k = 0; k < 8; k++)
		cn_buf_free(held[k]);
	return NULL;
}

/* Two threads allocating and freeing at once (the packet threads, the
 * readers, a commit): nothing lost, every slab gone at the end. */
static void test_threads(void **state)
{
	pthread_t t;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, churn, (void *)1), 0);
	churn((void *)2);
	assert_int_equal(pthread_join(t, NULL), 0);
	expect_stats(0, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_slots),
	    cmocka_unit_test(test_bound_and_reuse),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
