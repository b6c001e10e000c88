// SPDX-License-Identifier: MIT
/*
 * Iterative lookups (Kademlia / BEP 5): candidates sorted by XOR distance,
 * alpha = 3 queries in flight, done when the k closest candidates that did
 * not fail have all answered. Announce and put add a store phase towards
 * the k closest nodes that gave a write token. Ping is a one-node "lookup"
 * so every operation shares one completion path.
 *
 * Timeouts: a query unanswered after query_timeout_ms is resent once (new
 * transaction id: dht.c decides, txn.c resends). During that retry the candidate no longer holds
 * one of the alpha slots, so the search moves on to the next candidate,
 * but the lookup does not converge before the retry is answered or times
 * out too; only then is the candidate marked failed.
 *
 * get_peers and get also read our own storage: a node that was announced
 * to (or stores the item) finds it even when no other node has it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht_int.h"

static enum krpc_method search_method(enum dht_op op)
{
	switch (op) {
	case DHT_OP_GET_PEERS:
	case DHT_OP_ANNOUNCE:
		return KRPC_GET_PEERS;
	case DHT_OP_GET:
	case DHT_OP_PUT_IMMUTABLE:
	case DHT_OP_PUT_MUTABLE:
		return KRPC_GET;
	case DHT_OP_PING:
		return KRPC_PING;
	default:
		return KRPC_FIND_NODE;
	}
}

static struct dht_cand *cand_find(struct dht_lookup *lk, const struct sockaddr *sa)
{
	for (unsigned int i = 0; i < lk->ncands; i++)
		if (dht_addr_eq((struct sockaddr *)&lk->cands[i].addr, sa))
			return &lk->cands[i];
	return NULL;
}

/* Insert keeping distance order; drops the farthest idle candidate when full. */
static void cand_add(struct dht *dht, struct dht_lookup *lk, const uint8_t *id,
		     const struct sockaddr *sa, socklen_t salen, uint8_t hop)
{
	unsigned int pos;

	if (!memcmp(id, dht->id, DHT_ID_LEN) || cand_find(lk, sa))
		return;
	if (sa->sa_family == AF_INET6 && (dht->o.flags & DHT_F_NO_IPV6))
		return;
	for (unsigned int i = 0; i < lk->ncands; i++)
		if (!memcmp(lk->cands[i].id, id, DHT_ID_LEN) &&
		    lk->cands[i].addr.ss_family == sa->sa_family)
			return;
	if (lk->ncands == DHT_MAX_LOOKUP_CANDS) {
		struct dht_cand *last = &lk->cands[lk->ncands - 1];

		if (!dht_id_closer(lk->target, id, last->id) || last->state == CAND_INFLIGHT)
			return;
		lk->ncands--;
	}
	pos = lk->ncands;
	while (pos > 0 && dht_id_closer(lk->target, id, lk->cands[pos - 1].id))
		pos--;
	memmove(&lk->cands[pos + 1], &lk->cands[pos], sizeof(lk->cands[0]) * (lk->ncands - pos));
	memset(&lk->cands[pos], 0, sizeof(lk->cands[pos]));
	memcpy(lk->cands[pos].id, id, DHT_ID_LEN);
	memcpy(&lk->cands[pos].addr, sa, salen);
	lk->cands[pos].addrlen = salen;
	lk->cands[pos].hop = hop;
	lk->cands[pos].seq = -1;
	lk->ncands++;
}

/* The lookup's result so far into r (nodes: DHT_K slots). */
static void lk_result(struct dht_lookup *lk, int status, struct dht_result *r,
		      struct dht_node_info *nodes)
{
	size_t nn = 0;
	unsigned int hops = 0;

	memset(r, 0, sizeof(*r));
	for (unsigned int i = 0; i < lk->ncands && nn < DHT_K; i++) {
		const struct dht_cand *c = &lk->cands[i];

		if (c->state != CAND_DONE)
			continue;
		memcpy(nodes[nn].id, c->id, DHT_ID_LEN);
		nodes[nn].addr = c->addr;
		nodes[nn].addrlen = c->addrlen;
		memcpy(nodes[nn].token, c->token, c->token_len);
		nodes[nn].token_len = c->token_len;
		if (c->hop > hops)
			hops = c->hop;
		if (!nn)
			r->hops_closest = c->hop;
		nn++;
	}
	r->op = lk->op;
	r->status = status;
	memcpy(r->target, lk->target, DHT_ID_LEN);
	r->visited = lk->visited;
	r->queried = lk->queried;
	r->hops = hops;
	r->nodes = nodes;
	r->nnodes = nn;
	r->peers = lk->peers;
	r->npeers = lk->npeers;
	r->wks = lk->wks;
	r->nwks = lk->nwks;
	r->held = lk->held;
	r->stored = 0;
	for (unsigned int i = 0; i < lk->ncands; i++)
		r->stored += lk->cands[i].stored;
	if (lk->found || lk->op == DHT_OP_PUT_IMMUTABLE || lk->op == DHT_OP_PUT_MUTABLE) {
		r->value = lk->v;
		r->value_len = lk->vlen;
		r->seq = lk->seq;
		r->mutable_item = lk->want_mutable;
		if (lk->want_mutable) {
			r->pk = lk->pk;
			r->sig = lk->sig;
			r->salt = lk->salt;
			r->salt_len = lk->salt_len;
		}
	}
	if (lk->op == DHT_OP_PING && lk->ncands)
		r->rtt_ms = (uint32_t)(lk->deadline - lk->started); /* set by the ping reply */
}

