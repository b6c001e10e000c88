// SPDX-License-Identifier: MIT
/* Service router: registry, admission (limits, bans), dispatch, counters. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sodium.h>

#include "svc_int.h"
#include "weft/util.h"

struct svc_ent {
	char name[SVC_NAME_MAX + 1];
	size_t len;
	uint8_t used;
	uint8_t kind;
	uint32_t gen;
	svc_handler_fn fn;
	void *ctx;
	char backend[SVC_BACKEND_ADDR_MAX];
	struct svc_limits lim;
	struct svc_rate rate;
	uint32_t inflight;
	uint32_t hnext; /* name index chain: slot + 1, 0 = end */
};

struct svc_router {
	struct svc_limits peer_lim;
	struct svc_limits svc_lim; /* defaults for services registered without limits */
	uint32_t global_concurrent;
	uint32_t ban_threshold;
	uint64_t decay_ns, ban_ns;
	svc_ban_fn ban;
	void *ban_ctx;
	struct svc_peers peers;
	struct svc_peers addrs; /* keyed by svc_addr_key() */
	uint32_t addr_calls_per_min, addr_concurrent, addr_v6_prefix, addr_ban_threshold;
	uint32_t max_services, n_services;
	struct svc_ent *svcs;
	/* Name index: buckets (a power of two >= max_services) of slot + 1
	 * chains, hashed with a random SipHash key: a name a peer sends is
	 * found in O(1) whatever the peer picks. */
	uint32_t *svc_heads, svc_mask;
	uint8_t svc_key[crypto_shorthash_KEYBYTES];
	uint32_t inflight;
	uint64_t admitted;
	uint64_t served_lat[SVC_ROUTER_LAT_BUCKETS + 1]; /* svc_router_stats */
	uint64_t served_lat_sum_us;
	uint64_t results[SVC_ERR__COUNT];
	uint64_t bans, addr_bans;
};

static uint32_t or_default(uint32_t v, uint32_t def)
{
	return v ? v : def;
}

