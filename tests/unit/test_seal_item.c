// SPDX-License-Identifier: MIT
/*
 * seal, items and metadata: sizes, segments that are content chunks,
 * round trips, a changed byte, a dropped tail, and sealed metadata with
 * every bound and truncation (docs/PRIVATE.md sections 3 and 5).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "weft/chunk.h"
#include "weft/seal.h"
#include "seal/seal_int.h"

static uint8_t ck[SEAL_KEY_LEN];

static int setup(void **state)
{
	if (sodium_init() < 0)
		return -1;
	tu_fill(ck, sizeof(ck), 28);
	return 0;
}

static void test_sizes(void **state)
{
	static const struct {
		uint64_t plain;
		int64_t cipher;
	} tab[] = {
		{0, 16},
		{1, 17},
		{SEAL_SEG_PLAIN - 1, SEAL_SEG_LEN - 1},
		{SEAL_SEG_PLAIN, SEAL_SEG_LEN},
		{SEAL_SEG_PLAIN + 1, SEAL_SEG_LEN + 17},
		{2 * (uint64_t)SEAL_SEG_PLAIN, 2 * (int64_t)SEAL_SEG_LEN},
		{SEAL_MAX_PLAIN, INT64_MAX},
		{SEAL_MAX_PLAIN - 1, INT64_MAX - 1},
		{SEAL_MAX_PLAIN + 1, -EINVAL},
		{UINT64_MAX, -EINVAL},
	};
	static const uint64_t bad[] = {0, 1, 15, SEAL_SEG_LEN + 1, SEAL_SEG_LEN + 16,
				       2 * SEAL_SEG_LEN + 16, (uint64_t)INT64_MAX + 1, UINT64_MAX};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		assert_int_equal(seal_cipher_size(tab[i].plain), tab[i].cipher);
		if (tab[i].cipher >= 0) {
			assert_int_equal(seal_plain_size((uint64_t)tab[i].cipher), tab[i].plain);
			/* one segment per content chunk */
			assert_int_equal(seal_nsegs(tab[i].plain),
					 b3tree_nchunks((uint64_t)tab[i].cipher));
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(seal_plain_size(bad[i]), -EINVAL);
	/* the mapping is one to one around the segment edges and at the top
	 * (found by fuzz_seal: a large ciphertext size whose plaintext was
	 * past the bound) */
	static const uint64_t edges[] = {SEAL_SEG_LEN, 2 * SEAL_SEG_LEN, INT64_MAX - 40,
					 0x7fffffffffffbbffull - 40};
	for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++) {
		for (uint64_t c = edges[e] - 40; c <= edges[e] + 40 && c <= INT64_MAX; c++) {
			int64_t p = seal_plain_size(c);

			if (p >= 0)
				assert_int_equal(seal_cipher_size((uint64_t)p), c);
		}
	}
}

static void test_item_key(void **state)
{
	uint8_t a[32], b[32];

	assert_int_equal(seal_item_key(ck, 0, a), 0);
	assert_int_equal(seal_item_key(ck, 1, b), 0);
	assert_memory_not_equal(a, b, 32);
	assert_int_equal(seal_item_key(ck, SEAL_META_SUBKEY, a), -EINVAL);
}

/* Encrypt an item through the stream, chunk by chunk. */
static uint8_t *encrypt_item(const uint8_t *key, const uint8_t *plain, uint64_t len,
			     uint64_t *clen)
{
	struct seal_stream s;
	uint8_t *c;
	uint64_t in = 0, out = 0;

	*clen = (uint64_t)seal_cipher_size(len);
	c = malloc(*clen);
	assert_non_null(c);
	assert_int_equal(seal_stream_init(&s, key, len), 0);
	while (!seal_stream_done(&s)) {
		size_t n = seal_stream_next_len(&s);

		assert_int_equal(seal_stream_encrypt(&s, plain + in, n, c + out), 0);
		/* the ciphertext segment is exactly content chunk j */
		assert_int_equal(n + SEAL_TAG_LEN, b3tree_chunk_size(*clen, s.next - 1));
		in += n;
		out += n + SEAL_TAG_LEN;
	}
	assert_int_equal(seal_stream_encrypt(&s, plain, 0, c), -ENOSPC);
	assert_int_equal(seal_stream_final(&s), 0);
	assert_int_equal(in, len);
	assert_int_equal(out, *clen);
	return c;
}