/* dht_get_first: the first valid item is known; tell the caller once. */
static void lk_first(struct dht_lookup *lk)
{
	struct dht_node_info nodes[DHT_K];
	struct dht_result r;
	dht_done_fn fn = lk->first_cb;

	if (!fn || !lk->found)
		return;
	lk->first_cb = NULL;
	lk->first_given = 1;
	lk_result(lk, 0, &r, nodes);
	fn(lk->arg, &r);
}

static void lk_finish(struct dht *dht, struct dht_lookup *lk, int status)
{
	struct dht_node_info nodes[DHT_K];
	struct dht_result r;

	lk_result(lk, status, &r, nodes);
	/* The slot stays taken until the callback returned: a callback that
	 * starts the next lookup (announce schedules, finds that go on) gets
	 * another slot. Freed first and reused by it, this lookup's arrays
	 * leaked, and the new lookup's (an announce_to's batch) were freed
	 * under it here: a use after free. */
	lk->phase = LK_DONE;
	if (lk->cb)
		lk->cb(lk->arg, &r);
	free(lk->peers);
	lk->peers = NULL;
	lk->npeers = 0;
	free(lk->wks);
	lk->wks = NULL;
	lk->nwks = 0;
	free(lk->batch);
	lk->batch = NULL;
	lk->nbatch = 0;
	lk->in_use = 0;
}

void dht_lookup_cancel_all(struct dht *dht)
{
	for (uint32_t i = 0; dht->lks && i < dht->lk_touched; i++)
		if (dht->lks[i].in_use && dht->lks[i].phase != LK_DONE)
			lk_finish(dht, &dht->lks[i], -ECANCELED);
}

static void store_phase(struct dht *dht, struct dht_lookup *lk, uint64_t now)
{
	struct krpc_args a;
	unsigned int n = 0;
	enum krpc_method q = lk->op == DHT_OP_ANNOUNCE ? KRPC_ANNOUNCE_PEER : KRPC_PUT;

	memset(&a, 0, sizeof(a));
	if (lk->op == DHT_OP_ANNOUNCE) {
		a.info_hash = lk->target;
		a.port = lk->port;
		a.implied_port = lk->implied_port;
		a.wk = lk->has_wk ? lk->wk : NULL;
	} else {
		a.v = lk->v;
		a.vlen = lk->vlen;
	}
	if (lk->op == DHT_OP_PUT_MUTABLE && lk->presigned) {
		a.k = lk->pk;
		a.sig = lk->sig;
		a.salt = lk->salt;
		a.salt_len = lk->salt_len;
		a.has_seq = 1;
		a.seq = lk->seq;
	} else if (lk->op == DHT_OP_PUT_MUTABLE) {
		int64_t seq = lk->max_seen_seq + 1;

		if (seq <= dht->last_put_seq)
			seq = dht->last_put_seq + 1;
		if (lk->cas && lk->max_seen_seq >= 0) {
			a.has_cas = 1;
			a.cas = lk->max_seen_seq;
		}
		lk->seq = seq;
		dht->last_put_seq = seq;
		if (dht_bep44_sign(lk->sig, dht->sk, lk->salt, lk->salt_len, seq, lk->v,
				   lk->vlen)) {
			lk_finish(dht, lk, -EINVAL);
			return;
		}
		a.k = dht->pk;
		a.sig = lk->sig;
		a.salt = lk->salt;
		a.salt_len = lk->salt_len;
		a.has_seq = 1;
		a.seq = seq;
	}
	lk->phase = LK_STORE;
	lk->inflight = 0;
	for (unsigned int i = 0; i < lk->ncands && n < DHT_K; i++) {
		struct dht_cand *c = &lk->cands[i];

		if (c->state != CAND_DONE || !c->token_len)
			continue;
		n++;
		if (lk->presigned && (lk->put_flags & DHT_PUT_REFRESH) && c->seq >= lk->seq) {
			lk->held++; /* already holds it: BEP 44's rule of k, nothing to send */
			continue;
		}
		if (lk->presigned) {
			a.has_cas = (lk->put_flags & DHT_PUT_CAS) && c->seq >= 0;
			a.cas = c->seq;
		}
		a.token = c->token;
		a.token_len = c->token_len;
		for (size_t b = 0; b < (lk->nbatch ? lk->nbatch : 1); b++) {
			if (lk->nbatch)
				a.info_hash = lk->batch[b];
			if (!dht_send_query(dht, q, (struct sockaddr *)&c->addr, c->addrlen, c->id,
					    lk, &a, now)) {
				c->store_sent = 1;
				lk->inflight++;
			}
		}
	}
	if (!lk->inflight)
		lk_finish(dht, lk, lk->held ? 0 : n ? -ETIMEDOUT : -EHOSTUNREACH);
}

