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
#include "weft/node_dht.h"
#include "weft/quic_node.h"
#include "weft/relay.h"
#include "weft/relay_fwd.h"
#include "weft/util.h"

_Static_assert(RELAY_END_DELETED == 1 && RELAY_END_BYTES == RELAY_ENDED_MAX,
	       "ENDED's reason is relay_fwd's RELAY_END_* code");

#define RN_TICK_MS 100	       /* timer period: bind retries, offers, keeper */
#define RN_MAX_PENDING 64      /* offers waiting for the holder's answer */
#define RN_MAX_BINDS 32	       /* our ends binding at once */
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
	uint64_t deadline_ms;
};

struct rn_circ { /* relay: a circuit in the data plane */
	int used;
	uint64_t id;
	uint16_t port;
	uint8_t dkey[RELAY_KEY_LEN], tkey[RELAY_KEY_LEN];
	uint64_t created_ms;
};

enum use_state { U_IDLE = 0, U_DIALING, U_OPENING, U_WAIT, U_HELD };
static const char *const use_names[] = { "idle", "dialing", "opening", "requested", "held" };

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
	int discovered; /* found in the DHT: the key is learned at the handshake */
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

enum dial_state { D_FREE = 0, D_DIALING, D_WAIT, D_DONE, D_FAILED };

struct rn_dial { /* client: a circuit request of ours */
	enum dial_state st;
	uint64_t conn;
	int err;
	uint8_t target[RELAY_KEY_LEN];
	struct relay_msg m;
};

struct relay_node {
	struct relay_node_opts o;
	struct relay_fwd *fwd; /* the data plane; NULL: this node does not relay */
	pthread_mutex_t mu; /* recursive: everything below */
	pthread_cond_t cv;  /* dial and bind progress */
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
	uint64_t announces, announces_stored, discovered;
	struct rn_bind binds[RN_MAX_BINDS];
	struct rn_dial dials[RN_MAX_DIALS];
	struct engine_timer timer;
	int published_relays; /* count last given to conn_node */
	_Atomic int freeing;
	/* counters */
	uint64_t reserves_ok, reserves_refused, refreshes, churn_bans;
	uint64_t connects, circuits_ok, circuits_refused[RELAY_E__MAX];
	uint64_t offers_in, offers_accepted, offers_refused;
	uint64_t binds_ok, binds_failed, dials_total, dials_ok;
	uint64_t ended_by[5];
	uint64_t ended_seen[RELAY_ENDED_MAX + 1]; /* holder: ENDED received, by reason */
};

static const struct quic_node_handler rn_handler;
static void rn_release(void *arg);

static uint64_t now_ms(struct relay_node *rn)
{
	return engine_now_ns(rn->o.eng) / 1000000;
}

static void lock(struct relay_node *rn)
{
	pthread_mutex_lock(&rn->mu);
}

static void unlock(struct relay_node *rn)
{
	pthread_mutex_unlock(&rn->mu);
}

/* ------------------------------------------------------------ streams */

static struct rn_stream *st_find(struct relay_node *rn, uint64_t conn, int64_t sid)
{
	for (unsigned int i = 0; i < rn->nstreams; i++)
		if (rn->streams[i].used && rn->streams[i].conn == conn && rn->streams[i].sid == sid)
			return &rn->streams[i];
	return NULL;
}

