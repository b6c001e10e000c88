// SPDX-License-Identifier: MIT
/*
 * weft frame layer (docs/QUIC.md test vectors), varints (RFC 9000 A.1
 * vectors), the stream reassembler, node-key certificates, and the curve
 * functions weft puts in place of nettle's under GnuTLS (userspace/quic/cert.c).
 */
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <nettle/curve25519.h>
#include <nettle/eddsa.h>
#include <sodium.h>

#include <weft/quic.h>

static void test_varint_rfc(void **state)
{
	static const struct {
		uint8_t b[8];
		size_t n;
		uint64_t v;
	} vec[] = {
		{ { 0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c }, 8, 151288809941952652ULL },
		{ { 0x9d, 0x7f, 0x3e, 0x7d }, 4, 494878333 },
		{ { 0x7b, 0xbd }, 2, 15293 },
		{ { 0x25 }, 1, 37 },
	};
	uint8_t out[8];
	uint64_t v;
	size_t i;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		assert_int_equal(quic_varint_decode(vec[i].b, vec[i].n, &v), (int)vec[i].n);
		assert_int_equal(v, vec[i].v);
		assert_int_equal(quic_varint_encode(out, sizeof(out), vec[i].v), (int)vec[i].n);
		assert_memory_equal(out, vec[i].b, vec[i].n);
		/* Truncated: need more. */
		assert_int_equal(quic_varint_decode(vec[i].b, vec[i].n - 1, &v), -EAGAIN);
	}
	/* RFC 9000 A.1: 0x40 0x25 also means 37, but weft wants one encoding. */
	assert_int_equal(quic_varint_decode((const uint8_t *)"\x40\x25", 2, &v), -EINVAL);
	assert_int_equal(quic_varint_encode(out, sizeof(out), QUIC_VARINT_MAX + 1), -ERANGE);
	assert_int_equal(quic_varint_encode(out, 1, 64), -ENOBUFS);
}

/* The vectors of docs/QUIC.md, section "Frame layer". */
static void test_frame_vectors(void **state)
{
	uint8_t p64[64], buf[128], exp3[3 + 64];
	struct quic_frame f;

	memset(p64, 0xab, sizeof(p64));
	assert_int_equal(quic_frame_encode(buf, sizeof(buf), 0x00, NULL, 0), 2);
	assert_memory_equal(buf, "\x00\x00", 2);
	assert_int_equal(quic_frame_encode(buf, sizeof(buf), 0x01, (const uint8_t *)"hi", 2), 4);
	assert_memory_equal(buf, "\x01\x02hi", 4);
	assert_int_equal(quic_frame_encode(buf, sizeof(buf), 0x3f, p64, 64), 67);
	memcpy(exp3, "\x3f\x40\x40", 3);
	memset(exp3 + 3, 0xab, 64);
	assert_memory_equal(buf, exp3, 67);
	assert_int_equal(quic_frame_encode(buf, sizeof(buf), 0x4000, NULL, 0), 5);
	assert_memory_equal(buf, "\x80\x00\x40\x00\x00", 5);

	assert_int_equal(quic_frame_decode(exp3, sizeof(exp3), 1024, &f), 67);
	assert_int_equal(f.type, 0x3f);
	assert_int_equal(f.len, 64);
	assert_ptr_equal(f.payload, exp3 + 3);
	assert_int_equal(quic_frame_decode(exp3, 66, 1024, &f), -EAGAIN);
	assert_int_equal(quic_frame_decode(exp3, sizeof(exp3), 63, &f), -EMSGSIZE);
	assert_int_equal(quic_frame_decode((const uint8_t *)"\x01\x40\x01", 3, 1024, &f), -EINVAL);
	assert_int_equal(quic_frame_encode(buf, 66, 0x3f, p64, 64), -ENOBUFS);
	assert_int_equal(quic_frame_size(0x3f, 64), 67);
}

struct got {
	int n;
	uint64_t types[64];
	size_t lens[64];
	uint64_t sum;
};

static int collect(void *arg, const struct quic_frame *f)
{
	struct got *g = arg;
	size_t i;

	if (g->n < 64) {
		g->types[g->n] = f->type;
		g->lens[g->n] = f->len;
	}
	g->n++;
	for (i = 0; i < f->len; i++)
		g->sum += f->payload[i];
	return 0;
}

