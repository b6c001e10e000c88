/* SPDX-License-Identifier: MIT */
/*
 * The serving scheduler (sched.c): which requester's request is answered
 * next, and when. A protocol core: no I/O, no lock, no clock of its own;
 * every call takes the time (ns, any monotonic origin) and the caller
 * (serve.c, on an engine worker) drives it:
 *
 *   cn_sched_push()   a request arrived: queued on its peer's bounded queue
 *   cn_sched_next()   the next request to answer, or when to ask again
 *   cn_sched_unpop()  the answer could not be written: back to the head
 *
 * Fairness: deficit round robin across the peers with queued requests
 * (M. Shreedhar, G. Varghese, 1995): each turn a peer's deficit grows by
 * the quantum and it is served while its head request's cost fits, so
 * over time each busy peer gets the same bytes whatever its request
 * pattern. Caps: token buckets in bytes/s, one per peer, and the node's
 * cap (struct cn_rate) split between the schedulers that share it (one
 * per worker) in proportion to their backlogged peers, so a peer's share
 * does not depend on which worker it landed on (each scheduler publishes
 * its count in an atomic; its part is a bucket of its own); a request is served when its buckets
 * are not in debt and then takes its cost from them (a bucket may go into debt by one request: a
 * chunk is larger than a small burst). A peer of class CN_CLASS_LAN does not draw on the global
 * bucket unless the options say so (libtorrent's local peer class). Rate 0 = unlimited.
 *
 * Requester scoring (libtorrent-like "peer errors"): the caller reports
 * what a peer did wrong (cn_sched_fault); scores decay over time, and
 * cn_sched_fault returns 1 once the peer's score crosses the threshold
 * (once per peer), or its address's (the sum over its connections, so a
 * requester that reconnects keeps what it earned): the caller decides on
 * the ban (only for a validated peer: completed QUIC handshake).
 *
 * Checked with a virtual clock by tests/unit/test_content_sched.c.
 */
#ifndef WEFT_CONTENT_SCHED_H
#define WEFT_CONTENT_SCHED_H

#include <stdatomic.h>
#include <stdint.h>

#include "content/content_node_int.h"

/* Defaults (0 in struct cn_sched_opts selects them). */
#define CN_SCHED_QUANTUM (B3TREE_CHUNK_LEN + CN_ANS_HEAD) /* one chunk answer per turn */
#define CN_SCHED_PEERS 256	/* peers tracked per scheduler (per engine worker) */
#define CN_SCHED_PEER_QUEUE 64	/* requests queued per peer */
#define CN_SCHED_BURST_MS 100	/* bucket depth: this long at the rate, at least one chunk */
#define CN_SCHED_BAN_SCORE 100	/* score at which a peer is reported for a ban */
#define CN_SCHED_DECAY_S 60	/* a score halves in this long */
#define CN_SCHED_BLAME 256	/* requester addresses scored (IPv4, IPv6 /64) per scheduler */
#define CN_SCHED_RATE_SLOTS 8	/* per-peer rate window, 1 s slots */
#define CN_SCHED_SEEN 32	/* chunks remembered per peer (repeat requests) */
#define CN_SCHED_REPEAT_MS 1000 /* a repeat within this of the serve is scored */
#define CN_SCHED_IDLE_FREE_S 10 /* a peer idle this long gives its request queue back */
/* A scheduler waiting for its part of the global cap looks again after at
 * most 10 ms: its part grows when another worker's peers go idle. */
#define CN_SCHED_GLOBAL_RECHECK_NS 10000000ull

/* Score costs (docs/CONTENT.md "Requester scoring"). */
enum cn_fault {
	CN_FAULT_UNANNOUNCED = 0, /* asked for content or a chunk we never announced */
	CN_FAULT_REPEAT,	  /* asked again for a chunk already served to it */
	CN_FAULT_STREAMS,	  /* more fetch streams open at once than allowed */
	CN_FAULT_BAD,		  /* a malformed request */
	CN_FAULT_N
};
_Static_assert(CN_FAULT_N == CN_FAULT_KINDS, "fault kinds");
extern const unsigned int cn_fault_cost[CN_FAULT_N];
/* "unannounced", "repeat", "streams", "bad" (metrics labels; serve.c). */
const char *cn_fault_name(enum cn_fault f);

enum cn_class {
	CN_CLASS_WAN = 0,
	CN_CLASS_LAN = 1, /* private, loopback, link-local or ULA address */
};

/* struct cn_rate (content_node_int.h): the node-wide cap several
 * schedulers share. Set the rate (live; any thread). */
void cn_rate_set(struct cn_rate *r, uint64_t bytes_per_s);

struct cn_sched_opts {
	unsigned int quantum;	  /* bytes per turn; CN_SCHED_QUANTUM */
	unsigned int max_peers;	  /* CN_SCHED_PEERS */
	unsigned int peer_queue;  /* CN_SCHED_PEER_QUEUE */
	unsigned int ban_score;	  /* CN_SCHED_BAN_SCORE */
	unsigned int decay_s;	  /* CN_SCHED_DECAY_S */
};

/* Live limits (cn_sched_limits): bytes/s, 0 = unlimited. */
struct cn_sched_limits {
	uint64_t peer_rate;  /* each WAN peer */
	uint64_t lan_rate;   /* each LAN peer */
	int lan_global;	     /* LAN peers draw on the global bucket too */
};

