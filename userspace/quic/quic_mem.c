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
 * So a fresh block of QUIC_MEM_LAZY_MIN bytes or more is handed out with
 * the whole pages inside it given back to the kernel (MADV_DONTNEED): they
 * hold nothing yet (malloc's contents are undefined, calloc's are zero and
 * MADV_DONTNEED makes private anonymous pages read as zero), and they
 * become resident again only when ngtcp2 writes objects there. glibc does
 * the same to the free chunks it trims. The chunk headers around the block
 * are outside those pages. A failed madvise only leaves the pages resident
 * (calloc then clears them itself).
 *
 * Cost: one madvise per block that spans a whole page (about 6 per
 * connection, made while it is set up), and a page fault when a pool grows
 * into a page it had not used.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "quic/quic_int.h"

/* Blocks smaller than this have at most one whole page inside, and that
 * page is the one the first objects are written to: not worth a syscall. */
#define QUIC_MEM_LAZY_MIN 6144

/* Give back the whole pages inside [p, p + n). Returns 0 when there were
 * none or they were given back, -1 when madvise failed. */
static int drop_pages(void *p, size_t n)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1);
	uintptr_t e = ((uintptr_t)p + n) & ~(pg - 1);

	if (e <= a)
		return 0;
	return madvise((void *)a, e - a, MADV_DONTNEED);
}

static void *mem_malloc(size_t size, void *user_data)
{
	void *p = malloc(size);

	(void)user_data;
	if (p && size >= QUIC_MEM_LAZY_MIN)
		(void)drop_pages(p, size);
	return p;
}

static void mem_free(void *ptr, void *user_data)
{
	(void)user_data;
	free(ptr);
}

static void *mem_calloc(size_t nmemb, size_t size, void *user_data)
{
	size_t n;
	void *p;

	(void)user_data;
	if (__builtin_mul_overflow(nmemb, size, &n))
		return NULL;
	if (n < QUIC_MEM_LAZY_MIN)
		return calloc(nmemb, size);
	p = malloc(n);
	if (!p)
		return NULL;
	if (drop_pages(p, n)) {
		memset(p, 0, n);
	} else {
		uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
		uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1);
		uintptr_t e = ((uintptr_t)p + n) & ~(pg - 1);

		/* the partial pages at both ends were not given back */
		if (e <= a) {
			memset(p, 0, n);
		} else {
			memset(p, 0, a - (uintptr_t)p);
			memset((void *)e, 0, (uintptr_t)p + n - e);
		}
	}
	return p;
}

static void *mem_realloc(void *ptr, size_t size, void *user_data)
{
	(void)user_data;
	return realloc(ptr, size);
}

const ngtcp2_mem quic_mem = {
	.user_data = NULL,
	.malloc = mem_malloc,
	.free = mem_free,
	.calloc = mem_calloc,
	.realloc = mem_realloc,
};
