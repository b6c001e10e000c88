// SPDX-License-Identifier: MIT
/*
 * Engine: worker threads, demux by UDP port, tx staging, timers and the
 * cross-thread command queue. See include/weft/engine.h.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "weft/log.h"
#include "weft/util.h"

void engine_opts_default(struct engine_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->mode = IO_MODE_URING;
	opts->workers = 1;
	opts->xskmap_fd = -1;
	opts->batch = 64;
	opts->cmdq_size = 256;
	opts->tx_queue = 256;
	opts->uring_gro = 1;
	opts->uring_gso = 1;
}

unsigned int engine_workers(const struct engine *eng)
{
	return eng->nworkers;
}

enum io_mode engine_mode(const struct engine *eng)
{
	return eng->opts.mode;
}

size_t engine_rx_max_payload(const struct engine *eng)
{
	switch (eng->opts.mode) {
	case IO_MODE_URING:
		return eng->opts.uring_gro ? 65527 : 2048;
	case IO_MODE_XDP:
		return 2048 - 14 - 40 - 8;
	default:
		return 65527;
	}
}

uint64_t engine_now_ns(const struct engine *eng)
{
	return eng->opts.clock ? eng->opts.clock(eng->opts.clock_arg) : util_now_ns();
}

int engine_clock_is_own(const struct engine *eng)
{
	return eng && eng->opts.clock;
}

int engine_local_addr(const struct engine *eng, const struct io_addr *dst, struct io_addr *local)
{
	if (!eng->be->local_addr)
		return -EOPNOTSUPP;
	return eng->be->local_addr(eng->be_ctx, dst, local);
}

int engine_route_mtu(const struct engine *eng, const struct io_addr *dst)
{
	return eng->be->route_mtu ? eng->be->route_mtu(eng->be_ctx, dst) : 0;
}

/* Loop time of the pass, from the engine's clock, read once per pass: the
 * receive batch, its handlers and the filter use it instead of a clock
 * read per datagram. The filter's time is always CLOCK_MONOTONIC (the
 * guard's bans and buckets are), also when the engine's clock is a
 * simulated one. */
static void worker_tick(struct engine_worker *w)
{
	const struct engine *eng = w->eng;
	uint64_t ns;

	if (eng->opts.clock) {
		ns = eng->opts.clock(eng->opts.clock_arg);
		w->mono_ns = eng->opts.filter ? util_now_ns() : 0;
	} else {
		ns = util_now_ns();
		w->mono_ns = ns;
	}
	w->now_us = ns / 1000;
	w->now = w->now_us / 1000;
}

unsigned int engine_worker_index(const struct engine_worker *w)
{
	return w->idx;
}

struct engine *engine_worker_engine(struct engine_worker *w)
{
	return w->eng;
}

uint64_t engine_worker_now(const struct engine_worker *w)
{
	return w->now;
}

uint64_t engine_worker_now_us(const struct engine_worker *w)
{
	return w->now_us;
}

uint64_t engine_worker_pass(const struct engine_worker *w)
{
	return w->pass;
}

static void worker_free(struct engine *eng, struct engine_worker *w)
{
	if (!w)
		return;
	if (w->q)
		eng->be->close(w->q);
	engine_cmdq_fini(&w->cmdq);
	free(w->rx);
	free(w->txm);
	free(w->txbuf);
	free(w);
}

void engine_free(struct engine *eng)
{
	unsigned int i;
	engine_cmd_fn fn;
	void *arg;

	if (!eng)
		return;
	engine_stop(eng);
	for (i = 0; i < eng->nworkers; i++) {
		struct engine_worker *w = eng->workers[i];

		/* Commands posted after the workers stopped still run (once,
		 * here), so whatever they own is released. */
		while (w && w->cmdq.cells && engine_cmdq_pop(&w->cmdq, &fn, &arg))
			fn(w, arg);
		worker_free(eng, w);
	}
	if (eng->be && eng->be->fini)
		eng->be->fini(eng->be_ctx);
	free(eng);
}

