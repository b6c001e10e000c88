// SPDX-License-Identifier: MIT
/*
 * QUIC nodes on the engine's mem backend, driven on one thread in virtual
 * time (engine_sim_run): no socket, no sleep, no root.
 *
 *  - A (public) and B (behind an address-dependent NAT) over a path with
 *    20 ms latency, jitter, 3% loss and 3% reordering: B dials A, echoes
 *    200 KB on an echo stream, content checked; A sees B at the NAT's
 *    outside address. Run twice with one seed: the same datagram counts,
 *    the same virtual finish time (deterministic).
 *  - NAT filtering: after B talked to A, A can dial B's mapping back
 *    (ADF permits A's address); a third host C cannot (filtered, the
 *    handshake times out in virtual time); with an endpoint-independent
 *    NAT C can.
 *  - simnet itself: bounded queue (drop-tail counted), host down, latency
 *    and per-link loss figures, NAT mapping reuse and expiry.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "testutil.h"
#include "weft/engine.h"
#include "weft/identity.h"
#include "weft/quic_node.h"
#include "weft/simnet.h"

#define MS 1000000ULL
#define ECHO_LEN (200u * 1024)

struct peer {
	struct simnet_host *host;
	struct engine *eng;
	struct quic_node *qn;
	struct identity id;
};

struct world {
	struct simnet *sn;
	struct simnet_nat *nat;
	struct peer p[3];
	unsigned int np;
};

static void addr(struct io_addr *a, const char *ip)
{
	assert_int_equal(io_addr_parse(a, ip, 0), 0);
}

static void peer_new(struct world *wd, const char *ip, struct simnet_nat *nat, uint8_t seed,
		     unsigned int keepalive_ms)
{
	struct peer *p = &wd->p[wd->np++];
	struct engine_opts eo;
	struct quic_node_opts qo = {0};
	uint16_t port = 4433;
	uint8_t sd[IDENTITY_SEED_LEN];
	struct io_addr a;

	addr(&a, ip);
	assert_int_equal(simnet_host_add(wd->sn, &a, nat, &p->host), 0);
	memset(sd, seed, sizeof(sd));
	identity_from_seed(&p->id, sd);
	engine_opts_default(&eo);
	eo.mode = IO_MODE_MEM;
	eo.sim_host = p->host;
	eo.ports = &port;
	eo.nports = 1;
	eo.clock = simnet_now_ns;
	eo.clock_arg = wd->sn;
	assert_int_equal(engine_new(&p->eng, &eo), 0);
	qo.eng = p->eng;
	qo.id = &p->id;
	qo.port = port;
	qo.handshake_timeout_ms = 3000;
	qo.idle_timeout_ms = 60000;
	qo.keepalive_ms = keepalive_ms;
	assert_int_equal(quic_node_new(&p->qn, &qo), 0);
}

static void world_init_opts(struct world *wd, uint64_t seed, enum simnet_nat_filter filter,
			    uint32_t nat_timeout_ms, unsigned int keepalive_ms)
{
	struct simnet_opts so = {.seed = seed, .clock = SIMNET_CLOCK_MANUAL};
	struct io_addr out;

	memset(wd, 0, sizeof(*wd));
	assert_int_equal(simnet_new(&wd->sn, &so), 0);
	addr(&out, "198.51.100.200");
	assert_int_equal(simnet_nat_add(wd->sn, &out, filter, nat_timeout_ms, &wd->nat), 0);
	peer_new(wd, "198.51.100.1", NULL, 1, 0);	    /* A */
	peer_new(wd, "10.0.0.2", wd->nat, 2, keepalive_ms); /* B, behind the NAT */
	peer_new(wd, "198.51.100.3", NULL, 3, 0);	    /* C */
}

static void world_init(struct world *wd, uint64_t seed, enum simnet_nat_filter filter)
{
	world_init_opts(wd, seed, filter, 0, 0);
}

static void world_free(struct world *wd)
{
	for (unsigned int i = 0; i < wd->np; i++) {
		quic_node_free(wd->p[i].qn);
		engine_free(wd->p[i].eng);
		identity_wipe(&wd->p[i].id);
	}
	simnet_free(wd->sn);
}

static int world_run(struct world *wd, uint64_t dur, int (*done)(void *), void *arg)
{
	struct engine *e[3];

	for (unsigned int i = 0; i < wd->np; i++)
		e[i] = wd->p[i].eng;
	return engine_sim_run(wd->sn, e, wd->np, dur, done, arg);
}

