/* SPDX-License-Identifier: MIT */
/*
 * Direct paths for relayed connections: the hole-punching protocol core
 * (no I/O, no clock of its own). docs/CONNECTIVITY.md "Direct paths",
 * wire formats in docs/PROTOCOL.md "Path coordination" and "Punch probes".
 *
 * One struct path_conn per QUIC connection, owned by the worker that owns
 * the connection (no locks). The glue (userspace/quic/quic_path.c) feeds
 * it coordination messages from the connection's path stream, probes and
 * acks from the QUIC port, and timer ticks; the core answers through
 * struct path_io: messages for the stream, datagrams to send, and the
 * path to use (direct address or back to the relayed one).
 *
 * Sequence (DCUtR-style): the dialler sends CONNECT (its candidates, NAT
 * class, a fresh token and routing byte), the holder answers CONNECT with
 * its own; the dialler takes the relayed RTT from that exchange, sends
 * SYNC and starts probing RTT/2 later; the holder starts on SYNC. A probe
 * carrying the receiver's token is acknowledged once, to its source; an
 * ack carrying the prober's token from the candidate it was sent to
 * validates that candidate: the prober switches to it and sends
 * VALIDATED, the other side switches to where that candidate's probes
 * came from. A dialler whose attempts all fail sends FAILED: both record
 * both NAT classes.
 */
#ifndef WEFT_PATH_H
#define WEFT_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "weft/io.h"

#define PATH_TOKEN_LEN 16
#define PATH_MAX_CANDS 8	 /* candidates per side (CONNECT refuses more) */
#define PATH_MSG_MAX 200	 /* one coordination message, header included */
#define PATH_PROBE_LEN 40	 /* probe and ack datagrams: exactly this long */
#define PATH_PROBE_COOKIE 0x2112A442U /* STUN's magic cookie (see PROTOCOL.md) */
#define PATH_PROBE_TYPE 0x0E01	 /* STUN-shaped message types of our own */
#define PATH_ACK_TYPE 0x0E02

/* Coordination message types (stream type 0x05). */
enum path_msg_type {
	PATH_MSG_CONNECT = 1,
	PATH_MSG_REPLY = 2,
	PATH_MSG_SYNC = 3,
	PATH_MSG_VALIDATED = 4,
	PATH_MSG_FAILED = 5,
};

/* NAT classes carried in CONNECT (values of enum conn_nat). */
#define PATH_NAT_MAX 3

/* Defaults of struct path_limits (0 selects them). */
#define PATH_DEF_ATTEMPTS 3	      /* attempts per connection: at 0, +5 s, +15 s */
#define PATH_DEF_PROBE_MS 100	      /* one round of probes every 100 ms... */
#define PATH_DEF_PUNCH_MS 1500	      /* ...for 1.5 s per attempt (15 rounds) */
#define PATH_DEF_FALLBACK_MS 3000     /* direct path silent this long while we send: back to relay */
#define PATH_DEF_REPLY_MS 5000	      /* CONNECT unanswered this long: the attempt failed */
#define PATH_RETRY1_MS 5000	      /* second attempt 5 s after the first started */
#define PATH_RETRY2_MS 15000	      /* third attempt 15 s after the first started */
#define PATH_DEF_PEER_ATTEMPTS 10     /* attempts per peer key per window, both roles... */
#define PATH_DEF_PEER_WINDOW_S 600    /* ...per 10 min */
#define PATH_DEF_PEER_SLOTS 256	      /* peers tracked (the oldest window's slot is reused) */
/* TTL / hop limit of each attempt's first probe round: it passes our own
 * NAT (opening the mapping and its filter towards the peer) and dies
 * before the peer's, so it cannot leave state there before the peer's own
 * first probe went out (docs/CONNECTIVITY.md "Linux masquerade routers").
 * 2: a home NAT is the first hop, the provider's router the second. */
#define PATH_DEF_PROBE_TTL 2
#define PATH_PROBE_TTL_OFF 256 /* struct path_limits.probe_ttl: every round at the default TTL */

struct path_limits {
	unsigned int attempts;	  /* default PATH_DEF_ATTEMPTS (at most 3) */
	unsigned int probe_ms;	  /* default PATH_DEF_PROBE_MS */
	unsigned int punch_ms;	  /* default PATH_DEF_PUNCH_MS */
	unsigned int fallback_ms; /* default PATH_DEF_FALLBACK_MS */
	unsigned int max_cands;	  /* candidates sent and probed, default and max PATH_MAX_CANDS */
	unsigned int probe_ttl;	  /* first round's TTL, 1..255; 0: PATH_DEF_PROBE_TTL; PATH_PROBE_TTL_OFF */
};

