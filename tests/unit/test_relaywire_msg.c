// SPDX-License-Identifier: MIT
/*
 * Relay control messages and the circuit bind (module relaywire): message
 * vectors (docs/PROTOCOL.md, "Relay control") and refusals, the circuit
 * bind request (answered by weft's own STUN responder: WEFT-CIRCUIT is
 * comprehension-optional).
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
#include "weft/relay_wire.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_vectors),
		cmocka_unit_test(test_msg_refusals),
		cmocka_unit_test(test_bind),
	};

	return cmocka_run_group_tests_name("relaywire_msg", tests, NULL, NULL);
}