/* Frames of sizes 0..2000 fed in every chunking from 1 byte up arrive
 * whole and in order. */
static void test_framer_chunks(void **state)
{
	uint8_t *stream = malloc(1 << 16), payload[2000];
	size_t len = 0, i, chunk;
	uint64_t sum = 0;
	int k;

	for (i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	for (k = 0; k < 20; k++) {
		size_t pl = (size_t)k * 100;
		ssize_t n = quic_frame_encode(stream + len, (1 << 16) - len, (uint64_t)k * 1000,
					      payload, pl);

		assert_true(n > 0);
		len += (size_t)n;
		for (i = 0; i < pl; i++)
			sum += payload[i];
	}
	for (chunk = 1; chunk < 3000; chunk = chunk * 3 + 1) {
		struct quic_framer *fr;
		struct got g;
		size_t off;

		memset(&g, 0, sizeof(g));
		assert_int_equal(quic_framer_new(&fr, 4096), 0);
		for (off = 0; off < len; off += chunk) {
			size_t n = len - off < chunk ? len - off : chunk;

			assert_true(quic_framer_push(fr, stream + off, n, collect, &g) >= 0);
		}
		assert_int_equal(g.n, 20);
		for (k = 0; k < 20; k++) {
			assert_int_equal(g.types[k], (uint64_t)k * 1000);
			assert_int_equal(g.lens[k], (size_t)k * 100);
		}
		assert_int_equal(g.sum, sum);
		assert_int_equal(quic_framer_pending(fr), 0);
		quic_framer_free(fr);
	}
	free(stream);
}

static void test_framer_errors(void **state)
{
	struct quic_framer *fr;
	struct got g;

	memset(&g, 0, sizeof(g));
	assert_int_equal(quic_framer_new(&fr, 16), 0);
	/* Length 17 > cap 16: corrupt stream, and it stays corrupt. */
	assert_int_equal(quic_framer_push(fr, (const uint8_t *)"\x01\x11", 2, collect, &g),
			 -EMSGSIZE);
	assert_int_equal(quic_framer_push(fr, (const uint8_t *)"\x01\x00", 2, collect, &g),
			 -EMSGSIZE);
	quic_framer_free(fr);
	assert_int_equal(quic_framer_new(&fr, 16), 0);
	assert_int_equal(quic_framer_push(fr, (const uint8_t *)"\x40", 1, collect, &g), 0);
	assert_int_equal(quic_framer_pending(fr), 1);
	assert_int_equal(quic_framer_push(fr, (const uint8_t *)"\x01", 1, collect, &g), -EINVAL);
	quic_framer_free(fr);
	quic_framer_free(NULL);
}

static void test_cert_roundtrip(void **state)
{
	uint8_t pk[32], sk[64], got[32], *der = NULL, *der2 = NULL;
	size_t len = 0, len2 = 0;

	assert_int_equal(sodium_init() < 0, 0);
	crypto_sign_keypair(pk, sk);
	assert_int_equal(quic_cert_make(pk, sk, &der, &len), 0);
	assert_int_equal(quic_cert_verify(der, len, got), 0);
	assert_memory_equal(got, pk, 32);
	/* Deterministic in the key. */
	assert_int_equal(quic_cert_make(pk, sk, &der2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(der, der2, len);
	free(der2);
	/* A key pair that does not match is refused. */
	sk[40] ^= 1;
	assert_int_equal(quic_cert_make(pk, sk, &der2, &len2), -EINVAL);
	free(der);
}

static void test_cert_malformed(void **state)
{
	uint8_t pk[32], sk[64], got[32], *der = NULL, *bad;
	size_t len = 0, i;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	int rc, k;

	crypto_sign_keypair(pk, sk);
	assert_int_equal(quic_cert_make(pk, sk, &der, &len), 0);
	bad = malloc(len);
	/* Every truncation is refused. */
	for (i = 0; i < len; i++)
		assert_int_not_equal(quic_cert_verify(der, i, got), 0);
	/* A flipped bit in the signature (last bytes) fails verification. */
	memcpy(bad, der, len);
	bad[len - 5] ^= 0x10;
	assert_int_equal(quic_cert_verify(bad, len, got), -EKEYREJECTED);
	/* Random bit flips anywhere: never accepted with another key, never a
	 * crash. */
	for (k = 0; k < 2000; k++) {
		memcpy(bad, der, len);
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		bad[seed % len] ^= (uint8_t)(1u << (seed >> 32) % 8);
		rc = quic_cert_verify(bad, len, got);
		if (rc == 0)
			assert_memory_equal(got, pk, 32);
	}
	assert_int_equal(quic_cert_verify((const uint8_t *)"\x30\x00", 2, got), -EBADMSG);
	assert_int_equal(quic_cert_verify(NULL, 0, got), -EBADMSG);
	free(bad);
	free(der);
}

/* quic_cert_parse: the key of a valid certificate; no signature check (a
 * bad self-signature parses, quic_cert_verify refuses it); other key types
 * and non-DER lengths refused; every truncation refused. */
static void test_cert_parse(void **state)
{
	uint8_t pk[32], sk[64], *der = NULL, *bad, got[32];
	gnutls_x509_privkey_t ek;
	gnutls_x509_crt_t crt;
	gnutls_datum_t d = { NULL, 0 };
	struct quic_cert_view v;
	size_t len = 0, i;

	crypto_sign_keypair(pk, sk);
	assert_int_equal(quic_cert_make(pk, sk, &der, &len), 0);
	assert_int_equal(quic_cert_parse(der, len, &v), 0);
	assert_memory_equal(v.key, pk, 32);
	assert_true(v.tbs > der && v.tbs + v.tbs_len < der + len);
	for (i = 0; i < len; i++)
		assert_int_not_equal(quic_cert_parse(der, i, &v), 0);
	bad = malloc(len + 1);
	memcpy(bad, der, len);
	bad[len - 5] ^= 0x10;
	assert_int_equal(quic_cert_parse(bad, len, &v), 0);
	assert_int_equal(quic_cert_verify(bad, len, got), -EKEYREJECTED);
	/* A trailing byte, and the outer length in a non-minimal long form. */
	memcpy(bad, der, len);
	bad[len] = 0;
	assert_int_equal(quic_cert_parse(bad, len + 1, &v), -EBADMSG);
	assert_true(der[1] == 0x81 || der[1] == 0x82); /* a few hundred bytes */
	bad[0] = 0x30;
	bad[1] = (uint8_t)(der[1] + 1);
	bad[2] = 0x00; /* the same length, one leading zero byte longer */
	memcpy(bad + 3, der + 2, len - 2);
	assert_int_equal(quic_cert_parse(bad, len + 1, &v), -EBADMSG);
	free(bad);
	free(der);
	/* An ECDSA P-256 certificate: well-formed, not Ed25519. */
	assert_int_equal(gnutls_x509_privkey_init(&ek), 0);
	assert_int_equal(gnutls_x509_privkey_generate(ek, GNUTLS_PK_ECDSA,
						      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
			 0);
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(crt, "\x01", 1), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(crt, 1577836800), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, 1577836800 + 86400), 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, ek), 0);
	assert_int_equal(gnutls_x509_crt_sign2(crt, crt, ek, GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &d), 0);
	assert_int_equal(quic_cert_parse(d.data, d.size, &v), -EKEYREJECTED);
	assert_int_equal(quic_cert_verify(d.data, d.size, got), -EKEYREJECTED);
	gnutls_free(d.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(ek);
	assert_int_equal(quic_cert_parse(NULL, 0, &v), -EBADMSG);
}

/* cert.c defines nettle_curve25519_mul and nettle_ed25519_sha512_verify
 * (libsodium inside) so GnuTLS's calls land there: the definitions here
 * must be the ones in effect (not libhogweed's) and give nettle's results,
 * fixed seed. */
static void test_curve_interposed(void **state)
{
	void (*mul)(uint8_t *, const uint8_t *, const uint8_t *) =
		(void (*)(uint8_t *, const uint8_t *, const uint8_t *))dlsym(RTLD_DEFAULT,
									     "nettle_curve25519_mul");
	void (*nmul)(uint8_t *, const uint8_t *, const uint8_t *) =
		(void (*)(uint8_t *, const uint8_t *, const uint8_t *))dlsym(RTLD_NEXT,
									     "nettle_curve25519_mul");
	int (*nver)(const uint8_t *, size_t, const uint8_t *, const uint8_t *) =
		(int (*)(const uint8_t *, size_t, const uint8_t *, const uint8_t *))dlsym(
			RTLD_NEXT, "nettle_ed25519_sha512_verify");
	/* RFC 7748 5.2, first vector. */
	static const uint8_t k[32] = { 0xa5, 0x46, 0xe3, 0x6b, 0xf0, 0x52, 0x7c, 0x9d,
				       0x3b, 0x16, 0x15, 0x4b, 0x82, 0x46, 0x5e, 0xdd,
				       0x62, 0x14, 0x4c, 0x0a, 0xc1, 0xfc, 0x5a, 0x18,
				       0x50, 0x6a, 0x22, 0x44, 0xba, 0x44, 0x9a, 0xc4 };
	static const uint8_t u[32] = { 0xe6, 0xdb, 0x68, 0x67, 0x58, 0x30, 0x30, 0xdb,
				       0x35, 0x94, 0xc1, 0xa4, 0x24, 0xb1, 0x5f, 0x7c,
				       0x72, 0x66, 0x24, 0xec, 0x26, 0xb3, 0x35, 0x3b,
				       0x10, 0xa9, 0x03, 0xa6, 0xd0, 0xab, 0x1c, 0x4c };
	static const uint8_t r[32] = { 0xc3, 0xda, 0x55, 0x37, 0x9d, 0xe9, 0xc6, 0x90,
				       0x8e, 0x94, 0xea, 0x4d, 0xf2, 0x8d, 0x08, 0x4f,
				       0x32, 0xec, 0xcf, 0x03, 0x49, 0x1c, 0x71, 0xf7,
				       0x54, 0xb4, 0x07, 0x55, 0x77, 0xa2, 0x85, 0x52 };
	uint8_t seed[randombytes_SEEDBYTES] = { 7 }, buf[32 * 2 + 64 + 200], q1[32], q2[32];
	uint8_t pk[32], sk[64], sig[64];
	int i;

	assert_non_null(nmul);
	assert_non_null(nver);
	assert_ptr_equal(mul, nettle_curve25519_mul); /* ours is the global one */
	assert_ptr_not_equal(nmul, nettle_curve25519_mul);
	curve25519_mul(q1, k, u);
	assert_memory_equal(q1, r, 32);
	for (i = 0; i < 200; i++) {
		randombytes_buf_deterministic(buf, sizeof(buf), seed);
		seed[1] = (uint8_t)i;
		seed[2] = (uint8_t)(i >> 8);
		if (i < 3) /* u = 0, 1 and 0 with the top bit set: small order */
			memset(buf + 32, 0, 32);
		if (i == 1)
			buf[32] = 1;
		if (i == 2)
			buf[63] = 0x80;
		curve25519_mul(q1, buf, buf + 32);
		memset(q2, 0xaa, sizeof(q2));
		nmul(q2, buf, buf + 32);
		assert_memory_equal(q1, q2, 32);
		/* Ed25519: a valid signature, then one with a flipped bit. */
		crypto_sign_seed_keypair(pk, sk, buf);
		crypto_sign_detached(sig, NULL, buf + 64, 1 + i % 200, sk);
		assert_int_equal(ed25519_sha512_verify(pk, 1 + i % 200, buf + 64, sig), 1);
		assert_int_equal(nver(pk, 1 + i % 200, buf + 64, sig), 1);
		sig[i % 64] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(ed25519_sha512_verify(pk, 1 + i % 200, buf + 64, sig), 0);
		assert_int_equal(nver(pk, 1 + i % 200, buf + 64, sig), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_rfc),     cmocka_unit_test(test_frame_vectors),
		cmocka_unit_test(test_framer_chunks),  cmocka_unit_test(test_framer_errors),
		cmocka_unit_test(test_cert_roundtrip), cmocka_unit_test(test_cert_malformed),
		cmocka_unit_test(test_cert_parse),     cmocka_unit_test(test_curve_interposed),
	};

	return cmocka_run_group_tests_name("quic_frame", tests, NULL, NULL);
}
