// SPDX-License-Identifier: MIT
/*
 * The per-service store (docs/MESH.md "Store"): announces by service id in
 * LMDB, bounded per service and per provider, expired ones collected,
 * Update and Revoke applied only for the announce's own provider with a
 * newer timestamp. A Revoke leaves a tombstone until the announce would
 * have expired, so the announce cannot come back meanwhile.
 *
 * Database "mesh_announces": announce id (32) ->
 *   ver (1, =1) | gone (1) | seq (u64) | expires (u64 ms) | envelope
 * (the Announce, its latest Update, or for a tombstone the Revoke). The
 * index of what is held lives in memory, rebuilt at open by one scan that
 * verifies every envelope again (the disk is not trusted). Writes are
 * durable (the store writer, one group commit) before the index changes.
 * One owner: the caller serialises calls.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mesh.h"
#include "weft/store.h"
#include "mesh_int.h"

#define DB_NAME "mesh_announces"
#define META_LEN (1u + 1u + 8u + 8u)
#define WRITE_TIMEOUT_MS 5000u
#define EVICT_MAX 8u /* deletions one put may carry (expired collected first) */

struct ent {
	uint64_t pfx;
	uint8_t id[MESH_ID_LEN];
	uint8_t provider[MESH_PK_LEN];
	uint32_t service;
	uint64_t ts_ms;
	uint64_t expires_ms;
	uint64_t level_until; /* level holds until the endorsement expires */
	uint64_t seq;         /* insertion order */
	uint8_t level;
	uint8_t gone;
};

struct mesh_store {
	struct store *st;
	unsigned int dbi;
	struct mesh_store_opts o;
	struct ent *e;
	size_t n, cap;
	uint64_t seq;
	struct mesh_store_stats stats;
};

static struct ent *find(const struct mesh_store *s, const uint8_t *id)
{
	uint64_t pfx = mesh_rd(id, 8);

	for (size_t i = 0; i < s->n; i++)
		if (s->e[i].pfx == pfx && !memcmp(s->e[i].id, id, MESH_ID_LEN))
			return &s->e[i];
	return NULL;
}

static int served(const struct mesh_store *s, uint32_t service)
{
	if (!s->o.services)
		return 1;
	for (unsigned int i = 0; i < s->o.n_services; i++)
		if (s->o.services[i] == service)
			return 1;
	return 0;
}

static unsigned int level_at(const struct ent *x, uint64_t now)
{
	return now < x->level_until ? x->level : MESH_LEVEL_NONE;
}

/* The endorsement level and until when it holds (the earliest expiry of
 * the endorsements that reach it). */
static void level_of(const struct mesh_store *s, const struct mesh_env *e, uint64_t now,
		     uint8_t *level, uint64_t *until)
{
	*level = (uint8_t)mesh_level(s->o.trust, e, now);
	*until = UINT64_MAX;
	if (*level == MESH_LEVEL_NONE)
		return;
	for (unsigned int i = 0; i < e->n_endorse; i++) {
		struct mesh_env one = *e;

		one.n_endorse = 1;
		one.endorse[0] = e->endorse[i];
		if (mesh_level(s->o.trust, &one, now) >= *level && e->endorse[i].expires_ms < *until)
			*until = e->endorse[i].expires_ms;
	}
}

/* What a put would do: the entry it changes (Update, Revoke) or the
 * entries that give way (Announce). */
struct plan {
	struct ent *target;
	struct ent *victims[EVICT_MAX];
	unsigned int n_victims;
	uint8_t level;
	uint64_t level_until;
};

static int dead(const struct ent *x, uint64_t now)
{
	return x->expires_ms <= now;
}

/* Eviction order at a service's cap (docs/MESH.md "Eviction"): expired
 * first, then tombstones, then the live announce of the lowest level, the
 * earliest expiry, the oldest insertion. 1 when a is evicted before b. */
static int before(const struct ent *a, const struct ent *b, uint64_t now)
{
	if (dead(a, now) != dead(b, now))
		return dead(a, now);
	if (a->gone != b->gone)
		return a->gone;
	if (level_at(a, now) != level_at(b, now))
		return level_at(a, now) < level_at(b, now);
	if (a->expires_ms != b->expires_ms)
		return a->expires_ms < b->expires_ms;
	return a->seq < b->seq;
}

