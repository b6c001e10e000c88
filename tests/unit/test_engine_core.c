// SPDX-License-Identifier: MIT
/* Timer wheel and command queue: the wheel and the MPSC ring on their own
 * (no threads), then through a running engine (uring mode on loopback, no
 * root needed): ordering, full -> -EAGAIN, many producer threads, the
 * synchronous call and its timeout, timers on a worker. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine_int.h"

/* ---- wheel ---- */

struct fire_log {
	int order[64];
	uint64_t at[64];
	int n;
	struct engine_wheel *wh;
	uint64_t now;
};

struct tctx {
	struct fire_log *log;
	int id;
	struct engine_timer *rearm; /* timer to cancel or re-arm from the callback */
	int cancel;
};

static void on_fire(struct engine_worker *w, void *arg)
{
	struct tctx *c = arg;

	c->log->order[c->log->n] = c->id;
	c->log->at[c->log->n] = c->log->now;
	c->log->n++;
	if (c->rearm && c->cancel)
		engine_wheel_cancel(c->log->wh, c->rearm);
	else if (c->rearm)
		engine_wheel_add(c->log->wh, c->rearm, c->log->now + 5);
}

static void advance_to(struct engine_wheel *wh, struct fire_log *log, uint64_t from, uint64_t to)
{
	uint64_t t;

	for (t = from; t <= to; t++) {
		log->now = t;
		engine_wheel_advance(wh, t, NULL);
	}
}

static void test_wheel_order_and_next(void **state)
{
	struct engine_wheel wh;
	struct fire_log log = {.n = 0};
	struct engine_timer t[4];
	struct tctx c[4];
	int i;
	const uint64_t delays[4] = {30, 10, 2500, 10}; /* 2500: beyond one revolution */

	engine_wheel_init(&wh, 1000);
	log.wh = &wh;
	assert_int_equal(engine_wheel_next(&wh, 1000), -1);
	for (i = 0; i < 4; i++) {
		c[i] = (struct tctx){.log = &log, .id = i};
		engine_timer_init(&t[i], on_fire, &c[i]);
		engine_wheel_add(&wh, &t[i], 1000 + delays[i]);
	}
	assert_int_equal(wh.count, 4);
	assert_int_equal(engine_wheel_next(&wh, 1000), 10);
	advance_to(&wh, &log, 1001, 1009);
	assert_int_equal(log.n, 0);
	advance_to(&wh, &log, 1010, 1010);
	assert_int_equal(log.n, 2); /* both 10 ms timers, same tick */
	assert_true((log.order[0] == 1 && log.order[1] == 3) ||
		    (log.order[0] == 3 && log.order[1] == 1));
	assert_int_equal(engine_wheel_next(&wh, 1010), 20);
	advance_to(&wh, &log, 1011, 1030);
	assert_int_equal(log.n, 3);
	assert_int_equal(log.order[2], 0);
	assert_int_equal(log.at[2], 1030);
	/* The long timer's slot comes round at 1000+2500-2048 first: the
	 * lower bound wakes early there but nothing fires before 3500. */
	advance_to(&wh, &log, 1031, 3499);
	assert_int_equal(log.n, 3);
	advance_to(&wh, &log, 3500, 3500);
	assert_int_equal(log.n, 4);
	assert_int_equal(log.at[3], 3500);
	assert_int_equal(wh.count, 0);
	assert_int_equal(engine_wheel_next(&wh, 3500), -1);
}

