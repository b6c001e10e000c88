// SPDX-License-Identifier: MIT
/*
 * Routing table: k = 8 buckets indexed by the length of the prefix a node id
 * shares with ours. Bucket i < nb-1 holds ids sharing exactly i bits; the
 * last bucket holds everything closer, contains our own id and is the only
 * one that splits (Kademlia section 2.4 / BEP 5). One table per address
 * family. Node states (BEP 5): good = answered within 15 min, bad = 3
 * queries in a row unanswered, questionable otherwise. A bad node is
 * replaced by the newest entry of the bucket's replacement cache, or by
 * the next node heard for that bucket. An entry held back by a query with
 * ro=1 (dht_rt_ro_hold) is never good and never handed out until it
 * answers one of our queries again.
 */
#include <string.h>

#include "dht/dht_int.h"

/* Common prefix length of two ids, 0..160. */
static int dht_rt_cpl(const uint8_t *a, const uint8_t *b)
{
	for (int i = 0; i < DHT_ID_LEN; i++) {
		uint8_t x = a[i] ^ b[i];

		if (x)
			return i * 8 + __builtin_clz((unsigned int)x) - 24;
	}
	return 160;
}

int dht_id_closer(const uint8_t *target, const uint8_t *a, const uint8_t *b)
{
	for (int i = 0; i < DHT_ID_LEN; i++) {
		uint8_t da = a[i] ^ target[i], db = b[i] ^ target[i];

		if (da != db)
			return da < db;
	}
	return 0;
}

unsigned int dht_rt_bucket_index(const struct dht_table *t, const uint8_t *self, const uint8_t *id)
{
	unsigned int c = (unsigned int)dht_rt_cpl(self, id);

	return c < t->nb - 1 ? c : t->nb - 1;
}

int dht_rt_node_good(const struct dht_node *n, uint64_t now)
{
	return n->replied && n->fails == 0 && !n->ro_held && now - n->last_reply < DHT_GOOD_MS;
}

int dht_rt_node_bad(const struct dht_node *n)
{
	return n->fails >= DHT_MAX_FAILS;
}

static void node_set(struct dht_node *n, const uint8_t *id, const struct sockaddr *sa,
		     socklen_t salen, enum rt_event ev, uint64_t now)
{
	memset(n, 0, sizeof(*n));
	memcpy(n->id, id, DHT_ID_LEN);
	memcpy(&n->addr, sa, salen < sizeof(n->addr) ? salen : sizeof(n->addr));
	n->addrlen = salen;
	n->last_seen = now;
	if (ev == RT_REPLY) {
		n->last_reply = now;
		n->replied = 1;
	}
}

static void node_touch(struct dht_node *n, enum rt_event ev, uint64_t now)
{
	n->last_seen = now;
	if (ev == RT_REPLY) {
		n->last_reply = now;
		n->replied = 1;
		n->fails = 0;
		n->ro_held = 0; /* it answers: it is not read-only (any more) */
	}
}

static void split_last(struct dht_table *t, const uint8_t *self)
{
	struct dht_bucket *old = &t->b[t->nb - 1], *nw = &t->b[t->nb];
	unsigned int depth = t->nb; /* ids with cpl >= depth move */
	uint8_t k = 0, r = 0;

	memset(nw, 0, sizeof(*nw));
	nw->last_changed = old->last_changed;
	for (uint8_t i = 0; i < old->n; i++) {
		if ((unsigned int)dht_rt_cpl(self, old->nodes[i].id) >= depth)
			nw->nodes[nw->n++] = old->nodes[i];
		else
			old->nodes[k++] = old->nodes[i];
	}
	old->n = k;
	for (uint8_t i = 0; i < old->nrepl; i++) {
		if ((unsigned int)dht_rt_cpl(self, old->repl[i].id) >= depth)
			nw->repl[nw->nrepl++] = old->repl[i];
		else
			old->repl[r++] = old->repl[i];
	}
	old->nrepl = r;
	t->nb++;
}

