// SPDX-License-Identifier: MIT
/*
 * Hole punching across complete nodes in this process (simnet, no root):
 * a public DHT bootstrap B, a public relay R and eight nodes, two of each
 * NAT class:
 *
 *   N1 N2  public (no NAT)                       class "none"
 *   F1 F2  endpoint-independent mapping, endpoint-independent filtering
 *   S1 S2  endpoint-independent mapping, address-and-port-dependent
 *          filtering (Linux masquerade's usual behaviour)
 *   A1 A2  address-dependent mapping (symmetric), APDF filtering
 *
 * Every node holds a reservation with R (relay.reserve = always). For each
 * of the ten NAT pairs the dialler asks R for a circuit to the target and
 * opens a connection through it (KEY@relay:PORT, kept open): it starts
 * relayed. The dialler sees the peer where the peer sees it (relay:PORT),
 * exchanges candidates over the connection and punches. Expected (truth
 * table in docs/CONNECTIVITY.md "Direct paths"): every pair with a public
 * or EIF side, and S+S, move to direct; S+A and A+A stay relayed, keep
 * working (a ping through the relay after the failure) and report both
 * NAT classes. Then: after a switch the relay's circuit counters stop
 * growing while the connection's keepalives flow on the direct path; a
 * 16 MiB bulk transfer across a switch (the relay polices circuits to 400
 * packets/s, so the transfer outlives the punch) verifies byte for byte.
 *
 * The nodes' workers run as threads on simnet's real-time clock: every
 * wait is a deadline on a condition (simnode_wait), never a fixed delay.
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
#include "weft/simnet.h"
#include "world.h"

#define NNODES 8

struct scene {
	struct world w; /* the network and its nodes (tests/lib/world.h) */
	struct simnet_nat *nat[NNODES];
	struct simnode b, r, n[NNODES];
};

static struct scene W;

/* Node indexes. */
enum { N1, N2, F1, F2, S1, S2, A1, A2 };
static const char *const names[NNODES] = { "N1", "N2", "F1", "F2", "S1", "S2", "A1", "A2" };
static const char *const cls[NNODES] = { "none", "none", "EIM+EIF", "EIM+EIF",
					 "EIM+APDF", "EIM+APDF", "ADM+APDF", "ADM+APDF" };

struct pair {
	int d, t;   /* dialler, target */
	int direct; /* expected outcome */
	char relay_addr[64];
	json_int_t conn; /* dialler's connection id */
	char state[16];
	json_int_t to_direct_ms, attempt;
	char nat[24], peer_nat[24];
};

static struct pair P[] = {
	{ .d = N1, .t = N2, .direct = 1 }, { .d = N1, .t = F1, .direct = 1 }, { .d = N1, .t = S1, .direct = 1 }, { .d = N1, .t = A1, .direct = 1 }, { .d = F1, .t = F2, .direct = 1 },
	{ .d = F1, .t = S1, .direct = 1 }, { .d = F1, .t = A1, .direct = 1 }, { .d = S1, .t = S2, .direct = 1 }, { .d = S1, .t = A1, .direct = 0 }, { .d = A1, .t = A2, .direct = 0 },
};
#define NPAIRS (sizeof(P) / sizeof(P[0]))

static int all_held(void *arg)
{
	(void)arg;
	for (int i = 0; i < NNODES; i++) {
		json_t *o = simnode_ok(&W.n[i], "GET", "/v1/relay/status", NULL);
		json_t *u = json_array_get(json_object_get(o, "use"), 0);
		const char *st = u ? json_string_value(json_object_get(u, "state")) : NULL;
		int ok = st && !strcmp(st, "held");

		json_decref(o);
		if (!ok)
			return 0;
	}
	return 1;
}

/* The class conn_node finds for node i (docs/CONNECTIVITY.md). */
static const char *nat_name(int i)
{
	return i <= N2 ? "none" : i <= S2 ? "endpoint-independent" : "address-dependent";
}

/* Every node classified its NAT (CONNECT carries the class). */
static int classified(void *arg)
{
	(void)arg;
	for (int i = 0; i < NNODES; i++) {
		json_t *o = simnode_ok(&W.n[i], "GET", "/v1/status", NULL);
		const char *nat = json_string_value(json_object_get(o, "nat"));
		int ok = nat && !strcmp(nat, nat_name(i));

		json_decref(o);
		if (!ok)
			return 0;
	}
	return 1;
}

