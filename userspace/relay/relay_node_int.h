/* SPDX-License-Identifier: MIT */
/*
 * Relay control plane internals: the one state (struct relay_node), its
 * lock and the declarations of each file. The files, hub first; each
 * calls only the files below it:
 *
 *   relay_node.c      hub: lifecycle, the QUIC callbacks (dispatch by
 *                     stream role and token), the timer
 *   relay_node_ctl.c  /v1/relay/... routes and metrics
 *   relay_node_srv.c  relay side: reservations, CONNECT -> OFFER ->
 *                     ANSWER -> CIRCUIT, circuits ended, floods
 *   relay_node_cli.c  holder side: the reservations we keep, offers we
 *                     accept
 *   relay_node_find.c how relays are found: the relay's DHT announce, the
 *                     lookup by unreachable nodes, relays in records seen
 *   relay_node_dial.c dialler: circuits we ask for (relay_node_circuit)
 *   relay_node_bind.c binds of our circuit ends (holder and dialler)
 *   relay_node_ctx.c  shared helpers: the stream table, sending a message,
 *                     slot lookups by connection, ENDED seen, dialling
 *
 * Locking (also docs/CONNECTIVITY.md, "Relay"): rn->mu is a plain mutex
 * (error-checking in test builds) over everything in struct relay_node
 * except o, fwd (set before start) and freeing. Nothing runs with it held
 * that can call back into this module on the same thread:
 *  - dhtnode_run() on worker 0 runs its function at once, and a lookup
 *    with no candidates finishes inside it (announce_done, discover_done):
 *    the timer calls it unlocked;
 *  - relay_fwd_del() reports the end (relay_node_fwd_end) inside the call:
 *    called unlocked (rn_flood_check);
 *  - quic_node calls only queue a command on the connection's worker
 *    (engine_call) and never run a callback on the caller's thread. The
 *    dialler (relay_node_circuit, a control thread that blocks) makes
 *    every quic_node call of a circuit request unlocked: it takes what it
 *    needs under the lock, drops it, calls, and takes it again to record
 *    the result, re-checking its slot (relay_node_dial.c). The QUIC
 *    callbacks and the timer answer on streams (write, reset, close,
 *    open; the keeper's connects) with the lock held, which keeps each
 *    stream's messages in the order they were decided.
 *  - A connect made unlocked (rn_connect) has its handle only when the
 *    call returns; the connection's connected() or closed() may come
 *    first, on its worker: an event for an unknown handle waits for the
 *    unrecorded connect calls (rn_conn_settle), never longer than one
 *    call.
 * Taking the lock: the QUIC callbacks (hub), the timer, relay_node_stun,
 * relay_node_fwd_end, relay_node_circuit, rn_flood_check, the DHT
 * completions and the control routes. Functions declared below run with it
 * held unless their comment says otherwise.
 */
#ifndef WEFT_RELAY_NODE_INT_H
#define WEFT_RELAY_NODE_INT_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "weft/dht.h"
#include "weft/engine.h"
#include "weft/io.h"
#include "weft/quic_node.h"
#include "weft/relay.h"

#define RN_TICK_MS 100	       /* timer period: bind retries, offers, keeper */
#define RN_MAX_PENDING 64      /* offers waiting for the holder's answer */
#define RN_MAX_BINDS 32	       /* our ends binding at once */
#define RN_MAX_OUTS 64	       /* circuits of ours whose ENDED we wait for */
#define RN_OUT_KEEPALIVE_MS 10000 /* their control connections PING this often when idle */
#define RN_MAX_DIALS 16	       /* circuit requests of ours at once */
#define RN_RETRY_MS 5000       /* a lost reservation is retried this often */
#define RN_BAN_S 600	       /* churn ban */
#define RN_DIAL_MS 10000       /* a circuit request answers within this */
#define RN_ANNOUNCE_MS 900000ULL /* relays re-announce every 15 min (DHT peers live 30 min) */
#define RN_ANNOUNCE_RETRY_MS 5000ULL /* until an announce was stored somewhere */
#define RN_DEAD_FAILS 3		 /* a discovered relay is dropped after this many failed dials */
#define RN_DISCOVER_MIN_MS 5000ULL  /* an unreachable node without relays looks them up, */
#define RN_DISCOVER_MAX_MS 300000ULL /* backing off from 5 s to 5 min while none is found */

/* Token of the streams we open: purpose in the top byte, slot below. */
#define TOK_USE (1ULL << 56)
#define TOK_DIAL (2ULL << 56)
#define TOK_OFFER (3ULL << 56)
#define TOK_KIND(t) ((t) & (0xffULL << 56))
#define TOK_IDX(t) ((t) & ((1ULL << 56) - 1))

