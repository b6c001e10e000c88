// SPDX-License-Identifier: MIT
/* Manifests: vectors, sign / verify / tamper, canonical form, bounds, paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/bencode.h"
#include "weft/blake3.h"
#include "weft/identity.h"
#include "weft/manifest.h"
#include "weft/seal.h"
#include "weft/util.h"

static void key(struct identity *id, uint8_t base)
{
	uint8_t seed[IDENTITY_SEED_LEN];

	for (int i = 0; i < IDENTITY_SEED_LEN; i++)
		seed[i] = (uint8_t)(base + i);
	identity_from_seed(id, seed);
}

/* The manifest of the docs/CONTENT.md vector. */
static void vector_manifest(struct manifest *m, struct identity *id)
{
	uint8_t c1[32], c2[32];

	key(id, 0);
	manifest_init(m);
	assert_int_equal(manifest_set_name(m, "photos", 6), 0);
	m->seq = 7;
	m->created = 1700000000;
	m->visibility = MANIFEST_PUBLIC;
	blake3_hash("hello\n", 6, c1, 32);
	blake3_hash("", 0, c2, 32);
	/* Added out of order: signing sorts. */
	assert_int_equal(manifest_add_item(m, "dir/b.bin", 9, c2, 0, "application/octet-stream"),
			 0);
	assert_int_equal(manifest_add_item(m, "a.txt", 5, c1, 6, "text/plain"), 0);
	assert_int_equal(manifest_sign(m, id), 0);
}

static const char vec_hex[] =
	"64373a63726561746564693137303030303030303065353a6974656d736c6432"
	"3a696433323a8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5"
	"f2dbfd629a99343a70617468353a612e747874343a73697a65693665343a7479"
	"706531303a746578742f706c61696e6564323a696433323aaf1349b9f5f9a1a6"
	"a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262343a70617468393a"
	"6469722f622e62696e343a73697a65693065343a7479706532343a6170706c69"
	"636174696f6e2f6f637465742d73747265616d6565343a6e616d65363a70686f"
	"746f73323a706b33323a03a107bff3ce10be1d70dd18e74bc09967e4d6309ba5"
	"0d5f1ddc8664125531b8333a736571693765333a73696432303a211f57fcc7c6"
	"984ca4e346f4e0f99ee6b001972f333a73696736343a5e121b9c5a748481b381"
	"a5ee4ad4a407ab791c8f437ef1874fcc577bd6e6cc325183af0375f1448e7a70"
	"48e1a2e37cb4935e256408654b72c2bb5cd94b765709313a76693165333a7669"
	"7369306565";

static char *hexdup(const uint8_t *b, size_t len)
{
	char *h = malloc(2 * len + 1);

	assert_non_null(h);
	util_hex(h, b, len);
	return h;
}

static void test_vector_roundtrip(void **state)
{
	struct identity id;
	struct manifest m, d;
	uint8_t *buf = malloc(MANIFEST_MAX_SIZE), *buf2 = malloc(MANIFEST_MAX_SIZE);
	size_t len, len2;
	char *h;

	assert_non_null(buf);
	assert_non_null(buf2);
	vector_manifest(&m, &id);
	assert_string_equal(m.items[0].path, "a.txt");
	assert_int_equal(manifest_encode(&m, buf, MANIFEST_MAX_SIZE, &len), 0);
	h = hexdup(buf, len);
	assert_string_equal(h, vec_hex);
	free(h);

	assert_int_equal(manifest_decode(&d, buf, len), 0);
	assert_memory_equal(d.pk, id.pk, 32);
	assert_memory_equal(d.share_id, m.share_id, 20);
	assert_string_equal(d.name, "photos");
	assert_int_equal(d.seq, 7);
	assert_int_equal(d.created, 1700000000);
	assert_int_equal(d.visibility, MANIFEST_PUBLIC);
	assert_int_equal(d.nitems, 2);
	assert_string_equal(d.items[1].path, "dir/b.bin");
	assert_string_equal(d.items[1].type, "application/octet-stream");
	assert_int_equal(d.items[0].size, 6);
	assert_memory_equal(d.items[0].id, m.items[0].id, 32);
	assert_int_equal(manifest_encode(&d, buf2, MANIFEST_MAX_SIZE, &len2), 0);
	assert_int_equal(len2, len);
	assert_memory_equal(buf, buf2, len);

	/* Share id derivation. */
	uint8_t sid[20];

	assert_int_equal(manifest_share_id(id.pk, "photos", 6, sid), 0);
	assert_memory_equal(sid, d.share_id, 20);
	assert_int_equal(manifest_share_id(id.pk, "photoz", 6, sid), 0);
	assert_memory_not_equal(sid, d.share_id, 20);

	/* Encode errors. */
	assert_int_equal(manifest_encode(&m, buf, 10, &len2), -ENOBUFS);
	manifest_free(&d);
	manifest_init(&d);
	assert_int_equal(manifest_encode(&d, buf, MANIFEST_MAX_SIZE, &len2), -EINVAL);
	manifest_free(&m);
	free(buf);
	free(buf2);
}

