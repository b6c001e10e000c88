// SPDX-License-Identifier: MIT
/*
 * KRPC server side: the answers to ping, find_node, get_peers,
 * announce_peer, get and put (BEP 5, 32, 44), error replies, and the
 * per-source query budget that decides whether a query is answered at all.
 *
 * A part below dht.c, which parses a datagram and hands each query here;
 * it sends through txn.c, uses the routing table, the storage and the
 * tokens, and never calls dht.c or lookup.c.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht_int.h"

#define DHT_ERR_SLOTS 10
static const int dht_err_codes[DHT_ERR_SLOTS - 1] = {201, 202, 203, 204, 205, 206, 207, 301, 302};

void dht_send_error(struct dht *dht, const struct krpc_msg *m, int code, const char *msg,
		    const struct sockaddr *to, socklen_t tolen)
{
	uint8_t pkt[512];
	struct bencode_buf b;
	unsigned int slot = DHT_ERR_SLOTS - 1;

	for (unsigned int i = 0; i < DHT_ERR_SLOTS - 1; i++)
		if (dht_err_codes[i] == code)
			slot = i;
	dht->st.errors_out[slot]++;
	bencode_buf_init(&b, pkt, sizeof(pkt));
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "e");
	bencode_put_list(&b);
	bencode_put_int(&b, code);
	bencode_put_cstr(&b, msg);
	bencode_put_end(&b);
	dht_put_tail(dht, &b, m->t, m->tlen, "e");
	dht_sendto(dht, &b, to, tolen);
}

/* Start of a reply: "d2:ip<addr>1:rd2:id20:<id>" ... caller adds sorted r keys. */
static void reply_head(struct dht *dht, struct bencode_buf *b, const struct sockaddr *to)
{
	uint8_t c[18];
	int cl = dht_addr_compact(to, c);

	bencode_put_dict(b);
	if (cl) {
		bencode_put_cstr(b, "ip");
		bencode_put_str(b, c, (size_t)cl);
	}
	bencode_put_cstr(b, "r");
	bencode_put_dict(b);
	bencode_put_cstr(b, "id");
	bencode_put_str(b, dht->id, DHT_ID_LEN);
}

static void reply_finish(struct dht *dht, struct bencode_buf *b, const struct krpc_msg *m,
			 const struct sockaddr *to, socklen_t tolen)
{
	bencode_put_end(b); /* r */
	dht_put_tail(dht, b, m->t, m->tlen, "r");
	dht_sendto(dht, b, to, tolen);
}

/* "nodes" / "nodes6" with up to nmax entries each: the families asked for
 * with want (BEP 32), else the requester's own family. */
/* Up to nmax of our nodes closest to target, compact (26 or 38 bytes each),
 * never the asker itself (by id or by address): an answer that names the
 * asker wastes a slot on a node it cannot use, and in a small network that
 * slot is the one node it would not learn otherwise. */
/* Equality of two node ids, or of two compact addresses (6 or 18 bytes),
 * without a libc call: compact_closest runs both per candidate of every
 * find_node / get_peers answer. */
static inline int id_eq(const uint8_t *a, const uint8_t *b)
{
	uint64_t x[2], y[2];
	uint32_t u, v;

	memcpy(x, a, 16);
	memcpy(y, b, 16);
	memcpy(&u, a + 16, 4);
	memcpy(&v, b + 16, 4);
	return !((x[0] ^ y[0]) | (x[1] ^ y[1]) | (u ^ v));
}

static inline int compact_eq(const uint8_t *a, const uint8_t *b, int len)
{
	uint32_t x, y;
	uint16_t p, q;

	if (len != 6)
		return !memcmp(a, b, (size_t)len);
	memcpy(&x, a, 4);
	memcpy(&y, b, 4);
	memcpy(&p, a + 4, 2);
	memcpy(&q, b + 4, 2);
	return x == y && p == q;
}

