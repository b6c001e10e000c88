// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * weft XDP fast path: parse Ethernet (up to two VLAN tags) / IPv4 (options)
 * / IPv6 (extension headers, bounded) / UDP; pass everything that is not
 * UDP to a weft port untouched; drop malformed weft packets, banned sources,
 * sources over their token bucket and unvalidated sources over their
 * class's global budget; steer the rest to the AF_XDP socket of the rx
 * queue, or to the kernel when there is none.
 *
 * Maps, config and counters: include/weft/xdp_abi.h. The policy arithmetic
 * (ports, payload checks, buckets) is include/weft/xdp_policy.h, shared with
 * the userspace software policer. Design notes: docs/XDP.md.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

#include "weft/relay_policy.h"
#include "weft/xdp_abi.h"
#include "weft/xdp_policy.h"

/* IPv6 extension headers walked before giving up (XDP_PASS to the kernel):
 * hop-by-hop, routing, destination options twice and AH cover every sane
 * ordering (RFC 8200 4.1); deeper chains are not weft traffic. */
#define WXDP_V6_MAX_EXT 6

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define IP_MF_ 0x2000
#define IP_OFFSET_ 0x1FFF

struct vlan_hdr_ {
	__be16 tci;
	__be16 proto;
};

struct v6_opt_hdr_ {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wxdp_config);
} WXDP_MAP_CONFIG SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WXDP_STAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} WXDP_MAP_STATS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WXDP_DEFAULT_BANS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct wxdp_ban4_key);
	__type(value, struct wxdp_ban_val);
} WXDP_MAP_BAN4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WXDP_DEFAULT_BANS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct wxdp_ban6_key);
	__type(value, struct wxdp_ban_val);
} WXDP_MAP_BAN6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WXDP_DEFAULT_BUCKETS);
	__type(key, struct wxdp_src_key);
	__type(value, struct wxdp_src_val);
} WXDP_MAP_BUCKETS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, WXDP_XSKS_MAX);
	__type(key, __u32);
	__type(value, __u32);
} WXDP_MAP_XSKS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WXDP_DEFAULT_VALID);
	__type(key, struct wxdp_src_key);
	__type(value, struct wxdp_valid_val);
} WXDP_MAP_VALID SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WXDP_CLASS__MAX);
	__type(key, __u32);
	__type(value, struct wxdp_bucket);
} WXDP_MAP_BUDGET SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WXDP_DEFAULT_BANS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct wxdp_ban4_key);
	__type(value, struct wxdp_ban_val);
} WXDP_MAP_BANX4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WXDP_DEFAULT_BANS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct wxdp_ban6_key);
	__type(value, struct wxdp_ban_val);
} WXDP_MAP_BANX6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WXDP_BANT__MAX);
	__type(key, __u32);
	__type(value, struct wxdp_ban_state);
} WXDP_MAP_BANST SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wxdp_clock);
} WXDP_MAP_CLOCK SEC(".maps");

/* The exact-ban index (xdp_abi.h struct wxdp_bani4). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WXDP_BANI_SLOTS);
	__type(key, __u32);
	__type(value, struct wxdp_bani4);
} WXDP_MAP_BANI4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WXDP_BANI_SLOTS);
	__type(key, __u32);
	__type(value, struct wxdp_bani6);
} WXDP_MAP_BANI6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * WXDP_BANI_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} WXDP_MAP_BANC SEC(".maps");

/* Per-CPU bucket slots in front of the LRU (xdp_abi.h struct wxdp_rlc_slot). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WXDP_RLC_SLOTS);
	__type(key, __u32);
	__type(value, struct wxdp_rlc_slot);
} WXDP_MAP_RLC SEC(".maps");

/* Per-CPU validated-source cache in front of WXDP_MAP_VALID (xdp_abi.h
 * struct wxdp_vlc_slot). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WXDP_RLC_SLOTS);
	__type(key, __u32);
	__type(value, struct wxdp_vlc_slot);
} WXDP_MAP_VLC SEC(".maps");

/* Relay circuits (docs/XDP.md, "Circuit map"). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * WXDP_RELAY_MAX_CIRC);
	__type(key, struct wxdp_relay_key);
	__type(value, struct wxdp_relay_hop);
} WXDP_MAP_RELAY SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WXDP_RELAY_MAX_CIRC);
	__type(key, __u32);
	__type(value, struct wxdp_circ);
} WXDP_MAP_CIRC SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wxdp_relay_cfg);
} WXDP_MAP_RCFG SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2 * WXDP_RELAY_MAX_CIRC);
	__type(key, struct wxdp_relay_key);
	__type(value, struct wxdp_relay_l2);
} WXDP_MAP_RL2 SEC(".maps");

/* libxdp dispatcher: run early, and let the next program see what we pass. */
struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(weft_xdp);

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&WXDP_MAP_STATS, &idx);

	if (v)
		*v += 1;
}

/* What the parser hands to the policy stage. */
struct wxdp_pkt {
	union {
		__u8 src[16];   /* IPv4 in the first 4 bytes */
		__u64 src_w[2]; /* IPv6: two 64-bit words (parse_v6) */
	};
	__u8 v6;        /* 1 for IPv6 */
	__u8 kind;      /* WXDP_KIND_* */
	__u16 dport;    /* UDP destination port, host order */
	__u32 plen;     /* UDP payload length */
	union {
		__u8 peek[WXDP_PEEK]; /* first min(plen, WXDP_PEEK) payload bytes */
		__u64 peek_w;         /* the same, as one word (peek_payload) */
	};
	__u32 l3off, l4off; /* relay: offsets of the IP and UDP headers */
	__u32 owner;        /* the instance owning dport (wxdp_port_find) */
};
/* Small: police() is inlined into weft_xdp, whose frame and
 * wxdp_relay_fwd's share the 512-byte stack. */

