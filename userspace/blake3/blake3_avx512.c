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

/* 4x4 transpose of 32-bit words inside each 128-bit lane of x[0..3]. */
static inline __attribute__((always_inline)) void transpose4x4_lanes(V x[4])
{
	V t0 = _mm512_unpacklo_epi32(x[0], x[1]), t1 = _mm512_unpackhi_epi32(x[0], x[1]);
	V t2 = _mm512_unpacklo_epi32(x[2], x[3]), t3 = _mm512_unpackhi_epi32(x[2], x[3]);

	x[0] = _mm512_unpacklo_epi64(t0, t2);
	x[1] = _mm512_unpackhi_epi64(t0, t2);
	x[2] = _mm512_unpacklo_epi64(t1, t3);
	x[3] = _mm512_unpackhi_epi64(t1, t3);
}

static inline __attribute__((always_inline)) void load_msg(const uint8_t *p, size_t stride, V m[16])
{
	int g, h, r, j;

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
	/*
	 * 16x16 transpose, words 8h..8h+7 at a time. Row t[r] holds them for
	 * inputs r and r + 4 (256-bit loads, the upper one inserted straight
	 * from memory), u[r] for 8 + r and 12 + r; a 4x4 transpose inside each
	 * 128-bit lane then leaves word 8h + j of inputs 0-3, 4-7 (t[j] lanes
	 * 0, 2) and 8-11, 12-15 (u[j] lanes 0, 2), word 8h + 4 + j in lanes 1
	 * and 3: one cross-lane shuffle per message word. The older full-width
	 * version (16 loads, 32 unpacks, 32 cross-lane shuffles per block): 256
	 * KiB in cache 7.87 -> 8.36 GB/s (b3ref 9.05-9.07).
	 */
#pragma GCC unroll 2
	for (h = 0; h < 2; h++) {
		V t[4], u[4];

#pragma GCC unroll 4
		for (r = 0; r < 4; r++) {
			/* words 8h..8h+7 of inputs r | r + 4 (t) and 8 + r | 12 + r (u) */
			t[r] = _mm512_inserti64x4(
				_mm512_castsi256_si512(_mm256_loadu_si256(
					(const __m256i *)(const void *)(p + r * stride + 32 * h))),
				_mm256_loadu_si256(
					(const __m256i *)(const void *)(p + (r + 4) * stride + 32 * h)),
				1);
			u[r] = _mm512_inserti64x4(
				_mm512_castsi256_si512(_mm256_loadu_si256(
					(const __m256i *)(const void *)(p + (r + 8) * stride + 32 * h))),
				_mm256_loadu_si256(
					(const __m256i *)(const void *)(p + (r + 12) * stride + 32 * h)),
				1);
		}
		transpose4x4_lanes(t);
		transpose4x4_lanes(u);
#pragma GCC unroll 4
		for (j = 0; j < 4; j++) {
			m[8 * h + j] = _mm512_shuffle_i32x4(t[j], u[j], _MM_SHUFFLE(2, 0, 2, 0));
			m[8 * h + 4 + j] = _mm512_shuffle_i32x4(t[j], u[j], _MM_SHUFFLE(3, 1, 3, 1));
		}
	}
}

/*
 * The rounds in assembly too (blake3_x86_rounds.h): zmm0-15 hold the state,
 * zmm16-31 the block's 16 message words, and vprord rotates in place, so
 * nothing is spilled. w: v[16] at 0 (words 8-15 are read from there).
 */
#define ASM_LOAD(i) "vmovdqa64 64*" #i "(%[w]), %%zmm" #i "\n\t"
/* Message word x: zmm(16 + x), loaded from the transposed block at [m]. */
#define ZMSG_0 "%%zmm16"
#define ZMSG_1 "%%zmm17"
#define ZMSG_2 "%%zmm18"
#define ZMSG_3 "%%zmm19"
#define ZMSG_4 "%%zmm20"
#define ZMSG_5 "%%zmm21"
#define ZMSG_6 "%%zmm22"
#define ZMSG_7 "%%zmm23"
#define ZMSG_8 "%%zmm24"
#define ZMSG_9 "%%zmm25"
#define ZMSG_10 "%%zmm26"
#define ZMSG_11 "%%zmm27"
#define ZMSG_12 "%%zmm28"
#define ZMSG_13 "%%zmm29"
#define ZMSG_14 "%%zmm30"
#define ZMSG_15 "%%zmm31"
#define ASM_ADDM(x, a) "vpaddd " ZMSG_##x ", %%zmm" #a ", %%zmm" #a "\n\t"
#define ASM_ADD(s, d) "vpaddd %%zmm" #s ", %%zmm" #d ", %%zmm" #d "\n\t"
#define ASM_XOR(s, d) "vpxord %%zmm" #s ", %%zmm" #d ", %%zmm" #d "\n\t"
#define ASM_ROT16(d) "vprord $16, %%zmm" #d ", %%zmm" #d "\n\t"
#define ASM_ROT8(d) "vprord $8, %%zmm" #d ", %%zmm" #d "\n\t"
#define ASM_ROTR(n, d) "vprord $" #n ", %%zmm" #d ", %%zmm" #d "\n\t"
#define ASM_SPILL ""
#define ASM_FILL ""
#include "blake3/blake3_x86_rounds.h"

