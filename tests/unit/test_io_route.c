// SPDX-License-Identifier: MIT
/*
 * io_route_mtu (userspace/io/addr.c): the host's own addresses are never
 * worth probing (their loopback route says 65536), answers are kept per
 * thread, and addresses not kept cost at most IO_ROUTE_MTU_LOOKUPS_PER_S
 * kernel lookups a second (a flood of forged sources costs no more). The
 * kinds of route on real links (on the link, through a gateway, IPv6,
 * jumbo) are checked on the kernel's paths by test_quic_jumbo.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <time.h>

#include "weft/io.h"

static time_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec;
}

static void test_own_addresses(void **state)
{
	struct io_addr a;
	unsigned int n;

	assert_int_equal(io_addr_parse(&a, "127.0.0.1", 1), 0);
	assert_int_equal(io_route_mtu(&a), 0);
	assert_int_equal(io_route_mtu_lookups(), 1); /* asked the kernel */
	assert_int_equal(io_addr_parse(&a, "::1", 1), 0);
	assert_int_equal(io_route_mtu(&a), 0);
	/* kept: asked again, no lookup */
	n = io_route_mtu_lookups();
	assert_int_equal(io_route_mtu(&a), 0);
	assert_int_equal(io_route_mtu_lookups(), n);
	/* not an address at all */
	a.family = 0;
	assert_int_equal(io_route_mtu(&a), 0);
	assert_int_equal(io_route_mtu_lookups(), n);
}

static void test_lookup_budget(void **state)
{
	const unsigned int tries = 2 * IO_ROUTE_MTU_LOOKUPS_PER_S + 10;
	unsigned int n0, n;
	struct io_addr a;
	time_t t0, t1;

	do { /* the loop within one second, so that one budget applies */
		t0 = now_s();
		n0 = io_route_mtu_lookups();
		for (unsigned int i = 0; i < tries; i++) {
			assert_int_equal(io_addr_parse(&a, "127.1.0.0", 1), 0);
			a.addr[2] = (uint8_t)(i >> 8);
			a.addr[3] = (uint8_t)i;
			assert_int_equal(io_route_mtu(&a), 0);
		}
		n = io_route_mtu_lookups() - n0;
		t1 = now_s();
	} while (t1 != t0);
	assert_true(n <= IO_ROUTE_MTU_LOOKUPS_PER_S);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_addresses),
		cmocka_unit_test(test_lookup_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
