// SPDX-License-Identifier: MIT
/*
 * A download's requests on the wire (the lowest part of a job; swarm.c
 * drives it, swarm_peers.c dials through it): the request slots of a job,
 * the lanes (long-lived fetch streams to a provider, one request at a
 * time each), the requests written on them, and the QUIC callbacks of
 * the connections to providers, which feed the answers in and mark
 * requests done. Callbacks run on engine workers and go through a
 * per-connection context (struct cn_cc) that outlives the job until the
 * connection's closed() callback, so a late callback never touches a
 * freed job. Calls nothing above it: the job thread sees what changed
 * when it wakes (j->cond).
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "content/swarm_int.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

/* ------------------------------------------------------------ callbacks */

/* The job behind a callback, with cc->mu and j->mu held until cc_leave;
 * NULL when the job let go of the connection. */
static struct cn_job *cc_enter(struct cn_cc *cc)
{
	struct cn_job *j;

	pthread_mutex_lock(&cc->mu);
	j = atomic_load(&cc->job);
	if (!j) {
		pthread_mutex_unlock(&cc->mu);
		return NULL;
	}
	pthread_mutex_lock(&j->mu);
	if (atomic_load(&cc->job) != j) { /* let go of while we waited */
		pthread_mutex_unlock(&j->mu);
		pthread_mutex_unlock(&cc->mu);
		return NULL;
	}
	return j;
}

/* wake: the job thread has something to do (a request finished, a
 * connection changed). Not for every packet of an answer: a wake-up per
 * packet cost a futex call on the worker and a pass of the job thread. */
static void cc_leave_wake(struct cn_cc *cc, struct cn_job *j, int wake)
{
	if (wake)
		pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->mu);
	pthread_mutex_unlock(&cc->mu);
}

static void cc_leave(struct cn_cc *cc, struct cn_job *j)
{
	cc_leave_wake(cc, j, 1);
}

static void cc_put(struct cn_cc *cc)
{
	int last = atomic_fetch_sub(&cc->refs, 1) == 1;

	if (last) {
		pthread_mutex_destroy(&cc->mu);
		free(cc);
	}
}

static struct cn_lane *lane_by_sid(struct cn_job *j, int peer, int64_t sid)
{
	struct cn_peer *p = &j->peers[peer];

	for (unsigned int i = 0; i < CN_MAX_LANES; i++)
		if ((p->lanes[i].state == L_IDLE || p->lanes[i].state == L_BUSY) &&
		    p->lanes[i].sid == sid)
			return &p->lanes[i];
	return NULL;
}

static void lane_drop(struct cn_job *j, struct cn_peer *p, struct cn_lane *l, int reset)
{
	if (reset && (l->state == L_IDLE || l->state == L_BUSY))
		quic_node_stream_reset(j->cn->quic, p->conn, l->sid, 0);
	l->state = L_FREE;
	l->req = -1;
}

static void send_request(struct cn_job *j, struct cn_peer *p, struct cn_req *r)
{
	struct cn_wreq q = {.index = r->chunk};
	uint8_t msg[CN_REQ_MAX];
	int mlen;

	if (r->kind == K_MANIFEST) {
		q.op = CONTENT_OP_MANIFEST;
		memcpy(q.id, j->rq.id, MANIFEST_SHARE_ID_LEN);
	} else {
		q.op = r->kind == K_INFO    ? CONTENT_OP_INFO
		       : r->kind == K_HAVE  ? CONTENT_OP_HAVE
		       : r->kind == K_HELD  ? CONTENT_OP_HAVE_HELD
		       : r->kind == K_IDLE  ? CONTENT_OP_HAVE_IDLE
		       : r->kind == K_PEERS ? CONTENT_OP_PEERS
					    : CONTENT_OP_CHUNK;
		memcpy(q.id, j->cur, 32);
		if (r->kind == K_HELD || r->kind == K_IDLE) { /* chunk word: mask << 32 | first */
			q.held_first = (uint32_t)r->chunk;
			q.held_mask = (uint32_t)(r->chunk >> 32);
		}
	}
	mlen = cn_req_encode(&q, msg);
	r->sid = p->lanes[r->lane].sid;
	if (quic_node_write(j->cn->quic, p->conn, r->sid, msg, (size_t)mlen, 0)) {
		r->done = 1;
		r->err = -EAGAIN;
	}
}

