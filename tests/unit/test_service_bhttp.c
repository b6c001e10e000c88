// SPDX-License-Identifier: MIT
/* The backend contract's HTTP/1.1 without I/O (userspace/service/
 * backend_http.c): the strict response parser on a table of answers, fed
 * whole and byte by byte, stored (calls) and streamed (pass-through); the
 * request head written for a call; the pass-through's request and answer
 * heads rewritten for keep-alive; the map from HTTP status to error class. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/svc_bhttp_int.h"
#include "weft/svc_http.h"

struct rcase {
	const char *name;
	const char *in;
	size_t max_body;
	int want;	     /* 1 complete, 0 more, or an error */
	int eof;	     /* then the backend closes: resp_eof's answer */
	unsigned int status; /* when complete */
	const char *body;
	int close;
	size_t extra; /* bytes left over after a complete answer */
};

#define CL "Content-Length: "
static const struct rcase cases[] = {
    {"length", "HTTP/1.1 200 OK\r\n" CL "5\r\n\r\nhello", 100, 1, 0, 200, "hello", 0, 0},
    {"length, no reason", "HTTP/1.1 201\r\n" CL "2\r\n\r\nok", 100, 1, 0, 201, "ok", 0, 0},
    {"empty body", "HTTP/1.1 200 OK\r\n" CL "0\r\n\r\n", 100, 1, 0, 200, "", 0, 0},
    {"204 no body", "HTTP/1.1 204 No Content\r\n\r\n", 100, 1, 0, 204, "", 0, 0},
    {"chunked",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
     100, 1, 0, 200, "hello world", 0, 0},
    {"chunked, upper hex, trailers",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n", 100,
     1, 0, 200, "0123456789", 0, 0},
    {"to the close", "HTTP/1.1 200 OK\r\n\r\nuntil eof", 100, 0, 1, 200, "until eof", 1, 0},
    {"connection close", "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\n" CL "1\r\n\r\nx", 100,
     1, 0, 200, "x", 1, 0},
    {"HTTP/1.0 closes", "HTTP/1.0 200 OK\r\n" CL "1\r\n\r\nx", 100, 1, 0, 200, "x", 1, 0},
    {"100 continue first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n" CL "2\r\n\r\nno",
     100, 1, 0, 404, "no", 0, 0},
    {"bytes past the answer", "HTTP/1.1 200 OK\r\n" CL "1\r\n\r\nxHTTP/1.1 200", 100, 1, 0, 200, "x",
     0, 12},
    {"500 with a body", "HTTP/1.1 500 Oops\r\n" CL "4\r\n\r\nboom", 100, 1, 0, 500, "boom", 0, 0},
    /* the contract broken */
    {"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n", 100, -EBADMSG, 0, 0, NULL, 1, 0},
    {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 100, -EBADMSG, 0, 0, NULL, 1, 0},
    {"bare LF", "HTTP/1.1 200 OK\n" CL "1\n\nx", 100, -EBADMSG, 0, 0, NULL, 1, 0},
    {"status 999", "HTTP/1.1 999 What\r\n\r\n", 100, -EBADMSG, 0, 0, NULL, 1, 0},
    {"101 never asked", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", 100, -EBADMSG, 0, 0,
     NULL, 1, 0},
    {"gzip transfer coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 100,
     -EBADMSG, 0, 0, NULL, 1, 0},
    {"two transfer codings", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     100, -EBADMSG, 0, 0, NULL, 1, 0},
    {"chunked and a length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" CL "3\r\n\r\n", 100,
     -EBADMSG, 0, 0, NULL, 1, 0},
    {"two lengths", "HTTP/1.1 200 OK\r\n" CL "3\r\n" CL "4\r\n\r\n", 100, -EBADMSG, 0, 0, NULL, 1, 0},
    {"signed length", "HTTP/1.1 200 OK\r\n" CL "-1\r\n\r\n", 100, -EBADMSG, 0, 0, NULL, 1, 0},
    {"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 100, -EBADMSG,
     0, 0, NULL, 1, 0},
    {"huge chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
     100, -EBADMSG, 0, 0, NULL, 1, 0},
    {"chunk longer than said", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
     100, -EBADMSG, 0, 0, NULL, 1, 0},
    {"truncated body", "HTTP/1.1 200 OK\r\n" CL "10\r\n\r\nabc", 100, 0, -EBADMSG, 0, NULL, 1, 0},
    {"truncated chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", 100, 0,
     -EBADMSG, 0, NULL, 1, 0},
    {"truncated head", "HTTP/1.1 200 OK\r\nServer: x", 100, 0, -EBADMSG, 0, NULL, 1, 0},
    /* too much */
    {"length over the cap", "HTTP/1.1 200 OK\r\n" CL "101\r\n\r\n", 100, -EMSGSIZE, 0, 0, NULL, 1, 0},
    {"length 10^18", "HTTP/1.1 200 OK\r\n" CL "999999999999999999\r\n\r\n", 100, -EMSGSIZE, 0, 0, NULL,
     1, 0},
    {"chunks over the cap",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" "01234567890123456789012345678901234567890123456789"
     "\r\n32\r\n", 60, -EMSGSIZE, 0, 0, NULL, 1, 0},
    {"to the close, over the cap", "HTTP/1.1 200 OK\r\n\r\n0123456789", 5, -EMSGSIZE, 0, 0, NULL, 1, 0},
};

