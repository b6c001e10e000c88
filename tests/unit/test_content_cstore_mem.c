// SPDX-License-Identifier: MIT
/*
 * The chunk store's memory of what it wrote: chunks kept in memory
 * (chunkstore_hot.c) and blob files kept open (chunkstore_files.c), with
 * buffered and direct I/O.
 */
#include <errno.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "cstore_fx.h"

/* Chunks kept in memory (chunkstore_hot.c, docs/CONTENT.md "Chunks kept
 * in memory"): a chunk verified and written by cstore_put_chunk is read
 * back from memory (no disk read, no hash: counted as memory), even when
 * its file is damaged afterwards, since what is served is what was
 * verified; not before its commit; the least recently used of hot_chunks
 * is replaced, and a replaced chunk is read from the disk and verified
 * again (the damage found); a bad put keeps nothing; delete forgets the
 * blob; the buffers go after CSTORE_HOT_IDLE_TICKS idle ticks; a bad
 * count is refused. */
static void test_hot_chunks(void **state)
{
	struct fx *f = *state;
	size_t len = 4 * K, got;
	uint8_t *b = blob(len, 9), id[32], cvs[4 * 32], *buf = malloc(K);
	const uint64_t all[4] = {0, 1, 2, 3};
	uint64_t v, t, m;
	char path[4096];

	assert_non_null(buf);
	f->o.hot_chunks = CSTORE_HOT_CHUNKS_MAX + 1;
	assert_int_equal(store_new(&f->st, &(struct store_opts){.dir = f->dir, .map_size = 64 << 20}), 0);
	f->o.store = f->st;
	f->o.dir = f->dir;
	assert_int_equal(cstore_new(&f->cs, &f->o), -EINVAL);
	store_free(f->st);
	f->st = NULL;
	f->cs = NULL;
	f->o.hot_chunks = 2;
	fx_open(f);
	blake3_hash(b, len, id, 32);
	assert_int_equal(b3tree_chunk_cvs(b, len, cvs), 0);
	assert_int_equal(cstore_open_partial(f->cs, id, len, cvs, 4), 0);
	assert_int_equal(cstore_put_chunk(f->cs, id, 0, b, K), 0);
	assert_int_equal(cstore_put_chunk(f->cs, id, 1, b + 2 * K, K), -EBADMSG);
	assert_int_equal(cn_hot_held(f->cs), 1); /* the bad one kept nothing */
	/* kept, but not readable before its commit */
	assert_int_equal(cstore_read_chunk(f->cs, id, 0, buf, K, &got), -ENOENT);
	assert_int_equal(cstore_commit_chunks(f->cs, id, all, 1), 0);
	assert_int_equal(cstore_path(f->cs, id, 1, path, sizeof(path)), 0);
	corrupt(path, 100);
	memset(buf, 0, K);
	assert_int_equal(cstore_read_chunk(f->cs, id, 0, buf, K, &got), 0);
	assert_int_equal(got, K);
	assert_memory_equal(buf, b, K);
	cstore_read_stats(f->cs, &v, &t, &m);
	assert_int_equal(v, 0);
	assert_int_equal(m, 1);
	/* two more: chunk 0 is the least recently used and goes */
	assert_int_equal(cstore_put_chunk(f->cs, id, 1, b + K, K), 0);
	assert_int_equal(cstore_put_chunk(f->cs, id, 2, b + 2 * K, K), 0);
	assert_int_equal(cstore_commit_chunks(f->cs, id, all + 1, 2), 0);
	assert_int_equal(cn_hot_held(f->cs), 2);
	assert_int_equal(cstore_read_chunk(f->cs, id, 2, buf, K, &got), 0);
	assert_memory_equal(buf, b + 2 * K, K);
	/* read from the disk now: verified, the damage found, forgotten */
	assert_int_equal(cstore_read_chunk(f->cs, id, 0, buf, K, &got), -EIO);
	assert_int_equal(cstore_has_chunk(f->cs, id, 0), 0);
	cstore_read_stats(f->cs, &v, &t, &m);
	assert_int_equal(v, 1);
	assert_int_equal(m, 2);
	/* idle: the buffers go, the reads go to the disk (verified) */
	for (int i = 0; i < CSTORE_HOT_IDLE_TICKS; i++)
		cn_hot_trim(f->cs);
	assert_int_equal(cn_hot_held(f->cs), 2);
	cn_hot_trim(f->cs);
	assert_int_equal(cn_hot_held(f->cs), 0);
	assert_int_equal(cstore_read_chunk(f->cs, id, 1, buf, K, &got), 0);
	assert_memory_equal(buf, b + K, K);
	cstore_read_stats(f->cs, &v, &t, &m);
	assert_int_equal(v, 2);
	assert_int_equal(m, 2);
	/* deleted: nothing kept is served for it */
	assert_int_equal(cstore_put_chunk(f->cs, id, 3, b + 3 * K, K), 0);
	assert_int_equal(cstore_commit_chunks(f->cs, id, all + 3, 1), 0);
	assert_int_equal(cstore_delete(f->cs, id), 0);
	assert_int_equal(cstore_read_chunk(f->cs, id, 3, buf, K, &got), -ENOENT);
	cstore_read_stats(f->cs, NULL, NULL, &m);
	assert_int_equal(m, 2);
	free(buf);
	free(b);
}

