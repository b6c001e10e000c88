/* SPDX-License-Identifier: MIT */
/*
 * The backend contract's HTTP/1.1 without I/O (backend_http.c,
 * docs/SERVICE.md "Backend contract"): the request head of a call
 * (POST /<method> with the Weft-* headers), the strict incremental parser
 * of a backend's response (head through svc_http_head_parse, then a body
 * framed by Content-Length, chunked, or the connection's end), and the map
 * from an HTTP status to a call's error class; the parser's streaming
 * mode and the rewritten heads of the gateway's HTTP pass-through; backend
 * addresses (svc_backend_parse_addr). backend.c drives them on its
 * sockets; the streams' upgraded connections (backend_stream.c) reuse
 * svc_bhttp_weft_headers and the head parser.
 */
#ifndef WEFT_SVC_BHTTP_INT_H
#define WEFT_SVC_BHTTP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "weft/svc.h"

/* Longest Weft-Service-Version value written (longer ones are left out). */
#define SVC_BHTTP_VERSION_MAX 64
/* A call's request head is at most this long (every field is bounded). */
#define SVC_BHTTP_REQ_HEAD_MAX 1024
/* Chunk-size lines and trailer lines: 4 KiB each, 64 trailer lines. */
#define SVC_BHTTP_LINE_MAX 4096
#define SVC_BHTTP_MAX_TRAILERS 64

/* What the backend is told of a call. Pointers borrow. */
struct svc_bhttp_meta {
	const char *service; /* NUL-terminated, valid name */
	const char *method;  /* NUL-terminated, valid method ("" = "/") */
	const char *version; /* Weft-Service-Version; NULL or "" = left out */
	const uint8_t *caller;			  /* IDENTITY_PK_LEN: Weft-Caller */
	const uint8_t *req_id;			  /* SVC_REQ_ID_LEN: Weft-Request-Id */
	const uint8_t *assertion;		  /* SVC_ASSERT_LEN or NULL */
	uint32_t deadline_ms;			  /* Weft-Deadline: ms left */
};

/*
 * The Weft-* header lines of m (each "Name: value\r\n"), for any request
 * to a backend: Weft-Service, Weft-Service-Version (when given),
 * Weft-Caller, Weft-Request-Id, Weft-Deadline, Weft-Caller-Assertion (when
 * given). Returns the length written (no NUL) or -ENOBUFS / -EINVAL.
 */
int svc_bhttp_weft_headers(char *out, size_t cap, const struct svc_bhttp_meta *m);

/*
 * A call's request head: "POST /<method> HTTP/1.1", Host: <service>,
 * Content-Type: application/octet-stream, Content-Length: body_len, the
 * Weft-* headers, blank line. Returns its length or -ENOBUFS / -EINVAL.
 */
int svc_bhttp_req_head(char *out, size_t cap, const struct svc_bhttp_meta *m, size_t body_len);

/* Response parser: a value type; init, feed, free. */
struct svc_bhttp_resp {
	size_t max_body;
	int state;
	int err;
	/* the head as it arrives (until the blank line) */
	uint8_t *head;
	size_t head_len, head_cap;
	unsigned int status;
	unsigned int minor;
	int close;	 /* the connection cannot carry another request */
	int framing;	 /* length, chunked or to the connection's end */
	uint64_t remain; /* bytes left of the body or of this chunk */
	char line[SVC_BHTTP_LINE_MAX];
	size_t line_len;
	unsigned int trailers;
	uint8_t *body;
	size_t body_len, body_cap; /* streaming: body_len counts, nothing kept */
	int stream;  /* set after init: svc_bhttp_resp_feed_span */
	int no_body; /* set after init: the answer to HEAD (no body, RFC 9112 6.3) */
	const uint8_t *span;
	size_t span_len;
};

