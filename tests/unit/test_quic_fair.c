// SPDX-License-Identifier: MIT
/*
 * Fair windows (userspace/quic/fair.h, docs/QUIC.md "Fair windows"): the
 * core's rules on their own (when a rate is set, which reports may set
 * it, the window a rate gives, two endpoints sharing a group), then a
 * server sending to several clients through one shaped uplink on the
 * virtual clock (quic_sim.h's links): the clients' shares equal, a
 * distant client served at the rate of the near ones, a client behind a
 * slow link of its own not holding the others back.
 */
#include <errno.h>

#include "quic_world.h"

#include "quic/fair.h"

#define MS 1000000ULL

static struct quic_fair_sample smp(uint64_t cwnd, uint64_t srtt_ms, uint64_t min_ms)
{
	struct quic_fair_sample s = {
		.cwnd = cwnd, .inflight = cwnd, .srtt = srtt_ms * MS, .min_rtt = min_ms * MS};

	return s;
}

/* Report each connection once per epoch for n epochs (the first report
 * of a connection only records its window). */
static void epochs(struct quic_fair_ep *fe, struct quic_fair_conn *fc, const struct quic_fair_sample *s,
		   int nconn, int n, uint64_t *now)
{
	int e, i;

	for (e = 0; e < n; e++) {
		*now += QUIC_FAIR_EPOCH_NS;
		for (i = 0; i < nconn; i++)
			quic_fair_report(fe, &fc[i], &s[i], *now);
	}
	*now += QUIC_FAIR_EPOCH_NS;
	quic_fair_roll(fe, *now);
}

/* A fresh endpoint state and fresh connections. */
static void fresh(struct quic_fair_ep *fe, struct quic_fair *g, struct quic_fair_conn *fc, int n)
{
	quic_fair_ep_init(fe, g, 0);
	memset(fc, 0, n * sizeof(*fc));
}

