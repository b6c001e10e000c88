// SPDX-License-Identifier: MIT
/*
 * The serving scheduler: deficit round robin across requesting peers,
 * token-bucket caps (per peer, and a node-wide cap split between the
 * schedulers of every worker in proportion to their backlogged peers),
 * requester scores. A protocol core:
 * no I/O, no lock, no clock of its own (sched.h; docs/CONTENT.md
 * "Fair, capped serving").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "content/sched.h"
#include "weft/util.h"

#define NS 1000000000ull

const unsigned int cn_fault_cost[CN_FAULT_N] = {
    [CN_FAULT_UNANNOUNCED] = 10,
    [CN_FAULT_REPEAT] = 5,
    [CN_FAULT_STREAMS] = 20,
    [CN_FAULT_BAD] = 25,
};

/* ---------------------------------------------------------- token bucket */

static int64_t depth_of(uint64_t rate)
{
	uint64_t d = rate * CN_SCHED_BURST_MS / 1000;

	return (int64_t)(d < CN_SCHED_QUANTUM ? CN_SCHED_QUANTUM : d);
}

/* Refill a bucket of rate to now (single owner or CAS-shared). */
static int64_t refill(int64_t tokens, uint64_t rate, uint64_t dt_ns)
{
	int64_t depth = depth_of(rate);

	if (dt_ns > 10 * NS)
		dt_ns = 10 * NS; /* caps the product; a bucket fills in well under that */
	tokens += (int64_t)(dt_ns * rate / NS);
	return tokens > depth ? depth : tokens;
}

void cn_rate_set(struct cn_rate *r, uint64_t bytes_per_s)
{
	atomic_store(&r->rate, bytes_per_s);
}

/* ------------------------------------------------------------- the peers */

struct peer {
	uint64_t peer;
	struct sockaddr_storage addr;
	uint8_t used, cls, fresh_turn, reported;
	uint16_t hnext;	     /* hash chain: index + 1 */
	uint16_t prev, next; /* active ring: index + 1 */
	uint8_t active;
	struct cn_sched_item *q; /* peer_queue items, allocated on first push */
	unsigned int qhead, qlen;
	int64_t deficit;
	int64_t tokens; /* own bucket */
	uint64_t tok_ns;
	uint64_t score_milli, score_ns;
	uint64_t sent, served, last_ns;
	uint64_t hold_ns; /* passed over until then (cn_sched_defer) */
	uint64_t win[CN_SCHED_RATE_SLOTS], win_s[CN_SCHED_RATE_SLOTS];
	uint64_t seen[CN_SCHED_SEEN];
	uint64_t seen_ns[CN_SCHED_SEEN]; /* when each was served */
	unsigned int nseen, streams;
};

/* An address's score (cn_sched_fault), keyed by util_addr_key: an IPv4
 * address (also when IPv4-mapped), an IPv6 /64 (one host's usual share: a
 * requester hopping within its /64 stays one). */
#define CN_BLAME_V6_BITS 64
struct cn_blame {
	uint8_t key[UTIL_ADDR_KEY_LEN];
	uint64_t score_milli, score_ns;
};

struct cn_sched {
	struct cn_sched_opts o;
	struct cn_sched_limits lim;
	struct cn_rate *global;
	/* this scheduler's part of the global cap: rate x its backlogged
	 * peers that use it / all such peers of every scheduler sharing it
	 * (published in global->active), in a bucket of its own */
	uint64_t gmine;	    /* published in global->active */
	int64_t gtokens;    /* INT64_MAX: full at the next refill */
	uint64_t g_ns;
	struct peer *p;
	unsigned int nused; /* p[0..nused) have been used: no scan reads past
			     * them (an untouched page read is a page of RSS
			     * on hosts without the shared zero page) */
	uint16_t *bucket;
	unsigned int nbucket;
	uint16_t ring; /* the active peer at the head of the ring: index + 1 */
	unsigned int nactive, queued;
	/* requester addresses' scores, which outlive their connections:
	 * CN_SCHED_BLAME, allocated at the first fault */
	struct cn_blame *blame;
	unsigned int nblame;
};

