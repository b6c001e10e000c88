// SPDX-License-Identifier: MIT
/*
 * Chunk store: blobs in <dir>/blobs, index in LMDB. This file is the
 * store itself; its index records are in chunkstore_index.c, its blob
 * files and direct I/O in chunkstore_io.c, the checks and repairs at open
 * in chunkstore_open.c (chunkstore_int.h).
 *
 * LMDB databases, all keyed by the 32-byte content id:
 *   cstore_idx   fixed 32-byte record (see cn_rec_encode)
 *   cstore_cvs   CV list, nchunks * 32 bytes
 *   cstore_bits  verified-chunk bitmap of a partial download,
 *                ceil(nchunks / 8) bytes, bit i = byte i / 8, bit i % 8
 *
 * Files: <dir>/blobs/<hex[0..2)>/<hex> (complete or bad) and
 * <hex>.part (partial, full length, sparse). Adds are staged in
 * <dir>/blobs/.add-XXXXXX and renamed into place.
 *
 * Crash safety: a chunk's bit is committed only after its data is written
 * (and fdatasync'ed unless no_sync). Completion commits the index first,
 * then renames .part to the final name; cstore_new() finishes an
 * interrupted rename. Every record read from LMDB is validated: the disk
 * is not trusted any more than the network.
 *
 * Direct I/O (opts->direct_io): a chunk whose length is a multiple of
 * DIO_ALIGN is written and read with O_DIRECT through an aligned buffer
 * from a small pool (DIO_POOL buffers kept), so a download does not copy
 * every byte into page-cache pages the machine has to find first, and a
 * node moving many GiB does not push everything else out of the cache
 * (docs/CONTENT.md, "Direct I/O"). The last chunk of a blob, when not
 * aligned, and plain adds (staged copies) stay buffered (transformed adds
 * write whole chunks direct: cn_stage_xform); a file system that
 * refuses O_DIRECT (EINVAL) turns it off for the store, logged once.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "content/chunkstore_int.h"
#include "weft/log.h"
#include "weft/store.h"
#include "weft/util.h"

/* ---- quota ---- */

/* Reserve room for one more entry of size bytes (lock held). */
static int reserve_locked(struct cstore *cs, uint64_t size)
{
	if (cs->nblobs + cs->npending >= cs->max_blobs) {
		log_error(CS_MOD, "content store full: %u entries, limit %u",
			  cs->nblobs + cs->npending, cs->max_blobs);
		return -ENFILE;
	}
	if (cs->used + cs->pending > cs->quota || size > cs->quota - cs->used - cs->pending) {
		log_error(CS_MOD,
			  "content store quota exceeded: need %llu bytes, %llu of %llu in use",
			  (unsigned long long)size, (unsigned long long)(cs->used + cs->pending),
			  (unsigned long long)cs->quota);
		return -ENOSPC;
	}
	return 0;
}

/* Before a reservation of size bytes for a new entry: when it would not
 * fit, let the owner make room (cstore_opts.make_room), lock not held. */
static void ensure_room(struct cstore *cs, uint64_t size)
{
	int full;

	if (!cs->make_room)
		return;
	pthread_mutex_lock(&cs->lock);
	full = cs->nblobs + cs->npending >= cs->max_blobs || cs->used + cs->pending > cs->quota ||
	       size > cs->quota - cs->used - cs->pending;
	pthread_mutex_unlock(&cs->lock);
	if (full)
		cs->make_room(cs->room_arg, size);
}

void cstore_usage(struct cstore *cs, uint64_t *used, uint64_t *quota, uint32_t *blobs)
{
	pthread_mutex_lock(&cs->lock);
	if (used)
		*used = cs->used + cs->pending;
	if (quota)
		*quota = cs->quota;
	if (blobs)
		*blobs = cs->nblobs;
	pthread_mutex_unlock(&cs->lock);
}

int cstore_new(struct cstore **out, const struct cstore_opts *opts)
{
	struct cstore *cs;
	int err;

	if (!out || !opts || !opts->store || !opts->dir)
		return -EINVAL;
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	pthread_mutex_init(&cs->lock, NULL);
	cs->st = opts->store;
	cs->quota = opts->quota_bytes ? opts->quota_bytes : CSTORE_DEFAULT_QUOTA;
	cs->max_blob = opts->max_blob_size ? opts->max_blob_size : CSTORE_DEFAULT_MAX_BLOB;
	if (cs->max_blob > REC_MAX_SIZE)
		cs->max_blob = REC_MAX_SIZE;
	cs->max_blobs = opts->max_blobs ? opts->max_blobs : CSTORE_DEFAULT_MAX_BLOBS;
	cs->no_sync = opts->no_sync;
	cs->make_room = opts->make_room;
	cs->room_arg = opts->room_arg;
	atomic_init(&cs->direct, !!opts->direct_io);
	if (!(cs->dio = cn_pool_new(DIO_POOL))) {
		err = -ENOMEM;
		goto fail;
	}
	cs->trust_settle_ms =
		opts->trust_settle_ms ? opts->trust_settle_ms : CSTORE_TRUST_SETTLE_MS;
	cs->trust_bits_max = opts->trust_bits_max ? opts->trust_bits_max : CSTORE_TRUST_BITS_MAX;
	if (!opts->no_trust && (err = cn_trust_new(cs)))
		goto fail;
	if (opts->hot_chunks > CSTORE_HOT_CHUNKS_MAX) {
		err = -EINVAL;
		goto fail;
	}
	if ((err = cn_fds_new(cs)) || (err = cn_defer_new(cs)))
		goto fail;
	if (opts->hot_chunks >= 0 &&
	    (err = cn_hot_new(cs, opts->hot_chunks ? (unsigned int)opts->hot_chunks
						   : CSTORE_HOT_CHUNKS)))
		goto fail;
	if (asprintf(&cs->blobdir, "%s/blobs", opts->dir) < 0) {
		cs->blobdir = NULL;
		err = -ENOMEM;
		goto fail;
	}
	if ((err = util_mkdir_p(cs->blobdir, 0700)) ||
	    (err = store_db(cs->st, "cstore_idx", &cs->db_idx)) ||
	    (err = store_db(cs->st, "cstore_cvs", &cs->db_cvs)) ||
	    (err = store_db(cs->st, "cstore_bits", &cs->db_bits)))
		goto fail;
	cn_clean_staging(cs->blobdir);
	err = cn_reconcile(cs);
	if (err)
		goto fail;
	*out = cs;
	return 0;
fail:
	cstore_free(cs);
	return err;
}