/* Feed in pieces of step bytes (0 = all at once); the outcome as in c. */
static void run_case(const struct rcase *c, size_t step)
{
	struct svc_bhttp_resp p;
	size_t len = strlen(c->in), off = 0, used, blen;
	int r = 0;
	uint8_t *body;

	svc_bhttp_resp_init(&p, c->max_body);
	while (off < len) {
		size_t n = step && step < len - off ? step : len - off;

		r = svc_bhttp_resp_feed(&p, (const uint8_t *)c->in + off, n, &used);
		assert_true(used <= n);
		off += used;
		if (r != 0)
			break;
		assert_int_equal(used, n);
	}
	if (r != c->want)
		fail_msg("%s (step %zu): %d, want %d", c->name, step, r, c->want);
	if (r == 1)
		assert_int_equal(len - off, c->extra);
	if (c->eof) {
		r = svc_bhttp_resp_eof(&p);
		if (r != c->eof)
			fail_msg("%s (step %zu): eof %d, want %d", c->name, step, r, c->eof);
	}
	if (r == 1) {
		assert_int_equal(p.status, c->status);
		assert_int_equal(p.close, c->close);
		body = svc_bhttp_resp_take(&p, &blen);
		assert_int_equal(blen, strlen(c->body));
		if (blen)
			assert_memory_equal(body, c->body, blen);
		else
			assert_null(body);
		free(body);
	} else if (r < 0) {
		/* sticky, and the connection is never reused */
		assert_int_equal(svc_bhttp_resp_feed(&p, (const uint8_t *)"x", 1, &used), r);
		assert_int_equal(p.close, 1);
	}
	svc_bhttp_resp_free(&p);
}

/* The same answer streamed (the pass-through): the spans joined are the
 * body, the outcome the same, the head reported before any body byte. */
static void run_case_stream(const struct rcase *c, size_t step)
{
	struct svc_bhttp_resp p;
	size_t len = strlen(c->in), off = 0, used, sl, blen = 0;
	uint8_t body[256];
	const uint8_t *span;
	int r = 0, head_at = -1;

	svc_bhttp_resp_init(&p, c->max_body);
	p.stream = 1;
	while (off < len) {
		size_t n = step && step < len - off ? step : len - off;

		r = svc_bhttp_resp_feed_span(&p, (const uint8_t *)c->in + off, n, &used, &span, &sl);
		assert_true(used <= n);
		off += used;
		if (p.status && head_at < 0)
			head_at = (int)blen;
		if (sl) {
			assert_true(span >= (const uint8_t *)c->in && sl <= sizeof(body) - blen);
			memcpy(body + blen, span, sl);
			blen += sl;
		}
		if (r != 0)
			break;
	}
	if (r != c->want)
		fail_msg("%s (stream, step %zu): %d, want %d", c->name, step, r, c->want);
	if (r == 1)
		assert_int_equal(len - off, c->extra);
	if (c->eof) {
		r = svc_bhttp_resp_eof(&p);
		if (r != c->eof)
			fail_msg("%s (stream, step %zu): eof %d, want %d", c->name, step, r, c->eof);
	}
	if (r == 1) {
		assert_int_equal(head_at, 0);
		assert_int_equal(p.status, c->status);
		assert_int_equal(p.close, c->close);
		assert_int_equal(blen, strlen(c->body));
		assert_memory_equal(body, c->body, blen);
		assert_null(p.body); /* nothing kept */
	} else if (r < 0) {
		assert_int_equal(svc_bhttp_resp_feed_span(&p, (const uint8_t *)"x", 1, &used, &span, &sl),
				 r);
		assert_int_equal(p.close, 1);
	}
	svc_bhttp_resp_free(&p);
}

