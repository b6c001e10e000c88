// SPDX-License-Identifier: MIT
/*
 * Callers' requests to the service fabric's owner (docs/SERVICE.md,
 * "Threads and owners"): lookups (svc_node_find, svcn_pick_id), calls
 * (svc_node_call) and the load generator of `svc call --count` (the
 * gateway's HTTP pass-through is in svc_pipe.c). The fabric's state is
 * the owner's (the backend thread) alone: a caller copies its request
 * into a job, posts it (svc_backend_post: lock-free) and waits on the
 * job's own semaphore until its deadline; the owner drives the job
 * (streams, backend calls, DHT results) and delivers the result with a
 * compare-and-swap and a sem_post. A caller holds nothing while it waits
 * and shares nothing with other callers or packet workers; the owner
 * never waits for a caller: a caller that gives up abandons the job
 * (compare-and-swap) and leaves, the owner ends it at its own deadline
 * (svcn_tick) and frees it.
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

/* Deadlines are checked on the owner at most this often (10 ms): a job
 * or pass-through ends at most that late. */
#define SVCN_TICK_NS 10000000ull
/* A caller waits this much past the owner's deadline of its job, so that
 * the owner's answer (timeout included) comes first when it runs. */
#define SVCN_WAIT_SLACK_NS (3 * SVCN_TICK_NS)

/* -------------------------------------------------------------- jobs */

static void job_init(struct svcn_job *j, struct svc_node *sn, int refs)
{
	j->sn = sn;
	atomic_init(&j->refs, refs);
	atomic_init(&j->state, SVCN_JOB_WAITING);
	sem_init(&j->sem, 0, 0);
}

static void job_put(struct svcn_job *j)
{
	if (j && atomic_fetch_sub(&j->refs, 1) == 1) {
		sem_destroy(&j->sem);
		j->free(j);
	}
}

static int job_abandoned(struct svcn_job *j)
{
	return atomic_load(&j->state) == SVCN_JOB_ABANDONED;
}

/* On the owner: j has a deadline (its expire runs then). */
static void job_list(struct svc_node *sn, struct svcn_job *j, uint64_t deadline_ns)
{
	j->deadline_ns = deadline_ns;
	if (!j->listed) {
		j->listed = 1;
		j->prev = NULL;
		j->next = sn->jobs;
		if (sn->jobs)
			sn->jobs->prev = j;
		sn->jobs = j;
		sn->njobs++;
	}
	if (deadline_ns < sn->due_ns)
		sn->due_ns = deadline_ns;
}

static void job_unlist(struct svc_node *sn, struct svcn_job *j)
{
	if (!j->listed)
		return;
	j->listed = 0;
	if (j->prev)
		j->prev->next = j->next;
	else
		sn->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	sn->njobs--;
}

/* On the owner (sn NULL: the owner is gone): j's result is in place; the
 * caller, if still there, takes it. Drops the owner's reference. */
static void job_deliver(struct svc_node *sn, struct svcn_job *j)
{
	int expect = SVCN_JOB_WAITING;

	j->finished = 1;
	if (sn)
		job_unlist(sn, j);
	if (atomic_compare_exchange_strong(&j->state, &expect, SVCN_JOB_DONE))
		sem_post(&j->sem);
	job_put(j);
}

/* The caller's wait: 0 (delivered: read the result), -ETIMEDOUT or
 * -ESHUTDOWN (abandoned: the owner frees it). Never holds anything. */
static int job_wait(struct svc_node *sn, struct svcn_job *j, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = svcn_now_ns(), until;
		int stop = atomic_load(&sn->stopping), expect = SVCN_JOB_WAITING;

		if (atomic_load(&j->state) == SVCN_JOB_DONE)
			return 0;
		if (now >= deadline_ns || stop) {
			if (atomic_compare_exchange_strong(&j->state, &expect, SVCN_JOB_ABANDONED))
				return stop ? -ESHUTDOWN : -ETIMEDOUT;
			return 0; /* delivered meanwhile */
		}
		until = deadline_ns - now > SVCN_JOB_POLL_MS * 1000000ull
				? now + SVCN_JOB_POLL_MS * 1000000ull
				: deadline_ns;
		svcn_sem_wait_until(&j->sem, until);
	}
}

