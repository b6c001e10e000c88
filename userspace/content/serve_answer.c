// SPDX-License-Identifier: MIT
/*
 * The answers of the content fetch protocol (docs/PROTOCOL.md "Content"),
 * on the connection's engine worker, in the order serve.c's pump takes
 * the requests: info, have, peers, manifest, and a chunk, read from
 * memory here or handed to the reader threads (readq.h) and answered when
 * it comes back (cn_chunk_answer). What a requester does wrong is scored
 * here (cn_serve_fault) and, validated, banned.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "content/content_node_int.h"
#include "content/readq.h"
#include "content/sched.h"
#include "content/serve_int.h"
#include "weft/conn.h"
#include "weft/guard.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

const char *cn_fault_name(enum cn_fault f)
{
	static const char *const n[CN_FAULT_N] = {"unannounced", "repeat", "streams", "bad"};

	return f < CN_FAULT_N ? n[f] : "?";
}

/* The worker's clock for the scheduler (virtual in the simulator). */
uint64_t cn_sv_now(const struct cn_wtab *t)
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
void cn_serve_fault(struct content_node *cn, struct cn_wtab *t, uint64_t conn, enum cn_fault f)
{
	struct sockaddr_storage addr;
	uint8_t key[QUIC_KEY_LEN], a[16];
	char as[64] = "?";
	int fam, valid, rc = -ENODEV;

	atomic_fetch_add(&cn->faults[f], 1);
	/* only a peer that finished its handshake has a key: validated, and
	 * its address is scored with the connection (a requester that
	 * reconnects keeps its score) */
	valid = !quic_node_conn_peer(cn->quic, conn, key, &addr);
	if (cn_sched_fault(t->sched, conn, valid ? &addr : NULL, f, cn_sv_now(t)) != 1 || !valid)
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

static void requester_fault(struct cn_sv *v, const struct cn_sreq *r, enum cn_fault f)
{
	cn_serve_fault(v->cn, v->t, r->conn, f);
}

/* What writing a whole answer of len bytes on sid returned. Never
 * waiting: a full node-wide send queue (-ENOBUFS) puts the request back
 * at the head of its peer's queue (v->rc), to be tried again shortly. */
static void replied(struct cn_sv *v, uint64_t conn, int64_t sid, size_t len, int rc)
{
	if (rc == -ENOBUFS || rc == -EAGAIN) {
		v->rc = -EAGAIN;
	} else if (rc) {
		log_debug(CN_MOD, "reply on stream %lld: %s", (long long)sid, strerror(-rc));
	} else {
		v->sent += len;
		cn_serve_wrote(v->t, conn, len);
	}
}

static void reply(struct cn_sv *v, uint64_t conn, int64_t sid, const uint8_t *buf, size_t len,
		  int fin)
{
	replied(v, conn, sid, len, quic_node_write(v->cn->quic, conn, sid, buf, len, fin));
}

/* Error answer: status, zero length. */
static void reply_status(struct cn_sv *v, const struct cn_sreq *r, uint8_t st)
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
static int held(struct cn_sv *v, const struct cn_sreq *r, const uint8_t *id,
		struct cstore_info *info)
{
	struct content_node *cn = v->cn;
	if (cstore_info(cn->cs, id, info) == 0 && info->state != CSTORE_BAD)
		return 0;
	atomic_fetch_add(&cn->serve_notfound, 1);
	reply_status(v, r, CONTENT_ST_NOT_FOUND);
	return -1;
}

static void serve_info(struct cn_sv *v, const struct cn_sreq *r, const struct cn_wreq *q)
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
		cn_ss_filter(cn, q->id, &r->from, r->conn, out + CN_INFO_HEAD + n * 32, n, 0);
	atomic_fetch_add(&cn->served_infos, 1);
	swarm_note(cn, r, q->id);
	reply(v, r->conn, r->sid, out, len, r->fin);
	free(out);
	free(cvs);
}

/* HAVE: the bitmap alone (a downloader refreshing what another has);
 * HAVE_HELD: the same, after noting what the asker holds (super-seeding's
 * offers it got elsewhere); HAVE_IDLE: HAVE_HELD from a downloader with
 * nothing to fetch from anyone (a super-seed's hungry rule). */
static void serve_have(struct cn_sv *v, const struct cn_sreq *r, const struct cn_wreq *q)
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
	if (cn->ss && (q->op == CONTENT_OP_HAVE_HELD || q->op == CONTENT_OP_HAVE_IDLE))
		cn_ss_held(cn, q->id, &r->from, r->conn, q->held_first, q->held_mask);
	if (cn->ss)
		cn_ss_filter(cn, q->id, &r->from, r->conn, out + CN_INFO_HEAD, info.nchunks,
			     q->op == CONTENT_OP_HAVE_IDLE);
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
static void serve_peers(struct cn_sv *v, const struct cn_sreq *r, const struct cn_wreq *q)
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
 * the chunk after that (serve_int.h). */
