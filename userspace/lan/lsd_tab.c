// SPDX-License-Identifier: MIT
/*
 * The LAN peers heard, without I/O (include/weft/lan.h): bounded tables,
 * a token bucket per source and one for everything, the providers weft
 * peers announced. Sources are UDP addresses and can be forged: nothing
 * here bans anyone; a forged source costs one slot until its TTL, a DHT
 * ping at most every LSD_PING_MS, and never displaces a peer heard within
 * its TTL.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/lan.h"

struct tab_peer {
	struct sockaddr_storage addr; /* port 0: the peer is its IP address */
	uint16_t port, weft_quic, weft_dht;
	uint64_t first_ms, last_ms, pinged_ms, msgs;
	int64_t tokens; /* milli-messages */
	uint64_t tok_ms;
	unsigned int nih;
	uint8_t ih[LSD_PEER_IH][LSD_IH_LEN];
	int used;
};

struct tab_prov {
	uint8_t ih[LSD_IH_LEN];
	struct sockaddr_storage addr; /* QUIC address */
	uint64_t last_ms;
	int used;
};

struct lsd_tab {
	struct tab_peer *p;
	unsigned int max;
	struct tab_prov *pv; /* LSD_MAX_PROVIDERS */
	int64_t gtokens;     /* milli-messages, LSD_RX_PER_S */
	uint64_t gtok_ms;
};

int lsd_tab_new(struct lsd_tab **out, unsigned int max_peers)
{
	struct lsd_tab *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->max = max_peers ? max_peers : LSD_MAX_PEERS;
	t->p = calloc(t->max, sizeof(*t->p));
	t->pv = calloc(LSD_MAX_PROVIDERS, sizeof(*t->pv));
	if (!t->p || !t->pv) {
		lsd_tab_free(t);
		return -ENOMEM;
	}
	t->gtokens = (int64_t)LSD_RX_PER_S * 1000;
	*out = t;
	return 0;
}

void lsd_tab_free(struct lsd_tab *t)
{
	if (!t)
		return;
	free(t->p);
	free(t->pv);
	free(t);
}

int lsd_tab_admit(struct lsd_tab *t, uint64_t now)
{
	const int64_t cap = (int64_t)LSD_RX_PER_S * 1000;

	if (now > t->gtok_ms) {
		uint64_t dt = now - t->gtok_ms;

		t->gtokens += dt > 1000 ? cap : (int64_t)dt * LSD_RX_PER_S;
		if (t->gtokens > cap)
			t->gtokens = cap;
		t->gtok_ms = now;
	}
	if (t->gtokens < 1000)
		return 0;
	t->gtokens -= 1000;
	return 1;
}

static int same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) &&
	       ((const struct sockaddr_in6 *)a)->sin6_scope_id ==
		       ((const struct sockaddr_in6 *)b)->sin6_scope_id;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static socklen_t ss_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static int live(const struct tab_peer *p, uint64_t now)
{
	return p->used && now < p->last_ms + LSD_PEER_TTL_MS;
}

/* The peer slot for src: its own, else a free or expired one. NULL when
 * every slot holds a live peer. */
static struct tab_peer *slot_for(struct lsd_tab *t, const struct sockaddr_storage *src,
				 uint64_t now, int *fresh)
{
	struct tab_peer *free_slot = NULL;

	for (unsigned int i = 0; i < t->max; i++) {
		struct tab_peer *p = &t->p[i];

		if (p->used && same_ip(&p->addr, src)) {
			*fresh = !live(p, now);
			return p;
		}
		if (!free_slot && !live(p, now))
			free_slot = p;
	}
	*fresh = 1;
	return free_slot;
}

/* Token bucket of one source: LSD_SRC_BURST, refilled one per
 * LSD_SRC_EVERY_MS. */
static int src_take(struct tab_peer *p, uint64_t now)
{
	const int64_t cap = (int64_t)LSD_SRC_BURST * 1000;

	if (now > p->tok_ms) {
		uint64_t dt = now - p->tok_ms;
		int64_t add = dt >= (uint64_t)LSD_SRC_EVERY_MS * LSD_SRC_BURST
				      ? cap
				      : (int64_t)(dt * 1000 / LSD_SRC_EVERY_MS);

		p->tokens = p->tokens + add > cap ? cap : p->tokens + add;
		p->tok_ms = now;
	}
	if (p->tokens < 1000)
		return 0;
	p->tokens -= 1000;
	return 1;
}

static void remember_ih(struct tab_peer *p, const uint8_t ih[LSD_IH_LEN])
{
	unsigned int k;

	for (k = 0; k < p->nih && memcmp(p->ih[k], ih, LSD_IH_LEN); k++)
		;
	if (k == p->nih && p->nih < LSD_PEER_IH)
		p->nih++;
	if (k == LSD_PEER_IH)
		k = LSD_PEER_IH - 1;
	memmove(p->ih[1], p->ih[0], (size_t)k * LSD_IH_LEN);
	memcpy(p->ih[0], ih, LSD_IH_LEN);
}

/* Record (ih, addr): its own entry refreshed, else a free one, else the
 * least recently heard (providers only come from peers with a slot, so a
 * forged flood is bounded by the peer table and the rates). */
