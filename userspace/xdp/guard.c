// SPDX-License-Identifier: MIT
/* The guard: bans, limits and counters over the XDP program or the
 * software policers, with bans persisted in LMDB. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "weft/guard.h"
#include "weft/log.h"
#include "weft/policer.h"
#include "weft/store.h"
#include "weft/util.h"
#include "weft/xdp_policy.h"
#include "guard_int.h"
#include "xdp/xdp_internal.h"

/* Persisted record: key = family(1) prefixlen(1) addr(16); value = expiry
 * in wall-clock seconds, u64 little endian, 0 = permanent, then the kind
 * (1 byte, enum wxdp_ban_kind). Records written before kinds existed have
 * no kind byte and are restored as operator bans (nothing is lost). */
#define BAN_KEY_LEN 18
#define BAN_VAL_LEN 9
#define BAN_VAL_LEN_V0 8

static void ban_key(const struct wxdp_ban *b, uint8_t k[BAN_KEY_LEN])
{
	k[0] = b->family == AF_INET6 ? 6 : 4;
	k[1] = b->prefixlen;
	memcpy(k + 2, b->addr, 16);
}

static uint64_t mono_to_wall(uint64_t exp_ns)
{
	uint64_t now = util_now_ns();

	if (!exp_ns)
		return 0;
	return util_wall_s() + (exp_ns > now ? (exp_ns - now + 999999999ULL) / 1000000000ULL : 0);
}

/*
 * Record a ban change in the store, in the order of the guard's lock.
 * ticket NULL: fire-and-forget (automatic bans, expiry, eviction: they may
 * come from packet workers, which never wait on the disk). Otherwise a
 * durable write the caller waits for once the lock is released (operator
 * bans: the control API acknowledges them only once they are on disk).
 */
static int ban_persist(struct guard *g, const struct wxdp_ban *b, int added,
		       struct store_write **ticket)
{
	uint8_t k[BAN_KEY_LEN], v[BAN_VAL_LEN];
	struct store_op op = { .dbi = g->db, .key = k, .klen = sizeof(k) };
	uint64_t w;
	int err;

	if (!g->store || g->restoring)
		return 0;
	ban_key(b, k);
	if (added) {
		w = mono_to_wall(b->expires_ns);
		for (int i = 0; i < 8; i++)
			v[i] = (uint8_t)(w >> (8 * i));
		v[8] = b->kind;
		op.val = v;
		op.vlen = sizeof(v);
	}
	if (!ticket) {
		/* A full queue drops it (counted by the store): the ban is in
		 * force and lasts until restart at worst. */
		store_write_async(g->store, &op, 1);
		return 0;
	}
	err = store_write_queue(g->store, &op, 1, ticket);
	if (err)
		*ticket = NULL;
	return err;
}

/* Index of an exact ban in the table, or -1. Caller holds the lock. */
static int ban_find(struct guard *g, const struct wxdp_ban *b)
{
	for (size_t i = 0; i < g->nbans; i++)
		if (g->bans[i].b.family == b->family && g->bans[i].b.prefixlen == b->prefixlen &&
		    memcmp(g->bans[i].b.addr, b->addr, 16) == 0)
			return (int)i;
	return -1;
}

static int apply_add(struct guard *g, const struct wxdp_ban *b)
{
	int err = 0;

	if (g->xdp)
		return wxdp_ban_add(g->xdp, b);
	for (unsigned int i = 0; i < g->npol && !err; i++)
		err = policer_ban_add(g->pol[i], b);
	return err;
}

static void apply_del(struct guard *g, const struct wxdp_ban *b)
{
	if (g->xdp) {
		wxdp_ban_del(g->xdp, b);
		return;
	}
	for (unsigned int i = 0; i < g->npol; i++)
		policer_ban_del(g->pol[i], b);
}

/* Remove entry idx everywhere (map or policers, store, table). Lock held.
 * ticket: as ban_persist. */
static int ban_remove(struct guard *g, size_t idx, struct store_write **ticket)
{
	int err;

	apply_del(g, &g->bans[idx].b);
	err = ban_persist(g, &g->bans[idx].b, 0, ticket);
	g->nkind[g->bans[idx].b.kind]--;
	g->bans[idx] = g->bans[--g->nbans];
	return err;
}

/* Make room for one automatic ban: drop an expired one, else evict the
 * least recently banned. Lock held; the quota is full. */
static void auto_make_room(struct guard *g, uint64_t now)
{
	size_t victim = SIZE_MAX;

	for (size_t i = 0; i < g->nbans; i++) {
		const struct guard_ban_ent *e = &g->bans[i];

		if (e->b.kind != WXDP_BAN_AUTO)
			continue;
		if (e->b.expires_ns && e->b.expires_ns <= now) {
			victim = i;
			break;
		}
		if (victim == SIZE_MAX || e->seq < g->bans[victim].seq)
			victim = i;
	}
	if (victim == SIZE_MAX)
		return;
	if (!g->bans[victim].b.expires_ns || g->bans[victim].b.expires_ns > now)
		g->auto_evicted++;
	ban_remove(g, victim, NULL);
}

