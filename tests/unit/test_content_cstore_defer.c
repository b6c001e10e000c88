// SPDX-License-Identifier: MIT
/*
 * Chunk writes in batches (cstore_put_chunk_later, chunkstore_defer.c;
 * docs/CONTENT.md "Writes in batches"): a chunk is checked when put, given
 * to the memory cache, and written by its blob's next commit with the
 * others waiting; until then it is neither held nor on the disk; a bad
 * chunk or one waiting already is not taken; no room writes the oldest
 * blob's chunks first; a delete or the store's end drops what waits
 * (ASan: no leak, nothing freed twice, no buffer reused while lent).
 * Without O_DIRECT (the test directory's file system, or the store's
 * choice) or without a memory cache, each chunk is written when put.
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

/* Chunks 0..n-1 of id read back and compared with b. */
static void read_all_n(struct cstore *cs, const uint8_t *id, const uint8_t *b, uint64_t n)
{
	uint8_t *buf = malloc(K);
	size_t got;

	assert_non_null(buf);
	for (uint64_t i = 0; i < n; i++) {
		assert_int_equal(cstore_read_chunk(cs, id, i, buf, K, &got), 0);
		assert_int_equal(got, K);
		assert_memory_equal(buf, b + i * K, K);
	}
	free(buf);
}

static void test_later(void **state)
{
	struct fx *f = *state;
	uint8_t *b = blob(6 * K, 71), id[32], *buf = malloc(K);
	const uint64_t idx[6] = {0, 1, 2, 3, 4, 5};
	uint64_t v0, t0, m0, v1, t1, m1;
	void *a0, *a1, *p;
	size_t got;

	assert_non_null(buf);
	f->o.hot_chunks = 2;
	f->o.no_sync = 0;
	fx_open(f);
	if (!cstore_direct_io(f->cs) || !fs_direct(f->dir)) {
		print_message("skipped: %s takes no O_DIRECT (nothing waits)\n", f->dir);
		free(buf);
		free(b);
		return;
	}
	open_blob(f, b, 6, id);
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
	/* chunk 0 taken (a free slot of the cache: nothing back), waiting */
	assert_int_equal(cstore_put_chunk_later(f->cs, id, 0, &a0, ALEN, 4096, K), 0);
	assert_null(a0);
	assert_int_equal(cn_defer_count(f->cs), 1);
	assert_int_equal(cn_hot_held(f->cs), 1);
	/* not held, not on the disk */
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
	assert_int_equal(cstore_put_chunk_later(f->cs, id, 1, &a1, ALEN, 4096, K), 0);
	assert_null(a1);
	assert_int_equal(cn_defer_count(f->cs), 2);
	/* the commit writes both, then holds them; read from memory */
	assert_int_equal(cstore_commit_chunks(f->cs, id, idx, 2), 0);
	assert_int_equal(cn_defer_count(f->cs), 0);
	for (uint64_t i = 0; i < 2; i++) {
		file_chunk(f, id, i, buf);
		assert_memory_equal(buf, b + i * K, K);
	}
	cstore_read_stats(f->cs, NULL, NULL, &m0);
	read_all_n(f->cs, id, b, 2);
	cstore_read_stats(f->cs, NULL, NULL, &m1);
	assert_int_equal(m1 - m0, 2);
	/* chunks 2 and 3 take the cache's two slots: the buffers of 0 and 1
	 * come back to the giver (lent no more once written) */
	for (uint64_t i = 2; i < 4; i++) {
		a0 = give_buf(b + i * K);
		assert_int_equal(cstore_put_chunk_later(f->cs, id, i, &a0, ALEN, 4096, K), 0);
		assert_non_null(a0);
		assert_memory_equal((uint8_t *)a0 + 4096, b + (i - 2) * K, K);
		free(a0);
	}
	assert_int_equal(cstore_commit_chunks(f->cs, id, idx + 2, 2), 0);
	/* 0 and 1 from the disk now, without a second hash: the store wrote
	 * them itself (chunkstore_trust.c; 1 in CSTORE_TRUST_SAMPLE hashed) */
	cstore_read_stats(f->cs, &v0, &t0, &m0);
	read_all_n(f->cs, id, b, 2);
	cstore_read_stats(f->cs, &v1, &t1, &m1);
	assert_int_equal(m1, m0);
	assert_int_equal(v1 - v0 + t1 - t0, 2);
	assert_true(t1 - t0 >= 1);
	/* the last two, and the blob is complete */
	for (uint64_t i = 4; i < 6; i++) {
		a0 = give_buf(b + i * K);
		assert_int_equal(cstore_put_chunk_later(f->cs, id, i, &a0, ALEN, 4096, K), 0);
		free(a0);
	}
	assert_int_equal(cstore_commit_chunks(f->cs, id, idx + 4, 2), 1);
	read_all(f->cs, id, b, 6 * K);
	free(buf);
	free(b);
}

