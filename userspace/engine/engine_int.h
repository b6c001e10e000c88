/* SPDX-License-Identifier: MIT */
/*
 * Engine internals shared by engine.c, wheel.c, cmdq.c and stats.c, and by
 * the unit tests (which drive the wheel and the command ring without
 * threads). Not a public header.
 */
#ifndef WEFT_ENGINE_INT_H
#define WEFT_ENGINE_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/engine.h"

/* ---- timer wheel: 1024 one-millisecond slots; a timer further out than
 * one revolution waits in its slot for its round (checked by expire_ms).
 * 1024 keeps the idle scan for the next deadline to 1024 pointer loads
 * while covering a second at full resolution. ---- */
#define ENGINE_WHEEL_SLOTS 1024
/* engine_stop: rounds of running commands left in stopped workers' queues */
#define ENGINE_DRAIN_ROUNDS 4

struct engine_wheel {
	struct engine_timer *slot[ENGINE_WHEEL_SLOTS];
	uint64_t now;	    /* last tick processed */
	unsigned int count; /* armed timers */
};

void engine_wheel_init(struct engine_wheel *wh, uint64_t now_ms);
void engine_wheel_add(struct engine_wheel *wh, struct engine_timer *t, uint64_t expire_ms);
void engine_wheel_cancel(struct engine_wheel *wh, struct engine_timer *t);
/* Fire every timer with expire_ms <= now_ms (in expiry-slot order), calling
 * t->fn(w, t->arg) after disarming it (the callback may re-arm). Returns the
 * number fired. */
unsigned int engine_wheel_advance(struct engine_wheel *wh, uint64_t now_ms,
				  struct engine_worker *w);
/* Milliseconds until the earliest possible expiry (a lower bound: the
 * caller may wake early, never late), or -1 when nothing is armed. */
int64_t engine_wheel_next(const struct engine_wheel *wh, uint64_t now_ms);

/* ---- bounded MPSC command ring (Vyukov's sequence-numbered cells) ---- */
struct engine_cmd_cell {
	size_t seq; /* atomic; stored less the cell's index, so the zeroed ring
		     * (a fresh mapping) is the initial state */
	engine_cmd_fn fn;
	void *arg;
};

struct engine_cmdq {
	struct engine_cmd_cell *cells; /* its own mapping, populated */
	size_t cells_len, mask;
	size_t head __attribute__((aligned(64))); /* producers, atomic */
	size_t tail __attribute__((aligned(64))); /* the one consumer */
	int efd;				  /* eventfd, or -1 */
	/* atomic: the consumer may be about to sleep (1 until its loop says
	 * otherwise): a producer signals the eventfd only then, so commands
	 * posted to a worker that is awake cost no system call and no extra
	 * wake-up (engine_cmdq_sleep / engine_cmdq_woke) */
	int sleepy;
};

/* size is rounded up to a power of two (>= 2). Returns 0 or -errno. */
int engine_cmdq_init(struct engine_cmdq *cq, unsigned int size, int with_eventfd);
void engine_cmdq_fini(struct engine_cmdq *cq);
/* Any thread. Returns 0 or -EAGAIN (full). Signals the eventfd when the
 * consumer may sleep (the first push after engine_cmdq_sleep). */
int engine_cmdq_push(struct engine_cmdq *cq, engine_cmd_fn fn, void *arg);
/* Consumer only. Returns 1 with fn/arg set, 0 when empty. */
int engine_cmdq_pop(struct engine_cmdq *cq, engine_cmd_fn *fn, void **arg);
/* Consumer only, before it waits on the eventfd: 0 when it may sleep
 * (every later push signals), 1 when a command is already queued (do not
 * sleep). engine_cmdq_woke after the wait: pushes stop signalling. */
int engine_cmdq_sleep(struct engine_cmdq *cq);
void engine_cmdq_woke(struct engine_cmdq *cq);

/* ---- the engine ---- */
struct engine_handler {
	uint16_t port;
	engine_handler_fn fn;
	void *arg;
};

struct engine_worker {
	struct engine_stats st __attribute__((aligned(64))); /* single writer */
	struct engine *eng;
	unsigned int idx;
	pthread_t thread;
	int thread_ok;
	struct io_queue *q;
	uint64_t now, now_us;
	uint64_t pass; /* loop passes begun (engine_worker_pass) */
	uint64_t mono_ns; /* CLOCK_MONOTONIC at the pass start: the filter's now */
	struct engine_wheel wheel;
	struct engine_timer *near;	   /* microsecond timers (few) */
	struct engine_timer *near_due[64]; /* run_near: due ones being fired */
	unsigned int near_ndue;
	struct engine_timer *defer_head, *defer_tail;
	struct engine_cmdq cmdq;
	struct io_pkt *rx;
	struct io_txmsg *txm;
	uint8_t *txbuf;
	unsigned int ntx;
	uint16_t ip_id;
	/* engine_host: a loop run every pass, woken by host_fd */
	int (*host_step)(void *arg, int ready, int64_t *next_us);
	void *host_arg;
	uint64_t host_due_us; /* its next deadline (worker clock), 0: none */
};

struct engine {
	struct engine_opts opts;
	uint16_t ports[ENGINE_MAX_HANDLERS];
	struct engine_handler handlers[ENGINE_MAX_HANDLERS];
	unsigned int nhandlers;
	struct engine_handler range; /* fn NULL: no range handler */
	const struct io_backend *be;
	void *be_ctx;
	unsigned int nworkers;
	struct engine_worker *workers[ENGINE_MAX_WORKERS];
	int cpus[ENGINE_MAX_WORKERS]; /* opts.cpus, copied (opts.cpus points here) */
	int stop;		      /* atomic */
	int running;		      /* atomic */
	int halted;		      /* atomic: engine_stop ran, engine_call refuses */
};

/* Size of one staged tx slot: a full Ethernet frame; bigger datagrams are
 * sent in place after a flush. */
#define ENGINE_TX_SLOT 2048

static inline void engine_st_add(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

#endif
