// SPDX-License-Identifier: MIT
/*
 * Requesters that abuse a seed, over real QUIC on 127.0.0.1 (the fixture
 * of content_serve_fx.h), scored and, validated by their completed
 * handshake, banned through the guard (docs/CONTENT.md "Requester
 * scoring"):
 *
 * test_requester_banned: a requester asking for chunks of content the
 * server never announced.
 *
 * test_removed_not_scored: one asking for chunks of content the server
 * removed lately: not scored.
 *
 * test_stream_limit_banned: a requester keeping more fetch streams open
 * at once than CONTENT_SERVE_PEER_STREAMS.
 *
 * test_reconnect_banned: a requester that reconnects before any one
 * connection's score gets to the ban.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "content/content_node_int.h"
#include "content/sched.h"
#include "content_serve_fx.h"
#include "testutil.h"
#include "weft/content_node.h"
#include "weft/guard.h"
#include "weft/quic_node.h"

/* What both requesters share: their node, their connection and its end. */
struct abuser {
	struct quic_node *qn;
	uint64_t conn;
	atomic_int closed;
};

static void abuser_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct abuser *a = arg; /* the first member of each requester */

	(void)conn;
	(void)info;
	atomic_store(&a->closed, 1);
}

/* A seed of 2 workers with a guard, and a requester (h; a, its state,
 * passed to h) dialling it; waits at most 30 s for the seed to close the
 * requester's connection. */
static void abuse_run(struct seed *sd, struct guard **g, struct side *cl,
		      const struct quic_node_handler *h, struct abuser *a)
{
	struct guard_opts go = {.npolicers = 2};

	assert_int_equal(guard_new(g, &go), 0);
	seed_new(sd, 2, *g, 0);
	client_new(cl, sd, h, a, &a->qn, &a->conn);
	for (int i = 0; i < 3000 && !atomic_load(&a->closed); i++)
		usleep(10000);
}

/* Stop and free the seed, its guard and the requester's node. */
static void abuse_free(struct seed *sd, struct guard *g, struct side *cl)
{
	engine_stop(cl->eng);
	engine_stop(sd->s.eng);
	quic_node_free(cl->qn);
	engine_free(cl->eng);
	seed_free(sd);
	guard_free(g);
}

/* The requester's connection closed by the seed, one requester banned,
 * its address (127.0.0.1) the one automatic ban in the guard's list;
 * everything freed. */
static void abuse_end(struct seed *sd, struct guard *g, struct side *cl, struct abuser *a)
{
	struct wxdp_ban bans[8];
	size_t nb = 0;

	assert_true(atomic_load(&a->closed));
	assert_int_equal(atomic_load(&sd->cn->requester_bans), 1);
	assert_int_equal(guard_ban_list(g, bans, 8, &nb), 0);
	assert_int_equal(nb, 1);
	assert_int_equal(bans[0].family, AF_INET);
	assert_int_equal(bans[0].addr[0], 127);
	assert_int_equal(bans[0].kind, WXDP_BAN_AUTO);
	abuse_free(sd, g, cl);
}

/* ---- a requester asking for chunks never announced ---- */

struct bad_cli {
	struct abuser a;
	atomic_int connected, answers, notfound, asked;
};

/* The content the bad requester asks for, when set: else an id never
 * seen. */
static uint8_t bad_id[B3TREE_ID_LEN];
static int bad_id_set;

static void bad_ask(struct bad_cli *b)
{
	if (atomic_load(&b->asked) < 40 &&
	    quic_node_stream_open(b->a.qn, b->a.conn, CONTENT_ST_FETCH, 0) == 0)
		atomic_fetch_add(&b->asked, 1);
}

static void bad_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct bad_cli *b = arg;

	(void)peer_key;
	if (err)
		return;
	b->a.conn = conn;
	atomic_store(&b->connected, 1);
	bad_ask(b);
}

