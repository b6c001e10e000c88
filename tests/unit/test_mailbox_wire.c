// SPDX-License-Identifier: MIT
/*
 * mailbox, sealing and the protocol core: a sealed message opens for its
 * recipient only, with the sender's key and time, and a changed byte, a
 * swapped sender or another recipient is refused; the vector of
 * docs/PROTOCOL.md "Mailbox"; requests and answers round-trip, and the
 * parsers refuse hostile frames (a table of {bytes, expected}); the
 * per-sender rate and score.
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
#include "weft/mailbox.h"
#include "weft/util.h"


struct key {
	uint8_t pk[32], sk[64];
};

static void key_make(struct key *k, uint64_t seed)
{
	uint8_t s[32];

	tu_fill(s, sizeof(s), seed);
	crypto_sign_seed_keypair(k->pk, k->sk, s);
}

static int setup(void **state)
{
	return sodium_init() < 0 ? -1 : 0;
}

static void test_seal_round_trip(void **state)
{
	struct key a, b, c;
	static uint8_t sealed[MBOX_MAX_SEALED], plain[MBOX_MAX_SEALED], body[MBOX_MAX_BODY];
	struct mbox_opened m;
	int n;

	key_make(&a, 1);
	key_make(&b, 2);
	key_make(&c, 3);
	n = mbox_seal(a.sk, b.pk, 1700000000, (const uint8_t *)"hello b", 7, sealed, sizeof(sealed));
	assert_int_equal(n, 7 + MBOX_SEAL_OVERHEAD);
	/* the anchor sees no plaintext */
	assert_null(memmem(sealed, (size_t)n, "hello b", 7));
	assert_int_equal(mbox_open(b.sk, sealed, (size_t)n, plain, sizeof(plain), &m), 0);
	assert_memory_equal(m.sender, a.pk, 32);
	assert_int_equal(m.ts, 1700000000);
	assert_int_equal(m.len, 7);
	assert_memory_equal(m.body, "hello b", 7);
	/* not c's */
	assert_int_equal(mbox_open(c.sk, sealed, (size_t)n, plain, sizeof(plain), &m), -EBADMSG);
	/* every changed byte is refused */
	for (int i = 0; i < n; i += 7) {
		sealed[i] ^= 0x40;
		assert_int_equal(mbox_open(b.sk, sealed, (size_t)n, plain, sizeof(plain), &m),
				 -EBADMSG);
		sealed[i] ^= 0x40;
	}
	assert_int_equal(mbox_open(b.sk, sealed, (size_t)n - 1, plain, sizeof(plain), &m),
			 -EBADMSG);
	/* the largest body, and one byte more */
	tu_fill(body, sizeof(body), 9);
	n = mbox_seal(a.sk, b.pk, 1, body, sizeof(body), sealed, sizeof(sealed));
	assert_int_equal(n, MBOX_MAX_SEALED);
	assert_int_equal(mbox_open(b.sk, sealed, (size_t)n, plain, sizeof(plain), &m), 0);
	assert_memory_equal(m.body, body, sizeof(body));
	assert_int_equal(mbox_seal(a.sk, b.pk, 1, body, sizeof(body) + 1, sealed, sizeof(sealed) + 1),
			 -EINVAL);
	assert_int_equal(mbox_seal(a.sk, b.pk, 1, body, 10, sealed, 10), -ENOSPC);
	/* the empty message */
	n = mbox_seal(a.sk, b.pk, 5, NULL, 0, sealed, sizeof(sealed));
	assert_int_equal(n, MBOX_SEAL_OVERHEAD);
	assert_int_equal(mbox_open(b.sk, sealed, (size_t)n, plain, sizeof(plain), &m), 0);
	assert_int_equal(m.len, 0);
}

/* A sender that signs as another: the inner sender is replaced by c's key
 * and the message sealed again by someone holding the wrap: the
 * signature, a's, does not verify for c. */
static void test_forged_sender(void **state)
{
	struct key a, b, c;
	uint8_t sealed[512], plain[512], esk[32];
	struct mbox_opened m;
	int n;

	key_make(&a, 1);
	key_make(&b, 2);
	key_make(&c, 3);
	tu_fill(esk, 32, 77);
	/* a seals with c's public key in place of its own: made by sealing
	 * with a key whose public half is c's (a's seed, c's pk) */
	uint8_t mixed[64];
	memcpy(mixed, a.sk, 32);
	memcpy(mixed + 32, c.pk, 32);
	n = mbox_seal_det(mixed, b.pk, 7, (const uint8_t *)"x", 1, esk, esk, sealed, sizeof(sealed));
	assert_true(n > 0);
	assert_int_equal(mbox_open(b.sk, sealed, (size_t)n, plain, sizeof(plain), &m), -EBADMSG);
	assert_int_equal(mbox_open_from(b.sk, sealed, (size_t)n, c.pk), -EBADMSG);
	assert_int_equal(mbox_open_from(b.sk, sealed, (size_t)n, a.pk), -EBADMSG);
}

