/* SPDX-License-Identifier: MIT */
/*
 * The service fabric inside weftd: the I/O-free service core
 * (weft/svc.h, svc_router.h, svc_msg.h) put on QUIC streams
 * (weft/quic_node.h), the DHT (weft/dhtnode.h) and the guard's bans
 * (weft/guard.h), plus the control routes (/v1/svc/...) and the optional
 * loopback HTTP gateway (/mesh/v1/...). docs/SERVICE.md describes the
 * behaviour, docs/PROTOCOL.md the stream types.
 *
 * Stream types (first varint of a bidirectional QUIC stream):
 *   SVC_NODE_ST_DESC  caller sends a service name then FIN; the callee
 *                     answers the signed descriptor bytes then FIN (empty
 *                     answer: not offered).
 *   SVC_NODE_ST_CALL  caller sends one svc_msg REQUEST then FIN; the callee
 *                     answers one svc_msg RESPONSE then FIN.
 *   SVC_NODE_ST_HTTP  caller sends one svc_msg REQUEST (method "http",
 *                     payload = an HTTP/1.0 request) then FIN; the callee
 *                     answers an svc_msg RESPONSE header with an empty
 *                     payload followed by the backend's HTTP response
 *                     re-framed (an HTTP/1.1 head, the body de-chunked) as
 *                     it arrives, then FIN. The header leaves with
 *                     the first bytes (class ok), or alone with the error
 *                     class (timeout, backend_error, a refusal) when none
 *                     came; a failure after that resets the stream.
 *
 * Threads: every function below may be called from any thread except the
 * engine workers (they block on QUIC and DHT work done by the workers).
 */
#ifndef WEFT_SVC_NODE_H
#define WEFT_SVC_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "weft/svc.h"
#include "weft/svc_router.h"

struct engine;
struct ctl;
struct quic_node;
struct dhtnode;
struct guard;
struct identity;
struct svc_node;
struct store;

/* 0x30-0x3f belong to the service fabric (0x20-0x2f to content). */
#define SVC_NODE_ST_DESC 0x30
#define SVC_NODE_ST_CALL 0x31
#define SVC_NODE_ST_HTTP 0x32
/* A byte stream (docs/SERVICE.md, "Streams"): caller sends STREAM_OPEN,
 * then STREAM_DATA frames and one STREAM_END (its half-close, with FIN);
 * the callee answers STREAM_DATA (the first one, possibly empty, says the
 * stream was accepted) or at once a STREAM_END (refused, with the class
 * and the close reason in status), then its own STREAM_DATA and
 * STREAM_END with FIN. */
#define SVC_NODE_ST_STREAM 0x33
/* A WebSocket from the gateway: as SVC_NODE_ST_STREAM, but STREAM_OPEN's
 * payload is the client's upgrade request head, which the provider writes
 * to its backend as it is (after checking it is one), and the provider's
 * first bytes are the backend's response head. */
#define SVC_NODE_ST_WS 0x34
/* The largest WebSocket message the gateway relays (svc.ws_max_message):
 * 1 MiB, the call payload cap; past it, close code 1009 both ways. */
#define SVC_NODE_WS_MAX_MESSAGE (1u << 20)

/* Stream limits (docs/CONFIG.md [svc] stream_*; 0 in the config selects
 * these). Idle: no byte either way for 60 s ends a stream (a caller may
 * ask for less in STREAM_OPEN's timeout). Bytes: 1 GiB each way. Buffer:
 * 4 MiB held per stream ahead of a local end that does not read (at least
 * the 2 MiB flow-control window and a frame); a peer that sends past its
 * window ends the stream (slow_reader); a local end that never reads stops
 * its peer at the window, and the stream ends by its idle time. Concurrency: 16 streams per peer key, 256 per
 * service, 1024 node-wide (each holds a socket and two buffers). */
#define SVC_NODE_STREAM_IDLE_MS 60000u
#define SVC_NODE_STREAM_MAX_IDLE_MS 3600000u
#define SVC_NODE_STREAM_MAX_BYTES (1ull << 30)
#define SVC_NODE_STREAM_BUFFER (4u << 20)
#define SVC_NODE_PEER_STREAMS 16u
#define SVC_NODE_SERVICE_STREAMS 256u
#define SVC_NODE_MAX_STREAMS 1024u