static void cb_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct cn_cc *cc = arg;
	struct cn_job *j = cc_enter(cc);
	struct cn_peer *p;
	char lb[128];

	if (!j)
		return;
	p = &j->peers[cc->peer];
	if (err) {
		log_info(CN_MOD, "provider %s: %s", log_addr(p->name, lb, sizeof(lb)),
			 strerror(-err));
		p->state = P_DEAD;
	} else if (peer_key && !memcmp(peer_key, j->cn->id->pk, IDENTITY_PK_LEN)) {
		p->state = P_DEAD; /* ourselves, found through the DHT */
		p->self = 1;
		quic_node_close(j->cn->quic, conn, 0);
	} else if (p->state == P_CONNECTING) {
		p->state = P_UP;
	}
	cc_leave(cc, j);
}

static void cb_stream_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct cn_cc *cc = arg;
	struct cn_job *j = cc_enter(cc);
	struct cn_peer *p;
	struct cn_lane *l;
	struct cn_req *r;

	if (!j)
		return;
	p = &j->peers[cc->peer];
	l = &p->lanes[(token & 0xff) % CN_MAX_LANES];
	if (l->state != L_OPENING || l->gen != (unsigned int)(token >> 8)) {
		if (sid >= 0)
			quic_node_stream_reset(j->cn->quic, conn, sid, 0);
		goto out;
	}
	r = l->req >= 0 ? &j->reqs[l->req] : NULL;
	if (err || sid < 0) {
		lane_drop(j, p, l, 0);
		if (r && r->used && !r->done) {
			r->done = 1;
			r->err = err ? err : -EIO;
		}
		goto out;
	}
	l->sid = sid;
	if (r && r->used && !r->done) {
		l->state = L_BUSY;
		send_request(j, p, r);
	} else {
		l->state = L_IDLE;
		l->req = -1;
	}
out:
	cc_leave(cc, j);
}

/*
 * The fast path: most frames of a chunk answer are its middle bytes, for
 * the request the previous frame on the same stream went to. Those are
 * appended without cc->mu or j->mu (no lock per packet: the two mutexes,
 * on lines the job thread writes too, were ~3% of a lab's packet worker,
 * and the worker waited whenever the job thread held j->mu to schedule).
 * The request's word (fst) says the answer is the worker's; the job takes
 * it back with cn_req_unfast before it touches it. Anything else (the
 * header, the last bytes, a FIN, a request ended or reused meanwhile, a
 * context let go) takes the locked path below, which arms the next. 1:
 * taken here.
 */
static int feed_fast(struct cn_cc *cc, int64_t sid, const uint8_t *data, size_t len, int fin)
{
	struct cn_req *r = cc->freq;
	unsigned int want, fed = 0;

	if (fin || !len || !r || sid != cc->fsid)
		return 0;
	want = cc->fgen << 2 | FS_READY;
	atomic_store(&cc->fbusy, 1); /* before job is read: cc_let_go */
	if (atomic_load(&cc->job) &&
	    atomic_compare_exchange_strong(&r->fst, &want, cc->fgen << 2 | FS_FEEDING)) {
		fed = cn_ans_feed_mid(&r->a, data, len);
		if (fed) { /* still arriving: not timed out (cn_req_expired; the
			    * coarse clock: a tick behind at most, per packet) */
			atomic_store_explicit(&r->last_ms, util_now_ms_coarse(),
					      memory_order_relaxed);
			r->nfast++;
		}
		atomic_store_explicit(&r->fst, want, memory_order_release);
	}
	atomic_store_explicit(&cc->fbusy, 0, memory_order_release);
	return (int)fed;
}

/* Under the locks, on the worker: the next middle bytes of r's answer
 * may take the fast path. */
static void fast_arm(struct cn_cc *cc, struct cn_req *r, int64_t sid)
{
	if (r->kind != K_CHUNK || r->done || r->a.len < CN_ANS_HEAD)
		return;
	cc->fsid = sid;
	cc->freq = r;
	cc->fgen = r->gen;
	atomic_store_explicit(&r->fst, r->gen << 2 | FS_READY, memory_order_release);
}

void cn_req_unfast(struct cn_req *r)
{
	unsigned int v = atomic_load(&r->fst);

	while (v) {
		if ((v & 3) == FS_FEEDING) {
			/* one frame's copy, unless the worker lost its CPU */
			sched_yield();
			v = atomic_load(&r->fst);
		} else if (atomic_compare_exchange_weak(&r->fst, &v, 0)) {
			break;
		}
	}
}

void cn_req_stop(struct cn_req *r, int err)
{
	cn_req_unfast(r);
	r->done = 1;
	r->err = err;
}

/* The job lets go of cc: no callback reaches the job through it after
 * this, the fast path included (it reads job after raising fbusy). */
static void cc_let_go(struct cn_cc *cc)
{
	atomic_store(&cc->job, NULL);
	while (atomic_load(&cc->fbusy))
		sched_yield();
}

