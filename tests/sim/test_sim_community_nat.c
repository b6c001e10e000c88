// SPDX-License-Identifier: MIT
/*
 * A community with a member behind a NAT (issue 34, docs/COMMUNITY.md),
 * in-process on the simulated network (no root):
 *
 *   B  198.51.100.2  public DHT bootstrap
 *   R  198.51.101.3  public relay (relay.enable; hence a mailbox host)
 *   A  198.51.102.3  public member, creates the community
 *   C  198.51.102.4  public member
 *   Q  10.0.0.4      member behind an address-dependent mapping with
 *                    address- and port-dependent filtering (outside
 *                    198.51.103.100), relay.use = R
 *   X  198.51.102.5  knows the id, not the key
 *
 * A, C and Q join by id and key and bind a share each: each sees the
 * other two and the three shares. Then A cannot reach Q's NAT at all (the
 * link between them loses everything) and C is down: a share A binds
 * reaches Q only by A's gossip, dialled by Q's key through a circuit of
 * R (the relay Q's node record lists). X, with another key, finds no
 * holder and sees nothing. In a second community, A is cut from Q's NAT
 * from the start (Q pulls from C only: A knows Q from its member record,
 * never from a connection); with C down, a share A binds still reaches Q
 * by key; with A cut from R too for the first 25 s, a later round of the
 * send still does. A closed community refuses Q without an invite and
 * admits it with one.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "weft/io.h"
#include "weft/simnet.h"
#include "world.h"

#define NAT_OUT "198.51.103.100"

struct scene {
	struct world w;
	struct simnet_nat *nat;
	struct simnode b, r, a, c, q, x;
	char id[33], key[65];
};

static struct scene W;

static int setup(void **state)
{
	const char *natq[] = { W.w.use, "node.log_level=debug", NULL };
	const char *dbg[] = { "node.log_level=debug", NULL };

	(void)state;
	world_new(&W.w, 3434);
	world_bootstrap(&W.w, &W.b, NULL);
	world_relay(&W.w, &W.r, NULL);
	world_node(&W.w, &W.a, "A", "198.51.102.3", NULL, dbg);
	world_node(&W.w, &W.c, "C", "198.51.102.4", NULL, NULL);
	W.nat = world_nat(&W.w, NAT_OUT, SIMNET_NAT_APDF, SIMNET_NAT_MAP_ADM);
	world_node(&W.w, &W.q, "Q", "10.0.0.4", W.nat, natq);
	world_node(&W.w, &W.x, "X", "198.51.102.5", NULL, NULL);
	world_dht_formed(1, 30000, &W.r, &W.a, &W.c, &W.q, &W.x, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

/* GET /v1/community/<id> on x: its field. */
static json_int_t cfield(struct simnode *x, const char *id, const char *field)
{
	char path[96];
	json_t *o = NULL;
	json_int_t v = -1;

	snprintf(path, sizeof(path), "/v1/community/%s", id);
	if (simnode_ctl(x, "GET", path, NULL, &o) == 200)
		v = json_integer_value(json_object_get(o, field));
	json_decref(o);
	return v;
}

static void bind_share(struct simnode *x, const char *name)
{
	char path[96], head[160];

	snprintf(path, sizeof(path), "/v1/community/%s/shares", W.id);
	snprintf(head, sizeof(head), "%s/%s", x->key, name);
	json_decref(simnode_ok(x, "POST", path, json_pack("{s:s}", "head", head)));
}

static int all_see(void *arg)
{
	json_int_t shares = *(json_int_t *)arg;
	struct simnode *m[] = { &W.a, &W.c, &W.q };

	for (size_t i = 0; i < 3; i++)
		if (cfield(m[i], W.id, "members") != 3 || cfield(m[i], W.id, "shares") != shares)
			return 0;
	return 1;
}

