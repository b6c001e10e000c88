// SPDX-License-Identifier: MIT
/*
 * The serving scheduler (userspace/content/sched.c) on a virtual clock:
 * deficit round robin order across peers, byte fairness whatever the
 * request sizes, a per-peer cap, the global cap held over virtual time
 * (a capped peer still gets its share of it, a LAN peer is exempt; two
 * schedulers sharing it split it by backlogged peers), the
 * per-peer queue bound, a request put back, a peer deferred (passed over
 * for a while), and requester scores (a
 * report at the threshold, once; decay).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "content/sched.h"

#define NS 1000000000ull
#define Q CN_SCHED_QUANTUM

static struct cn_sched_item item(uint64_t peer, int64_t tag, uint32_t cost)
{
	struct cn_sched_item it;

	memset(&it, 0, sizeof(it));
	it.r.conn = peer;
	it.r.sid = tag;
	it.cost = cost;
	return it;
}

static void push(struct cn_sched *s, uint64_t peer, enum cn_class cls, int64_t tag, uint32_t cost,
		 uint64_t now)
{
	struct cn_sched_item it = item(peer, tag, cost);

	assert_int_equal(cn_sched_push(s, peer, cls, NULL, &it, now), 0);
}

/* Three peers, one chunk-sized request each per turn: A B C A B A B A. */
static void test_drr_order(void **state)
{
	struct cn_sched *s;
	struct cn_sched_item it;
	uint64_t wake, now = NS;
	const uint64_t want[] = {1, 2, 3, 1, 2, 1, 2, 1};
	unsigned int i;

	(void)state;
	assert_int_equal(cn_sched_new(&s, NULL, NULL), 0);
	for (i = 0; i < 4; i++)
		push(s, 1, CN_CLASS_WAN, i, Q, now);
	for (i = 0; i < 3; i++)
		push(s, 2, CN_CLASS_WAN, i, Q, now);
	push(s, 3, CN_CLASS_WAN, 0, Q, now);
	assert_int_equal(cn_sched_queued(s), 8);
	for (i = 0; i < 8; i++) {
		assert_int_equal(cn_sched_next(s, now, &it, &wake), 1);
		assert_int_equal(it.r.conn, want[i]);
	}
	assert_int_equal(cn_sched_next(s, now, &it, &wake), 0);
	assert_true(wake == UINT64_MAX);
	assert_int_equal(cn_sched_queued(s), 0);
	cn_sched_free(s);
}

/* Peer 1 asks in quarter-quantum requests, peer 2 in whole ones: both
 * backlogged, they get the same bytes (within one quantum). Small
 * requests of one peer go together in its turn. */
static void test_drr_bytes(void **state)
{
	struct cn_sched *s;
	struct cn_sched_item it;
	uint64_t wake, bytes[3] = {0}, now = NS;
	unsigned int i, run = 0, last = 0, maxrun = 0;

	(void)state;
	assert_int_equal(cn_sched_new(&s, NULL, NULL), 0);
	for (i = 0; i < 40; i++)
		push(s, 1, CN_CLASS_WAN, i, Q / 4, now);
	for (i = 0; i < 10; i++)
		push(s, 2, CN_CLASS_WAN, i, Q, now);
	for (i = 0; i < 16; i++) {
		assert_int_equal(cn_sched_next(s, now, &it, &wake), 1);
		bytes[it.r.conn] += it.cost;
		run = it.r.conn == last ? run + 1 : 1;
		last = (unsigned int)it.r.conn;
		if (it.r.conn == 1 && run > maxrun)
			maxrun = run;
	}
	assert_int_equal(maxrun, 4); /* four quarters a turn */
	assert_true(bytes[1] + Q >= bytes[2] && bytes[2] + Q >= bytes[1]);
	cn_sched_free(s);
}

/* Drive the scheduler for secs of virtual time with every listed peer
 * backlogged (refilled as served); bytes served per peer into got. Each
 * answer takes its time on a 1 GiB/s link. */
