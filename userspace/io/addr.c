// SPDX-License-Identifier: MIT
/*
 * Address helpers shared by the backends: io_addr conversions to and from
 * sockaddr, parsing and printing, and the per-datagram TTL control message.
 * The route MTU toward an address (io_route_mtu). The lowest part of io:
 * it calls no other io file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "weft/io.h"

int io_addr_from_sockaddr(struct io_addr *a, const struct sockaddr *sa, socklen_t len)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		a->family = AF_INET;
		a->port = ntohs(s4->sin_port);
		memcpy(a->addr, &s4->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		a->port = ntohs(s6->sin6_port);
		if (!memcmp(&s6->sin6_addr, mapped, 12)) {
			a->family = AF_INET;
			memcpy(a->addr, (const uint8_t *)&s6->sin6_addr + 12, 4);
		} else {
			a->family = AF_INET6;
			memcpy(a->addr, &s6->sin6_addr, 16);
			a->scope_id = s6->sin6_scope_id;
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

int io_addr_to_sockaddr(const struct io_addr *a, int sock_family, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (sock_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(a->port);
		if (a->family == AF_INET) {
			uint8_t *p = (uint8_t *)&s6->sin6_addr;

			p[10] = p[11] = 0xff;
			memcpy(p + 12, a->addr, 4);
		} else if (a->family == AF_INET6) {
			memcpy(&s6->sin6_addr, a->addr, 16);
			s6->sin6_scope_id = a->scope_id;
		} else {
			return -EAFNOSUPPORT;
		}
		return sizeof(*s6);
	}
	if (sock_family == AF_INET && a->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(a->port);
		memcpy(&s4->sin_addr, a->addr, 4);
		return sizeof(*s4);
	}
	return -EAFNOSUPPORT;
}

int io_addr_parse(struct io_addr *a, const char *ip, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	if (!ip)
		return -EINVAL;
	if (inet_pton(AF_INET, ip, a->addr) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, ip, a->addr) == 1)
		a->family = AF_INET6;
	else
		return -EINVAL;
	a->port = port;
	return 0;
}

int io_addr_equal(const struct io_addr *a, const struct io_addr *b)
{
	size_t n = a->family == AF_INET ? 4 : 16;

	return a->family == b->family && a->port == b->port && !memcmp(a->addr, b->addr, n);
}

const char *io_addr_fmt(const struct io_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (a->family == AF_INET) {
		inet_ntop(AF_INET, a->addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, a->port);
	} else if (a->family == AF_INET6) {
		inet_ntop(AF_INET6, a->addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, a->port);
	} else {
		snprintf(buf, len, "-");
	}
	return buf;
}

size_t io_cmsg_ttl(struct cmsghdr *c, int dst_family, uint8_t ttl)
{
	int v = ttl;

	if (!ttl || (dst_family != AF_INET && dst_family != AF_INET6))
		return 0;
	c->cmsg_level = dst_family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
	c->cmsg_type = dst_family == AF_INET ? IP_TTL : IPV6_HOPLIMIT;
	c->cmsg_len = CMSG_LEN(sizeof(v));
	memcpy(CMSG_DATA(c), &v, sizeof(v));
	return CMSG_SPACE(sizeof(v));
}

/* What the kernel's route to dst is: ROUTE_LINK (unicast, no gateway: dst
 * is on one of our links), ROUTE_GW (through a gateway), ROUTE_OTHER (one
 * of our own addresses, broadcast, ...), or -errno. One RTM_GETROUTE (the
 * kernel's own lookup, policy rules included); its answer is queued before
 * send returns, so the receive never waits. */
enum { ROUTE_LINK = 1, ROUTE_GW, ROUTE_OTHER };

static int route_type(const struct io_addr *dst)
{
	struct {
		struct nlmsghdr n;
		struct rtmsg r;
		char attr[RTA_SPACE(16)];
	} req;
	union {
		struct nlmsghdr n;
		char buf[2048];
	} ans;
	size_t alen = dst->family == AF_INET ? 4 : 16;
	struct rtattr *rta;
	struct nlmsghdr *h;
	int fd, got, rc = -EPROTO;

	memset(&req, 0, sizeof(req));
	req.n.nlmsg_len = NLMSG_LENGTH(sizeof(req.r)) + RTA_LENGTH(alen);
	req.n.nlmsg_type = RTM_GETROUTE;
	req.n.nlmsg_flags = NLM_F_REQUEST;
	req.n.nlmsg_seq = 1;
	req.r.rtm_family = (unsigned char)dst->family;
	req.r.rtm_dst_len = (unsigned char)(alen * 8);
	rta = (struct rtattr *)((char *)&req + NLMSG_LENGTH(sizeof(req.r)));
	rta->rta_type = RTA_DST;
	rta->rta_len = (unsigned short)RTA_LENGTH(alen);
	memcpy(RTA_DATA(rta), dst->addr, alen);
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	if (send(fd, &req, req.n.nlmsg_len, 0) < 0) {
		rc = -errno;
		goto out;
	}
	got = (int)recv(fd, &ans, sizeof(ans), MSG_DONTWAIT);
	if (got < 0) {
		rc = -errno;
		goto out;
	}
	for (h = &ans.n; NLMSG_OK(h, got); h = NLMSG_NEXT(h, got)) {
		struct rtmsg *r = NLMSG_DATA(h);
		int left;

		if (h->nlmsg_type == NLMSG_ERROR) {
			rc = h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr)) ?
				     ((struct nlmsgerr *)NLMSG_DATA(h))->error :
				     -EPROTO;
			break;
		}
		if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(*r)))
			continue;
		rc = r->rtm_type == RTN_UNICAST ? ROUTE_LINK : ROUTE_OTHER;
		left = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*r)));
		for (rta = RTM_RTA(r); RTA_OK(rta, left) && rc == ROUTE_LINK;
		     rta = RTA_NEXT(rta, left))
			if (rta->rta_type == RTA_GATEWAY || rta->rta_type == RTA_VIA)
				rc = ROUTE_GW;
		break;
	}