static void test_three_members(void **state)
{
	json_t *o;
	json_int_t three = 3;
	char path[96], *dump;

	(void)state;
	o = simnode_ok(&W.a, "POST", "/v1/community/create", json_pack("{s:s}", "name", "club"));
	snprintf(W.id, sizeof(W.id), "%s", json_string_value(json_object_get(o, "id")));
	snprintf(W.key, sizeof(W.key), "%s", json_string_value(json_object_get(o, "key")));
	json_decref(o);
	json_decref(simnode_ok(&W.c, "POST", "/v1/community/join",
			       json_pack("{s:s,s:s}", "id", W.id, "key", W.key)));
	json_decref(simnode_ok(&W.q, "POST", "/v1/community/join",
			       json_pack("{s:s,s:s}", "id", W.id, "key", W.key)));
	/* X: the id with another community's key */
	o = simnode_ok(&W.x, "POST", "/v1/community/create", json_pack("{s:s}", "name", "other"));
	json_decref(simnode_ok(&W.x, "POST", "/v1/community/join",
			       json_pack("{s:s,s:s}", "id", W.id, "key",
					 json_string_value(json_object_get(o, "key")))));
	json_decref(o);
	bind_share(&W.a, "shareA");
	bind_share(&W.c, "shareC");
	bind_share(&W.q, "shareQ");
	assert_int_equal(simnode_wait_every(all_see, &three, 60000, 100), 0);
	snprintf(path, sizeof(path), "/v1/community/%s/members", W.id);
	o = simnode_ok(&W.q, "GET", path, NULL);
	dump = json_dumps(o, 0);
	assert_non_null(strstr(dump, W.a.key));
	assert_non_null(strstr(dump, W.c.key));
	free(dump);
	json_decref(o);
	snprintf(path, sizeof(path), "/v1/community/%s/shares", W.id);
	o = simnode_ok(&W.a, "GET", path, NULL);
	dump = json_dumps(o, 0);
	assert_non_null(strstr(dump, "magnet:?xs=urn:btpk:"));
	assert_non_null(strstr(dump, W.q.key)); /* Q's share, with its head key */
	free(dump);
	json_decref(o);
}

static int q_has_four(void *arg)
{
	(void)arg;
	return cfield(&W.q, W.id, "shares") == 4;
}

static json_int_t circuits(void)
{
	return simnode_get_int(&W.r, "/v1/relay/status", "counters", "circuits", NULL);
}

/* A failing case's state, for the log (on stderr: cmocka's own failure
 * message may not reach a log file): what failed, the counters of A's
 * and Q's gossip and dials by key, R's circuits. */
static void dump(const char *what, long long v)
{
	simnode_print_metrics(&W.a, "weft_community_");
	simnode_print_metrics(&W.q, "weft_community_");
	fprintf(stderr, "R: circuits %lld\n", (long long)circuits());
	/* last: a log's tail shows it */
	fprintf(stderr, "FAILED: %s %lld\n", what, v);
}

/* Whatever the end of the cases that cut links: C up, A's links back. */
static int restore(void **state)
{
	struct simnet_link none = { 0 };
	struct io_addr a, out, r;

	(void)state;
	simnet_host_set_down(W.c.host, 0);
	if (io_addr_parse(&a, W.a.ip, 0) || io_addr_parse(&out, NAT_OUT, 0) ||
	    io_addr_parse(&r, W.r.ip, 0))
		return -1;
	return simnet_link_set(W.w.sn, &a, &out, &none) ?: simnet_link_set(W.w.sn, &a, &r, &none);
}

static void test_gossip_reaches_nat_member_by_key(void **state)
{
	struct simnet_link cut = { .loss_ppm = 1000000 };
	struct io_addr a, out;

	(void)state;
	assert_int_equal(io_addr_parse(&a, W.a.ip, 0), 0);
	assert_int_equal(io_addr_parse(&out, NAT_OUT, 0), 0);
	assert_int_equal(simnet_link_set(W.w.sn, &a, &out, &cut), 0);
	simnet_host_set_down(W.c.host, 1);
	/* Q can neither pull it from A at its address nor from C: only A's
	 * gossip, which finds Q's address dead and dials Q's key through R,
	 * or a pull over a connection A dialled by Q's key through R before
	 * (Q's pull reuses it while it lives): through R either way. */
	bind_share(&W.a, "later");
	if (simnode_wait_every(q_has_four, NULL, 60000, 100)) {
		dump("Q sees shares:", (long long)cfield(&W.q, W.id, "shares"));
		fail_msg("Q sees %lld shares", (long long)cfield(&W.q, W.id, "shares"));
	}
	assert_true(circuits() > 0);
}

/* The second community's id (test_member_never_in_contact). */
static char ID2[33];

static int a_sees_three(void *arg)
{
	(void)arg;
	return cfield(&W.a, ID2, "members") == 3;
}

static int q_has_one(void *arg)
{
	(void)arg;
	return cfield(&W.q, ID2, "shares") == 1;
}

/* A member that never contacted us: in a second community, A cannot reach
 * Q's NAT from the start, so Q pulls from C only and A learns Q from Q's
 * member record (through C), never from a connection: A knows no holder
 * key for Q. With C down, a share A binds reaches Q only because A's own
 * records also go, by key, to members no holder entry names (a circuit of
 * R). Before that rule, A gossiped to C alone and Q never learned it. */
