// SPDX-License-Identifier: MIT
/*
 * Loopback HTTP gateway (libmicrohttpd, a thread per connection, at most
 * GW_MAX_CONNS):
 *   on the gateway's own host (localhost:PORT, 127.0.0.1:PORT, [::1]:PORT):
 *     POST /mesh/v1/call/<service>/<method>   a call; body = payload
 *     GET  /mesh/v1/services/<name>           discovery as JSON
 *     ANY  /mesh/v1/http/<service>/<path>     HTTP pass-through, path form:
 *                                             sandboxed, never credentials
 *     ANY  /mesh/v1/msg/<op>                  the mesh's messages (the node's
 *                                             handler, svc_node_gw_msg)
 *   on a service's own origin:
 *     ANY  http://<name>.localhost:PORT/<path>        best provider of name
 *     ANY  http://<service-id>.localhost:PORT/<path>  that one provider
 * Any other Host is refused (421: DNS rebinding), a browser request from a
 * foreign Origin too (403) unless the service allows that origin (CORS,
 * its publish options). Hop-by-hop and credential headers do not cross the
 * gateway except where the service opted in (weft/svc_http.h).
 * Only services listed in gateway.services may be called. Request bodies
 * are never logged. A non-loopback address needs gateway.allow_public and
 * is logged as a warning. docs/SERVICE.md, "Gateway".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "svc_stream_int.h"
#include "svc_calls_int.h"
#include "svc_ctl_int.h"
#include "svc_pipe_int.h"
#include "weft/ctl.h"
#include "weft/ctl_drain.h"
#include "weft/log.h"
#include "weft/svc_http.h"
#include "weft/util.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

/* Request body cap: the call payload cap (svc.max_payload, default 1 MiB);
 * the HTTP pass-through request (headers + body) travels as one call
 * payload too. */
#define GW_MAX_BODY(gw) ((size_t)svcn_max_payload((gw)->sn))
/* Concurrent gateway connections: 256 (a thread each); idle timeout 30 s. */
#define GW_MAX_CONNS 256
#define GW_TIMEOUT_S 30

struct svc_gateway {
	struct svc_node *sn;
	struct MHD_Daemon *mhd;
	struct ctl_drain *drain; /* the connections, closed before the stop */
	uint16_t port;
	char listen_host[64]; /* host part of gateway.listen, as written */
	struct log_ctx *log;  /* the node's log context, bound in MHD's threads */
};

/* A pass-through target: the provider picked for a request. */
struct gw_target {
	int local; /* 1: this node, 0: remote at ss */
	struct svc_dir_result dr;
	struct sockaddr_storage ss;
	socklen_t sl;
	int pinned; /* reached through its service id: credentials may pass */
};

struct gw_req {
	char *uri; /* raw, with the query string */
	uint8_t *body;
	size_t len, cap;
	int too_big;
	int started; /* the first call (headers only) has been seen */
	int kind;    /* SVC_GW_HOST_* */
	char label[65];
	struct gw_target tg; /* kind == CTL_HTTP_HOST_SERVICE */
	char *cors_origin;   /* a foreign origin the service allows */
	int cors_wild;	     /* ... through "*" */
	uint32_t timeout_ms;
};

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct gw_req *r = calloc(1, sizeof(*r));

	if (r)
		r->uri = strdup(uri ? uri : "/");
	return r;
}

static void req_done(void *cls, struct MHD_Connection *c, void **con_cls,
		     enum MHD_RequestTerminationCode toe)
{
	struct gw_req *r = *con_cls;

	if (r) {
		free(r->uri);
		free(r->body);
		free(r->cors_origin);
		free(r);
	}
	*con_cls = NULL;
}

/* Headers on every answer of the gateway's own host: no sniffing, not
 * embeddable by other origins. */
static void bare_headers(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
}

static MHD_RESULT reply(struct MHD_Connection *c, unsigned int status, const char *ctype,
			const void *body, size_t len, const char *err_class)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	MHD_RESULT ret;

	if (!resp)
		return MHD_NO;
	if (ctype)
		MHD_add_response_header(resp, "Content-Type", ctype);
	if (err_class)
		MHD_add_response_header(resp, "X-Weft-Error", err_class);
	bare_headers(resp);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static MHD_RESULT reply_error(struct MHD_Connection *c, unsigned int status, const char *code,
			      const char *msg)
{
	json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	char *s = json_dumps(o, JSON_COMPACT);
	MHD_RESULT ret = reply(c, status, "application/json", s, s ? strlen(s) : 0, code);

	free(s);
	json_decref(o);
	return ret;
}

static unsigned int http_status(int err)
{
	switch (err) {
	case SVC_OK: return 200;
	case SVC_ERR_BAD_REQUEST: return 400;
	case SVC_ERR_NOT_FOUND: return 404;
	case SVC_ERR_RATE_LIMITED: return 429;
	case SVC_ERR_TOO_LARGE: return 413;
	case SVC_ERR_OVERLOADED: return 503;
	case SVC_ERR_BACKEND_ERROR: return 502;
	case SVC_ERR_TIMEOUT: return 504;
	case SVC_ERR_BANNED: return 403;
	case SVC_ERR_BACKEND_PROTOCOL: return 502;
	default: return 500;
	}
}

