// SPDX-License-Identifier: MIT
/*
 * Next-hop resolution for the AF_XDP transmit path, from the kernel's own
 * tables over rtnetlink:
 *   - neighbours: RTM_GETNEIGH dump at start, then RTM_NEWNEIGH /
 *     RTM_DELNEIGH events (RTNLGRP_NEIGH) keep the cache in step;
 *   - routes: a mirror of the kernel's routing tables (RTM_GETROUTE dump of
 *     tables local, main and default, longest prefix match here, lowest
 *     metric first), taken again after any route or rule event, so a
 *     destination never seen before costs a table scan, not a netlink
 *     round trip (a DHT node answers thousands of addresses a second; a
 *     round trip each was 40% of its CPU). Where a mirror would not say
 *     what the kernel says (policy rules beyond the defaults, multipath,
 *     TOS or throw routes, IPv6 link-local destinations, more than
 *     IO_NEIGH_FIB_MAX routes), RTM_GETROUTE per new destination, as
 *     before. Either answer is cached per destination until a route event.
 * One instance per queue thread: lookups take no lock. Both caches are
 * fixed-size open-addressing tables (linear probing, bounded probe length;
 * the slot at the home position is evicted when the window is full).
 */
#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/io.h"

#define PROBE 8
#define NL_BUF 32768

/* Deadline of every blocking netlink read. */
static const struct timeval nl_timeout = { .tv_sec = 2 };
#define NUD_USABLE (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP)

struct nentry {
	uint8_t used;      /* 0 free, 1 live, 2 deleted (keeps probing going) */
	uint8_t family;
	uint16_t state;
	uint8_t addr[16];
	uint8_t mac[6];
};

struct rentry {
	uint8_t used, family, via_family, onlink_ok;
	int oif;
	uint8_t dst[16];
	uint8_t via[16];
};

/* A route of the mirror. */
struct fentry {
	uint8_t family, plen, type, rank; /* rank: 0 table local, 1 main, 2 default */
	uint8_t has_via;
	uint32_t prio;
	int oif;
	uint8_t dst[16];
	uint8_t via[16];
};

enum { FIB_STALE = 0, FIB_OK, FIB_OFF };

struct io_neigh {
	int ifindex;
	int ev_fd;   /* events (and the initial dump) */
	int req_fd;  /* route queries and the mirror's dumps */
	uint32_t seq;
	unsigned int mask, count;
	struct nentry *tab;
	struct rentry routes[IO_NEIGH_ROUTE_MAX];
	int fib_state;          /* FIB_*: STALE = dump at the next miss */
	unsigned int nfib;
	struct fentry *fib;     /* IO_NEIGH_FIB_MAX */
	uint64_t fib_dumps, kernel_queries;
	uint8_t *buf;
};

static uint32_t hash_addr(uint8_t family, const uint8_t *a)
{
	size_t n = family == AF_INET ? 4 : 16, i;
	uint32_t h = 2166136261u ^ family;

	for (i = 0; i < n; i++)
		h = (h ^ a[i]) * 16777619u;
	return h ^ (h >> 15);
}

static size_t alen(uint8_t family)
{
	return family == AF_INET ? 4 : 16;
}

static struct nentry *nfind(struct io_neigh *n, uint8_t family, const uint8_t *a, int create)
{
	uint32_t h = hash_addr(family, a), i;
	struct nentry *free_slot = NULL;

	for (i = 0; i < PROBE; i++) {
		struct nentry *e = &n->tab[(h + i) & n->mask];

		if (e->used == 1 && e->family == family && !memcmp(e->addr, a, alen(family)))
			return e;
		if (e->used != 1 && !free_slot)
			free_slot = e;
		if (e->used == 0)
			break;
	}
	if (!create)
		return NULL;
	if (!free_slot) {
		free_slot = &n->tab[h & n->mask]; /* evict */
		n->count--;
	}
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->used = 1;
	free_slot->family = family;
	memcpy(free_slot->addr, a, alen(family));
	n->count++;
	return free_slot;
}

