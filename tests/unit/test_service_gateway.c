// SPDX-License-Identifier: MIT
/*
 * The loopback gateway: its HTTP rules without I/O (response-head parser,
 * header filters, Host and Origin checks), then a real node in this
 * process (engine on 127.0.0.1, QUIC, service fabric, libmicrohttpd
 * gateway) in front of an HTTP backend started here, driven by a plain
 * socket client: a DNS-rebinding Host is refused, a foreign Origin is
 * refused, the service's own origin <name>.localhost:PORT is served,
 * Cookie / Authorization never reach the backend and its Set-Cookie never
 * comes back, except on the pinned origin of a service that opted in.
 * No root needed: everything is on 127.0.0.1.
 */
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
#include <unistd.h>

#include "weft/engine.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/svc.h"
#include "weft/svc_http.h"
#include "weft/svc_node.h"
#include "weft/util.h"

/* ---------------------------------------------------------------- pure */

static long parse(const char *s, struct svc_http_head *h)
{
	return svc_http_head_parse((const uint8_t *)s, strlen(s), h);
}

static void test_head_parse(void **state)
{
	static struct svc_http_head h;
	const char *ok = "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nX-A:  b c \r\n\r\nhello";

	(void)state;
	assert_int_equal(parse(ok, &h), (long)strlen(ok) - 5);
	assert_int_equal(h.status, 404);
	assert_int_equal(h.minor, 1);
	assert_int_equal(h.content_length, 5);
	assert_int_equal(h.n, 2);
	assert_memory_equal(ok + h.h[1].val_off, "b c", 3);
	assert_int_equal(h.h[1].val_len, 3);
	assert_int_equal(parse("HTTP/1.0 200\r\n\r\n", &h), 16);
	/* Every proper prefix is incomplete, never an error. */
	for (size_t l = 0; l < strlen(ok) - 5; l++)
		assert_int_equal(svc_http_head_parse((const uint8_t *)ok, l, &h), 0);
	assert_int_equal(parse("HTTP/2.0 200 OK\r\n\r\n", &h), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 99 OK\r\n\r\n", &h), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 600 OK\r\n\r\n", &h), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 2x0 OK\r\n\r\n", &h), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\nA: b\r\n\r\n", &h), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nA : b\r\n\r\n", &h), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", &h), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nA: b\nc\r\n\r\n", &h), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", &h), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
			       &h),
			 -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", &h), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &h) > 0,
			 1);
	assert_int_equal(h.chunked, 1);
	{
		/* A NUL inside a value, and one in the status line. */
		const uint8_t nul[] = "HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n";
		const uint8_t nul2[] = "HTTP/1.1 200 O\0K\r\n\r\n";

		assert_int_equal(svc_http_head_parse(nul, sizeof(nul) - 1, &h), -EBADMSG);
		assert_int_equal(svc_http_head_parse(nul2, sizeof(nul2) - 1, &h), -EBADMSG);
	}
	{
		/* 129 headers; a head that never ends within 64 KiB. */
		size_t cap = SVC_HTTP_MAX_HEAD + 64, l = 0;
		char *b = malloc(cap);

		assert_non_null(b);
		l += (size_t)sprintf(b, "HTTP/1.1 200 OK\r\n");
		for (int i = 0; i <= (int)SVC_HTTP_MAX_HEADERS; i++)
			l += (size_t)sprintf(b + l, "X-%d: v\r\n", i);
		l += (size_t)sprintf(b + l, "\r\n");
		assert_int_equal(svc_http_head_parse((uint8_t *)b, l, &h), -EMSGSIZE);
		l = (size_t)sprintf(b, "HTTP/1.1 200 OK\r\nX: ");
		memset(b + l, 'a', cap - l);
		assert_int_equal(svc_http_head_parse((uint8_t *)b, cap, &h), -EMSGSIZE);
		assert_int_equal(svc_http_head_parse((uint8_t *)b, SVC_HTTP_MAX_HEAD - 1, &h), 0);
		free(b);
	}
}

static int rk(const char *n, const char *conn, unsigned int f)
{
	return svc_http_resp_keep(n, strlen(n), conn, conn ? strlen(conn) : 0, f);
}

static int qk(const char *n, const char *conn, unsigned int f)
{
	return svc_http_req_keep(n, strlen(n), conn, conn ? strlen(conn) : 0, f);
}