int cstore_direct_io(struct cstore *cs)
{
	return cs ? atomic_load(&cs->direct) : 0;
}

void cstore_free(struct cstore *cs)
{
	if (!cs)
		return;
	pthread_mutex_destroy(&cs->lock);
	cn_pool_unref(cs->dio);
	cn_defer_free(cs); /* its loans end before the memory cache goes */
	cn_trust_free(cs);
	cn_hot_free(cs);
	cn_fds_free(cs);
	free(cs->blobdir);
	free(cs);
}

/* ---- add ---- */

/*
 * Copy (or reflink) the source into staging file dst and hash what was
 * stored. Exactly one of mem / src is the source. Fills cvs.
 */
static int stage_and_hash(struct cstore *cs, const char *staged, int dst, int src,
			  const uint8_t *mem, uint64_t size, const struct cstore_xform *x,
			  uint8_t *cvs, struct stat *written)
{
	uint64_t n = b3tree_nchunks(size);
	uint8_t *buf = NULL, probe;
	int cloned = 0, err = 0;

	/* Reflink when the file system shares extents (btrfs, xfs); the
	 * clone is then read back to be hashed. */
	if (!x && !mem && size && ioctl(dst, FICLONE, src) == 0) {
		struct stat sb;

		if (fstat(dst, &sb) < 0 || (uint64_t)sb.st_size != size)
			return -EIO;
		cloned = 1;
	}
	if (!mem && !cloned) {
		/* copied (transformed or not) on two lanes, whole chunks with
		 * O_DIRECT (chunkstore_io.c): no page-cache copy of the blob */
		if ((err = cn_stage_xform(cs, staged, dst, src, size, x, cvs)))
			return err;
	} else if (cloned && !(buf = malloc(B3TREE_CHUNK_LEN))) {
		return -ENOMEM;
	}
	for (uint64_t i = 0; (mem || cloned) && i < n; i++) {
		size_t clen = (size_t)b3tree_chunk_size(size, i);
		uint64_t off = i * B3TREE_CHUNK_LEN;
		const uint8_t *p;

		if (mem) {
			p = mem + off;
		} else {
			err = cn_pread_full(cloned ? dst : src, buf, clen, off);
			if (err)
				goto out; /* -EIO: source shrank while being copied */
			p = buf;
		}
		if (!cloned && (err = cn_pwrite_full(dst, p, clen, off)))
			goto out;
		if ((err = b3tree_chunk_cv(p, clen, i, n == 1, cvs + i * B3TREE_CV_LEN)))
			goto out;
	}
	/* The source must not have grown either. */
	if (!mem && !cloned && pread(src, &probe, 1, (off_t)(x ? x->in_size : size)) != 0) {
		err = -EIO;
		goto out;
	}
	/* the file as the store left it (cn_trust_sealed) */
	if (fstat(dst, written) < 0)
		err = -errno;
	else if (!cs->no_sync && fdatasync(dst) < 0)
		err = -errno;
out:
	free(buf);
	return err;
}

/* Put a complete entry (lock held): replaces a partial or bad one. */
static int commit_complete_locked(struct cstore *cs, const uint8_t *id, uint64_t size,
				  const uint8_t *cvs, const char *staged, int *existed)
{
	struct store_txn *t = NULL;
	struct cstore_info old;
	uint8_t rec[REC_LEN];
	char fin[4096];
	int err, had = 0;

	*existed = 0;
	if ((err = cstore_path(cs, id, 0, fin, sizeof(fin))) || (err = cn_blob_subdir(cs, id)))
		return err;
	err = store_txn_begin(cs->st, 0, &t);
	if (err)
		return err;
	err = cn_load_rec(cs, t, id, &old);
	if (err == 0 && old.state == CSTORE_COMPLETE) {
		*existed = 1;
		goto out;
	}
	if (err && err != -ENOENT && err != -EBADMSG)
		goto out;
	had = err == 0; /* a damaged record was not counted at open */
	cn_rec_encode(rec, CSTORE_COMPLETE, size, util_wall_s());
	if ((err = store_txn_put(t, cs->db_idx, id, B3TREE_ID_LEN, rec, REC_LEN)) ||
	    (err = store_txn_put(t, cs->db_cvs, id, B3TREE_ID_LEN, cvs,
				 b3tree_nchunks(size) * B3TREE_CV_LEN)))
		goto out;
	err = store_txn_del(t, cs->db_bits, id, B3TREE_ID_LEN);
	if (err && err != -ENOENT)
		goto out;
	if (rename(staged, fin) < 0) {
		err = -errno;
		goto out;
	}
	cn_fds_drop(cs, id); /* the name is the staged file's now */
	/* The new name on disk before the index says complete (a power cut
	 * would otherwise keep the index and lose the name). */
	if (!cs->no_sync && (err = cn_blob_sync_subdir(cs, id))) {
		unlink(fin);
		goto out;
	}
	err = store_txn_commit(t);
	t = NULL;
	if (err) {
		unlink(fin);
		goto out;
	}
	{
		char part[4096];

		if (!cstore_path(cs, id, 1, part, sizeof(part)))
			unlink(part);
	}
	if (had && old.size <= cs->used && cs->nblobs) {
		cs->used -= old.size;
		cs->nblobs--;
	}
	cs->used += size;
	cs->nblobs++;
out:
	store_txn_abort(t);
	return err;
}