int svc_router_new(struct svc_router **out, const struct svc_router_opts *opts)
{
	struct svc_router_opts o = {0};
	struct svc_router *r;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (opts)
		o = *opts;
	o.peer.calls_per_min = or_default(o.peer.calls_per_min, SVC_DEFAULT_PEER_CALLS_PER_MIN);
	o.peer.max_payload = or_default(o.peer.max_payload, SVC_DEFAULT_MAX_PAYLOAD);
	o.peer.max_concurrent = or_default(o.peer.max_concurrent, SVC_DEFAULT_PEER_CONCURRENT);
	o.svc.calls_per_min = or_default(o.svc.calls_per_min, SVC_DEFAULT_SVC_CALLS_PER_MIN);
	o.svc.max_payload = or_default(o.svc.max_payload, SVC_DEFAULT_MAX_PAYLOAD);
	o.svc.max_concurrent = or_default(o.svc.max_concurrent, SVC_DEFAULT_SVC_CONCURRENT);
	o.global_concurrent = or_default(o.global_concurrent, SVC_DEFAULT_GLOBAL_CONCURRENT);
	o.max_peers = or_default(o.max_peers, SVC_DEFAULT_MAX_PEERS);
	o.max_services = or_default(o.max_services, SVC_DEFAULT_MAX_SERVICES);
	o.ban_threshold = or_default(o.ban_threshold, SVC_DEFAULT_BAN_THRESHOLD);
	o.addr_calls_per_min = or_default(o.addr_calls_per_min, SVC_DEFAULT_ADDR_CALLS_PER_MIN);
	o.addr_concurrent = or_default(o.addr_concurrent, SVC_DEFAULT_ADDR_CONCURRENT);
	o.addr_v6_prefix = or_default(o.addr_v6_prefix, SVC_DEFAULT_ADDR_V6_PREFIX);
	o.max_addrs = or_default(o.max_addrs, SVC_DEFAULT_MAX_ADDRS);
	o.addr_ban_threshold = or_default(o.addr_ban_threshold, SVC_DEFAULT_ADDR_BAN_THRESHOLD);
	if (!o.decay_ns)
		o.decay_ns = SVC_DEFAULT_DECAY_NS;
	if (!o.ban_ns)
		o.ban_ns = SVC_DEFAULT_BAN_NS;
	if (o.max_peers <= o.global_concurrent || o.decay_ns < 1000 ||
	    o.peer.max_payload > SVC_MSG_MAX_PAYLOAD_CEIL ||
	    o.svc.max_payload > SVC_MSG_MAX_PAYLOAD_CEIL || o.max_services > 65536 ||
	    o.ban_threshold > 1000000 || o.addr_ban_threshold > 1000000 || o.addr_v6_prefix > 128)
		return -EINVAL;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->peer_lim = o.peer;
	r->svc_lim = o.svc;
	r->global_concurrent = o.global_concurrent;
	r->ban_threshold = o.ban_threshold;
	r->decay_ns = o.decay_ns;
	r->ban_ns = o.ban_ns;
	r->ban = o.ban;
	r->ban_ctx = o.ban_ctx;
	r->max_services = o.max_services;
	r->addr_calls_per_min = o.addr_calls_per_min;
	r->addr_concurrent = o.addr_concurrent;
	r->addr_v6_prefix = o.addr_v6_prefix;
	r->addr_ban_threshold = o.addr_ban_threshold;
	r->svcs = calloc(o.max_services, sizeof(*r->svcs));
	for (r->svc_mask = 16; r->svc_mask < o.max_services; r->svc_mask <<= 1)
		;
	r->svc_heads = calloc(r->svc_mask, sizeof(*r->svc_heads));
	r->svc_mask--;
	if (!r->svcs || !r->svc_heads) {
		free(r->svcs);
		free(r->svc_heads);
		free(r);
		return -ENOMEM;
	}
	randombytes_buf(r->svc_key, sizeof(r->svc_key));
	err = svc_peers_init(&r->peers, o.max_peers, o.seed);
	if (!err)
		err = svc_peers_init(&r->addrs, o.max_addrs, o.seed ? o.seed + 1 : 0);
	if (err) {
		svc_peers_fini(&r->peers);
		free(r->svcs);
		free(r->svc_heads);
		free(r);
		return err;
	}
	*out = r;
	return 0;
}

void svc_router_free(struct svc_router *r)
{
	if (!r)
		return;
	svc_peers_fini(&r->peers);
	svc_peers_fini(&r->addrs);
	free(r->svcs);
	free(r->svc_heads);
	free(r);
}

/* Table key of a source address (util_addr_key at the configured IPv6
 * prefix, in a key buffer of the table's width): the prefix length, or 0
 * when the address is not IPv4/IPv6 (then it is not tracked). */
static unsigned int svc_addr_key(const struct svc_router *r, const struct sockaddr_storage *ss,
				 uint8_t key[IDENTITY_PK_LEN])
{
	_Static_assert(UTIL_ADDR_KEY_LEN <= IDENTITY_PK_LEN, "address key fits a peer key");
	memset(key, 0, IDENTITY_PK_LEN);
	return util_addr_key(ss, r->addr_v6_prefix, key);
}

static uint32_t *svc_bucket(struct svc_router *r, const char *name, size_t len)
{
	uint64_t h;

	crypto_shorthash((unsigned char *)&h, (const unsigned char *)name, len, r->svc_key);
	return &r->svc_heads[(uint32_t)h & r->svc_mask];
}

/* The service called name: one hash and its chain (per call). */
static struct svc_ent *svc_find(struct svc_router *r, const char *name, size_t len)
{
	for (uint32_t i = *svc_bucket(r, name, len); i; i = r->svcs[i - 1].hnext) {
		struct svc_ent *s = &r->svcs[i - 1];

		if (s->len == len && memcmp(s->name, name, len) == 0)
			return s;
	}
	return NULL;
}

