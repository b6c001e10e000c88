// SPDX-License-Identifier: MIT
/*
 * The relay side of the relay control plane (docs/CONNECTIVITY.md, "Relay"):
 * reservations, CONNECT -> OFFER -> ANSWER -> CIRCUIT, and circuits ended
 * by the data plane (ENDED to both ends), flooding ends. Called by the hub
 * with rn->mu held, but for relay_node_fwd_end and rn_flood_check, which
 * take it.
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "weft/guard.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/relay.h"
#include "weft/relay_fwd.h"
#include "weft/util.h"

#include "relay_node_int.h"

static void send_circuit_status(struct relay_node *rn, uint64_t conn, int64_t sid,
				unsigned int status)
{
	struct relay_msg m = { .type = RELAY_MSG_CIRCUIT, .status = (uint8_t)status };

	if (status < RELAY_E__MAX)
		rn->circuits_refused[status]++;
	rn_send_msg(rn, conn, sid, &m, 1);
}


/* ------------------------------------------------------------ relay side */

void rn_on_reserve(struct relay_node *rn, struct rn_stream *s)
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
				 log_addr(io_addr_fmt(&a, buf, sizeof(buf)), buf, sizeof(buf)),
				 RN_BAN_S);
			guard_ban_addr(rn->o.guard, a.family, a.addr, RN_BAN_S);
		}
	}
	rn_send_msg(rn, s->conn, s->sid, &m, m.status != RELAY_OK);
	if (m.status != RELAY_OK)
		s->used = 0;
}

