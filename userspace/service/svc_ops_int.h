/* SPDX-License-Identifier: MIT */
/*
 * svc_ops.c: the fabric's outgoing streams (descriptor fetch, call, HTTP
 * pass-through) and the pooled client connections they ride on, all on
 * the owner. The client side's QUIC events (svcn_cl_*_own) arrive from
 * svc_events.c. A finished op tells its waiter through one upcall,
 * job->op_done (struct svcn_job, svc_jobs_int.h), run from svcn_ready_run
 * on the owner's tick, never from inside the call that finished it.
 */
#ifndef WEFT_SVC_OPS_INT_H
#define WEFT_SVC_OPS_INT_H

#include "svc_node_int.h"

struct svcn_pipe;

enum { SVCN_OP_DESC = 1, SVCN_OP_CALL, SVCN_OP_HTTP };

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
	/* its REQUEST went to the worker with the open (op_open) and may
	 * have left, until an open that failed says it was dropped */
	int posted;
	int retried; /* moved to a fresh connection (stream limit), at most
		      * SVCN_STREAM_RETRIES times */
	uint8_t *req;
	size_t req_len;
	uint8_t *resp; /* DESC, CALL: the answer (HTTP: into pipe) */
	size_t resp_len, resp_cap, resp_max;
	int fin;
	int done;
	int err;		/* transport error (negative errno) */
	int counted;		/* counted in its connection's svcn_peer.streams */
	struct svcn_job *job;	/* told when done (NULL: none) */
	struct svcn_pipe *pipe; /* HTTP: the gateway's reader */
	uint64_t idle_ns;	/* HTTP: no byte for this long ends it */
	uint64_t deadline_ns;	/* HTTP: the owner ends it then (0: none) */
	uint64_t t0_ns, t1_ns;
};

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
/* Descriptor bytes accepted from a provider: anything longer is oversized
 * already; a little more is read so the verifier can say so. */
#define SVCN_DESC_READ_MAX (SVC_DESC_MAX_LEN + 64)

/* Start an operation (descriptor fetch, call, HTTP) on the provider at addr
 * (expected key may be NULL). On the owner. Returns the op (the waiter's:
 * svcn_op_put it) or NULL with *err set. job, when given, is told through
 * job->op_done once the op is done (never from inside this call). */
struct svcn_op *svcn_op_start(struct svc_node *sn, int kind, const struct sockaddr *addr,
			      socklen_t alen, const uint8_t *expected_key, const uint8_t *req,
			      size_t req_len, size_t resp_max, struct svcn_job *job, int *err);
/* The waiter lets go of op (on the owner); cancels the stream if not done. */
void svcn_op_put(struct svc_node *sn, struct svcn_op *op);
/* For svcn_tick (svc_jobs.c): tell the jobs of the ops done; end the
 * pass-throughs past their deadline or left by their reader (returns the
 * next deadline, UINT64_MAX: none). */
void svcn_ready_run(struct svc_node *sn);
uint64_t svcn_ops_expire(struct svc_node *sn, uint64_t now_ns);
/* svc_node_free, once the owner's loop ended: free every op (a
 * pass-through's reader hears SVC_ERR_OVERLOADED). */
void svcn_ops_free(struct svc_node *sn);
/* A pooled connection to addr (and key) with room for one more stream,
 * or a new dial (its connected event follows), or NULL with *err. */
struct svcn_peer *svcn_peer_get(struct svc_node *sn, const struct sockaddr *addr, socklen_t alen,
				const uint8_t *key, int *err);
/* The pooled client connection with this handle, or NULL (owner). */
struct svcn_peer *svcn_peer_by_conn(struct svc_node *sn, uint64_t conn);

/* The client side's QUIC events, run on the owner (svc_events.c). */
void svcn_cl_connected_own(struct svc_node *sn, uint64_t conn, int err, const uint8_t *peer_key);
void svcn_cl_opened_own(struct svc_node *sn, uint64_t conn, uint64_t token, int64_t sid, int err);
void svcn_cl_data_own(struct svc_node *sn, uint64_t conn, int64_t sid, const uint8_t *data,
		      size_t len, int fin);
void svcn_cl_sclosed_own(struct svc_node *sn, uint64_t conn, int64_t sid, int err);
void svcn_cl_closed_own(struct svc_node *sn, uint64_t conn);

#endif