/* One queued request: what serve.c needs to answer it, and its cost. */
struct cn_sched_item {
	struct cn_sreq r;
	uint32_t cost; /* bytes it will send (a chunk: its length + header) */
};

/* A peer's state for the status views (cn_sched_peers). */
struct cn_sched_peer_info {
	uint64_t peer;
	uint8_t cls;
	unsigned int queued;
	uint64_t sent_bytes, served, rate_bps; /* rate: bytes/s over the last few seconds */
	unsigned int score, streams;
	uint64_t deficit;
	struct sockaddr_storage addr;
	/* answers written to it and not yet acknowledged, bytes: filled by
	 * serving (cn_serve_held_tick), not by the scheduler */
	uint64_t held;
};

struct cn_sched;
/* global: the node-wide bucket (may be NULL: no global cap). 0 or -ENOMEM. */
int cn_sched_new(struct cn_sched **out, const struct cn_sched_opts *o, struct cn_rate *global);
void cn_sched_free(struct cn_sched *s);
void cn_sched_limits(struct cn_sched *s, const struct cn_sched_limits *l);

/*
 * Queue a request of peer (a connection handle; addr its address, cls its
 * class, both kept from its first request). 0; -ENOBUFS: the peer's queue
 * is full; -ENOSPC: the peer table is full of peers with queued requests.
 */
int cn_sched_push(struct cn_sched *s, uint64_t peer, enum cn_class cls,
		  const struct sockaddr_storage *addr, const struct cn_sched_item *it,
		  uint64_t now_ns);
/*
 * The next request to answer into *out: 1. 0 when none may go now:
 * *wake_ns is how long until one may (UINT64_MAX: nothing queued).
 */
int cn_sched_next(struct cn_sched *s, uint64_t now_ns, struct cn_sched_item *out,
		  uint64_t *wake_ns);
/* The request just taken by cn_sched_next could not be sent: back at the
 * head of its peer's queue, its cost refunded. */
void cn_sched_unpop(struct cn_sched *s, const struct cn_sched_item *it);
/* The request just taken could not be sent because its peer holds too
 * many of our answers already (serve.c): back at the head of its peer's
 * queue as cn_sched_unpop does, and the peer passed over until until_ns
 * while the others are served (cn_sched_next's wake counts it). */
void cn_sched_defer(struct cn_sched *s, const struct cn_sched_item *it, uint64_t until_ns);
/* Count sent bytes not taken through cn_sched_next (e.g. the difference
 * between estimated cost and the answer's real length may be negative). */
void cn_sched_account(struct cn_sched *s, uint64_t peer, int64_t bytes, uint64_t now_ns);
/*
 * A fault of peer (addr: its validated address, or NULL): its score and
 * its address's grow by cn_fault_cost[f] (after decay). Returns 1 the
 * first time the peer's score reaches the ban threshold, or whenever its
 * address's does (which then starts again from 0), else 0. A peer
 * unknown so far gets an entry when one is free; an address gets one of
 * CN_SCHED_BLAME (the lowest decayed score replaced).
 */
int cn_sched_fault(struct cn_sched *s, uint64_t peer, const struct sockaddr_storage *addr,
		   enum cn_fault f, uint64_t now_ns);
/* Every peer with nothing queued and no request or answer for idle_ns
 * gives its request queue back (peer_queue items: 27 KiB by default);
 * its entry (score, rate window, chunks seen) keeps its slot until
 * reused, and a new request allocates the queue again. Returns how many
 * queues went. Called each second by the serving worker: without it a
 * queue stayed allocated for every connection ever served until its slot
 * was taken over (256 per worker: up to 6.75 MiB each; the soak's heap
 * grew by one per new downloader). */
unsigned int cn_sched_trim(struct cn_sched *s, uint64_t now_ns, uint64_t idle_ns);
/*
 * Is this request of peer for the chunk named by key (a hash of id and
 * index) a repeat? 1 if key is among the last CN_SCHED_SEEN chunks served
 * to it and was served less than CN_SCHED_REPEAT_MS ago; else 0, and key
 * is recorded as served now. An honest downloader asks a provider again
 * only after its request timed out (content's req_timeout, 5 s by
 * default; an answer served late can cross such a retry), so only a
 * quick repeat is scored: a lossy or overloaded path never adds up to a
 * ban.
 */
int cn_sched_seen(struct cn_sched *s, uint64_t peer, uint64_t key, uint64_t now_ns);
/* Count a fetch stream of peer opened (delta 1) or closed (-1), or only
 * ask (0): the number open after it; 0 when opening and no entry is free
 * (every tracked peer has requests queued or streams open): the caller
 * refuses the stream. */
unsigned int cn_sched_streams(struct cn_sched *s, uint64_t peer, int delta, uint64_t now_ns);
/* Requests queued in all. */
unsigned int cn_sched_queued(const struct cn_sched *s);
/* Up to cap peers (those with an entry) into out: the count. */
unsigned int cn_sched_peers(struct cn_sched *s, uint64_t now_ns, struct cn_sched_peer_info *out,
			    unsigned int cap);

#endif