static struct rn_stream *st_add(struct relay_node *rn, uint64_t conn, int64_t sid,
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

static void st_drop_conn(struct relay_node *rn, uint64_t conn)
{
	for (unsigned int i = 0; i < rn->nstreams; i++)
		if (rn->streams[i].used && rn->streams[i].conn == conn)
			rn->streams[i].used = 0;
}

static void send_msg(struct relay_node *rn, uint64_t conn, int64_t sid, const struct relay_msg *m,
		     int fin)
{
	uint8_t b[RELAY_MSG_MAX];
	int n = relay_msg_encode(m, b, sizeof(b));

	if (n > 0)
		quic_node_write(rn->o.quic, conn, sid, b, (size_t)n, fin);
}

static void send_circuit_status(struct relay_node *rn, uint64_t conn, int64_t sid,
				unsigned int status)
{
	struct relay_msg m = { .type = RELAY_MSG_CIRCUIT, .status = (uint8_t)status };

	if (status < RELAY_E__MAX)
		rn->circuits_refused[status]++;
	send_msg(rn, conn, sid, &m, 1);
}

/* ------------------------------------------------------------ relay side */

static void on_reserve(struct relay_node *rn, struct rn_stream *s)
{
	struct relay_msg m = { .type = RELAY_MSG_RESERVED };
	struct sockaddr_storage ss;
	uint8_t key[RELAY_KEY_LEN];
	struct io_addr a;
	int abuse = 0, st;

	if (!rn->fwd) {
		m.status = RELAY_E_NOT_RELAY;
	} else if (quic_node_conn_peer(rn->o.quic, s->conn, key, &ss) ||
		   io_addr_from_sockaddr(&a, (struct sockaddr *)&ss, sizeof(ss))) {
		m.status = RELAY_E_BAD_REQUEST;
	} else {
		int fresh = !relay_tab_find(rn->tab, key, now_ms(rn)) ||
			    relay_tab_find(rn->tab, key, now_ms(rn))->conn != s->conn;

		st = relay_tab_reserve(rn->tab, key, &a, s->conn, now_ms(rn), &m.ttl_s, &abuse);
		m.status = (uint8_t)st;
		if (st == RELAY_OK && fresh)
			rn->reserves_ok++;
		else if (st == RELAY_OK)
			rn->refreshes++;
		else
			rn->reserves_refused++;
		if (abuse && rn->o.guard) {
			/* The QUIC handshake of this connection validated
			 * the source: evidence the ban pipeline accepts. */
			char buf[64];

			rn->churn_bans++;
			log_warn("relay", "reservation churn from %s: banned for %u s",
				 io_addr_fmt(&a, buf, sizeof(buf)), RN_BAN_S);
			guard_ban_addr(rn->o.guard, a.family, a.addr, RN_BAN_S);
		}
	}
	send_msg(rn, s->conn, s->sid, &m, m.status != RELAY_OK);
	if (m.status != RELAY_OK)
		s->used = 0;
}

static void on_connect(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *req)
{
	struct sockaddr_storage ss;
	struct relay_res *r;
	struct rn_pending *p = NULL;
	uint8_t dkey[RELAY_KEY_LEN];
	unsigned int i;
	int st;

	rn->connects++;
	if (!rn->fwd) {
		st = RELAY_E_NOT_RELAY;
		goto refuse;
	}
	if (quic_node_conn_peer(rn->o.quic, s->conn, dkey, &ss) ||
	    !memcmp(dkey, req->key, RELAY_KEY_LEN)) {
		st = RELAY_E_BAD_REQUEST;
		goto refuse;
	}
	for (i = 0; i < RN_MAX_PENDING && rn->pending[i].used; i++)
		;
	if (i == RN_MAX_PENDING) {
		st = RELAY_E_NO_CAPACITY;
		goto refuse;
	}
	st = relay_tab_circuit_add(rn->tab, req->key, now_ms(rn));
	if (st != RELAY_OK)
		goto refuse;
	r = relay_tab_find(rn->tab, req->key, now_ms(rn));
	p = &rn->pending[i];
	memset(p, 0, sizeof(*p));
	p->used = 1;
	p->dconn = s->conn;
	p->dsid = s->sid;
	p->tconn = r->conn;
	p->tsid = -1;
	memcpy(p->dkey, dkey, RELAY_KEY_LEN);
	memcpy(p->tkey, req->key, RELAY_KEY_LEN);
	p->deadline_ms = now_ms(rn) + RELAY_OFFER_MS;
	s->ref = i;
	if (quic_node_stream_open(rn->o.quic, r->conn, RELAY_ST_CTL, TOK_OFFER | i)) {
		relay_tab_circuit_end(rn->tab, req->key);
		p->used = 0;
		st = RELAY_E_NO_CAPACITY;
		goto refuse;
	}
	return;
refuse:
	send_circuit_status(rn, s->conn, s->sid, (unsigned int)st);
	s->used = 0;
}

/* The holder answered offer p (or did not in time: status TIMEOUT). */
static void offer_done(struct relay_node *rn, struct rn_pending *p, unsigned int status)
{
	struct relay_fwd_limits lim = { .max_bytes = rn->o.circuit_bytes,
					.lifetime_ms = rn->o.circuit_lifetime_ms };
	struct relay_msg a = { .type = RELAY_MSG_CIRCUIT }, b;
	struct rn_circ *c = NULL;
	uint8_t tok_a[RELAY_TOKEN_LEN], tok_b[RELAY_TOKEN_LEN];
	uint64_t id = 0;
	uint16_t port = 0;
	unsigned int i;
	int err;

	if (status == RELAY_OK) {
		for (i = 0; i < rn->ncircs && rn->circs[i].used; i++)
			;
		if (i < rn->ncircs)
			c = &rn->circs[i];
		randombytes_buf(tok_a, sizeof(tok_a));
		do
			randombytes_buf(tok_b, sizeof(tok_b));
		while (!memcmp(tok_a, tok_b, sizeof(tok_a)));
		err = c ? relay_fwd_add(rn->fwd, tok_a, tok_b, &lim, &id, &port) : -ENOSPC;
		if (err)
			status = RELAY_E_NO_CAPACITY;
	}
	if (status != RELAY_OK) {
		relay_tab_circuit_end(rn->tab, p->tkey);
		send_circuit_status(rn, p->dconn, p->dsid, status);
		if (p->tsid >= 0)
			quic_node_write(rn->o.quic, p->tconn, p->tsid, NULL, 0, 1);
		p->used = 0;
		return;
	}
	memset(c, 0, sizeof(*c));
	c->used = 1;
	c->id = id;
	c->port = port;
	memcpy(c->dkey, p->dkey, RELAY_KEY_LEN);
	memcpy(c->tkey, p->tkey, RELAY_KEY_LEN);
	c->created_ms = now_ms(rn);
	rn->circuits_ok++;
	a.port = port;
	a.circuit = id;
	a.lifetime_ms = rn->o.circuit_lifetime_ms;
	a.max_bytes = rn->o.circuit_bytes;
	b = a;
	memcpy(a.token, tok_a, RELAY_TOKEN_LEN);
	memcpy(b.token, tok_b, RELAY_TOKEN_LEN);
	send_msg(rn, p->tconn, p->tsid, &b, 1);
	send_msg(rn, p->dconn, p->dsid, &a, 1);
	p->used = 0;
	sodium_memzero(tok_a, sizeof(tok_a));
	sodium_memzero(tok_b, sizeof(tok_b));
}

/* Tell the holder of circuit c why it ended: ENDED on its reservation
 * stream (the one stream the relay holds open towards it). */
static void ended_notify(struct relay_node *rn, struct rn_circ *c, int reason)
{
	struct relay_msg m = { .type = RELAY_MSG_ENDED, .circuit = c->id, .port = c->port };
	struct relay_res *r = relay_tab_find(rn->tab, c->tkey, now_ms(rn));

	if (!r || reason <= 0 || reason > RELAY_ENDED_MAX)
		return;
	m.reason = (uint8_t)reason;
	for (unsigned int i = 0; i < rn->nstreams; i++)
		if (rn->streams[i].used && rn->streams[i].role == RS_RES_IN &&
		    rn->streams[i].conn == r->conn) {
			send_msg(rn, r->conn, rn->streams[i].sid, &m, 0);
			return;
		}
}

/* relay_fwd's on_end: the data plane ended circuit id. */
static void fwd_on_end(void *arg, uint64_t id, int reason)
{
	struct relay_node *rn = arg;

	if (atomic_load(&rn->freeing))
		return;
	lock(rn);
	for (unsigned int i = 0; i < rn->ncircs; i++)
		if (rn->circs[i].used && rn->circs[i].id == id) {
			static const char *const why[] = { "?", "deleted", "lifetime", "idle",
							   "byte limit" };
			char d[17], t[17];

			util_hex(d, rn->circs[i].dkey, 8);
			util_hex(t, rn->circs[i].tkey, 8);
			log_info("relay", "circuit %llu (%s... -> %s...) ended: %s",
				 (unsigned long long)id, d, t,
				 why[reason > 0 && reason < 5 ? reason : 0]);
			ended_notify(rn, &rn->circs[i], reason);
			relay_tab_circuit_end(rn->tab, rn->circs[i].tkey);
			rn->circs[i].used = 0;
		}
	if (reason > 0 && reason < 5)
		rn->ended_by[reason]++;
	unlock(rn);
}

/* ------------------------------------------------------------ binds */

static struct rn_bind *bind_start(struct relay_node *rn, const struct io_addr *to,
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
static void bind_step(struct relay_node *rn, struct rn_bind *b, uint64_t now)
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
			hit = 1;
			pthread_cond_broadcast(&rn->cv);
		}
	}
	unlock(rn);
	return hit;
}

