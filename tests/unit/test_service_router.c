// SPDX-License-Identifier: MIT
/* Service router: registry, echo, mesh-stats privacy, rate / size /
 * concurrency limits, violation scoring and bans, bounded peer table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "testutil.h"
#include "weft/svc_router.h"
#include "weft/util.h"
#include "service/svc_int.h"

#define SEC 1000000000ull
#define T0 (1000 * SEC) /* arbitrary monotonic start */

static void mk_peer(struct svc_peer *p, uint32_t n)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&p->addr;

	memset(p, 0, sizeof(*p));
	tu_fill(p->key, sizeof(p->key), 1000 + n);
	memcpy(p->key, &n, sizeof(n));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(40000);
	sin->sin_addr.s_addr = htonl(0xc6336400u | (n & 0xff)); /* 198.51.100.n */
}

static struct svc_msg req(const char *svc, const void *payload, size_t len)
{
	return (struct svc_msg){.type = SVC_MSG_REQUEST,
				.service = svc,
				.service_len = strlen(svc),
				.payload = payload,
				.payload_len = len};
}

/* One echo call; returns the error class. */
static int call(struct svc_router *r, const struct svc_peer *p, const char *svc, uint64_t now)
{
	struct svc_msg m = req(svc, "x", 1);
	struct svc_reply rep;
	struct svc_ticket t;
	int rc = svc_router_call(r, p, &m, now, &rep, &t);

	assert_int_equal(rc, 0);
	svc_reply_release(&rep);
	return rep.err;
}

struct ban_log {
	int n;
	uint8_t key[IDENTITY_PK_LEN];
	struct sockaddr_storage addr;
	unsigned int prefixlen;
	uint64_t expires;
};

static void on_ban(void *ctx, const uint8_t key[IDENTITY_PK_LEN],
		   const struct sockaddr_storage *addr, unsigned int prefixlen, uint64_t expires_ns)
{
	struct ban_log *b = ctx;

	b->n++;
	b->prefixlen = prefixlen;
	memcpy(b->key, key, IDENTITY_PK_LEN);
	b->addr = *addr;
	b->expires = expires_ns;
}

static void test_echo(void **state)
{
	struct svc_router *r;
	struct svc_peer p;
	struct svc_reply rep;
	struct svc_ticket t;
	uint8_t payload[5000];
	struct svc_msg m;

	assert_int_equal(svc_router_new(&r, NULL), 0);
	assert_int_equal(svc_router_register_builtins(r), 0);
	assert_int_equal(svc_router_register_builtins(r), -EEXIST);
	mk_peer(&p, 1);
	tu_fill(payload, sizeof(payload), 9);
	m = req("echo", payload, sizeof(payload));
	m.method = "any/method";
	m.method_len = 10;
	assert_int_equal(svc_router_call(r, &p, &m, T0, &rep, &t), 0);
	assert_int_equal(rep.err, SVC_OK);
	assert_int_equal(rep.status, 0);
	assert_int_equal(rep.len, sizeof(payload));
	assert_memory_equal(rep.buf, payload, sizeof(payload));
	svc_reply_release(&rep);
	/* empty payload */
	m = req("echo", NULL, 0);
	assert_int_equal(svc_router_call(r, &p, &m, T0, &rep, &t), 0);
	assert_int_equal(rep.err, SVC_OK);
	assert_int_equal(rep.len, 0);
	svc_reply_release(&rep);
	/* not a request */
	m.type = SVC_MSG_RESPONSE;
	assert_int_equal(svc_router_call(r, &p, &m, T0, &rep, &t), -EINVAL);
	/* unknown service */
	assert_int_equal(call(r, &p, "nope", T0), SVC_ERR_NOT_FOUND);
	{
		struct svc_router_stats st;

		svc_router_get_stats(r, &st);
		assert_int_equal(st.admitted, 2);
		assert_int_equal(st.results[SVC_OK], 2);
		assert_int_equal(st.results[SVC_ERR_NOT_FOUND], 1);
		/* the two in-process calls took no time on the router's clock:
		 * both in the first bucket of the served histogram */
		assert_int_equal(st.served_lat[0], 2);
		assert_int_equal(st.served_lat_sum_us, 0);
		assert_int_equal(st.inflight, 0);
		assert_int_equal(st.services, 2);
	}
	svc_router_free(r);
}

