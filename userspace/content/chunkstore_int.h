/* SPDX-License-Identifier: MIT */
/*
 * Internals of the chunk store, shared by its files (one-way: the store
 * calls its two parts, the parts call nothing of it):
 *   chunkstore.c        the store: open and reconcile, add, partial
 *                       downloads, chunk writes and reads, queries
 *   chunkstore_index.c  the LMDB index: record encoding, bitmaps, lookups
 *                       inside a transaction
 *   chunkstore_files.c  the blob files: names, open, unlink, and the
 *                       descriptors kept open between chunk I/Os
 *   chunkstore_io.c     whole reads and writes, direct I/O through a
 *                       pool of aligned buffers
 *   chunkstore_trust.c  the chunks of complete blobs verified since their
 *                       file last changed (read back without hashing)
 *   chunkstore_hot.c    chunks kept in memory once verified and written
 */
#ifndef WEFT_CHUNKSTORE_INT_H
#define WEFT_CHUNKSTORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "weft/chunk.h"

struct store_txn;
struct cn_trust;
struct cn_hot;
struct cn_fds;

#define CS_MOD "content"

/* Index record: magic, state, size, nchunks, added (little-endian). */
#define REC_LEN 32
/* Largest size a record may claim, whatever the configuration: 2^50 bytes
 * (1 PiB). Keeps nchunks * 32 and every offset far from overflow. */
#define REC_MAX_SIZE (1ull << 50)
/* O_DIRECT: buffer, offset and length aligned to this (the page size;
 * every block device's logical block divides it). */
#define DIO_ALIGN 4096
/* Aligned chunk buffers kept for reuse: the serve threads and a few
 * downloads at once; more are allocated and freed per call. */
#define DIO_POOL 6
/* a pool unused this many trim calls (seconds) goes back to the allocator:
 * a node that exported or served once does not keep 256 KiB for good */
#define DIO_IDLE_TICKS 60
/* Verified-chunk trust (chunkstore_trust.c): blobs tracked, the bytes of
 * their bitmaps together (4 MiB: 32M chunks, 8 TiB of content), and one
 * trusted read in CSTORE_TRUST_SAMPLE verified anyway (a slow scrub for
 * what a file's identity cannot show: a disk that changes data under it). */
#define CSTORE_TRUST_BLOBS 256
#define CSTORE_TRUST_BITS_MAX (4u << 20)
#define CSTORE_TRUST_SAMPLE 64
/* the chunks kept in memory (chunkstore_hot.c) go after this many trim
 * calls (seconds) without a put or a get */
#define CSTORE_HOT_IDLE_TICKS 60
/* buffers of lent chunks kept for the next give once their last loan is
 * back (chunkstore_hot.c "Spares"): at most this many, 256 KiB each */
#define CSTORE_HOT_SPARES 8
/* Chunks verified and waiting for their blob's commit to write them in one
 * batch (chunkstore_defer.c): at most this many in a store (8 MiB). */
#define CSTORE_DEFER_MAX 32
/* Blob files kept open (chunkstore_files.c): at most this many descriptors
 * (one per blob and open mode: a download's write and its peers' reads
 * of a few blobs at once), each closed after this many trim calls
 * (seconds) unused. */
#define CSTORE_FDS 16
#define CSTORE_FDS_IDLE_TICKS 5

struct cstore {
	struct store *st;
	int (*make_room)(void *arg, uint64_t need); /* cstore_opts.make_room */
	void *room_arg;
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
	atomic_int direct;	     /* O_DIRECT chunk I/O on (cleared on EINVAL) */
	struct cn_pool *dio;	     /* aligned chunk buffers kept for reuse */
	pthread_mutex_t trust_mu;   /* guards *trust */
	struct cn_trust *trust;	    /* NULL: every read verified */
	uint32_t trust_settle_ms;   /* cstore_opts.trust_settle_ms */
	uint32_t trust_bits_max;    /* cstore_opts.trust_bits_max */
	atomic_uint_fast64_t trust_hits; /* reads found trusted (sampled or not) */
	atomic_uint_fast64_t reads_verified, reads_trusted; /* cstore_read_stats */
	atomic_uint_fast64_t reads_retried; /* a complete blob's chunk read again */
	pthread_mutex_t hot_mu;	   /* guards *hot */
	struct cn_hot *hot;	   /* chunks kept in memory; NULL: none */
	atomic_uint_fast64_t hot_hits; /* cstore_read_stats: reads served from *hot */
	atomic_uint_fast64_t hot_lent; /* of them, lent without a copy (cn_hot_lend) */
	struct cn_defer *defer;	   /* chunks waiting for their commit; own mutexes */
	pthread_mutex_t fds_mu;	   /* guards *fds */
	struct cn_fds *fds;	   /* blob files kept open (always, once opened) */
	atomic_uint_fast64_t fds_opens; /* descriptors opened (tests) */
#ifdef WEFT_TEST_HOOKS
	atomic_int test_flip_reads; /* cstore_test_fail_next_read */
	atomic_uint test_read_delay_ms; /* cstore_test_slow_reads */
#endif
};