int engine_new(struct engine **out, const struct engine_opts *opts)
{
	struct io_opts io;
	struct engine *eng;
	unsigned int i;
	int err, nq;

	*out = NULL;
	if (!opts || !opts->ports || !opts->nports || opts->nports > ENGINE_MAX_HANDLERS ||
	    opts->workers > ENGINE_MAX_WORKERS)
		return -EINVAL;
	if (opts->mode == IO_MODE_XDP && !opts->ifname)
		return -EINVAL;
	if (opts->mode == IO_MODE_MEM && !opts->sim_host)
		return -EINVAL;
	for (i = 0; i < opts->nports; i++)
		if (!opts->ports[i])
			return -EINVAL;
	if ((opts->range_min || opts->range_max) &&
	    (!opts->range_min || opts->range_max < opts->range_min ||
	     opts->range_max - opts->range_min >= ENGINE_MAX_RANGE))
		return -EINVAL;
	eng = calloc(1, sizeof(*eng));
	if (!eng)
		return -ENOMEM;
	eng->opts = *opts;
	memcpy(eng->ports, opts->ports, opts->nports * sizeof(uint16_t));
	eng->opts.ports = eng->ports;
	if (!eng->opts.workers)
		eng->opts.workers = 1;
	if (!eng->opts.batch)
		eng->opts.batch = 64;
	if (!eng->opts.cmdq_size)
		eng->opts.cmdq_size = 256;
	if (!eng->opts.tx_queue)
		eng->opts.tx_queue = 256;
	if (eng->opts.tx_queue < eng->opts.batch)
		eng->opts.tx_queue = eng->opts.batch;
	eng->opts.ifname = NULL; /* not kept: the caller's string */
	eng->opts.bind_addr = NULL;
	eng->opts.steer_prog = NULL; /* read below, during the opens, only */
	if (opts->cpus) {
		memcpy(eng->cpus, opts->cpus, eng->opts.workers * sizeof(int));
		eng->opts.cpus = eng->cpus;
	}
	eng->be = io_backend_get(opts->mode);
	if (!eng->be) {
		free(eng);
		return -EINVAL;
	}

	io_opts_default(&io);
	io.mode = opts->mode;
	io.ports = eng->ports;
	io.nports = opts->nports;
	io.range_min = opts->range_min;
	io.range_max = opts->range_max;
	io.batch = eng->opts.batch;
	io.bind_addr = opts->bind_addr;
	io.uring_gro = opts->uring_gro;
	io.uring_gso = opts->uring_gso;
	io.uring_shrink_ms = opts->uring_shrink_ms;
	io.steer_prog = opts->steer_prog;
	io.steer_port = opts->steer_port;
	io.ifname = opts->ifname;
	io.xskmap_fd = opts->xskmap_fd;
	io.xskmap_base = opts->xskmap_fd >= 0 ? opts->xskmap_base : 0;
	io.xsk_frames = opts->xsk_frames;
	io.xsk_first_queue = opts->xdp_first_queue;
	io.xdp_generic = opts->xdp_generic;
	io.sim_host = opts->sim_host;
	nq = eng->be->init(&eng->be_ctx, &io, eng->opts.workers);
	if (nq < 0) {
		err = nq;
		eng->be = NULL;
		goto fail;
	}
	if ((unsigned int)nq < eng->opts.workers) {
		log_info("engine", "%s: %d queue(s) available, using %d worker(s) instead of %u",
			 eng->be->name, nq, nq, eng->opts.workers);
		eng->opts.workers = (unsigned int)nq;
	}
	for (i = 0; i < eng->opts.workers; i++) {
		struct engine_worker *w = calloc(1, sizeof(*w));

		if (!w) {
			err = -ENOMEM;
			goto fail;
		}
		eng->workers[i] = w;
		eng->nworkers = i + 1;
		w->eng = eng;
		w->idx = i;
		w->cmdq.efd = -1;
		err = engine_cmdq_init(&w->cmdq, eng->opts.cmdq_size, 1);
		if (err)
			goto fail;
		w->rx = calloc(eng->opts.batch, sizeof(*w->rx));
		w->txm = calloc(eng->opts.tx_queue, sizeof(*w->txm));
		w->txbuf = malloc((size_t)eng->opts.tx_queue * ENGINE_TX_SLOT);
		if (!w->rx || !w->txm || !w->txbuf) {
			err = -ENOMEM;
			goto fail;
		}
		worker_tick(w);
		engine_wheel_init(&w->wheel, w->now);
		io.wake_fd = w->cmdq.efd;
		io.stats = &w->st.io;
		err = eng->be->open(&w->q, eng->be_ctx, &io, i);
		if (err)
			goto fail;
	}
	*out = eng;
	return 0;
fail:
	engine_free(eng);
	return err;
}

