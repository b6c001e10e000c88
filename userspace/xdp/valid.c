// SPDX-License-Identifier: MIT
/*
 * The guard's table of validated sources (docs/XDP.md, "Validated
 * sources"): keys are wxdp_src_key (IPv4 v4-mapped, IPv6 masked to the
 * config's v6_prefix), values an expiry. Bounded memory: 8-way
 * set-associative; a new source takes an empty or expired way of its set,
 * else, once the table is at its capacity, the way validated longest ago
 * (LRU by evidence within the set). The table starts with VALID_INIT_SETS
 * sets and doubles when a source would evict a live one: a new source
 * lands in a random set, so a table of the full capacity from the start
 * cost one resident page per peer validated (3.4 KiB per peer of an idle
 * weftd in a 40-node lab) until it was dense.
 *
 * Readers (every packet worker, through guard_validated() or the software
 * policers) take no lock: each way is a seqlock of atomics, written only
 * under the guard's valid_lock. A reader that keeps meeting a write in
 * progress answers "not validated", which only makes the packet pay the
 * unvalidated budget. A reader holding a table that a growth replaced
 * reads empty ways (its pages were given back): the same answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "guard_int.h"
#include "xdp/xdp_internal.h"

#define WAYS 8
#define READ_TRIES 4
#define VALID_INIT_SETS 64 /* 512 sources, 20 KiB of address space */

static void key_words(const struct wxdp_src_key *k, uint64_t w[2])
{
	memcpy(&w[0], k->addr, 8);
	memcpy(&w[1], k->addr + 8, 8);
}

static struct guard_valid_slot *set_of(const struct guard_valid *v,
				       const struct guard_valid_tab *t, const uint64_t w[2])
{
	uint64_t h = wxdp_mix64(v->seed ^ w[0]) ^ wxdp_mix64(w[1] + 0x9e3779b97f4a7c15ULL);

	return &t->slots[(h & (t->nsets - 1)) * WAYS];
}

/* A zeroed table of nsets sets (mapped: pages cost nothing until written),
 * kept in v->tabs; NULL on failure. */
static struct guard_valid_tab *tab_new(struct guard_valid *v, size_t nsets)
{
	struct guard_valid_tab *t;

	if (v->ntabs == GUARD_VALID_MAX_TABS)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->nsets = nsets;
	t->bytes = nsets * WAYS * sizeof(struct guard_valid_slot);
	t->slots = mmap(NULL, t->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->slots == MAP_FAILED) {
		free(t);
		return NULL;
	}
	v->tabs[v->ntabs++] = t;
	return t;
}

static const struct guard_valid_tab *tab_get(const struct guard_valid *v)
{
	return __atomic_load_n(&v->tab, __ATOMIC_ACQUIRE);
}

int guard_valid_init(struct guard_valid *v, uint32_t capacity, uint64_t ttl_ns)
{
	size_t sets = 1;

	memset(v, 0, sizeof(*v));
	while (sets * 2 * WAYS <= capacity)
		sets *= 2;
	v->nsets_max = sets;
	v->ttl_ns = ttl_ns;
	if (getrandom(&v->seed, sizeof(v->seed), 0) != sizeof(v->seed))
		v->seed = 0x2545f4914f6cdd1dULL; /* no entropy: still bounded */
	v->tab = tab_new(v, sets < VALID_INIT_SETS ? sets : VALID_INIT_SETS);
	return v->tab ? 0 : -ENOMEM;
}

void guard_valid_fini(struct guard_valid *v)
{
	for (unsigned int i = 0; i < v->ntabs; i++) {
		munmap(v->tabs[i]->slots, v->tabs[i]->bytes);
		free(v->tabs[i]);
	}
	v->ntabs = 0;
	v->tab = NULL;
}

size_t guard_valid_capacity(const struct guard_valid *v)
{
	return v->nsets_max * WAYS;
}

