// SPDX-License-Identifier: MIT
/*
 * What other QUIC implementations send that weft never does, against the
 * endpoint in one process (quic_sim.h, virtual clock): the pure datagram
 * classifier, Version Negotiation for every version but v1 (drafts, v2,
 * reserved, unknown; only for datagrams >= 1200 bytes, never for a VN or a
 * short header), Retry / VN / 0-RTT / Handshake / small Initials where they
 * must not create or reach a connection, a VN ending a dial, coalesced
 * garbage, small server Initials (CONNECTION_REFUSED, a close during the
 * handshake) reaching the dialler as the precise error, and an empty
 * datagram (an ngtcp2 assertion the endpoint fuzzer found); and the
 * kernel steering datagrams to their worker (quic_cid_route_cbpf).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "quic/quic_int.h"
#include "quic_sim.h"

#define V_DRAFT29 0xff00001du
#define V_V2DRAFT 0x709a50c4u /* ngtcp2 0.12's provisional v2 */
#define V_V2 0x6b3343cfu      /* RFC 9369 */
#define V_RESERVED 0x1a2a3a4au

struct app {
	int nconn, nclosed, ndgram;
	size_t last_dgram_len;
	struct quic_conn *conn; /* last announced */
	struct quic_close_info last_close;
};

struct tap {
	size_t n[SIM_MAX_NODES];       /* datagrams each node sent */
	size_t last_len[SIM_MAX_NODES];
	uint8_t last[SIM_MAX_NODES][1500];
	size_t n_small_initial[SIM_MAX_NODES]; /* v1 Initials < 1200 bytes */
};

struct w {
	struct sim sim;
	struct app app[SIM_MAX_NODES];
	struct tap tap;
	struct sim_node *srv, *cli;
};

static void on_conn(void *arg, struct quic_conn *c, const uint8_t *peer)
{
	((struct app *)arg)->nconn++;
	((struct app *)arg)->conn = c;
}

static void on_dgram(void *arg, struct quic_conn *c, const uint8_t *d, size_t len)
{
	((struct app *)arg)->ndgram++;
	((struct app *)arg)->last_dgram_len = len;
}

static void on_closed(void *arg, struct quic_conn *c, const struct quic_close_info *info)
{
	struct app *a = arg;

	a->nclosed++;
	a->last_close = *info;
	if (a->conn == c)
		a->conn = NULL;
}

static void tap_fn(void *arg, int from, const uint8_t *buf, size_t len)
{
	struct tap *t = arg;
	size_t n = len < sizeof(t->last[0]) ? len : sizeof(t->last[0]);

	t->n[from]++;
	t->last_len[from] = len;
	memcpy(t->last[from], buf, n);
	if (len >= 5 && (buf[0] & 0xf0) == 0xc0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 0 &&
	    buf[4] == 1 && len < 1200)
		t->n_small_initial[from]++;
}

static struct sim_node *add(struct w *w, struct quic_ep_opts *o)
{
	struct quic_ep_opts d;
	struct sim_node *n;
	int rc;

	if (!o) {
		memset(&d, 0, sizeof(d));
		o = &d;
	}
	o->cb.on_conn = on_conn;
	o->cb.on_closed = on_closed;
	o->cb.on_datagram = on_dgram;
	o->cb_arg = &w->app[w->sim.nnodes];
	n = sim_add(&w->sim, o, &rc);
	assert_int_equal(rc, 0);
	return n;
}

/* Node 0 accepts connections (so), node 1 dials only (co). */
static struct w *w_new(uint64_t seed, struct quic_ep_opts *so, struct quic_ep_opts *co)
{
	struct w *w = calloc(1, sizeof(*w));
	struct quic_ep_opts d;

	assert_non_null(w);
	sim_init(&w->sim, seed);
	w->sim.tap = tap_fn;
	w->sim.tap_arg = &w->tap;
	if (!so) {
		memset(&d, 0, sizeof(d));
		so = &d;
	}
	so->server = 1;
	w->srv = add(w, so);
	w->cli = add(w, co);
	return w;
}

