// SPDX-License-Identifier: MIT
/*
 * io_uring backend on loopback (no root needed): UDP GSO segment sizes
 * (a burst to one destination arrives as the right number and sizes of
 * datagrams, in order), GSO grouping rules, GRO receive split by gso_size
 * between two engines, oversized datagrams sent in place, the receive
 * ring growing from its first buffers, the pre-filter hook, and the
 * per-datagram TTL / hop limit (engine_send_ttl).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/ctl.h"
#include "weft/engine.h"
#include "weft/util.h"
#include "testutil.h"

#define P_ENG 47100
#define P_RX4 47101
#define P_RX6 47102
#define P_GRO 47103

static struct engine *mk_shrink(uint16_t port, int gro, engine_filter_fn filter, void *farg,
			        unsigned int shrink_ms)
{
	struct engine_opts o;
	struct engine *eng = NULL;
	uint16_t ports[1] = { port };

	engine_opts_default(&o);
	o.ports = ports;
	o.nports = 1;
	o.uring_gro = gro;
	o.uring_shrink_ms = shrink_ms;
	o.filter = filter;
	o.filter_arg = farg;
	assert_int_equal(engine_new(&eng, &o), 0);
	return eng;
}

static struct engine *mk(uint16_t port, int gro, engine_filter_fn filter, void *farg)
{
	return mk_shrink(port, gro, filter, farg, 0);
}

static int rx_sock(int family, uint16_t port)
{
	struct sockaddr_storage ss;
	struct io_addr a;
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), len, sz = 4 << 20;

	assert_true(fd >= 0);
	assert_int_equal(io_addr_parse(&a, family == AF_INET ? "127.0.0.1" : "::1", port), 0);
	len = io_addr_to_sockaddr(&a, family, &ss);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, (socklen_t)len), 0);
	return fd;
}

struct burst {
	struct io_addr dst[2];
	const uint32_t *sizes;
	const uint8_t *which; /* destination index per datagram, NULL = all dst[0] */
	unsigned int n;
};

static uint8_t pattern[65536];

static void send_burst(struct engine_worker *w, void *arg)
{
	struct burst *b = arg;
	unsigned int i;

	for (i = 0; i < b->n; i++) {
		/* First byte carries the index so the order is checked too. */
		uint8_t *p = pattern + i;
		p[0] = (uint8_t)i;
		assert_int_equal(engine_send(w, &b->dst[b->which ? b->which[i] : 0], NULL, p, b->sizes[i]), 0);
	}
	engine_flush(w);
}

static void expect(int fd, const uint32_t *sizes, unsigned int n)
{
	static uint8_t buf[70000];
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		assert_int_equal(poll(&p, 1, 2000), 1);
		r = recv(fd, buf, sizeof(buf), 0);
		assert_int_equal(r, sizes[i]);
		assert_int_equal(buf[0], (uint8_t)i);
	}
	{
		struct pollfd p = { .fd = fd, .events = POLLIN };

		assert_int_equal(poll(&p, 1, 50), 0); /* nothing extra */
	}
}

static uint64_t gso_sends(struct engine *eng)
{
	struct engine_stats s;

	assert_int_equal(engine_stats_get(eng, 0, &s), 0);
	return s.io.tx_gso_sends;
}

