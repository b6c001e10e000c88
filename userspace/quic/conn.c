// SPDX-License-Identifier: MIT
/*
 * One QUIC connection: ngtcp2 + GnuTLS session glue, peer-key verification,
 * the ngtcp2 callbacks, input, timers, and the application API (streams,
 * datagrams, close). Its parts, below it: the stream send buffers
 * (stream_buf.c), the write path (conn_write.c), the closing and draining
 * periods (conn_close.c) and the path layer (conn_path.c). No I/O: packets
 * leave through quic_ep_send() (ep_wire.c).
 *
 * Re-entrancy: ngtcp2 forbids writing from inside its callbacks, and an
 * application callback may call quic_stream_send() or quic_conn_close().
 * While ngtcp2 runs (c->busy), such calls only queue; the work is done when
 * ngtcp2 returns (post_read()).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <sodium.h>

#include "quic/quic_int.h"

#define CLOSE_REPLAYS_MAX 16 /* CONNECTION_CLOSE replays during the closing period */

/* ------------------------------------------------------------- callbacks */

static struct quic_conn *tls_conn(gnutls_session_t tls)
{
	ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(tls);

	return ref->user_data;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	struct quic_conn *c = ref->user_data;

	return c->conn;
}

/* Peer certificate check, run by GnuTLS during the handshake (both sides:
 * the server requires a client certificate). The peer is the Ed25519 key
 * of its first certificate: GnuTLS checks the TLS 1.3 CertificateVerify
 * (a signature over this handshake's transcript) with that key and fails
 * the handshake otherwise, which proves the peer holds it. The
 * certificate's self-signature is not checked again here: it is a
 * signature over static bytes anyone can replay, so it proves nothing
 * CertificateVerify has not (it cost one more Ed25519 verification per
 * handshake, ~10% of a server's handshake CPU: docs/QUIC.md). */
static int verify_cb(gnutls_session_t tls)
{
	struct quic_conn *c = tls_conn(tls);
	const gnutls_datum_t *certs;
	struct quic_cert_view v;
	unsigned int n = 0;
	uint8_t pk[QUIC_KEY_LEN];

	certs = gnutls_certificate_get_peers(tls, &n);
	if (certs && n >= 1 && quic_cert_parse(certs[0].data, certs[0].size, &v) == 0)
		memcpy(pk, v.key, QUIC_KEY_LEN);
	else
		certs = NULL;
	if (!certs) {
		c->ep->st.bad_cert++;
		quic_conn_set_reason(c, QUIC_CLOSE_BAD_CERT);
		return -1;
	}
	if (c->pin && sodium_memcmp(pk, c->expected_key, QUIC_KEY_LEN) != 0) {
		c->ep->st.peer_key_mismatch++;
		quic_conn_set_reason(c, QUIC_CLOSE_PEER_KEY_MISMATCH);
		return -1;
	}
	memcpy(c->peer_key, pk, QUIC_KEY_LEN);
	c->have_peer_key = 1;
	return 0;
}

static void rand_cb(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *ctx)
{
	struct quic_conn *c = ctx ? ctx->native_handle : NULL;

	randombytes_buf(dest, destlen);
	/* While the conn is created ngtcp2 draws one byte whose low bit
	 * decides whether it clears the fixed bit when the peer advertises
	 * grease_quic_bit (ngtcp2 0.12 always advertises it). weft's XDP
	 * program and software policer drop packets without the fixed bit,
	 * so never grease it. */
	if (c && c->creating && destlen == 1)
		dest[0] &= 0xfe;
}

static int track_cid(struct quic_conn *c, const ngtcp2_cid *cid)
{
	if (c->ncids >= QUIC_CONN_MAX_CIDS)
		return -ENOSPC;
	if (quic_ep_cid_add(c->ep, c, cid))
		return -ENOMEM;
	c->cids[c->ncids++] = *cid;
	return 0;
}

static void untrack_cid(struct quic_conn *c, const ngtcp2_cid *cid)
{
	size_t i;

	for (i = 0; i < c->ncids; i++) {
		if (ngtcp2_cid_eq(&c->cids[i], cid)) {
			quic_ep_cid_del(c->ep, cid);
			c->cids[i] = c->cids[--c->ncids];
			return;
		}
	}
}

