// SPDX-License-Identifier: MIT
/*
 * Software policer (include/weft/policer.h). The decisions come from
 * include/weft/xdp_policy.h, the code the XDP program runs; this file only
 * provides the two tables the BPF maps provide there:
 *   - bans: open addressing (linear probing, backward-shift delete) keyed by
 *     (family, prefixlen, masked address), plus a count of entries per prefix
 *     length so a lookup probes only lengths in use, longest first: the LPM
 *     trie's semantics, including "an expired entry falls back to the next
 *     shorter covering prefix, at most WXDP_BAN_MAX_NESTED times".
 *   - buckets: 8-way set-associative, least recently used way evicted: like
 *     the kernel's LRU hash, memory is fixed and a many-source flood evicts.
 * The program's third table, validated sources, is the guard's (read
 * through opts.valid without a lock); its per-CPU budgets are one bucket
 * per class here.
 *
 * Threads: the worker that calls policer_check() owns the buckets, the
 * budgets and the counters (it alone writes them; readers of counters use
 * relaxed atomic loads). The config and the ban table are written by
 * control threads (config, bans, gc) under wlock and read by the owner
 * without a lock through a sequence counter: a writer makes seq odd, writes,
 * makes it even; the owner reads the config and does the ban lookup, then
 * retries if seq moved. The ban table is a fixed array (no pointers to
 * chase) and every probe loop is bounded by its size, so a read racing a
 * write sees stale or mixed slots at worst, and the retry discards them.
 * No lock is taken per packet.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "weft/policer.h"
#include "weft/xdp_policy.h"
#include "xdp/xdp_internal.h"

#define WAYS 8
/*
 * The per-source table starts with SRC_INIT_SETS sets (512 sources, 44 KiB
 * of address space) and doubles, up to the capacity asked, when a source
 * would evict a live one. A new source lands in a random set, so a table
 * sized for 65,536 sources from the start had one page resident per source
 * met until it was dense (4 KiB per peer of an idle weftd, bench_mem); a
 * table sized to the population is dense. Under a many-source flood it
 * reaches the same capacity within a few growths (docs/XDP.md).
 */
#define SRC_INIT_SETS 64
#define SRC_MAX_TABS 64 /* tables of one policer: doublings from 1 set to 2^63 */

struct ban_slot {
	uint8_t used;
	uint8_t family;
	uint8_t prefixlen;
	uint8_t addr[16];
	uint64_t expires_ns;
};

struct src_slot {
	uint64_t tick; /* 0 = empty; else last use (LRU order) */
	struct wxdp_src_key key;
	struct wxdp_src_val val;
};

/* One size of the per-source table; immutable once published. */
struct src_tab {
	size_t nsets; /* power of two */
	size_t bytes; /* of the slot mapping */
	struct src_slot *slot;
};

struct policer {
	pthread_mutex_t wlock; /* writers of cfg and bans */
	uint32_t seq;	       /* odd while a writer changes cfg or bans */
	struct wxdp_config cfg;
	uint64_t seed;
	/* bans */
	struct ban_slot *bans;
	size_t ban_slots; /* power of two, 2x capacity */
	size_t ban_cap, ban_n;
	uint32_t plen4[33], plen6[129];
	/* buckets: the current table (atomic: policer_bucket_count reads it
	 * from any thread) and the ones it replaced, whose slots are given
	 * back to the kernel (MADV_DONTNEED: a late reader sees empty slots)
	 * and unmapped by policer_free */
	struct src_tab *src;
	struct src_tab *tabs[SRC_MAX_TABS];
	unsigned int ntabs;
	size_t nsets_max;
	uint64_t tick;
	/* global budgets of unvalidated sources, per class */
	struct wxdp_bucket budget[WXDP_CLASS__MAX];
	policer_valid_fn valid;
	void *valid_arg;
	uint64_t stats[WXDP_STAT__MAX];
	/* The last packet's source (owner only). A GRO train's datagrams come
	 * one after another from one source within one pass of the engine
	 * (one now); while the config and bans are unchanged (seq) and the
	 * bucket table is the same, their validation and their bucket are
	 * not looked up again: the rate is still taken per datagram. */
	struct {
		struct wxdp_src_key key;
		uint64_t now;
		uint32_t seq;
		const struct src_tab *tab;
		int valid; /* -1: not asked yet */
		struct wxdp_src_val *sv; /* NULL: not looked up yet */
	} last;
};

