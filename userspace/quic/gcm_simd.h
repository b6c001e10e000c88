/* SPDX-License-Identifier: MIT */
/*
 * Body shared by gcm.c's three widths (the way blake3_simd.h serves
 * BLAKE3's kernels): LANES 16-byte blocks a vector register. gcm.c defines
 * before each inclusion:
 *   LANES, V (vector type), T (the functions' target attribute), FN(name)
 *   (the width's name for a function), V_LOAD, V_STORE, V_XOR, V_ZERO,
 *   V_ENC / V_ENCLAST (one AES round of every lane), V_CLMUL(a, b, imm),
 *   V_SHUF (byte shuffle within each 128-bit lane), V_ADD32, V_BCAST
 *   (an __m128i in every lane), V_ZEXT (an __m128i in lane 0, zeros
 *   above), V_HXOR (the lanes xored into one __m128i).
 *
 * GHASH runs on blocks byte-reversed ("reflected": bit i of the 128-bit
 * integer is the coefficient of x^(127-i)), where the field's product
 * becomes a Montgomery product (gcm.c, gf_reduce); the key's powers
 * H^16..H^1 are kept in that form so that up to 16 blocks are multiplied
 * by their powers, summed unreduced and reduced once.
 */
#ifndef LANES
#error "define LANES and the vector macros before including gcm_simd.h"
#endif

/* Encrypts (or decrypts) len bytes from src to dst in counter mode from
 * the reflected counter block ctr (its counter in the low 32 bits). */
static T void FN(ctr)(const struct gcm_key *k, __m128i ctr, const uint8_t *src, uint8_t *dst,
		      size_t len)
{
	const V bswap = V_LOAD(gcm_bswap);
	const V step = V_LOAD(gcm_step[LANES >> 1]);
	const V k0 = V_LOAD(k->rk[0]), kl = V_LOAD(k->rk[k->rounds]);
	V c = V_ADD32(V_BCAST(ctr), V_LOAD(gcm_lane));
	unsigned int r;

	while (len >= 4 * LANES * 16) {
		V b0, b1, b2, b3;

		b0 = V_XOR(V_SHUF(c, bswap), k0);
		c = V_ADD32(c, step);
		b1 = V_XOR(V_SHUF(c, bswap), k0);
		c = V_ADD32(c, step);
		b2 = V_XOR(V_SHUF(c, bswap), k0);
		c = V_ADD32(c, step);
		b3 = V_XOR(V_SHUF(c, bswap), k0);
		c = V_ADD32(c, step);
		for (r = 1; r < k->rounds; r++) {
			const V kr = V_LOAD(k->rk[r]);

			b0 = V_ENC(b0, kr);
			b1 = V_ENC(b1, kr);
			b2 = V_ENC(b2, kr);
			b3 = V_ENC(b3, kr);
		}
		V_STORE(dst, V_XOR(V_LOAD(src), V_ENCLAST(b0, kl)));
		V_STORE(dst + LANES * 16, V_XOR(V_LOAD(src + LANES * 16), V_ENCLAST(b1, kl)));
		V_STORE(dst + 2 * LANES * 16, V_XOR(V_LOAD(src + 2 * LANES * 16), V_ENCLAST(b2, kl)));
		V_STORE(dst + 3 * LANES * 16, V_XOR(V_LOAD(src + 3 * LANES * 16), V_ENCLAST(b3, kl)));
		src += 4 * LANES * 16;
		dst += 4 * LANES * 16;
		len -= 4 * LANES * 16;
	}
	while (len) {
		V b = V_XOR(V_SHUF(c, bswap), k0);

		c = V_ADD32(c, step);
		for (r = 1; r < k->rounds; r++)
			b = V_ENC(b, V_LOAD(k->rk[r]));
		b = V_ENCLAST(b, kl);
		if (len >= LANES * 16) {
			V_STORE(dst, V_XOR(V_LOAD(src), b));
			src += LANES * 16;
			dst += LANES * 16;
			len -= LANES * 16;
		} else {
			uint8_t buf[LANES * 16] __attribute__((aligned(64)));

			memcpy(buf, src, len);
			V_STORE(buf, V_XOR(V_LOAD(buf), b));
			memcpy(dst, buf, len);
			len = 0;
		}
	}
}

