// SPDX-License-Identifier: MIT
/*
 * AES-GCM (userspace/quic/gcm.h) at every width this CPU runs: the
 * published test cases of the GCM specification (McGrew and Viega, 96-bit
 * IVs, AES-128 and AES-256), then GnuTLS (what ngtcp2's backend and every
 * peer we test against use) as the judge on every length from 0 to 600
 * bytes and QUIC-sized packets, AAD of 0 to 70 bytes, in place and not;
 * a flipped bit anywhere (AAD, ciphertext, tag, nonce) is refused with
 * nothing written; a key update's new key reads only its own packets.
 * Widths this CPU lacks are skipped with a message.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "quic/gcm.h"

static void unhex(const char *s, uint8_t *out, size_t *len)
{
	size_t n = 0;
	unsigned int b;

	while (s[0] && s[1] && sscanf(s, "%2x", &b) == 1) {
		out[n++] = (uint8_t)b;
		s += 2;
	}
	*len = n;
}

struct gcm_case {
	const char *key, *iv, *aad, *pt, *ct, *tag;
};

/* The GCM specification's test cases 1-4 (AES-128) and 13-16 (AES-256). */
static const struct gcm_case cases[] = {
    {"00000000000000000000000000000000", "000000000000000000000000", "", "", "",
     "58e2fccefa7e3061367f1d57a4e7455a"},
    {"00000000000000000000000000000000", "000000000000000000000000", "",
     "00000000000000000000000000000000", "0388dace60b6a392f328c2b971b2fe78",
     "ab6e47d42cec13bdf53a67b21257bddf"},
    {"feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", "",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b"
     "525b16aedf5aa0de657ba637b391aafd255",
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84a"
     "a051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"},
    {"feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b"
     "525b16aedf5aa0de657ba637b39",
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84a"
     "a051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "00000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b"
     "525b16aedf5aa0de657ba637b391aafd255",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828"
     "838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b"
     "525b16aedf5aa0de657ba637b39",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828"
     "838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

/* Widths this CPU runs, from AES-NI up; 0 when it has none. */
static int widths(enum quic_gcm_impl *w)
{
	enum quic_gcm_impl best = quic_gcm_impl_best(), i;
	int n = 0;

	for (i = QUIC_GCM_AESNI; i <= QUIC_GCM_VAES512; i++) {
		if (i <= best)
			w[n++] = i;
		else
			printf("# SKIP gcm width %s: not on this CPU\n", quic_gcm_impl_name(i));
	}
	return n;
}

static void test_spec_vectors(void **state)
{
	enum quic_gcm_impl w[3];
	int nw = widths(w), i, c;

	(void)state;
	if (!nw) {
		printf("# SKIP: this CPU has no AES-NI and PCLMULQDQ\n");
		return;
	}
	for (i = 0; i < nw; i++) {
		for (c = 0; c < (int)(sizeof(cases) / sizeof(cases[0])); c++) {
			uint8_t key[32], iv[12], aad[64], pt[64], ct[64], tag[16], out[80],
			    back[64];
			size_t kl, ivl, al, pl, cl, tl;
			struct quic_gcm_key *k;

			unhex(cases[c].key, key, &kl);
			unhex(cases[c].iv, iv, &ivl);
			unhex(cases[c].aad, aad, &al);
			unhex(cases[c].pt, pt, &pl);
			unhex(cases[c].ct, ct, &cl);
			unhex(cases[c].tag, tag, &tl);
			assert_int_equal(ivl, 12);
			assert_int_equal(pl, cl);
			assert_int_equal(quic_gcm_key_new(&k, key, kl, w[i]), 0);
			assert_int_equal(quic_gcm_key_impl(k), w[i]);
			quic_gcm_seal(k, out, iv, aad, al, pt, pl);
			if (memcmp(out, ct, cl) || memcmp(out + cl, tag, 16))
				fail_msg("%s case %d: sealed bytes differ",
					 quic_gcm_impl_name(w[i]), c);
			memset(back, 0xee, sizeof(back));
			assert_int_equal(quic_gcm_open(k, back, iv, aad, al, out, cl + 16), 0);
			assert_memory_equal(back, pt, pl);
			quic_gcm_key_free(k);
		}
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static void fill(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		rng_state ^= rng_state << 13;
		rng_state ^= rng_state >> 7;
		rng_state ^= rng_state << 17;
		p[i] = (uint8_t)rng_state;
	}
}

/* GnuTLS's sealing of the same input (the reference). */
static void ref_seal(gnutls_cipher_algorithm_t alg, const uint8_t *key, size_t kl,
		     const uint8_t *iv, const uint8_t *aad, size_t al, const uint8_t *pt, size_t pl,
		     uint8_t *out)
{
	gnutls_datum_t kd = {(unsigned char *)key, (unsigned int)kl};
	gnutls_aead_cipher_hd_t hd;
	size_t ol = pl + 16;

	assert_int_equal(gnutls_aead_cipher_init(&hd, alg, &kd), 0);
	assert_int_equal(gnutls_aead_cipher_encrypt(hd, iv, 12, aad, al, 16, pt, pl, out, &ol), 0);
	assert_int_equal(ol, pl + 16);
	gnutls_aead_cipher_deinit(hd);
}

static void check_one(enum quic_gcm_impl impl, size_t kl, size_t al, size_t pl)
{
	uint8_t key[32], iv[12], aad[80], *pt = malloc(pl + 1), *ref = malloc(pl + 16),
					  *out = malloc(pl + 16), *back = malloc(pl + 16);
	struct quic_gcm_key *k;

	assert_non_null(pt);
	assert_non_null(ref);
	assert_non_null(out);
	assert_non_null(back);
	fill(key, kl);
	fill(iv, sizeof(iv));
	fill(aad, al);
	fill(pt, pl);
	ref_seal(kl == 16 ? GNUTLS_CIPHER_AES_128_GCM : GNUTLS_CIPHER_AES_256_GCM, key, kl, iv, aad,
		 al, pt, pl, ref);
	assert_int_equal(quic_gcm_key_new(&k, key, kl, impl), 0);
	quic_gcm_seal(k, out, iv, aad, al, pt, pl);
	if (memcmp(out, ref, pl + 16))
		fail_msg("%s, %zu-byte key, aad %zu, %zu bytes: not GnuTLS's",
			 quic_gcm_impl_name(impl), kl, al, pl);
	/* In place, both ways. */
	memcpy(back, pt, pl);
	quic_gcm_seal(k, back, iv, aad, al, back, pl);
	assert_memory_equal(back, ref, pl + 16);
	assert_int_equal(quic_gcm_open(k, back, iv, aad, al, back, pl + 16), 0);
	if (pl)
		assert_memory_equal(back, pt, pl);
	quic_gcm_key_free(k);
	free(pt);
	free(ref);
	free(out);
	free(back);
}

static void test_against_gnutls(void **state)
{
	static const size_t quic[] = {1152, 1200, 1252, 1380, 1404, 1420,  1428,
				      1436, 1444, 1452, 1472, 8952, 16384, 65507};
	enum quic_gcm_impl w[3];
	int nw = widths(w), i;
	size_t pl, al, q;

	(void)state;
	for (i = 0; i < nw; i++) {
		for (pl = 0; pl <= 600; pl++)
			check_one(w[i], pl % 2 ? 32 : 16, pl % 71, pl);
		for (al = 0; al <= 70; al++)
			check_one(w[i], 16, al, 1 + al * 7);
		for (q = 0; q < sizeof(quic) / sizeof(quic[0]); q++) {
			check_one(w[i], 16, 22, quic[q]);
			check_one(w[i], 32, 31, quic[q]);
		}
	}
}

/* Every single-bit change of what the tag covers is refused and leaves
 * the output untouched. */
static void test_forgery(void **state)
{
	enum quic_gcm_impl w[3];
	int nw = widths(w), i;
	uint8_t key[16], iv[12], aad[21], pt[100], ct[116], out[116], bad[116];
	struct quic_gcm_key *k;
	size_t b;

	(void)state;
	fill(key, sizeof(key));
	fill(iv, sizeof(iv));
	fill(aad, sizeof(aad));
	fill(pt, sizeof(pt));
	for (i = 0; i < nw; i++) {
		assert_int_equal(quic_gcm_key_new(&k, key, sizeof(key), w[i]), 0);
		quic_gcm_seal(k, ct, iv, aad, sizeof(aad), pt, sizeof(pt));
		for (b = 0; b < 8 * sizeof(ct); b++) {
			memcpy(bad, ct, sizeof(ct));
			bad[b / 8] ^= (uint8_t)(1U << (b % 8));
			memset(out, 0x5a, sizeof(out));
			assert_int_equal(
			    quic_gcm_open(k, out, iv, aad, sizeof(aad), bad, sizeof(bad)),
			    -EBADMSG);
			for (size_t j = 0; j < sizeof(out); j++)
				assert_int_equal(out[j], 0x5a);
		}
		for (b = 0; b < 8 * sizeof(aad); b++) {
			aad[b / 8] ^= (uint8_t)(1U << (b % 8));
			assert_int_equal(
			    quic_gcm_open(k, out, iv, aad, sizeof(aad), ct, sizeof(ct)), -EBADMSG);
			aad[b / 8] ^= (uint8_t)(1U << (b % 8));
		}
		for (b = 0; b < 8 * sizeof(iv); b++) {
			iv[b / 8] ^= (uint8_t)(1U << (b % 8));
			assert_int_equal(
			    quic_gcm_open(k, out, iv, aad, sizeof(aad), ct, sizeof(ct)), -EBADMSG);
			iv[b / 8] ^= (uint8_t)(1U << (b % 8));
		}
		/* Shorter than a tag, a truncated packet, a wrong length of AAD. */
		assert_int_equal(quic_gcm_open(k, out, iv, aad, sizeof(aad), ct, 15), -EBADMSG);
		assert_int_equal(quic_gcm_open(k, out, iv, aad, sizeof(aad), ct, sizeof(ct) - 1),
				 -EBADMSG);
		assert_int_equal(quic_gcm_open(k, out, iv, aad, sizeof(aad) - 1, ct, sizeof(ct)),
				 -EBADMSG);
		assert_int_equal(quic_gcm_open(k, out, iv, aad, sizeof(aad), ct, sizeof(ct)), 0);
		assert_memory_equal(out, pt, sizeof(pt));
		quic_gcm_key_free(k);
	}
}

static void test_keys(void **state)
{
	uint8_t key[32] = {1}, other[32] = {2}, iv[12] = {3}, pt[40] = {4}, ct[56], out[56];
	struct quic_gcm_key *k = (struct quic_gcm_key *)1, *k2;
	enum quic_gcm_impl best = quic_gcm_impl_best();

	(void)state;
	assert_int_equal(quic_gcm_key_new(&k, key, 24, QUIC_GCM_AESNI), -EINVAL);
	assert_null(k);
	assert_int_equal(quic_gcm_key_new(&k, key, 16, QUIC_GCM_NONE), -EINVAL);
	assert_int_equal(quic_gcm_key_new(&k, key, 16, (enum quic_gcm_impl)7), -EINVAL);
	assert_int_equal(quic_gcm_key_new(&k, NULL, 16, QUIC_GCM_AESNI), -EINVAL);
	if (best < QUIC_GCM_VAES512)
		assert_int_equal(quic_gcm_key_new(&k, key, 16, QUIC_GCM_VAES512), -EOPNOTSUPP);
	quic_gcm_key_free(NULL);
	if (best == QUIC_GCM_NONE) {
		printf("# SKIP: this CPU has no AES-NI and PCLMULQDQ\n");
		return;
	}
	/* A packet sealed under one key does not open under another. */
	assert_int_equal(quic_gcm_key_new(&k, key, 16, best), 0);
	assert_int_equal(quic_gcm_key_new(&k2, other, 16, best), 0);
	quic_gcm_seal(k, ct, iv, NULL, 0, pt, sizeof(pt));
	assert_int_equal(quic_gcm_open(k2, out, iv, NULL, 0, ct, sizeof(ct)), -EBADMSG);
	assert_int_equal(quic_gcm_open(k, out, iv, NULL, 0, ct, sizeof(ct)), 0);
	assert_string_equal(quic_gcm_impl_name(QUIC_GCM_VAES512), "vaes512");
	assert_string_equal(quic_gcm_impl_name(QUIC_GCM_NONE), "none");
	quic_gcm_key_free(k);
	quic_gcm_key_free(k2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_vectors),
	    cmocka_unit_test(test_against_gnutls),
	    cmocka_unit_test(test_forgery),
	    cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
