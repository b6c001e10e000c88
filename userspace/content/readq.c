/* SPDX-License-Identifier: MIT */
/*
 * Chunk reads off the engine workers: the reader threads (readq.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "content/readq.h"
#include "weft/chunk.h"
#include "weft/engine.h"
#include "weft/log.h"
#include "weft/util.h"

/* A wake-up refused because the worker's command ring is full is posted
 * again after this long, this many times; then the worker finds the jobs
 * at its next serving pass (cn_readq_collect) without one. */
#define CN_READQ_KICK_RETRY_US 1000
#define CN_READQ_KICK_TRIES 100

struct cn_rdone {
	struct cn_read *head, *tail;
	int kicked; /* a wake-up is posted and has not run yet */
};

struct cn_readq {
	struct cn_readq_opts o;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cn_read *head, *tail; /* waiting for a thread */
	struct cn_rdone *done;	     /* per worker: read, not collected */
	pthread_t *th;
	unsigned int nth;	     /* started */
	int stop, start_failed;
	_Atomic unsigned int refs;   /* the owner, and each posted wake-up */
	_Atomic int dead;	     /* freed by its owner: a late wake-up does nothing */
	_Atomic uint64_t reads;
	_Atomic unsigned int nth_pub;
};

static void rq_put(struct cn_readq *q)
{
	if (atomic_fetch_sub(&q->refs, 1) != 1)
		return;
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q->done);
	free(q->th);
	free(q);
}

/* On worker widx: jobs came back. */
static void kick_run(struct engine_worker *w, void *arg)
{
	struct cn_readq *q = arg;
	unsigned int widx = engine_worker_index(w);

	if (!atomic_load(&q->dead) && widx < q->o.workers) {
		pthread_mutex_lock(&q->mu);
		q->done[widx].kicked = 0;
		pthread_mutex_unlock(&q->mu);
		q->o.done(q->o.arg, widx);
	}
	rq_put(q);
}

/* A reader thread: wake worker widx (its done list was empty). */
static void kick(struct cn_readq *q, unsigned int widx)
{
	int rc = -EAGAIN;

	for (int tries = 0; rc == -EAGAIN && tries < CN_READQ_KICK_TRIES; tries++) {
		atomic_fetch_add(&q->refs, 1);
		rc = engine_call(q->o.eng, widx, kick_run, q);
		if (rc) {
			atomic_fetch_sub(&q->refs, 1); /* the owner's is held: never the last */
			if (rc == -EAGAIN)
				usleep(CN_READQ_KICK_RETRY_US);
		}
	}
	if (rc) {
		/* stopped (-ESHUTDOWN) or still full: the next pass collects */
		pthread_mutex_lock(&q->mu);
		q->done[widx].kicked = 0;
		pthread_mutex_unlock(&q->mu);
	}
}

static void *reader(void *arg)
{
	struct cn_readq *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct cn_read *r;
		struct cn_rdone *d;
		unsigned int widx;
		int wake;

		if (!q->head && !q->stop) {
			/* what a read allocated (the store's index) goes back
			 * to the kernel from this thread's arena, once a
			 * minute at most */
			pthread_mutex_unlock(&q->mu);
			util_heap_release_due(util_now_ms());
			pthread_mutex_lock(&q->mu);
		}
		while (!q->head && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (!q->head)
			break; /* stopping, nothing left to read */
		r = q->head;
		q->head = r->next;
		if (!q->head)
			q->tail = NULL;
		r->next = NULL;
		pthread_mutex_unlock(&q->mu);

		r->len = 0;
		r->rc = cstore_read_chunk(q->o.cs, r->id, r->index, r->buf, r->cap, &r->len);
		atomic_fetch_add(&q->reads, 1);

		/* once on the list, r is its worker's: it may be answered and
		 * freed before this thread looks again (r->widx read after the
		 * unlock crashed two nodes of a 51-node lab) */
		widx = r->widx;
		pthread_mutex_lock(&q->mu);
		d = &q->done[widx];
		if (d->tail)
			d->tail->next = r;
		else
			d->head = r;
		d->tail = r;
		wake = !d->kicked && !q->stop;
		if (wake)
			d->kicked = 1;
		pthread_mutex_unlock(&q->mu);
		if (wake)
			kick(q, widx);
		pthread_mutex_lock(&q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int cn_readq_new(struct cn_readq **out, const struct cn_readq_opts *o)
{
	struct cn_readq *q;

	*out = NULL;
	if (!o || !o->threads || !o->workers || !o->eng || !o->cs || !o->done || !o->free_job)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->o = *o;
	q->done = calloc(o->workers, sizeof(*q->done));
	q->th = calloc(o->threads, sizeof(*q->th));
	if (!q->done || !q->th) {
		free(q->done);
		free(q->th);
		free(q);
		return -ENOMEM;
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	atomic_init(&q->refs, 1);
	*out = q;
	return 0;
}

/* Under q->mu: start threads up to the number asked for. 0 when at least
 * one runs. */
static int start_locked(struct cn_readq *q)
{
	while (q->nth < q->o.threads && !q->start_failed) {
		int rc = log_thread_create_helper(&q->th[q->nth], NULL, reader, q, "weft-read");

		if (rc) {
			log_warn("content", "reader thread: %s%s", strerror(rc),
				 q->nth ? "" : " (chunks are read on the engine workers)");
			q->start_failed = 1;
			break;
		}
		q->nth++;
		atomic_store(&q->nth_pub, q->nth);
	}
	return q->nth ? 0 : -EAGAIN;
}

int cn_readq_submit(struct cn_readq *q, struct cn_read *r)
{
	int rc;

	if (!q || !r || r->widx >= q->o.workers)
		return -EINVAL;
	r->next = NULL;
	pthread_mutex_lock(&q->mu);
	rc = q->stop ? -EAGAIN : start_locked(q);
	if (!rc) {
		if (q->tail)
			q->tail->next = r;
		else
			q->head = r;
		q->tail = r;
		pthread_cond_signal(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

struct cn_read *cn_readq_collect(struct cn_readq *q, unsigned int widx)
{
	struct cn_read *r;

	if (!q || widx >= q->o.workers)
		return NULL;
	pthread_mutex_lock(&q->mu);
	r = q->done[widx].head;
	q->done[widx].head = q->done[widx].tail = NULL;
	pthread_mutex_unlock(&q->mu);
	return r;
}

uint64_t cn_readq_reads(const struct cn_readq *q)
{
	return q ? atomic_load(&q->reads) : 0;
}

unsigned int cn_readq_threads(const struct cn_readq *q)
{
	return q ? atomic_load(&q->nth_pub) : 0;
}

static void give_back(struct cn_readq *q, struct cn_read *r)
{
	while (r) {
		struct cn_read *n = r->next;

		q->o.free_job(q->o.arg, r);
		r = n;
	}
}

void cn_readq_free(struct cn_readq *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = 1;
	/* jobs no thread took: never read */
	give_back(q, q->head);
	q->head = q->tail = NULL;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (unsigned int i = 0; i < q->nth; i++)
		pthread_join(q->th[i], NULL);
	for (unsigned int i = 0; i < q->o.workers; i++) {
		give_back(q, q->done[i].head);
		q->done[i].head = q->done[i].tail = NULL;
	}
	atomic_store(&q->dead, 1);
	rq_put(q);
}
