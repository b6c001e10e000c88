// SPDX-License-Identifier: MIT
/* The backend contract's HTTP/1.1 without I/O: backend addresses, request
 * heads, the strict response parser (stored or streamed), status to error
 * class, the pass-through's heads rewritten for keep-alive. See
 * svc_bhttp_int.h. */
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "svc_bhttp_int.h"
#include "weft/svc_backend.h"
#include "weft/svc_http.h"
#include "weft/util.h"

/* ---- backend addresses (used by the loop and the streams) ---- */

int svc_backend_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sl)
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

enum { RS_HEAD = 0, RS_LENGTH, RS_CHUNK_SIZE, RS_CHUNK_DATA, RS_CHUNK_CRLF, RS_TRAILERS,
       RS_TO_EOF, RS_DONE };
enum { FR_NONE = 0, FR_LENGTH, FR_CHUNKED, FR_EOF };

/* Interim (1xx) heads before the final one: 100 Continue and 103 Early
 * Hints are legal; more than 8 is a backend talking nonsense. */
#define BHTTP_MAX_INTERIM 8

static int version_ok(const char *v)
{
	size_t n = v ? strlen(v) : 0;

	if (!n || n > SVC_BHTTP_VERSION_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
			return 0;
	return 1;
}

int svc_bhttp_weft_headers(char *out, size_t cap, const struct svc_bhttp_meta *m)
{
	char caller[2 * IDENTITY_PK_LEN + 1], rid[2 * SVC_REQ_ID_LEN + 1];
	char sig[2 * IDENTITY_SIG_LEN + 1];
	size_t o = 0;
	int n;

	if (!out || !m || !m->service || !m->caller || !m->req_id)
		return -EINVAL;
	util_hex(caller, m->caller, IDENTITY_PK_LEN);
	util_hex(rid, m->req_id, SVC_REQ_ID_LEN);
	n = snprintf(out, cap, "Weft-Service: %s\r\n", m->service);
	if (n < 0 || (size_t)n >= cap)
		return -ENOBUFS;
	o = (size_t)n;
	if (version_ok(m->version)) {
		n = snprintf(out + o, cap - o, "Weft-Service-Version: %s\r\n", m->version);
		if (n < 0 || (size_t)n >= cap - o)
			return -ENOBUFS;
		o += (size_t)n;
	}
	n = snprintf(out + o, cap - o,
		     "Weft-Caller: %s\r\nWeft-Request-Id: %s\r\nWeft-Deadline: %u\r\n", caller, rid,
		     m->deadline_ms);
	if (n < 0 || (size_t)n >= cap - o)
		return -ENOBUFS;
	o += (size_t)n;
	if (m->assertion) {
		uint64_t t = 0;

		for (int i = 0; i < 8; i++)
			t = t << 8 | m->assertion[SVC_REQ_ID_LEN + i];
		util_hex(sig, m->assertion + SVC_REQ_ID_LEN + 8, IDENTITY_SIG_LEN);
		n = snprintf(out + o, cap - o, "Weft-Caller-Assertion: v1 t=%llu sig=%s\r\n",
			     (unsigned long long)t, sig);
		if (n < 0 || (size_t)n >= cap - o)
			return -ENOBUFS;
		o += (size_t)n;
	}
	return (int)o;
}

int svc_bhttp_req_head(char *out, size_t cap, const struct svc_bhttp_meta *m, size_t body_len)
{
	int n, w;

	if (!m || !m->method || !m->service ||
	    !svc_method_valid((const uint8_t *)m->method, strlen(m->method)) ||
	    !svc_name_valid((const uint8_t *)m->service, strlen(m->service)))
		return -EINVAL;
	n = snprintf(out, cap,
		     "POST /%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
		     "Content-Length: %zu\r\n",
		     m->method, m->service, body_len);
	if (n < 0 || (size_t)n >= cap)
		return -ENOBUFS;
	w = svc_bhttp_weft_headers(out + n, cap - (size_t)n, m);
	if (w < 0)
		return w;
	n += w;
	if ((size_t)n + 2 >= cap)
		return -ENOBUFS;
	memcpy(out + n, "\r\n", 3);
	return n + 2;
}

int svc_bhttp_status_class(unsigned int status)
{
	if (status >= 200 && status <= 299)
		return SVC_OK;
	if (status == 413)
		return SVC_ERR_TOO_LARGE;
	if (status == 429)
		return SVC_ERR_RATE_LIMITED;
	if (status >= 400 && status <= 499)
		return SVC_ERR_BAD_REQUEST;
	if (status == 503)
		return SVC_ERR_OVERLOADED;
	if (status == 504)
		return SVC_ERR_TIMEOUT;
	if (status >= 500 && status <= 599)
		return SVC_ERR_BACKEND_ERROR;
	return SVC_ERR_BACKEND_PROTOCOL;
}

void svc_bhttp_resp_init(struct svc_bhttp_resp *p, size_t max_body)
{
	memset(p, 0, sizeof(*p));
	p->max_body = max_body;
	p->state = RS_HEAD;
}

void svc_bhttp_resp_free(struct svc_bhttp_resp *p)
{
	if (!p)
		return;
	free(p->head);
	free(p->body);
	p->head = p->body = NULL;
	p->head_cap = p->body_cap = 0;
}

uint8_t *svc_bhttp_resp_take(struct svc_bhttp_resp *p, size_t *len)
{
	uint8_t *b = p->body_len ? p->body : NULL;

	*len = p->body_len;
	if (b) {
		p->body = NULL;
		p->body_cap = p->body_len = 0;
	}
	return b;
}

static int fail(struct svc_bhttp_resp *p, int err)
{
	p->err = err;
	p->close = 1;
	return err;
}

static int body_reserve(struct svc_bhttp_resp *p, size_t more)
{
	size_t want = p->body_len + more, nc;
	uint8_t *nb;

	if (want > p->max_body)
		return -EMSGSIZE;
	if (want <= p->body_cap)
		return 0;
	nc = p->body_cap ? p->body_cap * 2 : 4096;
	if (nc < want)
		nc = want;
	if (nc > p->max_body)
		nc = p->max_body;
	nb = realloc(p->body, nc);
	if (!nb)
		return -ENOMEM;
	p->body = nb;
	p->body_cap = nc;
	return 0;
}

static int hdr_is(const uint8_t *base, const struct svc_http_hdr *h, const char *name)
{
	return h->name_len == strlen(name) &&
	       !strncasecmp((const char *)base + h->name_off, name, h->name_len);
}

/* A complete head in p->head: the final response's framing, or an
 * interim one skipped. 0 or a negative error. */
static int head_done(struct svc_bhttp_resp *p)
{
	struct svc_http_head h;
	long r = svc_http_head_parse(p->head, p->head_len, &h);
	int te = 0, conn_close = 0;

	if (r == -EMSGSIZE)
		return -EMSGSIZE;
	if (r <= 0 || (size_t)r != p->head_len)
		return -EBADMSG;
	for (uint32_t i = 0; i < h.n; i++) {
		const char *v = (const char *)p->head + h.h[i].val_off;

		if (hdr_is(p->head, &h.h[i], "transfer-encoding")) {
			/* Only "chunked", once: anything else (gzip, a list)
			 * is not the contract, and a second header is how
			 * request smuggling starts. */
			if (te || h.h[i].val_len != 7 || strncasecmp(v, "chunked", 7))
				return -EBADMSG;
			te = 1;
		} else if (hdr_is(p->head, &h.h[i], "connection") &&
			   svc_http_list_has(v, h.h[i].val_len, "close", 5)) {
			conn_close = 1;
		}
	}
	if (h.status < 200) {
		/* 101 was never asked for; 100 and 103 are interim. */
		if (h.status == 101 || ++p->trailers > BHTTP_MAX_INTERIM)
			return -EBADMSG;
		p->head_len = 0;
		return 0;
	}
	p->trailers = 0;
	p->status = h.status;
	p->minor = h.minor;
	p->close = conn_close || h.minor == 0;
	if (te && h.content_length >= 0)
		return -EBADMSG;
	if (h.status == 204 || h.status == 304 || p->no_body) {
		p->state = RS_DONE; /* no body whatever the head says (RFC 9112 6.3) */
		return 0;
	}
	if (te) {
		p->framing = FR_CHUNKED;
		p->state = RS_CHUNK_SIZE;
	} else if (h.content_length >= 0) {
		if ((unsigned long long)h.content_length > p->max_body)
			return -EMSGSIZE; /* announced too much: not one byte read */
		p->framing = FR_LENGTH;
		p->remain = (uint64_t)h.content_length;
		if (p->remain && !p->stream) {
			int e = body_reserve(p, (size_t)p->remain);

			if (e)
				return e;
		}
		p->state = p->remain ? RS_LENGTH : RS_DONE;
	} else {
		p->framing = FR_EOF;
		p->close = 1;
		p->state = RS_TO_EOF;
	}
	return 0;
}

/* Take bytes of the head: up to and including the blank line. */
static int feed_head(struct svc_bhttp_resp *p, const uint8_t *buf, size_t len, size_t *used)
{
	size_t from = p->head_len > 3 ? p->head_len - 3 : 0, take = len, end;

	if (take > SVC_HTTP_MAX_HEAD - p->head_len)
		take = SVC_HTTP_MAX_HEAD - p->head_len;
	if (p->head_len + take > p->head_cap) {
		size_t nc = p->head_cap ? p->head_cap * 2 : 1024;
		uint8_t *nb;

		while (nc < p->head_len + take)
			nc *= 2;
		if (nc > SVC_HTTP_MAX_HEAD)
			nc = SVC_HTTP_MAX_HEAD;
		nb = realloc(p->head, nc);
		if (!nb)
			return -ENOMEM;
		p->head = nb;
		p->head_cap = nc;
	}
	memcpy(p->head + p->head_len, buf, take);
	for (end = from; end + 3 < p->head_len + take; end++)
		if (p->head[end] == '\r' && p->head[end + 1] == '\n' && p->head[end + 2] == '\r' &&
		    p->head[end + 3] == '\n')
			break;
	end = end + 3 < p->head_len + take ? end + 4 : p->head_len + take;
	/* Fail early on what cannot become a head: no "HTTP/1." start, or a
	 * bare LF (the full check is svc_http_head_parse's). */
	for (size_t i = p->head_len; i < end; i++)
		if ((i < 7 && p->head[i] != (uint8_t)"HTTP/1."[i]) ||
		    (p->head[i] == '\n' && (i == 0 || p->head[i - 1] != '\r')))
			return -EBADMSG;
	if (end >= 4 && !memcmp(p->head + end - 4, "\r\n\r\n", 4)) {
		*used = end - p->head_len;
		p->head_len = end;
		return head_done(p);
	}
	p->head_len += take;
	*used = take;
	if (p->head_len >= SVC_HTTP_MAX_HEAD)
		return -EMSGSIZE;
	return 0;
}

/* Gather one CRLF-terminated line into p->line (without the CRLF): 1 when
 * complete, 0 for more, or -EBADMSG (bare LF, too long). */
static int feed_line(struct svc_bhttp_resp *p, const uint8_t *buf, size_t len, size_t *used)
{
	size_t i;

	for (i = 0; i < len; i++) {
		uint8_t c = buf[i];

		if (c == '\n') {
			*used = i + 1;
			if (!p->line_len || p->line[p->line_len - 1] != '\r')
				return -EBADMSG;
			p->line_len--;
			return 1;
		}
		if (p->line_len >= sizeof(p->line) - 1)
			return -EBADMSG;
		p->line[p->line_len++] = (char)c;
	}
	*used = len;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* chunk-size [ BWS ";" chunk-ext ] : the size, or -EBADMSG. */
static int chunk_size(struct svc_bhttp_resp *p)
{
	uint64_t v = 0;
	size_t i = 0;

	for (; i < p->line_len && hexval(p->line[i]) >= 0; i++) {
		if (i >= 15) /* 2^60: past any cap, and no overflow */
			return -EBADMSG;
		v = v << 4 | (uint64_t)hexval(p->line[i]);
	}
	if (i == 0)
		return -EBADMSG;
	while (i < p->line_len && (p->line[i] == ' ' || p->line[i] == '\t'))
		i++;
	if (i < p->line_len && p->line[i] != ';')
		return -EBADMSG;
	for (; i < p->line_len; i++)
		if ((unsigned char)p->line[i] < 0x20 && p->line[i] != '\t')
			return -EBADMSG;
	p->remain = v;
	return 0;
}

/* Streaming: body bytes are counted against the cap and handed out as a
 * span of the caller's buffer, not copied. */
static int span_take(struct svc_bhttp_resp *p, const uint8_t *buf, size_t take)
{
	if (take > p->max_body - p->body_len)
		return -EMSGSIZE;
	p->body_len += take;
	p->span = buf;
	p->span_len = take;
	return 0;
}

static int feed_one(struct svc_bhttp_resp *p, const uint8_t *buf, size_t len, size_t *used)
{
	size_t take;
	int r, e;

	*used = 0;
	switch (p->state) {
	case RS_HEAD:
		return feed_head(p, buf, len, used);
	case RS_LENGTH:
	case RS_CHUNK_DATA:
		take = len < p->remain ? len : (size_t)p->remain;
		if (p->stream) {
			e = span_take(p, buf, take);
			if (e)
				return e;
			*used = take;
			p->remain -= take;
			if (!p->remain)
				p->state = p->state == RS_LENGTH ? RS_DONE : RS_CHUNK_CRLF;
			return 0;
		}
		e = body_reserve(p, take);
		if (e)
			return e;
		memcpy(p->body + p->body_len, buf, take);
		p->body_len += take;
		p->remain -= take;
		*used = take;
		if (!p->remain)
			p->state = p->state == RS_LENGTH ? RS_DONE : RS_CHUNK_CRLF;
		return 0;
	case RS_TO_EOF:
		if (p->stream) {
			*used = len;
			return span_take(p, buf, len);
		}
		e = body_reserve(p, len);
		if (e)
			return e;
		memcpy(p->body + p->body_len, buf, len);
		p->body_len += len;
		*used = len;
		return 0;
	case RS_CHUNK_SIZE:
	case RS_CHUNK_CRLF:
	case RS_TRAILERS:
		r = feed_line(p, buf, len, used);
		if (r <= 0)
			return r;
		if (p->state == RS_CHUNK_CRLF) {
			if (p->line_len)
				return -EBADMSG; /* chunk data longer than its size */
			p->state = RS_CHUNK_SIZE;
		} else if (p->state == RS_CHUNK_SIZE) {
			e = chunk_size(p);
			if (e)
				return e;
			if (p->remain > p->max_body - p->body_len)
				return -EMSGSIZE;
			p->state = p->remain ? RS_CHUNK_DATA : RS_TRAILERS;
		} else if (!p->line_len) {
			p->state = RS_DONE;
		} else if (++p->trailers > SVC_BHTTP_MAX_TRAILERS) {
			return -EBADMSG;
		}
		p->line_len = 0;
		return 0;
	}
	return -EBADMSG;
}

int svc_bhttp_resp_feed(struct svc_bhttp_resp *p, const uint8_t *buf, size_t len, size_t *used)
{
	size_t off = 0;

	*used = 0;
	if (p->err)
		return p->err;
	while (p->state != RS_DONE && off < len) {
		size_t u;
		int e = feed_one(p, buf + off, len - off, &u);

		off += u;
		if (e) {
			*used = off;
			return fail(p, e);
		}
	}
	*used = off;
	return p->state == RS_DONE;
}

int svc_bhttp_resp_feed_span(struct svc_bhttp_resp *p, const uint8_t *buf, size_t len,
			     size_t *used, const uint8_t **span, size_t *span_len)
{
	size_t off = 0;

	*used = 0;
	*span = NULL;
	*span_len = 0;
	if (p->err)
		return p->err;
	while (p->state != RS_DONE && off < len) {
		unsigned int had = p->status;
		size_t u;
		int e;

		p->span_len = 0;
		e = feed_one(p, buf + off, len - off, &u);
		off += u;
		if (e) {
			*used = off;
			return fail(p, e);
		}
		if (p->span_len) {
			*span = p->span;
			*span_len = p->span_len;
			break;
		}
		if (!had && p->status)
			break; /* the final head: the caller forwards it first */
	}
	*used = off;
	return p->state == RS_DONE;
}

int svc_bhttp_resp_eof(struct svc_bhttp_resp *p)
{
	if (p->err)
		return p->err;
	if (p->state == RS_DONE)
		return 1;
	if (p->state == RS_TO_EOF) {
		p->state = RS_DONE;
		return 1;
	}
	return fail(p, -EBADMSG);
}

/* ---- HTTP pass-through on keep-alive connections ---- */

static int is_tchar(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The Connection values of a parsed head (all of its Connection lines). */
struct conn_vals {
	const char *v[8];
	size_t l[8];
	unsigned int n;
};

static int conn_collect(const uint8_t *base, const struct svc_http_head *h, struct conn_vals *cv)
{
	cv->n = 0;
	for (uint32_t i = 0; i < h->n; i++)
		if (hdr_is(base, &h->h[i], "connection")) {
			if (cv->n == 8)
				return -EBADMSG;
			cv->v[cv->n] = (const char *)base + h->h[i].val_off;
			cv->l[cv->n++] = h->h[i].val_len;
		}
	return 0;
}

/* Whether header i crosses this hop: not hop-by-hop (RFC 9110 7.6.1), not
 * named by a Connection line, not Content-Length (framing is per hop). */
static int pass_keep(const uint8_t *base, const struct svc_http_hdr *hd,
		     const struct conn_vals *cv, int length)
{
	const char *n = (const char *)base + hd->name_off;

	if (!svc_http_resp_keep(n, hd->name_len, NULL, 0, SVC_HTTP_F_CREDENTIALS) &&
	    !(length && hdr_is(base, hd, "content-length")))
		return 0;
	for (unsigned int k = 0; k < cv->n; k++)
		if (svc_http_list_has(cv->v[k], cv->l[k], n, hd->name_len))
			return 0;
	return 1;
}

/* Append the kept header lines of h (parsed from base) to out at *o;
 * length: Content-Length too. */
static void pass_lines(uint8_t *out, size_t *o, const uint8_t *base, const struct svc_http_head *h,
		       const struct conn_vals *cv, int length)
{
	for (uint32_t i = 0; i < h->n; i++) {
		const struct svc_http_hdr *hd = &h->h[i];

		if (!pass_keep(base, hd, cv, length))
			continue;
		memcpy(out + *o, base + hd->name_off, hd->name_len);
		*o += hd->name_len;
		memcpy(out + *o, ": ", 2);
		*o += 2;
		memcpy(out + *o, base + hd->val_off, hd->val_len);
		*o += hd->val_len;
		memcpy(out + *o, "\r\n", 2);
		*o += 2;
	}
}

/* RFC 9110 9.2.2 */
static int idempotent(const uint8_t *m, size_t ml)
{
	static const char *const ids[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		if (ml == strlen(ids[i]) && !memcmp(m, ids[i], ml))
			return 1;
	return 0;
}

int svc_bhttp_pass_req(const uint8_t *req, size_t len, uint8_t **out, size_t *out_len,
		       unsigned int *flags)
{
	static const char fake[] = "HTTP/1.1 200 X";
	struct svc_http_head *h = NULL;
	struct conn_vals cv;
	size_t hl = 0, ll = 0, ml, ts, te, tl, body, o;
	uint8_t *tmp = NULL, *w = NULL;
	int err = -EBADMSG, host = 0;

	*out = NULL;
	*out_len = 0;
	for (size_t i = 3; i < len && i < SVC_HTTP_MAX_HEAD; i++)
		if (!memcmp(req + i - 3, "\r\n\r\n", 4)) {
			hl = i + 1;
			break;
		}
	for (size_t i = 1; i < hl; i++)
		if (req[i] == '\n') {
			ll = i - 1; /* the request line, without its CRLF */
			break;
		}
	/* method SP request-target SP HTTP/1.x */
	for (ml = 0; ml < ll && ml < 32 && is_tchar(req[ml]); ml++)
		;
	if (!hl || !ml || ml >= ll || req[ml] != ' ' || ll < 10)
		return -EBADMSG;
	ts = ml + 1;
	for (te = ts; te < ll && req[te] > 0x20 && req[te] < 0x7f; te++)
		;
	if (te == ts || te + 9 != ll || memcmp(req + te, " HTTP/1.", 8) ||
	    (req[ll - 1] != '0' && req[ll - 1] != '1') || req[ll] != '\r' ||
	    (ml == 7 && !memcmp(req, "CONNECT", 7)))
		return -EBADMSG; /* CONNECT would turn the connection into a tunnel */
	/* The header lines through the response-head parser (same strict
	 * rules, same caps) behind a stand-in status line. */
	tl = sizeof(fake) - 1 + hl - ll;
	tmp = malloc(tl);
	h = malloc(sizeof(*h));
	if (!tmp || !h) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(tmp, fake, sizeof(fake) - 1);
	memcpy(tmp + sizeof(fake) - 1, req + ll, hl - ll);
	body = len - hl;
	if (svc_http_head_parse(tmp, tl, h) != (long)tl || h->chunked ||
	    (unsigned long long)(h->content_length < 0 ? 0 : h->content_length) != body ||
	    conn_collect(tmp, h, &cv))
		goto out; /* a body framed otherwise than by its length: smuggling */
	for (uint32_t i = 0; i < h->n; i++)
		host += hdr_is(tmp, &h->h[i], "host");
	if (host != 1)
		goto out; /* RFC 9112 3.2: exactly one */
	w = malloc(hl + 2 * (size_t)h->n + 64 + body); /* "name:v" grows to "name: v" */
	if (!w) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(w, req, te);
	memcpy(w + te, " HTTP/1.1\r\n", 11);
	o = te + 11;
	pass_lines(w, &o, tmp, h, &cv, 0);
	if (h->content_length >= 0)
		o += (size_t)sprintf((char *)w + o, "Content-Length: %zu\r\n", body);
	memcpy(w + o, "\r\n", 2);
	o += 2;
	if (body)
		memcpy(w + o, req + hl, body);
	*out = w;
	*out_len = o + body;
	*flags = (ml == 4 && !memcmp(req, "HEAD", 4) ? SVC_BHTTP_PASS_HEAD : 0) |
		 (idempotent(req, ml) ? SVC_BHTTP_PASS_IDEMPOTENT : 0);
	err = 0;
out:
	free(tmp);
	free(h);
	return err;
}

int svc_bhttp_pass_head(const struct svc_bhttp_resp *p, uint8_t **out, size_t *out_len)
{
	struct svc_http_head *h = malloc(sizeof(*h));
	struct conn_vals cv;
	size_t ll = 0, o;
	uint8_t *w = NULL;

	*out = NULL;
	*out_len = 0;
	if (!h)
		return -ENOMEM;
	if (p->head_len < 12 || svc_http_head_parse(p->head, p->head_len, h) != (long)p->head_len ||
	    conn_collect(p->head, h, &cv)) {
		free(h);
		return -EBADMSG;
	}
	while (ll + 1 < p->head_len && p->head[ll] != '\r')
		ll++;
	w = malloc(p->head_len + 2 * (size_t)h->n + 16);
	if (!w) {
		free(h);
		return -ENOMEM;
	}
	/* "HTTP/1.1 " then the status and reason as the backend said them */
	memcpy(w, "HTTP/1.1 ", 9);
	memcpy(w + 9, p->head + 9, ll - 9);
	o = ll;
	memcpy(w + o, "\r\n", 2);
	o += 2;
	/* the answer to HEAD keeps its length: the GET's, for the client */
	pass_lines(w, &o, p->head, h, &cv, p->no_body && p->status != 204 && p->status != 304);
	memcpy(w + o, "\r\n", 2);
	*out = w;
	*out_len = o + 2;
	free(h);
	return 0;
}