static unsigned int hash_of(const struct cn_sched *s, uint64_t peer)
{
	uint64_t h = peer * 0x9e3779b97f4a7c15ull;

	return (unsigned int)((h ^ (h >> 31)) & (s->nbucket - 1));
}

int cn_sched_new(struct cn_sched **out, const struct cn_sched_opts *o, struct cn_rate *global)
{
	struct cn_sched *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	if (o)
		s->o = *o;
	if (!s->o.quantum)
		s->o.quantum = CN_SCHED_QUANTUM;
	if (!s->o.max_peers || s->o.max_peers > 32768)
		s->o.max_peers = CN_SCHED_PEERS;
	if (!s->o.peer_queue)
		s->o.peer_queue = CN_SCHED_PEER_QUEUE;
	if (!s->o.ban_score)
		s->o.ban_score = CN_SCHED_BAN_SCORE;
	if (!s->o.decay_s)
		s->o.decay_s = CN_SCHED_DECAY_S;
	s->global = global;
	s->gtokens = INT64_MAX;
	for (s->nbucket = 1; s->nbucket < 2 * s->o.max_peers; s->nbucket <<= 1)
		;
	s->p = calloc(s->o.max_peers, sizeof(*s->p));
	s->bucket = calloc(s->nbucket, sizeof(*s->bucket));
	if (!s->p || !s->bucket) {
		cn_sched_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void cn_sched_free(struct cn_sched *s)
{
	if (!s)
		return;
	if (s->global && s->gmine)
		atomic_fetch_sub(&s->global->active, s->gmine);
	if (s->p)
		for (unsigned int i = 0; i < s->nused; i++)
			free(s->p[i].q);
	free(s->p);
	free(s->bucket);
	free(s->blame);
	free(s);
}

void cn_sched_limits(struct cn_sched *s, const struct cn_sched_limits *l)
{
	s->lim = *l;
}

static struct peer *find(struct cn_sched *s, uint64_t peer)
{
	for (uint16_t ix = s->bucket[hash_of(s, peer)]; ix; ix = s->p[ix - 1].hnext)
		if (s->p[ix - 1].peer == peer)
			return &s->p[ix - 1];
	return NULL;
}

static void unhash(struct cn_sched *s, struct peer *p)
{
	uint16_t ix = (uint16_t)(p - s->p + 1), *link;

	for (link = &s->bucket[hash_of(s, p->peer)]; *link; link = &s->p[*link - 1].hnext)
		if (*link == ix) {
			*link = p->hnext;
			break;
		}
}

/* peer's entry, or a new one: a free slot, else the idle entry seen
 * longest ago (nothing queued and no fetch stream open; its score goes
 * with it); NULL when every entry has requests queued or streams open, so
 * a live connection's stream count is never lost to a newcomer. */
static struct peer *get(struct cn_sched *s, uint64_t peer, uint64_t now)
{
	struct peer *p = find(s, peer), *pick = NULL;
	unsigned int h;

	if (p)
		return p;
	if (s->nused < s->o.max_peers)
		pick = &s->p[s->nused++];
	else
		for (unsigned int i = 0; i < s->nused; i++) {
			struct peer *e = &s->p[i];

			if (!e->qlen && !e->streams && (!pick || e->last_ns < pick->last_ns))
				pick = e;
		}
	if (!pick)
		return NULL;
	if (pick->used)
		unhash(s, pick);
	free(pick->q);
	memset(pick, 0, sizeof(*pick));
	pick->used = 1;
	pick->peer = peer;
	pick->tok_ns = now;
	pick->tokens = INT64_MAX; /* set on the first refill: full */
	pick->last_ns = now;
	h = hash_of(s, peer);
	pick->hnext = s->bucket[h];
	s->bucket[h] = (uint16_t)(pick - s->p + 1);
	return pick;
}

static uint64_t peer_rate(const struct cn_sched *s, const struct peer *p)
{
	return p->cls == CN_CLASS_LAN ? s->lim.lan_rate : s->lim.peer_rate;
}

/* The peer's own bucket: 1 when not in debt, else 0 and *wait. */
static int peer_ready(const struct cn_sched *s, struct peer *p, uint64_t now, uint64_t *wait)
{
	uint64_t rate = peer_rate(s, p);

	if (!rate)
		return 1;
	if (p->tokens == INT64_MAX)
		p->tokens = depth_of(rate);
	else if (now > p->tok_ns)
		p->tokens = refill(p->tokens, rate, now - p->tok_ns);
	else if (p->tokens > depth_of(rate))
		p->tokens = depth_of(rate); /* the rate went down */
	p->tok_ns = now > p->tok_ns ? now : p->tok_ns;
	if (p->tokens >= 0)
		return 1;
	*wait = ((uint64_t)-p->tokens * NS + rate - 1) / rate;
	return 0;
}

static int uses_global(const struct cn_sched *s, const struct peer *p)
{
	return s->global && (p->cls != CN_CLASS_LAN || s->lim.lan_global);
}

/* Publish how many backlogged peers here use the global cap, and refill
 * this scheduler's part of it to now: 1 when it may send (not in debt),
 * else 0 and *wait. */
static int global_ready(struct cn_sched *s, uint64_t now, uint64_t *wait)
{
	uint64_t rate = atomic_load(&s->global->rate), mine = 0, total, my;
	uint16_t ix = s->ring;

	for (unsigned int k = 0; ix && k < s->nactive; k++, ix = s->p[ix - 1].next)
		mine += s->global && (s->p[ix - 1].cls != CN_CLASS_LAN || s->lim.lan_global);
	if (mine != s->gmine) {
		atomic_fetch_add(&s->global->active, mine - s->gmine); /* wraps as it should */
		s->gmine = mine;
	}
	if (!rate || !mine)
		return 1;
	total = atomic_load(&s->global->active);
	if (total < mine)
		total = mine;
	my = rate * mine / total;
	if (!my)
		my = 1;
	if (s->gtokens == INT64_MAX)
		s->gtokens = depth_of(my);
	else if (now > s->g_ns)
		s->gtokens = refill(s->gtokens, my, now - s->g_ns);
	else if (s->gtokens > depth_of(my))
		s->gtokens = depth_of(my);
	s->g_ns = now > s->g_ns ? now : s->g_ns;
	if (s->gtokens >= 0)
		return 1;
	*wait = ((uint64_t)-s->gtokens * NS + my - 1) / my;
	/* the split moves with the other schedulers' peers: look again soon
	 * rather than sleep on a part that may have grown meanwhile */
	if (*wait > CN_SCHED_GLOBAL_RECHECK_NS)
		*wait = CN_SCHED_GLOBAL_RECHECK_NS;
	return 0;
}

static void global_take(struct cn_sched *s, int64_t cost)
{
	if (atomic_load(&s->global->rate) && s->gtokens != INT64_MAX)
		s->gtokens -= cost;
}

static void ring_add(struct cn_sched *s, struct peer *p)
{
	uint16_t ix = (uint16_t)(p - s->p + 1);

	p->active = 1;
	p->fresh_turn = 1;
	if (!s->ring) {
		p->prev = p->next = ix;
		s->ring = ix;
	} else {
		/* at the tail: just before the head */
		struct peer *h = &s->p[s->ring - 1];

		p->next = s->ring;
		p->prev = h->prev;
		s->p[h->prev - 1].next = ix;
		h->prev = ix;
	}
	s->nactive++;
}

static void ring_del(struct cn_sched *s, struct peer *p)
{
	uint16_t ix = (uint16_t)(p - s->p + 1);

	if (!p->active)
		return;
	if (p->next == ix) {
		s->ring = 0;
	} else {
		s->p[p->prev - 1].next = p->next;
		s->p[p->next - 1].prev = p->prev;
		if (s->ring == ix)
			s->ring = p->next;
	}
	p->active = 0;
	p->deficit = 0;
	s->nactive--;
}

int cn_sched_push(struct cn_sched *s, uint64_t peer, enum cn_class cls,
		  const struct sockaddr_storage *addr, const struct cn_sched_item *it,
		  uint64_t now_ns)
{
	struct peer *p = get(s, peer, now_ns);

	if (!p)
		return -ENOSPC;
	if (!p->q) {
		p->q = malloc(s->o.peer_queue * sizeof(*p->q));
		if (!p->q)
			return -ENOMEM;
		p->cls = (uint8_t)cls;
		if (addr)
			p->addr = *addr;
	}
	if (p->qlen == s->o.peer_queue)
		return -ENOBUFS;
	p->q[(p->qhead + p->qlen) % s->o.peer_queue] = *it;
	p->qlen++;
	p->last_ns = now_ns;
	s->queued++;
	if (!p->active)
		ring_add(s, p);
	return 0;
}

static void count_sent(struct cn_sched *s, struct peer *p, int64_t bytes, uint64_t now)
{
	uint64_t sec = now / NS;
	unsigned int k = (unsigned int)(sec % CN_SCHED_RATE_SLOTS);

	(void)s;
	if (p->win_s[k] != sec) {
		p->win_s[k] = sec;
		p->win[k] = 0;
	}
	p->win[k] += (uint64_t)bytes;
	p->sent += (uint64_t)bytes;
	p->last_ns = now;
}

int cn_sched_next(struct cn_sched *s, uint64_t now_ns, struct cn_sched_item *out,
		  uint64_t *wake_ns)
{
	uint64_t gwait = UINT64_MAX, best = UINT64_MAX, w;
	int gok = 1;
	unsigned int idle = 0;

	if (!s->ring) {
		*wake_ns = UINT64_MAX;
		return 0;
	}
	if (s->global && !global_ready(s, now_ns, &gwait))
		gok = 0;
	/* Each pass either serves, gives a peer a new turn (its deficit
	 * grows: it fits after a bounded number of turns) or passes over a
	 * capped peer; stop when a whole round passed only capped peers. */
	while (s->ring && idle < s->nactive) {
		struct peer *p = &s->p[s->ring - 1];
		struct cn_sched_item *it = &p->q[p->qhead];

		w = p->hold_ns > now_ns ? p->hold_ns - now_ns : UINT64_MAX;
		if (w != UINT64_MAX || !peer_ready(s, p, now_ns, &w) ||
		    (uses_global(s, p) && !gok)) {
			if (uses_global(s, p) && !gok && gwait < w)
				w = gwait;
			if (w < best)
				best = w;
			s->ring = p->next; /* keeps its turn state */
			idle++;
			continue;
		}
		idle = 0;
		if (p->fresh_turn) {
			p->deficit += s->o.quantum;
			p->fresh_turn = 0;
		}
		if ((int64_t)it->cost > p->deficit) {
			p->fresh_turn = 1;
			s->ring = p->next;
			continue;
		}
		*out = *it;
		p->deficit -= it->cost;
		p->qhead = (p->qhead + 1) % s->o.peer_queue;
		p->qlen--;
		s->queued--;
		p->served++;
		count_sent(s, p, it->cost, now_ns);
		if (peer_rate(s, p))
			p->tokens -= it->cost;
		if (uses_global(s, p))
			global_take(s, it->cost);
		if (!p->qlen)
			ring_del(s, p);
		return 1;
	}
	*wake_ns = best;
	return 0;
}

void cn_sched_unpop(struct cn_sched *s, const struct cn_sched_item *it)
{
	struct peer *p = find(s, it->r.conn);
	uint64_t sec;
	unsigned int k;

	if (!p || !p->q || p->qlen == s->o.peer_queue)
		return; /* forgotten meanwhile: the caller's item is dropped */
	p->qhead = (p->qhead + s->o.peer_queue - 1) % s->o.peer_queue;
	p->q[p->qhead] = *it;
	p->qlen++;
	s->queued++;
	p->served--;
	p->sent -= it->cost;
	sec = p->last_ns / NS;
	k = (unsigned int)(sec % CN_SCHED_RATE_SLOTS);
	if (p->win_s[k] == sec && p->win[k] >= it->cost)
		p->win[k] -= it->cost;
	if (peer_rate(s, p))
		p->tokens += it->cost;
	if (uses_global(s, p))
		global_take(s, -(int64_t)it->cost);
	if (!p->active) {
		ring_add(s, p);
		s->ring = (uint16_t)(p - s->p + 1);
	}
	p->deficit += it->cost;
	p->fresh_turn = 0;
}

void cn_sched_defer(struct cn_sched *s, const struct cn_sched_item *it, uint64_t until_ns)
{
	struct peer *p;

	cn_sched_unpop(s, it);
	p = find(s, it->r.conn);
	if (p)
		p->hold_ns = until_ns;
}

void cn_sched_account(struct cn_sched *s, uint64_t peer, int64_t bytes, uint64_t now_ns)
{
	struct peer *p = find(s, peer);

	if (!p || !bytes)
		return;
	if (bytes < 0 && (uint64_t)-bytes > p->sent)
		bytes = -(int64_t)p->sent;
	count_sent(s, p, bytes, now_ns);
	if (peer_rate(s, p))
		p->tokens -= bytes;
	if (uses_global(s, p))
		global_take(s, bytes);
}

/* A score (milli-points) set at at_ns, decayed to now: halves every
 * decay_s. */
static uint64_t decay(const struct cn_sched *s, uint64_t v, uint64_t at_ns, uint64_t now)
{
	uint64_t half = (uint64_t)s->o.decay_s * NS, dt;

	if (now <= at_ns || !v)
		return v;
	dt = now - at_ns;
	if (dt / half >= 64)
		return 0;
	v >>= dt / half;
	/* within a half-life: linear between 1 and 1/2 */
	return v - v * (dt % half) / (2 * half);
}

static uint64_t decayed(const struct cn_sched *s, const struct peer *p, uint64_t now)
{
	return decay(s, p->score_milli, p->score_ns, now);
}

/* The address's entry, or a new one: a free slot, else the one whose
 * score has decayed lowest (a flood of new addresses replaces each other,
 * not the abuser with a high score). NULL only when out of memory. */
static struct cn_blame *blame_get(struct cn_sched *s, const uint8_t key[UTIL_ADDR_KEY_LEN],
				  uint64_t now)
{
	struct cn_blame *pick = NULL;
	uint64_t low = UINT64_MAX;

	if (!s->blame) {
		s->blame = calloc(CN_SCHED_BLAME, sizeof(*s->blame));
		if (!s->blame)
			return NULL;
	}
	for (unsigned int i = 0; i < s->nblame; i++) {
		struct cn_blame *b = &s->blame[i];
		uint64_t v;

		if (!memcmp(b->key, key, UTIL_ADDR_KEY_LEN))
			return b;
		v = decay(s, b->score_milli, b->score_ns, now);
		if (v < low) {
			low = v;
			pick = b;
		}
	}
	if (s->nblame < CN_SCHED_BLAME)
		pick = &s->blame[s->nblame++];
	memset(pick, 0, sizeof(*pick));
	memcpy(pick->key, key, UTIL_ADDR_KEY_LEN);
	return pick;
}

int cn_sched_fault(struct cn_sched *s, uint64_t peer, const struct sockaddr_storage *addr,
		   enum cn_fault f, uint64_t now_ns)
{
	struct peer *p = get(s, peer, now_ns);
	uint64_t cost, ban;
	uint8_t key[UTIL_ADDR_KEY_LEN];
	struct cn_blame *b = NULL;
	int over = 0;

	if (f >= CN_FAULT_N)
		return 0;
	cost = 1000ull * cn_fault_cost[f];
	ban = 1000ull * s->o.ban_score;
	if (addr && util_addr_key(addr, CN_BLAME_V6_BITS, key))
		b = blame_get(s, key, now_ns);
	if (b) {
		b->score_milli = decay(s, b->score_milli, b->score_ns, now_ns) + cost;
		b->score_ns = now_ns;
		if (b->score_milli >= ban) {
			b->score_milli = 0; /* reported: from nothing after the ban */
			over = 1;
		}
	}
	if (p) {
		p->score_milli = decayed(s, p, now_ns) + cost;
		p->score_ns = now_ns;
		if (p->reported)
			return 0;
		if (p->score_milli >= ban)
			over = 1;
		p->reported = (uint8_t)over;
	}
	return over;
}

unsigned int cn_sched_trim(struct cn_sched *s, uint64_t now_ns, uint64_t idle_ns)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < s->nused; i++) {
		struct peer *p = &s->p[i];

		if (p->used && p->q && !p->qlen && now_ns >= p->last_ns &&
		    now_ns - p->last_ns >= idle_ns) {
			free(p->q);
			p->q = NULL;
			p->qhead = 0;
			n++;
		}
	}
	return n;
}

