// SPDX-License-Identifier: MIT
/*
 * The backend contract across complete nodes in this process (simulated
 * network; docs/SERVICE.md, "Backend contract"): A publishes "app", backed
 * by an HTTP/1.1 server this test runs on 127.0.0.1 (a real socket: the
 * backend side of weftd is not simulated); B is the DHT contact; C calls
 * app over QUIC. The server sees POST /<method>, C's key in Weft-Caller,
 * and a Weft-Caller-Assertion that svc_assert_verify accepts for that key,
 * method and body (the assertion crossed the wire in C's REQUEST); its
 * statuses come back as the call's status and class; many calls share one
 * kept-alive connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "weft/simnet.h"
#include "weft/svc.h"
#include "weft/util.h"
#include "world.h"

/* The backend: one thread, one connection at a time, keep-alive. */
struct be {
	int lfd, port;
	volatile int stop;
	pthread_t th;
	pthread_mutex_t mu;
	char head[4096];
	uint8_t body[256];
	size_t body_len;
	int conns, requests;
};

static struct be BE;

/* Answer one request: /status/NNN with NNN, anything else 200 + body. */
static void be_answer(struct be *b, int c, const char *head, const uint8_t *body, size_t bl)
{
	char out[256];
	int n, st = 200;
	const char *p = strstr(head, "POST /status/");

	if (p)
		st = atoi(p + 13);
	n = snprintf(out, sizeof(out), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n\r\n", st, bl);
	pthread_mutex_lock(&b->mu);
	snprintf(b->head, sizeof(b->head), "%.4000s", head);
	b->body_len = bl < sizeof(b->body) ? bl : sizeof(b->body);
	memcpy(b->body, body, b->body_len);
	b->requests++;
	pthread_mutex_unlock(&b->mu);
	(void)!write(c, out, (size_t)n);
	(void)!write(c, body, bl);
}

static void *be_main(void *arg)
{
	struct be *b = arg;
	static char buf[1 << 16];

	while (!b->stop) {
		struct pollfd p = {.fd = b->lfd, .events = POLLIN};
		size_t len = 0;
		int c;

		if (poll(&p, 1, 20) <= 0)
			continue;
		c = accept(b->lfd, NULL, NULL);
		if (c < 0)
			continue;
		pthread_mutex_lock(&b->mu);
		b->conns++;
		pthread_mutex_unlock(&b->mu);
		while (!b->stop) {
			struct pollfd q = {.fd = c, .events = POLLIN};
			char *e;
			ssize_t r;

			if (poll(&q, 1, 20) <= 0)
				continue;
			r = read(c, buf + len, sizeof(buf) - 1 - len);
			if (r <= 0)
				break;
			len += (size_t)r;
			buf[len] = 0;
			while ((e = strstr(buf, "\r\n\r\n"))) {
				size_t hl = (size_t)(e - buf) + 4, cl = 0;
				const char *clp;

				*e = 0;
				clp = strcasestr(buf, "\r\nContent-Length: ");
				if (clp)
					cl = strtoul(clp + 18, NULL, 10);
				*e = '\r';
				if (len < hl + cl)
					break;
				buf[hl - 2] = 0;
				be_answer(b, c, buf, (const uint8_t *)buf + hl, cl);
				memmove(buf, buf + hl + cl, len - hl - cl);
				len -= hl + cl;
				buf[len] = 0;
			}
		}
		close(c);
	}
	return NULL;
}

static void be_start(struct be *b)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);

	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->mu, NULL);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(b->lfd >= 0);
	assert_int_equal(bind(b->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(b->lfd, 16), 0);
	assert_int_equal(getsockname(b->lfd, (struct sockaddr *)&sin, &sl), 0);
	b->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&b->th, NULL, be_main, b), 0);
}

static void be_stop(struct be *b)
{
	b->stop = 1;
	pthread_join(b->th, NULL);
	close(b->lfd);
}

/* The value of header name in the last request head ("" if absent). */
static void be_header(struct be *b, const char *name, char *out, size_t cap)
{
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\r\n%s: ", name);
	pthread_mutex_lock(&b->mu);
	p = strstr(b->head, pat);
	out[0] = 0;
	if (p) {
		p += strlen(pat);
		e = strstr(p, "\r\n");
		snprintf(out, cap, "%.*s", (int)(e ? e - p : (long)strlen(p)), p);
	}
	pthread_mutex_unlock(&b->mu);
}

struct scene {
	struct world w;
	struct simnode a, b, c;
};

static struct scene W;

