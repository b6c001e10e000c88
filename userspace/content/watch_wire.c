// SPDX-License-Identifier: MIT
/*
 * Wire format of the share head push (stream type CONTENT_ST_WATCH,
 * docs/PROTOCOL.md "Share head push"). Pure: no I/O, no locks; watch.c
 * and tests/fuzz/fuzz_content_watch.c call it. Every length is checked
 * before it is used.
 *
 *   request (subscriber):  ver (1, =1) | n (1, 1..16) | n x (len (1) | name)
 *   ACK (publisher):       0x41 | status (1: 0 ok, 1 full, 2 malformed)
 *   NOTIFY (publisher):    0x4e | len (1) | name | seq (i64 BE, >= 0) |
 *                          sig (64) | vlen (u16 BE, <= 1000) | value
 */
#include <errno.h>
#include <string.h>

#include "content/watch.h"

static int name_ok(const char *name, size_t len)
{
	struct manifest m;

	if (!len || len > MANIFEST_MAX_NAME)
		return 0;
	manifest_init(&m);
	return manifest_set_name(&m, name, len) == 0;
}

int cn_watch_req_encode(const struct cn_watch_names *w, uint8_t *out)
{
	size_t o = 2;

	if (!w->n || w->n > CN_WATCH_NAMES)
		return -EINVAL;
	out[0] = CN_WATCH_VER;
	out[1] = (uint8_t)w->n;
	for (unsigned int i = 0; i < w->n; i++) {
		if (!name_ok(w->name[i], w->len[i]))
			return -EINVAL;
		out[o++] = w->len[i];
		memcpy(out + o, w->name[i], w->len[i]);
		o += w->len[i];
	}
	return (int)o;
}

int cn_watch_req_decode(const uint8_t *b, size_t len, struct cn_watch_names *w)
{
	size_t o = 2;

	memset(w, 0, sizeof(*w));
	if (len >= 1 && b[0] != CN_WATCH_VER)
		return -EPROTO;
	if (len >= 2 && (!b[1] || b[1] > CN_WATCH_NAMES))
		return -EPROTO;
	if (len < 2)
		return 0;
	for (unsigned int i = 0; i < b[1]; i++) {
		if (o >= len)
			return 0;
		if (!b[o] || b[o] > MANIFEST_MAX_NAME)
			return -EPROTO;
		if (len - o - 1 < b[o])
			return 0;
		if (!name_ok((const char *)b + o + 1, b[o]))
			return -EPROTO;
		w->len[i] = b[o];
		memcpy(w->name[i], b + o + 1, b[o]);
		w->name[i][b[o]] = 0;
		o += 1 + (size_t)b[o];
	}
	w->n = b[1];
	return (int)o;
}

int cn_watch_ack_encode(uint8_t status, uint8_t *out)
{
	out[0] = CN_WATCH_F_ACK;
	out[1] = status;
	return 2;
}

int cn_watch_notify_encode(const char *name, size_t name_len, int64_t seq,
			   const uint8_t sig[64], const uint8_t *v, size_t vlen, uint8_t *out)
{
	size_t o = 0;

	if (!name_ok(name, name_len) || seq < 0 || vlen > 1000)
		return -EINVAL;
	out[o++] = CN_WATCH_F_NOTIFY;
	out[o++] = (uint8_t)name_len;
	memcpy(out + o, name, name_len);
	o += name_len;
	for (int i = 7; i >= 0; i--)
		out[o++] = (uint8_t)((uint64_t)seq >> (8 * i));
	memcpy(out + o, sig, 64);
	o += 64;
	out[o++] = (uint8_t)(vlen >> 8);
	out[o++] = (uint8_t)vlen;
	memcpy(out + o, v, vlen);
	return (int)(o + vlen);
}

int cn_watch_frame_decode(const uint8_t *b, size_t len, struct cn_watch_frame *f)
{
	size_t nl, o, vlen;
	uint64_t seq = 0;

	memset(f, 0, sizeof(*f));
	if (!len)
		return 0;
	f->type = b[0];
	if (b[0] == CN_WATCH_F_ACK) {
		if (len < 2)
			return 0;
		if (b[1] > CN_WATCH_MALFORMED)
			return -EPROTO;
		f->status = b[1];
		return 2;
	}
	if (b[0] != CN_WATCH_F_NOTIFY)
		return -EPROTO;
	if (len < 2)
		return 0;
	nl = b[1];
	if (!nl || nl > MANIFEST_MAX_NAME)
		return -EPROTO;
	o = 2 + nl + 8 + 64 + 2; /* through vlen */
	if (len < o)
		return 0;
	if (!name_ok((const char *)b + 2, nl))
		return -EPROTO;
	for (int i = 0; i < 8; i++)
		seq = seq << 8 | b[2 + nl + i];
	if (seq > INT64_MAX)
		return -EPROTO;
	vlen = (size_t)b[o - 2] << 8 | b[o - 1];
	if (vlen > 1000)
		return -EPROTO;
	if (len - o < vlen)
		return 0;
	f->name = (const char *)b + 2;
	f->name_len = nl;
	f->seq = (int64_t)seq;
	f->sig = b + 2 + nl + 8;
	f->v = b + o;
	f->vlen = vlen;
	return (int)(o + vlen);
}
