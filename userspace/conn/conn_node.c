// SPDX-License-Identifier: MIT
/*
 * Connectivity on the node: the publisher of the node record (a timer on
 * worker 0, the DHT's owner, so puts start without crossing threads), the
 * vote table fed by QUIC workers and the DHT, and resolution of keys with
 * a bounded TTL cache, served as /v1/node/resolve. docs/CONNECTIVITY.md.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "weft/conn.h"
#include "weft/ctl.h"
#include "weft/dht.h"
#include "weft/engine.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/dhtnode.h"
#include "weft/util.h"

struct cache_ent {
	int used;
	int negative; /* not_found remembered for CONN_NEG_TTL_S */
	uint8_t key[CONN_KEY_LEN];
	uint64_t expires_ms;
	uint64_t last_use; /* LRU: value of the node's access counter */
	int64_t seq;	   /* BEP 44 seq of rec: a lookup's later answer replaces only an older one */
	struct conn_record rec;
};

struct seen_relay {
	int used;
	struct conn_relay r;
	uint64_t seen_ms;
};

struct conn_node {
	struct conn_node_opts o;
	pthread_mutex_t mu; /* votes, cache, published state */
	struct conn_votes *votes;
	struct cache_ent *cache;
	struct seen_relay *seen; /* relay candidates from records (o.seen_relays_max) */
	struct engine_timer timer; /* on worker 0 */
	_Atomic int started;
	uint64_t tick; /* cache access counter (under mu) */
	/* publisher (worker 0) */
	struct conn_record published;
	int have_published, put_ok;
	/* a put that stored on fewer than CONN_PUT_FULL nodes (the DHT was
	 * still small, e.g. at start) is put again after this long, doubled
	 * each time up to the republish interval (written on worker 0 only;
	 * atomic for the status page) */
	_Atomic uint64_t put_retry_ms;
	/* one put at a time: the DHT signs a put's seq when its lookup ends,
	 * so of two puts in flight the older record could end with the higher
	 * seq and stay on the network until the next republish (30 min) */
	int put_inflight;
	int put_noroute; /* the last put failed knowing no DHT node (-EHOSTUNREACH) */
	/* relays holding a reservation for us (conn_node_set_relays; under mu) */
	struct conn_relay relays[CONN_REC_MAX_RELAYS];
	unsigned int nrelays;
	struct conn_relay anchors[CONN_REC_MAX_ANCHORS]; /* conn_node_set_anchors; under mu */
	unsigned int nanchors;
	uint64_t last_put_ms;
	/* last QUIC observation of our QUIC socket per family (under mu):
	 * the mapping an endpoint-independent NAT shows every peer */
	struct io_addr seen_quic[2];
	_Atomic uint64_t puts, puts_failed, resolves, cache_hits, votes_in, stun;
	_Atomic uint64_t misses_rechecked; /* CONN_RESOLVE_PAST_MISS past a cached miss */
	_Atomic int freeing;
	/* lookups that gave their first record and still run (worker 0) */
	unsigned int revalidating;
};

/* A put in flight; owns its value. */
struct put_op {
	struct conn_node *cn;
	uint8_t v[CONN_REC_MAX_LEN];
	size_t vlen;
};

/* A resolution: shared by the waiting thread and the DHT callbacks. The
 * waiter wakes on the first valid record (dht_get_first); the lookup goes
 * on, and a record with a higher seq at its end replaces the cached one. */
struct resolve_op {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct conn_node *cn;
	int refs, done, status;
	int first; /* done by the first answer; the lookup still runs */
	int full;  /* CONN_RESOLVE_FRESH: done at the lookup's end only */
	int64_t seq;
	uint8_t key[CONN_KEY_LEN];
	uint8_t v[DHT_MAX_VALUE];
	size_t vlen;
	/* full: the first valid answer, what the waiter takes when the
	 * lookup's end finds nothing better or the deadline comes first */
	int have_fb, fb_status;
	int64_t fb_seq;
	uint8_t fb_v[DHT_MAX_VALUE];
	size_t fb_vlen;
};

static uint64_t now_ms(struct conn_node *cn)
{
	return engine_now_ns(cn->o.eng) / 1000000;
}

/* ------------------------------------------------------------ publisher */

static int addr_in(const struct conn_record *r, const struct io_addr *a)
{
	for (unsigned int i = 0; i < r->naddrs; i++)
		if (r->addrs[i].family == a->family && r->addrs[i].port == a->port &&
		    !memcmp(r->addrs[i].addr, a->addr, a->family == AF_INET ? 4 : 16))
			return 1;
	return 0;
}

static void rec_add(struct conn_record *r, const struct io_addr *a)
{
	if (r->naddrs < CONN_REC_MAX_ADDRS && a->port && !addr_in(r, a))
		r->addrs[r->naddrs++] = *a;
}

/* The record as it should be now: operator-listed addresses first, then
 * reflexive addresses voted by peers, then public interface addresses. */