static void test_gso_sizes(void **state)
{
	static const uint32_t burst[11] = { 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 300 };
	static const uint32_t mixed[4] = { 1000, 1000, 500, 1000 };
	static const uint32_t alt[4] = { 800, 800, 800, 800 };
	static const uint8_t alt_which[4] = { 0, 1, 0, 1 };
	static const uint32_t alt0[2] = { 800, 800 };
	struct engine *eng = mk(P_ENG, 1, NULL, NULL);
	int fd4 = rx_sock(AF_INET, P_RX4), fd6 = rx_sock(AF_INET6, P_RX6), fam;
	struct burst b;
	uint64_t g;

	assert_int_equal(engine_start(eng), 0);
	for (fam = 0; fam < 2; fam++) {
		int fd = fam ? fd6 : fd4;

		memset(&b, 0, sizeof(b));
		assert_int_equal(io_addr_parse(&b.dst[0], fam ? "::1" : "127.0.0.1", fam ? P_RX6 : P_RX4), 0);
		assert_int_equal(io_addr_parse(&b.dst[1], fam ? "::1" : "127.0.0.1", fam ? P_RX4 : P_RX6), 0);
		/* 10 x 1000 + 300: one GSO send, 11 datagrams of the right sizes */
		g = gso_sends(eng);
		b.sizes = burst;
		b.n = 11;
		assert_int_equal(engine_call_sync(eng, 0, send_burst, &b, 2000), 0);
		expect(fd, burst, 11);
		assert_int_equal(gso_sends(eng) - g, 1);
		/* 1000 1000 500 | 1000: a short segment ends the train */
		g = gso_sends(eng);
		b.sizes = mixed;
		b.n = 4;
		assert_int_equal(engine_call_sync(eng, 0, send_burst, &b, 2000), 0);
		expect(fd, mixed, 4);
		assert_int_equal(gso_sends(eng) - g, 1);
	}
	/* Alternating destinations (the second an unbound port): nothing to
	 * fold, and the order towards the first is kept. */
	memset(&b, 0, sizeof(b));
	assert_int_equal(io_addr_parse(&b.dst[0], "127.0.0.1", P_RX4), 0);
	assert_int_equal(io_addr_parse(&b.dst[1], "127.0.0.1", P_RX6 + 10), 0);
	g = gso_sends(eng);
	b.sizes = alt;
	b.which = alt_which;
	b.n = 4;
	assert_int_equal(engine_call_sync(eng, 0, send_burst, &b, 2000), 0);
	{
		/* indices 0 and 2 reach fd4 */
		static uint8_t buf[2048];
		int i;

		for (i = 0; i < 2; i++) {
			struct pollfd p = { .fd = fd4, .events = POLLIN };

			assert_int_equal(poll(&p, 1, 2000), 1);
			assert_int_equal(recv(fd4, buf, sizeof(buf), 0), alt0[i]);
			assert_int_equal(buf[0], i * 2);
		}
	}
	assert_int_equal(gso_sends(eng), g);
	engine_free(eng);
	close(fd4);
	close(fd6);
}

/* engine_send_burst: one staged datagram, then 10 x 1000 + 300 in place
 * from one buffer. Arrival order: the staged one first, then the burst's
 * 11 in order, as one GSO send. */
static void send_inplace(struct engine_worker *w, void *arg)
{
	struct burst *b = arg;
	static uint8_t buf[10300];
	int i;

	pattern[0] = 0;
	assert_int_equal(engine_send(w, &b->dst[0], NULL, pattern, 700), 0);
	for (i = 0; i < 11; i++)
		buf[i * 1000] = (uint8_t)(i + 1);
	assert_int_equal(engine_send_burst(w, &b->dst[0], NULL, buf, sizeof(buf), 1000), 11);
	assert_int_equal(engine_send_burst(w, &b->dst[0], NULL, buf, 10, 0), -EINVAL);
	assert_int_equal(engine_send_burst(w, &b->dst[0], NULL, buf, 10, 65508), -EINVAL);
}

static void test_send_burst_in_place(void **state)
{
	static const uint32_t sizes[12] = { 700,  1000, 1000, 1000, 1000, 1000,
					    1000, 1000, 1000, 1000, 1000, 300 };
	struct engine *eng = mk(P_ENG, 1, NULL, NULL);
	int fd = rx_sock(AF_INET, P_RX4);
	struct burst b;
	uint64_t g;

	assert_int_equal(engine_start(eng), 0);
	memset(&b, 0, sizeof(b));
	assert_int_equal(io_addr_parse(&b.dst[0], "127.0.0.1", P_RX4), 0);
	g = gso_sends(eng);
	assert_int_equal(engine_call_sync(eng, 0, send_inplace, &b, 2000), 0);
	expect(fd, sizes, 12);
	assert_int_equal(gso_sends(eng) - g, 1);
	engine_free(eng);
	close(fd);
}

