/* SPDX-License-Identifier: MIT */
/*
 * The one ABI shared by the XDP program (bpf/weft_xdp.bpf.c) and userspace
 * (userspace/xdp/, the software policer, tests, bench). docs/STYLE.md rule 8:
 * only fixed-width kernel types, explicit padding, sizes checked by
 * _Static_assert in userspace. Map names are defined once here and used as
 * identifiers in the BPF program and as strings (WXDP_STR()) in userspace.
 *
 * Clock: every time in this ABI is CLOCK_MONOTONIC nanoseconds, the clock of
 * bpf_ktime_get_ns(). Userspace converts to wall time for display/storage.
 */
#ifndef WEFT_XDP_ABI_H
#define WEFT_XDP_ABI_H

#include <linux/types.h>

#define WXDP_STR_(x) #x
#define WXDP_STR(x) WXDP_STR_(x)

/* Map names (BPF_OBJ_NAME_LEN is 16: at most 15 characters each). */
#define WXDP_MAP_CONFIG wxdp_config   /* ARRAY[1] of struct wxdp_config */
#define WXDP_MAP_STATS wxdp_stats     /* PERCPU_ARRAY[WXDP_STAT__MAX] of __u64 */
#define WXDP_MAP_BAN4 wxdp_ban4       /* LPM_TRIE wxdp_ban4_key -> wxdp_ban_val */
#define WXDP_MAP_BAN6 wxdp_ban6       /* LPM_TRIE wxdp_ban6_key -> wxdp_ban_val */
#define WXDP_MAP_BUCKETS wxdp_buckets /* LRU_HASH wxdp_src_key -> wxdp_src_val */
#define WXDP_MAP_XSKS wxdp_xsks       /* XSKMAP owner * WXDP_MAX_QUEUES + rx queue -> AF_XDP socket */
#define WXDP_MAP_VALID wxdp_valid     /* LRU_HASH wxdp_src_key -> wxdp_valid_val */
#define WXDP_MAP_BUDGET wxdp_budget   /* PERCPU_ARRAY[WXDP_CLASS__MAX] of wxdp_bucket */
#define WXDP_MAP_BANX4 wxdp_banx4     /* HASH wxdp_ban4_key (/32 only) -> wxdp_ban_val */
#define WXDP_MAP_BANX6 wxdp_banx6     /* HASH wxdp_ban6_key (/128 only) -> wxdp_ban_val */
#define WXDP_MAP_BANST wxdp_banst     /* ARRAY[WXDP_BANT__MAX] of struct wxdp_ban_state */
#define WXDP_MAP_CLOCK wxdp_clock     /* PERCPU_ARRAY[1] of struct wxdp_clock */
#define WXDP_MAP_BANI4 wxdp_bani4     /* ARRAY[WXDP_BANI_SLOTS] of struct wxdp_bani4 */
#define WXDP_MAP_BANI6 wxdp_bani6     /* ARRAY[WXDP_BANI_SLOTS] of struct wxdp_bani6 */
#define WXDP_MAP_BANC wxdp_banc       /* ARRAY[2 * WXDP_BANI_WORDS] of __u64: collision bits */
#define WXDP_MAP_RLC wxdp_rlc         /* PERCPU_ARRAY[WXDP_RLC_SLOTS] of struct wxdp_rlc_slot */
#define WXDP_MAP_VLC wxdp_vlc         /* PERCPU_ARRAY[WXDP_RLC_SLOTS] of struct wxdp_vlc_slot */

