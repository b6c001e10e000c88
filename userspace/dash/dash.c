// SPDX-License-Identifier: MIT
/*
 * The live dashboard (include/weft/dash.h): a libmicrohttpd server with four
 * paths: the page, its script, its style (all built into weftd by
 * assets.c) and GET /api/snapshot (read-only control API routes in one JSON
 * object). docs/OPERATIONS.md, "Live dashboard".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "weft/ctl.h"
#include "weft/ctl_drain.h"
#include "weft/dash.h"
#include "weft/log.h"
#include "weft/ctl_http.h"
#include "weft/util.h"

#if MHD_VERSION >= 0x00097002
#define MHD_RESULT enum MHD_Result
#else
#define MHD_RESULT int
#endif

/* assets.c: the page, script and style, NUL-terminated */
extern const char dash_index_html[], dash_app_js[], dash_app_css[];

struct dash {
	struct MHD_Daemon *mhd;
	struct ctl_drain *drain; /* the connections, closed before the stop */
	struct ctl *ctl;
	struct log_ctx *log;
	/* the bound port: set before the daemon starts when dashboard.listen
	 * names it, after (port 0) from MHD; read by the connection threads */
	_Atomic uint16_t port;
	char listen_host[64]; /* the address as written in dashboard.listen */
};

/* The read-only routes the snapshot answers, under these keys. */
static const struct {
	const char *key, *path;
} snap_routes[] = {
	{"status", "/v1/status"},     {"xdp", "/v1/xdp/status"},   {"dht", "/v1/dht/status"},
	{"quic", "/v1/quic/stats"},   {"conns", "/v1/quic/conns"}, {"content", "/v1/content/stats"},
	{"jobs", "/v1/content/jobs"}, {"shares", "/v1/content"},   {"svc", "/v1/svc/stats"},
	{"services", "/v1/svc/ls"},   {"bans", "/v1/bans"},        {"io", "/v1/io/stats"},
	{"seed", "/v1/content/peers"},
};

static json_t *snapshot(struct dash *d)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	for (size_t i = 0; i < sizeof(snap_routes) / sizeof(snap_routes[0]); i++) {
		struct ctl_req req = {.method = "GET", .path = snap_routes[i].path, .subpath = ""};
		struct ctl_resp resp = {.status = 200};

		ctl_dispatch(d->ctl, &req, &resp);
		if (resp.status == 200 && resp.json) {
			json_object_set_new(o, snap_routes[i].key, resp.json);
		} else {
			/* a module that is off (no content store...) or busy */
			json_object_set_new(o, snap_routes[i].key,
					    json_pack("{s:i}", "unavailable", resp.status));
			json_decref(resp.json);
		}
		free(resp.text);
	}
	json_object_set_new(o, "time_ms", json_integer((json_int_t)util_now_ms()));
	return o;
}

static void security_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'none'; script-src 'self'; style-src 'self'; "
				"connect-src 'self'; img-src 'self'; base-uri 'none'; "
				"form-action 'none'; frame-ancestors 'none'");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(r, "Cache-Control", "no-store");
}

static MHD_RESULT reply(struct MHD_Connection *c, unsigned int status, const char *ctype,
			const char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, mode);
	MHD_RESULT ret;

	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free((void *)body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	security_headers(r);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static MHD_RESULT reply_error(struct MHD_Connection *c, unsigned int status, const char *code,
			      const char *msg)
{
	char *s = NULL;
	json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);

	if (o)
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return MHD_NO;
	return reply(c, status, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE);
}

/* The gateway's rules (userspace/service/gateway.c): the Host must name this
 * server (localhost, a loopback literal, or the listen address: DNS
 * rebinding is refused), an Origin must be this origin, and without an
 * Origin a cross-site or same-site request other than a navigation (an
 * <img> or <script> embedding the snapshot) is refused. */
static int admit(struct dash *d, struct MHD_Connection *c, MHD_RESULT *ret)
{
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	char label[65];

	if (ctl_http_host(host, atomic_load(&d->port), d->listen_host, label) != CTL_HTTP_HOST_BARE) {
		log_info("dash", "refused a request for a foreign Host");
		*ret = reply_error(c, 421, "misdirected",
				   "Host is not this dashboard: use localhost:PORT");
		return 0;
	}
	if (origin && !ctl_http_origin_same(origin, host)) {
		*ret = reply_error(c, 403, "foreign_origin",
				   "requests from another web origin are refused");
		return 0;
	}
	if (!origin) {
		const char *sfs = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
		const char *sfm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Mode");

		if (ctl_http_cross_site(sfs, sfm)) {
			*ret = reply_error(c, 403, "foreign_origin", "cross-site requests are refused");
			return 0;
		}
	}
	return 1;
}