enum rs_role {
	RS_NEW = 0,	/* incoming, first message not seen */
	RS_RES_IN,	/* relay: a holder's reservation stream */
	RS_CONNECT_IN,	/* relay: a dialler's CONNECT */
	RS_OFFER_OUT,	/* relay: our offer to a holder */
	RC_RES_OUT,	/* client: our reservation stream */
	RC_OFFER_IN,	/* client: an offer from our relay */
	RC_CONNECT_OUT, /* client: our CONNECT */
	RC_CIRC_OUT,	/* client: our CONNECT granted, waiting for ENDED */
};

struct rn_stream {
	int used, seen; /* seen: the one CONNECT of a stream arrived */
	enum rs_role role;
	uint64_t conn;
	int64_t sid;
	uint64_t ref; /* pending / use / dial slot */
	uint8_t buf[RELAY_MSG_MAX];
	size_t blen;
};

struct rn_pending { /* relay: an offer in flight */
	int used;
	uint64_t dconn, tconn;
	int64_t dsid, tsid;
	uint8_t dkey[RELAY_KEY_LEN], tkey[RELAY_KEY_LEN];
	struct io_addr daddr; /* the dialler's connection's (validated) address */
	uint64_t deadline_ms;
};

struct rn_circ { /* relay: a circuit in the data plane */
	int used;
	uint64_t id;
	uint16_t port;
	uint8_t dkey[RELAY_KEY_LEN], tkey[RELAY_KEY_LEN];
	uint64_t created_ms;
	uint64_t dconn; /* the dialler's CONNECT stream, kept open: ENDED goes there too */
	int64_t dsid;
	struct io_addr daddr;	    /* the dialler's CONNECT connection's address */
	struct relay_flood flood[2]; /* per end: [0] the dialler's, [1] the holder's */
};

enum use_state { U_IDLE = 0, U_DIALING, U_OPENING, U_WAIT, U_HELD };

struct rn_use { /* client: a relay we hold (or want) a reservation with */
	char target[128];
	uint8_t key[RELAY_KEY_LEN];
	struct io_addr addr;
	enum use_state st;
	uint64_t conn;
	int64_t sid;
	uint64_t next_try_ms, refreshed_ms, expires_ms;
	int answered; /* the last RESERVE sent (at refreshed_ms) was answered */
	unsigned int last_status;
	uint64_t taken, lost;
	int discovered; /* found (DHT or record), not configured: may be dropped */
	int from_record; /* found in a record seen (conn_node_seen_relays): key known */
	int have_key;
	int dead;	     /* a discovered relay that failed RN_DEAD_FAILS dials in a row */
	unsigned int fails;
};

struct rn_bind { /* one of our circuit ends binding */
	int used, done; /* done: 1 answered, < 0 failed */
	int waited;	/* a dialler waits for it (and frees it); else the timer does */
	uint8_t tid[12], token[RELAY_TOKEN_LEN];
	struct io_addr to;
	uint64_t start_ms, next_ms;
	unsigned int tries;
};

/*
 * A circuit request's slot. The dialler's thread (relay_node_circuit) makes
 * every quic_node call of the request, unlocked; the callbacks only record
 * what happened and wake it (rn->cv):
 *   D_DIALING   waiting: a connection dialled (connected), or a stream
 *               asked for (stream_opened)
 *   D_CONNECTED our own connection is up: the dialler opens the CONNECT
 *               stream
 *   D_REDIAL    the reservation connection had no stream to spare: the
 *               dialler dials one of the request's own
 *   D_OPENED    the stream is open (sid): the dialler sends CONNECT
 *   D_WAIT      CONNECT sent, waiting for CIRCUIT
 *   D_DONE, D_FAILED  answered (m) / failed (err)
 */
enum dial_state { D_FREE = 0, D_DIALING, D_CONNECTED, D_REDIAL, D_OPENED, D_WAIT, D_DONE, D_FAILED };

struct rn_dial { /* client: a circuit request of ours */
	enum dial_state st;
	uint64_t conn; /* 0 while the dialler's connect call runs */
	int err;
	uint8_t target[RELAY_KEY_LEN];
	struct relay_msg m;
	struct io_addr relay;
	int out; /* granted: 1 + the rn_out slot that waits for ENDED; 0: none free */
	int shared; /* asked on our reservation connection with the relay (not ours to close) */
	int64_t sid; /* the CONNECT stream, once opened */
	uint8_t relay_key[RELAY_KEY_LEN];
};

