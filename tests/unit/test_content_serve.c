// SPDX-License-Identifier: MIT
/*
 * The serving side of content fetch streams (type CONTENT_ST_FETCH) over
 * real QUIC on 127.0.0.1: a server (engine + QUIC node + content node with
 * its store) and a client QUIC node in one process. 300 fetch streams on
 * one connection, at most 16 at a time, each one request then the
 * client's FIN: with the request, on its own right after it (the answer
 * still owed), or on its own after reading the answer (how a third-party
 * client ends a stream). Every stream must get the answer and then the
 * server's FIN: a stream left half-open keeps its stream credit, and with
 * the default limit of 100 concurrent streams the connection could not
 * open a 101st.
 *
 * The server runs 2 workers and is dialled from 3 client nodes (3 source
 * ports, so connections spread over its workers): each worker keeps its
 * own table of pending streams, and every entry must be free at the end.
 *
 * Requesters scored and banned: test_content_serve_abuse.c.
 *
 * test_stale_requests_skipped: requests queued at a slow seed by a
 * requester that then closes its connection are skipped, not read.
 *
 * test_slow_disk_reads_off_worker: with every file read slowed to 1 s, the
 * seed's worker answers another request of the same connection while the
 * chunk reads wait on the reader threads (read on the worker, as without
 * them, it waits), also when more chunks are asked for than the worker
 * has reads out at once (the rest parked); every chunk arrives intact.
 *
 * test_answers_in_order_per_stream: a client sending three requests at
 * once on one stream gets the answers in its order though the first two
 * wait on the disk and the third could go at once.
 *
 * test_superseed_slots_reused: super-seeding's items are reused, lowest
 * first, and cleared once past their window.
 *
 * test_superseed_held: offers a downloader says it holds (HAVE_HELD) are
 * done at once: others are offered in their place, the window is not
 * halved (it doubles once a window's worth of offers is done), a held
 * chunk is never offered to it again; a report on another connection or
 * past the end is ignored.
 *
 * test_superseed_window_while_pending: a downloader that asks for the
 * next offers while some are still on their way (it never lets every
 * offer be done at once) still sees its window double once a window's
 * worth was fetched, and is never shown a chunk it fetched.
 *
 * test_superseed_starve: a downloader still fetching from others gets the
 * true bitmap 20 s after its last new offer, and is offered the chunks
 * again once 30 s have passed since their last offer.
 *
 * test_superseed_hungry: a downloader that lacks only chunks offered to
 * others gets the true bitmap once it has said for 3 s that it has
 * nothing to fetch from anyone (HAVE_IDLE), not while it fetches from
 * others, nor when it is idle for a moment between their chunks.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "content/content_node_int.h"
#include "content/readq.h"
#include "content/sched.h"
#include "weft/guard.h"
#include "content_serve_fx.h"
#include "testutil.h"
#include "weft/content_node.h"
#include "weft/engine.h"
#include "weft/identity.h"
#include "weft/quic_node.h"
#include "weft/store.h"
#include "weft/util.h"

#define STREAMS 300
#define PARALLEL 16

struct st {
	uint8_t ans[64];
	size_t len;
	int mode; /* 0: FIN with the request, 1: FIN alone at once, 2: FIN alone after the answer */
	int fin_written, done;
};

struct cli {
	struct quic_node *qn;
	uint64_t conn;
	atomic_int connected, failed, done, opened, open_errors, bad;
	int retry_opens; /* opens refused (-EAGAIN), retried at the next completion */
	struct st st[STREAMS * 2];
	int64_t sid_of[STREAMS];
};

/* On the client worker. */
static void open_next(struct cli *c)
{
	int n = atomic_load(&c->opened);

	if (n >= STREAMS)
		return;
	if (quic_node_stream_open(c->qn, c->conn, CONTENT_ST_FETCH, (uint64_t)n) == 0)
		atomic_fetch_add(&c->opened, 1);
}

static void on_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct cli *c = arg;
	int i;

	if (err) {
		atomic_store(&c->failed, 1);
		return;
	}
	c->conn = conn;
	atomic_store(&c->connected, 1);
	for (i = 0; i < PARALLEL; i++)
		open_next(c);
}

static struct st *st_of(struct cli *c, int64_t sid)
{
	/* client-initiated bidi stream ids: 0, 4, 8... */
	if (sid < 0 || (sid & 3) || sid / 4 >= (int64_t)(sizeof(c->st) / sizeof(c->st[0])))
		return NULL;
	return &c->st[sid / 4];
}

static void on_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct cli *c = arg;
	struct cn_wreq q = { .op = CONTENT_OP_INFO };
	uint8_t req[CN_REQ_MAX];
	struct st *s;
	int len;

	if (err) {
		atomic_fetch_add(&c->open_errors, 1);
		c->retry_opens++;
		atomic_fetch_sub(&c->opened, 1);
		return;
	}
	s = st_of(c, sid);
	if (!s) {
		atomic_fetch_add(&c->bad, 1);
		return;
	}
	memset(s, 0, sizeof(*s));
	s->mode = (int)(token % 3);
	/* An id nobody holds: the answer is NOT_FOUND, head only. */
	tu_fill(q.id, sizeof(q.id), token + 1);
	len = cn_req_encode(&q, req);
	assert_true(len > 0);
	if (quic_node_write(c->qn, conn, sid, req, (size_t)len, s->mode == 0))
		atomic_fetch_add(&c->bad, 1);
	if (s->mode == 1 && quic_node_write(c->qn, conn, sid, NULL, 0, 1))
		atomic_fetch_add(&c->bad, 1);
	s->fin_written = s->mode != 2;
}

