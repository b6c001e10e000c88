// SPDX-License-Identifier: MIT
/*
 * The announce schedule (userspace/content/annsched.c) on a virtual clock
 * against a model DHT: F nodes with seeded random ids; a lookup answers
 * after 100 ms with the true k closest nodes (each with a token), a batch
 * is acknowledged after 50 ms. Checked:
 * - batching: every id is announced, with far fewer lookups than ids, and
 *   each id goes to at least 3 of its true k closest nodes, 6.5 on average
 *   (annsched.h says why not all 8);
 * - pacing: counting every query the schedule makes each node take, no
 *   node gets more than CN_ANQ_NODE_PER_MIN in any 60 s window;
 * - a failed lookup is retried after CN_ANQ_RETRY_MS, not before;
 * - removal: an id removed is never handed out again;
 * - stats: the backlog and the oldest announce's age.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "content/annsched.h"

#define F 512
#define SECS 1200

struct model {
	uint8_t id[F][DHT_ID_LEN];
	uint16_t per_s[F][SECS]; /* queries taken, by second */
	uint16_t ann_s[F][SECS]; /* of those, announce_peer */
};

static int closer(const uint8_t *t, const uint8_t *a, const uint8_t *b)
{
	for (int i = 0; i < DHT_ID_LEN; i++)
		if ((a[i] ^ t[i]) != (b[i] ^ t[i]))
			return (a[i] ^ t[i]) < (b[i] ^ t[i]);
	return 0;
}

/* The k closest nodes to t (indices, closest first). */
static void kclosest(const struct model *m, const uint8_t *t, unsigned int out[DHT_K])
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < F; i++) {
		unsigned int k = n < DHT_K ? n++ : DHT_K;

		if (k == DHT_K && !closer(t, m->id[i], m->id[out[DHT_K - 1]]))
			continue;
		if (k == DHT_K)
			k = DHT_K - 1;
		while (k > 0 && closer(t, m->id[i], m->id[out[k - 1]])) {
			out[k] = out[k - 1];
			k--;
		}
		out[k] = i;
	}
}

static void node_info(const struct model *m, unsigned int i, struct dht_node_info *ni)
{
	struct sockaddr_in *sa = (struct sockaddr_in *)&ni->addr;

	memset(ni, 0, sizeof(*ni));
	memcpy(ni->id, m->id[i], DHT_ID_LEN);
	sa->sin_family = AF_INET;
	sa->sin_port = htons(6881);
	sa->sin_addr.s_addr = htonl(0x0a000000u + i);
	ni->addrlen = sizeof(*sa);
	ni->token_len = 8;
	memset(ni->token, 0x5a, 8);
}

static unsigned int index_of(const struct dht_node_info *ni)
{
	return ntohl(((const struct sockaddr_in *)&ni->addr)->sin_addr.s_addr) - 0x0a000000u;
}

struct op {
	int kind;
	uint64_t at;
	struct cn_anq_work w;
};

struct run {
	struct model *m;
	struct cn_anq *q;
	struct op *ops;
	size_t nops, cap;
	uint64_t now;
	uint64_t lookups_failed_at; /* fail lookups until then */
	unsigned int hits_min;	    /* fewest true-k nodes an id was sent to */
	uint64_t hits, placed;	    /* true-k nodes sent to, ids sent */
};