static void add_provider(struct lsd_tab *t, const uint8_t ih[LSD_IH_LEN],
			 const struct sockaddr_storage *addr, uint64_t now)
{
	struct tab_prov *victim = NULL;

	for (unsigned int i = 0; i < LSD_MAX_PROVIDERS; i++) {
		struct tab_prov *v = &t->pv[i];

		if (v->used && !memcmp(v->ih, ih, LSD_IH_LEN) && same_ip(&v->addr, addr)) {
			v->addr = *addr;
			v->last_ms = now;
			return;
		}
		if (!victim || (victim->used && (!v->used || v->last_ms < victim->last_ms)))
			victim = v;
	}
	memcpy(victim->ih, ih, LSD_IH_LEN);
	victim->addr = *addr;
	victim->last_ms = now;
	victim->used = 1;
}

int lsd_tab_input(struct lsd_tab *t, const struct sockaddr *from, socklen_t fromlen,
		  const struct lsd_msg *m, uint64_t now, struct lsd_action *act)
{
	struct sockaddr_storage src;
	struct tab_peer *p;
	int fresh = 0;

	memset(act, 0, sizeof(*act));
	if (!from || (from->sa_family == AF_INET && fromlen < sizeof(struct sockaddr_in)) ||
	    (from->sa_family == AF_INET6 && fromlen < sizeof(struct sockaddr_in6)) ||
	    (from->sa_family != AF_INET && from->sa_family != AF_INET6))
		return -EINVAL;
	memset(&src, 0, sizeof(src));
	memcpy(&src, from, from->sa_family == AF_INET ? sizeof(struct sockaddr_in)
						      : sizeof(struct sockaddr_in6));
	set_port(&src, 0);
	p = slot_for(t, &src, now, &fresh);
	if (!p)
		return -ENOSPC;
	if (fresh) {
		memset(p, 0, sizeof(*p));
		p->used = 1;
		p->addr = src;
		p->first_ms = now;
		p->tokens = (int64_t)LSD_SRC_BURST * 1000;
		p->tok_ms = now;
	}
	if (!src_take(p, now))
		return -EAGAIN;
	p->last_ms = now;
	p->msgs++;
	p->port = m->port;
	p->weft_quic = m->weft_quic;
	p->weft_dht = m->weft_dht;
	for (unsigned int i = 0; i < m->nih; i++)
		remember_ih(p, m->ih[i]);
	if (m->weft_quic) {
		struct sockaddr_storage q = src;

		set_port(&q, m->weft_quic);
		for (unsigned int i = 0; i < m->nih; i++)
			add_provider(t, m->ih[i], &q, now);
	}
	act->new_peer = fresh;
	if (fresh || now >= p->pinged_ms + LSD_PING_MS) {
		p->pinged_ms = now;
		act->ping = 1;
		act->contact = src;
		set_port(&act->contact, m->weft_dht ? m->weft_dht : m->port);
		act->contact_len = ss_len(&act->contact);
	}
	return 0;
}

size_t lsd_tab_providers(struct lsd_tab *t, const uint8_t ih[LSD_IH_LEN], uint64_t now,
			 struct sockaddr_storage *out, size_t cap)
{
	uint64_t below = UINT64_MAX; /* newest first: each round the newest older than the last */
	size_t n = 0;

	while (n < cap) {
		const struct tab_prov *best = NULL;

		for (unsigned int i = 0; i < LSD_MAX_PROVIDERS; i++) {
			const struct tab_prov *v = &t->pv[i];

			if (!v->used || now >= v->last_ms + LSD_PEER_TTL_MS ||
			    v->last_ms >= below || memcmp(v->ih, ih, LSD_IH_LEN))
				continue;
			if (!best || v->last_ms > best->last_ms)
				best = v;
		}
		if (!best)
			break;
		/* every entry heard at that instant */
		for (unsigned int i = 0; i < LSD_MAX_PROVIDERS && n < cap; i++) {
			const struct tab_prov *v = &t->pv[i];

			if (v->used && v->last_ms == best->last_ms && !memcmp(v->ih, ih, LSD_IH_LEN))
				out[n++] = v->addr;
		}
		below = best->last_ms;
	}
	return n;
}

int lsd_tab_peer(struct lsd_tab *t, unsigned int i, uint64_t now, struct lsd_peer_info *out)
{
	unsigned int seen = 0;

	for (unsigned int k = 0; k < t->max; k++) {
		const struct tab_peer *p = &t->p[k];

		if (!live(p, now) || seen++ != i)
			continue;
		memset(out, 0, sizeof(*out));
		out->addr = p->addr;
		set_port(&out->addr, p->port);
		out->port = p->port;
		out->weft_quic = p->weft_quic;
		out->weft_dht = p->weft_dht;
		out->first_ms = p->first_ms;
		out->last_ms = p->last_ms;
		out->msgs = p->msgs;
		out->nih = p->nih;
		memcpy(out->ih, p->ih, sizeof(out->ih));
		return 0;
	}
	return -ENOENT;
}

size_t lsd_tab_count(struct lsd_tab *t, uint64_t now)
{
	size_t n = 0;

	for (unsigned int k = 0; k < t->max; k++)
		n += (size_t)live(&t->p[k], now);
	return n;
}
