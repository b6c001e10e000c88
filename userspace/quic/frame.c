// SPDX-License-Identifier: MIT
/*
 * weft frame layer: varint type, varint length, payload (docs/QUIC.md).
 * Varints are RFC 9000 section 16 varints, minimally encoded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <weft/quic.h>

int quic_varint_encode(uint8_t *buf, size_t cap, uint64_t v)
{
	size_t n, i;
	uint8_t prefix;

	if (v > QUIC_VARINT_MAX)
		return -ERANGE;
	if (v < (1ULL << 6)) {
		n = 1;
		prefix = 0x00;
	} else if (v < (1ULL << 14)) {
		n = 2;
		prefix = 0x40;
	} else if (v < (1ULL << 30)) {
		n = 4;
		prefix = 0x80;
	} else {
		n = 8;
		prefix = 0xc0;
	}
	if (cap < n)
		return -ENOBUFS;
	for (i = 0; i < n; i++)
		buf[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	buf[0] |= prefix;
	return (int)n;
}

int quic_varint_decode(const uint8_t *buf, size_t len, uint64_t *v)
{
	size_t n, i;
	uint64_t x;

	if (len < 1)
		return -EAGAIN;
	n = (size_t)1 << (buf[0] >> 6);
	if (len < n)
		return -EAGAIN;
	x = buf[0] & 0x3f;
	for (i = 1; i < n; i++)
		x = (x << 8) | buf[i];
	/* Minimal encoding only: one message, one byte string. */
	if ((n == 2 && x < (1ULL << 6)) || (n == 4 && x < (1ULL << 14)) ||
	    (n == 8 && x < (1ULL << 30)))
		return -EINVAL;
	*v = x;
	return (int)n;
}

static size_t varint_len(uint64_t v)
{
	if (v < (1ULL << 6))
		return 1;
	if (v < (1ULL << 14))
		return 2;
	if (v < (1ULL << 30))
		return 4;
	return 8;
}

size_t quic_frame_size(uint64_t type, size_t plen)
{
	if (type > QUIC_VARINT_MAX || (uint64_t)plen > QUIC_VARINT_MAX)
		return 0;
	return varint_len(type) + varint_len(plen) + plen;
}

ssize_t quic_frame_encode(uint8_t *buf, size_t cap, uint64_t type, const uint8_t *payload,
			  size_t plen)
{
	size_t need = quic_frame_size(type, plen);
	int a, b;

	if (!need)
		return -ERANGE;
	if (cap < need)
		return -ENOBUFS;
	a = quic_varint_encode(buf, cap, type);
	if (a < 0)
		return a;
	b = quic_varint_encode(buf + a, cap - (size_t)a, plen);
	if (b < 0)
		return b;
	if (plen)
		memcpy(buf + a + b, payload, plen);
	return (ssize_t)need;
}

ssize_t quic_frame_decode(const uint8_t *buf, size_t len, size_t max_payload,
			  struct quic_frame *f)
{
	uint64_t type, plen;
	int a, b;

	a = quic_varint_decode(buf, len, &type);
	if (a < 0)
		return a;
	b = quic_varint_decode(buf + a, len - (size_t)a, &plen);
	if (b < 0)
		return b;
	if (plen > max_payload)
		return -EMSGSIZE;
	if (len - (size_t)a - (size_t)b < plen)
		return -EAGAIN;
	f->type = type;
	f->payload = buf + a + b;
	f->len = (size_t)plen;
	return (ssize_t)((size_t)a + (size_t)b + (size_t)plen);
}

struct quic_framer {
	size_t max_payload;
	size_t cap;   /* max_payload + 16: one frame with both varints */
	size_t alloc; /* bytes allocated in buf, grows on demand up to cap */
	size_t len;   /* bytes of an incomplete frame held */
	int err;
	uint8_t *buf;
};

int quic_framer_new(struct quic_framer **out, size_t max_payload)
{
	struct quic_framer *fr;

	*out = NULL;
	if (!max_payload)
		max_payload = QUIC_FRAME_MAX_PAYLOAD;
	if (max_payload > QUIC_VARINT_MAX || max_payload > SIZE_MAX - 16)
		return -EINVAL;
	fr = calloc(1, sizeof(*fr));
	if (!fr)
		return -ENOMEM;
	fr->max_payload = max_payload;
	fr->cap = max_payload + 16;
	*out = fr;
	return 0;
}

void quic_framer_free(struct quic_framer *fr)
{
	if (!fr)
		return;
	free(fr->buf);
	free(fr);
}

size_t quic_framer_pending(const struct quic_framer *fr)
{
	return fr->len;
}

static int framer_reserve(struct quic_framer *fr, size_t need)
{
	size_t ncap;
	uint8_t *nb;

	if (need <= fr->alloc)
		return 0;
	ncap = fr->alloc ? fr->alloc : 256;
	while (ncap < need)
		ncap *= 2;
	if (ncap > fr->cap)
		ncap = fr->cap;
	nb = realloc(fr->buf, ncap);
	if (!nb)
		return -ENOMEM;
	fr->buf = nb;
	fr->alloc = ncap;
	return 0;
}

int quic_framer_push(struct quic_framer *fr, const uint8_t *buf, size_t len,
		     int (*fn)(void *arg, const struct quic_frame *f), void *arg)
{
	struct quic_frame f;
	int frames = 0, rc;
	ssize_t n;

	if (fr->err)
		return fr->err;
	while (len > 0 && fr->len > 0) {
		/* Complete the held frame first (it always fits in cap). */
		size_t take = fr->cap - fr->len;
		size_t old = fr->len;

		if (take > len)
			take = len;
		rc = framer_reserve(fr, fr->len + take);
		if (rc)
			return rc;
		memcpy(fr->buf + fr->len, buf, take);
		fr->len += take;
		n = quic_frame_decode(fr->buf, fr->len, fr->max_payload, &f);
		if (n == -EAGAIN) {
			buf += take;
			len -= take;
			continue;
		}
		if (n < 0) {
			fr->err = (int)n;
			return (int)n;
		}
		/* The frame ends inside what we just appended. */
		buf += (size_t)n - old;
		len -= (size_t)n - old;
		fr->len = 0;
		frames++;
		rc = fn(arg, &f);
		if (rc < 0)
			return rc;
	}
	while (len > 0) {
		n = quic_frame_decode(buf, len, fr->max_payload, &f);
		if (n == -EAGAIN) {
			rc = framer_reserve(fr, len);
			if (rc)
				return rc;
			memcpy(fr->buf, buf, len);
			fr->len = len;
			break;
		}
		if (n < 0) {
			fr->err = (int)n;
			return (int)n;
		}
		buf += n;
		len -= (size_t)n;
		frames++;
		rc = fn(arg, &f);
		if (rc < 0)
			return rc;
	}
	return frames;
}
