// SPDX-License-Identifier: MIT
/*
 * The holder and dialler side of the relay control plane
 * (docs/CONNECTIVITY.md, "Relay"): binds of our circuit ends, the
 * reservations we keep with our relays, offers we accept, relays found in
 * the DHT, and circuits we ask for (relay_node_circuit).
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/conn.h"
#include "weft/ctl.h"
#include "weft/dht.h"
#include "weft/engine.h"
#include "weft/guard.h"
#include "weft/log.h"
#include "weft/dhtnode.h"
#include "weft/quic_node.h"
#include "weft/relay.h"
#include "weft/relay_fwd.h"
#include "weft/util.h"

#include "relay_node_int.h"

/* ------------------------------------------------------------ binds */

struct rn_bind *rn_bind_start(struct relay_node *rn, const struct io_addr *to,
				  const uint8_t token[RELAY_TOKEN_LEN])
{
	for (unsigned int i = 0; i < RN_MAX_BINDS; i++)
		if (!rn->binds[i].used) {
			struct rn_bind *b = &rn->binds[i];

			memset(b, 0, sizeof(*b));
			b->used = 1;
			b->to = *to;
			memcpy(b->token, token, RELAY_TOKEN_LEN);
			randombytes_buf(b->tid, sizeof(b->tid));
			b->start_ms = b->next_ms = now_ms(rn);
			return b;
		}
	return NULL;
}

/* Send the bind's next attempt when due: 200 ms, 400 ms, 800 ms... apart. */
void rn_bind_step(struct relay_node *rn, struct rn_bind *b, uint64_t now)
{
	uint8_t req[RELAY_BIND_LEN];
	unsigned int shift;

	if (!b->used || b->done || now < b->next_ms)
		return;
	if (now - b->start_ms >= RELAY_DEF_BIND_MS) {
		rn->binds_failed++;
		b->done = -ETIMEDOUT;
		pthread_cond_broadcast(&rn->cv);
		return;
	}
	if (relay_bind_request(b->token, b->tid, req, sizeof(req)) == RELAY_BIND_LEN)
		quic_node_send_raw(rn->o.quic, &b->to, req, sizeof(req));
	shift = b->tries < 5 ? b->tries : 5;
	b->tries++;
	b->next_ms = now + (200ULL << shift);
}

int relay_node_stun(struct relay_node *rn, const uint8_t *buf, size_t len,
		    const struct io_addr *from)
{
	uint8_t tid[12];
	int hit = 0;

	if (!rn || atomic_load(&rn->freeing) || !relay_bind_is_response(buf, len, tid))
		return 0;
	lock(rn);
	for (unsigned int i = 0; i < RN_MAX_BINDS; i++) {
		struct rn_bind *b = &rn->binds[i];

		if (b->used && !b->done && !memcmp(b->tid, tid, 12) &&
		    from->family == b->to.family && from->port == b->to.port &&
		    !memcmp(from->addr, b->to.addr, 16)) {
			b->done = 1;
			rn->binds_ok++;
			log_debug("relay", "bind answered (port %u, try %u)", b->to.port, b->tries);
			hit = 1;
			pthread_cond_broadcast(&rn->cv);
		}
	}
	unlock(rn);
	return hit;
}

/* ------------------------------------------------------------ client side */

struct rn_use *rn_use_by_conn(struct relay_node *rn, uint64_t conn)
{
	for (unsigned int i = 0; i < rn->nuse; i++)
		if (rn->use[i].st != U_IDLE && rn->use[i].conn == conn)
			return &rn->use[i];
	return NULL;
}

struct rn_dial *rn_dial_by_conn(struct relay_node *rn, uint64_t conn)
{
	for (unsigned int i = 0; i < RN_MAX_DIALS; i++)
		if (rn->dials[i].st != D_FREE && rn->dials[i].conn == conn)
			return &rn->dials[i];
	return NULL;
}

