// SPDX-License-Identifier: MIT
/*
 * Shared helpers of the relay control plane, below the hub and every part
 * (relay_node_int.h): the stream table, sending a message on a stream,
 * finding the slot a connection belongs to, dialling a connection for a
 * part without the lock, and what our side does with an ENDED. Nothing
 * here calls another file of the module.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/relay.h"

#include "relay_node_int.h"

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

/* ------------------------------------------------------------ slots by connection */

struct rn_use *rn_use_by_conn(struct relay_node *rn, uint64_t conn)
{
	for (unsigned int i = 0; i < rn->nuse; i++)
		if (rn->use[i].st != U_IDLE && rn->use[i].conn == conn)
			return &rn->use[i];
	return NULL;
}

/* Handles are never 0 (quic_node numbers them from 1): a slot whose
 * connect call runs (conn 0) matches no event. */
struct rn_dial *rn_dial_by_conn(struct relay_node *rn, uint64_t conn)
{
	for (unsigned int i = 0; conn && i < RN_MAX_DIALS; i++)
		if (rn->dials[i].st != D_FREE && rn->dials[i].conn == conn)
			return &rn->dials[i];
	return NULL;
}

/* ------------------------------------------------------------ dialling unlocked */

int rn_connect(struct relay_node *rn, const struct io_addr *addr, const uint8_t *key,
	       uint64_t *conn)
{
	struct sockaddr_storage ss;
	int l = io_addr_to_sockaddr(addr, addr->family, &ss), err;

	rn->connecting++;
	if (l <= 0)
		return -EINVAL;
	/* quic_node gives the handle before the dial runs, but its events
	 * may come on the connection's worker before we record it: they
	 * wait in rn_conn_settle until rn_conn_recorded. */
	unlock(rn);
	err = quic_node_connect_addr(rn->o.quic, (struct sockaddr *)&ss, (socklen_t)l, key,
				     rn->qh, rn, conn);
	lock(rn);
	return err;
}

void rn_conn_recorded(struct relay_node *rn)
{
	if (rn->connecting && !--rn->connecting)
		pthread_cond_broadcast(&rn->cv);
}

void rn_conn_settle(struct relay_node *rn, uint64_t conn)
{
	/* Bounded: the connecting thread takes the lock again right after
	 * its quic_node call returns (which only queues a command). */
	while (rn->connecting && !rn_use_by_conn(rn, conn) && !rn_dial_by_conn(rn, conn))
		pthread_cond_wait(&rn->cv, &rn->mu);
}

/* ------------------------------------------------------------ ENDED */

void rn_circuit_ended(struct relay_node *rn, const char *relay, const struct io_addr *via,
		      const struct relay_msg *m)
{
	char why[64], lb[128];

	log_warn("relay", "relay %s ended circuit %llu (port %u): %s",
		 log_addr(relay, lb, sizeof(lb)),
		 (unsigned long long)m->circuit, m->port, relay_end_name(m->reason));
	rn->ended_seen[m->reason]++;
	/* Our QUIC connection through relay:PORT is dead: end it now with
	 * the reason, rather than let its callers wait for the idle timeout. */
	snprintf(why, sizeof(why), "relay_circuit_ended: %s", relay_end_name(m->reason));
	quic_node_close_peer(rn->o.quic, via, QUIC_NODE_APP_RELAY_ENDED | m->reason, why);
}
