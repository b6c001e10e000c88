// SPDX-License-Identifier: MIT
/*
 * DHT core: instance lifecycle, KRPC server side (answers to queries),
 * transactions, reply dispatch, timers and statistics. Lookups live in
 * lookup.c, persistence in persist.c.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dht/dht_int.h"

const char *const dht_stat_q_names[DHT_Q_COUNT] = {
    "ping", "find_node", "get_peers", "announce_peer", "get", "put", "other",
};

#define DHT_ERR_SLOTS 10
static const int dht_err_codes[DHT_ERR_SLOTS - 1] = {201, 202, 203, 204, 205, 206, 207, 301, 302};

static enum dht_stat_q stat_q(enum krpc_method q)
{
	switch (q) {
	case KRPC_PING:
		return DHT_Q_PING;
	case KRPC_FIND_NODE:
		return DHT_Q_FIND_NODE;
	case KRPC_GET_PEERS:
		return DHT_Q_GET_PEERS;
	case KRPC_ANNOUNCE_PEER:
		return DHT_Q_ANNOUNCE;
	case KRPC_GET:
		return DHT_Q_GET;
	case KRPC_PUT:
		return DHT_Q_PUT;
	default:
		return DHT_Q_OTHER;
	}
}

void dht_random(struct dht *dht, void *buf, size_t len)
{
	uint8_t seed[randombytes_SEEDBYTES];

	if (dht->o.rand) {
		dht->o.rand(dht->o.rand_arg, buf, len);
		return;
	}
	/* ChaCha20 stream keyed by BLAKE2b(state || counter): reproducible
	 * from opts.seed, distinct per call. */
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, sizeof(seed));
	crypto_generichash_update(&st, dht->rng, sizeof(dht->rng));
	crypto_generichash_update(&st, (const uint8_t *)&dht->rng_ctr, sizeof(dht->rng_ctr));
	crypto_generichash_final(&st, seed, sizeof(seed));
	dht->rng_ctr++;
	randombytes_buf_deterministic(buf, len, seed);
}

struct dht_table *dht_table_for(struct dht *dht, int family)
{
	if (family == AF_INET)
		return &dht->t4;
	if (family == AF_INET6)
		return &dht->t6;
	return NULL;
}

static void limits_default(struct dht_limits *l, const struct dht_limits *in)
{
#define LIM(f, d) l->f = in && in->f ? in->f : (d)
	LIM(max_infohashes, 4096);
	LIM(max_peers_per_hash, 128);
	LIM(max_peers, 32768);
	LIM(max_items, 4096);
	LIM(max_items_per_src, 64);
	LIM(max_lookups, 64);
	LIM(max_pending, 1024);
	LIM(budget_rate, 50);
	LIM(budget_burst, 200);
	LIM(budget_sources, 4096);
	LIM(query_timeout_ms, 2000);
	LIM(lookup_timeout_ms, 30000);
#undef LIM
	if (l->max_pending > 65535)
		l->max_pending = 65535;
	if (l->budget_sources > (1u << 20))
		l->budget_sources = 1u << 20;
	if (l->budget_sources < DHT_BUDGET_PROBE)
		l->budget_sources = DHT_BUDGET_PROBE;
	/* a power of two, so the slot is hash & mask */
	while (l->budget_sources & (l->budget_sources - 1))
		l->budget_sources += l->budget_sources & -l->budget_sources;
}

