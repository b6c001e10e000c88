// SPDX-License-Identifier: MIT
/* Backend forwarder against real loopback servers started here: an
 * HTTP/1.1 keep-alive server (over TCP and a unix socket) whose paths
 * answer statuses, chunked bodies, garbage and lies; a silent one. The
 * contract's headers, keep-alive reuse, the pool's bound, error classes,
 * the loop's bounds, deadlines and pass-throughs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"
#include "weft/svc_backend.h"
#include "weft/svc_router.h"

enum srv_mode { SRV_HTTP, SRV_SILENT };

#define SRV_CONNS 64

struct srv {
	int fd;
	enum srv_mode mode;
	volatile int stop;
	volatile int accepted;
	pthread_t th;
	char addr[128];
	char *dir;
	/* HTTP: the connections being served, and the last request head */
	int cfd[SRV_CONNS];
	uint8_t *cbuf[SRV_CONNS];
	size_t clen[SRV_CONNS];
	pthread_mutex_t mu;
	char last_head[2048];
	int requests;
	int doom; /* fd + 1 of a connection whose next request is dropped */
};

static void send_all(int c, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len) {
		ssize_t n = send(c, b, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		b += n;
		len -= (size_t)n;
	}
}

/* Answer one request (head h, body of bl bytes); 0 to keep the
 * connection, -1 to close it. The path says how:
 *   /echo            200, the body back
 *   /status/NNN      status NNN, body "sNNN"
 *   /chunked         200, the body back in two chunks
 *   /close           200 "bye", Connection: close
 *   /drop            200 "bye", then closes without saying so
 *   /garbage         not HTTP
 *   /big             Content-Length far over any cap
 *   /hugehead        a head over 64 KiB
 *   /silent          nothing (the caller's deadline ends it)
 *   /head            200 with Content-Length: 100, hop-by-hop headers and
 *                    no body (the answer to HEAD)
 *   /once            200 "bye", kept open, but the next request on that
 *                    connection is not answered: closed (an idle timeout
 *                    that fires as the request arrives) */
