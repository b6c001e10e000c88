// SPDX-License-Identifier: MIT
/*
 * The automatic upload cap (userspace/content/upauto.c) on a virtual
 * clock, against a fluid model of a seed's upload:
 *   - a shared link with no cap (or a cap at or above it) is shared by
 *     the connections' weights (their congestion windows: unequal, as
 *     ngtcp2 0.12's Cubic leaves them), each at most its own path's rate;
 *   - under a cap below the link the seed's scheduler decides: max-min
 *     fair shares of the cap, each at most its own path's rate.
 * With round trips reported (the *_rtt runs), a queue of 20 ms stands on a
 * path held to its own rate, and on every path while the shared link is
 * the limit; none under a cap below the link.
 * Checked: on a shared link it finds a cap between 0.9x and 1x the link
 * and the shares become fair; with downloaders each limited by their own
 * path (no shared bottleneck) a trial is given up, backs off and costs
 * them almost nothing; the cap follows the link down and back up; one
 * downloader never starts a trial; more peers than it follows, and a
 * counter that goes back, are taken without harm.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "content/upauto.h"

#define NS 1000000000ull
#define MAXP 16

struct model {
	unsigned int n;
	double link;	    /* bytes/s the shared link carries */
	double w[MAXP];	    /* share weights without a seed-side cap */
	double path[MAXP];  /* each peer's own path, bytes/s; 0 = none */
	int on[MAXP];	    /* downloading */
	double sent[MAXP];  /* bytes so far */
	int rtt;	    /* report round trips: a queue of QUEUE_MS where one is */
	int sat[MAXP];	    /* the last second: at its own path's rate */
	int link_bound;	    /* the last second: the shared link was the limit */
	int fake_q;	    /* every peer reports a queue (ACKs held back on purpose) */
};

#define BASE_NS 200000ull    /* the paths' round trip without a queue */
#define QUEUE_NS 20000000ull /* a full queue, at the link or a path */

/* Water-filling of budget over the peers that are on: by weight (equal
 * weights when eq), none above its path. */
static void fill(struct model *m, double budget, int eq, double *x)
{
	int *sat = m->sat;

	memset(m->sat, 0, sizeof(m->sat));

	for (unsigned int i = 0; i < m->n; i++)
		x[i] = 0;
	for (;;) {
		double sw = 0;
		int changed = 0;

		for (unsigned int i = 0; i < m->n; i++)
			if (m->on[i] && !sat[i])
				sw += eq ? 1 : m->w[i];
		if (sw <= 0 || budget <= 0)
			return;
		for (unsigned int i = 0; i < m->n; i++) {
			double share;

			if (!m->on[i] || sat[i])
				continue;
			share = budget * (eq ? 1 : m->w[i]) / sw;
			if (m->path[i] > 0 && share >= m->path[i]) {
				x[i] = m->path[i];
				budget -= m->path[i];
				sat[i] = 1;
				changed = 1;
				break;
			}
		}
		if (changed)
			continue;
		for (unsigned int i = 0; i < m->n; i++)
			if (m->on[i] && !sat[i])
				x[i] = budget * (eq ? 1 : m->w[i]) / sw;
		return;
	}
}

/* One second under cap: the rates into x, the bytes into m->sent. */
static void second(struct model *m, uint64_t cap, double *x)
{
	double want = 0;

	for (unsigned int i = 0; i < m->n; i++)
		if (m->on[i])
			want += m->path[i] > 0 ? m->path[i] : 1e18;
	if (cap && (double)cap < m->link)
		fill(m, (double)cap, 1, x);
	else
		fill(m, m->link, 0, x);
	/* the link is the limit when not capped below it and the peers
	 * would take more than it carries */
	m->link_bound = !(cap && (double)cap < m->link) && want > m->link;
	for (unsigned int i = 0; i < m->n; i++)
		m->sent[i] += x[i];
}

