// SPDX-License-Identifier: MIT
/*
 * The gateway's WebSocket frame-header reader (userspace/service/ws_frame.c)
 * and the backend response-head parser of streams (backend_stream.c), as
 * tables of {input, expected}: RFC 6455 frames of every length encoding,
 * masked and not, fragmented messages against the message cap, control
 * frames, and each malformed header; every input also fed one byte at a
 * time (the reader keeps its state across reads) with the same result.
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

#include "service/svc_bhttp_int.h"
#include "service/svc_stream_int.h"

struct ws_case {
	const char *what;
	const char *hex; /* the bytes, as hex (payloads only as long as needed) */
	int masked;
	uint64_t max;
	int want; /* 0, SVCN_WS_PROTOCOL, SVCN_WS_TOO_BIG */
};

static const struct ws_case WS[] = {
    {"text 5, unmasked", "810568656c6c6f", 0, 100, 0},
    {"text 5, masked", "818537fa213d7f9f4d5158", 1, 100, 0},
    {"mask bit missing (client)", "810568656c6c6f", 1, 100, SVCN_WS_PROTOCOL},
    {"mask bit set (server)", "818537fa213d7f9f4d5158", 0, 100, SVCN_WS_PROTOCOL},
    {"16-bit length at the cap", "027e0064", 0, 100, 0},
    {"16-bit length over the cap", "027e0065", 0, 100, SVCN_WS_TOO_BIG},
    {"64-bit length, 1 GiB", "827f0000000040000000", 0, 1u << 20, SVCN_WS_TOO_BIG},
    {"64-bit length, top bit", "827f8000000000000000", 0, UINT64_MAX, SVCN_WS_PROTOCOL},
    {"RSV1 (no extension)", "c10161", 0, 100, SVCN_WS_PROTOCOL},
    {"opcode 3 reserved", "830161", 0, 100, SVCN_WS_PROTOCOL},
    {"opcode 11 reserved", "8b00", 0, 100, SVCN_WS_PROTOCOL},
    {"ping 125", "897d", 0, 100, 0},
    {"ping 126", "897e007e", 0, 1000, SVCN_WS_PROTOCOL},
    {"fragmented ping", "0900", 0, 100, SVCN_WS_PROTOCOL},
    {"close with a code", "880203e8", 0, 100, 0},
    {"close with one byte", "880103", 0, 100, SVCN_WS_PROTOCOL},
    {"continuation first", "800161", 0, 100, SVCN_WS_PROTOCOL},
    {"two fragments within the cap", "01036161618003616161", 0, 6, 0},
    {"two fragments over the cap", "01036161618004616161", 0, 6, SVCN_WS_TOO_BIG},
    {"ping between fragments", "010161890080016261", 0, 10, 0},
    {"new text inside a message", "010161810161", 0, 10, SVCN_WS_PROTOCOL},
    {"cap counts per message", "8103616161810361616181036161", 0, 3, 0},
};

static size_t unhex(uint8_t *out, const char *hex)
{
	size_t n = 0;

	for (; hex[0] && hex[1]; hex += 2) {
		unsigned int v;

		sscanf(hex, "%2x", &v);
		out[n++] = (uint8_t)v;
	}
	return n;
}

static void test_ws_frames(void **state)
{
	uint8_t buf[256];

	(void)state;
	for (size_t i = 0; i < sizeof(WS) / sizeof(WS[0]); i++) {
		size_t n = unhex(buf, WS[i].hex);
		struct svcn_ws w = {0}, b = {0};
		int r, rb = 0;

		r = svcn_ws_feed(&w, buf, n, WS[i].masked, WS[i].max);
		for (size_t k = 0; k < n && !rb; k++)
			rb = svcn_ws_feed(&b, buf + k, 1, WS[i].masked, WS[i].max);
		if (r != WS[i].want || rb != WS[i].want)
			fail_msg("%s: %d (byte by byte %d), want %d", WS[i].what, r, rb, WS[i].want);
	}
}

static void test_ws_close_frame(void **state)
{
	uint8_t f[8];
	struct svcn_ws w = {0};

	(void)state;
	assert_int_equal(svcn_ws_close_frame(f, 1009, 0), 4);
	assert_memory_equal(f, "\x88\x02\x03\xf1", 4);
	assert_int_equal(svcn_ws_feed(&w, f, 4, 0, 0), 0);
	assert_true(w.closed);
	memset(&w, 0, sizeof(w));
	assert_int_equal(svcn_ws_close_frame(f, 1001, 1), 8);
	assert_int_equal(svcn_ws_feed(&w, f, 8, 1, 0), 0);
}

