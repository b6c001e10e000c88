// SPDX-License-Identifier: MIT
/* BLAKE3 kernel: 8 inputs at a time in AVX2 registers (built with -mavx2). */
#include <immintrin.h>
#include <string.h>

#include "blake3/blake3_impl.h"

/*
 * Prefetch distance in groups of 8 inputs: 2 (16 KiB of chunks, as the
 * AVX-512 kernel). 1 GiB from DRAM on Zen 4: 1.9 GB/s with the old 4-blocks-
 * ahead prefetch, 2.45 with 1 or 2 groups ahead into L2. On Zen 3 (EPYC,
 * AVX2 only), 1 GiB through update_fd: 0, 1, 2 or 4 groups measure the same
 * (2.76-2.85 GB/s one thread; 0-2: 5.37-5.41 two; the pread buffer is in L2/L3).
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

static inline __attribute__((always_inline)) void load_msg(const uint8_t *p, size_t stride, V m[16])
{
	int q, l;

	/* Same block of the inputs AVX2_PF_GROUPS groups ahead, into L2 (see blake3_avx512.c). */
#pragma GCC unroll 8
	for (l = 0; l < 8; l++)
		_mm_prefetch((const char *)(p + (8 * AVX2_PF_GROUPS + l) * stride), _MM_HINT_T1);
	/*
	 * Words 4q..4q+3: row l holds them for input l (low half) and input
	 * l + 4 (high half, inserted straight from memory), so a 4x4 transpose
	 * inside each 128-bit half gives m[4q + j] with no cross-lane shuffle.
	 */
#pragma GCC unroll 4
	for (q = 0; q < 4; q++) {
		V x[4], t0, t1, t2, t3;

#pragma GCC unroll 4
		for (l = 0; l < 4; l++)
			x[l] = _mm256_inserti128_si256(
				_mm256_castsi128_si256(_mm_loadu_si128(
					(const __m128i *)(const void *)(p + l * stride + 16 * q))),
				_mm_loadu_si128((const __m128i *)(const void *)(p + (l + 4) * stride +
									 16 * q)),
				1);
		t0 = _mm256_unpacklo_epi32(x[0], x[1]);
		t1 = _mm256_unpacklo_epi32(x[2], x[3]);
		t2 = _mm256_unpackhi_epi32(x[0], x[1]);
		t3 = _mm256_unpackhi_epi32(x[2], x[3]);
		m[4 * q + 0] = _mm256_unpacklo_epi64(t0, t1);
		m[4 * q + 1] = _mm256_unpackhi_epi64(t0, t1);
		m[4 * q + 2] = _mm256_unpacklo_epi64(t2, t3);
		m[4 * q + 3] = _mm256_unpackhi_epi64(t2, t3);
	}
}

/*
 * The chaining values out: an 8x8 transpose of 32-bit words in registers
 * (unpack inside the 128-bit halves, then swap halves), one store per lane.
 * For parent levels (one block per call) the plain loop of blake3_simd.h,
 * 64 scalar copies, cost as much as the block itself.
 */
static inline __attribute__((always_inline)) void store_cv(const V h[8], uint8_t *out)
{
	V t[8], u[8];
	int i;

#pragma GCC unroll 8
	for (i = 0; i < 4; i++) {
		t[2 * i] = _mm256_unpacklo_epi32(h[2 * i], h[2 * i + 1]);
		t[2 * i + 1] = _mm256_unpackhi_epi32(h[2 * i], h[2 * i + 1]);
	}
	/* u[j]: words 0-3 (j < 4) or 4-7 (j >= 4) of lanes j % 4 and j % 4 + 4. */
#pragma GCC unroll 8
	for (i = 0; i < 2; i++) {
		u[4 * i + 0] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
		u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
		u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
		u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
	}
#pragma GCC unroll 8
	for (i = 0; i < 4; i++) {
		V_STOREU(out + 32 * i, _mm256_permute2x128_si256(u[i], u[i + 4], 0x20));
		V_STOREU(out + 32 * (i + 4), _mm256_permute2x128_si256(u[i], u[i + 4], 0x31));
	}
}
#define SIMD_STORE_CV(h, out) store_cv(h, out)

/*
 * The rounds in assembly (blake3_x86_rounds.h says why): ymm0-15 hold the
 * state; w: v[16] at 0, spill at 512; m: the block's transposed message
 * (one of w.mn); k: the two vpshufb rotation masks.
 */
#define ASM_LOAD(i) "vmovdqa 32*" #i "(%[w]), %%ymm" #i "\n\t"
#define ASM_ADDM(x, a) "vpaddd 32*" #x "(%[m]), %%ymm" #a ", %%ymm" #a "\n\t"
#define ASM_ADD(s, d) "vpaddd %%ymm" #s ", %%ymm" #d ", %%ymm" #d "\n\t"
#define ASM_XOR(s, d) "vpxor %%ymm" #s ", %%ymm" #d ", %%ymm" #d "\n\t"
#define ASM_ROT16(d) "vpshufb (%[k]), %%ymm" #d ", %%ymm" #d "\n\t"
#define ASM_ROT8(d) "vpshufb 32(%[k]), %%ymm" #d ", %%ymm" #d "\n\t"
#define ASM_ROTR(n, d)                                                                       \
	"vpsrld $" #n ", %%ymm" #d ", %%ymm8\n\t"                                            \
	"vpslld $32-" #n ", %%ymm" #d ", %%ymm" #d "\n\t"                                      \
	"vpor %%ymm8, %%ymm" #d ", %%ymm" #d "\n\t"
#define ASM_SPILL "vmovdqa %%ymm8, 512(%[w])\n\t"
#define ASM_FILL "vmovdqa 512(%[w]), %%ymm8\n\t"
#include "blake3/blake3_x86_rounds.h"

static const uint8_t avx2_rot_masks[64] __attribute__((aligned(32))) = {
	2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, /* >>> 16 */
	2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
	1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, /* >>> 8 */
	1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
};

/*
 * The chaining value h[0..7] bound to ymm0-7 across the block, so that it
 * stays in registers from one block to the next (load_msg needs only 6):
 * no store and reload of 8 state words per block.
 */
#define SIMD_ASM_BLOCK_CV(wp, h, mp) B3X_ASM_BLOCK_CV(wp, h, mp, "ymm", avx2_rot_masks)
#define SIMD_ASM_BLOCK(wp) /* (not used: SIMD_ASM_BLOCK_CV is) */

#include "blake3/blake3_simd.h"