/* Run from second t0 to t1 (exclusive), sampling each second; the bytes
 * each peer got over [from, t1) into got (may be NULL); the largest cap
 * into *maxcap. Returns the last cap. */
static uint64_t run(struct cn_upauto *a, struct model *m, unsigned int t0, unsigned int t1,
		    uint64_t cap, unsigned int from, double *got, uint64_t *maxcap)
{
	double x[MAXP];

	for (unsigned int t = t0; t < t1; t++) {
		struct cn_upauto_peer p[MAXP];

		memset(p, 0, sizeof(p)); /* round trips unknown */
		second(m, cap, x);
		if (got && t >= from)
			for (unsigned int i = 0; i < m->n; i++)
				got[i] += x[i];
		for (unsigned int i = 0; i < m->n; i++) {
			p[i].peer = 100 + i;
			p[i].sent = (uint64_t)m->sent[i];
			p[i].at_ns = (uint64_t)(t + 1) * NS;
			if (m->rtt) {
				/* a queue at its own path when held to it; at the
				 * link when the link is the limit */
				int q = m->sat[i] || (m->link_bound && m->on[i]) || m->fake_q;

				p[i].min_rtt_ns = BASE_NS;
				p[i].srtt_ns = BASE_NS + (q ? QUEUE_NS : 0);
			}
		}
		cap = cn_upauto_sample(a, (uint64_t)(t + 1) * NS, p, m->n);
		if (maxcap && cap > *maxcap)
			*maxcap = cap;
		if (getenv("UPAUTO_TRACE")) { /* a look at the dynamics */
			struct cn_upauto_status st;

			cn_upauto_status(a, &st);
			fprintf(stderr, "t=%u link=%.1f %s cap=%.1f total=%.1f jain=%u/%u q=%.1f ms\n",
				t + 1, m->link / 1e6, cn_upauto_state_name(st.state),
				(double)cap / 1e6, (double)st.total / 1e6, st.jain, st.jain_long,
				(double)st.qdelay_ns / 1e6);
		}
	}
	return cap;
}

static unsigned int jain_of(const double *got, unsigned int n)
{
	uint64_t x[MAXP];

	for (unsigned int i = 0; i < n; i++)
		x[i] = (uint64_t)got[i];
	return cn_upauto_jain(x, n);
}

static double sum_of(const double *got, unsigned int n)
{
	double s = 0;

	for (unsigned int i = 0; i < n; i++)
		s += got[i];
	return s;
}

/* The round trips reported or not: each model test runs both ways
 * (BOTH in main: initial state &RTT or NULL). */
static int RTT = 1;

static int rtt_of(void **state)
{
	return state && *state ? *(int *)*state : 0;
}

static void shared_link(struct model *m, int rtt)
{
	static const double w[8] = {1, 1, 1, 1, 1, 1, 0.5, 0.3};

	memset(m, 0, sizeof(*m));
	m->rtt = rtt;
	m->n = 8;
	m->link = 25e6; /* 200 Mbit/s */
	for (unsigned int i = 0; i < 8; i++) {
		m->w[i] = w[i];
		m->on[i] = 1;
	}
}

/* Seven downloaders on 100 Mbit/s paths and one on 4.8 Mbit/s, the seed's
 * link far faster: the paths' sum (returned) is what they can take. */
static double path_limited(struct model *m, int rtt)
{
	memset(m, 0, sizeof(*m));
	m->rtt = rtt;
	m->n = 8;
	m->link = 1.25e9;
	for (unsigned int i = 0; i < 8; i++) {
		m->w[i] = 1;
		m->on[i] = 1;
		m->path[i] = i == 7 ? 0.6e6 : 12.5e6;
	}
	return 7 * 12.5e6 + 0.6e6;
}