void svc_bhttp_resp_init(struct svc_bhttp_resp *p, size_t max_body);
void svc_bhttp_resp_free(struct svc_bhttp_resp *p);
/*
 * Feed bytes read from the backend; *used receives how many were taken
 * (bytes past a complete response are not: the caller must not reuse the
 * connection when any are left). Returns 1 when the response is complete
 * (status, body, close), 0 for more, or a sticky error: -EBADMSG (not
 * HTTP/1.1 as the contract says: malformed head or chunk, 1xx other than
 * 100/103 final, Transfer-Encoding other than "chunked", both
 * Transfer-Encoding and Content-Length), -EMSGSIZE (head over
 * SVC_HTTP_MAX_HEAD, or body over max_body: announced or received),
 * -ENOMEM.
 */
int svc_bhttp_resp_feed(struct svc_bhttp_resp *p, const uint8_t *buf, size_t len, size_t *used);
/*
 * Streaming (p->stream = 1 after init: the pass-through): as
 * svc_bhttp_resp_feed, but body bytes are not kept. Feeding stops after
 * the final head is complete (p->status set: forward it, see
 * svc_bhttp_pass_head) and after each span of body bytes, which *span /
 * *span_len point at inside buf (chunked framing removed). max_body caps
 * the body's total (SIZE_MAX: no cap). p->no_body = 1: the answer to a
 * HEAD request, whose head is all (whatever its Content-Length).
 */
int svc_bhttp_resp_feed_span(struct svc_bhttp_resp *p, const uint8_t *buf, size_t len,
			     size_t *used, const uint8_t **span, size_t *span_len);
/* The backend closed its side: 1 when that ends the response (a body
 * framed by the close), else -EBADMSG (truncated; sticky). */
int svc_bhttp_resp_eof(struct svc_bhttp_resp *p);
/* The body (owned by the parser until taken: *out receives it, the
 * parser forgets it; NULL when empty). */
uint8_t *svc_bhttp_resp_take(struct svc_bhttp_resp *p, size_t *len);

/*
 * A backend's HTTP status to the call's error class: 2xx ok; 413
 * too_large, 429 rate_limited, other 4xx bad_request; 503 overloaded, 504
 * timeout, other 5xx backend_error; anything else (1xx, 3xx)
 * backend_protocol. The status itself goes to the caller unchanged.
 */
int svc_bhttp_status_class(unsigned int status);

/*
 * HTTP pass-through to a backend over a keep-alive connection
 * (docs/SERVICE.md, "HTTP pass-through to backends"). The request as the gateway
 * wrote it (any HTTP/1.0 or 1.1 head, then exactly its body) rewritten for
 * a persistent HTTP/1.1 connection: the request line with HTTP/1.1, hop-
 * by-hop headers (Connection, the names it lists, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-*) and Content-Length
 * dropped, then "Content-Length: <body>" (when the request named one).
 * Refused (-EBADMSG): no complete head within SVC_HTTP_MAX_HEAD, a
 * malformed request line or header, more than 128 header lines, not
 * exactly one Host, Transfer-Encoding, bytes after the head other than
 * exactly its Content-Length (none without one: a second request hidden
 * behind the first), CONNECT. -ENOMEM. *flags: what the method says.
 */
enum {
	SVC_BHTTP_PASS_HEAD = 1,       /* HEAD: the answer has no body */
	SVC_BHTTP_PASS_IDEMPOTENT = 2, /* RFC 9110 9.2.2: may be sent again */
};
int svc_bhttp_pass_req(const uint8_t *req, size_t len, uint8_t **out, size_t *out_len,
		       unsigned int *flags);
/*
 * The head to forward for a parsed final response (p->status set):
 * "HTTP/1.1 <status> <reason>", the end-to-end headers (hop-by-hop ones
 * and Content-Length dropped as above; the answer to HEAD keeps its
 * Content-Length), blank line. The body that follows
 * it is de-chunked and ends where the forwarded stream ends. 0, -EBADMSG
 * or -ENOMEM; *out is malloc'd.
 */
int svc_bhttp_pass_head(const struct svc_bhttp_resp *p, uint8_t **out, size_t *out_len);

#endif