static void repl_add(struct dht_bucket *b, const uint8_t *id, const struct sockaddr *sa,
		     socklen_t salen, enum rt_event ev, uint64_t now)
{
	for (uint8_t i = 0; i < b->nrepl; i++) {
		if (!memcmp(b->repl[i].id, id, DHT_ID_LEN)) {
			node_touch(&b->repl[i], ev, now);
			return;
		}
	}
	if (b->nrepl == DHT_K) { /* full: forget the oldest */
		memmove(&b->repl[0], &b->repl[1], sizeof(b->repl[0]) * (DHT_K - 1));
		b->nrepl--;
	}
	node_set(&b->repl[b->nrepl++], id, sa, salen, ev, now);
}

static void repl_remove(struct dht_bucket *b, const uint8_t *id)
{
	for (uint8_t i = 0; i < b->nrepl; i++) {
		if (!memcmp(b->repl[i].id, id, DHT_ID_LEN)) {
			memmove(&b->repl[i], &b->repl[i + 1],
				sizeof(b->repl[0]) * (b->nrepl - i - 1));
			b->nrepl--;
			return;
		}
	}
}

int dht_rt_heard(struct dht_table *t, const uint8_t *self, const uint8_t *id,
		 const struct sockaddr *sa, socklen_t salen, enum rt_event ev, uint64_t now)
{
	struct dht_bucket *b;
	unsigned int i;

	if (!memcmp(id, self, DHT_ID_LEN) || sa->sa_family != t->family ||
	    salen > sizeof(struct sockaddr_storage))
		return 0;
	for (;;) {
		i = dht_rt_bucket_index(t, self, id);
		b = &t->b[i];
		for (uint8_t j = 0; j < b->n; j++) {
			struct dht_node *n = &b->nodes[j];

			if (memcmp(n->id, id, DHT_ID_LEN))
				continue;
			if (!dht_addr_eq((struct sockaddr *)&n->addr, sa)) {
				/* same id, new address: only a bad entry may move */
				if (!dht_rt_node_bad(n))
					return 1;
				node_set(n, id, sa, salen, ev, now);
				return 1;
			}
			node_touch(n, ev, now);
			if (ev == RT_REPLY)
				b->last_changed = now;
			return 1;
		}
		if (b->n < DHT_K) {
			node_set(&b->nodes[b->n++], id, sa, salen, ev, now);
			b->last_changed = now;
			repl_remove(b, id);
			return 1;
		}
		for (uint8_t j = 0; j < b->n; j++) {
			if (dht_rt_node_bad(&b->nodes[j])) {
				node_set(&b->nodes[j], id, sa, salen, ev, now);
				b->last_changed = now;
				repl_remove(b, id);
				return 1;
			}
		}
		if (i == t->nb - 1 && t->nb < DHT_MAX_BUCKETS) {
			split_last(t, self);
			continue;
		}
		repl_add(b, id, sa, salen, ev, now);
		return 0;
	}
}

struct dht_node *dht_rt_find(struct dht_table *t, const uint8_t *self, const uint8_t *id)
{
	struct dht_bucket *b = &t->b[dht_rt_bucket_index(t, self, id)];

	for (uint8_t j = 0; j < b->n; j++)
		if (!memcmp(b->nodes[j].id, id, DHT_ID_LEN))
			return &b->nodes[j];
	return NULL;
}

void dht_rt_failed(struct dht_table *t, const uint8_t *self, const uint8_t *id,
		   const struct sockaddr *sa)
{
	struct dht_bucket *b = &t->b[dht_rt_bucket_index(t, self, id)];

	for (uint8_t j = 0; j < b->n; j++) {
		struct dht_node *n = &b->nodes[j];

		if (memcmp(n->id, id, DHT_ID_LEN) || !dht_addr_eq((struct sockaddr *)&n->addr, sa))
			continue;
		if (n->fails < 255)
			n->fails++;
		if (dht_rt_node_bad(n) && b->nrepl) {
			/* newest replacement takes the slot */
			*n = b->repl[--b->nrepl];
		}
		return;
	}
	repl_remove(b, id);
}

/* A query that says read-only (BEP 43 `ro=1`) came from the id and address
 * of an entry. A read-only node answers no one, so it must not be handed
 * to third parties; but the source of a UDP datagram may be forged, and
 * dropping the entry on this word alone would let anyone who knows a good
 * node's id and address evict it. So the entry stays, held back: left out
 * of closest() (the nodes we give others, and our lookups' start) and
 * not good (maintain() pings it, at its usual rate), until an answer to
 * our query (our transaction id, from its address) clears the mark in
 * node_touch(). A node that really is read-only does not answer: three
 * queries unanswered make it bad, and the usual replacement takes its
 * slot. A replacement-cache entry is held the same way (the mark moves
 * with it into the table). Returns 1 when a table entry was held now. */
