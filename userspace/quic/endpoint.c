// SPDX-License-Identifier: MIT
/*
 * QUIC endpoint: the per-worker demultiplexer. Routes datagrams by
 * destination connection id (so a peer that changes address keeps its
 * connection), accepts new connections under global and per-address
 * limits, answers every version but QUIC v1 with Version Negotiation (so no
 * connection ngtcp2 would build for a draft or v2 ever exists), floods with
 * Retry (address-validation tokens sealed with a per-endpoint key), and
 * unknown short-header packets with a stateless reset. The hub of the
 * core: it owns its connections (conn.c and its parts) and calls them;
 * they reach back only to what lies below both (ep_wire.c: the CID table
 * and quic_ep_send).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <sodium.h>

#include "quic/quic_int.h"

#define NS_PER_S 1000000000ULL

/* The connections' GnuTLS priority: TLS 1.3 only, without the middlebox
 * compatibility mode (RFC 9001 8.4 forbids it in QUIC). As a server our
 * order wins (%SERVER_PRECEDENCE): AES-128-GCM, which every TLS 1.3 peer
 * implements (RFC 8446 9.1), whenever the client offers it, so that a
 * client preferring ChaCha20-Poly1305 (GnuTLS's: ~2.5 us a 1,420-byte
 * packet on the Intel host, 18x weft's AES-GCM there) cannot make a seed
 * pay that for its bytes; ChaCha20 and AES-CCM stay for clients that
 * offer nothing else (docs/QUIC.md "AES-GCM on wide vectors"). */
static const char *const tls_prio =
	"%DISABLE_TLS13_COMPAT_MODE:%SERVER_PRECEDENCE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:"
	"+AES-128-GCM:"
	"+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:"
	"+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1";

/* --------------------------------------------------------- classification */

enum quic_pkt_verdict quic_pkt_classify(const uint8_t *buf, size_t len, int server,
					struct quic_pkt_inv *inv)
{
	struct quic_pkt_inv tmp;
	size_t off;

	if (!inv)
		inv = &tmp;
	memset(inv, 0, sizeof(*inv));
	if (!buf || len == 0)
		return QUIC_PKT_DROP;
	if (!(buf[0] & 0x80)) {
		/* Short header: 1 byte, then our fixed-length DCID. */
		if (len < 1 + QUIC_SCID_LEN)
			return QUIC_PKT_DROP;
		inv->dcid = buf + 1;
		inv->dcidlen = QUIC_SCID_LEN;
		return QUIC_PKT_SHORT;
	}
	/* Long header: flags, version, DCID length and DCID, SCID length and
	 * SCID (each id up to 255 bytes in versions we do not know). */
	if (len < 7)
		return QUIC_PKT_DROP;
	inv->long_hdr = 1;
	inv->version = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 |
		       buf[4];
	inv->dcidlen = buf[5];
	off = 6 + inv->dcidlen;
	if (off + 1 > len)
		return QUIC_PKT_DROP;
	inv->dcid = buf + 6;
	inv->scidlen = buf[off];
	if (off + 1 + inv->scidlen > len)
		return QUIC_PKT_DROP;
	inv->scid = buf + off + 1;
	inv->type = (buf[0] >> 4) & 0x3;
	if (inv->version == NGTCP2_PROTO_VER_V1) {
		if (inv->dcidlen > NGTCP2_MAX_CIDLEN || inv->scidlen > NGTCP2_MAX_CIDLEN)
			return QUIC_PKT_DROP;
		return QUIC_PKT_V1;
	}
	if (inv->version == 0) {
		/* Only a connection we dialled can be waiting for one; it
		 * carries our ids, and never gets an answer. */
		if (inv->dcidlen > NGTCP2_MAX_CIDLEN || inv->scidlen > NGTCP2_MAX_CIDLEN)
			return QUIC_PKT_DROP;
		return QUIC_PKT_VN;
	}
	/* A version we do not speak: ngtcp2 0.12 would accept draft-29 and
	 * the provisional v2 and build connections it cannot drive. */
	if (server && len >= NGTCP2_MAX_UDP_PAYLOAD_SIZE)
		return QUIC_PKT_SEND_VN;
	return QUIC_PKT_DROP;
}

