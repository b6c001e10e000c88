// SPDX-License-Identifier: MIT
/* BLAKE3 kernel: 4 inputs at a time in SSE4.1 registers (built with -msse4.1). */
#include <immintrin.h>
#include <string.h>

#include "blake3/blake3_impl.h"

#define LANES 4
#define V __m128i
#define V_ADD(a, b) _mm_add_epi32(a, b)
#define V_XOR(a, b) _mm_xor_si128(a, b)
#define V_SET1(x) _mm_set1_epi32((int)(x))
#define V_LOADU(p) _mm_loadu_si128((const __m128i *)(const void *)(p))
#define V_STOREU(p, x) _mm_storeu_si128((__m128i *)(void *)(p), x)
/* Rotations by whole bytes are one byte shuffle. */
#define V_ROT16(x) \
	_mm_shuffle_epi8(x, _mm_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13))
#define V_ROT8(x) \
	_mm_shuffle_epi8(x, _mm_setr_epi8(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12))
#define V_ROT12(x) _mm_or_si128(_mm_srli_epi32(x, 12), _mm_slli_epi32(x, 20))
#define V_ROT7(x) _mm_or_si128(_mm_srli_epi32(x, 7), _mm_slli_epi32(x, 25))
#define KERNEL blake3_hash_many_sse41
#define FALLBACK blake3_hash_many_portable

/* 4x4 transpose of 32-bit words: rows in x, columns out to m. */
static inline __attribute__((always_inline)) void transpose4(const V x[4], V *m)
{
	V t0 = _mm_unpacklo_epi32(x[0], x[1]);
	V t1 = _mm_unpacklo_epi32(x[2], x[3]);
	V t2 = _mm_unpackhi_epi32(x[0], x[1]);
	V t3 = _mm_unpackhi_epi32(x[2], x[3]);

	m[0] = _mm_unpacklo_epi64(t0, t1);
	m[1] = _mm_unpackhi_epi64(t0, t1);
	m[2] = _mm_unpacklo_epi64(t2, t3);
	m[3] = _mm_unpackhi_epi64(t2, t3);
}

static inline __attribute__((always_inline)) void load_msg(const uint8_t *p, size_t stride, V m[16])
{
	int q, l;

	/*
	 * Same block of the inputs 4 groups of 4 ahead (16 KiB of chunks), into
	 * L2, as the wider kernels do (see blake3_avx512.c).
	 */
#pragma GCC unroll 4
	for (l = 0; l < 4; l++)
		_mm_prefetch((const char *)(p + (16 + l) * stride), _MM_HINT_T1);
	#pragma GCC unroll 8
	for (q = 0; q < 4; q++) {
		V x[4];

		#pragma GCC unroll 8
		for (l = 0; l < 4; l++)
			x[l] = V_LOADU(p + l * stride + 16 * q);
		transpose4(x, m + 4 * q);
	}
}

/* The chaining values out: two 4x4 transposes, two stores per lane (see blake3_avx2.c). */
static inline __attribute__((always_inline)) void store_cv(const V h[8], uint8_t *out)
{
	V m[8];
	int l;

	transpose4(h, m);
	transpose4(h + 4, m + 4);
#pragma GCC unroll 8
	for (l = 0; l < 4; l++) {
		V_STOREU(out + 32 * l, m[l]);
		V_STOREU(out + 32 * l + 16, m[l + 4]);
	}
}
#define SIMD_STORE_CV(h, out) store_cv(h, out)

/*
 * The rounds in assembly (blake3_x86_rounds.h says why): xmm0-15 hold the
 * state; w: v[16] at 0, spill at 256 (16-byte aligned, as SSE memory
 * operands must be); m: the block's transposed message (one of w.mn); k:
 * the two pshufb rotation masks.
 */
#define ASM_LOAD(i) "movdqa 16*" #i "(%[w]), %%xmm" #i "\n\t"
#define ASM_ADDM(x, a) "paddd 16*" #x "(%[m]), %%xmm" #a "\n\t"
#define ASM_ADD(s, d) "paddd %%xmm" #s ", %%xmm" #d "\n\t"
#define ASM_XOR(s, d) "pxor %%xmm" #s ", %%xmm" #d "\n\t"
#define ASM_ROT16(d) "pshufb (%[k]), %%xmm" #d "\n\t"
#define ASM_ROT8(d) "pshufb 16(%[k]), %%xmm" #d "\n\t"
#define ASM_ROTR(n, d)                                                                       \
	"movdqa %%xmm" #d ", %%xmm8\n\t"                                                     \
	"psrld $" #n ", %%xmm8\n\t"                                                          \
	"pslld $32-" #n ", %%xmm" #d "\n\t"                                                  \
	"por %%xmm8, %%xmm" #d "\n\t"
#define ASM_SPILL "movdqa %%xmm8, 256(%[w])\n\t"
#define ASM_FILL "movdqa 256(%[w]), %%xmm8\n\t"
#include "blake3/blake3_x86_rounds.h"

static const uint8_t sse41_rot_masks[32] __attribute__((aligned(16))) = {
	2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, /* >>> 16 */
	1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, /* >>> 8 */
};

/* The chaining value h[0..7] bound to xmm0-7 across the block (see blake3_avx2.c). */
#define SIMD_ASM_BLOCK_CV(wp, h, mp) B3X_ASM_BLOCK_CV(wp, h, mp, "xmm", sse41_rot_masks)
#define SIMD_ASM_BLOCK(wp) /* (not used: SIMD_ASM_BLOCK_CV is) */

#include "blake3/blake3_simd.h"
