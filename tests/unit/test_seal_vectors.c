// SPDX-License-Identifier: MIT
/*
 * seal, test vectors: every value of docs/PROTOCOL.md "Private content
 * (seal)" is computed here from the fixed inputs the section lists (the
 * deterministic _det entry points take the ephemeral key and the nonce),
 * and must appear in that section of the document as printed. Run with
 * SEAL_PRINT_VECTORS=1 to print them in the document's layout.
 * Document: $TOP/docs/PROTOCOL.md, else docs/PROTOCOL.md from the current
 * directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/seal.h"
#include "weft/util.h"

#define SECTION "## Private content (seal)"

struct vec {
	const char *name;
	uint8_t buf[512];
	size_t len;
};

static struct vec vecs[16];
static size_t nvecs;

static uint8_t *vec_add(const char *name, size_t len)
{
	struct vec *v = &vecs[nvecs++];

	assert_true(nvecs <= sizeof(vecs) / sizeof(vecs[0]));
	assert_true(len <= sizeof(v->buf));
	v->name = name;
	v->len = len;
	return v->buf;
}

static void compute(void)
{
	uint8_t seed[32], a_pk[32], a_sk[64], b_pk[32], b_sk[64], o_pk[32], o_sk[64];
	uint8_t ck[32], ik0[32], ik1[32], esk[32], xs[2][32], nonce[24], gid[32], gseed[32];
	uint8_t mem[2][32];
	struct seal_meta_item items[2] = {
		{(const uint8_t *)"docs/a.txt", 10, (const uint8_t *)"text/plain", 10, 3},
		{(const uint8_t *)"b.bin", 5, NULL, 0, 0},
	};
	uint8_t *p;
	size_t len;

	nvecs = 0;
	memset(seed, 0x01, 32);
	crypto_sign_seed_keypair(a_pk, a_sk, seed);
	memset(seed, 0x02, 32);
	crypto_sign_seed_keypair(b_pk, b_sk, seed);
	memset(seed, 0x03, 32);
	crypto_sign_seed_keypair(o_pk, o_sk, seed);
	memcpy(vec_add("A ed25519 pk", 32), a_pk, 32);
	assert_int_equal(seal_x25519_from_ed25519_pk(a_pk, vec_add("A x25519 pk", 32)), 0);
	assert_int_equal(seal_x25519_from_ed25519_sk(a_sk, vec_add("A x25519 sk", 32)), 0);
	memcpy(xs[0], vecs[nvecs - 2].buf, 32);
	assert_int_equal(seal_x25519_from_ed25519_pk(b_pk, vec_add("B x25519 pk", 32)), 0);
	memcpy(xs[1], vecs[nvecs - 1].buf, 32);

	for (int i = 0; i < 32; i++)
		ck[i] = (uint8_t)i;
	assert_int_equal(seal_item_key(ck, 0, ik0), 0);
	assert_int_equal(seal_item_key(ck, 1, ik1), 0);
	memcpy(vec_add("item key 0", 32), ik0, 32);
	memcpy(vec_add("item key 1", 32), ik1, 32);
	assert_int_equal(seal_seg_encrypt(ik0, 3, 0, 1, (const uint8_t *)"abc", 3,
					  vec_add("item 0 abc", 19)),
			 0);
	assert_int_equal(seal_seg_encrypt(ik1, 0, 0, 1, NULL, 0, vec_add("item 1 empty", 16)), 0);

	memset(esk, 0x05, 32);
	p = vec_add("wrap epk", 32);
	assert_int_equal(seal_wrap_det(ck, (const uint8_t(*)[32])xs, 2, esk, p,
				       vec_add("wrap entries", 2 * SEAL_ENTRY_LEN)),
			 0);

	p = vec_add("meta encoding", 52);
	assert_int_equal(seal_meta_encode(items, 2, p, 52, &len), 0);
	assert_int_equal(len, 52);
	memset(nonce, 0x24, sizeof(nonce));
	assert_int_equal(seal_meta_encrypt_det(ck, items, 2, nonce,
					       vec_add("meta sealed", 52 + SEAL_META_OVERHEAD),
					       52 + SEAL_META_OVERHEAD, &len),
			 0);

	memset(gid, 0x07, 32);
	memset(gseed, 0x04, 32);
	memset(esk, 0x06, 32);
	memcpy(mem[0], a_pk, 32);
	memcpy(mem[1], b_pk, 32);
	len = SEAL_GROUP_FIXED_LEN + 2 * SEAL_ENTRY_LEN + SEAL_SIG_LEN;
	p = vec_add("group record", len);
	assert_int_equal(seal_group_seal_det(o_sk, gid, gseed, 1, (const uint8_t(*)[32])mem, 2, esk,
					     p, len, &len),
			 0);
	assert_int_equal(len, 315);
}

static void hex_of(const struct vec *v, char *out)
{
	util_hex(out, v->buf, v->len);
}

/* The section's text without any white space (malloc'd), or NULL. */
static char *doc_section(void)
{
	return tu_protocol_section(SECTION);
}

