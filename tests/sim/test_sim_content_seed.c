// SPDX-License-Identifier: MIT
/*
 * A seed host's controls, on two complete nodes in this process on a
 * simulated network (every step through the control handlers):
 * - the job event stream (GET /v1/content/events?job=N) delivers progress
 *   lines and ends with the job's "done" line, whole bytes counted;
 * - pin: with a 3.5 MiB quota, a pinned 1 MiB blob survives when a fourth
 *   blob needs room; the oldest unpinned one is evicted instead;
 * - rm: removed at the provider, a later get of it from there fails with
 *   a clear "not found" error in seconds; rm of what is not held is a 404;
 *   rm of what a job is downloading is refused (409);
 * - cancel: a running download stops, reads "cancelled", its partial blob
 *   is deleted; cancelling it again is a 409, an unknown job a 404;
 * - rm of a share id: its record and the blobs no other share lists.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "simnode.h"
#include "testutil.h"
#include "weft/ctl.h"
#include "weft/log.h"
#include "weft/node.h"
#include "weft/simnet.h"

#define MIB (1u << 20)

static struct simnode A, B;
static struct simnet *SN;

static void slow_provider(struct weft_config *cfg)
{
	/* 100 ms per chunk: a 2 MiB download lasts long enough to cancel */
	cfg->test.content_serve_delay_ms = 100;
	cfg->test.content_req_timeout_ms = 3000;
}

static char last_share[41]; /* share id of the last add */

static void add(const char *dir, const char *name, size_t len, uint64_t seed, char *id)
{
	uint8_t *data = malloc(len);
	char path[700];
	json_t *o;

	assert_non_null(data);
	tu_fill(data, len, seed);
	assert_int_equal(tu_write(dir, name, data, len, 0600), 0);
	free(data);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	o = simnode_ok(&A, "POST", "/v1/content/add", json_pack("{s:[s]}", "paths", path));
	snprintf(id, 65, "%s",
		 json_string_value(
		     json_object_get(json_array_get(json_object_get(o, "items"), 0), "id")));
	snprintf(last_share, sizeof(last_share), "%s",
		 json_string_value(json_object_get(o, "share_id")));
	json_decref(o);
}

struct job {
	char path[64];
	long long n;
};

static void get(struct job *q, const char *id)
{
	json_t *o = simnode_ok(&B, "POST", "/v1/content/get",
			       json_pack("{s:s,s:[s]}", "id", id, "from", A.ip));

	q->n = json_integer_value(json_object_get(o, "job"));
	snprintf(q->path, sizeof(q->path), "/v1/content/jobs/%lld", q->n);
	json_decref(o);
}

static int job_done(void *arg)
{
	json_t *o = simnode_ok(&B, "GET", ((struct job *)arg)->path, NULL);
	int ok = json_is_true(json_object_get(o, "done"));

	json_decref(o);
	return ok;
}

static int job_fetched(void *arg)
{
	json_t *o = simnode_ok(&B, "GET", ((struct job *)arg)->path, NULL);
	int ok = json_integer_value(json_object_get(o, "fetched")) >= 2;

	json_decref(o);
	return ok;
}

static const char *job_state(struct job *q, char *buf, size_t len, char *err, size_t elen)
{
	json_t *o = simnode_ok(&B, "GET", q->path, NULL);

	snprintf(buf, len, "%s", json_string_value(json_object_get(o, "state")));
	if (err)
		snprintf(err, elen, "%s", json_string_value(json_object_get(o, "error")));
	json_decref(o);
	return buf;
}

static void fetch(const char *id)
{
	struct job q;
	char st[32];

	get(&q, id);
	assert_int_equal(simnode_wait(job_done, &q, 60000), 0);
	assert_string_equal(job_state(&q, st, sizeof(st), NULL, 0), "done");
}

/* Whether x's GET /v1/content lists, in its array kind ("blobs",
 * "shares"), an entry whose field is id. */
static int lists(struct simnode *x, const char *kind, const char *field, const char *id)
{
	json_t *o = simnode_ok(x, "GET", "/v1/content", NULL), *e;
	size_t i;
	int found = 0;

	json_array_foreach(json_object_get(o, kind), i, e) found |=
	    !strcmp(json_string_value(json_object_get(e, field)), id);
	json_decref(o);
	return found;
}