static void test_header_filters(void **state)
{
	static const char *const hop[] = { "Connection", "keep-alive", "TE", "Trailer",
					   "Transfer-Encoding", "Upgrade", "Proxy-Authorization",
					   "Proxy-Connection", "proxy-anything" };
	(void)state;
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
		assert_int_equal(rk(hop[i], NULL, SVC_HTTP_F_CREDENTIALS), 0);
		assert_int_equal(qk(hop[i], NULL, SVC_HTTP_F_CREDENTIALS), 0);
	}
	/* Named by Connection: hop-by-hop too. */
	assert_int_equal(qk("X-Secret", "keep-alive, x-secret", 0), 0);
	assert_int_equal(rk("X-Secret", " X-SECRET ,close", 0), 0);
	assert_int_equal(qk("X-Secretive", "x-secret", 0), 1);
	/* Credentials: only with the opt-in. */
	assert_int_equal(qk("Cookie", NULL, 0), 0);
	assert_int_equal(qk("authorization", NULL, 0), 0);
	assert_int_equal(qk("Cookie", NULL, SVC_HTTP_F_CREDENTIALS), 1);
	assert_int_equal(qk("Authorization", NULL, SVC_HTTP_F_CREDENTIALS), 1);
	assert_int_equal(rk("Set-Cookie", NULL, 0), 0);
	assert_int_equal(rk("set-cookie2", NULL, 0), 0);
	assert_int_equal(rk("Set-Cookie", NULL, SVC_HTTP_F_CREDENTIALS), 1);
	/* The gateway's own: framing, Host, CORS, controls. */
	assert_int_equal(rk("Content-Length", NULL, 0), 0);
	assert_int_equal(rk("Access-Control-Allow-Origin", NULL, SVC_HTTP_F_CREDENTIALS), 0);
	assert_int_equal(qk("Host", NULL, 0), 0);
	assert_int_equal(qk("X-Weft-Timeout-Ms", NULL, 0), 0);
	assert_int_equal(qk("Expect", NULL, 0), 0);
	assert_int_equal(rk("Content-Type", NULL, 0), 1);
	assert_int_equal(qk("Accept", NULL, 0), 1);
}

static void test_host_origin(void **state)
{
	char l[65];

	(void)state;
	assert_int_equal(ctl_http_host("127.0.0.1:5030", 5030, "127.0.0.1", l), CTL_HTTP_HOST_BARE);
	assert_int_equal(ctl_http_host("localhost:5030", 5030, "127.0.0.1", l), CTL_HTTP_HOST_BARE);
	assert_int_equal(ctl_http_host("LOCALHOST:5030", 5030, "127.0.0.1", l), CTL_HTTP_HOST_BARE);
	assert_int_equal(ctl_http_host("[::1]:5030", 5030, "127.0.0.1", l), CTL_HTTP_HOST_BARE);
	assert_int_equal(ctl_http_host("127.9.9.9:5030", 5030, "127.0.0.1", l), CTL_HTTP_HOST_BARE);
	assert_int_equal(ctl_http_host("Web.Localhost:5030", 5030, "127.0.0.1", l),
			 CTL_HTTP_HOST_SERVICE);
	assert_string_equal(l, "web");
	assert_int_equal(ctl_http_host("my.svc.localhost:5030", 5030, "127.0.0.1", l),
			 CTL_HTTP_HOST_SERVICE);
	assert_string_equal(l, "my.svc");
	/* Rebinding names, other ports, odd forms. */
	assert_int_equal(ctl_http_host("evil.example:5030", 5030, "127.0.0.1", l), -EPERM);
	assert_int_equal(ctl_http_host("localhost.evil.example:5030", 5030, "127.0.0.1", l), -EPERM);
	assert_int_equal(ctl_http_host("localhost:5031", 5030, "127.0.0.1", l), -EPERM);
	assert_int_equal(ctl_http_host("localhost", 5030, "127.0.0.1", l), -EPERM);
	assert_int_equal(ctl_http_host("localhost", 80, "127.0.0.1", l), CTL_HTTP_HOST_BARE);
	assert_int_equal(ctl_http_host("10.0.0.1:5030", 5030, "127.0.0.1", l), -EPERM);
	assert_int_equal(ctl_http_host(".localhost:5030", 5030, "127.0.0.1", l), -EPERM);
	assert_int_equal(ctl_http_host("a_b.localhost:5030", 5030, "127.0.0.1", l), -EPERM);
	assert_int_equal(ctl_http_host("web.localhost:5030:1", 5030, "127.0.0.1", l), -EPERM);
	assert_int_equal(ctl_http_host("web.localhost:", 5030, "127.0.0.1", l), -EPERM);
	assert_int_equal(ctl_http_host("", 5030, "127.0.0.1", l), -EPERM);
	assert_int_equal(ctl_http_host(NULL, 5030, "127.0.0.1", l), -EPERM);
	assert_int_equal(ctl_http_host("198.51.100.7:5030", 5030, "198.51.100.7", l),
			 CTL_HTTP_HOST_BARE);

	assert_int_equal(ctl_http_origin_same("http://web.localhost:5030", "web.localhost:5030"), 1);
	assert_int_equal(ctl_http_origin_same("http://WEB.localhost:5030", "web.localhost:5030"), 1);
	assert_int_equal(ctl_http_origin_same("http://localhost", "localhost:80"), 1);
	assert_int_equal(ctl_http_origin_same("http://evil.example", "web.localhost:5030"), 0);
	assert_int_equal(ctl_http_origin_same("http://app.localhost:5030", "web.localhost:5030"), 0);
	assert_int_equal(ctl_http_origin_same("https://web.localhost:5030", "web.localhost:5030"), 0);
	assert_int_equal(ctl_http_origin_same("null", "web.localhost:5030"), 0);
	assert_int_equal(ctl_http_origin_same("http://web.localhost:5031", "web.localhost:5030"), 0);
}

