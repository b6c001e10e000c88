// SPDX-License-Identifier: MIT
/*
 * One QUIC connection: ngtcp2 + GnuTLS session glue, peer-key verification,
 * stream send buffers, datagram queue, packet writing with GSO batches,
 * timers and the closing / draining periods. No I/O: packets leave through
 * quic_ep_send().
 *
 * Re-entrancy: ngtcp2 forbids writing from inside its callbacks, and an
 * application callback may call quic_stream_send() or quic_conn_close().
 * While ngtcp2 runs (c->busy), such calls only queue; the work is done when
 * ngtcp2 returns (post_read()).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <sodium.h>

#include "quic/quic_int.h"

/* Stream send buffers are chains of blocks: ngtcp2 keeps pointers into
 * sent data until it is acknowledged, so bytes never move. */
#define SBLK_MIN 4096
#define SBLK_MAX 65536
#define MAX_VECS 8
#define CLOSE_REPLAYS_MAX 16 /* CONNECTION_CLOSE replays during the closing period */

struct sblk {
	struct sblk *next;
	size_t cap, len;
	const uint8_t *p; /* data[], or the caller's bytes (quic_stream_send_ref) */
	void (*release)(void *arg); /* caller's bytes: told once they are no longer read */
	void *arg;
	uint8_t data[];
};

struct quic_stream {
	struct quic_stream *next;
	int64_t id;
	struct sblk *head, *tail;
	/* First block that may hold unsent bytes (NULL: start at head), so
	 * each packet does not walk the acknowledged-but-unsent chain. */
	struct sblk *cur;
	uint64_t cur_base; /* stream offset of cur->data[0] */
	uint64_t base;  /* stream offset of head->data[0] */
	uint64_t acked; /* contiguous acked offset */
	uint64_t sent;  /* offset handed to ngtcp2 */
	uint64_t total; /* offset after the last queued byte */
	int fin_queued, fin_sent;
	int round_blocked;
	int want_writable, notify_writable;
};

static const char *const tls_prio =
	"%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
	"+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:"
	"+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1";

const char *quic_tls_prio(void)
{
	return tls_prio;
}

/* ---------------------------------------------------------------- streams */

static struct quic_stream *stream_find(struct quic_conn *c, int64_t id)
{
	struct quic_stream *s;

