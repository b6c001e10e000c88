// SPDX-License-Identifier: MIT
/*
 * Relay data plane in process: a relay engine (mem backend) on a simulated
 * network, two ends behind NATs (A: endpoint-independent mapping; B:
 * address-dependent mapping with address- and port-dependent filtering,
 * the behaviour of a `random-fully` masquerade), binds with WEFT-CIRCUIT,
 * datagrams both ways, hostile senders, rebinding, limits, expiry, ends.
 * Virtual clock: deterministic for the seed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "weft/conn.h"
#include "weft/engine.h"
#include "weft/relay_fwd.h"
#include "weft/simnet.h"
#include "testutil.h"

#define RPORT0 42000
#define RPORT1 42003 /* four relay ports */
#define QPORT 4433
#define MS 1000000ULL

struct ended_rec {
	uint64_t id;
	int reason;
	int n;
};

struct fx {
	struct simnet *sn;
	struct simnet_host *relay, *a, *b, *x;
	struct simnet_nat *nat_a, *nat_b;
	struct engine *eng;
	struct relay_fwd *rf;
	struct io_addr relay_addr;
	struct ended_rec ended;
};

static void on_end(void *arg, uint64_t id, int reason)
{
	struct fx *f = arg;

	f->ended.id = id;
	f->ended.reason = reason;
	f->ended.n++;
}

static void addr(struct io_addr *a, const char *ip, uint16_t port)
{
	assert_int_equal(io_addr_parse(a, ip, port), 0);
}

static void fx_init(struct fx *f, const struct relay_fwd_limits *def)
{
	struct simnet_opts so = {.seed = 7, .clock = SIMNET_CLOCK_MANUAL};
	struct engine_opts eo;
	struct relay_fwd_opts ro;
	struct io_addr ra, aa, ba, xa, na, nb;
	uint16_t ports[1] = {QPORT};
	unsigned int qid;
	int efd;

	memset(f, 0, sizeof(*f));
	assert_int_equal(simnet_new(&f->sn, &so), 0);
	addr(&ra, "198.51.100.1", 0);
	addr(&na, "203.0.113.1", 0);
	addr(&nb, "203.0.113.2", 0);
	addr(&aa, "10.0.0.2", 0);
	addr(&ba, "10.1.0.2", 0);
	addr(&xa, "198.51.100.66", 0);
	assert_int_equal(simnet_host_add(f->sn, &ra, NULL, &f->relay), 0);
	assert_int_equal(simnet_nat_add(f->sn, &na, SIMNET_NAT_EIF, 0, &f->nat_a), 0);
	assert_int_equal(simnet_nat_add(f->sn, &nb, SIMNET_NAT_APDF, 0, &f->nat_b), 0);
	assert_int_equal(simnet_nat_set_mapping(f->nat_b, SIMNET_NAT_MAP_ADM), 0);
	assert_int_equal(simnet_host_add(f->sn, &aa, f->nat_a, &f->a), 0);
	assert_int_equal(simnet_host_add(f->sn, &ba, f->nat_b, &f->b), 0);
	assert_int_equal(simnet_host_add(f->sn, &xa, NULL, &f->x), 0);
	for (qid = 0; qid < 1; qid++) {
		assert_int_equal(simnet_attach(f->a, qid, &efd), 0);
		assert_int_equal(simnet_attach(f->b, qid, &efd), 0);
		assert_int_equal(simnet_attach(f->x, qid, &efd), 0);
	}
	engine_opts_default(&eo);
	eo.mode = IO_MODE_MEM;
	eo.sim_host = f->relay;
	eo.ports = ports;
	eo.nports = 1;
	eo.range_min = RPORT0;
	eo.range_max = RPORT1;
	eo.clock = simnet_now_ns;
	eo.clock_arg = f->sn;
	assert_int_equal(engine_new(&f->eng, &eo), 0);
	relay_fwd_opts_default(&ro);
	ro.eng = f->eng;
	ro.port_min = RPORT0;
	ro.port_max = RPORT1;
	ro.max_circuits = 3;
	if (def)
		ro.defaults = *def;
	ro.on_end = on_end;
	ro.arg = f;
	assert_int_equal(relay_fwd_new(&f->rf, &ro), 0);
	f->relay_addr = ra;
}

