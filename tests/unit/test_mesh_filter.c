// SPDX-License-Identifier: MIT
/*
 * mesh, filters: a table of {filter, body, match} over every operator on
 * integer and string fields, missing fields and mixed kinds; a table of
 * filters refused by syntax or by a limit (length, clauses, name, value);
 * Query bodies round-trip and refuse what the parser refuses; JSON
 * objects become Announce bodies and back, and what is not a flat object
 * of integers and strings is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mesh.h"

static const char BODY[] = "d4:city6:berlin5:floori-2e4:renti450e4:slot16:2026-12-01T09:00e";

static void test_match(void **state)
{
	static const struct {
		const char *f;
		int match;
	} cases[] = {
		{ "", 1 },
		{ "rent=450", 1 },
		{ "rent=451", 0 },
		{ "rent!=451", 1 },
		{ "rent<500", 1 },
		{ "rent<450", 0 },
		{ "rent<=450", 1 },
		{ "rent>450", 0 },
		{ "rent>=450", 1 },
		{ "rent>-1", 1 },
		{ "floor<0", 1 },
		{ "floor=-2", 1 },
		{ "rent=abc", 0 },     /* integer field, not an integer value */
		{ "rent^=45", 0 },     /* ^= holds on strings only */
		{ "rent=0450", 0 },    /* not canonical: not an integer */
		{ "city=berlin", 1 },
		{ "city=Berlin", 0 },
		{ "city^=ber", 1 },
		{ "city^=berlin", 1 },
		{ "city^=berlinx", 0 },
		{ "city^=", 1 },
		{ "city>=b", 1 },
		{ "city<berlin", 0 },
		{ "city<berlio", 1 },
		{ "city>berli", 1 },
		{ "slot>=2026-12-01T08:00", 1 },
		{ "slot<2026-12-01T09:00", 0 },
		{ "slot^=2026-12-01,rent<500", 1 },
		{ "slot^=2026-12-01,rent<400", 0 },
		{ "city=berlin,city=berlin,rent>0", 1 },
		{ "nosuch=1", 0 },
		{ "nosuch!=1", 0 },    /* a missing field never matches */
		{ "city=", 0 },
	};
	struct mesh_filter f;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (mesh_filter_parse(cases[i].f, strlen(cases[i].f), &f) != 0)
			fail_msg("\"%s\" does not parse", cases[i].f);
		if (mesh_filter_match(&f, (const uint8_t *)BODY, strlen(BODY)) != cases[i].match)
			fail_msg("\"%s\": not %d", cases[i].f, cases[i].match);
	}
	/* Not a valid body: nothing matches, not even the empty filter. */
	assert_int_equal(mesh_filter_parse("", 0, &f), 0);
	assert_int_equal(mesh_filter_match(&f, (const uint8_t *)"d4:renti1e", 10), 0);
}

static void test_refused(void **state)
{
	static char big_value[MESH_FILTER_VALUE_MAX + 8], long_name[64], too_long[MESH_FILTER_MAX + 2];
	static const struct {
		const char *f;
		int err;
	} cases[] = {
		{ "rent", -EINVAL },
		{ "=5", -EINVAL },
		{ "Rent=5", -EINVAL },
		{ "rent~5", -EINVAL },
		{ "rent=5,", -EINVAL },
		{ ",rent=5", -EINVAL },
		{ "rent=5,,city=x", -EINVAL },
		{ "rent==5x", 0 },    /* value "=5x" */
		{ "rent=a\tb", -EINVAL },
		{ "a=1,b=1,c=1,d=1,e=1,f=1,g=1,h=1", 0 },
		{ "a=1,b=1,c=1,d=1,e=1,f=1,g=1,h=1,i=1", -E2BIG },
	};
	struct mesh_filter f;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (mesh_filter_parse(cases[i].f, strlen(cases[i].f), &f) != cases[i].err)
			fail_msg("\"%s\": not %d", cases[i].f, cases[i].err);
	memset(big_value, 'v', sizeof(big_value) - 1);
	memcpy(big_value, "a=", 2);
	big_value[2 + MESH_FILTER_VALUE_MAX] = 0;
	assert_int_equal(mesh_filter_parse(big_value, strlen(big_value), &f), 0);
	big_value[2 + MESH_FILTER_VALUE_MAX] = 'v';
	big_value[3 + MESH_FILTER_VALUE_MAX] = 0;
	assert_int_equal(mesh_filter_parse(big_value, strlen(big_value), &f), -E2BIG);
	memset(long_name, 'n', MESH_FIELD_NAME_MAX + 1);
	memcpy(long_name + MESH_FIELD_NAME_MAX + 1, "=1", 3);
	assert_int_equal(mesh_filter_parse(long_name, strlen(long_name), &f), -E2BIG);
	memcpy(long_name + MESH_FIELD_NAME_MAX, "=1", 3);
	assert_int_equal(mesh_filter_parse(long_name, strlen(long_name), &f), 0);
	memset(too_long, 'a', sizeof(too_long) - 1);
	too_long[1] = '=';
	assert_int_equal(mesh_filter_parse(too_long, strlen(too_long), &f), -E2BIG);
	/* Integers past int64: a string value (an integer field never matches it). */
	assert_int_equal(mesh_filter_parse("rent<9223372036854775808", 24, &f), 0);
	assert_int_equal(f.c[0].is_int, 0);
	assert_int_equal(mesh_filter_parse("rent>-9223372036854775808", 25, &f), 0);
	assert_int_equal(f.c[0].is_int, 1);
	assert_int_equal(mesh_filter_match(&f, (const uint8_t *)BODY, strlen(BODY)), 1);
}