/* ------------------------------------------------------------ client side */

static struct rn_use *use_by_conn(struct relay_node *rn, uint64_t conn)
{
	for (unsigned int i = 0; i < rn->nuse; i++)
		if (rn->use[i].st != U_IDLE && rn->use[i].conn == conn)
			return &rn->use[i];
	return NULL;
}

static struct rn_dial *dial_by_conn(struct relay_node *rn, uint64_t conn)
{
	for (unsigned int i = 0; i < RN_MAX_DIALS; i++)
		if (rn->dials[i].st != D_FREE && rn->dials[i].conn == conn)
			return &rn->dials[i];
	return NULL;
}

/* The relays we hold into the node record (when the set changed). */
static void publish_relays(struct relay_node *rn)
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
static void use_lost(struct relay_node *rn, struct rn_use *u, int close)
{
	if (u->st == U_HELD)
		u->lost++;
	if (u->st == U_HELD)
		u->fails = 0;
	else if (u->discovered && ++u->fails >= RN_DEAD_FAILS)
		u->dead = 1; /* its slot goes to the next relay the DHT gives */
	if (close && u->st != U_IDLE)
		quic_node_close(rn->o.quic, u->conn, 0);
	st_drop_conn(rn, u->conn);
	u->st = U_IDLE;
	u->next_try_ms = now_ms(rn) + RN_RETRY_MS;
	publish_relays(rn);
}

static void on_offer(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m)
{
	struct relay_msg a = { .type = RELAY_MSG_ANSWER };

	rn->offers_in++;
	if (!use_by_conn(rn, s->conn)) {
		/* Offers come only from a relay we hold a reservation with. */
		quic_node_stream_reset(rn->o.quic, s->conn, s->sid, RELAY_E_BAD_REQUEST);
		s->used = 0;
		return;
	}
	(void)m;
	a.status = rn->o.accept ? RELAY_OK : RELAY_E_REFUSED;
	if (rn->o.accept)
		rn->offers_accepted++;
	else
		rn->offers_refused++;
	send_msg(rn, s->conn, s->sid, &a, !rn->o.accept);
	if (!rn->o.accept)
		s->used = 0;
}

