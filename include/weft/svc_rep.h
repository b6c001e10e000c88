/* SPDX-License-Identifier: MIT */
/*
 * Lasting provider reputation (docs/SERVICE.md, "Reputation"): per
 * provider key, the outcomes of this node's calls to it (successes and
 * failures, decaying counts) and their latency (EWMA), plus a "dead"
 * mark set when a provider could not be reached. I/O-free: every entry
 * point takes the wall clock in seconds; persistence is the caller's
 * (svc_rep_encode / svc_rep_decode give a fixed 40-byte record per key,
 * which the fabric keeps in the store's "svc_reputation" database).
 * Bounded: at most max entries; a new key past that replaces the entry
 * updated longest ago.
 */
#ifndef WEFT_SVC_REP_H
#define WEFT_SVC_REP_H

#include <stddef.h>
#include <stdint.h>

#include "weft/identity.h"

/* 4096 providers (56 bytes each: 224 KiB): far more than a node calls. */
#define SVC_REP_DEFAULT_MAX 4096u
/* Counts halve every day without news: a provider that failed last
 * month is judged by what it does now. */
#define SVC_REP_HALF_LIFE_S 86400u
/* Latency EWMA weight of a new sample: 1/8, as TCP's SRTT (RFC 6298). */
#define SVC_REP_EWMA_SHIFT 3
/* A provider marked dead (unreachable) is ordered last for 60 s, the
 * directory cache's TTL: the next lookup tries it again. */
#define SVC_REP_DEAD_S 60u
/* Reputation scale (svc_rep_score): 0..100 in steps of 10; dead: -100. */
#define SVC_REP_DEAD_SCORE (-100)
/* The stored record of one key. */
#define SVC_REP_REC_LEN 40

struct svc_rep;

/* What is known of one provider (counts decayed to the time asked). */
struct svc_rep_info {
	double ok, failed;   /* decayed counts of calls */
	uint32_t lat_us;     /* latency EWMA of answered calls, 0 = none yet */
	uint64_t updated_s;  /* last outcome, wall clock */
	uint64_t dead_until; /* wall clock; 0 = not dead */
	int32_t score;	     /* svc_rep_score */
};

/* max 0: SVC_REP_DEFAULT_MAX. 0 or -ENOMEM. */
int svc_rep_new(struct svc_rep **out, uint32_t max);
void svc_rep_free(struct svc_rep *r); /* NULL-safe */

/*
 * One call outcome for key at now_s: ok 1 (answered: latency_us is
 * counted into the EWMA and the dead mark is lifted) or 0 (failed). dead 1
 * additionally marks the provider unreachable for SVC_REP_DEAD_S. ok -1:
 * no outcome, only the dead mark (when dead is 1): a failure already
 * counted. Returns
 * 0, or -ENOMEM. *evicted (may be NULL) receives 1 and the key dropped
 * to make room, for the caller to forget it in its store.
 */
int svc_rep_record(struct svc_rep *r, const uint8_t key[IDENTITY_PK_LEN], int ok,
		   uint32_t latency_us, int dead, uint64_t now_s, int *evicted,
		   uint8_t evicted_key[IDENTITY_PK_LEN]);

/*
 * Score of key at now_s: -100 when dead, else 10 * floor(10 * (ok + 1) /
 * (ok + failed + 2)) (Laplace's rule, in steps of 10 so that ordering
 * within a step is by latency); 50 for a key never seen. Fills *info when
 * not NULL (zeroes and the score for an unknown key). Returns the score.
 */
int32_t svc_rep_score(const struct svc_rep *r, const uint8_t key[IDENTITY_PK_LEN], uint64_t now_s,
		      struct svc_rep_info *info);

/* Entries held. */
size_t svc_rep_count(const struct svc_rep *r);

/*
 * Dirty entries (changed since they were last taken): up to max keys into
 * keys, their records into recs, and marked clean. Returns how many.
 */
size_t svc_rep_take_dirty(struct svc_rep *r, uint8_t (*keys)[IDENTITY_PK_LEN],
			  uint8_t (*recs)[SVC_REP_REC_LEN], size_t max);

/*
 * Load one stored record (hostile disk: checked; a bad one is refused with
 * -EINVAL and the table is unchanged). The entry is not dirty. 0, -EINVAL,
 * -ENOMEM; past max, the oldest entry is replaced as in svc_rep_record.
 */
int svc_rep_load(struct svc_rep *r, const uint8_t *key, size_t klen, const uint8_t *rec,
		 size_t len);

#endif