static void test_member_never_in_contact(void **state)
{
	struct simnet_link cut = { .loss_ppm = 1000000 };
	struct io_addr a, out;
	char path[96], head[160];
	json_t *o;

	(void)state;
	assert_int_equal(io_addr_parse(&a, W.a.ip, 0), 0);
	assert_int_equal(io_addr_parse(&out, NAT_OUT, 0), 0);
	assert_int_equal(simnet_link_set(W.w.sn, &a, &out, &cut), 0);
	o = simnode_ok(&W.a, "POST", "/v1/community/create", json_pack("{s:s}", "name", "club2"));
	snprintf(ID2, sizeof(ID2), "%s", json_string_value(json_object_get(o, "id")));
	json_decref(simnode_ok(&W.c, "POST", "/v1/community/join",
			       json_pack("{s:s,s:s}", "id", ID2, "key",
					 json_string_value(json_object_get(o, "key")))));
	json_decref(simnode_ok(&W.q, "POST", "/v1/community/join",
			       json_pack("{s:s,s:s}", "id", ID2, "key",
					 json_string_value(json_object_get(o, "key")))));
	json_decref(o);
	/* Q's member record reaches A through C: C's forward of Q's gossip,
	 * else A's next pull from C (NET_SYNC_MS, 120 s) */
	if (simnode_wait_every(a_sees_three, NULL, 180000, 200)) {
		dump("A sees members of club2:", (long long)cfield(&W.a, ID2, "members"));
		fail_msg("A sees %lld members of club2", (long long)cfield(&W.a, ID2, "members"));
	}
	simnet_host_set_down(W.c.host, 1);
	snprintf(path, sizeof(path), "/v1/community/%s/shares", ID2);
	snprintf(head, sizeof(head), "%s/%s", W.a.key, "late");
	json_decref(simnode_ok(&W.a, "POST", path, json_pack("{s:s}", "head", head)));
	if (simnode_wait_every(q_has_one, NULL, 120000, 100)) {
		dump("Q sees shares of club2:", (long long)cfield(&W.q, ID2, "shares"));
		fail_msg("Q sees %lld shares of club2", (long long)cfield(&W.q, ID2, "shares"));
	}
	assert_true(circuits() > 0);
}

static int q_has_two(void *arg)
{
	(void)arg;
	return cfield(&W.q, ID2, "shares") == 2;
}

static double A_AGAIN, A_LATE_OK;

/* A's sends to Q waiting for a later round (its member listing of the
 * second community), or -1. */
static json_int_t a_waiting_for_q(void)
{
	char path[96];
	json_t *o = NULL, *m;
	json_int_t v = -1;
	size_t i;

	snprintf(path, sizeof(path), "/v1/community/%s/members", ID2);
	if (simnode_ctl(&W.a, "GET", path, NULL, &o) == 200)
		json_array_foreach(json_object_get(o, "members"), i, m)
			if (!strcmp(json_string_value(json_object_get(m, "key")), W.q.key))
				v = json_integer_value(json_object_get(m, "waiting"));
	json_decref(o);
	return v;
}

/* A send to Q is queued for a later round: only then may the link come
 * back. (Waiting on gossip_again_total alone raced: A's sends to C, down,
 * count there too, and a link back before any send to Q had failed let
 * the first round reach Q, so no later round ever did.) */
static int a_queued_again(void *arg)
{
	(void)arg;
	return simnode_metric(&W.a, "weft_community_gossip_again_total") > A_AGAIN &&
	       a_waiting_for_q() > 0;
}

static int a_late_ok(void *arg)
{
	(void)arg;
	return simnode_metric(&W.a, "weft_community_gossip_late_ok_total") > A_LATE_OK;
}

/* A send by key that reached nobody is tried again later. As above (C
 * down, A cut from Q's NAT), A is also cut from the relay until its first
 * round (Q's record, the relay's circuit; the record afresh) has failed
 * and been queued again: it could not reach Q. Once the link is back, a
 * later round does. Before the later rounds, Q never learned the share.
 * (The cut was a fixed 25 s, which a first round that started late, Q's
 * pulls of A by key through R racing it, outlasted.) */