/* Add, or replace, under the lock. ticket: as ban_persist. */
static int ban_add_locked(struct guard *g, struct wxdp_ban *b, uint64_t now,
			  struct store_write **ticket)
{
	static const size_t quota[2] = { GUARD_MAX_AUTO_BANS, GUARD_MAX_OPERATOR_BANS };
	int idx = ban_find(g, b), err;

	if (idx >= 0 && g->bans[idx].b.kind == WXDP_BAN_OPERATOR && b->kind == WXDP_BAN_AUTO)
		return 0; /* the operator's ban stays as the operator set it */
	if (idx < 0 || g->bans[idx].b.kind != b->kind) {
		if (g->nkind[b->kind] >= quota[b->kind]) {
			if (b->kind == WXDP_BAN_OPERATOR)
				return -ENOSPC;
			auto_make_room(g, now);
			idx = ban_find(g, b); /* the table moved */
		}
	}
	err = apply_add(g, b);
	if (err) {
		if (b->kind == WXDP_BAN_AUTO)
			g->auto_refused++;
		return err;
	}
	if (idx < 0) {
		idx = (int)g->nbans++;
	} else {
		g->nkind[g->bans[idx].b.kind]--;
	}
	g->nkind[b->kind]++;
	g->bans[idx].b = *b;
	g->bans[idx].seq = ++g->ban_seq;
	/* In force now; an operator's ban is acknowledged once on disk. */
	return ban_persist(g, b, 1, ticket);
}

int guard_ban_add(struct guard *g, const struct wxdp_ban *in)
{
	struct wxdp_ban b = *in;
	struct store_write *ticket = NULL;
	uint64_t now = util_now_ns();
	int err;

	if (b.family != AF_INET && b.family != AF_INET6)
		return -EINVAL;
	if (b.prefixlen > (b.family == AF_INET ? 32 : 128))
		return -EINVAL;
	if (b.kind != WXDP_BAN_AUTO && b.kind != WXDP_BAN_OPERATOR)
		return -EINVAL;
	if (wxdp_ban_norm(&b))
		return -EINVAL;
	b.drops = 0;
	if (b.kind == WXDP_BAN_AUTO &&
	    (!b.expires_ns || b.expires_ns > now + GUARD_AUTO_BAN_MAX_S * 1000000000ULL))
		b.expires_ns = now + GUARD_AUTO_BAN_MAX_S * 1000000000ULL;
	pthread_mutex_lock(&g->lock);
	err = ban_add_locked(g, &b, now, b.kind == WXDP_BAN_OPERATOR ? &ticket : NULL);
	pthread_mutex_unlock(&g->lock);
	if (!err && ticket)
		err = store_write_wait(ticket, 0);
	return err;
}

int guard_ban_addr(struct guard *g, int family, const uint8_t *addr, uint64_t ttl_s)
{
	struct wxdp_ban b = { 0 };

	b.family = (uint8_t)family;
	b.kind = WXDP_BAN_AUTO;
	if (family == AF_INET) {
		memcpy(b.addr, addr, 4);
		b.prefixlen = 32;
	} else if (family == AF_INET6) {
		memcpy(b.addr, addr, 16);
		b.prefixlen = atomic_load_explicit(&g->v6_prefix, memory_order_relaxed);
	} else {
		return -EINVAL;
	}
	if (ttl_s > GUARD_AUTO_BAN_MAX_S)
		ttl_s = GUARD_AUTO_BAN_MAX_S;
	b.expires_ns = ttl_s ? util_now_ns() + ttl_s * 1000000000ULL : 0;
	return guard_ban_add(g, &b);
}

/* --- validated sources --- */

static int src_key(const struct guard *g, int family, const uint8_t *addr, struct wxdp_src_key *k)
{
	if (family == AF_INET)
		wxdp_src_key_v4(k, addr);
	else if (family == AF_INET6)
		wxdp_src_key_v6(k, addr, atomic_load_explicit(&g->v6_prefix, memory_order_relaxed));
	else
		return -EINVAL;
	return 0;
}