/* The relays we hold into the node record (when the set changed). */
void rn_publish_relays(struct relay_node *rn)
{
	struct conn_relay r[CONN_REC_MAX_RELAYS];
	unsigned int n = 0;

	for (unsigned int i = 0; i < rn->nuse && n < CONN_REC_MAX_RELAYS; i++)
		if (rn->use[i].st == U_HELD && rn->use[i].have_key) {
			memcpy(r[n].key, rn->use[i].key, CONN_KEY_LEN);
			r[n].addr = rn->use[i].addr;
			n++;
		}
	/* conn_node republishes only when the record's content changed. */
	rn->published_relays = (int)n;
	conn_node_set_relays(rn->o.conn, r, n);
}

/* The reservation with u is gone (or never came): close its connection
 * unless it is already closed, retry in RN_RETRY_MS. */
void rn_use_lost(struct relay_node *rn, struct rn_use *u, int close)
{
	if (u->st == U_HELD)
		u->lost++;
	if (u->st == U_HELD)
		u->fails = 0;
	else if (u->discovered && ++u->fails >= RN_DEAD_FAILS) {
		u->dead = 1; /* its slot goes to the next relay found */
		if (u->from_record) /* back only when a record lists it again */
			conn_node_seen_relay_drop(rn->o.conn, u->key);
	}
	if (close && u->st != U_IDLE)
		quic_node_close(rn->o.quic, u->conn, 0);
	rn_st_drop_conn(rn, u->conn);
	u->st = U_IDLE;
	u->next_try_ms = now_ms(rn) + RN_RETRY_MS;
	rn_publish_relays(rn);
}

void rn_on_offer(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m)
{
	struct relay_msg a = { .type = RELAY_MSG_ANSWER };

	rn->offers_in++;
	if (!rn_use_by_conn(rn, s->conn)) {
		/* Offers come only from a relay we hold a reservation with. */
		quic_node_stream_reset(rn->o.quic, s->conn, s->sid, RELAY_E_BAD_REQUEST);
		s->used = 0;
		return;
	}
	(void)m;
	log_debug("relay", "holder: offer");
	a.status = rn->o.accept ? RELAY_OK : RELAY_E_REFUSED;
	if (rn->o.accept)
		rn->offers_accepted++;
	else
		rn->offers_refused++;
	rn_send_msg(rn, s->conn, s->sid, &a, !rn->o.accept);
	if (!rn->o.accept)
		s->used = 0;
}

/* The relay granted the circuit we accepted: bind our end. */
void rn_on_circuit_holder(struct relay_node *rn, struct rn_stream *s,
			      const struct relay_msg *m)
{
	struct rn_use *u = rn_use_by_conn(rn, s->conn);
	struct rn_bind *b;

	s->used = 0;
	if (!u || m->status != RELAY_OK)
		return;
	struct io_addr to = u->addr;

	to.port = m->port;
	log_debug("relay", "holder: circuit granted (port %u): binding", m->port);
	b = rn_bind_start(rn, &to, m->token);
	if (!b)
		rn->binds_failed++;
	else
		rn_bind_step(rn, b, now_ms(rn)); /* now, not at the next tick */
}

void rn_circuit_ended(struct relay_node *rn, const char *relay, const struct io_addr *via,
		      const struct relay_msg *m)
{
	char why[64];

	log_warn("relay", "relay %s ended circuit %llu (port %u): %s", relay,
		 (unsigned long long)m->circuit, m->port, relay_end_name(m->reason));
	rn->ended_seen[m->reason]++;
	/* Our QUIC connection through relay:PORT is dead: end it now with
	 * the reason, rather than let its callers wait for the idle timeout. */
	snprintf(why, sizeof(why), "relay_circuit_ended: %s", relay_end_name(m->reason));
	quic_node_close_peer(rn->o.quic, via, QUIC_NODE_APP_RELAY_ENDED | m->reason, why);
}


/* ------------------------------------------------------------ DHT */

