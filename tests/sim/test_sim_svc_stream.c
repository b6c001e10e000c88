// SPDX-License-Identifier: MIT
/*
 * Service streams (docs/SERVICE.md, "Streams") in this process on a
 * simulated network (no root). A publishes the built-in echo; D publishes
 * backends served by this test on 127.0.0.1 (an HTTP/1.1 upgrade echo, one
 * that never answers, one that answers garbage, one that upgrades and then
 * never reads) with tight stream limits (idle 1 s, 1 MiB, 2 streams per
 * peer, a 256 KiB buffer); B is the DHT contact; C opens the streams
 * through svc_node_stream_open / attach on a socketpair.
 *
 *   - 64 MiB through A's echo come back byte for byte; the half-close
 *     (shutdown of C's socket) ends the stream with reason ok.
 *   - D's backend sees "POST /chat" with Upgrade: weft-stream and
 *     Weft-Caller = C's key, and its echo comes back.
 *   - idle, bytes, streams, slow_reader, a silent backend, a garbage
 *     backend: each ends (or is refused) with its class and reason, and
 *     frees its slot (a stream opens afterwards).
 *   - a service published with its own stream cap (1) refuses its second
 *     stream (overloaded, streams), takes one again once the first ended;
 *     svc ls shows the cap, publish refuses one out of range or on a
 *     built-in.
 *   - the backend's upgrade carries the caller headers, and the caller's
 *     assertion verifies with C's key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "weft/node.h"
#include "weft/simnet.h"
#include "weft/svc_node.h"
#include "weft/util.h"
#include "world.h"

struct scene {
	struct world w;
	struct simnode a, b, c, d;
};

static struct scene W;

/* ---------------------------------------------------- backends of D */

enum { BK_ECHO, BK_SILENT, BK_GARBAGE, BK_NOREAD, BK__N };

struct bk {
	int lfd, mode;
	uint16_t port;
	pthread_t th;
	char head[2048]; /* the last request head seen (BK_ECHO) */
	atomic_int heads;
};
static struct bk BK[BK__N];
static atomic_int stop_bk;

static void *conn_main(void *arg)
{
	long v = (long)arg;
	int fd = (int)(v & 0xffff), mode = (int)(v >> 16);
	char buf[65536];
	size_t hl = 0;
	ssize_t n;

	if (mode == BK_SILENT) {
		while (!atomic_load(&stop_bk) && recv(fd, buf, sizeof(buf), 0) > 0)
			;
		close(fd);
		return NULL;
	}
	while (hl < sizeof(BK[0].head) - 1) {
		n = recv(fd, BK[mode].head + hl, sizeof(BK[0].head) - 1 - hl, 0);
		if (n <= 0)
			goto out;
		hl += (size_t)n;
		BK[mode].head[hl] = 0;
		if (strstr(BK[mode].head, "\r\n\r\n"))
			break;
	}
	atomic_fetch_add(&BK[mode].heads, 1);
	if (mode == BK_GARBAGE) {
		(void)!send(fd, "SSH-2.0-nope\r\n\r\n", 16, MSG_NOSIGNAL);
		goto out;
	}
	(void)!send(fd, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: weft-stream\r\n"
			"Connection: Upgrade\r\n\r\n",
		    79, MSG_NOSIGNAL);
	if (mode == BK_NOREAD) {
		while (!atomic_load(&stop_bk))
			usleep(10000);
		goto out;
	}
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break; /* the node closed its end (a stream over its limit) */
	shutdown(fd, SHUT_WR);
out:
	close(fd);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct bk *b = arg;

	for (;;) {
		int fd = accept(b->lfd, NULL, NULL);
		pthread_t th;

		if (fd < 0)
			return NULL;
		pthread_create(&th, NULL, conn_main, (void *)(long)(fd | (b->mode << 16)));
		pthread_detach(th);
	}
}

static void bk_start(struct bk *b, int mode)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);

	b->mode = mode;
	b->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(b->lfd >= 0);
	assert_int_equal(bind(b->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(b->lfd, 64), 0);
	getsockname(b->lfd, (struct sockaddr *)&sa, &sl);
	b->port = ntohs(sa.sin_port);
	pthread_create(&b->th, NULL, accept_main, b);
}

/* ------------------------------------------------------------ helpers */

struct ended {
	sem_t sem;
	struct svc_node_stream_info info;
};

static void on_release(void *arg, int fd, const struct svc_node_stream_info *i)
{
	struct ended *e = arg;

	e->info = *i;
	close(fd);
	sem_post(&e->sem);
}

