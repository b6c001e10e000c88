// SPDX-License-Identifier: MIT
/*
 * Resolving a key in a node's first seconds (issue 30, item 6;
 * docs/CONNECTIVITY.md "Resolution and dial by key"), on simnet, no root:
 * a bootstrap B, a publisher P, a subscriber S, and a node A.
 *
 * - A cannot reach B at first (its routing table stays empty): its
 *   resolve of P's key has no node to ask, 503 `no_nodes`, and nothing is
 *   remembered. Once A reaches B, its next resolve finds P's record at
 *   once. Before, the empty table's answer was taken for "no record" and
 *   cached for CONN_NEG_TTL_S (30 s).
 * - S resolved P's key before P's record was in the DHT (P cut from B):
 *   the miss is cached. P joins, publishes a share; S follows it. The
 *   watch S keeps on P (dial by key, content/watch.c) asks past the cached
 *   miss: its first dial reaches P. Before, it failed on the miss, again
 *   5 s later, and the watch came up 30 s later (test_content_push waited
 *   35 s for it on a busy machine).
 * - M holds a reservation with the relay R while R's record is not in the
 *   DHT yet (R cut from B): M's mailbox, which takes its relays that keep
 *   a mailbox as its anchors, finds no record for R and the miss is
 *   cached. Once R's record is there, M's next refresh (a fetch) takes R
 *   at once. Before, it kept the miss 30 s (test_mailbox waited 30 s for
 *   its anchor on a busy machine).
 * - Q, behind a filtering NAT with a reservation at R, is cut from B: S
 *   resolves Q's key and caches the miss. Q joins and publishes a service;
 *   S finds it by name, the announce's address gives nothing (Q's NAT),
 *   and Q's key claim is resolved past S's cached miss: found and called
 *   through R. Before, the claim's dial took the miss ("no address") for
 *   CONN_NEG_TTL_S, and a call by key (svc_calls.c) likewise.
 */
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

#define A_IP "198.51.102.7"
#define P_IP "198.51.102.4"
#define QNAT_IP "198.51.103.100"

static struct world W;
static struct simnode B, P, S, A, R, M, Q;
static char pkey[65];

/* POST /v1/node/resolve of P's key on x (fresh: past x's cache): the
 * HTTP status, *out the body. */
static int resolve(struct simnode *x, int fresh, json_t **out)
{
	return simnode_ctl(x, "POST", "/v1/node/resolve",
			   json_pack("{s:s,s:b}", "key", pkey, "fresh", fresh), out);
}

static int resolves_fresh(void *arg)
{
	return resolve(arg, 1, NULL) == 200;
}

static int resolves_r_fresh(void *arg)
{
	return simnode_ctl(arg, "POST", "/v1/node/resolve",
			   json_pack("{s:s,s:b}", "key", R.key, "fresh", 1), NULL) == 200;
}

static void cut(const char *x, const char *y, int on)
{
	struct simnet_link loss = { .loss_ppm = on ? 1000000 : 0 };
	struct io_addr a, b;

	assert_int_equal(io_addr_parse(&a, x, 0), 0);
	assert_int_equal(io_addr_parse(&b, y, 0), 0);
	assert_int_equal(simnet_link_set(W.sn, &a, &b, &loss), 0);
}

static void join(struct simnode *x)
{
	json_decref(simnode_ok(x, "POST", "/v1/dht/ping",
			       json_pack("{s:s}", "addr", WORLD_BOOT_IP ":6881")));
	assert_true(simnode_get_int(x, "/v1/dht/status", "nodes4", NULL) >= 1);
}

static int setup(void **state)
{
	(void)state;
	world_new(&W, 4141);
	world_bootstrap(&W, &B, NULL);
	world_node(&W, &S, "S", "198.51.102.5", NULL, NULL);
	cut(P_IP, WORLD_BOOT_IP, 1);
	world_node(&W, &P, "P", P_IP, NULL, NULL);
	snprintf(pkey, sizeof(pkey), "%s", P.key);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W);
	return 0;
}

static int watching(void *arg)
{
	(void)arg;
	return simnode_get_int(&S, "/v1/content/stats", "watch", "watching", NULL) == 1;
}

static void test_watch_past_cached_miss(void **state)
{
	char head[160], *dir;
	json_t *o;

	(void)state;
	/* P's record is nowhere yet: S's lookup finds nothing and caches it */
	assert_int_equal(simnode_get_int(&P, "/v1/dht/status", "nodes4", NULL), 0);
	assert_int_equal(resolve(&S, 0, NULL), 404);
	cut(P_IP, WORLD_BOOT_IP, 0);
	join(&P);
	assert_int_equal(simnode_wait(resolves_fresh, &B, 60000), 0);
	assert_int_equal(resolve(&S, 0, NULL), 404); /* still the cached miss */

	dir = tu_tmpdir();
	assert_int_equal(tu_write(dir, "today.txt", "first\n", 6, 0644), 0);
	o = simnode_ok(&P, "POST", "/v1/content/add",
		       json_pack("{s:[s],s:s}", "paths", dir, "name", "news"));
	json_decref(o);
	snprintf(head, sizeof(head), "%s/news", P.key);
	json_decref(simnode_ok(&S, "POST", "/v1/content/subscribe", json_pack("{s:s}", "head", head)));
	assert_int_equal(simnode_wait(watching, NULL, 60000), 0);
	/* the first dial went past the miss (not a retry after it) */
	assert_int_equal(simnode_get_int(&S, "/v1/content/stats", "watch", "dial_failures", NULL), 0);
	tu_rmrf_free(dir);
}