static int http_answer(struct srv *s, int c, const char *h, const uint8_t *body, size_t bl)
{
	char path[128] = "", out[512];
	int n;

	sscanf(h, "%*s %127s ", path);
	if (s->doom == c + 1) {
		s->doom = 0;
		return -1; /* closed as the request came: no answer */
	}
	pthread_mutex_lock(&s->mu);
	snprintf(s->last_head, sizeof(s->last_head), "%s", h);
	s->requests++;
	pthread_mutex_unlock(&s->mu);
	if (!strcmp(path, "/echo")) {
		n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", bl);
		send_all(c, out, (size_t)n);
		send_all(c, body, bl);
	} else if (!strncmp(path, "/status/", 8)) {
		n = snprintf(out, sizeof(out), "HTTP/1.1 %s X\r\nContent-Length: 4\r\n\r\ns%s",
			     path + 8, path + 8);
		send_all(c, out, (size_t)n);
	} else if (!strcmp(path, "/chunked")) {
		size_t half = bl / 2;

		n = snprintf(out, sizeof(out),
			     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n", half);
		send_all(c, out, (size_t)n);
		send_all(c, body, half);
		n = snprintf(out, sizeof(out), "\r\n%zx;x=y\r\n", bl - half);
		send_all(c, out, (size_t)n);
		send_all(c, body + half, bl - half);
		send_all(c, "\r\n0\r\n\r\n", 7);
	} else if (!strcmp(path, "/close")) {
		const char *r = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye";

		send_all(c, r, strlen(r));
		return -1;
	} else if (!strcmp(path, "/drop")) {
		const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye";

		send_all(c, r, strlen(r));
		return -1;
	} else if (!strcmp(path, "/garbage")) {
		send_all(c, "SSH-2.0-nope\r\n\r\n", 16);
	} else if (!strcmp(path, "/hugehead")) {
		static char pad[70 << 10];

		memset(pad, 'p', sizeof(pad));
		send_all(c, "HTTP/1.1 200 OK\r\nX-Pad: ", 24);
		send_all(c, pad, sizeof(pad));
		send_all(c, "\r\n\r\n", 4);
	} else if (!strcmp(path, "/big")) {
		const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\nxxxx";

		send_all(c, r, strlen(r));
	} else if (!strcmp(path, "/silent")) {
		return 0;
	} else if (!strcmp(path, "/once")) {
		const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye";

		s->doom = c + 1;
		send_all(c, r, strlen(r));
	} else if (!strcmp(path, "/head")) {
		const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Kept: 1\r\n"
				"Keep-Alive: timeout=5\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n";

		send_all(c, r, strlen(r));
	} else {
		const char *r = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

		send_all(c, r, strlen(r));
	}
	return 0;
}

/* Serve what connection i has buffered: every complete request. */
static int http_serve(struct srv *s, int i)
{
	for (;;) {
		uint8_t *b = s->cbuf[i];
		size_t len = s->clen[i], hl, cl = 0;
		char head[2048];
		uint8_t *e = memmem(b, len, "\r\n\r\n", 4);
		const char *p;

		if (!e)
			return 0;
		hl = (size_t)(e - b) + 4;
		if (hl >= sizeof(head))
			return -1;
		memcpy(head, b, hl);
		head[hl] = 0;
		p = strcasestr(head, "\r\nContent-Length: ");
		if (p)
			cl = strtoul(p + 18, NULL, 10);
		if (len < hl + cl)
			return 0;
		if (http_answer(s, s->cfd[i], head, b + hl, cl))
			return -1;
		memmove(b, b + hl + cl, len - hl - cl);
		s->clen[i] = len - hl - cl;
	}
}

static void http_main(struct srv *s)
{
	for (int i = 0; i < SRV_CONNS; i++)
		s->cfd[i] = -1;
	while (!s->stop) {
		struct pollfd p[SRV_CONNS + 1];
		int np = 0, map[SRV_CONNS + 1];

		p[np].fd = s->fd;
		p[np++].events = POLLIN;
		for (int i = 0; i < SRV_CONNS; i++)
			if (s->cfd[i] >= 0) {
				map[np] = i;
				p[np].fd = s->cfd[i];
				p[np++].events = POLLIN;
			}
		if (poll(p, (nfds_t)np, 20) <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			int c = accept(s->fd, NULL, NULL);

			for (int i = 0; c >= 0 && i < SRV_CONNS; i++)
				if (s->cfd[i] < 0) {
					__atomic_add_fetch(&s->accepted, 1, __ATOMIC_SEQ_CST);
					s->cfd[i] = c;
					s->clen[i] = 0;
					s->cbuf[i] = malloc(1 << 20);
					c = -1;
				}
			if (c >= 0)
				close(c);
		}
		for (int k = 1; k < np; k++) {
			int i = map[k];
			ssize_t n;

			if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = s->clen[i] < (1 << 20)
				? read(s->cfd[i], s->cbuf[i] + s->clen[i], (1 << 20) - s->clen[i])
				: -1;
			if (n > 0)
				s->clen[i] += (size_t)n;
			if (n <= 0 || http_serve(s, i)) {
				close(s->cfd[i]);
				free(s->cbuf[i]);
				s->cfd[i] = -1;
			}
		}
	}
	for (int i = 0; i < SRV_CONNS; i++)
		if (s->cfd[i] >= 0) {
			close(s->cfd[i]);
			free(s->cbuf[i]);
		}
}

/* Silent: accept, say nothing until stopped. */
static void serve_one(struct srv *s, int c)
{
	while (!s->stop)
		usleep(10000);
	close(c);
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;

	if (s->mode == SRV_HTTP) {
		http_main(s);
		return NULL;
	}
	while (!s->stop) {
		struct pollfd p = {.fd = s->fd, .events = POLLIN};
		int c;

		if (poll(&p, 1, 20) <= 0)
			continue;
		c = accept(s->fd, NULL, NULL);
		if (c >= 0) {
			__atomic_add_fetch(&s->accepted, 1, __ATOMIC_SEQ_CST);
			serve_one(s, c);
		}
	}
	return NULL;
}

static void srv_start_tcp(struct srv *s, enum srv_mode mode)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->mode = mode;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s->fd, 256), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(s->addr, sizeof(s->addr), "tcp:127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_start_unix(struct srv *s)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->mode = SRV_HTTP;
	s->dir = tu_tmpdir();
	assert_non_null(s->dir);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/be.sock", s->dir);
	snprintf(s->addr, sizeof(s->addr), "unix:%s", sun.sun_path);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(s->fd, 64), 0);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
	s->stop = 1;
	pthread_join(s->th, NULL);
	close(s->fd);
	tu_rmrf_free(s->dir);
}

static const uint8_t caller_key[32] = {0xc4, 0x11, 0xe5};

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, ok, errs[SVC_ERR__COUNT];
	uint8_t expect[64][64];
};

struct job_ctx {
	struct waiter *w;
	int idx;
	/* one call's outcome (call_sync) */
	int err;
	uint32_t status;
	uint8_t *resp;
	size_t len;
};

