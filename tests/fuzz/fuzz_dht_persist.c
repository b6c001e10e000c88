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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t seed[32] = { 9 };
	struct dht_opts o = { .send = sink, .seed = seed };
	struct dht *dht;
	uint8_t *blob = NULL;
	size_t len = 0;

	if (size < 1 || dht_new(&dht, &o))
		return 0;
	if (data[0] & 1) {
		dht_import_storage(dht, data + 1, size - 1, 1000);
		if (dht_export_storage(dht, 1000, &blob, &len) == 0)
			free(blob);
	} else {
		dht_import_nodes(dht, data + 1, size - 1, 1000);
		if (dht_export_nodes(dht, &blob, &len) == 0)
			free(blob);
	}
	dht_free(dht);
	return 0;
}