/* classify()'s answer for a datagram to a relay port: not a counter, the
 * relay stage (wxdp_relay) counts it. */
#define WXDP_V_RELAY 0x100
/* classify()'s answer for a well-formed weft datagram: pk is filled for
 * police(). */
#define WXDP_V_POLICE 0x101

/* Is dport (host order) one of the relay's ports? */
static __always_inline int relay_port(__u16 dport)
{
	struct wxdp_relay_cfg *rc;
	__u32 zero = 0;

	rc = bpf_map_lookup_elem(&WXDP_MAP_RCFG, &zero);
	return rc && rc->port_min && dport >= rc->port_min && dport <= rc->port_max;
}

/*
 * The policy's clock (CLOCK_MONOTONIC ns, xdp_abi.h struct wxdp_clock):
 * the coarse clock, read once per tick per CPU, or the test hook. *now
 * caches it for the packet (0: not read yet), so a packet whose verdict
 * needs no time (no live limit, no expiring ban) never reads it.
 */
static __always_inline __u64 pol_now(const struct wxdp_config *cfg, __u64 *now)
{
	struct wxdp_clock *c;
	__u32 zero = 0;
	__u64 j;

	if (*now)
		return *now;
	if (cfg->now_override_ns) {
		*now = cfg->now_override_ns;
		return *now;
	}
	c = bpf_map_lookup_elem(&WXDP_MAP_CLOCK, &zero);
	if (!c) {
		*now = bpf_ktime_get_coarse_ns();
		return *now;
	}
	j = bpf_jiffies64();
	if (c->jiffies != j || !c->ns) {
		c->ns = bpf_ktime_get_coarse_ns();
		c->jiffies = j;
	}
	*now = c->ns;
	return *now;
}

/* Is ban entry v live? Permanent entries need no clock. */
static __always_inline int ban_live(const struct wxdp_config *cfg, const struct wxdp_ban_val *v,
				    __u64 *now)
{
	return v->expires_ns == 0 || wxdp_ban_live(v, pol_now(cfg, now));
}

/* The trie walks: first is the number of expired entries already skipped
 * (the exact entry's, 0 or 1). The trie holds no full-length prefix, so
 * its first lookup finds the longest shorter one. */
static __always_inline int ban_check4(const struct wxdp_config *cfg, const __u8 *src, int first,
				      __u64 *now)
{
	struct wxdp_ban4_key k = { .prefixlen = 32 };
	struct wxdp_ban_val *v;
	int i;

	__builtin_memcpy(k.addr, src, 4);
	/* One lookup for each skipped expired entry, plus the one after. */
	for (i = first; i <= WXDP_BAN_MAX_NESTED; i++) {
		v = bpf_map_lookup_elem(&WXDP_MAP_BAN4, &k);
		if (!v)
			return 0;
		if (ban_live(cfg, v, now)) {
			__sync_fetch_and_add(&v->drops, 1);
			return 1;
		}
		/* Expired: try the next shorter covering prefix. */
		if (v->prefixlen == 0 || k.prefixlen == 0)
			return 0;
		k.prefixlen = (v->prefixlen < k.prefixlen ? v->prefixlen : k.prefixlen) - 1;
	}
	return 0;
}

static __always_inline int ban_check6(const struct wxdp_config *cfg, const __u8 *src, int first,
				      __u64 *now)
{
	struct wxdp_ban6_key k = { .prefixlen = 128 };
	struct wxdp_ban_val *v;
	int i;

	__builtin_memcpy(k.addr, src, 16);
	/* One lookup for each skipped expired entry, plus the one after. */
	for (i = first; i <= WXDP_BAN_MAX_NESTED; i++) {
		v = bpf_map_lookup_elem(&WXDP_MAP_BAN6, &k);
		if (!v)
			return 0;
		if (ban_live(cfg, v, now)) {
			__sync_fetch_and_add(&v->drops, 1);
			return 1;
		}
		if (v->prefixlen == 0 || k.prefixlen == 0)
			return 0;
		k.prefixlen = (v->prefixlen < k.prefixlen ? v->prefixlen : k.prefixlen) - 1;
	}
	return 0;
}

/* A never-used source's buckets (last_ns 0: they start full). */
static const struct wxdp_src_val src_val_new = {};

/* May ban table t (enum wxdp_ban_table) hold entries? */
static __always_inline int ban_table_used(__u32 t)
{
	const struct wxdp_ban_state *bs = bpf_map_lookup_elem(&WXDP_MAP_BANST, &t);

	return !bs || bs->may_hold;
}

/* What the exact-ban index says of a source (bani4() / bani6()). */
enum {
	BANI_NONE = 0, /* no exact ban: the trie decides */
	BANI_LIVE,     /* a live exact ban: drop (counted in its slot) */
	BANI_EXPIRED,  /* an expired exact ban: the trie decides, one skip spent */
	BANI_ASK,      /* the slot cannot tell: the exact hash decides */
};

#define READ_ONCE_(x) (*(const volatile __typeof__(x) *)&(x))

/* Is collision bit i of family v6 set (xdp_abi.h)? Unreadable: yes. */
static __always_inline int bani_collided(__u32 i, __u32 v6)
{
	__u32 w = (v6 ? WXDP_BANI_WORDS : 0) + (i / 64);
	const __u64 *bits = bpf_map_lookup_elem(&WXDP_MAP_BANC, &w);

	return !bits || ((READ_ONCE_(*bits) >> (i % 64)) & 1);
}