int dht_new(struct dht **out, const struct dht_opts *opts)
{
	struct dht *dht;
	uint8_t fresh[32];
	uint32_t n;

	*out = NULL;
	if (!opts || !opts->send || (!!opts->pk != !!opts->sk))
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	dht = calloc(1, sizeof(*dht));
	if (!dht)
		return -ENOMEM;
	dht->o = *opts;
	limits_default(&dht->lim, &opts->limits);
	dht->o.limits = dht->lim;
	dht->o.id = dht->o.pk = dht->o.sk = dht->o.seed = NULL;
	dht->o.version = NULL;
	if (opts->seed)
		memcpy(dht->rng, opts->seed, 32);
	else
		randombytes_buf(dht->rng, sizeof(dht->rng));
	if (opts->pk) {
		memcpy(dht->pk, opts->pk, DHT_PK_LEN);
		memcpy(dht->sk, opts->sk, DHT_SK_LEN);
		dht->has_key = 1;
	}
	memcpy(dht->version, "WF\0\1", 4);
	if (opts->version && strlen(opts->version) == 4)
		memcpy(dht->version, opts->version, 4);
	if (opts->id)
		memcpy(dht->id, opts->id, DHT_ID_LEN);
	else
		dht_random(dht, dht->id, DHT_ID_LEN);
	dht->t4.family = AF_INET;
	dht->t4.nb = 1;
	dht->t6.family = AF_INET6;
	dht->t6.nb = 1;
	dht_random(dht, fresh, sizeof(fresh));
	dht_token_init(&dht->tok, fresh, 0);
	dht_store_init(&dht->store, &dht->lim);
	dht->pend = dht_slots_new(dht->lim.max_pending, sizeof(*dht->pend));
	dht->pend_used = calloc((dht->lim.max_pending + 63) / 64, sizeof(uint64_t));
	dht->lks = dht_slots_new(dht->lim.max_lookups, sizeof(*dht->lks));
	n = dht->lim.budget_sources < DHT_BUDGET_START ? dht->lim.budget_sources
						       : DHT_BUDGET_START;
	dht->budget = calloc(n, sizeof(*dht->budget));
	dht->budget_mask = n - 1;
	dht_random(dht, dht->budget_key, sizeof(dht->budget_key));
	if (!dht->pend || !dht->pend_used || !dht->lks || !dht->budget) {
		dht_free(dht);
		return -ENOMEM;
	}
	/* the slots past max_pending in the last word are never free */
	if (dht->lim.max_pending % 64)
		dht->pend_used[dht->lim.max_pending / 64] = ~0ULL << (dht->lim.max_pending % 64);
	dht_random(dht, &dht->next_tid, sizeof(dht->next_tid));
	dht->last_put_seq = 0;
	dht->tok.rotated_ms = UINT64_MAX; /* set on first periodic */
	*out = dht;
	return 0;
}

