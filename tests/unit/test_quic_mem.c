// SPDX-License-Identifier: MIT
/*
 * The allocator ngtcp2 connections get (userspace/quic/quic_mem.c): large
 * blocks have their whole pages given back before they are handed out, so
 * calloc must still return zeroes (also in memory that held data before),
 * malloc'd blocks must be writable end to end, and realloc keeps contents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quic/quic_int.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_calloc_zero_after_reuse),
	    cmocka_unit_test(test_malloc_writable_realloc_keeps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
