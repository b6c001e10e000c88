/* SPDX-License-Identifier: MIT */
/*
 * Content chunks and the chunk store.
 *
 * Content id = the plain BLAKE3 hash of the whole blob (32 bytes).
 *
 * A blob is cut into chunks of B3TREE_CHUNK_LEN (256 KiB) bytes, the last
 * one possibly shorter. 256 KiB is 256 BLAKE3 chunks: a complete BLAKE3
 * subtree, so every chunk has a chaining value (CV) at tree level 8 and the
 * chunk CVs are exactly the nodes BLAKE3 itself computes at that level. The
 * "CV list" (32 bytes per chunk) therefore proves itself against the content
 * id alone: merge the CVs into parents the way BLAKE3 does (left subtree =
 * the largest power of two of chunks strictly smaller than the count), with
 * the ROOT flag on the final parent, and compare with the content id. A
 * downloader fetches the CV list from any provider, checks it, then checks
 * each chunk against its own CV as it arrives. See docs/CONTENT.md for the
 * encoding, the choice of size and test vectors.
 *
 * Special case: a blob of at most 256 KiB (including the empty blob) is one
 * chunk whose "CV" is the root hash itself, i.e. the content id.
 */
#ifndef WEFT_CHUNK_H
#define WEFT_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#define B3TREE_CHUNK_LEN (256u * 1024u) /* bytes per content chunk */
#define B3TREE_CV_LEN 32u               /* bytes per chaining value / id */
#define B3TREE_ID_LEN 32u

/* Number of chunks of a blob of total_len bytes: max(1, ceil(len / 256 KiB)). */
uint64_t b3tree_nchunks(uint64_t total_len);
/* Length of chunk index of a blob of total_len bytes (0 if index is out of
 * range, and 0 for the single chunk of the empty blob). */
uint64_t b3tree_chunk_size(uint64_t total_len, uint64_t index);

/*
 * CV of one chunk: len bytes (1..256 KiB; 0 allowed only for the only chunk)
 * that start at chunk `index` of the blob. is_only_chunk: nonzero when the
 * blob has a single chunk; the result is then the root hash (= content id).
 * Every chunk but the last must be exactly 256 KiB; the caller knows which
 * one is last. Returns 0, or -EINVAL (len out of range, or index > 0 with
 * is_only_chunk).
 */
int b3tree_chunk_cv(const uint8_t *chunk, size_t len, uint64_t index, int is_only_chunk,
		    uint8_t out[B3TREE_CV_LEN]);

/*
 * CV list of a whole in-memory blob: writes b3tree_nchunks(len) * 32 bytes
 * to out_cvs (caller-allocated). Returns 0 or -EINVAL (buf NULL with len > 0).
 */
int b3tree_chunk_cvs(const uint8_t *buf, size_t len, uint8_t *out_cvs);

/*
 * Content id from a CV list of nchunks (>= 1) CVs: the single CV itself when
 * nchunks is 1, else the BLAKE3 root over the CVs. Returns 0 or -EINVAL.
 */
int b3tree_root(const uint8_t *cvs, uint64_t nchunks, uint8_t out[B3TREE_ID_LEN]);

/*
 * Check a CV list received from anywhere against a trusted content id and
 * blob length. Returns 0 when it proves out; -EINVAL when nchunks is not
 * b3tree_nchunks(total_len) (or cvs is NULL); -EBADMSG when the root does
 * not match the content id.
 */
int b3tree_verify_cvs(const uint8_t *cvs, uint64_t nchunks, uint64_t total_len,
		      const uint8_t content_id[B3TREE_ID_LEN]);

/*
 * Check one chunk against its CV (from a verified CV list). len must be
 * b3tree_chunk_size(total_len, index). Returns 0, -EINVAL (index or len
 * wrong) or -EBADMSG (content does not hash to cv).
 */
int b3tree_verify_chunk(const uint8_t cv[B3TREE_CV_LEN], uint64_t total_len, uint64_t index,
			const uint8_t *chunk, size_t len);

