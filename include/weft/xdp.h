/* SPDX-License-Identifier: MIT */
/*
 * XDP loader and control: loads bpf/weft_xdp.bpf.c through its bpftool
 * skeleton, attaches it through libxdp (so weft coexists with other XDP
 * programs via the dispatcher), pins its maps, and exposes bans, run-time
 * config, counters and the XSKMAP for the AF_XDP backend.
 *
 * Pinning: maps are pinned under
 *     <pin_root>/ns<netns inode>/<ifname>/<map name>
 * (pin_root default /sys/fs/bpf/weft). bpffs is shared by all network
 * namespaces, so the namespace's inode (stat /proc/self/ns/net) keeps two
 * nodes whose interfaces share a name apart. `bpftool map dump pinned
 * /sys/fs/bpf/weft/ns4026531840/eth0/wxdp_stats` inspects them (its
 * slot 0, rx, stays 0: wxdp_stats_read() derives it, xdp_abi.h).
 *
 * Threads: every function may be called from any thread; map updates are
 * atomic per entry in the kernel. The handle itself is immutable after
 * wxdp_new().
 */
#ifndef WEFT_XDP_H
#define WEFT_XDP_H

#include <stddef.h>
#include <stdint.h>

#include "weft/xdp_abi.h"

struct wxdp;

/* One ban: a CIDR and its expiry. */
struct wxdp_ban {
	uint8_t family;    /* AF_INET or AF_INET6 */
	uint8_t prefixlen; /* 0..32 / 0..128 */
	uint8_t addr[16];  /* network order, IPv4 in the first 4 bytes; host
			    * bits beyond prefixlen are zero after parsing */
	uint64_t expires_ns; /* CLOCK_MONOTONIC ns, 0 = never */
	uint64_t drops;      /* filled by wxdp_ban_list(): packets dropped */
	uint8_t kind;        /* enum wxdp_ban_kind (the guard's; the maps do not
			      * record it) */
};

/*
 * Who made a ban. The zero value is automatic, so a caller that does not
 * say is never given the operator's protected quota.
 */
enum wxdp_ban_kind {
	WXDP_BAN_AUTO = 0,     /* the abuse pipeline: expiring, LRU-evicted table */
	WXDP_BAN_OPERATOR = 1, /* the control API: own quota, never evicted */
};

/*
 * Ban change notification (for persistence, e.g. LMDB): called after a ban
 * was added (added = 1; also on replacing an entry) or removed (added = 0,
 * including expired entries removed by wxdp_ban_gc()). Runs on the calling
 * thread; must not call back into wxdp_ban_*.
 */
typedef void (*wxdp_ban_change_fn)(void *arg, const struct wxdp_ban *ban, int added);

struct wxdp_opts {
	const char *ifname;    /* interface to attach to; required unless no_attach */
	const char *pin_root;  /* default "/sys/fs/bpf/weft"; "" = do not pin */
	int skb_mode;          /* 1: generic (skb) mode; default 0 = native only */
	int no_attach;         /* 1: load only, no interface, no pins (tests, bench) */
	uint32_t buckets;      /* LRU size, default WXDP_DEFAULT_BUCKETS */
	uint32_t bans;         /* size of each ban table (per family: the exact
				* hash and the trie), default WXDP_DEFAULT_BANS */
	uint32_t valid;        /* validated-source LRU size, default WXDP_DEFAULT_VALID */
	const struct wxdp_config *config; /* initial config; NULL = defaults */
	wxdp_ban_change_fn on_ban_change;
	void *cb_arg;
};

/*
 * Load (and unless no_attach, attach and pin). When weft's program is
 * already attached to the interface by another weftd with its maps pinned
 * under the same pin root, join it instead (dense nodes, docs/XDP.md): its
 * pinned maps are reused, this instance takes a free slot (0..
 * WXDP_MAX_INSTANCES - 1) and adds the config's ports, owned by that slot,
 * to the shared config. Errors, each also logged:
 *   -ENODEV      interface missing
 *   -EPERM       no privilege (CAP_BPF + CAP_NET_ADMIN, or root)
 *   -EOPNOTSUPP  the interface or kernel cannot run XDP in the asked mode
 *   -EBUSY       weft is attached to this interface in this netns, its maps
 *                not pinned (nothing to join)
 *   -EADDRINUSE  a port of the config is another live instance's
 *   -ENOSPC      the interface would have more than WXDP_MAX_PORTS ports of
 *                a class
 *   -EUSERS      WXDP_MAX_INSTANCES instances already share the interface
 *   -ETIMEDOUT   another instance held the netns lock for 5 s
 *   -EINVAL      bad options or config
 *   other        -errno from libbpf / libxdp
 * On success *out owns its share; wxdp_free() takes its ports out, and the
 * last instance on the interface detaches the program and unpins.
 */
int wxdp_new(struct wxdp **out, const struct wxdp_opts *opts);
/* Detach, unpin, unload. NULL-safe. */
void wxdp_free(struct wxdp *x);

/* Fill c with the documented defaults (xdp_abi.h). */
void wxdp_config_default(struct wxdp_config *c);
/* Validate: v6_prefix 1..128, pad zero, no port in both sets, no port
 * twice. Returns 0 or -EINVAL. */