static void on_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		    int fin)
{
	struct cli *c = arg;
	struct st *s = st_of(c, sid);

	if (!s || s->done) {
		atomic_fetch_add(&c->bad, 1);
		return;
	}
	if (len > sizeof(s->ans) - s->len) {
		atomic_fetch_add(&c->bad, 1);
		return;
	}
	if (len)
		memcpy(s->ans + s->len, data, len);
	s->len += len;
	if (s->len >= CN_ANS_HEAD && !s->fin_written) {
		/* Read the whole answer, then end our side alone. */
		s->fin_written = 1;
		if (quic_node_write(c->qn, conn, sid, NULL, 0, 1))
			atomic_fetch_add(&c->bad, 1);
	}
	if (!fin)
		return;
	s->done = 1;
	if (s->len != CN_ANS_HEAD || s->ans[0] != CONTENT_ST_NOT_FOUND)
		atomic_fetch_add(&c->bad, 1);
	atomic_fetch_add(&c->done, 1);
	/* One stream ended: one more may start (and one refused earlier). */
	open_next(c);
	if (c->retry_opens) {
		c->retry_opens--;
		open_next(c);
	}
}

static void on_sclosed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct cli *c = arg;
	struct st *s = st_of(c, sid);

	/* A reset is a failure; a clean close after our count is fine. */
	if (err && (!s || !s->done))
		atomic_fetch_add(&c->bad, 1);
}

#define NCLI 3

static void test_fin_alone_300_streams(void **state)
{
	static struct cli c[NCLI];
	struct quic_node_handler h = { .connected = on_connected,
				       .stream_opened = on_opened,
				       .stream_data = on_data,
				       .stream_closed = on_sclosed };
	struct side cl[NCLI];
	struct seed sd;
	struct content_node *cn;
	int i, k, done, failed, bad;

	(void)state;
	memset(c, 0, sizeof(c));
	seed_new(&sd, 2, NULL, 0);
	cn = sd.cn;
	for (k = 0; k < NCLI; k++) {
		side_new(&cl[k], (uint8_t)(2 + k), 1);
		c[k].qn = cl[k].qn;
		assert_int_equal(engine_start(cl[k].eng), 0);
		assert_int_equal(quic_node_connect_addr(cl[k].qn, (struct sockaddr *)&sd.to,
							sizeof(sd.to), sd.s.id.pk, &h, &c[k],
							&c[k].conn),
				 0);
	}
	/* Every wait has a deadline: 60 s for 900 tiny exchanges. */
	for (i = 0; i < 6000; i++) {
		done = failed = bad = 0;
		for (k = 0; k < NCLI; k++) {
			done += atomic_load(&c[k].done);
			failed += atomic_load(&c[k].failed);
			bad += atomic_load(&c[k].bad);
		}
		if (done == NCLI * STREAMS || failed || bad)
			break;
		usleep(10000);
	}
	for (k = 0; k < NCLI; k++)
		printf("client %d: streams done %d/%d, opens refused %d, errors %d\n", k,
		       atomic_load(&c[k].done), STREAMS, atomic_load(&c[k].open_errors),
		       atomic_load(&c[k].bad));
	for (k = 0; k < NCLI; k++) {
		assert_false(atomic_load(&c[k].failed));
		assert_int_equal(atomic_load(&c[k].bad), 0);
		assert_int_equal(atomic_load(&c[k].done), STREAMS);
	}

	for (k = 0; k < NCLI; k++)
		engine_stop(cl[k].eng);
	engine_stop(sd.s.eng);
	/* Every stream ended with both FINs: no pending entry is left on
	 * any worker's table. */
	assert_int_equal(cn->nwtab, 2);
	for (unsigned int w = 0; w < cn->nwtab; w++) {
		printf("server worker %u: pending entries at most %u, left %u\n", w,
		       cn->wtab[w]->peak, cn->wtab[w]->used);
		assert_int_equal(cn->wtab[w]->used, 0);
	}
	for (k = 0; k < NCLI; k++) {
		quic_node_free(cl[k].qn);
		engine_free(cl[k].eng);
	}
	seed_free(&sd);
}

/* ---- requests whose connection went before their turn ---- */

#define STALE_CHUNKS 8

struct stale_cli {
	struct quic_node *qn;
	uint64_t conn;
	uint8_t id[32];
	atomic_int sent, answers, closed;
};

static void stale_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct stale_cli *c = arg;

	(void)peer_key;
	if (err)
		return;
	c->conn = conn;
	for (int i = 0; i < STALE_CHUNKS; i++)
		quic_node_stream_open(c->qn, conn, CONTENT_ST_FETCH, (uint64_t)i);
}

static void stale_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct stale_cli *c = arg;
	struct cn_wreq q = { .op = CONTENT_OP_CHUNK, .index = token };
	uint8_t req[CN_REQ_MAX];
	int len;

	if (err)
		return;
	memcpy(q.id, c->id, sizeof(q.id));
	len = cn_req_encode(&q, req);
	if (len > 0 && quic_node_write(c->qn, conn, sid, req, (size_t)len, 1) == 0)
		atomic_fetch_add(&c->sent, 1);
}

