// SPDX-License-Identifier: MIT
/*
 * The service directory's choices across providers (simnet, no root):
 *
 *   B  198.51.100.2   public DHT bootstrap
 *   P1 198.51.100.11  echo 1.2.0, then a private service and one with limits
 *   P2 198.51.100.12  echo 2.0.0, mesh-stats
 *   P3 198.51.100.13  echo 1.5.3
 *   C  198.51.100.3   the caller
 *   X  198.51.100.4   a node the private service is not shown to
 *
 *  - versions: three versions of echo coexist; C's find with a range
 *    returns exactly those within it, and a call with a range reaches a
 *    provider of that version;
 *  - reputation: the provider C ranked first turns slow (its link gets
 *    40 ms each way); after calls to both, C ranks the other one first and
 *    shows the latencies it measured;
 *  - mesh-stats: GetMeshStatus and GetPeersSummary answer aggregates,
 *    without a key or an address in them;
 *  - per-service limits: a service published with calls_per_min 3 and
 *    max_payload 100 answers too_large and rate_limited past them;
 *  - visibility: a service shown only to C's key is found by C, not by X;
 *  - failover: C calls echo in a loop; the provider answering is cut off
 *    the network; C sees at most one failed call, then its calls are
 *    answered by another provider and the dead one is marked dead.
 *  - retry policies: with the provider ranked first cut off after C
 *    called it (its REQUEST leaves on the pooled connection, no answer),
 *    a call with retry "never" fails after that one attempt; with
 *    "always" the next provider answers it (2 attempts) within 4 s;
 *  - stream failover: the provider C ranks first is cut off; a stream C
 *    opens to echo is refused by nobody: its open at the dead one ends
 *    unanswered (half the time), the next provider accepts it, and its
 *    echo comes back byte for byte.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <semaphore.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "weft/node.h"
#include "weft/simnet.h"
#include "weft/svc_node.h"
#include "world.h"

struct scene {
	struct world w;
	struct simnode b, p1, p2, p3, c, x;
};

static struct scene W;

struct ann {
	struct simnode *n;
	const char *name;
};

/* 1 when n's publication name was stored on at least one DHT node. */
static int announced(void *arg)
{
	struct ann *a = arg;
	json_t *o = simnode_ok(a->n, "GET", "/v1/svc/ls", NULL), *s;
	size_t i;
	int ok = 0;

	json_array_foreach(json_object_get(o, "services"), i,
			   s) if (!strcmp(json_string_value(json_object_get(s, "name")), a->name))
	    ok = json_integer_value(json_object_get(s, "announced")) >= 1;
	json_decref(o);
	return ok;
}

static void publish(struct simnode *n, json_t *body)
{
	struct ann a = {.n = n, .name = json_string_value(json_object_get(body, "name"))};
	char name[64];

	snprintf(name, sizeof(name), "%s", a.name);
	a.name = name;
	json_decref(simnode_ok(n, "POST", "/v1/svc/publish", body));
	assert_int_equal(simnode_wait(announced, &a, 20000), 0);
}