struct head_case {
	const char *in;
	long want; /* > 0: the head's length; 0: need more; < 0: the error */
	int status;
};

static const struct head_case HEADS[] = {
    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: weft-stream\r\n\r\nxyz", 58, 101},
    {"HTTP/1.0 403 Forbidden\r\n\r\n", 26, 403},
    {"HTTP/1.1 101\r\n\r\n", 16, 101},
    {"HTTP/1.1 101 Switching", 0, 0},
    {"HTT", 0, 0},
    {"SSH-2.0-nope\r\n\r\n", -EBADMSG, 0},
    {"HTTP/2.0 101 x\r\n\r\n", -EBADMSG, 0},
    {"HTTP/1.1 1x1 x\r\n\r\n", -EBADMSG, 0},
    {"HTTP/1.1 101 x\nUpgrade: a\r\n\r\n", -EBADMSG, 0},
    {"HTTP/1.1 099 x\r\n\r\n", -EBADMSG, 0},
};

static void test_heads(void **state)
{
	static uint8_t big[SVCN_STRM_HEAD_MAX + 10];
	int status;

	(void)state;
	for (size_t i = 0; i < sizeof(HEADS) / sizeof(HEADS[0]); i++) {
		long r;

		status = 0;
		r = svcn_bstream_head((const uint8_t *)HEADS[i].in, strlen(HEADS[i].in), &status);
		if (r != HEADS[i].want || (r > 0 && status != HEADS[i].status))
			fail_msg("head %zu: %ld status %d, want %ld %d", i, r, status, HEADS[i].want,
				 HEADS[i].status);
	}
	/* no end within the cap */
	memcpy(big, "HTTP/1.1 101 x\r\n", 16);
	memset(big + 16, 'a', sizeof(big) - 16);
	assert_int_equal(svcn_bstream_head(big, sizeof(big), &status), -EMSGSIZE);
	assert_int_equal(svcn_bstream_head(big, 1000, &status), 0);
}

static void test_request(void **state)
{
	static const char ws[] = "GET /room HTTP/1.1\r\nHost: chat\r\nWeft-Caller: forged\r\n"
				 "Upgrade: websocket\r\nweft-caller-assertion: v1 t=1 sig=00\r\n\r\n";
	uint8_t key[32], rid[16], a[SVC_ASSERT_LEN];
	struct svc_bhttp_meta m = {.service = "chat", .method = "room/1", .version = "1.2.0",
				   .caller = key, .req_id = rid, .deadline_ms = 5000};
	size_t n;
	char *out;

	(void)state;
	memset(key, 0xab, sizeof(key));
	memset(rid, 0x11, sizeof(rid));
	out = (char *)svcn_bstream_request(&m, NULL, 0, &n);
	assert_non_null(out);
	assert_memory_equal(out, "POST /room/1 HTTP/1.1\r\nHost: chat\r\n", 35);
	assert_non_null(strstr(out, "\r\nUpgrade: weft-stream\r\n"));
	assert_non_null(strstr(out, "\r\nWeft-Caller: abababab"));
	assert_non_null(strstr(out, "\r\nWeft-Service-Version: 1.2.0\r\n"));
	assert_non_null(strstr(out, "\r\nWeft-Request-Id: 11111111111111111111111111111111\r\n"));
	assert_null(strstr(out, "Weft-Caller-Assertion"));
	assert_memory_equal(out + n - 4, "\r\n\r\n", 4);
	free(out);
	/* a WebSocket's head: its own Weft-* lines go, ours come */
	memset(a, 0, sizeof(a));
	memcpy(a, rid, sizeof(rid));
	a[SVC_REQ_ID_LEN + 7] = 42;
	m.assertion = a;
	out = (char *)svcn_bstream_request(&m, (const uint8_t *)ws, sizeof(ws) - 1, &n);
	assert_non_null(out);
	assert_memory_equal(out, "GET /room HTTP/1.1\r\nHost: chat\r\nUpgrade: websocket\r\nWeft-Service: chat\r\n",
			    72);
	assert_null(strstr(out, "forged"));
	assert_null(strstr(out, "sig=00\r\n"));
	assert_non_null(strstr(out, "\r\nWeft-Caller-Assertion: v1 t=42 sig=0000"));
	assert_memory_equal(out + n - 4, "\r\n\r\n", 4);
	assert_true(strstr(out, "\r\n\r\n") == out + n - 4);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ws_frames),
	    cmocka_unit_test(test_ws_close_frame),
	    cmocka_unit_test(test_heads),
	    cmocka_unit_test(test_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
