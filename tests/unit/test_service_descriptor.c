// SPDX-License-Identifier: MIT
/* Service descriptors: vectors, sign/verify, forgery, time window, caps,
 * owner mismatch, bans, canonical-form rejections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "weft/bencode.h"
#include "weft/svc.h"
#include "weft/util.h"

#define T_CREATED 1700000000ull
#define T_EXPIRES 1700003600ull

/* docs/SERVICE.md, vector D1: seed 00 01 .. 1f. */
static const char d1_hex[] =
    "64313a6464313a63693137303030303030303065313a656c31373a3139382e35312e3130302e31"
    "3a3434333365313a6d64353a70726f746f363a776566742f3165313a6e343a6563686f313a6f33"
    "323a03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8313a766931"
    "65313a7869313730303030333630306565313a7336343ade5552e54ae80ebe17cf5f410bc9eda8"
    "a84a735dafd98a379820159e617ba81ac0c096dd399d84a63bd7de6251f139c4fbc5f2cdbe6737"
    "8726684abc9bb0270d65";
static const char d1_pk[] = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
static const char d1_id[] = "7d7f4379bf08d08518ac2ae829b303a57ed6fc6d";
static const char d1_target[] = "61231adae3fa71eb75b3bada348f2fb8d5a42f10";

static void seed_id(struct identity *id, uint8_t base)
{
	uint8_t seed[32];

	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)(base + i);
	identity_from_seed(id, seed);
}

static void base_desc(struct svc_desc *d)
{
	memset(d, 0, sizeof(*d));
	d->name = "echo";
	d->name_len = 4;
	d->version = 1;
	d->n_endpoints = 1;
	d->endpoints[0] = "198.51.100.1:4433";
	d->endpoint_lens[0] = strlen(d->endpoints[0]);
	d->n_meta = 1;
	d->meta[0].key = (const uint8_t *)"proto";
	d->meta[0].key_len = 5;
	d->meta[0].val = (const uint8_t *)"weft/1";
	d->meta[0].val_len = 6;
	d->created = T_CREATED;
	d->expires = T_EXPIRES;
}

/* Key claim vector C1 (docs/SERVICE.md; computed with Python
 * `cryptography`): key of seed 00..1f, target SHA1("weft:svc:echo"),
 * t = 1700000000. Every one-bit change is refused; the time window holds
 * at its edges; another service's target is refused. */
static const char c1_hex[] =
    "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8000000006553f100"
    "c0e562aafc647bec6b5aa72dc1bc8d22359d261da7c9af13120596a3524333bae05676f6cbffc498"
    "af417db784a256ff1c60b88a523883ba5d6c08915054fe0a";

static void test_claim(void **state)
{
	struct identity id;
	uint8_t target[20], other[20], want[SVC_CLAIM_LEN], c[SVC_CLAIM_LEN], key[32];
	const uint64_t t = 1700000000;

	(void)state;
	seed_id(&id, 0);
	assert_int_equal(util_unhex(target, 20, d1_target), 0);
	assert_int_equal(util_unhex(want, sizeof(want), c1_hex), 0);
	svc_claim_sign(c, &id, target, t);
	assert_memory_equal(c, want, SVC_CLAIM_LEN);
	assert_int_equal(svc_claim_verify(c, target, t, key), 0);
	assert_memory_equal(key, id.pk, 32);
	assert_int_equal(svc_claim_verify(c, target, t + SVC_CLAIM_MAX_AGE_S, key), 0);
	assert_int_equal(svc_claim_verify(c, target, t + SVC_CLAIM_MAX_AGE_S + 1, key),
			 -EKEYEXPIRED);
	assert_int_equal(svc_claim_verify(c, target, t - SVC_CLAIM_SKEW_S, key), 0);
	assert_int_equal(svc_claim_verify(c, target, t - SVC_CLAIM_SKEW_S - 1, key),
			 -EKEYEXPIRED);
	svc_name_target(other, "echo2", 5);
	assert_int_equal(svc_claim_verify(c, other, t, key), -EBADMSG);
	for (size_t i = 0; i < SVC_CLAIM_LEN * 8; i++) {
		memcpy(c, want, sizeof(c));
		c[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_not_equal(svc_claim_verify(c, target, t, key), 0);
	}
	identity_wipe(&id);
}

static void test_vector(void **state)
{
	struct identity id;
	struct svc_desc d, back;
	uint8_t out[SVC_DESC_MAX_LEN], want[sizeof(d1_hex) / 2], x[32];
	char hex[2 * SVC_ID_LEN + 1];
	size_t n;

	seed_id(&id, 0);
	assert_int_equal(util_unhex(x, 32, d1_pk), 0);
	assert_memory_equal(x, id.pk, 32);
	base_desc(&d);
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), 0);
	assert_int_equal(util_unhex(want, sizeof(want), d1_hex), 0);
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(out, want, n);
	/* Decode gives back every field. */
	assert_int_equal(
	    svc_desc_verify(out, n, id.pk, T_CREATED, SVC_DESC_DEFAULT_SKEW, NULL, NULL, &back), 0);
	assert_int_equal(back.name_len, 4);
	assert_memory_equal(back.name, "echo", 4);
	assert_int_equal(back.version, 1);
	assert_int_equal(back.n_endpoints, 1);
	assert_memory_equal(back.endpoints[0], "198.51.100.1:4433", 17);
	assert_int_equal(back.n_meta, 1);
	assert_memory_equal(back.meta[0].val, "weft/1", 6);
	assert_int_equal(back.created, T_CREATED);
	assert_int_equal(back.expires, T_EXPIRES);
	assert_memory_equal(back.sig, d.sig, 64);

	{
		uint8_t sid[SVC_ID_LEN], t[20];

		svc_id(sid, id.pk, "echo", 4);
		util_hex(hex, sid, SVC_ID_LEN);
		assert_string_equal(hex, d1_id);
		assert_int_equal(svc_name_target(t, "echo", 4), 0);
		util_hex(hex, t, 20);
		assert_string_equal(hex, d1_target);
	}
}