int engine_register(struct engine *eng, uint16_t port, engine_handler_fn fn, void *arg)
{
	unsigned int i;
	int served = 0;

	if (!eng || !fn)
		return -EINVAL;
	if (__atomic_load_n(&eng->running, __ATOMIC_ACQUIRE))
		return -EBUSY;
	for (i = 0; i < eng->opts.nports; i++)
		served |= eng->ports[i] == port;
	if (!served)
		return -EINVAL;
	for (i = 0; i < eng->nhandlers; i++)
		if (eng->handlers[i].port == port)
			return -EEXIST;
	eng->handlers[eng->nhandlers].port = port;
	eng->handlers[eng->nhandlers].fn = fn;
	eng->handlers[eng->nhandlers].arg = arg;
	eng->nhandlers++;
	return 0;
}

int engine_register_range(struct engine *eng, uint16_t min, uint16_t max, engine_handler_fn fn,
			  void *arg)
{
	if (!eng || !fn)
		return -EINVAL;
	if (__atomic_load_n(&eng->running, __ATOMIC_ACQUIRE))
		return -EBUSY;
	if (!eng->opts.range_min || min != eng->opts.range_min || max != eng->opts.range_max)
		return -EINVAL;
	if (eng->range.fn)
		return -EEXIST;
	eng->range.fn = fn;
	eng->range.arg = arg;
	return 0;
}

/* ---- tx ---- */

int engine_flush(struct engine_worker *w)
{
	int r;

	if (!w->ntx)
		return 0;
	r = w->eng->be->tx(w->q, w->txm, w->ntx);
	w->ntx = 0;
	return r;
}

int engine_send(struct engine_worker *w, const struct io_addr *dst, const struct io_addr *src,
		const void *data, size_t len)
{
	return engine_send_ttl(w, dst, src, data, len, 0);
}

int engine_send_ttl(struct engine_worker *w, const struct io_addr *dst, const struct io_addr *src,
		    const void *data, size_t len, uint8_t ttl)
{
	struct io_txmsg *m;

	if (!w || !dst || (!data && len) || (dst->family != AF_INET && dst->family != AF_INET6))
		return -EINVAL;
	if (len > 65507)
		return -EMSGSIZE;
	if (len > ENGINE_TX_SLOT) {
		struct io_txmsg big;

		/* Sent in place, after what is staged to keep the order. */
		engine_flush(w);
		memset(&big, 0, sizeof(big));
		big.data = data;
		big.len = (uint32_t)len;
		big.dst = *dst;
		big.ttl = ttl;
		if (src)
			big.src = *src;
		return w->eng->be->tx(w->q, &big, 1) == 1 ? 0 : -EMSGSIZE;
	}
	if (w->ntx == w->eng->opts.tx_queue)
		engine_flush(w);
	m = &w->txm[w->ntx];
	memcpy(w->txbuf + (size_t)w->ntx * ENGINE_TX_SLOT, data, len);
	m->data = w->txbuf + (size_t)w->ntx * ENGINE_TX_SLOT;
	m->len = (uint32_t)len;
	m->dst = *dst;
	m->ttl = ttl;
	if (src)
		m->src = *src;
	else
		memset(&m->src, 0, sizeof(m->src));
	w->ntx++;
	return 0;
}

