// SPDX-License-Identifier: MIT
/*
 * Store writer benchmark (never run by make test): THREADS threads each
 * make N small durable writes (an operator ban's size: 18-byte key, 9-byte
 * value), first each in its own LMDB transaction on the calling thread
 * (store_put: one commit, one fsync, per write: what a control handler did
 * before the writer), then through the writer (store_write_sync: the
 * caller waits for its batch's commit, concurrent callers share it).
 * Printed per mode: writes/s, mean and p99 latency of one write as its
 * caller sees it, and for the writer the number of commits and writes per
 * commit. Then the cost a fire-and-forget caller (a packet worker
 * reporting an automatic ban) sees: ns per store_write_async call.
 *
 * Usage: bench_store [DIR] [THREADS] [N]   (defaults: a fresh dir under
 * /var/tmp, 16 threads, 200 writes each). DIR should be on the disk weftd
 * uses: the figures are the disk's fsync.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchlib.h"
#include "weft/store.h"

static struct store *st;
static unsigned int db, nper;
static int use_writer;
static uint64_t *lat; /* [thread * nper + i], ns */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *run(void *arg)
{
	unsigned int t = (unsigned int)(uintptr_t)arg;
	uint8_t k[18] = { 4, 32 }, v[9] = { 0 };

	for (unsigned int i = 0; i < nper; i++) {
		struct store_op op = { db, k, sizeof(k), v, sizeof(v) };
		uint64_t t0 = now_ns();
		int err;

		k[2] = (uint8_t)use_writer;
		memcpy(k + 3, &t, sizeof(t));
		memcpy(k + 7, &i, sizeof(i));
		err = use_writer ? store_write_sync(st, &op, 1, 30000)
				 : store_put(st, db, k, sizeof(k), v, sizeof(v));
		if (err) {
			fprintf(stderr, "write: %s\n", strerror(-err));
			exit(1);
		}
		lat[t * nper + i] = now_ns() - t0;
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void mode(const char *name, unsigned int nth)
{
	pthread_t th[256];
	struct store_writer_stats s0, s1;
	uint64_t t0, dt, sum = 0, n = (uint64_t)nth * nper;

	store_writer_stats(st, &s0);
	t0 = now_ns();
	for (unsigned int i = 0; i < nth; i++)
		pthread_create(&th[i], NULL, run, (void *)(uintptr_t)i);
	for (unsigned int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	dt = now_ns() - t0;
	store_writer_stats(st, &s1);
	for (uint64_t i = 0; i < n; i++)
		sum += lat[i];
	qsort(lat, n, sizeof(*lat), cmp);
	printf("%-28s %9.0f writes/s  latency mean %7.2f ms  p99 %7.2f ms", name,
	       (double)n * 1e9 / (double)dt, (double)sum / (double)n / 1e6,
	       (double)lat[n * 99 / 100] / 1e6);
	if (use_writer)
		printf("  commits %llu (%.1f writes each)",
		       (unsigned long long)(s1.batches_total - s0.batches_total),
		       (double)n / (double)(s1.batches_total - s0.batches_total));
	printf("\n");
}

int main(int argc, char **argv)
{
	char tmpl[96] = "";
	int own = argc < 2 || !argv[1][0], rc;
	const char *dir = own ? tmpl : argv[1];
	unsigned int nth = argc > 2 ? (unsigned int)atoi(argv[2]) : 16;
	struct store_opts o = { .dir = dir, .map_size = 256 << 20 };
	uint8_t k[18] = { 6, 128 }, v[9] = { 0 };
	uint64_t t0;
	const unsigned int nasync = 4000; /* below the queue limit: all accepted */
	unsigned int dropped = 0;

	nper = argc > 3 ? (unsigned int)atoi(argv[3]) : 200;
	if (own && (rc = bench_mkdtemp(tmpl, sizeof(tmpl), "/var/tmp", "weft-bench-store"))) {
		fprintf(stderr, "bench_store: a directory under /var/tmp: %s\n", strerror(-rc));
		return 1;
	}
	if (nth == 0 || nth > 256 || nper == 0) {
		fprintf(stderr, "usage: bench_store [DIR] [THREADS 1..256] [N]\n");
		return 2;
	}
	lat = calloc((size_t)nth * nper, sizeof(*lat));
	if (!lat || store_new(&st, &o) || store_db(st, "bench", &db)) {
		fprintf(stderr, "cannot open a store in %s\n", dir);
		return 1;
	}
	printf("store in %s, %u threads x %u durable writes\n", dir, nth, nper);
	use_writer = 0;
	mode("direct (commit per write)", nth);
	use_writer = 1;
	mode("writer (group commit)", nth);
	t0 = now_ns();
	for (unsigned int i = 0; i < nasync; i++) {
		struct store_op op = { db, k, sizeof(k), v, sizeof(v) };

		memcpy(k + 2, &i, sizeof(i));
		dropped += store_write_async(st, &op, 1) != 0; /* full queue: dropped */
	}
	printf("fire-and-forget              %9.0f ns per call (caller side; %u calls, %u "
	       "dropped by the full queue)\n",
	       (double)(now_ns() - t0) / nasync, nasync, dropped);
	store_free(st);
	if (own) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			return 1;
	}
	return 0;
}
