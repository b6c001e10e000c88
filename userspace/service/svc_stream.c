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

#include "svc_dir_int.h"
#include "svc_ops_int.h"
#include "svc_stream_int.h"
#include "svc_stream_priv.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/svc_msg.h"
#include "weft/svc_router.h"
#include "weft/util.h"

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

uint64_t svcn_sx_ws_max(const struct svc_node *sn)
{
	return sn->cfg.svc_ws_max_message ? sn->cfg.svc_ws_max_message : SVC_NODE_WS_MAX_MESSAGE;
}

uint64_t svcn_sx_idle_ms(const struct svc_node *sn, uint32_t asked)
{
	uint32_t mine = sn->cfg.svc_stream_idle_ms ? sn->cfg.svc_stream_idle_ms
						   : SVC_NODE_STREAM_IDLE_MS;

	if (asked && asked < mine)
		mine = asked;
	return mine > SVC_NODE_STREAM_MAX_IDLE_MS ? SVC_NODE_STREAM_MAX_IDLE_MS : mine;
}

void svcn_sx_due(struct svcn_strm *s, uint64_t at)
{
	if (at < s->sn->due_ns)
		s->sn->due_ns = at;
}

void svcn_sx_touch(struct svcn_strm *s)
{
	s->last_ns = svcn_now_ns();
	if (s->accepted && s->idle_ns)
		svcn_sx_due(s, s->last_ns + s->idle_ns);
}

/* ---------------------------------------------------------- the caller's wait */

void svcn_sx_wput(struct svc_node_stream *w)
{
	if (w && atomic_fetch_sub(&w->refs, 1) == 1) {
		free(w->head);
		sem_destroy(&w->sem);
		free(w);
	}
}


/* Tell the waiting caller (once): 0 told, -1 it left (the stream goes). */
int svcn_sx_wtell(struct svcn_strm *s, int rc, int cls, uint32_t reason)
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

struct svcn_strm *svcn_sx_new(struct svc_node *sn, int role)
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

