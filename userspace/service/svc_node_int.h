/* SPDX-License-Identifier: MIT */
/* Internal to svc_node.c, svc_node_ctl.c and gateway.c. */
#ifndef WEFT_SVC_NODE_INT_H
#define WEFT_SVC_NODE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "weft/identity.h"
#include "weft/quic_node.h"
#include "weft/svc_backend.h"
#include "weft/svc_node.h"

/* The QUIC handler argument. quic_node_free() reports stream and
 * connection closes after svc_node_free() has run (weftd frees the fabric
 * first), so the handlers' argument is this small block that outlives the
 * fabric: live cleared, every callback returns at once. Two owners (the
 * fabric and, once registered, the QUIC node's release hook): the last
 * one to let go frees it (refs).
 *
 * Workers take no lock: a QUIC callback copies its event and posts it to
 * the fabric's owner, the backend thread (svc_backend_post), counting
 * itself in active while it reads live; svc_node_free clears live, then
 * waits for active to drop to zero before the owner goes. sn is read on
 * the owner only (it is cleared after the owner's loop ended). */
struct svcn_shim {
	atomic_int refs;     /* the fabric + the QUIC node once registered */
	struct svc_node *sn; /* the owner's: NULL once freed */
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

struct svcn_job;
struct svcn_pipe;

/* An outgoing stream (descriptor fetch, call, HTTP pass-through): the
 * owner's alone. Its waiter is a job (job->op_done runs once it is done,
 * from the owner's ready list) or, for HTTP, a pipe the gateway reads. */
struct svcn_op {
	struct svcn_op *next, *prev; /* sn->ops */
	struct svcn_op *tnext;	     /* sn->op_tok chain */
	struct svcn_op *snext;	     /* sn->op_sid chain, once opened */
	struct svcn_op *rnext;	     /* sn->ready, while in_ready */
	uint64_t token;
	int kind;
	int put;      /* the waiter let go: freed once off the ready list */
	int in_ready; /* done, its job not told yet */
	uint64_t conn;
	int64_t sid;
	int opened;
	int retried; /* moved to a fresh connection (stream limit), at most
		      * SVCN_STREAM_RETRIES times */
	uint8_t *req;
	size_t req_len;
	uint8_t *resp; /* DESC, CALL: the answer (HTTP: into pipe) */
	size_t resp_len, resp_cap, resp_max;
	int fin;
	int done;
	int err; /* transport error (negative errno) */
	int counted; /* counted in its connection's svcn_peer.streams */
	struct svcn_job *job;	/* told when done (NULL: none) */
	struct svcn_pipe *pipe; /* HTTP: the gateway's reader */
	uint64_t idle_ns;	/* HTTP: no byte for this long ends it */
	uint64_t deadline_ns;	/* HTTP: the owner ends it then (0: none) */
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
	/* calls made to the provider's key (its descriptor's endpoints did
	 * not answer; svc_calls.c), and those answered */
	uint64_t calls_by_key, calls_by_key_ok;
	/* answered outgoing calls (any result) by latency, not cumulative */
	uint64_t call_lat[SVCN_LAT_BUCKETS + 1];
	uint64_t call_lat_sum_us;
	uint64_t http_in, http_out;
	uint64_t desc_served, lookups, fetched, accepted;
	uint64_t rejected[8]; /* by reason, see svcn_reject_name() */
	uint64_t bans_sent;
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

/* Every member below is the owner's (the backend thread), but for the
 * immutable ones set before the owner starts (eng, quic, dht, id, cfg...),
 * the atomics, and the refresher's sleep (refresh_mu, refresh_cv: that
 * thread's alone). No other thread reads or writes the rest: they post a
 * job (svc_calls.c) or run a function there (svcn_owner_run). */
struct svc_node {
	struct svcn_shim *shim;
	uint16_t (*announce_port)(void *arg); /* svc_node_opts.announce_port */
	void *announce_port_arg;
	_Atomic uint16_t announced_port; /* the port of the last announce (0: none yet) */
	struct engine *eng;
	struct ctl *ctl;
	struct quic_node *quic;
	struct dhtnode *dht;
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
	struct svcn_op *ready; /* ops done whose jobs are told next (svcn_tick) */
	struct svcn_job *jobs; /* jobs in progress on the owner (svc_calls.c) */
	size_t njobs;
	uint64_t due_ns;       /* the next job or op deadline to check */
	struct svcn_stats st;
	atomic_ullong gw_requests, gw_denied; /* gateway threads count them */
	/* calls whose endpoints did not answer and whose key did not resolve
	 * to an address that answered (callers count them) */
	atomic_ullong calls_by_key_failed;
	/* lookups: providers dialled by their key claim, descriptors so found */
	atomic_ullong finds_by_key, finds_by_key_ok;
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
 * store; else store_write_wait it off the owner. restore: publish
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
 * (expected key may be NULL). On the owner. Returns the op (the waiter's:
 * svcn_op_put it) or NULL with *err set. job, when given, is told through
 * job->op_done once the op is done (never from inside this call). */
struct svcn_op *svcn_op_start(struct svc_node *sn, int kind, const struct sockaddr *addr,
			      socklen_t alen, const uint8_t *expected_key, const uint8_t *req,
			      size_t req_len, size_t resp_max, struct svcn_job *job, int *err);
/* The waiter lets go of op (on the owner); cancels the stream if not done. */
void svcn_op_put(struct svc_node *sn, struct svcn_op *op);
/* On the owner: tell the jobs of the ops done since the last call, end
 * jobs and pass-throughs past their deadline. Returns when to run again
 * (util_now_ns time, UINT64_MAX: nothing waits). The backend loop's tick. */
uint64_t svcn_tick(void *sn, uint64_t now_ns);
/* svc_node.c, for svcn_tick: tell the jobs of the ops done; end the
 * pass-throughs past their deadline or left by their reader (returns the
 * next deadline). */
void svcn_ready_run(struct svc_node *sn);
uint64_t svcn_ops_expire(struct svc_node *sn, uint64_t now_ns);
/* svc_node_free, once the owner's loop ended: end and free every job. */
void svcn_jobs_free(struct svc_node *sn);
/* A waiting caller looks at sn->stopping this often (ms): svc_node_stop
 * ends every wait within it. */
#define SVCN_JOB_POLL_MS 100

/* ---- svc_calls.c: callers' requests to the owner ----
 *
 * A job is a request a caller (control thread, gateway thread) hands to the
 * owner and waits for on its own semaphore, with a deadline; the owner
 * drives it (ops, backend calls, DHT results) and delivers its result.
 * Nothing is shared with other callers or packet workers; the owner never
 * waits for a caller (delivery is a compare-and-swap and a sem_post). A
 * caller whose deadline passes first abandons the job (compare-and-swap):
 * the owner ends it at its own deadline and frees it. */
struct svcn_job {
	struct svc_backend_msg m; /* the post; first */
	struct svcn_job *next, *prev; /* sn->jobs while listed */
	struct svc_node *sn;
	atomic_int refs;  /* caller, owner, plus a DHT lookup or backend call in flight */
	atomic_int state; /* SVCN_JOB_WAITING, _DONE, _ABANDONED */
	sem_t sem;	  /* posted once: done */
	int listed;
	int finished;	      /* the owner is done with it (result in place) */
	int err;	      /* the result: 0 or -errno (the kind has the rest) */
	struct svcn_job *dnext; /* svcn_tick's list of due jobs */
	uint64_t deadline_ns; /* the owner ends the job then (0: not listed) */
	/* On the owner: start (posted), an op of the job done, the deadline
	 * passed; free releases what the kind holds (any thread, last ref). */
	void (*start)(struct svc_node *sn, struct svcn_job *j);
	void (*op_done)(struct svc_node *sn, struct svcn_job *j, struct svcn_op *o);
	void (*expire)(struct svc_node *sn, struct svcn_job *j);
	void (*free)(struct svcn_job *j);
};
enum { SVCN_JOB_WAITING, SVCN_JOB_DONE, SVCN_JOB_ABANDONED };
/* Jobs on the owner at once: past it a caller gets -EBUSY (4096, the
 * operation bound SVC_NODE_MAX_OPS: a job holds at most a few). */
#define SVCN_MAX_JOBS 4096
/* A remote call with at least this timeout falls back to dialling the
 * provider's key when its descriptor's endpoint does not answer within a
 * quarter of it (svc_calls.c); a shorter one leaves no time for it. */
#define SVCN_BY_KEY_MIN_MS 1000u

/* ---- svc_pipe.c: the gateway's HTTP pass-through ----
 *
 * The gateway's pass-through reader: a single-producer (the owner, or the
 * backend sink on the owner) single-consumer (the gateway thread) queue
 * of byte chunks, lock-free (each chunk is linked with one release store),
 * at most svc.http_buffer bytes queued; the consumer sleeps on its own
 * semaphore. Two references: reader and producer. */
struct svcn_chunk {
	struct svcn_chunk *_Atomic next;
	size_t len, off;
	uint8_t data[];
};
struct svcn_pipe {
	atomic_int refs;
	sem_t sem;
	atomic_int sleeping; /* the reader waits: the producer posts sem */
	atomic_int closed;   /* the reader left: the producer stops */
	atomic_int ended;    /* the producer is done; cls, ok, start_err are set */
	int cls;	     /* enum svc_err of the end (SVC_OK: fin) */
	int ok;		     /* ended with every byte (fin) */
	int start_err;	     /* the pass-through never started: -errno */
	size_t cap;
	atomic_size_t queued;	  /* bytes in the queue */
	struct svcn_chunk *head;  /* the reader's: consumed stub */
	struct svcn_chunk *tail;  /* the producer's: last linked */
	const _Atomic int *stopping; /* the fabric's: the reader leaves */
};
/* A pipe of at most cap queued bytes, two references (reader and
 * producer); its reader leaves its waits once *stopping is set. NULL:
 * out of memory. */
struct svcn_pipe *svcn_pipe_new(const _Atomic int *stopping, size_t cap);
/* Producer side (the owner): 0, -EAGAIN (no room for len), -ECANCELED
 * (the reader left). end: once, last (cls an enum svc_err). */
int svcn_pipe_write(struct svcn_pipe *p, const uint8_t *buf, size_t len);
void svcn_pipe_end(struct svcn_pipe *p, int cls, int ok);
void svcn_pipe_put(struct svcn_pipe *p);
/* Reader side (gateway): start a pass-through of req (raw HTTP for a local
 * target; a REQUEST message for a remote one) on the owner; returns the
 * pipe or NULL (-ENOMEM, -ESHUTDOWN in *err). The owner's answer (or its
 * failure) arrives through the pipe. */
struct svcn_pipe *svcn_http_start(struct svc_node *sn, int local, const char *service,
				  const struct sockaddr_storage *ss, socklen_t sl,
				  const uint8_t *key, uint8_t *req, size_t len,
				  uint32_t timeout_ms, uint64_t idle_ns, int *err);
/* Up to max bytes out of p into buf, waiting until deadline_ns for one:
 * > 0 bytes, 0 ended (see cls, ok, start_err), -ETIMEDOUT, -ESHUTDOWN. */
long svcn_pipe_read(struct svcn_pipe *p, uint8_t *buf, size_t max, uint64_t deadline_ns);
/* The reader leaves (the owner cancels the stream at its next look). */
void svcn_pipe_close(struct svcn_pipe *p);

/* The load generator of svc call --count: count calls of name, conc at a
 * time, driven on the owner (no thread per call). Results in *out. */
struct svcn_load_res {
	uint64_t errs[SVC_ERR__COUNT + 1]; /* by result; last: transport failures */
	uint64_t *lat;			   /* count entries: rtt of each ok call */
	long nlat;
	uint64_t max_us;
	int last_errno;
	uint64_t elapsed_ns;
};
int svcn_call_many(struct svc_node *sn, const char *name, const char *method,
		   const uint8_t *payload, size_t len, uint32_t timeout_ms, long count, int conc,
		   struct svcn_load_res *out);
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

/* svc_node.c: payload cap, published entry by name. */
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
/* svc_node.c: the events, run on the owner. */
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
/* Run fn(arg, sn) on the fabric's owner thread (posted; from a packet
 * worker, e.g. a DHT completion on worker 0). When the owner is going away
 * (or out of memory), fn(arg, NULL) runs here, at once: release only. */
void svcn_owner_call(struct svcn_shim *sh, void (*fn)(void *arg, struct svc_node *sn), void *arg);
/* Run fn(sn, arg) on the fabric's owner thread and wait for it, at most
 * timeout_ms (SVCN_OWNER_RUN_MS for control requests): the way control
 * threads, the gateway and the refresher reach the fabric's state. fn must
 * not block. On the owner itself, fn runs at once. Returns 0 (fn ran),
 * -ETIMEDOUT (fn never started and never will: arg may go), -ESHUTDOWN
 * (the fabric is stopping: fn did not run) or -ENOMEM. The caller holds
 * nothing the owner needs while it waits. */
int svcn_owner_run(struct svc_node *sn, void (*fn)(struct svc_node *sn, void *arg), void *arg,
		   uint32_t timeout_ms);
/* Wait on sem until deadline_ns (util_now_ns clock): 0 or -ETIMEDOUT. */
int svcn_sem_wait_until(sem_t *sem, uint64_t deadline_ns);
/* The deadline of a control request's turn on the owner: 2 s (the owner
 * runs only short, non-blocking handlers; past it the request answers 503). */
#define SVCN_OWNER_RUN_MS 2000u
/* The pooled client connection with this handle, or NULL (owner). */
struct svcn_peer *svcn_peer_by_conn(struct svc_node *sn, uint64_t conn);

/* svc_directory.c: verify a fetched descriptor and cache it (owner). */
void svcn_accept_desc(struct svc_node *sn, const char *name, const uint8_t *buf, size_t len,
		      const uint8_t *peer_key, uint32_t rtt_us);
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
