// SPDX-License-Identifier: MIT
/*
 * The seed host's side of content on complete nodes in this process, on a
 * simulated network (docs/CONTENT.md "Super-seeding", "Fair, capped
 * serving"):
 *
 * test_superseed: a seed adds a new 16 MiB file (64 chunks) and is
 * super-seeding it (the default for new content); four downloaders are
 * told about the seed only (no DHT) and learn each other from its PEERS
 * answers. Every download finishes and verifies chunk by chunk (the bytes
 * compared too); the seed offered every chunk once before offering any a
 * second time (offered_once reaches 64 while at most 64 offers were made
 * in the first round) and sent at most 1.5x the file: the downloaders
 * traded the rest. The seed's GET /v1/content/peers lists the downloaders
 * with what it sent each.
 *
 * test_limits: POST /v1/content/limits sets the caps live, GET reads them
 * back, bad bodies are refused with 400 and change nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "weft/util.h"
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "simnode.h"
#include "testutil.h"
#include "weft/simnet.h"

#define FILE_LEN (16u << 20) /* 64 chunks of 256 KiB */
#define NCHUNKS 64
#define NDL 4

static struct simnode Q[NDL + 2]; /* 1: seed, 2..: downloaders */
static struct simnet *SN;

struct pjob {
	struct simnode *x;
	char path[64];
};

static int pjob_done(void *arg)
{
	struct pjob *q = arg;
	json_t *o = simnode_ok(q->x, "GET", q->path, NULL);
	int ok = json_is_true(json_object_get(o, "done"));

	json_decref(o);
	return ok;
}

static int all_done(void *arg)
{
	struct pjob *q = arg;

	for (int i = 0; i < NDL; i++)
		if (!pjob_done(&q[i]))
			return 0;
	return 1;
}

static void check(struct pjob *q, const char *out, const char *id, const uint8_t *data)
{
	json_t *j = simnode_ok(q->x, "GET", q->path, NULL);
	char path[700];
	uint8_t *back = malloc(FILE_LEN);
	int fd;

	assert_non_null(back);
	if (strcmp(json_string_value(json_object_get(j, "state")), "done"))
		fail_msg("download failed: %s", json_dumps(j, JSON_COMPACT));
	json_decref(j);
	snprintf(path, sizeof(path), "%s/%s", out, id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, back, FILE_LEN), FILE_LEN);
	close(fd);
	assert_memory_equal(back, data, FILE_LEN);
	free(back);
}

static void test_superseed(void **state)
{
	struct simnet_opts so = {.seed = 29, .clock = SIMNET_CLOCK_REAL};
	static const char *const nodht[] = {"quic.idle_timeout_ms=3000", NULL};
	struct simnet_link lan = {.latency_us = 300, .jitter_us = 100};
	char *dir = tu_tmpdir(), path[700], out[NDL][512], id[65], name[8], ip[32];
	uint8_t *data = malloc(FILE_LEN);
	struct pjob d[NDL];
	json_t *o, *ss, *peers;
	json_int_t served, offered;
	uint64_t t0;
	size_t i;

	(void)state;
	assert_non_null(dir);
	assert_non_null(data);
	assert_int_equal(simnet_new(&SN, &so), 0);
	simnode_new(&Q[1], SN, "s1", "198.51.100.1", NULL, nodht, NULL, NULL);
	for (i = 0; i < NDL; i++) {
		snprintf(name, sizeof(name), "d%zu", i + 1);
		snprintf(ip, sizeof(ip), "198.51.100.%zu", i + 2);
		simnode_new(&Q[i + 2], SN, name, ip, NULL, nodht, NULL, NULL);
	}
	for (i = 1; i <= NDL + 1; i++)
		simnet_host_set_link(Q[i].host, &lan);
	tu_fill(data, FILE_LEN, 29);
	assert_int_equal(tu_write(dir, "file.bin", data, FILE_LEN, 0600), 0);
	snprintf(path, sizeof(path), "%s/file.bin", dir);
	o = simnode_ok(&Q[1], "POST", "/v1/content/add", json_pack("{s:[s]}", "paths", path));
	snprintf(id, sizeof(id), "%s",
		 json_string_value(
		     json_object_get(json_array_get(json_object_get(o, "items"), 0), "id")));
	json_decref(o);
	/* new content: super-seeded */
	o = simnode_ok(&Q[1], "GET", "/v1/content/peers", NULL);
	ss = json_object_get(o, "superseed");
	assert_int_equal(json_array_size(ss), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ss, 0), "id")), id);
	json_decref(o);

	t0 = util_now_ms();
	for (i = 0; i < NDL; i++) {
		snprintf(out[i], sizeof(out[i]), "%s/d%zu", dir, i + 1);
		assert_int_equal(mkdir(out[i], 0700), 0);
		o = simnode_ok(&Q[i + 2], "POST", "/v1/content/get",
			       json_pack("{s:s,s:s,s:[s]}", "id", id, "out", out[i], "from",
					 Q[1].ip));
		d[i].x = &Q[i + 2];
		snprintf(d[i].path, sizeof(d[i].path), "/v1/content/jobs/%lld",
			 (long long)json_integer_value(json_object_get(o, "job")));
		json_decref(o);
	}
	assert_int_equal(simnode_wait(all_done, d, 120000), 0);
	t0 = util_now_ms() - t0;
	for (i = 0; i < NDL; i++)
		check(&d[i], out[i], id, data);

	served = simnode_get_int(&Q[1], "/v1/content/stats", "served_chunks", NULL);
	o = simnode_ok(&Q[1], "GET", "/v1/content/peers", NULL);
	ss = json_array_get(json_object_get(o, "superseed"), 0);
	offered = json_integer_value(json_object_get(ss, "offered_once"));
	peers = json_object_get(o, "peers");
	print_message("super-seeding: the seed sent %lld chunks for %d downloaders of %d "
		      "chunks (%.2fx the file); %lld chunks offered; %zu peers listed; all done "
		      "in %llu ms\n",
		      (long long)served, NDL, NCHUNKS, (double)served / NCHUNKS,
		      (long long)offered, json_array_size(peers), (unsigned long long)t0);
	assert_int_equal(offered, NCHUNKS);
	assert_true(served <= NCHUNKS * 3 / 2);
	assert_true(json_array_size(peers) >= 1);
	json_decref(o);

	for (i = NDL + 1; i >= 1; i--)
		simnode_free(&Q[i]);
	simnet_free(SN);
	free(data);
	tu_rmrf_free(dir);
}