static MHD_RESULT handler(void *cls, struct MHD_Connection *c, const char *url,
			  const char *method, const char *version, const char *upload_data,
			  size_t *upload_size, void **con_cls)
{
	struct dash *d = cls;
	MHD_RESULT ret = MHD_NO;

	(void)version;
	(void)upload_data;
	if (log_current() != d->log)
		log_bind(d->log);
	util_heap_release_at_exit(); /* a thread per connection: common/heap_thread.c */
	if (!*con_cls) {
		/* first call: headers only; answer on the next one */
		*con_cls = d;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* no path takes a body: discarded, refused below */
		return MHD_YES;
	}
	if (!admit(d, c, &ret))
		return ret;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply_error(c, 405, "method_not_allowed", "the dashboard is read-only");
	if (!strcmp(url, "/"))
		return reply(c, 200, "text/html; charset=utf-8", dash_index_html,
			     strlen(dash_index_html), MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/app.js"))
		return reply(c, 200, "text/javascript; charset=utf-8", dash_app_js,
			     strlen(dash_app_js), MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/app.css"))
		return reply(c, 200, "text/css; charset=utf-8", dash_app_css, strlen(dash_app_css),
			     MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/api/snapshot")) {
		json_t *o = snapshot(d);
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

		json_decref(o);
		if (!s)
			return reply_error(c, 500, "internal", "out of memory");
		return reply(c, 200, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE);
	}
	return reply_error(c, 404, "not_found", "no such dashboard path");
}

int dash_new(struct dash **out, const struct dash_opts *opts)
{
	/* MHD_USE_ITC: a connection's end is reported at once (ctl_drain.h) */
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			     MHD_USE_ERROR_LOG | MHD_USE_POLL | MHD_USE_ITC;
	const union MHD_DaemonInfo *info;
	struct sockaddr_storage ss;
	unsigned int sl;
	struct dash *d;
	const char *end;
	size_t hl;

	*out = NULL;
	if (!opts || !opts->listen || !opts->ctl || util_parse_addr(opts->listen, &ss, &sl))
		return -EINVAL;
	if (!ctl_http_loopback(&ss)) {
		if (!opts->allow_public) {
			log_error("dash", "dashboard %s is not a loopback address; set "
					  "dashboard.allow_public to serve it",
				  opts->listen);
			return -EPERM;
		}
		log_warn("dash", "dashboard on NON-LOOPBACK address %s (dashboard.allow_public): "
				 "anyone who reaches it sees the node's state",
			 opts->listen);
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	d = calloc(1, sizeof(*d));
	if (!d || ctl_drain_new(&d->drain, DASH_MAX_CONNS, "dashboard")) {
		free(d);
		return -ENOMEM;
	}
	d->ctl = opts->ctl;
	atomic_store(&d->port, ntohs(ss.ss_family == AF_INET6
					     ? ((struct sockaddr_in6 *)&ss)->sin6_port
					     : ((struct sockaddr_in *)&ss)->sin_port));
	d->log = log_current();
	/* the host part as written ("[::1]:8080" -> "[::1]", "127.0.0.1:80" ->
	 * "127.0.0.1"), which ctl_http_host accepts as this server's name */
	end = strrchr(opts->listen, ':');
	hl = end ? (size_t)(end - opts->listen) : 0;
	if (hl && hl < sizeof(d->listen_host))
		memcpy(d->listen_host, opts->listen, hl);
	d->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, d, MHD_OPTION_SOCK_ADDR, &ss,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned int)DASH_MAX_CONNS,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)DASH_TIMEOUT_S,
				  MHD_OPTION_NOTIFY_CONNECTION, ctl_drain_notify, d->drain,
				  MHD_OPTION_END);
	if (!d->mhd) {
		log_error("dash", "cannot listen on %s", opts->listen);
		ctl_drain_free(d->drain);
		free(d);
		return -EADDRINUSE;
	}
	info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
	if (info)
		atomic_store(&d->port, info->port);
	log_info("dash", "dashboard on http://%s/", opts->listen);
	*out = d;
	return 0;
}

uint16_t dash_port(const struct dash *d)
{
	return d ? atomic_load(&d->port) : 0;
}

void dash_free(struct dash *d)
{
	if (!d)
		return;
	/* open connections end first (include/weft/ctl_drain.h) */
	ctl_drain_stop(d->drain, d->mhd, CTL_DRAIN_STOP_MS);
	ctl_drain_free(d->drain);
	free(d);
}
