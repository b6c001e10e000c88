// SPDX-License-Identifier: MIT
/*
 * Commands about the connections of one peer: quic_node_close_peer()
 * closes the connections of one peer address on every worker, with an
 * application close code and reason phrase, and quic_node_keepalive() sets
 * one connection's keep-alive. The relay's circuit ends use the first
 * (QUIC_NODE_APP_RELAY_ENDED): a connection that ran through relay:PORT is
 * closed with the reason the relay gave, instead of waiting for QUIC's
 * idle timeout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quic/quic_int.h"
#include "quic/quic_node_int.h"

struct qn_close_peer {
	struct quic_node *qn;
	struct io_addr peer;
	uint64_t code;
	char reason[QUIC_CLOSE_REASON_MAX + 1];
};

/* Connections of one peer address closed per call: a relay circuit
 * carries one or two; more are left to their idle timeout. */
#define QN_CLOSE_PEER_MAX 64

static void close_peer_run(struct engine_worker *w, void *arg)
{
	struct qn_close_peer *cp = arg;
	struct quic_node *qn = cp->qn;

	if (!qn_cmd_enter(qn)) {
		struct qn_worker *wk = qn->wk[engine_worker_index(w)];
		uint64_t ids[QN_CLOSE_PEER_MAX];
		struct quic_conn_info in;
		unsigned int n = 0;
		struct io_addr a;

		/* Ids first: a close reports closed() at once, which frees the
		 * connection and may close others. */
		for (struct qn_conn *c = wk->conns; c && n < QN_CLOSE_PEER_MAX; c = c->next) {
			/* On a direct path (hole punching) the connection
			 * no longer needs the relay: it goes on. */
			if (!c->qc || c->qc->direct_len || quic_conn_get_info(c->qc, &in) ||
			    io_addr_from_sockaddr(&a, (struct sockaddr *)&in.remote, in.remote_len))
				continue;
			if (a.family == cp->peer.family && a.port == cp->peer.port &&
			    !memcmp(a.addr, cp->peer.addr, sizeof(a.addr)))
				ids[n++] = c->id;
		}
		for (unsigned int i = 0; i < n; i++) {
			struct qn_conn *c = qn_conn_find(wk, ids[i]);

			if (c && c->qc)
				quic_conn_close(c->qc, cp->code, cp->reason);
		}
	}
	free(cp);
	qn_put(qn);
}

int quic_node_close_peer(struct quic_node *qn, const struct io_addr *peer, uint64_t app_code,
			 const char *reason)
{
	int rc = 0;

	if (!qn || !peer)
		return -EINVAL;
	for (unsigned int i = 0; i < qn->nworkers; i++) {
		struct qn_close_peer *cp = calloc(1, sizeof(*cp));

		if (!cp)
			return -ENOMEM;
		cp->qn = qn;
		cp->peer = *peer;
		cp->code = app_code;
		snprintf(cp->reason, sizeof(cp->reason), "%s", reason ? reason : "");
		if (qn_call(qn, i, close_peer_run, cp)) {
			free(cp);
			rc = -EAGAIN;
		}
	}
	return rc;
}

struct qn_keep {
	struct quic_node *qn;
	uint64_t conn;
	unsigned int ms;
};

static void keep_run(struct engine_worker *w, void *arg)
{
	struct qn_keep *k = arg;
	struct quic_node *qn = k->qn;

	if (!qn_cmd_enter(qn)) {
		struct qn_conn *c = qn_conn_find(qn->wk[engine_worker_index(w)], k->conn);

		if (c && c->qc)
			quic_conn_set_keepalive(c->qc, k->ms);
	}
	free(k);
	qn_put(qn);
}

int quic_node_keepalive(struct quic_node *qn, uint64_t conn, unsigned int ms)
{
	struct qn_keep *k;
	unsigned int worker;

	if (!qn)
		return -EINVAL;
	worker = quic_node_conn_worker(qn, conn);
	if (worker >= qn->nworkers)
		return -EINVAL;
	k = malloc(sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->qn = qn;
	k->conn = conn;
	k->ms = ms;
	if (qn_call(qn, worker, keep_run, k)) {
		free(k);
		return -EAGAIN;
	}
	return 0;
}
