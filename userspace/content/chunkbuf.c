// SPDX-License-Identifier: MIT
/*
 * Chunk buffers on 2 MiB pages (chunkbuf.h). A node receives each chunk
 * into a 256 KiB answer buffer, keeps 128 of them in memory
 * (chunkstore_hot.c) and reads others with O_DIRECT: ~170 such buffers in
 * a lab node's life, each mapped by glibc on its own (over the 128 KiB
 * mmap threshold) and faulted in 4 KiB at a time by its first write. On a
 * guest whose page faults are dear (the AMD EPYC guest of stops 81-89:
 * 16 us a page, 1 ms a buffer) those first writes were 17% of a lab's
 * packet threads (docs/LAB.md "The lab in stop 88").
 *
 * Here buffers are slots of slabs: CN_BUF_SLAB bytes aligned to 2 MiB,
 * advised MADV_HUGEPAGE and populated with one MADV_POPULATE_WRITE (Linux
 * 5.14; without it, or without 2 MiB pages, the pages still come at first
 * touch, as before). At most CN_BUF_SLABS_MAX slabs; a slab is unmapped
 * when its last slot is freed, so an idle node (its memory cache trimmed)
 * holds none. One mutex, held for a scan of the slabs, never across mmap,
 * madvise or munmap; a slab is mapped outside it, its place reserved.
 *
 * In sanitized builds (AddressSanitizer) each slot is followed by a
 * poisoned page and a free slot is poisoned, so overruns and uses after
 * free are caught as with the heap's buffers.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "content/chunkbuf.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define BUF_GUARD 4096u
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define BUF_GUARD 0u
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define STRIDE (CN_BUF_LEN + BUF_GUARD)
#define SLOTS (CN_BUF_SLAB / STRIDE)
#define HUGE_LEN (2u << 20)
#define MAPPING ((uint8_t *)1) /* a place reserved while its slab is mapped */

_Static_assert(SLOTS >= 1 && SLOTS <= 16, "a slab's slots fit its 16-bit mask");

static struct {
	pthread_mutex_t mu;
	struct {
		uint8_t *base; /* NULL: free place; MAPPING: being mapped */
		uint16_t used; /* a bit per slot */
	} s[CN_BUF_SLABS_MAX];
} bufs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int mapped(const uint8_t *base)
{
	return base && base != MAPPING;
}

static unsigned int popcount16(uint16_t v)
{
	return (unsigned int)__builtin_popcount(v);
}

/* Under mu: a free slot of the fullest slab that has one (so the others
 * can empty and go), marked used; NULL when every mapped slab is full. */
static void *take_slot(size_t len)
{
	int best = -1;

	for (int i = 0; i < CN_BUF_SLABS_MAX; i++) {
		uint16_t u = bufs.s[i].used;

		if (!mapped(bufs.s[i].base) || popcount16(u) == SLOTS)
			continue;
		if (best < 0 || popcount16(u) > popcount16(bufs.s[best].used))
			best = i;
	}
	if (best < 0)
		return NULL;
	for (unsigned int k = 0; k < SLOTS; k++)
		if (!(bufs.s[best].used & (1u << k))) {
			uint8_t *p = bufs.s[best].base + (size_t)k * STRIDE;

			bufs.s[best].used |= (uint16_t)(1u << k);
			UNPOISON(p, len);
			return p;
		}
	return NULL;
}

/* A slab: CN_BUF_SLAB bytes at a 2 MiB boundary, on 2 MiB pages where the
 * kernel gives them, populated; NULL when out of memory. */
static uint8_t *slab_map(void)
{
	size_t len = CN_BUF_SLAB + HUGE_LEN, head;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *a;

	if (m == MAP_FAILED)
		return NULL;
	a = (uint8_t *)(((uintptr_t)m + HUGE_LEN - 1) & ~(uintptr_t)(HUGE_LEN - 1));
	head = (size_t)(a - m);
	if (head)
		munmap(m, head);
	if (len - head > CN_BUF_SLAB)
		munmap(a + CN_BUF_SLAB, len - head - CN_BUF_SLAB);
	/* both advisory: without them the pages come at first touch */
	(void)madvise(a, CN_BUF_SLAB, MADV_HUGEPAGE);
	(void)madvise(a, CN_BUF_SLAB, MADV_POPULATE_WRITE);
	POISON(a, CN_BUF_SLAB);
	return a;
}

void *cn_buf_alloc(size_t len)
{
	void *p = NULL;
	int place = -1;

	if (len && len <= CN_BUF_LEN) {
		pthread_mutex_lock(&bufs.mu);
		p = take_slot(len);
		for (int i = 0; !p && place < 0 && i < CN_BUF_SLABS_MAX; i++)
			if (!bufs.s[i].base) {
				bufs.s[i].base = MAPPING;
				place = i;
			}
		pthread_mutex_unlock(&bufs.mu);
	}
	if (place >= 0) {
		uint8_t *a = slab_map();

		pthread_mutex_lock(&bufs.mu);
		bufs.s[place].base = a; /* NULL again when the map failed */
		bufs.s[place].used = a ? 1 : 0;
		pthread_mutex_unlock(&bufs.mu);
		if (a) {
			UNPOISON(a, len);
			p = a;
		}
	}
	if (!p && posix_memalign(&p, 4096, len ? len : 1))
		p = NULL;
	return p;
}

void cn_buf_free(void *p)
{
	uint8_t *b = p, *gone = NULL;
	int found = 0;

	if (!p)
		return;
	pthread_mutex_lock(&bufs.mu);
	for (int i = 0; i < CN_BUF_SLABS_MAX && !found; i++) {
		uint8_t *base = bufs.s[i].base;
		size_t off, k;

		if (!mapped(base) || b < base || b >= base + CN_BUF_SLAB)
			continue;
		found = 1;
		off = (size_t)(b - base);
		k = off / STRIDE;
		if (off % STRIDE || k >= SLOTS || !(bufs.s[i].used & (1u << k))) {
			fprintf(stderr, "weftd: chunk buffer %p freed twice or not allocated\n", p);
			abort();
		}
		bufs.s[i].used &= (uint16_t) ~(1u << k);
		POISON(b, STRIDE);
		if (!bufs.s[i].used) {
			gone = base;
			bufs.s[i].base = NULL;
		}
	}
	pthread_mutex_unlock(&bufs.mu);
	if (gone) {
		UNPOISON(gone, CN_BUF_SLAB); /* the range may be mapped again by others */
		munmap(gone, CN_BUF_SLAB);
	}
	if (!found)
		free(p);
}

void cn_buf_stats(unsigned int *slabs, unsigned int *used)
{
	unsigned int n = 0, u = 0;

	pthread_mutex_lock(&bufs.mu);
	for (int i = 0; i < CN_BUF_SLABS_MAX; i++)
		if (mapped(bufs.s[i].base)) {
			n++;
			u += popcount16(bufs.s[i].used);
		}
	pthread_mutex_unlock(&bufs.mu);
	if (slabs)
		*slabs = n;
	if (used)
		*used = u;
}
