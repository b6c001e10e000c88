// SPDX-License-Identifier: MIT
/*
 * Multi-threaded BLAKE3: the input is cut exactly as blake3_hasher_update()
 * cuts it (power-of-two, chunk-aligned subtrees, largest first), each
 * subtree into pieces of at most PIECE_CHUNKS chunks. Each thread owns a
 * contiguous run of pieces and steals from the others' ends when done
 * (struct mt_job); each piece's CV lands in its own slot, so the
 * result does not depend on which thread ran what. The calling thread then
 * merges the pieces of each subtree (a power of two of them) and pushes the
 * subtree onto the hasher as update() would.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "blake3/blake3_impl.h"
#include "weft/util.h"

/*
 * Piece size: 256 chunks (256 KiB) is ~50 us of work per piece, long enough
 * to make the shared counter free, short enough to balance threads at the
 * end of a 1 GiB input (4096 pieces).
 */
#define PIECE_CHUNKS 256u

#ifdef MADV_POPULATE_READ
#define MT_MADV_POPULATE_READ MADV_POPULATE_READ
#else
#define MT_MADV_POPULATE_READ 22 /* Linux 5.14 uapi value; older glibc headers lack it */
#endif

/* Read buffer of the calling thread for file input outside the pieces. */
#define MT_READ_BUF (2u << 20)
/* Read buffers are 2 MiB-aligned and asked to be one huge page: the copy
 * from the page cache and the hashing then share one TLB entry instead of
 * 512 (1 GiB in tmpfs, one thread: 258-260 -> 240-246 ms of CPU). */
#define MT_BUF_ALIGN (2u << 20)

/* The input: memory (base), or a file read with pread from offset off. */
struct mt_src {
	const uint8_t *base; /* NULL: read from fd */
	int fd;
	uint64_t off;
};

struct mt_piece {
	size_t pos; /* from the start of the input */
	size_t len;
	uint64_t counter;
};

struct mt_job {
	const struct mt_piece *pieces;
	size_t n;
	struct mt_src src;
	int err; /* first read error of a worker (atomic) */
	uint8_t *cvs;
	const uint32_t *key;
	uint8_t flags;
	unsigned int backend;
	unsigned int nranges;
	/*
	 * Thread t owns the contiguous pieces [front, back) of ranges[t]
	 * (front in the low 32 bits, back in the high ones; atomic) and takes
	 * them from the front, so each thread streams through one region
	 * of the input; a thread that runs out steals from the back of the
	 * others (a thread delayed by the scheduler does not hold up the rest).
	 */
	uint64_t ranges[BLAKE3_MT_MAX_THREADS];
};

struct mt_arg {
	struct mt_job *job;
	unsigned int t;
};

/*
 * Map the pages of one piece before hashing it. For a file mapping created
 * without MAP_POPULATE (weftctl hash with several threads), this replaces 4
 * faults per piece (fault-around maps 64 KiB per fault) by one call that
 * maps 256 KiB, and the faults of two threads no longer contend: measured
 * on 1 GiB in tmpfs with 2 threads, 475 -> 380-430 ms of CPU, 0.27 -> 0.23 s
 * wall. Already mapped memory (heap, populated mappings) costs a page-table
 * walk. Only a hint: errors (EINVAL before Linux 5.14, ENOMEM for a range
 * that is not all mapped) are ignored and the hashing faults the pages in.
 */
static void mt_populate(const uint8_t *in, size_t len)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)in & ~(pg - 1);
	uintptr_t e = ((uintptr_t)in + len + pg - 1) & ~(pg - 1);

	(void)madvise((void *)a, e - a, MT_MADV_POPULATE_READ);
}