static void job_msg(struct svc_backend_msg *m, int cancel)
{
	struct svcn_job *j = (struct svcn_job *)m;
	struct svc_node *sn = j->sn;

	if (cancel || atomic_load(&sn->stopping)) {
		j->err = -ESHUTDOWN;
		job_deliver(cancel ? NULL : sn, j);
		return;
	}
	if (job_abandoned(j)) {
		job_put(j);
		return;
	}
	if (sn->njobs >= SVCN_MAX_JOBS) {
		j->err = -EBUSY;
		job_deliver(sn, j);
		return;
	}
	j->start(sn, j);
}

/* Post j (two references: the caller's and the owner's) and wait for it
 * until deadline_ns (see job_wait). The caller then drops its reference. */
static int job_run(struct svc_node *sn, struct svcn_job *j, uint64_t deadline_ns)
{
	int err;

	if (svc_backend_on_loop(sn->backend)) {
		job_put(j); /* the owner cannot wait for itself */
		return -EDEADLK;
	}
	j->m.fn = job_msg;
	err = svc_backend_post(sn->backend, &j->m);
	if (err) {
		job_put(j); /* the owner's */
		return err;
	}
	return job_wait(sn, j, deadline_ns);
}

uint64_t svcn_tick(void *arg, uint64_t now)
{
	struct svc_node *sn = arg;
	struct svcn_job *j, *due = NULL;
	uint64_t next;

	svcn_ready_run(sn);
	if (now < sn->due_ns)
		return sn->due_ns;
	sn->due_ns = UINT64_MAX;
	next = svcn_ops_expire(sn, now);
	/* Take the due jobs aside first: an expire may end other jobs (a
	 * load's calls) or start new ones. */
	for (j = sn->jobs; j; j = j->next) {
		if (now >= j->deadline_ns) {
			atomic_fetch_add(&j->refs, 1);
			j->dnext = due;
			due = j;
		} else if (j->deadline_ns < next) {
			next = j->deadline_ns;
		}
	}
	while ((j = due)) {
		due = j->dnext;
		if (!j->finished)
			j->expire(sn, j);
		job_put(j);
	}
	svcn_ready_run(sn);
	if (next < sn->due_ns)
		sn->due_ns = next;
	if (sn->due_ns != UINT64_MAX && sn->due_ns < now + SVCN_TICK_NS)
		sn->due_ns = now + SVCN_TICK_NS;
	return sn->due_ns;
}

void svcn_jobs_free(struct svc_node *sn)
{
	while (sn->jobs) {
		struct svcn_job *j = sn->jobs;

		j->err = -ESHUTDOWN;
		job_deliver(sn, j); /* unlists it */
	}
}

/* ---------------------------------------------------------- lookups */

struct find_job {
	struct svcn_job j;
	char name[SVC_NAME_MAX + 1];
	uint8_t target[20];
	int status; /* the DHT's, copied on worker 0 */
	size_t npeers;
	struct sockaddr_storage peers[SVC_NODE_MAX_CANDIDATES];
	/* key claims the DHT gave (copied on worker 0; SVC_NODE_MAX_CANDIDATES) */
	size_t nclaims;
	uint8_t claims[SVC_NODE_MAX_CANDIDATES][SVC_CLAIM_LEN];
	/* by key: peers[i] is a target of key keys[i] (pinned) */
	int keyed;
	uint8_t keys[SVC_NODE_CLAIM_KEYS][IDENTITY_PK_LEN];
	uint64_t lookup_deadline_ns;
	struct svcn_op *ops[SVC_NODE_MAX_CANDIDATES];
	unsigned int pending;
	size_t max;
	int n;
	struct svc_dir_result *out; /* max entries */
};

static void find_free(struct svcn_job *j)
{
	struct find_job *f = (struct find_job *)j;

	free(f->out);
	free(f);
}

static void find_finish(struct svc_node *sn, struct find_job *f)
{
	f->n = svc_dir_find(sn->dir, f->name, strlen(f->name), util_now_ms(), f->out, f->max);
	job_deliver(sn, &f->j);
}

/* Candidate i's fetch is over (done or not): verify and cache what came. */
static void find_take(struct svc_node *sn, struct find_job *f, unsigned int i)
{
	struct svcn_op *o = f->ops[i];
	struct svcn_peer *p = svcn_peer_by_conn(sn, o->conn);

	if (o->done && !o->err && o->fin && p && p->have_key && o->resp_len)
		svcn_accept_desc(sn, f->name, o->resp, o->resp_len, p->key,
				 (uint32_t)((o->t1_ns - o->t0_ns) / 1000));
	else
		sn->st.rejected[7]++;
	svcn_op_put(sn, o);
	f->ops[i] = NULL;
	f->pending--;
}

