/* SPDX-License-Identifier: MIT */
/*
 * Guards of the loopback HTTP servers (the service gateway and the
 * dashboard): which Host, Origin, Sec-Fetch-* and peer addresses a request
 * to a server bound to 127.0.0.1 may carry, against DNS rebinding and
 * cross-site use (docs/SERVICE.md, "Gateway"). Pure functions, no I/O.
 */
#ifndef WEFT_CTL_HTTP_H
#define WEFT_CTL_HTTP_H

#include <stdint.h>
#include <sys/socket.h>

/* What a request's Host names (ctl_http_host()). */
enum {
	CTL_HTTP_HOST_BARE = 0, /* the gateway itself: its API and path forms */
	CTL_HTTP_HOST_SERVICE,  /* <label>.localhost:PORT: a service's own origin */
};

/*
 * Classify a Host header value against a gateway listening on port, whose
 * configured address is listen_host (the literal of gateway.listen, e.g.
 * "127.0.0.1" or "[::1]"). Accepted: "localhost", any loopback literal
 * (127.x.y.z, [::1]), listen_host, and "<label>.localhost" (label: 1..64
 * bytes of [a-z0-9.-], a service name or a service id in hex,
 * case-insensitive), each with
 * ":port" (the port may be left out only when port is 80). Anything else
 * (a rebinding name such as evil.example:PORT, another port, no Host) is
 * -EPERM. On CTL_HTTP_HOST_SERVICE label receives the label, lower-cased.
 */
int ctl_http_host(const char *host, uint16_t port, const char *listen_host, char label[65]);

/*
 * 1 if origin (the Origin header value) is the origin the request's Host
 * names: "http://" + host (same name, case-insensitive) and the same port
 * (80 when absent on both sides). "null" and anything else: 0.
 */
int ctl_http_origin_same(const char *origin, const char *host);

/*
 * 1 if a request without an Origin header is a cross-site or same-site
 * subresource (an <img> or <script> from another site embedding the
 * answer), from its Sec-Fetch-Site and Sec-Fetch-Mode values (NULL when
 * absent): refused by the gateway and the dashboard. A navigation, a tool
 * (no Sec-Fetch headers) or a same-origin request: 0.
 */
int ctl_http_cross_site(const char *sec_fetch_site, const char *sec_fetch_mode);

/* 1 if ss is a loopback address (127/8 or ::1). */
int ctl_http_loopback(const struct sockaddr_storage *ss);

#endif
