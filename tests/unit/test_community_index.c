// SPDX-License-Identifier: MIT
/*
 * community, index: three members and their shares go from one holder's
 * index to another's in sealed pages (members first, then shares); a node
 * with another key opens nothing; a closed community refuses a member
 * without the community key's admission; caps (members, shares, shares per
 * member), stale and foreign records, shares of non-members, over-cap and
 * truncated pages are refused and counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "weft/comm.h"

struct kp {
	uint8_t pk[32], sk[64];
};

static uint8_t id[COMM_ID_LEN], cpk[32], csk[64];
static struct kp mem[40];

static int setup(void **state)
{
	uint8_t s[32];

	(void)state;
	if (sodium_init() < 0)
		return -1;
	for (size_t i = 0; i < 40; i++) {
		tu_fill(s, sizeof(s), 100 + i);
		crypto_sign_seed_keypair(mem[i].pk, mem[i].sk, s);
	}
	comm_create(0, id, cpk, csk);
	return 0;
}

static size_t member(uint8_t *buf, const uint8_t *cid, const struct kp *m, uint64_t seq,
		     uint8_t flags, const uint8_t *admit)
{
	struct comm_rec r = {.type = COMM_REC_MEMBER, .seq = seq, .flags = flags};
	size_t n;

	memcpy(r.id, cid, COMM_ID_LEN);
	memcpy(r.member, m->pk, 32);
	if (admit)
		memcpy(r.admit, admit, 64);
	assert_int_equal(comm_rec_sign(&r, m->sk, buf, COMM_REC_MAX_LEN, &n), 0);
	return n;
}

static size_t share(uint8_t *buf, const struct kp *m, const char *name, uint64_t seq)
{
	struct comm_rec r = {.type = COMM_REC_SHARE, .seq = seq};
	size_t n;

	memcpy(r.id, id, COMM_ID_LEN);
	memcpy(r.member, m->pk, 32);
	memcpy(r.head, m->pk, 32);
	r.name_len = (uint8_t)strlen(name);
	memcpy(r.name, name, r.name_len);
	assert_int_equal(comm_rec_sign(&r, m->sk, buf, COMM_REC_MAX_LEN, &n), 0);
	return n;
}

/* Every page of type from src into dst; returns records added. */
static size_t copy_pages(const struct comm_index *src, struct comm_index *dst, int type)
{
	static uint8_t page[COMM_PAGE_MAX_LEN];
	size_t len, added, sum = 0;
	uint32_t total;

	for (uint32_t p = 0; comm_index_page(src, type, p, page, sizeof(page), &len) == 0; p++) {
		assert_int_equal(comm_index_ingest(dst, page, len, &added, &total), 0);
		assert_int_equal(total, comm_index_count(src, type));
		sum += added;
	}
	return sum;
}

struct taken_log {
	size_t n;
	const uint8_t *id;
	const uint8_t *pk;
};

static void taken_cb(void *arg, const uint8_t *rec, size_t len)
{
	struct taken_log *t = arg;
	struct comm_rec r;

	/* Each is the signed record itself, ready to be stored. */
	assert_int_equal(comm_rec_parse(rec, len, t->id, t->pk, &r), 0);
	t->n++;
}

/* comm_index_ingest_cb hands out exactly the records it added or
 * replaced: the node persists those (comm_node.c). */
static void test_ingest_cb(void **state)
{
	static uint8_t page[COMM_PAGE_MAX_LEN];
	uint8_t buf[COMM_REC_MAX_LEN];
	struct comm_index *a, *b;
	struct taken_log t = {0, id, cpk};
	size_t n, len, added;
	uint32_t total;

	(void)state;
	assert_int_equal(comm_index_new(&a, id, cpk, NULL), 0);
	assert_int_equal(comm_index_new(&b, id, cpk, NULL), 0);
	for (size_t i = 0; i < 5; i++) {
		n = member(buf, id, &mem[i], 1, 0, NULL);
		assert_int_equal(comm_index_add(a, buf, n), 0);
	}
	n = member(buf, id, &mem[0], 1, 0, NULL);
	assert_int_equal(comm_index_add(b, buf, n), 0); /* b holds one already */
	assert_int_equal(comm_index_page(a, COMM_REC_MEMBER, 0, page, sizeof(page), &len), 0);
	assert_int_equal(comm_index_ingest_cb(b, page, len, taken_cb, &t, &added, &total), 0);
	assert_int_equal(added, 4);
	assert_int_equal(t.n, 4);
	assert_int_equal(total, 5);
	/* A newer record replaces and is handed out; the same page again adds nothing. */
	n = member(buf, id, &mem[1], 2, 0, NULL);
	assert_int_equal(comm_index_add(a, buf, n), 1);
	assert_int_equal(comm_index_page(a, COMM_REC_MEMBER, 0, page, sizeof(page), &len), 0);
	t.n = 0;
	assert_int_equal(comm_index_ingest_cb(b, page, len, taken_cb, &t, &added, &total), 0);
	assert_int_equal(added, 1);
	assert_int_equal(t.n, 1);
	comm_index_free(a);
	comm_index_free(b);
}