static size_t compact_closest(const struct dht_table *t, const uint8_t *target, uint64_t now,
			      const struct krpc_msg *m, const struct sockaddr *from, size_t nmax,
			      uint8_t *buf, size_t stride)
{
	const struct dht_node *cl[DHT_K + 1];
	size_t n = dht_rt_closest(t, target, now, cl, nmax + 1), k = 0;
	uint8_t fc[18], nc[18];
	int fl = dht_addr_compact(from, fc);

	for (size_t i = 0; i < n && k < nmax; i++) {
		if (m->id && id_eq(cl[i]->id, m->id))
			continue;
		if (fl > 0 &&
		    dht_addr_compact((const struct sockaddr *)&cl[i]->addr, nc) == fl &&
		    compact_eq(nc, fc, fl))
			continue;
		memcpy(buf + k * stride, cl[i]->id, DHT_ID_LEN);
		dht_addr_compact((const struct sockaddr *)&cl[i]->addr, buf + k * stride + 20);
		k++;
	}
	return k * stride;
}

static void put_nodes(struct dht *dht, struct bencode_buf *b, const uint8_t *target,
		      const struct krpc_msg *m, const struct sockaddr *from, uint64_t now,
		      size_t nmax)
{
	uint8_t buf[DHT_K * 38];
	int want4 = m->want4, want6 = m->want6;

	if (!want4 && !want6) {
		want4 = from->sa_family == AF_INET;
		want6 = from->sa_family == AF_INET6;
	}
	if (dht->o.flags & DHT_F_NO_IPV6)
		want6 = 0;
	if (nmax > DHT_K)
		nmax = DHT_K;
	if (want4) {
		size_t len = compact_closest(&dht->t4, target, now, m, from, nmax, buf, 26);

		bencode_put_cstr(b, "nodes");
		bencode_put_str(b, buf, len);
	}
	if (want6) {
		size_t len = compact_closest(&dht->t6, target, now, m, from, nmax, buf, 38);

		bencode_put_cstr(b, "nodes6");
		bencode_put_str(b, buf, len);
	}
}

static void put_token(struct dht *dht, struct bencode_buf *b, const struct sockaddr *from)
{
	uint8_t tok[DHT_TOKEN_LEN];

	dht_token_make(&dht->tok, 0, from, tok);
	bencode_put_cstr(b, "token");
	bencode_put_str(b, tok, sizeof(tok));
}

/* Replies that carry nodes plus values or an item can outgrow one
 * datagram when both families are asked for (8 nodes6 = 304 bytes next to
 * a 1000-byte item): they are built with fewer nodes until they fit. */
static void handle_get_peers(struct dht *dht, const struct krpc_msg *m, const struct sockaddr *from,
			     socklen_t fromlen, uint64_t now, size_t nmax, struct bencode_buf *b);
static void handle_get(struct dht *dht, const struct krpc_msg *m, const struct sockaddr *from,
		       socklen_t fromlen, uint64_t now, size_t nmax, struct bencode_buf *b);

static void reply_fitted(struct dht *dht, const struct krpc_msg *m, const struct sockaddr *from,
			 socklen_t fromlen, uint64_t now)
{
	uint8_t pkt[DHT_MAX_PKT];
	struct bencode_buf b;

	for (size_t nmax = DHT_K;; nmax /= 2) {
		bencode_buf_init(&b, pkt, sizeof(pkt));
		if (m->q == KRPC_GET_PEERS)
			handle_get_peers(dht, m, from, fromlen, now, nmax, &b);
		else if (m->q == KRPC_GET)
			handle_get(dht, m, from, fromlen, now, nmax, &b);
		else {
			reply_head(dht, &b, from);
			put_nodes(dht, &b, m->target, m, from, now, nmax);
		}
		bencode_put_end(&b); /* r */
		dht_put_tail(dht, &b, m->t, m->tlen, "r");
		if (!b.err || !nmax)
			break;
	}
	dht_sendto(dht, &b, from, fromlen);
}