/* The slot's verdict once it names the source: each field read once, the
 * check over what was read (a torn slot fails it and asks the hash). */
static __always_inline int bani_named(const struct wxdp_config *cfg, __u64 h, __u64 e,
				      __u32 check, __u64 *drops, __u64 *now)
{
	if (check != wxdp_bani_check(h, e))
		return BANI_ASK;
	if (e != 0 && pol_now(cfg, now) >= e)
		return BANI_EXPIRED;
	__sync_fetch_and_add(drops, 1);
	return BANI_LIVE;
}

static __always_inline int bani4(const struct wxdp_config *cfg, const __u8 *src, __u64 *now)
{
	__u64 h = wxdp_bani_hash4(src);
	__u32 i = wxdp_bani_slot(h), a, sa;
	struct wxdp_bani4 *s = bpf_map_lookup_elem(&WXDP_MAP_BANI4, &i);

	if (!s)
		return BANI_ASK;
	__builtin_memcpy(&a, src, 4);
	__builtin_memcpy(&sa, s->addr, 4);
	if (sa == a)
		return bani_named(cfg, h, READ_ONCE_(s->expires_ns), READ_ONCE_(s->check),
				  &s->drops, now);
	return bani_collided(i, 0) ? BANI_ASK : BANI_NONE;
}

static __always_inline int bani6(const struct wxdp_config *cfg, const __u8 *src, __u64 *now)
{
	__u64 h = wxdp_bani_hash6(src);
	__u32 i = wxdp_bani_slot(h), a[4], sa[4];
	struct wxdp_bani6 *s = bpf_map_lookup_elem(&WXDP_MAP_BANI6, &i);

	if (!s)
		return BANI_ASK;
	__builtin_memcpy(a, src, 16);
	__builtin_memcpy(sa, s->addr, 16);
	if (((sa[0] ^ a[0]) | (sa[1] ^ a[1]) | (sa[2] ^ a[2]) | (sa[3] ^ a[3])) == 0)
		return bani_named(cfg, h, READ_ONCE_(s->expires_ns), READ_ONCE_(s->check),
				  &s->drops, now);
	return bani_collided(i, 1) ? BANI_ASK : BANI_NONE;
}

/*
 * Is the source of pk in a live ban? Its exact ban first (the longest
 * prefix there can be: the index, then the exact hash when the index
 * cannot tell), then the longest covering prefix in the trie, skipping
 * expired entries as before; a table is looked up only when it may hold
 * entries (struct wxdp_ban_state). One function per family: with
 * one lookup call for both exact maps, clang merged the two calls into
 * one instruction, the verifier then cannot inline the lookup of either
 * map and calls the generic helper (+20 ns per packet, measured).
 */
static __always_inline int banned4(const struct wxdp_config *cfg, const __u8 *src, __u64 *now)
{
	struct wxdp_ban4_key k = { .prefixlen = 32 };
	struct wxdp_ban_val *v = NULL;
	int first = 0, r;

	if (ban_table_used(WXDP_BANT_EXACT4)) {
		r = bani4(cfg, src, now);
		if (r == BANI_LIVE)
			return 1;
		if (r == BANI_EXPIRED)
			first = 1;
		if (r == BANI_ASK) {
			__builtin_memcpy(k.addr, src, 4);
			v = bpf_map_lookup_elem(&WXDP_MAP_BANX4, &k);
			if (v) {
				if (ban_live(cfg, v, now)) {
					__sync_fetch_and_add(&v->drops, 1);
					return 1;
				}
				first = 1;
			}
		}
	}
	return ban_table_used(WXDP_BANT_TRIE4) && ban_check4(cfg, src, first, now);
}

static __always_inline int banned6(const struct wxdp_config *cfg, const __u8 *src, __u64 *now)
{
	struct wxdp_ban6_key k = { .prefixlen = 128 };
	struct wxdp_ban_val *v = NULL;
	int first = 0, r;

	if (ban_table_used(WXDP_BANT_EXACT6)) {
		r = bani6(cfg, src, now);
		if (r == BANI_LIVE)
			return 1;
		if (r == BANI_EXPIRED)
			first = 1;
		if (r == BANI_ASK) {
			__builtin_memcpy(k.addr, src, 16);
			v = bpf_map_lookup_elem(&WXDP_MAP_BANX6, &k);
			if (v) {
				if (ban_live(cfg, v, now)) {
					__sync_fetch_and_add(&v->drops, 1);
					return 1;
				}
				first = 1;
			}
		}
	}
	return ban_table_used(WXDP_BANT_TRIE6) && ban_check6(cfg, src, first, now);
}

static __always_inline int banned(const struct wxdp_config *cfg, const struct wxdp_pkt *pk,
				  __u64 *now)
{
	return pk->v6 ? banned6(cfg, pk->src, now) : banned4(cfg, pk->src, now);
}

/* May the holder of per-CPU bucket slot v give it away: are all of its
 * buckets full at now (xdp_abi.h struct wxdp_rlc_slot)? */
static __always_inline int rlc_idle(const struct wxdp_config *cfg, const struct wxdp_src_val *v,
				    __u64 now)
{
	return wxdp_tb_full(&v->b[WXDP_CLASS_QUIC], &cfg->quic, now) &&
	       wxdp_tb_full(&v->b[WXDP_CLASS_INITIAL], &cfg->quic_initial, now) &&
	       wxdp_tb_full(&v->b[WXDP_CLASS_DHT], &cfg->dht, now) &&
	       wxdp_tb_full(&v->b[WXDP_CLASS_STUN], &cfg->stun, now);
}