static void ep_send_to(struct quic_ep *ep, const uint8_t *buf, size_t len,
		       const struct sockaddr *local, socklen_t local_len,
		       const struct sockaddr *remote, socklen_t remote_len)
{
	ngtcp2_path p;

	p.local.addr = (ngtcp2_sockaddr *)local;
	p.local.addrlen = local_len;
	p.remote.addr = (ngtcp2_sockaddr *)remote;
	p.remote.addrlen = remote_len;
	p.user_data = NULL;
	quic_ep_send(ep, buf, len, len, &p);
}

/* Token bucket of rate per second, burst = rate; 1 = allowed. */
static int bucket_take(uint64_t *tokens, uint64_t *ts, unsigned int rate, uint64_t now)
{
	uint64_t cap = (uint64_t)rate * NS_PER_S;

	if (*ts == 0) {
		*ts = now;
		*tokens = cap;
	}
	if (now > *ts) {
		/* A full second refills the bucket (and keeps the product
		 * below from overflowing after a long idle time). */
		uint64_t add = now - *ts >= NS_PER_S ? cap : (now - *ts) * rate;

		*tokens = add >= cap - *tokens ? cap : *tokens + add;
		*ts = now;
	}
	if (*tokens < NS_PER_S)
		return 0;
	*tokens -= NS_PER_S;
	return 1;
}

/* ------------------------------------------------------------ lifecycle */

int quic_ep_new(struct quic_ep **out, const struct quic_ep_opts *opts)
{
	static const unsigned char ctx[] = "weft quic endpoint secret v1";
	struct quic_ep *ep;
	size_t alen;
	int rc;

	*out = NULL;
	if (!opts || !opts->node_pk || !opts->node_sk || !opts->send)
		return -EINVAL;
	if (opts->local && (opts->local_len == 0 || opts->local_len > sizeof(ep->local)))
		return -EINVAL;
	if (opts->max_udp_payload && (opts->max_udp_payload < NGTCP2_MAX_UDP_PAYLOAD_SIZE ||
				      opts->max_udp_payload > 65527))
		return -EINVAL;
	if ((opts->lo_udp_payload && (opts->lo_udp_payload < NGTCP2_MAX_UDP_PAYLOAD_SIZE ||
				     opts->lo_udp_payload > 65527)) ||
	    (opts->max_rx_udp_payload && (opts->max_rx_udp_payload < NGTCP2_MAX_UDP_PAYLOAD_SIZE ||
					  opts->max_rx_udp_payload > 65527)))
		return -EINVAL;
	if (opts->cid_route_count > 256 ||
	    (opts->cid_route_count && opts->cid_route_index >= opts->cid_route_count))
		return -EINVAL;
	if (opts->fair && opts->fair_slot >= quic_fair_slots(opts->fair))
		return -EINVAL;
	alen = opts->alpn ? strlen(opts->alpn) : strlen(QUIC_ALPN);
	if (alen == 0 || alen > 255)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EPROTO;
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	rc = quic_aead_resolve(opts->aead, &ep->gcm);
	if (rc) {
		free(ep);
		return rc;
	}
	ep->o = *opts;
	ep->o.node_pk = NULL;
	ep->o.node_sk = NULL;
	ep->o.local = NULL;
	ep->o.alpn = NULL;
	memcpy(ep->alpn, opts->alpn ? opts->alpn : QUIC_ALPN, alen);
	memcpy(ep->pk, opts->node_pk, QUIC_KEY_LEN);
	if (opts->local) {
		memcpy(&ep->local, opts->local, opts->local_len);
		ep->local_len = opts->local_len;
	}
#define DEF(f, v)          \
	do {               \
		if (!ep->o.f) \
			ep->o.f = (v); \
	} while (0)
	DEF(max_conns, QUIC_DEF_MAX_CONNS);
	DEF(max_conns_per_addr, QUIC_DEF_MAX_CONNS_PER_ADDR);
	DEF(idle_timeout_ms, QUIC_DEF_IDLE_TIMEOUT_MS);
	DEF(handshake_timeout_ms, QUIC_DEF_HANDSHAKE_TIMEOUT_MS);
	DEF(retry_rate, QUIC_DEF_RETRY_RATE);
	DEF(reset_rate, QUIC_DEF_RESET_RATE);
	DEF(stream_sndbuf, QUIC_DEF_STREAM_SNDBUF);
	DEF(max_data, QUIC_DEF_MAX_DATA);
	DEF(max_stream_data, QUIC_DEF_MAX_STREAM_DATA);
	DEF(max_streams_bidi, QUIC_DEF_MAX_STREAMS);
	DEF(max_streams_uni, QUIC_DEF_MAX_STREAMS);
	DEF(max_udp_payload, QUIC_MAX_UDP_PAYLOAD);
	DEF(lo_udp_payload, ep->o.max_udp_payload);
#undef DEF
	/* Tokens and stateless-reset keys come from the node key, so they
	 * survive a restart of the same node (a restarted node can reset the
	 * connections of its previous run) and differ between nodes. */
	crypto_generichash(ep->secret, sizeof(ep->secret), ctx, sizeof(ctx) - 1, opts->node_sk,
			   32);
	rc = quic_cert_cred_new(&ep->cred, opts->node_pk, opts->node_sk);
	if (rc)
		goto err;
	rc = -EPROTO;
	if (gnutls_priority_init2(&ep->prio, tls_prio, NULL, 0) < 0) {
		ep->prio = NULL;
		goto err;
	}
	rc = -ENOMEM;
	ep->txbuf = malloc((size_t)QUIC_MAX_GSO_SEGS * quic_ep_max_tx(ep));
	if (!ep->txbuf)
		goto err;
	ep->cids = calloc(QUIC_CID_TABLE_MIN, sizeof(*ep->cids));
	if (!ep->cids)
		goto err;
	ep->cid_cap = QUIC_CID_TABLE_MIN;
	quic_fair_ep_init(&ep->fair, opts->fair, opts->fair_slot);
	*out = ep;
	return 0;
err:
	quic_ep_free(ep);
	return rc;
}

