// SPDX-License-Identifier: MIT
/* LMDB environment, named databases, schema version and migrations. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weft/log.h"
#include "weft/store.h"
#include "weft/util.h"
#include "store_int.h"

#define STORE_MAGIC "weft-store-v1"
#define STORE_META_DB "meta"
#define STORE_DEFAULT_MAP_SIZE (1ULL << 30)
#define STORE_DEFAULT_MAX_DBS 32U

#define mdb_err store_mdb_err

static int store_lock(struct store *st, const char *dir)
{
	char path[4096], pid[32];
	int fd, err;

	snprintf(path, sizeof(path), "%s/weft.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);

		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		log_error("store", "%s is in use by another weftd (pid %s)", dir,
			  pid[0] ? pid : "unknown");
		close(fd);
		return err;
	}
	if (ftruncate(fd, 0) == 0) {
		int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());

		if (pwrite(fd, pid, (size_t)n, 0) < 0)
			log_warn("store", "cannot record pid in lock file: %s", strerror(errno));
	}
	st->lock_fd = fd;
	return 0;
}

/*
 * Validate an LMDB file before handing it to LMDB: LMDB trusts its own file
 * and a foreign or truncated file must not reach it. Checks the size is a
 * whole number of pages and the two meta pages carry LMDB's magic.
 */
static int store_precheck(const char *dir)
{
	char path[4096];
	uint8_t page[256];
	struct stat sb;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return -EBADMSG;
	}
	if (sb.st_size == 0) {
		/* An empty file is what a crash during creation leaves. */
		close(fd);
		return 0;
	}
	n = pread(fd, page, sizeof(page), 0);
	close(fd);
	/* Meta page: pgno(8) pad(2) flags(2) lower/upper(4), then mm_magic (4). */
	if (n < 20 || sb.st_size < 2 * 4096 || sb.st_size % 4096 != 0)
		return -EBADMSG;
	uint32_t magic;

	memcpy(&magic, page + 16, 4);
	if (magic != 0xBEEFC0DEU)
		return -EBADMSG;
	return 0;
}

static int meta_get_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t *out)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc = mdb_get(txn, dbi, &k, &v);

	if (rc)
		return mdb_err(rc);
	if (v.mv_size != 4)
		return -EBADMSG;
	memcpy(out, v.mv_data, 4);
	return 0;
}

static int meta_put_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t val)
{
	MDB_val k = { strlen(key), (void *)key }, v = { 4, &val };

	return mdb_err(mdb_put(txn, dbi, &k, &v, 0));
}

/* First open: stamp magic and version. Later: check them, then migrate. */
static int store_init_schema(struct store *st, const struct store_opts *opts, uint32_t target)
{
	MDB_txn *txn = NULL;
	MDB_val k = { sizeof(STORE_MAGIC) - 1, (void *)STORE_MAGIC }, v;
	uint32_t version = 0;
	int rc, err;

	rc = mdb_txn_begin(st->env, NULL, st->read_only ? MDB_RDONLY : 0, &txn);
	if (rc)
		return mdb_err(rc);
	rc = mdb_dbi_open(txn, STORE_META_DB, st->read_only ? 0 : MDB_CREATE, &st->meta);
	if (rc == MDB_NOTFOUND) {
		/* A valid LMDB file with no "meta" database: someone else's. */
		MDB_stat ms;

		if (st->read_only || (mdb_stat(txn, 1, &ms) == 0 && ms.ms_entries > 0)) {
			err = -EBADMSG;
			goto out;
		}
	}
	if (rc) {
		err = rc == MDB_INCOMPATIBLE ? -EBADMSG : mdb_err(rc);
		goto out;
	}
	rc = mdb_get(txn, st->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		MDB_stat ms;

		/* Fresh store only if the main DB holds nothing but our meta db. */
		if (mdb_stat(txn, 1, &ms) == 0 && ms.ms_entries > 1) {
			err = -EBADMSG;
			goto out;
		}
		if (st->read_only) {
			err = -EBADMSG;
			goto out;
		}
		v.mv_size = 1;
		v.mv_data = "1";
		if ((err = mdb_err(mdb_put(txn, st->meta, &k, &v, 0))) ||
		    (err = meta_put_u32(txn, st->meta, "schema_version", target)))
			goto out;
		version = target;
	} else if (rc) {
		err = mdb_err(rc);
		goto out;
	} else {
		err = meta_get_u32(txn, st->meta, "schema_version", &version);
		if (err) {
			err = -EBADMSG;
			goto out;
		}
		if (version > target) {
			log_error("store", "store schema %u is newer than this weftd (%u)", version,
				  target);
			err = -EPROTO;
			goto out;
		}
		while (version < target) {
			struct store_txn t = { st, txn, 0 };

			if (!opts->migrate || st->read_only) {
				log_error("store", "no migration from schema %u to %u", version,
					  target);
				err = -EPROTO;
				goto out;
			}
			log_info("store", "migrating schema %u -> %u", version, version + 1);
			err = opts->migrate(&t, version, opts->migrate_arg);
			if (err)
				goto out;
			version++;
			if ((err = meta_put_u32(txn, st->meta, "schema_version", version)))
				goto out;
		}
	}
	st->version = version;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	err = mdb_err(rc);
out:
	if (txn)
		mdb_txn_abort(txn);
	return err;
}

