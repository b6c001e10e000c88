// SPDX-License-Identifier: MIT
/* Share heads (userspace/content/heads.c): KEY/NAME and BEP 46 magnet
 * links parsed strictly (a table of inputs and verdicts), links printed
 * back, head values read as BEP 46 readers do, head records refused when
 * damaged or forged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "content/heads.h"
#include "weft/dht.h"
#include "weft/util.h"

#define PK "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
#define PK_UP "03A107BFF3CE10BE1D70DD18E74BC09967E4D6309BA50D5F1DDC8664125531B8"
#define MAG "magnet:?xs=urn:btpk:"
/* "photos" in hex */
#define PHOTOS "70686f746f73"
#define H64                                                                                        \
	"6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161" \
	"6161616161616161616161616161616161616161"

static void test_parse_table(void **state)
{
	static const struct {
		const char *in;
		int rc;
		const char *name;
	} t[] = {
	    {PK "/photos", 0, "photos"},
	    {PK_UP "/photos", 0, "photos"},
	    {PK "/a/b c", 0, "a/b c"},
	    {MAG PK "&s=" PHOTOS, 0, "photos"},
	    {"magnet:?s=" PHOTOS "&xs=urn:btpk:" PK, 0, "photos"},
	    {MAG PK "&s=" H64, 0, NULL},	   /* 64 bytes: the bound */
	    {MAG PK "&s=" H64 "61", -E2BIG, NULL}, /* 65 bytes */
	    {PK "/", -EINVAL, NULL},		   /* empty name */
	    {PK, -EINVAL, NULL},		   /* no name */
	    {PK "x/photos", -EINVAL, NULL},	   /* key not 64 hex */
	    {"zz" PK "/photos", -EINVAL, NULL},
	    {PK "/ph\x01otos", -EINVAL, NULL},		       /* control character */
	    {PK "/\xc3\x28", -EINVAL, NULL},		       /* not UTF-8 */
	    {MAG PK, -EINVAL, NULL},			       /* no salt */
	    {MAG PK "&s=", -EINVAL, NULL},		       /* empty salt */
	    {MAG PK "&s=7", -EINVAL, NULL},		       /* odd hex */
	    {MAG PK "&s=7g", -EINVAL, NULL},		       /* not hex */
	    {MAG PK "&s=01", -EINVAL, NULL},		       /* salt not a share name */
	    {MAG PK "&s=" PHOTOS "&s=" PHOTOS, -EINVAL, NULL}, /* twice */
	    {MAG PK "&s=" PHOTOS "&dn=x", -EINVAL, NULL},      /* unknown parameter */
	    {MAG PK "&s=" PHOTOS "&", -EINVAL, NULL},	       /* trailing & */
	    {MAG PK "&s", -EINVAL, NULL},		       /* no '=' */
	    {"magnet:?xs=urn:btih:" PK "&s=" PHOTOS, -EINVAL, NULL},
	    {MAG PK "00&s=" PHOTOS, -EINVAL, NULL}, /* key too long */
	    {"magnet:?", -EINVAL, NULL},
	    {"", -EINVAL, NULL},
	    {NULL, -EINVAL, NULL},
	};
	struct cn_head_ref r;
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = cn_head_parse(t[i].in, &r, &why);

		if (rc != t[i].rc)
			fail_msg("case %zu (%s): %d, want %d (%s)", i, t[i].in ? t[i].in : "NULL",
				 rc, t[i].rc, why);
		if (rc)
			assert_true(why && *why); /* always a message for the user */
		if (!rc && t[i].name)
			assert_string_equal(r.name, t[i].name);
	}
}

static void test_link_roundtrip(void **state)
{
	struct cn_head_ref r, r2;
	const char *why;
	char link[300], text[200];

	(void)state;
	assert_int_equal(cn_head_parse(PK "/photos", &r, &why), 0);
	assert_int_equal(cn_head_link(&r, link, sizeof(link)), 0);
	assert_string_equal(link, MAG PK "&s=" PHOTOS);
	assert_int_equal(cn_head_parse(link, &r2, &why), 0);
	assert_memory_equal(&r, &r2, sizeof(r));
	assert_int_equal(cn_head_text(&r2, text, sizeof(text)), 0);
	assert_string_equal(text, PK "/photos");
	assert_int_equal(cn_head_link(&r, link, 20), -ENOBUFS);
}