static void handle_get_peers(struct dht *dht, const struct krpc_msg *m, const struct sockaddr *from,
			     socklen_t fromlen, uint64_t now, size_t nmax, struct bencode_buf *b)
{
	struct dht_ih *e = dht_store_find_ih(&dht->store, m->info_hash);

	reply_head(dht, b, from);
	put_nodes(dht, b, m->info_hash, m, from, now, nmax);
	put_token(dht, b, from);
	if (e) {
		const struct dht_peer *claims[DHT_MAX_WK_OUT];
		unsigned int sent = 0, nclaims = 0;
		uint32_t start = 0;

		/* rotate the starting point so that every peer gets handed out */
		if (e->npeers)
			dht_random(dht, &start, sizeof(start));
		bencode_put_cstr(b, "values");
		bencode_put_list(b);
		for (uint32_t i = 0; i < e->npeers && sent < DHT_MAX_VALUES_OUT; i++) {
			const struct dht_peer *p = &e->peers[(start + i) % e->npeers];
			uint8_t c[18];
			int cl;

			if (p->addr.ss_family != from->sa_family || p->expires <= now)
				continue;
			cl = dht_addr_compact((const struct sockaddr *)&p->addr, c);
			bencode_put_str(b, c, (size_t)cl);
			sent++;
			if (p->wk && nclaims < DHT_MAX_WK_OUT)
				claims[nclaims++] = p;
		}
		bencode_put_end(b);
		/* weft's key claims of peers in "values" (docs/DHT.md) */
		if (nclaims) {
			bencode_put_cstr(b, "wk");
			bencode_put_list(b);
			for (unsigned int i = 0; i < nclaims; i++) {
				uint8_t c[18 + DHT_WK_LEN];
				int cl = dht_addr_compact((const struct sockaddr *)&claims[i]->addr, c);

				memcpy(c + cl, claims[i]->wk, DHT_WK_LEN);
				bencode_put_str(b, c, (size_t)cl + DHT_WK_LEN);
			}
			bencode_put_end(b);
		}
	}
}

static void handle_get(struct dht *dht, const struct krpc_msg *m, const struct sockaddr *from,
		       socklen_t fromlen, uint64_t now, size_t nmax, struct bencode_buf *b)
{
	const struct dht_item *it = dht_store_find_item(&dht->store, m->target);

	reply_head(dht, b, from);
	if (it && it->mut) {
		bencode_put_cstr(b, "k");
		bencode_put_str(b, it->k, DHT_PK_LEN);
	}
	put_nodes(dht, b, m->target, m, from, now, nmax);
	if (it && it->mut) {
		bencode_put_cstr(b, "seq");
		bencode_put_int(b, it->seq);
		bencode_put_cstr(b, "sig");
		bencode_put_str(b, it->sig, DHT_SIG_LEN);
	}
	put_token(dht, b, from);
	if (it && (!it->mut || !m->has_seq || it->seq > m->seq)) {
		bencode_put_cstr(b, "v");
		bencode_put_raw(b, it->v, it->vlen);
	}
}

/* Validate and store a put. Returns 0 or a KRPC error code with *msg set. */
static int do_put(struct dht *dht, const struct krpc_msg *m, const struct sockaddr *from,
		  uint64_t now, const char **msg)
{
	struct dht_item it;
	const struct dht_item *cur;
	const uint8_t *ip;
	int iplen, err;

	memset(&it, 0, sizeof(it));
	if (!dht_token_check(&dht->tok, from, m->token, m->token_len)) {
		*msg = "bad token";
		return DHT_ERR_PROTOCOL;
	}
	if (m->k) {
		if (dht_bep44_verify(m->k, m->sig, m->salt, m->salt_len, m->seq, m->v, m->vlen)) {
			*msg = "invalid signature";
			return DHT_ERR_BAD_SIG;
		}
		dht_bep44_target_mutable(it.target, m->k, m->salt, m->salt_len);
		cur = dht_store_find_item(&dht->store, it.target);
		if (cur && m->has_cas && m->cas != cur->seq) {
			*msg = "CAS mismatch";
			return DHT_ERR_CAS;
		}
		if (cur && m->seq < cur->seq) {
			*msg = "sequence number less than current";
			return DHT_ERR_SEQ;
		}
		it.mut = 1;
		memcpy(it.k, m->k, DHT_PK_LEN);
		memcpy(it.sig, m->sig, DHT_SIG_LEN);
		memcpy(it.salt, m->salt, m->salt_len);
		it.salt_len = m->salt_len;
		it.seq = m->seq;
	} else {
		dht_bep44_target_immutable(it.target, m->v, m->vlen);
	}
	memcpy(it.v, m->v, m->vlen);
	it.vlen = m->vlen;
	iplen = dht_addr_ip(from, &ip);
	memcpy(it.src, ip, (size_t)iplen);
	it.srclen = (uint8_t)iplen;
	err = dht_store_put_item(&dht->store, &it, now);
	if (err) {
		*msg = "storage full";
		return DHT_ERR_SERVER;
	}
	return 0;
}

