// SPDX-License-Identifier: MIT
/*
 * Serving side of the content fetch protocol (stream type CONTENT_ST_FETCH,
 * docs/PROTOCOL.md "Content"). Worker callbacks only collect the request
 * bytes (at most 41) and queue them; serve threads read, re-verify (inside
 * cstore_read_chunk: a blob that fails is marked bad and never served) and
 * answer with quic_node_write().
 *
 * Owners: each worker owns the pending table of its connections' streams
 * (struct cn_wtab); requests cross to the serve threads through a bounded
 * lock-free ring; a serve thread counts its answer off the stream's entry
 * with one atomic word. No mutex is taken on a worker (docs/CONTENT.md).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "content/content_node_int.h"
#include "content/sched.h"
#include "weft/conn.h"
#include "weft/guard.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

_Static_assert(sizeof(((struct cn_pending *)0)->buf) >= CN_REQ_MAX &&
		   sizeof(((struct cn_sreq *)0)->buf) >= CN_REQ_MAX,
	       "request buffers hold the longest request");

const char *cn_fault_name(enum cn_fault f)
{
	static const char *const n[CN_FAULT_N] = {"unannounced", "repeat", "streams", "bad"};

	return f < CN_FAULT_N ? n[f] : "?";
}

/* A pending entry unused this long may be taken over when the table is
 * full: its connection most likely went away without closing the stream
 * (connections that close do not report each stream). */
#define CN_PENDING_STALE_MS 30000

/* One answer being written, on the connection's worker: what reply()
 * found (the queue full: try again later) and the bytes that went out. */
struct sv {
	struct content_node *cn;
	struct cn_wtab *t;
	int rc;	     /* -EAGAIN: nothing written, the request goes back */
	size_t sent; /* bytes written */
	int chunk;   /* a chunk went out */
};

/* The worker's clock for the scheduler (virtual in the simulator). */
static uint64_t sv_now(const struct cn_wtab *t)
{
	return t->w ? engine_worker_now_us(t->w) * 1000ull : util_now_ms() * 1000000ull;
}

static uint64_t chunk_key(const uint8_t *id, uint64_t index)
{
	uint64_t k;

	memcpy(&k, id, sizeof(k));
	return k ^ (index * 0x9e3779b97f4a7c15ull);
}

/*
 * A requester did something a fair downloader does not (sched.h, enum
 * cn_fault): counted, and scored by the worker's scheduler. Over the
 * threshold, the peer, validated by its completed QUIC handshake (the
 * connection has an authenticated key, its path a proven address), goes
 * to the ban pipeline (guard_ban_addr, as bad providers do) and its
 * connection is closed.
 */
static void fault_of(struct content_node *cn, struct cn_wtab *t, uint64_t conn, enum cn_fault f)
{
	struct sockaddr_storage addr;
	uint8_t key[QUIC_KEY_LEN], a[16];
	char as[64] = "?";
	int fam, rc = -ENODEV;

	atomic_fetch_add(&cn->faults[f], 1);
	if (cn_sched_fault(t->sched, conn, f, sv_now(t)) != 1)
		return;
	/* only a peer that finished its handshake has a key: validated */
	if (quic_node_conn_peer(cn->quic, conn, key, &addr))
		return;
	fam = addr.ss_family;
	if (fam == AF_INET)
		memcpy(a, &((struct sockaddr_in *)&addr)->sin_addr, 4);
	else if (fam == AF_INET6)
		memcpy(a, &((struct sockaddr_in6 *)&addr)->sin6_addr, 16);
	else
		return;
	inet_ntop(fam, a, as, sizeof(as));
	if (cn->guard)
		rc = guard_ban_addr(cn->guard, fam, a, CONTENT_REQ_BAN_TTL_S);
	atomic_fetch_add(&cn->requester_bans, 1);
	/* log.addresses off (the default): a keyed tag, not the address */
	log_warn(CN_MOD, "requester %s: score over %u (last: %s), banned for %u s%s",
		 log_addr(as, as, sizeof(as)),
		 CN_SCHED_BAN_SCORE, cn_fault_name(f), CONTENT_REQ_BAN_TTL_S,
		 rc ? " (ban pipeline unavailable)" : "");
	quic_node_close(cn->quic, conn, 0);
}

static void requester_fault(struct sv *v, const struct cn_sreq *r, enum cn_fault f)
{
	fault_of(v->cn, v->t, r->conn, f);
}

/* What writing a whole answer of len bytes on sid returned. Never
 * waiting: a full node-wide send queue (-ENOBUFS) puts the request back
 * at the head of its peer's queue (v->rc), to be tried again shortly. */
static void replied(struct sv *v, int64_t sid, size_t len, int rc)
{
	if (rc == -ENOBUFS || rc == -EAGAIN)
		v->rc = -EAGAIN;
	else if (rc)
		log_debug(CN_MOD, "reply on stream %lld: %s", (long long)sid, strerror(-rc));
	else
		v->sent += len;
}

static void reply(struct sv *v, uint64_t conn, int64_t sid, const uint8_t *buf, size_t len,
		  int fin)
{
	replied(v, sid, len, quic_node_write(v->cn->quic, conn, sid, buf, len, fin));
}

/* Error answer: status, zero length. */
static void reply_status(struct sv *v, const struct cn_sreq *r, uint8_t st)
{
	uint8_t b[CN_ANS_HEAD];

	cn_ans_head(b, st, 0);
	reply(v, r->conn, r->sid, b, sizeof(b), r->fin);
}

/* Remember that r->from asked about id (the swarm table): refresh its
 * entry, else take a free or the oldest one. */
