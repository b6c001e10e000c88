// SPDX-License-Identifier: MIT
/* Local backend forwarder: raw TCP / unix-socket calls and HTTP streams,
 * driven by one event-loop thread (epoll, non-blocking sockets). */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <poll.h>
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

#include "weft/log.h"
#include "weft/log.h"
#include "weft/svc_backend.h"
#include "weft/util.h"

static int backend_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sl)
{
	memset(ss, 0, sizeof(*ss));
	if (!addr)
		return -EINVAL;
	if (strncmp(addr, "tcp:", 4) == 0) {
		unsigned int l;

		if (util_parse_addr(addr + 4, ss, &l))
			return -EINVAL;
		*sl = l;
		return 0;
	}
	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		size_t pl = strlen(addr + 5);

		if (pl == 0 || pl >= sizeof(sun->sun_path))
			return -EINVAL;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, addr + 5, pl);
		*sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + pl + 1);
		return 0;
	}
	return -EINVAL;
}

int svc_backend_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sl)
{
	return backend_addr(addr, ss, sl);
}

static int64_t ms_left(uint64_t deadline_ms)
{
	uint64_t now = util_now_ms();

	return now >= deadline_ms ? 0 : (int64_t)(deadline_ms - now);
}

/* Wait for ev on fd until the deadline: 0 ready, SVC_ERR_TIMEOUT, or
 * SVC_ERR_BACKEND_ERROR. */
static int wait_fd(int fd, short ev, uint64_t deadline_ms)
{
	struct pollfd p = {.fd = fd, .events = ev};

	for (;;) {
		int64_t left = ms_left(deadline_ms);
		int n;

		if (left <= 0)
			return SVC_ERR_TIMEOUT;
		n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return SVC_ERR_BACKEND_ERROR;
	}
}