static void handle_neigh(struct io_neigh *n, const struct nlmsghdr *h)
{
	const struct ndmsg *nd = NLMSG_DATA(h);
	const struct rtattr *rta;
	const uint8_t *dst = NULL, *ll = NULL;
	int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*nd));
	size_t dlen = 0, lllen = 0;
	struct nentry *e;

	if (len < 0 || nd->ndm_ifindex != n->ifindex ||
	    (nd->ndm_family != AF_INET && nd->ndm_family != AF_INET6))
		return;
	for (rta = (const struct rtattr *)((const uint8_t *)nd + NLMSG_ALIGN(sizeof(*nd)));
	     RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		if (rta->rta_type == NDA_DST) {
			dst = RTA_DATA(rta);
			dlen = RTA_PAYLOAD(rta);
		} else if (rta->rta_type == NDA_LLADDR) {
			ll = RTA_DATA(rta);
			lllen = RTA_PAYLOAD(rta);
		}
	}
	if (!dst || dlen != alen(nd->ndm_family))
		return;
	if (h->nlmsg_type == RTM_DELNEIGH || !(nd->ndm_state & NUD_USABLE) || !ll || lllen != 6) {
		e = nfind(n, nd->ndm_family, dst, 0);
		if (e) {
			e->used = 2;
			n->count--;
		}
		return;
	}
	e = nfind(n, nd->ndm_family, dst, 1);
	e->state = nd->ndm_state;
	memcpy(e->mac, ll, 6);
}

/* Read and apply every pending message on fd. Returns messages handled or
 * -errno; stops at NLMSG_DONE when dump is set. */
static int drain(struct io_neigh *n, int dump)
{
	int handled = 0;

	for (;;) {
		ssize_t r = recv(n->ev_fd, n->buf, NL_BUF, dump ? 0 : MSG_DONTWAIT);
		struct nlmsghdr *h;
		int len;

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return dump ? -ETIMEDOUT : handled;
			if (errno == ENOBUFS) {
				/* Events overflowed: the cache may be stale. Drop
				 * it; entries come back with the next events. */
				memset(n->tab, 0, (size_t)(n->mask + 1) * sizeof(*n->tab));
				n->count = 0;
				memset(n->routes, 0, sizeof(n->routes));
				n->fib_state = FIB_STALE;
				continue;
			}
			return -errno;
		}
		len = (int)r;
		for (h = (struct nlmsghdr *)n->buf; NLMSG_OK(h, (unsigned int)len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				if (dump && h->nlmsg_seq == n->seq)
					return handled;
				continue;
			}
			if (h->nlmsg_type == RTM_NEWNEIGH || h->nlmsg_type == RTM_DELNEIGH) {
				handle_neigh(n, h);
				handled++;
			} else if (h->nlmsg_type == RTM_NEWROUTE || h->nlmsg_type == RTM_DELROUTE ||
				   h->nlmsg_type == RTM_NEWRULE || h->nlmsg_type == RTM_DELRULE) {
				memset(n->routes, 0, sizeof(n->routes));
				n->fib_state = FIB_STALE;
				handled++;
			}
		}
	}
}

void io_neigh_free(struct io_neigh *n)
{
	if (!n)
		return;
	if (n->ev_fd >= 0)
		close(n->ev_fd);
	if (n->req_fd >= 0)
		close(n->req_fd);
	free(n->tab);
	free(n->fib);
	free(n->buf);
	free(n);
}