static void ep_unlink(struct quic_ep *ep, struct quic_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		ep->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->linked = 0;
	ep->nconns--;
	quic_ep_ip_del(ep, c); /* when it did not die first (the endpoint's end) */
	quic_dl_unlink(ep, c);
}

static void ep_link(struct quic_ep *ep, struct quic_conn *c)
{
	c->prev = NULL;
	c->next = ep->conns;
	if (ep->conns)
		ep->conns->prev = c;
	ep->conns = c;
	c->linked = 1;
	ep->nconns++;
	quic_ep_ip_add(ep, c);
	quic_dl_link(ep, c);
}

/* Free connections whose life is over. */
static void ep_sweep(struct quic_ep *ep)
{
	struct quic_conn *c, *n;

	/* Runs after every datagram and timer pass. Only the connections
	 * that died are visited: a scan of every connection after each
	 * death cost a seed with thousands of them a walk over cold memory
	 * (4,000 connections: hundreds of microseconds) per connection
	 * that ended; before that, a scan after every datagram was 3% of a
	 * busy server's CPU. */
	if (!ep->ndead)
		return;
	for (c = ep->dead; c; c = n) {
		n = c->dead_next;
		c->dead_next = NULL;
		ep_unlink(ep, c);
		quic_conn_destroy(c);
	}
	ep->dead = NULL;
	ep->ndead = 0;
}

void quic_ep_free(struct quic_ep *ep)
{
	struct quic_conn *c;

	if (!ep)
		return;
	while ((c = ep->conns)) {
		if (!c->reported) {
			c->close.reason = QUIC_CLOSE_ENDPOINT;
			quic_conn_finish(c);
		}
		ep_unlink(ep, c);
		quic_conn_destroy(c);
	}
	quic_ep_ip_free(ep);
	free(ep->cids);
	free(ep->dl);
	free(ep->txbuf);
	if (ep->prio)
		gnutls_priority_deinit(ep->prio);
	if (ep->cred)
		gnutls_certificate_free_credentials(ep->cred);
	sodium_memzero(ep->secret, sizeof(ep->secret));
	free(ep);
}

/* --------------------------------------------------------------- input */

