// SPDX-License-Identifier: MIT
/* ctl_drain: a thread-per-connection libmicrohttpd server stopped with
 * connections open (include/weft/ctl_drain.h). The first case is the
 * crash test_fuzz_live found: stopped with MHD_stop_daemon() alone it dies
 * in libmicrohttpd 0.9.75 (a NULL read building the headers of MHD's own
 * 400 page, queued after the shutdown flag was set). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "weft/ctl_drain.h"

struct srv {
	struct MHD_Daemon *mhd;
	struct ctl_drain *hd;
	uint16_t port;
	sem_t entered, release; /* the handler's first call holds until released */
	int hold;
	atomic_int closed_fd_bad; /* a socket already closed when MHD said CLOSED */
	atomic_int closed;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	struct srv *s = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)url, (void)method, (void)version, (void)upload;
	if (!*con_cls) {
		*con_cls = s;
		if (s->hold) {
			sem_post(&s->entered);
			sem_wait(&s->release);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	r = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* The tracker's callback, checking on CLOSED that the socket it tracked is
 * still open (the drain shuts sockets down by number: never a reused one). */
static void notify(void *cls, struct MHD_Connection *c, void **ctx,
		   enum MHD_ConnectionNotificationCode code)
{
	struct srv *s = cls;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		if (!ci || fcntl(ci->connect_fd, F_GETFD) < 0)
			atomic_fetch_add(&s->closed_fd_bad, 1);
		atomic_fetch_add(&s->closed, 1);
	}
	ctl_drain_notify(s->hd, c, ctx, code);
}

static void srv_start(struct srv *s, unsigned int flags)
{
	const union MHD_DaemonInfo *di;

	memset(s, 0, sizeof(*s));
	sem_init(&s->entered, 0, 0);
	sem_init(&s->release, 0, 0);
	assert_int_equal(ctl_drain_new(&s->hd, 8, "test"), 0);
	s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
					  MHD_USE_POLL | flags,
				  0, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR,
				  &(struct sockaddr_in){.sin_family = AF_INET,
							.sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
				  MHD_OPTION_CONNECTION_LIMIT, 8u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				  MHD_OPTION_NOTIFY_CONNECTION, notify, s, MHD_OPTION_END);
	assert_non_null(s->mhd);
	di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(di);
	s->port = di->port;
}

static void srv_free(struct srv *s)
{
	ctl_drain_free(s->hd);
	sem_destroy(&s->entered);
	sem_destroy(&s->release);
}

static int dial(uint16_t port, const char *req)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (req)
		assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	return fd;
}

/* Waits up to ms for the peer's end of file (or a reset); 1 if it came.
 * An answer before it (MHD's 400 page) is read past. */
static int eof_within(int fd, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	char buf[512];

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)(end - now_ms());
		ssize_t n;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			return 0;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return 1;
	}
}

struct stopper {
	struct srv *s;
	unsigned int timeout_ms, left;
	uint64_t ms;
};

static void *stop_main(void *arg)
{
	struct stopper *st = arg;
	uint64_t t0 = now_ms();

	st->left = ctl_drain_stop(st->s->hd, st->s->mhd, st->timeout_ms);
	st->ms = now_ms() - t0;
	return NULL;
}

/* A server whose handler holds the first call of the request sent on a
 * new connection (until s->release is posted): that connection's socket. */
static int held_request(struct srv *s, unsigned int flags, const char *req)
{
	int fd;

	srv_start(s, flags);
	s->hold = 1;
	fd = dial(s->port, req);
	sem_wait(&s->entered);
	return fd;
}

/* A handler that returns while the stop runs, a malformed chunked body in
 * the connection's buffer: MHD answers it with its own 400 page. With the
 * drain that happens before the shutdown flag: no crash, nothing left. */