void *dht_slots_new(size_t n, size_t size)
{
	void *p = mmap(NULL, n * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void dht_slots_del(void *base, size_t n, size_t size)
{
	if (base)
		munmap(base, n * size);
}

void dht_slots_trim(void *base, size_t size, uint32_t hw, uint32_t keep, uint32_t *touched)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	uint32_t from = hw > keep ? hw : keep;
	size_t start, end;

	if (*touched <= from)
		return;
	start = ((size_t)from * size + pg - 1) / pg * pg;
	end = ((size_t)*touched * size + pg - 1) / pg * pg;
	/* a failure only leaves the pages resident */
	if (end > start)
		(void)madvise((uint8_t *)base + start, end - start, MADV_DONTNEED);
	*touched = from;
}

/* Release a transaction slot and its retry copy. */
static void pend_release(struct dht *dht, struct dht_pending *p)
{
	uint32_t slot = (uint32_t)(p - dht->pend);

	p->in_use = 0;
	free(p->pkt);
	p->pkt = NULL;
	dht->pend_used[slot / 64] &= ~(1ULL << (slot % 64));
}

/* The lowest free transaction slot, or -1. */
static int64_t pend_take(struct dht *dht)
{
	for (uint32_t w = 0; w < (dht->lim.max_pending + 63) / 64; w++)
		if (~dht->pend_used[w]) {
			uint32_t slot = w * 64 + (uint32_t)__builtin_ctzll(~dht->pend_used[w]);

			dht->pend_used[w] |= 1ULL << (slot % 64);
			if (slot >= dht->pend_touched)
				dht->pend_touched = slot + 1;
			return slot;
		}
	return -1;
}

/* One past the highest transaction slot in use. */
static uint32_t pend_high(const struct dht *dht)
{
	for (uint32_t w = (dht->lim.max_pending + 63) / 64; w-- > 0;) {
		uint64_t u = dht->pend_used[w];

		if (w == dht->lim.max_pending / 64 && dht->lim.max_pending % 64)
			u &= ~(~0ULL << (dht->lim.max_pending % 64));
		if (u)
			return w * 64 + 64 - (uint32_t)__builtin_clzll(u);
	}
	return 0;
}

void dht_free(struct dht *dht)
{
	if (!dht)
		return;
	/* Every callback runs once: lookups still going end as cancelled,
	 * so what their callers handed us is released. */
	dht_lookup_cancel_all(dht);
	if (dht->pend)
		for (uint32_t i = 0; i < dht->pend_touched; i++)
			free(dht->pend[i].pkt);
	if (dht->lks)
		for (uint32_t i = 0; i < dht->lk_touched; i++) {
			free(dht->lks[i].peers);
			free(dht->lks[i].wks);
		}
	dht_store_free(&dht->store);
	dht_slots_del(dht->pend, dht->lim.max_pending, sizeof(*dht->pend));
	free(dht->pend_used);
	dht_slots_del(dht->lks, dht->lim.max_lookups, sizeof(*dht->lks));
	free(dht->budget);
	sodium_memzero(dht->sk, sizeof(dht->sk));
	free(dht);
}

const uint8_t *dht_id(const struct dht *dht)
{
	return dht->id;
}

/* ---- sending ---- */

static int dht_sendto(struct dht *dht, const struct bencode_buf *b, const struct sockaddr *to,
		      socklen_t tolen)
{
	if (b->err)
		return b->err;
	return dht->o.send(dht->o.send_arg, b->p, b->len, to, tolen);
}

/* Writes "1:t<n>:<t>1:v4:<v>1:y1:<y>e"; the transaction id starts 5 bytes
 * after the current length when tlen is 4 ("1:t4:"), see dht_send_query. */
static void put_tail(struct dht *dht, struct bencode_buf *b, const uint8_t *t, size_t tlen,
		     const char *y)
{
	bencode_put_cstr(b, "t");
	bencode_put_str(b, t, tlen);
	bencode_put_cstr(b, "v");
	bencode_put_str(b, dht->version, 4);
	bencode_put_cstr(b, "y");
	bencode_put_cstr(b, y);
	bencode_put_end(b);
}

int dht_send_query(struct dht *dht, enum krpc_method q, const struct sockaddr *to, socklen_t tolen,
		   const uint8_t *expect_id, struct dht_lookup *lk, const struct krpc_args *a,
		   uint64_t now)
{
	static const struct krpc_args none;
	uint8_t pkt[DHT_MAX_PKT], t[4];
	struct bencode_buf b;
	struct dht_pending *p;
	int64_t took;
	uint32_t slot;
	size_t tid_off;
	int err;

	if (!a)
		a = &none;
	dht->next_tid++;
	/* lowest free slot first, so the slots written follow the peak in
	 * flight (dht_slots_trim); the tid's high half still changes per query */
	took = pend_take(dht);
	if (took < 0)
		return -ENOSPC;
	slot = (uint32_t)took;
	p = &dht->pend[slot];
	memset(p, 0, sizeof(*p));
	p->tid = (dht->next_tid << 16) | slot;
	t[0] = (uint8_t)(p->tid >> 24);
	t[1] = (uint8_t)(p->tid >> 16);
	t[2] = (uint8_t)(p->tid >> 8);
	t[3] = (uint8_t)p->tid;

	bencode_buf_init(&b, pkt, sizeof(pkt));
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "a");
	bencode_put_dict(&b);
	if (a->has_cas) {
		bencode_put_cstr(&b, "cas");
		bencode_put_int(&b, a->cas);
	}
	bencode_put_cstr(&b, "id");
	bencode_put_str(&b, dht->id, DHT_ID_LEN);
	if (a->implied_port) {
		bencode_put_cstr(&b, "implied_port");
		bencode_put_int(&b, 1);
	}
	if (a->info_hash) {
		bencode_put_cstr(&b, "info_hash");
		bencode_put_str(&b, a->info_hash, DHT_ID_LEN);
	}
	if (a->k) {
		bencode_put_cstr(&b, "k");
		bencode_put_str(&b, a->k, DHT_PK_LEN);
	}
	if (a->port > 0) {
		bencode_put_cstr(&b, "port");
		bencode_put_int(&b, a->port);
	}
	if (a->salt && a->salt_len) {
		bencode_put_cstr(&b, "salt");
		bencode_put_str(&b, a->salt, a->salt_len);
	}
	if (a->has_seq) {
		bencode_put_cstr(&b, "seq");
		bencode_put_int(&b, a->seq);
	}
	if (a->sig) {
		bencode_put_cstr(&b, "sig");
		bencode_put_str(&b, a->sig, DHT_SIG_LEN);
	}
	if (a->target) {
		bencode_put_cstr(&b, "target");
		bencode_put_str(&b, a->target, DHT_ID_LEN);
	}
	if (a->token) {
		bencode_put_cstr(&b, "token");
		bencode_put_str(&b, a->token, a->token_len);
	}
	if (a->v) {
		bencode_put_cstr(&b, "v");
		bencode_put_raw(&b, a->v, a->vlen);
	}
	if (a->wk) {
		bencode_put_cstr(&b, "wk");
		bencode_put_str(&b, a->wk, DHT_WK_LEN);
	}
	/* BEP 32: a dual-stack node asks for both families in searches */
	if ((dht->o.flags & (DHT_F_DUAL_STACK | DHT_F_NO_IPV6)) == DHT_F_DUAL_STACK &&
	    (q == KRPC_FIND_NODE || q == KRPC_GET_PEERS || q == KRPC_GET)) {
		bencode_put_cstr(&b, "want");
		bencode_put_list(&b);
		bencode_put_cstr(&b, "n4");
		bencode_put_cstr(&b, "n6");
		bencode_put_end(&b);
	}
	bencode_put_end(&b);
	bencode_put_cstr(&b, "q");
	bencode_put_cstr(&b, krpc_method_name(q));
	if (dht->o.flags & DHT_F_READ_ONLY) {
		bencode_put_cstr(&b, "ro");
		bencode_put_int(&b, 1);
	}
	tid_off = b.len + 5; /* "1:t4:" */
	put_tail(dht, &b, t, 4, "q");
	err = dht_sendto(dht, &b, to, tolen);
	if (err < 0) {
		dht->pend_used[slot / 64] &= ~(1ULL << (slot % 64));
		return err;
	}
	/* keep a copy for the retry; without memory the query is simply not retried */
	p->pkt = malloc(b.len);
	if (p->pkt) {
		memcpy(p->pkt, b.p, b.len);
		p->pktlen = (uint16_t)b.len;
		p->tid_off = (uint16_t)tid_off;
	}
	p->in_use = 1;
	p->q = q;
	memcpy(&p->addr, to, tolen < sizeof(p->addr) ? tolen : sizeof(p->addr));
	p->addrlen = tolen;
	if (expect_id) {
		memcpy(p->id, expect_id, DHT_ID_LEN);
		p->has_id = 1;
		struct dht_table *tb = dht_table_for(dht, to->sa_family);
		struct dht_node *n = tb ? dht_rt_find(tb, dht->id, expect_id) : NULL;

		if (n)
			n->last_ping = now;
	}
	p->sent_ms = now;
	p->lk = lk;
	p->lk_gen = lk ? lk->gen : 0;
	dht->st.queries_out[stat_q(q)]++;
	return 0;
}