/*
 * Map sizes. The LRU and ban tries can be resized at load time
 * (struct wxdp_opts); these are the defaults.
 * - buckets: 65536 sources. An LRU entry is ~130 bytes with kernel overhead,
 *   so ~8.5 MiB; a spoofed flood from more sources only evicts, and 64 Ki
 *   concurrently active peers is far beyond one node's working set.
 * - bans: two quotas that never compete (docs/XDP.md, "Bans"): 16384
 *   operator bans (the control API; aggregated by prefix) and 4096
 *   automatic bans (the abuse pipeline; expiring, least recently banned
 *   evicted when full). Each trie, and each exact-address hash in front of
 *   it (/32, /128), is sized to the sum, so no table can be full while
 *   both quotas hold: 20480 entries each, allocated as used (a trie node
 *   or hash element is ~100 bytes: at most ~2 MiB per table).
 * - valid: 65536 validated sources (wxdp_src_key, like the buckets), filled
 *   by userspace (the guard) from evidence a forged source cannot produce;
 *   ~6 MiB. Validated sources skip the global budget of unvalidated
 *   traffic. More validated peers than this is far beyond one node's
 *   working set; the least recently validated are forgotten first.
 * - xsks: 64 rx queues, more than any NIC weft targets exposes by default.
 */
#define WXDP_DEFAULT_BUCKETS 65536
#define WXDP_DEFAULT_OPERATOR_BANS 16384
#define WXDP_DEFAULT_AUTO_BANS 4096
#define WXDP_DEFAULT_BANS (WXDP_DEFAULT_OPERATOR_BANS + WXDP_DEFAULT_AUTO_BANS)
#define WXDP_DEFAULT_VALID 65536
#define WXDP_MAX_QUEUES 64
/* weftd instances sharing one interface's program (dense nodes,
 * docs/XDP.md): each owns some of the configured ports and the XSKMAP
 * slots owner * WXDP_MAX_QUEUES + rx queue. 4: every instance has at
 * least one port of a class, and a class has WXDP_MAX_PORTS. */
#define WXDP_MAX_INSTANCES 4
#define WXDP_XSKS_MAX (WXDP_MAX_QUEUES * WXDP_MAX_INSTANCES)

/* Configurable port sets: up to 4 ports per protocol, 0 = unused slot. */
#define WXDP_MAX_PORTS 4

/* Default ports (docs/DESIGN.md). */
#define WXDP_DEFAULT_QUIC_PORT 4433
#define WXDP_DEFAULT_DHT_PORT 6881

/*
 * Default per-source limits (packets/s, burst). pps 0 disables a bucket.
 * - QUIC: 100000 pps, burst 100000, for a source that has not proved its
 *   address (no handshake, no reply to our query: docs/XDP.md "Validated
 *   sources"). A peer doing a bulk transfer at ~1 Gbit/s with 1200-1500
 *   byte datagrams sends ~100 kpps. The burst absorbs one second of it.
 * - QUIC from a validated source: 1000000 pps, burst 100000. A peer that
 *   completed a handshake with us (a seed we download from) moving 10
 *   Gbit/s in 1452-byte datagrams sends ~860 kpps: under the unvalidated
 *   rate one seed could never send faster than ~1.2 Gbit/s (measured: a 1
 *   GiB download from one seed over veth fetched in 6.6-6.9 s under it,
 *   3.9-5.1 s at this rate; docs/XDP.md). A flow lands on one receive queue (RSS,
 *   SO_REUSEPORT), so what one source can take is one worker whatever the
 *   rate; a forged packet under a validated address fails its QUIC
 *   decryption like any other. The burst is 100 ms of the rate (25 ticks
 *   of the coarse clock at HZ 250).
 * - QUIC Initial (new connection attempts): 20/s, burst 40. A legitimate
 *   client sends 1-3 Initials per handshake; this allows a few dozen
 *   handshakes a second from one NAT while capping handshake CPU cost.
 * - DHT: 100 pps, burst 200. A Mainline node sends a handful of queries per
 *   second to one node even during lookups; crawlers above this are cut.
 * - IPv6 sources are bucketed by /64 (one subscriber's allocation, RFC 6177),
 *   so rotating addresses inside a /64 does not multiply the allowance.
 */
