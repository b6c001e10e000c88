// SPDX-License-Identifier: MIT
/*
 * Serving side of the content fetch protocol (stream type CONTENT_ST_FETCH,
 * docs/PROTOCOL.md "Content"). Worker callbacks only collect the request
 * bytes (at most 41) and queue them; serve threads read, re-verify (inside
 * cstore_read_chunk: a blob that fails is marked bad and never served) and
 * answer with quic_node_write().
 */
#include <errno.h>
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

static void serve_info(struct content_node *cn, const struct cn_sreq *r, const struct cn_wreq *q)
{
	struct cstore_info info;
	uint8_t *cvs = NULL, *out;
	uint64_t n, i;
	size_t len;
	int rc;

	rc = cstore_info(cn->cs, q->id, &info);
	if (rc || info.state == CSTORE_BAD) {
		atomic_fetch_add(&cn->serve_notfound, 1);
		reply_status(cn, r, CONTENT_ST_NOT_FOUND);
		return;
	}
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
	for (i = 0; i < n; i++)
		if (info.state == CSTORE_COMPLETE || cstore_has_chunk(cn->cs, q->id, i) == 1)
			out[CN_INFO_HEAD + n * 32 + i / 8] |= (uint8_t)(1u << (i % 8));
	atomic_fetch_add(&cn->served_infos, 1);
	reply(cn, r->conn, r->sid, out, len, r->fin);
	free(out);
	free(cvs);
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
	else {
		atomic_fetch_add(&cn->serve_bad, 1);
		reply_status(cn, r, CONTENT_ST_BAD_REQUEST);
	}
}

static struct cn_pending *pending_find(struct content_node *cn, uint64_t conn, int64_t sid,
				       int create);

/* A request's answer is written (smu held): if the client's FIN came alone
 * while answers were owed, ours follows the last of them. Written here, by
 * a serve thread (which may wait), and in stream order: every answer of the
 * stream went to quic_node_write() before. */
static void answered(struct content_node *cn, const struct cn_sreq *r)
{
	struct cn_pending *p = pending_find(cn, r->conn, r->sid, 0);

	if (!p || !p->inflight)
		return;
	if (--p->inflight || !p->fin_owed)
		return;
	p->used = 0;
	p->fin_owed = 0;
	pthread_mutex_unlock(&cn->smu);
	reply(cn, r->conn, r->sid, NULL, 0, 1);
	pthread_mutex_lock(&cn->smu);
}

static void *serve_thread(void *arg)
{
	struct content_node *cn = arg;
	uint8_t *buf = malloc(B3TREE_CHUNK_LEN + CN_ANS_HEAD);
	struct cn_sreq r;

	if (!buf) {
		log_error(CN_MOD, "serve thread: out of memory");
		return NULL;
	}
	pthread_mutex_lock(&cn->smu);
	for (;;) {
		while (!cn->sq_len && !atomic_load(&cn->stopping))
			pthread_cond_wait(&cn->scond, &cn->smu);
		if (atomic_load(&cn->stopping))
			break;
		r = cn->sq[cn->sq_head];
		cn->sq_head = (cn->sq_head + 1) % CONTENT_SERVE_QUEUE;
		cn->sq_len--;
		pthread_mutex_unlock(&cn->smu);
		serve_one(cn, &r, buf);
		pthread_mutex_lock(&cn->smu);
		if (r.len)
			answered(cn, &r);
	}
	pthread_mutex_unlock(&cn->smu);
	free(buf);
	return NULL;
}

/* Called with smu held. len 0: just our FIN (fin set), when no answer of
 * the stream is owed. p (may be NULL) counts the answers owed. */
static void enqueue(struct content_node *cn, struct cn_pending *p, uint64_t conn, int64_t sid,
		    const uint8_t *req, size_t len, int fin)
{
	struct cn_sreq *r;

	if (cn->sq_len == CONTENT_SERVE_QUEUE || !cn->nsthr) {
		static const uint8_t busy[CN_ANS_HEAD] = {CONTENT_ST_BUSY, 0, 0, 0, 0};

		/* Cheap and non-blocking enough for a worker: five bytes
		 * (none for a lone FIN: never refused for want of room). */
		if (len)
			atomic_fetch_add(&cn->serve_busy, 1);
		quic_node_write(cn->quic, conn, sid, busy, len ? sizeof(busy) : 0, fin);
		return;
	}
	if (len && p)
		p->inflight++;
	r = &cn->sq[(cn->sq_head + cn->sq_len) % CONTENT_SERVE_QUEUE];
	r->conn = conn;
	r->sid = sid;
	r->len = (uint8_t)len;
	r->fin = (uint8_t)fin;
	if (len)
		memcpy(r->buf, req, len);
	cn->sq_len++;
	pthread_cond_signal(&cn->scond);
}

static struct cn_pending *pending_find(struct content_node *cn, uint64_t conn, int64_t sid,
				       int create)
{
	struct cn_pending *free_slot = NULL, *stale = NULL;
	uint64_t now = util_now_ms();

	for (unsigned int i = 0; i < CN_PENDING_MAX; i++) {
		struct cn_pending *p = &cn->pending[i];

		if (p->used && p->conn == conn && p->sid == sid) {
			p->last_ms = now;
			return p;
		}
		if (!p->used && !free_slot)
			free_slot = p;
		if (p->used && !p->inflight && p->last_ms + CN_PENDING_STALE_MS < now &&
		    (!stale || p->last_ms < stale->last_ms))
			stale = p;
	}
	if (!free_slot)
		free_slot = stale;
	if (!create || !free_slot)
		return NULL;
	free_slot->used = 1;
	free_slot->conn = conn;
	free_slot->sid = sid;
	free_slot->len = 0;
	free_slot->inflight = 0;
	free_slot->fin_owed = 0;
	free_slot->last_ms = now;
	return free_slot;
}