out:
	close(fd);
	return rc;
}

/* The MTU of the kernel's route to dst (a connected UDP socket's IP_MTU
 * or IPV6_MTU), 0 when it has none. */
static int route_mtu(const struct io_addr *dst)
{
	struct sockaddr_storage ss;
	int fd, mtu = 0, len;
	socklen_t ml = sizeof(mtu);

	len = io_addr_to_sockaddr(dst, dst->family, &ss);
	if (len < 0)
		return 0;
	fd = socket(dst->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&ss, (socklen_t)len) == 0 &&
	    getsockopt(fd, dst->family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
		       dst->family == AF_INET ? IP_MTU : IPV6_MTU, &mtu, &ml) != 0)
		mtu = 0;
	close(fd);
	return mtu;
}

/* Answers kept per thread (a thread lives in one network namespace), a
 * slot per address hash: a seed dialling the same peers again, or a
 * benchmark's thousand connections from one address, asks the kernel
 * once per IO_ROUTE_MTU_RECHECK_S. */
struct route_ans {
	int family, mtu;
	uint8_t addr[16];
	time_t until;
};

static __thread unsigned int lookups, lookups_sec;
static __thread time_t lookups_at;

unsigned int io_route_mtu_lookups(void)
{
	return lookups;
}

int io_route_mtu(const struct io_addr *dst)
{
	static __thread struct route_ans cache[IO_ROUTE_MTU_CACHE];
	struct route_ans *c;
	struct timespec ts;
	size_t alen;
	uint32_t h = 2166136261u;
	int mtu, rt;

	if (dst->family != AF_INET && dst->family != AF_INET6)
		return 0;
	alen = dst->family == AF_INET ? 4 : 16;
	for (size_t i = 0; i < alen; i++)
		h = (h ^ dst->addr[i]) * 16777619u;
	c = &cache[h % IO_ROUTE_MTU_CACHE];
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	if (c->family == dst->family && !memcmp(c->addr, dst->addr, alen) && ts.tv_sec < c->until)
		return c->mtu;
	/* A flood of Initials from forged addresses misses the cache every
	 * time: at most IO_ROUTE_MTU_LOOKUPS_PER_S kernel lookups (~20 us
	 * each) a second per thread, then "not worth probing" (ngtcp2's own
	 * sizing) until the next second, not remembered. */
	if (ts.tv_sec != lookups_at) {
		lookups_at = ts.tv_sec;
		lookups_sec = 0;
	}
	if (lookups_sec >= IO_ROUTE_MTU_LOOKUPS_PER_S)
		return 0;
	lookups_sec++;
	lookups++;
	mtu = route_mtu(dst);
	/* Above 1500: a jumbo-frame link (or a path MTU the kernel learned),
	 * not one of our own addresses (loopback's 65536: its datagrams never
	 * leave the host, and a relay there may forward them anywhere); 1500
	 * to an IPv4 address on one of our links: no hop between, so its
	 * 1472-byte datagrams (ngtcp2 probes 1444 at most) are tried too. IPv6
	 * over 1500 bytes gains nothing on max_udp_payload (1452). */
	if (mtu < 1500 || (mtu == 1500 && dst->family != AF_INET))
		mtu = 0;
	else if ((rt = route_type(dst)) != ROUTE_LINK && (mtu == 1500 || rt != ROUTE_GW))
		mtu = 0;
	c->family = dst->family;
	memcpy(c->addr, dst->addr, alen);
	c->mtu = mtu;
	c->until = ts.tv_sec + IO_ROUTE_MTU_RECHECK_S;
	return mtu;
}

int io_sock_no_frag(int fd, int family)
{
	int v4 = IP_PMTUDISC_PROBE, v6 = IPV6_PMTUDISC_PROBE;

	if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v4, sizeof(v4)) ||
	    (family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v6, sizeof(v6))))
		return -errno;
	return 0;
}
