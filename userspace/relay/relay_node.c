// SPDX-License-Identifier: MIT
/*
 * The relay's control plane on the node (docs/CONNECTIVITY.md, "Relay"):
 *
 *  - server (relay.enable): reservations taken over QUIC streams of type
 *    RELAY_ST_CTL and authenticated by the connection's node key; CONNECT
 *    from a dialler -> OFFER to the holder -> on ANSWER accept, a circuit in
 *    the data plane (relay_fwd_add) and CIRCUIT to both ends;
 *  - client: reservations kept with the relays of relay.use while the node
 *    is unreachable, listed in the node record; offers accepted (or not,
 *    relay.accept) and the accepted circuit's end bound; circuits asked for
 *    by dial-by-key (relay_node_circuit), their end bound;
 *  - binds: the STUN request with WEFT-CIRCUIT sent from the QUIC socket,
 *    retried at 200 ms, 400 ms, ... until answered or RELAY_DEF_BIND_MS;
 *  - /v1/relay/{status,reservations,circuits} and weft_relay_* metrics.
 *
 * Threads: QUIC callbacks run on the connection's worker, the timer on
 * worker 0, relay_node_circuit and the routes on control threads; one
 * recursive mutex guards everything here (quic_node calls made on a
 * worker's own thread may run at once and call back in). Every table is
 * bounded; nothing waits without a deadline.
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

_Static_assert(RELAY_END_DELETED == 1 && RELAY_END_BYTES == RELAY_ENDED_MAX,
	       "ENDED's reason is relay_fwd's RELAY_END_* code");

/* ------------------------------------------------------------ streams */

struct rn_stream *rn_st_find(struct relay_node *rn, uint64_t conn, int64_t sid)
{
	for (unsigned int i = 0; i < rn->nstreams; i++)
		if (rn->streams[i].used && rn->streams[i].conn == conn && rn->streams[i].sid == sid)
			return &rn->streams[i];
	return NULL;
}

struct rn_stream *rn_st_add(struct relay_node *rn, uint64_t conn, int64_t sid,
				enum rs_role role, uint64_t ref)
{
	for (unsigned int i = 0; i < rn->nstreams; i++)
		if (!rn->streams[i].used) {
			struct rn_stream *s = &rn->streams[i];

			memset(s, 0, sizeof(*s));
			s->used = 1;
			s->conn = conn;
			s->sid = sid;
			s->role = role;
			s->ref = ref;
			return s;
		}
	return NULL;
}

void rn_st_drop_conn(struct relay_node *rn, uint64_t conn)
{
	for (unsigned int i = 0; i < rn->nstreams; i++)
		if (rn->streams[i].used && rn->streams[i].conn == conn)
			rn->streams[i].used = 0;
}

void rn_send_msg(struct relay_node *rn, uint64_t conn, int64_t sid, const struct relay_msg *m,
		     int fin)
{
	uint8_t b[RELAY_MSG_MAX];
	int n = relay_msg_encode(m, b, sizeof(b));

	if (n > 0)
		quic_node_write(rn->o.quic, conn, sid, b, (size_t)n, fin);
}


/* ------------------------------------------------------------ stream events */