static void test_big_datagram_in_place(void **state)
{
	static const uint32_t sizes[3] = { 100, 60000, 100 };
	struct engine *eng = mk(P_ENG, 1, NULL, NULL);
	int fd = rx_sock(AF_INET, P_RX4);
	struct burst b;

	assert_int_equal(engine_start(eng), 0);
	memset(&b, 0, sizeof(b));
	assert_int_equal(io_addr_parse(&b.dst[0], "127.0.0.1", P_RX4), 0);
	b.sizes = sizes;
	b.n = 3;
	assert_int_equal(engine_call_sync(eng, 0, send_burst, &b, 2000), 0);
	expect(fd, sizes, 3); /* order kept around the in-place send */
	engine_free(eng);
	close(fd);
}

/* ---- GRO: engine to engine over loopback ---- */

struct rec {
	uint32_t len[64];
	uint8_t first[64];
	unsigned int n;
	struct io_addr dst;
};

static void record(struct engine_worker *w, const struct engine_pkt *pkt, void *arg)
{
	struct rec *r = arg;

	if (r->n < 64) {
		r->len[r->n] = pkt->len;
		r->first[r->n] = pkt->data[0];
		r->dst = pkt->dst;
	}
	__atomic_store_n(&r->n, r->n + 1, __ATOMIC_RELEASE);
}

static void barrier(struct engine_worker *w, void *arg)
{
}

static void test_gro_split(void **state)
{
	static uint32_t sizes[20];
	struct engine *tx = mk(P_ENG, 1, NULL, NULL), *rx = mk(P_GRO, 1, NULL, NULL);
	struct engine_stats s;
	struct rec r;
	struct burst b;
	unsigned int i;

	memset(&r, 0, sizeof(r));
	assert_int_equal(engine_register(rx, P_GRO, record, &r), 0);
	assert_int_equal(engine_start(rx), 0);
	assert_int_equal(engine_start(tx), 0);
	for (i = 0; i < 20; i++)
		sizes[i] = i == 19 ? 700 : 1200;
	memset(&b, 0, sizeof(b));
	assert_int_equal(io_addr_parse(&b.dst[0], "127.0.0.1", P_GRO), 0);
	b.sizes = sizes;
	b.n = 20;
	assert_int_equal(engine_call_sync(tx, 0, send_burst, &b, 2000), 0);
	for (i = 0; i < 200 && __atomic_load_n(&r.n, __ATOMIC_ACQUIRE) < 20; i++)
		usleep(5000);
	assert_int_equal(engine_call_sync(rx, 0, barrier, NULL, 2000), 0);
	assert_int_equal(r.n, 20);
	for (i = 0; i < 20; i++) {
		assert_int_equal(r.len[i], sizes[i]);
		assert_int_equal(r.first[i], i);
	}
	/* the local address came from IP_PKTINFO */
	assert_int_equal(r.dst.family, AF_INET);
	assert_int_equal(r.dst.addr[0], 127);
	assert_int_equal(r.dst.port, P_GRO);
	assert_int_equal(engine_stats_get(rx, 0, &s), 0);
	print_message("GRO: %llu coalesced buffer(s) split into %u datagrams\n",
		      (unsigned long long)s.io.rx_gro_bufs, r.n);
	assert_true(s.io.rx_gro_bufs >= 1);
	assert_int_equal(s.io.rx_pkts, 20);
	engine_free(tx);
	engine_free(rx);
}

/* ---- receive buffers provided lazily (uring.c grow_bufs) ---- */

struct seq_rec {
	unsigned int n, bad;
};

static void seq_record(struct engine_worker *w, const struct engine_pkt *pkt, void *arg)
{
	struct seq_rec *r = arg;
	uint32_t idx;

	(void)w;
	if (pkt->len != 100)
		r->bad++;
	memcpy(&idx, pkt->data, sizeof(idx));
	if (idx != r->n)
		r->bad++;
	__atomic_store_n(&r->n, r->n + 1, __ATOMIC_RELEASE);
}

/* The ring starts with 4 GRO buffers and grows towards its limit: bursts of
 * 128 separate datagrams (each takes a whole buffer) from one socket all
 * arrive, whole and in order, while the ring is short of buffers at first
 * (a receive ending with -ENOBUFS is re-armed; the datagrams wait in the
 * socket's buffer). Each burst is awaited before the next, with a 10 s
 * deadline, so no timing decides the outcome. */