int svcn_sx_q_push(struct svcn_strm *s, const uint8_t *p, size_t len)
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
int svcn_sx_send_frame(struct svcn_strm *s, int type, int cls, uint32_t status, const uint8_t *p,
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
	svcn_sx_due(s, s->retry_ns);
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
		svcn_sx_due(s, s->retry_ns);
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

int svcn_sx_send_data(struct svcn_strm *s, const uint8_t *p, size_t len)
{
	s->bytes_tx += len;
	s->unacked += len;
	s->sn->strms->bytes_out += s->role == ROLE_CALLER ? len : 0;
	if (s->bytes_tx > max_bytes(s->sn)) {
		svcn_sx_fail(s, SVC_ERR_TOO_LARGE, SVC_STREAM_R_BYTES);
		return -1;
	}
	svcn_sx_touch(s);
	if (svcn_sx_send_frame(s, SVC_MSG_STREAM_DATA, SVC_OK, 0, p, len, 0)) {
		svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
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
	if (svcn_sx_send_frame(s, SVC_MSG_STREAM_END, cls, reason, NULL, 0, cls != SVC_OK))
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
		if (svcn_sx_send_frame(s, SVC_MSG_STREAM_DATA, SVC_OK, 0, NULL, 0, 0))
			return;
	}
}

/* ----------------------------------------------------------- the end of it */


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

void svcn_sx_free(struct svcn_strm *s)
{
	struct svcn_strms *ss = s->sn->strms;

	if (s->zombie)
		return;
	strm_settle(s);
	if (s->w) {
		s->w->s = NULL;
		svcn_sx_wput(s->w);
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

void svcn_sx_zombies_free(struct svcn_strms *ss)
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

void svcn_sx_fail(struct svcn_strm *s, int cls, uint32_t reason)
{
	if (s->zombie || s->draining)
		return;
	s->cls = cls;
	s->reason = reason;
	ws_close_local(s, reason);
	if (s->role == ROLE_CALLER && !s->accepted)
		svcn_sx_wtell(s, 0, cls, reason);
	free(s->hold);
	s->hold = NULL;
	q_clear(s);
	send_end(s, cls, reason);
	strm_settle(s); /* the slot is free now, not after the drain */
	if (s->end_rx || !s->opened || !s->hashed) {
		if (s->opened && !s->end_rx)
			quic_node_stream_reset(s->sn->quic, s->conn, s->sid, 0x3);
		svcn_sx_free(s);
		return;
	}
	s->draining = 1;
	s->deadline_ns = svcn_now_ns() + SVCN_STRM_DRAIN_MS * 1000000ull;
	svcn_sx_due(s, s->deadline_ns);
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
		svcn_sx_free(s);
		return;
	}
	/* the peer's FIN is on its way, maybe behind its last credits */
	s->draining = 1;
	s->deadline_ns = svcn_now_ns() + SVCN_STRM_DRAIN_MS * 1000000ull;
	svcn_sx_due(s, s->deadline_ns);
}

/* ------------------------------------------------------------ local ends */


void svcn_sx_interest(struct svcn_strm *s)
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
			svcn_sx_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_LOCAL);
			return;
		}
		q_take(s, (size_t)n);
		delivered(s, (size_t)n);
		svcn_sx_touch(s);
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

	s->fd_rd_dry = 0;
	while (!s->zombie && !s->draining && !s->fd_rd_eof && !s->end_tx && can_send(s)) {
		ssize_t n = recv(s->fd, buf, SVCN_STRM_FRAME, 0);

		if (n < 0) {
			if (errno == EAGAIN)
				s->fd_rd_dry = 1;
			if (errno == EAGAIN || errno == EINTR)
				return;
			svcn_sx_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_LOCAL);
			return;
		}
		if (n == 0) {
			s->fd_rd_eof = 1;
			send_end(s, SVC_OK, SVC_STREAM_R_OK); /* the half-close */
			return;
		}
		if (s->ws && s->role == ROLE_CALLER) {
			int c = svcn_ws_feed(&s->ws_tx, buf, (size_t)n, 1, svcn_sx_ws_max(s->sn));

			if (c) {
				svcn_sx_fail(s, c == SVCN_WS_TOO_BIG ? SVC_ERR_TOO_LARGE : SVC_ERR_BAD_REQUEST,
					  c == SVCN_WS_TOO_BIG ? SVC_STREAM_R_WS_MESSAGE
							       : SVC_STREAM_R_WS_PROTOCOL);
				return;
			}
		}
		if (svcn_sx_send_data(s, buf, (size_t)n) < 0 && s->zombie)
			return;
		/* short: all there was (level-triggered epoll tells of more) */
		if ((size_t)n < SVCN_STRM_FRAME) {
			s->fd_rd_dry = 1;
			return;
		}
	}
}

static void fd_event(struct svcn_strm *s, uint32_t ev)
{
	if (s->zombie || s->draining)
		return;
	if (s->bk && s->bk != BK_OPEN) {
		s->sn->strms->bk_event(s, ev);
	} else {
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			fd_write(s);
		if (!s->zombie && !s->draining && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
			fd_read(s);
	}
	if (!s->zombie) {
		strm_check_done(s);
		if (!s->zombie)
			svcn_sx_interest(s);
	}
}

/* The owner's loop found the epoll set readable. */
static void strms_ready(void *ctx)
{
	struct svc_node *sn = ctx;
	struct svcn_strms *ss = sn->strms;
	struct epoll_event evs[64];
	int n;

	svcn_sx_zombies_free(ss);
	n = epoll_wait(ss->ep, evs, 64, 0);
	for (int i = 0; i < n; i++)
		fd_event(evs[i].data.ptr, evs[i].events);
	svcn_sx_zombies_free(ss);
}

/* echo: the queue back out; fd: the queue into the socket, the socket in. */
void svcn_sx_pump(struct svcn_strm *s)
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
			if (svcn_sx_send_data(s, s->sn->strms->frame + SVC_MSG_HDR_LEN, n) < 0)
				return;
			delivered(s, n);
		}
		if (!s->qh && !s->hold && s->end_rx && !s->end_tx)
			send_end(s, SVC_OK, SVC_STREAM_R_OK);
	} else if (s->fd >= 0 && (!s->bk || s->bk == BK_OPEN)) {
		fd_write(s);
		if (!s->zombie && !s->draining && !s->fd_rd_dry)
			fd_read(s);
	}
	if (!s->zombie) {
		strm_check_done(s);
		if (!s->zombie)
			svcn_sx_interest(s);
	}
}

