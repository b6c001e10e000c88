// SPDX-License-Identifier: MIT
/*
 * The share head push's wire format (userspace/content/watch_wire.c,
 * docs/PROTOCOL.md "Share head push"): the vectors of the docs, round
 * trips, every prefix "need more", and a table of hostile requests and
 * frames, each refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "content/watch.h"

static void unhex(const char *h, uint8_t *out, size_t *len)
{
	size_t n = 0;

	for (; h[0] && h[1]; h += 2) {
		unsigned int b;

		assert_int_equal(sscanf(h, "%2x", &b), 1);
		out[n++] = (uint8_t)b;
	}
	*len = n;
}

/* docs/PROTOCOL.md: a request for "news" and "photos". */
static const char *const REQ_HEX = "0102046e6577730670686f746f73";
/* docs/PROTOCOL.md: NOTIFY of "news" seq 2, signature bytes 0x11 x 64,
 * value d2:ih20:<00..13>e. */
static const char *const NOTIFY_HEX =
    "4e046e6577730000000000000002"
    "11111111111111111111111111111111111111111111111111111111111111111111111111111111"
    "111111111111111111111111111111111111111111111111"
    "001d64323a696832303a000102030405060708090a0b0c0d0e0f1011121365";

static void test_request(void **state)
{
	struct cn_watch_names w = {0}, back;
	uint8_t out[CN_WATCH_REQ_MAX], want[64];
	size_t wl;
	int n;

	(void)state;
	w.n = 2;
	w.len[0] = 4;
	memcpy(w.name[0], "news", 4);
	w.len[1] = 6;
	memcpy(w.name[1], "photos", 6);
	n = cn_watch_req_encode(&w, out);
	unhex(REQ_HEX, want, &wl);
	assert_int_equal(n, (int)wl);
	assert_memory_equal(out, want, wl);
	assert_int_equal(cn_watch_req_decode(out, (size_t)n, &back), n);
	assert_int_equal(back.n, 2);
	assert_string_equal(back.name[1], "photos");
	for (int k = 0; k < n; k++)
		assert_int_equal(cn_watch_req_decode(out, (size_t)k, &back), 0);
	/* bytes after a request are the caller's to refuse: the length says */
	out[n] = 9;
	assert_int_equal(cn_watch_req_decode(out, (size_t)n + 1, &back), n);
	/* the most names, each the longest */
	w.n = CN_WATCH_NAMES;
	for (unsigned int i = 0; i < w.n; i++) {
		w.len[i] = MANIFEST_MAX_NAME;
		memset(w.name[i], 'a' + (int)i, MANIFEST_MAX_NAME);
	}
	n = cn_watch_req_encode(&w, out);
	assert_int_equal(n, CN_WATCH_REQ_MAX);
	assert_int_equal(cn_watch_req_decode(out, (size_t)n, &back), n);
	w.n = CN_WATCH_NAMES + 1;
	assert_int_equal(cn_watch_req_encode(&w, out), -EINVAL);
	w.n = 0;
	assert_int_equal(cn_watch_req_encode(&w, out), -EINVAL);
}

static void test_request_hostile(void **state)
{
	static const char *const bad[] = {
	    "02",		   /* version 2 */
	    "0100",		   /* no name */
	    "0111",		   /* 17 names */
	    "010100",		   /* an empty name */
	    "010141",		   /* a 65-byte name */
	    "010102ff61",	   /* invalid UTF-8: not a share name */
	    "01010300610a",	   /* NUL in a name */
	};
	struct cn_watch_names w;
	uint8_t b[128];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unhex(bad[i], b, &len);
		if (cn_watch_req_decode(b, len, &w) != -EPROTO)
			fail_msg("request %s not refused", bad[i]);
	}
}

static void test_notify(void **state)
{
	uint8_t sig[64], v[64], out[CN_WATCH_FRAME_MAX], want[256];
	struct cn_watch_frame f;
	size_t vl, wl;
	int n;

	(void)state;
	memset(sig, 0x11, sizeof(sig));
	memcpy(v, "d2:ih20:", 8);
	for (int i = 0; i < 20; i++)
		v[8 + i] = (uint8_t)i;
	v[28] = 'e';
	vl = 29;
	unhex(NOTIFY_HEX, want, &wl);
	n = cn_watch_notify_encode("news", 4, 2, sig, v, vl, out);
	assert_int_equal(n, (int)wl);
	assert_memory_equal(out, want, wl);
	assert_int_equal(cn_watch_frame_decode(out, (size_t)n, &f), n);
	assert_int_equal(f.type, CN_WATCH_F_NOTIFY);
	assert_int_equal(f.name_len, 4);
	assert_memory_equal(f.name, "news", 4);
	assert_int_equal(f.seq, 2);
	assert_memory_equal(f.sig, sig, 64);
	assert_int_equal(f.vlen, vl);
	for (int k = 0; k < n; k++)
		assert_int_equal(cn_watch_frame_decode(out, (size_t)k, &f), 0);
	assert_int_equal(cn_watch_notify_encode("news", 4, -1, sig, v, vl, out), -EINVAL);
	assert_int_equal(cn_watch_notify_encode("news", 4, 1, sig, v, 1001, out), -EINVAL);
	assert_int_equal(cn_watch_notify_encode("\xff", 1, 1, sig, v, vl, out), -EINVAL);
	/* ACK */
	assert_int_equal(cn_watch_ack_encode(CN_WATCH_FULL, out), 2);
	assert_int_equal(cn_watch_frame_decode(out, 2, &f), 2);
	assert_int_equal(f.type, CN_WATCH_F_ACK);
	assert_int_equal(f.status, CN_WATCH_FULL);
}

static void test_frame_hostile(void **state)
{
	static const char *const bad[] = {
	    "00",			/* unknown type */
	    "4103",			/* unknown status */
	    "4e00",			/* empty name */
	    "4e41",			/* name of 65 */
	    "4e02ff61" "0000000000000001" /* invalid UTF-8 */
	    "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
	    "000000000000000000000000000000000000000000000000" "0000",
	    "4e0161" "8000000000000000" /* negative seq */
	    "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
	    "000000000000000000000000000000000000000000000000" "0000",
	    "4e0161" "0000000000000001" /* value of 1001 */
	    "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
	    "000000000000000000000000000000000000000000000000" "03e9",
	};
	struct cn_watch_frame f;
	uint8_t b[256];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unhex(bad[i], b, &len);
		if (cn_watch_frame_decode(b, len, &f) != -EPROTO)
			fail_msg("frame %zu not refused", i);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request),
	    cmocka_unit_test(test_request_hostile),
	    cmocka_unit_test(test_notify),
	    cmocka_unit_test(test_frame_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
