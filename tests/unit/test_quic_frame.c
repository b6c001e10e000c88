// SPDX-License-Identifier: MIT
/*
 * weft frame layer (docs/QUIC.md test vectors), varints (RFC 9000 A.1
 * vectors), the stream reassembler, and node-key certificates.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_rfc),     cmocka_unit_test(test_frame_vectors),
		cmocka_unit_test(test_framer_chunks),  cmocka_unit_test(test_framer_errors),
		cmocka_unit_test(test_cert_roundtrip), cmocka_unit_test(test_cert_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
