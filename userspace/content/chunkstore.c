// SPDX-License-Identifier: MIT
/*
 * Chunk store: blobs in <dir>/blobs, index in LMDB.
 *
 * LMDB databases, all keyed by the 32-byte content id:
 *   cstore_idx   fixed 32-byte record (see rec_encode)
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
 * aligned, and adds (staged copies) stay buffered; a file system that
 * refuses O_DIRECT (EINVAL) turns it off for the store, logged once.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weft/chunk.h"
#include "weft/log.h"
#include "weft/store.h"
#include "weft/util.h"

#define MOD "content"

/* Index record: magic, state, size, nchunks, added (little-endian). */
#define REC_LEN 32
static const uint8_t rec_magic[4] = {'W', 'C', 'S', '1'};
/* Largest size a record may claim, whatever the configuration: 2^50 bytes
 * (1 PiB). Keeps nchunks * 32 and every offset far from overflow. */
#define REC_MAX_SIZE (1ull << 50)
/* O_DIRECT: buffer, offset and length aligned to this (the page size;
 * every block device's logical block divides it). */
#define DIO_ALIGN 4096
/* Aligned chunk buffers kept for reuse: the serve threads and a few
 * downloads at once; more are allocated and freed per call. */
#define DIO_POOL 6

struct cstore {
	struct store *st;
	char *blobdir;
	unsigned int db_idx, db_cvs, db_bits;
	uint64_t quota, max_blob;
	uint32_t max_blobs;
	int no_sync;
	pthread_mutex_t lock; /* guards everything below and serialises index writes */
	uint64_t used;	      /* sum of entry sizes (partials at full size) */
	uint64_t pending;     /* bytes reserved by adds in progress */
	uint32_t nblobs;
	uint32_t npending;
	atomic_int direct;	       /* O_DIRECT chunk I/O on (cleared on EINVAL) */
	pthread_mutex_t dio_mu;	       /* guards the pool below */
	uint8_t *dio_pool[DIO_POOL];   /* aligned chunk buffers kept for reuse */
	unsigned int ndio;
};

/* ---- record encoding ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void rec_encode(uint8_t rec[REC_LEN], uint32_t state, uint64_t size, uint64_t added)
{
	memcpy(rec, rec_magic, 4);
	put_le32(rec + 4, state);
	put_le64(rec + 8, size);
	put_le64(rec + 16, b3tree_nchunks(size));
	put_le64(rec + 24, added);
}

/* Validate and decode; -EBADMSG for anything a correct writer never makes. */
static int rec_decode(const void *val, size_t vlen, struct cstore_info *info)
{
	const uint8_t *p = val;

	if (vlen != REC_LEN || memcmp(p, rec_magic, 4))
		return -EBADMSG;
	info->state = get_le32(p + 4);
	info->size = get_le64(p + 8);
	info->nchunks = get_le64(p + 16);
	info->added = get_le64(p + 24);
	info->have = 0;
	if (info->state < CSTORE_PARTIAL || info->state > CSTORE_BAD || info->size > REC_MAX_SIZE ||
	    info->nchunks != b3tree_nchunks(info->size))
		return -EBADMSG;
	return 0;
}

static size_t bits_len(uint64_t nchunks)
{
	return (size_t)((nchunks + 7) / 8);
}

static int bit_get(const uint8_t *bits, uint64_t i)
{
	return bits[i / 8] >> (i % 8) & 1;
}

/* Bitmap must have the exact length and no bit past nchunks. */
static int bits_valid(const uint8_t *bits, size_t len, uint64_t nchunks)
{
	if (len != bits_len(nchunks))
		return 0;
	if (nchunks % 8 && bits[len - 1] >> (nchunks % 8))
		return 0;
	return 1;
}

static uint64_t bits_count(const uint8_t *bits, size_t len)
{
	uint64_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += (uint64_t)__builtin_popcount(bits[i]);
	return n;
}

/* ---- lookups inside a transaction ---- */

static int load_rec(struct cstore *cs, struct store_txn *t, const uint8_t *id,
		    struct cstore_info *info)
{
	const void *v;
	size_t vl;
	int err = store_txn_get(t, cs->db_idx, id, B3TREE_ID_LEN, &v, &vl);