static uint64_t hash_bytes(uint64_t seed, const uint8_t *b, size_t n, uint64_t extra)
{
	uint64_t h = wxdp_mix64(seed ^ extra), w;

	for (size_t i = 0; i < n; i += 8) {
		w = 0;
		memcpy(&w, b + i, n - i < 8 ? n - i : 8);
		h = wxdp_mix64(h ^ w) + i;
	}
	return h;
}

static size_t pow2_floor(size_t v)
{
	size_t p = 1;

	while (p * 2 <= v && p * 2 != 0)
		p *= 2;
	return p;
}

/* A zeroed table of nsets sets (mapped: its pages cost nothing until
 * written), kept in p->tabs; NULL on failure. */
static struct src_tab *src_tab_new(struct policer *p, size_t nsets)
{
	struct src_tab *t;

	if (p->ntabs == SRC_MAX_TABS)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->nsets = nsets;
	t->bytes = nsets * WAYS * sizeof(struct src_slot);
	t->slot = mmap(NULL, t->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->slot == MAP_FAILED) {
		free(t);
		return NULL;
	}
	p->tabs[p->ntabs++] = t;
	return t;
}

int policer_new(struct policer **out, const struct policer_opts *opts)
{
	struct policer *p;
	struct wxdp_config cfg;
	size_t cap, buckets;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (opts && opts->config)
		cfg = *opts->config;
	else
		wxdp_config_default(&cfg);
	if (wxdp_config_check(&cfg))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->wlock, NULL);
	p->cfg = cfg;
	p->seed = opts ? opts->seed : 0;
	p->valid = opts ? opts->valid : NULL;
	p->valid_arg = opts ? opts->valid_arg : NULL;
	if (!p->seed && getrandom(&p->seed, sizeof(p->seed), 0) != sizeof(p->seed))
		p->seed = 0x9e3779b97f4a7c15ULL; /* no entropy: still bounded */
	cap = opts && opts->bans ? opts->bans : WXDP_DEFAULT_BANS;
	p->ban_cap = cap;
	for (p->ban_slots = 16; p->ban_slots < cap * 2;)
		p->ban_slots *= 2; /* load factor <= 1/2: probes stay short */
	buckets = opts && opts->buckets ? opts->buckets : WXDP_DEFAULT_BUCKETS;
	p->nsets_max = pow2_floor(buckets < WAYS ? 1 : buckets / WAYS);
	p->bans = calloc(p->ban_slots, sizeof(*p->bans));
	p->src = src_tab_new(p, p->nsets_max < SRC_INIT_SETS ? p->nsets_max : SRC_INIT_SETS);
	if (!p->bans || !p->src) {
		policer_free(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

void policer_free(struct policer *p)
{
	if (!p)
		return;
	free(p->bans);
	for (unsigned int i = 0; i < p->ntabs; i++) {
		munmap(p->tabs[i]->slot, p->tabs[i]->bytes);
		free(p->tabs[i]);
	}
	pthread_mutex_destroy(&p->wlock);
	free(p);
}

/* Writers: wlock held; seq odd between write_begin and write_end. */
static void write_begin(struct policer *p)
{
	pthread_mutex_lock(&p->wlock);
	__atomic_store_n(&p->seq, p->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void write_end(struct policer *p)
{
	__atomic_store_n(&p->seq, p->seq + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&p->wlock);
}

/* Readers: begin returns the even sequence to check against at the end. */
static uint32_t read_begin(const struct policer *p)
{
	uint32_t s;

	while ((s = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE)) & 1)
		__builtin_ia32_pause();
	return s;
}

static int read_retry(const struct policer *p, uint32_t s)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&p->seq, __ATOMIC_RELAXED) != s;
}

int policer_config_set(struct policer *p, const struct wxdp_config *c)
{
	if (!p || wxdp_config_check(c))
		return -EINVAL;
	write_begin(p);
	p->cfg = *c;
	write_end(p);
	return 0;
}

void policer_config_get(struct policer *p, struct wxdp_config *c)
{
	uint32_t s;

	do {
		s = read_begin(p);
		*c = p->cfg;
	} while (read_retry(p, s));
}

/* --- bans --- */

static size_t ban_hash(const struct policer *p, uint8_t family, uint8_t plen, const uint8_t *addr)
{
	return (size_t)hash_bytes(p->seed, addr, 16, ((uint64_t)family << 8) | plen) &
	       (p->ban_slots - 1);
}

/* Slot index of an exact entry, or the empty slot where it would go. */
static size_t ban_find(const struct policer *p, uint8_t family, uint8_t plen, const uint8_t *addr)
{
	size_t i = ban_hash(p, family, plen, addr);

	/* Bounded: a reader racing a writer must terminate whatever it sees. */
	for (size_t n = 0; n < p->ban_slots && p->bans[i].used; n++) {
		const struct ban_slot *s = &p->bans[i];

		if (s->family == family && s->prefixlen == plen && !memcmp(s->addr, addr, 16))
			return i;
		i = (i + 1) & (p->ban_slots - 1);
	}
	return i;
}

static uint32_t *plen_count(struct policer *p, uint8_t family, uint8_t plen)
{
	return family == AF_INET ? &p->plen4[plen] : &p->plen6[plen];
}

static uint32_t plen_used(const struct policer *p, uint8_t family, uint8_t plen)
{
	return family == AF_INET ? p->plen4[plen] : p->plen6[plen];
}

int policer_ban_add(struct policer *p, const struct wxdp_ban *in)
{
	struct wxdp_ban b;
	size_t i;
	int err = 0;

	if (!p || !in)
		return -EINVAL;
	b = *in;
	if (wxdp_ban_norm(&b))
		return -EINVAL;
	write_begin(p);
	i = ban_find(p, b.family, b.prefixlen, b.addr);
	if (p->bans[i].used) {
		p->bans[i].expires_ns = b.expires_ns;
	} else if (p->ban_n >= p->ban_cap) {
		err = -ENOSPC;
	} else {
		p->bans[i] = (struct ban_slot){ .used = 1, .family = b.family,
						.prefixlen = b.prefixlen, .expires_ns = b.expires_ns };
		memcpy(p->bans[i].addr, b.addr, 16);
		p->ban_n++;
		(*plen_count(p, b.family, b.prefixlen))++;
	}
	write_end(p);
	return err;
}

/* Remove slot i and shift the probe chain back (no tombstones). */
static void ban_remove_at(struct policer *p, size_t i)
{
	size_t mask = p->ban_slots - 1, j = i, home;

	(*plen_count(p, p->bans[i].family, p->bans[i].prefixlen))--;
	p->ban_n--;
	p->bans[i].used = 0;
	for (;;) {
		j = (j + 1) & mask;
		if (!p->bans[j].used)
			return;
		home = ban_hash(p, p->bans[j].family, p->bans[j].prefixlen, p->bans[j].addr);
		/* Move j into the hole i if its home is not in (i, j]. */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			p->bans[i] = p->bans[j];
			p->bans[j].used = 0;
			i = j;
		}
	}
}

