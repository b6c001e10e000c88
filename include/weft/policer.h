/* SPDX-License-Identifier: MIT */
/*
 * Software policer: the XDP program's policy (payload checks, ban list,
 * per-source token buckets, global budgets of unvalidated sources) for the
 * io_uring backend, where packets arrive
 * through UDP sockets instead of XDP. It takes the same struct wxdp_config
 * and the same struct wxdp_ban entries as the XDP program and returns the
 * same verdict for the same packet: the arithmetic is the one copy in
 * include/weft/xdp_policy.h. L2-L4 checks (VLAN, IP/UDP lengths,
 * fragments) are the kernel's job on this path.
 *
 * Memory is bounded: a fixed set-associative table of per-source buckets
 * (8 ways, least recently used way evicted) and a fixed ban table. The
 * unvalidated budgets are one bucket per class per policer: with one
 * policer per engine worker that is per worker, like the XDP program's
 * per-CPU budgets.
 * Threads: one owner calls policer_check() (the engine worker of its
 * queue); no lock is taken per packet. Any thread may set the config, add,
 * delete and collect bans (serialised among themselves, published to the
 * owner through a sequence counter) and read counters.
 */
#ifndef WEFT_POLICER_H
#define WEFT_POLICER_H

#include <stddef.h>
#include <stdint.h>

#include "weft/xdp.h"
#include "weft/xdp_abi.h"

struct policer;

/*
 * Is the source with rate-limit key k (wxdp_src_key_v4/v6 under the
 * config's v6_prefix) validated at now_ns? Called on the packet path, for
 * packets of a class with an unvalidated budget only: must not block (the
 * guard's table is read without a lock). Returns nonzero if validated.
 */
typedef int (*policer_valid_fn)(void *arg, const struct wxdp_src_key *k, uint64_t now_ns);

struct policer_opts {
	const struct wxdp_config *config; /* NULL = wxdp_config_default() */
	/* Per-source table capacity, default WXDP_DEFAULT_BUCKETS (same as
	 * the XDP LRU); rounded down to a power of two, at least 8. */
	uint32_t buckets;
	/* Ban capacity (both families together), default WXDP_DEFAULT_BANS. */
	uint32_t bans;
	/* Hash seed for set selection; 0 = random (getrandom). Tests fix it. */
	uint64_t seed;
	/* Validated-source lookup; NULL = no source is validated (every
	 * packet of a budgeted class pays the budget). */
	policer_valid_fn valid;
	void *valid_arg;
};

/* A received datagram as the policer sees it. */
struct policer_pkt {
	uint8_t family;          /* AF_INET or AF_INET6 */
	uint8_t src[16];         /* source address, network order (IPv4: first 4) */
	uint16_t dport;          /* destination UDP port, host order */
	const uint8_t *payload;  /* UDP payload (borrowed) */
	size_t len;              /* payload length */
	uint64_t now_ns;         /* CLOCK_MONOTONIC; config now_override_ns wins */
};

/* 0, -EINVAL (bad config/options) or -ENOMEM. */
int policer_new(struct policer **out, const struct policer_opts *opts);
/* NULL-safe. */
void policer_free(struct policer *p);

/* Replace / read the config. 0 or -EINVAL (wxdp_config_check failed). */
int policer_config_set(struct policer *p, const struct wxdp_config *c);
void policer_config_get(struct policer *p, struct wxdp_config *c);

/* Add/replace a ban (host bits cleared). 0, -EINVAL or -ENOSPC (full). */
int policer_ban_add(struct policer *p, const struct wxdp_ban *b);
/* Remove an exact ban. 0, -EINVAL or -ENOENT. */
int policer_ban_del(struct policer *p, const struct wxdp_ban *b);
/* Remove bans expired at now_ns; returns how many. */
int policer_ban_gc(struct policer *p, uint64_t now_ns);

/*
 * The verdict for one packet, as an enum wxdp_stat verdict counter:
 * WXDP_STAT_PASS_NOT_WEFT (not a weft port), WXDP_STAT_REDIRECT (accepted:
 * hand to the engine), or a WXDP_STAT_DROP_* reason. Updates the buckets
 * and counters. Never fails; a packet with bad fields is a drop verdict.
 */
unsigned int policer_check(struct policer *p, const struct policer_pkt *pkt); /* owner only */

/* Counters in the XDP layout (rx + one verdict counter per packet). */
void policer_stats(struct policer *p, uint64_t *out);
/* Live per-source entries (<= capacity). */
size_t policer_bucket_count(struct policer *p);

#endif