static void handle_msg(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m)
{
	struct rn_use *u;
	struct rn_dial *d;

	if (s->role == RS_NEW) {
		if (m->type == RELAY_MSG_RESERVE)
			s->role = RS_RES_IN;
		else if (m->type == RELAY_MSG_CONNECT)
			s->role = RS_CONNECT_IN;
		else if (m->type == RELAY_MSG_OFFER)
			s->role = RC_OFFER_IN;
	}
	switch (s->role) {
	case RS_RES_IN:
		if (m->type != RELAY_MSG_RESERVE)
			break;
		rn_on_reserve(rn, s);
		return;
	case RS_CONNECT_IN:
		if (m->type != RELAY_MSG_CONNECT || s->seen)
			break;
		s->seen = 1;
		rn_on_connect(rn, s, m);
		return;
	case RS_OFFER_OUT:
		if (m->type != RELAY_MSG_ANSWER || s->ref >= RN_MAX_PENDING ||
		    !rn->pending[s->ref].used)
			break;
		s->used = 0;
		rn_offer_done(rn, &rn->pending[s->ref],
			   m->status == RELAY_OK ? RELAY_OK : RELAY_E_REFUSED);
		return;
	case RC_OFFER_IN:
		if (m->type == RELAY_MSG_OFFER)
			rn_on_offer(rn, s, m);
		else if (m->type == RELAY_MSG_CIRCUIT)
			rn_on_circuit_holder(rn, s, m);
		else
			break;
		return;
	case RC_RES_OUT:
		u = s->ref < rn->nuse ? &rn->use[s->ref] : NULL;
		if (m->type == RELAY_MSG_ENDED && u && u->conn == s->conn) {
			struct io_addr via = u->addr;

			via.port = m->port;
			rn_circuit_ended(rn, u->target, &via, m);
			return;
		}
		if (m->type != RELAY_MSG_RESERVED || !u || u->conn != s->conn)
			break;
		u->last_status = m->status;
		if (m->status != RELAY_OK) {
			log_warn("relay", "relay %s refused the reservation: %s", u->target,
				 relay_status_name(m->status));
			rn_use_lost(rn, u, 1);
			return;
		}
		if (u->st != U_HELD) {
			u->taken++;
			log_info("relay", "reservation held with %s (%u s)", u->target, m->ttl_s);
		}
		u->st = U_HELD;
		u->answered = 1;
		u->expires_ms = now_ms(rn) + m->ttl_s * 1000ULL;
		rn_publish_relays(rn);
		return;
	case RC_CONNECT_OUT:
		d = s->ref < RN_MAX_DIALS ? &rn->dials[s->ref] : NULL;
		if (m->type != RELAY_MSG_CIRCUIT || !d || d->st != D_WAIT)
			break;
		d->m = *m;
		d->st = D_DONE;
		s->used = 0;
		for (unsigned int i = 0; m->status == RELAY_OK && i < RN_MAX_OUTS; i++)
			if (!rn->outs[i].used) {
				/* The stream now waits for the circuit's ENDED. */
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
		return;
	case RC_CIRC_OUT: {
		struct rn_out *o = s->ref < RN_MAX_OUTS ? &rn->outs[s->ref] : NULL;
		char buf[64];

		if (m->type != RELAY_MSG_ENDED || !o || !o->used || o->conn != s->conn ||
		    m->port != o->via.port)
			break;
		s->used = 0;
		o->used = 0;
		rn_circuit_ended(rn, io_addr_fmt(&o->via, buf, sizeof(buf)), &o->via, m);
		/* Nothing more to learn from this relay connection, unless it
		 * carries our reservation too. */
		if (!o->shared)
			quic_node_close(rn->o.quic, o->conn, 0);
		return;
	}
	default:
		break;
	}
	/* Unexpected here: the stream ends. */
	quic_node_stream_reset(rn->o.quic, s->conn, s->sid, RELAY_E_BAD_REQUEST);
	s->used = 0;
}

static void cb_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		    int fin)
{
	struct relay_node *rn = arg;
	struct rn_stream *s;
	struct relay_msg m;
	int n;

	if (atomic_load(&rn->freeing))
		return;
	lock(rn);
	s = rn_st_find(rn, conn, sid);
	if (!s && len) {
		s = rn_st_add(rn, conn, sid, RS_NEW, 0);
		if (!s) {
			quic_node_stream_reset(rn->o.quic, conn, sid, RELAY_E_NO_CAPACITY);
			goto out;
		}
	}
	while (s && s->used && len) {
		size_t take = sizeof(s->buf) - s->blen < len ? sizeof(s->buf) - s->blen : len;

		memcpy(s->buf + s->blen, data, take);
		s->blen += take;
		data += take;
		len -= take;
		while (s->used && s->blen) {
			n = relay_msg_parse(s->buf, s->blen, &m);
			if (n == 0)
				break;
			if (n < 0) {
				quic_node_stream_reset(rn->o.quic, conn, sid, RELAY_E_BAD_REQUEST);
				s->used = 0;
				break;
			}
			memmove(s->buf, s->buf + n, s->blen - (size_t)n);
			s->blen -= (size_t)n;
			handle_msg(rn, s, &m);
		}
	}
	if (s && s->used && fin && s->role != RS_RES_IN && s->role != RC_RES_OUT)
		s->used = 0; /* the peer is done; what it sent was handled */
out:
	unlock(rn);
}

