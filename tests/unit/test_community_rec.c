// SPDX-License-Identifier: MIT
/*
 * community, keys, records and sealing: derivations differ and depend on
 * both id and key, member and share records round-trip, a record signed by
 * another key or of another community is refused, closed communities need
 * the community key's admission, sealed records open only with the right
 * id and key, and the parsers refuse every truncation and changed byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "testutil.h"
#include "weft/comm.h"

struct kp {
	uint8_t pk[32], sk[64];
};

static void kp_make(struct kp *k, uint64_t seed)
{
	uint8_t s[32];

	tu_fill(s, sizeof(s), seed);
	crypto_sign_seed_keypair(k->pk, k->sk, s);
}

static int setup(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

static void test_keys(void **state)
{
	uint8_t id[COMM_ID_LEN], pk[32], sk[64], id2[COMM_ID_LEN];
	struct comm_keys a, b, c;

	(void)state;
	comm_create(0, id, pk, sk);
	assert_false(comm_id_closed(id));
	comm_create(1, id2, pk, sk);
	assert_true(comm_id_closed(id2));
	comm_keys_derive(id, pk, &a);
	comm_keys_derive(id, pk, &b);
	assert_memory_equal(&a, &b, sizeof(a));
	/* The DHT key is not a prefix of the record key: unrelated. */
	assert_memory_not_equal(a.rec_key, a.dht_key, COMM_DHT_KEY_LEN);
	comm_keys_derive(id2, pk, &c);
	assert_memory_not_equal(a.rec_key, c.rec_key, 32);
	assert_memory_not_equal(a.dht_key, c.dht_key, 20);
	pk[5] ^= 1;
	comm_keys_derive(id, pk, &c);
	assert_memory_not_equal(a.rec_key, c.rec_key, 32);
	assert_memory_not_equal(a.dht_key, c.dht_key, 20);
}

static void member_rec(struct comm_rec *r, const uint8_t *id, const struct kp *m, uint64_t seq)
{
	memset(r, 0, sizeof(*r));
	r->type = COMM_REC_MEMBER;
	memcpy(r->id, id, COMM_ID_LEN);
	memcpy(r->member, m->pk, 32);
	r->seq = seq;
}

static void test_member_open(void **state)
{
	uint8_t id[COMM_ID_LEN], cpk[32], csk[64], buf[COMM_REC_MAX_LEN], other_id[COMM_ID_LEN];
	struct comm_rec r, p;
	struct kp m, x;
	size_t n;

	(void)state;
	comm_create(0, id, cpk, csk);
	kp_make(&m, 1);
	kp_make(&x, 2);
	member_rec(&r, id, &m, 7);
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, COMM_REC_MEMBER_LEN);
	assert_int_equal(comm_rec_parse(buf, n, id, cpk, &p), 0);
	assert_int_equal(p.type, COMM_REC_MEMBER);
	assert_int_equal(p.seq, 7);
	assert_memory_equal(p.member, m.pk, 32);
	/* Signing for a key we do not hold. */
	assert_int_equal(comm_rec_sign(&r, x.sk, buf, sizeof(buf), &n), -EINVAL);
	/* A record signed by another key: the member field says m, x signed. */
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), 0);
	memcpy(buf + 2 + COMM_ID_LEN, x.pk, 32);
	assert_int_equal(comm_rec_parse(buf, n, id, cpk, &p), -EBADMSG);
	/* Of another community. */
	memcpy(other_id, id, sizeof(other_id));
	other_id[3] ^= 0x80;
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), 0);
	assert_int_equal(comm_rec_parse(buf, n, other_id, cpk, &p), -EXDEV);
	/* Short cap. */
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, n - 1, &n), -ENOSPC);
}

static void test_member_closed(void **state)
{
	uint8_t id[COMM_ID_LEN], cpk[32], csk[64], buf[COMM_REC_MAX_LEN];
	struct comm_rec r, p;
	struct kp m, x;
	size_t n;

	(void)state;
	comm_create(1, id, cpk, csk);
	kp_make(&m, 3);
	kp_make(&x, 4);
	member_rec(&r, id, &m, 1);
	/* No admission: refused. */
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), 0);
	assert_int_equal(comm_rec_parse(buf, n, id, cpk, &p), -EACCES);
	/* An admission of another member: refused. */
	assert_int_equal(comm_admit(csk, id, x.pk, r.admit), 0);
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), 0);
	assert_int_equal(comm_rec_parse(buf, n, id, cpk, &p), -EACCES);
	/* An admission signed by the member itself: refused. */
	assert_int_equal(comm_admit(m.sk, id, m.pk, r.admit), 0);
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), 0);
	assert_int_equal(comm_rec_parse(buf, n, id, cpk, &p), -EACCES);
	/* The community key's admission of m: accepted. */
	assert_int_equal(comm_admit(csk, id, m.pk, r.admit), 0);
	assert_int_equal(comm_admit_verify(cpk, id, m.pk, r.admit), 0);
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), 0);
	assert_int_equal(comm_rec_parse(buf, n, id, cpk, &p), 0);
	/* A community key whose halves disagree signs nothing. */
	csk[40] ^= 1;
	assert_int_equal(comm_admit(csk, id, m.pk, r.admit), -EINVAL);
}

