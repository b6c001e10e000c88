// SPDX-License-Identifier: MIT
/* The guard: bans, limits and counters over the XDP program or the
 * software policers, with bans persisted in LMDB. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "weft/guard.h"
#include "weft/log.h"
#include "weft/policer.h"
#include "weft/store.h"
#include "weft/util.h"
#include "guard_int.h"

/* Persisted record: key = family(1) prefixlen(1) addr(16); value = expiry
 * in wall-clock seconds, u64 little endian, 0 = permanent. */
#define BAN_KEY_LEN 18

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

static void ban_persist(struct guard *g, const struct wxdp_ban *b, int added)
{
	uint8_t k[BAN_KEY_LEN], v[8];
	uint64_t w;
	int err;

	if (!g->store)
		return;
	ban_key(b, k);
	if (added) {
		w = mono_to_wall(b->expires_ns);
		for (int i = 0; i < 8; i++)
			v[i] = (uint8_t)(w >> (8 * i));
		err = store_put(g->store, g->db, k, sizeof(k), v, sizeof(v));
	} else {
		err = store_del(g->store, g->db, k, sizeof(k));
		if (err == -ENOENT)
			err = 0;
	}
	if (err)
		log_warn("guard", "cannot persist a ban change: %s", strerror(-err));
}

/* Index of an exact ban in the table, or -1. Caller holds the lock. */
static int ban_find(struct guard *g, const struct wxdp_ban *b)
{
	for (size_t i = 0; i < g->nbans; i++)
		if (g->bans[i].family == b->family && g->bans[i].prefixlen == b->prefixlen &&
		    memcmp(g->bans[i].addr, b->addr, 16) == 0)
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

int guard_ban_add(struct guard *g, const struct wxdp_ban *in)
{
	struct wxdp_ban b = *in;
	int idx, err;

	if (b.family != AF_INET && b.family != AF_INET6)
		return -EINVAL;
	if (b.prefixlen > (b.family == AF_INET ? 32 : 128))
		return -EINVAL;
	b.drops = 0;
	pthread_mutex_lock(&g->lock);
	idx = ban_find(g, &b);
	if (idx < 0 && g->nbans >= GUARD_MAX_BANS) {
		pthread_mutex_unlock(&g->lock);
		return -ENOSPC;
	}
	err = apply_add(g, &b);
	if (!err) {
		if (idx < 0)
			idx = (int)g->nbans++;
		g->bans[idx] = b;
		ban_persist(g, &b, 1);
	}
	pthread_mutex_unlock(&g->lock);
	return err;
}

int guard_ban_addr(struct guard *g, int family, const uint8_t *addr, uint64_t ttl_s)
{
	struct wxdp_ban b = { 0 };
	struct wxdp_config c;

	guard_config_get(g, &c);
	b.family = (uint8_t)family;
	if (family == AF_INET) {
		memcpy(b.addr, addr, 4);
		b.prefixlen = 32;
	} else if (family == AF_INET6) {
		b.prefixlen = c.v6_prefix ? c.v6_prefix : 64;
		for (unsigned int i = 0; i < 16; i++) {
			unsigned int bits = b.prefixlen > 8 * i ? b.prefixlen - 8 * i : 0;

			b.addr[i] = bits >= 8 ? addr[i] : (uint8_t)(addr[i] & (0xff00 >> bits));
		}
	} else {
		return -EINVAL;
	}
	b.expires_ns = ttl_s ? util_now_ns() + ttl_s * 1000000000ULL : 0;
	return guard_ban_add(g, &b);
}

int guard_validated_add(struct guard *g, int family, const uint8_t *addr, enum guard_evidence ev)
{
	/* Interface only for now: the validated-source table is being built
	 * (issue 12); callers may already report evidence. */
	(void)g;
	(void)family;
	(void)addr;
	(void)ev;
	return 0;
}

int guard_ban_del(struct guard *g, const struct wxdp_ban *b)
{
	int idx;

	pthread_mutex_lock(&g->lock);
	idx = ban_find(g, b);
	if (idx < 0) {
		pthread_mutex_unlock(&g->lock);
		return -ENOENT;
	}
	apply_del(g, &g->bans[idx]);
	ban_persist(g, &g->bans[idx], 0);
	g->bans[idx] = g->bans[--g->nbans];
	pthread_mutex_unlock(&g->lock);
	return 0;
}

int guard_ban_list(struct guard *g, struct wxdp_ban *out, size_t cap, size_t *n)
{
	uint64_t now = util_now_ns();
	size_t o = 0;

	if (g->xdp)
		return wxdp_ban_list(g->xdp, out, cap, n);
	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->nbans && o < cap; i++)
		if (!g->bans[i].expires_ns || g->bans[i].expires_ns > now)
			out[o++] = g->bans[i];
	pthread_mutex_unlock(&g->lock);
	*n = o;
	return 0;
}

int guard_ban_gc(struct guard *g)
{
	uint64_t now = util_now_ns();
	int removed = 0;

	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->nbans;) {
		if (g->bans[i].expires_ns && g->bans[i].expires_ns <= now) {
			apply_del(g, &g->bans[i]);
			ban_persist(g, &g->bans[i], 0);
			g->bans[i] = g->bans[--g->nbans];
			removed++;
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&g->lock);
	if (g->xdp)
		wxdp_ban_gc(g->xdp, now);
	return removed;
}

int guard_config_get(struct guard *g, struct wxdp_config *c)
{
	if (g->xdp)
		return wxdp_config_get(g->xdp, c);
	pthread_mutex_lock(&g->lock);
	*c = g->config;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

int guard_config_set(struct guard *g, const struct wxdp_config *c)
{
	int err;

	if (wxdp_config_check(c))
		return -EINVAL;
	if (g->xdp)
		return wxdp_config_set(g->xdp, c);
	pthread_mutex_lock(&g->lock);
	err = 0;
	for (unsigned int i = 0; i < g->npol && !err; i++)
		err = policer_config_set(g->pol[i], c);
	if (!err)
		g->config = *c;
	pthread_mutex_unlock(&g->lock);
	return err;
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

int guard_filter(void *arg, const struct io_pkt *pkt, uint64_t now_ms)
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
	pp.now_ns = util_now_ns();
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
	if (klen != BAN_KEY_LEN || vlen != 8 || (k[0] != 4 && k[0] != 6) ||
	    k[1] > (k[0] == 4 ? 32 : 128)) {
		r->bad++;
		return 0;
	}
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
	if (r->g->nbans >= GUARD_MAX_BANS || apply_add(r->g, &b)) {
		r->bad++;
		return 0;
	}
	r->g->bans[r->g->nbans++] = b;
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
	g->xdp = opts->xdp;
	g->store = opts->store;
	if (opts->config)
		g->config = *opts->config;
	else
		wxdp_config_default(&g->config);
	if (opts->npolicers) {
		struct policer_opts po = { .config = &g->config };

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
	if (g->store) {
		struct restore_ctx r = { g, util_wall_s(), util_now_ns(), 0, 0, 0 };

		err = store_db(g->store, "bans", &g->db);
		if (err)
			goto fail;
		err = store_iter(g->store, g->db, restore_one, &r);
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

void guard_free(struct guard *g)
{
	if (!g)
		return;
	for (unsigned int i = 0; i < g->npol; i++)
		policer_free(g->pol[i]);
	free(g->pol);
	free(g->bans);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
