// SPDX-License-Identifier: MIT
/*
 * Push of new share heads to connected subscribers (watch.h; docs/CONTENT.md
 * "Push to subscribers"). Two sides:
 *
 * The publisher: stream type CONTENT_ST_WATCH is registered on the QUIC
 * node; a subscriber's request is read into a slot of a bounded table
 * (CN_WATCH_SERVE_MAX, CN_WATCH_PER_PEER per key), answered with an ACK,
 * and the stream stays open. cn_watch_publish writes a NOTIFY with the
 * new version's signed item on every stream watching that share. The
 * table is touched by the QUIC workers (requests, closes) and the
 * publishing thread, under one mutex; no write is made with it held.
 *
 * The subscriber: one thread (the owner of the publishers watched)
 * gathers the publishers of the heads this node follows, keeps one
 * connection per publisher (dial by key, PINGs below the idle timeout)
 * with one watch stream naming the shares followed there, and hands every
 * verified NOTIFY to the subscriptions (cn_subs_pushed). A connection's
 * callbacks share only its struct wconn (its own lock, reference counted:
 * the thread and the connection), so a late callback never reaches freed
 * state. A publisher that sends a malformed frame, an item whose signature
 * does not verify, or a share not asked for, loses the connection and is
 * tried again after the back-off.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "content/content_node_int.h"
#include "content/heads.h"
#include "content/watch.h"
#include "weft/dht.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

/* ------------------------------------------------------------ publisher */

struct wsrv_slot {
	int used, ready;
	uint64_t conn;
	int64_t sid;
	uint8_t peer[32];
	uint8_t *buf; /* the request until whole (CN_WATCH_REQ_MAX) */
	size_t blen;
	unsigned int nsid;
	uint8_t sids[CN_WATCH_NAMES][MANIFEST_SHARE_ID_LEN];
};

/* The registered stream type's context: freed by the last of the content
 * node (cn_watch_free) and the QUIC node (release), whichever is later. */
struct wsrv {
	pthread_mutex_t mu;
	atomic_int refs;
	struct quic_node *qn;
	uint8_t pk[32];
	struct wsrv_slot slot[CN_WATCH_SERVE_MAX];
	unsigned int nused;
	atomic_ullong notified, refused, served;
};

/* ------------------------------------------------------------ subscriber */

enum { WC_DIALING, WC_OPENING, WC_SENT, WC_WATCHING, WC_FAILED };

struct wpush {
	char name[MANIFEST_MAX_NAME + 1];
	size_t nl;
	int64_t seq;
	uint8_t sig[64];
	uint8_t v[1000];
	size_t vlen;
};

/* One watch connection: shared by the thread and the connection's
 * callbacks (refs: one each), under its own lock. */
struct wconn {
	pthread_mutex_t mu;
	atomic_int refs;
	int detached, state;
	struct cn_watch *w;
	struct quic_node *qn;
	uint8_t pk[32];
	uint64_t conn;
	int64_t sid;
	uint8_t req[CN_WATCH_REQ_MAX];
	int reqlen;
	struct cn_watch_names names; /* asked for */
	uint8_t buf[CN_WATCH_FRAME_MAX];
	size_t blen;
	struct wpush q[CN_WATCH_QUEUE];
	unsigned int nq;
	unsigned int dropped, bad;
};

struct wpub {
	int used, seen;
	uint8_t pk[32];
	struct cn_watch_names names;
	struct wconn *c;
	uint64_t retry_ms, up_ms;
	int first_done; /* the short first retry was used */
	unsigned int backoff_s;
};

struct cn_watch {
	struct content_node *cn;
	struct cn_watch_subs subs; /* the subscriptions, given by content_node.c */
	struct wsrv *srv;
	unsigned int keepalive_ms;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thr;
	int started, stop, kick;
	struct wpub pub[CN_WATCH_PUBS]; /* the thread's */
	atomic_uint watched, up;
	atomic_ullong pushes, bad, dials, dial_fails;
};

