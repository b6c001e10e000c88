// SPDX-License-Identifier: MIT
/*
 * The relay's reservation table: who holds a reservation (node key, the
 * QUIC connection and its validated address), until when, how many
 * circuits run towards it; limits per relay, per source address and per
 * reservation; the churn of new reservations per source. No I/O, no clock
 * of its own: every call takes now_ms. Lookups scan the table (at most
 * relay.max_reservations entries, 128 by default; a relay host with tens
 * of thousands would want a hash, docs/CONNECTIVITY.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weft/relay.h"

struct churn {
	uint8_t src[16]; /* IPv4 address, or IPv6 /64, zero-padded */
	int family;
	uint64_t window_start;
	unsigned int count;
	int reported;
};

struct relay_tab {
	struct relay_tab_opts o;
	struct relay_res *res; /* o.max_reservations slots, [0, n) live */
	unsigned int n;
	uint64_t expired; /* reservations ended by expiry, ever */
	struct churn churn[RELAY_CHURN_SLOTS];
};

int relay_tab_new(struct relay_tab **out, const struct relay_tab_opts *o)
{
	struct relay_tab *t;

	if (!out)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	if (o)
		t->o = *o;
	if (!t->o.max_reservations)
		t->o.max_reservations = RELAY_DEF_MAX_RESERVATIONS;
	if (!t->o.circuits_per_res)
		t->o.circuits_per_res = RELAY_DEF_CIRCUITS_PER_RES;
	if (!t->o.reservations_per_addr)
		t->o.reservations_per_addr = RELAY_DEF_RES_PER_ADDR;
	if (!t->o.ttl_s)
		t->o.ttl_s = RELAY_DEF_RES_TTL_S;
	if (!t->o.churn_max)
		t->o.churn_max = RELAY_DEF_CHURN_MAX;
	t->res = calloc(t->o.max_reservations, sizeof(*t->res));
	if (!t->res) {
		free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

void relay_tab_free(struct relay_tab *t)
{
	if (!t)
		return;
	free(t->res);
	free(t);
}

/* The source an address counts against: the IPv4 address, or the IPv6 /64
 * (one subscriber's usual allocation). */
static void src_of(const struct io_addr *a, uint8_t out[16])
{
	memset(out, 0, 16);
	memcpy(out, a->addr, a->family == AF_INET ? 4 : 8);
}

static int same_src(const struct io_addr *a, const struct io_addr *b)
{
	uint8_t x[16], y[16];

	if (a->family != b->family)
		return 0;
	src_of(a, x);
	src_of(b, y);
	return !memcmp(x, y, 16);
}

static void drop_at(struct relay_tab *t, unsigned int i)
{
	t->res[i] = t->res[--t->n];
}

static int find_idx(const struct relay_tab *t, const uint8_t *key)
{
	for (unsigned int i = 0; i < t->n; i++)
		if (!memcmp(t->res[i].key, key, RELAY_KEY_LEN))
			return (int)i;
	return -1;
}

/* Count a new reservation from addr; 1 if over relay.churn_max. */
static int churn_over(struct relay_tab *t, const struct io_addr *addr, uint64_t now, int *abuse)
{
	struct churn *c = NULL, *oldest = &t->churn[0];
	uint8_t src[16];

	src_of(addr, src);
	for (unsigned int i = 0; i < RELAY_CHURN_SLOTS; i++) {
		struct churn *x = &t->churn[i];

		if (x->family == addr->family && !memcmp(x->src, src, 16)) {
			c = x;
			break;
		}
		if (x->window_start < oldest->window_start)
			oldest = x;
	}
	if (!c) {
		c = oldest;
		memset(c, 0, sizeof(*c));
		memcpy(c->src, src, 16);
		c->family = addr->family;
		c->window_start = now;
	}
	if (now - c->window_start >= RELAY_CHURN_WINDOW_MS) {
		c->window_start = now;
		c->count = 0;
		c->reported = 0;
	}
	if (c->count >= t->o.churn_max) {
		if (!c->reported) {
			c->reported = 1;
			*abuse = 1;
		}
		return 1;
	}
	c->count++;
	return 0;
}

int relay_tab_reserve(struct relay_tab *t, const uint8_t key[RELAY_KEY_LEN],
		      const struct io_addr *addr, uint64_t conn, uint64_t now_ms,
		      uint32_t *ttl_s, int *abuse)
{
	struct relay_res *r;
	unsigned int per_addr = 0;
	int i;

	*abuse = 0;
	relay_tab_expire(t, now_ms);
	i = find_idx(t, key);
	if (i >= 0 && t->res[i].conn == conn) {
		/* A refresh over the same connection. */
		t->res[i].expires_ms = now_ms + t->o.ttl_s * 1000ULL;
		*ttl_s = t->o.ttl_s;
		return RELAY_OK;
	}
	if (churn_over(t, addr, now_ms, abuse))
		return RELAY_E_CHURN;
	for (unsigned int j = 0; j < t->n; j++)
		if ((int)j != i && same_src(&t->res[j].addr, addr))
			per_addr++;
	if (per_addr >= t->o.reservations_per_addr)
		return RELAY_E_ADDR_LIMIT;
	if (i < 0) {
		if (t->n >= t->o.max_reservations)
			return RELAY_E_RESERVATIONS;
		i = (int)t->n++;
		memset(&t->res[i], 0, sizeof(t->res[i]));
		memcpy(t->res[i].key, key, RELAY_KEY_LEN);
		t->res[i].created_ms = now_ms;
	}
	/* New, or moved to the holder's new connection (circuits it had
	 * keep counting until the data plane ends them). */
	r = &t->res[i];
	r->addr = *addr;
	r->conn = conn;
	r->expires_ms = now_ms + t->o.ttl_s * 1000ULL;
	*ttl_s = t->o.ttl_s;
	return RELAY_OK;
}

struct relay_res *relay_tab_find(struct relay_tab *t, const uint8_t key[RELAY_KEY_LEN],
				 uint64_t now_ms)
{
	int i;

	relay_tab_expire(t, now_ms);
	i = find_idx(t, key);
	return i < 0 ? NULL : &t->res[i];
}

int relay_tab_circuit_add(struct relay_tab *t, const uint8_t key[RELAY_KEY_LEN], uint64_t now_ms)
{
	struct relay_res *r = relay_tab_find(t, key, now_ms);

	if (!r)
		return RELAY_E_NO_RESERVATION;
	if (r->circuits >= t->o.circuits_per_res)
		return RELAY_E_CIRCUITS;
	r->circuits++;
	r->circuits_total++;
	return RELAY_OK;
}

void relay_tab_circuit_end(struct relay_tab *t, const uint8_t key[RELAY_KEY_LEN])
{
	int i = find_idx(t, key);

	if (i >= 0 && t->res[i].circuits)
		t->res[i].circuits--;
}

unsigned int relay_tab_drop_conn(struct relay_tab *t, uint64_t conn)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < t->n;)
		if (t->res[i].conn == conn) {
			drop_at(t, i);
			n++;
		} else {
			i++;
		}
	return n;
}

