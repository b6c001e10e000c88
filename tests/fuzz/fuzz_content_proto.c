// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the content fetch protocol (stream type 0x20,
 * userspace/content/proto.c), both directions, on the same input:
 *
 * - as a request stream, the way a provider reads it (serve.c): framed
 *   with cn_req_feed in one piece and in uneven pieces (both must yield
 *   the same requests and stop at the same byte); every request framed
 *   must decode and re-encode to its own bytes;
 * - as one answer, the way a downloader reads it (swarm.c): byte 0 picks
 *   the request kind and the size limit, the rest is fed to cn_ans_feed in
 *   one piece and in uneven pieces (same outcome); a complete answer is
 *   decoded (INFO body, CHUNK length, signed manifest) and re-encoded.
 *
 * Seeds in tests/fuzz/corpus/fuzz_content_proto/. Run (docs/CONTENT.md):
 *   make fuzz && build/fuzz/fuzz_content_proto CORPUS_COPY/
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "content/content_node_int.h"
#include "weft/chunk.h"
#include "weft/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

#define MAXREQ 1024

struct reqs {
	size_t n, used; /* requests framed, bytes taken */
	int rc;		/* last cn_req_feed result */
	size_t off[MAXREQ];
};

/* Frame data as a provider does, step bytes at a time (0: all at once). */
static void frame(const uint8_t *data, size_t size, size_t step, struct reqs *out)
{
	uint8_t buf[CN_REQ_MAX];
	uint8_t blen = 0;
	size_t pos = 0, grow = step;

	memset(out, 0, sizeof(*out));
	while (pos < size) {
		size_t piece = step ? (grow < size - pos ? grow : size - pos) : size - pos;
		const uint8_t *p = data + pos;
		size_t left = piece;

		while (left) {
			out->rc = cn_req_feed(buf, &blen, &p, &left);
			if (out->rc < 0)
				break;
			check(blen <= CN_REQ_MAX);
			if (out->rc == 1) {
				struct cn_wreq q;
				uint8_t re[CN_REQ_MAX];
				size_t start = (size_t)(p - data) - blen;

				/* The request is the input's own bytes, and
				 * decodes and re-encodes to them. */
				check(memcmp(buf, data + start, blen) == 0);
				check(cn_req_decode(&q, buf, blen) == 0);
				check(cn_req_encode(&q, re) == (int)blen);
				check(memcmp(re, buf, blen) == 0);
				if (out->n < MAXREQ)
					out->off[out->n] = start;
				out->n++;
				blen = 0;
			}
		}
		pos += piece - left;
		if (out->rc < 0)
			break;
		grow = grow * 2 + 1;
	}
	out->used = pos;
}

static void requests(const uint8_t *data, size_t size)
{
	struct reqs *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct cn_wreq q;
	int one = cn_req_decode(&q, data, size);

	check(a && b);
	frame(data, size, 0, a);
	frame(data, size, 1, b);
	check(a->n == b->n && a->used == b->used && a->rc == b->rc);
	check(memcmp(a->off, b->off, sizeof(size_t) * (a->n < MAXREQ ? a->n : MAXREQ)) == 0);
	/* Exactly one whole request <=> the one-shot decoder accepts it. */
	check((one == 0) == (a->n == 1 && a->used == size && a->rc == 1));
	if (a->rc < 0) /* stopped at an unknown op, at a request boundary */
		check(cn_req_len(data[a->used]) == 0);
	free(a);
	free(b);
}

/* Feed an answer step bytes at a time (0: at once): the last result and
 * how many bytes were fed. */
static int feed(struct cn_ans *a, const uint8_t *data, size_t size, size_t step, size_t *used)
{
	size_t pos = 0, grow = step;
	int rc = 0;

	do {
		size_t piece = step ? (grow < size - pos ? grow : size - pos) : size - pos;

		rc = cn_ans_feed(a, data + pos, piece);
		pos += piece;
		grow = grow * 3 + 1;
	} while (rc == 0 && pos < size);
	*used = pos;
	return rc;
}

static void info_answer(const uint8_t *ans, size_t len)
{
	static const uint8_t zero[B3TREE_ID_LEN];
	struct cn_info in;
	uint8_t *re;
	size_t blen;

	if (cn_info_decode(&in, ans, len, CN_INFO_MAX_N))
		return;
	check(len == CN_INFO_ANSWER(in.n) && in.n == b3tree_nchunks(in.size));
	blen = (size_t)((in.n + 7) / 8);
	/* Re-encode as serve_info does: header, CVs, the bits that were set. */
	re = calloc(1, len);
	check(re != NULL);
	cn_info_head(re, in.size, in.n);
	memcpy(re + CN_INFO_HEAD, in.cvs, (size_t)in.n * 32);
	for (uint64_t i = 0; i < in.n; i++)
		if ((in.bits[i / 8] >> (i % 8)) & 1)
			re[CN_INFO_HEAD + in.n * 32 + i / 8] |= (uint8_t)(1u << (i % 8));
	/* Only padding bits past n may differ (the reader ignores them). */
	if (in.n % 8)
		re[len - 1] |= (uint8_t)(ans[len - 1] & ~((1u << (in.n % 8)) - 1));
	check(blen && memcmp(re, ans, len) == 0);
	free(re);
	/* The CV list proof runs on the same untrusted bytes. */
	(void)b3tree_verify_cvs(in.cvs, in.n, in.size, zero);
}