static int setup(void **state)
{
	(void)state;
	world_new(&W.w, 2727);
	world_bootstrap(&W.w, &W.b, NULL);
	world_node(&W.w, &W.p1, "P1", "198.51.100.11", NULL, NULL);
	world_node(&W.w, &W.p2, "P2", "198.51.100.12", NULL, NULL);
	world_node(&W.w, &W.p3, "P3", "198.51.100.13", NULL, NULL);
	world_node(&W.w, &W.c, "C", "198.51.100.3", NULL, NULL);
	world_node(&W.w, &W.x, "X", "198.51.100.4", NULL, NULL);
	world_dht_formed(2, 30000, &W.p1, &W.p2, &W.p3, &W.c, &W.x, NULL);
	publish(&W.p1,
		json_pack("{s:s,s:s,s:s}", "name", "echo", "backend", "builtin", "version", "1.2"));
	publish(&W.p2, json_pack("{s:s,s:s,s:s}", "name", "echo", "backend", "builtin", "version",
				 "2.0.0"));
	publish(&W.p3, json_pack("{s:s,s:s,s:s}", "name", "echo", "backend", "builtin", "version",
				 "1.5.3"));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

static json_t *find(struct simnode *n, const char *name, const char *range)
{
	return simnode_ok(n, "POST", "/v1/svc/find",
			  range ? json_pack("{s:s,s:s}", "name", name, "version", range)
				: json_pack("{s:s}", "name", name));
}

/* Index of owner key in a find answer's results, -1 if absent. */
static int index_of(json_t *o, const char *key)
{
	json_t *r;
	size_t i;

	json_array_foreach(
	    json_object_get(o, "results"), i,
	    r) if (!strcmp(json_string_value(json_object_get(r, "owner")), key)) return (int)i;
	return -1;
}

static json_t *call(struct simnode *n, const char *name, const char *method, const char *range,
		    int *status)
{
	json_t *body = json_pack("{s:s,s:s,s:s,s:i}", "name", name, "method", method, "data",
				 "hello", "timeout_ms", 4000),
	       *o = NULL;

	if (range)
		json_object_set_new(body, "version", json_string(range));
	*status = simnode_ctl(n, "POST", "/v1/svc/call", body, &o);
	return o;
}

static void test_versions(void **state)
{
	json_t *o;
	int st;

	(void)state;
	o = find(&W.c, "echo", NULL);
	assert_int_equal(json_array_size(json_object_get(o, "results")), 3);
	json_decref(o);

	o = find(&W.c, "echo", ">=1.2,<2");
	assert_int_equal(json_array_size(json_object_get(o, "results")), 2);
	assert_true(index_of(o, W.p1.key) >= 0);
	assert_true(index_of(o, W.p3.key) >= 0);
	assert_int_equal(index_of(o, W.p2.key), -1);
	json_decref(o);

	o = find(&W.c, "echo", ">=2");
	assert_int_equal(json_array_size(json_object_get(o, "results")), 1);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(o, "results"), 0), "version_str")),
			    "2.0.0");
	json_decref(o);
	o = find(&W.c, "echo", "=1.2.0");
	assert_int_equal(index_of(o, W.p1.key), 0);
	assert_int_equal(json_array_size(json_object_get(o, "results")), 1);
	json_decref(o);

	assert_int_equal(simnode_ctl(&W.c, "POST", "/v1/svc/find",
				     json_pack("{s:s,s:s}", "name", "echo", "version", ">=1.2,<"),
				     NULL),
			 400);
	assert_int_equal(simnode_ctl(&W.c, "POST", "/v1/svc/publish",
				     json_pack("{s:s,s:s,s:s}", "name", "mesh-stats", "backend",
					       "builtin", "version", "1.02"),
				     NULL),
			 400);

	o = call(&W.c, "echo", "x", ">=2", &st);
	assert_int_equal(st, 200);
	assert_string_equal(json_string_value(json_object_get(o, "peer")), W.p2.key);
	assert_string_equal(json_string_value(json_object_get(o, "data")), "hello");
	json_decref(o);
	o = call(&W.c, "echo", "x", "=1.5.3", &st);
	assert_int_equal(st, 200);
	assert_string_equal(json_string_value(json_object_get(o, "peer")), W.p3.key);
	json_decref(o);
	o = call(&W.c, "echo", "x", ">=3", &st);
	assert_int_equal(st, 404);
	json_decref(o);
}

static void test_limits(void **state)
{
	static const char big[] = "0123456789012345678901234567890123456789012345678901234567890"
				  "1234567890123456789012345678901234567890123456789";
	json_t *o, *s;
	size_t i;
	int st, limited = 0, other = 0;

	(void)state;
	/* limits on a built-in are refused (it keeps the node's) */
	assert_int_equal(simnode_ctl(&W.p1, "POST", "/v1/svc/publish",
				     json_pack("{s:s,s:s,s:{s:i}}", "name", "mesh-stats", "backend",
					       "builtin", "limits", "calls_per_min", 3),
				     NULL),
			 400);
	/* a backend where nothing listens: admission is what is tested */
	publish(&W.p1, json_pack("{s:s,s:s,s:{s:i,s:i},s:{s:s}}", "name", "lim", "backend",
				 "tcp:127.0.0.1:9", "limits", "calls_per_min", 3, "max_payload",
				 100, "meta", "team", "ops"));
	o = simnode_ok(&W.p1, "GET", "/v1/svc/ls", NULL);
	json_array_foreach(json_object_get(o, "services"), i,
			   s) if (!strcmp(json_string_value(json_object_get(s, "name")), "lim"))
	{
		assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "limits"),
								    "calls_per_min")),
				 3);
		assert_string_equal(
		    json_string_value(json_object_get(json_object_get(s, "meta"), "team")), "ops");
	}
	json_decref(o);

	o = simnode_ok(&W.c, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s}", "name", "lim", "method", "m", "data", big));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "too_large");
	json_decref(o);
	for (int k = 0; k < 6; k++) {
		o = call(&W.c, "lim", "m", NULL, &st);
		assert_int_equal(st, 200);
		if (!strcmp(json_string_value(json_object_get(o, "error")), "rate_limited"))
			limited++;
		else
			other++;
		json_decref(o);
	}
	/* 3 calls a minute reach the backend, the rest are refused */
	assert_int_equal(other, 3);
	assert_int_equal(limited, 3);
}

