// SPDX-License-Identifier: MIT
/*
 * Service streams, the caller's API (docs/SERVICE.md, "Streams"): a
 * control thread or the gateway opens a stream (svc_node_stream_open,
 * svcn_strm_open_ws) and waits on its own semaphore for the provider's
 * answer while the owner drives it (svc_stream.c); then it hands over its
 * socket (svc_node_stream_attach) or gives up (abort). Results and
 * counters for the control routes.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <jansson.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "svc_calls_int.h"
#include "svc_ops_int.h"
#include "svc_stream_priv.h"
#include "weft/engine.h"
#include "weft/quic_node.h"
#include "weft/svc_backend.h"
#include "weft/util.h"

/* ----------------------------------------------------------- the caller */


void svcn_sx_open_run(struct svc_backend_msg *mm, int cancel)
{
	struct open_msg *o = (struct open_msg *)mm;
	struct svc_node *sn = o->sn;
	struct svc_node_stream *w = o->w;
	struct svcn_strm *s = NULL;
	struct svcn_peer *p;
	int err = -ESHUTDOWN;

	if (cancel || atomic_load(&sn->stopping) || atomic_load(&w->state) != W_WAITING)
		goto fail;
	err = -EBUSY;
	s = svcn_sx_new(sn, ROLE_CALLER);
	if (!s)
		goto fail;
	snprintf(s->service, sizeof(s->service), "%s", o->name);
	snprintf(s->method, sizeof(s->method), "%s", o->method);
	memcpy(s->peer.key, o->key, IDENTITY_PK_LEN);
	s->idle_ns = svcn_sx_idle_ms(sn, o->idle_ms) * 1000000ull;
	if (o->has_assert) {
		s->has_assert = 1;
		memcpy(s->assertion, o->assertion, SVC_ASSERT_LEN);
	}
	if (o->payload) {
		s->ws = 1;
		s->open_payload = o->payload;
		s->open_len = o->payload_len;
		o->payload = NULL;
	}
	s->deadline_ns = svcn_now_ns() + (uint64_t)o->timeout_ms * 1000000ull;
	svcn_sx_due(s, s->deadline_ns);
	if (o->direct_ms) {
		s->direct_ns = svcn_now_ns() + (uint64_t)o->direct_ms * 1000000ull;
		svcn_sx_due(s, s->direct_ns);
	}
	s->token = ++sn->next_token;
	s->w = w;
	w->s = s;
	atomic_fetch_add(&w->refs, 1);
	p = svcn_peer_get(sn, (const struct sockaddr *)&o->ss, o->sl, o->key, &err);
	if (!p) {
		svcn_sx_wtell(s, err, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
		svcn_sx_free(s);
		goto out;
	}
	s->conn = p->conn;
	s->counted = 1;
	p->streams++;
	if (p->state == SVCN_PEER_UP &&
	    quic_node_stream_open(sn->quic, p->conn, s->ws ? SVC_NODE_ST_WS : SVC_NODE_ST_STREAM,
				  s->token)) {
		svcn_sx_wtell(s, -EAGAIN, SVC_ERR_OVERLOADED, SVC_STREAM_R_RESET);
		svcn_sx_free(s);
	}
	goto out;
fail:
	w->rc = err;
	{
		int expect = W_WAITING;

		if (atomic_compare_exchange_strong(&w->state, &expect, W_DONE))
			sem_post(&w->sem);
	}
out:
	svcn_sx_wput(w); /* the message's */
	free(o->payload);
	free(o);
}

/* Post the open (o, taken) and wait for the provider's answer. *sent: its
 * STREAM_OPEN left (the provider may have seen it). */
static int open_wait(struct svc_node *sn, struct open_msg *o, uint32_t timeout_ms,
		     struct svc_node_stream **out, struct svc_node_stream_info *info, int *sent)
{
	struct svc_node_stream *w = calloc(1, sizeof(*w));
	uint64_t dl;
	int err, expect;

	*sent = 0;
	if (!w) {
		free(o->payload);
		free(o);
		return -ENOMEM;
	}
	w->sn = sn;
	sem_init(&w->sem, 0, 0);
	atomic_init(&w->refs, 2); /* the caller, the message */
	atomic_init(&w->state, W_WAITING);
	atomic_init(&w->sent, 0);
	o->m.fn = svcn_sx_open_run;
	o->sn = sn;
	o->w = w;
	o->timeout_ms = timeout_ms;
	err = svc_backend_post(sn->backend, &o->m);
	if (err) {
		free(o->payload);
		free(o);
		atomic_store(&w->refs, 1);
		svcn_sx_wput(w);
		return err;
	}
	dl = svcn_now_ns() + ((uint64_t)timeout_ms + SVC_NODE_NET_MARGIN_MS) * 1000000ull;
	for (;;) {
		uint64_t step = svcn_now_ns() + SVCN_JOB_POLL_MS * 1000000ull;

		if (!svcn_sem_wait_until(&w->sem, step < dl ? step : dl))
			break;
		if (atomic_load(&sn->stopping) || svcn_now_ns() >= dl) {
			expect = W_WAITING;
			if (atomic_compare_exchange_strong(&w->state, &expect, W_ABANDONED)) {
				*sent = atomic_load(&w->sent);
				svcn_sx_wput(w);
				return atomic_load(&sn->stopping) ? -ESHUTDOWN : -ETIMEDOUT;
			}
			sem_wait(&w->sem); /* told just now */
			break;
		}
	}
	/* svcn_sx_wtell stored DONE (its CAS) after w->rc and w->info and
	 * before its sem_post: this load orders them before our reads for a
	 * checker that does not follow sem_clockwait (TSan reported the reads
	 * as a race), as svcn_owner_run and svcn_job_wait do. */
	while (atomic_load(&w->state) != W_DONE)
		sched_yield();
	*sent = atomic_load(&w->sent);
	if (w->rc) {
		err = w->rc;
		svcn_sx_wput(w);
		return err;
	}
	info->id = w->info.id;
	info->err = w->info.err;
	info->reason = w->info.reason;
	if (w->info.err != SVC_OK) {
		svcn_sx_wput(w);
		return 0;
	}
	*out = w;
	return 0;
}

/* A stream's open, at one provider after another (svcn_try_providers,
 * svcn_reach: the calls' way of reaching them). */
struct stream_try {
	const char *name, *method;
	uint32_t idle_ms;
	const uint8_t *payload; /* WebSocket: the client's request head */
	size_t payload_len;
	struct svc_node_stream **out;
	struct svc_node_stream_info *info;
	int has_assert; /* this node's assertion over the open */
	uint8_t assertion[SVC_ASSERT_LEN];
};

/* Sign the open (docs/SERVICE.md, "Caller assertions": the stream's
 * method, an empty body), once for all its attempts. */
static void stream_sign(struct svc_node *sn, struct stream_try *a)
{
	a->has_assert = svcn_assert_new(sn, a->assertion, a->name, a->method, NULL, 0);
}

static int stream_try_remote(struct svc_node *sn, void *arg, const struct svc_dir_result *r,
			     const struct sockaddr_storage *ss, socklen_t sl, uint32_t timeout_ms,
			     uint32_t direct_ms, int by_key, int *unsent)
{
	struct stream_try *a = arg;
	struct open_msg *o = calloc(1, sizeof(*o));
	int err, sent = 0;

	(void)by_key;
	*a->out = NULL;
	memset(a->info, 0, sizeof(*a->info));
	memcpy(a->info->peer, r->owner, IDENTITY_PK_LEN);
	*unsent = 1;
	if (!o || (a->payload_len && !(o->payload = malloc(a->payload_len)))) {
		free(o);
		return -ENOMEM;
	}
	if (a->payload_len)
		memcpy(o->payload, a->payload, a->payload_len);
	o->payload_len = a->payload_len;
	o->ss = *ss;
	o->sl = sl;
	memcpy(o->key, r->owner, IDENTITY_PK_LEN);
	snprintf(o->name, sizeof(o->name), "%s", a->name);
	snprintf(o->method, sizeof(o->method), "%s", a->method);
	o->idle_ms = a->idle_ms;
	o->direct_ms = direct_ms;
	o->has_assert = a->has_assert;
	memcpy(o->assertion, a->assertion, SVC_ASSERT_LEN);
	err = open_wait(sn, o, timeout_ms, a->out, a->info, &sent);
	*unsent = err && !sent;
	return err;
}

/* This node offers it: the stream goes to our own endpoint over QUIC (a
 * connection to ourselves through the pool), so that the provider's side
 * (admission, limits, handlers, the backend's upgrade) is the one every
 * caller gets. The descriptor's endpoints are this host's addresses
 * (svcn_endpoints), which the kernel delivers back to our socket: never
 * by key. With AF_XDP too: the route to our own address leaves by lo,
 * not the NIC, so io_neigh finds no neighbour and xsk_tx hands the frame
 * to the kernel-path socket of its port, which the kernel delivers to
 * (xsk.c:tx_kernel, counted in tx_kernel). */
static int stream_try_local(struct svc_node *sn, void *arg, const struct svc_dir_result *r,
			    uint64_t end_ns, int *unsent)
{
	struct sockaddr_storage ss = {0};
	uint64_t now = svcn_now_ns();
	unsigned int l = 0;

	*unsent = 1;
	if (now + 1000000ull >= end_ns)
		return -ETIMEDOUT;
	for (uint32_t e = 0; e < r->n_endpoints; e++)
		if (!util_parse_addr(r->endpoints[e], &ss, &l))
			return stream_try_remote(sn, arg, r, &ss, (socklen_t)l,
						 (uint32_t)((end_ns - now) / 1000000ull), 0, 0,
						 unsent);
	return -EHOSTUNREACH;
}

/* Nothing reached the caller before the open ends: the next provider may
 * have it, unless this node stops, is out of memory or of stream slots,
 * or the provider answered anything but not_found / overloaded. */
static int stream_try_again(void *arg, int err, int unsent)
{
	struct stream_try *a = arg;

	(void)unsent;
	if (err)
		return err != -ESHUTDOWN && err != -ENOMEM && err != -EBUSY;
	return !*a->out && (a->info->err == SVC_ERR_NOT_FOUND || a->info->err == SVC_ERR_OVERLOADED);
}

static const struct svcn_try stream_try_fns = {
	.fn = stream_try_remote, .local = stream_try_local, .again = stream_try_again, .split = 1};

int svc_node_stream_open(struct svc_node *sn, const char *name, const char *method,
			 uint32_t idle_ms, uint32_t timeout_ms, struct svc_node_stream **out,
			 struct svc_node_stream_info *info)
{
	struct stream_try a = {.name = name, .idle_ms = idle_ms, .out = out, .info = info};
	struct svcn_try t = stream_try_fns;

	*out = NULL;
	memset(info, 0, sizeof(*info));
	a.method = method ? method : "";
	if (!svc_name_valid((const uint8_t *)name, strlen(name)) ||
	    !svc_method_valid((const uint8_t *)a.method, strlen(a.method)))
		return -EINVAL;
	t.arg = &a;
	stream_sign(sn, &a);
	return svcn_try_providers(sn, name, NULL, svcn_clamp_timeout(sn, timeout_ms),
				  SVC_NODE_CALL_ATTEMPTS, &t, NULL);
}

int svcn_strm_open_ws(struct svc_node *sn, const char *service, const struct svc_dir_result *pin,
		      const uint8_t *req, size_t len, uint32_t idle_ms, uint32_t timeout_ms,
		      struct svc_node_stream **out, uint8_t **head, size_t *head_len,
		      struct svc_node_stream_info *info)
{
	struct stream_try a = {.name = service,
			       .method = "ws",
			       .payload = req,
			       .payload_len = len,
			       .idle_ms = idle_ms,
			       .out = out,
			       .info = info};
	struct svcn_try t = stream_try_fns;
	int err, unsent, keyed;

	*out = NULL;
	*head = NULL;
	*head_len = 0;
	memset(info, 0, sizeof(*info));
	if (!len)
		return -EINVAL;
	t.arg = &a;
	stream_sign(sn, &a);
	timeout_ms = svcn_clamp_timeout(sn, timeout_ms);
	if (pin) {
		uint64_t end = svcn_now_ns() + (uint64_t)timeout_ms * 1000000ull;

		err = memcmp(pin->owner, sn->id.pk, IDENTITY_PK_LEN)
			      ? svcn_reach(sn, pin, end, end, stream_try_remote, &a, &unsent, &keyed)
			      : stream_try_local(sn, &a, pin, end, &unsent);
	} else {
		err = svcn_try_providers(sn, service, NULL, timeout_ms, SVC_NODE_CALL_ATTEMPTS, &t,
					 NULL);
	}
	if (!err && *out) {
		*head = (*out)->head;
		*head_len = (*out)->head_len;
		(*out)->head = NULL;
	}
	return err;
}

static void attach_run(struct svc_backend_msg *mm, int cancel)
{
	struct open_msg *o = (struct open_msg *)mm;
	struct svc_node_stream *w = o->w;
	struct svcn_strm *s = cancel ? NULL : w->s;
	struct svc_node_stream_info info = {.id = w->info.id, .ended = 1};

	if (!s || s->draining || s->zombie) {
		info.err = SVC_ERR_BACKEND_ERROR;
		info.reason = SVC_STREAM_R_RESET;
		if (cancel) {
			info.err = SVC_ERR_OVERLOADED;
			info.reason = SVC_STREAM_R_SHUTDOWN;
		}
		if (o->release)
			o->release(o->rel_arg, o->fd, &info);
		goto out;
	}
	if (!o->release) { /* abort */
		svcn_sx_fail(s, SVC_ERR_BACKEND_ERROR, SVC_STREAM_R_LOCAL);
		goto out;
	}
	s->fd = o->fd;
	s->local = LOCAL_FD;
	s->release = o->release;
	s->rel_arg = o->rel_arg;
	fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
	{
		int one = 1; /* a TCP client (the gateway's): no Nagle wait; unix: ignored */

		setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	svcn_sx_touch(s);
	if (o->head_len && svcn_sx_send_data(s, o->head, o->head_len) < 0 && s->zombie)
		goto out;
	svcn_sx_pump(s);
	svcn_sx_zombies_free(s->sn->strms);
out:
	svcn_sx_wput(w);
	free(o->head);
	free(o);
}

static int post_attach(struct svc_node_stream *w, int fd, const uint8_t *head, size_t len,
		       void (*release)(void *, int, const struct svc_node_stream_info *),
		       void *arg)
{
	struct svc_node *sn = w->sn;
	struct open_msg *o = calloc(1, sizeof(*o));

	if (!o || (len && !(o->head = malloc(len)))) {
		free(o);
		return -ENOMEM;
	}
	if (len)
		memcpy(o->head, head, len);
	o->head_len = len;
	o->m.fn = attach_run;
	o->sn = w->sn;
	o->w = w;
	o->fd = fd;
	o->release = release;
	o->rel_arg = arg;
	/* After svc_node_stop set stopping, the owner may never run again
	 * before the server that lent fd stops (svcn_strm_stop_wait): given
	 * back here, at once. */
	pthread_mutex_lock(&sn->attach_mu);
	if (atomic_load(&sn->stopping) || svc_backend_post(sn->backend, &o->m)) {
		pthread_mutex_unlock(&sn->attach_mu);
		attach_run(&o->m, 1);
		return -ESHUTDOWN;
	}
	/* w may be gone now (the owner ran the message): sn only */
	pthread_mutex_unlock(&sn->attach_mu);
	return 0;
}

int svc_node_stream_attach(struct svc_node_stream *w, int fd, const uint8_t *head, size_t len,
			   void (*release)(void *arg, int fd, const struct svc_node_stream_info *i),
			   void *arg)
{
	int err = post_attach(w, fd, head, len, release, arg);

	if (err == -ENOMEM) {
		struct svc_node_stream_info info = {.id = w->info.id,
						    .ended = 1,
						    .err = SVC_ERR_OVERLOADED,
						    .reason = SVC_STREAM_R_LOCAL};

		release(arg, fd, &info);
		svcn_sx_wput(w);
	}
	return err;
}

void svc_node_stream_abort(struct svc_node_stream *w)
{
	if (w && post_attach(w, -1, NULL, 0, NULL, NULL) == -ENOMEM)
		svcn_sx_wput(w);
}

struct result_arg {
	uint64_t id;
	struct svc_node_stream_info *out;
	int found;
};

static void result_run(struct svc_node *sn, void *arg)
{
	struct result_arg *a = arg;
	struct svcn_strms *ss = sn->strms;

	for (struct svcn_strm *s = ss->all; s; s = s->next)
		if (s->id == a->id && s->role == ROLE_CALLER) {
			memset(a->out, 0, sizeof(*a->out));
			a->out->id = s->id;
			a->out->bytes_in = s->bytes_rx;
			a->out->bytes_out = s->bytes_tx;
			memcpy(a->out->peer, s->peer.key, IDENTITY_PK_LEN);
			a->found = 1;
			return;
		}
	for (unsigned int i = 0; i < SVC_NODE_STREAM_ENDED; i++)
		if (ss->done[i].id == a->id && ss->done[i].ended) {
			*a->out = ss->done[i];
			a->found = 1;
			return;
		}
}

int svc_node_stream_result(struct svc_node *sn, uint64_t id, struct svc_node_stream_info *out)
{
	struct result_arg a = {.id = id, .out = out};
	int err;

	if (!id)
		return -ENOENT;
	err = svcn_owner_run(sn, result_run, &a, SVCN_OWNER_RUN_MS);
	if (err)
		return err;
	return a.found ? 0 : -ENOENT;
}

json_t *svcn_strm_stats(struct svc_node *sn)
{
	struct svcn_strms *ss = sn->strms;
	json_t *o = json_object(), *e = json_object();

	json_object_set_new(o, "open", json_integer(ss->n));
	json_object_set_new(o, "opened", json_integer((json_int_t)ss->opened));
	json_object_set_new(o, "refused", json_integer((json_int_t)ss->refused));
	json_object_set_new(o, "bytes_in", json_integer((json_int_t)ss->bytes_in));
	json_object_set_new(o, "bytes_out", json_integer((json_int_t)ss->bytes_out));
	for (unsigned int i = 0; i < SVC_STREAM_R__COUNT; i++)
		json_object_set_new(e, svc_stream_reason_name(i), json_integer((json_int_t)ss->ended[i]));
	json_object_set_new(o, "ended", e);
	return o;
}

/* ---- the stop: every stream ends, its lent socket given back ---- */

static void stop_run(struct svc_backend_msg *m, int cancel)
{
	struct svc_node *sn = ((struct open_msg *)m)->sn;

	if (!cancel)
		svcn_strm_expire(sn, svcn_now_ns());
	atomic_store(&sn->strms->stopped, 1);
	free(m);
}

void svcn_strm_stop(struct svc_node *sn)
{
	struct open_msg *o;

	if (!sn->strms || !sn->backend || !(o = calloc(1, sizeof(*o))))
		return;
	o->m.fn = stop_run;
	o->sn = sn;
	if (svc_backend_post(sn->backend, &o->m))
		free(o);
}

void svcn_strm_stop_wait(struct svc_node *sn)
{
	uint64_t end = util_now_ms() + SVCN_STRM_STOP_WAIT_MS;

	if (!sn->strms || !sn->backend)
		return;
	if (engine_halted(sn->eng) && svc_backend_turn_here(sn->backend))
		return; /* the owner's host stopped: its turn ran here */
	while (!atomic_load(&sn->strms->stopped) && util_now_ms() < end &&
	       !svc_backend_on_loop(sn->backend))
		usleep(1000);
}