static void drive(struct cn_sched *s, const uint64_t *peers, const enum cn_class *cls,
		  unsigned int n, uint64_t start, uint64_t secs, uint64_t *got)
{
	struct cn_sched_item it;
	uint64_t now = start, wake;

	for (unsigned int k = 0; k < n; k++)
		for (int i = 0; i < 8; i++)
			push(s, peers[k], cls[k], i, Q, now);
	while (now < start + secs * NS) {
		if (cn_sched_next(s, now, &it, &wake)) {
			for (unsigned int k = 0; k < n; k++)
				if (peers[k] == it.r.conn) {
					got[k] += it.cost;
					push(s, peers[k], cls[k], 0, Q, now);
				}
			now += (uint64_t)it.cost * NS / (1ull << 30);
			continue;
		}
		assert_true(wake != UINT64_MAX && wake > 0);
		now += wake;
	}
}

/* A per-peer cap: peer 1 (WAN, capped) gets its rate over 20 virtual
 * seconds; peer 2 (LAN: lan_rate 0 = unlimited) is never held. */
static void test_peer_cap(void **state)
{
	struct cn_sched *s;
	struct cn_sched_limits l = {.peer_rate = 10u << 20};
	const uint64_t peers[] = {1, 2};
	const enum cn_class cls[] = {CN_CLASS_WAN, CN_CLASS_LAN};
	uint64_t got[2] = {0}, want = 20ull * (10u << 20);
	struct cn_sched_item it;
	uint64_t wake;

	(void)state;
	assert_int_equal(cn_sched_new(&s, NULL, NULL), 0);
	cn_sched_limits(s, &l);
	/* only the capped peer: it waits between chunks */
	drive(s, peers, cls, 1, NS, 20, got);
	assert_true(got[0] <= want + 2 * Q + (10u << 20) / 10);
	assert_true(got[0] + 2 * Q >= want);
	/* the LAN peer is served at once even while peer 1 is in debt */
	push(s, 2, CN_CLASS_LAN, 0, Q, 21 * NS);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(cn_sched_next(s, 21 * NS, &it, &wake), 1);
		if (it.r.conn == 2)
			break;
	}
	assert_int_equal(it.r.conn, 2);
	cn_sched_free(s);
}

/* The global cap over 30 virtual seconds with four backlogged WAN peers:
 * the total is the rate (within a burst and a request), and each peer
 * gets a quarter (Jain's index ~1). */
static void test_global_cap(void **state)
{
	struct cn_rate g;
	struct cn_sched *s;
	const uint64_t peers[] = {1, 2, 3, 4};
	const enum cn_class cls[] = {0, 0, 0, 0};
	uint64_t got[4] = {0}, total = 0, rate = 100000000 / 8; /* 100 Mbit/s */
	uint64_t want = 30 * rate;

	(void)state;
	memset(&g, 0, sizeof(g));
	cn_rate_set(&g, rate);
	assert_int_equal(cn_sched_new(&s, NULL, &g), 0);
	drive(s, peers, cls, 4, NS, 30, got);
	for (int k = 0; k < 4; k++)
		total += got[k];
	assert_true(total <= want + rate / 10 + 2 * Q);
	assert_true(total + 2 * Q >= want);
	for (int k = 0; k < 4; k++)
		assert_true(got[k] + 2 * Q >= total / 4 && got[k] <= total / 4 + 2 * Q);
	cn_sched_free(s);
}

/* Under a global cap, a peer with a lower cap of its own gets its cap and
 * the others share the rest; a LAN peer is exempt from the global cap
 * (lan_global 0) and not counted in it. */