void rn_on_connect(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *req)
{
	struct sockaddr_storage ss;
	struct relay_res *r;
	struct rn_pending *p = NULL;
	uint8_t dkey[RELAY_KEY_LEN];
	unsigned int i;
	int st;

	rn->connects++;
	log_debug("relay", "relay: CONNECT");
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
	if (io_addr_from_sockaddr(&p->daddr, (struct sockaddr *)&ss, sizeof(ss)))
		memset(&p->daddr, 0, sizeof(p->daddr));
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

void rn_offer_opened(struct relay_node *rn, uint64_t idx, uint64_t conn, int64_t sid, int err)
{
	struct rn_pending *p = idx < RN_MAX_PENDING ? &rn->pending[idx] : NULL;
	struct relay_msg m = { .type = RELAY_MSG_OFFER };

	if (!p || !p->used || p->tconn != conn)
		return;
	if (err || !rn_st_add(rn, conn, sid, RS_OFFER_OUT, idx)) {
		rn_offer_done(rn, p, RELAY_E_NO_CAPACITY);
		return;
	}
	p->tsid = sid;
	memcpy(m.key, p->dkey, RELAY_KEY_LEN);
	m.circuit = idx;
	rn_send_msg(rn, conn, sid, &m, 0);
}

int rn_on_answer(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m)
{
	if (m->type != RELAY_MSG_ANSWER || s->ref >= RN_MAX_PENDING || !rn->pending[s->ref].used)
		return 0;
	s->used = 0;
	rn_offer_done(rn, &rn->pending[s->ref], m->status == RELAY_OK ? RELAY_OK : RELAY_E_REFUSED);
	return 1;
}

/* The holder answered offer p (or did not in time: status TIMEOUT). */
void rn_offer_done(struct relay_node *rn, struct rn_pending *p, unsigned int status)
{
	struct relay_fwd_limits lim = { .max_bytes = rn->o.circuit_bytes,
					.lifetime_ms = rn->o.circuit_lifetime_ms,
					.hold_binds = 1 };
	struct relay_msg a = { .type = RELAY_MSG_CIRCUIT }, b;
	struct rn_circ *c = NULL;
	struct rn_stream *ds;
	uint8_t tok_a[RELAY_TOKEN_LEN], tok_b[RELAY_TOKEN_LEN];
	uint64_t id = 0;
	uint16_t port = 0;
	unsigned int i;
	int err;

	log_debug("relay", "relay: answer %u", status);
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
	c->dconn = p->dconn;
	c->dsid = p->dsid;
	c->daddr = p->daddr;
	rn->circuits_ok++;
	a.port = port;
	a.circuit = id;
	a.lifetime_ms = rn->o.circuit_lifetime_ms;
	a.max_bytes = rn->o.circuit_bytes;
	b = a;
	memcpy(a.token, tok_a, RELAY_TOKEN_LEN);
	memcpy(b.token, tok_b, RELAY_TOKEN_LEN);
	rn_send_msg(rn, p->tconn, p->tsid, &b, 1);
	/* The dialler's stream stays open (no FIN): ENDED goes there when
	 * the circuit ends. Its table entry is freed: nothing more is read. */
	rn_send_msg(rn, p->dconn, p->dsid, &a, 0);
	ds = rn_st_find(rn, p->dconn, p->dsid);
	if (ds)
		ds->used = 0;
	p->used = 0;
	sodium_memzero(tok_a, sizeof(tok_a));
	sodium_memzero(tok_b, sizeof(tok_b));
}

/* Tell both ends of circuit c why it ended: ENDED on the holder's
 * reservation stream (the one stream the relay holds open towards it) and
 * on the dialler's CONNECT stream (kept open since CIRCUIT), with FIN. */
static void ended_notify(struct relay_node *rn, struct rn_circ *c, int reason)
{
	struct relay_msg m = { .type = RELAY_MSG_ENDED, .circuit = c->id, .port = c->port };
	struct relay_res *r = relay_tab_find(rn->tab, c->tkey, now_ms(rn));

	if (reason <= 0 || reason > RELAY_ENDED_MAX)
		return;
	m.reason = (uint8_t)reason;
	rn_send_msg(rn, c->dconn, c->dsid, &m, 1);
	if (!r)
		return;
	for (unsigned int i = 0; i < rn->nstreams; i++)
		if (rn->streams[i].used && rn->streams[i].role == RS_RES_IN &&
		    rn->streams[i].conn == r->conn) {
			rn_send_msg(rn, r->conn, rn->streams[i].sid, &m, 0);
			return;
		}
}

/* relay_fwd's on_end: the data plane ended circuit id (its sweep on
 * worker 0, or relay_fwd_del). */
void relay_node_fwd_end(void *arg, uint64_t id, int reason)
{
	struct relay_node *rn = arg;

	if (!rn || atomic_load(&rn->freeing))
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

static int same_addr(const struct io_addr *a, const struct io_addr *b)
{
	return a->family && a->family == b->family && a->port == b->port &&
	       !memcmp(a->addr, b->addr, sizeof(a->addr));
}

/* Circuit c has a flooding end (e: 0 dialler, 1 holder) at addr: end the
 * circuit, and ban the address when it is the one its party's QUIC
 * connection proved it owns (a handshake completed from it); any other
 * source (forged, or a NAT that maps the circuit elsewhere) only loses
 * the circuit. Lock held: the caller ends the circuit after dropping it. */
static void flood_abuse(struct relay_node *rn, struct rn_circ *c, unsigned int e,
			const struct io_addr *addr)
{
	struct relay_res *r = e ? relay_tab_find(rn->tab, c->tkey, now_ms(rn)) : NULL;
	const struct io_addr *valid = e ? (r ? &r->addr : NULL) : &c->daddr;
	int ban = valid && same_addr(addr, valid) && rn->o.guard;
	char buf[64];

	log_warn("relay", "circuit %llu: the %s at %s floods (%u windows over %u drops/s): %s",
		 (unsigned long long)c->id, e ? "holder" : "dialler",
		 log_addr(io_addr_fmt(addr, buf, sizeof(buf)), buf, sizeof(buf)),
		 RELAY_FLOOD_STRIKES,
		 rn->o.flood_drops ? rn->o.flood_drops : RELAY_DEF_FLOOD_DROPS,
		 ban ? "circuit ended, address banned" : "circuit ended (address not validated)");
	rn->flood_cuts++;
	if (ban) {
		rn->flood_bans++;
		guard_ban_addr(rn->o.guard, addr->family, addr->addr, RN_BAN_S);
	}
}

void rn_flood_check(struct relay_node *rn, uint64_t now)
{
	struct relay_fwd_stats st;
	uint64_t *cut = NULL, *more;
	size_t ncut = 0, cap = 0;

	lock(rn);
	if (!rn->fwd || now < rn->next_flood_ms) {
		unlock(rn);
		return;
	}
	rn->next_flood_ms = now + RELAY_FLOOD_WINDOW_MS;
	for (unsigned int i = 0; i < rn->ncircs; i++) {
		struct rn_circ *c = &rn->circs[i];

		if (!c->used || relay_fwd_stats(rn->fwd, c->id, &st))
			continue;
		for (unsigned int e = 0; e < 2; e++) {
			if (!st.end[e].bound ||
			    !relay_flood_step(&c->flood[e], st.end[e].drops, st.end[e].pkts,
					      rn->o.flood_drops))
				continue;
			if (ncut == cap) {
				more = realloc(cut, (cap ? 2 * cap : 16) * sizeof(*cut));
				if (!more)
					break; /* no memory: it floods again next window */
				cut = more;
				cap = cap ? 2 * cap : 16;
			}
			flood_abuse(rn, c, e, &st.end[e].addr);
			cut[ncut++] = c->id;
			break; /* the circuit ends: its other end does not count */
		}
	}
	unlock(rn);
	/* on_end (relay_node_fwd_end) tells both ends and frees the slots. */
	for (size_t i = 0; i < ncut; i++)
		relay_fwd_del(rn->fwd, cut[i]);
	free(cut);
}