int cn_sched_seen(struct cn_sched *s, uint64_t peer, uint64_t key, uint64_t now_ns)
{
	struct peer *p = get(s, peer, now_ns);
	unsigned int n;

	if (!p)
		return 0;
	n = p->nseen < CN_SCHED_SEEN ? p->nseen : CN_SCHED_SEEN;
	for (unsigned int i = 0; i < n; i++) {
		if (p->seen[i] != key)
			continue;
		if (now_ns - p->seen_ns[i] < CN_SCHED_REPEAT_MS * 1000000ull) {
			p->seen_ns[i] = now_ns;
			return 1;
		}
		p->seen_ns[i] = now_ns; /* a retry after a timeout: served again */
		return 0;
	}
	p->seen_ns[p->nseen % CN_SCHED_SEEN] = now_ns;
	p->seen[p->nseen++ % CN_SCHED_SEEN] = key;
	return 0;
}

unsigned int cn_sched_streams(struct cn_sched *s, uint64_t peer, int delta, uint64_t now_ns)
{
	struct peer *p = delta > 0 ? get(s, peer, now_ns) : find(s, peer);

	if (!p)
		return 0;
	if (delta > 0)
		p->streams++;
	else if (delta < 0 && p->streams)
		p->streams--;
	return p->streams;
}