/* The relay granted the circuit we accepted: bind our end. */
static void on_circuit_holder(struct relay_node *rn, struct rn_stream *s,
			      const struct relay_msg *m)
{
	struct rn_use *u = use_by_conn(rn, s->conn);

	s->used = 0;
	if (!u || m->status != RELAY_OK)
		return;
	struct io_addr to = u->addr;

	to.port = m->port;
	if (!bind_start(rn, &to, m->token))
		rn->binds_failed++;
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
		on_reserve(rn, s);
		return;
	case RS_CONNECT_IN:
		if (m->type != RELAY_MSG_CONNECT || s->seen)
			break;
		s->seen = 1;
		on_connect(rn, s, m);
		return;
	case RS_OFFER_OUT:
		if (m->type != RELAY_MSG_ANSWER || s->ref >= RN_MAX_PENDING ||
		    !rn->pending[s->ref].used)
			break;
		s->used = 0;
		offer_done(rn, &rn->pending[s->ref],
			   m->status == RELAY_OK ? RELAY_OK : RELAY_E_REFUSED);
		return;
	case RC_OFFER_IN:
		if (m->type == RELAY_MSG_OFFER)
			on_offer(rn, s, m);
		else if (m->type == RELAY_MSG_CIRCUIT)
			on_circuit_holder(rn, s, m);
		else
			break;
		return;
	case RC_RES_OUT:
		u = s->ref < rn->nuse ? &rn->use[s->ref] : NULL;
		if (m->type == RELAY_MSG_ENDED && u && u->conn == s->conn) {
			log_warn("relay", "relay %s ended circuit %llu (port %u): %s", u->target,
				 (unsigned long long)m->circuit, m->port, relay_end_name(m->reason));
			rn->ended_seen[m->reason]++;
			return;
		}
		if (m->type != RELAY_MSG_RESERVED || !u || u->conn != s->conn)
			break;
		u->last_status = m->status;
		if (m->status != RELAY_OK) {
			log_warn("relay", "relay %s refused the reservation: %s", u->target,
				 relay_status_name(m->status));
			use_lost(rn, u, 1);
			return;
		}
		if (u->st != U_HELD) {
			u->taken++;
			log_info("relay", "reservation held with %s (%u s)", u->target, m->ttl_s);
		}
		u->st = U_HELD;
		u->answered = 1;
		u->expires_ms = now_ms(rn) + m->ttl_s * 1000ULL;
		publish_relays(rn);
		return;
	case RC_CONNECT_OUT:
		d = s->ref < RN_MAX_DIALS ? &rn->dials[s->ref] : NULL;
		if (m->type != RELAY_MSG_CIRCUIT || !d || d->st != D_WAIT)
			break;
		d->m = *m;
		d->st = D_DONE;
		s->used = 0;
		pthread_cond_broadcast(&rn->cv);
		return;
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
	s = st_find(rn, conn, sid);
	if (!s && len) {
		s = st_add(rn, conn, sid, RS_NEW, 0);
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
		if (err || !st_add(rn, conn, sid, RS_OFFER_OUT, idx)) {
			offer_done(rn, p, RELAY_E_NO_CAPACITY);
			break;
		}
		p->tsid = sid;
		m.type = RELAY_MSG_OFFER;
		memcpy(m.key, p->dkey, RELAY_KEY_LEN);
		m.circuit = idx;
		send_msg(rn, conn, sid, &m, 0);
		break;
	}
	case TOK_USE: {
		struct rn_use *u = idx < rn->nuse ? &rn->use[idx] : NULL;

		if (!u || u->conn != conn || u->st != U_OPENING)
			break;
		if (err || !st_add(rn, conn, sid, RC_RES_OUT, idx)) {
			use_lost(rn, u, 1);
			break;
		}
		u->sid = sid;
		u->st = U_WAIT;
		u->refreshed_ms = now_ms(rn);
		u->answered = 0;
		m.type = RELAY_MSG_RESERVE;
		send_msg(rn, conn, sid, &m, 0);
		break;
	}
	case TOK_DIAL: {
		struct rn_dial *d = idx < RN_MAX_DIALS ? &rn->dials[idx] : NULL;

		if (!d || d->conn != conn || d->st != D_DIALING)
			break;
		if (err || !st_add(rn, conn, sid, RC_CONNECT_OUT, idx)) {
			d->st = D_FAILED;
			d->err = err ? err : -ENOSPC;
			pthread_cond_broadcast(&rn->cv);
			break;
		}
		d->st = D_WAIT;
		m.type = RELAY_MSG_CONNECT;
		memcpy(m.key, d->target, RELAY_KEY_LEN);
		send_msg(rn, conn, sid, &m, 0);
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
	s = st_find(rn, conn, sid);
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
	u = use_by_conn(rn, conn);
	d = dial_by_conn(rn, conn);
	if (u && u->st == U_DIALING) {
		if (!err && peer_key && !u->have_key) {
			memcpy(u->key, peer_key, RELAY_KEY_LEN);
			u->have_key = 1;
		}
		if (err) {
			use_lost(rn, u, 1);
		} else {
			u->st = U_OPENING;
			if (quic_node_stream_open(rn->o.quic, conn, RELAY_ST_CTL,
						  TOK_USE | (uint64_t)(u - rn->use)))
				use_lost(rn, u, 1);
		}
	} else if (d && d->st == D_DIALING) {
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
	st_drop_conn(rn, conn);
	u = use_by_conn(rn, conn);
	if (u) {
		if (u->st == U_HELD)
			log_warn("relay", "reservation with %s lost (connection closed)", u->target);
		use_lost(rn, u, 0);
	}
	d = dial_by_conn(rn, conn);
	if (d && (d->st == D_DIALING || d->st == D_WAIT)) {
		d->st = D_FAILED;
		d->err = info && info->reason == QUIC_CLOSE_IDLE ? -ETIMEDOUT : -ECONNRESET;
		pthread_cond_broadcast(&rn->cv);
	}
	unlock(rn);
}

static const struct quic_node_handler rn_handler = {
	.connected = cb_connected,
	.stream_opened = cb_opened,
	.stream_data = cb_data,
	.stream_closed = cb_stream_closed,
	.closed = cb_closed,
	.release = rn_release,
};

/* ------------------------------------------------------------ timer */

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

static void announce_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct relay_node *rn = arg;

	rn->announces++;
	dht_announce(dht, rn->ih, rn->o.quic_port, 0, now, announce_done, rn);
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
		unsigned int k, slot = rn->nuse;

		if (io_addr_from_sockaddr(&a, (const struct sockaddr *)&res->peers[i],
					  sizeof(res->peers[i])))
			continue;
		for (k = 0; k < rn->nuse; k++) {
			if (rn->use[k].dead && slot == rn->nuse)
				slot = k;
			if (!rn->use[k].dead && rn->use[k].addr.family == a.family &&
			    rn->use[k].addr.port == a.port &&
			    !memcmp(rn->use[k].addr.addr, a.addr, sizeof(a.addr)))
				break;
		}
		if (k < rn->nuse || slot >= RELAY_MAX_USE)
			continue;
		k = slot;
		memset(&rn->use[k], 0, sizeof(rn->use[k]));
		rn->use[k].addr = a;
		rn->use[k].discovered = 1;
		snprintf(rn->use[k].target, sizeof(rn->use[k].target), "%s",
			 io_addr_fmt(&a, buf, sizeof(buf)));
		if (k == rn->nuse)
			rn->nuse++;
		rn->discovered++;
		rn->discover_gap_ms = 0; /* found: look again quickly if it fails */
		log_info("relay", "relay found in the DHT: %s", rn->use[k].target);
	}
	unlock(rn);
}

