// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the backend contract's response parser
 * (userspace/service/backend_http.c). Beyond "no crash": the body never
 * exceeds the cap, a complete answer has a final status (200..599) and
 * never takes bytes past its end, an error is sticky, and the answer does
 * not depend on how the bytes are split (all at once vs. one by one).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "service/svc_bhttp_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

/* Feed in steps of `step` bytes (0 = all); the outcome, body length and
 * bytes taken. */
static int run(const uint8_t *data, size_t size, size_t step, size_t *blen, size_t *taken,
	       unsigned int *status)
{
	struct svc_bhttp_resp p;
	size_t off = 0, used;
	int r = 0;

	svc_bhttp_resp_init(&p, 256);
	while (off < size) {
		size_t n = step && step < size - off ? step : size - off;

		r = svc_bhttp_resp_feed(&p, data + off, n, &used);
		check(used <= n);
		off += used;
		check(p.body_len <= 256);
		if (r)
			break;
		check(used == n);
	}
	if (r < 0) {
		check(r == -EBADMSG || r == -EMSGSIZE || r == -ENOMEM);
		check(svc_bhttp_resp_feed(&p, data, size, &used) == r && used == 0);
		check(p.close);
	}
	if (r == 1)
		check(p.status >= 200 && p.status <= 599);
	if (r == 0 && (size & 1))
		r = svc_bhttp_resp_eof(&p) == 1 ? 2 : -EPIPE;
	*blen = p.body_len;
	*taken = off;
	*status = p.status;
	svc_bhttp_resp_free(&p);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t b1, b2, t1, t2;
	unsigned int s1, s2;
	int r1 = run(data, size, 0, &b1, &t1, &s1);
	int r2 = run(data, size, 1, &b2, &t2, &s2);

	check(r1 == r2);
	if (r1 >= 1)
		check(b1 == b2 && t1 == t2 && s1 == s2);
	return 0;
}
