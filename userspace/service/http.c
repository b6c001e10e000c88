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

/* Split "name[:port]" / "[v6][:port]": name into out (brackets kept),
 * port (0 when absent). -1 when malformed. */
static int split_hostport(const char *s, char *out, size_t cap, unsigned int *port)
{
	const char *colon;
	size_t nl;

	*port = 0;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb)
			return -1;
		nl = (size_t)(rb - s) + 1;
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if (rb[1] && !colon)
			return -1;
	} else {
		colon = strchr(s, ':');
		nl = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (!nl || nl >= cap)
		return -1;
	memcpy(out, s, nl);
	out[nl] = 0;
	if (colon) {
		unsigned long v = 0;
		const char *d = colon + 1;

		if (!*d || strlen(d) > 5)
			return -1;
		for (; *d; d++) {
			if (*d < '0' || *d > '9')
				return -1;
			v = v * 10 + (unsigned long)(*d - '0');
		}
		if (!v || v > 65535)
			return -1;
		*port = (unsigned int)v;
	}
	return 0;
}

static int loopback_literal(const char *h)
{
	struct in_addr a4;
	struct in6_addr a6;
	char tmp[64];
	size_t l = strlen(h);

	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (l > 2 && l < sizeof(tmp) && h[0] == '[' && h[l - 1] == ']') {
		memcpy(tmp, h + 1, l - 2);
		tmp[l - 2] = 0;
		return inet_pton(AF_INET6, tmp, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return 0;
}

int svc_gw_host(const char *host, uint16_t port, const char *listen_host, char label[65])
{
	char h[256];
	unsigned int p;
	size_t l;

	if (!host || split_hostport(host, h, sizeof(h), &p))
		return -EPERM;
	if (p ? p != port : port != 80)
		return -EPERM;
	if (!strcasecmp(h, "localhost") || loopback_literal(h) ||
	    (listen_host && listen_host[0] && !strcasecmp(h, listen_host)))
		return SVC_GW_HOST_BARE;
	l = strlen(h);
	if (l > 10 && !strcasecmp(h + l - 10, ".localhost") && l - 10 <= 64) {
		size_t n = l - 10;

		for (size_t i = 0; i < n; i++) {
			char c = h[i];

			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			      c == '.'))
				return -EPERM; /* a service name's bytes only */
			label[i] = c;
		}
		label[n] = 0;
		return SVC_GW_HOST_SERVICE;
	}
	return -EPERM;
}

int svc_gw_cross_site(const char *sfs, const char *sfm)
{
	return sfs && (!strcasecmp(sfs, "cross-site") || !strcasecmp(sfs, "same-site")) &&
	       !(sfm && !strcasecmp(sfm, "navigate"));
}

int svc_gw_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return 0;
}

int svc_gw_origin_same(const char *origin, const char *host)
{
	char oh[256], hh[256];
	unsigned int op, hp;

	if (!origin || !host || strncasecmp(origin, "http://", 7))
		return 0;
	if (split_hostport(origin + 7, oh, sizeof(oh), &op) ||
	    split_hostport(host, hh, sizeof(hh), &hp))
		return 0;
	return !strcasecmp(oh, hh) && (op ? op : 80) == (hp ? hp : 80);
}
