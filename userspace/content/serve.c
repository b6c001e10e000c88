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

#include "content/content_node_int.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

_Static_assert(sizeof(((struct cn_pending *)0)->buf) >= CN_REQ_MAX &&
		   sizeof(((struct cn_sreq *)0)->buf) >= CN_REQ_MAX,
	       "request buffers hold the longest request");

/* A pending entry unused this long may be taken over when the table is
 * full: its connection most likely went away without closing the stream
 * (connections that close do not report each stream). */
#define CN_PENDING_STALE_MS 30000

/* Write a whole answer, waiting while the node-wide send queue is full
 * (serve threads may wait; workers never do). */
static void reply(struct content_node *cn, uint64_t conn, int64_t sid, const uint8_t *buf,
		  size_t len, int fin)
{
	struct timespec ts = {0, 2 * 1000 * 1000};
	int tries = 0, rc;

	while ((rc = quic_node_write(cn->quic, conn, sid, buf, len, fin)) == -ENOBUFS ||
	       rc == -EAGAIN) {
		if (atomic_load(&cn->stopping) || ++tries > 5000)
			break;
		nanosleep(&ts, NULL);
	}
	if (rc)
		log_debug(CN_MOD, "reply on stream %lld: %s", (long long)sid, strerror(-rc));
}