/* ------------------------------------------------------- HTTP backend */

/* One-request-per-connection HTTP server: records the last request head
 * and answers 200 with a Set-Cookie, a hop-by-hop header and a CORS header
 * of its own (all of which the gateway must drop). */
struct hsrv {
	int fd;
	uint16_t port;
	pthread_t th;
	volatile int stop;
	pthread_mutex_t mu;
	char last[8192];
};

static void *hsrv_main(void *arg)
{
	struct hsrv *s = arg;

	while (!s->stop) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		char buf[8192];
		size_t have = 0;
		int c;

		if (poll(&p, 1, 100) <= 0)
			continue;
		c = accept(s->fd, NULL, NULL);
		if (c < 0)
			continue;
		while (have < sizeof(buf) - 1) {
			ssize_t n = read(c, buf + have, sizeof(buf) - 1 - have);

			if (n <= 0)
				break;
			have += (size_t)n;
			buf[have] = 0;
			if (strstr(buf, "\r\n\r\n"))
				break;
		}
		buf[have] = 0;
		pthread_mutex_lock(&s->mu);
		snprintf(s->last, sizeof(s->last), "%s", buf);
		pthread_mutex_unlock(&s->mu);
		{
			const char *ans = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
					  "Set-Cookie: sid=backend-secret\r\n"
					  "Keep-Alive: timeout=5\r\n"
					  "Access-Control-Allow-Origin: *\r\n"
					  "X-Backend: yes\r\n\r\nhello from the backend";

			(void)!write(c, ans, strlen(ans));
		}
		close(c);
	}
	return NULL;
}

static int listen_lo(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64) ||
	    getsockname(fd, (struct sockaddr *)&a, &al)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

/* A free port on 127.0.0.1 for UDP (QUIC) or TCP (the gateway). */
static uint16_t free_port(int type)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, type, 0);
	uint16_t p = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &al))
		p = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return p;
}

/* ----------------------------------------------------------- the node */

struct gwt {
	struct engine *eng;
	struct quic_node *quic;
	struct svc_node *sn;
	struct identity id;
	struct svc_node_cfg cfg;
	uint16_t ports[2], gw_port;
	struct hsrv be;
	char web_id[2 * SVC_ID_LEN + 1];
	char pin_id[2 * SVC_ID_LEN + 1];
	char wild_id[2 * SVC_ID_LEN + 1];
};

