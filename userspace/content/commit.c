// SPDX-License-Identifier: MIT
/*
 * A download's commits off its job thread (docs/CONTENT.md "Commits off
 * the job thread"). Chunks verified and put (cstore_put_chunk_later) are
 * made durable in batches by cstore_commit_chunks: the batch's write, an
 * fdatasync and the store's transaction, 6.8 ms for 16 chunks on the
 * Zen 5 guest of stop 86, in which the job thread, which made them
 * itself, took no answer and asked for no chunk: its requests to a lone
 * seed ran out meanwhile. The job's committer thread makes them now while
 * the job goes on; one batch at a time (the next waits for the one out),
 * so at most 2 x CN_COMMIT_MAX chunks wait for their commit, as the
 * store's deferred writes allow (CSTORE_DEFER_MAX).
 *
 * Owners: the batch handed over (struct cn_commit) and the job's counters
 * it moves are under j->mu like the rest of the job; the committer holds
 * it only to take a batch and to count it done, never across the commit.
 * The thread starts with the item's first commit, and cn_commit_stop
 * (every end of fetch_item) waits for the batch out and joins it: at most
 * one per job fetching, CONTENT_MAX_JOBS in all. A thread that cannot
 * start leaves the job committing on its own thread, as before.
 *
 * A commit writes the user's copy too when the item has one open
 * (export.c, cn_job_tee; the tee is opened here, by the job thread, at the
 * item's first commit), without waiting for those writes: the export
 * drains them (cstore_tee_drain) before it reads which chunks went out. A
 * sealed item's commit hands its chunks to the item's follower instead
 * (cn_job_tee_committed), which decrypts and writes them on its thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "content/swarm_int.h"
#include "weft/log.h"

/* Under j->mu: a batch of n chunks of the current item committed, or not
 * (rc < 0: the job fails with the error; a chunk not committed is fetched
 * again by the next download, as one lost with the process). */
static void commit_done(struct cn_job *j, const uint64_t *idx, size_t n, int rc)
{
	if (rc >= 0) {
		j->committed += n;
		j->stored_self += n;
		cn_job_tee_committed(j, idx, n); /* a sealed item's plaintext */
	}
	if (rc < 0 && !j->status) {
		snprintf(j->error, sizeof(j->error), "committing %zu chunks: %s", n, strerror(-rc));
		j->status = rc;
	}
}

static void *committer(void *arg)
{
	struct cn_job *j = arg;
	struct cn_commit *c = &j->cm;
	struct cstore_tee *tee;
	size_t n;
	int rc;

	pthread_mutex_lock(&j->mu);
	for (;;) {
		while (!c->busy && !c->stop)
			pthread_cond_wait(&c->cv, &j->mu);
		if (!c->busy)
			break; /* stopped, nothing handed over */
		/* the batch (c->id, c->idx) is left alone by the job while
		 * busy: read without the lock */
		n = c->n;
		tee = cn_job_tee(j);
		pthread_mutex_unlock(&j->mu);
		rc = cstore_commit_chunks_tee(j->cn->cs, c->id, c->idx, n, tee);
		pthread_mutex_lock(&j->mu);
		commit_done(j, c->idx, n, rc);
		c->busy = 0;
		/* the job: waiting for the batch, or asleep with work to do */
		pthread_cond_broadcast(&j->cond);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

void cn_commit_wait(struct cn_job *j)
{
	while (j->cm.busy)
		pthread_cond_wait(&j->cond, &j->mu);
}

void cn_commit_pending(struct cn_job *j)
{
	struct cn_commit *c = &j->cm;
	struct cstore_tee *tee;
	uint64_t idx[CN_COMMIT_MAX];
	size_t n = j->npend;
	int rc;

	if (!n)
		return;
	if (!c->state) {
		pthread_cond_init(&c->cv, NULL);
		c->stop = c->busy = 0;
		rc = log_thread_create_helper(&c->th, NULL, committer, j, "weft-commit");
		if (rc) {
			pthread_cond_destroy(&c->cv);
			log_warn(CN_MOD,
				 "commit thread: %s (the download commits on its own thread)",
				 strerror(rc));
		}
		c->state = rc ? -1 : 1;
	}
	cn_job_tee_start(j); /* the user's copy, at the item's first commit */
	tee = cn_job_tee(j);
	if (c->state > 0) {
		cn_commit_wait(j); /* one batch at a time */
		memcpy(c->idx, j->pend, n * sizeof(c->idx[0]));
		memcpy(c->id, j->cur, sizeof(c->id));
		c->n = n;
		c->busy = 1;
		j->npend = 0;
		pthread_cond_signal(&c->cv);
		return;
	}
	memcpy(idx, j->pend, n * sizeof(idx[0]));
	j->npend = 0;
	pthread_mutex_unlock(&j->mu);
	rc = cstore_commit_chunks_tee(j->cn->cs, j->cur, idx, n, tee);
	pthread_mutex_lock(&j->mu);
	commit_done(j, idx, n, rc);
}

void cn_commit_stop(struct cn_job *j)
{
	struct cn_commit *c = &j->cm;

	if (c->state > 0) {
		cn_commit_wait(j);
		c->stop = 1;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&j->mu);
		pthread_join(c->th, NULL);
		pthread_mutex_lock(&j->mu);
		pthread_cond_destroy(&c->cv);
	}
	c->state = 0;
}