/* Close reasons of a stream: the status of its STREAM_END (the class says
 * which error class it is), shown by weftctl svc stream and GET
 * /v1/svc/stream/ID. Never renumbered. */
enum svc_stream_reason {
	SVC_STREAM_R_OK = 0,	    /* both sides ended (class ok) */
	SVC_STREAM_R_IDLE = 1,	    /* no byte for the idle time (timeout) */
	SVC_STREAM_R_BYTES = 2,	    /* over svc.stream_max_bytes (too_large) */
	SVC_STREAM_R_SLOW = 3,	    /* a side did not read: buffer full (overloaded) */
	SVC_STREAM_R_STREAMS = 4,   /* over the peer's or the service's streams (overloaded) */
	SVC_STREAM_R_BACKEND = 5,   /* backend refused the upgrade or failed (backend_error) */
	SVC_STREAM_R_RESET = 6,	    /* the QUIC stream or connection went away */
	SVC_STREAM_R_PROTOCOL = 7,  /* malformed frame (bad_request) */
	SVC_STREAM_R_REFUSED = 8,   /* refused by admission (class: the router's) */
	SVC_STREAM_R_SHUTDOWN = 9,  /* the node is stopping (overloaded) */
	SVC_STREAM_R_LOCAL = 10,    /* the local end (client or backend socket) failed */
	SVC_STREAM_R_WS_MESSAGE = 11, /* a WebSocket message over svc.ws_max_message (too_large) */
	SVC_STREAM_R_WS_PROTOCOL = 12, /* a malformed WebSocket frame (bad_request) */
	SVC_STREAM_R__COUNT
};
/* "ok", "idle", "bytes", "slow_reader", "streams", "backend", "reset",
 * "protocol", "refused", "shutdown", "local"; "?" out of range. */
const char *svc_stream_reason_name(unsigned int r);

/* Published services on one node: 64. Each costs one announce and one
 * descriptor; a node that offers more is a gateway, not a peer. */
#define SVC_NODE_MAX_PUBLISHED 64
/* Descriptor lifetime: 1 hour, re-signed and re-announced every 15 min
 * (and the node record re-put): Mainline peers forget announces after
 * about 30 min, so 15 min keeps a provider listed with margin. */
#define SVC_NODE_DESC_LIFETIME_S 3600u
#define SVC_NODE_REFRESH_S 900u
/* An announce that no DHT node stored (table still empty at start, lost
 * packets) is retried after 5 s. */
#define SVC_NODE_RETRY_S 5u
/* Candidates fetched per discovery: 32 (get_peers returns up to about
 * 8 x 8 values; more than 20 so that rejects still leave 20 results). */
#define SVC_NODE_MAX_CANDIDATES 32
/* Pending client operations (descriptor fetches, calls) node-wide: 4096,
 * 40 peers at their concurrency cap; past it calls fail overloaded. */
#define SVC_NODE_MAX_OPS 4096
/* Client connections kept to providers: 256, LRU; idle ones end by the
 * QUIC idle timeout. */
#define SVC_NODE_MAX_PEERS 256
/* Inbound streams being served at once: 4096 (bounded further by the
 * router's per-peer and global concurrency caps). */
#define SVC_NODE_MAX_INBOUND 4096
/* Default call timeout: 5 s (the backend default); discovery: 5 s for
 * the DHT lookup plus 3 s for the descriptor fetches. */
#define SVC_NODE_CALL_TIMEOUT_MS 5000u
#define SVC_NODE_LOOKUP_TIMEOUT_MS 5000u
#define SVC_NODE_FETCH_TIMEOUT_MS 3000u
/* Discovery by key (docs/SERVICE.md, "Finding a provider behind a
 * filtering NAT"): providers whose announced address gave no descriptor
 * but whose announce carried a valid key claim are dialled by key (node
 * record, relay circuit), at most 4 per lookup, sharing 15 s (a record
 * lookup, a relay's answer and a bind fit), then 3 s for their
 * descriptors. */