int dht_rt_ro_hold(struct dht_table *t, const uint8_t *self, const uint8_t *id,
		   const struct sockaddr *sa)
{
	struct dht_bucket *b = &t->b[dht_rt_bucket_index(t, self, id)];

	for (uint8_t j = 0; j < b->nrepl; j++)
		if (!memcmp(b->repl[j].id, id, DHT_ID_LEN) &&
		    dht_addr_eq((struct sockaddr *)&b->repl[j].addr, sa))
			b->repl[j].ro_held = 1;
	for (uint8_t j = 0; j < b->n; j++) {
		struct dht_node *n = &b->nodes[j];

		if (memcmp(n->id, id, DHT_ID_LEN) || !dht_addr_eq((struct sockaddr *)&n->addr, sa))
			continue;
		if (n->ro_held)
			return 0;
		n->ro_held = 1;
		return 1;
	}
	return 0;
}

/* The first 8 bytes of id XOR target, big-endian: distances compare as
 * these integers unless they tie (then byte by byte, dht_id_closer). */
static uint64_t dist64(const uint8_t *id, const uint8_t *target)
{
	uint64_t d = 0;

	for (int i = 0; i < 8; i++)
		d = d << 8 | (uint8_t)(id[i] ^ target[i]);
	return d;
}

/* One closest() answer per find_node / get_peers / get: the whole table is
 * scanned (at most 160 buckets of 8), so each candidate's distance is
 * computed once and compared as an integer. */
size_t dht_rt_closest(const struct dht_table *t, const uint8_t *target, uint64_t now,
		      const struct dht_node **out, size_t max)
{
	uint64_t dist[DHT_RT_CLOSEST_MAX];
	size_t n = 0;

	if (max > DHT_RT_CLOSEST_MAX)
		max = DHT_RT_CLOSEST_MAX;
	if (!max)
		return 0;
	for (unsigned int i = 0; i < t->nb; i++) {
		const struct dht_bucket *b = &t->b[i];

		for (uint8_t j = 0; j < b->n; j++) {
			const struct dht_node *c = &b->nodes[j];
			uint64_t d;
			size_t pos;

			if (dht_rt_node_bad(c) || c->ro_held)
				continue;
			d = dist64(c->id, target);
			if (n == max && (d > dist[n - 1] ||
					 (d == dist[n - 1] && !dht_id_closer(target, c->id, out[n - 1]->id))))
				continue;
			pos = n < max ? n++ : n - 1;
			while (pos > 0 && (d < dist[pos - 1] ||
					   (d == dist[pos - 1] &&
					    dht_id_closer(target, c->id, out[pos - 1]->id)))) {
				out[pos] = out[pos - 1];
				dist[pos] = dist[pos - 1];
				pos--;
			}
			out[pos] = c;
			dist[pos] = d;
		}
	}
	return n;
}

static void set_bit(uint8_t *id, unsigned int bit, int v)
{
	uint8_t m = (uint8_t)(0x80 >> (bit & 7));

	if (v)
		id[bit >> 3] |= m;
	else
		id[bit >> 3] &= (uint8_t)~m;
}

static int get_bit(const uint8_t *id, unsigned int bit)
{
	return (id[bit >> 3] >> (7 - (bit & 7))) & 1;
}

void dht_rt_random_in_bucket(const struct dht_table *t, const uint8_t *self, unsigned int i,
			     const uint8_t rnd[DHT_ID_LEN], uint8_t out[DHT_ID_LEN])
{
	unsigned int keep = i < t->nb - 1 ? i : t->nb - 1;

	memcpy(out, rnd, DHT_ID_LEN);
	for (unsigned int bit = 0; bit < keep; bit++)
		set_bit(out, bit, get_bit(self, bit));
	if (i < t->nb - 1)
		set_bit(out, i, !get_bit(self, i));
}

struct dht_table *dht_table_for(struct dht *dht, int family)
{
	if (family == AF_INET)
		return &dht->t4;
	if (family == AF_INET6)
		return &dht->t6;
	return NULL;
}