static void swarm_note(struct content_node *cn, const struct cn_sreq *r, const uint8_t *id)
{
	struct cn_swarm_ent *e, *pick = NULL;
	uint64_t now = util_now_ms();

	if (!r->from.ss_family)
		return;
	pthread_mutex_lock(&cn->swmu);
	for (unsigned int i = 0; i < CN_SWARM_MAX; i++) {
		e = &cn->swarm[i];
		if (e->at && !memcmp(e->id, id, sizeof(e->id)) && cn_same_addr(&e->addr, &r->from)) {
			pick = e;
			break;
		}
		if (!pick || (pick->at && e->at < pick->at))
			pick = e;
	}
	memcpy(pick->id, id, sizeof(pick->id));
	pick->addr = r->from;
	pick->at = now;
	pthread_mutex_unlock(&cn->swmu);
}

/* The entry of id into *info when we hold it (not bad): 0; else the
 * NOT_FOUND answer went out: -1. */
static int held(struct sv *v, const struct cn_sreq *r, const uint8_t *id,
		struct cstore_info *info)
{
	struct content_node *cn = v->cn;
	if (cstore_info(cn->cs, id, info) == 0 && info->state != CSTORE_BAD)
		return 0;
	atomic_fetch_add(&cn->serve_notfound, 1);
	reply_status(v, r, CONTENT_ST_NOT_FOUND);
	return -1;
}

static void serve_info(struct sv *v, const struct cn_sreq *r, const struct cn_wreq *q)
{
	struct content_node *cn = v->cn;
	struct cstore_info info;
	uint8_t *cvs = NULL, *out;
	uint64_t n;
	size_t len;
	int rc;

	if (held(v, r, q->id, &info))
		return;
	rc = cstore_cvs(cn->cs, q->id, &cvs, &n);
	if (rc) {
		reply_status(v, r, CONTENT_ST_UNAVAILABLE);
		return;
	}
	len = CN_INFO_ANSWER(n);
	out = calloc(1, len);
	if (!out) {
		free(cvs);
		reply_status(v, r, CONTENT_ST_BUSY);
		return;
	}
	cn_info_head(out, info.size, n);
	memcpy(out + CN_INFO_HEAD, cvs, (size_t)n * 32);
	/* the bitmap of the same moment as the size (one transaction); a
	 * blob replaced in between answers as unavailable */
	rc = cstore_bitmap(cn->cs, q->id, &info, out + CN_INFO_HEAD + n * 32, (n + 7) / 8);
	if (rc || info.nchunks != n) {
		free(out);
		free(cvs);
		reply_status(v, r, CONTENT_ST_UNAVAILABLE);
		return;
	}
	if (cn->ss)
		cn_ss_filter(cn, q->id, &r->from, r->conn, out + CN_INFO_HEAD + n * 32, n);
	atomic_fetch_add(&cn->served_infos, 1);
	swarm_note(cn, r, q->id);
	reply(v, r->conn, r->sid, out, len, r->fin);
	free(out);
	free(cvs);
}

/* HAVE: the bitmap alone (a downloader refreshing what another has). */
static void serve_have(struct sv *v, const struct cn_sreq *r, const struct cn_wreq *q)
{
	struct content_node *cn = v->cn;
	struct cstore_info info;
	uint8_t *out;
	size_t cap;
	int rc;

	if (held(v, r, q->id, &info))
		return;
	cap = (size_t)((info.nchunks + 7) / 8);
	out = calloc(1, CN_INFO_HEAD + cap);
	if (!out) {
		reply_status(v, r, CONTENT_ST_BUSY);
		return;
	}
	rc = cstore_bitmap(cn->cs, q->id, &info, out + CN_INFO_HEAD, cap);
	if (rc) {
		free(out);
		reply_status(v, r, rc == -ENOENT ? CONTENT_ST_NOT_FOUND : CONTENT_ST_UNAVAILABLE);
		return;
	}
	if (cn->ss)
		cn_ss_filter(cn, q->id, &r->from, r->conn, out + CN_INFO_HEAD, info.nchunks);
	cn_have_head(out, info.size, info.nchunks);
	atomic_fetch_add(&cn->served_haves, 1);
	swarm_note(cn, r, q->id);
	reply(v, r->conn, r->sid, out, CN_HAVE_ANSWER(info.nchunks), r->fin);
	free(out);
}

static int addr_listed(const struct sockaddr_storage *a, size_t n,
		       const struct sockaddr_storage *x)
{
	for (size_t k = 0; k < n; k++)
		if (cn_same_addr(&a[k], x))
			return 1;
	return 0;
}

/* PEERS: other nodes of id's swarm, for content we hold: the providers of
 * our own download of it, then the nodes that asked us about it lately
 * (newest first), never the asker itself; at most CN_PEX_MAX. */
static void serve_peers(struct sv *v, const struct cn_sreq *r, const struct cn_wreq *q)
{
	struct content_node *cn = v->cn;
	struct sockaddr_storage a[CN_PEX_MAX];
	uint8_t out[CN_PEERS_ANSWER_MAX];
	struct cstore_info info;
	size_t n;
	uint64_t now = util_now_ms();

	if (held(v, r, q->id, &info))
		return;
	n = cn_job_peers(cn, q->id, &r->from, a, CN_PEX_MAX);
	pthread_mutex_lock(&cn->swmu);
	/* newest first: each round takes the newest entry below the last
	 * one taken, ordered by (time, slot): at most CN_SWARM_MAX rounds of
	 * CN_SWARM_MAX entries */
	for (uint64_t below = UINT64_MAX; n < CN_PEX_MAX;) {
		uint64_t bestk = 0;
		int best = -1;

		for (unsigned int i = 0; i < CN_SWARM_MAX; i++) {
			struct cn_swarm_ent *e = &cn->swarm[i];
			uint64_t key = e->at * CN_SWARM_MAX + i;

			if (e->at && key < below && e->at + CN_SWARM_TTL_MS >= now &&
			    !memcmp(e->id, q->id, sizeof(e->id)) && (best < 0 || key > bestk)) {
				best = (int)i;
				bestk = key;
			}
		}
		if (best < 0)
			break;
		below = bestk;
		if (!cn_same_addr(&cn->swarm[best].addr, &r->from) &&
		    !addr_listed(a, n, &cn->swarm[best].addr))
			a[n++] = cn->swarm[best].addr;
	}
	pthread_mutex_unlock(&cn->swmu);
	swarm_note(cn, r, q->id);
	atomic_fetch_add(&cn->served_peers, 1);
	reply(v, r->conn, r->sid, out, cn_peers_encode(out, a, n), r->fin);
}

