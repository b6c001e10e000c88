/* SPDX-License-Identifier: MIT */
/*
 * A QUIC test world over quic_sim.h: a server and clients, each with an
 * application that records connections, streams (checking every byte
 * against a pattern), datagrams and closes; bulk transfers. Header-only,
 * shared by the QUIC endpoint tests (test_quic_core.c, test_quic_pmtu.c).
 */
#ifndef WEFT_TEST_QUIC_WORLD_H
#define WEFT_TEST_QUIC_WORLD_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "quic_sim.h"

#define MAX_CONNS_REC 256

struct crec {
	struct quic_conn *c;
	uint8_t peer[QUIC_KEY_LEN];
	uint64_t rx_off;   /* bytes received on the data stream */
	int rx_fin, rx_bad, msgs;
	int64_t sid;
};

struct app {
	struct sim_node *node;
	int echo;
	int nconn, nclosed, nstreams_closed, ndgram, writable;
	struct quic_close_info last_close;
	struct crec recs[MAX_CONNS_REC];
	int nrecs;
	uint8_t dgram[64];
	size_t dgram_len;
	/* echo bytes the send buffer did not take yet (one stream) */
	uint8_t *eb;
	size_t eb_len, eb_cap;
	int eb_fin;
	struct quic_conn *eb_c;
	int64_t eb_sid;
};

/* Send what the echo backlog holds, as far as the send buffer takes it. */
static inline void echo_drain(struct app *a)
{
	ssize_t n;

	if (!a->eb_c || (!a->eb_len && !a->eb_fin))
		return;
	n = quic_stream_send(a->eb_c, a->eb_sid, a->eb, a->eb_len, a->eb_fin);
	assert_true(n >= 0);
	memmove(a->eb, a->eb + n, a->eb_len - (size_t)n);
	a->eb_len -= (size_t)n;
	if (!a->eb_len)
		a->eb_fin = 0;
}

struct world;
static inline void tx_forget(struct sim *s, struct quic_conn *c);

static inline uint8_t pat(uint64_t off)
{
	return (uint8_t)((off * 2654435761ULL) >> 11);
}

static inline struct crec *rec_of(struct app *a, struct quic_conn *c)
{
	int i;

	for (i = 0; i < a->nrecs; i++)
		if (a->recs[i].c == c)
			return &a->recs[i];
	if (a->nrecs == MAX_CONNS_REC)
		return NULL;
	memset(&a->recs[a->nrecs], 0, sizeof(a->recs[0]));
	a->recs[a->nrecs].c = c;
	return &a->recs[a->nrecs++];
}

static inline void on_conn(void *arg, struct quic_conn *c, const uint8_t *peer)
{
	struct app *a = arg;
	struct crec *r = rec_of(a, c);

	a->nconn++;
	if (r)
		memcpy(r->peer, peer, QUIC_KEY_LEN);
}

static inline void on_data(void *arg, struct quic_conn *c, int64_t sid, const uint8_t *d, size_t len,
		    int fin)
{
	struct app *a = arg;
	struct crec *r = rec_of(a, c);
	size_t i;

	if (!r)
		return;
	for (i = 0; i < len; i++)
		if (d[i] != pat(r->rx_off + i))
			r->rx_bad++;
	r->rx_off += len;
	r->sid = sid;
	if (fin) {
		r->rx_fin = 1;
		r->msgs++;
	}
	if (a->echo) {
		/* In order: behind anything still waiting for buffer room. */
		if (a->eb_len + len > a->eb_cap) {
			a->eb_cap = (a->eb_len + len) * 2;
			a->eb = realloc(a->eb, a->eb_cap);
			assert_non_null(a->eb);
		}
		memcpy(a->eb + a->eb_len, d, len);
		a->eb_len += len;
		a->eb_fin |= fin;
		a->eb_c = c;
		a->eb_sid = sid;
		echo_drain(a);
	}
}

static inline void on_sclose(void *arg, struct quic_conn *c, int64_t sid, int has, uint64_t code)
{
	((struct app *)arg)->nstreams_closed++;
}

static inline void on_writable(void *arg, struct quic_conn *c, int64_t sid)
{
	struct app *a = arg;

	a->writable++;
	if (a->eb_c == c && a->eb_sid == sid)
		echo_drain(a);
}

static inline void on_dgram(void *arg, struct quic_conn *c, const uint8_t *d, size_t len)
{
	struct app *a = arg;

	a->ndgram++;
	a->dgram_len = len < sizeof(a->dgram) ? len : sizeof(a->dgram);
	memcpy(a->dgram, d, a->dgram_len);
}

static inline void on_closed(void *arg, struct quic_conn *c, const struct quic_close_info *info)
{
	struct app *a = arg;
	int i;

	a->nclosed++;
	a->last_close = *info;
	tx_forget(a->node->sim, c);
	if (a->eb_c == c)
		a->eb_c = NULL;
	for (i = 0; i < a->nrecs; i++)
		if (a->recs[i].c == c)
			a->recs[i].c = NULL;
}

struct world {
	struct sim sim;
	struct app app[SIM_MAX_NODES];
	struct sim_node *srv;
	struct quic_conn *cli; /* client conn of node 1 */
	/* bulk sender state */
	struct quic_conn *tx_conn;
	int64_t tx_sid;
	uint64_t tx_off, tx_total;
	int tx_fin;
	/* stop condition */
	int want_conns, want_closed_node, want_closed;
	uint64_t want_rx;
};