static void w_free(struct w *w)
{
	sim_free(&w->sim);
	free(w);
}

static void stats(struct sim_node *n, struct quic_ep_stats *st)
{
	quic_ep_get_stats(n->ep, st);
}

/* Datagram from the client's address into ep. */
static void feed(struct w *w, struct sim_node *to, const uint8_t *buf, size_t len)
{
	struct sim_node *from = to == w->srv ? w->cli : w->srv;

	assert_int_equal(quic_ep_input(to->ep, buf, len, NULL, 0, (struct sockaddr *)&from->addr,
				       sizeof(from->addr), w->sim.now),
			 0);
}

/* A long-header packet: first byte, version, ids, then filler to len. */
static size_t mk_long(uint8_t *buf, size_t len, uint8_t first, uint32_t version,
		      const uint8_t *dcid, size_t dl, const uint8_t *scid, size_t sl)
{
	size_t off = 0, i;

	buf[off++] = first;
	buf[off++] = (uint8_t)(version >> 24);
	buf[off++] = (uint8_t)(version >> 16);
	buf[off++] = (uint8_t)(version >> 8);
	buf[off++] = (uint8_t)version;
	buf[off++] = (uint8_t)dl;
	memcpy(buf + off, dcid, dl);
	off += dl;
	buf[off++] = (uint8_t)sl;
	memcpy(buf + off, scid, sl);
	off += sl;
	for (i = off; i < len; i++)
		buf[i] = (uint8_t)(i * 7);
	return len > off ? len : off;
}

/* Run every timer for a while: the path the original crash took. */
static void run(struct w *w, uint64_t ms)
{
	assert_true(sim_run(&w->sim, NULL, NULL, w, ms * SIM_MS) >= 0);
}

