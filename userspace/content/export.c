// SPDX-License-Identifier: MIT
/*
 * Export: a complete blob of the store written out to a path the user
 * chose, every chunk re-verified on the way (a damaged one is marked bad
 * by the store and the export refused); a sealed item is decrypted chunk
 * by chunk on its way to the user's file. Called by a download job when an
 * item is done; calls only the chunk store.
 *
 * A download's plain copy is written as its chunks arrive (docs/CONTENT.md
 * "The user's copy written as it arrives"): the job opens the copy's
 * temporary file at the item's first commit and each commit writes the
 * chunks it makes durable there too, from the buffers they were verified
 * in (cstore_commit_chunks_tee); once the item is held, the export copies
 * only the chunks no commit wrote (held before, reused from a previous
 * version, written early), re-verified as before, then syncs and renames.
 * A 1 GiB download's copy read back and written after its fetch took
 * 1.3-3.0 s of the Zen 5 guest of stop 86, the user waiting.
 *
 * A sealed item's plaintext is written as its chunks are committed too,
 * by a thread of the item's own ("weft-unseal", docs/CONTENT.md "A
 * sealed download's plaintext written as it arrives"): each chunk the
 * committer made durable is taken from the store (lent from memory, else
 * read), decrypted and written at its plaintext offset, the whole pages
 * with O_DIRECT and the two partial ones at its ends buffered (a segment's
 * plaintext is 16 bytes short of 256 KiB, so its ends fall inside pages
 * its neighbours share). The export then does the chunks it did not.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "content/chunkbuf.h"
#include "content/chunkstore_int.h"
#include "content/content_node_int.h"
#include "content/swarm_int.h"
#include "weft/log.h"
#include "weft/seal.h"
#include "weft/util.h"

/* A plain copy's chunks go out EXPORT_BATCH at a time, with one O_DIRECT
 * write when the store uses direct I/O: no page-cache copy of the user's
 * file (on a guest whose new pages are dear, 40% of a 1 GiB download's
 * CPU), one trip through the block layer per 4 MiB (docs/CONTENT.md "A
 * download's export"); a refusal (EINVAL) falls back to buffered writes. */
#define EXPORT_BATCH 16

/* len bytes at off: through dfd (O_DIRECT; -1 once refused) when len and
 * off are aligned, else through fd. */
static int export_write(int fd, int *dfd, const uint8_t *buf, size_t len, uint64_t off)
{
	int err = -EINVAL;

	if (*dfd >= 0 && len % DIO_ALIGN == 0 && off % DIO_ALIGN == 0) {
		err = cn_pwrite_full(*dfd, buf, len, off);
		if (err == -EINVAL) { /* O_DIRECT refused after all */
			close(*dfd);
			*dfd = -1;
		}
	}
	if (err == -EINVAL)
		err = cn_pwrite_full(fd, buf, len, off);
	return err;
}

static bool bit_set(const uint8_t *bits, uint64_t i)
{
	return bits && (bits[i / 8] >> (i % 8)) & 1;
}

/*
 * An output file while it is written: in its folder but with no name
 * (O_TMPFILE), so that no item's name is taken while a download runs (a
 * manifest may name both "a" and "a.weft-part") and a process killed
 * mid-download leaves nothing behind; it gets its name at the end
 * (out_publish). A filesystem without O_TMPFILE gets a named one,
 * "NAME.weft-part-" and 16 random hex digits, created O_EXCL: a
 * publisher cannot name it in advance, and nothing left under that name
 * is ever written through.
 */
struct out_tmp {
	int fd;
	char name[PATH_MAX + 32]; /* "": no name (O_TMPFILE) */
};

/* path's name with a random suffix, for a named temporary file or link */
static int out_tmp_name(const char *path, char *name, size_t size)
{
	uint8_t r[8];
	char hex[17];

	randombytes_buf(r, sizeof(r));
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	return snprintf(name, size, "%s.weft-part-%s", path, hex) >= (int)size ? -ENAMETOOLONG : 0;
}

/* path's folder (made if missing) into dir */
static int out_dir(const char *path, char *dir, size_t size)
{
	char *slash;

	if (snprintf(dir, size, "%s", path) >= (int)size)
		return -ENAMETOOLONG;
	slash = strrchr(dir, '/');
	if (!slash) {
		snprintf(dir, size, ".");
		return 0;
	}
	if (slash == dir) {
		dir[1] = 0;
		return 0;
	}
	*slash = 0;
	return util_mkdir_p(dir, 0755);
}

/* Whether to open with O_TMPFILE: only with /proc, through which a file
 * with no name is opened again (out_reopen) and named (out_publish; else
 * only root could name it, with AT_EMPTY_PATH). */
static bool tmpfile_usable(void)
{
#ifdef WEFT_TEST_HOOKS
	/* a filesystem without O_TMPFILE (vfat, NFSv3), for the tests */
	if (getenv("WEFT_TEST_NO_TMPFILE"))
		return false;
#endif
	return access("/proc/self/fd", X_OK) == 0;
}