static void test_gossip_again_after_relay_cut(void **state)
{
	struct simnet_link cut = { .loss_ppm = 1000000 }, none = { 0 };
	struct io_addr a, r;
	char path[96], head[160];

	(void)state;
	A_AGAIN = simnode_metric(&W.a, "weft_community_gossip_again_total");
	A_LATE_OK = simnode_metric(&W.a, "weft_community_gossip_late_ok_total");
	assert_true(A_AGAIN >= 0 && A_LATE_OK >= 0);
	assert_int_equal(io_addr_parse(&a, W.a.ip, 0), 0);
	assert_int_equal(io_addr_parse(&r, W.r.ip, 0), 0);
	assert_int_equal(simnet_link_set(W.w.sn, &a, &r, &cut), 0);
	snprintf(path, sizeof(path), "/v1/community/%s/shares", ID2);
	snprintf(head, sizeof(head), "%s/%s", W.a.key, "after-cut");
	json_decref(simnode_ok(&W.a, "POST", path, json_pack("{s:s}", "head", head)));
	if (simnode_wait_every(a_queued_again, NULL, 90000, 100)) {
		dump("A queued no later round to Q; waiting:", (long long)a_waiting_for_q());
		fail_msg("A's send by key was not queued again");
	}
	assert_int_equal(cfield(&W.q, ID2, "shares"), 1); /* not reached yet */
	assert_int_equal(simnet_link_set(W.w.sn, &a, &r, &none), 0);
	if (simnode_wait_every(a_late_ok, NULL, 150000, 100)) {
		dump("A's later rounds reached nobody; waiting for Q:",
		     (long long)a_waiting_for_q());
		fail_msg("no later round of A's send reached Q");
	}
	if (simnode_wait_every(q_has_two, NULL, 150000, 100)) {
		dump("Q sees shares of club2:", (long long)cfield(&W.q, ID2, "shares"));
		fail_msg("Q sees %lld shares of club2", (long long)cfield(&W.q, ID2, "shares"));
	}
}

static void test_outsider_sees_nothing(void **state)
{
	json_t *o = simnode_ok(&W.x, "GET", "/v1/community", NULL), *c;
	size_t i;
	int seen = 0;

	(void)state;
	json_array_foreach(json_object_get(o, "communities"), i, c) {
		if (strcmp(json_string_value(json_object_get(c, "id")), W.id) != 0)
			continue;
		seen = 1;
		assert_int_equal(json_integer_value(json_object_get(c, "members")), 1);
		assert_int_equal(json_integer_value(json_object_get(c, "shares")), 0);
		assert_int_equal(json_integer_value(json_object_get(c, "holders")), 0);
	}
	assert_true(seen);
	json_decref(o);
}

static char CID[33];

static int q_sees_a(void *arg)
{
	(void)arg;
	return cfield(&W.q, CID, "members") == 2 && cfield(&W.a, CID, "members") == 2;
}

static void test_closed_needs_invite(void **state)
{
	json_t *o, *err = NULL;
	char ckey[65], path[96], inv[160];

	(void)state;
	o = simnode_ok(&W.a, "POST", "/v1/community/create",
		       json_pack("{s:s,s:b}", "name", "inner", "closed", 1));
	snprintf(CID, sizeof(CID), "%s", json_string_value(json_object_get(o, "id")));
	snprintf(ckey, sizeof(ckey), "%s", json_string_value(json_object_get(o, "key")));
	json_decref(o);
	assert_int_equal(simnode_ctl(&W.q, "POST", "/v1/community/join",
				     json_pack("{s:s,s:s}", "id", CID, "key", ckey), &err),
			 403);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(err, "error"), "code")), "not_invited");
	json_decref(err);
	snprintf(path, sizeof(path), "/v1/community/%s/invite", CID);
	o = simnode_ok(&W.a, "POST", path, json_pack("{s:s}", "key", W.q.key));
	snprintf(inv, sizeof(inv), "%s", json_string_value(json_object_get(o, "invite")));
	json_decref(o);
	json_decref(simnode_ok(&W.q, "POST", "/v1/community/join",
			       json_pack("{s:s,s:s,s:s}", "id", CID, "key", ckey, "invite", inv)));
	if (simnode_wait_every(q_sees_a, NULL, 60000, 100))
		fail_msg("Q sees %lld members, A %lld", (long long)cfield(&W.q, CID, "members"),
			 (long long)cfield(&W.a, CID, "members"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_members),
		cmocka_unit_test_teardown(test_gossip_reaches_nat_member_by_key, restore),
		cmocka_unit_test(test_member_never_in_contact),
		cmocka_unit_test_teardown(test_gossip_again_after_relay_cut, restore),
		cmocka_unit_test(test_outsider_sees_nothing),
		cmocka_unit_test(test_closed_needs_invite),
	};

	return cmocka_run_group_tests_name("sim_community_nat", tests, setup, teardown);
}