/* A backend call's duration, admission to done, lands in its bucket. */
static void test_served_histogram(void **state)
{
	static const uint64_t le[SVC_ROUTER_LAT_BUCKETS] = SVC_ROUTER_LAT_BOUNDS_US;
	struct svc_service_opts o = {
	    .name = "be", .kind = SVC_KIND_BACKEND, .backend = "tcp:127.0.0.1:9"};
	struct svc_router_stats st;
	struct svc_router *r;
	struct svc_ticket t;
	struct svc_peer p;

	(void)state;
	assert_int_equal(svc_router_new(&r, NULL), 0);
	assert_int_equal(svc_router_register(r, &o), 0);
	mk_peer(&p, 3);
	assert_int_equal(svc_router_admit(r, &p, "be", 2, 1, 0, T0, &t), SVC_OK);
	/* 3 ms: past the 2.5 ms bound, within 5 ms */
	svc_router_done(r, &t, SVC_OK, T0 + 3000000ull);
	svc_router_get_stats(r, &st);
	for (unsigned int i = 0; i <= SVC_ROUTER_LAT_BUCKETS; i++)
		assert_int_equal(st.served_lat[i], i < SVC_ROUTER_LAT_BUCKETS && le[i] == 5000 ? 1 : 0);
	assert_int_equal(st.served_lat_sum_us, 3000);
	svc_router_free(r);
}

static void test_mesh_stats_private(void **state)
{
	struct svc_router *r;
	struct svc_peer p[3];
	struct svc_reply rep;
	struct svc_ticket t;
	struct svc_msg m;
	struct sockaddr_in6 *sin6;
	char text[4096], hex[65];
	json_error_t jerr;
	json_t *j;

	assert_int_equal(svc_router_new(&r, NULL), 0);
	assert_int_equal(svc_router_register_builtins(r), 0);
	for (uint32_t i = 0; i < 3; i++)
		mk_peer(&p[i], 10 + i);
	sin6 = (struct sockaddr_in6 *)&p[2].addr;
	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8:77::5", &sin6->sin6_addr);
	assert_int_equal(call(r, &p[0], "echo", T0), SVC_OK);
	assert_int_equal(call(r, &p[1], "nope", T0), SVC_ERR_NOT_FOUND);
	assert_int_equal(call(r, &p[2], "echo", T0), SVC_OK);
	m = req("mesh-stats", NULL, 0);
	assert_int_equal(svc_router_call(r, &p[0], &m, T0, &rep, &t), 0);
	assert_int_equal(rep.err, SVC_OK);
	assert_true(rep.len > 0 && rep.len < sizeof(text));
	memcpy(text, rep.buf, rep.len);
	text[rep.len] = '\0';

	/* aggregate counters only */
	j = json_loads(text, 0, &jerr);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "admitted")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "peers_tracked")), 3);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(j, "results"), "not_found")), 1);
	json_decref(j);

	/* no address, no key: not as text, not as hex, not as raw bytes */
	assert_null(strstr(text, "198.51.100"));
	assert_null(strstr(text, "2001:db8"));
	assert_null(strstr(text, "40000"));
	for (int i = 0; i < 3; i++) {
		util_hex(hex, p[i].key, 32);
		assert_null(strstr(text, hex));
		hex[16] = '\0';
		assert_null(strstr(text, hex));
		assert_null(memmem(rep.buf, rep.len, p[i].key, 8));
	}
	/* nothing but digits and the fixed key names */
	for (size_t i = 0; i < rep.len; i++)
		assert_true(strchr("{}\":,_abcdefghijklmnopqrstuvwxyz0123456789", text[i]));
	svc_reply_release(&rep);
	svc_router_free(r);
}

