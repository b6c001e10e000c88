// SPDX-License-Identifier: MIT
/*
 * Stream send buffers of one QUIC connection: chains of blocks that
 * ngtcp2 reads in place until the peer acknowledges them (it keeps
 * pointers into sent data, so bytes never move), and the choice of the
 * next stream with bytes to send. Pure data structure: no ngtcp2 call,
 * no I/O; conn.c fills them, conn_write.c drains them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quic/quic_int.h"

#define SBLK_MIN 4096
#define SBLK_MAX 65536

struct quic_stream *quic_sbuf_find(struct quic_conn *c, int64_t id)
{
	struct quic_stream *s;

	for (s = c->streams; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void sblk_free(struct sblk *b)
{
	if (b->release)
		b->release(b->arg);
	free(b);
}

void quic_sbuf_free(struct quic_stream *s)
{
	struct sblk *b, *n;

	for (b = s->head; b; b = n) {
		n = b->next;
		sblk_free(b);
	}
	free(s);
}

void quic_sbuf_unlink(struct quic_conn *c, struct quic_stream *s)
{
	struct quic_stream **pp;

	for (pp = &c->streams; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			return;
		}
	}
}

struct quic_stream *quic_sbuf_new(struct quic_conn *c, int64_t id)
{
	struct quic_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->id = id;
	s->next = c->streams;
	c->streams = s;
	return s;
}

static void stream_link(struct quic_stream *s, struct sblk *b)
{
	if (s->tail)
		s->tail->next = b;
	else
		s->head = b;
	s->tail = b;
}

/* Reference len caller's bytes as one full block (nothing is appended to
 * it): they are read in place until acknowledged, then release(arg). */
int quic_sbuf_append_ref(struct quic_stream *s, const uint8_t *data, size_t len,
			     void (*release)(void *), void *arg)
{
	struct sblk *b = malloc(sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->next = NULL;
	b->cap = b->len = len;
	b->p = data;
	b->release = release;
	b->arg = arg;
	stream_link(s, b);
	s->total += len;
	return 0;
}

int quic_sbuf_append(struct quic_stream *s, const uint8_t *data, size_t len)
{
	while (len > 0) {
		struct sblk *b = s->tail;
		size_t n;

		if (!b || b->len == b->cap) {
			/* Blocks double while a stream keeps writing (bulk
			 * senders write a few KiB per ACK): fewer blocks, fewer
			 * vectors per packet; small messages stay in 4 KiB. */
			size_t cap = b ? b->cap * 2 : SBLK_MIN;

			if (cap < len)
				cap = len;
			cap = cap < SBLK_MIN ? SBLK_MIN : cap > SBLK_MAX ? SBLK_MAX : cap;

			b = malloc(sizeof(*b) + cap);
			if (!b)
				return -ENOMEM;
			b->next = NULL;
			b->cap = cap;
			b->len = 0;
			b->p = b->data;
			b->release = NULL;
			b->arg = NULL;
			stream_link(s, b);
		}
		n = b->cap - b->len;
		if (n > len)
			n = len;
		memcpy(b->data + b->len, data, n);
		b->len += n;
		data += n;
		len -= n;
		s->total += n;
	}
	return 0;
}

void quic_sbuf_ack(struct quic_stream *s, uint64_t end)
{
	if (end > s->acked)
		s->acked = end;
	while (s->head && s->base + s->head->len <= s->acked &&
	       (s->head->len == s->head->cap || s->head != s->tail)) {
		struct sblk *b = s->head;

		s->base += b->len;
		s->head = b->next;
		if (!s->head)
			s->tail = NULL;
		if (s->cur == b)
			s->cur = NULL;
		sblk_free(b);
	}
}

/* Vectors over unsent bytes, at most max of them and no more blocks than
 * it takes to cover want bytes (one packet's worth: every further block
 * header read is a cache miss per packet, measured ~2% of a sender);
 * returns count. */
size_t quic_sbuf_vecs(struct quic_stream *s, ngtcp2_vec *v, size_t max, size_t want)
{
	struct sblk *b = s->cur ? s->cur : s->head;
	uint64_t off = s->cur ? s->cur_base : s->base;
	size_t n = 0, got = 0;

	while (b && b->next && off + b->len <= s->sent) {
		off += b->len;
		b = b->next;
	}
	s->cur = b;
	s->cur_base = off;
	for (; b && n < max; off += b->len, b = b->next) {
		if (off + b->len <= s->sent)
			continue;
		uint64_t skip = s->sent > off ? s->sent - off : 0;

		v[n].base = (uint8_t *)(uintptr_t)b->p + skip;
		v[n].len = b->len - (size_t)skip;
		got += v[n].len;
		n++;
		if (got >= want)
			break;
	}
	return n;
}

static int stream_pending(const struct quic_stream *s)
{
	return !s->round_blocked && (s->sent < s->total || (s->fin_queued && !s->fin_sent));
}

struct quic_stream *quic_sbuf_next(struct quic_conn *c)
{
	struct quic_stream *s;

	for (s = c->streams; s; s = s->next)
		if (stream_pending(s))
			return s;
	return NULL;
}