static void cb_stream_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
			   int fin)
{
	struct cn_cc *cc = arg;
	struct cn_job *j;
	struct cn_peer *p;
	struct cn_lane *l;
	struct cn_req *r;
	int rc, wake = 1;

	if (feed_fast(cc, sid, data, len, fin))
		return;
	j = cc_enter(cc);
	if (!j)
		return;
	p = &j->peers[cc->peer];
	l = lane_by_sid(j, cc->peer, sid);
	if (!l)
		goto out;
	r = l->state == L_BUSY && l->req >= 0 ? &j->reqs[l->req] : NULL;
	if (r) /* this worker's own: never FS_FEEDING here */
		atomic_store_explicit(&r->fst, 0, memory_order_relaxed);
	if (!r || !r->used || r->done) {
		if (len) /* an answer nobody asked for */
			lane_drop(j, p, l, 1);
		else if (fin)
			lane_drop(j, p, l, 0);
		goto out;
	}
	rc = cn_ans_feed(&r->a, data, len);
	j->frames_locked += len > 0;
	wake = rc != 0 || fin; /* the answer is complete, or broken */
	if (len) /* still arriving: not timed out (cn_req_expired) */
		atomic_store_explicit(&r->last_ms, util_now_ms_coarse(), memory_order_relaxed);
	if (rc < 0) { /* -EMSGSIZE, -EPROTO (framing), -ENOMEM */
		r->done = 1;
		r->err = rc;
		lane_drop(j, p, l, 1);
		goto out;
	}
	if (rc == 1) {
		r->done = 1;
		r->end_ms = util_now_ms();
		l->state = L_IDLE;
		l->req = -1;
	}
	if (fin) {
		if (!r->done) {
			r->done = 1;
			r->err = -ECONNRESET;
		}
		lane_drop(j, p, l, 0);
	} else if (!rc) {
		fast_arm(cc, r, sid);
	}
out:
	cc_leave_wake(cc, j, wake);
}

void cn_fail_peer_reqs(struct cn_job *j, int peer, int err)
{
	for (unsigned int i = 0; i < CN_MAX_REQS; i++)
		if (j->reqs[i].used && !j->reqs[i].done && j->reqs[i].peer == peer)
			cn_req_stop(&j->reqs[i], err);
}

static void cb_stream_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct cn_cc *cc = arg;
	struct cn_job *j = cc_enter(cc);
	struct cn_lane *l;

	if (!j)
		return;
	l = lane_by_sid(j, cc->peer, sid);
	if (l) {
		if (l->req >= 0 && j->reqs[l->req].used && !j->reqs[l->req].done)
			cn_req_stop(&j->reqs[l->req], err ? err : -ECONNRESET);
		lane_drop(j, &j->peers[cc->peer], l, 0);
	}
	cc_leave(cc, j);
}

static void cb_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct cn_cc *cc = arg;
	struct cn_job *j = cc_enter(cc);

	if (j) {
		struct cn_peer *p = &j->peers[cc->peer];

		if (p->state != P_BANNED)
			p->state = P_DEAD;
		cn_fail_peer_reqs(j, cc->peer, -ENOTCONN);
		for (unsigned int i = 0; i < CN_MAX_LANES; i++)
			lane_drop(j, p, &p->lanes[i], 0);
		cc_leave(cc, j);
	}
	cc_put(cc);
}

static const struct quic_node_handler cn_handler = {
    .connected = cb_connected,
    .stream_opened = cb_stream_opened,
    .stream_data = cb_stream_data,
    .stream_closed = cb_stream_closed,
    .closed = cb_closed,
};

/* ------------------------------------------------------- request slots */