static void test_visibility(void **state)
{
	json_t *o;
	int st;

	(void)state;
	publish(&W.p1, json_pack("{s:s,s:s,s:[s]}", "name", "secret", "backend", "tcp:127.0.0.1:9",
				 "visible_to", W.c.key));
	o = find(&W.c, "secret", NULL);
	assert_int_equal(json_array_size(json_object_get(o, "results")), 1);
	assert_int_equal(index_of(o, W.p1.key), 0);
	json_decref(o);
	o = find(&W.x, "secret", NULL);
	assert_int_equal(json_array_size(json_object_get(o, "results")), 0);
	json_decref(o);
	o = call(&W.x, "secret", "m", NULL, &st);
	assert_int_equal(st, 404);
	json_decref(o);
	assert_int_equal(simnode_ctl(&W.p1, "POST", "/v1/svc/publish",
				     json_pack("{s:s,s:s,s:[s]}", "name", "secret2", "backend",
					       "tcp:127.0.0.1:9", "visible_to", "abcd"),
				     NULL),
			 400);
}

static void no_secrets(const char *text)
{
	const struct simnode *all[] = {&W.b, &W.p1, &W.p2, &W.p3, &W.c, &W.x};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		char k16[17];

		snprintf(k16, sizeof(k16), "%.16s", all[i]->key);
		if (strstr(text, k16) || strstr(text, all[i]->ip))
			fail_msg("mesh-stats leaks %s: %s", all[i]->name, text);
	}
}

static void test_mesh_stats(void **state)
{
	json_t *o, *d;
	const char *text;
	int st;

	(void)state;
	publish(&W.p2, json_pack("{s:s,s:s}", "name", "mesh-stats", "backend", "builtin"));
	o = call(&W.c, "mesh-stats", "GetMeshStatus", NULL, &st);
	assert_int_equal(st, 200);
	assert_string_equal(json_string_value(json_object_get(o, "peer")), W.p2.key);
	text = json_string_value(json_object_get(o, "data"));
	assert_non_null(text);
	no_secrets(text);
	d = json_loads(text, 0, NULL);
	assert_non_null(d);
	assert_string_equal(json_string_value(json_object_get(d, "method")), "GetMeshStatus");
	assert_true(json_integer_value(json_object_get(d, "services")) >= 2);
	assert_true(json_integer_value(json_object_get(json_object_get(d, "results"), "ok")) >= 1);
	json_decref(d);
	json_decref(o);

	o = call(&W.c, "mesh-stats", "GetPeersSummary", NULL, &st);
	assert_int_equal(st, 200);
	text = json_string_value(json_object_get(o, "data"));
	no_secrets(text);
	d = json_loads(text, 0, NULL);
	assert_non_null(d);
	assert_true(json_integer_value(json_object_get(d, "peers_tracked")) >= 1);
	assert_non_null(json_object_get(d, "bans"));
	json_decref(d);
	json_decref(o);
}

