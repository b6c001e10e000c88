/* SPDX-License-Identifier: MIT */
/*
 * AES-GCM on AES-NI, or VAES on 256- and 512-bit registers (gcm.h). One
 * body (gcm_simd.h) is compiled at three widths, each function carrying
 * its width's target attribute, and quic_gcm_key_new picks the width a key
 * runs at; the key schedule, H's powers, the counter block J0 and the
 * tag are 128-bit work shared by all three.
 */
#include <cpuid.h>
#include <errno.h>
#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "quic/gcm.h"

/*
 * Powers of H kept per key: a 1,472-byte datagram's packet (up to 91
 * blocks of payload, 2 of header, 1 of lengths) is hashed with one
 * reduction. 96 powers are 1.5 KiB a key.
 */
#define GCM_POWERS 96

struct quic_gcm_key {
	uint8_t rk[15][16]; /* round keys */
	/* H^GCM_POWERS .. H^1 (reflected, times y: see gf_reduce), then
	 * zeros for the lanes of a last vector past H^1 (gcm_simd.h's acc). */
	uint8_t hpow[GCM_POWERS + 3][16];
	unsigned int rounds;
	enum quic_gcm_impl impl;
};

/* Byte reversal of each 16-byte lane; counter offsets of the lanes; the
 * step from one register's counters to the next (1, 2 or 4 lanes). */
static const uint8_t gcm_bswap[64] __attribute__((aligned(64))) = {
    15, 14, 13, 12, 11, 10, 9,	8,  7,	6,  5,	4,  3,	2,  1,	0,  15, 14, 13, 12, 11, 10,
    9,	8,  7,	6,  5,	4,  3,	2,  1,	0,  15, 14, 13, 12, 11, 10, 9,	8,  7,	6,  5,	4,
    3,	2,  1,	0,  15, 14, 13, 12, 11, 10, 9,	8,  7,	6,  5,	4,  3,	2,  1,	0,
};
static const uint32_t gcm_lane[16] __attribute__((aligned(64))) = {
    0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0,
};
static const uint32_t gcm_step[3][16] __attribute__((aligned(64))) = {
    {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0},
    {2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0},
    {4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0},
};

#define T_AESNI __attribute__((target("aes,pclmul,sse4.1")))
#define T_VAES256 __attribute__((target("aes,pclmul,sse4.1,avx2,vaes,vpclmulqdq")))
#define T_VAES512                                                                                  \
	__attribute__((target("aes,pclmul,sse4.1,avx2,avx512f,avx512bw,avx512vl,vaes,"             \
			      "vpclmulqdq")))

/* ------------------------------------------------------- 128-bit pieces */

/*
 * The Montgomery reduction of a reflected product. With blocks reflected,
 * a field element a(x) is the 128-bit integer A(y) = y^127 a(1/y), and
 * the carry-less product of A and B is y^127 (ab mod P) times y^127
 * modulo P'(y) = y^128 + y^127 + y^126 + y^121 + 1 (P reversed). Keeping
 * H as H' = A_H * y mod P' makes the product with H' equal the wanted
 * A_(XH) times y^128, which two folds by P' take off (each folds 64 low
 * bits c as c * P': c + c * (y^63 + y^62 + y^57) * y^64 + c * y^128, the
 * middle term one carry-less multiplication by 0xc2 << 56). lo, mid, hi:
 * the 256-bit product as its three partial products.
 */
static T_AESNI inline __m128i gf_reduce(__m128i lo, __m128i mid, __m128i hi)
{
	const __m128i poly = _mm_set_epi64x(0, (long long)0xc200000000000000ULL);
	__m128i t, m;

	lo = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
	hi = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));
	t = _mm_clmulepi64_si128(lo, poly, 0x00);
	m = _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t);
	t = _mm_clmulepi64_si128(m, poly, 0x00);
	return _mm_xor_si128(_mm_xor_si128(hi, _mm_shuffle_epi32(m, 0x4e)), t);
}

/* The unreduced product of a and b: p[0] lo, p[1] mid, p[2] hi. */
static T_AESNI inline void gf_prod(__m128i a, __m128i b, __m128i *p)
{
	p[0] = _mm_clmulepi64_si128(a, b, 0x00);
	p[1] = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01), _mm_clmulepi64_si128(a, b, 0x10));
	p[2] = _mm_clmulepi64_si128(a, b, 0x11);
}

static T_AESNI inline __m128i gf_mul(__m128i a, __m128i b)
{
	__m128i p[3];

	gf_prod(a, b, p);
	return gf_reduce(p[0], p[1], p[2]);
}

