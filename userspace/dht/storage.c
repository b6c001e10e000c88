// SPDX-License-Identifier: MIT
/*
 * Bounded storage: peers per infohash (BEP 5, 30 min lifetime) and BEP 44
 * items (2 h lifetime unless re-put). Chained hash tables keyed by the first
 * bytes of the 160-bit key (ids are uniformly distributed). Caps come from
 * struct dht_limits; when a cap is hit the store is refused (-ENOSPC) except
 * for a full peer list, where the peer closest to expiry makes room.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht_int.h"

static unsigned int hkey(const uint8_t *id)
{
	return ((unsigned int)id[0] << 8 | id[1]) % DHT_STORE_HBUCKETS;
}

void dht_store_init(struct dht_store *s, const struct dht_limits *lim)
{
	memset(s, 0, sizeof(*s));
	s->lim = lim;
}

static void peers_free(struct dht_ih *e)
{
	for (uint32_t j = 0; j < e->npeers; j++)
		free(e->peers[j].wk);
	free(e->peers);
}

void dht_store_free(struct dht_store *s)
{
	for (unsigned int i = 0; i < DHT_STORE_HBUCKETS; i++) {
		while (s->ih[i]) {
			struct dht_ih *e = s->ih[i];

			s->ih[i] = e->next;
			peers_free(e);
			free(e);
		}
		while (s->it[i]) {
			struct dht_item *e = s->it[i];

			s->it[i] = e->next;
			free(e);
		}
	}
	s->nih = s->npeers = s->nitems = 0;
}

struct dht_ih *dht_store_find_ih(const struct dht_store *s, const uint8_t *ih)
{
	for (struct dht_ih *e = s->ih[hkey(ih)]; e; e = e->next)
		if (!memcmp(e->ih, ih, DHT_ID_LEN))
			return e;
	return NULL;
}

struct dht_item *dht_store_find_item(const struct dht_store *s, const uint8_t *target)
{
	for (struct dht_item *e = s->it[hkey(target)]; e; e = e->next)
		if (!memcmp(e->target, target, DHT_ID_LEN))
			return e;
	return NULL;
}

/* p's address, lifetime and claim (p->wk valid or NULL). Out of memory
 * for a claim: the peer is stored without it. */
static void peer_set(struct dht_peer *p, const struct sockaddr *sa, socklen_t salen,
		     const uint8_t *wk, uint64_t now)
{
	memset(&p->addr, 0, sizeof(p->addr));
	memcpy(&p->addr, sa, salen);
	p->expires = now + DHT_PEER_TTL_MS;
	if (!wk) {
		free(p->wk);
		p->wk = NULL;
		return;
	}
	if (!p->wk)
		p->wk = malloc(DHT_WK_LEN);
	if (p->wk)
		memcpy(p->wk, wk, DHT_WK_LEN);
}

int dht_store_add_peer(struct dht_store *s, const uint8_t *ih, const struct sockaddr *sa,
		       uint64_t now)
{
	return dht_store_add_peer_wk(s, ih, sa, NULL, now);
}

int dht_store_add_peer_wk(struct dht_store *s, const uint8_t *ih, const struct sockaddr *sa,
			  const uint8_t *wk, uint64_t now)
{
	struct dht_ih *e = dht_store_find_ih(s, ih);
	socklen_t salen =
	    sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return -EINVAL;
	if (!e) {
		if (s->nih >= s->lim->max_infohashes || s->npeers >= s->lim->max_peers)
			return -ENOSPC;
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		memcpy(e->ih, ih, DHT_ID_LEN);
		e->next = s->ih[hkey(ih)];
		s->ih[hkey(ih)] = e;
		s->nih++;
	}
	for (uint32_t i = 0; i < e->npeers; i++) {
		if (dht_addr_eq((struct sockaddr *)&e->peers[i].addr, sa)) {
			peer_set(&e->peers[i], sa, salen, wk, now);
			return 0;
		}
	}
	if (e->npeers >= s->lim->max_peers_per_hash) {
		uint32_t old = 0;

		for (uint32_t i = 1; i < e->npeers; i++)
			if (e->peers[i].expires < e->peers[old].expires)
				old = i;
		peer_set(&e->peers[old], sa, salen, wk, now);
		return 0;
	}
	if (s->npeers >= s->lim->max_peers)
		return -ENOSPC;
	if (e->npeers == e->cap) {
		uint32_t nc = e->cap ? e->cap * 2 : 8;
		struct dht_peer *np;

		if (nc > s->lim->max_peers_per_hash)
			nc = s->lim->max_peers_per_hash;
		np = realloc(e->peers, nc * sizeof(*np));
		if (!np)
			return -ENOMEM;
		e->peers = np;
		e->cap = nc;
	}
	e->peers[e->npeers].wk = NULL;
	peer_set(&e->peers[e->npeers], sa, salen, wk, now);
	e->npeers++;
	s->npeers++;
	return 0;
}

