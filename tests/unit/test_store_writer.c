// SPDX-License-Identifier: MIT
/*
 * The store's writer: batching, group commit, deadlines, a full queue,
 * one failing write inside a batch, read-modify-write functions and the
 * drain at shutdown. The writer is held up deterministically by a direct
 * write transaction of the test thread (LMDB's write lock), never by
 * sleeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "weft/ctl.h"
#include "weft/guard.h"
#include "weft/store.h"

static char *dir;

static int setup(void **state)
{
	dir = tu_tmpdir();
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	tu_rmrf_free(dir);
	return 0;
}

static struct store *open_st(unsigned int qmax)
{
	struct store_opts o = { .dir = dir, .map_size = 16 << 20, .write_queue_max = qmax };
	struct store *st = NULL;

	assert_int_equal(store_new(&st, &o), 0);
	return st;
}

/* Hold LMDB's write lock: the writer cannot begin a batch until release. */
static struct store_txn *hold(struct store *st)
{
	struct store_txn *t = NULL;

	assert_int_equal(store_txn_begin(st, 0, &t), 0);
	return t;
}

static void put_op(struct store_op *op, unsigned int db, const char *k, const char *v)
{
	op->dbi = db;
	op->key = k;
	op->klen = strlen(k);
	op->val = v;
	op->vlen = v ? strlen(v) : 0;
}

static uint64_t entries(struct store *st, unsigned int db)
{
	uint64_t n = 0;

	assert_int_equal(store_stat(st, db, &n), 0);
	return n;
}

/* Poll a writer counter until it reaches want (10 s at most). */
static void wait_queued_total(struct store *st, uint64_t want)
{
	struct store_writer_stats s;
	struct timespec ts = { 0, 1000000 };

	for (int i = 0; i < 10000; i++) {
		store_writer_stats(st, &s);
		if (s.queued_total >= want)
			return;
		nanosleep(&ts, NULL);
	}
	fail_msg("writes were not queued");
}

static void test_batching(void **state)
{
	struct store *st = open_st(0);
	struct store_writer_stats s;
	struct store_txn *t;
	struct store_op op;
	unsigned int db;
	char k[32];

	assert_int_equal(store_db(st, "w", &db), 0);
	t = hold(st);
	for (int i = 0; i < 1000; i++) {
		snprintf(k, sizeof(k), "k%04d", i);
		put_op(&op, db, k, "v");
		assert_int_equal(store_write_async(st, &op, 1), 0);
	}
	store_txn_abort(t);
	/* A durable write queued after them commits after them. */
	put_op(&op, db, "last", "v");
	assert_int_equal(store_write_sync(st, &op, 1, 10000), 0);
	assert_int_equal(entries(st, db), 1001);
	store_writer_stats(st, &s);
	assert_int_equal(s.committed_total, 1001);
	assert_int_equal(s.queued, 0);
	/* 1001 writes, at most 512 per transaction: a handful of commits. */
	assert_true(s.batches_total >= 2 && s.batches_total <= 5);
	/* Deletes: of a present and of an absent key, both fine. */
	put_op(&op, db, "k0000", NULL);
	assert_int_equal(store_write_sync(st, &op, 1, 10000), 0);
	put_op(&op, db, "absent", NULL);
	assert_int_equal(store_write_sync(st, &op, 1, 10000), 0);
	assert_int_equal(entries(st, db), 1000);
	store_free(st);
}

struct syncer {
	struct store *st;
	unsigned int db;
	char key[16];
	int rc;
};

static void *sync_main(void *arg)
{
	struct syncer *s = arg;
	struct store_op op;

	put_op(&op, s->db, s->key, "durable");
	s->rc = store_write_sync(s->st, &op, 1, 20000);
	return NULL;
}