static void cb_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct relay_node *rn = arg;
	struct relay_msg m = { 0 };
	uint64_t idx = TOK_IDX(token);

	if (atomic_load(&rn->freeing))
		return;
	lock(rn);
	switch (TOK_KIND(token)) {
	case TOK_OFFER: {
		struct rn_pending *p = idx < RN_MAX_PENDING ? &rn->pending[idx] : NULL;

		if (!p || !p->used || p->tconn != conn)
			break;
		if (err || !rn_st_add(rn, conn, sid, RS_OFFER_OUT, idx)) {
			rn_offer_done(rn, p, RELAY_E_NO_CAPACITY);
			break;
		}
		p->tsid = sid;
		m.type = RELAY_MSG_OFFER;
		memcpy(m.key, p->dkey, RELAY_KEY_LEN);
		m.circuit = idx;
		rn_send_msg(rn, conn, sid, &m, 0);
		break;
	}
	case TOK_USE: {
		struct rn_use *u = idx < rn->nuse ? &rn->use[idx] : NULL;

		if (!u || u->conn != conn || u->st != U_OPENING)
			break;
		if (err || !rn_st_add(rn, conn, sid, RC_RES_OUT, idx)) {
			rn_use_lost(rn, u, 1);
			break;
		}
		u->sid = sid;
		u->st = U_WAIT;
		u->refreshed_ms = now_ms(rn);
		u->answered = 0;
		m.type = RELAY_MSG_RESERVE;
		rn_send_msg(rn, conn, sid, &m, 0);
		break;
	}
	case TOK_DIAL: {
		struct rn_dial *d = idx < RN_MAX_DIALS ? &rn->dials[idx] : NULL;

		if (!d || d->conn != conn || d->st != D_DIALING)
			break;
		/* Our reservation connection has no stream to spare (the
		 * relay's stream limit): a connection of the request's own. */
		if (err == -EAGAIN && d->shared && !rn_dial_own(rn, d)) {
			rn->dials_fallback++;
			break;
		}
		if (err || !rn_st_add(rn, conn, sid, RC_CONNECT_OUT, idx)) {
			d->st = D_FAILED;
			d->err = err ? err : -ENOSPC;
			pthread_cond_broadcast(&rn->cv);
			break;
		}
		d->st = D_WAIT;
		d->sid = sid;
		/* Counted where the request goes out: a shared request that
		 * fell back above counts as one on a connection of its own. */
		if (d->shared)
			rn->dials_shared++;
		else
			rn->dials_own++;
		m.type = RELAY_MSG_CONNECT;
		memcpy(m.key, d->target, RELAY_KEY_LEN);
		rn_send_msg(rn, conn, sid, &m, 0);
		break;
	}
	}
	unlock(rn);
}

static void cb_stream_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct relay_node *rn = arg;
	struct rn_stream *s;

	(void)err;
	if (atomic_load(&rn->freeing))
		return;
	lock(rn);
	s = rn_st_find(rn, conn, sid);
	if (s) {
		/* A reservation stream gone: its connection is, or the holder
		 * gave up. The reservation ends now rather than at expiry. */
		if (s->role == RS_RES_IN)
			relay_tab_drop_conn(rn->tab, conn);
		s->used = 0;
	}
	unlock(rn);
}