/* Written when put: without O_DIRECT, or without a memory cache. */
static void test_later_now(void **state)
{
	struct fx *f = *state;
	uint8_t *b = blob(2 * K, 72), id[32], *buf = malloc(K);
	const uint64_t idx[2] = {0, 1};
	void *a;

	assert_non_null(buf);
	f->o.no_sync = 0;
	fx_open(f);
	open_blob(f, b, 2, id);
	for (uint64_t i = 0; i < 2; i++) {
		a = give_buf(b + i * K);
		assert_int_equal(cstore_put_chunk_later(f->cs, id, i, &a, ALEN, 4096, K), 0);
		assert_int_equal(cn_defer_count(f->cs), 0);
		file_chunk(f, id, i, buf); /* on the disk already */
		assert_memory_equal(buf, b + i * K, K);
		free(a); /* the caller's still (no cache) or what the cache gave back */
	}
	assert_int_equal(cstore_commit_chunks(f->cs, id, idx, 2), 1);
	read_all(f->cs, id, b, 2 * K);
	free(buf);
	free(b);
}

static int setup_nocache(void **state)
{
	int rc = setup_direct(state);

	if (!rc)
		((struct fx *)*state)->o.hot_chunks = -1;
	return rc;
}

static int setup_cache(void **state)
{
	int rc = setup(state);

	if (!rc)
		((struct fx *)*state)->o.hot_chunks = 2; /* buffered: no O_DIRECT */
	return rc;
}

/* No room: the oldest blob's chunks are written (not committed) to make
 * it; their commit later finds nothing left to write. A delete drops the
 * chunks waiting; the store's end ends their loans, and they are not held
 * after a restart. */
static void test_later_full(void **state)
{
	struct fx *f = *state;
	const size_t n = CSTORE_DEFER_MAX;
	uint8_t *b = blob(n * K, 73), *c = blob(2 * K, 74), ida[32], idb[32], *fb = malloc(K);
	uint64_t *idx = calloc(n, sizeof(*idx));
	struct cstore_info in;
	void *a;

	assert_non_null(idx);
	assert_non_null(fb);
	f->o.hot_chunks = CSTORE_DEFER_MAX + 8;
	fx_open(f);
	if (!cstore_direct_io(f->cs) || !fs_direct(f->dir)) {
		print_message("skipped: %s takes no O_DIRECT (nothing waits)\n", f->dir);
		goto out;
	}
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
	file_chunk(f, ida, n - 1, fb);
	assert_memory_equal(fb, b + (n - 1) * K, K);
	assert_int_equal(cstore_commit_chunks(f->cs, ida, idx, n), 1); /* complete */
	read_all(f->cs, ida, b, n * K);
	/* blob b's chunk 0 waits; deleted: dropped */
	assert_int_equal(cstore_delete(f->cs, idb), 0);
	assert_int_equal(cn_defer_count(f->cs), 0);
	/* a chunk waiting at the store's end: its loan ended, not held after */
	open_blob(f, c, 2, idb);
	a = give_buf(c + K);
	assert_int_equal(cstore_put_chunk_later(f->cs, idb, 1, &a, ALEN, 4096, K), 0);
	assert_int_equal(cn_defer_count(f->cs), 1);
	free(a);
	fx_close(f);
	fx_open(f);
	assert_int_equal(cstore_info(f->cs, idb, &in), 0);
	assert_int_equal(in.state, CSTORE_PARTIAL);
	assert_int_equal(in.have, 0);
out:
	free(fb);
	free(idx);
	free(b);
	free(c);
}