static int gw_setup(void **state)
{
	struct gwt *t = calloc(1, sizeof(*t));
	struct engine_opts eo;
	uint8_t seed[IDENTITY_SEED_LEN], id[SVC_ID_LEN];
	char backend[64];
	struct svc_node_pub_opts creds = { .http_flags = SVC_HTTP_F_CREDENTIALS,
					   .cors = "http://app.localhost:1" };

	assert_non_null(t);
	for (size_t i = 0; i < sizeof(seed); i++)
		seed[i] = (uint8_t)(0x40 + i);
	identity_from_seed(&t->id, seed);
	t->ports[0] = free_port(SOCK_DGRAM);
	t->ports[1] = free_port(SOCK_DGRAM);
	t->gw_port = free_port(SOCK_STREAM);
	assert_true(t->ports[0] && t->ports[1] && t->gw_port && t->ports[0] != t->ports[1]);
	memset(&t->cfg, 0, sizeof(t->cfg)); /* 0: every limit at its default */
	snprintf(t->cfg.gateway, sizeof(t->cfg.gateway), "127.0.0.1:%u", t->gw_port);
	snprintf(t->cfg.gateway_services, sizeof(t->cfg.gateway_services), "web,pinned,wild");
	snprintf(t->cfg.bind_addr, sizeof(t->cfg.bind_addr), "127.0.0.1");
	t->cfg.quic_port = t->ports[0];
	engine_opts_default(&eo);
	eo.ports = t->ports;
	eo.nports = 2;
	eo.workers = 1;
	eo.bind_addr = "127.0.0.1";
	assert_int_equal(engine_new(&t->eng, &eo), 0);
	{
		struct quic_node_opts qo = { .eng = t->eng, .id = &t->id, .port = t->ports[0] };

		assert_int_equal(quic_node_new(&t->quic, &qo), 0);
	}
	{
		struct svc_node_opts so = { .eng = t->eng, .quic = t->quic, .id = &t->id,
					    .cfg = &t->cfg };

		assert_int_equal(svc_node_new(&t->sn, &so), 0);
	}
	assert_int_equal(engine_start(t->eng), 0);
	assert_int_equal(svc_node_start(t->sn), 0);

	pthread_mutex_init(&t->be.mu, NULL);
	t->be.fd = listen_lo(&t->be.port);
	assert_true(t->be.fd >= 0);
	assert_int_equal(pthread_create(&t->be.th, NULL, hsrv_main, &t->be), 0);
	snprintf(backend, sizeof(backend), "tcp:127.0.0.1:%u", t->be.port);
	assert_int_equal(svc_node_publish(t->sn, "web", backend, NULL), 0);
	assert_int_equal(svc_node_publish(t->sn, "pinned", backend, &creds), 0);
	creds.cors = "*";
	assert_int_equal(svc_node_publish(t->sn, "wild", backend, &creds), 0);
	creds.cors = "http://x/path";
	assert_int_equal(svc_node_publish(t->sn, "bad-cors", backend, &creds), -EINVAL);
	svc_id(id, t->id.pk, "web", 3);
	util_hex(t->web_id, id, SVC_ID_LEN);
	svc_id(id, t->id.pk, "pinned", 6);
	util_hex(t->pin_id, id, SVC_ID_LEN);
	svc_id(id, t->id.pk, "wild", 4);
	util_hex(t->wild_id, id, SVC_ID_LEN);
	*state = t;
	return 0;
}

static int gw_teardown(void **state)
{
	struct gwt *t = *state;

	svc_node_free(t->sn);
	quic_node_free(t->quic);
	engine_free(t->eng);
	t->be.stop = 1;
	pthread_join(t->be.th, NULL);
	close(t->be.fd);
	pthread_mutex_destroy(&t->be.mu);
	identity_wipe(&t->id);
	free(t);
	return 0;
}

/* One request to the gateway over a plain socket; the whole answer in out
 * (NUL-terminated). Returns the HTTP status or -1. */
static int http_raw(uint16_t port, const char *req, char *out, size_t cap)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	size_t have = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), st = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	(void)!write(fd, req, strlen(req));
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (have + 1 >= cap || poll(&p, 1, 10000) <= 0)
			break;
		n = read(fd, out + have, cap - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	out[have] = 0;
	close(fd);
	if (sscanf(out, "HTTP/1.%*d %d", &st) != 1)
		return -1;
	return st;
}