static void test_value(void **state)
{
	static const struct {
		const char *v;
		int rc, has_mh;
	} t[] = {
	    {"d2:ih20:aaaaaaaaaaaaaaaaaaaae", 0, 0}, /* what libtorrent users put */
	    {"d2:ih20:aaaaaaaaaaaaaaaaaaaa2:mh32:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbe", 0, 1},
	    {"d1:ai1e2:ih20:aaaaaaaaaaaaaaaaaaaa1:zld1:xi2eeee", 0, 0}, /* extra keys ignored */
	    {"d2:ih19:aaaaaaaaaaaaaaaaaaae", -EINVAL, 0},
	    {"d2:ihi5ee", -EINVAL, 0},
	    {"d2:ih20:aaaaaaaaaaaaaaaaaaaa2:mh3:abce", -EINVAL, 0},
	    {"l2:ih20:aaaaaaaaaaaaaaaaaaaae", -EINVAL, 0},
	    {"20:aaaaaaaaaaaaaaaaaaaa", -EINVAL, 0},
	    {"d2:ih20:aaaaaaaaaaaaaaaaaaaaex", -EINVAL, 0}, /* trailing byte */
	    {"d2:ih20:aaaaaaaaaaaaaaaaaaaa", -EINVAL, 0},   /* truncated */
	    {"", -EINVAL, 0},
	};
	uint8_t sid[20], mh[32], buf[100], want[20], wmh[32];
	int has_mh, n;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc =
		    cn_head_value_read((const uint8_t *)t[i].v, strlen(t[i].v), sid, mh, &has_mh);

		if (rc != t[i].rc)
			fail_msg("value case %zu: %d, want %d", i, rc, t[i].rc);
		if (!rc)
			assert_int_equal(has_mh, t[i].has_mh);
	}
	memset(want, 7, sizeof(want));
	memset(wmh, 9, sizeof(wmh));
	n = cn_head_value(want, wmh, buf, sizeof(buf));
	assert_int_equal(n, 2 + 4 + 23 + 4 + 35);
	assert_int_equal(cn_head_value_read(buf, (size_t)n, sid, mh, &has_mh), 0);
	assert_memory_equal(sid, want, 20);
	assert_memory_equal(mh, wmh, 32);
	assert_int_equal(cn_head_value(want, wmh, buf, 10), -ENOBUFS);
}

static void test_record(void **state)
{
	uint8_t pk[32], sk[64], seed[32] = {1}, buf[CN_HEAD_REC_HDR + DHT_MAX_VALUE];
	struct cn_head_rec rec = {0}, got;
	struct cn_head_ref ref = {0};
	size_t n;

	(void)state;
	assert_true(sodium_init() >= 0);
	crypto_sign_seed_keypair(pk, sk, seed);
	memcpy(ref.pk, pk, 32);
	memcpy(ref.name, "photos", 6);
	ref.name_len = 6;
	rec.flags = CN_HEAD_SUB | CN_HEAD_OWN;
	rec.seq = 3;
	rec.got = 2;
	rec.added = 1700000000;
	rec.vlen = (uint16_t)cn_head_value((const uint8_t *)"aaaaaaaaaaaaaaaaaaaa",
					   (const uint8_t *)"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
					   rec.v, sizeof(rec.v));
	assert_int_equal(
	    dht_bep44_sign(rec.sig, sk, (const uint8_t *)"photos", 6, 3, rec.v, rec.vlen), 0);
	n = cn_head_rec_encode(&rec, buf);
	assert_int_equal(n, CN_HEAD_REC_HDR + rec.vlen);
	assert_int_equal(cn_head_rec_decode(&ref, buf, n, &got), 0);
	assert_int_equal(got.seq, 3);
	assert_int_equal(got.got, 2);
	assert_int_equal(got.flags, CN_HEAD_SUB | CN_HEAD_OWN);
	assert_memory_equal(got.v, rec.v, rec.vlen);
	/* every truncation, and every byte flipped, is refused (the added
	 * time aside, which nothing checks, and the flag bits that stay valid) */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(cn_head_rec_decode(&ref, buf, k, &got), -EBADMSG);
	for (size_t k = 0; k < n; k++) {
		if (k >= 24 && k < 32)
			continue; /* added */
		buf[k] ^= 0x80;
		assert_int_equal(cn_head_rec_decode(&ref, buf, n, &got), -EBADMSG);
		buf[k] ^= 0x80;
	}
	/* the record of another head (other name): its signature fails */
	memcpy(ref.name, "photoz", 6);
	assert_int_equal(cn_head_rec_decode(&ref, buf, n, &got), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table),
	    cmocka_unit_test(test_link_roundtrip),
	    cmocka_unit_test(test_value),
	    cmocka_unit_test(test_record),
	};

	return cmocka_run_group_tests_name("content_heads", tests, NULL, NULL);
}
