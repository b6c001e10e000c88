// SPDX-License-Identifier: MIT
/* Service call wire format: vectors, round trips, truncation at every
 * length, lying lengths, split feeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "weft/svc_msg.h"
#include "weft/util.h"

/* docs/SERVICE.md vectors M1 (request) and M2 (response). */
static const char m1_hex[] = "0101040400000002000003e86563686f70696e676869";
static const char m2_hex[] = "0102030000000009000001ad736c6f7720646f776e";

static const struct svc_msg m1 = {
    .type = SVC_MSG_REQUEST,
    .service = "echo",
    .service_len = 4,
    .method = "ping",
    .method_len = 4,
    .payload = (const uint8_t *)"hi",
    .payload_len = 2,
    .timeout_ms = 1000,
};
static const struct svc_msg m2 = {
    .type = SVC_MSG_RESPONSE,
    .err = SVC_ERR_RATE_LIMITED,
    .status = 429,
    .payload = (const uint8_t *)"slow down",
    .payload_len = 9,
};

static void assert_msg_eq(const struct svc_msg *a, const struct svc_msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->err, b->err);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->timeout_ms, b->timeout_ms);
	assert_int_equal(a->service_len, b->service_len);
	if (a->service_len)
		assert_memory_equal(a->service, b->service, a->service_len);
	assert_int_equal(a->method_len, b->method_len);
	if (a->method_len)
		assert_memory_equal(a->method, b->method, a->method_len);
	assert_int_equal(a->payload_len, b->payload_len);
	if (a->payload_len)
		assert_memory_equal(a->payload, b->payload, a->payload_len);
}

static void test_vectors(void **state)
{
	uint8_t out[64], want[64];
	struct svc_msg m;
	size_t n;

	assert_int_equal(svc_msg_encode(&m1, out, sizeof(out), &n), 0);
	assert_int_equal(n, strlen(m1_hex) / 2);
	assert_int_equal(util_unhex(want, n, m1_hex), 0);
	assert_memory_equal(out, want, n);
	assert_int_equal(svc_msg_len(&m1), n);
	assert_int_equal(svc_msg_decode(&m, out, n, 0), (long)n);
	assert_msg_eq(&m, &m1);

	assert_int_equal(svc_msg_encode(&m2, out, sizeof(out), &n), 0);
	assert_int_equal(n, strlen(m2_hex) / 2);
	assert_int_equal(util_unhex(want, n, m2_hex), 0);
	assert_memory_equal(out, want, n);
	assert_int_equal(svc_msg_decode(&m, out, n, 0), (long)n);
	assert_msg_eq(&m, &m2);

	/* head only = everything but the payload */
	assert_int_equal(svc_msg_encode_head(&m1, out, sizeof(out), &n), 0);
	assert_int_equal(n, strlen(m1_hex) / 2 - 2);
	assert_int_equal(svc_msg_encode(&m1, out, 10, &n), -ENOBUFS);
}

/* M3: M1 with the caller assertion of the docs/SERVICE.md vector (the
 * flag 0x80 in byte 3, 88 bytes after the method). */
static const char m3_hex[] = "0101048400000002000003e86563686f70696e6700112233445566778899aabbccddeeff0000018bcfe5680040b86aadcb3feb98cfbc29e441cdce14e9e042beb3ff74beb5abaffcf9b70cf8394b81722ed36c325c5baca17e07e109abd3e8d1ad85df91bb1d2868a2f0c50b6869";

