// SPDX-License-Identifier: MIT
/* BLAKE3 kernel: 8 inputs at a time in AVX2 registers (built with -mavx2). */
#include <immintrin.h>
#include <string.h>

#include "blake3/blake3_impl.h"

/*
 * Prefetch distance in groups of 8 inputs: 2 (16 KiB of chunks, as the
 * AVX-512 kernel). 1 GiB from DRAM on Zen 4: 1.9 GB/s with the old 4-blocks-
 * ahead prefetch, 2.45 with 1 or 2 groups ahead into L2.
 */
#define AVX2_PF_GROUPS 2
#define LANES 8
#define V __m256i
#define V_ADD(a, b) _mm256_add_epi32(a, b)
#define V_XOR(a, b) _mm256_xor_si256(a, b)
#define V_SET1(x) _mm256_set1_epi32((int)(x))
#define V_LOADU(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define V_STOREU(p, x) _mm256_storeu_si256((__m256i *)(void *)(p), x)
#define V_ROT16(x)                                                                          \
	_mm256_shuffle_epi8(x, _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15,  \
						12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, \
						14, 15, 12, 13))
#define V_ROT8(x)                                                                           \
	_mm256_shuffle_epi8(x, _mm256_setr_epi8(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14,  \
						15, 12, 1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, \
						13, 14, 15, 12))
#define V_ROT12(x) _mm256_or_si256(_mm256_srli_epi32(x, 12), _mm256_slli_epi32(x, 20))
#define V_ROT7(x) _mm256_or_si256(_mm256_srli_epi32(x, 7), _mm256_slli_epi32(x, 25))
#define KERNEL blake3_hash_many_avx2
#define FALLBACK blake3_hash_many_sse41

/* 8x8 transpose of 32-bit words: rows x[0..7] to columns m[0..7]. */
static inline __attribute__((always_inline)) void transpose8(const V x[8], V *m)
{
	V t0 = _mm256_unpacklo_epi32(x[0], x[1]), t1 = _mm256_unpackhi_epi32(x[0], x[1]);
	V t2 = _mm256_unpacklo_epi32(x[2], x[3]), t3 = _mm256_unpackhi_epi32(x[2], x[3]);
	V t4 = _mm256_unpacklo_epi32(x[4], x[5]), t5 = _mm256_unpackhi_epi32(x[4], x[5]);
	V t6 = _mm256_unpacklo_epi32(x[6], x[7]), t7 = _mm256_unpackhi_epi32(x[6], x[7]);
	/* per 128-bit half: u0 = words 0|4 of rows 0..3, u1 = 1|5, u2 = 2|6, u3 = 3|7 */
	V u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
	V u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
	V u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
	V u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);

	m[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
	m[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
	m[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
	m[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
	m[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
	m[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
	m[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
	m[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

static inline __attribute__((always_inline)) void load_msg(const uint8_t *p, size_t stride, V m[16])
{
	int half, l;

	/* Same block of the inputs AVX2_PF_GROUPS groups ahead, into L2 (see blake3_avx512.c). */
#pragma GCC unroll 8
	for (l = 0; l < 8; l++)
		_mm_prefetch((const char *)(p + (8 * AVX2_PF_GROUPS + l) * stride), _MM_HINT_T1);
	#pragma GCC unroll 8
	for (half = 0; half < 2; half++) {
		V x[8];

		#pragma GCC unroll 8
		for (l = 0; l < 8; l++)
			x[l] = V_LOADU(p + l * stride + 32 * half);
		transpose8(x, m + 8 * half);
	}
}

#include "blake3/blake3_simd.h"
