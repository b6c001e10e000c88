// SPDX-License-Identifier: MIT
/* b3tree: chunk CVs agree with the BLAKE3 one-shot hash; CV list checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "weft/blake3.h"
#include "weft/chunk.h"
#include "weft/util.h"

#define K B3TREE_CHUNK_LEN

static uint8_t *pattern(size_t len)
{
	uint8_t *b = malloc(len ? len : 1);

	assert_non_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(i % 251);
	return b;
}

static void check_size(size_t len)
{
	uint8_t *b = pattern(len), *cvs, want[32], got[32];
	uint64_t n = b3tree_nchunks(len);

	cvs = malloc(n * 32);
	assert_non_null(cvs);
	blake3_hash(b, len, want, 32);
	assert_int_equal(b3tree_chunk_cvs(b, len, cvs), 0);
	assert_int_equal(b3tree_root(cvs, n, got), 0);
	if (memcmp(want, got, 32))
		fail_msg("root mismatch for length %zu", len);
	assert_int_equal(b3tree_verify_cvs(cvs, n, len, want), 0);
	/* Every chunk checks against its own CV, and not against a neighbour's. */
	for (uint64_t i = 0; i < n; i++) {
		size_t cl = (size_t)b3tree_chunk_size(len, i);

		assert_int_equal(b3tree_verify_chunk(cvs + 32 * i, len, i, b + i * K, cl), 0);
		if (n > 1)
			assert_int_equal(b3tree_verify_chunk(cvs + 32 * ((i + 1) % n), len, i,
							     b + i * K, cl),
					 -EBADMSG);
	}
	free(cvs);
	free(b);
}

static void test_sizes(void **state)
{
	static const size_t sizes[] = {
		0, 1, 1023, 1024, 1025, 65536, K - 1, K, K + 1, 2 * K - 1, 2 * K, 2 * K + 1,
		3 * K, 3 * K + 5, 4 * K, 4 * K + 1, 5 * K + 1024, 7 * K + 3, 8 * K, 9 * K + 17,
		1024 * 1024 + 1,
	};

	for (size_t i = 0; i < WEFT_ARRAY_SIZE(sizes); i++)
		check_size(sizes[i]);
}

/* Random lengths around multiples of the chunk size (seeded). */
static void test_random_sizes(void **state)
{
	uint8_t r[64];

	tu_fill(r, sizeof(r), 7);
	for (size_t i = 0; i < 16; i++) {
		size_t len = (size_t)(r[i] % 12) * K + (size_t)r[i + 16] * 997 % K;

		check_size(len);
	}
}

static void test_counts(void **state)
{
	assert_int_equal(b3tree_nchunks(0), 1);
	assert_int_equal(b3tree_nchunks(1), 1);
	assert_int_equal(b3tree_nchunks(K), 1);
	assert_int_equal(b3tree_nchunks(K + 1), 2);
	assert_int_equal(b3tree_nchunks(UINT64_MAX), UINT64_MAX / K + 1);
	assert_int_equal(b3tree_chunk_size(0, 0), 0);
	assert_int_equal(b3tree_chunk_size(K + 1, 0), K);
	assert_int_equal(b3tree_chunk_size(K + 1, 1), 1);
	assert_int_equal(b3tree_chunk_size(K + 1, 2), 0);
	assert_int_equal(b3tree_chunk_size(2 * K, 1), K);
}