static void build_record(struct conn_node *cn, uint64_t now, struct conn_record *r)
{
	struct conn_vote_state st;
	unsigned int i;

	memset(r, 0, sizeof(*r));
	r->version = CONN_REC_VERSION;
	r->caps = cn->o.caps;
	for (i = 0; i < cn->o.nannounce; i++)
		rec_add(r, &cn->o.announce[i]);
	pthread_mutex_lock(&cn->mu);
	conn_votes_state(cn->votes, cn->o.quic_port, now, &st);
	pthread_mutex_unlock(&cn->mu);
	for (i = 0; i < st.nrefl; i++) {
		struct io_addr a = st.refl[i].addr;

		if (!a.port) /* ports differ per peer: the local port is the best guess */
			a.port = cn->o.quic_port;
		rec_add(r, &a);
	}
	for (i = 0; i < cn->o.nlocal; i++) {
		struct io_addr a = cn->o.local[i];

		a.port = cn->o.quic_port;
		if (conn_addr_public(&a))
			rec_add(r, &a);
	}
	pthread_mutex_lock(&cn->mu);
	r->nrelays = cn->nrelays;
	memcpy(r->relays, cn->relays, sizeof(cn->relays[0]) * cn->nrelays);
	r->nanchors = cn->nanchors;
	memcpy(r->anchors, cn->anchors, sizeof(cn->anchors[0]) * cn->nanchors);
	pthread_mutex_unlock(&cn->mu);
}

static void start_cmd(struct engine_worker *w, void *arg);

/* Replace a list of n (at most max) under mu, then check the record now,
 * not at the next CONN_CHECK_MS tick; relays: the list is the relays
 * holding our reservations (their votes count as a relay's). */
static void set_list(struct conn_node *cn, struct conn_relay *dst, unsigned int *ndst,
		     unsigned int max, const struct conn_relay *r, unsigned int n, int relays)
{
	if (!cn)
		return;
	int same;

	if (n > max)
		n = max;
	pthread_mutex_lock(&cn->mu);
	same = *ndst == n && (!n || !memcmp(dst, r, sizeof(*r) * n));
	memset(dst, 0, sizeof(*dst) * max);
	if (n)
		memcpy(dst, r, sizeof(*r) * n);
	*ndst = n;
	/* a relay's observed address came with its handshake, before the
	 * reservation: its vote is a relay's from now on */
	for (unsigned int i = 0; relays && i < n; i++)
		conn_votes_mark_relay(cn->votes, &r[i].addr);
	pthread_mutex_unlock(&cn->mu);
	if (!same && cn->started && engine_call(cn->o.eng, 0, start_cmd, cn))
		log_debug("conn", "record check not queued: the next tick does it");
}

void conn_node_set_relays(struct conn_node *cn, const struct conn_relay *r, unsigned int n)
{
	if (cn)
		set_list(cn, cn->relays, &cn->nrelays, CONN_REC_MAX_RELAYS, r, n, 1);
}

void conn_node_set_anchors(struct conn_node *cn, const struct conn_relay *a, unsigned int n)
{
	if (cn)
		set_list(cn, cn->anchors, &cn->nanchors, CONN_REC_MAX_ANCHORS, a, n, 0);
}

unsigned int conn_node_relays(struct conn_node *cn, struct conn_relay *out, unsigned int max)
{
	unsigned int n;

	if (!cn || !out)
		return 0;
	pthread_mutex_lock(&cn->mu);
	n = cn->nrelays < max ? cn->nrelays : max;
	memcpy(out, cn->relays, sizeof(*out) * n);
	pthread_mutex_unlock(&cn->mu);
	return n;
}

static void cand_add(struct io_addr *out, unsigned int *n, unsigned int max, const struct io_addr *a)
{
	static const uint8_t zero[16];
	unsigned int i;

	if (*n >= max || !a->port || (a->family != AF_INET && a->family != AF_INET6) ||
	    !memcmp(a->addr, zero, a->family == AF_INET ? 4 : 16))
		return;
	/* Never loopback or link-local: a probe there reaches this host. */
	if ((a->family == AF_INET && (a->addr[0] == 127 || (a->addr[0] == 169 && a->addr[1] == 254))) ||
	    (a->family == AF_INET6 &&
	     ((a->addr[0] == 0xfe && (a->addr[1] & 0xc0) == 0x80) ||
	      (!memcmp(a->addr, zero, 15) && a->addr[15] == 1))))
		return;
	for (i = 0; i < *n; i++)
		if (io_addr_equal(&out[i], a))
			return;
	out[(*n)++] = *a;
}

unsigned int conn_node_path_cands(struct conn_node *cn, struct io_addr *out, unsigned int max,
				  uint8_t *nat)
{
	struct conn_vote_state st;
	struct io_addr seen[2], a;
	unsigned int i, n = 0, pass;

	*nat = CONN_NAT_UNKNOWN;
	if (!cn)
		return 0;
	pthread_mutex_lock(&cn->mu);
	conn_votes_state(cn->votes, cn->o.quic_port, now_ms(cn), &st);
	memcpy(seen, cn->seen_quic, sizeof(seen));
	pthread_mutex_unlock(&cn->mu);
	*nat = (uint8_t)st.nat;
	/* Global IPv6 first (no NAT to cross), then IPv4. */
	for (pass = 0; pass < 2; pass++) {
		int fam = pass ? AF_INET : AF_INET6;

		for (i = 0; i < cn->o.nannounce; i++)
			if (cn->o.announce[i].family == fam)
				cand_add(out, &n, max, &cn->o.announce[i]);
		for (i = 0; i < cn->o.nlocal; i++) {
			a = cn->o.local[i];
			a.port = cn->o.quic_port;
			if (a.family == fam && conn_addr_public(&a))
				cand_add(out, &n, max, &a);
		}
		for (i = 0; i < st.nrefl; i++) {
			a = st.refl[i].addr;
			if (!a.port)
				a.port = cn->o.quic_port;
			if (a.family == fam)
				cand_add(out, &n, max, &a);
		}
		if (seen[pass ? 0 : 1].family == fam)
			cand_add(out, &n, max, &seen[pass ? 0 : 1]);
	}
	/* Private interface addresses last: peers on the same LAN. */
	for (i = 0; i < cn->o.nlocal; i++) {
		a = cn->o.local[i];
		a.port = cn->o.quic_port;
		cand_add(out, &n, max, &a);
	}
	return n;
}