static int search_status(const struct dht_lookup *lk)
{
	if (!lk->visited && !lk->local_hit)
		return -ETIMEDOUT;
	if (lk->op == DHT_OP_GET && !lk->found)
		return -ENOENT;
	return 0;
}

static void dht_lk_step(struct dht *dht, struct dht_lookup *lk, uint64_t now)
{
	unsigned int seen = 0;
	int pending_new = 0;

	if (lk->phase == LK_STORE) {
		if (!lk->inflight)
			lk_finish(dht, lk, 0);
		return;
	}
	if (lk->op == DHT_OP_PING)
		return;
	if (lk->stop_first && lk->first_given) {
		lk_finish(dht, lk, 0); /* late answers find no lookup */
		return;
	}
	for (unsigned int i = 0; i < lk->ncands && seen < DHT_K; i++) {
		struct dht_cand *c = &lk->cands[i];
		struct krpc_args a;

		if (c->state == CAND_FAILED)
			continue;
		seen++;
		if (c->state != CAND_NEW)
			continue;
		pending_new = 1;
		if (lk->inflight >= DHT_ALPHA)
			break;
		memset(&a, 0, sizeof(a));
		if (search_method(lk->op) == KRPC_GET_PEERS)
			a.info_hash = lk->target;
		else
			a.target = lk->target;
		if (lk->has_get_seq) {
			a.has_seq = 1;
			a.seq = lk->get_seq;
		}
		if (dht_send_query(dht, search_method(lk->op), (struct sockaddr *)&c->addr,
				   c->addrlen, c->id, lk, &a, now)) {
			c->state = CAND_FAILED;
			continue;
		}
		c->state = CAND_INFLIGHT;
		lk->inflight++;
		lk->queried++;
	}
	if (lk->inflight || lk->retrying || pending_new)
		return;
	/* converged */
	if ((lk->op == DHT_OP_ANNOUNCE || lk->op == DHT_OP_PUT_IMMUTABLE ||
	     lk->op == DHT_OP_PUT_MUTABLE) &&
	    lk->visited) {
		store_phase(dht, lk, now);
		return;
	}
	lk_finish(dht, lk, search_status(lk));
}

/* The query to c ended (answer, error or final timeout): give back the
 * alpha slot, or the retry count when it was being retried. */
static void slot_release(struct dht_lookup *lk, struct dht_cand *c)
{
	if (c->retrying) {
		c->retrying = 0;
		if (lk->retrying)
			lk->retrying--;
	} else if (lk->inflight) {
		lk->inflight--;
	}
}

static struct dht_lookup *lk_of(struct dht *dht, struct dht_pending *p)
{
	struct dht_lookup *lk = p->lk;

	if (!lk || !lk->in_use || lk->gen != p->lk_gen || lk->phase == LK_DONE)
		return NULL;
	return lk;
}

static void add_peer(struct dht_lookup *lk, const uint8_t *c, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	if (dht_addr_from_compact(c, len, &ss, &sl) || lk->npeers >= DHT_MAX_RESULT_PEERS)
		return;
	for (size_t i = 0; i < lk->npeers; i++)
		if (dht_addr_eq((struct sockaddr *)&lk->peers[i], (struct sockaddr *)&ss))
			return;
	if (!lk->peers) {
		lk->peers = calloc(DHT_MAX_RESULT_PEERS, sizeof(*lk->peers));
		if (!lk->peers)
			return;
	}
	lk->peers[lk->npeers++] = ss;
}

/* A key claim (compact peer of clen bytes, then DHT_WK_LEN): one per peer
 * address, the first seen kept; at most DHT_MAX_RESULT_WK. */
static void add_wk(struct dht_lookup *lk, const uint8_t *c, size_t clen, const uint8_t *wk)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	if (lk->op != DHT_OP_GET_PEERS || dht_addr_from_compact(c, clen, &ss, &sl) ||
	    lk->nwks >= DHT_MAX_RESULT_WK)
		return;
	for (size_t i = 0; i < lk->nwks; i++)
		if (dht_addr_eq((struct sockaddr *)&lk->wks[i].addr, (struct sockaddr *)&ss))
			return;
	if (!lk->wks) {
		lk->wks = calloc(DHT_MAX_RESULT_WK, sizeof(*lk->wks));
		if (!lk->wks)
			return;
	}
	lk->wks[lk->nwks].addr = ss;
	memcpy(lk->wks[lk->nwks].v, wk, DHT_WK_LEN);
	lk->nwks++;
}

