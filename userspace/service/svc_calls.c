// SPDX-License-Identifier: MIT
/*
 * Calls on the service fabric (docs/SERVICE.md): svc_node_call (the
 * provider picked by svc_find.c; this node's router and backend, or a CALL
 * stream on a pooled connection, svc_ops.c; by the provider's key when its
 * endpoints do not answer) and the load generator of `svc call --count`
 * (svcn_call_many: calls started on the owner as earlier ones end). Both
 * are jobs (svc_jobs.c); the caller waits on its own semaphore.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "svc_calls_int.h"
#include "svc_jobs_int.h"
#include "svc_ops_int.h"
#include "svc_rep_int.h"
#include "weft/quic_node.h"
#include "weft/svc_msg.h"
#include "weft/svc_router.h"
#include "weft/util.h"

/* A call's dials by key claim in its lookup: within the call's timeout. */
static uint32_t call_claim_ms(uint32_t timeout_ms)
{
	return timeout_ms < SVC_NODE_CLAIM_MS ? timeout_ms : SVC_NODE_CLAIM_MS;
}

/* A call's turn on the owner for its lookup: within the call's deadline
 * when that is shorter than a control request's. */
static uint32_t call_turn_ms(uint32_t timeout_ms)
{
	uint32_t ms = timeout_ms + SVC_NODE_NET_MARGIN_MS;

	return ms < SVCN_OWNER_RUN_MS ? ms : SVCN_OWNER_RUN_MS;
}

struct load_job;

/* Wall clock in ms since the epoch: an assertion's time. */
static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int svcn_assert_new(struct svc_node *sn, uint8_t out[SVC_ASSERT_LEN], const char *service,
		    const char *method, const uint8_t *body, size_t body_len)
{
	uint8_t rid[SVC_REQ_ID_LEN];

	randombytes_buf(rid, sizeof(rid));
	return !svc_assert_sign(out, &sn->id, service, strlen(service), method, strlen(method), rid,
				body, body_len, wall_ms());
}

/* One call on the owner: to this node's router (and backend) or a remote
 * provider's stream. Told to its caller, or to its load job. */
struct call_job {
	struct svcn_job j;
	struct load_job *parent; /* a load's call (holds a reference to it) */
	int local;
	uint8_t key[IDENTITY_PK_LEN];
	struct sockaddr_storage ss;
	socklen_t sl;
	char name[SVC_NAME_MAX + 1], method[SVC_METHOD_MAX + 1];
	const uint8_t *req; /* local: the payload; remote: the encoded REQUEST */
	size_t req_len;
	uint8_t *own_req;   /* req when this job owns it */
	uint32_t timeout_ms;
	/* Dial by key (see svc_node_call): direct_ms > 0 bounds the wait for
	 * the descriptor's endpoint to answer; unsent: the call ended before
	 * its REQUEST left (safe to make again elsewhere); by_key: this call
	 * goes to an address the provider's key resolved to. */
	uint32_t direct_ms;
	int direct, unsent, by_key;
	struct svcn_op *op;
	struct svc_ticket t;
	uint64_t t0;
	struct svc_node_call_res res;
	/* This node's assertion over the call (docs/SERVICE.md, "Caller
	 * assertions"): made once when the job is made. */
	int has_assert;
	uint8_t assertion[SVC_ASSERT_LEN];
};

static void load_call_done(struct svc_node *sn, struct load_job *l, struct call_job *c);
static void load_put(struct load_job *l);

static void call_free(struct svcn_job *j)
{
	struct call_job *c = (struct call_job *)j;

	free(c->res.data);
	free(c->own_req);
	if (c->parent)
		load_put(c->parent);
	free(c);
}

/* An answered call's latency into the histogram (owner). */
static void count_latency(struct svc_node *sn, uint64_t us)
{
	static const uint64_t le[SVCN_LAT_BUCKETS] = SVCN_LAT_BOUNDS_US;
	unsigned int b = 0;

	while (b < SVCN_LAT_BUCKETS && us > le[b])
		b++;
	sn->st.call_lat[b]++;
	sn->st.call_lat_sum_us += us;
}