int svc_backend_call(const char *addr, const uint8_t *payload, size_t len, uint32_t timeout_ms,
		     size_t max_response, uint8_t **resp, size_t *resp_len)
{
	uint64_t deadline =
	    util_now_ms() + (timeout_ms ? timeout_ms : SVC_BACKEND_DEFAULT_TIMEOUT_MS);
	struct sockaddr_storage ss;
	uint8_t *buf = NULL;
	size_t have = 0, cap = 0, off = 0;
	socklen_t sl;
	int fd, res;

	*resp = NULL;
	*resp_len = 0;
	if ((!payload && len) || backend_addr(addr, &ss, &sl))
		return SVC_ERR_BAD_REQUEST;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return SVC_ERR_BACKEND_ERROR;
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		int e = 0;
		socklen_t el = sizeof(e);

		/* EAGAIN on a unix socket is a full backlog, not a pending
		 * connect: the backend is overwhelmed, report it as failed */
		if (errno != EINPROGRESS) {
			res = SVC_ERR_BACKEND_ERROR;
			goto out;
		}
		res = wait_fd(fd, POLLOUT, deadline);
		if (res)
			goto out;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e) {
			res = SVC_ERR_BACKEND_ERROR;
			goto out;
		}
	}
	while (off < len) {
		ssize_t n = send(fd, payload + off, len - off, MSG_NOSIGNAL);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			res = wait_fd(fd, POLLOUT, deadline);
			if (res)
				goto out;
			continue;
		}
		res = SVC_ERR_BACKEND_ERROR;
		goto out;
	}
	if (shutdown(fd, SHUT_WR) < 0) {
		res = SVC_ERR_BACKEND_ERROR;
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (have == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			uint8_t *nb;

			/* one byte past the cap detects an oversized answer */
			if (ncap > max_response + 1)
				ncap = max_response + 1;
			if (ncap <= cap) {
				res = SVC_ERR_TOO_LARGE;
				goto out;
			}
			nb = realloc(buf, ncap);
			if (!nb) {
				res = SVC_ERR_BACKEND_ERROR;
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		n = recv(fd, buf + have, cap - have, 0);
		if (n > 0) {
			have += (size_t)n;
			if (have > max_response) {
				res = SVC_ERR_TOO_LARGE;
				goto out;
			}
			continue;
		}
		if (n == 0)
			break;
		if (errno == EAGAIN || errno == EINTR) {
			res = wait_fd(fd, POLLIN, deadline);
			if (res)
				goto out;
			continue;
		}
		res = SVC_ERR_BACKEND_ERROR;
		goto out;
	}
	res = SVC_OK;
	if (have) {
		*resp = buf;
		*resp_len = have;
		buf = NULL;
	}
out:
	free(buf);
	close(fd);
	return res;
}

/* ---- event loop ---- */

enum { BJ_CONNECTING = 1, BJ_WRITING, BJ_READING, BJ_BLOCKED };

/* Per-service count of requests in progress (a short list: services with
 * at least one request in flight). */
struct bsvc {
	struct bsvc *next;
	char name[SVC_NAME_MAX + 1];
	uint32_t n;
};

struct bjob {
	struct bjob *next, *prev; /* pending queue, then the loop's active list */
	struct bsvc *svc;
	int fd;
	int state;
	int stream, fin;
	char addr[128];
	uint8_t *out; /* request bytes */
	size_t out_len, out_off;
	uint8_t *in; /* call: the answer so far; stream: a chunk the sink refused */
	size_t in_len, in_cap;
	uint32_t timeout_ms;
	uint64_t deadline_ms; /* call: absolute; stream: no progress until then */
	uint64_t retry_ms;    /* BJ_BLOCKED: offer the chunk again then */
	svc_backend_done_fn done;
	const struct svc_backend_sink *sink;
	void *ctx;
};

struct svc_backend {
	pthread_mutex_t mu; /* submissions and counts */
	struct bjob *pend_head, *pend_tail;
	struct bsvc *svcs;
	uint32_t inflight;
	uint32_t max_inflight, max_per_service, timeout_ms, max_response;
	int stop;
	int epfd, evfd;
	pthread_t th;
	int th_on;
	struct bjob *active; /* loop thread only */
	uint64_t stat_busy, stat_timeout;
	uint64_t (*tick)(void *ctx, uint64_t now_ns); /* loop thread only */
	void *tick_ctx;
	uint64_t tick_next_ms; /* when tick wants to run again */
	/* Posted messages (svc_backend_post): D. Vyukov's intrusive MPSC
	 * queue; head is where producers link, tail the consumer's end. */
	struct svc_backend_msg *_Atomic mq_head;
	struct svc_backend_msg *mq_tail; /* loop thread (and free) only */
	struct svc_backend_msg mq_stub;
	atomic_int mq_wake;  /* a wake-up is on its way: producers skip theirs */
	atomic_int mq_open;  /* the loop takes messages */
	atomic_uint mq_busy; /* producers inside svc_backend_post */
	struct { /* svc_backend_watch: one more descriptor */
		void (*fn)(void *ctx);
		void *ctx;
	} watch;
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
	free(j->out);
	free(j->in);
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

/* End j with err (an enum svc_err): counts, callback, free. */
static void job_finish(struct svc_backend *b, struct bjob *j, int err, int linked)
{
	if (linked)
		active_unlink(b, j);
	if (j->fd >= 0) {
		epoll_ctl(b->epfd, EPOLL_CTL_DEL, j->fd, NULL);
		close(j->fd);
	}
	pthread_mutex_lock(&b->mu);
	bsvc_put(b, j->svc);
	if (err == SVC_ERR_TIMEOUT)
		b->stat_timeout++;
	pthread_mutex_unlock(&b->mu);
	if (j->stream) {
		j->sink->end(j->ctx, err);
	} else {
		uint8_t *resp = err == SVC_OK && j->in_len ? j->in : NULL;

		if (resp)
			j->in = NULL;
		j->done(j->ctx, err, resp, resp ? j->in_len : 0);
	}
	job_free(j);
}

static int job_arm(struct svc_backend *b, struct bjob *j, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = j};

	return epoll_ctl(b->epfd, EPOLL_CTL_MOD, j->fd, &e);
}

/* Offer the held chunk (or the end) to the sink: 0 taken, 1 try later,
 * -1 finished. */
static int job_deliver(struct svc_backend *b, struct bjob *j)
{
	int r = j->sink->data(j->ctx, j->in, j->in_len, j->fin);

	if (r == -EAGAIN) {
		/* Out of epoll while blocked: a hung-up socket would otherwise
		 * report EPOLLHUP on every pass. */
		if (j->state != BJ_BLOCKED)
			epoll_ctl(b->epfd, EPOLL_CTL_DEL, j->fd, NULL);
		j->state = BJ_BLOCKED;
		j->retry_ms = util_now_ms() + BJ_RETRY_MS;
		return 1;
	}
	if (r < 0) {
		job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
		return -1;
	}
	if (j->fin) {
		job_finish(b, j, SVC_OK, 1);
		return -1;
	}
	j->in_len = 0;
	j->deadline_ms = util_now_ms() + j->timeout_ms; /* progress */
	if (j->state == BJ_BLOCKED) {
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = j};

		j->state = BJ_READING;
		if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, j->fd, &e)) {
			job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
			return -1;
		}
	}
	return 0;
}