/* Flip each bit-0 of every byte: nothing may verify. */
static void test_forged_every_byte(void **state)
{
	struct identity id;
	struct svc_desc d;
	uint8_t out[SVC_DESC_MAX_LEN];
	size_t n, sigs = 0;

	seed_id(&id, 0);
	base_desc(&d);
	d.n_endpoints = 2;
	d.endpoints[1] = "[2001:db8:77::1]:4433";
	d.endpoint_lens[1] = strlen(d.endpoints[1]);
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), 0);
	for (size_t i = 0; i < n; i++) {
		int rc;

		out[i] ^= 0x01;
		rc = svc_desc_verify(out, n, NULL, T_CREATED, 300, NULL, NULL, NULL);
		out[i] ^= 0x01;
		if (rc != SVC_DESC_E_SIGNATURE && rc != SVC_DESC_E_MALFORMED &&
		    rc != SVC_DESC_E_OVERSIZED && rc != SVC_DESC_E_EXPIRED &&
		    rc != SVC_DESC_E_FUTURE)
			fail_msg("byte %zu: unexpected %d", i, rc);
		if (rc == SVC_DESC_E_SIGNATURE)
			sigs++;
	}
	/* Every byte inside a value that stays well-formed is caught by the
	 * signature: name, owner, signature, metadata value, numbers. */
	assert_true(sigs > 64 + 32);
	assert_int_equal(svc_desc_verify(out, n, NULL, T_CREATED, 300, NULL, NULL, NULL), 0);
}

/* Flip one byte inside each field's value specifically: signature error. */
static void test_forged_each_field(void **state)
{
	static const char *const fields[] = {"echo",  "198.51.100.1:4433", "weft/1",
					     "proto", "1700000000",	   "1700003600"};
	struct identity id;
	struct svc_desc d;
	uint8_t out[SVC_DESC_MAX_LEN];
	size_t n;
	int rc;

	seed_id(&id, 0);
	base_desc(&d);
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), 0);
	for (size_t f = 0; f < WEFT_ARRAY_SIZE(fields); f++) {
		uint8_t *p = memmem(out, n, fields[f], strlen(fields[f]));

		size_t at = f >= 4 ? strlen(fields[f]) - 1 : 1; /* numbers: last digit */
		uint8_t bit = (f == 1 || f >= 4) ? 0x01 : 0x02;

		assert_non_null(p);
		/* a change that stays in the charset / canonical form */
		p[at] ^= bit;
		rc = svc_desc_verify(out, n, NULL, T_CREATED, 300, NULL, NULL, NULL);
		p[at] ^= bit;
		if (f == 1 || f == 3)
			assert_true(rc == SVC_DESC_E_SIGNATURE || rc == SVC_DESC_E_MALFORMED);
		else
			assert_int_equal(rc, SVC_DESC_E_SIGNATURE);
	}
	/* owner key (offset found from the key bytes) and signature bytes */
	{
		uint8_t *p = memmem(out, n, id.pk, 32);

		assert_non_null(p);
		p[7] ^= 0x80;
		assert_int_equal(svc_desc_verify(out, n, NULL, T_CREATED, 300, NULL, NULL, NULL),
				 SVC_DESC_E_SIGNATURE);
		p[7] ^= 0x80;
		p = memmem(out, n, d.sig, 64);
		assert_non_null(p);
		p[63] ^= 0x01;
		assert_int_equal(svc_desc_verify(out, n, NULL, T_CREATED, 300, NULL, NULL, NULL),
				 SVC_DESC_E_SIGNATURE);
		p[63] ^= 0x01;
	}
	/* version 1 -> 3 */
	{
		uint8_t *p = memmem(out, n, "1:vi1e", 6);

		assert_non_null(p);
		p[4] = '3';
		assert_int_equal(svc_desc_verify(out, n, NULL, T_CREATED, 300, NULL, NULL, NULL),
				 SVC_DESC_E_SIGNATURE);
	}
}

