/* SPDX-License-Identifier: MIT */
/* Internal to svc_node.c, svc_node_ctl.c and gateway.c. */
#ifndef WEFT_SVC_NODE_INT_H
#define WEFT_SVC_NODE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "weft/identity.h"
#include "weft/quic_node.h"
#include "weft/svc_backend.h"
#include "weft/svc_node.h"

/* The QUIC handler argument. quic_node_free() reports stream and
 * connection closes after svc_node_free() has run (weftd frees the fabric
 * first), so the handlers' argument is this small block that outlives the
 * fabric: dead set, every callback returns at once. It is freed by
 * svc_node_free() only when no QUIC callback can follow (see there).
 *
 * Workers never take mu: a QUIC callback copies its event and posts it to
 * the fabric's owner, the backend thread (svc_backend_post), counting
 * itself in active while it reads live; svc_node_free clears live, then
 * waits for active to drop to zero before the owner goes. */
struct svcn_shim {
	pthread_mutex_t mu;  /* recursive: control threads nest fabric calls */
	struct svc_node *sn; /* NULL once freed */
	int quic_gone;	     /* the QUIC node released it: the last owner frees */
	struct svc_node *_Atomic live; /* workers may post events to sn */
	atomic_uint active;	       /* workers inside a callback */
	atomic_uint q_data;	       /* stream data events queued to the owner */
	atomic_size_t q_bytes;	       /* their bytes */
	atomic_uint q_ctl;	       /* other events queued (opens, closes) */
	atomic_ullong q_refused;       /* streams reset: the owner queue was full */
};

struct svcn_pub {
	int used;
	char name[SVC_NAME_MAX + 1];
	char backend[SVC_BACKEND_ADDR_MAX]; /* "" = built-in */
	uint32_t http_flags;		    /* publish options (svc_node_pub_opts) */
	char cors[SVC_HTTP_CORS_MAX + 1];
	uint8_t *desc;			    /* signed descriptor served on SVC_NODE_ST_DESC */
	size_t desc_len;
	int raw; /* test/diagnostic: bytes set through the debug route */
	uint64_t expires;
	uint64_t refreshed_ms;
	int announced; /* DHT nodes that stored the last announce (-1: pending) */
};

enum { SVCN_PEER_CONNECTING = 1, SVCN_PEER_UP, SVCN_PEER_DEAD };

struct svcn_peer {
	int state; /* 0 = free slot */
	uint64_t conn;
	int err;
	uint8_t key[IDENTITY_PK_LEN];
	int have_key;
	struct sockaddr_storage addr;
	socklen_t alen;
	uint64_t last_ms;
	uint64_t ok, failed; /* call outcomes: reputation */
	uint32_t streams;    /* our ops on this connection not done yet */
	int full;	     /* the peer refused a stream: none more until one ends */
};

enum { SVCN_OP_DESC = 1, SVCN_OP_CALL, SVCN_OP_HTTP };

struct svcn_op {
	struct svcn_op *next, *prev; /* sn->ops */
	struct svcn_op *tnext;	     /* sn->op_tok chain */
	struct svcn_op *snext;	     /* sn->op_sid chain, once opened */
	uint64_t token;
	int kind;
	int refs; /* waiter + list */
	uint64_t conn;
	int64_t sid;
	int opened;
	int retried; /* moved to a fresh connection (stream limit), at most
		      * SVCN_STREAM_RETRIES times */
	uint8_t *req;
	size_t req_len;
	uint8_t *resp;
	size_t resp_len, resp_cap, resp_max, resp_off;
	int fin;
	int done;
	int err; /* transport error (negative errno) */
	int local; /* pass-through to this node's backend (svcn_local_http) */
	int counted; /* counted in its connection's svcn_peer.streams */
	int cls;   /* local: the stream's end, an enum svc_err */
	struct svc_node *sn; /* local: the fabric (the sink's lock) */
	uint64_t t0_ns, t1_ns;
};

struct svcn_in {
	struct svcn_in *next; /* sn->in_tab chain */
	uint64_t conn;
	int64_t sid;
	int type;
	struct svc_peer peer;
	int have_peer;
	uint8_t *buf; /* DESC: name bytes */
	size_t len;
	struct svc_msg_dec dec; /* CALL / HTTP */
	int handled;
};

/* Upper bounds (microseconds) of the outgoing call latency histogram
 * (weft_svc_call_duration_seconds); one more bucket: +Inf. */
