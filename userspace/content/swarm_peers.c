// SPDX-License-Identifier: MIT
/*
 * Swarm download, its providers (swarm.c has the job driver): the QUIC
 * callbacks of the connections to providers (through struct cn_cc, which
 * outlives the job), the provider table of a job (explicit targets, DHT
 * get_peers results, peer exchange hints: bounded, a slot given away only
 * by a provider gone without a fault), the DHT lookups, and scoring
 * (faults to the ban pipeline, soft failures with backoff).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "content/content_node_int.h"
#include "weft/guard.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

/* ------------------------------------------------------------ callbacks */

struct cn_job *cn_cc_enter(struct cn_cc *cc)
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

void cn_cc_put(struct cn_cc *cc)
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

void cn_lane_drop(struct cn_job *j, struct cn_peer *p, struct cn_lane *l, int reset)
{
	if (reset && (l->state == L_IDLE || l->state == L_BUSY))
		quic_node_stream_reset(j->cn->quic, p->conn, l->sid, 0);
	l->state = L_FREE;
	l->req = -1;
}

void cn_send_request(struct cn_job *j, struct cn_peer *p, struct cn_req *r)
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
		       : r->kind == K_PEERS ? CONTENT_OP_PEERS
					    : CONTENT_OP_CHUNK;
		memcpy(q.id, j->cur, 32);
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
	struct cn_job *j = cn_cc_enter(cc);
	struct cn_peer *p;

	if (!j)
		return;
	p = &j->peers[cc->peer];
	if (err) {
		log_info(CN_MOD, "provider %s: %s", p->name, strerror(-err));
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
	struct cn_job *j = cn_cc_enter(cc);
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
		cn_lane_drop(j, p, l, 0);
		if (r && r->used && !r->done) {
			r->done = 1;
			r->err = err ? err : -EIO;
		}
		goto out;
	}
	l->sid = sid;
	if (r && r->used && !r->done) {
		l->state = L_BUSY;
		cn_send_request(j, p, r);
	} else {
		l->state = L_IDLE;
		l->req = -1;
	}
out:
	cc_leave(cc, j);
}

static void cb_stream_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
			   int fin)
{
	struct cn_cc *cc = arg;
	struct cn_job *j = cn_cc_enter(cc);
	struct cn_peer *p;
	struct cn_lane *l;
	struct cn_req *r;
	int rc, wake = 1;

	if (!j)
		return;
	p = &j->peers[cc->peer];
	l = lane_by_sid(j, cc->peer, sid);
	if (!l)
		goto out;
	r = l->state == L_BUSY && l->req >= 0 ? &j->reqs[l->req] : NULL;
	if (!r || !r->used || r->done) {
		if (len) /* an answer nobody asked for */
			cn_lane_drop(j, p, l, 1);
		else if (fin)
			cn_lane_drop(j, p, l, 0);
		goto out;
	}
	rc = cn_ans_feed(&r->a, data, len);
	wake = rc != 0 || fin; /* the answer is complete, or broken */
	if (rc < 0) { /* -EMSGSIZE, -EPROTO (framing), -ENOMEM */
		r->done = 1;
		r->err = rc;
		cn_lane_drop(j, p, l, 1);
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
		cn_lane_drop(j, p, l, 0);
	}
out:
	cc_leave_wake(cc, j, wake);
}

static void fail_peer_reqs(struct cn_job *j, int peer, int err)
{
	for (unsigned int i = 0; i < CN_MAX_REQS; i++)
		if (j->reqs[i].used && !j->reqs[i].done && j->reqs[i].peer == peer) {
			j->reqs[i].done = 1;
			j->reqs[i].err = err;
		}
}

static void cb_stream_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct cn_cc *cc = arg;
	struct cn_job *j = cn_cc_enter(cc);
	struct cn_lane *l;

	if (!j)
		return;
	l = lane_by_sid(j, cc->peer, sid);
	if (l) {
		if (l->req >= 0 && j->reqs[l->req].used && !j->reqs[l->req].done) {
			j->reqs[l->req].done = 1;
			j->reqs[l->req].err = err ? err : -ECONNRESET;
		}
		cn_lane_drop(j, &j->peers[cc->peer], l, 0);
	}
	cc_leave(cc, j);
}

static void cb_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct cn_cc *cc = arg;
	struct cn_job *j = cn_cc_enter(cc);

	if (j) {
		struct cn_peer *p = &j->peers[cc->peer];

		if (p->state != P_BANNED)
			p->state = P_DEAD;
		fail_peer_reqs(j, cc->peer, -ENOTCONN);
		for (unsigned int i = 0; i < CN_MAX_LANES; i++)
			cn_lane_drop(j, p, &p->lanes[i], 0);
		cc_leave(cc, j);
	}
	cn_cc_put(cc);
}

