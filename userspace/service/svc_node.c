// SPDX-License-Identifier: MIT
/*
 * The service fabric on the node: QUIC stream handlers (serving descriptors,
 * calls and HTTP pass-through), the client side (connection pool, pending
 * operations), the router's ban hook and the lifecycle; publish, discovery
 * and outgoing calls are in svc_directory.c.
 * See weft/svc_node.h and docs/SERVICE.md.
 *
 * Owner: the fabric's state is the backend thread's alone (its event
 * loop), and no lock guards it. QUIC callbacks on packet workers copy
 * their event and post it to the owner (svc_owner.c); backend completions
 * run on the owner; the refresher and control routes run their work there
 * (svcn_owner_run, with a deadline); calls, lookups, pass-throughs and the
 * load generator are jobs the owner drives while their callers wait on
 * their own semaphores (svc_calls.c). The DHT is reached through
 * dhtnode_run from callers (worker 0 runs it); its completions are posted
 * to the owner.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <sched.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weft/quic_node.h"
#include "svc_node_int.h"
#include "weft/dht.h"
#include "weft/guard.h"
#include "weft/log.h"
#include "weft/dhtnode.h"
#include "weft/util.h"

static const char *const reject_names[8] = {"malformed", "oversized", "signature", "owner",
					    "expired",	 "future",    "banned",	   "unreachable"};

const char *svcn_reject_name(unsigned int i)
{
	return i < 8 ? reject_names[i] : "unknown";
}

uint64_t svcn_now_ns(void)
{
	return util_now_ns();
}

/* Payload cap of calls in and out: svc.max_payload, or the message default
 * for a node created without config_defaults(). */
uint32_t svcn_max_payload(const struct svc_node *sn)
{
	return sn->cfg.svc_max_payload ? sn->cfg.svc_max_payload : SVC_MSG_DEFAULT_MAX_PAYLOAD;
}

uint32_t svcn_max_timeout(const struct svc_node *sn)
{
	return sn->cfg.svc_max_timeout_ms ? sn->cfg.svc_max_timeout_ms : SVC_NODE_MAX_TIMEOUT_MS;
}

uint32_t svcn_clamp_timeout(const struct svc_node *sn, uint32_t ms)
{
	uint32_t max = svcn_max_timeout(sn);

	if (!ms)
		ms = SVC_NODE_CALL_TIMEOUT_MS;
	return ms > max ? max : ms;
}

size_t svcn_http_buffer(const struct svc_node *sn)
{
	return sn->cfg.svc_http_buffer ? sn->cfg.svc_http_buffer : SVC_NODE_HTTP_BUFFER;
}

/* ------------------------------------------------------------------ bans */

/* Router ban callback (on the owner): into the guard, v4-mapped
 * addresses as IPv4 so the XDP IPv4 trie matches. */
static void on_ban(void *ctx, const uint8_t key[IDENTITY_PK_LEN],
		   const struct sockaddr_storage *addr, unsigned int prefixlen, uint64_t expires_ns)
{
	struct svc_node *sn = ctx;
	struct wxdp_ban b = {0};
	char kp[17], as[INET6_ADDRSTRLEN + 8];
	int err;

	if (!memcmp(key, sn->id.pk, IDENTITY_PK_LEN))
		return; /* our own local calls: never ban our own address */
	util_hex(kp, key, 8);
	if (addr->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)addr;

		b.family = AF_INET;
		memcpy(b.addr, &a->sin_addr, 4);
		b.prefixlen = (uint8_t)(prefixlen > 32 ? 32 : prefixlen);
	} else if (addr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)addr;

		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			b.family = AF_INET;
			memcpy(b.addr, &a->sin6_addr.s6_addr[12], 4);
			b.prefixlen =
			    (uint8_t)(prefixlen >= 96 ? (prefixlen > 128 ? 32 : prefixlen - 96)
						      : 32);
		} else {
			b.family = AF_INET6;
			memcpy(b.addr, &a->sin6_addr, 16);
			b.prefixlen = (uint8_t)(prefixlen > 128 ? 128 : prefixlen);
		}
	} else {
		return;
	}
	/* Zero host bits beyond the prefix. */
	for (unsigned int i = b.prefixlen; i < (b.family == AF_INET ? 32u : 128u); i++)
		b.addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
	b.expires_ns = expires_ns;
	inet_ntop(b.family, b.addr, as, sizeof(as));
	err = sn->guard ? guard_ban_add(sn->guard, &b) : -ENODEV;
	sn->st.bans_sent++;
	if (err)
		log_warn("svc", "ban of %s/%u (peer %s...) not applied: %s", as, b.prefixlen, kp,
			 strerror(-err));
	else
		log_warn("svc", "banned %s/%u for %llus: peer %s... kept violating service limits",
			 as, b.prefixlen,
			 (unsigned long long)((expires_ns - svcn_now_ns()) / 1000000000ull), kp);
}

