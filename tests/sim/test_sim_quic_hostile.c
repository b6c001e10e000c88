// SPDX-License-Identifier: MIT
/*
 * Hostile datagrams against a QUIC node on the engine's mem backend (the
 * glue: per-worker endpoints, engine timers, quic_node), in virtual time on
 * one thread (engine_sim_run): no socket, no root.
 *
 * An attacker host X, with no engine, takes a real client Initial (node B
 * dials X), sends it to node A with its version rewritten (draft-29,
 * ngtcp2 0.12's provisional v2, RFC 9369 v2, a reserved version), and
 * crafted datagrams: VN packets, Retry / 0-RTT / Handshake / small
 * Initials, tiny and coalesced long headers, short-header garbage. A must
 * answer VN (listing v1, ids swapped) to the re-versioned Initials and to
 * nothing else, keep running while a minute of its timers passes (the
 * original crash came through the timer), and then serve B's echo.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include "weft/engine.h"
#include "weft/identity.h"
#include "weft/quic_node.h"
#include "weft/simnet.h"

#define MS 1000000ULL

struct peer {
	struct simnet_host *host;
	struct engine *eng;
	struct quic_node *qn;
	struct identity id;
};

struct echo {
	struct quic_node *qn;
	uint64_t conn;
	int connected, err, fin;
	uint8_t got[64];
	size_t ngot;
};

static void io_addr_of(struct io_addr *a, const char *ip, uint16_t port)
{
	assert_int_equal(io_addr_parse(a, ip, port), 0);
}

static void peer_new(struct simnet *sn, struct peer *p, const char *ip, uint8_t seed)
{
	struct engine_opts eo;
	struct quic_node_opts qo = { 0 };
	static const uint16_t port = 4433;
	uint8_t sd[IDENTITY_SEED_LEN];
	struct io_addr a;

	io_addr_of(&a, ip, 0);
	assert_int_equal(simnet_host_add(sn, &a, NULL, &p->host), 0);
	memset(sd, seed, sizeof(sd));
	identity_from_seed(&p->id, sd);
	engine_opts_default(&eo);
	eo.mode = IO_MODE_MEM;
	eo.sim_host = p->host;
	eo.ports = &port;
	eo.nports = 1;
	eo.clock = simnet_now_ns;
	eo.clock_arg = sn;
	assert_int_equal(engine_new(&p->eng, &eo), 0);
	qo.eng = p->eng;
	qo.id = &p->id;
	qo.port = port;
	assert_int_equal(quic_node_new(&p->qn, &qo), 0);
}

static void e_connected(void *arg, uint64_t conn, int err, const uint8_t *key)
{
	struct echo *e = arg;

	if (err) {
		e->err = err;
		return;
	}
	e->connected = 1;
	assert_int_equal(quic_node_stream_open(e->qn, conn, QUIC_NODE_ST_ECHO, 1), 0);
}

static void e_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct echo *e = arg;

	if (err) {
		e->err = err;
		return;
	}
	assert_int_equal(quic_node_write(e->qn, conn, sid, "hostile", 7, 1), 0);
}

static void e_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *d, size_t len, int fin)
{
	struct echo *e = arg;

	if (len && e->ngot + len <= sizeof(e->got)) {
		memcpy(e->got + e->ngot, d, len);
		e->ngot += len;
	}
	e->fin |= fin;
}

/* A connection that ends before the echo did is a failure. */
static void e_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct echo *e = arg;

	if (!e->fin)
		e->err = e->err ? e->err : -ECONNRESET;
}

static const struct quic_node_handler echo_h = {
	.closed = e_closed,
	.stream_data = e_data,
	.stream_opened = e_opened,
	.connected = e_connected,
};

/* Host X has no engine: what reaches it is taken between the simulation's
 * passes (a datagram left due would hold virtual time still). */
struct sink {
	struct simnet_host *x;
	const struct io_addr *from; /* count only datagrams from here (NULL: all) */
	unsigned int n;	   /* datagrams counted since the last reset */
	uint8_t last[1500];
	size_t last_len;
	struct echo *e;	   /* stop when its echo is done (NULL: never) */
};