	for (s = c->streams; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void sblk_free(struct sblk *b)
{
	if (b->release)
		b->release(b->arg);
	free(b);
}

static void stream_free(struct quic_stream *s)
{
	struct sblk *b, *n;

	for (b = s->head; b; b = n) {
		n = b->next;
		sblk_free(b);
	}
	free(s);
}

static void stream_unlink(struct quic_conn *c, struct quic_stream *s)
{
	struct quic_stream **pp;

	for (pp = &c->streams; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			return;
		}
	}
}

static struct quic_stream *stream_new(struct quic_conn *c, int64_t id)
{
	struct quic_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->id = id;
	s->next = c->streams;
	c->streams = s;
	return s;
}

static void stream_link(struct quic_stream *s, struct sblk *b)
{
	if (s->tail)
		s->tail->next = b;
	else
		s->head = b;
	s->tail = b;
}

/* Reference len caller's bytes as one full block (nothing is appended to
 * it): they are read in place until acknowledged, then release(arg). */
static int stream_append_ref(struct quic_stream *s, const uint8_t *data, size_t len,
			     void (*release)(void *), void *arg)
{
	struct sblk *b = malloc(sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->next = NULL;
	b->cap = b->len = len;
	b->p = data;
	b->release = release;
	b->arg = arg;
	stream_link(s, b);
	s->total += len;
	return 0;
}

static int stream_append(struct quic_stream *s, const uint8_t *data, size_t len)
{
	while (len > 0) {
		struct sblk *b = s->tail;
		size_t n;

		if (!b || b->len == b->cap) {
			/* Blocks double while a stream keeps writing (bulk
			 * senders write a few KiB per ACK): fewer blocks, fewer
			 * vectors per packet; small messages stay in 4 KiB. */
			size_t cap = b ? b->cap * 2 : SBLK_MIN;

			if (cap < len)
				cap = len;
			cap = cap < SBLK_MIN ? SBLK_MIN : cap > SBLK_MAX ? SBLK_MAX : cap;

			b = malloc(sizeof(*b) + cap);
			if (!b)
				return -ENOMEM;
			b->next = NULL;
			b->cap = cap;
			b->len = 0;
			b->p = b->data;
			b->release = NULL;
			b->arg = NULL;
			stream_link(s, b);
		}
		n = b->cap - b->len;
		if (n > len)
			n = len;
		memcpy(b->data + b->len, data, n);
		b->len += n;
		data += n;
		len -= n;
		s->total += n;
	}
	return 0;
}

static void stream_ack(struct quic_stream *s, uint64_t end)
{
	if (end > s->acked)
		s->acked = end;
	while (s->head && s->base + s->head->len <= s->acked &&
	       (s->head->len == s->head->cap || s->head != s->tail)) {
		struct sblk *b = s->head;

		s->base += b->len;
		s->head = b->next;
		if (!s->head)
			s->tail = NULL;
		if (s->cur == b)
			s->cur = NULL;
		sblk_free(b);
	}
}

/* Vectors over unsent bytes, at most max of them and no more blocks than
 * it takes to cover want bytes (one packet's worth: every further block
 * header read is a cache miss per packet, measured ~2% of a sender);
 * returns count. */
static size_t stream_vecs(struct quic_stream *s, ngtcp2_vec *v, size_t max, size_t want)
{
	struct sblk *b = s->cur ? s->cur : s->head;
	uint64_t off = s->cur ? s->cur_base : s->base;
	size_t n = 0, got = 0;

	while (b && b->next && off + b->len <= s->sent) {
		off += b->len;
		b = b->next;
	}
	s->cur = b;
	s->cur_base = off;
	for (; b && n < max; off += b->len, b = b->next) {
		if (off + b->len <= s->sent)
			continue;
		uint64_t skip = s->sent > off ? s->sent - off : 0;

		v[n].base = (uint8_t *)(uintptr_t)b->p + skip;
		v[n].len = b->len - (size_t)skip;
		got += v[n].len;
		n++;
		if (got >= want)
			break;
	}
	return n;
}

static int stream_pending(const struct quic_stream *s)
{
	return !s->round_blocked && (s->sent < s->total || (s->fin_queued && !s->fin_sent));
}

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

static void set_reason(struct quic_conn *c, enum quic_close_reason r)
{
	if (c->close.reason == QUIC_CLOSE_NONE)
		c->close.reason = r;
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
		set_reason(c, QUIC_CLOSE_BAD_CERT);
		return -1;
	}
	if (c->pin && sodium_memcmp(pk, c->expected_key, QUIC_KEY_LEN) != 0) {
		c->ep->st.peer_key_mismatch++;
		set_reason(c, QUIC_CLOSE_PEER_KEY_MISMATCH);
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

static int dcid_status_cb(ngtcp2_conn *conn, int type, uint64_t seq, const ngtcp2_cid *cid,
			  const uint8_t *token, void *user_data)
{
	struct quic_conn *c = user_data;
	size_t i;

	for (i = 0; i < c->nrtok; i++) {
		if (c->rtok_seq[i] == seq) {
			c->rtok_seq[i] = c->rtok_seq[--c->nrtok];
			memcpy(c->rtok[i], c->rtok[c->nrtok], NGTCP2_STATELESS_RESET_TOKENLEN);
			break;
		}
	}
	if (type == NGTCP2_CONNECTION_ID_STATUS_TYPE_ACTIVATE && token &&
	    c->nrtok < QUIC_CONN_MAX_CIDS) {
		c->rtok_seq[c->nrtok] = seq;
		memcpy(c->rtok[c->nrtok++], token, NGTCP2_STATELESS_RESET_TOKENLEN);
	}
	return 0;
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
		set_reason(c, QUIC_CLOSE_ALPN);
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	if (!c->have_peer_key) {
		c->ep->st.bad_cert++;
		set_reason(c, QUIC_CLOSE_BAD_CERT);
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	c->state = QUIC_ST_OPEN;
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
	if (ep->o.cb.on_stream_data && c->announced)
		ep->o.cb.on_stream_data(ep->o.cb_arg, c, sid, data, datalen,
					!!(flags & NGTCP2_STREAM_DATA_FLAG_FIN));
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

static int stream_close_cb(ngtcp2_conn *conn, uint32_t flags, int64_t sid, uint64_t code,
			   void *user_data, void *stream_user_data)
{
	struct quic_conn *c = user_data;
	struct quic_stream *s = stream_find(c, sid);

	if (s) {
		stream_unlink(c, s);
		stream_free(s);
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
	struct quic_stream *s = stream_user_data ? stream_user_data : stream_find(c, sid);

	if (!s)
		return 0;
	stream_ack(s, offset + datalen);
	if (s->want_writable) {
		s->want_writable = 0;
		s->notify_writable = 1;
	}
	return 0;
}

static int recv_datagram_cb(ngtcp2_conn *conn, uint32_t flags, const uint8_t *data,
			    size_t datalen, void *user_data)
{
	struct quic_conn *c = user_data;

	c->dgrams_rx++;
	if (c->ep->o.cb.on_datagram && c->announced)
		c->ep->o.cb.on_datagram(c->ep->o.cb_arg, c, data, datalen);
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
	cb->encrypt = ngtcp2_crypto_encrypt_cb;
	cb->decrypt = ngtcp2_crypto_decrypt_cb;
	cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
	cb->update_key = ngtcp2_crypto_update_key_cb;
	cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
	cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
	cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
	cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
	cb->rand = rand_cb;
	cb->get_new_connection_id = get_new_cid_cb;
	cb->remove_connection_id = remove_cid_cb;
	cb->handshake_completed = handshake_completed_cb;
	cb->dcid_status = dcid_status_cb;
	cb->recv_stream_data = recv_stream_data_cb;
	cb->stream_open = stream_open_cb;
	cb->stream_close = stream_close_cb;
	cb->acked_stream_data_offset = acked_cb;
	cb->recv_datagram = recv_datagram_cb;
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
	params.max_datagram_frame_size = QUIC_MAX_DATAGRAM;
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
	if (ep->o.keepalive_ms)
		ngtcp2_conn_set_keep_alive_timeout(c->conn,
						   (uint64_t)ep->o.keepalive_ms * NGTCP2_MILLISECONDS);
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
	for (s = c->streams; s; s = n) {
		n = s->next;
		stream_free(s);
	}
	if (c->conn)
		ngtcp2_conn_del(c->conn);
	if (c->tls)
		gnutls_deinit(c->tls);
	free(c->close_pkt);
	free(c->dgq);
	free(c);
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
	report_closed(c);
	if (c->state != QUIC_ST_DEAD)
		c->ep->ndead++;
	c->state = QUIC_ST_DEAD;
}

/* ngtcp2 0.12 asserts on a negotiated version when it writes a 1-RTT
 * packet (conn_write_pkt), and a server connection gets one only from a
 * client Initial it could process. The endpoint admits v1 Initials only,
 * so this is a second line: until then the connection writes nothing and
 * runs no ngtcp2 timer; it lives until its handshake deadline. */
static int negotiated(const struct quic_conn *c)
{
	return !c->is_server || ngtcp2_conn_get_negotiated_version(c->conn) != 0;
}

static uint64_t close_period(struct quic_conn *c)
{
	return 3 * ngtcp2_conn_get_pto(c->conn);
}

/* Send CONNECTION_CLOSE with ccerr and enter the closing period. */
static void enter_closing(struct quic_conn *c, const ngtcp2_connection_close_error *ccerr,
			  uint64_t now)
{
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	size_t cap = c->ep->o.max_udp_payload;
	ngtcp2_ssize n;
	uint8_t *buf;

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
	conn_send(c, buf, (size_t)n, (size_t)n, &ps.path);
	c->state = QUIC_ST_CLOSING;
	c->close_deadline = now + close_period(c);
	report_closed(c);
}

static void enter_draining(struct quic_conn *c, uint64_t now)
{
	const ngtcp2_connection_close_error *ccerr;
	ngtcp2_connection_close_error e;

	ngtcp2_conn_get_connection_close_error(c->conn, &e);
	ccerr = &e;
	set_reason(c, c->reset_probe ? QUIC_CLOSE_RESET : QUIC_CLOSE_PEER);
	c->close.error_code = ccerr->error_code;
	c->close.is_app = ccerr->type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION;
	c->state = QUIC_ST_DRAINING;
	c->close_deadline = now + close_period(c);
	report_closed(c);
}

/* A fatal error from ngtcp2 (read, write or timer). */
static void on_fatal(struct quic_conn *c, int rv, uint64_t now)
{
	ngtcp2_connection_close_error ccerr;

	switch (rv) {
	case NGTCP2_ERR_DRAINING:
		enter_draining(c, now);
		return;
	case NGTCP2_ERR_IDLE_CLOSE:
		set_reason(c, QUIC_CLOSE_IDLE);
		quic_conn_finish(c);
		return;
	case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
		set_reason(c, QUIC_CLOSE_HANDSHAKE_TIMEOUT);
		quic_conn_finish(c);
		return;
	case NGTCP2_ERR_DROP_CONN:
	case NGTCP2_ERR_RETRY:
	case NGTCP2_ERR_RECV_VERSION_NEGOTIATION:
		/* The last: a valid Version Negotiation packet without v1, the
		 * only version we speak; nothing is owed to the peer. */
		set_reason(c, QUIC_CLOSE_PROTOCOL);
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
			set_reason(c, QUIC_CLOSE_ALPN);
		}
		ngtcp2_connection_close_error_set_transport_error_tls_alert(&ccerr, alert, NULL, 0);
	} else {
		ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, rv, NULL, 0);
	}
	set_reason(c, QUIC_CLOSE_PROTOCOL);
	enter_closing(c, &ccerr, now);
}

/* ------------------------------------------------------------- writing */

struct batch {
	ngtcp2_path_storage ps;
	size_t off, gso, npkt, max_pkt;
};

static void batch_send(struct quic_conn *c, struct batch *b)
{
	if (b->off)
		conn_send(c, c->ep->txbuf, b->off, b->gso, &b->ps.path);
	b->off = 0;
	b->gso = 0;
	b->npkt = 0;
}

/* Account one packet of n bytes just written at txbuf + b->off. */
static void batch_add(struct quic_conn *c, struct batch *b, const ngtcp2_path *path, size_t n)
{
	uint8_t *buf = c->ep->txbuf;

	if (b->npkt > 0 && (n > b->gso || !ngtcp2_path_eq(path, &b->ps.path))) {
		/* Cannot join the batch: send it, move the packet to the front. */
		size_t at = b->off;

		batch_send(c, b);
		memmove(buf, buf + at, n);
	}
	if (b->npkt == 0) {
		ngtcp2_path_copy(&b->ps.path, path);
		b->gso = n;
	}
	b->off += n;
	b->npkt++;
	if (n < b->gso || b->npkt >= b->max_pkt)
		batch_send(c, b);
}

static struct quic_stream *next_stream(struct quic_conn *c)
{
	struct quic_stream *s;

	for (s = c->streams; s; s = s->next)
		if (stream_pending(s))
			return s;
	return NULL;
}

void quic_conn_flush(struct quic_conn *c, uint64_t now)
{
	struct quic_ep *ep = c->ep;
	struct quic_stream *s;
	struct batch b;
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	size_t mtu, quantum;
	int rounds = 0;

	if (c->state >= QUIC_ST_CLOSING)
		return;
	if (!negotiated(c)) {
		c->flush_pending = 0;
		return;
	}
	if (c->busy) {
		/* Inside ngtcp2 (a callback queued data): write as soon as it
		 * returns; the expiry is "now" while a flush is pending. */
		c->flush_pending = 1;
		return;
	}
	mtu = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn);
	if (mtu > ep->o.max_udp_payload)
		mtu = ep->o.max_udp_payload;
	quantum = ngtcp2_conn_get_send_quantum(c->conn);
	memset(&b, 0, sizeof(b));
	ngtcp2_path_storage_zero(&b.ps);
	b.max_pkt = quantum / mtu;
	if (b.max_pkt < 1)
		b.max_pkt = 1;
	if (b.max_pkt > QUIC_MAX_GSO_SEGS)
		b.max_pkt = QUIC_MAX_GSO_SEGS;
	ngtcp2_path_storage_zero(&ps);
	c->busy = 1;
	for (;;) {
		uint8_t *dst = ep->txbuf + b.off;
		ngtcp2_ssize n, ndata = -1;
		ngtcp2_vec v[MAX_VECS];
		size_t nv = 0;
		uint32_t fl = NGTCP2_WRITE_STREAM_FLAG_MORE;
		int64_t sid = -1;
		int accepted = 0;

		if (++rounds > 100000)
			break; /* defensive: never spin */
		memset(&pi, 0, sizeof(pi));
		if (c->dgq_len > 0 && c->state == QUIC_ST_OPEN) {
			struct quic_dgram *d = &c->dgq[c->dgq_head];
			ngtcp2_vec dv = { d->data, d->len };

			/* An empty datagram is no vector: ngtcp2 0.12 asserts
			 * on a zero-length one (found by fuzz_quic_ep). */
			n = ngtcp2_conn_writev_datagram(c->conn, &ps.path, &pi, dst, mtu, &accepted,
							NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &dv,
							d->len ? 1 : 0, now);
			if (accepted || n == NGTCP2_ERR_INVALID_ARGUMENT ||
			    n == NGTCP2_ERR_INVALID_STATE) {
				/* Sent, or can never be sent (too big for the peer). */
				if (accepted)
					c->dgrams_tx++;
				c->dgq_head = (c->dgq_head + 1) % QUIC_DEF_MAX_DGRAM_QUEUE;
				c->dgq_len--;
			}
			if (n == NGTCP2_ERR_WRITE_MORE)
				continue;
			if (n == NGTCP2_ERR_INVALID_ARGUMENT || n == NGTCP2_ERR_INVALID_STATE)
				continue;
			if (n < 0) {
				c->busy = 0;
				on_fatal(c, (int)n, now);
				return;
			}
			if (n == 0) {
				/* Congestion limited: keep the datagram for later. */
				if (!accepted)
					break;
				continue;
			}
			batch_add(c, &b, &ps.path, (size_t)n);
			continue;
		}
		s = c->state == QUIC_ST_OPEN ? next_stream(c) : NULL;
		if (s) {
			sid = s->id;
			nv = stream_vecs(s, v, MAX_VECS, ep->o.max_udp_payload);
			if (s->fin_queued) {
				/* FIN only when every queued byte fits in this call. */
				uint64_t in_vecs = 0;
				size_t i;

				for (i = 0; i < nv; i++)
					in_vecs += v[i].len;
				if (s->sent + in_vecs == s->total)
					fl |= NGTCP2_WRITE_STREAM_FLAG_FIN;
			}
		}
		/* The buffer may take a packet up to our maximum: ngtcp2 keeps
		 * ordinary packets to the path's size and writes its PMTUD
		 * probes (bigger) only into a buffer that can hold them. */
		n = ngtcp2_conn_writev_stream(c->conn, &ps.path, &pi, dst, ep->o.max_udp_payload,
					      &ndata, fl, sid, v, nv, now);
		if (n < 0) {
			if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
			    n == NGTCP2_ERR_STREAM_NOT_FOUND) {
				if (s)
					s->round_blocked = 1;
				continue;
			}
			if (n == NGTCP2_ERR_WRITE_MORE) {
				if (s && ndata >= 0) {
					s->sent += (uint64_t)ndata;
					c->bytes_tx += (uint64_t)ndata;
					if ((fl & NGTCP2_WRITE_STREAM_FLAG_FIN) && s->sent == s->total)
						s->fin_sent = 1;
				}
				continue;
			}
			c->busy = 0;
			on_fatal(c, (int)n, now);
			return;
		}
		if (s && ndata >= 0) {
			s->sent += (uint64_t)ndata;
			c->bytes_tx += (uint64_t)ndata;
			if ((fl & NGTCP2_WRITE_STREAM_FLAG_FIN) && s->sent == s->total)
				s->fin_sent = 1;
		} else if (s && n > 0) {
			/* Packet without this stream's data: congestion or conn-level
			 * flow control. Try the others, then stop. */
			s->round_blocked = 1;
		}
		if (n == 0) {
			if (s) {
				s->round_blocked = 1;
				continue;
			}
			break;
		}
		batch_add(c, &b, &ps.path, (size_t)n);
	}
	batch_send(c, &b);
	for (s = c->streams; s; s = s->next)
		s->round_blocked = 0;
	/* Pacing: ngtcp2 0.12 refuses to send before next_ts = ts + (bytes of
	 * this pass) / pacing rate. Crediting the interval with
	 * QUIC_PACING_SLACK_NS (1 ms, as later ngtcp2 releases credit a
	 * pacing overhead) lets the ACKs of a burst free the next burst at
	 * once instead of after a timer wake-up. Measured with microsecond
	 * timers (docs/QUIC.md): 250 us and 1 ms give the same throughput,
	 * 0-50 us about 10% less. */
	/* Not during the handshake: before the first RTT sample the pacing
	 * rate comes from the 333 ms initial RTT, and pacing one Initial
	 * would hold the client's Finished (and any early stream data) back
	 * ~30 ms, until a PTO probe carries it (seen as a 20 ms `quic ping`). */
	if (ngtcp2_conn_get_handshake_completed(c->conn))
		ngtcp2_conn_update_pkt_tx_time(c->conn, now > QUIC_PACING_SLACK_NS ?
						       now - QUIC_PACING_SLACK_NS : now);
	c->busy = 0;
}

/* --------------------------------------------------------- input, timer */

/* Work deferred while ngtcp2 was running. */
static void post_read(struct quic_conn *c, uint64_t now)
{
	struct quic_ep *ep = c->ep;
	struct quic_stream *s;

	if (c->close_pending && c->state < QUIC_ST_CLOSING) {
		ngtcp2_connection_close_error ccerr;

		c->close_pending = 0;
		ngtcp2_connection_close_error_set_application_error(
			&ccerr, c->pending_code, c->pending_reason, c->pending_reason_len);
		set_reason(c, QUIC_CLOSE_LOCAL_APP);
		enter_closing(c, &ccerr, now);
		return;
	}
	quic_conn_flush(c, now);
	/* Writable notifications: restart the scan after each callback, the
	 * application may add or finish streams. */
	for (;;) {
		for (s = c->streams; s; s = s->next)
			if (s->notify_writable)
				break;
		if (!s || c->state != QUIC_ST_OPEN)
			break;
		s->notify_writable = 0;
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
			conn_send(c, c->close_pkt, c->close_pkt_len, c->close_pkt_len, &p);
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
	rv = ngtcp2_conn_read_pkt(c->conn, &path, &pi, buf, len, now);
	c->busy = 0;
	if (rv != 0) {
		if (rv == NGTCP2_ERR_DRAINING || rv == NGTCP2_ERR_CLOSING ||
		    ngtcp2_err_is_fatal(rv) || rv == NGTCP2_ERR_CRYPTO ||
		    rv == NGTCP2_ERR_DROP_CONN || rv == NGTCP2_ERR_RETRY ||
		    rv == NGTCP2_ERR_RECV_VERSION_NEGOTIATION ||
		    rv == NGTCP2_ERR_CALLBACK_FAILURE) {
			c->ep->st.drop_conn_error++;
			on_fatal(c, rv, now);
			return;
		}
		/* Non-fatal: the packet was discarded. */
		c->ep->st.drop_conn_error++;
		return;
	}
	if (c->close_pending) {
		post_read(c, now);
		return;
	}
	/* Write once per receive batch, not once per datagram: the caller
	 * runs quic_ep_handle_expiry() after its batch (the expiry is "now"
	 * while a flush is pending), so one ACK covers the batch and the
	 * packets freed by many ACKs leave as one GSO burst. */
	c->flush_pending = 1;
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
	if (!negotiated(c))
		return c->hs_deadline;
	x = ngtcp2_conn_get_expiry(c->conn);
	return x < c->trim_at ? x : c->trim_at;
}

void quic_conn_timer(struct quic_conn *c, uint64_t now)
{
	int rv;

	if (c->state == QUIC_ST_DEAD)
		return;
	if (c->state >= QUIC_ST_CLOSING) {
		if (now >= c->close_deadline)
			quic_conn_finish(c);
		return;
	}
	if (!negotiated(c)) {
		c->flush_pending = 0;
		if (now >= c->hs_deadline) {
			set_reason(c, QUIC_CLOSE_HANDSHAKE_TIMEOUT);
			quic_conn_finish(c);
		}
		return;
	}
	if (now >= c->trim_at) {
		c->trim_at = UINT64_MAX;
		quic_mem_trim(&c->mem);
	}
	if (now < ngtcp2_conn_get_expiry(c->conn)) {
		if (c->flush_pending) {
			c->flush_pending = 0;
			post_read(c, now);
		}
		return;
	}
	c->flush_pending = 0;
	c->busy = 1;
	rv = ngtcp2_conn_handle_expiry(c->conn, now);
	c->busy = 0;
	if (rv != 0) {
		on_fatal(c, rv, now);
		return;
	}
	post_read(c, now);
}

/* ---------------------------------------------------------- public API */

int quic_conn_close(struct quic_conn *c, uint64_t app_error_code, const char *reason)
{
	ngtcp2_connection_close_error ccerr;
	size_t rlen = reason ? strlen(reason) : 0;

	if (!c || c->reported || c->state >= QUIC_ST_CLOSING)
		return -ENOTCONN;
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
	set_reason(c, QUIC_CLOSE_LOCAL_APP);
	enter_closing(c, &ccerr, c->ep->now);
	return 0;
}

int quic_conn_set_keepalive(struct quic_conn *c, unsigned int ms)
{
	if (!c || !c->conn || c->state >= QUIC_ST_CLOSING)
		return -ENOTCONN;
	ngtcp2_conn_set_keep_alive_timeout(c->conn, (uint64_t)ms * NGTCP2_MILLISECONDS);
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
	rv = bidi ? ngtcp2_conn_open_bidi_stream(c->conn, sid, NULL)
		  : ngtcp2_conn_open_uni_stream(c->conn, sid, NULL);
	if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED)
		return -EAGAIN;
	if (rv)
		return -ENOMEM;
	s = stream_new(c, *sid);
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
	/* Receive-only: a uni stream the peer opened. */
	if ((sid & 0x2) && ((sid & 0x1) == (c->is_server ? 0 : 1)))
		return -ENOENT;
	s = stream_find(c, sid);
	if (!s) {
		s = stream_new(c, sid);
		if (!s)
			return -ENOMEM;
		if (ngtcp2_conn_set_stream_user_data(c->conn, sid, s) != 0) {
			stream_unlink(c, s);
			stream_free(s);
			return -ENOENT;
		}
	}
	if (s->fin_queued)
		return -EPIPE;
	unacked = s->total - s->acked;
	room = unacked >= c->ep->o.stream_sndbuf ? 0 : c->ep->o.stream_sndbuf - (size_t)unacked;
	n = len < room ? len : room;
	if (release && n)
		rc = stream_append_ref(s, data, n, release, arg);
	else
		rc = stream_append(s, data, n);
	if (rc)
		return rc;
	if (n == len && fin)
		s->fin_queued = 1;
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

int quic_conn_get_info(struct quic_conn *c, struct quic_conn_info *info)
{
	ngtcp2_conn_stat cs;
	const ngtcp2_path *p;

	memset(info, 0, sizeof(*info));
	memcpy(info->peer_key, c->peer_key, QUIC_KEY_LEN);
	info->have_peer_key = c->have_peer_key;
	info->is_server = c->is_server;
	info->established = c->state == QUIC_ST_OPEN;
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
