// SPDX-License-Identifier: MIT
/*
 * WebSocket through the gateway (docs/SERVICE.md, "WebSocket through the
 * gateway"): ws://<service>.localhost:PORT/... and
 * ws://127.0.0.1:PORT/mesh/v1/ws/<service>/... The client's upgrade
 * request (its Origin and Sec-WebSocket-* headers, minus hop-by-hop
 * headers, credentials without the opt-in and Sec-WebSocket-Extensions)
 * goes to the provider on a stream of type SVC_NODE_ST_WS, whose backend
 * answers it as it would any client; its 101 comes back to the client
 * with Sec-WebSocket-Accept (and -Protocol), and from then on the
 * connection's bytes ride the stream on the fabric's owner
 * (svc_node_stream_attach), frame headers checked both ways
 * (ws_frame.c). A refusal by the backend reaches the client with its
 * status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "svc_stream_int.h"
#include "weft/log.h"
#include "weft/svc_http.h"

struct ws_acc {
	char *buf;
	size_t len, cap;
	int bad;
	unsigned int flags;
	const char *conn;
};

static void acc(struct ws_acc *a, const char *s)
{
	size_t l = strlen(s);

	if (a->bad)
		return;
	if (a->len + l + 1 > a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 1024;
		char *nb;

		while (nc < a->len + l + 1)
			nc *= 2;
		if (nc > SVCN_STRM_HEAD_MAX || !(nb = realloc(a->buf, nc))) {
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

static enum MHD_Result ws_hdr(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct ws_acc *a = cls;

	(void)kind;
	if (!k || strpbrk(k, "\r\n") || (v && strpbrk(v, "\r\n")))
		return MHD_YES;
	/* no extension: frames stay readable (RSV bits 0) */
	if (!strcasecmp(k, "Sec-WebSocket-Extensions"))
		return MHD_YES;
	if (!svc_http_req_keep(k, strlen(k), a->conn, a->conn ? strlen(a->conn) : 0, a->flags))
		return MHD_YES;
	acc(a, k);
	acc(a, ": ");
	acc(a, v ? v : "");
	acc(a, "\r\n");
	return MHD_YES;
}

static int ws_reply(struct MHD_Connection *c, unsigned int status, const char *code,
		    const char *msg)
{
	char body[512];
	struct MHD_Response *r;
	int n, ret;

	n = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
		     msg);
	r = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

int svcn_gw_ws_wanted(struct MHD_Connection *c)
{
	const char *up = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade");

	return up && !strcasecmp(up, "websocket");
}

/* Does the Connection value list the "upgrade" token? */
static int conn_upgrade(const char *v)
{
	while (v && *v) {
		size_t l;

		v += strspn(v, " \t,");
		l = strcspn(v, " \t,");
		if (l == 7 && !strncasecmp(v, "upgrade", 7))
			return 1;
		v += l;
	}
	return 0;
}

/* The value of header name in a response head (NUL-terminated), into out. */
static int head_value(const char *head, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);

	for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
		const char *l = p + 2, *e = strstr(l, "\r\n");
		size_t vl;

		if (!e || strncasecmp(l, name, nl) || l[nl] != ':')
			continue;
		l += nl + 1;
		l += strspn(l, " \t");
		vl = (size_t)(e - l);
		while (vl && (l[vl - 1] == ' ' || l[vl - 1] == '\t'))
			vl--;
		if (vl >= cap)
			return -1;
		memcpy(out, l, vl);
		out[vl] = 0;
		return 0;
	}
	return -1;
}

static void ws_release(void *arg, int fd, const struct svc_node_stream_info *i)
{
	(void)fd;
	(void)i;
	MHD_upgrade_action(arg, MHD_UPGRADE_ACTION_CLOSE);
}

static void ws_upgraded(void *cls, struct MHD_Connection *c, void *req_cls, const char *extra,
			size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	(void)c;
	(void)req_cls;
	svc_node_stream_attach(cls, sock, (const uint8_t *)extra, extra_len, ws_release, urh);
}

/* X-Weft-Idle-Ms: the client asks for a shorter idle time (1..3600000,
 * at least 100; anything else: 0, the nodes' svc.stream_idle_ms). */
