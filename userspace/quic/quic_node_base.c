// SPDX-License-Identifier: MIT
/*
 * The node binding's context, below every other part of it: the node's
 * reference count and the commands posted to a worker that hold one
 * (qn_call: "run fn on that worker", qn_cmd_enter, qn_put), the engine's
 * clock and the worker's receive clock (qn_wk_now), the kick that
 * re-evaluates a worker's deadlines at the end of its loop pass (qn_kick),
 * and the errno a close means to API users. Calls nothing above it.
 */
#include <errno.h>
#include <stdlib.h>

#include "quic/quic_node_int.h"

uint64_t qn_now_ns(const struct quic_node *qn)
{
	return engine_now_ns(qn->eng);
}

void qn_put(struct quic_node *qn)
{
	unsigned int i, j;

	if (atomic_fetch_sub(&qn->refs, 1) != 1)
		return;
	/* No callback can run any more: hand registered contexts back. */
	for (i = 0; i < qn->ntypes; i++) {
		if (!qn->types[i].h.release)
			continue;
		for (j = 0; j < i; j++)
			if (qn->types[j].arg == qn->types[i].arg && qn->types[j].h.release)
				break;
		if (j == i)
			qn->types[i].h.release(qn->types[i].arg);
	}
	path_budget_free(qn->budget);
	quic_fair_free(qn->fair); /* the endpoints that shared it are gone */
	pthread_mutex_destroy(&qn->budget_mu);
	qn_buf_drain(qn);
	pthread_mutex_destroy(&qn->buf_mu);
	free(qn);
}

int qn_call(struct quic_node *qn, unsigned int worker, engine_cmd_fn fn, void *arg)
{
	int rc;

	atomic_fetch_add(&qn->refs, 1);
	rc = engine_call(qn->eng, worker, fn, arg);
	if (rc) {
		atomic_fetch_add(&qn->cmd_full, 1);
		qn_put(qn);
	}
	return rc;
}

int qn_cmd_enter(struct quic_node *qn)
{
	return atomic_load(&qn->dead);
}

/* A fresh clock read on the worker, remembered for the receive batch. */
uint64_t qn_wk_now(struct qn_worker *wk)
{
	uint64_t t = qn_now_ns(wk->qn);

	if (t > wk->rx_ts_ns)
		wk->rx_ts_ns = t;
	return wk->rx_ts_ns;
}

/* Re-evaluate the endpoint's deadline at the end of this loop pass:
 * after the whole receive batch (one ACK and one write pass for it),
 * before the pass's transmit flush. */
void qn_kick(struct qn_worker *wk)
{
	if (wk->w)
		engine_defer(wk->w, &wk->timer);
}

int qn_close_errno(const struct quic_close_info *info)
{
	/* A relay circuit's end, closed by us or by the peer that learned it. */
	if (info->is_app && QUIC_NODE_APP_IS_RELAY_ENDED(info->error_code) &&
	    (info->reason == QUIC_CLOSE_LOCAL_APP || info->reason == QUIC_CLOSE_PEER))
		return -ENOLINK;
	switch (info->reason) {
	case QUIC_CLOSE_NONE:
	case QUIC_CLOSE_LOCAL_APP:
		return 0;
	case QUIC_CLOSE_PEER:
		if (info->is_app && info->error_code == 0)
			return 0;
		/* A TLS alert from the peer (CRYPTO_ERROR 0x100-0x1ff, e.g.
		 * 0x178 no common ALPN): the handshake failed, as when we
		 * detect it ourselves. */
		if (!info->is_app && info->error_code >= 0x100 && info->error_code <= 0x1ff)
			return -EPROTO;
		return info->error_code == 0x2 ? -ECONNREFUSED : -ECONNRESET;
	case QUIC_CLOSE_IDLE:
	case QUIC_CLOSE_HANDSHAKE_TIMEOUT:
		return -ETIMEDOUT;
	case QUIC_CLOSE_PEER_KEY_MISMATCH:
		return -EKEYREJECTED;
	case QUIC_CLOSE_BAD_CERT:
	case QUIC_CLOSE_ALPN:
	case QUIC_CLOSE_PROTOCOL:
		return -EPROTO;
	case QUIC_CLOSE_RESET:
		return -ECONNRESET;
	case QUIC_CLOSE_ENDPOINT:
		return -ESHUTDOWN;
	}
	return -EIO;
}