static void test_query_body(void **state)
{
	uint8_t b[MESH_BODY_QUERY + 64];
	const char *fl;
	size_t n, flen;
	uint32_t max;

	(void)state;
	assert_int_equal(mesh_query_body("rent<500", 10, b, sizeof(b), &n), 0);
	assert_int_equal(n, strlen("d1:f8:rent<5001:ni10ee"));
	assert_memory_equal(b, "d1:f8:rent<5001:ni10ee", n);
	assert_int_equal(mesh_query_parse(b, n, &fl, &flen, &max), 0);
	assert_int_equal(flen, 8);
	assert_memory_equal(fl, "rent<500", 8);
	assert_int_equal(max, 10);
	assert_int_equal(mesh_query_body("rent<500", 0, b, sizeof(b), &n), -EINVAL);
	assert_int_equal(mesh_query_body("rent<500", 65, b, sizeof(b), &n), -EINVAL);
	assert_int_equal(mesh_query_body("rent", 1, b, sizeof(b), &n), -EINVAL);
	assert_int_equal(mesh_query_body("rent<500", 1, b, 5, &n), -ENOSPC);
	assert_int_equal(mesh_query_parse((const uint8_t *)"d1:f0:1:ni1ee", 13, &fl, &flen, &max), 0);
	assert_int_equal(mesh_query_parse((const uint8_t *)"d1:f0:e", 7, &fl, &flen, &max), -EBADMSG);
	assert_int_equal(mesh_query_parse((const uint8_t *)"d1:f0:1:ni1e1:xi1ee", 19, &fl, &flen,
					  &max),
			 -EBADMSG);
	assert_int_equal(mesh_query_parse((const uint8_t *)"d1:ni1e1:f0:e", 13, &fl, &flen, &max),
			 -EBADMSG);
}

/* --data JSON -> Announce body and back. */
static void test_json(void **state)
{
	static const struct {
		const char *json;
		const char *body; /* NULL: refused with err */
		int err;
	} cases[] = {
		{ "{\"rent\":450,\"city\":\"berlin\"}", "d4:city6:berlin4:renti450ee", 0 },
		{ "{}", "de", 0 },
		{ "{\"floor\":-2}", "d5:floori-2ee", 0 },
		{ "{\"b\":1,\"a\":1,\"a_1\":\"\"}", "d1:ai1e3:a_10:1:bi1ee", 0 },
		{ "[1]", NULL, -EINVAL },
		{ "{\"rent\":4.5}", NULL, -EINVAL },
		{ "{\"ok\":true}", NULL, -EINVAL },
		{ "{\"x\":null}", NULL, -EINVAL },
		{ "{\"x\":{\"y\":1}}", NULL, -EINVAL },
		{ "{\"Rent\":1}", NULL, -EINVAL },
		{ "{\"a\":1,\"a\":2}", NULL, -EINVAL },
		{ "{\"a\":1", NULL, -EINVAL },
		{ "{\"a\\u0000b\":1,\"a\":2}", NULL, -EINVAL },
	};
	uint8_t out[MESH_BODY_ANNOUNCE + 64];
	char big[1200], *js;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = mesh_body_from_json(cases[i].json, strlen(cases[i].json), out, sizeof(out), &n);

		if (cases[i].body) {
			if (r != 0 || n != strlen(cases[i].body) || memcmp(out, cases[i].body, n))
				fail_msg("%s: %d, not %s", cases[i].json, r, cases[i].body);
		} else if (r != cases[i].err) {
			fail_msg("%s: %d, not %d", cases[i].json, r, cases[i].err);
		}
	}
	/* Back to JSON, sorted and compact. */
	assert_int_equal(mesh_body_to_json((const uint8_t *)"d4:city6:berlin4:renti450ee", 27, &js), 0);
	assert_string_equal(js, "{\"city\":\"berlin\",\"rent\":450}");
	free(js);
	assert_int_equal(mesh_body_to_json((const uint8_t *)"d1:a2:\xff\xfe" "e", 9, &js), -EILSEQ);
	assert_int_equal(mesh_body_to_json((const uint8_t *)"d1:ai1e", 7, &js), -EBADMSG);
	/* Over the body's cap; a short buffer. */
	n = (size_t)snprintf(big, sizeof(big), "{\"a\":\"%0256d\",\"b\":\"%0256d\"}", 0, 0);
	assert_int_equal(mesh_body_from_json(big, n, out, sizeof(out), &n), -E2BIG);
	assert_int_equal(mesh_body_from_json("{\"a\":1}", 7, out, 4, &n), -ENOSPC);
	n = (size_t)snprintf(big, sizeof(big), "{\"a\":\"%0257d\"}", 0);
	assert_int_equal(mesh_body_from_json(big, n, out, sizeof(out), &n), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_query_body),
		cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
