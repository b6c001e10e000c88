// SPDX-License-Identifier: MIT
/*
 * BLAKE3 compression function in portable C, and the one-input-at-a-time
 * hash_many every SIMD kernel falls back to for its last few inputs.
 */
#include <string.h>

#include "blake3/blake3_impl.h"

/* The initialisation vector is SHA-256's. */
const uint32_t blake3_iv[8] = {
	0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
	0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
};

static inline uint32_t rotr32(uint32_t x, unsigned int n)
{
	return (x >> n) | (x << (32 - n));
}

static inline uint32_t load32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void store32(uint8_t *p, uint32_t x)
{
	p[0] = (uint8_t)x;
	p[1] = (uint8_t)(x >> 8);
	p[2] = (uint8_t)(x >> 16);
	p[3] = (uint8_t)(x >> 24);
}

#define G(a, b, c, d, mx, my)                  \
	do {                                   \
		v[a] = v[a] + v[b] + (mx);     \
		v[d] = rotr32(v[d] ^ v[a], 16); \
		v[c] = v[c] + v[d];            \
		v[b] = rotr32(v[b] ^ v[c], 12); \
		v[a] = v[a] + v[b] + (my);     \
		v[d] = rotr32(v[d] ^ v[a], 8);  \
		v[c] = v[c] + v[d];            \
		v[b] = rotr32(v[b] ^ v[c], 7);  \
	} while (0)

static inline __attribute__((always_inline)) void round_fn(uint32_t v[16], const uint32_t m[16],
							     const uint8_t *s)
{
	/* columns */
	G(0, 4, 8, 12, m[s[0]], m[s[1]]);
	G(1, 5, 9, 13, m[s[2]], m[s[3]]);
	G(2, 6, 10, 14, m[s[4]], m[s[5]]);
	G(3, 7, 11, 15, m[s[6]], m[s[7]]);
	/* diagonals */
	G(0, 5, 10, 15, m[s[8]], m[s[9]]);
	G(1, 6, 11, 12, m[s[10]], m[s[11]]);
	G(2, 7, 8, 13, m[s[12]], m[s[13]]);
	G(3, 4, 9, 14, m[s[14]], m[s[15]]);
}

void blake3_compress(const uint32_t cv[8], const uint8_t block[BLAKE3_BLOCK_LEN],
		     uint8_t block_len, uint64_t counter, uint8_t flags, uint32_t out[16])
{
	uint32_t m[16], v[16];
	int i;

	for (i = 0; i < 16; i++)
		m[i] = load32(block + 4 * i);
	for (i = 0; i < 8; i++)
		v[i] = cv[i];
	v[8] = blake3_iv[0];
	v[9] = blake3_iv[1];
	v[10] = blake3_iv[2];
	v[11] = blake3_iv[3];
	v[12] = (uint32_t)counter;
	v[13] = (uint32_t)(counter >> 32);
	v[14] = block_len;
	v[15] = flags;
	round_fn(v, m, blake3_sched[0]);
	round_fn(v, m, blake3_sched[1]);
	round_fn(v, m, blake3_sched[2]);
	round_fn(v, m, blake3_sched[3]);
	round_fn(v, m, blake3_sched[4]);
	round_fn(v, m, blake3_sched[5]);
	round_fn(v, m, blake3_sched[6]);
	for (i = 0; i < 8; i++) {
		out[i] = v[i] ^ v[i + 8];
		out[i + 8] = v[i + 8] ^ cv[i];
	}
}

void blake3_hash_many_portable(const uint8_t *in, size_t n, size_t stride, size_t blocks,
			       const uint32_t key[8], uint64_t counter, bool inc, uint8_t flags,
			       uint8_t fstart, uint8_t fend, uint8_t *out)
{
	uint32_t cv[8], o[16];
	size_t i, b;
	int w;

	for (i = 0; i < n; i++) {
		const uint8_t *p = in + i * stride;

		memcpy(cv, key, sizeof(cv));
		for (b = 0; b < blocks; b++) {
			uint8_t f = flags;

			if (b == 0)
				f |= fstart;
			if (b + 1 == blocks)
				f |= fend;
			blake3_compress(cv, p + b * BLAKE3_BLOCK_LEN, BLAKE3_BLOCK_LEN,
					counter + (inc ? i : 0), f, o);
			memcpy(cv, o, sizeof(cv));
		}
		for (w = 0; w < 8; w++)
			store32(out + 32 * i + 4 * w, cv[w]);
	}
}