int svc_router_register(struct svc_router *r, const struct svc_service_opts *o)
{
	struct svc_ent *s = NULL;
	size_t len;

	if (!r || !o || !o->name)
		return -EINVAL;
	len = strnlen(o->name, SVC_NAME_MAX + 1);
	if (!svc_name_valid((const uint8_t *)o->name, len))
		return -EINVAL;
	if (o->kind == SVC_KIND_INPROC) {
		if (!o->fn)
			return -EINVAL;
	} else if (o->kind == SVC_KIND_BACKEND) {
		if (!o->backend ||
		    strnlen(o->backend, SVC_BACKEND_ADDR_MAX) >= SVC_BACKEND_ADDR_MAX ||
		    (strncmp(o->backend, "tcp:", 4) != 0 && strncmp(o->backend, "unix:", 5) != 0))
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (o->limits.max_payload > SVC_MSG_MAX_PAYLOAD_CEIL)
		return -EINVAL;
	if (svc_find(r, o->name, len))
		return -EEXIST;
	for (uint32_t i = 0; i < r->max_services && !s; i++)
		if (!r->svcs[i].used)
			s = &r->svcs[i];
	if (!s)
		return -ENOSPC;
	{
		uint32_t gen = s->gen + 1;

		memset(s, 0, sizeof(*s));
		s->gen = gen;
	}
	memcpy(s->name, o->name, len);
	s->len = len;
	{
		uint32_t *head = svc_bucket(r, s->name, len);

		s->hnext = *head;
		*head = (uint32_t)(s - r->svcs) + 1;
	}
	s->kind = (uint8_t)o->kind;
	s->fn = o->fn;
	s->ctx = o->ctx;
	if (o->kind == SVC_KIND_BACKEND)
		snprintf(s->backend, sizeof(s->backend), "%s", o->backend);
	s->lim.calls_per_min = or_default(o->limits.calls_per_min, r->svc_lim.calls_per_min);
	s->lim.max_payload = or_default(o->limits.max_payload, r->svc_lim.max_payload);
	s->lim.max_concurrent = or_default(o->limits.max_concurrent, r->svc_lim.max_concurrent);
	s->used = 1;
	r->n_services++;
	return 0;
}

int svc_router_unregister(struct svc_router *r, const char *name)
{
	struct svc_ent *s;

	if (!r || !name)
		return -EINVAL;
	s = svc_find(r, name, strnlen(name, SVC_NAME_MAX + 1));
	if (!s)
		return -ENOENT;
	for (uint32_t *link = svc_bucket(r, s->name, s->len); *link;
	     link = &r->svcs[*link - 1].hnext)
		if (*link == (uint32_t)(s - r->svcs) + 1) {
			*link = s->hnext;
			break;
		}
	s->hnext = 0;
	s->used = 0;
	s->gen++;
	r->n_services--;
	return 0;
}

/*
 * Add the points for err to the peer's score and its address's (a may be
 * NULL); ban whichever crosses its threshold, the key first. One violation
 * fires at most one ban. Returns 1 if this violation banned something.
 */
static int router_score(struct svc_router *r, struct svc_peer_ent *e, struct svc_peer_ent *a,
			unsigned int aprefix, int err, uint64_t now)
{
	uint64_t pts = svc_score_points(err);
	unsigned int host = e->addr.ss_family == AF_INET6 ? 128 : 32;

	if (!pts || e->banned_until > now || (a && a->banned_until > now))
		return 0;
	svc_score_decay(e, r->decay_ns, now);
	e->score_mp += pts;
	if (a) {
		svc_score_decay(a, r->decay_ns, now);
		a->score_mp += pts;
	}
	if (e->score_mp >= (uint64_t)r->ban_threshold * 1000) {
		e->score_mp = 0;
		e->banned_until = now + r->ban_ns;
		r->bans++;
		if (r->ban)
			r->ban(r->ban_ctx, e->key, &e->addr, host, e->banned_until);
		return 1;
	}
	if (a && a->score_mp >= (uint64_t)r->addr_ban_threshold * 1000) {
		a->score_mp = 0;
		a->banned_until = now + r->ban_ns;
		r->bans++;
		r->addr_bans++;
		if (r->ban)
			r->ban(r->ban_ctx, e->key, &e->addr, aprefix, a->banned_until);
		return 1;
	}
	return 0;
}

/* The source-address entry of a peer (NULL when not IPv4/IPv6). */
static struct svc_peer_ent *router_addr(struct svc_router *r, const struct svc_peer *peer,
					uint64_t now, unsigned int *prefix)
{
	uint8_t key[IDENTITY_PK_LEN];
	struct svc_peer_ent *a;

	*prefix = svc_addr_key(r, &peer->addr, key);
	if (!*prefix)
		return NULL;
	/* an address with calls in flight is not evicted (as for keys) */
	a = svc_peers_get(&r->addrs, key, now);
	if (a)
		a->addr = peer->addr;
	return a;
}

struct svc_admit {
	struct svc_peer_ent *e, *a;
	unsigned int aprefix;
};

static int router_reject(struct svc_router *r, const struct svc_admit *ad, int err, int scored,
			 uint64_t now)
{
	r->results[err]++;
	if (scored && ad && ad->e)
		router_score(r, ad->e, ad->a, ad->aprefix, err, now);
	return err;
}

int svc_router_admit(struct svc_router *r, const struct svc_peer *peer, const char *service,
		     size_t service_len, size_t payload_len, int stream, uint64_t now,
		     struct svc_ticket *t)
{
	struct svc_admit ad = {0};
	struct svc_peer_ent *e;
	struct svc_ent *s;
	uint32_t cap;

	if (!r || !peer || !t)
		return SVC_ERR_BAD_REQUEST;
	memset(t, 0, sizeof(*t));
	t->addr_slot = UINT32_MAX;
	t->t0 = now;
	e = svc_peers_get(&r->peers, peer->key, now);
	if (!e)
		return router_reject(r, NULL, SVC_ERR_OVERLOADED, 0, now);
	e->addr = peer->addr;
	ad.e = e;
	ad.a = router_addr(r, peer, now, &ad.aprefix);
	if (e->banned_until > now || (ad.a && ad.a->banned_until > now))
		return router_reject(r, &ad, SVC_ERR_BANNED, 0, now);
	if (!service || !svc_name_valid((const uint8_t *)service, service_len))
		return router_reject(r, &ad, SVC_ERR_BAD_REQUEST, 1, now);
	s = svc_find(r, service, service_len);
	if (!s)
		return router_reject(r, &ad, SVC_ERR_NOT_FOUND, 1, now);
	cap = r->peer_lim.max_payload < s->lim.max_payload ? r->peer_lim.max_payload
							   : s->lim.max_payload;
	if (payload_len > cap)
		return router_reject(r, &ad, SVC_ERR_TOO_LARGE, 1, now);
	if (e->inflight >= r->peer_lim.max_concurrent)
		return router_reject(r, &ad, SVC_ERR_OVERLOADED, 1, now);
	if (ad.a && ad.a->inflight >= r->addr_concurrent)
		return router_reject(r, &ad, SVC_ERR_OVERLOADED, 1, now);
	if (s->inflight >= s->lim.max_concurrent || r->inflight >= r->global_concurrent)
		return router_reject(r, &ad, SVC_ERR_OVERLOADED, 0, now);
	if (!svc_rate_take(&e->rate, r->peer_lim.calls_per_min, now))
		return router_reject(r, &ad, SVC_ERR_RATE_LIMITED, 1, now);
	if (ad.a && !svc_rate_take(&ad.a->rate, r->addr_calls_per_min, now)) {
		e->rate.cur--; /* refused: not counted against the key either */
		return router_reject(r, &ad, SVC_ERR_RATE_LIMITED, 1, now);
	}
	if (!svc_rate_take(&s->rate, s->lim.calls_per_min, now)) {
		e->rate.cur--; /* not the peer's fault: uncount it */
		if (ad.a)
			ad.a->rate.cur--;
		return router_reject(r, &ad, SVC_ERR_RATE_LIMITED, 0, now);
	}

	e->inflight++;
	s->inflight++;
	r->inflight++;
	r->admitted++;
	t->peer_slot = svc_peers_index(&r->peers, e);
	t->peer_gen = e->gen;
	t->addr_slot = UINT32_MAX;
	if (ad.a) {
		ad.a->inflight++;
		t->addr_slot = svc_peers_index(&r->addrs, ad.a);
		t->addr_gen = ad.a->gen;
	}
	t->svc_slot = (uint32_t)(s - r->svcs);
	t->svc_gen = s->gen;
	t->kind = s->kind;
	t->stream = stream ? 1 : 0;
	t->max_payload = cap;
	if (s->kind == SVC_KIND_BACKEND)
		memcpy(t->backend, s->backend, sizeof(t->backend));
	return SVC_OK;
}

int svc_router_stream_data(struct svc_router *r, const struct svc_ticket *t, size_t len,
			   uint64_t now)
{
	if (!r || !t || !t->stream)
		return SVC_ERR_BAD_REQUEST;
	if (len <= t->max_payload)
		return SVC_OK;
	if (t->peer_slot < r->peers.n && r->peers.ents[t->peer_slot].gen == t->peer_gen) {
		struct svc_peer_ent *e = &r->peers.ents[t->peer_slot];
		struct svc_peer p = {.addr = e->addr};
		unsigned int prefix;
		struct svc_peer_ent *a = router_addr(r, &p, now, &prefix);

		router_score(r, e, a, prefix, SVC_ERR_TOO_LARGE, now);
	}
	return SVC_ERR_TOO_LARGE;
}

void svc_router_done(struct svc_router *r, const struct svc_ticket *t, int result, uint64_t now)
{
	if (!r || !t)
		return;
	if (t->peer_slot < r->peers.n && r->peers.ents[t->peer_slot].gen == t->peer_gen &&
	    r->peers.ents[t->peer_slot].inflight)
		r->peers.ents[t->peer_slot].inflight--;
	if (t->addr_slot < r->addrs.n && r->addrs.ents[t->addr_slot].gen == t->addr_gen &&
	    r->addrs.ents[t->addr_slot].inflight)
		r->addrs.ents[t->addr_slot].inflight--;
	if (t->svc_slot < r->max_services && r->svcs[t->svc_slot].gen == t->svc_gen &&
	    r->svcs[t->svc_slot].inflight)
		r->svcs[t->svc_slot].inflight--;
	if (r->inflight)
		r->inflight--;
	if (result < 0 || result >= SVC_ERR__COUNT)
		result = SVC_ERR_BACKEND_ERROR;
	r->results[result]++;
	if (t->t0 && now >= t->t0) {
		static const uint64_t le[SVC_ROUTER_LAT_BUCKETS] = SVC_ROUTER_LAT_BOUNDS_US;
		uint64_t us = (now - t->t0) / 1000;
		unsigned int b = 0;

		while (b < SVC_ROUTER_LAT_BUCKETS && us > le[b])
			b++;
		r->served_lat[b]++;
		r->served_lat_sum_us += us;
	}
}

int svc_router_call(struct svc_router *r, const struct svc_peer *peer, const struct svc_msg *req,
		    uint64_t now, struct svc_reply *reply, struct svc_ticket *t)
{
	struct svc_call_info ci;
	struct svc_ent *s;
	int res;

	if (!r || !peer || !req || !reply || !t || req->type != SVC_MSG_REQUEST)
		return -EINVAL;
	memset(reply, 0, sizeof(*reply));
	res =
	    svc_router_admit(r, peer, req->service, req->service_len, req->payload_len, 0, now, t);
	if (res != SVC_OK) {
		reply->err = (uint8_t)res;
		return 0;
	}
	if (t->kind == SVC_KIND_BACKEND)
		return 1;
	s = &r->svcs[t->svc_slot];
	reply->cap = t->max_payload;
	ci = (struct svc_call_info){
	    .service = req->service,
	    .service_len = req->service_len,
	    .method = req->method,
	    .method_len = req->method_len,
	    .payload = req->payload,
	    .payload_len = req->payload_len,
	    .peer_key = peer->key,
	};
	res = s->fn(s->ctx, &ci, reply);
	if (res < 0 || res >= SVC_ERR__COUNT)
		res = SVC_ERR_BACKEND_ERROR;
	reply->err = (uint8_t)res;
	svc_router_done(r, t, res, now);
	return 0;
}

int svc_router_violation(struct svc_router *r, const struct svc_peer *peer, int err, uint64_t now)
{
	struct svc_peer_ent *e, *a;
	unsigned int prefix;

	if (!r || !peer)
		return 0;
	e = svc_peers_get(&r->peers, peer->key, now);
	if (!e)
		return 0;
	e->addr = peer->addr;
	a = router_addr(r, peer, now, &prefix);
	return router_score(r, e, a, prefix, err, now);
}

int svc_router_peer_banned(struct svc_router *r, const uint8_t key[IDENTITY_PK_LEN],
			   const struct sockaddr_storage *addr, uint64_t now)
{
	uint8_t akey[IDENTITY_PK_LEN];
	struct svc_peer_ent *e;

	if (!r)
		return 0;
	if (key) {
		e = svc_peers_find(&r->peers, key);
		if (e && e->banned_until > now)
			return 1;
	}
	if (addr && svc_addr_key(r, addr, akey)) {
		e = svc_peers_find(&r->addrs, akey);
		if (e && e->banned_until > now)
			return 1;
	}
	return 0;
}

void svc_router_get_stats(const struct svc_router *r, struct svc_router_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!r)
		return;
	st->admitted = r->admitted;
	memcpy(st->results, r->results, sizeof(st->results));
	st->bans = r->bans;
	st->addr_bans = r->addr_bans;
	st->addrs = r->addrs.n;
	st->peers_evicted = r->peers.evicted;
	st->peers = r->peers.n;
	st->inflight = r->inflight;
	st->services = r->n_services;
	memcpy(st->served_lat, r->served_lat, sizeof(st->served_lat));
	st->served_lat_sum_us = r->served_lat_sum_us;
}