static void test_limits(void **state)
{
	struct simnet_opts so = {.seed = 30, .clock = SIMNET_CLOCK_REAL};
	static const char *const set[] = {"quic.idle_timeout_ms=3000",
					  "content.peer_upload_rate=1000000", NULL};
	json_t *o;

	(void)state;
	assert_int_equal(simnet_new(&SN, &so), 0);
	simnode_new(&Q[1], SN, "s1", "198.51.100.1", NULL, set, NULL, NULL);
	/* from the configuration */
	assert_int_equal(simnode_get_int(&Q[1], "/v1/content/limits", "peer_rate", NULL), 1000000);
	assert_int_equal(simnode_get_int(&Q[1], "/v1/content/limits", "upload_rate", NULL), 0);
	/* live */
	o = simnode_ok(&Q[1], "POST", "/v1/content/limits",
		       json_pack("{s:I,s:b}", "upload_rate", (json_int_t)12500000, "lan_capped", 1));
	assert_int_equal(json_integer_value(json_object_get(o, "upload_rate")), 12500000);
	assert_true(json_is_true(json_object_get(o, "lan_capped")));
	assert_int_equal(json_integer_value(json_object_get(o, "peer_rate")), 1000000);
	json_decref(o);
	/* refused, nothing changed */
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("{s:i}", "upload_rate", -1), NULL),
			 400);
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("{s:s}", "upload_rate", "fast"), NULL),
			 400);
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("{s:i}", "nonsense", 1), NULL),
			 400);
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("[i]", 1), NULL),
			 400);
	assert_int_equal(simnode_get_int(&Q[1], "/v1/content/limits", "upload_rate", NULL),
			 12500000);
	/* the cap in /metrics-style view of GET /v1/content/peers */
	o = simnode_ok(&Q[1], "GET", "/v1/content/peers", NULL);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "limits"),
							    "upload_rate")),
			 12500000);
	assert_int_equal(json_array_size(json_object_get(o, "upload_history")), 300);
	json_decref(o);
	/* the automatic cap: on live (under the fixed cap, kept), its status
	 * shown; a non-boolean refused with nothing changed; off again */
	o = simnode_ok(&Q[1], "POST", "/v1/content/limits", json_pack("{s:b}", "upload_auto", 1));
	assert_true(json_is_true(json_object_get(o, "upload_auto")));
	assert_int_equal(json_integer_value(json_object_get(o, "upload_rate")), 12500000);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "auto"), "state")),
			    "free");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "auto"), "cap")), 0);
	json_decref(o);
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("{s:s}", "upload_auto", "yes"), NULL),
			 400);
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("{s:b,s:i}", "upload_auto", 0, "upload_rate", -5), NULL),
			 400);
	o = simnode_ok(&Q[1], "GET", "/v1/content/limits", NULL);
	assert_true(json_is_true(json_object_get(o, "upload_auto")));
	json_decref(o);
	o = simnode_ok(&Q[1], "POST", "/v1/content/limits", json_pack("{s:b}", "upload_auto", 0));
	assert_true(json_is_false(json_object_get(o, "upload_auto")));
	json_decref(o);
	simnode_free(&Q[1]);
	simnet_free(SN);
}

/* content.upload_auto in the configuration turns the automatic cap on. */
static void test_limits_auto_config(void **state)
{
	struct simnet_opts so = {.seed = 31, .clock = SIMNET_CLOCK_REAL};
	static const char *const set[] = {"content.upload_auto=true", NULL};
	json_t *o;

	(void)state;
	assert_int_equal(simnet_new(&SN, &so), 0);
	simnode_new(&Q[1], SN, "s1", "198.51.100.1", NULL, set, NULL, NULL);
	o = simnode_ok(&Q[1], "GET", "/v1/content/limits", NULL);
	assert_true(json_is_true(json_object_get(o, "upload_auto")));
	assert_int_equal(json_integer_value(json_object_get(o, "upload_rate")), 0);
	json_decref(o);
	simnode_free(&Q[1]);
	simnet_free(SN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_superseed),
	    cmocka_unit_test(test_limits), cmocka_unit_test(test_limits_auto_config),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("sim_content_serve", tests, NULL, NULL);
}