static int setup(void **state)
{
	(void)state;
	world_new(&W.w, 29);
	world_bootstrap(&W.w, &W.b, NULL);
	world_node(&W.w, &W.a, "A", "198.51.100.1", NULL, NULL);
	world_node(&W.w, &W.c, "C", "198.51.100.3", NULL, NULL);
	world_dht_formed(1, 10000, &W.a, &W.c, NULL);
	be_start(&BE);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	be_stop(&BE);
	return 0;
}

static int c_finds_app(void *arg)
{
	(void)arg;
	return simnode_finds(&W.c, "app");
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_contract(void **state)
{
	char addr[64], v[256], caller[80], rid[40];
	uint8_t key[IDENTITY_PK_LEN], as[SVC_ASSERT_LEN];
	unsigned long long t;
	json_t *o;

	(void)state;
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%d", BE.port);
	json_decref(simnode_ok(&W.a, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s}", "name", "app", "backend", addr)));
	assert_int_equal(simnode_wait(c_finds_app, NULL, 20000), 0);

	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s}", "name", "app", "method", "v1/whoami", "data",
				 "signed body"));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	assert_int_equal(json_integer_value(json_object_get(o, "status")), 200);
	assert_string_equal(json_string_value(json_object_get(o, "data")), "signed body");
	json_decref(o);

	/* What the backend saw: the method, C's key, an assertion that
	 * holds for that key, method and body. */
	pthread_mutex_lock(&BE.mu);
	assert_int_equal(strncmp(BE.head, "POST /v1/whoami HTTP/1.1\r\n", 26), 0);
	assert_int_equal(BE.body_len, 11);
	pthread_mutex_unlock(&BE.mu);
	be_header(&BE, "Weft-Caller", caller, sizeof(caller));
	assert_string_equal(caller, W.c.key);
	be_header(&BE, "Weft-Service", v, sizeof(v));
	assert_string_equal(v, "app");
	be_header(&BE, "Weft-Request-Id", rid, sizeof(rid));
	assert_int_equal(strlen(rid), 32);
	be_header(&BE, "Weft-Caller-Assertion", v, sizeof(v));
	{
		char sig[200];

		assert_int_equal(sscanf(v, "v1 t=%llu sig=%199s", &t, sig), 2);
		assert_int_equal(strlen(sig), 128);
		assert_int_equal(util_unhex(as + SVC_REQ_ID_LEN + 8, IDENTITY_SIG_LEN, sig), 0);
	}
	assert_int_equal(util_unhex(as, SVC_REQ_ID_LEN, rid), 0);
	for (int i = 0; i < 8; i++)
		as[SVC_REQ_ID_LEN + i] = (uint8_t)(t >> (56 - 8 * i));
	assert_int_equal(util_unhex(key, sizeof(key), caller), 0);
	assert_int_equal(svc_assert_verify(as, key, "app", 3, "v1/whoami", 9,
					   (const uint8_t *)"signed body", 11, wall_ms(),
					   SVC_ASSERT_SKEW_MS),
			 0);
	/* ... and not for another method or body, nor for A's key */
	assert_int_equal(svc_assert_verify(as, key, "app", 3, "v1/whoami", 9,
					   (const uint8_t *)"signed bodY", 11, wall_ms(),
					   SVC_ASSERT_SKEW_MS),
			 -EBADMSG);
	assert_int_equal(util_unhex(key, sizeof(key), W.a.key), 0);
	assert_int_equal(svc_assert_verify(as, key, "app", 3, "v1/whoami", 9,
					   (const uint8_t *)"signed body", 11, wall_ms(),
					   SVC_ASSERT_SKEW_MS),
			 -EBADMSG);

	/* Statuses: the backend's, and their classes. */
	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s}", "name", "app", "method", "status/404", "data", "x"));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "bad_request");
	assert_int_equal(json_integer_value(json_object_get(o, "status")), 404);
	json_decref(o);
	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s}", "name", "app", "method", "status/503", "data", "x"));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "overloaded");
	json_decref(o);

	/* Keep-alive: 30 more calls, the one connection. */
	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s,s:i,s:i}", "name", "app", "method", "echo", "data",
				 "x", "count", 30, "concurrency", 1));
	assert_int_equal(json_integer_value(json_object_get(o, "ok")), 30);
	json_decref(o);
	pthread_mutex_lock(&BE.mu);
	assert_int_equal(BE.conns, 1);
	assert_int_equal(BE.requests, 33);
	pthread_mutex_unlock(&BE.mu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_contract),
	};

	return cmocka_run_group_tests_name("sim_svc_backend", tests, setup, teardown);
}