static void test_capped_share_and_lan(void **state)
{
	struct cn_rate g;
	struct cn_sched *s;
	struct cn_sched_limits l = {.peer_rate = 2u << 20};
	const uint64_t peers[] = {1, 2, 3};
	const enum cn_class cls[] = {CN_CLASS_WAN, CN_CLASS_WAN, CN_CLASS_LAN};
	uint64_t got[3] = {0}, rate = 10u << 20, secs = 20;

	(void)state;
	memset(&g, 0, sizeof(g));
	cn_rate_set(&g, rate);
	assert_int_equal(cn_sched_new(&s, NULL, &g), 0);
	/* both WAN peers are capped at 2 MiB/s each (under their 5 MiB/s
	 * share of the global cap), the LAN peer by nothing */
	cn_sched_limits(s, &l);
	drive(s, peers, cls, 3, NS, secs, got);
	assert_true(got[0] <= secs * (2u << 20) + 3 * Q);
	assert_true(got[0] + 3 * Q >= secs * (2u << 20));
	assert_true(got[1] + 3 * Q >= secs * (2u << 20));
	/* the LAN peer is limited by nothing: it got far more than the global rate */
	assert_true(got[2] > secs * rate);
	cn_sched_free(s);

	/* peer 1 capped below its fair share of the global cap; peer 2 has
	 * no cap of its own (a LAN peer, lan_rate 0) but draws on the global
	 * bucket (lan_global): it takes the rest, the total is the cap */
	memset(&g, 0, sizeof(g));
	cn_rate_set(&g, rate);
	assert_int_equal(cn_sched_new(&s, NULL, &g), 0);
	l.peer_rate = 1u << 20;
	l.lan_rate = 0;
	l.lan_global = 1;
	cn_sched_limits(s, &l);
	memset(got, 0, sizeof(got));
	{
		const uint64_t p2[] = {1, 2};
		const enum cn_class c2[] = {CN_CLASS_WAN, CN_CLASS_LAN};

		drive(s, p2, c2, 2, NS, secs, got);
	}
	assert_true(got[0] <= secs * (1u << 20) + 3 * Q);
	assert_true(got[0] + 3 * Q >= secs * (1u << 20));
	assert_true(got[0] + got[1] <= secs * rate + rate / 10 + 3 * Q);
	assert_true(got[0] + got[1] + 3 * Q >= secs * rate);
	cn_sched_free(s);
}

/* Two schedulers (two workers) share the global cap: one with one peer,
 * the other with three. Each peer gets a quarter of the cap, not the
 * first peer half of it (the split follows backlogged peers, not workers). */
static void test_global_cap_two_workers(void **state)
{
	struct cn_rate g;
	struct cn_sched *s[2];
	struct cn_sched_item it;
	const uint64_t rate = 10u << 20, secs = 20;
	uint64_t got[5] = {0}, now = NS, wake[2], total = 0;
	const unsigned int owner[5] = {0, 0, 1, 1, 1}; /* peer -> scheduler (peers 1..4) */

	(void)state;
	memset(&g, 0, sizeof(g));
	cn_rate_set(&g, rate);
	assert_int_equal(cn_sched_new(&s[0], NULL, &g), 0);
	assert_int_equal(cn_sched_new(&s[1], NULL, &g), 0);
	for (uint64_t p = 1; p <= 4; p++)
		for (int i = 0; i < 8; i++)
			push(s[owner[p]], p, CN_CLASS_WAN, i, Q, now);
	while (now < NS + secs * NS) {
		int served = 0;

		for (int k = 0; k < 2; k++) {
			wake[k] = UINT64_MAX;
			if (cn_sched_next(s[k], now, &it, &wake[k])) {
				got[it.r.conn] += it.cost;
				push(s[k], it.r.conn, CN_CLASS_WAN, 0, Q, now);
				served = 1;
			}
		}
		if (served) {
			now += (uint64_t)Q * NS / (1ull << 30);
			continue;
		}
		now += wake[0] < wake[1] ? wake[0] : wake[1];
	}
	for (int p = 1; p <= 4; p++)
		total += got[p];
	assert_true(total <= secs * rate + rate / 5 + 4 * Q);
	assert_true(total + 4 * Q >= secs * rate);
	for (int p = 1; p <= 4; p++)
		assert_true(got[p] + 3 * Q >= total / 4 && got[p] <= total / 4 + 3 * Q);
	cn_sched_free(s[0]);
	cn_sched_free(s[1]);
	assert_int_equal(atomic_load(&g.active), 0);
}

/* Bounds: a peer's queue; the peer table (full of peers with requests
 * queued); an idle peer's entry is reused. */
static void test_bounds(void **state)
{
	struct cn_sched_opts o = {.max_peers = 2, .peer_queue = 3};
	struct cn_sched *s;
	struct cn_sched_item it = item(1, 0, 100);
	uint64_t wake;

	(void)state;
	assert_int_equal(cn_sched_new(&s, &o, NULL), 0);
	for (int i = 0; i < 3; i++)
		push(s, 1, CN_CLASS_WAN, i, 100, NS);
	assert_int_equal(cn_sched_push(s, 1, CN_CLASS_WAN, NULL, &it, NS), -ENOBUFS);
	push(s, 2, CN_CLASS_WAN, 0, 100, NS);
	it = item(3, 0, 100);
	assert_int_equal(cn_sched_push(s, 3, CN_CLASS_WAN, NULL, &it, NS), -ENOSPC);
	/* peer 2 served: its entry is idle, peer 3 may take it */
	for (int i = 0; i < 4; i++)
		assert_int_equal(cn_sched_next(s, NS, &it, &wake), 1);
	push(s, 3, CN_CLASS_WAN, 0, 100, 2 * NS);
	assert_int_equal(cn_sched_queued(s), 1);
	cn_sched_free(s);
}