static void send_error(struct dht *dht, const struct krpc_msg *m, int code, const char *msg,
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
	put_tail(dht, &b, m->t, m->tlen, "e");
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
	put_tail(dht, b, m->t, m->tlen, "r");
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
		put_tail(dht, &b, m->t, m->tlen, "r");
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

static void handle_query(struct dht *dht, const struct krpc_msg *m, const struct sockaddr *from,
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
			send_error(dht, m, DHT_ERR_PROTOCOL, "bad token", from, fromlen);
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
			send_error(dht, m, DHT_ERR_SERVER, "storage full", from, fromlen);
			return;
		}
		reply_head(dht, &b, from);
		reply_finish(dht, &b, m, from, fromlen);
		break;
	}
	case KRPC_PUT:
		code = do_put(dht, m, from, now, &msg);
		if (code) {
			send_error(dht, m, code, msg, from, fromlen);
			return;
		}
		reply_head(dht, &b, from);
		reply_finish(dht, &b, m, from, fromlen);
		break;
	default:
		send_error(dht, m, DHT_ERR_METHOD, "method unknown", from, fromlen);
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
static int budget_take(struct dht *dht, const struct sockaddr *from, socklen_t fromlen,
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
		e->last_ms = now;
	}
	if (now > e->last_ms) {
		uint64_t add = (now - e->last_ms) * dht->lim.budget_rate;

		e->tokens_milli =
		    (uint32_t)(e->tokens_milli + add > cap ? cap : e->tokens_milli + add);
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
	if (dht->o.on_abuse && (!e->last_report || now - e->last_report >= DHT_ABUSE_REPORT_MS)) {
		e->last_report = now;
		dht->st.abuse_reports++;
		dht->o.on_abuse(dht->o.abuse_arg, from, fromlen);
	}
	return 0;
}

/* A query whose token is valid for its source (announce_peer, put). */
static int query_proven(const struct dht *dht, const struct krpc_msg *m,
			const struct sockaddr *from)
{
	if (m->q != KRPC_ANNOUNCE_PEER && m->q != KRPC_PUT)
		return 0;
	return m->token && dht_token_check(&dht->tok, from, m->token, m->token_len);
}

static void evidence(struct dht *dht, const struct sockaddr *from, socklen_t fromlen, int kind)
{
	if (dht->o.on_evidence)
		dht->o.on_evidence(dht->o.evidence_arg, from, fromlen, kind);
}