static void take_item(struct dht_lookup *lk, struct dht_cand *c, const struct krpc_msg *m)
{
	if (lk->want_mutable) {
		if (!m->k || !m->sig || !m->has_seq || memcmp(m->k, lk->pk, DHT_PK_LEN))
			return;
		if (dht_bep44_verify(m->k, m->sig, lk->salt, lk->salt_len, m->seq, m->v, m->vlen))
			return;
		c->seq = m->seq;
		if (m->seq > lk->max_seen_seq)
			lk->max_seen_seq = m->seq;
		if (lk->op != DHT_OP_GET || (lk->found && m->seq <= lk->seq) ||
		    (lk->has_get_seq && m->seq <= lk->get_seq))
			return;
		lk->found = 1;
		lk->seq = m->seq;
		memcpy(lk->sig, m->sig, DHT_SIG_LEN);
		memcpy(lk->v, m->v, m->vlen);
		lk->vlen = m->vlen;
		lk_first(lk);
		return;
	}
	if (lk->op != DHT_OP_GET || lk->found || m->vlen > DHT_MAX_VALUE)
		return;
	{
		uint8_t t[DHT_ID_LEN];

		dht_bep44_target_immutable(t, m->v, m->vlen);
		if (memcmp(t, lk->target, DHT_ID_LEN))
			return; /* a value that does not hash to the target is a lie */
	}
	lk->found = 1;
	memcpy(lk->v, m->v, m->vlen);
	lk->vlen = m->vlen;
}

void dht_lk_reply(struct dht *dht, struct dht_pending *p, const struct krpc_msg *m,
		  const struct sockaddr *from, socklen_t fromlen, uint64_t now)
{
	struct dht_lookup *lk = lk_of(dht, p);
	struct dht_cand *c;

	if (!lk)
		return;
	c = cand_find(lk, from);
	if (!c)
		return;
	slot_release(lk, c);
	if (lk->phase == LK_STORE) {
		if (c->stored < UINT8_MAX)
			c->stored++;
		dht_lk_step(dht, lk, now);
		return;
	}
	c->state = CAND_DONE;
	memcpy(c->id, m->id, DHT_ID_LEN);
	lk->visited++;
	if (lk->op == DHT_OP_PING) {
		lk->deadline = now; /* rtt = deadline - started */
		lk_finish(dht, lk, 0);
		return;
	}
	if (m->token && m->token_len <= sizeof(c->token)) {
		memcpy(c->token, m->token, m->token_len);
		c->token_len = (uint8_t)m->token_len;
	}
	for (size_t off = 0; off + 26 <= m->nodes_len; off += 26) {
		struct sockaddr_storage ss;
		socklen_t sl;

		if (!dht_addr_from_compact(m->nodes + off + 20, 6, &ss, &sl))
			cand_add(dht, lk, m->nodes + off, (struct sockaddr *)&ss, sl,
				 (uint8_t)(c->hop + 1));
	}
	for (size_t off = 0; off + 38 <= m->nodes6_len; off += 38) {
		struct sockaddr_storage ss;
		socklen_t sl;

		if (!dht_addr_from_compact(m->nodes6 + off + 20, 18, &ss, &sl))
			cand_add(dht, lk, m->nodes6 + off, (struct sockaddr *)&ss, sl,
				 (uint8_t)(c->hop + 1));
	}
	if (lk->op == DHT_OP_GET_PEERS || lk->op == DHT_OP_ANNOUNCE)
		for (unsigned int i = 0; i < m->nvalues; i++)
			add_peer(lk, m->values[i], m->values_len[i]);
	for (unsigned int i = 0; i < m->nwks; i++)
		add_wk(lk, m->wks[i], m->wks_len[i] - DHT_WK_LEN, m->wks[i] + m->wks_len[i] - DHT_WK_LEN);
	if (m->v && (lk->op == DHT_OP_GET || lk->op == DHT_OP_PUT_MUTABLE))
		take_item(lk, c, m);
	else if (!m->v && lk->has_get_seq && lk->want_mutable && m->k && m->has_seq &&
		 !memcmp(m->k, lk->pk, DHT_PK_LEN))
		/* Asked with seq, it holds nothing newer: no value, so no
		 * signature to check. Its word decides only whether we store
		 * at it again (DHT_PUT_REFRESH); a liar skips only itself. */
		c->seq = m->seq;
	dht_lk_step(dht, lk, now);
}

