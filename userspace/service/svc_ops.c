// SPDX-License-Identifier: MIT
/*
 * The service fabric's client side, on its owner (docs/SERVICE.md): the
 * outgoing streams (descriptor fetch, call, HTTP pass-through: struct
 * svcn_op) and the pool of QUIC connections to providers they ride on.
 * The client side's QUIC events come from svc_events.c; a job that waits
 * for an op (svc_find.c, svc_calls.c) is told through its op_done upcall
 * from svcn_ready_run (the owner's tick), never from inside the call that
 * finished the op; a pass-through op feeds its pipe (svc_pipe.c). Nothing
 * here calls the hub or the parts that start ops.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "svc_jobs_int.h"
#include "svc_ops_int.h"
#include "svc_pipe_int.h"
#include "weft/quic_node.h"
#include "weft/util.h"

struct svcn_peer *svcn_peer_by_conn(struct svc_node *sn, uint64_t conn)
{
	for (size_t i = 0; i < SVC_NODE_MAX_PEERS; i++)
		if (sn->peers[i].state && sn->peers[i].conn == conn)
			return &sn->peers[i];
	return NULL;
}

static struct svcn_op *op_by_stream(struct svc_node *sn, uint64_t conn, int64_t sid)
{
	for (struct svcn_op *o = sn->op_sid[svcn_hash(conn, sid)]; o; o = o->snext)
		if (o->conn == conn && o->sid == sid)
			return o;
	return NULL;
}

static struct svcn_op *op_by_token(struct svc_node *sn, uint64_t token)
{
	for (struct svcn_op *o = sn->op_tok[svcn_hash(token, 0)]; o; o = o->tnext)
		if (o->token == token)
			return o;
	return NULL;
}

/* Take o off its connection's count (once). */
static void op_uncount(struct svc_node *sn, struct svcn_op *o)
{
	struct svcn_peer *p;

	if (!o->counted)
		return;
	o->counted = 0;
	p = svcn_peer_by_conn(sn, o->conn);
	if (p && p->streams) {
		p->streams--;
		p->full = 0;
	}
}

static void op_count(struct svc_node *sn, struct svcn_op *o, struct svcn_peer *p)
{
	o->conn = p->conn;
	o->counted = 1;
	p->streams++;
}

/* The svc_err class of a pass-through that ended with err (errno). */
static int op_http_cls(int err)
{
	return !err				 ? SVC_OK
	       : err == -ETIMEDOUT		 ? SVC_ERR_TIMEOUT
	       : err == -EAGAIN || err == -EBUSY ? SVC_ERR_OVERLOADED
						 : SVC_ERR_BACKEND_ERROR;
}

/* o is done: its job hears of it at the next svcn_tick (never from inside
 * a caller of op_finish, which may be iterating the tables), its pipe's
 * reader at once (a pass-through op is freed at that tick). */
static void op_finish(struct svc_node *sn, struct svcn_op *o, int err)
{
	if (o->done)
		return;
	op_uncount(sn, o);
	o->done = 1;
	o->err = err;
	o->t1_ns = svcn_now_ns();
	if (o->pipe)
		svcn_pipe_end(o->pipe, op_http_cls(err), !err);
	if ((o->job || o->pipe) && !o->in_ready) {
		o->in_ready = 1;
		o->rnext = sn->ready;
		sn->ready = o;
	}
}

/* Off the list and both tables (O(1) but for the length of a chain). */
static void op_unlink(struct svc_node *sn, struct svcn_op *op)
{
	struct svcn_op **pp;

	if (op->prev)
		op->prev->next = op->next;
	else if (sn->ops == op)
		sn->ops = op->next;
	else
		return; /* not listed */
	if (op->next)
		op->next->prev = op->prev;
	op->next = op->prev = NULL;
	sn->nops--;
	for (pp = &sn->op_tok[svcn_hash(op->token, 0)]; *pp; pp = &(*pp)->tnext)
		if (*pp == op) {
			*pp = op->tnext;
			break;
		}
	if (op->opened)
		for (pp = &sn->op_sid[svcn_hash(op->conn, op->sid)]; *pp; pp = &(*pp)->snext)
			if (*pp == op) {
				*pp = op->snext;
				break;
			}
}

/* Free op once its waiter let go and it is off the ready list. */
static void op_release(struct svc_node *sn, struct svcn_op *op)
{
	if (!op->put || op->in_ready)
		return;
	op_unlink(sn, op);
	svcn_pipe_put(op->pipe);
	free(op->req);
	free(op->resp);
	free(op);
}