int io_neigh_new(struct io_neigh **out, int ifindex, unsigned int max)
{
	struct sockaddr_nl sa;
	struct {
		struct nlmsghdr h;
		struct ndmsg nd;
	} req;
	struct io_neigh *n;
	unsigned int sz = 16;
	int err, rcv = 1 << 20;

	*out = NULL;
	if (!max)
		max = IO_NEIGH_DEFAULT_MAX;
	while (sz < max * 2)
		sz <<= 1; /* load factor <= 0.5 */
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->ifindex = ifindex;
	n->req_fd = -1;
	n->mask = sz - 1;
	n->tab = calloc(sz, sizeof(*n->tab));
	n->fib = calloc(IO_NEIGH_FIB_MAX, sizeof(*n->fib));
	n->buf = malloc(NL_BUF);
	n->ev_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (!n->tab || !n->fib || !n->buf) {
		err = -ENOMEM;
		goto fail;
	}
	if (n->ev_fd < 0)
		goto fail_errno;
	n->req_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (n->req_fd < 0)
		goto fail_errno;
	(void)setsockopt(n->ev_fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	/* Every blocking read (the initial dump, route queries, the mirror's
	 * dumps) has a deadline: a kernel that never answers cannot pin the
	 * worker. */
	(void)setsockopt(n->ev_fd, SOL_SOCKET, SO_RCVTIMEO, &nl_timeout, sizeof(nl_timeout));
	(void)setsockopt(n->req_fd, SOL_SOCKET, SO_RCVTIMEO, &nl_timeout, sizeof(nl_timeout));
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	sa.nl_groups = RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
	if (bind(n->ev_fd, (struct sockaddr *)&sa, sizeof(sa)))
		goto fail_errno;
	/* Rule changes make the mirror stale too (no RTMGRP_ bit for them). */
	for (unsigned int g = 0; g < 2; g++) {
		int grp = g ? RTNLGRP_IPV6_RULE : RTNLGRP_IPV4_RULE;

		if (setsockopt(n->ev_fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp, sizeof(grp)))
			goto fail_errno;
	}
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = RTM_GETNEIGH;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.h.nlmsg_seq = ++n->seq;
	req.nd.ndm_family = AF_UNSPEC;
	if (send(n->ev_fd, &req, sizeof(req), 0) < 0)
		goto fail_errno;
	err = drain(n, 1);
	if (err < 0)
		goto fail;
	*out = n;
	return 0;
fail_errno:
	err = -errno;
fail:
	io_neigh_free(n);
	return err;
}

int io_neigh_fd(const struct io_neigh *n)
{
	return n->ev_fd;
}

int io_neigh_process(struct io_neigh *n)
{
	return drain(n, 0);
}

unsigned int io_neigh_count(const struct io_neigh *n)
{
	return n->count;
}

/* Called for each answer to a request: 0 to read on, 1 when the answer
 * is complete, -errno to fail (a dump is still read to its end). */
typedef int nl_answer_fn(struct io_neigh *n, const struct nlmsghdr *h, void *arg);

/* Send the netlink request msg (len bytes, its sequence number set here) on
 * req_fd and hand each answer to fn until fn says it is complete, NLMSG_DONE
 * or NLMSG_ERROR. Every read has the socket's deadline (-ETIMEDOUT). */
static int nl_transact(struct io_neigh *n, void *msg, size_t len, nl_answer_fn *fn, void *arg)
{
	struct nlmsghdr *req = msg;
	uint32_t seq = ++n->seq;
	int err = 0;

	req->nlmsg_seq = seq;
	if (send(n->req_fd, msg, len, 0) < 0)
		return -errno;
	for (;;) {
		ssize_t r = recv(n->req_fd, n->buf, NL_BUF, 0);
		struct nlmsghdr *h;
		int left;

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		left = (int)r;
		for (h = (struct nlmsghdr *)n->buf; NLMSG_OK(h, (unsigned int)left); h = NLMSG_NEXT(h, left)) {
			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return err;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				return e->error ? e->error : err;
			}
			if (!err) {
				int v = fn(n, h, arg);

				if (v > 0)
					return 0;
				err = v;
			}
		}
	}
}