static void srv_put(struct wsrv *s)
{
	if (atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (unsigned int i = 0; i < CN_WATCH_SERVE_MAX; i++)
		free(s->slot[i].buf);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static struct wsrv_slot *slot_find(struct wsrv *s, uint64_t conn, int64_t sid)
{
	for (unsigned int i = 0; i < CN_WATCH_SERVE_MAX; i++)
		if (s->slot[i].used && s->slot[i].conn == conn && s->slot[i].sid == sid)
			return &s->slot[i];
	return NULL;
}

static void slot_free(struct wsrv *s, struct wsrv_slot *sl)
{
	free(sl->buf);
	memset(sl, 0, sizeof(*sl));
	s->nused--;
}

/* A new watch stream: a slot, unless the table or this key's share is
 * full (NULL). Called with s->mu held. */
static struct wsrv_slot *slot_new(struct wsrv *s, uint64_t conn, int64_t sid)
{
	uint8_t peer[32];
	struct sockaddr_storage addr;
	struct wsrv_slot *fr = NULL;
	unsigned int mine = 0;

	if (quic_node_conn_peer(s->qn, conn, peer, &addr))
		return NULL;
	for (unsigned int i = 0; i < CN_WATCH_SERVE_MAX; i++) {
		if (!s->slot[i].used && !fr)
			fr = &s->slot[i];
		else if (s->slot[i].used && !memcmp(s->slot[i].peer, peer, 32))
			mine++;
	}
	if (!fr || mine >= CN_WATCH_PER_PEER)
		return NULL;
	fr->buf = malloc(CN_WATCH_REQ_MAX);
	if (!fr->buf)
		return NULL;
	fr->used = 1;
	fr->conn = conn;
	fr->sid = sid;
	memcpy(fr->peer, peer, 32);
	s->nused++;
	return fr;
}

static void srv_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		     int fin)
{
	struct wsrv *s = arg;
	struct wsrv_slot *sl;
	struct cn_watch_names w;
	uint8_t ack[2];
	int rc, answer = -1, end = 0;

	pthread_mutex_lock(&s->mu);
	sl = slot_find(s, conn, sid);
	if (!sl && (len || !fin)) {
		sl = slot_new(s, conn, sid);
		if (!sl) {
			answer = CN_WATCH_FULL;
			end = 1;
			atomic_fetch_add(&s->refused, 1);
			goto out;
		}
	}
	if (!sl)
		goto out;
	if (sl->ready) { /* nothing more is asked of a subscriber but its FIN */
		if (len) {
			answer = CN_WATCH_MALFORMED;
			atomic_fetch_add(&s->refused, 1);
		}
		end = 1;
		slot_free(s, sl);
		goto out;
	}
	if (len > CN_WATCH_REQ_MAX - sl->blen) {
		rc = -EPROTO;
	} else {
		memcpy(sl->buf + sl->blen, data, len);
		sl->blen += len;
		rc = cn_watch_req_decode(sl->buf, sl->blen, &w);
	}
	if (rc > 0 && (size_t)rc != sl->blen)
		rc = -EPROTO; /* bytes past the request */
	if (rc < 0 || (rc == 0 && fin)) {
		answer = CN_WATCH_MALFORMED;
		end = 1;
		atomic_fetch_add(&s->refused, 1);
		slot_free(s, sl);
		goto out;
	}
	if (rc == 0)
		goto out;
	for (unsigned int i = 0; i < w.n; i++)
		manifest_share_id(s->pk, w.name[i], w.len[i], sl->sids[i]);
	sl->nsid = w.n;
	sl->ready = 1;
	free(sl->buf);
	sl->buf = NULL;
	answer = CN_WATCH_OK;
	atomic_fetch_add(&s->served, 1);
	if (fin) {
		end = 1;
		slot_free(s, sl);
	}
out:
	pthread_mutex_unlock(&s->mu);
	/* written with no lock held: the write may run at once on this worker */
	if (answer >= 0)
		quic_node_write(s->qn, conn, sid, ack, (size_t)cn_watch_ack_encode((uint8_t)answer, ack),
				end);
	else if (end)
		quic_node_write(s->qn, conn, sid, NULL, 0, 1);
}

static void srv_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct wsrv *s = arg;
	struct wsrv_slot *sl;

	(void)err;
	pthread_mutex_lock(&s->mu);
	sl = slot_find(s, conn, sid);
	if (sl)
		slot_free(s, sl);
	pthread_mutex_unlock(&s->mu);
}

