/* SPDX-License-Identifier: MIT */
/*
 * The policy arithmetic shared, as one source, by the XDP program
 * (bpf/weft_xdp.bpf.c) and the software policer (userspace/xdp/policer.c):
 * port classification, payload sanity checks, source-key derivation, ban
 * liveness and the token bucket. Pure functions over xdp_abi.h types: no
 * maps, no helpers, no I/O, so both sides compute the same verdict for the
 * same packet by construction rather than by keeping two copies in sync.
 * (These are the only function bodies in a weft header; the BPF side has no
 * other way to share code with userspace.)
 */
#ifndef WEFT_XDP_POLICY_H
#define WEFT_XDP_POLICY_H

#include "weft/xdp_abi.h"

#define WXDP_INLINE static inline __attribute__((always_inline))
/* Fixed-count loops are unrolled for the BPF verifier (clang); gcc builds
 * of the policer need no hint. */
#ifdef __clang__
#define WXDP_UNROLL _Pragma("unroll")
#else
#define WXDP_UNROLL
#endif

#define WXDP_NS_PER_S 1000000000ULL

/* Port kinds. */
enum wxdp_kind {
	WXDP_KIND_NONE = 0,
	WXDP_KIND_QUIC = 1,
	WXDP_KIND_DHT = 2,
};

/* Bytes of UDP payload the checks look at (QUIC first byte + version;
 * STUN's first byte and magic cookie at offset 4). */
#define WXDP_PEEK 8
#define WXDP_STUN_COOKIE 0x2112A442U /* RFC 8489 */
#define WXDP_STUN_HDR 20

/* QUIC versions whose Initial packet type we recognise. */
#define WXDP_QUIC_V1 0x00000001U
#define WXDP_QUIC_V2 0x6b3343cfU /* RFC 9369: Initial is long-header type 1 */

/*
 * Which weft protocol (if any) owns destination port dport (host order),
 * and *owner the instance that owns it (see wxdp_config.quic_owners): 0..
 * WXDP_MAX_INSTANCES - 1, and 0 for a port that is not configured. One
 * walk of the port table for both (the program needs the owner only for a
 * packet it accepts, and walked the table twice).
 */
WXDP_INLINE int wxdp_port_find(const struct wxdp_config *c, __u16 dport, __u32 *owner)
{
	int i;

	*owner = 0;
	if (dport == 0)
		return WXDP_KIND_NONE;
WXDP_UNROLL
	for (i = 0; i < WXDP_MAX_PORTS; i++) {
		if (c->quic_ports[i] == dport) {
			*owner = ((__u32)c->quic_owners >> (2 * i)) & 3;
			return WXDP_KIND_QUIC;
		}
		if (c->dht_ports[i] == dport) {
			*owner = ((__u32)c->dht_owners >> (2 * i)) & 3;
			return WXDP_KIND_DHT;
		}
	}
	return WXDP_KIND_NONE;
}

/* Which weft protocol (if any) owns destination port dport (host order). */
WXDP_INLINE int wxdp_port_kind(const struct wxdp_config *c, __u16 dport)
{
	__u32 owner;

	return wxdp_port_find(c, dport, &owner);
}

/*
 * Check a weft UDP payload. p holds the first min(plen, WXDP_PEEK) bytes,
 * plen is the full payload length (UDP length - 8). Returns 0 and sets *cls
 * when the packet is well formed, else the WXDP_STAT_DROP_* reason.
 *   STUN on a QUIC port: top two bits 00 (QUIC always sets 0x40), at
 *         least the 20-byte header, magic cookie 0x2112A442 at offset 4
 *         (RFC 7983 demultiplexing): WXDP_CLASS_STUN.
 *   QUIC: at least 1 byte; fixed bit (0x40) set (RFC 9000 17; weft never
 *         negotiates grease_quic_bit); a long header needs its 4-byte
 *         version; an Initial (v1 type 0, v2 type 1) is classed
 *         WXDP_CLASS_INITIAL whatever its size (the 1200-byte rule is the
 *         QUIC endpoint's: see xdp_abi.h).
 *   DHT:  at least 1 byte, and it is 'd' (a KRPC message is a bencoded
 *         dictionary, BEP 5).
 */