static void test_handler_returns_during_stop(void **state)
{
	struct srv s;
	struct stopper st = {.s = &s, .timeout_ms = 5000};
	pthread_t t;
	int fd;

	(void)state;
	fd = held_request(&s, MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG,
			  "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			  "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n");
	assert_int_equal(ctl_drain_open(s.hd), 1);
	assert_int_equal(pthread_create(&t, NULL, stop_main, &st), 0);
	usleep(200 * 1000); /* the drain has begun and waits on the handler */
	sem_post(&s.release);
	pthread_join(t, NULL);
	assert_int_equal(st.left, 0);
	assert_true(st.ms < 5000);
	assert_int_equal(atomic_load(&s.closed), 1);
	assert_int_equal(atomic_load(&s.closed_fd_bad), 0);
	assert_true(eof_within(fd, 1000));
	close(fd);
	srv_free(&s);
}

/* Idle keep-alive connections, a half-sent request, one answered request
 * kept open: all end at once, none waits out the connection timeout (30 s),
 * on a daemon with upgrades and one with only MHD_USE_ITC (either gives the
 * daemon thread the wake-up that reports a connection's end). */
static void drain_idle(unsigned int flags)
{
	struct srv s;
	int fds[4];
	char buf[256];
	uint64_t t0;
	unsigned int left;

	srv_start(&s, flags);
	fds[0] = dial(s.port, NULL);
	fds[1] = dial(s.port, "GET /half HTTP/1.1\r\nHost: a\r\n");
	fds[2] = dial(s.port, "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
	fds[3] = dial(s.port, NULL);
	assert_true(recv(fds[2], buf, sizeof(buf), 0) > 0); /* 200, kept alive */
	for (int i = 0; i < 50 && ctl_drain_open(s.hd) < 4; i++)
		usleep(20 * 1000);
	assert_int_equal(ctl_drain_open(s.hd), 4);
	t0 = now_ms();
	left = ctl_drain_stop(s.hd, s.mhd, 5000);
	assert_int_equal(left, 0);
	assert_true(now_ms() - t0 < 5000);
	assert_int_equal(atomic_load(&s.closed), 4);
	assert_int_equal(atomic_load(&s.closed_fd_bad), 0);
	for (int i = 0; i < 4; i++) {
		assert_true(eof_within(fds[i], 1000));
		close(fds[i]);
	}
	srv_free(&s);
}

static void test_idle_connections(void **state)
{
	(void)state;
	drain_idle(MHD_ALLOW_UPGRADE);
	drain_idle(MHD_USE_ITC);
}

/* A handler that holds its thread past the deadline: the drain says how
 * many were left, and MHD_stop_daemon then waits for the thread as before. */
static void test_deadline(void **state)
{
	struct srv s;
	struct stopper st = {.s = &s, .timeout_ms = 300};
	pthread_t t;
	int fd;

	(void)state;
	fd = held_request(&s, 0, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_int_equal(pthread_create(&t, NULL, stop_main, &st), 0);
	usleep(800 * 1000); /* past the drain's deadline: MHD_stop_daemon waits */
	sem_post(&s.release);
	pthread_join(t, NULL);
	assert_int_equal(st.left, 1);
	assert_true(st.ms >= 300);
	close(fd);
	srv_free(&s);
}

/* A connection that arrives while the drain waits is shut at once. */
static void test_new_during_drain(void **state)
{
	struct srv s;
	struct stopper st = {.s = &s, .timeout_ms = 5000};
	pthread_t t;
	int fd, late;

	(void)state;
	fd = held_request(&s, MHD_ALLOW_UPGRADE, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
	s.hold = 0;
	assert_int_equal(pthread_create(&t, NULL, stop_main, &st), 0);
	usleep(100 * 1000);
	late = dial(s.port, NULL);
	assert_true(eof_within(late, 2000)); /* while the first still holds */
	sem_post(&s.release);
	pthread_join(t, NULL);
	assert_int_equal(st.left, 0);
	close(late);
	close(fd);
	srv_free(&s);
}

static void test_args(void **state)
{
	struct ctl_drain *hd;

	(void)state;
	assert_int_equal(ctl_drain_new(&hd, 0, NULL), -EINVAL);
	assert_null(hd);
	ctl_drain_free(NULL);
	assert_int_equal(ctl_drain_new(&hd, 1, NULL), 0);
	assert_int_equal(ctl_drain_stop(hd, NULL, 10), 0); /* nothing open: at once */
	ctl_drain_free(hd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handler_returns_during_stop),
	    cmocka_unit_test(test_idle_connections),
	    cmocka_unit_test(test_deadline),
	    cmocka_unit_test(test_new_during_drain),
	    cmocka_unit_test(test_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