void dht_lk_fail(struct dht *dht, struct dht_pending *p, uint64_t now)
{
	struct dht_lookup *lk = lk_of(dht, p);
	struct dht_cand *c;

	if (!lk)
		return;
	c = cand_find(lk, (struct sockaddr *)&p->addr);
	if (c)
		slot_release(lk, c);
	else if (lk->inflight)
		lk->inflight--;
	if (lk->op == DHT_OP_PING) {
		lk_finish(dht, lk, -ETIMEDOUT);
		return;
	}
	if (c && lk->phase == LK_SEARCH)
		c->state = CAND_FAILED;
	dht_lk_step(dht, lk, now);
}

void dht_lk_retry(struct dht *dht, struct dht_pending *p, uint64_t now)
{
	struct dht_lookup *lk = lk_of(dht, p);
	struct dht_cand *c;

	if (!lk)
		return;
	lk->queried++;
	/* ping and the store phase just wait for the retry */
	if (lk->op == DHT_OP_PING || lk->phase != LK_SEARCH)
		return;
	c = cand_find(lk, (struct sockaddr *)&p->addr);
	if (!c || c->state != CAND_INFLIGHT || c->retrying)
		return;
	c->retrying = 1;
	lk->retrying++;
	if (lk->inflight)
		lk->inflight--;
	dht_lk_step(dht, lk, now);
}

int dht_lk_is_close(struct dht *dht, struct dht_pending *p)
{
	struct dht_lookup *lk = lk_of(dht, p);
	unsigned int rank = 0;

	if (!lk || lk->phase != LK_SEARCH || lk->op == DHT_OP_PING)
		return 0;
	for (unsigned int i = 0; i < lk->ncands && rank < DHT_K; i++) {
		const struct dht_cand *c = &lk->cands[i];

		if (dht_addr_eq((const struct sockaddr *)&c->addr, (struct sockaddr *)&p->addr))
			return 1;
		if (c->state != CAND_FAILED)
			rank++;
	}
	return 0;
}

void dht_lk_error(struct dht *dht, struct dht_pending *p, const struct krpc_msg *m, uint64_t now)
{
	struct dht_lookup *lk = lk_of(dht, p);

	if (lk && lk->op == DHT_OP_PING) {
		if (lk->inflight)
			lk->inflight--;
		lk_finish(dht, lk, -EPROTO);
		return;
	}
	dht_lk_fail(dht, p, now);
}

void dht_lk_timers(struct dht *dht, uint64_t now, uint64_t *next)
{
	for (uint32_t i = 0; i < dht->lk_touched; i++) {
		struct dht_lookup *lk = &dht->lks[i];

		if (!lk->in_use || lk->phase == LK_DONE)
			continue;
		if (now >= lk->deadline) {
			lk_finish(dht, lk, lk->phase == LK_STORE ? 0 : search_status(lk));
			continue;
		}
		if (lk->deadline < *next)
			*next = lk->deadline;
	}
}

void dht_lk_trim(struct dht *dht)
{
	uint32_t hw = dht->lk_touched;

	while (hw > 0 && !dht->lks[hw - 1].in_use)
		hw--;
	dht_slots_trim(dht->lks, sizeof(*dht->lks), hw, DHT_LK_KEEP, &dht->lk_touched);
}

static int dht_lk_start(struct dht *dht, enum dht_op op, const uint8_t *target, uint64_t now,
			dht_done_fn cb, void *arg, struct dht_lookup **out)
{
	struct dht_lookup *lk = NULL;
	const struct dht_node *cl[DHT_MAX_LOOKUP_CANDS / 2];

	/* the lowest free slot: the slots written follow the peak in use */
	for (uint32_t i = 0; i < dht->lim.max_lookups; i++) {
		if (!dht->lks[i].in_use) {
			lk = &dht->lks[i];
			if (i >= dht->lk_touched)
				dht->lk_touched = i + 1;
			break;
		}
	}
	if (!lk)
		return -ENOSPC;
	memset(lk, 0, sizeof(*lk));
	lk->in_use = 1;
	lk->gen = ++dht->lk_gen;
	lk->op = op;
	lk->phase = LK_SEARCH;
	memcpy(lk->target, target, DHT_ID_LEN);
	lk->started = now;
	lk->deadline = now + dht->lim.lookup_timeout_ms;
	lk->cb = cb;
	lk->arg = arg;
	lk->max_seen_seq = -1;
	lk->seq = -1;
	if (op != DHT_OP_PING) {
		size_t n = dht_rt_closest(&dht->t4, target, now, cl, (sizeof(cl) / sizeof(cl[0])));

		for (size_t i = 0; i < n; i++)
			cand_add(dht, lk, cl[i]->id, (struct sockaddr *)&cl[i]->addr,
				 cl[i]->addrlen, 1);
		if (!(dht->o.flags & DHT_F_NO_IPV6)) {
			n = dht_rt_closest(&dht->t6, target, now, cl, (sizeof(cl) / sizeof(cl[0])));
			for (size_t i = 0; i < n; i++)
				cand_add(dht, lk, cl[i]->id, (struct sockaddr *)&cl[i]->addr,
					 cl[i]->addrlen, 1);
		}
	}
	if (out)
		*out = lk;
	return 0;
}

