// SPDX-License-Identifier: MIT
/*
 * Serving side of the content fetch protocol (stream type CONTENT_ST_FETCH,
 * docs/PROTOCOL.md "Content"). Worker callbacks only collect the request
 * bytes (at most 41) and queue them on their peer's queue in the worker's
 * scheduler (sched.h); the worker's pump answers them in the scheduler's
 * order. A chunk kept in memory is answered on the worker; one that needs
 * a file read (and its re-verification, inside cstore_read_chunk: a blob
 * that fails is marked bad and never served) goes to the reader threads
 * (readq.h) and is answered on the worker when it comes back.
 *
 * Owners: each worker owns the pending table of its connections' streams
 * (struct cn_wtab), its scheduler and its reads out; an answer is counted
 * off its stream's entry with one atomic word. The reader queue's mutex is
 * taken twice per chunk read, never per packet (docs/CONTENT.md).
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
#include "content/readq.h"
#include "content/sched.h"
#include "content/serve_int.h"
#include "weft/conn.h"
#include "weft/engine.h"
#include "weft/io.h"
#include "weft/guard.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

_Static_assert(sizeof(((struct cn_pending *)0)->buf) >= CN_REQ_MAX &&
		   sizeof(((struct cn_sreq *)0)->buf) >= CN_REQ_MAX,
	       "request buffers hold the longest request");
_Static_assert(sizeof(((struct cn_wtab *)0)->reading) / sizeof(((struct cn_wtab *)0)->reading[0]) >=
		       CN_READS_PER_WORKER,
	       "a worker tracks the stream of every read it has out");

/* A pending entry unused this long may be taken over when the table is
 * full: its connection most likely went away without closing the stream
 * (connections that close do not report each stream). */
#define CN_PENDING_STALE_MS 30000

/* ------------------------------------------------ serving on the worker */

/* A worker with CN_READS_PER_WORKER reads out looks at its queue again
 * after this long even if no wake-up came (readq's post can be refused). */
#define CN_READ_RECHECK_MS 50
/* Requests held behind their stream's answer still out, per worker: they
 * count against CONTENT_SERVE_QUEUE with those queued (enqueue), so the
 * two together hold no more than the queue did alone. */
#define CN_HELD_MAX CONTENT_SERVE_QUEUE
/* Chunk requests held because the worker had CN_READS_PER_WORKER reads
 * out, so that the requests behind them that memory answers (chunks kept
 * in memory, INFO, HAVE, PEERS, manifests) go at once: at most this many
 * per worker, then the pump waits for a read to come back. */
#define CN_PARK_MAX 8
/* Streams with requests held: one per read out and one per parked
 * request at most. */
#define CN_HST_MAX (CN_READS_PER_WORKER + CN_PARK_MAX)
_Static_assert(sizeof(((struct cn_wtab *)0)->hst) / sizeof(((struct cn_wtab *)0)->hst[0]) ==
		       CN_HST_MAX,
	       "a worker tracks every stream with requests held");

/*
 * Each engine worker serves the requests of its own connections
 * (docs/CONTENT.md "Fair, capped serving"): on_data queues them on their
 * peer's queue in the worker's scheduler (sched.h) and defers the pump to
 * the end of the loop pass; the pump answers up to CONTENT_SERVE_BATCH
 * in the scheduler's order, then lets packets in again (a timer at the
 * next pass), and sleeps on a timer while every peer waits for a cap.
 * A chunk not in memory is read by the reader threads (readq.h; at most
 * CN_READS_PER_WORKER out per worker), its answer written when it comes
 * back (backlog_flush, first thing in the next pump); without them (none
 * configured, or the simulated network) it is read here, one at a time.
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
static void kick(struct cn_wtab *t);

/* The request's stream is gone (reset by the peer, or closed with its
 * connection): answering would read a chunk from the disk for nobody, and
 * a requester that queues its peer_queue of requests and hangs up would
 * cost the seed that many reads each time. */
static int stale(struct content_node *cn, const struct cn_sreq *r)
{
	return !quic_node_stream_live(cn->quic, r->conn, r->sid);
}

/* A chunk read handed back (answered, or never to be): its answer's
 * command (when not written) and itself go, and the worker may hand out
 * another. */
static void read_drop(struct cn_wtab *t, struct cn_read *rd)
{
	quic_node_wbuf_free(t->cn->quic, rd->w);
	free(rd);
	if (t->reads_out)
		t->reads_out--;
	t->held_retry = 1; /* a read slot, and maybe a stream, freed */
}