static void test_tamper(void **state)
{
	struct identity id;
	struct manifest m, d;
	uint8_t buf[4096];
	size_t len;
	static const uint8_t masks[] = { 0x01, 0x02, 0x10, 0x80, 0xff };

	vector_manifest(&m, &id);
	assert_int_equal(manifest_encode(&m, buf, sizeof(buf), &len), 0);
	for (size_t i = 0; i < len; i++) {
		for (size_t k = 0; k < sizeof(masks); k++) {
			buf[i] ^= masks[k];
			if (manifest_decode(&d, buf, len) == 0)
				fail_msg("flip of byte %zu by %02x accepted", i, masks[k]);
			buf[i] ^= masks[k];
		}
	}
	/* Every truncation, and trailing garbage. */
	for (size_t i = 0; i < len; i++)
		assert_true(manifest_decode(&d, buf, i) < 0);
	buf[len] = 'e';
	assert_int_equal(manifest_decode(&d, buf, len + 1), -EINVAL);
	/* The intact one still verifies. */
	assert_int_equal(manifest_decode(&d, buf, len), 0);
	manifest_free(&d);

	/* Signed by another key: the signature does not match pk. */
	struct identity other;

	key(&other, 100);
	memcpy(m.pk, other.pk, 32);
	assert_int_equal(manifest_share_id(m.pk, "photos", 6, m.share_id), 0);
	assert_int_equal(manifest_encode(&m, buf, sizeof(buf), &len), 0);
	assert_int_equal(manifest_decode(&d, buf, len), -EBADMSG);
	manifest_free(&m);
}

/*
 * Hand-built encodings carrying a valid signature, each breaking one rule
 * the signature alone would not catch.
 */
enum forge {
	F_OK,
	F_UNSORTED_ITEMS,
	F_DUP_ITEMS,
	F_EXTRA_KEY,
	F_BAD_SID,
	F_VERSION,
	F_VIS,
	F_BAD_PATH,
	F_BAD_TYPE,
	F_ITEM_EXTRA,
	F_SHORT_ID,
	F_NEG_SIZE,
	F_COUNT,
};

static void put_item(struct bencode_buf *b, const char *path, const char *type, int64_t size,
		     int extra, size_t idlen)
{
	uint8_t cid[32] = { 1 };

	bencode_put_dict(b);
	if (extra) {
		bencode_put_cstr(b, "extra");
		bencode_put_int(b, 1);
	}
	bencode_put_cstr(b, "id");
	bencode_put_str(b, cid, idlen);
	bencode_put_cstr(b, "path");
	bencode_put_cstr(b, path);
	bencode_put_cstr(b, "size");
	bencode_put_int(b, size);
	bencode_put_cstr(b, "type");
	bencode_put_cstr(b, type);
	bencode_put_end(b);
}

static void forge_body(struct bencode_buf *b, enum forge f, const struct identity *id,
		       const uint8_t *sig)
{
	uint8_t sid[20];

	manifest_share_id(id->pk, "s", 1, sid);
	if (f == F_BAD_SID)
		sid[0] ^= 1;
	bencode_put_dict(b);
	bencode_put_cstr(b, "created");
	bencode_put_int(b, 5);
	if (f == F_EXTRA_KEY) {
		bencode_put_cstr(b, "extra");
		bencode_put_int(b, 0);
	}
	bencode_put_cstr(b, "items");
	bencode_put_list(b);
	put_item(b, f == F_UNSORTED_ITEMS ? "c" : "a", "text/plain", 1, 0, 32);
	put_item(b, f == F_DUP_ITEMS ? "a" : f == F_BAD_PATH ? "b/../c" : "b",
		 f == F_BAD_TYPE ? "text" : "text/plain", f == F_NEG_SIZE ? -1 : 2,
		 f == F_ITEM_EXTRA, f == F_SHORT_ID ? 31 : 32);
	bencode_put_end(b);
	bencode_put_cstr(b, "name");
	bencode_put_cstr(b, "s");
	bencode_put_cstr(b, "pk");
	bencode_put_str(b, id->pk, 32);
	bencode_put_cstr(b, "seq");
	bencode_put_int(b, 1);
	bencode_put_cstr(b, "sid");
	bencode_put_str(b, sid, 20);
	if (sig) {
		bencode_put_cstr(b, "sig");
		bencode_put_str(b, sig, 64);
	}
	bencode_put_cstr(b, "v");
	bencode_put_int(b, f == F_VERSION ? 2 : 1);
	bencode_put_cstr(b, "vis");
	bencode_put_int(b, f == F_VIS ? 2 : 0);
	bencode_put_end(b);
}