static int same_ip(const struct sockaddr_storage *a, const struct sockaddr *b)
{
	if (a->ss_family != b->sa_family)
		return 0;
	if (b->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (b->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
	return 0;
}

/* Connections not dead: every dead one is still listed (and counted in
 * ndead) until ep_sweep frees it. */
static size_t live_conns(const struct quic_ep *ep)
{
	return ep->nconns > ep->ndead ? ep->nconns - ep->ndead : 0;
}

/* Would a new connection from `from` exceed max_conns_per_addr? One
 * lookup in the per-IP counts (ep_ipcount.c); the walk over every
 * connection is left for an endpoint that found no memory for them. */
static int addr_full(const struct quic_ep *ep, const struct sockaddr *from)
{
	const struct quic_conn *c;
	size_t n = 0;

	if (live_conns(ep) < ep->o.max_conns_per_addr)
		return 0;
	if (ep->nipc)
		return quic_ep_ip_count(ep, from) >= ep->o.max_conns_per_addr;
	for (c = ep->conns; c; c = c->next)
		if (c->state != QUIC_ST_DEAD && same_ip(&c->src, from) &&
		    ++n >= ep->o.max_conns_per_addr)
			return 1;
	return 0;
}

static void send_vn(struct quic_ep *ep, const struct quic_pkt_inv *inv,
		    const struct sockaddr *local, socklen_t local_len, const struct sockaddr *remote,
		    socklen_t remote_len)
{
	static const uint32_t sv[] = { NGTCP2_PROTO_VER_V1 };
	/* flags, version, two ids of up to 255 bytes with their lengths, v1 */
	uint8_t buf[1 + 4 + 2 * (1 + 255) + sizeof(sv)], r;
	ngtcp2_ssize n;

	randombytes_buf(&r, 1);
	/* Echo the ids swapped (RFC 8999 6). */
	n = ngtcp2_pkt_write_version_negotiation(buf, sizeof(buf), r, inv->scid, inv->scidlen,
						 inv->dcid, inv->dcidlen, sv,
						 sizeof(sv) / sizeof(sv[0]));
	if (n <= 0)
		return;
	ep->st.version_negotiations++;
	ep_send_to(ep, buf, (size_t)n, local, local_len, remote, remote_len);
}

static void send_close_initial(struct quic_ep *ep, const ngtcp2_pkt_hd *hd, uint64_t code,
			       const struct sockaddr *local, socklen_t local_len,
			       const struct sockaddr *remote, socklen_t remote_len)
{
	uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
	ngtcp2_ssize n;

	n = ngtcp2_crypto_write_connection_close(buf, sizeof(buf), hd->version, &hd->scid,
						 &hd->dcid, code, NULL, 0);
	if (n > 0)
		ep_send_to(ep, buf, (size_t)n, local, local_len, remote, remote_len);
}

static void send_retry(struct quic_ep *ep, const ngtcp2_pkt_hd *hd, const struct sockaddr *local,
		       socklen_t local_len, const struct sockaddr *remote, socklen_t remote_len,
		       uint64_t now)
{
	uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN], buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
	ngtcp2_cid scid;
	ngtcp2_ssize tl, n;

	scid.datalen = QUIC_SCID_LEN;
	quic_ep_cid_gen(ep, scid.data, scid.datalen);
	tl = ngtcp2_crypto_generate_retry_token(token, ep->secret, QUIC_SECRET_LEN, hd->version,
						(const ngtcp2_sockaddr *)remote, remote_len,
						&scid, &hd->dcid, now);
	if (tl < 0)
		return;
	n = ngtcp2_crypto_write_retry(buf, sizeof(buf), hd->version, &hd->scid, &scid, &hd->dcid,
				      token, (size_t)tl);
	if (n <= 0)
		return;
	ep->st.retries_sent++;
	ep_send_to(ep, buf, (size_t)n, local, local_len, remote, remote_len);
}

static void send_reset(struct quic_ep *ep, const uint8_t *dcid, size_t len,
		       const struct sockaddr *local, socklen_t local_len,
		       const struct sockaddr *remote, socklen_t remote_len, uint64_t now)
{
	uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN], rnd[64], buf[64];
	ngtcp2_cid cid;
	size_t total, rlen;
	ngtcp2_ssize n;

	/* Smaller than what triggered it (no reset loops between two
	 * endpoints), and at least 41 bytes so it looks like a short packet
	 * with a 20-byte CID (RFC 9000 10.3). */
	if (len < 42)
		return;
	if (!bucket_take(&ep->reset_tokens, &ep->reset_ts, ep->o.reset_rate, now))
		return;
	total = len - 1 < sizeof(buf) ? len - 1 : sizeof(buf);
	rlen = total - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
	cid.datalen = QUIC_SCID_LEN;
	memcpy(cid.data, dcid, QUIC_SCID_LEN);
	if (ngtcp2_crypto_generate_stateless_reset_token(token, ep->secret, QUIC_SECRET_LEN,
							 &cid) != 0)
		return;
	randombytes_buf(rnd, rlen);
	n = ngtcp2_pkt_write_stateless_reset(buf, sizeof(buf), token, rnd, rlen);
	if (n <= 0)
		return;
	ep->st.stateless_resets_sent++;
	ep_send_to(ep, buf, (size_t)n, local, local_len, remote, remote_len);
}