static void discover_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct relay_node *rn = arg;

	dht_get_peers(dht, rn->ih, now, discover_done, rn);
}

static int held_any(struct relay_node *rn)
{
	for (unsigned int i = 0; i < rn->nuse; i++)
		if (rn->use[i].st == U_HELD)
			return 1;
	return 0;
}

static int want_reserve(struct relay_node *rn)
{
	if (rn->o.reserve >= 0)
		return rn->o.reserve;
	return conn_node_behind_nat(rn->o.conn);
}

static void tick(struct engine_worker *w, void *arg)
{
	struct relay_node *rn = arg;
	uint64_t now = now_ms(rn);
	int want;

	if (atomic_load(&rn->freeing))
		return;
	want = want_reserve(rn);
	lock(rn);
	/* relay side */
	relay_tab_expire(rn->tab, now);
	for (unsigned int i = 0; i < RN_MAX_PENDING; i++)
		if (rn->pending[i].used && now >= rn->pending[i].deadline_ms)
			offer_done(rn, &rn->pending[i], RELAY_E_TIMEOUT);
	/* client side: keep the reservations */
	for (unsigned int i = 0; i < rn->nuse; i++) {
		struct rn_use *u = &rn->use[i];
		struct relay_msg m = { .type = RELAY_MSG_RESERVE };

		if (u->dead)
			continue;
		if (!want && u->st != U_IDLE) {
			use_lost(rn, u, 1);
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
			use_lost(rn, u, 1);
			continue;
		}
		if (u->st == U_HELD && u->answered && now - u->refreshed_ms >= RELAY_REFRESH_MS) {
			u->refreshed_ms = now;
			u->answered = 0;
			send_msg(rn, u->conn, u->sid, &m, 0);
		}
	}
	/* a relay announces itself; a node that wants a relay and has none
	 * configured looks for them */
	if (rn->o.dht && rn->fwd && now >= rn->next_announce_ms) {
		rn->next_announce_ms = now + RN_ANNOUNCE_RETRY_MS;
		node_dht_run(rn->o.dht, announce_fn, rn);
	}
	if (rn->o.dht && want && !rn->fwd && !rn->o.nuse && !held_any(rn) &&
	    now >= rn->next_discover_ms) {
		rn->discover_gap_ms = rn->discover_gap_ms ? rn->discover_gap_ms * 2 : RN_DISCOVER_MIN_MS;
		if (rn->discover_gap_ms > RN_DISCOVER_MAX_MS)
			rn->discover_gap_ms = RN_DISCOVER_MAX_MS;
		rn->next_discover_ms = now + rn->discover_gap_ms;
		node_dht_run(rn->o.dht, discover_fn, rn);
	}
	for (unsigned int i = 0; i < RN_MAX_BINDS; i++) {
		struct rn_bind *b = &rn->binds[i];

		bind_step(rn, b, now);
		if (b->used && b->done && !b->waited)
			b->used = 0; /* a holder's bind: nobody waits for it */
	}
	unlock(rn);
	engine_timer_add(w, &rn->timer, RN_TICK_MS);
}

