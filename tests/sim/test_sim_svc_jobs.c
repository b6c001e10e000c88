// SPDX-License-Identifier: MIT
/*
 * Callers of the service fabric (control threads, the gateway, the load
 * generator) post jobs to its owner and wait on their own semaphores with
 * a deadline; the fabric has no lock (svc_calls.c, docs/SERVICE.md
 * "Threads and owners"). In this process on a simulated network (no root):
 *
 * A publishes echo (limits lifted); B is the DHT contact; C calls.
 *  1. C's owner held: 48 threads calling echo (300 ms) and 16 looking it
 *     up all end with -ETIMEDOUT, none before its deadline, all while the
 *     owner is still held (a caller never needs the owner to leave); then
 *     a call goes through.
 *  2. Abandoned jobs: A's owner held (no answer comes), 40 callers on C
 *     whose jobs C's owner has started; then C's owner is held too: every
 *     caller leaves at its deadline on its own. Released, C's owner ends
 *     the abandoned jobs and frees them (owner.jobs and owner.ops back to
 *     0; LeakSanitizer checks the memory at exit); the next call succeeds.
 *  3. The load generator (svc call --count) keeps its calls in flight on
 *     the owner: with 100 calls waiting on A's held owner, the process has
 *     no thread more than before but the one that asked (a few allowed).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "service/svc_calls_int.h"
#include "service/svc_node_int.h"
#include "svc_hold.h"
#include "weft/node.h"
#include "weft/simnet.h"
#include "weft/svc_backend.h"
#include "weft/util.h"
#include "world.h"

struct scene {
	struct world w; /* the network and its nodes (tests/lib/world.h) */
	struct simnode a, b, c;
};

static struct scene W;

static int c_finds_echo(void *arg)
{
	return simnode_finds(&((struct scene *)arg)->c, "echo");
}