static void test_reputation(void **state)
{
	struct simnet_link slow = {.latency_us = 40000}, fast = {0};
	struct simnode *s, *f;
	const char *sv, *fv;
	json_t *o, *rs, *rf;
	int st;

	(void)state;
	/* whichever of P1 and P3 C ranks first now turns slow */
	o = find(&W.c, "echo", ">=1.2,<2");
	s = index_of(o, W.p1.key) < index_of(o, W.p3.key) ? &W.p1 : &W.p3;
	f = s == &W.p1 ? &W.p3 : &W.p1;
	sv = s == &W.p1 ? "=1.2.0" : "=1.5.3";
	fv = s == &W.p1 ? "=1.5.3" : "=1.2.0";
	json_decref(o);
	simnet_host_set_link(s->host, &slow);
	for (int k = 0; k < 4; k++) {
		json_decref(call(&W.c, "echo", "x", sv, &st));
		assert_int_equal(st, 200);
		json_decref(call(&W.c, "echo", "x", fv, &st));
		assert_int_equal(st, 200);
	}
	simnet_host_set_link(s->host, &fast);
	o = find(&W.c, "echo", ">=1.2,<2");
	if (index_of(o, f->key) > index_of(o, s->key)) {
		char *t = json_dumps(o, JSON_COMPACT);

		fprintf(stderr, "%s\n", t);
		free(t);
		json_decref(o);
		fail_msg("slow %s ranked before fast %s", s->name, f->name);
	}
	rs = json_array_get(json_object_get(o, "results"), (size_t)index_of(o, s->key));
	rf = json_array_get(json_object_get(o, "results"), (size_t)index_of(o, f->key));
	assert_true(json_integer_value(json_object_get(rs, "calls_ok")) >= 4);
	assert_true(json_integer_value(json_object_get(rs, "latency_us")) >
		    json_integer_value(json_object_get(rf, "latency_us")));
	/* 80 ms round trips on the slow one: four samples move the EWMA (weight
	 * 1/8) 41% of the way from a sub-ms start, 33 ms at least */
	assert_true(json_integer_value(json_object_get(rs, "latency_us")) >= 20000);
	json_decref(o);
}

static void test_failover(void **state)
{
	char first[65] = "";
	int failed = 0, st, after = 0;
	struct simnode *dead = NULL;
	json_t *o;

	(void)state;
	for (int k = 0; k < 14; k++) {
		o = call(&W.c, "echo", "x", NULL, &st);
		if (st != 200 || strcmp(json_string_value(json_object_get(o, "error")), "ok")) {
			failed++;
			json_decref(o);
			continue;
		}
		if (k == 2) {
			/* the provider answering now is cut off the network */
			snprintf(first, sizeof(first), "%s",
				 json_string_value(json_object_get(o, "peer")));
			dead = !strcmp(first, W.p1.key)	  ? &W.p1
			       : !strcmp(first, W.p2.key) ? &W.p2
							  : &W.p3;
			simnet_host_set_down(dead->host, 1);
		} else if (dead) {
			assert_string_not_equal(json_string_value(json_object_get(o, "peer")),
						dead->key);
			after++;
		}
		json_decref(o);
	}
	assert_non_null(dead);
	assert_true(failed <= 1);
	assert_true(after >= 10);
	o = find(&W.c, "echo", NULL);
	{
		int i = index_of(o, dead->key);
		json_t *r = json_array_get(json_object_get(o, "results"), (size_t)i);

		assert_true(i >= 0);
		assert_int_equal(i, (int)json_array_size(json_object_get(o, "results")) - 1);
		assert_true(json_is_true(json_object_get(r, "dead")));
	}
	json_decref(o);
	simnet_host_set_down(dead->host, 0);
}


struct released {
	sem_t sem;
	struct svc_node_stream_info info;
};

static void on_release(void *arg, int fd, const struct svc_node_stream_info *i)
{
	struct released *e = arg;

	e->info = *i;
	close(fd);
	sem_post(&e->sem);
}

