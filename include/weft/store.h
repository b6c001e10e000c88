/* SPDX-License-Identifier: MIT */
/*
 * Persistent state in LMDB: one environment in <state>/store/, named
 * databases, a schema-version record and migrations.
 *
 * Readers never block (LMDB MVCC); writes are serialised by LMDB. Every
 * write goes through a transaction that either commits whole or not at all,
 * so stopping the process at any moment leaves the store consistent.
 *
 * The writer (store_write_*): one thread per store, started by store_new()
 * and stopped (queue drained) by store_free(), takes queued writes and
 * commits them in batches, one LMDB transaction (one fsync) per batch.
 * Each queued write is atomic on its own (a nested transaction inside the
 * batch): one that fails leaves the others of its batch untouched. Two
 * ways in:
 *  - store_write_async(): fire-and-forget, for state that need not be
 *    durable at once (automatic bans, the DHT's periodic snapshot). Never
 *    blocks on I/O: the caller takes one short mutex to append; a full
 *    queue drops the write, counts it and logs (at most every 10 s).
 *  - store_write_queue() + store_write_wait() / store_write_sync() /
 *    store_write_call(): durable, for what the control API acknowledges.
 *    The caller waits, with a deadline, until the batch holding its write
 *    is committed; concurrent waiters share one commit (group commit).
 * Writes queued by one thread are committed in the order they were queued.
 * Never wait for a durable write while holding a write transaction of the
 * same store (the writer needs LMDB's write lock: the wait would end in
 * -ETIMEDOUT), nor call store_write_* from inside a store_write_fn.
 * Direct write transactions (store_txn_begin(st, 0), store_put, ...) still
 * work (LMDB serialises them with the writer's) and are meant for code off
 * the packet path that must read and write in one transaction at once
 * (migrations, the chunk store's index).
 *
 * The store takes an exclusive flock on <state>/store/weft.lock: a second
 * process opening the same directory gets -EBUSY.
 */
#ifndef WEFT_STORE_H
#define WEFT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct store;
struct store_txn;

/* Current schema version written by this build. */
#define STORE_SCHEMA_VERSION 1U

/*
 * A migration moves a store from version `from` to `from + 1` inside the
 * given write transaction. Returns 0 or -errno (the whole upgrade is then
 * rolled back).
 */
typedef int (*store_migrate_fn)(struct store_txn *txn, uint32_t from, void *arg);

struct store_opts {
	const char *dir;          /* directory for data.mdb (created 0700) */
	size_t map_size;          /* LMDB map size; default 1 GiB (disk use grows on demand) */
	unsigned int max_dbs;     /* named databases; default 32 */
	uint32_t schema_version;  /* target version; 0 = STORE_SCHEMA_VERSION */
	store_migrate_fn migrate; /* may be NULL when no migration is needed */
	void *migrate_arg;
	int read_only;            /* open without writing (tools); no lock taken, no writer */
	unsigned int write_queue_max;     /* queued writes per class; 0 = STORE_WRITE_QUEUE_MAX */
	unsigned int write_timeout_ms;    /* durable wait when a call passes 0; 0 = default */
};

/*
 * Writer limits (docs/OPERATIONS.md, "Limits"):
 * - STORE_WRITE_QUEUE_MAX writes queued and not yet taken by the writer,
 *   counted separately for fire-and-forget and durable writes (a flood of
 *   automatic bans cannot refuse an operator's ban), and
 *   STORE_WRITE_QUEUE_BYTES of copied keys and values over both: a full
 *   queue means the disk is far behind; fire-and-forget writes are dropped
 *   (weft_store_writes_dropped_total), durable ones refused with -EAGAIN.
 * - STORE_WRITE_BATCH_MAX writes per transaction: bounds the time one
 *   commit holds LMDB's write lock.
 * - STORE_WRITE_TIMEOUT_MS: default deadline of a durable wait; a commit
 *   normally takes milliseconds, 5 s means the disk is stuck.
 * - store_free() drains the queue, waiting at most STORE_WRITER_STOP_MS.
 */