static void test_rate_limit(void **state)
{
	struct svc_router *r;
	struct svc_peer a, b;

	assert_int_equal(svc_router_new(&r, NULL), 0);
	assert_int_equal(svc_router_register_builtins(r), 0);
	mk_peer(&a, 1);
	mk_peer(&b, 2);
	for (int i = 0; i < 100; i++)
		assert_int_equal(call(r, &a, "echo", T0 + (uint64_t)i * 1000), SVC_OK);
	/* 101st within the minute, early or late in it */
	assert_int_equal(call(r, &a, "echo", T0 + 2 * SEC), SVC_ERR_RATE_LIMITED);
	assert_int_equal(call(r, &a, "echo", T0 + 59 * SEC), SVC_ERR_RATE_LIMITED);
	/* another peer is unaffected */
	assert_int_equal(call(r, &b, "echo", T0 + 2 * SEC), SVC_OK);
	/* sliding window: 0.6 s into the next minute, 1% of the previous
	 * minute's 100 calls has slid out: exactly one more call */
	assert_int_equal(call(r, &a, "echo", T0 + 60 * SEC + 600 * 1000000ull), SVC_OK);
	assert_int_equal(call(r, &a, "echo", T0 + 60 * SEC + 600 * 1000000ull),
			 SVC_ERR_RATE_LIMITED);
	/* two idle minutes later the whole allowance is back */
	for (int i = 0; i < 100; i++)
		assert_int_equal(call(r, &a, "echo", T0 + 180 * SEC), SVC_OK);
	assert_int_equal(call(r, &a, "echo", T0 + 180 * SEC), SVC_ERR_RATE_LIMITED);
	svc_router_free(r);
}

static void test_service_limits(void **state)
{
	struct svc_router_opts o = {.peer = {.calls_per_min = 100000}};
	struct svc_service_opts s = {
	    .name = "small",
	    .kind = SVC_KIND_BACKEND,
	    .backend = "tcp:127.0.0.1:9",
	    .limits = {.calls_per_min = 5, .max_payload = 1000, .max_concurrent = 3}};
	struct svc_ticket t[8];
	struct svc_router *r;
	struct svc_peer p;

	assert_int_equal(svc_router_new(&r, &o), 0);
	assert_int_equal(svc_router_register(r, &s), 0);
	mk_peer(&p, 1);
	assert_int_equal(svc_router_admit(r, &p, "small", 5, 1001, 0, T0, &t[0]),
			 SVC_ERR_TOO_LARGE);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(svc_router_admit(r, &p, "small", 5, 1000, 0, T0, &t[i]), SVC_OK);
		assert_int_equal(t[i].kind, SVC_KIND_BACKEND);
		assert_string_equal(t[i].backend, "tcp:127.0.0.1:9");
		assert_int_equal(t[i].max_payload, 1000);
	}
	assert_int_equal(svc_router_admit(r, &p, "small", 5, 1, 0, T0, &t[3]), SVC_ERR_OVERLOADED);
	svc_router_done(r, &t[0], SVC_OK, T0);
	assert_int_equal(svc_router_admit(r, &p, "small", 5, 1, 0, T0, &t[0]), SVC_OK);
	svc_router_done(r, &t[0], SVC_OK, T0);
	assert_int_equal(svc_router_admit(r, &p, "small", 5, 1, 0, T0, &t[0]), SVC_OK);
	svc_router_done(r, &t[0], SVC_OK, T0);
	/* 5 admitted in this minute: the service's own rate cap */
	assert_int_equal(svc_router_admit(r, &p, "small", 5, 1, 0, T0, &t[0]),
			 SVC_ERR_RATE_LIMITED);
	/* service caps do not score the peer */
	assert_int_equal(svc_router_peer_banned(r, p.key, NULL, T0), 0);
	/* unregister with calls in flight: done() stays harmless */
	assert_int_equal(svc_router_unregister(r, "small"), 0);
	assert_int_equal(svc_router_unregister(r, "small"), -ENOENT);
	svc_router_done(r, &t[1], SVC_ERR_TIMEOUT, T0);
	svc_router_done(r, &t[2], 99, T0); /* out of range: counted as backend_error */
	{
		struct svc_router_stats st;

		svc_router_get_stats(r, &st);
		assert_int_equal(st.inflight, 0);
		assert_int_equal(st.results[SVC_ERR_TIMEOUT], 1);
		assert_int_equal(st.results[SVC_ERR_BACKEND_ERROR], 1);
	}
	assert_int_equal(svc_router_admit(r, &p, "small", 5, 1, 0, T0, &t[0]), SVC_ERR_NOT_FOUND);
	/* bad registrations */
	s.backend = "http://x";
	assert_int_equal(svc_router_register(r, &s), -EINVAL);
	s.kind = SVC_KIND_INPROC;
	s.fn = NULL;
	assert_int_equal(svc_router_register(r, &s), -EINVAL);
	svc_router_free(r);
}

/* A service registered without limits of its own takes the router's
 * per-service defaults (opts.svc, set from the [svc] config section). */