/* What our own storage holds for the target: stored peers for get_peers
 * and announce, the item for get, the seq of the item for a mutable put. */
static void lk_local(struct dht *dht, struct dht_lookup *lk, uint64_t now)
{
	if (lk->op == DHT_OP_GET_PEERS || lk->op == DHT_OP_ANNOUNCE) {
		const struct dht_ih *e = dht_store_find_ih(&dht->store, lk->target);

		for (uint32_t i = 0; e && i < e->npeers; i++) {
			uint8_t c[18];
			int cl;

			if (e->peers[i].expires <= now)
				continue;
			cl = dht_addr_compact((const struct sockaddr *)&e->peers[i].addr, c);
			if (cl > 0) {
				add_peer(lk, c, (size_t)cl);
				if (e->peers[i].wk)
					add_wk(lk, c, (size_t)cl, e->peers[i].wk);
				/* an announce still needs nodes to store at */
				lk->local_hit = lk->op == DHT_OP_GET_PEERS;
			}
		}
	} else if (lk->op == DHT_OP_GET || lk->op == DHT_OP_PUT_MUTABLE) {
		const struct dht_item *it = dht_store_find_item(&dht->store, lk->target);

		if (!it || it->expires <= now || it->mut != lk->want_mutable)
			return;
		if (it->mut && (memcmp(it->k, lk->pk, DHT_PK_LEN) || it->salt_len != lk->salt_len ||
				memcmp(it->salt, lk->salt, it->salt_len)))
			return;
		if (it->mut && it->seq > lk->max_seen_seq)
			lk->max_seen_seq = it->seq;
		if (lk->op != DHT_OP_GET || (lk->has_get_seq && it->seq <= lk->get_seq))
			return;
		lk->found = 1;
		lk->local_hit = 1;
		lk->seq = it->mut ? it->seq : -1;
		if (it->mut)
			memcpy(lk->sig, it->sig, DHT_SIG_LEN);
		memcpy(lk->v, it->v, it->vlen);
		lk->vlen = it->vlen;
	}
}

/* Start, let the caller fill op-specific fields, then run the first step. */
static int lk_begin(struct dht *dht, struct dht_lookup *lk, uint64_t now)
{
	lk_local(dht, lk, now);
	lk_first(lk);
	if (!lk->ncands) {
		lk_finish(dht, lk, lk->local_hit ? 0 : -EHOSTUNREACH);
		return 0;
	}
	dht_lk_step(dht, lk, now);
	return 0;
}

int dht_find_node(struct dht *dht, const uint8_t id[DHT_ID_LEN], uint64_t now_ms, dht_done_fn cb,
		  void *arg)
{
	struct dht_lookup *lk;
	int err = dht_lk_start(dht, DHT_OP_FIND_NODE, id, now_ms, cb, arg, &lk);

	return err ? err : lk_begin(dht, lk, now_ms);
}

int dht_get_peers(struct dht *dht, const uint8_t ih[DHT_ID_LEN], uint64_t now_ms, dht_done_fn cb,
		  void *arg)
{
	struct dht_lookup *lk;
	int err = dht_lk_start(dht, DHT_OP_GET_PEERS, ih, now_ms, cb, arg, &lk);

	return err ? err : lk_begin(dht, lk, now_ms);
}

int dht_announce(struct dht *dht, const uint8_t ih[DHT_ID_LEN], uint16_t port, int implied_port,
		 uint64_t now_ms, dht_done_fn cb, void *arg)
{
	return dht_announce_wk(dht, ih, port, implied_port, NULL, now_ms, cb, arg);
}

int dht_announce_wk(struct dht *dht, const uint8_t ih[DHT_ID_LEN], uint16_t port,
		    int implied_port, const uint8_t *wk, uint64_t now_ms, dht_done_fn cb,
		    void *arg)
{
	struct dht_lookup *lk;
	int err;

	if (!port && !implied_port)
		return -EINVAL;
	err = dht_lk_start(dht, DHT_OP_ANNOUNCE, ih, now_ms, cb, arg, &lk);
	if (err)
		return err;
	lk->port = port;
	lk->implied_port = implied_port;
	lk->has_wk = wk != NULL;
	if (wk)
		memcpy(lk->wk, wk, DHT_WK_LEN);
	return lk_begin(dht, lk, now_ms);
}