#define STORE_WRITE_QUEUE_MAX 4096U
#define STORE_WRITE_QUEUE_BYTES (64U << 20)
#define STORE_WRITE_BATCH_MAX 512U
#define STORE_WRITE_TIMEOUT_MS 5000U
#define STORE_WRITER_STOP_MS 2000U

/*
 * Open (creating if absent) the store.
 * Errors: -EBUSY  directory in use by another process (holder pid logged)
 *         -EBADMSG not an LMDB file, or an LMDB file that is not weft's,
 *                 or damaged (header or meta records unreadable)
 *         -EPROTO schema newer than this build, or no migration path
 *         -EACCES, -ENOSPC, ... from the file system.
 * Nothing on disk is modified unless the open succeeds (a failed migration
 * is rolled back).
 */
int store_new(struct store **out, const struct store_opts *opts);
void store_free(struct store *st);

uint32_t store_schema_version(const struct store *st);

/* Open or create a named database; *dbi is valid for the store's lifetime.
 * Returns 0, -ENOSPC (max_dbs reached) or -EIO. */
int store_db(struct store *st, const char *name, unsigned int *dbi);

/* Open or create a named database inside a write transaction (migrations
 * use this: handles from store_db() are not valid inside the migration of
 * the same open). */
int store_txn_db(struct store_txn *txn, const char *name, unsigned int *dbi);

int store_txn_begin(struct store *st, int read_only, struct store_txn **out);
/* Commit a write transaction (a read one is just closed). Frees txn. */
int store_txn_commit(struct store_txn *txn);
/* Discard; NULL-safe; frees txn. */
void store_txn_abort(struct store_txn *txn);

/* Within a transaction. get returns a pointer into the map valid until the
 * transaction ends. Return 0, -ENOENT, -ENOSPC (map full), -EINVAL (key too
 * long: LMDB keys are at most 511 bytes), -EIO. */
int store_txn_put(struct store_txn *txn, unsigned int dbi, const void *key, size_t klen,
		  const void *val, size_t vlen);
int store_txn_get(struct store_txn *txn, unsigned int dbi, const void *key, size_t klen,
		  const void **val, size_t *vlen);
int store_txn_del(struct store_txn *txn, unsigned int dbi, const void *key, size_t klen);
/* Remove every record of a database. */
int store_txn_clear(struct store_txn *txn, unsigned int dbi);

/* Iterate a database in key order; fn returns 0 to continue, >0 to stop
 * (returned as is), <0 to abort with that error. */
typedef int (*store_iter_fn)(void *arg, const void *key, size_t klen, const void *val,
			     size_t vlen);
int store_txn_iter(struct store_txn *txn, unsigned int dbi, store_iter_fn fn, void *arg);
/* The same from the first key >= from (flen bytes; NULL or flen 0: the first
 * key): a range scan (one recipient's records under a key prefix) stops by
 * returning >0 once past its range. */
int store_txn_iter_from(struct store_txn *txn, unsigned int dbi, const void *from, size_t flen,
			store_iter_fn fn, void *arg);

/* Bytes of the map still free (never used, or on LMDB's free list) and
 * the map's size, in a read transaction of its own: for writers of data
 * that can be rebuilt (the search index) to leave room for data that
 * cannot. */
int store_room(struct store *st, uint64_t *free_bytes, uint64_t *map_bytes);

/* One-record conveniences (own transaction each). store_get copies the value
 * into a malloc'd buffer the caller frees. */
int store_put(struct store *st, unsigned int dbi, const void *key, size_t klen, const void *val,
	      size_t vlen);
int store_get(struct store *st, unsigned int dbi, const void *key, size_t klen, void **val,
	      size_t *vlen);
int store_del(struct store *st, unsigned int dbi, const void *key, size_t klen);
int store_iter(struct store *st, unsigned int dbi, store_iter_fn fn, void *arg);