WXDP_INLINE int wxdp_payload_check(int kind, const __u8 *p, __u32 plen, __u32 *cls)
{
	if (kind == WXDP_KIND_DHT) {
		if (plen < 1)
			return WXDP_STAT_DROP_SHORT;
		if (p[0] != 'd')
			return WXDP_STAT_DROP_DHT_NOT_DICT;
		*cls = WXDP_CLASS_DHT;
		return 0;
	}
	if (plen < 1)
		return WXDP_STAT_DROP_SHORT;
	if (!(p[0] & 0x40)) {
		if ((p[0] & 0xc0) == 0 && plen >= WXDP_STUN_HDR &&
		    (((__u32)p[4] << 24) | ((__u32)p[5] << 16) | ((__u32)p[6] << 8) | p[7]) ==
			WXDP_STUN_COOKIE) {
			*cls = WXDP_CLASS_STUN;
			return 0;
		}
		return WXDP_STAT_DROP_QUIC_FIXED;
	}
	*cls = WXDP_CLASS_QUIC;
	if (p[0] & 0x80) {
		__u32 ver, type = (p[0] >> 4) & 3;

		if (plen < 5)
			return WXDP_STAT_DROP_SHORT;
		ver = ((__u32)p[1] << 24) | ((__u32)p[2] << 16) | ((__u32)p[3] << 8) | p[4];
		if ((ver == WXDP_QUIC_V1 && type == 0) || (ver == WXDP_QUIC_V2 && type == 1))
			*cls = WXDP_CLASS_INITIAL;
	}
	return 0;
}

/* Rate-limit key of an IPv4 source (network-order bytes): ::ffff:a.b.c.d.
 * Written as two 64-bit words, as the IPv6 key is: the program reads the
 * key back in words (slot hash, key compares), and a word loaded from
 * bytes stored one at a time waits for them to reach the cache (a failed
 * store-to-load forward, ~3 ns per packet on the AMD EPYC host). */
WXDP_INLINE void wxdp_src_key_v4(struct wxdp_src_key *k, const __u8 *a4)
{
	__u64 w[2];
	__u32 a;

	__builtin_memcpy(&a, a4, 4);
	w[0] = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	w[1] = 0xffff0000ULL | (__u64)a << 32;
#else
	w[1] = 0xffff00000000ULL | a;
#endif
	__builtin_memcpy(k->addr, w, 16);
}

/* Rate-limit key of an IPv6 source: the address masked to prefix bits
 * (values above 128 act as 128, 0 as 1: never one bucket for all of v6). */
