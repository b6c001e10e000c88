/* SPDX-License-Identifier: MIT */
/*
 * Simulated network for in-process tests (and weftlab's sim): hosts with
 * addresses, datagrams in flight on a clock the test owns, per-host and
 * per-link loss, latency, jitter and reordering, NAT boxes that rewrite
 * inside addr:port to an outside addr:port, all from one seeded random
 * generator. The engine's mem backend (io_backend_mem) makes each host's
 * queues look like UDP sockets, so complete nodes run on it unchanged.
 *
 * Clock: SIMNET_CLOCK_MANUAL is virtual time that moves only when the test
 * calls simnet_advance() (nothing sleeps; runs are the same for a seed
 * when one thread drives everything: engine_poll). SIMNET_CLOCK_REAL is
 * CLOCK_MONOTONIC plus an offset simnet_advance() adds to, for nodes whose
 * engine workers run as threads.
 *
 * Every function is thread-safe (one mutex per network). See docs/SIM.md.
 */
#ifndef WEFT_SIMNET_H
#define WEFT_SIMNET_H

#include <stddef.h>
#include <stdint.h>

#include "weft/io.h"

struct simnet;
struct simnet_host;
struct simnet_nat;

enum simnet_clock {
	SIMNET_CLOCK_MANUAL = 0, /* virtual, advanced by the test only */
	SIMNET_CLOCK_REAL = 1,	 /* CLOCK_MONOTONIC + offset */
};

/* Limits (documented defaults of struct simnet_opts; 0 selects them). */
#define SIMNET_DEF_QUEUE_MAX 4096 /* datagrams in flight to one host queue (drop-tail beyond) */
#define SIMNET_MAX_HOSTS 128	  /* hosts per network (the mesh benchmark runs 100) */
#define SIMNET_MAX_QUEUES 8	  /* receive queues per host (engine workers) */
#define SIMNET_MAX_LINKS 256	  /* per-pair link settings */
#define SIMNET_MAX_NATS 16	  /* NAT boxes */
#define SIMNET_NAT_MAX_MAPS 1024  /* mappings per NAT (oldest idle one recycled) */
#define SIMNET_NAT_MAX_PERMS 16	  /* remote endpoints remembered per mapping (filtering) */
#define SIMNET_NAT_DEF_TIMEOUT_MS 120000 /* idle mapping lifetime (RFC 4787 REQ-5: >= 2 min) */
#define SIMNET_MAX_DGRAM 65535

struct simnet_opts {
	uint64_t seed; /* random generator seed (0 is replaced by 1) */
	enum simnet_clock clock;
	unsigned int queue_max; /* default SIMNET_DEF_QUEUE_MAX */
};

/* Path properties. A datagram crosses the sender's host settings, the
 * pair's link settings (if any) and the receiver's host settings: it is
 * lost if any stage loses it, and its delay is the sum of the stages'. */
struct simnet_link {
	uint32_t latency_us;  /* one-way delay */
	uint32_t jitter_us;   /* plus uniform 0..jitter_us */
	uint32_t loss_ppm;    /* loss probability, parts per million */
	uint32_t reorder_ppm; /* probability of an extra delay... */
	uint32_t reorder_us;  /* ...of this much (0: 1 ms), which reorders it */
};

/* NAT filtering of inbound datagrams (RFC 4787 terms). Mappings are
 * always endpoint-independent: one inside addr:port gets one outside port
 * whatever it sends to. */
enum simnet_nat_filter {
	SIMNET_NAT_EIF = 0,  /* endpoint-independent: anyone may send to a mapping */
	SIMNET_NAT_ADF = 1,  /* address-dependent: only addresses the inside host sent to */
	SIMNET_NAT_APDF = 2, /* address- and port-dependent */
};

struct simnet_stats {
	uint64_t sent;	     /* datagrams handed to simnet_send */
	uint64_t delivered;  /* returned by simnet_recv */
	uint64_t lost;	     /* dropped by a loss setting */
	uint64_t no_route;   /* no host or NAT mapping for the destination */
	uint64_t filtered;   /* refused by a NAT's filter */
	uint64_t queue_full; /* drop-tail at a host queue */
	uint64_t host_down;  /* sent by or to a host marked down */
	uint64_t nat_mapped; /* NAT mappings created */
};

/* Create a network. Returns 0, -EINVAL, -ENOMEM. */
int simnet_new(struct simnet **out, const struct simnet_opts *opts);
/* Free the network, its hosts, NATs and datagrams in flight. No host may
 * be attached to a running engine any more. NULL-safe. */
void simnet_free(struct simnet *sn);

/* Current time in ns (usable as an engine clock: engine_opts.clock with
 * clock_arg = the network). */