static void call_finish(struct svc_node *sn, struct call_job *c, int err)
{
	if (c->j.finished)
		return;
	c->j.err = err;
	if (c->op) {
		svcn_op_put(sn, c->op);
		c->op = NULL;
	}
	if (!err)
		count_latency(sn, c->res.rtt_us);
	if (c->parent) {
		c->j.finished = 1;
		svcn_job_unlist(sn, &c->j);
		load_call_done(sn, c->parent, c);
		svcn_job_put(&c->j);
		return;
	}
	svcn_job_deliver(sn, &c->j);
}

/* The local backend's answer (on the owner). Its reference to the job. */
static void call_backend_done(void *ctx, int err, uint32_t status, uint8_t *resp, size_t len)
{
	struct call_job *c = ctx;
	struct svc_node *sn = c->j.sn;

	svc_router_done(sn->router, &c->t, err, svcn_now_ns());
	if (!c->j.finished) {
		c->res.err = err;
		c->res.status = status;
		c->res.data = resp;
		c->res.len = len;
		c->res.rtt_us = (svcn_now_ns() - c->t0) / 1000;
		resp = NULL;
		call_finish(sn, c, 0);
	}
	free(resp);
	svcn_job_put(&c->j);
}

static void call_local(struct svc_node *sn, struct call_job *c)
{
	struct svc_backend_req br = {0};
	struct svc_msg m = {.type = SVC_MSG_REQUEST};
	struct svc_peer self = {0};
	struct svc_reply reply = {0};
	struct sockaddr_in *lo = (struct sockaddr_in *)&self.addr;
	int r;

	/* This node offers it: through our own router, as ourselves. */
	memcpy(self.key, sn->id.pk, IDENTITY_PK_LEN);
	lo->sin_family = AF_INET;
	lo->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	m.service = c->name;
	m.service_len = strlen(c->name);
	m.method = c->method;
	m.method_len = strlen(c->method);
	m.payload = c->req;
	m.payload_len = c->req_len;
	m.timeout_ms = c->timeout_ms;
	r = svc_router_call(sn->router, &self, &m, svcn_now_ns(), &reply, &c->t);
	if (r < 0) {
		call_finish(sn, c, r);
		return;
	}
	if (r == 0) {
		c->res.err = reply.err;
		c->res.status = reply.status;
		c->res.data = reply.buf;
		c->res.len = reply.len;
		c->res.rtt_us = (svcn_now_ns() - c->t0) / 1000;
		call_finish(sn, c, 0);
		return;
	}
	atomic_fetch_add(&c->j.refs, 1); /* the backend's */
	br.service = c->name;
	br.method = c->method;
	br.caller = sn->id.pk;
	br.assertion = c->has_assert ? c->assertion : NULL;
	br.payload = c->req;
	br.len = c->req_len;
	br.timeout_ms = c->timeout_ms;
	r = svc_backend_submit(sn->backend, c->t.backend, &br, call_backend_done, c);
	if (r) {
		atomic_fetch_sub(&c->j.refs, 1);
		svc_router_done(sn->router, &c->t, SVC_ERR_OVERLOADED, svcn_now_ns());
		if (r == -EBUSY)
			c->res.err = SVC_ERR_OVERLOADED;
		call_finish(sn, c, r == -EBUSY ? 0 : r);
		return;
	}
	svcn_job_list(sn, &c->j,
		 svcn_now_ns() + (uint64_t)(c->timeout_ms + SVC_NODE_NET_MARGIN_MS) * 1000000ull);
}

static void call_start(struct svc_node *sn, struct svcn_job *j)
{
	struct call_job *c = (struct call_job *)j;
	int err;

	c->t0 = svcn_now_ns();
	if (c->local) {
		call_local(sn, c);
		return;
	}
	sn->st.calls_out++;
	sn->st.calls_by_key += c->by_key;
	c->op = svcn_op_start(sn, SVCN_OP_CALL, (const struct sockaddr *)&c->ss, c->sl, c->key,
			      c->req, c->req_len, SVCN_RESP_MAX(sn), &c->j, &err);
	if (!c->op) {
		call_finish(sn, c, err);
		return;
	}
	c->direct = c->direct_ms > 0;
	svcn_job_list(sn, &c->j,
		 c->t0 + (uint64_t)((c->direct ? c->direct_ms
					       : c->timeout_ms + SVC_NODE_NET_MARGIN_MS)) *
				 1000000ull);
}