int svc_router_stats_json(const struct svc_router *r, char *out, size_t cap)
{
	struct svc_router_stats st;
	size_t off = 0;
	int n;

	if (!r || !out)
		return -EINVAL;
	svc_router_get_stats(r, &st);
	n = snprintf(out, cap,
		     "{\"admitted\":%" PRIu64 ",\"inflight\":%u,\"services\":%u,"
		     "\"peers_tracked\":%u,\"addrs_tracked\":%u,\"peers_evicted\":%" PRIu64
		     ",\"bans\":%" PRIu64 ",\"addr_bans\":%" PRIu64 ",\"results\":{",
		     st.admitted, st.inflight, st.services, st.peers, st.addrs, st.peers_evicted,
		     st.bans, st.addr_bans);
	if (n < 0 || (size_t)n >= cap)
		return -ENOBUFS;
	off = (size_t)n;
	for (unsigned int i = 0; i < SVC_ERR__COUNT; i++) {
		n = snprintf(out + off, cap - off, "%s\"%s\":%" PRIu64, i ? "," : "",
			     svc_err_name(i), st.results[i]);
		if (n < 0 || (size_t)n >= cap - off)
			return -ENOBUFS;
		off += (size_t)n;
	}
	n = snprintf(out + off, cap - off, "}}");
	if (n < 0 || (size_t)n >= cap - off)
		return -ENOBUFS;
	return (int)(off + (size_t)n);
}