/* A chunk's answer is read in place into its write command (the store's
 * O_DIRECT read lands in it, or its hot cache copies into it): no copy of
 * the chunk after that. */
static void serve_chunk(struct sv *v, const struct cn_sreq *r, const struct cn_wreq *q)
{
	struct content_node *cn = v->cn;
	struct quic_node_wbuf *w;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	w = quic_node_wbuf_new(cn->quic, CN_ANS_HEAD + B3TREE_CHUNK_LEN, CN_ANS_HEAD, &buf);
	if (!w) {
		reply_status(v, r, CONTENT_ST_BUSY); /* no memory: asked again later */
		return;
	}
	rc = cstore_read_chunk(cn->cs, q->id, q->index, buf + CN_ANS_HEAD, B3TREE_CHUNK_LEN, &len);
	if (rc)
		quic_node_wbuf_free(cn->quic, w);
	if (rc == -ENOENT || rc == -EINVAL) {
		atomic_fetch_add(&cn->serve_notfound, 1);
		/* a chunk (or content) we never announced */
		requester_fault(v, r, CN_FAULT_UNANNOUNCED);
		reply_status(v, r, rc == -EINVAL ? CONTENT_ST_BAD_REQUEST : CONTENT_ST_NOT_FOUND);
		return;
	}
	if (rc) {
		/* -EIO: failed re-verification (now marked bad) or unreadable. */
		atomic_fetch_add(&cn->serve_unavailable, 1);
		reply_status(v, r, CONTENT_ST_UNAVAILABLE);
		return;
	}
#ifdef WEFT_TEST_HOOKS
	if (cn->test_corrupt && len)
		buf[CN_ANS_HEAD + len / 2] ^= 0x5a; /* test hook, see content_node.h */
#endif
	cn_ans_head(buf, CONTENT_ST_OK, (uint32_t)len);
	replied(v, r->sid, len + CN_ANS_HEAD,
		quic_node_write_wbuf(cn->quic, r->conn, r->sid, w, len + CN_ANS_HEAD, r->fin));
	if (v->rc || !v->sent)
		return; /* not sent: full (tried again), or the stream is gone */
	atomic_fetch_add(&cn->served_chunks, 1);
	atomic_fetch_add(&cn->served_bytes, len);
	v->chunk = 1;
	/* the same chunk asked for again by the same peer */
	if (cn_sched_seen(v->t->sched, r->conn, chunk_key(q->id, q->index), sv_now(v->t)))
		requester_fault(v, r, CN_FAULT_REPEAT);
	if (cn->ss)
		cn_ss_fetched(cn, q->id, &r->from, q->index);
}

static void serve_manifest(struct sv *v, const struct cn_sreq *r,
			   const struct cn_wreq *q)
{
	struct content_node *cn = v->cn;
	uint8_t *enc = NULL, *out;
	size_t len = 0;

	if (cn_share_get(cn, q->id, &enc, &len)) {
		atomic_fetch_add(&cn->serve_notfound, 1);
		reply_status(v, r, CONTENT_ST_NOT_FOUND);
		return;
	}
	out = malloc(len + CN_ANS_HEAD);
	if (!out) {
		free(enc);
		reply_status(v, r, CONTENT_ST_BUSY);
		return;
	}
	cn_ans_head(out, CONTENT_ST_OK, (uint32_t)len);
	memcpy(out + CN_ANS_HEAD, enc, len);
	atomic_fetch_add(&cn->served_manifests, 1);
	reply(v, r->conn, r->sid, out, len + CN_ANS_HEAD, r->fin);
	free(out);
	free(enc);
}

static void serve_one(struct sv *v, const struct cn_sreq *r)
{
	struct content_node *cn = v->cn;
	struct cn_wreq q;
	int rc;

	if (r->len == 0) {
		/* The client's FIN, with no answer owed before ours. */
		reply(v, r->conn, r->sid, NULL, 0, 1);
		return;
	}
	rc = cn_req_decode(&q, r->buf, r->len);

	if (!rc && q.op != CONTENT_OP_MANIFEST && cn_withdrawn(cn, q.id)) {
		/* a pinned blob of a withdrawn version: kept, never served */
		atomic_fetch_add(&cn->serve_withdrawn, 1);
		reply_status(v, r, CONTENT_ST_NOT_FOUND);
	} else if (!rc && cn_blocked(cn, q.id,
				     q.op == CONTENT_OP_MANIFEST ? MANIFEST_SHARE_ID_LEN : 32)) {
		/* a blocklist followed lists it: never served */
		atomic_fetch_add(&cn->blocked_refused, 1);
		reply_status(v, r, CONTENT_ST_NOT_FOUND);
	} else if (!rc && q.op == CONTENT_OP_INFO)
		serve_info(v, r, &q);
	else if (!rc && q.op == CONTENT_OP_CHUNK)
		serve_chunk(v, r, &q);
	else if (!rc && q.op == CONTENT_OP_MANIFEST)
		serve_manifest(v, r, &q);
	else if (!rc && q.op == CONTENT_OP_HAVE)
		serve_have(v, r, &q);
	else if (!rc && q.op == CONTENT_OP_PEERS)
		serve_peers(v, r, &q);
	else {
		atomic_fetch_add(&cn->serve_bad, 1);
		reply_status(v, r, CONTENT_ST_BAD_REQUEST);
	}
}

