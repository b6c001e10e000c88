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
 * 4 and 7.1, for twice the lookups, which the lookup pace below makes
 * too slow: 731 s instead of 531 s for 65,536 ids in the benchmark), one
 * lookup serves about 100 ids, and another node's get_peers finds us
 * (tests/sim/test_sim_announce.c).
 *
 * Pacing. Every remote node we send to has a token bucket: CN_ANQ_NODE_RATE
 * announce_peer a second, CN_ANQ_NODE_BURST deep (CN_ANQ_NODE_PER_MIN in
 * any minute). A batch goes to the hood's nodes with room for it (at
 * least CN_ANQ_MIN_NODES) and is as large as the CN_ANQ_MIN_NODES-th
 * fullest bucket allows; a lookup charges one query to each node it
 * returns. Lookups themselves start at most one a second (2 at once):
 * their first hops are the few nodes of our routing table nearest the
 * targets, the same for many lookups. So no node receives more than
 * CN_ANQ_BUDGET_PER_MIN (245) queries from the announcer in any minute:
 * about 4 a second, under libtorrent's per-node block_ratelimit (5 a
 * second); our own dht.budget_rate is 50.
 */
#ifndef WEFT_CONTENT_ANNSCHED_H
#define WEFT_CONTENT_ANNSCHED_H

#include <stddef.h>
#include <stdint.h>

#include "weft/dht.h"

#define CN_ANQ_NODE_RATE 3   /* announce_peer a second to one remote node */
#define CN_ANQ_NODE_BURST 3  /* bucket depth */
#define CN_ANQ_NODE_PER_MIN (60 * CN_ANQ_NODE_RATE + CN_ANQ_NODE_BURST) /* 183 */
/* Lookups: one every CN_ANQ_LOOKUP_EVERY_MS, 2 at once at most, whatever
 * the backlog: a node on every lookup's path (our routing table's nearest
 * to the targets) gets at most 62 get_peers a minute from them. */
#define CN_ANQ_LOOKUP_EVERY_MS 1000
#define CN_ANQ_LOOKUP_BURST 2
/* The budget: queries of the announcer that any one remote node receives
 * in any minute, at most: its announce_peer plus every lookup's get_peers
 * (245, about 4 a second). */
#define CN_ANQ_BUDGET_PER_MIN (CN_ANQ_NODE_PER_MIN + 60000 / CN_ANQ_LOOKUP_EVERY_MS + \
			       CN_ANQ_LOOKUP_BURST)
/* A batch goes to the hood's nodes with room for it, at least 6 of the 8:
 * a node in several hoods does not hold all of them back, and an id is
 * still stored on 6 of its k closest nodes at least. */
#define CN_ANQ_MIN_NODES 6
#define CN_ANQ_HOOD_BITS 1 /* a hood serves keys sharing L + 2 bits with its lookup's */
#define CN_ANQ_BATCH_MAX 4   /* ids in one dht_announce_to (<= DHT_ANNOUNCE_TO_MAX) */
#define CN_ANQ_MAX_LOOKUPS 16 /* lookups in flight (of the DHT's max_lookups, 64) */
#define CN_ANQ_MAX_SENDS 16  /* batches in flight: 16 x 4 ids x 8 nodes = 512 of the DHT's 1024 transactions */
#define CN_ANQ_HOODS 512     /* neighbourhoods kept */
/* 4 min: tokens live 5 to 10 min (BEP 5 implementations rotate their
 * secret every 5 min), so a hood's tokens are still good when it expires. */
#define CN_ANQ_HOOD_TTL_MS 240000
#define CN_ANQ_NODES 8192    /* remote nodes tracked by the pacer (power of two) */
#define CN_ANQ_RETRY_MS 30000 /* an announce or lookup that failed: again after */
#define CN_ANQ_MAX (65536u + 4096u) /* ids: every blob plus every share */

struct cn_anq;

/* One unit of work handed out by cn_anq_next. */
struct cn_anq_work {
	int kind; /* CN_ANQ_LOOKUP or CN_ANQ_SEND */
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
	uint64_t backlog;	 /* ids due now or overdue */
	uint64_t oldest_age_ms;	 /* how late the most overdue id is (0: none) */
	uint64_t ids;		 /* ids held */
	uint64_t lookups, sends, announced, failed; /* totals */
	uint64_t hoods;		 /* neighbourhoods live */
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

#endif