/* ---------------------------------------------------- client operations */

struct svcn_peer *svcn_peer_by_conn(struct svc_node *sn, uint64_t conn)
{
	for (size_t i = 0; i < SVC_NODE_MAX_PEERS; i++)
		if (sn->peers[i].state && sn->peers[i].conn == conn)
			return &sn->peers[i];
	return NULL;
}

/* Bucket of (a, b) in the SVCN_HASH tables. */
static unsigned int svcn_hash(uint64_t a, int64_t b)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (uint64_t)b * 0xc2b2ae3d27d4eb4full;

	h ^= h >> 31;
	return (unsigned int)(h & (SVCN_HASH - 1));
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
	return !err ? SVC_OK
	       : err == -ETIMEDOUT ? SVC_ERR_TIMEOUT
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

static void op_open(struct svc_node *sn, struct svcn_op *o)
{
	int err = quic_node_stream_open(sn->quic, o->conn, op_stype(o->kind), o->token);

	if (err)
		op_finish(sn, o, err);
}

/* The client side's QUIC events, on the owner: see ev_run(). */
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
		if (o->conn != conn || o->opened || o->done)
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
	o->t0_ns = svcn_now_ns();
	err = quic_node_write(sn->quic, conn, sid, o->req, o->req_len, 1);
	if (err)
		op_finish(sn, o, err);
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
	if (p->state == SVCN_PEER_UP && key && p->have_key &&
	    !memcmp(p->key, key, IDENTITY_PK_LEN))
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
	struct svcn_peer *p, *lru = NULL, *best[3] = { NULL, NULL, NULL }, *least = NULL;
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
	*err = quic_node_connect_addr(sn->quic, addr, alen, key, &svcn_cl_handler, sn->shim, &lru->conn);
	if (*err) {
		memset(lru, 0, sizeof(*lru));
		return NULL;
	}
	return lru;
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

/* The ops done since the last call: their jobs are told (svc_calls.c). */
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

/* ------------------------------------------------------------ server */

static struct svcn_in *in_find(struct svc_node *sn, uint64_t conn, int64_t sid)
{
	for (struct svcn_in *i = sn->in_tab[svcn_hash(conn, sid)]; i; i = i->next)
		if (i->conn == conn && i->sid == sid)
			return i;
	return NULL;
}

static void in_free(struct svc_node *sn, struct svcn_in *in)
{
	struct svcn_in **pp;

	for (pp = &sn->in_tab[svcn_hash(in->conn, in->sid)]; *pp; pp = &(*pp)->next)
		if (*pp == in) {
			*pp = in->next;
			sn->nins--;
			break;
		}
	free(in->buf);
	svc_msg_dec_free(&in->dec);
	free(in);
}

static struct svcn_in *in_get(struct svc_node *sn, uint64_t conn, int64_t sid, int type,
			      const struct svc_peer *peer)
{
	struct svcn_in *in = in_find(sn, conn, sid);

	if (in)
		return in;
	if (sn->nins >= SVC_NODE_MAX_INBOUND)
		return NULL;
	in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->conn = conn;
	in->sid = sid;
	in->type = type;
	svc_msg_dec_init(&in->dec, svcn_max_payload(sn));
	if (peer) {
		in->peer = *peer;
		in->have_peer = 1;
	}
	in->next = sn->in_tab[svcn_hash(conn, sid)];
	sn->in_tab[svcn_hash(conn, sid)] = in;
	sn->nins++;
	return in;
}