static enum conn_nat nat_class(struct conn_node *cn)
{
	struct conn_vote_state st;

	pthread_mutex_lock(&cn->mu);
	conn_votes_state(cn->votes, cn->o.quic_port, now_ms(cn), &st);
	pthread_mutex_unlock(&cn->mu);
	return st.nat;
}

int conn_node_nat_found(struct conn_node *cn)
{
	enum conn_nat nat;

	if (!cn || cn->o.nannounce)
		return 0;
	nat = nat_class(cn);
	return nat == CONN_NAT_EIM || nat == CONN_NAT_ADM || nat == CONN_NAT_BEHIND;
}

uint16_t conn_node_quic_mapped_port(struct conn_node *cn, int family)
{
	struct conn_vote_state st;

	if (!cn)
		return 0;
	pthread_mutex_lock(&cn->mu);
	conn_votes_state(cn->votes, cn->o.quic_port, now_ms(cn), &st);
	pthread_mutex_unlock(&cn->mu);
	for (unsigned int i = 0; i < st.nrefl; i++)
		if (st.refl[i].addr.family == family)
			return st.refl[i].addr.port;
	return 0;
}

int conn_node_behind_nat(struct conn_node *cn)
{
	enum conn_nat nat;
	unsigned int i;

	if (!cn)
		return 0;
	nat = nat_class(cn);
	if (nat == CONN_NAT_EIM || nat == CONN_NAT_ADM || nat == CONN_NAT_BEHIND)
		return 1;
	if (nat == CONN_NAT_NONE || cn->o.nannounce)
		return 0;
	/* Undecided: without a public interface address nobody can reach us. */
	for (i = 0; i < cn->o.nlocal; i++)
		if (conn_addr_public(&cn->o.local[i]))
			return 0;
	return 1;
}

static int same_list(const struct conn_relay *a, const struct conn_relay *b, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (memcmp(a[i].key, b[i].key, CONN_KEY_LEN) ||
		    a[i].addr.family != b[i].addr.family || a[i].addr.port != b[i].addr.port ||
		    memcmp(a[i].addr.addr, b[i].addr.addr, 16))
			return 0;
	return 1;
}

static int same_content(const struct conn_record *a, const struct conn_record *b)
{
	if (a->caps != b->caps || a->naddrs != b->naddrs || a->nrelays != b->nrelays ||
	    a->nanchors != b->nanchors)
		return 0;
	for (unsigned int i = 0; i < a->naddrs; i++)
		if (!addr_in(b, &a->addrs[i]))
			return 0;
	return same_list(a->relays, b->relays, a->nrelays) &&
	       same_list(a->anchors, b->anchors, a->nanchors);
}

static void put_done(void *arg, const struct dht_result *res)
{
	struct put_op *op = arg;
	struct conn_node *cn = op->cn;
	uint64_t retry;

	/* On worker 0, like the timer: no lock needed for put_ok. */
	cn->put_inflight = 0;
	cn->put_ok = res->status == 0 && res->stored > 0;
	cn->put_noroute = res->status == -EHOSTUNREACH;
	if (!cn->put_ok)
		atomic_fetch_add(&cn->puts_failed, 1);
	retry = atomic_load(&cn->put_retry_ms);
	retry = !cn->put_ok || res->stored >= CONN_PUT_FULL ? 0 : retry ? retry * 2 : CONN_CHECK_MS;
	atomic_store(&cn->put_retry_ms, retry < CONN_REPUBLISH_S * 1000ULL ? retry : 0);
	log_info("conn", "node record put: stored on %u DHT nodes (%s)", res->stored,
		 res->status ? strerror(-res->status) : "ok");
	free(op);
}

static void put_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct put_op *op = arg;

	if (dht_put_mutable(dht, op->v, op->vlen, (const uint8_t *)CONN_SALT, strlen(CONN_SALT),
			    0, now, put_done, op)) {
		op->cn->put_inflight = 0;
		free(op);
	}
}

