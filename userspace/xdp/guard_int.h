/* SPDX-License-Identifier: MIT */
/* Internal state of the guard (guard.c, guard_limits.c, guard_ctl.c, valid.c). */
#ifndef WEFT_GUARD_INT_H
#define WEFT_GUARD_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "weft/guard.h"

struct policer;
struct store_write;

/* One way of the validated-source table: a seqlock (seq odd while a
 * writer is inside) over the key and its expiry (0 = empty). */
struct guard_valid_slot {
	_Atomic uint32_t seq;
	_Atomic uint64_t k[2];
	_Atomic uint64_t expires_ns;
};

/* One size of the table (valid.c); immutable once published. */
struct guard_valid_tab {
	struct guard_valid_slot *slots;
	size_t nsets; /* power of two; 8 ways each */
	size_t bytes; /* of the slot mapping */
};

#define GUARD_VALID_MAX_TABS 64

/* The table starts small and doubles up to its capacity (valid.c): tab is
 * the current one (atomic: readers take no lock), tabs[] every one made,
 * the replaced ones' pages given back and unmapped by fini. */
struct guard_valid {
	struct guard_valid_tab *tab;
	struct guard_valid_tab *tabs[GUARD_VALID_MAX_TABS];
	unsigned int ntabs;
	size_t nsets_max;
	uint64_t seed;
	uint64_t ttl_ns;
};

/* valid.c. init: capacity rounded down to a power of two (>= 8 ways). */
int guard_valid_init(struct guard_valid *v, uint32_t capacity, uint64_t ttl_ns);
void guard_valid_fini(struct guard_valid *v);
size_t guard_valid_capacity(const struct guard_valid *v);
/* Expiry of k's entry (0 = absent). Lock-free; any thread. */
uint64_t guard_valid_get(const struct guard_valid *v, const struct wxdp_src_key *k);
/* Add or refresh k until now + ttl. Writers serialise (guard valid_lock).
 * Returns 1 and fills *evicted when a live entry was evicted, else 0. */
int guard_valid_put(struct guard_valid *v, const struct wxdp_src_key *k, uint64_t now,
		    struct wxdp_src_key *evicted);
/* Live entries (walks the table). */
size_t guard_valid_count(const struct guard_valid *v, uint64_t now);

struct guard_ban_ent {
	struct wxdp_ban b; /* b.kind says which quota it counts against */
	uint64_t seq;      /* automatic bans: last (re)ban, for LRU eviction */
};

struct guard {
	pthread_mutex_t lock;      /* bans table, config copy, stats snapshot */
	struct wxdp *xdp;
	struct policer **pol;
	unsigned int npol;
	struct wxdp_config config; /* uring mode: the policers' config */
	struct store *store;
	unsigned int db;
	struct guard_ban_ent *bans; /* GUARD_MAX_BANS entries, both kinds */
	size_t nbans;
	size_t nkind[2];           /* by enum wxdp_ban_kind */
	uint64_t ban_seq;
	uint64_t auto_evicted, auto_refused;
	int restoring;             /* guard_new() restoring from the store */
	/* run-time limits (guard_limits.c) */
	pthread_mutex_t limits_mu;  /* one PUT/DELETE at a time: memory and store agree */
	struct wxdp_config file_config; /* the configuration file's, for DELETE */
	json_t *rt_overrides;       /* keys set at run time (stored), or NULL */
	unsigned int rt_db;
	uint64_t snap[WXDP_STAT__MAX]; /* previous counters, for rates */
	uint64_t snap_ns;
	/* validated sources */
	pthread_mutex_t valid_lock; /* writers of valid (and the XDP mirror) */
	struct guard_valid valid;
	_Atomic uint8_t v6_prefix;  /* the config's, for keys without a lock */
	_Atomic uint64_t ev[4];     /* evidence reports by enum guard_evidence */
	_Atomic uint64_t valid_evicted;
};

/* Run-time settings kept across restarts: db GUARD_RT_DB, the limits set
 * through PUT /v1/xdp/limits under GUARD_RT_LIMITS_KEY (JSON: the keys
 * the operator set, merged over the configuration file at start). */
#define GUARD_RT_DB "guard_runtime"
#define GUARD_RT_LIMITS_KEY "xdp_limits"

/* guard_limits.c: apply the stored run-time limits over file_config (at
 * guard_new). 0 or -errno from the store; an unreadable record is logged
 * and ignored. */
int guard_limits_restore(struct guard *g);
/* The limits as the JSON object GET /v1/xdp/limits returns (new reference). */
json_t *guard_limits_json(const struct wxdp_config *c);
/* Merge a limits object (a PUT body, or the stored run-time overrides)
 * into c. 0 or -EINVAL with why (wl bytes) set. */
int guard_limits_merge(json_t *o, struct wxdp_config *c, char *why, size_t wl);
/* Queue the overrides ov as the stored record (NULL: delete it); *ticket
 * as store_write_queue. 0 or -errno. */
int guard_limits_queue(struct guard *g, json_t *ov, struct store_write **ticket);
/* A JSON integer 0..max into *out; 0 or -EINVAL. */
int guard_json_uint(json_t *v, uint64_t max, uint64_t *out);

#endif
