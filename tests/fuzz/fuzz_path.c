// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: path coordination messages (path_msg_parse) and punch
 * probes (path_probe_parse). An accepted message re-encodes to exactly the
 * bytes it was parsed from; an accepted probe likewise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct path_offer o;
	struct path_probe p;
	enum path_msg_type t;
	uint8_t out[PATH_MSG_MAX], idx;
	size_t used;
	int n;

	if (path_msg_parse(data, size, &used, &t, &o, &idx) == 0) {
		check(used <= size);
		n = path_msg_encode(out, sizeof(out), t, &o, idx);
		check(n > 0 && (size_t)n == used && !memcmp(out, data, used));
	}
	if (path_probe_parse(data, size, &p) == 0) {
		n = path_probe_encode(out, &p);
		check(n == PATH_PROBE_LEN && !memcmp(out, data, PATH_PROBE_LEN));
	}
	return 0;
}
