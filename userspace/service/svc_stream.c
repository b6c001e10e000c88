// SPDX-License-Identifier: MIT
/*
 * Service streams on the fabric's owner (docs/SERVICE.md, "Streams"),
 * both sides of stream type SVC_NODE_ST_STREAM:
 *
 *   caller:   local socket (fd) <-> STREAM_DATA frames on a pooled QUIC
 *             connection to the provider
 *   provider: STREAM_DATA frames <-> the in-process echo, or the backend's
 *             upgraded HTTP/1.1 connection (backend_stream.c)
 *
 * Every local socket is non-blocking and sits in this part's own epoll set
 * (sn->strms->ep), which the owner's loop watches (svc_backend_watch):
 * no thread per stream. Flow control: a stream's local end is read only
 * while fewer than SVCN_STRM_WOUT of its QUIC writes wait for the send
 * buffer (writable events count them back); the bytes the peer sends are
 * held for a local end that is slow at most svc.stream_buffer, past it the
 * stream ends with slow_reader. Every stream has an idle deadline; limits
 * and close reasons are in weft/svc_node.h (enum svc_stream_reason).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svc_calls_int.h"
#include "svc_dir_int.h"
#include "svc_ops_int.h"
#include "svc_stream_int.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/svc_msg.h"
#include "weft/svc_router.h"
#include "weft/util.h"

enum { ROLE_CALLER = 1, ROLE_PROVIDER };
enum { LOCAL_NONE = 0, LOCAL_FD, LOCAL_ECHO, LOCAL_BACKEND };
enum { BK_CONNECTING = 1, BK_WRITING, BK_HEAD, BK_OPEN };
enum { W_WAITING = 0, W_DONE, W_ABANDONED };

struct sq_chunk {
	struct sq_chunk *next;
	size_t len, off;
	uint8_t data[];
};

/* A caller's wait for the provider's answer, and the handle it gets. */
struct svc_node_stream {
	struct svc_node *sn;
	sem_t sem;
	atomic_int state;
	atomic_int refs;		  /* the caller, the stream */
	int rc;				  /* transport error (-errno) or 0 */
	struct svc_node_stream_info info; /* refusal */
	struct svcn_strm *s;		  /* the owner's: NULL once the stream is gone */
	uint8_t *head;			  /* WebSocket: the backend's response head */
	size_t head_len;
};

struct svcn_strm {
	struct svcn_strm *next, *prev; /* strms->all */
	struct svcn_strm *hnext;       /* strms->tab, once the QUIC stream is known */
	struct svcn_strm *znext;       /* strms->zombies */
	struct svc_node *sn;
	uint64_t id;
	int role, local;
	int zombie, hashed;
	/* QUIC side */
	uint64_t conn, token;
	int64_t sid;
	int opened, counted; /* counted: in the pool's svcn_peer.streams */
	struct svc_msg_dec dec;
	unsigned int wout; /* writes waiting for the send buffer */
	uint8_t *hold;	   /* a frame QUIC refused (backpressure): sent first */
	size_t hold_len;
	int hold_fin;
	int accepted;	    /* caller: the provider said yes; provider: we did */
	uint64_t unacked;   /* bytes sent the peer has not credited yet */
	uint64_t delivered; /* bytes taken by our local end, not credited yet */
	int fin_tx;	    /* our QUIC FIN went */
	int fin_rx;	    /* the peer's came */
	int settled;	    /* strm_settle ran */
	int end_rx, end_tx; /* STREAM_END received / sent */
	int draining;	    /* ended with an error: the peer's bytes are dropped */
	/* provider */
	struct svc_peer peer;
	struct svc_ticket t;
	int ticketed;
	char service[SVC_NAME_MAX + 1];
	char method[SVC_METHOD_MAX + 1];
	/* local end */
	int fd;
	uint32_t fd_ev; /* interest registered (0: not in the set) */
	int fd_rd_eof, fd_wr_shut;
	int bk; /* BK_* */
	uint8_t *hs;
	size_t hs_len, hs_off;
	void (*release)(void *arg, int fd, const struct svc_node_stream_info *i);
	void *rel_arg;
	struct svc_node_stream *w; /* caller: its wait and handle */
	/* bytes towards the local end (or, for echo, back out) */
	struct sq_chunk *qh, *qt;
	size_t qbytes;
	/* limits */
	uint64_t idle_ns, last_ns, deadline_ns, retry_ns;
	uint64_t bytes_rx, bytes_tx;
	int cls;
	uint32_t reason;
	/* WebSocket (SVC_NODE_ST_WS) */
	int ws, ws_head; /* ws_head: the caller has the backend's head */
	uint8_t *open_payload; /* caller: STREAM_OPEN's payload (the request head) */
	size_t open_len;
	struct svcn_ws ws_tx, ws_rx; /* caller: client->backend, backend->client */
};

struct svcn_strms {
	int ep;
	struct svcn_strm *all;
	struct svcn_strm *tab[SVCN_HASH];
	struct svcn_strm *zombies;
	unsigned int n;
	uint64_t next_id;
	uint64_t opened, refused, bytes_in, bytes_out;
	uint64_t ended[SVC_STREAM_R__COUNT];
	struct svc_node_stream_info done[SVC_NODE_STREAM_ENDED];
	unsigned int done_next;
	uint8_t frame[SVC_MSG_HDR_LEN + SVCN_STRM_FRAME];
};

static const char *const reason_names[SVC_STREAM_R__COUNT] = {
    "ok",     "idle",	  "bytes",    "slow_reader", "streams", "backend",
    "reset", "protocol", "refused", "shutdown",    "local", "ws_message", "ws_protocol"};

const char *svc_stream_reason_name(unsigned int r)
{
	return r < SVC_STREAM_R__COUNT ? reason_names[r] : "?";
}

static uint64_t max_bytes(const struct svc_node *sn)
{
	return sn->cfg.svc_stream_max_bytes ? sn->cfg.svc_stream_max_bytes
					    : SVC_NODE_STREAM_MAX_BYTES;
}

/* What a peer may have in flight is the window; the buffer holds at
 * least that (and a frame over it: a credit may cross a frame). */
static size_t buf_cap(const struct svc_node *sn)
{
	size_t b = sn->cfg.svc_stream_buffer ? sn->cfg.svc_stream_buffer : SVC_NODE_STREAM_BUFFER;

	return b < SVCN_STRM_WINDOW + SVCN_STRM_FRAME ? SVCN_STRM_WINDOW + SVCN_STRM_FRAME : b;
}

static uint64_t ws_max(const struct svc_node *sn)
{
	return sn->cfg.svc_ws_max_message ? sn->cfg.svc_ws_max_message : SVC_NODE_WS_MAX_MESSAGE;
}

static uint64_t idle_ms_of(const struct svc_node *sn, uint32_t asked)
{
	uint32_t mine = sn->cfg.svc_stream_idle_ms ? sn->cfg.svc_stream_idle_ms
						   : SVC_NODE_STREAM_IDLE_MS;

	if (asked && asked < mine)
		mine = asked;
	return mine > SVC_NODE_STREAM_MAX_IDLE_MS ? SVC_NODE_STREAM_MAX_IDLE_MS : mine;
}

static void due(struct svcn_strm *s, uint64_t at)
{
	if (at < s->sn->due_ns)
		s->sn->due_ns = at;
}

static void touch(struct svcn_strm *s)
{
	s->last_ns = svcn_now_ns();
	if (s->accepted && s->idle_ns)
		due(s, s->last_ns + s->idle_ns);
}

/* ---------------------------------------------------------- the caller's wait */

static void w_put(struct svc_node_stream *w)
{
	if (w && atomic_fetch_sub(&w->refs, 1) == 1) {
		free(w->head);
		sem_destroy(&w->sem);
		free(w);
	}
}

static void strm_fail(struct svcn_strm *s, int cls, uint32_t reason);

