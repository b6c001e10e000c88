/* SPDX-License-Identifier: MIT */
/*
 * The service fabric's context, shared by the hub (svc_node.c: lifecycle
 * and wiring) and every part: struct svc_node, the owner's primitives and
 * the settings read from it (svc_owner.c, the lowest part). Each part's
 * own interface is in its header: svc_events_int.h (QUIC events into the
 * owner), svc_ops_int.h (outgoing streams and the connection pool),
 * svc_serve_int.h (the provider side), svc_jobs_int.h (callers' jobs),
 * svc_calls_int.h (lookups, calls, the load generator, pass-through
 * starts), svc_pipe_int.h (the gateway's byte pipe), svc_dir_int.h
 * (publications, descriptors, persistence), svc_ctl_int.h (control routes
 * and the gateway). Parts include this header and the headers of the
 * parts they call; none calls the hub.
 */
#ifndef WEFT_SVC_NODE_INT_H
#define WEFT_SVC_NODE_INT_H

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
	uint32_t version;		    /* packed (svc_version_parse) */
	uint32_t calls_per_min, max_payload, max_concurrent; /* 0 = the node's */
	uint32_t max_streams; /* 0 = svc.service_streams */
	uint32_t n_meta;
	char meta_key[SVC_NODE_PUB_META][SVC_DESC_META_KEY_MAX + 1];
	char meta_val[SVC_NODE_PUB_META][SVC_NODE_PUB_META_BYTES + 1];
	uint32_t n_allow; /* 0: public */
	uint8_t allow[SVC_NODE_PUB_ALLOW][IDENTITY_PK_LEN];
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

struct svcn_op;
struct svcn_in;
struct svcn_job;
struct svc_gateway;

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
	uint64_t rejected[8]; /* by reason, see svcn_reject_name() (svc_dir_int.h) */
	uint64_t bans_sent;
	uint64_t owner_events; /* events the owner ran */
};

/* Buckets of the tables of operations (by token, by stream) and inbound
 * streams (by stream): 1024 each, so that a lookup per stream event is
 * O(1) at the bounds (SVC_NODE_MAX_OPS, SVC_NODE_MAX_INBOUND = 4096).
 * Keys are node-assigned (connection serials, stream ids, tokens): a
 * peer cannot choose them. */
#define SVCN_HASH 1024
/* The wall clock moved this far against the monotonic one between two
 * refresh turns (2 s apart): it was stepped (NTP correcting it, an
 * operator), and every descriptor is signed again at once, so that one
 * signed under the old time (created in the future, or expired, for
 * everyone else) is not served for up to SVC_NODE_REFRESH_S. 30 s: far
 * above what slewing moves in 2 s (0.5 ms/s), far below
 * SVC_DESC_DEFAULT_SKEW. */
#define SVCN_CLOCK_STEP_S 30

/* Remembered id -> name pairs (svc_node.ids): 256, 22 KiB. */
#define SVCN_IDS 256

/* Every member below is the owner's (the backend thread), but for the
 * immutable ones set before the owner starts (eng, quic, dht, id, cfg...),
 * the atomics, and the refresher's sleep (refresh_mu, refresh_cv: that
 * thread's alone). No other thread reads or writes the rest: they post a
 * job (svc_jobs.c) or run a function there (svcn_owner_run). */