/* chunkstore_index.c: the index records (pure encoding) and their
 * lookups inside a transaction the caller holds. */
void cn_rec_encode(uint8_t rec[REC_LEN], uint32_t state, uint64_t size, uint64_t added);
/* Validate and decode; -EBADMSG for anything a correct writer never makes. */
int cn_rec_decode(const void *val, size_t vlen, struct cstore_info *info);
size_t cn_bits_len(uint64_t nchunks);
int cn_bit_get(const uint8_t *bits, uint64_t i);
uint64_t cn_bits_count(const uint8_t *bits, size_t len);
/* The record of id (logged when damaged: -EBADMSG), -ENOENT if none. */
int cn_load_rec(struct cstore *cs, struct store_txn *t, const uint8_t *id,
		struct cstore_info *info);
/* The CV list / bitmap of an entry of nchunks, pointing into the
 * transaction; a missing or mis-sized one is damaged (-EBADMSG). */
int cn_load_cvs(struct cstore *cs, struct store_txn *t, const uint8_t *id, uint64_t nchunks,
		const uint8_t **cvs);
int cn_load_bits(struct cstore *cs, struct store_txn *t, const uint8_t *id, uint64_t nchunks,
		 const uint8_t **bits);

/* chunkstore_files.c: the blob files' names. 0 or -errno throughout. */
int cn_blob_subdir(const struct cstore *cs, const uint8_t *id);
int cn_blob_sync_subdir(const struct cstore *cs, const uint8_t *id);
/* Unlink both names of id (its kept descriptors dropped first). */
void cn_blob_unlink(struct cstore *cs, const uint8_t *id);
/* Make a fresh sparse .part of size bytes. */
int cn_blob_create_part(struct cstore *cs, const uint8_t *id, uint64_t size);
/* Open the data file of an entry in state (see the definition): fd or -errno. */
int cn_blob_open(const struct cstore *cs, const uint8_t *id, uint32_t state, int flags);
/* A download just committed complete in the index: its .part renamed to
 * the final name (a failure logged; cstore_new retries it), and what the
 * store wrote itself stays trusted (cn_trust_sealed) when fd, the file
 * opened before the commit (or -1), shows it unchanged by others. */
void cn_blob_name_complete(struct cstore *cs, const uint8_t *id, int fd, uint64_t nchunks);
/* Whole reads and writes (a short file reads as -EIO). */
int cn_pread_full(int fd, uint8_t *buf, size_t len, uint64_t off);
int cn_pwrite_full(int fd, const uint8_t *buf, size_t len, uint64_t off);
/* The staged copy of an add: every chunk of the size-byte output read
 * from src, through x->fn (called from two threads at once; x NULL: the
 * source's bytes as they are), written to dst (the file staged; whole
 * chunks with O_DIRECT when the store uses it) at its offset and its CV
 * put in cvs. Two lanes (this thread and one helper, at most one helper
 * in the process) take batches of 16 chunks from a shared counter, each
 * batch written with one call from the lane's 4 MiB buffer; small outputs
 * take one lane. 0, -EIO (the source shrank), fn's error, -errno. */
int cn_stage_xform(struct cstore *cs, const char *staged, int dst, int src, uint64_t size,
		   const struct cstore_xform *x, uint8_t *cvs);
/* Does a chunk of len bytes go through O_DIRECT? */
int cn_dio_use(struct cstore *cs, size_t len);
/* One chunk through O_DIRECT (see the definition): -EINVAL when the file
 * system refuses it (the caller goes buffered). st, when not NULL: a read
 * fills st[0] with the file's fstat after it; a write fills st[0] with the
 * fstat before it and st[1] after (chunkstore_trust.c cn_trust_own). */
int cn_dio_chunk(struct cstore *cs, const uint8_t *id, uint32_t state, int wr, uint8_t *buf,
		 size_t len, uint64_t off, struct stat *st);
/* The file system refused O_DIRECT: buffered from now on (logged once). */
void cn_dio_refused(struct cstore *cs);
/* Called once a second (the content node's tick): after DIO_IDLE_TICKS
 * calls in a row with no buffer taken or returned, the pool is freed. */