/* Tell the waiting caller (once): 0 told, -1 it left (the stream goes). */
static int w_tell(struct svcn_strm *s, int rc, int cls, uint32_t reason)
{
	struct svc_node_stream *w = s->w;
	int expect = W_WAITING;

	if (!w || atomic_load(&w->state) != W_WAITING)
		return 0;
	w->rc = rc;
	w->info.id = s->id;
	w->info.err = cls;
	w->info.reason = reason;
	if (atomic_compare_exchange_strong(&w->state, &expect, W_DONE)) {
		sem_post(&w->sem);
		return 0;
	}
	return -1;
}

/* ----------------------------------------------------------------- tables */

static unsigned int hb(uint64_t conn, int64_t sid)
{
	return svcn_hash(conn, sid);
}

static struct svcn_strm *by_stream(struct svc_node *sn, uint64_t conn, int64_t sid)
{
	for (struct svcn_strm *s = sn->strms->tab[hb(conn, sid)]; s; s = s->hnext)
		if (s->conn == conn && s->sid == sid)
			return s;
	return NULL;
}

static void hash_in(struct svcn_strm *s)
{
	struct svcn_strms *ss = s->sn->strms;

	s->hnext = ss->tab[hb(s->conn, s->sid)];
	ss->tab[hb(s->conn, s->sid)] = s;
	s->hashed = 1;
}

static void hash_out(struct svcn_strm *s)
{
	struct svcn_strm **pp;

	if (!s->hashed)
		return;
	for (pp = &s->sn->strms->tab[hb(s->conn, s->sid)]; *pp; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			break;
		}
	s->hashed = 0;
}

static struct svcn_strm *strm_new(struct svc_node *sn, int role)
{
	struct svcn_strms *ss = sn->strms;
	struct svcn_strm *s;

	if (ss->n >= SVC_NODE_MAX_STREAMS)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->sn = sn;
	s->role = role;
	s->fd = -1;
	s->id = ++ss->next_id;
	s->last_ns = svcn_now_ns();
	svc_msg_dec_init(&s->dec, svcn_max_payload(sn));
	s->next = ss->all;
	if (ss->all)
		ss->all->prev = s;
	ss->all = s;
	ss->n++;
	return s;
}

/* -------------------------------------------------------------- the queue */

static int q_push(struct svcn_strm *s, const uint8_t *p, size_t len)
{
	struct sq_chunk *c;

	if (!len)
		return 0;
	if (s->qbytes + len > buf_cap(s->sn))
		return -ENOBUFS;
	c = malloc(sizeof(*c) + len);
	if (!c)
		return -ENOMEM;
	c->next = NULL;
	c->len = len;
	c->off = 0;
	memcpy(c->data, p, len);
	if (s->qt)
		s->qt->next = c;
	else
		s->qh = c;
	s->qt = c;
	s->qbytes += len;
	return 0;
}

static void q_take(struct svcn_strm *s, size_t n)
{
	struct sq_chunk *c = s->qh;

	c->off += n;
	s->qbytes -= n;
	if (c->off == c->len) {
		s->qh = c->next;
		if (!s->qh)
			s->qt = NULL;
		free(c);
	}
}

static void q_clear(struct svcn_strm *s)
{
	while (s->qh) {
		struct sq_chunk *c = s->qh;

		s->qh = c->next;
		free(c);
	}
	s->qt = NULL;
	s->qbytes = 0;
}

/* ------------------------------------------------------------- QUIC side */

/* Send one frame: 0 sent or kept in hold (retried; nothing else goes
 * before it), < 0 failed (nothing more can go on the stream). */
static int send_frame(struct svcn_strm *s, int type, int cls, uint32_t status, const uint8_t *p,
		      size_t len, int fin)
{
	struct svc_node *sn = s->sn;
	uint8_t *f = sn->strms->frame;
	struct svc_msg m = {.type = (uint8_t)type, .err = (uint8_t)cls, .status = status};
	size_t hl;
	int e;

	m.payload = p;
	m.payload_len = len;
	if (svc_msg_encode_head(&m, f, SVC_MSG_HDR_LEN, &hl))
		return -EINVAL;
	if (len && p != f + hl)
		memmove(f + hl, p, len);
	e = quic_node_write(sn->quic, s->conn, s->sid, f, hl + len, fin);
	if (!e) {
		s->wout++;
		return 0;
	}
	if (e != -ENOBUFS && e != -EAGAIN)
		return e;
	s->hold = malloc(hl + len);
	if (!s->hold)
		return -ENOMEM;
	memcpy(s->hold, f, hl + len);
	s->hold_len = hl + len;
	s->hold_fin = fin;
	s->retry_ns = svcn_now_ns() + 2000000ull;
	due(s, s->retry_ns);
	return 0;
}

/* The held frame again: 0 gone (or none), -EAGAIN still held. */
static int send_hold(struct svcn_strm *s)
{
	int e;

	if (!s->hold)
		return 0;
	e = quic_node_write(s->sn->quic, s->conn, s->sid, s->hold, s->hold_len, s->hold_fin);
	if (e == -ENOBUFS || e == -EAGAIN) {
		s->retry_ns = svcn_now_ns() + 2000000ull;
		due(s, s->retry_ns);
		return -EAGAIN;
	}
	free(s->hold);
	s->hold = NULL;
	if (!e)
		s->wout++;
	return 0;
}

/* May the local end give more (window, QUIC writes, no held frame)? */
static int can_send(const struct svcn_strm *s)
{
	return !s->hold && s->wout < SVCN_STRM_WOUT && s->unacked < SVCN_STRM_WINDOW;
}

static int send_data(struct svcn_strm *s, const uint8_t *p, size_t len)
{
	s->bytes_tx += len;
	s->unacked += len;
	s->sn->strms->bytes_out += s->role == ROLE_CALLER ? len : 0;
	if (s->bytes_tx > max_bytes(s->sn)) {
		strm_fail(s, SVC_ERR_TOO_LARGE, SVC_STREAM_R_BYTES);
		return -1;
	}
	touch(s);
	if (send_frame(s, SVC_MSG_STREAM_DATA, SVC_OK, 0, p, len, 0)) {
		strm_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
		return -1;
	}
	return 0;
}

/* Our STREAM_END: the half-close (ok: credits may still follow, the FIN
 * goes once both ends are said) or the abort (an error: with the FIN). */
static void send_end(struct svcn_strm *s, int cls, uint32_t reason)
{
	if (s->end_tx || !s->opened)
		return;
	s->end_tx = 1;
	if (cls != SVC_OK)
		s->fin_tx = 1;
	if (send_frame(s, SVC_MSG_STREAM_END, cls, reason, NULL, 0, cls != SVC_OK))
		quic_node_stream_reset(s->sn->quic, s->conn, s->sid, 0x3);
}

static void send_fin(struct svcn_strm *s)
{
	static const uint8_t none;

	if (s->fin_tx || !s->opened)
		return;
	s->fin_tx = 1;
	quic_node_write(s->sn->quic, s->conn, s->sid, &none, 0, 1);
}

/* The local end took n more bytes: a credit per quantum to the peer. */
static void delivered(struct svcn_strm *s, size_t n)
{
	s->delivered += n;
	/* none once the peer ended: it sends nothing more, and it may be gone */
	while (s->delivered >= SVCN_STRM_QUANTUM && !s->fin_tx && !s->end_rx && s->opened) {
		s->delivered -= SVCN_STRM_QUANTUM;
		if (send_frame(s, SVC_MSG_STREAM_DATA, SVC_OK, 0, NULL, 0, 0))
			return;
	}
}

/* ----------------------------------------------------------- the end of it */

static void fd_set_interest(struct svcn_strm *s);

static void release_local(struct svcn_strm *s)
{
	struct svc_node_stream_info info = {0};

	if (s->fd < 0)
		return;
	if (s->fd_ev)
		epoll_ctl(s->sn->strms->ep, EPOLL_CTL_DEL, s->fd, NULL);
	s->fd_ev = 0;
	if (s->release) {
		info.id = s->id;
		info.err = s->cls;
		info.reason = s->reason;
		info.ended = 1;
		info.bytes_in = s->bytes_rx;
		info.bytes_out = s->bytes_tx;
		s->release(s->rel_arg, s->fd, &info);
		s->release = NULL;
	} else {
		close(s->fd);
	}
	s->fd = -1;
}