static int node_acceptable(struct dht *dht, const uint8_t *id, const struct sockaddr *from)
{
	const uint8_t *ip;
	int iplen = dht_addr_ip(from, &ip);

	if (iplen <= 0)
		return 0;
	if ((dht->o.flags & DHT_F_ENFORCE_BEP42) && !dht_bep42_check(id, ip, (size_t)iplen))
		return 0;
	return 1;
}

static unsigned int table_count(const struct dht_table *t)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < t->nb; i++)
		n += t->b[i].n;
	return n;
}

/* Re-key the routing tables after our id changed. */
static void rebuild_tables(struct dht *dht)
{
	struct dht_table *old = malloc(sizeof(*old));
	struct dht_table *tabs[2] = {&dht->t4, &dht->t6};

	if (!old)
		return;
	for (int k = 0; k < 2; k++) {
		*old = *tabs[k];
		memset(tabs[k]->b, 0, sizeof(tabs[k]->b));
		tabs[k]->nb = 1;
		for (unsigned int i = 0; i < old->nb; i++)
			for (uint8_t j = 0; j < old->b[i].n; j++) {
				struct dht_node *n = &old->b[i].nodes[j];
				struct dht_node *nn;

				dht_rt_heard(tabs[k], dht->id, n->id, (struct sockaddr *)&n->addr,
					     n->addrlen, n->replied ? RT_REPLY : RT_QUERY,
					     n->last_seen);
				nn = dht_rt_find(tabs[k], dht->id, n->id);
				if (nn)
					*nn = *n;
			}
	}
	free(old);
}

static void ip_vote(struct dht *dht, const uint8_t *c, size_t clen, const struct sockaddr *from)
{
	const uint8_t *rip;
	int riplen = dht_addr_ip(from, &rip);
	size_t iplen = clen - 2;
	unsigned int agree = 0, slot = dht->nvotes;

	if (!(dht->o.flags & DHT_F_DERIVE_ID) || riplen <= 0 || dht_bep42_is_local(c, iplen))
		return;
	for (unsigned int i = 0; i < dht->nvotes; i++) {
		if (dht->votes[i].replen == riplen &&
		    !memcmp(dht->votes[i].reporter, rip, riplen)) {
			slot = i;
			break;
		}
	}
	if (slot == DHT_IP_VOTES) { /* full: drop the oldest vote */
		memmove(&dht->votes[0], &dht->votes[1], sizeof(dht->votes[0]) * (DHT_IP_VOTES - 1));
		slot = DHT_IP_VOTES - 1;
	} else if (slot == dht->nvotes) {
		dht->nvotes++;
	}
	memcpy(dht->votes[slot].ip, c, iplen);
	dht->votes[slot].iplen = (uint8_t)iplen;
	memcpy(dht->votes[slot].reporter, rip, (size_t)riplen);
	dht->votes[slot].replen = (uint8_t)riplen;
	for (unsigned int i = 0; i < dht->nvotes; i++)
		if (dht->votes[i].iplen == iplen && !memcmp(dht->votes[i].ip, c, iplen))
			agree++;
	if (agree >= DHT_IP_VOTE_QUORUM && !dht_bep42_check(dht->id, c, iplen)) {
		uint8_t tail[DHT_ID_LEN], r;

		dht_random(dht, tail, sizeof(tail));
		dht_random(dht, &r, 1);
		dht_bep42_make_id(dht->id, c, iplen, r, tail);
		rebuild_tables(dht);
	}
}

static struct dht_pending *pending_match(struct dht *dht, const struct krpc_msg *m,
					 const struct sockaddr *from)
{
	struct dht_pending *p;
	uint32_t tid;

	if (m->tlen != 4)
		return NULL;
	tid = (uint32_t)m->t[0] << 24 | (uint32_t)m->t[1] << 16 | (uint32_t)m->t[2] << 8 | m->t[3];
	if ((tid & 0xffff) >= dht->lim.max_pending)
		return NULL;
	p = &dht->pend[tid & 0xffff];
	if (!p->in_use || !dht_addr_eq((struct sockaddr *)&p->addr, from))
		return NULL;
	if (p->tid != tid && !(p->attempt && p->old_tid == tid))
		return NULL;
	return p;
}