#define SVCN_LAT_BUCKETS 10
#define SVCN_LAT_BOUNDS_US                                                                         \
	{ 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 500000, 2000000 }

struct svcn_stats {
	uint64_t calls_in, calls_out, calls_out_ok;
	/* answered outgoing calls (any result) by latency, not cumulative */
	uint64_t call_lat[SVCN_LAT_BUCKETS + 1];
	uint64_t call_lat_sum_us;
	uint64_t http_in, http_out;
	uint64_t desc_served, lookups, fetched, accepted;
	uint64_t rejected[8]; /* by reason, see svcn_reject_name() */
	uint64_t bans_sent;
	uint64_t gw_requests, gw_denied;
	uint64_t owner_events; /* events the owner ran */
};

struct svc_gateway;

/* Buckets of the tables of operations (by token, by stream) and inbound
 * streams (by stream): 1024 each, so that a lookup per stream event is
 * O(1) at the bounds (SVC_NODE_MAX_OPS, SVC_NODE_MAX_INBOUND = 4096).
 * Keys are node-assigned (connection serials, stream ids, tokens): a
 * peer cannot choose them. */
#define SVCN_HASH 1024
/* Remembered id -> name pairs (svc_node.ids): 256, 22 KiB. */
#define SVCN_IDS 256

struct svc_node {
	struct svcn_shim *shim;
	pthread_mutex_t *mu; /* &shim->mu */
	pthread_cond_t cv;   /* any op or peer state change */
	struct engine *eng;
	struct ctl *ctl;
	struct quic_node *quic;
	struct node_dht *dht;
	struct guard *guard;
	struct store *store;	   /* publications persist here (svc_persist.c) */
	unsigned int pub_db;
	unsigned int pub_restored;
	struct identity id;
	char key_hex[2 * IDENTITY_PK_LEN + 1];
	struct svc_node_cfg cfg;
	struct svc_router *router;
	struct svc_backend *backend;
	struct svc_dir *dir;
	struct svcn_pub pubs[SVC_NODE_MAX_PUBLISHED];
	struct svcn_peer peers[SVC_NODE_MAX_PEERS];
	struct svcn_op *ops;
	size_t nops;
	uint64_t next_token;
	struct svcn_op *op_tok[SVCN_HASH], *op_sid[SVCN_HASH];
	struct svcn_in *in_tab[SVCN_HASH];
	size_t nins;
	struct svcn_stats st;
	/* Service ids seen in verified descriptors and their names, kept
	 * longer than the directory cache (round robin over SVCN_IDS): a
	 * pinned gateway origin <id>.localhost finds its name again after
	 * the cache entry expired. */
	struct svcn_idname {
		uint8_t id[SVC_ID_LEN];
		char name[SVC_NAME_MAX + 1];
	} ids[SVCN_IDS];
	unsigned int ids_next;
	_Atomic int stopping;
	pthread_t refresher;
	int refresher_on;
	pthread_mutex_t refresh_mu; /* the refresher's sleep only */
	pthread_cond_t refresh_cv;
	struct svc_gateway *gw;
};

/* svc_persist.c: publications in the store. init opens the database (st
 * may be NULL: nothing persists). queue: the record of p under name (p
 * NULL: its removal) as a durable write; *ticket NULL when there is no
 * store; else store_write_wait it outside the lock. restore: publish
 * every stored record again (at start). All return 0 or -errno. */
struct store;
struct store_write;
int svcn_pub_store_init(struct svc_node *sn, struct store *st);
int svcn_pub_store_queue(struct svc_node *sn, const char *name, const struct svcn_pub *p,
			 struct store_write **ticket);
int svcn_pub_restore(struct svc_node *sn);
/* svc_directory.c: publish with persist = 0 (restore) or 1 (the API). */
int svcn_publish(struct svc_node *sn, const char *name, const char *backend,
		 const struct svc_node_pub_opts *po, int persist);

/* svc_node.c */
uint64_t svcn_now_ns(void);
const char *svcn_reject_name(unsigned int i);
/* Start an operation (descriptor fetch, call, HTTP) on the provider at addr
 * (expected key may be NULL). Locked by the caller. Returns the op (refs
 * 2: list + caller) or NULL with *err set. */
struct svcn_op *svcn_op_start(struct svc_node *sn, int kind, const struct sockaddr *addr,
			      socklen_t alen, const uint8_t *expected_key, const uint8_t *req,
			      size_t req_len, size_t resp_max, int *err);
