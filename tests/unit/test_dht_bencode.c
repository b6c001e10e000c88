// SPDX-License-Identifier: MIT
/* Bencode decoder/encoder: vectors, canonical forms, every kind of bad input. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "weft/bencode.h"

#define NCAP 64

static int dec(const char *s, unsigned int flags)
{
	struct bencode_node nodes[NCAP];
	struct bencode_doc d = {.nodes = nodes, .cap = NCAP};

	return bencode_decode(&d, (const uint8_t *)s, strlen(s), flags, NULL);
}

static void test_valid(void **state)
{
	struct bencode_node nodes[NCAP];
	struct bencode_doc d = {.nodes = nodes, .cap = NCAP};
	const char *s = "d1:ai-42e1:bl3:fooi0ee1:cd0:0:ee";
	const struct bencode_node *r, *a, *b, *c, *it;

	assert_int_equal(bencode_decode(&d, (const uint8_t *)s, strlen(s), BENCODE_STRICT, NULL),
			 0);
	r = bencode_root(&d);
	assert_int_equal(r->type, BENCODE_DICT);
	assert_int_equal(r->count, 3);
	a = bencode_dict_get_type(&d, r, "a", BENCODE_INT);
	assert_non_null(a);
	assert_int_equal(a->i, -42);
	b = bencode_dict_get_type(&d, r, "b", BENCODE_LIST);
	assert_non_null(b);
	assert_int_equal(b->count, 2);
	it = bencode_first(&d, b);
	assert_int_equal(it->type, BENCODE_STR);
	assert_int_equal(it->slen, 3);
	assert_memory_equal(it->s, "foo", 3);
	it = bencode_next(&d, it);
	assert_int_equal(it->type, BENCODE_INT);
	assert_int_equal(it->i, 0);
	assert_null(bencode_next(&d, it));
	c = bencode_dict_get_type(&d, r, "c", BENCODE_DICT);
	assert_non_null(c);
	assert_int_equal(c->rawlen, 6);
	assert_memory_equal(c->raw, "d0:0:e", 6);
	assert_null(bencode_dict_get(&d, r, "zz"));
	assert_null(bencode_dict_get_type(&d, r, "a", BENCODE_STR));
	/* extreme integers */
	assert_int_equal(dec("i9223372036854775807e", 0), 0);
	assert_int_equal(dec("i-9223372036854775808e", 0), 0);
	assert_int_equal(dec("0:", 0), 0);
	assert_int_equal(dec("le", 0), 0);
	assert_int_equal(dec("de", BENCODE_STRICT), 0);
}

static void test_noncanonical(void **state)
{
	static const char *bad[] = {
	    "i-0e",
	    "i03e",
	    "ie",
	    "i-e",
	    "i--1e",
	    "i+1e",
	    "i1",
	    "i 1e",
	    "i9223372036854775808e",
	    "i-9223372036854775809e",
	    "01:a",
	    "00:",
	    "-1:a",
	    "1a",
	    "2:a",
	    ":",
	    "x",
	    "e",
	    "",
	    "l",
	    "d",
	    "d1:a",
	    "d1:ae",
	    "di1ei2ee",
	    "dl1:ae1:be",
	    "lee",
	    "4294967296:a",
	    "99999999999999999999:a",
	    "i1ei2e",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = dec(bad[i], 0);

		if (err == 0)
			fail_msg("accepted bad input '%s'", bad[i]);
	}
}

static void test_keys(void **state)
{
	assert_int_equal(dec("d1:a0:1:b0:e", BENCODE_STRICT), 0);
	assert_int_equal(dec("d1:b0:1:a0:e", BENCODE_STRICT), -EINVAL); /* unsorted */
	assert_int_equal(dec("d1:b0:1:a0:e", 0), 0);			/* lenient ok */
	assert_int_equal(dec("d1:a0:1:a0:e", BENCODE_STRICT), -EINVAL); /* duplicate */
	assert_int_equal(dec("d1:a0:1:a0:e", 0), -EINVAL);
	assert_int_equal(dec("d1:b0:1:a0:1:b0:e", 0), -EINVAL);	   /* dup, unsorted */
	assert_int_equal(dec("d1:a0:2:aa0:e", BENCODE_STRICT), 0); /* prefix sorts first */
	assert_int_equal(dec("d2:aa0:1:a0:e", BENCODE_STRICT), -EINVAL);
}

