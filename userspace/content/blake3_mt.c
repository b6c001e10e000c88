// SPDX-License-Identifier: MIT
/*
 * Multi-threaded BLAKE3: the input is cut exactly as blake3_hasher_update()
 * cuts it (power-of-two, chunk-aligned subtrees, largest first), each
 * subtree into pieces of at most PIECE_CHUNKS chunks. Threads take pieces
 * from a shared atomic index; each piece's CV lands in its own slot, so the
 * result does not depend on which thread ran what. The calling thread then
 * merges the pieces of each subtree (a power of two of them) and pushes the
 * subtree onto the hasher as update() would.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "content/blake3_impl.h"

/*
 * Piece size: 256 chunks (256 KiB) is ~50 us of work per piece, long enough
 * to make the shared counter free, short enough to balance threads at the
 * end of a 1 GiB input (4096 pieces).
 */
#define PIECE_CHUNKS 256u

struct mt_piece {
	const uint8_t *in;
	size_t len;
	uint64_t counter;
};

struct mt_job {
	const struct mt_piece *pieces;
	size_t n;
	uint8_t *cvs;
	const uint32_t *key;
	uint8_t flags;
	unsigned int backend;
	size_t next; /* atomic */
};

static void *mt_worker(void *arg)
{
	struct mt_job *job = arg;
	size_t i;

	while ((i = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED)) < job->n) {
		const struct mt_piece *p = &job->pieces[i];

		blake3_subtree_cv(job->backend, p->in, p->len, job->key, p->counter, job->flags,
				  job->cvs + 32 * i);
	}
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

int blake3_hasher_update_mt(struct blake3_hasher *h, const void *in, size_t len,
			    unsigned int threads)
{
	const uint8_t *p = in;
	uint64_t sub_chunks[64], counter;
	size_t nsub = 0, npieces = 0, pos = 0, i, k, fill;
	struct mt_piece *pieces = NULL;
	pthread_t tids[BLAKE3_MT_MAX_THREADS];
	unsigned int started = 0, t;
	struct mt_job job;
	uint8_t *cvs = NULL, *tmp = NULL;

	if (!in && len)
		return -EINVAL;
	threads = mt_threads(threads);
	if (threads < 2 || len < BLAKE3_MT_MIN_LEN) {
		blake3_hasher_update(h, in, len);
		return 0;
	}
	/* Top up a partly filled chunk so the rest starts on a chunk boundary. */
	fill = (BLAKE3_CHUNK_LEN - (size_t)h->chunk.blocks_done * BLAKE3_BLOCK_LEN -
		h->chunk.buf_len) % BLAKE3_CHUNK_LEN;
	if (fill > len)
		fill = len;
	blake3_hasher_update(h, p, fill);
	p += fill;
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
	if (npieces < 2)
		goto serial;
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
			pieces[k].in = p + pos;
			pieces[k].len = (size_t)step * BLAKE3_CHUNK_LEN;
			pieces[k].counter = counter + c;
			pos += pieces[k].len;
		}
		counter += n;
	}

	job = (struct mt_job){ .pieces = pieces, .n = npieces, .cvs = cvs, .key = h->key,
			       .flags = h->flags, .backend = h->backend, .next = 0 };
	if (threads > npieces)
		threads = (unsigned int)npieces;
	for (t = 1; t < threads; t++) {
		if (pthread_create(&tids[started], NULL, mt_worker, &job))
			break; /* fewer helpers; the calling thread still finishes the queue */
		started++;
	}
	mt_worker(&job);
	for (t = 0; t < started; t++)
		pthread_join(tids[t], NULL);

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
	blake3_hasher_update(h, p + pos, len - pos);
	free(pieces);
	free(cvs);
	free(tmp);
	return 0;

serial:
	free(pieces);
	free(cvs);
	free(tmp);
	blake3_hasher_update(h, p, len);
	return 0;
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