static void stale_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		       int fin)
{
	struct stale_cli *c = arg;

	(void)conn;
	(void)sid;
	(void)data;
	(void)len;
	if (fin)
		atomic_fetch_add(&c->answers, 1);
}

static void stale_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct stale_cli *c = arg;

	(void)conn;
	(void)info;
	atomic_store(&c->closed, 1);
}

/* A requester queues STALE_CHUNKS chunk requests at a slow seed (one chunk
 * each 400 ms, the test hook) and closes its connection after the first
 * answer: the requests still queued are skipped, not read from the disk
 * and sent nowhere (content_node.serve_stale), and only chunks whose
 * answer went out count as served. Before the check every one of them was
 * read and counted. */
static void test_stale_requests_skipped(void **state)
{
	static struct stale_cli c;
	struct quic_node_handler h = { .connected = stale_connected,
				       .stream_opened = stale_opened,
				       .stream_data = stale_data,
				       .closed = stale_closed };
	struct content_node *cn;
	struct side cl;
	struct seed sd;
	size_t blen = (size_t)STALE_CHUNKS * B3TREE_CHUNK_LEN;
	uint8_t *blob = malloc(blen);
	uint64_t served, stale;
	int i;

	(void)state;
	assert_non_null(blob);
	memset(&c, 0, sizeof(c));
	seed_new(&sd, 1, NULL, 400);
	cn = sd.cn;
	tu_fill(blob, blen, 5);
	assert_int_equal(cstore_add_buf(cn->cs, blob, blen, c.id), 0);
	client_new(&cl, &sd, &h, &c, &c.qn, &c.conn);
	/* every wait has a deadline */
	for (i = 0; i < 1000 && (atomic_load(&c.sent) < STALE_CHUNKS || !atomic_load(&c.answers));
	     i++)
		usleep(10000);
	assert_int_equal(atomic_load(&c.sent), STALE_CHUNKS);
	assert_true(atomic_load(&c.answers) >= 1);
	assert_int_equal(quic_node_close(cl.qn, c.conn, 0), 0);
	for (i = 0; i < 1000; i++) {
		served = atomic_load(&cn->served_chunks);
		stale = atomic_load(&cn->serve_stale);
		if (atomic_load(&c.closed) && served + stale >= STALE_CHUNKS)
			break;
		usleep(10000);
	}
	printf("requester: %d asked, %d answered before it closed; seed: %llu chunks served, "
	       "%llu requests skipped\n",
	       atomic_load(&c.sent), atomic_load(&c.answers), (unsigned long long)served,
	       (unsigned long long)stale);
	assert_true(atomic_load(&c.closed));
	assert_int_equal(served + stale, STALE_CHUNKS);
	/* the first one or two went out before the close reached the seed */
	assert_true(served >= 1 && served <= 3);
	assert_true(stale >= STALE_CHUNKS - 3);

	engine_stop(cl.eng);
	engine_stop(sd.s.eng);
	quic_node_free(cl.qn);
	engine_free(cl.eng);
	seed_free(&sd);
	free(blob);
}

/* ---- a slow disk does not hold the worker ---- */

#define SLOW_MAX 12 /* chunks asked for at most: more than a worker's reads out */
#define SLOW_READ_MS 1000

struct slow_cli {
	struct quic_node *qn;
	uint64_t conn;
	uint8_t id[32];
	const uint8_t *blob;
	int n; /* chunks asked for (the INFO's token and index in done_at) */
	uint8_t *got[SLOW_MAX];
	size_t got_len[SLOW_MAX];
	int64_t sid_chunk[SLOW_MAX], sid_info;
	atomic_int opened, seq, ended, bad;
	int done_at[SLOW_MAX + 1]; /* order in which each answer ended (1, 2, ...) */
	struct cstore *seed_cs;
	uint64_t reads_at_info; /* the seed's chunk reads done when the INFO ended */
	uint64_t parked;	/* the seed's requests parked (its reads all out) */
};

static void slow_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct slow_cli *c = arg;

	(void)peer_key;
	if (err)
		return;
	c->conn = conn;
	for (int i = 0; i < c->n; i++)
		quic_node_stream_open(c->qn, conn, CONTENT_ST_FETCH, (uint64_t)i);
}

static void slow_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct slow_cli *c = arg;
	int chunk = token < (uint64_t)c->n;
	struct cn_wreq q = { .op = chunk ? CONTENT_OP_CHUNK : CONTENT_OP_INFO,
			     .index = chunk ? token : 0 };
	uint8_t req[CN_REQ_MAX];
	int len;

	if (err) {
		atomic_fetch_add(&c->bad, 1);
		return;
	}
	if (chunk)
		c->sid_chunk[token] = sid;
	else
		c->sid_info = sid;
	memcpy(q.id, c->id, sizeof(q.id));
	len = cn_req_encode(&q, req);
	if (len <= 0 || quic_node_write(c->qn, conn, sid, req, (size_t)len, 1))
		atomic_fetch_add(&c->bad, 1);
	else
		atomic_fetch_add(&c->opened, 1);
}