/* Off every table; its memory goes at the next turn (events of this batch
 * may still name it). */
/* The stream is over for everyone but its QUIC stream: the router's slot,
 * the pool's count, the record (GET /v1/svc/stream/ID), the log line and
 * the local end go now, once. */
static void strm_settle(struct svcn_strm *s)
{
	struct svcn_strms *ss = s->sn->strms;
	struct svc_node_stream_info *d;

	if (s->settled)
		return;
	s->settled = 1;
	if (s->ticketed) {
		svc_router_done(s->sn->router, &s->t, s->cls, svcn_now_ns());
		s->ticketed = 0;
	}
	if (s->counted) {
		struct svcn_peer *p = svcn_peer_by_conn(s->sn, s->conn);

		if (p && p->streams) {
			p->streams--;
			p->full = 0;
		}
		s->counted = 0;
	}
	d = &ss->done[ss->done_next++ % SVC_NODE_STREAM_ENDED];
	memset(d, 0, sizeof(*d));
	d->id = s->id;
	d->err = s->cls;
	d->reason = s->reason;
	d->ended = 1;
	d->bytes_in = s->role == ROLE_CALLER ? s->bytes_rx : s->bytes_tx;
	d->bytes_out = s->role == ROLE_CALLER ? s->bytes_tx : s->bytes_rx;
	memcpy(d->peer, s->peer.key, IDENTITY_PK_LEN);
	if (s->reason < SVC_STREAM_R__COUNT)
		ss->ended[s->reason]++;
	if (s->reason != SVC_STREAM_R_OK || log_get_level() >= LOG_LVL_DEBUG) {
		char kp[17];

		util_hex(kp, s->peer.key, 8);
		log_msg(s->reason == SVC_STREAM_R_OK ? LOG_LVL_DEBUG : LOG_LVL_INFO, "svc",
			"stream %s service=%s method=%s peer=%s... in=%llu out=%llu end=%s "
			"reason=%s",
			s->role == ROLE_CALLER ? "out" : "in", s->service, s->method, kp,
			(unsigned long long)s->bytes_rx, (unsigned long long)s->bytes_tx,
			svc_err_name((unsigned int)s->cls), svc_stream_reason_name(s->reason));
	}
	release_local(s); /* after the record: a client that sees EOF finds it */
}

static void strm_free(struct svcn_strm *s)
{
	struct svcn_strms *ss = s->sn->strms;

	if (s->zombie)
		return;
	strm_settle(s);
	if (s->w) {
		s->w->s = NULL;
		w_put(s->w);
		s->w = NULL;
	}
	hash_out(s);
	if (s->prev)
		s->prev->next = s->next;
	else
		ss->all = s->next;
	if (s->next)
		s->next->prev = s->prev;
	ss->n--;
	q_clear(s);
	free(s->hold);
	s->hold = NULL;
	free(s->hs);
	s->hs = NULL;
	free(s->open_payload);
	s->open_payload = NULL;
	svc_msg_dec_free(&s->dec);
	s->zombie = 1;
	s->znext = ss->zombies;
	ss->zombies = s;
}

static void zombies_free(struct svcn_strms *ss)
{
	while (ss->zombies) {
		struct svcn_strm *s = ss->zombies;

		ss->zombies = s->znext;
		free(s);
	}
}

/* End s with an error: its STREAM_END says why, the local end goes now,
 * and the peer's bytes are dropped until its end (or the drain time). */
/* A WebSocket's local end hears why it ends: a Close frame, best effort
 * (a client from the gateway; a backend from the provider, masked). */
static void ws_close_local(struct svcn_strm *s, uint32_t reason)
{
	uint8_t f[8];
	unsigned int code = reason == SVC_STREAM_R_WS_MESSAGE || reason == SVC_STREAM_R_BYTES ? 1009
			    : reason == SVC_STREAM_R_WS_PROTOCOL || reason == SVC_STREAM_R_PROTOCOL
				? 1002
			    : reason == SVC_STREAM_R_IDLE || reason == SVC_STREAM_R_SHUTDOWN ? 1001
											     : 1011;

	if (!s->ws || s->fd < 0 || (s->bk && s->bk != BK_OPEN) || (s->role == ROLE_CALLER && !s->release))
		return;
	(void)!send(s->fd, f, svcn_ws_close_frame(f, code, s->role == ROLE_PROVIDER),
		    MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void strm_fail(struct svcn_strm *s, int cls, uint32_t reason)
{
	if (s->zombie || s->draining)
		return;
	s->cls = cls;
	s->reason = reason;
	ws_close_local(s, reason);
	if (s->role == ROLE_CALLER && !s->accepted)
		w_tell(s, 0, cls, reason);
	free(s->hold);
	s->hold = NULL;
	q_clear(s);
	send_end(s, cls, reason);
	strm_settle(s); /* the slot is free now, not after the drain */
	if (s->end_rx || !s->opened || !s->hashed) {
		if (s->opened && !s->end_rx)
			quic_node_stream_reset(s->sn->quic, s->conn, s->sid, 0x3);
		strm_free(s);
		return;
	}
	s->draining = 1;
	s->deadline_ns = svcn_now_ns() + SVCN_STRM_DRAIN_MS * 1000000ull;
	due(s, s->deadline_ns);
}

/* Both ends said so and every byte is out: done. */
static void strm_check_done(struct svcn_strm *s)
{
	if (s->zombie || s->draining || !s->end_rx || !s->end_tx || s->hold || s->qbytes)
		return;
	if (s->fd >= 0 && !s->fd_wr_shut)
		return;
	s->cls = SVC_OK;
	s->reason = SVC_STREAM_R_OK;
	send_fin(s);
	strm_settle(s);
	if (s->fin_rx || !s->hashed) {
		strm_free(s);
		return;
	}
	/* the peer's FIN is on its way, maybe behind its last credits */
	s->draining = 1;
	s->deadline_ns = svcn_now_ns() + SVCN_STRM_DRAIN_MS * 1000000ull;
	due(s, s->deadline_ns);
}

/* ------------------------------------------------------------ local ends */

/* Move bytes: the queue to the local end, the local end to QUIC. */
static void pump(struct svcn_strm *s);

static void fd_set_interest(struct svcn_strm *s)
{
	struct epoll_event e = {.data.ptr = s};
	uint32_t ev = 0;

	if (s->fd < 0 || s->zombie)
		return;
	if (s->bk == BK_CONNECTING || s->bk == BK_WRITING) {
		ev = EPOLLOUT;
	} else if (s->bk == BK_HEAD) {
		ev = EPOLLIN;
	} else {
		if (!s->fd_rd_eof && !s->end_tx && can_send(s))
			ev |= EPOLLIN | EPOLLRDHUP;
		if (s->qbytes && !s->fd_wr_shut)
			ev |= EPOLLOUT;
	}
	if (ev == s->fd_ev)
		return;
	e.events = ev;
	if (!s->fd_ev)
		epoll_ctl(s->sn->strms->ep, EPOLL_CTL_ADD, s->fd, &e);
	else if (!ev)
		epoll_ctl(s->sn->strms->ep, EPOLL_CTL_DEL, s->fd, NULL);
	else
		epoll_ctl(s->sn->strms->ep, EPOLL_CTL_MOD, s->fd, &e);
	s->fd_ev = ev;
}

/* The queue into the local socket. */
static void fd_write(struct svcn_strm *s)
{
	while (s->qh) {
		struct sq_chunk *c = s->qh;
		ssize_t n = send(s->fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			strm_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_LOCAL);
			return;
		}
		q_take(s, (size_t)n);
		delivered(s, (size_t)n);
		touch(s);
	}
	if (s->end_rx && !s->fd_wr_shut) {
		shutdown(s->fd, SHUT_WR);
		s->fd_wr_shut = 1;
	}
}

/* The local socket into STREAM_DATA frames, while QUIC takes them. */
static void fd_read(struct svcn_strm *s)
{
	uint8_t *buf = s->sn->strms->frame + SVC_MSG_HDR_LEN;

	while (!s->zombie && !s->draining && !s->fd_rd_eof && !s->end_tx && can_send(s)) {
		ssize_t n = recv(s->fd, buf, SVCN_STRM_FRAME, 0);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			strm_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_LOCAL);
			return;
		}
		if (n == 0) {
			s->fd_rd_eof = 1;
			send_end(s, SVC_OK, SVC_STREAM_R_OK); /* the half-close */
			return;
		}
		if (s->ws && s->role == ROLE_CALLER) {
			int c = svcn_ws_feed(&s->ws_tx, buf, (size_t)n, 1, ws_max(s->sn));

			if (c) {
				strm_fail(s, c == SVCN_WS_TOO_BIG ? SVC_ERR_TOO_LARGE : SVC_ERR_BAD_REQUEST,
					  c == SVCN_WS_TOO_BIG ? SVC_STREAM_R_WS_MESSAGE
							       : SVC_STREAM_R_WS_PROTOCOL);
				return;
			}
		}
		if (send_data(s, buf, (size_t)n) < 0 && s->zombie)
			return;
	}
}

