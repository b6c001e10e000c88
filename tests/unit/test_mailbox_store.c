// SPDX-License-Identifier: MIT
/*
 * mailbox, the store: a message put is listed for its recipient only, a
 * message left twice is held once, the per-recipient and overall quotas
 * refuse with -EDQUOT, an acknowledgement deletes (only the recipient's
 * own), expiry forgets, the counters come back after a reopen, and the
 * inbox keeps one copy per id.
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
#include "weft/store.h"

struct fx {
	char *dir;
	struct store *st;
	struct mbox_store *ms;
};

static void fx_open(struct fx *f, const struct mbox_limits *lim)
{
	struct store_opts o = { .dir = f->dir };

	assert_int_equal(store_new(&f->st, &o), 0);
	assert_int_equal(mbox_store_new(&f->ms, f->st, lim), 0);
}

static void fx_close(struct fx *f)
{
	mbox_store_free(f->ms);
	store_free(f->st);
	f->ms = NULL;
	f->st = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (sodium_init() < 0 || !f)
		return -1;
	f->dir = tu_tmpdir();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	fx_close(f);
	tu_rmrf_free(f->dir);
	free(f);
	return 0;
}

/* A fake sealed message of len bytes (version byte set), content seed. */
static void msg(uint8_t *buf, size_t len, uint64_t seed)
{
	tu_fill(buf, len, seed);
	buf[0] = MBOX_SEAL_VERSION;
}

static unsigned int list(struct fx *f, const uint8_t *rcpt, uint64_t now, struct mbox_item *items,
			 int *more)
{
	static uint8_t buf[MBOX_RESP_MAX];
	struct mbox_list_w w;
	uint8_t st;
	unsigned int n;
	int len, got;

	mbox_list_begin(&w, buf, sizeof(buf));
	got = mbox_store_list(f->ms, rcpt, MBOX_FETCH_MAX, now, &w, more);
	assert_true(got >= 0);
	len = mbox_list_end(&w, MBOX_OK, *more);
	assert_int_equal(mbox_list_parse(buf, (size_t)len, &st, more, items, MBOX_FETCH_MAX, &n), 0);
	assert_int_equal(n, (unsigned int)got);
	return n;
}

static void test_put_list_ack(void **state)
{
	struct fx *f = *state;
	uint8_t a[32], b[32], s[32], m1[300], m2[400], id1[16], id2[16], id[16];
	struct mbox_item it[MBOX_FETCH_MAX];
	struct mbox_store_stats ss;
	int more;

	memset(a, 0xa1, 32);
	memset(b, 0xb2, 32);
	memset(s, 0x55, 32);
	msg(m1, sizeof(m1), 1);
	msg(m2, sizeof(m2), 2);
	fx_open(f, NULL);
	assert_int_equal(mbox_store_put(f->ms, a, s, m1, sizeof(m1), 60, 1000, id1), 0);
	assert_int_equal(mbox_store_put(f->ms, a, s, m2, sizeof(m2), 0, 1000, id2), 0);
	assert_int_equal(mbox_store_put(f->ms, a, s, m1, sizeof(m1), 60, 1001, id), 0); /* twice */
	assert_memory_equal(id, id1, 16);
	mbox_store_stats(f->ms, &ss);
	assert_int_equal(ss.msgs, 2);
	assert_int_equal(ss.bytes, 700);
	assert_int_equal(ss.recipients, 1);
	assert_int_equal(ss.dup_total, 1);
	assert_int_equal(list(f, b, 1000, it, &more), 0); /* b has nothing */
	assert_int_equal(list(f, a, 1000, it, &more), 2);
	assert_int_equal(more, 0);
	for (int i = 0; i < 2; i++) {
		assert_memory_equal(it[i].sender, s, 32);
		assert_int_equal(it[i].ts, 1000);
		assert_true(!memcmp(it[i].id, id1, 16) || !memcmp(it[i].id, id2, 16));
	}
	/* b cannot acknowledge a's messages */
	assert_int_equal(mbox_store_ack(f->ms, b, id1, 1), 0);
	assert_int_equal(mbox_store_ack(f->ms, a, id1, 1), 1);
	assert_int_equal(mbox_store_ack(f->ms, a, id1, 1), 0);
	assert_int_equal(list(f, a, 1000, it, &more), 1);
	assert_memory_equal(it[0].id, id2, 16);
	/* after a reopen the counters are rebuilt */
	fx_close(f);
	fx_open(f, NULL);
	mbox_store_stats(f->ms, &ss);
	assert_int_equal(ss.msgs, 1);
	assert_int_equal(ss.bytes, 400);
	/* m1's ttl 60 would have ended; m2 (max age) is listed until 7 days */
	assert_int_equal(list(f, a, 1000 + MBOX_DEF_MAX_AGE_S - 1, it, &more), 1);
	assert_int_equal(list(f, a, 1000 + MBOX_DEF_MAX_AGE_S, it, &more), 0);
	assert_int_equal(mbox_store_expire(f->ms, 1000 + MBOX_DEF_MAX_AGE_S), 1);
	mbox_store_stats(f->ms, &ss);
	assert_int_equal(ss.msgs, 0);
	assert_int_equal(ss.recipients, 0);
	assert_int_equal(ss.expired_total, 1);
}