static void test_assertion(void **state)
{
	uint8_t out[160], want[160], as[SVC_ASSERT_LEN];
	struct svc_msg m = m1, d;
	struct svc_msg_dec dec;
	const struct svc_msg *got;
	size_t n, used;

	assert_int_equal(util_unhex(want, strlen(m3_hex) / 2, m3_hex), 0);
	memcpy(as, want + 20, sizeof(as));
	m.assertion = as;
	assert_int_equal(svc_msg_encode(&m, out, sizeof(out), &n), 0);
	assert_int_equal(n, strlen(m3_hex) / 2);
	assert_int_equal(svc_msg_len(&m), n);
	assert_int_equal(util_unhex(want, n, m3_hex), 0);
	assert_memory_equal(out, want, n);
	assert_int_equal(svc_msg_decode(&d, out, n, 0), (long)n);
	assert_msg_eq(&d, &m1);
	assert_non_null(d.assertion);
	assert_memory_equal(d.assertion, as, sizeof(as));
	/* byte by byte through the incremental decoder */
	svc_msg_dec_init(&dec, 0);
	for (size_t k = 0; k < n; k++) {
		int rc = svc_msg_dec_feed(&dec, out + k, 1, &used, &got);

		assert_int_equal(rc, k + 1 == n);
	}
	assert_msg_eq(got, &m1);
	assert_memory_equal(got->assertion, as, sizeof(as));
	svc_msg_dec_free(&dec);
	/* every truncation asks for more */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(svc_msg_decode(&d, out, k, 0), -EAGAIN);
	/* M1 has none */
	assert_int_equal(util_unhex(want, 22, "0101040400000002000003e86563686f70696e676869"), 0);
	assert_int_equal(svc_msg_decode(&d, want, 22, 0), 22);
	assert_null(d.assertion);
	/* only requests and stream opens carry one */
	m = m2;
	m.assertion = as;
	assert_int_equal(svc_msg_encode(&m, out, sizeof(out), &n), -EINVAL);
}

static void test_all_types_roundtrip(void **state)
{
	uint8_t payload[300], out[512];
	struct svc_msg msgs[] = {
	    {.type = SVC_MSG_REQUEST, .service = "a", .service_len = 1},
	    {.type = SVC_MSG_STREAM_OPEN,
	     .service = "files.v2",
	     .service_len = 8,
	     .method = "get/Chunk",
	     .method_len = 9,
	     .payload = payload,
	     .payload_len = 300,
	     .timeout_ms = 0xffffffffu},
	    {.type = SVC_MSG_STREAM_DATA, .payload = payload, .payload_len = 17},
	    {.type = SVC_MSG_STREAM_DATA},
	    {.type = SVC_MSG_STREAM_END, .err = SVC_ERR_TIMEOUT, .status = 7},
	    {.type = SVC_MSG_RESPONSE, .err = SVC_OK, .payload = payload, .payload_len = 1},
	};
	struct svc_msg m;
	size_t n;

	tu_fill(payload, sizeof(payload), 7);
	for (size_t i = 0; i < WEFT_ARRAY_SIZE(msgs); i++) {
		assert_int_equal(svc_msg_encode(&msgs[i], out, sizeof(out), &n), 0);
		assert_int_equal(svc_msg_decode(&m, out, n, 0), (long)n);
		assert_msg_eq(&m, &msgs[i]);
	}
}

static void test_encode_rejects(void **state)
{
	uint8_t out[256];
	struct svc_msg m;
	size_t n;

	m = m1;
	m.service = "Echo";
	assert_int_equal(svc_msg_encode(&m, out, sizeof(out), &n), -EINVAL);
	m = m1;
	m.service_len = 0;
	assert_int_equal(svc_msg_encode(&m, out, sizeof(out), &n), -EINVAL);
	m = m1;
	m.method = "a b";
	m.method_len = 3;
	assert_int_equal(svc_msg_encode(&m, out, sizeof(out), &n), -EINVAL);
	m = m1;
	m.err = 1;
	assert_int_equal(svc_msg_encode(&m, out, sizeof(out), &n), -EINVAL);
	m = m2;
	m.err = SVC_ERR__COUNT;
	assert_int_equal(svc_msg_encode(&m, out, sizeof(out), &n), -EINVAL);
	m = m2;
	m.type = 6;
	assert_int_equal(svc_msg_encode(&m, out, sizeof(out), &n), -EINVAL);
	m = m2;
	m.type = SVC_MSG_STREAM_DATA;
	assert_int_equal(svc_msg_encode(&m, out, sizeof(out), &n), -EINVAL);
	m = m2;
	m.payload_len = (size_t)SVC_MSG_MAX_PAYLOAD_CEIL + 1;
	assert_int_equal(svc_msg_encode(&m, out, sizeof(out), &n), -EMSGSIZE);
}

