// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: relay control messages (relay_msg_parse) and the bind
 * response check. A message the parser accepts re-encodes to exactly the
 * bytes it consumed; a partial message never asks for more than
 * RELAY_MSG_MAX bytes in all.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[RELAY_MSG_MAX], tid[12];
	struct relay_msg m;
	size_t off = 0;
	int n;

	/* A stream of messages, as a control stream delivers them. */
	while (off < size) {
		n = relay_msg_parse(data + off, size - off, &m);
		if (n <= 0) {
			check(n == -EINVAL || size - off < RELAY_MSG_MAX);
			break;
		}
		check(n <= RELAY_MSG_MAX);
		check(relay_msg_encode(&m, out, sizeof(out)) == n);
		check(!memcmp(out, data + off, (size_t)n));
		off += (size_t)n;
	}
	(void)relay_bind_is_response(data, size, tid);
	return 0;
}
