// SPDX-License-Identifier: MIT
/*
 * Mailboxes in-process on the simulated network (issue 34,
 * docs/MAILBOX.md; no root):
 *
 *   B   198.51.100.2   public DHT bootstrap
 *   R   198.51.101.3   public relay (relay.enable: a mailbox host)
 *   M1..M4 198.51.102.1-4  mailbox hosts (mailbox.enabled = true)
 *   S   198.51.103.3   the sender
 *   Q   10.0.0.4       behind an address- and port-dependent NAT, relay.use = R,
 *                      mailbox.anchors = M1..M4 (at most 4: weftd refuses more)
 *
 * Q's record lists M1..M4, in mailbox.anchors' order, and not its relay R
 * although R is a mailbox host (the documented order: config first). A message to Q while it runs arrives
 * directly (through R). Q goes down: a message is left at exactly 2 of
 * its anchors (the first two), which never hold its plaintext; Q comes
 * back, fetches, keeps it once, and both anchors forget it on the
 * acknowledgement.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include "weft/simnet.h"
#include "world.h"

#define NM 4

struct scene {
	struct world w;
	struct simnet_nat *nat;
	struct simnode b, r, m[NM], s, q;
	char anchors[1024]; /* mailbox.anchors=... for Q */
};

static struct scene W;

static const char *const mbox_on[] = { "mailbox.enabled=true", NULL };