static void test_truncation(void **state)
{
	const char *s = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:q1:lli1ei-2el0:eee";
	size_t len = strlen(s);
	struct bencode_node nodes[NCAP];
	struct bencode_doc d = {.nodes = nodes, .cap = NCAP};

	assert_int_equal(bencode_decode(&d, (const uint8_t *)s, len, 0, NULL), 0);
	for (size_t i = 0; i < len; i++) {
		/* heap copy so ASan catches any read past the cut */
		uint8_t *cp = malloc(i ? i : 1);

		memcpy(cp, s, i);
		assert_int_not_equal(bencode_decode(&d, cp, i, 0, NULL), 0);
		free(cp);
	}
	/* trailing garbage */
	assert_int_equal(dec("i1ex", 0), -EINVAL);
	{
		size_t used = 0;

		assert_int_equal(
		    bencode_decode(&d, (const uint8_t *)"i1ex", 4, BENCODE_ALLOW_TRAILING, &used),
		    0);
		assert_int_equal(used, 3);
	}
}

static void test_depth_and_size(void **state)
{
	char bomb[4096];
	struct bencode_node nodes[NCAP];
	struct bencode_doc d = {.nodes = nodes, .cap = NCAP, .max_depth = 8};
	size_t n = 0;

	for (int i = 0; i < 2000; i++)
		bomb[n++] = 'l';
	for (int i = 0; i < 2000; i++)
		bomb[n++] = 'e';
	assert_int_equal(bencode_decode(&d, (uint8_t *)bomb, n, 0, NULL), -ELOOP);
	d.cap = NCAP;
	assert_int_equal(bencode_decode(&d, (const uint8_t *)"llllllllleeeeeeeee", 18, 0, NULL),
			 -ELOOP);
	assert_int_equal(bencode_decode(&d, (const uint8_t *)"lllllllleeeeeeee", 16, 0, NULL), 0);
	/* too many nodes */
	memset(bomb, 0, sizeof(bomb));
	n = 0;
	bomb[n++] = 'l';
	for (int i = 0; i < 100; i++) {
		memcpy(bomb + n, "i1e", 3);
		n += 3;
	}
	bomb[n++] = 'e';
	assert_int_equal(bencode_decode(&d, (uint8_t *)bomb, n, 0, NULL), -E2BIG);
	/* string length way past the buffer */
	assert_int_equal(dec("5:abc", 0), -EINVAL);
	assert_int_equal(dec("18446744073709551615:a", 0), -EINVAL);
}

static void test_encoder(void **state)
{
	uint8_t buf[64];
	struct bencode_buf b;
	struct bencode_node nodes[NCAP];
	struct bencode_doc d = {.nodes = nodes, .cap = NCAP};

	bencode_buf_init(&b, buf, sizeof(buf));
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "a");
	bencode_put_int(&b, -7);
	bencode_put_cstr(&b, "b");
	bencode_put_list(&b);
	bencode_put_str(&b, "x\0y", 3);
	bencode_put_end(&b);
	bencode_put_end(&b);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, strlen("d1:ai-7e1:bl3:x") + 4);
	assert_memory_equal(buf, "d1:ai-7e1:bl3:x\0yee", b.len);
	assert_int_equal(bencode_decode(&d, buf, b.len, BENCODE_STRICT, NULL), 0);
	/* overflow is sticky */
	bencode_buf_init(&b, buf, 4);
	bencode_put_cstr(&b, "hello");
	bencode_put_int(&b, 1);
	assert_int_equal(b.err, -ENOBUFS);
	assert_true(b.len <= 4);
}

/* The hand-written integer formatter against snprintf at the edges. */
static void test_encoder_numbers(void **state)
{
	static const int64_t ints[] = { 0, 1, -1, 9, 10, -10, 99, 100, 1234567890123LL,
					INT64_MAX, INT64_MIN, INT64_MIN + 1 };
	static const size_t lens[] = { 0, 1, 9, 10, 20, 99, 100, 208, 1000 };
	static uint8_t big[1100];
	uint8_t buf[1200];
	char want[1200];
	struct bencode_buf b;
	int n;

	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		bencode_buf_init(&b, buf, sizeof(buf));
		bencode_put_int(&b, ints[i]);
		n = snprintf(want, sizeof(want), "i%" PRId64 "e", ints[i]);
		assert_int_equal(b.err, 0);
		assert_int_equal(b.len, (size_t)n);
		assert_memory_equal(buf, want, (size_t)n);
	}
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		bencode_buf_init(&b, buf, sizeof(buf));
		bencode_put_str(&b, big, lens[i]);
		n = snprintf(want, sizeof(want), "%zu:", lens[i]);
		assert_int_equal(b.err, 0);
		assert_int_equal(b.len, (size_t)n + lens[i]);
		assert_memory_equal(buf, want, (size_t)n);
	}
	/* a prefix that does not fit is refused whole */
	bencode_buf_init(&b, buf, 3);
	bencode_put_str(&b, big, 100);
	assert_int_equal(b.err, -ENOBUFS);
	assert_int_equal(b.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),	   cmocka_unit_test(test_noncanonical),
	    cmocka_unit_test(test_keys),	   cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_depth_and_size), cmocka_unit_test(test_encoder),
	    cmocka_unit_test(test_encoder_numbers),
	};

	return cmocka_run_group_tests_name("dht_bencode", tests, NULL, NULL);
}