static int get(struct gwt *t, const char *host, const char *path, const char *extra, char *out,
	       size_t cap)
{
	char req[40000];

	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", path, host,
		 extra ? extra : "");
	return http_raw(t->gw_port, req, out, cap);
}

/* Case-insensitive search of a header line "name:" in a response head. */
static int has_header(const char *resp, const char *name)
{
	const char *end = strstr(resp, "\r\n\r\n");
	size_t nl = strlen(name);

	for (const char *p = strstr(resp, "\r\n"); p && (!end || p < end);
	     p = strstr(p + 2, "\r\n"))
		if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':')
			return 1;
	return 0;
}

static void backend_last(struct gwt *t, char *out, size_t cap)
{
	pthread_mutex_lock(&t->be.mu);
	snprintf(out, cap, "%s", t->be.last);
	t->be.last[0] = 0;
	pthread_mutex_unlock(&t->be.mu);
}

static void test_gw_host_origin(void **state)
{
	struct gwt *t = *state;
	char out[16384], host[128], bare[64];

	snprintf(host, sizeof(host), "web.localhost:%u", t->gw_port);
	snprintf(bare, sizeof(bare), "127.0.0.1:%u", t->gw_port);
	/* DNS rebinding: a page on evil.example resolved to 127.0.0.1. */
	snprintf(out, sizeof(out), "evil.example:%u", t->gw_port);
	assert_int_equal(get(t, out, "/mesh/v1/services/web", NULL, out, sizeof(out)), 421);
	assert_non_null(strstr(out, "\"code\":\"misdirected\""));
	snprintf(out, sizeof(out), "evil.example:%u", t->gw_port);
	assert_int_equal(get(t, out, "/hello", NULL, out, sizeof(out)), 421);
	/* No Host at all (HTTP/1.0). */
	assert_int_equal(http_raw(t->gw_port, "GET /mesh/v1/services/web HTTP/1.0\r\n\r\n", out,
				  sizeof(out)),
			 421);
	/* The bare host answers the API. */
	assert_int_equal(get(t, bare, "/mesh/v1/services/web", NULL, out, sizeof(out)), 200);
	/* A foreign Origin is refused on both kinds of host. */
	assert_int_equal(get(t, bare, "/mesh/v1/services/web", "Origin: http://evil.example\r\n",
			     out, sizeof(out)),
			 403);
	assert_non_null(strstr(out, "\"code\":\"foreign_origin\""));
	assert_int_equal(get(t, host, "/x", "Origin: http://evil.example\r\n", out, sizeof(out)),
			 403);
	assert_int_equal(get(t, host, "/x", "Origin: null\r\n", out, sizeof(out)), 403);
	/* Another service's origin is foreign too. */
	snprintf(out, sizeof(out), "Origin: http://pinned.localhost:%u\r\n", t->gw_port);
	assert_int_equal(get(t, host, "/x", out, out, sizeof(out)), 403);
	/* A cross-site embed without Origin (<img>, <script>). */
	assert_int_equal(get(t, host, "/x", "Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\n",
			     out, sizeof(out)),
			 403);
	/* ... but a navigation to the service's origin is fine. */
	assert_int_equal(get(t, host, "/x", "Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\n",
			     out, sizeof(out)),
			 200);
	/* The service's own origin, same-origin request: served. */
	snprintf(out, sizeof(out), "Origin: http://web.localhost:%u\r\n", t->gw_port);
	assert_int_equal(get(t, host, "/hello?x=1", out, out, sizeof(out)), 200);
	assert_non_null(strstr(out, "hello from the backend"));
	assert_true(has_header(out, "X-Backend"));
	/* No CORS unless the service asked for it: the backend's own is dropped. */
	assert_false(has_header(out, "Access-Control-Allow-Origin"));
	assert_false(has_header(out, "Keep-Alive"));
	/* A service not in gateway.services. */
	snprintf(host, sizeof(host), "echo.localhost:%u", t->gw_port);
	assert_int_equal(get(t, host, "/", NULL, out, sizeof(out)), 403);
}

