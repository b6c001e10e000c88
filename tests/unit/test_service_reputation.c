// SPDX-License-Identifier: MIT
/* Provider reputation (weft/svc_rep.h) and service versions (weft/svc.h):
 * scores, decay, the latency EWMA, the dead mark, the bound, the stored
 * record (round trip and hostile bytes); version parsing, printing and
 * ranges as a table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "weft/svc.h"
#include "weft/svc_rep.h"

#define T0 1700000000ull

static void key(uint8_t k[IDENTITY_PK_LEN], unsigned int i)
{
	memset(k, 0, IDENTITY_PK_LEN);
	k[0] = (uint8_t)(i >> 8);
	k[1] = (uint8_t)i;
	k[31] = 0x5a;
}

static void test_scores(void **state)
{
	struct svc_rep *r;
	struct svc_rep_info in;
	uint8_t a[32], b[32];

	(void)state;
	assert_int_equal(svc_rep_new(&r, 0), 0);
	key(a, 1);
	key(b, 2);
	assert_int_equal(svc_rep_score(r, a, T0, &in), 50); /* never seen */
	for (int i = 0; i < 8; i++)
		svc_rep_record(r, a, 1, 1000, 0, T0, NULL, NULL);
	/* (8 + 1) / (8 + 2) = 0.9 */
	assert_int_equal(svc_rep_score(r, a, T0, &in), 90);
	assert_int_equal(in.lat_us, 1000);
	svc_rep_record(r, a, 1, 9000, 0, T0, NULL, NULL);
	svc_rep_score(r, a, T0, &in);
	assert_int_equal(in.lat_us, 2000); /* 1000 + (9000 - 1000) / 8 */
	for (int i = 0; i < 3; i++)
		svc_rep_record(r, b, 0, 0, 0, T0, NULL, NULL);
	/* 1 / 5 = 0.2 */
	assert_int_equal(svc_rep_score(r, b, T0, NULL), 20);
	/* a day halves the counts: 1.5 failures -> 1 / 3.5 */
	assert_int_equal(svc_rep_score(r, b, T0 + SVC_REP_HALF_LIFE_S, &in), 20);
	assert_true(in.failed > 1.49 && in.failed < 1.51);
	/* a month later nothing is left: back to the middle */
	assert_int_equal(svc_rep_score(r, b, T0 + 30 * SVC_REP_HALF_LIFE_S, NULL), 50);
	/* dead: last, until SVC_REP_DEAD_S passed or it answers */
	svc_rep_record(r, a, 0, 0, 1, T0, NULL, NULL);
	assert_int_equal(svc_rep_score(r, a, T0 + 1, &in), SVC_REP_DEAD_SCORE);
	assert_true(in.dead_until > 0);
	assert_true(svc_rep_score(r, a, T0 + SVC_REP_DEAD_S, NULL) > 0);
	svc_rep_record(r, a, 0, 0, 1, T0 + 100, NULL, NULL);
	svc_rep_record(r, a, 1, 1000, 0, T0 + 101, NULL, NULL);
	assert_true(svc_rep_score(r, a, T0 + 101, NULL) > 0);
	/* the dead mark alone (a failure counted already): counts unchanged */
	svc_rep_score(r, a, T0 + 101, &in);
	{
		double ok = in.ok, failed = in.failed;

		svc_rep_record(r, a, -1, 0, 1, T0 + 101, NULL, NULL);
		assert_int_equal(svc_rep_score(r, a, T0 + 101, &in), SVC_REP_DEAD_SCORE);
		assert_true(in.ok == ok && in.failed == failed);
	}
	svc_rep_free(r);
}