/* HAVE: decoded, re-encoded as serve_have does; only padding bits past n
 * may differ. */
static void have_answer(const uint8_t *ans, size_t len)
{
	struct cn_info in;
	uint8_t *re;

	if (cn_have_decode(&in, ans, len, CN_INFO_MAX_N))
		return;
	check(len == CN_HAVE_ANSWER(in.n) && in.n == b3tree_nchunks(in.size) && !in.cvs);
	re = calloc(1, len);
	check(re != NULL);
	cn_have_head(re, in.size, in.n);
	memcpy(re + CN_INFO_HEAD, in.bits, len - CN_INFO_HEAD);
	check(memcmp(re, ans, len) == 0);
	free(re);
}

/* PEERS: every entry decoded re-encodes to the same bytes. */
static void peers_answer(const uint8_t *ans, size_t len)
{
	struct sockaddr_storage got[CN_PEX_MAX];
	uint8_t re[CN_PEERS_ANSWER_MAX];
	int n = cn_peers_decode(ans, len, got, CN_PEX_MAX);

	if (n < 0)
		return;
	check(n <= CN_PEX_MAX && len <= CN_PEERS_ANSWER_MAX);
	check(cn_peers_encode(re, got, (size_t)n) == len && memcmp(re, ans, len) == 0);
}

static void manifest_answer(const uint8_t *body, size_t blen)
{
	struct manifest m;
	uint8_t *re;
	size_t len;

	if (manifest_decode(&m, body, blen) != 0)
		return;
	re = malloc(blen ? blen : 1);
	check(re != NULL);
	check(manifest_encode(&m, re, blen, &len) == 0 && len == blen && !memcmp(re, body, blen));
	free(re);
	manifest_free(&m);
}

static void answer(const uint8_t *data, size_t size)
{
	/* Limits as swarm.c sets them, plus small ones that the fuzzer can
	 * overrun with short inputs. */
	static const size_t limits[4] = {0, 5, 21, 300};
	struct cn_ans a = {0}, b = {0};
	const uint8_t *body;
	size_t used_a, used_b, blen;
	int kind, ra, rb;

	if (!size)
		return;
	kind = data[0] % 3; /* 0 INFO, 1 CHUNK, 2 MANIFEST; bits 4-5: 1 HAVE, 2 PEERS */
	if (((data[0] >> 4) & 3) == 1)
		kind = 3;
	else if (((data[0] >> 4) & 3) == 2)
		kind = 4;
	a.limit = kind == 0   ? CN_INFO_ANSWER(CN_INFO_MAX_N)
		  : kind == 1 ? CN_ANS_HEAD + B3TREE_CHUNK_LEN
		  : kind == 3 ? CN_HAVE_ANSWER(CN_INFO_MAX_N)
		  : kind == 4 ? CN_PEERS_ANSWER_MAX
			      : CN_ANS_HEAD + MANIFEST_MAX_SIZE;
	if ((data[0] >> 2) & 3)
		a.limit = limits[(data[0] >> 2) & 3];
	a.whole = kind == 1 && a.limit < (1u << 20);
	b.limit = a.limit;
	b.whole = a.whole;
	data++;
	size--;
	ra = feed(&a, data, size, 0, &used_a);
	rb = feed(&b, data, size, 1, &used_b);
	check(a.len <= a.limit && a.len <= a.cap && b.len <= b.limit);
	/* Whole in one piece <=> whole in pieces, using every byte; an error
	 * in one piece is an error in pieces too, or an answer that ended
	 * before the input did. */
	if (ra == 1)
		check(rb == 1 && used_b == size && b.len == size);
	else if (ra == 0)
		check(rb == 0 && b.len == size);
	else
		check(rb < 0 || (rb == 1 && b.len < size));
	if (rb == 1 && ra == 1) {
		uint8_t head[CN_ANS_HEAD];

		check(a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0);
		check(cn_ans_body(a.buf, a.len, &body, &blen) == 0);
		cn_ans_head(head, a.buf[0], (uint32_t)blen);
		check(memcmp(head, a.buf, CN_ANS_HEAD) == 0);
		if (a.buf[0] == CONTENT_ST_OK) {
			if (kind == 0)
				info_answer(a.buf, a.len);
			else if (kind == 1)
				check(cn_chunk_check(a.buf, a.len, blen) == 0 &&
				      cn_chunk_check(a.buf, a.len, blen + 1) != 0);
			else if (kind == 3)
				have_answer(a.buf, a.len);
			else if (kind == 4)
				peers_answer(a.buf, a.len);
			else
				manifest_answer(body, blen);
		}
	}
	cn_ans_free(&a);
	cn_ans_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	requests(data, size);
	answer(data, size);
	/* The same checks on whatever the answer decoders see as a body. */
	if (size > 1) {
		struct cn_info in;

		if (cn_info_decode(&in, data, size, CN_INFO_MAX_N) == 0)
			check(in.n <= CN_INFO_MAX_N && size == CN_INFO_ANSWER(in.n));
		if (cn_have_decode(&in, data, size, CN_INFO_MAX_N) == 0)
			check(in.n <= CN_INFO_MAX_N && size == CN_HAVE_ANSWER(in.n));
		peers_answer(data, size);
	}
	return 0;
}
