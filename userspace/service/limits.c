// SPDX-License-Identifier: MIT
/*
 * Abuse-control building blocks: the bounded peer table (keyed SipHash
 * index, LRU order, eviction of idle peers only), sliding-window rate
 * counters and the decaying violation score.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "svc_int.h"

#define SVC_WINDOW_NS 60000000000ull /* one minute */
#define SVC_WINDOW_MS 60000ull

int svc_peers_init(struct svc_peers *p, uint32_t max, uint64_t seed)
{
	uint32_t nb = 16;

	memset(p, 0, sizeof(*p));
	if (!max || max > (1u << 28))
		return -EINVAL;
	while (nb < max)
		nb <<= 1;
	p->max = max;
	p->mask = nb - 1;
	/* Zeroed and left so: a bucket holds its first entry's index + 1 (0 =
	 * empty), so the table's pages stay unbacked until a peer hashes
	 * there (64 Ki buckets of two tables were 512 KiB of an idle weftd's
	 * RSS when filled with SVC_NIL). */
	p->heads = calloc(nb, sizeof(*p->heads));
	if (!p->heads)
		return -ENOMEM;
	p->lru_head = p->lru_tail = SVC_NIL;
	if (seed) {
		for (size_t i = 0; i < sizeof(p->key); i++)
			p->key[i] = (uint8_t)(seed >> (8 * (i % 8))) ^ (uint8_t)(0x5a + i);
	} else {
		randombytes_buf(p->key, sizeof(p->key));
	}
	return 0;
}

void svc_peers_fini(struct svc_peers *p)
{
	free(p->heads);
	free(p->ents);
	memset(p, 0, sizeof(*p));
}

static uint32_t peers_bucket(const struct svc_peers *p, const uint8_t *key)
{
	uint64_t h;

	crypto_shorthash((unsigned char *)&h, key, IDENTITY_PK_LEN, p->key);
	return (uint32_t)h & p->mask;
}

/* First entry of bucket b (SVC_NIL: none); heads[] hold index + 1. */
static uint32_t head_get(const struct svc_peers *p, uint32_t b)
{
	return p->heads[b] - 1; /* 0 - 1 wraps to SVC_NIL */
}

static void head_set(struct svc_peers *p, uint32_t b, uint32_t i)
{
	p->heads[b] = i + 1; /* SVC_NIL + 1 wraps to 0 */
}

uint32_t svc_peers_index(const struct svc_peers *p, const struct svc_peer_ent *e)
{
	return (uint32_t)(e - p->ents);
}

struct svc_peer_ent *svc_peers_find(struct svc_peers *p, const uint8_t key[IDENTITY_PK_LEN])
{
	for (uint32_t i = head_get(p, peers_bucket(p, key)); i != SVC_NIL; i = p->ents[i].hnext)
		if (memcmp(p->ents[i].key, key, IDENTITY_PK_LEN) == 0)
			return &p->ents[i];
	return NULL;
}

static void lru_unlink(struct svc_peers *p, uint32_t i)
{
	struct svc_peer_ent *e = &p->ents[i];

	if (e->lru_prev != SVC_NIL)
		p->ents[e->lru_prev].lru_next = e->lru_next;
	else
		p->lru_head = e->lru_next;
	if (e->lru_next != SVC_NIL)
		p->ents[e->lru_next].lru_prev = e->lru_prev;
	else
		p->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = SVC_NIL;
}

static void lru_front(struct svc_peers *p, uint32_t i)
{
	struct svc_peer_ent *e = &p->ents[i];

	e->lru_prev = SVC_NIL;
	e->lru_next = p->lru_head;
	if (p->lru_head != SVC_NIL)
		p->ents[p->lru_head].lru_prev = i;
	p->lru_head = i;
	if (p->lru_tail == SVC_NIL)
		p->lru_tail = i;
}

static void hash_unlink(struct svc_peers *p, uint32_t i)
{
	uint32_t b = peers_bucket(p, p->ents[i].key), cur = head_get(p, b);

	if (cur == i) {
		head_set(p, b, p->ents[i].hnext);
		return;
	}
	while (cur != SVC_NIL && p->ents[cur].hnext != i)
		cur = p->ents[cur].hnext;
	if (cur != SVC_NIL)
		p->ents[cur].hnext = p->ents[i].hnext;
}

