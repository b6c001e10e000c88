// SPDX-License-Identifier: MIT
/*
 * A private share seeded by a host that cannot read it, in this process
 * (the in-process port of the first part of
 * tests/integration/test_content_private.sh; no root, no namespace): on a
 * simulated network, node A seals a folder to B's key (a 1 MiB file with
 * a marker at its start, middle and end, and a note named after the
 * marker); C, a seed host, takes the ciphertext with raw and is refused
 * without it (job error not_a_recipient, nothing written); A goes down;
 * B downloads from C alone and its plaintext matches; D, from C too, is
 * refused. No file under C's or D's state directory, nor in their output
 * directories, holds the marker or the note's name. Every step goes
 * through the control handlers (ctl_dispatch).
 *
 * A hostile publisher (issue 28, bad input). A group record that is not
 * its publisher's own: A
 * owns group crew with member B, and B takes A's record (the positive
 * control). C publishes its own share weft-group.crew holding first A's
 * record (signed by A, not by C), then a record of A's group signed by C
 * (C is no member, no owner): B, joining C/crew, refuses each (job
 * failed, bad_request, a clear message), keeps neither the share nor a
 * key of it, and C, the provider, loses score. The publishing side goes
 * through C's content internals (weftd never makes such a share). A
 * version of A's share sealed to B whose wrapped keys were changed under
 * A's signature: B's entry fails to open; B's job fails (bad_request),
 * nothing kept or written, A scored.
 */
#include <dirent.h>
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
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "content/content_node_int.h"
#include "node/node_int.h"
#include "simnode.h"
#include "testutil.h"
#include "weft/seal.h"
#include "weft/simnet.h"
#include "weft/util.h"

#define BIG_LEN (1u << 20)
#define MARK "weft-sim-private-marker-2f9c1e"

static struct simnode N[5]; /* 1..4: A, B, C, D */
static struct simnet *SN;

struct job_q {
	struct simnode *x;
	char path[64];
};

static json_t *job(struct job_q *q)
{
	return simnode_ok(q->x, "GET", q->path, NULL);
}

static int job_done(void *arg)
{
	json_t *o = job(arg);
	int ok = json_is_true(json_object_get(o, "done"));

	json_decref(o);
	return ok;
}

/* Start a download on x of share sid into out from one provider; wait for
 * its end; the job's JSON (caller decrefs). */
static json_t *get(struct simnode *x, const char *sid, const char *out, const char *from,
		   int raw)
{
	struct job_q q = {x, ""};
	json_t *o;

	if (mkdir(out, 0700) && errno != EEXIST)
		fail_msg("mkdir %s: %s", out, strerror(errno));
	o = simnode_ok(x, "POST", "/v1/content/get",
		       json_pack("{s:s,s:s,s:[s],s:b}", "id", sid, "out", out, "from", from, "raw",
				 raw));
	snprintf(q.path, sizeof(q.path), "/v1/content/jobs/%lld",
		 (long long)json_integer_value(json_object_get(o, "job")));
	json_decref(o);
	assert_int_equal(simnode_wait(job_done, &q, 60000), 0);
	return job(&q);
}

static void expect_state(json_t *j, const char *state, const char *code)
{
	const char *s = json_string_value(json_object_get(j, "state"));
	const char *c = json_string_value(json_object_get(j, "error_code"));

	if (!s || strcmp(s, state) || (code && (!c || strcmp(c, code))))
		fail_msg("want %s %s: %s", state, code ? code : "", json_dumps(j, JSON_COMPACT));
}

/* Files under dir (recursively) holding needle (or named with it): 0 none. */
static int holds(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char p[1024];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (strstr(e->d_name, needle))
			n++;
		if (lstat(p, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			n += holds(p, needle);
		} else if (S_ISREG(st.st_mode) && st.st_size > 0) {
			int fd = open(p, O_RDONLY | O_CLOEXEC);
			char *buf = malloc((size_t)st.st_size);
			ssize_t r = fd >= 0 && buf ? read(fd, buf, (size_t)st.st_size) : -1;

			if (r > 0 && memmem(buf, (size_t)r, needle, strlen(needle)))
				n++;
			free(buf);
			if (fd >= 0)
				close(fd);
		}
	}
	closedir(d);
	return n;
}