static void test_time_window(void **state)
{
	struct identity id;
	struct svc_desc d;
	uint8_t out[SVC_DESC_MAX_LEN];
	size_t n;

	seed_id(&id, 0);
	base_desc(&d);
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), 0);
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_EXPIRES - 1, 300, NULL, NULL, NULL), 0);
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_EXPIRES, 300, NULL, NULL, NULL),
			 SVC_DESC_E_EXPIRED);
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_EXPIRES + 86400, 300, NULL, NULL, NULL),
			 SVC_DESC_E_EXPIRED);
	/* created 300 s ahead of our clock: accepted; 301 s: future-dated */
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_CREATED - 300, 300, NULL, NULL, NULL), 0);
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_CREATED - 301, 300, NULL, NULL, NULL),
			 SVC_DESC_E_FUTURE);
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_CREATED - 301, 0, NULL, NULL, NULL),
			 SVC_DESC_E_FUTURE);
	/* the encoder refuses an empty or over-long window */
	d.expires = d.created;
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), -EINVAL);
	d.expires = d.created + SVC_DESC_MAX_LIFETIME + 1;
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), -EINVAL);
	d.expires = d.created + SVC_DESC_MAX_LIFETIME;
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), 0);
}

static void test_owner_and_ban(void **state)
{
	struct identity id, other;
	struct svc_desc d;
	uint8_t out[SVC_DESC_MAX_LEN];
	size_t n;

	seed_id(&id, 0);
	seed_id(&other, 100);
	base_desc(&d);
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), 0);
	assert_int_equal(svc_desc_verify(out, n, other.pk, T_CREATED, 300, NULL, NULL, NULL),
			 SVC_DESC_E_OWNER);
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_CREATED, 300, NULL, NULL, NULL), 0);
}

static int ban_calls;
static int ban_cb(void *ctx, const uint8_t owner[IDENTITY_PK_LEN])
{
	ban_calls++;
	return memcmp(owner, ctx, IDENTITY_PK_LEN) == 0;
}

static void test_banned(void **state)
{
	struct identity id, other;
	struct svc_desc d;
	uint8_t out[SVC_DESC_MAX_LEN];
	size_t n;

	seed_id(&id, 0);
	seed_id(&other, 100);
	base_desc(&d);
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), 0);
	ban_calls = 0;
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_CREATED, 300, ban_cb, id.pk, NULL),
			 SVC_DESC_E_BANNED);
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_CREATED, 300, ban_cb, other.pk, NULL), 0);
	assert_int_equal(ban_calls, 2);
}

/* Hand-built descriptor body with n_meta entries of the given value size,
 * properly signed, so the decoder's caps are what rejects it. */