/* 1 if name is in the comma-separated whitelist ("*" = any). */
static int allowed(const char *list, const char *name, size_t nl)
{
	const char *p = list;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		while (l && (*p == ' ')) {
			p++;
			l--;
		}
		while (l && p[l - 1] == ' ')
			l--;
		if ((l == 1 && *p == '*') || (l == nl && !memcmp(p, name, nl)))
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

/* Split "<service>/<rest>" off path; service copied into name. */
static int split(const char *path, char name[SVC_NAME_MAX + 1], const char **rest)
{
	const char *s = strchr(path, '/');
	size_t l = s ? (size_t)(s - path) : strlen(path);

	if (!l || l > SVC_NAME_MAX || !svc_name_valid((const uint8_t *)path, l))
		return -EINVAL;
	memcpy(name, path, l);
	name[l] = 0;
	*rest = s ? s + 1 : "";
	return 0;
}

static MHD_RESULT gw_services(struct svc_gateway *gw, struct MHD_Connection *c, const char *name)
{
	struct svc_dir_result res[SVC_DIR_DEFAULT_RESULTS];
	json_t *arr, *o;
	char *s;
	MHD_RESULT ret;
	int n = svc_node_find(gw->sn, name, res, SVC_DIR_DEFAULT_RESULTS);

	if (n == -EINVAL)
		return reply_error(c, 400, "bad_request", "bad service name");
	if (n < 0)
		return reply_error(c, 502, "unreachable", strerror(-n));
	arr = json_array();
	for (int i = 0; i < n; i++) {
		char id[2 * SVC_ID_LEN + 1], owner[2 * IDENTITY_PK_LEN + 1];
		json_t *eps = json_array();

		util_hex(id, res[i].id, SVC_ID_LEN);
		util_hex(owner, res[i].owner, IDENTITY_PK_LEN);
		for (uint32_t e = 0; e < res[i].n_endpoints; e++)
			json_array_append_new(eps, json_string(res[i].endpoints[e]));
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:i,s:o,s:I,s:i,s:i}", "name",
						     res[i].name, "id", id, "owner", owner,
						     "version", (int)res[i].version, "endpoints",
						     eps, "expires", (json_int_t)res[i].desc_expires,
						     "reputation", (int)res[i].reputation, "rtt_us",
						     (int)res[i].rtt_us));
	}
	o = json_pack("{s:s,s:o}", "name", name, "results", arr);
	s = json_dumps(o, JSON_COMPACT);
	ret = reply(c, 200, "application/json", s, s ? strlen(s) : 0, NULL);
	free(s);
	json_decref(o);
	return ret;
}

