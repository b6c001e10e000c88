// SPDX-License-Identifier: MIT
/* Gateway HTTP rules without I/O: response-head parser, header filters,
 * Host and Origin checks. See weft/svc_http.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "weft/svc_http.h"

/* RFC 9110 tchar. */
static int is_tchar(uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field value bytes: VCHAR, obs-text, SP, HTAB. */
static int is_vchar(uint8_t c)
{
	return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

static int ieq(const uint8_t *a, size_t al, const char *b)
{
	return al == strlen(b) && !strncasecmp((const char *)a, b, al);
}

long svc_http_head_parse(const uint8_t *buf, size_t len, struct svc_http_head *h)
{
	size_t lim = len < SVC_HTTP_MAX_HEAD ? len : SVC_HTTP_MAX_HEAD;
	size_t p = 0, e;

	memset(h, 0, sizeof(*h));
	h->content_length = -1;
	/* Status line: find its CRLF first, then check it. */
	for (e = 0; e + 1 < lim && !(buf[e] == '\r' && buf[e + 1] == '\n'); e++)
		if (buf[e] == '\n' || buf[e] == 0)
			return -EBADMSG;
	if (e + 1 >= lim)
		goto more;
	if (e < 12 || memcmp(buf, "HTTP/1.", 7) || (buf[7] != '0' && buf[7] != '1') ||
	    buf[8] != ' ')
		return -EBADMSG;
	for (int i = 9; i < 12; i++)
		if (buf[i] < '0' || buf[i] > '9')
			return -EBADMSG;
	h->minor = (unsigned int)(buf[7] - '0');
	h->status = (unsigned int)((buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0'));
	if (h->status < 100 || h->status > 599)
		return -EBADMSG;
	if (e > 12) {
		if (buf[12] != ' ')
			return -EBADMSG;
		for (size_t i = 13; i < e; i++)
			if (!is_vchar(buf[i]))
				return -EBADMSG;
	}
	p = e + 2;
	for (;;) {
		size_t ns = p, ne, vs, ve;

		if (p + 1 >= lim)
			goto more;
		if (buf[p] == '\r' && buf[p + 1] == '\n')
			return (long)(p + 2);
		/* Name: a token up to ':' (no space before it, no obs-fold). */
		while (p < lim && is_tchar(buf[p]))
			p++;
		if (p >= lim)
			goto more;
		if (buf[p] != ':' || p == ns)
			return -EBADMSG;
		ne = p++;
		while (p < lim && (buf[p] == ' ' || buf[p] == '\t'))
			p++;
		vs = p;
		while (p < lim && is_vchar(buf[p]))
			p++;
		if (p + 1 >= lim)
			goto more;
		if (buf[p] != '\r' || buf[p + 1] != '\n')
			return -EBADMSG;
		ve = p;
		while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t'))
			ve--;
		p += 2;
		if (h->n >= SVC_HTTP_MAX_HEADERS)
			return -EMSGSIZE;
		h->h[h->n].name_off = (uint32_t)ns;
		h->h[h->n].name_len = (uint32_t)(ne - ns);
		h->h[h->n].val_off = (uint32_t)vs;
		h->h[h->n].val_len = (uint32_t)(ve - vs);
		h->n++;
		if (ieq(buf + ns, ne - ns, "content-length")) {
			long long v = 0;

			if (ve == vs || ve - vs > 18)
				return -EBADMSG;
			for (size_t i = vs; i < ve; i++) {
				if (buf[i] < '0' || buf[i] > '9')
					return -EBADMSG;
				v = v * 10 + (buf[i] - '0');
			}
			if (h->content_length >= 0 && h->content_length != v)
				return -EBADMSG;
			h->content_length = v;
		} else if (ieq(buf + ns, ne - ns, "transfer-encoding")) {
			h->chunked = 1;
		}
	}
more:
	return len >= SVC_HTTP_MAX_HEAD ? -EMSGSIZE : 0;
}

int svc_http_list_has(const char *v, size_t vl, const char *name, size_t nl)
{
	size_t i = 0;

	while (v && i < vl) {
		size_t s, e;

		while (i < vl && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < vl && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == nl && nl && !strncasecmp(v + s, name, nl))
			return 1;
	}
	return 0;
}

static int name_is(const char *n, size_t nl, const char *what)
{
	return nl == strlen(what) && !strncasecmp(n, what, nl);
}

/* Hop-by-hop (RFC 9110 7.6.1) and proxy headers: never forwarded. */
static int hop_by_hop(const char *n, size_t nl, const char *conn, size_t cl)
{
	static const char *const hop[] = { "connection", "keep-alive", "te", "trailer",
					   "transfer-encoding", "upgrade" };

	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (name_is(n, nl, hop[i]))
			return 1;
	if (nl >= 6 && !strncasecmp(n, "proxy-", 6))
		return 1;
	return conn && svc_http_list_has(conn, cl, n, nl);
}

int svc_http_resp_keep(const char *name, size_t nl, const char *conn, size_t conn_len,
		       unsigned int flags)
{
	if (hop_by_hop(name, nl, conn, conn_len) || name_is(name, nl, "content-length"))
		return 0;
	if (nl >= 15 && !strncasecmp(name, "access-control-", 15))
		return 0;
	if (name_is(name, nl, "set-cookie") || name_is(name, nl, "set-cookie2"))
		return !!(flags & SVC_HTTP_F_CREDENTIALS);
	return 1;
}

int svc_http_req_keep(const char *name, size_t nl, const char *conn, size_t conn_len,
		      unsigned int flags)
{
	if (hop_by_hop(name, nl, conn, conn_len) || name_is(name, nl, "content-length") ||
	    name_is(name, nl, "host") || name_is(name, nl, "expect"))
		return 0;
	if (nl >= 7 && !strncasecmp(name, "x-weft-", 7))
		return 0;
	if (name_is(name, nl, "cookie") || name_is(name, nl, "authorization"))
		return !!(flags & SVC_HTTP_F_CREDENTIALS);
	return 1;
}