static void publish_tick(struct engine_worker *w, void *arg)
{
	struct conn_node *cn = arg;
	/* The put times are the loop's (the timer's own base): a fresh clock
	 * read here runs ahead of the time the timer was armed from, and a
	 * retry due "5 s after" would wait for the tick after (10 s). */
	uint64_t now = now_ms(cn), tick = engine_worker_now(w);
	struct conn_record r;
	struct put_op *op;
	int changed, gained, due, n;

	if (atomic_load(&cn->freeing))
		return;
	build_record(cn, now, &r);
	changed = !cn->have_published || !same_content(&r, &cn->published);
	/* The record gained a way in (its first address, its first relay):
	 * put at once, not after CONN_MIN_REPUBLISH_MS, or dialers keep a
	 * record that cannot reach us (CONN_GAIN_REPUBLISH_MS bounds a
	 * relay that comes and goes). */
	gained = cn->have_published && ((!cn->published.naddrs && r.naddrs) ||
					(!cn->published.nrelays && r.nrelays));
	due = !cn->have_published || tick - cn->last_put_ms >= CONN_REPUBLISH_S * 1000ULL ||
	      (!cn->put_ok && tick - cn->last_put_ms >= CONN_CHECK_MS) ||
	      (!cn->put_ok && cn->put_noroute && tick - cn->last_put_ms >= CONN_NOROUTE_RETRY_MS) ||
	      (atomic_load(&cn->put_retry_ms) &&
	       tick - cn->last_put_ms >= atomic_load(&cn->put_retry_ms)) ||
	      (changed && tick - cn->last_put_ms >= CONN_MIN_REPUBLISH_MS) ||
	      (gained && tick - cn->last_put_ms >= CONN_GAIN_REPUBLISH_MS);
	/* a change while a put is in flight goes out at the first tick after
	 * it ended (published is what was last sent: still differs) */
	if (due && !cn->put_inflight) {
		r.ts = util_wall_s();
		op = calloc(1, sizeof(*op));
		n = op ? conn_record_encode(&r, op->v, sizeof(op->v)) : -ENOMEM;
		if (n > 0) {
			op->cn = cn;
			op->vlen = (size_t)n;
			cn->last_put_ms = tick;
			cn->put_ok = 0;
			pthread_mutex_lock(&cn->mu);
			cn->published = r;
			cn->have_published = 1;
			pthread_mutex_unlock(&cn->mu);
			atomic_fetch_add(&cn->puts, 1);
			cn->put_inflight = 1;
			/* On worker 0 dhtnode_run runs put_fn at once. */
			if (dhtnode_run(cn->o.dht, put_fn, op)) {
				cn->put_inflight = 0;
				free(op);
			}
		} else {
			free(op);
		}
	}
	/* A node that knows no DHT node yet (the first of a mesh, its
	 * contacts not up) tries again within a second of learning one. */
	engine_timer_add(w, &cn->timer,
			 !cn->put_inflight && !cn->put_ok && cn->put_noroute ? CONN_NOROUTE_RETRY_MS
									    : CONN_CHECK_MS);
}

static void start_cmd(struct engine_worker *w, void *arg)
{
	struct conn_node *cn = arg;

	engine_timer_add(w, &cn->timer, 0);
}

/* ------------------------------------------------------------ votes */

/* voter (address and port) is a relay holding a reservation for us.
 * Under cn->mu. */
static int is_our_relay(const struct conn_node *cn, const struct io_addr *voter)
{
	for (unsigned int i = 0; i < cn->nrelays; i++)
		if (cn->relays[i].addr.family == voter->family &&
		    cn->relays[i].addr.port == voter->port &&
		    !memcmp(cn->relays[i].addr.addr, voter->addr,
			    voter->family == AF_INET ? 4 : 16))
			return 1;
	return 0;
}

void conn_node_observed(struct conn_node *cn, enum conn_vote_src src, const struct io_addr *voter,
			const struct io_addr *seen, uint16_t local_port)
{
	char a[64], b[64];
	int r;

	if (!cn)
		return;
	atomic_fetch_add(&cn->votes_in, 1);
	pthread_mutex_lock(&cn->mu);
	if (src == CONN_VOTE_QUIC && is_our_relay(cn, voter))
		src = CONN_VOTE_RELAY;
	r = conn_votes_add(cn->votes, src, voter, seen, local_port, now_ms(cn));
	if (src == CONN_VOTE_QUIC && local_port == cn->o.quic_port && seen->port &&
	    conn_addr_public(seen) && conn_addr_public(voter))
		cn->seen_quic[seen->family == AF_INET6] = *seen;
	pthread_mutex_unlock(&cn->mu);
	if (r > 0)
		log_info("conn", "reflexive address decision changed (vote by %s: %s)",
			 log_addr(io_addr_fmt(voter, a, sizeof(a)), a, sizeof(a)),
			 log_addr(io_addr_fmt(seen, b, sizeof(b)), b, sizeof(b)));
}

/* ------------------------------------------------------------ resolution */

static void resolve_put(struct resolve_op *op)
{
	int last;

	pthread_mutex_lock(&op->mu);
	last = --op->refs == 0;
	pthread_mutex_unlock(&op->mu);
	if (last) {
		pthread_mutex_destroy(&op->mu);
		pthread_cond_destroy(&op->cv);
		free(op);
	}
}

/* The record inside a get's answer into v (DHT_MAX_VALUE bytes): 0,
 * the answer's error, -ENOENT (no mutable item), -EBADMSG. */
static int unwrap(const struct dht_result *res, uint8_t *v, size_t *vlen)
{
	/* v is a bencoded string (BEP 44): the record is its content. */
	const uint8_t *p = res->value, *colon;
	size_t l = 0;

	if (res->status)
		return res->status;
	if (!res->value || !res->mutable_item || res->value_len > DHT_MAX_VALUE)
		return -ENOENT;
	colon = memchr(p, ':', res->value_len);
	for (const uint8_t *q = p; colon && q < colon; q++)
		l = *q >= '0' && *q <= '9' && l < 100000 ? l * 10 + (size_t)(*q - '0') : SIZE_MAX;
	if (!colon || colon == p || (colon - p > 1 && *p == '0') ||
	    l != res->value_len - (size_t)(colon - p) - 1)
		return -EBADMSG;
	memcpy(v, colon + 1, l);
	*vlen = l;
	return 0;
}

static void cache_store(struct conn_node *cn, const uint8_t *key, const struct conn_record *rec,
			int64_t seq, uint64_t now);
static void seen_from_record(struct conn_node *cn, const uint8_t *key,
			     const struct conn_record *rec, uint64_t now);

