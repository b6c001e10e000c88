// SPDX-License-Identifier: MIT
/*
 * Bounded MPSC command ring: Dmitry Vyukov's bounded queue with a sequence
 * number per cell, so producers on any thread claim a cell with one CAS and
 * the worker consumes without atomics read-modify-write. A full ring is
 * reported (-EAGAIN), never grown: the control thread retries or fails the
 * request.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/engine_int.h"

int engine_cmdq_init(struct engine_cmdq *cq, unsigned int size, int with_eventfd)
{
	size_t n = 2;

	while (n < size)
		n <<= 1;
	/* Its own mapping, populated: zeroed, so every cell's (relative)
	 * sequence number is its initial one, and resident from the start. A
	 * ring is written end to end in its first lap anyway (4096 commands:
	 * seconds on a busy node, two hours in the soak, whose memory rose
	 * with it page by page), so the node's RSS starts where it stays. */
	cq->cells_len = n * sizeof(*cq->cells);
	cq->cells = mmap(NULL, cq->cells_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (cq->cells == MAP_FAILED) {
		cq->cells = NULL;
		return -ENOMEM;
	}
	cq->mask = n - 1;
	cq->head = cq->tail = 0;
	cq->efd = -1;
	cq->sleepy = 1;
	if (with_eventfd) {
		cq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (cq->efd < 0) {
			int err = -errno;

			munmap(cq->cells, cq->cells_len);
			cq->cells = NULL;
			return err;
		}
	}
	return 0;
}

void engine_cmdq_fini(struct engine_cmdq *cq)
{
	if (cq->cells)
		munmap(cq->cells, cq->cells_len);
	cq->cells = NULL;
	if (cq->efd >= 0)
		close(cq->efd);
	cq->efd = -1;
}

int engine_cmdq_push(struct engine_cmdq *cq, engine_cmd_fn fn, void *arg)
{
	size_t pos = __atomic_load_n(&cq->head, __ATOMIC_RELAXED);
	struct engine_cmd_cell *c;
	uint64_t one = 1;

	for (;;) {
		size_t seq;
		intptr_t dif;

		c = &cq->cells[pos & cq->mask];
		seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE) + (pos & cq->mask);
		dif = (intptr_t)seq - (intptr_t)pos;
		if (dif == 0) {
			if (__atomic_compare_exchange_n(&cq->head, &pos, pos + 1, 1, __ATOMIC_RELAXED,
							__ATOMIC_RELAXED))
				break;
		} else if (dif < 0) {
			return -EAGAIN;
		} else {
			pos = __atomic_load_n(&cq->head, __ATOMIC_RELAXED);
		}
	}
	c->fn = fn;
	c->arg = arg;
	__atomic_store_n(&c->seq, pos + 1 - (pos & cq->mask), __ATOMIC_SEQ_CST);
	if (cq->efd >= 0 && __atomic_load_n(&cq->sleepy, __ATOMIC_SEQ_CST) &&
	    __atomic_exchange_n(&cq->sleepy, 0, __ATOMIC_SEQ_CST) &&
	    write(cq->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, the worker is awake anyway. */
	}
	return 0;
}

int engine_cmdq_sleep(struct engine_cmdq *cq)
{
	size_t idx = cq->tail & cq->mask;

	__atomic_store_n(&cq->sleepy, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&cq->cells[idx].seq, __ATOMIC_SEQ_CST) + idx == cq->tail + 1) {
		__atomic_store_n(&cq->sleepy, 0, __ATOMIC_RELAXED);
		return 1;
	}
	return 0;
}

void engine_cmdq_woke(struct engine_cmdq *cq)
{
	__atomic_store_n(&cq->sleepy, 0, __ATOMIC_RELAXED);
}

int engine_cmdq_pop(struct engine_cmdq *cq, engine_cmd_fn *fn, void **arg)
{
	size_t idx = cq->tail & cq->mask;
	struct engine_cmd_cell *c = &cq->cells[idx];
	size_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE) + idx;

	if (seq != cq->tail + 1)
		return 0;
	*fn = c->fn;
	*arg = c->arg;
	__atomic_store_n(&c->seq, cq->tail + cq->mask + 1 - idx, __ATOMIC_RELEASE);
	cq->tail++;
	return 1;
}
