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
 * no malloc_trim; measured once the thread has ended.
 *
 *   heap_probe weftd|old|exit
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

static long resident_kib;
static int at_exit;
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

static void *burst(void *arg)
{
	char *b[BLOCKS];
	uintptr_t lo, hi;
	int i;

	(void)arg;
	if (at_exit)
		util_heap_release_at_exit();
	for (i = 0; i < BLOCKS; i++) {
		b[i] = malloc(BLOCK);
		if (!b[i]) {
			resident_kib = -1;
			return NULL;
		}
		memset(b[i], 0x5a, BLOCK);
	}
	lo = hi = (uintptr_t)b[0];
	for (i = 1; i < BLOCKS; i++) {
		if ((uintptr_t)b[i] < lo)
			lo = (uintptr_t)b[i];
		if ((uintptr_t)b[i] > hi)
			hi = (uintptr_t)b[i];
	}
	hi += BLOCK;
	for (i = BLOCKS - 1; i >= 0; i--)
		free(b[i]);
	burst_lo = lo;
	burst_hi = hi;
	if (at_exit)
		return NULL; /* measured by main once this thread has ended */
	(void)malloc_trim(0);
	resident_kib = resident(lo, hi);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;

	if (argc != 2 || (strcmp(argv[1], "weftd") && strcmp(argv[1], "old") &&
			  strcmp(argv[1], "exit"))) {
		fprintf(stderr, "usage: heap_probe weftd|old|exit\n");
		return 2;
	}
	at_exit = !strcmp(argv[1], "exit");
	if (strcmp(argv[1], "old"))
		node_heap_setup();
	else
		(void)mallopt(M_TOP_PAD, 0);
	if (pthread_create(&t, NULL, burst, NULL) || pthread_join(t, NULL))
		return 1;
	if (at_exit && resident_kib == 0)
		resident_kib = resident(burst_lo, burst_hi);
	if (resident_kib < 0) {
		fprintf(stderr, "heap_probe: the blocks could not be measured\n");
		return 1;
	}
	printf("freed %d KiB in a thread's arena, resident after %s: %ld KiB\n", BLOCKS * BLOCK / 1024,
	       at_exit ? "the thread ended" : "malloc_trim", resident_kib);
	return 0;
}