void cn_dio_trim(struct cstore *cs);
unsigned int cn_dio_pooled(struct cstore *cs);

/* chunkstore_pool.c: buffers kept for reuse, each with its shape (the
 * allocation's length, the offset its data starts at); at most max
 * (<= CN_POOL_MAX), refcounted so buffers lent out may come back after
 * the owner let go (then they are freed). new: NULL when out of memory or
 * max is too large; unref: NULL-safe, the last frees every buffer kept. */
#define CN_POOL_MAX 16
struct cn_pool;
struct cn_pool *cn_pool_new(unsigned int max);
void cn_pool_ref(struct cn_pool *p);
void cn_pool_unref(struct cn_pool *p);
/* A kept buffer of the shape (alen, off), or NULL. */
void *cn_pool_take(struct cn_pool *p, size_t alen, size_t off);
/* Keep base, or free it (max kept, or the pool closed). */
void cn_pool_keep(struct cn_pool *p, void *base, size_t alen, size_t off);
/* Free every buffer kept; close: free those kept later too. */
void cn_pool_drop(struct cn_pool *p, int close);
/* Called once a tick: after ticks calls in a row with no take or keep,
 * the buffers kept are freed. */
void cn_pool_idle(struct cn_pool *p, unsigned int ticks);
unsigned int cn_pool_count(struct cn_pool *p);

/* chunkstore_trust.c. new: 0 or -ENOMEM; free: NULL-safe contents. */
int cn_trust_new(struct cstore *cs);
void cn_trust_free(struct cstore *cs);
/* 1 when chunk index of id was verified while its file had the identity
 * st (fstat of the file after the read), else 0. partial: the blob is a
 * partial download's, vouched for only by the store's own writes
 * (cn_trust_own). */
int cn_trust_check(struct cstore *cs, const uint8_t *id, uint64_t index, const struct stat *st,
		   int partial);
/* Chunk index of id (nchunks) was just verified, read from the file of
 * identity st: remembered, unless the file changed within the settle time
 * (a new identity forgets the chunks verified under the old one). */
void cn_trust_note(struct cstore *cs, const uint8_t *id, uint64_t index, uint64_t nchunks,
		   const struct stat *st);
/* Chunk index of partial blob id (nchunks) was just verified in memory and
 * written by the store; pre and post: fstat of the file right before and
 * right after the write. Remembered as the store's own; a complete blob's
 * entry, one of another file, or one whose file changed since the store's
 * last recorded write (pre's ctime later) is forgotten first. */
void cn_trust_own(struct cstore *cs, const uint8_t *id, uint64_t index, uint64_t nchunks,
		  const struct stat *pre, const struct stat *post);
/* Blob id (nchunks), complete, made by the store itself: an add's staged
 * copy hashed from the bytes written (all), or a partial download whose
 * last chunk just committed (!all: what its own entry vouched for), just
 * renamed to its final name. written: fstat of the file after the store's
 * last write (a download's: right before the rename); post: after the
 * rename. Remembered as a complete blob's entry of identity post with no
 * settle time, when nothing else changed the file in between (written and
 * post agree but for ctime; a download's own entry still holds at
 * written); else id is forgotten. */
void cn_trust_sealed(struct cstore *cs, const uint8_t *id, uint64_t nchunks,
		     const struct stat *written, const struct stat *post, int all);
/* Forget id (deleted, marked bad, or a read that failed). */
void cn_trust_forget(struct cstore *cs, const uint8_t *id);

/* chunkstore_hot.c: chunks kept in memory once verified and written.
 * new: n slots (0: none), 0 or -ENOMEM; free: NULL-safe contents. */
int cn_hot_new(struct cstore *cs, unsigned int n);
void cn_hot_free(struct cstore *cs);
/* Chunk index of id, verified and written: kept (the least recently used
 * one replaced). */
void cn_hot_put(struct cstore *cs, const uint8_t *id, uint64_t index, const uint8_t *buf,
		size_t len);
/* The same without a copy: the chunk is at (uint8_t *)*alloc + off, in an
 * allocation of alen bytes (free()) with room for B3TREE_CHUNK_LEN there,
 * which the cache takes: 1, and *alloc is the replaced chunk's allocation
 * when it has the same alen and off, else a spare of that shape, else
 * NULL (the giver's to use or free). 0 (not taken, *alloc unchanged): no
 * cache, the chunk kept already, or a shape without the room. */
int cn_hot_give(struct cstore *cs, const uint8_t *id, uint64_t index, void **alloc, size_t alen,
		size_t off, size_t len);