/* Blob files kept open (chunkstore_files.c, docs/CONTENT.md "Blob files
 * kept open"): a download's writes and the reads of its chunks reuse one
 * descriptor per blob and mode; an add over a partial blob, a delete and
 * a fresh .part drop them, so no read goes to a file the name no longer
 * names (the old .part's zeros would fail verification: a second read,
 * counted in cstore_reads_retried); at most CSTORE_FDS are open, none
 * after CSTORE_FDS_IDLE_TICKS trims unused. */
static void test_kept_fds(void **state)
{
	struct fx *f = *state;
	size_t len = 4 * K;
	uint8_t *b = blob(len, 21), id[32], id2[32], cvs[4 * 32], *buf = malloc(K);
	const uint64_t one[2] = {0, 1};
	uint64_t opens;
	size_t got;

	assert_non_null(buf);
	blake3_hash(b, len, id, 32);
	assert_int_equal(b3tree_chunk_cvs(b, len, cvs), 0);
	f->o.no_sync = 0; /* the commit's fdatasync goes through the kept descriptor too */
	fx_open(f);
	assert_int_equal(cstore_open_partial(f->cs, id, len, cvs, 4), 0);
	assert_int_equal(cstore_put_chunk(f->cs, id, 0, b, K), 0);
	opens = atomic_load(&f->cs->fds_opens);
	assert_true(opens >= 1);
	assert_int_equal(cstore_put_chunk(f->cs, id, 1, b + K, K), 0);
	assert_int_equal(cstore_commit_chunks(f->cs, id, one, 2), 0);
	assert_int_equal(atomic_load(&f->cs->fds_opens), opens); /* no second open to write */
	assert_int_equal(cstore_read_chunk(f->cs, id, 0, buf, K, &got), 0);
	assert_memory_equal(buf, b, K);
	opens = atomic_load(&f->cs->fds_opens);
	assert_int_equal(cstore_read_chunk(f->cs, id, 1, buf, K, &got), 0);
	assert_memory_equal(buf, b + K, K);
	assert_int_equal(atomic_load(&f->cs->fds_opens), opens); /* nor to read again */
	assert_true(cn_fds_held(f->cs) >= 1 && cn_fds_held(f->cs) <= 2);

	/* The whole blob added while its .part (chunks 2 and 3 zeros) is
	 * kept open: reads go to the added file, first time. */
	assert_int_equal(cstore_add_buf(f->cs, b, len, id2), 0);
	assert_memory_equal(id, id2, 32);
	assert_int_equal(cn_fds_held(f->cs), 0);
	read_all(f->cs, id, b, len);
	assert_int_equal(cstore_reads_retried(f->cs), 0);
	assert_true(cn_fds_held(f->cs) >= 1);

	/* Deleted: nothing of it kept open. */
	assert_int_equal(cstore_delete(f->cs, id), 0);
	assert_int_equal(cn_fds_held(f->cs), 0);
	assert_int_equal(cstore_read_chunk(f->cs, id, 0, buf, K, &got), -ENOENT);

	/* Bounded: more partial blobs written than descriptors kept. */
	for (unsigned int i = 0; i < CSTORE_FDS + 4; i++) {
		uint8_t *c = blob(K, 100 + i), cid[32], ccv[32];

		blake3_hash(c, K, cid, 32);
		assert_int_equal(b3tree_chunk_cvs(c, K, ccv), 0);
		assert_int_equal(cstore_open_partial(f->cs, cid, K, ccv, 1), 0);
		assert_int_equal(cstore_put_chunk(f->cs, cid, 0, c, K), 0);
		assert_true(cn_fds_held(f->cs) <= CSTORE_FDS);
		free(c);
	}
	assert_int_equal(cn_fds_held(f->cs), CSTORE_FDS);
	/* Out of descriptors: the kept ones nobody holds give way. */
	{
		struct rlimit old, low;
		int fill[256], nfill = 0, fd;
		uint8_t *c = blob(K, 999), cid[32], ccv[32];

		blake3_hash(c, K, cid, 32);
		assert_int_equal(b3tree_chunk_cvs(c, K, ccv), 0);
		assert_int_equal(cstore_open_partial(f->cs, cid, K, ccv, 1), 0);
		assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
		low = old;
		low.rlim_cur = 256;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
		while (nfill < 256 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
			fill[nfill++] = fd;
		assert_int_equal(errno, EMFILE);
		assert_int_equal(cstore_put_chunk(f->cs, cid, 0, c, K), 0);
		assert_true(cn_fds_held(f->cs) <= 1);
		while (nfill)
			close(fill[--nfill]);
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
		free(c);
	}
	/* Unused: closed after the idle ticks, not before. */
	/* the commits' syncs keep one each again */
	for (unsigned int i = 0; i < CSTORE_FDS; i++) {
		uint8_t *c = blob(K, 100 + i), cid[32];
		const uint64_t z = 0;

		blake3_hash(c, K, cid, 32);
		assert_int_equal(cstore_commit_chunks(f->cs, cid, &z, 1), 1);
		free(c);
	}
	assert_int_equal(cn_fds_held(f->cs), CSTORE_FDS);
	for (unsigned int i = 0; i + 1 < CSTORE_FDS_IDLE_TICKS; i++)
		cn_fds_trim(f->cs);
	assert_int_equal(cn_fds_held(f->cs), CSTORE_FDS);
	cn_fds_trim(f->cs);
	assert_int_equal(cn_fds_held(f->cs), 0);
	free(buf);
	free(b);
}

/* A store of two kept chunks and a partial blob of the 4 chunks at b
 * (its id into id). */
static void open_two_slots(struct fx *f, const uint8_t *b, uint8_t id[32])
{
	uint8_t cvs[4 * 32];

	f->o.hot_chunks = 2;
	fx_open(f);
	blake3_hash(b, 4 * K, id, 32);
	assert_int_equal(b3tree_chunk_cvs(b, 4 * K, cvs), 0);
	assert_int_equal(cstore_open_partial(f->cs, id, 4 * K, cvs, 4), 0);
}

/* A chunk whose buffer its caller gives away (cstore_put_chunk_give, a
 * download's answer buffer: the chunk 4096 bytes into an aligned
 * allocation, as an O_DIRECT write wants it): taken without a copy while
 * a slot is free (nothing given back), read back from memory; a bad chunk
 * and one kept already are not taken (the buffer stays the caller's); a
 * replaced chunk's buffer comes back when it has the giver's shape, and a
 * copied chunk's (another shape) is freed, nothing given back; a shape
 * without room for a chunk is refused or copied. ASan checks that no
 * buffer is freed twice or used after it went. */

static void test_hot_give(void **state)
{
	struct fx *f = *state;
	size_t len = 4 * K, got, alen = 4096 + K;
	uint8_t *b = blob(len, 21), id[32], *buf = malloc(K);
	const uint64_t all[4] = {0, 1, 2, 3};
	void *a0, *a1, *p;
	uint64_t m;

	assert_non_null(buf);
	open_two_slots(f, b, id);
	/* refused: no buffer, a length past it */
	p = NULL;
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 0, &p, alen, 4096, K), -EINVAL);
	a0 = give_buf(b);
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 0, &a0, alen, 4096, K + 1), -EINVAL);
	/* a chunk that does not verify: not taken */
	p = a0;
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 1, &a0, alen, 4096, K), -EBADMSG);
	assert_ptr_equal(a0, p);
	assert_int_equal(cn_hot_held(f->cs), 0);
	/* taken; a free slot: nothing back */
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 0, &a0, alen, 4096, K), 0);
	assert_null(a0);
	assert_int_equal(cn_hot_held(f->cs), 1);
	/* kept already: not taken */
	a1 = give_buf(b);
	p = a1;
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 0, &a1, alen, 4096, K), 0);
	assert_ptr_equal(a1, p);
	/* a copied chunk in the other slot (the plain put) */
	assert_int_equal(cstore_put_chunk(f->cs, id, 1, b + K, K), 0);
	assert_int_equal(cstore_commit_chunks(f->cs, id, all, 2), 0);
	assert_int_equal(cstore_read_chunk(f->cs, id, 0, buf, K, &got), 0);
	assert_int_equal(got, K);
	assert_memory_equal(buf, b, K);
	cstore_read_stats(f->cs, NULL, NULL, &m);
	assert_int_equal(m, 1);
	/* chunk 2 replaces chunk 0 (least recently used... chunk 1 was put
	 * after chunk 0, then chunk 0 read: chunk 1 goes, a copied one: its
	 * buffer freed, nothing back) */
	memcpy((uint8_t *)a1 + 4096, b + 2 * K, K);
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 2, &a1, alen, 4096, K), 0);
	assert_null(a1);
	/* chunk 3 replaces chunk 0, a given one: its buffer comes back */
	a1 = give_buf(b + 3 * K);
	p = a1;
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 3, &a1, alen, 4096, K), 0);
	assert_non_null(a1);
	assert_ptr_not_equal(a1, p);
	assert_memory_equal((uint8_t *)a1 + 4096, b, K); /* chunk 0's bytes, the caller's now */
	assert_int_equal(cstore_commit_chunks(f->cs, id, all + 2, 2), 1); /* complete */
	for (uint64_t i = 2; i < 4; i++) {
		assert_int_equal(cstore_read_chunk(f->cs, id, i, buf, K, &got), 0);
		assert_memory_equal(buf, b + i * K, K);
	}
	cstore_read_stats(f->cs, NULL, NULL, &m);
	assert_int_equal(m, 3);
	/* no room for a whole chunk after off (a short last chunk in a
	 * buffer its size): copied instead, the buffer stays the caller's */
	{
		uint8_t sid[32], scv[2 * 32];
		void *sb = NULL;

		blake3_hash(b, K + 100, sid, 32);
		assert_int_equal(b3tree_chunk_cvs(b, K + 100, scv), 0);
		assert_int_equal(cstore_open_partial(f->cs, sid, K + 100, scv, 2), 0);
		assert_int_equal(posix_memalign(&sb, 4096, 4096 + 100), 0);
		memcpy((uint8_t *)sb + 4096, b + K, 100);
		p = sb;
		assert_int_equal(cstore_put_chunk_give(f->cs, sid, 1, &sb, 4096 + 100, 4096, 100),
				 0);
		assert_ptr_equal(sb, p);
		free(sb);
		assert_int_equal(cstore_commit_chunks(f->cs, sid, all + 1, 1), 0);
		assert_int_equal(cstore_read_chunk(f->cs, sid, 1, buf, K, &got), 0);
		assert_int_equal(got, 100);
		assert_memory_equal(buf, b + K, 100);
		cstore_read_stats(f->cs, NULL, NULL, &m);
		assert_int_equal(m, 4); /* the copy, from memory */
	}
	free(a1);
	free(buf);
	free(b);
}