static void bad_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct bad_cli *b = arg;
	struct cn_wreq q = {.op = CONTENT_OP_CHUNK, .index = 3};
	uint8_t req[CN_REQ_MAX];
	int len;

	(void)token;
	if (err)
		return;
	/* a chunk of content the server never announced (or bad_id's) */
	if (bad_id_set)
		memcpy(q.id, bad_id, sizeof(q.id));
	else
		tu_fill(q.id, sizeof(q.id), 77);
	len = cn_req_encode(&q, req);
	quic_node_write(b->a.qn, conn, sid, req, (size_t)len, 1);
}

static void bad_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		     int fin)
{
	struct bad_cli *b = arg;

	(void)conn;
	(void)sid;
	if (len && data[0] == CONTENT_ST_NOT_FOUND)
		atomic_fetch_add(&b->notfound, 1);
	if (fin) {
		atomic_fetch_add(&b->answers, 1);
		bad_ask(b);
	}
}

/* Every CHUNK request for content never announced costs the requester
 * score (cn_fault_cost[CN_FAULT_UNANNOUNCED]); at CN_SCHED_BAN_SCORE the
 * requester, validated by its completed handshake, is banned through the
 * guard (its address in the ban list, an automatic ban), counted, and its
 * connection closed. Requests before that are answered NOT_FOUND. */
static void test_requester_banned(void **state)
{
	static struct bad_cli b;
	struct quic_node_handler h = {.connected = bad_connected,
				      .stream_opened = bad_opened,
				      .stream_data = bad_data,
				      .closed = abuser_closed};
	unsigned int need = CN_SCHED_BAN_SCORE / cn_fault_cost[CN_FAULT_UNANNOUNCED];
	struct guard *g;
	struct side cl;
	struct seed sd;

	(void)state;
	memset(&b, 0, sizeof(b));
	abuse_run(&sd, &g, &cl, &h, &b.a);
	printf("requester: %d asked, %d answered (%d NOT_FOUND), closed %d; bans %llu\n",
	       atomic_load(&b.asked), atomic_load(&b.answers), atomic_load(&b.notfound),
	       atomic_load(&b.a.closed), (unsigned long long)atomic_load(&sd.cn->requester_bans));
	assert_true(atomic_load(&sd.cn->faults[CN_FAULT_UNANNOUNCED]) >= need);
	/* the requests before the threshold were answered, NOT_FOUND */
	assert_true(atomic_load(&b.notfound) >= (int)need - 1);
	abuse_end(&sd, g, &cl, &b.a);
}

/* Content this node held and removed (content rm) was announced: a
 * requester asking for its chunks asked before it knew (requests in
 * flight, a provider list of a minute ago). Its 40 requests are answered
 * NOT_FOUND, counted as asked for removed content, and not scored: no
 * fault, no ban, the connection left open. Until stop 93 they were scored
 * as unannounced, and a seed that removed content banned its downloaders
 * for 600 s (a loopback pair: 12 requests in flight at the rm, a ban). */
static void test_removed_not_scored(void **state)
{
	static struct bad_cli b;
	struct quic_node_handler h = {.connected = bad_connected,
				      .stream_opened = bad_opened,
				      .stream_data = bad_data,
				      .closed = abuser_closed};
	struct guard_opts go = {.npolicers = 2};
	size_t blen = 4 * B3TREE_CHUNK_LEN;
	uint8_t *blob = malloc(blen);
	unsigned int nblobs = 0;
	struct guard *g;
	struct side cl;
	struct seed sd;

	(void)state;
	memset(&b, 0, sizeof(b));
	assert_non_null(blob);
	tu_fill(blob, blen, 5);
	assert_int_equal(guard_new(&g, &go), 0);
	seed_new(&sd, 2, g, 0);
	assert_int_equal(cstore_add_buf(sd.cn->cs, blob, blen, bad_id), 0);
	assert_int_equal(cn_remove(sd.cn, bad_id, sizeof(bad_id), &nblobs), 0);
	assert_int_equal(nblobs, 1);
	bad_id_set = 1;
	client_new(&cl, &sd, &h, &b, &b.a.qn, &b.a.conn);
	for (int i = 0; i < 3000 && atomic_load(&b.answers) < 40; i++)
		usleep(10000);
	bad_id_set = 0;
	printf("asked for removed content: %d answered (%d NOT_FOUND), closed %d; faults %llu, "
	       "bans %llu\n",
	       atomic_load(&b.answers), atomic_load(&b.notfound), atomic_load(&b.a.closed),
	       (unsigned long long)atomic_load(&sd.cn->faults[CN_FAULT_UNANNOUNCED]),
	       (unsigned long long)atomic_load(&sd.cn->requester_bans));
	assert_int_equal(atomic_load(&b.answers), 40);
	assert_int_equal(atomic_load(&b.notfound), 40);
	assert_int_equal(atomic_load(&sd.cn->gone_asked), 40);
	assert_int_equal(atomic_load(&sd.cn->faults[CN_FAULT_UNANNOUNCED]), 0);
	assert_int_equal(atomic_load(&sd.cn->requester_bans), 0);
	assert_false(atomic_load(&b.a.closed));
	abuse_free(&sd, g, &cl);
	free(blob);
}

