// SPDX-License-Identifier: MIT
/*
 * The relay across complete nodes in this process (simnet, no root):
 *
 *   B  198.51.100.2  public DHT bootstrap
 *   R  198.51.101.3  public relay (relay.enable; circuit_bytes 4 MiB,
 *                    circuits_per_reservation 3)
 *   D  10.0.0.4      behind an endpoint-independent NAT (APDF filtering)
 *   E  10.0.1.5      behind an address-dependent NAT (APDF filtering)
 *   F  10.0.2.6      behind an EIM NAT, relay.accept = false
 *   G  10.0.3.7      behind an EIM NAT, no relay.use: finds R in the DHT
 *   H  198.51.100.8  public; node.bind=203.0.113.9, so its service
 *                    descriptors list an endpoint nobody answers at
 *
 * D, E and F are unreachable from outside (their NATs filter), find
 * themselves behind NAT (relay.reserve = auto) and take a reservation with
 * R (relay.use; G finds R under the relay infohash in the DHT); their node
 * records list R. D then reaches E by key alone:
 * `quic ping KEY` and `content get --from KEY` (1 MiB, verified) go
 * through a circuit of R; R's control plane and data plane count it.
 * Refusals are clear codes: no_reservation (a key R holds nothing for),
 * refused (F refuses), not_relay (B does not relay), circuits_full
 * (circuits_per_reservation). A transfer past circuit_bytes is cut by the
 * data plane (ended by "byte limit") and R tells the holder (ENDED).
 * Expiry: the simulated clock jumps
 * past relay.reservation_ttl_s, R expires the reservations, the holders
 * take them again. Teardown: F vanishes, its reservation ends when its
 * refreshes stop. Calls by key: E calls H's service, whose descriptor's
 * endpoint does not answer; the call goes to H's key (svc stats by_key).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "weft/quic_node.h"
#include "weft/simnet.h"
#include "weft/svc.h"
#include "weft/util.h"
#include "world.h"

struct scene {
	struct world w; /* the network and its nodes (tests/lib/world.h) */
	struct simnet_nat *eim, *adm, *eim2, *eim3;
	struct simnode b, r, d, e, f, g, h;
};

static struct scene W;

static const char *use_state(struct simnode *x, char *buf, size_t len)
{
	json_t *o = simnode_ok(x, "GET", "/v1/relay/status", NULL);
	json_t *u = json_array_get(json_object_get(o, "use"), 0);

	snprintf(buf, len, "%s", u ? json_string_value(json_object_get(u, "state")) : "none");
	json_decref(o);
	return buf;
}

static int all_held(void *arg)
{
	char a[16], b[16], c[16];

	(void)arg;
	return !strcmp(use_state(&W.d, a, sizeof(a)), "held") &&
	       !strcmp(use_state(&W.e, b, sizeof(b)), "held") &&
	       !strcmp(use_state(&W.f, c, sizeof(c)), "held");
}

/* x's record, as resolved (fresh) from `from`, lists R as its relay. */
static int lists_relay(struct simnode *from, struct simnode *x)
{
	json_t *o = NULL, *rel;
	int ok = 0;

	if (simnode_ctl(from, "POST", "/v1/node/resolve",
			json_pack("{s:s,s:b}", "key", x->key, "fresh", 1), &o) == 200) {
		rel = json_array_get(json_object_get(o, "relays"), 0);
		ok = rel && !strcmp(json_string_value(json_object_get(rel, "key")), W.r.key) &&
		     !strcmp(json_string_value(json_object_get(rel, "addr")), "198.51.101.3:4433");
	}
	json_decref(o);
	return ok;
}

static int records_list_relay(void *arg)
{
	(void)arg;
	return lists_relay(&W.b, &W.d) && lists_relay(&W.b, &W.e) && lists_relay(&W.b, &W.f) &&
	       lists_relay(&W.b, &W.g);
}

