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

/* A pending entry unused this long may be taken over when the table is
 * full: its connection most likely went away without closing the stream
 * (connections that close do not report each stream). */
#define CN_PENDING_STALE_MS 30000

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

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
	uint8_t b[5] = {st, 0, 0, 0, 0};

	reply(cn, r->conn, r->sid, b, sizeof(b), r->fin);
}

static void serve_info(struct content_node *cn, const struct cn_sreq *r)
{
	struct cstore_info info;
	uint8_t *cvs = NULL, *out;
	uint64_t n, i;
	size_t len, blen;
	int rc;

	rc = cstore_info(cn->cs, r->buf + 1, &info);
	if (rc || info.state == CSTORE_BAD) {
		atomic_fetch_add(&cn->serve_notfound, 1);
		reply_status(cn, r, CONTENT_ST_NOT_FOUND);
		return;
	}
	rc = cstore_cvs(cn->cs, r->buf + 1, &cvs, &n);
	if (rc) {
		reply_status(cn, r, CONTENT_ST_UNAVAILABLE);
		return;
	}
	blen = (size_t)((n + 7) / 8);
	len = 5 + 8 + 8 + (size_t)n * 32 + blen;
	out = calloc(1, len);
	if (!out) {
		free(cvs);
		reply_status(cn, r, CONTENT_ST_BUSY);
		return;
	}
	out[0] = CONTENT_ST_OK;
	put_u32(out + 1, (uint32_t)(len - 5));
	put_u64(out + 5, info.size);
	put_u64(out + 13, n);
	memcpy(out + 21, cvs, (size_t)n * 32);
	for (i = 0; i < n; i++)
		if (info.state == CSTORE_COMPLETE || cstore_has_chunk(cn->cs, r->buf + 1, i) == 1)
			out[21 + n * 32 + i / 8] |= (uint8_t)(1u << (i % 8));
	atomic_fetch_add(&cn->served_infos, 1);
	reply(cn, r->conn, r->sid, out, len, r->fin);
	free(out);
	free(cvs);
}

