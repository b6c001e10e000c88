// SPDX-License-Identifier: MIT
/*
 * The guard's table of validated sources (docs/XDP.md, "Validated
 * sources"): keys are wxdp_src_key (IPv4 v4-mapped, IPv6 masked to the
 * config's v6_prefix), values an expiry. Fixed memory: 8-way
 * set-associative; a new source takes an empty or expired way of its set,
 * else the way validated longest ago (LRU by evidence within the set).
 *
 * Readers (every packet worker, through guard_validated() or the software
 * policers) take no lock: each way is a seqlock of atomics, written only
 * under the guard's valid_lock. A reader that keeps meeting a write in
 * progress answers "not validated", which only makes the packet pay the
 * unvalidated budget.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "guard_int.h"
#include "xdp/xdp_internal.h"

#define WAYS 8
#define READ_TRIES 4

static void key_words(const struct wxdp_src_key *k, uint64_t w[2])
{
	memcpy(&w[0], k->addr, 8);
	memcpy(&w[1], k->addr + 8, 8);
}

static struct guard_valid_slot *set_of(const struct guard_valid *v, const uint64_t w[2])
{
	uint64_t h = wxdp_mix64(v->seed ^ w[0]) ^ wxdp_mix64(w[1] + 0x9e3779b97f4a7c15ULL);

	return &v->slots[(h & (v->nsets - 1)) * WAYS];
}

int guard_valid_init(struct guard_valid *v, uint32_t capacity, uint64_t ttl_ns)
{
	size_t sets = 1;

	memset(v, 0, sizeof(*v));
	while (sets * 2 * WAYS <= capacity)
		sets *= 2;
	v->nsets = sets;
	v->ttl_ns = ttl_ns;
	if (getrandom(&v->seed, sizeof(v->seed), 0) != sizeof(v->seed))
		v->seed = 0x2545f4914f6cdd1dULL; /* no entropy: still bounded */
	v->slots = calloc(sets * WAYS, sizeof(*v->slots));
	return v->slots ? 0 : -ENOMEM;
}

void guard_valid_fini(struct guard_valid *v)
{
	free(v->slots);
	v->slots = NULL;
}

size_t guard_valid_capacity(const struct guard_valid *v)
{
	return v->nsets * WAYS;
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
	const struct guard_valid_slot *s;
	uint64_t w[2], x[2], exp;

	if (!v->slots)
		return 0;
	key_words(k, w);
	s = set_of(v, w);
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

int guard_valid_put(struct guard_valid *v, const struct wxdp_src_key *k, uint64_t now,
		    struct wxdp_src_key *evicted)
{
	struct guard_valid_slot *s, *victim = NULL;
	uint64_t w[2], vexp = UINT64_MAX;

	key_words(k, w);
	s = set_of(v, w);
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
	size_t n = 0;

	for (size_t i = 0; i < v->nsets * WAYS; i++)
		n += atomic_load_explicit(&v->slots[i].expires_ns, memory_order_relaxed) > now;
	return n;
}