void dht_serve_query(struct dht *dht, const struct krpc_msg *m, const struct sockaddr *from,
		     socklen_t fromlen, uint64_t now)
{
	uint8_t pkt[DHT_MAX_PKT];
	struct bencode_buf b;
	const char *msg = NULL;
	int code;

	bencode_buf_init(&b, pkt, sizeof(pkt));
	switch (m->q) {
	case KRPC_PING:
		reply_head(dht, &b, from);
		reply_finish(dht, &b, m, from, fromlen);
		break;
	case KRPC_FIND_NODE:
	case KRPC_GET_PEERS:
	case KRPC_GET:
		reply_fitted(dht, m, from, fromlen, now);
		break;
	case KRPC_ANNOUNCE_PEER: {
		struct sockaddr_storage peer;

		if (!dht_token_check(&dht->tok, from, m->token, m->token_len)) {
			dht_send_error(dht, m, DHT_ERR_PROTOCOL, "bad token", from, fromlen);
			return;
		}
		memcpy(&peer, from, fromlen);
		if (!m->implied_port) {
			uint16_t port = htons((uint16_t)m->port);

			if (from->sa_family == AF_INET)
				((struct sockaddr_in *)&peer)->sin_port = port;
			else
				((struct sockaddr_in6 *)&peer)->sin6_port = port;
		}
		if (dht_store_add_peer_wk(&dht->store, m->info_hash, (struct sockaddr *)&peer, m->wk, now)) {
			dht_send_error(dht, m, DHT_ERR_SERVER, "storage full", from, fromlen);
			return;
		}
		reply_head(dht, &b, from);
		reply_finish(dht, &b, m, from, fromlen);
		break;
	}
	case KRPC_PUT:
		code = do_put(dht, m, from, now, &msg);
		if (code) {
			dht_send_error(dht, m, code, msg, from, fromlen);
			return;
		}
		reply_head(dht, &b, from);
		reply_finish(dht, &b, m, from, fromlen);
		break;
	default:
		dht_send_error(dht, m, DHT_ERR_METHOD, "method unknown", from, fromlen);
		break;
	}
}

/* The budget slot of ip: its entry (*found 1), or the slot a new entry
 * takes: a free one, else the least recently seen of the probe window. */
static struct dht_budget *budget_slot(struct dht_budget *tab, uint32_t mask, const uint8_t *key,
				      const uint8_t *ip, size_t iplen, int *found)
{
	struct dht_budget *lru = NULL;
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t slot;

	crypto_shorthash(h, ip, (unsigned long long)iplen, key);
	memcpy(&slot, h, sizeof(slot));
	*found = 0;
	for (uint32_t i = 0; i < DHT_BUDGET_PROBE; i++) {
		struct dht_budget *c = &tab[(slot + i) & mask];

		if (c->iplen == iplen && !memcmp(c->ip, ip, iplen)) {
			*found = 1;
			return c;
		}
		if (!lru || !c->iplen || (lru->iplen && c->last_ms < lru->last_ms))
			lru = c;
	}
	return lru;
}