static void fx_fini(struct fx *f)
{
	relay_fwd_free(f->rf);
	engine_free(f->eng);
	simnet_free(f->sn);
}

/* Run the relay and the network for ms of virtual time, 1 ms steps
 * (engine_sim_run would spin on the datagrams the bare end hosts leave
 * waiting until the test drains them). */
static void pump(struct fx *f, uint64_t ms)
{
	for (uint64_t i = 0; i <= ms; i++) {
		int r, spins = 0;

		while ((r = engine_poll(f->eng, NULL)) > 0 && ++spins < 1000)
			;
		assert_true(r >= 0);
		if (i < ms)
			simnet_advance(f->sn, MS);
	}
}

/* Take every datagram waiting at host h; returns the count, the last one
 * copied into buf/len/src. */
static int drain(struct simnet_host *h, uint8_t *buf, size_t *len, struct io_addr *src)
{
	struct simnet_pkt *p[16];
	int n, total = 0;

	while ((n = simnet_recv(h, 0, p, 16)) > 0) {
		for (int i = 0; i < n; i++) {
			if (buf && p[i]->len <= 1500) {
				memcpy(buf, p[i]->data, p[i]->len);
				*len = p[i]->len;
				if (src)
					*src = p[i]->src;
			}
			simnet_pkt_free(p[i]);
		}
		total += n;
	}
	return total;
}

static void to_relay(struct fx *f, struct simnet_host *h, uint16_t rport, const void *d, size_t n)
{
	struct io_addr dst = f->relay_addr;

	dst.port = rport;
	assert_int_equal(simnet_send(h, QPORT, &dst, d, n), 0);
}

/* Bind end h with token tok to rport; returns the mapped address the relay
 * answered with (asserting an answer with our transaction id came). */
static void bind_end(struct fx *f, struct simnet_host *h, const uint8_t *tok, uint16_t rport,
		     struct io_addr *mapped)
{
	uint8_t req[RELAY_BIND_LEN], tid[12], buf[1500];
	size_t len = 0;
	struct io_addr from;

	memset(tid, 0x42, sizeof(tid));
	tid[0] = tok[0];
	assert_int_equal(relay_bind_request(tok, tid, req, sizeof(req)), RELAY_BIND_LEN);
	to_relay(f, h, rport, req, sizeof(req));
	pump(f, 20);
	assert_int_equal(drain(h, buf, &len, &from), 1);
	assert_int_equal(from.port, rport);
	assert_int_equal(conn_stun_parse_response(buf, len, tid, mapped), 0);
}

static void toks(uint8_t a[16], uint8_t b[16], uint8_t seed)
{
	for (int i = 0; i < 16; i++) {
		a[i] = (uint8_t)(seed + i);
		b[i] = (uint8_t)(seed * 7 + 3 * i + 1);
	}
}

