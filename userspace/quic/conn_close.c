// SPDX-License-Identifier: MIT
/*
 * The end of one QUIC connection: the close reason kept from its first
 * cause, the closing period (our CONNECTION_CLOSE, replayed on input) and
 * the draining period (the peer closed), fatal ngtcp2 errors, and the one
 * on_closed report the application is owed. Below the write path
 * (conn_write.c), which ends a connection on a fatal write error.
 */
#include <stdlib.h>
#include <string.h>

#include "quic/quic_int.h"

void quic_conn_set_reason(struct quic_conn *c, enum quic_close_reason r)
{
	if (c->close.reason == QUIC_CLOSE_NONE)
		c->close.reason = r;
}

static int owes_closed(const struct quic_conn *c)
{
	return c->announced || !c->is_server;
}

/* Tell the application (once) and stop delivering to it. */
static void report_closed(struct quic_conn *c)
{
	struct quic_ep *ep = c->ep;

	if (c->reported)
		return;
	c->reported = 1;
	if (c->close.reason == QUIC_CLOSE_NONE)
		c->close.reason = QUIC_CLOSE_PROTOCOL;
	if (c->close.reason == QUIC_CLOSE_IDLE)
		ep->st.idle_timeouts++;
	ep->st.conns_closed++;
	if (owes_closed(c) && ep->o.cb.on_closed)
		ep->o.cb.on_closed(ep->o.cb_arg, c, &c->close);
	c->announced = 0;
}

void quic_conn_finish(struct quic_conn *c)
{
	quic_conn_touch(c);
	report_closed(c);
	if (c->state != QUIC_ST_DEAD) {
		c->ep->ndead++;
		if (c->linked) {
			/* ep_sweep frees it without a walk over every
			 * connection (a seed holds thousands) */
			c->dead_next = c->ep->dead;
			c->ep->dead = c;
		}
	}
	c->state = QUIC_ST_DEAD;
	quic_ep_ip_del(c->ep, c); /* no longer live for max_conns_per_addr */
}

static uint64_t close_period(struct quic_conn *c)
{
	return 3 * ngtcp2_conn_get_pto(c->conn);
}

/* Send CONNECTION_CLOSE with ccerr and enter the closing period. */
void quic_conn_enter_closing(struct quic_conn *c, const ngtcp2_connection_close_error *ccerr,
			  uint64_t now)
{
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	size_t cap = c->ep->o.max_udp_payload;
	ngtcp2_ssize n;
	uint8_t *buf;

	quic_conn_touch(c);
	if (c->state >= QUIC_ST_CLOSING)
		return;
	/* Not guarded by negotiated(): a v1 server connection refusing a
	 * ClientHello (no common ALPN) has no negotiated version yet, and its
	 * CONNECTION_CLOSE goes out in an Initial, which ngtcp2 writes. */
	c->close.error_code = ccerr->error_code;
	c->close.is_app = ccerr->type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION;
	ngtcp2_path_storage_zero(&ps);
	memset(&pi, 0, sizeof(pi));
	buf = malloc(cap);
	n = buf ? ngtcp2_conn_write_connection_close(c->conn, &ps.path, &pi, buf, cap, ccerr, now)
		: -1;
	if (n <= 0) {
		/* Nothing can be sent (no keys yet): just forget the conn. */
		free(buf);
		quic_conn_finish(c);
		return;
	}
	c->close_pkt = buf;
	c->close_pkt_len = (size_t)n;
	quic_conn_path_send(c, buf, (size_t)n, (size_t)n, &ps.path);
	c->state = QUIC_ST_CLOSING;
	c->close_deadline = now + close_period(c);
	report_closed(c);
}

static void enter_draining(struct quic_conn *c, uint64_t now)
{
	const ngtcp2_connection_close_error *ccerr;
	ngtcp2_connection_close_error e;

	quic_conn_touch(c);
	ngtcp2_conn_get_connection_close_error(c->conn, &e);
	ccerr = &e;
	quic_conn_set_reason(c, c->reset_probe ? QUIC_CLOSE_RESET : QUIC_CLOSE_PEER);
	c->close.error_code = ccerr->error_code;
	c->close.is_app = ccerr->type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION;
	c->state = QUIC_ST_DRAINING;
	c->close_deadline = now + close_period(c);
	report_closed(c);
}

/* A fatal error from ngtcp2 (read, write or timer). */
void quic_conn_fatal(struct quic_conn *c, int rv, uint64_t now)
{
	ngtcp2_connection_close_error ccerr;

	quic_conn_touch(c);
	switch (rv) {
	case NGTCP2_ERR_DRAINING:
		enter_draining(c, now);
		return;
	case NGTCP2_ERR_IDLE_CLOSE:
		quic_conn_set_reason(c, QUIC_CLOSE_IDLE);
		quic_conn_finish(c);
		return;
	case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
		quic_conn_set_reason(c, QUIC_CLOSE_HANDSHAKE_TIMEOUT);
		quic_conn_finish(c);
		return;
	case NGTCP2_ERR_DROP_CONN:
	case NGTCP2_ERR_RETRY:
	case NGTCP2_ERR_RECV_VERSION_NEGOTIATION:
		/* The last: a valid Version Negotiation packet without v1, the
		 * only version we speak; nothing is owed to the peer. */
		quic_conn_set_reason(c, QUIC_CLOSE_PROTOCOL);
		quic_conn_finish(c);
		return;
	case NGTCP2_ERR_CLOSING:
		return;
	}
	ngtcp2_connection_close_error_default(&ccerr);
	if (rv == NGTCP2_ERR_CRYPTO) {
		uint8_t alert = ngtcp2_conn_get_tls_alert(c->conn);

		if (alert == 120 /* no_application_protocol */) {
			if (c->close.reason == QUIC_CLOSE_NONE)
				c->ep->st.alpn_mismatch++;
			quic_conn_set_reason(c, QUIC_CLOSE_ALPN);
		}
		ngtcp2_connection_close_error_set_transport_error_tls_alert(&ccerr, alert, NULL, 0);
	} else {
		ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, rv, NULL, 0);
	}
	quic_conn_set_reason(c, QUIC_CLOSE_PROTOCOL);
	quic_conn_enter_closing(c, &ccerr, now);
}