static int get_new_cid_cb(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
			  void *user_data)
{
	struct quic_conn *c = user_data;

	quic_ep_cid_gen(c->ep, cid->data, cidlen);
	cid->datalen = cidlen;
	if (ngtcp2_crypto_generate_stateless_reset_token(token, c->ep->secret, QUIC_SECRET_LEN,
							 cid) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	if (track_cid(c, cid))
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int remove_cid_cb(ngtcp2_conn *conn, const ngtcp2_cid *cid, void *user_data)
{
	untrack_cid(user_data, cid);
	return 0;
}

static void rtok_forget(struct quic_conn *c, const uint8_t *token);

static int dcid_status_cb(ngtcp2_conn *conn, int type, uint64_t seq, const ngtcp2_cid *cid,
			  const uint8_t *token, void *user_data)
{
	struct quic_conn *c = user_data;
	size_t i;

	for (i = 0; i < c->nrtok; i++) {
		if (c->rtok_seq[i] == seq) {
			rtok_forget(c, c->rtok[i]);
			c->rtok_seq[i] = c->rtok_seq[--c->nrtok];
			memcpy(c->rtok[i], c->rtok[c->nrtok], NGTCP2_STATELESS_RESET_TOKENLEN);
			break;
		}
	}
	if (type == NGTCP2_CONNECTION_ID_STATUS_TYPE_ACTIVATE && token &&
	    c->nrtok < QUIC_CONN_MAX_CIDS) {
		c->rtok_seq[c->nrtok] = seq;
		memcpy(c->rtok[c->nrtok++], token, NGTCP2_STATELESS_RESET_TOKENLEN);
		/* no memory, or another connection's: this one's resets then
		 * end it by its idle timeout instead */
		(void)quic_ep_rtok_add(c->ep, c, token);
	}
	return 0;
}

/* The endpoint's entry for token, unless another of this connection's
 * tokens is the same bytes (the transport parameters' token announced
 * again for sequence 0). */
static void rtok_forget(struct quic_conn *c, const uint8_t *token)
{
	unsigned int same = c->have_tp_tok &&
			    !memcmp(c->tp_tok, token, NGTCP2_STATELESS_RESET_TOKENLEN);

	for (size_t i = 0; i < c->nrtok; i++)
		same += !memcmp(c->rtok[i], token, NGTCP2_STATELESS_RESET_TOKENLEN);
	if (same <= 1)
		quic_ep_rtok_del(c->ep, c, token);
}

/* The server's token from its transport parameters (on a connection we
 * dialled), in the endpoint's table once known. */
static void rtok_note_tp(struct quic_conn *c)
{
	const ngtcp2_transport_params *rp;

	if (c->have_tp_tok || c->is_server)
		return;
	rp = ngtcp2_conn_get_remote_transport_params(c->conn);
	if (!rp || !rp->stateless_reset_token_present)
		return;
	memcpy(c->tp_tok, rp->stateless_reset_token, NGTCP2_STATELESS_RESET_TOKENLEN);
	c->have_tp_tok = 1;
	(void)quic_ep_rtok_add(c->ep, c, c->tp_tok);
}

int quic_conn_reset_match(struct quic_conn *c, const uint8_t *tail)
{
	const ngtcp2_transport_params *rp;
	size_t i;

	if (c->state >= QUIC_ST_CLOSING)
		return 0;
	for (i = 0; i < c->nrtok; i++)
		if (sodium_memcmp(c->rtok[i], tail, NGTCP2_STATELESS_RESET_TOKENLEN) == 0)
			return 1;
	rp = ngtcp2_conn_get_remote_transport_params(c->conn);
	return rp && rp->stateless_reset_token_present &&
	       sodium_memcmp(rp->stateless_reset_token, tail, NGTCP2_STATELESS_RESET_TOKENLEN) == 0;
}

static int handshake_completed_cb(ngtcp2_conn *conn, void *user_data)
{
	struct quic_conn *c = user_data;
	gnutls_datum_t alpn = { NULL, 0 };
	size_t alen = strlen(c->ep->alpn);

	if (gnutls_alpn_get_selected_protocol(c->tls, &alpn) != 0 || alpn.size != alen ||
	    memcmp(alpn.data, c->ep->alpn, alen) != 0) {
		c->ep->st.alpn_mismatch++;
		quic_conn_set_reason(c, QUIC_CLOSE_ALPN);
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	if (!c->have_peer_key) {
		c->ep->st.bad_cert++;
		quic_conn_set_reason(c, QUIC_CLOSE_BAD_CERT);
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	c->state = QUIC_ST_OPEN;
	rtok_note_tp(c);
	c->confirmed = c->is_server; /* a client's: handshake_confirmed_cb */
	c->trim_at = c->ep->now + QUIC_MEM_TRIM_NS;
	/* Announce now, not after ngtcp2 returns: stream data (0.5-RTT from a
	 * server) may be processed in this same call and must not be lost. */
	c->announced = 1;
	c->ep->st.conns_established++;
	if (c->ep->o.cb.on_conn)
		c->ep->o.cb.on_conn(c->ep->o.cb_arg, c, c->peer_key);
	return 0;
}

static int recv_stream_data_cb(ngtcp2_conn *conn, uint32_t flags, int64_t sid, uint64_t offset,
			       const uint8_t *data, size_t datalen, void *user_data,
			       void *stream_user_data)
{
	struct quic_conn *c = user_data;
	struct quic_ep *ep = c->ep;

	c->bytes_rx += datalen;
	if (!c->rx_counted) { /* a packet with stream data (QUIC_ACK_HOLD_NS) */
		c->rx_counted = 1;
		c->rx_n++;
	}
	if (ep->o.cb.on_stream_data && c->announced)
		ep->o.cb.on_stream_data(ep->o.cb_arg, c, sid, data, datalen,
					!!(flags & NGTCP2_STREAM_DATA_FLAG_FIN));
#ifdef WEFT_TEST_HOOKS
	if (ep->o.test_hold_credit)
		return 0; /* test hook: the credit is never given back */
#endif
	/* Delivered = consumed: return the credit. */
	ngtcp2_conn_extend_max_stream_offset(conn, sid, datalen);
	ngtcp2_conn_extend_max_offset(conn, datalen);
	return 0;
}

static int stream_open_cb(ngtcp2_conn *conn, int64_t sid, void *user_data)
{
	struct quic_conn *c = user_data;

	c->streams_opened++;
	c->streams_open++;
	if (c->ep->o.cb.on_stream_open && c->announced)
		c->ep->o.cb.on_stream_open(c->ep->o.cb_arg, c, sid);
	return 0;
}

/* n buffered stream bytes left the send buffers (acknowledged, or their
 * stream closed): they moved now. */
static void sbuf_gone(struct quic_conn *c, uint64_t n)
{
	c->sbuf_bytes -= n < c->sbuf_bytes ? n : c->sbuf_bytes;
	c->sbuf_moved_ns = c->ep->now;
}

static int stream_close_cb(ngtcp2_conn *conn, uint32_t flags, int64_t sid, uint64_t code,
			   void *user_data, void *stream_user_data)
{
	struct quic_conn *c = user_data;
	struct quic_stream *s = stream_user_data ? stream_user_data : quic_sbuf_find(c, sid);

	if (s) {
		sbuf_gone(c, s->total > s->acked ? s->total - s->acked : 0);
		quic_sbuf_unlink(c, s);
		quic_sbuf_free(s);
	}
	if (c->streams_open)
		c->streams_open--;
	/* Hand the peer's stream credit back (ngtcp2 leaves that to us):
	 * without it a connection dies after max_streams peer streams. */
	if (!ngtcp2_conn_is_local_stream(conn, sid)) {
		if (ngtcp2_is_bidi_stream(sid))
			ngtcp2_conn_extend_max_streams_bidi(conn, 1);
		else
			ngtcp2_conn_extend_max_streams_uni(conn, 1);
	}
	if (c->ep->o.cb.on_stream_close && c->announced)
		c->ep->o.cb.on_stream_close(c->ep->o.cb_arg, c, sid,
					    !!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET),
					    code);
	return 0;
}

static int acked_cb(ngtcp2_conn *conn, int64_t sid, uint64_t offset, uint64_t datalen,
		    void *user_data, void *stream_user_data)
{
	struct quic_conn *c = user_data;
	struct quic_stream *s = stream_user_data ? stream_user_data : quic_sbuf_find(c, sid);
	uint64_t was;

	if (!s)
		return 0;
	was = s->acked;
	quic_sbuf_ack(s, offset + datalen);
	if (s->acked > was)
		sbuf_gone(c, s->acked - was);
	if (s->want_writable) {
		s->want_writable = 0;
		if (!s->notify_writable)
			c->notify_n++;
		s->notify_writable = 1;
	}
	return 0;
}

static int recv_datagram_cb(ngtcp2_conn *conn, uint32_t flags, const uint8_t *data,
			    size_t datalen, void *user_data)
{
	struct quic_conn *c = user_data;

	/* Larger than any datagram an application may send: a path MTU
	 * probe, whose arrival is all it says (conn_write.c). */
	if (datalen > QUIC_MAX_DATAGRAM)
		return 0;
	c->dgrams_rx++;
	if (c->ep->o.cb.on_datagram && c->announced)
		c->ep->o.cb.on_datagram(c->ep->o.cb_arg, c, data, datalen);
	return 0;
}

static int ack_datagram_cb(ngtcp2_conn *conn, uint64_t id, void *user_data)
{
	quic_conn_pm_acked(user_data, id);
	return 0;
}

static int lost_datagram_cb(ngtcp2_conn *conn, uint64_t id, void *user_data)
{
	quic_conn_pm_lost(user_data, id);
	return 0;
}

static int handshake_confirmed_cb(ngtcp2_conn *conn, void *user_data)
{
	((struct quic_conn *)user_data)->confirmed = 1;
	return 0;
}

static void fill_callbacks(ngtcp2_callbacks *cb, int server)
{
	memset(cb, 0, sizeof(*cb));
	if (server) {
		cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
	} else {
		cb->client_initial = ngtcp2_crypto_client_initial_cb;
		cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
	}
	cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
	/* aead.c's: gcm.h's keys where it installed them, else ngtcp2's. */
	cb->encrypt = quic_aead_encrypt_cb;
	cb->decrypt = quic_aead_decrypt_cb;
	cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
	cb->update_key = quic_aead_update_key_cb;
	cb->delete_crypto_aead_ctx = quic_aead_delete_cb;
	cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
	cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
	cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
	cb->rand = rand_cb;
	cb->get_new_connection_id = get_new_cid_cb;
	cb->remove_connection_id = remove_cid_cb;
	cb->handshake_completed = handshake_completed_cb;
	cb->handshake_confirmed = handshake_confirmed_cb;
	cb->dcid_status = dcid_status_cb;
	cb->recv_stream_data = recv_stream_data_cb;
	cb->stream_open = stream_open_cb;
	cb->stream_close = stream_close_cb;
	cb->acked_stream_data_offset = acked_cb;
	cb->recv_datagram = recv_datagram_cb;
	cb->ack_datagram = ack_datagram_cb;
	cb->lost_datagram = lost_datagram_cb;
}

/* The largest datagram a route's MTU carries (IPv4 or IPv6 and UDP
 * headers off), at most lo_udp_payload; 0 when the route is not one worth
 * probing (route_mtu: jumbo frames, or a 1500-byte link to an IPv4
 * address) or that is no more than max_udp_payload. */
static size_t route_payload(const struct quic_ep *ep, const struct sockaddr *remote,
			    socklen_t len)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	size_t hdr = 20 + 8, cap;
	int mtu;

	if (!ep->o.route_mtu || ep->o.lo_udp_payload <= ep->o.max_udp_payload)
		return 0;
	mtu = ep->o.route_mtu(ep->o.route_mtu_arg, remote, len);
	if (remote->sa_family == AF_INET6 &&
	    memcmp(&((const struct sockaddr_in6 *)remote)->sin6_addr, v4mapped, 12))
		hdr = 40 + 8;
	if (mtu < 1500)
		return 0;
	/* 1500: an on-link IPv4 address (io_route_mtu), whose 1472-byte
	 * datagrams ngtcp2's own probing (1444 at most) never reaches; an
	 * IPv6 one gains nothing on max_udp_payload (1452): not a candidate */
	cap = (size_t)mtu - hdr;
	if (cap > ep->o.lo_udp_payload)
		cap = ep->o.lo_udp_payload;
	return cap > ep->o.max_udp_payload ? cap : 0;
}

/* ------------------------------------------------------------ lifecycle */

static int tls_new(struct quic_conn *c)
{
	struct quic_ep *ep = c->ep;
	gnutls_datum_t alpn = { (unsigned char *)ep->alpn, (unsigned int)strlen(ep->alpn) };
	unsigned int flags = (c->is_server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
			     GNUTLS_NO_END_OF_EARLY_DATA | GNUTLS_NO_TICKETS;

	if (gnutls_init(&c->tls, flags) < 0) {
		c->tls = NULL;
		return -ENOMEM;
	}
	if (gnutls_priority_set(c->tls, ep->prio) < 0)
		return -EPROTO;
	if ((c->is_server ? ngtcp2_crypto_gnutls_configure_server_session(c->tls)
			  : ngtcp2_crypto_gnutls_configure_client_session(c->tls)) != 0)
		return -EPROTO;
	/* 1-RTT AES-GCM keys on gcm.h (aead.c), every other as ngtcp2's. */
	if (ep->gcm)
		gnutls_handshake_set_secret_function(c->tls, quic_aead_secret_cb);
	if (gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, ep->cred) < 0)
		return -EPROTO;
	if (c->is_server)
		gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_REQUIRE);
	gnutls_session_set_verify_function(c->tls, verify_cb);
	if (gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) < 0)
		return -EPROTO;
	c->conn_ref.get_conn = get_conn;
	c->conn_ref.user_data = c;
	gnutls_session_set_ptr(c->tls, &c->conn_ref);
	return 0;
}

