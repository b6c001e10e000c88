// SPDX-License-Identifier: MIT
/*
 * The mesh message layer on 100 simulated nodes (tests/lib/meshsim.c:
 * each the mesh core with its own LMDB store; a ring lattice of degree 4
 * plus 2 random links a node, 20 ms latency, 10 ms jitter, 1 % loss,
 * fan-out 4; virtual time). Figures:
 *  - time until an announce reached 99 % of the other nodes (median and
 *    worst of 20 announces from random nodes), and how many it reached;
 *  - datagrams sent per node per announce, against a flood's n x fan-out
 *    (every node sending it once to fan-out neighbours) and a full flood
 *    (every node to every neighbour);
 *  - query latency p50/p99 (100 queries from random nodes under one-time
 *    keys, each matching 5 of the 20 announces): until the first answer
 *    and until all 5;
 *  - store memory for 10,000 announces (one store: its LMDB file on disk
 *    and its in-memory index), and the puts' rate (durable writes).
 * Same work rule: the reference figures (n x fan-out, full flood) are
 * computed on the same overlay and the same announces as ours.
 * Usage: bench_mesh [NODES]
 */
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "benchlib.h"
#include "meshsim.h"
#include "weft/mesh.h"
#include "weft/store.h"

#define SVC 5u
#define ANNOUNCES 20
#define QUERIES 100
#define STORE_N 10000
#define FANOUT 4

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
	size_t i;

	qsort(v, n, sizeof(*v), cmp_u64);
	i = (size_t)ceil(p * (double)n) - 1;
	return v[i < n ? i : n - 1];
}

static size_t build(struct meshsim *w, unsigned int i, const uint8_t *sk, uint8_t type,
		    const char *body, uint8_t hops, uint32_t ttl, uint8_t *out)
{
	struct mesh_msg m = { .type = type, .service = SVC, .body = (const uint8_t *)body,
			      .body_len = strlen(body), .max_hops = hops, .ttl_s = ttl,
			      .ts_ms = meshsim_now_ms(w) };

	return meshsim_build(w, i, sk, &m, out);
}

