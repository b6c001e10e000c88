// SPDX-License-Identifier: MIT
/*
 * A thread that ends hands back the free memory at the top of its malloc
 * arena (util_heap_release_at_exit).
 *
 * glibc gives each thread an arena, and the HTTP servers (control API,
 * gateway, dashboard: libmicrohttpd, a thread per connection) start and end
 * a thread per connection, each taking an arena a thread that ended left
 * (glibc's free list of arenas; strace of a soak node: the connection
 * threads of 40 s took 2 arenas in turn). glibc hands an arena's top back
 * only when a free joins 64 KiB or more to it
 * (FASTBIN_CONSOLIDATION_THRESHOLD) and the top is over M_TRIM_THRESHOLD
 * (weftd: 16 KiB, node_heap_setup); the main loop's malloc_trim(0) hands
 * back the free chunks of every arena but the top of the main arena only.
 * So a connection's smaller frees left up to 64 KiB written at its arena's
 * top, and the top crept towards that mark over hours, in every arena such
 * threads took: part of the soaks' slow creep of private anonymous memory
 * (docs/LAB.md "Soak, the thirteenth").
 *
 * The release is the free of a block of 80 KiB from the calling thread's
 * arena (under the mmap threshold, 128 KiB fixed by node_heap_setup):
 * the free joins it to the top, the joined size is over 64 KiB, and glibc
 * trims the top (heap_trim). Cost: a malloc, a free and a madvise when the
 * thread ends; nothing on a thread that never calls it.
 *
 * A thread that lives as long as the node has the same top, written by
 * its bursts of work and never trimmed while its frees stay small: its
 * loop calls util_heap_release_due before it waits, which releases at
 * most once a HEAP_RELEASE_PERIOD_MS (a few microseconds a minute).
 */
#include <pthread.h>
#include <stdlib.h>

#include "weft/util.h"

#define HEAP_RELEASE_BLOCK (80 * 1024)
#define HEAP_RELEASE_PERIOD_MS 60000

static __thread uint64_t release_next_ms;

static pthread_key_t release_key;
static pthread_once_t release_once = PTHREAD_ONCE_INIT;
static int release_ok;

/* free a block that joins the top and makes glibc trim it */
static void release_top(void)
{
	void *p = malloc(HEAP_RELEASE_BLOCK);

	/* the compiler may drop a malloc whose block is never used */
	__asm__ volatile("" : : "r"(p) : "memory");
	free(p);
}

void util_heap_release_due(uint64_t now_ms)
{
	if (now_ms < release_next_ms)
		return;
	release_next_ms = now_ms + HEAP_RELEASE_PERIOD_MS;
	release_top();
}

static void release_at_exit(void *v)
{
	(void)v;
	release_top();
}

static void release_key_init(void)
{
	release_ok = pthread_key_create(&release_key, release_at_exit) == 0;
}

void util_heap_release_at_exit(void)
{
	(void)pthread_once(&release_once, release_key_init);
	if (release_ok && !pthread_getspecific(release_key))
		(void)pthread_setspecific(release_key, (void *)1);
}