static void job_read(struct svc_backend *b, struct bjob *j)
{
	for (;;) {
		size_t want;
		ssize_t n;

		if (j->stream) {
			want = BJ_CHUNK;
		} else {
			if (j->in_len == j->in_cap) {
				size_t nc = j->in_cap ? j->in_cap * 2 : 4096;
				uint8_t *nb;

				/* one byte past the cap detects an oversized answer */
				if (nc > (size_t)b->max_response + 1)
					nc = (size_t)b->max_response + 1;
				if (nc <= j->in_cap) {
					job_finish(b, j, SVC_ERR_TOO_LARGE, 1);
					return;
				}
				nb = realloc(j->in, nc);
				if (!nb) {
					job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
					return;
				}
				j->in = nb;
				j->in_cap = nc;
			}
			want = j->in_cap - j->in_len;
		}
		n = recv(j->fd, j->in + j->in_len, want, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
			return;
		}
		if (!j->stream) {
			j->in_len += (size_t)n;
			if (j->in_len > b->max_response) {
				job_finish(b, j, SVC_ERR_TOO_LARGE, 1);
				return;
			}
			if (n == 0) {
				job_finish(b, j, SVC_OK, 1);
				return;
			}
			continue;
		}
		j->in_len = (size_t)n;
		j->fin = n == 0;
		if (job_deliver(b, j))
			return;
	}
}

static void job_write(struct svc_backend *b, struct bjob *j)
{
	while (j->out_off < j->out_len) {
		ssize_t n = send(j->fd, j->out + j->out_off, j->out_len - j->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
			return;
		}
		j->out_off += (size_t)n;
	}
	/* A call ends its request with a half-close (the raw protocol); an
	 * HTTP request carries its own length. */
	if (!j->stream && shutdown(j->fd, SHUT_WR) < 0) {
		job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
		return;
	}
	j->state = BJ_READING;
	if (j->stream) {
		j->in = malloc(BJ_CHUNK);
		if (!j->in) {
			job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
			return;
		}
		j->in_cap = BJ_CHUNK;
	}
	job_arm(b, j, EPOLLIN);
	job_read(b, j);
}

static void job_io(struct svc_backend *b, struct bjob *j, uint32_t ev)
{
	if (j->state == BJ_CONNECTING) {
		int e = 0;
		socklen_t el = sizeof(e);

		if (getsockopt(j->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e) {
			job_finish(b, j, SVC_ERR_BACKEND_ERROR, 1);
			return;
		}
		j->state = BJ_WRITING;
	}
	if (j->state == BJ_WRITING)
		job_write(b, j);
	else if (j->state == BJ_READING)
		job_read(b, j);
	(void)ev;
}

/* Open j's connection and put it on the active list. */
static void job_start(struct svc_backend *b, struct bjob *j)
{
	struct sockaddr_storage ss;
	struct epoll_event e = {.events = EPOLLOUT, .data.ptr = j};
	socklen_t sl;

	j->deadline_ms = util_now_ms() + j->timeout_ms;
	if (backend_addr(j->addr, &ss, &sl)) {
		job_finish(b, j, SVC_ERR_BAD_REQUEST, 0);
		return;
	}
	j->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (j->fd < 0) {
		job_finish(b, j, SVC_ERR_BACKEND_ERROR, 0);
		return;
	}
	/* EAGAIN on a unix socket is a full backlog, not a pending connect:
	 * the backend is overwhelmed, report it as failed. */
	if (connect(j->fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
		job_finish(b, j, SVC_ERR_BACKEND_ERROR, 0);
		return;
	}
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, j->fd, &e)) {
		job_finish(b, j, SVC_ERR_BACKEND_ERROR, 0);
		return;
	}
	j->state = BJ_CONNECTING;
	j->prev = NULL;
	j->next = b->active;
	if (b->active)
		b->active->prev = j;
	b->active = j;
}

