/* SPDX-License-Identifier: MIT */
/*
 * Persistent state in LMDB: one environment in <state>/store/, named
 * databases, a schema-version record and migrations.
 *
 * Readers never block (LMDB MVCC); writes are serialised by LMDB. Every
 * write goes through a transaction that either commits whole or not at all,
 * so stopping the process at any moment leaves the store consistent.
 *
 * The store takes an exclusive flock on <state>/store/weft.lock: a second
 * process opening the same directory gets -EBUSY.
 */
#ifndef WEFT_STORE_H
#define WEFT_STORE_H

#include <stddef.h>
#include <stdint.h>
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
	int read_only;            /* open without writing (tools); no lock taken */
};

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

#endif