static void find_op_done(struct svc_node *sn, struct svcn_job *j, struct svcn_op *o)
{
	struct find_job *f = (struct find_job *)j;

	for (unsigned int i = 0; i < SVC_NODE_MAX_CANDIDATES; i++)
		if (f->ops[i] == o) {
			find_take(sn, f, i);
			break;
		}
	if (!f->pending)
		find_finish(sn, f);
}

static void find_expire(struct svc_node *sn, struct svcn_job *j)
{
	struct find_job *f = (struct find_job *)j;

	for (unsigned int i = 0; i < SVC_NODE_MAX_CANDIDATES; i++)
		if (f->ops[i])
			find_take(sn, f, i);
	find_finish(sn, f);
}

/* On the owner: the DHT's candidates; fetch every descriptor in parallel.
 * sn NULL: the owner is gone. The DHT's reference becomes the owner's. */
static void find_lookup_own(void *arg, struct svc_node *sn)
{
	struct find_job *f = arg;
	char eps[SVC_DESC_MAX_ENDPOINTS][SVC_DESC_ENDPOINT_MAX + 1];
	uint64_t now = svcn_now_ns();
	int ne, err;

	if (!sn || job_abandoned(&f->j)) {
		job_put(&f->j);
		return;
	}
	if (atomic_load(&sn->stopping) || now > f->lookup_deadline_ns ||
	    sn->njobs >= SVCN_MAX_JOBS) {
		f->j.err = atomic_load(&sn->stopping) ? -ESHUTDOWN
			   : now > f->lookup_deadline_ns ? -ETIMEDOUT
							 : -EBUSY;
		job_deliver(sn, &f->j);
		return;
	}
	ne = svcn_endpoints(sn, eps);
	for (size_t i = 0; i < f->npeers; i++) {
		socklen_t sl = f->peers[i].ss_family == AF_INET ? sizeof(struct sockaddr_in)
								: sizeof(struct sockaddr_in6);
		char as[64];
		int self = 0;

		/* Our own announce comes back from the DHT: already handled. */
		util_fmt_addr(&f->peers[i], as, sizeof(as));
		for (int e = 0; e < ne; e++)
			self |= !strcmp(eps[e], as);
		if (self)
			continue;
		f->ops[i] = svcn_op_start(sn, SVCN_OP_DESC, (const struct sockaddr *)&f->peers[i],
					  sl, f->keyed ? f->keys[i] : NULL, (const uint8_t *)f->name,
					  strlen(f->name),
					  SVCN_DESC_READ_MAX, &f->j, &err);
		f->pending += f->ops[i] != NULL;
	}
	sn->st.fetched += f->npeers;
	if (!f->pending) {
		find_finish(sn, f);
		return;
	}
	job_list(sn, &f->j, now + SVC_NODE_FETCH_TIMEOUT_MS * 1000000ull);
}

/* On worker 0 (the DHT's owner): the result is copied into the job, which
 * no other thread reads before the owner has it, then handed to the owner. */
static void lookup_done(void *arg, const struct dht_result *res)
{
	struct find_job *f = arg;

	f->status = res->status;
	for (size_t i = 0; i < res->npeers && f->npeers < SVC_NODE_MAX_CANDIDATES; i++)
		f->peers[f->npeers++] = res->peers[i];
	for (size_t i = 0; i < res->nwks && f->nclaims < SVC_NODE_MAX_CANDIDATES; i++)
		memcpy(f->claims[f->nclaims++], res->wks[i].v, SVC_CLAIM_LEN);
	svcn_owner_call(f->j.sn->shim, find_lookup_own, f);
}

static void dht_lookup_fn(struct dht *dht, void *arg, uint64_t now_ms)
{
	struct find_job *f = arg;

	if (dht_get_peers(dht, f->target, now_ms, lookup_done, f)) {
		f->status = -ENOSPC;
		svcn_owner_call(f->j.sn->shim, find_lookup_own, f);
	}
}

/* The cache part of a lookup, on the owner. */
struct find_cache {
	const char *name;
	struct svc_dir_result *out;
	size_t max;
	int n;		 /* > 0: found */
	int need_lookup; /* ask the DHT */
};