int store_new(struct store **out, const struct store_opts *opts)
{
	struct store *st;
	uint32_t target = opts->schema_version ? opts->schema_version : STORE_SCHEMA_VERSION;
	int rc, err;

	*out = NULL;
	if (!opts->dir)
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->lock_fd = -1;
	st->read_only = opts->read_only;
	if (!st->read_only) {
		if ((err = util_mkdir_p(opts->dir, 0700)))
			goto fail;
		if ((err = store_lock(st, opts->dir)))
			goto fail;
	}
	if ((err = store_precheck(opts->dir))) {
		log_error("store", "%s/data.mdb is not a weft store or is damaged", opts->dir);
		goto fail;
	}
	if ((rc = mdb_env_create(&st->env))) {
		err = mdb_err(rc);
		goto fail;
	}
	mdb_env_set_mapsize(st->env, opts->map_size ? opts->map_size : STORE_DEFAULT_MAP_SIZE);
	mdb_env_set_maxdbs(st->env, (opts->max_dbs ? opts->max_dbs : STORE_DEFAULT_MAX_DBS) + 1);
	mdb_env_set_maxreaders(st->env, 126);
	rc = mdb_env_open(st->env, opts->dir, MDB_NOTLS | (st->read_only ? MDB_RDONLY : 0), 0600);
	if (rc) {
		err = mdb_err(rc);
		log_error("store", "cannot open %s: %s", opts->dir, mdb_strerror(rc));
		goto fail;
	}
	err = store_init_schema(st, opts, target);
	if (err) {
		if (err == -EBADMSG)
			log_error("store", "%s does not hold a weft store (foreign or damaged)",
				  opts->dir);
		goto fail;
	}
	if (!st->read_only && (err = store_writer_start(st, opts)))
		goto fail;
	*out = st;
	return 0;
fail:
	store_free(st);
	return err;
}

void store_free(struct store *st)
{
	if (!st)
		return;
	if (store_writer_stop(st)) {
		/* The writer is stuck inside LMDB (a disk that does not answer):
		 * closing the environment under it would crash; the process is
		 * stopping, so leave it and release the directory lock. */
		log_error("store", "the writer did not stop within %u ms: store left open",
			  STORE_WRITER_STOP_MS);
		if (st->lock_fd >= 0)
			close(st->lock_fd);
		return;
	}
	if (st->env)
		mdb_env_close(st->env);
	if (st->lock_fd >= 0)
		close(st->lock_fd); /* releases the flock */
	free(st);
}

uint32_t store_schema_version(const struct store *st)
{
	return st->version;
}

