/* SPDX-License-Identifier: MIT */
/*
 * Body shared by the SIMD kernels (blake3_sse41.c, blake3_avx2.c,
 * blake3_avx512.c): LANES inputs are hashed side by side, vector register i
 * holding state word i of every input ("transposed" layout), so one
 * instruction advances LANES compressions. Each includer defines first:
 *   LANES, V (vector type), V_ADD, V_XOR, V_SET1, V_LOADU (unaligned load of
 *   LANES u32), V_STOREU, V_ROT16, V_ROT12, V_ROT8, V_ROT7,
 *   load_msg(p, stride, m): word w of block p + lane * stride into m[w],
 *   KERNEL (name of the hash_many function), FALLBACK (narrower hash_many),
 * and may define SIMD_STORE_CV(h, out): word i of every lane in h[i] to one
 * 32-byte chaining value per lane at out + 32 * lane (else a plain loop).
 * A kernel that defines SIMD_ASM_BLOCK runs each block's rounds in
 * assembly (blake3_x86_rounds.h: the state in fixed registers) instead of
 * the C rounds below, through SIMD_ASM_BLOCK_CV(w, h, m): the chaining
 * value h[0..7] is the block's operand and result (it stays in registers
 * from block to block), w.v holds words 8-15, and the message comes from
 * m, one of w.mn[2], into which load_msg transposed it while the block
 * before was hashed (struct simd_work).
 */
#ifndef LANES
#error "define LANES and the vector macros before including blake3_simd.h"
#endif

/*
 * Half a round: the G function on four independent (a, b, c, d) columns or
 * diagonals, written step by step across the four so that the CPU always
 * has four independent operations in flight.
 */
#define SIMD_G4(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3, x0, x1, x2, x3, \
		y0, y1, y2, y3)                                                                \
	do {                                                                                   \
		v[a0] = V_ADD(V_ADD(v[a0], v[b0]), x0);                                        \
		v[a1] = V_ADD(V_ADD(v[a1], v[b1]), x1);                                        \
		v[a2] = V_ADD(V_ADD(v[a2], v[b2]), x2);                                        \
		v[a3] = V_ADD(V_ADD(v[a3], v[b3]), x3);                                        \
		v[d0] = V_ROT16(V_XOR(v[d0], v[a0]));                                          \
		v[d1] = V_ROT16(V_XOR(v[d1], v[a1]));                                          \
		v[d2] = V_ROT16(V_XOR(v[d2], v[a2]));                                          \
		v[d3] = V_ROT16(V_XOR(v[d3], v[a3]));                                          \
		v[c0] = V_ADD(v[c0], v[d0]);                                                   \
		v[c1] = V_ADD(v[c1], v[d1]);                                                   \
		v[c2] = V_ADD(v[c2], v[d2]);                                                   \
		v[c3] = V_ADD(v[c3], v[d3]);                                                   \
		v[b0] = V_ROT12(V_XOR(v[b0], v[c0]));                                          \
		v[b1] = V_ROT12(V_XOR(v[b1], v[c1]));                                          \
		v[b2] = V_ROT12(V_XOR(v[b2], v[c2]));                                          \
		v[b3] = V_ROT12(V_XOR(v[b3], v[c3]));                                          \
		v[a0] = V_ADD(V_ADD(v[a0], v[b0]), y0);                                        \
		v[a1] = V_ADD(V_ADD(v[a1], v[b1]), y1);                                        \
		v[a2] = V_ADD(V_ADD(v[a2], v[b2]), y2);                                        \
		v[a3] = V_ADD(V_ADD(v[a3], v[b3]), y3);                                        \
		v[d0] = V_ROT8(V_XOR(v[d0], v[a0]));                                           \
		v[d1] = V_ROT8(V_XOR(v[d1], v[a1]));                                           \
		v[d2] = V_ROT8(V_XOR(v[d2], v[a2]));                                           \
		v[d3] = V_ROT8(V_XOR(v[d3], v[a3]));                                           \
		v[c0] = V_ADD(v[c0], v[d0]);                                                   \
		v[c1] = V_ADD(v[c1], v[d1]);                                                   \
		v[c2] = V_ADD(v[c2], v[d2]);                                                   \
		v[c3] = V_ADD(v[c3], v[d3]);                                                   \
		v[b0] = V_ROT7(V_XOR(v[b0], v[c0]));                                           \
		v[b1] = V_ROT7(V_XOR(v[b1], v[c1]));                                           \
		v[b2] = V_ROT7(V_XOR(v[b2], v[c2]));                                           \
		v[b3] = V_ROT7(V_XOR(v[b3], v[c3]));                                           \
	} while (0)

static inline __attribute__((always_inline)) void simd_round(V v[16], const V m[16], int r)
{
	const uint8_t *s = blake3_sched[r];

	/* columns */
	SIMD_G4(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, m[s[0]], m[s[2]], m[s[4]],
		m[s[6]], m[s[1]], m[s[3]], m[s[5]], m[s[7]]);
	/* diagonals */
	SIMD_G4(0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13, 3, 4, 9, 14, m[s[8]], m[s[10]], m[s[12]],
		m[s[14]], m[s[9]], m[s[11]], m[s[13]], m[s[15]]);
}