/* A request that could not be written goes back to the head of its
 * peer's queue, its cost refunded: the same request comes next. */
static void test_unpop(void **state)
{
	struct cn_rate g;
	struct cn_sched *s;
	struct cn_sched_item it, again;
	uint64_t wake;

	(void)state;
	memset(&g, 0, sizeof(g));
	cn_rate_set(&g, Q); /* depth: one chunk */
	assert_int_equal(cn_sched_new(&s, NULL, &g), 0);
	push(s, 1, CN_CLASS_WAN, 7, Q, NS);
	push(s, 1, CN_CLASS_WAN, 8, Q, NS);
	push(s, 1, CN_CLASS_WAN, 9, Q, NS);
	assert_int_equal(cn_sched_next(s, NS, &it, &wake), 1);
	assert_int_equal(it.r.sid, 7);
	cn_sched_unpop(s, &it);
	assert_int_equal(cn_sched_queued(s), 3);
	assert_int_equal(cn_sched_next(s, NS, &again, &wake), 1);
	assert_int_equal(again.r.sid, 7);
	/* the bucket (one chunk deep) is empty, not in debt: one more goes */
	assert_int_equal(cn_sched_next(s, NS, &again, &wake), 1);
	assert_int_equal(again.r.sid, 8);
	/* now in debt by a chunk: the next one waits a second (looking again
	 * every CN_SCHED_GLOBAL_RECHECK_NS meanwhile) */
	{
		uint64_t now = NS;

		while (!cn_sched_next(s, now, &again, &wake)) {
			assert_true(wake > 0 && wake <= CN_SCHED_GLOBAL_RECHECK_NS);
			now += wake;
		}
		assert_true(now - NS > NS / 2 && now - NS <= NS + CN_SCHED_GLOBAL_RECHECK_NS);
	}
	assert_int_equal(again.r.sid, 9);
	cn_sched_free(s);
}

/* A peer deferred (its connection holds its limit of answers): its
 * request goes back to the head of its queue, the other peer is served
 * meanwhile, the wake says when it may go, and then it goes first. */
static void test_defer(void **state)
{
	struct cn_sched *s;
	struct cn_sched_item it;
	uint64_t wake, now = NS;

	(void)state;
	assert_int_equal(cn_sched_new(&s, NULL, NULL), 0);
	push(s, 1, CN_CLASS_WAN, 7, Q, now);
	push(s, 1, CN_CLASS_WAN, 8, Q, now);
	push(s, 2, CN_CLASS_WAN, 0, Q, now);
	push(s, 2, CN_CLASS_WAN, 1, Q, now);
	assert_int_equal(cn_sched_next(s, now, &it, &wake), 1);
	assert_int_equal(it.r.conn, 1);
	cn_sched_defer(s, &it, now + 2000000);
	assert_int_equal(cn_sched_queued(s), 4);
	/* only peer 2 until then */
	assert_int_equal(cn_sched_next(s, now, &it, &wake), 1);
	assert_int_equal(it.r.conn, 2);
	assert_int_equal(cn_sched_next(s, now + 1000000, &it, &wake), 1);
	assert_int_equal(it.r.conn, 2);
	assert_int_equal(cn_sched_next(s, now + 1000000, &it, &wake), 0);
	assert_true(wake == 1000000);
	/* then peer 1's requests, the deferred one first */
	assert_int_equal(cn_sched_next(s, now + 2000000, &it, &wake), 1);
	assert_int_equal(it.r.conn, 1);
	assert_int_equal(it.r.sid, 7);
	assert_int_equal(cn_sched_next(s, now + 2000000, &it, &wake), 1);
	assert_int_equal(it.r.sid, 8);
	assert_int_equal(cn_sched_queued(s), 0);
	cn_sched_free(s);
}

