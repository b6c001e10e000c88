// SPDX-License-Identifier: MIT
/*
 * The reader threads of serving (userspace/content/readq.c, docs/CONTENT.md
 * "Reads off the workers"), on a real engine of 2 workers: each worker
 * keeps CN_READS_PER_WORKER chunk reads out, takes back what its wake-up
 * says came back, checks and frees each job at once and hands out the next
 * (what serve.c does), until 6,000 reads are done.
 *
 * test_reads_come_back_to_their_worker: every job comes back to the worker
 * that submitted it, once, with the chunk it asked for; none is lost. Run
 * under ASan (make test): the first version read a job's worker index
 * after putting it on its worker's list, where the worker may already have
 * freed it (two nodes of a 51-node lab crashed on it).
 *
 * test_free_gives_back_what_is_out: jobs still queued, being read or read
 * but not taken when the pool is freed (after the engine stopped) are
 * given back through free_job, each once: taken back + given back =
 * submitted.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "content/readq.h"
#include "testutil.h"
#include "weft/chunk.h"
#include "weft/engine.h"
#include "weft/store.h"

#define WORKERS 2
#define CHUNKS 6
#define TOTAL 6000

struct rig {
	char *dir;
	struct store *st;
	struct cstore *cs;
	struct engine *eng;
	uint16_t port;
	struct cn_readq *q;
	uint8_t id[32];
	uint8_t *blob;
	atomic_int submitted, back, given_back, wrong, stop_submitting;
	int out[WORKERS]; /* per worker, its thread only */
	uint64_t next[WORKERS];
};

static struct cn_read *job_new(struct rig *g, unsigned int widx)
{
	struct cn_read *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->widx = widx;
	memcpy(r->id, g->id, sizeof(r->id));
	r->index = g->next[widx]++ % CHUNKS;
	r->cap = B3TREE_CHUNK_LEN;
	r->buf = malloc(r->cap);
	assert_non_null(r->buf);
	return r;
}

/* On worker widx: keep CN_READS_PER_WORKER out. */
static void fill(struct rig *g, unsigned int widx)
{
	while (g->out[widx] < CN_READS_PER_WORKER && !atomic_load(&g->stop_submitting)) {
		struct cn_read *r;

		/* both workers submit: take a number first */
		if (atomic_fetch_add(&g->submitted, 1) >= TOTAL) {
			atomic_fetch_sub(&g->submitted, 1);
			break;
		}
		r = job_new(g, widx);
		assert_int_equal(cn_readq_submit(g->q, r), 0);
		g->out[widx]++;
	}
}

static void start_cmd(struct engine_worker *w, void *arg)
{
	fill(arg, engine_worker_index(w));
}

static void done(void *arg, unsigned int widx)
{
	struct rig *g = arg;
	struct cn_read *r = cn_readq_collect(g->q, widx);

	while (r) {
		struct cn_read *n = r->next;

		if (r->widx != widx || r->rc || r->len != B3TREE_CHUNK_LEN ||
		    memcmp(r->buf, g->blob + r->index * B3TREE_CHUNK_LEN, r->len))
			atomic_fetch_add(&g->wrong, 1);
		free(r->buf);
		free(r);
		g->out[widx]--;
		atomic_fetch_add(&g->back, 1);
		r = n;
	}
	fill(g, widx);
}

static void free_job(void *arg, struct cn_read *r)
{
	struct rig *g = arg;

	free(r->buf);
	free(r);
	atomic_fetch_add(&g->given_back, 1);
}