/* ---------------------------------------------------- frames from the peer */

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
		svcn_sx_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
		return;
	}
	end = (size_t)h;
	if (s->w && !(s->w->head = malloc(end))) {
		svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
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
	/* A refused upgrade (not 101): its body is no WebSocket; the waiter
	 * gets the head, and the gateway answers with its status. Parsed
	 * as frames, the body failed the stream before the head reached the
	 * waiter (the client got 504 for the backend's 403). */
	if (status != 101)
		s->ws = 0;
	/* frames that came with the head */
	for (struct sq_chunk *c = s->ws ? s->qh : NULL; c; c = c->next) {
		int e = svcn_ws_feed(&s->ws_rx, c->data + c->off, c->len - c->off, 0, svcn_sx_ws_max(s->sn));

		if (e) {
			svcn_sx_fail(s, e == SVCN_WS_TOO_BIG ? SVC_ERR_TOO_LARGE : SVC_ERR_BAD_REQUEST,
				  e == SVCN_WS_TOO_BIG ? SVC_STREAM_R_WS_MESSAGE
						       : SVC_STREAM_R_WS_PROTOCOL);
			return;
		}
	}
	if (svcn_sx_wtell(s, 0, SVC_OK, 0)) {
		svcn_sx_fail(s, SVC_ERR_TIMEOUT, SVC_STREAM_R_LOCAL);
		return;
	}
	s->deadline_ns = svcn_now_ns() + SVCN_STRM_BACKEND_MS * 1000000ull;
	svcn_sx_due(s, s->deadline_ns);
}

/* One decoded frame from the peer. */
static void on_msg(struct svcn_strm *s, const struct svc_msg *m)
{
	if (s->role == ROLE_PROVIDER && !s->service[0]) {
		s->sn->strms->srv_open(s, m);
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
		svcn_sx_fail(s, SVC_ERR_BAD_REQUEST, SVC_STREAM_R_PROTOCOL);
		return;
	}
	if (s->role == ROLE_CALLER && !s->accepted) {
		if (m->type == SVC_MSG_STREAM_END) {
			s->end_rx = 1;
			s->sn->strms->refused++;
			svcn_sx_fail(s, m->err, m->status);
			return;
		}
		s->accepted = 1;
		s->sn->strms->opened++;
		if (s->ws) {
			s->deadline_ns = svcn_now_ns() + SVCN_STRM_BACKEND_MS * 1000000ull;
			svcn_sx_due(s, s->deadline_ns);
			svcn_sx_touch(s);
			return; /* the caller waits for the backend's head */
		}
		if (svcn_sx_wtell(s, 0, SVC_OK, 0)) {
			svcn_sx_fail(s, SVC_ERR_TIMEOUT, SVC_STREAM_R_LOCAL); /* the caller left */
			return;
		}
		/* the caller attaches its socket within this */
		s->deadline_ns = svcn_now_ns() + SVCN_STRM_BACKEND_MS * 1000000ull;
		svcn_sx_due(s, s->deadline_ns);
		svcn_sx_touch(s);
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
			svcn_sx_free(s);
			return;
		}
		return;
	}
	if (s->role == ROLE_PROVIDER && s->ticketed &&
	    svc_router_stream_data(s->sn->router, &s->t, m->payload_len, svcn_now_ns()) != SVC_OK) {
		svcn_sx_fail(s, SVC_ERR_TOO_LARGE, SVC_STREAM_R_PROTOCOL);
		return;
	}
	s->bytes_rx += m->payload_len;
	if (s->role == ROLE_CALLER)
		s->sn->strms->bytes_in += m->payload_len;
	if (s->bytes_rx > max_bytes(s->sn)) {
		svcn_sx_fail(s, SVC_ERR_TOO_LARGE, SVC_STREAM_R_BYTES);
		return;
	}
	svcn_sx_touch(s);
	if (s->ws && s->role == ROLE_CALLER && s->ws_head) {
		int c = svcn_ws_feed(&s->ws_rx, m->payload, m->payload_len, 0, svcn_sx_ws_max(s->sn));

		if (c) {
			svcn_sx_fail(s, c == SVCN_WS_TOO_BIG ? SVC_ERR_TOO_LARGE : SVC_ERR_BAD_REQUEST,
				  c == SVCN_WS_TOO_BIG ? SVC_STREAM_R_WS_MESSAGE
						       : SVC_STREAM_R_WS_PROTOCOL);
			return;
		}
	}
	if (svcn_sx_q_push(s, m->payload, m->payload_len)) {
		svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_SLOW);
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
			svcn_sx_free(s);
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
			svcn_sx_fail(s, r == -EMSGSIZE ? SVC_ERR_TOO_LARGE : SVC_ERR_BAD_REQUEST,
				  SVC_STREAM_R_PROTOCOL);
			return;
		}
		if (r == 1)
			on_msg(s, m);
	}
	if (s->zombie)
		return;
	if (fin && !s->end_rx) {
		svcn_sx_fail(s, SVC_ERR_BAD_REQUEST, SVC_STREAM_R_PROTOCOL); /* FIN without END */
		return;
	}
	if (s->draining && fin) {
		svcn_sx_free(s);
		return;
	}
	svcn_sx_pump(s);
}