static void test_bound_and_store(void **state)
{
	uint8_t keys[64][IDENTITY_PK_LEN], recs[64][SVC_REP_REC_LEN], k[32], ev[32];
	struct svc_rep *r, *r2;
	struct svc_rep_info a, b;
	size_t n;
	int evicted;

	(void)state;
	assert_int_equal(svc_rep_new(&r, 16), 0);
	for (unsigned int i = 0; i < 16; i++) {
		key(k, i);
		svc_rep_record(r, k, (int)(i & 1), 100 + i, 0, T0 + i, &evicted, ev);
		assert_int_equal(evicted, 0);
	}
	assert_int_equal(svc_rep_count(r), 16);
	key(k, 100);
	svc_rep_record(r, k, 1, 5, 0, T0 + 100, &evicted, ev);
	assert_int_equal(evicted, 1);
	key(k, 0); /* the one updated longest ago */
	assert_memory_equal(ev, k, 32);
	assert_int_equal(svc_rep_count(r), 16);
	assert_int_equal(svc_rep_score(r, k, T0 + 100, NULL), 50);

	/* every entry is dirty once; taken, then clean */
	n = svc_rep_take_dirty(r, keys, recs, 64);
	assert_int_equal(n, 16);
	assert_int_equal(svc_rep_take_dirty(r, keys + 16, recs + 16, 48), 0);
	assert_int_equal(svc_rep_new(&r2, 16), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(svc_rep_load(r2, keys[i], 32, recs[i], SVC_REP_REC_LEN), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(svc_rep_score(r, keys[i], T0 + 200, &a),
				 svc_rep_score(r2, keys[i], T0 + 200, &b));
		assert_int_equal(a.lat_us, b.lat_us);
		assert_int_equal(a.updated_s, b.updated_s);
	}
	assert_int_equal(svc_rep_take_dirty(r2, keys, recs, 64), 0); /* loaded: clean */
	/* hostile bytes: refused, nothing changed */
	recs[0][0] = 9;
	assert_int_equal(svc_rep_load(r2, keys[0], 32, recs[0], SVC_REP_REC_LEN), -EINVAL);
	recs[0][0] = 1;
	recs[0][35] = 1;
	assert_int_equal(svc_rep_load(r2, keys[0], 32, recs[0], SVC_REP_REC_LEN), -EINVAL);
	recs[0][35] = 0;
	memset(recs[0] + 4, 0xff, 4); /* a count beyond the cap */
	assert_int_equal(svc_rep_load(r2, keys[0], 32, recs[0], SVC_REP_REC_LEN), -EINVAL);
	assert_int_equal(svc_rep_load(r2, keys[0], 31, recs[1], SVC_REP_REC_LEN), -EINVAL);
	assert_int_equal(svc_rep_load(r2, keys[0], 32, recs[1], SVC_REP_REC_LEN - 1), -EINVAL);
	assert_int_equal(svc_rep_count(r2), 16);
	svc_rep_free(r);
	svc_rep_free(r2);
	svc_rep_free(NULL);
}

static void test_versions(void **state)
{
	static const struct {
		const char *s;
		int ok;
		uint32_t v;
	} parse[] = {
	    {"1", 1, 1000000},
	    {"1.2", 1, 1002000},
	    {"1.2.3", 1, 1002003},
	    {"0.0.1", 1, 1},
	    {"4293.999.999", 1, 4293999999u},
	    {"4294", 0, 0},
	    {"1.1000", 0, 0},
	    {"01.2", 0, 0},
	    {"1.2.3.4", 0, 0},
	    {"1..2", 0, 0},
	    {"", 0, 0},
	    {"1.", 0, 0},
	    {"v1", 0, 0},
	    {"1.2-rc1", 0, 0},
	};
	static const struct {
		const char *range;
		const char *v;
		int match;
	} ranges[] = {
	    {">=1.2,<2", "1.2.0", 1}, {">=1.2,<2", "1.9.999", 1}, {">=1.2,<2", "2.0.0", 0},
	    {">=1.2,<2", "1.1.9", 0}, {"1.5.3", "1.5.3", 1},	  {"=1.5", "1.5.1", 0},
	    {"!=2", "2.0.0", 0},      {"!=2", "2.0.1", 1},	  {"> 1 , <= 3", "3.0.0", 1},
	    {"*", "7.0.0", 1},	      {"", "0.0.0", 1},		  {">1", "1.0.0", 0},
	};
	static const char *const bad[] = {">=1.2,<", ">=",	 "1,,2",
					  "=>1",     ">=1.2 <2", "1,2,3,4,5,6,7,8,9"};
	struct svc_vrange r;
	char buf[24];
	uint32_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(parse) / sizeof(parse[0]); i++) {
		int err = svc_version_parse(parse[i].s, strlen(parse[i].s), &v);

		if (parse[i].ok != !err)
			fail_msg("version '%s': %d", parse[i].s, err);
		if (!err)
			assert_int_equal(v, parse[i].v);
	}
	svc_version_fmt(1002003, buf, sizeof(buf));
	assert_string_equal(buf, "1.2.3");
	svc_version_fmt(SVC_VERSION_DEFAULT, buf, sizeof(buf));
	assert_string_equal(buf, "1.0.0");
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		assert_int_equal(svc_vrange_parse(ranges[i].range, &r), 0);
		assert_int_equal(svc_version_parse(ranges[i].v, strlen(ranges[i].v), &v), 0);
		if (svc_vrange_match(&r, v) != ranges[i].match)
			fail_msg("'%s' vs %s", ranges[i].range, ranges[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!svc_vrange_parse(bad[i], &r))
			fail_msg("range '%s' accepted", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scores),
	    cmocka_unit_test(test_bound_and_store),
	    cmocka_unit_test(test_versions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