#ifdef SIMD_ASM_BLOCK
/*
 * The assembly rounds' memory: state words 8-15 (v[0..7] unused), a spill
 * slot, and two transposed message blocks: load_msg writes block b + 1's
 * into mn[(b + 1) & 1] before block b's rounds run on mn[b & 1], so that its
 * loads and shuffles run beside those rounds instead of holding up the
 * start of block b + 1 (blake3_avx512.c gives the figures).
 */
struct simd_work {
	V v[16];
	V spill;
	V mn[2][16];
};
#endif

/* LANES inputs at in + lane * stride; chaining values to out + 32 * lane. */
static void simd_lanes(const uint8_t *in, size_t stride, size_t blocks, const uint32_t key[8],
		       uint64_t counter, bool inc, uint8_t flags, uint8_t fstart, uint8_t fend,
		       uint8_t *out)
{
	uint32_t lo[LANES], hi[LANES];
#ifndef SIMD_STORE_CV
	uint32_t cvw[8][LANES];
#endif
	V h[8], clo, chi;
#ifdef SIMD_ASM_BLOCK
	struct simd_work w __attribute__((aligned(64)));
#else
	V m[16], v[16];
#endif
	size_t b;
	int i, l;

	if (inc) {
		for (l = 0; l < LANES; l++) {
			uint64_t c = counter + (uint64_t)l;

			lo[l] = (uint32_t)c;
			hi[l] = (uint32_t)(c >> 32);
		}
		clo = V_LOADU(lo);
		chi = V_LOADU(hi);
	} else {
		/* Parents: one counter for all lanes, no trip through memory. */
		clo = V_SET1((uint32_t)counter);
		chi = V_SET1((uint32_t)(counter >> 32));
	}
	for (i = 0; i < 8; i++)
		h[i] = V_SET1(key[i]);
#ifdef SIMD_ASM_BLOCK
	w.v[8] = V_SET1(blake3_iv[0]);
	w.v[9] = V_SET1(blake3_iv[1]);
	w.v[10] = V_SET1(blake3_iv[2]);
	w.v[11] = V_SET1(blake3_iv[3]);
	w.v[12] = clo;
	w.v[13] = chi;
	w.v[14] = V_SET1(BLAKE3_BLOCK_LEN);
#endif
	for (b = 0; b < blocks; b++) {
		uint32_t f = flags;

		if (b == 0)
			f |= fstart;
		if (b + 1 == blocks)
			f |= fend;
#ifdef SIMD_ASM_BLOCK
		w.v[15] = V_SET1(f);
		if (b == 0)
			load_msg(in, stride, w.mn[0]);
		if (b + 1 < blocks)
			load_msg(in + (b + 1) * BLAKE3_BLOCK_LEN, stride, w.mn[(b + 1) & 1]);
		/* h = the new chaining value */
		SIMD_ASM_BLOCK_CV(&w, h, w.mn[b & 1]);
#else
		load_msg(in + b * BLAKE3_BLOCK_LEN, stride, m);
		for (i = 0; i < 8; i++)
			v[i] = h[i];
		v[8] = V_SET1(blake3_iv[0]);
		v[9] = V_SET1(blake3_iv[1]);
		v[10] = V_SET1(blake3_iv[2]);
		v[11] = V_SET1(blake3_iv[3]);
		v[12] = clo;
		v[13] = chi;
		v[14] = V_SET1(BLAKE3_BLOCK_LEN);
		v[15] = V_SET1(f);
		simd_round(v, m, 0);
		simd_round(v, m, 1);
		simd_round(v, m, 2);
		simd_round(v, m, 3);
		simd_round(v, m, 4);
		simd_round(v, m, 5);
		simd_round(v, m, 6);
		for (i = 0; i < 8; i++)
			h[i] = V_XOR(v[i], v[i + 8]);
#endif
	}
#ifdef SIMD_STORE_CV
	SIMD_STORE_CV(h, out);
#else
	/* Back to one 32-byte value per input: once per input, a plain loop will do. */
	for (i = 0; i < 8; i++)
		V_STOREU(cvw[i], h[i]);
	for (l = 0; l < LANES; l++)
		for (i = 0; i < 8; i++)
			memcpy(out + 32 * l + 4 * i, &cvw[i][l], 4); /* x86: little-endian */
#endif
}

void KERNEL(const uint8_t *in, size_t n, size_t stride, size_t blocks, const uint32_t key[8],
	    uint64_t counter, bool inc, uint8_t flags, uint8_t fstart, uint8_t fend, uint8_t *out)
{
	while (n >= LANES) {
		simd_lanes(in, stride, blocks, key, counter, inc, flags, fstart, fend, out);
		in += LANES * stride;
		out += LANES * 32;
		if (inc)
			counter += LANES;
		n -= LANES;
	}
	if (n)
		FALLBACK(in, n, stride, blocks, key, counter, inc, flags, fstart, fend, out);
}
