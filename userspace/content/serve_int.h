/* SPDX-License-Identifier: MIT */
/*
 * Serving's parts shared by serve.c (the queues, the pump, the QUIC
 * callbacks) and serve_answer.c (the answers). Engine worker only.
 */
#ifndef WEFT_CONTENT_SERVE_INT_H
#define WEFT_CONTENT_SERVE_INT_H
#include <stddef.h>
#include <stdint.h>
#include "content/content_node_int.h"
#include "content/sched.h"

struct quic_node_wbuf;

/* One answer being written, on the connection's worker: what reply()
 * found (the queue full: try again later) and the bytes that went out. */
struct cn_sv {
	struct content_node *cn;
	struct cn_wtab *t;
	int rc;	     /* -EAGAIN: nothing written, the request goes back;
		      * -ENOSPC: its peer holds its limit of answers (passed over) */
	size_t sent; /* bytes written */
	int chunk;   /* a chunk went out */
	int queued;  /* its file read went to a reader thread (answered later) */
};

/* The worker's clock for the scheduler (virtual in the simulator), ns. */
uint64_t cn_sv_now(const struct cn_wtab *t);
/* A requester did something a fair downloader does not: counted, scored,
 * and over the threshold (validated) banned and disconnected. */
void cn_serve_fault(struct content_node *cn, struct cn_wtab *t, uint64_t conn, enum cn_fault f);
/* Does conn hold its limit of our answers (serve_held.c)? 1 or 0. */
int cn_serve_peer_full(struct content_node *cn, struct cn_wtab *t, uint64_t conn);
/* len bytes of an answer were written to conn in this pass. */
void cn_serve_wrote(struct cn_wtab *t, uint64_t conn, uint64_t len);
/* The pump runs in engine pass pass (engine_worker_pass): what earlier
 * passes wrote is in the send queues now. */
void cn_serve_pass(struct cn_wtab *t, uint64_t pass);
/* What was written to conn in this pass and is not in its send queue yet. */
uint64_t cn_serve_unseen(const struct cn_wtab *t, uint64_t conn);
/* Each second, the n peers of t->snap: what each holds of our answers
 * (their held), and those whose answers have not moved for the stall
 * limit closed (serve_held.c). */
void cn_serve_held_tick(struct cn_wtab *t, unsigned int n);
/* Answer one request taken from the scheduler (v->rc, v->sent, v->queued
 * say what happened). */
void cn_serve_one(struct cn_sv *v, const struct cn_sched_item *it);
/*
 * The answer of a chunk read (rc, len) into the write command *wp, whose
 * data starts at buf (the answer header): written and taken (*wp NULL),
 * freed on an error (NULL), or left in *wp when the node's send queue is
 * full (v->rc -EAGAIN). scored: rc came from this worker's own check of
 * the request (a chunk never announced is the requester's fault; one
 * removed while its read waited is not). wp may be NULL with rc != 0 (an
 * error found before a write command was made: serve_lent).
 */
void cn_chunk_answer(struct cn_sv *v, const struct cn_sreq *r, const uint8_t *id, uint64_t index,
		     struct quic_node_wbuf **wp, uint8_t *buf, size_t len, int rc, int scored);

#endif
