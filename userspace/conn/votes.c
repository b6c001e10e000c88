// SPDX-License-Identifier: MIT
/*
 * Reflexive address votes and NAT classification (docs/CONNECTIVITY.md,
 * "Address discovery"). A voter is a network prefix (/24 for IPv4, /48 for
 * IPv6), not an address: one host, or many hosts of one network, weigh one
 * vote, and a later vote of the same voter for the same local socket
 * replaces its earlier one. The table is bounded (CONN_VOTE_SLOTS, the
 * oldest vote is replaced) and votes expire (CONN_VOTE_TTL_MS).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weft/conn.h"

struct vote {
	int used;
	uint8_t src;
	uint16_t local_port;
	struct io_addr voter; /* prefix, port 0 */
	struct io_addr seen;
	uint64_t at;
};

struct conn_votes {
	struct vote v[CONN_VOTE_SLOTS];
	struct io_addr local[CONN_REC_MAX_ADDRS];
	unsigned int nlocal;
	struct conn_net nets[CONN_VOTE_NETS_MAX]; /* voters counted although not public */
	unsigned int nnets;
	struct conn_vote_state last; /* the decision last reported */
};

const char *conn_nat_name(enum conn_nat n)
{
	switch (n) {
	case CONN_NAT_NONE:
		return "none";
	case CONN_NAT_EIM:
		return "endpoint-independent";
	case CONN_NAT_ADM:
		return "address-dependent";
	case CONN_NAT_BEHIND:
		return "behind-nat";
	default:
		return "unknown";
	}
}