static void test_responses(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_case(&cases[i], 0);
		run_case(&cases[i], 1);
		run_case(&cases[i], 7);
		run_case_stream(&cases[i], 0);
		run_case_stream(&cases[i], 1);
		run_case_stream(&cases[i], 7);
	}
}

/* The answer to HEAD has no body whatever its framing says; the next
 * answer on the connection follows at once. */
static void test_head_answer(void **state)
{
	static const char *in[] = {
	    "HTTP/1.1 200 OK\r\n" CL "100\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "HTTP/1.1 200 OK\r\n\r\n",
	};
	struct svc_bhttp_resp p;
	const uint8_t *span;
	size_t used, sl;

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		svc_bhttp_resp_init(&p, 1000);
		p.stream = 1;
		p.no_body = 1;
		assert_int_equal(svc_bhttp_resp_feed_span(&p, (const uint8_t *)in[i], strlen(in[i]),
							  &used, &span, &sl),
				 1);
		assert_int_equal(used, strlen(in[i]));
		assert_int_equal(sl, 0);
		assert_int_equal(p.close, 0);
		svc_bhttp_resp_free(&p);
	}
}

/* The gateway's request rewritten for a kept-alive HTTP/1.1 connection;
 * what could smuggle a second request, or is not one request, refused. */
static void test_pass_request(void **state)
{
	static const struct {
		const char *in, *want; /* want NULL: -EBADMSG */
		int fl;
	} t[] = {
	    {"GET /a?b=1 HTTP/1.0\r\nHost: web\r\nConnection: close\r\nX-A: 1\r\n\r\n",
	     "GET /a?b=1 HTTP/1.1\r\nHost: web\r\nX-A: 1\r\n\r\n", SVC_BHTTP_PASS_IDEMPOTENT},
	    {"POST /p HTTP/1.0\r\nHost: web\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
	     "POST /p HTTP/1.1\r\nHost: web\r\nContent-Length: 2\r\n\r\nhi", 0},
	    {"PUT /p HTTP/1.1\r\nHost:web\r\nContent-Length: 0\r\n\r\n",
	     "PUT /p HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\n\r\n", SVC_BHTTP_PASS_IDEMPOTENT},
	    {"HEAD / HTTP/1.1\r\nHost: web\r\nConnection: x-hop, keep-alive\r\nX-Hop: 1\r\n"
	     "Keep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Authorization: x\r\n"
	     "Cookie: c=1\r\n\r\n",
	     "HEAD / HTTP/1.1\r\nHost: web\r\nCookie: c=1\r\n\r\n",
	     SVC_BHTTP_PASS_HEAD | SVC_BHTTP_PASS_IDEMPOTENT},
	    /* refused */
	    {"GET / HTTP/1.1\r\nHost: web\r\n\r\nGET /admin HTTP/1.1\r\nHost: web\r\n\r\n", NULL, 0},
	    {"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 1\r\n\r\nab", NULL, 0},
	    {"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nab", NULL, 0},
	    {"POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", NULL, 0},
	    {"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
	     NULL, 0},
	    {"GET / HTTP/1.1\r\n\r\n", NULL, 0},
	    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", NULL, 0},
	    {"CONNECT web:443 HTTP/1.1\r\nHost: web\r\n\r\n", NULL, 0},
	    {"GET / HTTP/2.0\r\nHost: web\r\n\r\n", NULL, 0},
	    {"GET  / HTTP/1.1\r\nHost: web\r\n\r\n", NULL, 0},
	    {"GET /a b HTTP/1.1\r\nHost: web\r\n\r\n", NULL, 0},
	    {"G(T / HTTP/1.1\r\nHost: web\r\n\r\n", NULL, 0},
	    {"GET / HTTP/1.1\nHost: web\r\n\r\n", NULL, 0},
	    {"GET / HTTP/1.1\r\nHost: web\r\nX: a\rb\r\n\r\n", NULL, 0},
	    {"GET / HTTP/1.1\r\nHost: web\r\n folded\r\n\r\n", NULL, 0},
	    {"GET / HTTP/1.1\r\nHost: web\r\n", NULL, 0},
	    {"", NULL, 0},
	};
	uint8_t *out;
	size_t ol;
	unsigned int fl;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int r = svc_bhttp_pass_req((const uint8_t *)t[i].in, strlen(t[i].in), &out, &ol, &fl);

		if (!t[i].want) {
			if (r != -EBADMSG)
				fail_msg("case %zu: %d, want -EBADMSG", i, r);
			assert_null(out);
			continue;
		}
		if (r)
			fail_msg("case %zu: %d", i, r);
		assert_int_equal(ol, strlen(t[i].want));
		assert_memory_equal(out, t[i].want, ol);
		assert_int_equal(fl, (unsigned int)t[i].fl);
		free(out);
	}
}