static void addr_copy(struct sockaddr_storage *dst, socklen_t *dlen, const struct sockaddr *sa,
		      socklen_t len)
{
	if (len > sizeof(*dst))
		len = sizeof(*dst);
	memset(dst, 0, sizeof(*dst));
	memcpy(dst, sa, len);
	*dlen = len;
}

int quic_conn_new(struct quic_conn **out, struct quic_ep *ep, int server,
		  const ngtcp2_pkt_hd *hd, const ngtcp2_cid *odcid_retry,
		  const struct sockaddr *local, socklen_t local_len,
		  const struct sockaddr *remote, socklen_t remote_len,
		  const uint8_t *expected_key, uint64_t now)
{
	struct quic_conn *c;
	ngtcp2_callbacks cb;
	ngtcp2_settings set;
	ngtcp2_transport_params params;
	ngtcp2_cid scid, dcid;
	ngtcp2_path path;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ep = ep;
	c->is_server = server;
	quic_mem_pool_init(&c->mem);
	c->trim_at = UINT64_MAX;
	c->flush_round = 1; /* new streams' blocked_round 0: not passed over */
	addr_copy(&c->local, &c->local_len, local, local_len);
	addr_copy(&c->remote, &c->remote_len, remote, remote_len);
	addr_copy(&c->src, &c->src_len, remote, remote_len);
	if (expected_key) {
		memcpy(c->expected_key, expected_key, QUIC_KEY_LEN);
		c->pin = 1;
	}
	c->dgq = NULL;
	rc = tls_new(c);
	if (rc)
		goto err;

	fill_callbacks(&cb, server);
	ngtcp2_settings_default(&set);
	set.initial_ts = now;
	set.max_tx_udp_payload_size = ep->o.max_udp_payload;
	c->lo = ep->o.lo_udp_payload > ep->o.max_udp_payload && quic_sa_loopback(remote, remote_len);
	if (c->lo) {
		/* ngtcp2 0.12 probes no path above 1444 bytes (its PMTUD
		 * list), so a loopback connection is unshaped instead: its
		 * packets are the buffer's size, quic_conn_tx_size(). */
		set.max_tx_udp_payload_size = ep->o.lo_udp_payload;
		set.no_tx_udp_payload_size_shaping = 1;
	} else if ((c->pm.max = route_payload(ep, remote, remote_len)) > 0) {
		/* Off loopback on a jumbo-frame route or a 1500-byte link: unshaped
		 * too, and our own probes validate the size (conn_write.c),
		 * since ngtcp2's stop at 1444. */
		c->pm.size = NGTCP2_MAX_UDP_PAYLOAD_SIZE;
		set.max_tx_udp_payload_size = c->pm.max;
		set.no_tx_udp_payload_size_shaping = 1;
		set.no_pmtud = 1;
	}
	set.handshake_timeout = (uint64_t)ep->o.handshake_timeout_ms * NGTCP2_MILLISECONDS;
	c->hs_deadline = now + set.handshake_timeout;
	set.cc_algo = NGTCP2_CC_ALGO_CUBIC;
	set.rand_ctx.native_handle = c;
	c->creating = 1;
	ngtcp2_transport_params_default(&params);
	params.initial_max_data = ep->o.max_data;
	params.initial_max_stream_data_bidi_local = ep->o.max_stream_data;
	params.initial_max_stream_data_bidi_remote = ep->o.max_stream_data;
	params.initial_max_stream_data_uni = ep->o.max_stream_data;
#ifdef WEFT_TEST_HOOKS
	if (ep->o.test_hold_credit) {
		params.initial_max_data = ep->o.test_hold_credit;
		params.initial_max_stream_data_bidi_local = ep->o.test_hold_credit;
		params.initial_max_stream_data_bidi_remote = ep->o.test_hold_credit;
		params.initial_max_stream_data_uni = ep->o.test_hold_credit;
	}
#endif
	params.initial_max_streams_bidi = ep->o.max_streams_bidi;
	params.initial_max_streams_uni = ep->o.max_streams_uni;
	params.max_idle_timeout = (uint64_t)ep->o.idle_timeout_ms * NGTCP2_MILLISECONDS;
	/* Connection ids the peer may issue us: RFC 9000's minimum, one spare.
	 * A NAT rebinding keeps the CID (ngtcp2 then needs no new one), weft's
	 * own path changes are hidden from ngtcp2 (conn_path.c), and a peer
	 * that moves to its spare gets a new one once it retires the old. Each
	 * CID costs both ends memory (ngtcp2's entry, our endpoint's CID table,
	 * NEW_CONNECTION_ID frames): 8 before, ~2 KiB per idle connection. */
	params.active_connection_id_limit = 2;
	/* Applications send datagrams of QUIC_MAX_DATAGRAM bytes at most;
	 * an endpoint taking jumbo datagrams takes path MTU probes too. */
	params.max_datagram_frame_size = ep->o.lo_udp_payload > ep->o.max_udp_payload ?
						 ep->o.lo_udp_payload : QUIC_MAX_DATAGRAM;
	if (ep->o.max_rx_udp_payload)
		params.max_udp_payload_size = ep->o.max_rx_udp_payload;
	/* Ask peers not to clear the fixed bit (RFC 9287): weft's XDP program
	 * and software policer drop QUIC packets without it. */
	params.grease_quic_bit = 0;

	scid.datalen = QUIC_SCID_LEN;
	quic_ep_cid_gen(ep, scid.data, scid.datalen);
	path.local.addr = (ngtcp2_sockaddr *)&c->local;
	path.local.addrlen = c->local_len;
	path.remote.addr = (ngtcp2_sockaddr *)&c->remote;
	path.remote.addrlen = c->remote_len;
	path.user_data = NULL;

	if (server) {
		set.token = hd->token;
		params.original_dcid = odcid_retry ? *odcid_retry : hd->dcid;
		if (odcid_retry) {
			params.retry_scid = hd->dcid;
			params.retry_scid_present = 1;
		}
		params.stateless_reset_token_present = 1;
		if (ngtcp2_crypto_generate_stateless_reset_token(params.stateless_reset_token,
								 ep->secret, QUIC_SECRET_LEN,
								 &scid) != 0) {
			rc = -EPROTO;
			goto err;
		}
		rc = ngtcp2_conn_server_new(&c->conn, &hd->scid, &scid, &path, hd->version, &cb,
					    &set, &params, &c->mem.mem, c);
	} else {
		dcid.datalen = QUIC_SCID_LEN;
		randombytes_buf(dcid.data, dcid.datalen);
		rc = ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1,
					    &cb, &set, &params, &c->mem.mem, c);
	}
	c->creating = 0;
	if (rc) {
		c->conn = NULL;
		rc = rc == NGTCP2_ERR_NOMEM ? -ENOMEM : -EINVAL;
		goto err;
	}
	ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
	c->ka_ns = (uint64_t)ep->o.keepalive_ms * NGTCP2_MILLISECONDS;
	if (c->ka_ns)
		ngtcp2_conn_set_keep_alive_timeout(c->conn, c->ka_ns);
	rc = track_cid(c, &scid);
	if (rc)
		goto err;
	/* The client keeps using its chosen DCID until our first packet. */
	if (server && !ngtcp2_cid_eq(&hd->dcid, &scid)) {
		rc = track_cid(c, &hd->dcid);
		if (rc)
			goto err;
	}
	*out = c;
	return 0;