/* ---- one echo exchange ---- */

struct echo {
	struct world *wd;
	struct quic_node *qn;
	uint64_t conn;
	int connected, err, closed, fin;
	uint8_t peer_key[32];
	uint8_t *sent, *got;
	size_t ngot;
	int64_t sid;
	int with_open; /* the bytes went with the open (quic_node_stream_open_write) */
	int with_wbuf; /* written in place (quic_node_wbuf_new, quic_node_write_wbuf) */
};

/* The bytes written in place: room for 5 more than sent, the byte after a
 * 5-byte header aligned as an O_DIRECT read needs it. */
static void write_in_place(struct echo *e, uint64_t conn, int64_t sid)
{
	struct quic_node_wbuf *w;
	uint8_t *d = NULL;

	w = quic_node_wbuf_new(e->qn, ECHO_LEN + 5, 5, &d);
	assert_non_null(w);
	assert_int_equal((uintptr_t)(d + 5) % QUIC_NODE_WBUF_ALIGN, 0);
	memcpy(d, e->sent, ECHO_LEN);
	assert_int_equal(quic_node_write_wbuf(e->qn, conn, sid, w, ECHO_LEN, 1), 0);
}

static void e_connected(void *arg, uint64_t conn, int err, const uint8_t *key)
{
	struct echo *e = arg;

	(void)conn;
	if (err) {
		e->err = err;
		return;
	}
	e->connected = 1;
	memcpy(e->peer_key, key, 32);
	assert_int_equal(quic_node_stream_open(e->qn, e->conn, QUIC_NODE_ST_ECHO, 7), 0);
}

static void e_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct echo *e = arg;

	assert_int_equal(token, 7);
	if (err) {
		e->err = err;
		return;
	}
	e->sid = sid;
	if (e->with_wbuf)
		write_in_place(e, conn, sid);
	else if (!e->with_open)
		assert_int_equal(quic_node_write(e->qn, conn, sid, e->sent, ECHO_LEN, 1), 0);
}

static void e_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *d, size_t len, int fin)
{
	struct echo *e = arg;

	(void)conn;
	(void)sid;
	assert_true(e->ngot + len <= ECHO_LEN);
	memcpy(e->got + e->ngot, d, len);
	e->ngot += len;
	e->fin |= fin;
}

static void e_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct echo *e = arg;

	(void)conn;
	(void)info;
	e->closed = 1;
	if (!e->connected && !e->err)
		e->err = -ECONNRESET;
}

static const struct quic_node_handler echo_h = {
    .connected = e_connected,
    .stream_opened = e_opened,
    .stream_data = e_data,
    .closed = e_closed,
};

static int echo_done(void *arg)
{
	struct echo *e = arg;

	return e->fin || e->err || e->closed;
}

static int handshake_done(void *arg)
{
	struct echo *e = arg;

	return e->connected || e->err || e->closed;
}

static void echo_init(struct echo *e, struct world *wd, struct peer *from)
{
	memset(e, 0, sizeof(*e));
	e->wd = wd;
	e->qn = from->qn;
	e->sent = malloc(ECHO_LEN);
	e->got = malloc(ECHO_LEN);
	assert_non_null(e->sent);
	assert_non_null(e->got);
	tu_fill(e->sent, ECHO_LEN, 99);
}

static void echo_fini(struct echo *e)
{
	free(e->sent);
	free(e->got);
}

/* B's echo e to A, within dur: every byte back. */
static void echo_to_a(struct world *wd, struct echo *e, uint64_t dur)
{
	assert_int_equal(quic_node_connect(wd->p[1].qn, "198.51.100.1:4433", &echo_h, e, &e->conn),
			 0);
	assert_int_equal(world_run(wd, dur, echo_done, e), 0);
	assert_int_equal(e->err, 0);
	assert_true(e->fin);
	assert_int_equal(e->ngot, ECHO_LEN);
	assert_memory_equal(e->got, e->sent, ECHO_LEN);
}

struct outcome {
	struct simnet_stats st;
	uint64_t t_done;
};

