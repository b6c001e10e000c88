/* SPDX-License-Identifier: MIT */
/*
 * The announce schedule (annsched.c): which ids to announce, when, to
 * which DHT nodes, so that a seed host with 65,536 blobs announces them all
 * in minutes while no remote node sees more than a fixed budget of queries
 * from us. Pure: no I/O, no lock, no clock (every call takes now in ms);
 * announce.c drives it with the DHT, tests with a virtual clock
 * (tests/unit/test_content_annsched.c, tests/sim/test_sim_announce.c).
 *
 * Batching by neighbourhood. Ids are kept sorted by their DHT key (the
 * first 20 bytes). A get_peers lookup for one key T returns the k closest
 * nodes S and a write token from each; that set is kept as a
 * neighbourhood ("hood") for CN_ANQ_HOOD_TTL_MS. If the farthest node of
 * S shares L leading bits with T, every key X sharing L +
 * CN_ANQ_HOOD_BITS bits with T is announced to S with S's tokens (BEP 5
 * tokens are per IP) and costs no lookup of its own. Why that is close
 * enough: every node sharing more than L bits with X shares them with T,
 * so it is nearer T than S's farthest and is in S; the rest of X's k
 * closest are near T too. Measured against the true k closest
 * (tests/unit/test_content_annsched.c, 512 nodes, 16,384 ids): each id
 * reaches at least 3 and on average 6.9 of its 8 closest nodes (2 bits:
 * 4 and 7.1, for twice the lookups), one lookup serves about 100 ids,
 * and another node's get_peers finds us
 * (tests/sim/test_sim_announce.c).
 *
 * Pacing. Every remote node we send to has a token bucket: CN_ANQ_NODE_RATE
 * announce_peer a second, CN_ANQ_NODE_BURST deep (CN_ANQ_NODE_PER_MIN in
 * any minute). A batch goes to the hood's nodes with room for it (at
 * least CN_ANQ_MIN_NODES) and is as large as the CN_ANQ_MIN_NODES-th
 * fullest bucket allows; a lookup charges one query to each node it
 * returns. Lookups start at most 8 a second. The budget of all queries a
 * node may see from the announcer is CN_ANQ_BUDGET_PER_MIN (300 a minute,
 * libtorrent's per-node block_ratelimit of 5 a second; our own
 * dht.budget_rate is 50).
 */
#ifndef WEFT_CONTENT_ANNSCHED_H
#define WEFT_CONTENT_ANNSCHED_H

#include <stddef.h>
#include <stdint.h>

#include "weft/dht.h"

#define CN_ANQ_NODE_RATE 3  /* announce_peer a second to one remote node */
#define CN_ANQ_NODE_BURST 3 /* bucket depth */
#define CN_ANQ_NODE_PER_MIN (60 * CN_ANQ_NODE_RATE + CN_ANQ_NODE_BURST) /* 183 */
/* Lookups: one every CN_ANQ_LOOKUP_EVERY_MS, 8 at once at most: the old
 * announcer's pace (one lookup per id, 8 a second), so where ids share no
 * neighbourhood (the Mainline DHT's millions of nodes) announcing is never
 * slower than before, and where they do, one lookup serves many. */
#define CN_ANQ_LOOKUP_EVERY_MS 125
#define CN_ANQ_LOOKUP_BURST 8
/* The budget: queries of the announcer any one remote node may receive in
 * any minute, 300 (5 a second: libtorrent's per-node block_ratelimit).
 * announce_peer is held to CN_ANQ_NODE_PER_MIN (183) by construction; a
 * lookup queries a node at most once (twice on a timeout), and its first
 * hops are 3 of the 8 nodes of our routing table nearest its target, so
 * even the busiest of those sees a fraction of the lookups: what lookups
 * add is measured, at the receiving side, by tests/sim/test_sim_announce.c
 * and bench/bench_announce.c, which check the total against this. */
#define CN_ANQ_BUDGET_PER_MIN 300
/* A batch goes to the hood's nodes with room for it, at least 6 of the 8:
 * a node in several hoods does not hold all of them back, and an id is
 * still stored on 6 of the nodes its lookup found. */