err:
	quic_conn_destroy(c);
	return rc;
}

void quic_conn_destroy(struct quic_conn *c)
{
	struct quic_stream *s, *n;

	if (!c)
		return;
	while (c->ncids > 0)
		untrack_cid(c, &c->cids[c->ncids - 1]);
	for (size_t i = 0; i < c->nrtok; i++)
		quic_ep_rtok_del(c->ep, c, c->rtok[i]);
	if (c->have_tp_tok)
		quic_ep_rtok_del(c->ep, c, c->tp_tok);
	c->nrtok = 0;
	c->have_tp_tok = 0;
	for (s = c->streams; s; s = n) {
		n = s->next;
		quic_sbuf_free(s);
	}
	if (c->conn)
		ngtcp2_conn_del(c->conn);
	if (c->tls)
		gnutls_deinit(c->tls);
	free(c->close_pkt);
	free(c->dgq);
	free(c);
}

/* --------------------------------------------------------- input, timer */

/* Work deferred while ngtcp2 was running; write: flush what ngtcp2 has
 * (0: only the writable notifications, the ACK is held). */
static void post_read(struct quic_conn *c, uint64_t now, int write)
{
	struct quic_ep *ep = c->ep;
	struct quic_stream *s;

	if (c->close_pending && c->state < QUIC_ST_CLOSING) {
		ngtcp2_connection_close_error ccerr;

		c->close_pending = 0;
		ngtcp2_connection_close_error_set_application_error(
			&ccerr, c->pending_code, c->pending_reason, c->pending_reason_len);
		quic_conn_set_reason(c, QUIC_CLOSE_LOCAL_APP);
		quic_conn_enter_closing(c, &ccerr, now);
		return;
	}
	if (write)
		quic_conn_flush(c, now);
	/* Writable notifications: restart the scan after each callback, the
	 * application may add or finish streams. */
	while (c->notify_n && c->state == QUIC_ST_OPEN) {
		for (s = c->streams; s; s = s->next)
			if (s->notify_writable)
				break;
		if (!s) {
			c->notify_n = 0; /* (never: the count follows the flags) */
			break;
		}
		s->notify_writable = 0;
		c->notify_n--;
		if (ep->o.cb.on_stream_writable && c->announced)
			ep->o.cb.on_stream_writable(ep->o.cb_arg, c, s->id);
	}
}

