/* SPDX-License-Identifier: MIT */
/*
 * Control API: HTTP/1.1 + JSON on a unix socket (libmicrohttpd + jansson).
 *
 * Modules register routes with ctl_route(). A handler runs on a control
 * thread (one per connection, bounded by max_conns), never on a packet
 * worker: it must not touch worker-owned state directly, but go through the
 * engine's command queue. Handlers may block (a DHT lookup) without holding
 * up other clients.
 */
#ifndef WEFT_CTL_H
#define WEFT_CTL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct ctl;

struct ctl_opts {
	const char *socket_path; /* unix socket, created mode 0600 */
	unsigned int mode;       /* 0600 (default when 0) or 0660: the group may connect */
	size_t max_body;         /* request body cap, default 1 MiB -> 413 */
	size_t max_header;       /* header memory per connection, default 16 KiB -> 431 */
	unsigned int max_conns;  /* concurrent connections, default 64 */
	unsigned int timeout_s;  /* idle connection timeout, default 10 s */
};

struct ctl_req {
	const char *method;  /* "GET", "POST", ... */
	const char *path;    /* full path, without the query string */
	const char *subpath; /* what follows the matched route prefix ("" if none) */
	const uint8_t *body; /* may contain NULs; not NUL-terminated */
	size_t body_len;
	json_t *json;        /* body parsed as JSON when non-empty and valid, else NULL */
	void *conn;          /* internal: for ctl_req_query() */
};

struct ctl_resp {
	int status;               /* HTTP status; default 200 */
	json_t *json;             /* owned; sent as application/json */
	char *text;               /* owned (malloc); sent with content_type */
	size_t text_len;
	const char *content_type; /* static string */
	/* 101 Switching Protocols (status 101): once the answer went out the
	 * connection is handed to upgrade(arg, fd, extra, extra_len, handle);
	 * extra: bytes the client sent after its request. The callee owns the
	 * socket until it calls ctl_upgrade_done(handle) (any thread), which
	 * closes it; the control thread of that connection waits until then
	 * (bounded by max_conns). upgrade_proto: the Upgrade header's value
	 * (static). header: one more response header, "Name: value" or "".
	 * Should the client go away before the 101, upgrade never runs. */
	void (*upgrade)(void *arg, int fd, const uint8_t *extra, size_t extra_len, void *handle);
	void *upgrade_arg;
	const char *upgrade_proto;
	char header[128];
	/*
	 * A streamed answer (newline-delimited JSON events, say), used when
	 * json and text are not set: the body is what stream_read(arg, buf,
	 * max) returns, piece by piece (bytes written, -1 at the end, -2 on
	 * error), sent with content_type; stream_done(arg) is called exactly
	 * once when the answer is over or was never sent. stream_read runs on
	 * the connection's control thread and may wait, but returns within
	 * about a second (a heartbeat line when there is nothing to say), so
	 * that stopping the server never waits on it for long.
	 */
	long (*stream_read)(void *arg, char *buf, size_t max);
	void (*stream_done)(void *arg);
	void *stream_arg;
};

typedef void (*ctl_handler_fn)(void *arg, const struct ctl_req *req, struct ctl_resp *resp);
/* Append Prometheus text-format lines to out. */
typedef void (*ctl_metrics_fn)(void *arg, FILE *out);

/* Create the server and bind the socket, mode 0600 (an existing stale
 * socket file is replaced; a live one is -EADDRINUSE; anything at the path
 * that is not a socket, a symlink included, is left untouched and is
 * -ENOTSOCK). The process umask is not touched. Returns 0 or -errno. */
int ctl_new(struct ctl **out, const struct ctl_opts *opts);
/* Start serving (spawns the control threads). Returns 0 or -errno. */
int ctl_start(struct ctl *ctl);
/* Stop serving, remove the socket file, free everything. NULL-safe. */
void ctl_free(struct ctl *ctl);

/* Register a route before ctl_start(). method "GET"/"POST"/"DELETE"/"PUT";
 * prefix ends with '/' to match a subtree ("/v1/ban/"), otherwise exact.
 * Longest prefix wins. Returns 0, -ENOSPC (table full) or -EINVAL. */
int ctl_route(struct ctl *ctl, const char *method, const char *prefix, ctl_handler_fn fn,
	      void *arg);
/* Register a /metrics contributor. Returns 0 or -ENOSPC. */
int ctl_metrics(struct ctl *ctl, ctl_metrics_fn fn, void *arg);

/* Query-string parameter or NULL. */
const char *ctl_req_query(const struct ctl_req *req, const char *key);
/* Request header (case-insensitive name) or NULL. */
const char *ctl_req_header(const struct ctl_req *req, const char *name);
/* The upgraded connection's owner is done with it (struct ctl_resp). */
void ctl_upgrade_done(void *handle);

/* Response helpers. ctl_resp_json steals obj. */
void ctl_resp_json(struct ctl_resp *resp, int status, json_t *obj);
/* {"error": {"code": code, "message": ...}} with the given HTTP status. */
void ctl_resp_error(struct ctl_resp *resp, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Map a negative errno from a module to an HTTP error response
 * (docs/CONTROL_API.md, "Conventions": -ENOSPC/-EDQUOT are 507 no_space). */
void ctl_resp_errno(struct ctl_resp *resp, int err, const char *what);
/* The error code ctl_resp_errno gives a negative errno ("no_space",
 * "timeout", ..., "internal"): static storage. */
const char *ctl_errno_code(int err);
/*
 * A change the store could not make durable in time (its writer's queue
 * full, its deadline passed, the disk failing): 503 with code
 * "not_durable" and a message saying what happened ("what" is the part
 * already in effect, e.g. "ban applied"); no space (-ENOSPC, -EDQUOT: the
 * disk or the LMDB map full) is 507 "no_space". Errors that say the
 * request itself is wrong (-EINVAL, -ENOENT, -EEXIST) keep
 * ctl_resp_errno's mapping.
 */
void ctl_resp_store_error(struct ctl_resp *resp, int err, const char *what);

/* Dispatch one request through the route table (used by the gateway and by
 * tests, which need no socket). */
void ctl_dispatch(struct ctl *ctl, const struct ctl_req *req, struct ctl_resp *resp);

#endif