/* path's temporary file opened for writing with flags (O_DIRECT or 0) */
static int out_open(struct out_tmp *o, const char *path, int flags)
{
	char dir[PATH_MAX];
	int rc;

	o->fd = -1;
	o->name[0] = 0;
	rc = out_dir(path, dir, sizeof(dir));
	if (rc)
		return rc;
	if (tmpfile_usable())
		o->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC | flags, 0644);
	if (o->fd >= 0)
		return 0;
	rc = out_tmp_name(path, o->name, sizeof(o->name));
	if (rc)
		return rc;
	o->fd = open(o->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | flags, 0644);
	if (o->fd >= 0)
		return 0;
	rc = -errno;
	if (rc != -EEXIST)
		(void)unlink(o->name); /* O_DIRECT refused after the create */
	o->name[0] = 0;
	return rc;
}

/* A second descriptor of o's file, opened with flags (O_DIRECT or 0). */
static int out_reopen(const struct out_tmp *o, int flags)
{
	char p[64];

	if (o->name[0])
		return open(o->name, O_WRONLY | O_CLOEXEC | flags);
	snprintf(p, sizeof(p), "/proc/self/fd/%d", o->fd);
	return open(p, O_WRONLY | O_CLOEXEC | flags);
}

/* o's file (fd: a descriptor of it) given path's name, replacing what
 * was there atomically: renamed, or linked under a random name and
 * renamed. */
static int out_publish(const struct out_tmp *o, int fd, const char *path)
{
	char p[64], name[PATH_MAX + 32];
	int rc;

	if (o->name[0])
		return rename(o->name, path) ? -errno : 0;
	rc = out_tmp_name(path, name, sizeof(name));
	if (rc)
		return rc;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, p, AT_FDCWD, name, AT_SYMLINK_FOLLOW) &&
	    linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH)) /* /proc gone since: root */
		return -errno;
	rc = rename(name, path) ? -errno : 0;
	if (rc)
		(void)unlink(name);
	return rc;
}

/* o's file closed; removed too unless published (kept). */
static void out_close(struct out_tmp *o, bool kept)
{
	if (o->fd >= 0)
		close(o->fd);
	if (!kept && o->name[0])
		(void)unlink(o->name);
	o->fd = -1;
	o->name[0] = 0;
}

/* The end of a written copy: sized (size >= 0), synced through fd, named
 * path. */
static int out_finish(struct out_tmp *o, int fd, int64_t size, const char *path)
{
	if (size >= 0 && ftruncate(fd, (off_t)size))
		return -errno;
	if (fsync(fd))
		return -errno;
	return out_publish(o, fd, path);
}

/* A plain copy into fd (and dfd, the same file opened with O_DIRECT, or
 * -1): every chunk but those set in skip (NULL: none) read back and
 * re-verified (cstore_read_chunk) into bbuf (EXPORT_BATCH chunks,
 * aligned), each run of up to EXPORT_BATCH chunks written with one call. */
static int export_batches(struct content_node *cn, const uint8_t id[32],
			  const struct cstore_info *info, uint8_t *bbuf, int fd, int *dfd,
			  const uint8_t *skip)
{
	for (uint64_t i = 0; i < info->nchunks && info->size;) {
		uint64_t start;
		size_t fill = 0, len;
		int rc;

		if (bit_set(skip, i)) {
			i++;
			continue;
		}
		for (start = i; i < info->nchunks && i - start < EXPORT_BATCH && !bit_set(skip, i);
		     i++) {
			rc = cstore_read_chunk(cn->cs, id, i, bbuf + fill, B3TREE_CHUNK_LEN, &len);
			if (rc)
				return rc;
			fill += len;
		}
		rc = export_write(fd, dfd, bbuf, fill - fill % DIO_ALIGN, start * B3TREE_CHUNK_LEN);
		if (!rc && fill % DIO_ALIGN)
			rc = export_write(fd, dfd, bbuf + fill - fill % DIO_ALIGN, fill % DIO_ALIGN,
					  start * B3TREE_CHUNK_LEN + fill - fill % DIO_ALIGN);
		if (rc)
			return rc;
	}
	return 0;
}

/* Every chunk of a complete blob read back and re-verified (a damaged one
 * is marked bad by cstore_read_chunk and the export refused); with fd >= 0
 * each is also written there, decrypted first when key is given (a sealed
 * item: the plaintext goes to fd only, never to the store). */