static void test_round_trip(void **state)
{
	static const uint64_t sizes[] = {0, 1, 1000, SEAL_SEG_PLAIN, SEAL_SEG_PLAIN + 1,
					 3 * SEAL_SEG_PLAIN - 5};
	uint8_t key[32];

	assert_int_equal(seal_item_key(ck, 7, key), 0);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t len = sizes[i], clen, nsegs = seal_nsegs(len);
		uint8_t *p = malloc(len + 1), *q = malloc(len + 1), *c;
		struct seal_stream s;

		tu_fill(p, len, i);
		c = encrypt_item(key, p, len, &clen);
		/* every chunk opens on its own */
		for (uint64_t j = nsegs; j-- > 0;) {
			uint64_t off = j * SEAL_SEG_LEN, n = (j + 1 < nsegs) ? SEAL_SEG_LEN : clen - off;

			assert_int_equal(seal_seg_decrypt(key, len, j, j + 1 == nsegs, c + off, n,
							  q + j * SEAL_SEG_PLAIN),
					 0);
		}
		assert_memory_equal(p, q, len);
		/* and the stream */
		memset(q, 0, len);
		assert_int_equal(seal_stream_init(&s, key, len), 0);
		for (uint64_t off = 0, po = 0; !seal_stream_done(&s);) {
			size_t n = seal_stream_next_len(&s) + SEAL_TAG_LEN;

			assert_int_equal(seal_stream_decrypt(&s, c + off, n, q + po), 0);
			off += n;
			po += n - SEAL_TAG_LEN;
		}
		assert_int_equal(seal_stream_final(&s), 0);
		assert_memory_equal(p, q, len);
		free(p);
		free(q);
		free(c);
	}
}

static void test_changed_byte(void **state)
{
	uint64_t len = SEAL_SEG_PLAIN + 100, clen;
	uint8_t key[32], other[32], *p = malloc(len), *q = malloc(SEAL_SEG_PLAIN), *c;
	static const size_t where[] = {0, 1, 4096, SEAL_SEG_LEN - 16, SEAL_SEG_LEN - 1};

	assert_int_equal(seal_item_key(ck, 0, key), 0);
	assert_int_equal(seal_item_key(ck, 1, other), 0);
	tu_fill(p, len, 3);
	c = encrypt_item(key, p, len, &clen);
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		c[where[i]] ^= 0x40;
		assert_int_equal(seal_seg_decrypt(key, len, 0, 0, c, SEAL_SEG_LEN, q), -EBADMSG);
		c[where[i]] ^= 0x40;
	}
	assert_int_equal(seal_seg_decrypt(key, len, 0, 0, c, SEAL_SEG_LEN, q), 0);
	/* another item's key, index, size or final flag: refused */
	assert_int_equal(seal_seg_decrypt(other, len, 0, 0, c, SEAL_SEG_LEN, q), -EBADMSG);
	assert_int_equal(seal_seg_decrypt(key, len, 1, 0, c, SEAL_SEG_LEN, q), -EBADMSG);
	assert_int_equal(seal_seg_decrypt(key, len + 1, 0, 0, c, SEAL_SEG_LEN, q), -EBADMSG);
	assert_int_equal(seal_seg_decrypt(key, len, 0, 1, c, SEAL_SEG_LEN, q), -EBADMSG);
	/* lengths the scheme never produces */
	assert_int_equal(seal_seg_decrypt(key, len, 0, 0, c, SEAL_SEG_LEN - 1, q), -EINVAL);
	assert_int_equal(seal_seg_decrypt(key, len, 0, 0, c, 15, q), -EINVAL);
	assert_int_equal(seal_seg_decrypt(key, len, 1, 1, c, 16, q), -EINVAL);
	assert_int_equal(seal_seg_encrypt(key, len, 0, 0, p, 100, c), -EINVAL);
	free(p);
	free(q);
	free(c);
}

/* libcrypto (loaded on first use) and libsodium's fallback agree byte for
 * byte, open each other's output, and both refuse a changed byte with the
 * output wiped; lengths around the 64-byte block and 0. */