/* ------------------------------------------------------------- events */

void svcn_strm_srv_data(struct svc_node *sn, int type, uint64_t conn, int64_t sid,
			const struct svc_peer *peer, const uint8_t *data, size_t len, int fin)
{
	struct svcn_strm *s = by_stream(sn, conn, sid);

	if (!s && !len)
		return; /* the FIN of a stream that ended here already */
	if (!s) {
		if (!peer || !(s = svcn_sx_new(sn, ROLE_PROVIDER))) {
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
		svcn_sx_due(s, s->deadline_ns);
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
		svcn_sx_wtell(s, err, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
		svcn_sx_free(s);
		return 1;
	}
	s->sid = sid;
	s->opened = 1;
	hash_in(s);
	if (s->w)
		atomic_store(&s->w->sent, 1);
	m.service = s->service;
	m.service_len = strlen(s->service);
	m.method = s->method;
	m.method_len = strlen(s->method);
	m.timeout_ms = (uint32_t)(s->idle_ns / 1000000ull);
	m.payload = s->open_payload;
	m.payload_len = s->open_len;
	m.assertion = s->has_assert ? s->assertion : NULL;
	if (svc_msg_encode_head(&m, sn->strms->frame, SVC_MSG_HDR_LEN + 2 * 64 + SVC_ASSERT_LEN,
				&hl) ||
	    s->open_len > sizeof(sn->strms->frame) - hl ||
	    (memcpy(sn->strms->frame + hl, s->open_payload ? s->open_payload : (const uint8_t *)"",
		    s->open_len),
	     quic_node_write(sn->quic, conn, sid, sn->strms->frame, hl + s->open_len, 0))) {
		svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
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
		svcn_sx_free(s);
		return;
	}
	hash_out(s); /* nothing more comes on it: no reset either */
	s->opened = 0;
	if (s->role == ROLE_CALLER && !s->accepted)
		svcn_sx_wtell(s, err ? err : -ECONNRESET, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
	s->end_tx = 1;
	svcn_sx_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_RESET);
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
			svcn_sx_wtell(s, err, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
			svcn_sx_free(s);
		} else if (quic_node_stream_open(sn->quic, conn,
						 s->ws ? SVC_NODE_ST_WS : SVC_NODE_ST_STREAM, s->token)) {
			svcn_sx_wtell(s, -EAGAIN, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
			svcn_sx_free(s);
		}
	}
	svcn_sx_zombies_free(sn->strms);
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
			svcn_sx_free(s);
			continue;
		}
		hash_out(s);
		s->opened = 0;
		s->counted = 0;
		if (s->role == ROLE_CALLER && !s->accepted)
			svcn_sx_wtell(s, -ECONNRESET, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
		svcn_sx_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_RESET);
	}
}