/* The first valid record: the waiter goes on with it. */
static void get_first(void *arg, const struct dht_result *res)
{
	struct resolve_op *op = arg;

	pthread_mutex_lock(&op->mu);
	if (op->full) {
		if (!op->have_fb) {
			op->fb_status = unwrap(res, op->fb_v, &op->fb_vlen);
			op->fb_seq = res->seq;
			op->have_fb = 1;
		}
		pthread_mutex_unlock(&op->mu);
		return;
	}
	if (!op->done) {
		op->status = unwrap(res, op->v, &op->vlen);
		op->seq = res->seq;
		op->first = 1;
		op->done = 1;
		pthread_cond_signal(&op->cv);
	}
	pthread_mutex_unlock(&op->mu);
	op->cn->revalidating++; /* until get_done */
}

static void get_done(void *arg, const struct dht_result *res)
{
	struct resolve_op *op = arg;
	struct conn_record rec;
	uint8_t v[DHT_MAX_VALUE];
	size_t vlen = 0;
	int newer = 0;

	pthread_mutex_lock(&op->mu);
	if (op->first && op->cn->revalidating)
		op->cn->revalidating--;
	if (!op->done) {
		op->status = unwrap(res, op->v, &op->vlen);
		op->seq = res->seq;
		if (op->full && op->have_fb && !op->fb_status &&
		    (op->status || op->seq <= op->fb_seq)) {
			/* the end found nothing later than the first answer */
			op->status = 0;
			op->seq = op->fb_seq;
			op->vlen = op->fb_vlen;
			memcpy(op->v, op->fb_v, op->fb_vlen);
		}
		op->done = 1;
		pthread_cond_signal(&op->cv);
	} else if (op->first && res->status != -ECANCELED && res->seq > op->seq &&
		   !unwrap(res, v, &vlen) && !conn_record_parse(v, vlen, &rec)) {
		newer = 1; /* the lookup's end found a later record than the first */
	}
	pthread_mutex_unlock(&op->mu);
	if (newer && !atomic_load(&op->cn->freeing)) {
		pthread_mutex_lock(&op->cn->mu);
		cache_store(op->cn, op->key, &rec, res->seq, now_ms(op->cn));
		seen_from_record(op->cn, op->key, &rec, now_ms(op->cn));
		pthread_mutex_unlock(&op->cn->mu);
	}
	resolve_put(op);
}

static void get_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct resolve_op *op = arg;
	int err;

	/* At most CONN_MAX_REVALIDATE lookups go on after their first
	 * record: beyond, one ends there (its slot of the DHT's 64 lookups
	 * is free at once: a burst of dials cannot starve announces). */
	err = dht_get_first(dht, op->key, (const uint8_t *)CONN_SALT, strlen(CONN_SALT),
			    !op->full && op->cn->revalidating >= CONN_MAX_REVALIDATE, now, get_first,
			    get_done, op);
	if (err) {
		struct dht_result res = { .op = DHT_OP_GET, .status = err };

		get_done(op, &res);
	}
}

static struct cache_ent *cache_find(struct conn_node *cn, const uint8_t *key, uint64_t now)
{
	for (unsigned int i = 0; i < cn->o.cache_max; i++) {
		struct cache_ent *e = &cn->cache[i];

		if (e->used && !memcmp(e->key, key, CONN_KEY_LEN)) {
			if (now >= e->expires_ms) {
				e->used = 0;
				return NULL;
			}
			return e;
		}
	}
	return NULL;
}

static void cache_store(struct conn_node *cn, const uint8_t *key, const struct conn_record *rec,
			int64_t seq, uint64_t now)
{
	struct cache_ent *e = NULL, *lru = NULL;

	for (unsigned int i = 0; i < cn->o.cache_max; i++) {
		struct cache_ent *x = &cn->cache[i];

		/* A later record already there (a lookup's end beat its
		 * first answer's waiter), or a record where a fresh lookup
		 * found none (a DHT that did not answer): keep it. */
		if (x->used && !x->negative && now < x->expires_ms && (x->seq > seq || !rec) &&
		    !memcmp(x->key, key, CONN_KEY_LEN))
			return;
	}

	for (unsigned int i = 0; i < cn->o.cache_max && !e; i++) {
		struct cache_ent *x = &cn->cache[i];

		if (x->used && !memcmp(x->key, key, CONN_KEY_LEN))
			e = x;
		else if (!x->used || now >= x->expires_ms)
			e = x;
		else if (!lru || x->last_use < lru->last_use)
			lru = x;
	}
	if (!e)
		e = lru; /* full: the least recently used entry goes */
	memset(e, 0, sizeof(*e));
	e->used = 1;
	memcpy(e->key, key, CONN_KEY_LEN);
	e->last_use = ++cn->tick;
	e->seq = seq;
	if (rec) {
		e->rec = *rec;
		/* A record with neither address nor relay (written before its
		 * node knew how it is reached) is kept no longer than a
		 * not_found: its node re-puts as soon as it learns one. */
		e->expires_ms = now + (rec->naddrs || rec->nrelays
					   ? (uint64_t)cn->o.cache_ttl_s * 1000
					   : CONN_NEG_TTL_S * 1000ULL);
	} else {
		e->negative = 1;
		e->expires_ms = now + CONN_NEG_TTL_S * 1000ULL;
	}
}

/* ------------------------------------------------------------ relays seen */

static void seen_add(struct conn_node *cn, const uint8_t *key, const struct io_addr *a,
		     uint64_t now)
{
	struct seen_relay *e = NULL, *fr = NULL, *lru = NULL;

	if (!memcmp(key, cn->o.id->pk, CONN_KEY_LEN) || !a->family || !a->port)
		return;
	for (unsigned int i = 0; i < cn->o.seen_relays_max && !e; i++) {
		struct seen_relay *x = &cn->seen[i];

		if (x->used && !memcmp(x->r.key, key, CONN_KEY_LEN))
			e = x;
		else if (!x->used || now >= x->seen_ms + CONN_SEEN_RELAY_TTL_S * 1000ULL)
			fr = fr ? fr : x;
		else if (!lru || x->seen_ms < lru->seen_ms)
			lru = x;
	}
	if (!e)
		e = fr ? fr : lru; /* full: the entry seen longest ago goes */
	e->used = 1;
	memcpy(e->r.key, key, CONN_KEY_LEN);
	e->r.addr = *a;
	e->seen_ms = now;
}