/* ------------------------------------------------ serving on the worker */

/*
 * Each engine worker serves the requests of its own connections
 * (docs/CONTENT.md "Fair, capped serving"): on_data queues them on their
 * peer's queue in the worker's scheduler (sched.h) and defers the pump to
 * the end of the loop pass; the pump answers up to CONTENT_SERVE_BATCH
 * in the scheduler's order, then lets packets in again (a timer at the
 * next pass), and sleeps on a timer while every peer waits for a cap.
 * Chunk reads and their re-verification run here too (cstore_read_chunk),
 * one chunk at a time: a worker never waits for anything else.
 */

/* Apply the live limits when they changed (one atomic load a pass). */
static void apply_limits(struct cn_wtab *t)
{
	struct content_node *cn = t->cn;
	unsigned int g = atomic_load(&cn->lim_gen);
	struct cn_sched_limits l;

	if (g == t->lim_gen)
		return;
	l.peer_rate = atomic_load(&cn->lim_peer);
	l.lan_rate = atomic_load(&cn->lim_lan);
	l.lan_global = atomic_load(&cn->lim_lan_capped);
	cn_sched_limits(t->sched, &l);
	t->lim_gen = g;
}

static void answered(struct content_node *cn, const struct cn_sreq *r);

/* The request's stream is gone (reset by the peer, or closed with its
 * connection): answering would read a chunk from the disk for nobody, and
 * a requester that queues its peer_queue of requests and hangs up would
 * cost the seed that many reads each time. */
static int stale(struct content_node *cn, const struct cn_sreq *r)
{
	return !quic_node_stream_live(cn->quic, r->conn, r->sid);
}

static void pump(struct engine_worker *w, void *arg)
{
	struct cn_wtab *t = arg;
	struct content_node *cn = t->cn;
	struct cn_sched_item it;
	uint64_t wake;

	if (t->pumping || !atomic_load(&cn->serving))
		return;
	t->pumping = 1;
	apply_limits(t);
	for (unsigned int n = 0; n < CONTENT_SERVE_BATCH; n++) {
		struct sv v = {.cn = cn, .t = t};

		if (!cn_sched_next(t->sched, sv_now(t), &it, &wake)) {
			if (wake != UINT64_MAX)
				engine_timer_add_us(w, &t->pump, wake / 1000 + 1);
			goto out;
		}
		if (stale(cn, &it.r)) {
			atomic_fetch_add(&cn->serve_stale, 1);
			cn_sched_account(t->sched, it.r.conn, -(int64_t)it.cost, sv_now(t));
			continue;
		}
		serve_one(&v, &it.r);
		if (v.rc) {
			/* the node's send queue is full: again in a moment */
			cn_sched_unpop(t->sched, &it);
			engine_timer_add(w, &t->pump, 1);
			goto out;
		}
		if ((int64_t)v.sent != (int64_t)it.cost)
			cn_sched_account(t->sched, it.r.conn, (int64_t)v.sent - (int64_t)it.cost,
					 sv_now(t));
		if (it.r.len)
			answered(cn, &it.r);
#ifdef WEFT_TEST_HOOKS
		if (v.chunk && cn->test_delay_ms) {
			/* test hook: this worker serves one chunk per delay */
			engine_timer_add(w, &t->pump, cn->test_delay_ms);
			goto out;
		}
#endif
	}
	engine_timer_add(w, &t->pump, 0); /* more: at the next pass */
out:
	t->pumping = 0;
}

/* Worker 0, each second while the automatic cap is on (upauto.h): a
 * sample of every worker's published copy of its peers (those under the
 * node's cap: WAN peers, LAN ones too when lan_capped), and the cap it
 * answers applied, under the operator's own cap if one is set too. When
 * the mode goes off, the controller forgets and the operator's cap alone
 * applies again (cn_serve_set_limits set it; a sample racing that store
 * is undone here within a second). */
static void auto_step(struct content_node *cn, uint64_t now)
{
	uint64_t lim = atomic_load(&cn->lim_up), cap, rate;
	int lan = atomic_load(&cn->lim_lan_capped);
	unsigned int n = 0;

	if (!atomic_load(&cn->lim_auto)) {
		if (cn->auto_was_on) {
			cn->auto_was_on = 0;
			cn_upauto_reset(cn->upauto);
			cn_rate_set(&cn->up_global, lim);
			pthread_mutex_lock(&cn->auto_mu);
			cn_upauto_status(cn->upauto, &cn->auto_st);
			pthread_mutex_unlock(&cn->auto_mu);
		}
		return;
	}
	if (!cn->upauto) {
		cn->auto_in = calloc(CN_UPAUTO_PEERS, sizeof(*cn->auto_in));
		if (!cn->auto_in || cn_upauto_new(&cn->upauto)) {
			free(cn->auto_in);
			cn->auto_in = NULL;
			return; /* no memory: the mode waits, tried again next second */
		}
	}
	cn->auto_was_on = 1;
	for (unsigned int w = 0; w < cn->nwtab; w++) {
		struct cn_wtab *t = cn->wtab[w];

		pthread_mutex_lock(&t->snap_mu);
		for (unsigned int i = 0; i < t->nsnap && n < CN_UPAUTO_PEERS; i++) {
			if (t->snap_pub[i].cls == CN_CLASS_LAN && !lan)
				continue;
			cn->auto_in[n].peer = t->snap_pub[i].peer;
			cn->auto_in[n].sent = t->snap_pub[i].sent_bytes;
			cn->auto_in[n].at_ns = t->snap_ns;
			cn->auto_in[n].srtt_ns = t->rtt_pub[i][0];
			cn->auto_in[n].min_rtt_ns = t->rtt_pub[i][1];
			n++;
		}
		pthread_mutex_unlock(&t->snap_mu);
	}
	cap = cn_upauto_sample(cn->upauto, now, cn->auto_in, n);
	rate = cap && (!lim || cap < lim) ? cap : lim;
	if (rate != atomic_load(&cn->up_global.rate))
		cn_rate_set(&cn->up_global, rate);
	pthread_mutex_lock(&cn->auto_mu);
	cn_upauto_status(cn->upauto, &cn->auto_st);
	pthread_mutex_unlock(&cn->auto_mu);
}

