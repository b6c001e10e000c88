// SPDX-License-Identifier: MIT
/* Service call messages: encoder, one-shot and incremental decoders. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weft/svc_msg.h"

static int msg_has_names(uint8_t type)
{
	return type == SVC_MSG_REQUEST || type == SVC_MSG_STREAM_OPEN;
}

static int msg_has_err(uint8_t type)
{
	return type == SVC_MSG_RESPONSE || type == SVC_MSG_STREAM_END;
}

size_t svc_msg_len(const struct svc_msg *m)
{
	size_t n = SVC_MSG_HDR_LEN + m->payload_len;

	if (msg_has_names(m->type))
		n += m->service_len + m->method_len + (m->assertion ? SVC_ASSERT_LEN : 0);
	return n;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int msg_check(const struct svc_msg *m)
{
	if (m->type < SVC_MSG_REQUEST || m->type > SVC_MSG_STREAM_END)
		return -EINVAL;
	if (m->payload_len > SVC_MSG_MAX_PAYLOAD_CEIL)
		return -EMSGSIZE;
	if (m->payload_len && !m->payload)
		return -EINVAL;
	if (msg_has_names(m->type)) {
		if (!svc_name_valid((const uint8_t *)m->service, m->service_len) ||
		    !svc_method_valid((const uint8_t *)m->method, m->method_len) || m->err ||
		    m->status)
			return -EINVAL;
	} else if (msg_has_err(m->type)) {
		if (m->err >= SVC_ERR__COUNT || m->service_len || m->method_len || m->timeout_ms ||
		    m->assertion)
			return -EINVAL;
	} else if (m->err || m->status || m->timeout_ms || m->service_len || m->method_len ||
		   m->assertion) {
		return -EINVAL;
	}
	return 0;
}

static size_t msg_put_head(const struct svc_msg *m, uint8_t *out)
{
	size_t off = SVC_MSG_HDR_LEN;

	out[0] = SVC_MSG_VERSION;
	out[1] = m->type;
	out[2] = 0;
	out[3] = 0;
	put_be32(out + 4, (uint32_t)m->payload_len);
	put_be32(out + 8, 0);
	if (msg_has_names(m->type)) {
		out[2] = (uint8_t)m->service_len;
		out[3] = (uint8_t)m->method_len | (m->assertion ? SVC_MSG_F_ASSERTION : 0);
		put_be32(out + 8, m->timeout_ms);
		memcpy(out + off, m->service, m->service_len);
		off += m->service_len;
		if (m->method_len)
			memcpy(out + off, m->method, m->method_len);
		off += m->method_len;
		if (m->assertion) {
			memcpy(out + off, m->assertion, SVC_ASSERT_LEN);
			off += SVC_ASSERT_LEN;
		}
	} else if (msg_has_err(m->type)) {
		out[2] = m->err;
		put_be32(out + 8, m->status);
	}
	return off;
}

int svc_msg_encode_head(const struct svc_msg *m, uint8_t *out, size_t cap, size_t *out_len)
{
	int err;

	if (!m || !out || !out_len)
		return -EINVAL;
	err = msg_check(m);
	if (err)
		return err;
	if (svc_msg_len(m) - m->payload_len > cap)
		return -ENOBUFS;
	*out_len = msg_put_head(m, out);
	return 0;
}

int svc_msg_encode(const struct svc_msg *m, uint8_t *out, size_t cap, size_t *out_len)
{
	size_t off;
	int err;

	if (!m || !out || !out_len)
		return -EINVAL;
	err = msg_check(m);
	if (err)
		return err;
	if (svc_msg_len(m) > cap)
		return -ENOBUFS;
	off = msg_put_head(m, out);
	if (m->payload_len)
		memcpy(out + off, m->payload, m->payload_len);
	*out_len = off + m->payload_len;
	return 0;
}

/* Check a header; on success *body = bytes that follow it. Fills the
 * scalar fields of m (*ext: 1 when an assertion follows the method). */
static int msg_parse_hdr(const uint8_t *h, size_t max_payload, struct svc_msg *m, size_t *body,
			 int *ext)
{
	uint32_t plen = get_be32(h + 4), word = get_be32(h + 8);
	unsigned int ml = h[3] & ~SVC_MSG_F_ASSERTION;

	memset(m, 0, sizeof(*m));
	*ext = 0;
	if (h[0] != SVC_MSG_VERSION || h[1] < SVC_MSG_REQUEST || h[1] > SVC_MSG_STREAM_END)
		return -EBADMSG;
	m->type = h[1];
	if (msg_has_names(m->type)) {
		if (h[2] == 0 || h[2] > SVC_NAME_MAX || ml > SVC_METHOD_MAX)
			return -EBADMSG;
		m->service_len = h[2];
		m->method_len = ml;
		*ext = !!(h[3] & SVC_MSG_F_ASSERTION);
		m->timeout_ms = word;
	} else if (msg_has_err(m->type)) {
		if (h[2] >= SVC_ERR__COUNT || h[3] != 0)
			return -EBADMSG;
		m->err = h[2];
		m->status = word;
	} else if (h[2] || h[3] || word) {
		return -EBADMSG;
	}
	if (plen > max_payload)
		return -EMSGSIZE;
	m->payload_len = plen;
	*body = m->service_len + m->method_len + (*ext ? SVC_ASSERT_LEN : 0) + plen;
	return 0;
}