int guard_validated_add(struct guard *g, int family, const uint8_t *addr, enum guard_evidence ev)
{
	const uint64_t ttl = GUARD_VALID_TTL_S * 1000000000ULL;
	const uint64_t refresh = GUARD_VALID_REFRESH_S * 1000000000ULL;
	struct wxdp_src_key k, old;
	uint64_t now = util_now_ns(), exp;
	int err = 0;

	if (!g || !addr || ev < GUARD_EV_REPLY || ev > GUARD_EV_HANDSHAKE ||
	    src_key(g, family, addr, &k))
		return -EINVAL;
	atomic_fetch_add_explicit(&g->ev[ev], 1, memory_order_relaxed);
	/* Fast path: refreshed less than a minute ago. */
	exp = guard_valid_get(&g->valid, &k);
	if (exp > now && exp - now > ttl - refresh)
		return 0;
	pthread_mutex_lock(&g->valid_lock);
	if (guard_valid_put(&g->valid, &k, now, &old)) {
		atomic_fetch_add_explicit(&g->valid_evicted, 1, memory_order_relaxed);
		if (g->xdp)
			wxdp_valid_del(g->xdp, &old);
	}
	if (g->xdp)
		err = wxdp_valid_set(g->xdp, &k, now + ttl);
	pthread_mutex_unlock(&g->valid_lock);
	return err;
}

bool guard_validated(const struct guard *g, int family, const uint8_t *addr)
{
	struct wxdp_src_key k;

	if (!g || !addr || src_key(g, family, addr, &k))
		return false;
	return guard_valid_get(&g->valid, &k) > util_now_ns();
}

/* policer_valid_fn: the policers read the same table. */
static int policer_valid(void *arg, const struct wxdp_src_key *k, uint64_t now_ns)
{
	const struct guard *g = arg;

	return guard_valid_get(&g->valid, k) > now_ns;
}

int guard_ban_del(struct guard *g, const struct wxdp_ban *in)
{
	struct wxdp_ban b = *in;
	struct store_write *ticket = NULL;
	int idx, err;

	if (wxdp_ban_norm(&b))
		return -EINVAL;
	pthread_mutex_lock(&g->lock);
	idx = ban_find(g, &b);
	if (idx < 0) {
		pthread_mutex_unlock(&g->lock);
		return -ENOENT;
	}
	err = ban_remove(g, (size_t)idx, &ticket);
	pthread_mutex_unlock(&g->lock);
	if (!err && ticket)
		err = store_write_wait(ticket, 0);
	return err;
}

int guard_ban_list(struct guard *g, struct wxdp_ban *out, size_t cap, size_t *n)
{
	uint64_t now = util_now_ns();
	size_t o = 0;

	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->nbans && o < cap; i++)
		if (!g->bans[i].b.expires_ns || g->bans[i].b.expires_ns > now)
			out[o++] = g->bans[i].b;
	pthread_mutex_unlock(&g->lock);
	if (g->xdp)
		for (size_t i = 0; i < o; i++)
			wxdp_ban_get(g->xdp, &out[i]);
	*n = o;
	return 0;
}

int guard_ban_gc(struct guard *g)
{
	uint64_t now = util_now_ns();
	int removed = 0;

	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->nbans;) {
		if (g->bans[i].b.expires_ns && g->bans[i].b.expires_ns <= now) {
			ban_remove(g, i, NULL);
			removed++;
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&g->lock);
	return removed;
}

int guard_stats(struct guard *g, uint64_t *out)
{
	uint64_t one[WXDP_STAT__MAX];

	if (g->xdp)
		return wxdp_stats_read(g->xdp, out);
	memset(out, 0, sizeof(one));
	for (unsigned int i = 0; i < g->npol; i++) {
		policer_stats(g->pol[i], one);
		for (unsigned int s = 0; s < WXDP_STAT__MAX; s++)
			out[s] += one[s];
	}
	return 0;
}

size_t guard_sources(struct guard *g)
{
	size_t n = 0;

	if (g->xdp) {
		wxdp_bucket_count(g->xdp, &n);
		return n;
	}
	for (unsigned int i = 0; i < g->npol; i++)
		n += policer_bucket_count(g->pol[i]);
	return n;
}

const char *guard_mode(const struct guard *g)
{
	return g->xdp ? "xdp" : "software";
}

struct wxdp *guard_xdp(struct guard *g)
{
	return g->xdp;
}

int guard_filter(void *arg, const struct io_pkt *pkt, uint64_t now_ns)
{
	struct guard *g = arg;
	struct policer_pkt pp = { 0 };
	unsigned int v;

	if (!g->npol)
		return 0;
	pp.family = (uint8_t)pkt->src.family;
	memcpy(pp.src, pkt->src.addr, 16);
	pp.dport = pkt->dst.port;
	pp.payload = pkt->data;
	pp.len = pkt->len;
	/* the engine's per-batch time: one clock read per pass, not per packet */
	pp.now_ns = now_ns ? now_ns : util_now_ns();
	v = policer_check(g->pol[pkt->queue % g->npol], &pp);
	return v == WXDP_STAT_REDIRECT || v == WXDP_STAT_PASS_NOT_WEFT ? 0 : 1;
}

struct restore_ctx {
	struct guard *g;
	uint64_t now_wall, now_ns;
	unsigned int restored, expired, bad;
};

