// SPDX-License-Identifier: MIT
/*
 * Buffers kept for reuse (chunkstore_int.h "cn_pool"): the store's aligned
 * direct-I/O buffers (chunkstore_io.c) and the memory cache's spares
 * (chunkstore_hot.c) are both a few 256 KiB allocations that would
 * otherwise be mapped, faulted in and unmapped again per chunk.
 *
 * Each buffer is kept with its shape: the allocation's length and the
 * offset at which its user's data starts (an answer buffer places its
 * chunk at an aligned offset inside a larger allocation); a take asks for
 * one shape and gets only a buffer of that shape. At most max are kept;
 * one more is freed. The pool is refcounted so that buffers out on loan
 * may come back after its owner has gone: once closed, a buffer kept is
 * freed instead. Its own mutex, held for a scan of at most max entries,
 * never across a free.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "content/chunkbuf.h"
#include "content/chunkstore_int.h"

struct cn_pool {
	atomic_int refs;
	pthread_mutex_t mu;
	int closed;		    /* keeps free the buffer */
	unsigned int max, n;
	unsigned long uses, seen;   /* takes and keeps; uses at the last idle call */
	unsigned int idle;	    /* idle calls in a row with no use */
	struct {
		void *base;
		size_t alen, off;
	} b[];
};

struct cn_pool *cn_pool_new(unsigned int max)
{
	struct cn_pool *p;

	if (max > CN_POOL_MAX)
		return NULL;
	p = calloc(1, sizeof(*p) + max * sizeof(p->b[0]));
	if (!p)
		return NULL;
	atomic_init(&p->refs, 1);
	pthread_mutex_init(&p->mu, NULL);
	p->max = max;
	return p;
}

void cn_pool_ref(struct cn_pool *p)
{
	atomic_fetch_add(&p->refs, 1);
}

void cn_pool_unref(struct cn_pool *p)
{
	if (p && atomic_fetch_sub(&p->refs, 1) == 1) {
		cn_pool_drop(p, 1);
		pthread_mutex_destroy(&p->mu);
		free(p);
	}
}

/* Under mu: move every kept buffer to gone (room for max). */
static unsigned int take_all(struct cn_pool *p, void **gone)
{
	unsigned int n = p->n;

	for (unsigned int i = 0; i < n; i++)
		gone[i] = p->b[i].base;
	p->n = 0;
	return n;
}

static void free_all(void **gone, unsigned int n)
{
	while (n)
		cn_buf_free(gone[--n]);
}

void cn_pool_drop(struct cn_pool *p, int close)
{
	void *gone[CN_POOL_MAX];
	unsigned int n;

	pthread_mutex_lock(&p->mu);
	n = take_all(p, gone);
	if (close)
		p->closed = 1;
	pthread_mutex_unlock(&p->mu);
	free_all(gone, n);
}

void *cn_pool_take(struct cn_pool *p, size_t alen, size_t off)
{
	void *base = NULL;

	pthread_mutex_lock(&p->mu);
	p->uses++;
	for (unsigned int i = 0; i < p->n; i++)
		if (p->b[i].alen == alen && p->b[i].off == off) {
			base = p->b[i].base;
			p->b[i] = p->b[--p->n];
			break;
		}
	pthread_mutex_unlock(&p->mu);
	return base;
}

void cn_pool_keep(struct cn_pool *p, void *base, size_t alen, size_t off)
{
	pthread_mutex_lock(&p->mu);
	p->uses++;
	if (!p->closed && p->n < p->max) {
		p->b[p->n].base = base;
		p->b[p->n].alen = alen;
		p->b[p->n].off = off;
		p->n++;
		base = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	cn_buf_free(base);
}

void cn_pool_idle(struct cn_pool *p, unsigned int ticks)
{
	void *gone[CN_POOL_MAX];
	unsigned int n = 0;

	pthread_mutex_lock(&p->mu);
	if (p->uses != p->seen) {
		p->seen = p->uses;
		p->idle = 0;
	} else if (p->n && ++p->idle >= ticks) {
		n = take_all(p, gone);
		p->idle = 0;
	}
	pthread_mutex_unlock(&p->mu);
	free_all(gone, n); /* outside the lock */
}

unsigned int cn_pool_count(struct cn_pool *p)
{
	unsigned int n;

	pthread_mutex_lock(&p->mu);
	n = p->n;
	pthread_mutex_unlock(&p->mu);
	return n;
}