static void serve_chunk(struct content_node *cn, const struct cn_sreq *r, uint8_t *buf)
{
	uint64_t index = get_u64(r->buf + 33);
	size_t len = 0;
	int rc;

	if (cn->test_delay_ms) {
		struct timespec ts = {cn->test_delay_ms / 1000,
				      (long)(cn->test_delay_ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
	}
	rc = cstore_read_chunk(cn->cs, r->buf + 1, index, buf + 5, B3TREE_CHUNK_LEN, &len);
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
	if (cn->test_corrupt && len)
		buf[5 + len / 2] ^= 0x5a; /* test knob, see content_node.h */
	buf[0] = CONTENT_ST_OK;
	put_u32(buf + 1, (uint32_t)len);
	atomic_fetch_add(&cn->served_chunks, 1);
	atomic_fetch_add(&cn->served_bytes, len);
	reply(cn, r->conn, r->sid, buf, len + 5, r->fin);
}

static void serve_manifest(struct content_node *cn, const struct cn_sreq *r)
{
	uint8_t *enc = NULL, *out;
	size_t len = 0;

	if (cn_share_get(cn, r->buf + 1, &enc, &len)) {
		atomic_fetch_add(&cn->serve_notfound, 1);
		reply_status(cn, r, CONTENT_ST_NOT_FOUND);
		return;
	}
	out = malloc(len + 5);
	if (!out) {
		free(enc);
		reply_status(cn, r, CONTENT_ST_BUSY);
		return;
	}
	out[0] = CONTENT_ST_OK;
	put_u32(out + 1, (uint32_t)len);
	memcpy(out + 5, enc, len);
	atomic_fetch_add(&cn->served_manifests, 1);
	reply(cn, r->conn, r->sid, out, len + 5, r->fin);
	free(out);
	free(enc);
}

static void serve_one(struct content_node *cn, const struct cn_sreq *r, uint8_t *buf)
{
	uint8_t op = r->len ? r->buf[0] : 0;

	if (op == CONTENT_OP_INFO && r->len == 33)
		serve_info(cn, r);
	else if (op == CONTENT_OP_CHUNK && r->len == 41)
		serve_chunk(cn, r, buf);
	else if (op == CONTENT_OP_MANIFEST && r->len == 21)
		serve_manifest(cn, r);
	else {
		atomic_fetch_add(&cn->serve_bad, 1);
		reply_status(cn, r, CONTENT_ST_BAD_REQUEST);
	}
}

static void *serve_thread(void *arg)
{
	struct content_node *cn = arg;
	uint8_t *buf = malloc(B3TREE_CHUNK_LEN + 5);
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
	}
	pthread_mutex_unlock(&cn->smu);
	free(buf);
	return NULL;
}

static size_t req_len(uint8_t op)
{
	switch (op) {
	case CONTENT_OP_INFO:
		return 33;
	case CONTENT_OP_CHUNK:
		return 41;
	case CONTENT_OP_MANIFEST:
		return 21;
	default:
		return 0;
	}
}

/* Called with smu held. */
static void enqueue(struct content_node *cn, uint64_t conn, int64_t sid, const uint8_t *req,
		    size_t len, int fin)
{
	struct cn_sreq *r;

	if (cn->sq_len == CONTENT_SERVE_QUEUE || !cn->nsthr) {
		static const uint8_t busy[5] = {CONTENT_ST_BUSY, 0, 0, 0, 0};

		atomic_fetch_add(&cn->serve_busy, 1);
		/* Cheap and non-blocking enough for a worker: five bytes. */
		quic_node_write(cn->quic, conn, sid, busy, sizeof(busy), fin);
		return;
	}
	r = &cn->sq[(cn->sq_head + cn->sq_len) % CONTENT_SERVE_QUEUE];
	r->conn = conn;
	r->sid = sid;
	r->len = (uint8_t)len;
	r->fin = (uint8_t)fin;
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
		if (p->used && p->last_ms + CN_PENDING_STALE_MS < now &&
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
	free_slot->last_ms = now;
	return free_slot;
}

/*
 * A fetch stream carries requests one after the other (each answered in
 * order; a client keeps one outstanding per stream). Requests have a fixed
 * length per operation; bytes of an incomplete one wait in the pending
 * table (bounded; a stream that cannot get an entry is reset with BUSY).
 */
static void on_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len, int fin)
{
	struct cn_hub *hub = arg;
	struct content_node *cn;
	struct cn_pending *p;
	size_t need, take;

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
		need = p->len ? req_len(p->buf[0]) : req_len(data[0]);
		if (!need) {
			atomic_fetch_add(&cn->serve_bad, 1);
			p->used = 0;
			quic_node_stream_reset(cn->quic, conn, sid, CONTENT_ST_BAD_REQUEST);
			goto out;
		}
		take = need - p->len < len ? need - p->len : len;
		memcpy(p->buf + p->len, data, take);
		p->len = (uint8_t)(p->len + take);
		data += take;
		len -= take;
		if (p->len == need) {
			enqueue(cn, conn, sid, p->buf, p->len, fin && !len);
			p->len = 0;
		}
	}
	if (fin) {
		if (p->len) {
			atomic_fetch_add(&cn->serve_bad, 1);
			quic_node_stream_reset(cn->quic, conn, sid, CONTENT_ST_BAD_REQUEST);
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

int cn_serve_init(struct content_node *cn)
{
	static const struct quic_node_handler h = {.stream_data = on_data,
						   .stream_closed = on_closed};

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
		rc = pthread_create(&cn->sthr[cn->nsthr], NULL, serve_thread, cn);
		if (rc)
			return -rc;
	}
	return 0;
}

void cn_serve_stop(struct content_node *cn)
{
	/* quic_node has no way to unregister a stream type and reports the
	 * streams of every connection still open as closed when it is freed,
	 * after us: the hub it calls stays allocated (48 bytes, once per
	 * content node) and only answers that nobody is home. */
	if (cn->hub) {
		pthread_mutex_lock(&cn->hub->mu);
		cn->hub->cn = NULL;
		pthread_mutex_unlock(&cn->hub->mu);
		cn->hub = NULL;
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