void quic_conn_input(struct quic_conn *c, const uint8_t *buf, size_t len,
		     const struct sockaddr *local, socklen_t local_len,
		     const struct sockaddr *remote, socklen_t remote_len, uint64_t now)
{
	ngtcp2_path path;
	ngtcp2_pkt_info pi;
	int rv;

	quic_conn_touch(c);
	if (c->state == QUIC_ST_CLOSING) {
		c->ep->st.drop_closing++;
		if (c->close_pkt && c->close_replays < CLOSE_REPLAYS_MAX) {
			ngtcp2_path p;

			c->close_replays++;
			p.local.addr = (ngtcp2_sockaddr *)local;
			p.local.addrlen = local_len;
			p.remote.addr = (ngtcp2_sockaddr *)remote;
			p.remote.addrlen = remote_len;
			p.user_data = NULL;
			quic_conn_path_send(c, c->close_pkt, c->close_pkt_len, c->close_pkt_len, &p);
		}
		return;
	}
	if (c->state >= QUIC_ST_DRAINING) {
		c->ep->st.drop_closing++;
		return;
	}
	path.local.addr = (ngtcp2_sockaddr *)local;
	path.local.addrlen = local_len;
	path.remote.addr = (ngtcp2_sockaddr *)remote;
	path.remote.addrlen = remote_len;
	path.user_data = NULL;
	memset(&pi, 0, sizeof(pi));
	c->busy = 1;
	c->rx_at = now;
	c->rx_counted = 0;
	rv = ngtcp2_conn_read_pkt(c->conn, &path, &pi, buf, len, now);
	c->busy = 0;
	if (rv != 0) {
		if (rv == NGTCP2_ERR_DRAINING || rv == NGTCP2_ERR_CLOSING ||
		    ngtcp2_err_is_fatal(rv) || rv == NGTCP2_ERR_CRYPTO ||
		    rv == NGTCP2_ERR_DROP_CONN || rv == NGTCP2_ERR_RETRY ||
		    rv == NGTCP2_ERR_RECV_VERSION_NEGOTIATION ||
		    rv == NGTCP2_ERR_CALLBACK_FAILURE) {
			c->ep->st.drop_conn_error++;
			quic_conn_fatal(c, rv, now);
			return;
		}
		/* Non-fatal: the packet was discarded. */
		c->ep->st.drop_conn_error++;
		return;
	}
	if (c->close_pending) {
		post_read(c, now, 1);
		return;
	}
	/* Write once per receive batch, not once per datagram: the caller
	 * runs quic_ep_handle_expiry() after its batch (the expiry is "now"
	 * while a flush is pending), so one ACK covers the batch and the
	 * packets freed by many ACKs leave as one GSO burst. */
	c->flush_pending = 1;
}