/* Backend handshake steps (provider). */
static void bk_event(struct svcn_strm *s, uint32_t ev)
{
	if (s->bk == BK_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
			strm_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
			return;
		}
		s->bk = BK_WRITING;
	}
	if (s->bk == BK_WRITING) {
		ssize_t n = send(s->fd, s->hs + s->hs_off, s->hs_len - s->hs_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				strm_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
			return;
		}
		s->hs_off += (size_t)n;
		if (s->hs_off < s->hs_len)
			return;
		free(s->hs);
		s->hs = malloc(SVCN_STRM_HEAD_MAX);
		if (!s->hs) {
			strm_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
			return;
		}
		s->hs_len = 0;
		s->bk = BK_HEAD;
		return;
	}
	if (s->bk == BK_HEAD && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		ssize_t n = recv(s->fd, s->hs + s->hs_len, SVCN_STRM_HEAD_MAX - s->hs_len, 0);
		int status = 0;
		long h;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			strm_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
			return;
		}
		s->hs_len += (size_t)n;
		h = svcn_bstream_head(s->hs, s->hs_len, &status);
		if (h == 0)
			return;
		if (h > 0 && s->ws) {
			/* the client hears the backend: its head, whatever it says */
			log_debug("svc", "ws service=%s: backend answered %d", s->service, status);
			s->bk = BK_OPEN;
			s->accepted = 1;
			s->sn->strms->opened++;
			if (send_frame(s, SVC_MSG_STREAM_DATA, SVC_OK, 0, NULL, 0, 0)) {
				strm_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
				return;
			}
			if (send_data(s, s->hs, s->hs_len) < 0)
				return;
			free(s->hs);
			s->hs = NULL;
			touch(s);
			return;
		}
		if (h < 0 || status != 101) {
			log_info("svc", "stream service=%s: backend answered %s %d", s->service,
				 h < 0 ? "a malformed head" : "status", status);
			strm_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
			return;
		}
		s->bk = BK_OPEN;
		s->accepted = 1;
		s->sn->strms->opened++;
		if (send_frame(s, SVC_MSG_STREAM_DATA, SVC_OK, 0, NULL, 0, 0)) {
			strm_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
			return;
		}
		if ((size_t)h < s->hs_len && send_data(s, s->hs + h, s->hs_len - (size_t)h) < 0)
			return;
		free(s->hs);
		s->hs = NULL;
		touch(s);
	}
}

static void fd_event(struct svcn_strm *s, uint32_t ev)
{
	if (s->zombie || s->draining)
		return;
	if (s->bk && s->bk != BK_OPEN) {
		bk_event(s, ev);
	} else {
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			fd_write(s);
		if (!s->zombie && !s->draining && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
			fd_read(s);
	}
	if (!s->zombie) {
		strm_check_done(s);
		if (!s->zombie)
			fd_set_interest(s);
	}
}

/* The owner's loop found the epoll set readable. */
static void strms_ready(void *ctx)
{
	struct svc_node *sn = ctx;
	struct svcn_strms *ss = sn->strms;
	struct epoll_event evs[64];
	int n;

	zombies_free(ss);
	n = epoll_wait(ss->ep, evs, 64, 0);
	for (int i = 0; i < n; i++)
		fd_event(evs[i].data.ptr, evs[i].events);
	zombies_free(ss);
}

/* echo: the queue back out; fd: the queue into the socket, the socket in. */
static void pump(struct svcn_strm *s)
{
	if (s->zombie || s->draining)
		return;
	if (send_hold(s))
		return;
	if (s->local == LOCAL_ECHO) {
		while (s->qh && !s->end_tx && can_send(s)) {
			struct sq_chunk *c = s->qh;
			size_t n = c->len - c->off;

			if (n > SVCN_STRM_FRAME)
				n = SVCN_STRM_FRAME;
			memcpy(s->sn->strms->frame + SVC_MSG_HDR_LEN, c->data + c->off, n);
			q_take(s, n);
			if (send_data(s, s->sn->strms->frame + SVC_MSG_HDR_LEN, n) < 0)
				return;
			delivered(s, n);
		}
		if (!s->qh && !s->hold && s->end_rx && !s->end_tx)
			send_end(s, SVC_OK, SVC_STREAM_R_OK);
	} else if (s->fd >= 0 && (!s->bk || s->bk == BK_OPEN)) {
		fd_write(s);
		if (!s->zombie && !s->draining)
			fd_read(s);
	}
	if (!s->zombie) {
		strm_check_done(s);
		if (!s->zombie)
			fd_set_interest(s);
	}
}

/* ---------------------------------------------------- frames from the peer */

/* A WebSocket's STREAM_OPEN payload: one HTTP/1.1 GET head, ending at
 * its blank line, no NUL or bare LF, within the head cap. The backend
 * judges the rest (its Origin rules, the key); we only make sure it is
 * one request and nothing smuggled after it. */
static int ws_request_ok(const uint8_t *p, size_t len)
{
	if (len < 18 || len > SVCN_STRM_HEAD_MAX || memcmp(p, "GET /", 5) ||
	    memcmp(p + len - 4, "\r\n\r\n", 4))
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!p[i] || (p[i] == '\n' && (!i || p[i - 1] != '\r')))
			return 0;
		if (i + 4 < len && !memcmp(p + i, "\r\n\r\n", 4))
			return 0; /* a second head or a body */
	}
	return 1;
}

