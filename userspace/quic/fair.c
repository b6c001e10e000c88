// SPDX-License-Identifier: MIT
/*
 * Fair windows: the core (fair.h) and the group its endpoints share.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "quic/fair.h"

/* One endpoint's last epoch, as the others read it. Each field is its own
 * atomic: a reader may see two epochs mixed, which costs one epoch of a
 * slightly wrong rate, never a wrong memory access. */
struct fair_slot {
	_Atomic uint64_t at; /* when published (ns); 0: never */
	_Atomic uint64_t rate, sum, q, srtt;
	_Atomic uint32_t n;
	/* quic_fair_set_cpu_wait: its worker's wait for a CPU, and when */
	_Atomic uint32_t cpu_wait;
	_Atomic uint64_t cpu_at;
} __attribute__((aligned(64)));

struct quic_fair {
	_Atomic int on; /* quic_fair_set_on: off, no rate is set (any thread) */
	unsigned int nslots;
	struct fair_slot slot[];
};

int quic_fair_new(struct quic_fair **out, unsigned int nslots)
{
	struct quic_fair *g;
	unsigned int i;

	*out = NULL;
	if (!nslots || nslots > QUIC_FAIR_MAX_SLOTS)
		return -EINVAL;
	g = aligned_alloc(64, (sizeof(*g) + nslots * sizeof(g->slot[0]) + 63) & ~(size_t)63);
	if (!g)
		return -ENOMEM;
	atomic_init(&g->on, 1);
	g->nslots = nslots;
	for (i = 0; i < nslots; i++) {
		atomic_init(&g->slot[i].at, 0);
		atomic_init(&g->slot[i].rate, UINT64_MAX);
		atomic_init(&g->slot[i].sum, 0);
		atomic_init(&g->slot[i].q, 0);
		atomic_init(&g->slot[i].srtt, UINT64_MAX);
		atomic_init(&g->slot[i].n, 0);
		atomic_init(&g->slot[i].cpu_wait, 0);
		atomic_init(&g->slot[i].cpu_at, 0);
	}
	*out = g;
	return 0;
}

void quic_fair_free(struct quic_fair *g)
{
	free(g);
}

unsigned int quic_fair_slots(const struct quic_fair *g)
{
	return g ? g->nslots : 0;
}

void quic_fair_set_on(struct quic_fair *g, int on)
{
	if (g)
		atomic_store_explicit(&g->on, !!on, memory_order_relaxed);
}

int quic_fair_on(const struct quic_fair *g)
{
	return g && atomic_load_explicit(&g->on, memory_order_relaxed);
}

void quic_fair_set_cpu_wait(struct quic_fair *g, unsigned int slot, unsigned int permille,
			    uint64_t now)
{
	if (!g || slot >= g->nslots)
		return;
	atomic_store_explicit(&g->slot[slot].cpu_wait, permille > 1000 ? 1000 : permille,
			      memory_order_relaxed);
	atomic_store_explicit(&g->slot[slot].cpu_at, now ? now : 1, memory_order_release);
}

/* The largest wait for a CPU among the slots that said theirs lately. */
static unsigned int cpu_wait(const struct quic_fair *g, uint64_t now)
{
	unsigned int i, w = 0, v;
	uint64_t at;

	for (i = 0; i < g->nslots; i++) {
		at = atomic_load_explicit(&g->slot[i].cpu_at, memory_order_acquire);
		if (!at || (at < now && now - at > QUIC_FAIR_CPU_STALE_NS))
			continue;
		v = atomic_load_explicit(&g->slot[i].cpu_wait, memory_order_relaxed);
		if (v > w)
			w = v;
	}
	return w;
}

static void acc_reset(struct quic_fair_ep *fe, uint64_t now)
{
	fe->acc_rate = UINT64_MAX;
	fe->acc_sum = 0;
	fe->acc_q = 0;
	fe->acc_srtt = UINT64_MAX;
	fe->acc_n = 0;
	fe->epoch++;
	fe->start = now;
}

