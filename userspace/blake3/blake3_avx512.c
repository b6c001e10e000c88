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
 * the message words are zmm16-31 (loaded once per block from w.m), and
 * vprord rotates in place, so nothing is spilled. w: v[16] at 0, m[16] at
 * 1024.
 */
#define ASM_LOAD(i) "vmovdqa64 64*" #i "(%[w]), %%zmm" #i "\n\t"
#define ASM_MSG_LOAD(i, r) "vmovdqa64 1024+64*" #i "(%[w]), %%zmm" #r "\n\t"
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

#define SIMD_ASM_BLOCK(wp)                                                                   \
	__asm__ volatile(ASM_MSG_LOAD(0, 16) ASM_MSG_LOAD(1, 17) ASM_MSG_LOAD(2, 18)            \
			 ASM_MSG_LOAD(3, 19) ASM_MSG_LOAD(4, 20) ASM_MSG_LOAD(5, 21)            \
			 ASM_MSG_LOAD(6, 22) ASM_MSG_LOAD(7, 23) ASM_MSG_LOAD(8, 24)            \
			 ASM_MSG_LOAD(9, 25) ASM_MSG_LOAD(10, 26) ASM_MSG_LOAD(11, 27)          \
			 ASM_MSG_LOAD(12, 28) ASM_MSG_LOAD(13, 29) ASM_MSG_LOAD(14, 30)         \
			 ASM_MSG_LOAD(15, 31) B3X_BLOCK                                         \
			 :                                                                      \
			 : [w] "r"(wp)                                                          \
			 : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",   \
			   "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", \
			   "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",       \
			   "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",       \
			   "xmm29", "xmm30", "xmm31")

#include "blake3/blake3_simd.h"