/* B holds id (complete)? */
static int holds(const char *id)
{
	return lists(&B, "blobs", "id", id);
}

/* The event stream of job q on B, read to its end: lines seen, the last
 * one's event kind and bytes. */
static void watch(struct job *q, unsigned int *lines, char *last, size_t lastlen, long long *done,
		  long long *total)
{
	struct ctl_req req = {.method = "GET", .path = "/v1/content/events"};
	struct ctl_resp resp = {.status = 200};
	char buf[8192];
	struct log_ctx *prev;
	long n;

	/* the handler reads ?job= through ctl_req_query, which needs an MHD
	 * connection: the in-process request carries no query, so every
	 * job's events come, filtered here */
	prev = log_bind(node_log(B.node));
	ctl_dispatch(node_ctl(B.node), &req, &resp);
	log_bind(prev);
	assert_int_equal(resp.status, 200);
	assert_non_null(resp.stream_read);
	*lines = 0;
	last[0] = 0;
	/* each read returns within 2 s: 60 reads is a deadline of 2 min */
	for (int reads = 0;
	     reads < 60 && (n = resp.stream_read(resp.stream_arg, buf, sizeof(buf) - 1)) > 0;
	     reads++) {
		buf[n] = 0;
		for (char *p = buf, *e; (e = strchr(p, '\n')); p = e + 1) {
			json_t *ev;

			*e = 0;
			ev = json_loads(p, 0, NULL);
			assert_non_null(ev);
			if (json_integer_value(json_object_get(ev, "job")) == q->n) {
				(*lines)++;
				snprintf(last, lastlen, "%s",
					 json_string_value(json_object_get(ev, "event")));
				*done = json_integer_value(json_object_get(ev, "done_bytes"));
				*total = json_integer_value(json_object_get(ev, "total_bytes"));
			}
			json_decref(ev);
		}
		if (strcmp(last, "progress") && last[0])
			break; /* its end */
	}
	resp.stream_done(resp.stream_arg);
}