/* ---- more fetch streams open at once than allowed ---- */

/* Streams the flooder opens: the limit, and enough over it to reach the
 * ban score (each stream over costs cn_fault_cost[CN_FAULT_STREAMS]),
 * within QUIC's 100 concurrent streams. */
#define FLOOD_STREAMS (CONTENT_SERVE_PEER_STREAMS + CN_SCHED_BAN_SCORE / 20 + 4)

struct flood_cli {
	struct abuser a;
	atomic_int opened;
};

static void flood_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct flood_cli *f = arg;

	(void)peer_key;
	if (err)
		return;
	f->a.conn = conn;
	for (int i = 0; i < FLOOD_STREAMS; i++)
		quic_node_stream_open(f->a.qn, conn, CONTENT_ST_FETCH, (uint64_t)i);
}

/* Each stream gets the first byte of a request and no more, no FIN: it
 * stays open on the seed, holding its pending entry. */
static void flood_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct flood_cli *f = arg;
	uint8_t b = CONTENT_OP_CHUNK;

	(void)token;
	if (err)
		return;
	if (quic_node_write(f->a.qn, conn, sid, &b, 1, 0) == 0)
		atomic_fetch_add(&f->opened, 1);
}

/* A requester that keeps more fetch streams open than
 * CONTENT_SERVE_PEER_STREAMS: each stream over the limit is refused
 * (reset BUSY) and costs score, and at CN_SCHED_BAN_SCORE the requester
 * (validated: its handshake completed) is banned and its connection
 * closed; the streams within the limit are not refused. Until stop 92
 * the count of a peer's streams lost one at each check, so it never
 * passed 1 and no stream was ever refused. */
static void test_stream_limit_banned(void **state)
{
	static struct flood_cli f;
	struct quic_node_handler h = {
	    .connected = flood_connected, .stream_opened = flood_opened, .closed = abuser_closed};
	unsigned int need = CN_SCHED_BAN_SCORE / cn_fault_cost[CN_FAULT_STREAMS];
	uint64_t faults;
	struct guard *g;
	struct side cl;
	struct seed sd;

	(void)state;
	memset(&f, 0, sizeof(f));
	abuse_run(&sd, &g, &cl, &h, &f.a);
	faults = atomic_load(&sd.cn->faults[CN_FAULT_STREAMS]);
	printf("flooder: %d streams opened, closed %d; stream faults %llu, bans %llu\n",
	       atomic_load(&f.opened), atomic_load(&f.a.closed), (unsigned long long)faults,
	       (unsigned long long)atomic_load(&sd.cn->requester_bans));
	assert_true(faults >= need);
	/* only streams over the limit were refused */
	assert_true(faults <= FLOOD_STREAMS - CONTENT_SERVE_PEER_STREAMS);
	abuse_end(&sd, g, &cl, &f.a);
}

/* ---- a requester that reconnects to start its score again ---- */