static void unreserve(struct cstore *cs, uint64_t size)
{
	pthread_mutex_lock(&cs->lock);
	cs->pending -= size;
	cs->npending--;
	pthread_mutex_unlock(&cs->lock);
}

static int add_common(struct cstore *cs, int src, const uint8_t *mem, uint64_t size,
		      const struct cstore_xform *x, uint8_t id_out[B3TREE_ID_LEN])
{
	char staged[4096];
	uint8_t *cvs = NULL, id[B3TREE_ID_LEN];
	struct stat st[2]; /* the staged file after its writes, after its rename */
	int dst = -1, err, existed = 0, reserved = 0;

	if (size > cs->max_blob) {
		log_error(CS_MOD, "cannot add %llu bytes: larger than the %llu-byte blob limit",
			  (unsigned long long)size, (unsigned long long)cs->max_blob);
		return -EFBIG;
	}
	ensure_room(cs, size);
	pthread_mutex_lock(&cs->lock);
	err = reserve_locked(cs, size);
	if (!err) {
		cs->pending += size;
		cs->npending++;
		reserved = 1;
	}
	pthread_mutex_unlock(&cs->lock);
	if (err)
		return err;

	cvs = malloc(b3tree_nchunks(size) * B3TREE_CV_LEN);
	if (!cvs) {
		err = -ENOMEM;
		goto out;
	}
	if ((size_t)snprintf(staged, sizeof(staged), "%s/.add-XXXXXX", cs->blobdir) >=
	    sizeof(staged)) {
		err = -ENAMETOOLONG;
		goto out;
	}
	dst = mkostemp(staged, O_CLOEXEC);
	if (dst < 0) {
		err = -errno;
		goto out;
	}
	err = stage_and_hash(cs, staged, dst, src, mem, size, x, cvs, &st[0]);
	if (!err)
		err = b3tree_root(cvs, b3tree_nchunks(size), id);
	if (err) {
		if (err == -EIO)
			log_error(CS_MOD, "file changed while being added");
		goto out;
	}
	/* Swap the reservation for the entry in one critical section. */
	pthread_mutex_lock(&cs->lock);
	cs->pending -= size;
	cs->npending--;
	reserved = 0;
	err = commit_complete_locked(cs, id, size, cvs, staged, &existed);
	/* hashed from the bytes the store wrote: no second pass on reads */
	if (!err && !existed && fstat(dst, &st[1]) == 0)
		cn_trust_sealed(cs, id, b3tree_nchunks(size), &st[0], &st[1], 1);
	pthread_mutex_unlock(&cs->lock);
	if (!err)
		memcpy(id_out, id, B3TREE_ID_LEN);
out:
	if (reserved)
		unreserve(cs, size);
	if (dst >= 0) {
		close(dst);
		if (err || existed)
			unlink(staged);
	}
	free(cvs);
	return err;
}

int cstore_add_file(struct cstore *cs, const char *path, uint8_t id_out[B3TREE_ID_LEN])
{
	struct stat sb;
	int fd, err;

	if (!cs || !path || !id_out)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		err = -errno;
	} else if (!S_ISREG(sb.st_mode)) {
		err = -EINVAL;
	} else {
		err = add_common(cs, fd, NULL, (uint64_t)sb.st_size, NULL, id_out);
	}
	close(fd);
	return err;
}

int cstore_add_buf(struct cstore *cs, const uint8_t *buf, size_t len, uint8_t id_out[B3TREE_ID_LEN])
{
	static const uint8_t empty[1];

	if (!cs || (!buf && len) || !id_out)
		return -EINVAL;
	return add_common(cs, -1, buf ? buf : empty, len, NULL, id_out);
}

int cstore_add_fd_xform(struct cstore *cs, int fd, const struct cstore_xform *x,
			uint8_t id_out[B3TREE_ID_LEN])
{
	uint64_t n;

	if (!cs || fd < 0 || !x || !x->fn || !x->in_chunk || x->in_chunk > B3TREE_CHUNK_LEN ||
	    !id_out)
		return -EINVAL;
	/* the chunk count of the output must cover the input exactly */
	n = b3tree_nchunks(x->out_size);
	if ((x->in_size + x->in_chunk - 1) / x->in_chunk > n ||
	    (n > 1 && (n - 1) * (uint64_t)x->in_chunk >= x->in_size))
		return -EINVAL;
	return add_common(cs, fd, NULL, x->out_size, x, id_out);
}