/* The bind message: fixed layout, parse/build round trip, hostile shapes. */
static void test_bind_codec(void **state)
{
	uint8_t tok[16], tid[12], m[RELAY_BIND_LEN], got[16], bad[RELAY_BIND_LEN];

	(void)state;
	for (int i = 0; i < 16; i++)
		tok[i] = (uint8_t)i;
	for (int i = 0; i < 12; i++)
		tid[i] = (uint8_t)(0xa0 + i);
	assert_int_equal(relay_bind_request(tok, tid, m, 10), -ENOBUFS);
	assert_int_equal(relay_bind_request(tok, tid, m, sizeof(m)), RELAY_BIND_LEN);
	/* The vector of docs/PROTOCOL.md, "Relay bind". */
	{
		static const uint8_t vec[RELAY_BIND_LEN] = {
			0x00, 0x01, 0x00, 0x1c, 0x21, 0x12, 0xa4, 0x42, 0xa0, 0xa1, 0xa2, 0xa3,
			0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xc0, 0x57, 0x00, 0x10,
			0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
			0x0c, 0x0d, 0x0e, 0x0f, 0x80, 0x28, 0x00, 0x04, 0x10, 0x19, 0xfd, 0x72};

		assert_memory_equal(m, vec, sizeof(vec));
	}
	assert_int_equal(conn_stun_is(m, sizeof(m)), 1);
	assert_int_equal(m[20], 0xC0);
	assert_int_equal(m[21], 0x57);
	assert_int_equal(relay_bind_parse(m, sizeof(m), got), 0);
	assert_memory_equal(got, tok, 16);
	/* Every single-byte change is refused (FINGERPRINT or layout). */
	for (size_t i = 0; i < sizeof(m); i++) {
		memcpy(bad, m, sizeof(m));
		bad[i] ^= 0x01;
		assert_int_equal(relay_bind_parse(bad, sizeof(bad), got), -EINVAL);
	}
	for (size_t n = 0; n < sizeof(m); n++)
		assert_int_equal(relay_bind_parse(m, n, got), -EINVAL);
	/* A plain Binding request (no token) is not a bind. */
	assert_true(conn_stun_request(tid, bad, sizeof(bad)) > 0);
	assert_int_equal(relay_bind_parse(bad, 28, got), -EINVAL);
}

/* Two ends behind NATs bind, then exchange datagrams through relay:PORT. */
static void test_circuit_both_ways(void **state)
{
	struct fx f;
	uint8_t ta[16], tb[16], buf[1500];
	struct io_addr ma, mb, from;
	struct relay_fwd_stats st;
	struct relay_fwd_totals t;
	uint64_t id;
	uint16_t port;
	size_t len;
	json_t *j;

	(void)state;
	fx_init(&f, NULL);
	toks(ta, tb, 1);
	assert_int_equal(relay_fwd_add(f.rf, ta, tb, NULL, &id, &port), 0);
	assert_true(port >= RPORT0 && port <= RPORT1);
	assert_int_equal(relay_fwd_add(f.rf, ta, ta, NULL, &id, &port) == -EINVAL, 1);
	/* Data before both ends are bound goes nowhere. */
	to_relay(&f, f.a, port, "early", 5);
	pump(&f, 20);
	bind_end(&f, f.a, ta, port, &ma);
	assert_int_equal(ma.port, 20000); /* NAT A's first outside port */
	to_relay(&f, f.a, port, "early2", 6);
	pump(&f, 20);
	bind_end(&f, f.b, tb, port, &mb);
	assert_int_equal(drain(f.a, NULL, NULL, NULL), 0);
	assert_int_equal(drain(f.b, NULL, NULL, NULL), 0);

	for (int i = 0; i < 10; i++) {
		char msg[32];

		snprintf(msg, sizeof(msg), "a-to-b %d", i);
		to_relay(&f, f.a, port, msg, strlen(msg));
		pump(&f, 5);
		len = 0;
		assert_int_equal(drain(f.b, buf, &len, &from), 1);
		assert_int_equal(len, strlen(msg));
		assert_memory_equal(buf, msg, len);
		assert_int_equal(from.port, port); /* comes from relay:PORT */
		assert_true(io_addr_equal(&from, &(struct io_addr){.family = AF_INET, .port = port,
								  .addr = {198, 51, 100, 1}}));
		snprintf(msg, sizeof(msg), "b-to-a %d", i);
		to_relay(&f, f.b, port, msg, strlen(msg));
		pump(&f, 5);
		assert_int_equal(drain(f.a, buf, &len, &from), 1);
		assert_memory_equal(buf, msg, len);
	}
	assert_int_equal(relay_fwd_stats(f.rf, id, &st), 0);
	assert_int_equal(st.port, port);
	assert_int_equal(st.in_kernel, 0);
	assert_true(st.end[0].bound && st.end[1].bound);
	assert_true(io_addr_equal(&st.end[0].addr, &ma));
	assert_true(io_addr_equal(&st.end[1].addr, &mb));
	assert_int_equal(st.end[0].pkts, 10);
	assert_int_equal(st.end[1].pkts, 10);
	assert_int_equal(st.end[0].bytes, 10 * 8);
	assert_int_equal(st.end[0].drops, 1); /* "early2": B not yet bound */
	assert_int_equal(st.limits.max_bytes, RELAY_DEF_CIRCUIT_BYTES);
	relay_fwd_totals(f.rf, &t);
	assert_int_equal(t.user_pkts, 20);
	assert_int_equal(t.binds_ok, 2);
	assert_int_equal(t.drop_unknown, 2); /* "early" (no end bound), "early2" */
	j = relay_fwd_json(f.rf);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "circuits")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "totals"), "user_pkts")),
			 20);
	json_decref(j);
	assert_int_equal(relay_fwd_del(f.rf, id), 0);
	assert_int_equal(f.ended.n, 1);
	assert_int_equal(f.ended.reason, RELAY_END_DELETED);
	assert_int_equal(relay_fwd_del(f.rf, id), -ENOENT);
	assert_int_equal(relay_fwd_stats(f.rf, id, &st), -ENOENT);
	/* After the end, the port forwards nothing. */
	to_relay(&f, f.a, port, "late", 4);
	pump(&f, 5);
	assert_int_equal(drain(f.b, NULL, NULL, NULL), 0);
	fx_fini(&f);
}