static int export_chunks(struct content_node *cn, const uint8_t id[32],
			 const struct cstore_info *info, uint8_t *buf, int fd,
			 const struct cn_export_key *key)
{
	size_t len;
	int rc;

	for (uint64_t i = 0; i < info->nchunks && (info->size || key); i++) {
		rc = cstore_read_chunk(cn->cs, id, i, buf, B3TREE_CHUNK_LEN, &len);
		if (rc)
			return rc;
		if (key) {
			/* -EBADMSG: a chunk that proves out against the CV list
			 * but fails its tag was sealed wrongly by the publisher */
			rc = seal_seg_decrypt(key->item_key, key->plain_size, i,
					      i + 1 == info->nchunks, buf, len, buf);
			if (rc)
				return rc;
			len -= SEAL_TAG_LEN;
		}
		for (size_t off = 0; fd >= 0 && off < len;) {
			ssize_t w = write(fd, buf + off, len - off);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			off += (size_t)w;
		}
	}
	return 0;
}

/* id's info, a complete blob's (-EAGAIN: not complete; -EINVAL: not of
 * nchunks chunks, when nchunks is given) */
static int complete_info(struct content_node *cn, const uint8_t id[32], struct cstore_info *info,
			 uint64_t nchunks)
{
	int rc = cstore_info(cn->cs, id, info);

	if (rc)
		return rc;
	if (info->state != CSTORE_COMPLETE)
		return -EAGAIN;
	return nchunks && info->nchunks != nchunks ? -EINVAL : 0;
}

/*
 * The output file is a copy, written and synced (the default: the user's
 * file and the store's are independent). With link (asked for by the
 * caller: as_link) it is a second name of the store's file (link(2)) when both are
 * on one filesystem, made read-only (0444: the store serves from it, and
 * an edit in place would make it fail re-verification and be marked bad);
 * a copy otherwise. Either way every chunk is re-verified first, but for
 * a link of a blob the caller stored itself whole (self). A copy
 * writes and syncs the whole file again at the end of each download: in
 * a 51-node lab the 50 exports of 256 MiB at once were 10% of the
 * machine's CPU and the last seconds of the distribution (docs/LAB.md).
 */
static int export_common(struct content_node *cn, const uint8_t id[32], const char *path,
			 bool as_link, bool self, const struct cn_export_key *key)
{
	struct out_tmp o = {.fd = -1};
	struct cstore_info info;
	char lnk[PATH_MAX + 32], dir[PATH_MAX], blob[PATH_MAX];
	uint8_t *buf = NULL, *bbuf = NULL;
	int rc;

	rc = complete_info(cn, id, &info, 0);
	if (rc)
		return rc;
	buf = malloc(B3TREE_CHUNK_LEN);
	if (!buf)
		return -ENOMEM;
	if (as_link && !key && cstore_path(cn->cs, id, 0, blob, sizeof(blob)) == 0 &&
	    out_tmp_name(path, lnk, sizeof(lnk)) == 0 && out_dir(path, dir, sizeof(dir)) == 0 &&
	    link(blob, lnk) == 0) {
		/* self: every chunk was verified as it arrived and written by
		 * this process to a file only it writes, moments ago; reading
		 * the whole blob back to hash it again was 40% of a 51-node
		 * lab's BLAKE3 work (docs/CONTENT.md "A download's export") */
		rc = self ? 0 : export_chunks(cn, id, &info, buf, -1, NULL);
		if (!rc && chmod(lnk, 0444))
			rc = -errno;
		if (!rc)
			rc = rename(lnk, path) ? -errno : 0;
		/* path already a name of the blob (exported before): rename()
		 * of two names of one file succeeds and leaves both */
		(void)unlink(lnk);
		goto out;
	}
	/* a sealed item's plaintext too: the folder the user chose (and the
	 * umask) decide who reads it, as for any download */
	rc = out_open(&o, path, 0);
	if (rc)
		goto out;
	/* a batch's buffer: 4 MiB, or the blob's chunks when fewer; one per
	 * export, so at most CONTENT_MAX_JOBS at once, freed at its end */
	if (!key && info.nchunks > 1 &&
	    !posix_memalign((void **)&bbuf, DIO_ALIGN,
			    (size_t)(info.nchunks < EXPORT_BATCH ? info.nchunks : EXPORT_BATCH) *
				B3TREE_CHUNK_LEN)) {
		int dfd = cstore_direct_io(cn->cs) ? out_reopen(&o, O_DIRECT) : -1;

		rc = export_batches(cn, id, &info, bbuf, o.fd, &dfd, NULL);
		if (dfd >= 0)
			close(dfd);
	} else {
		rc = export_chunks(cn, id, &info, buf, o.fd, key);
	}
	if (!rc)
		rc = out_finish(&o, o.fd, -1, path);
out:
	out_close(&o, !rc);
	if (key)
		sodium_memzero(buf, B3TREE_CHUNK_LEN);
	free(buf);
	free(bbuf);
	return rc;
}

int cn_export(struct content_node *cn, const uint8_t id[32], const char *path, bool as_link,
	      bool self)
{
	return export_common(cn, id, path, as_link, self, NULL);
}

int cn_export_sealed(struct content_node *cn, const uint8_t id[32], const char *path,
		     const struct cn_export_key *key)
{
	return export_common(cn, id, path, false, false, key);
}

