// SPDX-License-Identifier: MIT
/*
 * bench_dht part (b): lookup latency and hop counts in a NNET-node weft
 * network in this process (the DHT core on 127.0.0.1 sockets, one poll()
 * thread, bootstrapped from node 0; bench_dht.c's header comment).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "weft/dht.h"

#include "bench_dht.h"

/* ---------------- part (b): lookups in a large network ---------------- */

struct lw {
	int done;
	struct dht_result r;
	uint8_t first[DHT_ID_LEN];
	int found_peer;
	uint16_t want_port;
};

static void lw_done(void *arg, const struct dht_result *r)
{
	struct lw *w = arg;

	w->done = 1;
	w->r = *r;
	if (r->nnodes)
		memcpy(w->first, r->nodes[0].id, DHT_ID_LEN);
	for (size_t i = 0; i < r->npeers; i++)
		if (((const struct sockaddr_in *)&r->peers[i])->sin_port == htons(w->want_port))
			w->found_peer = 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct stats_b {
	uint64_t lat[NLOOKUPS];
	unsigned int hops[NLOOKUPS], queried[NLOOKUPS];
	int n, ok;
};

static void print_b(struct bench_result *res, const char *name, struct stats_b *s)
{
	char id[64], label[96];
	double hsum = 0, qsum = 0;
	unsigned int hmax = 0;

	qsort(s->lat, (size_t)s->n, sizeof(s->lat[0]), cmp_u64);
	for (int i = 0; i < s->n; i++) {
		hsum += s->hops[i];
		qsum += s->queried[i];
		if (s->hops[i] > hmax)
			hmax = s->hops[i];
	}
	printf("%-10s %8d %8.1f%% %10.2f %10.2f %10.2f %9.2f %8u %10.1f\n", name, s->n,
	       100.0 * s->ok / s->n, s->lat[s->n / 2] / 1000.0, s->lat[(s->n * 99) / 100] / 1000.0,
	       s->lat[s->n - 1] / 1000.0, hsum / s->n, hmax, qsum / s->n);
#define FIG(sfx, text, v, unit)                                                          \
	do {                                                                             \
		snprintf(id, sizeof(id), "core.%s.%s", name, sfx);                       \
		snprintf(label, sizeof(label), "DHT core network, %s: %s", name, text);  \
		bench_result_figure(res, id, label, v, unit);                            \
	} while (0)
	FIG("success", "success", 100.0 * s->ok / s->n, "%");
	FIG("p50_ms", "latency p50", s->lat[s->n / 2] / 1000.0, "ms");
	FIG("p99_ms", "latency p99", s->lat[(s->n * 99) / 100] / 1000.0, "ms");
	FIG("hops_avg", "hops, mean", hsum / s->n, "hops");
	FIG("queries_avg", "queries per lookup, mean", qsum / s->n, "queries");
#undef FIG
}

int part_b(struct bench_result *res, int nnet)
{
	struct pnode *n = calloc((size_t)nnet, sizeof(*n));
	struct stats_b *fs = calloc(1, sizeof(*fs)), *gs = calloc(1, sizeof(*gs));
	uint8_t ih[NANNOUNCE][DHT_ID_LEN];
	unsigned int seed = 12345, total = 0;
	uint64_t t0;

	if (!n || !fs || !gs || pnodes_new(n, nnet, 0xb0))
		return -1;
	t0 = now_ms();
	for (int i = 1; i < nnet; i++)
		dht_add_node(n[i].dht, (struct sockaddr *)&n[0].addr, sizeof(n[0].addr), now_ms());
	pump(n, nnet, 8000, NULL, NULL);
	for (int i = 0; i < nnet; i++) {
		struct dht_stats st;

		dht_get_stats(n[i].dht, &st);
		total += st.nodes4;
	}
	printf("\n(b) %d weft nodes on 127.0.0.1, one thread; after %.1f s of bootstrap from node "
	       "0: %.1f nodes per routing table\n",
	       nnet, (now_ms() - t0) / 1000.0, (double)total / nnet);
	/* announces */
	for (int k = 0; k < NANNOUNCE; k++) {
		struct lw w = {0};

		randombytes_buf(ih[k], DHT_ID_LEN);
		if (!dht_announce(n[k % nnet].dht, ih[k], (uint16_t)(20000 + k), 0, now_ms(),
				  lw_done, &w))
			pump(n, nnet, 60000, NULL, &w.done);
	}
	for (int k = 0; k < NLOOKUPS; k++) {
		struct lw w = {0};
		int from = (int)(rand_r(&seed) % (unsigned int)nnet);
		int to = (int)(rand_r(&seed) % (unsigned int)nnet);
		uint64_t s0;

		if (to == from)
			to = (to + 1) % nnet;
		s0 = now_us();
		if (dht_find_node(n[from].dht, dht_id(n[to].dht), now_ms(), lw_done, &w))
			continue;
		pump(n, nnet, 60000, NULL, &w.done);
		fs->lat[fs->n] = now_us() - s0;
		fs->hops[fs->n] = w.r.hops;
		fs->queried[fs->n] = w.r.queried;
		fs->ok += w.r.status == 0 && w.r.nnodes &&
			  !memcmp(w.first, dht_id(n[to].dht), DHT_ID_LEN);
		fs->n++;
	}
	for (int k = 0; k < NLOOKUPS; k++) {
		struct lw w = {0};
		int a = k % NANNOUNCE, from = (int)(rand_r(&seed) % (unsigned int)nnet);
		uint64_t s0;

		w.want_port = (uint16_t)(20000 + a);
		s0 = now_us();
		if (dht_get_peers(n[from].dht, ih[a], now_ms(), lw_done, &w))
			continue;
		pump(n, nnet, 60000, NULL, &w.done);
		gs->lat[gs->n] = now_us() - s0;
		gs->hops[gs->n] = w.r.hops;
		gs->queried[gs->n] = w.r.queried;
		gs->ok += w.r.status == 0 && w.found_peer;
		gs->n++;
	}
	printf("%-10s %8s %9s %10s %10s %10s %9s %8s %10s\n", "lookup", "count", "success",
	       "p50 ms", "p99 ms", "max ms", "hops avg", "hops max", "queries");
	if (fs->n)
		print_b(res, "find_node", fs);
	if (gs->n)
		print_b(res, "get_peers", gs);
	{
		uint64_t to = 0, re = 0;

		for (int i = 0; i < nnet; i++) {
			struct dht_stats st;

			dht_get_stats(n[i].dht, &st);
			to += st.timeouts;
			re += st.retries;
		}
		printf("network totals: %llu retries, %llu queries unanswered after retry\n",
		       (unsigned long long)re, (unsigned long long)to);
	}
	pnodes_free(n, nnet);
	free(n);
	free(fs);
	free(gs);
	return 0;
}