int engine_send_burst(struct engine_worker *w, const struct io_addr *dst, const struct io_addr *src,
		      const void *data, size_t len, size_t seg)
{
	struct io_txmsg m[64];
	const uint8_t *p = data;
	size_t off = 0;
	unsigned int n;
	int sent = 0, r;

	if (!w || !dst || !data || !seg || seg > 65507 ||
	    (dst->family != AF_INET && dst->family != AF_INET6))
		return -EINVAL;
	/* In place, after what is staged, so the order on the wire holds. */
	engine_flush(w);
	while (off < len) {
		for (n = 0; n < 64 && off < len; n++, off += seg) {
			memset(&m[n], 0, sizeof(m[n]));
			m[n].data = p + off;
			m[n].len = (uint32_t)(len - off < seg ? len - off : seg);
			m[n].dst = *dst;
			if (src)
				m[n].src = *src;
		}
		r = w->eng->be->tx(w->q, m, n);
		if (r > 0)
			sent += r;
	}
	return sent;
}

/* ---- timers ---- */

static void near_unlink(struct engine_worker *w, struct engine_timer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		w->near = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	t->armed = 0;
}

/* Take t off the deferred list (short: a walk is fine). */
static void defer_unlink(struct engine_worker *w, struct engine_timer *t)
{
	struct engine_timer **pp, *prev = NULL;

	for (pp = &w->defer_head; *pp; prev = *pp, pp = &(*pp)->dnext)
		if (*pp == t) {
			*pp = t->dnext;
			if (w->defer_tail == t)
				w->defer_tail = prev;
			break;
		}
	t->dnext = NULL;
	t->deferred = 0;
}

/* armed value of a near timer taken off the list to fire in this pass */
#define NEAR_FIRING (-2)

/* Out of the wheel, the near list or the deferred list. */
static void timer_disarm(struct engine_worker *w, struct engine_timer *t)
{
	if (t->armed > 0)
		engine_wheel_cancel(&w->wheel, t);
	else if (t->armed == -1)
		near_unlink(w, t);
	else if (t->armed == NEAR_FIRING) {
		/* run_near skips it (and never touches it again: the owner may
		 * free it as soon as this returns) */
		for (unsigned int i = 0; i < w->near_ndue; i++)
			if (w->near_due[i] == t)
				w->near_due[i] = NULL;
		t->armed = 0;
	}
	if (t->deferred)
		defer_unlink(w, t);
}

void engine_timer_add(struct engine_worker *w, struct engine_timer *t, uint64_t delay_ms)
{
	timer_disarm(w, t);
	engine_wheel_add(&w->wheel, t, w->now + delay_ms);
}

void engine_timer_add_us(struct engine_worker *w, struct engine_timer *t, uint64_t delay_us)
{
	if (delay_us >= ENGINE_NEAR_US) {
		/* The wheel fires at whole ms of loop time: round the absolute
		 * deadline up so the timer is never early. */
		engine_timer_add(w, t, (w->now_us + delay_us + 999) / 1000 - w->now);
		return;
	}
	timer_disarm(w, t);
	t->expire_us = w->now_us + delay_us;
	t->prev = NULL;
	t->next = w->near;
	if (t->next)
		t->next->prev = t;
	w->near = t;
	t->armed = -1;
}

void engine_defer(struct engine_worker *w, struct engine_timer *t)
{
	if (t->deferred)
		return;
	timer_disarm(w, t);
	t->deferred = 1;
	t->dnext = NULL;
	if (w->defer_tail)
		w->defer_tail->dnext = t;
	else
		w->defer_head = t;
	w->defer_tail = t;
}

void engine_timer_cancel(struct engine_worker *w, struct engine_timer *t)
{
	timer_disarm(w, t);
}

/* Fire the microsecond timers due now. The due ones are taken off the
 * list first: one a callback re-arms for "now" fires in the next pass (as
 * the wheel does), never again in this one, so a timer that keeps finding
 * its deadline passed cannot spin the loop; one a callback cancels or
 * re-arms before its turn does not fire. */
static unsigned int run_near(struct engine_worker *w)
{
	struct engine_timer *t, *n;
	unsigned int i, fired = 0;

	w->near_ndue = 0;
	for (t = w->near; t && w->near_ndue < 64; t = n) {
		n = t->next;
		if (t->expire_us > w->now_us)
			continue;
		near_unlink(w, t);
		t->armed = NEAR_FIRING;
		w->near_due[w->near_ndue++] = t;
	}
	for (i = 0; i < w->near_ndue; i++) {
		t = w->near_due[i];
		if (!t)
			continue; /* cancelled or re-armed by an earlier callback */
		w->near_due[i] = NULL;
		t->armed = 0;
		fired++;
		t->fn(w, t->arg);
	}
	w->near_ndue = 0;
	return fired;
}