static void on_done(void *ctx, int err, uint32_t status, uint8_t *resp, size_t len)
{
	struct job_ctx *j = ctx;
	struct waiter *w = j->w;

	pthread_mutex_lock(&w->mu);
	if (err >= 0 && err < SVC_ERR__COUNT)
		w->errs[err]++;
	if (err == SVC_OK && len == 64 && memcmp(resp, w->expect[j->idx], 64) == 0)
		w->ok++;
	j->err = err;
	j->status = status;
	j->resp = resp;
	j->len = len;
	w->done++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void wait_for(struct waiter *w, int n)
{
	pthread_mutex_lock(&w->mu);
	while (w->done < n)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static int submit(struct svc_backend *b, const char *addr, const char *service,
		  const char *method, const uint8_t *p, size_t len, uint32_t timeout_ms,
		  struct job_ctx *j)
{
	struct svc_backend_req r = {.service = service, .method = method, .caller = caller_key,
				    .payload = p, .len = len, .timeout_ms = timeout_ms};

	return svc_backend_submit(b, addr, &r, on_done, j);
}

/* One call, waited for: its class; status and body in j (free j->resp). */
static int call_sync(struct svc_backend *b, const char *addr, const char *method,
		     const uint8_t *p, size_t len, uint32_t timeout_ms, struct job_ctx *j)
{
	static struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	int n;

	pthread_mutex_lock(&w.mu);
	n = w.done;
	pthread_mutex_unlock(&w.mu);
	memset(j, 0, sizeof(*j));
	j->w = &w;
	assert_int_equal(submit(b, addr, "app", method, p, len, timeout_ms, j), 0);
	wait_for(&w, n + 1);
	return j->err;
}

static int srv_requests(struct srv *s, char *head, size_t cap)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->requests;
	if (head)
		snprintf(head, cap, "%s", s->last_head);
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* The contract's request: POST /<method>, the Weft-* headers, the body;
 * the answer's body back; one keep-alive connection for many calls. */
static void test_http_call(void **state)
{
	static uint8_t payload[300000];
	struct svc_backend_req r = {.service = "app", .method = "echo", .caller = caller_key,
				    .version = "2.1"};
	uint8_t as[SVC_ASSERT_LEN];
	struct svc_backend_stats st;
	struct svc_backend *b;
	struct job_ctx j;
	char head[2048];
	struct srv s;

	srv_start_tcp(&s, SRV_HTTP);
	assert_int_equal(svc_backend_new(&b, NULL), 0);
	tu_fill(payload, sizeof(payload), 5);
	assert_int_equal(call_sync(b, s.addr, "echo", payload, sizeof(payload), 5000, &j), SVC_OK);
	assert_int_equal(j.status, 200);
	assert_int_equal(j.len, sizeof(payload));
	assert_memory_equal(j.resp, payload, j.len);
	free(j.resp);
	srv_requests(&s, head, sizeof(head));
	assert_non_null(strstr(head, "POST /echo HTTP/1.1\r\n"));
	assert_non_null(strstr(head, "\r\nContent-Length: 300000\r\n"));
	assert_non_null(strstr(head, "\r\nWeft-Service: app\r\n"));
	assert_non_null(strstr(head, "\r\nWeft-Caller: c411e5000000"));
	assert_non_null(strstr(head, "\r\nWeft-Request-Id: "));
	assert_non_null(strstr(head, "\r\nWeft-Deadline: 5000\r\n"));
	assert_null(strstr(head, "Weft-Caller-Assertion"));
	/* empty body, empty answer */
	assert_int_equal(call_sync(b, s.addr, "echo", NULL, 0, 5000, &j), SVC_OK);
	assert_int_equal(j.len, 0);
	assert_null(j.resp);
	/* the assertion and the version, as given */
	memset(as, 0x11, 16);
	memset(as + 16, 0, 8);
	as[23] = 7;
	memset(as + 24, 0xee, 64);
	r.assertion = as;
	{
		static struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER,
					  .cv = PTHREAD_COND_INITIALIZER};
		struct job_ctx jj = {.w = &w};

		assert_int_equal(svc_backend_submit(b, s.addr, &r, on_done, &jj), 0);
		wait_for(&w, 1);
		assert_int_equal(jj.err, SVC_OK);
	}
	srv_requests(&s, head, sizeof(head));
	assert_non_null(strstr(head, "\r\nWeft-Request-Id: 11111111111111111111111111111111\r\n"));
	assert_non_null(strstr(head, "\r\nWeft-Service-Version: 2.1\r\n"));
	assert_non_null(strstr(head, "\r\nWeft-Caller-Assertion: v1 t=7 sig=eeeeeeee"));
	/* keep-alive: 50 more calls, still the one connection */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(call_sync(b, s.addr, "echo", payload, 100, 5000, &j), SVC_OK);
		free(j.resp);
	}
	assert_int_equal(s.accepted, 1);
	svc_backend_stats(b, &st);
	assert_int_equal(st.conns_opened, 1);
	assert_int_equal(st.reused, 52);
	assert_int_equal(st.conns_idle, 1);
	assert_int_equal(st.inflight, 0);
	svc_backend_free(b);
	srv_stop(&s);

	/* the same over a unix socket */
	srv_start_unix(&s);
	assert_int_equal(svc_backend_new(&b, NULL), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(call_sync(b, s.addr, "chunked", payload, 1000, 5000, &j), SVC_OK);
		assert_int_equal(j.len, 1000);
		assert_memory_equal(j.resp, payload, 1000);
		free(j.resp);
	}
	assert_int_equal(s.accepted, 1);
	svc_backend_free(b);
	srv_stop(&s);
}

/* The HTTP status: the call's status, and its class (docs/SERVICE.md). */
static void test_http_status(void **state)
{
	static const struct {
		const char *method;
		int cls;
		uint32_t status;
	} t[] = {
	    {"status/201", SVC_OK, 201},
	    {"status/404", SVC_ERR_BAD_REQUEST, 404},
	    {"status/413", SVC_ERR_TOO_LARGE, 413},
	    {"status/429", SVC_ERR_RATE_LIMITED, 429},
	    {"status/500", SVC_ERR_BACKEND_ERROR, 500},
	    {"status/503", SVC_ERR_OVERLOADED, 503},
	    {"status/504", SVC_ERR_TIMEOUT, 504},
	    {"status/302", SVC_ERR_BACKEND_PROTOCOL, 302},
	};
	struct svc_backend *b;
	struct job_ctx j;
	struct srv s;

	srv_start_tcp(&s, SRV_HTTP);
	assert_int_equal(svc_backend_new(&b, NULL), 0);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(call_sync(b, s.addr, t[i].method, NULL, 0, 5000, &j), t[i].cls);
		assert_int_equal(j.status, t[i].status);
		/* the application's body comes back whatever the status */
		assert_int_equal(j.len, 4);
		assert_memory_equal(j.resp, "s", 1);
		free(j.resp);
	}
	assert_int_equal(s.accepted, 1);
	svc_backend_free(b);
	srv_stop(&s);
}