static void find_cache_own(struct svc_node *sn, void *arg)
{
	struct find_cache *fc = arg;
	size_t nl = strlen(fc->name);
	struct svcn_pub *own;

	fc->n = svc_dir_find(sn->dir, fc->name, nl, util_now_ms(), fc->out, fc->max);
	if (fc->n > 0)
		return;
	own = svcn_pub_find(sn, fc->name, nl);
	if (own && !own->raw) /* our own offer: verified like any other */
		svcn_accept_desc(sn, fc->name, own->desc, own->desc_len, sn->id.pk, 0);
	if (!sn->dht) {
		fc->n = svc_dir_find(sn->dir, fc->name, nl, util_now_ms(), fc->out, fc->max);
		if (fc->n <= 0)
			fc->n = -ENOTCONN;
		return;
	}
	sn->st.lookups++;
	fc->need_lookup = 1;
}

static struct find_job *find_job_new(struct svc_node *sn, const char *name, size_t max)
{
	struct find_job *f = calloc(1, sizeof(*f));
	size_t nl = strlen(name);

	if (f)
		f->out = calloc(max ? max : 1, sizeof(*f->out));
	if (!f || !f->out) {
		free(f);
		return NULL;
	}
	job_init(&f->j, sn, 2); /* the caller's, the DHT's (then the owner's) */
	f->j.op_done = find_op_done;
	f->j.expire = find_expire;
	f->j.free = find_free;
	memcpy(f->name, name, nl + 1);
	f->max = max;
	svc_name_target(f->target, name, nl);
	return f;
}

/* Wait for f (started), copy its results into out; drops the caller's
 * reference. Returns the count or -errno. */
static int find_wait(struct svc_node *sn, struct find_job *f, struct svc_dir_result *out,
		     uint64_t deadline_ns)
{
	int err = job_wait(sn, &f->j, deadline_ns);

	if (!err)
		err = f->j.err;
	if (!err) {
		err = f->n;
		if (f->n > 0)
			memcpy(out, f->out, (size_t)f->n * sizeof(*out));
	}
	job_put(&f->j);
	return err;
}

/*
 * The lookup's providers that gave no descriptor at their announced
 * address (a filtering NAT drops the fetch) but whose announce carried a
 * valid key claim: dial each key (node record, relay circuit: the same
 * path as `quic ping KEY`) and fetch its descriptor over that connection,
 * the key pinned. Caller's thread (it blocks); at most SVC_NODE_CLAIM_KEYS
 * keys sharing budget_ms. Returns the lookup's results then (count or
 * -errno), or n unchanged when no key was dialled.
 */
static int find_by_claims(struct svc_node *sn, const char *name, const struct find_job *f,
			  struct svc_dir_result *out, size_t max, int n, uint32_t budget_ms)
{
	char hex[2 * IDENTITY_PK_LEN + 1], t[QUIC_NODE_RESOLVE_MAX][QUIC_NODE_TARGET_MAX];
	uint64_t end = svcn_now_ns() + (uint64_t)budget_ms * 1000000ull, now;
	uint64_t wall = util_wall_s();
	struct find_job *g;
	int err;

	if (!f->nclaims || !quic_node_can_resolve(sn->quic))
		return n;
	g = find_job_new(sn, name, max);
	if (!g)
		return n;
	g->keyed = 1;
	for (size_t i = 0; i < f->nclaims && g->npeers < SVC_NODE_CLAIM_KEYS; i++) {
		uint8_t key[IDENTITY_PK_LEN], k2[QUIC_KEY_LEN];
		struct sockaddr_storage ss;
		socklen_t sl;
		int have, dup = !memcmp(f->claims[i], sn->id.pk, IDENTITY_PK_LEN), nt;

		/* a forged, stale or foreign claim is not dialled */
		if (dup || svc_claim_verify(f->claims[i], f->target, wall, key))
			continue;
		for (int r = 0; r < n && !dup; r++)
			dup = !memcmp(out[r].owner, key, IDENTITY_PK_LEN); /* found already */
		for (size_t k = 0; k < g->npeers && !dup; k++)
			dup = !memcmp(g->keys[k], key, IDENTITY_PK_LEN);
		now = svcn_now_ns();
		if (dup || now + 1000000ull >= end)
			continue;
		util_hex(hex, key, IDENTITY_PK_LEN);
		atomic_fetch_add(&sn->finds_by_key, 1);
		nt = quic_node_resolve_within(sn->quic, hex, t, QUIC_NODE_RESOLVE_MAX,
					      (unsigned int)((end - now) / 1000000ull), NULL);
		/* the first target answered (a circuit, or a direct address) */
		if (nt <= 0 || quic_node_parse_target(t[0], 0, k2, &have, &ss, &sl)) {
			log_info("svc", "lookup %s: provider %.16s... by its key claim: %s", name,
				 hex, nt < 0 ? strerror(-nt) : "no address");
			continue;
		}
		log_info("svc", "lookup %s: provider %.16s... by its key claim: %s", name, hex,
			 t[0] + 2 * IDENTITY_PK_LEN + 1);
		memcpy(g->keys[g->npeers], key, IDENTITY_PK_LEN);
		g->peers[g->npeers++] = ss;
	}
	if (!g->npeers) {
		atomic_store(&g->j.refs, 1); /* never ran: ours alone */
		job_put(&g->j);
		return n;
	}
	g->lookup_deadline_ns = svcn_now_ns() + SVC_NODE_FETCH_TIMEOUT_MS * 1000000ull;
	svcn_owner_call(sn->shim, find_lookup_own, g);
	err = find_wait(sn, g, out, g->lookup_deadline_ns + SVC_NODE_FETCH_TIMEOUT_MS * 1000000ull +
					   SVCN_WAIT_SLACK_NS);
	if (err > n)
		atomic_fetch_add(&sn->finds_by_key_ok, (unsigned long long)(err - n));
	return err < 0 ? n : err;
}

