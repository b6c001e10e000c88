// SPDX-License-Identifier: MIT
/*
 * Chunk writes in batches (cstore_put_chunk_later, chunkstore_defer.c;
 * docs/CONTENT.md "Writes in batches"): a chunk is checked when put and
 * written by its blob's next commit with the others waiting; until then it
 * is neither held nor on the disk; a bad chunk or one waiting already is
 * not taken; no room writes the oldest blob's chunks first; a delete or
 * the store's end drops what waits (ASan: no leak, nothing freed twice).
 * Run with O_DIRECT where the test directory's file system takes it; where
 * it does not, the store writes each chunk when put (checked too).
 */
#include <errno.h>

#include "cstore_fx.h"

#define ALEN (4096 + K)

/* A partial blob of n chunks of b (its id into id). */
static void open_blob(struct fx *f, const uint8_t *b, size_t n, uint8_t id[32])
{
	uint8_t *cvs = malloc(n * 32);

	assert_non_null(cvs);
	blake3_hash(b, n * K, id, 32);
	assert_int_equal(b3tree_chunk_cvs(b, n * K, cvs), 0);
	assert_int_equal(cstore_open_partial(f->cs, id, n * K, cvs, n), 0);
	free(cvs);
}

/* Chunk i of id as the file holds it now (zeros while not written). */
static void file_chunk(struct fx *f, const uint8_t *id, uint64_t i, uint8_t *out)
{
	int fd = cn_blob_open(f->cs, id, CSTORE_PARTIAL, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, out, K, (off_t)(i * K)), (ssize_t)K);
	close(fd);
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void test_later(void **state)
{
	struct fx *f = *state;
	uint8_t *b = blob(4 * K, 71), id[32], *buf = malloc(K);
	const uint64_t idx[2] = {0, 1};
	int direct;
	uint64_t v0, t0, m0, v1, t1, m1;
	void *a0, *a1, *p;
	size_t got;

	assert_non_null(buf);
	f->o.hot_chunks = -1; /* reads from the disk: trusted, not hashed */
	f->o.no_sync = 0;
	fx_open(f);
	direct = cstore_direct_io(f->cs);
	open_blob(f, b, 4, id);
	/* refused: no buffer, a length past it */
	p = NULL;
	assert_int_equal(cstore_put_chunk_later(f->cs, id, 0, &p, ALEN, 4096, K), -EINVAL);
	a0 = give_buf(b);
	assert_int_equal(cstore_put_chunk_later(f->cs, id, 0, &a0, ALEN, 4096, K + 1), -EINVAL);
	/* a chunk that does not verify: not taken */
	p = a0;
	assert_int_equal(cstore_put_chunk_later(f->cs, id, 1, &a0, ALEN, 4096, K), -EBADMSG);
	assert_ptr_equal(a0, p);
	assert_int_equal(cn_defer_count(f->cs), 0);
	/* chunk 0 taken to wait (no cache: no spare to give back) */
	assert_int_equal(cstore_put_chunk_later(f->cs, id, 0, &a0, ALEN, 4096, K), 0);
	if (direct) {
		assert_null(a0);
		assert_int_equal(cn_defer_count(f->cs), 1);
		/* waiting: not held, not on the disk */
		assert_int_equal(cstore_read_chunk(f->cs, id, 0, buf, K, &got), -ENOENT);
		file_chunk(f, id, 0, buf);
		assert_true(all_zero(buf, K));
		/* put again while it waits: nothing taken */
		a1 = give_buf(b);
		p = a1;
		assert_int_equal(cstore_put_chunk_later(f->cs, id, 0, &a1, ALEN, 4096, K), 0);
		assert_ptr_equal(a1, p);
		assert_int_equal(cn_defer_count(f->cs), 1);
		memcpy((uint8_t *)a1 + 4096, b + K, K);
	} else {
		/* written now: the buffer stays the caller's */
		assert_int_equal(cn_defer_count(f->cs), 0);
		a1 = a0;
		memcpy((uint8_t *)a1 + 4096, b + K, K);
	}
	assert_int_equal(cstore_put_chunk_later(f->cs, id, 1, &a1, ALEN, 4096, K), 0);
	assert_int_equal(cn_defer_count(f->cs), direct ? 2 : 0);
	/* the commit writes both, then holds them */
	assert_int_equal(cstore_commit_chunks(f->cs, id, idx, 2), 0);
	assert_int_equal(cn_defer_count(f->cs), 0);
	for (uint64_t i = 0; i < 2; i++) {
		file_chunk(f, id, i, buf);
		assert_memory_equal(buf, b + i * K, K);
	}
	/* read back from the disk without a second hash: the store wrote
	 * them itself (chunkstore_trust.c) */
	cstore_read_stats(f->cs, &v0, &t0, &m0);
	for (uint64_t i = 0; i < 2; i++) {
		assert_int_equal(cstore_read_chunk(f->cs, id, i, buf, K, &got), 0);
		assert_int_equal(got, K);
		assert_memory_equal(buf, b + i * K, K);
	}
	cstore_read_stats(f->cs, &v1, &t1, &m1);
	assert_int_equal(v1 - v0 + t1 - t0, 2);
	assert_true(t1 - t0 >= 1); /* 1 in CSTORE_TRUST_SAMPLE hashed anyway */
	free(a1); /* NULL when taken */
	free(buf);
	free(b);
}