static int g_holds(void *arg)
{
	json_t *o = simnode_ok(&W.g, "GET", "/v1/relay/status", NULL);
	json_t *u = json_array_get(json_object_get(o, "use"), 0);
	int ok = u && !strcmp(json_string_value(json_object_get(u, "state")), "held") &&
		 !strcmp(json_string_value(json_object_get(u, "source")), "dht") &&
		 !strcmp(json_string_value(json_object_get(u, "key")), W.r.key);

	(void)arg;
	json_decref(o);
	return ok;
}

static int setup(void **state)
{
	/* H's descriptor lists 203.0.113.9:4433 (node.bind), where nothing
	 * answers; it serves at 198.51.100.8 (the DHT announce's address). */
	/* H also holds a reservation with R (relay.reserve = always), so
	 * that its record lists R: a call by its key may try a circuit. */
	const char *pubh[] = { "node.bind=203.0.113.9", W.w.use, "relay.reserve=always", NULL };
	static const char *const relay[] = { "relay.circuit_bytes=4194304",
					     "relay.circuits_per_reservation=3",
					     "relay.reservation_ttl_s=15", NULL };
	const char *natd[] = { W.w.use, NULL };
	const char *natf[] = { W.w.use, "relay.accept=false", NULL };

	(void)state;
	world_new(&W.w, 1414);
	world_bootstrap(&W.w, &W.b, NULL);
	world_relay(&W.w, &W.r, relay);
	W.eim = world_nat(&W.w, "198.51.102.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.d, "D", "10.0.0.4", W.eim, natd);
	W.adm = world_nat(&W.w, "198.51.103.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_ADM);
	world_node(&W.w, &W.e, "E", "10.0.1.5", W.adm, natd);
	W.eim2 = world_nat(&W.w, "198.51.104.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.f, "F", "10.0.2.6", W.eim2, natf);
	W.eim3 = world_nat(&W.w, "198.51.105.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_EIM);
	world_node(&W.w, &W.g, "G", "10.0.3.7", W.eim3, NULL);
	world_node(&W.w, &W.h, "H", "198.51.100.8", NULL, pubh);
	world_dht_formed(1, 30000, &W.r, &W.d, &W.e, &W.f, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

static int reserved_at_r(const char *key)
{
	return simnode_relay_holds(&W.r, key);
}

static void test_reservations(void **state)
{
	json_t *o;

	(void)state;
	/* Each NATed node holds a reservation with R... */
	assert_int_equal(simnode_wait(all_held, NULL, 30000), 0);
	assert_true(reserved_at_r(W.d.key));
	assert_true(reserved_at_r(W.e.key));
	assert_true(reserved_at_r(W.f.key));
	/* ...the public ones take none (B has no relay.use; R is public). */
	assert_false(reserved_at_r(W.b.key));
	/* G has no relay.use: it finds R under SHA-1("weft:relay") in the DHT
	 * (R announces itself) and reserves there too. */
	assert_int_equal(simnode_wait(g_holds, NULL, 60000), 0);
	assert_true(reserved_at_r(W.g.key));
	assert_true(simnode_get_int(&W.r, "/v1/relay/status", "dht", "announces_stored", NULL) >=
		    1);
	o = simnode_ok(&W.r, "GET", "/v1/relay/status", NULL);
	assert_true(json_is_true(json_object_get(o, "enabled")));
	assert_int_equal(json_integer_value(json_object_get(o, "reservations")), 5);
	assert_int_equal(json_integer_value(
			     json_object_get(json_object_get(o, "limits"), "circuits_per_reservation")),
			 3);
	json_decref(o);
	o = simnode_ok(&W.d, "GET", "/v1/relay/status", NULL);
	assert_false(json_is_true(json_object_get(o, "enabled")));
	json_decref(o);
	/* ...and their records list R (republished when the relay set
	 * changed: at most once per 10 s, the clock jumps past it). */
	simnet_advance(W.w.sn, 11000000000ULL);
	assert_int_equal(simnode_wait(records_list_relay, NULL, 30000), 0);
}

static json_int_t r_counter(const char *name)
{
	return simnode_get_int(&W.r, "/v1/relay/status", "counters", name, NULL);
}

static void test_ping_by_key(void **state)
{
	json_int_t before = r_counter("circuits");
	json_t *o, *c, *x;
	size_t i;
	int found = 0;

	(void)state;
	/* D pings E by key: E's record lists R, so the ping goes through a
	 * circuit of R at once (nothing to E's direct address first); the
	 * key is checked end to end. */
	o = simnode_ok(&W.d, "POST", "/v1/quic/ping",
		       json_pack("{s:s,s:i}", "addr", W.e.key, "timeout_ms", 5000));
	assert_string_equal(json_string_value(json_object_get(o, "peer_key")), W.e.key);
	json_decref(o);
	assert_true(r_counter("circuits") >= before + 1);
	/* R lists the circuit (D -> E) with data-plane counters. */
	o = simnode_ok(&W.r, "GET", "/v1/relay/circuits", NULL);
	c = json_object_get(o, "circuits");
	json_array_foreach(c, i, x) {
		const char *dk = json_string_value(json_object_get(x, "dialler"));
		const char *tk = json_string_value(json_object_get(x, "target"));

		if (dk && tk && !strcmp(dk, W.d.key) && !strcmp(tk, W.e.key)) {
			json_t *ends = json_object_get(x, "ends");

			found = 1;
			assert_true(json_is_true(json_object_get(json_array_get(ends, 0), "bound")));
			assert_true(json_is_true(json_object_get(json_array_get(ends, 1), "bound")));
			assert_true(json_integer_value(
					json_object_get(json_array_get(ends, 0), "pkts")) > 0);
			assert_true(json_integer_value(
					json_object_get(json_array_get(ends, 1), "pkts")) > 0);
		}
	}
	assert_true(found);
	json_decref(o);
	/* D holds a reservation with R: it asked for the circuit on that
	 * connection (no second handshake with R), which stays up. */
	assert_true(simnode_get_int(&W.d, "/v1/relay/status", "counters", "dials_shared", NULL) >=
		    1);
	assert_true(all_held(NULL));
	/* The NATed ends' binds were answered. */
	assert_true(simnode_get_int(&W.d, "/v1/relay/status", "counters", "binds_ok", NULL) >= 1);
	assert_true(simnode_get_int(&W.e, "/v1/relay/status", "counters", "binds_ok", NULL) >= 1);
	assert_true(simnode_get_int(&W.e, "/v1/relay/status", "counters", "offers_accepted",
				    NULL) >= 1);
}

/* The streams open on x's connection to y (-1: no connection). */
static json_int_t streams_to(struct simnode *x, const char *ykey)
{
	json_t *o = simnode_ok(x, "GET", "/v1/quic/conns", NULL), *c;
	json_int_t n = -1;
	size_t i;

	json_array_foreach(json_object_get(o, "conns"), i, c) {
		const char *k = json_string_value(json_object_get(c, "peer_key"));

		if (k && !strcmp(k, ykey))
			n = json_integer_value(json_object_get(c, "streams_open"));
	}
	json_decref(o);
	return n;
}

/* E's reservation connection with R carries one stream again: the
 * reservation's (the offer's stream closed at both ends). */
static int offer_streams_closed(void *arg)
{
	(void)arg;
	return streams_to(&W.e, W.r.key) == 1 && streams_to(&W.r, W.e.key) == 1;
}

/* Each offer R makes to a holder is a stream of the holder's reservation
 * connection: OFFER, ANSWER, CIRCUIT. Both ends must finish it, or every
 * dial by key leaves a stream open at R and at the holder for the
 * connection's life: memory on both, and once the connection's stream
 * limit is reached R can open no more offers to that holder (seen in the
 * lab's soak as the dial target's live heap growing by each dial). */
static void test_offer_streams_close(void **state)
{
	(void)state;
	/* the offer of test_ping_by_key's circuit (R allows E 3 circuits) */
	assert_true(simnode_get_int(&W.e, "/v1/relay/status", "counters", "offers_accepted",
				    NULL) >= 1);
	assert_int_equal(simnode_wait(offer_streams_closed, NULL, 10000), 0);
}

/* When the DHT lookup that put H's "echo" in E's directory cache began,
 * on the cache's clock (util_now_ms: the host's monotonic clock, which
 * simnet_advance does not move); 0: no lookup of this test's seen. */
static uint64_t echo_cached_ms;

/* E finds the "echo" H publishes (builtin). */
static int e_finds_echo(void *arg)
{
	json_int_t lookups = simnode_get_int(&W.e, "/v1/svc/stats", "fabric", "lookups", NULL);
	uint64_t t = util_now_ms();
	json_t *o = NULL;
	int st, n;

	(void)arg;
	st = simnode_ctl(&W.e, "GET", "/v1/svc/find/echo", NULL, &o);
	n = st == 200 ? (int)json_array_size(json_object_get(o, "results")) : 0;
	json_decref(o);
	if (n > 0 && simnode_get_int(&W.e, "/v1/svc/stats", "fabric", "lookups", NULL) != lookups)
		echo_cached_ms = t;
	return n > 0;
}

/* E's service pool holds no connection (the find's one closed). */
static int e_pool_empty(void *arg)
{
	(void)arg;
	return simnode_get_int(&W.e, "/v1/svc/stats", "fabric", "connections", NULL) == 0;
}

static json_int_t by_key(struct simnode *x, const char *k)
{
	return simnode_get_int(x, "/v1/svc/stats", "fabric", "by_key", k, NULL);
}

static void test_svc_by_key(void **state)
{
	json_int_t calls = by_key(&W.e, "calls"), ok = by_key(&W.e, "ok");
	json_t *o;
	int ready = 0;

	(void)state;
	json_decref(simnode_ok(&W.h, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s}", "name", "echo", "backend", "builtin")));
	/* The find's connection to H would carry the call (the pool reuses a
	 * connection proven to be the provider's key): the clock jumps past
	 * QUIC's idle timeout (30 s), which closes it. The descriptor must
	 * still be cached when the call picks it, or the call's own lookup
	 * fetches it again over a new connection to H and the call goes on
	 * that one: the cache keeps it SVC_DIR_DEFAULT_TTL_MS (60 s) of the
	 * host's clock, which the jumps do not move but a loaded host's slow
	 * waits do (a CI run took 102 s for this test, 37 s alone). */
	for (int round = 0; !ready && round < 3; round++) {
		/* A connection that something used again after the jump
		 * (a periodic refresh, a path attempt; under heavy load they
		 * all fall due right after it) idles out only 30 s of its
		 * clock later: jump again rather than wait for the wall
		 * clock (at most 3 jumps: nothing here recurs forever). */
		int jumps = 0, empty = 0;
		uint64_t age;

		assert_int_equal(simnode_wait(e_finds_echo, NULL, 30000), 0);
		while (!empty && jumps++ < 3) {
			simnet_advance(W.w.sn, 31000000000ULL);
			empty = simnode_wait(e_pool_empty, NULL, 20000) == 0;
		}
		age = util_now_ms() - echo_cached_ms;
		/* 20 s of the cache's life left for the call to pick it */
		ready = empty && age + 20000 < SVC_DIR_DEFAULT_TTL_MS;
		if (!ready && age < SVC_DIR_DEFAULT_TTL_MS)
			/* let it expire: the next find looks it up again */
			usleep((useconds_t)(SVC_DIR_DEFAULT_TTL_MS - age + 500) * 1000u);
	}
	assert_true(ready);
	/* E (behind its NAT) calls it: the descriptor's endpoint does not
	 * answer, H's key does (its node record's address). */
	o = simnode_ok(&W.e, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s,s:i}", "name", "echo", "method", "ping", "data",
				 "by key", "timeout_ms", 20000));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	assert_string_equal(json_string_value(json_object_get(o, "peer")), W.h.key);
	assert_string_equal(json_string_value(json_object_get(o, "data")), "by key");
	json_decref(o);
	assert_true(by_key(&W.e, "calls") >= calls + 1); /* one per address tried */
	assert_int_equal(by_key(&W.e, "ok"), ok + 1);
}

static int h_held(void *arg)
{
	char a[16];

	(void)arg;
	return !strcmp(use_state(&W.h, a, sizeof(a)), "held");
}

/* A call by key never overruns the call's deadline: H is down, its
 * descriptor's endpoint and its record's address do not answer, and its
 * record lists R (whose offer to H would take RELAY_OFFER_MS to time out):
 * the record lookup, the direct attempts and the circuit share what is
 * left of the call's 4 s (plus the fabric's margins), instead of taking
 * their own 3 s + 10 s + 5 s. */
static void test_svc_by_key_deadline(void **state)
{
	json_t *o = NULL;
	const char *e;
	uint64_t t0;

	(void)state;
	assert_int_equal(simnode_wait(h_held, NULL, 30000), 0);
	assert_int_equal(simnode_wait(e_finds_echo, NULL, 30000), 0);
	simnet_host_set_down(W.h.host, 1);
	t0 = util_now_ms();
	simnode_ctl(&W.e, "POST", "/v1/svc/call",
		    json_pack("{s:s,s:s,s:s,s:i}", "name", "echo", "method", "ping", "data", "late",
			      "timeout_ms", 4000),
		    &o);
	assert_true(util_now_ms() - t0 <= 4000 + 2000);
	e = json_string_value(json_object_get(o, "error")); /* NULL: an error object */
	assert_true(!e || strcmp(e, "ok"));
	json_decref(o);
	simnet_host_set_down(W.h.host, 0);
}

struct jwait {
	struct simnode *x;
	char path[64];
};

static int job_finished(void *arg)
{
	struct jwait *jw = arg;
	json_t *o = simnode_ok(jw->x, "GET", jw->path, NULL);
	const char *st = json_string_value(json_object_get(o, "state"));
	int done = st && (!strcmp(st, "done") || !strcmp(st, "failed"));

	json_decref(o);
	return done;
}

static void test_content_via_relay(void **state)
{
	static uint8_t data[1 << 20], back[sizeof(data)];
	char path[1200], out[512], id[65];
	struct jwait jw = { .x = &W.d };
	json_t *o;
	FILE *f;

	(void)state;
	tu_fill(data, sizeof(data), 14);
	assert_int_equal(tu_write(W.e.dir, "blob.bin", data, sizeof(data), 0600), 0);
	snprintf(path, sizeof(path), "%s/blob.bin", W.e.dir);
	o = simnode_ok(&W.e, "POST", "/v1/content/add", json_pack("{s:[s]}", "paths", path));
	snprintf(id, sizeof(id), "%s",
		 json_string_value(json_object_get(json_array_get(json_object_get(o, "items"), 0),
						   "id")));
	json_decref(o);
	snprintf(out, sizeof(out), "%s/out", W.d.dir);
	assert_int_equal(mkdir(out, 0700), 0);
	o = simnode_ok(&W.d, "POST", "/v1/content/get",
		       json_pack("{s:s,s:s,s:[s]}", "id", id, "out", out, "from", W.e.key));
	snprintf(jw.path, sizeof(jw.path), "/v1/content/jobs/%lld",
		 (long long)json_integer_value(json_object_get(o, "job")));
	json_decref(o);
	assert_int_equal(simnode_wait(job_finished, &jw, 60000), 0);
	o = simnode_ok(&W.d, "GET", jw.path, NULL);
	if (strcmp(json_string_value(json_object_get(o, "state")), "done"))
		fail_msg("download failed: %s", json_dumps(o, JSON_COMPACT));
	json_decref(o);
	snprintf(path, sizeof(path), "%s/%s", out, id);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(back, 1, sizeof(back), f), sizeof(back));
	fclose(f);
	assert_memory_equal(back, data, sizeof(data));
}

/* POST /v1/relay/connect from `from` via relay `via` (a simnode) to target. */
static int connect_via(struct simnode *from, struct simnode *via, const char *target,
		       char *code, size_t len)
{
	char v[160];
	json_t *o = NULL;
	int st;

	snprintf(v, sizeof(v), "%s@%s:4433", via->key, via->ip);
	st = simnode_ctl(from, "POST", "/v1/relay/connect",
			 json_pack("{s:s,s:s}", "relay", v, "target", target), &o);
	snprintf(code, len, "%s",
		 st == 200 ? "ok"
			   : json_string_value(json_object_get(json_object_get(o, "error"), "code")));
	json_decref(o);
	return st;
}

static int circuits_to(const char *key)
{
	json_t *o = simnode_ok(&W.r, "GET", "/v1/relay/reservations", NULL), *x;
	size_t i;
	int n = -1;

	json_array_foreach(json_object_get(o, "reservations"), i, x)
		if (!strcmp(json_string_value(json_object_get(x, "key")), key))
			n = (int)json_integer_value(json_object_get(x, "circuits"));
	json_decref(o);
	return n;
}

static void test_refusals(void **state)
{
	char code[32];
	json_t *o = NULL;
	uint64_t t0;
	int n, st;

	(void)state;
	/* B holds no reservation at R. */
	assert_int_equal(connect_via(&W.d, &W.r, W.b.key, code, sizeof(code)), 502);
	assert_string_equal(code, "no_reservation");
	/* F refuses every circuit (relay.accept = false). */
	assert_int_equal(connect_via(&W.d, &W.r, W.f.key, code, sizeof(code)), 502);
	assert_string_equal(code, "refused");
	assert_true(simnode_get_int(&W.f, "/v1/relay/status", "counters", "offers_refused",
				    NULL) >= 1);
	/* Dialling F by key: its direct address does not answer (its NAT
	 * filters), its relay refuses: the clear refusal, named, within the
	 * stated deadline (QUIC_NODE_DIRECT_MS for the direct addresses, then
	 * the relay's answer, at most 10 s), not "unreachable" or a timeout. */
	t0 = util_now_ms();
	st = simnode_ctl(&W.d, "POST", "/v1/quic/ping", json_pack("{s:s}", "addr", W.f.key), &o);
	assert_true(util_now_ms() - t0 <= QUIC_NODE_DIRECT_MS + 10000);
	assert_int_equal(st, 502);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "code")),
			    "relay_refused");
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(o, "error"),
								 "message")),
			       "relay_refused: refused"));
	json_decref(o);
	/* B is no relay. */
	assert_int_equal(connect_via(&W.d, &W.b, W.e.key, code, sizeof(code)), 502);
	assert_string_equal(code, "not_relay");
	/* Circuits to E up to circuits_per_reservation (3), then refused.
	 * (Earlier circuits may end by idleness meanwhile: at most 3 + 3
	 * requests reach the limit whatever the count was.) */
	n = circuits_to(W.e.key);
	assert_true(n >= 0 && n <= 3);
	for (int k = 0; k < 6; k++) {
		st = connect_via(&W.d, &W.r, W.e.key, code, sizeof(code));
		if (st != 200)
			break;
		assert_string_equal(code, "ok");
	}
	assert_string_equal(code, "circuits_full");
	assert_true(simnode_get_int(&W.r, "/v1/relay/status", "counters", "refused",
				    "circuits_full", NULL) >= 1);
}

