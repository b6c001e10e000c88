// SPDX-License-Identifier: MIT
/*
 * The lowest part of the service fabric (docs/SERVICE.md, "Threads and
 * owners"): how any thread reaches the fabric's owner (the backend
 * thread, whose state struct svc_node is): svcn_owner_run (run a function
 * there and wait, with a deadline), svcn_owner_call (post a completion
 * there, from a packet worker), the workers' count on the shim; and the
 * settings every part reads. The hub (svc_node.c) and every part use it;
 * it calls none of them.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc_node_int.h"
#include "weft/svc_msg.h"
#include "weft/util.h"

uint64_t svcn_now_ns(void)
{
	return util_now_ns();
}

/* Payload cap of calls in and out: svc.max_payload, or the message default
 * for a node created without config_defaults(). */
uint32_t svcn_max_payload(const struct svc_node *sn)
{
	return sn->cfg.svc_max_payload ? sn->cfg.svc_max_payload : SVC_MSG_DEFAULT_MAX_PAYLOAD;
}

uint32_t svcn_max_timeout(const struct svc_node *sn)
{
	return sn->cfg.svc_max_timeout_ms ? sn->cfg.svc_max_timeout_ms : SVC_NODE_MAX_TIMEOUT_MS;
}

uint32_t svcn_clamp_timeout(const struct svc_node *sn, uint32_t ms)
{
	uint32_t max = svcn_max_timeout(sn);

	if (!ms)
		ms = SVC_NODE_CALL_TIMEOUT_MS;
	return ms > max ? max : ms;
}

size_t svcn_http_buffer(const struct svc_node *sn)
{
	return sn->cfg.svc_http_buffer ? sn->cfg.svc_http_buffer : SVC_NODE_HTTP_BUFFER;
}

uint32_t svcn_owner_queue(const struct svc_node *sn)
{
	return sn->cfg.svc_owner_queue ? sn->cfg.svc_owner_queue : SVC_NODE_OWNER_QUEUE;
}

unsigned int svcn_hash(uint64_t a, int64_t b)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (uint64_t)b * 0xc2b2ae3d27d4eb4full;

	h ^= h >> 31;
	return (unsigned int)(h & (SVCN_HASH - 1));
}

/* ------------------------------------------------------ posts from workers */

/* Workers count themselves in sh->active while they read live: the hub's
 * svc_node_free waits for none to be inside before the owner goes. */
struct svc_node *svcn_shim_enter(struct svcn_shim *sh)
{
	struct svc_node *sn;

	atomic_fetch_add(&sh->active, 1);
	sn = atomic_load(&sh->live);
	if (!sn)
		atomic_fetch_sub(&sh->active, 1);
	return sn;
}

void svcn_shim_leave(struct svcn_shim *sh)
{
	atomic_fetch_sub(&sh->active, 1);
}

void svcn_shim_put(struct svcn_shim *sh)
{
	if (atomic_fetch_sub(&sh->refs, 1) == 1)
		free(sh);
}

struct svcn_call {
	struct svc_backend_msg m;
	struct svcn_shim *sh;
	void (*fn)(void *arg, struct svc_node *sn);
	void *arg;
};

static void call_run(struct svc_backend_msg *m, int cancel)
{
	struct svcn_call *c = (struct svcn_call *)m;

	c->fn(c->arg, cancel ? NULL : c->sh->sn);
	free(c);
}

void svcn_owner_call(struct svcn_shim *sh, void (*fn)(void *arg, struct svc_node *sn), void *arg)
{
	struct svc_node *sn = svcn_shim_enter(sh);
	struct svcn_call *c = sn ? malloc(sizeof(*c)) : NULL;

	if (c) {
		c->m.fn = call_run;
		c->sh = sh;
		c->fn = fn;
		c->arg = arg;
		if (!svc_backend_post(sn->backend, &c->m))
			c = (void *)1; /* posted */
		else
			free(c), c = NULL;
	}
	if (sn)
		svcn_shim_leave(sh);
	if (!c)
		fn(arg, NULL);
}

/* ---------------------------------------------------- synchronous runs */

/* A run of fn on the owner for a waiting thread. Two references (waiter,
 * queue). The owner starts fn only if it moves state from PENDING to
 * RUNNING; a waiter whose deadline passes moves it from PENDING to
 * CANCELLED and leaves, so fn never starts on its freed arguments. Once
 * fn is RUNNING the waiter stays until DONE: fn never blocks. */
enum { SVCN_RUN_PENDING, SVCN_RUN_RUNNING, SVCN_RUN_DONE, SVCN_RUN_CANCELLED };

struct svcn_run {
	struct svc_backend_msg m; /* first */
	struct svc_node *sn;
	void (*fn)(struct svc_node *sn, void *arg);
	void *arg;
	sem_t sem; /* posted once, when DONE: the owner never waits on the caller */
	_Atomic int state;
	atomic_int refs;
	int err; /* -ESHUTDOWN: the owner went away before running fn */
};

static void run_put(struct svcn_run *r)
{
	if (atomic_fetch_sub(&r->refs, 1) == 1) {
		sem_destroy(&r->sem);
		free(r);
	}
}

static void run_msg(struct svc_backend_msg *m, int cancel)
{
	struct svcn_run *r = (struct svcn_run *)m;
	int expect = SVCN_RUN_PENDING;

	if (atomic_compare_exchange_strong(&r->state, &expect, SVCN_RUN_RUNNING)) {
		if (cancel || atomic_load(&r->sn->stopping))
			r->err = -ESHUTDOWN;
		else
			r->fn(r->sn, r->arg);
		atomic_store(&r->state, SVCN_RUN_DONE);
		sem_post(&r->sem);
	}
	run_put(r);
}

int svcn_sem_wait_until(sem_t *sem, uint64_t deadline_ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(deadline_ns / 1000000000ull);
	ts.tv_nsec = (long)(deadline_ns % 1000000000ull);
	/* util_now_ns is CLOCK_MONOTONIC */
	while (sem_clockwait(sem, CLOCK_MONOTONIC, &ts))
		if (errno != EINTR)
			return -errno;
	return 0;
}

int svcn_owner_run(struct svc_node *sn, void (*fn)(struct svc_node *sn, void *arg), void *arg,
		   uint32_t timeout_ms)
{
	struct svcn_run *r;
	uint64_t dl;
	int err, expect;

	if (svc_backend_on_loop(sn->backend)) {
		fn(sn, arg); /* already the owner (a nested call) */
		return 0;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->m.fn = run_msg;
	r->sn = sn;
	r->fn = fn;
	r->arg = arg;
	sem_init(&r->sem, 0, 0);
	atomic_init(&r->state, SVCN_RUN_PENDING);
	atomic_init(&r->refs, 2);
	err = svc_backend_post(sn->backend, &r->m);
	if (err) {
		atomic_store(&r->refs, 1);
		run_put(r);
		return err;
	}
	dl = svcn_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	if (svcn_sem_wait_until(&r->sem, dl)) {
		expect = SVCN_RUN_PENDING;
		if (atomic_compare_exchange_strong(&r->state, &expect, SVCN_RUN_CANCELLED)) {
			run_put(r);
			return -ETIMEDOUT;
		}
		/* Running: fn never blocks, it ends soon. */
		while (sem_wait(&r->sem) && errno == EINTR)
			;
	}
	/* The owner stored DONE before its sem_post: this load orders its
	 * writes (fn's results) before our reads, for any memory model
	 * checker that does not follow semaphores. */
	while (atomic_load(&r->state) != SVCN_RUN_DONE)
		sched_yield();
	err = r->err;
	run_put(r);
	return err;
}