static void srv_release(void *arg)
{
	srv_put(arg);
}

void cn_watch_publish(struct content_node *cn, const char *name, size_t nl, int64_t seq,
		      const uint8_t sig[64], const uint8_t *v, size_t vlen)
{
	struct wsrv *s = cn->watch ? cn->watch->srv : NULL;
	uint8_t sid[MANIFEST_SHARE_ID_LEN], frame[CN_WATCH_FRAME_MAX];
	struct {
		uint64_t conn;
		int64_t sid;
	} *to;
	unsigned int n = 0;
	int len;

	if (!s)
		return;
	len = cn_watch_notify_encode(name, nl, seq, sig, v, vlen, frame);
	if (len < 0)
		return;
	manifest_share_id(s->pk, name, nl, sid);
	to = malloc(CN_WATCH_SERVE_MAX * sizeof(*to));
	if (!to)
		return;
	pthread_mutex_lock(&s->mu);
	for (unsigned int i = 0; i < CN_WATCH_SERVE_MAX; i++) {
		const struct wsrv_slot *sl = &s->slot[i];

		if (!sl->used || !sl->ready)
			continue;
		for (unsigned int k = 0; k < sl->nsid; k++)
			if (!memcmp(sl->sids[k], sid, sizeof(sid))) {
				to[n].conn = sl->conn;
				to[n++].sid = sl->sid;
				break;
			}
	}
	pthread_mutex_unlock(&s->mu);
	for (unsigned int i = 0; i < n; i++)
		if (quic_node_write(s->qn, to[i].conn, to[i].sid, frame, (size_t)len, 0) == 0)
			atomic_fetch_add(&s->notified, 1);
	if (n)
		log_info(CN_MOD, "share head %.*s seq %lld pushed to %u watching subscriber%s",
			 (int)nl, name, (long long)seq, n, n == 1 ? "" : "s");
	free(to);
}

/* ------------------------------------------------------------ subscriber */

static void wc_put(struct wconn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* Wake the thread; with c->mu held and c attached. */
static void wc_wake(struct wconn *c)
{
	pthread_mutex_lock(&c->w->mu);
	pthread_cond_signal(&c->w->cond);
	pthread_mutex_unlock(&c->w->mu);
}

static void wc_fail(struct wconn *c)
{
	c->state = WC_FAILED;
	if (!c->detached)
		wc_wake(c);
}

static void cli_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct wconn *c = arg;
	int open = 0;

	(void)peer_key; /* the dial pinned the key */
	pthread_mutex_lock(&c->mu);
	if (c->detached) {
		pthread_mutex_unlock(&c->mu);
		return;
	}
	if (err)
		wc_fail(c);
	else
		open = c->state == WC_DIALING;
	if (open)
		c->state = WC_OPENING;
	pthread_mutex_unlock(&c->mu);
	if (open && quic_node_stream_open(c->qn, conn, CONTENT_ST_WATCH, 0)) {
		pthread_mutex_lock(&c->mu);
		wc_fail(c);
		pthread_mutex_unlock(&c->mu);
	}
}

static void cli_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct wconn *c = arg;
	uint8_t req[CN_WATCH_REQ_MAX];
	int len = 0;

	(void)token;
	pthread_mutex_lock(&c->mu);
	if (err) {
		wc_fail(c);
	} else if (!c->detached && c->state == WC_OPENING) {
		c->sid = sid;
		c->state = WC_SENT;
		len = c->reqlen;
		memcpy(req, c->req, (size_t)len);
	}
	pthread_mutex_unlock(&c->mu);
	if (len > 0)
		quic_node_write(c->qn, conn, sid, req, (size_t)len, 0);
}