int store_db(struct store *st, const char *name, unsigned int *dbi)
{
	MDB_txn *txn;
	MDB_dbi d;
	int rc;

	if (strcmp(name, STORE_META_DB) == 0)
		return -EINVAL;
	rc = mdb_txn_begin(st->env, NULL, st->read_only ? MDB_RDONLY : 0, &txn);
	if (rc)
		return mdb_err(rc);
	rc = mdb_dbi_open(txn, name, st->read_only ? 0 : MDB_CREATE, &d);
	if (rc) {
		mdb_txn_abort(txn);
		return mdb_err(rc);
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		return mdb_err(rc);
	*dbi = d;
	return 0;
}

int store_txn_db(struct store_txn *txn, const char *name, unsigned int *dbi)
{
	MDB_dbi d;
	int rc;

	if (strcmp(name, STORE_META_DB) == 0)
		return -EINVAL;
	rc = mdb_dbi_open(txn->txn, name, txn->read_only ? 0 : MDB_CREATE, &d);
	if (rc)
		return mdb_err(rc);
	*dbi = d;
	return 0;
}

int store_txn_begin(struct store *st, int read_only, struct store_txn **out)
{
	struct store_txn *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return -ENOMEM;
	if (st->read_only)
		read_only = 1;
	rc = mdb_txn_begin(st->env, NULL, read_only ? MDB_RDONLY : 0, &t->txn);
	if (rc) {
		free(t);
		return mdb_err(rc);
	}
	t->st = st;
	t->read_only = read_only;
	*out = t;
	return 0;
}

int store_txn_commit(struct store_txn *txn)
{
	int rc;

	if (txn->read_only) {
		mdb_txn_abort(txn->txn);
		free(txn);
		return 0;
	}
	rc = mdb_txn_commit(txn->txn);
	free(txn);
	return mdb_err(rc);
}

void store_txn_abort(struct store_txn *txn)
{
	if (!txn)
		return;
	mdb_txn_abort(txn->txn);
	free(txn);
}

int store_txn_put(struct store_txn *txn, unsigned int dbi, const void *key, size_t klen,
		  const void *val, size_t vlen)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	if (txn->read_only)
		return -EROFS;
	if (klen == 0 || klen > 511)
		return -EINVAL;
	return mdb_err(mdb_put(txn->txn, dbi, &k, &v, 0));
}

int store_txn_get(struct store_txn *txn, unsigned int dbi, const void *key, size_t klen,
		  const void **val, size_t *vlen)
{
	MDB_val k = { klen, (void *)key }, v;
	int rc;

	if (klen == 0 || klen > 511)
		return -EINVAL;
	rc = mdb_get(txn->txn, dbi, &k, &v);
	if (rc)
		return mdb_err(rc);
	*val = v.mv_data;
	*vlen = v.mv_size;
	return 0;
}

int store_txn_del(struct store_txn *txn, unsigned int dbi, const void *key, size_t klen)
{
	MDB_val k = { klen, (void *)key };

	if (txn->read_only)
		return -EROFS;
	if (klen == 0 || klen > 511)
		return -EINVAL;
	return mdb_err(mdb_del(txn->txn, dbi, &k, NULL));
}

int store_txn_clear(struct store_txn *txn, unsigned int dbi)
{
	if (txn->read_only)
		return -EROFS;
	return mdb_err(mdb_drop(txn->txn, dbi, 0));
}

/* Room left in the map: pages never used plus pages on LMDB's free list
 * (some of which a reader may still hold: an estimate that errs high by at
 * most what old readers pin), read in a read transaction of its own (LMDB
 * opens no cursor on its free list in a write transaction). One pass over
 * the free list, whose records are page-number lists led by their count. */
