// SPDX-License-Identifier: MIT
/* Local backend forwarder: raw TCP / unix-socket calls on a worker pool. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

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

int svc_backend_connect(const char *addr, uint32_t timeout_ms)
{
	uint64_t deadline =
	    util_now_ms() + (timeout_ms ? timeout_ms : SVC_BACKEND_DEFAULT_TIMEOUT_MS);
	struct sockaddr_storage ss;
	socklen_t sl, el = sizeof(int);
	int fd, e = 0, fl;

	if (backend_addr(addr, &ss, &sl))
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		if (errno != EINPROGRESS) {
			e = -errno;
			close(fd);
			return e;
		}
		if (wait_fd(fd, POLLOUT, deadline)) {
			close(fd);
			return -ETIMEDOUT;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e) {
			close(fd);
			return -ECONNREFUSED;
		}
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
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

/* ---- worker pool ---- */
struct backend_job {
	struct backend_job *next;
	char addr[128];
	uint8_t *payload;
	size_t len;
	uint32_t timeout_ms;
	svc_backend_done_fn done;
	void *ctx;
};

struct svc_backend {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct backend_job *head, *tail;
	uint32_t queued, queue_cap;
	uint32_t timeout_ms, max_response;
	int stop;
	uint32_t n_threads;
	pthread_t *threads;
};

static void *backend_worker(void *arg)
{
	struct svc_backend *b = arg;

	for (;;) {
		struct backend_job *j;
		uint8_t *resp;
		size_t rlen;
		int res;

		pthread_mutex_lock(&b->mu);
		while (!b->head && !b->stop)
			pthread_cond_wait(&b->cv, &b->mu);
		if (b->stop) {
			pthread_mutex_unlock(&b->mu);
			return NULL;
		}
		j = b->head;
		b->head = j->next;
		if (!b->head)
			b->tail = NULL;
		b->queued--;
		pthread_mutex_unlock(&b->mu);

		res = svc_backend_call(j->addr, j->payload, j->len, j->timeout_ms, b->max_response,
				       &resp, &rlen);
		j->done(j->ctx, res, resp, rlen);
		free(j->payload);
		free(j);
	}
}

static void backend_stop(struct svc_backend *b)
{
	pthread_mutex_lock(&b->mu);
	b->stop = 1;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	for (uint32_t i = 0; i < b->n_threads; i++)
		pthread_join(b->threads[i], NULL);
	b->n_threads = 0;
}

int svc_backend_new(struct svc_backend **out, const struct svc_backend_opts *opts)
{
	struct svc_backend_opts o = {0};
	struct svc_backend *b;
	uint32_t want;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (opts)
		o = *opts;
	if (o.threads > 256)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	want = o.threads ? o.threads : SVC_BACKEND_DEFAULT_THREADS;
	b->queue_cap = o.queue ? o.queue : SVC_BACKEND_DEFAULT_QUEUE;
	b->timeout_ms = o.timeout_ms ? o.timeout_ms : SVC_BACKEND_DEFAULT_TIMEOUT_MS;
	b->max_response = o.max_response ? o.max_response : SVC_BACKEND_DEFAULT_MAX_RESPONSE;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->threads = calloc(want, sizeof(*b->threads));
	if (!b->threads) {
		err = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < want; i++) {
		err = -log_thread_create(&b->threads[i], NULL, backend_worker, b);
		if (err)
			goto fail;
		b->n_threads++;
	}
	*out = b;
	return 0;
fail:
	svc_backend_free(b);
	return err;
}

void svc_backend_free(struct svc_backend *b)
{
	struct backend_job *j;

	if (!b)
		return;
	backend_stop(b);
	while ((j = b->head)) {
		b->head = j->next;
		j->done(j->ctx, SVC_ERR_OVERLOADED, NULL, 0);
		free(j->payload);
		free(j);
	}
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b->threads);
	free(b);
}

int svc_backend_submit(struct svc_backend *b, const char *addr, const uint8_t *payload, size_t len,
		       uint32_t timeout_ms, svc_backend_done_fn done, void *ctx)
{
	struct backend_job *j;
	struct sockaddr_storage ss;
	socklen_t sl;

	if (!b || !done || (!payload && len) || !addr || strlen(addr) >= sizeof(j->addr) ||
	    backend_addr(addr, &ss, &sl))
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	if (len) {
		j->payload = malloc(len);
		if (!j->payload) {
			free(j);
			return -ENOMEM;
		}
		memcpy(j->payload, payload, len);
	}
	snprintf(j->addr, sizeof(j->addr), "%s", addr);
	j->len = len;
	j->timeout_ms = timeout_ms ? timeout_ms : b->timeout_ms;
	j->done = done;
	j->ctx = ctx;
	pthread_mutex_lock(&b->mu);
	if (b->queued >= b->queue_cap || b->stop) {
		pthread_mutex_unlock(&b->mu);
		free(j->payload);
		free(j);
		return -EAGAIN;
	}
	if (b->tail)
		b->tail->next = j;
	else
		b->head = j;
	b->tail = j;
	b->queued++;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	return 0;
}