/* Truncated input at every length: one-shot says -EAGAIN, the incremental
 * decoder fed that prefix says 0 (need more), never a message. */
static void test_truncated_every_length(void **state)
{
	const struct svc_msg *src[] = {&m1, &m2};
	uint8_t out[64];
	struct svc_msg m;
	size_t n;

	for (size_t s = 0; s < 2; s++) {
		assert_int_equal(svc_msg_encode(src[s], out, sizeof(out), &n), 0);
		for (size_t l = 0; l < n; l++) {
			struct svc_msg_dec d;
			const struct svc_msg *got = NULL;
			size_t used;

			assert_int_equal(svc_msg_decode(&m, out, l, 0), -EAGAIN);
			svc_msg_dec_init(&d, 0);
			assert_int_equal(svc_msg_dec_feed(&d, out, l, &used, &got), 0);
			assert_int_equal(used, l);
			assert_null(got);
			/* the rest completes it */
			assert_int_equal(svc_msg_dec_feed(&d, out + l, n - l, &used, &got), 1);
			assert_int_equal(used, n - l);
			assert_non_null(got);
			assert_msg_eq(got, src[s]);
			svc_msg_dec_free(&d);
		}
	}
}

static void test_bad_headers(void **state)
{
	static const char *const bad[] = {
	    "0201040400000002000003e8", /* version 2 */
	    "0100040400000002000003e8", /* type 0 */
	    "0106040400000002000003e8", /* type 6 */
	    "0101000400000002000003e8", /* empty service name */
	    "0101410400000002000003e8", /* service name 65 bytes */
	    "0101044100000002000003e8", /* method 65 bytes */
	    "01020a0000000002000001ad", /* error class 10 */
	    "010104c100000002000003e8", /* assertion flag, method 65 bytes */
	    "0102038000000002000001ad", /* assertion flag on a RESPONSE */
	    "0104008000000002000000ff", /* assertion flag on DATA */
	    "0102030100000002000001ad", /* reserved byte set */
	    "0104000000000002000000ff", /* DATA with a status word */
	};
	uint8_t buf[16];
	struct svc_msg m;

	for (size_t i = 0; i < WEFT_ARRAY_SIZE(bad); i++) {
		size_t l = strlen(bad[i]) / 2, used;
		struct svc_msg_dec d;
		int rc;

		assert_int_equal(util_unhex(buf, l, bad[i]), 0);
		if (l == SVC_MSG_HDR_LEN)
			assert_int_equal(svc_msg_decode(&m, buf, l, 0), -EBADMSG);
		svc_msg_dec_init(&d, 0);
		/* byte by byte: the error shows up at the latest at byte 12 */
		rc = 0;
		for (size_t k = 0; k < l && rc == 0; k++)
			rc = svc_msg_dec_feed(&d, buf + k, 1, &used, NULL);
		if (l == SVC_MSG_HDR_LEN)
			assert_int_equal(rc, -EBADMSG);
		/* sticky */
		if (rc)
			assert_int_equal(svc_msg_dec_feed(&d, buf, 1, &used, NULL), rc);
		svc_msg_dec_free(&d);
	}
	/* invalid characters in the names, caught once the body is in */
	{
		uint8_t out[64];
		size_t n;
		struct svc_msg_dec d;

		assert_int_equal(svc_msg_encode(&m1, out, sizeof(out), &n), 0);
		out[12] = 'E'; /* "Echo" */
		assert_int_equal(svc_msg_decode(&m, out, n, 0), -EBADMSG);
		svc_msg_dec_init(&d, 0);
		assert_int_equal(svc_msg_dec_feed(&d, out, n, NULL, NULL), -EBADMSG);
		svc_msg_dec_free(&d);
		out[12] = 'e';
		out[16] = ' '; /* method " ing" */
		assert_int_equal(svc_msg_decode(&m, out, n, 0), -EBADMSG);
	}
}

/* A header claiming a huge payload: rejected before any buffering when over
 * the cap; under the cap, memory follows the bytes that actually came. */
