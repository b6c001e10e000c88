// SPDX-License-Identifier: MIT
/*
 * Callers' jobs on the service fabric's owner (docs/SERVICE.md, "Threads
 * and owners"): the machinery lookups (svc_find.c), calls and the load
 * generator (svc_calls.c) share, and the owner's tick (svcn_tick) that
 * tells jobs of their ops and ends those past their deadline. The
 * fabric's state is the owner's (the backend thread) alone: a caller
 * copies its request into a job, posts it (svc_backend_post: lock-free)
 * and waits on the job's own semaphore until its deadline; the owner
 * drives the job (streams, backend calls, DHT results) and delivers the
 * result with a compare-and-swap and a sem_post. A caller holds nothing
 * while it waits and shares nothing with other callers or packet workers;
 * the owner never waits for a caller: a caller that gives up abandons the
 * job (compare-and-swap) and leaves, the owner ends it at its own deadline
 * (svcn_tick) and frees it. A job's kind reaches it through the job's
 * own functions (start, op_done, expire, free): the only upcalls here.
 */
#include <errno.h>
#include <stdlib.h>

#include "svc_jobs_int.h"
#include "svc_ops_int.h"
#include "svc_stream_int.h"

void svcn_job_init(struct svcn_job *j, struct svc_node *sn, int refs)
{
	j->sn = sn;
	atomic_init(&j->refs, refs);
	atomic_init(&j->state, SVCN_JOB_WAITING);
	sem_init(&j->sem, 0, 0);
}

void svcn_job_put(struct svcn_job *j)
{
	if (j && atomic_fetch_sub(&j->refs, 1) == 1) {
		sem_destroy(&j->sem);
		j->free(j);
	}
}

int svcn_job_abandoned(struct svcn_job *j)
{
	return atomic_load(&j->state) == SVCN_JOB_ABANDONED;
}

/* On the owner: j has a deadline (its expire runs then). */
void svcn_job_list(struct svc_node *sn, struct svcn_job *j, uint64_t deadline_ns)
{
	j->deadline_ns = deadline_ns;
	if (!j->listed) {
		j->listed = 1;
		j->prev = NULL;
		j->next = sn->jobs;
		if (sn->jobs)
			sn->jobs->prev = j;
		sn->jobs = j;
		sn->njobs++;
	}
	if (deadline_ns < sn->due_ns)
		sn->due_ns = deadline_ns;
}

void svcn_job_unlist(struct svc_node *sn, struct svcn_job *j)
{
	if (!j->listed)
		return;
	j->listed = 0;
	if (j->prev)
		j->prev->next = j->next;
	else
		sn->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	sn->njobs--;
}

/* On the owner (sn NULL: the owner is gone): j's result is in place; the
 * caller, if still there, takes it. Drops the owner's reference. */
void svcn_job_deliver(struct svc_node *sn, struct svcn_job *j)
{
	int expect = SVCN_JOB_WAITING;

	j->finished = 1;
	if (sn)
		svcn_job_unlist(sn, j);
	if (atomic_compare_exchange_strong(&j->state, &expect, SVCN_JOB_DONE))
		sem_post(&j->sem);
	svcn_job_put(j);
}

/* The caller's wait: 0 (delivered: read the result), -ETIMEDOUT or
 * -ESHUTDOWN (abandoned: the owner frees it). Never holds anything. */
int svcn_job_wait(struct svc_node *sn, struct svcn_job *j, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = svcn_now_ns(), until;
		int stop = atomic_load(&sn->stopping), expect = SVCN_JOB_WAITING;

		if (atomic_load(&j->state) == SVCN_JOB_DONE)
			return 0;
		if (now >= deadline_ns || stop) {
			if (atomic_compare_exchange_strong(&j->state, &expect, SVCN_JOB_ABANDONED))
				return stop ? -ESHUTDOWN : -ETIMEDOUT;
			return 0; /* delivered meanwhile */
		}
		until = deadline_ns - now > SVCN_JOB_POLL_MS * 1000000ull
			    ? now + SVCN_JOB_POLL_MS * 1000000ull
			    : deadline_ns;
		svcn_sem_wait_until(&j->sem, until);
	}
}

static void job_msg(struct svc_backend_msg *m, int cancel)
{
	struct svcn_job *j = (struct svcn_job *)m;
	struct svc_node *sn = j->sn;

	if (cancel || atomic_load(&sn->stopping)) {
		j->err = -ESHUTDOWN;
		svcn_job_deliver(cancel ? NULL : sn, j);
		return;
	}
	if (svcn_job_abandoned(j)) {
		svcn_job_put(j);
		return;
	}
	if (sn->njobs >= SVCN_MAX_JOBS) {
		j->err = -EBUSY;
		svcn_job_deliver(sn, j);
		return;
	}
	j->start(sn, j);
}

/* Post j (two references: the caller's and the owner's) and wait for it
 * until deadline_ns (see svcn_job_wait). The caller then drops its reference. */
int svcn_job_run(struct svc_node *sn, struct svcn_job *j, uint64_t deadline_ns)
{
	int err;

	if (svc_backend_on_loop(sn->backend)) {
		svcn_job_put(j); /* the owner cannot wait for itself */
		return -EDEADLK;
	}
	j->m.fn = job_msg;
	err = svc_backend_post(sn->backend, &j->m);
	if (err) {
		svcn_job_put(j); /* the owner's */
		return err;
	}
	return svcn_job_wait(sn, j, deadline_ns);
}

uint64_t svcn_tick(void *arg, uint64_t now)
{
	struct svc_node *sn = arg;
	struct svcn_job *j, *due = NULL;
	uint64_t next;

	svcn_ready_run(sn);
	if (now < sn->due_ns)
		return sn->due_ns;
	sn->due_ns = UINT64_MAX;
	next = svcn_ops_expire(sn, now);
	{
		uint64_t ns = svcn_strm_expire(sn, now);

		if (ns < next)
			next = ns;
	}
	/* Take the due jobs aside first: an expire may end other jobs (a
	 * load's calls) or start new ones. */
	for (j = sn->jobs; j; j = j->next) {
		if (now >= j->deadline_ns) {
			atomic_fetch_add(&j->refs, 1);
			j->dnext = due;
			due = j;
		} else if (j->deadline_ns < next) {
			next = j->deadline_ns;
		}
	}
	while ((j = due)) {
		due = j->dnext;
		if (!j->finished)
			j->expire(sn, j);
		svcn_job_put(j);
	}
	svcn_ready_run(sn);
	if (next < sn->due_ns)
		sn->due_ns = next;
	if (sn->due_ns != UINT64_MAX && sn->due_ns < now + SVCN_TICK_NS)
		sn->due_ns = now + SVCN_TICK_NS;
	return sn->due_ns;
}

void svcn_jobs_free(struct svc_node *sn)
{
	while (sn->jobs) {
		struct svcn_job *j = sn->jobs;

		j->err = -ESHUTDOWN;
		svcn_job_deliver(sn, j); /* unlists it */
	}
}