static void slow_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		      int fin)
{
	struct slow_cli *c = arg;
	int k = -1;

	(void)conn;
	for (int i = 0; i < c->n; i++)
		if (c->sid_chunk[i] == sid && atomic_load(&c->opened) > i)
			k = i;
	if (k < 0 && sid == c->sid_info)
		k = c->n;
	if (k < 0) {
		atomic_fetch_add(&c->bad, 1);
		return;
	}
	if (k < c->n && len) {
		if (c->got_len[k] + len > CN_ANS_HEAD + B3TREE_CHUNK_LEN) {
			atomic_fetch_add(&c->bad, 1);
			return;
		}
		memcpy(c->got[k] + c->got_len[k], data, len);
		c->got_len[k] += len;
	}
	if (fin && k == c->n) {
		uint64_t hashed = 0, trusted = 0;

		cstore_read_stats(c->seed_cs, &hashed, &trusted, NULL);
		c->reads_at_info = hashed + trusted;
	}
	if (fin) {
		c->done_at[k] = atomic_fetch_add(&c->seq, 1) + 1;
		atomic_fetch_add(&c->ended, 1); /* after what the test reads */
	}
}

/* One requester asks for nchunks chunks of a seed whose every file read
 * takes SLOW_READ_MS (a test hook: a slow or busy disk), then, while those
 * reads wait, for the content's INFO on the same connection (so the same
 * engine worker). With reader threads (the default) the worker hands the
 * reads off and answers the INFO at once, while the reads still wait, also
 * when it has more chunk requests than reads out (CN_READS_PER_WORKER):
 * those wait, parked, and the INFO passes them. Read on the worker
 * (read_threads < 0, as before the threads existed) the INFO waits behind
 * at least one chunk read. Every chunk arrives whole and equal to the
 * blob. */
static void slow_run(int read_threads, struct slow_cli *c, int nchunks)
{
	struct quic_node_handler h = { .connected = slow_connected,
				       .stream_opened = slow_opened,
				       .stream_data = slow_data };
	struct side cl;
	struct seed sd;
	size_t blen = (size_t)nchunks * B3TREE_CHUNK_LEN;
	uint8_t *blob = malloc(blen);
	int i;

	assert_non_null(blob);
	assert_true(nchunks <= SLOW_MAX);
	memset(c, 0, sizeof(*c));
	c->n = nchunks;
	c->sid_info = -1;
	for (i = 0; i < c->n; i++) {
		c->sid_chunk[i] = -1;
		c->got[i] = malloc(CN_ANS_HEAD + B3TREE_CHUNK_LEN);
		assert_non_null(c->got[i]);
	}
	seed_read_threads = read_threads;
	seed_new(&sd, 1, NULL, 0);
	seed_read_threads = 0;
	tu_fill(blob, blen, 11);
	assert_int_equal(cstore_add_buf(sd.cn->cs, blob, blen, c->id), 0);
	cstore_test_slow_reads(sd.cn->cs, SLOW_READ_MS);
	c->seed_cs = sd.cn->cs;
	client_new(&cl, &sd, &h, c, &c->qn, &c->conn);
	for (i = 0; i < 1000 && atomic_load(&c->opened) < c->n; i++)
		usleep(10000);
	assert_int_equal(atomic_load(&c->opened), c->n);
	usleep(200000); /* the chunk requests reached the seed: reads under way */
	assert_int_equal(quic_node_stream_open(c->qn, c->conn, CONTENT_ST_FETCH, c->n), 0);
	for (i = 0; i < 3000 && atomic_load(&c->ended) < c->n + 1; i++)
		usleep(10000);
	printf("read_threads %d: answers ended in the order chunks", read_threads);
	for (i = 0; i < c->n; i++)
		printf(" %d", c->done_at[i]);
	printf(", info %d (chunk reads done by then: %llu); file reads on readers %llu, "
	       "on the worker %llu\n",
	       c->done_at[c->n], (unsigned long long)c->reads_at_info,
	       (unsigned long long)cn_readq_reads(sd.cn->rq),
	       (unsigned long long)atomic_load(&sd.cn->serve_reads_worker));
	assert_int_equal(atomic_load(&c->bad), 0);
	assert_int_equal(atomic_load(&c->ended), c->n + 1);
	for (i = 0; i < c->n; i++) {
		assert_int_equal(c->got_len[i], CN_ANS_HEAD + B3TREE_CHUNK_LEN);
		assert_int_equal(c->got[i][0], CONTENT_ST_OK);
		assert_memory_equal(c->got[i] + CN_ANS_HEAD, blob + (size_t)i * B3TREE_CHUNK_LEN,
				    B3TREE_CHUNK_LEN);
	}
	c->parked = atomic_load(&sd.cn->serve_parked);
	if (read_threads >= 0) {
		assert_int_equal(cn_readq_reads(sd.cn->rq), c->n);
		assert_int_equal(atomic_load(&sd.cn->serve_reads_worker), 0);
	} else {
		assert_null(sd.cn->rq);
		assert_int_equal(atomic_load(&sd.cn->serve_reads_worker), c->n);
	}

	engine_stop(cl.eng);
	engine_stop(sd.s.eng);
	quic_node_free(cl.qn);
	engine_free(cl.eng);
	seed_free(&sd);
	for (i = 0; i < c->n; i++)
		free(c->got[i]);
	free(blob);
}

static void test_slow_disk_reads_off_worker(void **state)
{
	static struct slow_cli c;

	(void)state;
	slow_run(0, &c, 3);
	/* the INFO was answered while every chunk read still waited */
	assert_int_equal(c.reads_at_info, 0);
	assert_int_equal(c.parked, 0);

	/* more chunks asked for than the worker hands out at once: the
	 * rest wait parked, and the INFO goes before them all the same */
	assert_true(SLOW_MAX > CN_READS_PER_WORKER);
	slow_run(0, &c, SLOW_MAX);
	assert_int_equal(c.reads_at_info, 0);
	assert_true(c.parked >= 1 && c.parked <= SLOW_MAX - CN_READS_PER_WORKER);

	slow_run(-1, &c, 3);
	/* on the worker: the INFO waited behind the chunk reads */
	assert_true(c.reads_at_info >= 1);
}