static void test_gw_credentials(void **state)
{
	struct gwt *t = *state;
	char out[16384], host[128], seen[8192];
	const char *secrets = "Cookie: sid=local-secret\r\nAuthorization: Bearer local-token\r\n"
			      "Proxy-Authorization: Basic x\r\nX-Private: p\r\n"
			      "Connection: X-Private\r\nKeep-Alive: 1\r\nTE: trailers\r\n"
			      "Weft-Caller: forged\r\n";
	char caller[2 * IDENTITY_PK_LEN + 1], line[128];

	/* Name origin: nothing secret crosses, either way. */
	snprintf(host, sizeof(host), "web.localhost:%u", t->gw_port);
	assert_int_equal(get(t, host, "/a", secrets, out, sizeof(out)), 200);
	backend_last(t, seen, sizeof(seen));
	/* the provider speaks HTTP/1.1 to the backend, on a kept-alive
	 * connection: the gateway's own Connection: close stays on its hop */
	assert_non_null(strstr(seen, "GET /a HTTP/1.1\r\n"));
	assert_null(strcasestr(seen, "\r\nConnection:"));
	/* The local backend sees this node as the caller (the client's own
	 * Weft-Caller is gone) and the service's name. */
	util_hex(caller, t->id.pk, IDENTITY_PK_LEN);
	snprintf(line, sizeof(line), "\r\nWeft-Caller: %s\r\n", caller);
	assert_non_null(strstr(seen, line));
	assert_non_null(strstr(seen, "\r\nWeft-Service: web\r\n"));
	assert_non_null(strstr(seen, "\r\nWeft-Request-Id: "));
	{
		/* ... and it verifies: this node's key, method "http", no body */
		uint8_t a[SVC_ASSERT_LEN];
		unsigned long long tm;
		char sig[2 * IDENTITY_SIG_LEN + 1], rhex[2 * SVC_REQ_ID_LEN + 1];
		const char *rid = strstr(seen, "\r\nWeft-Request-Id: "),
			   *as = strstr(seen, "\r\nWeft-Caller-Assertion: v1 t=");

		assert_non_null(rid);
		assert_non_null(as);
		assert_int_equal(sscanf(as, "\r\nWeft-Caller-Assertion: v1 t=%llu sig=%128[0-9a-f]",
					&tm, sig),
				 2);
		snprintf(rhex, sizeof(rhex), "%s", rid + 19);
		assert_int_equal(util_unhex(a, SVC_REQ_ID_LEN, rhex), 0);
		for (int i = 0; i < 8; i++)
			a[SVC_REQ_ID_LEN + i] = (uint8_t)(tm >> (56 - 8 * i));
		assert_int_equal(util_unhex(a + SVC_REQ_ID_LEN + 8, IDENTITY_SIG_LEN, sig), 0);
		assert_int_equal(svc_assert_verify(a, t->id.pk, "web", 3, "http", 4, NULL, 0, tm,
						   1000),
				 0);
		assert_int_not_equal(svc_assert_verify(a, t->id.pk, "web", 3, "x", 1, NULL, 0, tm,
						       1000),
				     0);
	}
	assert_null(strstr(seen, "forged"));
	assert_null(strcasestr(seen, "local-secret"));
	assert_null(strcasestr(seen, "local-token"));
	assert_null(strcasestr(seen, "Proxy-Authorization"));
	assert_null(strcasestr(seen, "X-Private"));
	assert_null(strcasestr(seen, "Keep-Alive"));
	assert_null(strcasestr(seen, "\r\nTE:"));
	assert_false(has_header(out, "Set-Cookie"));
	assert_null(strstr(out, "backend-secret"));

	/* Path form on the bare host: never credentials, sandboxed. */
	snprintf(host, sizeof(host), "localhost:%u", t->gw_port);
	assert_int_equal(get(t, host, "/mesh/v1/http/pinned/b", secrets, out, sizeof(out)), 200);
	backend_last(t, seen, sizeof(seen));
	assert_non_null(strstr(seen, "GET /b HTTP/1.1\r\n"));
	assert_null(strcasestr(seen, "local-secret"));
	assert_null(strcasestr(seen, "local-token"));
	assert_false(has_header(out, "Set-Cookie"));
	assert_non_null(strstr(out, "Content-Security-Policy: sandbox"));

	/* The name origin of a service that opted in: still none (the name
	 * may lead to another owner's provider). */
	snprintf(host, sizeof(host), "pinned.localhost:%u", t->gw_port);
	assert_int_equal(get(t, host, "/c", secrets, out, sizeof(out)), 200);
	backend_last(t, seen, sizeof(seen));
	assert_null(strcasestr(seen, "local-secret"));
	assert_false(has_header(out, "Set-Cookie"));

	/* Its pinned origin (service id): Cookie and Authorization go, and
	 * Set-Cookie comes back; hop-by-hop headers still do not. */
	snprintf(host, sizeof(host), "%s.localhost:%u", t->pin_id, t->gw_port);
	assert_int_equal(get(t, host, "/d", secrets, out, sizeof(out)), 200);
	backend_last(t, seen, sizeof(seen));
	assert_non_null(strstr(seen, "Cookie: sid=local-secret\r\n"));
	assert_non_null(strstr(seen, "Authorization: Bearer local-token\r\n"));
	assert_null(strcasestr(seen, "Proxy-Authorization"));
	assert_null(strcasestr(seen, "X-Private"));
	assert_true(has_header(out, "Set-Cookie"));
	assert_non_null(strstr(out, "sid=backend-secret"));
	assert_false(has_header(out, "Keep-Alive"));

	/* The pinned origin of a service that did not opt in: none. */
	snprintf(host, sizeof(host), "%s.localhost:%u", t->web_id, t->gw_port);
	assert_int_equal(get(t, host, "/e", secrets, out, sizeof(out)), 200);
	backend_last(t, seen, sizeof(seen));
	assert_null(strcasestr(seen, "local-secret"));
	assert_false(has_header(out, "Set-Cookie"));
	/* An unknown id. */
	snprintf(host, sizeof(host), "%040d.localhost:%u", 0, t->gw_port);
	assert_int_equal(get(t, host, "/", NULL, out, sizeof(out)), 404);
}