#define CN_ANQ_MIN_NODES 6
#define CN_ANQ_HOOD_BITS 1    /* a hood serves keys sharing L + 1 bits with its lookup's */
#define CN_ANQ_BATCH_MAX 4    /* ids in one dht_announce_to (<= DHT_ANNOUNCE_TO_MAX) */
#define CN_ANQ_MAX_LOOKUPS 16 /* lookups in flight (of the DHT's max_lookups, 64) */
#define CN_ANQ_MAX_SENDS                                                                           \
	16 /* batches in flight: 16 x 4 ids x 8 nodes = 512 of the DHT's 1024 transactions */
#define CN_ANQ_HOODS 512 /* neighbourhoods kept */
/* 4 min: tokens live 5 to 10 min (BEP 5 implementations rotate their
 * secret every 5 min), so a hood's tokens are still good when it expires. */
#define CN_ANQ_HOOD_TTL_MS 240000
#define CN_ANQ_NODES 8192	    /* remote nodes tracked by the pacer (power of two) */
#define CN_ANQ_RETRY_MS 30000	    /* an announce or lookup that failed: again after */
#define CN_ANQ_MAX (65536u + 4096u) /* ids: every blob plus every share */

struct cn_anq;

/* One unit of work handed out by cn_anq_next. */
struct cn_anq_work {
	int kind;		    /* CN_ANQ_LOOKUP or CN_ANQ_SEND */
	uint8_t target[DHT_ID_LEN]; /* LOOKUP: get_peers this */
	/* SEND: these keys to these nodes (their tokens) */
	uint8_t keys[CN_ANQ_BATCH_MAX][DHT_ID_LEN];
	size_t nkeys;
	struct dht_node_info nodes[DHT_K];
	size_t nnodes;
	uint64_t wake_ms; /* nothing to do: call again at this time at the latest */
};
enum { CN_ANQ_IDLE = 0, CN_ANQ_LOOKUP = 1, CN_ANQ_SEND = 2 };

struct cn_anq_stats {
	uint64_t backlog;			    /* ids due now or overdue */
	uint64_t oldest_age_ms;			    /* how late the most overdue id is (0: none) */
	uint64_t ids;				    /* ids held */
	uint64_t lookups, sends, announced, failed; /* totals */
	uint64_t hoods;				    /* neighbourhoods live */
	uint64_t inflight_lookups, inflight_sends;
};

/* reannounce_ms: period of an id once announced (20 min in weftd). */
int cn_anq_new(struct cn_anq **out, uint64_t reannounce_ms);
void cn_anq_free(struct cn_anq *q);
/* Queue id (32: content id, 20: share id; its DHT key is the first 20
 * bytes) due now; an id already held is made due now. -ENOSPC when
 * CN_ANQ_MAX ids are held, -ENOMEM. */
int cn_anq_add(struct cn_anq *q, const uint8_t *id, size_t len, uint64_t now);
/* Stop announcing id (an announce in flight completes unseen). */
void cn_anq_remove(struct cn_anq *q, const uint8_t *id, size_t len);
/*
 * The next thing to do at now: CN_ANQ_SEND (w->keys to w->nodes: call
 * dht_announce_to, then cn_anq_send_done), CN_ANQ_LOOKUP (get_peers
 * w->target, then cn_anq_lookup_done), or CN_ANQ_IDLE with w->wake_ms.
 */
int cn_anq_next(struct cn_anq *q, uint64_t now, struct cn_anq_work *w);
/* A lookup of target ended: the k closest nodes with their tokens (n 0:
 * it failed, its ids retried after CN_ANQ_RETRY_MS). */
void cn_anq_lookup_done(struct cn_anq *q, const uint8_t target[DHT_ID_LEN],
			const struct dht_node_info *nodes, size_t n, uint64_t now);
/* A batch ended: ok (some node stored it) makes the keys due again after
 * the reannounce period, else after CN_ANQ_RETRY_MS. */
void cn_anq_send_done(struct cn_anq *q, const uint8_t (*keys)[DHT_ID_LEN], size_t n, int ok,
		      uint64_t now);
void cn_anq_stats(struct cn_anq *q, uint64_t now, struct cn_anq_stats *st);
/* The keys held (removed ones skipped), from the *pos-th entry on: how
 * many written to out (at most cap); *pos moves past them. */
size_t cn_anq_keys(const struct cn_anq *q, size_t *pos, uint8_t (*out)[DHT_ID_LEN], size_t cap);

#endif