static void announce_done(void *arg, const struct dht_result *res)
{
	struct relay_node *rn = arg;

	if (atomic_load(&rn->freeing) || res->status == -ECANCELED)
		return;
	lock(rn);
	if (res->stored) {
		rn->announces_stored++;
		rn->next_announce_ms = now_ms(rn) + RN_ANNOUNCE_MS;
	}
	unlock(rn);
}

void rn_announce_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct relay_node *rn = arg;

	rn->announces++;
	dht_announce(dht, rn->ih, rn->o.quic_port, 0, now, announce_done, rn);
}

/* A free slot for a new relay at a (and key, when known): -1 when one
 * holds it already or none is free. */
static int free_slot(struct relay_node *rn, const struct io_addr *a, const uint8_t *key)
{
	unsigned int k, slot = rn->nuse;

	for (k = 0; k < rn->nuse; k++) {
		struct rn_use *u = &rn->use[k];

		if (u->dead && slot == rn->nuse)
			slot = k;
		if (!u->dead && ((u->addr.family == a->family && u->addr.port == a->port &&
				  !memcmp(u->addr.addr, a->addr, sizeof(a->addr))) ||
				 (key && u->have_key && !memcmp(u->key, key, RELAY_KEY_LEN))))
			return -1;
	}
	return slot < RELAY_MAX_USE ? (int)slot : -1;
}

/* Relays found under the relay infohash: free slots get them (the key
 * comes with the handshake). On worker 0. */
static void discover_done(void *arg, const struct dht_result *res)
{
	struct relay_node *rn = arg;
	char buf[64];

	if (atomic_load(&rn->freeing) || res->status == -ECANCELED)
		return;
	lock(rn);
	for (size_t i = 0; i < res->npeers; i++) {
		struct io_addr a;
		int k;

		if (io_addr_from_sockaddr(&a, (const struct sockaddr *)&res->peers[i],
					  sizeof(res->peers[i])))
			continue;
		k = free_slot(rn, &a, NULL);
		if (k < 0)
			continue;
		memset(&rn->use[k], 0, sizeof(rn->use[k]));
		rn->use[k].addr = a;
		rn->use[k].discovered = 1;
		snprintf(rn->use[k].target, sizeof(rn->use[k].target), "%s",
			 io_addr_fmt(&a, buf, sizeof(buf)));
		if ((unsigned int)k == rn->nuse)
			rn->nuse++;
		rn->discovered++;
		rn->discover_gap_ms = 0; /* found: look again quickly if it fails */
		log_info("relay", "relay found in the DHT: %s", rn->use[k].target);
	}
	unlock(rn);
}

void rn_from_records(struct relay_node *rn)
{
	struct conn_relay c[RELAY_MAX_USE];
	unsigned int n = conn_node_seen_relays(rn->o.conn, c, RELAY_MAX_USE);
	char buf[64], hex[2 * RELAY_KEY_LEN + 1];

	for (unsigned int i = 0; i < n; i++) {
		int k = free_slot(rn, &c[i].addr, c[i].key);
		struct rn_use *u;

		if (k < 0)
			continue;
		u = &rn->use[k];
		memset(u, 0, sizeof(*u));
		u->addr = c[i].addr;
		memcpy(u->key, c[i].key, RELAY_KEY_LEN);
		u->have_key = 1;
		u->discovered = 1;
		u->from_record = 1;
		util_hex(hex, c[i].key, RELAY_KEY_LEN);
		snprintf(u->target, sizeof(u->target), "%s@%s", hex,
			 io_addr_fmt(&c[i].addr, buf, sizeof(buf)));
		if ((unsigned int)k == rn->nuse)
			rn->nuse++;
		rn->from_records++;
		log_info("relay", "relay found in a record seen: %s", u->target);
	}
}

void rn_discover_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct relay_node *rn = arg;

	dht_get_peers(dht, rn->ih, now, discover_done, rn);
}

int rn_held_any(struct relay_node *rn)
{
	for (unsigned int i = 0; i < rn->nuse; i++)
		if (rn->use[i].st == U_HELD)
			return 1;
	return 0;
}