static size_t forge(uint8_t *out, size_t cap, enum forge f, const struct identity *id)
{
	uint8_t msg[2048], sig[64];
	struct bencode_buf b;
	size_t pre = strlen("weft-manifest-v1");

	memcpy(msg, "weft-manifest-v1", pre);
	bencode_buf_init(&b, msg + pre, sizeof(msg) - pre);
	forge_body(&b, f, id, NULL);
	assert_int_equal(b.err, 0);
	identity_sign(id, msg, pre + b.len, sig);
	bencode_buf_init(&b, out, cap);
	forge_body(&b, f, id, sig);
	assert_int_equal(b.err, 0);
	return b.len;
}

static void test_forged(void **state)
{
	struct identity id;
	struct manifest d;
	uint8_t buf[2048];
	size_t len;

	key(&id, 9);
	/* The baseline forgery is a valid manifest: the harness is right. */
	len = forge(buf, sizeof(buf), F_OK, &id);
	assert_int_equal(manifest_decode(&d, buf, len), 0);
	assert_int_equal(d.nitems, 2);
	manifest_free(&d);
	for (int f = F_OK + 1; f < F_COUNT; f++) {
		int err;

		len = forge(buf, sizeof(buf), (enum forge)f, &id);
		err = manifest_decode(&d, buf, len);
		if (err != -EINVAL)
			fail_msg("forgery %d: got %d, want -EINVAL", f, err);
		assert_int_equal(d.nitems, 0);
	}
}

static void test_paths(void **state)
{
	static const char *bad[] = {
		"/abs", "a/", "a//b", "..", "a/../b", ".", "./a", "a/.", "a\\b", "a\x01",
		"a\x7f", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff",
		"a\xc3", "\xc2\x85", "/",
	};
	static const char *good[] = {
		"a", "dir/sub/file.txt", "\xc3\xbc/\xe3\x83\x95\xe3\x82\xa1", "..a", "a..",
		".hidden/x", "sp ace", "\xf0\x9f\x98\x80",
	};
	char big[2048];

	for (size_t i = 0; i < WEFT_ARRAY_SIZE(bad); i++)
		if (manifest_path_valid(bad[i], strlen(bad[i])))
			fail_msg("bad path %zu accepted", i);
	for (size_t i = 0; i < WEFT_ARRAY_SIZE(good); i++)
		if (!manifest_path_valid(good[i], strlen(good[i])))
			fail_msg("good path %zu rejected", i);
	assert_false(manifest_path_valid("a\0b", 3));
	assert_false(manifest_path_valid("", 0));
	assert_false(manifest_path_valid(NULL, 1));
	/* Length bounds: 1024 bytes in short components is fine; 1025 not;
	 * a 256-byte component not. */
	memset(big, 'x', sizeof(big));
	for (int i = 200; i < 1024; i += 201)
		big[i] = '/';
	assert_true(manifest_path_valid(big, 1024));
	assert_false(manifest_path_valid(big, 1025));
	memset(big, 'x', 256);
	assert_false(manifest_path_valid(big, 256));
	assert_true(manifest_path_valid(big, 255));

	assert_true(manifest_type_valid("text/plain", 10));
	assert_true(manifest_type_valid("application/vnd.foo+json", 24));
	assert_false(manifest_type_valid("text", 4));
	assert_false(manifest_type_valid("text/", 5));
	assert_false(manifest_type_valid("/plain", 6));
	assert_false(manifest_type_valid("text/pl ain", 11));
	assert_false(manifest_type_valid("a/b/c", 5));
	assert_false(manifest_type_valid("a/-b", 4));

	/* The builder applies the same checks. */
	struct manifest m;
	uint8_t cid[32] = { 0 };

	manifest_init(&m);
	assert_int_equal(manifest_add_item(&m, "../x", 4, cid, 1, "text/plain"), -EINVAL);
	assert_int_equal(manifest_add_item(&m, "x", 1, cid, 1, "plain"), -EINVAL);
	assert_int_equal(manifest_add_item(&m, "x", 1, cid, (uint64_t)INT64_MAX + 1, "a/b"),
			 -EINVAL);
	assert_int_equal(manifest_add_item(&m, "x", 1, cid, 1, "a/b"), 0);
	assert_int_equal(manifest_add_item(&m, "x", 1, cid, 2, "a/b"), -EEXIST);
	assert_int_equal(manifest_set_name(&m, "", 0), -EINVAL);
	assert_int_equal(manifest_set_name(&m, "a\nb", 3), -EINVAL);
	memset(big, 'n', 65);
	assert_int_equal(manifest_set_name(&m, big, 65), -EINVAL);
	assert_int_equal(manifest_set_name(&m, big, 64), 0);
	manifest_free(&m);
}