#define WXDP_DEFAULT_QUIC_PPS 100000
#define WXDP_DEFAULT_QUIC_BURST 100000
#define WXDP_DEFAULT_QUIC_VALID_PPS 1000000
#define WXDP_DEFAULT_QUIC_VALID_BURST 100000
#define WXDP_DEFAULT_INITIAL_PPS 20
#define WXDP_DEFAULT_INITIAL_BURST 40
#define WXDP_DEFAULT_DHT_PPS 100
#define WXDP_DEFAULT_DHT_BURST 200
/* STUN Binding requests on the QUIC port (docs/CONNECTIVITY.md): a client
 * asks a few times per address change; 10 per second per source with a
 * burst of 20 answers any client and caps what one source makes the node
 * send (answers are at most request + 44 bytes). */
#define WXDP_DEFAULT_STUN_PPS 10
#define WXDP_DEFAULT_STUN_BURST 20
#define WXDP_DEFAULT_V6_PREFIX 64

/*
 * Default global budgets for UNVALIDATED sources, per traffic class and per
 * CPU (WXDP_MAP_BUDGET is a PERCPU_ARRAY; an rx queue's NAPI runs on one
 * CPU, so with the usual one-queue-per-CPU IRQ affinity this is per rx
 * queue = per AF_XDP worker). Sized from measured worker capacity so that
 * a many-source spoofed flood, each source under its own limit, cannot
 * fill the worker and starve validated peers, which skip these budgets.
 * pps 0 disables a class's budget ("priority off").
 * - DHT: 10000 pps, burst 1000. One AF_XDP worker answers ~110 kpps of
 *   DHT pings on an idle core, but only 18-37 kpps were measured on a
 *   shared, loaded 2-vCPU host (docs/XDP.md), and the budget must stay
 *   under what the worker really gets or its ring overflows and drops
 *   validated packets too. Legitimate first contacts from new nodes are a
 *   few hundred per second even on a busy node.
 * - QUIC other (not Initial): 100000 pps, burst 10000. One AF_XDP worker
 *   moves ~2.3-2.6 Gbit/s of QUIC, ~200 kpps of 1400-byte datagrams
 *   (docs/QUIC.md); half again. Peers that completed a handshake are
 *   validated and skip it.
 * - QUIC Initial: 1000 pps, burst 200. A worker completes ~700-1000
 *   handshakes/s (docs/QUIC.md) and a handshake costs the server one or
 *   two client Initials.
 */
#define WXDP_DEFAULT_UNVAL_DHT_PPS 10000
#define WXDP_DEFAULT_UNVAL_DHT_BURST 1000
#define WXDP_DEFAULT_UNVAL_QUIC_PPS 100000
#define WXDP_DEFAULT_UNVAL_QUIC_BURST 10000
#define WXDP_DEFAULT_UNVAL_INITIAL_PPS 1000
#define WXDP_DEFAULT_UNVAL_INITIAL_BURST 200
/* STUN sources are never validated (no handshake): all of them share
 * this budget, 1000 answers per second per CPU. */
#define WXDP_DEFAULT_UNVAL_STUN_PPS 1000
#define WXDP_DEFAULT_UNVAL_STUN_BURST 200

/*
 * An expired ban is skipped and the next shorter covering prefix is tried:
 * up to this many nested expired entries are skipped per packet, so a live
 * ban behind 8 expired ones still applies (9 lookups, verifier-bounded; an
 * expired exact /32 or /128 entry counts as one of the 8).
 * Behind 9 or more expired entries the packet is treated as not banned
 * (fail open, like a missing entry). Userspace garbage-collects expired
 * entries, so nesting that deep is only transient.
 */
#define WXDP_BAN_MAX_NESTED 8

/*
 * No size rule for QUIC Initials here. RFC 9000 14.1 requires 1200-byte
 * datagrams only of client Initials and ack-eliciting server Initials; a
 * server's Initial carrying only ACK or CONNECTION_CLOSE may be smaller.
 * weft dials from its listening port, so the fast path cannot tell "we
 * are the server for this packet" from the port: the QUIC endpoint applies
 * the rule (it accepts a small Initial only for a connection it dialled).
 * Small Initials are still classed as Initial here and pay the per-source
 * Initial bucket.
 */