/* With the memory cache on: a written chunk's buffer goes to the cache
 * (read back from memory), and the buffer of the chunk it replaces comes
 * back as a spare for the next put. */
static void test_later_hot(void **state)
{
	struct fx *f = *state;
	uint8_t *b = blob(4 * K, 72), id[32], *buf = malloc(K);
	const uint64_t idx[4] = {0, 1, 2, 3};
	uint64_t m;
	size_t got;
	void *a;

	assert_non_null(buf);
	if (!fs_direct(f->dir)) {
		print_message("skipped: %s takes no O_DIRECT (nothing waits)\n", f->dir);
		free(buf);
		free(b);
		return;
	}
	f->o.hot_chunks = 2;
	fx_open(f);
	open_blob(f, b, 4, id);
	for (uint64_t i = 0; i < 2; i++) {
		a = give_buf(b + i * K);
		assert_int_equal(cstore_put_chunk_later(f->cs, id, i, &a, ALEN, 4096, K), 0);
		assert_null(a); /* no spare yet */
	}
	assert_int_equal(cstore_commit_chunks(f->cs, id, idx, 2), 0);
	assert_int_equal(cn_hot_held(f->cs), 2);
	for (uint64_t i = 0; i < 2; i++) {
		assert_int_equal(cstore_read_chunk(f->cs, id, i, buf, K, &got), 0);
		assert_memory_equal(buf, b + i * K, K);
	}
	cstore_read_stats(f->cs, NULL, NULL, &m);
	assert_int_equal(m, 2);
	/* chunks 2 and 3 replace 0 and 1 in the cache: their buffers spares */
	for (uint64_t i = 2; i < 4; i++) {
		a = give_buf(b + i * K);
		assert_int_equal(cstore_put_chunk_later(f->cs, id, i, &a, ALEN, 4096, K), 0);
		assert_null(a);
	}
	assert_int_equal(cstore_commit_chunks(f->cs, id, idx + 2, 2), 1); /* complete */
	assert_int_equal(cn_hot_spares(f->cs), 2);
	/* a spare of its shape goes to the next put (another blob's) */
	{
		uint8_t *c = blob(K, 75), cid[32];

		open_blob(f, c, 1, cid);
		a = give_buf(c);
		assert_int_equal(cstore_put_chunk_later(f->cs, cid, 0, &a, ALEN, 4096, K), 0);
		assert_non_null(a);
		assert_int_equal(cn_hot_spares(f->cs), 1);
		assert_int_equal(cstore_commit_chunks(f->cs, cid, idx, 1), 1);
		read_all(f->cs, cid, c, K);
		free(c);
	}
	read_all(f->cs, id, b, 4 * K);
	free(a);
	free(buf);
	free(b);
}

/* No room: the oldest blob's chunks are written (not committed) to make
 * it; their commit later finds nothing left to write. A delete drops the
 * chunks waiting; the store's end frees them, and they are not held after
 * a restart. */
static void test_later_full(void **state)
{
	struct fx *f = *state;
	const size_t n = CSTORE_DEFER_MAX;
	uint8_t *b = blob(n * K, 73), *c = blob(2 * K, 74), ida[32], idb[32];
	uint64_t *idx = calloc(n, sizeof(*idx));
	struct cstore_info in;
	void *a;

	assert_non_null(idx);
	if (!fs_direct(f->dir)) {
		print_message("skipped: %s takes no O_DIRECT (nothing waits)\n", f->dir);
		free(idx);
		free(b);
		free(c);
		return;
	}
	f->o.hot_chunks = -1;
	fx_open(f);
	open_blob(f, b, n, ida);
	open_blob(f, c, 2, idb);
	for (size_t i = 0; i < n; i++) {
		idx[i] = i;
		a = give_buf(b + i * K);
		assert_int_equal(cstore_put_chunk_later(f->cs, ida, i, &a, ALEN, 4096, K), 0);
		assert_null(a);
	}
	assert_int_equal(cn_defer_count(f->cs), n);
	a = give_buf(c);
	assert_int_equal(cstore_put_chunk_later(f->cs, idb, 0, &a, ALEN, 4096, K), 0);
	assert_null(a);
	assert_int_equal(cn_defer_count(f->cs), 1); /* blob a's written to make room */
	{
		uint8_t *fb = malloc(K);

		assert_non_null(fb);
		file_chunk(f, ida, n - 1, fb);
		assert_memory_equal(fb, b + (n - 1) * K, K);
		free(fb);
	}
	assert_int_equal(cstore_commit_chunks(f->cs, ida, idx, n), 1); /* complete */
	read_all(f->cs, ida, b, n * K);
	/* blob b's chunk 0 waits; deleted: dropped */
	assert_int_equal(cstore_delete(f->cs, idb), 0);
	assert_int_equal(cn_defer_count(f->cs), 0);
	/* a chunk waiting at the store's end: freed, not held after */
	open_blob(f, c, 2, idb);
	a = give_buf(c + K);
	assert_int_equal(cstore_put_chunk_later(f->cs, idb, 1, &a, ALEN, 4096, K), 0);
	assert_int_equal(cn_defer_count(f->cs), 1);
	fx_close(f);
	fx_open(f);
	assert_int_equal(cstore_info(f->cs, idb, &in), 0);
	assert_int_equal(in.state, CSTORE_PARTIAL);
	assert_int_equal(in.have, 0);
	free(idx);
	free(b);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_later, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_later_hot, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_later_full, setup_direct, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
