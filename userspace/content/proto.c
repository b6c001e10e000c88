// SPDX-License-Identifier: MIT
/*
 * Wire format of the content fetch protocol (stream type CONTENT_ST_FETCH,
 * docs/PROTOCOL.md "Content"): request framing and encoding, answer
 * framing, the INFO / CHUNK / HAVE / PEERS answer bodies, and address
 * comparison (cn_same_addr) for the peer lists. Pure: no I/O, no locks, no
 * store; serve.c (the provider) and the download's files call it, and
 * so does tests/fuzz/fuzz_content_proto.c. Every length is checked here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "content/chunkbuf.h"
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
	case CONTENT_OP_HAVE:
	case CONTENT_OP_PEERS:
		return 33;
	case CONTENT_OP_CHUNK:
	case CONTENT_OP_HAVE_HELD:
	case CONTENT_OP_HAVE_IDLE:
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
	if (q->op == CONTENT_OP_HAVE_HELD || q->op == CONTENT_OP_HAVE_IDLE) {
		put_be(out + 33, q->held_first, 4);
		put_be(out + 37, q->held_mask, 4);
	}
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
	if (q->op == CONTENT_OP_HAVE_HELD || q->op == CONTENT_OP_HAVE_IDLE) {
		q->held_first = (uint32_t)get_be(buf + 33, 4);
		q->held_mask = (uint32_t)get_be(buf + 37, 4);
	}
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

void cn_ans_free(struct cn_ans *a)
{
	if (a->buf && a->pad)
		cn_buf_free(a->buf - a->pad); /* a whole answer's: chunkbuf.c */
	else
		free(a->buf);
	a->buf = NULL;
	a->cap = a->len = a->pad = 0;
}

int cn_ans_put_chunk(struct cn_ans *a, struct cstore *cs, const uint8_t *id, uint64_t index,
		     size_t len)
{
	void *base;
	int rc;

	if (!a->pad) /* not a whole answer's buffer: the store copies */
		return cstore_put_chunk(cs, id, index, a->buf + CN_ANS_HEAD, len);
	base = a->buf - a->pad;
	rc = cstore_put_chunk_later(cs, id, index, &base, a->pad + a->cap, a->pad + CN_ANS_HEAD,
				    len);
	if (base != a->buf - a->pad) {
		/* taken: the buffer of the chunk it replaced, if any, is this
		 * answer's now (the same shape), else one is made for the next */
		uint8_t *nb = base ? (uint8_t *)base + a->pad : NULL;

		a->buf = nb;
		a->len = 0;
		if (!nb)
			a->cap = a->pad = 0;
	}
	return rc;
}

/* Room for want bytes, the body aligned (align) or not; keeps a->len
 * bytes already received. */
static int ans_grow(struct cn_ans *a, size_t want, int align)
{
	const size_t pad = CN_ANS_ALIGN - CN_ANS_HEAD;
	size_t keep = a->len;
	void *base = NULL;
	uint8_t *nb;

	if (!align && !a->pad) {
		nb = realloc(a->buf, want);
		if (!nb)
			return -ENOMEM;
		a->buf = nb;
		a->cap = want;
		return 0;
	}
	if (!(base = align ? cn_buf_alloc(pad + want) : malloc(want)))
		return -ENOMEM;
	nb = (uint8_t *)base + (align ? pad : 0);
	if (keep)
		memcpy(nb, a->buf, keep);
	cn_ans_free(a);
	a->buf = nb;
	a->cap = want;
	a->len = keep;
	a->pad = align ? pad : 0;
	return 0;
}