/* The provider's reputation: an outcome on the connection's peer, and in
 * the lasting table (svc_reputation.c) by the provider's key. good: 1
 * answered ok, 0 failed (dead: never reached), -1 an answer that says
 * nothing of the provider (the caller's own fault: bad_request,
 * too_large, rate_limited, banned). */
static void call_outcome(struct svc_node *sn, struct call_job *c, int good, int dead)
{
	struct svcn_peer *p = c->op ? svcn_peer_by_conn(sn, c->op->conn) : NULL;

	if (p && good >= 0) {
		if (good)
			p->ok++;
		else
			p->failed++;
	}
	if (good >= 0)
		svcn_rep_note(sn, c->key, good, good ? (uint32_t)c->res.rtt_us : 0, dead);
	if (good > 0) {
		sn->st.calls_out_ok++;
		sn->st.calls_by_key_ok += c->by_key;
	}
}

/* Does an answer's class speak of the provider? 1 ok, 0 its failure, -1
 * neither (see call_outcome). */
static int class_outcome(unsigned int e)
{
	switch (e) {
	case SVC_OK: return 1;
	case SVC_ERR_NOT_FOUND:
	case SVC_ERR_OVERLOADED:
	case SVC_ERR_BACKEND_ERROR:
	case SVC_ERR_TIMEOUT: return 0;
	default: return -1;
	}
}

static void call_op_done(struct svc_node *sn, struct svcn_job *j, struct svcn_op *o)
{
	struct call_job *c = (struct call_job *)j;
	struct svc_msg rm;
	int err = o->err;
	long dl;

	c->unsent = err && !o->opened && !o->posted;
	if (!err) {
		dl = svc_msg_decode(&rm, o->resp, o->resp_len, svcn_max_payload(sn));
		if (dl < 0 || rm.type != SVC_MSG_RESPONSE) {
			err = -EBADMSG;
		} else {
			c->res.err = rm.err;
			c->res.status = rm.status;
			c->res.rtt_us = (o->t1_ns - o->t0_ns) / 1000;
			if (rm.payload_len) {
				c->res.data = malloc(rm.payload_len);
				if (c->res.data) {
					memcpy(c->res.data, rm.payload, rm.payload_len);
					c->res.len = rm.payload_len;
				}
			}
		}
	}
	call_outcome(sn, c, err ? 0 : class_outcome(c->res.err), c->unsent);
	call_finish(sn, c, err);
}

static void call_expire(struct svc_node *sn, struct svcn_job *j)
{
	struct call_job *c = (struct call_job *)j;

	if (c->direct) {
		/* The endpoint's time is up: a call whose REQUEST left waits
		 * for its own deadline; one still dialling ends unsent. */
		c->direct = 0;
		if (c->op && (c->op->opened || c->op->posted)) {
			svcn_job_list(sn, &c->j,
				 c->t0 + (uint64_t)(c->timeout_ms + SVC_NODE_NET_MARGIN_MS) *
						 1000000ull);
			return;
		}
		c->unsent = 1;
		call_finish(sn, c, -EHOSTUNREACH);
		return;
	}
	if (!c->local)
		call_outcome(sn, c, 0, !(c->op && (c->op->opened || c->op->posted)));
	call_finish(sn, c, -ETIMEDOUT);
}

/* A call job for name on the provider picked (r, ss: see svcn_pick; local
 * 1 = this node). Remote: the REQUEST is encoded here. */