static int planned(const struct plan *p, const struct ent *x)
{
	for (unsigned int i = 0; i < p->n_victims; i++)
		if (p->victims[i] == x)
			return 1;
	return 0;
}

/* The first in eviction order among the service's (and, with provider,
 * that provider's) entries not yet planned; NULL when none. */
static struct ent *pick(const struct mesh_store *s, const struct plan *p, uint32_t service,
			const uint8_t *provider, uint64_t now)
{
	struct ent *best = NULL;

	for (size_t i = 0; i < s->n; i++) {
		struct ent *x = &s->e[i];

		if (x->service != service || planned(p, x))
			continue;
		if (provider && (x->gone || memcmp(x->provider, provider, MESH_PK_LEN)))
			continue;
		if (!best || before(x, best, now))
			best = x;
	}
	return best;
}

/* How many entries the service holds, how many live ones the provider
 * holds in it, and whether another service id fits (services_max). */
static void counts(const struct mesh_store *s, const struct plan *p, uint32_t service,
		   const uint8_t *provider, size_t *n_service, size_t *n_provider, int *room)
{
	uint32_t seen[MESH_SERVICES_CAP];
	size_t n_seen = 0;

	*n_service = *n_provider = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct ent *x = &s->e[i];
		size_t j;

		if (planned(p, x))
			continue;
		for (j = 0; j < n_seen && seen[j] != x->service; j++)
			;
		if (j == n_seen && n_seen < MESH_SERVICES_CAP)
			seen[n_seen++] = x->service;
		if (x->service != service)
			continue;
		(*n_service)++;
		if (!x->gone && !memcmp(x->provider, provider, MESH_PK_LEN))
			(*n_provider)++;
	}
	*room = n_seen < s->o.services_max;
}

static int plan_announce(const struct mesh_store *s, const struct mesh_env *e, uint64_t now,
			 struct plan *p)
{
	size_t n_svc, n_prov;
	struct ent *v;
	int room;

	if (find(s, e->g.id))
		return -EALREADY;
	counts(s, p, e->service, e->g.origin, &n_svc, &n_prov, &room);
	if (n_svc == 0 && !room)
		return -ENOSPC;
	/* The provider's own: the entry of its that goes first gives way. */
	while (n_prov >= s->o.per_provider && p->n_victims < EVICT_MAX) {
		v = pick(s, p, e->service, e->g.origin, now);
		if (!v)
			break;
		p->victims[p->n_victims++] = v;
		n_prov--;
		n_svc--;
	}
	if (n_prov >= s->o.per_provider)
		return -ENOSPC;
	while (n_svc >= s->o.per_service && p->n_victims < EVICT_MAX) {
		v = pick(s, p, e->service, NULL, now);
		if (!v)
			break;
		/* A live announce gives way only to a better one: a higher
		 * level, or the same level and a later expiry. */
		if (!dead(v, now) && !v->gone &&
		    (level_at(v, now) > p->level ||
		     (level_at(v, now) == p->level &&
		      v->expires_ms >= e->g.ts_ms + (uint64_t)e->g.ttl_s * 1000u)))
			break;
		p->victims[p->n_victims++] = v;
		n_svc--;
	}
	return n_svc >= s->o.per_service ? -ENOSPC : 0;
}

static int plan_put(const struct mesh_store *s, const struct mesh_env *e, uint64_t now,
		    struct plan *p)
{
	struct ent *t;

	memset(p, 0, sizeof(*p));
	if (e->type != MESH_ANNOUNCE && e->type != MESH_UPDATE && e->type != MESH_REVOKE)
		return -EINVAL;
	if (!served(s, e->service))
		return -EXDEV;
	if (e->type != MESH_REVOKE) {
		level_of(s, e, now, &p->level, &p->level_until);
		if (p->level < s->o.min_level)
			return -EACCES;
	}
	if (e->type == MESH_ANNOUNCE)
		return plan_announce(s, e, now, p);
	t = find(s, e->ref);
	if (!t)
		return -ENOENT;
	if (t->service != e->service || memcmp(t->provider, e->g.origin, MESH_PK_LEN))
		return -EPERM;
	if (t->gone || e->g.ts_ms <= t->ts_ms)
		return -EALREADY;
	p->target = t;
	return 0;
}

