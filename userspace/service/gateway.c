// SPDX-License-Identifier: MIT
/*
 * Loopback HTTP gateway (libmicrohttpd, a thread per connection):
 *   POST /mesh/v1/call/<service>/<method>   a call; body = payload
 *   GET  /mesh/v1/services/<name>           discovery as JSON
 *   ANY  /mesh/v1/http/<service>/<path>     HTTP pass-through to a provider's
 *                                           HTTP backend, response streamed back
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

#include "svc_node_int.h"
#include "weft/log.h"
#include "weft/util.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

/* Request body cap: the call payload cap (svc.max_payload, default 1 MiB);
 * the HTTP pass-through request (headers + body) travels as one call
 * payload too. */
#define GW_MAX_BODY(gw)                                                                  \
	((size_t)((gw)->sn->cfg.svc_max_payload ? (gw)->sn->cfg.svc_max_payload           \
						: SVC_MSG_DEFAULT_MAX_PAYLOAD))
/* Concurrent gateway connections: 256 (a thread each); idle timeout 30 s. */
#define GW_MAX_CONNS 256
#define GW_TIMEOUT_S 30
/* Head of a relayed HTTP response (status line + headers): 64 KiB. */
#define GW_MAX_HEAD (64u << 10)

struct svc_gateway {
	struct svc_node *sn;
	struct MHD_Daemon *mhd;
};

struct gw_req {
	char *uri; /* raw, with the query string */
	uint8_t *body;
	size_t len, cap;
	int too_big;
	int started; /* the first call (headers only) has been seen */
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
		free(r);
	}
	*con_cls = NULL;
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

	if (!svc_method_valid((const uint8_t *)method, strlen(method)))
		return reply_error(c, 400, "bad_request", "bad method name");
	err = svc_node_call(gw->sn, svc, method, r->body, r->len, 0, &res);
	if (err == -ENOENT)
		return reply_error(c, 404, "not_found", "no provider of this service found");
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
	ret = MHD_queue_response(c, http_status(res.err), resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- HTTP pass-through ---- */

struct hdr_acc {
	char *buf;
	size_t len, cap;
	int bad;
};

static int hdr_skip(const char *k)
{
	static const char *const hop[] = { "connection", "keep-alive", "proxy-connection",
					   "transfer-encoding", "content-length", "upgrade",
					   "te", "trailer", "expect" };

	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (!strcasecmp(k, hop[i]))
			return 1;
	return 0;
}

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

	if (hdr_skip(k) || strchr(k, '\r') || strchr(k, '\n') || (v && (strchr(v, '\r') ||
									 strchr(v, '\n'))))
		return MHD_YES;
	acc_add(a, k, strlen(k));
	acc_add(a, ": ", 2);
	acc_add(a, v ? v : "", v ? strlen(v) : 0);
	acc_add(a, "\r\n", 2);
	return MHD_YES;
}

struct gw_stream {
	struct svc_node *sn;
	struct svcn_op *op;
	int fd;		/* local provider: the backend socket */
	uint8_t *pre;	/* local: body bytes read with the head */
	size_t pre_len, pre_off;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct gw_stream *s = cls;
	struct svc_node *sn = s->sn;
	ssize_t n;