/* B dials A through the NAT on a lossy path and echoes ECHO_LEN bytes. */
static void lossy_echo(uint64_t seed, struct outcome *o)
{
	struct simnet_link l = {.latency_us = 20000,
				.jitter_us = 2000,
				.loss_ppm = 30000,
				.reorder_ppm = 30000,
				.reorder_us = 5000};
	struct world wd;
	struct echo e;
	uint64_t t0;

	world_init(&wd, seed, SIMNET_NAT_ADF);
	simnet_host_set_link(wd.p[0].host, &l);
	echo_init(&e, &wd, &wd.p[1]);
	t0 = simnet_now_ns(wd.sn);
	echo_to_a(&wd, &e, 120000 * MS);
	assert_memory_equal(e.peer_key, wd.p[0].id.pk, 32);
	o->t_done = simnet_now_ns(wd.sn) - t0;
	simnet_stats_get(wd.sn, &o->st);
	/* The path really was lossy, and the NAT mapped B. */
	assert_true(o->st.lost > 0);
	assert_int_equal(o->st.nat_mapped, 1);
	assert_int_equal(simnet_nat_mappings(wd.nat), 1);
	/* At least 4 one-way trips of 20+ ms: handshake and data. */
	assert_true(o->t_done >= 80 * MS);
	echo_fini(&e);
	world_free(&wd);
}

static void test_echo_through_nat_deterministic(void **state)
{
	struct outcome a, b;

	(void)state;
	lossy_echo(42, &a);
	lossy_echo(42, &b);
	print_message("echo %u KB through NAT: %.1f ms virtual, %llu sent, %llu lost, "
		      "%llu delivered\n",
		      ECHO_LEN / 1024, a.t_done / 1e6, (unsigned long long)a.st.sent,
		      (unsigned long long)a.st.lost, (unsigned long long)a.st.delivered);
	assert_int_equal(a.t_done, b.t_done);
	assert_int_equal(a.st.sent, b.st.sent);
	assert_int_equal(a.st.lost, b.st.lost);
	assert_int_equal(a.st.delivered, b.st.delivered);
}

static void nat_filtering(enum simnet_nat_filter filter, int c_gets_in)
{
	struct world wd;
	struct echo e, back, third;
	struct simnet_stats st;
	char target[64];

	world_init(&wd, 7, filter);
	echo_init(&e, &wd, &wd.p[1]);
	assert_int_equal(quic_node_connect(wd.p[1].qn, "198.51.100.1:4433", &echo_h, &e, &e.conn),
			 0);
	assert_int_equal(world_run(&wd, 10000 * MS, echo_done, &e), 0);
	assert_true(e.fin);
	/* The first outside port the NAT hands out is 20000. */
	snprintf(target, sizeof(target), "198.51.100.200:20000");

	/* A dials B's mapping back: A's address is one B sent to. */
	echo_init(&back, &wd, &wd.p[0]);
	assert_int_equal(quic_node_connect(wd.p[0].qn, target, &echo_h, &back, &back.conn), 0);
	assert_int_equal(world_run(&wd, 10000 * MS, handshake_done, &back), 0);
	assert_true(back.connected);
	assert_memory_equal(back.peer_key, wd.p[1].id.pk, 32);

	/* C, a stranger to B. */
	simnet_stats_get(wd.sn, &st);
	echo_init(&third, &wd, &wd.p[2]);
	assert_int_equal(quic_node_connect(wd.p[2].qn, target, &echo_h, &third, &third.conn), 0);
	assert_int_equal(world_run(&wd, 10000 * MS, handshake_done, &third), 0);
	if (c_gets_in) {
		assert_true(third.connected);
	} else {
		struct simnet_stats st2;

		assert_false(third.connected);
		assert_int_equal(third.err, -ETIMEDOUT);
		simnet_stats_get(wd.sn, &st2);
		assert_true(st2.filtered > st.filtered);
	}
	echo_fini(&e);
	echo_fini(&back);
	echo_fini(&third);
	world_free(&wd);
}

/* A write filled in place arrives as written; what the API refuses. */
static void test_echo_written_in_place(void **state)
{
	struct quic_node_wbuf *w;
	struct world wd;
	struct echo e;
	uint8_t *d = NULL;

	(void)state;
	world_init(&wd, 11, SIMNET_NAT_ADF);
	echo_init(&e, &wd, &wd.p[1]);
	e.with_wbuf = 1;
	echo_to_a(&wd, &e, 10000 * MS);
	/* an aligned byte past the room; more bytes than the room; none */
	assert_null(quic_node_wbuf_new(wd.p[1].qn, 16, 17, &d));
	w = quic_node_wbuf_new(wd.p[1].qn, 16, 0, &d);
	assert_non_null(w);
	assert_int_equal(quic_node_write_wbuf(wd.p[1].qn, e.conn, e.sid, w, 17, 1), -EINVAL);
	assert_int_equal(quic_node_write_wbuf(wd.p[1].qn, e.conn, e.sid, NULL, 0, 1), -EINVAL);
	quic_node_wbuf_free(wd.p[1].qn, quic_node_wbuf_new(wd.p[1].qn, 16, 0, &d));
	quic_node_wbuf_free(wd.p[1].qn, NULL);
	echo_fini(&e);
	world_free(&wd);
}

