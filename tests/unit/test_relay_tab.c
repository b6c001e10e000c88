// SPDX-License-Identifier: MIT
/*
 * The relay's reservation table (relay_tab_*): limits, refresh, move,
 * expiry and churn; the flood evidence of a circuit's drops.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "weft/relay.h"

static void key_of(uint8_t k[RELAY_KEY_LEN], unsigned int i)
{
	memset(k, 0, RELAY_KEY_LEN);
	k[0] = (uint8_t)i;
	k[1] = (uint8_t)(i >> 8);
}

static void addr_of(struct io_addr *a, unsigned int host)
{
	char s[32];

	snprintf(s, sizeof(s), "198.51.%u.%u", 100 + host / 250, 1 + host % 250);
	assert_int_equal(io_addr_parse(a, s, 4433), 0);
}

static void test_tab(void **state)
{
	struct relay_tab_opts o = { .max_reservations = 3, .circuits_per_res = 2,
				    .reservations_per_addr = 2, .ttl_s = 10, .churn_max = 5 };
	struct relay_tab *t;
	struct io_addr a1, a2, a3, a4;
	uint8_t k[RELAY_KEY_LEN];
	uint32_t ttl = 0;
	int abuse;

	(void)state;
	assert_int_equal(relay_tab_new(&t, &o), 0);
	addr_of(&a1, 1);
	addr_of(&a2, 2);
	addr_of(&a3, 3);
	addr_of(&a4, 4);
	key_of(k, 1);
	assert_int_equal(relay_tab_reserve(t, k, &a1, 100, 0, &ttl, &abuse), RELAY_OK);
	assert_int_equal(ttl, 10);
	/* Two reservations per source address (other port, same address). */
	a1.port = 5000;
	key_of(k, 2);
	assert_int_equal(relay_tab_reserve(t, k, &a1, 101, 0, &ttl, &abuse), RELAY_OK);
	key_of(k, 3);
	assert_int_equal(relay_tab_reserve(t, k, &a1, 102, 0, &ttl, &abuse), RELAY_E_ADDR_LIMIT);
	assert_int_equal(relay_tab_reserve(t, k, &a2, 102, 0, &ttl, &abuse), RELAY_OK);
	/* Three per relay. */
	key_of(k, 4);
	assert_int_equal(relay_tab_reserve(t, k, &a3, 103, 0, &ttl, &abuse),
			 RELAY_E_RESERVATIONS);
	assert_int_equal(relay_tab_count(t), 3);
	/* Circuits per reservation, and given back. */
	key_of(k, 3);
	assert_int_equal(relay_tab_circuit_add(t, k, 1), RELAY_OK);
	assert_int_equal(relay_tab_circuit_add(t, k, 1), RELAY_OK);
	assert_int_equal(relay_tab_circuit_add(t, k, 1), RELAY_E_CIRCUITS);
	relay_tab_circuit_end(t, k);
	assert_int_equal(relay_tab_circuit_add(t, k, 1), RELAY_OK);
	key_of(k, 9);
	assert_int_equal(relay_tab_circuit_add(t, k, 1), RELAY_E_NO_RESERVATION);
	/* A refresh over the same connection pushes the expiry; the others
	 * expire at 10 s. */
	key_of(k, 1);
	assert_int_equal(relay_tab_reserve(t, k, &a1, 100, 8000, &ttl, &abuse), RELAY_OK);
	assert_int_equal(relay_tab_expire(t, 9999), 0);
	assert_int_equal(relay_tab_expire(t, 10000), 2);
	assert_non_null(relay_tab_find(t, k, 17999));
	assert_null(relay_tab_find(t, k, 18000));
	assert_int_equal(relay_tab_count(t), 0);
	/* The holder reconnects: its reservation moves to the new connection;
	 * closing the old one then drops nothing. */
	assert_int_equal(relay_tab_reserve(t, k, &a1, 200, 20000, &ttl, &abuse), RELAY_OK);
	assert_int_equal(relay_tab_reserve(t, k, &a4, 201, 20001, &ttl, &abuse), RELAY_OK);
	assert_int_equal(relay_tab_get(t, 0)->conn, 201);
	assert_int_equal(relay_tab_count(t), 1);
	assert_int_equal(relay_tab_drop_conn(t, 200), 0);
	assert_int_equal(relay_tab_drop_conn(t, 201), 1);
	assert_null(relay_tab_get(t, 0));
	relay_tab_free(t);
}