static void test_share(void **state)
{
	uint8_t id[COMM_ID_LEN], cpk[32], csk[64], buf[COMM_REC_MAX_LEN];
	struct comm_rec r, p;
	struct kp m;
	size_t n;

	(void)state;
	comm_create(0, id, cpk, csk);
	kp_make(&m, 5);
	memset(&r, 0, sizeof(r));
	r.type = COMM_REC_SHARE;
	memcpy(r.id, id, COMM_ID_LEN);
	memcpy(r.member, m.pk, 32);
	memcpy(r.head, m.pk, 32);
	r.seq = 2;
	r.name_len = 6;
	memcpy(r.name, "photos", 6);
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), 0);
	assert_int_equal(comm_rec_parse(buf, n, id, cpk, &p), 0);
	assert_string_equal(p.name, "photos");
	assert_memory_equal(p.head, m.pk, 32);
	/* Every truncation and every changed byte is refused. */
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(comm_rec_parse(buf, i, id, cpk, &p), 0);
	for (size_t i = 0; i < n; i++) {
		buf[i] ^= 0x10;
		assert_int_not_equal(comm_rec_parse(buf, n, id, cpk, &p), 0);
		buf[i] ^= 0x10;
	}
	/* Names: empty, over the cap, with a NUL. */
	r.name_len = 0;
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), -EINVAL);
	r.name_len = COMM_NAME_MAX + 1;
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), -EINVAL);
	r.name_len = 3;
	memcpy(r.name, "a\0b", 3);
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), -EINVAL);
	r.type = 9;
	assert_int_equal(comm_rec_sign(&r, m.sk, buf, sizeof(buf), &n), -EINVAL);
}

static void test_seal(void **state)
{
	uint8_t id[COMM_ID_LEN], pk[32], sk[64], box[256], out[256], id2[COMM_ID_LEN];
	const uint8_t msg[] = "a member record";
	struct comm_keys k, k2;
	size_t n, m;

	(void)state;
	comm_create(0, id, pk, sk);
	comm_keys_derive(id, pk, &k);
	assert_int_equal(comm_seal(&k, id, msg, sizeof(msg), box, sizeof(box), &n), 0);
	assert_int_equal(n, sizeof(msg) + COMM_SEAL_OVERHEAD);
	assert_null(memmem(box, n, "member", 6));
	assert_int_equal(comm_open(&k, id, box, n, out, sizeof(out), &m), 0);
	assert_int_equal(m, sizeof(msg));
	assert_memory_equal(out, msg, m);
	/* Another community's key (a node that does not know ours). */
	comm_create(0, id2, pk, sk);
	comm_keys_derive(id2, pk, &k2);
	assert_int_equal(comm_open(&k2, id2, box, n, out, sizeof(out), &m), -EBADMSG);
	/* Our key but another id in the associated data. */
	assert_int_equal(comm_open(&k, id2, box, n, out, sizeof(out), &m), -EBADMSG);
	for (size_t i = 0; i < n; i++) {
		box[i] ^= 1;
		assert_int_equal(comm_open(&k, id, box, n, out, sizeof(out), &m), -EBADMSG);
		box[i] ^= 1;
	}
	assert_int_equal(comm_open(&k, id, box, COMM_SEAL_OVERHEAD - 1, out, sizeof(out), &m),
			 -EBADMSG);
	assert_int_equal(comm_seal(&k, id, msg, sizeof(msg), box, sizeof(msg) + 39, &n), -ENOSPC);
	assert_int_equal(comm_open(&k, id, box, 0, out, sizeof(out), &m), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),         cmocka_unit_test(test_member_open),
		cmocka_unit_test(test_member_closed), cmocka_unit_test(test_share),
		cmocka_unit_test(test_seal),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
