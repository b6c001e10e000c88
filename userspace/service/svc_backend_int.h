/* SPDX-License-Identifier: MIT */
/*
 * The backend forwarder's handle, shared by its two files: backend.c (the
 * loop, calls, pass-throughs, the pool) and backend_mq.c (the message
 * queue other threads post to, the wake-up, the watch, the counters).
 * Nothing else includes it.
 */
#ifndef WEFT_SVC_BACKEND_INT_H
#define WEFT_SVC_BACKEND_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "weft/svc_backend.h"

struct bjob;
struct bpool;
struct bsvc;

struct svc_backend {
	pthread_mutex_t mu; /* submissions and counts */
	struct bjob *pend_head, *pend_tail;
	/* 1 once a job is linked or stop set (under mu): the loop's turn
	 * takes mu only then, not on every pass of the packet worker that
	 * hosts it */
	atomic_int pend_any;
	struct bsvc *svcs;
	uint32_t inflight;
	uint32_t max_inflight, max_per_service, timeout_ms, max_response;
	uint32_t pool_conns, idle_ms;
	int stop;
	int epfd, evfd;
	pthread_t th;
	atomic_int th_on;   /* th is the loop's thread (hosted: from its first turn) */
	int hosted;	    /* svc_backend_opts.hosted: no thread of its own */
	uint64_t idle_next; /* loop thread only: pools_expire's next */
	struct bjob *active; /* loop thread only */
	struct bpool *pools; /* loop thread only */
	struct bjob *redo;   /* loop thread only: calls to start again */
	int kick;	     /* loop thread only: pending work, do not sleep */
	int ep_full;	     /* loop thread only: the last epoll_wait filled its array */
	uint64_t stat_busy, stat_timeout, stat_protocol;
	/* loop thread writes, svc_backend_stats reads (relaxed) */
	_Atomic uint64_t st_opened, st_reused;
	_Atomic uint32_t st_open, st_idle;
	uint64_t (*tick)(void *ctx, uint64_t now_ns); /* loop thread only */
	void *tick_ctx;
	uint64_t tick_next_ms; /* when tick wants to run again */
	/* Posted messages (svc_backend_post): D. Vyukov's intrusive MPSC
	 * queue; head is where producers link, tail the consumer's end. */
	struct svc_backend_msg *_Atomic mq_head;
	struct svc_backend_msg *mq_tail; /* loop thread (and free) only */
	struct svc_backend_msg mq_stub;
	atomic_int mq_wake;  /* a wake-up is on its way: producers skip theirs */
	atomic_int mq_open;  /* the loop takes messages */
	atomic_uint mq_busy; /* producers inside svc_backend_post */
	struct { /* svc_backend_watch: one more descriptor */
		void (*fn)(void *ctx);
		void *ctx;
	} watch;
};

/* backend_mq.c */
void svc_bk_wake(struct svc_backend *b);		/* the eventfd, any thread */
void svc_bk_mq_run(struct svc_backend *b, int cancel); /* the loop (or free) */

#endif