/* Token-bucket rate: packets per second and burst (bucket depth). */
struct wxdp_rate {
	__u32 pps;   /* refill rate; 0 = unlimited (bucket disabled) */
	__u32 burst; /* depth in packets; 0 is treated as 1 */
};

/*
 * Run-time configuration: WXDP_MAP_CONFIG[0]. Written by userspace at any
 * time; the program reads it per packet (a torn read across an update can
 * only mix old and new limits for one packet).
 */
struct wxdp_config {
	/* Test hook: when nonzero, the program's clock (token buckets and ban
	 * expiry) reads this instead of bpf_ktime_get_ns(). Always 0 in
	 * production. */
	__u64 now_override_ns;
	struct wxdp_rate quic;         /* QUIC packets other than Initial */
	struct wxdp_rate quic_initial; /* QUIC v1/v2 Initial packets */
	struct wxdp_rate dht;          /* DHT (KRPC) packets */
	__u16 quic_ports[WXDP_MAX_PORTS]; /* host order, 0 = unused */
	__u16 dht_ports[WXDP_MAX_PORTS];  /* host order, 0 = unused */
	__u8 v6_prefix; /* IPv6 source bucketing prefix, 1..128, default 64 */
	/* Owner instance (0..WXDP_MAX_INSTANCES-1) of quic_ports[i] and
	 * dht_ports[i], 2 bits per port: (quic_owners >> 2 * i) & 3. 0 for
	 * a lone instance. */
	__u8 quic_owners;
	__u8 dht_owners;
	__u8 pad[5];
	/* Global budgets of unvalidated sources, per CPU (see the defaults
	 * above); pps 0 = no budget for that class. */
	struct wxdp_rate unval_quic;
	struct wxdp_rate unval_initial;
	struct wxdp_rate unval_dht;
	struct wxdp_rate stun;	     /* STUN on a QUIC port, per source */
	struct wxdp_rate unval_stun; /* STUN, global budget of unvalidated sources */
	/* QUIC packets other than Initial from a validated source, per
	 * source (in place of quic; the same bucket) */
	struct wxdp_rate quic_valid;
};

/*
 * Named per-CPU counters: WXDP_MAP_STATS[i], summed over CPUs by userspace.
 * Every packet increments exactly one verdict counter (the unit tests
 * check it per packet); RX is not counted by the program (its slot stays
 * 0) but is the sum of the verdict counters, which wxdp_stats_read()
 * returns in its place: a counter less on the per-packet path.
 */
enum wxdp_stat {
	WXDP_STAT_RX = 0,            /* every packet the program saw (derived) */
	/* verdict counters */
	WXDP_STAT_PASS_NOT_WEFT,     /* not IPv4/IPv6 UDP to a weft port: XDP_PASS */
	WXDP_STAT_PASS_FRAGMENT,     /* IPv4/IPv6 fragment: XDP_PASS, never parsed as UDP */
	WXDP_STAT_REDIRECT,          /* accepted, redirected to the queue's AF_XDP socket */
	WXDP_STAT_PASS_NO_SOCKET,    /* accepted, no socket on the queue: XDP_PASS */
	WXDP_STAT_DROP_SHORT,        /* malformed: shorter than its headers say */
	WXDP_STAT_DROP_UDP_LEN,      /* malformed: UDP length != IP payload length */
	WXDP_STAT_DROP_QUIC_FIXED,   /* malformed: QUIC fixed bit (0x40) clear */
	WXDP_STAT_DROP_DHT_NOT_DICT, /* malformed: DHT payload does not start with 'd' */
	WXDP_STAT_DROP_BANNED,       /* source in a live ban */
	WXDP_STAT_DROP_RATE_QUIC,    /* over the per-source QUIC bucket */
	WXDP_STAT_DROP_RATE_INITIAL, /* over the per-source QUIC Initial bucket */
	WXDP_STAT_DROP_RATE_DHT,     /* over the per-source DHT bucket */
	WXDP_STAT_DROP_UNVAL_QUIC,   /* unvalidated source, QUIC budget spent */
	WXDP_STAT_DROP_UNVAL_INITIAL, /* unvalidated source, Initial budget spent */
	WXDP_STAT_DROP_UNVAL_DHT,    /* unvalidated source, DHT budget spent */
	WXDP_STAT_DROP_RATE_STUN,    /* over the per-source STUN bucket */
	WXDP_STAT_DROP_UNVAL_STUN,   /* unvalidated source, STUN budget spent */
	WXDP_STAT_RELAY_TX,          /* relay circuit packet rewritten and sent (XDP_TX/redirect) */
	WXDP_STAT_RELAY_USER,        /* to a relay port, not a bound hop (binds...): to userspace */
	WXDP_STAT_RELAY_DROP,        /* relay circuit packet dropped by the policy (rate, limit, end) */
	WXDP_STAT__MAX
};