static void test_bounds_supersede(void **state)
{
	struct identity id;
	struct manifest m, d, m2;
	uint8_t cid[32] = { 7 }, *buf = malloc(MANIFEST_MAX_SIZE + 1);
	char path[1100];
	size_t len;

	assert_non_null(buf);
	key(&id, 3);
	/* A full manifest: MANIFEST_MAX_ITEMS items round-trip. */
	manifest_init(&m);
	assert_int_equal(manifest_set_name(&m, "big", 3), 0);
	for (uint32_t i = 0; i < MANIFEST_MAX_ITEMS; i++) {
		int n = snprintf(path, sizeof(path), "d%u/file-%05u.bin", i % 7, i);

		assert_int_equal(manifest_add_item(&m, path, (size_t)n, cid, i, "a/b"), 0);
	}
	assert_int_equal(manifest_add_item(&m, "one-more", 8, cid, 1, "a/b"), -E2BIG);
	assert_int_equal(manifest_sign(&m, &id), 0);
	assert_int_equal(manifest_encode(&m, buf, MANIFEST_MAX_SIZE, &len), 0);
	assert_int_equal(manifest_decode(&d, buf, len), 0);
	assert_int_equal(d.nitems, MANIFEST_MAX_ITEMS);
	manifest_free(&d);
	manifest_free(&m);

	/* Too big to encode: long paths. */
	manifest_init(&m);
	assert_int_equal(manifest_set_name(&m, "huge", 4), 0);
	memset(path, 'p', 1000);
	for (int i = 200; i < 1000; i += 201)
		path[i] = '/';
	for (uint32_t i = 0; i < 1200; i++) {
		snprintf(path + 1000, 20, "%05u", i);
		assert_int_equal(manifest_add_item(&m, path, 1005, cid, i, "a/b"), 0);
	}
	assert_int_equal(manifest_sign(&m, &id), -E2BIG);
	manifest_free(&m);
	memset(buf, 'd', MANIFEST_MAX_SIZE + 1);
	assert_int_equal(manifest_decode(&d, buf, MANIFEST_MAX_SIZE + 1), -E2BIG);
	/* A deep or wide hostile document fails cleanly. */
	memset(buf, 'l', 100000);
	assert_int_equal(manifest_decode(&d, buf, 100000), -EINVAL);
	for (size_t i = 0; i < 200000; i += 2)
		memcpy(buf + i, "0:", 2);
	buf[0] = 'l';
	assert_true(manifest_decode(&d, buf, 200000) < 0);

	/* Supersession. */
	manifest_init(&m);
	manifest_init(&m2);
	assert_int_equal(manifest_set_name(&m, "s", 1), 0);
	assert_int_equal(manifest_set_name(&m2, "s", 1), 0);
	m.seq = 1;
	m2.seq = 2;
	assert_int_equal(manifest_sign(&m, &id), 0);
	assert_int_equal(manifest_sign(&m2, &id), 0);
	assert_int_equal(manifest_supersedes(&m2, &m), 1);
	assert_int_equal(manifest_supersedes(&m, &m2), 0);
	assert_int_equal(manifest_supersedes(&m, &m), 0);
	assert_int_equal(manifest_set_name(&m2, "t", 1), 0);
	assert_int_equal(manifest_sign(&m2, &id), 0);
	assert_int_equal(manifest_supersedes(&m2, &m), -EINVAL);
	/* An empty share is legal. */
	m.visibility = MANIFEST_PRIVATE;
	assert_int_equal(manifest_sign(&m, &id), 0);
	assert_int_equal(manifest_encode(&m, buf, MANIFEST_MAX_SIZE, &len), 0);
	assert_int_equal(manifest_decode(&d, buf, len), 0);
	assert_int_equal(d.visibility, MANIFEST_PRIVATE);
	assert_int_equal(d.nitems, 0);
	manifest_free(&d);
	m.visibility = 2;
	assert_int_equal(manifest_sign(&m, &id), -EINVAL);
	manifest_free(&m);
	manifest_free(&m2);
	free(buf);
}

