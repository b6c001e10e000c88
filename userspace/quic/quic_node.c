// SPDX-License-Identifier: MIT
/*
 * QUIC on the packet engine: endpoints per worker, the port handler, worker
 * routing by connection id, expiry timers, and the application API. The
 * control API, ping and bench live in quic_node_ctl.c. See docs/QUIC.md.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "quic/quic_node_int.h"
#include "weft/ctl.h"
#include "weft/identity.h"
#include "weft/log.h"

uint64_t qn_now_ns(const struct quic_node *qn)
{
	return engine_now_ns(qn->eng);
}

/* ------------------------------------------------------------ references */

void qn_put(struct quic_node *qn)
{
	unsigned int i, j;

	if (atomic_fetch_sub(&qn->refs, 1) != 1)
		return;
	/* No callback can run any more: hand registered contexts back. */
	for (i = 0; i < qn->ntypes; i++) {
		if (!qn->types[i].h.release)
			continue;
		for (j = 0; j < i; j++)
			if (qn->types[j].arg == qn->types[i].arg && qn->types[j].h.release)
				break;
		if (j == i)
			qn->types[i].h.release(qn->types[i].arg);
	}
	path_budget_free(qn->budget);
	pthread_mutex_destroy(&qn->budget_mu);
	qn_buf_drain(qn);
	pthread_mutex_destroy(&qn->buf_mu);
	free(qn);
}

int qn_call(struct quic_node *qn, unsigned int worker, engine_cmd_fn fn, void *arg)
{
	int rc;

	atomic_fetch_add(&qn->refs, 1);
	rc = engine_call(qn->eng, worker, fn, arg);
	if (rc) {
		atomic_fetch_add(&qn->cmd_full, 1);
		qn_put(qn);
	}
	return rc;
}

int qn_cmd_enter(struct quic_node *qn)
{
	return atomic_load(&qn->dead);
}

/* --------------------------------------------------------------- helpers */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void qn_gen_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
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

static void addr_to_ss(const struct io_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
	int l = io_addr_to_sockaddr(a, a->family, ss);

	*len = l > 0 ? (socklen_t)l : 0;
}

static int is_unspec(const struct io_addr *a)
{
	static const uint8_t zero[16];

	return memcmp(a->addr, zero, a->family == AF_INET ? 4 : 16) == 0;
}

/* ------------------------------------------------------------ tx / timer */

static int qn_send(void *arg, const uint8_t *buf, size_t len, size_t gso, const struct sockaddr *to,
		   socklen_t tolen, const struct sockaddr *local)
{
	struct qn_worker *wk = arg;
	struct io_addr dst, src, *psrc = NULL;

	if (!wk->w)
		return -ENOTCONN;
	if (io_addr_from_sockaddr(&dst, to, tolen))
		return -EAFNOSUPPORT;
	if (local && !io_addr_from_sockaddr(&src, local, sizeof(struct sockaddr_storage)) &&
	    src.family == dst.family && !is_unspec(&src))
		psrc = &src;
	if (!gso)
		gso = len;
	/* A burst of several packets goes out in place (the engine sends it
	 * as one UDP_SEGMENT message on uring, frames of one batch on
	 * AF_XDP); a lone packet is staged with the pass's other datagrams. */
	if (len > gso)
		return engine_send_burst(wk->w, &dst, psrc, buf, len, gso) > 0 ? 0 : -EIO;
	return engine_send(wk->w, &dst, psrc, buf, len);
}

/* A fresh clock read on the worker, remembered for the receive batch. */
static uint64_t qn_wk_now(struct qn_worker *wk)
{
	uint64_t t = qn_now_ns(wk->qn);

	if (t > wk->rx_ts_ns)
		wk->rx_ts_ns = t;
	return wk->rx_ts_ns;
}

static void qn_timer_fn(struct engine_worker *w, void *arg)
{
	struct qn_worker *wk = arg;
	uint64_t now, exp;

	wk->w = w;
	now = qn_wk_now(wk);
	exp = quic_ep_run_expiry(wk->ep, now);
	if (exp == UINT64_MAX)
		return;
	/* Deadlines under 2 ms (pacing, ACK delay, a flush) are kept to the
	 * microsecond: rounded up to the 1 ms wheel they would cap a
	 * connection at one write pass per tick. Rounded up, never early. */
	engine_timer_add_us(w, &wk->timer, exp > now ? (exp - now + 999) / 1000 : 0);
}

/* Re-evaluate the endpoint's deadline at the end of this loop pass:
 * after the whole receive batch (one ACK and one write pass for it),
 * before the pass's transmit flush. */
void qn_kick(struct qn_worker *wk)
{
	if (wk->w)
		engine_defer(wk->w, &wk->timer);
}

/* --------------------------------------------------------------- streams */

struct qn_stream *qn_stream_get(struct qn_conn *c, int64_t sid)
{
	struct qn_stream *s;

	for (s = c->streams; s; s = s->next)
		if (s->sid == sid)
			return s;
	return NULL;
}

static struct qn_stream *stream_add(struct qn_conn *c, int64_t sid, int incoming)
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