/* ---- partial downloads ---- */

int cstore_open_partial(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t size,
			const uint8_t *cvs, uint64_t nchunks)
{
	struct store_txn *t = NULL;
	struct cstore_info old;
	uint8_t rec[REC_LEN], *zero = NULL;
	int err;

	if (!cs || !id || !cvs)
		return -EINVAL;
	if (size > cs->max_blob) {
		log_error(CS_MOD,
			  "cannot download %llu bytes: larger than the %llu-byte blob limit",
			  (unsigned long long)size, (unsigned long long)cs->max_blob);
		return -EFBIG;
	}
	err = b3tree_verify_cvs(cvs, nchunks, size, id);
	if (err)
		return err;
	if (cstore_info(cs, id, &old) == -ENOENT)
		ensure_room(cs, size);
	pthread_mutex_lock(&cs->lock);
	err = store_txn_begin(cs->st, 0, &t);
	if (err)
		goto out;
	err = cn_load_rec(cs, t, id, &old);
	if (err == 0) {
		if (old.state == CSTORE_BAD)
			err = -EIO;
		else if (old.size != size)
			err = -EEXIST;
		goto out;
	}
	if (err != -ENOENT)
		goto out;
	if ((err = reserve_locked(cs, size)))
		goto out;
	zero = calloc(1, cn_bits_len(nchunks));
	if (!zero) {
		err = -ENOMEM;
		goto out;
	}
	cn_rec_encode(rec, CSTORE_PARTIAL, size, util_wall_s());
	if ((err = cn_blob_create_part(cs, id, size)))
		goto out;
	/* A put that fails (LMDB's map full) leaves t to the abort at out:
	 * a write transaction never ended holds LMDB's write lock, and when
	 * its thread (a download's) ended, LMDB took the lock's dead owner
	 * for a crash and refused every later write transaction of the node
	 * (MDB_PANIC, EIO) until a restart (test_fault_space). */
	if (!(err = store_txn_put(t, cs->db_idx, id, B3TREE_ID_LEN, rec, REC_LEN)) &&
	    !(err = store_txn_put(t, cs->db_cvs, id, B3TREE_ID_LEN, cvs, nchunks * B3TREE_CV_LEN)) &&
	    !(err = store_txn_put(t, cs->db_bits, id, B3TREE_ID_LEN, zero, cn_bits_len(nchunks)))) {
		err = store_txn_commit(t);
		t = NULL;
	}
	if (err) {
		char p[4096];

		if (!cstore_path(cs, id, 1, p, sizeof(p)))
			unlink(p);
		goto out;
	}
	cs->used += size;
	cs->nblobs++;
out:
	store_txn_abort(t);
	pthread_mutex_unlock(&cs->lock);
	free(zero);
	return err;
}

static int update_bits_locked(struct cstore *cs, const uint8_t *id, const uint64_t *idx, size_t n,
			      int set);

/* Set (or clear) bit index of a partial entry; returns 1 when the entry
 * became complete, 0 otherwise, or -errno. Lock held. */
static int update_bit_locked(struct cstore *cs, const uint8_t *id, uint64_t index, int set)
{
	return update_bits_locked(cs, id, &index, 1, set);
}

/* The same for n bits in one transaction. */
static int update_bits_locked(struct cstore *cs, const uint8_t *id, const uint64_t *idx, size_t n,
			      int set)
{
	struct store_txn *t = NULL;
	struct cstore_info in;
	const uint8_t *bits;
	uint8_t *nb = NULL, rec[REC_LEN];
	size_t bl, i;
	int err, done = 0, fd = -1;

	err = store_txn_begin(cs->st, 0, &t);
	if (err)
		return err;
	if ((err = cn_load_rec(cs, t, id, &in)))
		goto out;
	if (in.state != CSTORE_PARTIAL) {
		err = in.state == CSTORE_COMPLETE ? 0 : -EIO;
		goto out;
	}
	for (i = 0; i < n; i++)
		if (idx[i] >= in.nchunks) {
			err = -EINVAL;
			goto out;
		}
	if ((err = cn_load_bits(cs, t, id, in.nchunks, &bits)))
		goto out;
	bl = cn_bits_len(in.nchunks);
	for (i = 0; i < n && cn_bit_get(bits, idx[i]) == !!set; i++)
		;
	if (i == n)
		goto out; /* nothing to do */
	nb = malloc(bl);
	if (!nb) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(nb, bits, bl);
	for (i = 0; i < n; i++) {
		uint64_t index = idx[i];

		if (set)
			nb[index / 8] |= (uint8_t)(1u << (index % 8));
		else
			nb[index / 8] &= (uint8_t) ~(1u << (index % 8));
	}
	if (set && cn_bits_count(nb, bl) == in.nchunks) {
		fd = cn_blob_open(cs, id, CSTORE_PARTIAL, O_RDONLY); /* kept: the rename's */
		if (fd >= 0 && !cs->no_sync)
			fsync(fd);
		cn_rec_encode(rec, CSTORE_COMPLETE, in.size, in.added);
		if ((err = store_txn_put(t, cs->db_idx, id, B3TREE_ID_LEN, rec, REC_LEN)) ||
		    (err = store_txn_del(t, cs->db_bits, id, B3TREE_ID_LEN)))
			goto out;
		done = 1;
	} else if ((err = store_txn_put(t, cs->db_bits, id, B3TREE_ID_LEN, nb, bl))) {
		goto out;
	}
	err = store_txn_commit(t);
	t = NULL;
	if (!err && done) {
		cn_blob_name_complete(cs, id, fd, in.nchunks);
		err = 1;
	}
out:
	store_txn_abort(t);
	if (fd >= 0)
		close(fd);
	free(nb);
	return err;
}