static void start_cmd(struct engine_worker *w, void *arg)
{
	struct relay_node *rn = arg;

	engine_timer_add(w, &rn->timer, 0);
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

int relay_node_circuit(struct relay_node *rn, const uint8_t relay_key[RELAY_KEY_LEN],
		       const struct io_addr *relay_addr, const uint8_t target[RELAY_KEY_LEN],
		       struct io_addr *out, unsigned int *status)
{
	struct sockaddr_storage ss;
	struct timespec dl;
	struct rn_dial *d = NULL;
	struct rn_bind *b;
	struct relay_msg m;
	uint64_t conn = 0;
	int l, err = 0;

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
	memcpy(d->target, target, RELAY_KEY_LEN);
	/* The lock is held across the dial: its callbacks wait for d->conn. */
	err = quic_node_connect_addr(rn->o.quic, (struct sockaddr *)&ss, (socklen_t)l, relay_key,
				     &rn_handler, rn, &conn);
	if (err) {
		d->st = D_FREE;
		unlock(rn);
		return err == -ENETUNREACH ? -EHOSTUNREACH : err;
	}
	d->conn = conn;
	deadline_in(&dl, RN_DIAL_MS);
	while (d->st == D_DIALING || d->st == D_WAIT)
		if (pthread_cond_timedwait(&rn->cv, &rn->mu, &dl) == ETIMEDOUT)
			break;
	if (d->st == D_DONE) {
		m = d->m;
	} else {
		err = d->st == D_FAILED ? d->err : -ETIMEDOUT;
		if (err == -ECONNREFUSED || err == -ETIMEDOUT || err == -ECONNRESET)
			err = -EHOSTUNREACH; /* the relay itself did not answer */
	}
	st_drop_conn(rn, conn);
	d->st = D_FREE;
	unlock(rn);
	quic_node_close(rn->o.quic, conn, 0);
	if (err)
		return err;
	if (m.status != RELAY_OK) {
		if (status)
			*status = m.status;
		return m.status == RELAY_E_TIMEOUT ? -ETIMEDOUT : -ECONNREFUSED;
	}
	/* Bind our end from the QUIC socket, and wait for the answer. */
	*out = *relay_addr;
	out->port = m.port;
	lock(rn);
	b = bind_start(rn, out, m.token);
	if (!b) {
		unlock(rn);
		return -EBUSY;
	}
	b->waited = 1;
	bind_step(rn, b, now_ms(rn));
	deadline_in(&dl, RELAY_DEF_BIND_MS + 2 * RN_TICK_MS);
	while (!b->done)
		if (pthread_cond_timedwait(&rn->cv, &rn->mu, &dl) == ETIMEDOUT)
			break;
	err = b->done == 1 ? 0 : -ETIMEDOUT;
	if (!b->done)
		rn->binds_failed++;
	b->used = 0;
	if (!err)
		rn->dials_ok++;
	unlock(rn);
	sodium_memzero(&m, sizeof(m));
	return err;
}

/* ------------------------------------------------------------ control API */

static json_t *key_json(const uint8_t *k)
{
	char hex[2 * RELAY_KEY_LEN + 1];

	util_hex(hex, k, RELAY_KEY_LEN);
	return json_string(hex);
}

static json_t *status_json(struct relay_node *rn)
{
	json_t *o = json_object(), *held = json_array(), *lim, *ref = json_object();
	uint64_t now = now_ms(rn);
	char buf[64];

	lock(rn);
	for (unsigned int i = 0; i < rn->nuse; i++) {
		struct rn_use *u = &rn->use[i];

		json_array_append_new(
		    held, json_pack("{s:s,s:s,s:o,s:s,s:I,s:I,s:I,s:s}", "relay", u->target, "addr",
				    io_addr_fmt(&u->addr, buf, sizeof(buf)), "key", key_json(u->key),
				    "state", use_names[u->st], "expires_in_s",
				    (json_int_t)(u->st == U_HELD && u->expires_ms > now
						     ? (u->expires_ms - now) / 1000
						     : 0),
				    "taken", (json_int_t)u->taken, "lost", (json_int_t)u->lost,
				    "last_status", relay_status_name(u->last_status)));
		json_object_set_new(json_array_get(held, json_array_size(held) - 1), "source",
				    json_string(u->dead ? "dht (dropped)"
						: u->discovered ? "dht"
								: "config"));
	}
	for (unsigned int i = 1; i < RELAY_E__MAX; i++)
		json_object_set_new(ref, relay_status_name(i),
				    json_integer((json_int_t)rn->circuits_refused[i]));
	lim = json_pack("{s:i,s:i,s:i,s:i,s:i,s:I,s:i}", "max_reservations",
			(int)rn->o.tab.max_reservations, "circuits_per_reservation",
			(int)rn->o.tab.circuits_per_res, "reservations_per_addr",
			(int)rn->o.tab.reservations_per_addr, "reservation_ttl_s",
			(int)rn->o.tab.ttl_s, "churn_max", (int)rn->o.tab.churn_max,
			"circuit_bytes", (json_int_t)rn->o.circuit_bytes, "circuit_lifetime_ms",
			(int)rn->o.circuit_lifetime_ms);
	json_object_set_new(o, "enabled", json_boolean(rn->fwd != NULL));
	json_object_set_new(o, "reservations", json_integer(relay_tab_count(rn->tab)));
	json_object_set_new(o, "limits", lim);
	json_object_set_new(
	    o, "counters",
	    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		      "reserves", (json_int_t)rn->reserves_ok, "reserves_refused",
		      (json_int_t)rn->reserves_refused, "refreshes", (json_int_t)rn->refreshes,
		      "expired", (json_int_t)relay_tab_expired(rn->tab), "churn_bans", (json_int_t)rn->churn_bans,
		      "connects", (json_int_t)rn->connects, "circuits", (json_int_t)rn->circuits_ok,
		      "refused", ref, "ended_lifetime", (json_int_t)rn->ended_by[RELAY_END_LIFETIME],
		      "ended_idle", (json_int_t)rn->ended_by[RELAY_END_IDLE], "ended_bytes",
		      (json_int_t)rn->ended_by[RELAY_END_BYTES], "ended_deleted",
		      (json_int_t)rn->ended_by[RELAY_END_DELETED], "offers",
		      (json_int_t)rn->offers_in, "offers_accepted", (json_int_t)rn->offers_accepted,
		      "offers_refused", (json_int_t)rn->offers_refused, "binds_ok",
		      (json_int_t)rn->binds_ok, "binds_failed", (json_int_t)rn->binds_failed,
		      "dials", (json_int_t)rn->dials_total, "dials_ok", (json_int_t)rn->dials_ok));
	json_object_set_new(o, "use", held);
	/* Holder: circuits towards us that our relays ended (ENDED), by reason. */
	json_object_set_new(o, "ended_by_relay",
			    json_pack("{s:I,s:I,s:I,s:I}", relay_end_name(RELAY_END_DELETED),
				      (json_int_t)rn->ended_seen[RELAY_END_DELETED],
				      relay_end_name(RELAY_END_LIFETIME),
				      (json_int_t)rn->ended_seen[RELAY_END_LIFETIME],
				      relay_end_name(RELAY_END_IDLE),
				      (json_int_t)rn->ended_seen[RELAY_END_IDLE],
				      relay_end_name(RELAY_END_BYTES),
				      (json_int_t)rn->ended_seen[RELAY_END_BYTES]));
	json_object_set_new(o, "reserve", json_string(rn->o.reserve < 0   ? "auto"
						      : rn->o.reserve ? "always"
								      : "never"));
	json_object_set_new(o, "accept", json_boolean(rn->o.accept));
	json_object_set_new(o, "dht", json_pack("{s:I,s:I,s:I}", "announces", (json_int_t)rn->announces,
						"announces_stored", (json_int_t)rn->announces_stored,
						"relays_found", (json_int_t)rn->discovered));
	unlock(rn);
	return o;
}