/* Every second: idle peers' request queues back to the allocator, the
 * status view's copy of the peers; on worker 0 the
 * node's upload history and the automatic cap too. */
static void tick(struct engine_worker *w, void *arg)
{
	struct cn_wtab *t = arg;
	struct content_node *cn = t->cn;
	uint64_t now = sv_now(t), sec = now / 1000000000ull;
	unsigned int n;

	cn_sched_trim(t->sched, now, CN_SCHED_IDLE_FREE_S * 1000000000ull);
	n = cn_sched_peers(t->sched, now, t->snap, CN_SCHED_PEERS);
	if (atomic_load(&cn->lim_auto))
		for (unsigned int i = 0; i < n; i++)
			if (quic_node_conn_worker(cn->quic, t->snap[i].peer) != t->widx ||
			    quic_node_conn_rtt(cn->quic, t->snap[i].peer, &t->rtt[i][0], &t->rtt[i][1]))
				t->rtt[i][0] = t->rtt[i][1] = 0; /* closed: unknown */
	pthread_mutex_lock(&t->snap_mu);
	t->nsnap = n;
	t->snap_ns = now;
	memcpy(t->snap_pub, t->snap, n * sizeof(*t->snap));
	memcpy(t->rtt_pub, t->rtt, n * sizeof(*t->rtt));
	pthread_mutex_unlock(&t->snap_mu);
	if (t->widx == 0) {
		uint64_t total = atomic_load(&cn->served_bytes);
		uint64_t last = atomic_exchange(&cn->up_hist_last, total);
		unsigned int k = (unsigned int)(sec % CN_UP_HIST);

		if (atomic_load(&cn->up_hist_at[k]) != sec) {
			atomic_store(&cn->up_hist[k], 0);
			atomic_store(&cn->up_hist_at[k], sec);
		}
		atomic_fetch_add(&cn->up_hist[k], total - last);
		auto_step(cn, now);
	}
	engine_timer_add(w, &t->tick, 1000);
}

/* Bind a worker's table to its worker (a command on that worker). */
static void wbind(struct engine_worker *w, void *arg)
{
	struct cn_wtab *t = arg;

	if (t->bound)
		return;
	t->w = w;
	engine_timer_init(&t->pump, pump, t);
	engine_timer_init(&t->tick, tick, t);
	t->bound = 1;
	atomic_store(&t->cn->up_hist_last, atomic_load(&t->cn->served_bytes));
	engine_timer_add(w, &t->tick, 1000);
	engine_defer(w, &t->pump);
}

/* Wake the worker's pump (on the worker). */
static void kick(struct cn_wtab *t)
{
	if (t->bound)
		engine_defer(t->w, &t->pump);
	/* else: the bind posted by cn_serve_start pumps once it runs */
}

/* A request's answer is written: count it off its stream's entry, if the
 * entry still holds that stream (generation). If the client's FIN came
 * alone while answers were owed, ours follows the last of them. The
 * worker keeps the entry until it reuses it (pending_get) or the stream
 * closes. */
static void answered(struct content_node *cn, const struct cn_sreq *r)
{
	struct cn_pending *p;
	uint64_t old, nw;

	if (!r->tab)
		return;
	p = &r->tab->e[r->slot];
	old = atomic_load(&p->st);
	do {
		if ((uint32_t)(old >> 32) != r->gen || !(old & CN_ST_INFLIGHT))
			return;
		nw = old - 1;
	} while (!atomic_compare_exchange_weak(&p->st, &old, nw));
	if ((nw & CN_ST_FIN_OWED) && !(nw & CN_ST_INFLIGHT))
		quic_node_write(cn->quic, r->conn, r->sid, NULL, 0, 1);
}

/* ------------------------------------------- a worker's pending streams */

/* Eviction looks at this many of the oldest entries for one that is done
 * or stale, so that taking over an entry stays O(1). */
#define CN_EVICT_SCAN 32

/* Handles are node-assigned serials and stream ids count up: a peer
 * cannot choose colliding keys, and a chain is at most CN_PENDING_MAX. */
static unsigned int pending_hash(uint64_t conn, int64_t sid)
{
	uint64_t h = conn * 0x9e3779b97f4a7c15ull ^ (uint64_t)sid * 0xc2b2ae3d27d4eb4full;

	h ^= h >> 29;
	return (unsigned int)(h & (CN_PENDING_BUCKETS - 1));
}

static void lru_unlink(struct cn_wtab *t, struct cn_pending *p)
{
	if (p->prev)
		t->e[p->prev - 1].next = p->next;
	else
		t->lru_head = p->next;
	if (p->next)
		t->e[p->next - 1].prev = p->prev;
	else
		t->lru_tail = p->prev;
	p->prev = p->next = 0;
}

