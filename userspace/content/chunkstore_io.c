// SPDX-License-Identifier: MIT
/*
 * The chunk store's blob I/O (chunkstore_int.h): whole reads and writes,
 * and direct I/O through descriptors chunkstore_files.c keeps: a chunk whose length is a multiple of
 * DIO_ALIGN goes through O_DIRECT by way of an aligned buffer (the
 * caller's when it is aligned, else one of a small pool); a file system
 * that refuses O_DIRECT turns it off for the store, logged once. And the
 * staged copy of a transformed add (cn_stage_xform), on two lanes.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "content/chunkbuf.h"
#include "content/chunkstore_int.h"
#include "weft/log.h"
#include "weft/util.h"

int cn_pread_full(int fd, uint8_t *buf, size_t len, uint64_t off)
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

int cn_pwrite_full(int fd, const uint8_t *buf, size_t len, uint64_t off)
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
	void *b = cn_pool_take(cs->dio, B3TREE_CHUNK_LEN, 0);

	if (!b)
		b = cn_buf_alloc(B3TREE_CHUNK_LEN); /* page aligned */
	return b;
}

static void dio_put(struct cstore *cs, uint8_t *b)
{
	cn_pool_keep(cs->dio, b, B3TREE_CHUNK_LEN, 0);
}

void cn_dio_trim(struct cstore *cs)
{
	cn_pool_idle(cs->dio, DIO_IDLE_TICKS);
}

unsigned int cn_dio_pooled(struct cstore *cs)
{
	return cn_pool_count(cs->dio);
}

/* Does a chunk of len bytes go through O_DIRECT? */
int cn_dio_use(struct cstore *cs, size_t len)
{
	return atomic_load_explicit(&cs->direct, memory_order_relaxed) && len &&
	       len <= B3TREE_CHUNK_LEN && len % DIO_ALIGN == 0;
}

void cn_dio_refused(struct cstore *cs)
{
	if (atomic_exchange(&cs->direct, 0))
		log_warn(CS_MOD, "%s: the file system refuses O_DIRECT: chunk I/O is buffered",
			 cs->blobdir);
}

/*
 * One chunk of len bytes at off through O_DIRECT: write (wr) from buf or
 * read into buf, by way of an aligned pool buffer; st (may be NULL) gets
 * the file's fstat taken after a read, or two for a write: st[0] before
 * it, st[1] after. -EINVAL when the file system
 * refuses O_DIRECT (the caller goes buffered), else 0 or -errno.
 */
int cn_dio_chunk(struct cstore *cs, const uint8_t *id, uint32_t state, int wr, uint8_t *buf,
		 size_t len, uint64_t off, struct stat *st)
{
	struct cn_fd f;
	uint8_t *b;
	int err, again = 1;

	/* the caller's buffer itself when it is aligned (swarm answers and
	 * serve threads arrange it), else by way of a pool buffer */
	b = (uintptr_t)buf % DIO_ALIGN ? dio_get(cs) : buf;
	if (!b)
		return -ENOMEM;
	if (wr && b != buf)
		memcpy(b, buf, len);
retry:
	err = cn_fd_get(cs, id, state, (wr ? O_WRONLY : O_RDONLY) | O_DIRECT, &f);
	if (err)
		goto out;
	if (wr && st && fstat(f.fd, st) < 0) /* a write's st[0]: before it */
		err = -errno;
	else if (wr)
		err = cn_pwrite_full(f.fd, b, len, off);
	else
		err = cn_pread_full(f.fd, b, len, off);
	if (!err && st && fstat(f.fd, st + wr) < 0)
		err = -errno;
	cn_fd_put(cs, &f);
	if (err) { /* whatever went wrong, the next I/O opens the file afresh */
		cn_fds_drop(cs, id);
	} else if (!wr && st && cn_fd_stale(&f, st) && again--) {
		/* read through a kept descriptor whose file has lost its
		 * name since (replaced or unlinked by another program): read
		 * again from the file the name names now (a write is not
		 * redone: the commit finds what became of the file) */
		cn_fds_drop(cs, id);
		goto retry;
	}
	if (!err && !wr && b != buf)
		memcpy(buf, b, len);
out:
	if (b != buf)
		dio_put(cs, b);
	if (err == -EINVAL)
		cn_dio_refused(cs);
	return err;
}

/* ---- staged adds: transformed, or plain copies ---- */

#define XF_BATCH 16	 /* chunks a lane takes at a time (4 MiB) */
#define XF_MIN_CHUNKS 32 /* below 8 MiB of output, one lane */

/* Helper lanes running in the process: at most one (a second add at the
 * same time runs on its own thread only). */
static atomic_int xf_helpers;

struct xf_job {
	struct cstore *cs;
	int dst, src, dfd; /* dfd: dst opened with O_DIRECT, or -1 */
	uint64_t size, n;
	const struct cstore_xform *x;
	uint8_t *cvs;
	atomic_uint_fast64_t next; /* the next chunk no lane has taken */
	atomic_int err;		   /* the first lane's error stops both */
	atomic_int direct;	   /* dfd still in use */
};