/*
 * One block, software-pipelined with the transpose of the next
 * (struct simd_work in blake3_simd.h): the block's message comes
 * transposed from the work area ([m], written by load_msg while the block
 * before was hashed) into zmm16-31, and the chaining value h[0..7] is bound
 * to zmm0-7 as the block's operand and result, so it stays in registers
 * from one block to the next.
 *
 * Why: with the transpose of a block just before its own rounds (the
 * message then bound straight to zmm16-28 as operands), each block began
 * by waiting for loads and a chain of shuffles that nothing else could
 * overlap: the state and message fill all 32 registers, and the next
 * block's shuffles sat behind ~800 round instructions, past the
 * scheduler's reach. Transposing block b + 1 before block b's rounds lets
 * those shuffles run beside the rounds, for 16 stores and 16 loads of
 * 64 bytes a block (not the ALU ports the rounds need). Measured on an
 * Intel Xeon (family 6 model 167, AVX-512; 2026-11-30), 16 chunks x 16
 * blocks through this kernel, best of 2,000: 8.2-8.3 -> 9.0-9.2 GB/s
 * (blake3 1.3.1's assembly: 9.3); a 256 KiB hash 7.48 -> 8.33 GB/s
 * (b3ref 8.46). Without any transpose (a wrong hash, for the bound) the
 * rounds alone reach 9.6.
 *
 * GCC keeps a local register variable in its register only as an asm
 * operand: anything that runs between its assignment and the asm may
 * clobber it, and every vector register is call-clobbered (a
 * ThreadSanitizer build turns stores into calls). So every value is read
 * into a temporary first and the register variables take them just
 * before the asm, with nothing between.
 */
#define SIMD_ASM_BLOCK(wp) /* (not used: SIMD_ASM_BLOCK_CV is) */
#define ASM_LDM(x, r) "vmovdqa64 64*" #x "(%[m]), %%zmm" #r "\n\t"
#define SIMD_ASM_BLOCK_CV(wp, h, mp)                                                         \
	do {                                                                                   \
		V c0_ = (h)[0], c1_ = (h)[1], c2_ = (h)[2], c3_ = (h)[3];                      \
		V c4_ = (h)[4], c5_ = (h)[5], c6_ = (h)[6], c7_ = (h)[7];                      \
		register V r0 __asm__("zmm0") = c0_, r1 __asm__("zmm1") = c1_;                \
		register V r2 __asm__("zmm2") = c2_, r3 __asm__("zmm3") = c3_;                \
		register V r4 __asm__("zmm4") = c4_, r5 __asm__("zmm5") = c5_;                \
		register V r6 __asm__("zmm6") = c6_, r7 __asm__("zmm7") = c7_;                \
		__asm__ volatile(ASM_LDM(0, 16) ASM_LDM(1, 17) ASM_LDM(2, 18) ASM_LDM(3, 19)   \
				 ASM_LDM(4, 20) ASM_LDM(5, 21) ASM_LDM(6, 22) ASM_LDM(7, 23)   \
				 ASM_LDM(8, 24) ASM_LDM(9, 25) ASM_LDM(10, 26)                 \
				 ASM_LDM(11, 27) ASM_LDM(12, 28) ASM_LDM(13, 29)               \
				 ASM_LDM(14, 30) ASM_LDM(15, 31) B3X_BLOCK_CV                  \
				 : "+v"(r0), "+v"(r1), "+v"(r2), "+v"(r3), "+v"(r4), "+v"(r5), \
				   "+v"(r6), "+v"(r7)                                          \
				 : [w] "r"(wp), [m] "r"(mp)                                    \
				 : B3X_CLOBBERS_CV, "xmm16", "xmm17", "xmm18", "xmm19",        \
				   "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25",       \
				   "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");      \
		B3X_CV_BACK(h);                                                                \
	} while (0)

/*
 * The chaining values out (word i of every lane in h[i]) by a transpose in
 * registers: a 4x4 inside each 128-bit lane of h[0..3] and of h[4..7] puts
 * words 0-3 / 4-7 of input 4k + j in lane k of x[j] / y[j]; one two-source
 * permute then pairs them into inputs j, 4 + j (zl) and 8 + j, 12 + j (zh),
 * 32 bytes each. Before: 128 scalar 4-byte copies per call, as much as the
 * block itself for a parent level (one block per call).
 */
static inline __attribute__((always_inline)) void store_cv16(const V h[8], uint8_t *out)
{
	V x[4] = {h[0], h[1], h[2], h[3]}, y[4] = {h[4], h[5], h[6], h[7]};
	const V il = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
	const V ih = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
	int j;

	transpose4x4_lanes(x);
	transpose4x4_lanes(y);
#pragma GCC unroll 4
	for (j = 0; j < 4; j++) {
		V zl = _mm512_permutex2var_epi64(x[j], il, y[j]);
		V zh = _mm512_permutex2var_epi64(x[j], ih, y[j]);

		_mm256_storeu_si256((__m256i *)(void *)(out + 32 * j), _mm512_castsi512_si256(zl));
		_mm256_storeu_si256((__m256i *)(void *)(out + 32 * (4 + j)),
				    _mm512_extracti64x4_epi64(zl, 1));
		_mm256_storeu_si256((__m256i *)(void *)(out + 32 * (8 + j)),
				    _mm512_castsi512_si256(zh));
		_mm256_storeu_si256((__m256i *)(void *)(out + 32 * (12 + j)),
				    _mm512_extracti64x4_epi64(zh, 1));
	}
}
#define SIMD_STORE_CV(h, out) store_cv16(h, out)

#include "blake3/blake3_simd.h"