static void test_rx_ring_grows(void **state)
{
	struct engine *rx = mk(P_GRO + 1, 1, NULL, NULL);
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(P_GRO + 1),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct engine_stats s;
	struct seq_rec r = { 0 };
	uint8_t pkt[100] = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(engine_register(rx, P_GRO + 1, seq_record, &r), 0);
	assert_int_equal(engine_start(rx), 0);
	/* 4 buffers provided (and populated) at start, the gauge says so */
	assert_int_equal(engine_stats_get(rx, 0, &s), 0);
	assert_int_equal(s.io.rx_bufs, 4);
	for (uint32_t i = 0; i < 1024;) {
		for (uint32_t end = i + 128; i < end; i++) {
			memcpy(pkt, &i, sizeof(i));
			assert_int_equal(sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&dst,
						sizeof(dst)), (ssize_t)sizeof(pkt));
		}
		for (int t = 0; t < 2000 && __atomic_load_n(&r.n, __ATOMIC_ACQUIRE) < i; t++)
			usleep(5000);
		assert_int_equal(__atomic_load_n(&r.n, __ATOMIC_ACQUIRE), i);
	}
	assert_int_equal(engine_call_sync(rx, 0, barrier, NULL, 2000), 0);
	assert_int_equal(r.bad, 0);
	assert_int_equal(engine_stats_get(rx, 0, &s), 0);
	print_message("1024 datagrams in bursts of 128; receives that found the ring empty: %llu\n",
		      (unsigned long long)s.io.rx_ring_full);
	assert_int_equal(s.io.rx_pkts, 1024);
	/* grown by doubling, never past the ring's 256 */
	assert_true(s.io.rx_bufs > 4 && s.io.rx_bufs <= 256);
	assert_int_equal(s.io.rx_bufs & (s.io.rx_bufs - 1), 0);
	close(fd);
	engine_free(rx);
}

/* resident set of this process in KiB (/proc/self/status VmRSS) */
static long rss_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static uint64_t rx_bufs(struct engine *e)
{
	struct engine_stats s;

	assert_int_equal(engine_stats_get(e, 0, &s), 0);
	return s.io.rx_bufs;
}

/* send datagrams first..end-1 (the index in the first 4 bytes) as a burst,
 * or one at a time, each received before the next (gap: a trickle) */
struct hold {
	int in, go;
};

/* On the worker: wait (2 s at most) until the test says go. */
static void hold_fn(struct engine_worker *w, void *arg)
{
	struct hold *h = arg;

	(void)w;
	__atomic_store_n(&h->in, 1, __ATOMIC_RELEASE);
	for (int t = 0; t < 2000 && !__atomic_load_n(&h->go, __ATOMIC_ACQUIRE); t++)
		usleep(1000);
}

/* Returns once worker 0 is inside hold_fn. */
static void hold_worker(struct engine *eng, struct hold *h)
{
	h->in = h->go = 0;
	assert_int_equal(engine_call(eng, 0, hold_fn, h), 0);
	for (int t = 0; t < 20000 && !__atomic_load_n(&h->in, __ATOMIC_ACQUIRE); t++)
		usleep(100);
	assert_int_equal(__atomic_load_n(&h->in, __ATOMIC_ACQUIRE), 1);
}

static void send_seq_nowait(int fd, const struct sockaddr_in *dst, uint32_t first, uint32_t end)
{
	uint8_t pkt[100] = { 0 };

	for (uint32_t i = first; i < end; i++) {
		memcpy(pkt, &i, sizeof(i));
		assert_int_equal(sendto(fd, pkt, sizeof(pkt), 0, (const struct sockaddr *)dst,
					sizeof(*dst)), (ssize_t)sizeof(pkt));
	}
}

/* 128 datagrams from first sent while worker 0 is held, then taken. */
static void burst_held(struct engine *eng, int fd, const struct sockaddr_in *dst,
		       struct seq_rec *r, struct hold *h, uint32_t first)
{
	hold_worker(eng, h);
	send_seq_nowait(fd, dst, first, first + 128);
	__atomic_store_n(&h->go, 1, __ATOMIC_RELEASE);
	for (int t = 0; t < 20000 && __atomic_load_n(&r->n, __ATOMIC_ACQUIRE) < first + 128; t++)
		usleep(100);
	assert_int_equal(__atomic_load_n(&r->n, __ATOMIC_ACQUIRE), first + 128);
}