static size_t build_signed(const struct identity *id, uint32_t n_meta, size_t val_len, uint8_t *out,
			   size_t cap)
{
	static const char dom[] = SVC_DESC_SIG_DOMAIN;
	uint8_t msg[8192], sig[64], val[2048];
	struct bencode_buf b, o;
	char key[8];

	memset(val, 'v', sizeof(val));
	memcpy(msg, dom, sizeof(dom) - 1);
	bencode_buf_init(&b, msg + sizeof(dom) - 1, sizeof(msg) - sizeof(dom));
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "c");
	bencode_put_int(&b, (int64_t)T_CREATED);
	bencode_put_cstr(&b, "e");
	bencode_put_list(&b);
	bencode_put_cstr(&b, "198.51.100.1:4433");
	bencode_put_end(&b);
	bencode_put_cstr(&b, "m");
	bencode_put_dict(&b);
	for (uint32_t i = 0; i < n_meta; i++) {
		snprintf(key, sizeof(key), "k%02u", i);
		bencode_put_cstr(&b, key);
		bencode_put_str(&b, val, val_len);
	}
	bencode_put_end(&b);
	bencode_put_cstr(&b, "n");
	bencode_put_cstr(&b, "echo");
	bencode_put_cstr(&b, "o");
	bencode_put_str(&b, id->pk, 32);
	bencode_put_cstr(&b, "v");
	bencode_put_int(&b, 1);
	bencode_put_cstr(&b, "x");
	bencode_put_int(&b, (int64_t)T_EXPIRES);
	bencode_put_end(&b);
	assert_int_equal(b.err, 0);
	identity_sign(id, msg, sizeof(dom) - 1 + b.len, sig);
	bencode_buf_init(&o, out, cap);
	bencode_put_dict(&o);
	bencode_put_cstr(&o, "d");
	bencode_put_raw(&o, msg + sizeof(dom) - 1, b.len);
	bencode_put_cstr(&o, "s");
	bencode_put_str(&o, sig, 64);
	bencode_put_end(&o);
	assert_int_equal(o.err, 0);
	return o.len;
}

static void test_oversized(void **state)
{
	struct identity id;
	struct svc_desc d;
	uint8_t out[8192], val[1100];
	size_t n;

	seed_id(&id, 0);
	/* 10 entries, 3 + 99 bytes each: 1020 bytes, accepted */
	n = build_signed(&id, 10, 99, out, sizeof(out));
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_CREATED, 300, NULL, NULL, NULL), 0);
	/* exactly 1024 bytes: 1 entry of 3 + 1021 */
	n = build_signed(&id, 1, 1021, out, sizeof(out));
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_CREATED, 300, NULL, NULL, NULL), 0);
	/* 11 entries */
	n = build_signed(&id, 11, 1, out, sizeof(out));
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_CREATED, 300, NULL, NULL, NULL),
			 SVC_DESC_E_OVERSIZED);
	/* 1025 bytes in total */
	n = build_signed(&id, 1, 1022, out, sizeof(out));
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_CREATED, 300, NULL, NULL, NULL),
			 SVC_DESC_E_OVERSIZED);
	n = build_signed(&id, 5, 202, out, sizeof(out)); /* 5 * 205 = 1025 */
	assert_int_equal(svc_desc_verify(out, n, id.pk, T_CREATED, 300, NULL, NULL, NULL),
			 SVC_DESC_E_OVERSIZED);
	/* whole encoding over SVC_DESC_MAX_LEN */
	n = build_signed(&id, 1, 1021, out, sizeof(out));
	memset(out + n, 'x', SVC_DESC_MAX_LEN + 1 - n);
	assert_int_equal(
	    svc_desc_verify(out, SVC_DESC_MAX_LEN + 1, id.pk, T_CREATED, 300, NULL, NULL, NULL),
	    SVC_DESC_E_OVERSIZED);

	/* the encoder refuses the same */
	memset(val, 'v', sizeof(val));
	base_desc(&d);
	d.n_meta = 11;
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), -EMSGSIZE);
	d.n_meta = 1;
	d.meta[0].val = val;
	d.meta[0].val_len = 1020; /* + "proto" = 1025 */
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), -EMSGSIZE);
	d.meta[0].val_len = 1019;
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), 0);
	/* endpoints: 9 is over the cap */
	base_desc(&d);
	d.n_endpoints = 9;
	for (int i = 0; i < 9; i++) {
		d.endpoints[i < 8 ? i : 7] = "198.51.100.1:4433";
		d.endpoint_lens[i < 8 ? i : 7] = 17;
	}
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), -EMSGSIZE);
}