static void wake(struct svc_backend *b);

/* Link m at the producers' end (any thread). */
static void mq_push(struct svc_backend *b, struct svc_backend_msg *m)
{
	struct svc_backend_msg *prev;

	atomic_store(&m->next, NULL);
	prev = atomic_exchange(&b->mq_head, m);
	atomic_store(&prev->next, m);
}

/* Take the oldest posted message (the loop; free once it has joined), or
 * NULL when none is complete yet (a producer between its exchange and its
 * link: its own wake-up follows). */
static struct svc_backend_msg *mq_pop(struct svc_backend *b)
{
	struct svc_backend_msg *tail = b->mq_tail, *next = atomic_load(&tail->next);

	if (tail == &b->mq_stub) {
		if (!next)
			return NULL;
		b->mq_tail = tail = next;
		next = atomic_load(&tail->next);
	}
	if (next) {
		b->mq_tail = next;
		return tail;
	}
	if (tail != atomic_load(&b->mq_head))
		return NULL;
	/* tail is the last one: put the stub behind it, then take it. */
	mq_push(b, &b->mq_stub);
	next = atomic_load(&tail->next);
	if (!next)
		return NULL;
	b->mq_tail = next;
	return tail;
}

int svc_backend_post(struct svc_backend *b, struct svc_backend_msg *m)
{
	atomic_fetch_add(&b->mq_busy, 1);
	if (!atomic_load(&b->mq_open)) {
		atomic_fetch_sub(&b->mq_busy, 1);
		return -ESHUTDOWN;
	}
	mq_push(b, m);
	if (!atomic_exchange(&b->mq_wake, 1))
		wake(b);
	atomic_fetch_sub(&b->mq_busy, 1);
	return 0;
}

int svc_backend_on_loop(const struct svc_backend *b)
{
	return b && b->th_on && pthread_equal(pthread_self(), b->th);
}

/* Run every posted message that is complete (the loop). */
static void mq_run(struct svc_backend *b, int cancel)
{
	struct svc_backend_msg *m;

	atomic_store(&b->mq_wake, 0);
	while ((m = mq_pop(b)))
		m->fn(m, cancel);
}

static void *backend_loop(void *arg)
{
	struct svc_backend *b = arg;
	struct epoll_event evs[64];

	for (;;) {
		uint64_t now = util_now_ms(), next = UINT64_MAX;
		struct bjob *j, *nx, *pend;
		int n, stop;

		if (b->tick && b->tick_next_ms < next)
			next = b->tick_next_ms;
		for (j = b->active; j; j = j->next) {
			if (j->deadline_ms < next)
				next = j->deadline_ms;
			if (j->state == BJ_BLOCKED && j->retry_ms < next)
				next = j->retry_ms;
		}
		n = epoll_wait(b->epfd, evs, 64,
			       next == UINT64_MAX ? -1 : next <= now ? 0 : (int)(next - now));
		for (int i = 0; i < n; i++) {
			if (!evs[i].data.ptr) {
				uint64_t v;

				(void)!read(b->evfd, &v, sizeof(v));
				continue;
			}
			if (evs[i].data.ptr == &b->watch) {
				b->watch.fn(b->watch.ctx);
				continue;
			}
			job_io(b, evs[i].data.ptr, evs[i].events);
		}
		mq_run(b, 0);
		pthread_mutex_lock(&b->mu);
		pend = b->pend_head;
		b->pend_head = b->pend_tail = NULL;
		stop = b->stop;
		pthread_mutex_unlock(&b->mu);
		for (j = pend; j; j = nx) {
			nx = j->next;
			if (stop)
				job_finish(b, j, SVC_ERR_OVERLOADED, 0);
			else
				job_start(b, j);
		}
		if (stop)
			break;
		now = util_now_ms();
		for (j = b->active; j; j = nx) {
			nx = j->next;
			if (now >= j->deadline_ms)
				job_finish(b, j, SVC_ERR_TIMEOUT, 1);
			else if (j->state == BJ_BLOCKED && now >= j->retry_ms)
				job_deliver(b, j);
		}
		if (b->tick) {
			uint64_t t = b->tick(b->tick_ctx, util_now_ns());

			/* in ms, rounded up: never a busy loop on a deadline
			 * less than a millisecond away */
			b->tick_next_ms = t == UINT64_MAX ? UINT64_MAX : (t + 999999) / 1000000;
		}
	}
	/* Stopping: whatever is in progress ends now, callbacks included. */
	while (b->active)
		job_finish(b, b->active, SVC_ERR_OVERLOADED, 1);
	return NULL;
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
	b->tick = o.tick;
	b->tick_ctx = o.tick_ctx;
	b->tick_next_ms = UINT64_MAX;
	pthread_mutex_init(&b->mu, NULL);
	atomic_init(&b->mq_head, &b->mq_stub);
	b->mq_tail = &b->mq_stub;
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	b->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->epfd < 0 || b->evfd < 0 || epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->evfd, &e)) {
		err = -errno;
		goto fail;
	}
	err = -log_thread_create(&b->th, NULL, backend_loop, b);
	if (err)
		goto fail;
	b->th_on = 1;
	atomic_store(&b->mq_open, 1);
	*out = b;
	return 0;