static int setup(void **state)
{
	const char *natq[] = { W.w.use, W.anchors, "mailbox.fetch_interval_s=5", NULL };
	char ip[32], name[8];
	size_t off;

	(void)state;
	world_new(&W.w, 3435);
	world_bootstrap(&W.w, &W.b, NULL);
	world_relay(&W.w, &W.r, NULL);
	off = (size_t)snprintf(W.anchors, sizeof(W.anchors), "mailbox.anchors=");
	for (int i = 0; i < NM; i++) {
		snprintf(ip, sizeof(ip), "198.51.102.%d", i + 1);
		snprintf(name, sizeof(name), "M%d", i + 1);
		world_node(&W.w, &W.m[i], name, ip, NULL, mbox_on);
		off += (size_t)snprintf(W.anchors + off, sizeof(W.anchors) - off, "%s%s@%s:4433",
					i ? "," : "", W.m[i].key, ip);
	}
	world_node(&W.w, &W.s, "S", "198.51.103.3", NULL, NULL);
	W.nat = world_nat(&W.w, "198.51.104.100", SIMNET_NAT_APDF, SIMNET_NAT_MAP_ADM);
	world_node(&W.w, &W.q, "Q", "10.0.0.4", W.nat, natq);
	world_dht_formed(1, 30000, &W.r, &W.s, &W.q, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	world_free(&W.w);
	return 0;
}

/* Q's record, resolved fresh by S, lists M1..M4 as its anchors, in order,
 * and R as its relay. */
static int q_record(void *arg)
{
	json_t *o = NULL, *a;
	int ok = 0;

	(void)arg;
	if (simnode_ctl(&W.s, "POST", "/v1/node/resolve",
			json_pack("{s:s,s:b}", "key", W.q.key, "fresh", 1), &o) == 200) {
		a = json_object_get(o, "anchors");
		ok = json_array_size(a) == 4 && simnode_lists_relay(&W.s, W.q.key, W.r.key);
		for (size_t i = 0; ok && i < NM; i++)
			ok = !strcmp(json_string_value(json_object_get(json_array_get(a, i), "key")),
				     W.m[i].key);
	}
	json_decref(o);
	return ok;
}

static json_int_t held(struct simnode *x)
{
	return simnode_get_int(x, "/v1/mailbox/status", "messages", NULL);
}

static json_t *send_to_q(const char *data, int no_direct)
{
	return simnode_ok(&W.s, "POST", "/v1/msg/send",
			  json_pack("{s:s,s:s,s:b}", "to", W.q.key, "data", data, "no_direct",
				    no_direct));
}

static void test_anchors_in_record(void **state)
{
	json_t *o;

	(void)state;
	assert_int_equal(simnode_wait_every(q_record, NULL, 30000, 100), 0);
	o = simnode_ok(&W.q, "GET", "/v1/mailbox/status", NULL);
	assert_string_equal(json_string_value(json_object_get(o, "anchors_from")), "config");
	json_decref(o);
}

static int q_reserved(void *arg)
{
	(void)arg;
	return simnode_relay_holds(&W.r, W.q.key);
}

static void test_direct_through_relay(void **state)
{
	json_t *o;

	(void)state;
	assert_int_equal(simnode_wait_every(q_reserved, NULL, 30000, 100), 0);
	o = send_to_q("hello Q", 0);
	assert_string_equal(json_string_value(json_object_get(o, "delivered")), "direct");
	json_decref(o);
	assert_int_equal(simnode_get_int(&W.q, "/v1/mailbox/status", "inbox", NULL), 1);
	for (int i = 0; i < NM; i++)
		assert_int_equal(held(&W.m[i]), 0);
}

static const char *MARK;
static int found_mark;

static int grep_mark(const char *path, const struct stat *st, int type, struct FTW *f)
{
	char *buf;
	int fd;

	(void)f;
	if (type != FTW_F || !st->st_size)
		return 0;
	fd = open(path, O_RDONLY);
	buf = malloc((size_t)st->st_size);
	if (fd >= 0 && buf && read(fd, buf, (size_t)st->st_size) == st->st_size &&
	    memmem(buf, (size_t)st->st_size, MARK, strlen(MARK)))
		found_mark = 1;
	free(buf);
	if (fd >= 0)
		close(fd);
	return 0;
}

static int on_disk(struct simnode *x, const char *mark)
{
	MARK = mark;
	found_mark = 0;
	assert_int_equal(nftw(x->dir, grep_mark, 16, FTW_PHYS), 0);
	return found_mark;
}

static char ID[33];

static int q_fetched(void *arg)
{
	char path[64];
	json_t *o = NULL;
	int ok;

	(void)arg;
	snprintf(path, sizeof(path), "/v1/msg/read/%s", ID);
	ok = simnode_ctl(&W.q, "GET", path, NULL, &o) == 200;
	json_decref(o);
	return ok && held(&W.m[0]) == 0 && held(&W.m[1]) == 0;
}

static void test_offline_two_copies(void **state)
{
	const char *mark = "weft-sim-mailbox-marker-7f3a";
	json_t *o;

	(void)state;
	simnet_host_set_down(W.q.host, 1);
	o = send_to_q(mark, 1);
	assert_string_equal(json_string_value(json_object_get(o, "delivered")), "anchors");
	assert_int_equal(json_integer_value(json_object_get(o, "copies")), 2);
	snprintf(ID, sizeof(ID), "%s", json_string_value(json_object_get(o, "id")));
	json_decref(o);
	assert_int_equal(held(&W.m[0]), 1);
	assert_int_equal(held(&W.m[1]), 1);
	for (int i = 2; i < NM; i++)
		assert_int_equal(held(&W.m[i]), 0);
	assert_int_equal(held(&W.r), 0);
	assert_false(on_disk(&W.m[0], mark));
	assert_false(on_disk(&W.m[1], mark));
	simnet_host_set_down(W.q.host, 0);
	assert_int_equal(simnode_wait_every(q_fetched, NULL, 60000, 100), 0);
	/* the two copies are one message in the inbox (with "hello Q") */
	assert_int_equal(simnode_get_int(&W.q, "/v1/mailbox/status", "inbox", NULL), 2);
	assert_int_equal(simnode_get_int(&W.m[0], "/v1/mailbox/status", "acked_total", NULL), 1);
	assert_int_equal(simnode_get_int(&W.m[1], "/v1/mailbox/status", "acked_total", NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_anchors_in_record),
		cmocka_unit_test(test_direct_through_relay),
		cmocka_unit_test(test_offline_two_copies),
	};

	return cmocka_run_group_tests_name("sim_mailbox", tests, setup, teardown);
}
