// SPDX-License-Identifier: MIT
/*
 * An endpoint's live connections per source IP (quic_int.h), for its
 * max_conns_per_addr limit: a new client's Initial asks how many live
 * connections its address has. That was a walk over every connection of
 * the endpoint once it had max_conns_per_addr of them (64), for every
 * Initial of a new client, before any Retry: a flood of Initials from
 * forged sources cost a walk of up to max_conns (4096) each. Now one
 * lookup.
 *
 * Chains of counters keyed by a keyed hash of the address (the endpoint's
 * secret: a peer cannot aim its addresses at one chain), 64 at first,
 * doubled while the counters outnumber the chains, at most
 * QUIC_IPCOUNT_MAX; a counter that reaches 0 is freed, so there are never
 * more than live connections. One owner: the endpoint's worker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <sodium.h>

#include "quic/quic_int.h"

struct quic_ipcount {
	struct quic_ipcount *next;
	uint8_t fam; /* 4 or 6 */
	uint8_t ip[16];
	uint32_t n;
};

/* The address's family and bytes: 0 for anything but IPv4 and IPv6. */
static int ip_key(const struct sockaddr *sa, uint8_t ip[16])
{
	memset(ip, 0, 16);
	if (sa->sa_family == AF_INET) {
		memcpy(ip, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(ip, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return 6;
	}
	return 0;
}

static size_t ip_hash(const struct quic_ep *ep, int fam, const uint8_t ip[16], size_t n)
{
	uint8_t in[17];
	uint64_t h;

	in[0] = (uint8_t)fam;
	memcpy(in + 1, ip, 16);
	crypto_shorthash((unsigned char *)&h, in, sizeof(in), ep->secret);
	return (size_t)h & (n - 1);
}

static struct quic_ipcount **ip_slot(const struct quic_ep *ep, int fam, const uint8_t ip[16])
{
	struct quic_ipcount **p = &ep->ipc[ip_hash(ep, fam, ip, ep->nipc)];

	while (*p && ((*p)->fam != fam || memcmp((*p)->ip, ip, 16)))
		p = &(*p)->next;
	return p;
}

/* Twice the chains (or the first QUIC_IPCOUNT_MIN); on no memory the
 * old ones stay (longer chains). */
static void ip_grow(struct quic_ep *ep)
{
	size_t n = ep->nipc ? 2 * ep->nipc : QUIC_IPCOUNT_MIN;
	struct quic_ipcount **t, *e, *next;

	if (n > QUIC_IPCOUNT_MAX || !(t = calloc(n, sizeof(*t))))
		return;
	for (size_t i = 0; i < ep->nipc; i++)
		for (e = ep->ipc[i]; e; e = next) {
			size_t j = ip_hash(ep, e->fam, e->ip, n);

			next = e->next;
			e->next = t[j];
			t[j] = e;
		}
	free(ep->ipc);
	ep->ipc = t;
	ep->nipc = n;
}

void quic_ep_ip_add(struct quic_ep *ep, struct quic_conn *c)
{
	struct quic_ipcount **p, *e;
	uint8_t ip[16];
	int fam = ip_key((const struct sockaddr *)&c->src, ip);

	if (!fam || c->ip_counted)
		return;
	if (ep->ipc_used >= ep->nipc)
		ip_grow(ep);
	if (!ep->nipc)
		return; /* no memory for a table: not counted */
	p = ip_slot(ep, fam, ip);
	if (!*p) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return;
		e->fam = (uint8_t)fam;
		memcpy(e->ip, ip, 16);
		*p = e;
		ep->ipc_used++;
	}
	(*p)->n++;
	c->ip_counted = 1;
}

void quic_ep_ip_del(struct quic_ep *ep, struct quic_conn *c)
{
	struct quic_ipcount **p, *e;
	uint8_t ip[16];
	int fam;

	if (!c->ip_counted || !ep->nipc)
		return;
	c->ip_counted = 0;
	fam = ip_key((const struct sockaddr *)&c->src, ip);
	p = ip_slot(ep, fam, ip);
	if (!(e = *p))
		return;
	if (--e->n == 0) {
		*p = e->next;
		free(e);
		ep->ipc_used--;
	}
}

size_t quic_ep_ip_count(const struct quic_ep *ep, const struct sockaddr *from)
{
	struct quic_ipcount **p;
	uint8_t ip[16];
	int fam = ip_key(from, ip);

	if (!fam || !ep->nipc)
		return 0;
	p = ip_slot(ep, fam, ip);
	return *p ? (*p)->n : 0;
}

void quic_ep_ip_free(struct quic_ep *ep)
{
	struct quic_ipcount *e, *next;

	for (size_t i = 0; i < ep->nipc; i++)
		for (e = ep->ipc[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	free(ep->ipc);
	ep->ipc = NULL;
	ep->nipc = ep->ipc_used = 0;
}