/* A direct delivery is kept only when it opens for us and its signed
 * sender is the connection's key. */
static void test_open_from(void **state)
{
	struct key a, b, c;
	uint8_t sealed[512];
	int n;

	key_make(&a, 1);
	key_make(&b, 2);
	key_make(&c, 3);
	n = mbox_seal(a.sk, b.pk, 7, (const uint8_t *)"direct", 6, sealed, sizeof(sealed));
	assert_true(n > 0);
	assert_int_equal(mbox_open_from(b.sk, sealed, (size_t)n, a.pk), 0);
	/* another connection handing over a's message */
	assert_int_equal(mbox_open_from(b.sk, sealed, (size_t)n, c.pk), -EBADMSG);
	/* not for c */
	assert_int_equal(mbox_open_from(c.sk, sealed, (size_t)n, a.pk), -EBADMSG);
	/* junk, short, too long */
	sealed[n - 1] ^= 1;
	assert_int_equal(mbox_open_from(b.sk, sealed, (size_t)n, a.pk), -EBADMSG);
	assert_int_equal(mbox_open_from(b.sk, sealed, 10, a.pk), -EBADMSG);
	assert_int_equal(mbox_open_from(b.sk, sealed, MBOX_MAX_SEALED + 1, a.pk), -EBADMSG);
}

/* docs/PROTOCOL.md "Mailbox": sender seed 32 x 0x01, recipient seed
 * 32 x 0x02, ephemeral X25519 secret 32 x 0x03, message key 32 x 0x04,
 * ts 1700000000, body "hi": 211 bytes, and the id (BLAKE2b-128). The
 * sender's signature is deterministic (Ed25519), so is every byte. */
static const char VEC_SEALED[] =
	"015dfedd3b6bd47f6fa28ee15d969d5bb0ea53774d488bdaf9df1c6e0124b3ef"
	"220f5f47c661bd1cface584fc03ba4220fde33395cf9f87dee5b4b2c27a5cb27"
	"cfbcb8de7622c3269f1e3b32b6872e0a4f5638a0eddffc8a277aa939097052e4"
	"b08a1fa7dddc0b4d8a7ff48bddee16d80a8d60d268f40f2f8905a8b3fad2a972"
	"e35bf3188693c9ab0adfbcfa4268aa069902de0f7811edeb483f749038850c03"
	"c9073ee0ef52c3056ee97c4e4be93fed9871f2ff902ba865b967f50c518fae10"
	"a2cb4fddbcc02da5bb8efe5010ea50a267ab71";
static const char VEC_ID[] = "50017418d4bb13af0ef61ab71287f14a";

static void test_vector(void **state)
{
	uint8_t s1[32], s2[32], esk[32], mk[32], sealed[512], plain[512], id[16], epk[32];
	char hex[2 * 211 + 1], idhex[33];
	struct key a, b;
	struct mbox_opened m;
	int n;

	memset(s1, 1, 32);
	memset(s2, 2, 32);
	memset(esk, 3, 32);
	memset(mk, 4, 32);
	crypto_sign_seed_keypair(a.pk, a.sk, s1);
	crypto_sign_seed_keypair(b.pk, b.sk, s2);
	n = mbox_seal_det(a.sk, b.pk, 1700000000, (const uint8_t *)"hi", 2, esk, mk, sealed,
			  sizeof(sealed));
	assert_int_equal(n, 211);
	assert_int_equal(sealed[0], 1);
	crypto_scalarmult_base(epk, esk);
	assert_memory_equal(sealed + 1, epk, 32);
	assert_int_equal(mbox_open(b.sk, sealed, (size_t)n, plain, sizeof(plain), &m), 0);
	assert_memory_equal(m.sender, a.pk, 32);
	mbox_msg_id(sealed, (size_t)n, id);
	util_hex(hex, sealed, (size_t)n);
	util_hex(idhex, id, 16);
	if (getenv("MBOX_PRINT_VECTORS"))
		print_message("sealed %s\nid %s\n", hex, idhex);
	assert_string_equal(hex, VEC_SEALED);
	assert_string_equal(idhex, VEC_ID);
}