static MHD_RESULT gw_call(struct svc_gateway *gw, struct MHD_Connection *c, const char *svc,
			  const char *method, const struct gw_req *r)
{
	struct svc_node_call_res res;
	struct MHD_Response *resp;
	char st[16], peer[17];
	MHD_RESULT ret;
	int err;

	struct svc_node_call_opts co = {0};
	struct svc_vrange vr;
	const char *rh = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Weft-Retry");
	const char *vh = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Weft-Version");

	if (!svc_method_valid((const uint8_t *)method, strlen(method)))
		return reply_error(c, 400, "bad_request", "bad method name");
	/* failover and version range (docs/SERVICE.md, "Failover") */
	if ((rh && svc_node_retry_parse(rh, &co.retry)) || (vh && svc_vrange_parse(vh, &vr)))
		return reply_error(c, 400, "bad_request",
				   "X-Weft-Retry: unsent|never|always; X-Weft-Version: a range");
	co.version = vh ? &vr : NULL;
	err = svc_node_call_ex(gw->sn, svc, method, r->body, r->len, r->timeout_ms, &co, &res,
			       NULL);
	if (err == -ENOENT)
		return reply_error(c, 404, "not_found", "no provider of this service found");
	if (err == -EBUSY)
		return reply_error(c, 503, "overloaded", "too many calls in flight");
	if (err == -ESHUTDOWN)
		return reply_error(c, 503, "shutting_down", "the node is stopping");
	if (err)
		return reply_error(c, err == -ETIMEDOUT ? 504 : 502,
				   err == -ETIMEDOUT ? "timeout" : "unreachable", strerror(-err));
	log_debug("svc", "gateway call service=%s method=%s status=%u error=%s", svc, method,
		  res.status, svc_err_name((unsigned int)res.err));
	resp = MHD_create_response_from_buffer(res.len, res.data ? (void *)res.data : (void *)"",
					       MHD_RESPMEM_MUST_COPY);
	free(res.data);
	if (!resp)
		return MHD_NO;
	snprintf(st, sizeof(st), "%u", res.status);
	util_hex(peer, res.peer, 8);
	MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
	MHD_add_response_header(resp, "X-Weft-Error", svc_err_name((unsigned int)res.err));
	MHD_add_response_header(resp, "X-Weft-Status", st);
	MHD_add_response_header(resp, "X-Weft-Peer", peer);
	bare_headers(resp);
	/* An HTTP backend's own status passes through (docs/SERVICE.md,
	 * "Backend contract"); other answers get their class's. */
	ret = MHD_queue_response(c, res.status >= 200 && res.status <= 599 ? res.status
									 : http_status(res.err),
				 resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- HTTP pass-through ---- */

struct hdr_acc {
	char *buf;
	size_t len, cap;
	int bad;
	unsigned int flags; /* svc_http_flags of the target */
	const char *conn;   /* the request's Connection value */
};

static void acc_add(struct hdr_acc *a, const char *s, size_t l)
{
	if (a->bad)
		return;
	if (a->len + l + 1 > a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 1024;
		char *nb;

		while (nc < a->len + l + 1)
			nc *= 2;
		nb = realloc(a->buf, nc);
		if (!nb) {
			a->bad = 1;
			return;
		}
		a->buf = nb;
		a->cap = nc;
	}
	memcpy(a->buf + a->len, s, l);
	a->len += l;
	a->buf[a->len] = 0;
}

static MHD_RESULT hdr_iter(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct hdr_acc *a = cls;

	if (!k || strpbrk(k, "\r\n") || (v && strpbrk(v, "\r\n")))
		return MHD_YES;
	if (!svc_http_req_keep(k, strlen(k), a->conn, a->conn ? strlen(a->conn) : 0, a->flags))
		return MHD_YES;
	acc_add(a, k, strlen(k));
	acc_add(a, ": ", 2);
	acc_add(a, v ? v : "", v ? strlen(v) : 0);
	acc_add(a, "\r\n", 2);
	return MHD_YES;
}

/* A pass-through being relayed: the owner fills the pipe (remote: the
 * provider's stream; local: our backend), this thread empties it. The
 * bytes read with the head that follow it go out first. */
struct gw_stream {
	struct svcn_pipe *p;
	uint64_t idle_ns; /* the pass-through's deadline: no byte for this long */
	uint8_t *pend;	  /* read with the head, not sent yet */
	size_t pend_off, pend_len;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct gw_stream *s = cls;
	long n;

	(void)pos;
	if (s->pend_off < s->pend_len) {
		n = (long)(s->pend_len - s->pend_off < max ? s->pend_len - s->pend_off : max);
		memcpy(buf, s->pend + s->pend_off, (size_t)n);
		s->pend_off += (size_t)n;
		return n;
	}
	n = svcn_pipe_read(s->p, (uint8_t *)buf, max, svcn_now_ns() + s->idle_ns);
	if (n > 0)
		return n;
	return n == 0 && s->p->ok ? MHD_CONTENT_READER_END_OF_STREAM
				  : MHD_CONTENT_READER_END_WITH_ERROR;
}

/* The body of an answer to HEAD: none (MHD does not ask; if it did, the
 * connection ends rather than sending bytes). */
static ssize_t head_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls;
	(void)pos;
	(void)buf;
	(void)max;
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
	struct gw_stream *s = cls;

	svcn_pipe_close(s->p); /* the owner ends the stream if it is still on */
	free(s->pend);
	free(s);
}

/* Bytes of a parsed head as a NUL-terminated copy (MHD wants C strings). */
static char *head_str(const uint8_t *head, uint32_t off, uint32_t len)
{
	return strndup((const char *)head + off, len);
}

/* Pass the backend's headers that may cross (svc_http_resp_keep) to resp. */
static void copy_headers(struct MHD_Response *resp, const uint8_t *head,
			 const struct svc_http_head *h, unsigned int flags)
{
	const char *conn = NULL;
	size_t cl = 0;

	for (uint32_t i = 0; i < h->n; i++)
		if (h->h[i].name_len == 10 &&
		    !strncasecmp((const char *)head + h->h[i].name_off, "connection", 10)) {
			conn = (const char *)head + h->h[i].val_off;
			cl = h->h[i].val_len;
		}
	for (uint32_t i = 0; i < h->n; i++) {
		char *k, *v;

		if (!svc_http_resp_keep((const char *)head + h->h[i].name_off, h->h[i].name_len,
					conn, cl, flags))
			continue;
		k = head_str(head, h->h[i].name_off, h->h[i].name_len);
		v = head_str(head, h->h[i].val_off, h->h[i].val_len);
		if (k && v)
			MHD_add_response_header(resp, k, v);
		free(k);
		free(v);
	}
}

/* Parse a head for the pass-through: > 0 its length, 0 incomplete, < 0 a
 * head the gateway will not relay (malformed, oversized, 1xx, chunked). */
static long gw_head(const uint8_t *buf, size_t len, struct svc_http_head *h)
{
	long hl = svc_http_head_parse(buf, len, h);

	if (hl > 0 && (h->status < 200 || h->chunked))
		return -EBADMSG;
	return hl;
}

/* How the gateway answers for a target: its own headers on top of the
 * backend's. */
struct gw_out {
	unsigned int flags;	 /* svc_http_flags honoured */
	const char *cors_origin; /* allowed foreign origin, or NULL */
	int cors_wild;		 /* allowed through "*": never with credentials */
	int sandbox;		 /* path form: an opaque origin for whatever it serves */
};

static void out_headers(struct MHD_Response *resp, const struct gw_out *go)
{
	if (go->sandbox) {
		MHD_add_response_header(resp, "Content-Security-Policy", "sandbox");
		bare_headers(resp);
	}
	if (go->cors_origin) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", go->cors_origin);
		MHD_add_response_header(resp, "Vary", "Origin");
		if ((go->flags & SVC_HTTP_F_CREDENTIALS) && !go->cors_wild)
			MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true");
	}
}