static int wait_sem(sem_t *s, unsigned int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (sem_timedwait(s, &ts))
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Open name/method from C and attach one end of a socketpair: the other
 * end in *mine. Returns the open's result; info as the open gave it. */
static int open_pair_on(struct simnode *n, const char *name, const char *method,
			struct ended *e, int *mine, struct svc_node_stream_info *info)
{
	struct svc_node_stream *st;
	int sv[2], r;

	r = svc_node_stream_open(node_svc(n->node), name, method, 0, 10000, &st, info);
	if (r || !st)
		return r ? r : 1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	sem_init(&e->sem, 0, 0);
	assert_int_equal(svc_node_stream_attach(st, sv[1], NULL, 0, on_release, e), 0);
	*mine = sv[0];
	return 0;
}

static int c_finds(void *arg)
{
	return simnode_finds(&W.c, arg);
}

static int setup(void **state)
{
	static const char *const lifted[] = {"svc.peer_calls_per_min=100000",
					     "svc.addr_calls_per_min=100000", NULL};
	static const char *const tight[] = {"svc.peer_calls_per_min=100000",
					    "svc.addr_calls_per_min=100000",
					    "svc.stream_idle_ms=1000",
					    "svc.stream_max_bytes=1048576",
					    "svc.peer_streams=2",
					    "svc.stream_buffer=262144",
					    "svc.ban_threshold=1000000",
					    NULL};
	static const char *const names[BK__N] = {"chat", "silent", "garbage", "noread"};
	char be[64];

	(void)state;
	for (int i = 0; i < BK__N; i++)
		bk_start(&BK[i], i);
	world_new(&W.w, 23);
	world_bootstrap(&W.w, &W.b, NULL);
	world_node(&W.w, &W.a, "A", "198.51.100.1", NULL, lifted);
	world_node(&W.w, &W.d, "D", "198.51.100.4", NULL, tight);
	world_node(&W.w, &W.c, "C", "198.51.100.3", NULL, lifted);
	world_dht_formed(1, 10000, &W.a, &W.c, &W.d, NULL);
	json_decref(simnode_ok(&W.a, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s}", "name", "echo", "backend", "builtin")));
	for (int i = 0; i < BK__N; i++) {
		snprintf(be, sizeof(be), "tcp:127.0.0.1:%u", BK[i].port);
		json_decref(simnode_ok(&W.d, "POST", "/v1/svc/publish",
				       json_pack("{s:s,s:s}", "name", names[i], "backend", be)));
	}
	/* the echo backend again, with a stream cap of its own */
	snprintf(be, sizeof(be), "tcp:127.0.0.1:%u", BK[BK_ECHO].port);
	json_decref(simnode_ok(&W.d, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s,s:{s:i}}", "name", "capped", "backend", be,
					 "limits", "streams", 1)));
	assert_int_equal(simnode_wait(c_finds, "capped", 20000), 0);
	assert_int_equal(simnode_wait(c_finds, "echo", 20000), 0);
	for (int i = 0; i < BK__N; i++)
		assert_int_equal(simnode_wait(c_finds, (void *)names[i], 20000), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	atomic_store(&stop_bk, 1);
	for (int i = 0; i < BK__N; i++) {
		shutdown(BK[i].lfd, SHUT_RDWR);
		close(BK[i].lfd);
		pthread_join(BK[i].th, NULL);
	}
	return 0;
}

static int open_pair(const char *name, const char *method, struct ended *e, int *mine,
		     struct svc_node_stream_info *info)
{
	return open_pair_on(&W.c, name, method, e, mine, info);
}

/* ------------------------------------------------------------- 64 MiB */

#define ECHO_BYTES (64u << 20)

static uint8_t gen_byte(uint64_t i)
{
	uint64_t x = (i / 8) * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return (uint8_t)(x >> ((i % 8) * 8));
}

static void *writer_main(void *arg)
{
	int fd = (int)(long)arg;
	uint8_t buf[65536];
	uint64_t off = 0;

	while (off < ECHO_BYTES) {
		size_t n = sizeof(buf);
		ssize_t w;

		if (n > ECHO_BYTES - off)
			n = ECHO_BYTES - off;
		for (size_t i = 0; i < n; i++)
			buf[i] = gen_byte(off + i);
		w = write(fd, buf, n);
		if (w <= 0)
			return (void *)1;
		off += (uint64_t)w;
		/* a short write: the rest goes next turn (regenerated) */
	}
	shutdown(fd, SHUT_WR); /* the half-close */
	return NULL;
}

static void test_echo_64mib(void **state)
{
	struct svc_node_stream_info info;
	struct ended e;
	pthread_t wt;
	uint8_t buf[65536];
	uint64_t got = 0, bad = UINT64_MAX;
	void *wr;
	int fd;

	(void)state;
	assert_int_equal(open_pair("echo", "bytes", &e, &fd, &info), 0);
	assert_int_equal(info.err, SVC_OK);
	pthread_create(&wt, NULL, writer_main, (void *)(long)fd);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (bad == UINT64_MAX && buf[i] != gen_byte(got + (uint64_t)i))
				bad = got + (uint64_t)i;
		got += (uint64_t)n;
	}
	pthread_join(wt, &wr);
	assert_null(wr);
	assert_int_equal(bad, UINT64_MAX);
	assert_int_equal(got, ECHO_BYTES);
	assert_int_equal(wait_sem(&e.sem, 30000), 0);
	assert_int_equal(e.info.err, SVC_OK);
	assert_int_equal(e.info.reason, SVC_STREAM_R_OK);
	assert_int_equal(e.info.bytes_in, ECHO_BYTES);
	assert_int_equal(e.info.bytes_out, ECHO_BYTES);
	close(fd);
}