/* Chunk i made in buf: source bytes [i * in_chunk, +in_len) through x->fn
 * (no x: the chunk's own bytes, read into buf), then hashed while it is
 * in the cache. */
static int xf_make(struct xf_job *j, uint64_t i, uint8_t *xbuf, uint8_t *buf)
{
	const struct cstore_xform *x = j->x;
	size_t clen = (size_t)b3tree_chunk_size(j->size, i);
	int err;

	if (!x) {
		if ((err = cn_pread_full(j->src, buf, clen, i * B3TREE_CHUNK_LEN)))
			return err; /* -EIO: the source shrank */
	} else {
		uint64_t ioff = i * x->in_chunk;
		size_t ilen = i + 1 < j->n ? x->in_chunk : (size_t)(x->in_size - ioff);

		if (ioff > x->in_size || ilen > x->in_chunk)
			return -EINVAL;
		if ((err = cn_pread_full(j->src, xbuf, ilen, ioff)) ||
		    (err = x->fn(x->arg, i, xbuf, ilen, buf, clen)))
			return err; /* -EIO from the read: the source shrank */
	}
	return b3tree_chunk_cv(buf, clen, i, j->n == 1, j->cvs + i * B3TREE_CV_LEN);
}

/* len bytes of output at off written to dst: through dfd when len allows
 * and O_DIRECT still works, else buffered. */
static int xf_write(struct xf_job *j, const uint8_t *buf, size_t len, uint64_t off)
{
	int err = -EINVAL;

	if (len % DIO_ALIGN == 0 && atomic_load_explicit(&j->direct, memory_order_relaxed)) {
		err = cn_pwrite_full(j->dfd, buf, len, off);
		if (err == -EINVAL && atomic_exchange(&j->direct, 0))
			cn_dio_refused(j->cs);
	}
	if (err == -EINVAL) /* not direct, or refused */
		err = cn_pwrite_full(j->dst, buf, len, off);
	return err;
}

/* A lane's batch buffer and the O_DIRECT write of it that may be out
 * (len bytes at off; len 0: none). */
struct xf_buf {
	uint8_t *buf;
	size_t len;
	uint64_t off;
};

/* A lane: its two buffers, and its ring when it has one (ring_ok): the
 * write of one buffer goes out while the lane makes the next batch in
 * the other, so the disk and the CPU work at once; without a ring each
 * write is waited for. */
struct xf_lane_io {
	struct io_uring ring;
	int ring_ok, no_submit;
	int broken; /* waiting on the ring failed: what is out stays out */
	struct xf_buf b[2];
};

/* A write out reaped (waited for): a short or failed one written again,
 * waited for (xf_write: O_DIRECT refused turns it off); its error, or the
 * ring's (broken set). */
static int xf_reap(struct xf_job *j, struct xf_lane_io *io)
{
	struct io_uring_cqe *cqe;
	struct xf_buf *b;
	int rc, res;

	do
		rc = io_uring_wait_cqe(&io->ring, &cqe);
	while (rc == -EINTR);
	if (rc < 0) {
		io->broken = 1;
		return rc;
	}
	b = &io->b[io_uring_cqe_get_data64(cqe) & 1];
	res = cqe->res;
	io_uring_cqe_seen(&io->ring, cqe);
	rc = res == (int)b->len ? 0 : xf_write(j, b->buf, b->len, b->off);
	b->len = 0;
	return rc;
}

/* b free: its write, if out, reaped (and any other reaped on the way,
 * whatever became of it); the first error met */
static int xf_free(struct xf_job *j, struct xf_lane_io *io, struct xf_buf *b)
{
	int rc = 0;

	while (b->len && !io->broken) {
		int e = xf_reap(j, io);

		if (e && !rc)
			rc = e;
	}
	return rc;
}

/* Chunks [i, end) (consecutive: one range of the output) made into b's
 * buffer, then written with one call (4 MiB for a whole batch: one trip
 * through the block layer where sixteen were; through the ring, not
 * waited for, when O_DIRECT takes it), a short last chunk of the blob
 * apart when its length is not aligned. */
static int xf_batch(struct xf_job *j, struct xf_lane_io *io, struct xf_buf *b, uint64_t i,
		    uint64_t end, uint8_t *xbuf)
{
	size_t head = (size_t)(end - 1 - i) * B3TREE_CHUNK_LEN;
	size_t llen = (size_t)b3tree_chunk_size(j->size, end - 1);
	uint64_t off = i * B3TREE_CHUNK_LEN;
	uint8_t *buf = b->buf;
	struct io_uring_sqe *sqe;
	int err = 0;

	for (uint64_t k = i; k < end && !err; k++)
		err = xf_make(j, k, xbuf, buf + (size_t)(k - i) * B3TREE_CHUNK_LEN);
	if (err)
		return err;
	if ((head + llen) % DIO_ALIGN == 0) {
		if (io->ring_ok && !io->no_submit &&
		    atomic_load_explicit(&j->direct, memory_order_relaxed) &&
		    (sqe = io_uring_get_sqe(&io->ring))) {
			b->len = head + llen;
			b->off = off;
			io_uring_prep_write(sqe, j->dfd, buf, (unsigned int)b->len, off);
			io_uring_sqe_set_data64(sqe, (uint64_t)(b - io->b));
			if (io_uring_submit(&io->ring) == 1)
				return 0;  /* out: xf_reap finishes it */
			io->no_submit = 1; /* its entry may sit in the ring */
			b->len = 0;
		}
		return xf_write(j, buf, head + llen, off);
	}
	if (head && (err = xf_write(j, buf, head, off)))
		return err;
	return xf_write(j, buf + head, llen, off + head);
}

