// SPDX-License-Identifier: MIT
/*
 * DHT core, the hub of the module: instance lifecycle, input dispatch
 * (queries to serve.c, answers and errors to their transaction and
 * lookup), BEP 42 id voting, timers (retries, timeouts, table maintenance)
 * and statistics. It calls its parts and no part calls it back: answers
 * in serve.c, transactions and sending in txn.c, lookups in lookup.c, the
 * routing table in routing.c, the random stream in rng.c. Persistence
 * (persist.c) and the control handlers (dht_ctl.c) sit above it.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht_int.h"

const char *const dht_stat_q_names[DHT_Q_COUNT] = {
    "ping", "find_node", "get_peers", "announce_peer", "get", "put", "other",
};

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
	LIM(query_timeout_min_ms, 500);
	LIM(lookup_timeout_ms, 30000);
#undef LIM
	if (l->query_timeout_min_ms > l->query_timeout_ms)
		l->query_timeout_min_ms = l->query_timeout_ms;
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

void dht_cancel_all(struct dht *dht)
{
	if (dht)
		dht_lookup_cancel_all(dht);
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

static void evidence(struct dht *dht, const struct sockaddr *from, socklen_t fromlen, int kind)
{
	if (dht->o.on_evidence)
		dht->o.on_evidence(dht->o.evidence_arg, from, fromlen, kind);
}

/* The query timeout's estimator (RFC 6298 section 2, in microseconds):
 * srtt and rttvar from the round trips of answered first attempts. */
static void rtt_sample(struct dht *dht, uint64_t ms)
{
	int64_t r = (int64_t)(ms > 60000 ? 60000 : ms) * 1000;

	if (!dht->rtt_n) {
		dht->srtt_us = r;
		dht->rttvar_us = r / 2;
	} else {
		int64_t d = dht->srtt_us - r;

		dht->rttvar_us = (3 * dht->rttvar_us + (d < 0 ? -d : d)) / 4;
		dht->srtt_us = (7 * dht->srtt_us + r) / 8;
	}
	dht->rtt_n++;
}

uint64_t dht_query_timeout(const struct dht *dht)
{
	uint64_t rto;

	if (!dht->rtt_n)
		return dht->lim.query_timeout_ms;
	/* + 1 ms: the clock's granularity (G) */
	rto = (uint64_t)(dht->srtt_us + 4 * dht->rttvar_us) / 1000 + 1;
	if (rto < dht->lim.query_timeout_min_ms)
		rto = dht->lim.query_timeout_min_ms;
	return rto < dht->lim.query_timeout_ms ? rto : dht->lim.query_timeout_ms;
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
		if (!dht_budget_take(dht, from, fromlen, now_ms, 0))
			return -EINVAL;
		if (m.t && m.err_code && m.y != 'r' && m.y != 'e' &&
		    !(dht->o.flags & DHT_F_READ_ONLY))
			dht_send_error(dht, &m, m.err_code, m.err_msg, from, fromlen);
		return -EINVAL;
	}
	if (m.y == 'q') {
		if (dht->o.flags & DHT_F_READ_ONLY)
			return 0;
		int proven = dht_query_proven(dht, &m, from);

		if (!dht_budget_take(dht, from, fromlen, now_ms, proven))
			return -EAGAIN;
		if (proven)
			evidence(dht, from, fromlen, DHT_EV_TOKEN);
		dht->st.queries_in[dht_stat_q(m.q)]++;
		if (!m.ro && node_acceptable(dht, m.id, from))
			dht_rt_heard(tb, dht->id, m.id, from, fromlen, RT_QUERY, now_ms);
		else if (m.ro && dht_rt_ro_hold(tb, dht->id, m.id, from))
			dht->st.ro_forgotten++; /* read-only since it joined, or forged */
		dht_serve_query(dht, &m, from, fromlen, now_ms);
		return 0;
	}
	p = dht_pend_match(dht, &m, from);
	if (!p)
		return -EINVAL;
	/* Our transaction id came back from the address we sent it to. */
	evidence(dht, from, fromlen, DHT_EV_REPLY);
	if (m.y == 'e') {
		dht->st.errors_in++;
		dht_pend_release(dht, p);
		if (p->lk)
			dht_lk_error(dht, p, &m, now_ms);
		return 0;
	}
	dht->st.replies_in++;
	/* Karn: only an answer to a query sent once times the round trip. */
	if (!p->attempt && now_ms >= p->sent_ms)
		rtt_sample(dht, now_ms - p->sent_ms);
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
	dht_pend_release(dht, p);
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

/* Resend a timed-out query (txn.c); its lookup frees the query's alpha
 * slot. Returns 1 when the retry went out. */
static int retry_query(struct dht *dht, struct dht_pending *p, uint64_t now)
{
	if (!dht_pend_retry(dht, p, now))
		return 0;
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
	uint64_t rto = dht_query_timeout(dht);

	if (p->attempt >= 1 && p->lk && dht_lk_is_close(dht, p))
		return rto / 2;
	return rto;
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
		dht_pend_release(dht, p);
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
		dht_pend_trim(dht);
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

int dht_read_only(const struct dht *dht)
{
	return !!(dht->o.flags & DHT_F_READ_ONLY);
}

void dht_set_read_only(struct dht *dht, int on)
{
	if (!on == !(dht->o.flags & DHT_F_READ_ONLY))
		return;
	if (on) {
		dht->o.flags |= DHT_F_READ_ONLY;
		/* Look ourselves up at once: the queries carry ro=1, so the
		 * nodes that took us in while we still looked reachable, and
		 * would hand us out, stop now (dht_rt_ro_hold) rather than
		 * after their pings have failed. */
		dht->want_bootstrap = 1;
	} else
		dht->o.flags &= ~(unsigned int)DHT_F_READ_ONLY;
	dht->st.read_only_switches++;
}

/* What good4/good6 count: answered us, not failing since, not held. */
static unsigned int counted_good(const struct dht_node *n)
{
	return n->replied && !n->fails && !n->ro_held;
}

unsigned int dht_store_list(const struct dht *dht, uint64_t now, struct dht_stored *out,
			    unsigned int max)
{
	return dht_store_list_int(&dht->store, now, out, max);
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
			st->good4 += counted_good(&dht->t4.b[i].nodes[j]);
	}
	for (unsigned int i = 0; i < dht->t6.nb; i++) {
		st->bucket_nodes6[i] = dht->t6.b[i].n;
		st->nodes6 += dht->t6.b[i].n;
		for (uint8_t j = 0; j < dht->t6.b[i].n; j++)
			st->good6 += counted_good(&dht->t6.b[i].nodes[j]);
	}
	st->infohashes = dht->store.nih;
	st->peers = dht->store.npeers;
	st->items = dht->store.nitems;
	st->store_bytes = dht_store_bytes(&dht->store);
	st->lookups = 0;
	for (uint32_t i = 0; i < dht->lk_touched; i++)
		st->lookups += (unsigned int)dht->lks[i].in_use;
}