static int ended_by_bytes(void *arg)
{
	(void)arg;
	return r_counter("ended_bytes") >= 1;
}

static int holder_told_bytes(void *arg)
{
	(void)arg;
	return simnode_get_int(&W.d, "/v1/relay/status", "ended_by_relay", "byte_limit", NULL) >=
	       1;
}

static void test_byte_limit(void **state)
{
	json_t *o = NULL;
	int st;

	(void)state;
	/* Free E's circuits: R ends the idle ones; clear the slots by
	 * waiting for idle expiry would take a minute of real time, so the
	 * bench goes to D instead (D holds its own reservation). 8 MiB to a
	 * sink through a circuit of 4 MiB: cut by the data plane. */
	st = simnode_ctl(&W.e, "POST", "/v1/quic/bench",
			 json_pack("{s:s,s:s,s:I,s:i}", "addr", W.d.key, "type", "sink", "bytes",
				   (json_int_t)(8 << 20), "timeout_ms", 20000),
			 &o);
	/* The dialler learns why: R sent ENDED on E's CONNECT stream, E
	 * closed the connection through R:PORT with the relay's reason
	 * (QUIC_NODE_APP_RELAY_ENDED | byte_limit), not an idle timeout. */
	assert_int_equal(st, 502);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "code")),
			    "relay_circuit_ended");
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(o, "error"),
								 "message")),
			       "relay_circuit_ended: byte_limit"));
	json_decref(o);
	assert_true(simnode_get_int(&W.e, "/v1/relay/status", "ended_by_relay", "byte_limit", NULL) >=
		    1);
	assert_int_equal(simnode_wait(ended_by_bytes, NULL, 30000), 0);
	/* R told the holder why (ENDED on D's reservation stream). */
	assert_int_equal(simnode_wait(holder_told_bytes, NULL, 30000), 0);
	assert_int_equal(simnode_get_int(&W.d, "/v1/relay/status", "ended_by_relay", "lifetime",
					 NULL),
			 0);
	/* E asked for that circuit on its reservation connection with R:
	 * the circuit's end closed the CONNECT stream, not the connection.
	 * E's reservation was never lost. */
	{
		json_t *r = simnode_ok(&W.e, "GET", "/v1/relay/status", NULL);
		json_t *u = json_array_get(json_object_get(r, "use"), 0);

		assert_string_equal(json_string_value(json_object_get(u, "state")), "held");
		assert_int_equal(json_integer_value(json_object_get(u, "lost")), 0);
		json_decref(r);
	}
	/* ...at both ends: E ended its side after the ENDED, so only the
	 * reservation's stream is left on that connection. */
	assert_int_equal(simnode_wait(offer_streams_closed, NULL, 10000), 0);
}