int policer_ban_del(struct policer *p, const struct wxdp_ban *in)
{
	struct wxdp_ban b;
	size_t i;
	int err = 0;

	if (!p || !in)
		return -EINVAL;
	b = *in;
	if (wxdp_ban_norm(&b))
		return -EINVAL;
	write_begin(p);
	i = ban_find(p, b.family, b.prefixlen, b.addr);
	if (p->bans[i].used)
		ban_remove_at(p, i);
	else
		err = -ENOENT;
	write_end(p);
	return err;
}

int policer_ban_gc(struct policer *p, uint64_t now_ns)
{
	int removed = 0;
	size_t i = 0;

	if (!p)
		return -EINVAL;
	write_begin(p);
	while (i < p->ban_slots) {
		struct ban_slot *s = &p->bans[i];

		if (s->used && s->expires_ns && s->expires_ns <= now_ns) {
			ban_remove_at(p, i);
			removed++;
			continue; /* a shifted entry may now sit at i */
		}
		i++;
	}
	write_end(p);
	return removed;
}

/* Longest-prefix match with the XDP program's expiry fallback. */
static int banned(const struct policer *p, uint8_t family, const uint8_t *src, uint64_t now)
{
	int maxlen = family == AF_INET ? 32 : 128, nested = 0;
	struct wxdp_ban b = { .family = family };
	struct wxdp_ban_val v = { 0 };

	if (!p->ban_n)
		return 0;
	for (int len = maxlen; len >= 0; len--) {
		size_t i;

		if (!plen_used(p, family, (uint8_t)len))
			continue;
		memset(b.addr, 0, sizeof(b.addr));
		memcpy(b.addr, src, family == AF_INET ? 4 : 16);
		b.prefixlen = (uint8_t)len;
		wxdp_ban_norm(&b);
		i = ban_find(p, family, b.prefixlen, b.addr);
		if (!p->bans[i].used)
			continue;
		v.expires_ns = p->bans[i].expires_ns;
		if (wxdp_ban_live(&v, now))
			return 1;
		if (++nested > WXDP_BAN_MAX_NESTED)
			return 0;
	}
	return 0;
}

