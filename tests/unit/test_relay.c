// SPDX-License-Identifier: MIT
/*
 * Relay control plane cores: message vectors (docs/PROTOCOL.md, "Relay
 * control") and refusals, the circuit bind request (answered by weft's own
 * STUN responder: WEFT-CIRCUIT is comprehension-optional), the reservation
 * table's limits, refresh, move, expiry and churn.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "weft/conn.h"
#include "weft/relay.h"

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = 0;
	unsigned int b;

	while (h[0] && h[1] && n < cap) {
		if (h[0] == ' ') {
			h++;
			continue;
		}
		assert_int_equal(sscanf(h, "%2x", &b), 1);
		out[n++] = (uint8_t)b;
		h += 2;
	}
	return n;
}

static void check_vector(const struct relay_msg *m, const char *hex)
{
	uint8_t want[RELAY_MSG_MAX], got[RELAY_MSG_MAX];
	size_t wl = unhex(hex, want, sizeof(want));
	struct relay_msg back;
	int n = relay_msg_encode(m, got, sizeof(got));

	assert_int_equal(n, (int)wl);
	assert_memory_equal(got, want, wl);
	assert_int_equal(relay_msg_parse(want, wl, &back), (int)wl);
	assert_memory_equal(&back, m, sizeof(back));
	/* Every strict prefix asks for more bytes; nothing is read past it. */
	for (size_t i = 0; i < wl; i++)
		assert_int_equal(relay_msg_parse(want, i, &back), 0);
	/* Trailing bytes are the next message's: only this one is consumed. */
	memcpy(got, want, wl);
	got[wl] = RELAY_MSG_RESERVE;
	assert_int_equal(relay_msg_parse(got, wl + 1, &back), (int)wl);
	/* Too short for the encoder. */
	assert_int_equal(relay_msg_encode(m, got, wl - 1), -ENOBUFS);
}

static void test_msg_vectors(void **state)
{
	struct relay_msg m;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = RELAY_MSG_RESERVE;
	check_vector(&m, "010000");

	memset(&m, 0, sizeof(m));
	m.type = RELAY_MSG_RESERVED;
	m.ttl_s = 60;
	check_vector(&m, "020005 00 0000003c");

	memset(&m, 0, sizeof(m));
	m.type = RELAY_MSG_CONNECT;
	memset(m.key, 0x11, sizeof(m.key));
	check_vector(&m, "030020 1111111111111111111111111111111111111111111111111111111111111111");

	memset(&m, 0, sizeof(m));
	m.type = RELAY_MSG_CIRCUIT;
	m.port = 42000;
	for (int i = 0; i < RELAY_TOKEN_LEN; i++)
		m.token[i] = (uint8_t)i;
	m.circuit = 1;
	m.lifetime_ms = 600000;
	m.max_bytes = 1ULL << 30;
	check_vector(&m, "040027 00 a410 000102030405060708090a0b0c0d0e0f 0000000000000001 "
			 "000927c0 0000000040000000");

	memset(&m, 0, sizeof(m));
	m.type = RELAY_MSG_CIRCUIT;
	m.status = RELAY_E_REFUSED;
	check_vector(&m, "040027 03 0000 00000000000000000000000000000000 0000000000000000 "
			 "00000000 0000000000000000");

	memset(&m, 0, sizeof(m));
	m.type = RELAY_MSG_OFFER;
	memset(m.key, 0x22, sizeof(m.key));
	m.circuit = 7;
	check_vector(&m, "050028 2222222222222222222222222222222222222222222222222222222222222222 "
			 "0000000000000007");

	memset(&m, 0, sizeof(m));
	m.type = RELAY_MSG_ANSWER;
	m.status = RELAY_E_REFUSED;
	check_vector(&m, "060001 03");

	memset(&m, 0, sizeof(m));
	m.type = RELAY_MSG_ENDED;
	m.circuit = 1;
	m.port = 42000;
	m.reason = 4; /* RELAY_END_BYTES */
	check_vector(&m, "07000b 0000000000000001 a410 04");
	assert_string_equal(relay_end_name(4), "byte_limit");
	assert_string_equal(relay_end_name(1), "deleted");
	assert_string_equal(relay_end_name(0), "unknown");
	assert_string_equal(relay_end_name(9), "unknown");

	assert_string_equal(relay_status_name(RELAY_E_REFUSED), "refused");
	assert_string_equal(relay_status_name(RELAY_E_NO_RESERVATION), "no_reservation");
	assert_string_equal(relay_status_name(200), "unknown");
}