static void op_free(void *op);

/* release() of quic_stream_send_ref, and the queue dropping its own. */
static void wbuf_unref(void *arg)
{
	struct qn_wbuf *b = arg;

	if (--b->refs)
		return;
	op_free(b->mem);
	free(b);
}

static void genblk_unref(void *arg)
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

static void stream_drop_queue(struct quic_node *qn, struct qn_stream *s)
{
	struct qn_wbuf *b, *n;

	for (b = s->wq; b; b = n) {
		n = b->next;
		if (b->app)
			atomic_fetch_sub(&qn->queued, b->len - b->off);
		wbuf_unref(b);
	}
	s->wq = s->wq_tail = NULL;
	s->wq_bytes = 0;
}

static void stream_free(struct quic_node *qn, struct qn_conn *c, struct qn_stream *s)
{
	struct qn_stream **pp;

	for (pp = &c->streams; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	stream_drop_queue(qn, s);
	if (s->hs)
		sodium_free(s->hs);
	free(s);
}

static const struct quic_node_handler *stream_handler(struct qn_conn *c, struct qn_stream *s,
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
	stream_drop_queue(wk->qn, s);
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
				qn_gen_fill(s->gen_seed, 0, g->data, QN_GEN_CHUNK);
				if (wk->genblk)
					genblk_unref(wk->genblk);
				wk->genblk = g;
			}
			if (chunk > QN_GEN_CHUNK - d)
				chunk = QN_GEN_CHUNK - d;
			n = send_slice(c, s, g->data + d, chunk, s->gen_off + chunk == s->gen_total,
				       genblk_unref, g, &g->refs);
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
			qn_gen_fill(s->gen_seed, s->gen_off, wk->scratch, chunk);
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
static void stream_pump(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s)
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
			stream_drop_queue(qn, s);
			return;
		}
		b->off += (size_t)n;
		s->wq_bytes -= (size_t)n;
		if (b->app)
			atomic_fetch_sub(&qn->queued, (size_t)n);
		if (b->off < b->len)
			return;
		s->wq = b->next;
		if (!s->wq)
			s->wq_tail = NULL;
		if (b->fin)
			s->fin_sent = 1;
		if (b->app && (h = stream_handler(c, s, &arg)) && h->writable) {
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
static int stream_queue(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
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
	if (fin)
		s->fin_sent = 1; /* nothing may follow */
	if (s->wq == b)
		stream_pump(wk, c, s);
	return 0;
}

int qn_stream_queue(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
		    const uint8_t *data, size_t len, int fin, int app)
{
	return stream_queue(wk, c, s, data, len, fin, app, NULL);
}

static int put_varint_stream(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
			     uint64_t v)
{
	uint8_t vb[8];
	int n = quic_varint_encode(vb, sizeof(vb), v);

	if (n < 0)
		return n;
	return qn_stream_queue(wk, c, s, vb, (size_t)n, 0, 0);
}

static int type_lookup(struct quic_node *qn, struct qn_stream *s);

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
	s = stream_add(c, sid, 0);
	if (!s) {
		quic_stream_reset(c->qc, sid, 0);
		return -ENOMEM;
	}
	s->stype = stype;
	/* On a connection we accepted there is no handler of our own: a
	 * registered type's streams we open report to that type. */
	if (!c->dialed && stype >= QUIC_NODE_ST_APP_MIN)
		(void)type_lookup(wk->qn, s);
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
		qn_stream_queue(wk, c, s, NULL, 0, 1, 0);
}

/* What a peer says it sees us at: at most CONN_OBS_MAX bytes, then FIN
 * (answered with FIN). Anything longer or malformed resets the stream. */
static void observed_data(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
			  const uint8_t *data, size_t len, int fin)
{
	struct quic_conn_info ci;
	struct io_addr seen;

	if (len > sizeof(s->obuf) - s->olen) {
		wk->obs_bad++;
		qn_stream_fail(wk, c, s, QN_ERR_OVERRUN);
		return;
	}
	memcpy(s->obuf + s->olen, data, len);
	s->olen += len;
	if (!fin)
		return;
	if (conn_obs_parse(s->obuf, s->olen, &seen) || !c->qc || quic_conn_get_info(c->qc, &ci)) {
		wk->obs_bad++;
		qn_stream_fail(wk, c, s, QN_ERR_BAD_TYPE);
		return;
	}
	wk->obs_rx++;
	qn_path_observed(wk, c, &ci, &seen);
	if (wk->qn->o.on_observed)
		wk->qn->o.on_observed(wk->qn->o.observed_arg, (struct sockaddr *)&ci.remote,
				    ci.remote_len, &seen, wk->qn->port);
	qn_stream_queue(wk, c, s, NULL, 0, 1, 0);
}