static MHD_RESULT gw_http(struct svc_gateway *gw, struct MHD_Connection *c, const char *svc,
			  const struct gw_target *tg, const char *method, const char *path,
			  const struct gw_req *r, const struct gw_out *go)
{
	struct svc_node *sn = gw->sn;
	struct hdr_acc a = { .flags = go->flags };
	struct svc_msg m = { .type = SVC_MSG_REQUEST };
	struct svc_http_head h;
	struct gw_stream *s;
	struct MHD_Response *resp;
	char cl[32];
	uint8_t *req = NULL;
	size_t rl;
	long hl = 0;
	MHD_RESULT ret;
	int err;

	a.conn = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection");
	acc_add(&a, method, strlen(method));
	acc_add(&a, " ", 1);
	acc_add(&a, path, strlen(path));
	acc_add(&a, " HTTP/1.0\r\nHost: ", 17);
	acc_add(&a, svc, strlen(svc));
	acc_add(&a, "\r\n", 2);
	MHD_get_connection_values(c, MHD_HEADER_KIND, hdr_iter, &a);
	snprintf(cl, sizeof(cl), "%zu", r->len);
	acc_add(&a, "Connection: close\r\nContent-Length: ", 35);
	acc_add(&a, cl, strlen(cl));
	acc_add(&a, "\r\n\r\n", 4);
	if (a.bad || a.len + r->len > GW_MAX_BODY(gw)) {
		free(a.buf);
		return reply_error(c, 413, "too_large", "request over the call payload cap");
	}
	req = malloc(a.len + r->len + 1);
	if (!req) {
		free(a.buf);
		return MHD_NO;
	}
	memcpy(req, a.buf, a.len);
	if (r->len)
		memcpy(req + a.len, r->body, r->len);
	rl = a.len + r->len;
	free(a.buf);
	s = calloc(1, sizeof(*s));
	if (!s) {
		free(req);
		return MHD_NO;
	}
	/* A remote provider gets the deadline; we wait it plus the margin. */
	s->idle_ns = (uint64_t)(r->timeout_ms + (tg->local == 1 ? 0 : SVC_NODE_NET_MARGIN_MS)) *
		     1000000ull;
	if (tg->local == 1) {
		/* This node offers it: to the local backend, on the backend
		 * thread (its answer fills the pipe like a provider's would). */
		s->p = svcn_http_start(sn, 1, svc, NULL, 0, NULL, req, rl, r->timeout_ms,
				       s->idle_ns, &err);
	} else {
		size_t ml;
		uint8_t *enc, as[SVC_ASSERT_LEN];

		m.service = svc;
		m.service_len = strlen(svc);
		m.method = "http";
		m.method_len = 4;
		/* signed like a call's: method "http", the request's body */
		if (svcn_assert_new(sn, as, svc, "http", r->body, r->len))
			m.assertion = as;
		m.payload = req;
		m.payload_len = rl;
		m.timeout_ms = r->timeout_ms;
		ml = svc_msg_len(&m);
		enc = malloc(ml);
		err = enc ? svc_msg_encode(&m, enc, ml, &ml) : -ENOMEM;
		free(req);
		if (err)
			free(enc);
		else
			s->p = svcn_http_start(sn, 0, svc, &tg->ss, tg->sl, tg->dr.owner, enc, ml,
					       r->timeout_ms, s->idle_ns, &err);
	}
	if (!s->p) {
		free(s);
		return reply_error(c, err == -ENOMEM ? 500 : 503,
				   err == -ENOMEM ? "internal" : "unavailable", strerror(-err));
	}
	/* Read up to the RESPONSE header (remote) and the backend's HTTP
	 * head, within the request's deadline. */
	{
		uint64_t deadline = svcn_now_ns() + s->idle_ns;
		size_t base = tg->local == 1 ? 0 : SVC_MSG_HDR_LEN;
		size_t max = svcn_http_buffer(sn) + base, cap = 16384, got = 0;
		uint8_t *hb = malloc(cap);
		struct svc_msg rm;
		long n;

		err = hb ? SVC_OK : SVC_ERR_OVERLOADED;
		while (hb) {
			if (base && got >= base) {
				long dl = svc_msg_decode(&rm, hb, SVC_MSG_HDR_LEN, 0);

				if (dl < 0 || rm.type != SVC_MSG_RESPONSE) {
					err = SVC_ERR_BACKEND_ERROR;
					break;
				}
				if (rm.err != SVC_OK) {
					err = rm.err;
					break;
				}
			}
			if (got >= base && got > 0) {
				hl = gw_head(hb + base, got - base, &h);
				if (hl) {
					err = hl < 0 ? SVC_ERR_BACKEND_ERROR : SVC_OK;
					break;
				}
			}
			if (got == cap) {
				uint8_t *nb = cap < max ? realloc(hb, cap * 2 < max ? cap * 2 : max)
							: NULL;

				if (!nb) {
					err = SVC_ERR_BACKEND_ERROR; /* no head within the buffer */
					break;
				}
				hb = nb;
				cap = cap * 2 < max ? cap * 2 : max;
			}
			n = svcn_pipe_read(s->p, hb + got, cap - got, deadline);
			if (n > 0) {
				got += (size_t)n;
				continue;
			}
			if (n == 0 && s->p->start_err) {
				int e = s->p->start_err;

				free(hb);
				stream_free(s);
				if (e == -EBUSY)
					return reply_error(c, 503, "overloaded",
							   "too many requests in flight");
				if (e == -EBADMSG)
					return reply_error(c, 400, "bad_request",
							   "request not fit for a kept-alive "
							   "backend connection");
				if (e == -EINVAL && tg->local == 1)
					return reply_error(c, 502, "backend_error",
							   "not an HTTP backend service");
				return reply_error(c, 502, "unreachable", strerror(-e));
			}
			err = n == 0 ? (s->p->cls == SVC_OK ? SVC_ERR_BACKEND_ERROR : s->p->cls)
			      : n == -ETIMEDOUT ? SVC_ERR_TIMEOUT
						: SVC_ERR_OVERLOADED;
			break;
		}
		if (err != SVC_OK) {
			free(hb);
			stream_free(s);
			return reply_error(c, http_status(err), svc_err_name((unsigned int)err),
					   err == SVC_ERR_TIMEOUT ? "the provider did not answer in time"
								  : "pass-through failed");
		}
		s->pend = hb;
		s->pend_off = base + (size_t)hl;
		s->pend_len = got;
		if (!strcmp(method, "HEAD") || h.status == 204 || h.status == 304) {
			/* No body (MHD would end an unknown size with a chunk
			 * the client reads as the start of its next answer):
			 * for HEAD a response of the GET's length when the
			 * provider passed it, whose body MHD never reads. */
			int head = !strcmp(method, "HEAD");

			resp = head && h.content_length >= 0
				   ? MHD_create_response_from_callback((uint64_t)h.content_length,
								       4096, head_read, NULL, NULL)
				   : MHD_create_response_from_buffer(0, NULL,
								     MHD_RESPMEM_PERSISTENT);
			if (resp)
				copy_headers(resp, hb + base, &h, go->flags);
			stream_free(s);
			if (!resp)
				return MHD_NO;
			goto queue;
		}
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32768, stream_read, s,
							 stream_free);
		if (!resp) {
			stream_free(s);
			return MHD_NO;
		}
		copy_headers(resp, hb + base, &h, go->flags);
	}
