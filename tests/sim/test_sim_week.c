// SPDX-License-Identifier: MIT
/*
 * A week of virtual time (issue 30, item 2): does the DHT's and the
 * relay's state stay flat?
 *
 * DHT: 32 cores and ours on the simulated DHT of tests/lib/dhtsim.c (20 ms
 * links, timers every second of virtual time) for 168 hours. Every hour:
 * two nodes leave and new ones take their addresses (churn: the whole
 * network is replaced about every 16 hours), we announce the same 16
 * infohashes, four random nodes each announce a fresh infohash (they are
 * never announced again: the store must let them expire), we put a fresh
 * immutable item, and 16 find_node lookups from random nodes look for
 * random live nodes. Ten minutes after the hour the test samples every
 * node: routing table, stored infohashes, peers and items, lookups in
 * progress. Checks: every table stays healthy; the totals of the last day
 * are no larger than those of the second (5% and a small constant of
 * slack: one announce more or less); lookups find their target.
 *
 * Relay: the reservation table (relay_tab, 128 reservations, 300 s
 * lifetime) over the same week in one-minute steps, 300 holders on 100
 * addresses coming and going in sessions of 1-12 hours; online holders
 * refresh every minute and open and close circuits; half of the leavers
 * close their connection, the others fall silent and must expire. Checks:
 * the table never holds more than its limit, every reservation in it
 * belongs to a holder that refreshed within the lifetime, circuits never
 * exceed the per-reservation limit, and at the end, when every holder has
 * left, it is empty.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dhtsim.h"
#include "weft/relay.h"

#define NODES 32
#define HOURS 168
#define HOUR_MS 3600000ULL

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

struct sample {
	unsigned int nodes, min_nodes, infohashes, peers, items, lookups;
};

struct lk {
	unsigned int done, found;
	uint8_t want[DHT_ID_LEN];
};

struct lk_one {
	struct lk *lk;
	uint8_t want[DHT_ID_LEN];
};

static void lookup_done(void *arg, const struct dht_result *r)
{
	struct lk_one *o = arg;

	o->lk->done++;
	if (!r->status && r->nnodes && !memcmp(r->nodes[0].id, o->want, DHT_ID_LEN))
		o->lk->found++;
	free(o);
}

static void ignore(void *arg, const struct dht_result *r)
{
	(void)arg;
	(void)r;
}

static void sample(struct dhtsim *s, struct sample *x)
{
	memset(x, 0, sizeof(*x));
	x->min_nodes = ~0u;
	for (unsigned int i = 0; i < NODES; i++) {
		struct dht_stats st;

		dht_get_stats(dhtsim_node(s, i), &st);
		x->nodes += st.nodes4;
		if (st.nodes4 < x->min_nodes)
			x->min_nodes = st.nodes4;
		x->infohashes += st.infohashes;
		x->peers += st.peers;
		x->items += st.items;
		x->lookups += st.lookups;
	}
}

/* The largest of each total over hours [from, to). */
static struct sample peak(const struct sample *h, unsigned int from, unsigned int to)
{
	struct sample p = {0};

	for (unsigned int i = from; i < to; i++) {
#define PK(f) if (h[i].f > p.f) p.f = h[i].f
		PK(nodes);
		PK(infohashes);
		PK(peers);
		PK(items);
		PK(lookups);
#undef PK
	}
	return p;
}

static void flat(const char *what, unsigned int day2, unsigned int last, unsigned int slack)
{
	print_message("  %-10s day 2 peak %5u, day 7 peak %5u\n", what, day2, last);
	if ((double)last > (double)day2 * 1.05 + slack)
		fail_msg("%s grew: %u on day 2, %u on day 7", what, day2, last);
}