static void rig_new(struct rig *g)
{
	struct store_opts so = { 0 };
	struct cstore_opts co = { 0 };
	struct engine_opts eo;
	struct cn_readq_opts ro = { 0 };
	size_t blen = (size_t)CHUNKS * B3TREE_CHUNK_LEN;
	char sdir[512];
	int port = tu_free_udp_port();

	memset(g, 0, sizeof(*g));
	assert_true(port > 0);
	g->dir = tu_tmpdir();
	snprintf(sdir, sizeof(sdir), "%s/store", g->dir);
	so.dir = sdir;
	assert_int_equal(store_new(&g->st, &so), 0);
	co.store = g->st;
	co.dir = g->dir;
	co.no_sync = 1;
	co.hot_chunks = -1;
	assert_int_equal(cstore_new(&g->cs, &co), 0);
	g->blob = malloc(blen);
	assert_non_null(g->blob);
	tu_fill(g->blob, blen, 21);
	assert_int_equal(cstore_add_buf(g->cs, g->blob, blen, g->id), 0);

	g->port = (uint16_t)port;
	engine_opts_default(&eo);
	eo.workers = WORKERS;
	eo.ports = &g->port;
	eo.nports = 1;
	eo.bind_addr = "127.0.0.1";
	assert_int_equal(engine_new(&g->eng, &eo), 0);
	ro.threads = 4;
	ro.workers = WORKERS;
	ro.eng = g->eng;
	ro.cs = g->cs;
	ro.done = done;
	ro.free_job = free_job;
	ro.arg = g;
	assert_int_equal(cn_readq_new(&g->q, &ro), 0);
	assert_int_equal(engine_start(g->eng), 0);
}

static void rig_free(struct rig *g)
{
	engine_stop(g->eng);
	cn_readq_free(g->q);
	engine_free(g->eng);
	cstore_free(g->cs);
	store_free(g->st);
	free(g->blob);
	tu_rmrf_free(g->dir);
}

static void test_reads_come_back_to_their_worker(void **state)
{
	static struct rig g;
	int i;

	(void)state;
	rig_new(&g);
	for (unsigned int w = 0; w < WORKERS; w++)
		assert_int_equal(engine_call(g.eng, w, start_cmd, &g), 0);
	for (i = 0; i < 6000 && atomic_load(&g.back) < TOTAL; i++)
		usleep(10000);
	printf("submitted %d, back %d (wrong %d), reader threads %u, reads %llu\n",
	       atomic_load(&g.submitted), atomic_load(&g.back), atomic_load(&g.wrong),
	       cn_readq_threads(g.q), (unsigned long long)cn_readq_reads(g.q));
	assert_int_equal(atomic_load(&g.submitted), TOTAL);
	assert_int_equal(atomic_load(&g.back), TOTAL);
	assert_int_equal(atomic_load(&g.wrong), 0);
	assert_int_equal(cn_readq_reads(g.q), TOTAL);
	assert_int_equal(cn_readq_threads(g.q), 4);
	rig_free(&g);
	assert_int_equal(atomic_load(&g.given_back), 0);
}

/* Slow reads (20 ms each, the store's test hook): when the engine stops,
 * jobs are queued, in the readers' hands and back but not taken. */
static void test_free_gives_back_what_is_out(void **state)
{
	static struct rig g;

	(void)state;
	rig_new(&g);
	cstore_test_slow_reads(g.cs, 20);
	for (unsigned int w = 0; w < WORKERS; w++)
		assert_int_equal(engine_call(g.eng, w, start_cmd, &g), 0);
	usleep(100000);
	atomic_store(&g.stop_submitting, 1);
	rig_free(&g);
	printf("submitted %d, taken back %d, given back at the stop %d\n",
	       atomic_load(&g.submitted), atomic_load(&g.back), atomic_load(&g.given_back));
	assert_true(atomic_load(&g.submitted) >= 2 * CN_READS_PER_WORKER);
	assert_true(atomic_load(&g.given_back) >= 1);
	assert_int_equal(atomic_load(&g.back) + atomic_load(&g.given_back),
			 atomic_load(&g.submitted));
	assert_int_equal(atomic_load(&g.wrong), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_come_back_to_their_worker),
		cmocka_unit_test(test_free_gives_back_what_is_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