queue:
	out_headers(resp, go);
	log_debug("svc", "gateway http service=%s method=%s status=%u", svc, method, h.status);
	ret = MHD_queue_response(c, h.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- admission: Host, Origin, target ---- */

static int cors_allows(const char *cors, const char *origin)
{
	return cors[0] && (!strcmp(cors, "*") || !strcmp(cors, origin));
}

static int bad_request_line(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return 1;
	return 0;
}

/* Pick the provider for a service origin's label: a service id (pinned) or
 * a name. Returns 0, or an HTTP status with the answer queued in *ret. */
static int gw_resolve(struct svc_gateway *gw, struct MHD_Connection *c, struct gw_req *r,
		      MHD_RESULT *ret)
{
	uint8_t id[SVC_ID_LEN];
	int e;

	if (strlen(r->label) == 2 * SVC_ID_LEN && !util_unhex(id, SVC_ID_LEN, r->label)) {
		r->tg.pinned = 1;
		e = svcn_pick_id(gw->sn, id, &r->tg.dr, &r->tg.ss, &r->tg.sl);
	} else if (svc_name_valid((const uint8_t *)r->label, strlen(r->label))) {
		e = svcn_pick(gw->sn, r->label, &r->tg.dr, &r->tg.ss, &r->tg.sl);
	} else {
		*ret = reply_error(c, 400, "bad_request", "bad service name in Host");
		return 400;
	}
	if (e < 0) {
		if (e == -ENOENT || e == -ENOTCONN)
			*ret = reply_error(c, 404, "not_found",
					   r->tg.pinned ? "service id not known: find the service "
							  "first (GET /mesh/v1/services/NAME)"
							: "no provider of this service found");
		else
			*ret = reply_error(c, 502, "unreachable", strerror(-e));
		return e == -ENOENT || e == -ENOTCONN ? 404 : 502;
	}
	r->tg.local = e;
	return 0;
}

static uint32_t gw_timeout(struct svc_gateway *gw, struct MHD_Connection *c)
{
	const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Weft-Timeout-Ms");
	uint32_t max = svcn_max_timeout(gw->sn);
	unsigned long v;
	char *end;

	if (!t)
		return SVC_NODE_CALL_TIMEOUT_MS < max ? SVC_NODE_CALL_TIMEOUT_MS : max;
	v = strtoul(t, &end, 10);
	if (end == t || *end || !v)
		return SVC_NODE_CALL_TIMEOUT_MS < max ? SVC_NODE_CALL_TIMEOUT_MS : max;
	return v > max ? max : (uint32_t)v;
}

static void count_denied(struct svc_gateway *gw)
{
	atomic_fetch_add(&gw->sn->gw_denied, 1);
}

/*
 * First call of a request (headers only): Host, target, whitelist, Origin,
 * CORS preflight. Returns 1 when the request may go on, 0 when an answer
 * was queued (*ret).
 */
/* /mesh/v1/msg/<op>: the handler the node registered, as on the control
 * API; its answer (JSON, errors as {"error": {"code", "message"}}). */
static MHD_RESULT gw_msg(struct svc_gateway *gw, struct MHD_Connection *c, const char *method,
			 const char *op, struct gw_req *r)
{
	struct ctl_req req = {.method = method, .path = op, .subpath = op,
			      .body = r->body, .body_len = r->len};
	struct ctl_resp resp = {.status = 200};
	MHD_RESULT ret;
	char *s;

	if (!allowed(gw->sn->cfg.gateway_services, "mesh-msg", 8)) {
		count_denied(gw);
		return reply_error(c, 403, "forbidden",
				   "the mesh's messages are not in the gateway whitelist "
				   "(gateway.services: mesh-msg)");
	}
	if (!gw->sn->gw_msg_fn)
		return reply_error(c, 404, "not_found", "no mesh on this node");
	req.json = r->len ? json_loadb((const char *)r->body, r->len, 0, NULL) : NULL;
	gw->sn->gw_msg_fn(gw->sn->gw_msg_arg, &req, &resp);
	json_decref(req.json);
	s = resp.json ? json_dumps(resp.json, JSON_COMPACT) : NULL;
	if (s)
		ret = reply(c, (unsigned int)resp.status, "application/json", s, strlen(s),
			    resp.status >= 400 ? "mesh" : NULL);
	else
		ret = reply_error(c, 500, "internal", "no answer");
	free(s);
	json_decref(resp.json);
	free(resp.text);
	return ret;
}

static int gw_admit(struct svc_gateway *gw, struct MHD_Connection *c, struct gw_req *r,
		    const char *method, MHD_RESULT *ret)
{
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *cors = "";

	r->kind = ctl_http_host(host, gw->port, gw->listen_host, r->label);
	if (r->kind < 0) {
		count_denied(gw);
		log_info("svc", "gateway: refused a request for a foreign Host");
		*ret = reply_error(c, 421, "misdirected",
				   "Host is not this gateway: use localhost:PORT or "
				   "<service>.localhost:PORT");
		return 0;
	}
	if (bad_request_line(r->uri) || bad_request_line(method)) {
		*ret = reply_error(c, 400, "bad_request", "bad request line");
		return 0;
	}
	r->timeout_ms = gw_timeout(gw, c);
	if (r->kind == CTL_HTTP_HOST_SERVICE) {
		/* A name outside the whitelist is refused before any lookup;
		 * an id once it names its service. */
		if ((strlen(r->label) == 2 * SVC_ID_LEN ||
		     allowed(gw->sn->cfg.gateway_services, r->label, strlen(r->label))) &&
		    gw_resolve(gw, c, r, ret))
			return 0;
		if (!allowed(gw->sn->cfg.gateway_services, r->tg.dr.name,
			     strlen(r->tg.dr.name))) {
			count_denied(gw);
			log_info("svc", "gateway: %s not in gateway.services", r->tg.dr.name);
			*ret = reply_error(c, 403, "forbidden",
					   "service not in the gateway whitelist (gateway.services)");
			return 0;
		}
		cors = r->tg.dr.http_cors;
	}
	if (origin && !ctl_http_origin_same(origin, host)) {
		if (r->kind != CTL_HTTP_HOST_SERVICE || !cors_allows(cors, origin)) {
			count_denied(gw);
			*ret = reply_error(c, 403, "foreign_origin",
					   "requests from another web origin are refused");
			return 0;
		}
		r->cors_origin = strdup(origin);
		r->cors_wild = !strcmp(cors, "*");
	} else if (!origin) {
		/* No Origin: a tool, a same-origin GET, a navigation, or a
		 * cross-site embed (<img>, <script>) which is refused. */
		const char *sfs = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
		const char *sfm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Mode");

		if (ctl_http_cross_site(sfs, sfm)) {
			count_denied(gw);
			*ret = reply_error(c, 403, "foreign_origin",
					   "cross-site requests are refused");
			return 0;
		}
	}
	if (r->cors_origin && !strcmp(method, "OPTIONS") &&
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Method")) {
		struct MHD_Response *resp =
			MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		const char *rh = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     "Access-Control-Request-Headers");
		struct gw_out go = { .flags = r->tg.pinned ? r->tg.dr.http_flags : 0,
				     .cors_origin = r->cors_origin,
				     .cors_wild = r->cors_wild };

		if (!resp) {
			*ret = MHD_NO;
			return 0;
		}
		out_headers(resp, &go);
		MHD_add_response_header(resp, "Access-Control-Allow-Methods",
					"GET, HEAD, POST, PUT, PATCH, DELETE");
		if (rh && !strpbrk(rh, "\r\n"))
			MHD_add_response_header(resp, "Access-Control-Allow-Headers", rh);
		MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
		*ret = MHD_queue_response(c, 204, resp);
		MHD_destroy_response(resp);
		return 0;
	}
	return 1;
}