/* Error answer: status, zero length. */
static void reply_status(struct content_node *cn, const struct cn_sreq *r, uint8_t st)
{
	uint8_t b[CN_ANS_HEAD];

	cn_ans_head(b, st, 0);
	reply(cn, r->conn, r->sid, b, sizeof(b), r->fin);
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
static int held(struct content_node *cn, const struct cn_sreq *r, const uint8_t *id,
		struct cstore_info *info)
{
	if (cstore_info(cn->cs, id, info) == 0 && info->state != CSTORE_BAD)
		return 0;
	atomic_fetch_add(&cn->serve_notfound, 1);
	reply_status(cn, r, CONTENT_ST_NOT_FOUND);
	return -1;
}

static void serve_info(struct content_node *cn, const struct cn_sreq *r, const struct cn_wreq *q)
{
	struct cstore_info info;
	uint8_t *cvs = NULL, *out;
	uint64_t n;
	size_t len;
	int rc;

	if (held(cn, r, q->id, &info))
		return;
	rc = cstore_cvs(cn->cs, q->id, &cvs, &n);
	if (rc) {
		reply_status(cn, r, CONTENT_ST_UNAVAILABLE);
		return;
	}
	len = CN_INFO_ANSWER(n);
	out = calloc(1, len);
	if (!out) {
		free(cvs);
		reply_status(cn, r, CONTENT_ST_BUSY);
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
		reply_status(cn, r, CONTENT_ST_UNAVAILABLE);
		return;
	}
	atomic_fetch_add(&cn->served_infos, 1);
	swarm_note(cn, r, q->id);
	reply(cn, r->conn, r->sid, out, len, r->fin);
	free(out);
	free(cvs);
}

/* HAVE: the bitmap alone (a downloader refreshing what another has). */
static void serve_have(struct content_node *cn, const struct cn_sreq *r, const struct cn_wreq *q)
{
	struct cstore_info info;
	uint8_t *out;
	size_t cap;
	int rc;

	if (held(cn, r, q->id, &info))
		return;
	cap = (size_t)((info.nchunks + 7) / 8);
	out = calloc(1, CN_INFO_HEAD + cap);
	if (!out) {
		reply_status(cn, r, CONTENT_ST_BUSY);
		return;
	}
	rc = cstore_bitmap(cn->cs, q->id, &info, out + CN_INFO_HEAD, cap);
	if (rc) {
		free(out);
		reply_status(cn, r, rc == -ENOENT ? CONTENT_ST_NOT_FOUND : CONTENT_ST_UNAVAILABLE);
		return;
	}
	cn_have_head(out, info.size, info.nchunks);
	atomic_fetch_add(&cn->served_haves, 1);
	swarm_note(cn, r, q->id);
	reply(cn, r->conn, r->sid, out, CN_HAVE_ANSWER(info.nchunks), r->fin);
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
static void serve_peers(struct content_node *cn, const struct cn_sreq *r, const struct cn_wreq *q)
{
	struct sockaddr_storage a[CN_PEX_MAX];
	uint8_t out[CN_PEERS_ANSWER_MAX];
	struct cstore_info info;
	size_t n;
	uint64_t now = util_now_ms();

	if (held(cn, r, q->id, &info))
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
	reply(cn, r->conn, r->sid, out, cn_peers_encode(out, a, n), r->fin);
}

static void serve_chunk(struct content_node *cn, const struct cn_sreq *r, const struct cn_wreq *q,
			uint8_t *buf)
{
	size_t len = 0;
	int rc;

#ifdef WEFT_TEST_HOOKS
	if (cn->test_delay_ms) {
		struct timespec ts = {cn->test_delay_ms / 1000,
				      (long)(cn->test_delay_ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
	}
#endif
	rc = cstore_read_chunk(cn->cs, q->id, q->index, buf + CN_ANS_HEAD, B3TREE_CHUNK_LEN, &len);
	if (rc == -ENOENT || rc == -EINVAL) {
		atomic_fetch_add(&cn->serve_notfound, 1);
		reply_status(cn, r, rc == -EINVAL ? CONTENT_ST_BAD_REQUEST : CONTENT_ST_NOT_FOUND);
		return;
	}
	if (rc) {
		/* -EIO: failed re-verification (now marked bad) or unreadable. */
		atomic_fetch_add(&cn->serve_unavailable, 1);
		reply_status(cn, r, CONTENT_ST_UNAVAILABLE);
		return;
	}
#ifdef WEFT_TEST_HOOKS
	if (cn->test_corrupt && len)
		buf[CN_ANS_HEAD + len / 2] ^= 0x5a; /* test hook, see content_node.h */
#endif
	cn_ans_head(buf, CONTENT_ST_OK, (uint32_t)len);
	atomic_fetch_add(&cn->served_chunks, 1);
	atomic_fetch_add(&cn->served_bytes, len);
	reply(cn, r->conn, r->sid, buf, len + CN_ANS_HEAD, r->fin);
}

static void serve_manifest(struct content_node *cn, const struct cn_sreq *r,
			   const struct cn_wreq *q)
{
	uint8_t *enc = NULL, *out;
	size_t len = 0;

	if (cn_share_get(cn, q->id, &enc, &len)) {
		atomic_fetch_add(&cn->serve_notfound, 1);
		reply_status(cn, r, CONTENT_ST_NOT_FOUND);
		return;
	}
	out = malloc(len + CN_ANS_HEAD);
	if (!out) {
		free(enc);
		reply_status(cn, r, CONTENT_ST_BUSY);
		return;
	}
	cn_ans_head(out, CONTENT_ST_OK, (uint32_t)len);
	memcpy(out + CN_ANS_HEAD, enc, len);
	atomic_fetch_add(&cn->served_manifests, 1);
	reply(cn, r->conn, r->sid, out, len + CN_ANS_HEAD, r->fin);
	free(out);
	free(enc);
}

static void serve_one(struct content_node *cn, const struct cn_sreq *r, uint8_t *buf)
{
	struct cn_wreq q;
	int rc;

	if (r->len == 0) {
		/* The client's FIN, with no answer owed before ours. */
		reply(cn, r->conn, r->sid, NULL, 0, 1);
		return;
	}
	rc = cn_req_decode(&q, r->buf, r->len);

	if (!rc && q.op == CONTENT_OP_INFO)
		serve_info(cn, r, &q);
	else if (!rc && q.op == CONTENT_OP_CHUNK)
		serve_chunk(cn, r, &q, buf);
	else if (!rc && q.op == CONTENT_OP_MANIFEST)
		serve_manifest(cn, r, &q);
	else if (!rc && q.op == CONTENT_OP_HAVE)
		serve_have(cn, r, &q);
	else if (!rc && q.op == CONTENT_OP_PEERS)
		serve_peers(cn, r, &q);
	else {
		atomic_fetch_add(&cn->serve_bad, 1);
		reply_status(cn, r, CONTENT_ST_BAD_REQUEST);
	}
}

/* ----------------------------------------------------- the serve queue */

/*
 * Workers hand requests to serve threads through a bounded ring of
 * CONTENT_SERVE_QUEUE cells without a lock (multi-producer multi-consumer,
 * D. Vyukov's bounded queue: each cell's sequence number says whether it
 * waits for a producer or a consumer), and wake them with a semaphore post
 * (an atomic add, plus a futex wake only when a thread sleeps).
 */

/* Claim the next cell on one side of the ring: the producers' (ctr
 * sq_in, the cell's turn when seq == pos) or the consumers' (sq_out, seq
 * == pos + 1). NULL when that cell is not the side's yet (full, resp.
 * empty or still being filled). */
static struct cn_scell *sq_claim(struct content_node *cn, _Atomic uint64_t *ctr, uint64_t off,
				 uint64_t *posp)
{
	uint64_t pos = atomic_load_explicit(ctr, memory_order_relaxed);

	for (;;) {
		uint64_t idx = pos % CONTENT_SERVE_QUEUE;
		struct cn_scell *c = &cn->sq[idx];
		/* stored less the cell's index (struct cn_scell) */
		uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire) + idx;
		int64_t d = (int64_t)(seq - (pos + off));

		if (d < 0)
			return NULL;
		if (d > 0)
			pos = atomic_load_explicit(ctr, memory_order_relaxed);
		else if (atomic_compare_exchange_weak_explicit(ctr, &pos, pos + 1,
							       memory_order_relaxed,
							       memory_order_relaxed)) {
			*posp = pos;
			return c;
		}
	}
}

/* Queue r (a worker; never waits). 0, or -ENOBUFS when the ring is full. */
static int sq_push(struct content_node *cn, const struct cn_sreq *r)
{
	struct cn_scell *c;
	uint64_t pos;

	c = sq_claim(cn, &cn->sq_in, 0, &pos);
	if (!c)
		return -ENOBUFS;
	c->r = *r;
	atomic_store_explicit(&c->seq, pos + 1 - pos % CONTENT_SERVE_QUEUE, memory_order_release);
	sem_post(&cn->sq_sem);
	return 0;
}

/* Take the oldest request (a serve thread): 1, or 0 when the cell at the
 * head is empty or still being filled by its producer. */
static int sq_pop(struct content_node *cn, struct cn_sreq *r)
{
	struct cn_scell *c;
	uint64_t pos;

	c = sq_claim(cn, &cn->sq_out, 1, &pos);
	if (!c)
		return 0;
	*r = c->r;
	atomic_store_explicit(&c->seq, pos + CONTENT_SERVE_QUEUE - pos % CONTENT_SERVE_QUEUE,
			      memory_order_release);
	return 1;
}

/* A request's answer is written (a serve thread): count it off its
 * stream's entry, if the entry still holds that stream (generation). If
 * the client's FIN came alone while answers were owed, ours follows the
 * last of them: written here, by a serve thread (which may wait), after
 * every answer of the stream went to quic_node_write(). The worker keeps
 * the entry until it reuses it (pending_get) or the stream closes. */
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
		reply(cn, r->conn, r->sid, NULL, 0, 1);
}

static void *serve_thread(void *arg)
{
	struct content_node *cn = arg;
	void *base = NULL;
	uint8_t *buf;
	struct cn_sreq r;

	/* The chunk after the answer header lands CN_ANS_ALIGN-aligned: the
	 * store reads it with O_DIRECT straight into it (chunkstore.c). */
	if (posix_memalign(&base, CN_ANS_ALIGN, CN_ANS_ALIGN + B3TREE_CHUNK_LEN)) {
		log_error(CN_MOD, "serve thread: out of memory");
		return NULL;
	}
	buf = (uint8_t *)base + CN_ANS_ALIGN - CN_ANS_HEAD;
	for (;;) {
		while (sem_wait(&cn->sq_sem) && errno == EINTR)
			;
		if (atomic_load(&cn->stopping))
			break;
		/* One post per published request; the cell at the head may
		 * still be in its producer's hands for a few instructions
		 * (claimed before a later one was published): wait for it. */
		while (!sq_pop(cn, &r)) {
			if (atomic_load(&cn->stopping))
				goto out;
			sched_yield();
		}
		serve_one(cn, &r, buf);
		if (r.len)
			answered(cn, &r);
	}
out:
	free(base);
	return NULL;
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
	p->used = 1;
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

/* Queue a request (a worker). len 0: just our FIN (fin set), when no
 * answer of the stream is owed. p (may be NULL) counts the answers owed.
 * A full queue answers BUSY at once. */
static void enqueue(struct content_node *cn, struct cn_wtab *t, struct cn_pending *p,
		    uint64_t conn, int64_t sid, const uint8_t *req, size_t len, int fin)
{
	struct cn_sreq r = {.conn = conn, .sid = sid, .len = (uint8_t)len, .fin = (uint8_t)fin};
	uint8_t key[QUIC_KEY_LEN];

	/* Who asks about a blob (the swarm table, serve_peers): the
	 * connection's address, looked up here, on its worker. */
	if (len && (req[0] == CONTENT_OP_INFO || req[0] == CONTENT_OP_HAVE ||
		    req[0] == CONTENT_OP_PEERS) &&
	    quic_node_conn_peer(cn->quic, conn, key, &r.from))
		r.from.ss_family = 0;

	if (len && p) {
		r.tab = t;
		r.slot = (uint16_t)(p - t->e);
		r.gen = (uint32_t)(atomic_fetch_add(&p->st, 1) >> 32);
	}
	if (len)
		memcpy(r.buf, req, len);
	if (!atomic_load(&cn->serving) || sq_push(cn, &r)) {
		static const uint8_t busy[CN_ANS_HEAD] = {CONTENT_ST_BUSY, 0, 0, 0, 0};

		if (r.tab)
			atomic_fetch_sub(&p->st, 1); /* never queued: nobody else counts it */
		/* Cheap and non-blocking enough for a worker: five bytes
		 * (none for a lone FIN: never refused for want of room). */
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
	while (len) {
		rc = cn_req_feed(p->buf, &p->len, &data, &len);
		if (rc < 0) {
			atomic_fetch_add(&cn->serve_bad, 1);
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

int cn_serve_init(struct content_node *cn)
{
	static const struct quic_node_handler h = {
	    .stream_data = on_data, .stream_closed = on_closed, .release = hub_release};
	unsigned int nw = quic_node_workers(cn->quic);
	int rc;

	cn->sq = calloc(CONTENT_SERVE_QUEUE, sizeof(*cn->sq));
	cn->wtab = calloc(nw ? nw : 1, sizeof(*cn->wtab));
	if (!cn->sq || !cn->wtab)
		return -ENOMEM;
	for (cn->nwtab = 0; cn->nwtab < nw; cn->nwtab++) {
		cn->wtab[cn->nwtab] = calloc(1, sizeof(struct cn_wtab));
		if (!cn->wtab[cn->nwtab])
			return -ENOMEM;
	}
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
	int rc;

	for (cn->nsthr = 0; cn->nsthr < CONTENT_SERVE_THREADS; cn->nsthr++) {
		rc = log_thread_create(&cn->sthr[cn->nsthr], NULL, serve_thread, cn);
		if (rc)
			return -rc;
	}
	atomic_store(&cn->serving, 1);
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
	for (unsigned int i = 0; i < cn->nsthr; i++)
		sem_post(&cn->sq_sem);
	for (unsigned int i = 0; i < cn->nsthr; i++)
		pthread_join(cn->sthr[i], NULL);
	cn->nsthr = 0;
	free(cn->sq);
	cn->sq = NULL;
	for (unsigned int i = 0; i < cn->nwtab; i++)
		free(cn->wtab[i]);
	free(cn->wtab);
	cn->wtab = NULL;
	cn->nwtab = 0;
}