/* Has r's stream an answer out on a reader thread? (At most
 * CN_READS_PER_WORKER streams: one per read out, as a stream's later
 * requests wait behind its read; a stream's pending entry may be gone
 * already, freed with the request that carried its FIN.) */
static int stream_reading(const struct cn_wtab *t, const struct cn_sreq *r)
{
	for (unsigned int i = 0; i < CN_READS_PER_WORKER; i++)
		if (t->reading[i].used && t->reading[i].conn == r->conn &&
		    t->reading[i].sid == r->sid)
			return 1;
	return 0;
}

static void stream_read_mark(struct cn_wtab *t, const struct cn_sreq *r, int on)
{
	for (unsigned int i = 0; i < CN_READS_PER_WORKER; i++) {
		if (on && !t->reading[i].used) {
			t->reading[i].conn = r->conn;
			t->reading[i].sid = r->sid;
			t->reading[i].used = 1;
			return;
		}
		if (!on && t->reading[i].used && t->reading[i].conn == r->conn &&
		    t->reading[i].sid == r->sid) {
			t->reading[i].used = 0;
			return;
		}
	}
}

/* What answering one request taken from the scheduler came to. */
enum sv_res {
	SV_DONE,   /* answered (or skipped: its stream is gone) */
	SV_QUEUED, /* its chunk went to a reader: answered when it comes back */
	SV_DEPTH,  /* CN_READS_PER_WORKER reads out: not taken, try later */
	SV_FULL,   /* the node's send queue is full: not taken, try in 1 ms */
	SV_PACED,  /* answered; the test hook's pace: the next after its delay */
	SV_PEER,   /* its peer holds its limit of answers: not taken, others go */
};

/* A peer holding its limit of answers (cn_serve_peer_full) is looked at
 * again after this long: an acknowledgment takes a round trip. */
#define CN_PEER_RECHECK_NS 2000000ull

static enum sv_res serve_item(struct cn_wtab *t, const struct cn_sched_item *it)
{
	struct content_node *cn = t->cn;
	struct cn_sv v = {.cn = cn, .t = t};

	if (stale(cn, &it->r)) {
		atomic_fetch_add(&cn->serve_stale, 1);
		cn_sched_account(t->sched, it->r.conn, -(int64_t)it->cost, cn_sv_now(t));
		return SV_DONE;
	}
	cn_serve_one(&v, it);
	if (v.rc == -EBUSY)
		return SV_DEPTH;
	if (v.rc == -ENOSPC)
		return SV_PEER;
	if (v.rc)
		return SV_FULL;
	if (v.queued) {
		stream_read_mark(t, &it->r, 1);
		return SV_QUEUED;
	}
	if ((int64_t)v.sent != (int64_t)it->cost)
		cn_sched_account(t->sched, it->r.conn, (int64_t)v.sent - (int64_t)it->cost,
				 cn_sv_now(t));
	if (it->r.len)
		answered(cn, &it->r);
#ifdef WEFT_TEST_HOOKS
	if (v.chunk && cn->test_delay_ms)
		return SV_PACED; /* test hook: this worker serves one chunk per delay */
#endif
	return SV_DONE;
}

/* ---- Held requests ----
 * A request waits in the worker's held list, in the order it came, when
 * its stream has an answer out on a reader (answers go in order on a
 * stream) or a request held before it, or when it needs a file read and
 * the worker has all its reads out (parked: at most CN_PARK_MAX, so the
 * requests behind it that memory answers are not held up by the disk).
 * hst counts each stream's held requests. It is kept apart from reading[]
 * (the streams of the reads out) although both are (conn, stream) tables
 * scanned alike: marking a read's stream must never fail (a read is out),
 * while hold() may (the request goes back to the scheduler), and in the
 * held walk a held request that finds the reads all out is marked parked
 * without CN_PARK_MAX's check (the held list's CN_HELD_MAX still bounds
 * it), so one table of 16 could be full of held streams when a read has
 * to be marked. */

static int hst_find(const struct cn_wtab *t, const struct cn_sreq *r)
{
	for (unsigned int i = 0; i < CN_HST_MAX; i++)
		if (t->hst[i].n && t->hst[i].conn == r->conn && t->hst[i].sid == r->sid)
			return (int)i;
	return -1;
}

/* Must a request of r's stream wait (an answer out, or requests held)? */
static int stream_blocked(const struct cn_wtab *t, const struct cn_sreq *r)
{
	return stream_reading(t, r) || (t->nheld && hst_find(t, r) >= 0);
}

/* Hold it (parked: it found the reads all out): 0, or -ENOBUFS
 * (CN_HELD_MAX held, CN_PARK_MAX parked, or CN_HST_MAX streams: the caller
 * puts it back). */
