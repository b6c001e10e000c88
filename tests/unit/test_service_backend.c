// SPDX-License-Identifier: MIT
/* Backend forwarder against real loopback servers started here: a TCP echo
 * server, a unix-socket echo server, a silent one and a chatty one; the
 * event loop's bounds, deadlines and streams. */
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"
#include "weft/svc_backend.h"
#include "weft/svc_router.h"

enum srv_mode { SRV_ECHO, SRV_SILENT, SRV_CHATTY, SRV_READ_CHATTY };

struct srv {
	int fd;
	enum srv_mode mode;
	volatile int stop;
	volatile int accepted;
	pthread_t th;
	char addr[128];
	char *dir;
};

/* Echo: read to EOF, write it all back, close. Silent: accept, say
 * nothing until stopped. Chatty: write 4 KiB whatever was sent. */
static void serve_one(struct srv *s, int c)
{
	uint8_t *buf = NULL;
	size_t have = 0, cap = 0;

	if (s->mode == SRV_SILENT) {
		while (!s->stop)
			usleep(10000);
		close(c);
		return;
	}
	if (s->mode == SRV_CHATTY || s->mode == SRV_READ_CHATTY) {
		uint8_t junk[4096];

		/* READ_CHATTY reads the request first (a stream request is
		 * not half-closed), so its close is not a reset. */
		if (s->mode == SRV_READ_CHATTY)
			(void)!read(c, junk, sizeof(junk));

		memset(junk, 'j', sizeof(junk));
		(void)!write(c, junk, sizeof(junk));
		close(c);
		return;
	}
	for (;;) {
		ssize_t n;

		if (have == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = read(c, buf + have, cap - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	for (size_t off = 0; off < have;) {
		ssize_t n = write(c, buf + off, have - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	free(buf);
	close(c);
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;

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
	s->mode = mode;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s->fd, 64), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(s->addr, sizeof(s->addr), "tcp:127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_start_unix(struct srv *s)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	memset(s, 0, sizeof(*s));
	s->mode = SRV_ECHO;
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

static void test_tcp_echo(void **state)
{
	uint8_t payload[300000], *resp;
	size_t rlen;
	struct srv s;

	srv_start_tcp(&s, SRV_ECHO);
	tu_fill(payload, sizeof(payload), 5);
	assert_int_equal(svc_backend_call(s.addr, payload, sizeof(payload), 5000,
					  SVC_BACKEND_DEFAULT_MAX_RESPONSE, &resp, &rlen),
			 SVC_OK);
	assert_int_equal(rlen, sizeof(payload));
	assert_memory_equal(resp, payload, rlen);
	free(resp);
	/* empty request, empty answer */
	assert_int_equal(svc_backend_call(s.addr, NULL, 0, 5000, 1024, &resp, &rlen), SVC_OK);
	assert_int_equal(rlen, 0);
	assert_null(resp);
	/* answer over the cap */
	assert_int_equal(svc_backend_call(s.addr, payload, 2000, 5000, 1999, &resp, &rlen),
			 SVC_ERR_TOO_LARGE);
	assert_null(resp);
	assert_int_equal(svc_backend_call(s.addr, payload, 2000, 5000, 2000, &resp, &rlen), SVC_OK);
	free(resp);
	srv_stop(&s);
}

static void test_unix_echo(void **state)
{
	uint8_t payload[1000], *resp;
	size_t rlen;
	struct srv s;

	srv_start_unix(&s);
	tu_fill(payload, sizeof(payload), 6);
	assert_int_equal(
	    svc_backend_call(s.addr, payload, sizeof(payload), 5000, 4096, &resp, &rlen), SVC_OK);
	assert_int_equal(rlen, sizeof(payload));
	assert_memory_equal(resp, payload, rlen);
	free(resp);
	srv_stop(&s);
}

static void test_errors(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	char addr[64];
	uint8_t *resp;
	size_t rlen;
	struct srv s;
	int fd;

	/* a port nobody listens on: bind, read the port, close */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	close(fd);
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(svc_backend_call(addr, (const uint8_t *)"x", 1, 2000, 100, &resp, &rlen),
			 SVC_ERR_BACKEND_ERROR);
	assert_int_equal(
	    svc_backend_call("unix:/nonexistent/weft.sock", NULL, 0, 2000, 100, &resp, &rlen),
	    SVC_ERR_BACKEND_ERROR);
	/* unparsable addresses */
	assert_int_equal(svc_backend_call("tcp:localhost:80", NULL, 0, 100, 100, &resp, &rlen),
			 SVC_ERR_BAD_REQUEST);
	assert_int_equal(svc_backend_call("udp:127.0.0.1:80", NULL, 0, 100, 100, &resp, &rlen),
			 SVC_ERR_BAD_REQUEST);
	assert_int_equal(svc_backend_call("unix:", NULL, 0, 100, 100, &resp, &rlen),
			 SVC_ERR_BAD_REQUEST);
	/* a backend that never answers: timeout */
	srv_start_tcp(&s, SRV_SILENT);
	assert_int_equal(svc_backend_call(s.addr, (const uint8_t *)"x", 1, 200, 100, &resp, &rlen),
			 SVC_ERR_TIMEOUT);
	srv_stop(&s);
	/* a backend that talks too much */
	srv_start_tcp(&s, SRV_CHATTY);
	assert_int_equal(svc_backend_call(s.addr, NULL, 0, 2000, 4095, &resp, &rlen),
			 SVC_ERR_TOO_LARGE);
	srv_stop(&s);
}

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, ok, errs[SVC_ERR__COUNT];
	uint8_t expect[64][64];
};

struct job_ctx {
	struct waiter *w;
	int idx;
};

static void on_done(void *ctx, int err, uint8_t *resp, size_t len)
{
	struct job_ctx *j = ctx;
	struct waiter *w = j->w;

	pthread_mutex_lock(&w->mu);
	if (err >= 0 && err < SVC_ERR__COUNT)
		w->errs[err]++;
	if (err == SVC_OK && len == 64 && memcmp(resp, w->expect[j->idx], 64) == 0)
		w->ok++;
	w->done++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	free(resp);
}

static void wait_for(struct waiter *w, int n)
{
	pthread_mutex_lock(&w->mu);
	while (w->done < n)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static void test_pool(void **state)
{
	static struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct job_ctx jobs[64];
	struct svc_backend *b;
	struct srv s, quiet;

	srv_start_tcp(&s, SRV_ECHO);
	assert_int_equal(svc_backend_new(&b, NULL), 0);
	for (int i = 0; i < 64; i++) {
		jobs[i] = (struct job_ctx){.w = &w, .idx = i};
		tu_fill(w.expect[i], 64, 100 + i);
		assert_int_equal(
		    svc_backend_submit(b, s.addr, "echo", w.expect[i], 64, 0, on_done, &jobs[i]), 0);
	}
	wait_for(&w, 64);
	assert_int_equal(w.ok, 64);
	assert_int_equal(svc_backend_submit(b, "bogus", "echo", NULL, 0, 0, on_done, &jobs[0]),
			 -EINVAL);
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
	assert_int_equal(svc_backend_submit(b, quiet.addr, "a", NULL, 0, 300, on_done, &jobs[0]), 0);
	assert_int_equal(svc_backend_submit(b, quiet.addr, "a", NULL, 0, 300, on_done, &jobs[1]), 0);
	assert_int_equal(svc_backend_submit(b, quiet.addr, "a", NULL, 0, 300, on_done, &jobs[2]),
			 -EBUSY);
	assert_int_equal(svc_backend_submit(b, quiet.addr, "b", NULL, 0, 300, on_done, &jobs[3]), 0);
	assert_int_equal(svc_backend_submit(b, quiet.addr, "c", NULL, 0, 300, on_done, &jobs[4]),
			 -EBUSY);
	wait_for(&w, 3);
	assert_int_equal(w.errs[SVC_ERR_TIMEOUT], 3);
	{
		struct svc_backend_stats st;

		svc_backend_stats(b, &st);
		assert_int_equal(st.inflight, 0);
		assert_int_equal(st.busy, 2);
		assert_int_equal(st.timeouts, 3);
	}
	assert_int_equal(svc_backend_submit(b, quiet.addr, "a", NULL, 0, 100, on_done, &jobs[0]), 0);
	wait_for(&w, 4);
	/* Ended by svc_backend_free, callback included, without waiting. */
	assert_int_equal(svc_backend_submit(b, quiet.addr, "a", NULL, 0, 60000, on_done, &jobs[1]),
			 0);
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
		assert_int_equal(svc_backend_submit(b, quiet.addr, i % 2 ? "x" : "y", NULL, 0, 500,
						    on_done, &jobs[i]),
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
	size_t got;
	int refusals, fin, ended, err;
};

static int sink_data(void *ctx, const uint8_t *buf, size_t len, int fin)
{
	struct sink_ctx *s = ctx;

	if (s->refusals > 0) {
		s->refusals--;
		return -EAGAIN;
	}
	for (size_t i = 0; i < len; i++)
		if (buf[i] != 'j')
			return -EINVAL;
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

static void sink_wait(struct sink_ctx *s)
{
	pthread_mutex_lock(&s->mu);
	while (!s->ended)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

static void test_stream(void **state)
{
	struct sink_ctx s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
			     .refusals = 3};
	struct svc_backend *b;
	struct srv chatty, quiet;

	srv_start_tcp(&chatty, SRV_READ_CHATTY);
	srv_start_tcp(&quiet, SRV_SILENT);
	assert_int_equal(svc_backend_new(&b, NULL), 0);
	assert_int_equal(svc_backend_stream(b, chatty.addr, "web", (const uint8_t *)"GET /", 5, 2000,
					    &test_sink, &s),
			 0);
	sink_wait(&s);
	assert_int_equal(s.err, SVC_OK);
	assert_int_equal(s.got, 4096);
	assert_int_equal(s.fin, 1);
	assert_int_equal(s.ended, 1);
	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	assert_int_equal(svc_backend_stream(b, quiet.addr, "web", (const uint8_t *)"GET /", 5, 200,
					    &test_sink, &s),
			 0);
	sink_wait(&s);
	assert_int_equal(s.err, SVC_ERR_TIMEOUT);
	assert_int_equal(s.got, 0);
	assert_int_equal(svc_backend_stream(b, "bogus", "web", NULL, 0, 0, &test_sink, &s), -EINVAL);
	svc_backend_free(b);
	srv_stop(&chatty);
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
			    .payload = (const uint8_t *)"GET / HTTP/1.0\r\n\r\n",
			    .payload_len = 18};
	uint8_t *resp;
	size_t rlen;
	struct srv s;
	int err;

	srv_start_tcp(&s, SRV_ECHO);
	so.backend = s.addr;
	assert_int_equal(svc_router_new(&r, NULL), 0);
	assert_int_equal(svc_router_register(r, &so), 0);
	assert_int_equal(svc_router_call(r, &p, &m, 1000, &rep, &t), 1);
	assert_int_equal(t.kind, SVC_KIND_BACKEND);
	err = svc_backend_call(t.backend, m.payload, m.payload_len, 0, t.max_payload, &resp, &rlen);
	assert_int_equal(err, SVC_OK);
	assert_int_equal(rlen, 18);
	assert_memory_equal(resp, m.payload, 18);
	free(resp);
	svc_router_done(r, &t, err, 2000);
	svc_router_get_stats(r, &st);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(st.results[SVC_OK], 1);
	svc_router_free(r);
	srv_stop(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tcp_echo),
	    cmocka_unit_test(test_unix_echo),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_pool),
	    cmocka_unit_test(test_stall_no_threads),
	    cmocka_unit_test(test_stream),
	    cmocka_unit_test(test_router_to_backend),
	};

	return cmocka_run_group_tests_name("service_backend", tests, NULL, NULL);
}
