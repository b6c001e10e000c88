// SPDX-License-Identifier: MIT
/* The loopback servers' request guards (include/weft/ctl_http.h), used by
 * the service gateway and the dashboard. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "weft/ctl_http.h"

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

int ctl_http_host(const char *host, uint16_t port, const char *listen_host, char label[65])
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
		return CTL_HTTP_HOST_BARE;
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
		return CTL_HTTP_HOST_SERVICE;
	}
	return -EPERM;
}

int ctl_http_cross_site(const char *sfs, const char *sfm)
{
	return sfs && (!strcasecmp(sfs, "cross-site") || !strcasecmp(sfs, "same-site")) &&
	       !(sfm && !strcasecmp(sfm, "navigate"));
}

int ctl_http_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return 0;
}

int ctl_http_origin_same(const char *origin, const char *host)
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