	if (s->op) {
		struct svcn_op *o = s->op;

		pthread_mutex_lock(sn->mu);
		while (o->resp_off == o->resp_len && !o->done)
			svcn_wait(sn, 50000000ull);
		if (o->resp_off < o->resp_len) {
			n = (ssize_t)(o->resp_len - o->resp_off < max ? o->resp_len - o->resp_off
								       : max);
			memcpy(buf, o->resp + o->resp_off, (size_t)n);
			o->resp_off += (size_t)n;
		} else {
			n = o->err ? MHD_CONTENT_READER_END_WITH_ERROR
				   : MHD_CONTENT_READER_END_OF_STREAM;
		}
		pthread_mutex_unlock(sn->mu);
		return n;
	}
	if (s->pre_off < s->pre_len) {
		n = (ssize_t)(s->pre_len - s->pre_off < max ? s->pre_len - s->pre_off : max);
		memcpy(buf, s->pre + s->pre_off, (size_t)n);
		s->pre_off += (size_t)n;
		return n;
	}
	do
		n = read(s->fd, buf, max);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static void stream_free(void *cls)
{
	struct gw_stream *s = cls;

	if (s->op) {
		pthread_mutex_lock(s->sn->mu);
		svcn_op_put(s->sn, s->op);
		pthread_mutex_unlock(s->sn->mu);
	}
	if (s->fd >= 0)
		close(s->fd);
	free(s->pre);
	free(s);
}

/*
 * Parse the head of an HTTP response in buf[0..len): returns its length
 * (through "\r\n\r\n"), 0 if incomplete, -1 if malformed. Fills status
 * and the content length (-1 unknown).
 */
static long parse_head(const uint8_t *buf, size_t len, unsigned int *status, long long *clen)
{
	const char *p = (const char *)buf;
	size_t i;

	for (i = 0; i + 3 < len; i++)
		if (!memcmp(p + i, "\r\n\r\n", 4))
			break;
	if (i + 3 >= len)
		return len > GW_MAX_HEAD ? -1 : 0;
	if (i < 12 || memcmp(p, "HTTP/1.", 7) || p[8] != ' ')
		return -1;
	*status = (unsigned int)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
	if (*status < 100 || *status > 599)
		return -1;
	*clen = -1;
	return (long)(i + 4);
}

/* Add the backend's headers (hop-by-hop ones dropped) to resp. */
static void copy_headers(struct MHD_Response *resp, const uint8_t *head, size_t hl,
			 long long *clen)
{
	char *h = strndup((const char *)head, hl), *save = NULL, *line;

	if (!h)
		return;
	line = strtok_r(h, "\r\n", &save); /* status line */
	while ((line = strtok_r(NULL, "\r\n", &save))) {
		char *colon = strchr(line, ':'), *v;

		if (!colon)
			continue;
		*colon = 0;
		v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if (!strcasecmp(line, "content-length")) {
			char *end;
			long long x = strtoll(v, &end, 10);

			if (end != v && x >= 0)
				*clen = x;
			continue;
		}
		if (hdr_skip(line))
			continue;
		MHD_add_response_header(resp, line, v);
	}
	free(h);
}

static MHD_RESULT gw_http(struct svc_gateway *gw, struct MHD_Connection *c, const char *svc,
			  const char *method, const struct gw_req *r)
{
	struct svc_node *sn = gw->sn;
	struct hdr_acc a = { 0 };
	struct svc_msg m = { .type = SVC_MSG_REQUEST };
	struct svc_dir_result dr;
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	struct gw_stream *s;
	struct MHD_Response *resp;
	unsigned int status = 0;
	long long clen = -1;
	const char *uri = r->uri, *rest;
	char name[SVC_NAME_MAX + 1], cl[32];
	uint8_t *req = NULL;
	size_t rl;
	long hl = 0;
	MHD_RESULT ret;
	int err, local;

	/* uri = /mesh/v1/http/<svc>/<path>[?query]: the backend sees /<path>[?query]. */
	uri += strlen("/mesh/v1/http/");
	if (split(uri, name, &rest))
		return reply_error(c, 400, "bad_request", "bad service name");
	acc_add(&a, method, strlen(method));
	acc_add(&a, " /", 2);
	acc_add(&a, rest, strlen(rest));
	acc_add(&a, " HTTP/1.0\r\n", 11);
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
	s->sn = sn;
	s->fd = -1;
	local = svcn_pick(sn, svc, &dr, &ss, &sl);
	if (local < 0) {
		free(req);
		free(s);
		if (local == -ENOENT || local == 0)
			return reply_error(c, 404, "not_found", "no provider of this service found");
		return reply_error(c, 502, "unreachable", strerror(-local));
	}
	if (local == 1) {
		/* This node offers it: straight to the local backend. */
		char backend[SVC_BACKEND_ADDR_MAX] = "";
		uint8_t *head = malloc(GW_MAX_HEAD + 1);
		size_t have = 0;

		pthread_mutex_lock(sn->mu);
		for (size_t i = 0; i < SVC_NODE_MAX_PUBLISHED; i++)
			if (sn->pubs[i].used && !strcmp(sn->pubs[i].name, svc))
				snprintf(backend, sizeof(backend), "%s", sn->pubs[i].backend);
		pthread_mutex_unlock(sn->mu);
		err = backend[0] && head ? svc_backend_connect(backend, SVC_NODE_CALL_TIMEOUT_MS)
					 : -EINVAL;
		if (err >= 0) {
			s->fd = err;
			for (size_t off = 0; off < rl;) {
				ssize_t n = write(s->fd, req + off, rl - off);

				if (n <= 0) {
					err = -EIO;
					break;
				}
				off += (size_t)n;
			}
		}
		while (err >= 0 && !(hl = parse_head(head, have, &status, &clen))) {
			ssize_t n = read(s->fd, head + have, GW_MAX_HEAD + 1 - have);

			if (n <= 0) {
				err = -EIO;
				break;
			}
			have += (size_t)n;
		}
		free(req);
		if (err < 0 || hl < 0) {
			free(head);
			stream_free(s);
			return reply_error(c, 502, "backend_error",
					   err == -EINVAL ? "not an HTTP backend service"
							  : "backend did not answer HTTP");
		}
		s->pre = malloc(have - (size_t)hl + 1);
		if (s->pre) {
			memcpy(s->pre, head + hl, have - (size_t)hl);
			s->pre_len = have - (size_t)hl;
		}
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32768, stream_read, s,
							 stream_free);
		if (!resp) {
			free(head);
			stream_free(s);
			return MHD_NO;
		}
		copy_headers(resp, head, (size_t)hl, &clen);
		free(head);
		goto send;
	}
	m.service = svc;
	m.service_len = strlen(svc);
	m.method = "http";
	m.method_len = 4;
	m.payload = req;
	m.payload_len = rl;
	{
		size_t ml = svc_msg_len(&m);
		uint8_t *enc = malloc(ml);

		err = enc ? svc_msg_encode(&m, enc, ml, &ml) : -ENOMEM;
		free(req);
		pthread_mutex_lock(sn->mu);
		sn->st.http_out++;
		s->op = err ? NULL
			    : svcn_op_start(sn, SVCN_OP_HTTP, (const struct sockaddr *)&ss, sl,
					    dr.owner, enc, ml, 16u << 20, &err);
		free(enc);
		if (!s->op) {
			pthread_mutex_unlock(sn->mu);
			free(s);
			return reply_error(c, 502, "unreachable", strerror(-err));
		}
		/* Wait for the RESPONSE header and the backend's HTTP head. */
		uint64_t deadline = svcn_now_ns() + SVC_NODE_CALL_TIMEOUT_MS * 1000000ull;
		struct svcn_op *o = s->op;
		struct svc_msg rm;

		for (;;) {
			if (o->resp_len >= SVC_MSG_HDR_LEN) {
				long dl = svc_msg_decode(&rm, o->resp, SVC_MSG_HDR_LEN, 0);

				if (dl < 0 || rm.type != SVC_MSG_RESPONSE) {
					err = SVC_ERR_BAD_REQUEST;
					break;
				}
				if (rm.err != SVC_OK) {
					err = rm.err;
					break;
				}
				hl = parse_head(o->resp + SVC_MSG_HDR_LEN,
						o->resp_len - SVC_MSG_HDR_LEN, &status, &clen);
				if (hl) {
					err = hl < 0 ? SVC_ERR_BACKEND_ERROR : SVC_OK;
					break;
				}
			}
			if (o->done) {
				err = o->err == -ETIMEDOUT ? SVC_ERR_TIMEOUT : SVC_ERR_BACKEND_ERROR;
				break;
			}
			if (svcn_now_ns() >= deadline) {
				err = SVC_ERR_TIMEOUT;
				break;
			}
			svcn_wait(sn, 50000000ull);
		}
		if (err != SVC_OK) {
			pthread_mutex_unlock(sn->mu);
			stream_free(s);
			return reply_error(c, http_status(err), svc_err_name((unsigned int)err),
					   "pass-through failed");
		}
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32768, stream_read, s,
							 stream_free);
		if (resp)
			copy_headers(resp, o->resp + SVC_MSG_HDR_LEN, (size_t)hl, &clen);
		o->resp_off = SVC_MSG_HDR_LEN + (size_t)hl;
		pthread_mutex_unlock(sn->mu);
		if (!resp) {
			stream_free(s);
			return MHD_NO;
		}
	}