/* cn_hot_give, and when taken the chunk lent at once (as cn_hot_lend, not
 * counted as a read): *data, *ref until cn_hot_unlend(*ref). */
int cn_hot_give_lend(struct cstore *cs, const uint8_t *id, uint64_t index, void **alloc,
		     size_t alen, size_t off, size_t len, const uint8_t **data, void **ref);
/* 1 and len bytes copied to buf when the chunk is kept, else 0. */
int cn_hot_get(struct cstore *cs, const uint8_t *id, uint64_t index, uint8_t *buf, size_t len);
/* 1 when the chunk is kept: *data (len bytes) lent until
 * cn_hot_unlend(*ref) (any thread; the buffer outlives the cache and its
 * slot if need be, and is never written while lent), else 0. */
int cn_hot_lend(struct cstore *cs, const uint8_t *id, uint64_t index, size_t len,
		const uint8_t **data, void **ref);
void cn_hot_unlend(void *ref);
/* Forget id's chunks (deleted). */
void cn_hot_drop(struct cstore *cs, const uint8_t *id);

/* chunkstore_defer.c: chunks verified, written at their blob's commit in
 * one batch. new: 0 or -ENOMEM; free: NULL-safe, the waiting chunks'
 * loans ended (they were never committed). */
int cn_defer_new(struct cstore *cs);
void cn_defer_free(struct cstore *cs);
/* Chunk index of partial blob id (nchunks), verified, in the buffer
 * *alloc (alen bytes, the chunk at off, len bytes): 1 when it waits here
 * now (given to the memory cache, cn_hot_give: *alloc is what the cache
 * gave back, and lent from there until written) or waited already
 * (*alloc unchanged); 0 when it must be written now, nothing changed (no
 * O_DIRECT, no memory cache, a buffer not aligned for it, no room). */
int cn_defer_put(struct cstore *cs, const uint8_t *id, uint64_t index, uint64_t nchunks,
		 void **alloc, size_t alen, size_t off, size_t len);
/* Write id's waiting chunks (one batch), their loans then ended: 0 or
 * -errno (the chunks are dropped then, not written); to tee's file too
 * when given (cstore_commit_chunks_tee). */
int cn_defer_flush(struct cstore *cs, const uint8_t *id, struct cstore_tee *tee);
/* Drop id's waiting chunks (deleted). */
void cn_defer_drop(struct cstore *cs, const uint8_t *id);
unsigned int cn_defer_count(struct cstore *cs);
/* Once a second: after CSTORE_HOT_IDLE_TICKS calls with no put or get, every
 * buffer is freed. */
void cn_hot_trim(struct cstore *cs);
/* Slots holding a buffer. */
unsigned int cn_hot_held(struct cstore *cs);
/* Spare buffers kept (tests). */
unsigned int cn_hot_spares(struct cstore *cs);

/* chunkstore_files.c: blob files kept open. new: 0 or -ENOMEM; free:
 * closes them. A kept descriptor is held between get and put. */
struct cn_fd {
	int fd;
	int slot; /* -1: not kept (put closes it) */
	int kept; /* found kept open (not opened by this get) */
};
int cn_fds_new(struct cstore *cs);
void cn_fds_free(struct cstore *cs);
/* An fd of id's file opened with flags, as cn_blob_open opens it, in
 * f->fd: 0, or cn_blob_open's error. Every get is followed by a put. */
int cn_fd_get(struct cstore *cs, const uint8_t *id, uint32_t state, int flags, struct cn_fd *f);
void cn_fd_put(struct cstore *cs, struct cn_fd *f);
/* After I/O through f and st = fstat of it: 1 when f was found kept and
 * its file has no name left (another program replaced or unlinked it):
 * the caller drops the blob's descriptors and does the I/O again. */
int cn_fd_stale(const struct cn_fd *f, const struct stat *st);
/* id's names now name another file or none (an add renamed over one, a
 * fresh .part, an unlink, a read that failed): its descriptors are not
 * used again (closed at once, or by their last put). */
void cn_fds_drop(struct cstore *cs, const uint8_t *id);
/* Once a second: descriptors unused for CSTORE_FDS_IDLE_TICKS calls closed. */
void cn_fds_trim(struct cstore *cs);
/* Descriptors open in the table. */
unsigned int cn_fds_held(struct cstore *cs);

/* chunkstore_open.c: at open (cstore_new), before anything else uses cs. */
/* Check every index entry against its file, repair what can be (written
 * only if LMDB takes every repair), count used and nblobs: 0 or -errno. */
int cn_reconcile(struct cstore *cs);
/* Remove the staging files of adds cut short. */
void cn_clean_staging(const char *blobdir);

#endif