int dht_announce_to(struct dht *dht, const uint8_t (*ihs)[DHT_ID_LEN], size_t nih, uint16_t port,
		    int implied_port, const struct dht_node_info *nodes, size_t nnodes,
		    uint64_t now_ms, dht_done_fn cb, void *arg)
{
	struct dht_lookup *lk;
	int err;

	if (!ihs || !nih || nih > DHT_ANNOUNCE_TO_MAX || (!port && !implied_port) ||
	    (nnodes && !nodes))
		return -EINVAL;
	err = dht_lk_start(dht, DHT_OP_ANNOUNCE, ihs[0], now_ms, cb, arg, &lk);
	if (err)
		return err;
	lk->batch = malloc(nih * DHT_ID_LEN);
	if (!lk->batch) {
		lk->in_use = 0;
		return -ENOMEM;
	}
	memcpy(lk->batch, ihs, nih * DHT_ID_LEN);
	lk->nbatch = nih;
	lk->port = port;
	lk->implied_port = implied_port;
	/* the given nodes, as if a lookup had just converged on them */
	lk->ncands = 0;
	for (size_t i = 0; i < nnodes && lk->ncands < DHT_K; i++) {
		struct dht_cand *c = &lk->cands[lk->ncands];

		if (!nodes[i].token_len || nodes[i].token_len > sizeof(c->token) ||
		    nodes[i].addrlen > sizeof(c->addr) || cand_find(lk, (const struct sockaddr *)&nodes[i].addr))
			continue;
		memset(c, 0, sizeof(*c));
		memcpy(c->id, nodes[i].id, DHT_ID_LEN);
		memcpy(&c->addr, &nodes[i].addr, nodes[i].addrlen);
		c->addrlen = nodes[i].addrlen;
		memcpy(c->token, nodes[i].token, nodes[i].token_len);
		c->token_len = nodes[i].token_len;
		c->state = CAND_DONE;
		c->seq = -1;
		lk->ncands++;
	}
	lk->visited = lk->ncands;
	store_phase(dht, lk, now_ms);
	return 0;
}

int dht_get(struct dht *dht, const uint8_t *target, const uint8_t *pk, const uint8_t *salt,
	    size_t salt_len, uint64_t now_ms, dht_done_fn cb, void *arg)
{
	struct dht_lookup *lk;
	uint8_t t[DHT_ID_LEN];
	int err;

	if (salt_len > DHT_MAX_SALT || (!pk && !target))
		return -EINVAL;
	if (pk)
		dht_bep44_target_mutable(t, pk, salt, salt_len);
	else
		memcpy(t, target, DHT_ID_LEN);
	err = dht_lk_start(dht, DHT_OP_GET, t, now_ms, cb, arg, &lk);
	if (err)
		return err;
	if (pk) {
		lk->want_mutable = 1;
		memcpy(lk->pk, pk, DHT_PK_LEN);
		if (salt_len)
			memcpy(lk->salt, salt, salt_len);
		lk->salt_len = salt_len;
	}
	return lk_begin(dht, lk, now_ms);
}

int dht_get_first(struct dht *dht, const uint8_t *pk, const uint8_t *salt, size_t salt_len,
		  int stop, uint64_t now_ms, dht_done_fn first, dht_done_fn cb, void *arg)
{
	struct dht_lookup *lk;
	uint8_t t[DHT_ID_LEN];
	int err;

	if (!pk || salt_len > DHT_MAX_SALT)
		return -EINVAL;
	dht_bep44_target_mutable(t, pk, salt, salt_len);
	err = dht_lk_start(dht, DHT_OP_GET, t, now_ms, cb, arg, &lk);
	if (err)
		return err;
	lk->want_mutable = 1;
	memcpy(lk->pk, pk, DHT_PK_LEN);
	if (salt_len)
		memcpy(lk->salt, salt, salt_len);
	lk->salt_len = salt_len;
	lk->first_cb = first;
	lk->stop_first = stop;
	return lk_begin(dht, lk, now_ms);
}

/* Encode a raw value as a bencode string (what BEP 44 puts carry). */
static int encode_value(uint8_t *out, size_t cap, const uint8_t *value, size_t len)
{
	struct bencode_buf b;

	bencode_buf_init(&b, out, cap);
	bencode_put_str(&b, value, len);
	if (b.err || b.len > DHT_MAX_VALUE)
		return -EMSGSIZE;
	return (int)b.len;
}

int dht_put_immutable(struct dht *dht, const uint8_t *value, size_t len, uint64_t now_ms,
		      dht_done_fn cb, void *arg)
{
	uint8_t enc[DHT_MAX_VALUE + 8], t[DHT_ID_LEN];
	struct dht_lookup *lk;
	int n = encode_value(enc, sizeof(enc), value, len), err;

	if (n < 0)
		return n;
	dht_bep44_target_immutable(t, enc, (size_t)n);
	err = dht_lk_start(dht, DHT_OP_PUT_IMMUTABLE, t, now_ms, cb, arg, &lk);
	if (err)
		return err;
	memcpy(lk->v, enc, (size_t)n);
	lk->vlen = (size_t)n;
	lk->found = 1;
	return lk_begin(dht, lk, now_ms);
}