static int hold(struct cn_wtab *t, const struct cn_sched_item *it, int parked)
{
	struct cn_read *h, **pp;
	int k = hst_find(t, &it->r);

	if (t->nheld >= CN_HELD_MAX || (parked && t->nparked >= CN_PARK_MAX))
		return -ENOBUFS;
	for (unsigned int i = 0; k < 0 && i < CN_HST_MAX; i++)
		if (!t->hst[i].n)
			k = (int)i;
	if (k < 0 || !(h = calloc(1, sizeof(*h))))
		return -ENOBUFS;
	t->hst[k].conn = it->r.conn;
	t->hst[k].sid = it->r.sid;
	t->hst[k].n++;
	h->it = *it;
	h->parked = parked;
	for (pp = &t->held; *pp; pp = &(*pp)->next)
		;
	*pp = h;
	t->nheld++;
	t->nparked += !!parked;
	atomic_fetch_add(parked ? &t->cn->serve_parked : &t->cn->serve_held, 1);
	return 0;
}

/* Take the held request *pp off the list (answered or skipped). */
static void unhold(struct cn_wtab *t, struct cn_read **pp)
{
	struct cn_read *h = *pp;
	int k = hst_find(t, &h->it.r);

	if (k >= 0)
		t->hst[k].n--;
	*pp = h->next;
	t->nheld--;
	t->nparked -= !!h->parked;
	free(h);
}

/* The answers of the chunks the reader threads read for this worker, in
 * the order they came back, then the held requests whose streams have no
 * answer out any more, in the order they came: 0 when nothing is left
 * that can go now; SV_FULL (the node's send queue is full: the rest
 * wait, their chunks kept), SV_DEPTH or SV_PACED to stop the pump. */
static enum sv_res backlog_flush(struct cn_wtab *t)
{
	struct content_node *cn = t->cn;
	struct cn_read *rd = cn_readq_collect(cn->rq, t->widx), **pp;
	struct {
		uint64_t conn;
		int64_t sid;
	} skip[CN_HST_MAX];
	unsigned int nskip;
	enum sv_res res;

	if (rd) {
		if (t->ready_tail)
			t->ready_tail->next = rd;
		else
			t->ready = rd;
		while (rd->next)
			rd = rd->next;
		t->ready_tail = rd;
	}
	while ((rd = t->ready)) {
		struct cn_sv v = {.cn = cn, .t = t};
		const struct cn_sched_item *it = &rd->it;

		if (stale(cn, &it->r)) {
			atomic_fetch_add(&cn->serve_stale, 1);
			cn_sched_account(t->sched, it->r.conn, -(int64_t)it->cost, cn_sv_now(t));
		} else {
			uint8_t *head = rd->w ? rd->buf - CN_ANS_HEAD : NULL;

			cn_chunk_answer(&v, &it->r, rd->id, rd->index, &rd->w, head, rd->len,
					rd->rc, 0);
			if (v.rc)
				return SV_FULL;
			if ((int64_t)v.sent != (int64_t)it->cost)
				cn_sched_account(t->sched, it->r.conn,
						 (int64_t)v.sent - (int64_t)it->cost, cn_sv_now(t));
			if (it->r.len)
				answered(cn, &it->r);
		}
		stream_read_mark(t, &it->r, 0);
		t->ready = rd->next;
		if (!t->ready)
			t->ready_tail = NULL;
		read_drop(t, rd);
#ifdef WEFT_TEST_HOOKS
		if (cn->test_delay_ms)
			return SV_PACED; /* test hook: one chunk per delay */
#endif
	}
	/* the held requests, when a read came back since the last look
	 * (nothing else frees what they wait for) */
	if (!t->held_retry)
		return SV_DONE;
	t->held_retry = 0;
	nskip = 0;
	pp = &t->held;
	while ((rd = *pp)) {
		const struct cn_sreq *r = &rd->it.r;
		unsigned int i;

		for (i = 0; i < nskip && (skip[i].conn != r->conn || skip[i].sid != r->sid); i++)
			;
		if (i < nskip || stream_reading(t, r)) {
			pp = &rd->next; /* behind its stream's answer or held request */
			continue;
		}
		res = serve_item(t, &rd->it);
		if (res == SV_DEPTH) {
			/* the reads are all out: it stays, and its stream's
			 * later requests with it; those of other streams go
			 * when memory answers them */
			if (!rd->parked) {
				rd->parked = 1;
				t->nparked++;
			}
			if (nskip < CN_HST_MAX) {
				skip[nskip].conn = r->conn;
				skip[nskip++].sid = r->sid;
				pp = &rd->next;
				continue;
			}
			t->held_retry = 1;
			return SV_DEPTH;
		}
		if (res == SV_PEER) {
			/* it stays, and its stream's later requests with it,
			 * until its peer acknowledges: looked at again in
			 * CN_PEER_RECHECK_NS (pump) */
			if (!t->held_peer_ns)
				t->held_peer_ns = cn_sv_now(t) + CN_PEER_RECHECK_NS;
			if (nskip < CN_HST_MAX) {
				skip[nskip].conn = r->conn;
				skip[nskip++].sid = r->sid;
			}
			pp = &rd->next;
			continue;
		}
		if (res == SV_FULL) {
			t->held_retry = 1;
			return res;
		}
		unhold(t, pp);
		if (res == SV_PACED) {
			t->held_retry = 1;
			return res;
		}
	}
	return SV_DONE;
}

