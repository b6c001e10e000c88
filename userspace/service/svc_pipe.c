// SPDX-License-Identifier: MIT
/*
 * The gateway's HTTP pass-through pipe (docs/SERVICE.md): it carries a
 * backend's answer from the fabric's owner to the gateway thread, a
 * lock-free single-producer single-consumer queue of byte chunks (struct
 * svcn_pipe in svc_pipe_int.h). It uses only the owner's clock and wait
 * (svc_owner.c); the owner's side that starts an exchange and feeds the
 * pipe is svc_passthru.c (and svc_ops.c for a remote provider's stream).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "svc_node_int.h"
#include "svc_pipe_int.h"

/* ------------------------------------------------------------- pipe */

static void pipe_wake(struct svcn_pipe *p)
{
	if (atomic_exchange(&p->sleeping, 0))
		sem_post(&p->sem);
}

struct svcn_pipe *svcn_pipe_new(const _Atomic int *stopping, size_t cap)
{
	struct svcn_pipe *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->head = p->tail = calloc(1, sizeof(struct svcn_chunk)); /* the queue's dummy head node */
	if (!p->head) {
		free(p);
		return NULL;
	}
	sem_init(&p->sem, 0, 0);
	atomic_init(&p->refs, 2);
	p->cap = cap;
	p->stopping = stopping;
	return p;
}

void svcn_pipe_put(struct svcn_pipe *p)
{
	struct svcn_chunk *c, *n;

	if (!p || atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	for (c = p->head; c; c = n) {
		n = atomic_load(&c->next);
		free(c);
	}
	sem_destroy(&p->sem);
	free(p);
}

int svcn_pipe_write(struct svcn_pipe *p, const uint8_t *buf, size_t len)
{
	struct svcn_chunk *c;

	if (atomic_load(&p->closed))
		return -ECANCELED;
	if (!len)
		return 0;
	if (atomic_load(&p->queued) + len > p->cap)
		return -EAGAIN;
	c = malloc(sizeof(*c) + len);
	if (!c)
		return -EAGAIN;
	atomic_init(&c->next, NULL);
	c->len = len;
	c->off = 0;
	memcpy(c->data, buf, len);
	atomic_fetch_add(&p->queued, len);
	atomic_store(&p->tail->next, c);
	p->tail = c;
	pipe_wake(p);
	return 0;
}

void svcn_pipe_end(struct svcn_pipe *p, int cls, int ok)
{
	if (!p || atomic_load(&p->ended))
		return;
	p->cls = cls;
	p->ok = ok;
	atomic_store(&p->ended, 1);
	pipe_wake(p);
}

/* Bytes from the queue into buf: how many (0: empty). Reader only. */
static size_t pipe_take(struct svcn_pipe *p, uint8_t *buf, size_t max)
{
	size_t got = 0;

	while (got < max) {
		struct svcn_chunk *n = atomic_load(&p->head->next);
		size_t k;

		if (!n)
			break;
		k = n->len - n->off < max - got ? n->len - n->off : max - got;
		memcpy(buf + got, n->data + n->off, k);
		n->off += k;
		got += k;
		atomic_fetch_sub(&p->queued, k);
		if (n->off < n->len)
			break;
		free(p->head); /* n is the new dummy head node */
		p->head = n;
	}
	return got;
}

long svcn_pipe_read(struct svcn_pipe *p, uint8_t *buf, size_t max, uint64_t deadline_ns)
{
	for (;;) {
		size_t n = pipe_take(p, buf, max);
		uint64_t now, until;

		if (n)
			return (long)n;
		if (atomic_load(&p->ended)) {
			/* ended is stored after the last chunk was linked */
			n = pipe_take(p, buf, max);
			return (long)n;
		}
		atomic_store(&p->sleeping, 1);
		if (atomic_load(&p->head->next) || atomic_load(&p->ended))
			continue;
		now = svcn_now_ns();
		if (atomic_load(p->stopping))
			return -ESHUTDOWN;
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		until = deadline_ns - now > SVCN_JOB_POLL_MS * 1000000ull
				? now + SVCN_JOB_POLL_MS * 1000000ull
				: deadline_ns;
		svcn_sem_wait_until(&p->sem, until);
	}
}

void svcn_pipe_close(struct svcn_pipe *p)
{
	if (!p)
		return;
	atomic_store(&p->closed, 1);
	svcn_pipe_put(p);
}
