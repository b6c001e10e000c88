/* SPDX-License-Identifier: MIT */
/*
 * The chunk store fixture shared by test_content_chunkstore.c and
 * test_content_cstore_mem.c: a store in a fresh directory (opened by the
 * test with its options), blobs of seeded bytes, reads compared. Header-
 * only, as dht_krpc_fx.h.
 */
#ifndef WEFT_TEST_CSTORE_FX_H
#define WEFT_TEST_CSTORE_FX_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "content/chunkstore_int.h"
#include "testutil.h"
#include "weft/blake3.h"
#include "weft/chunk.h"
#include "weft/store.h"

#define K B3TREE_CHUNK_LEN

struct fx {
	char *dir;
	struct store *st;
	struct cstore *cs;
	struct cstore_opts o;
	size_t map_size; /* 0: 64 MiB */
};

static inline void fx_open(struct fx *f)
{
	struct store_opts so = { .dir = f->dir, .map_size = f->map_size ? f->map_size : 64 << 20 };

	assert_int_equal(store_new(&f->st, &so), 0);
	f->o.store = f->st;
	f->o.dir = f->dir;
	assert_int_equal(cstore_new(&f->cs, &f->o), 0);
}

static inline void fx_close(struct fx *f)
{
	cstore_free(f->cs);
	store_free(f->st);
	f->cs = NULL;
	f->st = NULL;
}

static inline int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || !(f->dir = tu_tmpdir()))
		return -1;
	f->o.no_sync = 1; /* tests that exercise the fsync path clear it */
	f->o.hot_chunks = -1; /* disk reads; test_hot_chunks turns them on */
	*state = f;
	return 0;
}

/* The same tests with direct I/O: O_DIRECT where the test directory's
 * file system allows it, the buffered fallback where it does not. */
static inline int setup_direct(void **state)
{
	struct fx *f;

	if (setup(state))
		return -1;
	f = *state;
	f->o.direct_io = 1;
	return 0;
}

/* Does dir's file system take an aligned O_DIRECT write? */
static inline int fs_direct(const char *dir)
{
	char p[4096];
	void *b = NULL;
	int fd, ok;

	snprintf(p, sizeof(p), "%s/dio-probe", dir);
	fd = open(p, O_WRONLY | O_CREAT | O_DIRECT, 0600);
	if (fd < 0)
		return 0;
	assert_int_equal(posix_memalign(&b, 4096, 4096), 0);
	memset(b, 0, 4096);
	ok = pwrite(fd, b, 4096, 0) == 4096;
	close(fd);
	unlink(p);
	free(b);
	return ok;
}

static inline int teardown(void **state)
{
	struct fx *f = *state;

	fx_close(f);
	tu_rmrf_free(f->dir);
	free(f);
	return 0;
}

static inline uint8_t *blob(size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len ? len : 1);

	assert_non_null(b);
	tu_fill(b, len, seed);
	return b;
}

/* Read every chunk back and compare with b. */
static inline void read_all(struct cstore *cs, const uint8_t *id, const uint8_t *b, size_t len)
{
	uint8_t *buf = malloc(K);
	uint64_t n = b3tree_nchunks(len);

	assert_non_null(buf);
	for (uint64_t i = 0; i < n; i++) {
		size_t got = 12345;

		assert_int_equal(cstore_read_chunk(cs, id, i, buf, K, &got), 0);
		assert_int_equal(got, b3tree_chunk_size(len, i));
		if (got)
			assert_memory_equal(buf, b + i * K, got);
	}
	free(buf);
}

/* A chunk 4096 bytes into an aligned allocation of 4096 + K bytes (a
 * download's answer buffer, as an O_DIRECT write wants it). */
static inline void *give_buf(const uint8_t *chunk)
{
	void *p = NULL;

	assert_int_equal(posix_memalign(&p, 4096, 4096 + K), 0);
	memcpy((uint8_t *)p + 4096, chunk, K);
	return p;
}

/* Flip one byte of the file at path (a disk that changed the data, or
 * another program writing it). 30 ms first: past the file timestamp tick
 * of the store's own last write, within which another writer's change
 * cannot be told from the store's (chunkstore_trust.c; Linux before 6.13
 * stamps files from a clock of one tick, up to 10 ms). */
static inline void corrupt(const char *path, off_t off)
{
	int fd;
	uint8_t c;

	usleep(30 * 1000);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

#endif
