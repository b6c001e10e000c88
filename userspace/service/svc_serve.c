// SPDX-License-Identifier: MIT
/*
 * The service fabric's provider side, on its owner (docs/SERVICE.md):
 * inbound streams of the three service stream types (a descriptor request,
 * a call, an HTTP pass-through) are read into struct svcn_in, decoded
 * (svc_msg), admitted by the router (svc_router_call, svc_router_admit:
 * limits, bans, built-ins) and, for a backend, handed to the backend
 * thread (svc_backend_submit, svc_backend_stream), whose completion writes
 * the RESPONSE on the stream. Its events come from svc_events.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc_dir_int.h"
#include "svc_serve_int.h"
#include "svc_stream_int.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/svc_msg.h"
#include "weft/svc_router.h"
#include "weft/util.h"

/* An inbound stream (sn->in_tab), until its request is handled. */
struct svcn_in {
	struct svcn_in *next; /* sn->in_tab chain */
	uint64_t conn;
	int64_t sid;
	int type;
	struct svc_peer peer;
	int have_peer;
	uint8_t *buf; /* DESC: name bytes */
	size_t len;
	struct svc_msg_dec dec; /* CALL / HTTP */
	int handled;
};

static struct svcn_in *in_find(struct svc_node *sn, uint64_t conn, int64_t sid)
{
	for (struct svcn_in *i = sn->in_tab[svcn_hash(conn, sid)]; i; i = i->next)
		if (i->conn == conn && i->sid == sid)
			return i;
	return NULL;
}

static void in_free(struct svc_node *sn, struct svcn_in *in)
{
	struct svcn_in **pp;

	for (pp = &sn->in_tab[svcn_hash(in->conn, in->sid)]; *pp; pp = &(*pp)->next)
		if (*pp == in) {
			*pp = in->next;
			sn->nins--;
			break;
		}
	free(in->buf);
	svc_msg_dec_free(&in->dec);
	free(in);
}

static struct svcn_in *in_get(struct svc_node *sn, uint64_t conn, int64_t sid, int type,
			      const struct svc_peer *peer)
{
	struct svcn_in *in = in_find(sn, conn, sid);

	if (in)
		return in;
	if (sn->nins >= SVC_NODE_MAX_INBOUND)
		return NULL;
	in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->conn = conn;
	in->sid = sid;
	in->type = type;
	svc_msg_dec_init(&in->dec, svcn_max_payload(sn));
	if (peer) {
		in->peer = *peer;
		in->have_peer = 1;
	}
	in->next = sn->in_tab[svcn_hash(conn, sid)];
	sn->in_tab[svcn_hash(conn, sid)] = in;
	sn->nins++;
	return in;
}

/* Encode and send a RESPONSE (fin: end the stream after it). */
static void send_response(struct quic_node *qn, uint64_t conn, int64_t sid, int err,
			  uint32_t status, const uint8_t *p, size_t len, int fin)
{
	struct svc_msg m = {.type = SVC_MSG_RESPONSE, .err = (uint8_t)err, .status = status};
	uint8_t hdr[SVC_MSG_HDR_LEN];
	size_t hl;

	m.payload = p;
	m.payload_len = len;
	if (svc_msg_encode_head(&m, hdr, sizeof(hdr), &hl))
		return;
	if (!len) {
		quic_node_write(qn, conn, sid, hdr, hl, fin);
		return;
	}
	quic_node_write(qn, conn, sid, hdr, hl, 0);
	quic_node_write(qn, conn, sid, p, len, fin);
}

static void log_call(const char *kind, const struct svc_msg *m, const struct svc_peer *p, int err,
		     uint32_t status)
{
	char kp[17];

	/* An answer from the application (an HTTP status, whatever its
	 * class) is its business: debug. What the fabric refused: info. */
	int quiet = err == SVC_OK || status;

	if (log_get_level() < LOG_LVL_DEBUG && quiet)
		return;
	util_hex(kp, p->key, 8);
	log_msg(quiet ? LOG_LVL_DEBUG : LOG_LVL_INFO, "svc",
		"%s service=%.*s method=%.*s peer=%s... status=%u error=%s", kind,
		(int)m->service_len, m->service, (int)m->method_len, m->method, kp, status,
		svc_err_name((unsigned int)err));
}