/* a and b are 8-byte aligned (a map value's first field, a key on the
 * stack declared so): two 64-bit loads each, where struct wxdp_src_key's
 * byte alignment made clang read a map value's key a byte at a time (16
 * loads and 30 shifts and ors per compare). */
static __always_inline int src_key_eq(const struct wxdp_src_key *a, const struct wxdp_src_key *b)
{
	const __u64 *x = __builtin_assume_aligned(a, 8), *y = __builtin_assume_aligned(b, 8);

	return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
}

/* The LRU's answer for source sk; a live entry is cached in slot c (this
 * CPU's, for tick j). */
static __always_inline int valid_lookup(const struct wxdp_config *cfg,
					const struct wxdp_src_key *sk, struct wxdp_vlc_slot *c,
					__u64 j, __u64 *now)
{
	struct wxdp_valid_val *vv = bpf_map_lookup_elem(&WXDP_MAP_VALID, sk);

	if (!vv || !wxdp_valid_live(vv, pol_now(cfg, now)))
		return 0;
	if (c) {
		__builtin_memcpy(&c->key, sk, sizeof(c->key));
		c->v.expires_ns = vv->expires_ns;
		c->jiffies = j;
	}
	return 1;
}

/*
 * Is source sk validated (a live WXDP_MAP_VALID entry)? This CPU's cache
 * slot answers when it was filled in this tick with this source's live
 * entry; else the LRU does (and refills the slot). A validation added is
 * seen at once (a miss is never cached), one that expires at its time (the
 * cached expiry is checked), one that userspace deletes within the tick
 * on a CPU that cached it (docs/XDP.md). Once a tick the LRU lookup still
 * marks the entry used, so its recency is as before.
 */
static __always_inline int src_validated(const struct wxdp_config *cfg,
					 const struct wxdp_src_key *sk, __u32 i, __u64 *now)
{
	struct wxdp_vlc_slot *c = bpf_map_lookup_elem(&WXDP_MAP_VLC, &i);
	__u64 j = bpf_jiffies64();

	if (c && c->jiffies == j && src_key_eq(&c->key, sk)) {
		/* Filled in this tick with an entry live at the policy clock,
		 * which reads the same all tick long (pol_now): still live,
		 * and the clock need not be read (its per-CPU slot, ~1 ns a
		 * packet on the Zen 4 host). The test hook moves the clock
		 * within a tick: the cached expiry is checked then. */
		if (!cfg->now_override_ns)
			return 1;
		return wxdp_valid_live(&c->v, pol_now(cfg, now)) ||
		       valid_lookup(cfg, sk, c, j, now);
	}
	return valid_lookup(cfg, sk, c, j, now);
}

/*
 * The global budget of unvalidated sources for class cls, or NULL when the
 * source is validated or the class has no budget (nothing to pay). slot:
 * wxdp_rlc_slot(sk), computed once per packet for both per-CPU caches;
 * rate: the class's budget rate (wxdp_class_unval), also found once.
 * *valid: whether the source is validated, when that was looked up (for
 * the budget, or for the per-source rate: wxdp_rate_by_valid), else 0.
 */
static __always_inline struct wxdp_bucket *unval_budget(const struct wxdp_config *cfg,
							const struct wxdp_src_key *sk, __u32 slot,
							__u32 cls, const struct wxdp_rate *rate,
							__u64 *now, int *valid)
{
	__u32 idx = cls;

	*valid = 0;
	if (rate->pps == 0 && !wxdp_rate_by_valid(cfg, cls))
		return NULL;
	*valid = src_validated(cfg, sk, slot, now);
	if (rate->pps == 0 || *valid)
		return NULL;
	return bpf_map_lookup_elem(&WXDP_MAP_BUDGET, &idx);
}

/*
 * The buckets of source sk: its per-CPU slot when it holds them; the slot
 * taken over when its holder's buckets are all full (the source's state
 * from the LRU if it has one, else new); else the LRU's entry, made when
 * missing. NULL: no state could be found or made (fail open).
 */
static __always_inline struct wxdp_src_val *src_buckets(const struct wxdp_config *cfg,
							const struct wxdp_src_key *sk, __u32 i,
							__u64 *now)
{
	struct wxdp_rlc_slot *s = bpf_map_lookup_elem(&WXDP_MAP_RLC, &i);
	struct wxdp_src_val *sv;

	if (s && src_key_eq(&s->key, sk))
		return &s->v;
	if (s && rlc_idle(cfg, &s->v, pol_now(cfg, now))) {
		sv = bpf_map_lookup_elem(&WXDP_MAP_BUCKETS, sk);
		__builtin_memcpy(&s->key, sk, sizeof(s->key));
		if (sv)
			__builtin_memcpy(&s->v, sv, sizeof(s->v));
		else
			__builtin_memcpy(&s->v, &src_val_new, sizeof(s->v));
		return &s->v;
	}
	sv = bpf_map_lookup_elem(&WXDP_MAP_BUCKETS, sk);
	if (sv)
		return sv;
	/* LRU: inserting evicts the least recently used source when
	 * full, so memory never grows. -EEXIST: another CPU raced us.
	 * The new value comes from .rodata, not the stack: the 512-byte
	 * stack is shared with wxdp_relay_fwd's frame. */
	bpf_map_update_elem(&WXDP_MAP_BUCKETS, sk, &src_val_new, BPF_NOEXIST);
	return bpf_map_lookup_elem(&WXDP_MAP_BUCKETS, sk);
}

