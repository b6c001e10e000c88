// SPDX-License-Identifier: MIT
/*
 * The announce schedule: ids sorted by DHT key, neighbourhoods of nodes
 * with their tokens, a token bucket per remote node. See annsched.h for
 * the design; pure (no I/O, no lock, no clock).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "content/annsched.h"

#define K DHT_ID_LEN

enum { E_IDLE = 0, E_LOOKUP, E_SEND, E_GONE };

struct anq_ent {
	uint8_t key[K];
	uint8_t state;
	uint8_t again; /* queued again while in flight: due at once when it ends */
	uint64_t due;
};

struct anq_hood {
	uint8_t lo[K], hi[K]; /* the keys it serves */
	struct dht_node_info nodes[DHT_K];
	size_t n;
	uint64_t expires, next_ms;
};

struct anq_node {
	struct sockaddr_storage addr;
	socklen_t len;
	int64_t tok; /* milli-queries */
	uint64_t last;
};

struct cn_anq {
	struct anq_ent *e;
	size_t n, sorted, cap; /* e[0..sorted) sorted by key, then appended */
	struct anq_hood *h;    /* sorted by lo, ranges disjoint */
	size_t nh, hrot;
	struct anq_node *nodes; /* CN_ANQ_NODES slots, len 0 = free */
	uint8_t lk[CN_ANQ_MAX_LOOKUPS][K];
	size_t nlk;
	unsigned int nsend;
	unsigned int est_bits; /* prefix a lookup's hood is expected to cover */
	size_t cursor;
	/* try_lookup's last scan found nothing to look up before lk_wake,
	 * and nothing changed since (lk_dirty 0): no scan until then */
	int lk_dirty;
	uint64_t lk_wake;
	int64_t lk_tok; /* lookups' token bucket (milli), CN_ANQ_LOOKUP_RATE */
	uint64_t lk_last;
	uint64_t reann;
	uint64_t lookups, sends, announced, failed;
};

int cn_anq_new(struct cn_anq **out, uint64_t reannounce_ms)
{
	struct cn_anq *q = calloc(1, sizeof(*q));

	*out = NULL;
	if (!q)
		return -ENOMEM;
	q->h = calloc(CN_ANQ_HOODS, sizeof(*q->h));
	q->nodes = calloc(CN_ANQ_NODES, sizeof(*q->nodes));
	if (!q->h || !q->nodes) {
		cn_anq_free(q);
		return -ENOMEM;
	}
	q->reann = reannounce_ms;
	*out = q;
	return 0;
}

void cn_anq_free(struct cn_anq *q)
{
	if (!q)
		return;
	free(q->e);
	free(q->h);
	free(q->nodes);
	free(q);
}

static struct anq_hood *hood_for(struct cn_anq *q, const uint8_t *key);

/* ------------------------------------------------------------ ids */

static int ent_cmp(const void *a, const void *b)
{
	return memcmp(((const struct anq_ent *)a)->key, ((const struct anq_ent *)b)->key, K);
}