static void chunk_written(struct cn_sv *v, const struct cn_sreq *r, const uint8_t *id,
			  uint64_t index, size_t len, int wrc);

void cn_chunk_answer(struct cn_sv *v, const struct cn_sreq *r, const uint8_t *id, uint64_t index,
			 struct quic_node_wbuf **wp, uint8_t *buf, size_t len, int rc, int scored)
{
	struct content_node *cn = v->cn;
	int wrc;

	if (rc && wp) {
		quic_node_wbuf_free(cn->quic, *wp);
		*wp = NULL;
	}
	if (rc == -ENOENT || rc == -EINVAL) {
		atomic_fetch_add(&cn->serve_notfound, 1);
		/* a chunk (or content) we never announced; content removed
		 * lately was announced: asked for before the requester knew */
		if (scored && rc == -ENOENT && cn_gone_recent(cn, id))
			atomic_fetch_add(&cn->gone_asked, 1);
		else if (scored)
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
	wrc = quic_node_write_wbuf_try(cn->quic, r->conn, r->sid, *wp, len + CN_ANS_HEAD, r->fin);
	if (wrc != -ENOBUFS && wrc != -EAGAIN) {
		if (wrc)
			quic_node_wbuf_free(cn->quic, *wp);
		*wp = NULL;
	}
	chunk_written(v, r, id, index, len, wrc);
}

/* A chunk answer of len bytes written (wrc 0) or not: what it counts
 * and scores. */
static void chunk_written(struct cn_sv *v, const struct cn_sreq *r, const uint8_t *id,
			  uint64_t index, size_t len, int wrc)
{
	struct content_node *cn = v->cn;

	replied(v, r->conn, r->sid, len + CN_ANS_HEAD, wrc);
	if (v->rc || !v->sent)
		return; /* not sent: full (tried again), or the stream is gone */
	atomic_fetch_add(&cn->served_chunks, 1);
	atomic_fetch_add(&cn->served_bytes, len);
	v->chunk = 1;
	/* the same chunk asked for again by the same peer */
	if (cn_sched_seen(v->t->sched, r->conn, chunk_key(id, index), cn_sv_now(v->t)))
		requester_fault(v, r, CN_FAULT_REPEAT);
	if (cn->ss)
		cn_ss_fetched(cn, id, &r->from, index);
}

/* Hand the file read of a chunk to the reader threads (readq.h): 0
 * (queued: its answer is written when it comes back, v->queued), -EBUSY
 * (this worker has CN_READS_PER_WORKER out: the request waits for one),
 * -EAGAIN (no reader: read here). */
static int read_off(struct cn_sv *v, const struct cn_sched_item *it, const struct cn_wreq *q,
		    struct quic_node_wbuf *w, uint8_t *buf)
{
	struct content_node *cn = v->cn;
	struct cn_wtab *t = v->t;
	unsigned int depth = CN_READS_PER_WORKER;
	struct cn_read *rd;

