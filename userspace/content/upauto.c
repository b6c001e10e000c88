// SPDX-License-Identifier: MIT
/*
 * The automatic upload cap: a cap a little below what the seed's link
 * carries, found from the peers' rates, kept only where it makes serving
 * fairer. A protocol core: no I/O, no lock, no clock of its own (upauto.h;
 * docs/CONTENT.md "The automatic cap").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "content/upauto.h"

#define NS 1000000000ull
#define HIST (CN_UPAUTO_HOLD_WINDOW_S + 1) /* readings kept per peer, newest first */
#define SLOTS (2 * CN_UPAUTO_PEERS) /* a power of two */

struct ent {
	uint64_t peer;
	uint64_t sent[HIST], at[HIST]; /* [0] newest */
	uint8_t n;		       /* readings held; 0 = a free slot */
};

struct cn_upauto {
	struct ent *cur, *old; /* this sample's peers, the last one's */
	uint64_t *rates;       /* scratch: the served peers' rates */
	uint64_t *lrates;      /* the same over CN_UPAUTO_HOLD_WINDOW_S */
	uint64_t *qs;	       /* scratch: their queueing delays */
	enum cn_upauto_state state;
	uint64_t cap, total;
	unsigned int jain, served, bad, low;
	unsigned int jain_long; /* the index over CN_UPAUTO_HOLD_WINDOW_S */
	unsigned int jain_before; /* TRIAL: the index that started it */
	uint64_t prev_total;	  /* the sample before's total */
	uint64_t until_ns;	  /* TRIAL: its end, or its step's */
	uint64_t trial_end_ns;	  /* TRIAL: given up at this time whatever happens */
	uint64_t op_cap;	  /* TRIAL: the first cap to try once the queue drained */
	uint64_t good;		  /* TRIAL: a cap known to keep the queue drained */
	int draining;		  /* TRIAL: at the drain cap until the queue drains */
	uint64_t drain_end_ns;	  /* TRIAL: judged by then, drained or not */
	uint64_t down_ns;	  /* HOLD: the next step down while a queue is seen */
	uint64_t floor;		  /* HOLD: no step down below this (a share of the kept cap) */
	int redone;		  /* TRIAL: restarted at a lower cap once */
	int stepped;		  /* TRIAL (round trips unknown): stepped down once */
	unsigned int drained;	  /* TRIAL: samples in a row with the queue drained */
	uint64_t qdelay;	  /* the served peers' median queueing delay, ns */
	unsigned int qknown;	  /* their round trips are known (most of them) */
	uint64_t recent[CN_UPAUTO_RECENT]; /* the last samples' totals */
	unsigned int nrecent;
	unsigned int peers, prev_peers; /* peers with a rate (served or not) */
	uint64_t probe_ns;	  /* HOLD: the next probe */
	uint64_t retest_ns;	  /* HOLD: the next free test */
	unsigned int step;	  /* HOLD: the next probe, % */
	unsigned int unfair;	  /* HOLD: unfair samples in a row */
	uint64_t cap_before;	  /* HOLD: the cap before the last probe */
	uint64_t probed_ns;	  /* HOLD: when it was made (0: none pending) */
	uint64_t backoff_s, backoff_until_ns;
	uint64_t trials, kept, given_up, probes;
};

unsigned int cn_upauto_jain(const uint64_t *x, unsigned int n)
{
	double s = 0, s2 = 0;

	for (unsigned int i = 0; i < n; i++) {
		s += (double)x[i];
		s2 += (double)x[i] * (double)x[i];
	}
	if (n < 2 || s2 <= 0)
		return 1000;
	return (unsigned int)(s * s / ((double)n * s2) * 1000.0 + 0.5);
}

const char *cn_upauto_state_name(enum cn_upauto_state s)
{
	switch (s) {
	case CN_UPAUTO_TRIAL:
		return "trial";
	case CN_UPAUTO_HOLD:
		return "hold";
	default:
		return "free";
	}
}

