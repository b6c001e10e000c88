// SPDX-License-Identifier: MIT
/*
 * A node whose bootstrap is down when it starts joins the DHT once the
 * bootstrap comes up (simnet, complete nodes in this process, no root):
 * weftd keeps its bootstrap addresses and pings them again while its
 * routing table is empty, after 1 s and then twice as long each time (up
 * to a minute). Before, a node pinged its bootstrap once (plus the
 * query's one retry) and stayed alone for good when both were lost.
 *
 * After dhtnode_cancel (the node's shutdown) dhtnode_run starts nothing:
 * a community's sync thread, still running then, started a lookup whose
 * cancelled callback ran from dhtnode_free into the community module
 * freed before it (a use after free CI's AddressSanitizer caught in
 * test_community_net). And a control request waiting on a lookup when
 * the node stops answers at once (503 shutting_down): it held ctl_free,
 * and so weftd's stop, up to the request's 35 s deadline (the stress
 * recipe's SIGTERM churn found a stop stuck 20 s). So does a ping in
 * flight when the engine stops (a bench's could hold the stop 10 min).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/node_int.h"
#include "simnode.h"
#include "testutil.h"
#include "weft/dhtnode.h"
#include "weft/engine.h"
#include "weft/simnet.h"

static struct simnet *net;
static struct simnode boot, a;

static int joined(void *arg)
{
	(void)arg;
	return simnode_get_int(&a, "/v1/dht/status", "nodes4", NULL) >= 1;
}

/* BOOT, down when boot_down, then A with BOOT as its bootstrap. */
static void boot_and_a(uint64_t seed, int boot_down)
{
	struct simnet_opts so = { .seed = seed, .clock = SIMNET_CLOCK_REAL };
	static const char *const set[] = { "dht.bootstrap=198.51.100.2:6881", NULL };

	assert_int_equal(simnet_new(&net, &so), 0);
	simnode_new(&boot, net, "BOOT", "198.51.100.2", NULL, NULL, NULL, NULL);
	simnet_host_set_down(boot.host, boot_down);
	simnode_new(&a, net, "A", "203.0.113.1", NULL, set, NULL, NULL);
}

static void test_bootstrap_late(void **state)
{
	(void)state;
	boot_and_a(21, 1);
	/* Past the first ping and its retry (2 s): nobody answered. */
	usleep(3 * 1000 * 1000);
	assert_int_equal(simnode_get_int(&a, "/v1/dht/status", "nodes4", NULL), 0);
	simnet_host_set_down(boot.host, 0);
	/* Retries at 1, 3 and 7 s after the start: within 12 s of now. */
	assert_int_equal(simnode_wait(joined, NULL, 12000), 0);
	simnode_free(&a);
	simnode_free(&boot);
	simnet_free(net);
}

static void count_fn(struct dht *dht, void *arg, uint64_t now_ms)
{
	(void)dht;
	(void)now_ms;
	(*(int *)arg)++;
}

static void test_run_refused_after_cancel(void **state)
{
	struct simnet_opts so = { .seed = 22, .clock = SIMNET_CLOCK_REAL };
	struct node *n;
	int ran = 0;

	(void)state;
	assert_int_equal(simnet_new(&net, &so), 0);
	simnode_new(&a, net, "A", "203.0.113.1", NULL, NULL, NULL, NULL);
	n = a.node;
	assert_int_equal(dhtnode_run(n->dht, count_fn, &ran), 0); /* on worker 0 */
	assert_int_equal(ran, 1);
	engine_stop(n->engine);
	assert_int_equal(dhtnode_run(n->dht, count_fn, &ran), 0); /* no worker: here */
	assert_int_equal(ran, 2);
	dhtnode_cancel(n->dht);
	assert_int_equal(dhtnode_run(n->dht, count_fn, &ran), -ESHUTDOWN);
	assert_int_equal(ran, 2);
	simnode_free(&a); /* stops and cancels again: both idempotent */
	simnet_free(net);
}

struct req {
	int status;
	json_t *out;
	const char *route; /* dial_thread: /v1/quic/ping or /v1/quic/handshakes */
};

/* The request's thread ends with 503 shutting_down; then the lab goes. */
static void answered_shutting_down(pthread_t th, struct req *r)
{
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(r->status, 503);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r->out, "error"), "code")),
			    "shutting_down");
	json_decref(r->out);
	simnode_free(&a);
	simnode_free(&boot);
	simnet_free(net);
}

static void *lookup_thread(void *arg)
{
	struct req *r = arg;
	json_t *body = json_pack("{s:s}", "infohash", "0123456789abcdef0123456789abcdef01234567");

	r->status = simnode_ctl(&a, "POST", "/v1/dht/get-peers", body, &r->out);
	return NULL;
}

static int lookup_running(void *arg)
{
	(void)arg;
	return simnode_get_int(&a, "/v1/dht/status", "lookups", NULL) >= 1;
}

static void test_lookup_answers_at_stop(void **state)
{
	struct req r = { 0 };
	pthread_t th;

	(void)state;
	boot_and_a(23, 0);
	assert_int_equal(simnode_wait(joined, NULL, 12000), 0);
	/* A's only contact stops answering: a lookup waits out its queries */
	simnet_host_set_down(boot.host, 1);
	assert_int_equal(pthread_create(&th, NULL, lookup_thread, &r), 0);
	assert_int_equal(simnode_wait(lookup_running, NULL, 5000), 0);
	dhtnode_cancel(a.node->dht); /* the first step of node_free */
	answered_shutting_down(th, &r);
}

static void *dial_thread(void *arg)
{
	struct req *r = arg;
	char target[128];
	json_t *body;

	snprintf(target, sizeof(target), "%s@198.51.100.2:4433", boot.key);
	body = json_pack("{s:s,s:i}", "peer", target, "timeout_ms", 30000);
	if (!strcmp(r->route, "/v1/quic/handshakes"))
		json_object_set_new(body, "count", json_integer(4));
	r->status = simnode_ctl(&a, "POST", r->route, body, &r->out);
	return NULL;
}

static int dialing(void *arg)
{
	(void)arg;
	return simnode_get_int(&a, "/v1/quic/stats", "total", "conns_dialed", NULL) >= 1;
}

/* A dial in flight (ping, or a run of handshakes) when the engine stops. */
static void dial_answers_at_stop(const char *route)
{
	struct req r = { .route = route };
	pthread_t th;

	boot_and_a(24, 1); /* BOOT never answers: the dial waits its 30 s */
	assert_int_equal(pthread_create(&th, NULL, dial_thread, &r), 0);
	assert_int_equal(simnode_wait(dialing, NULL, 5000), 0);
	engine_stop(a.node->engine);
	answered_shutting_down(th, &r);
}

static void test_ping_answers_at_stop(void **state)
{
	(void)state;
	dial_answers_at_stop("/v1/quic/ping");
}

static void test_handshakes_answer_at_stop(void **state)
{
	(void)state;
	dial_answers_at_stop("/v1/quic/handshakes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bootstrap_late),
		cmocka_unit_test(test_run_refused_after_cancel),
		cmocka_unit_test(test_lookup_answers_at_stop),
		cmocka_unit_test(test_ping_answers_at_stop),
		cmocka_unit_test(test_handshakes_answer_at_stop),
	};

	return cmocka_run_group_tests_name("sim_dht_boot", tests, NULL, NULL);
}