static int need_retry(struct quic_ep *ep, uint64_t now)
{
	switch (ep->o.retry_mode) {
	case QUIC_RETRY_ALWAYS:
		return 1;
	case QUIC_RETRY_NEVER:
		return 0;
	default:
		return !bucket_take(&ep->retry_tokens, &ep->retry_ts, ep->o.retry_rate, now);
	}
}

/* A long-header packet for no known connection: maybe a new client. */
static void ep_accept(struct quic_ep *ep, const uint8_t *buf, size_t len,
		      const struct sockaddr *local, socklen_t local_len,
		      const struct sockaddr *remote, socklen_t remote_len, uint64_t now)
{
	ngtcp2_pkt_hd hd;
	ngtcp2_cid odcid;
	const ngtcp2_cid *podcid = NULL;
	struct quic_conn *c;
	int rv;

	rv = ngtcp2_accept(&hd, buf, len);
	if (rv == NGTCP2_ERR_RETRY) {
		send_retry(ep, &hd, local, local_len, remote, remote_len, now);
		return;
	}
	if (rv != 0 || hd.type == NGTCP2_PKT_0RTT) {
		ep->st.drop_garbage++;
		return;
	}
	if (live_conns(ep) >= ep->o.max_conns || addr_full(ep, remote)) {
		ep->st.drop_limit++;
		send_close_initial(ep, &hd, NGTCP2_CONNECTION_REFUSED, local, local_len, remote,
				   remote_len);
		return;
	}
	if (hd.token.len > 0 && hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
		if (ngtcp2_crypto_verify_retry_token(&odcid, hd.token.base, hd.token.len,
						     ep->secret, QUIC_SECRET_LEN, hd.version,
						     (const ngtcp2_sockaddr *)remote, remote_len,
						     &hd.dcid, QUIC_RETRY_TOKEN_TTL_NS, now) != 0) {
			ep->st.bad_tokens++;
			send_close_initial(ep, &hd, NGTCP2_INVALID_TOKEN, local, local_len, remote,
					   remote_len);
			return;
		}
		podcid = &odcid;
	} else if (hd.token.len > 0) {
		/* We issue no NEW_TOKEN tokens: treat as absent. */
		hd.token.len = 0;
		hd.token.base = NULL;
	}
	if (!podcid && need_retry(ep, now)) {
		send_retry(ep, &hd, local, local_len, remote, remote_len, now);
		return;
	}
	if (quic_dl_reserve(ep, ep->nconns + 1) ||
	    quic_conn_new(&c, ep, 1, &hd, podcid, local, local_len, remote, remote_len, NULL,
			  now)) {
		ep->st.drop_conn_error++;
		return;
	}
	ep_link(ep, c);
	ep->st.conns_accepted++;
	quic_conn_input(c, buf, len, local, local_len, remote, remote_len, now);
}

/* A short-header packet for a connection we do not know (any more), or a
 * stateless reset from a peer that lost one of ours: those carry a random
 * DCID and end with a token we were given. The token is looked up in the
 * endpoint's table (quic_ep_rtok_conn), not compared with every
 * connection's: a flood of such datagrams with forged sources cost a walk
 * over every connection each (up to quic.max_conns, 4096, with a
 * constant-time compare per token). */