static void test_core_rules(void **state)
{
	struct quic_fair *g;
	struct quic_fair_ep fe;
	struct quic_fair_conn fc[4];
	struct quic_fair_sample s[4];
	uint64_t now = 1000 * MS;

	(void)state;
	assert_int_equal(quic_fair_new(&g, 0), -EINVAL);
	assert_int_equal(quic_fair_new(&g, QUIC_FAIR_MAX_SLOTS + 1), -EINVAL);
	assert_int_equal(quic_fair_new(&g, 1), 0);
	assert_int_equal(quic_fair_slots(g), 1);

	/* Off without a group: no rate, no window. */
	fresh(&fe, NULL, fc, 4);
	s[0] = smp(100000, 30, 1);
	s[1] = smp(50000, 30, 1);
	epochs(&fe, fc, s, 2, 3, &now);
	assert_int_equal(fe.limit, 0);
	assert_true(quic_fair_window(&fe, 30 * MS) == UINT64_MAX);

	/* Two backlogged connections on a standing queue (29 ms): the rate
	 * is the smaller one's, 50000 bytes / 30 ms; each window that rate
	 * times its own round trip, never below the floor. */
	fresh(&fe, g, fc, 4);
	epochs(&fe, fc, s, 2, 3, &now);
	assert_true(fe.limit >= 1666666 && fe.limit <= 1666667);
	assert_true(quic_fair_window(&fe, 30 * MS) >= 49999 && quic_fair_window(&fe, 30 * MS) <= 50001);
	assert_true(quic_fair_window(&fe, 120 * MS) >= 199999 &&
		    quic_fair_window(&fe, 120 * MS) <= 200001); /* four times the round trip */
	assert_int_equal(quic_fair_window(&fe, 5 * MS), QUIC_FAIR_FLOOR);
	assert_true(quic_fair_window(&fe, 0) == UINT64_MAX);

	/* One connection alone: nothing to share, no rate. */
	fresh(&fe, g, fc, 4);
	epochs(&fe, fc, s, 1, 3, &now);
	assert_int_equal(fe.limit, 0);

	/* No standing queue (srtt within 2 ms of the smallest): no rate. */
	fresh(&fe, g, fc, 4);
	s[0] = smp(100000, 3, 1);
	s[1] = smp(50000, 3, 1);
	epochs(&fe, fc, s, 2, 3, &now);
	assert_int_equal(fe.limit, 0);

	/* Too little in flight: not counted. */
	fresh(&fe, g, fc, 4);
	s[0] = smp(100000, 30, 1);
	s[1] = smp(50000, 30, 1);
	s[1].inflight = QUIC_FAIR_MIN_INFLIGHT - 1;
	epochs(&fe, fc, s, 2, 3, &now);
	assert_int_equal(fe.limit, 0);

	/* A queue of its own further on (100 ms over its smallest, against
	 * 29 for the others): it does not set the rate; the two others do. */
	fresh(&fe, g, fc, 4);
	s[0] = smp(100000, 30, 1);
	s[1] = smp(90000, 30, 1);
	s[2] = smp(20000, 101, 1);
	epochs(&fe, fc, s, 3, 3, &now);
	assert_true(fe.limit >= 2999999 && fe.limit <= 3000001); /* 90000 / 30 ms */

	/* A window still growing by more than a quarter an epoch (slow
	 * start) does not set the rate until it stops. */
	fresh(&fe, g, fc, 4);
	s[0] = smp(100000, 30, 1);
	s[1] = smp(90000, 30, 1);
	s[2] = smp(20000, 30, 1);
	{
		int e;

		for (e = 0; e < 3; e++) {
			now += QUIC_FAIR_EPOCH_NS;
			quic_fair_report(&fe, &fc[0], &s[0], now);
			quic_fair_report(&fe, &fc[1], &s[1], now);
			quic_fair_report(&fe, &fc[2], &s[2], now);
			s[2].cwnd *= 2;
			s[2].inflight = s[2].cwnd;
		}
		now += QUIC_FAIR_EPOCH_NS;
		quic_fair_roll(&fe, now);
		assert_true(fe.limit >= 2999999 && fe.limit <= 3000001);
		s[2].cwnd = s[2].inflight = 60000; /* stopped growing */
		epochs(&fe, fc, s, 3, 2, &now);
		assert_true(fe.limit >= 1999999 && fe.limit <= 2000001); /* 60000 / 30 ms */
	}

	/* Once per epoch: a connection reporting many times counts once. */
	fresh(&fe, g, fc, 4);
	s[0] = smp(100000, 30, 1);
	epochs(&fe, fc, s, 1, 1, &now);
	now += QUIC_FAIR_EPOCH_NS;
	quic_fair_report(&fe, &fc[0], &s[0], now);
	quic_fair_report(&fe, &fc[0], &s[0], now + 1);
	assert_int_equal(fe.acc_n, 1);

	/* A timestamp a little older than the epoch's start (another entry
	 * point's) is within the epoch: nothing rolls. */
	{
		uint64_t ep0 = fe.epoch;

		quic_fair_roll(&fe, now - 1000);
		assert_int_equal(fe.epoch, ep0);
	}

	/* No reports for an epoch: the rate goes. */
	fresh(&fe, g, fc, 4);
	s[0] = smp(100000, 30, 1);
	s[1] = smp(50000, 30, 1);
	epochs(&fe, fc, s, 2, 3, &now);
	assert_true(fe.limit > 0);
	now += QUIC_FAIR_STALE_NS + QUIC_FAIR_EPOCH_NS;
	quic_fair_roll(&fe, now);
	assert_int_equal(fe.limit, 0);
	quic_fair_free(g);
}

/* n epochs of one report from each of two endpoints' connections, then
 * both endpoints close the last. */
static void both_epochs(struct quic_fair_ep *a, struct quic_fair_ep *b, struct quic_fair_conn *fa,
			struct quic_fair_conn *fb, const struct quic_fair_sample *sa,
			const struct quic_fair_sample *sb, int n, uint64_t *now)
{
	int e;

	for (e = 0; e < n; e++) {
		*now += QUIC_FAIR_EPOCH_NS;
		quic_fair_report(a, fa, sa, *now);
		quic_fair_report(b, fb, sb, *now + 1000);
	}
	*now += QUIC_FAIR_EPOCH_NS;
	quic_fair_roll(a, *now);
	quic_fair_roll(b, *now + 1000);
}

/* A group of two slots, an endpoint on each, one connection reporting to
 * each: a's window twice b's, both 30 ms round trips over 1 ms. */
struct two {
	struct quic_fair *g;
	struct quic_fair_ep a, b;
	struct quic_fair_conn fa, fb;
	struct quic_fair_sample sa, sb;
	uint64_t now;
};