/* A chunk kept in memory lent without a copy (cstore_lend_chunk, what a
 * serving worker writes to its stream): its bytes stay as they were while
 * lent, through the replacement of its slot (the giver gets no lent
 * buffer back: the slot takes another), a delete, the idle trim and the
 * store's end; a chunk not kept is not lent; every loan given back frees
 * what it held (ASan: no leak, no use after free). */
static void test_hot_lend(void **state)
{
	struct fx *f = *state;
	size_t len = 4 * K, got = 0, alen = 4096 + K;
	uint8_t *b = blob(len, 33), id[32], *buf = malloc(K);
	const uint64_t all[4] = {0, 1, 2, 3};
	const uint8_t *d0, *d0b, *d1;
	void *a, *r0, *r0b, *r1;

	assert_non_null(buf);
	open_two_slots(f, b, id);
	a = give_buf(b);
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 0, &a, alen, 4096, K), 0);
	assert_null(a);
	assert_int_equal(cstore_put_chunk(f->cs, id, 1, b + K, K), 0);
	/* not before its commit; a chunk never put is not lent */
	assert_int_equal(cstore_lend_chunk(f->cs, id, 0, &d0, &got, &r0), -ENOENT);
	assert_int_equal(cstore_commit_chunks(f->cs, id, all, 2), 0);
	assert_int_equal(cstore_lend_chunk(f->cs, id, 0, &d0, &got, &r0), 0);
	assert_int_equal(got, K);
	assert_memory_equal(d0, b, K);
	assert_int_equal(cstore_lend_chunk(f->cs, id, 0, &d0b, &got, &r0b), 0);
	assert_ptr_equal(d0b, d0); /* the same bytes, no copy */
	assert_int_equal(cstore_lend_chunk(f->cs, id, 1, &d1, &got, &r1), 0);
	assert_memory_equal(d1, b + K, K);
	assert_int_equal(cstore_reads_lent(f->cs), 3);
	/* chunks 2 and 3 take both slots: the lent buffers are neither
	 * written nor handed back to the giver */
	assert_int_equal(cstore_put_chunk(f->cs, id, 2, b + 2 * K, K), 0);
	a = give_buf(b + 3 * K);
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 3, &a, alen, 4096, K), 0);
	assert_null(a);
	assert_int_equal(cstore_commit_chunks(f->cs, id, all + 2, 2), 1);
	assert_memory_equal(d0, b, K);
	assert_memory_equal(d1, b + K, K);
	for (uint64_t i = 2; i < 4; i++) {
		assert_int_equal(cstore_read_chunk(f->cs, id, i, buf, K, &got), 0);
		assert_memory_equal(buf, b + i * K, K);
	}
	/* not kept any more: read from the disk instead */
	assert_int_equal(cstore_lend_chunk(f->cs, id, 0, &d0b, &got, &r0b), -EWOULDBLOCK);
	cstore_unlend(r1); /* the last loan of chunk 1's buffer: freed */
	/* the store trims, then goes; the other loans still read their bytes */
	for (int i = 0; i <= CSTORE_HOT_IDLE_TICKS; i++)
		cn_hot_trim(f->cs);
	assert_int_equal(cn_hot_held(f->cs), 0);
	fx_close(f);
	assert_memory_equal(d0, b, K);
	cstore_unlend(r0);
	assert_memory_equal(d0, b, K);
	cstore_unlend(r0b);
	free(buf);
	free(b);
}