static void count_refusal(struct mesh_store *s, int err)
{
	switch (err) {
	case -EALREADY:
		s->stats.stale++;
		break;
	case -EPERM:
		s->stats.not_owner++;
		break;
	case -ENOENT:
		s->stats.unknown++;
		break;
	case -ENOSPC:
		s->stats.full++;
		break;
	case -EACCES:
		s->stats.level++;
		break;
	default:
		s->stats.bad++;
		break;
	}
}

int mesh_store_would_take(const struct mesh_store *s, const struct mesh_env *e, uint64_t now_ms)
{
	struct plan p;

	return plan_put(s, e, now_ms, &p);
}

static void ent_remove(struct mesh_store *s, struct ent *x)
{
	*x = s->e[--s->n];
}

/* A new entry at the end of the index (zeroed), or NULL without memory. */
static struct ent *ent_push(struct mesh_store *s)
{
	struct ent *x;

	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct ent *ne = realloc(s->e, nc * sizeof(*ne));

		if (!ne)
			return NULL;
		s->e = ne;
		s->cap = nc;
	}
	x = &s->e[s->n++];
	memset(x, 0, sizeof(*x));
	return x;
}

int mesh_store_put(struct mesh_store *s, const struct mesh_env *e, const uint8_t *buf, size_t len,
		   uint64_t now_ms)
{
	struct store_op ops[1 + EVICT_MAX];
	uint8_t val[META_LEN + MESH_ENV_MAX];
	uint8_t ids[EVICT_MAX][MESH_ID_LEN];
	const uint8_t *key;
	struct plan p;
	struct ent *x;
	uint64_t expires;
	int err, ret;

	if (len > MESH_ENV_MAX)
		return -EINVAL;
	err = plan_put(s, e, now_ms, &p);
	if (err) {
		count_refusal(s, err);
		return err;
	}
	expires = e->g.ts_ms + (uint64_t)e->g.ttl_s * 1000u;
	key = e->type == MESH_ANNOUNCE ? e->g.id : e->ref;
	if (e->type == MESH_REVOKE && p.target->expires_ms > expires)
		expires = p.target->expires_ms; /* the tombstone outlives the announce */
	val[0] = 1;
	val[1] = e->type == MESH_REVOKE;
	mesh_wr(val + 2, e->type == MESH_ANNOUNCE ? s->seq + 1 : p.target->seq, 8);
	mesh_wr(val + 10, expires, 8);
	memcpy(val + META_LEN, buf, len);
	ops[0] = (struct store_op){ s->dbi, key, MESH_ID_LEN, val, META_LEN + len };
	for (unsigned int i = 0; i < p.n_victims; i++) {
		memcpy(ids[i], p.victims[i]->id, MESH_ID_LEN);
		ops[1 + i] = (struct store_op){ s->dbi, ids[i], MESH_ID_LEN, NULL, 0 };
	}
	err = store_write_sync(s->st, ops, 1 + p.n_victims, WRITE_TIMEOUT_MS);
	if (err) {
		s->stats.bad++;
		return err == -ENOSPC ? -ENOSPC : -EIO;
	}
	/* On disk: now the index. Victims are removed by id (removal moves
	 * entries, so pointers are not kept across it). */
	for (unsigned int i = 0; i < p.n_victims; i++) {
		x = find(s, ids[i]);
		if (x) {
			s->stats.evicted++;
			ent_remove(s, x);
		}
	}
	if (e->type == MESH_ANNOUNCE) {
		x = ent_push(s);
		if (!x)
			return -ENOMEM; /* on disk: the next open takes it */
		memcpy(x->id, e->g.id, MESH_ID_LEN);
		x->pfx = mesh_rd(x->id, 8);
		memcpy(x->provider, e->g.origin, MESH_PK_LEN);
		x->service = e->service;
		x->seq = ++s->seq;
		s->stats.added++;
		ret = 0;
	} else {
		x = find(s, e->ref);
		if (!x)
			return -EIO;
		if (e->type == MESH_REVOKE) {
			x->gone = 1;
			s->stats.revoked++;
			ret = 2;
		} else {
			s->stats.updated++;
			ret = 1;
		}
	}
	x->ts_ms = e->g.ts_ms;
	x->expires_ms = expires;
	if (e->type != MESH_REVOKE) {
		x->level = p.level;
		x->level_until = p.level_until;
	}
	return ret;
}