/* First sorted index whose key is >= key. */
static size_t lower(const struct cn_anq *q, const uint8_t *key)
{
	size_t lo = 0, hi = q->sorted;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (memcmp(q->e[mid].key, key, K) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct anq_ent *find(struct cn_anq *q, const uint8_t *key)
{
	size_t i = lower(q, key);

	if (i < q->sorted && !memcmp(q->e[i].key, key, K))
		return &q->e[i];
	for (i = q->sorted; i < q->n; i++)
		if (!memcmp(q->e[i].key, key, K))
			return &q->e[i];
	return NULL;
}

/* Sort the appended tail and merge it in; drop ids removed and not in
 * flight. O(n) plus the tail's sort. */
static int merge(struct cn_anq *q)
{
	size_t a = 0, b = q->sorted, o = 0;
	struct anq_ent *m;

	if (q->sorted == q->n)
		return 0;
	qsort(q->e + q->sorted, q->n - q->sorted, sizeof(*q->e), ent_cmp);
	m = malloc(q->cap * sizeof(*m));
	if (!m)
		return -ENOMEM;
	while (a < q->sorted || b < q->n) {
		struct anq_ent x;
		int c = a == q->sorted ? 1 : b == q->n ? -1 : memcmp(q->e[a].key, q->e[b].key, K);

		if (c <= 0) {
			x = q->e[a++];
			if (c == 0) { /* queued again: due now */
				if (x.state == E_GONE)
					x.state = E_IDLE;
				if (x.state == E_IDLE)
					x.due = q->e[b].due < x.due ? q->e[b].due : x.due;
				else
					x.again = 1;
				b++;
			}
		} else {
			x = q->e[b++];
		}
		if (o && !memcmp(m[o - 1].key, x.key, K))
			continue; /* the same id twice in the tail */
		if (x.state == E_GONE)
			continue;
		m[o++] = x;
	}
	free(q->e);
	q->e = m;
	q->n = q->sorted = o;
	q->cursor = 0;
	q->lk_dirty = 1;
	return 0;
}

int cn_anq_add(struct cn_anq *q, const uint8_t *id, size_t len, uint64_t now)
{
	struct anq_ent *x;
	struct anq_hood *h;

	if (len < K)
		return -EINVAL;
	h = hood_for(q, id);
	if (h)
		h->next_ms = now; /* its hood looks at its range again */
	q->lk_dirty = 1;
	x = find(q, id);
	if (x) {
		if (x->state == E_IDLE || x->state == E_GONE) {
			x->state = E_IDLE;
			x->due = now;
		} else {
			x->again = 1;
		}
		return 0;
	}
	if (q->n >= CN_ANQ_MAX)
		merge(q); /* drops ids removed */
	if (q->n >= CN_ANQ_MAX)
		return -ENOSPC;
	if (q->n == q->cap) {
		size_t nc = q->cap ? q->cap * 2 : 256;
		void *p;

		if (nc > CN_ANQ_MAX)
			nc = CN_ANQ_MAX;
		p = realloc(q->e, nc * sizeof(*q->e));
		if (!p)
			return -ENOMEM;
		q->e = p;
		q->cap = nc;
	}
	x = &q->e[q->n++];
	memset(x, 0, sizeof(*x));
	memcpy(x->key, id, K);
	x->due = now;
	/* Many adds at once (a store opened, a folder added) merge once, at
	 * the next cn_anq_next; a tail past 1024 is merged now so that find
	 * stays cheap. */
	if (q->n - q->sorted > 1024)
		merge(q);
	return 0;
}

void cn_anq_remove(struct cn_anq *q, const uint8_t *id, size_t len)
{
	struct anq_ent *x;

	if (len < K)
		return;
	x = find(q, id);
	if (x && x->state == E_IDLE)
		x->state = E_GONE;
	else if (x) /* in flight: gone when it ends */
		x->again = 2;
}

/* ----------------------------------------------------------- pacer */

static uint32_t addr_hash(const struct sockaddr_storage *ss, socklen_t len)
{
	const uint8_t *p = (const uint8_t *)ss;
	uint32_t h = 2166136261u;

	for (socklen_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void refill(struct anq_node *nd, uint64_t now)
{
	const int64_t cap = (int64_t)CN_ANQ_NODE_BURST * 1000;

	if (now > nd->last) {
		int64_t add = (int64_t)(now - nd->last) * CN_ANQ_NODE_RATE;

		nd->tok = nd->tok + add > cap ? cap : nd->tok + add;
	}
	nd->last = now;
}

/* The pacer's slot of a node, created with a full bucket; 8 slots probed,
 * a full one taken over from the node seen longest ago. */
static struct anq_node *node_of(struct cn_anq *q, const struct dht_node_info *ni, uint64_t now)
{
	uint32_t h = addr_hash(&ni->addr, ni->addrlen);
	struct anq_node *old = NULL;

	for (unsigned int i = 0; i < 8; i++) {
		struct anq_node *nd = &q->nodes[(h + i) & (CN_ANQ_NODES - 1)];

		if (nd->len == ni->addrlen && !memcmp(&nd->addr, &ni->addr, ni->addrlen)) {
			refill(nd, now);
			return nd;
		}
		if (!nd->len) {
			old = nd;
			break;
		}
		if (!old || nd->last < old->last)
			old = nd;
	}
	memset(old, 0, sizeof(*old));
	memcpy(&old->addr, &ni->addr, ni->addrlen);
	old->len = ni->addrlen;
	old->tok = (int64_t)CN_ANQ_NODE_BURST * 1000;
	old->last = now;
	return old;
}

static void charge(struct cn_anq *q, const struct dht_node_info *ni, size_t n, unsigned int cnt,
		   uint64_t now)
{
	for (size_t i = 0; i < n; i++) {
		struct anq_node *nd = node_of(q, &ni[i], now);

		nd->tok -= (int64_t)cnt * 1000;
		/* debt is bounded: a minute's worth */
		if (nd->tok < -(int64_t)60 * CN_ANQ_NODE_RATE * 1000)
			nd->tok = -(int64_t)60 * CN_ANQ_NODE_RATE * 1000;
	}
}

/* How many ids a batch to the hood may carry now: what the
 * CN_ANQ_MIN_NODES-th fullest bucket of its nodes allows (all of them when
 * it has fewer), so that one node in several hoods slows none of them
 * down; *wait_ms: when one more would fit, if none does. */
static unsigned int hood_room(struct cn_anq *q, struct anq_hood *h, uint64_t now, uint64_t *wait_ms)
{
	int64_t tok[DHT_K];
	size_t want = h->n < CN_ANQ_MIN_NODES ? h->n : CN_ANQ_MIN_NODES;

	if (!want)
		return 0;
	for (size_t i = 0; i < h->n; i++) {
		int64_t t = node_of(q, &h->nodes[i], now)->tok;
		size_t k = i;

		while (k > 0 && tok[k - 1] < t) { /* descending */
			tok[k] = tok[k - 1];
			k--;
		}
		tok[k] = t;
	}
	if (tok[want - 1] < 1000) {
		*wait_ms =
		    (uint64_t)((1000 - tok[want - 1] + CN_ANQ_NODE_RATE - 1) / CN_ANQ_NODE_RATE);
		return 0;
	}
	return (unsigned int)(tok[want - 1] / 1000);
}

/* ---------------------------------------------------- neighbourhoods */

static unsigned int prefix_bits(const uint8_t *a, const uint8_t *b)
{
	for (unsigned int i = 0; i < K; i++) {
		uint8_t x = a[i] ^ b[i];

		if (x)
			return i * 8 + (unsigned int)__builtin_clz(x) - 24;
	}
	return K * 8;
}

/* The hood whose range holds key, or NULL. */
static struct anq_hood *hood_for(struct cn_anq *q, const uint8_t *key)
{
	size_t lo = 0, hi = q->nh;

	while (lo < hi) { /* last hood with lo <= key */
		size_t mid = (lo + hi) / 2;

		if (memcmp(q->h[mid].lo, key, K) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || memcmp(key, q->h[lo - 1].hi, K) > 0)
		return NULL;
	return &q->h[lo - 1];
}

static void hood_del(struct cn_anq *q, size_t i)
{
	q->lk_dirty = 1; /* its keys may need a lookup now */
	memmove(&q->h[i], &q->h[i + 1], (q->nh - i - 1) * sizeof(*q->h));
	q->nh--;
}

static void hood_add(struct cn_anq *q, const uint8_t *target, unsigned int bits,
		     const struct dht_node_info *nodes, size_t n, uint64_t now)
{
	struct anq_hood nh = {0};
	size_t i;

	memcpy(nh.lo, target, K);
	memcpy(nh.hi, target, K);
	for (unsigned int b = bits; b < K * 8; b++) {
		nh.lo[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
		nh.hi[b / 8] |= (uint8_t)(0x80u >> (b % 8));
	}
	for (i = 0; i < n && nh.n < DHT_K; i++)
		if (nodes[i].token_len)
			nh.nodes[nh.n++] = nodes[i];
	nh.expires = now + CN_ANQ_HOOD_TTL_MS;
	nh.next_ms = now;
	/* replaces every hood it overlaps */
	for (i = 0; i < q->nh;) {
		if (memcmp(q->h[i].hi, nh.lo, K) >= 0 && memcmp(q->h[i].lo, nh.hi, K) <= 0)
			hood_del(q, i);
		else
			i++;
	}
	if (q->nh == CN_ANQ_HOODS) { /* the one expiring first goes */
		size_t o = 0;

		for (i = 1; i < q->nh; i++)
			if (q->h[i].expires < q->h[o].expires)
				o = i;
		hood_del(q, o);
	}
	for (i = 0; i < q->nh && memcmp(q->h[i].lo, nh.lo, K) < 0; i++)
		;
	memmove(&q->h[i + 1], &q->h[i], (q->nh - i) * sizeof(*q->h));
	q->h[i] = nh;
	q->nh++;
}

/* ------------------------------------------------------------ work */

static int try_send(struct cn_anq *q, uint64_t now, struct cn_anq_work *w, uint64_t *wake)
{
	for (size_t r = 0; r < q->nh && q->nsend < CN_ANQ_MAX_SENDS; r++) {
		size_t hi = (q->hrot + r) % q->nh;
		struct anq_hood *h = &q->h[hi];
		uint64_t wait = 0, next = h->expires;
		unsigned int room;

		if (h->next_ms > now) {
			if (h->next_ms < *wake)
				*wake = h->next_ms;
			continue;
		}
		room = hood_room(q, h, now, &wait);
		if (room > CN_ANQ_BATCH_MAX)
			room = CN_ANQ_BATCH_MAX;
		if (!room) {
			h->next_ms = now + wait;
			if (h->next_ms < *wake)
				*wake = h->next_ms;
			continue;
		}
		w->nkeys = 0;
		for (size_t i = lower(q, h->lo);
		     i < q->sorted && memcmp(q->e[i].key, h->hi, K) <= 0; i++) {
			struct anq_ent *x = &q->e[i];

			if (x->state != E_IDLE)
				continue;
			if (x->due > now) {
				if (x->due < next)
					next = x->due;
				continue;
			}
			if (w->nkeys < room) {
				memcpy(w->keys[w->nkeys++], x->key, K);
				x->state = E_SEND;
			} else {
				next = now;
				break;
			}
		}
		h->next_ms = next;
		if (!w->nkeys) {
			if (next < *wake)
				*wake = next;
			continue;
		}
		w->kind = CN_ANQ_SEND;
		/* the nodes with room for the whole batch (at least
		 * CN_ANQ_MIN_NODES of them, by hood_room) */
		w->nnodes = 0;
		for (size_t k = 0; k < h->n; k++)
			if (node_of(q, &h->nodes[k], now)->tok >= (int64_t)w->nkeys * 1000)
				w->nodes[w->nnodes++] = h->nodes[k];
		charge(q, w->nodes, w->nnodes, (unsigned int)w->nkeys, now);
		q->nsend++;
		q->sends++;
		q->hrot = hi + 1;
		return CN_ANQ_SEND;
	}
	return 0;
}

static int near_lookup(const struct cn_anq *q, const uint8_t *key)
{
	for (size_t i = 0; i < q->nlk; i++)
		if (prefix_bits(q->lk[i], key) >= q->est_bits)
			return 1;
	return 0;
}

static int try_lookup(struct cn_anq *q, uint64_t now, struct cn_anq_work *w, uint64_t *wake)
{
	size_t n = q->sorted, i, seen;
	uint64_t lw = UINT64_MAX;

	if (!n || q->nlk >= CN_ANQ_MAX_LOOKUPS)
		return 0; /* a lookup ending calls again */
	/* lookups go through the same few nodes of our routing table nearest
	 * their targets: their pace bounds what those nodes see */
	if (!q->lk_last || now > q->lk_last) {
		int64_t cap = (int64_t)CN_ANQ_LOOKUP_BURST * 1000;

		q->lk_tok = !q->lk_last ? cap
					: q->lk_tok + (int64_t)(now - q->lk_last) * 1000 /
							  CN_ANQ_LOOKUP_EVERY_MS;
		if (q->lk_tok > cap)
			q->lk_tok = cap;
		q->lk_last = now;
	}
	if (q->lk_tok < 1000) {
		uint64_t t = now + (uint64_t)(1000 - q->lk_tok) * CN_ANQ_LOOKUP_EVERY_MS / 1000 + 1;

		if (t < *wake)
			*wake = t;
		return 0;
	}
	if (!q->lk_dirty && now < q->lk_wake) {
		if (q->lk_wake < *wake)
			*wake = q->lk_wake;
		return 0;
	}
	if (q->cursor >= n)
		q->cursor = 0;
	for (seen = 0, i = q->cursor; seen < n; seen++, i = i + 1 == n ? 0 : i + 1) {
		struct anq_ent *x = &q->e[i];
		struct anq_hood *h;

		if (x->state != E_IDLE)
			continue;
		if (x->due > now) {
			if (x->due < lw)
				lw = x->due;
			continue;
		}
		h = hood_for(q, x->key);
		if (h && h->expires > now) {
			if (h->expires < lw)
				lw = h->expires;
			/* sent through the hood: skip the rest of its range (the
			 * loop's step then lands on the first key past it) */
			size_t last = lower(q, h->hi);

			if (last < n && !memcmp(q->e[last].key, h->hi, K))
				last++;
			last--; /* the last index inside the range, >= i */
			if (last > i && seen + (last - i) < n) {
				seen += last - i;
				i = last;
			}
			continue;
		}
		if (near_lookup(q, x->key))
			continue; /* the lookup ending sets lk_dirty */
		x->state = E_LOOKUP;
		q->lk_tok -= 1000;
		memcpy(q->lk[q->nlk++], x->key, K);
		memcpy(w->target, x->key, K);
		w->kind = CN_ANQ_LOOKUP;
		q->cursor = i + 1;
		q->lookups++;
		return CN_ANQ_LOOKUP;
	}
	q->lk_dirty = 0;
	q->lk_wake = lw;
	if (lw < *wake)
		*wake = lw;
	return 0;
}

int cn_anq_next(struct cn_anq *q, uint64_t now, struct cn_anq_work *w)
{
	uint64_t wake = now + 60000;

	merge(q);
	for (size_t i = 0; i < q->nh;)
		if (q->h[i].expires <= now)
			hood_del(q, i);
		else
			i++;
	w->kind = CN_ANQ_IDLE;
	if (try_send(q, now, w, &wake))
		return CN_ANQ_SEND;
	if (try_lookup(q, now, w, &wake))
		return CN_ANQ_LOOKUP;
	w->wake_ms = wake > now ? wake : now + 1;
	return CN_ANQ_IDLE;
}

static void ended(struct anq_ent *x, uint64_t due, uint64_t now)
{
	if (x->again == 2) {
		x->state = E_GONE;
	} else {
		x->state = E_IDLE;
		x->due = x->again ? now : due;
	}
	x->again = 0;
}

void cn_anq_lookup_done(struct cn_anq *q, const uint8_t target[DHT_ID_LEN],
			const struct dht_node_info *nodes, size_t n, uint64_t now)
{
	struct anq_ent *x = find(q, target);
	unsigned int bits = K * 8, withtok = 0;

	q->lk_dirty = 1;
	for (size_t i = 0; i < q->nlk; i++)
		if (!memcmp(q->lk[i], target, K)) {
			memmove(q->lk[i], q->lk[i + 1], (q->nlk - i - 1) * K);
			q->nlk--;
			break;
		}
	for (size_t i = 0; i < n; i++)
		if (nodes[i].token_len) {
			unsigned int b = prefix_bits(target, nodes[i].id);

			withtok++;
			if (b < bits)
				bits = b;
		}
	if (!withtok) {
		if (x && x->state == E_LOOKUP) {
			ended(x, now + CN_ANQ_RETRY_MS, now);
			q->failed++;
		}
		return;
	}
	charge(q, nodes, n, 1, now);
	/* with fewer than k nodes the set says nothing of the keys around */
	bits = withtok < DHT_K			 ? K * 8
	       : bits + CN_ANQ_HOOD_BITS > K * 8 ? K * 8
						 : bits + CN_ANQ_HOOD_BITS;
	if (withtok == DHT_K)
		q->est_bits = bits;
	hood_add(q, target, bits, nodes, n, now);
	if (x && x->state == E_LOOKUP)
		ended(x, x->due, now); /* still due: the hood sends it */
}

void cn_anq_send_done(struct cn_anq *q, const uint8_t (*keys)[DHT_ID_LEN], size_t n, int ok,
		      uint64_t now)
{
	if (q->nsend)
		q->nsend--;
	for (size_t i = 0; i < n; i++) {
		struct anq_ent *x = find(q, keys[i]);

		if (!x || x->state != E_SEND)
			continue;
		ended(x, now + (ok ? q->reann : CN_ANQ_RETRY_MS), now);
		if (ok)
			q->announced++;
		else
			q->failed++;
	}
	if (!ok) /* a hood whose nodes do not answer: look again */
		for (size_t i = 0; n && i < q->nh; i++)
			if (memcmp(keys[0], q->h[i].lo, K) >= 0 &&
			    memcmp(keys[0], q->h[i].hi, K) <= 0) {
				hood_del(q, i);
				break;
			}
}

void cn_anq_stats(struct cn_anq *q, uint64_t now, struct cn_anq_stats *st)
{
	uint64_t oldest = UINT64_MAX;

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < q->n; i++) {
		const struct anq_ent *x = &q->e[i];

		if (x->state == E_GONE)
			continue;
		st->ids++;
		if (x->due <= now) {
			st->backlog++;
			if (x->due < oldest)
				oldest = x->due;
		}
	}
	st->oldest_age_ms = oldest == UINT64_MAX ? 0 : now - oldest;
	st->lookups = q->lookups;
	st->sends = q->sends;
	st->announced = q->announced;
	st->failed = q->failed;
	st->hoods = q->nh;
	st->inflight_lookups = q->nlk;
	st->inflight_sends = q->nsend;
}

size_t cn_anq_keys(const struct cn_anq *q, size_t *pos, uint8_t (*out)[DHT_ID_LEN], size_t cap)
{
	size_t n = 0;

	for (; *pos < q->n && n < cap; (*pos)++)
		if (q->e[*pos].state != E_GONE)
			memcpy(out[n++], q->e[*pos].key, DHT_ID_LEN);
	return n;
}