/* Backends that break the contract: a clear class each, the slot free
 * again, and the next call fine. */
static void test_http_bad(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	struct svc_backend_opts o = {.max_response = 4096};
	struct svc_backend_stats st;
	struct svc_backend *b;
	struct job_ctx j;
	char addr[64];
	struct srv s;
	int fd;

	srv_start_tcp(&s, SRV_HTTP);
	assert_int_equal(svc_backend_new(&b, &o), 0);
	assert_int_equal(call_sync(b, s.addr, "garbage", NULL, 0, 5000, &j), SVC_ERR_BACKEND_PROTOCOL);
	assert_int_equal(j.status, 0);
	assert_null(j.resp);
	assert_int_equal(call_sync(b, s.addr, "big", NULL, 0, 5000, &j), SVC_ERR_TOO_LARGE);
	/* a head over its cap is a broken contract, not a large answer */
	assert_int_equal(call_sync(b, s.addr, "hugehead", NULL, 0, 5000, &j),
			 SVC_ERR_BACKEND_PROTOCOL);
	{
		static uint8_t p[5000];

		assert_int_equal(call_sync(b, s.addr, "echo", p, sizeof(p), 5000, &j),
				 SVC_ERR_TOO_LARGE);
		assert_int_equal(call_sync(b, s.addr, "echo", p, 4096, 5000, &j), SVC_OK);
		free(j.resp);
	}
	assert_int_equal(call_sync(b, s.addr, "silent", NULL, 0, 200, &j), SVC_ERR_TIMEOUT);
	/* a backend that closes after its answer: fine, and the next call
	 * gets a new connection */
	assert_int_equal(call_sync(b, s.addr, "close", NULL, 0, 5000, &j), SVC_OK);
	assert_int_equal(j.len, 3);
	free(j.resp);
	assert_int_equal(call_sync(b, s.addr, "echo", (const uint8_t *)"x", 1, 5000, &j), SVC_OK);
	free(j.resp);
	svc_backend_stats(b, &st);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(st.protocol_errors, 2);
	assert_int_equal(st.timeouts, 1);
	/* every failed call closed its connection: garbage, big, hugehead,
	 * too large, silent, close; then one for the last call */
	assert_int_equal(s.accepted, 7);
	/* a port nobody listens on; unparsable addresses */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	close(fd);
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(call_sync(b, addr, "echo", NULL, 0, 2000, &j), SVC_ERR_BACKEND_ERROR);
	assert_int_equal(call_sync(b, "unix:/nonexistent/weft.sock", "echo", NULL, 0, 2000, &j),
			 SVC_ERR_BACKEND_ERROR);
	assert_int_equal(submit(b, "tcp:localhost:80", "a", "", NULL, 0, 100, &j), -EINVAL);
	assert_int_equal(submit(b, "udp:127.0.0.1:80", "a", "", NULL, 0, 100, &j), -EINVAL);
	assert_int_equal(submit(b, "unix:", "a", "", NULL, 0, 100, &j), -EINVAL);
	assert_int_equal(submit(b, s.addr, "a", "bad method", NULL, 0, 100, &j), -EINVAL);
	svc_backend_free(b);
	srv_stop(&s);
}

/* The pool's bound: never more connections to one backend than
 * pool_conns, the calls past it wait their turn (FIFO) within their
 * deadline; a stalled backend's calls do not hold up another's. */
static void test_http_pool_bound(void **state)
{
	static struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	static struct job_ctx jobs[64];
	struct svc_backend_opts o = {.pool_conns = 2};
	struct svc_backend_stats st;
	struct svc_backend *b;
	struct srv s, quiet;
	struct job_ctx j;

	srv_start_tcp(&s, SRV_HTTP);
	srv_start_tcp(&quiet, SRV_SILENT);
	assert_int_equal(svc_backend_new(&b, &o), 0);
	for (int i = 0; i < 5; i++) {
		jobs[i] = (struct job_ctx){.w = &w};
		assert_int_equal(submit(b, quiet.addr, "stall", "x", NULL, 0, 1000, &jobs[i]), 0);
	}
	/* meanwhile another backend answers */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(call_sync(b, s.addr, "echo", (const uint8_t *)"y", 1, 5000, &j),
				 SVC_OK);
		free(j.resp);
	}
	wait_for(&w, 5);
	assert_int_equal(w.errs[SVC_ERR_TIMEOUT], 5);
	assert_true(quiet.accepted <= 2);
	memset(&w.errs, 0, sizeof(w.errs));
	w.done = 0;
	for (int i = 0; i < 64; i++) {
		jobs[i] = (struct job_ctx){.w = &w, .idx = i};
		tu_fill(w.expect[i], 64, 100 + i);
		assert_int_equal(submit(b, s.addr, "app", "echo", w.expect[i], 64, 10000, &jobs[i]),
				 0);
	}
	wait_for(&w, 64);
	assert_int_equal(w.ok, 64);
	assert_true(s.accepted <= 2);
	svc_backend_stats(b, &st);
	assert_true(st.conns_open <= 2);
	assert_int_equal(st.inflight, 0);
	for (int i = 0; i < 64; i++)
		free(jobs[i].resp);
	svc_backend_free(b);
	srv_stop(&s);
	srv_stop(&quiet);
}