/* Spares: a give whose slot holds a lent buffer gets nothing back; when
 * that buffer's last loan comes back it is kept as a spare, and the next
 * give that gets no buffer back (the slot's was another shape) is handed
 * that spare, the same allocation, not a new one. The idle trim frees the
 * spares; a loan back after the store's end frees its buffer (ASan). */
static void test_hot_spares(void **state)
{
	struct fx *f = *state;
	size_t len = 4 * K, got = 0, alen = 4096 + K;
	uint8_t *b = blob(len, 34), id[32];
	const uint64_t all[4] = {0, 1, 2, 3};
	const uint8_t *d0, *d1;
	void *a, *a0, *r0, *r1;

	open_two_slots(f, b, id);
	a0 = a = give_buf(b);
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 0, &a, alen, 4096, K), 0);
	assert_null(a);
	assert_int_equal(cstore_commit_chunks(f->cs, id, all, 1), 0);
	assert_int_equal(cstore_lend_chunk(f->cs, id, 0, &d0, &got, &r0), 0);
	assert_int_equal(cstore_put_chunk(f->cs, id, 1, b + K, K), 0); /* copied in */
	assert_int_equal(cstore_commit_chunks(f->cs, id, all + 1, 1), 0);
	/* chunk 2 takes chunk 0's slot (least recently used), lent: nothing
	 * comes back and there is no spare yet */
	a = give_buf(b + 2 * K);
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 2, &a, alen, 4096, K), 0);
	assert_null(a);
	assert_int_equal(cn_hot_spares(f->cs), 0);
	assert_memory_equal(d0, b, K);
	cstore_unlend(r0); /* the last loan: kept as a spare */
	assert_int_equal(cn_hot_spares(f->cs), 1);
	/* chunk 3 takes chunk 1's slot, a copied chunk's buffer (another
	 * shape, freed): the giver is handed the spare, chunk 0's allocation */
	a = give_buf(b + 3 * K);
	assert_int_equal(cstore_put_chunk_give(f->cs, id, 3, &a, alen, 4096, K), 0);
	assert_ptr_equal(a, a0);
	assert_int_equal(cn_hot_spares(f->cs), 0);
	free(a);
	assert_int_equal(cstore_commit_chunks(f->cs, id, all + 2, 2), 1);
	/* the idle trim frees the slots' buffers, none kept as a spare; a
	 * loan taken before it and back after the store's end frees its
	 * buffer then (ASan: no leak, no use after free) */
	assert_int_equal(cstore_lend_chunk(f->cs, id, 3, &d1, &got, &r1), 0);
	for (int i = 0; i <= CSTORE_HOT_IDLE_TICKS; i++)
		cn_hot_trim(f->cs);
	assert_int_equal(cn_hot_spares(f->cs), 0);
	assert_int_equal(cn_hot_held(f->cs), 0);
	fx_close(f);
	assert_memory_equal(d1, b + 3 * K, K);
	cstore_unlend(r1);
	free(b);
}

