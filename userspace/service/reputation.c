// SPDX-License-Identifier: MIT
/*
 * Provider reputation (include/weft/svc_rep.h): a bounded table sorted by
 * key (binary search; an insert moves at most max entries of 56 bytes,
 * and only for a provider never seen), decaying counts, a latency EWMA,
 * and a fixed-size record for the store. No I/O, no clock of its own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weft/svc_rep.h"

#define REP_VERSION 1
/* Counts are stored in thousandths, at most this many calls' worth. */
#define REP_MAX_MILLI 1000000000u

struct rep_ent {
	uint8_t key[IDENTITY_PK_LEN];
	float ok, failed; /* decayed to updated_s */
	uint32_t lat_us;
	uint32_t dirty;
	uint64_t updated_s;
	uint64_t dead_until;
};

struct svc_rep {
	struct rep_ent *e;
	size_t n, max;
};

int svc_rep_new(struct svc_rep **out, uint32_t max)
{
	struct svc_rep *r = calloc(1, sizeof(*r));

	if (r) {
		r->max = max ? max : SVC_REP_DEFAULT_MAX;
		r->e = calloc(r->max, sizeof(*r->e));
	}
	if (!r || !r->e) {
		free(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

void svc_rep_free(struct svc_rep *r)
{
	if (!r)
		return;
	free(r->e);
	free(r);
}

size_t svc_rep_count(const struct svc_rep *r)
{
	return r->n;
}

/* Index of key, or -(insertion point) - 1. */
static long rep_find(const struct svc_rep *r, const uint8_t *key)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(r->e[mid].key, key, IDENTITY_PK_LEN);

		if (!c)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

/* 2^-(now - from)/half-life without libm (this was weftd's one libm call,
 * and libm's pages are ~320 KiB of an idle weftd's RSS): 2^-x = 2^-k x
 * e^-(f ln 2) with k = floor(x) and f the rest. The series of e^-u for u <
 * ln 2 to u^13 is within 2e-13 of exp2 (u^14 / 14!); 2^-k is built from its
 * exponent bits (ldexp would bind to libm again). */
static double decay(uint64_t from, uint64_t now)
{
	double x, u, p2, term = 1.0, sum = 1.0;
	uint64_t k, bits;

	if (now <= from)
		return 1.0;
	x = (double)(now - from) / (double)SVC_REP_HALF_LIFE_S;
	if (x >= 1022.0)
		return 0.0; /* 2^-1022 is the smallest normal double */
	k = (uint64_t)x;
	u = (x - (double)k) * 0.69314718055994530942;
	for (int i = 1; i <= 13; i++) {
		term *= -u / i;
		sum += term;
	}
	bits = (1023 - k) << 52;
	memcpy(&p2, &bits, sizeof(p2));
	return sum * p2;
}

/* A slot for key (new entries zeroed): its index, or -1 (no memory is
 * ever needed: the table is preallocated). Past max, the entry updated
 * longest ago goes (reported through ev). */
static long rep_slot(struct svc_rep *r, const uint8_t *key, int *evicted, uint8_t *ev)
{
	long i = rep_find(r, key);
	size_t at;

	if (evicted)
		*evicted = 0;
	if (i >= 0)
		return i;
	if (r->n == r->max) {
		size_t old = 0;

		for (size_t k = 1; k < r->n; k++)
			if (r->e[k].updated_s < r->e[old].updated_s)
				old = k;
		if (evicted) {
			*evicted = 1;
			memcpy(ev, r->e[old].key, IDENTITY_PK_LEN);
		}
		memmove(&r->e[old], &r->e[old + 1], (r->n - old - 1) * sizeof(*r->e));
		r->n--;
		i = rep_find(r, key);
	}
	at = (size_t)(-i - 1);
	memmove(&r->e[at + 1], &r->e[at], (r->n - at) * sizeof(*r->e));
	memset(&r->e[at], 0, sizeof(*r->e));
	memcpy(r->e[at].key, key, IDENTITY_PK_LEN);
	r->n++;
	return (long)at;
}

int svc_rep_record(struct svc_rep *r, const uint8_t key[IDENTITY_PK_LEN], int ok,
		   uint32_t latency_us, int dead, uint64_t now_s, int *evicted,
		   uint8_t evicted_key[IDENTITY_PK_LEN])
{
	long i = rep_slot(r, key, evicted, evicted_key);
	struct rep_ent *e = &r->e[i];
	double d = e->updated_s ? decay(e->updated_s, now_s) : 1.0;

	e->ok = (float)(e->ok * d);
	e->failed = (float)(e->failed * d);
	if (ok < 0) {
		if (dead)
			e->dead_until = now_s + SVC_REP_DEAD_S;
	} else if (ok) {
		e->ok += 1.0f;
		e->dead_until = 0;
		if (!latency_us)
			latency_us = 1;
		if (!e->lat_us)
			e->lat_us = latency_us;
		else /* lat += (sample - lat) / 8, in integers without overflow */
			e->lat_us = (uint32_t)((int64_t)e->lat_us +
					       (((int64_t)latency_us - (int64_t)e->lat_us) >>
						SVC_REP_EWMA_SHIFT));
		if (!e->lat_us)
			e->lat_us = 1;
	} else {
		e->failed += 1.0f;
		if (dead)
			e->dead_until = now_s + SVC_REP_DEAD_S;
	}
	if (e->ok > REP_MAX_MILLI / 1000)
		e->ok = REP_MAX_MILLI / 1000;
	if (e->failed > REP_MAX_MILLI / 1000)
		e->failed = REP_MAX_MILLI / 1000;
	if (now_s > e->updated_s)
		e->updated_s = now_s;
	e->dirty = 1;
	return 0;
}

int32_t svc_rep_score(const struct svc_rep *r, const uint8_t key[IDENTITY_PK_LEN], uint64_t now_s,
		      struct svc_rep_info *info)
{
	long i = rep_find(r, key);
	struct svc_rep_info z = {0};
	double d, ok, failed;
	int32_t s;

	if (i < 0) {
		z.score = 50;
		if (info)
			*info = z;
		return z.score;
	}
	d = decay(r->e[i].updated_s, now_s);
	ok = r->e[i].ok * d;
	failed = r->e[i].failed * d;
	if (r->e[i].dead_until > now_s)
		s = SVC_REP_DEAD_SCORE;
	else
		/* non-negative: the cast truncates as floor would */
		s = 10 * (int32_t)(10.0 * (ok + 1.0) / (ok + failed + 2.0) + 1e-6);
	if (s > 100) /* ok >> failed rounds to 10 steps at most */
		s = 100;
	if (info) {
		info->ok = ok;
		info->failed = failed;
		info->lat_us = r->e[i].lat_us;
		info->updated_s = r->e[i].updated_s;
		info->dead_until = r->e[i].dead_until > now_s ? r->e[i].dead_until : 0;
		info->score = s;
	}
	return s;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Record layout (little endian): version (1), 3 zero bytes, ok and failed
 * in thousandths (u32 each), latency EWMA us (u32), updated_s (u64),
 * dead_until (u64), 8 zero bytes. */
static void rep_encode(const struct rep_ent *e, uint8_t rec[SVC_REP_REC_LEN])
{
	memset(rec, 0, SVC_REP_REC_LEN);
	rec[0] = REP_VERSION;
	put32(rec + 4, (uint32_t)(e->ok * 1000.0f + 0.5f));
	put32(rec + 8, (uint32_t)(e->failed * 1000.0f + 0.5f));
	put32(rec + 12, e->lat_us);
	put64(rec + 16, e->updated_s);
	put64(rec + 24, e->dead_until);
}

size_t svc_rep_take_dirty(struct svc_rep *r, uint8_t (*keys)[IDENTITY_PK_LEN],
			  uint8_t (*recs)[SVC_REP_REC_LEN], size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n && n < max; i++) {
		if (!r->e[i].dirty)
			continue;
		memcpy(keys[n], r->e[i].key, IDENTITY_PK_LEN);
		rep_encode(&r->e[i], recs[n]);
		r->e[i].dirty = 0;
		n++;
	}
	return n;
}

int svc_rep_load(struct svc_rep *r, const uint8_t *key, size_t klen, const uint8_t *rec, size_t len)
{
	uint32_t ok, failed;
	long i;

	if (klen != IDENTITY_PK_LEN || len != SVC_REP_REC_LEN || rec[0] != REP_VERSION || rec[1] ||
	    rec[2] || rec[3] || get64(rec + 32))
		return -EINVAL;
	ok = get32(rec + 4);
	failed = get32(rec + 8);
	if (ok > REP_MAX_MILLI || failed > REP_MAX_MILLI)
		return -EINVAL;
	i = rep_slot(r, key, NULL, NULL);
	r->e[i].ok = (float)ok / 1000.0f;
	r->e[i].failed = (float)failed / 1000.0f;
	r->e[i].lat_us = get32(rec + 12);
	r->e[i].updated_s = get64(rec + 16);
	r->e[i].dead_until = get64(rec + 24);
	r->e[i].dirty = 0;
	return 0;
}
