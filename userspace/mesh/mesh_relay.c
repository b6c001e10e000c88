// SPDX-License-Identifier: MIT
/*
 * The relay's checks, without I/O (docs/MESH.md "Propagation checks"): strict
 * parse with reasons, per-type hop caps and ttl limits, the endorsement
 * level required, the gossip core's dedup (its per-origin bucket set out
 * of the way: Responses must not share the answering node's), then a
 * bucket per (provider key, type) and one per type for all providers (a
 * Query is signed by a one-time key: only the per-type bucket bounds a
 * flood of them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mesh.h"
#include "mesh_int.h"

struct bucket {
	uint64_t last_ms;
	uint64_t tokens_milli;
};

struct key_bucket {
	uint64_t pfx;
	uint8_t pk[MESH_PK_LEN];
	uint8_t type;
	struct bucket b;
};

/* The fewest hops an accepted envelope was seen at (same ring size as the
 * gossip core's dedup). */
struct hop_seen {
	uint64_t pfx;
	uint64_t until_ms;
	uint8_t id[MESH_ID_LEN];
	uint8_t hops;
};

struct mesh_relay {
	struct mesh_relay_opts o;
	struct hop_seen *hs;
	size_t hs_n, hs_next, hs_max;
	struct comm_gossip *g;
	struct key_bucket *keys;
	size_t keys_n;
	struct bucket total[MESH_TYPE_MAX + 1];
	struct mesh_relay_stats st;
};

int mesh_relay_new(struct mesh_relay **out, const struct mesh_relay_opts *opts)
{
	struct mesh_limits def;
	struct comm_gossip_opts go;
	struct mesh_relay *r;
	int err;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (opts)
		r->o = *opts;
	mesh_limits_default(&def);
	for (unsigned int t = 1; t <= MESH_TYPE_MAX; t++) {
		/* A node may lower a type's hop cap, never raise it. */
		if (!r->o.limits.max_hops[t] || r->o.limits.max_hops[t] > def.max_hops[t])
			r->o.limits.max_hops[t] = def.max_hops[t];
		if (!r->o.limits.max_ttl_s[t])
			r->o.limits.max_ttl_s[t] = def.max_ttl_s[t];
	}
	if (!r->o.limits.future_ms)
		r->o.limits.future_ms = def.future_ms;
	if (!r->o.type_rate_per_s)
		r->o.type_rate_per_s = 2;
	if (!r->o.type_burst)
		r->o.type_burst = 10;
	if (!r->o.type_total_per_s)
		r->o.type_total_per_s = 200;
	if (!r->o.keys_max)
		r->o.keys_max = 4096;
	go = r->o.gossip;
	/* Hops, time and rates are ours (per type); the gossip core keeps
	 * the dedup: its per-origin bucket is set out of the way. */
	go.max_hops = COMM_HOPS_MAX;
	go.future_ms = r->o.limits.future_ms;
	go.rate_per_s = 1000000;
	go.burst = 1000000;
	err = comm_gossip_new(&r->g, &go);
	r->keys = calloc(r->o.keys_max, sizeof(*r->keys));
	r->hs_max = go.dedup_max ? go.dedup_max : 4096;
	r->hs = calloc(r->hs_max, sizeof(*r->hs));
	if (err || !r->keys || !r->hs) {
		mesh_relay_free(r);
		return err ? err : -ENOMEM;
	}
	for (unsigned int t = 0; t <= MESH_TYPE_MAX; t++)
		r->total[t].tokens_milli = (uint64_t)r->o.type_total_per_s * 1000u;
	*out = r;
	return 0;
}

void mesh_relay_free(struct mesh_relay *r)
{
	if (!r)
		return;
	comm_gossip_free(r->g);
	free(r->keys);
	free(r->hs);
	free(r);
}

/* Refill at rate per second up to burst, take one: 0 or -EBUSY. */
static int take(struct bucket *b, uint32_t rate, uint32_t burst, uint64_t now)
{
	uint64_t cap = (uint64_t)burst * 1000u;

	if (now > b->last_ms) {
		b->tokens_milli += (now - b->last_ms) * rate;
		if (b->tokens_milli > cap)
			b->tokens_milli = cap;
		b->last_ms = now;
	}
	if (b->tokens_milli < 1000u)
		return -EBUSY;
	b->tokens_milli -= 1000u;
	return 0;
}