/* svc_node_find whose cache step (a turn on the owner) ends by turn_ms. */
static int find_within(struct svc_node *sn, const char *name, struct svc_dir_result *out,
		       size_t max, uint32_t turn_ms, uint32_t claim_ms)
{
	struct find_cache fc = {.name = name, .out = out, .max = max};
	struct find_job *f;
	size_t nl = strlen(name);
	int err;

	if (!svc_name_valid((const uint8_t *)name, nl))
		return -EINVAL;
	if (svc_backend_on_loop(sn->backend))
		return -EDEADLK; /* the owner cannot wait for its own jobs */
	err = svcn_owner_run(sn, find_cache_own, &fc, turn_ms);
	if (err)
		return err;
	if (!fc.need_lookup)
		return fc.n;
	f = find_job_new(sn, name, max);
	if (!f)
		return -ENOMEM;
	f->lookup_deadline_ns = svcn_now_ns() + SVC_NODE_LOOKUP_TIMEOUT_MS * 1000000ull;
	err = dhtnode_run(sn->dht, dht_lookup_fn, f);
	if (err) {
		atomic_store(&f->j.refs, 1); /* never ran: ours alone */
		job_put(&f->j);
		return err;
	}
	/* a reference of ours for the claims, past find_wait's */
	atomic_fetch_add(&f->j.refs, 1);
	err = find_wait(sn, f,  out,
			f->lookup_deadline_ns + SVC_NODE_FETCH_TIMEOUT_MS * 1000000ull +
			    SVCN_WAIT_SLACK_NS);
	if (err >= 0 && (size_t)err < max)
		err = find_by_claims(sn, name, f, out, max, err, claim_ms);
	job_put(&f->j);
	return err;
}

int svc_node_find(struct svc_node *sn, const char *name, struct svc_dir_result *out, size_t max)
{
	return find_within(sn, name, out, max, SVCN_OWNER_RUN_MS, SVC_NODE_CLAIM_MS);
}

/* svcn_pick with the owner's turn bounded by turn_ms (a call's deadline). */
static int pick_within(struct svc_node *sn, const char *name, struct svc_dir_result *r,
		       struct sockaddr_storage *ss, socklen_t *sl, uint32_t turn_ms,
		       uint32_t claim_ms)
{
	struct svc_dir_result res[SVC_DIR_DEFAULT_RESULTS];
	int n = find_within(sn, name, res, SVC_DIR_DEFAULT_RESULTS, turn_ms, claim_ms);

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		if (!memcmp(res[i].owner, sn->id.pk, IDENTITY_PK_LEN)) {
			*r = res[i];
			return 1;
		}
		for (uint32_t e = 0; e < res[i].n_endpoints; e++) {
			unsigned int l;

			if (util_parse_addr(res[i].endpoints[e], ss, &l))
				continue;
			*sl = (socklen_t)l;
			*r = res[i];
			return 0;
		}
	}
	return -ENOENT;
}

