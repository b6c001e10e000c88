// SPDX-License-Identifier: MIT
/*
 * The service fabric's owner queue, in this process on a simulated
 * network (no root): packet workers never take the fabric's lock, they
 * post each stream event to the owner (the backend thread). When the owner
 * is held up and the queue of stream data events is full (svc.owner_queue,
 * 4 here), a stream's bytes are refused and the stream is reset with code
 * SVC_NODE_RST_OWNER_BUSY: the caller sees a transport error at once,
 * never a hang, and the calls queued before are answered once the owner
 * runs again.
 *
 * A publishes echo (owner queue 4, limits lifted); B is the DHT contact;
 * C discovers echo, calls it once (connection up), then A's owner is held
 * by a message that waits on a semaphore, and C sends 40 calls at once.
 * A helper thread lets the owner go when A has refused a stream (or after
 * 10 s, which fails the test). Then control requests with the owner held:
 * 503 within their 2 s deadline, and a cancelled publish never happens.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "service/svc_node_int.h"
#include "svc_hold.h"
#include "weft/node.h"
#include "weft/simnet.h"
#include "weft/svc_backend.h"
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
	static const char *const a_set[] = {"svc.owner_queue=4",
					    "svc.peer_calls_per_min=100000",
					    "svc.addr_calls_per_min=100000",
					    "svc.peer_concurrency=1000",
					    "svc.addr_concurrency=1000",
					    NULL};

	(void)state;
	world_new(&W.w, 17);
	world_bootstrap(&W.w, &W.b, NULL);
	world_node(&W.w, &W.a, "A", "198.51.100.1", NULL, a_set);
	world_node(&W.w, &W.c, "C", "198.51.100.3", NULL, NULL);
	world_dht_formed(1, 10000, &W.a, &W.c, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

struct releaser {
	struct svc_node *sn;
	struct svc_hold *h;
	unsigned long long refused_seen;
};

/* Lets the owner go once A refused a stream; at most 10 s. */
static void *release_main(void *arg)
{
	struct releaser *r = arg;

	for (int i = 0; i < 10000; i++) {
		r->refused_seen = atomic_load(&r->sn->shim->q_refused);
		if (r->refused_seen)
			break;
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	svc_hold_release(r->h);
	return NULL;
}

static void test_owner_queue_full(void **state)
{
	struct svc_node *asn = node_svc(W.a.node);
	static struct svc_hold h;
	struct releaser rel = {0};
	pthread_t th;
	json_t *o, *errs;
	json_int_t ok, transport, refused;

	(void)state;
	assert_non_null(asn);
	json_decref(simnode_ok(&W.a, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s}", "name", "echo", "backend", "builtin")));
	assert_int_equal(simnode_wait(c_finds_echo, &W, 15000), 0);
	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s}", "name", "echo", "method", "ping", "data", "up"));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	json_decref(o);
	assert_int_equal(simnode_get_int(&W.a, "/v1/svc/stats", "owner", "queue_max", NULL), 4);

	/* Hold A's owner. */
	svc_hold_start(asn, &h);
	rel.sn = asn;
	rel.h = &h;
	assert_int_equal(pthread_create(&th, NULL, release_main, &rel), 0);

	/* 40 calls at once, each with a 10 s deadline: none may wait for it. */
	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "name", "echo", "method", "ping",
				 "data", "x", "count", 40, "concurrency", 40, "timeout_ms", 10000));
	pthread_join(th, NULL);
	assert_false(h.timed_out); /* the releaser let it go, not the time limit */
	{
		char *s = json_dumps(o, JSON_COMPACT);

		printf("40 calls with A's owner held: %s (A refused %llu streams)\n", s,
		       rel.refused_seen);
		free(s);
	}
	errs = json_object_get(o, "errors");
	ok = json_integer_value(json_object_get(o, "ok"));
	transport = json_integer_value(json_object_get(errs, "transport"));
	/* Refused streams end as transport errors (reset by the provider);
	 * the queued ones are answered once the owner runs; none times out. */
	assert_true(transport >= 1);
	assert_true(ok >= 1);
	assert_int_equal(ok + transport, 40);
	assert_null(json_object_get(errs, "timeout"));
	json_decref(o);

	refused = simnode_get_int(&W.a, "/v1/svc/stats", "owner", "refused", NULL);
	assert_true(refused >= transport);
	assert_int_equal(simnode_get_int(&W.a, "/v1/svc/stats", "owner", "queued_data", NULL), 0);
	/* The fabric is whole again: a call goes through. */
	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s}", "name", "echo", "method", "ping", "data", "again"));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	json_decref(o);
	assert_int_equal(svc_hold_done(&h), 0);
}

/* Control requests run on the owner with a 2 s deadline: with the owner
 * held they answer 503 unavailable (no hang), and a publish that gave up
 * before the owner took it never happens (the owner skips a cancelled
 * request: it would write into a caller that left). */
static void test_owner_held_control(void **state)
{
	struct svc_node *asn = node_svc(W.a.node);
	static struct svc_hold h;
	json_t *o = NULL, *svcs;
	int st;

	(void)state;
	svc_hold_start(asn, &h);

	st = simnode_ctl(&W.a, "GET", "/v1/svc/stats", NULL, &o);
	assert_int_equal(st, 503);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(o, "error"), "code")),
	    "unavailable");
	json_decref(o);
	o = NULL;
	st = simnode_ctl(&W.a, "POST", "/v1/svc/publish",
			 json_pack("{s:s,s:s}", "name", "late", "backend", "tcp:127.0.0.1:9"), &o);
	assert_int_equal(st, 503);
	json_decref(o);

	svc_hold_release(&h);
	/* The owner runs again: the cancelled publish left nothing behind. */
	o = simnode_ok(&W.a, "GET", "/v1/svc/ls", NULL);
	svcs = json_object_get(o, "services");
	assert_non_null(svcs);
	for (size_t i = 0; i < json_array_size(svcs); i++)
		assert_string_not_equal(
		    json_string_value(json_object_get(json_array_get(svcs, i), "name")), "late");
	json_decref(o);
	assert_int_equal(svc_hold_done(&h), 0);
	assert_int_equal(simnode_get_int(&W.a, "/v1/svc/stats", "owner", "queued_data", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_owner_queue_full),
	    cmocka_unit_test(test_owner_held_control),
	};

	return cmocka_run_group_tests_name("sim_svc_owner", tests, setup, teardown);
}