int dht_put_mutable(struct dht *dht, const uint8_t *value, size_t len, const uint8_t *salt,
		    size_t salt_len, int cas, uint64_t now_ms, dht_done_fn cb, void *arg)
{
	uint8_t enc[DHT_MAX_VALUE + 8], t[DHT_ID_LEN];
	struct dht_lookup *lk;
	int n, err;

	if (!dht->has_key || salt_len > DHT_MAX_SALT)
		return -EINVAL;
	n = encode_value(enc, sizeof(enc), value, len);
	if (n < 0)
		return n;
	dht_bep44_target_mutable(t, dht->pk, salt, salt_len);
	err = dht_lk_start(dht, DHT_OP_PUT_MUTABLE, t, now_ms, cb, arg, &lk);
	if (err)
		return err;
	memcpy(lk->v, enc, (size_t)n);
	lk->vlen = (size_t)n;
	lk->want_mutable = 1;
	memcpy(lk->pk, dht->pk, DHT_PK_LEN);
	if (salt_len)
		memcpy(lk->salt, salt, salt_len);
	lk->salt_len = salt_len;
	lk->cas = cas;
	lk->found = 1;
	return lk_begin(dht, lk, now_ms);
}

int dht_put_signed(struct dht *dht, const struct dht_item_in *it, unsigned int flags,
		   uint64_t now_ms, dht_done_fn cb, void *arg)
{
	uint8_t t[DHT_ID_LEN];
	struct dht_lookup *lk;
	int err;

	if (!it || !it->pk || !it->sig || !it->v || !it->vlen || it->vlen > DHT_MAX_VALUE ||
	    it->salt_len > DHT_MAX_SALT || (it->salt_len && !it->salt) || it->seq < 0)
		return -EINVAL;
	if (dht_bep44_verify(it->pk, it->sig, it->salt, it->salt_len, it->seq, it->v, it->vlen))
		return -EBADMSG;
	dht_bep44_target_mutable(t, it->pk, it->salt, it->salt_len);
	err = dht_lk_start(dht, DHT_OP_PUT_MUTABLE, t, now_ms, cb, arg, &lk);
	if (err)
		return err;
	memcpy(lk->v, it->v, it->vlen);
	lk->vlen = it->vlen;
	lk->want_mutable = 1;
	lk->presigned = 1;
	lk->put_flags = flags;
	memcpy(lk->pk, it->pk, DHT_PK_LEN);
	memcpy(lk->sig, it->sig, DHT_SIG_LEN);
	if (it->salt_len)
		memcpy(lk->salt, it->salt, it->salt_len);
	lk->salt_len = it->salt_len;
	lk->seq = it->seq;
	/* nodes holding this seq answer without the value */
	lk->has_get_seq = 1;
	lk->get_seq = it->seq;
	lk->found = 1;
	return lk_begin(dht, lk, now_ms);
}

int dht_get_since(struct dht *dht, const uint8_t *pk, const uint8_t *salt, size_t salt_len,
		  int64_t seq, uint64_t now_ms, dht_done_fn cb, void *arg)
{
	uint8_t t[DHT_ID_LEN];
	struct dht_lookup *lk;
	int err;

	if (!pk || salt_len > DHT_MAX_SALT || (salt_len && !salt))
		return -EINVAL;
	dht_bep44_target_mutable(t, pk, salt, salt_len);
	err = dht_lk_start(dht, DHT_OP_GET, t, now_ms, cb, arg, &lk);
	if (err)
		return err;
	lk->want_mutable = 1;
	memcpy(lk->pk, pk, DHT_PK_LEN);
	if (salt_len)
		memcpy(lk->salt, salt, salt_len);
	lk->salt_len = salt_len;
	lk->has_get_seq = seq >= 0;
	lk->get_seq = seq;
	return lk_begin(dht, lk, now_ms);
}

int dht_ping(struct dht *dht, const struct sockaddr *addr, socklen_t len, uint64_t now_ms,
	     dht_done_fn cb, void *arg)
{
	struct dht_lookup *lk;
	int err;

	if (!dht_table_for(dht, addr->sa_family) || len > sizeof(struct sockaddr_storage))
		return -EINVAL;
	err = dht_lk_start(dht, DHT_OP_PING, dht->id, now_ms, cb, arg, &lk);
	if (err)
		return err;
	memcpy(&lk->cands[0].addr, addr, len);
	lk->cands[0].addrlen = len;
	lk->cands[0].state = CAND_INFLIGHT;
	lk->ncands = 1;
	err = dht_send_query(dht, KRPC_PING, addr, len, NULL, lk, NULL, now_ms);
	if (err) {
		lk->in_use = 0;
		return err;
	}
	lk->inflight = 1;
	lk->queried = 1;
	return 0;
}