static void test_gw_cors(void **state)
{
	struct gwt *t = *state;
	char out[16384], host[128];

	/* "pinned" allows http://app.localhost:1: preflight and request. */
	snprintf(host, sizeof(host), "%s.localhost:%u", t->pin_id, t->gw_port);
	{
		char req[1024];

		snprintf(req, sizeof(req),
			 "OPTIONS /d HTTP/1.1\r\nHost: %s\r\nOrigin: http://app.localhost:1\r\n"
			 "Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n",
			 host);
		assert_int_equal(http_raw(t->gw_port, req, out, sizeof(out)), 204);
		assert_non_null(strstr(out, "Access-Control-Allow-Origin: http://app.localhost:1"));
		assert_non_null(strstr(out, "Access-Control-Allow-Credentials: true"));
	}
	assert_int_equal(get(t, host, "/d", "Origin: http://app.localhost:1\r\n", out, sizeof(out)),
			 200);
	assert_non_null(strstr(out, "Access-Control-Allow-Origin: http://app.localhost:1"));
	/* Its name origin: CORS yes, credentials no. */
	snprintf(host, sizeof(host), "pinned.localhost:%u", t->gw_port);
	assert_int_equal(get(t, host, "/d", "Origin: http://app.localhost:1\r\n", out, sizeof(out)),
			 200);
	assert_non_null(strstr(out, "Access-Control-Allow-Origin: http://app.localhost:1"));
	assert_null(strstr(out, "Access-Control-Allow-Credentials"));
	/* Any other origin still refused. */
	assert_int_equal(get(t, host, "/d", "Origin: http://app.localhost:2\r\n", out, sizeof(out)),
			 403);
	/* "*" lets any origin read the service, never with credentials. */
	snprintf(host, sizeof(host), "%s.localhost:%u", t->wild_id, t->gw_port);
	assert_int_equal(get(t, host, "/w", "Origin: http://x.example\r\n", out, sizeof(out)), 200);
	assert_non_null(strstr(out, "Access-Control-Allow-Origin: http://x.example"));
	assert_null(strstr(out, "Access-Control-Allow-Credentials"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_head_parse),
		cmocka_unit_test(test_header_filters),
		cmocka_unit_test(test_host_origin),
		cmocka_unit_test_setup_teardown(test_gw_host_origin, gw_setup, gw_teardown),
		cmocka_unit_test_setup_teardown(test_gw_credentials, gw_setup, gw_teardown),
		cmocka_unit_test_setup_teardown(test_gw_cors, gw_setup, gw_teardown),
	};

	return cmocka_run_group_tests_name("service_gateway", tests, NULL, NULL);
}
