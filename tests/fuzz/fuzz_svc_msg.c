// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: service call messages. The one-shot and the
 * incremental decoder (fed in uneven pieces) must agree on every input,
 * and an accepted message must re-encode to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/svc_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct svc_msg *got = NULL;
	struct svc_msg_dec d;
	struct svc_msg m;
	size_t pos = 0, step = 1;
	long one = svc_msg_decode(&m, data, size, 4096);
	int rc = 0;

	svc_msg_dec_init(&d, 4096);
	while (pos < size && rc == 0) {
		size_t used = 0, take = step < size - pos ? step : size - pos;

		rc = svc_msg_dec_feed(&d, data + pos, take, &used, &got);
		pos += used;
		step = step * 3 + 1;
	}
	if (one > 0) {
		uint8_t *out = malloc((size_t)one);
		size_t n;

		check(rc == 1 && pos == (size_t)one);
		check(got->type == m.type && got->payload_len == m.payload_len);
		check(out != NULL);
		check(svc_msg_encode(&m, out, (size_t)one, &n) == 0);
		check(n == (size_t)one && memcmp(out, data, n) == 0);
		free(out);
	} else if (one == -EAGAIN) {
		check(rc == 0);
	} else {
		check(rc == (int)one);
	}
	svc_msg_dec_free(&d);
	return 0;
}