/* The buffers kept for reuse (chunkstore_pool.c): a take gets only its
 * shape, at most max are kept (one more freed), the idle call frees them
 * after its ticks without use, a close frees what is kept later, and a
 * reference held keeps the pool until the last goes (ASan: nothing leaked,
 * nothing freed twice). */
static void test_pool(void **state)
{
	struct cn_pool *p;
	void *a = malloc(100), *b = malloc(100), *c = malloc(200), *d = malloc(100);

	(void)state;
	assert_null(cn_pool_new(CN_POOL_MAX + 1));
	p = cn_pool_new(2);
	assert_non_null(p);
	assert_null(cn_pool_take(p, 100, 0));
	cn_pool_keep(p, a, 100, 0);
	cn_pool_keep(p, c, 200, 8);
	cn_pool_keep(p, b, 100, 0); /* a third: freed */
	assert_int_equal(cn_pool_count(p), 2);
	assert_null(cn_pool_take(p, 200, 0)); /* offset differs */
	assert_ptr_equal(cn_pool_take(p, 200, 8), c);
	assert_ptr_equal(cn_pool_take(p, 100, 0), a);
	assert_int_equal(cn_pool_count(p), 0);
	cn_pool_keep(p, a, 100, 0);
	cn_pool_idle(p, 2); /* a use since the last call */
	cn_pool_idle(p, 2);
	assert_int_equal(cn_pool_count(p), 1);
	cn_pool_idle(p, 2); /* two calls with no use: freed */
	assert_int_equal(cn_pool_count(p), 0);
	cn_pool_keep(p, c, 200, 8);
	cn_pool_ref(p); /* a buffer out on loan */
	cn_pool_drop(p, 1); /* the owner goes: c freed, the pool closed */
	cn_pool_unref(p);
	assert_int_equal(cn_pool_count(p), 0);
	cn_pool_keep(p, d, 100, 0); /* the loan back: freed */
	assert_int_equal(cn_pool_count(p), 0);
	cn_pool_unref(p);
	cn_pool_unref(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hot_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kept_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hot_give, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hot_lend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hot_spares, setup, teardown),
		cmocka_unit_test(test_pool),
		cmocka_unit_test_setup_teardown(test_hot_chunks, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_hot_give, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_kept_fds, setup_direct, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