static void test_lying_length(void **state)
{
	uint8_t hdr[SVC_MSG_HDR_LEN] = {
	    1, SVC_MSG_STREAM_DATA, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
	uint8_t chunk[100];
	struct svc_msg_dec d;
	struct svc_msg m;
	size_t used;

	assert_int_equal(svc_msg_decode(&m, hdr, sizeof(hdr), 0), -EMSGSIZE);
	svc_msg_dec_init(&d, 0);
	assert_int_equal(svc_msg_dec_feed(&d, hdr, sizeof(hdr), &used, NULL), -EMSGSIZE);
	assert_null(d.buf);
	svc_msg_dec_free(&d);

	/* 1 MiB claimed (allowed), 100 bytes sent: the buffer stays small */
	hdr[4] = 0x00;
	hdr[5] = 0x10;
	hdr[6] = 0x00;
	hdr[7] = 0x00;
	memset(chunk, 0xab, sizeof(chunk));
	svc_msg_dec_init(&d, 0);
	assert_int_equal(svc_msg_dec_feed(&d, hdr, sizeof(hdr), &used, NULL), 0);
	assert_int_equal(svc_msg_dec_feed(&d, chunk, sizeof(chunk), &used, NULL), 0);
	assert_true(d.cap <= 4096);
	svc_msg_dec_free(&d);

	/* a tighter cap per decoder */
	hdr[5] = 0;
	hdr[6] = 0x01; /* 256 */
	svc_msg_dec_init(&d, 255);
	assert_int_equal(svc_msg_dec_feed(&d, hdr, sizeof(hdr), &used, NULL), -EMSGSIZE);
	svc_msg_dec_free(&d);
	assert_int_equal(svc_msg_decode(&m, hdr, sizeof(hdr), 256), -EAGAIN);
}

/* Several messages back to back, split at pseudo-random points (fixed
 * seed): every message comes out intact and in order. */
static void test_stream_split(void **state)
{
	uint8_t payload[5000], wire[8 * 6000], rnd[4096];
	struct svc_msg msgs[8];
	struct svc_msg_dec d;
	size_t total = 0, pos = 0, got = 0, r = 0;

	tu_fill(payload, sizeof(payload), 42);
	tu_fill(rnd, sizeof(rnd), 43);
	for (size_t i = 0; i < 8; i++) {
		size_t n;

		if (i % 2 == 0)
			msgs[i] = (struct svc_msg){.type = SVC_MSG_STREAM_DATA,
						   .payload = payload + i,
						   .payload_len = (i * 997) % 5000};
		else
			msgs[i] = (struct svc_msg){.type = SVC_MSG_REQUEST,
						   .service = "echo",
						   .service_len = 4,
						   .method = "m",
						   .method_len = 1,
						   .payload = payload,
						   .payload_len = i * 300};
		assert_int_equal(svc_msg_encode(&msgs[i], wire + total, sizeof(wire) - total, &n),
				 0);
		total += n;
	}
	svc_msg_dec_init(&d, 0);
	while (pos < total) {
		size_t step = 1 + rnd[r++ % sizeof(rnd)] * 7u, used;
		const struct svc_msg *m = NULL;
		int rc;

		if (step > total - pos)
			step = total - pos;
		while (step) {
			rc = svc_msg_dec_feed(&d, wire + pos, step, &used, &m);
			assert_true(rc == 0 || rc == 1);
			pos += used;
			step -= used;
			if (rc == 1) {
				assert_msg_eq(m, &msgs[got]);
				got++;
			}
		}
	}
	assert_int_equal(got, 8);
	svc_msg_dec_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),	   cmocka_unit_test(test_all_types_roundtrip),
	    cmocka_unit_test(test_encode_rejects), cmocka_unit_test(test_truncated_every_length),
	    cmocka_unit_test(test_bad_headers),	   cmocka_unit_test(test_lying_length),
	    cmocka_unit_test(test_stream_split),   cmocka_unit_test(test_assertion),
	};

	return cmocka_run_group_tests_name("service_msg", tests, NULL, NULL);
}
