// SPDX-License-Identifier: MIT
/*
 * The mailbox protocol core (stream type 0x50, docs/PROTOCOL.md
 * "Mailbox"): one framed request per stream, one framed answer. No I/O;
 * every length is checked against the frame and the limits before a byte
 * of body is read.
 */
#include <errno.h>
#include <string.h>

#include "weft/mailbox.h"

static void be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void be64(uint8_t *p, uint64_t v)
{
	be32(p, (uint32_t)(v >> 32));
	be32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static const char *const st_names[MBOX_E_MAX] = {
	"ok", "mailbox_full", "rate_limited", "too_large", "malformed", "no_mailbox", "unavailable",
};

const char *mbox_status_name(unsigned int st)
{
	return st < MBOX_E_MAX ? st_names[st] : "unknown";
}

/* Smallest and largest body of each type. */
static int body_bounds(uint8_t type, size_t *lo, size_t *hi)
{
	switch (type) {
	case MBOX_T_PUT:
		*lo = 36 + MBOX_SEAL_OVERHEAD;
		*hi = 36 + MBOX_MAX_SEALED;
		return 0;
	case MBOX_T_FETCH:
		*lo = *hi = 2;
		return 0;
	case MBOX_T_ACK:
		*lo = 2 + MBOX_ID_LEN;
		*hi = 2 + (size_t)MBOX_ACK_MAX * MBOX_ID_LEN;
		return 0;
	case MBOX_T_RESULT:
		*lo = *hi = 1 + MBOX_ID_LEN;
		return 0;
	case MBOX_T_LIST:
		*lo = 4;
		*hi = MBOX_RESP_MAX - MBOX_FRAME_HDR;
		return 0;
	default:
		return -EBADMSG;
	}
}

long mbox_frame_need(const uint8_t *buf, size_t len, size_t max)
{
	size_t lo, hi, blen;

	if (len < MBOX_FRAME_HDR)
		return 0;
	if (body_bounds(buf[0], &lo, &hi))
		return -EBADMSG;
	blen = get32(buf + 1);
	if (blen < lo || blen > hi || MBOX_FRAME_HDR + blen > max)
		return -EBADMSG;
	return (long)(MBOX_FRAME_HDR + blen);
}

static int frame_open(uint8_t *out, size_t cap, uint8_t type, size_t blen)
{
	size_t lo, hi;

	if (body_bounds(type, &lo, &hi) || blen < lo || blen > hi)
		return -EINVAL;
	if (cap < MBOX_FRAME_HDR + blen)
		return -ENOSPC;
	out[0] = type;
	be32(out + 1, (uint32_t)blen);
	return 0;
}

int mbox_req_encode(const struct mbox_req *r, uint8_t *out, size_t cap)
{
	uint8_t *b = out + MBOX_FRAME_HDR;
	size_t blen;
	int err;

	if (!r || !out)
		return -EINVAL;
	switch (r->type) {
	case MBOX_T_PUT:
		blen = 36 + r->sealed_len;
		break;
	case MBOX_T_FETCH:
		blen = 2;
		break;
	case MBOX_T_ACK:
		blen = 2 + (size_t)r->nids * MBOX_ID_LEN;
		break;
	default:
		return -EINVAL;
	}
	err = frame_open(out, cap, r->type, blen);
	if (err)
		return err;
	if (r->type == MBOX_T_PUT) {
		memcpy(b, r->recipient, MBOX_KEY_LEN);
		be32(b + 32, r->ttl_s);
		memcpy(b + 36, r->sealed, r->sealed_len);
	} else if (r->type == MBOX_T_FETCH) {
		be16(b, r->max);
	} else {
		be16(b, r->nids);
		memcpy(b + 2, r->ids, (size_t)r->nids * MBOX_ID_LEN);
	}
	return (int)(MBOX_FRAME_HDR + blen);
}

int mbox_req_parse(const uint8_t *buf, size_t len, struct mbox_req *r)
{
	const uint8_t *b = buf + MBOX_FRAME_HDR;
	long need;
	size_t blen;

	if (!buf || !r)
		return -EBADMSG;
	need = mbox_frame_need(buf, len, MBOX_REQ_MAX);
	if (need <= 0 || (size_t)need != len)
		return -EBADMSG;
	blen = len - MBOX_FRAME_HDR;
	memset(r, 0, sizeof(*r));
	r->type = buf[0];
	switch (r->type) {
	case MBOX_T_PUT:
		memcpy(r->recipient, b, MBOX_KEY_LEN);
		r->ttl_s = get32(b + 32);
		r->sealed = b + 36;
		r->sealed_len = blen - 36;
		return r->sealed[0] == MBOX_SEAL_VERSION ? 0 : -EBADMSG;
	case MBOX_T_FETCH:
		r->max = get16(b);
		return r->max ? 0 : -EBADMSG;
	case MBOX_T_ACK:
		r->nids = get16(b);
		r->ids = b + 2;
		return r->nids && blen == 2 + (size_t)r->nids * MBOX_ID_LEN ? 0 : -EBADMSG;
	default:
		return -EBADMSG; /* an answer's type */
	}
}

int mbox_result_encode(uint8_t status, const uint8_t id[MBOX_ID_LEN], uint8_t *out, size_t cap)
{
	int err = frame_open(out, cap, MBOX_T_RESULT, 1 + MBOX_ID_LEN);

	if (err)
		return err;
	out[MBOX_FRAME_HDR] = status;
	if (id)
		memcpy(out + MBOX_FRAME_HDR + 1, id, MBOX_ID_LEN);
	else
		memset(out + MBOX_FRAME_HDR + 1, 0, MBOX_ID_LEN);
	return (int)(MBOX_FRAME_HDR + 1 + MBOX_ID_LEN);
}

int mbox_result_parse(const uint8_t *buf, size_t len, uint8_t *status, uint8_t id[MBOX_ID_LEN])
{
	if (!buf || len != MBOX_FRAME_HDR + 1 + MBOX_ID_LEN || buf[0] != MBOX_T_RESULT ||
	    get32(buf + 1) != 1 + MBOX_ID_LEN)
		return -EBADMSG;
	*status = buf[MBOX_FRAME_HDR];
	if (id)
		memcpy(id, buf + MBOX_FRAME_HDR + 1, MBOX_ID_LEN);
	return 0;
}

void mbox_list_begin(struct mbox_list_w *w, uint8_t *out, size_t cap)
{
	w->out = out;
	w->cap = cap;
	w->len = MBOX_FRAME_HDR + 4;
	w->n = 0;
}

int mbox_list_add(struct mbox_list_w *w, const struct mbox_item *it)
{
	uint8_t *p;

	if (w->n >= MBOX_FETCH_MAX || it->len > MBOX_MAX_SEALED)
		return -ENOSPC;
	/* The first message always fits (MBOX_RESP_MAX), later ones only
	 * within MBOX_LIST_MAX_BYTES. */
	if (w->cap < w->len + MBOX_LIST_ENTRY_HDR + it->len ||
	    (w->n && w->len + MBOX_LIST_ENTRY_HDR + it->len >
			     MBOX_FRAME_HDR + 4 + MBOX_LIST_MAX_BYTES))
		return -ENOSPC;
	p = w->out + w->len;
	memcpy(p, it->id, MBOX_ID_LEN);
	memcpy(p + 16, it->sender, MBOX_KEY_LEN);
	be64(p + 48, it->ts);
	be32(p + 56, (uint32_t)it->len);
	memcpy(p + MBOX_LIST_ENTRY_HDR, it->sealed, it->len);
	w->len += MBOX_LIST_ENTRY_HDR + it->len;
	w->n++;
	return 0;
}

int mbox_list_end(struct mbox_list_w *w, uint8_t status, int more)
{
	if (w->cap < MBOX_FRAME_HDR + 4)
		return -ENOSPC;
	w->out[0] = MBOX_T_LIST;
	be32(w->out + 1, (uint32_t)(w->len - MBOX_FRAME_HDR));
	w->out[MBOX_FRAME_HDR] = status;
	w->out[MBOX_FRAME_HDR + 1] = more ? 1 : 0;
	be16(w->out + MBOX_FRAME_HDR + 2, w->n);
	return (int)w->len;
}

int mbox_list_parse(const uint8_t *buf, size_t len, uint8_t *status, int *more,
		    struct mbox_item *items, unsigned int cap, unsigned int *n)
{
	const uint8_t *p, *end = buf + len;
	unsigned int cnt, i;
	long need;

	if (!buf || !items || !n)
		return -EBADMSG;
	need = mbox_frame_need(buf, len, MBOX_RESP_MAX);
	if (need <= 0 || (size_t)need != len || buf[0] != MBOX_T_LIST)
		return -EBADMSG;
	*status = buf[MBOX_FRAME_HDR];
	if (buf[MBOX_FRAME_HDR + 1] > 1)
		return -EBADMSG;
	*more = buf[MBOX_FRAME_HDR + 1];
	cnt = get16(buf + MBOX_FRAME_HDR + 2);
	if (cnt > MBOX_FETCH_MAX)
		return -EBADMSG;
	if (cnt > cap)
		return -ENOSPC;
	p = buf + MBOX_FRAME_HDR + 4;
	for (i = 0; i < cnt; i++) {
		uint32_t l;

		if ((size_t)(end - p) < MBOX_LIST_ENTRY_HDR)
			return -EBADMSG;
		l = get32(p + 56);
		if (l < MBOX_SEAL_OVERHEAD || l > MBOX_MAX_SEALED ||
		    (size_t)(end - p) - MBOX_LIST_ENTRY_HDR < l)
			return -EBADMSG;
		memcpy(items[i].id, p, MBOX_ID_LEN);
		memcpy(items[i].sender, p + 16, MBOX_KEY_LEN);
		items[i].ts = get64(p + 48);
		items[i].len = l;
		items[i].sealed = p + MBOX_LIST_ENTRY_HDR;
		p += MBOX_LIST_ENTRY_HDR + l;
	}
	if (p != end)
		return -EBADMSG;
	*n = cnt;
	return 0;
}