static void test_libcrypto_and_sodium_agree(void **state)
{
	static const size_t lens[] = {0, 1, 63, 64, 65, 1000, 65536};
	uint8_t key[32], nonce[24], aad[8], *in, *a, *b, *o;

	(void)state;
	in = malloc(65536);
	a = malloc(65536 + SEAL_TAG_LEN);
	b = malloc(65536 + SEAL_TAG_LEN);
	o = malloc(65536 + SEAL_TAG_LEN);
	assert_non_null(in);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(o);
	assert_int_equal(seal_have_libcrypto(), 1); /* libssl-dev's libcrypto.so.3 */
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t n = lens[i];

		randombytes_buf(key, sizeof(key));
		randombytes_buf(nonce, sizeof(nonce));
		randombytes_buf(aad, sizeof(aad));
		randombytes_buf(in, 65536);
		assert_int_equal(seal_xchacha(1, 0, key, nonce, aad, in, n, a), 0);
		assert_int_equal(seal_xchacha(1, 1, key, nonce, aad, in, n, b), 0);
		assert_memory_equal(a, b, n + SEAL_TAG_LEN);
		assert_int_equal(seal_xchacha(0, 1, key, nonce, aad, a, n + SEAL_TAG_LEN, o), 0);
		if (n)
			assert_memory_equal(o, in, n);
		assert_int_equal(seal_xchacha(0, 0, key, nonce, aad, b, n + SEAL_TAG_LEN, o), 0);
		if (n)
			assert_memory_equal(o, in, n);
		for (int sodium = 0; sodium < 2; sodium++) {
			a[n / 2] ^= 1;
			memset(o, 0xaa, n + SEAL_TAG_LEN);
			assert_int_equal(seal_xchacha(0, sodium, key, nonce, aad, a, n + SEAL_TAG_LEN, o),
					 -EBADMSG);
			for (size_t k = 0; k < n; k++)
				assert_int_equal(o[k], 0);
			a[n / 2] ^= 1;
		}
	}
	free(in);
	free(a);
	free(b);
	free(o);
}

static void test_truncated(void **state)
{
	uint64_t len = 2 * SEAL_SEG_PLAIN + 10, clen;
	uint8_t key[32], *p = malloc(len), *q = malloc(len), *c;
	struct seal_stream s;

	assert_int_equal(seal_item_key(ck, 2, key), 0);
	tu_fill(p, len, 4);
	c = encrypt_item(key, p, len, &clen);
	/* the final segment dropped: what is left reads as a complete item of
	 * 2 segments, but the last of them was not sealed as final, and the
	 * size bound in the AAD differs */
	assert_int_equal(seal_plain_size(2 * SEAL_SEG_LEN), 2 * SEAL_SEG_PLAIN);
	assert_int_equal(seal_seg_decrypt(key, 2 * SEAL_SEG_PLAIN, 1, 1, c + SEAL_SEG_LEN,
					  SEAL_SEG_LEN, q),
			 -EBADMSG);
	assert_int_equal(seal_seg_decrypt(key, len, 1, 1, c + SEAL_SEG_LEN, SEAL_SEG_LEN, q),
			 -EBADMSG);
	/* the stream, told the real size, never completes */
	assert_int_equal(seal_stream_init(&s, key, len), 0);
	assert_int_equal(seal_stream_decrypt(&s, c, SEAL_SEG_LEN, q), 0);
	assert_int_equal(seal_stream_decrypt(&s, c + SEAL_SEG_LEN, SEAL_SEG_LEN, q), 0);
	assert_int_equal(seal_stream_final(&s), -EBADMSG);
	/* a short last chunk is a wrong length, a dropped one a missing tail */
	assert_int_equal(seal_stream_init(&s, key, len), 0);
	assert_int_equal(seal_stream_decrypt(&s, c, SEAL_SEG_LEN - 1, q), -EINVAL);
	free(p);
	free(q);
	free(c);
}

#define P(s) (const uint8_t *)(s), sizeof(s) - 1

static void test_meta_round_trip(void **state)
{
	struct seal_meta_item in[3] = {
		{P("docs/a.txt"), P("text/plain"), 3},
		{P("b.bin"), NULL, 0, 0},
		{P("c/d/e.jpg"), P("image/jpeg"), SEAL_MAX_PLAIN},
	};
	struct seal_meta_item out[3];
	uint8_t buf[512], plain[512], other[32];
	size_t len;
	uint32_t n;

	assert_int_equal(seal_meta_encrypt(ck, in, 3, buf, 10, &len), -ENOSPC);
	assert_true(len > 10);
	assert_int_equal(seal_meta_encrypt(ck, in, 3, buf, sizeof(buf), &len), 0);
	assert_int_equal(seal_meta_decrypt(ck, buf, len, plain, sizeof(plain), out, 3, &n), 0);
	assert_int_equal(n, 3);
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(out[i].path_len, in[i].path_len);
		assert_memory_equal(out[i].path, in[i].path, in[i].path_len);
		assert_int_equal(out[i].type_len, in[i].type_len);
		if (in[i].type_len)
			assert_memory_equal(out[i].type, in[i].type, in[i].type_len);
		assert_int_equal(out[i].size, in[i].size);
	}
	assert_int_equal(seal_meta_decrypt(ck, buf, len, plain, sizeof(plain), out, 2, &n), -ENOSPC);
	memcpy(other, ck, 32);
	other[0] ^= 1;
	assert_int_equal(seal_meta_decrypt(other, buf, len, plain, sizeof(plain), out, 3, &n),
			 -EBADMSG);
	for (size_t i = 0; i < len; i += 7) {
		buf[i] ^= 1;
		assert_int_equal(seal_meta_decrypt(ck, buf, len, plain, sizeof(plain), out, 3, &n),
				 -EBADMSG);
		buf[i] ^= 1;
	}
	for (size_t l = 0; l < len; l++)
		assert_int_equal(seal_meta_decrypt(ck, buf, l, plain, sizeof(plain), out, 3, &n),
				 -EBADMSG);
	/* no items is a valid list */
	assert_int_equal(seal_meta_encrypt(ck, in, 0, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 5 + SEAL_META_OVERHEAD);
	assert_int_equal(seal_meta_decrypt(ck, buf, len, plain, sizeof(plain), out, 0, &n), 0);
	assert_int_equal(n, 0);
}

