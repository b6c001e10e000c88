/* SPDX-License-Identifier: MIT */
/*
 * svc_jobs.c: callers' jobs on the fabric's owner, the machinery shared by
 * lookups (svc_find.c), calls and the load generator (svc_calls.c), and
 * the owner's tick that drives their deadlines.
 */
#ifndef WEFT_SVC_JOBS_INT_H
#define WEFT_SVC_JOBS_INT_H

#include "svc_node_int.h"

/*
 * A job is a request a caller (control thread, gateway thread) hands to the
 * owner and waits for on its own semaphore, with a deadline; the owner
 * drives it (ops, backend calls, DHT results) and delivers its result.
 * Nothing is shared with other callers or packet workers; the owner never
 * waits for a caller (delivery is a compare-and-swap and a sem_post). A
 * caller whose deadline passes first abandons the job (compare-and-swap):
 * the owner ends it at its own deadline and frees it. */
struct svcn_job {
	struct svc_backend_msg m;     /* the post; first */
	struct svcn_job *next, *prev; /* sn->jobs while listed */
	struct svc_node *sn;
	atomic_int refs;  /* caller, owner, plus a DHT lookup or backend call in flight */
	atomic_int state; /* SVCN_JOB_WAITING, _DONE, _ABANDONED */
	sem_t sem;	  /* posted once: done */
	int listed;
	int finished;		/* the owner is done with it (result in place) */
	int err;		/* the result: 0 or -errno (the kind has the rest) */
	struct svcn_job *dnext; /* svcn_tick's list of due jobs */
	uint64_t deadline_ns;	/* the owner ends the job then (0: not listed) */
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
/* Deadlines are checked on the owner at most this often (10 ms): a job
 * or pass-through ends at most that late. */
#define SVCN_TICK_NS 10000000ull
/* A caller waits this much past the owner's deadline of its job, so that
 * the owner's answer (timeout included) comes first when it runs. */
#define SVCN_WAIT_SLACK_NS (3 * SVCN_TICK_NS)

/* j's references and state (refs: caller, owner, ...); the kind sets its
 * functions. */
void svcn_job_init(struct svcn_job *j, struct svc_node *sn, int refs);
/* Drop a reference: the last one frees the job (j->free). NULL-safe. */
void svcn_job_put(struct svcn_job *j);
/* The caller gave up on j (it reads no result). */
int svcn_job_abandoned(struct svcn_job *j);
/* On the owner: j has a deadline (its expire runs then); off the list. */
void svcn_job_list(struct svc_node *sn, struct svcn_job *j, uint64_t deadline_ns);
void svcn_job_unlist(struct svc_node *sn, struct svcn_job *j);
/* On the owner (sn NULL: the owner is gone): j's result is in place; the
 * caller, if still there, takes it. Drops the owner's reference. */
void svcn_job_deliver(struct svc_node *sn, struct svcn_job *j);
/* The caller's wait: 0 (delivered: read the result), -ETIMEDOUT or
 * -ESHUTDOWN (abandoned: the owner frees it). Never holds anything. */
int svcn_job_wait(struct svc_node *sn, struct svcn_job *j, uint64_t deadline_ns);
/* Post j (two references: the caller's and the owner's) and wait for it
 * until deadline_ns (see svcn_job_wait). The caller then drops its
 * reference. */
int svcn_job_run(struct svc_node *sn, struct svcn_job *j, uint64_t deadline_ns);
/* On the owner: tell the jobs of the ops done since the last call, end
 * jobs and pass-throughs past their deadline. Returns when to run again
 * (util_now_ns time, UINT64_MAX: nothing waits). The backend loop's tick. */
uint64_t svcn_tick(void *sn, uint64_t now_ns);
/* svc_node_free, once the owner's loop ended: end and free every job. */
void svcn_jobs_free(struct svc_node *sn);

#endif