static void ep_unknown_short(struct quic_ep *ep, const uint8_t *buf, size_t len,
			     const struct quic_pkt_inv *inv, const struct sockaddr *local,
			     socklen_t local_len, const struct sockaddr *remote,
			     socklen_t remote_len, uint64_t now)
{
	struct quic_conn *c = NULL;

	if (len >= 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN) {
		const uint8_t *tail = buf + len - NGTCP2_STATELESS_RESET_TOKENLEN;

		c = quic_ep_rtok_conn(ep, tail);
		if (c && !quic_conn_reset_match(c, tail))
			c = NULL; /* closing already */
	}
	if (c) {
		c->reset_probe = 1;
		quic_conn_input(c, buf, len, local, local_len, remote, remote_len, now);
		c->reset_probe = 0;
	} else {
		ep->st.drop_garbage++;
		send_reset(ep, inv->dcid, len, local, local_len, remote, remote_len, now);
	}
}

/* May a long-header v1 packet (or a Version Negotiation packet) of this
 * type reach this live connection? Retry and Version Negotiation answer a
 * client's Initial: only a connection we dialled, still in its handshake,
 * takes them (ngtcp2 validates them further). */
static int long_for_conn(const struct quic_conn *c, enum quic_pkt_verdict v,
			 const struct quic_pkt_inv *inv)
{
	if (v == QUIC_PKT_VN || inv->type == QUIC_LT_RETRY)
		return !c->is_server && c->state == QUIC_ST_HANDSHAKE;
	return 1;
}

int quic_ep_input(struct quic_ep *ep, const uint8_t *buf, size_t len,
		  const struct sockaddr *local, socklen_t local_len,
		  const struct sockaddr *remote, socklen_t remote_len, uint64_t now_ns)
{
	struct quic_pkt_inv inv;
	enum quic_pkt_verdict v;
	struct quic_cid_ent *e;

	ep->now = now_ns;
	ep->st.rx_datagrams++;
	ep->st.rx_bytes += len;
	if (!local) {
		local = (const struct sockaddr *)&ep->local;
		local_len = ep->local_len;
	}
	if (!buf || len == 0 || !remote || remote_len == 0 ||
	    remote_len > sizeof(struct sockaddr_storage)) {
		ep->st.drop_garbage++;
		return 0;
	}
	v = quic_pkt_classify(buf, len, ep->o.server, &inv);
	if (v == QUIC_PKT_DROP) {
		ep->st.drop_garbage++;
		return 0;
	}
	if (v == QUIC_PKT_SEND_VN) {
		send_vn(ep, &inv, local, local_len, remote, remote_len);
		return 0;
	}
	e = ep->rx_last;
	if (!e || !inv.dcidlen || e->len != inv.dcidlen || memcmp(e->id, inv.dcid, inv.dcidlen)) {
		e = inv.dcidlen ? quic_ep_cid_find(ep, inv.dcid, inv.dcidlen) : NULL;
		ep->rx_last = e;
	}
	if (e && e->conn->state == QUIC_ST_DEAD)
		e = NULL;
	if (e && e->conn->nalias)
		quic_conn_path_rx(e->conn, &remote, &remote_len);
	if (e && (v == QUIC_PKT_SHORT || long_for_conn(e->conn, v, &inv)))
		quic_conn_input(e->conn, buf, len, local, local_len, remote, remote_len, now_ns);
	else if (!e && v == QUIC_PKT_SHORT)
		ep_unknown_short(ep, buf, len, &inv, local, local_len, remote, remote_len, now_ns);
	else if (!e && v == QUIC_PKT_V1 && ep->o.server && inv.type == QUIC_LT_INITIAL &&
		 len >= NGTCP2_MAX_UDP_PAYLOAD_SIZE)
		/* Only a padded client Initial may create a connection
		 * (RFC 9000 14.1); small Initials, 0-RTT, Handshake and Retry
		 * packets for no connection are dropped unanswered. */
		ep_accept(ep, buf, len, local, local_len, remote, remote_len, now_ns);
	else
		ep->st.drop_garbage++;
	ep_sweep(ep);
	return 0;
}