static void two_init(struct two *t)
{
	memset(t, 0, sizeof(*t));
	assert_int_equal(quic_fair_new(&t->g, 2), 0);
	quic_fair_ep_init(&t->a, t->g, 0);
	quic_fair_ep_init(&t->b, t->g, 1);
	t->sa = smp(120000, 30, 1);
	t->sb = smp(60000, 30, 1);
	t->now = 1000 * MS;
}

static void two_epochs(struct two *t, int n)
{
	both_epochs(&t->a, &t->b, &t->fa, &t->fb, &t->sa, &t->sb, n, &t->now);
}

/* Two endpoints (two workers) share a group: one connection each is
 * enough for a rate, the smaller one, and both endpoints apply it; an
 * endpoint gone quiet is not read after QUIC_FAIR_STALE_NS. */
static void test_core_group(void **state)
{
	struct two t;
	int e;

	(void)state;
	two_init(&t);
	two_epochs(&t, 4);
	assert_true(t.a.limit >= 1999999 && t.a.limit <= 2000001); /* 60000 / 30 ms */
	assert_int_equal(t.a.limit, t.b.limit);
	/* Switched off (another thread): at the next epoch nothing is held
	 * and reports are not counted; on again, the rate is back. */
	assert_int_equal(quic_fair_on(t.g), 1);
	quic_fair_set_on(t.g, 0);
	assert_int_equal(quic_fair_on(t.g), 0);
	t.now += QUIC_FAIR_EPOCH_NS;
	quic_fair_roll(&t.a, t.now);
	assert_int_equal(t.a.limit, 0);
	quic_fair_report(&t.a, &t.fa, &t.sa, t.now + 1);
	assert_int_equal(t.a.acc_n, 0);
	quic_fair_set_on(t.g, 1);
	two_epochs(&t, 3);
	assert_true(t.a.limit >= 1999999 && t.a.limit <= 2000001);
	/* b goes quiet: a alone has one connection, so no rate. */
	for (e = 0; e < 5; e++) {
		t.now += QUIC_FAIR_EPOCH_NS;
		quic_fair_report(&t.a, &t.fa, &t.sa, t.now);
	}
	t.now += QUIC_FAIR_EPOCH_NS;
	quic_fair_roll(&t.a, t.now);
	assert_int_equal(t.a.limit, 0);
	quic_fair_free(t.g);
	quic_fair_free(NULL);
}

/* A node whose threads wait for CPUs holds nothing (quic_fair_set_cpu_wait):
 * any slot's figure at QUIC_FAIR_CPU_WAIT or more, while it is fresh;
 * below it, or once it is stale, the queue decides again. */
static void test_core_cpu_wait(void **state)
{
	struct two t;

	(void)state;
	two_init(&t);
	quic_fair_set_cpu_wait(t.g, 1, QUIC_FAIR_CPU_WAIT - 1, t.now);
	two_epochs(&t, 4);
	assert_true(t.a.limit >= 1999999 && t.a.limit <= 2000001); /* under: held */
	assert_int_equal(t.a.cpu_wait, QUIC_FAIR_CPU_WAIT - 1);
	assert_int_equal(t.a.cpu_bound, 0);
	/* b's worker waits: both stand down, though the queue stands */
	quic_fair_set_cpu_wait(t.g, 1, 5000, t.now); /* capped at 1000 */
	two_epochs(&t, 3);
	assert_int_equal(t.a.limit, 0);
	assert_int_equal(t.b.limit, 0);
	assert_int_equal(t.a.cpu_wait, 1000);
	assert_true(t.a.cpu_bound >= 2 && t.b.cpu_bound >= 2);
	/* its figure goes stale (no reading for QUIC_FAIR_CPU_STALE_NS): held */
	t.now += QUIC_FAIR_CPU_STALE_NS;
	two_epochs(&t, 3);
	assert_true(t.a.limit >= 1999999 && t.a.limit <= 2000001);
	assert_int_equal(t.a.cpu_wait, 0);
	/* a slot out of range, or no group: nothing */
	quic_fair_set_cpu_wait(t.g, 2, 1000, t.now);
	quic_fair_set_cpu_wait(NULL, 0, 1000, t.now);
	two_epochs(&t, 2);
	assert_true(t.a.limit >= 1999999 && t.a.limit <= 2000001);
	quic_fair_free(t.g);
}

