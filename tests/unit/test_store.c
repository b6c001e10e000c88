// SPDX-License-Identifier: MIT
/* Store: open, reopen, migration, corruption, foreign files, double open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "testutil.h"
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

static struct store *open_ok(uint32_t version, store_migrate_fn fn, void *arg)
{
	struct store_opts o = { .dir = dir, .map_size = 8 << 20, .schema_version = version,
				.migrate = fn, .migrate_arg = arg };
	struct store *st = NULL;

	assert_int_equal(store_new(&st, &o), 0);
	return st;
}

static void test_open_reopen(void **state)
{
	struct store *st = open_ok(0, NULL, NULL);
	unsigned int db;
	void *v;
	size_t vl;
	uint64_t n;

	assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
	assert_int_equal(store_db(st, "things", &db), 0);
	assert_int_equal(store_db(st, "meta", &db), -EINVAL);
	assert_int_equal(store_db(st, "things", &db), 0);
	assert_int_equal(store_put(st, db, "k1", 2, "value1", 6), 0);
	assert_int_equal(store_put(st, db, "k2", 2, "", 0), 0);
	assert_int_equal(store_get(st, db, "nokey", 5, &v, &vl), -ENOENT);
	char big[600] = { 0 };

	assert_int_equal(store_put(st, db, big, sizeof(big), "x", 1), -EINVAL);
	store_free(st);

	st = open_ok(0, NULL, NULL);
	assert_int_equal(store_db(st, "things", &db), 0);
	assert_int_equal(store_get(st, db, "k1", 2, &v, &vl), 0);
	assert_int_equal(vl, 6);
	assert_memory_equal(v, "value1", 6);
	free(v);
	assert_int_equal(store_stat(st, db, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(store_del(st, db, "k1", 2), 0);
	assert_int_equal(store_del(st, db, "k1", 2), -ENOENT);
	store_free(st);
}

static int count_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	(*(int *)arg)++;
	return 0;
}

static void test_txn_abort_keeps_old(void **state)
{
	struct store *st = open_ok(0, NULL, NULL);
	struct store_txn *t;
	unsigned int db;
	int count = 0;

	assert_int_equal(store_db(st, "d", &db), 0);
	assert_int_equal(store_put(st, db, "a", 1, "1", 1), 0);
	assert_int_equal(store_txn_begin(st, 0, &t), 0);
	assert_int_equal(store_txn_put(t, db, "b", 1, "2", 1), 0);
	assert_int_equal(store_txn_del(t, db, "a", 1), 0);
	store_txn_abort(t);
	assert_int_equal(store_iter(st, db, count_cb, &count), 0);
	assert_int_equal(count, 1);
	store_free(st);
}

/* store_room: the map's size, all of it free but the first pages when
 * new, less once 2 MiB of values are written, and back up (on LMDB's free
 * list) once they are deleted. */
static void test_room(void **state)
{
	struct store *st = open_ok(0, NULL, NULL);
	static char val[4000];
	uint64_t free0, free1, free2, map;
	unsigned int db;
	char key[16];

	assert_int_equal(store_db(st, "r", &db), 0);
	assert_int_equal(store_room(st, &free0, &map), 0);
	assert_int_equal(map, 8 << 20);
	assert_true(free0 <= map && free0 > map - 64 * 1024);
	for (int i = 0; i < 512; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(store_put(st, db, key, strlen(key), val, sizeof(val)), 0);
	}
	assert_int_equal(store_room(st, &free1, &map), 0);
	assert_true(free1 + 2 * 1024 * 1024 <= free0);
	for (int i = 0; i < 512; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(store_del(st, db, key, strlen(key)), 0);
	}
	assert_int_equal(store_room(st, &free2, &map), 0);
	assert_true(free2 >= free0 - 64 * 1024);
	store_free(st);
}

static int migrations_run;

static int migrate(struct store_txn *txn, uint32_t from, void *arg)
{
	unsigned int db;
	char key[16];
	int err = store_txn_db(txn, "mig", &db);

	if (err)
		return err;
	snprintf(key, sizeof(key), "m%u", from);
	migrations_run++;
	return store_txn_put(txn, db, key, strlen(key), "done", 4);
}

static int migrate_fail(struct store_txn *txn, uint32_t from, void *arg)
{
	return from == 2 ? -EIO : 0;
}

static void test_migration(void **state)
{
	struct store_opts o = { .dir = dir, .map_size = 8 << 20 };
	struct store *st = open_ok(1, NULL, NULL);
	unsigned int db;
	void *v;
	size_t vl;

	assert_int_equal(store_db(st, "mig", &db), 0);
	store_free(st);
	/* 1 -> 3: two steps in one transaction */
	migrations_run = 0;
	st = open_ok(3, migrate, NULL);
	assert_int_equal(store_db(st, "mig", &db), 0);
	assert_int_equal(migrations_run, 2);
	assert_int_equal(store_schema_version(st), 3);
	assert_int_equal(store_get(st, db, "m1", 2, &v, &vl), 0);
	free(v);
	assert_int_equal(store_get(st, db, "m2", 2, &v, &vl), 0);
	free(v);
	store_free(st);
	/* newer than this build */
	o.schema_version = 2;
	assert_int_equal(store_new(&st, &o), -EPROTO);
	assert_null(st);
	/* no migration path */
	o.schema_version = 4;
	assert_int_equal(store_new(&st, &o), -EPROTO);
	/* a failing migration rolls back: the version stays 3 */
	o.schema_version = 5;
	o.migrate = migrate_fail;
	assert_int_equal(store_new(&st, &o), 0);
	store_free(st);
	o.schema_version = 3;
	o.migrate = NULL;
	/* version is now 5, so opening with 3 is "newer than build" */
	assert_int_equal(store_new(&st, &o), -EPROTO);
}

