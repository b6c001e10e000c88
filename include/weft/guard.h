/* SPDX-License-Identifier: MIT */
/*
 * The guard: one face for weft's packet policy in both I/O modes.
 *
 * In xdp mode the XDP program enforces bans and token buckets before
 * userspace; in uring mode one software policer per engine worker does the
 * same with the same configuration (include/weft/policer.h). The guard owns
 * the operator-facing side for both: bans (persisted in the store, restored
 * at start, applied to the XDP map or to every policer), run-time limits,
 * counters, the table of validated sources (mirrored into the XDP map or
 * read by the policers) and the control API routes (/v1/xdp/..., /v1/bans).
 * Abuse reports from the DHT and the service router end up in
 * guard_ban_addr() / guard_ban_add() as automatic bans.
 *
 * Thread-safe: every function may be called from any thread.
 */
#ifndef WEFT_GUARD_H
#define WEFT_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/io.h"
#include "weft/xdp.h"

struct guard;
struct store;
struct ctl;

/*
 * Bans the guard keeps, both families together, in two quotas that never
 * compete (docs/XDP.md, "Bans"):
 * - operator bans (kind WXDP_BAN_OPERATOR, the control API): at most
 *   16384; a full quota refuses with -ENOSPC; never evicted.
 * - automatic bans (kind WXDP_BAN_AUTO, the abuse pipeline): at most 4096,
 *   always expiring (a permanent request is capped at 1 day); when full,
 *   the least recently banned one is evicted, so a flood of automatic bans
 *   can neither fail nor evict an operator ban.
 * The XDP tries and the policers' tables are sized to the sum.
 */
#define GUARD_MAX_OPERATOR_BANS WXDP_DEFAULT_OPERATOR_BANS
#define GUARD_MAX_AUTO_BANS WXDP_DEFAULT_AUTO_BANS
#define GUARD_MAX_BANS (GUARD_MAX_OPERATOR_BANS + GUARD_MAX_AUTO_BANS)
#define GUARD_AUTO_BAN_MAX_S 86400

/*
 * Validated sources (sources that proved their address, enum
 * guard_evidence): at most 65536, keyed like the rate-limit buckets (IPv4
 * address, IPv6 /v6_prefix); an entry lasts 30 minutes after the latest
 * evidence; reports within 60 s of the previous refresh cost one lock-free
 * lookup and nothing else. When full, the source validated longest ago in
 * the new one's 8-way set is forgotten.
 */
#define GUARD_VALID_MAX WXDP_DEFAULT_VALID
#define GUARD_VALID_TTL_S 1800
#define GUARD_VALID_REFRESH_S 60

struct guard_opts {
	struct wxdp *xdp;          /* xdp mode: the loaded program (borrowed) */
	unsigned int npolicers;    /* uring mode: policers, one per engine worker */
	const struct wxdp_config *config; /* initial limits; NULL = defaults */
	struct store *store;       /* bans persist in its "bans" db; may be NULL */
};

/* Create; restores the persisted bans that have not expired.
 * Returns 0, -EINVAL (neither or both of xdp/npolicers), -ENOMEM, -errno. */
int guard_new(struct guard **out, const struct guard_opts *opts);
/* Waits (the store's default deadline at most) for the ban writes queued so
 * far to reach the store, then frees. */
void guard_free(struct guard *g);

/* "xdp" or "software". */
const char *guard_mode(const struct guard *g);
struct wxdp *guard_xdp(struct guard *g);

/*
 * engine_filter_fn for uring mode: arg is the guard; the policer of
 * pkt->queue decides at now_ns (CLOCK_MONOTONIC; 0 reads the clock).
 * Returns 0 to accept, 1 to drop.
 */
int guard_filter(void *arg, const struct io_pkt *pkt, uint64_t now_ns);

/*
 * Add or replace a ban; expires_ns is CLOCK_MONOTONIC (0 = permanent; an
 * automatic ban is capped at GUARD_AUTO_BAN_MAX_S), b->kind its quota
 * (zero = WXDP_BAN_AUTO). An operator ban of a CIDR with an automatic ban
 * takes it over; an automatic ban of a CIDR the operator banned leaves the
 * operator's in place. Persisted with its kind through the store's
 * writer: an automatic ban fire-and-forget (never waits on the disk, any
 * thread); an operator ban durably: this returns once it is on disk.
 * 0, -EINVAL, -ENOSPC (the operator quota is full; automatic bans evict
 * instead), or for an operator ban the errors of store_write_wait
 * (-ETIMEDOUT, -EAGAIN, -EIO...: the ban is in force, but not known to be
 * stored; adding it again is harmless).
 */
int guard_ban_add(struct guard *g, const struct wxdp_ban *b);
/* Automatic ban of an address for ttl_s seconds (abuse pipeline); family
 * AF_INET/AF_INET6, addr in network order; IPv6 is banned by the configured
 * v6 prefix. The caller must hold evidence that the source owns the
 * address (guard_validated()). */
int guard_ban_addr(struct guard *g, int family, const uint8_t *addr, uint64_t ttl_s);
/* Evidence that a source owns its address: the only grounds on which the
 * abuse pipeline may ban it, and what earns it priority in the kernel
 * (docs/OPERATIONS.md, abuse pipeline). A forged UDP source can produce
 * none of these. */
enum guard_evidence {
	GUARD_EV_REPLY = 1,	/* answered a query of ours with our transaction id */
	GUARD_EV_TOKEN = 2,	/* completed a token round trip (DHT announce_peer/put) */
	GUARD_EV_HANDSHAKE = 3, /* completed a QUIC handshake, or a valid Retry token */
};
/* Record that a source proved its address. Cheap and callable from any
 * thread, packet workers included (a refresh within GUARD_VALID_REFRESH_S
 * takes no lock; otherwise a short mutex and, in xdp mode, one map update).
 * 0, -EINVAL (family, ev) or -errno from the map. */
int guard_validated_add(struct guard *g, int family, const uint8_t *addr, enum guard_evidence ev);
/* Has the source (family AF_INET/AF_INET6, addr in network order) proved
 * its address within GUARD_VALID_TTL_S? Lock-free, any thread. */
bool guard_validated(const struct guard *g, int family, const uint8_t *addr);

/* Durable like an operator ban: 0, -ENOENT, or the errors of
 * store_write_wait (the ban is lifted, its record maybe not yet). */
int guard_ban_del(struct guard *g, const struct wxdp_ban *b);
/* Live bans into out (cap entries), with their kind; *n = how many.
 * drops filled in xdp mode. */
int guard_ban_list(struct guard *g, struct wxdp_ban *out, size_t cap, size_t *n);
/* Drop expired bans (map, policers, store). Returns how many. */
int guard_ban_gc(struct guard *g);

int guard_config_get(struct guard *g, struct wxdp_config *c);
/* Validated (wxdp_config_check) and applied everywhere. 0 or -EINVAL. */
int guard_config_set(struct guard *g, const struct wxdp_config *c);

/* Counters in the XDP layout (WXDP_STAT__MAX), summed over CPUs/policers. */
int guard_stats(struct guard *g, uint64_t *out);
/* Per-source buckets tracked (XDP LRU or policers). */
size_t guard_sources(struct guard *g);

/* Routes: GET /v1/xdp/status, GET|PUT|DELETE /v1/xdp/limits (PUT's keys
 * are stored and override the configuration file at the next starts until
 * DELETE; docs/CONFIG.md), GET|POST /v1/bans,
 * DELETE /v1/bans/<cidr>, weft_xdp_* metrics. */
int guard_ctl_register(struct guard *g, struct ctl *ctl);

#endif