/* ---- on the virtual network ---- */

struct fworld {
	struct world *w;
	int n; /* clients: nodes 1..n */
	struct quic_conn *sc[SIM_MAX_NODES]; /* the server's conn to client i */
	int64_t sid[SIM_MAX_NODES];
	uint64_t off[SIM_MAX_NODES]; /* bytes handed to QUIC */
};

/* Keep every client's stream full: the server is backlogged on each. */
static void fair_pump(void *arg)
{
	struct fworld *f = arg;
	uint8_t buf[16384];
	int i;

	for (i = 1; i <= f->n; i++) {
		struct quic_conn *c = f->sc[i];
		size_t j;
		ssize_t r;

		if (!c)
			continue;
		do {
			for (j = 0; j < sizeof(buf); j++)
				buf[j] = pat(f->off[i] + j);
			r = quic_stream_send(c, f->sid[i], buf, sizeof(buf), 0);
			assert_true(r >= 0);
			f->off[i] += (uint64_t)r;
		} while (r == (ssize_t)sizeof(buf));
	}
}

/* A server (node 0) with fair windows on or off, up_mbit Mbit/s of uplink
 * with a 30 ms queue, and n clients each 1 ms away (plus extra[i] ms),
 * down[i] Mbit/s of downlink when set. Each client is connected and sent
 * to without end; clients late..n join 2 s after the others (0: none
 * late), when the uplink's queue stands: ngtcp2 0.12's Cubic stops a
 * window at 2.89 x the delivery rate x the smallest RTT seen, which the
 * early ones saw on an empty queue and the late ones never did. */
static int fair_stop_conns(void *arg)
{
	return stop_conns(((struct fworld *)arg)->w);
}

static void fair_dial(struct fworld *f, int from, int to, const uint64_t *extra,
		      const uint64_t *down)
{
	struct quic_conn *cc;
	int i, k;

	for (i = from; i <= to; i++) {
		struct sim_node *cl = add_node(f->w, NULL);

		cl->extra_delay = extra ? extra[i] * MS : 0;
		if (down && down[i]) {
			cl->down_bps = down[i] * 1000000;
			cl->down_queue_ns = 200 * MS;
		}
		dial(f->w, cl, f->w->srv->pk, &cc);
	}
	f->w->want_conns = 2 * to;
	assert_int_equal(sim_run(&f->w->sim, fair_stop_conns, fair_pump, f, 10000 * MS), 1);
	/* The server's record k is the connection from the client whose
	 * key it carries. */
	for (k = 0; k < f->w->app[0].nrecs; k++)
		for (i = from; i <= to; i++)
			if (!memcmp(f->w->app[0].recs[k].peer, f->w->sim.nodes[i].pk, QUIC_KEY_LEN))
				f->sc[i] = f->w->app[0].recs[k].c;
	for (i = from; i <= to; i++) {
		assert_non_null(f->sc[i]);
		assert_int_equal(quic_stream_open(f->sc[i], 0, &f->sid[i]), 0);
	}
	f->n = to;
}

static struct fworld *fair_world(int on, int n, int late, uint64_t up_mbit, const uint64_t *extra,
				 const uint64_t *down, struct quic_fair **g)
{
	struct fworld *f = calloc(1, sizeof(*f));
	struct quic_ep_opts so;

	assert_non_null(f);
	memset(&so, 0, sizeof(so));
	*g = NULL;
	if (on) {
		assert_int_equal(quic_fair_new(g, 1), 0);
		so.fair = *g;
	}
	so.stream_sndbuf = 1 << 20;
	f->w = world_new(7, &so);
	f->w->sim.delay = 1 * MS;
	f->w->srv->up_bps = up_mbit * 1000000;
	f->w->srv->up_queue_ns = 30 * MS;
	fair_dial(f, 1, late ? late - 1 : n, extra, down);
	if (late) {
		assert_int_equal(sim_run(&f->w->sim, NULL, fair_pump, f, 2000 * MS), 0);
		fair_dial(f, late, n, extra, down);
	}
	return f;
}

static void fair_free(struct fworld *f, struct quic_fair *g)
{
	world_free(f->w);
	quic_fair_free(g);
	free(f);
}

/* Run warm_ms, then measure each client's bytes received over win_ms
 * (Mbit/s into mbit[1..n]); Jain's index across them. */
