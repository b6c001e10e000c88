// SPDX-License-Identifier: MIT
/*
 * The application API of the node: every call (dial, open, write, reset,
 * close, raw send) becomes a command block posted to the worker that owns
 * the connection (qn_call) and run there; dials pick a worker round-robin
 * and the local address the route to the peer uses. Completions reach the
 * caller through its handler (connected, stream_opened, closed). Stream
 * types are registered here before the node runs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quic/quic_node_int.h"

static void op_connect(struct qn_worker *wk, struct qn_op *op)
{
	struct quic_close_info info = {.reason = QUIC_CLOSE_NONE};
	struct quic_conn *qc;
	struct qn_conn *c;
	int rc;

	c = qn_conn_new(wk, op->conn);
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
		qn_conn_free(wk, c);
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
	int rc, prefixed = 0;

	if (qn_cmd_enter(qn)) {
		/* Node gone: owners of a dial still hear closed(). */
		struct quic_close_info info = {.reason = QUIC_CLOSE_ENDPOINT};

		if (op->kind == OP_CONNECT && op->h.closed)
			op->h.closed(op->arg, op->conn, &info);
		if (op->kind == OP_WRITE || op->kind == OP_OPEN)
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
		/* quic_node_stream_open_write: the first bytes go with the
		 * open, after stream_opened() heard the id (so the owner of
		 * the stream knows it before any answer can arrive). */
		if (op->len || op->fin) {
			if (rc || qn_stream_queue(wk, c, s, op->data, op->len, op->fin, 1, op))
				atomic_fetch_sub(&qn->queued, op->len);
			else
				op = NULL;
		}
		break;
	case OP_WRITE:
		/* op->len stays counted in qn->queued until the pump moves
		 * the bytes into the send buffer. */
		/* The op's bytes are queued in place: the op is freed once
		 * the stream no longer reads them. */
		/* A lent write's prefix first (quic_node_write_lent): once
		 * queued it is counted as queue_take's, and what follows it
		 * must be queued too, or the stream ends. */
		if (s && op->plen) {
			if (qn_stream_queue(wk, c, s, op->prefix, op->plen, 0, 1, NULL)) {
				s = NULL; /* refused: nothing queued */
			} else {
				op->len -= op->plen;
				prefixed = 1;
			}
		}
		if (!s || qn_stream_queue(wk, c, s, op->data, op->len, op->fin, 1, op)) {
			atomic_fetch_sub(&qn->queued, op->len);
			wk->app_errors++;
			if (prefixed)
				qn_stream_fail(wk, c, s, QN_ERR_INTERNAL);
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
	qn_op_free(op);
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
		qn_op_free(op);
		return -EINVAL;
	}
	op->qn = qn;
	rc = qn_call(qn, worker, op_run, op);
	if (rc)
		qn_op_free(op);
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
		qn_op_free(op);
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
	op->conn = qn_conn_id_new(qn, worker);
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

int quic_node_stream_open(struct quic_node *qn, uint64_t conn, uint64_t stype, uint64_t token)
{
	struct qn_op *op;

	if (!qn || stype > QUIC_VARINT_MAX)
		return -EINVAL;
	op = qn_op_new(qn, OP_OPEN, conn, 0);
	if (!op)
		return -ENOMEM;
	op->u = stype;
	op->token = token;
	return post(qn, op);
}

/* Count len bytes of a write against max_queued until the worker takes
 * them (a refused post gives them back): 0, or -ENOBUFS (not counted). */
static int queue_take(struct quic_node *qn, size_t len)
{
	if (atomic_fetch_add(&qn->queued, len) + len > qn->max_queued && len) {
		atomic_fetch_sub(&qn->queued, len);
		return -ENOBUFS;
	}
	return 0;
}

/* A command carrying stream bytes (counted: queue_take). */
static int data_op_new(struct quic_node *qn, enum qn_op_kind kind, uint64_t conn,
		       const void *data, size_t len, int fin, struct qn_op **out)
{
	struct qn_op *op;

	if (queue_take(qn, len))
		return -ENOBUFS;
	op = qn_op_new(qn, kind, conn, len);
	if (!op) {
		atomic_fetch_sub(&qn->queued, len);
		return -ENOMEM;
	}
	op->fin = fin;
	if (len)
		memcpy(op->data, data, len);
	*out = op;
	return 0;
}

static int post_data(struct quic_node *qn, struct qn_op *op, size_t len)
{
	int rc = post(qn, op);

	if (rc)
		atomic_fetch_sub(&qn->queued, len);
	return rc;
}