/* Scores: unannounced requests add up to the threshold (reported once);
 * a score decays: the same faults spread over many half-lives never get
 * there. */
static void test_score(void **state)
{
	struct cn_sched *s;
	struct cn_sched_peer_info pi[4];
	unsigned int n = CN_SCHED_BAN_SCORE / cn_fault_cost[CN_FAULT_UNANNOUNCED], reports = 0;

	(void)state;
	assert_int_equal(cn_sched_new(&s, NULL, NULL), 0);
	for (unsigned int i = 0; i < n - 1; i++)
		assert_int_equal(cn_sched_fault(s, 5, NULL, CN_FAULT_UNANNOUNCED, NS + i), 0);
	assert_int_equal(cn_sched_fault(s, 5, NULL, CN_FAULT_UNANNOUNCED, NS + n), 1);
	for (unsigned int i = 0; i < 5; i++)
		reports += (unsigned int)cn_sched_fault(s, 5, NULL, CN_FAULT_REPEAT, NS + n + i);
	assert_int_equal(reports, 0);
	assert_int_equal(cn_sched_peers(s, NS + n + 5, pi, 4), 1);
	assert_true(pi[0].score >= CN_SCHED_BAN_SCORE);
	/* another peer, one fault per half-life: stays low */
	for (unsigned int i = 0; i < 3 * n; i++)
		assert_int_equal(cn_sched_fault(s, 6, NULL, CN_FAULT_UNANNOUNCED,
						NS + (uint64_t)i * CN_SCHED_DECAY_S * NS),
				 0);
	cn_sched_free(s);
}

static struct sockaddr_storage addr_of(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	}
	return ss;
}

/* An address's score outlives its connections: a requester that
 * reconnects after each few faults (its connection's own score never near
 * the threshold) is reported once its address's sum gets there, whatever
 * its port, as an IPv4-mapped address, or hopping within its IPv6 /64;
 * after the report the address starts again from 0; another address and
 * another /64 are not charged; a flood of new addresses replaces the
 * lowest scores, not the abuser's. */
static void test_score_address(void **state)
{
	struct sockaddr_storage a = addr_of("192.0.2.7", 1000), b = addr_of("192.0.2.8", 1000),
				am = addr_of("::ffff:192.0.2.7", 4000), x;
	unsigned int n = CN_SCHED_BAN_SCORE / cn_fault_cost[CN_FAULT_UNANNOUNCED];
	struct cn_sched *s;
	uint64_t conn = 100;
	char ip[64];

	(void)state;
	assert_int_equal(cn_sched_new(&s, NULL, NULL), 0);
	/* 2 faults per connection, n/2 connections, new ports: the last fault
	 * is the report, none before it */
	for (unsigned int i = 0; i < n; i++) {
		x = addr_of("192.0.2.7", (uint16_t)(2000 + i / 2));
		if (i % 2)
			x = am; /* the same host as IPv4-mapped */
		assert_int_equal(cn_sched_fault(s, conn + i / 2, &x, CN_FAULT_UNANNOUNCED, NS + i),
				 i == n - 1);
	}
	/* b was not charged for a's faults */
	assert_int_equal(cn_sched_fault(s, 900, &b, CN_FAULT_UNANNOUNCED, 2 * NS), 0);
	/* a starts again from 0: n - 1 more faults on fresh connections pass */
	for (unsigned int i = 0; i < n - 1; i++)
		assert_int_equal(cn_sched_fault(s, 200 + i, &a, CN_FAULT_UNANNOUNCED, 2 * NS), 0);
	assert_int_equal(cn_sched_fault(s, 300, &a, CN_FAULT_UNANNOUNCED, 2 * NS), 1);

	/* IPv6: hosts of one /64 are one requester; another /64 is not */
	for (unsigned int i = 0; i < n - 1; i++) {
		snprintf(ip, sizeof(ip), "2001:db8:1:2::%x", i + 1);
		x = addr_of(ip, 443);
		assert_int_equal(cn_sched_fault(s, 400 + i, &x, CN_FAULT_UNANNOUNCED, 3 * NS), 0);
	}
	x = addr_of("2001:db8:1:3::1", 443);
	assert_int_equal(cn_sched_fault(s, 500, &x, CN_FAULT_UNANNOUNCED, 3 * NS), 0);
	/* CN_SCHED_BLAME new addresses with one fault each: each replaces
	 * another low one, the /64 at n - 1 faults stays */
	for (unsigned int i = 0; i < CN_SCHED_BLAME; i++) {
		snprintf(ip, sizeof(ip), "198.51.%u.%u", i / 250, i % 250 + 1);
		x = addr_of(ip, 1);
		assert_int_equal(cn_sched_fault(s, 600 + i, &x, CN_FAULT_REPEAT, 3 * NS), 0);
	}
	x = addr_of("2001:db8:1:2::ffff", 443);
	assert_int_equal(cn_sched_fault(s, 1000, &x, CN_FAULT_UNANNOUNCED, 3 * NS), 1);
	/* decay: the same faults spread over half-lives never add up */
	for (unsigned int i = 0; i < 3 * n; i++)
		assert_int_equal(cn_sched_fault(s, 2000 + i, &b, CN_FAULT_UNANNOUNCED,
						5 * NS + (uint64_t)i * CN_SCHED_DECAY_S * NS),
				 0);
	cn_sched_free(s);
}