static void test_dht_week(void **state)
{
	struct dhtsim_opts o = {.nodes = NODES, .seed = 77, .latency_ms = 20, .max_s = 1,
				.tick_ms = 1000};
	struct sample *h = calloc(HOURS, sizeof(*h));
	uint8_t ours[16][DHT_ID_LEN];
	struct lk lk = {0};
	unsigned int lk_done_day1 = 0, lk_found_day1 = 0;
	struct dhtsim *s;

	(void)state;
	assert_non_null(h);
	for (unsigned int i = 0; i < 16; i++)
		for (unsigned int b = 0; b < DHT_ID_LEN; b++)
			ours[i][b] = (uint8_t)rnd();
	assert_int_equal(dhtsim_new(&s, &o), 0);
	dhtsim_form(s, 60000);
	for (unsigned int hour = 0; hour < HOURS; hour++) {
		uint64_t now = dhtsim_now(s);
		uint8_t val[64];

		unsigned int gone[2];

		for (int k = 0; k < 2; k++) {
			gone[k] = (unsigned int)(rnd() % NODES);
			assert_int_equal(dhtsim_replace(s, gone[k], hour * 2 + k), 0);
		}
		for (unsigned int i = 0; i < 16; i++)
			dht_announce(dhtsim_us(s), ours[i], 4433, 0, now, ignore, NULL);
		for (int k = 0; k < 4; k++) {
			uint8_t ih[DHT_ID_LEN];

			for (unsigned int b = 0; b < DHT_ID_LEN; b++)
				ih[b] = (uint8_t)rnd();
			dht_announce(dhtsim_node(s, (unsigned int)(rnd() % NODES)), ih, 6881, 0, now,
				     ignore, NULL);
		}
		snprintf((char *)val, sizeof(val), "week item of hour %u", hour);
		dht_put_immutable(dhtsim_us(s), val, strlen((char *)val), now, ignore, NULL);
		for (int k = 0; k < 16; k++) {
			struct lk_one *one = calloc(1, sizeof(*one));
			unsigned int from, to;

			/* between nodes that were there before this hour's
			 * newcomers (they are looked up once they joined) */
			assert_non_null(one);
			do
				from = (unsigned int)(rnd() % NODES);
			while (from == gone[0] || from == gone[1]);
			do
				to = (unsigned int)(rnd() % NODES);
			while (to == from || to == gone[0] || to == gone[1]);
			one->lk = &lk;
			memcpy(one->want, dht_id(dhtsim_node(s, to)), DHT_ID_LEN);
			if (dht_find_node(dhtsim_node(s, from), one->want, now, lookup_done, one) < 0) {
				lk.done++; /* no slot: counted as not found */
				free(one);
			}
		}
		dhtsim_run(s, 600000, NULL);
		sample(s, &h[hour]);
		if (h[hour].min_nodes < 8)
			fail_msg("hour %u: a routing table holds %u nodes", hour, h[hour].min_nodes);
		if (hour % 24 == 23)
			print_message("day %u: nodes %u (min %u per table), infohashes %u, peers %u, "
				      "items %u, lookups running %u; find_node %u/%u\n",
				      hour / 24 + 1, h[hour].nodes, h[hour].min_nodes,
				      h[hour].infohashes, h[hour].peers, h[hour].items,
				      h[hour].lookups, lk.found, lk.done);
		if (hour == 23) {
			lk_done_day1 = lk.done;
			lk_found_day1 = lk.found;
		}
		dhtsim_run(s, HOUR_MS - 600000, NULL);
	}
	{
		struct sample d2 = peak(h, 24, 48), d7 = peak(h, HOURS - 24, HOURS);
		unsigned int done = lk.done - lk_done_day1, found = lk.found - lk_found_day1;

		print_message("peaks (totals over %u nodes):\n", NODES);
		flat("nodes", d2.nodes, d7.nodes, 8);
		flat("infohashes", d2.infohashes, d7.infohashes, 8);
		flat("peers", d2.peers, d7.peers, 8);
		flat("items", d2.items, d7.items, 8);
		flat("lookups", d2.lookups, d7.lookups, 8);
		/* what the store holds is what was announced within its
		 * lifetime, not the week's sum: 16 + 4 infohashes an hour, a
		 * few replicas each, expired after 30 min */
		assert_true(d7.infohashes < 20 * 16);
		assert_true(d7.items < 3 * 16);
		assert_true(h[HOURS - 1].peers > 0 && h[HOURS - 1].items > 0);
		print_message("find_node after day 1: %u of %u found their target\n", found, done);
		assert_true(found * 100 >= done * 95);
	}
	dhtsim_free(s);
	free(h);
}

#define HOLDERS 300
#define ADDRS 100
#define TTL_S 300

struct holder {
	uint8_t key[RELAY_KEY_LEN];
	struct io_addr addr;
	uint64_t conn;
	int online, reserved, circuits;
	uint64_t until_ms, refreshed_ms;
};