/* hold_binds (the control plane's circuits): the first end's bind is
 * answered only when the other end binds, so an end that sends as soon as
 * it is answered (a QUIC Initial) never loses its first datagram to an
 * unbound peer; both answers go out on the second bind, each with its own
 * transaction id and mapped address; nothing is dropped. */
static void test_hold_binds(void **state)
{
	struct fx f;
	struct relay_fwd_limits lim = { .hold_binds = 1 };
	uint8_t ta[16], tb[16], req[RELAY_BIND_LEN], tida[12], buf[1500];
	struct io_addr ma, mb, from;
	struct relay_fwd_stats st;
	uint64_t id;
	uint16_t port;
	size_t len = 0;

	(void)state;
	fx_init(&f, NULL);
	toks(ta, tb, 9);
	assert_int_equal(relay_fwd_add(f.rf, ta, tb, &lim, &id, &port), 0);
	/* A binds (twice: a retry): latched, not answered. */
	memset(tida, 0x51, sizeof(tida));
	assert_int_equal(relay_bind_request(ta, tida, req, sizeof(req)), RELAY_BIND_LEN);
	to_relay(&f, f.a, port, req, sizeof(req));
	pump(&f, 20);
	to_relay(&f, f.a, port, req, sizeof(req));
	pump(&f, 20);
	assert_int_equal(drain(f.a, NULL, NULL, NULL), 0);
	assert_int_equal(relay_fwd_stats(f.rf, id, &st), 0);
	assert_true(st.end[0].bound && !st.end[1].bound);
	/* B binds: B is answered, and A's held bind with it. */
	bind_end(&f, f.b, tb, port, &mb);
	assert_int_equal(drain(f.a, buf, &len, &from), 1);
	assert_int_equal(from.port, port);
	assert_int_equal(conn_stun_parse_response(buf, len, tida, &ma), 0);
	assert_int_equal(ma.port, 20000); /* NAT A's outside port */
	/* A's first datagram after its answer goes through. */
	to_relay(&f, f.a, port, "initial", 7);
	pump(&f, 5);
	assert_int_equal(drain(f.b, buf, &len, &from), 1);
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "initial", 7);
	assert_int_equal(relay_fwd_stats(f.rf, id, &st), 0);
	assert_int_equal(st.end[0].drops + st.end[1].drops, 0);
	/* Once both are bound, a rebind is answered at once. */
	bind_end(&f, f.a, ta, port, &ma);
	assert_int_equal(drain(f.b, NULL, NULL, NULL), 0);
	fx_fini(&f);
}