struct svc_node {
	struct svcn_shim *shim;
	/* The QUIC handlers of our outgoing connections (svc_events.c): set
	 * by the hub, so that the pool (svc_ops.c) dials with them without
	 * naming the part that calls it. */
	const struct quic_node_handler *cl_handler;
	uint16_t (*announce_port)(void *arg); /* svc_node_opts.announce_port */
	void *announce_port_arg;
	_Atomic uint16_t announced_port; /* the port of the last announce (0: none yet) */
	/* wall-clock s minus monotonic s at the last refresh turn: a change of
	 * more than SVCN_CLOCK_STEP_S is a step of the wall clock (refresh_own) */
	int64_t wall_off;
	int wall_off_set;
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
	struct svc_rep *rep;  /* provider reputation (svc_reputation.c) */
	unsigned int rep_db;  /* its store database, when sn->store */
	int rep_db_ok;	      /* rep_db was opened */
	struct svcn_pub pubs[SVC_NODE_MAX_PUBLISHED];
	/* pubs[0..npubs) may be in use; the slots past it never were, and no
	 * scan reads them (3.9 KB each: a read of an untouched page is a page
	 * of RSS on hosts without the shared zero page) */
	unsigned int npubs;
	struct svcn_peer peers[SVC_NODE_MAX_PEERS];
	struct svcn_op *ops;
	size_t nops;
	uint64_t next_token;
	struct svcn_op *op_tok[SVCN_HASH], *op_sid[SVCN_HASH];
	struct svcn_in *in_tab[SVCN_HASH];
	size_t nins;
	struct svcn_op *ready; /* ops done whose jobs are told next (svcn_tick) */
	struct svcn_job *jobs; /* jobs in progress on the owner (svc_jobs.c) */
	size_t njobs;
	uint64_t due_ns;       /* the next job or op deadline to check */
	struct svcn_stats st;
	atomic_ullong gw_requests, gw_denied; /* gateway threads count them */
	/* /mesh/v1/msg/... on the gateway (svc_node_gw_msg) */
	void (*gw_msg_fn)(void *arg, const struct ctl_req *req, struct ctl_resp *resp);
	void *gw_msg_arg;
	/* calls whose endpoints did not answer and whose key did not resolve
	 * to an address that answered (callers count them) */
	atomic_ullong calls_by_key_failed;
	/* lookups: providers dialled by their key claim, descriptors so found */
	atomic_ullong finds_by_key, finds_by_key_ok;
	/* calls made again at another provider (failover, svc_calls.c) */
	atomic_ullong failovers;
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
	/* Held while a stream's attach is posted and while stopping is set:
	 * an attach is either posted before the stop's message or released
	 * at once (svc_stream_open.c post_attach, svc_node_stop). */
	pthread_mutex_t attach_mu;
	pthread_t refresher;
	int refresher_on;
	pthread_mutex_t refresh_mu; /* the refresher's sleep only */
	pthread_cond_t refresh_cv;
	struct svc_gateway *gw;
	struct svcn_strms *strms; /* service streams (svc_stream.c) */
};

/* ---- svc_owner.c: the owner's primitives and the settings ---- */

/* The clock of every deadline here (util_now_ns: CLOCK_MONOTONIC). */
uint64_t svcn_now_ns(void);
/* Bucket of (a, b) in the SVCN_HASH tables. */
unsigned int svcn_hash(uint64_t a, int64_t b);
/* svc.max_payload: payload cap of calls in and out. */
uint32_t svcn_max_payload(const struct svc_node *sn);
/* svc.max_timeout_ms: the cap of every deadline (SVC_NODE_MAX_TIMEOUT_MS). */
uint32_t svcn_max_timeout(const struct svc_node *sn);
/* A deadline asked for (0 = SVC_NODE_CALL_TIMEOUT_MS), clamped to it. */
uint32_t svcn_clamp_timeout(const struct svc_node *sn, uint32_t ms);
/* svc.http_buffer: pass-through bytes buffered per request. */
size_t svcn_http_buffer(const struct svc_node *sn);
/* svc.owner_queue: stream data events waiting for the owner. */
uint32_t svcn_owner_queue(const struct svc_node *sn);
/* Response cap of a call: the message header and names on top of the
 * payload cap (svc.max_payload). */
#define SVCN_RESP_MAX(sn) ((size_t)svcn_max_payload(sn) + SVC_MSG_HDR_LEN + 2 * 64)

/* A worker's way in: the fabric while events may be posted, counted in
 * sh->active until svcn_shim_leave(); NULL when it is going away (then
 * nothing to leave). */
struct svc_node *svcn_shim_enter(struct svcn_shim *sh);
void svcn_shim_leave(struct svcn_shim *sh);
/* Let go of one reference (sh->refs); the last frees the shim. */
void svcn_shim_put(struct svcn_shim *sh);
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
/* A waiting caller (a job's, a pipe's reader) looks at sn->stopping this
 * often (ms): svc_node_stop ends every wait within it. */
#define SVCN_JOB_POLL_MS 100
/* The deadline of a control request's turn on the owner: 2 s (the owner
 * runs only short, non-blocking handlers; past it the request answers 503). */
#define SVCN_OWNER_RUN_MS 2000u

#endif
