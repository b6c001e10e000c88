// SPDX-License-Identifier: MIT
/*
 * The gateway's HTTP pass-through (docs/SERVICE.md): the pipe that carries
 * a backend's answer from the fabric's owner to the gateway thread (a
 * lock-free single-producer single-consumer queue of byte chunks,
 * struct svcn_pipe in svc_node_int.h), and the owner's side that starts
 * the exchange with a local backend or a remote provider and feeds the
 * pipe. The callers' lookups and calls are in svc_calls.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc_node_int.h"
#include "weft/dht.h"
#include "weft/log.h"
#include "weft/dhtnode.h"
#include "weft/util.h"

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

/* The start failed: the reader sees err (-errno) and no byte. */
static void pipe_fail(struct svcn_pipe *p, int err)
{
	p->start_err = err;
	svcn_pipe_end(p, err == -EBUSY ? SVC_ERR_OVERLOADED : SVC_ERR_BACKEND_ERROR, 0);
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

/* ---------------------------------------------- gateway pass-through */

struct http_msg {
	struct svc_backend_msg m;
	struct svc_node *sn;
	struct svcn_pipe *p; /* the producer's reference */
	int local;
	char service[SVC_NAME_MAX + 1];
	struct sockaddr_storage ss;
	socklen_t sl;
	uint8_t key[IDENTITY_PK_LEN];
	uint8_t *req;
	size_t len;
	uint32_t timeout_ms;
	uint64_t idle_ns;
};

/* The local backend's bytes into the pipe (on the owner). */
static int pipe_sink_data(void *ctx, const uint8_t *buf, size_t len, int fin)
{
	struct svcn_pipe *p = ctx;

	(void)fin; /* end follows */
	if (atomic_load(p->stopping))
		return -ECANCELED;
	return svcn_pipe_write(p, buf, len); /* -EAGAIN: the reader is behind */
}

static void pipe_sink_end(void *ctx, int err)
{
	struct svcn_pipe *p = ctx;

	svcn_pipe_end(p, err, err == SVC_OK);
	svcn_pipe_put(p);
}

static const struct svc_backend_sink pipe_sink = {.data = pipe_sink_data, .end = pipe_sink_end};

static void http_run(struct svc_node *sn, struct http_msg *h)
{
	char backend[SVC_BACKEND_ADDR_MAX] = "";
	struct svcn_op *o;
	int err;

	if (h->local) {
		struct svcn_pub *pub = svcn_pub_find(sn, h->service, strlen(h->service));

		if (pub)
			snprintf(backend, sizeof(backend), "%s", pub->backend);
		err = backend[0] ? svc_backend_stream(sn->backend, backend, h->service, h->req,
						      h->len, h->timeout_ms, &pipe_sink, h->p)
				 : -EINVAL;
		if (!err)
			h->p = NULL; /* the sink's now */
		else
			pipe_fail(h->p, err);
		return;
	}
	sn->st.http_out++;
	o = svcn_op_start(sn, SVCN_OP_HTTP, (const struct sockaddr *)&h->ss, h->sl, h->key, h->req,
			  h->len, 0, NULL, &err);
	if (!o) {
		pipe_fail(h->p, err);
		return;
	}
	o->pipe = h->p; /* the op's now: it ends the pipe, then lets go */
	h->p = NULL;
	o->idle_ns = h->idle_ns;
	o->deadline_ns = svcn_now_ns() + h->idle_ns;
	if (o->deadline_ns < sn->due_ns)
		sn->due_ns = o->deadline_ns;
	if (o->done) { /* failed at once (op_start had no pipe to end) */
		pipe_fail(o->pipe, o->err);
		svcn_op_put(sn, o);
	}
}

static void http_msg_run(struct svc_backend_msg *m, int cancel)
{
	struct http_msg *h = (struct http_msg *)m;
	struct svc_node *sn = h->sn;

	if (cancel || atomic_load(&sn->stopping))
		svcn_pipe_end(h->p, SVC_ERR_OVERLOADED, 0);
	else if (atomic_load(&h->p->closed))
		svcn_pipe_end(h->p, SVC_ERR_TIMEOUT, 0); /* the reader gave up first */
	else
		http_run(sn, h);
	svcn_pipe_put(h->p);
	free(h->req);
	free(h);
}

struct svcn_pipe *svcn_http_start(struct svc_node *sn, int local, const char *service,
				  const struct sockaddr_storage *ss, socklen_t sl,
				  const uint8_t *key, uint8_t *req, size_t len,
				  uint32_t timeout_ms, uint64_t idle_ns, int *err)
{
	struct http_msg *h = calloc(1, sizeof(*h));
	struct svcn_pipe *p = h ? svcn_pipe_new(&sn->stopping, svcn_http_buffer(sn)) : NULL;

	if (!p) {
		free(h);
		free(req);
		*err = -ENOMEM;
		return NULL;
	}
	h->m.fn = http_msg_run;
	h->sn = sn;
	h->p = p;
	h->local = local;
	snprintf(h->service, sizeof(h->service), "%s", service);
	if (ss)
		h->ss = *ss;
	h->sl = sl;
	if (key)
		memcpy(h->key, key, IDENTITY_PK_LEN);
	h->req = req;
	h->len = len;
	h->timeout_ms = timeout_ms;
	h->idle_ns = idle_ns;
	*err = svc_backend_post(sn->backend, &h->m);
	if (*err) {
		free(h->req);
		free(h);
		atomic_store(&p->refs, 1);
		svcn_pipe_put(p);
		return NULL;
	}
	return p;
}
