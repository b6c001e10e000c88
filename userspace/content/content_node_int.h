/* SPDX-License-Identifier: MIT */
/* Internals of content_node (content_node.c, serve.c, swarm.c). */
#ifndef WEFT_CONTENT_NODE_INT_H
#define WEFT_CONTENT_NODE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "weft/chunk.h"
#include "weft/content_node.h"
#include "weft/manifest.h"

#define CN_MOD "content"

/* One request waiting for a serve thread. */
struct cn_sreq {
	uint64_t conn;
	int64_t sid;
	uint8_t len;
	uint8_t fin; /* answer with FIN: the client ended the stream */
	uint8_t buf[48];
};

/* Open fetch streams being served, with the bytes of a request not yet
 * complete: 1024 (64 downloaders x 16 streams). Bounded. */
#define CN_PENDING_MAX 1024
struct cn_pending {
	uint64_t conn;
	uint64_t last_ms;
	int64_t sid;
	uint8_t len;
	uint8_t buf[48];
	int used;
};

struct cn_job;

/* What quic_node calls for CONTENT_ST_FETCH streams (see cn_serve_stop). */
struct cn_hub {
	pthread_mutex_t mu;
	struct content_node *cn; /* NULL once the content node is gone */
};

struct content_node {
	struct cstore *cs;
	struct store *store;
	unsigned int shares_dbi;
	struct quic_node *quic;
	struct node_dht *dht;
	struct guard *guard;
	const struct identity *id;
	uint16_t quic_port;
	unsigned int max_parallel, per_provider, req_timeout_ms;
	int test_corrupt;
	unsigned int test_delay_ms;
	atomic_int stopping;

	/* serving */
	struct cn_hub *hub;
	pthread_mutex_t smu;
	pthread_cond_t scond;
	struct cn_sreq *sq; /* ring of CONTENT_SERVE_QUEUE */
	unsigned int sq_head, sq_len;
	struct cn_pending pending[CN_PENDING_MAX];
	pthread_t sthr[CONTENT_SERVE_THREADS];
	unsigned int nsthr;
	atomic_ullong served_chunks, served_bytes, served_infos, served_manifests, serve_busy,
	    serve_notfound, serve_unavailable, serve_bad;

	/* announcing: ids (32 bytes; share ids use the first 20) due for an
	 * announce, and when each was last announced */
	pthread_mutex_t amu;
	pthread_cond_t acond;
	pthread_t athr;
	int athr_started;
	struct cn_ann *ann;
	unsigned int nann, capann;
	atomic_ullong announces, announce_fail;

	/* downloads */
	pthread_mutex_t jmu;
	struct cn_job *jobs[CONTENT_MAX_JOBS];
	unsigned int njobs;
	uint64_t next_job;
};

/* serve.c */
int cn_serve_init(struct content_node *cn);
int cn_serve_start(struct content_node *cn);
void cn_serve_stop(struct content_node *cn);

/* content_node.c: share records and announcements */
int cn_share_get(struct content_node *cn, const uint8_t share_id[MANIFEST_SHARE_ID_LEN],
		 uint8_t **enc, size_t *len);
/* Store a verified manifest unless an equal or newer one is held. */
int cn_share_put(struct content_node *cn, const struct manifest *m);
/* Queue id for announcement (len 32: content id; len 20: share id). */
void cn_announce(struct content_node *cn, const uint8_t *id, size_t len);
/* DHT get_peers on ih (20 bytes, read during the call only), without
 * waiting: NULL when it cannot start (no DHT, too many lookups). Poll
 * returns -EAGAIN until done, then how many addresses went to out (at
 * most cap, 32 kept). Put releases it (any time). */
struct cn_lk;
struct cn_lk *cn_lookup_start(struct content_node *cn, const uint8_t ih[20]);
int cn_lookup_poll(struct cn_lk *lk, struct sockaddr_storage *out, size_t cap);
void cn_lookup_put(struct cn_lk *lk);

/* swarm.c */
struct cn_get_req {
	uint8_t id[32];
	size_t id_len;	   /* 32 content id, 20 share id */
	char out[4096];	   /* "" = keep in the store only */
	char from[8][128]; /* explicit providers (quic_node targets) */
	unsigned int nfrom;
};
/* Start (or join) a download; *job_id gets its number. */
int cn_job_start(struct content_node *cn, const struct cn_get_req *rq, uint64_t *job_id);
/* JSON of a job (NULL if unknown; caller json_decref()s). */
json_t *cn_job_json(struct content_node *cn, uint64_t job_id);
json_t *cn_jobs_json(struct content_node *cn);
void cn_jobs_stop(struct content_node *cn);
/* Export a complete blob to path (atomically, via a temporary file),
 * re-verifying every chunk. */
int cn_export(struct content_node *cn, const uint8_t id[32], const char *path);

#endif