/* One side's offer (CONNECT and its reply). */
struct path_offer {
	uint8_t attempt; /* 1.. */
	uint8_t nat;	 /* enum conn_nat of the sender */
	uint8_t route;	 /* routing byte probes to the sender carry */
	uint8_t token[PATH_TOKEN_LEN];
	unsigned int ncand;
	struct io_addr cand[PATH_MAX_CANDS];
};

/* A probe or its ack (both PATH_PROBE_LEN bytes on the wire). */
struct path_probe {
	int ack;	      /* 0: probe, 1: ack */
	uint8_t nonce[12];    /* the STUN transaction id field */
	uint8_t route;	      /* receiver's routing byte */
	uint8_t attempt;
	uint8_t token[PATH_TOKEN_LEN]; /* probe: receiver's token; ack: prober's */
};

/* Encoders return the length written, or -ENOSPC / -EINVAL. Parsers take
 * (buf, len), check every length and value, and return 0, -EAGAIN (a
 * prefix of a message: read more; path_msg_parse only) or -EBADMSG. */
int path_msg_encode(uint8_t *buf, size_t cap, enum path_msg_type type, const struct path_offer *o,
		    uint8_t idx);
/* One message at the start of buf: *used its length, *type, and for
 * CONNECT / REPLY *o, for VALIDATED *idx. */
int path_msg_parse(const uint8_t *buf, size_t len, size_t *used, enum path_msg_type *type,
		   struct path_offer *o, uint8_t *idx);
int path_probe_encode(uint8_t buf[PATH_PROBE_LEN], const struct path_probe *p);
int path_probe_parse(const uint8_t *buf, size_t len, struct path_probe *p);
/* 1 when a datagram on the QUIC port looks like a probe or an ack (the
 * cheap check the receive path does before routing it). */
int path_probe_is(const uint8_t *buf, size_t len);

enum path_state {
	PATH_IDLE = 0,	 /* nothing tried (or the holder waiting for CONNECT) */
	PATH_CONNECTING, /* dialler: CONNECT sent, waiting for the reply */
	PATH_WAIT_SYNC,	 /* holder: reply sent, waiting for SYNC */
	PATH_PUNCHING,	 /* probes going out */
	PATH_WAIT_RETRY, /* dialler: attempt over, next one scheduled */
	PATH_DIRECT,	 /* on a validated direct address */
	PATH_FAILED,	 /* every attempt failed: relayed for good */
};
const char *path_state_name(enum path_state s);

/* Callbacks the core calls (all on the owning worker, synchronously). */
struct path_io {
	void *arg;
	/* Queue a coordination message on the connection's path stream. */
	int (*send_msg)(void *arg, const uint8_t *msg, size_t len);
	/* Send a datagram from the QUIC port; ttl: its IPv4 TTL / IPv6 hop
	 * limit, 0 for the default. */
	int (*send_udp)(void *arg, const struct io_addr *to, const uint8_t *buf, size_t len,
			uint8_t ttl);
	/* Our candidates and NAT class for an offer (at most max). */
	unsigned int (*cands)(void *arg, struct io_addr *out, unsigned int max, uint8_t *nat);
	/* Use this path from now on: a validated direct address, or NULL for
	 * the relayed (stable) one. */
	void (*use)(void *arg, const struct io_addr *direct);
	/* Packets from this address belong to the connection (rewritten to
	 * the stable address before QUIC sees them). */
	void (*alias)(void *arg, const struct io_addr *from);
	/* May an attempt with this connection's peer start now (the per-peer
	 * budget, struct path_budget)? 0: yes, and it is counted; <0: no.
	 * NULL: always. */
	int (*allow)(void *arg);
};

/*
 * Attempts per peer key per time window (docs/CONNECTIVITY.md "Bounds"):
 * a bounded table (no lock, no clock: the caller serialises and passes
 * now). Each slot holds a key, the start of its window and the attempts
 * counted in it; a window older than window_ms starts again at 0. When
 * every slot is taken, the slot whose window started first is reused (a
 * peer that churns through more keys than slots can only reset budgets of
 * keys it does not own: each key costs it an authenticated connection).
 */