/* A sealed item's follower (unseal_run): the chunks committed and not
 * yet written (handed, a bit each, under mu, set by the committer),
 * taken CN_COMMIT_MAX at a time; t.bits of the tee are the follower's alone until it is
 * joined (cn_export_tee.u.running cleared by unseal_stop). */
struct cn_unseal {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	uint8_t *handed;
	uint64_t nhanded, cursor;
	int stop, running;
};

/* Followers at once in the process, each with UNSEAL_SLOTS buffers of
 * UNSEAL_BUF_LEN (8.3 MiB in all); a sealed download past them is
 * decrypted by its export, as before followers. */
#define UNSEAL_MAX 4
static atomic_uint unseal_live;

/* A download's copy written as its chunks are committed (cn_job_tee_open). */
struct cn_export_tee {
	struct cstore_tee t; /* t.fd: o.fd lent to the commits' writes while they
			      * may still come (-1: not open, or drained); t.bits:
			      * the chunks written (plain: by a commit; sealed:
			      * by the follower), t.count of them */
	struct out_tmp o;    /* owns the descriptor (O_DIRECT) */
	int tried;	     /* cn_job_tee_start ran */
	int published;	     /* the temporary file is the user's file now */
	int sealed;	     /* key below: the follower writes, not the commits */
	int bfd;	     /* sealed: o's file buffered, for partial pages */
	struct cn_export_key key;
	struct cn_unseal u;
	struct content_node *cn;
	uint8_t id[32];	     /* sealed: the item */
	char path[PATH_MAX]; /* the user's file */
};

static void unseal_stop(struct cn_export_tee *t, bool drain);
static int unseal_spawn(struct cn_export_tee *t, uint64_t nchunks);

/* Not under the job lock: t's writes still out waited for (unless
 * drained already), its follower stopped, its file closed (and removed,
 * if named and not published). */
static void tee_free(struct content_node *cn, struct cn_export_tee *t)
{
	if (!t)
		return;
	if (t->t.fd >= 0)
		cstore_tee_drain(cn->cs, &t->t);
	unseal_stop(t, false); /* the export's stopped it already */
	if (t->bfd >= 0)
		close(t->bfd);
	out_close(&t->o, t->published);
	free(t->t.bits);
	free(t->u.handed);
	sodium_memzero(&t->key, sizeof(t->key));
	free(t);
}

/* The follower's buffer: a batch of consecutive chunks' plaintext, placed
 * at the first one's offset within a page. */
#define UNSEAL_BUF_LEN (CN_COMMIT_MAX * SEAL_SEG_PLAIN + DIO_ALIGN)

/* Sealed chunk i of t's item decrypted to dst (rbuf: CN_BUF_LEN, for a
 * chunk read from the disk); *plen its plaintext's length. -EBADMSG: the
 * chunk fails its tag; the store's errors for one it cannot give. */
static int unseal_get(struct content_node *cn, struct cn_export_tee *t, uint64_t i, uint8_t *dst,
		      uint8_t *rbuf, size_t *plen)
{
	const uint8_t *data;
	void *ref = NULL;
	size_t len;
	int rc;

	rc = cstore_lend_chunk(cn->cs, t->id, i, &data, &len, &ref);
	if (rc == -EWOULDBLOCK) {
		rc = cstore_read_chunk(cn->cs, t->id, i, rbuf, B3TREE_CHUNK_LEN, &len);
		data = rbuf;
		ref = NULL;
	}
	if (rc)
		return rc;
	rc = len >= SEAL_TAG_LEN && len <= SEAL_SEG_LEN ? 0 : -EBADMSG;
	if (!rc)
		rc = seal_seg_decrypt(t->key.item_key, t->key.plain_size, i, i + 1 == t->t.nbits,
				      data, len, dst);
	if (ref)
		cstore_unlend(ref);
	*plen = len - SEAL_TAG_LEN;
	return rc;
}

/*
 * A run of consecutive chunks' plaintext on its way out: decrypted into
 * buf at its first byte's place within a page, [off, end) of the file;
 * its whole pages [lo, hi) go with one O_DIRECT write, the partial pages
 * at its ends buffered (they hold a neighbour's bytes too). n chunks, in
 * idx (0: the slot is free).
 */
struct unseal_slot {
	uint8_t *buf;
	uint64_t idx[CN_COMMIT_MAX];
	size_t n;
	uint64_t off, end, lo, hi;
};

/* The follower's writes: through its own ring, UNSEAL_SLOTS runs out at
 * once while it decrypts the next (ring_ok), else each waited for (the
 * export's: one slot). */
#define UNSEAL_SLOTS 2
struct unseal_io {
	struct io_uring ring;
	int ring_ok;
	int no_submit; /* a submission failed: its entry may still sit in
			* the ring, so nothing is submitted again (reaping
			* what is out goes on) */
	unsigned int nslots;
	struct unseal_slot s[UNSEAL_SLOTS];
	uint8_t *rbuf; /* a chunk read from the disk */
};