/* Entry count and bytes used, for /metrics. */
int store_stat(struct store *st, unsigned int dbi, uint64_t *entries);

/* ---- the writer ---- */

/* One put or delete. val == NULL: delete key (an absent key is not an
 * error). key and val are copied when the write is queued. */
struct store_op {
	unsigned int dbi;
	const void *key;
	size_t klen;
	const void *val;
	size_t vlen;
};

/* A durable write in flight (store_write_queue -> store_write_wait). */
struct store_write;

/*
 * Fire-and-forget: queue n ops (applied atomically together) and return.
 * Never waits on the disk or the writer. Returns 0, -EINVAL (n == 0,
 * n > 64, a key of 0 or > 511 bytes), -EAGAIN (queue full: dropped and
 * counted), -ENOMEM, -ESHUTDOWN (store stopping or read-only).
 */
int store_write_async(struct store *st, const struct store_op *ops, size_t n);

/*
 * Durable write in two steps, so that a caller can queue under its own lock
 * (the store then commits in the order of that lock) and wait outside it.
 * store_write_queue: errors as store_write_async (-EAGAIN: queue full, not
 * queued). On 0, *out must be passed to store_write_wait exactly once.
 */
int store_write_queue(struct store *st, const struct store_op *ops, size_t n,
		      struct store_write **out);
/*
 * Wait until w is committed, at most timeout_ms (0 = the store's default).
 * Consumes w. Returns 0 (on disk), -ETIMEDOUT (deadline passed: the write
 * was withdrawn if the writer had not started it, else it may still
 * commit), -ENOSPC (map full), -EINVAL (bad key), -EIO or another -errno
 * from LMDB (not written).
 */
int store_write_wait(struct store_write *w, unsigned int timeout_ms);
/* Queue and wait. */
int store_write_sync(struct store *st, const struct store_op *ops, size_t n,
		     unsigned int timeout_ms);

/*
 * Run fn(txn, arg) on the writer thread inside its batch transaction and
 * wait for the commit, at most timeout_ms (0 = default). fn's changes are
 * kept when it returns >= 0, discarded when it returns < 0, which is then
 * the result. fn sees every write committed or queued before it, and may
 * be run more than once (only the last run counts: a failing write, fn
 * itself included, makes the writer run the batch again with each write
 * isolated): it must only read and write through txn and arg, and set its
 * outputs in arg on every run. arg is not used after this returns: on a
 * deadline, a call the writer has not started is withdrawn; one it is
 * running is waited for (fn does no I/O but LMDB's). Returns fn's result
 * or the errors of store_write_wait.
 */
typedef int (*store_write_fn)(struct store_txn *txn, void *arg);
int store_write_call(struct store *st, store_write_fn fn, void *arg, unsigned int timeout_ms);

struct store_writer_stats {
	uint64_t queued;          /* writes waiting now (both classes) */
	uint64_t queued_bytes;
	uint64_t queued_total;    /* writes accepted */
	uint64_t committed_total; /* writes on disk */
	uint64_t failed_total;    /* writes refused by LMDB (map full, bad key, ...) */
	uint64_t dropped_total;   /* fire-and-forget writes refused by a full queue */
	uint64_t refused_total;   /* durable writes refused by a full queue */
	uint64_t timeouts_total;  /* durable waits that passed their deadline */
	uint64_t batches_total;   /* transactions committed */
	uint64_t commit_ns_sum;   /* time in commit (fsync included), summed */
	uint64_t commit_ns_max;
	uint64_t commit_hist[8];  /* commits <= 1, 4, 16, 64, 256 ms, 1, 4 s, more */
};
/* Snapshot of the writer's counters (zeros for a read-only store). */
void store_writer_stats(struct store *st, struct store_writer_stats *out);
/* weft_store_* lines for /metrics; arg is the store (ctl_metrics_fn). */
void store_metrics(void *arg, FILE *out);

#endif
