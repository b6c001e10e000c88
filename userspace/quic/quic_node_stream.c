// SPDX-License-Identifier: MIT
/*
 * The node's streams, on the worker that owns their connection: write
 * queues moved into the QUIC stream (by reference for large blocks), the
 * bench generator, stream types (the type varint, registered handlers),
 * opening, failing and freeing. Calls the QUIC core and the node's context
 * (quic_node_base.c), never the hub; applications hear of their streams
 * through their handlers (writable()).
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quic/quic_node_int.h"

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void gen_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
{
	uint64_t blk = off / 8, w;
	size_t skip = (size_t)(off % 8), i = 0, n;

	/* Little-endian layout, same on every host. */
	if (skip) {
		w = splitmix64(seed ^ (blk * 0xd1342543de82ef95ULL));
		n = 8 - skip < len ? 8 - skip : len;
		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)(w >> (8 * (skip + k)));
		i = n;
		blk++;
	}
	/* Whole words: one 8-byte store each (the bench sender generates
	 * every byte it sends; byte stores made this the hot spot). */
	for (; len - i >= 8; i += 8, blk++) {
		w = htole64(splitmix64(seed ^ (blk * 0xd1342543de82ef95ULL)));
		memcpy(buf + i, &w, 8);
	}
	if (i < len) {
		w = splitmix64(seed ^ (blk * 0xd1342543de82ef95ULL));
		for (size_t k = 0; i + k < len; k++)
			buf[i + k] = (uint8_t)(w >> (8 * k));
	}
}

/* c->hot[] holds, per slot of stream ids, the stream found last: frames
 * come in runs on one stream (a 256 KiB answer is ~180 packets), but a
 * connection carrying a dozen fetches in round robin (16 KiB a turn)
 * changes stream every ~11 packets, and the walk past its other streams
 * cost ~1% of a lab's CPU (docs/QUIC.md, docs/LAB.md). Consecutive ids of
 * one kind fall in different slots (ids go up by 4). A hint, not an order:
 * the list itself never moves under a walk of it. */
static unsigned int hint_slot(int64_t sid)
{
	return (unsigned int)(((uint64_t)sid >> 2) % QN_STREAM_HINTS);
}

struct qn_stream *qn_stream_get(struct qn_conn *c, int64_t sid)
{
	unsigned int k = hint_slot(sid);
	struct qn_stream *s = c->hot[k];

	if (s && s->sid == sid)
		return s;
	for (s = c->streams; s; s = s->next)
		if (s->sid == sid) {
			c->hot[k] = s;
			return s;
		}
	return NULL;
}

struct qn_stream *qn_stream_add(struct qn_conn *c, int64_t sid, int incoming)
{
	struct qn_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->sid = sid;
	s->incoming = incoming;
	s->typed = !incoming;
	s->next = c->streams;
	c->streams = s;
	return s;
}

/* release() of quic_stream_send_ref, and the queue dropping its own. */
static void wbuf_unref(void *arg)
{
	struct qn_wbuf *b = arg;

	if (--b->refs)
		return;
	qn_op_free(b->mem);
	free(b);
}

void qn_genblk_unref(void *arg)
{
	struct qn_genblk *g = arg;

	if (!--g->refs)
		free(g);
}

/* Send len bytes at p on the stream: by reference when the block is worth
 * one (the owner's count is taken for each accepted slice), copied else. */
static ssize_t send_slice(struct qn_conn *c, struct qn_stream *s, const uint8_t *p, size_t len,
			  int fin, void (*release)(void *), void *arg, unsigned int *refs)
{
	ssize_t n;

	if (len < QN_REF_MIN)
		return quic_stream_send(c->qc, s->sid, p, len, fin);
	n = quic_stream_send_ref(c->qc, s->sid, p, len, fin, release, arg);
	if (n > 0)
		(*refs)++;
	return n;
}

static void stream_drop_queue(struct quic_node *qn, struct qn_conn *c, struct qn_stream *s)
{
	struct qn_wbuf *b, *n;

	for (b = s->wq; b; b = n) {
		n = b->next;
		if (b->app)
			atomic_fetch_sub(&qn->queued, b->len - b->off);
		wbuf_unref(b);
	}
	s->wq = s->wq_tail = NULL;
	c->wq_bytes -= s->wq_bytes;
	s->wq_bytes = 0;
}