/* Consistent snapshot of one way; 0 if a writer kept it busy. */
static int slot_read(const struct guard_valid_slot *s, uint64_t w[2], uint64_t *exp)
{
	for (int t = 0; t < READ_TRIES; t++) {
		uint32_t a = atomic_load_explicit(&s->seq, memory_order_acquire), b;

		if (a & 1)
			continue;
		w[0] = atomic_load_explicit(&s->k[0], memory_order_relaxed);
		w[1] = atomic_load_explicit(&s->k[1], memory_order_relaxed);
		*exp = atomic_load_explicit(&s->expires_ns, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		b = atomic_load_explicit(&s->seq, memory_order_relaxed);
		if (a == b)
			return 1;
	}
	return 0;
}

uint64_t guard_valid_get(const struct guard_valid *v, const struct wxdp_src_key *k)
{
	const struct guard_valid_tab *t = tab_get(v);
	const struct guard_valid_slot *s;
	uint64_t w[2], x[2], exp;

	if (!t)
		return 0;
	key_words(k, w);
	s = set_of(v, t, w);
	for (int i = 0; i < WAYS; i++)
		if (slot_read(&s[i], x, &exp) && exp && x[0] == w[0] && x[1] == w[1])
			return exp;
	return 0;
}

static void slot_write(struct guard_valid_slot *s, const uint64_t w[2], uint64_t exp)
{
	uint32_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);

	atomic_store_explicit(&s->seq, q + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&s->k[0], w[0], memory_order_relaxed);
	atomic_store_explicit(&s->k[1], w[1], memory_order_relaxed);
	atomic_store_explicit(&s->expires_ns, exp, memory_order_relaxed);
	atomic_store_explicit(&s->seq, q + 2, memory_order_release);
}

/*
 * Writer (valid_lock held): move the live entries into a table twice the
 * size and publish it; set s's entries go to s or s + nsets, at most WAYS
 * each. 0 or -ENOMEM (the caller evicts instead).
 */
static int tab_grow(struct guard_valid *v, uint64_t now)
{
	struct guard_valid_tab *o = v->tab, *n = tab_new(v, o->nsets * 2);

	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < o->nsets * WAYS; i++) {
		uint64_t e = atomic_load_explicit(&o->slots[i].expires_ns, memory_order_relaxed);
		uint64_t w[2] = { atomic_load_explicit(&o->slots[i].k[0], memory_order_relaxed),
				  atomic_load_explicit(&o->slots[i].k[1], memory_order_relaxed) };
		struct guard_valid_slot *s;

		if (e <= now)
			continue;
		s = set_of(v, n, w);
		for (int j = 0; j < WAYS; j++) {
			if (!atomic_load_explicit(&s[j].expires_ns, memory_order_relaxed)) {
				slot_write(&s[j], w, e);
				break;
			}
		}
	}
	__atomic_store_n(&v->tab, n, __ATOMIC_RELEASE);
	(void)madvise(o->slots, o->bytes, MADV_DONTNEED);
	return 0;
}

int guard_valid_put(struct guard_valid *v, const struct wxdp_src_key *k, uint64_t now,
		    struct wxdp_src_key *evicted)
{
	struct guard_valid_slot *s, *victim = NULL;
	uint64_t w[2], vexp = UINT64_MAX;

	key_words(k, w);
	s = set_of(v, v->tab, w);
	for (int i = 0; i < WAYS; i++) {
		uint64_t e = atomic_load_explicit(&s[i].expires_ns, memory_order_relaxed);

		if (e && atomic_load_explicit(&s[i].k[0], memory_order_relaxed) == w[0] &&
		    atomic_load_explicit(&s[i].k[1], memory_order_relaxed) == w[1]) {
			slot_write(&s[i], w, now + v->ttl_ns);
			return 0;
		}
		/* Empty (0) and expired ways sort first, then the oldest. */
		if (e <= now)
			e = 0;
		if (e < vexp) {
			vexp = e;
			victim = &s[i];
		}
	}
	/* A live entry would go while the table may still grow: grow instead. */
	if (vexp && v->tab->nsets < v->nsets_max && !tab_grow(v, now))
		return guard_valid_put(v, k, now, evicted);
	if (vexp) {
		uint64_t old[2] = { atomic_load_explicit(&victim->k[0], memory_order_relaxed),
				    atomic_load_explicit(&victim->k[1], memory_order_relaxed) };

		memcpy(evicted->addr, old, sizeof(old));
	}
	slot_write(victim, w, now + v->ttl_ns);
	return vexp ? 1 : 0;
}

size_t guard_valid_count(const struct guard_valid *v, uint64_t now)
{
	const struct guard_valid_tab *t = tab_get(v);
	size_t n = 0;

	for (size_t i = 0; t && i < t->nsets * WAYS; i++)
		n += atomic_load_explicit(&t->slots[i].expires_ns, memory_order_relaxed) > now;
	return n;
}
