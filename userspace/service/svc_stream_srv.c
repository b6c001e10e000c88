// SPDX-License-Identifier: MIT
/*
 * Service streams at the provider, their start (docs/SERVICE.md,
 * "Streams"): the STREAM_OPEN's admission (the router, the stream caps),
 * the handler (the in-process echo, or a backend), and the backend's
 * HTTP/1.1 upgrade driven step by step from the streams' epoll set
 * (connect, the request, the response head). A WebSocket's request head
 * is checked and written as it came. The data path is svc_stream.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svc_dir_int.h"
#include "svc_stream_priv.h"
#include "weft/log.h"

/* A WebSocket's STREAM_OPEN payload: one HTTP/1.1 GET head, ending at
 * its blank line, no NUL or bare LF, within the head cap. The backend
 * judges the rest (its Origin rules, the key); we only make sure it is
 * one request and nothing smuggled after it. */
static int ws_request_ok(const uint8_t *p, size_t len)
{
	if (len < 18 || len > SVCN_STRM_HEAD_MAX || memcmp(p, "GET /", 5) ||
	    memcmp(p + len - 4, "\r\n\r\n", 4))
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!p[i] || (p[i] == '\n' && (!i || p[i - 1] != '\r')))
			return 0;
		if (i + 4 < len && !memcmp(p + i, "\r\n\r\n", 4))
			return 0; /* a second head or a body */
	}
	return 1;
}

/* The backend's upgrade request for the STREAM_OPEN m: the caller's key,
 * the service's version, a request id (the assertion's, else a new one),
 * the time the backend has to answer, the caller's assertion when it sent
 * one (docs/SERVICE.md, "Streams to backends"). malloc'd, or NULL. */
static uint8_t *upgrade_request(struct svcn_strm *s, const struct svc_msg *m, size_t *len)
{
	return svcn_caller_request(s->sn, s->service, s->method, s->peer.key, m->assertion,
				   SVCN_STRM_BACKEND_MS, s->ws ? m->payload : NULL,
				   s->ws ? m->payload_len : 0, len);
}

/* Provider: the STREAM_OPEN. */
static void srv_open(struct svcn_strm *s, const struct svc_msg *m)
{
	struct svc_node *sn = s->sn;
	uint32_t peer_cap = sn->cfg.svc_peer_streams ? sn->cfg.svc_peer_streams
						     : SVC_NODE_PEER_STREAMS;
	uint32_t svc_cap = sn->cfg.svc_service_streams ? sn->cfg.svc_service_streams
						       : SVC_NODE_SERVICE_STREAMS;
	struct svcn_pub *pub;
	unsigned int np = 0, nsv = 0;
	int cls;

	snprintf(s->service, sizeof(s->service), "%.*s", (int)m->service_len, m->service);
	snprintf(s->method, sizeof(s->method), "%.*s", (int)m->method_len, m->method);
	if (m->type != SVC_MSG_STREAM_OPEN) {
		svc_router_violation(sn->router, &s->peer, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		svcn_sx_fail(s, SVC_ERR_BAD_REQUEST, SVC_STREAM_R_PROTOCOL);
		return;
	}
	cls = svc_router_admit(sn->router, &s->peer, m->service, m->service_len, m->payload_len,
			       1, svcn_now_ns(), &s->t);
	if (cls != SVC_OK) {
		sn->strms->refused++;
		svcn_sx_fail(s, cls, SVC_STREAM_R_REFUSED);
		return;
	}
	s->ticketed = 1;
	pub = svcn_pub_find(sn, s->service, strlen(s->service));
	if (pub && pub->max_streams)
		svc_cap = pub->max_streams; /* published with its own (svc publish --max-streams) */
	for (struct svcn_strm *o = sn->strms->all; o; o = o->next) {
		if (o == s || o->role != ROLE_PROVIDER || !o->ticketed || o->draining)
			continue;
		np += !memcmp(o->peer.key, s->peer.key, IDENTITY_PK_LEN);
		nsv += !strcmp(o->service, s->service);
	}
	if (np >= peer_cap || nsv >= svc_cap) {
		sn->strms->refused++;
		svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_STREAMS);
		return;
	}
	s->idle_ns = svcn_sx_idle_ms(sn, m->timeout_ms) * 1000000ull;
	if (s->ws && (s->t.kind != SVC_KIND_BACKEND || !ws_request_ok(m->payload, m->payload_len))) {
		svc_router_violation(sn->router, &s->peer, SVC_ERR_BAD_REQUEST, svcn_now_ns());
		svcn_sx_fail(s, SVC_ERR_BAD_REQUEST, SVC_STREAM_R_WS_PROTOCOL);
		return;
	}
	if (s->t.kind == SVC_KIND_BACKEND) {
		size_t rl = 0;
		int fd;

		s->hs = upgrade_request(s, m, &rl);
		fd = s->hs ? svcn_bstream_connect(s->t.backend) : -EINVAL;
		if (fd < 0) {
			free(s->hs);
			s->hs = NULL;
			svcn_sx_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
			return;
		}
		s->hs_len = rl;
		s->fd = fd;
		s->local = LOCAL_BACKEND;
		s->bk = BK_CONNECTING;
		s->deadline_ns = svcn_now_ns() + SVCN_STRM_BACKEND_MS * 1000000ull;
		svcn_sx_due(s, s->deadline_ns);
		svcn_sx_interest(s);
	} else if (!strcmp(s->service, "echo")) {
		s->local = LOCAL_ECHO;
		s->accepted = 1;
		sn->strms->opened++;
		if (svcn_sx_send_frame(s, SVC_MSG_STREAM_DATA, SVC_OK, 0, NULL, 0, 0)) {
			svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
			return;
		}
		svcn_sx_touch(s);
	} else {
		svcn_sx_fail(s, SVC_ERR_BAD_REQUEST, SVC_STREAM_R_REFUSED); /* no stream handler */
		return;
	}
	if (!s->ws && m->payload_len && svcn_sx_q_push(s, m->payload, m->payload_len))
		svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_SLOW);
}