static struct call_job *call_new(struct svc_node *sn, const char *name, const char *method,
				 const uint8_t *payload, size_t len, uint32_t timeout_ms, int local,
				 const struct svc_dir_result *r, const struct sockaddr_storage *ss,
				 socklen_t sl, int *err)
{
	struct call_job *c = calloc(1, sizeof(*c));

	if (!c) {
		*err = -ENOMEM;
		return NULL;
	}
	svcn_job_init(&c->j, sn, 2);
	c->j.start = call_start;
	c->j.op_done = call_op_done;
	c->j.expire = call_expire;
	c->j.free = call_free;
	c->local = local;
	memcpy(c->key, r->owner, IDENTITY_PK_LEN);
	if (ss)
		c->ss = *ss;
	c->sl = sl;
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->method, sizeof(c->method), "%s", method);
	c->timeout_ms = timeout_ms;
	c->has_assert = svcn_assert_new(sn, c->assertion, name, method, payload, len);
	if (local) {
		c->req = payload;
		c->req_len = len;
	} else {
		struct svc_msg m = {.type = SVC_MSG_REQUEST};
		size_t rl;

		m.assertion = c->has_assert ? c->assertion : NULL;
		m.service = name;
		m.service_len = strlen(name);
		m.method = method;
		m.method_len = strlen(method);
		m.payload = payload;
		m.payload_len = len;
		m.timeout_ms = timeout_ms;
		rl = svc_msg_len(&m);
		c->own_req = malloc(rl);
		*err = c->own_req ? svc_msg_encode(&m, c->own_req, rl, &rl) : -ENOMEM;
		if (*err) {
			free(c->own_req);
			free(c);
			return NULL;
		}
		c->req = c->own_req;
		c->req_len = rl;
	}
	*err = 0;
	return c;
}

/* One call job on the provider picked (see call_new; direct_ms, by_key: see
 * struct call_job), the caller waiting for it. *unsent: it ended before
 * its REQUEST left. */
static int call_run(struct svc_node *sn, const char *name, const char *method,
		    const uint8_t *payload, size_t len, uint32_t timeout_ms, int local,
		    const struct svc_dir_result *r, const struct sockaddr_storage *ss, socklen_t sl,
		    uint32_t direct_ms, int by_key, struct svc_node_call_res *res, int *unsent)
{
	struct call_job *c;
	int err;

	*unsent = 0;
	/* The payload is the caller's until the job is over; a local call
	 * reads it on the owner: copy it first. */
	c = call_new(sn, name, method, payload, len, timeout_ms, local, r, ss, sl, &err);
	if (!c)
		return err;
	c->direct_ms = direct_ms;
	c->by_key = by_key;
	if (local && len) {
		c->own_req = malloc(len);
		if (!c->own_req) {
			atomic_store(&c->j.refs, 1);
			svcn_job_put(&c->j);
			return -ENOMEM;
		}
		memcpy(c->own_req, payload, len);
		c->req = c->own_req;
	}
	err = svcn_job_run(sn, &c->j,
		      svcn_now_ns() + (uint64_t)(timeout_ms + SVC_NODE_NET_MARGIN_MS) * 1000000ull +
			  SVCN_WAIT_SLACK_NS);
	if (!err) {
		err = c->j.err;
		*unsent = err && c->unsent;
	}
	if (!err) {
		res->err = c->res.err;
		res->status = c->res.status;
		res->data = c->res.data;
		res->len = c->res.len;
		res->rtt_us = c->res.rtt_us;
		c->res.data = NULL;
	}
	svcn_job_put(&c->j);
	return err;
}

/* The provider's descriptor endpoints did not answer: its key, resolved
 * like `quic ping KEY` (quic_node_resolve: the node record, its direct
 * addresses, else a relay's circuit), each address tried with fn, within
 * end_ns. -EHOSTUNREACH: no record, or nothing it lists answered. */