int cn_upauto_new(struct cn_upauto **out)
{
	struct cn_upauto *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->cur = calloc(SLOTS, sizeof(*a->cur));
	a->old = calloc(SLOTS, sizeof(*a->old));
	a->rates = calloc(CN_UPAUTO_PEERS, sizeof(*a->rates));
	a->lrates = calloc(CN_UPAUTO_PEERS, sizeof(*a->lrates));
	a->qs = calloc(CN_UPAUTO_PEERS, sizeof(*a->qs));
	if (!a->cur || !a->old || !a->rates || !a->lrates || !a->qs) {
		cn_upauto_free(a);
		return -ENOMEM;
	}
	a->jain = 1000;
	a->jain_long = 1000;
	a->backoff_s = CN_UPAUTO_BACKOFF_S;
	*out = a;
	return 0;
}

void cn_upauto_free(struct cn_upauto *a)
{
	if (!a)
		return;
	free(a->cur);
	free(a->old);
	free(a->rates);
	free(a->lrates);
	free(a->qs);
	free(a);
}

void cn_upauto_reset(struct cn_upauto *a)
{
	struct ent *cur = a->cur, *old = a->old;
	uint64_t *rates = a->rates, *lrates = a->lrates, *qs = a->qs;

	memset(cur, 0, SLOTS * sizeof(*cur));
	memset(old, 0, SLOTS * sizeof(*old));
	memset(a, 0, sizeof(*a));
	a->cur = cur;
	a->old = old;
	a->rates = rates;
	a->lrates = lrates;
	a->qs = qs;
	a->jain = 1000;
	a->jain_long = 1000;
	a->backoff_s = CN_UPAUTO_BACKOFF_S;
}

static unsigned int slot_of(uint64_t peer)
{
	uint64_t h = peer * 0x9e3779b97f4a7c15ull;

	return (unsigned int)((h ^ (h >> 29)) & (SLOTS - 1));
}

/* The entry of peer in t: its slot, or the free slot where it would go. */
static struct ent *find(struct ent *t, uint64_t peer)
{
	unsigned int i = slot_of(peer);

	while (t[i].n && t[i].peer != peer)
		i = (i + 1) & (SLOTS - 1);
	return &t[i];
}

/* A peer's rate over about window_s, bytes/s (0 with one reading). */
static uint64_t rate_of(const struct ent *e, unsigned int window_s)
{
	unsigned int k = 0;

	for (unsigned int i = 1; i < e->n; i++)
		if (e->at[0] - e->at[i] <= (window_s * NS) + NS / 2)
			k = i;
	if (!k || e->at[0] <= e->at[k])
		return 0;
	return (uint64_t)((double)(e->sent[0] - e->sent[k]) * (double)NS /
			  (double)(e->at[0] - e->at[k]));
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t u = *(const uint64_t *)x, v = *(const uint64_t *)y;

	return u < v ? -1 : u > v;
}

/* This sample's readings into the table; the served peers' rates into
 * a->rates, their number and total into a->served, a->total. */