int cn_ans_feed(struct cn_ans *a, const uint8_t *data, size_t len)
{
	size_t want, need;
	int rc;

	if (a->len + len > a->limit)
		return -EMSGSIZE;
	/* a chunk answer into a buffer kept from an answer of another kind */
	if (a->len + len > a->cap || (a->whole && !a->pad && !a->len)) {
		want = a->whole ? a->limit : 2 * (a->len + len) + 65536;
		if (want > a->limit)
			want = a->limit;
		if (want < a->cap)
			want = a->cap;
		rc = ans_grow(a, want, a->whole);
		if (rc)
			return rc;
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

int cn_ans_feed_mid(struct cn_ans *a, const uint8_t *data, size_t len)
{
	size_t need;

	if (a->len < CN_ANS_HEAD || len > a->cap - a->len)
		return 0;
	need = CN_ANS_HEAD + (size_t)get_be(a->buf + 1, 4);
	if (need > a->limit || a->len >= need || len >= need - a->len)
		return 0;
	memcpy(a->buf + a->len, data, len);
	a->len += len;
	return 1;
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

void cn_have_head(uint8_t out[CN_INFO_HEAD], uint64_t size, uint64_t n)
{
	cn_ans_head(out, CONTENT_ST_OK, (uint32_t)(CN_HAVE_ANSWER(n) - CN_ANS_HEAD));
	put_be(out + 5, size, 8);
	put_be(out + 13, n, 8);
}

int cn_have_decode(struct cn_info *in, const uint8_t *ans, size_t len, uint64_t max_n)
{
	uint64_t size, n;

	if (len < CN_INFO_HEAD)
		return -EBADMSG;
	size = get_be(ans + 5, 8);
	n = get_be(ans + 13, 8);
	if (n != b3tree_nchunks(size) || n > max_n || len != CN_HAVE_ANSWER(n))
		return -EBADMSG;
	in->size = size;
	in->n = n;
	in->cvs = NULL;
	in->bits = ans + CN_INFO_HEAD;
	return 0;
}

/* Addresses as PEERS answers and the swarm tables hold them. */
int cn_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
}

size_t cn_peers_encode(uint8_t *out, const struct sockaddr_storage *addrs, size_t n)
{
	size_t n4 = 0, n6 = 0, off = CN_ANS_HEAD + 2;

	/* IPv4 entries first, then IPv6 */
	for (int fam = 0; fam < 2; fam++)
		for (size_t i = 0; i < n && n4 + n6 < CN_PEX_MAX; i++) {
			if (!fam && addrs[i].ss_family == AF_INET) {
				const struct sockaddr_in *a = (const void *)&addrs[i];

				if (!a->sin_port)
					continue;
				memcpy(out + off, &a->sin_addr, 4);
				memcpy(out + off + 4, &a->sin_port, 2);
				off += 6;
				n4++;
			} else if (fam && addrs[i].ss_family == AF_INET6) {
				const struct sockaddr_in6 *a = (const void *)&addrs[i];

				if (!a->sin6_port)
					continue;
				memcpy(out + off, &a->sin6_addr, 16);
				memcpy(out + off + 16, &a->sin6_port, 2);
				off += 18;
				n6++;
			}
		}
	cn_ans_head(out, CONTENT_ST_OK, (uint32_t)(off - CN_ANS_HEAD));
	out[CN_ANS_HEAD] = (uint8_t)n4;
	out[CN_ANS_HEAD + 1] = (uint8_t)n6;
	return off;
}

int cn_peers_decode(const uint8_t *ans, size_t len, struct sockaddr_storage *out, size_t cap)
{
	size_t n4, n6, off = CN_ANS_HEAD + 2, k = 0;

	if (len < CN_ANS_HEAD + 2 || ans[0] != CONTENT_ST_OK ||
	    get_be(ans + 1, 4) != len - CN_ANS_HEAD)
		return -EBADMSG;
	n4 = ans[CN_ANS_HEAD];
	n6 = ans[CN_ANS_HEAD + 1];
	if (n4 + n6 > CN_PEX_MAX || len != off + n4 * 6 + n6 * 18)
		return -EBADMSG;
	for (size_t i = 0; i < n4 + n6; i++) {
		int v6 = i >= n4;
		const uint8_t *e = ans + off;
		const uint8_t *port = e + (v6 ? 16 : 4);

		off += v6 ? 18 : 6;
		if (!port[0] && !port[1])
			return -EBADMSG;
		if (k == cap)
			continue;
		memset(&out[k], 0, sizeof(out[k]));
		if (v6) {
			struct sockaddr_in6 *a = (void *)&out[k];

			a->sin6_family = AF_INET6;
			memcpy(&a->sin6_addr, e, 16);
			memcpy(&a->sin6_port, port, 2);
		} else {
			struct sockaddr_in *a = (void *)&out[k];

			a->sin_family = AF_INET;
			memcpy(&a->sin_addr, e, 4);
			memcpy(&a->sin_port, port, 2);
		}
		k++;
	}
	return (int)k;
}
