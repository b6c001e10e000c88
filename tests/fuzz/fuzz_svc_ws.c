// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the gateway's WebSocket frame-header reader
 * (svcn_ws_feed, userspace/service/ws_frame.c) and the stream backend's
 * response-head parser (svcn_bstream_head, backend_stream.c). The first
 * byte picks the direction (masked or not) and a message cap; the rest is
 * fed whole and again in two pieces split where the second byte says.
 * Beyond "no crash": both feeds agree (the reader keeps its state across
 * reads), a frame's payload still to pass never exceeds what a header
 * may announce, and an accepted head lies within the input and the cap,
 * ends with its blank line, and every proper prefix of it is "need more".
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "service/svc_stream_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct svcn_ws a = {0}, b = {0};
	uint64_t caps[4] = {0, 125, 65536, UINT64_MAX >> 1};
	int masked, ra, rb;
	size_t cut;
	long h;
	int status = 0;

	if (size < 2)
		return 0;
	masked = data[0] & 1;
	cut = data[1] % (size - 1);
	ra = svcn_ws_feed(&a, data + 2, size - 2, masked, caps[(data[0] >> 1) & 3]);
	rb = svcn_ws_feed(&b, data + 2, cut, masked, caps[(data[0] >> 1) & 3]);
	if (!rb)
		rb = svcn_ws_feed(&b, data + 2 + cut, size - 2 - cut, masked, caps[(data[0] >> 1) & 3]);
	check(ra == rb);
	check(ra == 0 || ra == SVCN_WS_PROTOCOL || ra == SVCN_WS_TOO_BIG);
	if (!ra) {
		check(a.left == b.left && a.msg == b.msg && a.in_msg == b.in_msg);
		check(a.left < (1ull << 63));
		check(a.hl < sizeof(a.hdr));
	}

	h = svcn_bstream_head(data, size, &status);
	check(h <= 0 || ((size_t)h <= size && (size_t)h <= SVCN_STRM_HEAD_MAX && h >= 4 &&
			 !memcmp(data + h - 4, "\r\n\r\n", 4) && status >= 100 && status <= 599));
	if (h > 0)
		for (long k = 1; k < h; k++) {
			int st;
			long p = svcn_bstream_head(data, (size_t)k, &st);

			check(p == 0 || p == -EBADMSG);
		}
	return 0;
}
