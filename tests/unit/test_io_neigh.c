// SPDX-License-Identifier: MIT
/*
 * io_neigh (userspace/io/neigh.c), the next-hop resolution of the AF_XDP
 * transmit path, against the kernel's own tables in a network namespace
 * made here (removed at the end): two veth pairs, routes of every kind the
 * mirror of the routing tables must get right (longest prefix, a more
 * specific route through another interface inside a prefix, lowest metric,
 * blackhole, on-link, a local address, no route, IPv6 via a gateway), each
 * lookup checked against the expected next hop; the mirror answers all of
 * them without a netlink query per destination. Then a policy rule: the
 * mirror steps aside and the kernel's per-destination answer (which
 * follows the rule) is used; the rule removed and a route replaced, the
 * mirror is taken again and follows the change. Needs root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft/io.h"
#include "testutil.h"

static char ns[32];
static int orig_ns = -1;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int setup(void **state)
{
	char path[128];
	int fd;

	(void)state;
	snprintf(ns, sizeof(ns), "wnN%d", (int)getpid());
	orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (orig_ns < 0)
		return -1;
	/* a0 (02:00:00:00:00:a0) is the interface io_neigh serves; a1 is
	 * another one. Next hops get permanent neighbour entries with MACs
	 * that name them. */
	if (sh("ip netns add %s && ip -n %s link set lo up &&"
	       " ip -n %s link add a0 address 02:00:00:00:00:a0 type veth peer name b0 &&"
	       " ip -n %s link add a1 address 02:00:00:00:00:a1 type veth peer name b1 &&"
	       " for i in a0 b0 a1 b1; do ip -n %s link set $i up || exit 1; done &&"
	       " ip netns exec %s sysctl -qw net.ipv6.conf.a0.accept_dad=0 &&"
	       " ip -n %s addr add 192.0.2.1/24 dev a0 &&"
	       " ip -n %s addr add 198.51.100.1/24 dev a1 &&"
	       " ip -n %s addr add 2001:db8:1::1/64 dev a0 nodad &&"
	       " ip -n %s route add 203.0.113.0/24 via 192.0.2.254 &&"
	       " ip -n %s route add 203.0.113.128/25 via 198.51.100.254 &&"
	       " ip -n %s route add 10.0.0.0/8 via 192.0.2.253 metric 100 &&"
	       " ip -n %s route add 10.0.0.0/8 via 192.0.2.252 metric 50 &&"
	       " ip -n %s route add 10.1.0.0/16 via 192.0.2.251 &&"
	       " ip -n %s route add blackhole 172.16.0.0/12 &&"
	       " ip -n %s route add 2001:db8:99::/48 via 2001:db8:1::fe &&"
	       " ip -n %s neigh replace 192.0.2.254 lladdr 02:00:00:00:02:54 dev a0 nud permanent &&"
	       " ip -n %s neigh replace 192.0.2.253 lladdr 02:00:00:00:02:53 dev a0 nud permanent &&"
	       " ip -n %s neigh replace 192.0.2.252 lladdr 02:00:00:00:02:52 dev a0 nud permanent &&"
	       " ip -n %s neigh replace 192.0.2.251 lladdr 02:00:00:00:02:51 dev a0 nud permanent &&"
	       " ip -n %s neigh replace 192.0.2.7 lladdr 02:00:00:00:00:07 dev a0 nud permanent &&"
	       " ip -n %s neigh replace 198.51.100.254 lladdr 02:00:00:00:01:54 dev a1 nud permanent &&"
	       " ip -n %s neigh replace 2001:db8:1::fe lladdr 02:00:00:00:06:fe dev a0 nud permanent",
	       ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns,
	       ns))
		return -1;
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (orig_ns >= 0) {
		if (setns(orig_ns, CLONE_NEWNET))
			return -1;
		close(orig_ns);
	}
	sh("ip netns del %s 2>/dev/null", ns);
	return 0;
}

/* Look dst up; want_err 0: the MAC must end in last2 (two bytes);
 * NOT_HERE: any error but -EAGAIN (the kernel's own answer for a
 * blackhole is -EINVAL, the mirror's -EHOSTUNREACH: both send the
 * datagram to the kernel path, which drops it). */