/* A commit with a tee writes the chunks waiting for it to the tee's file
 * too (O_DIRECT, at their offsets; reaped by the drain) and sets their
 * bits once each; chunks written when put get no bit, and a commit
 * without a tee writes nothing there. Then tee writes left out when the
 * store closes: their loans end (ASan: no leak). */
static void test_tee(void **state)
{
	struct fx *f = *state;
	const size_t n = 6;
	uint8_t *b = blob(n * K, 75), id[32], *fb = malloc(K), bits[1] = {0};
	const uint64_t idx[6] = {0, 1, 2, 3, 4, 5};
	struct cstore_tee tee = { .fd = -1, .bits = bits, .nbits = n };
	char path[512];
	void *a;

	assert_non_null(fb);
	f->o.hot_chunks = 8;
	f->o.no_sync = 0;
	fx_open(f);
	if (!cstore_direct_io(f->cs) || !fs_direct(f->dir)) {
		print_message("skipped: %s takes no O_DIRECT (nothing waits)\n", f->dir);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/copy", f->dir);
	tee.fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_DIRECT, 0644);
	assert_true(tee.fd >= 0);
	open_blob(f, b, n, id);
	/* 0 and 1 committed without the tee: nothing in its file */
	for (uint64_t i = 0; i < 2; i++) {
		a = give_buf(b + i * K);
		assert_int_equal(cstore_put_chunk_later(f->cs, id, i, &a, ALEN, 4096, K), 0);
		free(a);
	}
	assert_int_equal(cstore_commit_chunks(f->cs, id, idx, 2), 0);
	/* 4, 2, 3 in that order, committed with it */
	for (uint64_t k = 0; k < 3; k++) {
		uint64_t i = k ? k + 1 : 4;

		a = give_buf(b + i * K);
		assert_int_equal(cstore_put_chunk_later(f->cs, id, i, &a, ALEN, 4096, K), 0);
		free(a);
	}
	assert_int_equal(cstore_commit_chunks_tee(f->cs, id, idx + 2, 3, &tee), 0);
	/* the commit waited for its own writes only: the tee's are reaped
	 * (and their bits set) by a later commit or the drain */
	cstore_tee_drain(f->cs, &tee);
	assert_int_equal(tee.count, 3);
	assert_int_equal(bits[0], 0x1c);
	for (uint64_t i = 0; i < n; i++) {
		ssize_t got = pread(tee.fd, fb, K, (off_t)(i * K));

		if (i >= 2 && i <= 4) {
			assert_int_equal(got, (ssize_t)K);
			assert_memory_equal(fb, b + i * K, K);
		} else if (got > 0) {
			assert_true(all_zero(fb, (size_t)got)); /* a hole */
		}
	}
	/* a commit with nothing waiting (chunk 5 put to be written at once)
	 * sets no bit; the bits counted once */
	assert_int_equal(cstore_put_chunk(f->cs, id, 5, b + 5 * K, K), 0);
	assert_int_equal(cstore_commit_chunks_tee(f->cs, id, idx + 2, 4, &tee), 1);
	cstore_tee_drain(f->cs, &tee);
	assert_int_equal(tee.count, 3);
	assert_int_equal(bits[0], 0x1c);
	read_all(f->cs, id, b, n * K);
	/* a second blob's commit with its tee, not drained: the store's end
	 * waits for the writes and ends their loans */
	{
		uint8_t id2[32], *c = blob(2 * K, 76), bits2[1] = {0};
		struct cstore_tee t2 = { .fd = tee.fd, .bits = bits2, .nbits = 2 };

		open_blob(f, c, 2, id2);
		for (uint64_t i = 0; i < 2; i++) {
			a = give_buf(c + i * K);
			assert_int_equal(cstore_put_chunk_later(f->cs, id2, i, &a, ALEN, 4096, K), 0);
			free(a);
		}
		assert_int_equal(cstore_commit_chunks_tee(f->cs, id2, idx, 2, &t2), 1);
		fx_close(f);
		assert_true(t2.count <= 2);
		free(c);
	}
	close(tee.fd);
out:
	free(fb);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_later, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_later_now, setup_nocache, teardown),
		cmocka_unit_test_setup_teardown(test_later_now, setup_cache, teardown),
		cmocka_unit_test_setup_teardown(test_later_full, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_tee, setup_direct, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