static void take(struct cn_upauto *a, const struct cn_upauto_peer *p, unsigned int n)
{
	struct ent *t = a->old;
	unsigned int kept = 0, nq = 0;

	a->old = a->cur;
	a->cur = t;
	memset(a->cur, 0, SLOTS * sizeof(*a->cur));
	a->prev_total = a->total;
	a->prev_peers = a->peers;
	a->peers = 0;
	a->served = 0;
	a->total = 0;
	for (unsigned int i = 0; i < n && kept < CN_UPAUTO_PEERS; i++) {
		struct ent *e = find(a->cur, p[i].peer), *o;
		uint64_t r;

		if (e->n)
			continue; /* the same peer twice: the first reading counts */
		o = find(a->old, p[i].peer);
		e->peer = p[i].peer;
		if (o->n && p[i].sent == o->sent[0] && p[i].at_ns == o->at[0]) {
			*e = *o; /* the same reading again (its worker has not
				  * taken a new copy since): nothing new */
		} else {
			if (o->n && p[i].sent >= o->sent[0] && p[i].at_ns > o->at[0]) {
				unsigned int m = o->n < HIST ? o->n : HIST - 1;

				memcpy(&e->sent[1], o->sent, m * sizeof(e->sent[0]));
				memcpy(&e->at[1], o->at, m * sizeof(e->at[0]));
				e->n = (uint8_t)(m + 1);
			} else {
				e->n = 1; /* new, or its counter went back: start again */
			}
			e->sent[0] = p[i].sent;
			e->at[0] = p[i].at_ns;
		}
		kept++;
		a->peers += e->n > 1;
		r = rate_of(e, CN_UPAUTO_WINDOW_S);
		if (r > CN_UPAUTO_MAX_RATE) {
			e->n = 1; /* not a rate any link carries: start again */
			r = 0;
		}
		if (r >= CN_UPAUTO_MIN_RATE) {
			a->rates[a->served] = r;
			a->lrates[a->served++] = rate_of(e, CN_UPAUTO_HOLD_WINDOW_S);
			a->total += r;
			if (p[i].srtt_ns)
				a->qs[nq++] = p[i].srtt_ns > p[i].min_rtt_ns
						  ? p[i].srtt_ns - p[i].min_rtt_ns
						  : 0;
		}
	}
	a->jain = cn_upauto_jain(a->rates, a->served);
	a->jain_long = cn_upauto_jain(a->lrates, a->served);
	a->qknown = a->served && nq * 2 > a->served;
	if (nq) {
		qsort(a->qs, nq, sizeof(*a->qs), cmp_u64);
		a->qdelay = a->qs[nq / 2];
	} else {
		a->qdelay = 0;
	}
	if (a->peers != a->prev_peers ||
	    a->total > a->prev_total / 100 * (100 + CN_UPAUTO_RAMP))
		a->nrecent = 0; /* peers joined or left, or the total still grows:
				 * the earlier totals say nothing of the link */
	a->recent[a->nrecent++ % CN_UPAUTO_RECENT] = a->total;
}

static uint64_t share_of(uint64_t total)
{
	uint64_t c = total / 100 * CN_UPAUTO_SHARE;

	return c < CN_UPAUTO_MIN_CAP ? CN_UPAUTO_MIN_CAP : c;
}

static void to_free(struct cn_upauto *a)
{
	a->state = CN_UPAUTO_FREE;
	a->cap = 0;
	a->bad = 0;
	a->nrecent = 0; /* the totals under the cap say nothing of the link */
}

/* The highest of the last CN_UPAUTO_RECENT totals. */
static uint64_t recent_max(const struct cn_upauto *a)
{
	unsigned int n = a->nrecent < CN_UPAUTO_RECENT ? a->nrecent : CN_UPAUTO_RECENT;
	uint64_t m = 0;

	for (unsigned int i = 0; i < n; i++)
		if (a->recent[i] > m)
			m = a->recent[i];
	return m;
}

/* The median of the last CN_UPAUTO_RECENT totals (fewer at first). */
static uint64_t recent_median(const struct cn_upauto *a)
{
	uint64_t v[CN_UPAUTO_RECENT];
	unsigned int n = a->nrecent < CN_UPAUTO_RECENT ? a->nrecent : CN_UPAUTO_RECENT;

	for (unsigned int i = 0; i < n; i++) {
		unsigned int j = (a->nrecent - 1 - i) % CN_UPAUTO_RECENT;
		uint64_t x = a->recent[j];
		unsigned int k = i;

		for (; k > 0 && v[k - 1] > x; k--)
			v[k] = v[k - 1];
		v[k] = x;
	}
	return n ? v[n / 2] : 0;
}