/* ---- answers in order on a stream whose client sends ahead ---- */

struct pipe_cli {
	struct quic_node *qn;
	uint64_t conn;
	uint8_t id[32];
	uint8_t *got;
	size_t len, cap;
	atomic_int fin, bad, opened;
};

static void pipe_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct pipe_cli *c = arg;

	(void)peer_key;
	if (err)
		return;
	c->conn = conn;
	quic_node_stream_open(c->qn, conn, CONTENT_ST_FETCH, 0);
}

/* Three requests in one write, the client's FIN with the last: chunk 0,
 * chunk 1, INFO. */
static void pipe_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct pipe_cli *c = arg;
	uint8_t req[3 * CN_REQ_MAX];
	size_t off = 0;
	int len;

	(void)token;
	if (err) {
		atomic_fetch_add(&c->bad, 1);
		return;
	}
	for (int i = 0; i < 3; i++) {
		struct cn_wreq q = { .op = i < 2 ? CONTENT_OP_CHUNK : CONTENT_OP_INFO,
				     .index = i < 2 ? (uint64_t)i : 0 };

		memcpy(q.id, c->id, sizeof(q.id));
		len = cn_req_encode(&q, req + off);
		if (len <= 0) {
			atomic_fetch_add(&c->bad, 1);
			return;
		}
		off += (size_t)len;
	}
	if (quic_node_write(c->qn, conn, sid, req, off, 1))
		atomic_fetch_add(&c->bad, 1);
	atomic_store(&c->opened, 1);
}

static void pipe_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		      int fin)
{
	struct pipe_cli *c = arg;

	(void)conn;
	(void)sid;
	if (len > c->cap - c->len) {
		atomic_fetch_add(&c->bad, 1);
		return;
	}
	memcpy(c->got + c->len, data, len);
	c->len += len;
	if (fin)
		atomic_store(&c->fin, 1);
}

/* A client that sends its next requests on a stream before the answer
 * (the protocol asks one at a time; the server answers each in order all
 * the same): chunk 0 and chunk 1 read by the reader threads from a slow
 * disk (200 ms a read), the INFO answerable at once: the stream carries
 * chunk 0, chunk 1, then the INFO, then the FIN. The later requests wait
 * behind the stream's read (counted: the seed's held requests). */
static void test_answers_in_order_per_stream(void **state)
{
	static struct pipe_cli c;
	struct quic_node_handler h = { .connected = pipe_connected,
				       .stream_opened = pipe_opened,
				       .stream_data = pipe_data };
	struct side cl;
	struct seed sd;
	size_t blen = 3 * (size_t)B3TREE_CHUNK_LEN, off = 0, info_len = CN_INFO_ANSWER(3) - CN_ANS_HEAD;
	uint8_t *blob = malloc(blen);
	int i;

	(void)state;
	assert_non_null(blob);
	memset(&c, 0, sizeof(c));
	c.cap = 2 * (CN_ANS_HEAD + B3TREE_CHUNK_LEN) + CN_ANS_HEAD + info_len;
	c.got = malloc(c.cap);
	assert_non_null(c.got);
	seed_new(&sd, 1, NULL, 0);
	tu_fill(blob, blen, 12);
	assert_int_equal(cstore_add_buf(sd.cn->cs, blob, blen, c.id), 0);
	cstore_test_slow_reads(sd.cn->cs, 200);
	client_new(&cl, &sd, &h, &c, &c.qn, &c.conn);
	for (i = 0; i < 1000 && !atomic_load(&c.fin) && !atomic_load(&c.bad); i++)
		usleep(10000);
	printf("one stream, 3 requests sent at once: %zu bytes back, fin %d; seed: %llu held, "
	       "%llu read on readers\n", c.len, atomic_load(&c.fin),
	       (unsigned long long)atomic_load(&sd.cn->serve_held),
	       (unsigned long long)cn_readq_reads(sd.cn->rq));
	assert_int_equal(atomic_load(&c.bad), 0);
	assert_true(atomic_load(&c.fin));
	assert_int_equal(c.len, c.cap);
	for (i = 0; i < 2; i++) {
		assert_int_equal(c.got[off], CONTENT_ST_OK);
		assert_memory_equal(c.got + off + CN_ANS_HEAD, blob + (size_t)i * B3TREE_CHUNK_LEN,
				    B3TREE_CHUNK_LEN);
		off += CN_ANS_HEAD + B3TREE_CHUNK_LEN;
	}
	assert_int_equal(c.got[off], CONTENT_ST_OK); /* the INFO, last */
	assert_true(atomic_load(&sd.cn->serve_held) >= 1);
	assert_int_equal(cn_readq_reads(sd.cn->rq), 2);

	engine_stop(cl.eng);
	engine_stop(sd.s.eng);
	quic_node_free(cl.qn);
	engine_free(cl.eng);
	seed_free(&sd);
	free(c.got);
	free(blob);
}

/* A bare content node with super-seeding alone (window superseed_s), its
 * key from seed byte s0 in id. */