static void test_jain(void **state)
{
	const uint64_t eq[4] = {5, 5, 5, 5}, one[4] = {8, 0, 0, 0}, z[2] = {0, 0};

	(void)state;
	assert_int_equal(cn_upauto_jain(eq, 4), 1000);
	assert_int_equal(cn_upauto_jain(one, 4), 250);
	assert_int_equal(cn_upauto_jain(z, 2), 1000);
	assert_int_equal(cn_upauto_jain(eq, 1), 1000);
}

/* A shared link: unfair without a cap (Jain 0.91); the cap is found, kept,
 * stays between 0.9x and 1x the link, and the shares are fair. */
static void test_shared_link(void **state)
{
	struct cn_upauto *a;
	struct cn_upauto_status st;
	struct model m;
	double got[MAXP] = {0}, x[MAXP];
	uint64_t cap, maxcap = 0;

	shared_link(&m, rtt_of(state));
	fill(&m, m.link, 0, x);
	assert_true(jain_of(x, 8) < 920);
	assert_int_equal(cn_upauto_new(&a), 0);
	cap = run(a, &m, 0, 12, 0, 0, NULL, NULL);
	cn_upauto_status(a, &st);
	assert_int_equal(st.state, CN_UPAUTO_HOLD);
	assert_int_equal(st.trials, 1);
	assert_int_equal(st.kept, 1);
	assert_true(cap >= 0.9 * m.link && cap <= 1.3 * m.link); /* probes go past it */
	/* two minutes on: probes past the link are taken back, free tests
	 * every minute go back to a trial that is kept */
	cap = run(a, &m, 12, 132, cap, 12, got, &maxcap);
	cn_upauto_status(a, &st);
	assert_true(st.probes >= 3);
	assert_true(st.kept >= 2);
	assert_int_equal(st.given_up, 0);
	assert_true(maxcap < 1.3 * m.link);
	assert_true(sum_of(got, 8) >= 0.9 * m.link * 120);
	assert_true(jain_of(got, 8) >= 950);
	/* and within each 8 s window, as bench/serve.sh measures */
	for (unsigned int t = 132; t < 252; t += 8) {
		double g[MAXP] = {0};

		cap = run(a, &m, t, t + 8, cap, t, g, NULL);
		assert_true(sum_of(g, 8) >= 0.85 * m.link * 8);
	}
	cn_upauto_free(a);
}

/* Each downloader limited by its own path, the seed's link far faster:
 * the shares are as fair as the paths allow (Jain 0.89 here) and a cap
 * cannot improve them; the trial is given up and backs off, and the
 * downloaders lose less than 1% over five minutes. */
static void test_path_limited(void **state)
{
	struct cn_upauto *a;
	struct cn_upauto_status st;
	struct model m;
	double got[MAXP] = {0}, want;

	want = path_limited(&m, rtt_of(state));
	assert_int_equal(cn_upauto_new(&a), 0);
	run(a, &m, 0, 300, 0, 0, got, NULL);
	cn_upauto_status(a, &st);
	assert_true(st.trials >= 2 && st.trials <= 5);
	assert_int_equal(st.kept, 0);
	assert_int_equal(st.given_up, st.trials);
	assert_true(st.backoff_until_ns > 300 * NS);
	assert_true(sum_of(got, 8) >= 0.99 * want * 300);
	cn_upauto_free(a);
}

/* The same downloaders, whose paths' queues never seem to drain (bursts
 * of each answer fill a shaper's small bucket: every path reports a
 * queue whatever the cap): each trial is judged after its drain's
 * CN_UPAUTO_DRAIN_MAX_S all the same, given up, and costs them little. */
static void test_path_limited_bursty(void **state)
{
	struct cn_upauto *a;
	struct cn_upauto_status st;
	struct model m;
	double got[MAXP] = {0}, want;

	(void)state;
	want = path_limited(&m, 1);
	m.fake_q = 1;
	assert_int_equal(cn_upauto_new(&a), 0);
	run(a, &m, 0, 300, 0, 0, got, NULL);
	cn_upauto_status(a, &st);
	assert_true(st.trials >= 2 && st.trials <= 5);
	assert_int_equal(st.kept, 0);
	assert_int_equal(st.given_up, st.trials);
	assert_true(sum_of(got, 8) >= 0.97 * want * 300);
	cn_upauto_free(a);
}