static void test_req_round_trip(void **state)
{
	static uint8_t buf[MBOX_REQ_MAX], sealed[MBOX_MAX_SEALED];
	struct mbox_req r = { .type = MBOX_T_PUT, .ttl_s = 3600 }, p;
	uint8_t ids[3 * 16];
	int n;

	memset(r.recipient, 0xab, 32);
	tu_fill(sealed, sizeof(sealed), 4);
	sealed[0] = MBOX_SEAL_VERSION;
	r.sealed = sealed;
	r.sealed_len = 300;
	n = mbox_req_encode(&r, buf, sizeof(buf));
	assert_int_equal(n, 5 + 36 + 300);
	assert_int_equal(mbox_frame_need(buf, 4, MBOX_REQ_MAX), 0);
	assert_int_equal(mbox_frame_need(buf, 5, MBOX_REQ_MAX), n);
	assert_int_equal(mbox_req_parse(buf, (size_t)n, &p), 0);
	assert_int_equal(p.type, MBOX_T_PUT);
	assert_int_equal(p.ttl_s, 3600);
	assert_memory_equal(p.recipient, r.recipient, 32);
	assert_int_equal(p.sealed_len, 300);
	assert_memory_equal(p.sealed, sealed, 300);
	/* the largest PUT */
	r.sealed_len = MBOX_MAX_SEALED;
	n = mbox_req_encode(&r, buf, sizeof(buf));
	assert_int_equal(n, MBOX_REQ_MAX);
	assert_int_equal(mbox_req_parse(buf, (size_t)n, &p), 0);
	r.sealed_len = MBOX_MAX_SEALED + 1;
	assert_int_equal(mbox_req_encode(&r, buf, sizeof(buf)), -EINVAL);

	r = (struct mbox_req){ .type = MBOX_T_FETCH, .max = 64 };
	n = mbox_req_encode(&r, buf, sizeof(buf));
	assert_int_equal(n, 7);
	assert_memory_equal(buf, "\x02\x00\x00\x00\x02\x00\x40", 7); /* docs/PROTOCOL.md */
	assert_int_equal(mbox_req_parse(buf, (size_t)n, &p), 0);
	assert_int_equal(p.max, 64);

	tu_fill(ids, sizeof(ids), 5);
	r = (struct mbox_req){ .type = MBOX_T_ACK, .nids = 3, .ids = ids };
	n = mbox_req_encode(&r, buf, sizeof(buf));
	assert_int_equal(n, 5 + 2 + 48);
	assert_int_equal(mbox_req_parse(buf, (size_t)n, &p), 0);
	assert_int_equal(p.nids, 3);
	assert_memory_equal(p.ids, ids, 48);
	/* docs/PROTOCOL.md: ACK of one id 11 x 16, and its RESULT */
	memset(ids, 0x11, 16);
	r = (struct mbox_req){ .type = MBOX_T_ACK, .nids = 1, .ids = ids };
	assert_int_equal(mbox_req_encode(&r, buf, sizeof(buf)), 23);
	assert_memory_equal(buf, "\x03\x00\x00\x00\x12\x00\x01", 7);
	assert_memory_equal(buf + 7, ids, 16);
	assert_int_equal(mbox_result_encode(MBOX_OK, ids, buf, sizeof(buf)), 22);
	assert_memory_equal(buf, "\x81\x00\x00\x00\x11\x00", 6);
	assert_memory_equal(buf + 6, ids, 16);
}

struct bad {
	const char *what;
	const char *hex;
	long need; /* mbox_frame_need */
};

static const struct bad bad_frames[] = {
	{ "unknown type", "0900000002", -EBADMSG },
	{ "FETCH of 3 bytes", "020000000300", -EBADMSG },
	{ "PUT shorter than a sealed message", "0100000024", -EBADMSG },
	{ "PUT over the largest", "01000102ff", -EBADMSG },
	{ "ACK of no id", "0300000002", -EBADMSG },
	{ "length 2^32-1", "02ffffffff", -EBADMSG },
	{ "answer type as a request", "8100000011", 22 },
	{ "FETCH max 0", "02000000020000", 7 },
	{ "ACK count 2 with one id", "030000001200020000000000000000000000000000000000", 23 },
};

static void test_req_hostile(void **state)
{
	uint8_t buf[64];
	struct mbox_req r;

	for (size_t i = 0; i < sizeof(bad_frames) / sizeof(bad_frames[0]); i++) {
		const struct bad *b = &bad_frames[i];
		size_t len = strlen(b->hex) / 2;

		assert_int_equal(util_unhex(buf, len, b->hex), 0);
		if (mbox_frame_need(buf, len, MBOX_REQ_MAX) != b->need)
			fail_msg("%s: need %ld", b->what, mbox_frame_need(buf, len, MBOX_REQ_MAX));
		assert_int_equal(mbox_req_parse(buf, len, &r), -EBADMSG);
	}
}

