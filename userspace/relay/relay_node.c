// SPDX-License-Identifier: MIT
/*
 * The relay's control plane on the node (docs/CONNECTIVITY.md, "Relay"),
 * its hub: lifecycle, the one state (struct relay_node, relay_node_int.h),
 * the QUIC callbacks and the timer. The hub decides which part an event
 * is for and calls it; the parts never call the hub:
 *
 *  - server (relay.enable, relay_node_srv.c): reservations taken over QUIC
 *    streams of type RELAY_ST_CTL and authenticated by the connection's
 *    node key; CONNECT from a dialler -> OFFER to the holder -> on ANSWER
 *    a circuit in the data plane (relay_fwd_add) and CIRCUIT to both ends;
 *  - holder (relay_node_cli.c): reservations kept with our relays while
 *    the node is unreachable, listed in the node record; offers accepted
 *    (or not, relay.accept) and the accepted circuit's end bound;
 *  - relays found (relay_node_find.c): DHT announce and lookup, records;
 *  - dialler (relay_node_dial.c): circuits asked for by dial-by-key
 *    (relay_node_circuit), their end bound;
 *  - binds (relay_node_bind.c): the STUN request with WEFT-CIRCUIT sent
 *    from the QUIC socket, retried until answered or RELAY_DEF_BIND_MS;
 *  - /v1/relay/{status,reservations,circuits,connect} and weft_relay_*
 *    metrics (relay_node_ctl.c).
 *
 * Threads and the lock: QUIC callbacks run on the connection's worker, the
 * timer on worker 0, relay_node_circuit and the routes on control threads.
 * One plain mutex (rn->mu) guards the state; nothing that can call back
 * into this module on the same thread runs with it held: the timer calls
 * dhtnode_run and relay_fwd_del (through rn_flood_check) unlocked, and the
 * dialler makes its quic_node calls unlocked. quic_node calls made by the
 * callbacks and the timer under the lock only queue a command on a worker
 * (they never run a callback on the caller's thread). The whole rule is at
 * the top of relay_node_int.h. Every table is bounded; nothing waits
 * without a deadline but a connection event for a handle a connect call
 * is about to record (rn_conn_settle), for as long as that call runs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/dht.h"
#include "weft/dhtnode.h"
#include "weft/engine.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/relay.h"
#include "weft/relay_fwd.h"

#include "relay_node_int.h"

_Static_assert(RELAY_END_DELETED == 1 && RELAY_END_BYTES == RELAY_ENDED_MAX,
	       "ENDED's reason is relay_fwd's RELAY_END_* code");

/* ------------------------------------------------------------ stream events */

/* A message on stream s: to the part its role belongs to. */
static void handle_msg(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m)
{
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
		if (rn_on_answer(rn, s, m))
			return;
		break;
	case RC_OFFER_IN:
		if (m->type == RELAY_MSG_OFFER)
			rn_on_offer(rn, s, m);
		else if (m->type == RELAY_MSG_CIRCUIT)
			rn_on_circuit_holder(rn, s, m);
		else
			break;
		return;
	case RC_RES_OUT:
		if (rn_on_use_msg(rn, s, m))
			return;
		break;
	case RC_CONNECT_OUT:
	case RC_CIRC_OUT:
		if (rn_on_dial_msg(rn, s, m))
			return;
		break;
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

/* A stream we asked for: the token says whose. */
static void cb_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct relay_node *rn = arg;
	uint64_t idx = TOK_IDX(token);

	if (atomic_load(&rn->freeing))
		return;
	lock(rn);
	switch (TOK_KIND(token)) {
	case TOK_OFFER:
		rn_offer_opened(rn, idx, conn, sid, err);
		break;
	case TOK_USE:
		rn_use_opened(rn, idx, conn, sid, err);
		break;
	case TOK_DIAL:
		rn_dial_opened(rn, idx, conn, sid, err);
		break;
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

/* Connections we dialled: a reservation of ours or a circuit request. */
static void cb_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct relay_node *rn = arg;
	struct rn_use *u;
	struct rn_dial *d;

	if (atomic_load(&rn->freeing))
		return;
	lock(rn);
	rn_conn_settle(rn, conn);
	u = rn_use_by_conn(rn, conn);
	d = rn_dial_by_conn(rn, conn);
	if (u && u->st == U_DIALING)
		rn_use_connected(rn, u, conn, err, peer_key);
	else if (d && d->st == D_DIALING)
		rn_dial_connected(rn, d, err);
	unlock(rn);
}

static void cb_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct relay_node *rn = arg;
	struct rn_use *u;

	if (atomic_load(&rn->freeing))
		return;
	lock(rn);
	rn_conn_settle(rn, conn);
	rn_st_drop_conn(rn, conn);
	u = rn_use_by_conn(rn, conn);
	if (u)
		rn_use_closed(rn, u);
	rn_dial_closed(rn, conn, info);
	unlock(rn);
}

static void rn_release(void *arg);

static const struct quic_node_handler rn_handler = {
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
	int want, announce = 0, discover = 0;

	if (atomic_load(&rn->freeing))
		return;
	want = rn_want_reserve(rn);
	lock(rn);
	/* relay side */
	relay_tab_expire(rn->tab, now);
	for (unsigned int i = 0; i < RN_MAX_PENDING; i++)
		if (rn->pending[i].used && now >= rn->pending[i].deadline_ms)
			rn_offer_done(rn, &rn->pending[i], RELAY_E_TIMEOUT);
	/* client side: keep the reservations */
	rn_use_keep(rn, now, want);
	/* a relay announces itself; a node that wants a relay and has none
	 * configured looks for them */
	if (rn->o.dht && rn->fwd && !rn->o.no_announce && now >= rn->next_announce_ms) {
		rn->next_announce_ms = now + RN_ANNOUNCE_RETRY_MS;
		announce = 1;
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
		discover = 1;
	}
	for (unsigned int i = 0; i < RN_MAX_BINDS; i++) {
		struct rn_bind *b = &rn->binds[i];

		rn_bind_step(rn, b, now);
		if (b->used && b->done && !b->waited)
			b->used = 0; /* a holder's bind: nobody waits for it */
	}
	unlock(rn);
	/* Unlocked: each may run our code at once (see relay_node_int.h). */
	rn_flood_check(rn, now);
	if (announce)
		dhtnode_run(rn->o.dht, rn_announce_fn, rn);
	if (discover)
		dhtnode_run(rn->o.dht, rn_discover_fn, rn);
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
	rn->qh = &rn_handler;
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
#ifdef WEFT_TEST_HOOKS
	/* A second lock on one thread fails (lock() stops) instead of hanging. */
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
#endif
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

static void rn_release(void *arg)
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