/* Backend handshake steps (provider). */
static void bk_event(struct svcn_strm *s, uint32_t ev)
{
	if (s->bk == BK_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
			svcn_sx_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
			return;
		}
		s->bk = BK_WRITING;
	}
	if (s->bk == BK_WRITING) {
		ssize_t n = send(s->fd, s->hs + s->hs_off, s->hs_len - s->hs_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				svcn_sx_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
			return;
		}
		s->hs_off += (size_t)n;
		if (s->hs_off < s->hs_len)
			return;
		free(s->hs);
		s->hs = malloc(SVCN_STRM_HEAD_MAX);
		if (!s->hs) {
			svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
			return;
		}
		s->hs_len = 0;
		s->bk = BK_HEAD;
		return;
	}
	if (s->bk == BK_HEAD && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		ssize_t n = recv(s->fd, s->hs + s->hs_len, SVCN_STRM_HEAD_MAX - s->hs_len, 0);
		int status = 0;
		long h;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			svcn_sx_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
			return;
		}
		s->hs_len += (size_t)n;
		h = svcn_bstream_head(s->hs, s->hs_len, &status);
		if (h == 0)
			return;
		if (h > 0 && s->ws) {
			/* the client hears the backend: its head, whatever it says */
			log_msg(status == 101 ? LOG_LVL_DEBUG : LOG_LVL_INFO, "svc",
				"ws service=%s: backend answered %d", s->service, status);
			/* A refused upgrade is no WebSocket: its body passes as
			 * plain bytes. Parsed as frames it failed the stream
			 * (ws_protocol), whose end cleared the queued head, and
			 * the client's gateway waited out its deadline (504). */
			if (status != 101)
				s->ws = 0;
			s->bk = BK_OPEN;
			s->accepted = 1;
			s->sn->strms->opened++;
			if (svcn_sx_send_frame(s, SVC_MSG_STREAM_DATA, SVC_OK, 0, NULL, 0, 0)) {
				svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
				return;
			}
			if (svcn_sx_send_data(s, s->hs, s->hs_len) < 0)
				return;
			free(s->hs);
			s->hs = NULL;
			svcn_sx_touch(s);
			return;
		}
		if (h < 0 || status != 101) {
			log_info("svc", "stream service=%s: backend answered %s %d", s->service,
				 h < 0 ? "a malformed head" : "status", status);
			svcn_sx_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_BACKEND);
			return;
		}
		s->bk = BK_OPEN;
		s->accepted = 1;
		s->sn->strms->opened++;
		if (svcn_sx_send_frame(s, SVC_MSG_STREAM_DATA, SVC_OK, 0, NULL, 0, 0)) {
			svcn_sx_fail(s, SVC_ERR_OVERLOADED, SVC_STREAM_R_LOCAL);
			return;
		}
		if ((size_t)h < s->hs_len && svcn_sx_send_data(s, s->hs + h, s->hs_len - (size_t)h) < 0)
			return;
		free(s->hs);
		s->hs = NULL;
		svcn_sx_touch(s);
	}
}

void svcn_strm_srv_init(struct svc_node *sn)
{
	sn->strms->srv_open = srv_open;
	sn->strms->bk_event = bk_event;
}
