// SPDX-License-Identifier: MIT
/* libFuzzer target: the bencode decoder in strict and lenient modes, plus a
 * walk of every decoded node (lengths must stay inside the input). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weft/bencode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const struct bencode_doc *d, const struct bencode_node *n, const uint8_t *data,
		   size_t size)
{
	size_t sum = 0;

	for (const struct bencode_node *c = bencode_first(d, n); c; c = bencode_next(d, c)) {
		if (c->raw < data || c->raw + c->rawlen > data + size)
			__builtin_trap();
		if (c->type == BENCODE_STR && c->slen)
			sum += c->s[c->slen - 1];
		sum += walk(d, c, data, size);
	}
	return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct bencode_node nodes[1024];
	struct bencode_doc d = {.nodes = nodes, .cap = 1024};
	size_t used;

	for (unsigned int flags = 0; flags < 4; flags++) {
		if (bencode_decode(&d, data, size, flags, &used) == 0) {
			const struct bencode_node *r = bencode_root(&d);

			if (r->rawlen != used || used > size)
				__builtin_trap();
			(void)walk(&d, r, data, size);
			(void)bencode_dict_get(&d, r, "a");
		}
	}
	return 0;
}