#define SVC_NODE_CLAIM_KEYS 4u
#define SVC_NODE_CLAIM_MS 15000u
/* Cap of every deadline, whether asked by a peer, the gateway or the
 * control API: 30 s (svc.max_timeout_ms). A remote peer cannot hold a
 * backend connection, a router slot or a stream longer than this. */
#define SVC_NODE_MAX_TIMEOUT_MS 30000u
/* A caller gives the callee its deadline and waits that long plus 500 ms
 * for the answer, so that the callee's own "timeout" (which frees its
 * slot first) is what comes back, not a race between the two clocks. */
#define SVC_NODE_NET_MARGIN_MS 500u
/* HTTP pass-through: response bytes buffered per request, ahead of the
 * reader (the gateway's HTTP client, or the QUIC stream at the provider):
 * 4 MiB (svc.http_buffer); past it the provider stops reading its backend
 * and the gateway resets the stream. */
#define SVC_NODE_HTTP_BUFFER (4u << 20)

/*
 * The fabric's settings. weftd fills them from its [ports], [node],
 * [gateway] and [svc] keys (docs/CONFIG.md; the member names follow the
 * keys); a test fills what it needs. 0 or "" selects the default noted.
 */
/* Stream data events from packet workers waiting for the fabric's owner
 * thread: 4096 (and 16 MiB of copied bytes, SVC_NODE_OWNER_BYTES): a
 * second of a busy node's calls. Past either, a stream's bytes are refused
 * and the stream is reset with SVC_NODE_RST_OWNER_BUSY (svc.owner_queue). */
#define SVC_NODE_OWNER_QUEUE 4096
#define SVC_NODE_OWNER_BYTES (16u << 20)
/* Reset code of a service stream whose bytes the owner queue refused. */
#define SVC_NODE_RST_OWNER_BUSY 0x7

struct svc_node_cfg {
	uint32_t quic_port;	    /* announced in descriptors (required) */
	char bind_addr[64];	    /* "", "::", "0.0.0.0": endpoints from the interfaces */
	char gateway[64];	    /* "" = no gateway; else ADDR:PORT */
	int gateway_allow_public;   /* a non-loopback gateway address is allowed */
	char gateway_services[512]; /* gateway whitelist: "a,b,c", "*" = any, "" = none */
	/* router limits (0 = SVC_DEFAULT_* in svc_router.h) */
	uint32_t svc_peer_calls_per_min;
	uint32_t svc_max_payload; /* 0 = SVC_MSG_DEFAULT_MAX_PAYLOAD */
	uint32_t svc_peer_concurrency;
	uint32_t svc_service_calls_per_min;
	uint32_t svc_service_concurrency;
	uint32_t svc_addr_calls_per_min;
	uint32_t svc_addr_concurrency;
	uint32_t svc_global_concurrency;
	uint32_t svc_max_timeout_ms;	      /* 0 = SVC_NODE_MAX_TIMEOUT_MS */
	uint32_t svc_backend_max_inflight;    /* backend requests in progress, node-wide */
	uint32_t svc_backend_max_per_service; /* ... per service */
	uint32_t svc_backend_pool_conns;      /* keep-alive connections per backend (64) */
	uint32_t svc_backend_idle_ms;	      /* idle pooled connection closed after (4000) */
	uint32_t svc_http_buffer;	      /* 0 = SVC_NODE_HTTP_BUFFER */
	uint32_t svc_owner_queue;	      /* 0 = SVC_NODE_OWNER_QUEUE */
	uint32_t svc_conn_streams;	      /* calls per pooled connection; 0 = SVCN_CONN_STREAMS */
	uint32_t svc_ban_threshold;	      /* 0 = SVC_DEFAULT_BAN_THRESHOLD */
	uint32_t svc_addr_ban_threshold;      /* 0 = SVC_DEFAULT_ADDR_BAN_THRESHOLD */
	uint32_t svc_stream_idle_ms;	      /* 0 = SVC_NODE_STREAM_IDLE_MS */
	uint64_t svc_stream_max_bytes;	      /* 0 = SVC_NODE_STREAM_MAX_BYTES */
	uint32_t svc_stream_buffer;	      /* 0 = SVC_NODE_STREAM_BUFFER */
	uint32_t svc_peer_streams;	      /* 0 = SVC_NODE_PEER_STREAMS */
	uint32_t svc_service_streams;	      /* 0 = SVC_NODE_SERVICE_STREAMS */
	uint32_t svc_ws_max_message;	      /* 0 = SVC_NODE_WS_MAX_MESSAGE */
	int svc_owner_worker; /* 1: the owner's loop runs on QUIC worker 0 (svc.owner = worker) */
};

