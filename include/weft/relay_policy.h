/* SPDX-License-Identifier: MIT */
/*
 * The relay's per-packet policy, one source for both forwarders: the XDP
 * program (bpf/weft_xdp.bpf.c, xdp mode) and the engine's userspace
 * forwarder (userspace/relay/fwd.c, io_uring and mem modes). Pure
 * functions over the xdp_abi.h circuit types (struct wxdp_circ): no maps,
 * no helpers, no I/O, so a packet gets the same verdict on either path by
 * construction. Also the hop-map key and the incremental checksum
 * arithmetic the kernel path uses to rewrite a packet (unit-tested here in
 * userspace against a full recomputation).
 *
 * Concurrency: a circuit's direction is written by one CPU in practice (RSS
 * hashes a flow to one rx queue; the userspace forwarder holds a lock).
 * If a direction is split over CPUs, the BPF side adds counters
 * atomically, and the token bucket may admit a few extra packets: never
 * more than the packets in flight at once.
 */
#ifndef WEFT_RELAY_POLICY_H
#define WEFT_RELAY_POLICY_H

#include "weft/xdp_abi.h"
#include "weft/xdp_policy.h"

/* Verdict of one packet of a bound circuit. */
enum wrelay_verdict {
	WRELAY_FORWARD = 0,   /* rewrite and send to the other end; then wrelay_account() */
	WRELAY_DROP_RATE = 1, /* over the direction's token bucket: drop, count */
	WRELAY_DROP_END = 2,  /* the circuit is over (c->ended says why): drop, count */
};

/*
 * Has the circuit ended by now? Returns 0 (alive) or an enum
 * wxdp_relay_end reason: an end already recorded, the hard lifetime
 * (now >= expires_ns), or idleness (nothing forwarded for idle_ns).
 */
WXDP_INLINE __u32 wrelay_over(const struct wxdp_circ *c, __u64 now)
{
	if (c->ended)
		return c->ended;
	if (c->expires_ns && now >= c->expires_ns)
		return WXDP_RELAY_END_LIFETIME;
	if (c->idle_ns && now > c->last_ns && now - c->last_ns >= c->idle_ns)
		return WXDP_RELAY_END_IDLE;
	return WXDP_RELAY_END_NONE;
}

/*
 * Decide one packet of len UDP payload bytes in direction dir (0: A->B,
 * 1: B->A) at now. Ends the circuit (sets c->ended) when it is past its
 * lifetime, idle, or when this packet would take both directions together
 * past max_bytes (the packet that would cross the limit is not sent).
 * Takes a token from the direction's bucket otherwise.
 */
WXDP_INLINE int wrelay_decide(struct wxdp_circ *c, __u32 dir, __u32 len, __u64 now)
{
	__u32 end = wrelay_over(c, now);

	if (end) {
		c->ended = end;
		return WRELAY_DROP_END;
	}
	if (c->max_bytes && c->dir[0].bytes + c->dir[1].bytes + len > c->max_bytes) {
		c->ended = WXDP_RELAY_END_BYTES;
		return WRELAY_DROP_END;
	}
	if (!wxdp_tb_take(&c->dir[dir & 1].bucket, &c->rate, now))
		return WRELAY_DROP_RATE;
	return WRELAY_FORWARD;
}

/* Count a forwarded packet (single writer; the BPF side has its own
 * atomic adds with the same meaning). */
WXDP_INLINE void wrelay_account(struct wxdp_circ *c, __u32 dir, __u32 len, __u64 now)
{
	c->dir[dir & 1].pkts++;
	c->dir[dir & 1].bytes += len;
	c->last_ns = now;
}

/* The hop-map key of a datagram from (family 4/6, addr, sport) to relay
 * port rport; ports in network order, addr 4 or 16 bytes. */
WXDP_INLINE void wrelay_key(struct wxdp_relay_key *k, __u8 family, const __u8 *addr, __be16 sport,
			    __be16 rport)
{
	int i;

	__builtin_memset(k, 0, sizeof(*k));
	k->family = family;
	k->sport = sport;
	k->rport = rport;
	if (family == 4) {
WXDP_UNROLL
		for (i = 0; i < 4; i++)
			k->addr[i] = addr[i];
	} else {
WXDP_UNROLL
		for (i = 0; i < 16; i++)
			k->addr[i] = addr[i];
	}
}

/* Most 16-bit words one update covers: IPv6 source and destination
 * (2 x 8) and the two ports. */
#define WRELAY_CSUM_MAX_WORDS 18

/*
 * Incremental Internet checksum update (RFC 1624, eqn. 3: HC' = ~(~HC +
 * ~m + m')) for a field of n 16-bit words changing from old to new (both
 * as they sit in the packet). csum is the checksum field as stored
 * (network order value read as __u16); returns the new field value.
 * n <= WRELAY_CSUM_MAX_WORDS.
 * Works on either byte order as long as all three are read the same way.
 */
WXDP_INLINE __u16 wrelay_csum_replace(__u16 csum, const __u16 *old, const __u16 *new_, int n)
{
	__u32 s = (__u16)~csum;
	int i;

WXDP_UNROLL
	for (i = 0; i < WRELAY_CSUM_MAX_WORDS; i++) {
		if (i < n) {
			s += (__u16)~old[i];
			s += new_[i];
		}
	}
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* The UDP checksum after an update: 0 means "no checksum" in IPv4 UDP, so
 * a computed 0 is sent as 0xffff (RFC 768); IPv6 UDP always has one. */
WXDP_INLINE __u16 wrelay_udp_csum_fix(__u16 csum)
{
	return csum ? csum : 0xffff;
}

#endif