static void cb_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct relay_node *rn = arg;
	struct rn_use *u;
	struct rn_dial *d;

	(void)peer_key;
	if (atomic_load(&rn->freeing))
		return;
	lock(rn);
	u = rn_use_by_conn(rn, conn);
	d = rn_dial_by_conn(rn, conn);
	if (u && u->st == U_DIALING) {
		if (!err && peer_key && !u->have_key) {
			memcpy(u->key, peer_key, RELAY_KEY_LEN);
			u->have_key = 1;
		}
		if (err) {
			rn_use_lost(rn, u, 1);
		} else {
			u->st = U_OPENING;
			if (quic_node_stream_open(rn->o.quic, conn, RELAY_ST_CTL,
						  TOK_USE | (uint64_t)(u - rn->use)))
				rn_use_lost(rn, u, 1);
		}
	} else if (d && d->st == D_DIALING) {
		log_debug("relay", "circuit request: relay connected (%s)", err ? strerror(-err) : "ok");
		if (err || quic_node_stream_open(rn->o.quic, conn, RELAY_ST_CTL,
						 TOK_DIAL | (uint64_t)(d - rn->dials))) {
			d->st = D_FAILED;
			d->err = err ? err : -EAGAIN;
			pthread_cond_broadcast(&rn->cv);
		}
	}
	unlock(rn);
}

static void cb_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct relay_node *rn = arg;
	struct rn_use *u;
	struct rn_dial *d;

	if (atomic_load(&rn->freeing))
		return;
	lock(rn);
	rn_st_drop_conn(rn, conn);
	u = rn_use_by_conn(rn, conn);
	if (u) {
		if (u->st == U_HELD)
			log_warn("relay", "reservation with %s lost (connection closed)", u->target);
		rn_use_lost(rn, u, 0);
	}
	d = rn_dial_by_conn(rn, conn);
	if (d && (d->st == D_DIALING || d->st == D_WAIT)) {
		d->st = D_FAILED;
		d->err = info && info->reason == QUIC_CLOSE_IDLE ? -ETIMEDOUT : -ECONNRESET;
		pthread_cond_broadcast(&rn->cv);
	}
	/* A granted circuit's control connection gone: its ENDED cannot come. */
	for (unsigned int i = 0; i < RN_MAX_OUTS; i++)
		if (rn->outs[i].used && rn->outs[i].conn == conn)
			rn->outs[i].used = 0;
	unlock(rn);
}

const struct quic_node_handler rn_handler = {
	.connected = cb_connected,
	.stream_opened = cb_opened,
	.stream_data = cb_data,
	.stream_closed = cb_stream_closed,
	.closed = cb_closed,
	.release = rn_release,
};


/* ------------------------------------------------------------ timer */