struct svcn_bjob {
	struct svcn_shim *shim;
	struct quic_node *qn;
	uint64_t conn;
	int64_t sid;
	struct svc_ticket t;
	struct svc_peer peer;
	char service[SVC_NAME_MAX + 1];
	char method[SVC_METHOD_MAX + 1];
};

/* Backend completion (on the owner: the backend thread). The body goes
 * back whatever the status: an application's error text is its answer. */
static void backend_done(void *ctx, int err, uint32_t status, uint8_t *resp, size_t len)
{
	struct svcn_bjob *j = ctx;
	struct svc_node *sn = j->shim->sn; /* on the owner */
	struct svc_msg m = {0};

	if (sn) {
		svc_router_done(sn->router, &j->t, err, svcn_now_ns());
		if (!atomic_load(&sn->stopping))
			send_response(j->qn, j->conn, j->sid, err, status, resp, len, 1);
		m.service = j->service;
		m.service_len = strlen(j->service);
		m.method = j->method;
		m.method_len = strlen(j->method);
		log_call("call", &m, &j->peer, err, status);
	}
	free(resp);
	free(j);
}

static void serve_call(struct svc_node *sn, struct svcn_in *in, const struct svc_msg *m)
{
	struct svc_backend_req br = {0};
	struct svc_reply reply = {0};
	struct svc_ticket t;
	struct svcn_bjob *j;
	int r;

	sn->st.calls_in++;
	if (m->type != SVC_MSG_REQUEST) {
		svc_router_violation(sn->router, &in->peer, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_BAD_REQUEST, 0, NULL, 0, 1);
		return;
	}
	r = svc_router_call(sn->router, &in->peer, m, svcn_now_ns(), &reply, &t);
	if (r == 0) {
		send_response(sn->quic, in->conn, in->sid, reply.err, reply.status, reply.buf,
			      reply.len, 1);
		log_call("call", m, &in->peer, reply.err, reply.status);
		svc_reply_release(&reply);
		return;
	}
	svc_reply_release(&reply);
	if (r < 0) {
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_BAD_REQUEST, 0, NULL, 0, 1);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		svc_router_done(sn->router, &t, SVC_ERR_OVERLOADED, svcn_now_ns());
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_OVERLOADED, 0, NULL, 0, 1);
		return;
	}
	j->shim = sn->shim;
	j->qn = sn->quic;
	j->conn = in->conn;
	j->sid = in->sid;
	j->t = t;
	j->peer = in->peer;
	snprintf(j->service, sizeof(j->service), "%.*s", (int)m->service_len, m->service);
	snprintf(j->method, sizeof(j->method), "%.*s", (int)m->method_len, m->method);
	/* The deadline a peer asks for is capped by svc.max_timeout_ms. The
	 * caller's key is the one its QUIC handshake proved; its assertion
	 * goes to the backend unchecked: the backend checks it. */
	br.service = j->service;
	br.method = j->method;
	br.caller = in->peer.key;
	br.assertion = m->assertion;
	br.payload = m->payload;
	br.len = m->payload_len;
	br.timeout_ms = svcn_clamp_timeout(sn, m->timeout_ms);
	r = svc_backend_submit(sn->backend, t.backend, &br, backend_done, j);
	if (r) {
		svc_router_done(sn->router, &t, SVC_ERR_OVERLOADED, svcn_now_ns());
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_OVERLOADED, 0, NULL, 0, 1);
		free(j);
	}
}

/* HTTP pass-through at the provider: a stream on the backend thread whose
 * sink writes the QUIC stream. The RESPONSE header goes out with the
 * backend's first bytes, or carries the error (timeout, backend_error) when
 * none came: the caller's gateway can tell a stalled backend (504). */
