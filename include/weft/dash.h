/* SPDX-License-Identifier: MIT */
/*
 * Live dashboard: one page served by weftd over HTTP (libmicrohttpd), opt-in
 * (dashboard.listen), loopback unless allow_public. The page and its script
 * and style are built into weftd (no external assets); it polls
 * GET /api/snapshot, which answers the read-only control API routes the page
 * shows (status, xdp, dht, quic, content, svc, bans, io) in one JSON object,
 * through ctl_dispatch (no socket). Same Host/Origin rules as the gateway:
 * a Host other than localhost/loopback/the listen address is refused (421,
 * DNS rebinding), a foreign Origin or a cross-site subresource too (403).
 */
#ifndef WEFT_DASH_H
#define WEFT_DASH_H

#include <stdint.h>

struct ctl;
struct dash;

struct dash_opts {
	const char *listen; /* "ADDR:PORT" */
	int allow_public;   /* a non-loopback address is refused without it */
	struct ctl *ctl;    /* the routes the snapshot answers (borrowed) */
};

/* Bounds: DASH_MAX_CONNS concurrent connections (one thread each), each
 * idle at most DASH_TIMEOUT_S; only GET and HEAD; no request body. */
#define DASH_MAX_CONNS 16
#define DASH_TIMEOUT_S 10

/* Start serving. -EINVAL (bad address), -EPERM (not loopback, no
 * allow_public), -EADDRINUSE, -ENOMEM. */
int dash_new(struct dash **out, const struct dash_opts *opts);
/* The port actually bound (when the address asked for port 0). */
uint16_t dash_port(const struct dash *d);
void dash_free(struct dash *d);

#endif