static uint32_t idle_asked(struct MHD_Connection *c)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Weft-Idle-Ms");
	char *end = NULL;
	unsigned long ms;

	if (!v || !*v)
		return 0;
	ms = strtoul(v, &end, 10);
	if (!end || *end || !ms || ms > 3600000ul)
		return 0;
	return ms < 100 ? 100 : (uint32_t)ms; /* svc.stream_idle_ms's floor */
}

int svcn_gw_ws(struct svc_node *sn, struct MHD_Connection *c, const char *method,
	       const char *svc, const struct svc_dir_result *pin, const char *path,
	       unsigned int flags, uint32_t timeout_ms)
{
	struct ws_acc a = {.flags = flags};
	const char *ver = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Version");
	const char *wkey = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
	struct svc_node_stream_info info;
	struct svc_node_stream *st = NULL;
	struct MHD_Response *r;
	char msg[160], acc_v[128], proto[256], *head = NULL;
	uint8_t *rh = NULL;
	size_t rhl = 0;
	int err, status = 0, ret;
	long hl;

	a.conn = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection");
	if (strcmp(method, "GET") || !conn_upgrade(a.conn) || !ver || strcmp(ver, "13") || !wkey ||
	    strlen(wkey) != 24)
		return ws_reply(c, 400, "bad_upgrade",
				"a WebSocket upgrade is a GET with Connection: Upgrade, "
				"Upgrade: websocket, Sec-WebSocket-Version: 13 and a "
				"Sec-WebSocket-Key");
	acc(&a, "GET ");
	acc(&a, path);
	acc(&a, " HTTP/1.1\r\nHost: ");
	acc(&a, svc);
	acc(&a, "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n");
	MHD_get_connection_values(c, MHD_HEADER_KIND, ws_hdr, &a);
	acc(&a, "\r\n");
	if (a.bad) {
		free(a.buf);
		return ws_reply(c, 431, "too_large", "upgrade request over 16 KiB");
	}
	err = svcn_strm_open_ws(sn, svc, pin, (const uint8_t *)a.buf, a.len, idle_asked(c),
				timeout_ms, &st, &rh, &rhl, &info);
	free(a.buf);
	if (err == -ENOENT || err == -ENOTCONN)
		return ws_reply(c, 404, "not_found", "no provider of this service found");
	if (err) {
		snprintf(msg, sizeof(msg), "the service could not be reached: %s", strerror(-err));
		return ws_reply(c, err == -ETIMEDOUT ? 504 : 502,
				err == -ETIMEDOUT ? "timeout" : "unreachable", msg);
	}
	if (!st) {
		snprintf(msg, sizeof(msg), "stream refused: %s",
			 svc_stream_reason_name(info.reason));
		return ws_reply(c,
				info.err == SVC_ERR_TIMEOUT	    ? 504
				: info.err == SVC_ERR_NOT_FOUND	    ? 404
				: info.err == SVC_ERR_RATE_LIMITED ? 429
				: info.err == SVC_ERR_BACKEND_ERROR ? 502
								    : 503,
				svc_err_name((unsigned int)info.err), msg);
	}
	head = malloc(rhl + 1);
	hl = head ? svcn_bstream_head(rh, rhl, &status) : -ENOMEM;
	if (head) {
		memcpy(head, rh, rhl);
		head[rhl] = 0;
	}
	free(rh);
	if (hl <= 0 || status != 101 || head_value(head, "Sec-WebSocket-Accept", acc_v,
						    sizeof(acc_v))) {
		svc_node_stream_abort(st);
		free(head);
		snprintf(msg, sizeof(msg), "the service's backend refused the upgrade (%d)", status);
		log_info("svc", "gateway: ws %s: backend answered %d", svc, status);
		return ws_reply(c, status >= 400 && status <= 599 ? (unsigned int)status : 502,
				"upgrade_refused", msg);
	}
	r = MHD_create_response_for_upgrade(ws_upgraded, st);
	if (!r) {
		svc_node_stream_abort(st);
		free(head);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Upgrade", "websocket");
	MHD_add_response_header(r, "Connection", "Upgrade");
	MHD_add_response_header(r, "Sec-WebSocket-Accept", acc_v);
	if (!head_value(head, "Sec-WebSocket-Protocol", proto, sizeof(proto)))
		MHD_add_response_header(r, "Sec-WebSocket-Protocol", proto);
	free(head);
	ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, r);
	MHD_destroy_response(r);
	return ret;
}
