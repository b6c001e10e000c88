// SPDX-License-Identifier: MIT
/*
 * Lookups on the service fabric (docs/SERVICE.md): svc_node_find (the
 * directory cache on the owner, else the DHT's providers and a parallel
 * fetch of their descriptors, else their key claims dialled), and the
 * picks of a provider for a name (svcn_pick) or a service id
 * (svcn_pick_id) that calls and the gateway start from. Lookups are jobs
 * (svc_jobs.c); descriptor fetches are ops (svc_ops.c), verified into the
 * cache by svc_directory.c.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "svc_calls_int.h"
#include "svc_dir_int.h"
#include "svc_jobs_int.h"
#include "svc_ops_int.h"
#include "svc_rep_int.h"
#include "weft/dht.h"
#include "weft/dhtnode.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

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
	svcn_rep_order(sn, f->out, f->n);
	svcn_job_deliver(sn, &f->j);
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

	if (!sn || svcn_job_abandoned(&f->j)) {
		svcn_job_put(&f->j);
		return;
	}
	if (atomic_load(&sn->stopping) || now > f->lookup_deadline_ns ||
	    sn->njobs >= SVCN_MAX_JOBS) {
		f->j.err = atomic_load(&sn->stopping)	 ? -ESHUTDOWN
			   : now > f->lookup_deadline_ns ? -ETIMEDOUT
							 : -EBUSY;
		svcn_job_deliver(sn, &f->j);
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
		f->ops[i] =
		    svcn_op_start(sn, SVCN_OP_DESC, (const struct sockaddr *)&f->peers[i], sl,
				  f->keyed ? f->keys[i] : NULL, (const uint8_t *)f->name,
				  strlen(f->name), SVCN_DESC_READ_MAX, &f->j, &err);
		f->pending += f->ops[i] != NULL;
	}
	sn->st.fetched += f->npeers;
	if (!f->pending) {
		find_finish(sn, f);
		return;
	}
	svcn_job_list(sn, &f->j, now + SVC_NODE_FETCH_TIMEOUT_MS * 1000000ull);
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
	if (fc->n > 0) {
		svcn_rep_order(sn, fc->out, fc->n);
		return;
	}
	own = svcn_pub_find(sn, fc->name, nl);
	if (own && !own->raw) /* our own offer: verified like any other */
		svcn_accept_desc(sn, fc->name, own->desc, own->desc_len, sn->id.pk, 0);
	if (!sn->dht) {
		fc->n = svc_dir_find(sn->dir, fc->name, nl, util_now_ms(), fc->out, fc->max);
		svcn_rep_order(sn, fc->out, fc->n);
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
	svcn_job_init(&f->j, sn, 2); /* the caller's, the DHT's (then the owner's) */
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
	int err = svcn_job_wait(sn, &f->j, deadline_ns);

	if (!err)
		err = f->j.err;
	if (!err) {
		err = f->n;
		if (f->n > 0)
			memcpy(out, f->out, (size_t)f->n * sizeof(*out));
	}
	svcn_job_put(&f->j);
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
	char lb[128];
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
		/* past a miss cached before its record was put: its claim
		 * is signed and fresh, the node announced since */
		nt = quic_node_resolve_flags(sn->quic, hex, t, QUIC_NODE_RESOLVE_MAX,
					     (unsigned int)((end - now) / 1000000ull), NULL,
					     QUIC_NODE_RESOLVE_PAST_MISS);
		/* the first target answered (a circuit, or a direct address) */
		if (nt <= 0 || quic_node_parse_target(t[0], 0, k2, &have, &ss, &sl)) {
			log_info("svc", "lookup %s: provider %.16s... by its key claim: %s", name,
				 hex, nt < 0 ? strerror(-nt) : "no address");
			continue;
		}
		log_info("svc", "lookup %s: provider %.16s... by its key claim: %s", name, hex,
			 log_addr(t[0] + 2 * IDENTITY_PK_LEN + 1, lb, sizeof(lb)));
		memcpy(g->keys[g->npeers], key, IDENTITY_PK_LEN);
		g->peers[g->npeers++] = ss;
	}
	if (!g->npeers) {
		atomic_store(&g->j.refs, 1); /* never ran: ours alone */
		svcn_job_put(&g->j);
		return n;
	}
	g->lookup_deadline_ns = svcn_now_ns() + SVC_NODE_FETCH_TIMEOUT_MS * 1000000ull;
	svcn_owner_call(sn->shim, find_lookup_own, g);
	err = find_wait(sn, g, out,
			g->lookup_deadline_ns + SVC_NODE_FETCH_TIMEOUT_MS * 1000000ull +
			    SVCN_WAIT_SLACK_NS);
	if (err > n)
		atomic_fetch_add(&sn->finds_by_key_ok, (unsigned long long)(err - n));
	return err < 0 ? n : err;
}