/* Forged and wrong-token senders: no answer, no latch, no forwarding. */
static void test_hostile(void **state)
{
	struct fx f;
	uint8_t ta[16], tb[16], bogus[16], req[RELAY_BIND_LEN], tid[12] = {0};
	struct io_addr ma, mb;
	struct relay_fwd_stats st;
	struct relay_fwd_totals t;
	uint64_t id;
	uint16_t port, p2;

	(void)state;
	fx_init(&f, NULL);
	toks(ta, tb, 9);
	memset(bogus, 0xee, sizeof(bogus));
	assert_int_equal(relay_fwd_add(f.rf, ta, tb, NULL, &id, &port), 0);
	/* Unknown token: no answer. */
	relay_bind_request(bogus, tid, req, sizeof(req));
	to_relay(&f, f.x, port, req, sizeof(req));
	/* A's token on a port with no circuit: no answer. */
	p2 = port == RPORT1 ? RPORT0 : (uint16_t)(port + 1);
	relay_bind_request(ta, tid, req, sizeof(req));
	to_relay(&f, f.x, p2, req, sizeof(req));
	pump(&f, 20);
	assert_int_equal(drain(f.x, NULL, NULL, NULL), 0);
	bind_end(&f, f.a, ta, port, &ma);
	bind_end(&f, f.b, tb, port, &mb);
	/* X (not an end) sends data: dropped, nothing reaches A or B. */
	to_relay(&f, f.x, port, "inject", 6);
	pump(&f, 10);
	assert_int_equal(drain(f.a, NULL, NULL, NULL), 0);
	assert_int_equal(drain(f.b, NULL, NULL, NULL), 0);
	relay_fwd_totals(f.rf, &t);
	assert_int_equal(t.binds_bad, 2);
	assert_int_equal(t.drop_unknown, 1);
	assert_int_equal(t.user_pkts, 0);
	/* X binds with A's stolen token would move the latch: that is what a
	 * token is for (it travels only over A's authenticated connection).
	 * Here: A itself rebinds from a new NAT mapping (port 4434). */
	relay_bind_request(ta, tid, req, sizeof(req));
	{
		struct io_addr dst = f.relay_addr;
		uint8_t buf[1500];
		size_t len;
		struct io_addr m2;

		dst.port = port;
		assert_int_equal(simnet_send(f.a, 4434, &dst, req, sizeof(req)), 0);
		pump(&f, 20);
		assert_int_equal(drain(f.a, buf, &len, NULL), 1);
		assert_int_equal(conn_stun_parse_response(buf, len, tid, &m2), 0);
		assert_false(io_addr_equal(&m2, &ma));
		assert_int_equal(relay_fwd_stats(f.rf, id, &st), 0);
		assert_true(io_addr_equal(&st.end[0].addr, &m2));
		assert_int_equal(st.end[0].binds, 2);
		/* B's data now goes to A's new mapping (port 4434 inside). */
		to_relay(&f, f.b, port, "moved", 5);
		pump(&f, 10);
		assert_int_equal(drain(f.a, buf, &len, NULL), 1);
		assert_memory_equal(buf, "moved", 5);
	}
	fx_fini(&f);
}