/* 10,000 announces into one store: bytes on disk, index, puts a second. */
static int store_memory(struct bench_result *res)
{
	char dir[200], path[256], cmd[300];
	struct mesh_store_opts mo = { .per_service = STORE_N, .per_provider = 64 };
	struct store_opts so = { .map_size = 256u << 20 };
	uint8_t buf[MESH_ENV_MAX], pk[32], sk[64], seed[32];
	struct mesh_store_stats ss;
	struct mesh_store *ms;
	struct store *st;
	struct stat sb;
	uint64_t env_bytes = 0, now = MESHSIM_EPOCH_MS;
	double t0, dt;
	int err = 0;

	if (bench_mkdtemp(dir, sizeof(dir), "/tmp", "bench_mesh"))
		return -errno;
	so.dir = dir;
	if (store_new(&st, &so) || mesh_store_new(&ms, st, &mo, now))
		return -EIO;
	t0 = bench_now();
	for (int i = 0; i < STORE_N && !err; i++) {
		struct mesh_msg m = { .type = MESH_ANNOUNCE, .service = SVC, .max_hops = 6,
				      .ttl_s = 86400, .ts_ms = now };
		struct mesh_env e;
		char body[128];
		size_t n;

		if (i % 50 == 0) {
			memset(seed, 0, sizeof(seed));
			memcpy(seed, &i, sizeof(i));
			crypto_sign_seed_keypair(pk, sk, seed);
		}
		snprintf(body, sizeof(body),
			 "d4:city6:berlin4:renti%de4:slot16:2026-12-%02dT%02d:004:type5:houree",
			 300 + i % 700, 1 + i % 28, i % 24);
		m.body = (const uint8_t *)body;
		m.body_len = strlen(body);
		err = mesh_env_build(sk, &m, buf, sizeof(buf), &n) ||
		      mesh_env_parse(buf, n, &e, NULL) || mesh_store_put(ms, &e, buf, n, now) != 0;
		env_bytes += n;
	}
	dt = bench_now() - t0;
	mesh_store_stats(ms, &ss);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (err || stat(path, &sb) != 0) {
		fprintf(stderr, "bench_mesh: store run failed\n");
		err = -EIO;
	} else {
		printf("store: %d announces (%llu envelope bytes): LMDB file %.2f MiB on disk, "
		       "index %.2f MiB; %.0f durable puts/s\n",
		       STORE_N, (unsigned long long)env_bytes,
		       (double)sb.st_blocks * 512 / 1048576, (double)ss.index_bytes / 1048576,
		       STORE_N / dt);
		bench_result_figure(res, "store_disk_mib", "LMDB file on disk, 10,000 announces",
				    (double)sb.st_blocks * 512 / 1048576, "MiB");
		bench_result_figure(res, "store_index_mib", "in-memory index, 10,000 announces",
				    (double)ss.index_bytes / 1048576, "MiB");
		bench_result_figure(res, "store_env_mib", "the envelopes themselves",
				    (double)env_bytes / 1048576, "MiB");
		bench_result_figure(res, "store_puts_s", "durable puts a second", STORE_N / dt,
				    "puts/s");
	}
	mesh_store_free(ms);
	store_free(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_mesh: could not remove %s\n", dir);
	return err;
}

int main(int argc, char **argv)
{
	unsigned int n = argc > 1 ? (unsigned int)strtoul(argv[1], NULL, 10) : 100;
	struct meshsim_opts o = { .n = n, .ring = 2, .chords = 2, .latency_us = 20000,
				  .jitter_us = 10000, .loss_ppm = 10000, .seed = 32,
				  .fanout = FANOUT };
	uint64_t reach_ms[ANNOUNCES], first_ms[QUERIES], all_ms[QUERIES], sent = 0, deg = 0;
	unsigned int reached_min = n, n_reach = 0, n_q = 0, incomplete = 0;
	struct bench_result *res;
	uint8_t buf[MESH_ENV_MAX];
	struct meshsim *w;
	double t0;
	uint64_t rnd = 7;

	if (sodium_init() < 0 || n < 10 || n > MESHSIM_MAX)
		return 2;
	if (bench_result_new(&res, "mesh", argc, argv))
		return 1;
	bench_result_same_work(res, "the same overlay, announces and seed: the references count "
				    "what a flood would send for the same announces");
	bench_result_param(res, "nodes", n);
	bench_result_param(res, "fanout", FANOUT);
	bench_result_param(res, "latency_ms", 20);
	bench_result_param(res, "jitter_ms", 10);
	bench_result_param(res, "loss_pct", 1);
	if (meshsim_new(&w, &o)) {
		fprintf(stderr, "bench_mesh: cannot build the world\n");
		return 1;
	}
	t0 = bench_now();
	for (unsigned int i = 0; i < n; i++)
		deg += meshsim_node(w, i)->n_neigh;
	for (int k = 0; k < ANNOUNCES; k++) {
		uint64_t at[MESHSIM_MAX], t;
		unsigned int origin, got = 0, need = (unsigned int)ceil(0.99 * (n - 1));
		char body[64];
		size_t len;

		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		origin = (unsigned int)(rnd >> 33) % n;
		snprintf(body, sizeof(body), "d1:ni%de4:slot5:09:00e", k);
		len = build(w, origin, NULL, MESH_ANNOUNCE, body, 6, 3600, buf);
		meshsim_watch(w, buf, len);
		t = meshsim_now_ms(w);
		if (meshsim_inject(w, origin, buf, len) != 0)
			return 1;
		meshsim_run(w, 3000);
		for (unsigned int i = 0; i < n; i++) {
			struct meshsim_node *x = meshsim_node(w, i);

			sent += x->sent_watch;
			if (i != origin && x->seen_at_ms)
				at[got++] = x->seen_at_ms - t;
		}
		if (got < reached_min)
			reached_min = got;
		if (got >= need)
			reach_ms[n_reach++] = pct(at, got, (double)need / got);
	}
	for (int k = 0; k < QUERIES; k++) {
		uint8_t q[MESH_BODY_QUERY], opk[32], osk[64];
		struct meshsim_node *c;
		unsigned int who;
		uint64_t t, first = 0, last = 0;
		size_t qn, len;

		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		who = (unsigned int)(rnd >> 33) % n;
		c = meshsim_node(w, who);
		crypto_sign_keypair(opk, osk);
		if (mesh_query_body("n<5", 10, q, sizeof(q), &qn))
			return 1;
		{
			struct mesh_msg m = { .type = MESH_QUERY, .service = SVC, .body = q,
					      .body_len = qn, .max_hops = 4, .ttl_s = 60,
					      .ts_ms = meshsim_now_ms(w) };

			len = meshsim_build(w, who, osk, &m, buf);
		}
		c->n_inbox = 0;
		t = meshsim_now_ms(w);
		if (meshsim_inject(w, who, buf, len) != 0)
			return 1;
		meshsim_run(w, 3000);
		for (unsigned int j = 0; j < c->n_inbox; j++) {
			uint64_t d = c->inbox[j].at_ms - t;

			if (!first || d < first)
				first = d;
			if (d > last)
				last = d;
		}
		if (c->n_inbox) {
			first_ms[n_q] = first;
			all_ms[n_q] = last;
			n_q++;
		}
		if (c->n_inbox < 5)
			incomplete++;
	}
	{
		double per_node = (double)sent / ANNOUNCES / n;
		double flood_fanout = FANOUT, flood_full = (double)deg / n;

		printf("mesh: %u nodes (mean degree %.1f), fan-out %d, 1%% loss\n", n,
		       (double)deg / n, FANOUT);
		printf("announce: reached at least %u of %u other nodes; 99%% of them reached in "
		       "%u of %d announces: median %llu ms, worst %llu ms (virtual time)\n",
		       reached_min, n - 1, n_reach, ANNOUNCES,
		       n_reach ? (unsigned long long)pct(reach_ms, n_reach, 0.5) : 0ull,
		       n_reach ? (unsigned long long)pct(reach_ms, n_reach, 1.0) : 0ull);
		printf("datagrams per node per announce: %.2f; a flood's n x fan-out: %.2f; a full "
		       "flood: %.2f\n",
		       per_node, flood_fanout, flood_full);
		printf("query (%u answered of %d, %u with fewer than all 5): first answer p50 %llu "
		       "ms p99 %llu ms; all answers p50 %llu ms p99 %llu ms\n",
		       n_q, QUERIES, incomplete,
		       n_q ? (unsigned long long)pct(first_ms, n_q, 0.5) : 0ull,
		       n_q ? (unsigned long long)pct(first_ms, n_q, 0.99) : 0ull,
		       n_q ? (unsigned long long)pct(all_ms, n_q, 0.5) : 0ull,
		       n_q ? (unsigned long long)pct(all_ms, n_q, 0.99) : 0ull);
		bench_result_figure(res, "reached_min", "fewest other nodes an announce reached",
				    reached_min, "nodes");
		bench_result_figure(res, "reach99_n", "announces that reached 99 %", n_reach,
				    "announces");
		if (n_reach) {
			bench_result_figure(res, "reach99_p50_ms", "99 % reached, median",
					    (double)pct(reach_ms, n_reach, 0.5), "ms");
			bench_result_figure(res, "reach99_max_ms", "99 % reached, worst",
					    (double)pct(reach_ms, n_reach, 1.0), "ms");
		}
		bench_result_figure(res, "msgs_per_node", "datagrams per node per announce",
				    per_node, "datagrams");
		bench_result_figure(res, "ref_flood_fanout", "a flood's n x fan-out, per node",
				    flood_fanout, "datagrams");
		bench_result_figure(res, "ref_flood_full", "a full flood, per node", flood_full,
				    "datagrams");
		bench_result_ratio(res, "vs_fanout_flood", "ours / n x fan-out", "msgs_per_node",
				   "ref_flood_fanout", 0);
		bench_result_ratio(res, "vs_full_flood", "ours / full flood", "msgs_per_node",
				   "ref_flood_full", 0);
		if (n_q) {
			bench_result_figure(res, "query_first_p50_ms", "query, first answer p50",
					    (double)pct(first_ms, n_q, 0.5), "ms");
			bench_result_figure(res, "query_first_p99_ms", "query, first answer p99",
					    (double)pct(first_ms, n_q, 0.99), "ms");
			bench_result_figure(res, "query_all_p50_ms", "query, all answers p50",
					    (double)pct(all_ms, n_q, 0.5), "ms");
			bench_result_figure(res, "query_all_p99_ms", "query, all answers p99",
					    (double)pct(all_ms, n_q, 0.99), "ms");
		}
		bench_result_figure(res, "query_incomplete", "queries with fewer than all answers",
				    incomplete, "queries");
	}
	meshsim_free(w);
	if (store_memory(res))
		return 1;
	bench_result_figure(res, "real_s", "real time of the run", bench_now() - t0, "s");
	return bench_result_finish(res);
}