struct svcn_relay {
	struct svc_node *sn; /* valid until svc_node_free ends the backend */
	struct svcn_bjob j;
	int hdr_sent;
};

static int relay_write_err(int e)
{
	return e == -ENOBUFS || e == -EAGAIN ? -EAGAIN : e;
}

static int relay_data(void *ctx, const uint8_t *buf, size_t len, int fin)
{
	struct svcn_relay *r = ctx;
	int e;

	if (atomic_load(&r->sn->stopping))
		return -ESHUTDOWN;
	if (!r->hdr_sent) {
		struct svc_msg m = {.type = SVC_MSG_RESPONSE, .err = SVC_OK};
		uint8_t hdr[SVC_MSG_HDR_LEN];
		size_t hl;

		if (svc_msg_encode_head(&m, hdr, sizeof(hdr), &hl))
			return -EINVAL;
		e = quic_node_write(r->j.qn, r->j.conn, r->j.sid, hdr, hl, 0);
		if (e)
			return relay_write_err(e);
		r->hdr_sent = 1;
	}
	if (!len && !fin)
		return 0;
	e = quic_node_write(r->j.qn, r->j.conn, r->j.sid, buf, len, fin);
	return e ? relay_write_err(e) : 0;
}

static void relay_end(void *ctx, int err)
{
	struct svcn_relay *r = ctx;
	struct svc_node *sn = r->sn;
	struct svc_msg m = {.service = r->j.service,
			    .service_len = strlen(r->j.service),
			    .method = "http",
			    .method_len = 4};

	svc_router_done(sn->router, &r->j.t, err, svcn_now_ns());
	if (!atomic_load(&sn->stopping)) {
		if (!r->hdr_sent)
			send_response(r->j.qn, r->j.conn, r->j.sid, err, 0, NULL, 0, 1);
		else if (err != SVC_OK)
			quic_node_stream_reset(r->j.qn, r->j.conn, r->j.sid, 0x6);
	}
	log_call("http", &m, &r->j.peer, err, 0);
	free(r);
}

static const struct svc_backend_sink relay_sink = {.data = relay_data, .end = relay_end};

