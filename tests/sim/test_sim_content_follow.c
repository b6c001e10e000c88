// SPDX-License-Identifier: MIT
/*
 * A share followed while it changes, in this process (the in-process port
 * of the first part of tests/integration/test_content_heads.sh; no root,
 * no namespace): on a simulated network, P publishes the share "photos"
 * (a.txt and a 2 MiB big.bin); S, a seed host, follows it by KEY/NAME and
 * F by its magnet link. Update 1 changes a.txt only: both followers take
 * version 2 and each fetches that one chunk (big.bin's 8 are kept).
 * Update 2 is published while F is down; then P goes down too and F comes
 * back: F takes version 3 through S, which fetched it and holds the head
 * (the BEP 46 item) and the chunks. F's copy of the new a.txt matches the
 * publisher's. Bad input: a magnet with a 65-byte salt is refused and no
 * subscription is added. Every step goes through the control handlers
 * (ctl_dispatch).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "simnode.h"
#include "testutil.h"
#include "weft/simnet.h"

#define BIG_LEN (2u << 20)

enum { P = 1, S, F, B };
static struct simnode N[5]; /* P publisher, S seed host, F follower, B DHT */
static struct simnet *SN;

/* The first subscription's member k on x (-1 when none). */
static json_int_t sub_int(struct simnode *x, const char *k)
{
	json_t *o = simnode_ok(x, "GET", "/v1/content/subscriptions", NULL);
	json_t *s = json_array_get(json_object_get(o, "subscriptions"), 0);
	json_int_t v = s ? json_integer_value(json_object_get(s, k)) : -1;

	json_decref(o);
	return v;
}

struct want {
	struct simnode *x;
	json_int_t seq;
};

static int has_seq(void *arg)
{
	struct want *w = arg;

	return sub_int(w->x, "fetched_seq") == w->seq;
}

static void wait_seq(struct simnode *x, json_int_t seq)
{
	struct want w = {x, seq};

	if (simnode_wait_every(has_seq, &w, 120000, 50)) {
		json_t *o = simnode_ok(x, "GET", "/v1/content/subscriptions", NULL);

		fail_msg("%s did not take version %lld: %s", x->name, (long long)seq,
			 json_dumps(o, JSON_COMPACT));
	}
}

static int dht_formed(void *arg)
{
	(void)arg;
	for (int i = P; i <= F; i++)
		if (simnode_get_int(&N[i], "/v1/dht/status", "nodes4", NULL) < 3)
			return 0;
	return 1;
}

struct job_q {
	struct simnode *x;
	char path[64];
};

static int job_done(void *arg)
{
	struct job_q *q = arg;
	json_t *o = simnode_ok(q->x, "GET", q->path, NULL);
	int ok = json_is_true(json_object_get(o, "done"));

	json_decref(o);
	return ok;
}

/* The newest download job of x: its member k. */
static json_int_t last_job_int(struct simnode *x, const char *k)
{
	json_t *o = simnode_ok(x, "GET", "/v1/content/jobs", NULL);
	json_t *jobs = json_object_get(o, "jobs"), *j, *best = NULL;
	json_int_t v;
	size_t i;

	json_array_foreach(jobs, i, j)
	{
		if (!best || json_integer_value(json_object_get(j, "job")) >
				     json_integer_value(json_object_get(best, "job")))
			best = j;
	}
	assert_non_null(best);
	v = json_integer_value(json_object_get(best, k));
	json_decref(o);
	return v;
}

static json_t *publish(const char *tree)
{
	return simnode_ok(&N[P], "POST", "/v1/content/add",
			  json_pack("{s:[s],s:s}", "paths", tree, "name", "photos"));
}

static void write_a(const char *tree, const char *text)
{
	assert_int_equal(tu_write(tree, "a.txt", text, strlen(text), 0600), 0);
}