static void lru_append(struct cn_wtab *t, struct cn_pending *p)
{
	uint16_t ix = (uint16_t)(p - t->e + 1);

	p->prev = t->lru_tail;
	p->next = 0;
	if (t->lru_tail)
		t->e[t->lru_tail - 1].next = ix;
	else
		t->lru_head = ix;
	t->lru_tail = ix;
}

/* Free an entry: off its chain and the LRU list; the generation moves on so
 * a serve thread still holding a request of it counts nothing off. */
static void pending_free(struct cn_wtab *t, struct cn_pending *p)
{
	uint16_t ix = (uint16_t)(p - t->e + 1), *link;
	uint64_t st = atomic_load(&p->st);

	if (!p->used)
		return;
	for (link = &t->bucket[pending_hash(p->conn, p->sid)]; *link; link = &t->e[*link - 1].hnext)
		if (*link == ix) {
			*link = p->hnext;
			break;
		}
	lru_unlink(t, p);
	cn_sched_streams(t->sched, p->conn, -1, sv_now(t));
	atomic_store(&p->st, ((st >> 32) + 1) << 32);
	p->used = 0;
	p->hnext = t->free_head;
	t->free_head = ix;
	t->used--;
}

/* Done: the client's FIN came, and every answer (and our FIN) went out. */
static int pending_done(const struct cn_pending *p)
{
	uint64_t st = atomic_load(&p->st);

	return (st & CN_ST_FIN_OWED) && !(st & CN_ST_INFLIGHT);
}

/* The entry of (conn, sid) on this worker's table, or a new one (create);
 * NULL when the table is full of live streams. */
static struct cn_pending *pending_get(struct cn_wtab *t, uint64_t conn, int64_t sid, int create)
{
	unsigned int h = pending_hash(conn, sid), n = 0;
	uint64_t now = util_now_ms();
	struct cn_pending *p;
	uint16_t ix;

	for (ix = t->bucket[h]; ix; ix = t->e[ix - 1].hnext) {
		p = &t->e[ix - 1];
		if (p->conn == conn && p->sid == sid) {
			p->last_ms = now;
			lru_unlink(t, p);
			lru_append(t, p);
			return p;
		}
	}
	if (!create)
		return NULL;
	if (!t->free_head && t->fresh == CN_PENDING_MAX) {
		/* Full: take over the oldest entry that is done, or unused for
		 * CN_PENDING_STALE_MS with no answer owed (its connection most
		 * likely went away without closing the stream). */
		for (ix = t->lru_head; ix && n < CN_EVICT_SCAN; ix = t->e[ix - 1].next, n++) {
			p = &t->e[ix - 1];
			if (pending_done(p) ||
			    (!(atomic_load(&p->st) & CN_ST_INFLIGHT) &&
			     p->last_ms + CN_PENDING_STALE_MS < now))
				break;
		}
		if (!ix || n == CN_EVICT_SCAN)
			return NULL;
		pending_free(t, &t->e[ix - 1]);
	}
	if (t->free_head) {
		ix = t->free_head;
		p = &t->e[ix - 1];
		t->free_head = p->hnext;
	} else {
		ix = ++t->fresh;
		p = &t->e[ix - 1];
	}
	cn_sched_streams(t->sched, conn, 1, sv_now(t));
	p->used = 1;
	p->isnew = 1;
	p->conn = conn;
	p->sid = sid;
	p->len = 0;
	p->last_ms = now;
	p->hnext = t->bucket[h];
	t->bucket[h] = ix;
	lru_append(t, p);
	if (++t->used > t->peak)
		t->peak = t->used;
	return p;
}

/* What answering req will send, for the scheduler (the difference is
 * accounted after): a chunk, or a small answer; an INFO answer by the
 * size it will most likely have is not known yet: 4 KiB. */
static uint32_t cost_of(const uint8_t *req, size_t len)
{
	if (!len)
		return 0;
	if (req[0] == CONTENT_OP_CHUNK)
		return B3TREE_CHUNK_LEN + CN_ANS_HEAD;
	return req[0] == CONTENT_OP_INFO ? 4096 : 64;
}

/* LAN: a private, loopback, link-local or ULA address (libtorrent's local
 * peer class; conn_addr_public says which addresses others can reach). */
static enum cn_class class_of(const struct sockaddr_storage *ss)
{
	struct io_addr a;

	if (!ss->ss_family || io_addr_from_sockaddr(&a, (const struct sockaddr *)ss, sizeof(*ss)))
		return CN_CLASS_WAN;
	return conn_addr_public(&a) ? CN_CLASS_WAN : CN_CLASS_LAN;
}

/* Queue a request (a worker) on its peer's queue in the worker's
 * scheduler. len 0: just our FIN (fin set), when no answer of the stream
 * is owed. p (may be NULL) counts the answers owed. A full queue (the
 * peer's, or the worker's CONTENT_SERVE_QUEUE) answers BUSY at once. */