struct path_budget;
/* max_attempts 0: PATH_DEF_PEER_ATTEMPTS; window_s 0: PATH_DEF_PEER_WINDOW_S;
 * slots 0: PATH_DEF_PEER_SLOTS. Returns 0, -ENOMEM. */
int path_budget_new(struct path_budget **out, unsigned int max_attempts, unsigned int window_s,
		    unsigned int slots);
void path_budget_free(struct path_budget *b);
/* Count one attempt with key (32 bytes) at now_ns: 0, or -EAGAIN when its
 * window already holds max_attempts (nothing counted). */
int path_budget_take(struct path_budget *b, const uint8_t *key, uint64_t now_ns);
/* Attempts left for key at now_ns (max_attempts for an unknown key). */
unsigned int path_budget_left(const struct path_budget *b, const uint8_t *key, uint64_t now_ns);

/* Per-connection state and its outcome (read by the control API). */
struct path_conn {
	int initiator; /* 1: the dialler drives attempts */
	enum path_state state;
	struct path_limits lim;
	uint8_t route; /* ours */
	unsigned int attempt;
	uint64_t t_first_ns;   /* first CONNECT sent / received */
	uint64_t t_connect_ns; /* this attempt's CONNECT */
	uint64_t t_deadline_ns; /* end of the current wait / punch */
	uint64_t t_next_probe_ns;
	unsigned int round; /* probe rounds sent in this attempt */
	uint64_t t_next_attempt_ns;
	uint64_t rtt_ns; /* relayed RTT from the CONNECT exchange */
	struct path_offer mine, peer;
	uint8_t salt[8];
	uint32_t seq;
	struct io_addr probe_src[PATH_MAX_CANDS]; /* where probes to our cand[i] came from */
	uint32_t have_src;			  /* bit i: probe_src[i] set */
	/* outcome */
	struct io_addr direct;
	uint64_t to_direct_ms; /* first CONNECT to direct */
	uint64_t t_direct_ns;  /* when it went direct (the caller's clock) */
	unsigned int direct_attempt;
	int validated_here; /* 1: our ack validated it; 0: the peer told us */
	/* counters */
	uint64_t probes_tx, probes_rx, acks_tx, acks_rx, bad_rx;
	uint64_t probes_low_ttl; /* of probes_tx: sent with lim.probe_ttl */
	uint64_t switches, fallbacks, attempts_started;
	uint64_t upgrades; /* of switches: direct IPv4 -> direct IPv6 (both validated) */
	uint64_t limited; /* attempts not started or answered: the peer's budget was spent */
	uint64_t repunches; /* dialler: punching again after a fallback */
	int failed_counted, direct_counted;
};

/* Initialise (no allocation). route: the routing byte that brings probes
 * to this connection's worker. */
void path_init(struct path_conn *p, int initiator, uint8_t route, const struct path_limits *lim);
/* Dialler: start the first attempt now. Returns 0, -EALREADY. */
int path_start(struct path_conn *p, uint64_t now_ns, const struct path_io *io);
/* A message from the path stream (already parsed). Returns 0, or -EPROTO
 * for a message out of place (the glue resets the stream). */
int path_on_msg(struct path_conn *p, enum path_msg_type type, const struct path_offer *o,
		uint8_t idx, uint64_t now_ns, const struct path_io *io);
/* Probe or ack from `from` whose token and route matched this
 * connection (path_probe_mine). */
void path_on_probe(struct path_conn *p, const struct path_probe *pr, const struct io_addr *from,
		   uint64_t now_ns, const struct path_io *io);
/* 1 when pr carries a token of this connection's current attempt. */
int path_probe_mine(const struct path_conn *p, const struct path_probe *pr);
/* Timers: run what is due; returns the next deadline (UINT64_MAX: none). */
uint64_t path_tick(struct path_conn *p, uint64_t now_ns, const struct path_io *io);
/* The direct path stopped answering (the glue's fallback check): back to
 * the relayed address. The dialler then punches again (state
 * PATH_WAIT_RETRY, due at once: call path_tick) when the connection has
 * attempts left and the NAT classes allow a direct path; a holder that
 * gets a newer CONNECT while direct falls back too. */
void path_fallback(struct path_conn *p, const struct path_io *io);

#endif