/* An HTTP pass-through to this node's own backend for service: an op
 * (local) whose resp the backend stream fills with the raw HTTP answer
 * (no RESPONSE header), at most svc.http_buffer ahead of the reader.
 * Unlocked. Returns the op (refs 2: caller + stream) or NULL with *err
 * (-EINVAL: not a backend service, -EBUSY: backend bounds, -ENOMEM). */
struct svcn_op *svcn_local_http(struct svc_node *sn, const char *service, const uint8_t *req,
				size_t len, uint32_t timeout_ms, int *err);
/* Wait (locked) until op is done or deadline_ns; returns 0, -ETIMEDOUT
 * or -ESHUTDOWN (the node is stopping). */
int svcn_op_wait(struct svc_node *sn, struct svcn_op *op, uint64_t deadline_ns);
/* Wait (locked) on the fabric's condition for at most ns. */
void svcn_wait(struct svc_node *sn, uint64_t ns);
/* Drop the caller's reference (locked); cancels the stream if not done. */
void svcn_op_put(struct svc_node *sn, struct svcn_op *op);
/* The provider to use for name: a result of svc_node_find, first usable
 * endpoint (or local). Returns 0, 1 (this node) or -errno. */
int svcn_pick(struct svc_node *sn, const char *name, struct svc_dir_result *r,
	      struct sockaddr_storage *ss, socklen_t *sl);
/* The same for one service id, from the directory cache or our own
 * offers: 0, 1 (this node) or -ENOENT. */
int svcn_pick_id(struct svc_node *sn, const uint8_t id[SVC_ID_LEN], struct svc_dir_result *r,
		 struct sockaddr_storage *ss, socklen_t *sl);
/* Publish raw descriptor bytes for name (debug route). */
#ifdef WEFT_TEST_HOOKS /* test builds only: POST /v1/svc/debug/descriptor */
int svcn_publish_raw(struct svc_node *sn, const char *name, const uint8_t *buf, size_t len);
/* Build a deliberately bad descriptor (debug route): mode "forged",
 * "tampered", "expired", "future" or "oversized". malloc'd into *out. */
int svcn_bad_descriptor(struct svc_node *sn, const char *name, const char *mode, uint8_t **out,
			size_t *len);
#endif
/* Our endpoints "ip:port" joined by ',' into buf; returns the count. */
int svcn_endpoints(struct svc_node *sn,
		   char eps[SVC_DESC_MAX_ENDPOINTS][SVC_DESC_ENDPOINT_MAX + 1]);

/* An op that finds its connection out of stream credit (the peer allows
 * 100 concurrent streams) moves to a fresh connection; more callers than
 * that at once may find the fresh one full too: 4 moves, then -EAGAIN. */
#define SVCN_STREAM_RETRIES 4
/* Ops one pooled connection carries at once: 96, under the peer's 100
 * concurrent streams (QUIC_DEF_MAX_STREAMS) with room for the credit that
 * is on its way back; more callers get more connections to that peer. */
#define SVCN_CONN_STREAMS 96
/* Connections the pool opens to one peer: past them, calls share the least
 * loaded (a peer admits ~20 handshakes/s from one address, XDP's per-source
 * Initial rate: a burst of dials would only wait on it). */
#define SVCN_PEER_CONNS 32
/* Descriptor bytes accepted from a provider: anything longer is oversized
 * already; a little more is read so the verifier can say so. */
#define SVCN_DESC_READ_MAX (SVC_DESC_MAX_LEN + 64)
/* Response cap of a call: the message header and names on top of the
 * payload cap (svc.max_payload). */
#define SVCN_RESP_MAX(sn) ((size_t)svcn_max_payload(sn) + SVC_MSG_HDR_LEN + 2 * 64)

/* svc_node.c: the fabric's lock, payload cap, published entry by name. */
void svcn_lock(struct svc_node *sn);
void svcn_unlock(struct svc_node *sn);
uint32_t svcn_max_payload(const struct svc_node *sn);
/* svc.max_timeout_ms: the cap of every deadline (SVC_NODE_MAX_TIMEOUT_MS). */
uint32_t svcn_max_timeout(const struct svc_node *sn);
/* A deadline asked for (0 = SVC_NODE_CALL_TIMEOUT_MS), clamped to it. */
uint32_t svcn_clamp_timeout(const struct svc_node *sn, uint32_t ms);
/* svc.http_buffer: pass-through bytes buffered per request. */
size_t svcn_http_buffer(const struct svc_node *sn);
struct svcn_pub *svcn_pub_find(struct svc_node *sn, const char *name, size_t len);
/* svc_owner.c: the QUIC handlers of the fabric (on packet workers: they
 * post to the owner). cl: our outgoing connections; srv: stream type
 * type of the provider side, filled into *h. */