/* Encode and send a RESPONSE (fin: end the stream after it). */
static void send_response(struct quic_node *qn, uint64_t conn, int64_t sid, int err,
			  uint32_t status, const uint8_t *p, size_t len, int fin)
{
	struct svc_msg m = {.type = SVC_MSG_RESPONSE, .err = (uint8_t)err, .status = status};
	uint8_t hdr[SVC_MSG_HDR_LEN];
	size_t hl;

	m.payload = p;
	m.payload_len = len;
	if (svc_msg_encode_head(&m, hdr, sizeof(hdr), &hl))
		return;
	if (!len) {
		quic_node_write(qn, conn, sid, hdr, hl, fin);
		return;
	}
	quic_node_write(qn, conn, sid, hdr, hl, 0);
	quic_node_write(qn, conn, sid, p, len, fin);
}

static void log_call(const char *kind, const struct svc_msg *m, const struct svc_peer *p, int err,
		     uint32_t status)
{
	char kp[17];

	if (log_get_level() < LOG_LVL_DEBUG && err == SVC_OK)
		return;
	util_hex(kp, p->key, 8);
	log_msg(err == SVC_OK ? LOG_LVL_DEBUG : LOG_LVL_INFO, "svc",
		"%s service=%.*s method=%.*s peer=%s... status=%u error=%s", kind,
		(int)m->service_len, m->service, (int)m->method_len, m->method, kp, status,
		svc_err_name((unsigned int)err));
}

struct svcn_bjob {
	struct svcn_shim *shim;
	struct quic_node *qn;
	uint64_t conn;
	int64_t sid;
	struct svc_ticket t;
	struct svc_peer peer;
	char service[SVC_NAME_MAX + 1];
	char method[SVC_METHOD_MAX + 1];
};

/* Backend completion (on the owner: the backend thread). */
static void backend_done(void *ctx, int err, uint8_t *resp, size_t len)
{
	struct svcn_bjob *j = ctx;
	struct svc_node *sn = j->shim->sn; /* on the owner */
	struct svc_msg m = {0};

	if (sn) {
		svc_router_done(sn->router, &j->t, err, svcn_now_ns());
		if (!atomic_load(&sn->stopping))
			send_response(j->qn, j->conn, j->sid, err, 0, err == SVC_OK ? resp : NULL,
				      err == SVC_OK ? len : 0, 1);
		m.service = j->service;
		m.service_len = strlen(j->service);
		m.method = j->method;
		m.method_len = strlen(j->method);
		log_call("call", &m, &j->peer, err, 0);
	}
	free(resp);
	free(j);
}

static void serve_call(struct svc_node *sn, struct svcn_in *in, const struct svc_msg *m)
{
	struct svc_reply reply = {0};
	struct svc_ticket t;
	struct svcn_bjob *j;
	int r;

	sn->st.calls_in++;
	if (m->type != SVC_MSG_REQUEST) {
		svc_router_violation(sn->router, &in->peer, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_BAD_REQUEST, 0, NULL, 0, 1);
		return;
	}
	r = svc_router_call(sn->router, &in->peer, m, svcn_now_ns(), &reply, &t);
	if (r == 0) {
		send_response(sn->quic, in->conn, in->sid, reply.err, reply.status, reply.buf,
			      reply.len, 1);
		log_call("call", m, &in->peer, reply.err, reply.status);
		svc_reply_release(&reply);
		return;
	}
	svc_reply_release(&reply);
	if (r < 0) {
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_BAD_REQUEST, 0, NULL, 0, 1);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		svc_router_done(sn->router, &t, SVC_ERR_OVERLOADED, svcn_now_ns());
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_OVERLOADED, 0, NULL, 0, 1);
		return;
	}
	j->shim = sn->shim;
	j->qn = sn->quic;
	j->conn = in->conn;
	j->sid = in->sid;
	j->t = t;
	j->peer = in->peer;
	snprintf(j->service, sizeof(j->service), "%.*s", (int)m->service_len, m->service);
	snprintf(j->method, sizeof(j->method), "%.*s", (int)m->method_len, m->method);
	/* The deadline a peer asks for is capped by svc.max_timeout_ms. */
	r = svc_backend_submit(sn->backend, t.backend, j->service, m->payload, m->payload_len,
			       svcn_clamp_timeout(sn, m->timeout_ms), backend_done, j);
	if (r) {
		svc_router_done(sn->router, &t, SVC_ERR_OVERLOADED, svcn_now_ns());
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_OVERLOADED, 0, NULL, 0, 1);
		free(j);
	}
}