int cn_req_open(struct cn_job *j, int peer, int kind, uint64_t chunk)
{
	struct cn_peer *p = &j->peers[peer];
	struct cn_req *r = NULL;
	int slot = -1, idle = -1, freel = -1, rc;

	for (unsigned int i = 0; i < CN_MAX_REQS; i++)
		if (!j->reqs[i].used) {
			r = &j->reqs[i];
			slot = (int)i;
			break;
		}
	if (!r)
		return -ENOSPC;
	for (int k = 0; k < CN_MAX_LANES; k++) {
		if (p->lanes[k].state == L_IDLE && idle < 0)
			idle = k;
		if (p->lanes[k].state == L_FREE && freel < 0)
			freel = k;
	}
	if (idle < 0 && freel < 0)
		return -EBUSY;
	r->used = 1;
	r->done = 0;
	r->err = 0;
	r->kind = kind;
	r->peer = peer;
	r->chunk = chunk;
	r->sid = -1;
	r->a.len = 0;
	r->gen = ++j->gen & 0xffffff;
	r->start_ms = util_now_ms();
	r->end_ms = 0;
	r->last_ms = 0;
	r->kept = 0;
	r->nfast = 0;
	atomic_store(&r->fst, 0); /* released unfast already: armed by its answer's head */
	r->a.limit = kind == K_CHUNK	  ? CN_CHUNK_ANSWER
		     : kind == K_MANIFEST ? CN_MANIFEST_ANSWER
		     : CN_K_HAVE(kind)	  ? CN_HAVE_ANSWER(CN_INFO_MAX_N)
		     : kind == K_PEERS	  ? CN_PEERS_ANSWER_MAX
					  : CN_INFO_ANSWER(CN_INFO_MAX_N);
	r->a.whole = kind == K_CHUNK;
	if (idle >= 0) {
		r->lane = idle;
		p->lanes[idle].state = L_BUSY;
		p->lanes[idle].req = slot;
		send_request(j, p, r);
	} else {
		struct cn_lane *l = &p->lanes[freel];

		l->gen = (l->gen + 1) & 0xffffff;
		rc = quic_node_stream_open(j->cn->quic, p->conn, CONTENT_ST_FETCH,
					   ((uint64_t)l->gen << 8) | (unsigned int)freel);
		if (rc) {
			r->used = 0;
			return rc;
		}
		l->state = L_OPENING;
		l->req = slot;
		r->lane = freel;
	}
	p->inflight++;
	if (kind == K_CHUNK) {
		j->busy[chunk]++;
		j->inflight++;
	}
	return 0;
}

void cn_req_release(struct cn_job *j, struct cn_req *r)
{
	struct cn_peer *p = &j->peers[r->peer];
	struct cn_lane *l = &p->lanes[r->lane];

	cn_req_unfast(r);
	j->frames_fast += r->nfast;
	r->nfast = 0;
	/* Still bound to its lane (given up, or failed by a fault): the
	 * answer may still come, so the lane cannot carry another request. */
	if (l->req == (int)(r - j->reqs)) {
		if (l->state == L_OPENING)
			l->req = -1; /* becomes idle when it opens */
		else
			lane_drop(j, p, l, 1);
	}
	if (p->inflight)
		p->inflight--;
	if (r->kind == K_CHUNK) {
		if (j->busy[r->chunk])
			j->busy[r->chunk]--;
		j->inflight--;
		if (!r->kept) {
			j->wasted_bytes += r->a.len;
			j->order_stale = 1; /* its chunk is to be asked for again */
		}
	}
	r->used = 0;
	r->a.len = 0;
}

/* ------------------------------------------------------------- dialling */

struct cn_cc *cn_cc_new(struct cn_job *j, struct cn_peer *p)
{
	struct cn_cc *cc = calloc(1, sizeof(*cc));

	if (!cc)
		return NULL;
	pthread_mutex_init(&cc->mu, NULL);
	atomic_init(&cc->job, j);
	cc->peer = (int)(p - j->peers);
	atomic_init(&cc->refs, 2);
	if (p->cc) {
		/* let go of the old connection's context (j->mu is held: not
		 * cc->mu, see struct cn_cc) */
		cc_let_go(p->cc);
		cc_put(p->cc);
	}
	p->cc = cc;
	for (unsigned int k = 0; k < CN_MAX_LANES; k++) {
		p->lanes[k].state = L_FREE;
		p->lanes[k].req = -1;
	}
	return cc;
}

int cn_conn_dial(struct cn_job *j, struct cn_peer *p)
{
	int rc = quic_node_connect_addr(j->cn->quic, (const struct sockaddr *)&p->addr, p->alen,
					NULL, &cn_handler, p->cc, &p->conn);

	if (rc)
		atomic_store(&p->cc->refs, 1); /* no connection will report closed() */
	return rc;
}

void cn_conns_close(struct cn_job *j)
{
	/* Let go of every connection: late callbacks see no job. */
	for (unsigned int i = 0; i < j->npeers; i++) {
		struct cn_peer *p = &j->peers[i];

		if (p->state == P_UP || p->state == P_CONNECTING)
			quic_node_close(j->cn->quic, p->conn, 0);
	}
	pthread_mutex_unlock(&j->mu);
	for (unsigned int i = 0; i < j->npeers; i++) {
		struct cn_cc *cc = j->peers[i].cc;

		if (!cc)
			continue;
		pthread_mutex_lock(&cc->mu); /* waits out a callback inside the job */
		cc_let_go(cc);
		pthread_mutex_unlock(&cc->mu);
		cc_put(cc);
		j->peers[i].cc = NULL;
	}
	pthread_mutex_lock(&j->mu);
	for (unsigned int i = 0; i < CN_MAX_REQS; i++) {
		cn_ans_free(&j->reqs[i].a);
		j->reqs[i].used = 0;
	}
}