unsigned int relay_tab_expire(struct relay_tab *t, uint64_t now_ms)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < t->n;)
		if (t->res[i].expires_ms <= now_ms) {
			drop_at(t, i);
			t->expired++;
			n++;
		} else {
			i++;
		}
	return n;
}

unsigned int relay_tab_count(const struct relay_tab *t)
{
	return t->n;
}

const struct relay_res *relay_tab_get(const struct relay_tab *t, unsigned int i)
{
	return i < t->n ? &t->res[i] : NULL;
}

uint64_t relay_tab_expired(const struct relay_tab *t)
{
	return t->expired;
}

int relay_flood_step(struct relay_flood *f, uint64_t drops, uint64_t pkts, uint64_t threshold)
{
	uint64_t d = drops >= f->last_drops ? drops - f->last_drops : 0;
	uint64_t p = pkts >= f->last_pkts ? pkts - f->last_pkts : 0;

	f->last_drops = drops;
	f->last_pkts = pkts;
	if (d < (threshold ? threshold : RELAY_DEF_FLOOD_DROPS) || d <= RELAY_FLOOD_RATIO * p) {
		f->strikes = 0;
		return 0;
	}
	if (++f->strikes < RELAY_FLOOD_STRIKES)
		return 0;
	f->strikes = 0;
	return 1;
}
