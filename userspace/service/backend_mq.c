// SPDX-License-Identifier: MIT
/* The backend forwarder's mailbox (docs/SERVICE.md, "Threads and owners"):
 * messages any thread posts to its loop (a lock-free multi-producer
 * queue), the wake-up, the loop's extra descriptor and the counters.
 * The loop itself is backend.c's. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "svc_backend_int.h"

void svc_bk_wake(struct svc_backend *b)
{
	uint64_t one = 1;

	(void)!write(b->evfd, &one, sizeof(one));
}

/* Link m at the producers' end (any thread). */
static void mq_push(struct svc_backend *b, struct svc_backend_msg *m)
{
	struct svc_backend_msg *prev;

	atomic_store(&m->next, NULL);
	prev = atomic_exchange(&b->mq_head, m);
	atomic_store(&prev->next, m);
}

/* Take the oldest posted message (the loop; free once it has joined), or
 * NULL when none is complete yet (a producer between its exchange and its
 * link: its own wake-up follows). */
static struct svc_backend_msg *mq_pop(struct svc_backend *b)
{
	struct svc_backend_msg *tail = b->mq_tail, *next = atomic_load(&tail->next);

	if (tail == &b->mq_stub) {
		if (!next)
			return NULL;
		b->mq_tail = tail = next;
		next = atomic_load(&tail->next);
	}
	if (next) {
		b->mq_tail = next;
		return tail;
	}
	if (tail != atomic_load(&b->mq_head))
		return NULL;
	/* tail is the last one: put the stub behind it, then take it. */
	mq_push(b, &b->mq_stub);
	next = atomic_load(&tail->next);
	if (!next)
		return NULL;
	b->mq_tail = next;
	return tail;
}

int svc_backend_post_lazy(struct svc_backend *b, struct svc_backend_msg *m)
{
	int open;

	atomic_fetch_add(&b->mq_busy, 1);
	open = atomic_load(&b->mq_open);
	if (open)
		mq_push(b, m);
	atomic_fetch_sub(&b->mq_busy, 1);
	return open ? 0 : -ESHUTDOWN;
}

int svc_backend_post(struct svc_backend *b, struct svc_backend_msg *m)
{
	int rc = svc_backend_post_lazy(b, m);

	return rc ? rc : (svc_backend_kick(b), 0);
}

void svc_backend_kick(struct svc_backend *b)
{
	if (svc_backend_on_loop(b)) { /* it runs again before it sleeps */
		b->kick = 1;
		return;
	}
	atomic_fetch_add(&b->mq_busy, 1);
	if (atomic_load(&b->mq_open) && !atomic_exchange(&b->mq_wake, 1))
		svc_bk_wake(b);
	atomic_fetch_sub(&b->mq_busy, 1);
}

int svc_backend_on_loop(const struct svc_backend *b)
{
	return b && atomic_load(&((struct svc_backend *)b)->th_on) && pthread_equal(pthread_self(), b->th);
}

/* Run every posted message that is complete (the loop). */
void svc_bk_mq_run(struct svc_backend *b, int cancel)
{
	struct svc_backend_msg *m;

	atomic_store(&b->mq_wake, 0);
	while ((m = mq_pop(b)))
		m->fn(m, cancel);
}

int svc_backend_watch(struct svc_backend *b, int fd, void (*fn)(void *ctx), void *ctx)
{
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = &b->watch};

	if (b->watch.fn)
		return -EBUSY;
	b->watch.fn = fn;
	b->watch.ctx = ctx;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &e)) {
		b->watch.fn = NULL;
		return -errno;
	}
	return 0;
}

void svc_backend_stats(struct svc_backend *b, struct svc_backend_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	st->inflight = b->inflight;
	st->busy = b->stat_busy;
	st->timeouts = b->stat_timeout;
	st->protocol_errors = b->stat_protocol;
	pthread_mutex_unlock(&b->mu);
	st->conns_open = atomic_load_explicit(&b->st_open, memory_order_relaxed);
	st->conns_idle = atomic_load_explicit(&b->st_idle, memory_order_relaxed);
	st->conns_opened = atomic_load_explicit(&b->st_opened, memory_order_relaxed);
	st->reused = atomic_load_explicit(&b->st_reused, memory_order_relaxed);
}