/* ----------------------------------------------------------- backends */

/* The value of header name in head (case as sent), into out. */
static int head_value(const char *head, const char *name, char *out, size_t cap)
{
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\r\n%s: ", name);
	p = strstr(head, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	e = strstr(p, "\r\n");
	if (!e || (size_t)(e - p) >= cap)
		return -1;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = 0;
	return 0;
}

/* The upgrade carries the caller headers of a call (docs/SERVICE.md,
 * "Streams to backends"), and its assertion verifies with C's key over
 * (service, method, request id, empty body, t). */
static void check_caller_headers(const char *head, const char *svc, const char *method,
				 struct simnode *caller)
{
	char v[256], sig[160];
	uint8_t a[SVC_ASSERT_LEN];
	unsigned long long t;
	struct timespec ts;

	assert_int_equal(head_value(head, "Weft-Service", v, sizeof(v)), 0);
	assert_string_equal(v, svc);
	assert_int_equal(head_value(head, "Weft-Deadline", v, sizeof(v)), 0);
	assert_true(atoi(v) > 0);
	assert_int_equal(head_value(head, "Weft-Request-Id", v, sizeof(v)), 0);
	assert_int_equal(strlen(v), 2 * SVC_REQ_ID_LEN);
	assert_int_equal(util_unhex(a, SVC_REQ_ID_LEN, v), 0);
	assert_int_equal(head_value(head, "Weft-Caller-Assertion", v, sizeof(v)), 0);
	assert_int_equal(sscanf(v, "v1 t=%llu sig=%129s", &t, sig), 2);
	for (int i = 0; i < 8; i++)
		a[SVC_REQ_ID_LEN + i] = (uint8_t)(t >> (56 - 8 * i));
	assert_int_equal(util_unhex(a + SVC_REQ_ID_LEN + 8, 64, sig), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	assert_int_equal(svc_assert_verify(a, node_identity(caller->node)->pk, svc, strlen(svc),
					   method, strlen(method), NULL, 0,
					   (uint64_t)ts.tv_sec * 1000u, SVC_ASSERT_SKEW_MS),
			 0);
	/* a different method does not verify */
	assert_int_not_equal(svc_assert_verify(a, node_identity(caller->node)->pk, svc, strlen(svc),
					       "other", 5, NULL, 0, (uint64_t)ts.tv_sec * 1000u,
					       SVC_ASSERT_SKEW_MS),
			     0);
}

/* msg written to fd comes back whole. */
static void echo_back(int fd, const char *msg)
{
	char buf[64] = {0};
	size_t got = 0, len = strlen(msg);

	assert_int_equal(write(fd, msg, len), (ssize_t)len);
	while (got < len) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);

		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_string_equal(buf, msg);
}

static void test_backend_upgrade(void **state)
{
	struct svc_node_stream_info info, r;
	struct ended e;
	char kh[65], buf[64] = {0};
	int fd;

	(void)state;
	assert_int_equal(open_pair("chat", "room1", &e, &fd, &info), 0);
	assert_non_null(strstr(BK[BK_ECHO].head, "POST /room1 HTTP/1.1\r\n"));
	assert_non_null(strstr(BK[BK_ECHO].head, "Upgrade: weft-stream\r\n"));
	util_hex(kh, node_identity(W.c.node)->pk, 32);
	assert_non_null(strstr(BK[BK_ECHO].head, kh));
	check_caller_headers(BK[BK_ECHO].head, "chat", "room1", &W.c);
	echo_back(fd, "hello weft");
	shutdown(fd, SHUT_WR);
	assert_int_equal(read(fd, buf, sizeof(buf)), 0); /* the backend's end */
	assert_int_equal(wait_sem(&e.sem, 10000), 0);
	assert_int_equal(e.info.reason, SVC_STREAM_R_OK);
	assert_int_equal(svc_node_stream_result(node_svc(W.c.node), info.id, &r), 0);
	assert_int_equal(r.reason, SVC_STREAM_R_OK);
	assert_int_equal(r.bytes_out, 10);
	close(fd);
}

static void expect_end(struct ended *e, int cls, uint32_t reason, unsigned int ms);

/* A stream of name/method opens, and ends ok at our half-close. */
static void opens_and_ends(const char *name, const char *method)
{
	struct svc_node_stream_info info;
	struct ended e;
	int fd;

	assert_int_equal(open_pair(name, method, &e, &fd, &info), 0);
	shutdown(fd, SHUT_WR);
	expect_end(&e, SVC_OK, SVC_STREAM_R_OK, 10000);
	close(fd);
}

/* An open of name/method refused: overloaded, reason streams. */
static void refused_streams(const char *name, const char *method)
{
	struct svc_node_stream_info info;
	struct ended e;
	int fd;

	assert_int_equal(open_pair(name, method, &e, &fd, &info), 1);
	assert_int_equal(info.err, SVC_ERR_OVERLOADED);
	assert_int_equal(info.reason, SVC_STREAM_R_STREAMS);
}

/* An end with a class and a reason, within deadline_ms. */
static void expect_end(struct ended *e, int cls, uint32_t reason, unsigned int ms)
{
	assert_int_equal(wait_sem(&e->sem, ms), 0);
	assert_string_equal(svc_err_name((unsigned int)e->info.err), svc_err_name((unsigned int)cls));
	assert_string_equal(svc_stream_reason_name(e->info.reason), svc_stream_reason_name(reason));
}

static void test_limits(void **state)
{
	struct svc_node_stream_info info;
	struct ended e1, e2, e3;
	static uint8_t big[2u << 20];
	int f1, f2, f3;

	(void)state;
	/* idle: nothing for 1 s */
	assert_int_equal(open_pair("chat", "idle", &e1, &f1, &info), 0);
	expect_end(&e1, SVC_ERR_TIMEOUT, SVC_STREAM_R_IDLE, 10000);
	close(f1);

	/* bytes: 2 MiB into a 1 MiB stream */
	assert_int_equal(open_pair("chat", "bytes", &e1, &f1, &info), 0);
	for (size_t off = 0; off < sizeof(big);) {
		ssize_t n = send(f1, big + off, sizeof(big) - off, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += (size_t)n;
		while (recv(f1, big, 0, MSG_DONTWAIT) > 0)
			;
	}
	expect_end(&e1, SVC_ERR_TOO_LARGE, SVC_STREAM_R_BYTES, 10000);
	close(f1);

	/* streams: 2 per peer, the third refused; once one ends, room again */
	assert_int_equal(open_pair("chat", "s1", &e1, &f1, &info), 0);
	assert_int_equal(open_pair("chat", "s2", &e2, &f2, &info), 0);
	refused_streams("chat", "s3");
	shutdown(f1, SHUT_WR);
	expect_end(&e1, SVC_OK, SVC_STREAM_R_OK, 10000);
	assert_int_equal(open_pair("chat", "s3", &e3, &f3, &info), 0);
	shutdown(f2, SHUT_WR);
	shutdown(f3, SHUT_WR);
	expect_end(&e2, SVC_OK, SVC_STREAM_R_OK, 10000);
	expect_end(&e3, SVC_OK, SVC_STREAM_R_OK, 10000);
	close(f1);
	close(f2);
	close(f3);

	/* the service's own cap (published with "limits": {"streams": 1}):
	 * its second stream is refused though the peer has room (2) */
	assert_int_equal(open_pair("capped", "c1", &e1, &f1, &info), 0);
	refused_streams("capped", "c2");
	shutdown(f1, SHUT_WR);
	expect_end(&e1, SVC_OK, SVC_STREAM_R_OK, 10000);
	close(f1);
	opens_and_ends("capped", "c3");
}

/* D publishes name on backend with a stream cap: the HTTP status is want. */
static void publish_status(const char *name, const char *backend, int streams, int want)
{
	json_t *err = NULL;

	assert_int_equal(simnode_ctl(&W.d, "POST", "/v1/svc/publish",
				     json_pack("{s:s,s:s,s:{s:i}}", "name", name, "backend",
					       backend, "limits", "streams", streams),
				     &err),
			 want);
	json_decref(err);
}

/* A stream to a service of the same node: A to its own echo, D to its
 * own backend (which sees D's key as the caller). */
static void test_local_stream(void **state)
{
	struct svc_node_stream_info info;
	struct ended e;
	char kh[65];
	int fd;

	(void)state;
	assert_int_equal(open_pair_on(&W.a, "echo", "self", &e, &fd, &info), 0);
	assert_memory_equal(info.peer, node_identity(W.a.node)->pk, 32);
	echo_back(fd, "local echo");
	shutdown(fd, SHUT_WR);
	expect_end(&e, SVC_OK, SVC_STREAM_R_OK, 10000);
	close(fd);
	assert_int_equal(open_pair_on(&W.d, "chat", "mine", &e, &fd, &info), 0);
	shutdown(fd, SHUT_WR);
	expect_end(&e, SVC_OK, SVC_STREAM_R_OK, 10000);
	close(fd);
	assert_non_null(strstr(BK[BK_ECHO].head, "POST /mine HTTP/1.1\r\n"));
	util_hex(kh, node_identity(W.d.node)->pk, 32);
	assert_non_null(strstr(BK[BK_ECHO].head, kh));
	check_caller_headers(BK[BK_ECHO].head, "chat", "mine", &W.d);
}

/* The cap is shown by svc ls and checked at publish. */
static void test_stream_cap_publish(void **state)
{
	json_t *o = simnode_ok(&W.d, "GET", "/v1/svc/ls", NULL), *s;
	size_t i;
	int seen = 0;

	(void)state;
	json_array_foreach(json_object_get(o, "services"), i, s) {
		if (strcmp(json_string_value(json_object_get(s, "name")), "capped"))
			continue;
		assert_int_equal(json_integer_value(json_object_get(
				     json_object_get(s, "limits"), "streams")),
				 1);
		seen = 1;
	}
	json_decref(o);
	assert_true(seen);
	publish_status("capped2", "tcp:127.0.0.1:9", 5000, 400); /* over SVC_NODE_MAX_STREAMS */
	publish_status("echo", "builtin", 3, 400);		/* a built-in keeps the node's */
}

/* What the test sends to the never-reading backend: half of D's
 * svc.stream_max_bytes (1 MiB). The loopback connection to the backend
 * takes more than the limit without the backend reading (D took 1.1 MiB
 * in the failing runs), and the window (SVCN_STRM_WINDOW, 2 MiB) is larger
 * than the limit, so whatever the caller sends past the limit reaches D and
 * ends the stream with too_large/bytes, rightly. Four non-blocking 1 MiB
 * sends, each taking what the socketpair had room for at that moment, sent
 * 0.2 to 1.27 MiB depending on how fast C drained it: 3 failures in 40 runs. */
#define NOREAD_BYTES (512u << 10)

static void test_bad_backends(void **state)
{
	struct svc_node_stream_info info;
	struct ended e;
	static uint8_t big[NOREAD_BYTES];
	uint64_t until;
	size_t off = 0;
	int fd, r;

	(void)state;
	/* a backend that never answers: refused with timeout within 5 s */
	r = open_pair("silent", "x", &e, &fd, &info);
	assert_int_equal(r, 1);
	assert_int_equal(info.err, SVC_ERR_TIMEOUT);
	assert_int_equal(info.reason, SVC_STREAM_R_BACKEND);
	/* a backend that answers garbage */
	r = open_pair("garbage", "x", &e, &fd, &info);
	assert_int_equal(r, 1);
	assert_int_equal(info.err, SVC_ERR_BACKEND_ERROR);
	assert_int_equal(info.reason, SVC_STREAM_R_BACKEND);
	/* a backend that never reads: the bytes stop (in the kernel's buffers
	 * or D's), the stream ends by its idle time (1 s). Exactly NOREAD_BYTES
	 * go, whatever the pace: a send stopped by the end (EPIPE) or by the
	 * deadline sends less, never more, so the bytes limit cannot end it. */
	assert_int_equal(open_pair("noread", "x", &e, &fd, &info), 0);
	until = util_now_ms() + 15000;
	while (off < sizeof(big) && util_now_ms() < until) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = send(fd, big + off, sizeof(big) - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
		off += n > 0 ? (size_t)n : 0;
	}
	expect_end(&e, SVC_ERR_TIMEOUT, SVC_STREAM_R_IDLE, 15000);
	close(fd);
	/* slots are free: the echo backend still opens */
	opens_and_ends("chat", "after");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_echo_64mib),
	    cmocka_unit_test(test_backend_upgrade),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_bad_backends),
	    cmocka_unit_test(test_stream_cap_publish),
	    cmocka_unit_test(test_local_stream),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