/* Byte limit (both directions together), rate, lifetime, idle, capacity. */
static void test_limits(void **state)
{
	struct relay_fwd_limits lim = {.max_bytes = 1000, .pps = 1000000, .burst = 1000};
	struct fx f;
	uint8_t ta[16], tb[16], pkt[100];
	struct io_addr ma, mb;
	struct relay_fwd_stats st;
	uint64_t id, id2, id3, id4;
	uint16_t port, p2, p3, p4;
	int got;

	(void)state;
	memset(pkt, 'x', sizeof(pkt));
	fx_init(&f, NULL);
	/* Bytes: 1000 per circuit, both directions: 5 + 5 packets of 100 fit,
	 * the 11th is refused and ends the circuit. */
	toks(ta, tb, 20);
	assert_int_equal(relay_fwd_add(f.rf, ta, tb, &lim, &id, &port), 0);
	bind_end(&f, f.a, ta, port, &ma);
	bind_end(&f, f.b, tb, port, &mb);
	for (int i = 0; i < 5; i++) {
		to_relay(&f, f.a, port, pkt, sizeof(pkt));
		to_relay(&f, f.b, port, pkt, sizeof(pkt));
	}
	pump(&f, 10);
	assert_int_equal(drain(f.a, NULL, NULL, NULL), 5);
	assert_int_equal(drain(f.b, NULL, NULL, NULL), 5);
	assert_int_equal(f.ended.n, 0);
	to_relay(&f, f.a, port, pkt, sizeof(pkt));
	pump(&f, 10);
	assert_int_equal(drain(f.b, NULL, NULL, NULL), 0);
	assert_int_equal(f.ended.n, 1);
	assert_int_equal(f.ended.id, id);
	assert_int_equal(f.ended.reason, RELAY_END_BYTES);
	assert_int_equal(relay_fwd_stats(f.rf, id, &st), -ENOENT);

	/* Rate: 100 pps, burst 10 per direction; 50 sent at once: 10 pass. */
	lim = (struct relay_fwd_limits){.pps = 100, .burst = 10};
	toks(ta, tb, 30);
	assert_int_equal(relay_fwd_add(f.rf, ta, tb, &lim, &id2, &p2), 0);
	bind_end(&f, f.a, ta, p2, &ma);
	bind_end(&f, f.b, tb, p2, &mb);
	for (int i = 0; i < 50; i++)
		to_relay(&f, f.a, p2, pkt, 10);
	pump(&f, 1); /* 1 ms: at most 0.1 token refilled */
	got = drain(f.b, NULL, NULL, NULL);
	assert_int_equal(got, 10);
	assert_int_equal(relay_fwd_stats(f.rf, id2, &st), 0);
	assert_int_equal(st.end[0].pkts, 10);
	assert_int_equal(st.end[0].drops, 40);
	assert_int_equal(st.end[1].drops, 0);
	/* A second later the bucket is full again. */
	pump(&f, 1000);
	to_relay(&f, f.a, p2, pkt, 10);
	pump(&f, 5);
	assert_int_equal(drain(f.b, NULL, NULL, NULL), 1);

	/* Capacity: max_circuits 3 (one live above, two more fit). */
	toks(ta, tb, 40);
	lim = (struct relay_fwd_limits){.lifetime_ms = 3000, .idle_ms = 100000};
	assert_int_equal(relay_fwd_add(f.rf, ta, tb, &lim, &id3, &p3), 0);
	toks(ta, tb, 50);
	lim = (struct relay_fwd_limits){.idle_ms = 500};
	assert_int_equal(relay_fwd_add(f.rf, ta, tb, &lim, &id4, &p4), 0);
	assert_int_equal(relay_fwd_add(f.rf, tb, ta, NULL, &id, &port), -ENOSPC);
	assert_true(p3 != p4 && p3 != p2 && p4 != p2);
	/* Idle: id4 (500 ms, no traffic) ends by the sweep; id2 (default
	 * 60 s idle) lives on. */
	f.ended.n = 0;
	pump(&f, 1000);
	assert_int_equal(f.ended.n, 1);
	assert_int_equal(f.ended.id, id4);
	assert_int_equal(f.ended.reason, RELAY_END_IDLE);
	/* Lifetime: id3 ends at 3 s whatever it does. */
	pump(&f, 2500);
	assert_int_equal(f.ended.n, 2);
	assert_int_equal(f.ended.id, id3);
	assert_int_equal(f.ended.reason, RELAY_END_LIFETIME);
	assert_int_equal(relay_fwd_stats(f.rf, id2, &st), 0);
	/* Free ends the rest. */
	f.ended.n = 0;
	relay_fwd_free(f.rf);
	f.rf = NULL;
	assert_int_equal(f.ended.n, 1);
	assert_int_equal(f.ended.reason, RELAY_END_DELETED);
	fx_fini(&f);
}