static void free_step(struct cn_upauto *a, uint64_t now)
{
	if (a->served < 2 || a->jain >= CN_UPAUTO_JAIN || now < a->backoff_until_ns) {
		a->bad = 0;
		return;
	}
	if (++a->bad < CN_UPAUTO_BAD_SAMPLES)
		return;
	if (a->qknown && a->qdelay < CN_UPAUTO_QUEUE_NS) {
		/* no queue on the downloaders' paths: nothing limits them
		 * but their own asking, which a cap cannot make fairer */
		a->bad = 0;
		return;
	}
	if (a->total > a->prev_total / 100 * (100 + CN_UPAUTO_RAMP) ||
	    a->peers != a->prev_peers) {
		/* still growing, or peers still joining: a cap taken from
		 * this total would be too low; wait */
		a->bad--;
		return;
	}
	/* from the median of the last totals: one sample's total swings
	 * with the windows' backoffs (down) and pipelines filling (up) */
	a->state = CN_UPAUTO_TRIAL;
	a->cap = share_of(recent_median(a));
	a->op_cap = a->cap;
	if (a->qknown && share_of(recent_max(a)) > a->op_cap)
		a->op_cap = share_of(recent_max(a)); /* the search's top: the link
						       * carried at least that */
	a->good = 0;
	a->draining = a->qknown;
	a->drain_end_ns = now + CN_UPAUTO_DRAIN_MAX_S * NS;
	if (a->draining)
		a->cap = recent_median(a) / 100 * CN_UPAUTO_DRAIN;
	a->jain_before = a->jain;
	a->redone = 0;
	a->stepped = 0;
	a->drained = 0;
	a->until_ns = now + (a->qknown ? CN_UPAUTO_STEP_S : CN_UPAUTO_TRIAL_S) * NS;
	a->trial_end_ns = now + CN_UPAUTO_TRIAL_MAX_S * NS;
	a->trials++;
}

static void keep(struct cn_upauto *a, uint64_t now)
{
	a->floor = a->cap / 100 * CN_UPAUTO_FLOOR;
	a->state = CN_UPAUTO_HOLD;
	a->kept++;
	a->step = CN_UPAUTO_FIRST_STEP; /* the search may have kept a cap well under the link */
	a->low = 0;
	a->unfair = 0;
	a->probed_ns = 0;
	a->probe_ns = now + CN_UPAUTO_PROBE_S * NS;
	a->retest_ns = now + CN_UPAUTO_RETEST_S * NS;
	a->backoff_s = CN_UPAUTO_BACKOFF_S;
}

/* No fairer under the cap: not the seed's link that decides. */
static void give_up(struct cn_upauto *a, uint64_t now)
{
	a->given_up++;
	a->backoff_until_ns = now + a->backoff_s * NS;
	a->backoff_s = a->backoff_s * 2 > CN_UPAUTO_BACKOFF_MAX_S ? CN_UPAUTO_BACKOFF_MAX_S
								  : a->backoff_s * 2;
	to_free(a);
}

static int fairer(const struct cn_upauto *a)
{
	return a->served >= 2 &&
	       (a->jain >= CN_UPAUTO_JAIN || a->jain >= a->jain_before + CN_UPAUTO_GAIN);
}

/* The drain is over: no fairer under it, given up; fairer, the search
 * starts from it. */
static void judge_drain(struct cn_upauto *a, uint64_t now)
{
	if (!fairer(a)) {
		give_up(a, now);
		return;
	}
	a->draining = 0;
	a->good = a->cap;
	a->cap = a->op_cap > a->good ? a->op_cap : a->good;
	a->drained = 0;
	a->until_ns = now + CN_UPAUTO_STEP_S * NS;
}

/* With the peers' round trips. First drain the queue they share with a
 * cap well under the link (what the connections hold in QUIC, handed
 * over before any cap, keeps the link's queue full for seconds under a
 * cap just below it), and judge the index once a whole rate window has
 * passed with the queue drained: no fairer, given up (cheaply: a few
 * seconds). Fairer: search the highest cap that keeps it drained,
 * between the drain cap (good) and the share of the median total, halving
 * the gap each time a queue forms again; then HOLD, whose probes go on
 * from there. The handed-over total overstates the link by up to 10%
 * while queues fill, so the share alone is often above the link. */