fail:
	svc_backend_free(b);
	return err;
}

static void wake(struct svc_backend *b)
{
	uint64_t one = 1;

	(void)!write(b->evfd, &one, sizeof(one));
}

void svc_backend_free(struct svc_backend *b)
{
	struct bjob *j;

	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	b->stop = 1;
	pthread_mutex_unlock(&b->mu);
	if (b->th_on) {
		wake(b);
		pthread_join(b->th, NULL);
	}
	/* Posted messages left: released, not run. A producer inside
	 * svc_backend_post finishes its link first (a few instructions). */
	atomic_store(&b->mq_open, 0);
	while (atomic_load(&b->mq_busy))
		sched_yield();
	mq_run(b, 1);
	while ((j = b->pend_head)) {
		b->pend_head = j->next;
		j->fd = -1;
		job_finish(b, j, SVC_ERR_OVERLOADED, 0);
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
	pthread_mutex_unlock(&b->mu);
	wake(b);
	return 0;
}

static struct bjob *job_new(struct svc_backend *b, const char *addr, const uint8_t *payload,
			    size_t len, uint32_t timeout_ms)
{
	struct bjob *j;
	struct sockaddr_storage ss;
	socklen_t sl;

	if (!b || (!payload && len) || !addr || strlen(addr) >= sizeof(j->addr) ||
	    backend_addr(addr, &ss, &sl))
		return NULL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	if (len) {
		j->out = malloc(len);
		if (!j->out) {
			free(j);
			return NULL;
		}
		memcpy(j->out, payload, len);
	}
	j->fd = -1;
	j->out_len = len;
	snprintf(j->addr, sizeof(j->addr), "%s", addr);
	j->timeout_ms = timeout_ms ? timeout_ms : b->timeout_ms;
	return j;
}

int svc_backend_submit(struct svc_backend *b, const char *addr, const char *service,
		       const uint8_t *payload, size_t len, uint32_t timeout_ms,
		       svc_backend_done_fn done, void *ctx)
{
	struct bjob *j = done ? job_new(b, addr, payload, len, timeout_ms) : NULL;
	int err;

	if (!j)
		return -EINVAL;
	j->done = done;
	j->ctx = ctx;
	err = enqueue(b, j, service);
	if (err)
		job_free(j);
	return err;
}

int svc_backend_stream(struct svc_backend *b, const char *addr, const char *service,
		       const uint8_t *req, size_t len, uint32_t timeout_ms,
		       const struct svc_backend_sink *sink, void *ctx)
{
	struct bjob *j = sink && sink->data && sink->end ? job_new(b, addr, req, len, timeout_ms)
							  : NULL;
	int err;

	if (!j)
		return -EINVAL;
	j->stream = 1;
	j->sink = sink;
	j->ctx = ctx;
	err = enqueue(b, j, service);
	if (err)
		job_free(j);
	return err;
}

int svc_backend_watch(struct svc_backend *b, int fd, void (*fn)(void *ctx), void *ctx)
{
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = &b->watch};

	if (b->watch.fn)
		return -EBUSY;
	b->watch.fn = fn;
	b->watch.ctx = ctx;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &e)) {
		b->watch.fn = NULL;
		return -errno;
	}
	return 0;
}

void svc_backend_stats(struct svc_backend *b, struct svc_backend_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	st->inflight = b->inflight;
	st->busy = b->stat_busy;
	st->timeouts = b->stat_timeout;
	pthread_mutex_unlock(&b->mu);
}
