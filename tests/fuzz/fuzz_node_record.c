// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: node records (conn_record_parse), observed-address
 * payloads and the STUN responder. An accepted record must re-encode to
 * bytes that parse to the same record, and that are the input itself when
 * the input has no unknown keys; a STUN answer never exceeds its buffer and
 * is itself well-formed STUN.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn_record r, r2;
	struct io_addr a = { .family = AF_INET, .port = 4433, .addr = { 198, 51, 100, 7 } };
	uint8_t out[CONN_REC_MAX_LEN], reply[CONN_STUN_MAX_REPLY];
	int n;

	if (conn_record_parse(data, size, &r) == 0) {
		n = conn_record_encode(&r, out, sizeof(out));
		check(n > 0 && (size_t)n <= size);
		check(conn_record_parse(out, (size_t)n, &r2) == 0);
		check(r.version == r2.version && r.caps == r2.caps && r.ts == r2.ts &&
		      r.naddrs == r2.naddrs && r.nrelays == r2.nrelays);
		check(!memcmp(r.addrs, r2.addrs, sizeof(r.addrs)));
	}
	if (conn_obs_parse(data, size, &a) == 0) {
		n = conn_obs_encode(&a, out, sizeof(out));
		check(n > 0 && (size_t)n == size && !memcmp(out, data, size));
	}
	n = conn_stun_answer(data, size, &a, reply, sizeof(reply));
	check(n <= (int)sizeof(reply));
	if (n > 0)
		check(conn_stun_is(reply, (size_t)n));
	return 0;
}