extern const struct quic_node_handler svcn_cl_handler;
void svcn_srv_handler(struct quic_node_handler *h, int type);
/* svc_node.c: the events, run on the owner with the lock held. */
void svcn_cl_connected_own(struct svc_node *sn, uint64_t conn, int err, const uint8_t *peer_key);
void svcn_cl_opened_own(struct svc_node *sn, uint64_t conn, uint64_t token, int64_t sid, int err);
void svcn_cl_data_own(struct svc_node *sn, uint64_t conn, int64_t sid, const uint8_t *data,
		      size_t len, int fin);
void svcn_cl_sclosed_own(struct svc_node *sn, uint64_t conn, int64_t sid, int err);
void svcn_cl_closed_own(struct svc_node *sn, uint64_t conn);
void svcn_srv_data(struct svc_node *sn, int type, uint64_t conn, int64_t sid,
		   const struct svc_peer *peer, const uint8_t *data, size_t len, int fin);
void svcn_srv_closed_own(struct svc_node *sn, uint64_t conn, int64_t sid);
/* svc.owner_queue: stream data events waiting for the owner. */
uint32_t svcn_owner_queue(const struct svc_node *sn);
/* Run fn(arg) on the fabric's owner thread (posted; from a packet worker,
 * e.g. a DHT completion on worker 0): fn takes the fabric's lock itself.
 * When the owner is going away (or out of memory), fn runs here, at once. */
void svcn_owner_call(struct svcn_shim *sh, void (*fn)(void *arg), void *arg);
/* Run fn(sn, arg) on the fabric's owner thread and wait for it, at most
 * timeout_ms (SVCN_OWNER_RUN_MS for control requests): the way control
 * threads, the gateway and the refresher reach the fabric's state. fn must
 * not block. On the owner itself, fn runs at once. Returns 0 (fn ran),
 * -ETIMEDOUT (fn never started and never will: arg may go), -ESHUTDOWN
 * (the fabric is stopping: fn did not run) or -ENOMEM. The caller holds
 * nothing the owner needs while it waits. */
int svcn_owner_run(struct svc_node *sn, void (*fn)(struct svc_node *sn, void *arg), void *arg,
		   uint32_t timeout_ms);
/* The deadline of a control request's turn on the owner: 2 s (the owner
 * runs only short, non-blocking handlers; past it the request answers 503). */
#define SVCN_OWNER_RUN_MS 2000u
/* Lock the shim behind a QUIC handler arg; NULL (unlocked) when the fabric is gone. */
struct svc_node *svcn_shim_enter(void *arg);
/* The pooled client connection with this handle, or NULL (locked). */
struct svcn_peer *svcn_peer_by_conn(struct svc_node *sn, uint64_t conn);

/* svc_directory.c: the publisher's refresh thread. */
void *svcn_refresh_main(void *arg);

/* svc_node_ctl.c */
int svcn_ctl_register(struct svc_node *sn);
/* Request bodies of POST /v1/svc/publish, /unpublish, /call and
 * /debug/descriptor, checked without a node (tests/fuzz/fuzz_ctl_json.c):
 * 0 with *a filled, or -EINVAL with a 4xx answer (JSON error) put in resp.
 * Strings in *a point into body. */
enum { SVCN_CTL_PUBLISH = 1, SVCN_CTL_UNPUBLISH, SVCN_CTL_CALL, SVCN_CTL_DEBUG_DESC };
struct svcn_ctl_args {
	const char *name;
	const char *backend;	       /* publish: NULL = built-in */
	int http_credentials;	       /* publish: SVC_HTTP_F_CREDENTIALS */
	const char *cors;	       /* publish: NULL = none */
	const char *method, *data;     /* call: default "" */
	json_int_t count, concurrency; /* call: 1..SVCN_CTL_MAX_COUNT, 1..SVCN_CTL_MAX_CONC */
	json_int_t timeout_ms;	       /* call: 0..600000, 0 = default */
	const char *mode;	       /* debug/descriptor */
};
struct ctl_resp;
int svcn_ctl_parse(int route, json_t *body, struct svcn_ctl_args *a, struct ctl_resp *resp);

/* gateway.c */
int svc_gateway_start(struct svc_node *sn, struct svc_gateway **out);
void svc_gateway_stop(struct svc_gateway *gw);

#endif
