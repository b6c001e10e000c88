// SPDX-License-Identifier: MIT
/*
 * The holder side of the relay control plane (docs/CONNECTIVITY.md,
 * "Relay"): the reservations we keep with our relays (dial, RESERVE,
 * refresh, lost, listed in our node record) and the offers we accept
 * (ANSWER, then our end of the circuit binds). Called by the hub with
 * rn->mu held.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "weft/conn.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/relay.h"

#include "relay_node_int.h"

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

/* ------------------------------------------------------------ reservation events */

void rn_use_connected(struct relay_node *rn, struct rn_use *u, uint64_t conn, int err,
		      const uint8_t *peer_key)
{
	if (u->st != U_DIALING)
		return;
	if (!err && peer_key && !u->have_key) {
		memcpy(u->key, peer_key, RELAY_KEY_LEN);
		u->have_key = 1;
	}
	if (err) {
		rn_use_lost(rn, u, 1);
		return;
	}
	u->st = U_OPENING;
	if (quic_node_stream_open(rn->o.quic, conn, RELAY_ST_CTL,
				  TOK_USE | (uint64_t)(u - rn->use)))
		rn_use_lost(rn, u, 1);
}

void rn_use_opened(struct relay_node *rn, uint64_t idx, uint64_t conn, int64_t sid, int err)
{
	struct rn_use *u = idx < rn->nuse ? &rn->use[idx] : NULL;
	struct relay_msg m = { .type = RELAY_MSG_RESERVE };

	if (!u || u->conn != conn || u->st != U_OPENING)
		return;
	if (err || !rn_st_add(rn, conn, sid, RC_RES_OUT, idx)) {
		rn_use_lost(rn, u, 1);
		return;
	}
	u->sid = sid;
	u->st = U_WAIT;
	u->refreshed_ms = now_ms(rn);
	u->answered = 0;
	rn_send_msg(rn, conn, sid, &m, 0);
}

void rn_use_closed(struct relay_node *rn, struct rn_use *u)
{
	char lb[128];

	if (u->st == U_HELD)
		log_warn("relay", "reservation with %s lost (connection closed)",
			 log_addr(u->target, lb, sizeof(lb)));
	rn_use_lost(rn, u, 0);
}

int rn_on_use_msg(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m)
{
	struct rn_use *u = s->ref < rn->nuse ? &rn->use[s->ref] : NULL;
	char lb[128];

	if (m->type == RELAY_MSG_ENDED && u && u->conn == s->conn) {
		struct io_addr via = u->addr;

		via.port = m->port;
		rn_circuit_ended(rn, u->target, &via, m);
		return 1;
	}
	if (m->type != RELAY_MSG_RESERVED || !u || u->conn != s->conn)
		return 0;
	u->last_status = m->status;
	if (m->status != RELAY_OK) {
		log_warn("relay", "relay %s refused the reservation: %s",
			 log_addr(u->target, lb, sizeof(lb)),
			 relay_status_name(m->status));
		rn_use_lost(rn, u, 1);
		return 1;
	}
	if (u->st != U_HELD) {
		u->taken++;
		log_info("relay", "reservation held with %s (%u s)",
			 log_addr(u->target, lb, sizeof(lb)), m->ttl_s);
		/* The refreshes (RELAY_REFRESH_MS) keep the connection up
		 * only under an idle timeout longer than them: PINGs too
		 * (at most half the idle timeout in effect). */
		quic_node_keepalive(rn->o.quic, u->conn, RN_OUT_KEEPALIVE_MS);
	}
	u->st = U_HELD;
	u->answered = 1;
	u->expires_ms = now_ms(rn) + m->ttl_s * 1000ULL;
	rn_publish_relays(rn);
	return 1;
}

/* ------------------------------------------------------------ offers */

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
	/* The ANSWER is all we send on the offer's stream: our side ends
	 * with it (FIN), accepted or not, and the relay's CIRCUIT (or bare
	 * FIN) ends the other. Without it the stream stayed open at both
	 * ends for the reservation's life, one per dial by key. */
	rn_send_msg(rn, s->conn, s->sid, &a, 1);
	if (!rn->o.accept)
		s->used = 0;
}

/* The relay granted the circuit we accepted: bind our end. */
void rn_on_circuit_holder(struct relay_node *rn, struct rn_stream *s, const struct relay_msg *m)
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

/* ------------------------------------------------------------ keeper */

void rn_use_keep(struct relay_node *rn, uint64_t now, int want)
{
	char lb[128];

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
			/* With the lock held: connected() waits for u->conn. */
			u->st = U_DIALING;
			if (quic_node_connect(rn->o.quic, u->target, rn->qh, rn, &u->conn)) {
				u->st = U_IDLE;
				u->next_try_ms = now + RN_RETRY_MS;
			}
			continue;
		}
		if ((u->st == U_HELD || u->st == U_WAIT) && !u->answered &&
		    now - u->refreshed_ms >= RN_DIAL_MS) {
			/* Our RESERVE went unanswered: the relay or the path is gone. */
			log_warn("relay", "reservation with %s: no answer in %u s",
				 log_addr(u->target, lb, sizeof(lb)),
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