struct svc_node_opts {
	struct engine *eng;	      /* required (not started yet) */
	struct ctl *ctl;	      /* optional: /v1/svc routes, metrics */
	struct quic_node *quic;	      /* required */
	struct dhtnode *dht;	      /* optional: no DHT = no publish/discover */
	struct guard *guard;	      /* optional: ban target */
	struct store *store;	      /* optional: publications persist across restarts */
	const struct identity *id;    /* required (copied) */
	const struct svc_node_cfg *cfg; /* required (copied) */
	/* Optional: the QUIC port to announce services with, when it is
	 * known to differ from cfg->quic_port (behind a NAT whose mapping of
	 * the QUIC socket is endpoint-independent: weftd gives
	 * conn_node_quic_mapped_port(AF_INET)); 0: cfg->quic_port. Checked
	 * every 2 s: a change announces every publication again. */
	uint16_t (*announce_port)(void *arg);
	void *announce_port_arg;
};

/*
 * Create the fabric: router with the built-ins (echo, mesh-stats), backend
 * pool, stream types on quic (call before the engine starts), routes.
 * Returns 0, -EINVAL, -ENOMEM or the errors of quic_node_register().
 */
int svc_node_new(struct svc_node **out, const struct svc_node_opts *opts);
/*
 * The gateway's /mesh/v1/msg/<op> (docs/MESH.md "Over the gateway"): a
 * module above the fabric (the mesh, registered by the node) answers it,
 * given the request as the control API would see it (subpath <op>, the
 * body parsed as JSON). Served when gateway.services lists "mesh-msg" (or
 * is "*"); else 403. Set before svc_node_start; NULL: 404.
 */
struct ctl_req;
struct ctl_resp;
void svc_node_gw_msg(struct svc_node *sn,
		     void (*fn)(void *arg, const struct ctl_req *req, struct ctl_resp *resp),
		     void *arg);
/* After engine_start() and dhtnode_start(): publish the stored
 * publications again, start the refresh thread and the gateway (when
 * configured). Returns 0 or -errno (gateway bind failure included). */
int svc_node_start(struct svc_node *sn);
/* Start stopping: every wait of the fabric (calls, lookups, gateway
 * requests, control API handlers) returns at once with -ESHUTDOWN, so the
 * threads that run them can be joined. Call first when the node stops
 * (before the control server is freed). NULL-safe, idempotent. */
void svc_node_stop(struct svc_node *sn);
/* Stop the gateway: its listener closed, its request threads joined (each
 * returns at once after svc_node_stop). Its /mesh/v1 routes reach the
 * control API and the mesh module: call after svc_node_stop and before
 * either is freed (a request then used both after they were: TSan saw the
 * mesh's mutex destroyed under a gateway thread's lock). svc_node_free
 * does it when not done. NULL-safe, idempotent; the owner's thread only. */
void svc_node_gateway_stop(struct svc_node *sn);
/* Stop threads and gateway, free. Call before quic_node_free(). NULL-safe. */
void svc_node_free(struct svc_node *sn);

/* HTTP publish options of a service, carried in its signed descriptor so
 * that every gateway applies them (docs/SERVICE.md, "Gateway origins and
 * headers"). Zeroed = the safe default: no credentials, no CORS. */
/* Further publish options (docs/SERVICE.md, "Publish options"): user
 * metadata entries (signed into the descriptor), visibility keys. */