static void test_wheel_cancel_rearm_and_jump(void **state)
{
	struct engine_wheel wh;
	struct fire_log log = {.n = 0};
	struct engine_timer a, b, r;
	struct tctx ca, cb, cr;

	engine_wheel_init(&wh, 0);
	log.wh = &wh;
	ca = (struct tctx){.log = &log, .id = 1, .rearm = &b, .cancel = 1};
	cb = (struct tctx){.log = &log, .id = 2};
	engine_timer_init(&a, on_fire, &ca);
	engine_timer_init(&b, on_fire, &cb);
	/* a fires first and cancels b (same slot later in the same tick) */
	engine_wheel_add(&wh, &a, 5);
	engine_wheel_add(&wh, &b, 5);
	log.now = 5;
	engine_wheel_advance(&wh, 5, NULL);
	/* Either a ran first and cancelled b, or b ran first: never both
	 * after a cancel. */
	assert_true(log.n == 1 || (log.n == 2 && log.order[0] == 2));
	/* Self re-arming every 5 ms across a 3-second jump fires once per
	 * revolution catch-up, never in the past of its own expiry. */
	engine_wheel_init(&wh, 0);
	log.n = 0;
	cr = (struct tctx){.log = &log, .id = 3, .rearm = &r};
	engine_timer_init(&r, on_fire, &cr);
	engine_wheel_add(&wh, &r, 5);
	log.now = 3000;
	engine_wheel_advance(&wh, 3000, NULL);
	assert_int_equal(log.n, 1);
	assert_int_equal(wh.count, 1);
	assert_int_equal(r.expire_ms, 3005);
	engine_wheel_cancel(&wh, &r);
	engine_wheel_cancel(&wh, &r); /* idempotent */
	assert_int_equal(wh.count, 0);
	/* Re-adding an armed timer moves it. */
	engine_wheel_add(&wh, &r, 3100);
	engine_wheel_add(&wh, &r, 3010);
	assert_int_equal(wh.count, 1);
	assert_int_equal(engine_wheel_next(&wh, 3000), 10);
	engine_wheel_cancel(&wh, &r);
}

/* ---- command ring without threads ---- */

static void nop(struct engine_worker *w, void *arg)
{
}

static void test_cmdq_order_and_full(void **state)
{
	struct engine_cmdq cq;
	engine_cmd_fn fn;
	void *arg;
	uintptr_t i;

	assert_int_equal(engine_cmdq_init(&cq, 5, 0), 0); /* rounds up to 8 */
	assert_int_equal(cq.mask, 7);
	for (i = 0; i < 8; i++)
		assert_int_equal(engine_cmdq_push(&cq, nop, (void *)i), 0);
	assert_int_equal(engine_cmdq_push(&cq, nop, (void *)99), -EAGAIN);
	for (i = 0; i < 8; i++) {
		assert_int_equal(engine_cmdq_pop(&cq, &fn, &arg), 1);
		assert_ptr_equal(arg, (void *)i);
	}
	assert_int_equal(engine_cmdq_pop(&cq, &fn, &arg), 0);
	/* wrap-around many times */
	for (i = 0; i < 1000; i++) {
		assert_int_equal(engine_cmdq_push(&cq, nop, (void *)i), 0);
		assert_int_equal(engine_cmdq_pop(&cq, &fn, &arg), 1);
		assert_ptr_equal(arg, (void *)i);
	}
	engine_cmdq_fini(&cq);
}

/* The eventfd is signalled only when the consumer may sleep: the first
 * push (the ring starts "sleepy"), then none until engine_cmdq_sleep()
 * found the ring empty; engine_cmdq_sleep() refuses to sleep over a
 * queued command. */
static int efd_count(int fd)
{
	uint64_t v = 0;

	return read(fd, &v, sizeof(v)) == sizeof(v) ? (int)v : 0;
}

/* The ring's pages are resident once it is made: a ring is written end to
 * end in its first lap anyway, and a node's memory should not rise with
 * that lap for hours (docs/OPERATIONS.md). mincore over the pages wholly
 * inside the cells: every one resident. */