static MHD_RESULT handler(void *cls, struct MHD_Connection *c, const char *url,
			  const char *method, const char *version, const char *upload_data,
			  size_t *upload_size, void **con_cls)
{
	struct svc_gateway *gw = cls;
	struct gw_req *r = *con_cls;
	char name[SVC_NAME_MAX + 1];
	const char *rest;
	MHD_RESULT ret = MHD_NO;

	/* libmicrohttpd's threads are not ours: log as the node, and hand
	 * back their malloc arena's top when they end */
	if (log_current() != gw->log)
		log_bind(gw->log);
	util_heap_release_at_exit();

	if (!r)
		return MHD_NO;
	if (!r->started) {
		r->started = 1;
		atomic_fetch_add(&gw->sn->gw_requests, 1);
		if (!gw_admit(gw, c, r, method, &ret))
			return ret;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->too_big && r->len + *upload_size <= GW_MAX_BODY(gw)) {
			if (r->len + *upload_size > r->cap) {
				size_t nc = r->cap ? r->cap : 4096;
				uint8_t *nb;

				while (nc < r->len + *upload_size)
					nc *= 2;
				nb = realloc(r->body, nc);
				if (!nb)
					return MHD_NO;
				r->body = nb;
				r->cap = nc;
			}
			memcpy(r->body + r->len, upload_data, *upload_size);
			r->len += *upload_size;
		} else {
			r->too_big = 1;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->too_big)
		return reply_error(c, 413, "too_large", "body over the call payload cap");
	if (r->kind == CTL_HTTP_HOST_SERVICE) {
		/* A service's own origin: every path is the service's. */
		struct gw_out go = { .flags = r->tg.pinned ? r->tg.dr.http_flags : 0,
				     .cors_origin = r->cors_origin,
				     .cors_wild = r->cors_wild };

		if (svcn_gw_ws_wanted(c))
			return (MHD_RESULT)svcn_gw_ws(gw->sn, c, method, r->tg.dr.name,
						      r->tg.pinned ? &r->tg.dr : NULL, r->uri,
						      go.flags, r->timeout_ms);
		return gw_http(gw, c, r->tg.dr.name, &r->tg, method, r->uri, r, &go);
	}
	if (!strncmp(url, "/mesh/v1/ws/", 12)) {
		/* WebSocket, path form: never credentials (a shared origin). */
		size_t pl;
		const char *raw;

		if (split(url + 12, name, &rest))
			return reply_error(c, 400, "bad_request", "bad service name");
		if (!allowed(gw->sn->cfg.gateway_services, name, strlen(name))) {
			count_denied(gw);
			return reply_error(c, 403, "forbidden",
					   "service not in the gateway whitelist "
					   "(gateway.services)");
		}
		pl = 12 + strlen(name);
		raw = r->uri + pl;
		if (strlen(r->uri) < pl || strncmp(r->uri, url, pl) ||
		    (*raw && *raw != '/' && *raw != '?'))
			return reply_error(c, 400, "bad_request", "encoded service path");
		/* the providers of name, with failover (svcn_strm_open_ws) */
		return (MHD_RESULT)svcn_gw_ws(gw->sn, c, method, name, NULL, *raw ? raw : "/", 0,
					      r->timeout_ms);
	}
	if (!strncmp(url, "/mesh/v1/services/", 18)) {
		if (strcmp(method, "GET"))
			return reply_error(c, 405, "bad_method", "GET only");
		return gw_services(gw, c, url + 18);
	}
	if (!strncmp(url, "/mesh/v1/call/", 14) || !strncmp(url, "/mesh/v1/http/", 14)) {
		int http = url[9] == 'h';

		if (split(url + 14, name, &rest))
			return reply_error(c, 400, "bad_request", "bad service name");
		if (!allowed(gw->sn->cfg.gateway_services, name, strlen(name))) {
			count_denied(gw);
			log_info("svc", "gateway: %s not in gateway.services", name);
			return reply_error(c, 403, "forbidden",
					   "service not in the gateway whitelist "
					   "(gateway.services)");
		}
		if (http) {
			/* Path form on the gateway's own origin: shared by every
			 * service, so no credentials ever, and whatever it serves
			 * runs sandboxed (an opaque origin). */
			struct gw_out go = { .sandbox = 1 };
			struct gw_target tg = { 0 };
			size_t pl = 14 + strlen(name);
			const char *raw = r->uri + pl;
			int e;

			/* The raw path must spell the service as the decoded one. */
			if (strlen(r->uri) < pl || strncmp(r->uri, url, pl) ||
			    (*raw && *raw != '/' && *raw != '?'))
				return reply_error(c, 400, "bad_request", "encoded service path");
			e = svcn_pick(gw->sn, name, &tg.dr, &tg.ss, &tg.sl);
			if (e < 0)
				return e == -ENOENT || e == -ENOTCONN
					       ? reply_error(c, 404, "not_found",
							     "no provider of this service found")
					       : reply_error(c, 502, "unreachable", strerror(-e));
			tg.local = e;
			return gw_http(gw, c, name, &tg, method, *raw ? raw : "/", r, &go);
		}
		if (strcmp(method, "POST"))
			return reply_error(c, 405, "bad_method", "POST only");
		return gw_call(gw, c, name, rest, r);
	}
	if (!strncmp(url, "/mesh/v1/msg/", 13))
		return gw_msg(gw, c, method, url + 13, r);
	return reply_error(c, 404, "not_found", "no such gateway path");
}