static const uint8_t D8[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const uint8_t S8[8] = { 9, 10, 11, 12, 13, 14, 15, 16 };

/* ------------------------------------------------------------ classifier */

static void test_classify(void **state)
{
	uint8_t b[1300], big[255];
	struct quic_pkt_inv inv;
	size_t n;

	memset(big, 0xab, sizeof(big));
	/* Nothing, and too short for anything. */
	assert_int_equal(quic_pkt_classify(NULL, 0, 1, &inv), QUIC_PKT_DROP);
	assert_int_equal(quic_pkt_classify(b, 0, 1, NULL), QUIC_PKT_DROP);
	/* Short header: needs our 16-byte DCID. */
	memset(b, 0x41, sizeof(b));
	assert_int_equal(quic_pkt_classify(b, 1 + QUIC_SCID_LEN, 1, &inv), QUIC_PKT_SHORT);
	assert_int_equal(inv.dcidlen, QUIC_SCID_LEN);
	assert_ptr_equal(inv.dcid, b + 1);
	assert_int_equal(quic_pkt_classify(b, QUIC_SCID_LEN, 1, &inv), QUIC_PKT_DROP);
	/* v1 long headers route, whatever their size and type. */
	n = mk_long(b, 40, 0xc0, 1, D8, 8, S8, 8);
	assert_int_equal(quic_pkt_classify(b, n, 1, &inv), QUIC_PKT_V1);
	assert_int_equal(inv.version, 1);
	assert_int_equal(inv.type, QUIC_LT_INITIAL);
	assert_int_equal(inv.dcidlen, 8);
	assert_memory_equal(inv.dcid, D8, 8);
	assert_memory_equal(inv.scid, S8, 8);
	b[0] = 0xf0;
	assert_int_equal(quic_pkt_classify(b, n, 0, &inv), QUIC_PKT_V1);
	assert_int_equal(inv.type, QUIC_LT_RETRY);
	/* v1 ids longer than 20 bytes are malformed. */
	n = mk_long(b, 1200, 0xc0, 1, big, 21, S8, 8);
	assert_int_equal(quic_pkt_classify(b, n, 1, &inv), QUIC_PKT_DROP);
	/* Version Negotiation: never answered, whoever gets it. */
	n = mk_long(b, 1200, 0x80, 0, D8, 8, S8, 8);
	assert_int_equal(quic_pkt_classify(b, n, 1, &inv), QUIC_PKT_VN);
	assert_int_equal(quic_pkt_classify(b, n, 0, &inv), QUIC_PKT_VN);
	n = mk_long(b, 1200, 0x80, 0, big, 40, S8, 8);
	assert_int_equal(quic_pkt_classify(b, n, 1, &inv), QUIC_PKT_DROP);
	/* Other versions: VN from a server for >= 1200 bytes, else drop. */
	{
		static const uint32_t vs[] = { V_DRAFT29, V_V2DRAFT, V_V2, V_RESERVED, 0xff000020,
					       0x00000002, 0xfaceb002, 0xffffffff };
		size_t i;

		for (i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
			n = mk_long(b, 1200, 0xc0, vs[i], D8, 8, S8, 8);
			assert_int_equal(quic_pkt_classify(b, n, 1, &inv), QUIC_PKT_SEND_VN);
			assert_int_equal(inv.version, vs[i]);
			assert_int_equal(quic_pkt_classify(b, n, 0, &inv), QUIC_PKT_DROP);
			assert_int_equal(quic_pkt_classify(b, 1199, 1, &inv), QUIC_PKT_DROP);
		}
	}
	/* Unknown versions may carry ids up to 255 bytes (RFC 8999). */
	n = mk_long(b, 1300, 0xc0, V_RESERVED, big, 255, big, 255);
	assert_int_equal(quic_pkt_classify(b, n, 1, &inv), QUIC_PKT_SEND_VN);
	assert_int_equal(inv.dcidlen, 255);
	assert_int_equal(inv.scidlen, 255);
	/* Truncated anywhere in the invariant header. */
	n = mk_long(b, 1200, 0xc0, V_DRAFT29, D8, 8, S8, 8);
	for (n = 1; n < 1 + 4 + 1 + 8 + 1 + 8; n++)
		assert_int_equal(quic_pkt_classify(b, n, 1, &inv), QUIC_PKT_DROP);
	b[5] = 250; /* DCID length past the end */
	assert_int_equal(quic_pkt_classify(b, 200, 1, &inv), QUIC_PKT_DROP);
}

/* ------------------------------------------------- version negotiation */

/* Check a VN packet answering a packet with (dcid, scid): ids swapped,
 * version 0, and QUIC v1 among the versions. */
static void check_vn(const uint8_t *p, size_t len, const uint8_t *dcid, size_t dl,
		     const uint8_t *scid, size_t sl)
{
	size_t off, v1 = 0;

	assert_true(len >= 7);
	assert_true(p[0] & 0x80);
	assert_int_equal(p[1] | p[2] | p[3] | p[4], 0);
	assert_int_equal(p[5], sl);
	assert_memory_equal(p + 6, scid, sl);
	off = 6 + sl;
	assert_int_equal(p[off], dl);
	assert_memory_equal(p + off + 1, dcid, dl);
	off += 1 + dl;
	assert_true(len > off && (len - off) % 4 == 0);
	for (; off < len; off += 4)
		v1 += p[off] == 0 && p[off + 1] == 0 && p[off + 2] == 0 && p[off + 3] == 1;
	assert_int_equal(v1, 1);
}

static void test_vn_for_every_other_version(void **state)
{
	static const uint32_t vs[] = { V_DRAFT29, V_V2DRAFT, V_V2, V_RESERVED, 0xff000020,
				       0x51303530 /* Q050 */ };
	struct w *w = w_new(1, NULL, NULL);
	struct quic_ep_stats st;
	uint8_t b[1300], big[255];
	uint8_t types[] = { 0xc0, 0xd0, 0xe0, 0xf0 };
	size_t i, k, sent;

	memset(big, 0x5a, sizeof(big));
	for (i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
		for (k = 0; k < sizeof(types); k++) {
			size_t n = mk_long(b, 1200, types[k], vs[i], D8, 8, S8, 8);

			sent = w->tap.n[0];
			feed(w, w->srv, b, n);
			assert_int_equal(w->tap.n[0], sent + 1);
			check_vn(w->tap.last[0], w->tap.last_len[0], D8, 8, S8, 8);
			/* One byte short of a client Initial: no answer. */
			feed(w, w->srv, b, 1199);
			assert_int_equal(w->tap.n[0], sent + 1);
		}
	}
	/* 255-byte ids are echoed whole. */
	{
		size_t n = mk_long(b, 1300, 0xc0, V_RESERVED, big, 255, S8, 8);

		sent = w->tap.n[0];
		feed(w, w->srv, b, n);
		assert_int_equal(w->tap.n[0], sent + 1);
		check_vn(w->tap.last[0], w->tap.last_len[0], big, 255, S8, 8);
	}
	/* A dial-only endpoint answers nothing. */
	sent = w->tap.n[1];
	feed(w, w->cli, b, mk_long(b, 1200, 0xc0, V_DRAFT29, D8, 8, S8, 8));
	assert_int_equal(w->tap.n[1], sent);
	stats(w->srv, &st);
	assert_int_equal(st.version_negotiations, sizeof(vs) / sizeof(vs[0]) * 4 + 1);
	assert_int_equal(st.conns_accepted, 0);
	run(w, 20000);
	w_free(w);
}

/* A real client Initial, its version rewritten: what a draft-29 or v2
 * client sends first. It gets VN and creates nothing. */
static void test_real_initial_other_versions(void **state)
{
	static const uint32_t vs[] = { V_DRAFT29, V_V2DRAFT, V_V2 };
	struct w *w = w_new(2, NULL, NULL);
	struct quic_conn *c;
	struct quic_ep_stats st;
	uint8_t b[1500];
	size_t i, len, sent;

	assert_int_equal(quic_ep_connect(w->cli->ep, (struct sockaddr *)&w->srv->addr,
					 sizeof(w->srv->addr), NULL, w->sim.now, &c),
			 0);
	assert_true(w->sim.hlen >= 1);
	len = w->sim.heap[0]->len;
	assert_true(len >= 1200);
	for (i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
		memcpy(b, w->sim.heap[0]->data, len);
		b[1] = (uint8_t)(vs[i] >> 24);
		b[2] = (uint8_t)(vs[i] >> 16);
		b[3] = (uint8_t)(vs[i] >> 8);
		b[4] = (uint8_t)vs[i];
		sent = w->tap.n[0];
		feed(w, w->srv, b, len);
		assert_int_equal(w->tap.n[0], sent + 1);
		assert_int_equal(w->tap.last[0][1] | w->tap.last[0][2] | w->tap.last[0][3] |
					 w->tap.last[0][4],
				 0);
	}
	stats(w->srv, &st);
	assert_int_equal(st.conns_accepted, 0);
	/* The genuine v1 Initial still makes the connection. */
	w->app[1].nconn = 0;
	assert_true(sim_run(&w->sim, NULL, NULL, w, 3000 * SIM_MS) >= 0);
	assert_int_equal(w->app[0].nconn, 1);
	assert_int_equal(w->app[1].nconn, 1);
	w_free(w);
}

/* VN packets and short headers never get a VN; a VN reaching a server
 * gets nothing at all. */
static void test_vn_never_answered(void **state)
{
	struct w *w = w_new(3, NULL, NULL);
	uint8_t b[1300];
	size_t sent = w->tap.n[0], n;

	n = mk_long(b, 1200, 0x80, 0, D8, 8, S8, 8);
	b[n - 4] = 0xff; /* lists some version, not v1 */
	feed(w, w->srv, b, n);
	feed(w, w->srv, b, 30);
	assert_int_equal(w->tap.n[0], sent);
	/* Short header for no connection: maybe a stateless reset, which
	 * is itself a short header; never a VN. */
	memset(b, 0x47, sizeof(b));
	b[0] = 0x40;
	feed(w, w->srv, b, 1200);
	if (w->tap.n[0] > sent)
		assert_int_equal(w->tap.last[0][0] & 0x80, 0);
	run(w, 5000);
	w_free(w);
}

/* ----------------------------------------- packets that create nothing */

static void test_long_types_without_conn(void **state)
{
	struct w *w = w_new(4, NULL, NULL);
	struct quic_ep_stats st0, st;
	uint8_t b[1300];
	static const uint8_t types[] = { 0xd0 /* 0-RTT */, 0xe0 /* Handshake */,
					 0xf0 /* Retry */ };
	size_t i, sent = w->tap.n[0];

	stats(w->srv, &st0);
	for (i = 0; i < sizeof(types); i++) {
		feed(w, w->srv, b, mk_long(b, 1200, types[i], 1, D8, 8, S8, 8));
		feed(w, w->srv, b, mk_long(b, 40, types[i], 1, D8, 8, S8, 8));
	}
	/* A v1 Initial under 1200 bytes would be a new server connection:
	 * dropped unanswered (RFC 9000 14.1). */
	feed(w, w->srv, b, mk_long(b, 1199, 0xc0, 1, D8, 8, S8, 8));
	feed(w, w->srv, b, mk_long(b, 60, 0xc0, 1, D8, 8, S8, 8));
	/* Long header with zero-length ids and nothing else. */
	feed(w, w->srv, b, mk_long(b, 7, 0xc0, 1, D8, 0, S8, 0));
	stats(w->srv, &st);
	assert_int_equal(w->tap.n[0], sent);
	assert_int_equal(st.conns_accepted, 0);
	assert_int_equal(st.drop_garbage - st0.drop_garbage, 2 * sizeof(types) + 3);
	/* A 1200-byte v1 Initial of garbage may create a connection that
	 * never completes: it must never write and must end by itself. */
	feed(w, w->srv, b, mk_long(b, 1200, 0xc0, 1, D8, 8, S8, 8));
	run(w, 30000);
	stats(w->srv, &st);
	assert_int_equal(st.conns_active, 0);
	w_free(w);
}

/* Retry and VN for a connection of ours that is a server: dropped before
 * ngtcp2; the connection goes on. */
static void test_retry_vn_to_server_conn(void **state)
{
	struct w *w = w_new(5, NULL, NULL);
	struct quic_ep_stats st0, st;
	struct quic_conn *c;
	uint8_t b[1300], dcid[32];
	size_t dl;

	assert_int_equal(quic_ep_connect(w->cli->ep, (struct sockaddr *)&w->srv->addr,
					 sizeof(w->srv->addr), NULL, w->sim.now, &c),
			 0);
	/* The client's first DCID routes to the server's new connection. */
	dl = w->sim.heap[0]->data[5];
	memcpy(dcid, w->sim.heap[0]->data + 6, dl);
	assert_true(sim_run(&w->sim, NULL, NULL, w, 3000 * SIM_MS) >= 0);
	assert_int_equal(w->app[0].nconn, 1);
	stats(w->srv, &st0);
	feed(w, w->srv, b, mk_long(b, 1200, 0xf0, 1, dcid, dl, S8, 8));
	feed(w, w->srv, b, mk_long(b, 1200, 0x80, 0, dcid, dl, S8, 8));
	stats(w->srv, &st);
	assert_int_equal(st.drop_garbage - st0.drop_garbage, 2);
	run(w, 2000);
	assert_int_equal(w->app[0].nclosed, 0);
	assert_int_equal(w->app[1].nclosed, 0);
	w_free(w);
}

/* --------------------------------------------------- VN ends a dial */

static void vn_to_client(struct w *w, uint32_t listed)
{
	const struct sim_pkt *p = w->sim.heap[0];
	uint8_t b[600];
	size_t dl = p->data[5], sl = p->data[6 + dl], off;

	/* ids swapped, as a server would */
	off = mk_long(b, 0, 0x80, 0, p->data + 7 + dl, sl, p->data + 6, dl);
	b[off++] = (uint8_t)(listed >> 24);
	b[off++] = (uint8_t)(listed >> 16);
	b[off++] = (uint8_t)(listed >> 8);
	b[off++] = (uint8_t)listed;
	feed(w, w->cli, b, off);
}

static void test_vn_ends_dial(void **state)
{
	struct w *w = w_new(6, NULL, NULL);
	struct quic_conn *c;

	assert_int_equal(quic_ep_connect(w->cli->ep, (struct sockaddr *)&w->srv->addr,
					 sizeof(w->srv->addr), NULL, w->sim.now, &c),
			 0);
	/* A VN listing v1 is ignored (RFC 9000 6.2)... */
	vn_to_client(w, 1);
	assert_int_equal(w->app[1].nclosed, 0);
	/* ...one without it ends the attempt at once. */
	vn_to_client(w, V_DRAFT29);
	assert_int_equal(w->app[1].nclosed, 1);
	assert_int_equal(w->app[1].last_close.reason, QUIC_CLOSE_PROTOCOL);
	run(w, 15000);
	assert_int_equal(w->app[1].nclosed, 1);
	w_free(w);
}

/* ------------------------------------------------------ coalesced garbage */

static void test_coalesced_garbage(void **state)
{
	struct w *w = w_new(7, NULL, NULL);
	struct quic_conn *c;
	uint8_t b[1500];
	size_t len, k;

	assert_int_equal(quic_ep_connect(w->cli->ep, (struct sockaddr *)&w->srv->addr,
					 sizeof(w->srv->addr), NULL, w->sim.now, &c),
			 0);
	len = w->sim.heap[0]->len;
	memcpy(b, w->sim.heap[0]->data, len);
	/* The Initial followed by a packet of another version, a Retry, a
	 * VN and random bytes in one datagram. */
	for (k = 0; k < 4 && len + 60 <= sizeof(b); k++) {
		static const uint8_t first[] = { 0xc0, 0xf0, 0x80, 0x37 };
		static const uint32_t ver[] = { V_DRAFT29, 1, 0, 1 };

		len += mk_long(b + len, 60, first[k], ver[k], D8, 8, S8, 8);
	}
	feed(w, w->srv, b, len);
	/* A datagram of many coalesced tiny long headers. */
	for (len = 0; len + 20 <= 1300;)
		len += mk_long(b + len, 20, 0xe0, 1, D8, 4, S8, 4);
	feed(w, w->srv, b, len);
	assert_true(sim_run(&w->sim, NULL, NULL, w, 5000 * SIM_MS) >= 0);
	assert_int_equal(w->app[0].nconn, 1);
	assert_int_equal(w->app[1].nconn, 1);
	w_free(w);
}

/* ------------------------------------------- small server Initials */

/* A weft server refusing a connection (limits) answers the client's
 * Initial with an Initial carrying only CONNECTION_CLOSE: smaller than
 * 1200 bytes. The dialler takes it: it learns CONNECTION_REFUSED, not a
 * handshake timeout. */
static void test_small_initial_refusal(void **state)
{
	struct quic_ep_opts so;
	struct w *w;
	struct quic_conn *c[2];

	memset(&so, 0, sizeof(so));
	so.max_conns_per_addr = 1;
	so.handshake_timeout_ms = 5000;
	w = w_new(8, &so, NULL);
	assert_int_equal(quic_ep_connect(w->cli->ep, (struct sockaddr *)&w->srv->addr,
					 sizeof(w->srv->addr), NULL, w->sim.now, &c[0]),
			 0);
	assert_true(sim_run(&w->sim, NULL, NULL, w, 1000 * SIM_MS) >= 0);
	assert_int_equal(w->app[1].nconn, 1);
	assert_int_equal(quic_ep_connect(w->cli->ep, (struct sockaddr *)&w->srv->addr,
					 sizeof(w->srv->addr), NULL, w->sim.now, &c[1]),
			 0);
	/* Two one-way delays later, well before any timeout could fire. */
	assert_true(sim_run(&w->sim, NULL, NULL, w, 25 * SIM_MS) >= 0);
	assert_int_equal(w->app[1].nclosed, 1);
	assert_int_equal(w->app[1].last_close.reason, QUIC_CLOSE_PEER);
	assert_int_equal(w->app[1].last_close.error_code, NGTCP2_CONNECTION_REFUSED);
	assert_true(w->tap.n_small_initial[0] >= 1);
	w_free(w);
}

/* A server closing during the handshake (no common ALPN: TLS alert 120)
 * does it in a small Initial too; the dialler gets the alert's code. */
static void test_small_initial_handshake_close(void **state)
{
	struct quic_ep_opts co;
	struct w *w;
	struct quic_conn *c;

	memset(&co, 0, sizeof(co));
	co.alpn = "h3";
	w = w_new(9, NULL, &co);
	assert_int_equal(quic_ep_connect(w->cli->ep, (struct sockaddr *)&w->srv->addr,
					 sizeof(w->srv->addr), NULL, w->sim.now, &c),
			 0);
	assert_true(sim_run(&w->sim, NULL, NULL, w, 25 * SIM_MS) >= 0);
	assert_int_equal(w->app[1].nclosed, 1);
	assert_int_equal(w->app[1].last_close.reason, QUIC_CLOSE_PEER);
	assert_int_equal(w->app[1].last_close.error_code, 0x100 + 120);
	assert_true(w->tap.n_small_initial[0] >= 1);
	run(w, 5000);
	w_free(w);
}

/* An empty RFC 9221 datagram is legal; ngtcp2 0.12 asserts on a
 * zero-length vector (found by fuzz_quic_ep). */
static void test_empty_datagram(void **state)
{
	struct w *w = w_new(10, NULL, NULL);
	struct quic_conn *c;

	assert_int_equal(quic_ep_connect(w->cli->ep, (struct sockaddr *)&w->srv->addr,
					 sizeof(w->srv->addr), NULL, w->sim.now, &c),
			 0);
	assert_true(sim_run(&w->sim, NULL, NULL, w, 1000 * SIM_MS) >= 0);
	assert_int_equal(w->app[1].nconn, 1);
	assert_int_equal(quic_conn_send_datagram(c, (const uint8_t *)"", 0), 0);
	assert_int_equal(quic_conn_send_datagram(c, (const uint8_t *)"x", 1), 0);
	assert_true(sim_run(&w->sim, NULL, NULL, w, 1000 * SIM_MS) >= 0);
	assert_int_equal(w->app[0].ndgram, 2);
	assert_int_equal(w->app[0].last_dgram_len, 1);
	w_free(w);
}

/* One datagram from cfd to the group's port: the index of the socket of
 * socks[0..n) that received it (-1: none within a second). */
static int landed(int cfd, const int *socks, unsigned int n, const uint8_t *buf, size_t len)
{
	uint8_t got[2048];

	assert_int_equal(send(cfd, buf, len, 0), (ssize_t)len);
	for (int tries = 0; tries < 1000; tries++) {
		for (unsigned int i = 0; i < n; i++)
			if (recv(socks[i], got, sizeof(got), MSG_DONTWAIT) == (ssize_t)len)
				return (int)i;
		usleep(1000);
	}
	return -1;
}

/*
 * The kernel makes quic_cid_route's choice (quic_cid_route_cbpf): count
 * sockets of one SO_REUSEPORT group on loopback, bound in order, the
 * program attached by the first after its bind as the io_uring backend
 * does; every short header (DCID first byte 0..255) and long header lands
 * on the socket quic_cid_route names; a long header without a DCID lands
 * somewhere (the hash), one byte on socket 0. No privilege needed.
 */
static void test_cid_route_cbpf(void **state)
{
	struct sock_filter insns[QUIC_CID_ROUTE_CBPF_LEN];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	uint8_t pkt[1200];

	(void)state;
	assert_int_equal(quic_cid_route_cbpf(0, insns, QUIC_CID_ROUTE_CBPF_LEN), -EINVAL);
	assert_int_equal(quic_cid_route_cbpf(257, insns, QUIC_CID_ROUTE_CBPF_LEN), -EINVAL);
	assert_int_equal(quic_cid_route_cbpf(2, insns, QUIC_CID_ROUTE_CBPF_LEN - 1), -EINVAL);
	assert_int_equal(quic_cid_route_cbpf(2, NULL, QUIC_CID_ROUTE_CBPF_LEN), -EINVAL);
	for (unsigned int n = 2; n <= 4; n++) {
		struct sock_fprog fp = { .filter = insns };
		int socks[4], cfd, one = 1;

		fp.len = (unsigned short)quic_cid_route_cbpf(n, insns, QUIC_CID_ROUTE_CBPF_LEN);
		assert_int_equal(fp.len, QUIC_CID_ROUTE_CBPF_LEN);
		a.sin_port = 0;
		for (unsigned int i = 0; i < n; i++) {
			socks[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			assert_true(socks[i] >= 0);
			assert_int_equal(
			    setsockopt(socks[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
			assert_int_equal(bind(socks[i], (struct sockaddr *)&a, sizeof(a)), 0);
			if (i == 0) {
				assert_int_equal(getsockname(socks[0], (struct sockaddr *)&a, &al), 0);
				assert_int_equal(setsockopt(socks[0], SOL_SOCKET,
							    SO_ATTACH_REUSEPORT_CBPF, &fp,
							    sizeof(fp)),
						 0);
			}
		}
		cfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(cfd, (struct sockaddr *)&a, sizeof(a)), 0);
		for (unsigned int b = 0; b < 256; b++) {
			/* a short header: flags, our 16-byte DCID, a packet */
			memset(pkt, 0x5a, 64);
			pkt[0] = 0x41;
			pkt[1] = (uint8_t)b;
			assert_int_equal(landed(cfd, socks, n, pkt, 64),
					 quic_cid_route(pkt, 64, n));
			/* a v1 Initial: version, an 8-byte DCID, an 8-byte SCID */
			memset(pkt, 0, sizeof(pkt));
			pkt[0] = 0xc3;
			pkt[4] = 1;
			pkt[5] = 8;
			pkt[6] = (uint8_t)(255 - b);
			pkt[14] = 8;
			assert_int_equal(landed(cfd, socks, n, pkt, sizeof(pkt)),
					 quic_cid_route(pkt, sizeof(pkt), n));
		}
		pkt[5] = 0; /* no DCID: the kernel's hash, some socket */
		assert_true(landed(cfd, socks, n, pkt, 40) >= 0);
		assert_int_equal(landed(cfd, socks, n, (const uint8_t *)"\x40", 1), 0);
		close(cfd);
		for (unsigned int i = 0; i < n; i++)
			close(socks[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_vn_for_every_other_version),
		cmocka_unit_test(test_real_initial_other_versions),
		cmocka_unit_test(test_vn_never_answered),
		cmocka_unit_test(test_long_types_without_conn),
		cmocka_unit_test(test_retry_vn_to_server_conn),
		cmocka_unit_test(test_vn_ends_dial),
		cmocka_unit_test(test_coalesced_garbage),
		cmocka_unit_test(test_small_initial_refusal),
		cmocka_unit_test(test_small_initial_handshake_close),
		cmocka_unit_test(test_empty_datagram),
		cmocka_unit_test(test_cid_route_cbpf),
	};

	return cmocka_run_group_tests_name("quic_wire", tests, NULL, NULL);
}
