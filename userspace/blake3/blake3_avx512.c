// SPDX-License-Identifier: MIT
/*
 * BLAKE3 kernel: 16 inputs at a time in AVX-512 registers (built with
 * -mavx512f -mavx512vl). AVX-512 has a rotate instruction, and 32 vector
 * registers hold the whole state and message without spilling.
 */
#include <immintrin.h>
#include <string.h>

#include "blake3/blake3_impl.h"

#define LANES 16
#define V __m512i
#define V_ADD(a, b) _mm512_add_epi32(a, b)
#define V_XOR(a, b) _mm512_xor_si512(a, b)
#define V_SET1(x) _mm512_set1_epi32((int)(x))
#define V_LOADU(p) _mm512_loadu_si512((const void *)(p))
#define V_STOREU(p, x) _mm512_storeu_si512((void *)(p), x)
#define V_ROT16(x) _mm512_ror_epi32(x, 16)
#define V_ROT12(x) _mm512_ror_epi32(x, 12)
#define V_ROT8(x) _mm512_ror_epi32(x, 8)
#define V_ROT7(x) _mm512_ror_epi32(x, 7)
#define KERNEL blake3_hash_many_avx512
#define FALLBACK blake3_hash_many_avx2

/*
 * 16x16 transpose of 32-bit words. Rows 4g..4g+3 are first transposed as
 * 4x4 blocks inside each 128-bit lane k, giving a[g][j] = word 4k + j of
 * those rows; then 128-bit blocks are regrouped so that m[4k + j] collects
 * a[0..3][j] block k.
 */
static inline __attribute__((always_inline)) void load_msg(const uint8_t *p, size_t stride, V m[16])
{
	V a[4][4];
	int g, j;

	/*
	 * Prefetch the same block of the next group of 16 inputs into L2
	 * (chunks: 16 KiB ahead, ~3 us of work): that is exactly what this
	 * kernel (or the next call, hashing the adjacent subtree) reads next.
	 * Measured on Zen 4, 1 GiB from DRAM: 3.5 GB/s with no group-ahead
	 * prefetch (4 blocks ahead into L1), 4.1 with 1-2 groups ahead into
	 * L1, 5.0 with 1 group ahead into L2 (= the speed on L2-resident
	 * data). Prefetching past the end of the input is harmless: prefetch
	 * never faults.
	 */
#pragma GCC unroll 16
	for (g = 0; g < 16; g++)
		_mm_prefetch((const char *)(p + (16 + g) * stride), _MM_HINT_T1);
	#pragma GCC unroll 8
	for (g = 0; g < 4; g++) {
		V x0 = V_LOADU(p + (4 * g + 0) * stride), x1 = V_LOADU(p + (4 * g + 1) * stride);
		V x2 = V_LOADU(p + (4 * g + 2) * stride), x3 = V_LOADU(p + (4 * g + 3) * stride);
		V t0 = _mm512_unpacklo_epi32(x0, x1), t1 = _mm512_unpackhi_epi32(x0, x1);
		V t2 = _mm512_unpacklo_epi32(x2, x3), t3 = _mm512_unpackhi_epi32(x2, x3);

		a[g][0] = _mm512_unpacklo_epi64(t0, t2);
		a[g][1] = _mm512_unpackhi_epi64(t0, t2);
		a[g][2] = _mm512_unpacklo_epi64(t1, t3);
		a[g][3] = _mm512_unpackhi_epi64(t1, t3);
	}
	#pragma GCC unroll 8
	for (j = 0; j < 4; j++) {
		V b0 = _mm512_shuffle_i32x4(a[0][j], a[1][j], _MM_SHUFFLE(1, 0, 1, 0));
		V b1 = _mm512_shuffle_i32x4(a[0][j], a[1][j], _MM_SHUFFLE(3, 2, 3, 2));
		V b2 = _mm512_shuffle_i32x4(a[2][j], a[3][j], _MM_SHUFFLE(1, 0, 1, 0));
		V b3 = _mm512_shuffle_i32x4(a[2][j], a[3][j], _MM_SHUFFLE(3, 2, 3, 2));

		m[0 + j] = _mm512_shuffle_i32x4(b0, b2, _MM_SHUFFLE(2, 0, 2, 0));
		m[4 + j] = _mm512_shuffle_i32x4(b0, b2, _MM_SHUFFLE(3, 1, 3, 1));
		m[8 + j] = _mm512_shuffle_i32x4(b1, b3, _MM_SHUFFLE(2, 0, 2, 0));
		m[12 + j] = _mm512_shuffle_i32x4(b1, b3, _MM_SHUFFLE(3, 1, 3, 1));
	}
}