static struct bucket *key_bucket(struct mesh_relay *r, const uint8_t *pk, uint8_t type,
				 uint64_t now)
{
	uint64_t pfx = mesh_rd(pk, 8);
	struct key_bucket *lru = NULL, *k;

	for (size_t i = 0; i < r->keys_n; i++) {
		k = &r->keys[i];
		if (k->pfx == pfx && k->type == type && !memcmp(k->pk, pk, MESH_PK_LEN))
			return &k->b;
		if (!lru || k->b.last_ms < lru->b.last_ms)
			lru = k;
	}
	/* A free slot, else the least recently heard key's (it starts full). */
	k = r->keys_n < r->o.keys_max ? &r->keys[r->keys_n++] : lru;
	k->pfx = pfx;
	k->type = type;
	memcpy(k->pk, pk, MESH_PK_LEN);
	k->b.last_ms = now;
	k->b.tokens_milli = (uint64_t)r->o.type_burst * 1000u;
	return &k->b;
}

static struct hop_seen *hops_find(struct mesh_relay *r, const uint8_t *id, uint64_t now)
{
	uint64_t pfx = mesh_rd(id, 8);

	for (size_t i = 0; i < r->hs_n; i++)
		if (r->hs[i].pfx == pfx && r->hs[i].until_ms > now &&
		    !memcmp(r->hs[i].id, id, MESH_ID_LEN))
			return &r->hs[i];
	return NULL;
}

static void hops_note(struct mesh_relay *r, const uint8_t *id, uint8_t hops, uint64_t now)
{
	struct hop_seen *h = &r->hs[r->hs_next];

	r->hs_next = (r->hs_next + 1) % r->hs_max;
	if (r->hs_n < r->hs_max)
		r->hs_n++;
	h->pfx = mesh_rd(id, 8);
	h->until_ms = now + (r->o.gossip.dedup_ms ? r->o.gossip.dedup_ms : 600000u);
	memcpy(h->id, id, MESH_ID_LEN);
	h->hops = hops;
}

int mesh_relay_input(struct mesh_relay *r, const uint8_t *buf, size_t len, uint64_t now_ms,
		     struct mesh_env *out, enum mesh_drop *why)
{
	enum mesh_drop d;
	struct comm_env ge;
	int err;

	err = mesh_env_parse(buf, len, out, &d);
	if (!err)
		err = mesh_env_check(out, &r->o.limits, now_ms, &d);
	if (!err && (out->type == MESH_ANNOUNCE || out->type == MESH_UPDATE) &&
	    mesh_level(r->o.trust, out, now_ms) < r->o.min_level) {
		d = MESH_DROP_LEVEL;
		err = -EACCES;
	}
	if (!err) {
		err = comm_gossip_input(r->g, buf, len, now_ms, &ge);
		if (err == -EALREADY) {
			struct hop_seen *h = hops_find(r, out->g.id, now_ms);

			/* A copy over a shorter path than the first: the first
			 * one may have stopped at the hop limit before the
			 * nodes this copy can still reach. Forward it again;
			 * take nothing else of it. */
			if (h && out->g.hops < h->hops) {
				h->hops = out->g.hops;
				r->st.reforward++;
				return 1;
			}
			d = MESH_DROP_DUPLICATE;
		}
		else if (err == -EBUSY)
			d = MESH_DROP_RATE;
		else if (err)
			d = MESH_DROP_MALFORMED; /* not reached: our checks are stricter */
	}
	/* A Response is bounded by the reverse path instead (only for a Query
	 * we passed on, as many distinct announces as it asked): one store
	 * answers up to 64 at once. */
	if (!err &&
	    ((out->type != MESH_RESPONSE &&
	      take(key_bucket(r, out->g.origin, out->type, now_ms), r->o.type_rate_per_s,
		   r->o.type_burst, now_ms)) ||
	     take(&r->total[out->type], r->o.type_total_per_s, r->o.type_total_per_s, now_ms))) {
		d = MESH_DROP_RATE;
		err = -EBUSY;
	}
	if (err) {
		r->st.drop[d]++;
		if (why)
			*why = d;
		return err;
	}
	hops_note(r, out->g.id, out->g.hops, now_ms);
	r->st.accepted++;
	r->st.by_type[out->type]++;
	return 0;
}

void mesh_relay_note(struct mesh_relay *r, const uint8_t id[MESH_ID_LEN], uint64_t now_ms)
{
	comm_gossip_note(r->g, id, now_ms);
}

int mesh_relay_forward(struct mesh_relay *r, const uint8_t *buf, size_t len, uint8_t *out,
		       size_t cap)
{
	unsigned int hop_cap;
	struct mesh_env e;

	if (mesh_env_parse(buf, len, &e, NULL) != 0)
		return -EBADMSG;
	hop_cap = e.g.max_hops < r->o.limits.max_hops[e.type] ? e.g.max_hops
							      : r->o.limits.max_hops[e.type];
	if (e.g.hops >= hop_cap)
		return -ELOOP;
	if (cap < len)
		return -ENOSPC;
	memcpy(out, buf, len);
	out[1] = (uint8_t)(e.g.hops + 1); /* the gossip envelope's hop count */
	return 0;
}

void mesh_relay_stats(const struct mesh_relay *r, struct mesh_relay_stats *out)
{
	*out = r->st;
}