static void test_reject(void **state)
{
	size_t len = 3 * K + 5;
	uint8_t *b = pattern(len), cvs[4 * 32], id[32], c[32];

	blake3_hash(b, len, id, 32);
	assert_int_equal(b3tree_chunk_cvs(b, len, cvs), 0);
	assert_int_equal(b3tree_verify_cvs(cvs, 4, len, id), 0);
	/* Any flipped bit of any CV. */
	for (size_t i = 0; i < sizeof(cvs) * 8; i += 7) {
		cvs[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(b3tree_verify_cvs(cvs, 4, len, id), -EBADMSG);
		cvs[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	/* Wrong count, wrong length, wrong id. */
	assert_int_equal(b3tree_verify_cvs(cvs, 3, len, id), -EINVAL);
	assert_int_equal(b3tree_verify_cvs(cvs, 5, len, id), -EINVAL);
	assert_int_equal(b3tree_verify_cvs(cvs, 4, 3 * K, id), -EINVAL);
	/*
	 * Same count, different last-chunk length: the CV list does not carry
	 * the length, so it still proves out; the lie is caught by the last
	 * chunk, whose CV no other length can reach (docs/CONTENT.md).
	 */
	assert_int_equal(b3tree_verify_cvs(cvs, 4, len + 1, id), 0);
	assert_int_equal(b3tree_verify_cvs(cvs, 4, 4 * K, id), 0);
	{
		uint8_t more[6];

		memcpy(more, b + 3 * K, 5);
		more[5] = 0;
		assert_int_equal(b3tree_verify_chunk(cvs + 96, len + 1, 3, more, 6), -EBADMSG);
		assert_int_equal(b3tree_verify_chunk(cvs + 96, len - 1, 3, more, 4), -EBADMSG);
	}
	id[31] ^= 1;
	assert_int_equal(b3tree_verify_cvs(cvs, 4, len, id), -EBADMSG);
	id[31] ^= 1;
	/* Swapped CVs. */
	memcpy(c, cvs, 32);
	memcpy(cvs, cvs + 32, 32);
	memcpy(cvs + 32, c, 32);
	assert_int_equal(b3tree_verify_cvs(cvs, 4, len, id), -EBADMSG);
	assert_int_equal(b3tree_verify_cvs(NULL, 4, len, id), -EINVAL);
	assert_int_equal(b3tree_root(cvs, 0, c), -EINVAL);
	/* Chunk checks: wrong length, index out of range. */
	assert_int_equal(b3tree_chunk_cvs(b, len, cvs), 0);
	assert_int_equal(b3tree_verify_chunk(cvs + 96, len, 3, b + 3 * K, 5), 0);
	assert_int_equal(b3tree_verify_chunk(cvs + 96, len, 3, b + 3 * K, 4), -EINVAL);
	assert_int_equal(b3tree_verify_chunk(cvs, len, 0, b, K - 1), -EINVAL);
	assert_int_equal(b3tree_verify_chunk(cvs, len, 4, b, 0), -EINVAL);
	b[10] ^= 1;
	assert_int_equal(b3tree_verify_chunk(cvs, len, 0, b, K), -EBADMSG);
	/* chunk_cv argument checks. */
	assert_int_equal(b3tree_chunk_cv(b, K + 1, 0, 0, c), -EINVAL);
	assert_int_equal(b3tree_chunk_cv(b, 0, 1, 0, c), -EINVAL);
	assert_int_equal(b3tree_chunk_cv(b, 1, 1, 1, c), -EINVAL);
	assert_int_equal(b3tree_chunk_cv(NULL, 0, 0, 1, c), 0);
	free(b);
}

/* The vectors printed in docs/CONTENT.md: bytes i % 251 of lengths 0, 1,
 * 262144, 262145 and 1 MiB + 1 -> content id and the whole CV list (the
 * ids agree with b3sum 1.2.0 on the same files). */
static void test_doc_vectors(void **state)
{
	static const struct {
		size_t len;
		const char *id;
		const char *cvs;
	} v[] = {
		{ 0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
		  "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262" },
		{ 1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
		  "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213" },
		{ 262144, "d57dc906e20d3fd326ffaa85535500486f46a0979f5a323f028dcabfd381fd4a",
		  "d57dc906e20d3fd326ffaa85535500486f46a0979f5a323f028dcabfd381fd4a" },
		{ 262145, "531c319935cf78f34869faebd865e5748266b1799039103bfb851a680d9ed30c",
		  "69febc864103726f98eba5f7437ed4da193c9d6cb02d46036729c1ea9dc3ffad"
		  "e5db161255c04def90a9355e630eafc6fd868ca652b1fa81a656dcacf81faa21" },
		{ 1048577, "2f053cd7472cf0cd2f9adaf45c1180255b91b9a865404a63671a0ee5f792ed33",
		  "69febc864103726f98eba5f7437ed4da193c9d6cb02d46036729c1ea9dc3ffad"
		  "fbdad66a00633e69d549ba33eea2a863640581ce5e5f58b15125cc71f674a33c"
		  "7f4a198bb92903026c8f9b6be5ee66caf458778b5dafabc67aca8a07b78f9c73"
		  "85fc9e905870debcfc757443dab2271a05792754fa4bd18d0ae4b44111d9f7c2"
		  "c9c46c08771af7fa62d0dd0771306ffa15e31193e59c318d4b348f81f32b8b4b" },
	};

	for (size_t i = 0; i < WEFT_ARRAY_SIZE(v); i++) {
		uint8_t *b = pattern(v[i].len), cvs[5 * 32], id[32];
		uint64_t n = b3tree_nchunks(v[i].len);
		char hex[5 * 64 + 1];

		assert_int_equal(b3tree_chunk_cvs(b, v[i].len, cvs), 0);
		assert_int_equal(b3tree_root(cvs, n, id), 0);
		util_hex(hex, id, 32);
		assert_string_equal(hex, v[i].id);
		util_hex(hex, cvs, 32 * n);
		assert_string_equal(hex, v[i].cvs);
		assert_int_equal(b3tree_verify_cvs(cvs, n, v[i].len, id), 0);
		free(b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_random_sizes),
		cmocka_unit_test(test_reject),
		cmocka_unit_test(test_doc_vectors),
	};

	return cmocka_run_group_tests_name("blake3_b3tree", tests, NULL, NULL);
}