static int setup(void **state)
{
	static const char *const boot[] = { WORLD_BOOTSTRAP, NULL };
	static const char *const relay[] = { "relay.circuit_pps=400", "relay.circuit_burst=400",
					     NULL };
	const char *set[] = { W.w.use, "relay.reserve=always", "quic.keepalive_ms=1000", NULL };
	char ip[32], out_ip[32];

	(void)state;
	world_new(&W.w, 1515);
	world_bootstrap(&W.w, &W.b, boot);
	world_relay(&W.w, &W.r, relay);
	for (int i = 0; i < NNODES; i++) {
		if (i == N1 || i == N2) {
			snprintf(ip, sizeof(ip), "198.51.%d.10", 110 + i);
			world_node(&W.w, &W.n[i], names[i], ip, NULL, set);
			continue;
		}
		snprintf(out_ip, sizeof(out_ip), "198.51.%d.100", 110 + i);
		W.nat[i] = world_nat(&W.w, out_ip, i == F1 || i == F2 ? SIMNET_NAT_EIF : SIMNET_NAT_APDF,
				     i == A1 || i == A2 ? SIMNET_NAT_MAP_ADM : SIMNET_NAT_MAP_EIM);
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i, 4 + i);
		world_node(&W.w, &W.n[i], names[i], ip, W.nat[i], set);
	}
	world_dht_formed(1, 30000, &W.n[N1], &W.n[N2], &W.n[F1], &W.n[F2], &W.n[S1], &W.n[S2],
			 &W.n[A1], &W.n[A2], NULL);
	assert_int_equal(simnode_wait(all_held, NULL, 30000), 0);
	assert_int_equal(simnode_wait(classified, NULL, 30000), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

/* A circuit from x to y through R: "relay:PORT". */
static void circuit(struct simnode *x, struct simnode *y, char *out, size_t len)
{
	char rel[160];
	json_t *o;

	snprintf(rel, sizeof(rel), "%s@198.51.101.3:4433", W.r.key);
	o = simnode_ok(x, "POST", "/v1/relay/connect",
		       json_pack("{s:s,s:s}", "relay", rel, "target", y->key));
	snprintf(out, len, "%s", json_string_value(json_object_get(o, "addr")));
	json_decref(o);
}

/* The path object of x's connection to key over relay_addr (new ref). */
static json_t *conn_path(struct simnode *x, const char *key, const char *relay_addr,
			 json_int_t *id)
{
	json_t *o = simnode_ok(x, "GET", "/v1/quic/conns", NULL), *c, *p = NULL;
	size_t i;

	json_array_foreach(json_object_get(o, "conns"), i, c) {
		if (strcmp(json_string_value(json_object_get(c, "peer_key")), key) ||
		    strcmp(json_string_value(json_object_get(c, "addr")), relay_addr))
			continue;
		p = json_incref(json_object_get(c, "path"));
		if (id)
			*id = json_integer_value(json_object_get(c, "id"));
		break;
	}
	json_decref(o);
	return p;
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

/* Every pair reached its outcome (direct or failed) on the dialler. */
static int pairs_settled(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < NPAIRS; i++) {
		struct pair *p = &P[i];
		json_t *pa = conn_path(&W.n[p->d], W.n[p->t].key, p->relay_addr, &p->conn);
		const char *st = str(pa, "state");

		snprintf(p->state, sizeof(p->state), "%s", st);
		p->attempt = json_integer_value(json_object_get(pa, "attempt"));
		if (!strcmp(st, "direct"))
			p->to_direct_ms = json_integer_value(json_object_get(pa, "to_direct_ms"));
		snprintf(p->nat, sizeof(p->nat), "%s", str(pa, "nat"));
		snprintf(p->peer_nat, sizeof(p->peer_nat), "%s", str(pa, "peer_nat"));
		json_decref(pa);
		if (strcmp(p->state, "direct") && strcmp(p->state, "failed"))
			return 0;
	}
	return 1;
}

static json_int_t metric(struct simnode *x, const char *k)
{
	return simnode_get_int(x, "/v1/quic/stats", "total", k, NULL);
}

static void test_matrix(void **state)
{
	(void)state;
	for (size_t i = 0; i < NPAIRS; i++) {
		struct pair *p = &P[i];
		char target[200];
		json_t *o, *pa;

		circuit(&W.n[p->d], &W.n[p->t], p->relay_addr, sizeof(p->relay_addr));
		snprintf(target, sizeof(target), "%s@%s", W.n[p->t].key, p->relay_addr);
		o = simnode_ok(&W.n[p->d], "POST", "/v1/quic/ping",
			       json_pack("{s:s,s:b,s:i}", "addr", target, "keep", 1, "timeout_ms",
					 10000));
		json_decref(o);
		/* It starts on the relay (no direct address yet). */
		pa = conn_path(&W.n[p->d], W.n[p->t].key, p->relay_addr, NULL);
		assert_non_null(pa);
		assert_string_equal(str(pa, "relay"), p->relay_addr);
		json_decref(pa);
	}
	/* Three attempts (0, +5 s, +15 s) of 1.5 s each bound a failure. */
	assert_int_equal(simnode_wait(pairs_settled, NULL, 60000), 0);
	printf("| dialler | target | outcome | attempt | ms to direct | classes reported |\n");
	for (size_t i = 0; i < NPAIRS; i++) {
		struct pair *p = &P[i];

		printf("| %s (%s) | %s (%s) | %s | %lld | %lld | %s / %s |\n", names[p->d],
		       cls[p->d], names[p->t], cls[p->t], p->state,
		       (long long)p->attempt,
		       p->direct ? (long long)p->to_direct_ms : -1LL, p->nat, p->peer_nat);
	}
	for (size_t i = 0; i < NPAIRS; i++) {
		struct pair *p = &P[i];
		json_t *pa;

		assert_string_equal(p->state, p->direct ? "direct" : "failed");
		if (p->direct) {
			/* The target moved too: it shows the same connection direct. */
			pa = conn_path(&W.n[p->t], W.n[p->d].key, p->relay_addr, NULL);
			assert_non_null(pa);
			assert_string_equal(str(pa, "state"), "direct");
			json_decref(pa);
			continue;
		}
		/* A failure is reported with both classes, on both sides. */
		assert_string_equal(p->nat, nat_name(p->d));
		assert_string_equal(p->peer_nat, nat_name(p->t));
		pa = conn_path(&W.n[p->t], W.n[p->d].key, p->relay_addr, NULL);
		assert_non_null(pa);
		assert_string_equal(str(pa, "state"), "failed");
		assert_string_equal(str(pa, "nat"), nat_name(p->t));
		assert_string_equal(str(pa, "peer_nat"), nat_name(p->d));
		json_decref(pa);
	}
	/* Failed pairs still work through the relay (a fresh connection on
	 * the same circuit address answers an echo). */
	for (size_t i = 0; i < NPAIRS; i++) {
		char target[200];
		json_t *o;

		if (P[i].direct)
			continue;
		snprintf(target, sizeof(target), "%s@%s", W.n[P[i].t].key, P[i].relay_addr);
		o = simnode_ok(&W.n[P[i].d], "POST", "/v1/quic/ping",
			       json_pack("{s:s,s:i}", "addr", target, "timeout_ms", 10000));
		assert_string_equal(str(o, "peer_key"), W.n[P[i].t].key);
		json_decref(o);
	}
	assert_true(metric(&W.n[S1], "punch_direct") >= 1);
	assert_true(metric(&W.n[A1], "punch_failed") >= 1);
	assert_true(metric(&W.n[N1], "path_switches") >= 4);
}

/* R's packet count (both ends) of the circuit on relay_addr's port. */
static json_int_t circuit_pkts(const char *relay_addr)
{
	json_t *o = simnode_ok(&W.r, "GET", "/v1/relay/circuits", NULL), *c;
	const char *colon = strrchr(relay_addr, ':');
	json_int_t port = colon ? atoi(colon + 1) : -1, n = -1;
	size_t i;

	json_array_foreach(json_object_get(o, "circuits"), i, c) {
		json_t *e = json_object_get(c, "ends");

		if (json_integer_value(json_object_get(c, "port")) != port)
			continue;
		n = json_integer_value(json_object_get(json_array_get(e, 0), "pkts")) +
		    json_integer_value(json_object_get(json_array_get(e, 1), "pkts"));
	}
	json_decref(o);
	return n;
}

/* R's drops (both ends) of the circuit on relay_addr's port; -1: none. */
static json_int_t circuit_drops(const char *relay_addr)
{
	json_t *o = simnode_ok(&W.r, "GET", "/v1/relay/circuits", NULL), *c;
	const char *colon = strrchr(relay_addr, ':');
	json_int_t port = colon ? atoi(colon + 1) : -1, n = -1;
	size_t i;

	json_array_foreach(json_object_get(o, "circuits"), i, c) {
		json_t *e = json_object_get(c, "ends");

		if (json_integer_value(json_object_get(c, "port")) != port)
			continue;
		n = json_integer_value(json_object_get(json_array_get(e, 0), "drops")) +
		    json_integer_value(json_object_get(json_array_get(e, 1), "drops"));
	}
	json_decref(o);
	return n;
}

struct grow {
	struct pair *p;
	json_int_t from;
};

static json_int_t direct_tx(struct pair *p)
{
	json_t *pa = conn_path(&W.n[p->d], W.n[p->t].key, p->relay_addr, NULL);
	json_int_t n = json_integer_value(json_object_get(pa, "direct_tx"));

	json_decref(pa);
	return n;
}

static int direct_grew(void *arg)
{
	struct grow *g = arg;

	return direct_tx(g->p) >= g->from + 3;
}

/* The relay carried nothing while the dialler sent three more datagrams
 * on the direct path. */
struct quiet {
	struct grow g;
	json_int_t before;
};

static int relay_quiet_window(void *arg)
{
	struct quiet *q = arg;

	if (!direct_grew(&q->g))
		return 0;
	if (circuit_pkts(q->g.p->relay_addr) == q->before)
		return 1;
	/* Something crossed the relay during the window: what was in flight
	 * at the switch (the target moves when the dialler's packets reach it
	 * on the new path), or a relay still in use. Start a new window; a
	 * relay that keeps carrying never gives one and the wait fails. */
	q->before = circuit_pkts(q->g.p->relay_addr);
	q->g.from = direct_tx(q->g.p);
	return 0;
}

static void test_relay_quiet(void **state)
{
	struct pair *p = &P[7]; /* S1 -> S2 */
	struct quiet q = { .g = { .p = p } };

	(void)state;
	assert_string_equal(p->state, "direct");
	q.before = circuit_pkts(p->relay_addr);
	assert_true(q.before > 0);
	/* Keepalives (1 s) keep flowing, on the direct path: a window of three
	 * more datagrams there with none more through the relay, within 30 s
	 * (a loaded machine may deliver what was in flight at the switch
	 * late; the first window may see it). */
	q.g.from = direct_tx(p);
	assert_int_equal(simnode_wait(relay_quiet_window, &q, 30000), 0);
}

static void test_bulk_across_switch(void **state)
{
	char addr[64], target[200];
	json_int_t direct0 = metric(&W.n[S2], "punch_direct");
	json_t *o;

	(void)state;
	/* S2 -> F2: 16 MiB through a circuit policed to 400 packets/s (about
	 * 35 s on the relay alone): the punch lands while the bytes flow. */
	circuit(&W.n[S2], &W.n[F2], addr, sizeof(addr));
	snprintf(target, sizeof(target), "%s@%s", W.n[F2].key, addr);
	o = simnode_ok(&W.n[S2], "POST", "/v1/quic/bench",
		       json_pack("{s:s,s:I,s:b,s:i}", "addr", target, "bytes",
				 (json_int_t)16 << 20, "verify", 1, "timeout_ms", 120000));
	assert_true(json_is_true(json_object_get(o, "ok")));
	assert_int_equal(json_integer_value(json_object_get(o, "peer_count")), 16 << 20);
	json_decref(o);
	assert_true(metric(&W.n[S2], "punch_direct") >= direct0 + 1);
}

/* N1 -> N2 dialled by bare key (docs/CONNECTIVITY.md "Resolution and dial
 * by key"): N2's record lists R (relay.reserve = always), so the
 * connection is set up through a circuit of R, never at N2's direct
 * address first (with the old order N2's public address answered the
 * direct handshake: this test fails there), and hole punching then moves
 * it to a direct path. */
struct by_key {
	char seen[16][64]; /* addresses of N1's connections to N2 before */
	unsigned int nseen;
	char new_addr[64];
	int bad;  /* a connection to N2 not through R */
	int done; /* the new connection is direct */
};

static int by_key_scan(void *arg)
{
	struct by_key *b = arg;
	json_t *o = simnode_ok(&W.n[N1], "GET", "/v1/quic/conns", NULL), *c;
	size_t i;

	json_array_foreach(json_object_get(o, "conns"), i, c) {
		const char *a = str(c, "addr");
		unsigned int k;

		if (strcmp(str(c, "peer_key"), W.n[N2].key))
			continue;
		if (strncmp(a, "198.51.101.3:", 13)) {
			char *d = json_dumps(c, JSON_COMPACT);

			fprintf(stderr, "by_key: N1 has a connection to N2 not through R: %s\n", d);
			free(d);
			b->bad = 1;
		}
		for (k = 0; k < b->nseen && strcmp(b->seen[k], a); k++)
			;
		if (k < b->nseen)
			continue;
		snprintf(b->new_addr, sizeof(b->new_addr), "%s", a);
		b->done = !strcmp(str(json_object_get(c, "path"), "state"), "direct");
	}
	json_decref(o);
	return b->done;
}

/* N1's resolution of N2, past its cache (the lookup's end: the latest
 * seq), lists R. N2 put its record before its reservation was held, and a
 * DHT node may still hold that first one: the first answer of a lookup may
 * be it (then the dial goes direct, correctly for what it was told). */
static int record_lists_relay(void *arg)
{
	(void)arg;
	return simnode_lists_relay(&W.n[N1], W.n[N2].key, W.r.key);
}

static void test_by_key_relay_first(void **state)
{
	struct by_key b = { 0 };
	json_t *o, *c;
	size_t i;
	json_int_t early0 = metric(&W.n[N1], "punch_early");

	(void)state;
	assert_int_equal(simnode_wait(record_lists_relay, NULL, 30000), 0);
	o = simnode_ok(&W.n[N1], "GET", "/v1/quic/conns", NULL);
	json_array_foreach(json_object_get(o, "conns"), i, c) {
		if (!strcmp(str(c, "peer_key"), W.n[N2].key) && b.nseen < 16)
			snprintf(b.seen[b.nseen++], sizeof(b.seen[0]), "%s", str(c, "addr"));
	}
	json_decref(o);
	o = simnode_ok(&W.n[N1], "POST", "/v1/quic/ping",
		       json_pack("{s:s,s:b,s:i}", "addr", W.n[N2].key, "keep", 1, "timeout_ms",
				 10000));
	assert_string_equal(str(o, "peer_key"), W.n[N2].key);
	/* The steps, in order, from the call: record and circuit, then the
	 * handshake, then the echo (the first byte back). */
	assert_true(json_integer_value(json_object_get(o, "resolve_us")) > 0);
	assert_true(json_integer_value(json_object_get(o, "first_byte_us")) >=
		    json_integer_value(json_object_get(o, "resolve_us")) +
			json_integer_value(json_object_get(o, "handshake_us")) +
			json_integer_value(json_object_get(o, "rtt_us")));
	json_decref(o);
	assert_int_equal(simnode_wait(by_key_scan, &b, 20000), 0);
	assert_false(b.bad);
	assert_true(!strncmp(b.new_addr, "198.51.101.3:", 13));
	/* N1 knew it dialled R's circuit: it punched at the handshake's
	 * end, not after N2's observed address (punch_early). */
	assert_int_equal(metric(&W.n[N1], "punch_early"), early0 + 1);
	/* The dialler sent nothing into the circuit before both ends were
	 * bound (R answers a bind only then): no datagram of the handshake
	 * was dropped at R, so no QUIC retransmission timer (about 1 s for an
	 * Initial) was waited for. With the holder's bind at R's next tick
	 * and an immediate answer, the dialler's first Initial was dropped. */
	assert_int_equal(circuit_drops(b.new_addr), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matrix),
		cmocka_unit_test(test_relay_quiet),
		cmocka_unit_test(test_bulk_across_switch),
		cmocka_unit_test(test_by_key_relay_first),
	};

	return cmocka_run_group_tests_name("sim_punch", tests, setup, teardown);
}