/* The link halves for half a minute (another service took it): the cap
 * follows it down within 5 s, and back up by probes once it is free. */
static void test_follows_link(void **state)
{
	struct cn_upauto *a;
	struct cn_upauto_status st;
	struct model m;
	double got[MAXP] = {0};
	uint64_t cap, maxcap = 0;

	shared_link(&m, rtt_of(state));
	assert_int_equal(cn_upauto_new(&a), 0);
	cap = run(a, &m, 0, 20, 0, 0, NULL, NULL);
	m.link = 12.5e6;
	cap = run(a, &m, 20, 25, cap, 0, NULL, NULL);
	cn_upauto_status(a, &st);
	assert_int_equal(st.state, CN_UPAUTO_HOLD);
	assert_true(cap >= 0.85 * m.link && cap < m.link); /* down within 5 s */
	cap = run(a, &m, 25, 55, cap, 25, got, NULL);
	cn_upauto_status(a, &st);
	assert_int_equal(st.state, CN_UPAUTO_HOLD);
	assert_true(sum_of(got, 8) >= 0.9 * m.link * 30);
	assert_true(jain_of(got, 8) >= 950);
	m.link = 25e6;
	cap = run(a, &m, 55, 85, cap, 0, NULL, &maxcap);
	cn_upauto_status(a, &st);
	assert_true(maxcap >= 0.9 * m.link); /* back up by probes */
	assert_true(cap >= 0.85 * m.link && cap <= 1.3 * m.link);
	cn_upauto_free(a);
}

/* The first seconds of a download hand the scheduler more than the link
 * carries (the downloaders' pipelines fill), so the first cap is taken
 * from a total above the link and changes nothing: still unfair under it,
 * it comes down to the share of what is sent and holds there. */
static void test_first_cap_high(void **state)
{
	struct cn_upauto *a;
	struct cn_upauto_status st;
	struct model m;
	double got[MAXP] = {0}, x[MAXP];
	struct cn_upauto_peer p[MAXP];
	uint64_t cap = 0;

	memset(p, 0, sizeof(p));
	shared_link(&m, rtt_of(state));
	assert_int_equal(cn_upauto_new(&a), 0);
	for (unsigned int t = 0; t < 3; t++) {
		second(&m, cap, x);
		for (unsigned int i = 0; i < m.n; i++) {
			m.sent[i] += 0.4 * x[i]; /* handed over ahead of the link */
			p[i].peer = 100 + i;
			p[i].sent = (uint64_t)m.sent[i];
			p[i].at_ns = (uint64_t)(t + 1) * NS;
		}
		cap = cn_upauto_sample(a, (uint64_t)(t + 1) * NS, p, m.n);
	}
	cn_upauto_status(a, &st);
	assert_int_equal(st.state, CN_UPAUTO_TRIAL);
	assert_true(cap > m.link); /* above the link: no effect yet */
	cap = run(a, &m, 3, 20, cap, 0, NULL, NULL);
	cn_upauto_status(a, &st);
	assert_int_equal(st.state, CN_UPAUTO_HOLD);
	assert_true(cap >= 0.9 * m.link && cap <= 1.3 * m.link); /* probes go past it */
	run(a, &m, 20, 50, cap, 20, got, NULL);
	assert_true(jain_of(got, 8) >= 950);
	cn_upauto_free(a);
}

/* The downloads are starting: every rate grows 40% a second from a fifth
 * of the link. No trial while the total still grows (a cap taken from it
 * would be far below the link); once it is steady, one, at 0.9-1x. */