static void serve_http(struct svc_node *sn, struct svcn_in *in, const struct svc_msg *m)
{
	struct svc_ticket t;
	struct svcn_relay *r;
	uint8_t *req;
	size_t rl = 0;
	int e;

	sn->st.http_in++;
	if (m->type != SVC_MSG_REQUEST) {
		svc_router_violation(sn->router, &in->peer, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_BAD_REQUEST, 0, NULL, 0, 1);
		return;
	}
	e = svc_router_admit(sn->router, &in->peer, m->service, m->service_len, m->payload_len, 0,
			     svcn_now_ns(), &t);
	if (e == SVC_OK && t.kind != SVC_KIND_BACKEND) {
		svc_router_done(sn->router, &t, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		e = SVC_ERR_BAD_REQUEST; /* built-ins speak calls, not HTTP */
	}
	if (e != SVC_OK) {
		log_call("http", m, &in->peer, e, 0);
		send_response(sn->quic, in->conn, in->sid, e, 0, NULL, 0, 1);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (r) {
		r->sn = sn;
		r->j.shim = sn->shim;
		r->j.qn = sn->quic;
		r->j.conn = in->conn;
		r->j.sid = in->sid;
		r->j.t = t;
		r->j.peer = in->peer;
		snprintf(r->j.service, sizeof(r->j.service), "%.*s", (int)m->service_len,
			 m->service);
	}
	/* The deadline a peer asks for is capped by svc.max_timeout_ms. The
	 * backend sees who called (Weft-Caller, ...: the caller's own Weft-*
	 * lines are dropped); a request without a head is refused. */
	req = r ? svcn_caller_request(sn, r->j.service, "", in->peer.key, m->assertion,
				      svcn_clamp_timeout(sn, m->timeout_ms), m->payload,
				      m->payload_len, &rl)
		: NULL;
	e = !r ? -ENOMEM
	    : !req ? -EBADMSG
		   : svc_backend_stream(sn->backend, t.backend, r->j.service, req, rl,
					svcn_clamp_timeout(sn, m->timeout_ms), &relay_sink, r);
	free(req);
	if (e == -EBADMSG) {
		free(r);
		svc_router_done(sn->router, &t, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		log_call("http", m, &in->peer, SVC_ERR_BAD_REQUEST, 0);
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_BAD_REQUEST, 0, NULL, 0, 1);
		return;
	}
	if (e) {
		free(r);
		svc_router_done(sn->router, &t, SVC_ERR_OVERLOADED, svcn_now_ns());
		log_call("http", m, &in->peer, SVC_ERR_OVERLOADED, 0);
		send_response(sn->quic, in->conn, in->sid, SVC_ERR_OVERLOADED, 0, NULL, 0, 1);
	}
}

void svcn_srv_data(struct svc_node *sn, int type, uint64_t conn, int64_t sid,
		   const struct svc_peer *peer, const uint8_t *data, size_t len, int fin)
{
	struct svcn_in *in = in_get(sn, conn, sid, type, peer);
	const struct svc_msg *m;
	size_t used;
	int r;

	if (!in) {
		quic_node_stream_reset(sn->quic, conn, sid, 0x4);
		return;
	}
	if (in->handled)
		goto end;
	if (!in->have_peer) {
		quic_node_stream_reset(sn->quic, conn, sid, 0x4);
		in_free(sn, in);
		return;
	}
	if (type == SVC_NODE_ST_DESC) {
		struct svcn_pub *p;

		if (in->len + len > SVC_NAME_MAX) {
			svc_router_violation(sn->router, &in->peer, SVC_ERR_BAD_REQUEST,
					     svcn_now_ns());
			quic_node_stream_reset(sn->quic, conn, sid, 0x5);
			in->handled = 1;
			goto end;
		}
		if (len) {
			uint8_t *nb = realloc(in->buf, in->len + len);

			if (!nb)
				goto end;
			in->buf = nb;
			memcpy(in->buf + in->len, data, len);
			in->len += len;
		}
		if (!fin)
			return;
		in->handled = 1;
		p = svcn_pub_find(sn, (const char *)in->buf, in->len);
		if (p && !svcn_pub_visible(p, in->peer.key))
			p = NULL; /* private, and not for this key: "not offered" */
		sn->st.desc_served += p != NULL;
		quic_node_write(sn->quic, conn, sid, p ? p->desc : NULL, p ? p->desc_len : 0, 1);
		goto end;
	}
	while (len && !in->handled) {
		r = svc_msg_dec_feed(&in->dec, data, len, &used, &m);
		data += used;
		len -= used;
		if (r < 0) {
			int e = r == -EMSGSIZE ? SVC_ERR_TOO_LARGE : SVC_ERR_BAD_REQUEST;

			svc_router_violation(sn->router, &in->peer, e, svcn_now_ns());
			send_response(sn->quic, conn, sid, e, 0, NULL, 0, 1);
			in->handled = 1;
		} else if (r == 1) {
			in->handled = 1;
			if (type == SVC_NODE_ST_CALL)
				serve_call(sn, in, m);
			else
				serve_http(sn, in, m);
		}
	}
	if (fin && !in->handled) {
		svc_router_violation(sn->router, &in->peer, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		send_response(sn->quic, conn, sid, SVC_ERR_BAD_REQUEST, 0, NULL, 0, 1);
		in->handled = 1;
	}
end:
	if (fin || in->handled)
		in_free(sn, in);
}

void svcn_srv_closed_own(struct svc_node *sn, uint64_t conn, int64_t sid)
{
	struct svcn_in *in = in_find(sn, conn, sid);

	if (in)
		in_free(sn, in);
}

void svcn_ins_free(struct svc_node *sn)
{
	for (unsigned int b = 0; b < SVCN_HASH; b++)
		while (sn->in_tab[b])
			in_free(sn, sn->in_tab[b]);
}
