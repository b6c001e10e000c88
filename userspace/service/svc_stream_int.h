/* SPDX-License-Identifier: MIT */
/*
 * svc_stream.c: service streams (stream type SVC_NODE_ST_STREAM) on the
 * fabric's owner, both sides: a caller's stream bridged to a local socket
 * (the control API's upgraded connection, a test's socketpair) and a
 * provider's stream into an in-process handler (echo) or a backend's
 * upgraded HTTP/1.1 connection (backend_stream.c). Their sockets live in
 * one epoll set of their own, watched by the owner's loop
 * (svc_backend_watch). Events arrive from svc_events.c; deadlines from
 * the owner's tick (svc_jobs.c). Nothing here calls those parts.
 */
#ifndef WEFT_SVC_STREAM_INT_H
#define WEFT_SVC_STREAM_INT_H

#include "svc_node_int.h"

/* Bytes of one STREAM_DATA frame we send: 64 KiB (a peer accepts up to
 * svc.max_payload, 1 MiB). */
#define SVCN_STRM_FRAME 65536u
/* Flow control between the two ends: a side may have SVCN_STRM_WINDOW
 * bytes of STREAM_DATA in flight that the other side's local end has not
 * taken; the other side sends an empty STREAM_DATA (a credit) for every
 * SVCN_STRM_QUANTUM its local end took. 2 MiB: ~16 Gbit/s at 1 ms RTT,
 * still 1.6 Gbit/s when a loaded host's threads make it 10 ms. */
#define SVCN_STRM_QUANTUM (512u << 10)
#define SVCN_STRM_WINDOW (4u * SVCN_STRM_QUANTUM)
/* QUIC writes of one stream not yet in its send buffer before its local
 * end stops being read: 16 frames (1 MiB queued per stream). */
#define SVCN_STRM_WOUT 16u
/* A provider's backend has this long to accept the connection and answer
 * 101 (a backend that never answers ends the stream with timeout). */
#define SVCN_STRM_BACKEND_MS 5000u
/* A stream that ended with an error keeps reading (and dropping) its
 * peer's bytes this long so that its STREAM_END arrives, then resets. */
#define SVCN_STRM_DRAIN_MS 2000u
/* Backend response head cap: 16 KiB. */
#define SVCN_STRM_HEAD_MAX 16384u

/* ws_frame.c: WebSocket frame headers as they pass (one direction). */
struct svcn_ws {
	uint8_t hdr[14];
	unsigned int hl, need;
	uint64_t left; /* payload bytes of the current frame still to pass */
	uint64_t msg;  /* bytes of the current message so far */
	int in_msg, closed;
};
enum { SVCN_WS_PROTOCOL = 1002, SVCN_WS_TOO_BIG = 1009 };
/* Feed bytes of one direction (masked: client to server). Returns 0, or
 * the close code to end with: SVCN_WS_PROTOCOL (a malformed header),
 * SVCN_WS_TOO_BIG (a message over max_msg bytes). */
int svcn_ws_feed(struct svcn_ws *w, const uint8_t *buf, size_t len, int masked, uint64_t max_msg);
/* A Close frame with code (masked: towards a server); its length. */
size_t svcn_ws_close_frame(uint8_t out[8], unsigned int code, int masked);

/* The gateway's WebSocket: a stream of type SVC_NODE_ST_WS whose
 * STREAM_OPEN carries the client's upgrade request head (req, len bytes,
 * copied), to pin (a provider by service id: reached by its endpoint,
 * then its key) or, pin NULL, to the best provider of service with
 * failover (svcn_try_providers); waits (at most timeout_ms) for the
 * backend's response head, returned in *head (malloc'd, *head_len) with
 * the stream (*out) to attach or abort. idle_ms: the idle time asked
 * for (0: the nodes'; less than theirs only). 0 (then *out set, or NULL with
 * info's class and reason: refused) or -errno. */
int svcn_strm_open_ws(struct svc_node *sn, const char *service, const struct svc_dir_result *pin,
		      const uint8_t *req, size_t len, uint32_t idle_ms, uint32_t timeout_ms,
		      struct svc_node_stream **out, uint8_t **head, size_t *head_len,
		      struct svc_node_stream_info *info);

/* gateway_ws.c: the gateway's WebSocket. wanted: the request asks for
 * Upgrade: websocket. svcn_gw_ws answers the request (a libmicrohttpd
 * result): 101 and the stream, or a JSON error (bad_upgrade 400,
 * upgrade_refused with the backend's status, the stream's refusal). */
struct MHD_Connection;
int svcn_gw_ws_wanted(struct MHD_Connection *c);
int svcn_gw_ws(struct svc_node *sn, struct MHD_Connection *c, const char *method,
	       const char *svc, const struct svc_dir_result *pin, const char *path,
	       unsigned int flags, uint32_t timeout_ms);

/* Hub: set up (the epoll set, watched by the backend loop) and tear down
 * (after the owner's loop ended: every local end released). */