	if (!cn->rq)
		return -EAGAIN;
#ifdef WEFT_TEST_HOOKS
	if (cn->test_delay_ms)
		depth = 1; /* the hook serves one chunk per delay (serve.c) */
#endif
	if (t->reads_out >= depth)
		return -EBUSY;
	rd = calloc(1, sizeof(*rd));
	if (!rd)
		return -EAGAIN;
	rd->widx = t->widx;
	rd->it = *it;
	memcpy(rd->id, q->id, sizeof(rd->id));
	rd->index = q->index;
	rd->w = w;
	rd->buf = buf + CN_ANS_HEAD;
	rd->cap = B3TREE_CHUNK_LEN;
	if (cn_readq_submit(cn->rq, rd)) {
		free(rd);
		return -EAGAIN;
	}
	t->reads_out++;
	v->queued = 1;
	return 0;
}

static void unlend(void *ref)
{
	cstore_unlend(ref);
}

/*
 * A chunk kept in memory goes to the stream as it is, lent by the store
 * until the peer acknowledged it (quic_node_write_lent): no 256 KiB copy
 * into a write block per answer (~1.4% of a lab's packet worker, the
 * largest share of its memmove that was weft's own). 1 when answered
 * (or put back: v->rc), 0 when the chunk is not in memory (a file read:
 * the store's checks are made, not to be made again), -1 when it is to
 * be copied (the test build's corrupting hook).
 */
static int serve_lent(struct cn_sv *v, const struct cn_sreq *r, const struct cn_wreq *q)
{
	struct content_node *cn = v->cn;
	uint8_t head[CN_ANS_HEAD];
	const uint8_t *data;
	size_t len = 0;
	void *ref;
	int rc;

#ifdef WEFT_TEST_HOOKS
	if (cn->test_corrupt)
		return -1; /* the hook changes what it sends: a copy */
#endif
	rc = cstore_lend_chunk(cn->cs, q->id, q->index, &data, &len, &ref);
	if (rc == -EWOULDBLOCK)
		return 0;
	if (rc) {
		cn_chunk_answer(v, r, q->id, q->index, NULL, NULL, 0, rc, 1);
		return 1;
	}
	cn_ans_head(head, CONTENT_ST_OK, (uint32_t)len);
	rc = quic_node_write_lent(cn->quic, r->conn, r->sid, head, sizeof(head), data, len, r->fin,
				  unlend, ref);
	if (rc)
		cstore_unlend(ref); /* not queued: still ours */
	chunk_written(v, r, q->id, q->index, len, rc);
	return 1;
}

static void serve_chunk(struct cn_sv *v, const struct cn_sched_item *it, const struct cn_wreq *q)
{
	struct content_node *cn = v->cn;
	const struct cn_sreq *r = &it->r;
	struct quic_node_wbuf *w;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc, scored = 1;

	/* The node's send queue full: put back before the chunk is read. A
	 * chunk read (a 256 KiB copy from memory into a write block) and
	 * then refused by the write was read again at each retry, every 1 ms
	 * while the queue stayed full, which peers that never acknowledge
	 * can make last (docs/CONTENT.md, "A full node-wide QUIC send
	 * queue"). */
	if (!quic_node_write_room(cn->quic, CN_ANS_HEAD + B3TREE_CHUNK_LEN)) {
		atomic_fetch_add(&cn->serve_full, 1);
		v->rc = -EAGAIN;
		return;
	}
	rc = serve_lent(v, r, q);
	if (rc > 0)
		return;
	w = quic_node_wbuf_new(cn->quic, CN_ANS_HEAD + B3TREE_CHUNK_LEN, CN_ANS_HEAD, &buf);
	if (!w) {
		reply_status(v, r, CONTENT_ST_BUSY); /* no memory: asked again later */
		return;
	}
	rc = rc == 0 ? -EWOULDBLOCK /* not in memory: read from its file */
		     : cstore_read_chunk_mem(cn->cs, q->id, q->index, buf + CN_ANS_HEAD,
					     B3TREE_CHUNK_LEN, &len);
	if (rc == -EWOULDBLOCK) {
		rc = read_off(v, it, q, w, buf);
		if (!rc)
			return;
		if (rc == -EBUSY) {
			quic_node_wbuf_free(cn->quic, w);
			v->rc = -EBUSY;
			return;
		}
		/* no reader thread: on this worker, as before they existed */
		atomic_fetch_add(&cn->serve_reads_worker, 1);
		rc = cstore_read_chunk(cn->cs, q->id, q->index, buf + CN_ANS_HEAD,
				       B3TREE_CHUNK_LEN, &len);
		scored = 0;
	}
	cn_chunk_answer(v, r, q->id, q->index, &w, buf, len, rc, scored);
	quic_node_wbuf_free(cn->quic, w); /* not written (v->rc): read again */
}

static void serve_manifest(struct cn_sv *v, const struct cn_sreq *r,
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

void cn_serve_one(struct cn_sv *v, const struct cn_sched_item *it)
{
	const struct cn_sreq *r = &it->r;
	struct content_node *cn = v->cn;
	struct cn_wreq q;
	int rc;

	if (r->len == 0) {
		/* The client's FIN, with no answer owed before ours. */
		reply(v, r->conn, r->sid, NULL, 0, 1);
		return;
	}
	if (cn_serve_peer_full(cn, v->t, r->conn)) {
		/* passed over, nothing made: its requests wait until it
		 * acknowledges some of what it holds */
		atomic_fetch_add(&cn->serve_peer_full, 1);
		v->rc = -ENOSPC;
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
		serve_chunk(v, it, &q);
	else if (!rc && q.op == CONTENT_OP_MANIFEST)
		serve_manifest(v, r, &q);
	else if (!rc && (q.op == CONTENT_OP_HAVE || q.op == CONTENT_OP_HAVE_HELD ||
			 q.op == CONTENT_OP_HAVE_IDLE))
		serve_have(v, r, &q);
	else if (!rc && q.op == CONTENT_OP_PEERS)
		serve_peers(v, r, &q);
	else {
		atomic_fetch_add(&cn->serve_bad, 1);
		reply_status(v, r, CONTENT_ST_BAD_REQUEST);
	}
}

