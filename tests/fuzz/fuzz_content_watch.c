// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the share head push (stream type 0x21,
 * userspace/content/watch_wire.c), both directions on the same input:
 *
 * - as a watch request, the way a publisher reads it: decoded whole and
 *   from every prefix (a prefix of an accepted request is "need more",
 *   never another request); an accepted request re-encodes to exactly the
 *   bytes it used, and its names are valid share names;
 * - as a stream of frames, the way a subscriber reads it: frames decoded
 *   one after another; each accepted frame lies inside the input, a
 *   NOTIFY re-encodes to its own bytes, and every shorter prefix of it is
 *   "need more".
 *
 * Seeds in tests/fuzz/corpus/fuzz_content_watch/.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "content/watch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

static void as_request(const uint8_t *data, size_t size)
{
	struct cn_watch_names w, w2;
	uint8_t out[CN_WATCH_REQ_MAX];
	int rc = cn_watch_req_decode(data, size, &w);

	check(rc == 0 || rc == -EPROTO || (rc > 0 && (size_t)rc <= size));
	if (rc <= 0)
		return;
	check(cn_watch_req_encode(&w, out) == rc);
	check(!memcmp(out, data, (size_t)rc));
	for (int k = 0; k < rc; k++)
		check(cn_watch_req_decode(data, (size_t)k, &w2) == 0);
}

static void as_frames(const uint8_t *data, size_t size)
{
	uint8_t out[CN_WATCH_FRAME_MAX];
	struct cn_watch_frame f, g;
	size_t off = 0;

	while (off < size) {
		int rc = cn_watch_frame_decode(data + off, size - off, &f);

		check(rc == 0 || rc == -EPROTO || (rc > 0 && (size_t)rc <= size - off));
		if (rc <= 0)
			return;
		if (f.type == CN_WATCH_F_NOTIFY) {
			check(cn_watch_notify_encode(f.name, f.name_len, f.seq, f.sig, f.v, f.vlen,
						     out) == rc);
			check(!memcmp(out, data + off, (size_t)rc));
		} else {
			check(f.type == CN_WATCH_F_ACK && rc == 2 && f.status <= CN_WATCH_MALFORMED);
		}
		for (int k = 0; k < rc; k++)
			check(cn_watch_frame_decode(data + off, (size_t)k, &g) == 0);
		off += (size_t)rc;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_request(data, size);
	as_frames(data, size);
	return 0;
}
