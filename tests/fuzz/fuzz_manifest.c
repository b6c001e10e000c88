// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the manifest decoder. Any input must be rejected
 * cleanly or decode to a manifest whose canonical encoding is the input
 * itself (one manifest, one encoding). Seed the corpus with the
 * docs/CONTENT.md vector (hex-decoded), then:
 *   make fuzz && build/fuzz/fuzz_manifest -max_len=65536 corpus/
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest m;
	uint8_t *re;
	size_t len;

	if (manifest_decode(&m, data, size) != 0) {
		/* A failed decode leaves nothing allocated. */
		if (m.items || m.nitems)
			abort();
		return 0;
	}
	re = malloc(size ? size : 1);
	if (!re)
		abort();
	if (manifest_encode(&m, re, size, &len) != 0 || len != size || memcmp(re, data, size))
		abort();
	for (uint32_t i = 0; i < m.nitems; i++) {
		if (!manifest_path_valid(m.items[i].path, strlen(m.items[i].path)))
			abort();
	}
	free(re);
	manifest_free(&m);
	return 0;
}
