// SPDX-License-Identifier: MIT
/*
 * The dialler side of the relay control plane (docs/CONNECTIVITY.md,
 * "Relay"): circuits we ask for (relay_node_circuit, dial by key through a
 * relay): CONNECT on our reservation connection with the relay or on one
 * of the request's own, CIRCUIT, our end bound, the granted circuit's
 * CONNECT stream kept for its ENDED.
 *
 * The dialler's thread (a control thread; it blocks) makes every quic_node
 * call of its request with rn->mu dropped: it takes what it needs under
 * the lock, drops it, calls, and takes it again to record the result,
 * re-checking its slot. The QUIC callbacks (rn_dial_*, rn_on_dial_msg,
 * called by the hub with the lock held) only record what happened and
 * wake it (rn->cv).
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <time.h>

#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/relay.h"
#include "weft/util.h"

#include "relay_node_int.h"

/* ------------------------------------------------------------ events (lock held) */

void rn_dial_connected(struct relay_node *rn, struct rn_dial *d, int err)
{
	if (d->st != D_DIALING)
		return;
	log_debug("relay", "circuit request: relay connected (%s)", err ? strerror(-err) : "ok");
	if (err) {
		d->st = D_FAILED;
		d->err = err;
	} else {
		d->st = D_CONNECTED; /* the dialler opens the CONNECT stream */
	}
	pthread_cond_broadcast(&rn->cv);
}

void rn_dial_opened(struct relay_node *rn, uint64_t idx, uint64_t conn, int64_t sid, int err)
{
	struct rn_dial *d = idx < RN_MAX_DIALS ? &rn->dials[idx] : NULL;

	if (!d || d->conn != conn || d->st != D_DIALING)
		return;
	if (err == -EAGAIN && d->shared) {
		/* Our reservation connection has no stream to spare (the
		 * relay's stream limit): a connection of the request's own. */
		d->st = D_REDIAL;
	} else if (err || !rn_st_add(rn, conn, sid, RC_CONNECT_OUT, idx)) {
		d->st = D_FAILED;
		d->err = err ? err : -ENOSPC;
	} else {
		d->st = D_OPENED; /* the dialler sends CONNECT */
		d->sid = sid;
		/* Counted where the request goes out: a shared request that
		 * fell back counts as one on a connection of its own. */
		if (d->shared)
			rn->dials_shared++;
		else
			rn->dials_own++;
	}
	pthread_cond_broadcast(&rn->cv);
}

void rn_dial_closed(struct relay_node *rn, uint64_t conn, const struct quic_close_info *info)
{
	struct rn_dial *d = rn_dial_by_conn(rn, conn);

	if (d && d->st != D_REDIAL && d->st != D_DONE && d->st != D_FAILED) {
		d->st = D_FAILED;
		d->err = info && info->reason == QUIC_CLOSE_IDLE ? -ETIMEDOUT : -ECONNRESET;
		pthread_cond_broadcast(&rn->cv);
	}
	/* A granted circuit's control connection gone: its ENDED cannot come. */
	for (unsigned int i = 0; i < RN_MAX_OUTS; i++)
		if (rn->outs[i].used && rn->outs[i].conn == conn)
			rn->outs[i].used = 0;
}

/* CIRCUIT on our CONNECT stream: the answer; the stream then waits for
 * the granted circuit's ENDED (an rn_out). */
static int on_circuit(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m)
{
	struct rn_dial *d = s->ref < RN_MAX_DIALS ? &rn->dials[s->ref] : NULL;

	if (m->type != RELAY_MSG_CIRCUIT || !d || d->st != D_WAIT)
		return 0;
	d->m = *m;
	d->st = D_DONE;
	s->used = 0;
	for (unsigned int i = 0; m->status == RELAY_OK && i < RN_MAX_OUTS; i++)
		if (!rn->outs[i].used) {
			struct rn_out *o = &rn->outs[i];

			o->used = 1;
			o->conn = s->conn;
			o->sid = s->sid;
			o->circuit = m->circuit;
			o->via = d->relay;
			o->via.port = m->port;
			o->shared = d->shared;
			s->used = 1;
			s->role = RC_CIRC_OUT;
			s->ref = i;
			d->out = (int)i + 1;
			break;
		}
	pthread_cond_broadcast(&rn->cv);
	return 1;
}