uint64_t quic_ep_expiry(const struct quic_ep *ep)
{
	const struct quic_conn *c;
	uint64_t t = UINT64_MAX, x;

	for (c = ep->conns; c; c = c->next) {
		x = quic_conn_expiry(c);
		if (x < t)
			t = x;
	}
	return t;
}

int quic_ep_handle_expiry(struct quic_ep *ep, uint64_t now_ns)
{
	struct quic_conn *c, *n;

	ep->now = now_ns;
	for (c = ep->conns; c; c = n) {
		n = c->next;
		if (quic_conn_expiry(c) <= now_ns)
			quic_conn_timer(c, now_ns);
	}
	ep_sweep(ep);
	return 0;
}

/* The connections due at now_ns run their timers (each once), by the
 * deadline heap (ep_deadline.c): only the expiries of connections touched
 * since the last pass are computed again. */
uint64_t quic_ep_run_expiry(struct quic_ep *ep, uint64_t now_ns)
{
	struct quic_conn *c, *n;
	uint64_t t;

	quic_dl_refresh(ep);
	c = quic_dl_take_due(ep, now_ns);
	if (c)
		ep->now = now_ns;
	for (; c; c = n) {
		n = c->due_next;
		c->due_next = NULL;
		quic_conn_timer(c, now_ns);
	}
	ep_sweep(ep);
	/* A timer's callbacks may have touched other connections (a stream
	 * write from another's data): they are on the touched list. */
	quic_dl_refresh(ep);
	t = quic_dl_next(ep);
#ifdef WEFT_TEST_HOOKS
	/* every state change went through an entry point that touched it */
	if (t != quic_ep_expiry(ep)) {
		fprintf(stderr, "quic: deadline heap says %llu, the connections %llu\n",
			(unsigned long long)t, (unsigned long long)quic_ep_expiry(ep));
		abort();
	}
#endif
	return t;
}

int quic_ep_connect(struct quic_ep *ep, const struct sockaddr *remote, socklen_t remote_len,
		    const uint8_t *expected_key, uint64_t now_ns, struct quic_conn **out)
{
	return quic_ep_connect_from(ep, NULL, 0, remote, remote_len, expected_key, now_ns, out);
}

int quic_ep_connect_from(struct quic_ep *ep, const struct sockaddr *local, socklen_t local_len,
			 const struct sockaddr *remote, socklen_t remote_len,
			 const uint8_t *expected_key, uint64_t now_ns, struct quic_conn **out)
{
	struct quic_conn *c;
	int rc;

	*out = NULL;
	if (!local) {
		local = (const struct sockaddr *)&ep->local;
		local_len = ep->local_len;
	}
	if (!remote || remote_len == 0 || remote_len > sizeof(struct sockaddr_storage) ||
	    !local_len || local_len > sizeof(struct sockaddr_storage))
		return -EINVAL;
	if (live_conns(ep) >= ep->o.max_conns)
		return -EMFILE;
	if (quic_dl_reserve(ep, ep->nconns + 1))
		return -ENOMEM;
	ep->now = now_ns;
	rc = quic_conn_new(&c, ep, 0, NULL, NULL, local, local_len, remote, remote_len,
			   expected_key, now_ns);
	if (rc)
		return rc;
	ep_link(ep, c);
	ep->st.conns_dialed++;
	quic_conn_flush(c, now_ns);
	*out = c;
	return 0;
}

void quic_ep_set_now(struct quic_ep *ep, uint64_t now_ns)
{
	if (now_ns > ep->now)
		ep->now = now_ns;
}

void quic_ep_get_stats(const struct quic_ep *ep, struct quic_ep_stats *st)
{
	*st = ep->st;
	st->conns_active = live_conns(ep);
	st->fair_holds = ep->fair.holds;
	st->fair_rate = ep->fair.limit;
	st->fair_cpu_wait = ep->fair.cpu_wait;
	st->fair_cpu_bound = ep->fair.cpu_bound;
}

size_t quic_ep_foreach(struct quic_ep *ep, void (*fn)(void *arg, struct quic_conn *c), void *arg)
{
	struct quic_conn *c, *n;
	size_t cnt = 0;

	for (c = ep->conns; c; c = n) {
		n = c->next;
		if (c->reported || c->state == QUIC_ST_DEAD)
			continue;
		fn(arg, c);
		cnt++;
	}
	return cnt;
}