/* Double the budget table (DHT_BUDGET_START): every entry moves to its
 * slot in the larger one. Returns 0 or -ENOMEM (the table stays as it
 * was). An entry whose new window is full (improbable at half the load)
 * replaces the least recently seen there, as at the full size. */
static int budget_grow(struct dht *dht)
{
	uint32_t n = (dht->budget_mask + 1) * 2;
	struct dht_budget *tab = calloc(n, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	for (uint32_t i = 0; i <= dht->budget_mask; i++) {
		const struct dht_budget *o = &dht->budget[i];
		struct dht_budget *d;
		int found;

		if (!o->iplen)
			continue;
		d = budget_slot(tab, n - 1, dht->budget_key, o->ip, o->iplen, &found);
		if (d->iplen && d->last_ms > o->last_ms)
			continue;
		*d = *o;
	}
	free(dht->budget);
	dht->budget = tab;
	dht->budget_mask = n - 1;
	return 0;
}

/*
 * Per-source token bucket. Returns 1 when the query may be answered.
 * proven: this datagram carries a valid token, so its source address is
 * real; only overruns by such datagrams are reported to on_abuse.
 * The table is a keyed hash (SipHash) probed over DHT_BUDGET_PROBE slots:
 * O(1) per datagram; an unknown source takes a free slot of its window,
 * the table doubles up to budget_sources when there is none, and at that
 * size it takes the least recently seen of its slots.
 */
int dht_budget_take(struct dht *dht, const struct sockaddr *from, socklen_t fromlen,
		    uint64_t now, int proven)
{
	const uint8_t *ip;
	int iplen = dht_addr_ip(from, &ip);
	struct dht_budget *e;
	uint64_t cap = (uint64_t)dht->lim.budget_burst * 1000;
	int found;

	if (iplen <= 0)
		return 0;
	e = budget_slot(dht->budget, dht->budget_mask, dht->budget_key, ip, (size_t)iplen, &found);
	while (!found && e->iplen && dht->budget_mask + 1 < dht->lim.budget_sources &&
	       !budget_grow(dht))
		e = budget_slot(dht->budget, dht->budget_mask, dht->budget_key, ip, (size_t)iplen,
				&found);
	if (!found) {
		memset(e, 0, sizeof(*e));
		memcpy(e->ip, ip, (size_t)iplen);
		e->iplen = (uint8_t)iplen;
		e->tokens_milli = (uint32_t)cap;
		e->proven_milli = (uint32_t)cap;
		e->last_ms = now;
	}
	if (now > e->last_ms) {
		uint64_t add = (now - e->last_ms) * dht->lim.budget_rate;

		e->tokens_milli =
		    (uint32_t)(e->tokens_milli + add > cap ? cap : e->tokens_milli + add);
		e->proven_milli =
		    (uint32_t)(e->proven_milli + add > cap ? cap : e->proven_milli + add);
	}
	e->last_ms = now;
	if (e->tokens_milli >= 1000) {
		e->tokens_milli -= 1000;
		return 1;
	}
	dht->st.dropped_budget++;
	if (!proven) {
		dht->st.budget_unproven++;
		return 0;
	}
	/* Dropped either way; reported only when the proven queries alone
	 * overran their own budget (see struct dht_budget). */
	if (e->proven_milli >= 1000) {
		e->proven_milli -= 1000;
		return 0;
	}
	if (dht->o.on_abuse && (!e->last_report || now - e->last_report >= DHT_ABUSE_REPORT_MS)) {
		e->last_report = now;
		dht->st.abuse_reports++;
		dht->o.on_abuse(dht->o.abuse_arg, from, fromlen);
	}
	return 0;
}

/* A query whose token is valid for its source (announce_peer, put). */
int dht_query_proven(const struct dht *dht, const struct krpc_msg *m,
		     const struct sockaddr *from)
{
	if (m->q != KRPC_ANNOUNCE_PEER && m->q != KRPC_PUT)
		return 0;
	return m->token && dht_token_check(&dht->tok, from, m->token, m->token_len);
}
