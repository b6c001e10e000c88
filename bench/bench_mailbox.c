// SPDX-License-Identifier: MIT
/*
 * mailbox anchor benchmark (issue 34): an anchor holding one sealed
 * message for each of 10,000 recipients (real node keys, real sealed
 * messages of BODY bytes) in its LMDB store: memory and disk per message,
 * then the anchor's side of a fetch (the recipient's LIST read from the
 * store, then its ACK committed) timed per recipient: p50, p99, max, one
 * fetcher at a time and 16 at once (their ACKs share commits).
 * Same work: the anchor's store path alone (mbox_store_*, the functions
 * the server thread runs for PUT, FETCH and ACK), no QUIC: a fetch over
 * the network adds its handshake and two round trips.
 * Usage: bench_mailbox [RECIPIENTS [BODY]]   (default 10000, 1024)
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "benchlib.h"
#include "weft/mailbox.h"
#include "weft/store.h"

#define THREADS 16
#define SOLO 1000 /* recipients fetched one at a time */

static unsigned int nrcpt;
static size_t body_len;
static uint8_t (*rcpt)[32];
static uint8_t sender_sk[64], sender_pk[32];
static uint8_t **sealed;
static size_t *sealed_len;
static struct mbox_store *ms;
static double *lat;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct range {
	unsigned int from, to;
	int err;
};

static void *put_thread(void *arg)
{
	struct range *r = arg;
	uint8_t id[16];

	for (unsigned int i = r->from; i < r->to && !r->err; i++)
		r->err = mbox_store_put(ms, rcpt[i], sender_pk, sealed[i], sealed_len[i], 0,
					(uint64_t)time(NULL), id);
	return NULL;
}

/* One fetch as the anchor serves it: LIST (read), then ACK (commit). */
static int fetch_one(unsigned int i, uint8_t *buf)
{
	struct mbox_list_w w;
	struct mbox_item items[MBOX_FETCH_MAX];
	uint8_t st, ids[MBOX_FETCH_MAX * 16];
	unsigned int n;
	int more, len, got;
	double t0 = now_s();

	mbox_list_begin(&w, buf, MBOX_RESP_MAX);
	got = mbox_store_list(ms, rcpt[i], MBOX_FETCH_MAX, (uint64_t)time(NULL), &w, &more);
	len = mbox_list_end(&w, MBOX_OK, more);
	if (got != 1 || mbox_list_parse(buf, (size_t)len, &st, &more, items, MBOX_FETCH_MAX, &n) ||
	    n != 1)
		return -EIO;
	for (unsigned int k = 0; k < n; k++)
		memcpy(ids + 16 * k, items[k].id, 16);
	if (mbox_store_ack(ms, rcpt[i], ids, n) != 1)
		return -EIO;
	lat[i] = now_s() - t0;
	return 0;
}