send:
	log_debug("svc", "gateway http service=%s method=%s status=%u", svc, method, status);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static MHD_RESULT handler(void *cls, struct MHD_Connection *c, const char *url,
			  const char *method, const char *version, const char *upload_data,
			  size_t *upload_size, void **con_cls)
{
	struct svc_gateway *gw = cls;
	struct gw_req *r = *con_cls;
	char name[SVC_NAME_MAX + 1];
	const char *rest;

	if (!r)
		return MHD_NO;
	if (!r->started) {
		r->started = 1;
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
	pthread_mutex_lock(gw->sn->mu);
	gw->sn->st.gw_requests++;
	pthread_mutex_unlock(gw->sn->mu);
	if (r->too_big)
		return reply_error(c, 413, "too_large", "body over the 1 MiB call payload cap");
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
			pthread_mutex_lock(gw->sn->mu);
			gw->sn->st.gw_denied++;
			pthread_mutex_unlock(gw->sn->mu);
			log_info("svc", "gateway: %s not in gateway.services", name);
			return reply_error(c, 403, "forbidden",
					   "service not in the gateway whitelist "
					   "(gateway.services)");
		}
		if (http)
			return gw_http(gw, c, name, method, r);
		if (strcmp(method, "POST"))
			return reply_error(c, 405, "bad_method", "POST only");
		return gw_call(gw, c, name, rest, r);
	}
	return reply_error(c, 404, "not_found", "no such gateway path");
}

static int is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return 0;
}

int svc_gateway_start(struct svc_node *sn, struct svc_gateway **out)
{
	struct sockaddr_storage ss;
	unsigned int sl;
	struct svc_gateway *gw;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			     MHD_USE_ERROR_LOG | MHD_USE_POLL;

	*out = NULL;
	if (util_parse_addr(sn->cfg.gateway, &ss, &sl))
		return -EINVAL;
	if (!is_loopback(&ss)) {
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
	if (!gw)
		return -ENOMEM;
	gw->sn = sn;
	gw->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, gw, MHD_OPTION_SOCK_ADDR, &ss,
				   MHD_OPTION_URI_LOG_CALLBACK, uri_log, NULL,
				   MHD_OPTION_NOTIFY_COMPLETED, req_done, NULL,
				   MHD_OPTION_CONNECTION_LIMIT, (unsigned int)GW_MAX_CONNS,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)GW_TIMEOUT_S,
				   MHD_OPTION_END);
	if (!gw->mhd) {
		log_error("svc", "gateway: cannot listen on %s", sn->cfg.gateway);
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
	MHD_stop_daemon(gw->mhd);
	free(gw);
}