#define SVC_NODE_PUB_META 6	      /* user metadata entries */
#define SVC_NODE_PUB_META_BYTES 512   /* their keys and values together */
#define SVC_NODE_PUB_ALLOW 8	      /* node keys a private service is shown to */
struct svc_node_pub_opts {
	uint32_t http_flags; /* enum svc_http_flags */
	const char *cors;    /* NULL/"": none; "*" or "http[s]://HOST[:PORT]", <= 128 bytes */
	uint32_t version;    /* svc_version_parse's packing; 0 = SVC_VERSION_DEFAULT (1.0.0) */
	/* Per-service limits (0 = the node's [svc] default): calls per
	 * minute and concurrent calls of all peers together, payload cap. */
	uint32_t calls_per_min, max_payload, max_concurrent;
	/* Streams (and WebSockets) of the service open at once, all callers
	 * together (0 = svc.service_streams): past it an open is refused
	 * with overloaded / streams. */
	uint32_t max_streams;
	/* Metadata: keys [a-z0-9._-] 1..32 bytes (not "kind", "vis", nor
	 * starting "http." or "weft."), values printable; signed into the
	 * descriptor. */
	uint32_t n_meta;
	const char *meta_key[SVC_NODE_PUB_META], *meta_val[SVC_NODE_PUB_META];
	/* Visibility: 0 keys = public (announced under the name's DHT
	 * target). Else private: announced only under each listed key's
	 * private target, and the descriptor served only to these keys. */
	uint32_t n_allow;
	uint8_t allow[SVC_NODE_PUB_ALLOW][IDENTITY_PK_LEN];
};

/*
 * Publish name: backend is "tcp:IP:PORT", "unix:/path", or NULL/"" for a
 * built-in of that name (echo, mesh-stats). Registers it in the router,
 * signs a descriptor, announces it and puts the node record (async).
 * With a store, the publication is recorded durably before this returns
 * and published again at every start (svc_node_start) until unpublished.
 * po may be NULL. Returns 0, -EINVAL (bad name, backend or cors), -EEXIST,
 * -ENOSPC, or the errors of store_write_wait (then it is not published).
 */
int svc_node_publish(struct svc_node *sn, const char *name, const char *backend,
		     const struct svc_node_pub_opts *po);
/* Withdraw, and forget the stored record: 0, -ENOENT, or the errors of
 * store_write_wait (withdrawn now; the record may come back at restart). */
int svc_node_unpublish(struct svc_node *sn, const char *name);

/*
 * Discover name: cached results or a DHT lookup plus descriptor fetches
 * (each verified), done by the fabric's owner while this thread waits with
 * a deadline (at most 2 s for the owner to look at its cache; 5 s for the
 * DHT, then 3 s for the descriptors). out receives up to max results, best
 * first. Returns the count (0: none valid), -EINVAL, -ENOTCONN (no DHT),
 * -ETIMEDOUT, -ESHUTDOWN (stopping), -EBUSY (too many jobs on the owner),
 * -EDEADLK (called on the owner itself).
 */
int svc_node_find(struct svc_node *sn, const char *name, struct svc_dir_result *out, size_t max);

struct svc_node_call_res {
	int err;	   /* enum svc_err of the call */
	uint32_t status;   /* application status */
	uint8_t *data;	   /* malloc'd response payload (caller frees) or NULL */
	size_t len;
	uint8_t peer[IDENTITY_PK_LEN]; /* provider */
	uint64_t rtt_us;   /* stream open to response */
};

/*
 * One call to the best provider of name (a local one when this node
 * offers it), run by the fabric's owner while this thread waits on its own
 * semaphore, at most timeout_ms (clamped, see svc.max_timeout_ms) plus
 * SVC_NODE_NET_MARGIN_MS once the provider is known. Returns 0 with res
 * filled (res->err may be a remote error class) or -errno when no provider
 * could be reached (-ENOENT: none found, -ETIMEDOUT, -ECONNREFUSED,
 * -ESHUTDOWN, -EBUSY, -EDEADLK on the owner itself ...).
 */
int svc_node_call(struct svc_node *sn, const char *name, const char *method,
		  const uint8_t *payload, size_t len, uint32_t timeout_ms,
		  struct svc_node_call_res *res);

/* What a stream ended with (or was refused with). */
struct svc_node_stream_info {
	uint64_t id;	    /* node-local id (GET /v1/svc/stream/ID) */
	int err;	    /* enum svc_err */
	uint32_t reason;    /* enum svc_stream_reason */
	int ended;	    /* 0: still open */
	uint64_t bytes_in;  /* bytes from the provider to the local end */
	uint64_t bytes_out; /* bytes from the local end to the provider */
	uint8_t peer[IDENTITY_PK_LEN];
};
struct svc_node_stream;