/* ------------------------------------------------------------------------
 * Chunk store: blobs on disk under <dir>/blobs/<first 2 hex>/<64 hex>,
 * partial downloads as <64 hex>.part, index in LMDB (see docs/CONTENT.md).
 *
 * Thread safety: every call may be made from any thread. Mutations
 * (add, open_partial, write_chunk's index update, delete, mark bad) are
 * serialised by a mutex inside the handle; reads take only an LMDB read
 * transaction and pread(2).
 */

struct store;
struct cstore;

enum cstore_state {
	CSTORE_PARTIAL = 1,  /* download in progress; verified chunks in a bitmap */
	CSTORE_COMPLETE = 2, /* every chunk present and verified */
	CSTORE_BAD = 3,      /* failed re-verification: never served, delete it */
};

/* Default quota: 10 GiB, a modest share of a seed host's disk; operators
 * raise it. */
#define CSTORE_DEFAULT_QUOTA (10ull << 30)
/* Default largest blob: 64 GiB = 262144 chunks, so the CV list record is at
 * most 8 MiB and the bitmap 32 KiB (LMDB map defaults to 1 GiB). */
#define CSTORE_DEFAULT_MAX_BLOB (64ull << 30)
/* Default bound on index entries: 65536 blobs. */
#define CSTORE_DEFAULT_MAX_BLOBS 65536u

struct cstore_opts {
	struct store *store;    /* open LMDB store (caller-owned, outlives the cstore) */
	const char *dir;        /* state directory; blobs go to <dir>/blobs (0700) */
	uint64_t quota_bytes;   /* 0 = CSTORE_DEFAULT_QUOTA; sum of blob sizes,
				 * partial downloads counted at full size */
	uint64_t max_blob_size; /* 0 = CSTORE_DEFAULT_MAX_BLOB */
	uint32_t max_blobs;     /* 0 = CSTORE_DEFAULT_MAX_BLOBS */
	int no_sync;            /* skip fdatasync after each chunk write and add
				 * (tests, benchmarks); default syncs so a
				 * verified bit never outlives its data */
	int direct_io;          /* chunk writes and chunk reads bypass the page
				 * cache (O_DIRECT through a reused aligned
				 * buffer) where the file system allows it;
				 * falls back to buffered I/O by itself */
	/* Called (without the store's lock) when an add or a new partial
	 * download of need bytes would pass the quota or the entry bound,
	 * before the store refuses it: the owner may delete entries to make
	 * room (weftd: unpinned blobs, docs/CONTENT.md "Pins and
	 * eviction"). Returns how many entries it deleted; the reservation is
	 * tried once more either way. NULL: no eviction. */
	int (*make_room)(void *arg, uint64_t need);
	void *room_arg;
	/* Chunks of complete blobs verified once while their file is
	 * unchanged are read back without a second BLAKE3 pass
	 * (docs/CONTENT.md "Chunks verified once"); no_trust verifies every
	 * read. A file changed within trust_settle_ms (0 =
	 * CSTORE_TRUST_SETTLE_MS) is not trusted yet. */
	int no_trust;
	uint32_t trust_settle_ms;
	uint32_t trust_bits_max; /* bytes of verified-chunk bitmaps kept (0 =
				  * CSTORE_TRUST_BITS_MAX, 4 MiB) */
	/* Chunks kept in memory once verified and written, served from
	 * there with no disk read and no second BLAKE3 pass (docs/CONTENT.md
	 * "Chunks kept in memory"): < 0 none, 0 CSTORE_HOT_CHUNKS, else the
	 * count (at most CSTORE_HOT_CHUNKS_MAX), 256 KiB each. */
	int hot_chunks;
};
#define CSTORE_TRUST_SETTLE_MS 2000u
#define CSTORE_HOT_CHUNKS 128
#define CSTORE_HOT_CHUNKS_MAX 1024

struct cstore_info {
	uint8_t id[B3TREE_ID_LEN];
	uint64_t size;      /* blob length in bytes */
	uint64_t nchunks;   /* b3tree_nchunks(size) */
	uint64_t have;      /* chunks verified and on disk */
	uint64_t added;     /* wall clock seconds when the entry was created */
	uint32_t state;     /* enum cstore_state */
};

