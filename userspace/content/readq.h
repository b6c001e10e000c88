/* SPDX-License-Identifier: MIT */
/*
 * Chunk reads off the engine workers (readq.c): a seed answers a chunk
 * that is not in memory with a file read, which on a cold store, a disk
 * serving many peers or a spinning disk takes 0.1-20 ms. Done on the
 * worker, that read stopped every packet, timer and answer of the
 * worker's connections for as long. Now the worker hands it to a small
 * pool of reader threads and goes on; the answer comes back to the
 * worker that asked (its connections' owner), which writes it.
 *
 *   cn_readq_submit()  a worker: read this chunk (a job it allocated)
 *   done(arg, widx)    on worker widx, once per batch of finished jobs:
 *                      the worker takes them with cn_readq_collect()
 *
 * Bounded: each worker has at most CN_READS_PER_WORKER jobs out (the
 * caller counts them), so the pool holds at most workers x that many
 * (each job one chunk answer's buffer). Threads start with the first job
 * (an idle node has none) and stay; every wait is the disk's. Jobs are
 * the caller's memory; the pool only links them. Owners: the queue and
 * the per-worker lists under one mutex, taken twice per chunk read
 * (256 KiB), never on the per-packet path.
 *
 * Stop (cn_readq_free, after the engine stopped): the threads finish the
 * read in hand and are joined; jobs never read and jobs read but not
 * collected are given back through free_job. A wake-up posted to a worker
 * holds a reference, so one that runs in the engine's drain after the
 * stop finds the pool marked dead and touches nothing else.
 */
#ifndef WEFT_CONTENT_READQ_H
#define WEFT_CONTENT_READQ_H
#include <stdint.h>
#include <stddef.h>
#include "content/sched.h"

/* Defaults: reader threads per node (content.read_threads), and jobs out
 * per engine worker. */
#define CN_READ_THREADS 4
#define CN_READS_PER_WORKER 8 /* cn_wtab.reading has room for as many */

struct quic_node_wbuf;
struct engine;
struct cstore;

/* One chunk read: filled in by the worker, read by a thread. */
struct cn_read {
	struct cn_read *next;
	unsigned int widx;	  /* the worker that asked, and gets it back */
	struct cn_sched_item it;  /* the request being answered */
	uint8_t id[32];
	uint64_t index;
	struct quic_node_wbuf *w; /* the answer's write command */
	uint8_t *buf;		  /* where the chunk goes (after the answer header) */
	size_t cap, len;	  /* room; bytes read */
	int rc;			  /* cstore_read_chunk's */
	int parked;		  /* held by serve.c with the worker's reads all out */
};

struct cn_readq;

struct cn_readq_opts {
	unsigned int threads; /* > 0 */
	unsigned int workers; /* engine workers (the widx range) */
	struct engine *eng;
	struct cstore *cs;
	/* on worker widx: jobs of it are done (collect them) */
	void (*done)(void *arg, unsigned int widx);
	/* at cn_readq_free: a job that will never come back */
	void (*free_job)(void *arg, struct cn_read *r);
	void *arg;
};

int cn_readq_new(struct cn_readq **out, const struct cn_readq_opts *o);
/* Stop and join the threads, give back every job still held (free_job).
 * After engine_stop. NULL-safe. */
void cn_readq_free(struct cn_readq *q);
/* A worker: queue r (r->widx set). 0; -EAGAIN when no thread could be
 * started (the caller reads on the worker as before). */
int cn_readq_submit(struct cn_readq *q, struct cn_read *r);
/* Worker widx: the jobs of widx read since the last call, in the order
 * they finished (a list through next), or NULL. */
struct cn_read *cn_readq_collect(struct cn_readq *q, unsigned int widx);
/* Reads done on the threads so far (any thread). */
uint64_t cn_readq_reads(const struct cn_readq *q);
/* Threads started (0 until the first job). */
unsigned int cn_readq_threads(const struct cn_readq *q);

#endif
