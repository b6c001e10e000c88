/* SPDX-License-Identifier: MIT */
/*
 * Relay, control plane (issue 14): reservations and circuit requests over
 * QUIC. The data plane (forwarding on relay ports, binding of circuit ends)
 * is include/weft/relay_fwd.h.
 *
 *  - The control protocol's messages and the circuit bind are wire
 *    formats: include/weft/relay_wire.h (module relaywire).
 *  - The reservation table (relay_tab_*): limits, expiry and churn of the
 *    relay's reservations and the circuits counted against them; no I/O,
 *    no clock of its own, not thread-safe (the glue locks it).
 *  - The node glue (relay_node_*): relay server (relay.enable), client
 *    (reservations held by an unreachable node, circuits it accepts or
 *    asks for), control routes and metrics.
 * Design and limits: docs/CONNECTIVITY.md, "Relay".
 */
#ifndef WEFT_RELAY_H
#define WEFT_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "weft/io.h"
#include "weft/relay_wire.h"

/* ------------------------------------------------------------ reservation table */

/* Defaults (docs/CONFIG.md, relay.*). An ordinary node that enables relay
 * keeps them; a relay host raises them. */
#define RELAY_DEF_MAX_RESERVATIONS 128	    /* relay.max_reservations */
#define RELAY_DEF_CIRCUITS_PER_RES 8	    /* relay.circuits_per_reservation */
#define RELAY_DEF_RES_PER_ADDR 4	    /* relay.reservations_per_addr (IPv4 address, IPv6 /64) */
#define RELAY_DEF_RES_TTL_S 60		    /* relay.reservation_ttl_s: lifetime without refresh */
#define RELAY_DEF_CHURN_MAX 30		    /* relay.churn_max: new reservations per source per minute */
#define RELAY_CHURN_WINDOW_MS 60000ULL	    /* the churn window */
#define RELAY_CHURN_SLOTS 256		    /* sources whose churn is tracked (oldest replaced) */
#define RELAY_OFFER_MS 5000		    /* the target answers an offer within this */
#define RELAY_REFRESH_MS 10000		    /* the holder refreshes this often (under QUIC's idle timeout) */

struct relay_tab_opts {
	unsigned int max_reservations;	   /* 0: default */
	unsigned int circuits_per_res;	   /* 0: default */
	unsigned int reservations_per_addr; /* 0: default */
	unsigned int ttl_s;		   /* 0: default */
	unsigned int churn_max;		   /* 0: default */
};

struct relay_res {
	uint8_t key[RELAY_KEY_LEN]; /* the holder's node key (its QUIC certificate) */
	struct io_addr addr;	    /* the holder's address as the relay sees it */
	uint64_t conn;		    /* the QUIC connection holding it (quic_node handle) */
	uint64_t created_ms, expires_ms;
	unsigned int circuits; /* live circuits towards the holder */
	uint64_t circuits_total;
};

struct relay_tab;

int relay_tab_new(struct relay_tab **out, const struct relay_tab_opts *o);
void relay_tab_free(struct relay_tab *t);
/*
 * Take or refresh the reservation of key held over conn, from addr (the
 * connection's validated address). A key already reserved over another
 * connection moves to this one (the holder reconnected). Returns RELAY_OK
 * with *ttl_s set, or RELAY_E_RESERVATIONS / RELAY_E_ADDR_LIMIT /
 * RELAY_E_CHURN (a new reservation beyond relay.churn_max per minute from
 * the address; *abuse is set to 1 the first time in a window, the moment
 * to report it to the ban pipeline).
 */
int relay_tab_reserve(struct relay_tab *t, const uint8_t key[RELAY_KEY_LEN],
		      const struct io_addr *addr, uint64_t conn, uint64_t now_ms,
		      uint32_t *ttl_s, int *abuse);
/* The live reservation of key, or NULL. The pointer is valid until the
 * next call that changes the table. */
struct relay_res *relay_tab_find(struct relay_tab *t, const uint8_t key[RELAY_KEY_LEN],
				 uint64_t now_ms);
/* Count a circuit towards key: RELAY_OK, RELAY_E_NO_RESERVATION,
 * RELAY_E_CIRCUITS. relay_tab_circuit_end gives it back. */
int relay_tab_circuit_add(struct relay_tab *t, const uint8_t key[RELAY_KEY_LEN], uint64_t now_ms);
void relay_tab_circuit_end(struct relay_tab *t, const uint8_t key[RELAY_KEY_LEN]);
/* The connection conn closed: its reservations end. Returns how many. */
unsigned int relay_tab_drop_conn(struct relay_tab *t, uint64_t conn);
/* Drop reservations not refreshed in time. Returns how many. */
unsigned int relay_tab_expire(struct relay_tab *t, uint64_t now_ms);
/* Reservations ended by expiry since relay_tab_new. */
uint64_t relay_tab_expired(const struct relay_tab *t);
/* Live reservations; the i-th (0 <= i < count) or NULL. */
unsigned int relay_tab_count(const struct relay_tab *t);
const struct relay_res *relay_tab_get(const struct relay_tab *t, unsigned int i);

/* ------------------------------------------------------------ flood evidence */

/*
 * A circuit end that floods (docs/OPERATIONS.md, "The abuse pipeline"):
 * once per RELAY_FLOOD_WINDOW_MS the relay looks at each bound end's drop
 * and forward counters (drops: packets from it over the circuit's rate, or
 * past its limits). A window with at least relay.flood_drops new drops
 * that are also more than RELAY_FLOOD_RATIO times the packets forwarded
 * from it is a strike; any other window clears the strikes;
 * RELAY_FLOOD_STRIKES strikes in a row are abuse. The ratio keeps a
 * congestion-controlled transfer that runs into the circuit's rate (a few
 * per cent lost, then backing off) from ever counting: it cannot keep
 * losing two packets of three for seconds. Only an end whose latched address is the validated address
 * of its party's QUIC connection (the dialler's CONNECT connection, the
 * holder's reservation) is banned; the circuit ends either way. No I/O.
 */