/* The answer to route_query's request: fill re from the route. */
static int route_answer(struct io_neigh *n, const struct nlmsghdr *h, void *arg)
{
	struct rentry *re = arg;
	const struct rtmsg *rt = NLMSG_DATA(h);
	int alen2 = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*rt));
	uint8_t family = re->family;
	size_t al = alen(family);
	const struct rtattr *rta;

	(void)n;
	if (h->nlmsg_type != RTM_NEWROUTE || alen2 < 0)
		return 0;
	re->via_family = family;
	memcpy(re->via, re->dst, al);
	re->onlink_ok = rt->rtm_type == RTN_UNICAST;
	for (rta = RTM_RTA(rt); RTA_OK(rta, alen2); rta = RTA_NEXT(rta, alen2)) {
		if (rta->rta_type == RTA_OIF && RTA_PAYLOAD(rta) >= 4)
			memcpy(&re->oif, RTA_DATA(rta), 4);
		else if (rta->rta_type == RTA_GATEWAY && RTA_PAYLOAD(rta) == al)
			memcpy(re->via, RTA_DATA(rta), al);
	}
	re->used = 1;
	return 1;
}

/* Ask the kernel for the route to dst. */
static int route_query(struct io_neigh *n, const struct io_addr *dst, struct rentry *re)
{
	struct {
		struct nlmsghdr h;
		struct rtmsg rt;
		uint8_t attrs[64];
	} req;
	struct rtattr *rta;
	size_t al = alen((uint8_t)dst->family);
	int err;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_type = RTM_GETROUTE;
	req.h.nlmsg_flags = NLM_F_REQUEST;
	req.rt.rtm_family = (uint8_t)dst->family;
	req.rt.rtm_dst_len = (uint8_t)(al * 8);
	rta = (struct rtattr *)req.attrs;
	rta->rta_type = RTA_DST;
	rta->rta_len = (unsigned short)RTA_LENGTH(al);
	memcpy(RTA_DATA(rta), dst->addr, al);
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.rt)) + RTA_ALIGN(rta->rta_len);
	memset(re, 0, sizeof(*re));
	re->family = (uint8_t)dst->family;
	memcpy(re->dst, dst->addr, al);
	err = nl_transact(n, &req, req.h.nlmsg_len, route_answer, re);
	if (err < 0)
		return err;
	return re->used ? 0 : -EHOSTUNREACH;
}

/* ---- the routing-table mirror ---- */

/* Send a dump request of type (family AF_UNSPEC) on req_fd and hand every
 * answer to fn until NLMSG_DONE. Returns 0, fn's first negative value (the
 * dump is still read to its end), or -errno. */
static int nl_dump(struct io_neigh *n, uint16_t type, nl_answer_fn *fn)
{
	struct {
		struct nlmsghdr h;
		struct rtmsg rt; /* struct fib_rule_hdr has the same size and first byte */
	} req;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = type;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.rt.rtm_family = AF_UNSPEC;
	return nl_transact(n, &req, sizeof(req), fn, NULL);
}

static int fam_bit(uint8_t family)
{
	return family == AF_INET ? 1 : family == AF_INET6 ? 2 : 0;
}

/* One route of the dump into the mirror; -EOPNOTSUPP when the mirror
 * cannot stand for the kernel's lookup (then queries per destination). */