static T_AESNI inline __m128i aes_block(const struct quic_gcm_key *k, __m128i b)
{
	unsigned int r;

	b = _mm_xor_si128(b, _mm_loadu_si128((const __m128i *)k->rk[0]));
	for (r = 1; r < k->rounds; r++)
		b = _mm_aesenc_si128(b, _mm_loadu_si128((const __m128i *)k->rk[r]));
	return _mm_aesenclast_si128(b, _mm_loadu_si128((const __m128i *)k->rk[k->rounds]));
}

/* J0 = nonce || 0x00000001, reflected (the counter in the low 32 bits). */
static T_AESNI inline __m128i gcm_j0(const uint8_t *nonce)
{
	uint8_t b[16];

	memcpy(b, nonce, QUIC_GCM_NONCE_LEN);
	b[12] = b[13] = b[14] = 0;
	b[15] = 1;
	return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)b),
				_mm_load_si128((const __m128i *)gcm_bswap));
}

/* GHASH's last block, the bit lengths of AAD and ciphertext, reflected. */
static T_AESNI inline __m128i gcm_lens(size_t aadlen, size_t len)
{
	return _mm_set_epi64x((long long)((uint64_t)aadlen * 8), (long long)((uint64_t)len * 8));
}

/* E(K, J0), the tag's mask: computed first, so that its rounds run in
 * the shadow of the counter mode's. */
static T_AESNI inline __m128i gcm_ej0(const struct quic_gcm_key *k, __m128i j0)
{
	return aes_block(k, _mm_shuffle_epi8(j0, _mm_load_si128((const __m128i *)gcm_bswap)));
}

/* The tag from the GHASH of AAD, ciphertext and lengths. */
static T_AESNI inline __m128i gcm_finish(__m128i y, __m128i ej0)
{
	return _mm_xor_si128(_mm_shuffle_epi8(y, _mm_load_si128((const __m128i *)gcm_bswap)), ej0);
}

/* Partial registers for the 128- and 256-bit widths, through a buffer
 * (the 512-bit one has byte masks). */
static inline __m128i load_n128(const uint8_t *p, size_t n)
{
	uint8_t b[16] = {0};

	memcpy(b, p, n);
	return _mm_loadu_si128((const __m128i *)b);
}

static inline void store_n128(uint8_t *p, __m128i v, size_t n)
{
	uint8_t b[16];

	_mm_storeu_si128((__m128i *)b, v);
	memcpy(p, b, n);
}

static T_VAES256 inline __m256i load_n256(const uint8_t *p, size_t n)
{
	uint8_t b[32] = {0};

	memcpy(b, p, n);
	return _mm256_loadu_si256((const __m256i *)b);
}

static T_VAES256 inline void store_n256(uint8_t *p, __m256i v, size_t n)
{
	uint8_t b[32];

	_mm256_storeu_si256((__m256i *)b, v);
	memcpy(p, b, n);
}

#define KEY128(i, rcon)                                                                            \
	do {                                                                                       \
		__m128i g_ = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[(i)-1], rcon), 0xff);  \
		__m128i a_ = rk[(i)-1];                                                            \
		a_ = _mm_xor_si128(a_, _mm_slli_si128(a_, 4));                                     \
		a_ = _mm_xor_si128(a_, _mm_slli_si128(a_, 4));                                     \
		a_ = _mm_xor_si128(a_, _mm_slli_si128(a_, 4));                                     \
		rk[i] = _mm_xor_si128(a_, g_);                                                     \
	} while (0)

/* AES-256's schedule: even round keys from the one two back and the
 * RotWord/SubWord of the one before (rcon), odd ones with SubWord only. */
#define KEY256(i, rcon, sel)                                                                       \
	do {                                                                                       \
		__m128i g_ = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[(i)-1], rcon), sel);   \
		__m128i a_ = rk[(i)-2];                                                            \
		a_ = _mm_xor_si128(a_, _mm_slli_si128(a_, 4));                                     \
		a_ = _mm_xor_si128(a_, _mm_slli_si128(a_, 4));                                     \
		a_ = _mm_xor_si128(a_, _mm_slli_si128(a_, 4));                                     \
		rk[i] = _mm_xor_si128(a_, g_);                                                     \
	} while (0)