static void *fetch_thread(void *arg)
{
	struct range *r = arg;
	uint8_t *buf = malloc(MBOX_RESP_MAX);

	for (unsigned int i = r->from; i < r->to && !r->err && buf; i++)
		r->err = fetch_one(i, buf);
	free(buf);
	return NULL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void pct(double *v, unsigned int n, double *p50, double *p99, double *max)
{
	qsort(v, n, sizeof(*v), cmp_d);
	*p50 = v[n / 2] * 1e3;
	*p99 = v[(size_t)((n - 1) * 0.99)] * 1e3;
	*max = v[n - 1] * 1e3;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static int run_threads(void *(*fn)(void *), unsigned int from, unsigned int to)
{
	pthread_t t[THREADS];
	struct range r[THREADS];
	unsigned int per = (to - from + THREADS - 1) / THREADS;
	int err = 0;

	for (int k = 0; k < THREADS; k++) {
		r[k].from = from + (unsigned int)k * per;
		r[k].to = r[k].from + per < to ? r[k].from + per : to;
		r[k].err = 0;
		pthread_create(&t[k], NULL, fn, &r[k]);
	}
	for (int k = 0; k < THREADS; k++) {
		pthread_join(t[k], NULL);
		if (r[k].err)
			err = r[k].err;
	}
	return err;
}

int main(int argc, char **argv)
{
	char dir[256], path[512], cmd[600];
	struct store_opts so = { 0 };
	struct mbox_limits lim = { 0 };
	struct store *st = NULL;
	struct bench_result *res = NULL;
	struct mbox_store_stats ss;
	struct mallinfo2 m0, m1;
	struct stat sb;
	uint8_t seed[32], rsk[64], *body;
	double t0, t_fill, s50, s99, smax, c50, c99, cmax;
	long rss0, rss1;
	int err;

	nrcpt = argc > 1 ? (unsigned int)atoi(argv[1]) : 10000;
	body_len = argc > 2 ? (size_t)atoi(argv[2]) : 1024;
	if (sodium_init() < 0 || nrcpt < 2 * SOLO || body_len > MBOX_MAX_BODY ||
	    bench_mkdtemp(dir, sizeof(dir), "/tmp", "weft-bench-mailbox"))
		return 2;
	rcpt = calloc(nrcpt, 32);
	sealed = calloc(nrcpt, sizeof(*sealed));
	sealed_len = calloc(nrcpt, sizeof(*sealed_len));
	lat = calloc(nrcpt, sizeof(*lat));
	body = malloc(body_len);
	if (!rcpt || !sealed || !sealed_len || !lat || !body)
		return 1;
	randombytes_buf(body, body_len);
	crypto_sign_keypair(sender_pk, sender_sk);
	for (unsigned int i = 0; i < nrcpt; i++) {
		int n;

		randombytes_buf(seed, 32);
		crypto_sign_seed_keypair(rcpt[i], rsk, seed);
		sealed[i] = malloc(body_len + MBOX_SEAL_OVERHEAD);
		n = mbox_seal(sender_sk, rcpt[i], (uint64_t)time(NULL), body, body_len, sealed[i],
			      body_len + MBOX_SEAL_OVERHEAD);
		if (n < 0)
			return 1;
		sealed_len[i] = (size_t)n;
	}
	so.dir = dir;
	lim.total_msgs = nrcpt;
	lim.total_bytes = (uint64_t)nrcpt * (body_len + MBOX_SEAL_OVERHEAD);
	m0 = mallinfo2();
	rss0 = rss_kib();
	err = store_new(&st, &so);
	if (!err)
		err = mbox_store_new(&ms, st, &lim);
	if (err) {
		fprintf(stderr, "bench_mailbox: store: %s\n", strerror(-err));
		return 1;
	}
	t0 = now_s();
	err = run_threads(put_thread, 0, nrcpt);
	t_fill = now_s() - t0;
	if (err) {
		fprintf(stderr, "bench_mailbox: put: %s\n", strerror(-err));
		return 1;
	}
	m1 = mallinfo2();
	rss1 = rss_kib();
	mbox_store_stats(ms, &ss);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &sb) || ss.msgs != nrcpt || ss.recipients != nrcpt)
		return 1;

	/* fetches: SOLO one at a time, the rest by 16 fetchers at once */
	{
		uint8_t *buf = malloc(MBOX_RESP_MAX);

		for (unsigned int i = 0; i < SOLO && !err; i++)
			err = fetch_one(i, buf);
		free(buf);
	}
	if (!err) {
		pct(lat, SOLO, &s50, &s99, &smax);
		err = run_threads(fetch_thread, SOLO, nrcpt);
	}
	if (err) {
		fprintf(stderr, "bench_mailbox: fetch: %s\n", strerror(-err));
		return 1;
	}
	pct(lat + SOLO, nrcpt - SOLO, &c50, &c99, &cmax);
	mbox_store_stats(ms, &ss);
	if (ss.msgs != 0)
		return 1;

	printf("anchor with %u recipients, one sealed message each (%zu-byte body, %zu sealed)\n",
	       nrcpt, body_len, body_len + MBOX_SEAL_OVERHEAD);
	printf("  fill (16 senders, durable puts)     %.1f s, %.0f messages/s\n", t_fill,
	       nrcpt / t_fill);
	printf("  heap per message (quota counters)   %.1f bytes\n",
	       (double)(m1.uordblks - m0.uordblks) / nrcpt);
	printf("  RSS growth per message (heap + LMDB pages touched) %.0f bytes\n",
	       (double)(rss1 - rss0) * 1024 / nrcpt);
	printf("  disk per message (data.mdb blocks)  %.0f bytes (file %.1f MiB, %.0f bytes a message by size)\n",
	       (double)sb.st_blocks * 512 / nrcpt, (double)sb.st_size / (1 << 20),
	       (double)sb.st_size / nrcpt);
	printf("  fetch, one at a time (LIST + ACK commit, %u recipients)  p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
	       SOLO, s50, s99, smax);
	printf("  fetch, 16 at once (%u recipients)                 p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
	       nrcpt - SOLO, c50, c99, cmax);
	if (bench_result_new(&res, "mailbox", argc, argv) == 0) {
		bench_result_param(res, "recipients", nrcpt);
		bench_result_param(res, "body_bytes", (double)body_len);
		bench_result_same_work(res, "the anchor's store path alone (mbox_store_*), no QUIC");
		bench_result_figure(res, "fill_msgs_s", "durable puts, 16 senders", nrcpt / t_fill,
				    "messages/s");
		bench_result_figure(res, "heap_per_msg", "heap per message",
				    (double)(m1.uordblks - m0.uordblks) / nrcpt, "bytes");
		bench_result_figure(res, "disk_per_msg", "disk per message",
				    (double)sb.st_blocks * 512 / nrcpt, "bytes");
		bench_result_figure(res, "fetch_p50_ms", "fetch p50, one at a time", s50, "ms");
		bench_result_figure(res, "fetch_p99_ms", "fetch p99, one at a time", s99, "ms");
		bench_result_figure(res, "fetch16_p99_ms", "fetch p99, 16 at once", c99, "ms");
		bench_result_finish(res);
	}
	mbox_store_free(ms);
	store_free(st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? 1 : 0;
}