static void test_seed_controls(void **state)
{
	struct simnet_opts so = {.seed = 31, .clock = SIMNET_CLOCK_REAL};
	static const char *const a_set[] = {"quic.idle_timeout_ms=3000", NULL};
	static const char *const b_set[] = {"quic.idle_timeout_ms=3000", "content.quota=3670016",
					    NULL};
	struct simnet_link lan = {.latency_us = 300, .jitter_us = 100};
	char *dir = tu_tmpdir(), f[7][65], st[32], err[200];
	long long done = 0, total = 0;
	unsigned int lines;
	struct job q;
	json_t *o;

	(void)state;
	assert_non_null(dir);
	assert_int_equal(simnet_new(&SN, &so), 0);
	simnode_new(&A, SN, "a", "198.51.100.1", NULL, a_set, slow_provider, NULL);
	simnode_new(&B, SN, "b", "198.51.100.2", NULL, b_set, NULL, NULL);
	simnet_host_set_link(A.host, &lan);
	simnet_host_set_link(B.host, &lan);
	for (int i = 1; i <= 5; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d.bin", i);
		add(dir, name, MIB, (uint64_t)i, f[i]);
	}
	add(dir, "f6.bin", 2 * MIB, 6, f[6]);

	/* events: progress lines, then "done" with every byte */
	get(&q, f[1]);
	watch(&q, &lines, st, sizeof(st), &done, &total);
	assert_string_equal(st, "done");
	assert_true(lines >= 1);
	assert_int_equal(done, MIB);
	assert_int_equal(total, MIB);

	/* pin f1; f2 and f3 fill the 3.5 MiB quota to 3; f4 evicts f2 */
	o = simnode_ok(&B, "POST", "/v1/content/pin", json_pack("{s:s}", "id", f[1]));
	assert_true(json_is_true(json_object_get(o, "pinned")));
	json_decref(o);
	o = simnode_ok(&B, "GET", "/v1/content/pins", NULL);
	assert_int_equal(json_array_size(json_object_get(o, "pins")), 1);
	json_decref(o);
	fetch(f[2]);
	sleep(1); /* "added" is in whole seconds: f3 is younger than f2 */
	fetch(f[3]);
	fetch(f[4]);
	assert_true(holds(f[1]));
	assert_false(holds(f[2]));
	assert_true(holds(f[3]));
	assert_true(holds(f[4]));
	assert_int_equal(simnode_get_int(&B, "/v1/content/stats", "evicted", NULL), 1);

	/* rm at the provider: B's get of it fails in seconds, clearly */
	o = simnode_ok(&A, "POST", "/v1/content/rm", json_pack("{s:s}", "id", f[5]));
	assert_int_equal(json_integer_value(json_object_get(o, "blobs")), 1);
	json_decref(o);
	assert_int_equal(
	    simnode_ctl(&A, "POST", "/v1/content/rm", json_pack("{s:s}", "id", f[5]), &o), 404);
	{
		char *txt = json_dumps(o, 0);

		assert_non_null(strstr(txt, "not held here"));
		free(txt);
	}
	json_decref(o);
	get(&q, f[5]);
	assert_int_equal(simnode_wait(job_done, &q, 30000), 0);
	assert_string_equal(job_state(&q, st, sizeof(st), err, sizeof(err)), "failed");
	assert_non_null(strstr(err, "not found"));
	print_message("get after rm: %s\n", err);

	/* rm on B makes room; then cancel a running 2 MiB download */
	json_decref(simnode_ok(&B, "POST", "/v1/content/rm", json_pack("{s:s}", "id", f[3])));
	json_decref(simnode_ok(&B, "POST", "/v1/content/rm", json_pack("{s:s}", "id", f[4])));
	assert_false(holds(f[3]));
	get(&q, f[6]);
	assert_int_equal(simnode_wait(job_fetched, &q, 30000), 0);
	assert_int_equal(
	    simnode_ctl(&B, "POST", "/v1/content/rm", json_pack("{s:s}", "id", f[6]), NULL), 409);
	o = simnode_ok(&B, "POST", "/v1/content/cancel",
		       json_pack("{s:I}", "job", (json_int_t)q.n));
	assert_string_equal(json_string_value(json_object_get(o, "state")), "cancelled");
	assert_true(json_is_true(json_object_get(o, "partial_deleted")));
	json_decref(o);
	assert_string_equal(job_state(&q, st, sizeof(st), NULL, 0), "cancelled");
	assert_false(holds(f[6]));
	assert_int_equal(simnode_ctl(&B, "POST", "/v1/content/cancel",
				     json_pack("{s:I}", "job", (json_int_t)q.n), NULL),
			 409);
	assert_int_equal(simnode_ctl(&B, "POST", "/v1/content/cancel",
				     json_pack("{s:I}", "job", (json_int_t)9999), NULL),
			 404);
	assert_int_equal(
	    simnode_ctl(&B, "POST", "/v1/content/pin", json_pack("{s:s}", "id", "zz"), NULL), 400);

	/* rm of a share (f6's, the last added): its record and its blob.
	 * Gone from A's stored shares. GET /v1/content/shares/ID of a share
	 * not held is a browse, which looks for it on the network: no
	 * lookup finds a provider (B fetched none of it), 404 after
	 * CN_NOTFOUND_DHT_MS, not the 60 s a download waits for one. */
	assert_int_equal(strlen(last_share), 40);
	assert_true(lists(&A, "shares", "share_id", last_share));
	o = simnode_ok(&A, "POST", "/v1/content/rm", json_pack("{s:s}", "id", last_share));
	assert_string_equal(json_string_value(json_object_get(o, "kind")), "share");
	assert_int_equal(json_integer_value(json_object_get(o, "blobs")), 1);
	json_decref(o);
	assert_false(lists(&A, "shares", "share_id", last_share));
	{
		char path[80];
		json_t *e404 = NULL;
		const char *msg;

		snprintf(path, sizeof(path), "/v1/content/shares/%s", last_share);
		assert_int_equal(simnode_ctl(&A, "GET", path, NULL, &e404), 404);
		msg = json_string_value(
		    json_object_get(json_object_get(e404, "error"), "message"));
		assert_non_null(msg);
		assert_non_null(strstr(msg, "no provider of this share found in the DHT"));
		json_decref(e404);
	}

	simnode_free(&B);
	simnode_free(&A);
	simnet_free(SN);
	tu_rmrf_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seed_controls),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("sim_content_seed", tests, NULL, NULL);
}