static void test_churn(void **state)
{
	struct relay_tab_opts o = { .max_reservations = 4, .churn_max = 5 };
	struct relay_tab *t;
	struct io_addr a, b;
	uint8_t k[RELAY_KEY_LEN];
	uint32_t ttl;
	int abuse, reported = 0, st;
	unsigned int i;

	(void)state;
	assert_int_equal(relay_tab_new(&t, &o), 0);
	addr_of(&a, 7);
	addr_of(&b, 8);
	key_of(k, 1);
	/* One key reserving and dropping in a loop: 5 new reservations a
	 * minute pass, the 6th is refused and reported once. */
	for (i = 0; i < 20; i++) {
		st = relay_tab_reserve(t, k, &a, 1000 + i, 1000 + i, &ttl, &abuse);
		assert_int_equal(st, i < 5 ? RELAY_OK : RELAY_E_CHURN);
		reported += abuse;
		relay_tab_drop_conn(t, 1000 + i);
	}
	assert_int_equal(reported, 1);
	/* Refreshes are not churn; another source is not affected. */
	assert_int_equal(relay_tab_reserve(t, k, &b, 5, 2000, &ttl, &abuse), RELAY_OK);
	for (i = 0; i < 20; i++)
		assert_int_equal(relay_tab_reserve(t, k, &b, 5, 2001 + i, &ttl, &abuse), RELAY_OK);
	/* A minute later the source may reserve again. */
	key_of(k, 2);
	assert_int_equal(relay_tab_reserve(t, k, &a, 9, 1000 + RELAY_CHURN_WINDOW_MS, &ttl, &abuse),
			 RELAY_OK);
	/* The churn table stays bounded with many sources. */
	for (i = 0; i < 3 * RELAY_CHURN_SLOTS; i++) {
		struct io_addr x;

		addr_of(&x, 10 + i);
		key_of(k, 100 + i);
		relay_tab_reserve(t, k, &x, 10000 + i, 70000, &ttl, &abuse);
		relay_tab_drop_conn(t, 10000 + i);
	}
	assert_true(relay_tab_count(t) <= 4);
	relay_tab_free(t);
}

/* Flood evidence: only RELAY_FLOOD_STRIKES windows in a row over the
 * threshold are abuse; a quiet window in between clears the strikes. */
static void test_flood(void **state)
{
	struct relay_flood f = { 0 };
	uint64_t d = 0, p = 0;

	(void)state;
	assert_int_equal(relay_flood_step(&f, d += 100, p += 10, 100), 0); /* strike 1 */
	assert_int_equal(relay_flood_step(&f, d += 100, p += 10, 100), 0); /* strike 2 */
	assert_int_equal(relay_flood_step(&f, d += 99, p += 10, 100), 0);  /* quiet: cleared */
	assert_int_equal(f.strikes, 0);
	assert_int_equal(relay_flood_step(&f, d += 500, p += 50, 100), 0);
	assert_int_equal(relay_flood_step(&f, d += 500, p += 50, 100), 0);
	assert_int_equal(relay_flood_step(&f, d += 500, p += 50, 100), 1); /* 3 in a row */
	/* the strikes restart after abuse */
	assert_int_equal(relay_flood_step(&f, d += 500, p += 50, 100), 0);
	assert_int_equal(f.strikes, 1);
	/* a transfer at the circuit's rate: many drops, but no more than
	 * twice what went through, is never a strike */
	for (int i = 0; i < 10; i++)
		assert_int_equal(relay_flood_step(&f, d += 4000, p += 2000, 100), 0);
	assert_int_equal(f.strikes, 0);
	/* a counter that went backwards (a new circuit) is no strike */
	assert_int_equal(relay_flood_step(&f, 0, 0, 100), 0);
	assert_int_equal(f.strikes, 0);
	/* threshold 0: the default */
	assert_int_equal(relay_flood_step(&f, RELAY_DEF_FLOOD_DROPS - 1, 0, 0), 0);
	assert_int_equal(f.strikes, 0);
	assert_int_equal(relay_flood_step(&f, 3 * RELAY_DEF_FLOOD_DROPS, 0, 0), 0);
	assert_int_equal(f.strikes, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tab),
		cmocka_unit_test(test_churn),
		cmocka_unit_test(test_flood),
	};

	return cmocka_run_group_tests_name("relay_tab", tests, NULL, NULL);
}