static void api_status(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct relay_node *rn = arg;
	json_t *o = status_json(rn);

	(void)req;
	if (rn->fwd) {
		struct relay_fwd_totals t;

		relay_fwd_totals(rn->fwd, &t);
		json_object_set_new(
		    o, "data_plane",
		    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "circuits",
			      (json_int_t)t.circuits, "added", (json_int_t)t.added, "ended",
			      (json_int_t)t.ended, "binds_ok", (json_int_t)t.binds_ok, "binds_bad",
			      (json_int_t)t.binds_bad, "drop_unknown", (json_int_t)t.drop_unknown,
			      "user_pkts", (json_int_t)t.user_pkts, "user_bytes",
			      (json_int_t)t.user_bytes, "user_drops", (json_int_t)t.user_drops));
	}
	ctl_resp_json(resp, 200, o);
}

static void api_reservations(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct relay_node *rn = arg;
	json_t *a = json_array();
	uint64_t now = now_ms(rn);
	char buf[64];

	(void)req;
	lock(rn);
	relay_tab_expire(rn->tab, now);
	for (unsigned int i = 0; i < relay_tab_count(rn->tab); i++) {
		const struct relay_res *r = relay_tab_get(rn->tab, i);

		json_array_append_new(
		    a, json_pack("{s:o,s:s,s:I,s:I,s:i,s:I}", "key", key_json(r->key), "addr",
				 io_addr_fmt(&r->addr, buf, sizeof(buf)), "age_s",
				 (json_int_t)((now - r->created_ms) / 1000), "expires_in_s",
				 (json_int_t)((r->expires_ms - now) / 1000), "circuits",
				 (int)r->circuits, "circuits_total", (json_int_t)r->circuits_total));
	}
	unlock(rn);
	ctl_resp_json(resp, 200, json_pack("{s:b,s:o}", "enabled", rn->fwd != NULL,
					   "reservations", a));
}