static void send_seq(int fd, const struct sockaddr_in *dst, struct seq_rec *r, uint32_t first,
		     uint32_t end, int gap)
{
	for (uint32_t i = first; i < end; i++) {
		send_seq_nowait(fd, dst, i, i + 1);
		for (int t = 0; gap && t < 20000 && __atomic_load_n(&r->n, __ATOMIC_ACQUIRE) <= i; t++)
			usleep(100);
	}
	for (int t = 0; t < 20000 && __atomic_load_n(&r->n, __ATOMIC_ACQUIRE) < end; t++)
		usleep(100);
	assert_int_equal(__atomic_load_n(&r->n, __ATOMIC_ACQUIRE), end);
}

/* Buffers grown for bursts go back in a quiet window (150 ms here, 10 s by
 * default): a trickle (one datagram taken per rx call) cycles the ring,
 * the upper half retires as it comes back, halving down to the 4 of the
 * start, and the resident set falls with it; a burst in the middle of a shrink puts the retired buffers back;
 * every datagram arrives whole and in order throughout. */
static void test_rx_ring_shrinks(void **state)
{
	struct engine *rx = mk_shrink(P_GRO + 2, 1, NULL, NULL, 150);
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(P_GRO + 2),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct seq_rec r = { 0 };
	struct hold h;
	uint64_t grown, mid = 0, b;
	long rss_grown;
	uint32_t n = 0;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(engine_register(rx, P_GRO + 2, seq_record, &r), 0);
	assert_int_equal(engine_start(rx), 0);
	for (int k = 0; k < 8; k++, n += 128)
		send_seq(fd, &dst, &r, n, n + 128, 0);
	grown = rx_bufs(rx);
	assert_true(grown >= 16);
	rss_grown = rss_kib();
	/* trickle until a shrink is under way (the gauge between two powers);
	 * bounded by time: a count was too few on a fast host */
	for (uint64_t end = util_now_ns() + 30000000000ULL; !mid && util_now_ns() < end; n++) {
		send_seq(fd, &dst, &r, n, n + 1, 1);
		b = rx_bufs(rx);
		if (b & (b - 1))
			mid = b;
	}
	assert_true(mid > 0 && mid < grown);
	/* a burst: the retired buffers go back, nothing is lost. The worker
	 * is held while it lands, so it meets the burst all at once (on a
	 * busy machine a worker woken per datagram kept up with the sender,
	 * took them a few at a time and went on shrinking). */
	burst_held(rx, fd, &dst, &r, &h, n);
	n += 128;
	b = rx_bufs(rx);
	print_message("after the burst: %llu buffers\n", (unsigned long long)b);
	assert_true(b > mid && (b & (b - 1)) == 0);
	/* a long trickle: back to the 4 of the start. Bounded by time, not
	 * by a count: each halving waits for a quiet window (150 ms), and on
	 * a fast host 40,000 datagrams took less than the five windows from
	 * 128 (seen: back to 8 after 58,793). */
	for (uint64_t end = util_now_ns() + 30000000000ULL; rx_bufs(rx) > 4 && util_now_ns() < end;
	     n++)
		send_seq(fd, &dst, &r, n, n + 1, 1);
	print_message("grown to %llu, shrinking at %llu, back to %llu after %u datagrams\n",
		      (unsigned long long)grown, (unsigned long long)mid,
		      (unsigned long long)rx_bufs(rx), n);
	assert_int_equal(rx_bufs(rx), 4);
	/* the pages went with the buffers: at least half of the 64 KiB of
	 * each buffer given back left the resident set */
	print_message("resident: %ld KiB grown, %ld KiB after\n", rss_grown, rss_kib());
	assert_true(rss_kib() + (long)(grown - 4) * 32 <= rss_grown);
	assert_int_equal(engine_call_sync(rx, 0, barrier, NULL, 2000), 0);
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.n, n);
	/* and it grows again (a burst met at once, as above) */
	burst_held(rx, fd, &dst, &r, &h, n);
	assert_true(rx_bufs(rx) > 4);
	close(fd);
	engine_free(rx);
}