/* QUIC_ACK_HOLD_NS: at most one packet with stream data came in since we
 * last sent one (ngtcp2 acknowledges every 2nd at once), less than the
 * hold ago, and nothing of ours waits to be sent:
 * what would go now is an ACK alone, which rides on our answer instead,
 * or goes when the hold ends. */
static int ack_hold(const struct quic_conn *c, uint64_t now)
{
	/* Only once stream data went both ways: the handshake's last frames
	 * (CRYPTO, HANDSHAKE_DONE) are ngtcp2's, unseen here, and must not
	 * wait. */
	return c->state == QUIC_ST_OPEN && c->rx_n < 2 && now < c->rx_at + QUIC_ACK_HOLD_NS &&
	       c->bytes_rx && c->bytes_tx && !c->dgq_len && !c->wq_head;
}

uint64_t quic_conn_expiry(const struct quic_conn *c)
{
	uint64_t x;

	if (c->state == QUIC_ST_DEAD)
		return 0;
	if (c->state >= QUIC_ST_CLOSING)
		return c->close_deadline;
	if (c->flush_pending)
		return 0;
	if (!quic_conn_negotiated(c))
		return c->hs_deadline;
	x = ngtcp2_conn_get_expiry(c->conn);
	if (x < c->rx_at + QUIC_ACK_HOLD_NS && ack_hold(c, x))
		x = c->rx_at + QUIC_ACK_HOLD_NS;
	if (c->pm.max && quic_conn_pm_expiry(c) < x)
		x = quic_conn_pm_expiry(c);
	return x < c->trim_at ? x : c->trim_at;
}

