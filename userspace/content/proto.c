// SPDX-License-Identifier: MIT
/*
 * Wire format of the content fetch protocol (stream type CONTENT_ST_FETCH,
 * docs/PROTOCOL.md "Content"): request framing and encoding, answer
 * framing, and the INFO / CHUNK answer bodies. Pure: no I/O, no locks, no
 * store; serve.c (the provider) and swarm.c (the downloader) call it, and
 * so does tests/fuzz/fuzz_content_proto.c. Every length is checked here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "content/content_node_int.h"

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

size_t cn_req_len(uint8_t op)
{
	switch (op) {
	case CONTENT_OP_INFO:
		return 33;
	case CONTENT_OP_CHUNK:
		return 41;
	case CONTENT_OP_MANIFEST:
		return 21;
	default:
		return 0;
	}
}

int cn_req_encode(const struct cn_wreq *q, uint8_t out[CN_REQ_MAX])
{
	size_t len = cn_req_len(q->op);

	if (!len)
		return -EINVAL;
	out[0] = q->op;
	memcpy(out + 1, q->id, q->op == CONTENT_OP_MANIFEST ? MANIFEST_SHARE_ID_LEN : 32);
	if (q->op == CONTENT_OP_CHUNK)
		put_be(out + 33, q->index, 8);
	return (int)len;
}

int cn_req_decode(struct cn_wreq *q, const uint8_t *buf, size_t len)
{
	memset(q, 0, sizeof(*q));
	if (!len || cn_req_len(buf[0]) != len)
		return -EPROTO;
	q->op = buf[0];
	memcpy(q->id, buf + 1, q->op == CONTENT_OP_MANIFEST ? MANIFEST_SHARE_ID_LEN : 32);
	if (q->op == CONTENT_OP_CHUNK)
		q->index = get_be(buf + 33, 8);
	return 0;
}

int cn_req_feed(uint8_t *buf, uint8_t *blen, const uint8_t **data, size_t *len)
{
	size_t need, take;

	if (!*len)
		return 0;
	need = cn_req_len(*blen ? buf[0] : (*data)[0]);
	if (!need || *blen >= need)
		return -EPROTO;
	take = need - *blen < *len ? need - *blen : *len;
	memcpy(buf + *blen, *data, take);
	*blen = (uint8_t)(*blen + take);
	*data += take;
	*len -= take;
	return *blen == need;
}

void cn_ans_head(uint8_t out[CN_ANS_HEAD], uint8_t status, uint32_t body_len)
{
	out[0] = status;
	put_be(out + 1, body_len, 4);
}

int cn_ans_feed(struct cn_ans *a, const uint8_t *data, size_t len)
{
	size_t want, need;
	uint8_t *nb;

	if (a->len + len > a->limit)
		return -EMSGSIZE;
	if (a->len + len > a->cap) {
		want = a->whole ? a->limit : 2 * (a->len + len) + 65536;
		if (want > a->limit)
			want = a->limit;
		nb = realloc(a->buf, want);
		if (!nb)
			return -ENOMEM;
		a->buf = nb;
		a->cap = want;
	}
	if (len)
		memcpy(a->buf + a->len, data, len);
	a->len += len;
	if (a->len < CN_ANS_HEAD)
		return 0;
	need = CN_ANS_HEAD + (size_t)get_be(a->buf + 1, 4);
	if (need > a->limit || a->len > need)
		return -EPROTO;
	return a->len == need;
}

int cn_ans_body(const uint8_t *ans, size_t len, const uint8_t **body, size_t *blen)
{
	if (len < CN_ANS_HEAD || get_be(ans + 1, 4) != len - CN_ANS_HEAD)
		return -EBADMSG;
	*body = ans + CN_ANS_HEAD;
	*blen = len - CN_ANS_HEAD;
	return 0;
}

void cn_info_head(uint8_t out[CN_INFO_HEAD], uint64_t size, uint64_t n)
{
	cn_ans_head(out, CONTENT_ST_OK, (uint32_t)(CN_INFO_ANSWER(n) - CN_ANS_HEAD));
	put_be(out + 5, size, 8);
	put_be(out + 13, n, 8);
}

int cn_info_decode(struct cn_info *in, const uint8_t *ans, size_t len, uint64_t max_n)
{
	uint64_t size, n;

	if (len < CN_INFO_HEAD)
		return -EBADMSG;
	size = get_be(ans + 5, 8);
	n = get_be(ans + 13, 8);
	/* n first: CN_INFO_ANSWER(n) cannot wrap once n <= max_n. */
	if (n != b3tree_nchunks(size) || n > max_n || len != CN_INFO_ANSWER(n))
		return -EBADMSG;
	in->size = size;
	in->n = n;
	in->cvs = ans + CN_INFO_HEAD;
	in->bits = ans + CN_INFO_HEAD + n * 32;
	return 0;
}

int cn_chunk_check(const uint8_t *ans, size_t len, uint64_t want)
{
	if (len < CN_ANS_HEAD || get_be(ans + 1, 4) != want || len != CN_ANS_HEAD + want)
		return -EBADMSG;
	return 0;
}