	if (err)
		return err;
	err = rec_decode(v, vl, info);
	if (err) {
		char hex[65];

		util_hex(hex, id, B3TREE_ID_LEN);
		log_warn(MOD, "index record of %s is damaged", hex);
		return err;
	}
	memcpy(info->id, id, B3TREE_ID_LEN);
	return 0;
}

/* The record of id in dbi; an entry whose companion record is missing is
 * damaged (-EBADMSG). */
static int load_companion(struct store_txn *t, unsigned int dbi, const uint8_t *id, const void **v,
			  size_t *vl)
{
	int err = store_txn_get(t, dbi, id, B3TREE_ID_LEN, v, vl);

	return err == -ENOENT ? -EBADMSG : err;
}

static int load_cvs(struct cstore *cs, struct store_txn *t, const uint8_t *id, uint64_t nchunks,
		    const uint8_t **cvs)
{
	const void *v;
	size_t vl;
	int err = load_companion(t, cs->db_cvs, id, &v, &vl);

	if (err)
		return err;
	if (vl != nchunks * B3TREE_CV_LEN)
		return -EBADMSG;
	*cvs = v;
	return 0;
}

static int load_bits(struct cstore *cs, struct store_txn *t, const uint8_t *id, uint64_t nchunks,
		     const uint8_t **bits)
{
	const void *v;
	size_t vl;
	int err = load_companion(t, cs->db_bits, id, &v, &vl);

	if (err)
		return err;
	if (!bits_valid(v, vl, nchunks))
		return -EBADMSG;
	*bits = v;
	return 0;
}

/* ---- paths and files ---- */