int svcn_pick(struct svc_node *sn, const char *name, struct svc_dir_result *r,
	      struct sockaddr_storage *ss, socklen_t *sl)
{
	return pick_within(sn, name, r, ss, sl, SVCN_OWNER_RUN_MS, SVC_NODE_CLAIM_MS);
}

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

/* First usable endpoint of r into ss: 0, or -ENOENT. */
static int pick_endpoint(const struct svc_dir_result *r, struct sockaddr_storage *ss,
			 socklen_t *sl)
{
	for (uint32_t e = 0; e < r->n_endpoints; e++) {
		unsigned int l;

		if (util_parse_addr(r->endpoints[e], ss, &l))
			continue;
		*sl = (socklen_t)l;
		return 0;
	}
	return -ENOENT;
}

struct pick_id {
	const uint8_t *id;
	struct svc_dir_result *r;
	int err;
	int again; /* only the cache, after a lookup */
	char name[SVC_NAME_MAX + 1]; /* seen before, out of the cache: look it up */
};

static void pick_id_own(struct svc_node *sn, void *arg)
{
	struct pick_id *pi = arg;

	pi->err = svc_dir_find_id(sn->dir, pi->id, util_now_ms(), pi->r);
	if (!pi->err || pi->again)
		return;
	/* One of ours, not looked up yet: verified into the cache. */
	for (size_t i = 0; i < SVC_NODE_MAX_PUBLISHED; i++) {
		struct svcn_pub *p = &sn->pubs[i];
		uint8_t pid[SVC_ID_LEN];

		if (!p->used || p->raw)
			continue;
		svc_id(pid, sn->id.pk, p->name, strlen(p->name));
		if (!memcmp(pid, pi->id, SVC_ID_LEN)) {
			svcn_accept_desc(sn, p->name, p->desc, p->desc_len, sn->id.pk, 0);
			pi->err = svc_dir_find_id(sn->dir, pi->id, util_now_ms(), pi->r);
			return;
		}
	}
	for (size_t i = 0; i < SVCN_IDS; i++)
		if (!memcmp(sn->ids[i].id, pi->id, SVC_ID_LEN) && sn->ids[i].name[0]) {
			memcpy(pi->name, sn->ids[i].name, sizeof(pi->name));
			return;
		}
}

int svcn_pick_id(struct svc_node *sn, const uint8_t id[SVC_ID_LEN], struct svc_dir_result *r,
		 struct sockaddr_storage *ss, socklen_t *sl)
{
	struct pick_id pi = {.id = id, .r = r};
	int err = svcn_owner_run(sn, pick_id_own, &pi, SVCN_OWNER_RUN_MS);

	if (!err && pi.err && pi.name[0]) {
		struct svc_dir_result res[SVC_DIR_DEFAULT_RESULTS];

		/* Seen before, out of the cache now: look its name up again. */
		svc_node_find(sn, pi.name, res, SVC_DIR_DEFAULT_RESULTS);
		pi.again = 1;
		err = svcn_owner_run(sn, pick_id_own, &pi, SVCN_OWNER_RUN_MS);
	}
	if (err)
		return err;
	if (pi.err)
		return -ENOENT;
	if (!memcmp(r->owner, sn->id.pk, IDENTITY_PK_LEN))
		return 1;
	return pick_endpoint(r, ss, sl);
}

/* ------------------------------------------------------------ calls */

struct load_job;

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
		job_unlist(sn, &c->j);
		load_call_done(sn, c->parent, c);
		job_put(&c->j);
		return;
	}
	job_deliver(sn, &c->j);
}

/* The local backend's answer (on the owner). Its reference to the job. */
static void call_backend_done(void *ctx, int err, uint8_t *resp, size_t len)
{
	struct call_job *c = ctx;
	struct svc_node *sn = c->j.sn;

	svc_router_done(sn->router, &c->t, err, svcn_now_ns());
	if (!c->j.finished) {
		c->res.err = err;
		c->res.data = resp;
		c->res.len = len;
		c->res.rtt_us = (svcn_now_ns() - c->t0) / 1000;
		resp = NULL;
		call_finish(sn, c, 0);
	}
	free(resp);
	job_put(&c->j);
}