int store_room(struct store *st, uint64_t *free_bytes, uint64_t *map_bytes)
{
	struct store_txn *t;
	MDB_env *env;
	MDB_envinfo ei;
	MDB_stat ms;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t pages, used, listed = 0;
	int rc = store_txn_begin(st, 1, &t);

	if (rc)
		return rc;
	env = mdb_txn_env(t->txn);
	if (mdb_env_info(env, &ei) || mdb_env_stat(env, &ms) || !ms.ms_psize) {
		store_txn_abort(t);
		return -EIO;
	}
	pages = ei.me_mapsize / ms.ms_psize;
	used = (uint64_t)ei.me_last_pgno + 1;
	rc = mdb_cursor_open(t->txn, 0 /* FREE_DBI */, &cur);
	if (rc) {
		store_txn_abort(t);
		return mdb_err(rc);
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		size_t n;

		if (v.mv_size < sizeof(size_t))
			continue;
		memcpy(&n, v.mv_data, sizeof(n));
		if (n <= v.mv_size / sizeof(size_t) - 1)
			listed += n;
	}
	mdb_cursor_close(cur);
	store_txn_abort(t);
	if (rc != MDB_NOTFOUND)
		return mdb_err(rc);
	*map_bytes = pages * ms.ms_psize;
	*free_bytes = ((used < pages ? pages - used : 0) + listed) * ms.ms_psize;
	if (*free_bytes > *map_bytes)
		*free_bytes = *map_bytes;
	return 0;
}

/* Walk dbi from the first key >= from (NULL: the first key). */
static int iter_cursor(struct store_txn *txn, unsigned int dbi, const void *from, size_t flen,
		       store_iter_fn fn, void *arg)
{
	MDB_cursor *cur;
	MDB_val k = { .mv_size = flen, .mv_data = (void *)from }, v;
	int rc, ret = 0;

	rc = mdb_cursor_open(txn->txn, dbi, &cur);
	if (rc)
		return mdb_err(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, from ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		ret = fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
		if (ret)
			break;
	}
	mdb_cursor_close(cur);
	if (ret)
		return ret;
	return rc == MDB_NOTFOUND ? 0 : mdb_err(rc);
}

int store_txn_iter(struct store_txn *txn, unsigned int dbi, store_iter_fn fn, void *arg)
{
	return iter_cursor(txn, dbi, NULL, 0, fn, arg);
}

int store_txn_iter_from(struct store_txn *txn, unsigned int dbi, const void *from, size_t flen,
			store_iter_fn fn, void *arg)
{
	return iter_cursor(txn, dbi, from && flen ? from : NULL, flen, fn, arg);
}

int store_put(struct store *st, unsigned int dbi, const void *key, size_t klen, const void *val,
	      size_t vlen)
{
	struct store_txn *t;
	int err = store_txn_begin(st, 0, &t);

	if (err)
		return err;
	err = store_txn_put(t, dbi, key, klen, val, vlen);
	if (err) {
		store_txn_abort(t);
		return err;
	}
	return store_txn_commit(t);
}

int store_get(struct store *st, unsigned int dbi, const void *key, size_t klen, void **val,
	      size_t *vlen)
{
	struct store_txn *t;
	const void *p = NULL;
	size_t n = 0;
	int err = store_txn_begin(st, 1, &t);

	if (err)
		return err;
	err = store_txn_get(t, dbi, key, klen, &p, &n);
	if (!err) {
		*val = malloc(n ? n : 1);
		if (!*val)
			err = -ENOMEM;
		else {
			memcpy(*val, p, n);
			*vlen = n;
		}
	}
	store_txn_abort(t);
	return err;
}

int store_del(struct store *st, unsigned int dbi, const void *key, size_t klen)
{
	struct store_txn *t;
	int err = store_txn_begin(st, 0, &t);

	if (err)
		return err;
	err = store_txn_del(t, dbi, key, klen);
	if (err) {
		store_txn_abort(t);
		return err;
	}
	return store_txn_commit(t);
}

int store_iter(struct store *st, unsigned int dbi, store_iter_fn fn, void *arg)
{
	struct store_txn *t;
	int err = store_txn_begin(st, 1, &t);

	if (err)
		return err;
	err = store_txn_iter(t, dbi, fn, arg);
	store_txn_abort(t);
	return err;
}

int store_stat(struct store *st, unsigned int dbi, uint64_t *entries)
{
	struct store_txn *t;
	MDB_stat ms;
	int rc, err = store_txn_begin(st, 1, &t);

	if (err)
		return err;
	rc = mdb_stat(t->txn, dbi, &ms);
	store_txn_abort(t);
	if (rc)
		return mdb_err(rc);
	*entries = ms.ms_entries;
	return 0;
}
