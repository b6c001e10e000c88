// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for seal's decoders (docs/PRIVATE.md): the sealed
 * metadata encoding, the group record parser and verifier, ciphertext
 * sizes, wrapped-key entries and segments. Invariants: an accepted
 * metadata encoding re-encodes to the input itself; an accepted group
 * record's entries lie inside the input and its length is the one its
 * count gives; plain and cipher sizes map back to each other. Seed the
 * corpus with the docs/PROTOCOL.md vectors (hex-decoded), then:
 *   make fuzz && build/fuzz/fuzz_seal -max_len=65536 corpus/
 */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct seal_meta_item items[SEAL_META_MAX_ITEMS];
static uint8_t buf[SEAL_META_MAX_LEN + SEAL_META_OVERHEAD];

static void meta(const uint8_t *data, size_t size)
{
	static const uint8_t key[SEAL_KEY_LEN] = {0};
	uint32_t n;
	size_t len;

	if (seal_meta_decode(data, size, items, SEAL_META_MAX_ITEMS, &n) == 0) {
		for (uint32_t i = 0; i < n; i++) {
			if (items[i].path < data || items[i].path + items[i].path_len > data + size)
				abort();
		}
		if (seal_meta_encode(items, n, buf, sizeof(buf), &len) != 0 || len != size ||
		    memcmp(buf, data, size) != 0)
			abort();
	} else if (n != 0) {
		abort();
	}
	/* sealed under the all-zero key: almost always a bad tag */
	if (seal_meta_decrypt(key, data, size, buf, sizeof(buf), items, SEAL_META_MAX_ITEMS, &n) ==
		0 &&
	    n > SEAL_META_MAX_ITEMS)
		abort();
}

static void group(const uint8_t *data, size_t size)
{
	static const uint8_t sk[SEAL_ED_SK_LEN] = {0};
	struct seal_group_record r;
	uint8_t seed[SEAL_KEY_LEN];

	if (seal_group_parse(&r, data, size) == 0) {
		if (r.nmembers == 0 || r.nmembers > SEAL_MAX_RECIPIENTS ||
		    size !=
			SEAL_GROUP_FIXED_LEN + (size_t)r.nmembers * SEAL_ENTRY_LEN + SEAL_SIG_LEN ||
		    r.entries != data + SEAL_GROUP_FIXED_LEN)
			abort();
	}
	if (seal_group_decode(&r, data, size, NULL) == 0)
		(void)seal_group_open(&r, sk, seed);
}

static void sizes_and_entries(const uint8_t *data, size_t size)
{
	static const uint8_t x_sk[SEAL_X_SK_LEN] = {1}, x_pk[SEAL_X_PK_LEN] = {9};
	uint8_t key[SEAL_KEY_LEN] = {0}, out[SEAL_SEG_LEN];
	uint64_t c = 0;
	int64_t p;

	for (size_t i = 0; i < 8 && i < size; i++)
		c |= (uint64_t)data[i] << (8 * i);
	p = seal_plain_size(c);
	if (p >= 0 && seal_cipher_size((uint64_t)p) != (int64_t)c)
		abort();
	if (size >= SEAL_X_PK_LEN)
		(void)seal_unwrap(x_sk, x_pk, data, data + SEAL_X_PK_LEN,
				  (size - SEAL_X_PK_LEN) / SEAL_ENTRY_LEN, key);
	if (size <= SEAL_SEG_LEN)
		(void)seal_seg_decrypt(key, size, 0, 1, data, size, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (sodium_init() < 0)
		abort();
	meta(data, size);
	group(data, size);
	sizes_and_entries(data, size);
	return 0;
}