static void test_service_defaults(void **state)
{
	struct svc_router_opts o = {
	    .peer = {.calls_per_min = 100000},
	    .svc = {.calls_per_min = 4, .max_payload = 500, .max_concurrent = 2}};
	struct svc_service_opts s = {
	    .name = "plain", .kind = SVC_KIND_BACKEND, .backend = "tcp:127.0.0.1:9"};
	struct svc_ticket t[4];
	struct svc_router *r;
	struct svc_peer p;

	assert_int_equal(svc_router_new(&r, &o), 0);
	assert_int_equal(svc_router_register(r, &s), 0);
	mk_peer(&p, 3);
	assert_int_equal(svc_router_admit(r, &p, "plain", 5, 501, 0, T0, &t[0]), SVC_ERR_TOO_LARGE);
	assert_int_equal(svc_router_admit(r, &p, "plain", 5, 500, 0, T0, &t[0]), SVC_OK);
	assert_int_equal(t[0].max_payload, 500);
	assert_int_equal(svc_router_admit(r, &p, "plain", 5, 1, 0, T0, &t[1]), SVC_OK);
	assert_int_equal(svc_router_admit(r, &p, "plain", 5, 1, 0, T0, &t[2]), SVC_ERR_OVERLOADED);
	svc_router_done(r, &t[0], SVC_OK, T0);
	svc_router_done(r, &t[1], SVC_OK, T0);
	assert_int_equal(svc_router_admit(r, &p, "plain", 5, 1, 0, T0, &t[0]), SVC_OK);
	svc_router_done(r, &t[0], SVC_OK, T0);
	assert_int_equal(svc_router_admit(r, &p, "plain", 5, 1, 0, T0, &t[0]), SVC_OK);
	svc_router_done(r, &t[0], SVC_OK, T0);
	/* 4 admitted this minute: the default per-service rate */
	assert_int_equal(svc_router_admit(r, &p, "plain", 5, 1, 0, T0, &t[0]),
			 SVC_ERR_RATE_LIMITED);
	svc_router_free(r);
}

static void test_size_cap(void **state)
{
	struct svc_router *r;
	struct svc_peer p;
	struct svc_ticket t;
	struct svc_reply rep;
	struct svc_msg m;
	uint8_t *big = calloc(1, SVC_DEFAULT_MAX_PAYLOAD + 1);

	assert_non_null(big);
	assert_int_equal(svc_router_new(&r, NULL), 0);
	assert_int_equal(svc_router_register_builtins(r), 0);
	mk_peer(&p, 1);
	m = req("echo", big, SVC_DEFAULT_MAX_PAYLOAD + 1);
	assert_int_equal(svc_router_call(r, &p, &m, T0, &rep, &t), 0);
	assert_int_equal(rep.err, SVC_ERR_TOO_LARGE);
	assert_int_equal(rep.len, 0);
	m.payload_len = SVC_DEFAULT_MAX_PAYLOAD;
	assert_int_equal(svc_router_call(r, &p, &m, T0, &rep, &t), 0);
	assert_int_equal(rep.err, SVC_OK);
	assert_int_equal(rep.len, SVC_DEFAULT_MAX_PAYLOAD);
	svc_reply_release(&rep);
	/* streams: per-frame cap */
	assert_int_equal(svc_router_admit(r, &p, "echo", 4, 0, 1, T0, &t), SVC_OK);
	assert_int_equal(svc_router_stream_data(r, &t, SVC_DEFAULT_MAX_PAYLOAD, T0), SVC_OK);
	assert_int_equal(svc_router_stream_data(r, &t, SVC_DEFAULT_MAX_PAYLOAD + 1, T0),
			 SVC_ERR_TOO_LARGE);
	svc_router_done(r, &t, SVC_ERR_TOO_LARGE, T0);
	free(big);
	svc_router_free(r);
}