/* The pump's timer: the pump itself runs as deferred work, after the
 * pass's commands, so that the answers written by an earlier pass are in
 * their connections' send queues when it looks (cn_serve_peer_full). */
static void pump_later(struct engine_worker *w, void *arg)
{
	struct cn_wtab *t = arg;

	engine_defer(w, &t->pump);
}

static void pump(struct engine_worker *w, void *arg)
{
	struct cn_wtab *t = arg;
	struct content_node *cn = t->cn;
	struct cn_sched_item it;
	uint64_t wake;

	if (t->pumping || !atomic_load(&cn->serving))
		return;
#ifdef WEFT_TEST_HOOKS
	/* the pace holds against wake-ups too (a read back, a request): a
	 * fast read would otherwise serve the next chunk at once */
	if (cn->test_delay_ms && cn_sv_now(t) < t->paced_ns) {
		engine_timer_add_us(w, &t->pump_tm, (t->paced_ns - cn_sv_now(t)) / 1000 + 1);
		return;
	}
#endif
	t->pumping = 1;
	cn_serve_pass(t, engine_worker_pass(w));
	apply_limits(t);
	if (t->held_peer_ns && cn_sv_now(t) >= t->held_peer_ns) {
		t->held_peer_ns = 0;
		t->held_retry = 1; /* a peer over its limit: its held requests again */
	}
	for (unsigned int n = 0; n < CONTENT_SERVE_BATCH; n++) {
		enum sv_res res = cn->rq ? backlog_flush(t) : SV_DONE;
		int blocked;

		if (res == SV_DONE) {
			if (!cn_sched_next(t->sched, cn_sv_now(t), &it, &wake)) {
				if (t->held_peer_ns && wake > CN_PEER_RECHECK_NS)
					/* held requests of a peer over its limit */
					wake = CN_PEER_RECHECK_NS;
				if (wake != UINT64_MAX)
					engine_timer_add_us(w, &t->pump_tm, wake / 1000 + 1);
				else if (t->nparked)
					/* parked requests: the next read back wakes
					 * the pump (the timer if it could not be
					 * posted) */
					engine_timer_add(w, &t->pump_tm, CN_READ_RECHECK_MS);
				goto out;
			}
			blocked = cn->rq && stream_blocked(t, &it.r);
			if (blocked && !hold(t, &it, 0))
				continue;
			res = blocked ? SV_DEPTH : serve_item(t, &it);
			if (res == SV_PEER) {
				/* the others are served meanwhile */
				cn_sched_defer(t->sched, &it, cn_sv_now(t) + CN_PEER_RECHECK_NS);
				continue;
			}
			if (res == SV_DEPTH && !blocked && !hold(t, &it, 1))
				continue; /* parked: the next may be answered from memory */
			if (res == SV_DEPTH || res == SV_FULL)
				cn_sched_unpop(t->sched, &it);
		}
		if (res == SV_DEPTH) {
			/* CN_READS_PER_WORKER reads out and CN_PARK_MAX
			 * parked (or CN_HELD_MAX held): the next read to
			 * come back wakes the pump
			 * (readq's wake-up; the timer if it could not be
			 * posted) */
			engine_timer_add(w, &t->pump_tm, CN_READ_RECHECK_MS);
			goto out;
		}
		if (res == SV_FULL) {
			/* the node's send queue is full: again in a moment */
			engine_timer_add(w, &t->pump_tm, 1);
			goto out;
		}
		if (res == SV_PACED) {
			t->paced_ns = cn_sv_now(t) + (uint64_t)cn->test_delay_ms * 1000000;
			engine_timer_add(w, &t->pump_tm, cn->test_delay_ms);
			goto out;
		}
	}
	engine_timer_add(w, &t->pump_tm, 0); /* more: at the next pass */
out:
	t->pumping = 0;
}