/* ---- pre-filter ---- */

static int drop_odd(void *arg, const struct engine_pkt *pkt, uint64_t now)
{
	(*(unsigned int *)arg)++;
	return pkt->data[0] & 1;
}

static void test_filter(void **state)
{
	static uint32_t sizes[10] = { 50, 50, 50, 50, 50, 50, 50, 50, 50, 50 };
	unsigned int calls = 0;
	struct engine *tx = mk(P_ENG, 0, NULL, NULL), *rx = mk(P_GRO, 0, drop_odd, &calls);
	struct engine_stats s;
	struct rec r;
	struct burst b;
	unsigned int i;

	memset(&r, 0, sizeof(r));
	assert_int_equal(engine_register(rx, P_GRO, record, &r), 0);
	assert_int_equal(engine_start(rx), 0);
	assert_int_equal(engine_register(rx, P_GRO, record, &r), -EBUSY);
	assert_int_equal(engine_start(tx), 0);
	memset(&b, 0, sizeof(b));
	assert_int_equal(io_addr_parse(&b.dst[0], "::1", P_GRO), 0);
	b.sizes = sizes;
	b.n = 10;
	assert_int_equal(engine_call_sync(tx, 0, send_burst, &b, 2000), 0);
	for (i = 0; i < 200; i++) {
		assert_int_equal(engine_stats_get(rx, 0, &s), 0);
		if (s.io.rx_pkts == 10)
			break;
		usleep(5000);
	}
	assert_int_equal(engine_call_sync(rx, 0, barrier, NULL, 2000), 0);
	assert_int_equal(engine_stats_get(rx, 0, &s), 0);
	assert_int_equal(calls, 10);
	assert_int_equal(s.drop_filter, 5);
	assert_int_equal(r.n, 5);
	for (i = 0; i < 5; i++)
		assert_int_equal(r.first[i] & 1, 0);
	assert_int_equal(r.dst.family, AF_INET6);
	engine_free(tx);
	engine_free(rx);
}

static void test_stats_outputs(void **state)
{
	struct engine *eng = mk(P_ENG, 1, NULL, NULL);
	json_t *j, *w;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	j = engine_stats_json(eng);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "mode")), "uring");
	w = json_object_get(j, "workers");
	assert_int_equal(json_array_size(w), 1);
	assert_non_null(json_object_get(json_array_get(w, 0), "rx_pkts"));
	assert_non_null(json_object_get(json_object_get(j, "total"), "tx_gso_sends"));
	json_decref(j);
	f = open_memstream(&buf, &len);
	engine_metrics(eng, f);
	fclose(f);
	assert_non_null(strstr(buf, "weft_io_rx_pkts_total{mode=\"uring\",worker=\"0\"} 0\n"));
	assert_non_null(strstr(buf, "# TYPE weft_io_tx_pkts_total counter\n"));
	free(buf);
	{
		struct ctl_resp resp;

		memset(&resp, 0, sizeof(resp));
		engine_ctl_stats(eng, NULL, &resp);
		assert_int_equal(resp.status, 200);
		assert_non_null(json_object_get(resp.json, "workers"));
		json_decref(resp.json);
	}
	engine_free(eng);
}

/* ---- source address with a one-address bind ---- */

struct src_send {
	struct io_addr dst, src;
};

static void send_from(struct engine_worker *w, void *arg)
{
	struct src_send *s = arg;

	assert_int_equal(engine_send(w, &s->dst, &s->src, "x", 1), 0);
	engine_flush(w);
}

/* Bound to 127.0.0.1 the backend leaves IP_PKTINFO out when the source
 * asked for is that address; any other source still goes in the control
 * message and is the one the datagram leaves from. */