void svcn_strm_writable(struct svc_node *sn, uint64_t conn, int64_t sid)
{
	struct svcn_strm *s = by_stream(sn, conn, sid);

	if (!s)
		return;
	if (s->wout)
		s->wout--;
	svcn_sx_pump(s);
	svcn_sx_zombies_free(sn->strms);
}

uint64_t svcn_strm_expire(struct svc_node *sn, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	if (!sn->strms)
		return next;
	svcn_sx_zombies_free(sn->strms);
	for (struct svcn_strm *s = sn->strms->all, *nx; s; s = nx) {
		uint64_t d;

		nx = s->next;
		if (atomic_load(&sn->stopping)) {
			svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_SHUTDOWN);
			continue;
		}
		if (s->draining) {
			if (now >= s->deadline_ns) {
				if (!s->fin_rx)
					quic_node_stream_reset(sn->quic, s->conn, s->sid, 0x3);
				svcn_sx_free(s);
				continue;
			}
			d = s->deadline_ns;
		} else if (s->bk && s->bk != BK_OPEN) {
			if (now >= s->deadline_ns) {
				svcn_sx_fail(s, SVC_ERR_TIMEOUT, SVC_STREAM_R_BACKEND);
				continue;
			}
			d = s->deadline_ns;
		} else if (!s->accepted || (s->role == ROLE_CALLER && s->fd < 0 && s->release == NULL &&
					    s->w && atomic_load(&s->w->state) == W_DONE)) {
			/* waiting for the provider's answer, or for the caller's attach */
			if (s->direct_ns && !s->opened && !s->accepted && now >= s->direct_ns) {
				/* the address did not answer in its time: the
				 * provider's key is dialled next (svcn_reach) */
				svcn_sx_wtell(s, -EHOSTUNREACH, SVC_ERR_OVERLOADED,
					      SVC_STREAM_R_RESET);
				svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
				continue;
			}
			if (s->deadline_ns && now >= s->deadline_ns) {
				if (!s->accepted)
					svcn_sx_wtell(s, -ETIMEDOUT, SVC_ERR_TIMEOUT, SVC_STREAM_R_IDLE);
				svcn_sx_fail(s, SVC_ERR_TIMEOUT, SVC_STREAM_R_IDLE);
				continue;
			}
			d = s->deadline_ns ? s->deadline_ns : UINT64_MAX;
			if (s->direct_ns && !s->opened && !s->accepted && s->direct_ns < d)
				d = s->direct_ns;
		} else {
			if (s->idle_ns && now >= s->last_ns + s->idle_ns) {
				svcn_sx_fail(s, SVC_ERR_TIMEOUT, SVC_STREAM_R_IDLE);
				continue;
			}
			d = s->idle_ns ? s->last_ns + s->idle_ns : UINT64_MAX;
		}
		if (s->hold) {
			if (now >= s->retry_ns)
				svcn_sx_pump(s);
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
	svcn_sx_zombies_free(sn->strms);
	return next;
}

/* ------------------------------------------------------------ lifecycle */

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
		svcn_sx_wtell(s, -ESHUTDOWN, SVC_ERR_OVERLOADED, SVC_STREAM_R_SHUTDOWN);
		s->ticketed = 0; /* the router goes too */
		s->counted = 0;
		svcn_sx_free(s);
	}
	svcn_sx_zombies_free(ss);
	close(ss->ep);
	free(ss);
	sn->strms = NULL;
}
