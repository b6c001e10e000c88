/* SPDX-License-Identifier: MIT */
/*
 * Fair windows (docs/QUIC.md "Fair windows"): a protocol core, no I/O and
 * no clock of its own. The connections of a node's endpoints that send
 * more than their congestion windows let them (backlogged) while a queue
 * stands on their paths (the node's own uplink, which they share) are
 * held to one rate: the smallest among them, but not below half their
 * mean, each connection's bytes in flight to that rate times its own
 * round trip (so a distant peer gets the same rate, not the same window).
 * Holding every window to the smallest one's rate lets the shared queue
 * drain until that window, too, carries a fair share; where one window
 * stays small for reasons of its own path, the floor at half the mean
 * keeps the others from being held far below the link.
 *
 * Who sets the rate: a connection whose window has stopped growing
 * (not in slow start), unless its round trip is far above the smallest
 * reported and mostly a queue of its own further on (a slow link's: it
 * is held to the rate but does not set it; a distant peer does). A queue
 * stands when one of them sees its smoothed RTT QUIC_FAIR_QUEUE_NS over
 * its smallest: a connection's smallest RTT is only what it saw since it
 * began, so the one that began on an empty queue tells.
 *
 * Each endpoint gathers its connections' reports over an epoch
 * (QUIC_FAIR_EPOCH_NS), O(1) a report; at the epoch's end it publishes
 * what it saw in its slot of the group (atomics, read by the node's other
 * endpoints, one per worker thread) and takes the group's rate for the
 * next epoch from every slot published recently. No lock, no allocation
 * after quic_fair_new.
 */
#ifndef WEFT_QUIC_FAIR_H
#define WEFT_QUIC_FAIR_H

#include <stdint.h>

#include <weft/quic.h>

#define QUIC_FAIR_EPOCH_NS (20ULL * 1000000ULL)  /* reports gathered per epoch */
#define QUIC_FAIR_STALE_NS (3 * QUIC_FAIR_EPOCH_NS) /* a slot older than this is not read */
#define QUIC_FAIR_MIN_INFLIGHT 16384             /* a report with less in flight is not counted */
/* A standing queue: the largest queueing delay (smoothed RTT over the
 * smallest) among those setting the rate is at least this. */
#define QUIC_FAIR_QUEUE_NS (5ULL * 1000000ULL)
/* A report whose smoothed RTT exceeds twice the smallest reported plus
 * this is far: it sets the rate only while its queueing delay is at most
 * half of what it has over the smallest (a distant peer; the rest is a
 * queue of its own further on, a slow link's). */
#define QUIC_FAIR_FAR_NS (5ULL * 1000000ULL)
/* A window grown by more than a quarter since the connection's previous
 * report is still growing: it does not set the rate. */
#define QUIC_FAIR_GROWTH_DIV 4
/* A window is never held below this many bytes (~11 full packets: the
 * ACK clock keeps going while the queue drains and the RTT falls). */
#define QUIC_FAIR_FLOOR 16384

/* What one connection reports (ngtcp2's view of its path). */
struct quic_fair_sample {
	uint64_t cwnd, inflight; /* bytes */
	uint64_t srtt, min_rtt;  /* ns; srtt 0: no sample yet */
};

/* A connection's own part: its last report. */
struct quic_fair_conn {
	uint64_t epoch; /* the endpoint epoch it last reported in (0: never) */
	uint64_t cwnd;  /* its window then */
};

struct quic_fair_ep {
	struct quic_fair *g; /* NULL: off */
	unsigned int slot;
	uint64_t epoch, start; /* epoch ids from 1 */
	/* this epoch's reports: among those that may set the rate, the
	 * smallest rate, their sum and count, the largest queueing delay;
	 * the smallest smoothed RTT among all */
	uint64_t acc_rate, acc_sum, acc_q, acc_srtt;
	unsigned int acc_n;
	/* the group's answer for this epoch */
	uint64_t limit; /* bytes/s; 0: none */
	/* the smallest smoothed RTT reported, and past which a report is
	 * far: it sets the rate only if its extra is not mostly its own queue */
	uint64_t srtt_min, srtt_cut;
	uint64_t holds; /* flushes whose stream data a fair window held back */
	/* the group's largest wait for a CPU at the last roll (permille), and
	 * the epochs a queue stood but that wait held nothing back */
	unsigned int cpu_wait;
	uint64_t cpu_bound;
};

void quic_fair_ep_init(struct quic_fair_ep *fe, struct quic_fair *g, unsigned int slot);
/* Close the epoch if it is over: publish, read the group. */
void quic_fair_roll(struct quic_fair_ep *fe, uint64_t now);
/* The bytes a connection with round trip srtt may have in flight:
 * UINT64_MAX while no rate is set. */
uint64_t quic_fair_window(const struct quic_fair_ep *fe, uint64_t srtt);
/* A connection that ended a flush with stream data still to send, held
 * by its congestion window or its fair window: once per epoch. */
void quic_fair_report(struct quic_fair_ep *fe, struct quic_fair_conn *fc,
		      const struct quic_fair_sample *s, uint64_t now);

#endif