/*
 * Open the chunk store. Creates <dir>/blobs and three LMDB databases
 * (cstore_idx, cstore_cvs, cstore_bits). Checks every index record: a
 * record that does not decode, whose CV list does not prove out against its
 * id, or whose file is missing is dropped (and its files removed) with a
 * warning; partial files are reconciled with their bitmaps. Computes usage.
 * Errors: -EINVAL (opts), -ENOMEM, -errno from the file system or store.
 */
int cstore_new(struct cstore **out, const struct cstore_opts *opts);
/* NULL-safe. */
void cstore_free(struct cstore *cs);
/* 1 while chunk I/O goes through O_DIRECT (opts.direct_io and the file
 * system has not refused it), else 0. */
int cstore_direct_io(struct cstore *cs);

/*
 * Add a regular file: copied (reflinked when the file system can) into the
 * store, then hashed from the copy, so what is stored is what was hashed.
 * id_out receives the content id. Adding content already complete is a
 * no-op returning 0; adding content that is a partial download completes it.
 * Errors: -ENOSPC quota would be exceeded (logged with the figures),
 * -ENFILE max_blobs reached, -EFBIG larger than max_blob_size, -EINVAL not a
 * regular file, -EIO the file changed while being copied, -errno from I/O.
 */
int cstore_add_file(struct cstore *cs, const char *path, uint8_t id_out[B3TREE_ID_LEN]);
/* Same from memory. */
int cstore_add_buf(struct cstore *cs, const uint8_t *buf, size_t len,
		   uint8_t id_out[B3TREE_ID_LEN]);

/*
 * A transform applied to a source file chunk by chunk on the way into the
 * store (a private share's encryption): the stored blob is out_size bytes,
 * its chunk i made by fn from source bytes [i * in_chunk, +in_len) (the
 * last chunk's in_len the rest of in_size, possibly 0); fn writes exactly
 * out_len bytes (B3TREE_CHUNK_LEN, the last one shorter) and returns 0 or
 * -errno. The source never reaches the store's files; what is hashed is
 * what was stored. in_chunk at most B3TREE_CHUNK_LEN.
 */
struct cstore_xform {
	uint64_t in_size, out_size;
	size_t in_chunk;
	int (*fn)(void *arg, uint64_t index, const uint8_t *in, size_t in_len, uint8_t *out,
		  size_t out_len);
	void *arg;
};
/* cstore_add_file of the transform of the regular file open at fd (the
 * caller's, of in_size bytes: a file that grew or shrank is -EIO). Errors
 * of cstore_add_file, -EINVAL (chunk counts of in and out differ), fn's. */
int cstore_add_fd_xform(struct cstore *cs, int fd, const struct cstore_xform *x,
			uint8_t id_out[B3TREE_ID_LEN]);

/*
 * Start (or resume) a download of content id of size bytes with its CV list
 * (nchunks * 32 bytes), checked here with b3tree_verify_cvs. Reserves size
 * bytes of quota and creates the .part file. If the download already exists
 * (partial or complete) the call succeeds without change (the CV list must
 * still prove out). Errors: -EINVAL / -EBADMSG (CV list, see
 * b3tree_verify_cvs), -ENOSPC, -ENFILE, -EFBIG, -errno.
 */
int cstore_open_partial(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t size,
			const uint8_t *cvs, uint64_t nchunks);

/*
 * Write chunk index of a partial download. The data is checked against its
 * CV first: a chunk that does not match is rejected with -EBADMSG and
 * nothing is written. Returns 0 (written, or already present), 1 (written
 * and the blob is now complete: renamed to its final name), -ENOENT (no such
 * download), -EINVAL (index or len wrong), -EBADMSG, -EIO (entry is bad),
 * -errno.
 */
int cstore_write_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
		       const uint8_t *buf, size_t len);

/*
 * cstore_write_chunk in two steps, so that one sync covers many chunks:
 * put checks the chunk against its CV and writes it, without a sync and
 * without setting its bit (it is neither held, nor served, nor trusted
 * after a restart); commit syncs the blob's file once (unless no_sync)
 * and sets the bits of the n chunks put before in one transaction.
 * put returns 0 (written, or already present) or the errors of
 * cstore_write_chunk; commit returns 1 when the blob became complete, 0,
 * -ENOENT, -EINVAL (an index out of range), -EIO or -errno.
 */