static uint64_t op_stype(int kind)
{
	return kind == SVCN_OP_DESC   ? SVC_NODE_ST_DESC
	       : kind == SVCN_OP_CALL ? SVC_NODE_ST_CALL
				      : SVC_NODE_ST_HTTP;
}

/* Open the op's stream with its request in the same command to the
 * worker (quic_node_stream_open_write): the worker queues the REQUEST as
 * soon as the stream exists, before it tells us the id. */
static void op_open(struct svc_node *sn, struct svcn_op *o)
{
	int err;

	o->t0_ns = svcn_now_ns();
	err = quic_node_stream_open_write(sn->quic, o->conn, op_stype(o->kind), o->token, o->req,
					  o->req_len, 1);
	o->posted = !err;

	if (err)
		op_finish(sn, o, err);
}

/* The client side's QUIC events, on the owner (svc_events.c, ev_run). */
void svcn_cl_connected_own(struct svc_node *sn, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct svcn_peer *p;

	p = svcn_peer_by_conn(sn, conn);
	if (p) {
		if (err) {
			p->state = SVCN_PEER_DEAD;
			p->err = err;
		} else {
			p->state = SVCN_PEER_UP;
			memcpy(p->key, peer_key, IDENTITY_PK_LEN);
			p->have_key = 1;
		}
	}
	for (struct svcn_op *o = sn->ops; o; o = o->next) {
		if (o->conn != conn || o->opened || o->posted || o->done)
			continue;
		if (err)
			op_finish(sn, o, err);
		else
			op_open(sn, o);
	}
}

static struct svcn_peer *peer_get(struct svc_node *sn, const struct sockaddr *addr, socklen_t alen,
				  const uint8_t *key, int *err);

void svcn_cl_opened_own(struct svc_node *sn, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct svcn_op *o;

	o = op_by_token(sn, token);
	if (!o || o->done) {
		if (!err)
			quic_node_stream_reset(sn->quic, conn, sid, 0x1);
		return;
	}
	if (err)
		o->posted = 0; /* the open failed: its REQUEST was dropped */
	if (err == -EAGAIN && o->retried < SVCN_STREAM_RETRIES) {
		/* The peer's stream limit: it has not (yet) granted more streams
		 * on this connection. Retire the connection from the pool (its
		 * streams in flight finish) and carry on over a fresh one. */
		struct svcn_peer *p = svcn_peer_by_conn(sn, conn), *np;
		struct sockaddr_storage addr;
		uint8_t key[IDENTITY_PK_LEN];
		socklen_t alen;
		int have_key, e2 = 0;

		if (p) {
			addr = p->addr;
			alen = p->alen;
			have_key = p->have_key;
			memcpy(key, p->key, sizeof(key));
			op_uncount(sn, o);
			p->full = 1; /* until one of its streams ends */
			o->retried++;
			np = peer_get(sn, (const struct sockaddr *)&addr, alen,
				      have_key ? key : NULL, &e2);
			if (np) {
				op_count(sn, o, np);
				if (np->state == SVCN_PEER_UP)
					op_open(sn, o);
				return;
			}
			err = e2;
		}
	}
	if (err) {
		op_finish(sn, o, err);
		return;
	}
	o->sid = sid;
	o->opened = 1;
	o->snext = sn->op_sid[svcn_hash(conn, sid)];
	sn->op_sid[svcn_hash(conn, sid)] = o;
	/* the REQUEST went with the open (op_open) */
}

void svcn_cl_data_own(struct svc_node *sn, uint64_t conn, int64_t sid, const uint8_t *data,
		      size_t len, int fin)
{
	struct svcn_op *o;

	o = op_by_stream(sn, conn, sid);
	if (!o || o->done)
		return;
	if (o->pipe) {
		/* A pass-through: into the gateway's ring, or the reader left. */
		int e = svcn_pipe_write(o->pipe, data, len);

		if (e) {
			quic_node_stream_reset(sn->quic, conn, sid, e == -EAGAIN ? 0x2 : 0x3);
			op_finish(sn, o, e == -EAGAIN ? -EMSGSIZE : -ECANCELED);
			return;
		}
		o->deadline_ns = svcn_now_ns() + o->idle_ns;
		if (fin) {
			o->fin = 1;
			op_finish(sn, o, 0);
		}
		return;
	}
	if (o->resp_len + len > o->resp_max) {
		quic_node_stream_reset(sn->quic, conn, sid, 0x2);
		op_finish(sn, o, -EMSGSIZE);
		return;
	}
	if (o->resp_len + len > o->resp_cap) {
		size_t nc = o->resp_cap ? o->resp_cap : 4096;
		uint8_t *nb;

		while (nc < o->resp_len + len)
			nc *= 2;
		nb = realloc(o->resp, nc);
		if (!nb) {
			op_finish(sn, o, -ENOMEM);
			return;
		}
		o->resp = nb;
		o->resp_cap = nc;
	}
	if (len)
		memcpy(o->resp + o->resp_len, data, len);
	o->resp_len += len;
	if (fin) {
		o->fin = 1;
		op_finish(sn, o, 0);
	}
}