static void test_vectors_in_doc(void **state)
{
	static char hex[1100];
	const char *missing = NULL;
	char *doc;

	compute();
	if (getenv("SEAL_PRINT_VECTORS")) {
		for (size_t i = 0; i < nvecs; i++) {
			hex_of(&vecs[i], hex);
			printf("    %s (%zu bytes)\n", vecs[i].name, vecs[i].len);
			for (size_t o = 0; o < strlen(hex); o += 64)
				printf("        %.64s\n", hex + o);
		}
	}
	doc = doc_section();
	if (!doc)
		fail_msg("no section \"%s\" in docs/PROTOCOL.md", SECTION);
	for (size_t i = 0; i < nvecs; i++) {
		hex_of(&vecs[i], hex);
		if (!strstr(doc, hex)) {
			missing = vecs[i].name;
			break;
		}
	}
	free(doc);
	if (missing)
		fail_msg("vector \"%s\" is not in docs/PROTOCOL.md \"%s\": %s", missing, SECTION,
			 hex);
}

/* The vectors open: the recipients' and members' side of the same bytes. */
static void test_vectors_open(void **state)
{
	uint8_t seed[32], pk[32], sk[64], x_sk[32], x_pk[32], ck[32], got[32], out[8];
	struct seal_meta_item items[2];
	struct seal_group_record r;
	uint32_t n;

	compute();
	memset(seed, 0x02, 32);
	crypto_sign_seed_keypair(pk, sk, seed);
	assert_int_equal(seal_x25519_from_ed25519_sk(sk, x_sk), 0);
	assert_int_equal(seal_x25519_from_ed25519_pk(pk, x_pk), 0);
	for (int i = 0; i < 32; i++)
		ck[i] = (uint8_t)i;
	assert_int_equal(seal_unwrap(x_sk, x_pk, vecs[8].buf, vecs[9].buf, 2, got), 0);
	assert_memory_equal(got, ck, 32);
	assert_int_equal(seal_seg_decrypt(vecs[4].buf, 3, 0, 1, vecs[6].buf, 19, out), 0);
	assert_memory_equal(out, "abc", 3);
	assert_int_equal(seal_meta_decrypt(ck, vecs[11].buf, vecs[11].len, (uint8_t[64]){0}, 64,
					   items, 2, &n),
			 0);
	assert_int_equal(n, 2);
	assert_int_equal(seal_group_decode(&r, vecs[12].buf, vecs[12].len, NULL), 0);
	assert_int_equal(seal_group_open(&r, sk, got), 0);
	memset(seed, 0x04, 32);
	assert_memory_equal(got, seed, 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_in_doc),
		cmocka_unit_test(test_vectors_open),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("seal_vectors", tests, NULL, NULL);
}