/* Ban tries: key prefixlen is in bits, addr in network order. */
struct wxdp_ban4_key {
	__u32 prefixlen; /* 0..32 */
	__u8 addr[4];
};

struct wxdp_ban6_key {
	__u32 prefixlen; /* 0..128 */
	__u8 addr[16];
};

struct wxdp_ban_val {
	__u64 expires_ns; /* CLOCK_MONOTONIC ns; 0 = never expires */
	__u64 drops;      /* packets dropped by this entry (atomic add) */
	__u32 prefixlen;  /* copy of the key's, to retry shorter prefixes */
	__u32 pad;
};

/*
 * Where a ban lives: a full-length one (/32, /128) in its family's exact
 * hash (one ~20 ns hash lookup instead of a trie walk: ~60 ns with 16,000
 * /32 entries, docs/XDP.md "Cost"), any other prefix in the family's LPM
 * trie. The index of each table in WXDP_MAP_BANST.
 */
enum wxdp_ban_table {
	WXDP_BANT_TRIE4 = 0,
	WXDP_BANT_TRIE6,
	WXDP_BANT_EXACT4,
	WXDP_BANT_EXACT6,
	WXDP_BANT__MAX
};

/*
 * WXDP_MAP_BANST[enum wxdp_ban_table]: whether that ban table may hold
 * entries, so the program skips the lookup of an empty one (an empty trie
 * still costs ~10 ns, an empty hash ~20 ns). One element per table, so
 * instances sharing the maps never read-modify-write each other's flag.
 * Written only by userspace's ban calls (userspace/xdp/ban.c): set to 1
 * before an entry is added, back to 0 only after a delete found the table
 * empty, and to 1 again when the table is not empty after that write
 * (another instance added meanwhile): a flag is never 0 while its table
 * holds a ban added before that packet.
 */
struct wxdp_ban_state {
	__u32 may_hold; /* nonzero: the table may hold entries */
	__u32 pad;
};

/*
 * The exact-ban index (docs/XDP.md "Bans"): a direct-mapped array per
 * family in front of the exact hashes, written only by userspace (ban.c,
 * under a lock shared by the instances on the interface), read by the
 * program with an inlined array lookup (~1 ns) instead of a hash lookup
 * (~20-24 ns). Slot wxdp_bani_slot(hash of the address) holds one exact
 * ban of that family whose address hashes there (check != 0), or nothing
 * (all zero). Collision bit i of the family's words in WXDP_MAP_BANC is
 * set when another exact ban hashes to slot i and lives only in the hash:
 * a source that its slot does not name is looked up in the hash only when
 * that bit is set. A bit is set before its ban is in the hash and cleared
 * only by a rebuild (wxdp_ban_gc) that found no such ban. The exact hash
 * stays the complete record (list, get, gc, persistence); a slot's drops
 * add to its hash entry's.
 *
 * Torn reads: userspace rewrites a slot in place (a memcpy, not atomic), so
 * the program can read half an old and half a new slot. check ties a slot's
 * fields together (wxdp_bani_check() of the address's hash and the
 * expiry): a slot naming the source whose check does not match is not
 * trusted and the hash decides. A slot is only ever written from empty to
 * a ban, from a ban to empty, or from a ban to the same address with a new
 * expiry, so a read naming another address is either another ban or a
 * change in progress, and the collision bit then decides as above.
 *
 * 32768 slots per family (24 and 40 bytes: 2 MiB for both, allocated at
 * load): with the 20480 bans of both quotas in one family ~22% of them
 * collide into the hash, and ~13% of the other sources pay the hash lookup.
 */