int wxdp_config_check(const struct wxdp_config *c);
/* Read / replace the run-time config (takes effect on the next packet).
 * Returns 0, -EINVAL (set: invalid config) or -errno from the map. */
int wxdp_config_get(struct wxdp *x, struct wxdp_config *c);
int wxdp_config_set(struct wxdp *x, const struct wxdp_config *c);

/* Add or replace a ban (host bits are cleared). 0, -EINVAL, -ENOSPC (trie
 * full) or -errno. */
int wxdp_ban_add(struct wxdp *x, const struct wxdp_ban *b);
/* Remove a ban (family/prefixlen/addr match exactly). 0, -ENOENT, -errno. */
int wxdp_ban_del(struct wxdp *x, const struct wxdp_ban *b);
/* Read one exact ban's expiry and drop count from its trie into b.
 * 0, -EINVAL, -ENOENT or -errno. */
int wxdp_ban_get(struct wxdp *x, struct wxdp_ban *b);
/* List up to cap bans into out (may be NULL with cap 0); *n = total count
 * (which may exceed cap). Returns 0 or -errno. */
int wxdp_ban_list(struct wxdp *x, struct wxdp_ban *out, size_t cap, size_t *n);
/* Remove bans expired at now_ns (CLOCK_MONOTONIC), then rebuild the
 * exact-ban index where collisions left it stale (docs/XDP.md "Bans").
 * Returns the number removed (>= 0) or -errno. Call periodically (e.g.
 * every 10 s). */
int wxdp_ban_gc(struct wxdp *x, uint64_t now_ns);

/*
 * Validated sources (the guard mirrors its table here): set adds or
 * refreshes key k (wxdp_src_key_v4/v6 with the config's v6_prefix) until
 * expires_ns (CLOCK_MONOTONIC); del removes it. The map is an LRU: when
 * full, the least recently used entry is evicted. 0, -EINVAL, -ENOENT
 * (del) or -errno.
 */
int wxdp_valid_set(struct wxdp *x, const struct wxdp_src_key *k, uint64_t expires_ns);
int wxdp_valid_del(struct wxdp *x, const struct wxdp_src_key *k);

/* Sum the per-CPU counters into out[WXDP_STAT__MAX]. 0 or -errno. */
int wxdp_stats_read(struct wxdp *x, uint64_t *out);
/* Stable snake_case name of a counter ("rx", "drop_banned", ...), or NULL. */
const char *wxdp_stat_name(unsigned int idx);
/* Number of sources with rate-limit state: the LRU's entries plus the
 * used per-CPU bucket slots of every CPU (a source on two CPUs counts
 * twice). For tests and status. */
int wxdp_bucket_count(struct wxdp *x, size_t *n);

enum wxdp_fd {
	WXDP_FD_PROG = 0,
	WXDP_FD_CONFIG,
	WXDP_FD_STATS,
	WXDP_FD_BAN4,
	WXDP_FD_BAN6,
	WXDP_FD_BUCKETS,
	WXDP_FD_XSKS, /* for the AF_XDP backend: key = rx queue, value = xsk fd */
	WXDP_FD_VALID,
	WXDP_FD_BUDGET,
	WXDP_FD_RELAY, /* relay hops (userspace/relay/fwd_xdp.c owns the four relay maps) */
	WXDP_FD_CIRC,
	WXDP_FD_RCFG,
	WXDP_FD_RL2,
	WXDP_FD_BANST, /* which ban tables may hold entries (userspace/xdp/ban.c) */
	WXDP_FD_BANX4, /* exact /32 bans (the tries hold the other prefixes) */
	WXDP_FD_BANX6, /* exact /128 bans */
	WXDP_FD_BANI4, /* the exact-ban index in front of BANX4 (ban.c) */
	WXDP_FD_BANI6,
	WXDP_FD_BANC,  /* the index's collision bits */
	WXDP_FD_RLC,   /* per-CPU bucket slots in front of BUCKETS */
};
/* A file descriptor owned by x (do not close), or -EINVAL. */
int wxdp_fd(struct wxdp *x, enum wxdp_fd which);
/* Kernel program id of the attached (or loaded) program; 0 if unknown. */
uint32_t wxdp_prog_id(struct wxdp *x);
/* "native", "skb" or "none" (no_attach). */
const char *wxdp_mode(struct wxdp *x);
/* Interface name ("" with no_attach) and pin directory ("" if unpinned). */
const char *wxdp_ifname(struct wxdp *x);
const char *wxdp_pin_dir(struct wxdp *x);
/* This instance's slot on a shared interface (0 when alone or unpinned):
 * its AF_XDP sockets go at XSKMAP key slot * WXDP_MAX_QUEUES + queue. */
unsigned int wxdp_owner(struct wxdp *x);

/* Parse "192.0.2.0/24", "2001:db8::/32" or a bare address (full-length
 * prefix) into b (expires_ns/drops zeroed, host bits cleared). 0 or -EINVAL. */
int wxdp_cidr_parse(const char *s, struct wxdp_ban *b);
/* Format b's CIDR into buf ("192.0.2.0/24"). Returns buf. */
const char *wxdp_cidr_fmt(const struct wxdp_ban *b, char *buf, size_t len);

/* The control API for bans and limits is served by the guard
 * (include/weft/guard.h), which fronts this program or the software
 * policers. */

#endif
