/* SPDX-License-Identifier: MIT */
/*
 * Body shared by gcm.c's three widths (the way blake3_simd.h serves
 * BLAKE3's kernels): LANES 16-byte blocks a vector register. gcm.c defines
 * before each inclusion:
 *   LANES, V (vector type), T (the functions' target attribute), FN(name)
 *   (the width's name for a function), V_LOAD, V_STORE, V_LOADN(p, n) /
 *   V_STOREN(p, v, n) (the first n < LANES * 16 bytes; the rest of the
 *   register zero / memory past n untouched), V_XOR, V_ZERO,
 *   V_ENC / V_ENCLAST (one AES round of every lane), V_CLMUL(a, b, imm),
 *   V_SHUF (byte shuffle within each 128-bit lane), V_ADD32, V_BCAST
 *   (an __m128i in every lane), V_ZEXT (an __m128i in lane 0, zeros
 *   above), V_HXOR (the lanes xored into one __m128i).
 *
 * GHASH runs on blocks byte-reversed ("reflected": bit i of the 128-bit
 * integer is the coefficient of x^(127-i)), where the field's product
 * becomes a Montgomery product (gcm.c, gf_reduce); the key's powers
 * H^GCM_POWERS..H^1 are kept in that form so that a packet's blocks are
 * each multiplied by their power, summed unreduced and reduced once.
 */
#ifndef LANES
#error "define LANES and the vector macros before including gcm_simd.h"
#endif

/* One register's worth (or the last part of one): *src xored with the
 * keystream b into *dst, the three moved on; nothing when *len is 0. */
static T inline void FN(ctr_step)(const uint8_t **src, uint8_t **dst, size_t *len, V b)
{
	if (*len >= LANES * 16) {
		V_STORE(*dst, V_XOR(V_LOAD(*src), b));
		*src += LANES * 16;
		*dst += LANES * 16;
		*len -= LANES * 16;
	} else if (*len) {
		V_STOREN(*dst, V_XOR(V_LOADN(*src, *len), b), *len);
		*len = 0;
	}
}

/* Encrypts (or decrypts) len bytes from src to dst in counter mode from
 * the reflected counter block ctr (its counter in the low 32 bits). */
static T void FN(ctr)(const struct quic_gcm_key *k, __m128i ctr, const uint8_t *src, uint8_t *dst,
		      size_t len)
{
	const V bswap = V_LOAD(gcm_bswap);
	const V step = V_LOAD(gcm_step[LANES >> 1]);
	const unsigned int nr = k->rounds;
	/* the first and last round keys in every lane; the middle ones are
	 * broadcast from the key as each round reads them (a copy of all of
	 * them in every lane would be stored to the stack at each call) */
	const V k0 = V_BCAST(_mm_loadu_si128((const __m128i *)k->rk[0]));
	const V kl = V_BCAST(_mm_loadu_si128((const __m128i *)k->rk[nr]));
	V c = V_ADD32(V_BCAST(ctr), V_LOAD(gcm_lane));
	unsigned int r;

	/* Four registers of keystream a turn, side by side (a register at a
	 * time would wait out each one's rounds); the last turn may use
	 * fewer, the last one partial. Four named registers, not an array:
	 * an array indexed by a variable lives in memory, and each round
	 * then waited on a store and a reload (1,420 bytes took 95 ns where
	 * 1,536 took 70 on a Zen 4 host, docs/QUIC.md). */
	while (len) {
		V b0, b1, b2, b3;

		b0 = V_XOR(V_SHUF(c, bswap), k0);
		c = V_ADD32(c, step);
		b1 = V_XOR(V_SHUF(c, bswap), k0);
		c = V_ADD32(c, step);
		b2 = V_XOR(V_SHUF(c, bswap), k0);
		c = V_ADD32(c, step);
		b3 = V_XOR(V_SHUF(c, bswap), k0);
		c = V_ADD32(c, step);
		for (r = 1; r < nr; r++) {
			const V kr = V_BCAST(_mm_loadu_si128((const __m128i *)k->rk[r]));

			b0 = V_ENC(b0, kr);
			b1 = V_ENC(b1, kr);
			b2 = V_ENC(b2, kr);
			b3 = V_ENC(b3, kr);
		}
		FN(ctr_step)(&src, &dst, &len, V_ENCLAST(b0, kl));
		FN(ctr_step)(&src, &dst, &len, V_ENCLAST(b1, kl));
		FN(ctr_step)(&src, &dst, &len, V_ENCLAST(b2, kl));
		FN(ctr_step)(&src, &dst, &len, V_ENCLAST(b3, kl));
	}
}

/* a (lo, mid, hi) += the carry-less product of x and h, lane by lane. */
#define GCM_ACC(a0, a1, a2, x, h)                                                                  \
	do {                                                                                       \
		(a0) = V_XOR((a0), V_CLMUL(x, h, 0x00));                                           \
		(a1) = V_XOR((a1), V_XOR(V_CLMUL(x, h, 0x01), V_CLMUL(x, h, 0x10)));               \
		(a2) = V_XOR((a2), V_CLMUL(x, h, 0x11));                                           \
	} while (0)

/* Adds to acc (lo, mid, hi: the unreduced sum) the blocks of len bytes at
 * p, the last one padded with zeros, times H^e, H^(e-1), ... (e at least
 * their number, at most GCM_POWERS); y (reflected) is xored into the first.
 * The sums are kept in locals and written back once: updated through
 * acc, they were stored to memory at every register of blocks (p's loads
 * are of bytes, which may alias acc, so the compiler kept memory current). */
