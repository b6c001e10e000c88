// SPDX-License-Identifier: MIT
/*
 * heap_probe: what a thread's malloc arena keeps resident after a burst,
 * with weftd's malloc settings (node_heap_setup) or with the settings
 * weftd had before 2026-11-27 (M_TOP_PAD 0 only). test_node_heap runs all.
 *
 * A thread (so an arena of its own, not the main thread's brk heap)
 * allocates BLOCKS blocks of BLOCK bytes, writes them, frees them newest
 * first (each free joins the arena's top chunk), and then, as weftd's main
 * loop does every minute, calls malloc_trim(0). It prints how many KiB of
 * the freed blocks are still resident (mincore). "exit": weftd's settings,
 * and the thread, as a connection thread of weftd's HTTP servers does,
 * asks for its arena's top back when it ends (util_heap_release_at_exit);
 * no malloc_trim; measured once the thread has ended. "due": weftd's
 * settings, and the thread, as the loop of a long-lived weft thread does
 * before it waits, calls util_heap_release_due after the burst (measured)
 * and after a second burst within the minute (measured again: not
 * released, the period not over).
 *
 *   heap_probe weftd|old|exit|due
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "weft/node.h"
#include "weft/util.h"

#define BLOCK 2048 /* above tcache's largest size and the fastbins' */
#define BLOCKS 50  /* 100 KiB: under glibc's default trim threshold, 128 KiB */

enum mode { M_OLD, M_WEFTD, M_EXIT, M_DUE };
static const char *const mode_name[] = {"old", "weftd", "exit", "due"};
static enum mode mode;
static long resident_kib, again_kib = -1;
static uintptr_t burst_lo, burst_hi;

static long resident(uintptr_t lo, uintptr_t hi)
{
	long pg = sysconf(_SC_PAGESIZE), kib = 0;
	unsigned char vec[64];
	size_t n;

	lo = (lo + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
	hi &= ~((uintptr_t)pg - 1);
	n = (hi - lo) / (uintptr_t)pg;
	if (hi <= lo || n > sizeof(vec) || mincore((void *)lo, hi - lo, vec))
		return -1;
	for (size_t k = 0; k < n; k++)
		if (vec[k] & 1)
			kib += pg / 1024;
	return kib;
}

/* BLOCKS blocks written and freed newest first; their range in lo/hi */
static int one_burst(uintptr_t *lo, uintptr_t *hi)
{
	char *b[BLOCKS];
	int i;

	for (i = 0; i < BLOCKS; i++) {
		b[i] = malloc(BLOCK);
		if (!b[i]) {
			while (i--)
				free(b[i]);
			return -1;
		}
		memset(b[i], 0x5a, BLOCK);
	}
	*lo = *hi = (uintptr_t)b[0];
	for (i = 1; i < BLOCKS; i++) {
		if ((uintptr_t)b[i] < *lo)
			*lo = (uintptr_t)b[i];
		if ((uintptr_t)b[i] > *hi)
			*hi = (uintptr_t)b[i];
	}
	*hi += BLOCK;
	for (i = BLOCKS - 1; i >= 0; i--)
		free(b[i]);
	return 0;
}

static void *burst(void *arg)
{
	uintptr_t lo, hi;

	(void)arg;
	if (mode == M_EXIT)
		util_heap_release_at_exit();
	if (one_burst(&lo, &hi)) {
		resident_kib = -1;
		return NULL;
	}
	burst_lo = lo;
	burst_hi = hi;
	switch (mode) {
	case M_EXIT:
		return NULL; /* measured by main once this thread has ended */
	case M_DUE:
		/* a long-lived thread's loop before it waits: the first call
		 * releases, the next within the minute does not */
		util_heap_release_due(util_now_ms());
		resident_kib = resident(lo, hi);
		if (one_burst(&lo, &hi)) {
			resident_kib = -1;
			return NULL;
		}
		util_heap_release_due(util_now_ms());
		again_kib = resident(lo, hi);
		return NULL;
	default:
		(void)malloc_trim(0);
		resident_kib = resident(lo, hi);
		return NULL;
	}
}

int main(int argc, char **argv)
{
	static const char *const after[] = {"malloc_trim", "malloc_trim", "the thread ended",
					    "a release due"};
	pthread_t t;
	unsigned int m;

	for (m = 0; argc == 2 && m < WEFT_ARRAY_SIZE(mode_name); m++)
		if (!strcmp(argv[1], mode_name[m]))
			break;
	if (argc != 2 || m == WEFT_ARRAY_SIZE(mode_name)) {
		fprintf(stderr, "usage: heap_probe weftd|old|exit|due\n");
		return 2;
	}
	mode = (enum mode)m;
	if (mode != M_OLD)
		node_heap_setup();
	else
		(void)mallopt(M_TOP_PAD, 0);
	if (pthread_create(&t, NULL, burst, NULL) || pthread_join(t, NULL))
		return 1;
	if (mode == M_EXIT && resident_kib == 0)
		resident_kib = resident(burst_lo, burst_hi);
	if (resident_kib < 0 || (mode == M_DUE && again_kib < 0)) {
		fprintf(stderr, "heap_probe: the blocks could not be measured\n");
		return 1;
	}
	printf("freed %d KiB in a thread's arena, resident after %s: %ld KiB\n", BLOCKS * BLOCK / 1024,
	       after[mode], resident_kib);
	if (mode == M_DUE)
		printf("freed %d KiB again, resident after a second call within the minute: %ld KiB\n",
		       BLOCKS * BLOCK / 1024, again_kib);
	return 0;
}
