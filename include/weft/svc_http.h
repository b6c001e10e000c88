/* SPDX-License-Identifier: MIT */
/*
 * HTTP pieces of the loopback gateway, without I/O (tests/unit/test_service_gateway.c,
 * tests/fuzz/fuzz_gw_head.c):
 *  - the strict parser of a backend's / provider's response head, whose
 *    status and headers the gateway passes back to its local client;
 *  - which request and response headers cross the gateway (hop-by-hop and
 *    credential headers do not, unless the service opted in);
 *  - the Host and Origin rules that keep the gateway for local programs
 *    (DNS rebinding, foreign web pages).
 * docs/SERVICE.md, "Gateway origins and headers".
 */
#ifndef WEFT_SVC_HTTP_H
#define WEFT_SVC_HTTP_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

/* Response head (status line + headers + blank line): 64 KiB, and at most
 * 128 header lines. Ample for any web server (nginx's default buffers are
 * 8 KiB per line) and a bound on what one answer makes the gateway hold. */
#define SVC_HTTP_MAX_HEAD (64u << 10)
#define SVC_HTTP_MAX_HEADERS 128u
/* CORS origin a service may name in its descriptor: 128 bytes. */
#define SVC_HTTP_CORS_MAX 128u

/* Per-service publish options (descriptor metadata, docs/SERVICE.md). */
enum svc_http_flags {
	/* Cookie and Authorization go to the service and its Set-Cookie comes
	 * back, on its pinned origin http://<service-id>.localhost:PORT/ only. */
	SVC_HTTP_F_CREDENTIALS = 1U << 0,
};
/* Descriptor metadata keys carrying them: value "1", and an origin. */
#define SVC_HTTP_META_CREDENTIALS "http.credentials"
#define SVC_HTTP_META_CORS "http.cors"

struct svc_http_hdr {
	uint32_t name_off, name_len; /* into the parsed buffer */
	uint32_t val_off, val_len;   /* value without surrounding spaces */
};

struct svc_http_head {
	unsigned int status;	   /* 100..599 */
	unsigned int minor;	   /* HTTP/1.<minor>, 0 or 1 */
	long long content_length;  /* -1: none */
	int chunked;		   /* Transfer-Encoding present */
	uint32_t n;		   /* headers */
	struct svc_http_hdr h[SVC_HTTP_MAX_HEADERS];
};

/*
 * Parse the head of an HTTP/1.x response at the start of buf[0..len).
 * Strict: "HTTP/1.0" or "HTTP/1.1", a space, three digits (100..599), then
 * a space and a reason or nothing, CRLF; header lines "token: value" CRLF
 * with no control bytes (NUL, bare CR or LF) in values, no obs-fold; one
 * Content-Length (digits only, repeats must agree). Never reads past len.
 * Returns the head's length (through the blank line, > 0), 0 when more
 * bytes are needed (len below SVC_HTTP_MAX_HEAD), -EBADMSG (malformed) or
 * -EMSGSIZE (head over SVC_HTTP_MAX_HEAD or over SVC_HTTP_MAX_HEADERS lines).
 */
long svc_http_head_parse(const uint8_t *buf, size_t len, struct svc_http_head *h);

/* 1 if the comma-separated token list v[0..vl) (a Connection value) holds
 * name[0..nl), case-insensitively. */
int svc_http_list_has(const char *v, size_t vl, const char *name, size_t nl);

/*
 * Whether a header of a response passes from the backend to the gateway's
 * client: 0 for hop-by-hop headers (Connection and the names it lists,
 * Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*),
 * Content-Length (the gateway frames the body), Access-Control-* (CORS is
 * the gateway's, per service), and Set-Cookie / Set-Cookie2 unless flags
 * hold SVC_HTTP_F_CREDENTIALS. conn/conn_len: the Connection value of the
 * same message (may be NULL).
 */
int svc_http_resp_keep(const char *name, size_t nl, const char *conn, size_t conn_len,
		       unsigned int flags);
/* Same for a request header going to the backend: hop-by-hop as above,
 * Host, Content-Length and Expect (the gateway writes its own), X-Weft-*
 * (gateway controls), and Cookie / Authorization unless
 * SVC_HTTP_F_CREDENTIALS. */
int svc_http_req_keep(const char *name, size_t nl, const char *conn, size_t conn_len,
		      unsigned int flags);

/* The loopback server guards (Host, Origin, Sec-Fetch-*, peer address)
 * the gateway shares with the dashboard: include/weft/ctl_http.h. */
#include "weft/ctl_http.h"

#endif