/* --- buckets --- */

static size_t src_set(const struct policer *p, const struct src_tab *t,
		      const struct wxdp_src_key *k)
{
	return (size_t)hash_bytes(p->seed, k->addr, 16, 0x5eed) & (t->nsets - 1);
}

/*
 * Owner only: move every entry into a table twice the size and publish
 * it. Set s's entries go to s or s + nsets of the new table, at most WAYS
 * each, so all fit and keep their LRU ticks. 0 or -ENOMEM (the table
 * stays as it is: the caller evicts).
 */
static int src_grow(struct policer *p)
{
	struct src_tab *o = p->src, *n = src_tab_new(p, o->nsets * 2);

	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < o->nsets * WAYS; i++) {
		struct src_slot *s;

		if (!o->slot[i].tick)
			continue;
		s = &n->slot[src_set(p, n, &o->slot[i].key) * WAYS];
		for (int w = 0; w < WAYS; w++) {
			if (!s[w].tick) {
				s[w] = o->slot[i];
				break;
			}
		}
	}
	__atomic_store_n(&p->src, n, __ATOMIC_RELEASE);
	(void)madvise(o->slot, o->bytes, MADV_DONTNEED);
	return 0;
}

static struct wxdp_src_val *src_get(struct policer *p, const struct wxdp_src_key *k)
{
	struct src_tab *t = p->src;
	struct src_slot *s = &t->slot[src_set(p, t, k) * WAYS], *victim = &s[0];

	p->tick++;
	for (int w = 0; w < WAYS; w++) {
		if (s[w].tick && !memcmp(&s[w].key, k, sizeof(*k))) {
			__atomic_store_n(&s[w].tick, p->tick, __ATOMIC_RELAXED);
			return &s[w].val;
		}
		if (s[w].tick < victim->tick)
			victim = &s[w];
	}
	/* A full set while the table may still grow: grow instead of evicting
	 * (the doubled table has a free way in this source's set). */
	if (victim->tick && t->nsets < p->nsets_max && !src_grow(p))
		return src_get(p, k);
	victim->key = *k;
	memset(&victim->val, 0, sizeof(victim->val));
	__atomic_store_n(&victim->tick, p->tick, __ATOMIC_RELAXED);
	return &victim->val;
}

size_t policer_bucket_count(struct policer *p)
{
	/* Any thread: the owner may be changing or replacing the table
	 * meanwhile (a replaced one reads as empty). */
	const struct src_tab *t = __atomic_load_n(&p->src, __ATOMIC_ACQUIRE);
	size_t n = 0;

	for (size_t i = 0; i < t->nsets * WAYS; i++)
		n += __atomic_load_n(&t->slot[i].tick, __ATOMIC_RELAXED) != 0;
	return n;
}

/* --- verdict --- */

/*
 * The part of the verdict that reads the shared config and bans: payload
 * checks and the ban list. Only reads (it may be retried). Returns a
 * verdict, or 0 to go on to the buckets with *cls and *now set.
 */