static void test_answers(void **state)
{
	static uint8_t buf[MBOX_RESP_MAX], s1[400], s2[MBOX_MAX_SEALED];
	struct mbox_item it = { .ts = 42 }, got[MBOX_FETCH_MAX];
	struct mbox_list_w w;
	uint8_t st, id[16], id2[16];
	unsigned int n;
	int more, len;

	memset(id, 7, 16);
	len = mbox_result_encode(MBOX_E_FULL, id, buf, sizeof(buf));
	assert_int_equal(len, 22);
	assert_int_equal(mbox_result_parse(buf, (size_t)len, &st, id2), 0);
	assert_int_equal(st, MBOX_E_FULL);
	assert_memory_equal(id, id2, 16);
	assert_int_equal(mbox_result_parse(buf, (size_t)len - 1, &st, id2), -EBADMSG);
	assert_string_equal(mbox_status_name(MBOX_E_RATE), "rate_limited");
	assert_string_equal(mbox_status_name(99), "unknown");

	mbox_list_begin(&w, buf, sizeof(buf));
	tu_fill(s1, sizeof(s1), 1);
	tu_fill(s2, sizeof(s2), 2);
	memset(it.id, 1, 16);
	memset(it.sender, 2, 32);
	it.sealed = s1;
	it.len = sizeof(s1);
	assert_int_equal(mbox_list_add(&w, &it), 0);
	it.sealed = s2;
	it.len = sizeof(s2);
	/* fills up to MBOX_LIST_MAX_BYTES, then refuses */
	unsigned int added = 1;
	while (mbox_list_add(&w, &it) == 0)
		added++;
	assert_true(added >= 2 && added <= MBOX_FETCH_MAX);
	len = mbox_list_end(&w, MBOX_OK, 1);
	assert_true(len > 0 && (size_t)len <= MBOX_RESP_MAX);
	assert_int_equal(mbox_list_parse(buf, (size_t)len, &st, &more, got, MBOX_FETCH_MAX, &n), 0);
	assert_int_equal(n, added);
	assert_int_equal(more, 1);
	assert_int_equal(got[0].len, sizeof(s1));
	assert_memory_equal(got[0].sealed, s1, sizeof(s1));
	assert_int_equal(got[1].ts, 42);
	assert_memory_equal(got[1].sealed, s2, sizeof(s2));
	/* a truncated list, an entry length past the end */
	assert_int_equal(mbox_list_parse(buf, (size_t)len - 1, &st, &more, got, 64, &n), -EBADMSG);
	buf[5 + 4 + 56] ^= 0x10;
	assert_int_equal(mbox_list_parse(buf, (size_t)len, &st, &more, got, 64, &n), -EBADMSG);
}

static void test_rate(void **state)
{
	struct mbox_rate *r;
	struct mbox_score top[4];
	uint8_t a[32], b[32];
	unsigned int tracked, i, n;

	memset(a, 1, 32);
	memset(b, 2, 32);
	assert_int_equal(mbox_rate_new(&r, 60, 5), 0);
	for (i = 0; i < 5; i++)
		assert_int_equal(mbox_rate_take(r, a, 1000), 1);
	assert_int_equal(mbox_rate_take(r, a, 1000), 0); /* burst spent */
	assert_int_equal(mbox_rate_take(r, b, 1000), 1); /* another sender is not */
	assert_int_equal(mbox_rate_take(r, a, 2000), 1); /* 60/min: one per second */
	assert_int_equal(mbox_rate_take(r, a, 2000), 0);
	assert_int_equal(mbox_rate_score(r, a, 2000), 2);
	/* a sender scored to the ban is refused although it has tokens */
	for (i = 0; i < MBOX_SCORE_BAN; i++)
		mbox_rate_strike(r, b, 3000);
	assert_int_equal(mbox_rate_take(r, b, 600000), 0);
	/* and comes back once the score halved below it */
	assert_int_equal(mbox_rate_take(r, b, 3000 + 2 * MBOX_SCORE_HALF_S * 1000ULL), 1);
	n = mbox_rate_top(r, 4000, top, 4, &tracked);
	assert_int_equal(tracked, 2);
	assert_int_equal(n, 2);
	assert_memory_equal(top[0].key, b, 32);
	assert_true(top[0].score >= top[1].score);
	/* the table is bounded: the oldest sender is replaced */
	for (i = 0; i < MBOX_RATE_SLOTS + 10; i++) {
		uint8_t k[32] = { 0 };
		memcpy(k, &i, sizeof(i));
		k[31] = 9;
		mbox_rate_take(r, k, 5000 + i);
	}
	n = mbox_rate_top(r, 10000000, top, 4, &tracked);
	assert_int_equal(tracked, MBOX_RATE_SLOTS);
	mbox_rate_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_round_trip), cmocka_unit_test(test_forged_sender),
		cmocka_unit_test(test_vector),	cmocka_unit_test(test_req_round_trip),
		cmocka_unit_test(test_req_hostile),	cmocka_unit_test(test_answers),
		cmocka_unit_test(test_rate), cmocka_unit_test(test_open_from),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
