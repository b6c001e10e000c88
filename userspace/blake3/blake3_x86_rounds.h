/* SPDX-License-Identifier: MIT */
/*
 * The 7 rounds of one block for the 16-register kernels (SSE4.1, AVX2), as
 * one inline-assembly sequence with the state in fixed registers.
 *
 * Why assembly: these ISAs have 16 vector registers and the state alone
 * takes 16. gcc 12, given the same rounds as C intrinsics, spills state
 * words and reloads them right after the store, on the dependency chain:
 * 2.46 GB/s (AVX2) and 1.23 GB/s (SSE4.1) on 64 chunks in L1/L2 against
 * 3.8-4.0 and 1.9-2.0 for the blake3 crate's hand-written kernels (the ones
 * b3sum runs), measured on the AMD EPYC (Zen 5) development VM; clang 14
 * reaches 3.45 / 1.91 on the same C. Here register i holds state word i of
 * every lane for the whole block; the message words stay in memory (the
 * transposed block at m, written by load_msg a block ahead) and are added
 * as memory operands;
 * the rotations by 12 and 7 need one scratch register, so register 8 (a
 * "c" word in both the column and the diagonal step) is parked in memory
 * for them: 4 stores and 4 loads per round, off the critical path.
 *
 * The includer defines, with s/d register numbers, w the work area
 * (struct simd_work: v[16], spill, mn[2][16], all of the vector width) and
 * m the block's message (one of w.mn):
 *   ASM_LOAD(i)      register i = w.v[i]
 *   ASM_ADDM(x, a)   a += m[x]
 *   ASM_ADD(s, d)    d += s          ASM_XOR(s, d)  d ^= s
 *   ASM_ROT16(d), ASM_ROT8(d)        byte-shuffle rotations (constants at k)
 *   ASM_ROTR(n, d)   d = d >>> n through register 8
 *   ASM_SPILL, ASM_FILL              register 8 to / from w.spill
 */
#ifndef ASM_ADDM
#error "define the ASM_* operations before including blake3_x86_rounds.h"
#endif

/*
 * Half of the G function on four columns (or diagonals) at once, step by
 * step: a += b + m[x]; d = (d ^ a) >>> R1 (a byte shuffle); c += d;
 * b = (b ^ c) >>> r2. The first half rotates by 16 and 12, the second by
 * 8 and 7.
 */
#define B3X_HALF(ROT1, r2, a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3, x0, \
		 x1, x2, x3)                                                                  \
	ASM_ADDM(x0, a0) ASM_ADDM(x1, a1) ASM_ADDM(x2, a2) ASM_ADDM(x3, a3)                     \
	ASM_ADD(b0, a0) ASM_ADD(b1, a1) ASM_ADD(b2, a2) ASM_ADD(b3, a3)                         \
	ASM_XOR(a0, d0) ASM_XOR(a1, d1) ASM_XOR(a2, d2) ASM_XOR(a3, d3)                         \
	ROT1(d0) ROT1(d1) ROT1(d2) ROT1(d3)                                                     \
	ASM_ADD(d0, c0) ASM_ADD(d1, c1) ASM_ADD(d2, c2) ASM_ADD(d3, c3)                         \
	ASM_XOR(c0, b0) ASM_XOR(c1, b1) ASM_XOR(c2, b2) ASM_XOR(c3, b3)                         \
	ASM_SPILL                                                                               \
	ASM_ROTR(r2, b0) ASM_ROTR(r2, b1) ASM_ROTR(r2, b2) ASM_ROTR(r2, b3)                     \
	ASM_FILL

/* The G function on four columns (or diagonals) at once. */
#define B3X_G4(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3, x0, x1, x2, x3, \
	       y0, y1, y2, y3)                                                                  \
	B3X_HALF(ASM_ROT16, 12, a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3, \
		 x0, x1, x2, x3)                                                                \
	B3X_HALF(ASM_ROT8, 7, a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3,   \
		 y0, y1, y2, y3)