static void tick(struct engine_worker *w, void *arg)
{
	struct relay_node *rn = arg;
	uint64_t now = now_ms(rn);
	int want;

	if (atomic_load(&rn->freeing))
		return;
	want = rn_want_reserve(rn);
	lock(rn);
	/* relay side */
	relay_tab_expire(rn->tab, now);
	rn_flood_check(rn, now);
	for (unsigned int i = 0; i < RN_MAX_PENDING; i++)
		if (rn->pending[i].used && now >= rn->pending[i].deadline_ms)
			rn_offer_done(rn, &rn->pending[i], RELAY_E_TIMEOUT);
	/* client side: keep the reservations */
	for (unsigned int i = 0; i < rn->nuse; i++) {
		struct rn_use *u = &rn->use[i];
		struct relay_msg m = { .type = RELAY_MSG_RESERVE };

		if (u->dead)
			continue;
		if (!want && u->st != U_IDLE) {
			rn_use_lost(rn, u, 1);
			u->next_try_ms = now;
			continue;
		}
		if (want && u->st == U_IDLE && now >= u->next_try_ms) {
			u->st = U_DIALING;
			if (quic_node_connect(rn->o.quic, u->target, &rn_handler, rn, &u->conn)) {
				u->st = U_IDLE;
				u->next_try_ms = now + RN_RETRY_MS;
			}
			continue;
		}
		if ((u->st == U_HELD || u->st == U_WAIT) && !u->answered &&
		    now - u->refreshed_ms >= RN_DIAL_MS) {
			/* Our RESERVE went unanswered: the relay or the path is gone. */
			log_warn("relay", "reservation with %s: no answer in %u s", u->target,
				 RN_DIAL_MS / 1000);
			rn_use_lost(rn, u, 1);
			continue;
		}
		if (u->st == U_HELD && u->answered && now - u->refreshed_ms >= RELAY_REFRESH_MS) {
			u->refreshed_ms = now;
			u->answered = 0;
			rn_send_msg(rn, u->conn, u->sid, &m, 0);
		}
	}
	/* a relay announces itself; a node that wants a relay and has none
	 * configured looks for them */
	if (rn->o.dht && rn->fwd && !rn->o.no_announce && now >= rn->next_announce_ms) {
		rn->next_announce_ms = now + RN_ANNOUNCE_RETRY_MS;
		dhtnode_run(rn->o.dht, rn_announce_fn, rn);
	}
	/* records seen name relays with their keys: free slots take them */
	if (rn->o.conn && want && !rn->fwd && !rn->o.nuse && !rn_held_any(rn))
		rn_from_records(rn);
	if (rn->o.dht && want && !rn->fwd && !rn->o.nuse && !rn_held_any(rn) &&
	    now >= rn->next_discover_ms) {
		rn->discover_gap_ms = rn->discover_gap_ms ? rn->discover_gap_ms * 2 : RN_DISCOVER_MIN_MS;
		if (rn->discover_gap_ms > RN_DISCOVER_MAX_MS)
			rn->discover_gap_ms = RN_DISCOVER_MAX_MS;
		rn->next_discover_ms = now + rn->discover_gap_ms;
		dhtnode_run(rn->o.dht, rn_discover_fn, rn);
	}
	for (unsigned int i = 0; i < RN_MAX_BINDS; i++) {
		struct rn_bind *b = &rn->binds[i];

		rn_bind_step(rn, b, now);
		if (b->used && b->done && !b->waited)
			b->used = 0; /* a holder's bind: nobody waits for it */
	}
	unlock(rn);
	engine_timer_add(w, &rn->timer, RN_TICK_MS);
}

static void start_cmd(struct engine_worker *w, void *arg)
{
	struct relay_node *rn = arg;

	rn->w0 = w;
	engine_timer_add(w, &rn->timer, 0);
}

/* ------------------------------------------------------------ lifecycle */