static int reach_by_key(struct svc_node *sn, const struct svc_dir_result *r, uint64_t end_ns,
			svcn_try_fn fn, void *arg, int *unsent)
{
	char hex[2 * IDENTITY_PK_LEN + 1], t[QUIC_NODE_RESOLVE_MAX][QUIC_NODE_TARGET_MAX];
	uint64_t start = svcn_now_ns();
	int n, err = -EHOSTUNREACH;

	*unsent = 1;
	if (start + 1000000ull >= end_ns)
		return -ETIMEDOUT;
	util_hex(hex, r->owner, IDENTITY_PK_LEN);
	/* The record lookup, direct attempts and relay circuit share what is
	 * left of the deadline: the fallback never overruns it. A miss the
	 * resolver cached (before the provider's record was put) is asked
	 * again: the provider announced since. */
	n = quic_node_resolve_flags(sn->quic, hex, t, QUIC_NODE_RESOLVE_MAX,
				    (unsigned int)((end_ns - start) / 1000000ull), NULL,
				    QUIC_NODE_RESOLVE_PAST_MISS);
	if (n == -ENOENT)
		n = -EHOSTUNREACH; /* no record: nothing else to dial */
	if (n < 0)
		err = n;
	for (int i = 0; i < n && *unsent; i++) {
		uint8_t key[QUIC_KEY_LEN];
		struct sockaddr_storage ss;
		socklen_t sl;
		uint64_t now = svcn_now_ns();
		uint32_t left;
		int have;

		/* What is left of the deadline, shared by the addresses left. */
		left = now + 1000000ull < end_ns
			       ? (uint32_t)((end_ns - now) / 1000000ull / (uint64_t)(n - i))
			       : 0;
		if (!left) {
			err = -ETIMEDOUT;
			break;
		}
		if (quic_node_parse_target(t[i], 0, key, &have, &ss, &sl))
			continue;
		err = fn(sn, arg, r, &ss, sl, left, 0, 1, unsent);
	}
	return err;
}

/* On the owner: a provider that never answered is marked dead. */
struct dead_note {
	const uint8_t *key;
};

static void mark_dead_own(struct svc_node *sn, void *arg)
{
	struct dead_note *d = arg;

	svcn_rep_note(sn, d->key, -1, 0, 1); /* the failure itself is counted */
}

int svcn_reach(struct svc_node *sn, const struct svc_dir_result *r, uint64_t end_ns,
	       uint64_t key_end_ns, svcn_try_fn fn, void *arg, int *unsent, int *keyed)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl = 0;
	uint64_t now = svcn_now_ns();
	uint32_t timeout_ms, direct_ms = 0;
	int err = -EHOSTUNREACH, have_ep = 0;

	*unsent = 1;
	*keyed = 0;
	if (now + 1000000ull >= end_ns)
		return -ETIMEDOUT;
	timeout_ms = (uint32_t)((end_ns - now) / 1000000ull);
	for (uint32_t e = 0; e < r->n_endpoints && !have_ep; e++) {
		unsigned int l;

		if (!util_parse_addr(r->endpoints[e], &ss, &l)) {
			sl = (socklen_t)l;
			have_ep = 1;
		}
	}
	/* A provider whose endpoints may not answer (behind NAT) is reachable
	 * by its key: the endpoint gets a quarter of the time (at most
	 * QUIC_NODE_DIRECT_MS) to answer, the key the rest. */
	if (timeout_ms >= SVCN_BY_KEY_MIN_MS && quic_node_can_resolve(sn->quic)) {
		direct_ms = timeout_ms / 4;
		if (direct_ms > QUIC_NODE_DIRECT_MS)
			direct_ms = QUIC_NODE_DIRECT_MS;
	}
	if (have_ep)
		err = fn(sn, arg, r, &ss, sl, timeout_ms, direct_ms, 0, unsent);
	if (err && *unsent && (direct_ms || !have_ep) && quic_node_can_resolve(sn->quic)) {
		*keyed = 1;
		err = reach_by_key(sn, r, key_end_ns + SVC_NODE_NET_MARGIN_MS * 1000000ull, fn, arg,
				   unsent);
	}
	return err;
}

