/* SPDX-License-Identifier: MIT */
/*
 * Relay data plane (docs/CONNECTIVITY.md, "Relay"): circuits between two
 * ends, one relay port per circuit, forwarded by rewriting addresses.
 *
 * The contract between the control plane (reservations, circuit requests
 * over QUIC: userspace/relay/ of the control-plane side) and this data
 * plane:
 *   1. The control plane draws two 16-byte random tokens (one per end),
 *      calls relay_fwd_add() and gets the circuit id and its relay port.
 *   2. It hands each end its token and relay:PORT over that end's
 *      authenticated QUIC connection.
 *   3. Each end binds: from its QUIC socket it sends relay_bind_request()
 *      (a STUN Binding request with the WEFT-CIRCUIT attribute carrying its
 *      token) to relay:PORT, retrying (200 ms, 400 ms, 800 ms, ...;
 *      deadline 5 s) until a Binding success response with its transaction
 *      id arrives (parse it with conn_stun_parse_response(): the
 *      XOR-MAPPED-ADDRESS is the address the relay latched). The relay
 *      latches the source of a valid bind as that end (a later bind with
 *      the same token from another address moves the latch: NAT
 *      rebinding). Unknown tokens get no answer.
 *   4. Once both ends are bound, a datagram to relay:PORT from A's latched
 *      address goes to B's latched address from relay:PORT, and the other
 *      way; anything else to relay:PORT is dropped and counted. The ends
 *      run QUIC end to end, each using relay:PORT as the peer's address.
 *   5. The data plane ends a circuit by itself on its hard lifetime, its
 *      idle timeout, its byte limit (both directions together): on_end is
 *      called once with the reason; relay_fwd_del() ends it from the
 *      control plane (on_end is then called with RELAY_END_DELETED).
 *
 * Modes: in io_uring / mem mode the engine forwards (the relay port range
 * is served by the engine: engine_opts.range_min/max = relay.ports, one
 * handler registered by relay_fwd_new). In xdp mode (opts.xdp set) bound
 * circuits are forwarded inside the XDP program (circuit map, rewrite,
 * XDP_TX) and never reach userspace; binds still do (to the AF_XDP
 * sockets of instance 0: with several weftd sharing an interface, the
 * relay is the first). A circuit's two ends must be of one family to be
 * forwarded in the kernel (otherwise userspace forwards it). Stats and
 * relay_fwd_json read the kernel's counters (in_kernel = 1).
 *
 * Threads: every function may be called from any thread (an internal
 * mutex guards the circuit table), except relay_fwd_free. on_end runs on
 * an engine worker thread (the one that saw the ending packet, or worker
 * 0 for timed expiry), with no relay_fwd lock held: it may call
 * relay_fwd_del/stats/json, and must not block.
 */
#ifndef WEFT_RELAY_FWD_H
#define WEFT_RELAY_FWD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/io.h"
#include "weft/relay_wire.h"

struct engine;
struct wxdp;
struct relay_fwd;

/* Why a circuit ended (on_end's reason; equal to enum wxdp_relay_end). */
enum relay_end {
	RELAY_END_DELETED = 1,	/* relay_fwd_del() or relay_fwd_free() */
	RELAY_END_LIFETIME = 2, /* limits.lifetime_ms reached */
	RELAY_END_IDLE = 3,	/* nothing forwarded for limits.idle_ms (binding included) */
	RELAY_END_BYTES = 4,	/* limits.max_bytes reached (both directions together) */
};

/* Documented defaults (docs/CONFIG.md, relay.*), each chosen so that an
 * ordinary node that enables relaying stays cheap while a QUIC transfer
 * of a 64 MiB content item fits in one circuit; a relay host raises them. */
#define RELAY_DEF_PORT_MIN 42000
#define RELAY_DEF_PORT_MAX 42255
#define RELAY_DEF_MAX_CIRCUITS 256		  /* one per port of the default range */
#define RELAY_DEF_CIRCUIT_BYTES (128ULL << 20)	  /* 128 MiB, both directions */
#define RELAY_DEF_CIRCUIT_PPS 20000		  /* per direction: ~190 Mbit/s of 1200-byte QUIC */
#define RELAY_DEF_CIRCUIT_BURST 4000		  /* per direction: a congestion window's burst */
#define RELAY_DEF_CIRCUIT_LIFETIME_MS 3600000U	  /* 1 h; the control plane re-requests */
#define RELAY_DEF_CIRCUIT_IDLE_MS 60000U	  /* 1 min: twice a QUIC idle timeout of 30 s */

/* Limits of one circuit; a 0 field takes the relay_fwd's default. */
struct relay_fwd_limits {
	uint64_t max_bytes;   /* UDP payload bytes, both directions together */
	uint32_t pps, burst;  /* per direction token bucket */
	uint32_t lifetime_ms; /* hard lifetime from relay_fwd_add */
	uint32_t idle_ms;     /* ended when nothing was forwarded this long */
	/* 1: a bind is answered only once both ends are bound, so an answer
	 * means "forwarding"; the first end's (last) request is answered when
	 * the second end binds. The control plane's circuits set it: a
	 * dialler that sends at once after its answer never has its first
	 * packet (a QUIC Initial, retransmitted only after ~1 s) dropped
	 * because the holder's bind was still on its way. 0: every valid bind
	 * is answered at once. */
	uint32_t hold_binds;
};