void qn_stream_free(struct quic_node *qn, struct qn_conn *c, struct qn_stream *s)
{
	struct qn_stream **pp;
	unsigned int k = hint_slot(s->sid);

	if (c->hot[k] == s)
		c->hot[k] = NULL;
	for (pp = &c->streams; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	stream_drop_queue(qn, c, s);
	if (s->hs)
		sodium_free(s->hs);
	free(s);
}

const struct quic_node_handler *qn_stream_handler(struct qn_conn *c, struct qn_stream *s,
						      void **arg)
{
	if (s->internal)
		return NULL;
	if (s->h) {
		*arg = s->arg;
		return s->h;
	}
	if (!s->incoming) {
		*arg = c->arg;
		return &c->h;
	}
	return NULL;
}

void qn_stream_fail(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s, uint64_t code)
{
	s->dead = 1;
	stream_drop_queue(wk->qn, c, s);
	if (c->qc)
		quic_stream_reset(c->qc, s->sid, code);
}

static void gen_pump(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s)
{
	ssize_t n;
	size_t chunk;
	const uint8_t *p;

	while (s->gen_off < s->gen_total) {
		chunk = s->gen_total - s->gen_off > QN_GEN_CHUNK
			    ? QN_GEN_CHUNK
			    : (size_t)(s->gen_total - s->gen_off);
		if (!s->gen_hs) {
			/* Unverified (nobody hashes these bytes): one generated
			 * block sent over and over, as the reference programs
			 * send a file from the page cache, read in place by
			 * the stream (no copy into its buffer). */
			size_t d = (size_t)(s->gen_off % QN_GEN_CHUNK);
			struct qn_genblk *g = wk->genblk;

			if (!g || g->seed != s->gen_seed) {
				g = malloc(sizeof(*g));
				if (!g) {
					wk->app_errors++;
					s->gen_total = s->gen_off;
					return;
				}
				g->refs = 1;
				g->seed = s->gen_seed;
				gen_fill(s->gen_seed, 0, g->data, QN_GEN_CHUNK);
				if (wk->genblk)
					qn_genblk_unref(wk->genblk);
				wk->genblk = g;
			}
			if (chunk > QN_GEN_CHUNK - d)
				chunk = QN_GEN_CHUNK - d;
			n = send_slice(c, s, g->data + d, chunk, s->gen_off + chunk == s->gen_total,
				       qn_genblk_unref, g, &g->refs);
			if (n < 0) {
				wk->app_errors++;
				s->gen_total = s->gen_off;
				return;
			}
			s->gen_off += (uint64_t)n;
			if ((size_t)n < chunk)
				return; /* on_stream_writable resumes */
			continue;
		} else if (wk->gen_len && wk->gen_seed == s->gen_seed &&
			   s->gen_off >= wk->gen_off && s->gen_off < wk->gen_off + wk->gen_len) {
			/* The send buffer usually takes a few KiB per ACK: reuse
			 * the bytes generated last time. */
			size_t d = (size_t)(s->gen_off - wk->gen_off);

			p = wk->scratch + d;
			if (chunk > wk->gen_len - d)
				chunk = wk->gen_len - d;
		} else {
			gen_fill(s->gen_seed, s->gen_off, wk->scratch, chunk);
			wk->gen_seed = s->gen_seed;
			wk->gen_off = s->gen_off;
			wk->gen_len = chunk;
			p = wk->scratch;
		}
		n = quic_stream_send(c->qc, s->sid, p, chunk, s->gen_off + chunk == s->gen_total);
		if (n < 0) {
			wk->app_errors++;
			s->gen_total = s->gen_off;
			return;
		}
		if (s->gen_hs && n)
			crypto_generichash_update(s->gen_hs, p, (size_t)n);
		s->gen_off += (uint64_t)n;
		if ((size_t)n < chunk)
			return; /* on_stream_writable resumes */
	}
}

/* Move queued bytes into the stream's send buffer as far as it takes. */
void qn_stream_pump(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s)
{
	struct quic_node *qn = wk->qn;
	const struct quic_node_handler *h;
	struct qn_wbuf *b;
	ssize_t n;
	void *arg;

	while ((b = s->wq)) {
		n = send_slice(c, s, b->data + b->off, b->len - b->off, b->fin, wbuf_unref, b,
			       &b->refs);
		if (n < 0) {
			wk->app_errors++;
			stream_drop_queue(qn, c, s);
			return;
		}
		b->off += (size_t)n;
		s->wq_bytes -= (size_t)n;
		c->wq_bytes -= (size_t)n;
		if (b->app)
			atomic_fetch_sub(&qn->queued, (size_t)n);
		if (b->off < b->len)
			return;
		s->wq = b->next;
		if (!s->wq)
			s->wq_tail = NULL;
		if (b->fin)
			s->fin_sent = 1;
		if (b->app && (h = qn_stream_handler(c, s, &arg)) && h->writable) {
			wbuf_unref(b);
			h->writable(arg, c->id, s->sid);
			continue;
		}
		wbuf_unref(b);
	}
	if (s->gen_total)
		gen_pump(wk, c, s);
}

/* Queue len bytes at data; mem (NULL: data is copied) holds them and is
 * freed with the buffer once the stream no longer reads them: on success
 * only, an error leaves it to the caller. */
int qn_stream_queue(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
			const uint8_t *data, size_t len, int fin, int app, void *mem)
{
	struct qn_wbuf *b;

	if (s->dead || s->fin_sent)
		return -EPIPE;
	b = malloc(sizeof(*b) + (mem ? 0 : len));
	if (!b)
		return -ENOMEM;
	b->next = NULL;
	b->len = len;
	b->off = 0;
	b->fin = fin;
	b->app = app;
	b->refs = 1;
	b->mem = mem;
	b->data = mem ? data : b->inline_data;
	if (len && !mem)
		memcpy(b->inline_data, data, len);
	if (s->wq_tail)
		s->wq_tail->next = b;
	else
		s->wq = b;
	s->wq_tail = b;
	s->wq_bytes += len;
	c->wq_bytes += len;
	if (fin)
		s->fin_sent = 1; /* nothing may follow */
	if (s->wq == b)
		qn_stream_pump(wk, c, s);
	return 0;
}

static int put_varint_stream(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
			     uint64_t v)
{
	uint8_t vb[8];
	int n = quic_varint_encode(vb, sizeof(vb), v);

	if (n < 0)
		return n;
	return qn_stream_queue(wk, c, s, vb, (size_t)n, 0, 0, NULL);
}

int qn_type_lookup(struct quic_node *qn, struct qn_stream *s)
{
	unsigned int i;

	if (s->stype == QUIC_NODE_ST_ECHO || s->stype == QUIC_NODE_ST_DISCARD ||
	    s->stype == QUIC_NODE_ST_OBSERVED)
		return 0;
	if (s->stype == QUIC_NODE_ST_PATH)
		return qn->o.punch_off ? -ENOENT : 0;
	if (s->stype == QUIC_NODE_ST_SINK) {
		s->hs = sodium_malloc(sizeof(*s->hs));
		if (!s->hs)
			return -ENOMEM;
		crypto_generichash_init(s->hs, NULL, 0, 32);
		return 0;
	}
	for (i = 0; i < qn->ntypes; i++)
		if (qn->types[i].stype == s->stype) {
			s->h = &qn->types[i].h;
			s->arg = qn->types[i].arg;
			return 0;
		}
	return -ENOENT;
}

int qn_stream_open_now(struct qn_worker *wk, struct qn_conn *c, uint64_t stype,
		       struct qn_stream **out)
{
	struct qn_stream *s;
	int64_t sid;
	int rc;

	*out = NULL;
	if (!c->qc)
		return -ENOTCONN;
	quic_ep_set_now(wk->ep, qn_wk_now(wk));
	rc = quic_stream_open(c->qc, 1, &sid);
	if (rc)
		return rc;
	s = qn_stream_add(c, sid, 0);
	if (!s) {
		quic_stream_reset(c->qc, sid, 0);
		return -ENOMEM;
	}
	s->stype = stype;
	/* On a connection we accepted there is no handler of our own: a
	 * registered type's streams we open report to that type. */
	if (!c->dialed && stype >= QUIC_NODE_ST_APP_MIN)
		(void)qn_type_lookup(wk->qn, s);
	rc = put_varint_stream(wk, c, s, stype);
	if (rc) {
		qn_stream_fail(wk, c, s, QN_ERR_BAD_TYPE);
		return rc;
	}
	*out = s;
	return 0;
}

void qn_stream_gen_start(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
			 uint64_t total, uint64_t seed, crypto_generichash_state *hs)
{
	s->gen_total = total;
	s->gen_off = 0;
	s->gen_seed = seed;
	s->gen_hs = hs;
	if (total && !s->wq)
		gen_pump(wk, c, s);
	else if (!total)
		qn_stream_queue(wk, c, s, NULL, 0, 1, 0, NULL);
}