/*
 * The rounds in assembly too (blake3_x86_rounds.h): zmm0-15 hold the state,
 * the message words are zmm16-31 (load_msg's results, bound to them as
 * operands: no trip through w.m, 7.49 -> 7.86 GB/s on 256 KiB in cache),
 * and vprord rotates in place, so nothing is spilled. w: v[16] at 0.
 */
#define ASM_LOAD(i) "vmovdqa64 64*" #i "(%[w]), %%zmm" #i "\n\t"
#define ZMSG_0 "16"
#define ZMSG_1 "17"
#define ZMSG_2 "18"
#define ZMSG_3 "19"
#define ZMSG_4 "20"
#define ZMSG_5 "21"
#define ZMSG_6 "22"
#define ZMSG_7 "23"
#define ZMSG_8 "24"
#define ZMSG_9 "25"
#define ZMSG_10 "26"
#define ZMSG_11 "27"
#define ZMSG_12 "28"
#define ZMSG_13 "29"
#define ZMSG_14 "30"
#define ZMSG_15 "31"
#define ASM_ADDM(x, a) "vpaddd %%zmm" ZMSG_##x ", %%zmm" #a ", %%zmm" #a "\n\t"
#define ASM_ADD(s, d) "vpaddd %%zmm" #s ", %%zmm" #d ", %%zmm" #d "\n\t"
#define ASM_XOR(s, d) "vpxord %%zmm" #s ", %%zmm" #d ", %%zmm" #d "\n\t"
#define ASM_ROT16(d) "vprord $16, %%zmm" #d ", %%zmm" #d "\n\t"
#define ASM_ROT8(d) "vprord $8, %%zmm" #d ", %%zmm" #d "\n\t"
#define ASM_ROTR(n, d) "vprord $" #n ", %%zmm" #d ", %%zmm" #d "\n\t"
#define ASM_SPILL ""
#define ASM_FILL ""
#define ASM_FEED(i, j)                                                                       \
	"vpxord %%zmm" #j ", %%zmm" #i ", %%zmm" #i "\n\t"                                    \
	"vmovdqa64 %%zmm" #i ", 64*" #i "(%[w])\n\t"
#include "blake3/blake3_x86_rounds.h"

#define SIMD_ASM_BLOCK(wp) /* (not used: SIMD_ASM_BLOCK_REGS is) */
/* The message straight from load_msg's registers, bound to zmm16-31. */
#define SIMD_ASM_BLOCK_REGS(wp, m)                                                           \
	do {                                                                                   \
		register V r16 __asm__("zmm16") = (m)[0], r17 __asm__("zmm17") = (m)[1];       \
		register V r18 __asm__("zmm18") = (m)[2], r19 __asm__("zmm19") = (m)[3];       \
		register V r20 __asm__("zmm20") = (m)[4], r21 __asm__("zmm21") = (m)[5];       \
		register V r22 __asm__("zmm22") = (m)[6], r23 __asm__("zmm23") = (m)[7];       \
		register V r24 __asm__("zmm24") = (m)[8], r25 __asm__("zmm25") = (m)[9];       \
		register V r26 __asm__("zmm26") = (m)[10], r27 __asm__("zmm27") = (m)[11];     \
		register V r28 __asm__("zmm28") = (m)[12], r29 __asm__("zmm29") = (m)[13];     \
		register V r30 __asm__("zmm30") = (m)[14], r31 __asm__("zmm31") = (m)[15];     \
		__asm__ volatile(B3X_BLOCK                                                     \
				 :                                                             \
				 : [w] "r"(wp), "v"(r16), "v"(r17), "v"(r18), "v"(r19),       \
				   "v"(r20), "v"(r21), "v"(r22), "v"(r23), "v"(r24), "v"(r25), \
				   "v"(r26), "v"(r27), "v"(r28), "v"(r29), "v"(r30), "v"(r31)  \
				 : B3X_CLOBBERS);                                              \
	} while (0)

#include "blake3/blake3_simd.h"