/* ENDED on a granted circuit's CONNECT stream. */
static int on_out_ended(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m)
{
	struct rn_out *o = s->ref < RN_MAX_OUTS ? &rn->outs[s->ref] : NULL;
	char buf[64];

	if (m->type != RELAY_MSG_ENDED || !o || !o->used || o->conn != s->conn ||
	    m->port != o->via.port)
		return 0;
	s->used = 0;
	o->used = 0;
	rn_circuit_ended(rn, io_addr_fmt(&o->via, buf, sizeof(buf)), &o->via, m);
	/* Nothing more to learn from this relay connection, unless it
	 * carries our reservation too: then our side of the CONNECT stream
	 * ends (the relay ended its with ENDED), or it stays open for the
	 * reservation's life. */
	if (!o->shared)
		quic_node_close(rn->o.quic, o->conn, 0);
	else
		quic_node_write(rn->o.quic, s->conn, s->sid, NULL, 0, 1);
	return 1;
}

int rn_on_dial_msg(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m)
{
	return s->role == RC_CONNECT_OUT ? on_circuit(rn, s, m) : on_out_ended(rn, s, m);
}

/* ------------------------------------------------------------ the dialler */

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

/* Dial d's relay on a connection of d's own (first, or after a shared
 * connection had no stream to spare). Lock held, dropped across the
 * connect call. 0 or -errno (d unchanged). */
static int dial_own(struct relay_node *rn, struct rn_dial *d)
{
	struct io_addr relay = d->relay;
	uint8_t key[RELAY_KEY_LEN];
	uint64_t was = d->conn, conn = 0;
	int err;

	memcpy(key, d->relay_key, RELAY_KEY_LEN);
	d->conn = 0; /* no event matches d until the handle is recorded */
	err = rn_connect(rn, &relay, key, &conn);
	if (err) {
		d->conn = was;
	} else {
		d->conn = conn;
		d->shared = 0;
	}
	rn_conn_recorded(rn);
	if (err)
		return err == -ENETUNREACH ? -EHOSTUNREACH : err;
	log_debug("relay", "circuit request: dialling the relay");
	return 0;
}

/* Done with a circuit request's control connection. Lock held: forget
 * its streams in our table (the whole connection, or on our reservation
 * connection (shared) only the CONNECT stream sid, < 0: none opened). */
static void conn_forget(struct relay_node *rn, uint64_t conn, int shared, int64_t sid)
{
	struct rn_stream *s;

	if (!shared)
		rn_st_drop_conn(rn, conn);
	else if (sid >= 0 && (s = rn_st_find(rn, conn, sid)))
		s->used = 0;
}

/* Unlocked, after conn_forget: close it (or end the CONNECT stream). */
static void conn_end(struct relay_node *rn, uint64_t conn, int shared, int64_t sid)
{
	if (!shared)
		quic_node_close(rn->o.quic, conn, 0);
	else if (sid >= 0)
		quic_node_stream_reset(rn->o.quic, conn, sid, RELAY_OK);
}

/* A granted circuit we give up (its bind failed): stop waiting for its
 * ENDED and forget its stream. Lock held; 1: conn_end it after. */
static int out_forget(struct relay_node *rn, uint64_t conn, int slot, int shared, int64_t sid)
{
	if (!slot)
		return 0;
	if (rn->outs[slot - 1].used && rn->outs[slot - 1].conn == conn)
		rn->outs[slot - 1].used = 0;
	conn_forget(rn, conn, shared, sid);
	return 1;
}

/* Drive request d until it is answered, failed or past dl: the steps the
 * callbacks leave to this thread (open, redial, send CONNECT), each with
 * the lock dropped around its quic_node call. Lock held. */
static void dial_run(struct relay_node *rn, struct rn_dial *d, const struct timespec *dl)
{
	uint64_t tok = TOK_DIAL | (uint64_t)(d - rn->dials), conn;
	struct relay_msg c = { .type = RELAY_MSG_CONNECT };
	int64_t sid;
	int err;

	for (;;) {
		while (d->st == D_DIALING || d->st == D_WAIT)
			if (pthread_cond_timedwait(&rn->cv, &rn->mu, dl) == ETIMEDOUT)
				break;
		switch (d->st) {
		case D_CONNECTED: /* our own connection is up */
			conn = d->conn;
			d->st = D_DIALING;
			unlock(rn);
			err = quic_node_stream_open(rn->o.quic, conn, RELAY_ST_CTL, tok);
			lock(rn);
			if (err && d->st == D_DIALING && d->conn == conn) {
				d->st = D_FAILED;
				d->err = -EAGAIN;
			}
			continue;
		case D_REDIAL:
			d->st = D_DIALING;
			if (!dial_own(rn, d)) {
				rn->dials_fallback++;
			} else if (d->st == D_DIALING) {
				d->st = D_FAILED;
				d->err = -EAGAIN; /* the stream open's */
			}
			continue;
		case D_OPENED: /* the stream is registered: ask */
			conn = d->conn;
			sid = d->sid;
			d->st = D_WAIT; /* before the CIRCUIT can come */
			memcpy(c.key, d->target, RELAY_KEY_LEN);
			unlock(rn);
			rn_send_msg(rn, conn, sid, &c, 0);
			lock(rn);
			continue;
		default:
			return;
		}
	}
}