/* HTTP pass-through at the provider: a stream on the backend thread whose
 * sink writes the QUIC stream. The RESPONSE header goes out with the
 * backend's first bytes, or carries the error (timeout, backend_error) when
 * none came: the caller's gateway can tell a stalled backend (504). */
struct svcn_relay {
	struct svc_node *sn; /* valid until svc_node_free ends the backend */
	struct svcn_bjob j;
	int hdr_sent;
};

static int relay_write_err(int e)
{
	return e == -ENOBUFS || e == -EAGAIN ? -EAGAIN : e;
}

static int relay_data(void *ctx, const uint8_t *buf, size_t len, int fin)
{
	struct svcn_relay *r = ctx;
	int e;

	if (atomic_load(&r->sn->stopping))
		return -ESHUTDOWN;
	if (!r->hdr_sent) {
		struct svc_msg m = {.type = SVC_MSG_RESPONSE, .err = SVC_OK};
		uint8_t hdr[SVC_MSG_HDR_LEN];
		size_t hl;

		if (svc_msg_encode_head(&m, hdr, sizeof(hdr), &hl))
			return -EINVAL;
		e = quic_node_write(r->j.qn, r->j.conn, r->j.sid, hdr, hl, 0);
		if (e)
			return relay_write_err(e);
		r->hdr_sent = 1;
	}
	if (!len && !fin)
		return 0;
	e = quic_node_write(r->j.qn, r->j.conn, r->j.sid, buf, len, fin);
	return e ? relay_write_err(e) : 0;
}

static void relay_end(void *ctx, int err)
{
	struct svcn_relay *r = ctx;
	struct svc_node *sn = r->sn;
	struct svc_msg m = {.service = r->j.service,
			    .service_len = strlen(r->j.service),
			    .method = "http",
			    .method_len = 4};

	svc_router_done(sn->router, &r->j.t, err, svcn_now_ns());
	if (!atomic_load(&sn->stopping)) {
		if (!r->hdr_sent)
			send_response(r->j.qn, r->j.conn, r->j.sid, err, 0, NULL, 0, 1);
		else if (err != SVC_OK)
			quic_node_stream_reset(r->j.qn, r->j.conn, r->j.sid, 0x6);
	}
	log_call("http", &m, &r->j.peer, err, 0);
	free(r);
}

static const struct svc_backend_sink relay_sink = {.data = relay_data, .end = relay_end};