static void trial_queue(struct cn_upauto *a, uint64_t now)
{
	if (now >= a->trial_end_ns) {
		give_up(a, now); /* no cap we tried drained it in time */
		return;
	}
	if (!a->draining && !a->good) {
		/* the round trips became known after the trial began */
		a->draining = 1;
		a->drain_end_ns = now + CN_UPAUTO_DRAIN_MAX_S * NS;
		a->op_cap = a->cap;
		a->cap = a->cap / CN_UPAUTO_SHARE * CN_UPAUTO_DRAIN;
		a->drained = 0;
		a->until_ns = now + CN_UPAUTO_STEP_S * NS;
	}
	if (a->qdelay >= CN_UPAUTO_DRAINED_NS) {
		a->drained = 0;
		if (now < a->until_ns)
			return;
		a->until_ns = now + CN_UPAUTO_STEP_S * NS;
		if (a->draining && now >= a->drain_end_ns) {
			/* not drained in CN_UPAUTO_DRAIN_MAX_S: queues of the
			 * peers' own paths (a shared one drains in 1-3 s), or a
			 * large backlog; the index decides as if drained */
			judge_drain(a, now);
			return;
		}
		if (a->draining) {
			if (a->total < a->cap / 100 * CN_UPAUTO_BINDS) {
				/* the drain cap does not bind (the median total
				 * counted pipelines filling): from what is sent */
				a->op_cap = share_of(a->total);
				a->cap = a->total / 100 * CN_UPAUTO_DRAIN;
			}
			return;
		}
		/* a queue again above the good cap: halve the gap */
		if (a->cap - a->good <= a->good / 50) {
			a->cap = a->good;
			keep(a, now);
			return;
		}
		a->cap = a->good + (a->cap - a->good) / 2;
		return;
	}
	if (++a->drained <= CN_UPAUTO_WINDOW_S)
		return;
	if (a->draining) {
		judge_drain(a, now);
		return;
	}
	keep(a, now); /* drained for a window at this cap */
}

static void trial_step(struct cn_upauto *a, uint64_t now)
{
	if (a->qknown) {
		trial_queue(a, now);
		return;
	}
	/* no round trips known: by time and totals alone */
	if (now < a->until_ns)
		return;
	if (fairer(a)) {
		keep(a, now);
		return;
	}
	if (!a->redone && a->total < a->cap / 100 * CN_UPAUTO_BINDS) {
		/* the cap was not what limited (taken from a total that
		 * included filling the downloaders' pipelines): once more at
		 * the share of what is sent now */
		a->redone = 1;
		a->cap = share_of(a->total);
		a->until_ns = now + CN_UPAUTO_TRIAL_S * NS;
		return;
	}
	if (!a->stepped) {
		/* a cap just under the link can still leave a queue at it
		 * (the wire carries headers the total does not count): one
		 * step lower before giving up */
		a->stepped = 1;
		a->cap = a->cap / 100 * CN_UPAUTO_SHARE;
		a->until_ns = now + CN_UPAUTO_TRIAL_S * NS;
		return;
	}
	give_up(a, now);
}

/* The last probe was made within a probe's time: what goes wrong now is
 * its doing. */
static int probe_recent(const struct cn_upauto *a, uint64_t now)
{
	return a->probed_ns && now - a->probed_ns <= (CN_UPAUTO_PROBE_S + 1) * NS;
}

static void probe_back(struct cn_upauto *a, uint64_t now)
{
	a->cap = a->cap_before;
	a->step = 2;
	a->probed_ns = 0;
	a->probe_ns = now + CN_UPAUTO_PROBE_WAIT_S * NS;
}