static double fair_measure(struct fworld *f, uint64_t warm_ms, uint64_t win_ms, double *mbit)
{
	uint64_t before[SIM_MAX_NODES];
	double sum = 0, sq = 0;
	int i;

	assert_int_equal(sim_run(&f->w->sim, NULL, fair_pump, f, warm_ms * MS), 0);
	for (i = 1; i <= f->n; i++)
		before[i] = f->w->app[i].recs[0].rx_off;
	assert_int_equal(sim_run(&f->w->sim, NULL, fair_pump, f, win_ms * MS), 0);
	for (i = 1; i <= f->n; i++) {
		assert_int_equal(f->w->app[i].recs[0].rx_bad, 0);
		mbit[i] = (double)(f->w->app[i].recs[0].rx_off - before[i]) * 8 / 1e3 / (double)win_ms;
		sum += mbit[i];
		sq += mbit[i] * mbit[i];
	}
	return sq > 0 ? sum * sum / (f->n * sq) : 0;
}

static void print_rates(const char *what, const struct fworld *f, const double *mbit, double jain)
{
	int i;

	print_message("%s: Jain %.3f, Mbit/s", what, jain);
	for (i = 1; i <= f->n; i++)
		print_message(" %.1f", mbit[i]);
	print_message("\n");
}

/* Eight clients behind one 40 Mbit/s uplink, four of them joining 2 s
 * late: the shares are equal (Jain >= 0.95), the uplink stays full
 * (>= 0.9x), and the rate was set and held windows back. */
static void test_shared_uplink(void **state)
{
	struct quic_fair *g;
	struct quic_ep_stats st;
	double mbit[SIM_MAX_NODES], jain, sum = 0;
	struct fworld *f;
	int i;

	(void)state;
	f = fair_world(1, 8, 5, 40, NULL, NULL, &g);
	jain = fair_measure(f, 3000, 4000, mbit);
	print_rates("eight clients", f, mbit, jain);
	quic_ep_get_stats(f->w->srv->ep, &st);
	for (i = 1; i <= 8; i++)
		sum += mbit[i];
	assert_true(jain >= 0.95);
	assert_true(sum >= 0.9 * 40);
	assert_true(st.fair_holds > 0);
	fair_free(f, g);
}

/* Four clients behind the 40 Mbit/s uplink, client 4 with extra delay
 * or a downlink of its own: their rates over win_ms after 4 s, and Jain's
 * index across them. */
static double four_clients(const char *what, const uint64_t *extra, const uint64_t *down,
			   uint64_t win_ms, double *mbit)
{
	struct quic_fair *g;
	struct fworld *f;
	double jain;

	f = fair_world(1, 4, 0, 40, extra, down, &g);
	jain = fair_measure(f, 4000, win_ms, mbit);
	print_rates(what, f, mbit, jain);
	fair_free(f, g);
	return jain;
}

/* Client 4 40 ms further away (an 82 ms round trip against 2): served at
 * the others' rate (rates, not windows, are equal). */
static void test_distant_client(void **state)
{
	const uint64_t extra[SIM_MAX_NODES] = {0, 0, 0, 0, 40};
	double mbit[SIM_MAX_NODES];

	(void)state;
	assert_true(four_clients("distant client 4", extra, NULL, 6000, mbit) >= 0.95);
	assert_true(mbit[4] >= 0.8 * (mbit[1] + mbit[2] + mbit[3]) / 3);
}

/* Client 4 behind a 2 Mbit/s link of its own: it gets what its link
 * carries and the other three share the rest equally, at least 0.85x of
 * it each: its small window does not set their rate. */
static void test_slow_client(void **state)
{
	const uint64_t down[SIM_MAX_NODES] = {0, 0, 0, 0, 2};
	double mbit[SIM_MAX_NODES];
	int i;

	(void)state;
	four_clients("slow client 4", NULL, down, 4000, mbit);
	assert_true(mbit[4] >= 1.5 && mbit[4] <= 2.1);
	for (i = 1; i <= 3; i++)
		assert_true(mbit[i] >= 0.85 * (40 - 2) / 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_core_rules),
		cmocka_unit_test(test_core_group),
		cmocka_unit_test(test_core_cpu_wait),
		cmocka_unit_test(test_shared_uplink),
		cmocka_unit_test(test_distant_client),
		cmocka_unit_test(test_slow_client),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