static void test_msg_refusals(void **state)
{
	struct relay_msg m = { .type = 0x77 };
	uint8_t b[RELAY_MSG_MAX];

	(void)state;
	assert_int_equal(relay_msg_encode(&m, b, sizeof(b)), -EINVAL);
	/* Unknown type: refused from its first byte. */
	b[0] = 0x00;
	assert_int_equal(relay_msg_parse(b, 1, &m), -EINVAL);
	b[0] = 0x08;
	assert_int_equal(relay_msg_parse(b, 1, &m), -EINVAL);
	/* A length other than the type's: refused before the body arrives. */
	unhex("0100 01", b, sizeof(b));
	assert_int_equal(relay_msg_parse(b, 3, &m), -EINVAL);
	unhex("03ffff", b, sizeof(b));
	assert_int_equal(relay_msg_parse(b, 3, &m), -EINVAL);
	unhex("020004", b, sizeof(b));
	assert_int_equal(relay_msg_parse(b, 3, &m), -EINVAL);
	/* A granted circuit without a port. */
	memset(b, 0, sizeof(b));
	unhex("040027 00 0000", b, sizeof(b));
	assert_int_equal(relay_msg_parse(b, 42, &m), -EINVAL);
	assert_int_equal(relay_msg_parse(NULL, 3, &m), -EINVAL);
	/* ENDED: exact length, a port, a known reason (1..4). */
	unhex("07000c", b, sizeof(b));
	assert_int_equal(relay_msg_parse(b, 3, &m), -EINVAL);
	unhex("07000b 0000000000000001 0000 04", b, sizeof(b));
	assert_int_equal(relay_msg_parse(b, 14, &m), -EINVAL);
	unhex("07000b 0000000000000001 a410 00", b, sizeof(b));
	assert_int_equal(relay_msg_parse(b, 14, &m), -EINVAL);
	unhex("07000b 0000000000000001 a410 05", b, sizeof(b));
	assert_int_equal(relay_msg_parse(b, 14, &m), -EINVAL);
}

static void test_bind(void **state)
{
	uint8_t tid[12], tok[RELAY_TOKEN_LEN], req[48], out[CONN_STUN_MAX_REPLY];
	uint8_t tid2[12];
	struct io_addr from, mapped;
	int n;

	(void)state;
	for (int i = 0; i < 12; i++)
		tid[i] = (uint8_t)(0xa0 + i);
	memset(tok, 0x5a, sizeof(tok));
	/* The bind request's layout (relay_fwd.h builds it the same way). */
	assert_int_equal(conn_stun_request_attr(tid, 0xC057, tok, sizeof(tok), req, sizeof(req) - 1),
			 -ENOBUFS);
	assert_int_equal(conn_stun_request_attr(tid, 0xC057, tok, sizeof(tok), req, sizeof(req)), 48);
	/* Header: Binding request, 28 bytes of attributes, the cookie, tid. */
	assert_int_equal(req[0], 0x00);
	assert_int_equal(req[1], 0x01);
	assert_int_equal(req[2], 0x00);
	assert_int_equal(req[3], 28);
	assert_memory_equal(req + 8, tid, 12);
	/* WEFT-CIRCUIT 0xC057, 16 bytes, the token; then FINGERPRINT. */
	assert_int_equal(req[20], 0xc0);
	assert_int_equal(req[21], 0x57);
	assert_int_equal(req[23], 16);
	assert_memory_equal(req + 24, tok, 16);
	assert_int_equal(req[40], 0x80);
	assert_int_equal(req[41], 0x28);
	assert_true(conn_stun_is(req, sizeof(req)));
	/* A plain STUN server ignores the optional attribute and answers
	 * (FINGERPRINT verified); the answer is a bind response. */
	assert_int_equal(io_addr_parse(&from, "192.0.2.7", 5000), 0);
	n = conn_stun_answer(req, sizeof(req), &from, out, sizeof(out));
	assert_true(n > 0);
	assert_true(relay_bind_is_response(out, (size_t)n, tid2));
	assert_memory_equal(tid2, tid, 12);
	assert_int_equal(conn_stun_parse_response(out, (size_t)n, tid, &mapped), 0);
	assert_int_equal(mapped.port, 5000);
	/* A request is not a response; a corrupted token fails FINGERPRINT. */
	assert_false(relay_bind_is_response(req, sizeof(req), tid2));
	req[30] ^= 1;
	assert_int_equal(conn_stun_answer(req, sizeof(req), &from, out, sizeof(out)), -EINVAL);
	assert_false(relay_bind_is_response(out, 10, tid2));
}

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
		cmocka_unit_test(test_msg_vectors), cmocka_unit_test(test_msg_refusals),
		cmocka_unit_test(test_bind),	    cmocka_unit_test(test_tab),
		cmocka_unit_test(test_churn),	    cmocka_unit_test(test_flood),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