static void test_migration_rollback(void **state)
{
	struct store_opts o = { .dir = dir, .map_size = 8 << 20, .schema_version = 2 };
	struct store *st = open_ok(2, NULL, NULL);

	store_free(st);
	o.schema_version = 4;
	o.migrate = migrate_fail; /* 2 -> 3 fails */
	assert_int_equal(store_new(&st, &o), -EIO);
	o.schema_version = 2;
	o.migrate = NULL;
	assert_int_equal(store_new(&st, &o), 0);
	assert_int_equal(store_schema_version(st), 2);
	store_free(st);
}

static void write_file(const char *name, const uint8_t *buf, size_t len)
{
	assert_int_equal(tu_write(dir, name, buf, len, 0600), 0);
}

static void test_garbage_files(void **state)
{
	static const size_t sizes[] = { 1, 100, 4096, 8192, 3 * 4096 + 7, 65536 };
	struct store_opts o = { .dir = dir, .map_size = 8 << 20 };
	struct store *st;
	uint8_t *buf = malloc(65536);

	assert_non_null(buf);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct stat sb;
		char path[4096];

		tu_fill(buf, sizes[i], i + 1);
		write_file("data.mdb", buf, sizes[i]);
		assert_int_equal(store_new(&st, &o), -EBADMSG);
		/* the file is left untouched for the operator to inspect */
		snprintf(path, sizeof(path), "%s/data.mdb", dir);
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal((size_t)sb.st_size, sizes[i]);
	}
	free(buf);
}

static void test_truncated_store(void **state)
{
	struct store_opts o = { .dir = dir, .map_size = 8 << 20 };
	struct store *st = open_ok(0, NULL, NULL);
	char path[4096];
	unsigned int db;

	assert_int_equal(store_db(st, "x", &db), 0);
	for (int i = 0; i < 200; i++) {
		char k[16];

		snprintf(k, sizeof(k), "key%d", i);
		assert_int_equal(store_put(st, db, k, strlen(k), path, 1000), 0);
	}
	store_free(st);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_int_equal(truncate(path, 4096 + 100), 0);
	assert_int_equal(store_new(&st, &o), -EBADMSG);
}

static void test_foreign_lmdb(void **state)
{
	struct store_opts o = { .dir = dir, .map_size = 8 << 20 };
	struct store *st;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { 3, "foo" }, v = { 3, "bar" };

	/* A valid LMDB environment written by someone else. */
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_int_equal(store_new(&st, &o), -EBADMSG);
	/* and its record survives */
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_memory_equal(v.mv_data, "bar", 3);
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

static void test_double_open(void **state)
{
	struct store_opts o = { .dir = dir, .map_size = 8 << 20 };
	struct store *st = open_ok(0, NULL, NULL), *st2;
	pid_t pid;
	int status;

	/* flock is per open file description: a second open in this process
	 * conflicts too, as does one in another process. */
	assert_int_equal(store_new(&st2, &o), -EBUSY);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *s3;

		_exit(store_new(&s3, &o) == -EBUSY ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	store_free(st);
	assert_int_equal(store_new(&st2, &o), 0);
	store_free(st2);
}

static void test_crash_mid_write(void **state)
{
	/* A child killed mid-transaction leaves the last commit intact. */
	struct store *st;
	unsigned int db;
	pid_t pid;
	int status;
	void *v;
	size_t vl;

	st = open_ok(0, NULL, NULL);
	assert_int_equal(store_db(st, "c", &db), 0);
	assert_int_equal(store_put(st, db, "stable", 6, "yes", 3), 0);
	store_free(st);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store_txn *t;
		struct store *cs = open_ok(0, NULL, NULL);

		store_db(cs, "c", &db);
		store_txn_begin(cs, 0, &t);
		for (int i = 0; i < 1000; i++) {
			char k[16];

			snprintf(k, sizeof(k), "k%d", i);
			store_txn_put(t, db, k, strlen(k), "junkjunk", 8);
		}
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	st = open_ok(0, NULL, NULL);
	assert_int_equal(store_db(st, "c", &db), 0);
	assert_int_equal(store_get(st, db, "stable", 6, &v, &vl), 0);
	free(v);
	assert_int_equal(store_get(st, db, "k5", 2, &v, &vl), -ENOENT);
	store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_txn_abort_keeps_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_lmdb, setup, teardown),
		cmocka_unit_test_setup_teardown(test_double_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_mid_write, setup, teardown),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