/* Repeats: a chunk asked for again right after it was served is a repeat;
 * asked again after a request timeout (an honest retry, its answer lost or
 * late), it is not: a lossy path never adds up to a ban. */
static void test_repeat(void **state)
{
	struct cn_sched *s;
	const uint64_t ms = NS / 1000;

	(void)state;
	assert_int_equal(cn_sched_new(&s, NULL, NULL), 0);
	assert_int_equal(cn_sched_seen(s, 7, 100, NS), 0);	    /* first serve */
	assert_int_equal(cn_sched_seen(s, 7, 100, NS + 200 * ms), 1); /* at once again */
	assert_int_equal(cn_sched_seen(s, 8, 100, NS + 200 * ms), 0); /* another peer */
	assert_int_equal(cn_sched_seen(s, 7, 101, NS + 300 * ms), 0); /* another chunk */
	/* retried after a 5 s timeout, and again after another: never scored */
	assert_int_equal(cn_sched_seen(s, 7, 100, NS + 5300 * ms), 0);
	assert_int_equal(cn_sched_seen(s, 7, 100, NS + 10400 * ms), 0);
	/* but a quick repeat of that retry is */
	assert_int_equal(cn_sched_seen(s, 7, 100, NS + 10500 * ms), 1);
	/* a chunk pushed out of the 32 remembered is new again */
	for (uint64_t k = 0; k < CN_SCHED_SEEN; k++)
		assert_int_equal(cn_sched_seen(s, 9, 1000 + k, NS + k), 0);
	assert_int_equal(cn_sched_seen(s, 9, 1000 + CN_SCHED_SEEN, NS + 40), 0);
	assert_int_equal(cn_sched_seen(s, 9, 1000, NS + 41), 0);
	cn_sched_free(s);
}

/* Fetch streams counted per peer: opened and closed change the count, a
 * query (delta 0) only reads it (it once took one off, so a peer's count
 * never passed 1 and the per-peer stream limit never applied); a query
 * of a peer never seen makes no entry. When the table is full, a new
 * peer takes an idle entry with no stream open before one with streams,
 * whatever their ages: a peer cannot lose its count (and its score) to
 * others' arrivals while its streams stay open. */