static void call_local(struct svc_node *sn, struct call_job *c)
{
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
	r = svc_backend_submit(sn->backend, c->t.backend, c->name, c->req, c->req_len,
			       c->timeout_ms, call_backend_done, c);
	if (r) {
		atomic_fetch_sub(&c->j.refs, 1);
		svc_router_done(sn->router, &c->t, SVC_ERR_OVERLOADED, svcn_now_ns());
		if (r == -EBUSY)
			c->res.err = SVC_ERR_OVERLOADED;
		call_finish(sn, c, r == -EBUSY ? 0 : r);
		return;
	}
	job_list(sn, &c->j,
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
	job_list(sn, &c->j,
		 c->t0 + (uint64_t)((c->direct ? c->direct_ms
					       : c->timeout_ms + SVC_NODE_NET_MARGIN_MS)) *
				 1000000ull);
}

/* The provider's reputation: an outcome on the connection's peer. */
static void call_outcome(struct svc_node *sn, struct call_job *c, int good)
{
	struct svcn_peer *p = c->op ? svcn_peer_by_conn(sn, c->op->conn) : NULL;

	if (p) {
		if (good)
			p->ok++;
		else
			p->failed++;
	}
	if (good) {
		sn->st.calls_out_ok++;
		sn->st.calls_by_key_ok += c->by_key;
	}
}

static void call_op_done(struct svc_node *sn, struct svcn_job *j, struct svcn_op *o)
{
	struct call_job *c = (struct call_job *)j;
	struct svc_msg rm;
	int err = o->err;
	long dl;

	c->unsent = err && !o->opened;
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
	call_outcome(sn, c, !err && c->res.err == SVC_OK);
	call_finish(sn, c, err);
}

static void call_expire(struct svc_node *sn, struct svcn_job *j)
{
	struct call_job *c = (struct call_job *)j;

	if (c->direct) {
		/* The endpoint's time is up: a call whose REQUEST left waits
		 * for its own deadline; one still dialling ends unsent. */
		c->direct = 0;
		if (c->op && c->op->opened) {
			job_list(sn, &c->j,
				 c->t0 + (uint64_t)(c->timeout_ms + SVC_NODE_NET_MARGIN_MS) *
						 1000000ull);
			return;
		}
		c->unsent = 1;
		call_finish(sn, c, -EHOSTUNREACH);
		return;
	}
	if (!c->local)
		call_outcome(sn, c, 0);
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
	job_init(&c->j, sn, 2);
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
	if (local) {
		c->req = payload;
		c->req_len = len;
	} else {
		struct svc_msg m = {.type = SVC_MSG_REQUEST};
		size_t rl;

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
			job_put(&c->j);
			return -ENOMEM;
		}
		memcpy(c->own_req, payload, len);
		c->req = c->own_req;
	}
	err = job_run(sn, &c->j,
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
	job_put(&c->j);
	return err;
}

/* The provider's descriptor endpoints did not answer: its key, resolved
 * like `quic ping KEY` (quic_node_resolve: the node record, its direct
 * addresses, else a relay's circuit), within the call's deadline end_ns.
 * -EHOSTUNREACH: no record, or nothing it lists answered. */
static int call_by_key(struct svc_node *sn, const char *name, const char *method,
		       const uint8_t *payload, size_t len, const struct svc_dir_result *r,
		       uint64_t end_ns, struct svc_node_call_res *res)
{
	char hex[2 * IDENTITY_PK_LEN + 1], t[QUIC_NODE_RESOLVE_MAX][QUIC_NODE_TARGET_MAX];
	uint64_t start = svcn_now_ns();
	int n, err = -EHOSTUNREACH, unsent = 1;

	if (start + 1000000ull >= end_ns)
		return -ETIMEDOUT;
	util_hex(hex, r->owner, IDENTITY_PK_LEN);
	/* The record lookup, direct attempts and relay circuit share what is
	 * left of the call's deadline: the fallback never overruns it. */
	n = quic_node_resolve_within(sn->quic, hex, t, QUIC_NODE_RESOLVE_MAX,
				     (unsigned int)((end_ns - start) / 1000000ull), NULL);
	if (n == -ENOENT)
		n = -EHOSTUNREACH; /* no record: nothing else to dial */
	if (n < 0)
		err = n;
	for (int i = 0; i < n && unsent; i++) {
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
		err = call_run(sn, name, method, payload, len, left, 0, r, &ss, sl, 0, 1, res,
			       &unsent);
	}
	if (err)
		atomic_fetch_add(&sn->calls_by_key_failed, 1);
	return err;
}

int svc_node_call(struct svc_node *sn, const char *name, const char *method,
		  const uint8_t *payload, size_t len, uint32_t timeout_ms,
		  struct svc_node_call_res *res)
{
	struct svc_dir_result r;
	struct sockaddr_storage ss = {0};
	socklen_t sl = 0;
	uint32_t direct_ms = 0;
	uint64_t end_ns;
	int err, local, unsent;

	memset(res, 0, sizeof(*res));
	if (!method)
		method = "";
	timeout_ms = svcn_clamp_timeout(sn, timeout_ms);
	local = pick_within(sn, name, &r, &ss, &sl, call_turn_ms(timeout_ms),
			    call_claim_ms(timeout_ms));
	if (local < 0)
		return local;
	memcpy(res->peer, r.owner, IDENTITY_PK_LEN);
	end_ns = svcn_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	/* A provider whose endpoints may not answer (behind NAT) is reachable
	 * by its key: the endpoint gets a quarter of the call's time (at
	 * most QUIC_NODE_DIRECT_MS) to answer, the key the rest. */
	if (!local && timeout_ms >= SVCN_BY_KEY_MIN_MS && quic_node_can_resolve(sn->quic)) {
		direct_ms = timeout_ms / 4;
		if (direct_ms > QUIC_NODE_DIRECT_MS)
			direct_ms = QUIC_NODE_DIRECT_MS;
	}
	err = call_run(sn, name, method, payload, len, timeout_ms, local, &r, &ss, sl, direct_ms, 0,
		       res, &unsent);
	if (err && direct_ms && unsent)
		err = call_by_key(sn, name, method, payload, len, &r,
				  end_ns + SVC_NODE_NET_MARGIN_MS * 1000000ull, res);
	return err;
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
	job_put(&l->j);
}

static void load_free(struct svcn_job *j)
{
	struct load_job *l = (struct load_job *)j;

	if (l->proto) {
		atomic_store(&l->proto->j.refs, 1);
		job_put(&l->proto->j);
	}
	free(l->res.lat);
	free(l);
}

static void load_finish(struct svc_node *sn, struct load_job *l)
{
	if (l->started < l->count && !job_abandoned(&l->j)) {
		/* Never started (the owner's job table was full, or out of
		 * memory): counted as transport failures, not left out. */
		l->res.errs[SVC_ERR__COUNT] += (uint64_t)(l->count - l->started);
		l->res.last_errno = -EBUSY;
	}
	l->res.elapsed_ns = svcn_now_ns() - l->t0;
	job_deliver(sn, &l->j);
}

/* Start calls while fewer than conc are in flight. */
static void load_fill(struct svc_node *sn, struct load_job *l)
{
	l->filling = 1;
	while (!l->j.finished && !job_abandoned(&l->j) && l->started < l->count &&
	       l->started - l->ended < l->conc) {
		struct call_job *p = l->proto, *c = calloc(1, sizeof(*c));

		if (!c || sn->njobs >= SVCN_MAX_JOBS) {
			free(c);
			break; /* the calls in flight start more as they end */
		}
		*c = *p;
		job_init(&c->j, sn, 1); /* the owner's alone */
		c->own_req = NULL;     /* the prototype's request is shared */
		c->parent = l;
		atomic_fetch_add(&l->j.refs, 1);
		l->started++;
		call_start(sn, &c->j);
	}
	l->filling = 0;
	if (l->started == l->ended && !l->j.finished &&
	    (l->ended == l->count || job_abandoned(&l->j) || l->started < l->count))
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
	job_list(sn, j, l->j.deadline_ns);
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
	local = pick_within(sn, name, &r, &ss, &sl, call_turn_ms(timeout_ms),
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
			job_put(&l->proto->j);
		}
		free(l);
		return err;
	}
	job_init(&l->j, sn, 2);
	l->j.start = load_start;
	l->j.expire = load_expire;
	l->j.free = load_free;
	l->count = count;
	l->conc = conc;
	/* Every call ends by its deadline: the load by the rounds of them. */
	per = (uint64_t)(timeout_ms + SVC_NODE_NET_MARGIN_MS) * 1000000ull + SVCN_TICK_NS;
	rounds = ((uint64_t)count + (uint64_t)conc - 1) / (uint64_t)conc;
	l->j.deadline_ns = svcn_now_ns() + rounds * per + 1000000000ull;
	err = job_run(sn, &l->j, l->j.deadline_ns + SVCN_WAIT_SLACK_NS);
	if (!err)
		err = l->j.err;
	if (!err) {
		*out = l->res;
		l->res.lat = NULL;
	}
	job_put(&l->j);
	return err;
}