static void start(struct run *r, int kind, const struct cn_anq_work *w)
{
	if (r->nops == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->ops = realloc(r->ops, r->cap * sizeof(*r->ops));
		assert_non_null(r->ops);
	}
	r->ops[r->nops].kind = kind;
	r->ops[r->nops].at = r->now + (kind == CN_ANQ_LOOKUP ? 100 : 50);
	r->ops[r->nops].w = *w;
	r->nops++;
	if (kind == CN_ANQ_SEND) {
		/* queries the nodes take, and the batch's placement */
		for (size_t k = 0; k < w->nnodes; k++) {
			r->m->per_s[index_of(&w->nodes[k])][r->now / 1000] += (uint16_t)w->nkeys;
			r->m->ann_s[index_of(&w->nodes[k])][r->now / 1000] += (uint16_t)w->nkeys;
		}
		for (size_t i = 0; i < w->nkeys; i++) {
			unsigned int best[DHT_K], hits = 0;

			kclosest(r->m, w->keys[i], best);
			for (size_t k = 0; k < w->nnodes; k++)
				for (int b = 0; b < DHT_K; b++)
					hits += best[b] == index_of(&w->nodes[k]);
			if (hits < r->hits_min)
				r->hits_min = hits;
			r->hits += hits;
			r->placed++;
		}
	}
}

/* Hand out work until idle, then complete what is due; returns the wake. */
static uint64_t step(struct run *r)
{
	struct cn_anq_work w;
	uint64_t next;
	int kind;

	while ((kind = cn_anq_next(r->q, r->now, &w)) != CN_ANQ_IDLE)
		start(r, kind, &w);
	next = w.wake_ms;
	for (size_t i = 0; i < r->nops;) {
		struct op *o = &r->ops[i];

		if (o->at > r->now) {
			if (o->at < next)
				next = o->at;
			i++;
			continue;
		}
		if (o->kind == CN_ANQ_LOOKUP) {
			struct dht_node_info ni[DHT_K];
			unsigned int best[DHT_K];

			kclosest(r->m, o->w.target, best);
			for (int k = 0; k < DHT_K; k++) {
				node_info(r->m, best[k], &ni[k]);
				r->m->per_s[best[k]][r->now / 1000]++; /* its get_peers */
			}
			if (r->now < r->lookups_failed_at)
				cn_anq_lookup_done(r->q, o->w.target, NULL, 0, r->now);
			else
				cn_anq_lookup_done(r->q, o->w.target, ni, DHT_K, r->now);
		} else {
			cn_anq_send_done(r->q, (const uint8_t(*)[DHT_ID_LEN])o->w.keys, o->w.nkeys,
					 1, r->now);
		}
		*o = r->ops[--r->nops];
	}
	return next > r->now ? next : r->now + 1;
}

static unsigned int max_per_min(const struct model *m, int announces)
{
	unsigned int best = 0;

	for (unsigned int i = 0; i < F; i++) {
		const uint16_t *c = announces ? m->ann_s[i] : m->per_s[i];
		unsigned int win = 0;

		for (unsigned int t = 0; t < SECS; t++) {
			win += c[t];
			if (t >= 60)
				win -= c[t - 60];
			if (win > best)
				best = win;
		}
	}
	return best;
}

static void setup_run(struct run *r, unsigned int nids, uint8_t (*ids)[DHT_ID_LEN])
{
	memset(r, 0, sizeof(*r));
	r->m = calloc(1, sizeof(*r->m));
	assert_non_null(r->m);
	randombytes_buf_deterministic(r->m->id, sizeof(r->m->id),
				      (const uint8_t *)"weft test_content_annsched nodes");
	randombytes_buf_deterministic(ids, (size_t)nids * DHT_ID_LEN,
				      (const uint8_t *)"weft test_content_annsched ids..");
	assert_int_equal(cn_anq_new(&r->q, 1200000), 0);
	r->hits_min = DHT_K;
}

static void free_run(struct run *r)
{
	cn_anq_free(r->q);
	free(r->ops);
	free(r->m);
}