/* io_uring mode on loopback: real sockets, engine workers running. */
static int udp_sock(uint16_t *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(sa);
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
	/* A deadline on every receive: a lost datagram fails, never hangs. */
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void sendto_port(int fd, uint16_t port, const void *d, size_t n)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	assert_int_equal(sendto(fd, d, n, 0, (struct sockaddr *)&sa, sizeof(sa)), (ssize_t)n);
}

static ssize_t recv_from(int fd, uint8_t *buf, size_t cap, uint16_t *from_port)
{
	struct sockaddr_in sa;
	socklen_t l = sizeof(sa);
	ssize_t n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&sa, &l);

	if (n >= 0 && from_port)
		*from_port = ntohs(sa.sin_port);
	return n;
}

static void test_uring(void **state)
{
	struct engine_opts eo;
	struct relay_fwd_opts ro;
	struct engine *eng = NULL;
	struct relay_fwd *rf = NULL;
	uint8_t ta[16], tb[16], req[RELAY_BIND_LEN], tid[12] = {1}, buf[2048];
	uint16_t ports[1], pa, pb, port, from, base = 0;
	struct relay_fwd_stats st;
	struct io_addr mapped;
	uint64_t id;
	int fa, fb, err = -EADDRINUSE, qp;
	ssize_t n;

	(void)state;
	qp = tu_free_udp_port();
	assert_true(qp > 0);
	ports[0] = (uint16_t)qp;
	/* A free pair of ports: the range is contiguous, so probe a few. */
	for (int tries = 0; tries < 50 && err == -EADDRINUSE; tries++) {
		base = (uint16_t)(40000 + ((unsigned int)getpid() * 7 + tries * 131) % 20000);
		engine_opts_default(&eo);
		eo.mode = IO_MODE_URING;
		eo.bind_addr = "127.0.0.1";
		eo.ports = ports;
		eo.nports = 1;
		eo.range_min = base;
		eo.range_max = (uint16_t)(base + 1);
		err = engine_new(&eng, &eo);
	}
	assert_int_equal(err, 0);
	relay_fwd_opts_default(&ro);
	ro.eng = eng;
	ro.port_min = base;
	ro.port_max = (uint16_t)(base + 1);
	assert_int_equal(relay_fwd_new(&rf, &ro), 0);
	assert_int_equal(engine_start(eng), 0);
	toks(ta, tb, 60);
	assert_int_equal(relay_fwd_add(rf, ta, tb, NULL, &id, &port), 0);
	fa = udp_sock(&pa);
	fb = udp_sock(&pb);
	relay_bind_request(ta, tid, req, sizeof(req));
	sendto_port(fa, port, req, sizeof(req));
	n = recv_from(fa, buf, sizeof(buf), &from);
	assert_true(n > 0);
	assert_int_equal(from, port);
	assert_int_equal(conn_stun_parse_response(buf, (size_t)n, tid, &mapped), 0);
	assert_int_equal(mapped.port, pa);
	relay_bind_request(tb, tid, req, sizeof(req));
	sendto_port(fb, port, req, sizeof(req));
	assert_true(recv_from(fb, buf, sizeof(buf), NULL) > 0);
	for (int i = 0; i < 100; i++) {
		uint8_t msg[1200];

		memset(msg, i, sizeof(msg));
		sendto_port(i & 1 ? fb : fa, port, msg, sizeof(msg));
		n = recv_from(i & 1 ? fa : fb, buf, sizeof(buf), &from);
		assert_int_equal(n, 1200);
		assert_int_equal(from, port);
		assert_memory_equal(buf, msg, 1200);
	}
	assert_int_equal(relay_fwd_stats(rf, id, &st), 0);
	assert_int_equal(st.end[0].pkts, 50);
	assert_int_equal(st.end[1].pkts, 50);
	assert_int_equal(st.end[1].bytes, 50 * 1200);
	engine_stop(eng);
	relay_fwd_free(rf);
	engine_free(eng);
	close(fa);
	close(fb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bind_codec),
		cmocka_unit_test(test_hold_binds),
		cmocka_unit_test(test_circuit_both_ways),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_uring),
	};

	return cmocka_run_group_tests_name("relay_fwd", tests, NULL, NULL);
}