/* Provider: the STREAM_OPEN. */
static void srv_open(struct svcn_strm *s, const struct svc_msg *m)
{
	struct svc_node *sn = s->sn;
	uint32_t peer_cap = sn->cfg.svc_peer_streams ? sn->cfg.svc_peer_streams
						     : SVC_NODE_PEER_STREAMS;
	uint32_t svc_cap = sn->cfg.svc_service_streams ? sn->cfg.svc_service_streams
						       : SVC_NODE_SERVICE_STREAMS;
	unsigned int np = 0, nsv = 0;
	int cls;

	snprintf(s->service, sizeof(s->service), "%.*s", (int)m->service_len, m->service);
	snprintf(s->method, sizeof(s->method), "%.*s", (int)m->method_len, m->method);
	if (m->type != SVC_MSG_STREAM_OPEN) {
		svc_router_violation(sn->router, &s->peer, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		strm_fail(s, SVC_ERR_BAD_REQUEST, SVC_STREAM_R_PROTOCOL);
		return;
	}
	cls = svc_router_admit(sn->router, &s->peer, m->service, m->service_len, m->payload_len,
			       1, svcn_now_ns(), &s->t);
	if (cls != SVC_OK) {
		sn->strms->refused++;
		strm_fail(s, cls, SVC_STREAM_R_REFUSED);
		return;
	}
	s->ticketed = 1;
	for (struct svcn_strm *o = sn->strms->all; o; o = o->next) {
		if (o == s || o->role != ROLE_PROVIDER || !o->ticketed || o->draining)
			continue;
		np += !memcmp(o->peer.key, s->peer.key, IDENTITY_PK_LEN);
		nsv += !strcmp(o->service, s->service);
	}
	if (np >= peer_cap || nsv >= svc_cap) {
		sn->strms->refused++;
		strm_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_STREAMS);
		return;
	}
	s->idle_ns = idle_ms_of(sn, m->timeout_ms) * 1000000ull;
	if (s->ws && (s->t.kind != SVC_KIND_BACKEND || !ws_request_ok(m->payload, m->payload_len))) {
		svc_router_violation(sn->router, &s->peer, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		strm_fail(s, SVC_ERR_BAD_REQUEST, SVC_STREAM_R_WS_PROTOCOL);
		return;
	}
	if (s->t.kind == SVC_KIND_BACKEND) {
		char req[1024];
		size_t rl = s->ws ? m->payload_len
				  : svcn_bstream_request(req, sizeof(req), s->service, s->method,
							 s->peer.key);
		int fd = rl ? svcn_bstream_connect(s->t.backend) : -EINVAL;

		if (fd < 0 || !(s->hs = malloc(rl))) {
			if (fd >= 0)
				close(fd);
			strm_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
			return;
		}
		memcpy(s->hs, s->ws ? m->payload : (const uint8_t *)req, rl);
		s->hs_len = rl;
		s->fd = fd;
		s->local = LOCAL_BACKEND;
		s->bk = BK_CONNECTING;
		s->deadline_ns = svcn_now_ns() + SVCN_STRM_BACKEND_MS * 1000000ull;
		due(s, s->deadline_ns);
		fd_set_interest(s);
	} else if (!strcmp(s->service, "echo")) {
		s->local = LOCAL_ECHO;
		s->accepted = 1;
		sn->strms->opened++;
		if (send_frame(s, SVC_MSG_STREAM_DATA, SVC_OK, 0, NULL, 0, 0)) {
			strm_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
			return;
		}
		touch(s);
	} else {
		strm_fail(s, SVC_ERR_BAD_REQUEST, SVC_STREAM_R_REFUSED); /* no stream handler */
		return;
	}
	if (!s->ws && m->payload_len && q_push(s, m->payload, m->payload_len))
		strm_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_SLOW);
}

/* The caller of a WebSocket: the backend's response head out of the
 * queue, to its waiter (the gateway answers its client with it); what
 * follows it is frames, checked from here on. */
static void ws_take_head(struct svcn_strm *s)
{
	uint8_t buf[SVCN_STRM_HEAD_MAX];
	size_t n = 0, end = 0;
	int status;
	long h;

	for (struct sq_chunk *c = s->qh; c && n < sizeof(buf); c = c->next) {
		size_t k = c->len - c->off;

		if (k > sizeof(buf) - n)
			k = sizeof(buf) - n;
		memcpy(buf + n, c->data + c->off, k);
		n += k;
	}
	h = svcn_bstream_head(buf, n, &status);
	if (h == 0)
		return;
	if (h < 0) {
		strm_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
		return;
	}
	end = (size_t)h;
	if (s->w && !(s->w->head = malloc(end))) {
		strm_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
		return;
	}
	if (s->w) {
		memcpy(s->w->head, buf, end);
		s->w->head_len = end;
	}
	while (end) {
		size_t k = s->qh->len - s->qh->off;

		if (k > end)
			k = end;
		q_take(s, k);
		end -= k;
	}
	s->ws_head = 1;
	/* frames that came with the head */
	for (struct sq_chunk *c = s->qh; c; c = c->next) {
		int e = svcn_ws_feed(&s->ws_rx, c->data + c->off, c->len - c->off, 0, ws_max(s->sn));

		if (e) {
			strm_fail(s, e == SVCN_WS_TOO_BIG ? SVC_ERR_TOO_LARGE : SVC_ERR_BAD_REQUEST,
				  e == SVCN_WS_TOO_BIG ? SVC_STREAM_R_WS_MESSAGE
						       : SVC_STREAM_R_WS_PROTOCOL);
			return;
		}
	}
	if (w_tell(s, 0, SVC_OK, 0)) {
		strm_fail(s, SVC_ERR_TIMEOUT, SVC_STREAM_R_LOCAL);
		return;
	}
	s->deadline_ns = svcn_now_ns() + SVCN_STRM_BACKEND_MS * 1000000ull;
	due(s, s->deadline_ns);
}

/* One decoded frame from the peer. */
static void on_msg(struct svcn_strm *s, const struct svc_msg *m)
{
	if (s->role == ROLE_PROVIDER && !s->service[0]) {
		srv_open(s, m);
		return;
	}
	if (m->type == SVC_MSG_STREAM_DATA && !m->payload_len && (s->accepted || s->role == ROLE_PROVIDER)) {
		/* a credit: the peer's local end took a quantum */
		s->unacked = s->unacked > SVCN_STRM_QUANTUM ? s->unacked - SVCN_STRM_QUANTUM : 0;
		return;
	}
	if (s->end_rx || (m->type != SVC_MSG_STREAM_DATA && m->type != SVC_MSG_STREAM_END)) {
		if (s->role == ROLE_PROVIDER)
			svc_router_violation(s->sn->router, &s->peer, SVC_ERR_BAD_REQUEST,
					     svcn_now_ns());
		strm_fail(s, SVC_ERR_BAD_REQUEST, SVC_STREAM_R_PROTOCOL);
		return;
	}
	if (s->role == ROLE_CALLER && !s->accepted) {
		if (m->type == SVC_MSG_STREAM_END) {
			s->end_rx = 1;
			s->sn->strms->refused++;
			strm_fail(s, m->err, m->status);
			return;
		}
		s->accepted = 1;
		s->sn->strms->opened++;
		if (s->ws) {
			s->deadline_ns = svcn_now_ns() + SVCN_STRM_BACKEND_MS * 1000000ull;
			due(s, s->deadline_ns);
			touch(s);
			return; /* the caller waits for the backend's head */
		}
		if (w_tell(s, 0, SVC_OK, 0)) {
			strm_fail(s, SVC_ERR_TIMEOUT, SVC_STREAM_R_LOCAL); /* the caller left */
			return;
		}
		/* the caller attaches its socket within this */
		s->deadline_ns = svcn_now_ns() + SVCN_STRM_BACKEND_MS * 1000000ull;
		due(s, s->deadline_ns);
		touch(s);
	}
	if (m->type == SVC_MSG_STREAM_END) {
		s->end_rx = 1;
		if (m->err != SVC_OK) {
			/* the peer ended with an error: ours says the same */
			s->cls = m->err;
			s->reason = m->status;
			q_clear(s);
			free(s->hold);
			s->hold = NULL;
			if (!s->end_tx)
				send_end(s, m->err, m->status);
			else
				send_fin(s);
			ws_close_local(s, m->status);
			release_local(s);
			strm_free(s);
			return;
		}
		return;
	}
	if (s->role == ROLE_PROVIDER && s->ticketed &&
	    svc_router_stream_data(s->sn->router, &s->t, m->payload_len, svcn_now_ns()) != SVC_OK) {
		strm_fail(s, SVC_ERR_TOO_LARGE, SVC_STREAM_R_PROTOCOL);
		return;
	}
	s->bytes_rx += m->payload_len;
	if (s->role == ROLE_CALLER)
		s->sn->strms->bytes_in += m->payload_len;
	if (s->bytes_rx > max_bytes(s->sn)) {
		strm_fail(s, SVC_ERR_TOO_LARGE, SVC_STREAM_R_BYTES);
		return;
	}
	touch(s);
	if (s->ws && s->role == ROLE_CALLER && s->ws_head) {
		int c = svcn_ws_feed(&s->ws_rx, m->payload, m->payload_len, 0, ws_max(s->sn));

		if (c) {
			strm_fail(s, c == SVCN_WS_TOO_BIG ? SVC_ERR_TOO_LARGE : SVC_ERR_BAD_REQUEST,
				  c == SVCN_WS_TOO_BIG ? SVC_STREAM_R_WS_MESSAGE
						       : SVC_STREAM_R_WS_PROTOCOL);
			return;
		}
	}
	if (q_push(s, m->payload, m->payload_len)) {
		strm_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_SLOW);
		return;
	}
	if (s->ws && s->role == ROLE_CALLER && !s->ws_head)
		ws_take_head(s);
}