/* Under cn->mu: the relay candidates a freshly fetched record names. */
static void seen_from_record(struct conn_node *cn, const uint8_t *key,
			     const struct conn_record *rec, uint64_t now)
{
	for (unsigned int i = 0; i < rec->nrelays; i++)
		seen_add(cn, rec->relays[i].key, &rec->relays[i].addr, now);
	if ((rec->caps & CONN_CAP_RELAY) && rec->naddrs)
		seen_add(cn, key, &rec->addrs[0], now);
}

unsigned int conn_node_seen_relays(struct conn_node *cn, struct conn_relay *out, unsigned int max)
{
	uint64_t ms[64], now;
	unsigned int n = 0;

	if (!cn || !out)
		return 0;
	if (max > 64)
		max = 64;
	now = now_ms(cn);
	pthread_mutex_lock(&cn->mu);
	/* insertion into out, newest first, keeping the max newest */
	for (unsigned int i = 0; i < cn->o.seen_relays_max; i++) {
		struct seen_relay *x = &cn->seen[i];
		unsigned int p;

		if (!x->used || now >= x->seen_ms + CONN_SEEN_RELAY_TTL_S * 1000ULL)
			continue;
		for (p = n; p > 0 && ms[p - 1] < x->seen_ms; p--)
			;
		if (p >= max)
			continue;
		if (n == max)
			n--;
		memmove(&out[p + 1], &out[p], (n - p) * sizeof(*out));
		memmove(&ms[p + 1], &ms[p], (n - p) * sizeof(*ms));
		out[p] = x->r;
		ms[p] = x->seen_ms;
		n++;
	}
	pthread_mutex_unlock(&cn->mu);
	return n;
}

void conn_node_seen_relay_drop(struct conn_node *cn, const uint8_t key[CONN_KEY_LEN])
{
	if (!cn || !key)
		return;
	pthread_mutex_lock(&cn->mu);
	for (unsigned int i = 0; i < cn->o.seen_relays_max; i++)
		if (cn->seen[i].used && !memcmp(cn->seen[i].r.key, key, CONN_KEY_LEN))
			cn->seen[i].used = 0;
	pthread_mutex_unlock(&cn->mu);
}

void conn_node_cache_flush(struct conn_node *cn)
{
	pthread_mutex_lock(&cn->mu);
	memset(cn->cache, 0, cn->o.cache_max * sizeof(*cn->cache));
	pthread_mutex_unlock(&cn->mu);
}

int conn_node_resolve(struct conn_node *cn, const uint8_t key[CONN_KEY_LEN],
		      struct conn_record *rec, int *cached)
{
	return conn_node_resolve_within(cn, key, rec, cached, 0);
}

int conn_node_resolve_within(struct conn_node *cn, const uint8_t key[CONN_KEY_LEN],
			     struct conn_record *rec, int *cached, unsigned int timeout_ms)
{
	return conn_node_resolve_opts(cn, key, rec, cached, timeout_ms, 0);
}

int conn_node_resolve_opts(struct conn_node *cn, const uint8_t key[CONN_KEY_LEN],
			   struct conn_record *rec, int *cached, unsigned int timeout_ms,
			   unsigned int flags)
{
	unsigned int wait_ms;
	struct resolve_op *op;
	struct cache_ent *e;
	int64_t op_seq;
	struct timespec ts;
	uint64_t now;
	int err;

	if (!cn || !key || !rec)
		return -EINVAL;
	if (cached)
		*cached = 0;
	atomic_fetch_add(&cn->resolves, 1);
	now = now_ms(cn);
	pthread_mutex_lock(&cn->mu);
	e = flags & CONN_RESOLVE_FRESH ? NULL : cache_find(cn, key, now);
	if (e && e->negative && (flags & CONN_RESOLVE_PAST_MISS)) {
		e = NULL;
		atomic_fetch_add(&cn->misses_rechecked, 1);
	}
	if (e) {
		e->last_use = ++cn->tick;
		err = e->negative ? -ENOENT : 0;
		if (!err)
			*rec = e->rec;
		pthread_mutex_unlock(&cn->mu);
		atomic_fetch_add(&cn->cache_hits, 1);
		if (cached)
			*cached = 1;
		return err;
	}
	pthread_mutex_unlock(&cn->mu);

	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	pthread_mutex_init(&op->mu, NULL);
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&op->cv, &ca);
	pthread_condattr_destroy(&ca);
	memcpy(op->key, key, CONN_KEY_LEN);
	op->cn = cn;
	op->full = !!(flags & CONN_RESOLVE_FRESH);
	op->refs = 2;
	err = dhtnode_run(cn->o.dht, get_fn, op);
	if (err) {
		op->refs = 1;
		resolve_put(op);
		return err;
	}
	wait_ms = timeout_ms && timeout_ms < cn->o.resolve_ms ? timeout_ms : cn->o.resolve_ms;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += wait_ms / 1000;
	ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&op->mu);
	while (!op->done)
		if (pthread_cond_timedwait(&op->cv, &op->mu, &ts) == ETIMEDOUT)
			break;
	if (!op->done && op->have_fb && !op->fb_status) {
		/* fresh, and the lookup outlived the deadline: its first
		 * valid answer is the best known */
		op->status = 0;
		op->seq = op->fb_seq;
		op->vlen = op->fb_vlen;
		memcpy(op->v, op->fb_v, op->fb_vlen);
		op->done = 1;
	}
	err = op->done ? op->status : -ETIMEDOUT;
	if (!err)
		err = conn_record_parse(op->v, op->vlen, rec);
	op_seq = op->seq;
	pthread_mutex_unlock(&op->mu);
	resolve_put(op);
	if (err == -ETIMEDOUT && wait_ms < cn->o.resolve_ms)
		return -ETIMEDOUT; /* the caller's budget ran out: nothing learned */
	if (err == -EHOSTUNREACH)
		return -ENETUNREACH; /* our routing table is empty (not joined
				      * yet): nothing learned of the key,
				      * nothing remembered */
	if (err == -ETIMEDOUT)
		err = -ENOENT; /* no record found within the deadline */
	now = now_ms(cn);
	if (!err || err == -ENOENT) {
		pthread_mutex_lock(&cn->mu);
		cache_store(cn, key, err ? NULL : rec, op_seq, now);
		if (!err)
			seen_from_record(cn, key, rec, now);
		pthread_mutex_unlock(&cn->mu);
	}
	return err == -EPROTONOSUPPORT || err == -EINVAL ? -EBADMSG : err;
}