static void test_encoder_rules(void **state)
{
	static const char *const bad_names[] = {"", "Echo", "-x", "a b", "a/b", "é", "mesh-msg"};
	static const char *const bad_eps[] = {"198.51.100.1",
					      "198.51.100.1:0",
					      "198.51.100.1:04433",
					      "[2001:DB8:77::1]:1",
					      "[2001:db8:77:0::1]:1",
					      "host:80",
					      ":80"};
	struct identity id;
	struct svc_desc d;
	uint8_t out[SVC_DESC_MAX_LEN];
	char longname[SVC_NAME_MAX + 2];
	size_t n;

	seed_id(&id, 0);
	for (size_t i = 0; i < WEFT_ARRAY_SIZE(bad_names); i++) {
		base_desc(&d);
		d.name = bad_names[i];
		d.name_len = strlen(bad_names[i]);
		assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), -EINVAL);
	}
	memset(longname, 'a', sizeof(longname));
	base_desc(&d);
	d.name = longname;
	d.name_len = SVC_NAME_MAX;
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), 0);
	d.name_len = SVC_NAME_MAX + 1;
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), -EMSGSIZE);
	for (size_t i = 0; i < WEFT_ARRAY_SIZE(bad_eps); i++) {
		base_desc(&d);
		d.endpoints[0] = bad_eps[i];
		d.endpoint_lens[0] = strlen(bad_eps[i]);
		assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), -EINVAL);
	}
	/* no endpoint */
	base_desc(&d);
	d.n_endpoints = 0;
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), -EINVAL);
	/* duplicate metadata keys; unsorted input is sorted by the encoder */
	base_desc(&d);
	d.n_meta = 2;
	d.meta[1] = d.meta[0];
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), -EINVAL);
	d.meta[0].key = (const uint8_t *)"zz";
	d.meta[0].key_len = 2;
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), 0);
	assert_non_null(memmem(out, n, "5:proto6:weft/12:zz6:weft/1", 27));
	/* buffer too small */
	base_desc(&d);
	assert_int_equal(svc_desc_sign(&d, &id, out, 100, &n), -ENOBUFS);
}

/* Byte-level edits that keep valid bencode but break the canonical form. */
static void test_noncanonical(void **state)
{
	struct identity id;
	struct svc_desc d;
	uint8_t out[SVC_DESC_MAX_LEN], buf[SVC_DESC_MAX_LEN + 64];
	size_t n;

	seed_id(&id, 0);
	base_desc(&d);
	assert_int_equal(svc_desc_sign(&d, &id, out, sizeof(out), &n), 0);
	if (n < 16 || n > SVC_DESC_MAX_LEN) {
		fail_msg("unexpected length %zu", n);
		return;
	}
	/* trailing byte */
	memcpy(buf, out, n);
	buf[n] = 'e';
	assert_int_equal(svc_desc_decode(&d, buf, n + 1), -EINVAL);
	/* every truncation */
	for (size_t l = 0; l < n; l++)
		assert_int_equal(svc_desc_decode(&d, out, l), -EINVAL);
	/* an extra top-level key "t" after "s" */
	memcpy(buf, out, sizeof(out));
	memcpy(buf + n - 1, "1:ti0ee", 7);
	assert_int_equal(svc_desc_decode(&d, buf, n + 6), -EINVAL);
	/* duplicate "s" key */
	memcpy(buf, out, sizeof(out));
	memcpy(buf + n - 1, "1:s0:e", 6);
	assert_int_equal(svc_desc_decode(&d, buf, n + 5), -EINVAL);
	/* version with a leading zero: "i01e" */
	{
		uint8_t *p = memmem(out, n, "1:vi1e", 6);
		size_t off = (size_t)(p - out) + 4;

		memcpy(buf, out, off);
		buf[off] = '0';
		memcpy(buf + off + 1, out + off, n - off);
		assert_int_equal(svc_desc_decode(&d, buf, n + 1), -EINVAL);
	}
	/* not a dict at all */
	assert_int_equal(svc_desc_decode(&d, (const uint8_t *)"le", 2), -EINVAL);
	assert_int_equal(svc_desc_decode(&d, (const uint8_t *)"de", 2), -EINVAL);
	assert_int_equal(svc_desc_decode(&d, NULL, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vector),
	    cmocka_unit_test(test_claim),
	    cmocka_unit_test(test_forged_every_byte),
	    cmocka_unit_test(test_forged_each_field),
	    cmocka_unit_test(test_time_window),
	    cmocka_unit_test(test_owner_and_ban),
	    cmocka_unit_test(test_banned),
	    cmocka_unit_test(test_oversized),
	    cmocka_unit_test(test_encoder_rules),
	    cmocka_unit_test(test_noncanonical),
	};

	return cmocka_run_group_tests_name("service_descriptor", tests, NULL, NULL);
}
