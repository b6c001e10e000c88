// SPDX-License-Identifier: MIT
/*
 * Bounded gossip, the core without I/O (docs/COMMUNITY.md "Gossip"): signed
 * envelopes with a hop limit, deduplication by envelope id, a token bucket
 * per origin key, fan-out selection. Generic on purpose: a community's
 * records ride on it now, issue 32's mesh envelopes later (kind = their
 * service id and type).
 *
 * Both tables are small arrays scanned linearly on an 8-byte prefix (4096
 * ids and 1024 origins by default: about a microsecond a message, and the
 * rate limit bounds how many messages arrive).
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "weft/comm.h"

static const char ENV_LABEL[] = "weft-gossip-v1";
#define LABEL_LEN (sizeof(ENV_LABEL) - 1)
#define OFF_HOPS 1u
#define OFF_MAX 2u
#define OFF_KIND 3u
#define OFF_TS 7u
#define OFF_TTL 15u
#define OFF_ORIGIN 19u
#define OFF_PLEN (OFF_ORIGIN + COMM_PK_LEN)
_Static_assert(OFF_PLEN + 2u == COMM_ENV_HDR_LEN, "envelope header layout");

struct seen {
	uint64_t pfx;
	uint64_t until_ms;
	uint8_t id[COMM_ENV_ID_LEN];
};

struct origin {
	uint64_t pfx;
	uint64_t last_ms;
	uint64_t tokens_milli;
	uint8_t pk[COMM_PK_LEN];
};

struct comm_gossip {
	struct comm_gossip_opts o;
	struct seen *seen; /* ring, o.dedup_max */
	size_t seen_n, seen_next;
	struct origin *orig;
	size_t orig_n;
	struct comm_gossip_stats st;
};