static int fib_add(struct io_neigh *n, const struct nlmsghdr *h, void *arg)
{
	const struct rtmsg *rt = NLMSG_DATA(h);
	int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*rt));
	const struct rtattr *rta;
	uint32_t table = rt->rtm_table;
	struct fentry e;
	size_t al;

	if (h->nlmsg_type != RTM_NEWROUTE || len < 0 || !fam_bit(rt->rtm_family) ||
	    (rt->rtm_flags & RTM_F_CLONED))
		return 0;
	al = alen(rt->rtm_family);
	memset(&e, 0, sizeof(e));
	e.family = rt->rtm_family;
	e.plen = rt->rtm_dst_len;
	e.type = rt->rtm_type;
	for (rta = RTM_RTA(rt); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		switch (rta->rta_type) {
		case RTA_TABLE:
			if (RTA_PAYLOAD(rta) >= 4)
				memcpy(&table, RTA_DATA(rta), 4);
			break;
		case RTA_DST:
			if (RTA_PAYLOAD(rta) != al)
				return -EOPNOTSUPP;
			memcpy(e.dst, RTA_DATA(rta), al);
			break;
		case RTA_OIF:
			if (RTA_PAYLOAD(rta) >= 4)
				memcpy(&e.oif, RTA_DATA(rta), 4);
			break;
		case RTA_GATEWAY:
			if (RTA_PAYLOAD(rta) != al)
				return -EOPNOTSUPP;
			memcpy(e.via, RTA_DATA(rta), al);
			e.has_via = 1;
			break;
		case RTA_PRIORITY:
			if (RTA_PAYLOAD(rta) >= 4)
				memcpy(&e.prio, RTA_DATA(rta), 4);
			break;
		case RTA_MULTIPATH: /* the kernel's hash picks the path */
		case RTA_VIA:       /* IPv4 route through an IPv6 next hop */
			return -EOPNOTSUPP;
		default:
			break;
		}
	}
	if (table == RT_TABLE_LOCAL)
		e.rank = 0;
	else if (table == RT_TABLE_MAIN)
		e.rank = 1;
	else if (table == RT_TABLE_DEFAULT)
		e.rank = 2;
	else
		return 0; /* reached only through rules, which fib_rule refuses */
	/* A dead or link-down next hop is skipped or used depending on
	 * sysctls (ignore_routes_with_linkdown): the kernel decides. */
	if (rt->rtm_tos || e.type == RTN_THROW || e.plen > al * 8 ||
	    (rt->rtm_flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN)))
		return -EOPNOTSUPP;
	if (n->nfib == IO_NEIGH_FIB_MAX)
		return -EOPNOTSUPP;
	n->fib[n->nfib++] = e;
	return 0;
}

/* Only the kernel's default rules (local at 0, main at 32766, default at
 * 32767, no selector) leave a lookup to tables local, main, default in
 * that order; anything else: -EOPNOTSUPP. */
static int fib_rule(struct io_neigh *n, const struct nlmsghdr *h, void *arg)
{
	const struct fib_rule_hdr *fr = NLMSG_DATA(h);
	int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*fr));
	const struct rtattr *rta;
	uint32_t table = fr->table, prio = 0;

	(void)n;
	if (h->nlmsg_type != RTM_NEWRULE || len < 0 || !fam_bit(fr->family))
		return 0;
	if (fr->action != FR_ACT_TO_TBL || fr->src_len || fr->dst_len || fr->tos ||
	    (fr->flags & FIB_RULE_INVERT))
		return -EOPNOTSUPP;
	for (rta = (const struct rtattr *)((const uint8_t *)fr + NLMSG_ALIGN(sizeof(*fr)));
	     RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		if (rta->rta_type == FRA_TABLE && RTA_PAYLOAD(rta) >= 4)
			memcpy(&table, RTA_DATA(rta), 4);
		else if (rta->rta_type == FRA_PRIORITY && RTA_PAYLOAD(rta) >= 4)
			memcpy(&prio, RTA_DATA(rta), 4);
		else if ((rta->rta_type == FRA_SUPPRESS_PREFIXLEN ||
			  rta->rta_type == FRA_SUPPRESS_IFGROUP) && RTA_PAYLOAD(rta) >= 4) {
			uint32_t v;

			memcpy(&v, RTA_DATA(rta), 4);
			if (v != UINT32_MAX) /* -1: not set (the kernel sends it anyway) */
				return -EOPNOTSUPP;
		} else if (rta->rta_type != FRA_PROTOCOL) {
			return -EOPNOTSUPP; /* a selector, goto, ... */
		}
	}
	if (!((table == RT_TABLE_LOCAL && prio == 0) || (table == RT_TABLE_MAIN && prio == 32766) ||
	      (table == RT_TABLE_DEFAULT && prio == 32767)))
		return -EOPNOTSUPP;
	return 0;
}

/* (Re)take the mirror: rules first, then every route. */
static void fib_load(struct io_neigh *n)
{
	n->nfib = 0;
	n->fib_dumps++;
	n->fib_state = FIB_OFF;
	if (nl_dump(n, RTM_GETRULE, fib_rule) || nl_dump(n, RTM_GETROUTE, fib_add)) {
		n->nfib = 0;
		return;
	}
	n->fib_state = FIB_OK;
}