/*
 * Open a stream to the best provider of name (docs/SERVICE.md, "Streams")
 * and wait until it accepts or refuses, at most timeout_ms (clamped by
 * svc.max_timeout_ms). idle_ms: the idle time asked for (0: the
 * provider's). Returns 0 with *out set (accepted: attach or abort it), 0
 * with *out NULL and info->err / info->reason set (refused), or -errno
 * when no provider was reached (-ENOENT, -ETIMEDOUT, -ECONNREFUSED,
 * -ESHUTDOWN, -EBUSY, -EOPNOTSUPP: only this node offers it and its io
 * mode is AF_XDP). A service this node offers is reached the same way,
 * over a QUIC connection to this node's own endpoint. Up to
 * SVC_NODE_CALL_ATTEMPTS providers are tried (docs/SERVICE.md, "Failover").
 */
int svc_node_stream_open(struct svc_node *sn, const char *name, const char *method,
			 uint32_t idle_ms, uint32_t timeout_ms, struct svc_node_stream **out,
			 struct svc_node_stream_info *info);
/*
 * Bridge an accepted stream to fd (a connected stream socket, made
 * non-blocking here): what fd sends goes to the provider, EOF on it is the
 * half-close; what the provider sends is written to fd, then
 * shutdown(SHUT_WR) at its end. head (len bytes, copied) goes first, as if
 * read from fd. When the stream is over, release(arg, fd, info) runs once
 * on the fabric's owner (it closes fd or hands it back); it also runs when
 * the fabric stops. The handle is gone after this call. 0 or -ESHUTDOWN
 * (release has run).
 */
int svc_node_stream_attach(struct svc_node_stream *st, int fd, const uint8_t *head, size_t len,
			   void (*release)(void *arg, int fd, const struct svc_node_stream_info *i),
			   void *arg);
/* Give up an accepted stream that was never attached (reset). NULL-safe. */
void svc_node_stream_abort(struct svc_node_stream *st);
/* How stream id ended (the last SVC_NODE_STREAM_ENDED ones are kept), or
 * how far it is: 0, -ENOENT, or the errors of the owner's turn. */
#define SVC_NODE_STREAM_ENDED 256
int svc_node_stream_result(struct svc_node *sn, uint64_t id, struct svc_node_stream_info *out);
/* Failover (docs/SERVICE.md, "Failover"): whether a call that failed at
 * one provider may be made again at the next. */
enum svc_node_retry {
	SVC_NODE_RETRY_UNSENT = 0, /* default: only when the REQUEST never left */
	SVC_NODE_RETRY_NEVER = 1,  /* one provider, whatever happens */
	SVC_NODE_RETRY_ALWAYS = 2, /* also after a timeout or a lost connection
				    * once it left: for idempotent methods */
};
/* "unsent", "never" or "always" (the control API's "retry", the gateway's
 * X-Weft-Retry header): 0, or -EINVAL. */
int svc_node_retry_parse(const char *s, enum svc_node_retry *out);
/* Providers one call tries at most: 3 (the first and two more). */
#define SVC_NODE_CALL_ATTEMPTS 3
struct svc_node_call_opts {
	const struct svc_vrange *version; /* NULL: any version */
	enum svc_node_retry retry;
	uint32_t attempts; /* 0 = SVC_NODE_CALL_ATTEMPTS; at most 8 */
};
/*
 * svc_node_call with options (co NULL: the defaults). The providers are
 * taken best first (reputation, then latency); a provider that does not
 * answer is marked dead for SVC_REP_DEAD_S. res->attempts (when not NULL)
 * receives how many providers were tried. All attempts share timeout_ms.
 */
int svc_node_call_ex(struct svc_node *sn, const char *name, const char *method,
		     const uint8_t *payload, size_t len, uint32_t timeout_ms,
		     const struct svc_node_call_opts *co, struct svc_node_call_res *res,
		     unsigned int *attempts);

#endif