/* Unannounced requests per connection: 40 of the ban's 100, so no
 * connection reaches it alone, and the fault that reaches it (the 10th on
 * a worker) is never a connection's last: the requester's own close never
 * crosses the seed's. */
#define HOP_ASKS 4u
_Static_assert(CN_SCHED_BAN_SCORE == 100, "HOP_ASKS is set for a ban at 100");
#define HOP_CONNS 12

struct hop_cli {
	struct bad_cli b;
	struct seed *sd;
	struct quic_node_handler *h;
	atomic_int conns, conn_asks;
};

static void hop_ask(struct hop_cli *c)
{
	if (atomic_load(&c->conn_asks) < (int)HOP_ASKS &&
	    quic_node_stream_open(c->b.a.qn, c->b.a.conn, CONTENT_ST_FETCH, 0) == 0)
		atomic_fetch_add(&c->conn_asks, 1);
}

static void hop_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct hop_cli *c = arg;

	(void)peer_key;
	if (err)
		return;
	c->b.a.conn = conn;
	atomic_store(&c->conn_asks, 0);
	hop_ask(c);
}

static void hop_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		     int fin)
{
	struct hop_cli *c = arg;

	(void)sid;
	if (len && data[0] == CONTENT_ST_NOT_FOUND)
		atomic_fetch_add(&c->b.notfound, 1);
	if (!fin)
		return;
	if (atomic_fetch_add(&c->b.answers, 1) % HOP_ASKS == HOP_ASKS - 1)
		quic_node_close(c->b.a.qn, conn, 0); /* enough here: a new connection */
	else
		hop_ask(c);
}

/* Our own close: dial again (at most HOP_CONNS times); the seed's close
 * (the ban) ends the run. */
static void hop_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct hop_cli *c = arg;
	uint64_t next;

	(void)conn;
	if (info->reason == QUIC_CLOSE_LOCAL_APP && atomic_load(&c->conns) < HOP_CONNS) {
		atomic_fetch_add(&c->conns, 1);
		if (quic_node_connect_addr(c->b.a.qn, (struct sockaddr *)&c->sd->to,
					   sizeof(c->sd->to), c->sd->s.id.pk, c->h, c, &next) == 0)
			return;
	}
	atomic_store(&c->b.a.closed, 1);
}

/* A requester that closes its connection after HOP_ASKS unannounced
 * requests and dials again, so that no connection's own score reaches
 * CN_SCHED_BAN_SCORE, is banned all the same: its address's score is the
 * sum over its connections (scored per worker: the seed has 2). Until stop 93 scores were per
 * connection only and this requester was never banned. */
static void test_reconnect_banned(void **state)
{
	static struct hop_cli c;
	static struct quic_node_handler h = {.connected = hop_connected,
					     .stream_opened = bad_opened,
					     .stream_data = hop_data,
					     .closed = hop_closed};
	struct guard *g;
	struct side cl;
	struct seed sd;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.sd = &sd;
	c.h = &h;
	atomic_store(&c.conns, 1);
	abuse_run(&sd, &g, &cl, &h, &c.b.a);
	printf("hopper: %d connections, %d answered (%d NOT_FOUND); bans %llu\n",
	       atomic_load(&c.conns), atomic_load(&c.b.answers), atomic_load(&c.b.notfound),
	       (unsigned long long)atomic_load(&sd.cn->requester_bans));
	/* 10 faults on one worker: by the third connection when the seed's
	 * workers see all of them, by the fifth when they alternate */
	assert_true(atomic_load(&c.conns) >= 3);
	assert_true(atomic_load(&c.conns) <= 5);
	assert_true(atomic_load(&sd.cn->faults[CN_FAULT_UNANNOUNCED]) <= 5 * HOP_ASKS);
	abuse_end(&sd, g, &cl, &c.b.a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_requester_banned),
	    cmocka_unit_test(test_removed_not_scored),
	    cmocka_unit_test(test_stream_limit_banned),
	    cmocka_unit_test(test_reconnect_banned),
	};

	return cmocka_run_group_tests_name("content_serve_abuse", tests, NULL, NULL);
}