int relay_node_new(struct relay_node **out, const struct relay_node_opts *o)
{
	struct relay_node *rn;
	pthread_mutexattr_t ma;
	int err;

	if (!out || !o || !o->eng || !o->quic || o->nuse > RELAY_MAX_USE)
		return -EINVAL;
	rn = calloc(1, sizeof(*rn));
	if (!rn)
		return -ENOMEM;
	rn->o = *o;
	err = relay_tab_new(&rn->tab, &o->tab);
	if (err)
		goto fail;
	/* the limits in force, for status */
	if (!rn->o.tab.max_reservations)
		rn->o.tab.max_reservations = RELAY_DEF_MAX_RESERVATIONS;
	if (!rn->o.tab.circuits_per_res)
		rn->o.tab.circuits_per_res = RELAY_DEF_CIRCUITS_PER_RES;
	if (!rn->o.tab.reservations_per_addr)
		rn->o.tab.reservations_per_addr = RELAY_DEF_RES_PER_ADDR;
	if (!rn->o.tab.ttl_s)
		rn->o.tab.ttl_s = RELAY_DEF_RES_TTL_S;
	if (!rn->o.tab.churn_max)
		rn->o.tab.churn_max = RELAY_DEF_CHURN_MAX;
	if (!rn->o.circuit_bytes)
		rn->o.circuit_bytes = RELAY_DEF_CIRCUIT_BYTES;
	if (!rn->o.circuit_lifetime_ms)
		rn->o.circuit_lifetime_ms = RELAY_DEF_CIRCUIT_LIFETIME_MS;
	/* A reservation stream each, plus two streams per offer in flight. */
	rn->nstreams = rn->o.tab.max_reservations + 2 * RN_MAX_PENDING + 2 * RN_MAX_DIALS +
		       2 * RELAY_MAX_USE;
	rn->streams = calloc(rn->nstreams, sizeof(*rn->streams));
	rn->ncircs = rn->o.tab.max_reservations * rn->o.tab.circuits_per_res;
	if (rn->ncircs > 65536)
		rn->ncircs = 65536;
	rn->circs = calloc(rn->ncircs, sizeof(*rn->circs));
	if (!rn->streams || !rn->circs) {
		err = -ENOMEM;
		goto fail;
	}
	for (unsigned int i = 0; i < o->nuse; i++) {
		struct rn_use *u = &rn->use[i];
		struct sockaddr_storage ss;
		socklen_t sl;
		int have = 0;

		snprintf(u->target, sizeof(u->target), "%s", o->use[i]);
		if (quic_node_parse_target(u->target, 4433, u->key, &have, &ss, &sl) || !have ||
		    io_addr_from_sockaddr(&u->addr, (struct sockaddr *)&ss, sl)) {
			err = -EINVAL;
			goto fail;
		}
	}
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&rn->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&rn->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	rn->nuse = o->nuse;
	dht_bep44_target_immutable(rn->ih, (const uint8_t *)RELAY_DHT_NAME, strlen(RELAY_DHT_NAME));
	engine_timer_init(&rn->timer, tick, rn);
	err = quic_node_register(o->quic, RELAY_ST_CTL, &rn_handler, rn);
	if (err)
		goto fail_mu;
	if (o->ctl)
		rn_ctl_register(rn);
	*out = rn;
	return 0;
fail_mu:
	pthread_mutex_destroy(&rn->mu);
	pthread_cond_destroy(&rn->cv);
fail:
	relay_tab_free(rn->tab);
	free(rn->streams);
	free(rn->circs);
	free(rn);
	return err;
}

int relay_node_start(struct relay_node *rn)
{
	if (!rn)
		return -EINVAL;
	return engine_call(rn->o.eng, 0, start_cmd, rn);
}

void rn_release(void *arg)
{
	struct relay_node *rn = arg;

	relay_tab_free(rn->tab);
	free(rn->streams);
	free(rn->circs);
	pthread_mutex_destroy(&rn->mu);
	pthread_cond_destroy(&rn->cv);
	free(rn);
}

/* The QUIC node holds rn as its stream type's context and hands it back
 * (rn_release) after its last callback: callbacks from here on return at
 * once (what they would touch, conn_node and the data plane, may be gone). */
void relay_node_free(struct relay_node *rn)
{
	if (!rn)
		return;
	atomic_store(&rn->freeing, 1);
	/* Called after engine_stop (node_free): the wheel is ours, and the
	 * timer must not stay linked in it once rn is released. */
	if (rn->w0)
		engine_timer_cancel(rn->w0, &rn->timer);
}

void relay_node_set_fwd(struct relay_node *rn, struct relay_fwd *fwd)
{
	if (rn)
		rn->fwd = fwd;
}

/* relay_fwd's on_end, for whoever creates the data plane (weftd's node). */
void relay_node_fwd_end(void *arg, uint64_t id, int reason)
{
	if (arg)
		rn_fwd_on_end(arg, id, reason);
}