static void test_relay_week(void **state)
{
	struct relay_tab_opts o = {.max_reservations = 128, .circuits_per_res = 8, .ttl_s = TTL_S};
	struct holder *hs = calloc(HOLDERS, sizeof(*hs));
	struct relay_tab *t;
	uint64_t now = 1000000, conns = 1, refused = 0, dropped = 0, max_count = 0;
	uint64_t circ_ok = 0, circ_full = 0;

	(void)state;
	assert_non_null(hs);
	assert_int_equal(relay_tab_new(&t, &o), 0);
	for (unsigned int i = 0; i < HOLDERS; i++) {
		for (unsigned int b = 0; b < RELAY_KEY_LEN; b++)
			hs[i].key[b] = (uint8_t)rnd();
		hs[i].addr.family = AF_INET;
		hs[i].addr.addr[0] = 203;
		hs[i].addr.addr[1] = 0;
		hs[i].addr.addr[2] = 113;
		hs[i].addr.addr[3] = (uint8_t)(i % ADDRS);
		hs[i].addr.port = (uint16_t)(40000 + i);
		hs[i].until_ms = now + (rnd() % (12 * 60)) * 60000;
	}
	for (unsigned int minute = 0; minute <= HOURS * 60 + TTL_S / 60 + 1; minute++) {
		int closing = minute >= HOURS * 60; /* the end: everyone leaves */

		now += 60000;
		for (unsigned int i = 0; i < HOLDERS; i++) {
			struct holder *x = &hs[i];

			if (x->online && (closing || now >= x->until_ms)) {
				x->online = 0;
				x->until_ms = now + (1 + rnd() % 12) * HOUR_MS;
				while (x->circuits) {
					relay_tab_circuit_end(t, x->key);
					x->circuits--;
				}
				if (rnd() & 1) /* closed its connection; else silent */
					dropped += relay_tab_drop_conn(t, x->conn);
				x->reserved = 0;
			} else if (!x->online && !closing && now >= x->until_ms) {
				x->online = 1;
				x->conn = conns++;
				x->until_ms = now + (1 + rnd() % 12) * HOUR_MS;
			}
			if (x->online) {
				uint32_t ttl;
				int abuse = 0, rc;

				rc = relay_tab_reserve(t, x->key, &x->addr, x->conn, now, &ttl, &abuse);
				assert_int_equal(abuse, 0);
				if (rc == RELAY_OK) {
					x->reserved = 1;
					x->refreshed_ms = now;
				} else {
					assert_int_equal(rc, RELAY_E_RESERVATIONS);
					refused++;
					x->reserved = 0;
				}
				if (x->reserved && (rnd() % 4) == 0) {
					rc = relay_tab_circuit_add(t, x->key, now);
					if (rc == RELAY_OK) {
						x->circuits++;
						circ_ok++;
					} else {
						assert_int_equal(rc, RELAY_E_CIRCUITS);
						circ_full++;
					}
				}
				if (x->circuits && (rnd() % 3) == 0) {
					relay_tab_circuit_end(t, x->key);
					x->circuits--;
				}
			}
		}
		relay_tab_expire(t, now);
		assert_true(relay_tab_count(t) <= o.max_reservations);
		if (relay_tab_count(t) > max_count)
			max_count = relay_tab_count(t);
		for (unsigned int k = 0; k < relay_tab_count(t); k++) {
			const struct relay_res *r = relay_tab_get(t, k);
			unsigned int i;

			for (i = 0; i < HOLDERS; i++)
				if (!memcmp(hs[i].key, r->key, RELAY_KEY_LEN))
					break;
			assert_true(i < HOLDERS);
			assert_true(now - hs[i].refreshed_ms <= (uint64_t)TTL_S * 1000);
			assert_true(r->circuits <= o.circuits_per_res);
		}
		if (minute % (24 * 60) == 0)
			print_message("relay day %u: %u reservations, %llu expired so far\n",
				      minute / (24 * 60), relay_tab_count(t),
				      (unsigned long long)relay_tab_expired(t));
	}
	print_message("relay week: at most %llu reservations held, %llu refusals at the limit, "
		      "%llu dropped with their connection, %llu expired, circuits %llu opened, "
		      "%llu refused at the per-reservation limit\n",
		      (unsigned long long)max_count, (unsigned long long)refused,
		      (unsigned long long)dropped, (unsigned long long)relay_tab_expired(t),
		      (unsigned long long)circ_ok, (unsigned long long)circ_full);
	assert_int_equal(relay_tab_count(t), 0);
	assert_true(relay_tab_expired(t) > 0 && dropped > 0);
	relay_tab_free(t);
	free(hs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dht_week),
		cmocka_unit_test(test_relay_week),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