static unsigned int decide_shared(const struct policer *p, const struct wxdp_config *cfg,
				  const struct policer_pkt *pkt, __u32 *cls, uint64_t *now)
{
	uint8_t peek[WXDP_PEEK] = { 0 };
	int kind, r;

	if (pkt->family != AF_INET && pkt->family != AF_INET6)
		return WXDP_STAT_PASS_NOT_WEFT;
	kind = wxdp_port_kind(cfg, pkt->dport);
	if (kind == WXDP_KIND_NONE)
		return WXDP_STAT_PASS_NOT_WEFT;
	if (pkt->len > 0xffff - 8)
		return WXDP_STAT_DROP_UDP_LEN; /* cannot be one UDP datagram */
	if (pkt->len && pkt->payload)
		memcpy(peek, pkt->payload, pkt->len < WXDP_PEEK ? pkt->len : WXDP_PEEK);
	r = wxdp_payload_check(kind, peek, pkt->payload ? (__u32)pkt->len : 0, cls);
	if (r)
		return (unsigned int)r;
	*now = cfg->now_override_ns ? cfg->now_override_ns : pkt->now_ns;
	if (banned(p, pkt->family, pkt->src, *now))
		return WXDP_STAT_DROP_BANNED;
	return 0;
}

/* Under the owner: p->last describes this packet's source (its lookups
 * kept when it is the last packet's, in the same pass and config). */
static void last_for(struct policer *p, const struct wxdp_src_key *sk, uint64_t now, uint32_t seq)
{
	if (p->last.now == now && p->last.seq == seq && p->last.tab == p->src &&
	    !memcmp(&p->last.key, sk, sizeof(*sk)))
		return;
	p->last.key = *sk;
	p->last.now = now;
	p->last.seq = seq;
	p->last.tab = p->src;
	p->last.valid = -1;
	p->last.sv = NULL;
}

/* Buckets and budgets: the owner's alone. */
static unsigned int decide_owned(struct policer *p, const struct wxdp_config *cfg,
				 const struct policer_pkt *pkt, __u32 cls, uint64_t now, uint32_t seq)
{
	struct wxdp_src_key sk;
	const struct wxdp_rate *rate, *unval = wxdp_class_unval(cfg, cls);
	struct wxdp_bucket *budget = NULL;

	if (pkt->family == AF_INET6)
		wxdp_src_key_v6(&sk, pkt->src, cfg->v6_prefix);
	else
		wxdp_src_key_v4(&sk, pkt->src);
	last_for(p, &sk, now, seq);
	/* As the program: an unvalidated source meets an empty budget before
	 * a per-source entry is made for it; the budget is paid only after
	 * the per-source bucket admitted the packet. */
	if ((unval->pps || wxdp_rate_by_valid(cfg, cls)) && p->last.valid < 0)
		p->last.valid = p->valid && p->valid(p->valid_arg, &sk, now);
	if (unval->pps && !p->last.valid) {
		budget = &p->budget[cls];
		if (!wxdp_tb_ready(budget, unval, now))
			return wxdp_class_unval_stat(cls);
	}
	/* a validated source's QUIC packets: their own rate (-1, not
	 * looked up, is not validated) */
	rate = wxdp_src_rate(cfg, cls, p->last.valid);
	if (rate->pps) {
		if (!p->last.sv)
			p->last.sv = src_get(p, &sk);
		if (!wxdp_tb_take(&p->last.sv->b[cls], rate, now))
			return wxdp_class_drop_stat(cls);
	}
	if (budget && !wxdp_tb_take(budget, unval, now))
		return wxdp_class_unval_stat(cls);
	return WXDP_STAT_REDIRECT;
}

static void stat_inc(struct policer *p, unsigned int i)
{
	__atomic_store_n(&p->stats[i], p->stats[i] + 1, __ATOMIC_RELAXED);
}

unsigned int policer_check(struct policer *p, const struct policer_pkt *pkt)
{
	struct wxdp_config cfg;
	__u32 cls = WXDP_CLASS_QUIC;
	uint64_t now = 0;
	unsigned int v;
	uint32_t s;

	if (!p || !pkt)
		return WXDP_STAT_DROP_SHORT;
	do {
		s = read_begin(p);
		cfg = p->cfg;
		v = decide_shared(p, &cfg, pkt, &cls, &now);
	} while (read_retry(p, s));
	if (!v)
		v = decide_owned(p, &cfg, pkt, cls, now, s);
	stat_inc(p, WXDP_STAT_RX);
	stat_inc(p, v);
	return v;
}

void policer_stats(struct policer *p, uint64_t *out)
{
	for (size_t i = 0; i < WXDP_STAT__MAX; i++)
		out[i] = __atomic_load_n(&p->stats[i], __ATOMIC_RELAXED);
}