#define WXDP_BANI_BITS 15
#define WXDP_BANI_SLOTS (1U << WXDP_BANI_BITS)
#define WXDP_BANI_WORDS (WXDP_BANI_SLOTS / 64) /* per family; IPv6 after IPv4 */

struct wxdp_bani4 {
	__u64 expires_ns; /* the ban's, CLOCK_MONOTONIC ns; 0 = never expires */
	__u64 drops;      /* packets dropped through this slot (atomic add) */
	__u8 addr[4];     /* network order */
	__u32 check;      /* wxdp_bani_check(); 0 = empty slot */
};

struct wxdp_bani6 {
	__u8 addr[16];
	__u64 expires_ns;
	__u64 drops;
	__u32 check;
	__u32 pad;
};

/*
 * WXDP_MAP_CLOCK[cpu]: the program's clock. bpf_ktime_get_ns() costs
 * ~32 ns per call on the development VM (its TSC read is slow) and
 * bpf_ktime_get_coarse_ns() ~18 ns; jiffies (bpf_jiffies64(), inlined by
 * the verifier) is free. The program reads the coarse clock once per tick
 * per CPU, when jiffies moved, and uses that value until the next tick:
 * CLOCK_MONOTONIC (the clock of every time in this ABI) late by at most
 * two ticks (8 ms at HZ 250). docs/XDP.md "Clock" says what that means
 * for the token buckets and ban expiry.
 */
struct wxdp_clock {
	__u64 jiffies; /* bpf_jiffies64() when ns was read */
	__u64 ns;      /* bpf_ktime_get_coarse_ns() then */
};

/*
 * Rate-limit source key: IPv4 as the v4-mapped IPv6 address ::ffff:a.b.c.d,
 * IPv6 masked to the configured prefix, so one key type covers both.
 */
struct wxdp_src_key {
	__u8 addr[16];
};

/* One token bucket: tokens in nano-packets (1e9 = one packet). */
struct wxdp_bucket {
	__u64 tokens;
	__u64 last_ns; /* 0 = never used (starts full) */
};

enum wxdp_class {
	WXDP_CLASS_QUIC = 0,
	WXDP_CLASS_INITIAL,
	WXDP_CLASS_DHT,
	WXDP_CLASS_STUN, /* STUN Binding requests on a QUIC port */
	WXDP_CLASS__MAX
};

struct wxdp_src_val {
	struct wxdp_bucket b[WXDP_CLASS__MAX];
};

/*
 * The per-CPU bucket slots (WXDP_MAP_RLC, docs/XDP.md "Per-source
 * buckets"): a direct-mapped array per CPU in front of the LRU of buckets,
 * so a source's buckets are found with an inlined array lookup (~1 ns)
 * instead of an LRU-hash lookup (~21-24 ns). Slot wxdp_rlc_slot() of a
 * source key holds one source's buckets (all zero: never used). Written
 * only by the program on its own CPU (never re-entered there), read by
 * userspace for the count of tracked sources. A source takes its slot only
 * when the slot is free or its holder's buckets are all full (refilled to
 * their burst: the holder loses nothing a new source would not get), with
 * its state from the LRU when it has one there; otherwise it keeps using
 * the LRU. So a forged source can push no one's drained bucket out to be
 * refilled. Per CPU: a source whose packets arrive on several CPUs (rx
 * queues) is limited on each of them (RSS keeps one flow on one queue).
 * 4096 slots x 80 bytes = 320 KiB per CPU.
 */