#define NOT_HERE 1
static void expect(struct io_neigh *n, const char *ip, int want_err, uint16_t last2)
{
	struct io_addr a;
	uint8_t mac[6] = {0};
	int r;

	assert_int_equal(io_addr_parse(&a, ip, 6881), 0);
	r = io_neigh_lookup(n, &a, mac);
	if (want_err == NOT_HERE && r < 0 && r != -EAGAIN)
		return;
	if (r != want_err)
		fail_msg("%s: %d, want %d", ip, r, want_err);
	if (!want_err && (mac[4] != last2 >> 8 || mac[5] != (last2 & 0xff)))
		fail_msg("%s: next hop ..:%02x:%02x, want ..:%02x:%02x", ip, mac[4], mac[5],
			 last2 >> 8, last2 & 0xff);
}

/* The cases every lookup below repeats; the routes to 203.0.113.0/24 are
 * the ones the later steps change. */
static void expect_fixed(struct io_neigh *n)
{
	expect(n, "10.9.9.9", 0, 0x0252);             /* metric 50 beats 100 */
	expect(n, "10.1.2.3", 0, 0x0251);             /* /16 beats /8 */
	expect(n, "192.0.2.7", 0, 0x0007);            /* on-link */
	expect(n, "192.0.2.99", -EAGAIN, 0);          /* on-link, not resolved */
	expect(n, "172.16.5.5", NOT_HERE, 0);         /* blackhole */
	expect(n, "192.0.2.1", -EHOSTUNREACH, 0);     /* our own address: local */
	expect(n, "100.64.0.1", -EHOSTUNREACH, 0);    /* no route at all */
	expect(n, "2001:db8:99::5", 0, 0x06fe);       /* IPv6 via a gateway */
}

static void test_routes(void **state)
{
	struct io_neigh *n = NULL;
	uint64_t dumps, queries;
	char addr[32];

	(void)state;
	assert_int_equal(io_neigh_new(&n, (int)if_nametoindex("a0"), 0), 0);
	expect(n, "203.0.113.5", 0, 0x0254);
	expect(n, "203.0.113.200", -EHOSTUNREACH, 0); /* /25 inside, through a1 */
	expect_fixed(n);
	/* many destinations under one route: no query each */
	for (int i = 1; i < 250; i++) {
		snprintf(addr, sizeof(addr), "10.200.%d.%d", i, i);
		expect(n, addr, 0, 0x0252);
	}
	io_neigh_route_counts(n, &dumps, &queries);
	assert_int_equal(dumps, 1);
	assert_int_equal(queries, 0);

	/* A policy rule: the tables alone no longer say where 203.0.113.5
	 * goes; the kernel's answer (table 100, through .253) is used. */
	assert_int_equal(sh("ip route add 203.0.113.0/24 via 192.0.2.253 table 100 &&"
			    " ip rule add to 203.0.113.0/24 table 100 pref 1000"), 0);
	while (io_neigh_process(n) > 0)
		;
	expect(n, "203.0.113.5", 0, 0x0253);
	expect(n, "203.0.113.200", 0, 0x0253); /* the rule comes before main's /25 */
	expect_fixed(n);
	io_neigh_route_counts(n, &dumps, &queries);
	assert_true(queries > 0);

	/* The rule gone and the route replaced: the mirror again, new route. */
	assert_int_equal(sh("ip rule del pref 1000 &&"
			    " ip route replace 203.0.113.0/24 via 192.0.2.251"), 0);
	while (io_neigh_process(n) > 0)
		;
	io_neigh_route_counts(n, &dumps, &queries);
	expect(n, "203.0.113.5", 0, 0x0251);
	expect(n, "203.0.113.200", -EHOSTUNREACH, 0);
	expect_fixed(n);
	{
		uint64_t d2, q2;

		io_neigh_route_counts(n, &d2, &q2);
		assert_true(d2 > dumps);
		assert_int_equal(q2, queries);
	}
	io_neigh_free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
	};

	if (!tu_is_root()) {
		printf("SKIP: test_io_neigh needs root (a network namespace)\n");
		return 77;
	}
	return cmocka_run_group_tests_name("io_neigh", tests, setup, teardown);
}