/*
 * A fetch stream carries requests one after the other (each answered in
 * order; a client keeps one outstanding per stream). Requests have a fixed
 * length per operation (cn_req_feed frames them); bytes of an incomplete
 * one wait in the pending table (bounded; a stream that cannot get an
 * entry is reset with BUSY). The client's FIN is answered with ours: on
 * the answer to a request that came with it, or, when it comes alone,
 * after the last answer owed (docs/CONTENT.md).
 */
static void on_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len, int fin)
{
	struct cn_hub *hub = arg;
	struct content_node *cn;
	struct cn_pending *p;
	int rc, fin_sent = 0;

	pthread_mutex_lock(&hub->mu);
	cn = hub->cn;
	if (!cn) {
		pthread_mutex_unlock(&hub->mu);
		return;
	}
	pthread_mutex_lock(&cn->smu);
	p = pending_find(cn, conn, sid, 1);
	if (!p) {
		atomic_fetch_add(&cn->serve_busy, 1);
		quic_node_stream_reset(cn->quic, conn, sid, CONTENT_ST_BUSY);
		goto out;
	}
	while (len) {
		rc = cn_req_feed(p->buf, &p->len, &data, &len);
		if (rc < 0) {
			atomic_fetch_add(&cn->serve_bad, 1);
			p->used = 0;
			quic_node_stream_reset(cn->quic, conn, sid, CONTENT_ST_BAD_REQUEST);
			goto out;
		}
		if (rc == 1) {
			fin_sent = fin && !len;
			enqueue(cn, p, conn, sid, p->buf, p->len, fin_sent);
			p->len = 0;
		}
	}
	if (fin) {
		if (p->len) {
			atomic_fetch_add(&cn->serve_bad, 1);
			quic_node_stream_reset(cn->quic, conn, sid, CONTENT_ST_BAD_REQUEST);
		} else if (!fin_sent && p->inflight) {
			/* FIN on its own, answers still owed: ours goes
			 * after the last (answered()); keep the entry. */
			p->fin_owed = 1;
			goto out;
		} else if (!fin_sent) {
			/* FIN on its own after the last answer: end our
			 * side too, or the stream stays half-open and its
			 * credit never returns to the client. */
			enqueue(cn, NULL, conn, sid, NULL, 0, 1);
		}
		p->used = 0;
	}
out:
	pthread_mutex_unlock(&cn->smu);
	pthread_mutex_unlock(&hub->mu);
}

static void on_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct cn_hub *hub = arg;
	struct content_node *cn;
	struct cn_pending *p;

	pthread_mutex_lock(&hub->mu);
	cn = hub->cn;
	if (cn) {
		pthread_mutex_lock(&cn->smu);
		p = pending_find(cn, conn, sid, 0);
		if (p)
			p->used = 0;
		pthread_mutex_unlock(&cn->smu);
	}
	pthread_mutex_unlock(&hub->mu);
}

static void hub_destroy(struct cn_hub *hub)
{
	pthread_mutex_destroy(&hub->mu);
	free(hub);
}

/* quic_node's release hook: after its last callback. */
static void hub_release(void *arg)
{
	struct cn_hub *hub = arg;
	int gone;

	pthread_mutex_lock(&hub->mu);
	gone = hub->cn == NULL;
	hub->quic_gone = 1;
	pthread_mutex_unlock(&hub->mu);
	if (gone)
		hub_destroy(hub);
}

int cn_serve_init(struct content_node *cn)
{
	static const struct quic_node_handler h = {
	    .stream_data = on_data, .stream_closed = on_closed, .release = hub_release};

	int rc;

	cn->sq = calloc(CONTENT_SERVE_QUEUE, sizeof(*cn->sq));
	cn->hub = calloc(1, sizeof(*cn->hub));
	if (!cn->sq || !cn->hub)
		return -ENOMEM;
	pthread_mutex_init(&cn->hub->mu, NULL);
	cn->hub->cn = cn;
	rc = quic_node_register(cn->quic, CONTENT_ST_FETCH, &h, cn->hub);
	if (rc) {
		pthread_mutex_destroy(&cn->hub->mu);
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
	return 0;
}

void cn_serve_stop(struct content_node *cn)
{
	/* quic_node reports the streams of every connection still open as
	 * closed when it is freed, after us: the hub stays until its release
	 * hook runs then (or goes now if the QUIC node is already gone). */
	if (cn->hub) {
		struct cn_hub *hub = cn->hub;
		int quic_gone;

		pthread_mutex_lock(&hub->mu);
		hub->cn = NULL;
		quic_gone = hub->quic_gone;
		pthread_mutex_unlock(&hub->mu);
		cn->hub = NULL;
		if (quic_gone)
			hub_destroy(hub);
	}
	pthread_mutex_lock(&cn->smu);
	atomic_store(&cn->stopping, 1);
	pthread_cond_broadcast(&cn->scond);
	pthread_mutex_unlock(&cn->smu);
	for (unsigned int i = 0; i < cn->nsthr; i++)
		pthread_join(cn->sthr[i], NULL);
	cn->nsthr = 0;
	free(cn->sq);
	cn->sq = NULL;
}