int svcn_strm_init(struct svc_node *sn);
void svcn_strm_free_all(struct svc_node *sn);
/* svc_stream_srv.c: the provider's start, handed to svc_stream.c (after
 * svcn_strm_init). */
void svcn_strm_srv_init(struct svc_node *sn);
/* svc_node_stop: every stream ends (shutdown) on the owner at once, so
 * that the control threads holding upgraded connections are let go. */
void svcn_strm_stop(struct svc_node *sn);
/* ...and waits until that has run, at most SVCN_STRM_STOP_WAIT_MS: a
 * stream lent a gateway's or the control API's upgraded socket gives it
 * back (MHD_upgrade_action) while that server still runs; given back
 * after it stopped, the handle is freed memory. When the owner's host
 * already stopped (weftd: node_run stopped the engine), its turn runs
 * here, on the calling thread. */
#define SVCN_STRM_STOP_WAIT_MS 1000
void svcn_strm_stop_wait(struct svc_node *sn);
/* svc_stream_ctl.c: POST /v1/svc/stream, GET /v1/svc/stream/ID,
 * GET /v1/svc/streams. */
int svcn_strm_ctl_register(struct svc_node *sn);
/* The owner's tick: deadlines (idle, backend, drain, write retries).
 * Returns the next one (UINT64_MAX: none). */
uint64_t svcn_strm_expire(struct svc_node *sn, uint64_t now_ns);

/* Provider side events (svc_events.c). */
void svcn_strm_srv_data(struct svc_node *sn, int type, uint64_t conn, int64_t sid,
			const struct svc_peer *peer, const uint8_t *data, size_t len, int fin);
/* Client side events: 1 when the event was a stream's (else the caller
 * hands it to svc_ops.c). */
int svcn_strm_cl_opened(struct svc_node *sn, uint64_t conn, uint64_t token, int64_t sid, int err);
int svcn_strm_cl_data(struct svc_node *sn, uint64_t conn, int64_t sid, const uint8_t *data,
		      size_t len, int fin);
/* Both sides. */
void svcn_strm_closed(struct svc_node *sn, uint64_t conn, int64_t sid, int err);
void svcn_strm_conn_up(struct svc_node *sn, uint64_t conn, int err);
void svcn_strm_conn_closed(struct svc_node *sn, uint64_t conn);
void svcn_strm_writable(struct svc_node *sn, uint64_t conn, int64_t sid);
/* svc stats: {"open", "opened", "refused", "bytes_in", "bytes_out",
 * "ended": {reason: n}} (owner). */
struct json_t;
struct json_t *svcn_strm_stats(struct svc_node *sn);

/* backend_stream.c: the provider's HTTP/1.1 upgrade to its backend. */
/* The upgrade request to the backend (malloc'd, *out_len bytes; NULL
 * when out of memory or m does not fit): for a stream (ws NULL) "POST
 * /<method> HTTP/1.1" with Host, Connection: Upgrade, Upgrade:
 * weft-stream; for a WebSocket the client's request head (ws, ws_len: one
 * checked head) without its Weft-* lines; either with the Weft-* headers
 * of m (Weft-Service, -Service-Version, -Caller, -Request-Id, -Deadline,
 * -Caller-Assertion: svc_bhttp_weft_headers). A NUL follows it. */
struct svc_bhttp_meta;
uint8_t *svcn_bstream_request(const struct svc_bhttp_meta *m, const uint8_t *ws, size_t ws_len,
			      size_t *out_len);
/* The same for the provider's service (its version), caller, the
 * caller's assertion (NULL: none; its request id, else a new one) and the
 * time the backend has: a stream's upgrade (req NULL), or req (req_len
 * bytes: an HTTP/1.x head, at most SVCN_CALLER_HEAD_MAX, then a body: a
 * WebSocket's upgrade or a pass-through) with the Weft-* headers in its
 * head. malloc'd with a NUL after *out_len, or NULL (no head end, memory). */
#define SVCN_CALLER_HEAD_MAX 65536u
/* The length of req's HTTP head (through its blank line) when it ends
 * within SVCN_CALLER_HEAD_MAX bytes, else 0. */
size_t svcn_head_len(const uint8_t *req, size_t len);
uint8_t *svcn_caller_request(struct svc_node *sn, const char *service, const char *method,
			     const uint8_t caller[IDENTITY_PK_LEN], const uint8_t *assertion,
			     uint32_t deadline_ms, const uint8_t *req, size_t req_len,
			     size_t *out_len);
/* Start a non-blocking connect to the backend address: the socket or
 * -errno (-EINVAL: address). */
int svcn_bstream_connect(const char *addr);
/* The backend's response head in buf[0..len): its length (> 0) with the
 * status in *status, 0 (need more), -EBADMSG (malformed), -EMSGSIZE
 * (over SVCN_STRM_HEAD_MAX). Never trusts a length. */
long svcn_bstream_head(const uint8_t *buf, size_t len, int *status);

#endif
