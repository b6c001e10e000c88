/* SPDX-License-Identifier: MIT */
/*
 * The automatic upload cap (upauto.c; `content.upload_auto`, `weftctl
 * content limits --upload auto`; docs/CONTENT.md "The automatic cap").
 *
 * Why: with no cap, the seed's upload link (or the first queue behind it)
 * decides who gets what, and that is each QUIC connection's congestion
 * window: ngtcp2 0.12's Cubic keeps a connection that sampled its minimum
 * RTT on an empty queue at a small window for its life, so one downloader
 * of eight can get half the others' rate. A cap a little below the link
 * moves the bottleneck into the seed, where the scheduler's deficit round
 * robin gives every busy downloader the same bytes (measured: Jain's index
 * 0.86-0.91 without, 1.000 under a cap at 0.94-0.97x the link). This finds
 * that cap itself, and gives it up where it does not help.
 *
 * A protocol core: no I/O, no lock, no clock of its own. The caller (the
 * serving worker 0, once a second) hands it every capped peer's bytes
 * sent so far, when that was read, and the peer's round trip (smoothed
 * and smallest, from its QUIC connection); it answers the cap to apply.
 * The served peers' median queueing delay (smoothed RTT over the
 * smallest) says whether a queue stands on their paths: a median of 21-23 ms
 * with a 200 Mbit/s link's shaper full, 0.3-2 ms once a cap below the
 * link holds (bench/serve.sh traces).
 *
 *   FREE   no cap. When Jain's index across the peers being served
 *          (>= CN_UPAUTO_MIN_RATE each, at least two) stays below
 *          CN_UPAUTO_JAIN for CN_UPAUTO_BAD_SAMPLES samples while a queue
 *          stands (median delay >= CN_UPAUTO_QUEUE_NS; without one nothing
 *          but the downloaders' own asking limits them, which a cap cannot
 *          make fairer) and the total is steady (the same peers
 *          followed, served or stalled, and not growing by CN_UPAUTO_RAMP %
 *          a sample: a cap taken while downloads start would be far below
 *          the link), a TRIAL starts from the median total of the last
 *          CN_UPAUTO_RECENT samples (one sample's total swings with the
 *          windows' backoffs and with pipelines filling).
 *   TRIAL  first a drain: the cap at CN_UPAUTO_DRAIN % of that median until
 *          the queue drains (median delay < CN_UPAUTO_DRAINED_NS; what the
 *          connections already hold in QUIC, handed over before any cap,
 *          keeps a full queue for seconds under a cap just below the
 *          link), taken again from the total every CN_UPAUTO_STEP_S while
 *          the total stays under CN_UPAUTO_BINDS % of it (the median
 *          counted pipelines filling). Drained for a whole rate window, or
 *          after CN_UPAUTO_DRAIN_MAX_S in any case: no fairer (the index
 *          did not reach the goal nor rise by CN_UPAUTO_GAIN), given up
 *          (FREE) with no trial again for a backoff (CN_UPAUTO_BACKOFF_S,
 *          doubling up to CN_UPAUTO_BACKOFF_MAX_S): downloaders each
 *          limited by their own path are served as fairly as their paths
 *          allow without a cap, which would only cost them. Fairer: the
 *          highest cap that keeps the queue drained is searched between
 *          the drain cap and CN_UPAUTO_SHARE % of the highest recent total,
 *          halving the gap each time a queue forms again (every
 *          CN_UPAUTO_STEP_S), and HOLD once a cap stays drained for a window
 *          or the gap is under 2%. Given up too after
 *          CN_UPAUTO_TRIAL_MAX_S. With no round trips known (most peers'
 *          unknown), by time alone: the cap at CN_UPAUTO_SHARE % of the
 *          median, judged after CN_UPAUTO_TRIAL_S, once more from the total
 *          if the cap did not bind, once a step lower, then given up.
 *   HOLD   while the cap is what limits (the total >= CN_UPAUTO_LOW % of
 *          it) and no queue stands, it is raised every CN_UPAUTO_PROBE_S,
 *          first by CN_UPAUTO_FIRST_STEP % after a trial (the search may
 *          have kept a cap well under the link), else by 2%, doubling each
 *          time (at most 25%): the link may be faster than it was, or a
 *          downloader left room. A queue again (>=
 *          CN_UPAUTO_QUEUE_NS) or the index (over CN_UPAUTO_HOLD_WINDOW_S)
 *          below the goal within a probe's time of a probe: back to the cap
 *          before it, the next probe after CN_UPAUTO_PROBE_WAIT_S. A queue
 *          with no probe to blame (the link, or what shares it, changed):
 *          down every CN_UPAUTO_STEP_S, to the share of the total if that is
 *          under CN_UPAUTO_LOW % of the cap, else by a step; never below
 *          CN_UPAUTO_FLOOR % of the cap kept (given up instead: round
 *          trips are the peers' to shape, and a majority of them delaying
 *          their ACKs must not walk the cap down). The total under
 *          CN_UPAUTO_LOW % of the cap twice (the demand fell): the cap to
 *          the share of the total. Unfair with no probe to blame: the cap
 *          to the share of the total, a trial's time later a step lower,
 *          as long again later FREE. Every CN_UPAUTO_RETEST_S, or when
 *          fewer than two peers are served, back to FREE: a free test.
 *
 * Bounded: at most CN_UPAUTO_PEERS peers are followed (more are left out
 * of the index and the total, never an allocation).
 */