static void serve_http(struct svc_node *sn, struct svcn_in *in, const struct svc_msg *m)
{
	struct svc_ticket t;
	struct svcn_relay *r;
	int e;

	sn->st.http_in++;
	if (m->type != SVC_MSG_REQUEST) {
		svc_router_violation(sn->router, &in->peer, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_BAD_REQUEST, 0, NULL, 0, 1);
		return;
	}
	e = svc_router_admit(sn->router, &in->peer, m->service, m->service_len, m->payload_len, 0,
			     svcn_now_ns(), &t);
	if (e == SVC_OK && t.kind != SVC_KIND_BACKEND) {
		svc_router_done(sn->router, &t, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		e = SVC_ERR_BAD_REQUEST; /* built-ins speak calls, not HTTP */
	}
	if (e != SVC_OK) {
		log_call("http", m, &in->peer, e, 0);
		send_response(sn->quic, in->conn, in->sid, e, 0, NULL, 0, 1);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (r) {
		r->sn = sn;
		r->j.shim = sn->shim;
		r->j.qn = sn->quic;
		r->j.conn = in->conn;
		r->j.sid = in->sid;
		r->j.t = t;
		r->j.peer = in->peer;
		snprintf(r->j.service, sizeof(r->j.service), "%.*s", (int)m->service_len,
			 m->service);
	}
	/* The deadline a peer asks for is capped by svc.max_timeout_ms. */
	e = r ? svc_backend_stream(sn->backend, t.backend, r->j.service, m->payload,
				   m->payload_len, svcn_clamp_timeout(sn, m->timeout_ms),
				   &relay_sink, r)
	      : -ENOMEM;
	if (e) {
		free(r);
		svc_router_done(sn->router, &t, SVC_ERR_OVERLOADED, svcn_now_ns());
		log_call("http", m, &in->peer, SVC_ERR_OVERLOADED, 0);
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_OVERLOADED, 0, NULL, 0, 1);
	}
}

struct svcn_pub *svcn_pub_find(struct svc_node *sn, const char *name, size_t len)
{
	for (size_t i = 0; i < SVC_NODE_MAX_PUBLISHED; i++)
		if (sn->pubs[i].used && strlen(sn->pubs[i].name) == len &&
		    !memcmp(sn->pubs[i].name, name, len))
			return &sn->pubs[i];
	return NULL;
}

void svcn_srv_data(struct svc_node *sn, int type, uint64_t conn, int64_t sid,
		     const struct svc_peer *peer, const uint8_t *data, size_t len, int fin)
{
	struct svcn_in *in = in_get(sn, conn, sid, type, peer);
	const struct svc_msg *m;
	size_t used;
	int r;

	if (!in) {
		quic_node_stream_reset(sn->quic, conn, sid, 0x4);
		return;
	}
	if (in->handled)
		goto end;
	if (!in->have_peer) {
		quic_node_stream_reset(sn->quic, conn, sid, 0x4);
		in_free(sn, in);
		return;
	}
	if (type == SVC_NODE_ST_DESC) {
		struct svcn_pub *p;

		if (in->len + len > SVC_NAME_MAX) {
			svc_router_violation(sn->router, &in->peer, SVC_ERR_BAD_REQUEST,
					     svcn_now_ns());
			quic_node_stream_reset(sn->quic, conn, sid, 0x5);
			in->handled = 1;
			goto end;
		}
		if (len) {
			uint8_t *nb = realloc(in->buf, in->len + len);

			if (!nb)
				goto end;
			in->buf = nb;
			memcpy(in->buf + in->len, data, len);
			in->len += len;
		}
		if (!fin)
			return;
		in->handled = 1;
		p = svcn_pub_find(sn, (const char *)in->buf, in->len);
		sn->st.desc_served += p != NULL;
		quic_node_write(sn->quic, conn, sid, p ? p->desc : NULL, p ? p->desc_len : 0, 1);
		goto end;
	}
	while (len && !in->handled) {
		r = svc_msg_dec_feed(&in->dec, data, len, &used, &m);
		data += used;
		len -= used;
		if (r < 0) {
			int e = r == -EMSGSIZE ? SVC_ERR_TOO_LARGE : SVC_ERR_BAD_REQUEST;

			svc_router_violation(sn->router, &in->peer, e, svcn_now_ns());
			send_response(sn->quic, conn, sid, e, 0, NULL, 0, 1);
			in->handled = 1;
		} else if (r == 1) {
			in->handled = 1;
			if (type == SVC_NODE_ST_CALL)
				serve_call(sn, in, m);
			else
				serve_http(sn, in, m);
		}
	}
	if (fin && !in->handled) {
		svc_router_violation(sn->router, &in->peer, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		send_response(sn->quic, conn, sid, SVC_ERR_BAD_REQUEST, 0, NULL, 0, 1);
		in->handled = 1;
	}
end:
	if (fin || in->handled)
		in_free(sn, in);
}

void svcn_srv_closed_own(struct svc_node *sn, uint64_t conn, int64_t sid)
{
	struct svcn_in *in = in_find(sn, conn, sid);

	if (in)
		in_free(sn, in);
}

/* ------------------------------------------------------------ lifecycle */

/* One owner of the shim lets go (the fabric, or the QUIC node's release
 * hook after its last callback); the last one frees it. */
static void shim_put(struct svcn_shim *sh)
{
	if (atomic_fetch_sub(&sh->refs, 1) == 1)
		free(sh);
}

static void shim_release(void *arg)
{
	shim_put(arg);
}

int svc_node_new(struct svc_node **out, const struct svc_node_opts *o)
{
	struct svc_router_opts ro = {0};
	struct svc_backend_opts bo = {0};
	struct svc_dir_opts dopts = {0};
	pthread_condattr_t ca;
	struct quic_node_handler h = {0};
	struct svc_node *sn;
	int err;

	*out = NULL;
	if (!o || !o->eng || !o->quic || !o->id || !o->cfg)
		return -EINVAL;
	sn = calloc(1, sizeof(*sn));
	if (!sn)
		return -ENOMEM;
	sn->shim = calloc(1, sizeof(*sn->shim));
	if (!sn->shim) {
		free(sn);
		return -ENOMEM;
	}
	sn->shim->sn = sn;
	atomic_init(&sn->shim->refs, 1); /* until registered: svc_node_free frees it */
	sn->due_ns = UINT64_MAX;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sn->refresh_cv, &ca);
	pthread_mutex_init(&sn->refresh_mu, NULL);
	pthread_condattr_destroy(&ca);
	sn->eng = o->eng;
	sn->ctl = o->ctl;
	sn->quic = o->quic;
	sn->dht = o->dht;
	sn->guard = o->guard;
	sn->announce_port = o->announce_port;
	sn->announce_port_arg = o->announce_port_arg;
	sn->id = *o->id;
	sn->cfg = *o->cfg;
	util_hex(sn->key_hex, sn->id.pk, IDENTITY_PK_LEN);

	/* [svc] limits; a zero (a caller without config_defaults()) is the
	 * router's own default. */
	ro.peer.calls_per_min = sn->cfg.svc_peer_calls_per_min;
	ro.peer.max_payload = sn->cfg.svc_max_payload;
	ro.peer.max_concurrent = sn->cfg.svc_peer_concurrency;
	ro.svc.calls_per_min = sn->cfg.svc_service_calls_per_min;
	ro.svc.max_payload = sn->cfg.svc_max_payload;
	ro.svc.max_concurrent = sn->cfg.svc_service_concurrency;
	ro.addr_calls_per_min = sn->cfg.svc_addr_calls_per_min;
	ro.addr_concurrent = sn->cfg.svc_addr_concurrency;
	ro.global_concurrent = sn->cfg.svc_global_concurrency;
	ro.ban_threshold = sn->cfg.svc_ban_threshold;
	ro.addr_ban_threshold = sn->cfg.svc_addr_ban_threshold;
	ro.ban = on_ban;
	ro.ban_ctx = sn;
	err = svc_router_new(&sn->router, &ro);
	if (!err)
		err = svc_router_register_builtins(sn->router);
	bo.max_inflight = sn->cfg.svc_backend_max_inflight;
	bo.max_per_service = sn->cfg.svc_backend_max_per_service;
	bo.max_response = svcn_max_payload(sn);
	bo.tick = svcn_tick; /* jobs and pass-throughs: their deadlines */
	bo.tick_ctx = sn;
	if (!err)
		err = svc_backend_new(&sn->backend, &bo);
	if (!err)
		err = svc_dir_new(&sn->dir, &dopts);
	if (!err)
		err = svcn_pub_store_init(sn, o->store);
	if (err)
		goto fail;
	h.release = shim_release;
	svcn_srv_handler(&h, SVC_NODE_ST_DESC);
	atomic_store(&sn->shim->refs, 2); /* the QUIC node's release lets go of one */
	err = quic_node_register(sn->quic, SVC_NODE_ST_DESC, &h, sn->shim);
	if (err)
		atomic_store(&sn->shim->refs, 1); /* never registered: no release */
	svcn_srv_handler(&h, SVC_NODE_ST_CALL);
	if (!err)
		err = quic_node_register(sn->quic, SVC_NODE_ST_CALL, &h, sn->shim);
	svcn_srv_handler(&h, SVC_NODE_ST_HTTP);
	if (!err)
		err = quic_node_register(sn->quic, SVC_NODE_ST_HTTP, &h, sn->shim);
	if (!err && sn->ctl)
		err = svcn_ctl_register(sn);
	if (err)
		goto fail;
	atomic_store(&sn->shim->live, sn); /* workers may post from now on */
	*out = sn;
	return 0;
fail:
	svc_node_free(sn);
	return err;
}

void svc_node_stop(struct svc_node *sn)
{
	if (!sn)
		return;
	/* Callers waiting on jobs look at stopping at least every
	 * SVCN_JOB_POLL_MS and leave. */
	atomic_store(&sn->stopping, 1);
	pthread_mutex_lock(&sn->refresh_mu);
	pthread_cond_broadcast(&sn->refresh_cv);
	pthread_mutex_unlock(&sn->refresh_mu);
}

int svc_node_start(struct svc_node *sn)
{
	int err;

	if (!sn)
		return -EINVAL;
	err = svcn_pub_restore(sn);
	if (err)
		log_warn("svc", "stored publications: %s", strerror(-err));
	err = log_thread_create(&sn->refresher, NULL, svcn_refresh_main, sn);
	if (err)
		return -err;
	sn->refresher_on = 1;
	if (sn->cfg.gateway[0]) {
		err = svc_gateway_start(sn, &sn->gw);
		if (err)
			return err;
	}
	return 0;
}

void svc_node_free(struct svc_node *sn)
{
	struct svcn_shim *shim;

	if (!sn)
		return;
	svc_node_stop(sn);
	/* No worker posts from now on; those inside a callback finish (they
	 * never block). Events queued are run or released by the owner
	 * (svc_backend_free below). */
	if (sn->shim) {
		atomic_store(&sn->shim->live, NULL);
		while (atomic_load(&sn->shim->active))
			sched_yield();
	}
	svc_gateway_stop(sn->gw);
	if (sn->refresher_on) {
		pthread_mutex_lock(&sn->refresh_mu);
		pthread_cond_broadcast(&sn->refresh_cv);
		pthread_mutex_unlock(&sn->refresh_mu);
		pthread_join(sn->refresher, NULL);
	}
	/* Backend completions and streams see stopping and do not write; the
	 * backend ends every request in progress without waiting on any. */
	svc_backend_free(sn->backend);
	/* The owner's loop is over: this thread is the state's only user. */
	svcn_jobs_free(sn);
	shim = sn->shim;
	if (shim)
		shim->sn = NULL;
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
	for (unsigned int b = 0; b < SVCN_HASH; b++)
		while (sn->in_tab[b])
			in_free(sn, sn->in_tab[b]);
	for (size_t i = 0; i < SVC_NODE_MAX_PUBLISHED; i++)
		free(sn->pubs[i].desc);
	svc_dir_free(sn->dir);
	svc_router_free(sn->router);
	pthread_cond_destroy(&sn->refresh_cv);
	pthread_mutex_destroy(&sn->refresh_mu);
	identity_wipe(&sn->id);
	free(sn);
	/* The shim stays while the QUIC node may still call our handlers
	 * (quic_node_free() after us reports closes, which find it dead);
	 * shim_release() frees it then. If the QUIC node went first, now. */
	if (shim)
		shim_put(shim);
}