static void test_concurrency(void **state)
{
	struct svc_router_opts o = {
	    .peer = {.calls_per_min = 100000}, .global_concurrent = 150, .max_peers = 256};
	struct svc_ticket t[160];
	struct svc_router *r;
	struct svc_peer a, b;
	int n = 0;

	assert_int_equal(svc_router_new(&r, &o), 0);
	assert_int_equal(svc_router_register_builtins(r), 0);
	mk_peer(&a, 1);
	mk_peer(&b, 2);
	for (int i = 0; i < 100; i++)
		assert_int_equal(svc_router_admit(r, &a, "echo", 4, 1, 0, T0, &t[n++]), SVC_OK);
	/* the 101st concurrent call of one peer */
	assert_int_equal(svc_router_admit(r, &a, "echo", 4, 1, 0, T0, &t[n]), SVC_ERR_OVERLOADED);
	/* global cap 150: b gets 50 */
	for (int i = 0; i < 50; i++)
		assert_int_equal(svc_router_admit(r, &b, "echo", 4, 1, 1, T0, &t[n++]), SVC_OK);
	assert_int_equal(svc_router_admit(r, &b, "echo", 4, 1, 0, T0, &t[n]), SVC_ERR_OVERLOADED);
	svc_router_done(r, &t[0], SVC_OK, T0);
	assert_int_equal(svc_router_admit(r, &b, "echo", 4, 1, 0, T0, &t[0]), SVC_OK);
	for (int i = 0; i < n; i++)
		svc_router_done(r, &t[i], SVC_OK, T0);
	{
		struct svc_router_stats st;

		svc_router_get_stats(r, &st);
		assert_int_equal(st.inflight, 0);
		assert_int_equal(st.admitted, 151);
	}
	svc_router_free(r);
	/* max_peers must exceed the global cap */
	o.max_peers = 150;
	assert_int_equal(svc_router_new(&r, &o), -EINVAL);
	assert_null(r);
}

static void test_ban_once(void **state)
{
	struct ban_log log = {0};
	struct svc_router_opts o = {.ban = on_ban, .ban_ctx = &log};
	struct svc_router *r;
	struct svc_peer p, q;
	uint64_t now = T0;

	assert_int_equal(svc_router_new(&r, &o), 0);
	assert_int_equal(svc_router_register_builtins(r), 0);
	mk_peer(&p, 7);
	mk_peer(&q, 8);
	for (int i = 0; i < 100; i++)
		assert_int_equal(call(r, &p, "echo", now), SVC_OK);
	/* 49 rate-limited calls: 49 points, below the threshold of 50 */
	for (int i = 0; i < 49; i++)
		assert_int_equal(call(r, &p, "echo", now), SVC_ERR_RATE_LIMITED);
	assert_int_equal(log.n, 0);
	assert_int_equal(call(r, &p, "echo", now), SVC_ERR_RATE_LIMITED);
	assert_int_equal(log.n, 1);
	assert_memory_equal(log.key, p.key, IDENTITY_PK_LEN);
	assert_memory_equal(&log.addr, &p.addr, sizeof(struct sockaddr_in));
	assert_int_equal(log.expires, now + SVC_DEFAULT_BAN_NS);
	assert_int_equal(log.prefixlen, 32); /* that host */
	/* a key ban, not an address ban: another key there is not banned */
	assert_int_equal(svc_router_peer_banned(r, q.key, &p.addr, now), 0);
	assert_int_equal(svc_router_peer_banned(r, p.key, NULL, now), 1);
	/* from now on: banned, and the callback does not fire again */
	for (int i = 0; i < 200; i++)
		assert_int_equal(call(r, &p, "echo", now + (uint64_t)i * SEC), SVC_ERR_BANNED);
	assert_int_equal(svc_router_violation(r, &p, SVC_ERR_BAD_REQUEST, now), 0);
	assert_int_equal(log.n, 1);
	/* the other peer is fine */
	assert_int_equal(call(r, &q, "echo", now), SVC_OK);
	/* after the expiry the peer may call again */
	assert_int_equal(svc_router_peer_banned(r, p.key, NULL, log.expires), 0);
	assert_int_equal(call(r, &p, "echo", log.expires), SVC_OK);
	{
		struct svc_router_stats st;

		svc_router_get_stats(r, &st);
		assert_int_equal(st.bans, 1);
		assert_int_equal(st.addr_bans, 0);
		assert_int_equal(st.results[SVC_ERR_BANNED], 200);
	}
	svc_router_free(r);
}