static int sink_pass(void *arg)
{
	struct sink *k = arg;
	struct simnet_pkt *pk[16];
	int c, i;

	while ((c = simnet_recv(k->x, 0, pk, 16)) > 0) {
		for (i = 0; i < c; i++) {
			if ((!k->from || io_addr_equal(&pk[i]->src, k->from)) &&
			    pk[i]->len <= sizeof(k->last)) {
				memcpy(k->last, pk[i]->data, pk[i]->len);
				k->last_len = pk[i]->len;
				k->n++;
			}
			simnet_pkt_free(pk[i]);
		}
	}
	return k->e && (k->e->fin || k->e->err);
}

static void run(struct simnet *sn, struct engine **engs, struct sink *k, uint64_t ms)
{
	engine_sim_run(sn, engs, 2, ms * MS, sink_pass, k);
	sink_pass(k);
}

static size_t mk_long(uint8_t *b, size_t total, uint8_t first, uint32_t v, size_t cidlen)
{
	size_t off = 0, i;

	b[off++] = first;
	b[off++] = (uint8_t)(v >> 24);
	b[off++] = (uint8_t)(v >> 16);
	b[off++] = (uint8_t)(v >> 8);
	b[off++] = (uint8_t)v;
	b[off++] = (uint8_t)cidlen;
	for (i = 0; i < cidlen; i++)
		b[off++] = (uint8_t)(0x10 + i);
	b[off++] = (uint8_t)cidlen;
	for (i = 0; i < cidlen; i++)
		b[off++] = (uint8_t)(0x20 + i);
	tu_fill(b + off, total > off ? total - off : 0, total);
	return total > off ? total : off;
}