void quic_conn_timer(struct quic_conn *c, uint64_t now)
{
	int rv, pm_due;

	quic_conn_touch(c);
	if (c->state == QUIC_ST_DEAD)
		return;
	if (c->state >= QUIC_ST_CLOSING) {
		if (now >= c->close_deadline)
			quic_conn_finish(c);
		return;
	}
	if (!quic_conn_negotiated(c)) {
		c->flush_pending = 0;
		if (now >= c->hs_deadline) {
			quic_conn_set_reason(c, QUIC_CLOSE_HANDSHAKE_TIMEOUT);
			quic_conn_finish(c);
		}
		return;
	}
	if (now >= c->trim_at) {
		c->trim_at = UINT64_MAX;
		quic_mem_trim(&c->mem);
	}
	pm_due = c->pm.max && quic_conn_pm_timer(c, now);
	if (pm_due)
		c->flush_pending = 1; /* a path MTU probe (or its PING) is due: now */
	if (c->flush_pending && !pm_due && ack_hold(c, now)) {
		c->flush_pending = 0;
		post_read(c, now, 0);
		return;
	}
	if (now < ngtcp2_conn_get_expiry(c->conn)) {
		if (c->flush_pending) {
			c->flush_pending = 0;
			post_read(c, now, 1);
		}
		return;
	}
	c->flush_pending = 0;
	c->busy = 1;
	rv = ngtcp2_conn_handle_expiry(c->conn, now);
	c->busy = 0;
	if (rv != 0) {
		quic_conn_fatal(c, rv, now);
		return;
	}
	post_read(c, now, 1);
}

/* ---------------------------------------------------------- public API */

int quic_conn_close(struct quic_conn *c, uint64_t app_error_code, const char *reason)
{
	ngtcp2_connection_close_error ccerr;
	size_t rlen = reason ? strlen(reason) : 0;

	if (!c || c->reported || c->state >= QUIC_ST_CLOSING)
		return -ENOTCONN;
	quic_conn_touch(c);
	if (rlen > QUIC_CLOSE_REASON_MAX)
		rlen = QUIC_CLOSE_REASON_MAX;
	if (c->busy) {
		c->close_pending = 1;
		c->pending_code = app_error_code;
		memcpy(c->pending_reason, reason ? reason : "", rlen);
		c->pending_reason_len = rlen;
		return 0;
	}
	ngtcp2_connection_close_error_set_application_error(&ccerr, app_error_code,
							    (const uint8_t *)reason, rlen);
	quic_conn_set_reason(c, QUIC_CLOSE_LOCAL_APP);
	quic_conn_enter_closing(c, &ccerr, c->ep->now);
	return 0;
}

int quic_conn_set_keepalive(struct quic_conn *c, unsigned int ms)
{
	const ngtcp2_transport_params *rp;
	unsigned int idle;

	if (!c || !c->conn || c->state >= QUIC_ST_CLOSING)
		return -ENOTCONN;
	quic_conn_touch(c);
	/* A keep-alive at or past the idle timeout keeps nothing alive: a
	 * relay reservation under quic.idle_timeout_ms = 5000 was lost every
	 * 5 s (test_fault_relay). At most half of the timeout in effect (ours,
	 * or the peer's when shorter), so that a PING and its ACK fit in. */
	idle = c->ep->o.idle_timeout_ms;
	rp = ngtcp2_conn_get_remote_transport_params(c->conn);
	if (rp && rp->max_idle_timeout &&
	    (!idle || rp->max_idle_timeout / NGTCP2_MILLISECONDS < idle))
		idle = (unsigned int)(rp->max_idle_timeout / NGTCP2_MILLISECONDS);
	if (ms && idle && ms > idle / 2)
		ms = idle / 2 ? idle / 2 : 1;
	c->ka_ns = (uint64_t)ms * NGTCP2_MILLISECONDS;
	ngtcp2_conn_set_keep_alive_timeout(c->conn, c->ka_ns);
	return 0;
}

static int usable(const struct quic_conn *c)
{
	return c && c->state == QUIC_ST_OPEN && !c->reported && !c->close_pending;
}

int quic_stream_open(struct quic_conn *c, int bidi, int64_t *sid)
{
	struct quic_stream *s;
	int rv;

	if (!usable(c))
		return -ENOTCONN;
	quic_conn_touch(c);
	rv = bidi ? ngtcp2_conn_open_bidi_stream(c->conn, sid, NULL)
		  : ngtcp2_conn_open_uni_stream(c->conn, sid, NULL);
	if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED)
		return -EAGAIN;
	if (rv)
		return -ENOMEM;
	s = quic_sbuf_new(c, *sid);
	if (!s) {
		ngtcp2_conn_shutdown_stream(c->conn, *sid, 0);
		return -ENOMEM;
	}
	ngtcp2_conn_set_stream_user_data(c->conn, *sid, s);
	c->streams_opened++;
	c->streams_open++;
	return 0;
}

static ssize_t stream_send(struct quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
			   int fin, void (*release)(void *), void *arg)
{
	struct quic_stream *s;
	size_t room, n;
	uint64_t unacked;
	int rc;

	if (!usable(c))
		return -ENOTCONN;
	quic_conn_touch(c);
	/* Receive-only: a uni stream the peer opened. */
	if ((sid & 0x2) && ((sid & 0x1) == (c->is_server ? 0 : 1)))
		return -ENOENT;
	s = quic_sbuf_find(c, sid);
	if (!s) {
		s = quic_sbuf_new(c, sid);
		if (!s)
			return -ENOMEM;
		if (ngtcp2_conn_set_stream_user_data(c->conn, sid, s) != 0) {
			quic_sbuf_unlink(c, s);
			quic_sbuf_free(s);
			return -ENOENT;
		}
	}
	if (s->fin_queued)
		return -EPIPE;
	unacked = s->total - s->acked;
	room = unacked >= c->ep->o.stream_sndbuf ? 0 : c->ep->o.stream_sndbuf - (size_t)unacked;
	n = len < room ? len : room;
	if (release && n)
		rc = quic_sbuf_append_ref(s, data, n, release, arg);
	else
		rc = quic_sbuf_append(s, data, n);
	if (rc)
		return rc;
	if (!c->sbuf_bytes)
		c->sbuf_moved_ns = c->ep->now;
	c->sbuf_bytes += n;
	if (n == len && fin)
		s->fin_queued = 1;
	quic_sbuf_wake(c, s);
	if (n < len)
		s->want_writable = 1;
	quic_conn_flush(c, c->ep->now);
	return (ssize_t)n;
}