/*
 * Policy stage, after parsing: payload sanity, ban list, an empty
 * unvalidated budget, token bucket, unvalidated budget paid.
 * Returns WXDP_STAT_DROP_* or WXDP_STAT_REDIRECT (accepted).
 * Inlined once, after the parse paths (VLAN depth x IPv4/IPv6) have
 * joined: a bpf-to-bpf call costs ~7 ns per packet on the development VM
 * (docs/XDP.md "Cost"), and one inlined copy keeps the verifier's work
 * to what the global function needed.
 */
static __always_inline __u32 police(const struct wxdp_config *cfg, struct wxdp_pkt *pk)
{
	struct wxdp_src_key sk __attribute__((aligned(8)));
	struct wxdp_src_val *sv;
	const struct wxdp_rate *rate, *urate;
	struct wxdp_bucket *b, *budget;
	__u32 cls = WXDP_CLASS_QUIC, slot;
	__u64 now = 0;
	int r, valid;

	if (pk->kind != WXDP_KIND_QUIC && pk->kind != WXDP_KIND_DHT)
		return WXDP_STAT_PASS_NOT_WEFT;
	if (pk->plen > 0xffff)
		return WXDP_STAT_DROP_UDP_LEN;
	r = wxdp_payload_check(pk->kind, pk->peek, pk->plen, &cls);
	if (r)
		return r;

	if (banned(cfg, pk, &now))
		return WXDP_STAT_DROP_BANNED;

	if (pk->v6)
		wxdp_src_key_v6(&sk, pk->src, cfg->v6_prefix);
	else
		wxdp_src_key_v4(&sk, pk->src);
	/* An unvalidated source meets an empty budget before anything else:
	 * a many-source flood is dropped here without a per-source bucket
	 * being created for each forged address (an LRU insert and eviction
	 * per packet: 970 ns per packet instead of 273, which made the
	 * receiving NAPI slower than the sender, and the interface's ring
	 * dropped validated peers' packets before the program saw them;
	 * docs/XDP.md). The budget (per CPU) is paid only
	 * after the per-source bucket admitted the packet, so one loud
	 * source is cut by its own bucket and does not spend it. A
	 * validated source's QUIC packets take their own per-source rate
	 * (wxdp_src_rate). */
	slot = wxdp_rlc_slot(&sk);
	urate = wxdp_class_unval(cfg, cls);
	budget = unval_budget(cfg, &sk, slot, cls, urate, &now, &valid);
	if (budget && !wxdp_tb_ready(budget, urate, pol_now(cfg, &now)))
		return wxdp_class_unval_stat(cls);
	rate = wxdp_src_rate(cfg, cls, valid);
	if (rate->pps == 0)
		goto pay;
	sv = src_buckets(cfg, &sk, slot, &now);
	if (!sv)
		goto pay; /* fail open: never seen */
	if (cls == WXDP_CLASS_INITIAL)
		b = &sv->b[WXDP_CLASS_INITIAL];
	else if (cls == WXDP_CLASS_DHT)
		b = &sv->b[WXDP_CLASS_DHT];
	else if (cls == WXDP_CLASS_STUN)
		b = &sv->b[WXDP_CLASS_STUN];
	else
		b = &sv->b[WXDP_CLASS_QUIC];
	/* A slot is this CPU's alone. In the LRU, racing CPUs may each
	 * refill from the same snapshot (one extra packet per racing CPU);
	 * either way a source spread over several rx queues is limited per
	 * CPU, and RSS keeps one flow on one queue. */
	if (!wxdp_tb_take(b, rate, pol_now(cfg, &now)))
		return wxdp_class_drop_stat(cls);
pay:
	/* Per-CPU and this CPU's program is not re-entered: the token seen
	 * ready above is still there. */
	if (budget && !wxdp_tb_take(budget, urate, pol_now(cfg, &now)))
		return wxdp_class_unval_stat(cls);
	return WXDP_STAT_REDIRECT;
}

/* Copy the first WXDP_PEEK payload bytes that exist. */
static __always_inline void peek_payload(struct wxdp_pkt *pk, __u8 *payload, void *end)
{
	int i;

	if ((void *)(payload + WXDP_PEEK) <= end) {
		/* One 8-byte load, where a copy from a byte pointer was 8 byte
		 * loads, 7 shifts and ors and 8 byte stores (with the owner
		 * found once, ~1 ns a packet on the Zen 4 host, docs/XDP.md).
		 * The payload is rarely 8-byte aligned: the verifier allows
		 * unaligned packet loads where the CPU does them well (x86-64,
		 * arm64: no strict alignment). */
		pk->peek_w = *(const __u64 *)(void *)payload;
		return;
	}
#pragma unroll
	for (i = 0; i < WXDP_PEEK - 1; i++) {
		if ((void *)(payload + i + 1) > end)
			return;
		pk->peek[i] = payload[i];
	}
}

/*
 * UDP stage: udp is the UDP header (unchecked), l4len what the IP header
 * says the UDP datagram length is, ipend the end of the IP packet per its
 * header (already checked to be <= end).
 */
static __always_inline __u32 parse_udp(const struct wxdp_config *cfg, struct wxdp_pkt *pk,
				       struct udphdr *udp, void *end, __u32 l4len)
{
	__u32 ulen;

	ulen = bpf_ntohs(udp->len);
	if (ulen < sizeof(*udp) || ulen != l4len)
		return WXDP_STAT_DROP_UDP_LEN;
	pk->plen = ulen - sizeof(*udp);
	peek_payload(pk, (__u8 *)(udp + 1), end);
	return WXDP_V_POLICE;
}