/* A free slot: a never-used one, or the least recently used idle peer. */
static int peers_slot(struct svc_peers *p, uint32_t *out)
{
	if (p->n < p->max) {
		if (p->n == p->alloc) {
			uint32_t na = p->alloc ? p->alloc * 2 : 64;
			struct svc_peer_ent *ne;

			if (na > p->max)
				na = p->max;
			ne = realloc(p->ents, (size_t)na * sizeof(*ne));
			if (!ne)
				return -ENOMEM;
			p->ents = ne;
			p->alloc = na;
		}
		*out = p->n++;
		p->ents[*out].gen = 0;
		return 0;
	}
	for (uint32_t i = p->lru_tail; i != SVC_NIL; i = p->ents[i].lru_prev) {
		if (p->ents[i].inflight)
			continue;
		lru_unlink(p, i);
		hash_unlink(p, i);
		p->evicted++;
		*out = i;
		return 0;
	}
	return -EBUSY;
}

struct svc_peer_ent *svc_peers_get(struct svc_peers *p, const uint8_t key[IDENTITY_PK_LEN],
				   uint64_t now)
{
	struct svc_peer_ent *e = svc_peers_find(p, key);
	uint32_t i, gen, b;

	if (e) {
		i = svc_peers_index(p, e);
		lru_unlink(p, i);
		lru_front(p, i);
		return e;
	}
	if (peers_slot(p, &i))
		return NULL;
	e = &p->ents[i];
	gen = e->gen + 1;
	memset(e, 0, sizeof(*e));
	e->gen = gen;
	memcpy(e->key, key, IDENTITY_PK_LEN);
	e->score_ns = now;
	b = peers_bucket(p, key);
	e->hnext = head_get(p, b);
	head_set(p, b, i);
	lru_front(p, i);
	return e;
}

int svc_rate_take(struct svc_rate *w, uint32_t limit, uint64_t now)
{
	uint64_t el_ms, est;

	if (!w->start && !w->cur && !w->prev)
		w->start = now; /* first call: windows are phased on it */
	if (now >= w->start + SVC_WINDOW_NS) {
		uint64_t n = (now - w->start) / SVC_WINDOW_NS;

		w->prev = n == 1 ? w->cur : 0;
		w->cur = 0;
		w->start += n * SVC_WINDOW_NS;
	}
	el_ms = now > w->start ? (now - w->start) / 1000000 : 0;
	/* prev * remaining share of the window, rounded up: strict */
	est = ((uint64_t)w->prev * (SVC_WINDOW_MS - el_ms) + SVC_WINDOW_MS - 1) / SVC_WINDOW_MS;
	est += w->cur;
	if (est >= limit)
		return 0;
	w->cur++;
	return 1;
}

void svc_score_decay(struct svc_peer_ent *e, uint64_t decay_ns, uint64_t now)
{
	uint64_t el;

	if (now <= e->score_ns)
		return;
	el = now - e->score_ns;
	e->score_ns = now;
	if (!e->score_mp)
		return;
	if (el / decay_ns >= e->score_mp / 1000 + 1) {
		e->score_mp = 0;
		return;
	}
	/* el < (score + 1) * decay_ns here, so el * 1000 cannot overflow for
	 * any score reachable below the threshold cap. */
	{
		uint64_t dec = el / (decay_ns / 1000 ? decay_ns / 1000 : 1);

		e->score_mp = dec >= e->score_mp ? 0 : e->score_mp - dec;
	}
}

uint64_t svc_score_points(int err)
{
	switch (err) {
	case SVC_ERR_BAD_REQUEST:
		return 2000;
	case SVC_ERR_TOO_LARGE:
		return 5000;
	case SVC_ERR_NOT_FOUND:
	case SVC_ERR_RATE_LIMITED:
	case SVC_ERR_OVERLOADED:
		return 1000;
	default:
		return 0;
	}
}
