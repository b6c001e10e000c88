// SPDX-License-Identifier: MIT
/* Blocklist lines (userspace/content/blocklist.c, cn_block_parse_line): a
 * content id, a share id, a share head KEY/NAME, blanks and comments, and
 * what is refused, as a table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "content/content_node_int.h"
#include "weft/util.h"

#define CID "6161616161616161616161616161616161616161616161616161616161616161"
#define SID "0102030405060708090a0b0c0d0e0f1011121314"
#define PK "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"

static void test_lines(void **state)
{
	static const struct {
		const char *in;
		int rc;
		size_t len;
	} t[] = {
	    {CID, 1, 32},
	    {"  " CID "   # a film we will not carry", 1, 32},
	    {CID "\r", 1, 32},
	    {SID, 1, 20},
	    {"\t" SID "#x", 1, 20},
	    {PK "/photos", 1, 20},
	    {"", 0, 0},
	    {"   ", 0, 0},
	    {"# only a comment", 0, 0},
	    {"\r", 0, 0},
	    {CID "0", -EINVAL, 0},	       /* 65 hex */
	    {"zz" SID, -EINVAL, 0},	       /* not hex */
	    {"6161", -EINVAL, 0},	       /* too short */
	    {"hello world", -EINVAL, 0},
	    {PK "/", -EINVAL, 0},	       /* no name */
	};
	uint8_t id[32];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc;

		len = 0;
		rc = cn_block_parse_line(t[i].in, strlen(t[i].in), id, &len);
		if (rc != t[i].rc)
			fail_msg("\"%s\": %d, want %d", t[i].in, rc, t[i].rc);
		if (rc == 1)
			assert_int_equal(len, t[i].len);
	}
	/* the id read is the one written */
	assert_int_equal(cn_block_parse_line(SID, 40, id, &len), 1);
	assert_int_equal(id[0], 1);
	assert_int_equal(id[19], 0x14);
	/* a head gives its share id */
	{
		uint8_t pk[32], want[20];

		util_unhex(pk, 32, PK);
		manifest_share_id(pk, "photos", 6, want);
		assert_int_equal(cn_block_parse_line(PK "/photos", strlen(PK "/photos"), id, &len), 1);
		assert_memory_equal(id, want, 20);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
