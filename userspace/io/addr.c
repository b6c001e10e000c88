// SPDX-License-Identifier: MIT
/*
 * Address helpers shared by the backends: io_addr conversions to and from
 * sockaddr, parsing and printing, and the per-datagram TTL control message.
 * The route MTU toward an address (io_route_mtu). The lowest part of io:
 * it calls no other io file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
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

/* 1 when an interface other than loopback has an MTU above 1500. */
static int have_jumbo_iface(void)
{
	struct if_nameindex *ifs, *i;
	struct ifreq ifr;
	int fd, found = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	ifs = if_nameindex();
	for (i = ifs; i && i->if_index && !found; i++) {
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", i->if_name);
		if (ioctl(fd, SIOCGIFFLAGS, &ifr) || (ifr.ifr_flags & IFF_LOOPBACK))
			continue;
		if (ioctl(fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 1500)
			found = 1;
	}
	if (ifs)
		if_freenameindex(ifs);
	close(fd);
	return found;
}

int io_route_mtu(const struct io_addr *dst)
{
	/* Per thread: a thread lives in one network namespace. */
	static __thread int jumbo;
	static __thread time_t checked;
	struct sockaddr_storage ss;
	struct timespec ts;
	int fd, mtu = 0, len;
	socklen_t ml = sizeof(mtu);

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	if (!checked || ts.tv_sec - checked >= IO_ROUTE_MTU_RECHECK_S) {
		jumbo = have_jumbo_iface();
		checked = ts.tv_sec ? ts.tv_sec : 1;
	}
	if (!jumbo || (dst->family != AF_INET && dst->family != AF_INET6))
		return 0;
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
	return mtu > 1500 ? mtu : 0;
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
