// SPDX-License-Identifier: MIT
/* Local backend forwarder, driven by one event-loop thread (epoll,
 * non-blocking sockets): calls as HTTP/1.1 requests over a bounded pool of
 * keep-alive connections per backend (the backend contract,
 * docs/SERVICE.md), and HTTP pass-throughs on the same pool, their answers
 * re-framed and streamed to a sink. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "svc_backend_int.h"
#include "svc_bhttp_int.h"
#include "weft/log.h"
#include "weft/svc_backend.h"
#include "weft/util.h"

/* ---- event loop ---- */

/* BJ_QUEUED: a call waiting for a pooled connection (on its pool's wait
 * list); BJ_REDO: one whose turn came, started again on the next pass. */
enum { BJ_CONNECTING = 1, BJ_WRITING, BJ_READING, BJ_BLOCKED, BJ_QUEUED, BJ_REDO };
/* What an epoll event's pointer is: a stream's job or a call connection
 * (the eventfd's is NULL). */
enum { BK_JOB = 1, BK_CONN };

/* Per-service count of requests in progress (a short list: services with
 * at least one request in flight). */
struct bsvc {
	struct bsvc *next;
	char name[SVC_NAME_MAX + 1];
	uint32_t n;
};

struct bpool;

struct bjob {
	int kind;		  /* BK_JOB */
	struct bjob *next, *prev; /* pending queue, then the loop's active list */
	struct bjob *wnext;	  /* its pool's wait list, or the redo list */
	struct bsvc *svc;
	int fd;
	int state;
	int stream;
	char addr[128];
	uint8_t *out; /* request bytes (a call: HTTP head and body) */
	size_t out_len, out_off;
	/* pass-through: bytes read and parsed up to in_off; what the sink
	 * refused (a head, a body span, the end) held until it has room */
	uint8_t *in, *hold;
	size_t in_len, in_off, hold_len;
	int head_sent, hold_fin, keep, hup;
	int reused, retry; /* on a pooled connection; may be sent again once */
	uint32_t timeout_ms;
	uint64_t deadline_ms; /* call: absolute; stream: no progress until then */
	uint64_t retry_ms;    /* BJ_BLOCKED: offer the chunk again then */
	/* a call: its pool, connection and the answer being parsed */
	struct bpool *pool;
	struct bconn *conn;
	int got_bytes;
	struct svc_bhttp_resp rp;
	svc_backend_done_fn done;
	const struct svc_backend_sink *sink;
	void *ctx;
};

/* A pooled connection to a call backend: on the epoll set for its whole
 * life (edge-triggered), carrying one call at a time or idle. */
struct bconn {
	int kind; /* BK_CONN */
	struct bconn *next, *prev; /* the pool's idle list, most recent first */
	struct bpool *pool;
	struct bjob *job; /* NULL: idle */
	int fd;
	int tcp;
	uint64_t idle_until_ms;
};

/* The connections to one backend address (loop thread only). */
struct bpool {
	struct bpool *next;
	char addr[128];
	uint32_t open; /* connections, connecting, busy or idle */
	uint32_t refs; /* calls that name it (started, not ended) */
	struct bconn *idle, *idle_tail;
	struct bjob *wait_head, *wait_tail;
};

/* A stream chunk the sink refused is offered again after 2 ms: the QUIC
 * send queue drains within a packet pass. */
#define BJ_RETRY_MS 2
#define BJ_CHUNK 16384

static struct bsvc *bsvc_get(struct svc_backend *b, const char *name)
{
	struct bsvc *s;

	for (s = b->svcs; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->next = b->svcs;
	b->svcs = s;
	return s;
}

/* Release the counts of j (b->mu held). */
static void bsvc_put(struct svc_backend *b, struct bsvc *s)
{
	struct bsvc **pp;

	b->inflight--;
	if (!s || --s->n)
		return;
	for (pp = &b->svcs; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			free(s);
			return;
		}
}

static void job_free(struct bjob *j)
{
	svc_bhttp_resp_free(&j->rp);
	free(j->out);
	free(j->in);
	free(j->hold);
	free(j);
}

static void active_unlink(struct svc_backend *b, struct bjob *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		b->active = j->next;
	if (j->next)
		j->next->prev = j->prev;
}

/* ---- the connection pool (calls) ---- */

static struct bpool *pool_get(struct svc_backend *b, const char *addr)
{
	struct bpool *p;