/* After the handshake: tell the peer the address we see it at. */
static void observed_send(struct qn_worker *wk, struct qn_conn *c)
{
	struct quic_conn_info ci;
	struct qn_stream *s;
	struct io_addr a;
	uint8_t msg[CONN_OBS_MAX];
	int n;

	if (!c->qc || quic_conn_get_info(c->qc, &ci) ||
	    io_addr_from_sockaddr(&a, (struct sockaddr *)&ci.remote, ci.remote_len))
		return;
	n = conn_obs_encode(&a, msg, sizeof(msg));
	if (n <= 0 || qn_stream_open_now(wk, c, QUIC_NODE_ST_OBSERVED, &s))
		return;
	s->internal = 1;
	if (!qn_stream_queue(wk, c, s, msg, (size_t)n, 1, 0))
		wk->obs_sent++;
}

/* Built-in responders. */
static void builtin_data(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
			 const uint8_t *data, size_t len, int fin)
{
	uint8_t reply[40];
	size_t rlen = 8;

	switch (s->stype) {
	case QUIC_NODE_ST_ECHO:
		if (s->wq_bytes + len > QN_ECHO_MAX_QUEUED) {
			wk->echo_overruns++;
			qn_stream_fail(wk, c, s, QN_ERR_OVERRUN);
			return;
		}
		if (len || fin)
			qn_stream_queue(wk, c, s, data, len, fin, 0);
		return;
	case QUIC_NODE_ST_SINK:
	case QUIC_NODE_ST_DISCARD:
		s->count += len;
		if (s->hs && len)
			crypto_generichash_update(s->hs, data, len);
		if (!fin)
			return;
		for (int i = 0; i < 8; i++)
			reply[i] = (uint8_t)(s->count >> (56 - 8 * i));
		if (s->hs) {
			crypto_generichash_final(s->hs, reply + 8, 32);
			rlen = 40;
		}
		qn_stream_queue(wk, c, s, reply, rlen, 1, 0);
		return;
	case QUIC_NODE_ST_OBSERVED:
		observed_data(wk, c, s, data, len, fin);
		return;
	}
}

static int type_lookup(struct quic_node *qn, struct qn_stream *s)
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

/* ------------------------------------------------------- core callbacks */

static struct qn_conn *conn_new(struct qn_worker *wk, uint64_t id)
{
	struct qn_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->id = id;
	c->next = wk->conns;
	if (wk->conns)
		wk->conns->prev = c;
	wk->conns = c;
	wk->nconns++;
	return c;
}

static void conn_free(struct qn_worker *wk, struct qn_conn *c)
{
	qn_path_free(c);
	while (c->streams)
		stream_free(wk->qn, c, c->streams);
	if (c->prev)
		c->prev->next = c->next;
	else
		wk->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	wk->nconns--;
	free(c);
}

struct qn_conn *qn_conn_find(struct qn_worker *wk, uint64_t id)
{
	struct qn_conn *c;