static void test_score_decay(void **state)
{
	struct ban_log log = {0};
	struct svc_router_opts o = {.ban = on_ban, .ban_ctx = &log};
	struct svc_router *r;
	struct svc_peer p;

	assert_int_equal(svc_router_new(&r, &o), 0);
	mk_peer(&p, 3);
	/* 24 bad requests = 48 points */
	for (int i = 0; i < 24; i++)
		assert_int_equal(svc_router_violation(r, &p, SVC_ERR_BAD_REQUEST, T0), 0);
	/* 10 s later: 38 points; 5 more bad requests: 48 */
	for (int i = 0; i < 5; i++)
		assert_int_equal(svc_router_violation(r, &p, SVC_ERR_BAD_REQUEST, T0 + 10 * SEC),
				 0);
	assert_int_equal(log.n, 0);
	/* 1 more: 50 -> banned */
	assert_int_equal(svc_router_violation(r, &p, SVC_ERR_BAD_REQUEST, T0 + 10 * SEC), 1);
	assert_int_equal(log.n, 1);
	/* classes that are not the peer's fault score nothing */
	mk_peer(&p, 4);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(svc_router_violation(r, &p, SVC_ERR_TIMEOUT, T0), 0);
	/* too_large is worth 5: 10 of them ban */
	for (int i = 0; i < 9; i++)
		assert_int_equal(svc_router_violation(r, &p, SVC_ERR_TOO_LARGE, T0), 0);
	assert_int_equal(svc_router_violation(r, &p, SVC_ERR_TOO_LARGE, T0), 1);
	assert_int_equal(log.n, 2);
	svc_router_free(r);
}

static void set_v6(struct svc_peer *p, const char *a)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&p->addr;

	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(40000);
	assert_int_equal(inet_pton(AF_INET6, a, &sin6->sin6_addr), 1);
}

/* Many keys from one source address share its allowance. */
static void test_addr_rate(void **state)
{
	struct svc_router *r;
	struct svc_peer p, other;

	assert_int_equal(svc_router_new(&r, NULL), 0);
	assert_int_equal(svc_router_register_builtins(r), 0);
	/* keys 0..9 on 198.51.100.5: 10 x 100 = the address's 1000 */
	for (uint32_t k = 0; k < 10; k++) {
		mk_peer(&p, k << 8 | 5);
		for (int i = 0; i < 100; i++)
			assert_int_equal(call(r, &p, "echo", T0), SVC_OK);
	}
	mk_peer(&p, 10 << 8 | 5);
	assert_int_equal(call(r, &p, "echo", T0), SVC_ERR_RATE_LIMITED);
	/* refused by the address: the key's own allowance is untouched */
	mk_peer(&other, 10 << 8 | 6);
	memcpy(other.key, p.key, sizeof(p.key));
	for (int i = 0; i < 100; i++)
		assert_int_equal(call(r, &other, "echo", T0), SVC_OK);
	/* IPv6: one /64 is one source; the next /64 is another */
	mk_peer(&p, 1000);
	for (uint32_t k = 0; k < 10; k++) {
		char a[64];

		mk_peer(&p, 2000 + k);
		snprintf(a, sizeof(a), "2001:db8:77::%x", k + 1);
		set_v6(&p, a);
		for (int i = 0; i < 100; i++)
			assert_int_equal(call(r, &p, "echo", T0), SVC_OK);
	}
	mk_peer(&p, 2100);
	set_v6(&p, "2001:db8:77:0:ffff::1");
	assert_int_equal(call(r, &p, "echo", T0), SVC_ERR_RATE_LIMITED);
	set_v6(&p, "2001:db8:77:1::1");
	assert_int_equal(call(r, &p, "echo", T0), SVC_OK);
	/* v4-mapped IPv6 counts as the IPv4 address */
	mk_peer(&p, 2200);
	set_v6(&p, "::ffff:198.51.100.5");
	assert_int_equal(call(r, &p, "echo", T0), SVC_ERR_RATE_LIMITED);
	svc_router_free(r);
}