static const struct quic_node_handler cn_handler = {
    .connected = cb_connected,
    .stream_opened = cb_stream_opened,
    .stream_data = cb_stream_data,
    .stream_closed = cb_stream_closed,
    .closed = cb_closed,
};

/* ------------------------------------------------------------ providers */

int cn_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
}

/* Count p's bitmap in (add > 0) or out of the job's availability counts
 * (once each way). Called with j->mu held. */
void cn_avail_account(struct cn_job *j, struct cn_peer *p, int add)
{
	if (!j->avail || !p->bits || p->counted == (add > 0))
		return;
	for (uint64_t i = 0; i < j->nchunks; i++)
		if (p->bits[i]) {
			if (add > 0)
				j->avail[i]++;
			else if (j->avail[i])
				j->avail[i]--;
		}
	p->counted = add > 0;
}

/* A provider slot that can be given to another: gone without a fault,
 * not ourselves, no request of it left to account. -1 if none. */
static int reusable_slot(const struct cn_job *j)
{
	for (unsigned int k = 0; k < j->npeers; k++) {
		const struct cn_peer *p = &j->peers[k];
		unsigned int i;

		if (p->state != P_DEAD || p->faults || p->self || p->seed)
			continue;
		for (i = 0; i < CN_MAX_REQS; i++)
			if (j->reqs[i].used && j->reqs[i].peer == (int)k)
				break;
		if (i == CN_MAX_REQS)
			return (int)k;
	}
	return -1;
}

/* Room in the provider table for peers found by exchange: a free slot
 * only. Slots of providers that went away are refilled from the DHT (at
 * most every 15 s): refilling them from PEERS answers made a 50-node lab
 * dial ~900 providers per download (each a handshake and a 32 KiB INFO)
 * as loaded peers timed out and were replaced. */
int cn_pex_room(const struct cn_job *j)
{
	return j->npeers < CONTENT_MAX_PROVIDERS;
}

uint64_t cn_job_rand(struct cn_job *j)
{
	uint64_t x = j->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return j->rng = x;
}

/* Called with j->mu held. */
void cn_add_peer(struct cn_job *j, const struct sockaddr_storage *ss, socklen_t alen)
{
	struct cn_peer *p;
	struct cn_cc *cc;
	unsigned int i;
	int rc;

	for (i = 0; i < j->npeers; i++)
		if (cn_same_addr(&j->peers[i].addr, ss)) {
			p = &j->peers[i];
			if (p->state != P_DEAD || p->faults || p->self)
				return;
			goto dial; /* a dead provider found again: one more chance */
		}
	if (j->npeers == CONTENT_MAX_PROVIDERS) {
		/* Full: a provider that went away without a fault takes no
		 * slot from one just found (its stats go with it). */
		int k = reusable_slot(j);
		struct cn_cc *old;

		if (k < 0)
			return;
		p = &j->peers[k];
		cn_avail_account(j, p, -1);
		free(p->bits);
		old = p->cc; /* let go of below */
		memset(p, 0, sizeof(*p));
		p->cc = old;
	} else {
		p = &j->peers[j->npeers++];
		memset(p, 0, sizeof(*p));
	}
	p->addr = *ss;
	p->alen = alen;
	p->score = 100;
	util_fmt_addr(ss, p->name, sizeof(p->name));
	i = (unsigned int)(p - j->peers);
dial:
	cc = calloc(1, sizeof(*cc));
	if (!cc) {
		p->state = P_DEAD;
		return;
	}
	pthread_mutex_init(&cc->mu, NULL);
	atomic_init(&cc->job, j);
	cc->peer = (int)i;
	atomic_init(&cc->refs, 2);
	if (p->cc) {
		/* let go of the old connection's context (j->mu is held: not
		 * cc->mu, see struct cn_cc) */
		atomic_store(&p->cc->job, NULL);
		cn_cc_put(p->cc);
	}
	p->cc = cc;
	for (unsigned int k = 0; k < CN_MAX_LANES; k++) {
		p->lanes[k].state = L_FREE;
		p->lanes[k].req = -1;
	}
	p->inflight = 0;
	p->depth = j->cn->per_provider < CN_DEPTH_START ? j->cn->per_provider : CN_DEPTH_START;
	p->ans_ms = 0;
	p->cut_at = 0;
	p->state = P_CONNECTING;
	p->info = 0;
	p->pex = 0;
	p->mstate = 0;
	p->fails_row = 0;
	rc = quic_node_connect_addr(j->cn->quic, (const struct sockaddr *)&p->addr, p->alen, NULL,
				    &cn_handler, cc, &p->conn);
	if (rc) {
		p->state = P_DEAD;
		atomic_store(&cc->refs, 1); /* no connection will report closed() */
	}
}