static __always_inline __u32 parse_v4(const struct wxdp_config *cfg, struct wxdp_pkt *pk,
				      void *pos, void *end)
{
	struct iphdr *ip = pos;
	struct udphdr *udp;
	__u32 hl, tot;

	if ((void *)(ip + 1) > end)
		return WXDP_STAT_PASS_NOT_WEFT;
	if (ip->version != 4 || ip->ihl < 5)
		return WXDP_STAT_PASS_NOT_WEFT; /* the kernel drops it */
	/* Any fragment (first or not) goes to the kernel, which reassembles:
	 * a non-first fragment's payload must never be read as a UDP header.
	 * weft never fragments (QUIC sets DF, KRPC fits a datagram). */
	if (ip->frag_off & bpf_htons(IP_MF_ | IP_OFFSET_))
		return WXDP_STAT_PASS_FRAGMENT;
	if (ip->protocol != IPPROTO_UDP)
		return WXDP_STAT_PASS_NOT_WEFT;
	hl = ip->ihl * 4;
	udp = pos + hl;
	if ((void *)(udp + 1) > end)
		return WXDP_STAT_PASS_NOT_WEFT; /* cannot tell the port */
	pk->dport = bpf_ntohs(udp->dest);
	pk->kind = wxdp_port_find(cfg, pk->dport, &pk->owner);
	if (pk->kind == WXDP_KIND_NONE) {
		if (!relay_port(pk->dport))
			return WXDP_STAT_PASS_NOT_WEFT;
		pk->l4off = pk->l3off + hl;
		pk->v6 = 0;
		return WXDP_V_RELAY;
	}
	tot = bpf_ntohs(ip->tot_len);
	if (tot < hl + sizeof(*udp))
		return WXDP_STAT_DROP_UDP_LEN;
	if (tot > 0xffff || pos + tot > end)
		return WXDP_STAT_DROP_SHORT;
	__builtin_memcpy(pk->src, &ip->saddr, 4);
	pk->v6 = 0;
	return parse_udp(cfg, pk, udp, end, tot - hl);
}

static __always_inline __u32 parse_v6(const struct wxdp_config *cfg, struct wxdp_pkt *pk,
				      void *pos, void *end)
{
	struct ipv6hdr *ip6 = pos;
	struct v6_opt_hdr_ *oh;
	struct udphdr *udp;
	__u32 plen, ext;
	__u8 nh;
	int i;

	if ((void *)(ip6 + 1) > end)
		return WXDP_STAT_PASS_NOT_WEFT;
	if (ip6->version != 6)
		return WXDP_STAT_PASS_NOT_WEFT;
	nh = ip6->nexthdr;
	pos = ip6 + 1;
#pragma unroll
	for (i = 0; i < WXDP_V6_MAX_EXT; i++) {
		if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
			oh = pos;
			if ((void *)(oh + 1) > end)
				return WXDP_STAT_PASS_NOT_WEFT;
			nh = oh->nexthdr;
			pos += (oh->hdrlen + 1) * 8;
		} else if (nh == IPPROTO_AH) {
			oh = pos;
			if ((void *)(oh + 1) > end)
				return WXDP_STAT_PASS_NOT_WEFT;
			nh = oh->nexthdr;
			pos += (oh->hdrlen + 2) * 4;
		} else if (nh == IPPROTO_FRAGMENT) {
			return WXDP_STAT_PASS_FRAGMENT;
		} else {
			break;
		}
	}
	if (nh != IPPROTO_UDP)
		return WXDP_STAT_PASS_NOT_WEFT; /* includes chains too deep */
	udp = pos;
	if ((void *)(udp + 1) > end)
		return WXDP_STAT_PASS_NOT_WEFT;
	pk->dport = bpf_ntohs(udp->dest);
	pk->kind = wxdp_port_find(cfg, pk->dport, &pk->owner);
	if (pk->kind == WXDP_KIND_NONE) {
		if (!relay_port(pk->dport))
			return WXDP_STAT_PASS_NOT_WEFT;
		pk->l4off = pk->l3off + (__u32)(pos - (void *)ip6);
		pk->v6 = 1;
		return WXDP_V_RELAY;
	}
	ext = pos - (void *)(ip6 + 1);
	plen = bpf_ntohs(ip6->payload_len);
	if (plen < ext + sizeof(*udp))
		return WXDP_STAT_DROP_UDP_LEN; /* includes jumbograms (0) */
	if ((void *)(ip6 + 1) + plen > end)
		return WXDP_STAT_DROP_SHORT;
	/* Two 8-byte loads (unaligned packet loads: see peek_payload), kept
	 * as two words by the key and the hashes that read them. */
	pk->src_w[0] = *(const __u64 *)(void *)&ip6->saddr;
	pk->src_w[1] = *(const __u64 *)((void *)&ip6->saddr + 8);
	pk->v6 = 1;
	return parse_udp(cfg, pk, udp, end, plen - ext);
}

/* Verdict of the packet; pk->dport its UDP destination port when it got
 * one, pk->l3off/l4off/v6 for the relay stage. */
static __always_inline __u32 classify(struct xdp_md *ctx, const struct wxdp_config *cfg,
				      struct wxdp_pkt *pk)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vlan_hdr_ *vh;
	void *pos;
	__u32 v = WXDP_STAT_PASS_NOT_WEFT;
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > end)
		return WXDP_STAT_PASS_NOT_WEFT;
	proto = eth->h_proto;
	pos = eth + 1;