int rn_want_reserve(struct relay_node *rn)
{
	if (rn->o.reserve >= 0)
		return rn->o.reserve;
	return conn_node_behind_nat(rn->o.conn);
}


/* ------------------------------------------------------------ dialler */

static void deadline_in(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Done with a circuit request's control connection: close it, or, when
 * it is our reservation connection (shared), end only the CONNECT
 * stream sid (< 0: none opened). */
static void dial_conn_done(struct relay_node *rn, uint64_t conn, int shared, int64_t sid)
{
	struct rn_stream *s;

	if (!shared) {
		rn_st_drop_conn(rn, conn);
		quic_node_close(rn->o.quic, conn, 0);
		return;
	}
	if (sid < 0)
		return;
	s = rn_st_find(rn, conn, sid);
	if (s)
		s->used = 0;
	quic_node_stream_reset(rn->o.quic, conn, sid, RELAY_OK);
}

/* A granted circuit we give up (its bind failed): stop waiting for its
 * ENDED and close the relay connection (or the CONNECT stream on a
 * shared one). */
static void out_drop(struct relay_node *rn, uint64_t conn, int slot, int shared, int64_t sid)
{
	if (!slot)
		return;
	if (rn->outs[slot - 1].used && rn->outs[slot - 1].conn == conn)
		rn->outs[slot - 1].used = 0;
	dial_conn_done(rn, conn, shared, sid);
}

/* Our held reservation's connection with the relay whose key is key, or
 * 0: a circuit request can go on it (no new handshake with the relay). */
static uint64_t held_conn(struct relay_node *rn, const uint8_t key[RELAY_KEY_LEN])
{
	for (unsigned int i = 0; i < rn->nuse; i++)
		if (rn->use[i].st == U_HELD && rn->use[i].have_key &&
		    !memcmp(rn->use[i].key, key, RELAY_KEY_LEN))
			return rn->use[i].conn;
	return 0;
}

int rn_dial_own(struct relay_node *rn, struct rn_dial *d)
{
	struct sockaddr_storage ss;
	uint64_t conn = 0;
	int l = io_addr_to_sockaddr(&d->relay, d->relay.family, &ss), err;

	if (l <= 0)
		return -EINVAL;
	err = quic_node_connect_addr(rn->o.quic, (struct sockaddr *)&ss, (socklen_t)l,
				     d->relay_key, &rn_handler, rn, &conn);
	if (err)
		return err == -ENETUNREACH ? -EHOSTUNREACH : err;
	d->shared = 0;
	d->conn = conn;
	log_debug("relay", "circuit request: dialling the relay");
	return 0;
}

int relay_node_circuit(struct relay_node *rn, const uint8_t relay_key[RELAY_KEY_LEN],
		       const struct io_addr *relay_addr, const uint8_t target[RELAY_KEY_LEN],
		       struct io_addr *out, unsigned int timeout_ms, unsigned int *status)
{
	uint64_t end = util_now_ms() + timeout_ms, now;
	unsigned int wait;
	struct sockaddr_storage ss;
	struct timespec dl;
	struct rn_dial *d = NULL;
	struct rn_bind *b;
	struct relay_msg m;
	uint64_t conn = 0;
	int l, err = 0, out_slot = 0, shared;
	int64_t sid;

	if (!rn || !relay_key || !relay_addr || !target || !out)
		return -EINVAL;
	if (status)
		*status = RELAY_OK;
	l = io_addr_to_sockaddr(relay_addr, relay_addr->family, &ss);
	if (l <= 0)
		return -EINVAL;
	lock(rn);
	rn->dials_total++;
	for (unsigned int i = 0; i < RN_MAX_DIALS; i++)
		if (rn->dials[i].st == D_FREE) {
			d = &rn->dials[i];
			break;
		}
	if (!d) {
		unlock(rn);
		return -EBUSY;
	}
	memset(d, 0, sizeof(*d));
	d->st = D_DIALING;
	d->relay = *relay_addr;
	d->sid = -1;
	memcpy(d->target, target, RELAY_KEY_LEN);
	memcpy(d->relay_key, relay_key, RELAY_KEY_LEN);
	/* A reservation held with this relay: ask on its connection (one
	 * handshake with the relay less). Else dial it. The lock is held
	 * across either: the callbacks wait for d->conn. */
	conn = held_conn(rn, relay_key);
	if (conn) {
		d->shared = 1;
		d->conn = conn;
		err = quic_node_stream_open(rn->o.quic, conn, RELAY_ST_CTL,
					    TOK_DIAL | (uint64_t)(d - rn->dials));
		if (err) {
			d->st = D_FREE;
			unlock(rn);
			return err;
		}
		log_debug("relay", "circuit request: on our reservation connection");
	} else {
		err = rn_dial_own(rn, d);
		if (err) {
			d->st = D_FREE;
			unlock(rn);
			return err;
		}
	}
	deadline_in(&dl, timeout_ms && timeout_ms < RN_DIAL_MS ? timeout_ms : RN_DIAL_MS);
	while (d->st == D_DIALING || d->st == D_WAIT)
		if (pthread_cond_timedwait(&rn->cv, &rn->mu, &dl) == ETIMEDOUT)
			break;
	if (d->st == D_DONE) {
		m = d->m;
		out_slot = d->out;
	} else {
		err = d->st == D_FAILED ? d->err : -ETIMEDOUT;
		if (err == -ECONNREFUSED || err == -ETIMEDOUT || err == -ECONNRESET)
			err = -EHOSTUNREACH; /* the relay itself did not answer */
	}
	/* d's connection may have changed (rn_dial_own in cb_opened). */
	shared = d->shared;
	conn = d->conn;
	sid = d->sid;
	d->st = D_FREE;
	if (out_slot) {
		/* Granted, and its ENDED awaited: the connection stays up,
		 * with PINGs so that QUIC's idle timeout does not end it (a
		 * reservation's refreshes keep a shared one up). */
		unlock(rn);
		if (!shared)
			quic_node_keepalive(rn->o.quic, conn, RN_OUT_KEEPALIVE_MS);
	} else {
		/* A CIRCUIT already ended its stream (s->used 0); a timeout
		 * did not. */
		dial_conn_done(rn, conn, shared, sid);
		unlock(rn);
	}
	if (err)
		return err;
	if (m.status != RELAY_OK) {
		if (status)
			*status = m.status;
		return m.status == RELAY_E_TIMEOUT ? -ETIMEDOUT : -ECONNREFUSED;
	}
	log_debug("relay", "circuit granted (port %u): binding", m.port);
	/* Bind our end from the QUIC socket, and wait for the answer. */
	*out = *relay_addr;
	out->port = m.port;
	lock(rn);
	b = rn_bind_start(rn, out, m.token);
	if (!b) {
		out_drop(rn, conn, out_slot, shared, sid);
		unlock(rn);
		return -EBUSY;
	}
	b->waited = 1;
	rn_bind_step(rn, b, now_ms(rn));
	wait = RELAY_DEF_BIND_MS + 2 * RN_TICK_MS;
	now = util_now_ms();
	if (timeout_ms && (now >= end || end - now < wait))
		wait = now < end ? (unsigned int)(end - now) : 0;
	deadline_in(&dl, wait);
	while (!b->done)
		if (pthread_cond_timedwait(&rn->cv, &rn->mu, &dl) == ETIMEDOUT)
			break;
	err = b->done == 1 ? 0 : -ETIMEDOUT;
	if (!b->done)
		rn->binds_failed++;
	b->used = 0;
	log_debug("relay", "circuit bind: %s after %u tries", err ? "timeout" : "ok", b->tries);
	if (!err)
		rn->dials_ok++;
	else
		out_drop(rn, conn, out_slot, shared, sid);
	unlock(rn);
	sodium_memzero(&m, sizeof(m));
	return err;
}

