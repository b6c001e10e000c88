/* SPDX-License-Identifier: MIT */
/* Service module internals shared by router.c, limits.c and builtin.c. */
#ifndef WEFT_SVC_INT_H
#define WEFT_SVC_INT_H

#include <stdint.h>

#include "weft/svc_router.h"

#define SVC_NIL UINT32_MAX

/* Calls-per-minute limiter: a sliding-window counter. Two fixed one-minute
 * windows; the estimate for the last 60 s is cur + prev weighted by how much
 * of the previous window still lies inside those 60 s (rounded up). 24
 * bytes per peer, no timestamps list, and never more than `limit` calls in a
 * window-aligned minute (about `limit` in any rolling minute). */
struct svc_rate {
	uint64_t start; /* start of the current window, ns */
	uint32_t cur, prev;
};

struct svc_peer_ent {
	uint8_t key[IDENTITY_PK_LEN];
	struct sockaddr_storage addr;
	uint32_t gen;
	uint32_t hnext;		     /* hash chain, SVC_NIL = end */
	uint32_t lru_prev, lru_next; /* prev = more recent */
	uint32_t inflight;
	struct svc_rate rate;
	uint64_t score_mp; /* violation score in milli-points */
	uint64_t score_ns; /* last decay */
	uint64_t banned_until;
};

/* Peer table: fixed hash buckets, entries grown on demand up to max. */
struct svc_peers {
	uint32_t max, n, alloc;
	uint32_t mask;
	uint32_t *heads; /* per bucket: first entry index + 1, 0 = empty */
	struct svc_peer_ent *ents;
	uint32_t lru_head, lru_tail;
	uint8_t key[16]; /* SipHash key */
	uint64_t evicted;
};

int svc_peers_init(struct svc_peers *p, uint32_t max, uint64_t seed);
void svc_peers_fini(struct svc_peers *p);
/* Find a peer; NULL if not tracked. */
struct svc_peer_ent *svc_peers_find(struct svc_peers *p, const uint8_t key[IDENTITY_PK_LEN]);
/* Find or create (evicting the LRU idle peer when full); marks it most
 * recently used. NULL when every tracked peer has calls in flight, or on
 * allocation failure. */
struct svc_peer_ent *svc_peers_get(struct svc_peers *p, const uint8_t key[IDENTITY_PK_LEN],
				   uint64_t now);
uint32_t svc_peers_index(const struct svc_peers *p, const struct svc_peer_ent *e);

/* Count one call at now if the last minute holds fewer than limit:
 * 1 counted, 0 over the limit (nothing counted). */
int svc_rate_take(struct svc_rate *w, uint32_t limit, uint64_t now);

/* Decay the score to now. */
void svc_score_decay(struct svc_peer_ent *e, uint64_t decay_ns, uint64_t now);
/* Points (milli) a rejection of class err is worth. */
uint64_t svc_score_points(int err);

#endif