#pragma unroll
	for (i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q_) && proto != bpf_htons(ETH_P_8021AD_))
			break;
		vh = pos;
		if ((void *)(vh + 1) > end)
			return WXDP_STAT_PASS_NOT_WEFT;
		proto = vh->proto;
		pos = vh + 1;
	}
	pk->l3off = (__u32)(pos - data);
	if (proto == bpf_htons(ETH_P_IP))
		v = parse_v4(cfg, pk, pos, end);
	else if (proto == bpf_htons(ETH_P_IPV6))
		v = parse_v6(cfg, pk, pos, end);
	return v;
}

/* ---- relay circuits: forwarding inside the program ---- */

/* A datagram of plen bytes at p that may be a relay bind (STUN-shaped,
 * docs/PROTOCOL.md "Relay bind"): binds always go to userspace. QUIC
 * always sets 0x40 in its first byte, so no QUIC packet looks like one. */
static __always_inline int relay_bind_shaped(const __u8 *p, void *end, __u32 plen)
{
	if (plen < WXDP_STUN_HDR || (void *)(p + 8) > end)
		return 0;
	return (p[0] & 0xc0) == 0 && p[4] == 0x21 && p[5] == 0x12 && p[6] == 0xa4 && p[7] == 0x42;
}

/* To userspace (the queue's AF_XDP socket of instance 0: the relay runs
 * in the first, or only, weftd on the interface): binds, unknown sources,
 * circuits not (yet) in the kernel. */
static __always_inline int relay_user(struct xdp_md *ctx)
{
	__u32 slot = ctx->rx_queue_index;

	stat_inc(WXDP_STAT_RELAY_USER);
	if (slot >= WXDP_MAX_QUEUES)
		slot = WXDP_XSKS_MAX;
	return bpf_redirect_map(&WXDP_MAP_XSKS, slot, XDP_PASS);
}

enum { RELAY_FWD = 0, RELAY_USER = 1, RELAY_DROP = 2 };

/*
 * The decision for a datagram keyed k (plen payload bytes at p, ttl its
 * TTL / hop limit): a bind is recorded (its link layer) and goes to
 * userspace; a bound end's datagram is decided by relay_policy.h and
 * counted in the circuit. RELAY_FWD sets *hopp.
 */
static __always_inline int relay_decide(struct xdp_md *ctx, struct ethhdr *eth,
					const struct wxdp_relay_key *k, const __u8 *p, void *end,
					__u32 plen, __u32 ttl, struct wxdp_relay_hop **hopp)
{
	const struct wxdp_config *cfg;
	struct wxdp_relay_hop *hop;
	struct wxdp_circ *c;
	__u32 zero = 0, slot, d;
	__u64 now;

	if (relay_bind_shaped(p, end, plen)) {
		struct wxdp_relay_l2 l2;

		/* Remember how this sender is reached: userspace copies it
		 * into the other end's hop when both are bound. */
		__builtin_memcpy(l2.src_mac, eth->h_source, 6);
		__builtin_memcpy(l2.dst_mac, eth->h_dest, 6);
		l2.ifindex = ctx->ingress_ifindex;
		bpf_map_update_elem(&WXDP_MAP_RL2, k, &l2, BPF_ANY);
		return RELAY_USER;
	}
	hop = bpf_map_lookup_elem(&WXDP_MAP_RELAY, k);
	if (!hop || !hop->l2.ifindex || hop->family != k->family)
		return RELAY_USER;
	slot = hop->slot;
	c = bpf_map_lookup_elem(&WXDP_MAP_CIRC, &slot);
	if (!c || c->id != hop->id)
		return RELAY_USER;
	cfg = bpf_map_lookup_elem(&WXDP_MAP_CONFIG, &zero);
	now = cfg && cfg->now_override_ns ? cfg->now_override_ns : bpf_ktime_get_ns();
	d = hop->dir & 1;
	if (ttl <= 1 || wrelay_decide(c, d, plen, now) != WRELAY_FORWARD) {
		__sync_fetch_and_add(&c->dir[d].drops, 1);
		return RELAY_DROP;
	}
	__sync_fetch_and_add(&c->dir[d].pkts, 1);
	__sync_fetch_and_add(&c->dir[d].bytes, plen);
	c->last_ns = now;
	*hopp = hop;
	return RELAY_FWD;
}

/* Send the rewritten frame towards the other end: its MACs from the
 * other end's bind, out of the interface that bind came in on. */
static __always_inline int relay_send(struct xdp_md *ctx, struct ethhdr *eth,
				      const struct wxdp_relay_hop *hop)
{
	__u32 ifindex = hop->l2.ifindex;

	__builtin_memcpy(eth->h_dest, hop->l2.src_mac, 6);
	__builtin_memcpy(eth->h_source, hop->l2.dst_mac, 6);
	stat_inc(WXDP_STAT_RELAY_TX);
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(ifindex, 0);
}

static __always_inline int relay_verdict(struct xdp_md *ctx, int r)
{
	if (r == RELAY_DROP) {
		stat_inc(WXDP_STAT_RELAY_DROP);
		return XDP_DROP;
	}
	return relay_user(ctx);
}

/*
 * A datagram to a relay port (l3off / l4off: its IP and UDP headers, v6:
 * IPv6). A bound end's datagram is decided by relay_policy.h, rewritten
 * (from the address and relay port it came to, to the other end; TTL /
 * hop limit decremented; incremental IP and UDP checksums) and sent back
 * out: XDP_TX on the same interface, a redirect otherwise. Everything
 * else goes to userspace, which answers binds and counts the rest. Counts
 * exactly one of relay_tx, relay_user, relay_drop. Global (verified
 * once): relay packets pay the call, the policed ones do not.
 */
