// SPDX-License-Identifier: MIT
/*
 * The node's connection records on a worker: ids (the owning worker in the
 * low byte), creation, lookup (a table by id: a seed's worker holds up
 * to quic.max_conns, 4096, and every stream operation looks its
 * connection up), and the end: closed() to the owner, its
 * open streams' stream_closed(), then the record's streams and path go.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quic/quic_node_int.h"

static size_t chash_at(uint64_t id, size_t n)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & (n - 1);
}

/* Twice the chains (or the first QN_CONN_HASH_MIN), every record moved
 * over; on no memory the old table stays. */
static void chash_grow(struct qn_worker *wk)
{
	size_t n = wk->nchash ? 2 * wk->nchash : QN_CONN_HASH_MIN;
	struct qn_conn **t, *c;

	if (n > QN_CONN_HASH_MAX || !(t = calloc(n, sizeof(*t))))
		return;
	for (c = wk->conns; c; c = c->next) {
		size_t i = chash_at(c->id, n);

		c->hnext = t[i];
		t[i] = c;
	}
	free(wk->chash);
	wk->chash = t;
	wk->nchash = n;
}

struct qn_conn *qn_conn_new(struct qn_worker *wk, uint64_t id)
{
	struct qn_conn *c = calloc(1, sizeof(*c));
	size_t n;

	if (!c)
		return NULL;
	c->id = id;
	c->next = wk->conns;
	if (wk->conns)
		wk->conns->prev = c;
	wk->conns = c;
	wk->nconns++;
	n = wk->nchash;
	if (wk->nconns > n)
		chash_grow(wk); /* c is on the list: moved with the rest */
	if (wk->nchash && wk->nchash == n) { /* not grown: c goes in */
		size_t i = chash_at(id, n);

		c->hnext = wk->chash[i];
		wk->chash[i] = c;
	}
	/* no table at all (no memory for the first): lookups walk the list */
	return c;
}

void qn_conn_free(struct qn_worker *wk, struct qn_conn *c)
{
	qn_path_free(wk, c);
	while (c->streams)
		qn_stream_free(wk->qn, c, c->streams);
	if (wk->nchash) {
		struct qn_conn **p = &wk->chash[chash_at(c->id, wk->nchash)];

		while (*p && *p != c)
			p = &(*p)->hnext;
		if (*p)
			*p = c->hnext;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		wk->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	wk->nconns--;
	free(c);
}

void qn_conn_table_free(struct qn_worker *wk)
{
	free(wk->chash);
	wk->chash = NULL;
	wk->nchash = 0;
}

struct qn_conn *qn_conn_find(struct qn_worker *wk, uint64_t id)
{
	struct qn_conn *c;

	if (wk->nchash) {
		for (c = wk->chash[chash_at(id, wk->nchash)]; c; c = c->hnext)
			if (c->id == id)
				return c;
		return NULL;
	}
	for (c = wk->conns; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

/* conn's record on its worker (the handle names the worker) while its
 * QUIC connection is open; NULL otherwise. On that worker. */
static struct qn_conn *conn_open(struct quic_node *qn, uint64_t conn)
{
	unsigned int w = (unsigned int)(conn & 0xff); /* see qn_conn_id_new() */
	struct qn_conn *c;

	if (!qn || w >= qn->nworkers || !qn->wk[w])
		return NULL;
	c = qn_conn_find(qn->wk[w], conn);
	return c && c->qc ? c : NULL;
}

int quic_node_conn_peer(struct quic_node *qn, uint64_t conn, uint8_t key[QUIC_KEY_LEN],
			struct sockaddr_storage *addr)
{
	struct qn_conn *c = conn_open(qn, conn);
	struct quic_conn_info info;

	if (!c || quic_conn_get_info(c->qc, &info) || !info.have_peer_key)
		return -ENOTCONN;
	memcpy(key, info.peer_key, QUIC_KEY_LEN);
	memcpy(addr, &info.remote, sizeof(*addr));
	return 0;
}

int quic_node_conn_rtt(struct quic_node *qn, uint64_t conn, uint64_t *srtt_ns,
		       uint64_t *min_rtt_ns)
{
	struct qn_conn *c = conn_open(qn, conn);
	struct quic_conn_info info;

	if (!c || quic_conn_get_info(c->qc, &info))
		return -ENOTCONN;
	*srtt_ns = info.smoothed_rtt_ns;
	*min_rtt_ns = info.min_rtt_ns;
	return 0;
}

int quic_node_conn_sendq(struct quic_node *qn, uint64_t conn, struct quic_node_sendq *q)
{
	struct qn_conn *c = conn_open(qn, conn);

	if (!c)
		return -ENOTCONN;
	q->queued = c->wq_bytes;
	quic_conn_unacked(c->qc, &q->unacked, &q->still_ns);
	return 0;
}

int quic_node_stream_live(struct quic_node *qn, uint64_t conn, int64_t sid)
{
	struct qn_conn *c = conn_open(qn, conn);
	struct qn_stream *s;

	if (!c)
		return 0;
	s = qn_stream_get(c, sid);
	return s && !s->dead;
}

unsigned int quic_node_conn_worker(const struct quic_node *qn, uint64_t conn)
{
	unsigned int w = (unsigned int)(conn & 0xff); /* see qn_conn_id_new() */

	return qn && w < qn->nworkers ? w : 0;
}

unsigned int quic_node_workers(const struct quic_node *qn)
{
	return qn ? qn->nworkers : 0;
}


uint64_t qn_conn_id_new(struct quic_node *qn, unsigned int worker)
{
	return (atomic_fetch_add(&qn->serial, 1) << 8) | worker;
}

void qn_conn_report_closed(struct qn_worker *wk, struct qn_conn *c,
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

		h = qn_stream_handler(c, s, &harg);
		if (h && h->stream_closed && s->typed && !s->dead)
			h->stream_closed(harg, c->id, s->sid, err ? err : -ECONNABORTED);
	}
	if (c->h.closed)
		c->h.closed(c->arg, c->id, info);
	qn_conn_free(wk, c);
}
