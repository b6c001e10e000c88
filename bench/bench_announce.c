// SPDX-License-Identifier: MIT
/*
 * Announcing a seed host's store: N ids (default 65,536) from one node
 * into a simulated DHT of M nodes (default 1,024; tests/lib/dhtsim.c: real
 * DHT cores on a virtual clock, 20 ms links), through the content
 * announce schedule (userspace/content/annsched.c) as weftd's announcer
 * runs it. Figures: virtual time until every id was announced once, the
 * most queries any one remote node received from us in any minute
 * (counted at the receiving side), lookups and batches, and the real CPU
 * time the run took.
 *
 * Same work: the reference is the announcer before batching (one
 * get_peers lookup and announce_peer round per id, 8 started a second,
 * userspace/content/announce.c up to issue 31), run on a 2,048-id sample
 * in the same simulated network; its rate gives its time for N ids.
 *
 * Usage: bench_announce [IDS [NODES]]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "benchlib.h"
#include "content/annsched.h"
#include "dhtsim.h"

#define REF_IDS 2048
#define REF_PER_S 8

struct ref {
	unsigned int done, ok;
};

static void ref_cb(void *arg, const struct dht_result *r)
{
	struct ref *f = arg;

	f->done++;
	f->ok += r->status == 0 && r->stored > 0;
}

/* The old announcer: dht_announce per id, 8 started a second. */
static double reference(struct dhtsim *s, const uint8_t (*ids)[DHT_ID_LEN], size_t n)
{
	struct ref f = {0};
	uint64_t t0 = dhtsim_now(s);

	for (size_t i = 0; i < n; i++) {
		if (i && i % REF_PER_S == 0)
			dhtsim_run(s, 1000, NULL);
		if (dht_announce(dhtsim_us(s), ids[i], 4433, 0, dhtsim_now(s), ref_cb, &f))
			f.done++;
	}
	while (f.done < n && dhtsim_now(s) - t0 < 3600000)
		dhtsim_run(s, 1000, NULL);
	printf("reference (1 lookup + announce per id, %d/s): %zu ids in %.0f s, %u stored\n",
	       REF_PER_S, n, (double)(dhtsim_now(s) - t0) / 1000, f.ok);
	return (double)(dhtsim_now(s) - t0) / 1000;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 65536;
	unsigned int m = argc > 2 ? (unsigned int)strtoul(argv[2], NULL, 10) : 1024;
	struct dhtsim_opts o = {.nodes = m, .seed = 65536, .latency_ms = 20, .max_s = 7200};
	struct bench_result *res;
	struct dhtsim_report r;
	struct dhtsim *s;
	uint8_t(*ids)[DHT_ID_LEN];
	double t0, cpu, ref_s;

	if (sodium_init() < 0 || !n || m < 16)
		return 2;
	ids = malloc(n * DHT_ID_LEN);
	if (!ids || bench_result_new(&res, "announce", argc, argv))
		return 1;
	randombytes_buf_deterministic(ids, n * DHT_ID_LEN,
				      (const uint8_t *)"weft bench_announce seed 000065536");
	bench_result_same_work(res, "the same simulated DHT (nodes, links, seed); the reference "
				    "announces a 2,048-id sample one lookup per id at 8 a second, "
				    "the schedule announces all ids");
	bench_result_param(res, "ids", (double)n);
	bench_result_param(res, "nodes", m);
	bench_result_param(res, "latency_ms", o.latency_ms);
	bench_result_param(res, "budget_per_node_min", CN_ANQ_BUDGET_PER_MIN);
	bench_result_param(res, "announce_budget_per_node_min", CN_ANQ_NODE_PER_MIN);
	if (dhtsim_new(&s, &o)) {
		fprintf(stderr, "bench_announce: cannot build the simulated DHT\n");
		return 1;
	}
	dhtsim_form(s, 20000);
	t0 = bench_now();
	dhtsim_announce(s, (const uint8_t(*)[DHT_ID_LEN])ids, n, 4433, 1800000, &r);
	cpu = bench_now() - t0;
	printf(
	    "announce: %llu of %zu ids in %.1f s of simulated time (%u DHT nodes), %llu lookups, "
	    "%llu batches, %llu queries; busiest node: %llu queries from us in one minute "
	    "(%llu announce_peer; budgets %d in all, %d announce_peer); %.1f s of real "
	    "time\n",
	    (unsigned long long)r.announced, n, (double)r.all_ms / 1000, m,
	    (unsigned long long)r.lookups, (unsigned long long)r.batches,
	    (unsigned long long)r.queries, (unsigned long long)r.max_node_min,
	    (unsigned long long)r.max_node_min_ann, CN_ANQ_BUDGET_PER_MIN, CN_ANQ_NODE_PER_MIN,
	    cpu);
	bench_result_figure(res, "announce_s", "every id announced once (simulated time)",
			    (double)r.all_ms / 1000, "s");
	bench_result_figure(res, "announced", "ids announced", (double)r.announced, "ids");
	bench_result_figure(res, "max_node_queries_min",
			    "most queries one remote node received from us in a minute",
			    (double)r.max_node_min, "queries");
	bench_result_figure(res, "max_node_announces_min", "of those, announce_peer",
			    (double)r.max_node_min_ann, "queries");
	bench_result_figure(res, "lookups", "lookups", (double)r.lookups, "lookups");
	bench_result_figure(res, "batches", "announce batches", (double)r.batches, "batches");
	bench_result_figure(res, "queries", "queries sent in all", (double)r.queries, "queries");
	bench_result_figure(res, "real_s", "real time of the simulation", cpu, "s");
	ref_s = reference(s, (const uint8_t(*)[DHT_ID_LEN])ids, n < REF_IDS ? n : REF_IDS);
	bench_result_figure(res, "ref_announce_s",
			    "reference: every id announced once (extrapolated from the sample)",
			    ref_s * (double)n / (double)(n < REF_IDS ? n : REF_IDS), "s");
	if (r.all_ms)
		bench_result_ratio(res, "speedup", "reference time / schedule time",
				   "ref_announce_s", "announce_s", 0);
	dhtsim_free(s);
	free(ids);
	if (!r.all_ms)
		fprintf(stderr, "bench_announce: not every id was announced\n");
	return bench_result_finish(res) || !r.all_ms;
}
