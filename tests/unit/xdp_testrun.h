/* SPDX-License-Identifier: MIT */
/*
 * Test-only fixture shared by the BPF test-run tests (test_xdp_prog.c,
 * test_xdp_policy.c): the program loaded through the loader (skeleton, no
 * attach) on a fixed clock, pinned to one CPU, and run() that runs one
 * frame and reads its verdict back from the counters: every run must add
 * exactly one to rx and one to exactly one verdict counter, and the XDP
 * action must match that counter. The base frames are a QUIC short header
 * to the QUIC port and a DHT ping to the DHT port, from 192.0.2.1 /
 * 2001:db8::1 port 40000. Needs root: without it setup() leaves no fixture
 * and NEED_ROOT() skips. Static functions in a header, like xdp_testpkt.h:
 * each test is one binary.
 */
#ifndef WEFT_XDP_TESTRUN_H
#define WEFT_XDP_TESTRUN_H

#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "weft/xdp.h"
#include "weft/xdp_abi.h"
#include "xdp_testpkt.h"

#define T0 1000000000000ULL /* test clock origin: 1000 s */
#define MS 1000000ULL

struct fx {
	struct wxdp *x;
	struct wxdp_config cfg;
	uint8_t buf[TPKT_MAX];
};

/* The unvalidated budgets are per CPU: keep every test run on one. */
static inline void pin_cpu(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static inline int setup_n(void **state, uint32_t buckets)
{
	struct wxdp_opts o = { .no_attach = 1, .buckets = buckets };
	struct fx *f;
	int err;

	if (geteuid() != 0)
		return 0; /* each test skips */
	pin_cpu();
	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	err = wxdp_new(&f->x, &o);
	assert_int_equal(err, 0);
	assert_int_equal(wxdp_config_get(f->x, &f->cfg), 0);
	/* Fixed clock for determinism. */
	f->cfg.now_override_ns = T0;
	assert_int_equal(wxdp_config_set(f->x, &f->cfg), 0);
	*state = f;
	return 0;
}

static inline int setup(void **state)
{
	return setup_n(state, 0);
}

static inline int teardown(void **state)
{
	struct fx *f = *state;

	if (f) {
		wxdp_free(f->x);
		free(f);
	}
	return 0;
}

#define NEED_ROOT()                                                   \
	do {                                                          \
		if (geteuid() != 0) {                                 \
			print_message("SKIP: BPF test-run needs root\n"); \
			skip();                                       \
		}                                                     \
	} while (0)

static inline void set_cfg(struct fx *f)
{
	assert_int_equal(wxdp_config_set(f->x, &f->cfg), 0);
}

static inline void set_now(struct fx *f, uint64_t now)
{
	f->cfg.now_override_ns = now;
	set_cfg(f);
}

/* Run one frame; returns the verdict counter that moved. len < ETH_HLEN is
 * refused by the kernel's test-run (-EINVAL), returned as -1. */
static inline int run(struct fx *f, const uint8_t *pkt, size_t len)
{
	uint64_t before[WXDP_STAT__MAX], after[WXDP_STAT__MAX];
	uint8_t out[TPKT_MAX];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = (__u32)len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);
	int err, verdict = -1;

	assert_int_equal(wxdp_stats_read(f->x, before), 0);
	err = bpf_prog_test_run_opts(wxdp_fd(f->x, WXDP_FD_PROG), &opts);
	if (err) {
		assert_int_equal(err, -EINVAL);
		assert_true(len < 14);
		return -1;
	}
	assert_int_equal(wxdp_stats_read(f->x, after), 0);
	assert_int_equal(after[WXDP_STAT_RX], before[WXDP_STAT_RX] + 1);
	for (int i = 1; i < WXDP_STAT__MAX; i++) {
		if (after[i] == before[i])
			continue;
		assert_int_equal(after[i], before[i] + 1);
		assert_int_equal(verdict, -1); /* only one verdict counter */
		verdict = i;
	}
	assert_int_not_equal(verdict, -1);
	switch (verdict) {
	case WXDP_STAT_PASS_NOT_WEFT:
	case WXDP_STAT_PASS_FRAGMENT:
	case WXDP_STAT_PASS_NO_SOCKET:
		assert_int_equal(opts.retval, XDP_PASS);
		break;
	case WXDP_STAT_REDIRECT:
		fail_msg("redirect without a socket");
		break;
	default:
		assert_int_equal(opts.retval, XDP_DROP);
	}
	return verdict;
}

static uint8_t quic_short[64] = { 0x41, 1, 2, 3, 4, 5, 6, 7 };
static uint8_t quic_initial[1200] = { 0xc0, 0, 0, 0, 1 };
static const uint8_t dht_ping[] = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";

static inline void quic_pkt(struct tpkt *t, int v6)
{
	memset(t, 0, sizeof(*t));
	if (v6)
		tpkt_v6(t, 1, 1);
	else
		tpkt_v4(t, 1);
	t->sport = 40000;
	t->dport = WXDP_DEFAULT_QUIC_PORT;
	t->payload = quic_short;
	t->plen = sizeof(quic_short);
}

static inline void dht_pkt(struct tpkt *t, int v6)
{
	quic_pkt(t, v6);
	t->dport = WXDP_DEFAULT_DHT_PORT;
	t->payload = dht_ping;
	t->plen = sizeof(dht_ping) - 1;
}

static inline int run_t(struct fx *f, struct tpkt *t)
{
	size_t len = tpkt_build(f->buf, t);

	return run(f, f->buf, len);
}

#endif