/* Snapshot of what a chunk operation needs, from one read transaction. */
struct chunk_ref {
	struct cstore_info info;
	uint8_t cv[B3TREE_CV_LEN];
	int have;
};

static int chunk_ref(struct cstore *cs, const uint8_t *id, uint64_t index, struct chunk_ref *r)
{
	struct store_txn *t = NULL;
	const uint8_t *cvs, *bits;
	int err;

	err = store_txn_begin(cs->st, 1, &t);
	if (err)
		return err;
	if ((err = cn_load_rec(cs, t, id, &r->info)))
		goto out;
	if (index >= r->info.nchunks) {
		err = -EINVAL;
		goto out;
	}
	if ((err = cn_load_cvs(cs, t, id, r->info.nchunks, &cvs)))
		goto out;
	memcpy(r->cv, cvs + index * B3TREE_CV_LEN, B3TREE_CV_LEN);
	r->have = r->info.state == CSTORE_COMPLETE;
	if (r->info.state == CSTORE_PARTIAL) {
		if ((err = cn_load_bits(cs, t, id, r->info.nchunks, &bits)))
			goto out;
		r->have = cn_bit_get(bits, index);
	}
out:
	store_txn_abort(t);
	return err;
}

int cstore_write_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
		       const uint8_t *buf, size_t len)
{
	int err = cstore_put_chunk(cs, id, index, buf, len);

	return err ? err : cstore_commit_chunks(cs, id, &index, 1);
}

int cstore_commit_chunks_tee(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN],
			     const uint64_t *idx, size_t n, struct cstore_tee *tee)
{
	int err = 0;

	if (!cs || !id || (!idx && n))
		return -EINVAL;
	if (!n)
		return 0;
	/* the chunks put to wait for this commit, written first (one batch) */
	if ((err = cn_defer_flush(cs, id, tee)) && err != -ENOENT)
		return err;
	if (!cs->no_sync) {
		struct cn_fd f;

		/* the descriptor the chunks were written through, when kept */
		err = cn_fd_get(cs, id, CSTORE_PARTIAL,
				O_WRONLY | (cn_dio_use(cs, B3TREE_CHUNK_LEN) ? O_DIRECT : 0), &f);
		if (err == -EINVAL) /* O_DIRECT refused here: the plain open */
			err = cn_fd_get(cs, id, CSTORE_PARTIAL, O_WRONLY, &f);
		if (err == -ENOENT) /* complete already (another writer): nothing to do */
			return 0;
		if (err)
			return err;
		if (fdatasync(f.fd) < 0)
			err = -errno;
		cn_fd_put(cs, &f);
		if (err)
			return err;
	}
	pthread_mutex_lock(&cs->lock);
	err = update_bits_locked(cs, id, idx, n, 1);
	pthread_mutex_unlock(&cs->lock);
	return err;
}

int cstore_commit_chunks(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], const uint64_t *idx,
			 size_t n)
{
	return cstore_commit_chunks_tee(cs, id, idx, n, NULL);
}

/* cstore_put_chunk and cstore_put_chunk_give: alloc NULL, or the buffer
 * given away (alen bytes, buf at off in it); later: its write may wait
 * for the blob's commit (cstore_put_chunk_later). */
static int put_chunk(struct cstore *cs, const uint8_t *id, uint64_t index, const uint8_t *buf,
		     size_t len, void **alloc, size_t alen, size_t off, int later)
{
	struct chunk_ref r;
	struct stat st[2]; /* the file before and after the write */
	int err;

	if (!cs || !id || (!buf && len))
		return -EINVAL;
	err = chunk_ref(cs, id, index, &r);
	if (err)
		return err;
	if (r.info.state == CSTORE_BAD)
		return -EIO;
	if (r.have)
		return 0;
	err = b3tree_verify_chunk(r.cv, r.info.size, index, buf, len);
	if (err)
		return err;
	if (later && cn_defer_put(cs, id, index, r.info.nchunks, alloc, alen, off, len))
		return 0; /* written by the commit (chunkstore_defer.c) */
	if (cn_dio_use(cs, len)) {
		err = cn_dio_chunk(cs, id, CSTORE_PARTIAL, 1, (uint8_t *)buf, len,
				   index * B3TREE_CHUNK_LEN, st);
		if (err != -EINVAL)
			goto out;
	}
	{
		struct cn_fd f;

		if ((err = cn_fd_get(cs, id, CSTORE_PARTIAL, O_WRONLY, &f)))
			return err;
		err = fstat(f.fd, &st[0]) < 0 ? -errno : 0;
		if (!err)
			err = cn_pwrite_full(f.fd, buf, len, index * B3TREE_CHUNK_LEN);
		if (!err && fstat(f.fd, &st[1]) < 0)
			err = -errno;
		cn_fd_put(cs, &f);
		if (err)
			cn_fds_drop(cs, id);
	}
out:
	if (err)
		return err;
	/* verified above and written by the store: its reads need no second
	 * pass while nothing else writes the file (chunkstore_trust.c) */
	cn_trust_own(cs, id, index, r.info.nchunks, &st[0], &st[1]);
	/* and peers ask for it next (chunkstore_hot.c) */
	if (!(alloc && cn_hot_give(cs, id, index, alloc, alen, off, len)))
		cn_hot_put(cs, id, index, buf, len);
	return 0;
}

