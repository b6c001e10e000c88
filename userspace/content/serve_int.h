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
	int rc;	     /* -EAGAIN: nothing written, the request goes back */
	size_t sent; /* bytes written */
	int chunk;   /* a chunk went out */
	int queued;  /* its file read went to a reader thread (answered later) */
};

/* The worker's clock for the scheduler (virtual in the simulator), ns. */
uint64_t cn_sv_now(const struct cn_wtab *t);
/* A requester did something a fair downloader does not: counted, scored,
 * and over the threshold (validated) banned and disconnected. */
void cn_serve_fault(struct content_node *cn, struct cn_wtab *t, uint64_t conn, enum cn_fault f);
/* Answer one request taken from the scheduler (v->rc, v->sent, v->queued
 * say what happened). */
void cn_serve_one(struct cn_sv *v, const struct cn_sched_item *it);
/*
 * The answer of a chunk read (rc, len) into the write command *wp, whose
 * data starts at buf (the answer header): written and taken (*wp NULL),
 * freed on an error (NULL), or left in *wp when the node's send queue is
 * full (v->rc -EAGAIN). scored: rc came from this worker's own check of
 * the request (a chunk never announced is the requester's fault; one
 * removed while its read waited is not).
 */
void cn_chunk_answer(struct cn_sv *v, const struct cn_sreq *r, const uint8_t *id, uint64_t index,
		     struct quic_node_wbuf **wp, uint8_t *buf, size_t len, int rc, int scored);

#endif