/* The head forwarded: HTTP/1.1, status and reason as said, end-to-end
 * headers only. */
static void test_pass_head(void **state)
{
	const char *in = "HTTP/1.0 404 Not Here\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n"
			 "Content-Length: 3\r\nSet-Cookie: s=1\r\nX-End:e\r\nTrailer: X\r\n\r\n";
	const char *want = "HTTP/1.1 404 Not Here\r\nSet-Cookie: s=1\r\nX-End: e\r\n\r\n";
	struct svc_bhttp_resp p;
	const uint8_t *span;
	uint8_t *out;
	size_t used, sl, ol;

	svc_bhttp_resp_init(&p, 100);
	p.stream = 1;
	assert_int_equal(svc_bhttp_resp_feed_span(&p, (const uint8_t *)in, strlen(in), &used, &span,
						  &sl),
			 0);
	assert_int_equal(used, strlen(in)); /* stopped at the head */
	assert_int_equal(p.status, 404);
	assert_int_equal(svc_bhttp_pass_head(&p, &out, &ol), 0);
	assert_int_equal(ol, strlen(want));
	assert_memory_equal(out, want, ol);
	free(out);
	svc_bhttp_resp_free(&p);
}

/* A head over 64 KiB (or 128 lines) is refused without waiting for the
 * blank line; no byte past the cap is buffered. */
static void test_head_caps(void **state)
{
	struct svc_bhttp_resp p;
	char line[] = "X-Filler: 0123456789012345678901234567890123456789\r\n";
	size_t used;
	int r = 0;

	svc_bhttp_resp_init(&p, 100);
	assert_int_equal(svc_bhttp_resp_feed(&p, (const uint8_t *)"HTTP/1.1 200 OK\r\n", 17, &used),
			 0);
	for (int i = 0; i < 2000 && r == 0; i++)
		r = svc_bhttp_resp_feed(&p, (const uint8_t *)line, strlen(line), &used);
	assert_int_equal(r, -EMSGSIZE);
	assert_true(p.head_len <= SVC_HTTP_MAX_HEAD);
	svc_bhttp_resp_free(&p);

	svc_bhttp_resp_init(&p, 100);
	r = svc_bhttp_resp_feed(&p, (const uint8_t *)"HTTP/1.1 200 OK\r\n", 17, &used);
	for (int i = 0; i < 200 && r == 0; i++)
		r = svc_bhttp_resp_feed(&p, (const uint8_t *)"A: b\r\n", 6, &used);
	r = r ? r : svc_bhttp_resp_feed(&p, (const uint8_t *)"\r\n", 2, &used);
	assert_int_equal(r, -EMSGSIZE);
	svc_bhttp_resp_free(&p);

	/* a chunk-size line without end */
	svc_bhttp_resp_init(&p, 100);
	r = svc_bhttp_resp_feed(&p,
				(const uint8_t *)"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;",
				48, &used);
	for (int i = 0; i < 1000 && r == 0; i++)
		r = svc_bhttp_resp_feed(&p, (const uint8_t *)"aaaaaaaaaa", 10, &used);
	assert_int_equal(r, -EBADMSG);
	svc_bhttp_resp_free(&p);
}