int cstore_put_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
		     const uint8_t *buf, size_t len)
{
	return put_chunk(cs, id, index, buf, len, NULL, 0, 0, 0);
}

int cstore_put_chunk_give(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
			  void **alloc, size_t alen, size_t off, size_t len)
{
	if (!alloc || !*alloc || off > alen || len > alen - off)
		return -EINVAL;
	return put_chunk(cs, id, index, (const uint8_t *)*alloc + off, len, alloc, alen, off, 0);
}

int cstore_put_chunk_later(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
			   void **alloc, size_t alen, size_t off, size_t len)
{
	if (!alloc || !*alloc || off > alen || len > alen - off)
		return -EINVAL;
	return put_chunk(cs, id, index, (const uint8_t *)*alloc + off, len, alloc, alen, off, 1);
}

static void mark_bad(struct cstore *cs, const uint8_t *id, uint64_t index)
{
	struct store_txn *t = NULL;
	struct cstore_info in;
	uint8_t rec[REC_LEN];
	char hex[65];

	util_hex(hex, id, B3TREE_ID_LEN);
	pthread_mutex_lock(&cs->lock);
	if (store_txn_begin(cs->st, 0, &t))
		goto out;
	if (cn_load_rec(cs, t, id, &in) || in.state != CSTORE_COMPLETE)
		goto out;
	cn_rec_encode(rec, CSTORE_BAD, in.size, in.added);
	/* t is committed (and freed) only when the put succeeded; otherwise
	 * the abort at out ends it (see cstore_open_partial) */
	if (store_txn_put(t, cs->db_idx, id, B3TREE_ID_LEN, rec, REC_LEN) == 0) {
		int err = store_txn_commit(t);

		t = NULL;
		if (!err)
			log_error(CS_MOD,
				  "blob %s failed re-verification at chunk %llu: marked bad, not "
				  "served",
				  hex, (unsigned long long)index);
	}
out:
	store_txn_abort(t);
	pthread_mutex_unlock(&cs->lock);
}

/* Whether a chunk just read needs its BLAKE3 pass: not when it was
 * verified since its file last changed (a complete blob) or verified and
 * written by the store itself with nothing else changing the file since (a
 * partial one; chunkstore_trust.c), and even then one read in
 * CSTORE_TRUST_SAMPLE. */
static int needs_verify(struct cstore *cs, const uint8_t *id, uint64_t index,
			const struct chunk_ref *r, const struct stat *st)
{
	if (!cn_trust_check(cs, id, index, st, r->info.state == CSTORE_PARTIAL))
		return 1;
	if (atomic_fetch_add(&cs->trust_hits, 1) % CSTORE_TRUST_SAMPLE == CSTORE_TRUST_SAMPLE - 1)
		return 1;
	atomic_fetch_add(&cs->reads_trusted, 1);
	return 0;
}

/* A complete blob's chunk that did not verify, read again (buffered, a
 * fresh open) and verified: 0 when the second read is good. */
static int reread_verify(struct cstore *cs, const uint8_t *id, const struct chunk_ref *r,
			 uint64_t index, uint8_t *buf, size_t clen)
{
	int fd = cn_blob_open(cs, id, r->info.state, O_RDONLY), err;

	if (fd < 0)
		return fd;
	err = cn_pread_full(fd, buf, clen, index * B3TREE_CHUNK_LEN);
	close(fd);
	return err ? err : b3tree_verify_chunk(r->cv, r->info.size, index, buf, clen);
}

/* The checks every read (and loan) makes first: the chunk is held and
 * its blob not marked bad; 0 with r and *clen filled in, or -errno. */
static int held_chunk(struct cstore *cs, const uint8_t *id, uint64_t index, struct chunk_ref *r,
		      size_t *clen)
{
	int err = chunk_ref(cs, id, index, r);

	if (err)
		return err;
	if (r->info.state == CSTORE_BAD)
		return -EIO;
	if (!r->have)
		return -ENOENT;
	*clen = (size_t)b3tree_chunk_size(r->info.size, index);
	return 0;
}

/* held_chunk, then the chunks kept in memory: 0 with *len set (a copy
 * from memory), 1 (a file must be read: r and *clen filled in), or
 * -errno. */
static int read_front(struct cstore *cs, const uint8_t *id, uint64_t index, uint8_t *buf,
		      size_t cap, size_t *len, struct chunk_ref *r, size_t *clen)
{
	int err;

	if (!cs || !id || !buf || !len)
		return -EINVAL;
	err = held_chunk(cs, id, index, r, clen);
	if (err)
		return err;
	if (cap < *clen)
		return -ENOBUFS;
	if (cn_hot_get(cs, id, index, buf, *clen)) {
		*len = *clen; /* verified when it was put, in memory since */
		return 0;
	}
	return 1;
}

int cstore_read_chunk_mem(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
			  uint8_t *buf, size_t cap, size_t *len)
{
	struct chunk_ref r;
	size_t clen;
	int err = read_front(cs, id, index, buf, cap, len, &r, &clen);

	return err == 1 ? -EWOULDBLOCK : err;
}