/* Run the deferred list, including what callbacks defer meanwhile
 * (bounded, so a callback that always re-defers cannot spin the pass). */
static unsigned int run_deferred(struct engine_worker *w)
{
	unsigned int ran = 0;
	struct engine_timer *t;

	while ((t = w->defer_head) && ran < 1024) {
		w->defer_head = t->dnext;
		if (!w->defer_head)
			w->defer_tail = NULL;
		t->dnext = NULL;
		t->deferred = 0;
		ran++;
		t->fn(w, t->arg);
	}
	return ran;
}

/* Microseconds until the earliest near timer, or -1. */
static int64_t near_next_us(const struct engine_worker *w)
{
	const struct engine_timer *t;
	int64_t best = -1;

	for (t = w->near; t; t = t->next) {
		int64_t d = t->expire_us > w->now_us ? (int64_t)(t->expire_us - w->now_us) : 0;

		if (best < 0 || d < best)
			best = d;
	}
	return best;
}

/* ---- command queue ---- */

int engine_call(struct engine *eng, unsigned int worker, engine_cmd_fn fn, void *arg)
{
	struct engine_worker *w;
	int r;

	if (!eng || !fn || worker >= eng->nworkers)
		return -EINVAL;
	if (__atomic_load_n(&eng->halted, __ATOMIC_ACQUIRE))
		return -ESHUTDOWN;
	w = eng->workers[worker];
	r = engine_cmdq_push(&w->cmdq, fn, arg);
	if (r == -EAGAIN)
		__atomic_fetch_add(&w->st.cmd_full, 1, __ATOMIC_RELAXED);
	return r;
}

enum { SYNC_PENDING, SYNC_RUNNING, SYNC_DONE, SYNC_CANCELLED };

struct sync_call {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int state; /* atomic */
	int refs;  /* atomic */
	engine_cmd_fn fn;
	void *arg;
};

static void sync_put(struct sync_call *s)
{
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		free(s);
	}
}