static void test_group_commit(void **state)
{
	struct store *st = open_st(0);
	struct store_writer_stats s;
	struct syncer sy[8];
	pthread_t th[8];
	struct store_txn *t;
	unsigned int db;

	assert_int_equal(store_db(st, "w", &db), 0);
	t = hold(st);
	for (int i = 0; i < 8; i++) {
		sy[i] = (struct syncer){ st, db, "", -1 };
		snprintf(sy[i].key, sizeof(sy[i].key), "s%d", i);
		assert_int_equal(pthread_create(&th[i], NULL, sync_main, &sy[i]), 0);
	}
	wait_queued_total(st, 8);
	store_txn_abort(t);
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(sy[i].rc, 0);
	}
	store_writer_stats(st, &s);
	assert_int_equal(s.committed_total, 8);
	/* The first may have been taken alone; the 7 others share a commit. */
	assert_true(s.batches_total <= 2);
	assert_int_equal(entries(st, db), 8);
	store_free(st);
}

static int flag_fn(struct store_txn *txn, void *arg)
{
	*(int *)arg = 1;
	return 0;
}

static void test_deadline(void **state)
{
	struct store *st = open_st(0);
	struct store_writer_stats s;
	struct store_txn *t;
	struct store_op op;
	unsigned int db;
	void *v;
	size_t vl;
	int ran = 0;

	assert_int_equal(store_db(st, "w", &db), 0);
	t = hold(st);
	put_op(&op, db, "late", "v");
	assert_int_equal(store_write_sync(st, &op, 1, 100), -ETIMEDOUT);
	assert_int_equal(store_write_call(st, flag_fn, &ran, 100), -ETIMEDOUT);
	store_writer_stats(st, &s);
	assert_int_equal(s.timeouts_total, 2);
	store_txn_abort(t);
	/* Both were withdrawn: the writer never applied them. */
	put_op(&op, db, "after", "v");
	assert_int_equal(store_write_sync(st, &op, 1, 10000), 0);
	assert_int_equal(ran, 0);
	assert_int_equal(store_get(st, db, "late", 4, &v, &vl), -ENOENT);
	assert_int_equal(store_get(st, db, "after", 5, &v, &vl), 0);
	free(v);
	store_free(st);
}

static void test_full_queue(void **state)
{
	struct store *st = open_st(8);
	struct store_writer_stats s;
	struct store_write *w;
	struct store_txn *t;
	struct store_op op;
	unsigned int db;
	int accepted = 0, rc = 0;
	char k[32];

	assert_int_equal(store_db(st, "w", &db), 0);
	t = hold(st);
	for (int i = 0; i < 600 && rc == 0; i++) {
		snprintf(k, sizeof(k), "a%04d", i);
		put_op(&op, db, k, "v");
		rc = store_write_async(st, &op, 1);
		accepted += rc == 0;
	}
	assert_int_equal(rc, -EAGAIN);
	/* 8 queued, plus what the writer took before blocking on the lock. */
	assert_true(accepted >= 8 && accepted < 600);
	store_writer_stats(st, &s);
	assert_int_equal(s.dropped_total, 1);
	/* Durable writes have their own quota: still accepted. */
	put_op(&op, db, "durable", "v");
	assert_int_equal(store_write_queue(st, &op, 1, &w), 0);
	store_txn_abort(t);
	assert_int_equal(store_write_wait(w, 10000), 0);
	assert_int_equal(entries(st, db), (uint64_t)accepted + 1);
	/* Bad input is refused before it is queued. */
	op.klen = 0;
	assert_int_equal(store_write_async(st, &op, 1), -EINVAL);
	assert_int_equal(store_write_async(st, &op, 0), -EINVAL);
	store_free(st);
}

struct failer {
	struct store *st;
	unsigned int db;
	int rc;
};

/* Writes, then fails: none of its writes may stay. */
static int fail_fn(struct store_txn *txn, void *arg)
{
	struct failer *f = arg;
	int err = store_txn_put(txn, f->db, "partial", 7, "x", 1);

	return err ? err : -EIO;
}

static void *fail_main(void *arg)
{
	struct failer *f = arg;

	f->rc = store_write_call(f->st, fail_fn, f, 20000);
	return NULL;
}