struct rn_out { /* dialler: a granted circuit of ours; its CONNECT stream stays open */
	int used;
	uint64_t conn; /* our control connection to the relay */
	int64_t sid;
	uint64_t circuit;
	struct io_addr via; /* relay:PORT, where our QUIC connection to the target goes */
	int shared; /* conn is our reservation connection: it stays when the circuit ends */
};

struct relay_node {
	struct relay_node_opts o;
	struct relay_fwd *fwd; /* the data plane; NULL: this node does not relay */
	/* The hub's QUIC handler: a part that dials a connection hands it to
	 * quic_node, so the connection's events come to the hub. */
	const struct quic_node_handler *qh;
	pthread_mutex_t mu; /* plain: everything below (see the top of this file) */
	pthread_cond_t cv;  /* dial and bind progress, connects recorded */
	/* quic_node connect calls running unlocked whose handle is not yet
	 * recorded in a slot: a connection event for an unknown handle waits
	 * for them (rn_conn_settle). */
	unsigned int connecting;
	struct relay_tab *tab;
	struct rn_stream *streams;
	unsigned int nstreams;
	struct rn_pending pending[RN_MAX_PENDING];
	struct rn_circ *circs;
	unsigned int ncircs;
	struct rn_use use[RELAY_MAX_USE];
	unsigned int nuse; /* configured (relay.use) first, then discovered */
	uint8_t ih[DHT_ID_LEN]; /* SHA-1("weft:relay") */
	uint64_t next_announce_ms, next_discover_ms, discover_gap_ms;
	uint64_t announces, announces_stored, discovered, from_records;
	struct rn_bind binds[RN_MAX_BINDS];
	struct rn_dial dials[RN_MAX_DIALS];
	struct rn_out outs[RN_MAX_OUTS];
	struct engine_timer timer;
	struct engine_worker *w0; /* where the timer is armed, once started */
	int published_relays; /* count last given to conn_node */
	_Atomic int freeing;
	/* counters */
	uint64_t reserves_ok, reserves_refused, refreshes, churn_bans;
	uint64_t flood_cuts, flood_bans; /* circuits ended for a flooding end; ends banned */
	uint64_t next_flood_ms;
	uint64_t connects, circuits_ok, circuits_refused[RELAY_E__MAX];
	uint64_t offers_in, offers_accepted, offers_refused;
	uint64_t binds_ok, binds_failed, dials_total, dials_ok;
	uint64_t dials_shared; /* circuit requests sent on a reservation connection */
	uint64_t dials_own;    /* ... on a connection dialled for the request */
	uint64_t dials_fallback; /* shared requests moved to their own connection (stream limit) */
	uint64_t ended_by[5];
	uint64_t ended_seen[RELAY_ENDED_MAX + 1]; /* holder and dialler: ENDED received, by reason */
};

static inline uint64_t now_ms(struct relay_node *rn)
{
	return engine_now_ns(rn->o.eng) / 1000000;
}

/* A second lock on the same thread is a broken locking rule: test builds
 * (error-checking mutex) stop at once rather than deadlock somewhere. */
static inline void lock(struct relay_node *rn)
{
	int err = pthread_mutex_lock(&rn->mu);

#ifdef WEFT_TEST_HOOKS
	if (err)
		abort();
#else
	(void)err;
#endif
}

static inline void unlock(struct relay_node *rn)
{
	pthread_mutex_unlock(&rn->mu);
}

/* ---- relay_node_ctx.c: shared helpers ---- */
struct rn_stream *rn_st_find(struct relay_node *rn, uint64_t conn, int64_t sid);
struct rn_stream *rn_st_add(struct relay_node *rn, uint64_t conn, int64_t sid,
			    enum rs_role role, uint64_t ref);
void rn_st_drop_conn(struct relay_node *rn, uint64_t conn);
/* Encode m and write it on (conn, sid); fin ends our side. Lock held or
 * not: it touches no state. */
void rn_send_msg(struct relay_node *rn, uint64_t conn, int64_t sid, const struct relay_msg *m,
		 int fin);
struct rn_use *rn_use_by_conn(struct relay_node *rn, uint64_t conn);
struct rn_dial *rn_dial_by_conn(struct relay_node *rn, uint64_t conn);
/* Dial addr (key pinned when not NULL) with the hub's handler; called
 * with the lock held, drops it across quic_node_connect_addr and takes it
 * again. Until the caller has put *conn in its slot and called
 * rn_conn_recorded, events of unknown connections wait (rn_conn_settle).
 * 0 or -errno (nothing to record then, but rn_conn_recorded all the same). */
int rn_connect(struct relay_node *rn, const struct io_addr *addr, const uint8_t *key,
	       uint64_t *conn);
void rn_conn_recorded(struct relay_node *rn);
/* A connection event for conn: when no slot knows conn and a connect
 * call is unrecorded, wait until it is (the event may be its). */