int cstore_put_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
		     const uint8_t *buf, size_t len);
int cstore_commit_chunks(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], const uint64_t *idx,
			 size_t n);
/*
 * cstore_put_chunk for a chunk in a buffer its caller gives away: the
 * chunk is len bytes at (uint8_t *)*alloc + off, in an allocation of alen
 * bytes (malloc'ed or posix_memalign'ed: free()). Once the chunk is
 * verified and written the store keeps it in memory without a copy when
 * it can (hot_chunks; room for B3TREE_CHUNK_LEN from off): it takes the
 * allocation, and *alloc becomes the allocation of the chunk it no longer
 * keeps when that has the same alen and off, else a spare buffer of that
 * shape (one a loan gave back), else NULL (the caller's now: reuse it or
 * free it). Otherwise (an error, no memory cache, the chunk
 * kept already) *alloc is unchanged and still the caller's. Returns what
 * cstore_put_chunk does, or -EINVAL (no buffer, len beyond it).
 */
int cstore_put_chunk_give(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
			  void **alloc, size_t alen, size_t off, size_t len);
/*
 * cstore_put_chunk_give whose write waits for the blob's next
 * cstore_commit_chunks, which writes every chunk waiting for it in one
 * batch (docs/CONTENT.md "Writes in batches"): the chunk is checked
 * against its CV now (the errors of cstore_put_chunk_give), and when the
 * store takes it to wait (O_DIRECT in use, the chunk aligned for it, room
 * among CSTORE_DEFER_MAX) *alloc becomes a spare buffer of its shape or
 * NULL; otherwise it is written now as cstore_put_chunk_give does. A
 * chunk waiting is neither held nor served until its commit; one never
 * committed (the process ended first) is fetched again, as a chunk put and
 * not committed always was.
 */
int cstore_put_chunk_later(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
			   void **alloc, size_t alen, size_t off, size_t len);
/*
 * A second file the commits write to (a download's copy for its user,
 * written as the chunks arrive: docs/CONTENT.md "The user's copy written
 * as it arrives"). cstore_commit_chunks_tee writes each chunk waiting for
 * the commit (cstore_put_chunk_later) to fd as well, at its offset, from
 * the buffer it was verified in, in the same submission as the store's
 * own writes; the commit waits only for its own, and a tee write sets the
 * chunk's bit in bits (nbits: the blob's chunks; count: bits set) when a
 * later commit or cstore_tee_drain reaps it whole. A chunk written any
 * other way (put without waiting, written early for lack of room, a write
 * to fd refused or short) gets no bit: the tee's owner copies those
 * itself. fd may be O_DIRECT; the owner opens it, and reads the bits,
 * syncs, closes or frees it only after cstore_tee_drain.
 */
struct cstore_tee {
	int fd;
	uint8_t *bits;
	uint64_t nbits, count;
};
int cstore_commit_chunks_tee(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN],
			     const uint64_t *idx, size_t n, struct cstore_tee *tee);
/* Wait for tee's writes still out (at most CSTORE_DEFER_MAX in a store). */
void cstore_tee_drain(struct cstore *cs, struct cstore_tee *tee);

/*
 * Read chunk index for serving, into buf (cap >= its size); *len gets the
 * size. The chunk is re-verified against its CV, unless it is a chunk of a
 * complete blob the store verified before and the blob's file has not
 * changed since (dev, inode, size, mtime, ctime; and one such read in 64
 * verified anyway): on mismatch a complete blob's chunk is read again
 * (buffered, a fresh open) and, when that read does not verify either,
 * the blob is marked CSTORE_BAD and never served again (logged); a partial one
 * forgets that chunk (to be fetched again). Returns 0, -ENOENT (unknown id
 * or chunk not yet downloaded), -EINVAL (index), -ENOBUFS (cap), -EIO
 * (verification failed, or the entry is bad), -EBADMSG (hostile index
 * record), -errno.
 */