static void test_follow_through_seed(void **state)
{
	struct simnet_opts so = {.seed = 31, .clock = SIMNET_CLOCK_REAL};
	struct simnet_link lan = {.latency_us = 300, .jitter_us = 100};
	static const char *const boot[] = {"dht.bootstrap=198.51.100.4:6881",
					   "quic.idle_timeout_ms=3000", "content.poll_s=2", NULL};
	static const char *const names[] = {"", "p", "s", "f", "b"};
	char *dir = tu_tmpdir(), tree[600], head[200], magnet[300], bad[400], ip[32];
	uint8_t *big = malloc(BIG_LEN);
	char sid[41], pk[65];
	json_t *o;
	int st;

	(void)state;
	assert_non_null(dir);
	assert_non_null(big);
	assert_int_equal(simnet_new(&SN, &so), 0);
	for (int i = P; i <= B; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		simnode_new(&N[i], SN, names[i], ip, NULL, i != B ? boot : NULL, NULL, NULL);
		simnet_host_set_link(N[i].host, &lan);
	}
	assert_int_equal(simnode_wait(dht_formed, NULL, 60000), 0);

	snprintf(tree, sizeof(tree), "%s/tree", dir);
	assert_int_equal(mkdir(tree, 0700), 0);
	write_a(tree, "version 1\n");
	tu_fill(big, BIG_LEN, 9);
	assert_int_equal(tu_write(tree, "big.bin", big, BIG_LEN, 0600), 0);
	o = publish(tree);
	snprintf(sid, sizeof(sid), "%s", json_string_value(json_object_get(o, "share_id")));
	snprintf(pk, sizeof(pk), "%s", json_string_value(json_object_get(o, "publisher")));
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), 1);
	json_decref(o);
	assert_string_equal(pk, N[P].key);

	/* the link: BEP 46's form, the salt the name's bytes, the same from
	 * the share id on P and from KEY/NAME on S */
	snprintf(magnet, sizeof(magnet), "magnet:?xs=urn:btpk:%s&s=70686f746f73", pk);
	snprintf(head, sizeof(head), "%s/photos", pk);
	o = simnode_ok(&N[P], "POST", "/v1/content/link", json_pack("{s:s}", "ref", sid));
	assert_string_equal(json_string_value(json_object_get(o, "magnet")), magnet);
	json_decref(o);
	o = simnode_ok(&N[S], "POST", "/v1/content/link", json_pack("{s:s}", "ref", head));
	assert_string_equal(json_string_value(json_object_get(o, "magnet")), magnet);
	json_decref(o);

	/* bad input first: a 65-byte salt, refused, nothing added */
	snprintf(bad, sizeof(bad), "magnet:?xs=urn:btpk:%s&s=", pk);
	for (int i = 0; i < 65; i++)
		strcat(bad, "61");
	st = simnode_ctl(&N[F], "POST", "/v1/content/subscribe", json_pack("{s:s}", "head", bad),
			 &o);
	assert_int_equal(st, 400);
	json_decref(o);
	assert_int_equal(sub_int(&N[F], "seq"), -1);

	json_decref(simnode_ok(&N[S], "POST", "/v1/content/subscribe",
			       json_pack("{s:s}", "head", head)));
	json_decref(simnode_ok(&N[F], "POST", "/v1/content/subscribe",
			       json_pack("{s:s}", "head", magnet)));
	wait_seq(&N[S], 1);
	wait_seq(&N[F], 1);
	print_message("follow: S (by KEY/NAME) and F (by magnet) hold version 1 of %s\n", sid);

	/* update 1: a.txt only; each follower fetches its one chunk */
	write_a(tree, "version 2\n");
	o = publish(tree);
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "prev_seq")), 1);
	json_decref(o);
	json_decref(simnode_ok(&N[F], "POST", "/v1/content/sync", json_object()));
	json_decref(simnode_ok(&N[S], "POST", "/v1/content/sync", json_object()));
	wait_seq(&N[S], 2);
	wait_seq(&N[F], 2);
	assert_int_equal(last_job_int(&N[S], "fetched"), 1);
	assert_int_equal(last_job_int(&N[F], "fetched"), 1);
	print_message("follow: update 1 on both followers, one chunk fetched by each\n");

	/* update 2 while F is down; then P leaves and F comes back */
	simnet_host_set_down(N[F].host, 1);
	write_a(tree, "version 3\n");
	json_decref(publish(tree));
	json_decref(simnode_ok(&N[S], "POST", "/v1/content/sync", json_object()));
	wait_seq(&N[S], 3);
	simnet_host_set_down(N[P].host, 1);
	simnet_host_set_down(N[F].host, 0);
	assert_int_equal(sub_int(&N[F], "fetched_seq"), 2);
	json_decref(simnode_ok(&N[F], "POST", "/v1/content/sync", json_object()));
	wait_seq(&N[F], 3);
	{
		char out[700], p[800];
		struct job_q q = {&N[F], ""};
		json_t *j;
		struct stat sb;

		/* F's copy of the new a.txt alone, from what F holds */
		snprintf(out, sizeof(out), "%s/f-out", dir);
		assert_int_equal(mkdir(out, 0700), 0);
		j = simnode_ok(&N[F], "POST", "/v1/content/get",
			       json_pack("{s:s,s:s,s:[s]}", "id", head, "out", out, "items",
					 "a.txt"));
		snprintf(q.path, sizeof(q.path), "/v1/content/jobs/%lld",
			 (long long)json_integer_value(json_object_get(j, "job")));
		json_decref(j);
		assert_int_equal(simnode_wait(job_done, &q, 60000), 0);
		j = simnode_ok(&N[F], "GET", q.path, NULL);
		assert_string_equal(json_string_value(json_object_get(j, "state")), "done");
		json_decref(j);
		snprintf(p, sizeof(p), "%s/a.txt", out);
		assert_int_equal(stat(p, &sb), 0);
		assert_int_equal(sb.st_size, (off_t)strlen("version 3\n"));
		{
			char txt[32] = "";
			FILE *fp = fopen(p, "r");

			assert_non_null(fp);
			assert_non_null(fgets(txt, sizeof(txt), fp));
			fclose(fp);
			assert_string_equal(txt, "version 3\n");
		}
		snprintf(p, sizeof(p), "%s/big.bin", out);
		assert_int_not_equal(stat(p, &sb), 0); /* not selected */
	}
	print_message("follow: update 2 reached F through S with P down\n");

	for (int i = P; i <= B; i++)
		simnode_free(&N[i]);
	simnet_free(SN);
	free(big);
	tu_rmrf_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_follow_through_seed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