/* Take one piece of range r, from its front or its back; -1 when it is empty. */
static long mt_take(struct mt_job *job, unsigned int r, bool back)
{
	uint64_t cur = __atomic_load_n(&job->ranges[r], __ATOMIC_RELAXED), next;
	uint32_t f, b;

	do {
		f = (uint32_t)cur;
		b = (uint32_t)(cur >> 32);
		if (f >= b)
			return -1;
		next = back ? (uint64_t)(b - 1) << 32 | f : (uint64_t)b << 32 | (f + 1);
	} while (!__atomic_compare_exchange_n(&job->ranges[r], &cur, next, true, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return back ? (long)(b - 1) : (long)f;
}

/* len bytes of fd at off into buf: 0, -EIO (the file ended: it shrank
 * while hashed) or -errno. */
static int mt_pread(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* A read buffer of at least len bytes (mt_buf_alloc), or NULL. */
static uint8_t *mt_buf_alloc(size_t len)
{
	size_t sz = (len + MT_BUF_ALIGN - 1) & ~(size_t)(MT_BUF_ALIGN - 1);
	uint8_t *b = aligned_alloc(MT_BUF_ALIGN, sz);

	if (b)
		(void)madvise(b, sz, MADV_HUGEPAGE); /* a hint: without THP, 4 KiB pages */
	return b;
}

/* Absorb input bytes [pos, pos + len) in the calling thread. */
static int mt_src_update(struct blake3_hasher *h, const struct mt_src *src, size_t pos,
			 size_t len)
{
	uint8_t *buf;
	int err = 0;

	if (src->base) {
		blake3_hasher_update(h, src->base + pos, len);
		return 0;
	}
	if (!len)
		return 0;
	buf = mt_buf_alloc(len < MT_READ_BUF ? len : MT_READ_BUF);
	if (!buf)
		return -ENOMEM;
	while (len && !err) {
		size_t n = len < MT_READ_BUF ? len : MT_READ_BUF;

		err = mt_pread(src->fd, buf, n, src->off + pos);
		if (!err)
			blake3_hasher_update(h, buf, n);
		pos += n;
		len -= n;
	}
	free(buf);
	return err;
}

/* buf: the worker's piece buffer (file input only). */
static void mt_hash_piece(struct mt_job *job, size_t i, uint8_t *buf)
{
	const struct mt_piece *p = &job->pieces[i];
	const uint8_t *in = buf;
	int err;

	if (job->src.base) {
		in = job->src.base + p->pos;
		mt_populate(in, p->len);
	} else if ((err = mt_pread(job->src.fd, buf, p->len, job->src.off + p->pos))) {
		int zero = 0;

		__atomic_compare_exchange_n(&job->err, &zero, err, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
		return;
	}
	blake3_subtree_cv(job->backend, in, p->len, job->key, p->counter, job->flags,
			  job->cvs + 32 * i);
}

static void *mt_worker(void *arg)
{
	struct mt_arg *a = arg;
	struct mt_job *job = a->job;
	uint8_t *buf = NULL;
	unsigned int k;
	long i;

	util_heap_release_at_exit(); /* a thread per hash: common/heap_thread.c */

	if (!job->src.base) {
		/* File input: each piece is read here, into memory this thread
		 * reuses (cache-warm), instead of faulting a mapping in. */
		buf = mt_buf_alloc((size_t)PIECE_CHUNKS * BLAKE3_CHUNK_LEN);
		if (!buf) {
			int zero = 0;

			__atomic_compare_exchange_n(&job->err, &zero, -ENOMEM, false,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
			return NULL;
		}
	}
	while (!__atomic_load_n(&job->err, __ATOMIC_RELAXED) && (i = mt_take(job, a->t, false)) >= 0)
		mt_hash_piece(job, (size_t)i, buf);
	for (k = 1; k < job->nranges; k++) {
		unsigned int r = (a->t + k) % job->nranges;

		while (!__atomic_load_n(&job->err, __ATOMIC_RELAXED) &&
		       (i = mt_take(job, r, true)) >= 0)
			mt_hash_piece(job, (size_t)i, buf);
	}
	free(buf);
	return NULL;
}

static unsigned int mt_threads(unsigned int threads)
{
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 ? (unsigned int)n : 1;
	}
	return threads > BLAKE3_MT_MAX_THREADS ? BLAKE3_MT_MAX_THREADS : threads;
}

static int mt_update(struct blake3_hasher *h, struct mt_src src, size_t len, unsigned int threads)
{
	uint64_t sub_chunks[64], counter;
	size_t nsub = 0, npieces = 0, pos = 0, i, k, fill;
	struct mt_piece *pieces = NULL;
	pthread_t tids[BLAKE3_MT_MAX_THREADS];
	struct mt_arg args[BLAKE3_MT_MAX_THREADS];
	unsigned int started = 0, t;
	struct mt_job job;
	uint8_t *cvs = NULL, *tmp = NULL;
	int err;

	threads = mt_threads(threads);
	if (threads < 2 || len < BLAKE3_MT_MIN_LEN)
		return mt_src_update(h, &src, 0, len);
	/* Top up a partly filled chunk so the rest starts on a chunk boundary. */
	fill = (BLAKE3_CHUNK_LEN - (size_t)h->chunk.blocks_done * BLAKE3_BLOCK_LEN -
		h->chunk.buf_len) % BLAKE3_CHUNK_LEN;
	if (fill > len)
		fill = len;
	err = mt_src_update(h, &src, 0, fill);
	if (err)
		return err;
	if (src.base)
		src.base += fill;
	else
		src.off += fill;
	len -= fill;

	/* Plan: the subtrees update() would take, without taking them yet. */
	(void)blake3_hasher_next_subtree(h, len); /* flushes a now-full chunk */
	counter = h->chunk.counter;
	for (;;) {
		size_t rem = len - pos;
		uint64_t n;

		if (rem <= BLAKE3_CHUNK_LEN)
			break;
		n = 1ull << (63 - __builtin_clzll((rem - 1) / BLAKE3_CHUNK_LEN));
		while (counter & (n - 1))
			n >>= 1;
		sub_chunks[nsub++] = n;
		npieces += n > PIECE_CHUNKS ? n / PIECE_CHUNKS : 1;
		pos += (size_t)n * BLAKE3_CHUNK_LEN;
		counter += n;
	}
	if (npieces < 2 || npieces > UINT32_MAX)
		goto serial; /* (the ranges count pieces in 32 bits: 1 PiB) */
	pieces = calloc(npieces, sizeof(*pieces));
	cvs = malloc(npieces * 32);
	tmp = malloc(npieces * 16 + 32);
	if (!pieces || !cvs || !tmp)
		goto serial;
	counter = h->chunk.counter;
	pos = 0;
	k = 0;
	for (i = 0; i < nsub; i++) {
		uint64_t n = sub_chunks[i], step = n > PIECE_CHUNKS ? PIECE_CHUNKS : n, c;

		for (c = 0; c < n; c += step, k++) {
			pieces[k].pos = pos;
			pieces[k].len = (size_t)step * BLAKE3_CHUNK_LEN;
			pieces[k].counter = counter + c;
			pos += pieces[k].len;
		}
		counter += n;
	}

	if (threads > npieces)
		threads = (unsigned int)npieces;
	job = (struct mt_job){ .pieces = pieces, .n = npieces, .src = src, .cvs = cvs, .key = h->key,
			       .flags = h->flags, .backend = h->backend, .nranges = threads };
	for (t = 0; t < threads; t++) {
		uint64_t f = npieces * t / threads, b = npieces * (t + 1) / threads;

		job.ranges[t] = b << 32 | f;
		args[t] = (struct mt_arg){ .job = &job, .t = t };
	}
	for (t = 1; t < threads; t++) {
		if (pthread_create(&tids[started], NULL, mt_worker, &args[t]))
			break; /* fewer helpers: the calling thread steals their ranges */
		(void)pthread_setname_np(tids[started], "weft-blake3");
		started++;
	}
	mt_worker(&args[0]);
	for (t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	if (job.err) {
		err = job.err;
		goto out;
	}

	/* Merge each subtree's pieces and push it, in input order. */
	k = 0;
	for (i = 0; i < nsub; i++) {
		uint64_t n = sub_chunks[i];
		size_t np = n > PIECE_CHUNKS ? (size_t)(n / PIECE_CHUNKS) : 1;

		blake3_merge_pow2(h->backend, cvs + 32 * k, np, tmp, h->key, h->flags);
		blake3_hasher_push_subtree(h, cvs + 32 * k, n);
		k += np;
	}
	/* The tail (at most one chunk) goes through the ordinary path. */
	err = mt_src_update(h, &src, pos, len - pos);
out:
	free(pieces);
	free(cvs);
	free(tmp);
	return err;

serial:
	free(pieces);
	free(cvs);
	free(tmp);
	return mt_src_update(h, &src, 0, len);
}

int blake3_hasher_update_mt(struct blake3_hasher *h, const void *in, size_t len,
			    unsigned int threads)
{
	if (!in && len)
		return -EINVAL;
	return mt_update(h, (struct mt_src){ .base = in, .fd = -1 }, len, threads);
}

int blake3_hasher_update_fd(struct blake3_hasher *h, int fd, uint64_t off, size_t len,
			    unsigned int threads)
{
	if (fd < 0)
		return -EBADF;
	if (!len)
		return 0;
	return mt_update(h, (struct mt_src){ .base = NULL, .fd = fd, .off = off }, len, threads);
}


int blake3_hash_mt(const void *buf, size_t len, unsigned int threads, uint8_t *out, size_t outlen)
{
	struct blake3_hasher h;
	int err;

	blake3_hasher_init(&h);
	err = blake3_hasher_update_mt(&h, buf, len, threads);
	if (err)
		return err;
	blake3_hasher_finalize(&h, out, outlen);
	return 0;
}