int relay_node_circuit(struct relay_node *rn, const uint8_t relay_key[RELAY_KEY_LEN],
		       const struct io_addr *relay_addr, const uint8_t target[RELAY_KEY_LEN],
		       struct io_addr *out, unsigned int timeout_ms, unsigned int *status)
{
	uint64_t end = util_now_ms() + timeout_ms, now;
	uint8_t req[RELAY_BIND_LEN];
	struct sockaddr_storage ss;
	struct io_addr to;
	struct timespec dl;
	struct rn_dial *d = NULL;
	struct rn_bind *b;
	struct relay_msg m;
	uint64_t conn = 0;
	unsigned int wait;
	int err = 0, out_slot = 0, shared, send, drop = 0;
	int64_t sid;

	if (!rn || !relay_key || !relay_addr || !target || !out)
		return -EINVAL;
	if (status)
		*status = RELAY_OK;
	if (io_addr_to_sockaddr(relay_addr, relay_addr->family, &ss) <= 0)
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
	 * handshake with the relay less). Else dial it. */
	conn = held_conn(rn, relay_key);
	if (conn) {
		d->shared = 1;
		d->conn = conn;
		unlock(rn);
		err = quic_node_stream_open(rn->o.quic, conn, RELAY_ST_CTL,
					    TOK_DIAL | (uint64_t)(d - rn->dials));
		lock(rn);
		if (!err)
			log_debug("relay", "circuit request: on our reservation connection");
	} else {
		err = dial_own(rn, d);
	}
	if (err) {
		d->st = D_FREE;
		unlock(rn);
		return err;
	}
	deadline_in(&dl, timeout_ms && timeout_ms < RN_DIAL_MS ? timeout_ms : RN_DIAL_MS);
	dial_run(rn, d, &dl);
	if (d->st == D_DONE) {
		m = d->m;
		out_slot = d->out;
	} else {
		err = d->st == D_FAILED ? d->err : -ETIMEDOUT;
		if (err == -ECONNREFUSED || err == -ETIMEDOUT || err == -ECONNRESET)
			err = -EHOSTUNREACH; /* the relay itself did not answer */
	}
	/* d's connection may have changed (a redial after the shared one). */
	shared = d->shared;
	conn = d->conn;
	sid = d->sid;
	d->st = D_FREE;
	/* A CIRCUIT already ended its stream (s->used 0); a timeout did not. */
	if (!out_slot)
		conn_forget(rn, conn, shared, sid);
	unlock(rn);
	if (!out_slot)
		conn_end(rn, conn, shared, sid);
	else if (!shared)
		/* Granted, and its ENDED awaited: the connection stays up,
		 * with PINGs so that QUIC's idle timeout does not end it (a
		 * reservation's refreshes keep a shared one up). */
		quic_node_keepalive(rn->o.quic, conn, RN_OUT_KEEPALIVE_MS);
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
		drop = out_forget(rn, conn, out_slot, shared, sid);
		unlock(rn);
		if (drop)
			conn_end(rn, conn, shared, sid);
		sodium_memzero(&m, sizeof(m));
		return -EBUSY;
	}
	b->waited = 1; /* ours to free: the timer leaves it */
	send = rn_bind_next(rn, b, now_ms(rn), req);
	to = b->to;
	unlock(rn);
	if (send)
		rn_bind_send(rn, &to, req);
	sodium_memzero(req, sizeof(req));
	lock(rn);
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
		drop = out_forget(rn, conn, out_slot, shared, sid);
	unlock(rn);
	if (drop)
		conn_end(rn, conn, shared, sid);
	sodium_memzero(&m, sizeof(m));
	return err;
}