void quic_fair_ep_init(struct quic_fair_ep *fe, struct quic_fair *g, unsigned int slot)
{
	memset(fe, 0, sizeof(*fe));
	fe->g = g && slot < g->nslots ? g : NULL;
	fe->slot = slot;
	fe->srtt_min = UINT64_MAX;
	fe->srtt_cut = UINT64_MAX;
	acc_reset(fe, 0);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

void quic_fair_roll(struct quic_fair_ep *fe, uint64_t now)
{
	struct fair_slot *sl;
	uint64_t rate = UINT64_MAX, sum = 0, q = 0, srtt = UINT64_MAX, floor;
	unsigned int i, n = 0;

	/* (a caller's timestamp a little older than the epoch's start, as
	 * another entry point may pass, is within the epoch) */
	if (!fe->g || now < fe->start || now - fe->start < QUIC_FAIR_EPOCH_NS)
		return;
	if (!quic_fair_on(fe->g)) {
		/* switched off: nothing held, nothing published (the others'
		 * readings of this slot go stale) */
		fe->limit = 0;
		acc_reset(fe, now);
		return;
	}
	sl = &fe->g->slot[fe->slot];
	atomic_store_explicit(&sl->rate, fe->acc_rate, memory_order_relaxed);
	atomic_store_explicit(&sl->sum, fe->acc_sum, memory_order_relaxed);
	atomic_store_explicit(&sl->q, fe->acc_q, memory_order_relaxed);
	atomic_store_explicit(&sl->srtt, fe->acc_srtt, memory_order_relaxed);
	atomic_store_explicit(&sl->n, fe->acc_n, memory_order_relaxed);
	atomic_store_explicit(&sl->at, now ? now : 1, memory_order_release);
	for (i = 0; i < fe->g->nslots; i++) {
		uint64_t at, v;

		sl = &fe->g->slot[i];
		at = atomic_load_explicit(&sl->at, memory_order_acquire);
		/* never published, or long ago (an idle worker); another
		 * thread's clock may be a little ahead of ours */
		if (!at || (at < now && now - at > QUIC_FAIR_STALE_NS))
			continue;
		n += atomic_load_explicit(&sl->n, memory_order_relaxed);
		sum = sat_add(sum, atomic_load_explicit(&sl->sum, memory_order_relaxed));
		if ((v = atomic_load_explicit(&sl->rate, memory_order_relaxed)) < rate)
			rate = v;
		if ((v = atomic_load_explicit(&sl->q, memory_order_relaxed)) > q)
			q = v;
		if ((v = atomic_load_explicit(&sl->srtt, memory_order_relaxed)) < srtt)
			srtt = v;
	}
	/* Held only while at least two set the rate and a queue stands:
	 * without one the node's uplink is not full, and holding anyone back
	 * would only leave it emptier. Nor while the node's threads wait for
	 * CPUs: the queue is then the CPU's (quic_fair_set_cpu_wait). */
	fe->limit = 0;
	fe->cpu_wait = cpu_wait(fe->g, now);
	if (fe->cpu_wait >= QUIC_FAIR_CPU_WAIT) {
		if (n >= 2 && q >= QUIC_FAIR_QUEUE_NS)
			fe->cpu_bound++;
	} else if (n >= 2 && rate != UINT64_MAX && q >= QUIC_FAIR_QUEUE_NS) {
		floor = sum / n / 2;
		fe->limit = rate > floor ? rate : floor;
	}
	fe->srtt_min = srtt;
	fe->srtt_cut = srtt != UINT64_MAX && srtt < UINT64_MAX / 4 ? 2 * srtt + QUIC_FAIR_FAR_NS :
								     UINT64_MAX;
	acc_reset(fe, now);
}

uint64_t quic_fair_window(const struct quic_fair_ep *fe, uint64_t srtt)
{
	double w;

	if (!fe->limit || !srtt)
		return UINT64_MAX;
	w = (double)fe->limit * (double)srtt / 1e9;
	if (w < QUIC_FAIR_FLOOR)
		return QUIC_FAIR_FLOOR;
	return w >= 1.8e19 ? UINT64_MAX : (uint64_t)w;
}

void quic_fair_report(struct quic_fair_ep *fe, struct quic_fair_conn *fc,
		      const struct quic_fair_sample *s, uint64_t now)
{
	uint64_t prev, q, rate;
	double r;

	if (!quic_fair_on(fe->g))
		return;
	quic_fair_roll(fe, now);
	if (fc->epoch == fe->epoch)
		return; /* once per epoch: a busy connection counts as one */
	fc->epoch = fe->epoch;
	prev = fc->cwnd;
	fc->cwnd = s->cwnd;
	if (!s->srtt || s->inflight < QUIC_FAIR_MIN_INFLIGHT)
		return;
	if (s->srtt < fe->acc_srtt)
		fe->acc_srtt = s->srtt;
	q = s->srtt > s->min_rtt ? s->srtt - s->min_rtt : 0;
	/* Far above the smallest round trip: a distant peer sets the rate
	 * as any other, but not one whose extra is mostly a queue of its own
	 * further on (a slow link's), which no one else waits in. */
	if (s->srtt > fe->srtt_cut && q > (s->srtt - fe->srtt_min) / 2)
		return;
	if (!prev || s->cwnd > prev + prev / QUIC_FAIR_GROWTH_DIV)
		return; /* first report, or still growing */
	if (q > fe->acc_q)
		fe->acc_q = q;
	/* the rate its window allows sets the rate; the rate it sends at
	 * (a held connection: its fair window) counts in the mean */
	r = (double)s->cwnd * 1e9 / (double)s->srtt;
	rate = r >= 1.8e19 ? UINT64_MAX - 1 : (uint64_t)r;
	if (rate < fe->acc_rate)
		fe->acc_rate = rate;
	r = (double)(s->inflight < s->cwnd ? s->inflight : s->cwnd) * 1e9 / (double)s->srtt;
	fe->acc_sum = sat_add(fe->acc_sum, r >= 1.8e19 ? UINT64_MAX - 1 : (uint64_t)r);
	fe->acc_n++;
}