WXDP_INLINE void wxdp_src_key_v6(struct wxdp_src_key *k, const __u8 *a16, __u32 prefix)
{
	__u64 hi, lo, w[2];

	__builtin_memcpy(w, a16, 16);
	/* The default (a /64 per host) copies out on its own path: folded
	 * into the masks' (hi all ones, lo zero) it cost the program ~1 ns
	 * per IPv6 packet on the Zen 4 host (30 alternated runs). */
	if (prefix == 64) {
		w[1] = 0;
		__builtin_memcpy(k->addr, w, 16);
		return;
	}
	/* Two 64-bit masks, most significant bit first; only two branches so
	 * the verifier does not fork per byte. */
	if (prefix == 0)
		prefix = 1;
	if (prefix > 128)
		prefix = 128;
	hi = prefix >= 64 ? ~0ULL : ~0ULL << (64 - prefix);
	lo = prefix <= 64 ? 0 : ~0ULL << (128 - prefix);
	/* Masked as two 64-bit words in memory (byte) order: a byte-wise
	 * loop spilled the BPF program's registers past its stack budget. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	hi = __builtin_bswap64(hi);
	lo = __builtin_bswap64(lo);
#endif
	w[0] &= hi;
	w[1] &= lo;
	__builtin_memcpy(k->addr, w, 16);
}

/* Is a ban entry in force at now (CLOCK_MONOTONIC ns)? */
WXDP_INLINE int wxdp_ban_live(const struct wxdp_ban_val *v, __u64 now)
{
	return v->expires_ns == 0 || now < v->expires_ns;
}

/*
 * The exact-ban index (xdp_abi.h, struct wxdp_bani4): the hash of an
 * address (network-order bytes as loaded by this host), its slot and a
 * slot's check word. Multiplicative hashing: two or four multiplies, no
 * loop, the same in the program and in ban.c by construction. Not keyed:
 * an address's slot only decides how fast its ban is found, never whether
 * (a collision falls back to the exact hash).
 */
#define WXDP_BANI_K1 0x9E3779B97F4A7C15ULL
#define WXDP_BANI_K2 0xC2B2AE3D27D4EB4FULL

WXDP_INLINE __u64 wxdp_bani_hash4(const __u8 *a4)
{
	__u32 w;

	__builtin_memcpy(&w, a4, 4);
	return ((__u64)w ^ WXDP_BANI_K2) * WXDP_BANI_K1;
}

WXDP_INLINE __u64 wxdp_bani_hash6(const __u8 *a16)
{
	__u64 w[2], h;

	/* Two 64-bit words, each the address's 32-bit words i and i + 1 as
	 * (w[i] | w[i + 1] << 32): a little-endian load as it is (two loads
	 * where four and their shifts and ors kept the BPF program's
	 * registers spilling), the halves swapped on a big-endian one. */
	__builtin_memcpy(w, a16, 16);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w[0] = w[0] << 32 | w[0] >> 32;
	w[1] = w[1] << 32 | w[1] >> 32;
#endif
	h = w[0] * WXDP_BANI_K1;
	h ^= w[1] * WXDP_BANI_K2;
	return (h ^ (h >> 32)) * WXDP_BANI_K1;
}

WXDP_INLINE __u32 wxdp_bani_slot(__u64 h)
{
	return (__u32)(h >> (64 - WXDP_BANI_BITS));
}

/* Never 0 (the empty slot's). */
WXDP_INLINE __u32 wxdp_bani_check(__u64 h, __u64 expires_ns)
{
	return ((__u32)h ^ (__u32)expires_ns ^ (__u32)(expires_ns >> 32)) | 1;
}

/*
 * Refill bucket b with rate r up to time now and return the tokens it
 * holds (nano-packets). A never-used bucket (last_ns 0) starts full.
 * Tokens are nano-packets: burst <= 2^32 packets so full <= 4.3e18 and the
 * refill product elapsed * pps is bounded by (full - tokens) + pps, which
 * cannot overflow 64 bits. A clock going backwards refills nothing.
 * r->pps must not be 0.
 */
WXDP_INLINE __u64 wxdp_tb_refill(struct wxdp_bucket *b, const struct wxdp_rate *r, __u64 now)
{
	__u64 burst = r->burst ? r->burst : 1;
	__u64 full = burst * WXDP_NS_PER_S;
	__u64 tokens = b->tokens;

	if (b->last_ns == 0) {
		tokens = full;
		b->last_ns = now;
	} else if (now > b->last_ns) {
		__u64 elapsed = now - b->last_ns;
		__u64 need;

		if (tokens > full)
			tokens = full;
		need = full - tokens;
		if (elapsed > need / r->pps)
			tokens = full;
		else
			tokens += elapsed * r->pps;
		b->last_ns = now;
	}
	if (tokens > full)
		tokens = full;
	b->tokens = tokens;
	return tokens;
}

/*
 * Take one packet from bucket b with rate r at time now. Returns 1 (allowed)
 * or 0 (over the limit). pps 0 = no limit.
 */
WXDP_INLINE int wxdp_tb_take(struct wxdp_bucket *b, const struct wxdp_rate *r, __u64 now)
{
	__u64 tokens;

	if (r->pps == 0)
		return 1;
	tokens = wxdp_tb_refill(b, r, now);
	if (tokens < WXDP_NS_PER_S)
		return 0;
	b->tokens = tokens - WXDP_NS_PER_S;
	return 1;
}

/*
 * 1 when bucket b would be full at time now (what wxdp_tb_refill() would
 * make of it; b is not changed): never used, or refilled to its burst.
 * pps 0 (no limit): 1. The per-CPU bucket slots give a slot away only
 * when all of its holder's buckets are full (xdp_abi.h struct
 * wxdp_rlc_slot).
 */
WXDP_INLINE int wxdp_tb_full(const struct wxdp_bucket *b, const struct wxdp_rate *r, __u64 now)
{
	__u64 full = (r->burst ? (__u64)r->burst : 1) * WXDP_NS_PER_S;
	__u64 need, elapsed;

	if (r->pps == 0 || b->last_ns == 0 || b->tokens >= full)
		return 1;
	if (now <= b->last_ns)
		return 0;
	elapsed = now - b->last_ns;
	need = full - b->tokens;
	return elapsed > need / r->pps || elapsed * r->pps >= need;
}

/* The slot of source key k in the per-CPU bucket slots. */
WXDP_INLINE __u32 wxdp_rlc_slot(const struct wxdp_src_key *k)
{
	return (__u32)(wxdp_bani_hash6(k->addr) >> (64 - WXDP_RLC_BITS));
}

/*
 * 1 when bucket b holds a packet's worth of tokens at time now (refilled,
 * nothing taken), else 0. pps 0 = no limit. Lets a caller drop on an empty
 * shared budget before it pays for per-source state.
 */
WXDP_INLINE int wxdp_tb_ready(struct wxdp_bucket *b, const struct wxdp_rate *r, __u64 now)
{
	return r->pps == 0 || wxdp_tb_refill(b, r, now) >= WXDP_NS_PER_S;
}

/* The rate of a class in a config. */
WXDP_INLINE const struct wxdp_rate *wxdp_class_rate(const struct wxdp_config *c, __u32 cls)
{
	if (cls == WXDP_CLASS_INITIAL)
		return &c->quic_initial;
	if (cls == WXDP_CLASS_DHT)
		return &c->dht;
	if (cls == WXDP_CLASS_STUN)
		return &c->stun;
	return &c->quic;
}

/* The per-source rate of a packet of class cls from a source validated
 * (valid > 0) or not: a validated source's QUIC packets (not its
 * Initials) take quic_valid, in the same bucket. */
WXDP_INLINE const struct wxdp_rate *wxdp_src_rate(const struct wxdp_config *c, __u32 cls, int valid)
{
	if (cls == WXDP_CLASS_QUIC && valid > 0)
		return &c->quic_valid;
	return wxdp_class_rate(c, cls);
}

/* Whether the per-source rate of class cls depends on the source's
 * validation (so that it must be looked up even without a budget). */
WXDP_INLINE int wxdp_rate_by_valid(const struct wxdp_config *c, __u32 cls)
{
	return cls == WXDP_CLASS_QUIC &&
	       (c->quic_valid.pps != c->quic.pps || c->quic_valid.burst != c->quic.burst);
}

/* The global budget of unvalidated sources for a class. */
WXDP_INLINE const struct wxdp_rate *wxdp_class_unval(const struct wxdp_config *c, __u32 cls)
{
	if (cls == WXDP_CLASS_INITIAL)
		return &c->unval_initial;
	if (cls == WXDP_CLASS_DHT)
		return &c->unval_dht;
	if (cls == WXDP_CLASS_STUN)
		return &c->unval_stun;
	return &c->unval_quic;
}

/* The counter of a packet dropped by its class's unvalidated budget. */
WXDP_INLINE __u32 wxdp_class_unval_stat(__u32 cls)
{
	if (cls == WXDP_CLASS_INITIAL)
		return WXDP_STAT_DROP_UNVAL_INITIAL;
	if (cls == WXDP_CLASS_DHT)
		return WXDP_STAT_DROP_UNVAL_DHT;
	if (cls == WXDP_CLASS_STUN)
		return WXDP_STAT_DROP_UNVAL_STUN;
	return WXDP_STAT_DROP_UNVAL_QUIC;
}

/* Is a validated-source entry in force at now? */
WXDP_INLINE int wxdp_valid_live(const struct wxdp_valid_val *v, __u64 now)
{
	return now < v->expires_ns;
}

/* The drop counter of a class. */
WXDP_INLINE __u32 wxdp_class_drop_stat(__u32 cls)
{
	if (cls == WXDP_CLASS_INITIAL)
		return WXDP_STAT_DROP_RATE_INITIAL;
	if (cls == WXDP_CLASS_DHT)
		return WXDP_STAT_DROP_RATE_DHT;
	if (cls == WXDP_CLASS_STUN)
		return WXDP_STAT_DROP_RATE_STUN;
	return WXDP_STAT_DROP_RATE_QUIC;
}

#endif