static struct content_node *ss_node_new(struct identity *id, uint8_t s0, uint64_t superseed_s)
{
	struct content_node *cn = calloc(1, sizeof(*cn));
	uint8_t seed[IDENTITY_SEED_LEN] = { s0 };

	assert_non_null(cn);
	identity_from_seed(id, seed);
	cn->id = id;
	atomic_store(&cn->superseed_s, superseed_s);
	assert_int_equal(cn_ss_init(cn), 0);
	return cn;
}

/* Super-seeding's items (72 KiB each, CN_SS_MAX of them): a new content
 * takes the lowest slot free or past its window, so one content after
 * another reuses the same item (before, each took a slot never used,
 * resident once written: the soak's RSS rose in 72 KiB steps); items past
 * their window are cleared by the node's tick (cn_ss_trim), not only
 * when their slot is taken again. superseed_s = 1: a 1 s window. */
static void test_superseed_slots_reused(void **state)
{
	uint8_t a[32], b[32], c[32];
	struct identity id;
	struct content_node *cn = ss_node_new(&id, 4, 1);
	json_t *j;

	(void)state;
	tu_fill(a, sizeof(a), 1);
	tu_fill(b, sizeof(b), 2);
	tu_fill(c, sizeof(c), 3);
	assert_int_equal(cn_ss_slots_used(cn), 0);
	assert_int_equal(cn_ss_add(cn, a, 4), 0);
	assert_int_equal(cn_ss_add(cn, b, 4), 0);
	assert_int_equal(cn_ss_add(cn, a, 4), 0); /* again: its own item */
	assert_int_equal(cn_ss_slots_used(cn), 2);
	j = cn_ss_json(cn);
	assert_int_equal(json_array_size(j), 2);
	json_decref(j);
	usleep(1100 * 1000); /* both windows over */
	assert_int_equal(cn_ss_add(cn, c, 4), 0);
	assert_int_equal(cn_ss_slots_used(cn), 2); /* a's slot, not a third */
	cn_ss_trim(cn, util_now_ms());
	assert_int_equal(cn_ss_slots_used(cn), 1); /* b cleared, c kept */
	j = cn_ss_json(cn);
	assert_int_equal(json_array_size(j), 1);
	json_decref(j);
	usleep(1100 * 1000);
	cn_ss_trim(cn, util_now_ms());
	assert_int_equal(cn_ss_slots_used(cn), 0);
	cn_ss_free(cn);
	free(cn);
}

/* The chunks bits shows (n of them), as a list: how many. */
static unsigned int shown(const uint8_t *bits, uint64_t n, uint64_t *out)
{
	unsigned int k = 0;

	for (uint64_t c = 0; c < n; c++)
		if (bits[c / 8] >> (c % 8) & 1)
			out[k++] = c;
	return k;
}

static void addr4(struct sockaddr_storage *ss, uint8_t last)
{
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	a->sin_family = AF_INET;
	a->sin_port = htons(4433);
	a->sin_addr.s_addr = htonl(0x0a000000u | last);
}

/* Content a (n chunks, filled from fill) super-seeded on cn, with two
 * downloaders at da and db; B asks first, so A is never alone (it gets
 * offers, not the true bitmap). */
static void ss_two(struct content_node *cn, uint8_t a[32], uint8_t fill, uint64_t n,
		   struct sockaddr_storage *da, struct sockaddr_storage *db)
{
	uint8_t bits[16];

	assert_true(n <= sizeof(bits) * 8);
	tu_fill(a, 32, fill);
	assert_int_equal(cn_ss_add(cn, a, n), 0);
	addr4(da, 1);
	addr4(db, 2);
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, db, 2, bits, n, 0), 1);
}

static void test_superseed_held(void **state)
{
	uint8_t a[32], bits[8];
	struct sockaddr_storage da = { 0 }, db = { 0 }, dc = { 0 };
	uint64_t off[64], off2[64], first;
	uint32_t mask = 0;
	struct identity id;
	struct content_node *cn = ss_node_new(&id, 5, 60);
	unsigned int k, k2;
	json_t *j;

	(void)state;
	ss_two(cn, a, 7, 64, &da, &db); /* B is there too: A is not alone */
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 64, 0), 1);
	k = shown(bits, 64, off);
	assert_int_equal(k, 4); /* CN_SS_OFFER */

	/* a report on another connection (a restart's) changes nothing */
	first = off[0] < off[1] ? off[0] : off[1];
	mask = 1u << (off[0] - first) | 1u << (off[1] - first);
	cn_ss_held(cn, a, &da, 9, (uint32_t)first, mask);
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 64, 0), 1);
	assert_int_equal(shown(bits, 64, off2), 4);
	assert_memory_equal(off, off2, sizeof(off[0]) * 4);

	/* two held: two others in their place, the other two still shown;
	 * the two held no longer count as offered (B's 4, A's 2 and 2 new) */
	cn_ss_held(cn, a, &da, 1, (uint32_t)first, mask);
	j = cn_ss_json(cn);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "offered_once")),
			 6);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "offers_held")),
			 2);
	json_decref(j);
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 64, 0), 1);
	k2 = shown(bits, 64, off2);
	assert_int_equal(k2, 4); /* window not halved */
	for (unsigned int i = 0; i < k2; i++) {
		assert_true(off2[i] != off[0] && off2[i] != off[1]);
	}
	assert_true(bits[off[2] / 8] >> (off[2] % 8) & 1);
	assert_true(bits[off[3] / 8] >> (off[3] % 8) & 1);

	/* every offer held: the window doubles, none of them shown again */
	memcpy(off, off2, sizeof(off2));
	for (unsigned int i = 0; i < k2; i++)
		cn_ss_held(cn, a, &da, 1, (uint32_t)off[i], 1);
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 64, 0), 1);
	k2 = shown(bits, 64, off2);
	assert_int_equal(k2, 8);
	for (unsigned int i = 0; i < k2; i++)
		for (unsigned int m = 0; m < 4; m++)
			assert_true(off2[i] != off[m]);

	/* past the end: ignored (chunks 60..63 held, nothing beyond) */
	cn_ss_held(cn, a, &da, 1, 60, 0xffffffffu);
	cn_ss_held(cn, a, &da, 1, UINT32_MAX, 0xffffffffu);
	j = cn_ss_json(cn);
	assert_int_equal(json_array_size(j), 1);
	assert_true(json_integer_value(json_object_get(json_array_get(j, 0), "offers_held")) >= 6);
	json_decref(j);

	/* A downloader telling lies for nothing: every chunk "held" as soon
	 * as it is shown. Its offers stop counting as offers, so another
	 * downloader still gets chunks offered to nobody. */
	for (unsigned int round = 0; round < 16; round++) {
		memset(bits, 0xff, sizeof(bits));
		cn_ss_filter(cn, a, &da, 1, bits, 64, 0);
		k2 = shown(bits, 64, off2);
		for (unsigned int i = 0; i < k2; i++)
			cn_ss_held(cn, a, &da, 1, (uint32_t)off2[i], 1);
	}
	addr4(&dc, 3);
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &dc, 3, bits, 64, 0), 1);
	assert_int_equal(shown(bits, 64, off2), 4);
	cn_ss_free(cn);
	free(cn);
}

