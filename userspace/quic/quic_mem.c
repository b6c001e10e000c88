// SPDX-License-Identifier: MIT
/*
 * The allocator every ngtcp2 connection gets (ngtcp2_mem).
 *
 * ngtcp2 0.12 takes its small objects from pools: each skip list of a
 * connection (its connection ids, the ACK and retransmission records, the
 * crypto streams' pending frames) allocates room for 8 list blocks at once
 * (4-12 KiB), and frame chains and retransmission entries come from blocks
 * of 64 (7 KiB each). An idle connection uses the first one or two objects
 * of each: 50 of its 64 KiB of ngtcp2 heap are such blocks, and in a heap
 * that has served (and freed) the handshakes of other connections their
 * pages were mostly resident when handed out (docs/BENCH.md "bench_mem").
 *
 * Giving those pages back to the kernel when a block is handed out
 * (MADV_DONTNEED) keeps an idle connection small, but costs a handshake
 * about 6 madvise calls and 5 page faults when the pools grow into them:
 * 25-30 us of a 250 us server handshake on this machine, for connections
 * that mostly live a few milliseconds under a handshake load. So the
 * pages are given back only once a connection has lived a while:
 *
 *  - while a connection is young (quic_mem_pool, before quic_mem_trim),
 *    a fresh block of QUIC_MEM_LAZY_MIN bytes or more has its whole pages
 *    cleared (a memset of resident memory, ~0.1 us a page, instead of a
 *    syscall and a fault) and is remembered (at most QUIC_MEM_TRACK);
 *  - quic_mem_trim (quic_conn_timer, QUIC_MEM_TRIM_NS after the handshake)
 *    gives back every whole page of the remembered blocks that is still
 *    all zero: a page nobody wrote to, or one whose objects are all zero,
 *    which MADV_DONTNEED leaves reading as zero (private anonymous memory
 *    reads as zeroes after it), so the contents do not change either way;
 *  - after the trim, or past QUIC_MEM_TRACK blocks, or with no pool (the
 *    constant quic_mem), a fresh block has its whole pages given back at
 *    once, as before.
 *
 * calloc's zeroes: given back pages read as zero, cleared pages are zero,
 * and the partial pages at a block's ends are cleared by hand. A failed
 * madvise only leaves pages resident (calloc then clears them itself).
 */
#include <malloc.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "quic/quic_int.h"

/* Blocks smaller than this have at most one whole page inside, and that
 * page is the one the first objects are written to: not worth a syscall. */
#define QUIC_MEM_LAZY_MIN 6144

/* Atomic (relaxed): two workers may ask first at once (each stores the
 * same value; a plain static was a data race TSan reported). */
static uintptr_t page_size(void)
{
	static _Atomic uintptr_t pg;
	uintptr_t v = atomic_load_explicit(&pg, memory_order_relaxed);

	if (!v) {
		v = (uintptr_t)sysconf(_SC_PAGESIZE);
		atomic_store_explicit(&pg, v, memory_order_relaxed);
	}
	return v;
}

/* The whole pages inside [p, p + n): [*a, *e), empty when *e <= *a. */
static void whole_pages(void *p, size_t n, uintptr_t *a, uintptr_t *e)
{
	uintptr_t pg = page_size();

	*a = ((uintptr_t)p + pg - 1) & ~(pg - 1);
	*e = ((uintptr_t)p + n) & ~(pg - 1);
}

/* Give back the whole pages inside [p, p + n). Returns 0 when there were
 * none or they were given back, -1 when madvise failed. */
static int drop_pages(void *p, size_t n)
{
	uintptr_t a, e;

	whole_pages(p, n, &a, &e);
	if (e <= a)
		return 0;
	return madvise((void *)a, e - a, MADV_DONTNEED);
}

/* Clear the bytes of [p, p + n) that are outside its whole pages. */
static void clear_ends(void *p, size_t n)
{
	uintptr_t a, e;

	whole_pages(p, n, &a, &e);
	if (e <= a) {
		memset(p, 0, n);
		return;
	}
	memset(p, 0, a - (uintptr_t)p);
	memset((void *)e, 0, (uintptr_t)p + n - e);
}

/* Remember a fresh block of a young connection, its whole pages cleared.
 * 0, or -1 when it is not remembered (no pool, trimmed, or full). */
static int track(struct quic_mem_pool *m, void *p, size_t n)
{
	uintptr_t a, e;

	if (!m || m->trimmed || m->n >= QUIC_MEM_TRACK)
		return -1;
	whole_pages(p, n, &a, &e);
	if (e > a)
		memset((void *)a, 0, e - a);
	m->blk[m->n].p = p;
	m->blk[m->n].len = n;
	m->n++;
	return 0;
}

static void untrack(struct quic_mem_pool *m, void *p)
{
	if (!m || !p || malloc_usable_size(p) < QUIC_MEM_LAZY_MIN)
		return;
	for (size_t i = 0; i < m->n; i++)
		if (m->blk[i].p == p) {
			m->blk[i] = m->blk[--m->n];
			return;
		}
}

static void *mem_malloc(size_t size, void *user_data)
{
	void *p = malloc(size);

	if (p && size >= QUIC_MEM_LAZY_MIN && track(user_data, p, size))
		(void)drop_pages(p, size);
	return p;
}

static void mem_free(void *ptr, void *user_data)
{
	untrack(user_data, ptr);
	free(ptr);
}

static void *mem_calloc(size_t nmemb, size_t size, void *user_data)
{
	size_t n;
	void *p;

	if (__builtin_mul_overflow(nmemb, size, &n))
		return NULL;
	if (n < QUIC_MEM_LAZY_MIN)
		return calloc(nmemb, size);
	p = malloc(n);
	if (!p)
		return NULL;
	if (!track(user_data, p, n) || drop_pages(p, n))
		memset(p, 0, n);
	else
		clear_ends(p, n);
	return p;
}

static void *mem_realloc(void *ptr, size_t size, void *user_data)
{
	/* A resized block is no longer one cleared by track(): forget it
	 * (should realloc fail, it is only left untrimmed). */
	untrack(user_data, ptr);
	return realloc(ptr, size);
}

const ngtcp2_mem quic_mem = {
	.user_data = NULL,
	.malloc = mem_malloc,
	.free = mem_free,
	.calloc = mem_calloc,
	.realloc = mem_realloc,
};

void quic_mem_pool_init(struct quic_mem_pool *m)
{
	memset(m, 0, sizeof(*m));
	m->mem = quic_mem;
	m->mem.user_data = m;
}

static int page_is_zero(const void *pg, size_t len)
{
	const uint64_t *w = pg;

	for (size_t i = 0; i < len / sizeof(*w); i++)
		if (w[i])
			return 0;
	return 1;
}

size_t quic_mem_trim(struct quic_mem_pool *m)
{
	uintptr_t pg = page_size(), a, e, run;
	size_t given = 0;

	if (m->trimmed)
		return 0;
	m->trimmed = 1;
	for (size_t i = 0; i < m->n; i++) {
		whole_pages(m->blk[i].p, m->blk[i].len, &a, &e);
		/* give back each run of all-zero pages with one call */
		for (run = a; a < e; a += pg) {
			int z = page_is_zero((const void *)a, pg);

			if (!z || a + pg == e) {
				uintptr_t end = z ? a + pg : a;

				if (end > run && !madvise((void *)run, end - run, MADV_DONTNEED))
					given += end - run;
				run = a + pg;
			}
		}
	}
	m->n = 0;
	return given;
}