struct relay_fwd_opts {
	struct engine *eng; /* required; relay_fwd_new before engine_start, with
			       engine_opts.range_min/max = port_min/port_max */
	struct wxdp *xdp;   /* optional: weft's XDP program (the engine in xdp
			       mode): bound circuits are forwarded in the kernel */
	uint16_t port_min, port_max; /* relay.ports, one port per circuit; default 42000-42255 */
	uint32_t max_circuits;	     /* relay.max_circuits; 0 = min(256, ports in range) */
	struct relay_fwd_limits defaults; /* 0 fields: the RELAY_DEF_* values */
	/* A circuit ended (any reason, once per circuit). */
	void (*on_end)(void *arg, uint64_t id, int reason);
	void *arg;
};

/* Fill o with the defaults (ports 42000-42255, 256 circuits, RELAY_DEF_*
 * limits). eng must still be set. */
void relay_fwd_opts_default(struct relay_fwd_opts *o);

/*
 * Create the data plane and register the relay port range's handler on
 * the engine (engine_register_range). Call before engine_start(). In xdp
 * mode also writes the relay port range into the program's config.
 * Returns 0, -EINVAL (no engine, bad range, range not the engine's),
 * -EEXIST (range handler already registered), -EBUSY (engine started),
 * -ENOMEM.
 */
int relay_fwd_new(struct relay_fwd **out, const struct relay_fwd_opts *o);
/* Free: every live circuit ends (on_end RELAY_END_DELETED), kernel
 * entries are removed. Call after engine_stop() (the handler and timers
 * point at rf). NULL-safe. */
void relay_fwd_free(struct relay_fwd *rf);

/*
 * Add a circuit. tok_a / tok_b: the ends' 16-byte random tokens (distinct;
 * the data plane keeps copies). lim may be NULL (defaults). On success *id
 * (never 0, never reused) and *port (the relay port both ends send to).
 * Returns 0, -EINVAL (NULL or equal tokens), -ENOSPC (max_circuits live or
 * no free port), -errno from the kernel map (xdp mode).
 */
int relay_fwd_add(struct relay_fwd *rf, const uint8_t tok_a[RELAY_TOKEN_LEN],
		  const uint8_t tok_b[RELAY_TOKEN_LEN], const struct relay_fwd_limits *lim,
		  uint64_t *id, uint16_t *port);
/* End a circuit now (on_end runs with RELAY_END_DELETED before this
 * returns, on the calling thread). Returns 0 or -ENOENT. */
int relay_fwd_del(struct relay_fwd *rf, uint64_t id);

/* One end of a circuit: end[0] is A (tok_a), end[1] is B. */
struct relay_fwd_end {
	int bound;	       /* a valid bind was seen */
	struct io_addr addr;   /* latched address (valid when bound) */
	uint64_t binds;	       /* valid binds answered (retries and rebinds included) */
	uint64_t pkts, bytes;  /* forwarded FROM this end to the other (payload bytes) */
	uint64_t drops;	       /* from this end, dropped: rate, byte limit, ended, peer unbound */
};

struct relay_fwd_stats {
	uint64_t id;
	uint16_t port;
	int in_kernel;	       /* forwarded by the XDP program (counters from its map) */
	int ended;	       /* 0, or the RELAY_END_* reason (an ended circuit is freed
				  right after on_end, so stats see it only inside on_end) */
	struct relay_fwd_end end[2];
	struct relay_fwd_limits limits; /* in force (defaults applied) */
	uint64_t created_ns, expires_ns, last_ns; /* engine clock (CLOCK_MONOTONIC ns) */
};

/* Counters of one circuit. Returns 0 or -ENOENT. */
int relay_fwd_stats(struct relay_fwd *rf, uint64_t id, struct relay_fwd_stats *st);

/* Totals of the data plane since relay_fwd_new. */
struct relay_fwd_totals {
	uint64_t circuits;	/* live now */
	uint64_t added, ended;	/* since start */
	uint64_t ended_by[5];	/* by RELAY_END_* reason (index 1..4) */
	uint64_t binds_ok;	/* valid binds answered */
	uint64_t binds_bad;	/* bind-shaped but unknown token / no circuit on the port */
	uint64_t drop_unknown;	/* not a bind, from no latched end (or the peer not bound) */
	uint64_t user_pkts, user_bytes; /* forwarded by userspace (the engine) */
	uint64_t user_drops;	/* dropped by the policy in userspace (rate, limits) */
};
void relay_fwd_totals(struct relay_fwd *rf, struct relay_fwd_totals *t);

/*
 * Every live circuit and the totals, for weftctl / the control API:
 * {"circuits":[{"id","port","in_kernel","ends":[{"bound","addr","binds",
 * "pkts","bytes","drops"},..2],"max_bytes","pps","burst","lifetime_ms",
 * "idle_ms","age_ms","expires_in_ms"}], "totals":{...}}. Caller owns it;
 * NULL on allocation failure.
 */
json_t *relay_fwd_json(struct relay_fwd *rf);

#endif