void svc_node_gw_msg(struct svc_node *sn,
		     void (*fn)(void *arg, const struct ctl_req *req, struct ctl_resp *resp),
		     void *arg)
{
	sn->gw_msg_fn = fn;
	sn->gw_msg_arg = arg;
}

int svc_gateway_start(struct svc_node *sn, struct svc_gateway **out)
{
	struct sockaddr_storage ss;
	unsigned int sl;
	struct svc_gateway *gw;
	const char *colon;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			     MHD_USE_ERROR_LOG | MHD_USE_POLL | MHD_ALLOW_UPGRADE;

	*out = NULL;
	if (util_parse_addr(sn->cfg.gateway, &ss, &sl))
		return -EINVAL;
	if (!ctl_http_loopback(&ss)) {
		if (!sn->cfg.gateway_allow_public) {
			log_error("svc", "gateway %s is not a loopback address; set "
					 "gateway.allow_public to serve it",
				  sn->cfg.gateway);
			return -EPERM;
		}
		log_warn("svc", "gateway on NON-LOOPBACK address %s (gateway.allow_public): "
				"anyone who reaches it can call the whitelisted services",
			 sn->cfg.gateway);
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	gw = calloc(1, sizeof(*gw));
	if (!gw || ctl_drain_new(&gw->drain, GW_MAX_CONNS, "gateway")) {
		free(gw);
		return -ENOMEM;
	}
	gw->sn = sn;
	gw->log = log_current();
	gw->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						  : ((struct sockaddr_in *)&ss)->sin_port);
	colon = strrchr(sn->cfg.gateway, ':');
	if (colon && (size_t)(colon - sn->cfg.gateway) < sizeof(gw->listen_host))
		memcpy(gw->listen_host, sn->cfg.gateway, (size_t)(colon - sn->cfg.gateway));
	gw->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, gw, MHD_OPTION_SOCK_ADDR, &ss,
				   MHD_OPTION_URI_LOG_CALLBACK, uri_log, NULL,
				   MHD_OPTION_NOTIFY_COMPLETED, req_done, NULL,
				   MHD_OPTION_CONNECTION_LIMIT, (unsigned int)GW_MAX_CONNS,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)GW_TIMEOUT_S,
				   MHD_OPTION_NOTIFY_CONNECTION, ctl_drain_notify, gw->drain,
				   MHD_OPTION_END);
	if (!gw->mhd) {
		log_error("svc", "gateway: cannot listen on %s", sn->cfg.gateway);
		ctl_drain_free(gw->drain);
		free(gw);
		return -EADDRINUSE;
	}
	log_info("svc", "gateway listening on http://%s (services: %s)", sn->cfg.gateway,
		 sn->cfg.gateway_services[0] ? sn->cfg.gateway_services : "none");
	*out = gw;
	return 0;
}

void svc_gateway_stop(struct svc_gateway *gw)
{
	if (!gw)
		return;
	/* open connections end first (include/weft/ctl_drain.h) */
	ctl_drain_stop(gw->drain, gw->mhd, CTL_DRAIN_STOP_MS);
	ctl_drain_free(gw->drain);
	free(gw);
}