static unsigned int dht_store_items_from(const struct dht_store *s, const uint8_t *ip, size_t iplen)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < DHT_STORE_HBUCKETS; i++)
		for (struct dht_item *e = s->it[i]; e; e = e->next)
			if (e->srclen == iplen && !memcmp(e->src, ip, iplen))
				n++;
	return n;
}

int dht_store_put_item(struct dht_store *s, const struct dht_item *src, uint64_t now)
{
	struct dht_item *e = dht_store_find_item(s, src->target);

	if (src->vlen > DHT_MAX_VALUE || src->salt_len > DHT_MAX_SALT || src->srclen > 16)
		return -EINVAL;
	if (!e) {
		if (s->nitems >= s->lim->max_items)
			return -ENOSPC;
		if (src->srclen &&
		    dht_store_items_from(s, src->src, src->srclen) >= s->lim->max_items_per_src)
			return -ENOSPC;
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->next = s->it[hkey(src->target)];
		s->it[hkey(src->target)] = e;
		s->nitems++;
	}
	{
		struct dht_item *keep = e->next;

		*e = *src;
		e->next = keep;
	}
	e->expires = now + DHT_ITEM_TTL_MS;
	return 0;
}

void dht_store_expire(struct dht_store *s, uint64_t now)
{
	for (unsigned int i = 0; i < DHT_STORE_HBUCKETS; i++) {
		struct dht_ih **pe = &s->ih[i];

		while (*pe) {
			struct dht_ih *e = *pe;
			uint32_t k = 0;

			for (uint32_t j = 0; j < e->npeers; j++) {
				if (e->peers[j].expires > now)
					e->peers[k++] = e->peers[j];
				else
					free(e->peers[j].wk);
			}
			s->npeers -= e->npeers - k;
			e->npeers = k;
			if (!k) {
				*pe = e->next;
				free(e->peers); /* every claim freed above */
				free(e);
				s->nih--;
				continue;
			}
			pe = &e->next;
		}
		struct dht_item **pi = &s->it[i];

		while (*pi) {
			struct dht_item *e = *pi;

			if (e->expires <= now) {
				*pi = e->next;
				free(e);
				s->nitems--;
				continue;
			}
			pi = &e->next;
		}
	}
}

uint64_t dht_store_bytes(const struct dht_store *s)
{
	uint64_t n = (uint64_t)s->nitems * sizeof(struct dht_item);

	for (unsigned int i = 0; i < DHT_STORE_HBUCKETS; i++)
		for (const struct dht_ih *e = s->ih[i]; e; e = e->next) {
			n += sizeof(*e) + (uint64_t)e->cap * sizeof(*e->peers);
			for (uint32_t j = 0; j < e->npeers; j++)
				n += e->peers[j].wk ? DHT_WK_LEN : 0;
		}
	return n;
}

static uint64_t age_of(uint64_t expires, uint64_t ttl, uint64_t now)
{
	return expires > now + ttl ? 0 : now + ttl - expires;
}

unsigned int dht_store_list_int(const struct dht_store *s, uint64_t now, struct dht_stored *out,
				unsigned int max)
{
	unsigned int n = 0;

	for (int pass = 0; pass < 2; pass++)
		for (unsigned int i = 0; i < DHT_STORE_HBUCKETS; i++) {
			for (const struct dht_ih *e = pass ? NULL : s->ih[i]; e; e = e->next, n++) {
				uint64_t lo = UINT64_MAX, hi = 0;

				if (n >= max)
					continue;
				for (uint32_t j = 0; j < e->npeers; j++) {
					lo = e->peers[j].expires < lo ? e->peers[j].expires : lo;
					hi = e->peers[j].expires > hi ? e->peers[j].expires : hi;
				}
				memset(&out[n], 0, sizeof(out[n]));
				memcpy(out[n].key, e->ih, DHT_ID_LEN);
				out[n].peers = e->npeers;
				out[n].age_ms = e->npeers ? age_of(lo, DHT_PEER_TTL_MS, now) : 0;
				out[n].left_ms = hi > now ? hi - now : 0;
			}
			for (const struct dht_item *e = pass ? s->it[i] : NULL; e; e = e->next, n++) {
				if (n >= max)
					continue;
				memset(&out[n], 0, sizeof(out[n]));
				memcpy(out[n].key, e->target, DHT_ID_LEN);
				out[n].item = 1;
				out[n].mut = e->mut;
				memcpy(out[n].k, e->k, DHT_PK_LEN);
				out[n].seq = e->seq;
				memcpy(out[n].salt, e->salt, e->salt_len);
				out[n].salt_len = e->salt_len;
				out[n].vlen = e->vlen;
				out[n].age_ms = age_of(e->expires, DHT_ITEM_TTL_MS, now);
				out[n].left_ms = e->expires > now ? e->expires - now : 0;
			}
		}
	return n;
}