int cstore_read_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
		      uint8_t *buf, size_t cap, size_t *len);

/*
 * The same checks and answers as cstore_read_chunk, from memory only:
 * 0 when the chunk was among those kept in memory (copied into buf),
 * -EWOULDBLOCK when serving it needs a file read (nothing read), else
 * cstore_read_chunk's errors. Never touches a file: what an engine worker
 * calls before it hands the read to a thread that may wait on the disk.
 */
int cstore_read_chunk_mem(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
			  uint8_t *buf, size_t cap, size_t *len);
/*
 * The same checks as cstore_read_chunk_mem, without a copy: 0 when the
 * chunk is kept in memory, *data (*len bytes, verified when it was kept)
 * lent until cstore_unlend(*ref), which any thread may call once it no
 * longer reads them (the bytes never change meanwhile); -EWOULDBLOCK when
 * it is not kept (nothing lent: read it); else cstore_read_chunk's errors.
 */
int cstore_lend_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index,
		      const uint8_t **data, size_t *len, void **ref);
void cstore_unlend(void *ref);

/* Chunk reads so far that were hashed (verified), that were not (trusted:
 * verified before, file unchanged) and that were copied from the chunks
 * kept in memory (no disk read). Any pointer may be NULL. */
void cstore_read_stats(struct cstore *cs, uint64_t *verified, uint64_t *trusted,
		       uint64_t *memory);
/* Complete blobs' chunks read a second time because the first read did
 * not verify (cstore_read_chunk). NULL-safe. */
uint64_t cstore_reads_retried(struct cstore *cs);
/* Of the reads from memory, those lent without a copy (cstore_lend_chunk). */
uint64_t cstore_reads_lent(struct cstore *cs);
#ifdef WEFT_TEST_HOOKS
/* Test hook: the next verified read is taken as not verifying (its second
 * read decides). */
void cstore_test_fail_next_read(struct cstore *cs);
/* Test hook: every file read of cstore_read_chunk waits ms first (a slow
 * disk); 0 = none. */
void cstore_test_slow_reads(struct cstore *cs, unsigned int ms);
#endif

/* Entry of id. Returns 0, -ENOENT or -EBADMSG (hostile record). */
int cstore_info(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], struct cstore_info *info);

/* Copy of the CV list of id (malloc'd, caller frees; *n chunks). Returns 0,
 * -ENOENT, -ENOMEM or -EBADMSG. */
int cstore_cvs(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint8_t **cvs, uint64_t *n);

/* 1 if chunk index of id is present and verified, 0 if not, -ENOENT if id
 * is unknown, -EINVAL if index is out of range. */
int cstore_has_chunk(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], uint64_t index);

/* Entry of id (into *info) and its verified-chunk bitmap in one
 * transaction: bit i % 8 of byte i / 8 set when chunk i is held (all of
 * them for a complete blob; bits past nchunks zero) into bits, which holds
 * cap bytes. Returns 0, -ENOENT, -EIO (marked bad), -ENOBUFS (cap under
 * ceil(nchunks / 8)) or -EBADMSG. */
int cstore_bitmap(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], struct cstore_info *info,
		  uint8_t *bits, size_t cap);

/* Call fn for every entry in id order; fn returns 0 to go on, >0 to stop
 * (returned), <0 to abort (returned). Records that fail validation are
 * skipped. */
typedef int (*cstore_list_fn)(void *arg, const struct cstore_info *info);
int cstore_list(struct cstore *cs, cstore_list_fn fn, void *arg);

/* Remove id (index records and files) and release its quota. Returns 0 or
 * -ENOENT. */
int cstore_delete(struct cstore *cs, const uint8_t id[B3TREE_ID_LEN]);

/* Bytes counted against the quota (including reservations), the quota,
 * and the number of entries. Any pointer may be NULL. */
void cstore_usage(struct cstore *cs, uint64_t *used, uint64_t *quota, uint32_t *blobs);

/* Path of the blob file of id (complete name, or .part when partial) into
 * buf. Returns 0, -ENAMETOOLONG. No existence check. */
int cstore_path(const struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], int partial, char *buf,
		size_t len);

#endif