static void test_failure_isolated(void **state)
{
	struct store *st = open_st(0);
	struct store_write *w[3];
	struct store_txn *t;
	struct store_op op;
	struct failer f;
	pthread_t th;
	unsigned int db;
	void *v;
	size_t vl;

	assert_int_equal(store_db(st, "w", &db), 0);
	t = hold(st);
	put_op(&op, db, "one", "1");
	assert_int_equal(store_write_queue(st, &op, 1, &w[0]), 0);
	put_op(&op, db + 100, "bad", "x"); /* no such database */
	assert_int_equal(store_write_queue(st, &op, 1, &w[1]), 0);
	f = (struct failer){ st, db, 0 };
	assert_int_equal(pthread_create(&th, NULL, fail_main, &f), 0);
	wait_queued_total(st, 3);
	put_op(&op, db, "two", "2");
	assert_int_equal(store_write_queue(st, &op, 1, &w[2]), 0);
	store_txn_abort(t);
	assert_int_equal(store_write_wait(w[0], 10000), 0);
	assert_true(store_write_wait(w[1], 10000) < 0);
	assert_int_equal(store_write_wait(w[2], 10000), 0);
	pthread_join(th, NULL);
	assert_int_equal(f.rc, -EIO);
	assert_int_equal(entries(st, db), 2);
	assert_int_equal(store_get(st, db, "partial", 7, &v, &vl), -ENOENT);
	store_free(st);
}

struct counter {
	struct store *st;
	unsigned int db;
	int rc;
};

/* Read-modify-write inside the writer's transaction. */
static int incr_fn(struct store_txn *txn, void *arg)
{
	struct counter *c = arg;
	const void *v;
	size_t vl;
	uint32_t n = 0;
	int err = store_txn_get(txn, c->db, "n", 1, &v, &vl);

	if (err == 0 && vl == 4)
		memcpy(&n, v, 4);
	else if (err != -ENOENT)
		return -EIO;
	n++;
	return store_txn_put(txn, c->db, "n", 1, &n, 4);
}

static void *incr_main(void *arg)
{
	struct counter *c = arg;

	for (int i = 0; i < 50 && !c->rc; i++)
		c->rc = store_write_call(c->st, incr_fn, c, 20000);
	return NULL;
}