static void test_hostile_datagrams(void **state)
{
	struct simnet_opts so = { .seed = 12, .clock = SIMNET_CLOCK_MANUAL };
	static const uint32_t versions[] = { 0xff00001d, 0x709a50c4, 0x6b3343cf, 0x1a2a3a4a };
	struct simnet *sn;
	struct peer a, b;
	struct engine *engs[2];
	struct simnet_host *x;
	struct io_addr xa, to_a;
	struct echo dummy = { 0 }, e = { 0 };
	uint8_t init[1500], buf[1500];
	size_t init_len, n;
	struct sink k = { 0 };
	const uint8_t *rep = k.last; /* the last answer from A */
	uint64_t conn;
	unsigned int i;
	int efd;

	assert_int_equal(simnet_new(&sn, &so), 0);
	peer_new(sn, &a, "198.51.100.1", 1);
	peer_new(sn, &b, "198.51.100.2", 2);
	engs[0] = a.eng;
	engs[1] = b.eng;
	io_addr_of(&xa, "198.51.100.9", 0);
	assert_int_equal(simnet_host_add(sn, &xa, NULL, &x), 0);
	assert_int_equal(simnet_attach(x, 0, &efd), 0);
	k.x = x;
	io_addr_of(&to_a, "198.51.100.1", 4433);

	/* A real client Initial: B dials X, which has no QUIC. */
	dummy.qn = b.qn;
	assert_int_equal(quic_node_connect(b.qn, "198.51.100.9:4433", &echo_h, &dummy, &conn), 0);
	run(sn, engs, &k, 50);
	assert_true(k.n >= 1);
	init_len = k.last_len;
	memcpy(init, k.last, init_len);
	assert_true(init_len >= 1200);
	/* From now on only what A sends counts. */
	k.from = &to_a;
	assert_int_equal(init[0] & 0xf0, 0xc0);

	/* Re-versioned: one VN each, listing v1, ids swapped. */
	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		size_t dl = init[5], sl = init[6 + dl], off;
		int v1 = 0;

		memcpy(buf, init, init_len);
		buf[1] = (uint8_t)(versions[i] >> 24);
		buf[2] = (uint8_t)(versions[i] >> 16);
		buf[3] = (uint8_t)(versions[i] >> 8);
		buf[4] = (uint8_t)versions[i];
		k.n = 0;
		assert_int_equal(simnet_send(x, 4433, &to_a, buf, init_len), 0);
		run(sn, engs, &k, 50);
		assert_int_equal(k.n, 1);
		assert_true(rep[0] & 0x80);
		assert_int_equal(rep[1] | rep[2] | rep[3] | rep[4], 0);
		assert_int_equal(rep[5], sl);
		assert_memory_equal(rep + 6, init + 7 + dl, sl);
		assert_int_equal(rep[6 + sl], dl);
		assert_memory_equal(rep + 7 + sl, init + 6, dl);
		for (off = 7 + sl + dl; off + 4 <= k.last_len; off += 4)
			v1 |= rep[off] == 0 && rep[off + 1] == 0 && rep[off + 2] == 0 && rep[off + 3] == 1;
		assert_true(v1);
		/* Cut below 1200 bytes: no answer. */
		k.n = 0;
		assert_int_equal(simnet_send(x, 4433, &to_a, buf, 1199), 0);
		run(sn, engs, &k, 50);
		assert_int_equal(k.n, 0);
	}

	/* Packets that must get no answer at all. */
	{
		struct {
			uint8_t first;
			uint32_t version;
			size_t len, cidlen;
		} silent[] = {
			{ 0x80, 0, 1200, 8 },	       /* VN */
			{ 0xf0, 1, 1200, 8 },	       /* Retry to a server */
			{ 0xd0, 1, 40, 8 },	       /* 0-RTT, no connection */
			{ 0xd0, 1, 1200, 8 },	       /* 0-RTT, client-sized */
			{ 0xe0, 1, 1200, 8 },	       /* Handshake, no connection */
			{ 0xc0, 1, 600, 8 },	       /* small v1 Initial */
			{ 0xc0, 1, 1200, 21 },	       /* v1 id over 20 bytes */
			{ 0xc0, 0xff00001d, 300, 8 },  /* draft-29, small */
			{ 0xc0, 0xff00001d, 7, 0 },    /* tiny */
		};

		k.n = 0;
		for (i = 0; i < sizeof(silent) / sizeof(silent[0]); i++) {
			n = mk_long(buf, silent[i].len, silent[i].first, silent[i].version,
				    silent[i].cidlen);
			assert_int_equal(simnet_send(x, 4433, &to_a, buf, n), 0);
		}
		for (n = 1; n < 7; n++)
			assert_int_equal(simnet_send(x, 4433, &to_a, init, n), 0);
		/* coalesced: the real Initial's header over other packets */
		for (n = 0; n + 60 <= 1200;)
			n += mk_long(buf + n, 60, (uint8_t)(0x80 | (n & 0x70)), n & 64 ? 1 : 0, 4);
		assert_int_equal(simnet_send(x, 4433, &to_a, buf, n), 0);
		run(sn, engs, &k, 100);
		assert_int_equal(k.n, 0);
	}

	/* A minute of timers: retransmissions, handshake and idle timeouts. */
	run(sn, engs, &k, 60000);

	/* A still serves a real peer. */
	e.qn = b.qn;
	assert_int_equal(quic_node_connect(b.qn, "198.51.100.1:4433", &echo_h, &e, &conn), 0);
	k.e = &e;
	assert_int_equal(engine_sim_run(sn, engs, 2, 10000 * MS, sink_pass, &k), 0);
	assert_int_equal(e.err, 0);
	assert_int_equal(e.ngot, 7);
	assert_memory_equal(e.got, "hostile", 7);

	simnet_detach(x, 0);
	quic_node_free(a.qn);
	quic_node_free(b.qn);
	engine_free(a.eng);
	engine_free(b.eng);
	identity_wipe(&a.id);
	identity_wipe(&b.id);
	simnet_free(sn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile_datagrams),
	};

	return cmocka_run_group_tests_name("sim_quic_hostile", tests, NULL, NULL);
}