#define WXDP_RLC_BITS 12
#define WXDP_RLC_SLOTS (1U << WXDP_RLC_BITS)

struct wxdp_rlc_slot {
	struct wxdp_src_key key;
	struct wxdp_src_val v;
};

/* A validated source (WXDP_MAP_VALID value). */
struct wxdp_valid_val {
	__u64 expires_ns; /* CLOCK_MONOTONIC ns; the entry no longer counts at it */
};

/*
 * The per-CPU validated-source cache (WXDP_MAP_VLC, docs/XDP.md
 * "Validated sources and the unvalidated budget"): slot wxdp_rlc_slot()
 * of a source key holds a live WXDP_MAP_VALID entry the program found on
 * this CPU during jiffy `jiffies`, found with an inlined array lookup
 * instead of an LRU-hash lookup (~35-45 ns on an AMD EPYC host, a helper
 * call). It answers only in the tick it was filled in, only "validated"
 * (a source not found is looked up again), and checks the cached expiry
 * against the clock as the map's would be. Written and read only by the
 * program (not pinned). 4096 slots x 32 bytes = 128 KiB per CPU.
 */
struct wxdp_vlc_slot {
	struct wxdp_src_key key;
	struct wxdp_valid_val v;
	__u64 jiffies; /* the tick the slot was filled in; 0: never */
};

#ifndef __bpf__
_Static_assert(sizeof(struct wxdp_rate) == 8, "wxdp_rate ABI");
_Static_assert(sizeof(struct wxdp_config) == 104, "wxdp_config ABI");
_Static_assert(sizeof(struct wxdp_valid_val) == 8, "wxdp_valid_val ABI");
_Static_assert(sizeof(struct wxdp_vlc_slot) == 32, "wxdp_vlc_slot ABI");
_Static_assert(sizeof(struct wxdp_ban4_key) == 8, "wxdp_ban4_key ABI");
_Static_assert(sizeof(struct wxdp_ban6_key) == 20, "wxdp_ban6_key ABI");
_Static_assert(sizeof(struct wxdp_ban_val) == 24, "wxdp_ban_val ABI");
_Static_assert(sizeof(struct wxdp_ban_state) == 8, "wxdp_ban_state ABI");
_Static_assert(sizeof(struct wxdp_clock) == 16, "wxdp_clock ABI");
_Static_assert(sizeof(struct wxdp_bani4) == 24, "wxdp_bani4 ABI");
_Static_assert(sizeof(struct wxdp_bani6) == 40, "wxdp_bani6 ABI");
_Static_assert(sizeof(struct wxdp_src_key) == 16, "wxdp_src_key ABI");
_Static_assert(sizeof(struct wxdp_src_val) == 64, "wxdp_src_val ABI");
_Static_assert(sizeof(struct wxdp_rlc_slot) == 80, "wxdp_rlc_slot ABI");
#endif

/*
 * ---- Relay circuits (include/weft/relay_fwd.h, docs/XDP.md "Circuit map") ----
 * A circuit owns one relay port; slot = port - relay.ports' first port.
 * WXDP_MAP_CIRC holds the circuit (limits, shared byte count, per-direction
 * counters and buckets); WXDP_MAP_RELAY maps a latched end (relay port +
 * source address) to the hop its packets take. The same struct wxdp_circ
 * is the userspace forwarder's circuit state, and include/weft/relay_policy.h
 * decides for both.
 */
#define WXDP_MAP_RELAY wxdp_relay /* HASH wxdp_relay_key -> wxdp_relay_hop */
#define WXDP_MAP_CIRC wxdp_circ   /* ARRAY[WXDP_RELAY_MAX_CIRC] of wxdp_circ */
#define WXDP_MAP_RCFG wxdp_rcfg   /* ARRAY[1] of wxdp_relay_cfg */
#define WXDP_MAP_RL2 wxdp_rl2     /* LRU_HASH wxdp_relay_key -> wxdp_relay_l2 */
/* Most relay ports (circuits) one program serves: 4096 x 136 bytes =
 * 544 KiB of array; the hop map holds two entries per circuit; the L2 map
 * remembers the last 2 x 4096 bind senders. */