static int restore_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct restore_ctx *r = arg;
	const uint8_t *k = key, *v = val;
	struct wxdp_ban b = { 0 };
	uint64_t w = 0;

	/* Hostile disk: check every field. */
	if (klen != BAN_KEY_LEN || (vlen != BAN_VAL_LEN && vlen != BAN_VAL_LEN_V0) ||
	    (k[0] != 4 && k[0] != 6) || k[1] > (k[0] == 4 ? 32 : 128) ||
	    (vlen == BAN_VAL_LEN && v[8] != WXDP_BAN_AUTO && v[8] != WXDP_BAN_OPERATOR)) {
		r->bad++;
		return 0;
	}
	b.kind = vlen == BAN_VAL_LEN ? v[8] : WXDP_BAN_OPERATOR;
	for (int i = 0; i < 8; i++)
		w |= (uint64_t)v[i] << (8 * i);
	if (w && w <= r->now_wall) {
		r->expired++;
		return 0;
	}
	b.family = k[0] == 4 ? AF_INET : AF_INET6;
	b.prefixlen = k[1];
	memcpy(b.addr, k + 2, 16);
	b.expires_ns = w ? r->now_ns + (w - r->now_wall) * 1000000000ULL : 0;
	if (ban_add_locked(r->g, &b, r->now_ns, NULL)) {
		r->bad++;
		return 0;
	}
	r->restored++;
	return 0;
}

int guard_new(struct guard **out, const struct guard_opts *opts)
{
	struct guard *g;
	int err = 0;

	*out = NULL;
	if (!!opts->xdp == !!opts->npolicers || opts->npolicers > 1024)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->bans = calloc(GUARD_MAX_BANS, sizeof(*g->bans));
	if (!g->bans) {
		free(g);
		return -ENOMEM;
	}
	pthread_mutex_init(&g->lock, NULL);
	pthread_mutex_init(&g->valid_lock, NULL);
	pthread_mutex_init(&g->limits_mu, NULL);
	err = guard_valid_init(&g->valid, GUARD_VALID_MAX, GUARD_VALID_TTL_S * 1000000000ULL);
	if (err)
		goto fail;
	g->xdp = opts->xdp;
	g->store = opts->store;
	if (opts->config)
		g->config = *opts->config;
	else
		wxdp_config_default(&g->config);
	atomic_store(&g->v6_prefix, g->config.v6_prefix ? g->config.v6_prefix : 64);
	if (opts->npolicers) {
		struct policer_opts po = { .config = &g->config, .valid = policer_valid,
					   .valid_arg = g };

		g->pol = calloc(opts->npolicers, sizeof(*g->pol));
		if (!g->pol) {
			err = -ENOMEM;
			goto fail;
		}
		for (unsigned int i = 0; i < opts->npolicers; i++) {
			err = policer_new(&g->pol[i], &po);
			if (err)
				goto fail;
			g->npol++;
		}
	} else if (opts->config && (err = wxdp_config_set(g->xdp, opts->config))) {
		goto fail;
	}
	g->file_config = g->config;
	if (g->store && (err = guard_limits_restore(g)))
		goto fail;
	if (g->store) {
		struct restore_ctx r = { g, util_wall_s(), util_now_ns(), 0, 0, 0 };

		err = store_db(g->store, "bans", &g->db);
		if (err)
			goto fail;
		g->restoring = 1; /* the records are on disk already */
		err = store_iter(g->store, g->db, restore_one, &r);
		g->restoring = 0;
		if (err)
			goto fail;
		if (r.restored || r.expired || r.bad)
			log_info("guard", "restored %u bans (%u expired, %u unreadable)", r.restored,
				 r.expired, r.bad);
	}
	g->snap_ns = util_now_ns();
	guard_stats(g, g->snap);
	*out = g;
	return 0;
fail:
	guard_free(g);
	return err;
}

static int store_barrier(struct store_txn *txn, void *arg)
{
	(void)txn;
	(void)arg;
	return 0;
}

void guard_free(struct guard *g)
{
	if (!g)
		return;
	/* The fire-and-forget ban writes (automatic bans, expiry) queued so
	 * far reach the disk before the guard is gone: the store's writer
	 * runs in order, so a call behind them is a barrier. A guard made
	 * next on the same store restores them (test_guard_ban_persist
	 * failed on a loaded machine without it). */
	if (g->store)
		store_write_call(g->store, store_barrier, NULL, 0);
	for (unsigned int i = 0; i < g->npol; i++)
		policer_free(g->pol[i]);
	free(g->pol);
	free(g->bans);
	guard_valid_fini(&g->valid);
	json_decref(g->rt_overrides);
	pthread_mutex_destroy(&g->limits_mu);
	pthread_mutex_destroy(&g->valid_lock);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