void rn_conn_settle(struct relay_node *rn, uint64_t conn);
/* ENDED from a relay (on a reservation stream or a granted CONNECT's):
 * count it and close our QUIC connections that ran through via (relay:PORT)
 * with QUIC_NODE_APP_RELAY_ENDED | reason. */
void rn_circuit_ended(struct relay_node *rn, const char *relay, const struct io_addr *via,
		      const struct relay_msg *m);

/* ---- relay_node_bind.c: binds of our circuit ends ---- */
struct rn_bind *rn_bind_start(struct relay_node *rn, const struct io_addr *to,
			      const uint8_t token[RELAY_TOKEN_LEN]);
/* Decide the bind's next attempt (now, when due): 1 with the request in
 * req[RELAY_BIND_LEN] to send to b->to, 0 nothing to send (not due,
 * done, or timed out now). Lock held; the caller sends (rn_bind_send). */
int rn_bind_next(struct relay_node *rn, struct rn_bind *b, uint64_t now, uint8_t *req);
void rn_bind_send(struct relay_node *rn, const struct io_addr *to, const uint8_t *req);
/* rn_bind_next and rn_bind_send at once (callbacks and the timer). */
void rn_bind_step(struct relay_node *rn, struct rn_bind *b, uint64_t now);

/* ---- relay_node_srv.c: the relay side (reservations, circuits) ---- */
void rn_on_reserve(struct relay_node *rn, struct rn_stream *s);
void rn_on_connect(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *req);
/* Our offer stream to the holder opened (or not: err). */
void rn_offer_opened(struct relay_node *rn, uint64_t idx, uint64_t conn, int64_t sid, int err);
/* ANSWER on our offer stream s; 0 if it is not one. */
int rn_on_answer(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m);
/* The holder answered offer p (or did not in time: status TIMEOUT). */
void rn_offer_done(struct relay_node *rn, struct rn_pending *p, unsigned int status);
/* Once per RELAY_FLOOD_WINDOW_MS: flooding circuit ends (relay.flood_drops).
 * Called unlocked: it ends their circuits with relay_fwd_del, whose
 * report (relay_node_fwd_end) takes the lock. */
void rn_flood_check(struct relay_node *rn, uint64_t now);

/* ---- relay_node_cli.c: the holder side ---- */
void rn_publish_relays(struct relay_node *rn);
void rn_use_lost(struct relay_node *rn, struct rn_use *u, int close);
/* Connection and stream events of our reservations. */
void rn_use_connected(struct relay_node *rn, struct rn_use *u, uint64_t conn, int err,
		      const uint8_t *peer_key);
void rn_use_opened(struct relay_node *rn, uint64_t idx, uint64_t conn, int64_t sid, int err);
void rn_use_closed(struct relay_node *rn, struct rn_use *u);
/* A message on our reservation stream s (RESERVED, ENDED); 0 if it is
 * not one it expects there. */
int rn_on_use_msg(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m);
void rn_on_offer(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m);
void rn_on_circuit_holder(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m);
/* The timer's turn: dial, refresh or drop our reservations (want: hold
 * them at all). */
void rn_use_keep(struct relay_node *rn, uint64_t now, int want);
int rn_held_any(struct relay_node *rn);
/* Unlocked (conn_node takes its own lock). */
int rn_want_reserve(struct relay_node *rn);

/* ---- relay_node_find.c: how relays are found ---- */
/* dhtnode_run functions: unlocked (they take the lock; the lookup may
 * finish at once, in dht_announce or dht_get_peers). */
void rn_announce_fn(struct dht *dht, void *arg, uint64_t now);
void rn_discover_fn(struct dht *dht, void *arg, uint64_t now);
/* Free (or dead) slots take relays from the records this node has seen
 * (conn_node_seen_relays), the newest first. */
void rn_from_records(struct relay_node *rn);

/* ---- relay_node_dial.c: the dialler ---- */
/* Connection and stream events of our circuit requests: they record and
 * wake the dialler. */
void rn_dial_connected(struct relay_node *rn, struct rn_dial *d, int err);
void rn_dial_opened(struct relay_node *rn, uint64_t idx, uint64_t conn, int64_t sid, int err);
void rn_dial_closed(struct relay_node *rn, uint64_t conn, const struct quic_close_info *info);
/* A message on our CONNECT stream s (CIRCUIT, then ENDED); 0 if it is not
 * one it expects there. */
int rn_on_dial_msg(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m);

/* ---- relay_node_ctl.c: /v1/relay/... routes and metrics ---- */
void rn_ctl_register(struct relay_node *rn);

#endif