int dht_input(struct dht *dht, const uint8_t *buf, size_t len, const struct sockaddr *from,
	      socklen_t fromlen, uint64_t now_ms)
{
	struct krpc_msg m;
	struct dht_pending *p;
	struct dht_table *tb = dht_table_for(dht, from->sa_family);

	if (!tb || fromlen > sizeof(struct sockaddr_storage))
		return -EINVAL;
	if (krpc_parse(&m, buf, len)) {
		dht->st.dropped_malformed++;
		/* garbage costs budget like a query, so a flood of it reaches
		 * on_abuse too (and is also counted in dropped_budget) */
		if (!budget_take(dht, from, fromlen, now_ms, 0))
			return -EINVAL;
		if (m.t && m.err_code && m.y != 'r' && m.y != 'e' &&
		    !(dht->o.flags & DHT_F_READ_ONLY))
			send_error(dht, &m, m.err_code, m.err_msg, from, fromlen);
		return -EINVAL;
	}
	if (m.y == 'q') {
		if (dht->o.flags & DHT_F_READ_ONLY)
			return 0;
		int proven = query_proven(dht, &m, from);

		if (!budget_take(dht, from, fromlen, now_ms, proven))
			return -EAGAIN;
		if (proven)
			evidence(dht, from, fromlen, DHT_EV_TOKEN);
		dht->st.queries_in[stat_q(m.q)]++;
		if (!m.ro && node_acceptable(dht, m.id, from))
			dht_rt_heard(tb, dht->id, m.id, from, fromlen, RT_QUERY, now_ms);
		handle_query(dht, &m, from, fromlen, now_ms);
		return 0;
	}
	p = pending_match(dht, &m, from);
	if (!p)
		return -EINVAL;
	/* Our transaction id came back from the address we sent it to. */
	evidence(dht, from, fromlen, DHT_EV_REPLY);
	if (m.y == 'e') {
		dht->st.errors_in++;
		pend_release(dht, p);
		if (p->lk)
			dht_lk_error(dht, p, &m, now_ms);
		return 0;
	}
	dht->st.replies_in++;
	if (p->has_id && memcmp(p->id, m.id, DHT_ID_LEN)) {
		/* answered with another id: the entry we had is stale */
		dht_rt_failed(tb, dht->id, p->id, from);
	}
	if (node_acceptable(dht, m.id, from)) {
		unsigned int before = table_count(&dht->t4) + table_count(&dht->t6);

		dht_rt_heard(tb, dht->id, m.id, from, fromlen, RT_REPLY, now_ms);
		if (!before)
			dht->want_bootstrap = 1;
	}
	if (m.ip) {
		ip_vote(dht, m.ip, m.ip_len, from);
		if (dht->o.on_reflexive && (m.ip_len == 6 || m.ip_len == 18))
			dht->o.on_reflexive(dht->o.reflexive_arg, from, fromlen, m.ip, m.ip_len);
	}
	pend_release(dht, p);
	if (p->lk)
		dht_lk_reply(dht, p, &m, from, fromlen, now_ms);
	return 0;
}

static void bootstrap_done(void *arg, const struct dht_result *res)
{
	(void)arg;
	(void)res;
}

/* The self-lookup ended: fill the buckets it did not (Kademlia section 2.3:
 * "u refreshes all k-buckets further away than its closest neighbor").
 * Without it the far buckets hold only who happened to query us until the
 * 15-minute refresh, and every lookup takes more hops (docs/DHT.md). */
static void self_lookup_done(void *arg, const struct dht_result *res)
{
	struct dht *dht = arg;

	if (res->status != -ECANCELED)
		dht->want_refresh = 1;
}

/* One find_node for a random id in each bucket that is not full, but the
 * last (ours): at most DHT_MAX_BUCKETS lookups, in practice log2(n/8). */
static void refresh_thin(struct dht *dht, struct dht_table *t, uint64_t now)
{
	for (unsigned int i = 0; i + 1 < t->nb; i++) {
		struct dht_bucket *b = &t->b[i];
		uint8_t rnd[DHT_ID_LEN], target[DHT_ID_LEN];

		if (b->n >= DHT_K)
			continue;
		dht_random(dht, rnd, sizeof(rnd));
		dht_rt_random_in_bucket(t, dht->id, i, rnd, target);
		b->last_changed = now;
		if (dht_find_node(dht, target, now, bootstrap_done, NULL))
			break; /* no lookup slot left: the 15-minute refresh will do it */
	}
}