static int prefix_has(const uint8_t *p, unsigned int plen, const uint8_t *a)
{
	unsigned int full = plen / 8, rest = plen % 8;

	if (memcmp(p, a, full))
		return 0;
	return !rest || !((p[full] ^ a[full]) & (uint8_t)(0xff << (8 - rest)));
}

/* The route to dst from the mirror into re: 0, -EHOSTUNREACH (no route),
 * or 1 when the kernel must be asked. */
static int fib_lookup(struct io_neigh *n, const struct io_addr *dst, struct rentry *re)
{
	const struct fentry *best = NULL;
	int tie = 0;
	size_t al = alen((uint8_t)dst->family);

	if (n->fib_state == FIB_STALE)
		fib_load(n);
	if (n->fib_state != FIB_OK)
		return 1;
	/* link-local and multicast: the scope / interface decides, not a prefix */
	if (dst->family == AF_INET6 && dst->addr[0] == 0xfe && (dst->addr[1] & 0xc0) == 0x80)
		return 1;
	if (dst->family == AF_INET6 ? dst->addr[0] == 0xff : (dst->addr[0] & 0xf0) == 0xe0)
		return 1;
	for (unsigned int i = 0; i < n->nfib; i++) {
		const struct fentry *e = &n->fib[i];

		if (e->family != dst->family || !prefix_has(e->dst, e->plen, dst->addr))
			continue;
		if (!best || e->rank < best->rank ||
		    (e->rank == best->rank &&
		     (e->plen > best->plen || (e->plen == best->plen && e->prio < best->prio)))) {
			best = e;
			tie = 0;
		} else if (e->rank == best->rank && e->plen == best->plen && e->prio == best->prio) {
			tie = 1;
		}
	}
	if (tie)
		return 1; /* equal routes (IPv6 multipath): the kernel's choice */
	if (!best)
		return -EHOSTUNREACH;
	memset(re, 0, sizeof(*re));
	re->family = (uint8_t)dst->family;
	memcpy(re->dst, dst->addr, al);
	re->via_family = (uint8_t)dst->family;
	memcpy(re->via, best->has_via ? best->via : dst->addr, al);
	re->onlink_ok = best->type == RTN_UNICAST;
	re->oif = best->oif;
	re->used = 1;
	return 0;
}

void io_neigh_route_counts(const struct io_neigh *n, uint64_t *dumps, uint64_t *queries)
{
	*dumps = n->fib_dumps;
	*queries = n->kernel_queries;
}

int io_neigh_lookup(struct io_neigh *n, const struct io_addr *dst, uint8_t mac[6])
{
	uint32_t h = hash_addr((uint8_t)dst->family, dst->addr), i;
	struct rentry *re = NULL;
	struct nentry *e;
	size_t al = alen((uint8_t)dst->family);
	int err;

	if (dst->family != AF_INET && dst->family != AF_INET6)
		return -EAFNOSUPPORT;
	for (i = 0; i < PROBE; i++) {
		struct rentry *c = &n->routes[(h + i) % IO_NEIGH_ROUTE_MAX];

		if (c->used && c->family == dst->family && !memcmp(c->dst, dst->addr, al)) {
			re = c;
			break;
		}
		if (!c->used) {
			re = c;
			break;
		}
	}
	if (!re)
		re = &n->routes[h % IO_NEIGH_ROUTE_MAX];
	if (!re->used || re->family != dst->family || memcmp(re->dst, dst->addr, al)) {
		err = fib_lookup(n, dst, re);
		if (err == 1) {
			n->kernel_queries++;
			err = route_query(n, dst, re);
		}
		if (err) {
			re->used = 0;
			return err == -ENETUNREACH ? -EHOSTUNREACH : err;
		}
	}
	if (!re->onlink_ok || re->oif != n->ifindex)
		return -EHOSTUNREACH;
	e = nfind(n, re->via_family, re->via, 0);
	if (!e || !(e->state & NUD_USABLE))
		return -EAGAIN;
	memcpy(mac, e->mac, 6);
	return 0;
}