	for (c = wk->conns; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

int quic_node_conn_peer(struct quic_node *qn, uint64_t conn, uint8_t key[QUIC_KEY_LEN],
			struct sockaddr_storage *addr)
{
	unsigned int w = (unsigned int)(conn & 0xff); /* see new_id() */
	struct quic_conn_info info;
	struct qn_conn *c;

	if (!qn || w >= qn->nworkers || !qn->wk[w])
		return -ENOTCONN;
	c = qn_conn_find(qn->wk[w], conn);
	if (!c || !c->qc || quic_conn_get_info(c->qc, &info) || !info.have_peer_key)
		return -ENOTCONN;
	memcpy(key, info.peer_key, QUIC_KEY_LEN);
	memcpy(addr, &info.remote, sizeof(*addr));
	return 0;
}

unsigned int quic_node_conn_worker(const struct quic_node *qn, uint64_t conn)
{
	unsigned int w = (unsigned int)(conn & 0xff); /* see new_id() */

	return qn && w < qn->nworkers ? w : 0;
}

static uint64_t new_id(struct quic_node *qn, unsigned int worker)
{
	return (atomic_fetch_add(&qn->serial, 1) << 8) | worker;
}

static void cb_conn(void *arg, struct quic_conn *qc, const uint8_t *peer_key)
{
	struct qn_worker *wk = arg;
	struct qn_conn *c = quic_conn_get_user(qc);

	if (wk->qn->o.on_validated) {
		struct quic_conn_info ci;

		if (!quic_conn_get_info(qc, &ci))
			wk->qn->o.on_validated(wk->qn->o.validated_arg, (struct sockaddr *)&ci.remote,
					     ci.remote_len);
	}
	if (!c) {
		c = conn_new(wk, new_id(wk->qn, wk->idx));
		if (!c) {
			quic_conn_close(qc, 0x1, "out of memory");
			return;
		}
		c->qc = qc;
		quic_conn_set_user(qc, c);
		observed_send(wk, c);
		return;
	}
	observed_send(wk, c);
	qn_path_connected(wk, c);
	c->t_hs_ns = qn_now_ns(wk->qn);
	c->reported = 1;
	if (c->h.connected)
		c->h.connected(c->arg, c->id, 0, peer_key);
}

static void cb_stream_open(void *arg, struct quic_conn *qc, int64_t sid)
{
	struct qn_conn *c = quic_conn_get_user(qc);

	if (c && !qn_stream_get(c, sid) && !stream_add(c, sid, 1))
		quic_stream_reset(qc, sid, 0x1);
}

static void cb_stream_data(void *arg, struct quic_conn *qc, int64_t sid, const uint8_t *data,
			   size_t len, int fin)
{
	struct qn_worker *wk = arg;
	struct qn_conn *c = quic_conn_get_user(qc);
	const struct quic_node_handler *h;
	struct qn_stream *s;
	void *harg;

	if (!c)
		return;
	s = qn_stream_get(c, sid);
	if (!s && !(s = stream_add(c, sid, 1))) {
		quic_stream_reset(qc, sid, 0x1);
		return;
	}
	if (s->dead)
		return;
	while (!s->typed && len) {
		uint64_t t;
		int r;

		s->tbuf[s->tlen++] = *data++;
		len--;
		r = quic_varint_decode(s->tbuf, s->tlen, &t);
		if (r == -EAGAIN && s->tlen < sizeof(s->tbuf))
			continue;
		if (r < 0) {
			wk->bad_types++;
			qn_stream_fail(wk, c, s, QN_ERR_BAD_TYPE);
			return;
		}
		s->typed = 1;
		s->stype = t;
		if (type_lookup(wk->qn, s)) {
			wk->bad_types++;
			qn_stream_fail(wk, c, s, QN_ERR_UNKNOWN_TYPE);
			return;
		}
	}
	if (!s->typed) {
		if (fin)
			qn_stream_fail(wk, c, s, QN_ERR_BAD_TYPE);
		return;
	}
	if (s->stype == QUIC_NODE_ST_PATH) {
		qn_path_stream_data(wk, c, s, data, len);
		return;
	}
	if (s->incoming && !s->h) {
		builtin_data(wk, c, s, data, len, fin);
		return;
	}
	h = stream_handler(c, s, &harg);
	if (h && h->stream_data && (len || fin))
		h->stream_data(harg, c->id, sid, data, len, fin);
}

static void cb_stream_close(void *arg, struct quic_conn *qc, int64_t sid, int has_code,
			    uint64_t code)
{
	struct qn_worker *wk = arg;
	struct qn_conn *c = quic_conn_get_user(qc);
	const struct quic_node_handler *h;
	struct qn_stream *s;
	void *harg;

	if (!c || !(s = qn_stream_get(c, sid)))
		return;
	h = stream_handler(c, s, &harg);
	if (h && h->stream_closed && s->typed)
		h->stream_closed(harg, c->id, sid, has_code ? -ECONNRESET : 0);
	stream_free(wk->qn, c, s);
}

static void cb_stream_writable(void *arg, struct quic_conn *qc, int64_t sid)
{
	struct qn_worker *wk = arg;
	struct qn_conn *c = quic_conn_get_user(qc);
	struct qn_stream *s;

	if (c && (s = qn_stream_get(c, sid)) && !s->dead)
		stream_pump(wk, c, s);
}

static void conn_report_closed(struct qn_worker *wk, struct qn_conn *c,
			       const struct quic_close_info *info)
{
	struct qn_stream *s;
	int err = qn_close_errno(info);

	c->qc = NULL;
	if (c->dialed && !c->reported && c->h.connected) {
		c->reported = 1;
		c->h.connected(c->arg, c->id, err ? err : -ECONNABORTED, NULL);
	}
	for (s = c->streams; s; s = s->next) {
		const struct quic_node_handler *h;
		void *harg;

		h = stream_handler(c, s, &harg);
		if (h && h->stream_closed && s->typed && !s->dead)
			h->stream_closed(harg, c->id, s->sid, err ? err : -ECONNABORTED);
	}
	if (c->h.closed)
		c->h.closed(c->arg, c->id, info);
	conn_free(wk, c);
}

static void cb_closed(void *arg, struct quic_conn *qc, const struct quic_close_info *info)
{
	struct qn_worker *wk = arg;
	struct qn_conn *c = quic_conn_get_user(qc);

	quic_conn_set_user(qc, NULL);
	if (c)
		conn_report_closed(wk, c, info);
}

/* ------------------------------------------------------------------ rx */

struct qn_fwd {
	struct quic_node *qn;
	struct io_addr src, dst;
	size_t len;
	uint8_t data[];
};

static void input(struct qn_worker *wk, const uint8_t *buf, size_t len, const struct io_addr *src,
		  const struct io_addr *dst)
{
	if (path_probe_is(buf, len)) {
		qn_path_probe(wk, buf, len, src);
		return;
	}
	if (memcmp(src, &wk->rx_src, sizeof(*src))) {
		wk->rx_src = *src;
		addr_to_ss(src, &wk->rx_rs, &wk->rx_rl);
	}
	if (memcmp(dst, &wk->rx_dst, sizeof(*dst))) {
		wk->rx_dst = *dst;
		addr_to_ss(dst, &wk->rx_ls, &wk->rx_ll);
	}
	if (!wk->rx_rl)
		return;
	/* First packet of a loop pass: a fresh clock; the rest of the batch
	 * shares it. Every fresh read on the worker goes through
	 * qn_wk_now(), so ngtcp2 never sees time go backwards. */
	if (!wk->w || engine_worker_now_us(wk->w) != wk->rx_ts_pass_us) {
		qn_wk_now(wk);
		wk->rx_ts_pass_us = wk->w ? engine_worker_now_us(wk->w) : 0;
	}
	quic_ep_input(wk->ep, buf, len, wk->rx_ll ? (struct sockaddr *)&wk->rx_ls : NULL,
		      wk->rx_ll, (struct sockaddr *)&wk->rx_rs, wk->rx_rl, wk->rx_ts_ns);
	qn_kick(wk);
}

static void fwd_run(struct engine_worker *w, void *arg)
{
	struct qn_fwd *f = arg;
	struct quic_node *qn = f->qn;
	struct qn_worker *wk;

	if (!qn_cmd_enter(qn)) {
		wk = qn->wk[engine_worker_index(w)];
		wk->w = w;
		wk->fwd_in++;
		input(wk, f->data, f->len, &f->src, &f->dst);
	}
	free(f);
	qn_put(qn);
}

static void qn_rx(struct engine_worker *w, const struct engine_pkt *pkt, void *arg)
{
	struct quic_node *qn = arg;
	struct qn_worker *wk = qn->wk[engine_worker_index(w)];
	int owner;

	wk->w = w;
	owner = qn_path_route(qn, pkt->data, pkt->len);
	if (owner < 0 && pkt->len && !(pkt->data[0] & 0xc0) && qn->o.on_stun) {
		/* Not QUIC (the fixed bit 0x40 is always set, RFC 9000 17):
		 * STUN shares the port (RFC 7983's demultiplexing). */
		uint8_t out[CONN_STUN_MAX_REPLY];
		int n = qn->o.on_stun(qn->o.stun_arg, pkt->data, pkt->len, &pkt->src, out, sizeof(out));

		if (n > 0 && !engine_send(w, &pkt->src, &pkt->dst, out, (size_t)n))
			wk->stun_answered++;
		else
			wk->stun_dropped++;
		return;
	}
	if (owner < 0)
		owner = quic_cid_route(pkt->data, pkt->len, qn->nworkers);
	if (owner >= 0 && (unsigned int)owner != wk->idx) {
		/* Another worker owns this connection id: hand it over. */
		struct qn_fwd *f = malloc(sizeof(*f) + pkt->len);

		if (!f) {
			wk->fwd_drop++;
			return;
		}
		f->qn = qn;
		f->src = pkt->src;
		f->dst = pkt->dst;
		f->len = pkt->len;
		memcpy(f->data, pkt->data, pkt->len);
		if (qn_call(qn, (unsigned int)owner, fwd_run, f)) {
			wk->fwd_drop++;
			free(f);
			return;
		}
		wk->fwd_out++;
		return;
	}
	input(wk, pkt->data, pkt->len, &pkt->src, &pkt->dst);
}

/* -------------------------------------------------------- application */

enum qn_op_kind { OP_CONNECT, OP_OPEN, OP_WRITE, OP_RESET, OP_CLOSE };

struct qn_op {
	struct quic_node *qn;
	enum qn_op_kind kind;
	uint64_t conn;
	int64_t sid;
	uint64_t u; /* stype / token / code */
	uint64_t token;
	int fin;
	/* connect */
	struct quic_node_handler h;
	void *arg;
	struct sockaddr_storage remote, local;
	socklen_t remote_len, local_len;
	uint8_t key[QUIC_KEY_LEN];
	int have_key;
	size_t len;
	uint8_t data[];
};

static void op_free(void *arg)
{
	struct qn_op *op = arg;

	if (op)
		qn_buf_put(op->qn, op, sizeof(*op) + op->len);
}

static void op_connect(struct qn_worker *wk, struct qn_op *op)
{
	struct quic_close_info info = {.reason = QUIC_CLOSE_NONE};
	struct quic_conn *qc;
	struct qn_conn *c;
	int rc;

	c = conn_new(wk, op->conn);
	if (!c) {
		rc = -ENOMEM;
		goto fail;
	}
	c->h = op->h;
	c->arg = op->arg;
	c->dialed = 1;
	c->t_start_ns = qn_now_ns(wk->qn);
	rc = quic_ep_connect_from(wk->ep, (struct sockaddr *)&op->local, op->local_len,
				  (struct sockaddr *)&op->remote, op->remote_len,
				  op->have_key ? op->key : NULL, c->t_start_ns, &qc);
	if (rc) {
		conn_free(wk, c);
		goto fail;
	}
	/* A failure inside connect (nothing sent yet) arrives as on_closed
	 * later, never during the call. */
	c->qc = qc;
	quic_conn_set_user(qc, c);
	qn_kick(wk);
	return;
fail:
	wk->app_errors++;
	if (op->h.connected)
		op->h.connected(op->arg, op->conn, rc, NULL);
	if (op->h.closed)
		op->h.closed(op->arg, op->conn, &info);
}

static void op_run(struct engine_worker *w, void *arg)
{
	struct qn_op *op = arg;
	struct quic_node *qn = op->qn;
	struct qn_worker *wk;
	struct qn_stream *s = NULL;
	struct qn_conn *c;
	int rc;

	if (qn_cmd_enter(qn)) {
		/* Node gone: owners of a dial still hear closed(). */
		struct quic_close_info info = {.reason = QUIC_CLOSE_ENDPOINT};

		if (op->kind == OP_CONNECT && op->h.closed)
			op->h.closed(op->arg, op->conn, &info);
		if (op->kind == OP_WRITE)
			atomic_fetch_sub(&qn->queued, op->len);
		goto out;
	}
	wk = qn->wk[engine_worker_index(w)];
	wk->w = w;
	quic_ep_set_now(wk->ep, qn_wk_now(wk));
	if (op->kind == OP_CONNECT) {
		op_connect(wk, op);
		goto out;
	}
	c = qn_conn_find(wk, op->conn);
	if (c && c->qc && op->kind != OP_OPEN && op->kind != OP_CLOSE)
		s = qn_stream_get(c, op->sid);
	switch (op->kind) {
	case OP_OPEN:
		rc = c ? qn_stream_open_now(wk, c, op->u, &s) : -ENOTCONN;
		if (rc)
			wk->app_errors++;
		if (c && !c->dialed && op->u >= QUIC_NODE_ST_APP_MIN) {
			/* Accepted connection: the registered type hears it. */
			for (unsigned int i = 0; i < qn->ntypes; i++)
				if (qn->types[i].stype == op->u && qn->types[i].h.stream_opened)
					qn->types[i].h.stream_opened(qn->types[i].arg, c->id,
								     op->token, rc ? -1 : s->sid,
								     rc);
		} else if (c && c->h.stream_opened) {
			c->h.stream_opened(c->arg, c->id, op->token, rc ? -1 : s->sid, rc);
		}
		break;
	case OP_WRITE:
		/* op->len stays counted in qn->queued until the pump moves
		 * the bytes into the send buffer. */
		/* The op's bytes are queued in place: the op is freed once
		 * the stream no longer reads them. */
		if (!s || stream_queue(wk, c, s, op->data, op->len, op->fin, 1, op)) {
			atomic_fetch_sub(&qn->queued, op->len);
			wk->app_errors++;
		} else {
			op = NULL;
		}
		break;
	case OP_RESET:
		if (s)
			qn_stream_fail(wk, c, s, op->u);
		else
			wk->app_errors++;
		break;
	case OP_CLOSE:
		if (c && c->qc)
			quic_conn_close(c->qc, op->u, NULL);
		break;
	case OP_CONNECT:
		break;
	}
	qn_kick(wk);
out:
	op_free(op);
	qn_put(qn);
}

struct qn_raw {
	struct quic_node *qn;
	struct io_addr to;
	size_t len;
	uint8_t data[];
};

static void raw_run(struct engine_worker *w, void *arg)
{
	struct qn_raw *r = arg;
	struct quic_node *qn = r->qn;

	if (!qn_cmd_enter(qn)) {
		if (engine_send(w, &r->to, NULL, r->data, r->len))
			qn->wk[engine_worker_index(w)]->app_errors++;
		engine_flush(w);
	}
	free(r);
	qn_put(qn);
}

int quic_node_send_raw(struct quic_node *qn, const struct io_addr *to, const void *buf,
		       size_t len)
{
	struct qn_raw *r;
	int rc;

	if (!qn || !to || !buf || !len || len > 1500)
		return -EINVAL;
	r = malloc(sizeof(*r) + len);
	if (!r)
		return -ENOMEM;
	r->qn = qn;
	r->to = *to;
	r->len = len;
	memcpy(r->data, buf, len);
	rc = qn_call(qn, 0, raw_run, r);
	if (rc)
		free(r);
	return rc;
}

static int post(struct quic_node *qn, struct qn_op *op)
{
	unsigned int worker = (unsigned int)(op->conn & 0xff);
	int rc;

	if (worker >= qn->nworkers) {
		op_free(op);
		return -EINVAL;
	}
	op->qn = qn;
	rc = qn_call(qn, worker, op_run, op);
	if (rc)
		op_free(op);
	return rc;
}

/* The local address the engine's backend (simulated network) or else the
 * kernel would use towards remote (route lookup through a connected UDP
 * socket; nothing is sent), with our port. */
static int route_local(struct engine *eng, const struct sockaddr *remote, socklen_t rlen,
		       uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct io_addr dst, loc;
	int fd, err = 0;

	if (!io_addr_from_sockaddr(&dst, remote, rlen)) {
		err = engine_local_addr(eng, &dst, &loc);
		if (!err) {
			loc.port = port;
			err = io_addr_to_sockaddr(&loc, loc.family, ss);
			if (err < 0)
				return err;
			*len = (socklen_t)err;
			return 0;
		}
		if (err != -EOPNOTSUPP)
			return err;
		err = 0;
	}
	fd = socket(remote->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	*len = sizeof(*ss);
	if (connect(fd, remote, rlen) || getsockname(fd, (struct sockaddr *)ss, len))
		err = -errno;
	close(fd);
	if (err)
		return err;
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	return 0;
}

int quic_node_connect_addr(struct quic_node *qn, const struct sockaddr *addr, socklen_t len,
			   const uint8_t *expected_key, const struct quic_node_handler *h,
			   void *arg, uint64_t *conn)
{
	struct qn_op *op;
	unsigned int worker;
	int rc;

	if (!qn || !addr || !len || len > sizeof(struct sockaddr_storage) || !conn)
		return -EINVAL;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	memcpy(&op->remote, addr, len);
	op->remote_len = len;
	rc = route_local(qn->eng, addr, len, qn->port, &op->local, &op->local_len);
	if (rc) {
		op_free(op);
		return rc == -ENETUNREACH ? rc : -EINVAL;
	}
	if (expected_key) {
		memcpy(op->key, expected_key, QUIC_KEY_LEN);
		op->have_key = 1;
	}
	if (h)
		op->h = *h;
	op->arg = arg;
	op->kind = OP_CONNECT;
	worker = atomic_fetch_add(&qn->rr, 1) % qn->nworkers;
	op->conn = new_id(qn, worker);
	*conn = op->conn;
	return post(qn, op);
}

int quic_node_connect(struct quic_node *qn, const char *target, const struct quic_node_handler *h,
		      void *arg, uint64_t *conn)
{
	struct sockaddr_storage ss;
	uint8_t key[QUIC_KEY_LEN];
	socklen_t sl;
	int have_key, rc;

	if (!qn)
		return -EINVAL;
	rc = quic_node_parse_target(target, qn->port, key, &have_key, &ss, &sl);
	if (rc)
		return rc;
	return quic_node_connect_addr(qn, (struct sockaddr *)&ss, sl, have_key ? key : NULL, h, arg,
				      conn);
}

/* A command (write: with room for its data, which the caller fills); freed
 * with op_free(), also from a stream's queue (qn_wbuf.mem). */
static struct qn_op *op_new(struct quic_node *qn, enum qn_op_kind kind, uint64_t conn, size_t len)
{
	struct qn_op *op = qn_buf_get(qn, sizeof(*op) + len);

	if (op) {
		memset(op, 0, sizeof(*op));
		op->qn = qn;
		op->kind = kind;
		op->conn = conn;
		op->len = len;
	}
	return op;
}

int quic_node_stream_open(struct quic_node *qn, uint64_t conn, uint64_t stype, uint64_t token)
{
	struct qn_op *op;

	if (!qn || stype > QUIC_VARINT_MAX)
		return -EINVAL;
	op = op_new(qn, OP_OPEN, conn, 0);
	if (!op)
		return -ENOMEM;
	op->u = stype;
	op->token = token;
	return post(qn, op);
}

int quic_node_write(struct quic_node *qn, uint64_t conn, int64_t sid, const void *data, size_t len,
		    int fin)
{
	struct qn_op *op;
	int rc;

	if (!qn || (!data && len))
		return -EINVAL;
	if (atomic_fetch_add(&qn->queued, len) + len > qn->max_queued && len) {
		atomic_fetch_sub(&qn->queued, len);
		return -ENOBUFS;
	}
	op = op_new(qn, OP_WRITE, conn, len);
	if (!op) {
		atomic_fetch_sub(&qn->queued, len);
		return -ENOMEM;
	}
	op->sid = sid;
	op->fin = fin;
	if (len)
		memcpy(op->data, data, len);
	rc = post(qn, op);
	if (rc)
		atomic_fetch_sub(&qn->queued, len);
	return rc;
}

int quic_node_stream_reset(struct quic_node *qn, uint64_t conn, int64_t sid, uint64_t code)
{
	struct qn_op *op;

	if (!qn)
		return -EINVAL;
	op = op_new(qn, OP_RESET, conn, 0);
	if (!op)
		return -ENOMEM;
	op->sid = sid;
	op->u = code;
	return post(qn, op);
}

int quic_node_close(struct quic_node *qn, uint64_t conn, uint64_t app_error_code)
{
	struct qn_op *op;

	if (!qn)
		return -EINVAL;
	op = op_new(qn, OP_CLOSE, conn, 0);
	if (!op)
		return -ENOMEM;
	op->u = app_error_code;
	return post(qn, op);
}

int quic_node_register(struct quic_node *qn, uint64_t stype, const struct quic_node_handler *h,
		       void *arg)
{
	unsigned int i;

	if (!qn || !h || stype < QUIC_NODE_ST_APP_MIN || stype > QUIC_VARINT_MAX)
		return -EINVAL;
	for (i = 0; i < qn->ntypes; i++)
		if (qn->types[i].stype == stype)
			return -EEXIST;
	if (qn->ntypes == QUIC_NODE_DEF_MAX_TYPES)
		return -ENOSPC;
	qn->types[qn->ntypes].stype = stype;
	qn->types[qn->ntypes].h = *h;
	qn->types[qn->ntypes].arg = arg;
	qn->ntypes++;
	return 0;
}

/* ------------------------------------------------------------ lifecycle */

static void worker_free(struct qn_worker *wk)
{
	if (!wk)
		return;
	/* Workers are stopped: the wheel is ours to touch. */
	if (wk->w)
		engine_timer_cancel(wk->w, &wk->timer);
	qn_path_stop_worker(wk);
	quic_ep_free(wk->ep); /* closed() for every connection still open */
	while (wk->conns) {
		struct quic_close_info info = {.reason = QUIC_CLOSE_ENDPOINT};

		conn_report_closed(wk, wk->conns, &info);
	}
	free(wk->scratch);
	if (wk->genblk)
		genblk_unref(wk->genblk); /* the streams' references went with the endpoint */
	free(wk);
}

void quic_node_free(struct quic_node *qn)
{
	unsigned int i;

	if (!qn)
		return;
	engine_stop(qn->eng);
	for (i = 0; i < qn->nworkers; i++)
		worker_free(qn->wk[i]);
	/* Commands still queued run in engine_free(): they see dead and only
	 * release what they carry; the last reference frees the node. */
	atomic_store(&qn->dead, 1);
	qn_put(qn);
}

int quic_node_new(struct quic_node **out, const struct quic_node_opts *opts)
{
	struct quic_ep_opts eo;
	struct quic_node *qn;
	unsigned int i;
	int rc;

	*out = NULL;
	if (!opts || !opts->eng || !opts->id)
		return -EINVAL;
	qn = calloc(1, sizeof(*qn));
	if (!qn)
		return -ENOMEM;
	atomic_init(&qn->refs, 1);
	atomic_init(&qn->serial, 1);
	qn->eng = opts->eng;
	qn->port = opts->port ? opts->port : QUIC_NODE_DEF_PORT;
	qn->max_queued = opts->max_queued ? opts->max_queued : QUIC_NODE_DEF_MAX_QUEUED;
	qn->o = *opts;
	pthread_mutex_init(&qn->budget_mu, NULL);
	pthread_mutex_init(&qn->buf_mu, NULL);
	rc = path_budget_new(&qn->budget, opts->punch_peer_attempts, opts->punch_peer_window_s, 0);
	if (rc)
		goto fail;
	qn->nworkers = engine_workers(opts->eng);
	qn->idle_timeout_ms = opts->idle_timeout_ms;
	if (!qn->nworkers || qn->nworkers > 256) {
		rc = -EINVAL;
		goto fail;
	}

	memset(&eo, 0, sizeof(eo));
	eo.node_pk = opts->id->pk;
	eo.node_sk = opts->id->sk;
	eo.server = 1;
	eo.max_conns = opts->max_conns;
	eo.max_conns_per_addr = opts->max_conns_per_addr;
	eo.max_streams_bidi = opts->max_streams;
	eo.max_streams_uni = opts->max_streams;
	eo.retry_rate = opts->retry_rate;
	eo.idle_timeout_ms = qn->idle_timeout_ms;
	eo.handshake_timeout_ms = opts->handshake_timeout_ms;
	eo.keepalive_ms = opts->keepalive_ms;
	eo.cid_route_count = qn->nworkers;
	eo.send = qn_send;
	eo.cb.on_conn = cb_conn;
	eo.cb.on_stream_open = cb_stream_open;
	eo.cb.on_stream_data = cb_stream_data;
	eo.cb.on_stream_close = cb_stream_close;
	eo.cb.on_stream_writable = cb_stream_writable;
	eo.cb.on_closed = cb_closed;
	for (i = 0; i < qn->nworkers; i++) {
		struct qn_worker *wk = calloc(1, sizeof(*wk));

		if (!wk) {
			rc = -ENOMEM;
			goto fail;
		}
		qn->wk[i] = wk;
		wk->qn = qn;
		wk->idx = i;
		engine_timer_init(&wk->timer, qn_timer_fn, wk);
		qn_path_init_worker(wk);
		wk->scratch = malloc(QN_GEN_CHUNK);
		if (!wk->scratch) {
			rc = -ENOMEM;
			goto fail;
		}
		eo.cid_route_index = i;
		eo.send_arg = wk;
		eo.cb_arg = wk;
		rc = quic_ep_new(&wk->ep, &eo);
		if (rc)
			goto fail;
	}
	rc = engine_register(qn->eng, qn->port, qn_rx, qn);
	if (rc)
		goto fail;
	/* Routes cannot be taken back: a full route table costs the control
	 * endpoints, not the transport. */
	if (opts->ctl && (rc = qn_ctl_register(qn, opts->ctl)))
		log_warn("quic", "control routes: %s", strerror(-rc));
	log_info("quic", "QUIC on udp %u: %u endpoint(s), routed by connection id", qn->port,
		 qn->nworkers);
	*out = qn;
	return 0;
fail:
	for (i = 0; i < qn->nworkers; i++) {
		if (qn->wk[i]) {
			quic_ep_free(qn->wk[i]->ep);
			free(qn->wk[i]->scratch);
			free(qn->wk[i]);
		}
	}
	path_budget_free(qn->budget);
	pthread_mutex_destroy(&qn->budget_mu);
	free(qn);
	return rc;
}
