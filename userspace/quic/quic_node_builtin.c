// SPDX-License-Identifier: MIT
/*
 * The stream types the node answers itself: echo, sink and discard (bench
 * and ping peers), and the observed address (QUIC_NODE_ST_OBSERVED: after
 * the handshake each side tells the other the address it sees it at; a
 * match starts hole punching, quic_path.c).
 */
#include <string.h>

#include "quic/quic_node_int.h"

/* What a peer says it sees us at: at most CONN_OBS_MAX bytes, then FIN
 * (answered with FIN). Anything longer or malformed resets the stream. */
static void observed_data(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
			  const uint8_t *data, size_t len, int fin)
{
	struct quic_conn_info ci;
	struct io_addr seen;

	if (len > sizeof(s->obuf) - s->olen) {
		wk->obs_bad++;
		qn_stream_fail(wk, c, s, QN_ERR_OVERRUN);
		return;
	}
	memcpy(s->obuf + s->olen, data, len);
	s->olen += len;
	if (!fin)
		return;
	if (conn_obs_parse(s->obuf, s->olen, &seen) || !c->qc || quic_conn_get_info(c->qc, &ci)) {
		wk->obs_bad++;
		qn_stream_fail(wk, c, s, QN_ERR_BAD_TYPE);
		return;
	}
	wk->obs_rx++;
	/* A connection to ourselves (the service fabric streams to its own
	 * offers that way) sees its own address: not a relayed path to
	 * punch, nor a vote on our public address. */
	if (ci.have_peer_key && !memcmp(ci.peer_key, wk->qn->pk, QUIC_KEY_LEN)) {
		qn_stream_queue(wk, c, s, NULL, 0, 1, 0, NULL);
		return;
	}
	qn_path_observed(wk, c, &ci, &seen);
	if (wk->qn->o.on_observed)
		wk->qn->o.on_observed(wk->qn->o.observed_arg, (struct sockaddr *)&ci.remote,
				    ci.remote_len, &seen, wk->qn->port);
	qn_stream_queue(wk, c, s, NULL, 0, 1, 0, NULL);
}

/* After the handshake: tell the peer the address we see it at. */
void qn_observed_send(struct qn_worker *wk, struct qn_conn *c)
{
	struct quic_conn_info ci;
	struct qn_stream *s;
	struct io_addr a;
	uint8_t msg[CONN_OBS_MAX];
	int n;

	if (!c->qc || quic_conn_get_info(c->qc, &ci) ||
	    io_addr_from_sockaddr(&a, (struct sockaddr *)&ci.remote, ci.remote_len))
		return;
	n = conn_obs_encode(&a, msg, sizeof(msg));
	if (n <= 0 || qn_stream_open_now(wk, c, QUIC_NODE_ST_OBSERVED, &s))
		return;
	s->internal = 1;
	if (!qn_stream_queue(wk, c, s, msg, (size_t)n, 1, 0, NULL))
		wk->obs_sent++;
}

/* Built-in responders. */
void qn_builtin_data(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
			 const uint8_t *data, size_t len, int fin)
{
	uint8_t reply[40];
	size_t rlen = 8;

	switch (s->stype) {
	case QUIC_NODE_ST_ECHO:
		if (s->wq_bytes + len > QN_ECHO_MAX_QUEUED) {
			wk->echo_overruns++;
			qn_stream_fail(wk, c, s, QN_ERR_OVERRUN);
			return;
		}
		if (len || fin)
			qn_stream_queue(wk, c, s, data, len, fin, 0, NULL);
		return;
	case QUIC_NODE_ST_SINK:
	case QUIC_NODE_ST_DISCARD:
		s->count += len;
		if (s->hs && len)
			crypto_generichash_update(s->hs, data, len);
		if (!fin)
			return;
		for (int i = 0; i < 8; i++)
			reply[i] = (uint8_t)(s->count >> (56 - 8 * i));
		if (s->hs) {
			crypto_generichash_final(s->hs, reply + 8, 32);
			rlen = 40;
		}
		qn_stream_queue(wk, c, s, reply, rlen, 1, 0, NULL);
		return;
	case QUIC_NODE_ST_OBSERVED:
		observed_data(wk, c, s, data, len, fin);
		return;
	}
}