static void test_ramp(void **state)
{
	struct cn_upauto *a;
	struct cn_upauto_status st;
	struct model m;
	double link, got[MAXP] = {0};
	uint64_t cap = 0;

	shared_link(&m, rtt_of(state));
	link = m.link;
	assert_int_equal(cn_upauto_new(&a), 0);
	m.link = link / 5;
	for (unsigned int t = 0; t < 5; t++) {
		cap = run(a, &m, t, t + 1, cap, 0, NULL, NULL);
		assert_int_equal(cap, 0);
		m.link *= 1.4;
	}
	m.link = link;
	cap = run(a, &m, 5, 20, cap, 0, NULL, NULL);
	cn_upauto_status(a, &st);
	assert_int_equal(st.state, CN_UPAUTO_HOLD);
	assert_true(cap >= 0.9 * link && cap <= 1.3 * link); /* probes go past it */
	run(a, &m, 20, 50, cap, 20, got, NULL);
	assert_true(sum_of(got, 8) >= 0.9 * link * 30);
	assert_true(jain_of(got, 8) >= 950);
	cn_upauto_free(a);
}

/* Each worker publishes its copy of its peers once a second on its own
 * tick, so a sample may see one worker's copy twice: the same reading
 * again is not a restart (the peer stays counted at its rate). */
static void test_stale_copy(void **state)
{
	struct cn_upauto *a;
	struct cn_upauto_status st;
	struct cn_upauto_peer p[8];

	(void)state;
	memset(p, 0, sizeof(p));
	assert_int_equal(cn_upauto_new(&a), 0);
	for (unsigned int t = 1; t <= 10; t++) {
		for (unsigned int i = 0; i < 8; i++) {
			/* "worker 1" (odd peers) copies only every other second */
			unsigned int at = (i & 1) ? (t & ~1u) : t;

			p[i].peer = 100 + i;
			p[i].sent = (uint64_t)at * 3000000;
			p[i].at_ns = (uint64_t)at * NS;
		}
		cn_upauto_sample(a, t * NS, p, 8);
		cn_upauto_status(a, &st);
		if (t >= 4) {
			assert_int_equal(st.served, 8);
			assert_true(st.total >= 23000000 && st.total <= 25000000);
			assert_int_equal(st.jain, 1000);
		}
	}
	cn_upauto_free(a);
}

/* Round trips are the peers' to shape: downloaders that hold back their
 * ACKs so that a queue seems to stand whatever the cap walk a held cap
 * down a few steps, never below CN_UPAUTO_FLOOR % of the cap kept: then it is given up
 * (and no trial again for the backoff). */
static void test_fake_queue(void **state)
{
	struct cn_upauto *a;
	struct cn_upauto_status st;
	struct model m;
	uint64_t cap, kept;

	shared_link(&m, 1);
	(void)state;
	assert_int_equal(cn_upauto_new(&a), 0);
	cap = run(a, &m, 0, 10, 0, 0, NULL, NULL);
	cn_upauto_status(a, &st);
	assert_int_equal(st.state, CN_UPAUTO_HOLD);
	kept = cap;
	m.fake_q = 1;
	for (unsigned int t = 10; t < 70; t++) {
		cap = run(a, &m, t, t + 1, cap, 0, NULL, NULL);
		assert_true(cap == 0 || cap >= kept / 100 * CN_UPAUTO_FLOOR);
	}
	cn_upauto_status(a, &st);
	assert_true(st.given_up >= 1);
	assert_int_equal(st.kept, 1);
	cn_upauto_free(a);
}