static void hold_step(struct cn_upauto *a, uint64_t now)
{
	if (a->served < 2 || now >= a->retest_ns) {
		to_free(a);
		return;
	}
	if (a->qknown && a->qdelay >= CN_UPAUTO_QUEUE_NS) {
		/* a queue again: the last probe went past the link, or the
		 * link (or what else shares it) changed: down until it drains,
		 * at once to the share of what is sent when that is well
		 * under the cap (the link fell) */
		a->low = 0;
		a->unfair = 0;
		if (probe_recent(a, now)) {
			probe_back(a, now);
		} else if (now >= a->down_ns) {
			uint64_t c = a->total < a->cap / 100 * CN_UPAUTO_LOW
					 ? share_of(a->total)
					 : a->cap / 100 * CN_UPAUTO_SHARE;

			if (c < a->floor) {
				/* a queue no cap near the one kept drains (or round
				 * trips made to look so): not ours to fix */
				give_up(a, now);
				return;
			}
			a->cap = c;
			a->step = 2;
			a->down_ns = now + CN_UPAUTO_STEP_S * NS;
			if (a->probe_ns < a->down_ns + CN_UPAUTO_PROBE_S * NS)
				a->probe_ns = a->down_ns + CN_UPAUTO_PROBE_S * NS;
		}
		return;
	}
	if (a->jain_long < CN_UPAUTO_JAIN) {
		a->low = 0;
		if (probe_recent(a, now)) {
			probe_back(a, now); /* it went past the link */
		} else {
			/* unfair with no probe to blame: the cap may be above the
			 * link (taken from a total that included filling the
			 * downloaders' pipelines) or the peers changed. Once down
			 * to the share of what is sent now; still unfair after
			 * a trial's time, a step lower; after as long again, a
			 * free test (and a trial if needed). */
			a->unfair++;
			if (a->unfair == 1 && share_of(a->total) < a->cap)
				a->cap = share_of(a->total);
			else if (a->unfair == CN_UPAUTO_TRIAL_S + 2)
				a->cap = a->cap / 100 * CN_UPAUTO_SHARE;
			else if (a->unfair > 2 * (CN_UPAUTO_TRIAL_S + 1))
				to_free(a);
		}
		return;
	}
	a->unfair = 0;
	if (a->total < a->cap / 100 * CN_UPAUTO_LOW) {
		if (++a->low >= 2) {
			a->cap = share_of(a->total);
			a->step = 2;
			a->low = 0;
			a->probe_ns = now + CN_UPAUTO_PROBE_S * NS;
		}
		return;
	}
	a->low = 0;
	if (now < a->probe_ns || (a->qknown && a->qdelay >= CN_UPAUTO_DRAINED_NS))
		return; /* not yet, or not while any queue is left */
	a->cap_before = a->cap;
	a->cap += a->cap / 100 * a->step;
	a->step = a->step * 2 > 25 ? 25 : a->step * 2;
	a->probed_ns = now;
	a->probe_ns = now + CN_UPAUTO_PROBE_S * NS;
	a->probes++;
}

uint64_t cn_upauto_sample(struct cn_upauto *a, uint64_t now_ns, const struct cn_upauto_peer *p,
			  unsigned int n)
{
	take(a, p, n);
	switch (a->state) {
	case CN_UPAUTO_FREE:
		free_step(a, now_ns);
		break;
	case CN_UPAUTO_TRIAL:
		trial_step(a, now_ns);
		break;
	case CN_UPAUTO_HOLD:
		hold_step(a, now_ns);
		break;
	}
	return a->cap;
}

void cn_upauto_status(const struct cn_upauto *a, struct cn_upauto_status *st)
{
	memset(st, 0, sizeof(*st));
	st->state = a->state;
	st->cap = a->cap;
	st->total = a->total;
	st->jain = a->jain;
	st->jain_long = a->jain_long;
	st->qdelay_ns = a->qknown ? a->qdelay : 0;
	st->served = a->served;
	st->trials = a->trials;
	st->kept = a->kept;
	st->given_up = a->given_up;
	st->probes = a->probes;
	st->backoff_until_ns = a->backoff_until_ns;
}