/* A lane: batches of chunks until none is left or a lane failed, made in
 * its two buffers in turn. Its buffers (the input may be plaintext) are
 * wiped before they are freed, once no write of them is out. */
static void *xf_lane(void *arg)
{
	struct xf_job *j = arg;
	size_t xlen = j->x ? j->x->in_chunk : 0;
	size_t blen = (size_t)(j->n < XF_BATCH ? j->n : XF_BATCH) * B3TREE_CHUNK_LEN;
	struct xf_lane_io io = {0};
	uint8_t *xbuf = NULL;
	int err = 0, none = 0, k = 0;

	util_heap_release_at_exit(); /* a thread per transfer: common/heap_thread.c */
	if (xlen)
		xbuf = malloc(xlen);
	/* a second buffer and a ring only when there is a second batch */
	io.ring_ok = j->dfd >= 0 && j->n > XF_BATCH && io_uring_queue_init(2, &io.ring, 0) == 0;
	for (int b = 0; b < 1 + io.ring_ok && !err; b++)
		if (posix_memalign((void **)&io.b[b].buf, DIO_ALIGN, blen)) {
			io.b[b].buf = NULL;
			err = -ENOMEM;
		}
	if (xlen && !xbuf)
		err = -ENOMEM;
	while (!err && !atomic_load(&j->err)) {
		uint64_t i = atomic_fetch_add(&j->next, XF_BATCH);

		if (i >= j->n)
			break;
		err = xf_free(j, &io, &io.b[k]);
		if (!err)
			err = xf_batch(j, &io, &io.b[k], i,
				       j->n - i > XF_BATCH ? i + XF_BATCH : j->n, xbuf);
		k = io.ring_ok ? !k : 0;
	}
	for (int b = 0; b < 2; b++) {
		int e = io.ring_ok ? xf_free(j, &io, &io.b[b]) : 0;

		if (e && !err)
			err = e;
	}
	if (err)
		atomic_compare_exchange_strong(&j->err, &none, err);
	if (io.ring_ok)
		io_uring_queue_exit(&io.ring);
	if (xbuf)
		sodium_memzero(xbuf, xlen);
	free(xbuf);
	for (int b = 0; b < 2; b++) {
		if (!io.b[b].buf)
			continue;
		if (io.b[b].len) { /* a write never reaped may still read it */
			log_warn(CS_MOD, "staged add: a write's buffer kept, its ring broken");
			continue;
		}
		sodium_memzero(io.b[b].buf, blen);
		free(io.b[b].buf);
	}
	return NULL;
}

int cn_stage_xform(struct cstore *cs, const char *staged, int dst, int src, uint64_t size,
		   const struct cstore_xform *x, uint8_t *cvs)
{
	struct xf_job j = {.cs = cs, .dst = dst, .src = src, .dfd = -1, .size = size, .x = x,
			   .cvs = cvs};
	pthread_t t;
	int helper = 0, idle = 0;

	j.n = b3tree_nchunks(size);
	/* Whole chunks of output (all but perhaps the last) go to the disk
	 * with O_DIRECT: no page-cache copy, and a lane waiting on the disk
	 * leaves the CPU to the other lane's transform. */
	if (cn_dio_use(cs, B3TREE_CHUNK_LEN)) {
		j.dfd = open(staged, O_WRONLY | O_CLOEXEC | O_DIRECT);
		if (j.dfd < 0 && errno == EINVAL)
			cn_dio_refused(cs);
	}
	atomic_init(&j.next, 0);
	atomic_init(&j.err, 0);
	atomic_init(&j.direct, j.dfd >= 0);
	if (j.n >= XF_MIN_CHUNKS && atomic_compare_exchange_strong(&xf_helpers, &idle, 1)) {
		helper = pthread_create(&t, NULL, xf_lane, &j) == 0;
		if (helper)
			(void)pthread_setname_np(t, "weft-xfer");
		else
			atomic_store(&xf_helpers, 0); /* no thread: one lane */
	}
	xf_lane(&j);
	if (helper) {
		pthread_join(t, NULL);
		atomic_store(&xf_helpers, 0);
	}
	if (j.dfd >= 0)
		close(j.dfd);
	return atomic_load(&j.err);
}