/* ------------------------------------------------------------ JSON and control */

json_t *conn_record_json(const struct conn_record *rec)
{
	json_t *o = json_object(), *a = json_array(), *r = json_array(), *c = json_array();
	json_t *m = json_array();
	char buf[64], hex[2 * CONN_KEY_LEN + 1];
	unsigned int i;

	for (i = 0; i < rec->naddrs; i++)
		json_array_append_new(a, json_string(io_addr_fmt(&rec->addrs[i], buf, sizeof(buf))));
	for (i = 0; i < rec->nrelays; i++) {
		util_hex(hex, rec->relays[i].key, CONN_KEY_LEN);
		json_array_append_new(
		    r, json_pack("{s:s,s:s}", "key", hex, "addr",
				 io_addr_fmt(&rec->relays[i].addr, buf, sizeof(buf))));
	}
	for (i = 0; i < rec->nanchors; i++) {
		util_hex(hex, rec->anchors[i].key, CONN_KEY_LEN);
		json_array_append_new(
		    m, json_pack("{s:s,s:s}", "key", hex, "addr",
				 io_addr_fmt(&rec->anchors[i].addr, buf, sizeof(buf))));
	}
	if (rec->caps & CONN_CAP_MAILBOX)
		json_array_append_new(c, json_string("mailbox"));
	if (rec->caps & CONN_CAP_RELAY)
		json_array_append_new(c, json_string("relay"));
	if (rec->caps & CONN_CAP_SEED)
		json_array_append_new(c, json_string("seed"));
	if (rec->caps & CONN_CAP_GATEWAY)
		json_array_append_new(c, json_string("gateway"));
	json_object_set_new(o, "version", json_integer(rec->version));
	json_object_set_new(o, "addrs", a);
	json_object_set_new(o, "relays", r);
	json_object_set_new(o, "anchors", m);
	json_object_set_new(o, "caps", c);
	json_object_set_new(o, "caps_bits", json_integer(rec->caps));
	json_object_set_new(o, "ts", json_integer((json_int_t)rec->ts));
	return o;
}

json_t *conn_node_status_json(struct conn_node *cn)
{
	struct conn_vote_state st;
	struct conn_record pub;
	int have;
	json_t *o, *refl = json_array();
	char buf[64];

	pthread_mutex_lock(&cn->mu);
	conn_votes_state(cn->votes, cn->o.quic_port, now_ms(cn), &st);
	pub = cn->published;
	have = cn->have_published;
	pthread_mutex_unlock(&cn->mu);
	for (unsigned int i = 0; i < st.nrefl; i++) {
		struct io_addr a = st.refl[i].addr;

		json_array_append_new(refl, json_pack("{s:s,s:i}", "addr",
						      io_addr_fmt(&a, buf, sizeof(buf)), "voters",
						      (int)st.refl[i].voters));
	}
	o = json_pack("{s:o,s:s,s:i,s:I,s:I}", "reflexive", refl, "nat", conn_nat_name(st.nat),
		      "votes", (int)st.voters, "record_puts", (json_int_t)atomic_load(&cn->puts),
		      "record_puts_failed", (json_int_t)atomic_load(&cn->puts_failed));
	json_object_set_new(o, "record_put_retry_ms",
			    json_integer((json_int_t)atomic_load(&cn->put_retry_ms)));
	json_object_set_new(o, "record", have ? conn_record_json(&pub) : json_null());
	return o;
}