/* Read exactly len bytes from fd within ms: 0 or -1. */
static int read_all(int fd, char *buf, size_t len, int ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t k;

		if (poll(&p, 1, ms) <= 0)
			return -1;
		k = read(fd, buf + got, len - got);
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

static void test_stream_failover(void **state)
{
	struct svc_node_stream_info info;
	struct svc_node_stream *st = NULL;
	struct released e;
	struct simnode *dead;
	char first[65], back[16], peer[65];
	struct timespec ts;
	int sv[2], r;
	json_t *o;

	(void)state;
	o = find(&W.c, "echo", NULL);
	snprintf(first, sizeof(first), "%s",
		 json_string_value(json_object_get(json_array_get(json_object_get(o, "results"), 0),
						   "owner")));
	json_decref(o);
	dead = !strcmp(first, W.p1.key) ? &W.p1 : !strcmp(first, W.p2.key) ? &W.p2 : &W.p3;
	simnet_host_set_down(dead->host, 1);
	r = svc_node_stream_open(node_svc(W.c.node), "echo", "bytes", 0, 8000, &st, &info);
	assert_int_equal(r, 0);
	assert_non_null(st);
	for (int i = 0; i < 32; i++)
		snprintf(peer + 2 * i, 3, "%02x", info.peer[i]);
	assert_string_not_equal(peer, dead->key);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	sem_init(&e.sem, 0, 0);
	assert_int_equal(svc_node_stream_attach(st, sv[1], NULL, 0, on_release, &e), 0);
	assert_int_equal(write(sv[0], "hello stream", 12), 12);
	assert_int_equal(read_all(sv[0], back, 12, 20000), 0);
	assert_memory_equal(back, "hello stream", 12);
	shutdown(sv[0], SHUT_WR);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	assert_int_equal(sem_timedwait(&e.sem, &ts), 0);
	assert_int_equal(e.info.err, 0);
	close(sv[0]);
	/* the dead one was marked so */
	o = find(&W.c, "echo", NULL);
	{
		int i = index_of(o, dead->key);

		assert_true(i >= 0);
		assert_true(json_is_true(json_object_get(
		    json_array_get(json_object_get(o, "results"), (size_t)i), "dead")));
	}
	json_decref(o);
	simnet_host_set_down(dead->host, 0);
}

/* The first of find's results for echo, as a node, and a version range
 * that selects it alone (versions 1.2, 2.0.0, 1.5.3). */
static struct simnode *first_echo(const char **range)
{
	json_t *o = find(&W.c, "echo", NULL);
	const char *k = json_string_value(
	    json_object_get(json_array_get(json_object_get(o, "results"), 0), "owner"));
	struct simnode *n = !strcmp(k, W.p1.key) ? &W.p1 : !strcmp(k, W.p2.key) ? &W.p2 : &W.p3;

	json_decref(o);
	*range = n == &W.p1 ? "<1.5" : n == &W.p2 ? ">=2" : ">=1.5,<2";
	return n;
}

/* C calls echo with a retry policy: the HTTP status, attempts, peer. */
static json_t *call_retry(const char *retry, const char *range, int *status)
{
	json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:i}", "name", "echo", "method", "x", "data",
				 "hello", "retry", retry, "timeout_ms", 4000),
	       *o = NULL;

	if (range)
		json_object_set_new(body, "version", json_string(range));
	*status = simnode_ctl(&W.c, "POST", "/v1/svc/call", body, &o);
	return o;
}

static void test_retry_policies(void **state)
{
	const char *range;
	struct simnode *f, *g;
	json_t *o;
	int st;

	(void)state;
	/* every provider answers once: the dead marks of the tests before
	 * are gone (a provider that answers is no longer dead) */
	for (int i = 0; i < 3; i++) {
		static const char *const r[3] = {"<1.5", ">=2", ">=1.5,<2"};

		o = call(&W.c, "echo", "x", r[i], &st);
		assert_int_equal(st, 200);
		json_decref(o);
	}
	/* never: F (first, its connection up) is cut; one attempt, failed */
	f = first_echo(&range);
	o = call(&W.c, "echo", "x", range, &st);
	assert_int_equal(st, 200);
	assert_string_equal(json_string_value(json_object_get(o, "peer")), f->key);
	json_decref(o);
	simnet_host_set_down(f->host, 1);
	o = call_retry("never", NULL, &st);
	assert_true(st != 200 || strcmp(json_string_value(json_object_get(o, "error")), "ok"));
	if (st == 200)
		assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 1);
	json_decref(o);
	/* always: G (first now, F is marked dead) is cut after a call: its
	 * REQUEST leaves and is never answered; the next provider answers */
	g = first_echo(&range);
	assert_ptr_not_equal(g, f);
	o = call(&W.c, "echo", "x", range, &st);
	assert_int_equal(st, 200);
	assert_string_equal(json_string_value(json_object_get(o, "peer")), g->key);
	json_decref(o);
	simnet_host_set_down(g->host, 1);
	o = call_retry("always", NULL, &st);
	assert_int_equal(st, 200);
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 2);
	assert_string_not_equal(json_string_value(json_object_get(o, "peer")), g->key);
	assert_string_not_equal(json_string_value(json_object_get(o, "peer")), f->key);
	json_decref(o);
	simnet_host_set_down(f->host, 0);
	simnet_host_set_down(g->host, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_versions),   cmocka_unit_test(test_reputation),
	    cmocka_unit_test(test_mesh_stats), cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_visibility), cmocka_unit_test(test_failover),
	    cmocka_unit_test(test_stream_failover),
	    cmocka_unit_test(test_retry_policies),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