static void on_bytes(struct svcn_strm *s, const uint8_t *data, size_t len, int fin)
{
	const struct svc_msg *m;
	size_t used;
	int r;

	if (fin)
		s->fin_rx = 1;
	if (s->draining) {
		if (fin)
			strm_free(s);
		return;
	}
	while (len && !s->zombie && !s->draining) {
		r = svc_msg_dec_feed(&s->dec, data, len, &used, &m);
		data += used;
		len -= used;
		if (r < 0) {
			if (s->role == ROLE_PROVIDER)
				svc_router_violation(s->sn->router, &s->peer,
						     r == -EMSGSIZE ? SVC_ERR_TOO_LARGE
								    : SVC_ERR_BAD_REQUEST,
						     svcn_now_ns());
			strm_fail(s, r == -EMSGSIZE ? SVC_ERR_TOO_LARGE : SVC_ERR_BAD_REQUEST,
				  SVC_STREAM_R_PROTOCOL);
			return;
		}
		if (r == 1)
			on_msg(s, m);
	}
	if (s->zombie)
		return;
	if (fin && !s->end_rx) {
		strm_fail(s, SVC_ERR_BAD_REQUEST, SVC_STREAM_R_PROTOCOL); /* FIN without END */
		return;
	}
	if (s->draining && fin) {
		strm_free(s);
		return;
	}
	pump(s);
}

/* ------------------------------------------------------------- events */

void svcn_strm_srv_data(struct svc_node *sn, int type, uint64_t conn, int64_t sid,
			const struct svc_peer *peer, const uint8_t *data, size_t len, int fin)
{
	struct svcn_strm *s = by_stream(sn, conn, sid);

	if (!s && !len)
		return; /* the FIN of a stream that ended here already */
	if (!s) {
		if (!peer || !(s = strm_new(sn, ROLE_PROVIDER))) {
			quic_node_stream_reset(sn->quic, conn, sid, 0x4);
			return;
		}
		s->conn = conn;
		s->sid = sid;
		s->opened = 1;
		s->peer = *peer;
		s->ws = type == SVC_NODE_ST_WS;
		/* the STREAM_OPEN has this long to arrive */
		s->deadline_ns = svcn_now_ns() + SVCN_STRM_BACKEND_MS * 1000000ull;
		due(s, s->deadline_ns);
		hash_in(s);
	}
	on_bytes(s, data, len, fin);
}

