// SPDX-License-Identifier: MIT
/*
 * Write tokens (BEP 5): token = SipHash-2-4(key, requester IP), the key
 * being the first 16 bytes of a random 32-byte secret. SipHash is a PRF
 * with a 128-bit key and a 64-bit output: a token for an address cannot be
 * made without the key, as with the BLAKE2b-64 used before, at a fifth of
 * its cost (a token goes into every get_peers / get answer). The secret
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
	_Static_assert(crypto_shorthash_BYTES == DHT_TOKEN_LEN, "a token is one SipHash output");
	_Static_assert(crypto_shorthash_KEYBYTES <= sizeof(t->secret[0]), "key within the secret");

	crypto_shorthash(out, ip, iplen > 0 ? (unsigned long long)iplen : 0, t->secret[which & 1]);
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