/* readq's wake-up, on worker widx: reads came back. */
static void reads_back(void *arg, unsigned int widx)
{
	struct content_node *cn = arg;

	if (widx < cn->nwtab)
		kick(cn->wtab[widx]);
}

/* readq's stop: a read that will never be answered. */
static void read_gone(void *arg, struct cn_read *rd)
{
	struct content_node *cn = arg;

	quic_node_wbuf_free(cn->quic, rd->w);
	free(rd);
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
 * status view's copy of the peers, stalled connections closed; on worker 0 the
 * node's upload history and the automatic cap too. */
static void tick(struct engine_worker *w, void *arg)
{
	struct cn_wtab *t = arg;
	struct content_node *cn = t->cn;
	uint64_t now = cn_sv_now(t), sec = now / 1000000000ull;
	unsigned int n;

	cn_sched_trim(t->sched, now, CN_SCHED_IDLE_FREE_S * 1000000000ull);
	if (t->reads_out)
		kick(t); /* a read back whose wake-up could not be posted */
	n = cn_sched_peers(t->sched, now, t->snap, CN_SCHED_PEERS);
	cn_serve_held_tick(t, n);
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
	engine_timer_init(&t->pump_tm, pump_later, t);
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
	cn_sched_streams(t->sched, p->conn, -1, cn_sv_now(t));
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
 * NULL when the table is full of live streams, or the scheduler has no
 * entry free to count this connection's streams. */
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
	/* counted against the connection first: no room to track it (every
	 * scheduler entry has streams open or requests queued) is busy */
	if (!cn_sched_streams(t->sched, conn, 1, cn_sv_now(t)))
		return NULL;
	if (t->free_head) {
		ix = t->free_head;
		p = &t->e[ix - 1];
		t->free_head = p->hnext;
	} else {
		ix = ++t->fresh;
		p = &t->e[ix - 1];
	}
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
	if (atomic_load(&cn->serving) && cn_sched_queued(t->sched) + t->nheld < CONTENT_SERVE_QUEUE)
		rc = cn_sched_push(t->sched, conn, class_of(&r->from), &r->from, &it, cn_sv_now(t));
	if (rc == 0) {
		kick(t);
		return;
	}
	{
		static const uint8_t busy[CN_ANS_HEAD] = {CONTENT_ST_BUSY, 0, 0, 0, 0};

		if (r->tab)
			atomic_fetch_sub(&p->st, 1); /* never queued: nobody else counts it */
		if (len)
			atomic_fetch_add(&cn->serve_busy, 1);
		if (len && cn_serve_peer_full(cn, t, conn)) {
			/* a peer that holds its limit of answers and still
			 * asks: its stream is reset (which frees what it held
			 * there), not given more to hold, five bytes a request */
			quic_node_stream_reset(cn->quic, conn, sid, CONTENT_ST_BUSY);
			return;
		}
		/* Five bytes (none for a lone FIN: never refused for want
		 * of room). */
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
		if (cn_sched_streams(t->sched, conn, 0, cn_sv_now(t)) > CONTENT_SERVE_PEER_STREAMS) {
			cn_serve_fault(cn, t, conn, CN_FAULT_STREAMS);
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
			cn_serve_fault(cn, t, conn, CN_FAULT_BAD);
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
	while (t->ready) {
		struct cn_read *rd = t->ready;

		t->ready = rd->next;
		read_drop(t, rd);
	}
	while (t->held) {
		struct cn_read *rd = t->held;

		t->held = rd->next;
		free(rd);
	}
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
	/* the first nsnap entries are written whole (cn_sched_peers, then
	 * copied) before anything reads them: malloc keeps the rest of the
	 * pages out of the RSS */
	t->snap = malloc(CN_SCHED_PEERS * sizeof(*t->snap));
	t->snap_pub = malloc(CN_SCHED_PEERS * sizeof(*t->snap_pub));
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
	/* reader threads for chunk reads, except on the simulated network
	 * (its one thread and virtual clock run everything, in order) */
	if (opts->read_threads >= 0 && nw && engine_mode(cn->eng) != IO_MODE_MEM) {
		struct cn_readq_opts ro = {
			.threads = opts->read_threads ? (unsigned int)opts->read_threads
						      : CN_READ_THREADS,
			.workers = nw,
			.eng = cn->eng,
			.cs = cn->cs,
			.done = reads_back,
			.free_job = read_gone,
			.arg = cn,
		};

		rc = cn_readq_new(&cn->rq, &ro);
		if (rc)
			return rc;
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
	/* the readers' last reads, and those never read, given back */
	cn_readq_free(cn->rq);
	cn->rq = NULL;
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
