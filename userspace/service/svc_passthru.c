// SPDX-License-Identifier: MIT
/*
 * The owner's side of the gateway's HTTP pass-through (docs/SERVICE.md):
 * svcn_http_start posts the request to the owner, which streams it to a
 * local backend (its sink writes the pipe) or opens an HTTP op to the
 * remote provider (svc_ops.c feeds the pipe). The gateway thread reads the
 * pipe (svc_pipe.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc_calls_int.h"
#include "svc_dir_int.h"
#include "svc_ops_int.h"
#include "svc_pipe_int.h"
#include "svc_stream_int.h"

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

/* The start failed: the reader sees err (-errno) and no byte. */
static void pipe_fail(struct svcn_pipe *p, int err)
{
	p->start_err = err;
	svcn_pipe_end(p, err == -EBUSY ? SVC_ERR_OVERLOADED : SVC_ERR_BACKEND_ERROR, 0);
}

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

		uint8_t *req = NULL, as[SVC_ASSERT_LEN];
		size_t rl = 0, hl = svcn_head_len(h->req, h->len);

		if (pub)
			snprintf(backend, sizeof(backend), "%s", pub->backend);
		/* the backend sees this node as the caller, its assertion signed
		 * as a remote gateway's would be (method "http", the body) */
		if (backend[0] && hl)
			req = svcn_caller_request(sn, h->service, "", sn->id.pk,
						  svcn_assert_new(sn, as, h->service, "http",
								  h->req + hl, h->len - hl)
						      ? as
						      : NULL,
						  h->timeout_ms, h->req, h->len, &rl);
		err = !backend[0] ? -EINVAL
		      : !req	   ? -ENOMEM
				   : svc_backend_stream(sn->backend, backend, h->service, req, rl,
							h->timeout_ms, &pipe_sink, h->p);
		free(req);
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
				  const uint8_t *key, uint8_t *req, size_t len, uint32_t timeout_ms,
				  uint64_t idle_ns, int *err)
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