/* Explicit providers now, DHT providers when the lookup answers
 * (cn_poll_lookup). */
void cn_gather(struct cn_job *j, const uint8_t *ih)
{
	unsigned int k;

	for (k = 0; k < j->rq.nfrom; k++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		uint8_t key[QUIC_KEY_LEN];
		int have_key;

		if (!quic_node_parse_target(j->rq.from[k], QUIC_NODE_DEF_PORT, key, &have_key, &ss,
					    &sl))
			cn_add_peer(j, &ss, sl);
	}
	/* Providers dropped for timeouts (overloaded, not lying) get one more
	 * chance at each lookup: one may be the only holder of what is
	 * missing, and neither the DHT nor a peer may name it again. */
	for (k = 0; k < j->npeers; k++)
		if (j->peers[k].state == P_DEAD && !j->peers[k].faults && !j->peers[k].self)
			cn_add_peer(j, &j->peers[k].addr, j->peers[k].alen);
	j->last_lookup = util_now_ms();
	if (!j->lk && !j->lk_starting) {
		struct cn_lk *lk;

		/* Starting a lookup waits for DHT worker 0 (dhtnode_run),
		 * whose QUIC callbacks for this job take j->mu (cn_cc_enter):
		 * held across the wait, the worker stopped on the job's lock
		 * until the wait's 5 s deadline gave up the lookup, and with
		 * it every connection of the node stalled (docs/LAB.md). */
		j->lk_starting = 1;
		pthread_mutex_unlock(&j->mu);
		lk = cn_lookup_start(j->cn, ih);
		pthread_mutex_lock(&j->mu);
		j->lk_starting = 0;
		j->lk = lk;
		j->nlookups++;
	}
}

void cn_poll_lookup(struct cn_job *j)
{
	struct sockaddr_storage found[CN_LOOKUP_MAX];
	int n;

	if (!j->lk || (n = cn_lookup_poll(j->lk, found, CN_LOOKUP_MAX)) == -EAGAIN)
		return;
	cn_lookup_put(j->lk);
	j->lk = NULL;
	/* In a random order: downloaders that find the same peers fill
	 * their provider tables with different ones. */
	for (int i = n - 1; i > 0; i--) {
		int k = (int)(cn_job_rand(j) % (uint64_t)(i + 1));
		struct sockaddr_storage x = found[i];

		found[i] = found[k];
		found[k] = x;
	}
	for (int i = 0; i < n; i++)
		cn_add_peer(j, &found[i],
			 found[i].ss_family == AF_INET ? sizeof(struct sockaddr_in)
						       : sizeof(struct sockaddr_in6));
}

/* A provider sent data that does not verify. */
void cn_fault(struct cn_job *j, struct cn_peer *p, const char *what)
{
	p->faults++;
	p->score -= 50;
	p->fails_row++;
	p->backoff_until = util_now_ms() + (250ull << (p->fails_row > 5 ? 5 : p->fails_row));
	log_warn(CN_MOD, "provider %s sent %s (fault %u)", p->name, what, p->faults);
	if (p->faults >= CONTENT_BAN_FAULTS && p->state != P_BANNED) {
		uint8_t a[16];
		int fam = p->addr.ss_family, rc = -ENODEV;

		if (fam == AF_INET)
			memcpy(a, &((struct sockaddr_in *)&p->addr)->sin_addr, 4);
		else
			memcpy(a, &((struct sockaddr_in6 *)&p->addr)->sin6_addr, 16);
		if (j->cn->guard)
			rc = guard_ban_addr(j->cn->guard, fam, a, CONTENT_BAN_TTL_S);
		log_warn(CN_MOD, "provider %s: %u bad answers, banned for %u s%s", p->name,
			 p->faults, CONTENT_BAN_TTL_S, rc ? " (ban pipeline unavailable)" : "");
		p->state = P_BANNED;
		quic_node_close(j->cn->quic, p->conn, 0);
		fail_peer_reqs(j, (int)(p - j->peers), -EACCES);
	}
}

void cn_soft_fail(struct cn_peer *p, int penalty)
{
	p->depth = p->depth > 2 ? p->depth / 2 : 1;
	p->score -= penalty;
	p->fails_row++;
	p->backoff_until = util_now_ms() + (250ull << (p->fails_row > 5 ? 5 : p->fails_row));
}