/* One NOTIFY: a share asked for, signed by the publisher. */
static int take_notify(struct wconn *c, const struct cn_watch_frame *f)
{
	struct wpush *p;
	unsigned int k;

	for (k = 0; k < c->names.n; k++)
		if (c->names.len[k] == f->name_len && !memcmp(c->names.name[k], f->name, f->name_len))
			break;
	if (k == c->names.n)
		return -EPROTO;
	if (dht_bep44_verify(c->pk, f->sig, (const uint8_t *)f->name, f->name_len, f->seq, f->v,
			     f->vlen))
		return -EBADMSG;
	if (c->nq == CN_WATCH_QUEUE) { /* the thread is behind: polling finds it */
		c->dropped++;
		return 0;
	}
	p = &c->q[c->nq++];
	memcpy(p->name, f->name, f->name_len);
	p->name[f->name_len] = 0;
	p->nl = f->name_len;
	p->seq = f->seq;
	memcpy(p->sig, f->sig, 64);
	memcpy(p->v, f->v, f->vlen);
	p->vlen = f->vlen;
	return 0;
}

static void cli_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		     int fin)
{
	struct wconn *c = arg;
	struct cn_watch_frame f;
	size_t off = 0;
	int rc = 0, close = 0;

	(void)sid;
	pthread_mutex_lock(&c->mu);
	if (c->detached || c->state == WC_FAILED) {
		pthread_mutex_unlock(&c->mu);
		return;
	}
	while (off < len && !close) {
		size_t take = len - off;

		if (take > sizeof(c->buf) - c->blen)
			take = sizeof(c->buf) - c->blen;
		memcpy(c->buf + c->blen, data + off, take);
		c->blen += take;
		off += take;
		while (c->blen && (rc = cn_watch_frame_decode(c->buf, c->blen, &f)) > 0) {
			size_t used = (size_t)rc;

			rc = 0;
			if (f.type == CN_WATCH_F_ACK && f.status == CN_WATCH_OK &&
			    c->state == WC_SENT)
				c->state = WC_WATCHING;
			else if (f.type == CN_WATCH_F_NOTIFY && c->state == WC_WATCHING)
				rc = take_notify(c, &f); /* copies out of buf */
			else
				rc = -EPROTO; /* refused, or out of order */
			if (rc < 0)
				break;
			memmove(c->buf, c->buf + used, c->blen - used);
			c->blen -= used;
		}
		if (rc < 0)
			close = 1;
	}
	if (close) {
		c->bad++;
		wc_fail(c);
	} else if (fin) {
		wc_fail(c);
	} else if (c->nq || c->state == WC_WATCHING) {
		wc_wake(c);
	}
	pthread_mutex_unlock(&c->mu);
	if (close)
		quic_node_close(c->qn, conn, 0);
}

static void cli_stream_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct wconn *c = arg;

	(void)conn;
	(void)sid;
	(void)err;
	pthread_mutex_lock(&c->mu);
	if (!c->detached)
		wc_fail(c);
	pthread_mutex_unlock(&c->mu);
}

static void cli_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct wconn *c = arg;

	(void)conn;
	(void)info;
	pthread_mutex_lock(&c->mu);
	if (!c->detached)
		wc_fail(c);
	pthread_mutex_unlock(&c->mu);
	wc_put(c); /* the connection's reference */
}

static const struct quic_node_handler cli_h = {
	.connected = cli_connected,
	.stream_opened = cli_opened,
	.stream_data = cli_data,
	.stream_closed = cli_stream_closed,
	.closed = cli_closed,
};

/* Let go of p's connection (closed; its callbacks see it detached). */
static void pub_drop_conn(struct cn_watch *w, struct wpub *p)
{
	struct wconn *c = p->c;

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->detached = 1;
	pthread_mutex_unlock(&c->mu);
	quic_node_close(w->cn->quic, c->conn, 0);
	wc_put(c);
	p->c = NULL;
}

