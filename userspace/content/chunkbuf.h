/* SPDX-License-Identifier: MIT */
/*
 * Chunk buffers on 2 MiB pages (chunkbuf.c): the 256 KiB buffers a node
 * receives chunks into, keeps them in and reads them with O_DIRECT,
 * carved from slabs mapped and populated in one call instead of one page
 * fault per 4 KiB (docs/CONTENT.md "Chunk buffers on 2 MiB pages").
 */
#ifndef WEFT_CONTENT_CHUNKBUF_H
#define WEFT_CONTENT_CHUNKBUF_H

#include <stddef.h>

/* The largest buffer a slab slot holds: a chunk answer's whole allocation
 * (its 5-byte head at the end of the first 4 KiB page, the chunk
 * page-aligned after it: CN_ANS_ALIGN + 256 KiB). */
#define CN_BUF_LEN (4096u + (256u << 10))
/* A slab: 4 MiB (two 2 MiB pages), 15 slots. */
#define CN_BUF_SLAB (4u << 20)
/* Slabs mapped at most per process (64 MiB: 240 buffers); beyond them,
 * and for a length over CN_BUF_LEN, a plain page-aligned allocation. */
#define CN_BUF_SLABS_MAX 16

/* len bytes, page aligned: a slab slot when len <= CN_BUF_LEN and one is
 * free or a slab can be mapped, else posix_memalign. NULL when out of
 * memory. */
void *cn_buf_alloc(size_t len);
/* Free a buffer of cn_buf_alloc (a slot, or the heap's: either); NULL is
 * ignored. A slab whose last buffer goes is unmapped. */
void cn_buf_free(void *p);
/* Slabs mapped, slots in use (tests, metrics). */
void cn_buf_stats(unsigned int *slabs, unsigned int *used);

#endif