/* One round: columns, then diagonals; s0..s15 is the round's message order. */
#define B3X_ROUND(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15)        \
	B3X_G4(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, s0, s2, s4, s6, s1, s3, s5, \
	       s7)                                                                              \
	B3X_G4(0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13, 3, 4, 9, 14, s8, s10, s12, s14, s9, s11, \
	       s13, s15)
#define B3X_ROUND_(...) B3X_ROUND(__VA_ARGS__)

/*
 * The block with the chaining value in registers 0-7 on entry and the new
 * one there on exit (bound to them as operands, so it stays in registers
 * from one block to the next); words 8-15 from w.v.
 */
/* clang-format off */
#define B3X_BLOCK_CV                                                                            \
	ASM_LOAD(8) ASM_LOAD(9) ASM_LOAD(10) ASM_LOAD(11) ASM_LOAD(12) ASM_LOAD(13) ASM_LOAD(14) \
	ASM_LOAD(15)                                                                            \
	B3X_ROUND_(BLAKE3_SCHED_0) B3X_ROUND_(BLAKE3_SCHED_1) B3X_ROUND_(BLAKE3_SCHED_2)         \
	B3X_ROUND_(BLAKE3_SCHED_3) B3X_ROUND_(BLAKE3_SCHED_4) B3X_ROUND_(BLAKE3_SCHED_5)         \
	B3X_ROUND_(BLAKE3_SCHED_6)                                                             \
	ASM_XOR(8, 0) ASM_XOR(9, 1) ASM_XOR(10, 2) ASM_XOR(11, 3) ASM_XOR(12, 4) ASM_XOR(13, 5) \
	ASM_XOR(14, 6) ASM_XOR(15, 7)
/* clang-format on */

/* The chaining value h[0..7] (vectors V) bound to registers 0-7 (reg:
 * "xmm", "ymm" or "zmm") as r0..r7, and back into h after the block. */
#define B3X_CV_BIND(h, reg)                                                                        \
	register V r0 __asm__(reg "0") = (h)[0];                                                   \
	register V r1 __asm__(reg "1") = (h)[1];                                                   \
	register V r2 __asm__(reg "2") = (h)[2];                                                   \
	register V r3 __asm__(reg "3") = (h)[3];                                                   \
	register V r4 __asm__(reg "4") = (h)[4];                                                   \
	register V r5 __asm__(reg "5") = (h)[5];                                                   \
	register V r6 __asm__(reg "6") = (h)[6];                                                   \
	register V r7 __asm__(reg "7") = (h)[7]
#define B3X_CV_BACK(h)                                                                             \
	do {                                                                                       \
		(h)[0] = r0;                                                                       \
		(h)[1] = r1;                                                                       \
		(h)[2] = r2;                                                                       \
		(h)[3] = r3;                                                                       \
		(h)[4] = r4;                                                                       \
		(h)[5] = r5;                                                                       \
		(h)[6] = r6;                                                                       \
		(h)[7] = r7;                                                                       \
	} while (0)

/*
 * B3X_BLOCK_CV with the chaining value h[0..7] (vectors V) bound to
 * registers 0-7 (reg: "xmm" or "ymm"), mp the block's message, k the
 * rotation masks.
 */
#define B3X_ASM_BLOCK_CV(wp, h, mp, reg, masks)                                                    \
	do {                                                                                       \
		B3X_CV_BIND(h, reg);                                                               \
		__asm__ volatile(B3X_BLOCK_CV                                                      \
				 : "+x"(r0), "+x"(r1), "+x"(r2), "+x"(r3), "+x"(r4), "+x"(r5),     \
				   "+x"(r6), "+x"(r7)                                              \
				 : [w] "r"(wp), [m] "r"(mp), [k] "r"(masks)                        \
				 : B3X_CLOBBERS_CV);                                               \
		B3X_CV_BACK(h);                                                                    \
	} while (0)

/* What the block clobbers in the 16-register kernels. */
#define B3X_CLOBBERS                                                                           \
	"memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
		"xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
/* What B3X_BLOCK_CV clobbers (registers 0-7 are its operands). */
#define B3X_CLOBBERS_CV                                                                            \
	"memory", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