__noinline int wxdp_relay_fwd(struct xdp_md *ctx, __u32 l3off, __u32 l4off, __u32 v6)
{
	__u16 ow[WRELAY_CSUM_MAX_WORDS] = {}, nw[WRELAY_CSUM_MAX_WORDS] = {}, o_ttl, n_ttl;
	struct wxdp_relay_hop *hop = NULL;
	struct wxdp_relay_key k;
	struct ethhdr *eth;
	struct udphdr *udp;
	void *data, *end;
	__u32 plen;
	__be16 rport;
	int r;

	if (!ctx)
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return relay_user(ctx);
	/* Bounded for the verifier: two VLAN tags, IPv6 extension headers. */
	l3off &= 0x3f;
	l4off &= 0x1ff;
	udp = data + l4off;
	if ((void *)(udp + 1) > end)
		return relay_user(ctx);
	plen = bpf_ntohs(udp->len);
	if (plen < sizeof(*udp))
		return relay_user(ctx);
	plen -= sizeof(*udp);
	rport = udp->dest;
	if (!v6) {
		struct iphdr *ip = data + l3off;

		if ((void *)(ip + 1) > end || ip->ihl != 5)
			return relay_user(ctx);
		wrelay_key(&k, 4, (const __u8 *)&ip->saddr, udp->source, rport);
		r = relay_decide(ctx, eth, &k, (const __u8 *)(udp + 1), end, plen, ip->ttl, &hop);
		if (r != RELAY_FWD || !hop)
			return relay_verdict(ctx, r);
		__builtin_memcpy(ow, &ip->saddr, 8);	/* saddr, daddr */
		__builtin_memcpy(nw, &ip->daddr, 4);	/* saddr' = daddr */
		__builtin_memcpy(&nw[2], hop->addr, 4); /* daddr' = the other end */
		ow[4] = udp->source;
		ow[5] = rport;
		nw[4] = rport;
		nw[5] = hop->dport;
		/* IPv4 header checksum: the addresses and the TTL word. */
		__builtin_memcpy(&o_ttl, &ip->ttl, 2);
		ip->ttl--;
		__builtin_memcpy(&n_ttl, &ip->ttl, 2);
		ip->check = wrelay_csum_replace(ip->check, ow, nw, 4);
		ip->check = wrelay_csum_replace(ip->check, &o_ttl, &n_ttl, 1);
		if (udp->check) /* 0: sent without a checksum (IPv4 only) */
			udp->check = wrelay_udp_csum_fix(wrelay_csum_replace(udp->check, ow, nw, 6));
		__builtin_memcpy(&ip->saddr, nw, 8);
	} else {
		struct ipv6hdr *ip6 = data + l3off;

		if ((void *)(ip6 + 1) > end)
			return relay_user(ctx);
		wrelay_key(&k, 6, ip6->saddr.in6_u.u6_addr8, udp->source, rport);
		r = relay_decide(ctx, eth, &k, (const __u8 *)(udp + 1), end, plen, ip6->hop_limit,
				 &hop);
		if (r != RELAY_FWD || !hop)
			return relay_verdict(ctx, r);
		__builtin_memcpy(ow, &ip6->saddr, 32);
		__builtin_memcpy(nw, &ip6->daddr, 16);
		__builtin_memcpy(&nw[8], hop->addr, 16);
		ow[16] = udp->source;
		ow[17] = rport;
		nw[16] = rport;
		nw[17] = hop->dport;
		ip6->hop_limit--;
		udp->check = wrelay_udp_csum_fix(wrelay_csum_replace(udp->check, ow, nw, 18));
		__builtin_memcpy(&ip6->saddr, nw, 32);
	}
	udp->source = rport;
	udp->dest = hop->dport;
	return relay_send(ctx, eth, hop);
}

SEC("xdp")
int weft_xdp(struct xdp_md *ctx)
{
	const struct wxdp_config *cfg;
	struct wxdp_pkt pk = {};
	__u32 zero = 0, v, slot;
	int act = XDP_PASS;

	/* No rx counter here: every path below counts exactly one verdict
	 * counter, and userspace sums them (wxdp_stats_read): one per-CPU
	 * counter less per packet, 1-2 ns on the Zen 4 host. */
	cfg = bpf_map_lookup_elem(&WXDP_MAP_CONFIG, &zero);
	if (!cfg) {
		stat_inc(WXDP_STAT_PASS_NOT_WEFT);
		return XDP_PASS;
	}
	v = classify(ctx, cfg, &pk);
	if (v == WXDP_V_RELAY)
		return wxdp_relay_fwd(ctx, pk.l3off, pk.l4off, pk.v6);
	if (v == WXDP_V_POLICE)
		v = police(cfg, &pk);
	switch (v) {
	case WXDP_STAT_PASS_NOT_WEFT:
	case WXDP_STAT_PASS_FRAGMENT:
		act = XDP_PASS;
		break;
	case WXDP_STAT_REDIRECT:
		/* The socket of the port's instance on this queue; none
		 * (another instance's queue, or its kernel sockets): the
		 * low bits of flags, XDP_PASS. */
		slot = pk.owner * WXDP_MAX_QUEUES + ctx->rx_queue_index;
		if (ctx->rx_queue_index >= WXDP_MAX_QUEUES)
			slot = WXDP_XSKS_MAX;
		act = bpf_redirect_map(&WXDP_MAP_XSKS, slot, XDP_PASS);
		if (act != XDP_REDIRECT)
			v = WXDP_STAT_PASS_NO_SOCKET;
		break;
	default:
		act = XDP_DROP;
		break;
	}
	stat_inc(v);
	return act;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