/* GHASH state y (reflected) after len bytes at p, the last block padded
 * with zeros. */
static T __m128i FN(ghash)(const struct gcm_key *k, __m128i y, const uint8_t *p, size_t len)
{
	const V bswap = V_LOAD(gcm_bswap);

	while (len) {
		size_t nb = (len + 15) / 16, take, j = 0;
		const uint8_t *hp;
		V lo = V_ZERO(), mid = V_ZERO(), hi = V_ZERO(), x, h;
		int first = 1;

		if (nb > 16)
			nb = 16;
		take = nb * 16 < len ? nb * 16 : len;
		/* Block j of nb is multiplied by H^(nb-j): the powers are
		 * stored from H^16 down, so from H^nb on they are in order. */
		hp = k->hpow[16 - nb];
		while ((j + LANES) * 16 <= take) {
			x = V_SHUF(V_LOAD(p + j * 16), bswap);
			if (first) {
				x = V_XOR(x, V_ZEXT(y));
				first = 0;
			}
			h = V_LOAD(hp + j * 16);
			lo = V_XOR(lo, V_CLMUL(x, h, 0x00));
			hi = V_XOR(hi, V_CLMUL(x, h, 0x11));
			mid = V_XOR(mid, V_XOR(V_CLMUL(x, h, 0x01), V_CLMUL(x, h, 0x10)));
			j += LANES;
		}
		if (j * 16 < take) {
			/* The group's last blocks, padded; the lanes past nb
			 * meet the zero powers after H^1 and add nothing. */
			uint8_t buf[LANES * 16] __attribute__((aligned(64))) = { 0 };

			memcpy(buf, p + j * 16, take - j * 16);
			x = V_SHUF(V_LOAD(buf), bswap);
			if (first)
				x = V_XOR(x, V_ZEXT(y));
			h = V_LOAD(hp + j * 16);
			lo = V_XOR(lo, V_CLMUL(x, h, 0x00));
			hi = V_XOR(hi, V_CLMUL(x, h, 0x11));
			mid = V_XOR(mid, V_XOR(V_CLMUL(x, h, 0x01), V_CLMUL(x, h, 0x10)));
		}
		y = gf_reduce(V_HXOR(lo), V_HXOR(mid), V_HXOR(hi));
		p += take;
		len -= take;
	}
	return y;
}

static T void FN(seal)(const struct gcm_key *k, uint8_t *dst, const uint8_t *nonce,
		       const uint8_t *aad, size_t aadlen, const uint8_t *src, size_t len)
{
	__m128i j0 = gcm_j0(nonce), y;

	FN(ctr)(k, _mm_add_epi32(j0, _mm_set_epi32(0, 0, 0, 1)), src, dst, len);
	y = FN(ghash)(k, _mm_setzero_si128(), aad, aadlen);
	y = FN(ghash)(k, y, dst, len);
	_mm_storeu_si128((__m128i *)(dst + len), gcm_finish(k, y, j0, aadlen, len));
}

static T int FN(open)(const struct gcm_key *k, uint8_t *dst, const uint8_t *nonce,
		      const uint8_t *aad, size_t aadlen, const uint8_t *src, size_t srclen)
{
	__m128i j0 = gcm_j0(nonce), y, diff;
	size_t len;

	if (srclen < GCM_TAG_LEN)
		return -EBADMSG;
	len = srclen - GCM_TAG_LEN;
	y = FN(ghash)(k, _mm_setzero_si128(), aad, aadlen);
	y = FN(ghash)(k, y, src, len);
	diff = _mm_xor_si128(gcm_finish(k, y, j0, aadlen, len),
			     _mm_loadu_si128((const __m128i *)(src + len)));
	if (!_mm_testz_si128(diff, diff))
		return -EBADMSG;
	FN(ctr)(k, _mm_add_epi32(j0, _mm_set_epi32(0, 0, 0, 1)), src, dst, len);
	return 0;
}

#undef LANES
#undef V
#undef T
#undef FN
#undef V_LOAD
#undef V_STORE
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