/* Predecessor link: version 8 names version 7 by digest and seq, round
 * trips, and a link at or after its own seq (a loop) is refused before
 * the signature is even checked. */
static void test_prev_link(void **state)
{
	struct manifest v7, v8, d;
	struct identity id;
	uint8_t *buf = malloc(MANIFEST_MAX_SIZE), dig[32];
	size_t len;
	char *p;

	(void)state;
	assert_non_null(buf);
	vector_manifest(&v7, &id);
	vector_manifest(&v8, &id);
	v8.seq = 8;
	assert_int_equal(manifest_link_prev(&v8, &v7), 0);
	assert_int_equal(manifest_sign(&v8, &id), 0);
	assert_int_equal(manifest_encode(&v8, buf, MANIFEST_MAX_SIZE, &len), 0);
	manifest_init(&d);
	assert_int_equal(manifest_decode(&d, buf, len), 0);
	assert_true(d.has_prev);
	assert_int_equal(d.prev_seq, 7);
	assert_int_equal(manifest_digest(&v7, dig), 0);
	assert_memory_equal(d.prev, dig, 32);
	manifest_free(&d);
	/* the same link, seq rewritten to 8 (= its own): a loop */
	p = memmem(buf, len, "4:pseqi7e", 9);
	assert_non_null(p);
	p[7] = '8';
	assert_int_equal(manifest_decode(&d, buf, len), -ELOOP);
	p[7] = '9';
	assert_int_equal(manifest_decode(&d, buf, len), -ELOOP);
	/* a link to a later or equal version cannot be made or signed */
	v7.is_signed = 1;
	assert_int_equal(manifest_link_prev(&v7, &v8), -EINVAL);
	v7.has_prev = 1;
	v7.prev_seq = 7;
	assert_int_equal(manifest_sign(&v7, &id), -EINVAL);
	manifest_free(&v7);
	manifest_free(&v8);
	free(buf);
}

/* A sealed manifest: two ciphertext items, keys wrapped for two nodes,
 * sealed metadata; signed. */
static void sealed_manifest(struct manifest *m, struct identity *id)
{
	struct identity r;
	uint8_t ck[SEAL_KEY_LEN], x[2][SEAL_X_PK_LEN], epk[32], keys[2 * SEAL_ENTRY_LEN],
	    meta[512], cid[32];
	struct seal_meta_item it[2] = {
	    {.path = (const uint8_t *)"notes/a.txt", .path_len = 11,
	     .type = (const uint8_t *)"text/plain", .type_len = 10, .size = 6},
	    {.path = (const uint8_t *)"b.bin", .path_len = 5, .size = 300000},
	};
	size_t mlen;
	char ph[5];

	key(id, 0);
	key(&r, 0x40);
	manifest_init(m);
	assert_int_equal(manifest_set_name(m, "secret-0123456789abcdef", 23), 0);
	m->seq = 3;
	m->created = 1700000000;
	seal_content_key_new(ck);
	assert_int_equal(seal_x25519_from_ed25519_pk(id->pk, x[0]), 0);
	assert_int_equal(seal_x25519_from_ed25519_pk(r.pk, x[1]), 0);
	assert_int_equal(seal_wrap(ck, (const uint8_t(*)[32])x, 2, epk, keys), 0);
	assert_int_equal(seal_meta_encrypt(ck, it, 2, meta, sizeof(meta), &mlen), 0);
	for (uint32_t i = 0; i < 2; i++) {
		manifest_sealed_path(i, ph);
		blake3_hash(ph, 4, cid, 32);
		assert_int_equal(manifest_add_item(m, ph, 4, cid, (uint64_t)seal_cipher_size(it[i].size),
						   MANIFEST_SEALED_TYPE),
				 0);
	}
	assert_int_equal(manifest_set_sealed(m, epk, keys, 2, meta, mlen), 0);
	assert_int_equal(m->visibility, MANIFEST_PRIVATE);
	assert_int_equal(manifest_sign(m, id), 0);
}