/* The first super-seeded content's counts of true bitmaps answered:
 * to idle downloaders, and to starved ones (GET /v1/content/peers). */
static void true_bitmaps(struct content_node *cn, json_int_t idle, json_int_t starved)
{
	json_t *j = cn_ss_json(cn), *o = json_array_get(j, 0);

	assert_int_equal(json_integer_value(json_object_get(o, "idle_true_bitmaps")), idle);
	assert_int_equal(json_integer_value(json_object_get(o, "starved_true_bitmaps")), starved);
	json_decref(j);
}

/* A downloader that holds every chunk offered to it, and lacks only
 * chunks offered to others within CN_SS_SPREAD_MS, is shown nothing new
 * for a moment (the others may trade them), then, once it has said for
 * 3 s (CN_SS_HUNGRY_MS) that it has nothing to fetch from anyone
 * (HAVE_IDLE), the true bitmap: a chunk offered to a downloader nobody
 * can reach (behind a NAT) would otherwise hold the rest back. Until
 * 2026-12-03 that took 20 s (a 4 s distribution in a NAT lab took 20-22
 * s); until 2026-12-04 one HAVE_IDLE 3 s after the last offer was enough,
 * and a downloader idle for a moment between chunks from others got it. */
static void test_superseed_hungry(void **state)
{
	uint8_t a[32], bits[1];
	struct sockaddr_storage da = {0}, db = {0};
	uint64_t off[8];
	struct identity id;
	struct content_node *cn = ss_node_new(&id, 5, 60);
	unsigned int k;

	(void)state;
	ss_two(cn, a, 9, 8, &da, &db); /* B offered 4 of the 8 */
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 8, 0), 1);
	k = shown(bits, 8, off);
	assert_int_equal(k, 4); /* the other 4 */
	for (unsigned int i = 0; i < k; i++)
		cn_ss_fetched(cn, a, &da, off[i]);
	/* what A lacks is on its way to B: nothing to show for now */
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 8, 1), 1);
	assert_int_equal(shown(bits, 8, off), 0);
	sleep(2);
	/* fetching from others again (HAVE, HAVE_HELD): its idle run ends */
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 8, 0), 1);
	assert_int_equal(shown(bits, 8, off), 0);
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 8, 1), 1); /* idle again */
	assert_int_equal(shown(bits, 8, off), 0);
	usleep(1100 * 1000);
	/* 3 s after its last offer, idle for 1 s only: offers as before */
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 8, 1), 1);
	assert_int_equal(shown(bits, 8, off), 0);
	/* still fetching from others: the true bitmap only 20 s on */
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 8, 0), 1);
	assert_int_equal(shown(bits, 8, off), 0);
	/* idle again from here, for 3 s: the true bitmap, left as it is,
	 * and counted */
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 8, 1), 1);
	usleep(2000 * 1000);
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 8, 1), 1); /* 2 s: not yet */
	assert_int_equal(shown(bits, 8, off), 0);
	usleep(1100 * 1000);
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 8, 1), 0);
	assert_int_equal(bits[0], 0xff);
	true_bitmaps(cn, 1, 0);
	/* back on a new connection (a restart), not idle: the true bitmap
	 * at once, counted apart */
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 7, bits, 8, 0), 0);
	assert_int_equal(bits[0], 0xff);
	true_bitmaps(cn, 1, 1);
	cn_ss_free(cn);
	free(cn);
}

static int is_in(const uint64_t *v, unsigned int n, uint64_t c)
{
	for (unsigned int i = 0; i < n; i++)
		if (v[i] == c)
			return 1;
	return 0;
}

/* The downloader at d (connection conn) asks at now, not idle: offers
 * answered (1), exactly n of them, each one of from[0..nfrom). */