static void pub_failed(struct wpub *p, uint64_t now)
{
	/* a watch that held for a minute starts its back-off over */
	if (p->up_ms && now - p->up_ms >= 60000)
		p->backoff_s = 0;
	if (!p->backoff_s && !p->up_ms && !p->first_done)
		p->backoff_s = CN_WATCH_RETRY_FIRST_S;
	else if (p->backoff_s < CN_WATCH_RETRY_MIN_S)
		p->backoff_s = CN_WATCH_RETRY_MIN_S;
	else
		p->backoff_s *= 2;
	p->first_done = 1;
	if (p->backoff_s > CN_WATCH_RETRY_MAX_S)
		p->backoff_s = CN_WATCH_RETRY_MAX_S;
	p->retry_ms = now + p->backoff_s * 1000ull;
	p->up_ms = 0;
}

/* Dial p's publisher by key and ask for its names (blocks up to
 * CN_WATCH_DIAL_MS: this thread's only wait besides its own). */
static void pub_dial(struct cn_watch *w, struct wpub *p, uint64_t now)
{
	char hex[65], t[QUIC_NODE_RESOLVE_MAX][QUIC_NODE_TARGET_MAX];
	struct wconn *c;
	int n;

	atomic_fetch_add(&w->dials, 1);
	util_hex(hex, p->pk, 32);
	/* The record cache may hold a miss from before the publisher's
	 * record was put (both nodes just started), or a record older than
	 * its addresses: the first dial asks past a cached miss, every dial
	 * after a failed one asks the DHT afresh (the back-off bounds how
	 * often). */
	n = quic_node_resolve_flags(w->cn->quic, hex, t, QUIC_NODE_RESOLVE_MAX, CN_WATCH_DIAL_MS,
				    NULL,
				    p->first_done ? QUIC_NODE_RESOLVE_FRESH : QUIC_NODE_RESOLVE_PAST_MISS);
	c = n > 0 ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		atomic_fetch_add(&w->dial_fails, 1);
		log_debug(CN_MOD, "watch of %.16s: %s", hex, n > 0 ? "out of memory" : strerror(-n));
		pub_failed(p, now);
		return;
	}
	pthread_mutex_init(&c->mu, NULL);
	atomic_init(&c->refs, 2); /* this thread and the connection */
	c->w = w;
	c->qn = w->cn->quic;
	memcpy(c->pk, p->pk, 32);
	c->names = p->names;
	c->reqlen = cn_watch_req_encode(&c->names, c->req);
	c->state = WC_DIALING;
	if (c->reqlen < 0 || quic_node_connect(w->cn->quic, t[0], &cli_h, c, &c->conn)) {
		atomic_init(&c->refs, 1); /* no connection will report closed() */
		wc_put(c);
		atomic_fetch_add(&w->dial_fails, 1);
		pub_failed(p, now);
		return;
	}
	if (w->keepalive_ms)
		quic_node_keepalive(w->cn->quic, c->conn, w->keepalive_ms);
	p->c = c;
}

static int same_names(const struct cn_watch_names *a, const struct cn_watch_names *b)
{
	if (a->n != b->n)
		return 0;
	for (unsigned int i = 0; i < a->n; i++)
		if (a->len[i] != b->len[i] || memcmp(a->name[i], b->name[i], a->len[i]))
			return 0;
	return 1;
}

/* The publishers of the heads followed, and the names followed at each. */
static void gather(struct cn_watch *w, struct cn_head_ref *refs, unsigned int nref)
{
	for (unsigned int i = 0; i < CN_WATCH_PUBS; i++) {
		w->pub[i].seen = 0;
		w->pub[i].names.n = 0;
	}
	for (unsigned int r = 0; r < nref; r++) {
		struct wpub *p = NULL, *fr = NULL;
		struct cn_watch_names *nm;

		if (!memcmp(refs[r].pk, w->cn->id->pk, 32))
			continue; /* our own shares */
		for (unsigned int i = 0; i < CN_WATCH_PUBS && !p; i++) {
			if (w->pub[i].used && !memcmp(w->pub[i].pk, refs[r].pk, 32))
				p = &w->pub[i];
			else if (!w->pub[i].used && !fr)
				fr = &w->pub[i];
		}
		if (!p && fr) {
			memset(fr, 0, sizeof(*fr));
			fr->used = 1;
			memcpy(fr->pk, refs[r].pk, 32);
			p = fr;
		}
		if (!p)
			continue; /* past CN_WATCH_PUBS: polling alone */
		p->seen = 1;
		nm = &p->names;
		if (nm->n < CN_WATCH_NAMES) {
			nm->len[nm->n] = (uint8_t)refs[r].name_len;
			memcpy(nm->name[nm->n], refs[r].name, refs[r].name_len);
			nm->name[nm->n][refs[r].name_len] = 0;
			nm->n++;
		}
	}
}