int svcn_try_providers(struct svc_node *sn, const char *name, const struct svc_vrange *vr,
		       uint32_t timeout_ms, uint32_t max_att, const struct svcn_try *t,
		       unsigned int *attempts)
{
	struct svc_dir_result *rs;
	uint64_t end_ns;
	int n, err = -ENOENT, tried = 0;

	if (attempts)
		*attempts = 0;
	rs = calloc(SVC_DIR_DEFAULT_RESULTS, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	n = svcn_pick_list(sn, name, vr, rs, SVC_DIR_DEFAULT_RESULTS, call_turn_ms(timeout_ms),
			   call_claim_ms(timeout_ms));
	if (n <= 0) {
		free(rs);
		return n < 0 ? n : -ENOENT;
	}
	end_ns = svcn_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (int i = 0; i < n && (uint32_t)tried < max_att; i++) {
		const struct svc_dir_result *r = &rs[i];
		int unsent = 0, last, keyed = 0;
		uint64_t key_end;

		if (tried && svcn_now_ns() + 1000000ull >= end_ns)
			break;
		if (i && r->dead && tried)
			break; /* the rest were not reachable either, lately */
		tried++;
		if (!memcmp(r->owner, sn->id.pk, IDENTITY_PK_LEN)) {
			/* This node offers it. */
			err = t->local(sn, t->arg, r, end_ns, &unsent);
		} else {
			/* A provider that may be followed by another keeps half
			 * of what is left for it: its key's resolution (record,
			 * relay) must not eat the whole time. */
			last = (uint32_t)tried >= max_att || i + 1 >= n;
			key_end = last ? end_ns : svcn_now_ns() + (end_ns - svcn_now_ns()) / 2;
			err = svcn_reach(sn, r, t->split ? key_end : end_ns, key_end, t->fn, t->arg,
					 &unsent, &keyed);
			if (err && keyed && t->key_failed)
				atomic_fetch_add(t->key_failed, 1);
			if (err && err != -ESHUTDOWN && err != -EBUSY && err != -ENOMEM) {
				struct dead_note d = {.key = r->owner};

				svcn_owner_run(sn, mark_dead_own, &d, SVCN_OWNER_RUN_MS);
			}
		}
		if (!t->again(t->arg, err, unsent) || i + 1 >= n || (uint32_t)tried >= max_att)
			break;
		atomic_fetch_add(&sn->failovers, 1);
	}
	if (attempts)
		*attempts = (unsigned int)tried;
	free(rs);
	return err;
}

/* A call's attempt at one address of a provider, or at this node. */
struct call_try {
	const char *name, *method;
	const uint8_t *payload;
	size_t len;
	enum svc_node_retry retry;
	struct svc_node_call_res *res;
};

/* Before another attempt: a result of the last one is dropped. */
static void call_try_reset(struct call_try *a, const struct svc_dir_result *r)
{
	free(a->res->data);
	memset(a->res, 0, sizeof(*a->res));
	memcpy(a->res->peer, r->owner, IDENTITY_PK_LEN);
}

static int call_try_remote(struct svc_node *sn, void *arg, const struct svc_dir_result *r,
			   const struct sockaddr_storage *ss, socklen_t sl, uint32_t timeout_ms,
			   uint32_t direct_ms, int by_key, int *unsent)
{
	struct call_try *a = arg;

	call_try_reset(a, r);
	return call_run(sn, a->name, a->method, a->payload, a->len, timeout_ms, 0, r, ss, sl,
			direct_ms, by_key, a->res, unsent);
}

static int call_try_local(struct svc_node *sn, void *arg, const struct svc_dir_result *r,
			  uint64_t end_ns, int *unsent)
{
	struct call_try *a = arg;
	uint64_t now = svcn_now_ns();

	call_try_reset(a, r);
	/* This node offers it: through our own router. */
	return call_run(sn, a->name, a->method, a->payload, a->len,
			now < end_ns ? (uint32_t)((end_ns - now) / 1000000ull) : 0, 1, r, NULL, 0,
			0, 0, a->res, unsent);
}

/* Should a call that ended so at one provider be made at the next? err:
 * the transport's (-errno) or 0 with res->err the answer's class. */
static int call_try_again(void *arg, int err, int unsent)
{
	struct call_try *a = arg;

	if (a->retry == SVC_NODE_RETRY_NEVER || err == -ESHUTDOWN)
		return 0;
	if (err)
		return unsent || a->retry == SVC_NODE_RETRY_ALWAYS;
	/* answered: the provider does not offer it (any more), or it could
	 * not take the call: the request reached no backend */
	return a->res->err == SVC_ERR_NOT_FOUND || a->res->err == SVC_ERR_OVERLOADED;
}

int svc_node_call_ex(struct svc_node *sn, const char *name, const char *method,
		     const uint8_t *payload, size_t len, uint32_t timeout_ms,
		     const struct svc_node_call_opts *co, struct svc_node_call_res *res,
		     unsigned int *attempts)
{
	struct svc_node_call_opts def = {0};
	struct call_try a = {.name = name, .payload = payload, .len = len, .res = res};
	struct svcn_try t = {.fn = call_try_remote,
			     .local = call_try_local,
			     .again = call_try_again,
			     .arg = &a,
			     .key_failed = &sn->calls_by_key_failed};
	uint32_t max_att;

	memset(res, 0, sizeof(*res));
	if (!co)
		co = &def;
	a.method = method ? method : "";
	a.retry = co->retry;
	/* A method that may run twice is worth a second provider after a
	 * timeout: one that may be followed by another gets half the time. */
	t.split = co->retry == SVC_NODE_RETRY_ALWAYS;
	max_att = co->attempts ? co->attempts : SVC_NODE_CALL_ATTEMPTS;
	if (max_att > 8)
		max_att = 8;
	if (co->retry == SVC_NODE_RETRY_NEVER)
		max_att = 1;
	return svcn_try_providers(sn, name, co->version, svcn_clamp_timeout(sn, timeout_ms),
				  max_att, &t, attempts);
}

int svc_node_retry_parse(const char *s, enum svc_node_retry *out)
{
	if (!strcmp(s, "unsent"))
		*out = SVC_NODE_RETRY_UNSENT;
	else if (!strcmp(s, "never"))
		*out = SVC_NODE_RETRY_NEVER;
	else if (!strcmp(s, "always"))
		*out = SVC_NODE_RETRY_ALWAYS;
	else
		return -EINVAL;
	return 0;
}

int svc_node_call(struct svc_node *sn, const char *name, const char *method,
		  const uint8_t *payload, size_t len, uint32_t timeout_ms,
		  struct svc_node_call_res *res)
{
	return svc_node_call_ex(sn, name, method, payload, len, timeout_ms, NULL, res, NULL);
}

/* ------------------------------------------------- the load generator */

/* count calls, conc in flight, each a call job of this load; the calls
 * are started on the owner as earlier ones end: no thread per call. */
struct load_job {
	struct svcn_job j;
	struct call_job *proto; /* what every call is made of (never run) */
	long count, started, ended;
	int conc;
	int filling; /* load_fill is running: ends just count */
	uint64_t t0;
	struct svcn_load_res res;
};

static void load_put(struct load_job *l)
{
	svcn_job_put(&l->j);
}

static void load_free(struct svcn_job *j)
{
	struct load_job *l = (struct load_job *)j;

	if (l->proto) {
		atomic_store(&l->proto->j.refs, 1);
		svcn_job_put(&l->proto->j);
	}
	free(l->res.lat);
	free(l);
}

static void load_finish(struct svc_node *sn, struct load_job *l)
{
	if (l->started < l->count && !svcn_job_abandoned(&l->j)) {
		/* Never started (the owner's job table was full, or out of
		 * memory): counted as transport failures, not left out. */
		l->res.errs[SVC_ERR__COUNT] += (uint64_t)(l->count - l->started);
		l->res.last_errno = -EBUSY;
	}
	l->res.elapsed_ns = svcn_now_ns() - l->t0;
	svcn_job_deliver(sn, &l->j);
}

/* Start calls while fewer than conc are in flight. */
static void load_fill(struct svc_node *sn, struct load_job *l)
{
	l->filling = 1;
	while (!l->j.finished && !svcn_job_abandoned(&l->j) && l->started < l->count &&
	       l->started - l->ended < l->conc) {
		struct call_job *p = l->proto, *c = calloc(1, sizeof(*c));

		if (!c || sn->njobs >= SVCN_MAX_JOBS) {
			free(c);
			break; /* the calls in flight start more as they end */
		}
		*c = *p;
		svcn_job_init(&c->j, sn, 1); /* the owner's alone */
		c->own_req = NULL;     /* the prototype's request is shared */
		c->parent = l;
		atomic_fetch_add(&l->j.refs, 1);
		l->started++;
		call_start(sn, &c->j);
	}
	l->filling = 0;
	if (l->started == l->ended && !l->j.finished &&
	    (l->ended == l->count || svcn_job_abandoned(&l->j) || l->started < l->count))
		load_finish(sn, l); /* all done, given up, or nothing could start */
}

static void load_call_done(struct svc_node *sn, struct load_job *l, struct call_job *c)
{
	uint64_t us = (svcn_now_ns() - c->t0) / 1000;

	l->ended++;
	if (l->j.finished)
		return;
	if (us > l->res.max_us)
		l->res.max_us = us;
	if (c->j.err == -ETIMEDOUT) {
		/* Our own deadline passed first: the same answer as the
		 * callee's timeout. */
		l->res.errs[SVC_ERR_TIMEOUT]++;
	} else if (c->j.err) {
		l->res.errs[SVC_ERR__COUNT]++;
		l->res.last_errno = c->j.err;
	} else {
		l->res.errs[c->res.err < SVC_ERR__COUNT ? c->res.err : SVC_ERR_BAD_REQUEST]++;
		if (c->res.err == SVC_OK)
			l->res.lat[l->res.nlat++] = c->res.rtt_us;
	}
	if (!l->filling)
		load_fill(sn, l);
}

static void load_start(struct svc_node *sn, struct svcn_job *j)
{
	struct load_job *l = (struct load_job *)j;

	l->t0 = svcn_now_ns();
	svcn_job_list(sn, j, l->j.deadline_ns);
	load_fill(sn, l);
}

static void load_expire(struct svc_node *sn, struct svcn_job *j)
{
	j->err = -ETIMEDOUT;
	load_finish(sn, (struct load_job *)j);
}

int svcn_call_many(struct svc_node *sn, const char *name, const char *method,
		   const uint8_t *payload, size_t len, uint32_t timeout_ms, long count, int conc,
		   struct svcn_load_res *out)
{
	struct svc_dir_result r;
	struct sockaddr_storage ss = {0};
	socklen_t sl = 0;
	struct load_job *l;
	uint64_t per, rounds;
	int err, local;

	memset(out, 0, sizeof(*out));
	if (count < 1 || conc < 1)
		return -EINVAL;
	timeout_ms = svcn_clamp_timeout(sn, timeout_ms);
	local = svcn_pick_within(sn, name, &r, &ss, &sl, call_turn_ms(timeout_ms),
			    call_claim_ms(timeout_ms));
	if (local < 0)
		return local;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->res.lat = calloc((size_t)count, sizeof(uint64_t));
	l->proto = l->res.lat ? call_new(sn, name, method ? method : "", payload, len, timeout_ms,
					 local, &r, &ss, sl, &err)
			      : NULL;
	if (l->proto && local && len) {
		/* The payload stays the caller's while it waits; a caller
		 * that gives up leaves the calls a copy. */
		l->proto->own_req = malloc(len);
		if (l->proto->own_req) {
			memcpy(l->proto->own_req, payload, len);
			l->proto->req = l->proto->own_req;
		}
	}
	if (!l->proto || (local && len && !l->proto->own_req)) {
		err = l->proto || !l->res.lat ? -ENOMEM : err;
		free(l->res.lat);
		if (l->proto) {
			atomic_store(&l->proto->j.refs, 1);
			svcn_job_put(&l->proto->j);
		}
		free(l);
		return err;
	}
	svcn_job_init(&l->j, sn, 2);
	l->j.start = load_start;
	l->j.expire = load_expire;
	l->j.free = load_free;
	l->count = count;
	l->conc = conc;
	/* Every call ends by its deadline: the load by the rounds of them. */
	per = (uint64_t)(timeout_ms + SVC_NODE_NET_MARGIN_MS) * 1000000ull + SVCN_TICK_NS;
	rounds = ((uint64_t)count + (uint64_t)conc - 1) / (uint64_t)conc;
	l->j.deadline_ns = svcn_now_ns() + rounds * per + 1000000000ull;
	err = svcn_job_run(sn, &l->j, l->j.deadline_ns + SVCN_WAIT_SLACK_NS);
	if (!err)
		err = l->j.err;
	if (!err) {
		*out = l->res;
		l->res.lat = NULL;
	}
	svcn_job_put(&l->j);
	return err;
}