/* Point m's variable fields into body (already complete) and check names. */
static int msg_parse_body(struct svc_msg *m, const uint8_t *body, int ext)
{
	size_t a = ext ? SVC_ASSERT_LEN : 0;

	m->service = (const char *)body;
	m->method = (const char *)body + m->service_len;
	m->assertion = ext ? body + m->service_len + m->method_len : NULL;
	m->payload = body + m->service_len + m->method_len + a;
	if (msg_has_names(m->type) &&
	    (!svc_name_valid((const uint8_t *)m->service, m->service_len) ||
	     !svc_method_valid((const uint8_t *)m->method, m->method_len)))
		return -EBADMSG;
	if (!msg_has_names(m->type))
		m->service = m->method = NULL;
	return 0;
}

static size_t msg_cap_payload(size_t max_payload)
{
	if (!max_payload)
		return SVC_MSG_DEFAULT_MAX_PAYLOAD;
	return max_payload > SVC_MSG_MAX_PAYLOAD_CEIL ? SVC_MSG_MAX_PAYLOAD_CEIL : max_payload;
}

long svc_msg_decode(struct svc_msg *m, const uint8_t *buf, size_t len, size_t max_payload)
{
	size_t body;
	int err, ext;

	if (!m || (!buf && len))
		return -EINVAL;
	if (len < SVC_MSG_HDR_LEN) {
		/* Reject a bad prefix as early as possible. */
		if ((len >= 1 && buf[0] != SVC_MSG_VERSION) ||
		    (len >= 2 && (buf[1] < SVC_MSG_REQUEST || buf[1] > SVC_MSG_STREAM_END)))
			return -EBADMSG;
		return -EAGAIN;
	}
	err = msg_parse_hdr(buf, msg_cap_payload(max_payload), m, &body, &ext);
	if (err)
		return err;
	if (body > len - SVC_MSG_HDR_LEN)
		return -EAGAIN;
	err = msg_parse_body(m, buf + SVC_MSG_HDR_LEN, ext);
	if (err)
		return err;
	return (long)(SVC_MSG_HDR_LEN + body);
}

void svc_msg_dec_init(struct svc_msg_dec *d, size_t max_payload)
{
	memset(d, 0, sizeof(*d));
	d->max_payload = msg_cap_payload(max_payload);
}

void svc_msg_dec_free(struct svc_msg_dec *d)
{
	if (!d)
		return;
	free(d->buf);
	d->buf = NULL;
	d->cap = 0;
}

/* Make room for `more` bytes beyond have, growing geometrically but never
 * past need: memory follows the bytes received, not the length claimed. */
static int dec_reserve(struct svc_msg_dec *d, size_t more)
{
	size_t want = d->have + more, ncap;
	uint8_t *p;

	if (want <= d->cap)
		return 0;
	ncap = d->cap ? d->cap * 2 : 4096;
	if (ncap < want)
		ncap = want;
	if (ncap > d->need)
		ncap = d->need;
	p = realloc(d->buf, ncap);
	if (!p)
		return -ENOMEM;
	d->buf = p;
	d->cap = ncap;
	return 0;
}

int svc_msg_dec_feed(struct svc_msg_dec *d, const uint8_t *buf, size_t len, size_t *consumed,
		     const struct svc_msg **msg)
{
	size_t used = 0, take;
	int err;

	if (consumed)
		*consumed = 0;
	if (!d || (!buf && len))
		return -EINVAL;
	if (d->err)
		return d->err;
	if (d->ready) {
		/* previous message handed out: start the next one */
		d->ready = 0;
		d->hdr_have = 0;
		d->need = d->have = 0;
	}
	while (d->hdr_have < SVC_MSG_HDR_LEN && used < len) {
		d->hdr[d->hdr_have++] = buf[used++];
		/* check the fixed prefix byte by byte: fail before the rest arrives */
		if ((d->hdr_have == 1 && d->hdr[0] != SVC_MSG_VERSION) ||
		    (d->hdr_have == 2 &&
		     (d->hdr[1] < SVC_MSG_REQUEST || d->hdr[1] > SVC_MSG_STREAM_END))) {
			d->err = -EBADMSG;
			goto out;
		}
		if (d->hdr_have == SVC_MSG_HDR_LEN) {
			err = msg_parse_hdr(d->hdr, d->max_payload, &d->msg, &d->need,
					    &d->ext);
			if (err) {
				d->err = err;
				goto out;
			}
		}
	}
	if (d->hdr_have < SVC_MSG_HDR_LEN)
		goto out;
	take = d->need - d->have;
	if (take > len - used)
		take = len - used;
	if (take) {
		err = dec_reserve(d, take);
		if (err) {
			d->err = err;
			goto out;
		}
		memcpy(d->buf + d->have, buf + used, take);
		d->have += take;
		used += take;
	}
	if (d->have == d->need) {
		static const uint8_t empty[1];

		err = msg_parse_body(&d->msg, d->need ? d->buf : empty, d->ext);
		if (err) {
			d->err = err;
			goto out;
		}
		if (!d->msg.payload_len)
			d->msg.payload = NULL;
		d->ready = 1;
		if (msg)
			*msg = &d->msg;
	}
out:
	if (consumed)
		*consumed = used;
	if (d->err)
		return d->err;
	return d->ready;
}