int cstore_path(const struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], int partial, char *buf,
		size_t len)
{
	char hex[65];
	int n;

	util_hex(hex, id, B3TREE_ID_LEN);
	n = snprintf(buf, len, "%s/%.2s/%s%s", cs->blobdir, hex, hex, partial ? ".part" : "");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int ensure_subdir(const struct cstore *cs, const uint8_t *id)
{
	char p[4096];
	char hex[65];

	util_hex(hex, id, B3TREE_ID_LEN);
	if ((size_t)snprintf(p, sizeof(p), "%s/%.2s", cs->blobdir, hex) >= sizeof(p))
		return -ENAMETOOLONG;
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int sync_subdir(const struct cstore *cs, const uint8_t *id)
{
	char p[4096];
	char hex[65];
	int fd, err = 0;

	util_hex(hex, id, B3TREE_ID_LEN);
	if ((size_t)snprintf(p, sizeof(p), "%s/%.2s", cs->blobdir, hex) >= sizeof(p))
		return -ENAMETOOLONG;
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

static void unlink_files(const struct cstore *cs, const uint8_t *id)
{
	char p[4096];

	if (!cstore_path(cs, id, 0, p, sizeof(p)))
		unlink(p);
	if (!cstore_path(cs, id, 1, p, sizeof(p)))
		unlink(p);
}

static int pread_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t r = pread(fd, buf, len, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* short file */
		buf += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int pwrite_full(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t r = pwrite(fd, buf, len, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		buf += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* ---- direct I/O ---- */

static uint8_t *dio_get(struct cstore *cs)
{
	void *b = NULL;

	pthread_mutex_lock(&cs->dio_mu);
	if (cs->ndio)
		b = cs->dio_pool[--cs->ndio];
	pthread_mutex_unlock(&cs->dio_mu);
	if (!b && posix_memalign(&b, DIO_ALIGN, B3TREE_CHUNK_LEN))
		b = NULL;
	return b;
}

static void dio_put(struct cstore *cs, uint8_t *b)
{
	pthread_mutex_lock(&cs->dio_mu);
	if (cs->ndio < DIO_POOL) {
		cs->dio_pool[cs->ndio++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&cs->dio_mu);
	free(b);
}

/* Does a chunk of len bytes go through O_DIRECT? */
static int dio_use(struct cstore *cs, size_t len)
{
	return atomic_load_explicit(&cs->direct, memory_order_relaxed) && len &&
	       len <= B3TREE_CHUNK_LEN && len % DIO_ALIGN == 0;
}

/* The file system refused O_DIRECT: buffered from now on. */
static void dio_refused(struct cstore *cs)
{
	if (atomic_exchange(&cs->direct, 0))
		log_warn(MOD, "%s: the file system refuses O_DIRECT: chunk I/O is buffered",
			 cs->blobdir);
}

static int open_blob(const struct cstore *cs, const uint8_t *id, uint32_t state, int flags);

/*
 * One chunk of len bytes at off through O_DIRECT: write (wr) from buf or
 * read into buf, by way of an aligned pool buffer. -EINVAL when the file
 * system refuses O_DIRECT (the caller goes buffered), else 0 or -errno.
 */
static int dio_chunk(struct cstore *cs, const uint8_t *id, uint32_t state, int wr, uint8_t *buf,
		     size_t len, uint64_t off)
{
	uint8_t *b;
	int fd, err;

	fd = open_blob(cs, id, state, (wr ? O_WRONLY : O_RDONLY) | O_DIRECT);
	if (fd == -EINVAL)
		dio_refused(cs);
	if (fd < 0)
		return fd;
	/* the caller's buffer itself when it is aligned (swarm answers and
	 * serve threads arrange it), else by way of a pool buffer */
	b = (uintptr_t)buf % DIO_ALIGN ? dio_get(cs) : buf;
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	if (wr) {
		if (b != buf)
			memcpy(b, buf, len);
		err = pwrite_full(fd, b, len, off);
	} else {
		err = pread_full(fd, b, len, off);
		if (!err && b != buf)
			memcpy(buf, b, len);
	}
	close(fd);
	if (b != buf)
		dio_put(cs, b);
	if (err == -EINVAL)
		dio_refused(cs);
	return err;
}

/* Open the data file of an entry: the name its state implies, else the
 * other one (a completion rename may be under way). Each name twice: the
 * index says complete before the rename, so a reader can miss the final
 * name (not yet there) and then the partial one (just renamed); the
 * final name is there by the second look. Taking one look each marked a
 * healthy blob bad (seen with 10 stores completing at once). */
static int open_blob(const struct cstore *cs, const uint8_t *id, uint32_t state, int flags)
{
	char p[4096];
	int partial = state == CSTORE_PARTIAL;
	int fd, err;

	for (int i = 0; i < 4; i++, partial = !partial) {
		err = cstore_path(cs, id, partial, p, sizeof(p));
		if (err)
			return err;
		fd = open(p, flags | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != ENOENT)
			return -errno;
	}
	return -ENOENT;
}

/* ---- quota ---- */

/* Reserve room for one more entry of size bytes (lock held). */
static int reserve_locked(struct cstore *cs, uint64_t size)
{
	if (cs->nblobs + cs->npending >= cs->max_blobs) {
		log_error(MOD, "content store full: %u entries, limit %u",
			  cs->nblobs + cs->npending, cs->max_blobs);
		return -ENFILE;
	}
	if (cs->used + cs->pending > cs->quota || size > cs->quota - cs->used - cs->pending) {
		log_error(MOD, "content store quota exceeded: need %llu bytes, %llu of %llu in use",
			  (unsigned long long)size, (unsigned long long)(cs->used + cs->pending),
			  (unsigned long long)cs->quota);
		return -ENOSPC;
	}
	return 0;
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

/* ---- open: validate and reconcile the index ---- */

struct idlist {
	uint8_t (*ids)[B3TREE_ID_LEN];
	size_t n, cap;
};

static int collect_id(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct idlist *l = arg;

	if (klen != B3TREE_ID_LEN) {
		log_warn(MOD, "ignoring index key of %zu bytes", klen);
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *p = realloc(l->ids, cap * B3TREE_ID_LEN);

		if (!p)
			return -ENOMEM;
		l->ids = p;
		l->cap = cap;
	}
	memcpy(l->ids[l->n++], key, B3TREE_ID_LEN);
	return 0;
}

static void drop_entry(struct cstore *cs, struct store_txn *t, const uint8_t *id, const char *why)
{
	char hex[65];

	util_hex(hex, id, B3TREE_ID_LEN);
	log_warn(MOD, "dropping index entry %s: %s", hex, why);
	store_txn_del(t, cs->db_idx, id, B3TREE_ID_LEN);
	store_txn_del(t, cs->db_cvs, id, B3TREE_ID_LEN);
	store_txn_del(t, cs->db_bits, id, B3TREE_ID_LEN);
	unlink_files(cs, id);
}

static int file_size(const char *p, uint64_t *size)
{
	struct stat sb;

	if (stat(p, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EINVAL;
	*size = (uint64_t)sb.st_size;
	return 0;
}

/* Make a fresh sparse .part of size bytes. */
static int create_part(struct cstore *cs, const uint8_t *id, uint64_t size)
{
	char p[4096];
	int fd, err;

	if ((err = ensure_subdir(cs, id)) || (err = cstore_path(cs, id, 1, p, sizeof(p))))
		return err;
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	err = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	close(fd);
	if (err)
		unlink(p);
	return err;
}

/* Check one entry at open; returns 0 (kept, *size counted) or 1 (dropped). */
static int reconcile_one(struct cstore *cs, struct store_txn *t, const uint8_t *id, uint64_t *size)
{
	struct cstore_info in;
	const uint8_t *cvs, *bits;
	char fin[4096], part[4096];
	uint64_t fsz = 0;
	uint8_t rec[REC_LEN];
	int err;

	err = load_rec(cs, t, id, &in);
	if (err) {
		drop_entry(cs, t, id, "damaged record");
		return 1;
	}
	err = load_cvs(cs, t, id, in.nchunks, &cvs);
	if (!err)
		err = b3tree_verify_cvs(cvs, in.nchunks, in.size, id);
	if (err) {
		drop_entry(cs, t, id, "CV list missing or not matching the id");
		return 1;
	}
	if (cstore_path(cs, id, 0, fin, sizeof(fin)) ||
	    cstore_path(cs, id, 1, part, sizeof(part))) {
		drop_entry(cs, t, id, "path too long");
		return 1;
	}
	*size = in.size;
	if (in.state == CSTORE_PARTIAL) {
		if (load_bits(cs, t, id, in.nchunks, &bits)) {
			uint8_t *zero = calloc(1, bits_len(in.nchunks));

			log_warn(MOD, "resetting damaged bitmap of a partial download");
			if (!zero || store_txn_put(t, cs->db_bits, id, B3TREE_ID_LEN, zero,
						   bits_len(in.nchunks))) {
				free(zero);
				drop_entry(cs, t, id, "cannot reset bitmap");
				return 1;
			}
			free(zero);
		}
		if (file_size(part, &fsz) == 0 && fsz == in.size)
			return 0;
		if (file_size(fin, &fsz) == 0 && fsz == in.size && rename(fin, part) == 0)
			return 0;
		/* Data gone: start the download over. */
		uint8_t *zero = calloc(1, bits_len(in.nchunks));

		if (!zero || create_part(cs, id, in.size) ||
		    store_txn_put(t, cs->db_bits, id, B3TREE_ID_LEN, zero, bits_len(in.nchunks))) {
			free(zero);
			drop_entry(cs, t, id, "partial file missing and cannot be recreated");
			return 1;
		}
		free(zero);
		log_warn(MOD, "partial download file was missing: restarted");
		return 0;
	}
	if (file_size(fin, &fsz) == 0) {
		if (fsz == in.size || in.state == CSTORE_BAD)
			return 0;
	} else if (file_size(part, &fsz) == 0 && fsz == in.size) {
		/* Completion interrupted between commit and rename. */
		if (rename(part, fin) == 0)
			return 0;
	} else {
		drop_entry(cs, t, id, "blob file missing");
		return 1;
	}
	if (in.state != CSTORE_BAD) {
		char hex[65];

		util_hex(hex, id, B3TREE_ID_LEN);
		log_error(MOD, "blob %s has the wrong length on disk: marked bad", hex);
		rec_encode(rec, CSTORE_BAD, in.size, in.added);
		store_txn_put(t, cs->db_idx, id, B3TREE_ID_LEN, rec, REC_LEN);
	}
	return 0;
}

/* Remove staging files left by an interrupted add. */
static void clean_staging(const char *blobdir)
{
	DIR *d = opendir(blobdir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, ".add-", 5))
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

static int reconcile(struct cstore *cs)
{
	struct idlist l = {0};
	struct store_txn *t = NULL;
	int err;

	err = store_txn_begin(cs->st, 0, &t);
	if (err)
		return err;
	err = store_txn_iter(t, cs->db_idx, collect_id, &l);
	if (err)
		goto out;
	for (size_t i = 0; i < l.n; i++) {
		uint64_t size = 0;

		if (reconcile_one(cs, t, l.ids[i], &size))
			continue;
		cs->used += size;
		cs->nblobs++;
	}
	err = store_txn_commit(t);
	t = NULL;
out:
	store_txn_abort(t);
	free(l.ids);
	return err;
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
	atomic_init(&cs->direct, !!opts->direct_io);
	pthread_mutex_init(&cs->dio_mu, NULL);
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
	clean_staging(cs->blobdir);
	err = reconcile(cs);
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
	while (cs->ndio)
		free(cs->dio_pool[--cs->ndio]);
	pthread_mutex_destroy(&cs->dio_mu);
	free(cs->blobdir);
	free(cs);
}

/* ---- add ---- */

/*
 * Copy (or reflink) the source into staging file dst and hash what was
 * stored. Exactly one of mem / src is the source. Fills cvs.
 */
static int stage_and_hash(struct cstore *cs, int dst, int src, const uint8_t *mem, uint64_t size,
			  uint8_t *cvs)
{
	uint64_t n = b3tree_nchunks(size);
	uint8_t *buf = NULL, probe;
	int cloned = 0, err = 0;

	if (!mem) {
		buf = malloc(B3TREE_CHUNK_LEN);
		if (!buf)
			return -ENOMEM;
		/* Reflink when the file system shares extents (btrfs, xfs). */
		if (size && ioctl(dst, FICLONE, src) == 0) {
			struct stat sb;

			if (fstat(dst, &sb) < 0 || (uint64_t)sb.st_size != size) {
				err = -EIO;
				goto out;
			}
			cloned = 1;
		}
	}
	for (uint64_t i = 0; i < n; i++) {
		size_t clen = (size_t)b3tree_chunk_size(size, i);
		uint64_t off = i * B3TREE_CHUNK_LEN;
		const uint8_t *p;

		if (mem) {
			p = mem + off;
		} else {
			err = pread_full(cloned ? dst : src, buf, clen, off);
			if (err)
				goto out; /* -EIO: source shrank while being copied */
			p = buf;
		}
		if (!cloned && (err = pwrite_full(dst, p, clen, off)))
			goto out;
		if ((err = b3tree_chunk_cv(p, clen, i, n == 1, cvs + i * B3TREE_CV_LEN)))
			goto out;
	}
	/* The source must not have grown either. */
	if (!mem && !cloned && pread(src, &probe, 1, (off_t)size) != 0) {
		err = -EIO;
		goto out;
	}
	if (!cs->no_sync && fdatasync(dst) < 0)
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
	if ((err = cstore_path(cs, id, 0, fin, sizeof(fin))) || (err = ensure_subdir(cs, id)))
		return err;
	err = store_txn_begin(cs->st, 0, &t);
	if (err)
		return err;
	err = load_rec(cs, t, id, &old);
	if (err == 0 && old.state == CSTORE_COMPLETE) {
		*existed = 1;
		goto out;
	}
	if (err && err != -ENOENT && err != -EBADMSG)
		goto out;
	had = err == 0; /* a damaged record was not counted at open */
	rec_encode(rec, CSTORE_COMPLETE, size, util_wall_s());
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
	/* The new name on disk before the index says complete (a power cut
	 * would otherwise keep the index and lose the name). */
	if (!cs->no_sync && (err = sync_subdir(cs, id))) {
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
		      uint8_t id_out[B3TREE_ID_LEN])
{
	char staged[4096];
	uint8_t *cvs = NULL, id[B3TREE_ID_LEN];
	int dst = -1, err, existed = 0, reserved = 0;

	if (size > cs->max_blob) {
		log_error(MOD, "cannot add %llu bytes: larger than the %llu-byte blob limit",
			  (unsigned long long)size, (unsigned long long)cs->max_blob);
		return -EFBIG;
	}
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
	err = stage_and_hash(cs, dst, src, mem, size, cvs);
	if (!err)
		err = b3tree_root(cvs, b3tree_nchunks(size), id);
	if (err) {
		if (err == -EIO)
			log_error(MOD, "file changed while being added");
		goto out;
	}
	/* Swap the reservation for the entry in one critical section. */
	pthread_mutex_lock(&cs->lock);
	cs->pending -= size;
	cs->npending--;
	reserved = 0;
	err = commit_complete_locked(cs, id, size, cvs, staged, &existed);
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
		err = add_common(cs, fd, NULL, (uint64_t)sb.st_size, id_out);
	}
	close(fd);
	return err;
}

int cstore_add_buf(struct cstore *cs, const uint8_t *buf, size_t len, uint8_t id_out[B3TREE_ID_LEN])
{
	static const uint8_t empty[1];

	if (!cs || (!buf && len) || !id_out)
		return -EINVAL;
	return add_common(cs, -1, buf ? buf : empty, len, id_out);
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
		log_error(MOD, "cannot download %llu bytes: larger than the %llu-byte blob limit",
			  (unsigned long long)size, (unsigned long long)cs->max_blob);
		return -EFBIG;
	}
	err = b3tree_verify_cvs(cvs, nchunks, size, id);
	if (err)
		return err;
	pthread_mutex_lock(&cs->lock);
	err = store_txn_begin(cs->st, 0, &t);
	if (err)
		goto out;
	err = load_rec(cs, t, id, &old);
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
	zero = calloc(1, bits_len(nchunks));
	if (!zero) {
		err = -ENOMEM;
		goto out;
	}
	rec_encode(rec, CSTORE_PARTIAL, size, util_wall_s());
	if ((err = create_part(cs, id, size)))
		goto out;
	if ((err = store_txn_put(t, cs->db_idx, id, B3TREE_ID_LEN, rec, REC_LEN)) ||
	    (err = store_txn_put(t, cs->db_cvs, id, B3TREE_ID_LEN, cvs, nchunks * B3TREE_CV_LEN)) ||
	    (err = store_txn_put(t, cs->db_bits, id, B3TREE_ID_LEN, zero, bits_len(nchunks))) ||
	    (err = store_txn_commit(t))) {
		char p[4096];

		if (!cstore_path(cs, id, 1, p, sizeof(p)))
			unlink(p);
		t = NULL;
		goto out;
	}
	t = NULL;
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
	int err, done = 0;

	err = store_txn_begin(cs->st, 0, &t);
	if (err)
		return err;
	if ((err = load_rec(cs, t, id, &in)))
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
	if ((err = load_bits(cs, t, id, in.nchunks, &bits)))
		goto out;
	bl = bits_len(in.nchunks);
	for (i = 0; i < n && bit_get(bits, idx[i]) == !!set; i++)
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
	if (set && bits_count(nb, bl) == in.nchunks) {
		int fd = open_blob(cs, id, CSTORE_PARTIAL, O_RDONLY);

		if (fd >= 0) {
			if (!cs->no_sync)
				fsync(fd);
			close(fd);
		}
		rec_encode(rec, CSTORE_COMPLETE, in.size, in.added);
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
		char part[4096], fin[4096];

		if (!cstore_path(cs, id, 1, part, sizeof(part)) &&
		    !cstore_path(cs, id, 0, fin, sizeof(fin)) && rename(part, fin) < 0)
			log_warn(MOD,
				 "rename of a completed download failed: %s (retried at start)",
				 strerror(errno));
		err = 1;
	}
out:
	store_txn_abort(t);
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
	if ((err = load_rec(cs, t, id, &r->info)))
		goto out;
	if (index >= r->info.nchunks) {
		err = -EINVAL;
		goto out;
	}
	if ((err = load_cvs(cs, t, id, r->info.nchunks, &cvs)))
		goto out;
	memcpy(r->cv, cvs + index * B3TREE_CV_LEN, B3TREE_CV_LEN);
	r->have = r->info.state == CSTORE_COMPLETE;
	if (r->info.state == CSTORE_PARTIAL) {
		if ((err = load_bits(cs, t, id, r->info.nchunks, &bits)))
			goto out;
		r->have = bit_get(bits, index);
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

int cstore_commit_chunks(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], const uint64_t *idx,
			 size_t n)
{
	int fd, err = 0;

	if (!cs || !id || (!idx && n))
		return -EINVAL;
	if (!n)
		return 0;
	if (!cs->no_sync) {
		fd = open_blob(cs, id, CSTORE_PARTIAL, O_WRONLY);
		if (fd == -ENOENT) /* complete already (another writer): nothing to do */
			return 0;
		if (fd < 0)
			return fd;
		if (fdatasync(fd) < 0)
			err = -errno;
		close(fd);
		if (err)
			return err;
	}
	pthread_mutex_lock(&cs->lock);
	err = update_bits_locked(cs, id, idx, n, 1);
	pthread_mutex_unlock(&cs->lock);
	return err;
}

int cstore_put_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
		     const uint8_t *buf, size_t len)
{
	struct chunk_ref r;
	int fd, err;

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
	if (dio_use(cs, len)) {
		err = dio_chunk(cs, id, CSTORE_PARTIAL, 1, (uint8_t *)buf, len,
				index * B3TREE_CHUNK_LEN);
		if (err != -EINVAL)
			return err;
	}
	fd = open_blob(cs, id, CSTORE_PARTIAL, O_WRONLY);
	if (fd < 0)
		return fd;
	err = pwrite_full(fd, buf, len, index * B3TREE_CHUNK_LEN);
	close(fd);
	return err;
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
	if (load_rec(cs, t, id, &in) || in.state != CSTORE_COMPLETE)
		goto out;
	rec_encode(rec, CSTORE_BAD, in.size, in.added);
	if (store_txn_put(t, cs->db_idx, id, B3TREE_ID_LEN, rec, REC_LEN) == 0 &&
	    store_txn_commit(t) == 0)
		log_error(MOD,
			  "blob %s failed re-verification at chunk %llu: marked bad, not served",
			  hex, (unsigned long long)index);
	t = NULL;
out:
	store_txn_abort(t);
	pthread_mutex_unlock(&cs->lock);
}

int cstore_read_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
		      uint8_t *buf, size_t cap, size_t *len)
{
	struct chunk_ref r;
	size_t clen;
	int fd, err;

	if (!cs || !id || !buf || !len)
		return -EINVAL;
	err = chunk_ref(cs, id, index, &r);
	if (err)
		return err;
	if (r.info.state == CSTORE_BAD)
		return -EIO;
	if (!r.have)
		return -ENOENT;
	clen = (size_t)b3tree_chunk_size(r.info.size, index);
	if (cap < clen)
		return -ENOBUFS;
	err = -EINVAL;
	if (dio_use(cs, clen))
		err = dio_chunk(cs, id, r.info.state, 0, buf, clen, index * B3TREE_CHUNK_LEN);
	if (err == -EINVAL) {
		fd = open_blob(cs, id, r.info.state, O_RDONLY);
		if (fd < 0 && fd != -ENOENT)
			return fd;
		err = fd < 0 ? -EIO : pread_full(fd, buf, clen, index * B3TREE_CHUNK_LEN);
		if (fd >= 0)
			close(fd);
	} else if (err == -ENOENT) {
		err = -EIO;
	}
	if (err && err != -EIO)
		return err;
	if (err)
		log_warn(MOD, "reading chunk %llu: %s", (unsigned long long)index, strerror(-err));
	if (!err)
		err = b3tree_verify_chunk(r.cv, r.info.size, index, buf, clen);
	if (err) {
		/* Missing, short or altered data: never serve it. */
		if (r.info.state == CSTORE_COMPLETE) {
			mark_bad(cs, id, index);
		} else {
			log_warn(MOD,
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

/* ---- queries ---- */

static int fill_have(struct cstore *cs, struct store_txn *t, struct cstore_info *in)
{
	const uint8_t *bits;
	int err;

	if (in->state == CSTORE_COMPLETE) {
		in->have = in->nchunks;
	} else if (in->state == CSTORE_PARTIAL) {
		err = load_bits(cs, t, in->id, in->nchunks, &bits);
		if (err)
			return err;
		in->have = bits_count(bits, bits_len(in->nchunks));
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
	err = load_rec(cs, t, id, info);
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
	if ((err = load_rec(cs, t, id, &in)) || (err = load_cvs(cs, t, id, in.nchunks, &p)))
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
	if ((err = load_rec(cs, t, id, info)))
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
	} else if (!(err = load_bits(cs, t, id, info->nchunks, &b))) {
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

	if (klen != B3TREE_ID_LEN || rec_decode(val, vlen, &in))
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
	err = load_rec(cs, t, id, &in);
	if (err && err != -EBADMSG)
		goto out;
	valid = err == 0;
	err = store_txn_del(t, cs->db_idx, id, B3TREE_ID_LEN);
	if (err)
		goto out;
	store_txn_del(t, cs->db_cvs, id, B3TREE_ID_LEN);
	store_txn_del(t, cs->db_bits, id, B3TREE_ID_LEN);
	err = store_txn_commit(t);
	t = NULL;
	if (err)
		goto out;
	unlink_files(cs, id);
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