/* Sealed manifests: round trip, what a host sees (placeholder paths, one
 * type, ciphertext sizes), the key cap before anything else, canonical
 * key order, seal fields all or none, every byte covered. */
static void test_sealed(void **state)
{
	struct manifest m, d;
	struct identity id;
	uint8_t *buf = malloc(MANIFEST_MAX_SIZE), *big;
	size_t len, blen;
	uint8_t *p;

	(void)state;
	assert_non_null(buf);
	sealed_manifest(&m, &id);
	assert_int_equal(manifest_encode(&m, buf, MANIFEST_MAX_SIZE, &len), 0);
	manifest_init(&d);
	assert_int_equal(manifest_decode(&d, buf, len), 0);
	assert_true(d.sealed);
	assert_int_equal(d.nkeys, 2);
	assert_int_equal(d.meta_len, m.meta_len);
	assert_memory_equal(d.epk, m.epk, 32);
	assert_string_equal(d.items[0].path, "0000");
	assert_string_equal(d.items[1].path, "0001");
	assert_int_equal(d.items[1].size, 300000 + 2 * SEAL_TAG_LEN);
	assert_true(manifest_announced(&d));
	manifest_free(&d);
	/* every byte flipped, every truncation: refused */
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x01;
		assert_int_not_equal(manifest_decode(&d, buf, len), 0);
		buf[i] ^= 0x01;
	}
	for (size_t n = 0; n < len; n++)
		assert_int_not_equal(manifest_decode(&d, buf, n), 0);

	/* 501 keys: -E2BIG before the signature or anything else is looked at */
	p = memmem(buf, len, "4:keys112:", 10);
	assert_non_null(p);
	big = malloc(len + 501 * SEAL_ENTRY_LEN);
	assert_non_null(big);
	blen = (size_t)(p - buf);
	memcpy(big, buf, blen);
	blen += (size_t)sprintf((char *)big + blen, "4:keys%u:", 501 * SEAL_ENTRY_LEN);
	memset(big + blen, 0x11, 501 * SEAL_ENTRY_LEN);
	blen += 501 * SEAL_ENTRY_LEN;
	memcpy(big + blen, p + 10 + 112, len - (size_t)(p - buf) - 10 - 112);
	blen += len - (size_t)(p - buf) - 10 - 112;
	assert_int_equal(manifest_decode(&d, big, blen), -E2BIG);
	/* keys and meta without epk: refused */
	p = memmem(buf, len, "3:epk32:", 8);
	assert_non_null(p);
	blen = (size_t)(p - buf);
	memcpy(big, buf, blen);
	memcpy(big + blen, p + 8 + 32, len - blen - 40);
	assert_int_equal(manifest_decode(&d, big, len - 40), -EINVAL);
	free(big);

	/* the builder refuses what a host must never be shown */
	free(m.items[0].path);
	m.items[0].path = strdup("notes/a.txt");
	assert_int_equal(manifest_sign(&m, &id), -EINVAL);
	free(m.items[0].path);
	m.items[0].path = strdup("0000");
	free(m.items[0].type);
	m.items[0].type = strdup("text/plain");
	assert_int_equal(manifest_sign(&m, &id), -EINVAL);
	free(m.items[0].type);
	m.items[0].type = strdup(MANIFEST_SEALED_TYPE);
	m.items[0].size = 15; /* no plaintext encrypts to 15 bytes */
	assert_int_equal(manifest_sign(&m, &id), -EINVAL);
	m.items[0].size = 22;
	m.visibility = MANIFEST_PUBLIC; /* sealed is private */
	assert_int_equal(manifest_sign(&m, &id), -EINVAL);
	m.visibility = MANIFEST_PRIVATE;
	{
		uint8_t t[SEAL_ENTRY_LEN]; /* keys out of hint order */

		memcpy(t, m.keys, SEAL_ENTRY_LEN);
		memcpy(m.keys, m.keys + SEAL_ENTRY_LEN, SEAL_ENTRY_LEN);
		memcpy(m.keys + SEAL_ENTRY_LEN, t, SEAL_ENTRY_LEN);
		assert_int_equal(manifest_sign(&m, &id), -EINVAL);
		memcpy(m.keys + SEAL_ENTRY_LEN, m.keys, SEAL_ENTRY_LEN);
		memcpy(m.keys, t, SEAL_ENTRY_LEN);
	}
	assert_int_equal(manifest_sign(&m, &id), 0);
	assert_int_equal(manifest_set_sealed(&m, m.epk, m.keys, 501, m.meta, m.meta_len), -E2BIG);
	manifest_free(&m);
	free(buf);
}