static int not_reserved(void *arg)
{
	return !reserved_at_r(arg);
}

/* R's own view (a holder's "held" may predate the jump). */
static int all_reserved(void *arg)
{
	(void)arg;
	return reserved_at_r(W.d.key) && reserved_at_r(W.e.key) && reserved_at_r(W.f.key) &&
	       reserved_at_r(W.g.key);
}

static int expired_all(void *arg)
{
	(void)arg;
	return r_counter("expired") >= 4;
}

static void test_expiry_and_teardown(void **state)
{
	char fkey[65];

	(void)state;
	/* The clock jumps past reservation_ttl_s (15 s on R) but not past
	 * QUIC's idle timeout (30 s): R expires the four reservations at
	 * its next look; the holders take them again. */
	simnet_advance(W.w.sn, 16000000000ULL);
	assert_int_equal(simnode_wait(expired_all, NULL, 30000), 0);
	assert_int_equal(simnode_wait(all_reserved, NULL, 30000), 0);
	/* F vanishes without a word (its engine stops before its
	 * connections close): no refresh comes, R drops the reservation
	 * after its ttl while the others, refreshed, stay. */
	snprintf(fkey, sizeof(fkey), "%s", W.f.key);
	assert_true(reserved_at_r(fkey));
	simnode_free(&W.f);
	assert_int_equal(simnode_wait(not_reserved, fkey, 30000), 0);
	assert_true(reserved_at_r(W.d.key));
	assert_true(reserved_at_r(W.e.key));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reservations),	   cmocka_unit_test(test_ping_by_key),
		cmocka_unit_test(test_offer_streams_close),
		cmocka_unit_test(test_content_via_relay), cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_byte_limit),	   cmocka_unit_test(test_expiry_and_teardown),
		cmocka_unit_test(test_svc_by_key),	   cmocka_unit_test(test_svc_by_key_deadline),
	};

	return cmocka_run_group_tests_name("sim_relay", tests, setup, teardown);
}