static int setup(void **state)
{
	static const char *const a_set[] = {"svc.peer_calls_per_min=100000",
					    "svc.addr_calls_per_min=100000",
					    "svc.service_calls_per_min=100000",
					    "svc.peer_concurrency=1000",
					    "svc.addr_concurrency=1000",
					    "svc.service_concurrency=1000",
					    NULL};
	json_t *o;

	(void)state;
	world_new(&W.w, 23);
	world_bootstrap(&W.w, &W.b, NULL);
	world_node(&W.w, &W.a, "A", "198.51.100.1", NULL, a_set);
	world_node(&W.w, &W.c, "C", "198.51.100.3", NULL, NULL);
	world_dht_formed(1, 10000, &W.a, &W.c, NULL);
	json_decref(simnode_ok(&W.a, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s}", "name", "echo", "backend", "builtin")));
	assert_int_equal(simnode_wait(c_finds_echo, &W, 15000), 0);
	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s}", "name", "echo", "method", "ping", "data", "up"));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	json_decref(o);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

/* Let the owner go; the hold message is over once a control request,
 * which runs on the owner after it, answered. */
static void release(struct simnode *x, struct svc_hold *h)
{
	svc_hold_release(h);
	json_decref(simnode_ok(x, "GET", "/v1/svc/stats", NULL));
	assert_int_equal(svc_hold_done(h), 0);
}

struct caller {
	pthread_t th;
	struct svc_node *sn;
	int find;	     /* svc_node_find instead of a call */
	uint32_t timeout_ms; /* call */
	int err;
	int svc_err;
	uint64_t elapsed_ms;
};

static void *caller_main(void *arg)
{
	struct caller *c = arg;
	uint64_t t0 = util_now_ns();

	if (c->find) {
		struct svc_dir_result res[SVC_DIR_DEFAULT_RESULTS];
		int n = svc_node_find(c->sn, "echo", res, SVC_DIR_DEFAULT_RESULTS);

		c->err = n < 0 ? n : 0;
	} else {
		struct svc_node_call_res r;

		c->err = svc_node_call(c->sn, "echo", "ping", (const uint8_t *)"x", 1,
				       c->timeout_ms, &r);
		if (!c->err) {
			c->svc_err = r.err;
			free(r.data);
		}
	}
	c->elapsed_ms = (util_now_ns() - t0) / 1000000;
	return NULL;
}

static void call_ok(struct simnode *x)
{
	json_t *o = simnode_ok(x, "POST", "/v1/svc/call",
			       json_pack("{s:s,s:s,s:s}", "name", "echo", "method", "ping", "data",
					 "again"));

	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	json_decref(o);
}

#define NCALL 48
#define NFIND 16

static void test_callers_owner_held(void **state)
{
	struct svc_node *csn = node_svc(W.c.node);
	static struct caller cs[NCALL + NFIND];
	static struct svc_hold h;

	(void)state;
	svc_hold_start(csn, &h);
	for (int i = 0; i < NCALL + NFIND; i++) {
		cs[i] = (struct caller){.sn = csn, .find = i >= NCALL, .timeout_ms = 300};
		assert_int_equal(pthread_create(&cs[i].th, NULL, caller_main, &cs[i]), 0);
	}
	/* Every caller comes back while the owner is still held. */
	for (int i = 0; i < NCALL + NFIND; i++)
		pthread_join(cs[i].th, NULL);
	for (int i = 0; i < NCALL + NFIND; i++) {
		assert_int_equal(cs[i].err, -ETIMEDOUT);
		/* never before its deadline: the call's own (its timeout),
		 * a lookup's turn on the owner (SVCN_OWNER_RUN_MS) */
		assert_true(cs[i].elapsed_ms >= (cs[i].find ? SVCN_OWNER_RUN_MS : 300u));
	}
	printf("%d calls and %d lookups with C's owner held: all -ETIMEDOUT, "
	       "call %llu ms, lookup %llu ms\n",
	       NCALL, NFIND, (unsigned long long)cs[0].elapsed_ms,
	       (unsigned long long)cs[NCALL].elapsed_ms);
	release(&W.c, &h);
	call_ok(&W.c);
}

struct jobs_at_least {
	struct simnode *x;
	json_int_t n;
};

static int jobs_at_least(void *arg)
{
	struct jobs_at_least *j = arg;

	return simnode_get_int(j->x, "/v1/svc/stats", "owner", "jobs", NULL) >= j->n;
}

static int owner_idle(void *arg)
{
	struct simnode *x = arg;

	return simnode_get_int(x, "/v1/svc/stats", "owner", "jobs", NULL) == 0 &&
	       simnode_get_int(x, "/v1/svc/stats", "owner", "ops", NULL) == 0;
}

#define NABANDON 40

static void test_abandoned_jobs(void **state)
{
	struct svc_node *asn = node_svc(W.a.node), *csn = node_svc(W.c.node);
	static struct caller cs[NABANDON];
	static struct svc_hold ha, hc;
	struct jobs_at_least jl = {.x = &W.c, .n = NABANDON};

	(void)state;
	svc_hold_start(asn, &ha); /* no answer comes back */
	for (int i = 0; i < NABANDON; i++) {
		cs[i] = (struct caller){.sn = csn, .timeout_ms = 1000};
		assert_int_equal(pthread_create(&cs[i].th, NULL, caller_main, &cs[i]), 0);
	}
	/* C's owner has every call on its list, then it is held too. */
	assert_int_equal(simnode_wait(jobs_at_least, &jl, 10000), 0);
	svc_hold_start(csn, &hc);
	for (int i = 0; i < NABANDON; i++) {
		pthread_join(cs[i].th, NULL);
		assert_int_equal(cs[i].err, -ETIMEDOUT);
		assert_true(cs[i].elapsed_ms >= 1000);
	}
	/* The owner runs again: it ends the jobs their callers left. */
	release(&W.c, &hc);
	assert_int_equal(simnode_wait(owner_idle, &W.c, 10000), 0);
	release(&W.a, &ha);
	call_ok(&W.c);
}

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

struct load {
	pthread_t th;
	struct svc_node *sn;
	struct svcn_load_res res;
	int err;
};

static void *load_main(void *arg)
{
	struct load *l = arg;

	l->err = svcn_call_many(l->sn, "echo", "ping", (const uint8_t *)"y", 1, 15000, 200, 100,
				&l->res);
	return NULL;
}

static void test_load_no_thread_per_call(void **state)
{
	struct svc_node *asn = node_svc(W.a.node);
	static struct load l;
	static struct svc_hold ha;
	struct jobs_at_least jl = {.x = &W.c, .n = 101}; /* 100 calls + the load */
	int before, during;

	(void)state;
	before = count_threads();
	svc_hold_start(asn, &ha);
	l.sn = node_svc(W.c.node);
	assert_int_equal(pthread_create(&l.th, NULL, load_main, &l), 0);
	assert_int_equal(simnode_wait(jobs_at_least, &jl, 10000), 0);
	during = count_threads();
	printf("threads: %d before, %d with 100 calls in flight (1 is the load's caller)\n",
	       before, during);
	/* One thread more: the caller of the load (a node could start a
	 * helper of its own meanwhile: 3 more allowed). Not one per call. */
	assert_true(during <= before + 4);
	release(&W.a, &ha);
	pthread_join(l.th, NULL);
	assert_int_equal(l.err, 0);
	assert_int_equal(l.res.errs[SVC_OK], 200);
	assert_int_equal(l.res.nlat, 200);
	free(l.res.lat);
	assert_int_equal(simnode_wait(owner_idle, &W.c, 10000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_callers_owner_held),
	    cmocka_unit_test(test_abandoned_jobs),
	    cmocka_unit_test(test_load_no_thread_per_call),
	};

	return cmocka_run_group_tests_name("sim_svc_jobs", tests, setup, teardown);
}