static void maintain(struct dht *dht, uint64_t now)
{
	struct dht_table *tabs[2] = {&dht->t4, &dht->t6};
	unsigned int pings = 0, total = table_count(&dht->t4) + table_count(&dht->t6);

	/* Fill the table: look ourselves up when it is young or thin, and
	 * again 1, 2, 4, 8 and then every 15 minutes: a node that joined a
	 * smaller network learns that its neighbourhood filled up (its own
	 * bucket splits), which the 15-minute bucket refresh never does for a
	 * bucket whose nodes keep answering (jech/dht's neighbourhood
	 * maintenance does the same). Each ends with refresh_thin(). */
	if (!dht->self_gap)
		dht->self_gap = 60000;
	if (total && (dht->want_bootstrap || now - dht->last_bootstrap >= dht->self_gap ||
		      (total < 2 * DHT_K && now - dht->last_bootstrap > 60000))) {
		if (!dht->want_bootstrap && now - dht->last_bootstrap >= dht->self_gap)
			dht->self_gap = dht->self_gap * 2 < DHT_REFRESH_MS ? dht->self_gap * 2
									 : DHT_REFRESH_MS;
		dht->want_bootstrap = 0;
		dht->last_bootstrap = now;
		dht_find_node(dht, dht->id, now, self_lookup_done, dht);
	}
	if (dht->want_refresh) {
		dht->want_refresh = 0;
		refresh_thin(dht, &dht->t4, now);
		if (!(dht->o.flags & DHT_F_NO_IPV6))
			refresh_thin(dht, &dht->t6, now);
	}
	for (int k = 0; k < 2; k++) {
		struct dht_table *t = tabs[k];

		for (unsigned int i = 0; i < t->nb; i++) {
			struct dht_bucket *b = &t->b[i];

			/* ping questionable nodes (at most 8 per round, 15 s apart each) */
			for (uint8_t j = 0; j < b->n && pings < 8; j++) {
				struct dht_node *n = &b->nodes[j];

				if (dht_rt_node_good(n, now) || now - n->last_ping < 15000)
					continue;
				if (!dht_send_query(dht, KRPC_PING, (struct sockaddr *)&n->addr,
						    n->addrlen, n->id, NULL, NULL, now))
					pings++;
			}
			if (b->n && now - b->last_changed >= DHT_REFRESH_MS) {
				uint8_t rnd[DHT_ID_LEN], target[DHT_ID_LEN];

				dht_random(dht, rnd, sizeof(rnd));
				dht_rt_random_in_bucket(t, dht->id, i, rnd, target);
				b->last_changed = now;
				dht_find_node(dht, target, now, bootstrap_done, NULL);
			}
		}
	}
}

/* Resend a timed-out query with a fresh transaction id (same slot, so the
 * O(1) lookup by tid still works). Returns 1 when the retry went out. */
static int retry_query(struct dht *dht, struct dht_pending *p, uint64_t now)
{
	uint32_t slot = p->tid & 0xffff, tid;

	dht->next_tid++;
	tid = (dht->next_tid << 16) | slot;
	if (tid == p->tid)
		tid ^= 0x10000;
	p->pkt[p->tid_off] = (uint8_t)(tid >> 24);
	p->pkt[p->tid_off + 1] = (uint8_t)(tid >> 16);
	p->pkt[p->tid_off + 2] = (uint8_t)(tid >> 8);
	p->pkt[p->tid_off + 3] = (uint8_t)tid;
	if (dht->o.send(dht->o.send_arg, p->pkt, p->pktlen, (struct sockaddr *)&p->addr,
			p->addrlen) < 0)
		return 0;
	p->old_tid = p->tid;
	p->tid = tid;
	p->attempt++;
	p->sent_ms = now;
	dht->st.retries++;
	dht->st.queries_out[stat_q(p->q)]++;
	if (p->lk)
		dht_lk_retry(dht, p, now);
	return 1;
}

/* How long attempt p->attempt waits. After the first retry, a query to
 * one of its lookup's k closest candidates waits half a timeout, twice
 * (DHT_QUERY_ATTEMPTS_CLOSE = 3 attempts): three attempts in the same two
 * timeouts as everyone else's two, so a dead node costs no more time. */
static uint64_t attempt_timeout(struct dht *dht, struct dht_pending *p)
{
	if (p->attempt >= 1 && p->lk && dht_lk_is_close(dht, p))
		return dht->lim.query_timeout_ms / 2;
	return dht->lim.query_timeout_ms;
}