static void test_exchange(void **state)
{
	uint8_t buf[COMM_REC_MAX_LEN], oid[COMM_ID_LEN], opk[32], osk[64];
	struct comm_index *a, *b, *outsider;
	struct comm_index_stats st;
	struct comm_rec r;
	char name[16];
	size_t n;

	(void)state;
	assert_int_equal(comm_index_new(&a, id, cpk, NULL), 0);
	assert_int_equal(comm_index_new(&b, id, cpk, NULL), 0);
	/* 20 members (more than a page), a share each for the first 3. */
	for (size_t i = 0; i < 20; i++) {
		n = member(buf, id, &mem[i], 1, 0, NULL);
		assert_int_equal(comm_index_add(a, buf, n), 0);
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "share-%zu", i);
		n = share(buf, &mem[i], name, 1);
		assert_int_equal(comm_index_add(a, buf, n), 0);
	}
	assert_int_equal(copy_pages(a, b, COMM_REC_MEMBER), 20);
	assert_int_equal(copy_pages(a, b, COMM_REC_SHARE), 3);
	assert_int_equal(comm_index_count(b, COMM_REC_MEMBER), 20);
	assert_int_equal(comm_index_get(b, COMM_REC_SHARE, 2, &r), 0);
	assert_string_equal(r.name, "share-2");
	assert_memory_equal(r.member, mem[2].pk, 32);
	assert_int_equal(comm_index_get(b, COMM_REC_SHARE, 3, &r), -ENOENT);
	/* Again: nothing new (stale, counted). */
	assert_int_equal(copy_pages(a, b, COMM_REC_MEMBER), 0);
	comm_index_stats(b, &st);
	assert_int_equal(st.stale, 20);
	/* A node with another community's key opens nothing. */
	comm_create(0, oid, opk, osk);
	assert_int_equal(comm_index_new(&outsider, oid, opk, NULL), 0);
	assert_int_equal(copy_pages(a, outsider, COMM_REC_MEMBER), 0);
	comm_index_stats(outsider, &st);
	assert_int_equal(st.foreign, 20);
	assert_int_equal(comm_index_count(outsider, COMM_REC_MEMBER), 0);
	/* A record of another community, a share of a non-member. */
	n = member(buf, oid, &mem[30], 1, 0, NULL);
	assert_int_equal(comm_index_add(b, buf, n), -EXDEV);
	n = share(buf, &mem[30], "x", 1);
	assert_int_equal(comm_index_add(b, buf, n), -EPERM);
	/* A member that left: its shares are refused from then on. */
	n = member(buf, id, &mem[1], 2, COMM_REC_GONE, NULL);
	assert_int_equal(comm_index_add(b, buf, n), 1);
	assert_false(comm_index_is_member(b, mem[1].pk));
	n = share(buf, &mem[1], "late", 1);
	assert_int_equal(comm_index_add(b, buf, n), -EPERM);
	/* And an older record does not bring it back. */
	n = member(buf, id, &mem[1], 1, 0, NULL);
	assert_int_equal(comm_index_add(b, buf, n), -EALREADY);
	comm_index_free(a);
	comm_index_free(b);
	comm_index_free(outsider);
}

static void test_closed(void **state)
{
	uint8_t cid[COMM_ID_LEN], pk[32], sk[64], buf[COMM_REC_MAX_LEN], adm[64];
	struct comm_index *x;
	size_t n;

	(void)state;
	comm_create(1, cid, pk, sk);
	assert_int_equal(comm_index_new(&x, cid, pk, NULL), 0);
	n = member(buf, cid, &mem[0], 1, 0, NULL);
	assert_int_equal(comm_index_add(x, buf, n), -EACCES);
	assert_int_equal(comm_admit(sk, cid, mem[0].pk, adm), 0);
	n = member(buf, cid, &mem[1], 1, 0, adm); /* mem[0]'s admission */
	assert_int_equal(comm_index_add(x, buf, n), -EACCES);
	n = member(buf, cid, &mem[0], 1, 0, adm);
	assert_int_equal(comm_index_add(x, buf, n), 0);
	assert_true(comm_index_is_member(x, mem[0].pk));
	assert_int_equal(comm_index_count(x, COMM_REC_MEMBER), 1);
	comm_index_free(x);
}