/* One downloader (or none): nothing to be fair about, never a trial. */
static void test_one_peer(void **state)
{
	struct cn_upauto *a;
	struct cn_upauto_status st;
	struct model m;

	shared_link(&m, rtt_of(state));
	for (unsigned int i = 1; i < 8; i++)
		m.on[i] = 0;
	assert_int_equal(cn_upauto_new(&a), 0);
	assert_int_equal(run(a, &m, 0, 60, 0, 0, NULL, NULL), 0);
	m.on[0] = 0;
	assert_int_equal(run(a, &m, 60, 70, 0, 0, NULL, NULL), 0);
	cn_upauto_status(a, &st);
	assert_int_equal(st.trials, 0);
	assert_int_equal(cn_upauto_sample(a, 71 * NS, NULL, 0), 0);
	cn_upauto_free(a);
}

/* Downloaders leave while the cap holds: with fewer than two being served
 * the cap goes; reset forgets the backoff too. */
static void test_peers_leave(void **state)
{
	struct cn_upauto *a;
	struct cn_upauto_status st;
	struct model m;
	uint64_t cap;

	shared_link(&m, rtt_of(state));
	assert_int_equal(cn_upauto_new(&a), 0);
	cap = run(a, &m, 0, 10, 0, 0, NULL, NULL);
	assert_true(cap > 0);
	for (unsigned int i = 1; i < 8; i++)
		m.on[i] = 0;
	cap = run(a, &m, 10, 14, cap, 0, NULL, NULL);
	assert_int_equal(cap, 0);
	cn_upauto_status(a, &st);
	assert_int_equal(st.state, CN_UPAUTO_FREE);
	cn_upauto_reset(a);
	cn_upauto_status(a, &st);
	assert_int_equal(st.trials, 0);
	assert_int_equal(st.backoff_until_ns, 0);
	assert_int_equal(st.jain, 1000);
	assert_int_equal(st.jain_long, 1000);
	assert_int_equal(st.cap, 0);
	cn_upauto_free(a);
}

/* More peers than it follows (the rest left out, no allocation), the same
 * peer twice in a sample, a counter that goes back (a handle reused) and
 * one that leaps past any link's rate: no rate is made up from them. */
static void test_bounds(void **state)
{
	enum { N = CN_UPAUTO_PEERS + 500 };
	static struct cn_upauto_peer p[N];
	struct cn_upauto *a;
	struct cn_upauto_status st;

	(void)state;
	assert_int_equal(cn_upauto_new(&a), 0);
	for (unsigned int t = 1; t <= 4; t++) {
		for (unsigned int i = 0; i < N; i++) {
			p[i].peer = i;
			p[i].sent = (uint64_t)t * 100000 * (i % 7 + 1);
			p[i].at_ns = t * NS;
		}
		cn_upauto_sample(a, t * NS, p, N);
		cn_upauto_status(a, &st);
		assert_true(st.served <= CN_UPAUTO_PEERS);
	}
	/* peer 1 twice (the second reading ignored), peer 2's counter back */
	p[0].peer = 1;
	p[0].sent = 1ull << 60;
	p[1].peer = 1;
	p[1].sent = 500000;
	p[1].at_ns = p[0].at_ns = 5 * NS;
	p[2].peer = 2;
	p[2].sent = 0;
	p[2].at_ns = 5 * NS;
	cn_upauto_sample(a, 5 * NS, p, 3);
	cn_upauto_status(a, &st);
	assert_true(st.total < (1ull << 40));
	assert_true(st.served <= 1);
	cn_upauto_free(a);
}

int main(void)
{
	/* each model test twice: round trips unknown, and reported */
#define BOTH(f) {#f, f, NULL, NULL, NULL}, {#f "_rtt", f, NULL, NULL, &RTT}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jain),
	    BOTH(test_shared_link),
	    BOTH(test_path_limited),
	    cmocka_unit_test(test_path_limited_bursty),
	    BOTH(test_follows_link),
	    BOTH(test_first_cap_high),
	    BOTH(test_ramp),
	    cmocka_unit_test(test_stale_copy),
	    cmocka_unit_test(test_fake_queue),
	    BOTH(test_one_peer),
	    BOTH(test_peers_leave),
	    cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