static void enqueue(struct content_node *cn, struct cn_wtab *t, struct cn_pending *p,
		    uint64_t conn, int64_t sid, const uint8_t *req, size_t len, int fin)
{
	struct cn_sched_item it;
	struct cn_sreq *r = &it.r;
	uint8_t key[QUIC_KEY_LEN];
	int rc = -ENOBUFS;

	memset(&it, 0, sizeof(it));
	r->conn = conn;
	r->sid = sid;
	r->len = (uint8_t)len;
	r->fin = (uint8_t)fin;
	it.cost = cost_of(req, len);
	/* Who asks (the swarm table, classes, super-seeding): the
	 * connection's address, looked up here, on its worker. */
	if (quic_node_conn_peer(cn->quic, conn, key, &r->from))
		r->from.ss_family = 0;
	if (len && p) {
		r->tab = t;
		r->slot = (uint16_t)(p - t->e);
		r->gen = (uint32_t)(atomic_fetch_add(&p->st, 1) >> 32);
	}
	if (len)
		memcpy(r->buf, req, len);
	if (atomic_load(&cn->serving) && cn_sched_queued(t->sched) < CONTENT_SERVE_QUEUE)
		rc = cn_sched_push(t->sched, conn, class_of(&r->from), &r->from, &it, sv_now(t));
	if (rc == 0) {
		kick(t);
		return;
	}
	{
		static const uint8_t busy[CN_ANS_HEAD] = {CONTENT_ST_BUSY, 0, 0, 0, 0};

		if (r->tab)
			atomic_fetch_sub(&p->st, 1); /* never queued: nobody else counts it */
		/* Five bytes (none for a lone FIN: never refused for want
		 * of room). */
		if (len)
			atomic_fetch_add(&cn->serve_busy, 1);
		quic_node_write(cn->quic, conn, sid, busy, len ? sizeof(busy) : 0, fin);
	}
}

/* -------------------------------------------------- the QUIC callbacks */

/* The content node behind a callback, counted in hub->active until
 * hub_leave(); NULL when it is gone. No lock: see cn_serve_stop(). */
static struct content_node *hub_enter(struct cn_hub *hub)
{
	struct content_node *cn;

	atomic_fetch_add(&hub->active, 1);
	cn = atomic_load(&hub->cn);
	if (!cn)
		atomic_fetch_sub(&hub->active, 1);
	return cn;
}

static void hub_leave(struct cn_hub *hub)
{
	atomic_fetch_sub(&hub->active, 1);
}

/* The pending table of conn's owning worker: the thread we run on. */
static struct cn_wtab *wtab_of(struct content_node *cn, uint64_t conn)
{
	unsigned int w = quic_node_conn_worker(cn->quic, conn);

	return w < cn->nwtab ? cn->wtab[w] : NULL;
}

/*
 * A fetch stream carries requests one after the other (each answered in
 * order; a client keeps one outstanding per stream). Requests have a fixed
 * length per operation (cn_req_feed frames them); bytes of an incomplete
 * one wait in the pending table of the connection's worker (bounded; a
 * stream that cannot get an entry is reset with BUSY). The client's FIN is
 * answered with ours: on the answer to a request that came with it, or,
 * when it comes alone, after the last answer owed (docs/CONTENT.md).
 * Runs on the connection's worker and takes no lock.
 */
static void on_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len, int fin)
{
	struct cn_hub *hub = arg;
	struct content_node *cn = hub_enter(hub);
	struct cn_pending *p = NULL;
	struct cn_wtab *t;
	int rc, fin_sent = 0;

	if (!cn)
		return;
	t = wtab_of(cn, conn);
	if (t)
		p = pending_get(t, conn, sid, 1);
	if (!p) {
		atomic_fetch_add(&cn->serve_busy, 1);
		quic_node_stream_reset(cn->quic, conn, sid, CONTENT_ST_BUSY);
		goto out;
	}
	if (p->isnew) {
		/* a new stream: more open at once than a downloader needs
		 * costs score, and the stream is refused */
		p->isnew = 0;
		if (cn_sched_streams(t->sched, conn, 0, sv_now(t)) > CONTENT_SERVE_PEER_STREAMS) {
			fault_of(cn, t, conn, CN_FAULT_STREAMS);
			pending_free(t, p);
			atomic_fetch_add(&cn->serve_busy, 1);
			quic_node_stream_reset(cn->quic, conn, sid, CONTENT_ST_BUSY);
			goto out;
		}
	}
	while (len) {
		rc = cn_req_feed(p->buf, &p->len, &data, &len);
		if (rc < 0) {
			atomic_fetch_add(&cn->serve_bad, 1);
			fault_of(cn, t, conn, CN_FAULT_BAD);
			pending_free(t, p);
			quic_node_stream_reset(cn->quic, conn, sid, CONTENT_ST_BAD_REQUEST);
			goto out;
		}
		if (rc == 1) {
			fin_sent = fin && !len;
			enqueue(cn, t, p, conn, sid, p->buf, p->len, fin_sent);
			p->len = 0;
		}
	}
	if (fin) {
		if (p->len) {
			atomic_fetch_add(&cn->serve_bad, 1);
			quic_node_stream_reset(cn->quic, conn, sid, CONTENT_ST_BAD_REQUEST);
		} else if (!fin_sent &&
			   (atomic_fetch_or(&p->st, CN_ST_FIN_OWED) & CN_ST_INFLIGHT)) {
			/* FIN on its own, answers still owed: the serve
			 * thread that writes the last one writes ours
			 * (answered()); the entry stays until then. */
			goto out;
		} else if (!fin_sent) {
			/* FIN on its own after the last answer: end our
			 * side too, or the stream stays half-open and its
			 * credit never returns to the client. */
			enqueue(cn, t, NULL, conn, sid, NULL, 0, 1);
		}
		pending_free(t, p);
	}
out:
	hub_leave(hub);
}

static void on_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct cn_hub *hub = arg;
	struct content_node *cn = hub_enter(hub);
	struct cn_pending *p;
	struct cn_wtab *t;

	(void)err;
	if (!cn)
		return;
	t = wtab_of(cn, conn);
	p = t ? pending_get(t, conn, sid, 0) : NULL;
	if (p)
		pending_free(t, p);
	hub_leave(hub);
}

/* Drop one of the hub's two owners (content node, QUIC node). */
static void hub_put(struct cn_hub *hub)
{
	if (atomic_fetch_sub(&hub->refs, 1) == 1)
		free(hub);
}

/* quic_node's release hook: after its last callback. */
static void hub_release(void *arg)
{
	hub_put(arg);
}