static T_AESNI void key_expand(struct quic_gcm_key *k, const uint8_t *key, size_t keylen)
{
	const __m128i bswap = _mm_load_si128((const __m128i *)gcm_bswap);
	const __m128i poly = _mm_set_epi64x((long long)0xc200000000000000ULL, 1);
	__m128i rk[15], h, carry;
	unsigned int i;

	rk[0] = _mm_loadu_si128((const __m128i *)key);
	if (keylen == 16) {
		KEY128(1, 0x01);
		KEY128(2, 0x02);
		KEY128(3, 0x04);
		KEY128(4, 0x08);
		KEY128(5, 0x10);
		KEY128(6, 0x20);
		KEY128(7, 0x40);
		KEY128(8, 0x80);
		KEY128(9, 0x1b);
		KEY128(10, 0x36);
		k->rounds = 10;
	} else {
		rk[1] = _mm_loadu_si128((const __m128i *)(key + 16));
		KEY256(2, 0x01, 0xff);
		KEY256(3, 0x00, 0xaa);
		KEY256(4, 0x02, 0xff);
		KEY256(5, 0x00, 0xaa);
		KEY256(6, 0x04, 0xff);
		KEY256(7, 0x00, 0xaa);
		KEY256(8, 0x08, 0xff);
		KEY256(9, 0x00, 0xaa);
		KEY256(10, 0x10, 0xff);
		KEY256(11, 0x00, 0xaa);
		KEY256(12, 0x20, 0xff);
		KEY256(13, 0x00, 0xaa);
		KEY256(14, 0x40, 0xff);
		k->rounds = 14;
	}
	for (i = 0; i <= k->rounds; i++)
		_mm_storeu_si128((__m128i *)k->rk[i], rk[i]);

	/* H = E(K, 0), reflected, then times y modulo P' (a shift left by
	 * one; the bit shifted out folds back as P' without y^128). */
	h = _mm_shuffle_epi8(aes_block(k, _mm_setzero_si128()), bswap);
	carry = _mm_srai_epi32(_mm_shuffle_epi32(h, 0xff), 31); /* bit 127, spread */
	h = _mm_or_si128(_mm_slli_epi64(h, 1), _mm_srli_epi64(_mm_slli_si128(h, 8), 63));
	h = _mm_xor_si128(h, _mm_and_si128(carry, poly));
	_mm_storeu_si128((__m128i *)k->hpow[GCM_POWERS - 1], h);
	for (i = 2; i <= GCM_POWERS; i++)
		_mm_storeu_si128(
		    (__m128i *)k->hpow[GCM_POWERS - i],
		    gf_mul(_mm_loadu_si128((const __m128i *)k->hpow[GCM_POWERS + 1 - i]), h));
	memset(k->hpow[GCM_POWERS], 0, 3 * 16);
}

/* ------------------------------------------------------------ the widths */

#define LANES 1
#define V __m128i
#define T T_AESNI
#define FN(name) name##_aesni
#define V_LOAD(p) _mm_loadu_si128((const __m128i *)(const void *)(p))
#define V_STORE(p, v) _mm_storeu_si128((__m128i *)(void *)(p), v)
#define V_LOADN load_n128
#define V_STOREN store_n128
#define V_XOR _mm_xor_si128
#define V_ZERO _mm_setzero_si128
#define V_ENC _mm_aesenc_si128
#define V_ENCLAST _mm_aesenclast_si128
#define V_CLMUL _mm_clmulepi64_si128
#define V_SHUF _mm_shuffle_epi8
#define V_ADD32 _mm_add_epi32
#define V_BCAST(x) (x)
#define V_ZEXT(x) (x)
#define V_HXOR(v) (v)
#include "quic/gcm_simd.h"

#define LANES 2
#define V __m256i
#define T T_VAES256
#define FN(name) name##_vaes256
#define V_LOAD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define V_STORE(p, v) _mm256_storeu_si256((__m256i *)(void *)(p), v)
#define V_LOADN load_n256
#define V_STOREN store_n256
#define V_XOR _mm256_xor_si256
#define V_ZERO _mm256_setzero_si256
#define V_ENC _mm256_aesenc_epi128
#define V_ENCLAST _mm256_aesenclast_epi128
#define V_CLMUL _mm256_clmulepi64_epi128
#define V_SHUF _mm256_shuffle_epi8
#define V_ADD32 _mm256_add_epi32
#define V_BCAST _mm256_broadcastsi128_si256
#define V_ZEXT _mm256_zextsi128_si256
#define V_HXOR(v) _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1))
#include "quic/gcm_simd.h"

static T_VAES512 inline __m128i hxor512(__m512i v)
{
	__m256i a = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));

	return _mm_xor_si128(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
}

/* The first n bytes of a 512-bit register (n < 64). */
static inline __mmask64 mask_n(size_t n)
{
	return (__mmask64)((1ULL << n) - 1);
}

#define LANES 4
#define V __m512i
#define T T_VAES512
#define FN(name) name##_vaes512
#define V_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define V_STORE(p, v) _mm512_storeu_si512((void *)(p), v)
#define V_LOADN(p, n) _mm512_maskz_loadu_epi8(mask_n(n), p)
#define V_STOREN(p, v, n) _mm512_mask_storeu_epi8(p, mask_n(n), v)
#define V_XOR _mm512_xor_si512
#define V_ZERO _mm512_setzero_si512
#define V_ENC _mm512_aesenc_epi128
#define V_ENCLAST _mm512_aesenclast_epi128
#define V_CLMUL _mm512_clmulepi64_epi128
#define V_SHUF _mm512_shuffle_epi8
#define V_ADD32 _mm512_add_epi32
#define V_BCAST _mm512_broadcast_i32x4
#define V_ZEXT _mm512_zextsi128_si512
#define V_HXOR hxor512
#include "quic/gcm_simd.h"