static void test_meta_bounds(void **state)
{
	static uint8_t path[SEAL_META_MAX_PATH + 1], type[SEAL_META_MAX_TYPE + 1], buf[4096];
	static const struct {
		size_t path_len, type_len;
		uint64_t size;
		int nul, err;
	} tab[] = {
		{SEAL_META_MAX_PATH, SEAL_META_MAX_TYPE, SEAL_MAX_PLAIN, 0, 0},
		{SEAL_META_MAX_PATH + 1, 0, 0, 0, -EINVAL},
		{0, 0, 0, 0, -EINVAL},
		{1, SEAL_META_MAX_TYPE + 1, 0, 0, -EINVAL},
		{1, 0, SEAL_MAX_PLAIN + 1, 0, -EINVAL},
		{10, 0, 0, 1, -EINVAL},
	};
	struct seal_meta_item it, out;
	size_t len;
	uint32_t n;

	memset(path, 'p', sizeof(path));
	memset(type, 't', sizeof(type));
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		it = (struct seal_meta_item){path, tab[i].path_len, type, tab[i].type_len,
					     tab[i].size};
		path[5] = tab[i].nul ? 0 : 'p';
		assert_int_equal(seal_meta_encode(&it, 1, buf, sizeof(buf), &len), tab[i].err);
		if (!tab[i].err) {
			assert_int_equal(seal_meta_decode(buf, len, &out, 1, &n), 0);
			assert_int_equal(n, 1);
		}
	}
	path[5] = 'p';
	assert_int_equal(seal_meta_encode(&it, SEAL_META_MAX_ITEMS + 1, buf, sizeof(buf), &len),
			 -E2BIG);
}

/* The decoder never trusts a length: every truncation, every length field
 * pushed past the end, a huge count, trailing bytes. */
static void test_meta_decode_hostile(void **state)
{
	struct seal_meta_item in[2] = {{P("x/y"), P("a/b"), 9}, {P("z"), NULL, 0, 1}};
	struct seal_meta_item out[4];
	uint8_t buf[128], tmp[130];
	size_t len;
	uint32_t n;

	assert_int_equal(seal_meta_encode(in, 2, buf, sizeof(buf), &len), 0);
	assert_int_equal(seal_meta_decode(buf, len, out, 4, &n), 0);
	for (size_t l = 0; l < len; l++)
		assert_int_equal(seal_meta_decode(buf, l, out, 4, &n), -EBADMSG);
	memcpy(tmp, buf, len);
	tmp[len] = 0;
	assert_int_equal(seal_meta_decode(tmp, len + 1, out, 4, &n), -EBADMSG);
	/* path_len, type_len and count fields set to large values */
	static const struct {
		size_t off, bytes;
		uint64_t v;
	} patch[] = {{5, 2, 0xffff}, {5, 2, 4}, {10, 1, 0xff}, {10, 1, 4}, {1, 4, 1}, {1, 4, 0xffffffff},
		     {1, 4, 3}, {1, 4, SEAL_META_MAX_ITEMS}, {0, 1, 2}, {5, 2, 0}};
	for (size_t i = 0; i < sizeof(patch) / sizeof(patch[0]); i++) {
		memcpy(tmp, buf, len);
		for (size_t b = 0; b < patch[i].bytes; b++)
			tmp[patch[i].off + b] = (uint8_t)(patch[i].v >> (8 * b));
		assert_int_equal(seal_meta_decode(tmp, len, out, 4, &n), -EBADMSG);
		assert_int_equal(n, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_item_key),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_changed_byte),
		cmocka_unit_test(test_libcrypto_and_sodium_agree),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_meta_round_trip),
		cmocka_unit_test(test_meta_bounds),
		cmocka_unit_test(test_meta_decode_hostile),
	};
	return cmocka_run_group_tests_name("seal_item", tests, setup, NULL);
}