/* Concurrent calls per source address, all keys together. */
static void test_addr_concurrency(void **state)
{
	struct svc_router_opts o = {.peer = {.calls_per_min = 100000}, .addr_concurrent = 5};
	struct svc_ticket t[8], extra;
	struct svc_router *r;
	struct svc_peer p;
	int n = 0;

	assert_int_equal(svc_router_new(&r, &o), 0);
	assert_int_equal(svc_router_register_builtins(r), 0);
	/* five fresh keys on 198.51.100.5, one call each: the address is full */
	for (uint32_t k = 0; k < 5; k++) {
		mk_peer(&p, k << 8 | 5);
		assert_int_equal(svc_router_admit(r, &p, "echo", 4, 1, 0, T0, &t[n++]), SVC_OK);
	}
	mk_peer(&p, 5 << 8 | 5);
	assert_int_equal(svc_router_admit(r, &p, "echo", 4, 1, 0, T0, &extra), SVC_ERR_OVERLOADED);
	/* the same key from another address is not held back */
	mk_peer(&p, 5 << 8 | 6);
	assert_int_equal(svc_router_admit(r, &p, "echo", 4, 1, 0, T0, &t[n++]), SVC_OK);
	/* one call on .5 ends: room for one more there */
	svc_router_done(r, &t[0], SVC_OK, T0);
	mk_peer(&p, 5 << 8 | 5);
	assert_int_equal(svc_router_admit(r, &p, "echo", 4, 1, 0, T0, &t[0]), SVC_OK);
	assert_int_equal(svc_router_admit(r, &p, "echo", 4, 1, 0, T0, &extra), SVC_ERR_OVERLOADED);
	for (int i = 0; i < n; i++)
		svc_router_done(r, &t[i], SVC_OK, T0);
	{
		struct svc_router_stats st;

		svc_router_get_stats(r, &st);
		assert_int_equal(st.inflight, 0);
	}
	/* all released: the address takes five again */
	for (uint32_t k = 0; k < 5; k++) {
		mk_peer(&p, (10 + k) << 8 | 5);
		assert_int_equal(svc_router_admit(r, &p, "echo", 4, 1, 0, T0, &t[k]), SVC_OK);
	}
	for (int i = 0; i < 5; i++)
		svc_router_done(r, &t[i], SVC_OK, T0);
	svc_router_free(r);
}

/* Keys that each stay under the key threshold still get their address
 * banned: once, with the address prefix. */
static void test_addr_ban(void **state)
{
	struct ban_log log = {0};
	struct svc_router_opts o = {.ban = on_ban, .ban_ctx = &log};
	struct svc_router_stats st;
	struct svc_router *r;
	struct svc_peer p, q;

	assert_int_equal(svc_router_new(&r, &o), 0);
	assert_int_equal(svc_router_register_builtins(r), 0);
	/* 4 keys x 49 points = 196 on 2001:db8:77::/64 */
	for (uint32_t k = 0; k < 4; k++) {
		mk_peer(&p, 3000 + k);
		set_v6(&p, k % 2 ? "2001:db8:77::a" : "2001:db8:77::b");
		for (int i = 0; i < 49; i++)
			assert_int_equal(call(r, &p, "nope", T0), SVC_ERR_NOT_FOUND);
	}
	assert_int_equal(log.n, 0);
	mk_peer(&p, 3010);
	set_v6(&p, "2001:db8:77::c");
	for (int i = 0; i < 3; i++)
		assert_int_equal(call(r, &p, "nope", T0), SVC_ERR_NOT_FOUND);
	assert_int_equal(log.n, 0);
	assert_int_equal(call(r, &p, "nope", T0), SVC_ERR_NOT_FOUND); /* 200 */
	assert_int_equal(log.n, 1);
	assert_int_equal(log.prefixlen, 64);
	assert_memory_equal(log.key, p.key, IDENTITY_PK_LEN);
	assert_int_equal(log.expires, T0 + SVC_DEFAULT_BAN_NS);
	/* a brand-new key from that /64 is banned too; another /64 is not */
	mk_peer(&q, 3020);
	set_v6(&q, "2001:db8:77::99");
	assert_int_equal(call(r, &q, "echo", T0), SVC_ERR_BANNED);
	assert_int_equal(svc_router_peer_banned(r, NULL, &q.addr, T0), 1);
	set_v6(&q, "2001:db8:77:2::99");
	assert_int_equal(call(r, &q, "echo", T0), SVC_OK);
	assert_int_equal(log.n, 1);
	svc_router_get_stats(r, &st);
	assert_int_equal(st.bans, 1);
	assert_int_equal(st.addr_bans, 1);
	svc_router_free(r);
}

static int nop_handler(void *ctx, const struct svc_call_info *c, struct svc_reply *rep)
{
	(*(uint64_t *)ctx)++;
	return SVC_OK;
}

/* 1e5 distinct peer keys from 1e5 distinct addresses: both tables stay at
 * their bound, memory with them. */