/* Wait (generously) until the pool holds no connection. */
static void wait_no_conns(struct svc_backend *b)
{
	struct svc_backend_stats st;

	for (int i = 0; i < 1000; i++) {
		svc_backend_stats(b, &st);
		if (!st.conns_open)
			break;
		usleep(10000);
	}
	svc_backend_stats(b, &st);
	assert_int_equal(st.conns_open, 0);
	assert_int_equal(st.conns_idle, 0);
}

/* Idle connections: one the backend closes unannounced leaves the pool
 * once the close arrives (the next call gets a new one); idle ones are
 * closed after idle_ms. (A call written at the very moment of such a close
 * fails with backend_error: a POST is not sent twice.) */
static void test_http_idle(void **state)
{
	struct svc_backend_opts o = {.idle_ms = 600000};
	struct svc_backend *b;
	struct job_ctx j;
	struct srv s;

	srv_start_tcp(&s, SRV_HTTP);
	/* idle for 10 minutes: only the close itself empties the pool */
	assert_int_equal(svc_backend_new(&b, &o), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(call_sync(b, s.addr, "drop", NULL, 0, 5000, &j), SVC_OK);
		assert_int_equal(j.len, 3);
		free(j.resp);
		wait_no_conns(b);
	}
	assert_int_equal(s.accepted, 3);
	svc_backend_free(b);
	/* the idle timeout */
	o.idle_ms = 200;
	assert_int_equal(svc_backend_new(&b, &o), 0);
	assert_int_equal(call_sync(b, s.addr, "echo", (const uint8_t *)"z", 1, 5000, &j), SVC_OK);
	free(j.resp);
	assert_int_equal(s.accepted, 4);
	wait_no_conns(b);
	assert_int_equal(call_sync(b, s.addr, "echo", (const uint8_t *)"z", 1, 5000, &j), SVC_OK);
	free(j.resp);
	assert_int_equal(s.accepted, 5);
	svc_backend_free(b);
	srv_stop(&s);
}

static void test_pool(void **state)
{
	static struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct job_ctx jobs[64];
	struct svc_backend *b;
	struct srv s, quiet;

	srv_start_tcp(&s, SRV_HTTP);
	assert_int_equal(svc_backend_new(&b, NULL), 0);
	for (int i = 0; i < 64; i++) {
		jobs[i] = (struct job_ctx){.w = &w, .idx = i};
		tu_fill(w.expect[i], 64, 100 + i);
		assert_int_equal(submit(b, s.addr, "echo", "echo", w.expect[i], 64, 0, &jobs[i]), 0);
	}
	wait_for(&w, 64);
	assert_int_equal(w.ok, 64);
	for (int i = 0; i < 64; i++)
		free(jobs[i].resp);
	assert_int_equal(submit(b, "bogus", "echo", "", NULL, 0, 0, &jobs[0]), -EINVAL);
	svc_backend_free(b);
	srv_stop(&s);

	/* Bounds: 3 in flight node-wide, 2 per service, at a silent backend;
	 * every one ends with a timeout, and the bounds free up after. */
	memset(w.errs, 0, sizeof(w.errs));
	w.done = 0;
	srv_start_tcp(&quiet, SRV_SILENT);
	{
		struct svc_backend_opts o = {.max_inflight = 3, .max_per_service = 2};

		assert_int_equal(svc_backend_new(&b, &o), 0);
	}
	assert_int_equal(submit(b, quiet.addr, "a", "", NULL, 0, 300, &jobs[0]), 0);
	assert_int_equal(submit(b, quiet.addr, "a", "", NULL, 0, 300, &jobs[1]), 0);
	assert_int_equal(submit(b, quiet.addr, "a", "", NULL, 0, 300, &jobs[2]), -EBUSY);
	assert_int_equal(submit(b, quiet.addr, "b", "", NULL, 0, 300, &jobs[3]), 0);
	assert_int_equal(submit(b, quiet.addr, "c", "", NULL, 0, 300, &jobs[4]), -EBUSY);
	wait_for(&w, 3);
	assert_int_equal(w.errs[SVC_ERR_TIMEOUT], 3);
	{
		struct svc_backend_stats st;

		svc_backend_stats(b, &st);
		assert_int_equal(st.inflight, 0);
		assert_int_equal(st.busy, 2);
		assert_int_equal(st.timeouts, 3);
	}
	assert_int_equal(submit(b, quiet.addr, "a", "", NULL, 0, 100, &jobs[0]), 0);
	wait_for(&w, 4);
	/* Ended by svc_backend_free, callback included, without waiting. */
	assert_int_equal(submit(b, quiet.addr, "a", "", NULL, 0, 60000, &jobs[1]), 0);
	svc_backend_free(b);
	assert_int_equal(w.done, 5);
	assert_int_equal(w.errs[SVC_ERR_OVERLOADED], 1);
	srv_stop(&quiet);
}