int conn_votes_new(struct conn_votes **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void conn_votes_free(struct conn_votes *v)
{
	free(v);
}

static int ip_eq(const struct io_addr *a, const struct io_addr *b)
{
	size_t l = a->family == AF_INET ? 4 : 16;

	return a->family == b->family && !memcmp(a->addr, b->addr, l);
}

static void prefix_of(const struct io_addr *a, struct io_addr *p)
{
	memset(p, 0, sizeof(*p));
	p->family = a->family;
	memcpy(p->addr, a->addr, a->family == AF_INET ? 3 : 6);
}

void conn_votes_set_local(struct conn_votes *v, const struct io_addr *addrs, unsigned int n)
{
	if (n > CONN_REC_MAX_ADDRS)
		n = CONN_REC_MAX_ADDRS;
	memcpy(v->local, addrs, n * sizeof(*addrs));
	v->nlocal = n;
}

void conn_votes_set_voter_nets(struct conn_votes *v, const struct conn_net *nets, unsigned int n)
{
	if (n > CONN_VOTE_NETS_MAX)
		n = CONN_VOTE_NETS_MAX;
	memcpy(v->nets, nets, n * sizeof(*nets));
	v->nnets = n;
}

int conn_net_contains(const struct conn_net *net, const struct io_addr *a)
{
	unsigned int len = a->family == AF_INET ? 4 : 16, bits = net->bits;

	if (a->family != net->addr.family || bits > len * 8)
		return 0;
	if (memcmp(a->addr, net->addr.addr, bits / 8))
		return 0;
	if (bits % 8) {
		uint8_t m = (uint8_t)(0xff << (8 - bits % 8));

		return (a->addr[bits / 8] & m) == (net->addr.addr[bits / 8] & m);
	}
	return 1;
}

static int voter_ok(const struct conn_votes *v, const struct io_addr *voter)
{
	if (conn_addr_public(voter))
		return 1;
	for (unsigned int i = 0; i < v->nnets; i++)
		if (conn_net_contains(&v->nets[i], voter))
			return 1;
	return 0;
}

static int live(const struct vote *x, uint64_t now)
{
	return x->used && now - x->at <= CONN_VOTE_TTL_MS;
}

static int state_eq(const struct conn_vote_state *a, const struct conn_vote_state *b)
{
	if (a->nrefl != b->nrefl || a->nat != b->nat)
		return 0;
	for (unsigned int i = 0; i < a->nrefl; i++)
		if (!ip_eq(&a->refl[i].addr, &b->refl[i].addr) ||
		    a->refl[i].addr.port != b->refl[i].addr.port)
			return 0;
	return 1;
}

int conn_votes_add(struct conn_votes *v, enum conn_vote_src src, const struct io_addr *voter,
		   const struct io_addr *seen, uint16_t local_port, uint64_t now_ms)
{
	struct io_addr pfx;
	struct vote *slot = NULL, *oldest = NULL;
	struct conn_vote_state st;
	unsigned int i;

	if (!v || !voter || !seen || (seen->family != AF_INET && seen->family != AF_INET6) ||
	    (voter->family != AF_INET && voter->family != AF_INET6))
		return -EINVAL;
	if (!voter_ok(v, voter) || !conn_addr_public(seen) || !seen->port)
		return 0;
	prefix_of(voter, &pfx);
	/* The voter's own slot, else a free or expired one, else the oldest. */
	for (i = 0; i < CONN_VOTE_SLOTS && !slot; i++)
		if (v->v[i].used && v->v[i].local_port == local_port && ip_eq(&v->v[i].voter, &pfx))
			slot = &v->v[i];
	for (i = 0; i < CONN_VOTE_SLOTS && !slot; i++)
		if (!live(&v->v[i], now_ms))
			slot = &v->v[i];
	for (i = 0; i < CONN_VOTE_SLOTS && !slot; i++)
		if (!oldest || v->v[i].at < oldest->at)
			oldest = &v->v[i];
	if (!slot)
		slot = oldest;
	slot->used = 1;
	slot->src = (uint8_t)src;
	slot->local_port = local_port;
	slot->voter = pfx;
	slot->seen = *seen;
	slot->at = now_ms;
	conn_votes_state(v, 0, now_ms, &st);
	if (state_eq(&st, &v->last))
		return 0;
	v->last = st;
	return 1;
}

void conn_votes_mark_relay(struct conn_votes *v, const struct io_addr *relay)
{
	struct io_addr pfx;

	if (!v || !relay || (relay->family != AF_INET && relay->family != AF_INET6))
		return;
	prefix_of(relay, &pfx);
	for (unsigned int i = 0; i < CONN_VOTE_SLOTS; i++)
		if (v->v[i].used && v->v[i].src == CONN_VOTE_QUIC && ip_eq(&v->v[i].voter, &pfx))
			v->v[i].src = CONN_VOTE_RELAY;
}

/* Distinct voter prefixes among live votes for ip (any local socket). */
static unsigned int voters_for(const struct conn_votes *v, const struct io_addr *ip, uint64_t now)
{
	unsigned int i, j, n = 0;

	for (i = 0; i < CONN_VOTE_SLOTS; i++) {
		const struct vote *x = &v->v[i];

		if (!live(x, now) || !ip_eq(&x->seen, ip))
			continue;
		for (j = 0; j < i; j++) /* counted already under an earlier slot? */
			if (live(&v->v[j], now) && ip_eq(&v->v[j].seen, ip) &&
			    ip_eq(&v->v[j].voter, &x->voter))
				break;
		n += j == i;
	}
	return n;
}

/* Ports the voters of ip saw for one local socket: 1 all equal (*port),
 * 2 they differ, 0 fewer than two voters. */
static int port_agreement(const struct conn_votes *v, const struct io_addr *ip, uint16_t lport,
			  uint64_t now, uint16_t *port)
{
	unsigned int i, n = 0;
	int differ = 0;

	*port = 0;
	for (i = 0; i < CONN_VOTE_SLOTS; i++) {
		const struct vote *x = &v->v[i];

		if (!live(x, now) || x->local_port != lport || !ip_eq(&x->seen, ip))
			continue;
		if (n && x->seen.port != *port)
			differ = 1;
		*port = x->seen.port;
		n++;
	}
	if (n < 2)
		return 0;
	return differ ? 2 : 1;
}

/* A live relay vote for ip. */
static int relay_vote_for(const struct conn_votes *v, const struct io_addr *ip, uint64_t now)
{
	for (unsigned int i = 0; i < CONN_VOTE_SLOTS; i++)
		if (live(&v->v[i], now) && v->v[i].src == CONN_VOTE_RELAY &&
		    ip_eq(&v->v[i].seen, ip))
			return 1;
	return 0;
}

void conn_votes_state(struct conn_votes *v, uint16_t quic_port, uint64_t now_ms,
		      struct conn_vote_state *st)
{
	static const int fams[2] = { AF_INET, AF_INET6 };
	unsigned int i, k;
	int any_eim = 0, any_adm = 0, local = 0, by_relay = 0;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < CONN_VOTE_SLOTS; i++)
		st->voters += live(&v->v[i], now_ms);
	for (k = 0; k < 2; k++) {
		struct io_addr best = { 0 };
		unsigned int nbest = 0, nsecond = 0;

		for (i = 0; i < CONN_VOTE_SLOTS; i++) {
			const struct vote *x = &v->v[i];
			unsigned int n;

			if (!live(x, now_ms) || x->seen.family != fams[k] || ip_eq(&x->seen, &best))
				continue;
			n = voters_for(v, &x->seen, now_ms);
			if (n > nbest) {
				nsecond = nbest;
				nbest = n;
				best = x->seen;
			} else if (n > nsecond) {
				nsecond = n;
			}
		}
		if (nbest < CONN_VOTE_QUORUM || nbest <= nsecond) {
			/* one voter, our relay, and nobody saying otherwise */
			if (nbest != 1 || nsecond || !relay_vote_for(v, &best, now_ms))
				continue;
			by_relay = 1;
		}
		best.port = 0;
		for (i = 0; i < CONN_VOTE_SLOTS; i++) {
			uint16_t port, lp = v->v[i].local_port;
			int r;

			if (!live(&v->v[i], now_ms) || !ip_eq(&v->v[i].seen, &best))
				continue;
			r = port_agreement(v, &best, lp, now_ms, &port);
			any_eim |= r == 1;
			any_adm |= r == 2;
			if (lp == quic_port && r == 1)
				best.port = port;
		}
		for (i = 0; i < v->nlocal; i++)
			local |= ip_eq(&v->local[i], &best);
		st->refl[st->nrefl].addr = best;
		st->refl[st->nrefl].voters = nbest;
		st->nrefl++;
	}
	if (!st->nrefl)
		st->nat = CONN_NAT_UNKNOWN;
	else if (local)
		st->nat = CONN_NAT_NONE;
	else if (any_adm)
		st->nat = CONN_NAT_ADM;
	else if (any_eim)
		st->nat = CONN_NAT_EIM;
	else if (by_relay)
		st->nat = CONN_NAT_BEHIND;
	else
		st->nat = CONN_NAT_UNKNOWN;
}