int cstore_lend_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
		      const uint8_t **data, size_t *len, void **ref)
{
	struct chunk_ref r;
	size_t clen;
	int err;

	if (!cs || !id || !data || !len || !ref)
		return -EINVAL;
	err = held_chunk(cs, id, index, &r, &clen);
	if (err)
		return err;
	if (!cn_hot_lend(cs, id, index, clen, data, ref))
		return -EWOULDBLOCK;
	*len = clen; /* verified when it was put, in memory since */
	return 0;
}

void cstore_unlend(void *ref)
{
	cn_hot_unlend(ref);
}

int cstore_read_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
		      uint8_t *buf, size_t cap, size_t *len)
{
	struct chunk_ref r;
	struct stat st;
	size_t clen = 0;
	int err;

	err = read_front(cs, id, index, buf, cap, len, &r, &clen);
	if (err <= 0)
		return err;
#ifdef WEFT_TEST_HOOKS
	if (atomic_load(&cs->test_read_delay_ms))
		usleep(atomic_load(&cs->test_read_delay_ms) * 1000u); /* test hook: a slow disk */
#endif
	err = -EINVAL;
	if (cn_dio_use(cs, clen))
		err = cn_dio_chunk(cs, id, r.info.state, 0, buf, clen, index * B3TREE_CHUNK_LEN,
				   &st);
	if (err == -ENOENT)
		err = -EIO; /* the file is gone from under its entry */
	/* buffered: the store does not use O_DIRECT, or the file system
	 * refused it; twice when the first read went to a file that has
	 * lost its name since (cn_fd_stale) */
	for (int tries = 0; err == -EINVAL && tries < 2; tries++) {
		struct cn_fd f;

		err = cn_fd_get(cs, id, r.info.state, O_RDONLY, &f);
		if (err && err != -ENOENT)
			return err;
		if (err) {
			err = -EIO;
			break;
		}
		err = cn_pread_full(f.fd, buf, clen, index * B3TREE_CHUNK_LEN);
		if (!err && fstat(f.fd, &st) < 0)
			err = -errno;
		cn_fd_put(cs, &f);
		if (err) {
			cn_fds_drop(cs, id);
		} else if (cn_fd_stale(&f, &st)) {
			cn_fds_drop(cs, id);
			err = -EINVAL;
		}
	}
	if (err && err != -EIO)
		return err;
	if (err)
		log_warn(CS_MOD, "reading chunk %llu: %s", (unsigned long long)index,
			 strerror(-err));
	if (!err && needs_verify(cs, id, index, &r, &st)) {
		atomic_fetch_add(&cs->reads_verified, 1);
		err = b3tree_verify_chunk(r.cv, r.info.size, index, buf, clen);
#ifdef WEFT_TEST_HOOKS
		if (!err && atomic_exchange(&cs->test_flip_reads, 0))
			err = -EIO; /* test hook: this read taken as bad */
#endif
		if (err && r.info.state == CSTORE_COMPLETE) {
			/* One read that does not verify does not condemn a
			 * whole blob: a second read, buffered from a fresh
			 * open, decides (a transient fault, or a bug of the
			 * reading path, would otherwise cost a healthy blob). */
			err = reread_verify(cs, id, &r, index, buf, clen);
			atomic_fetch_add(&cs->reads_retried, 1);
			log_warn(CS_MOD, "chunk %llu of a blob did not verify; a second read %s",
				 (unsigned long long)index,
				 err ? "did not either: marked bad" : "did: served");
		}
		if (!err && r.info.state == CSTORE_COMPLETE)
			cn_trust_note(cs, id, index, r.info.nchunks, &st);
	}
	if (err) {
		/* Missing, short or altered data: never serve it. */
		cn_trust_forget(cs, id);
		if (r.info.state == CSTORE_COMPLETE) {
			mark_bad(cs, id, index);
		} else {
			log_warn(CS_MOD,
				 "chunk %llu of a partial download failed re-verification: "
				 "will be fetched again",
				 (unsigned long long)index);
			pthread_mutex_lock(&cs->lock);
			update_bit_locked(cs, id, index, 0);
			pthread_mutex_unlock(&cs->lock);
		}
		return -EIO;
	}
	*len = clen;
	return 0;
}

#ifdef WEFT_TEST_HOOKS
void cstore_test_fail_next_read(struct cstore *cs)
{
	atomic_store(&cs->test_flip_reads, 1);
}

void cstore_test_slow_reads(struct cstore *cs, unsigned int ms)
{
	atomic_store(&cs->test_read_delay_ms, ms);
}
#endif

uint64_t cstore_reads_retried(struct cstore *cs)
{
	return cs ? atomic_load(&cs->reads_retried) : 0;
}

uint64_t cstore_reads_lent(struct cstore *cs)
{
	return cs ? atomic_load(&cs->hot_lent) : 0;
}

void cstore_read_stats(struct cstore *cs, uint64_t *verified, uint64_t *trusted,
		       uint64_t *memory)
{
	if (verified)
		*verified = cs ? atomic_load(&cs->reads_verified) : 0;
	if (trusted)
		*trusted = cs ? atomic_load(&cs->reads_trusted) : 0;
	if (memory)
		*memory = cs ? atomic_load(&cs->hot_hits) : 0;
}

/* ---- queries ---- */