static void test_caps(void **state)
{
	const struct comm_index_opts o = {.members_max = 3, .shares_max = 5, .shares_per_member = 2};
	uint8_t buf[COMM_REC_MAX_LEN];
	struct comm_index_stats st;
	struct comm_index *x;
	size_t n;

	(void)state;
	assert_int_equal(comm_index_new(&x, id, cpk, &o), 0);
	for (size_t i = 0; i < 3; i++) {
		n = member(buf, id, &mem[i], 1, 0, NULL);
		assert_int_equal(comm_index_add(x, buf, n), 0);
	}
	n = member(buf, id, &mem[3], 1, 0, NULL);
	assert_int_equal(comm_index_add(x, buf, n), -ENOSPC);
	/* A held member's newer record still replaces at the cap. */
	n = member(buf, id, &mem[2], 5, 0, NULL);
	assert_int_equal(comm_index_add(x, buf, n), 1);
	n = share(buf, &mem[0], "a", 1);
	assert_int_equal(comm_index_add(x, buf, n), 0);
	n = share(buf, &mem[0], "b", 1);
	assert_int_equal(comm_index_add(x, buf, n), 0);
	n = share(buf, &mem[0], "c", 1);
	assert_int_equal(comm_index_add(x, buf, n), -ENOSPC);
	n = share(buf, &mem[0], "a", 2);
	assert_int_equal(comm_index_add(x, buf, n), 1);
	for (const char *s = "de"; *s; s++) {
		char nm[2] = {*s, 0};

		n = share(buf, &mem[1], nm, 1);
		assert_int_equal(comm_index_add(x, buf, n), 0);
	}
	n = share(buf, &mem[2], "f", 1);
	assert_int_equal(comm_index_add(x, buf, n), 0);
	n = share(buf, &mem[2], "g", 1);
	assert_int_equal(comm_index_add(x, buf, n), -ENOSPC);
	/* A record signed by another key. */
	n = share(buf, &mem[2], "h", 1);
	memcpy(buf + 2 + COMM_ID_LEN, mem[0].pk, 32);
	assert_int_equal(comm_index_add(x, buf, n), -EBADMSG);
	comm_index_stats(x, &st);
	assert_int_equal(st.full, 3);
	assert_int_equal(st.bad, 1);
	assert_int_equal(st.replaced, 2);
	comm_index_free(x);
}

static void test_bad_pages(void **state)
{
	static uint8_t page[COMM_PAGE_MAX_LEN + 64];
	uint8_t buf[COMM_REC_MAX_LEN];
	struct comm_index *a, *b;
	struct comm_index_stats st;
	size_t n, len, added;
	uint32_t total;

	(void)state;
	assert_int_equal(comm_index_new(&a, id, cpk, NULL), 0);
	assert_int_equal(comm_index_new(&b, id, cpk, NULL), 0);
	for (size_t i = 0; i < 16; i++) {
		n = member(buf, id, &mem[i], 1, 0, NULL);
		assert_int_equal(comm_index_add(a, buf, n), 0);
	}
	assert_int_equal(comm_index_page(a, COMM_REC_MEMBER, 1, page, sizeof(page), &len), -ENOENT);
	assert_int_equal(comm_index_page(a, COMM_REC_MEMBER, 0, page, sizeof(page), &len), 0);
	/* Every truncation is refused whole. */
	for (size_t i = 0; i < len; i++)
		assert_int_equal(comm_index_ingest(b, page, i, &added, &total), -EBADMSG);
	assert_int_equal(comm_index_count(b, COMM_REC_MEMBER), 0);
	/* A page claiming more records than a page holds. */
	page[10] = COMM_PAGE_RECS + 1;
	assert_int_equal(comm_index_ingest(b, page, len, &added, &total), -E2BIG);
	page[10] = COMM_PAGE_RECS;
	/* A changed byte in one box: that record only is skipped. */
	page[COMM_PAGE_HDR_LEN + 5] ^= 1;
	assert_int_equal(comm_index_ingest(b, page, len, &added, &total), 0);
	assert_int_equal(added, 15);
	comm_index_stats(b, &st);
	assert_int_equal(st.bad_page, len + 1);
	assert_int_equal(st.foreign, 1);
	/* Short output buffer. */
	assert_int_equal(comm_index_page(a, COMM_REC_MEMBER, 0, page, 100, &len), -ENOSPC);
	comm_index_free(a);
	comm_index_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exchange),
		cmocka_unit_test(test_ingest_cb),
		cmocka_unit_test(test_closed),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_bad_pages),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