void svcn_cl_sclosed_own(struct svc_node *sn, uint64_t conn, int64_t sid, int err)
{
	struct svcn_op *o;

	o = op_by_stream(sn, conn, sid);
	if (o && !o->done)
		op_finish(sn, o, err ? err : -ECONNRESET);
}

void svcn_cl_closed_own(struct svc_node *sn, uint64_t conn)
{
	struct svcn_peer *p;

	p = svcn_peer_by_conn(sn, conn);
	if (p)
		memset(p, 0, sizeof(*p));
	for (struct svcn_op *o = sn->ops; o; o = o->next)
		if (o->conn == conn && !o->done)
			op_finish(sn, o, -ECONNRESET);
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr *b, socklen_t bl)
{
	if (a->ss_family != b->sa_family)
		return 0;
	if (b->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (b->sa_family == AF_INET6 && bl >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	return 0;
}

/* Is p a connection to addr (and key, when given)? 2: up and proven to be
 * key; 1: to addr (up or connecting), its key not contradicting key. */
static int peer_match(const struct svcn_peer *p, const struct sockaddr *addr, socklen_t alen,
		      const uint8_t *key)
{
	if (p->state == SVCN_PEER_UP && key && p->have_key && !memcmp(p->key, key, IDENTITY_PK_LEN))
		return 2;
	if ((p->state == SVCN_PEER_UP || p->state == SVCN_PEER_CONNECTING) &&
	    same_addr(&p->addr, addr, alen) &&
	    (!key || !p->have_key || !memcmp(p->key, key, IDENTITY_PK_LEN)))
		return 1;
	return 0;
}

/* A live connection to addr (and key, when given) with room for one more
 * call (svc.conn_streams), or a new dial; past SVCN_PEER_CONNS connections
 * to the peer, or with every slot carrying calls, the least loaded one
 * (its stream credit decides); else -EBUSY. */
static struct svcn_peer *peer_get(struct svc_node *sn, const struct sockaddr *addr, socklen_t alen,
				  const uint8_t *key, int *err)
{
	struct svcn_peer *p, *lru = NULL, *best[3] = {NULL, NULL, NULL}, *least = NULL;
	uint32_t per_conn = sn->cfg.svc_conn_streams && sn->cfg.svc_conn_streams < SVCN_CONN_STREAMS
				? sn->cfg.svc_conn_streams
				: SVCN_CONN_STREAMS;
	unsigned int nconn = 0;
	size_t i;
	int m;

	for (i = 0; i < SVC_NODE_MAX_PEERS; i++) {
		p = &sn->peers[i];
		m = peer_match(p, addr, alen, key);
		if (!m)
			continue;
		nconn++;
		if (p->full)
			continue;
		if (p->streams < per_conn && !best[m])
			best[m] = p;
		if (!least || p->streams < least->streams)
			least = p;
	}
	p = best[2] ? best[2] : best[1];
	if (!p && nconn >= SVCN_PEER_CONNS)
		p = least;
	if (p) {
		p->last_ms = util_now_ms();
		return p;
	}
	/* A free slot, else the least recently used idle one: a connection
	 * with calls in flight is never closed under them. */
	for (i = 0; i < SVC_NODE_MAX_PEERS; i++) {
		p = &sn->peers[i];
		if (!p->state || p->state == SVCN_PEER_DEAD) {
			lru = p;
			break;
		}
		if (!p->streams && (!lru || p->last_ms < lru->last_ms))
			lru = p;
	}
	if (!lru) {
		if (least) {
			least->last_ms = util_now_ms();
			return least;
		}
		*err = -EBUSY;
		return NULL;
	}
	if (lru->state == SVCN_PEER_UP || lru->state == SVCN_PEER_CONNECTING)
		quic_node_close(sn->quic, lru->conn, 0);
	memset(lru, 0, sizeof(*lru));
	memcpy(&lru->addr, addr, alen);
	lru->alen = alen;
	lru->state = SVCN_PEER_CONNECTING;
	lru->last_ms = util_now_ms();
	*err =
	    quic_node_connect_addr(sn->quic, addr, alen, key, sn->cl_handler, sn->shim, &lru->conn);
	if (*err) {
		memset(lru, 0, sizeof(*lru));
		return NULL;
	}
	return lru;
}

struct svcn_peer *svcn_peer_get(struct svc_node *sn, const struct sockaddr *addr, socklen_t alen,
				const uint8_t *key, int *err)
{
	return peer_get(sn, addr, alen, key, err);
}

struct svcn_op *svcn_op_start(struct svc_node *sn, int kind, const struct sockaddr *addr,
			      socklen_t alen, const uint8_t *expected_key, const uint8_t *req,
			      size_t req_len, size_t resp_max, struct svcn_job *job, int *err)
{
	struct svcn_peer *p;
	struct svcn_op *o;

	if (atomic_load(&sn->stopping)) {
		*err = -ESHUTDOWN;
		return NULL;
	}
	if (sn->nops >= SVC_NODE_MAX_OPS) {
		*err = -EBUSY;
		return NULL;
	}
	o = calloc(1, sizeof(*o));
	if (!o || !(o->req = malloc(req_len ? req_len : 1))) {
		free(o);
		*err = -ENOMEM;
		return NULL;
	}
	memcpy(o->req, req, req_len);
	o->req_len = req_len;
	o->kind = kind;
	o->resp_max = resp_max;
	o->token = ++sn->next_token;
	o->job = job;
	o->t0_ns = svcn_now_ns();
	p = peer_get(sn, addr, alen, expected_key, err);
	if (!p) {
		free(o->req);
		free(o);
		return NULL;
	}
	op_count(sn, o, p);
	o->prev = NULL;
	o->next = sn->ops;
	if (sn->ops)
		sn->ops->prev = o;
	sn->ops = o;
	sn->nops++;
	o->tnext = sn->op_tok[svcn_hash(o->token, 0)];
	sn->op_tok[svcn_hash(o->token, 0)] = o;
	if (p->state == SVCN_PEER_UP)
		op_open(sn, o);
	*err = 0;
	return o;
}

void svcn_op_put(struct svc_node *sn, struct svcn_op *op)
{
	if (!op)
		return;
	op->job = NULL; /* nobody to tell */
	if (!op->done) {
		if (op->opened)
			quic_node_stream_reset(sn->quic, op->conn, op->sid, 0x3);
		op_finish(sn, op, -ECANCELED);
	}
	op->put = 1;
	op_release(sn, op);
}

/* The ops done since the last call: their jobs are told (job->op_done:
 * svc_find.c, svc_calls.c), or a pass-through op is let go. */
void svcn_ready_run(struct svc_node *sn)
{
	struct svcn_op *o;

	while ((o = sn->ready)) {
		sn->ready = o->rnext;
		o->in_ready = 0;
		if (o->put)
			op_release(sn, o);
		else if (o->job)
			o->job->op_done(sn, o->job, o);
		else
			svcn_op_put(sn, o); /* a pass-through: the pipe has it all */
	}
}

/* HTTP ops past their idle deadline, or whose reader left, end (owner).
 * Returns the earliest deadline of those left (UINT64_MAX: none). */
uint64_t svcn_ops_expire(struct svc_node *sn, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (struct svcn_op *o = sn->ops; o; o = o->next) {
		if (o->done || !o->pipe)
			continue;
		if (now >= o->deadline_ns || atomic_load(&o->pipe->closed)) {
			if (o->opened)
				quic_node_stream_reset(sn->quic, o->conn, o->sid, 0x3);
			op_finish(sn, o, now >= o->deadline_ns ? -ETIMEDOUT : -ECANCELED);
		} else if (o->deadline_ns < next) {
			next = o->deadline_ns;
		}
	}
	return next;
}

void svcn_ops_free(struct svc_node *sn)
{
	while (sn->ops) {
		struct svcn_op *o = sn->ops;

		sn->ops = o->next;
		if (o->pipe)
			svcn_pipe_end(o->pipe, SVC_ERR_OVERLOADED, 0);
		svcn_pipe_put(o->pipe);
		free(o->req);
		free(o->resp);
		free(o);
	}
}