/* One pass over the publishers: drain pushes, mend and dial. */
static void pass(struct cn_watch *w, uint64_t now)
{
	unsigned int watched = 0, up = 0;

	for (unsigned int i = 0; i < CN_WATCH_PUBS; i++) {
		struct wpub *p = &w->pub[i];
		struct wpush q[CN_WATCH_QUEUE];
		unsigned int nq = 0, bad = 0;
		int state = -1;

		if (!p->used)
			continue;
		if (!p->seen || !p->names.n) { /* no longer followed */
			pub_drop_conn(w, p);
			p->used = 0;
			continue;
		}
		watched++;
		if (p->c) {
			pthread_mutex_lock(&p->c->mu);
			nq = p->c->nq;
			memcpy(q, p->c->q, nq * sizeof(q[0]));
			p->c->nq = 0;
			state = p->c->state;
			bad = p->c->bad;
			p->c->bad = 0;
			pthread_mutex_unlock(&p->c->mu);
		}
		for (unsigned int k = 0; k < nq; k++) {
			struct cn_head_ref ref = {0};

			memcpy(ref.pk, p->pk, 32);
			memcpy(ref.name, q[k].name, q[k].nl);
			ref.name_len = q[k].nl;
			if (w->subs.pushed(w->cn, &ref, q[k].seq, q[k].sig, q[k].v, q[k].vlen) == 0)
				atomic_fetch_add(&w->pushes, 1);
		}
		if (bad) {
			atomic_fetch_add(&w->bad, bad);
			log_warn(CN_MOD, "watch: publisher %02x%02x%02x%02x... sent a frame that is "
				 "malformed, unsigned or not asked for: connection closed",
				 p->pk[0], p->pk[1], p->pk[2], p->pk[3]);
		}
		if (state == WC_WATCHING && !p->up_ms) {
			p->up_ms = now;
			/* a version published before the watch was accepted
			 * was pushed to nobody: one poll of each head finds it */
			for (unsigned int k = 0; k < p->names.n && w->subs.poll_now; k++) {
				struct cn_head_ref ref = {0};

				memcpy(ref.pk, p->pk, 32);
				memcpy(ref.name, p->names.name[k], p->names.len[k]);
				ref.name_len = p->names.len[k];
				w->subs.poll_now(w->cn, &ref);
			}
		}
		if (state == WC_FAILED) {
			pub_drop_conn(w, p);
			pub_failed(p, now);
		} else if (p->c && !same_names(&p->c->names, &p->names)) {
			pub_drop_conn(w, p); /* asked anew at once */
			p->retry_ms = 0;
			p->up_ms = 0; /* and polled once it is up */
		}
		if (!p->c && now >= p->retry_ms)
			pub_dial(w, p, now);
		if (p->c && state == WC_WATCHING)
			up++;
	}
	atomic_store(&w->watched, watched);
	atomic_store(&w->up, up);
}