static void test_batch_and_pace(void **state)
{
	enum { N = 16384 };
	uint8_t(*ids)[DHT_ID_LEN] = malloc((size_t)N * DHT_ID_LEN);
	struct cn_anq_stats st;
	struct run r;

	(void)state;
	setup_run(&r, N, ids);
	for (unsigned int i = 0; i < N; i++)
		assert_int_equal(cn_anq_add(r.q, ids[i], DHT_ID_LEN, 0), 0);
	cn_anq_stats(r.q, 5000, &st);
	assert_int_equal(st.ids, N);
	assert_int_equal(st.backlog, N);
	assert_int_equal(st.oldest_age_ms, 5000);
	do {
		r.now = step(&r);
		cn_anq_stats(r.q, r.now, &st);
	} while (st.announced < N && r.now < 900000);
	print_message("%llu ids announced in %.1f s (virtual), %llu lookups, %llu batches; "
		      "busiest node %u queries in a minute (budget %d), %u announce_peer (%d); "
		      "each id on >= %u of its %d closest, %.2f on average\n",
		      (unsigned long long)st.announced, r.now / 1000.0,
		      (unsigned long long)st.lookups, (unsigned long long)st.sends,
		      max_per_min(r.m, 0), CN_ANQ_BUDGET_PER_MIN, max_per_min(r.m, 1),
		      CN_ANQ_NODE_PER_MIN, r.hits_min, DHT_K, (double)r.hits / (double)r.placed);
	assert_int_equal(st.announced, N);
	assert_int_equal(st.backlog, 0);
	assert_int_equal(st.oldest_age_ms, 0);
	assert_true(st.lookups * 32 < N);
	assert_true(r.hits_min >= 3);
	assert_true(r.hits * 100 >= r.placed * 650);
	/* the schedule's own queries (batches and the lookups' get_peers to
	 * the k closest) stay within the budget */
	assert_true(max_per_min(r.m, 1) <= CN_ANQ_NODE_PER_MIN);
	assert_true(max_per_min(r.m, 0) <= CN_ANQ_BUDGET_PER_MIN);
	free_run(&r);
	free(ids);
}

static void test_retry_and_remove(void **state)
{
	uint8_t ids[4][DHT_ID_LEN];
	struct cn_anq_work w;
	struct cn_anq_stats st;
	struct run r;

	(void)state;
	setup_run(&r, 4, ids);
	r.lookups_failed_at = 1000; /* the first lookup fails */
	assert_int_equal(cn_anq_add(r.q, ids[0], DHT_ID_LEN, 0), 0);
	assert_int_equal(cn_anq_next(r.q, 0, &w), CN_ANQ_LOOKUP);
	assert_memory_equal(w.target, ids[0], DHT_ID_LEN);
	start(&r, CN_ANQ_LOOKUP, &w);
	r.now = 100;
	step(&r); /* fails */
	assert_int_equal(cn_anq_next(r.q, 200, &w), CN_ANQ_IDLE);
	assert_int_equal(w.wake_ms, 100 + CN_ANQ_RETRY_MS);
	assert_int_equal(cn_anq_next(r.q, 100 + CN_ANQ_RETRY_MS - 1, &w), CN_ANQ_IDLE);
	assert_int_equal(cn_anq_next(r.q, 100 + CN_ANQ_RETRY_MS, &w), CN_ANQ_LOOKUP);
	/* removed while its lookup runs: never sent */
	cn_anq_remove(r.q, ids[0], DHT_ID_LEN);
	cn_anq_lookup_done(r.q, ids[0], NULL, 0, 100 + CN_ANQ_RETRY_MS + 100);
	assert_int_equal(cn_anq_next(r.q, 1000000, &w), CN_ANQ_IDLE);
	cn_anq_stats(r.q, 1000000, &st);
	assert_int_equal(st.ids, 0);
	assert_int_equal(st.backlog, 0);
	/* added again: due at once */
	assert_int_equal(cn_anq_add(r.q, ids[0], DHT_ID_LEN, 1000000), 0);
	assert_int_equal(cn_anq_next(r.q, 1000000, &w), CN_ANQ_LOOKUP);
	/* bad length refused */
	assert_int_equal(cn_anq_add(r.q, ids[1], 8, 0), -EINVAL);
	free_run(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_batch_and_pace),
	    cmocka_unit_test(test_retry_and_remove),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("content_annsched", tests, NULL, NULL);
}