ssize_t quic_stream_send(struct quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
			 int fin)
{
	return stream_send(c, sid, data, len, fin, NULL, NULL);
}

ssize_t quic_stream_send_ref(struct quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
			     int fin, void (*release)(void *arg), void *arg)
{
	if (!release)
		return -EINVAL;
	return stream_send(c, sid, data, len, fin, release, arg);
}

int quic_stream_reset(struct quic_conn *c, int64_t sid, uint64_t app_error_code)
{
	if (!usable(c))
		return -ENOTCONN;
	quic_conn_touch(c);
	if (ngtcp2_conn_shutdown_stream(c->conn, sid, app_error_code) != 0)
		return -ENOENT;
	quic_conn_flush(c, c->ep->now);
	return 0;
}

int quic_conn_send_datagram(struct quic_conn *c, const uint8_t *data, size_t len)
{
	const ngtcp2_transport_params *rp;
	struct quic_dgram *d;

	if (!usable(c))
		return -ENOTCONN;
	quic_conn_touch(c);
	rp = ngtcp2_conn_get_remote_transport_params(c->conn);
	/* DATAGRAM frame overhead: type + length varint, at most 1 + 2 here. */
	if (len > QUIC_MAX_DATAGRAM || !rp || rp->max_datagram_frame_size < len + 3)
		return -EMSGSIZE;
	if (!c->dgq) {
		c->dgq = calloc(QUIC_DEF_MAX_DGRAM_QUEUE, sizeof(*c->dgq));
		if (!c->dgq)
			return -ENOMEM;
	}
	if (c->dgq_len >= QUIC_DEF_MAX_DGRAM_QUEUE)
		return -ENOBUFS;
	d = &c->dgq[(c->dgq_head + c->dgq_len) % QUIC_DEF_MAX_DGRAM_QUEUE];
	memcpy(d->data, data, len);
	d->len = len;
	c->dgq_len++;
	quic_conn_flush(c, c->ep->now);
	return 0;
}

void quic_conn_unacked(const struct quic_conn *c, uint64_t *bytes, uint64_t *still_ns)
{
	*bytes = c->sbuf_bytes;
	*still_ns = c->sbuf_bytes && c->ep->now > c->sbuf_moved_ns ? c->ep->now - c->sbuf_moved_ns : 0;
}

int quic_conn_get_info(struct quic_conn *c, struct quic_conn_info *info)
{
	ngtcp2_conn_stat cs;
	const ngtcp2_path *p;
	gnutls_cipher_algorithm_t cipher;

	memset(info, 0, sizeof(*info));
	memcpy(info->peer_key, c->peer_key, QUIC_KEY_LEN);
	info->have_peer_key = c->have_peer_key;
	info->is_server = c->is_server;
	info->established = c->state == QUIC_ST_OPEN;
	cipher = c->tls ? gnutls_cipher_get(c->tls) : GNUTLS_CIPHER_UNKNOWN;
	if (cipher != GNUTLS_CIPHER_UNKNOWN && cipher != GNUTLS_CIPHER_NULL)
		snprintf(info->cipher, sizeof(info->cipher), "%s", gnutls_cipher_get_name(cipher));
	p = ngtcp2_conn_get_path(c->conn);
	if (p && p->remote.addrlen <= sizeof(info->remote)) {
		memcpy(&info->remote, p->remote.addr, p->remote.addrlen);
		info->remote_len = p->remote.addrlen;
	}
	ngtcp2_conn_get_conn_stat(c->conn, &cs);
	info->smoothed_rtt_ns = cs.smoothed_rtt;
	info->min_rtt_ns = cs.min_rtt == UINT64_MAX ? 0 : cs.min_rtt;
	info->latest_rtt_ns = cs.latest_rtt;
	info->cwnd = cs.cwnd;
	info->bytes_in_flight = cs.bytes_in_flight;
	info->bytes_rx = c->bytes_rx;
	info->bytes_tx = c->bytes_tx;
	info->streams_opened = c->streams_opened;
	info->streams_open = c->streams_open;
	info->datagrams_rx = c->dgrams_rx;
	info->datagrams_tx = c->dgrams_tx;
	quic_conn_unacked(c, &info->unacked, &info->unacked_still_ns);
	info->udp_payload = quic_conn_tx_size(c);
	if (!c->lo && !c->pm.max) {
		size_t m = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn);

		if (m < info->udp_payload)
			info->udp_payload = m;
	}
	info->pmtu_max = c->pm.max;
	info->pmtu_probes = c->pm.probes;
	info->pmtu_acked = c->pm.acked;
	info->pmtu_lost = c->pm.lost;
	info->pmtu_blackholes = c->pm.blackholes;
	return 0;
}

void quic_conn_set_user(struct quic_conn *c, void *user)
{
	c->user = user;
}

void *quic_conn_get_user(const struct quic_conn *c)
{
	return c->user;
}

int quic_conn_is_server(const struct quic_conn *c)
{
	return c->is_server;
}