static void offered_at(struct content_node *cn, const uint8_t *a, const struct sockaddr_storage *d,
		       uint64_t conn, uint64_t now, unsigned int n, const uint64_t *from,
		       unsigned int nfrom)
{
	uint8_t bits[1];
	uint64_t off[8];

	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter_at(cn, a, d, conn, bits, 8, 0, now), 1);
	assert_int_equal(shown(bits, 8, off), n);
	for (unsigned int i = 0; i < n; i++)
		assert_true(is_in(from, nfrom, off[i]));
}

/* A downloader still fetching from others, which may never say HAVE_IDLE,
 * keeps to the offers for 20 s after its last new offer, then gets the
 * true bitmap (counted as starved), and is offered the chunks again once
 * CN_SS_SPREAD_MS has passed since their last offer. A clock of our own
 * (cn_ss_filter_at), ahead of the real one. */
static void test_superseed_starve(void **state)
{
	uint8_t a[32], bits[1];
	struct sockaddr_storage da = {0}, db = {0}, dd = {0};
	uint64_t aof[8], bof[8], t0;
	struct identity id;
	struct content_node *cn = ss_node_new(&id, 5, 120);
	unsigned int ka, kb;

	(void)state;
	ss_two(cn, a, 11, 8, &da, &db); /* B offered 4 of the 8 */
	t0 = util_now_ms();
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter_at(cn, a, &db, 2, bits, 8, 0, t0), 1);
	kb = shown(bits, 8, bof); /* B's 4, still pending */
	assert_int_equal(kb, 4);
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter_at(cn, a, &da, 1, bits, 8, 0, t0), 1);
	ka = shown(bits, 8, aof);
	assert_int_equal(ka, 4); /* A: the other 4 */
	for (unsigned int i = 0; i < ka; i++)
		cn_ss_fetched(cn, a, &da, aof[i]);
	/* D: nothing new to offer it */
	addr4(&dd, 4);
	offered_at(cn, a, &dd, 4, t0 + 300, 0, NULL, 0);
	/* B, still fetching, keeps the others from being alone (a
	 * downloader with nobody seen for 20 s gets the true bitmap) */
	for (uint64_t t = 10000; t < 20000; t += 9000) {
		memset(bits, 0xff, sizeof(bits));
		assert_int_equal(cn_ss_filter_at(cn, a, &db, 2, bits, 8, 0, t0 + t), 1);
	}
	/* 19.9 s after A's last offer: offers only; 20.1 s: the true bitmap */
	offered_at(cn, a, &da, 1, t0 + 19900, 0, NULL, 0);
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter_at(cn, a, &da, 1, bits, 8, 0, t0 + 20100), 0);
	assert_int_equal(bits[0], 0xff);
	true_bitmaps(cn, 0, 1);
	/* 31 s on, B's chunks may be offered again: A is offered them (it
	 * holds the other 4), and D, which holds nothing, A's 4 */
	offered_at(cn, a, &da, 1, t0 + 31000, 4, bof, kb);
	offered_at(cn, a, &dd, 4, t0 + 31100, 4, aof, ka);
	true_bitmaps(cn, 0, 1);
	cn_ss_free(cn);
	free(cn);
}

static void test_superseed_window_while_pending(void **state)
{
	uint8_t a[32], bits[16];
	struct sockaddr_storage da = { 0 }, db = { 0 };
	uint64_t off[128], got[128];
	struct identity id;
	struct content_node *cn = ss_node_new(&id, 6, 60);
	unsigned int k, ngot = 0;

	(void)state;
	ss_two(cn, a, 9, 128, &da, &db);
	memset(bits, 0xff, sizeof(bits));
	assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 128, 0), 1);
	assert_int_equal(shown(bits, 128, off), 4);
	/* Each round A fetches all but the last two shown, then asks again:
	 * two offers always pending, so never every offer done at once. The
	 * window doubles each time a window's worth was fetched: 4, 4, 8
	 * (4 done), 8, 16 (8 done), 32 (16 done), 32 (the most). */
	static const unsigned int want[] = { 4, 4, 8, 8, 16, 32, 32 };
	for (unsigned int round = 0; round < sizeof(want) / sizeof(want[0]); round++) {
		k = shown(bits, 128, off);
		assert_int_equal(k, want[round]);
		for (unsigned int i = 0; i < k; i++)
			assert_false(is_in(got, ngot, off[i]));
		/* fetch the first k - 2 shown (the two highest stay pending) */
		for (unsigned int i = 0; i + 2 < k; i++) {
			cn_ss_fetched(cn, a, &da, off[i]);
			got[ngot++] = off[i];
		}
		memset(bits, 0xff, sizeof(bits));
		assert_int_equal(cn_ss_filter(cn, a, &da, 1, bits, 128, 0), 1);
	}
	cn_ss_free(cn);
	free(cn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fin_alone_300_streams),
	    cmocka_unit_test(test_stale_requests_skipped),
	    cmocka_unit_test(test_slow_disk_reads_off_worker),
	    cmocka_unit_test(test_answers_in_order_per_stream),
	    cmocka_unit_test(test_superseed_slots_reused),
	    cmocka_unit_test(test_superseed_held),
	    cmocka_unit_test(test_superseed_window_while_pending),
	    cmocka_unit_test(test_superseed_hungry),
	    cmocka_unit_test(test_superseed_starve),
	};

	return cmocka_run_group_tests_name("content_serve", tests, NULL, NULL);
}