static T void FN(acc)(const struct quic_gcm_key *k, V *acc, const uint8_t *p, size_t len, size_t e,
		      __m128i y)
{
	const V bswap = V_LOAD(gcm_bswap);
	/* The powers are stored from H^GCM_POWERS down: from H^e on they are
	 * in the blocks' order. */
	const uint8_t *hp = k->hpow[GCM_POWERS - e];
	V x, h, a0 = acc[0], a1 = acc[1], a2 = acc[2];
	size_t j = 0;

	if (len >= LANES * 16) {
		x = V_XOR(V_SHUF(V_LOAD(p), bswap), V_ZEXT(y));
		GCM_ACC(a0, a1, a2, x, V_LOAD(hp));
		j = LANES;
		y = _mm_setzero_si128();
	}
	while ((j + LANES) * 16 <= len) {
		x = V_SHUF(V_LOAD(p + j * 16), bswap);
		h = V_LOAD(hp + j * 16);
		GCM_ACC(a0, a1, a2, x, h);
		j += LANES;
	}
	if (j * 16 < len) {
		/* The last blocks, padded; lanes past the last block meet the
		 * zero powers after H^1 (or padding) and add nothing. */
		x = V_XOR(V_SHUF(V_LOADN(p + j * 16, len - j * 16), bswap), V_ZEXT(y));
		h = V_LOAD(hp + j * 16);
		GCM_ACC(a0, a1, a2, x, h);
	}
	acc[0] = a0;
	acc[1] = a1;
	acc[2] = a2;
}

/* GHASH state y after len bytes at p (last block padded), GCM_POWERS
 * blocks a reduction. */
static T __m128i FN(stream)(const struct quic_gcm_key *k, __m128i y, const uint8_t *p, size_t len)
{
	while (len) {
		size_t nb = (len + 15) / 16, take;
		V acc[3] = {V_ZERO(), V_ZERO(), V_ZERO()};

		if (nb > GCM_POWERS)
			nb = GCM_POWERS;
		take = nb * 16 < len ? nb * 16 : len;
		FN(acc)(k, acc, p, take, nb, y);
		y = gf_reduce(V_HXOR(acc[0]), V_HXOR(acc[1]), V_HXOR(acc[2]));
		p += take;
		len -= take;
	}
	return y;
}

/* GHASH of aad and the ciphertext c (reflected). A packet of up to
 * GCM_POWERS blocks in all (AAD, ciphertext, lengths) is one sum, each
 * block times its power, and one reduction: no block waits for another's
 * product. Longer ones go GCM_POWERS blocks at a time. */
static T __m128i FN(ghash)(const struct quic_gcm_key *k, const uint8_t *aad, size_t aadlen,
			   const uint8_t *c, size_t len)
{
	size_t na = (aadlen + 15) / 16, nc = (len + 15) / 16;
	__m128i lens = gcm_lens(aadlen, len), y;

	if (na + nc + 1 <= GCM_POWERS) {
		V acc[3] = {V_ZERO(), V_ZERO(), V_ZERO()};
		__m128i h1 = _mm_loadu_si128((const __m128i *)k->hpow[GCM_POWERS - 1]), p[3];

		if (aadlen)
			FN(acc)(k, acc, aad, aadlen, na + nc + 1, _mm_setzero_si128());
		if (len)
			FN(acc)(k, acc, c, len, nc + 1, _mm_setzero_si128());
		gf_prod(lens, h1, p);
		return gf_reduce(_mm_xor_si128(V_HXOR(acc[0]), p[0]),
				 _mm_xor_si128(V_HXOR(acc[1]), p[1]),
				 _mm_xor_si128(V_HXOR(acc[2]), p[2]));
	}
	y = FN(stream)(k, _mm_setzero_si128(), aad, aadlen);
	y = FN(stream)(k, y, c, len);
	return gf_mul(_mm_xor_si128(y, lens),
		      _mm_loadu_si128((const __m128i *)k->hpow[GCM_POWERS - 1]));
}

static T void FN(seal)(const struct quic_gcm_key *k, uint8_t *dst, const uint8_t *nonce,
		       const uint8_t *aad, size_t aadlen, const uint8_t *src, size_t len)
{
	__m128i j0 = gcm_j0(nonce), ej0 = gcm_ej0(k, j0), y;

	FN(ctr)(k, _mm_add_epi32(j0, _mm_set_epi32(0, 0, 0, 1)), src, dst, len);
	y = FN(ghash)(k, aad, aadlen, dst, len);
	_mm_storeu_si128((__m128i *)(dst + len), gcm_finish(y, ej0));
}

static T int FN(open)(const struct quic_gcm_key *k, uint8_t *dst, const uint8_t *nonce,
		      const uint8_t *aad, size_t aadlen, const uint8_t *src, size_t srclen)
{
	__m128i j0 = gcm_j0(nonce), ej0 = gcm_ej0(k, j0), y, diff;
	size_t len;

	if (srclen < QUIC_GCM_TAG_LEN)
		return -EBADMSG;
	len = srclen - QUIC_GCM_TAG_LEN;
	y = FN(ghash)(k, aad, aadlen, src, len);
	diff = _mm_xor_si128(gcm_finish(y, ej0), _mm_loadu_si128((const __m128i *)(src + len)));
	if (!_mm_testz_si128(diff, diff))
		return -EBADMSG;
	FN(ctr)(k, _mm_add_epi32(j0, _mm_set_epi32(0, 0, 0, 1)), src, dst, len);
	return 0;
}

#undef GCM_ACC
#undef LANES
#undef V
#undef T
#undef FN
#undef V_LOAD
#undef V_STORE
#undef V_LOADN
#undef V_STOREN
#undef V_XOR
#undef V_ZERO
#undef V_ENC
#undef V_ENCLAST
#undef V_CLMUL
#undef V_SHUF
#undef V_ADD32
#undef V_BCAST
#undef V_ZEXT
#undef V_HXOR
