// SPDX-License-Identifier: MIT
/*
 * An endpoint's live connections per source IP (userspace/quic/
 * ep_ipcount.c), what max_conns_per_addr is checked against: counted by
 * IP (not port), IPv4 and IPv6 apart, each connection once however often
 * it is added or removed, a counter gone with its last connection, the
 * chains doubled up to their maximum with every count still right past
 * it, nothing for an address of another family. test_quic_core
 * test_limit_per_source checks the limit itself on the wire.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <sodium.h>
#include <sys/un.h>

#include "quic/quic_int.h"

#define N (2 * QUIC_IPCOUNT_MAX) /* 3N/4 counters: more than the chains */

static void set_v4(struct sockaddr_storage *ss, uint32_t ip, uint16_t port)
{
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(ip);
	a->sin_port = htons(port);
}

static void set_v6(struct sockaddr_storage *ss, uint8_t last, uint16_t port)
{
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	a->sin6_family = AF_INET6;
	a->sin6_addr.s6_addr[0] = 0x20;
	a->sin6_addr.s6_addr[15] = last;
	a->sin6_port = htons(port);
}

static void test_counts(void **state)
{
	struct quic_ep *ep = calloc(1, sizeof(*ep));
	struct quic_conn *c = calloc(6, sizeof(*c));
	struct sockaddr_storage q;

	(void)state;
	assert_non_null(ep);
	assert_non_null(c);
	randombytes_buf(ep->secret, sizeof(ep->secret));
	for (int i = 0; i < 3; i++)
		set_v4(&c[i].src, 0xc6120001, (uint16_t)(1000 + i)); /* three ports, one IP */
	set_v4(&c[3].src, 0xc6120002, 1000);
	set_v6(&c[4].src, 1, 1000);
	c[5].src.ss_family = AF_UNIX; /* not an IP: never counted */
	for (int i = 0; i < 6; i++)
		quic_ep_ip_add(ep, &c[i]);
	quic_ep_ip_add(ep, &c[0]); /* once only */
	set_v4(&q, 0xc6120001, 9);
	assert_int_equal(quic_ep_ip_count(ep, (struct sockaddr *)&q), 3);
	set_v4(&q, 0xc6120002, 9);
	assert_int_equal(quic_ep_ip_count(ep, (struct sockaddr *)&q), 1);
	set_v4(&q, 0xc6120003, 9);
	assert_int_equal(quic_ep_ip_count(ep, (struct sockaddr *)&q), 0);
	set_v6(&q, 1, 9);
	assert_int_equal(quic_ep_ip_count(ep, (struct sockaddr *)&q), 1);
	assert_int_equal(quic_ep_ip_count(ep, (struct sockaddr *)&c[5].src), 0);
	assert_int_equal(ep->ipc_used, 3);

	quic_ep_ip_del(ep, &c[1]);
	quic_ep_ip_del(ep, &c[1]); /* once only */
	set_v4(&q, 0xc6120001, 9);
	assert_int_equal(quic_ep_ip_count(ep, (struct sockaddr *)&q), 2);
	quic_ep_ip_del(ep, &c[3]);
	set_v4(&q, 0xc6120002, 9);
	assert_int_equal(quic_ep_ip_count(ep, (struct sockaddr *)&q), 0);
	assert_int_equal(ep->ipc_used, 2); /* the counter went with its last */
	for (int i = 0; i < 6; i++)
		quic_ep_ip_del(ep, &c[i]);
	assert_int_equal(ep->ipc_used, 0);
	quic_ep_ip_free(ep);
	assert_null(ep->ipc);
	free(c);
	free(ep);
}

static void test_growth(void **state)
{
	struct quic_ep *ep = calloc(1, sizeof(*ep));
	struct quic_conn *c = calloc(N, sizeof(*c));
	struct sockaddr_storage q;

	(void)state;
	assert_non_null(ep);
	assert_non_null(c);
	randombytes_buf(ep->secret, sizeof(ep->secret));
	for (unsigned int i = 0; i < N; i++) {
		/* two connections per IP for the first half */
		set_v4(&c[i].src, 0x0a000000u + (i < N / 2 ? i / 2 : i), 4433);
		quic_ep_ip_add(ep, &c[i]);
	}
	assert_int_equal(ep->nipc, QUIC_IPCOUNT_MAX);
	for (unsigned int i = 0; i < N; i++) {
		set_v4(&q, 0x0a000000u + (i < N / 2 ? i / 2 : i), 1);
		assert_int_equal(quic_ep_ip_count(ep, (struct sockaddr *)&q), i < N / 2 ? 2 : 1);
	}
	for (unsigned int i = 0; i < N; i += 2)
		quic_ep_ip_del(ep, &c[i]);
	for (unsigned int i = 0; i < N; i++) {
		unsigned int ip = i < N / 2 ? i / 2 : i;

		set_v4(&q, 0x0a000000u + ip, 1);
		assert_int_equal(quic_ep_ip_count(ep, (struct sockaddr *)&q),
				 i < N / 2 ? 1 : (i % 2 ? 1 : 0));
	}
	quic_ep_ip_free(ep);
	free(c);
	free(ep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counts),
	    cmocka_unit_test(test_growth),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