static void test_nat_address_dependent(void **state)
{
	(void)state;
	nat_filtering(SIMNET_NAT_ADF, 0);
}

static void test_nat_endpoint_independent(void **state)
{
	(void)state;
	nat_filtering(SIMNET_NAT_EIF, 1);
}

/*
 * NAT mapping lifetime in virtual time: B's mapping expires after 5 s
 * idle. Without keepalives, 20 s of silence (0 wall time) lose it: B's
 * next stream leaves through a new mapping (NAT rebinding), A validates
 * the new path and the echo still works. With a 2 s keepalive the one
 * mapping stays alive.
 */
static void nat_idle(unsigned int keepalive_ms)
{
	struct world wd;
	struct echo e;
	struct simnet_stats st;

	world_init_opts(&wd, 11, SIMNET_NAT_ADF, 5000, keepalive_ms);
	echo_init(&e, &wd, &wd.p[1]);
	assert_int_equal(quic_node_connect(wd.p[1].qn, "198.51.100.1:4433", &echo_h, &e, &e.conn),
			 0);
	assert_int_equal(world_run(&wd, 10000 * MS, echo_done, &e), 0);
	assert_true(e.fin);
	assert_int_equal(world_run(&wd, 20000 * MS, NULL, NULL), -ETIMEDOUT);
	assert_false(e.closed);
	assert_int_equal(simnet_nat_mappings(wd.nat), keepalive_ms ? 1 : 0);

	/* the second stream carries its bytes with the open (one command) */
	e.fin = 0;
	e.ngot = 0;
	e.with_open = 1;
	assert_int_equal(quic_node_stream_open_write(e.qn, e.conn, QUIC_NODE_ST_ECHO, 7, e.sent,
						     ECHO_LEN, 1),
			 0);
	assert_int_equal(world_run(&wd, 10000 * MS, echo_done, &e), 0);
	assert_int_equal(e.err, 0);
	assert_true(e.fin);
	assert_int_equal(e.ngot, ECHO_LEN);
	assert_memory_equal(e.got, e.sent, ECHO_LEN);
	simnet_stats_get(wd.sn, &st);
	assert_int_equal(st.nat_mapped, keepalive_ms ? 1 : 2);
	echo_fini(&e);
	world_free(&wd);
}

static void test_nat_rebinding_after_idle(void **state)
{
	(void)state;
	nat_idle(0);
}

static void test_nat_keepalive(void **state)
{
	(void)state;
	nat_idle(2000);
}

/* ---- simnet alone ---- */