static void test_src_bound(void **state)
{
	struct engine_opts o;
	struct engine *eng = NULL;
	uint16_t ports[1] = { P_ENG };
	int fd = rx_sock(AF_INET, P_RX4);
	const char *srcs[2] = { "127.0.0.1", "127.0.0.2" };

	engine_opts_default(&o);
	o.ports = ports;
	o.nports = 1;
	o.bind_addr = "127.0.0.1";
	assert_int_equal(engine_new(&eng, &o), 0);
	assert_int_equal(engine_start(eng), 0);
	for (int i = 0; i < 2; i++) {
		struct src_send s;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		char buf[8], ip[INET_ADDRSTRLEN];

		assert_int_equal(io_addr_parse(&s.dst, "127.0.0.1", P_RX4), 0);
		assert_int_equal(io_addr_parse(&s.src, srcs[i], P_ENG), 0);
		assert_int_equal(engine_call_sync(eng, 0, send_from, &s, 2000), 0);
		assert_int_equal(poll(&p, 1, 2000), 1);
		assert_int_equal(recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl), 1);
		assert_non_null(inet_ntop(AF_INET, &from.sin_addr, ip, sizeof(ip)));
		assert_string_equal(ip, srcs[i]);
		assert_int_equal(ntohs(from.sin_port), P_ENG);
	}
	engine_free(eng);
	close(fd);
}

/* Per-datagram TTL / hop limit: three datagrams of one size to one
 * destination (what GSO would group), TTL 3, default, 200, to IPv4 and
 * IPv6 receivers, one of them with a source (IP_PKTINFO beside IP_TTL). */
struct ttl_send {
	struct io_addr dst, src;
	int with_src;
};

static const uint8_t ttls[3] = { 3, 0, 200 };

static void send_ttls(struct engine_worker *w, void *arg)
{
	struct ttl_send *s = arg;

	for (int i = 0; i < 3; i++)
		assert_int_equal(engine_send_ttl(w, &s->dst, s->with_src ? &s->src : NULL, "ttl!", 4,
						 ttls[i]),
				 0);
	engine_flush(w);
}

static int recv_ttl(int fd, int family)
{
	union {
		struct cmsghdr c;
		uint8_t b[128];
	} ctrl;
	char buf[16];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctrl,
			     .msg_controllen = sizeof(ctrl) };
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct cmsghdr *c;
	int v = -1;

	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(recvmsg(fd, &mh, 0), 4);
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if ((family == AF_INET && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
		    (family == AF_INET6 && c->cmsg_level == IPPROTO_IPV6 &&
		     c->cmsg_type == IPV6_HOPLIMIT))
			memcpy(&v, CMSG_DATA(c), sizeof(v));
	return v;
}

static void test_ttl(void **state)
{
	struct engine *eng = mk(P_ENG, 1, NULL, NULL);
	int on = 1;

	assert_int_equal(engine_start(eng), 0);
	for (int k = 0; k < 3; k++) {
		int family = k == 1 ? AF_INET6 : AF_INET, fd = rx_sock(family, k == 1 ? P_RX6 : P_RX4);
		struct ttl_send s = { .with_src = k == 2 };
		int def;

		if (family == AF_INET)
			assert_int_equal(setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &on, sizeof(on)), 0);
		else
			assert_int_equal(
			    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof(on)), 0);
		assert_int_equal(io_addr_parse(&s.dst, family == AF_INET ? "127.0.0.1" : "::1",
					       family == AF_INET ? P_RX4 : P_RX6),
				 0);
		assert_int_equal(io_addr_parse(&s.src, "127.0.0.2", P_ENG), 0);
		assert_int_equal(engine_call_sync(eng, 0, send_ttls, &s, 2000), 0);
		assert_int_equal(recv_ttl(fd, family), 3);
		def = recv_ttl(fd, family);
		assert_true(def > 3 && def < 200); /* the system's default (64) */
		assert_int_equal(recv_ttl(fd, family), 200);
		close(fd);
	}
	engine_free(eng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gso_sizes),
		cmocka_unit_test(test_big_datagram_in_place),
		cmocka_unit_test(test_send_burst_in_place),
		cmocka_unit_test(test_gro_split),
		cmocka_unit_test(test_rx_ring_grows),
		cmocka_unit_test(test_rx_ring_shrinks),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_stats_outputs),
		cmocka_unit_test(test_src_bound),
		cmocka_unit_test(test_ttl),
	};

	return cmocka_run_group_tests_name("io_uring", tests, NULL, NULL);
}