int mesh_store_gc(struct mesh_store *s, uint64_t now_ms)
{
	uint8_t ids[64][MESH_ID_LEN];
	struct store_op ops[64];
	int total = 0;

	for (;;) {
		size_t k = 0;
		int err;

		for (size_t i = 0; i < s->n && k < 64; i++)
			if (dead(&s->e[i], now_ms)) {
				memcpy(ids[k], s->e[i].id, MESH_ID_LEN);
				ops[k] = (struct store_op){ s->dbi, ids[k], MESH_ID_LEN, NULL, 0 };
				k++;
			}
		if (k == 0)
			return total;
		err = store_write_sync(s->st, ops, k, WRITE_TIMEOUT_MS);
		if (err)
			return -EIO;
		for (size_t j = 0; j < k; j++) {
			struct ent *x = find(s, ids[j]);

			if (x)
				ent_remove(s, x);
		}
		s->stats.expired += k;
		total += (int)k;
	}
}

struct query_ctx {
	struct mesh_store *s;
	const struct mesh_filter *f;
	mesh_store_fn fn;
	void *arg;
	int given;
};

/* The body of a stored envelope (verified when stored or loaded; the
 * offsets are checked again all the same). */
static int stored_body(const uint8_t *env, size_t len, const uint8_t **body, size_t *blen)
{
	size_t off = COMM_ENV_HDR_LEN + MESH_HDR_LEN;

	if (len < off + COMM_SIG_LEN)
		return -EBADMSG;
	*blen = (size_t)mesh_rd(env + off - 2, 2);
	if (off + *blen + COMM_SIG_LEN > len)
		return -EBADMSG;
	*body = env + off;
	return 0;
}

int mesh_store_query(struct mesh_store *s, uint32_t service, const struct mesh_filter *f,
		     uint8_t min_level, uint32_t max, uint64_t now_ms, mesh_store_fn fn, void *arg)
{
	struct store_txn *txn;
	int given = 0;

	if (store_txn_begin(s->st, 1, &txn) != 0)
		return -EIO;
	for (size_t i = 0; i < s->n && (uint32_t)given < max; i++) {
		const struct ent *x = &s->e[i];
		const uint8_t *v, *body;
		size_t vlen, blen;

		if (x->service != service || x->gone || dead(x, now_ms) ||
		    level_at(x, now_ms) < min_level)
			continue;
		if (store_txn_get(txn, s->dbi, x->id, MESH_ID_LEN, (const void **)&v, &vlen) != 0 ||
		    vlen < META_LEN || stored_body(v + META_LEN, vlen - META_LEN, &body, &blen) != 0)
			continue;
		if (f && !mesh_filter_match(f, body, blen))
			continue;
		fn(arg, v + META_LEN, vlen - META_LEN);
		given++;
	}
	store_txn_abort(txn);
	return given;
}

int mesh_store_get(struct mesh_store *s, const uint8_t id[MESH_ID_LEN], uint8_t *out, size_t cap,
		   size_t *out_len)
{
	struct store_txn *txn;
	const uint8_t *v;
	size_t vlen;
	int err;

	*out_len = 0;
	if (!find(s, id))
		return -ENOENT;
	if (store_txn_begin(s->st, 1, &txn) != 0)
		return -EIO;
	err = store_txn_get(txn, s->dbi, id, MESH_ID_LEN, (const void **)&v, &vlen);
	if (!err && vlen < META_LEN)
		err = -EIO;
	if (!err && vlen - META_LEN > cap)
		err = -ENOSPC;
	if (!err) {
		memcpy(out, v + META_LEN, vlen - META_LEN);
		*out_len = vlen - META_LEN;
	}
	store_txn_abort(txn);
	return err == -ENOENT ? -ENOENT : err ? (err == -ENOSPC ? -ENOSPC : -EIO) : 0;
}

void mesh_store_stats(const struct mesh_store *s, struct mesh_store_stats *out)
{
	*out = s->stats;
	out->index_bytes = s->cap * sizeof(struct ent);
	out->held = 0;
	for (size_t i = 0; i < s->n; i++)
		out->held += !s->e[i].gone;
}