static void sync_trampoline(struct engine_worker *w, void *arg)
{
	struct sync_call *s = arg;
	int expect = SYNC_PENDING;

	if (__atomic_compare_exchange_n(&s->state, &expect, SYNC_RUNNING, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		s->fn(w, s->arg);
		pthread_mutex_lock(&s->mu);
		__atomic_store_n(&s->state, SYNC_DONE, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	sync_put(s);
}

int engine_call_sync(struct engine *eng, unsigned int worker, engine_cmd_fn fn, void *arg,
		     int timeout_ms)
{
	pthread_condattr_t ca;
	struct sync_call *s;
	struct timespec dl;
	int r, expect;

	if (!eng || !fn || worker >= eng->nworkers)
		return -EINVAL;
	if (!__atomic_load_n(&eng->running, __ATOMIC_ACQUIRE))
		return -ESHUTDOWN;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	s->fn = fn;
	s->arg = arg;
	s->refs = 2;
	r = engine_call(eng, worker, sync_trampoline, s);
	if (r) {
		s->refs = 1;
		sync_put(s);
		return r;
	}
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->mu);
	r = 0;
	while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SYNC_DONE) {
		if (r == ETIMEDOUT) {
			expect = SYNC_PENDING;
			if (__atomic_compare_exchange_n(&s->state, &expect, SYNC_CANCELLED, 0,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				pthread_mutex_unlock(&s->mu);
				sync_put(s);
				return -ETIMEDOUT;
			}
			/* Already running: it finishes soon, wait for it. */
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		r = pthread_cond_timedwait(&s->cv, &s->mu, &dl);
	}
	pthread_mutex_unlock(&s->mu);
	sync_put(s);
	return 0;
}

/* ---- the worker loop ---- */

static unsigned int batch_bucket(unsigned int n)
{
	unsigned int b = 0;

	while (n > 1 && b < ENGINE_BATCH_BUCKETS - 1) {
		n >>= 1;
		b++;
	}
	return b;
}

static unsigned int run_cmds(struct engine_worker *w, unsigned int max)
{
	engine_cmd_fn fn;
	unsigned int n = 0;
	void *arg;

	while (n < max && engine_cmdq_pop(&w->cmdq, &fn, &arg)) {
		fn(w, arg);
		n++;
	}
	if (n)
		engine_st_add(&w->st.cmds, n);
	return n;
}

static void demux(struct engine_worker *w, unsigned int n)
{
	struct engine *eng = w->eng;
	unsigned int i, h;

	for (i = 0; i < n; i++) {
		const struct io_pkt *p = &w->rx[i];

		if (eng->opts.filter && eng->opts.filter(eng->opts.filter_arg, p, w->mono_ns)) {
			engine_st_add(&w->st.drop_filter, 1);
			continue;
		}
		for (h = 0; h < eng->nhandlers; h++)
			if (eng->handlers[h].port == p->dst.port)
				break;
		if (h == eng->nhandlers && eng->range.fn && p->dst.port >= eng->opts.range_min &&
		    p->dst.port <= eng->opts.range_max) {
			eng->range.fn(w, p, eng->range.arg);
			continue;
		}
		if (h == eng->nhandlers) {
			engine_st_add(&w->st.drop_no_handler, 1);
			continue;
		}
		eng->handlers[h].fn(w, p, eng->handlers[h].arg);
	}
}

/* engine_pass_end: the hook of the pass this thread is running. */
static __thread struct {
	int in_pass;
	void (*fn)(void *arg);
	void *arg;
} pass_hook;

int engine_pass_end(void (*fn)(void *arg), void *arg)
{
	if (!pass_hook.in_pass)
		return -ENOENT;
	if (pass_hook.fn)
		return pass_hook.fn == fn && pass_hook.arg == arg ? 0 : -EBUSY;
	pass_hook.fn = fn;
	pass_hook.arg = arg;
	return 1;
}

static void pass_hook_run(void)
{
	void (*fn)(void *arg) = pass_hook.fn;

	pass_hook.in_pass = 0;
	pass_hook.fn = NULL;
	if (fn)
		fn(pass_hook.arg);
}

/* The hosted loop's turn (engine_host); 1 when it did work. Its writes
 * to QUIC are commands on this worker: the next pass runs them without
 * a sleep in between. */
static int host_run(struct engine_worker *w)
{
	const struct io_backend *be = w->eng->be;
	int64_t next = -1;
	int ready = be->watch_fired ? be->watch_fired(w->q) : 1;
	int busy = w->host_step(w->host_arg, ready, &next);

	w->host_due_us = next < 0 ? 0 : engine_worker_now_us(w) + (uint64_t)next;
	return busy;
}

int engine_host(struct engine *eng, unsigned int worker, int fd,
		int (*step)(void *arg, int ready, int64_t *next_us), void *arg)
{
	struct engine_worker *w;
	int err;

	if (!eng || !step || fd < 0 || worker >= eng->nworkers)
		return -EINVAL;
	if (!eng->be->watch)
		return -EOPNOTSUPP;
	w = eng->workers[worker];
	if (__atomic_load_n(&eng->running, __ATOMIC_ACQUIRE) || w->host_step)
		return -EBUSY;
	err = eng->be->watch(w->q, fd);
	if (err)
		return err;
	w->host_step = step;
	w->host_arg = arg;
	return 0;
}

/* One pass of the loop; returns 1 when it did work (then the caller
 * must not wait before the next pass). */
static int worker_pass(struct engine_worker *w)
{
	struct engine *eng = w->eng;
	const struct io_backend *be = eng->be;
	unsigned int fired, cmds;
	int n;

	pass_hook.in_pass = 1;
	w->pass++;
	worker_tick(w);
	engine_st_add(&w->st.loops, 1);
	n = be->rx(w->q, w->rx, eng->opts.batch);
	if (n > 0) {
		engine_st_add(&w->st.rx_batch_hist[batch_bucket((unsigned int)n)], 1);
		demux(w, (unsigned int)n);
		be->rx_done(w->q);
	}
	fired = engine_wheel_advance(&w->wheel, w->now, w);
	fired += run_near(w);
	if (fired)
		engine_st_add(&w->st.timers, fired);
	/* as many as the ring holds: every command posted before this stage
	 * runs in it (engine_worker_pass) */
	cmds = run_cmds(w, (unsigned int)w->cmdq.mask + 1);
	if (run_deferred(w))
		fired++;
	if (w->host_step && host_run(w))
		fired++;
	engine_flush(w);
	/* after the flush: a thread the hook wakes may take this CPU, and
	 * the pass's packets are on their way by then */
	pass_hook_run();
	return n > 0 || fired || cmds || w->defer_head;
}

/* Microseconds until the worker's next timer (wheel or near), -1: none. */
static int64_t worker_next_us(const struct engine_worker *w)
{
	int64_t next = engine_wheel_next(&w->wheel, w->now), nu = near_next_us(w);
	int64_t to = next < 0 ? -1 : next * 1000;

	if (nu >= 0 && (to < 0 || nu < to))
		to = nu;
	if (w->host_due_us) {
		int64_t h = w->host_due_us > w->now_us ? (int64_t)(w->host_due_us - w->now_us) : 0;

		if (to < 0 || h < to)
			to = h;
	}
	return to;
}

static void *worker_main(void *arg)
{
	struct engine_worker *w = arg;
	struct engine *eng = w->eng;

	while (!__atomic_load_n(&eng->stop, __ATOMIC_ACQUIRE)) {
		if (!worker_pass(w)) {
			int64_t to = worker_next_us(w);

			/* Cap the sleep so a missed wake-up costs 1 s at most. */
			if (to < 0 || to > 1000000)
				to = 1000000;
			if (engine_cmdq_sleep(&w->cmdq))
				continue; /* a command came in: no sleep */
			eng->be->wait(w->q, to);
			engine_cmdq_woke(&w->cmdq);
		}
	}
	pass_hook.in_pass = 1;
	run_cmds(w, ~0u);
	engine_flush(w);
	pass_hook_run();
	return NULL;
}

int engine_poll(struct engine *eng, int64_t *next_us)
{
	unsigned int i;
	int64_t best = -1;
	int busy = 0;

	if (!eng)
		return -EINVAL;
	if (__atomic_load_n(&eng->running, __ATOMIC_ACQUIRE))
		return -EBUSY;
	for (i = 0; i < eng->nworkers; i++) {
		struct engine_worker *w = eng->workers[i];
		int64_t t;

		busy |= worker_pass(w);
		t = worker_next_us(w);
		if (t >= 0 && (best < 0 || t < best))
			best = t;
	}
	if (next_us)
		*next_us = best;
	return busy;
}

static void *worker_start(void *arg)
{
	struct engine_worker *w = arg;
	struct engine *eng = w->eng;
	char name[16];

	/* "weft-io/N" in top -H, ps -L and /proc/PID/task/TID/comm */
	snprintf(name, sizeof(name), "weft-io/%u", w->idx);
	pthread_setname_np(pthread_self(), name);
	if (eng->opts.pin_cpus) {
		cpu_set_t set;
		int cpu = eng->opts.cpus ? eng->opts.cpus[w->idx] : (int)w->idx;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
			log_warn("engine", "worker %u: cannot pin to CPU %d", w->idx, cpu);
	}
	return worker_main(w);
}

int engine_start(struct engine *eng)
{
	unsigned int i;
	int err;

	if (!eng)
		return -EINVAL;
	if (__atomic_load_n(&eng->running, __ATOMIC_ACQUIRE))
		return -EBUSY;
	__atomic_store_n(&eng->stop, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&eng->halted, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&eng->running, 1, __ATOMIC_RELEASE);
	for (i = 0; i < eng->nworkers; i++) {
		struct engine_worker *w = eng->workers[i];

		err = -log_thread_create(&w->thread, NULL, worker_start, w, NULL);
		if (err) {
			engine_stop(eng);
			return err;
		}
		w->thread_ok = 1;
	}
	log_info("engine", "started %u %s worker(s)", eng->nworkers, eng->be->name);
	return 0;
}

/* With the workers stopped (or never started, as in the in-memory
 * harness), take every timer off its worker's lists. The owners of those
 * timers are freed one module after another; a module that cancels its
 * own timer after another's memory went back would otherwise write into
 * the freed neighbour through the list links. Once detached, a cancel is
 * a no-op, whatever order the modules are freed in. */
static void detach_timers(struct engine_worker *w)
{
	struct engine_timer *t, *n;
	unsigned int s;

	for (s = 0; s < ENGINE_WHEEL_SLOTS; s++) {
		for (t = w->wheel.slot[s]; t; t = n) {
			n = t->next;
			t->next = t->prev = NULL;
			t->armed = 0;
		}
		w->wheel.slot[s] = NULL;
	}
	w->wheel.count = 0;
	for (t = w->near; t; t = n) {
		n = t->next;
		t->next = t->prev = NULL;
		t->armed = 0;
	}
	w->near = NULL;
	for (s = 0; s < w->near_ndue; s++) {
		if (w->near_due[s])
			w->near_due[s]->armed = 0;
		w->near_due[s] = NULL;
	}
	w->near_ndue = 0;
	for (t = w->defer_head; t; t = n) {
		n = t->dnext;
		t->dnext = NULL;
		t->deferred = 0;
	}
	w->defer_head = w->defer_tail = NULL;
}

/* Commands one worker posted to another in its last pass, after that one
 * had run its own last commands and ended (a DHT lookup handed to worker
 * 0): run here, now, while what they touch is alive. Left queued they ran
 * only in engine_free, after the owner's modules were freed. Each may post
 * more (to a worker already drained): a few rounds until all are empty. */
static void drain_stopped(struct engine *eng)
{
	for (int round = 0; round < ENGINE_DRAIN_ROUNDS; round++) {
		unsigned int ran = 0;

		pass_hook.in_pass = 1;
		for (unsigned int i = 0; i < eng->nworkers; i++) {
			struct engine_worker *w = eng->workers[i];

			if (!w || !w->cmdq.cells) /* engine_new failed part way */
				continue;
			ran += run_cmds(w, ~0u);
			engine_flush(w);
		}
		pass_hook_run();
		if (!ran)
			break;
	}
}

int engine_halted(const struct engine *eng)
{
	return eng && __atomic_load_n(&eng->halted, __ATOMIC_ACQUIRE);
}

void engine_stop(struct engine *eng)
{
	unsigned int i;
	uint64_t one = 1;

	if (!eng)
		return;
	if (!__atomic_load_n(&eng->running, __ATOMIC_ACQUIRE)) {
		/* never started (or a failed start): what was posted runs now,
		 * while its owners are alive */
		__atomic_store_n(&eng->halted, 1, __ATOMIC_RELEASE);
		drain_stopped(eng);
		for (i = 0; i < eng->nworkers; i++)
			if (eng->workers[i] && !eng->workers[i]->thread_ok)
				detach_timers(eng->workers[i]);
		return;
	}
	__atomic_store_n(&eng->stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < eng->nworkers; i++) {
		struct engine_worker *w = eng->workers[i];

		if (w->cmdq.efd >= 0 && write(w->cmdq.efd, &one, sizeof(one)) < 0) {
			/* saturated: already awake */
		}
	}
	for (i = 0; i < eng->nworkers; i++) {
		struct engine_worker *w = eng->workers[i];

		if (w->thread_ok)
			pthread_join(w->thread, NULL);
		w->thread_ok = 0;
	}
	/* From here a post is refused (-ESHUTDOWN): its owner keeps what it
	 * would have handed over. One that passed the check just before runs
	 * in the drain, or (a race of a few instructions) in engine_free. */
	__atomic_store_n(&eng->halted, 1, __ATOMIC_RELEASE);
	drain_stopped(eng);
	for (i = 0; i < eng->nworkers; i++)
		detach_timers(eng->workers[i]);
	__atomic_store_n(&eng->running, 0, __ATOMIC_RELEASE);
}