unsigned int cn_sched_queued(const struct cn_sched *s)
{
	return s->queued;
}

unsigned int cn_sched_peers(struct cn_sched *s, uint64_t now_ns, struct cn_sched_peer_info *out,
			    unsigned int cap)
{
	uint64_t sec = now_ns / NS;
	unsigned int n = 0;

	for (unsigned int i = 0; i < s->nused && n < cap; i++) {
		struct peer *p = &s->p[i];
		struct cn_sched_peer_info *o = &out[n];
		uint64_t sum = 0;

		if (!p->used)
			continue;
		/* the last 4 whole seconds and this one, over 5 s */
		for (unsigned int k = 0; k < CN_SCHED_RATE_SLOTS; k++)
			if (p->win_s[k] + 4 >= sec && p->win_s[k] <= sec)
				sum += p->win[k];
		memset(o, 0, sizeof(*o));
		o->peer = p->peer;
		o->cls = p->cls;
		o->queued = p->qlen;
		o->sent_bytes = p->sent;
		o->served = p->served;
		o->rate_bps = sum / 5;
		o->score = (unsigned int)(decayed(s, p, now_ns) / 1000);
		o->streams = p->streams;
		o->deficit = p->deficit > 0 ? (uint64_t)p->deficit : 0;
		o->addr = p->addr;
		n++;
	}
	return n;
}