static int task_count(void)
{
	char path[64];
	FILE *f;
	char line[256];
	int n = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)getpid());
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* 500 calls at once at a backend that accepts and never answers: no
 * thread per call (the process's thread count does not move), each ends
 * with a timeout. */
static void test_stall_no_threads(void **state)
{
	static struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	static struct job_ctx jobs[500];
	struct svc_backend *b;
	struct srv quiet;
	int t0, t1;

	srv_start_tcp(&quiet, SRV_SILENT);
	assert_int_equal(svc_backend_new(&b, NULL), 0);
	t0 = task_count();
	for (int i = 0; i < 500; i++) {
		jobs[i] = (struct job_ctx){.w = &w, .idx = 0};
		assert_int_equal(submit(b, quiet.addr, i % 2 ? "x" : "y", "", NULL, 0, 500, &jobs[i]),
				 0);
	}
	t1 = task_count();
	wait_for(&w, 500);
	assert_int_equal(w.errs[SVC_ERR_TIMEOUT], 500);
	assert_true(t0 > 0);
	assert_int_equal(t1, t0);
	svc_backend_free(b);
	srv_stop(&quiet);
}

/* Streams: every byte reaches the sink, which may push back (-EAGAIN);
 * a silent backend ends with a timeout. */
struct sink_ctx {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t buf[4096];
	size_t got;
	int refusals, fin, ended, err;
	int alternate, offers; /* alternate: every other offer refused */
};

static int sink_data(void *ctx, const uint8_t *buf, size_t len, int fin)
{
	struct sink_ctx *s = ctx;

	if (s->refusals > 0) {
		s->refusals--;
		return -EAGAIN;
	}
	if (s->alternate && !(s->offers++ & 1))
		return -EAGAIN;
	if (s->fin || len > sizeof(s->buf) - s->got)
		return -EINVAL;
	memcpy(s->buf + s->got, buf, len);
	s->got += len;
	s->fin |= fin;
	return 0;
}

static void sink_end(void *ctx, int err)
{
	struct sink_ctx *s = ctx;

	pthread_mutex_lock(&s->mu);
	s->ended++;
	s->err = err;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static const struct svc_backend_sink test_sink = {.data = sink_data, .end = sink_end};

/* One pass-through of req, waited for: its class; what the sink got in s.
 * refusals < 0: the sink refuses every other offer (head, spans, end). */
static int stream_sync(struct svc_backend *b, const char *addr, const char *req,
		       uint32_t timeout_ms, int refusals, struct sink_ctx *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->refusals = refusals > 0 ? refusals : 0;
	s->alternate = refusals < 0;
	assert_int_equal(svc_backend_stream(b, addr, "web", (const uint8_t *)req, strlen(req),
					    timeout_ms, &test_sink, s),
			 0);
	pthread_mutex_lock(&s->mu);
	while (!s->ended)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	assert_int_equal(s->ended, 1);
	s->buf[s->got < sizeof(s->buf) ? s->got : sizeof(s->buf) - 1] = 0;
	return s->err;
}

#define PT(path, body)                                                                             \
	"POST " path " HTTP/1.0\r\nHost: web\r\nConnection: close\r\nContent-Length: " #body  \
	"\r\n\r\n"

/* HTTP pass-through on the pool: the gateway's HTTP/1.0 request goes out
 * as HTTP/1.1 on a kept-alive connection; answers re-framed (de-chunked,
 * hop-by-hop headers dropped) with back-pressure; a backend that closes,
 * garbles or stalls costs only its request. */
static void test_stream(void **state)
{
	struct svc_backend_stats st;
	struct sink_ctx s;
	struct svc_backend *b;
	struct srv web, quiet;
	char head[2048];

	srv_start_tcp(&web, SRV_HTTP);
	srv_start_tcp(&quiet, SRV_SILENT);
	assert_int_equal(svc_backend_new(&b, NULL), 0);
	/* the sink refuses three times: held, offered again, nothing lost */
	assert_int_equal(stream_sync(b, web.addr, PT("/echo", 5) "hello", 2000, 3, &s), SVC_OK);
	assert_string_equal((char *)s.buf, "HTTP/1.1 200 OK\r\n\r\nhello");
	assert_int_equal(s.fin, 1);
	srv_requests(&web, head, sizeof(head));
	assert_non_null(strstr(head, "POST /echo HTTP/1.1\r\nHost: web\r\n"));
	assert_non_null(strstr(head, "\r\nContent-Length: 5\r\n"));
	assert_null(strcasestr(head, "Connection"));
	/* chunked from the backend: the body arrives whole, unframed */
	assert_int_equal(stream_sync(b, web.addr, PT("/chunked", 10) "0123456789", 2000, 1, &s),
			 SVC_OK);
	assert_string_equal((char *)s.buf, "HTTP/1.1 200 OK\r\n\r\n0123456789");
	/* each piece (head, both chunks, the end) held once, nothing lost */
	assert_int_equal(stream_sync(b, web.addr, PT("/chunked", 10) "abcdefghij", 2000, -1, &s),
			 SVC_OK);
	assert_string_equal((char *)s.buf, "HTTP/1.1 200 OK\r\n\r\nabcdefghij");
	assert_true(s.offers >= 8);
	assert_int_equal(s.fin, 1);
	/* HEAD: the head is all, whatever its Content-Length says (kept: the
	 * GET's length); hop-by-hop headers (and what Connection names) stay
	 * on their hop */
	assert_int_equal(stream_sync(b, web.addr,
				     "HEAD /head HTTP/1.1\r\nHost: web\r\nTE: trailers\r\n\r\n",
				     2000, 0, &s),
			 SVC_OK);
	assert_string_equal((char *)s.buf,
			    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Kept: 1\r\n\r\n");
	srv_requests(&web, head, sizeof(head));
	assert_null(strcasestr(head, "TE:"));
	assert_int_equal(__atomic_load_n(&web.accepted, __ATOMIC_SEQ_CST), 1); /* one connection */
	/* Connection: close from the backend: answered, then a new connection */
	assert_int_equal(stream_sync(b, web.addr, PT("/close", 0), 2000, 0, &s), SVC_OK);
	assert_string_equal((char *)s.buf, "HTTP/1.1 200 OK\r\n\r\nbye");
	assert_int_equal(stream_sync(b, web.addr, PT("/status/404", 0), 2000, 0, &s), SVC_OK);
	assert_string_equal((char *)s.buf, "HTTP/1.1 404 X\r\n\r\ns404");
	assert_int_equal(__atomic_load_n(&web.accepted, __ATOMIC_SEQ_CST), 2);
	/* garbage, a length past the cap is fine when streamed, but a lie
	 * (truncated) is the backend's fault */
	assert_int_equal(stream_sync(b, web.addr, PT("/garbage", 0), 2000, 0, &s),
			 SVC_ERR_BACKEND_PROTOCOL);
	assert_int_equal(s.got, 0);
	/* a stalled backend: its deadline, no byte */
	assert_int_equal(stream_sync(b, quiet.addr, "GET / HTTP/1.1\r\nHost: web\r\n\r\n", 200, 0,
				     &s),
			 SVC_ERR_TIMEOUT);
	assert_int_equal(s.got, 0);
	/* still answering after all that, on a kept-alive connection */
	assert_int_equal(stream_sync(b, web.addr, PT("/echo", 2) "ok", 2000, 0, &s), SVC_OK);
	assert_string_equal((char *)s.buf, "HTTP/1.1 200 OK\r\n\r\nok");
	/* a kept-alive connection closed as the next request arrives: an
	 * idempotent one goes again on a new connection, a POST does not */
	assert_int_equal(stream_sync(b, web.addr, PT("/once", 0), 2000, 0, &s), SVC_OK);
	assert_int_equal(stream_sync(b, web.addr, "GET /status/201 HTTP/1.1\r\nHost: web\r\n\r\n",
				     2000, 0, &s),
			 SVC_OK);
	assert_string_equal((char *)s.buf, "HTTP/1.1 201 X\r\n\r\ns201");
	assert_int_equal(stream_sync(b, web.addr, PT("/once", 0), 2000, 0, &s), SVC_OK);
	assert_int_equal(stream_sync(b, web.addr, PT("/echo", 2) "ok", 2000, 0, &s),
			 SVC_ERR_BACKEND_ERROR);
	assert_int_equal(s.got, 0);
	svc_backend_stats(b, &st);
	assert_int_equal(st.inflight, 0);
	assert_true(st.conns_open <= 2);
	/* requests that cannot go on a shared connection are refused */
	assert_int_equal(svc_backend_stream(b, web.addr, "web",
					    (const uint8_t *)PT("/echo", 2) "okGET / HTTP/1.1\r\n\r\n",
					    strlen(PT("/echo", 2)) + 21, 0, &test_sink, &s),
			 -EBADMSG);
	assert_int_equal(svc_backend_stream(b, "bogus", "web", NULL, 0, 0, &test_sink, &s), -EINVAL);
	svc_backend_free(b);
	srv_stop(&web);
	srv_stop(&quiet);
}

/* The whole path: router admits a call for a backend service, the
 * forwarder carries it to the loopback server, done() releases it. */
static void test_router_to_backend(void **state)
{
	struct svc_service_opts so = {.name = "local-app", .kind = SVC_KIND_BACKEND};
	struct svc_router_stats st;
	struct svc_router *r;
	struct svc_ticket t;
	struct svc_reply rep;
	struct svc_peer p = {.key = {1, 2, 3}};
	struct svc_msg m = {.type = SVC_MSG_REQUEST,
			    .service = "local-app",
			    .service_len = 9,
			    .payload = (const uint8_t *)"hello",
			    .payload_len = 5};
	struct svc_backend *b;
	struct job_ctx j;
	struct srv s;
	int err;

	srv_start_tcp(&s, SRV_HTTP);
	so.backend = s.addr;
	assert_int_equal(svc_backend_new(&b, NULL), 0);
	assert_int_equal(svc_router_new(&r, NULL), 0);
	assert_int_equal(svc_router_register(r, &so), 0);
	assert_int_equal(svc_router_call(r, &p, &m, 1000, &rep, &t), 1);
	assert_int_equal(t.kind, SVC_KIND_BACKEND);
	err = call_sync(b, t.backend, "echo", m.payload, m.payload_len, 0, &j);
	assert_int_equal(err, SVC_OK);
	assert_int_equal(j.len, 5);
	assert_memory_equal(j.resp, "hello", 5);
	free(j.resp);
	svc_router_done(r, &t, err, 2000);
	svc_router_get_stats(r, &st);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(st.results[SVC_OK], 1);
	svc_router_free(r);
	svc_backend_free(b);
	srv_stop(&s);
}

/* Hosted (svc_backend_opts.hosted, the fabric's owner on a QUIC worker):
 * no thread of its own; a host thread runs its turns (svc_backend_step),
 * waiting on svc_backend_fd and the time step asks for, as the engine's
 * worker does. Calls are served, a deadline is kept by the host's wait,
 * messages run on the host's thread (the loop's from its first turn), and
 * once the host stopped svc_backend_free ends what is left. */
struct host {
	struct svc_backend *b;
	atomic_int stop;
};

static void *host_main(void *arg)
{
	struct host *h = arg;

	int ready = 1; /* as the engine tells it: 0 only after a poll saw nothing */

	while (!atomic_load(&h->stop)) {
		struct pollfd p = {.fd = svc_backend_fd(h->b), .events = POLLIN};
		int64_t next;

		if (svc_backend_step(h->b, ready, &next)) {
			ready = 1;
			continue;
		}
		ready = poll(&p, 1, next < 0 || next > 20000 ? 20 : (int)((next + 999) / 1000)) != 0;
	}
	return NULL;
}

struct loop_msg {
	struct svc_backend_msg m;
	struct svc_backend *b;
	atomic_int seen; /* 1: ran on the loop's thread, -1: elsewhere */
};

static void loop_msg_run(struct svc_backend_msg *m, int cancel)
{
	struct loop_msg *lm = (struct loop_msg *)m;

	if (!cancel)
		atomic_store(&lm->seen, svc_backend_on_loop(lm->b) ? 1 : -1);
}

static void test_hosted(void **state)
{
	static struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	static struct job_ctx late;
	struct svc_backend_opts o = {.hosted = 1};
	struct loop_msg lm = {.m.fn = loop_msg_run};
	uint8_t payload[1000];
	struct srv s, quiet;
	struct host h = {0};
	struct job_ctx j;
	pthread_t th;
	int t0;

	(void)state;
	srv_start_tcp(&s, SRV_HTTP);
	srv_start_tcp(&quiet, SRV_SILENT);
	t0 = task_count();
	assert_int_equal(svc_backend_new(&h.b, &o), 0);
	assert_int_equal(task_count(), t0); /* no thread of its own */
	assert_true(svc_backend_fd(h.b) >= 0);
	lm.b = h.b;
	assert_int_equal(pthread_create(&th, NULL, host_main, &h), 0);
	tu_fill(payload, sizeof(payload), 9);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(call_sync(h.b, s.addr, "echo", payload, sizeof(payload), 5000, &j),
				 SVC_OK);
		assert_int_equal(j.len, sizeof(payload));
		assert_memory_equal(j.resp, payload, sizeof(payload));
		free(j.resp);
	}
	/* a silent backend: the host's wait ends at the step's deadline */
	assert_int_equal(call_sync(h.b, quiet.addr, "x", NULL, 0, 300, &j), SVC_ERR_TIMEOUT);
	assert_int_equal(svc_backend_post(h.b, &lm.m), 0);
	for (int i = 0; i < 500 && !atomic_load(&lm.seen); i++)
		usleep(10000);
	assert_int_equal(atomic_load(&lm.seen), 1);
	assert_false(svc_backend_on_loop(h.b)); /* this thread is not the loop */
	atomic_store(&h.stop, 1);
	pthread_join(th, NULL);
	/* the host stopped: a call submitted now is ended by free */
	late.w = &w;
	assert_int_equal(submit(h.b, quiet.addr, "app", "x", NULL, 0, 5000, &late), 0);
	svc_backend_free(h.b);
	wait_for(&w, 1);
	assert_int_equal(late.err, SVC_ERR_OVERLOADED);
	srv_stop(&s);
	srv_stop(&quiet);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http_call),
	    cmocka_unit_test(test_http_status),
	    cmocka_unit_test(test_http_bad),
	    cmocka_unit_test(test_http_pool_bound),
	    cmocka_unit_test(test_http_idle),
	    cmocka_unit_test(test_pool),
	    cmocka_unit_test(test_stall_no_threads),
	    cmocka_unit_test(test_stream),
	    cmocka_unit_test(test_router_to_backend),
	    cmocka_unit_test(test_hosted),
	};

	return cmocka_run_group_tests_name("service_backend", tests, NULL, NULL);
}