	for (p = b->pools; p; p = p->next)
		if (!strcmp(p->addr, addr))
			return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	p->next = b->pools;
	b->pools = p;
	return p;
}

/* Forget p once nothing uses it. */
static void pool_put(struct svc_backend *b, struct bpool *p)
{
	struct bpool **pp;

	if (!p || p->open || p->refs)
		return;
	for (pp = &b->pools; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			free(p);
			return;
		}
}

static void idle_unlink(struct svc_backend *b, struct bconn *c)
{
	struct bpool *p = c->pool;

	if (c->prev)
		c->prev->next = c->next;
	else
		p->idle = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		p->idle_tail = c->prev;
	c->next = c->prev = NULL;
	atomic_fetch_sub_explicit(&b->st_idle, 1, memory_order_relaxed);
}

static void conn_close(struct svc_backend *b, struct bconn *c)
{
	epoll_ctl(b->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->pool->open--;
	atomic_fetch_sub_explicit(&b->st_open, 1, memory_order_relaxed);
	free(c);
}

/* The first call waiting for a connection of p gets its turn (started on
 * the loop's next pass, never inside the finish that freed the slot). */
static void pool_kick(struct svc_backend *b, struct bpool *p)
{
	struct bjob *w = p->wait_head;

	if (!w || (!p->idle && p->open >= b->pool_conns))
		return;
	p->wait_head = w->wnext;
	if (!p->wait_head)
		p->wait_tail = NULL;
	w->state = BJ_REDO;
	w->wnext = b->redo;
	b->redo = w;
	b->kick = 1;
}

/* Take an idle connection that is still good: one the backend closed, or
 * that holds bytes nobody asked for, is closed instead. */
static struct bconn *pool_take(struct svc_backend *b, struct bpool *p)
{
	struct bconn *c;

	while ((c = p->idle)) {
		uint8_t x;
		ssize_t n;

		idle_unlink(b, c);
		n = recv(c->fd, &x, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return c;
		conn_close(b, c);
	}
	return NULL;
}

/* A call's connection after its answer: back to the pool when the answer
 * was complete and the backend keeps it open, else closed. */
static void conn_release(struct svc_backend *b, struct bjob *j, int keep)
{
	struct bconn *c = j->conn;
	struct bpool *p = j->pool;

	j->conn = NULL;
	j->fd = -1;
	if (!c)
		return;
	c->job = NULL;
	if (!keep || b->stop) {
		conn_close(b, c);
	} else {
		c->idle_until_ms = util_now_ms() + b->idle_ms;
		c->prev = NULL;
		c->next = p->idle;
		if (p->idle)
			p->idle->prev = c;
		else
			p->idle_tail = c;
		p->idle = c;
		atomic_fetch_add_explicit(&b->st_idle, 1, memory_order_relaxed);
	}
}

/* Close connections idle past their time; returns the next expiry. */
static uint64_t pools_expire(struct svc_backend *b, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	struct bpool *p, *nx;

	for (p = b->pools; p; p = nx) {
		struct bconn *c;

		nx = p->next;
		while ((c = p->idle_tail) && c->idle_until_ms <= now) {
			idle_unlink(b, c);
			conn_close(b, c);
		}
		if (c && c->idle_until_ms < next)
			next = c->idle_until_ms;
		pool_put(b, p);
	}
	return next;
}

/* End j with err (an enum svc_err) and status: counts, callback, free. */
static void job_end(struct svc_backend *b, struct bjob *j, int err, uint32_t status, int linked,
		    int keep)
{
	if (linked)
		active_unlink(b, j);
	if (j->state == BJ_QUEUED && j->pool) {
		struct bjob **pp;

		for (pp = &j->pool->wait_head, j->pool->wait_tail = NULL; *pp;) {
			if (*pp == j)
				*pp = j->wnext;
			else {
				j->pool->wait_tail = *pp;
				pp = &(*pp)->wnext;
			}
		}
	} else if (j->state == BJ_REDO) {
		struct bjob **pp;

		for (pp = &b->redo; *pp; pp = &(*pp)->wnext)
			if (*pp == j) {
				*pp = j->wnext;
				break;
			}
	}
	if (j->conn) {
		conn_release(b, j, keep);
	} else if (j->fd >= 0) {
		epoll_ctl(b->epfd, EPOLL_CTL_DEL, j->fd, NULL);
		close(j->fd);
	}
	if (j->pool) {
		j->pool->refs--;
		pool_kick(b, j->pool);
		pool_put(b, j->pool);
	}
	pthread_mutex_lock(&b->mu);
	bsvc_put(b, j->svc);
	if (err == SVC_ERR_TIMEOUT)
		b->stat_timeout++;
	if (err == SVC_ERR_BACKEND_PROTOCOL)
		b->stat_protocol++;
	pthread_mutex_unlock(&b->mu);
	if (j->stream) {
		j->sink->end(j->ctx, err);
	} else {
		size_t len = 0;
		uint8_t *resp = status ? svc_bhttp_resp_take(&j->rp, &len) : NULL;

		j->done(j->ctx, err, status, resp, len);
	}
	job_free(j);
}

static void job_finish(struct svc_backend *b, struct bjob *j, int err, int linked)
{
	job_end(b, j, err, 0, linked, 0);
}

/* ---- calls: one HTTP/1.1 exchange on a pooled connection ---- */

/* A parser error to the call's class: a body over the cap is too_large;
 * a head over its cap (no final status yet) breaks the contract. */
static int resp_class(const struct svc_bhttp_resp *rp, int e)
{
	if (e == -EMSGSIZE)
		return rp->status ? SVC_ERR_TOO_LARGE : SVC_ERR_BACKEND_PROTOCOL;
	if (e == -ENOMEM)
		return SVC_ERR_BACKEND_ERROR;
	return SVC_ERR_BACKEND_PROTOCOL;
}

/* Read the answer; ev: the event that brought the bytes (a close that
 * came with them keeps the connection out of the pool: no later event
 * would report it, the connection is edge-triggered). */
static void call_read(struct svc_backend *b, struct bjob *j, uint32_t ev)
{
	uint8_t buf[16384];

	for (;;) {
		ssize_t n = recv(j->fd, buf, sizeof(buf), 0);
		size_t used;
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
			return;
		}
		if (n == 0) {
			/* Closed: the end of a body framed by the close, else
			 * a backend that went away (nothing said) or cut its
			 * answer short (a broken contract). */
			r = svc_bhttp_resp_eof(&j->rp);
			if (r == 1)
				job_end(b, j, svc_bhttp_status_class(j->rp.status), j->rp.status, 1, 0);
			else
				job_finish(b, j,
					   j->got_bytes ? SVC_ERR_BACKEND_PROTOCOL
							: SVC_ERR_BACKEND_ERROR,
					   1);
			return;
		}
		j->got_bytes = 1;
		r = svc_bhttp_resp_feed(&j->rp, buf, (size_t)n, &used);
		if (r < 0) {
			job_finish(b, j, resp_class(&j->rp, r), 1);
			return;
		}
		if (r == 1) {
			/* Kept only when the request was all written, the
			 * backend keeps the connection and said nothing more. */
			int keep = !j->rp.close && used == (size_t)n && j->state == BJ_READING &&
				   !(ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));

			job_end(b, j, svc_bhttp_status_class(j->rp.status), j->rp.status, 1, keep);
			return;
		}
	}
}

static void call_dispatch(struct svc_backend *b, struct bjob *j);

/* A kept-alive connection the backend closed as the request went out
 * (its idle timeout, before a byte of answer): an idempotent pass-through
 * (RFC 9112 9.3.1) goes once more on another connection. 1 when it was
 * sent again (j may have ended), 0 when the caller ends it. */
static int pass_retry(struct svc_backend *b, struct bjob *j)
{
	if (!j->stream || !j->reused || !j->retry || j->got_bytes)
		return 0;
	j->retry = 0;
	conn_release(b, j, 0);
	j->out_off = 0;
	j->hup = 0;
	j->state = 0;
	call_dispatch(b, j);
	return 1;
}

/* Write what is left of the request: 0, or -1 when that ended j. */
static int call_write(struct svc_backend *b, struct bjob *j)
{
	while (j->out_off < j->out_len) {
		ssize_t n = send(j->fd, j->out + j->out_off, j->out_len - j->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			if (!pass_retry(b, j))
				job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
			return -1;
		}
		j->out_off += (size_t)n;
	}
	/* ACK the answer's first segment at once: a backend that writes
	 * head and body apart without TCP_NODELAY (Python's http.server)
	 * would otherwise hold the body until our delayed ACK, 40 ms. */
	if (j->conn && j->conn->tcp)
		(void)setsockopt(j->fd, IPPROTO_TCP, TCP_QUICKACK, &(int){1}, sizeof(int));
	j->state = BJ_READING;
	return 0;
}

/* ---- pass-through: one HTTP/1.1 exchange on a pooled connection, the
 * answer re-framed and streamed to a sink (svc_bhttp_pass_*) ---- */

/* Offer bytes (or the end) to the sink: 0 taken, 1 held until the sink
 * has room (BJ_BLOCKED, offered again every BJ_RETRY_MS), -1 j ended. */
static int pass_offer(struct svc_backend *b, struct bjob *j, const uint8_t *buf, size_t len,
		      int fin)
{
	int r = j->sink->data(j->ctx, buf, len, fin);

	if (r == -EAGAIN) {
		if (buf != j->hold) {
			j->hold = malloc(len ? len : 1);
			if (!j->hold) {
				job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
				return -1;
			}
			memcpy(j->hold, buf, len);
			j->hold_len = len;
		}
		j->hold_fin = fin;
		j->state = BJ_BLOCKED;
		j->retry_ms = util_now_ms() + BJ_RETRY_MS;
		return 1;
	}
	if (buf == j->hold) {
		free(j->hold);
		j->hold = NULL;
	}
	if (r < 0) {
		job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
		return -1;
	}
	j->deadline_ms = util_now_ms() + j->timeout_ms; /* progress */
	if (fin) {
		job_end(b, j, SVC_OK, 0, 1, j->keep && !j->hup);
		return -1;
	}
	return 0;
}

/* Parse what was read, forward the head and the body, read on until the
 * socket would block, the answer is complete or the sink is full. */
static void pass_read(struct svc_backend *b, struct bjob *j, uint32_t ev)
{
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		j->hup = 1; /* never back to the pool */
	if (j->state == BJ_BLOCKED)
		return; /* pass_resume reads on */
	for (;;) {
		const uint8_t *span;
		size_t used, sl, wl;
		uint8_t *w;
		ssize_t n;
		int r = svc_bhttp_resp_feed_span(&j->rp, j->in + j->in_off, j->in_len - j->in_off,
						 &used, &span, &sl);

		j->in_off += used;
		if (r < 0) {
			job_finish(b, j, resp_class(&j->rp, r), 1);
			return;
		}
		if (!j->head_sent && j->rp.status) {
			j->head_sent = 1;
			if (svc_bhttp_pass_head(&j->rp, &w, &wl)) {
				job_finish(b, j, SVC_ERR_BACKEND_PROTOCOL, 1);
				return;
			}
			j->hold = w;
			j->hold_len = wl;
			if (pass_offer(b, j, w, wl, 0))
				return;
		}
		if (sl && pass_offer(b, j, span, sl, 0))
			return;
		if (r == 1) {
			/* reused only as a call's connection would be */
			j->keep = !j->rp.close && j->in_off == j->in_len && j->out_off == j->out_len;
			pass_offer(b, j, j->in, 0, 1);
			return;
		}
		if (j->in_off < j->in_len)
			continue;
		n = recv(j->fd, j->in, BJ_CHUNK, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			j->hup = 1;
			if (pass_retry(b, j))
				return;
			if (n == 0 && j->head_sent && svc_bhttp_resp_eof(&j->rp) == 1)
				pass_offer(b, j, j->in, 0, 1); /* a body framed by the close */
			else
				job_finish(b, j,
					   n == 0 && j->got_bytes ? SVC_ERR_BACKEND_PROTOCOL
								  : SVC_ERR_BACKEND_ERROR,
					   1);
			return;
		}
		j->got_bytes = 1;
		j->in_len = (size_t)n;
		j->in_off = 0;
	}
}

/* The held bytes offered again; when taken, the exchange goes on. */
static void pass_resume(struct svc_backend *b, struct bjob *j)
{
	if (pass_offer(b, j, j->hold, j->hold_len, j->hold_fin))
		return;
	j->state = j->out_off < j->out_len ? BJ_WRITING : BJ_READING;
	if (j->state == BJ_WRITING && call_write(b, j))
		return;
	pass_read(b, j, 0);
}

/* An event on a call connection (edge-triggered: read and write until
 * they would block). */
static void conn_io(struct svc_backend *b, struct bconn *c, uint32_t ev)
{
	struct bjob *j = c->job;

	if (!j) {
		/* Idle: the backend closed it or sent what nobody asked for
		 * (a write side that drained again is no news). */
		if (!(ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
			return;
		idle_unlink(b, c);
		conn_close(b, c);
		return;
	}
	if (j->state == BJ_CONNECTING) {
		int e = 0;
		socklen_t el = sizeof(e);

		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(j->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e) {
			job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
			return;
		}
		j->state = BJ_WRITING;
	}
	if (j->state == BJ_WRITING && call_write(b, j))
		return;
	/* An answer may come before the request is all written (a 413 for
	 * a body the backend will not read): read it either way. */
	if (j->stream)
		pass_read(b, j, ev);
	else if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
		call_read(b, j, ev);
}

/* Give j a connection: an idle one, a new one within the pool's bound,
 * or a place in the pool's queue. j is on the active list. */
static void call_dispatch(struct svc_backend *b, struct bjob *j)
{
	struct bpool *p = j->pool;
	struct sockaddr_storage ss;
	struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	struct bconn *c;
	socklen_t sl;
	int fd;

	c = pool_take(b, p);
	if (c) {
		atomic_fetch_add_explicit(&b->st_reused, 1, memory_order_relaxed);
		c->job = j;
		j->conn = c;
		j->fd = c->fd;
		j->reused = 1;
		j->state = BJ_WRITING;
		(void)call_write(b, j);
		return;
	}
	if (p->open >= b->pool_conns) {
		j->state = BJ_QUEUED;
		j->wnext = NULL;
		if (p->wait_tail)
			p->wait_tail->wnext = j;
		else
			p->wait_head = j;
		p->wait_tail = j;
		return;
	}
	c = calloc(1, sizeof(*c));
	fd = c && !svc_backend_parse_addr(j->addr, &ss, &sl)
		     ? socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
		     : -1;
	if (fd < 0) {
		free(c);
		job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
		return;
	}
	/* A request leaves in one write and the answer is awaited: no
	 * Nagle delay on a body that did not fit the first segment. */
	if (ss.ss_family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	c->tcp = ss.ss_family != AF_UNIX;
	c->kind = BK_CONN;
	c->fd = fd;
	c->pool = p;
	c->job = j;
	e.data.ptr = c;
	/* EAGAIN on a unix socket is a full backlog, not a pending connect:
	 * the backend is overwhelmed, report it as failed. */
	if ((connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) ||
	    epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &e)) {
		close(fd);
		free(c);
		job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
		return;
	}
	p->open++;
	atomic_fetch_add_explicit(&b->st_open, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->st_opened, 1, memory_order_relaxed);
	j->conn = c;
	j->fd = fd;
	j->reused = 0;
	j->state = BJ_CONNECTING;
}

static void active_link(struct svc_backend *b, struct bjob *j)
{
	j->prev = NULL;
	j->next = b->active;
	if (b->active)
		b->active->prev = j;
	b->active = j;
}

/* Put j on the active list and start it on its backend's pool. */
static void job_start(struct svc_backend *b, struct bjob *j)
{
	j->deadline_ms = util_now_ms() + j->timeout_ms;
	j->pool = pool_get(b, j->addr);
	if (!j->pool) {
		job_finish(b, j, SVC_ERR_BACKEND_ERROR, 0);
		return;
	}
	j->pool->refs++;
	active_link(b, j);
	call_dispatch(b, j);
}

/* The loop's next deadline (ms, UINT64_MAX: none). */
static uint64_t loop_next(struct svc_backend *b)
{
	uint64_t next = b->idle_next;

	if (b->tick && b->tick_next_ms < next)
		next = b->tick_next_ms;
	for (struct bjob *j = b->active; j; j = j->next) {
		if (j->deadline_ms < next)
			next = j->deadline_ms;
		if (j->state == BJ_BLOCKED && j->retry_ms < next)
			next = j->retry_ms;
	}
	return b->kick ? 0 : next;
}

/* One turn of the loop: I/O (waiting for it until the next deadline when
 * block is 1; not read at all when -1 and the last read took everything:
 * a host knows the set was not readable), messages, submissions,
 * deadlines, the tick. 1: stopping. */
static int loop_turn(struct svc_backend *b, int block)
{
	struct epoll_event evs[64];
	uint64_t now = util_now_ms(), next = block > 0 ? loop_next(b) : 0;
	struct bjob *j, *nx, *pend;
	int n = 0, stop;

	b->kick = 0;
	if (block >= 0 || b->ep_full)
		n = epoll_wait(b->epfd, evs, 64, next == UINT64_MAX ? -1 : next <= now ? 0 : (int)(next - now));
	b->ep_full = n == 64;
	for (int i = 0; i < n; i++) {
		int *kind = evs[i].data.ptr;
		uint64_t v;

		if (!kind)
			(void)!read(b->evfd, &v, sizeof(v));
		else if (evs[i].data.ptr == &b->watch)
			b->watch.fn(b->watch.ctx);
		else if (*kind == BK_CONN)
			conn_io(b, evs[i].data.ptr, evs[i].events);
	}
	svc_bk_mq_run(b, 0);
	pend = NULL;
	stop = 0;
	if (atomic_exchange_explicit(&b->pend_any, 0, memory_order_acquire)) {
		pthread_mutex_lock(&b->mu);
		pend = b->pend_head;
		b->pend_head = b->pend_tail = NULL;
		stop = b->stop;
		pthread_mutex_unlock(&b->mu);
	}
	for (j = pend; j; j = nx) {
		nx = j->next;
		if (stop)
			job_finish(b, j, SVC_ERR_OVERLOADED, 0);
		else
			job_start(b, j);
	}
	if (stop)
		return 1;
	/* Calls whose connection came free: taken in order. */
	while ((j = b->redo)) {
		b->redo = j->wnext;
		j->state = 0;
		call_dispatch(b, j);
	}
	now = util_now_ms();
	for (j = b->active; j; j = nx) {
		nx = j->next;
		if (now >= j->deadline_ms)
			job_finish(b, j, SVC_ERR_TIMEOUT, 1);
		else if (j->state == BJ_BLOCKED && now >= j->retry_ms)
			pass_resume(b, j);
	}
	b->idle_next = pools_expire(b, now); /* the same ms: no second read */
	if (b->tick) {
		uint64_t t = b->tick(b->tick_ctx, util_now_ns());

		/* in ms, rounded up: never a busy loop on a deadline
		 * less than a millisecond away */
		b->tick_next_ms = t == UINT64_MAX ? UINT64_MAX : (t + 999999) / 1000000;
	}
	return 0;
}

/* Stopping: whatever is in progress ends now, callbacks included. */
static void loop_end(struct svc_backend *b)
{
	while (b->active)
		job_finish(b, b->active, SVC_ERR_OVERLOADED, 1);
}

static void *backend_loop(void *arg)
{
	struct svc_backend *b = arg;

	while (!loop_turn(b, 1))
		util_heap_release_due(util_now_ms());
	loop_end(b);
	return NULL;
}

int svc_backend_step(void *arg, int ready, int64_t *next_us)
{
	struct svc_backend *b = arg;
	uint64_t next, now;

	if (!atomic_load(&b->th_on)) { /* the first turn: this thread is the loop */
		b->th = pthread_self();
		atomic_store(&b->th_on, 1);
	}
	loop_turn(b, ready ? 0 : -1);
	next = loop_next(b);
	now = util_now_ms();
	*next_us = next == UINT64_MAX ? -1 : next <= now ? 0 : (int64_t)(next - now) * 1000;
	return !next;
}

int svc_backend_turn_here(struct svc_backend *b)
{
	if (!b || !b->hosted)
		return 0;
	b->th = pthread_self();
	atomic_store(&b->th_on, 1);
	loop_turn(b, 0);
	return 1;
}

int svc_backend_fd(const struct svc_backend *b)
{
	return b->epfd;
}

int svc_backend_new(struct svc_backend **out, const struct svc_backend_opts *opts)
{
	struct svc_backend_opts o = {0};
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
	struct svc_backend *b;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (opts)
		o = *opts;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->max_inflight = o.max_inflight ? o.max_inflight : SVC_BACKEND_DEFAULT_MAX_INFLIGHT;
	b->max_per_service =
	    o.max_per_service ? o.max_per_service : SVC_BACKEND_DEFAULT_MAX_PER_SERVICE;
	b->timeout_ms = o.timeout_ms ? o.timeout_ms : SVC_BACKEND_DEFAULT_TIMEOUT_MS;
	b->max_response = o.max_response ? o.max_response : SVC_BACKEND_DEFAULT_MAX_RESPONSE;
	b->pool_conns = o.pool_conns ? o.pool_conns : SVC_BACKEND_DEFAULT_POOL_CONNS;
	b->idle_ms = o.idle_ms ? o.idle_ms : SVC_BACKEND_DEFAULT_IDLE_MS;
	b->tick = o.tick;
	b->tick_ctx = o.tick_ctx;
	b->tick_next_ms = UINT64_MAX;
	b->idle_next = UINT64_MAX;
	b->hosted = o.hosted;
	pthread_mutex_init(&b->mu, NULL);
	atomic_init(&b->mq_head, &b->mq_stub);
	b->mq_tail = &b->mq_stub;
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	b->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->epfd < 0 || b->evfd < 0 || epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->evfd, &e)) {
		err = -errno;
		goto fail;
	}
	err = b->hosted ? 0 : -log_thread_create(&b->th, NULL, backend_loop, b, "weft-backend");
	if (err)
		goto fail;
	atomic_store(&b->th_on, !b->hosted);
	atomic_store(&b->mq_open, 1);
	*out = b;
	return 0;
fail:
	svc_backend_free(b);
	return err;
}

void svc_backend_free(struct svc_backend *b)
{
	struct bjob *j;

	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	b->stop = 1;
	atomic_store(&b->pend_any, 1);
	pthread_mutex_unlock(&b->mu);
	if (b->hosted) { /* its host stopped: this thread ends it */
		atomic_store(&b->th_on, 0);
		loop_turn(b, 0);
		loop_end(b);
	} else if (atomic_load(&b->th_on)) {
		svc_bk_wake(b);
		pthread_join(b->th, NULL);
	}
	/* Posted messages left: released, not run. A producer inside
	 * svc_backend_post finishes its link first (a few instructions). */
	atomic_store(&b->mq_open, 0);
	while (atomic_load(&b->mq_busy))
		sched_yield();
	svc_bk_mq_run(b, 1);
	while ((j = b->pend_head)) {
		b->pend_head = j->next;
		j->fd = -1;
		job_finish(b, j, SVC_ERR_OVERLOADED, 0);
	}
	/* Every call has ended: only idle connections are left. */
	while (b->pools) {
		struct bpool *p = b->pools;
		struct bconn *c;

		while ((c = p->idle)) {
			idle_unlink(b, c);
			conn_close(b, c);
		}
		b->pools = p->next;
		free(p);
	}
	while (b->svcs) {
		struct bsvc *s = b->svcs;

		b->svcs = s->next;
		free(s);
	}
	if (b->epfd >= 0)
		close(b->epfd);
	if (b->evfd >= 0)
		close(b->evfd);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

/* Queue j unless a bound says no: 0, -EBUSY or -ESHUTDOWN. */
static int enqueue(struct svc_backend *b, struct bjob *j, const char *service)
{
	struct bsvc *s = NULL;

	pthread_mutex_lock(&b->mu);
	if (b->stop) {
		pthread_mutex_unlock(&b->mu);
		return -ESHUTDOWN;
	}
	/* A new per-service entry starts at 0 < max_per_service. */
	if (b->inflight >= b->max_inflight ||
	    (service && (!(s = bsvc_get(b, service)) || s->n >= b->max_per_service))) {
		b->stat_busy++;
		pthread_mutex_unlock(&b->mu);
		return -EBUSY;
	}
	b->inflight++;
	if (s)
		s->n++;
	j->svc = s;
	j->next = NULL;
	if (b->pend_tail)
		b->pend_tail->next = j;
	else
		b->pend_head = j;
	b->pend_tail = j;
	atomic_store_explicit(&b->pend_any, 1, memory_order_release);
	pthread_mutex_unlock(&b->mu);
	/* On the loop itself (the fabric's owner answering a peer): it
	 * takes the queue before it sleeps again, no wake-up needed. */
	if (svc_backend_on_loop(b))
		b->kick = 1;
	else
		svc_bk_wake(b);
	return 0;
}

/* A job for addr whose request is head[0..hl) then body[0..len) (both
 * copied). */
static struct bjob *job_new(struct svc_backend *b, const char *addr, const char *head, size_t hl,
			    const uint8_t *body, size_t len, uint32_t timeout_ms)
{
	struct bjob *j;
	struct sockaddr_storage ss;
	socklen_t sl;

	if (!b || (!body && len) || !addr || strlen(addr) >= sizeof(j->addr) ||
	    svc_backend_parse_addr(addr, &ss, &sl))
		return NULL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	if (hl + len) {
		j->out = malloc(hl + len);
		if (!j->out) {
			free(j);
			return NULL;
		}
		if (hl)
			memcpy(j->out, head, hl);
		if (len)
			memcpy(j->out + hl, body, len);
	}
	j->kind = BK_JOB;
	j->fd = -1;
	j->out_len = hl + len;
	snprintf(j->addr, sizeof(j->addr), "%s", addr);
	j->timeout_ms = timeout_ms ? timeout_ms : b->timeout_ms;
	svc_bhttp_resp_init(&j->rp, b->max_response);
	return j;
}

int svc_backend_submit(struct svc_backend *b, const char *addr, const struct svc_backend_req *r,
		       svc_backend_done_fn done, void *ctx)
{
	char head[SVC_BHTTP_REQ_HEAD_MAX];
	uint8_t rid[SVC_REQ_ID_LEN];
	struct svc_bhttp_meta m = {0};
	struct bjob *j;
	int hl, err;

	if (!b || !r || !done || !r->service || !r->caller || (!r->payload && r->len))
		return -EINVAL;
	if (r->assertion) {
		memcpy(rid, r->assertion, SVC_REQ_ID_LEN);
	} else {
		randombytes_buf(rid, sizeof(rid));
	}
	m.service = r->service;
	m.method = r->method ? r->method : "";
	m.version = r->version;
	m.caller = r->caller;
	m.req_id = rid;
	m.assertion = r->assertion;
	m.deadline_ms = r->timeout_ms ? r->timeout_ms : b->timeout_ms;
	hl = svc_bhttp_req_head(head, sizeof(head), &m, r->len);
	if (hl < 0)
		return -EINVAL;
	j = job_new(b, addr, head, (size_t)hl, r->payload, r->len, r->timeout_ms);
	if (!j)
		return -EINVAL;
	j->done = done;
	j->ctx = ctx;
	err = enqueue(b, j, r->service);
	if (err)
		job_free(j);
	return err;
}

int svc_backend_stream(struct svc_backend *b, const char *addr, const char *service,
		       const uint8_t *req, size_t len, uint32_t timeout_ms,
		       const struct svc_backend_sink *sink, void *ctx)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct bjob *j;
	uint8_t *w = NULL;
	size_t wl = 0;
	unsigned int fl = 0;
	int err;

	if (!b || !sink || !sink->data || !sink->end || !req ||
	    svc_backend_parse_addr(addr, &ss, &sl))
		return -EINVAL;
	err = svc_bhttp_pass_req(req, len, &w, &wl, &fl);
	if (err)
		return err;
	j = job_new(b, addr, NULL, 0, w, wl, timeout_ms);
	free(w);
	if (!j || !(j->in = malloc(BJ_CHUNK))) {
		if (j)
			job_free(j);
		return -ENOMEM;
	}
	j->stream = 1;
	j->rp.stream = 1;
	j->rp.max_body = SIZE_MAX; /* streamed: no total, held at most BJ_CHUNK */
	j->rp.no_body = !!(fl & SVC_BHTTP_PASS_HEAD);
	j->retry = !!(fl & SVC_BHTTP_PASS_IDEMPOTENT);
	j->sink = sink;
	j->ctx = ctx;
	err = enqueue(b, j, service);
	if (err)
		job_free(j);
	return err;
}