static void *watch_run(void *arg)
{
	struct cn_watch *w = arg;
	/* each entry written whole (key_ref) before it is read: malloc keeps
	 * the pages never used out of the RSS */
	struct cn_head_ref *refs = malloc(CONTENT_MAX_HEADS * sizeof(*refs));
	uint64_t last_gather = 0;

	if (!refs) {
		log_error(CN_MOD, "watch: out of memory, subscriptions poll only");
		return NULL;
	}
	for (;;) {
		struct timespec ts;
		uint64_t now;
		int kick;

		util_heap_release_due(util_now_ms());
		pthread_mutex_lock(&w->mu);
		if (!w->stop && !w->kick) {
			util_deadline_ts(&ts, 1000);
			pthread_cond_timedwait(&w->cond, &w->mu, &ts);
		}
		kick = w->kick;
		w->kick = 0;
		if (w->stop) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		pthread_mutex_unlock(&w->mu);
		now = util_now_ms();
		if (kick || now - last_gather >= 5000) {
			gather(w, refs, w->subs.followed(w->cn, refs, CONTENT_MAX_HEADS));
			last_gather = now;
		}
		pass(w, now);
	}
	for (unsigned int i = 0; i < CN_WATCH_PUBS; i++)
		pub_drop_conn(w, &w->pub[i]);
	free(refs);
	return NULL;
}

void cn_watch_kick(struct content_node *cn)
{
	struct cn_watch *w = cn->watch;

	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->kick = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

int cn_watch_init(struct content_node *cn, unsigned int keepalive_ms,
		  const struct cn_watch_subs *subs)
{
	const struct quic_node_handler h = {
	    .stream_data = srv_data,
	    .stream_closed = srv_closed,
	    .release = srv_release,
	};
	struct cn_watch *w = calloc(1, sizeof(*w));
	struct wsrv *s = calloc(1, sizeof(*s));
	int rc;

	if (!w || !s) {
		free(w);
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->mu, NULL);
	atomic_init(&s->refs, 2); /* the content node and the QUIC node */
	s->qn = cn->quic;
	memcpy(s->pk, cn->id->pk, 32);
	w->cn = cn;
	w->subs = *subs;
	w->srv = s;
	w->keepalive_ms = keepalive_ms;
	pthread_mutex_init(&w->mu, NULL);
	util_cond_init_mono(&w->cond);
	rc = quic_node_register(cn->quic, CONTENT_ST_WATCH, &h, s);
	if (rc) {
		atomic_init(&s->refs, 1);
		srv_put(s);
		w->srv = NULL;
	}
	cn->watch = w;
	return rc;
}

int cn_watch_start(struct content_node *cn)
{
	struct cn_watch *w = cn->watch;
	int rc;

	if (!w || w->started)
		return 0;
	rc = log_thread_create(&w->thr, NULL, watch_run, w, "weft-watch");
	if (rc)
		return -rc;
	w->started = 1;
	return 0;
}

void cn_watch_free(struct content_node *cn)
{
	struct cn_watch *w = cn->watch;

	if (!w)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->stop = 1;
		pthread_cond_signal(&w->cond);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thr, NULL);
	}
	if (w->srv)
		srv_put(w->srv);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->mu);
	free(w);
	cn->watch = NULL;
}

json_t *cn_watch_json(struct content_node *cn)
{
	struct cn_watch *w = cn->watch;
	unsigned int serving = 0;

	if (!w)
		return json_null();
	if (w->srv) {
		pthread_mutex_lock(&w->srv->mu);
		serving = w->srv->nused;
		pthread_mutex_unlock(&w->srv->mu);
	}
	return json_pack(
	    "{s:i,s:i,s:I,s:I,s:I,s:I,s:i,s:I,s:I,s:I}", "publishers", (int)atomic_load(&w->watched),
	    "watching", (int)atomic_load(&w->up), "pushes", (json_int_t)atomic_load(&w->pushes),
	    "bad", (json_int_t)atomic_load(&w->bad), "dials", (json_int_t)atomic_load(&w->dials),
	    "dial_failures", (json_int_t)atomic_load(&w->dial_fails), "subscribers", (int)serving,
	    "accepted", (json_int_t)(w->srv ? atomic_load(&w->srv->served) : 0), "refused",
	    (json_int_t)(w->srv ? atomic_load(&w->srv->refused) : 0), "notified",
	    (json_int_t)(w->srv ? atomic_load(&w->srv->notified) : 0));
}