static void test_call(void **state)
{
	struct store *st = open_st(0);
	struct counter c[4];
	pthread_t th[4];
	unsigned int db;
	uint32_t n;
	void *v;
	size_t vl;

	assert_int_equal(store_db(st, "w", &db), 0);
	for (int i = 0; i < 4; i++) {
		c[i] = (struct counter){ st, db, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, incr_main, &c[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(c[i].rc, 0);
	}
	assert_int_equal(store_get(st, db, "n", 1, &v, &vl), 0);
	assert_int_equal(vl, 4);
	memcpy(&n, v, 4);
	free(v);
	assert_int_equal(n, 200);
	store_free(st);
}

static void test_shutdown_drain(void **state)
{
	struct store *st = open_st(0);
	struct store_opts ro = { .dir = dir, .read_only = 1 };
	struct store_op op;
	unsigned int db;
	char k[32];

	assert_int_equal(store_db(st, "w", &db), 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(k, sizeof(k), "d%05d", i);
		put_op(&op, db, k, "v");
		assert_int_equal(store_write_async(st, &op, 1), 0);
	}
	store_free(st); /* drains */
	st = open_st(0);
	assert_int_equal(store_db(st, "w", &db), 0);
	assert_int_equal(entries(st, db), 2000);
	store_free(st);
	/* A read-only store has no writer. */
	assert_int_equal(store_new(&st, &ro), 0);
	put_op(&op, 1, "x", "v");
	assert_int_equal(store_write_async(st, &op, 1), -ESHUTDOWN);
	assert_int_equal(store_write_sync(st, &op, 1, 100), -ESHUTDOWN);
	store_free(st);
}

static void test_metrics(void **state)
{
	struct store *st = open_st(0);
	struct store_op op;
	unsigned int db;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(store_db(st, "w", &db), 0);
	put_op(&op, db, "m", "v");
	assert_int_equal(store_write_sync(st, &op, 1, 10000), 0);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	store_metrics(st, f);
	fclose(f);
	assert_non_null(strstr(buf, "weft_store_writes_committed_total 1\n"));
	assert_non_null(strstr(buf, "weft_store_commit_seconds_count 1\n"));
	assert_non_null(strstr(buf, "weft_store_queued 0\n"));
	free(buf);
	store_free(st);
}

/* Dispatch method path body; returns the status, the error code in code. */
static int call(struct ctl *ctl, const char *method, const char *path, const char *body,
		char *code, size_t cl)
{
	struct ctl_req req = { .method = method, .path = path };
	struct ctl_resp resp = { 0 };
	json_error_t je;
	const char *c;

	if (body) {
		req.body = (const uint8_t *)body;
		req.body_len = strlen(body);
		req.json = json_loads(body, 0, &je);
	}
	ctl_dispatch(ctl, &req, &resp);
	c = json_string_value(json_object_get(json_object_get(resp.json, "error"), "code"));
	snprintf(code, cl, "%s", c ? c : "");
	json_decref(req.json);
	json_decref(resp.json);
	free(resp.text);
	return resp.status;
}

/*
 * The guard's control routes over a store whose writer cannot commit: an
 * operator ban and a limits change are answered 503 "not_durable" after
 * the deadline (in force, not stored), then 2xx once the store commits, and
 * only what was acknowledged comes back with a new guard on the store.
 */
static void test_guard_not_durable(void **state)
{
	struct store_opts so = { .dir = dir, .map_size = 16 << 20, .write_timeout_ms = 200 };
	struct guard_opts go = { .npolicers = 1 };
	struct ctl_opts co = { 0 };
	struct wxdp_ban list[8];
	struct wxdp_config c;
	struct store *st = NULL;
	struct guard *g = NULL;
	struct ctl *ctl = NULL;
	struct store_txn *t;
	char sock[512], code[64];
	size_t n;

	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	co.socket_path = sock;
	assert_int_equal(store_new(&st, &so), 0);
	go.store = st;
	assert_int_equal(guard_new(&g, &go), 0);
	assert_int_equal(ctl_new(&ctl, &co), 0);
	assert_int_equal(guard_ctl_register(g, ctl), 0);

	t = hold(st);
	assert_int_equal(call(ctl, "POST", "/v1/bans", "{\"cidr\": \"192.0.2.0/24\"}", code,
			      sizeof(code)), 503);
	assert_string_equal(code, "not_durable");
	assert_int_equal(call(ctl, "PUT", "/v1/xdp/limits", "{\"dht\": {\"pps\": 4321}}", code,
			      sizeof(code)), 503);
	assert_string_equal(code, "not_durable");
	/* In force all the same. */
	assert_int_equal(guard_ban_list(g, list, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(guard_config_get(g, &c), 0);
	assert_int_equal(c.dht.pps, 4321);
	store_txn_abort(t);
	assert_int_equal(call(ctl, "POST", "/v1/bans", "{\"cidr\": \"198.51.100.0/24\"}", code,
			      sizeof(code)), 201);
	ctl_free(ctl);
	guard_free(g);

	/* A new guard on the same store: the acknowledged ban only, the
	 * unacknowledged limits change not applied. */
	ctl = NULL;
	assert_int_equal(guard_new(&g, &go), 0);
	assert_int_equal(guard_ban_list(g, list, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].addr[0], 198);
	assert_int_equal(guard_config_get(g, &c), 0);
	assert_int_not_equal(c.dht.pps, 4321);
	guard_free(g);
	store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_isolated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guard_not_durable, setup, teardown),
	};

	return cmocka_run_group_tests_name("store_writer", tests, NULL, NULL);
}
