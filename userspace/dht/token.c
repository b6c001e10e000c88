// SPDX-License-Identifier: MIT
/*
 * Write tokens (BEP 5): token = BLAKE2b-64(secret, requester IP). The secret
 * rotates every DHT_TOKEN_ROTATE_MS (5 min); tokens made with the current or
 * the previous secret are accepted, so a token lives 5 to 10 minutes.
 */
#include <sodium.h>
#include <string.h>

#include "dht/dht_int.h"

void dht_token_init(struct dht_tokens *t, const uint8_t fresh[32], uint64_t now)
{
	memcpy(t->secret[0], fresh, 32);
	memcpy(t->secret[1], fresh, 32);
	t->rotated_ms = now;
}

void dht_token_rotate(struct dht_tokens *t, const uint8_t fresh[32], uint64_t now)
{
	memcpy(t->secret[1], t->secret[0], 32);
	memcpy(t->secret[0], fresh, 32);
	t->rotated_ms = now;
}

void dht_token_make(const struct dht_tokens *t, int which, const struct sockaddr *sa,
		    uint8_t out[DHT_TOKEN_LEN])
{
	const uint8_t *ip = NULL;
	int iplen = dht_addr_ip(sa, &ip);
	uint8_t h[crypto_generichash_BYTES_MIN];

	crypto_generichash(h, sizeof(h), ip, iplen > 0 ? (size_t)iplen : 0, t->secret[which & 1],
			   32);
	memcpy(out, h, DHT_TOKEN_LEN);
}

int dht_token_check(const struct dht_tokens *t, const struct sockaddr *sa, const uint8_t *tok,
		    size_t len)
{
	uint8_t want[DHT_TOKEN_LEN];

	if (!tok || len != DHT_TOKEN_LEN)
		return 0;
	for (int i = 0; i < 2; i++) {
		dht_token_make(t, i, sa, want);
		if (!sodium_memcmp(want, tok, DHT_TOKEN_LEN))
			return 1;
	}
	return 0;
}