int dht_periodic(struct dht *dht, uint64_t now, uint64_t *next_ms)
{
	uint64_t next = now + 1000;

	if (dht->tok.rotated_ms == UINT64_MAX) {
		dht->tok.rotated_ms = now;
	} else if (now - dht->tok.rotated_ms >= DHT_TOKEN_ROTATE_MS) {
		uint8_t fresh[32];

		dht_random(dht, fresh, sizeof(fresh));
		dht_token_rotate(&dht->tok, fresh, now);
	}
	for (uint32_t i = 0; i < dht->pend_touched; i++) {
		struct dht_pending *p = &dht->pend[i];
		uint64_t dl;

		if (!(dht->pend_used[i / 64] & (1ULL << (i % 64))) || !p->in_use)
			continue;
		dl = p->sent_ms + attempt_timeout(dht, p);
		if (dl > now) {
			if (dl < next)
				next = dl;
			continue;
		}
		if (p->pkt &&
		    (p->attempt + 1 < DHT_QUERY_ATTEMPTS ||
		     (p->attempt + 1 < DHT_QUERY_ATTEMPTS_CLOSE && p->lk && dht_lk_is_close(dht, p))) &&
		    retry_query(dht, p, now)) {
			dl = now + attempt_timeout(dht, p);
			if (dl < next)
				next = dl;
			continue;
		}
		pend_release(dht, p);
		dht->st.timeouts++;
		if (p->has_id) {
			struct dht_table *tb = dht_table_for(dht, p->addr.ss_family);

			if (tb)
				dht_rt_failed(tb, dht->id, p->id, (struct sockaddr *)&p->addr);
		}
		if (p->lk)
			dht_lk_fail(dht, p, now);
	}
	dht_lk_timers(dht, now, &next);
	if (now - dht->last_expire >= 10000) {
		dht->last_expire = now;
		dht_store_expire(&dht->store, now);
	}
	if (dht->want_bootstrap || now - dht->last_maint >= 5000) {
		dht->last_maint = now;
		maintain(dht, now);
		dht_slots_trim(dht->pend, sizeof(*dht->pend), pend_high(dht), DHT_PEND_KEEP,
			       &dht->pend_touched);
		dht_lk_trim(dht);
	}
	if (next_ms)
		*next_ms = next;
	return 0;
}

int dht_add_node(struct dht *dht, const struct sockaddr *addr, socklen_t len, uint64_t now_ms)
{
	if (!dht_table_for(dht, addr->sa_family) || len > sizeof(struct sockaddr_storage))
		return -EINVAL;
	return dht_send_query(dht, KRPC_PING, addr, len, NULL, NULL, NULL, now_ms);
}

unsigned int dht_node_count(const struct dht *dht)
{
	return table_count(&dht->t4) + table_count(&dht->t6);
}

void dht_set_read_only(struct dht *dht, int on)
{
	if (!on == !(dht->o.flags & DHT_F_READ_ONLY))
		return;
	if (on)
		dht->o.flags |= DHT_F_READ_ONLY;
	else
		dht->o.flags &= ~(unsigned int)DHT_F_READ_ONLY;
	dht->st.read_only_switches++;
}

void dht_get_stats(const struct dht *dht, struct dht_stats *st)
{
	*st = dht->st;
	st->read_only = !!(dht->o.flags & DHT_F_READ_ONLY);
	memcpy(st->id, dht->id, DHT_ID_LEN);
	st->buckets4 = dht->t4.nb;
	st->buckets6 = dht->t6.nb;
	st->nodes4 = st->nodes6 = st->good4 = st->good6 = 0;
	for (unsigned int i = 0; i < dht->t4.nb; i++) {
		st->bucket_nodes4[i] = dht->t4.b[i].n;
		st->nodes4 += dht->t4.b[i].n;
		for (uint8_t j = 0; j < dht->t4.b[i].n; j++)
			st->good4 +=
			    (dht->t4.b[i].nodes[j].replied && !dht->t4.b[i].nodes[j].fails);
	}
	for (unsigned int i = 0; i < dht->t6.nb; i++) {
		st->bucket_nodes6[i] = dht->t6.b[i].n;
		st->nodes6 += dht->t6.b[i].n;
		for (uint8_t j = 0; j < dht->t6.b[i].n; j++)
			st->good6 +=
			    (dht->t6.b[i].nodes[j].replied && !dht->t6.b[i].nodes[j].fails);
	}
	st->infohashes = dht->store.nih;
	st->peers = dht->store.npeers;
	st->items = dht->store.nitems;
	st->lookups = 0;
	for (uint32_t i = 0; i < dht->lk_touched; i++)
		st->lookups += (unsigned int)dht->lks[i].in_use;
}