static void ctl_resolve(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct conn_node *cn = arg;
	const char *hex = NULL;
	uint8_t key[CONN_KEY_LEN];
	struct conn_record rec;
	int cached = 0, fresh = 0, err;
	json_t *o;

	if (req->json) {
		hex = json_string_value(json_object_get(req->json, "key"));
		fresh = json_is_true(json_object_get(req->json, "fresh"));
	} else {
		hex = ctl_req_query(req, "key");
		fresh = ctl_req_query(req, "fresh") && !strcmp(ctl_req_query(req, "fresh"), "1");
	}
	if (!hex || strlen(hex) != 2 * CONN_KEY_LEN || util_unhex(key, CONN_KEY_LEN, hex)) {
		ctl_resp_error(resp, 400, "bad_request", "key: 64 hex digits required");
		return;
	}
	err = conn_node_resolve_opts(cn, key, &rec, &cached, 0, fresh ? CONN_RESOLVE_FRESH : 0);
	if (err == -ENOENT) {
		ctl_resp_error(resp, 404, "not_found",
			       "no node record for %.16s... in the DHT (deadline %u ms)", hex,
			       cn->o.resolve_ms);
		return;
	}
	if (err == -ENETUNREACH) {
		ctl_resp_error(resp, 503, "no_nodes",
			       "the routing table is empty (bootstrap first): no node to ask for "
			       "%.16s...'s record",
			       hex);
		return;
	}
	if (err == -EBADMSG) {
		ctl_resp_error(resp, 502, "bad_record", "the node record of %.16s... does not parse",
			       hex);
		return;
	}
	if (err) {
		ctl_resp_errno(resp, err, "resolve");
		return;
	}
	o = conn_record_json(&rec);
	json_object_set_new(o, "key", json_string(hex));
	json_object_set_new(o, "cached", json_boolean(cached));
	ctl_resp_json(resp, 200, o);
}

static void conn_metrics(void *arg, FILE *out)
{
	struct conn_node *cn = arg;

	fprintf(out,
		"# HELP weft_node_record_puts_total Node record puts started.\n"
		"# TYPE weft_node_record_puts_total counter\nweft_node_record_puts_total %llu\n"
		"# HELP weft_node_record_puts_failed_total Node record puts stored nowhere.\n"
		"# TYPE weft_node_record_puts_failed_total counter\n"
		"weft_node_record_puts_failed_total %llu\n"
		"# HELP weft_node_resolves_total Key resolutions asked.\n"
		"# TYPE weft_node_resolves_total counter\nweft_node_resolves_total %llu\n"
		"# HELP weft_node_resolve_cache_hits_total Resolutions answered by the cache.\n"
		"# TYPE weft_node_resolve_cache_hits_total counter\n"
		"weft_node_resolve_cache_hits_total %llu\n"
		"# HELP weft_node_resolve_misses_rechecked_total Dials by key that asked the DHT past "
		"a cached miss.\n"
		"# TYPE weft_node_resolve_misses_rechecked_total counter\n"
		"weft_node_resolve_misses_rechecked_total %llu\n"
		"# HELP weft_node_addr_votes_total Reflexive address observations received.\n"
		"# TYPE weft_node_addr_votes_total counter\nweft_node_addr_votes_total %llu\n",
		(unsigned long long)atomic_load(&cn->puts),
		(unsigned long long)atomic_load(&cn->puts_failed),
		(unsigned long long)atomic_load(&cn->resolves),
		(unsigned long long)atomic_load(&cn->cache_hits),
		(unsigned long long)atomic_load(&cn->misses_rechecked),
		(unsigned long long)atomic_load(&cn->votes_in));
}

/* ------------------------------------------------------------ lifecycle */

int conn_node_new(struct conn_node **out, const struct conn_node_opts *opts)
{
	struct conn_node *cn;
	int err;

	*out = NULL;
	if (!opts || !opts->eng || !opts->dht || !opts->id || opts->nannounce > CONN_REC_MAX_ADDRS ||
	    opts->nlocal > CONN_REC_MAX_ADDRS)
		return -EINVAL;
	cn = calloc(1, sizeof(*cn));
	if (!cn)
		return -ENOMEM;
	cn->o = *opts;
	if (!cn->o.cache_max)
		cn->o.cache_max = CONN_DEF_CACHE_MAX;
	if (!cn->o.cache_ttl_s)
		cn->o.cache_ttl_s = CONN_DEF_CACHE_TTL_S;
	if (!cn->o.resolve_ms)
		cn->o.resolve_ms = CONN_DEF_RESOLVE_MS;
	if (!cn->o.seen_relays_max)
		cn->o.seen_relays_max = CONN_DEF_SEEN_RELAYS;
	pthread_mutex_init(&cn->mu, NULL);
	engine_timer_init(&cn->timer, publish_tick, cn);
	cn->cache = calloc(cn->o.cache_max, sizeof(*cn->cache));
	cn->seen = calloc(cn->o.seen_relays_max, sizeof(*cn->seen));
	err = cn->cache && cn->seen ? conn_votes_new(&cn->votes) : -ENOMEM;
	if (err)
		goto fail;
	conn_votes_set_local(cn->votes, cn->o.local, cn->o.nlocal);
	conn_votes_set_voter_nets(cn->votes, cn->o.voter_nets, cn->o.nvoter_nets);
	if (cn->o.ctl) {
		err = ctl_route(cn->o.ctl, "GET", "/v1/node/resolve", ctl_resolve, cn);
		if (!err)
			err = ctl_route(cn->o.ctl, "POST", "/v1/node/resolve", ctl_resolve, cn);
		if (!err)
			err = ctl_metrics(cn->o.ctl, conn_metrics, cn);
		if (err)
			goto fail;
	}
	*out = cn;
	return 0;
fail:
	conn_node_free(cn);
	return err;
}

int conn_node_start(struct conn_node *cn)
{
	int err = engine_call(cn->o.eng, 0, start_cmd, cn);

	if (!err)
		cn->started = 1;
	return err;
}

/* After engine_stop(): the timer no longer runs. */
void conn_node_free(struct conn_node *cn)
{
	if (!cn)
		return;
	atomic_store(&cn->freeing, 1);
	conn_votes_free(cn->votes);
	free(cn->cache);
	free(cn->seen);
	pthread_mutex_destroy(&cn->mu);
	free(cn);
}
