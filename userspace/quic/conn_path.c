// SPDX-License-Identifier: MIT
/*
 * The path layer under one QUIC connection (docs/CONNECTIVITY.md "Direct
 * paths"): ngtcp2 keeps the address the connection was set up on (for a
 * relayed connection, relay:PORT) as its only remote address; packets go
 * to the direct address when one is set, and packets arriving from an
 * alias are handed to ngtcp2 as coming from the set-up address, so ngtcp2
 * never sees a migration. Every packet of a connection leaves through
 * quic_conn_path_send(), every packet routed to it passes
 * quic_conn_path_rx() first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "quic_int.h"

static int sa_eq(const struct sockaddr *a, socklen_t al, const struct sockaddr *b, socklen_t bl)
{
	if (a->sa_family != b->sa_family)
		return 0;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return al >= sizeof(*x) && bl >= sizeof(*y) && x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return al >= sizeof(*x) && bl >= sizeof(*y) && x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	return 0;
}

static int sa_ok(const struct sockaddr *sa, socklen_t len)
{
	return sa && len <= sizeof(struct sockaddr_storage) &&
	       ((sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) ||
		(sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)));
}

int quic_sa_loopback(const struct sockaddr *sa, socklen_t len)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (!sa_ok(sa, len))
		return 0;
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	{
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		if (!memcmp(a, v4mapped, sizeof(v4mapped)))
			return a[12] == 127;
		return IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)a);
	}
}

void quic_conn_path_send(struct quic_conn *c, const uint8_t *buf, size_t len, size_t gso,
	       const ngtcp2_path *path)
{
	ngtcp2_path p;

	if (!c->direct_len) {
		quic_ep_send(c->ep, buf, len, gso, path);
		return;
	}
	p = *path;
	p.remote.addr = (ngtcp2_sockaddr *)&c->direct;
	p.remote.addrlen = c->direct_len;
	c->pst.direct_tx += gso ? (len + gso - 1) / gso : 1;
	if (!c->pst.unanswered_ns)
		c->pst.unanswered_ns = c->ep->now ? c->ep->now : 1;
	quic_ep_send(c->ep, buf, len, gso, &p);
}

int quic_conn_set_direct(struct quic_conn *c, const struct sockaddr *sa, socklen_t len)
{
	if (!c)
		return -EINVAL;
	if (!sa) {
		c->direct_len = 0;
		c->pst.unanswered_ns = 0;
		return 0;
	}
	if (!sa_ok(sa, len))
		return -EINVAL;
	memcpy(&c->direct, sa, len);
	c->direct_len = len;
	c->pst.unanswered_ns = 0;
	return quic_conn_add_alias(c, sa, len);
}

int quic_conn_add_alias(struct quic_conn *c, const struct sockaddr *sa, socklen_t len)
{
	unsigned int i;

	if (!c || !sa_ok(sa, len))
		return -EINVAL;
	for (i = 0; i < c->nalias; i++)
		if (sa_eq((struct sockaddr *)&c->alias[i], c->alias_len[i], sa, len))
			return 0;
	i = c->nalias < QUIC_CONN_MAX_ALIAS ? c->nalias++ : c->alias_next++ % QUIC_CONN_MAX_ALIAS;
	memcpy(&c->alias[i], sa, len);
	c->alias_len[i] = len;
	return 0;
}

void quic_conn_path_stats(const struct quic_conn *c, struct quic_path_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (c)
		*st = c->pst;
}

int quic_conn_path_rx(struct quic_conn *c, const struct sockaddr **remote, socklen_t *remote_len)
{
	unsigned int i;

	for (i = 0; i < c->nalias; i++) {
		if (!sa_eq((struct sockaddr *)&c->alias[i], c->alias_len[i], *remote, *remote_len))
			continue;
		c->pst.alias_rx++;
		if (c->direct_len &&
		    sa_eq((struct sockaddr *)&c->direct, c->direct_len, *remote, *remote_len)) {
			c->pst.direct_rx++;
			c->pst.unanswered_ns = 0;
		}
		*remote = (const struct sockaddr *)&c->remote;
		*remote_len = c->remote_len;
		return 1;
	}
	return 0;
}