/* "wd": signed, round-trips, 1..seq only, and its bytes are covered by the
 * signature like every other key. */
static void test_withdraw(void **state)
{
	struct manifest m, d;
	struct identity id;
	uint8_t *buf = malloc(MANIFEST_MAX_SIZE), *p;
	size_t len;

	(void)state;
	assert_non_null(buf);
	sealed_manifest(&m, &id);
	m.seq = 5;
	m.withdraw = 6; /* past its own version */
	assert_int_equal(manifest_sign(&m, &id), -EINVAL);
	m.withdraw = 5;
	assert_int_equal(manifest_sign(&m, &id), 0);
	assert_int_equal(manifest_encode(&m, buf, MANIFEST_MAX_SIZE, &len), 0);
	p = memmem(buf, len, "2:wdi5e", 7);
	assert_non_null(p);
	manifest_init(&d);
	assert_int_equal(manifest_decode(&d, buf, len), 0);
	assert_int_equal(d.withdraw, 5);
	manifest_free(&d);
	p[5] = '4'; /* wd 4: a signature over wd 5 does not cover it */
	assert_int_not_equal(manifest_decode(&d, buf, len), 0);
	p[5] = '0'; /* wd 0 is not a withdrawal: refused, not ignored */
	assert_int_equal(manifest_decode(&d, buf, len), -EINVAL);
	manifest_free(&m);
	free(buf);
}

/* The sealed manifest vector of docs/PROTOCOL.md "Sealed manifest": built
 * from the inputs of "Private content (seal)" (node A publishes, the wrap
 * for A and B with esk 32 x 05, the two items' ciphertexts, the sealed
 * metadata with nonce 32 x 24), name "doc-0123456789abcdef", seq 3,
 * created 1700000000, "wd" 3 (a re-encryption's version). Its hex must be
 * in that section; MANIFEST_PRINT_VECTORS=1 prints it. It decodes, A opens
 * the key and the metadata, and a non-recipient's open fails. */