static uint64_t rd(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void wr(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The signed message: label || envelope up to the signature, hops = 0. */
static size_t env_msg(uint8_t *m, const uint8_t *env, size_t body)
{
	memcpy(m, ENV_LABEL, LABEL_LEN);
	memcpy(m + LABEL_LEN, env, body);
	m[LABEL_LEN + OFF_HOPS] = 0;
	return LABEL_LEN + body;
}

int comm_env_build(const uint8_t origin_sk[COMM_SK_LEN], uint32_t kind, uint8_t max_hops,
		   uint64_t ts_ms, uint32_t ttl_s, const uint8_t *payload, size_t payload_len,
		   uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t m[LABEL_LEN + COMM_ENV_HDR_LEN + COMM_ENV_MAX_PAYLOAD];
	uint8_t pk[COMM_PK_LEN], sk[COMM_SK_LEN];
	size_t body = COMM_ENV_HDR_LEN + payload_len;

	*out_len = 0;
	if (max_hops == 0 || max_hops > COMM_HOPS_MAX)
		return -EINVAL;
	if (payload_len > COMM_ENV_MAX_PAYLOAD)
		return -E2BIG;
	crypto_sign_seed_keypair(pk, sk, origin_sk);
	sodium_memzero(sk, sizeof(sk));
	if (sodium_memcmp(pk, origin_sk + 32, COMM_PK_LEN) != 0)
		return -EINVAL;
	if (cap < body + COMM_SIG_LEN)
		return -ENOSPC;
	out[0] = 1;
	out[OFF_HOPS] = 1;
	out[OFF_MAX] = max_hops;
	wr(out + OFF_KIND, kind, 4);
	wr(out + OFF_TS, ts_ms, 8);
	wr(out + OFF_TTL, ttl_s, 4);
	memcpy(out + OFF_ORIGIN, pk, COMM_PK_LEN);
	wr(out + OFF_PLEN, payload_len, 2);
	if (payload_len)
		memcpy(out + COMM_ENV_HDR_LEN, payload, payload_len);
	crypto_sign_detached(out + body, NULL, m, env_msg(m, out, body), origin_sk);
	*out_len = body + COMM_SIG_LEN;
	return 0;
}

int comm_env_parse(const uint8_t *buf, size_t len, struct comm_env *out)
{
	uint8_t m[LABEL_LEN + COMM_ENV_HDR_LEN + COMM_ENV_MAX_PAYLOAD];
	size_t body, mlen;

	memset(out, 0, sizeof(*out));
	if (len < COMM_ENV_HDR_LEN + COMM_SIG_LEN || len > COMM_ENV_MAX_LEN || buf[0] != 1)
		return -EBADMSG;
	out->payload_len = (uint16_t)rd(buf + OFF_PLEN, 2);
	body = COMM_ENV_HDR_LEN + out->payload_len;
	if (out->payload_len > COMM_ENV_MAX_PAYLOAD || len != body + COMM_SIG_LEN)
		return -EBADMSG;
	out->hops = buf[OFF_HOPS];
	out->max_hops = buf[OFF_MAX];
	if (out->max_hops == 0 || out->max_hops > COMM_HOPS_MAX)
		return -EBADMSG;
	out->kind = (uint32_t)rd(buf + OFF_KIND, 4);
	out->ts_ms = rd(buf + OFF_TS, 8);
	out->ttl_s = (uint32_t)rd(buf + OFF_TTL, 4);
	memcpy(out->origin, buf + OFF_ORIGIN, COMM_PK_LEN);
	out->payload = buf + COMM_ENV_HDR_LEN;
	mlen = env_msg(m, buf, body);
	if (crypto_sign_verify_detached(buf + body, m, mlen, out->origin) != 0)
		return -EBADMSG;
	crypto_generichash(out->id, sizeof(out->id), m, mlen, NULL, 0);
	return 0;
}

int comm_gossip_new(struct comm_gossip **out, const struct comm_gossip_opts *opts)
{
	struct comm_gossip *g;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	if (opts)
		g->o = *opts;
	if (!g->o.dedup_max)
		g->o.dedup_max = 4096;
	if (!g->o.dedup_ms)
		g->o.dedup_ms = 600000;
	if (!g->o.origins_max)
		g->o.origins_max = 1024;
	if (!g->o.rate_per_s)
		g->o.rate_per_s = 10;
	if (!g->o.burst)
		g->o.burst = 20;
	if (!g->o.max_hops || g->o.max_hops > COMM_HOPS_MAX)
		g->o.max_hops = 6;
	if (!g->o.future_ms)
		g->o.future_ms = 60000;
	g->seen = calloc(g->o.dedup_max, sizeof(*g->seen));
	g->orig = calloc(g->o.origins_max, sizeof(*g->orig));
	if (!g->seen || !g->orig) {
		comm_gossip_free(g);
		return -ENOMEM;
	}
	*out = g;
	return 0;
}

void comm_gossip_free(struct comm_gossip *g)
{
	if (!g)
		return;
	free(g->seen);
	free(g->orig);
	free(g);
}

static int seen_has(const struct comm_gossip *g, const uint8_t *id, uint64_t now)
{
	uint64_t pfx = rd(id, 8);

	for (size_t i = 0; i < g->seen_n; i++)
		if (g->seen[i].pfx == pfx && g->seen[i].until_ms > now &&
		    memcmp(g->seen[i].id, id, COMM_ENV_ID_LEN) == 0)
			return 1;
	return 0;
}

void comm_gossip_note(struct comm_gossip *g, const uint8_t id[COMM_ENV_ID_LEN], uint64_t now_ms)
{
	struct seen *s;

	if (seen_has(g, id, now_ms))
		return;
	/* The ring drops the oldest id when full: an envelope older than
	 * dedup_max newer ones may be accepted once more, and its hop limit
	 * still bounds how far it goes. */
	s = &g->seen[g->seen_next];
	g->seen_next = (g->seen_next + 1) % g->o.dedup_max;
	if (g->seen_n < g->o.dedup_max)
		g->seen_n++;
	s->pfx = rd(id, 8);
	s->until_ms = now_ms + g->o.dedup_ms;
	memcpy(s->id, id, COMM_ENV_ID_LEN);
}

/* Take a token from origin pk's bucket: 0, or -EBUSY. */
static int rate_take(struct comm_gossip *g, const uint8_t *pk, uint64_t now)
{
	uint64_t pfx = rd(pk, 8), cap = (uint64_t)g->o.burst * 1000u;
	struct origin *o = NULL, *lru = NULL;

	for (size_t i = 0; i < g->orig_n; i++) {
		struct origin *c = &g->orig[i];

		if (c->pfx == pfx && memcmp(c->pk, pk, COMM_PK_LEN) == 0) {
			o = c;
			break;
		}
		if (!lru || c->last_ms < lru->last_ms)
			lru = c;
	}
	if (!o) {
		/* A new origin takes a free slot, else the least recently
		 * heard one's (which starts again with a full bucket). */
		o = g->orig_n < g->o.origins_max ? &g->orig[g->orig_n++] : lru;
		o->pfx = pfx;
		memcpy(o->pk, pk, COMM_PK_LEN);
		o->tokens_milli = cap;
		o->last_ms = now;
	}
	if (now > o->last_ms) {
		o->tokens_milli += (now - o->last_ms) * g->o.rate_per_s;
		if (o->tokens_milli > cap)
			o->tokens_milli = cap;
	}
	o->last_ms = now > o->last_ms ? now : o->last_ms;
	if (o->tokens_milli < 1000u)
		return -EBUSY;
	o->tokens_milli -= 1000u;
	return 0;
}

static uint8_t hop_cap(const struct comm_gossip *g, const struct comm_env *e)
{
	return e->max_hops < g->o.max_hops ? e->max_hops : g->o.max_hops;
}

int comm_gossip_input(struct comm_gossip *g, const uint8_t *buf, size_t len, uint64_t now_ms,
		      struct comm_env *out)
{
	if (comm_env_parse(buf, len, out) != 0) {
		g->st.bad++;
		return -EBADMSG;
	}
	if (out->hops == 0 || out->hops > hop_cap(g, out)) {
		g->st.hop_limit++;
		return -ELOOP;
	}
	if (seen_has(g, out->id, now_ms)) {
		g->st.duplicate++;
		return -EALREADY;
	}
	if (out->ts_ms > now_ms + g->o.future_ms ||
	    out->ts_ms + (uint64_t)out->ttl_s * 1000u <= now_ms) {
		g->st.expired++;
		return -ETIME;
	}
	if (rate_take(g, out->origin, now_ms) != 0) {
		g->st.rate_limited++;
		return -EBUSY;
	}
	comm_gossip_note(g, out->id, now_ms);
	g->st.accepted++;
	return 0;
}

int comm_gossip_forward(struct comm_gossip *g, const uint8_t *buf, size_t len, uint8_t *out,
			size_t cap)
{
	struct comm_env e;

	/* The caller accepted buf; parse again only for its header (the
	 * signature check is the price of not trusting the caller). */
	if (comm_env_parse(buf, len, &e) != 0)
		return -EBADMSG;
	if (e.hops >= hop_cap(g, &e))
		return -ELOOP;
	if (cap < len)
		return -ENOSPC;
	memcpy(out, buf, len);
	out[OFF_HOPS] = (uint8_t)(e.hops + 1);
	g->st.forwarded++;
	return 0;
}

static size_t gcd(size_t a, size_t b)
{
	while (b) {
		size_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

size_t comm_gossip_pick(size_t n, size_t skip, size_t fanout, uint64_t rnd, size_t *idx)
{
	size_t avail, k = 0, start, stride;

	if (n == 0)
		return 0;
	avail = n - (skip < n ? 1 : 0);
	if (fanout > avail)
		fanout = avail;
	/* A random start and a stride coprime to n visit every index once:
	 * the first fanout of them that are not the sender. */
	start = (size_t)(rnd % n);
	stride = 1 + (size_t)((rnd >> 32) % n);
	while (gcd(n, stride) != 1)
		stride++;
	for (size_t i = 0; i < n && k < fanout; i++) {
		size_t c = (start + i * stride) % n;

		if (c != skip)
			idx[k++] = c;
	}
	return k;
}

void comm_gossip_stats(const struct comm_gossip *g, struct comm_gossip_stats *out)
{
	*out = g->st;
}