/* A DHT lookup of name's providers under target (NULL: the name's public
 * one), their descriptors fetched, then their key claims dialled. *seen
 * (may be NULL): how many announces the DHT gave, valid or not. */
static int find_dht(struct svc_node *sn, const char *name, const uint8_t *target,
		    struct svc_dir_result *out, size_t max, uint32_t claim_ms, size_t *seen)
{
	struct find_job *f = find_job_new(sn, name, max);
	int err;

	if (!f)
		return -ENOMEM;
	if (target)
		memcpy(f->target, target, 20);
	f->lookup_deadline_ns = svcn_now_ns() + SVC_NODE_LOOKUP_TIMEOUT_MS * 1000000ull;
	err = dhtnode_run(sn->dht, dht_lookup_fn, f);
	if (err) {
		atomic_store(&f->j.refs, 1); /* never ran: ours alone */
		svcn_job_put(&f->j);
		return err;
	}
	/* a reference of ours for the claims, past find_wait's */
	atomic_fetch_add(&f->j.refs, 1);
	err = find_wait(sn, f, out,
			f->lookup_deadline_ns + SVC_NODE_FETCH_TIMEOUT_MS * 1000000ull +
			    SVCN_WAIT_SLACK_NS);
	if (err >= 0 && (size_t)err < max)
		err = find_by_claims(sn, name, f, out, max, err, claim_ms);
	/* Only a finished find's counts are ours to read: after a timeout the
	 * lookup may still be writing them on worker 0 (a data race TSan
	 * found in the stress recipe). */
	if (seen)
		*seen = err >= 0 ? f->npeers + f->nclaims : 0;
	svcn_job_put(&f->j);
	return err;
}

/* svc_node_find whose cache step (a turn on the owner) ends by turn_ms. */
static int find_within(struct svc_node *sn, const char *name, struct svc_dir_result *out,
		       size_t max, uint32_t turn_ms, uint32_t claim_ms)
{
	struct find_cache fc = {.name = name, .out = out, .max = max};
	size_t seen = 0;
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
	err = find_dht(sn, name, NULL, out, max, claim_ms, &seen);
	if (err == 0 && !seen) {
		uint8_t priv[20];

		/* Nobody announces it publicly: a private offer shown to our
		 * key? (Not when public announces were there but none gave a
		 * valid descriptor: the name is a public one.) */
		svc_private_target(priv, name, nl, sn->id.pk);
		err = find_dht(sn, name, priv, out, max, claim_ms, NULL);
	}
	return err;
}

int svc_node_find(struct svc_node *sn, const char *name, struct svc_dir_result *out, size_t max)
{
	return find_within(sn, name, out, max, SVCN_OWNER_RUN_MS, SVC_NODE_CLAIM_MS);
}

int svcn_pick_within(struct svc_node *sn, const char *name, struct svc_dir_result *r,
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

int svcn_pick_list(struct svc_node *sn, const char *name, const struct svc_vrange *vr,
		   struct svc_dir_result *res, size_t max, uint32_t turn_ms, uint32_t claim_ms)
{
	int n = find_within(sn, name, res, max, turn_ms, claim_ms), k = 0;

	if (n <= 0 || !vr)
		return n;
	for (int i = 0; i < n; i++)
		if (svc_vrange_match(vr, res[i].version))
			res[k++] = res[i];
	return k;
}

int svcn_pick(struct svc_node *sn, const char *name, struct svc_dir_result *r,
	      struct sockaddr_storage *ss, socklen_t *sl)
{
	return svcn_pick_within(sn, name, r, ss, sl, SVCN_OWNER_RUN_MS, SVC_NODE_CLAIM_MS);
}

/* First usable endpoint of r into ss: 0, or -ENOENT. */
static int pick_endpoint(const struct svc_dir_result *r, struct sockaddr_storage *ss, socklen_t *sl)
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
	int again;		     /* only the cache, after a lookup */
	char name[SVC_NAME_MAX + 1]; /* seen before, out of the cache: look it up */
};

static void pick_id_own(struct svc_node *sn, void *arg)
{
	struct pick_id *pi = arg;

	pi->err = svc_dir_find_id(sn->dir, pi->id, util_now_ms(), pi->r);
	if (!pi->err || pi->again)
		return;
	/* One of ours, not looked up yet: verified into the cache. */
	for (size_t i = 0; i < sn->npubs; i++) {
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
