// SPDX-License-Identifier: MIT
/* libFuzzer target: the DHT's persisted state is read back from disk at
 * start, so the importers must survive any bytes (a damaged or hostile
 * store). The first byte picks the importer; what was accepted is exported
 * again, which must work. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "weft/dht.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sink(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		socklen_t tolen)
{
	return 0;
}

/*
 * One instance serves up to DHT_FUZZ_REUSE inputs: a struct dht is ~1 MB
 * plus ~1.3 MB of tables, and creating one per input (an mmap and page
 * faults each time under ASan) held the target to ~600 inputs/s. An input
 * that imported something gets a fresh instance after it, so state carried
 * from one input to the next comes only from imports that failed part-way,
 * and never from more than DHT_FUZZ_REUSE - 1 inputs back. What was
 * imported is exported again, which must work.
 */
#define DHT_FUZZ_REUSE 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t seed[32] = { 9 };
	static struct dht *dht; /* fuzz harness only, see above */
	static unsigned int uses;
	struct dht_opts o = { .send = sink, .seed = seed };
	uint8_t *blob = NULL;
	size_t len = 0;
	int rc;

	if (size < 1)
		return 0;
	if (!dht && dht_new(&dht, &o))
		return 0;
	if (data[0] & 1) {
		rc = dht_import_storage(dht, data + 1, size - 1, 1000, 1764000000);
		if (rc > 0 && dht_export_storage(dht, 1000, 1764000000, &blob, &len) == 0)
			free(blob);
	} else {
		rc = dht_import_nodes(dht, data + 1, size - 1, 1000);
		if (rc > 0 && dht_export_nodes(dht, &blob, &len) == 0)
			free(blob);
	}
	if (rc > 0 || ++uses >= DHT_FUZZ_REUSE) {
		dht_free(dht);
		dht = NULL;
		uses = 0;
	}
	return 0;
}