static void test_request_head(void **state)
{
	uint8_t key[32], rid[16], as[SVC_ASSERT_LEN];
	struct svc_bhttp_meta m = {.service = "echo", .method = "v1/ping", .version = "1.2.0",
				   .caller = key, .req_id = rid, .deadline_ms = 2500};
	char out[SVC_BHTTP_REQ_HEAD_MAX], want[SVC_BHTTP_REQ_HEAD_MAX];
	int n;

	memset(key, 0xab, sizeof(key));
	for (int i = 0; i < 16; i++)
		rid[i] = (uint8_t)i;
	n = svc_bhttp_req_head(out, sizeof(out), &m, 2);
	snprintf(want, sizeof(want),
		 "POST /v1/ping HTTP/1.1\r\nHost: echo\r\nContent-Type: application/octet-stream\r\n"
		 "Content-Length: 2\r\nWeft-Service: echo\r\nWeft-Service-Version: 1.2.0\r\n"
		 "Weft-Caller: %s\r\nWeft-Request-Id: 000102030405060708090a0b0c0d0e0f\r\n"
		 "Weft-Deadline: 2500\r\n\r\n",
		 "abababababababababababababababababababababababababababababababab");
	assert_int_equal(n, (int)strlen(want));
	assert_memory_equal(out, want, (size_t)n);
	/* with an assertion: time in decimal ms, signature in hex */
	memcpy(as, rid, 16);
	memset(as + 16, 0, 8);
	as[16 + 6] = 0x01; /* 256 ms */
	memset(as + 24, 0x5a, 64);
	m.assertion = as;
	m.version = NULL;
	m.method = "";
	n = svc_bhttp_req_head(out, sizeof(out), &m, 0);
	assert_true(n > 0);
	out[n] = 0;
	assert_non_null(strstr(out, "POST / HTTP/1.1\r\n"));
	assert_null(strstr(out, "Weft-Service-Version"));
	assert_non_null(strstr(out, "\r\nWeft-Caller-Assertion: v1 t=256 sig=5a5a5a5a"));
	assert_int_equal(memcmp(out + n - 4, "\r\n\r\n", 4), 0);
	/* a version with a control byte or a space is left out, not written */
	m.version = "1.0\r\nX-Evil: 1";
	n = svc_bhttp_req_head(out, sizeof(out), &m, 0);
	out[n] = 0;
	assert_null(strstr(out, "X-Evil"));
	/* bad names; too small a buffer */
	m.method = "a b";
	assert_int_equal(svc_bhttp_req_head(out, sizeof(out), &m, 0), -EINVAL);
	m.method = "x";
	assert_int_equal(svc_bhttp_req_head(out, 64, &m, 0), -ENOBUFS);
}

static void test_status_map(void **state)
{
	static const struct {
		unsigned int status;
		int cls;
	} t[] = {
	    {200, SVC_OK},
	    {201, SVC_OK},
	    {299, SVC_OK},
	    {400, SVC_ERR_BAD_REQUEST},
	    {403, SVC_ERR_BAD_REQUEST},
	    {404, SVC_ERR_BAD_REQUEST},
	    {413, SVC_ERR_TOO_LARGE},
	    {429, SVC_ERR_RATE_LIMITED},
	    {499, SVC_ERR_BAD_REQUEST},
	    {500, SVC_ERR_BACKEND_ERROR},
	    {502, SVC_ERR_BACKEND_ERROR},
	    {503, SVC_ERR_OVERLOADED},
	    {504, SVC_ERR_TIMEOUT},
	    {599, SVC_ERR_BACKEND_ERROR},
	    {100, SVC_ERR_BACKEND_PROTOCOL},
	    {302, SVC_ERR_BACKEND_PROTOCOL},
	    {0, SVC_ERR_BACKEND_PROTOCOL},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(svc_bhttp_status_class(t[i].status), t[i].cls);
	assert_string_equal(svc_err_name(SVC_ERR_BACKEND_PROTOCOL), "backend_protocol");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_responses),
	    cmocka_unit_test(test_head_caps),
	    cmocka_unit_test(test_head_answer),
	    cmocka_unit_test(test_pass_request),
	    cmocka_unit_test(test_pass_head),
	    cmocka_unit_test(test_request_head),
	    cmocka_unit_test(test_status_map),
	};

	return cmocka_run_group_tests_name("service_bhttp", tests, NULL, NULL);
}