#define RELAY_FLOOD_WINDOW_MS 1000
#define RELAY_FLOOD_STRIKES 3
#define RELAY_FLOOD_RATIO 2
#define RELAY_DEF_FLOOD_DROPS 1000 /* relay.flood_drops: drops per window that are a strike */

struct relay_flood {
	uint64_t last_drops, last_pkts; /* the counters at the last look */
	unsigned int strikes;
};

/* One window's look at an end whose counters read drops and pkts
 * (forwarded) now: 1 when this makes RELAY_FLOOD_STRIKES strikes in a row
 * (the strikes restart), else 0. threshold 0: RELAY_DEF_FLOOD_DROPS. */
int relay_flood_step(struct relay_flood *f, uint64_t drops, uint64_t pkts, uint64_t threshold);

/* ------------------------------------------------------------ node glue */

struct engine;
struct ctl;
struct guard;
struct quic_node;
struct relay_node;
struct relay_fwd;
struct conn_node;
struct dhtnode;
struct json_t;

#define RELAY_DEF_BIND_MS 5000	/* an end's bind gives up after this (200 ms, 400 ms, ... apart) */
#define RELAY_DEF_DIRECT_MS 3000 /* dial by key: direct addresses before the relay */
#define RELAY_MAX_USE 4		/* relays a node keeps reservations with (CONN_REC_MAX_RELAYS) */
/* Relays announce their QUIC port in the DHT under SHA-1 of this
 * (cf7a45c0063a5dbfd1507ccd152834477d55597b); an unreachable node without
 * relay.use looks them up there. */
#define RELAY_DHT_NAME "weft:relay"

struct relay_node_opts {
	struct engine *eng;	 /* required */
	struct quic_node *quic;	 /* required */
	struct ctl *ctl;	 /* optional: /v1/relay/... routes and metrics */
	struct guard *guard;	 /* optional: reservation churn is banned through it */
	struct conn_node *conn;	 /* optional: the node record lists the relays held */
	struct dhtnode *dht;	 /* optional: relays announce, nodes find relays */
	uint16_t quic_port;	 /* announced by a relay */
	struct relay_tab_opts tab;
	uint32_t flood_drops; /* relay.flood_drops; 0: RELAY_DEF_FLOOD_DROPS */
	/* Circuit limits handed to the data plane (0: its defaults). */
	uint64_t circuit_bytes;
	uint32_t circuit_lifetime_ms;
	/* Relays to hold reservations with ("KEY@ADDR"; relay.use), and
	 * whether to hold them at all: 1 always, 0 never, -1 when the NAT
	 * classification says we are behind an address-dependent NAT or no
	 * direct inbound contact came (relay.reserve = auto). */
	char use[RELAY_MAX_USE][128];
	unsigned int nuse;
	int reserve;
	int accept; /* accept circuits offered by our relays (relay.accept, default 1) */
	/* A relay (fwd set) announces itself under RELAY_DHT_NAME unless
	 * this is set (relay.announce = false: a relay known only to the
	 * nodes configured with it or that saw it in a record). */
	int no_announce;
};

/*
 * Create the control plane: registers stream type RELAY_ST_CTL on the QUIC
 * node (before the engine starts) and, with o->ctl, the routes
 *   GET /v1/relay/status   GET /v1/relay/reservations   GET /v1/relay/circuits
 * and weft_relay_* metrics. Returns 0, -EINVAL (missing eng/quic, a bad
 * relay.use entry), -EEXIST (type taken), -ENOMEM.
 */
int relay_node_new(struct relay_node **out, const struct relay_node_opts *o);
/* Attach the data plane (relay.enable; before relay_node_start): this node
 * then grants reservations and circuits. Create it with
 * relay_fwd_opts.on_end = relay_node_fwd_end, .arg = rn. */
void relay_node_set_fwd(struct relay_node *rn, struct relay_fwd *fwd);
void relay_node_fwd_end(void *arg, uint64_t id, int reason);
/* After the engine started: the reservation keeper and expiry timers. */
int relay_node_start(struct relay_node *rn);
/* Stop using rn: its memory goes back when the QUIC node is freed (the
 * stream type's release), after the last callback. Call after
 * engine_stop() (its timer leaves the stopped worker's wheel). Free the
 * data plane after this and before the QUIC node. NULL-safe. */
void relay_node_free(struct relay_node *rn);

/* A datagram on the QUIC port that is STUN: 1 if it answered one of our
 * binds (consumed), 0 otherwise. Any worker thread. */
int relay_node_stun(struct relay_node *rn, const uint8_t *buf, size_t len,
		    const struct io_addr *from);

/*
 * Dialler side, control threads only (blocks up to 10 s for the relay's
 * answer plus RELAY_DEF_BIND_MS for the bind, or timeout_ms for both when
 * it is not 0): ask the relay (its key and address) for a circuit to
 * target, bind our end, and give the address to dial (relay:PORT) in *out.
 * Returns 0, -ECONNREFUSED (a refusal: *status says which), -ETIMEDOUT,
 * -EHOSTUNREACH (relay unreachable), -errno.
 */
int relay_node_circuit(struct relay_node *rn, const uint8_t relay_key[RELAY_KEY_LEN],
		       const struct io_addr *relay_addr, const uint8_t target[RELAY_KEY_LEN],
		       struct io_addr *out, unsigned int timeout_ms, unsigned int *status);

#endif