static void test_streams(void **state)
{
	struct cn_sched_opts o = {.max_peers = 2};
	struct cn_sched_peer_info pi[4];
	struct cn_sched *s;

	(void)state;
	assert_int_equal(cn_sched_new(&s, &o, NULL), 0);
	for (unsigned int i = 1; i <= 3; i++)
		assert_int_equal(cn_sched_streams(s, 1, 1, NS), i);
	for (int i = 0; i < 5; i++)
		assert_int_equal(cn_sched_streams(s, 1, 0, NS), 3);
	assert_int_equal(cn_sched_streams(s, 1, -1, NS), 2);
	assert_int_equal(cn_sched_peers(s, NS, pi, 4), 1);
	assert_int_equal(pi[0].streams, 2);
	assert_int_equal(cn_sched_streams(s, 9, 0, NS), 0); /* unknown: no entry */
	assert_int_equal(cn_sched_streams(s, 9, -1, NS), 0);
	assert_int_equal(cn_sched_peers(s, NS, pi, 4), 1);
	/* peer 2 (no stream, newer) is taken for peer 3, not peer 1 */
	assert_int_equal(cn_sched_fault(s, 2, NULL, CN_FAULT_REPEAT, 2 * NS), 0);
	assert_int_equal(cn_sched_fault(s, 3, NULL, CN_FAULT_REPEAT, 3 * NS), 0);
	assert_int_equal(cn_sched_peers(s, 3 * NS, pi, 4), 2);
	assert_true((pi[0].peer == 1 && pi[1].peer == 3) || (pi[0].peer == 3 && pi[1].peer == 1));
	assert_int_equal(cn_sched_streams(s, 1, 0, 3 * NS), 2);
	/* both entries with a stream open: a newcomer gets none (refused),
	 * and neither live count is lost to it */
	assert_int_equal(cn_sched_streams(s, 3, 1, 3 * NS), 1);
	assert_int_equal(cn_sched_streams(s, 4, 1, 4 * NS), 0);
	assert_int_equal(cn_sched_fault(s, 4, NULL, CN_FAULT_REPEAT, 4 * NS), 0);
	assert_int_equal(cn_sched_streams(s, 1, 0, 4 * NS), 2);
	assert_int_equal(cn_sched_streams(s, 3, 0, 4 * NS), 1);
	/* peer 3's stream closed: its entry is free for peer 4 */
	assert_int_equal(cn_sched_streams(s, 3, -1, 4 * NS), 0);
	assert_int_equal(cn_sched_streams(s, 4, 1, 5 * NS), 1);
	assert_int_equal(cn_sched_streams(s, 1, 0, 5 * NS), 2);
	/* closed down to none, never below */
	assert_int_equal(cn_sched_streams(s, 1, -1, 3 * NS), 1);
	assert_int_equal(cn_sched_streams(s, 1, -1, 3 * NS), 0);
	assert_int_equal(cn_sched_streams(s, 1, -1, 3 * NS), 0);
	cn_sched_free(s);
}

/* A peer idle for CN_SCHED_IDLE_FREE_S gives its request queue back
 * (the soak's heap grew by one queue per connection ever served); one
 * with requests queued, or active lately, keeps it; a new request after
 * the trim is queued and served as before. */
static void test_trim_idle_queues(void **state)
{
	struct cn_sched *s;
	struct cn_sched_item it;
	uint64_t wake, now = NS, idle = CN_SCHED_IDLE_FREE_S * NS;

	(void)state;
	assert_int_equal(cn_sched_new(&s, NULL, NULL), 0);
	push(s, 1, CN_CLASS_WAN, 0, Q, now);
	push(s, 2, CN_CLASS_WAN, 0, Q, now);
	assert_int_equal(cn_sched_next(s, now, &it, &wake), 1);
	assert_int_equal(it.r.conn, 1);
	/* peer 1 served and idle, peer 2 still has its request queued */
	assert_int_equal(cn_sched_trim(s, now + idle / 2, idle), 0);
	assert_int_equal(cn_sched_trim(s, now + idle, idle), 1);
	assert_int_equal(cn_sched_trim(s, now + 2 * idle, idle), 0);
	assert_int_equal(cn_sched_queued(s), 1);
	now += 2 * idle;
	push(s, 1, CN_CLASS_WAN, 7, Q, now);
	assert_int_equal(cn_sched_next(s, now, &it, &wake), 1);
	assert_int_equal(it.r.conn, 2);
	assert_int_equal(cn_sched_next(s, now, &it, &wake), 1);
	assert_int_equal(it.r.conn, 1);
	assert_int_equal(it.r.sid, 7);
	assert_int_equal(cn_sched_trim(s, now + idle, idle), 2);
	cn_sched_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_drr_order),
	    cmocka_unit_test(test_drr_bytes),
	    cmocka_unit_test(test_peer_cap),
	    cmocka_unit_test(test_global_cap),
	    cmocka_unit_test(test_capped_share_and_lan),
	    cmocka_unit_test(test_global_cap_two_workers),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_unpop),
	    cmocka_unit_test(test_defer),
	    cmocka_unit_test(test_score),
	    cmocka_unit_test(test_repeat),
	    cmocka_unit_test(test_trim_idle_queues),
	    cmocka_unit_test(test_streams),
	    cmocka_unit_test(test_score_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