static void api_circuits(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct relay_node *rn = arg;
	json_t *o, *c;
	size_t i;

	(void)req;
	if (!rn->fwd) {
		ctl_resp_json(resp, 200,
			      json_pack("{s:b,s:[]}", "enabled", 0, "circuits"));
		return;
	}
	o = relay_fwd_json(rn->fwd);
	if (!o) {
		ctl_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	/* Who each circuit joins, from the control plane's side. */
	lock(rn);
	json_array_foreach(json_object_get(o, "circuits"), i, c) {
		uint64_t id = (uint64_t)json_integer_value(json_object_get(c, "id"));

		for (unsigned int k = 0; k < rn->ncircs; k++)
			if (rn->circs[k].used && rn->circs[k].id == id) {
				json_object_set_new(c, "dialler", key_json(rn->circs[k].dkey));
				json_object_set_new(c, "target", key_json(rn->circs[k].tkey));
			}
	}
	unlock(rn);
	json_object_set_new(o, "enabled", json_true());
	ctl_resp_json(resp, 200, o);
}

/* POST /v1/relay/connect {"relay": "KEY@ADDR", "target": KEY}: ask the
 * relay for a circuit to target and bind our end (what dial by key does
 * when only the relay answers); for operators and tests. */
static void api_connect(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct relay_node *rn = arg;
	const char *via = req->json ? json_string_value(json_object_get(req->json, "relay")) : NULL;
	const char *tgt = req->json ? json_string_value(json_object_get(req->json, "target")) : NULL;
	uint8_t rkey[RELAY_KEY_LEN], tkey[RELAY_KEY_LEN];
	struct sockaddr_storage ss;
	struct io_addr ra, out;
	unsigned int st = 0;
	socklen_t sl;
	char buf[64];
	int have = 0, err;

	if (!via || !tgt || quic_node_parse_target(via, 4433, rkey, &have, &ss, &sl) || !have ||
	    io_addr_from_sockaddr(&ra, (struct sockaddr *)&ss, sl) || strlen(tgt) != 64 ||
	    util_unhex(tkey, sizeof(tkey), tgt)) {
		ctl_resp_error(resp, 400, "bad_request",
			       "want {\"relay\": \"KEY@ADDR:PORT\", \"target\": KEY}");
		return;
	}
	err = relay_node_circuit(rn, rkey, &ra, tkey, &out, &st);
	if (err == -ECONNREFUSED) {
		ctl_resp_error(resp, 502, relay_status_name(st), "the relay refused: %s",
			       relay_status_name(st));
		return;
	}
	if (err == -EHOSTUNREACH || err == -ETIMEDOUT) {
		ctl_resp_error(resp, 502, "unreachable", "%s",
			       err == -ETIMEDOUT ? "no circuit or bind within the deadline"
						 : "the relay did not answer");
		return;
	}
	if (err) {
		ctl_resp_errno(resp, err, "relay circuit");
		return;
	}
	ctl_resp_json(resp, 200, json_pack("{s:s}", "addr", io_addr_fmt(&out, buf, sizeof(buf))));
}

static void metrics(void *arg, FILE *out)
{
	struct relay_node *rn = arg;
	unsigned int held = 0;

	lock(rn);
	for (unsigned int i = 0; i < rn->nuse; i++)
		held += rn->use[i].st == U_HELD;
	fprintf(out,
		"# HELP weft_relay_reservations Reservations this relay holds for other nodes.\n"
		"# TYPE weft_relay_reservations gauge\nweft_relay_reservations %u\n"
		"# HELP weft_relay_reservations_total Reservations taken (refreshes not counted).\n"
		"# TYPE weft_relay_reservations_total counter\n"
		"weft_relay_reservations_total %llu\n"
		"# HELP weft_relay_reservations_refused_total Reservations refused by a limit.\n"
		"# TYPE weft_relay_reservations_refused_total counter\n"
		"weft_relay_reservations_refused_total %llu\n"
		"# HELP weft_relay_circuits_total Circuits granted by this relay.\n"
		"# TYPE weft_relay_circuits_total counter\nweft_relay_circuits_total %llu\n"
		"# HELP weft_relay_circuit_refusals_total Circuit requests refused, by reason.\n"
		"# TYPE weft_relay_circuit_refusals_total counter\n",
		relay_tab_count(rn->tab), (unsigned long long)rn->reserves_ok,
		(unsigned long long)rn->reserves_refused, (unsigned long long)rn->circuits_ok);
	for (unsigned int i = 1; i < RELAY_E__MAX; i++)
		fprintf(out, "weft_relay_circuit_refusals_total{reason=\"%s\"} %llu\n",
			relay_status_name(i), (unsigned long long)rn->circuits_refused[i]);
	fprintf(out,
		"# HELP weft_relay_held Relays holding a reservation for this node.\n"
		"# TYPE weft_relay_held gauge\nweft_relay_held %u\n"
		"# HELP weft_relay_binds_total Circuit ends of this node bound, by result.\n"
		"# TYPE weft_relay_binds_total counter\n"
		"weft_relay_binds_total{result=\"ok\"} %llu\n"
		"weft_relay_binds_total{result=\"failed\"} %llu\n",
		held, (unsigned long long)rn->binds_ok, (unsigned long long)rn->binds_failed);
	unlock(rn);
	if (rn->fwd) {
		struct relay_fwd_totals t;

		relay_fwd_totals(rn->fwd, &t);
		fprintf(out,
			"# HELP weft_relay_circuits Circuits live in the data plane.\n"
			"# TYPE weft_relay_circuits gauge\nweft_relay_circuits %llu\n"
			"# HELP weft_relay_forwarded_bytes_total Bytes forwarded by userspace.\n"
			"# TYPE weft_relay_forwarded_bytes_total counter\n"
			"weft_relay_forwarded_bytes_total %llu\n",
			(unsigned long long)t.circuits, (unsigned long long)t.user_bytes);
	}
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
	if (o->ctl) {
		ctl_route(o->ctl, "GET", "/v1/relay/status", api_status, rn);
		ctl_route(o->ctl, "GET", "/v1/relay/reservations", api_reservations, rn);
		ctl_route(o->ctl, "GET", "/v1/relay/circuits", api_circuits, rn);
		ctl_route(o->ctl, "POST", "/v1/relay/connect", api_connect, rn);
		ctl_metrics(o->ctl, metrics, rn);
	}
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
	if (rn)
		atomic_store(&rn->freeing, 1);
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
		fwd_on_end(arg, id, reason);
}