static void same_file(const char *path, const uint8_t *want, size_t len)
{
	uint8_t *back = malloc(len + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_non_null(back);
	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(read(fd, back, len + 1), (ssize_t)len);
	close(fd);
	assert_memory_equal(back, want, len);
	free(back);
}

/* Nodes 1..n on a new simulated LAN (A, B, C, D at 198.51.100.1..4; B, C
 * and D bootstrap from A). */
static void start_nodes(int n, unsigned int seed)
{
	struct simnet_opts so = {.seed = seed, .clock = SIMNET_CLOCK_REAL};
	static const char *const boot[] = {"dht.bootstrap=198.51.100.1:6881",
					   "quic.idle_timeout_ms=3000", NULL};
	static const char *const names[] = {"", "a", "b", "c", "d"};
	struct simnet_link lan = {.latency_us = 300, .jitter_us = 100};
	char ip[32];

	assert_int_equal(simnet_new(&SN, &so), 0);
	for (int i = 1; i <= n; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		simnode_new(&N[i], SN, names[i], ip, NULL, i > 1 ? boot : NULL, NULL, NULL);
		simnet_host_set_link(N[i].host, &lan);
	}
}

static void stop_nodes(int n)
{
	for (int i = 1; i <= n; i++)
		simnode_free(&N[i]);
	simnet_free(SN);
}

static void test_private_seeded_by_a_non_recipient(void **state)
{
	char *dir = tu_tmpdir(), src[600], p[1024], out[600], note[200];
	uint8_t *big = malloc(BIG_LEN + 3 * strlen(MARK));
	size_t ml = strlen(MARK), blen = BIG_LEN + 3 * ml;
	char sid[41];
	json_t *o, *j;

	(void)state;
	assert_non_null(dir);
	assert_non_null(big);
	start_nodes(4, 28);

	/* the folder: docs/big.bin with the marker at its start, middle and
	 * end; a note named after the marker */
	memcpy(big, MARK, ml);
	tu_fill(big + ml, BIG_LEN / 2, 5);
	memcpy(big + ml + BIG_LEN / 2, MARK, ml);
	tu_fill(big + 2 * ml + BIG_LEN / 2, BIG_LEN / 2, 6);
	memcpy(big + 2 * ml + BIG_LEN, MARK, ml);
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(p, sizeof(p), "%s/docs", src);
	assert_int_equal(mkdir(src, 0700), 0);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(tu_write(p, "big.bin", big, blen, 0600), 0);
	snprintf(note, sizeof(note), "%s.txt", MARK);
	assert_int_equal(tu_write(src, note, "the note says " MARK "\n",
				  strlen("the note says " MARK "\n"), 0600), 0);

	o = simnode_ok(&N[1], "POST", "/v1/content/add",
		       json_pack("{s:[s],s:b,s:[s],s:s}", "paths", src, "private", 1, "to",
				 N[2].key, "name", "secret"));
	assert_true(json_is_true(json_object_get(o, "sealed")));
	snprintf(sid, sizeof(sid), "%s", json_string_value(json_object_get(o, "share_id")));
	assert_int_equal(strlen(sid), 40);
	json_decref(o);

	/* C, a seed host: refused without raw (nothing written), takes the
	 * ciphertext with it */
	snprintf(out, sizeof(out), "%s/c-plain", dir);
	j = get(&N[3], sid, out, "198.51.100.1:4433", 0);
	expect_state(j, "failed", "not_a_recipient");
	json_decref(j);
	assert_int_equal(holds(out, "e"), 0); /* no file at all */
	snprintf(out, sizeof(out), "%s/c-raw", dir);
	j = get(&N[3], sid, out, "198.51.100.1:4433", 1);
	expect_state(j, "done", NULL);
	json_decref(j);

	/* A leaves: B reads it from C alone */
	simnet_host_set_down(N[1].host, 1);
	snprintf(out, sizeof(out), "%s/b-out", dir);
	j = get(&N[2], sid, out, "198.51.100.3:4433", 0);
	expect_state(j, "done", NULL);
	json_decref(j);
	snprintf(p, sizeof(p), "%s/docs/big.bin", out);
	same_file(p, big, blen);
	snprintf(p, sizeof(p), "%s/%s", out, note);
	same_file(p, (const uint8_t *)"the note says " MARK "\n",
		  strlen("the note says " MARK "\n"));

	/* D, from the seed: refused */
	snprintf(out, sizeof(out), "%s/d-out", dir);
	j = get(&N[4], sid, out, "198.51.100.3:4433", 0);
	expect_state(j, "failed", "not_a_recipient");
	json_decref(j);

	/* no plaintext, no real name on C's or D's disk */
	assert_int_equal(holds(N[3].dir, MARK), 0);
	assert_int_equal(holds(N[4].dir, MARK), 0);
	snprintf(p, sizeof(p), "%s/c-raw", dir);
	assert_int_equal(holds(p, MARK), 0);
	snprintf(p, sizeof(p), "%s/d-out", dir);
	assert_int_equal(holds(p, MARK), 0);
	/* while B's state holds no plaintext either: decrypted on the way to
	 * its output directory, never into the store */
	assert_int_equal(holds(N[2].dir, MARK), 0);
	print_message("private: share %s sealed to B, seeded by C (raw), read by B from C with "
		      "A down; C and D refused; no marker on C's, D's or B's state\n", sid);

	stop_nodes(4);
	free(big);
	tu_rmrf_free(dir);
}

/* C (internals) publishes its share weft-group.crew holding rec; its share
 * id in hex. */
static void publish_record(struct simnode *x, const uint8_t *rec, size_t len, char sid[41])
{
	struct content_node *cn = x->node->content;
	struct manifest m;
	uint8_t id[32];

	assert_int_equal(cstore_add_buf(cn->cs, rec, len, id), 0);
	manifest_init(&m);
	assert_int_equal(manifest_set_name(&m, "weft-group.crew", strlen("weft-group.crew")), 0);
	assert_int_equal(manifest_add_item(&m, "group", 5, id, len, CN_GROUP_TYPE), 0);
	m.visibility = MANIFEST_PUBLIC;
	m.created = 1700000000;
	assert_int_equal(cn_share_publish(cn, &m), 0);
	util_hex(sid, m.share_id, MANIFEST_SHARE_ID_LEN);
	manifest_free(&m);
}

/* The share weft-group.crew of x's own key: its id in hex; its record
 * into rec (cap SEAL_GROUP_MAX_LEN), its length returned. */
static size_t own_record(struct simnode *x, char sid[41], uint8_t *rec)
{
	struct content_node *cn = x->node->content;
	uint8_t id[MANIFEST_SHARE_ID_LEN], *enc = NULL;
	struct manifest m;
	size_t len = 0;

	assert_int_equal(manifest_share_id(x->node->id.pk, "weft-group.crew", 15, id), 0);
	util_hex(sid, id, MANIFEST_SHARE_ID_LEN);
	assert_int_equal(cn_share_get(cn, id, &enc, &len), 0);
	manifest_init(&m);
	assert_int_equal(manifest_decode(&m, enc, len), 0);
	free(enc);
	assert_int_equal(m.nitems, 1);
	assert_int_equal(cstore_read_chunk(cn->cs, m.items[0].id, 0, rec, SEAL_GROUP_MAX_LEN, &len),
			 0);
	manifest_free(&m);
	return len;
}

/* B's held groups: how many are named crew with owner key owner (hex) */
static int held_crew(struct simnode *b, const char *owner)
{
	json_t *o = simnode_ok(b, "GET", "/v1/content/groups", NULL), *g;
	size_t i;
	int n = 0;

	json_array_foreach(json_object_get(o, "held"), i, g)
	{
		n += !strcmp(json_string_value(json_object_get(g, "name")), "crew") &&
		     !strcmp(json_string_value(json_object_get(g, "owner")), owner);
	}
	json_decref(o);
	return n;
}

/* C publishes rec as its share weft-group.crew; B's download of it from
 * C fails as a refused record (bad_request, the message), C's score is
 * lowered, nothing of the share is kept on B and B holds no key of C's
 * crew. */
static void refused(const uint8_t *rec, size_t rlen, const char *dir, const char *tag)
{
	const char *err, *c_addr = "198.51.100.3:4433";
	char sid[41], out[600];
	json_t *j, *p;
	size_t i, len;
	int seen = 0;
	uint8_t id[MANIFEST_SHARE_ID_LEN], *enc = NULL;

	publish_record(&N[3], rec, rlen, sid);
	snprintf(out, sizeof(out), "%s/%s", dir, tag);
	j = get(&N[2], sid, out, c_addr, 0);
	expect_state(j, "failed", "bad_request");
	err = json_string_value(json_object_get(j, "error"));
	if (!err || !strstr(err, "group record weft-group.crew: not its publisher's own"))
		fail_msg("error: %s", err ? err : "(none)");
	json_array_foreach(json_object_get(j, "providers"), i, p)
	{
		if (strcmp(json_string_value(json_object_get(p, "addr")), c_addr))
			continue;
		seen = 1;
		if (json_integer_value(json_object_get(p, "score")) >= 100)
			fail_msg("provider C not scored: %s", json_dumps(p, JSON_COMPACT));
	}
	assert_true(seen);
	json_decref(j);
	assert_int_equal(util_unhex(id, sizeof(id), sid), 0);
	assert_int_equal(cn_share_get(N[2].node->content, id, &enc, &len), -ENOENT);
	free(enc);
	assert_int_equal(held_crew(&N[2], N[3].key), 0);
}

/* A (internals, a hostile publisher) signs a version of its share sealed
 * to B whose wrapped keys were changed after the hint: B's entry fails to
 * open. B's download: failed, bad_request, nothing kept or written, A (the
 * manifest's provider) scored. */
static void wrapped_key_does_not_open(const char *dir)
{
	struct content_node *cn = N[1].node->content;
	char src[600], out[600], sid[41];
	uint8_t id[MANIFEST_SHARE_ID_LEN], *enc = NULL;
	struct manifest m;
	size_t len;
	json_t *o, *j, *p;

	snprintf(src, sizeof(src), "%s/note.txt", dir);
	assert_int_equal(tu_write(dir, "note.txt", "sealed to B\n", 12, 0600), 0);
	o = simnode_ok(&N[1], "POST", "/v1/content/add",
		       json_pack("{s:[s],s:b,s:[s],s:s}", "paths", src, "private", 1, "to",
				 N[2].key, "name", "tamper"));
	snprintf(sid, sizeof(sid), "%s", json_string_value(json_object_get(o, "share_id")));
	json_decref(o);
	assert_int_equal(util_unhex(id, sizeof(id), sid), 0);
	assert_int_equal(cn_share_get(cn, id, &enc, &len), 0);
	manifest_init(&m);
	assert_int_equal(manifest_decode(&m, enc, len), 0);
	free(enc);
	for (uint32_t k = 0; k < m.nkeys; k++)
		m.keys[k * SEAL_ENTRY_LEN + SEAL_HINT_LEN + 3] ^= 0x20; /* the hint stays */
	assert_int_equal(cn_share_publish(cn, &m), 0); /* version 2, signed by A */
	manifest_free(&m);

	snprintf(out, sizeof(out), "%s/b-tamper", dir);
	j = get(&N[2], sid, out, "198.51.100.1:4433", 0);
	expect_state(j, "failed", "bad_request");
	if (!strstr(json_string_value(json_object_get(j, "error")), "does not open"))
		fail_msg("error: %s", json_dumps(j, JSON_COMPACT));
	p = json_array_get(json_object_get(j, "providers"), 0);
	if (json_integer_value(json_object_get(p, "score")) >= 100)
		fail_msg("provider A not scored: %s", json_dumps(p, JSON_COMPACT));
	json_decref(j);
	assert_int_equal(cn_share_get(N[2].node->content, id, &enc, &len), -ENOENT);
	assert_int_equal(holds(out, "e"), 0); /* no file at all */
	print_message("a wrapped key that fails to open: refused, nothing kept, A scored\n");
}

static void test_hostile_publisher(void **state)
{
	char *dir = tu_tmpdir(), out[600], asid[41];
	uint8_t *rec = malloc(SEAL_GROUP_MAX_LEN), gid[32], seed[32];
	size_t len;
	json_t *j;

	(void)state;
	assert_non_null(dir);
	assert_non_null(rec);
	start_nodes(3, 29);

	/* A's group crew with B; B takes A's record: it holds the key */
	json_decref(
	    simnode_ok(&N[1], "POST", "/v1/content/groups", json_pack("{s:s}", "name", "crew")));
	json_decref(simnode_ok(&N[1], "POST", "/v1/content/groups/crew/add",
			       json_pack("{s:[s]}", "keys", N[2].key)));
	len = own_record(&N[1], asid, rec);
	snprintf(out, sizeof(out), "%s/b-a", dir);
	j = get(&N[2], asid, out, "198.51.100.1:4433", 0);
	expect_state(j, "done", NULL);
	json_decref(j);
	assert_int_equal(held_crew(&N[2], N[1].key), 1);

	/* C's share weft-group.crew holding A's record (signed by A) */
	refused(rec, len, dir, "b-c1");

	/* C's next version: a record of A's group id signed by C itself */
	cn_group_id(N[1].node->id.pk, "crew", gid);
	randombytes_buf(seed, sizeof(seed));
	assert_int_equal(seal_group_seal(N[3].node->id.sk, gid, seed, 9,
					 (const uint8_t(*)[32])N[2].node->id.pk, 1, rec,
					 SEAL_GROUP_MAX_LEN, &len),
			 0);
	refused(rec, len, dir, "b-c2");
	assert_int_equal(held_crew(&N[2], N[1].key), 1); /* A's key untouched */
	print_message("group records: B holds A's crew; C's share of A's record and C's record "
		      "of A's group refused, not kept, C scored\n");
	wrapped_key_does_not_open(dir);

	stop_nodes(3);
	free(rec);
	tu_rmrf_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_private_seeded_by_a_non_recipient),
	    cmocka_unit_test(test_hostile_publisher),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