static void test_quotas(void **state)
{
	struct fx *f = *state;
	struct mbox_limits lim = { .per_rcpt_msgs = 3, .per_rcpt_bytes = 1000, .total_msgs = 5,
				   .total_bytes = 100000 };
	uint8_t a[32], b[32], c[32], s[32], m[600], id[16];
	struct mbox_store_stats ss;

	memset(a, 0xa1, 32);
	memset(b, 0xb2, 32);
	memset(c, 0xc3, 32);
	memset(s, 0x55, 32);
	fx_open(f, &lim);
	for (int i = 0; i < 3; i++) {
		msg(m, 200, 10 + (uint64_t)i);
		assert_int_equal(mbox_store_put(f->ms, a, s, m, 200, 0, 1, id), 0);
	}
	msg(m, 200, 20);
	assert_int_equal(mbox_store_put(f->ms, a, s, m, 200, 0, 1, id), -EDQUOT); /* messages */
	msg(m, 600, 21);
	assert_int_equal(mbox_store_put(f->ms, b, s, m, 600, 0, 1, id), 0);
	msg(m, 600, 22);
	assert_int_equal(mbox_store_put(f->ms, b, s, m, 600, 0, 1, id), -EDQUOT); /* bytes */
	msg(m, 100, 23);
	assert_int_equal(mbox_store_put(f->ms, b, s, m, 100, 0, 1, id), 0);
	msg(m, 100, 24);
	assert_int_equal(mbox_store_put(f->ms, c, s, m, 100, 0, 1, id), -EDQUOT); /* overall */
	mbox_store_stats(f->ms, &ss);
	assert_int_equal(ss.msgs, 5);
	assert_int_equal(ss.full_total, 3);
}

static int count_fn(void *arg, const struct mbox_inbox_entry *e)
{
	(*(int *)arg)++;
	return 0;
}

static void test_inbox(void **state)
{
	struct fx *f = *state;
	struct mbox_limits lim = { .inbox_max = 2 };
	uint8_t s[32], m[300], id[16], id2[16], *got;
	struct mbox_inbox_entry e;
	int n = 0;

	memset(s, 0x55, 32);
	fx_open(f, &lim);
	msg(m, sizeof(m), 1);
	assert_int_equal(mbox_inbox_put(f->ms, s, 77, m, sizeof(m), id), 0);
	assert_int_equal(mbox_inbox_put(f->ms, s, 78, m, sizeof(m), id2), 0); /* the second copy */
	assert_memory_equal(id, id2, 16);
	assert_int_equal(mbox_inbox_each(f->ms, count_fn, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(mbox_inbox_get(f->ms, id, &e, &got), 0);
	assert_int_equal(e.len, sizeof(m));
	assert_int_equal(e.ts, 77);
	assert_memory_equal(got, m, sizeof(m));
	free(got);
	msg(m, sizeof(m), 2);
	assert_int_equal(mbox_inbox_put(f->ms, s, 79, m, sizeof(m), id2), 0);
	msg(m, sizeof(m), 3);
	assert_int_equal(mbox_inbox_put(f->ms, s, 79, m, sizeof(m), id2), -EDQUOT);
	assert_int_equal(mbox_inbox_del(f->ms, id), 0);
	assert_int_equal(mbox_inbox_del(f->ms, id), -ENOENT);
	assert_int_equal(mbox_inbox_get(f->ms, id, &e, &got), -ENOENT);
	assert_int_equal(mbox_inbox_put(f->ms, s, 79, m, sizeof(m), id2), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_list_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quotas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inbox, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
