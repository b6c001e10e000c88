// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the backend contract's response parser
 * (userspace/service/backend_http.c). Beyond "no crash": the body never
 * exceeds the cap, a complete answer has a final status (200..599) and
 * never takes bytes past its end, an error is sticky, and the answer does
 * not depend on how the bytes are split (all at once vs. one by one).
 * The streaming mode (the HTTP pass-through) gives the same outcome and
 * the same body bytes as the stored one. The pass-through's request
 * rewrite: an accepted request rewritten again is unchanged (its output
 * is what it accepts), and carries no hop-by-hop line.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "service/svc_bhttp_int.h"
#include "weft/svc_http.h"

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

/* The same input streamed in steps of `step`: outcome, bytes taken, the
 * body (joined spans) compared with the stored parse's. */
static void run_stream(const uint8_t *data, size_t size, size_t step, int want, size_t taken)
{
	struct svc_bhttp_resp p, q;
	size_t off = 0, used, sl, blen = 0, ql;
	uint8_t body[256], *qb;
	const uint8_t *span;
	int r = 0;

	svc_bhttp_resp_init(&p, 256);
	p.stream = 1;
	while (off < size) {
		size_t n = step && step < size - off ? step : size - off;

		r = svc_bhttp_resp_feed_span(&p, data + off, n, &used, &span, &sl);
		check(used <= n);
		if (sl) {
			check(span >= data + off && span + sl <= data + off + used);
			check(sl <= sizeof(body) - blen);
			memcpy(body + blen, span, sl);
			blen += sl;
		}
		off += used;
		check(!p.body);
		if (r)
			break;
	}
	if (r == 0 && (size & 1))
		r = svc_bhttp_resp_eof(&p) == 1 ? 2 : -EPIPE;
	check(r == want);
	if (r >= 1) {
		check(off == taken);
		/* the stored parse's body */
		svc_bhttp_resp_init(&q, 256);
		(void)svc_bhttp_resp_feed(&q, data, taken, &used);
		if (r == 2)
			(void)svc_bhttp_resp_eof(&q);
		qb = svc_bhttp_resp_take(&q, &ql);
		check(ql == blen && (!ql || !memcmp(qb, body, ql)));
		free(qb);
		svc_bhttp_resp_free(&q);
	}
	svc_bhttp_resp_free(&p);
}

/* The request rewrite: idempotent, no hop-by-hop line left. */
static void run_req(const uint8_t *data, size_t size)
{
	uint8_t *o1 = NULL, *o2 = NULL;
	size_t l1, l2;
	unsigned int f1, f2;

	if (svc_bhttp_pass_req(data, size, &o1, &l1, &f1))
		return;
	check(svc_bhttp_pass_req(o1, l1, &o2, &l2, &f2) == 0);
	check(l1 == l2 && !memcmp(o1, o2, l1) && f1 == f2);
	for (size_t i = 0; i + 2 < l1; i++)
		if (o1[i] == '\n' && i + 1 < l1) {
			const char *h = (const char *)o1 + i + 1;
			size_t left = l1 - i - 1;

			check(!(left >= 11 && !strncasecmp(h, "connection:", 11)));
			check(!(left >= 18 && !strncasecmp(h, "transfer-encoding:", 18)));
			if (left >= 2 && h[0] == '\r')
				break; /* the body */
		}
	free(o1);
	free(o2);
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
	if (r1 != -ENOMEM) {
		run_stream(data, size, 0, r1, t1);
		run_stream(data, size, 3, r1, t1);
	}
	run_req(data, size);
	return 0;
}