#ifndef WEFT_CONTENT_UPAUTO_H
#define WEFT_CONTENT_UPAUTO_H

#include <stdint.h>

#define CN_UPAUTO_PEERS 1024	   /* peers followed */
#define CN_UPAUTO_MIN_RATE 65536   /* bytes/s: a peer slower than this is not counted as served */
#define CN_UPAUTO_MAX_RATE 1000000000000ull /* bytes/s: a reading above it starts again */
#define CN_UPAUTO_JAIN 950	   /* the goal, Jain's index x 1000 */
#define CN_UPAUTO_GAIN 50	   /* a trial is kept if the index rose this much (x 1000) */
#define CN_UPAUTO_SHARE 95	   /* the cap, % of the total rate */
#define CN_UPAUTO_LOW 90	   /* % of the cap below which it is not what limits */
#define CN_UPAUTO_BAD_SAMPLES 2	   /* unfair samples in a row before a trial */
#define CN_UPAUTO_RECENT 5	   /* samples: a trial's cap is a share of their median total */
#define CN_UPAUTO_BINDS 97	   /* %: a trial's total under this of its cap: the cap did not bind */
#define CN_UPAUTO_RAMP 10	   /* %: a total still growing this much a sample starts none */
#define CN_UPAUTO_WINDOW_S 2	   /* rates are taken over this long (FREE, TRIAL) */
#define CN_UPAUTO_HOLD_WINDOW_S 4  /* HOLD judges fairness over this long: under a
				    * cap the downloaders' own request pipelines make
				    * 2 s shares noisy (0.92-0.98 where 8 s give 1.0) */
#define CN_UPAUTO_TRIAL_S 3	   /* a trial's step, round trips unknown */
#define CN_UPAUTO_STEP_S 3	   /* a trial's step, round trips known: the rates
				    * it is judged by lag a sample and a window */
#define CN_UPAUTO_DRAIN 80	   /* %: a trial's first cap, until the queue drains */
#define CN_UPAUTO_DRAIN_MAX_S 6	   /* ... or this long: then judged all the same */
#define CN_UPAUTO_FIRST_STEP 8	   /* %: a held cap's first probe (then 2% after a change) */
#define CN_UPAUTO_TRIAL_MAX_S 24   /* a trial with round trips known ends by then */
#define CN_UPAUTO_FLOOR 40	   /* %: a held cap steps down to this of the cap kept, no lower */
#define CN_UPAUTO_QUEUE_NS 10000000ull /* median RTT over its minimum: a queue (a full
					* 200 Mbit/s shaper: 21-29 ms) */
#define CN_UPAUTO_DRAINED_NS 5000000ull /* ... under this: drained (0.3-2 ms under a cap
					 * at 0.92-0.95x the link, bursts to 8 ms) */
#define CN_UPAUTO_PROBE_S 3
#define CN_UPAUTO_PROBE_WAIT_S 30
#define CN_UPAUTO_RETEST_S 60
#define CN_UPAUTO_BACKOFF_S 30
#define CN_UPAUTO_BACKOFF_MAX_S 600
#define CN_UPAUTO_MIN_CAP (4 * CN_UPAUTO_MIN_RATE) /* never below: bytes/s */

enum cn_upauto_state {
	CN_UPAUTO_FREE = 0,
	CN_UPAUTO_TRIAL,
	CN_UPAUTO_HOLD,
};

/* One peer's bytes sent so far (a counter that only grows) and when it
 * was read (ns, the caller's monotonic clock). */
struct cn_upauto_peer {
	uint64_t peer;
	uint64_t sent;
	uint64_t at_ns;
	uint64_t srtt_ns, min_rtt_ns; /* its round trip (smoothed, smallest); 0: unknown */
};

struct cn_upauto_status {
	enum cn_upauto_state state;
	uint64_t cap;		   /* bytes/s; 0 = none */
	uint64_t total;		   /* bytes/s, the last sample's window */
	unsigned int jain;	   /* x 1000, the last sample's window */
	unsigned int jain_long;	   /* x 1000, over CN_UPAUTO_HOLD_WINDOW_S */
	uint64_t qdelay_ns;	   /* the served peers' median queueing delay (0: unknown) */
	unsigned int served;	   /* peers counted in it */
	uint64_t trials, kept, given_up, probes;
	uint64_t backoff_until_ns; /* FREE: no trial before this */
};

struct cn_upauto;
/* 0 or -ENOMEM. */
int cn_upauto_new(struct cn_upauto **out);
void cn_upauto_free(struct cn_upauto *a);
/* Back to FREE, history and backoff forgotten (the mode was turned off). */
void cn_upauto_reset(struct cn_upauto *a);
/*
 * One sample (about once a second): the peers under the cap, n of them.
 * Returns the cap to apply, bytes/s; 0 = none.
 */
uint64_t cn_upauto_sample(struct cn_upauto *a, uint64_t now_ns, const struct cn_upauto_peer *p,
			  unsigned int n);
void cn_upauto_status(const struct cn_upauto *a, struct cn_upauto_status *st);
const char *cn_upauto_state_name(enum cn_upauto_state s);
/* Jain's index x 1000 of n rates (1000 for n < 2 or all zero). */
unsigned int cn_upauto_jain(const uint64_t *x, unsigned int n);

#endif