static void test_resolve_before_join(void **state)
{
	json_t *err = NULL;

	(void)state;
	cut(A_IP, WORLD_BOOT_IP, 1);
	world_node(&W, &A, "A", A_IP, NULL, NULL);
	assert_int_equal(simnode_get_int(&A, "/v1/dht/status", "nodes4", NULL), 0);

	/* no node to ask: said so, and nothing learned */
	assert_int_equal(resolve(&A, 0, &err), 503);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(err, "error"), "code")), "no_nodes");
	json_decref(err);

	/* A joins: its next resolve asks the DHT, not a remembered miss */
	cut(A_IP, WORLD_BOOT_IP, 0);
	join(&A);
	assert_int_equal(resolve(&A, 0, NULL), 200);
}

static int m_holds(void *arg)
{
	json_t *o = simnode_ok(&M, "GET", "/v1/relay/status", NULL);
	const char *st = json_string_value(
	    json_object_get(json_array_get(json_object_get(o, "use"), 0), "state"));
	int held = st && !strcmp(st, "held");

	(void)arg;
	json_decref(o);
	return held;
}

/* M's mailbox refreshed (a fetch), then where its anchors came from. */
static int m_anchors_from_relays(void)
{
	json_t *o;
	const char *from;
	int relays;

	json_decref(simnode_ok(&M, "POST", "/v1/msg/fetch", json_object()));
	o = simnode_ok(&M, "GET", "/v1/mailbox/status", NULL);
	from = json_string_value(json_object_get(o, "anchors_from"));
	relays = from && !strcmp(from, "relays");
	json_decref(o);
	return relays;
}

static void test_mailbox_relay_past_cached_miss(void **state)
{
	const char *use[] = { W.use, "relay.reserve=always", NULL };

	(void)state;
	cut(WORLD_RELAY_IP, WORLD_BOOT_IP, 1);
	world_relay(&W, &R, NULL);
	world_node(&W, &M, "M", "198.51.102.9", NULL, use);
	assert_int_equal(simnode_wait(m_holds, NULL, 60000), 0);
	assert_false(m_anchors_from_relays()); /* R's record is nowhere yet */
	cut(WORLD_RELAY_IP, WORLD_BOOT_IP, 0);
	join(&R);
	assert_int_equal(simnode_wait(resolves_r_fresh, &B, 60000), 0);
	assert_true(m_anchors_from_relays());
}

/* POST /v1/node/resolve of key on x, from x's cache if it has it. */
static int resolve_key(struct simnode *x, const char *key)
{
	return simnode_ctl(x, "POST", "/v1/node/resolve", json_pack("{s:s}", "key", key), NULL);
}

static int q_lists_r(void *arg)
{
	(void)arg;
	return simnode_lists_relay(&B, Q.key, R.key);
}

/* Q's announce of its one service was stored. */
static int q_announced(void *arg)
{
	json_t *o = simnode_ok(&Q, "GET", "/v1/svc/ls", NULL);
	int ok = json_integer_value(json_object_get(
		     json_array_get(json_object_get(o, "services"), 0), "announced")) > 0;

	(void)arg;
	json_decref(o);
	return ok;
}

static void test_svc_claim_past_cached_miss(void **state)
{
	const char *use[] = { W.use, "relay.reserve=always", NULL };
	struct simnet_nat *nat = world_nat(&W, QNAT_IP, SIMNET_NAT_APDF, SIMNET_NAT_MAP_ADM);
	json_t *o, *r;

	(void)state;
	cut(QNAT_IP, WORLD_BOOT_IP, 1);
	world_node(&W, &Q, "Q", "10.0.3.4", nat, use);
	assert_int_equal(resolve_key(&S, Q.key), 404); /* Q's record is nowhere yet */
	cut(QNAT_IP, WORLD_BOOT_IP, 0);
	join(&Q);
	assert_int_equal(simnode_wait(q_lists_r, NULL, 60000), 0);
	json_decref(simnode_ok(&Q, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s}", "name", "echo", "backend", "builtin")));
	assert_int_equal(simnode_wait(q_announced, NULL, 60000), 0);
	assert_int_equal(resolve_key(&S, Q.key), 404); /* still the cached miss */

	o = simnode_ok(&S, "GET", "/v1/svc/find/echo", NULL);
	r = json_array_get(json_object_get(o, "results"), 0);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "owner")), Q.key);
	json_decref(o);
	assert_int_equal(simnode_get_int(&S, "/v1/svc/stats", "fabric", "find_by_key", "found",
					 NULL),
			 1);
	o = simnode_ok(&S, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s,s:i}", "name", "echo", "method", "ping", "data",
				 "past the miss", "timeout_ms", 20000));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	assert_string_equal(json_string_value(json_object_get(o, "peer")), Q.key);
	json_decref(o);
	assert_int_equal(resolve_key(&S, Q.key), 200); /* the lookup replaced the miss */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_watch_past_cached_miss),
		cmocka_unit_test(test_resolve_before_join),
		cmocka_unit_test(test_mailbox_relay_past_cached_miss),
		cmocka_unit_test(test_svc_claim_past_cached_miss),
	};

	return cmocka_run_group_tests_name("sim_resolve_unjoined", tests, setup, teardown);
}