/* struct world starts with its struct sim */
static inline void tx_forget(struct sim *s, struct quic_conn *c)
{
	struct world *w = (struct world *)s;

	if (w->tx_conn == c)
		w->tx_conn = NULL;
	if (w->cli == c)
		w->cli = NULL;
}

static inline struct sim_node *add_node(struct world *w, struct quic_ep_opts *o)
{
	struct quic_ep_opts d;
	struct sim_node *n;
	struct app *a = &w->app[w->sim.nnodes];
	int rc;

	if (!o) {
		memset(&d, 0, sizeof(d));
		o = &d;
	}
	o->cb.on_conn = on_conn;
	o->cb.on_stream_data = on_data;
	o->cb.on_stream_close = on_sclose;
	o->cb.on_stream_writable = on_writable;
	o->cb.on_datagram = on_dgram;
	o->cb.on_closed = on_closed;
	o->cb_arg = a;
	n = sim_add(&w->sim, o, &rc);
	assert_int_equal(rc, 0);
	a->node = n;
	return n;
}

static inline struct world *world_new_at(uint64_t seed, uint32_t net, struct quic_ep_opts *so)
{
	struct world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	sim_init(&w->sim, seed);
	w->sim.net = net;
	if (!so) {
		static struct quic_ep_opts d;

		memset(&d, 0, sizeof(d));
		so = &d;
	}
	so->server = 1;
	w->srv = add_node(w, so);
	return w;
}

static inline struct world *world_new(uint64_t seed, struct quic_ep_opts *so)
{
	return world_new_at(seed, 0, so);
}

static inline void world_free(struct world *w)
{
	int i;

	sim_free(&w->sim);
	for (i = 0; i < SIM_MAX_NODES; i++)
		free(w->app[i].eb);
	free(w);
}

static inline int stop_conns(void *arg)
{
	struct world *w = arg;
	int i, n = 0;

	for (i = 0; i < w->sim.nnodes; i++)
		n += w->app[i].nconn;
	return n >= w->want_conns;
}

static inline int stop_closed(void *arg)
{
	struct world *w = arg;

	return w->app[w->want_closed_node].nclosed >= w->want_closed;
}

static inline void dial(struct world *w, struct sim_node *from, const uint8_t *key,
		 struct quic_conn **out)
{
	assert_int_equal(quic_ep_connect(from->ep, (struct sockaddr *)&w->srv->addr,
					 sizeof(w->srv->addr), key, w->sim.now, out),
			 0);
}

/* Client node 1 connects to the server and both sides see each other. */
static inline struct world *connected(uint64_t seed, struct quic_ep_opts *so, struct quic_ep_opts *co)
{
	struct world *w = world_new(seed, so);
	struct sim_node *cl = add_node(w, co);

	dial(w, cl, w->srv->pk, &w->cli);
	w->want_conns = 2;
	assert_int_equal(sim_run(&w->sim, stop_conns, NULL, w, 10000 * SIM_MS), 1);
	return w;
}

static inline void bulk_pump(void *arg)
{
	struct world *w = arg;
	uint8_t buf[16384];
	size_t i, n;
	ssize_t r;

	while (w->tx_conn && w->tx_off < w->tx_total) {
		n = w->tx_total - w->tx_off < sizeof(buf) ? w->tx_total - w->tx_off : sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = pat(w->tx_off + i);
		r = quic_stream_send(w->tx_conn, w->tx_sid, buf, n, w->tx_off + n == w->tx_total);
		assert_true(r >= 0);
		w->tx_off += (uint64_t)r;
		if ((size_t)r < n)
			break;
	}
}

static inline int stop_rx(void *arg)
{
	struct world *w = arg;
	struct app *a = &w->app[w->want_closed_node];

	return a->nrecs > 0 && a->recs[0].rx_fin && a->recs[0].rx_off >= w->want_rx;
}

/* Send total bytes client -> server on a new stream and wait for them. */
static inline void transfer(struct world *w, uint64_t total, int bidi, uint64_t budget_ns)
{
	struct app *sa = &w->app[0];

	assert_int_equal(quic_stream_open(w->cli, bidi, &w->tx_sid), 0);
	w->tx_conn = w->cli;
	w->tx_off = 0;
	w->tx_total = total;
	w->want_rx = total;
	w->want_closed_node = 0; /* stop_rx looks at the server app */
	assert_int_equal(sim_run(&w->sim, stop_rx, bulk_pump, w, budget_ns), 1);
	assert_int_equal(sa->recs[0].rx_off, total);
	assert_int_equal(sa->recs[0].rx_bad, 0);
	assert_int_equal(sa->recs[0].rx_fin, 1);
}

static inline void pumped_transfer_n(struct world *w, void (*pump)(void *), uint64_t total)
{
	assert_int_equal(quic_stream_open(w->cli, 0, &w->tx_sid), 0);
	w->tx_conn = w->cli;
	w->tx_total = total;
	w->want_rx = w->tx_total;
	w->want_closed_node = 0;
	assert_int_equal(sim_run(&w->sim, stop_rx, pump, w, 100000 * SIM_MS), 1);
	assert_int_equal(w->app[0].recs[0].rx_bad, 0);
}

static inline void pumped_transfer(struct world *w, void (*pump)(void *))
{
	pumped_transfer_n(w, pump, 4ULL << 20);
}

#endif
