// SPDX-License-Identifier: MIT
/*
 * The instance's random stream (node ids, tokens, transaction ids, the
 * order peers are handed out in): opts.rand when given, else reproducible
 * from opts.seed. Its own file, below every file of the DHT that draws.
 */
#include <sodium.h>

#include "dht/dht_int.h"

void dht_random(struct dht *dht, void *buf, size_t len)
{
	uint8_t seed[randombytes_SEEDBYTES];

	if (dht->o.rand) {
		dht->o.rand(dht->o.rand_arg, buf, len);
		return;
	}
	/* ChaCha20 stream keyed by BLAKE2b(state || counter): reproducible
	 * from opts.seed, distinct per call. */
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, sizeof(seed));
	crypto_generichash_update(&st, dht->rng, sizeof(dht->rng));
	crypto_generichash_update(&st, (const uint8_t *)&dht->rng_ctr, sizeof(dht->rng_ctr));
	crypto_generichash_final(&st, seed, sizeof(seed));
	dht->rng_ctr++;
	randombytes_buf_deterministic(buf, len, seed);
}