static int fill_have(struct cstore *cs, struct store_txn *t, struct cstore_info *in)
{
	const uint8_t *bits;
	int err;

	if (in->state == CSTORE_COMPLETE) {
		in->have = in->nchunks;
	} else if (in->state == CSTORE_PARTIAL) {
		err = cn_load_bits(cs, t, in->id, in->nchunks, &bits);
		if (err)
			return err;
		in->have = cn_bits_count(bits, cn_bits_len(in->nchunks));
	} else {
		in->have = 0;
	}
	return 0;
}

int cstore_info(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], struct cstore_info *info)
{
	struct store_txn *t = NULL;
	int err;

	if (!cs || !id || !info)
		return -EINVAL;
	err = store_txn_begin(cs->st, 1, &t);
	if (err)
		return err;
	err = cn_load_rec(cs, t, id, info);
	if (!err)
		err = fill_have(cs, t, info);
	store_txn_abort(t);
	return err;
}

int cstore_cvs(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint8_t **cvs, uint64_t *n)
{
	struct store_txn *t = NULL;
	struct cstore_info in;
	const uint8_t *p;
	int err;

	if (!cs || !id || !cvs || !n)
		return -EINVAL;
	err = store_txn_begin(cs->st, 1, &t);
	if (err)
		return err;
	if ((err = cn_load_rec(cs, t, id, &in)) || (err = cn_load_cvs(cs, t, id, in.nchunks, &p)))
		goto out;
	*cvs = malloc(in.nchunks * B3TREE_CV_LEN);
	if (!*cvs) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(*cvs, p, in.nchunks * B3TREE_CV_LEN);
	*n = in.nchunks;
out:
	store_txn_abort(t);
	return err;
}

int cstore_bitmap(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], struct cstore_info *info,
		  uint8_t *bits, size_t cap)
{
	struct store_txn *t = NULL;
	const uint8_t *b;
	size_t blen;
	int err;

	if (!cs || !id || !info || (!bits && cap))
		return -EINVAL;
	err = store_txn_begin(cs->st, 1, &t);
	if (err)
		return err;
	if ((err = cn_load_rec(cs, t, id, info)))
		goto out;
	blen = (size_t)((info->nchunks + 7) / 8);
	if (info->state == CSTORE_BAD) {
		err = -EIO;
	} else if (cap < blen) {
		err = -ENOBUFS;
	} else if (info->state == CSTORE_COMPLETE) {
		memset(bits, 0xff, blen);
		if (info->nchunks % 8)
			bits[blen - 1] = (uint8_t)((1u << (info->nchunks % 8)) - 1);
	} else if (!(err = cn_load_bits(cs, t, id, info->nchunks, &b))) {
		memcpy(bits, b, blen);
	}
out:
	store_txn_abort(t);
	return err;
}

int cstore_has_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index)
{
	struct chunk_ref r;
	int err;

	if (!cs || !id)
		return -EINVAL;
	err = chunk_ref(cs, id, index, &r);
	if (err)
		return err;
	return r.info.state != CSTORE_BAD && r.have;
}

struct list_ctx {
	struct cstore *cs;
	struct store_txn *t;
	cstore_list_fn fn;
	void *arg;
};

static int list_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct list_ctx *c = arg;
	struct cstore_info in;

	if (klen != B3TREE_ID_LEN || cn_rec_decode(val, vlen, &in))
		return 0;
	memcpy(in.id, key, B3TREE_ID_LEN);
	if (fill_have(c->cs, c->t, &in))
		return 0;
	return c->fn(c->arg, &in);
}

int cstore_list(struct cstore *cs, cstore_list_fn fn, void *arg)
{
	struct list_ctx c = {.cs = cs, .fn = fn, .arg = arg};
	int err;

	if (!cs || !fn)
		return -EINVAL;
	err = store_txn_begin(cs->st, 1, &c.t);
	if (err)
		return err;
	err = store_txn_iter(c.t, cs->db_idx, list_one, &c);
	store_txn_abort(c.t);
	return err;
}

int cstore_delete(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN])
{
	struct store_txn *t = NULL;
	struct cstore_info in;
	int err, valid;

	if (!cs || !id)
		return -EINVAL;
	pthread_mutex_lock(&cs->lock);
	err = store_txn_begin(cs->st, 0, &t);
	if (err)
		goto out;
	err = cn_load_rec(cs, t, id, &in);
	if (err && err != -EBADMSG)
		goto out;
	valid = err == 0;
	err = store_txn_del(t, cs->db_idx, id, B3TREE_ID_LEN);
	if (err)
		goto out;
	/* A complete blob has no bitmap (-ENOENT); any other failure (a
	 * delete needs pages too: LMDB's map full) ends t, reported as it
	 * is rather than as the commit's "bad transaction" (-EIO). */
	if (((err = store_txn_del(t, cs->db_cvs, id, B3TREE_ID_LEN)) && err != -ENOENT) ||
	    ((err = store_txn_del(t, cs->db_bits, id, B3TREE_ID_LEN)) && err != -ENOENT))
		goto out;
	err = store_txn_commit(t);
	t = NULL;
	if (err)
		goto out;
	cn_trust_forget(cs, id);
	cn_hot_drop(cs, id);
	cn_defer_drop(cs, id);
	cn_blob_unlink(cs, id);
	/* A damaged record was never counted at open, but may have become
	 * damaged later: only subtract what we can read. */
	if (valid && in.size <= cs->used) {
		cs->used -= in.size;
		cs->nblobs--;
	}
out:
	store_txn_abort(t);
	pthread_mutex_unlock(&cs->lock);
	return err;
}
