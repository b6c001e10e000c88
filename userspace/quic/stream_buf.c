// SPDX-License-Identifier: MIT
/*
 * Stream send buffers of one QUIC connection: chains of blocks that
 * ngtcp2 reads in place until the peer acknowledges them (it keeps
 * pointers into sent data, so bytes never move), and the choice of the
 * next stream with bytes to send (round robin, a quantum of bytes a
 * turn). Pure data structure: no ngtcp2 call, no I/O; conn.c fills them,
 * conn_write.c drains them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quic/quic_int.h"

#define SBLK_MIN 4096
#define SBLK_MAX 65536
/* Spare full-size blocks a stream keeps (2 x 64 KiB): an ACK frees about
 * as many as the appends after it take. Without them each block went back
 * to malloc, and a free that leaves 64 KiB at the top of a thread's arena
 * hands those pages back to the kernel (node_heap_setup's trim threshold),
 * so a bulk sender paid a madvise and 16 page faults per block: 648
 * madvise calls per 2 GiB sent (strace, bench/quic_cpu.sh). */
#define QUIC_SBLK_SPARE 2

/* Consecutive ids of one kind fall in different slots (they go up by 4).
 * A hint, not an order: the list never moves under a walk of it. */
static unsigned int hint_slot(int64_t id)
{
	return (unsigned int)(((uint64_t)id >> 2) % QUIC_SBUF_HINTS);
}

struct quic_stream *quic_sbuf_find(struct quic_conn *c, int64_t id)
{
	unsigned int k = hint_slot(id);
	struct quic_stream *s = c->sb_hot[k];

	if (s && s->id == id)
		return s;
	for (s = c->streams; s; s = s->next)
		if (s->id == id) {
			c->sb_hot[k] = s;
			return s;
		}
	return NULL;
}

static void sblk_free(struct sblk *b)
{
	if (b->release)
		b->release(b->arg);
	free(b);
}

/* An acknowledged block: kept as a spare when it is a full-size block of
 * our own, else freed. */
static void sblk_done(struct quic_stream *s, struct sblk *b)
{
	if (!b->release && b->cap == SBLK_MAX && s->nspare < QUIC_SBLK_SPARE) {
		b->next = s->spare;
		s->spare = b;
		s->nspare++;
		return;
	}
	sblk_free(b);
}

static void spares_free(struct quic_stream *s)
{
	struct sblk *b, *n;

	for (b = s->spare; b; b = n) {
		n = b->next;
		free(b);
	}
	s->spare = NULL;
	s->nspare = 0;
}

void quic_sbuf_free(struct quic_stream *s)
{
	struct sblk *b, *n;

	for (b = s->head; b; b = n) {
		n = b->next;
		sblk_free(b);
	}
	spares_free(s);
	free(s);
}

static void wq_remove(struct quic_conn *c, struct quic_stream *s)
{
	if (!s->wq_in)
		return;
	if (s->wq_prev)
		s->wq_prev->wq_next = s->wq_next;
	else
		c->wq_head = s->wq_next;
	if (s->wq_next)
		s->wq_next->wq_prev = s->wq_prev;
	else
		c->wq_tail = s->wq_prev;
	s->wq_next = s->wq_prev = NULL;
	s->wq_in = 0;
}

/* s goes last, its turn starting now. */
static void wq_append(struct quic_conn *c, struct quic_stream *s)
{
	s->wq_next = NULL;
	s->wq_prev = c->wq_tail;
	if (c->wq_tail)
		c->wq_tail->wq_next = s;
	else
		c->wq_head = s;
	c->wq_tail = s;
	s->wq_in = 1;
	s->turn_from = s->sent;
}

void quic_sbuf_unlink(struct quic_conn *c, struct quic_stream *s)
{
	struct quic_stream **pp;
	unsigned int k = hint_slot(s->id);

	if (c->sb_hot[k] == s)
		c->sb_hot[k] = NULL;
	wq_remove(c, s);
	if (s->notify_writable && c->notify_n)
		c->notify_n--;
	s->notify_writable = 0;
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

			if (cap == SBLK_MAX && s->spare) {
				b = s->spare;
				s->spare = b->next;
				s->nspare--;
			} else {
				b = malloc(sizeof(*b) + cap);
				if (!b)
					return -ENOMEM;
			}
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
		sblk_done(s, b);
	}
	/* Nothing left to send: the spares go, so a stream a peer keeps open
	 * after its data (streams are bounded per connection, not their
	 * lifetime) holds no memory for it. */
	if (s->acked >= s->total)
		spares_free(s);
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

int quic_sbuf_waiting(const struct quic_stream *s)
{
	return !s->wr_shut && (s->sent < s->total || (s->fin_queued && !s->fin_sent));
}

/* ngtcp2 will take nothing more on this stream (its write side was reset
 * by us, or by the peer's STOP_SENDING, or ngtcp2 no longer knows it):
 * it leaves the ring for good instead of being met, and refused, on every
 * pass until ngtcp2 closes it. Its bytes stay until then (ngtcp2 may
 * still point into what it sent). */
void quic_sbuf_abandon(struct quic_conn *c, struct quic_stream *s)
{
	s->wr_shut = 1;
	wq_remove(c, s);
}

void quic_sbuf_wake(struct quic_conn *c, struct quic_stream *s)
{
	if (!s->wq_in && quic_sbuf_waiting(s))
		wq_append(c, s);
}

void quic_sbuf_sent(struct quic_conn *c, struct quic_stream *s, uint64_t n, int fin)
{
	s->sent += n;
	if (fin && s->sent == s->total)
		s->fin_sent = 1;
	if (!quic_sbuf_waiting(s))
		wq_remove(c, s);
}

/* Round robin with a quantum (a deficit round robin whose deficit is not
 * carried over: a turn may overrun by one write, a packet). The first
 * stream of the list with bytes went first before, and the list is
 * newest first: a downloader's newest fetch streams were answered over
 * and over while its oldest requests timed out. Sending the stream that
 * waited longest a whole backlog at a time (every byte it had when its
 * turn came) was fair between fetches but held a new stream's small
 * message behind such backlogs. Here nothing waits more than one
 * quantum per stream ahead of it. O(1) a pick but for the streams
 * blocked this round (flow control), which are passed over in place.
 * (Sequential streams, one answer whole before the next, were tried and
 * taken out: docs/QUIC.md "Sequential streams".) */
struct quic_stream *quic_sbuf_next(struct quic_conn *c)
{
	struct quic_stream *s, *n;

	for (s = c->wq_head; s; s = n) {
		n = s->wq_next;
		if (s->blocked_round == c->flush_round)
			continue;
		if (s->sent - s->turn_from < QUIC_SBUF_QUANTUM)
			return s;
		/* Its turn is used up: a new one, behind the others. It is
		 * met again at the tail, with its new turn. */
		wq_remove(c, s);
		wq_append(c, s);
		if (!n)
			return s;
	}
	return NULL;
}