/* ---- open: load and verify ---- */

struct load_ctx {
	struct mesh_store *s;
	uint64_t now;
	uint8_t (*drop)[MESH_ID_LEN];
	size_t n_drop, cap_drop;
	int err;
};

static int load_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct load_ctx *c = arg;
	struct mesh_store *s = c->s;
	const uint8_t *v = val;
	struct mesh_env e;
	struct ent *x;
	uint64_t expires;
	int ok;

	ok = klen == MESH_ID_LEN && vlen > META_LEN && v[0] == 1 && v[1] <= 1 &&
	     mesh_env_parse(v + META_LEN, vlen - META_LEN, &e, NULL) == 0;
	expires = ok ? mesh_rd(v + 10, 8) : 0;
	if (ok) {
		/* What the key names: an Announce's own id, or the announce an
		 * Update or Revoke (tombstone) refers to. */
		const uint8_t *names = e.type == MESH_ANNOUNCE ? e.g.id : e.ref;

		ok = (e.type == MESH_ANNOUNCE || e.type == MESH_UPDATE || e.type == MESH_REVOKE) &&
		     (e.type == MESH_REVOKE) == v[1] && !memcmp(names, key, MESH_ID_LEN) &&
		     served(s, e.service);
	}
	if (!ok || expires <= c->now) {
		if (c->n_drop == c->cap_drop) {
			size_t nc = c->cap_drop ? c->cap_drop * 2 : 64;
			void *nd = realloc(c->drop, nc * MESH_ID_LEN);

			if (!nd)
				return -ENOMEM;
			c->drop = nd;
			c->cap_drop = nc;
		}
		if (klen == MESH_ID_LEN)
			memcpy(c->drop[c->n_drop++], key, MESH_ID_LEN);
		if (!ok)
			s->stats.bad++;
		else
			s->stats.expired++;
		return 0;
	}
	x = ent_push(s);
	if (!x)
		return -ENOMEM;
	memcpy(x->id, key, MESH_ID_LEN);
	x->pfx = mesh_rd(x->id, 8);
	memcpy(x->provider, e.g.origin, MESH_PK_LEN);
	x->service = e.service;
	x->ts_ms = e.g.ts_ms;
	x->expires_ms = expires;
	x->seq = mesh_rd(v + 2, 8);
	x->gone = v[1];
	if (x->seq > s->seq)
		s->seq = x->seq;
	if (!x->gone)
		level_of(s, &e, c->now, &x->level, &x->level_until);
	return 0;
}

int mesh_store_new(struct mesh_store **out, struct store *st, const struct mesh_store_opts *opts,
		   uint64_t now_ms)
{
	struct load_ctx c = { 0 };
	struct mesh_store *s;
	int err;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->st = st;
	if (opts)
		s->o = *opts;
	if (!s->o.per_service)
		s->o.per_service = 4096;
	if (!s->o.per_provider)
		s->o.per_provider = 64;
	if (!s->o.services_max)
		s->o.services_max = 64;
	if (s->o.services_max > MESH_SERVICES_CAP)
		s->o.services_max = MESH_SERVICES_CAP;
	err = store_db(st, DB_NAME, &s->dbi);
	if (err) {
		free(s);
		return -EIO;
	}
	c.s = s;
	c.now = now_ms;
	err = store_iter(st, s->dbi, load_one, &c);
	for (size_t i = 0; !err && i < c.n_drop; i += 64) {
		struct store_op ops[64];
		size_t k = c.n_drop - i < 64 ? c.n_drop - i : 64;

		for (size_t j = 0; j < k; j++)
			ops[j] = (struct store_op){ s->dbi, c.drop[i + j], MESH_ID_LEN, NULL, 0 };
		err = store_write_sync(st, ops, k, WRITE_TIMEOUT_MS);
	}
	free(c.drop);
	if (err) {
		mesh_store_free(s);
		return err == -ENOMEM ? -ENOMEM : -EIO;
	}
	*out = s;
	return 0;
}

void mesh_store_free(struct mesh_store *s)
{
	if (!s)
		return;
	free(s->e);
	free(s);
}