int svcn_strm_cl_opened(struct svc_node *sn, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct svcn_strm *s;
	struct svc_msg m = {.type = SVC_MSG_STREAM_OPEN};
	size_t hl;

	for (s = sn->strms->all; s; s = s->next)
		if (s->role == ROLE_CALLER && s->token == token && !s->opened && s->conn == conn)
			break;
	if (!s)
		return 0;
	if (err) {
		s->cls = SVC_ERR_OVERLOADED;
		s->reason = SVC_STREAM_R_RESET;
		w_tell(s, err, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
		strm_free(s);
		return 1;
	}
	s->sid = sid;
	s->opened = 1;
	hash_in(s);
	m.service = s->service;
	m.service_len = strlen(s->service);
	m.method = s->method;
	m.method_len = strlen(s->method);
	m.timeout_ms = (uint32_t)(s->idle_ns / 1000000ull);
	m.payload = s->open_payload;
	m.payload_len = s->open_len;
	if (svc_msg_encode_head(&m, sn->strms->frame, SVC_MSG_HDR_LEN + 2 * 64, &hl) ||
	    s->open_len > sizeof(sn->strms->frame) - hl ||
	    (memcpy(sn->strms->frame + hl, s->open_payload ? s->open_payload : (const uint8_t *)"",
		    s->open_len),
	     quic_node_write(sn->quic, conn, sid, sn->strms->frame, hl + s->open_len, 0))) {
		strm_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
		return 1;
	}
	s->wout++;
	return 1;
}

int svcn_strm_cl_data(struct svc_node *sn, uint64_t conn, int64_t sid, const uint8_t *data,
		      size_t len, int fin)
{
	struct svcn_strm *s = by_stream(sn, conn, sid);

	if (!s || s->role != ROLE_CALLER)
		return 0;
	on_bytes(s, data, len, fin);
	return 1;
}

void svcn_strm_closed(struct svc_node *sn, uint64_t conn, int64_t sid, int err)
{
	struct svcn_strm *s = by_stream(sn, conn, sid);

	(void)err;
	if (!s)
		return;
	if (s->draining) {
		strm_free(s);
		return;
	}
	hash_out(s); /* nothing more comes on it: no reset either */
	s->opened = 0;
	if (s->role == ROLE_CALLER && !s->accepted)
		w_tell(s, err ? err : -ECONNRESET, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
	s->end_tx = 1;
	strm_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_RESET);
}

void svcn_strm_conn_up(struct svc_node *sn, uint64_t conn, int err)
{
	for (struct svcn_strm *s = sn->strms->all, *nx; s; s = nx) {
		nx = s->next;
		if (s->role != ROLE_CALLER || s->conn != conn || s->opened || s->zombie)
			continue;
		if (err) {
			s->cls = SVC_ERR_OVERLOADED;
			s->reason = SVC_STREAM_R_RESET;
			w_tell(s, err, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
			strm_free(s);
		} else if (quic_node_stream_open(sn->quic, conn,
						 s->ws ? SVC_NODE_ST_WS : SVC_NODE_ST_STREAM, s->token)) {
			w_tell(s, -EAGAIN, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
			strm_free(s);
		}
	}
	zombies_free(sn->strms);
}

void svcn_strm_conn_closed(struct svc_node *sn, uint64_t conn)
{
	for (struct svcn_strm *s = sn->strms->all, *nx; s; s = nx) {
		nx = s->next;
		if (s->conn != conn || s->zombie)
			continue;
		if (s->role == ROLE_CALLER && !s->counted && !s->opened && !s->hashed)
			continue; /* a caller's stream not on this connection yet */
		if (s->draining) {
			strm_free(s);
			continue;
		}
		hash_out(s);
		s->opened = 0;
		s->counted = 0;
		if (s->role == ROLE_CALLER && !s->accepted)
			w_tell(s, -ECONNRESET, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
		strm_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_RESET);
	}
}

void svcn_strm_writable(struct svc_node *sn, uint64_t conn, int64_t sid)
{
	struct svcn_strm *s = by_stream(sn, conn, sid);

	if (!s)
		return;
	if (s->wout)
		s->wout--;
	pump(s);
	zombies_free(sn->strms);
}

uint64_t svcn_strm_expire(struct svc_node *sn, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	if (!sn->strms)
		return next;
	zombies_free(sn->strms);
	for (struct svcn_strm *s = sn->strms->all, *nx; s; s = nx) {
		uint64_t d;

		nx = s->next;
		if (atomic_load(&sn->stopping)) {
			strm_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_SHUTDOWN);
			continue;
		}
		if (s->draining) {
			if (now >= s->deadline_ns) {
				if (!s->fin_rx)
					quic_node_stream_reset(sn->quic, s->conn, s->sid, 0x3);
				strm_free(s);
				continue;
			}
			d = s->deadline_ns;
		} else if (s->bk && s->bk != BK_OPEN) {
			if (now >= s->deadline_ns) {
				strm_fail(s, SVC_ERR_TIMEOUT, SVC_STREAM_R_BACKEND);
				continue;
			}
			d = s->deadline_ns;
		} else if (!s->accepted || (s->role == ROLE_CALLER && s->fd < 0 && s->release == NULL &&
					    s->w && atomic_load(&s->w->state) == W_DONE)) {
			/* waiting for the provider's answer, or for the caller's attach */
			if (s->deadline_ns && now >= s->deadline_ns) {
				if (!s->accepted)
					w_tell(s, -ETIMEDOUT, SVC_ERR_TIMEOUT, SVC_STREAM_R_IDLE);
				strm_fail(s, SVC_ERR_TIMEOUT, SVC_STREAM_R_IDLE);
				continue;
			}
			d = s->deadline_ns ? s->deadline_ns : UINT64_MAX;
		} else {
			if (s->idle_ns && now >= s->last_ns + s->idle_ns) {
				strm_fail(s, SVC_ERR_TIMEOUT, SVC_STREAM_R_IDLE);
				continue;
			}
			d = s->idle_ns ? s->last_ns + s->idle_ns : UINT64_MAX;
		}
		if (s->hold) {
			if (now >= s->retry_ns)
				pump(s);
			else if (s->retry_ns < d)
				d = s->retry_ns;
			if (s->zombie)
				continue;
			if (s->hold && s->retry_ns < d)
				d = s->retry_ns;
		}
		if (d < next)
			next = d;
	}
	zombies_free(sn->strms);
	return next;
}

/* ----------------------------------------------------------- the caller */

struct open_msg {
	struct svc_backend_msg m;
	struct svc_node *sn;
	struct svc_node_stream *w;
	char name[SVC_NAME_MAX + 1];
	char method[SVC_METHOD_MAX + 1];
	struct sockaddr_storage ss;
	socklen_t sl;
	uint8_t key[IDENTITY_PK_LEN];
	uint32_t idle_ms, timeout_ms;
	uint8_t *payload; /* WebSocket: the request head (taken by the stream) */
	size_t payload_len;
	/* attach */
	int fd;
	uint8_t *head;
	size_t head_len;
	void (*release)(void *arg, int fd, const struct svc_node_stream_info *i);
	void *rel_arg;
};

static void open_run(struct svc_backend_msg *mm, int cancel)
{
	struct open_msg *o = (struct open_msg *)mm;
	struct svc_node *sn = o->sn;
	struct svc_node_stream *w = o->w;
	struct svcn_strm *s = NULL;
	struct svcn_peer *p;
	int err = -ESHUTDOWN;

	if (cancel || atomic_load(&sn->stopping) || atomic_load(&w->state) != W_WAITING)
		goto fail;
	err = -EBUSY;
	s = strm_new(sn, ROLE_CALLER);
	if (!s)
		goto fail;
	snprintf(s->service, sizeof(s->service), "%s", o->name);
	snprintf(s->method, sizeof(s->method), "%s", o->method);
	memcpy(s->peer.key, o->key, IDENTITY_PK_LEN);
	s->idle_ns = idle_ms_of(sn, o->idle_ms) * 1000000ull;
	if (o->payload) {
		s->ws = 1;
		s->open_payload = o->payload;
		s->open_len = o->payload_len;
		o->payload = NULL;
	}
	s->deadline_ns = svcn_now_ns() + (uint64_t)o->timeout_ms * 1000000ull;
	due(s, s->deadline_ns);
	s->token = ++sn->next_token;
	s->w = w;
	w->s = s;
	atomic_fetch_add(&w->refs, 1);
	p = svcn_peer_get(sn, (const struct sockaddr *)&o->ss, o->sl, o->key, &err);
	if (!p) {
		w_tell(s, err, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
		strm_free(s);
		goto out;
	}
	s->conn = p->conn;
	s->counted = 1;
	p->streams++;
	if (p->state == SVCN_PEER_UP &&
	    quic_node_stream_open(sn->quic, p->conn, s->ws ? SVC_NODE_ST_WS : SVC_NODE_ST_STREAM,
				  s->token)) {
		w_tell(s, -EAGAIN, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
		strm_free(s);
	}
	goto out;
fail:
	w->rc = err;
	{
		int expect = W_WAITING;

		if (atomic_compare_exchange_strong(&w->state, &expect, W_DONE))
			sem_post(&w->sem);
	}
out:
	w_put(w); /* the message's */
	free(o->payload);
	free(o);
}

/* Post the open (o, taken) and wait for the provider's answer. */
static int open_wait(struct svc_node *sn, struct open_msg *o, uint32_t timeout_ms,
		     struct svc_node_stream **out, struct svc_node_stream_info *info)
{
	struct svc_node_stream *w = calloc(1, sizeof(*w));
	uint64_t dl;
	int err, expect;

	if (!w) {
		free(o->payload);
		free(o);
		return -ENOMEM;
	}
	w->sn = sn;
	sem_init(&w->sem, 0, 0);
	atomic_init(&w->refs, 2); /* the caller, the message */
	atomic_init(&w->state, W_WAITING);
	o->m.fn = open_run;
	o->sn = sn;
	o->w = w;
	o->timeout_ms = timeout_ms;
	err = svc_backend_post(sn->backend, &o->m);
	if (err) {
		free(o->payload);
		free(o);
		atomic_store(&w->refs, 1);
		w_put(w);
		return err;
	}
	dl = svcn_now_ns() + ((uint64_t)timeout_ms + SVC_NODE_NET_MARGIN_MS) * 1000000ull;
	for (;;) {
		uint64_t step = svcn_now_ns() + SVCN_JOB_POLL_MS * 1000000ull;

		if (!svcn_sem_wait_until(&w->sem, step < dl ? step : dl))
			break;
		if (atomic_load(&sn->stopping) || svcn_now_ns() >= dl) {
			expect = W_WAITING;
			if (atomic_compare_exchange_strong(&w->state, &expect, W_ABANDONED)) {
				w_put(w);
				return atomic_load(&sn->stopping) ? -ESHUTDOWN : -ETIMEDOUT;
			}
			sem_wait(&w->sem); /* told just now */
			break;
		}
	}
	if (w->rc) {
		err = w->rc;
		w_put(w);
		return err;
	}
	info->id = w->info.id;
	info->err = w->info.err;
	info->reason = w->info.reason;
	if (w->info.err != SVC_OK) {
		w_put(w);
		return 0;
	}
	*out = w;
	return 0;
}

int svc_node_stream_open(struct svc_node *sn, const char *name, const char *method,
			 uint32_t idle_ms, uint32_t timeout_ms, struct svc_node_stream **out,
			 struct svc_node_stream_info *info)
{
	struct svc_dir_result r;
	struct open_msg *o;
	int local;

	*out = NULL;
	memset(info, 0, sizeof(*info));
	if (!method)
		method = "";
	if (!svc_name_valid((const uint8_t *)name, strlen(name)) ||
	    !svc_method_valid((const uint8_t *)method, strlen(method)))
		return -EINVAL;
	timeout_ms = svcn_clamp_timeout(sn, timeout_ms);
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	local = svcn_pick_within(sn, name, &r, &o->ss, &o->sl, timeout_ms, timeout_ms);
	if (local) {
		free(o);
		return local < 0 ? local : -EOPNOTSUPP;
	}
	memcpy(info->peer, r.owner, IDENTITY_PK_LEN);
	memcpy(o->key, r.owner, IDENTITY_PK_LEN);
	snprintf(o->name, sizeof(o->name), "%s", name);
	snprintf(o->method, sizeof(o->method), "%s", method);
	o->idle_ms = idle_ms;
	return open_wait(sn, o, timeout_ms, out, info);
}

int svcn_strm_open_ws(struct svc_node *sn, const char *service, const struct sockaddr_storage *ss,
		      socklen_t sl, const uint8_t *key, const uint8_t *req, size_t len,
		      uint32_t timeout_ms, struct svc_node_stream **out, uint8_t **head,
		      size_t *head_len, struct svc_node_stream_info *info)
{
	struct open_msg *o = calloc(1, sizeof(*o));
	int err;

	*out = NULL;
	*head = NULL;
	*head_len = 0;
	memset(info, 0, sizeof(*info));
	if (!o || !len || !(o->payload = malloc(len))) {
		free(o);
		return -ENOMEM;
	}
	memcpy(o->payload, req, len);
	o->payload_len = len;
	o->ss = *ss;
	o->sl = sl;
	memcpy(o->key, key, IDENTITY_PK_LEN);
	memcpy(info->peer, key, IDENTITY_PK_LEN);
	snprintf(o->name, sizeof(o->name), "%s", service);
	snprintf(o->method, sizeof(o->method), "ws");
	err = open_wait(sn, o, svcn_clamp_timeout(sn, timeout_ms), out, info);
	if (!err && *out) {
		*head = (*out)->head;
		*head_len = (*out)->head_len;
		(*out)->head = NULL;
	}
	return err;
}

static void attach_run(struct svc_backend_msg *mm, int cancel)
{
	struct open_msg *o = (struct open_msg *)mm;
	struct svc_node_stream *w = o->w;
	struct svcn_strm *s = cancel ? NULL : w->s;
	struct svc_node_stream_info info = {.id = w->info.id, .ended = 1};

	if (!s || s->draining || s->zombie) {
		info.err = SVC_ERR_BACKEND_ERROR;
		info.reason = SVC_STREAM_R_RESET;
		if (cancel) {
			info.err = SVC_ERR_OVERLOADED;
			info.reason = SVC_STREAM_R_SHUTDOWN;
		}
		if (o->release)
			o->release(o->rel_arg, o->fd, &info);
		goto out;
	}
	if (!o->release) { /* abort */
		strm_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_LOCAL);
		goto out;
	}
	s->fd = o->fd;
	s->local = LOCAL_FD;
	s->release = o->release;
	s->rel_arg = o->rel_arg;
	fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
	touch(s);
	if (o->head_len && send_data(s, o->head, o->head_len) < 0 && s->zombie)
		goto out;
	pump(s);
	zombies_free(s->sn->strms);
out:
	w_put(w);
	free(o->head);
	free(o);
}

static int post_attach(struct svc_node_stream *w, int fd, const uint8_t *head, size_t len,
		       void (*release)(void *, int, const struct svc_node_stream_info *),
		       void *arg)
{
	struct open_msg *o = calloc(1, sizeof(*o));

	if (!o || (len && !(o->head = malloc(len)))) {
		free(o);
		return -ENOMEM;
	}
	if (len)
		memcpy(o->head, head, len);
	o->head_len = len;
	o->m.fn = attach_run;
	o->sn = w->sn;
	o->w = w;
	o->fd = fd;
	o->release = release;
	o->rel_arg = arg;
	if (svc_backend_post(w->sn->backend, &o->m)) {
		attach_run(&o->m, 1);
		return -ESHUTDOWN;
	}
	return 0;
}

int svc_node_stream_attach(struct svc_node_stream *w, int fd, const uint8_t *head, size_t len,
			   void (*release)(void *arg, int fd, const struct svc_node_stream_info *i),
			   void *arg)
{
	int err = post_attach(w, fd, head, len, release, arg);

	if (err == -ENOMEM) {
		struct svc_node_stream_info info = {.id = w->info.id,
						    .ended = 1,
						    .err = SVC_ERR_OVERLOADED,
						    .reason = SVC_STREAM_R_LOCAL};

		release(arg, fd, &info);
		w_put(w);
	}
	return err;
}

void svc_node_stream_abort(struct svc_node_stream *w)
{
	if (w && post_attach(w, -1, NULL, 0, NULL, NULL) == -ENOMEM)
		w_put(w);
}

struct result_arg {
	uint64_t id;
	struct svc_node_stream_info *out;
	int found;
};

static void result_run(struct svc_node *sn, void *arg)
{
	struct result_arg *a = arg;
	struct svcn_strms *ss = sn->strms;

	for (struct svcn_strm *s = ss->all; s; s = s->next)
		if (s->id == a->id && s->role == ROLE_CALLER) {
			memset(a->out, 0, sizeof(*a->out));
			a->out->id = s->id;
			a->out->bytes_in = s->bytes_rx;
			a->out->bytes_out = s->bytes_tx;
			memcpy(a->out->peer, s->peer.key, IDENTITY_PK_LEN);
			a->found = 1;
			return;
		}
	for (unsigned int i = 0; i < SVC_NODE_STREAM_ENDED; i++)
		if (ss->done[i].id == a->id && ss->done[i].ended) {
			*a->out = ss->done[i];
			a->found = 1;
			return;
		}
}

int svc_node_stream_result(struct svc_node *sn, uint64_t id, struct svc_node_stream_info *out)
{
	struct result_arg a = {.id = id, .out = out};
	int err;

	if (!id)
		return -ENOENT;
	err = svcn_owner_run(sn, result_run, &a, SVCN_OWNER_RUN_MS);
	if (err)
		return err;
	return a.found ? 0 : -ENOENT;
}

json_t *svcn_strm_stats(struct svc_node *sn)
{
	struct svcn_strms *ss = sn->strms;
	json_t *o = json_object(), *e = json_object();

	json_object_set_new(o, "open", json_integer(ss->n));
	json_object_set_new(o, "opened", json_integer((json_int_t)ss->opened));
	json_object_set_new(o, "refused", json_integer((json_int_t)ss->refused));
	json_object_set_new(o, "bytes_in", json_integer((json_int_t)ss->bytes_in));
	json_object_set_new(o, "bytes_out", json_integer((json_int_t)ss->bytes_out));
	for (unsigned int i = 0; i < SVC_STREAM_R__COUNT; i++)
		json_object_set_new(e, reason_names[i], json_integer((json_int_t)ss->ended[i]));
	json_object_set_new(o, "ended", e);
	return o;
}

/* ------------------------------------------------------------ lifecycle */

static void stop_run(struct svc_backend_msg *m, int cancel)
{
	struct svc_node *sn = ((struct open_msg *)m)->sn;

	if (!cancel)
		svcn_strm_expire(sn, svcn_now_ns());
	free(m);
}

void svcn_strm_stop(struct svc_node *sn)
{
	struct open_msg *o;

	if (!sn->strms || !sn->backend || !(o = calloc(1, sizeof(*o))))
		return;
	o->m.fn = stop_run;
	o->sn = sn;
	if (svc_backend_post(sn->backend, &o->m))
		free(o);
}

int svcn_strm_init(struct svc_node *sn)
{
	struct svcn_strms *ss = calloc(1, sizeof(*ss));
	int err;

	if (!ss)
		return -ENOMEM;
	ss->ep = epoll_create1(EPOLL_CLOEXEC);
	if (ss->ep < 0) {
		err = -errno;
		free(ss);
		return err;
	}
	sn->strms = ss;
	return svc_backend_watch(sn->backend, ss->ep, strms_ready, sn);
}

void svcn_strm_free_all(struct svc_node *sn)
{
	struct svcn_strms *ss = sn->strms;

	if (!ss)
		return;
	while (ss->all) {
		struct svcn_strm *s = ss->all;

		if (!s->cls && !s->reason) {
			s->cls = SVC_ERR_OVERLOADED;
			s->reason = SVC_STREAM_R_SHUTDOWN;
		}
		w_tell(s, -ESHUTDOWN, SVC_ERR_OVERLOADED, SVC_STREAM_R_SHUTDOWN);
		s->ticketed = 0; /* the router goes too */
		s->counted = 0;
		strm_free(s);
	}
	zombies_free(ss);
	close(ss->ep);
	free(ss);
	sn->strms = NULL;
}