int quic_node_stream_open_write(struct quic_node *qn, uint64_t conn, uint64_t stype,
				uint64_t token, const void *data, size_t len, int fin)
{
	struct qn_op *op;
	int rc;

	if (!qn || stype > QUIC_VARINT_MAX || (!data && len))
		return -EINVAL;
	rc = data_op_new(qn, OP_OPEN, conn, data, len, fin, &op);
	if (rc)
		return rc;
	op->u = stype;
	op->token = token;
	return post_data(qn, op, len);
}

int quic_node_write(struct quic_node *qn, uint64_t conn, int64_t sid, const void *data, size_t len,
		    int fin)
{
	struct qn_op *op;
	int rc;

	if (!qn || (!data && len))
		return -EINVAL;
	rc = data_op_new(qn, OP_WRITE, conn, data, len, fin, &op);
	if (rc)
		return rc;
	op->sid = sid;
	return post_data(qn, op, len);
}

struct quic_node_wbuf *quic_node_wbuf_new(struct quic_node *qn, size_t cap, size_t align_at,
				      uint8_t **data)
{
	struct qn_op *op;

	if (!qn || !data || align_at > cap || cap > qn->max_queued)
		return NULL;
	op = qn_op_new_at(qn, OP_WRITE, 0, cap, align_at);
	if (!op)
		return NULL;
	*data = op->data;
	return (struct quic_node_wbuf *)op;
}

void quic_node_wbuf_free(struct quic_node *qn, struct quic_node_wbuf *w)
{
	(void)qn;
	qn_op_free(w);
}

int quic_node_write_wbuf(struct quic_node *qn, uint64_t conn, int64_t sid,
			 struct quic_node_wbuf *w, size_t len, int fin)
{
	struct qn_op *op = (struct qn_op *)w;

	if (!op)
		return -EINVAL;
	if (!qn || len > op->len) {
		qn_op_free(op);
		return -EINVAL;
	}
	if (queue_take(qn, len)) {
		qn_op_free(op);
		return -ENOBUFS;
	}
	op->conn = conn;
	op->sid = sid;
	op->len = len;
	op->fin = fin;
	return post_data(qn, op, len);
}

int quic_node_write_wbuf_try(struct quic_node *qn, uint64_t conn, int64_t sid,
			     struct quic_node_wbuf *w, size_t len, int fin)
{
	struct qn_op *op = (struct qn_op *)w;
	unsigned int worker = (unsigned int)(conn & 0xff);
	size_t cap;
	int rc;

	if (!qn || !op || len > op->len || worker >= qn->nworkers)
		return -EINVAL;
	if (queue_take(qn, len))
		return -ENOBUFS;
	cap = op->len;
	op->conn = conn;
	op->sid = sid;
	op->len = len;
	op->fin = fin;
	op->qn = qn;
	rc = qn_call(qn, worker, op_run, op);
	if (rc) {
		/* not posted: the caller's again, as it was */
		atomic_fetch_sub(&qn->queued, len);
		op->len = cap;
	}
	return rc;
}

int quic_node_write_lent(struct quic_node *qn, uint64_t conn, int64_t sid, const void *prefix,
			 size_t plen, const void *data, size_t len, int fin,
			 void (*release)(void *arg), void *arg)
{
	unsigned int worker = (unsigned int)(conn & 0xff);
	struct qn_op *op;
	int rc;

	if (!qn || !release || (!data && len) || (!prefix && plen) ||
	    plen > sizeof(op->prefix) || worker >= qn->nworkers)
		return -EINVAL;
	if (queue_take(qn, plen + len))
		return -ENOBUFS;
	op = qn_op_new(qn, OP_WRITE, conn, 0);
	if (!op) {
		atomic_fetch_sub(&qn->queued, plen + len);
		return -ENOMEM;
	}
	op->sid = sid;
	op->fin = fin;
	op->data = (uint8_t *)data;
	/* op_run's OP_WRITE: len counts the prefix until it is queued */
	op->len = plen + len;
	if (plen)
		memcpy(op->prefix, prefix, plen);
	op->plen = plen;
	/* given back when the op is freed: acknowledged, or dropped */
	op->release = release;
	op->rarg = arg;
	rc = qn_call(qn, worker, op_run, op);
	if (rc) {
		/* not posted: the bytes still the caller's */
		atomic_fetch_sub(&qn->queued, plen + len);
		op->release = NULL;
		qn_op_free(op);
	}
	return rc;
}

int quic_node_write_room(struct quic_node *qn, size_t len)
{
	return qn && atomic_load(&qn->queued) + len <= qn->max_queued;
}

int quic_node_stream_reset(struct quic_node *qn, uint64_t conn, int64_t sid, uint64_t code)
{
	struct qn_op *op;

	if (!qn)
		return -EINVAL;
	op = qn_op_new(qn, OP_RESET, conn, 0);
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
	op = qn_op_new(qn, OP_CLOSE, conn, 0);
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