static void test_sealed_vector(void **state)
{
	static const char section[] = "## Sealed manifest";
	struct manifest m, d;
	struct identity a;
	uint8_t seed[IDENTITY_SEED_LEN], ck[32], ik[32], xs[2][32], b_pk[32], b_sk[64], esk[32],
	    nonce[24], epk[32], keys[2 * SEAL_ENTRY_LEN], meta[128], ct0[19], ct1[16], cid[32];
	struct seal_meta_item items[2] = {
		{(const uint8_t *)"docs/a.txt", 10, (const uint8_t *)"text/plain", 10, 3},
		{(const uint8_t *)"b.bin", 5, NULL, 0, 0},
	};
	uint8_t *buf = malloc(MANIFEST_MAX_SIZE);
	char *hex, *doc = NULL, *sec, *flat;
	size_t len, mlen, j = 0;
	FILE *f;
	char path[4096];
	const char *top = getenv("TOP");

	(void)state;
	assert_non_null(buf);
	memset(seed, 0x01, sizeof(seed));
	identity_from_seed(&a, seed);
	memset(seed, 0x02, sizeof(seed));
	crypto_sign_seed_keypair(b_pk, b_sk, seed);
	for (int i = 0; i < 32; i++)
		ck[i] = (uint8_t)i;
	assert_int_equal(seal_x25519_from_ed25519_pk(a.pk, xs[0]), 0);
	assert_int_equal(seal_x25519_from_ed25519_pk(b_pk, xs[1]), 0);
	memset(esk, 0x05, sizeof(esk));
	assert_int_equal(seal_wrap_det(ck, (const uint8_t(*)[32])xs, 2, esk, epk, keys), 0);
	memset(nonce, 0x24, sizeof(nonce));
	assert_int_equal(seal_meta_encrypt_det(ck, items, 2, nonce, meta, sizeof(meta), &mlen), 0);
	assert_int_equal(seal_item_key(ck, 0, ik), 0);
	assert_int_equal(seal_seg_encrypt(ik, 3, 0, 1, (const uint8_t *)"abc", 3, ct0), 0);
	assert_int_equal(seal_item_key(ck, 1, ik), 0);
	assert_int_equal(seal_seg_encrypt(ik, 0, 0, 1, NULL, 0, ct1), 0);

	manifest_init(&m);
	assert_int_equal(manifest_set_name(&m, "doc-0123456789abcdef", 20), 0);
	m.seq = 3;
	m.created = 1700000000;
	m.withdraw = 3;
	blake3_hash(ct0, sizeof(ct0), cid, 32);
	assert_int_equal(manifest_add_item(&m, "0000", 4, cid, sizeof(ct0), MANIFEST_SEALED_TYPE), 0);
	blake3_hash(ct1, sizeof(ct1), cid, 32);
	assert_int_equal(manifest_add_item(&m, "0001", 4, cid, sizeof(ct1), MANIFEST_SEALED_TYPE), 0);
	assert_int_equal(manifest_set_sealed(&m, epk, keys, 2, meta, mlen), 0);
	assert_int_equal(manifest_sign(&m, &a), 0);
	assert_int_equal(manifest_encode(&m, buf, MANIFEST_MAX_SIZE, &len), 0);
	hex = hexdup(buf, len);
	if (getenv("MANIFEST_PRINT_VECTORS")) {
		printf("    sealed manifest (%zu bytes)\n", len);
		for (size_t o = 0; o < strlen(hex); o += 64)
			printf("        %.64s\n", hex + o);
	}

	/* in the document, white space aside */
	snprintf(path, sizeof(path), "%s/docs/PROTOCOL.md", top ? top : ".");
	f = fopen(path, "r");
	assert_non_null(f);
	doc = calloc(1, 1 << 20);
	assert_non_null(doc);
	doc[fread(doc, 1, (1 << 20) - 1, f)] = 0;
	fclose(f);
	sec = strstr(doc, section);
	if (!sec)
		fail_msg("no section \"%s\" in docs/PROTOCOL.md", section);
	flat = calloc(1, strlen(sec) + 1);
	assert_non_null(flat);
	for (size_t i = 0; sec[i] && (i == 0 || strncmp(sec + i, "\n## ", 4)); i++)
		if (sec[i] != ' ' && sec[i] != '\n')
			flat[j++] = sec[i];
	if (!strstr(flat, hex))
		fail_msg("the sealed manifest vector is not in docs/PROTOCOL.md: %s", hex);
	free(flat);
	free(doc);
	free(hex);

	/* it decodes; B opens the key; the metadata names the real items */
	manifest_init(&d);
	assert_int_equal(manifest_decode(&d, buf, len), 0);
	assert_true(d.sealed);
	assert_int_equal(d.withdraw, 3);
	{
		uint8_t x_sk[32], got[32], plain[64];
		struct seal_meta_item it[2];
		uint32_t n;

		assert_int_equal(seal_x25519_from_ed25519_sk(b_sk, x_sk), 0);
		assert_int_equal(seal_unwrap(x_sk, xs[1], d.epk, d.keys, d.nkeys, got), 0);
		assert_memory_equal(got, ck, 32);
		assert_int_equal(seal_meta_decrypt(got, d.meta, d.meta_len, plain, sizeof(plain), it,
						   2, &n),
				 0);
		assert_int_equal(n, 2);
		assert_memory_equal(it[0].path, "docs/a.txt", 10);
		/* a third key is no recipient */
		memset(seed, 0x09, sizeof(seed));
		crypto_sign_seed_keypair(b_pk, b_sk, seed);
		assert_int_equal(seal_x25519_from_ed25519_sk(b_sk, x_sk), 0);
		assert_int_equal(seal_x25519_from_ed25519_pk(b_pk, xs[1]), 0);
		assert_int_equal(seal_unwrap(x_sk, xs[1], d.epk, d.keys, d.nkeys, got), -ENOENT);
	}
	manifest_free(&d);
	manifest_free(&m);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_roundtrip),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_forged),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_bounds_supersede),
		cmocka_unit_test(test_prev_link),
		cmocka_unit_test(test_sealed),
		cmocka_unit_test(test_withdraw),
		cmocka_unit_test(test_sealed_vector),
	};

	return cmocka_run_group_tests_name("content_manifest", tests, NULL, NULL);
}