/* ------------------------------------------------------------------ API */

/* VAES and VPCLMULQDQ (CPUID leaf 7, ECX bits 9 and 10): asked of CPUID,
 * since clang's __builtin_cpu_supports knows neither; the registers'
 * OS support is __builtin_cpu_supports' avx2 / avx512f answer. */
static int has_vaes(void)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return 0;
	return (c & (1u << 9)) && (c & (1u << 10));
}

static enum quic_gcm_impl impl_probe(void)
{
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("aes") || !__builtin_cpu_supports("pclmul") ||
	    !__builtin_cpu_supports("sse4.1"))
		return QUIC_GCM_NONE;
	if (!__builtin_cpu_supports("avx2") || !has_vaes())
		return QUIC_GCM_AESNI;
	if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
	    !__builtin_cpu_supports("avx512vl"))
		return QUIC_GCM_VAES256;
	return QUIC_GCM_VAES512;
}

/*
 * Asked once per process. CPUID is an instruction a hypervisor always
 * traps: a __get_cpuid_count (two CPUIDs: the highest leaf, then leaf 7)
 * took 12.8-13.0 us on the AMD EPYC guest of stops 81-84 (a loop of
 * 10,000, 2026-12-01), and every key made asked (quic_gcm_key_new), two
 * per connection's 1-RTT keys: ~26 us of a server handshake that costs
 * ~400-500 us there (docs/QUIC.md "AES-GCM on wide vectors"). Atomic
 * (relaxed): two workers may ask first at once and store the same answer.
 */
enum quic_gcm_impl quic_gcm_impl_best(void)
{
	static _Atomic int best = -1;
	int v = atomic_load_explicit(&best, memory_order_relaxed);

	if (v < 0) {
		v = (int)impl_probe();
		atomic_store_explicit(&best, v, memory_order_relaxed);
	}
	return (enum quic_gcm_impl)v;
}

const char *quic_gcm_impl_name(enum quic_gcm_impl impl)
{
	switch (impl) {
	case QUIC_GCM_AESNI:
		return "aesni";
	case QUIC_GCM_VAES256:
		return "vaes256";
	case QUIC_GCM_VAES512:
		return "vaes512";
	default:
		return "none";
	}
}

int quic_gcm_key_new(struct quic_gcm_key **out, const uint8_t *key, size_t keylen,
		     enum quic_gcm_impl impl)
{
	struct quic_gcm_key *k;

	*out = NULL;
	if (!key || (keylen != 16 && keylen != 32) || impl < QUIC_GCM_AESNI ||
	    impl > QUIC_GCM_VAES512)
		return -EINVAL;
	if (impl > quic_gcm_impl_best())
		return -EOPNOTSUPP;
	if (posix_memalign((void **)&k, 64, sizeof(*k)))
		return -ENOMEM;
	key_expand(k, key, keylen);
	k->impl = impl;
	*out = k;
	return 0;
}

void quic_gcm_key_free(struct quic_gcm_key *k)
{
	if (!k)
		return;
	explicit_bzero(k, sizeof(*k));
	free(k);
}

enum quic_gcm_impl quic_gcm_key_impl(const struct quic_gcm_key *k)
{
	return k->impl;
}

void quic_gcm_seal(const struct quic_gcm_key *k, uint8_t *dst,
		   const uint8_t nonce[QUIC_GCM_NONCE_LEN], const uint8_t *aad, size_t aadlen,
		   const uint8_t *src, size_t len)
{
	switch (k->impl) {
	case QUIC_GCM_VAES512:
		seal_vaes512(k, dst, nonce, aad, aadlen, src, len);
		break;
	case QUIC_GCM_VAES256:
		seal_vaes256(k, dst, nonce, aad, aadlen, src, len);
		break;
	default:
		seal_aesni(k, dst, nonce, aad, aadlen, src, len);
	}
}

int quic_gcm_open(const struct quic_gcm_key *k, uint8_t *dst,
		  const uint8_t nonce[QUIC_GCM_NONCE_LEN], const uint8_t *aad, size_t aadlen,
		  const uint8_t *src, size_t srclen)
{
	switch (k->impl) {
	case QUIC_GCM_VAES512:
		return open_vaes512(k, dst, nonce, aad, aadlen, src, srclen);
	case QUIC_GCM_VAES256:
		return open_vaes256(k, dst, nonce, aad, aadlen, src, srclen);
	default:
		return open_aesni(k, dst, nonce, aad, aadlen, src, srclen);
	}
}