#define WXDP_RELAY_MAX_CIRC 4096

/* The relay port range (WXDP_MAP_RCFG[0]); port_min 0 = no relay. */
struct wxdp_relay_cfg {
	__u16 port_min, port_max; /* host order, inclusive */
	__u32 pad;
};

/*
 * Link layer of a bind's sender, recorded by the program when a bind
 * (STUN-shaped datagram) reaches a relay port: the MAC it came from (the
 * end's next hop), the MAC it came to (ours) and the interface. Userspace
 * copies it into the other end's hop, so forwarding needs no FIB or
 * neighbour lookup (nor net.ipv4.ip_forward).
 */
struct wxdp_relay_l2 {
	__u8 src_mac[6]; /* the sender's (next hop's) MAC */
	__u8 dst_mac[6]; /* our interface's MAC */
	__u32 ifindex;	 /* interface it arrived on */
};

struct wxdp_relay_key {
	__u8 addr[16];	/* source address, IPv4 in addr[0..3], rest zero */
	__be16 sport;	/* source port, network order */
	__be16 rport;	/* relay port (destination), network order */
	__u8 family;	/* 4 or 6 */
	__u8 pad[3];
};

struct wxdp_relay_hop {
	__u8 addr[16];	/* the other end's latched address */
	__be16 dport;	/* the other end's port, network order */
	__u8 family;	/* 4 or 6; equal to the key's (no 4<->6 translation) */
	__u8 dir;	/* 0: end A -> end B, 1: B -> A */
	__u32 slot;	/* index in WXDP_MAP_CIRC */
	__u64 id;	/* circuit id: a hop whose id differs from the slot's is stale */
	struct wxdp_relay_l2 l2; /* how to reach the other end (its bind's L2) */
};

struct wxdp_circ_dir {
	__u64 pkts, bytes; /* forwarded (UDP payload bytes) */
	__u64 drops;	   /* dropped: over the rate, the byte limit or ended */
	struct wxdp_bucket bucket;
};

struct wxdp_circ {
	__u64 id;	  /* 0: free slot */
	__u64 max_bytes;  /* both directions together; 0 = unlimited */
	__u64 expires_ns; /* hard end of life; 0 = none */
	__u64 idle_ns;	  /* ended when nothing was forwarded this long; 0 = never */
	__u64 last_ns;	  /* last forwarded packet (creation time at first) */
	struct wxdp_rate rate; /* per direction; pps 0 = unlimited */
	__u32 ended;	  /* 0 alive, else the enum wxdp_relay_end reason */
	__u32 pad;
	struct wxdp_circ_dir dir[2];
};

/* Why a circuit ended (also RELAY_END_* in relay_fwd.h). */
enum wxdp_relay_end {
	WXDP_RELAY_END_NONE = 0,
	WXDP_RELAY_END_DELETED = 1,  /* relay_fwd_del / relay_fwd_free */
	WXDP_RELAY_END_LIFETIME = 2, /* hard lifetime reached */
	WXDP_RELAY_END_IDLE = 3,     /* nothing forwarded for idle_ns */
	WXDP_RELAY_END_BYTES = 4,    /* byte limit reached */
};

#ifndef __bpf__
_Static_assert(sizeof(struct wxdp_relay_key) == 24, "wxdp_relay_key ABI");
_Static_assert(sizeof(struct wxdp_relay_hop) == 48, "wxdp_relay_hop ABI");
_Static_assert(sizeof(struct wxdp_relay_l2) == 16, "wxdp_relay_l2 ABI");
_Static_assert(sizeof(struct wxdp_relay_cfg) == 8, "wxdp_relay_cfg ABI");
_Static_assert(sizeof(struct wxdp_circ_dir) == 40, "wxdp_circ_dir ABI");
_Static_assert(sizeof(struct wxdp_circ) == 136, "wxdp_circ ABI");
#endif

#endif