static void test_cmdq_resident_at_start(void **state)
{
	struct engine_cmdq cq;
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t a, b;
	unsigned char vec[64];
	size_t np;

	(void)state;
	assert_int_equal(engine_cmdq_init(&cq, 4096, 0), 0);
	a = ((uintptr_t)cq.cells + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
	b = ((uintptr_t)(cq.cells + cq.mask + 1)) & ~((uintptr_t)pg - 1);
	np = (b - a) / (uintptr_t)pg;
	assert_true(np >= 16 && np <= sizeof(vec));
	assert_int_equal(mincore((void *)a, b - a, vec), 0);
	for (size_t i = 0; i < np; i++)
		if (!(vec[i] & 1))
			fail_msg("page %zu of %zu of the ring is not resident", i, np);
	engine_cmdq_fini(&cq);
}

static void test_cmdq_wake_only_when_sleepy(void **state)
{
	struct engine_cmdq cq;
	engine_cmd_fn fn;
	void *arg;

	assert_int_equal(engine_cmdq_init(&cq, 8, 1), 0);
	assert_true(cq.efd >= 0);
	assert_int_equal(engine_cmdq_push(&cq, nop, (void *)1), 0);
	assert_int_equal(efd_count(cq.efd), 1);
	assert_int_equal(engine_cmdq_push(&cq, nop, (void *)2), 0);
	assert_int_equal(efd_count(cq.efd), 0); /* awake: no signal */
	assert_int_equal(engine_cmdq_sleep(&cq), 1); /* queued: do not sleep */
	assert_int_equal(engine_cmdq_push(&cq, nop, (void *)3), 0);
	assert_int_equal(efd_count(cq.efd), 0);
	for (uintptr_t i = 1; i <= 3; i++) {
		assert_int_equal(engine_cmdq_pop(&cq, &fn, &arg), 1);
		assert_ptr_equal(arg, (void *)i);
	}
	assert_int_equal(engine_cmdq_sleep(&cq), 0); /* empty: may sleep */
	assert_int_equal(engine_cmdq_push(&cq, nop, (void *)4), 0);
	assert_int_equal(engine_cmdq_push(&cq, nop, (void *)5), 0);
	assert_int_equal(efd_count(cq.efd), 1); /* one signal for both */
	engine_cmdq_woke(&cq);
	assert_int_equal(engine_cmdq_push(&cq, nop, (void *)6), 0);
	assert_int_equal(efd_count(cq.efd), 0);
	for (uintptr_t i = 4; i <= 6; i++) {
		assert_int_equal(engine_cmdq_pop(&cq, &fn, &arg), 1);
		assert_ptr_equal(arg, (void *)i);
	}
	engine_cmdq_fini(&cq);
}

/* ---- through a running engine ---- */

#define PRODUCERS 4
#define PER_PRODUCER 5000

struct seen {
	uint32_t last[PRODUCERS + 1]; /* last sequence seen per producer (+1) */
	uint32_t count;
	int out_of_order;
	unsigned int worker_idx_bad;
	pthread_t worker_thread;
	int thread_known, thread_changed;
};

struct item {
	struct seen *s;
	uint32_t producer, seq;
};

static struct item items[PRODUCERS][PER_PRODUCER];

static void record(struct engine_worker *w, void *arg)
{
	struct item *it = arg;
	struct seen *s = it->s;

	if (engine_worker_index(w) != 0)
		s->worker_idx_bad++;
	if (!s->thread_known) {
		s->worker_thread = pthread_self();
		s->thread_known = 1;
	} else if (!pthread_equal(s->worker_thread, pthread_self())) {
		s->thread_changed = 1;
	}
	if (it->seq != s->last[it->producer])
		s->out_of_order++;
	s->last[it->producer] = it->seq + 1;
	s->count++;
}

struct prod_arg {
	struct engine *eng;
	uint32_t id;
	unsigned long eagain;
};

static void *producer(void *arg)
{
	struct prod_arg *p = arg;
	uint32_t i;

	for (i = 0; i < PER_PRODUCER; i++) {
		int r;

		while ((r = engine_call(p->eng, 0, record, &items[p->id][i])) == -EAGAIN) {
			p->eagain++;
			sched_yield();
		}
		if (r)
			return (void *)1;
	}
	return NULL;
}

static struct engine *new_engine(unsigned int cmdq, uint16_t port)
{
	struct engine_opts o;
	struct engine *eng = NULL;
	uint16_t ports[1] = {port};

	engine_opts_default(&o);
	o.ports = ports;
	o.nports = 1;
	o.cmdq_size = cmdq;
	o.bind_addr = "127.0.0.1";
	assert_int_equal(engine_new(&eng, &o), 0);
	return eng;
}

static void test_engine_cmdq_threads(void **state)
{
	struct prod_arg pa[PRODUCERS];
	pthread_t th[PRODUCERS];
	struct seen s;
	struct engine *eng = new_engine(64, 47011);
	struct engine_stats st;
	uint32_t p, i;
	void *ret;

	memset(&s, 0, sizeof(s));
	for (p = 0; p < PRODUCERS; p++)
		for (i = 0; i < PER_PRODUCER; i++)
			items[p][i] = (struct item){.s = &s, .producer = p, .seq = i};
	/* Before start nothing consumes: 64 fit, the 65th is refused. */
	for (i = 0; i < 64; i++)
		assert_int_equal(engine_call(eng, 0, record, &items[PRODUCERS - 1][0]), 0);
	assert_int_equal(engine_call(eng, 0, record, &items[0][0]), -EAGAIN);
	assert_int_equal(engine_call(eng, 1, record, &items[0][0]), -EINVAL);
	assert_int_equal(engine_stats_get(eng, 0, &st), 0);
	assert_int_equal(st.cmd_full, 1);
	assert_int_equal(engine_start(eng), 0);
	/* Drain the 64 pre-start items (they break producer 3's sequence, so
	 * wait for them before starting the producers). */
	while (__atomic_load_n(&s.count, __ATOMIC_ACQUIRE) < 64)
		usleep(1000);
	s.count = 0;
	s.out_of_order = 0;
	memset(s.last, 0, sizeof(s.last));
	for (p = 0; p < PRODUCERS; p++) {
		pa[p] = (struct prod_arg){.eng = eng, .id = p};
		assert_int_equal(pthread_create(&th[p], NULL, producer, &pa[p]), 0);
	}
	for (p = 0; p < PRODUCERS; p++) {
		assert_int_equal(pthread_join(th[p], &ret), 0);
		assert_null(ret);
	}
	engine_stop(eng); /* runs what is still queued */
	assert_int_equal(s.count, PRODUCERS * PER_PRODUCER);
	assert_int_equal(s.out_of_order, 0);
	assert_int_equal(s.worker_idx_bad, 0);
	assert_int_equal(s.thread_changed, 0);
	for (p = 0; p < PRODUCERS; p++)
		assert_int_equal(s.last[p], PER_PRODUCER);
	engine_free(eng);
}

static void slow(struct engine_worker *w, void *arg)
{
	usleep(300 * 1000);
}

static void set_flag(struct engine_worker *w, void *arg)
{
	*(int *)arg = 1;
}

static void test_engine_call_sync(void **state)
{
	struct engine *eng = new_engine(8, 47012);
	int flag = 0, late = 0;

	assert_int_equal(engine_call_sync(eng, 0, set_flag, &flag, 100), -ESHUTDOWN);
	assert_int_equal(engine_start(eng), 0);
	assert_int_equal(engine_call_sync(eng, 0, set_flag, &flag, 1000), 0);
	assert_int_equal(flag, 1);
	/* Worker busy for 300 ms: a 50 ms sync call times out, and the
	 * cancelled call never runs afterwards. */
	assert_int_equal(engine_call(eng, 0, slow, NULL), 0);
	assert_int_equal(engine_call_sync(eng, 0, set_flag, &late, 50), -ETIMEDOUT);
	flag = 0;
	assert_int_equal(engine_call_sync(eng, 0, set_flag, &flag, 2000), 0);
	assert_int_equal(flag, 1);
	assert_int_equal(late, 0);
	assert_int_equal(engine_call_sync(eng, 3, set_flag, &flag, 10), -EINVAL);
	engine_free(eng);
}

/* Timers armed from a command, firing on the worker. */
struct tfire {
	struct engine_timer t[3];
	uint64_t armed_at, fired_at[3];
	int order[3], n;
};

struct tslot {
	struct tfire *f;
	int id;
};

static void tfired2(struct engine_worker *w, void *arg)
{
	struct tslot *s = arg;

	s->f->fired_at[s->id] = engine_worker_now(w);
	s->f->order[s->f->n] = s->id;
	__atomic_store_n(&s->f->n, s->f->n + 1, __ATOMIC_RELEASE);
}

static struct tslot slots[3];

static void arm_timers(struct engine_worker *w, void *arg)
{
	struct tfire *f = arg;
	const uint64_t d[3] = {40, 20, 60};
	int i;

	f->armed_at = engine_worker_now(w);
	for (i = 0; i < 3; i++) {
		slots[i] = (struct tslot){.f = f, .id = i};
		engine_timer_init(&f->t[i], tfired2, &slots[i]);
		engine_timer_add(w, &f->t[i], d[i]);
	}
	engine_timer_cancel(w, &f->t[2]);
}

/* Runs on the worker: once it returned, the worker's writes to f are
 * visible here (the sync call is the barrier). */
static void barrier(struct engine_worker *w, void *arg)
{
}

/* engine_pass_end: one hook per pass, run once after the command that
 * registered it returned; refused outside a pass. */
struct pass_probe {
	int ran, ran_in_cmd, r[3];
	void *arg;
};

static struct pass_probe *pp_g;

static void pass_hook(void *arg)
{
	pp_g->ran++;
	pp_g->arg = arg;
}

static void pass_cmd(struct engine_worker *w, void *arg)
{
	struct pass_probe *p = arg;

	(void)w;
	p->r[0] = engine_pass_end(pass_hook, p);
	p->r[1] = engine_pass_end(pass_hook, p);
	p->r[2] = engine_pass_end(pass_hook, NULL);
	p->ran_in_cmd = p->ran;
}

static void test_engine_pass_end(void **state)
{
	struct engine *eng = new_engine(8, 47031);
	struct pass_probe p;
	int i;

	memset(&p, 0, sizeof(p));
	pp_g = &p;
	assert_int_equal(engine_pass_end(pass_hook, &p), -ENOENT);
	assert_int_equal(engine_start(eng), 0);
	assert_int_equal(engine_call_sync(eng, 0, pass_cmd, &p, 5000), 0);
	for (i = 0; i < 400 && !p.ran; i++) {
		usleep(5000);
		assert_int_equal(engine_call_sync(eng, 0, barrier, NULL, 5000), 0);
	}
	assert_int_equal(p.r[0], 1);
	assert_int_equal(p.r[1], 0);
	assert_int_equal(p.r[2], -EBUSY);
	assert_int_equal(p.ran_in_cmd, 0);
	assert_int_equal(p.ran, 1);
	assert_ptr_equal(p.arg, &p);
	engine_free(eng);
	assert_int_equal(p.ran, 1);
}

static void test_engine_timers(void **state)
{
	struct engine *eng = new_engine(8, 47013);
	struct tfire f;
	struct engine_stats st;
	int i;

	memset(&f, 0, sizeof(f));
	assert_int_equal(engine_start(eng), 0);
	assert_int_equal(engine_call_sync(eng, 0, arm_timers, &f, 1000), 0);
	for (i = 0; i < 200 && __atomic_load_n(&f.n, __ATOMIC_ACQUIRE) < 2; i++)
		usleep(5000);
	usleep(100 * 1000); /* the cancelled 60 ms timer must stay silent */
	assert_int_equal(engine_call_sync(eng, 0, barrier, NULL, 1000), 0);
	assert_int_equal(f.n, 2);
	assert_int_equal(f.order[0], 1);
	assert_int_equal(f.order[1], 0);
	assert_true(f.fired_at[1] >= f.armed_at + 20);
	assert_true(f.fired_at[0] >= f.armed_at + 40);
	assert_int_equal(engine_stats_get(eng, 0, &st), 0);
	assert_int_equal(st.timers, 2);
	engine_free(eng);
}

/* Microsecond timers and the deferred list, driven on a running worker. */
struct near_probe {
	struct engine_timer near[3], def[3];
	uint64_t armed_us, fired_us[3];
	int near_fired[3], def_ran[3], log[8], nlog;
	int in_call; /* 1 while arm_near is still running */
	int def_during_call;
};

static struct near_probe *np_g;

static void near_fire_i(struct engine_worker *w, void *arg)
{
	int i = (int)(intptr_t)arg;

	np_g->fired_us[i] = engine_worker_now_us(w);
	np_g->near_fired[i]++;
	if (np_g->nlog < 8)
		np_g->log[np_g->nlog++] = 10 + i;
}

static void def_run_i(struct engine_worker *w, void *arg)
{
	int i = (int)(intptr_t)arg;

	if (np_g->in_call)
		np_g->def_during_call = 1;
	np_g->def_ran[i]++;
	if (np_g->nlog < 8)
		np_g->log[np_g->nlog++] = 20 + i;
	/* Deferring from a deferred callback runs in the same pass. */
	if (i == 0)
		engine_defer(w, &np_g->def[2]);
}

static void arm_near(struct engine_worker *w, void *arg)
{
	struct near_probe *p = arg;
	int i;

	p->in_call = 1;
	p->armed_us = engine_worker_now_us(w);
	for (i = 0; i < 3; i++) {
		engine_timer_init(&p->near[i], near_fire_i, (void *)(intptr_t)i);
		engine_timer_init(&p->def[i], def_run_i, (void *)(intptr_t)i);
	}
	engine_timer_add_us(w, &p->near[0], 300);  /* near list */
	engine_timer_add_us(w, &p->near[1], 5000); /* >= ENGINE_NEAR_US: wheel */
	engine_timer_add_us(w, &p->near[2], 100);
	engine_timer_cancel(w, &p->near[2]); /* silent */
	engine_defer(w, &p->def[0]);
	engine_defer(w, &p->def[0]); /* no-op: once */
	engine_defer(w, &p->def[1]);
	engine_timer_cancel(w, &p->def[1]); /* silent */
	p->in_call = 0;
}

static void test_engine_near_and_defer(void **state)
{
	struct engine *eng = new_engine(8, 47023);
	struct near_probe p;
	int i;

	memset(&p, 0, sizeof(p));
	np_g = &p;
	assert_int_equal(engine_start(eng), 0);
	assert_int_equal(engine_call_sync(eng, 0, arm_near, &p, 1000), 0);
	for (i = 0; i < 400 && !(p.near_fired[0] && p.near_fired[1]); i++) {
		usleep(5000);
		assert_int_equal(engine_call_sync(eng, 0, barrier, NULL, 1000), 0);
	}
	usleep(20 * 1000);
	assert_int_equal(engine_call_sync(eng, 0, barrier, NULL, 1000), 0);
	/* deferred: def[0] once, then def[2] (deferred by def[0]) in the same
	 * pass, both after the command that deferred them returned */
	assert_int_equal(p.def_ran[0], 1);
	assert_int_equal(p.def_ran[1], 0);
	assert_int_equal(p.def_ran[2], 1);
	assert_int_equal(p.def_during_call, 0);
	assert_int_equal(p.log[0], 20);
	assert_int_equal(p.log[1], 22);
	/* near timers: never early, cancelled one silent, wheel one later */
	assert_int_equal(p.near_fired[0], 1);
	assert_int_equal(p.near_fired[1], 1);
	assert_int_equal(p.near_fired[2], 0);
	assert_true(p.fired_us[0] >= p.armed_us + 300);
	assert_true(p.fired_us[1] >= p.armed_us + 5000);
	/* In due order, unless the worker was off its CPU past both deadlines
	 * (a loaded machine): then both are due in one pass, and the near
	 * list and the wheel do not promise an order between them. */
	if (p.fired_us[0] < p.armed_us + 5000) {
		assert_int_equal(p.log[2], 10);
		assert_int_equal(p.log[3], 11);
	} else {
		assert_int_equal(p.log[2] + p.log[3], 21);
	}
	engine_free(eng);
}

/* A near timer re-arming itself for "now" fires once per loop pass (never
 * spins inside one); a due timer cancelled by another's callback stays
 * silent. */
struct rearm_probe {
	struct engine_timer self, b, c;
	int self_n, b_n, c_n;
	uint64_t loops[8];
};

static struct rearm_probe *rp_g;

static uint64_t worker_loops(struct engine_worker *w)
{
	struct engine_stats st;

	engine_stats_get(engine_worker_engine(w), engine_worker_index(w), &st);
	return st.loops;
}

static void rearm_self(struct engine_worker *w, void *arg)
{
	(void)arg;
	rp_g->loops[rp_g->self_n] = worker_loops(w);
	if (++rp_g->self_n < 5)
		engine_timer_add_us(w, &rp_g->self, 0);
}

static void fire_b(struct engine_worker *w, void *arg)
{
	(void)arg;
	rp_g->b_n++;
	engine_timer_cancel(w, &rp_g->c);
}

static void fire_c(struct engine_worker *w, void *arg)
{
	(void)w;
	(void)arg;
	rp_g->c_n++;
}

static void arm_rearm(struct engine_worker *w, void *arg)
{
	struct rearm_probe *p = arg;

	engine_timer_init(&p->self, rearm_self, NULL);
	engine_timer_init(&p->b, fire_b, NULL);
	engine_timer_init(&p->c, fire_c, NULL);
	engine_timer_add_us(w, &p->self, 0);
	/* c then b on the list: b is found first (added last), cancels c */
	engine_timer_add_us(w, &p->c, 50);
	engine_timer_add_us(w, &p->b, 50);
}

static void test_engine_near_rearm(void **state)
{
	struct engine *eng = new_engine(8, 47033);
	struct rearm_probe p;
	int i;

	(void)state;
	memset(&p, 0, sizeof(p));
	rp_g = &p;
	assert_int_equal(engine_start(eng), 0);
	assert_int_equal(engine_call_sync(eng, 0, arm_rearm, &p, 1000), 0);
	for (i = 0; i < 200 && (p.self_n < 5 || !p.b_n); i++) {
		usleep(2000);
		/* the worker keeps answering: nothing spins inside a pass */
		assert_int_equal(engine_call_sync(eng, 0, barrier, NULL, 1000), 0);
	}
	assert_int_equal(p.self_n, 5);
	for (i = 1; i < 5; i++)
		assert_true(p.loops[i] > p.loops[i - 1]); /* one firing per pass */
	assert_int_equal(p.b_n, 1);
	assert_int_equal(p.c_n, 0);
	engine_free(eng);
}

/* engine_stop() takes every timer off the worker's lists: modules are
 * freed one after another, and a cancel after its slot neighbour's memory
 * went back must not write into it (an ASan heap-use-after-free in
 * test_sim_relay's teardown before the fix). */
struct stop_probe {
	struct engine_worker *w;
	struct engine_timer *a, *b;
};

static void never(struct engine_worker *w, void *arg)
{
	(void)w;
	(void)arg;
	fail_msg("a timer fired");
}

static void arm_two(struct engine_worker *w, void *arg)
{
	struct stop_probe *p = arg;

	p->w = w;
	engine_timer_init(p->a, never, NULL);
	engine_timer_init(p->b, never, NULL);
	/* the same delay: the same wheel slot, linked to each other */
	engine_timer_add(w, p->a, 600000);
	engine_timer_add(w, p->b, 600000);
}

static void test_engine_stop_detaches(void **state)
{
	struct engine *eng = new_engine(8, 47034);
	struct stop_probe p = {0};

	(void)state;
	p.a = malloc(sizeof(*p.a));
	p.b = malloc(sizeof(*p.b));
	assert_non_null(p.a);
	assert_non_null(p.b);
	assert_int_equal(engine_start(eng), 0);
	assert_int_equal(engine_call_sync(eng, 0, arm_two, &p, 1000), 0);
	engine_stop(eng);
	assert_int_equal(p.a->armed, 0);
	assert_int_equal(p.b->armed, 0);
	free(p.a);			  /* its owner goes first */
	engine_timer_cancel(p.w, p.b); /* no write into a's memory */
	free(p.b);
	engine_free(eng);
}

/* A worker's last command posts to a worker that has already ended: the
 * command still runs in engine_stop (while its owner's state is alive),
 * not only in engine_free, after it (the DHT lookup a stopping node's
 * worker handed to worker 0). */
struct late_post {
	struct engine *eng;
	int ran;
	int posted;
};

static void late_mark(struct engine_worker *w, void *arg)
{
	(void)w;
	((struct late_post *)arg)->ran = 1;
}

static void post_late(struct engine_worker *w, void *arg)
{
	struct late_post *lp = arg;

	(void)w;
	/* worker 0 has seen the stop by now and run its last commands */
	usleep(200 * 1000);
	lp->posted = engine_call(lp->eng, 0, late_mark, lp) == 0;
}

static void test_engine_stop_runs_late_posts(void **state)
{
	struct engine_opts o;
	struct engine *eng = NULL;
	uint16_t ports[1] = {47035};
	struct late_post lp = {0};

	(void)state;
	engine_opts_default(&o);
	o.ports = ports;
	o.nports = 1;
	o.workers = 2;
	o.bind_addr = "127.0.0.1";
	assert_int_equal(engine_new(&eng, &o), 0);
	lp.eng = eng;
	assert_int_equal(engine_start(eng), 0);
	assert_int_equal(engine_call(eng, 1, post_late, &lp), 0);
	usleep(20 * 1000); /* worker 1 is in post_late */
	engine_stop(eng);
	assert_int_equal(lp.posted, 1);
	assert_int_equal(lp.ran, 1);
	/* stopped: a post is refused, its argument stays the caller's */
	lp.ran = 0;
	assert_int_equal(engine_call(eng, 0, late_mark, &lp), -ESHUTDOWN);
	engine_free(eng);
	assert_int_equal(lp.ran, 0);
}

/* Posted to an engine never started, then stopped: run in engine_stop,
 * not in engine_free after their owners are gone. */
static void test_engine_stop_unstarted_runs_posts(void **state)
{
	struct engine *eng = new_engine(8, 47036);
	int flag = 0;

	(void)state;
	assert_int_equal(engine_call(eng, 0, set_flag, &flag), 0);
	engine_stop(eng);
	assert_int_equal(flag, 1);
	assert_int_equal(engine_call(eng, 0, set_flag, &flag), -ESHUTDOWN);
	/* a new start takes posts again */
	assert_int_equal(engine_start(eng), 0);
	flag = 0;
	assert_int_equal(engine_call_sync(eng, 0, set_flag, &flag, 1000), 0);
	assert_int_equal(flag, 1);
	engine_free(eng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wheel_order_and_next),
	    cmocka_unit_test(test_wheel_cancel_rearm_and_jump),
	    cmocka_unit_test(test_cmdq_order_and_full),
	    cmocka_unit_test(test_cmdq_wake_only_when_sleepy),
	    cmocka_unit_test(test_cmdq_resident_at_start),
	    cmocka_unit_test(test_engine_pass_end),
	    cmocka_unit_test(test_engine_cmdq_threads),
	    cmocka_unit_test(test_engine_call_sync),
	    cmocka_unit_test(test_engine_timers),
	    cmocka_unit_test(test_engine_near_and_defer),
	    cmocka_unit_test(test_engine_near_rearm),
	    cmocka_unit_test(test_engine_stop_detaches),
	    cmocka_unit_test(test_engine_stop_runs_late_posts),
	    cmocka_unit_test(test_engine_stop_unstarted_runs_posts),
	};

	return cmocka_run_group_tests_name("engine_core", tests, NULL, NULL);
}