uint64_t simnet_now_ns(void *sn);
/* Move the clock forward by ns and wake every attached queue. */
void simnet_advance(struct simnet *sn, uint64_t ns);
/* Nanoseconds until the next datagram becomes deliverable (0: one is due
 * now), or -1 when nothing is in flight. */
int64_t simnet_next_ns(struct simnet *sn);
void simnet_stats_get(struct simnet *sn, struct simnet_stats *out);

/*
 * Add a host with address addr (port ignored). nat NULL: a public host;
 * otherwise the host sits behind that NAT and addr is its inside address.
 * Returns 0, -EINVAL, -EEXIST (address taken), -ENOSPC, -ENOMEM.
 */
int simnet_host_add(struct simnet *sn, const struct io_addr *addr, struct simnet_nat *nat,
		    struct simnet_host **out);
/* Settings applied to everything the host sends and receives. */
void simnet_host_set_link(struct simnet_host *h, const struct simnet_link *l);
/* down != 0: the host loses everything it sends and everything sent to it
 * (a host that died or was cut off); 0 brings it back. */
void simnet_host_set_down(struct simnet_host *h, int down);
/* The host's address (as given to simnet_host_add). */
void simnet_host_addr(const struct simnet_host *h, struct io_addr *out);

/* Settings between the hosts (or NAT outside addresses) a and b, both
 * directions; ports ignored. Replaces an earlier setting of the pair.
 * Returns 0, -ENOSPC. */
int simnet_link_set(struct simnet *sn, const struct io_addr *a, const struct io_addr *b,
		    const struct simnet_link *l);

/* Add a NAT with outside address outside (port ignored). timeout_ms: idle
 * lifetime of a mapping (0: SIMNET_NAT_DEF_TIMEOUT_MS). Outside ports are
 * allocated from 20000 up, in order. Returns 0, -EINVAL, -EEXIST, -ENOSPC,
 * -ENOMEM. */
int simnet_nat_add(struct simnet *sn, const struct io_addr *outside, enum simnet_nat_filter filter,
		   uint32_t timeout_ms, struct simnet_nat **out);
/* NAT mapping behaviour (RFC 4787 section 4.1). */
enum simnet_nat_mapping {
	SIMNET_NAT_MAP_EIM = 0, /* endpoint-independent: one outside port per inside endpoint */
	SIMNET_NAT_MAP_ADM = 1, /* address-dependent: a new outside port per remote address */
};
/* Set the NAT's mapping behaviour (default EIM) before it maps anything.
 * Returns 0 or -EINVAL. */
int simnet_nat_set_mapping(struct simnet_nat *nat, enum simnet_nat_mapping m);
/* Live mappings of the NAT. */
unsigned int simnet_nat_mappings(struct simnet_nat *nat);

/*
 * Send a datagram from host h, UDP source port sport, to dst (copied).
 * Always 0 once accepted for the network (loss, no route, filtering and
 * full queues count in the stats, as on a real network); -EMSGSIZE (len >
 * SIMNET_MAX_DGRAM), -EINVAL.
 */
int simnet_send(struct simnet_host *h, uint16_t sport, const struct io_addr *dst, const void *data,
		size_t len);

/* ---- receive side, used by the mem backend ---- */

/* A datagram handed out by simnet_recv; free with simnet_pkt_free. */
struct simnet_pkt {
	struct simnet_pkt *next; /* internal */
	uint64_t at, seq;	 /* internal: delivery time, tie-break */
	struct io_addr src, dst; /* as seen by the receiver (after NAT rewriting) */
	uint32_t len;
	uint8_t data[];
};

/* Attach receive queue qid (< SIMNET_MAX_QUEUES) of h: datagrams to h are
 * spread over the attached queues by a hash of their source. *efd gets an
 * eventfd signalled when something arrives or the clock moves (owned by
 * the network). Returns 0, -EINVAL, -EBUSY, -errno. */
int simnet_attach(struct simnet_host *h, unsigned int qid, int *efd);
/* Detach the queue; datagrams waiting in it are dropped. */
void simnet_detach(struct simnet_host *h, unsigned int qid);
/* Take up to max datagrams due by now from queue qid. Returns the count. */
int simnet_recv(struct simnet_host *h, unsigned int qid, struct simnet_pkt **pkts,
		unsigned int max);
/* Nanoseconds until the queue's next datagram is due, -1 if none. */
int64_t simnet_queue_next_ns(struct simnet_host *h, unsigned int qid);
/* The network the host belongs to. */
struct simnet *simnet_host_net(struct simnet_host *h);
void simnet_pkt_free(struct simnet_pkt *p);

/* ---- driving engines on one thread (simrun.c) ---- */
struct engine;
/* The discrete-event driver over engines and this network is
 * engine_sim_run() (include/weft/engine.h): it sits above the engine. */

#endif