static void bit_put(uint8_t *bits, uint64_t i)
{
	bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* sl's chunks written (rc 0: set in t.bits), the slot free again */
static void slot_done(struct cn_export_tee *t, struct unseal_slot *sl, int rc)
{
	for (size_t g = 0; g < sl->n && !rc; g++) {
		bit_put(t->t.bits, sl->idx[g]);
		t->t.count++;
	}
	sl->n = 0;
}

/* sl's whole pages written and waited for: through o.fd (O_DIRECT; -1
 * once refused, then through bfd) */
static int slot_write_sync(struct cn_export_tee *t, struct unseal_slot *sl)
{
	uint64_t base = sl->off / DIO_ALIGN * DIO_ALIGN;

	return export_write(t->bfd, &t->o.fd, sl->buf + (sl->lo - base), (size_t)(sl->hi - sl->lo),
			    sl->lo);
}

/* One O_DIRECT write of the ring's reaped (waited for when wait): a short
 * or failed one written again buffered (-EINVAL: O_DIRECT refused, not
 * tried again). 0 when none was out. */
static int unseal_reap(struct unseal_io *io, struct cn_export_tee *t, bool wait)
{
	struct io_uring_cqe *cqe;
	struct unseal_slot *sl;
	int res, rc;

	do
		rc = wait ? io_uring_wait_cqe(&io->ring, &cqe) : io_uring_peek_cqe(&io->ring, &cqe);
	while (rc == -EINTR);
	if (rc < 0)
		return rc == -EAGAIN ? 0 : rc;
	sl = &io->s[io_uring_cqe_get_data64(cqe) % UNSEAL_SLOTS];
	res = cqe->res;
	io_uring_cqe_seen(&io->ring, cqe);
	if (res == -EINVAL && t->o.fd >= 0) {
		close(t->o.fd);
		t->o.fd = -1;
	}
	rc = res == (int)(sl->hi - sl->lo) ? 0 : slot_write_sync(t, sl);
	slot_done(t, sl, rc);
	return 1;
}

/* A free slot: one whose write is done, reaped (waited for) if need be. */
static struct unseal_slot *unseal_slot_get(struct unseal_io *io, struct cn_export_tee *t)
{
	for (;;) {
		for (unsigned int k = 0; k < io->nslots; k++)
			if (!io->s[k].n)
				return &io->s[k];
		if (!io->ring_ok || unseal_reap(io, t, true) < 0)
			return NULL;
	}
}

/* sl's run written: the partial pages now, the whole ones through the
 * ring (not waited for) or now. */
static int unseal_put(struct unseal_io *io, struct cn_export_tee *t, struct unseal_slot *sl)
{
	uint64_t base = sl->off / DIO_ALIGN * DIO_ALIGN;
	struct io_uring_sqe *sqe;
	int rc = 0;

	sl->lo = base == sl->off ? sl->off : base + DIO_ALIGN;
	sl->hi = sl->end / DIO_ALIGN * DIO_ALIGN;
	if (sl->lo >= sl->hi) { /* within one page or two */
		rc = cn_pwrite_full(t->bfd, sl->buf + (sl->off - base), (size_t)(sl->end - sl->off),
				    sl->off);
		slot_done(t, sl, rc);
		return rc;
	}
	if (sl->lo > sl->off)
		rc = cn_pwrite_full(t->bfd, sl->buf + (sl->off - base), (size_t)(sl->lo - sl->off),
				    sl->off);
	if (!rc && sl->end > sl->hi)
		rc = cn_pwrite_full(t->bfd, sl->buf + (sl->hi - base), (size_t)(sl->end - sl->hi),
				    sl->hi);
	if (!rc && io->ring_ok && !io->no_submit && t->o.fd >= 0 &&
	    (sqe = io_uring_get_sqe(&io->ring))) {
		io_uring_prep_write(sqe, t->o.fd, sl->buf + (sl->lo - base),
				    (unsigned int)(sl->hi - sl->lo), sl->lo);
		io_uring_sqe_set_data64(sqe, (uint64_t)(sl - io->s));
		if (io_uring_submit(&io->ring) == 1)
			return 0; /* out: unseal_reap finishes it */
		io->no_submit = 1;
	}
	if (!rc)
		rc = slot_write_sync(t, sl);
	slot_done(t, sl, rc);
	return rc;
}

/*
 * Sealed chunks idx[0..n) of t's item (ascending, n <= CN_COMMIT_MAX)
 * decrypted run by run of consecutive ones into a slot each and written
 * (unseal_put); each chunk written is set in t.bits, now or when its
 * run's write is reaped. A chunk that fails ends its run; the rest go on.
 * Returns 0 or the first error met now.
 */
static int unseal_batch(struct content_node *cn, struct cn_export_tee *t, struct unseal_io *io,
			const uint64_t *idx, size_t n)
{
	int first = 0;

	for (size_t k = 0; k < n;) {
		struct unseal_slot *sl = unseal_slot_get(io, t);
		size_t lead, plen;
		int rc = 0;

		if (!sl)
			return first ?: -EIO;
		sl->off = sl->end = idx[k] * (uint64_t)SEAL_SEG_PLAIN;
		lead = (size_t)(sl->off % DIO_ALIGN);
		while (k + sl->n < n && idx[k + sl->n] == idx[k] + sl->n) {
			rc = unseal_get(cn, t, idx[k + sl->n], sl->buf + lead + (sl->end - sl->off),
					io->rbuf, &plen);
			if (rc)
				break;
			sl->idx[sl->n] = idx[k + sl->n];
			sl->n++;
			sl->end += plen;
		}
		k += sl->n + (rc != 0); /* a chunk that failed: skipped */
		if (sl->n)
			rc = unseal_put(io, t, sl) ?: rc;
		if (rc && !first)
			first = rc;
	}
	return first;
}

/* io's buffers (UNSEAL_SLOTS slots and its ring when async, else one
 * slot), -ENOMEM; unseal_io_end waits for its writes and frees them. */
static int unseal_io_init(struct unseal_io *io, bool async)
{
	memset(io, 0, sizeof(*io));
	io->ring_ok = async && io_uring_queue_init(UNSEAL_SLOTS, &io->ring, 0) == 0;
	io->nslots = io->ring_ok ? UNSEAL_SLOTS : 1;
	io->rbuf = cn_buf_alloc(CN_BUF_LEN);
	for (unsigned int k = 0; k < io->nslots; k++)
		io->s[k].buf = cn_buf_alloc(UNSEAL_BUF_LEN);
	for (unsigned int k = 0; k < io->nslots; k++)
		if (!io->s[k].buf)
			return -ENOMEM;
	return io->rbuf ? 0 : -ENOMEM;
}

/* Every write out waited for (reaped in any order) before the ring and
 * the buffers it writes from go. */
static void unseal_io_end(struct unseal_io *io, struct cn_export_tee *t)
{
	for (unsigned int k = 0; io->ring_ok && k < io->nslots;) {
		if (!io->s[k].n)
			k++;
		else if (unseal_reap(io, t, true) < 0)
			break; /* the ring is broken */
	}
	if (io->ring_ok)
		io_uring_queue_exit(&io->ring);
	for (unsigned int k = 0; k < io->nslots; k++) {
		if (io->s[k].n) { /* a write never reaped may still read it: kept */
			log_warn(CN_MOD, "sealed copy: a write's buffer kept, its ring broken");
			continue;
		}
		cn_buf_free(io->s[k].buf);
	}
	cn_buf_free(io->rbuf);
}

/* The follower: each chunk the commits hand over (handed) written; one it
 * cannot write (decryption or the disk failed) is left to the export,
 * which says why. Its buffers and ring are its own, taken once. */
static void *unseal_run(void *arg)
{
	struct cn_export_tee *t = arg;
	struct cn_unseal *u = &t->u;
	uint64_t take[CN_COMMIT_MAX];
	struct unseal_io io;
	bool ok = unseal_io_init(&io, true) == 0;
	uint64_t skip = 0; /* test builds: every skip-th chunk left to the export */
	size_t n;

#ifdef WEFT_TEST_HOOKS
	if (getenv("WEFT_CONTENT_TEST_UNSEAL_SKIP"))
		skip = strtoull(getenv("WEFT_CONTENT_TEST_UNSEAL_SKIP"), NULL, 10);
#endif

	pthread_mutex_lock(&u->mu);
	for (;;) {
		while (!u->nhanded && !u->stop)
			pthread_cond_wait(&u->cv, &u->mu);
		if (!u->nhanded)
			break;
		/* ascending from the cursor, to its wrap */
		for (n = 0; n < CN_COMMIT_MAX && u->nhanded; u->cursor++) {
			if (u->cursor >= t->t.nbits) {
				u->cursor = 0;
				if (n)
					break;
			}
			if (bit_set(u->handed, u->cursor)) {
				u->handed[u->cursor / 8] &= (uint8_t) ~(1u << (u->cursor % 8));
				u->nhanded--;
				if (!skip || u->cursor % skip)
					take[n++] = u->cursor;
			}
		}
		pthread_mutex_unlock(&u->mu);
		if (ok)
			(void)unseal_batch(t->cn, t, &io, take, n);
		while (ok && io.ring_ok && unseal_reap(&io, t, false) > 0)
			;
		pthread_mutex_lock(&u->mu);
	}
	pthread_mutex_unlock(&u->mu);
	unseal_io_end(&io, t);
	return NULL;
}

/* The follower told to end once what was handed to it is written
 * (drain) or at once, after the run it is writing, and joined. */
static void unseal_stop(struct cn_export_tee *t, bool drain)
{
	if (!t->u.running)
		return;
	pthread_mutex_lock(&t->u.mu);
	if (!drain) { /* the item failed or the job was cancelled */
		memset(t->u.handed, 0, (size_t)(t->t.nbits + 7) / 8);
		t->u.nhanded = 0;
	}
	t->u.stop = 1;
	pthread_cond_signal(&t->u.cv);
	pthread_mutex_unlock(&t->u.mu);
	pthread_join(t->u.th, NULL);
	pthread_cond_destroy(&t->u.cv);
	pthread_mutex_destroy(&t->u.mu);
	t->u.running = 0;
	atomic_fetch_sub(&unseal_live, 1);
}

void cn_job_tee_open(struct cn_job *j, const char *rel, const struct cn_export_key *key)
{
	struct cn_export_tee *t;

	cn_job_tee_close(j);
	if (!j->rq.out[0] || (j->rq.link && !key) || !cstore_direct_io(j->cn->cs))
		return;
	t = calloc(1, sizeof(*t));
	if (!t)
		return; /* the export copies it all */
	t->t.fd = -1;
	t->o.fd = -1;
	t->bfd = -1;
	t->cn = j->cn;
	if (snprintf(t->path, sizeof(t->path), "%s/%s", j->rq.out, rel) >= (int)sizeof(t->path)) {
		free(t); /* the export says the path is too long */
		return;
	}
	if (key) {
		t->sealed = 1;
		t->key = *key;
		memcpy(t->id, j->cur, sizeof(t->id));
	}
	j->tee = t;
}

/* Not under the job lock: t's buffered descriptor, its follower's state
 * and thread; 0, or the follower not started (the export copies it all,
 * as without a tee). */
static int unseal_start(struct cn_export_tee *t, uint64_t nchunks)
{
	int rc;

	if (atomic_fetch_add(&unseal_live, 1) >= UNSEAL_MAX) {
		atomic_fetch_sub(&unseal_live, 1);
		return -EBUSY;
	}
	rc = unseal_spawn(t, nchunks);
	if (rc)
		atomic_fetch_sub(&unseal_live, 1);
	return rc;
}

static int unseal_spawn(struct cn_export_tee *t, uint64_t nchunks)
{
	int rc;

	t->bfd = out_reopen(&t->o, 0);
	t->u.handed = calloc((size_t)(nchunks + 7) / 8, 1);
	if (t->bfd < 0 || !t->u.handed)
		return -ENOMEM;
	pthread_mutex_init(&t->u.mu, NULL);
	pthread_cond_init(&t->u.cv, NULL);
	rc = log_thread_create_helper(&t->u.th, NULL, unseal_run, t, "weft-unseal");
	if (rc) {
		pthread_cond_destroy(&t->u.cv);
		pthread_mutex_destroy(&t->u.mu);
		return -rc;
	}
	t->u.running = 1;
	return 0;
}

void cn_job_tee_start(struct cn_job *j)
{
	struct cn_export_tee *t = j->tee;
	uint8_t *bits;
	int rc;

	if (!t || t->tried)
		return;
	t->tried = 1;
	if (j->nchunks < 2 || !(bits = calloc((size_t)(j->nchunks + 7) / 8, 1)))
		return; /* the export copies it */
	pthread_mutex_unlock(&j->mu);
	rc = out_open(&t->o, t->path, O_DIRECT);
	if (!rc && t->sealed) {
		t->t.nbits = j->nchunks; /* before the follower reads it */
		t->t.bits = bits;
		rc = unseal_start(t, j->nchunks);
		if (rc) {
			t->t.bits = NULL;
			if (t->bfd >= 0)
				close(t->bfd);
			t->bfd = -1;
			out_close(&t->o, false);
		}
	}
	pthread_mutex_lock(&j->mu);
	if (rc) {
		free(bits);
		return;
	}
	t->t.bits = bits;
	t->t.nbits = j->nchunks;
	if (!t->sealed)
		t->t.fd = t->o.fd;
}

struct cstore_tee *cn_job_tee(struct cn_job *j)
{
	return j->tee && j->tee->t.fd >= 0 ? &j->tee->t : NULL;
}

void cn_job_tee_committed(struct cn_job *j, const uint64_t *idx, size_t n)
{
	struct cn_export_tee *t = j->tee;
	struct cn_unseal *u;
	size_t added = 0;

	if (!t || !t->u.running)
		return;
	u = &t->u;
	pthread_mutex_lock(&u->mu);
	for (size_t k = 0; k < n; k++) {
		if (idx[k] < t->t.nbits && !bit_set(u->handed, idx[k])) {
			bit_put(u->handed, idx[k]);
			u->nhanded++;
			added++;
		}
	}
	if (added)
		pthread_cond_signal(&u->cv);
	pthread_mutex_unlock(&u->mu);
}

void cn_job_tee_close(struct cn_job *j)
{
	struct cn_export_tee *t = j->tee;

	if (!t)
		return;
	j->tee = NULL;
	pthread_mutex_unlock(&j->mu);
	tee_free(j->cn, t);
	pthread_mutex_lock(&j->mu);
}

/* The export of a download whose commits wrote t (its writes drained,
 * t->t.fd given back to t->o): the chunks they did not write copied
 * (re-verified) through a second, buffered descriptor beside the O_DIRECT
 * one, then the file sized, synced and named. A close failing after that
 * is no failure: the file is the user's, its bytes synced. */
static int export_teed(struct content_node *cn, const uint8_t id[32], struct cn_export_tee *t)
{
	struct cstore_info info;
	uint8_t *bbuf = NULL;
	uint64_t left;
	int fd, rc;

	rc = complete_info(cn, id, &info, t->t.nbits);
	if (rc)
		return rc;
	fd = out_reopen(&t->o, 0);
	if (fd < 0)
		return -errno;
	left = info.nchunks - t->t.count;
	if (left &&
	    posix_memalign((void **)&bbuf, DIO_ALIGN,
			   (size_t)(left < EXPORT_BATCH ? left : EXPORT_BATCH) * B3TREE_CHUNK_LEN))
		rc = -ENOMEM;
	if (left && !rc)
		rc = export_batches(cn, id, &info, bbuf, fd, &t->o.fd, t->t.bits);
	if (!rc)
		rc = out_finish(&t->o, fd, (int64_t)info.size, t->path);
	t->published = !rc;
	close(fd);
	free(bbuf);
	return rc;
}

/* The export of a sealed item whose follower is stopped: the chunks it
 * did not write (held before, reused, or failed: tried again here, which
 * says why) written the same way, then the file sized, synced and named. */
static int export_unsealed(struct content_node *cn, const uint8_t id[32], struct cn_export_tee *t)
{
	struct cstore_info info;
	struct unseal_io io = {0};
	uint64_t idx[CN_COMMIT_MAX];
	size_t n = 0;
	int rc;

	rc = memcmp(id, t->id, sizeof(t->id)) ? -EINVAL : complete_info(cn, id, &info, t->t.nbits);
	if (rc)
		return rc;
	if (t->t.count < info.nchunks) {
		rc = unseal_io_init(&io, false);
		for (uint64_t i = 0; i < info.nchunks && !rc; i++) {
			if (!bit_set(t->t.bits, i))
				idx[n++] = i;
			if (n == CN_COMMIT_MAX || (n && i + 1 == info.nchunks)) {
				rc = unseal_batch(cn, t, &io, idx, n);
				n = 0;
			}
		}
		unseal_io_end(&io, t);
	}
	if (!rc)
		rc = out_finish(&t->o, t->bfd, (int64_t)t->key.plain_size, t->path);
	t->published = !rc;
	return rc;
}

void cn_job_export(struct cn_job *j, const uint8_t id[32], const char *rel,
		   const struct cn_export_key *key)
{
	struct cn_export_tee *t = j->tee;
	bool self = j->stored_self == j->nchunks;
	char path[PATH_MAX];
	uint64_t t0, early = 0;
	int rc;

	if (!j->rq.out[0]) {
		cn_job_tee_close(j);
		return;
	}
	if (snprintf(path, sizeof(path), "%s/%s", j->rq.out, rel) >= (int)sizeof(path)) {
		cn_job_tee_close(j);
		j->status = -ENAMETOOLONG;
		return;
	}
	j->tee = NULL; /* ours until freed below */
	t0 = util_now_ms();
	pthread_mutex_unlock(&j->mu);
	if (t && t->sealed && t->u.running && key) {
		unseal_stop(t, true); /* what the commits handed it, written */
		early = t->t.count;
		rc = export_unsealed(j->cn, id, t);
		early = rc ? 0 : early;
	} else if (t && t->t.fd >= 0 && !key) {
		cstore_tee_drain(j->cn->cs, &t->t); /* its bits final */
		t->t.fd = -1;			    /* the descriptor o's alone */
		rc = export_teed(j->cn, id, t);
		early = rc ? 0 : t->t.count;
	} else
		rc = key ? cn_export_sealed(j->cn, id, path, key)
			 : cn_export(j->cn, id, path, j->rq.link, self);
	tee_free(j->cn, t);
	pthread_mutex_lock(&j->mu);
	j->export_ms += util_now_ms() - t0;
	j->copied_early += early;
	if (rc == -EBADMSG && key) {
		/* the chunk proved out against the CV list the publisher
		 * signed, so the publisher sealed it wrongly */
		snprintf(j->error, sizeof(j->error),
			 "%.80s: a chunk fails its seal (sealed wrongly by the publisher)", rel);
		j->status = rc;
	} else if (rc) {
		snprintf(j->error, sizeof(j->error), "writing %.100s: %s", path, strerror(-rc));
		j->status = rc;
	}
}