static void test_simnet_limits(void **state)
{
	struct simnet_opts so = {.seed = 5, .clock = SIMNET_CLOCK_MANUAL, .queue_max = 8};
	struct simnet *sn;
	struct simnet_host *a, *b, *c;
	struct simnet_nat *nat;
	struct simnet_link l = {.latency_us = 1500};
	struct simnet_link lossy = {.loss_ppm = 500000};
	struct simnet_stats st;
	struct simnet_pkt *pk[16];
	struct io_addr aa, ba, ca, out;
	int efd, n, i;

	(void)state;
	assert_int_equal(simnet_new(&sn, &so), 0);
	addr(&aa, "198.51.100.1");
	addr(&ba, "198.51.100.2");
	addr(&ca, "10.1.0.1");
	addr(&out, "198.51.100.9");
	assert_int_equal(simnet_host_add(sn, &aa, NULL, &a), 0);
	assert_int_equal(simnet_host_add(sn, &aa, NULL, &b), -EEXIST);
	assert_int_equal(simnet_host_add(sn, &ba, NULL, &b), 0);
	assert_int_equal(simnet_nat_add(sn, &out, SIMNET_NAT_APDF, 1000, &nat), 0);
	assert_int_equal(simnet_host_add(sn, &ca, nat, &c), 0);
	assert_int_equal(simnet_attach(b, 0, &efd), 0);
	assert_int_equal(simnet_attach(b, 0, &efd), -EBUSY);
	assert_int_equal(simnet_attach(c, 0, &efd), 0);
	simnet_host_set_link(a, &l);

	/* 12 datagrams to a queue of 8: 4 dropped at the tail. */
	ba.port = 9;
	for (i = 0; i < 12; i++)
		assert_int_equal(simnet_send(a, 1000, &ba, &i, sizeof(i)), 0);
	simnet_stats_get(sn, &st);
	assert_int_equal(st.queue_full, 4);
	/* Latency: nothing due until 1.5 ms later. */
	assert_int_equal(simnet_recv(b, 0, pk, 16), 0);
	assert_int_equal(simnet_next_ns(sn), 1500000);
	simnet_advance(sn, 1500000);
	n = simnet_recv(b, 0, pk, 16);
	assert_int_equal(n, 8);
	for (i = 0; i < n; i++) {
		int v;

		memcpy(&v, pk[i]->data, sizeof(v));
		assert_int_equal(v, i); /* FIFO at equal latency */
		assert_int_equal(pk[i]->src.port, 1000);
		assert_true(io_addr_equal(&pk[i]->dst, &ba));
		simnet_pkt_free(pk[i]);
	}
	/* Host down: everything to it is lost. */
	simnet_host_set_down(b, 1);
	assert_int_equal(simnet_send(a, 1000, &ba, "x", 1), 0);
	simnet_stats_get(sn, &st);
	assert_int_equal(st.host_down, 1);
	simnet_host_set_down(b, 0);

	/* Per-link loss of 50%: 1000 datagrams, a fixed count for the seed,
	 * near half. */
	assert_int_equal(simnet_link_set(sn, &aa, &ba, &lossy), 0);
	simnet_stats_get(sn, &st);
	{
		uint64_t lost0 = st.lost;

		for (i = 0; i < 1000; i++) {
			assert_int_equal(simnet_send(a, 1000, &ba, "y", 1), 0);
			simnet_advance(sn, 2000000);
			while ((n = simnet_recv(b, 0, pk, 16)) > 0)
				while (n--)
					simnet_pkt_free(pk[n]);
		}
		simnet_stats_get(sn, &st);
		assert_in_range(st.lost - lost0, 400, 600);
	}

	/* APDF NAT: C's mapping is reused for every destination, accepts
	 * only the exact endpoint C sent to, and expires after 1 s idle. */
	ba.port = 9;
	assert_int_equal(simnet_send(c, 5000, &ba, "m", 1), 0);
	aa.port = 9;
	assert_int_equal(simnet_send(c, 5000, &aa, "m", 1), 0);
	assert_int_equal(simnet_nat_mappings(nat), 1);
	simnet_advance(sn, 2000000);
	n = simnet_recv(b, 0, pk, 16);
	assert_int_equal(n, 1);
	out.port = 20000;
	assert_true(io_addr_equal(&pk[0]->src, &out)); /* rewritten to the outside */
	simnet_pkt_free(pk[0]);
	simnet_stats_get(sn, &st);
	assert_int_equal(simnet_send(b, 9, &out, "r", 1), 0);  /* the endpoint C sent to */
	assert_int_equal(simnet_send(b, 10, &out, "r", 1), 0); /* another port: filtered */
	simnet_advance(sn, 2000000);
	n = simnet_recv(c, 0, pk, 16);
	assert_int_equal(n, 1);
	assert_int_equal(pk[0]->dst.port, 5000);
	simnet_pkt_free(pk[0]);
	{
		struct simnet_stats st2;

		simnet_stats_get(sn, &st2);
		assert_int_equal(st2.filtered, st.filtered + 1);
		simnet_advance(sn, 1500 * MS);
		assert_int_equal(simnet_nat_mappings(nat), 0);
		assert_int_equal(simnet_send(b, 9, &out, "r", 1), 0);
		simnet_stats_get(sn, &st);
		assert_int_equal(st.no_route, st2.no_route + 1);
	}
	simnet_free(sn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simnet_limits),
	    cmocka_unit_test(test_echo_through_nat_deterministic),
	    cmocka_unit_test(test_echo_written_in_place),
	    cmocka_unit_test(test_nat_address_dependent),
	    cmocka_unit_test(test_nat_endpoint_independent),
	    cmocka_unit_test(test_nat_rebinding_after_idle),
	    cmocka_unit_test(test_nat_keepalive),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("sim_quic", tests, NULL, NULL);
}