static void test_peer_table_lru(void **state)
{
	struct svc_router_opts o = {.seed = 99, .addr_v6_prefix = 128};
	uint64_t handled = 0;
	/* a service with room for the whole flood (echo's default service
	 * cap, 60000 calls a minute, would stop it first) */
	struct svc_service_opts s = {.name = "flood",
				     .kind = SVC_KIND_INPROC,
				     .fn = nop_handler,
				     .ctx = &handled,
				     .limits = {.calls_per_min = 1000000}};
	struct svc_router_stats st;
	struct svc_router *r;
	struct svc_peer p, first;

	assert_int_equal(svc_router_new(&r, &o), 0);
	assert_int_equal(svc_router_register(r, &s), 0);
	mk_peer(&first, 0);
	/* 100 ns apart: the whole flood fits in 10 ms of router time */
	for (uint32_t i = 0; i < 100000; i++) {
		char a[64];

		mk_peer(&p, i);
		snprintf(a, sizeof(a), "2001:db8:77::%x:%x", i >> 16, i & 0xffff);
		set_v6(&p, a);
		assert_int_equal(call(r, &p, "flood", T0 + i * 100ull), SVC_OK);
		if (i % 2000 == 0) /* keep peer 0 recently used: 51 calls in all */
			assert_int_equal(call(r, &first, "flood", T0 + i * 100ull), SVC_OK);
	}
	svc_router_get_stats(r, &st);
	assert_int_equal(st.peers, SVC_DEFAULT_MAX_PEERS);
	assert_int_equal(st.peers_evicted, 100000 - SVC_DEFAULT_MAX_PEERS);
	assert_int_equal(st.addrs, SVC_DEFAULT_MAX_ADDRS);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(handled, 100000 + 50);
	/* peer 0 survived with its history: 49 calls left this minute */
	for (int i = 0; i < 49; i++)
		assert_int_equal(call(r, &first, "flood", T0 + 20000000), SVC_OK);
	assert_int_equal(call(r, &first, "flood", T0 + 20000000), SVC_ERR_RATE_LIMITED);
	/* peer 1 (least recently used) was evicted: fresh state, 100 calls */
	mk_peer(&p, 1);
	for (int i = 0; i < 100; i++)
		assert_int_equal(call(r, &p, "flood", T0 + 20000000), SVC_OK);
	assert_int_equal(call(r, &p, "flood", T0 + 20000000), SVC_ERR_RATE_LIMITED);
	svc_router_get_stats(r, &st);
	assert_int_equal(st.peers, SVC_DEFAULT_MAX_PEERS);
	svc_router_free(r);
}

/* The peer table's buckets start zeroed (index + 1, 0 = empty): 16 buckets
 * and 12 entries, 60 keys inserted in turn so chains are long and eviction
 * unlinks heads, middles and tails; only the last 12 keys stay findable. */
static void test_peer_table_chains(void **state)
{
	struct svc_peers p;
	uint8_t key[IDENTITY_PK_LEN];

	(void)state;
	assert_int_equal(svc_peers_init(&p, 12, 7), 0);
	for (uint32_t k = 0; k < 60; k++) {
		memset(key, 0, sizeof(key));
		memcpy(key, &k, sizeof(k));
		assert_non_null(svc_peers_get(&p, key, 1));
		for (uint32_t j = 0; j <= k; j++) {
			memset(key, 0, sizeof(key));
			memcpy(key, &j, sizeof(j));
			if (j + 12 > k)
				assert_non_null(svc_peers_find(&p, key));
			else
				assert_null(svc_peers_find(&p, key));
		}
	}
	assert_int_equal(p.evicted, 60 - 12);
	svc_peers_fini(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_echo),
	    cmocka_unit_test(test_served_histogram),
	    cmocka_unit_test(test_mesh_stats_private),
	    cmocka_unit_test(test_rate_limit),
	    cmocka_unit_test(test_service_limits),
	    cmocka_unit_test(test_service_defaults),
	    cmocka_unit_test(test_size_cap),
	    cmocka_unit_test(test_concurrency),
	    cmocka_unit_test(test_ban_once),
	    cmocka_unit_test(test_score_decay),
	    cmocka_unit_test(test_addr_rate),
	    cmocka_unit_test(test_addr_ban),
	    cmocka_unit_test(test_peer_table_lru),
	    cmocka_unit_test(test_peer_table_chains),
	    cmocka_unit_test(test_addr_concurrency),
	};

	return cmocka_run_group_tests_name("service_router", tests, NULL, NULL);
}