static void wtab_free(struct cn_wtab *t)
{
	if (!t)
		return;
	cn_sched_free(t->sched);
	free(t->snap);
	free(t->snap_pub);
	free(t->rtt);
	free(t->rtt_pub);
	pthread_mutex_destroy(&t->snap_mu);
	free(t);
}

static int wtab_new(struct content_node *cn, unsigned int widx, struct cn_wtab **out)
{
	struct cn_wtab *t = calloc(1, sizeof(*t));
	int rc;

	*out = t;
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->snap_mu, NULL);
	t->cn = cn;
	t->widx = widx;
	rc = cn_sched_new(&t->sched, NULL, &cn->up_global);
	if (rc)
		return rc;
	t->snap = calloc(CN_SCHED_PEERS, sizeof(*t->snap));
	t->snap_pub = calloc(CN_SCHED_PEERS, sizeof(*t->snap_pub));
	t->rtt = calloc(CN_SCHED_PEERS, sizeof(*t->rtt));
	t->rtt_pub = calloc(CN_SCHED_PEERS, sizeof(*t->rtt_pub));
	return t->snap && t->snap_pub && t->rtt && t->rtt_pub ? 0 : -ENOMEM;
}

void cn_serve_set_limits(struct content_node *cn, const struct content_limits *l)
{
	/* the automatic cap, when on, goes under this one at worker 0's next
	 * tick (auto_step) */
	cn_rate_set(&cn->up_global, l->upload_rate);
	atomic_store(&cn->lim_auto, l->upload_auto ? 1 : 0);
	atomic_store(&cn->lim_peer, l->peer_rate);
	atomic_store(&cn->lim_lan, l->lan_peer_rate);
	atomic_store(&cn->lim_lan_capped, l->lan_capped ? 1 : 0);
	atomic_store(&cn->lim_up, l->upload_rate);
	atomic_fetch_add(&cn->lim_gen, 1);
}

int cn_serve_init(struct content_node *cn, const struct content_node_opts *opts)
{
	/* A connection's answers take 16 KiB turns (quic_sbuf_next).
	 * Answering a peer's chunks one after the other gave the first chunk
	 * sooner in the lab but made 8 downloaders behind one 200 Mbit/s
	 * link less evenly served (docs/QUIC.md "Sequential streams"). */
	static const struct quic_node_handler h = {.stream_data = on_data,
						   .stream_closed = on_closed,
						   .release = hub_release};
	unsigned int nw = quic_node_workers(cn->quic);
	int rc;

	cn->eng = opts->eng;
	if (!cn->eng)
		return -EINVAL;
	cn_serve_set_limits(cn, &opts->limits);
	atomic_store(&cn->superseed_s, opts->superseed_s < 0	? 0
					: opts->superseed_s ? (uint64_t)opts->superseed_s
							    : CONTENT_SUPERSEED_S);
	cn->wtab = calloc(nw ? nw : 1, sizeof(*cn->wtab));
	if (!cn->wtab)
		return -ENOMEM;
	for (cn->nwtab = 0; cn->nwtab < nw; cn->nwtab++) {
		rc = wtab_new(cn, cn->nwtab, &cn->wtab[cn->nwtab]);
		if (rc) {
			if (cn->wtab[cn->nwtab])
				cn->nwtab++; /* freed by cn_serve_stop */
			return rc;
		}
	}
	rc = cn_ss_init(cn);
	if (rc)
		return rc;
	cn->hub = calloc(1, sizeof(*cn->hub));
	if (!cn->hub)
		return -ENOMEM;
	atomic_init(&cn->hub->cn, cn);
	atomic_init(&cn->hub->refs, 2);
	rc = quic_node_register(cn->quic, CONTENT_ST_FETCH, &h, cn->hub);
	if (rc) {
		free(cn->hub);
		cn->hub = NULL;
	}
	return rc;
}

int cn_serve_start(struct content_node *cn)
{
	atomic_store(&cn->serving, 1);
	/* each worker binds its table (timers) on its own thread; until it
	 * has, requests wait in its scheduler */
	for (unsigned int i = 0; i < cn->nwtab; i++) {
		int rc = -EAGAIN;

		for (int tries = 0; rc == -EAGAIN && tries < 1000; tries++) {
			rc = engine_call(cn->eng, i, wbind, cn->wtab[i]);
			if (rc == -EAGAIN)
				usleep(1000);
		}
		if (rc)
			return rc;
		cn->wtab[i]->bind_posted = 1;
	}
	return 0;
}

void cn_serve_stop(struct content_node *cn)
{
	/* quic_node reports the streams of every connection still open as
	 * closed when it is freed, after us: the hub stays until its release
	 * hook runs then (or goes now if the QUIC node is already gone).
	 * Callbacks never block, so the wait for those running is short. */
	if (cn->hub) {
		struct cn_hub *hub = cn->hub;

		atomic_store(&hub->cn, NULL);
		while (atomic_load(&hub->active))
			sched_yield();
		cn->hub = NULL;
		hub_put(hub);
	}
	atomic_store(&cn->serving, 0);
	atomic_store(&cn->stopping, 1);
	/* after engine_stop: no timer of ours fires again. A bind still
	 * posted would run at engine_free: its table is left to it (once,
	 * only when the node stops before its workers ran a pass). */
	for (unsigned int i = 0; i < cn->nwtab; i++)
		if (!cn->wtab[i]->bind_posted || cn->wtab[i]->bound)
			wtab_free(cn->wtab[i]);
	free(cn->wtab);
	cn->wtab = NULL;
	cn->nwtab = 0;
	cn_upauto_free(cn->upauto);
	cn->upauto = NULL;
	free(cn->auto_in);
	cn->auto_in = NULL;
	cn_ss_free(cn);
}
