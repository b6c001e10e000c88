// SPDX-License-Identifier: MIT
/*
 * mesh, envelopes: every type builds and parses back; the hop count is
 * outside the signature and the id; a changed byte is refused as
 * malformed, over its cap or a bad signature; the drop reasons of the
 * clock (future, expired, ttl too long) and of the hops (the envelope's
 * max, our per-type cap); endorsements sign, verify, bind to provider and
 * service, and give levels only from trusted endorsers; a Response
 * carries one announce of its service; the test vectors of
 * docs/PROTOCOL.md "Mesh messages" are recomputed here and must appear
 * there as printed (MESH_PRINT_VECTORS=1 prints them).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mesh.h"
#include "weft/util.h"

#define NOW 1767225600000ull /* 2026-01-01T00:00:00Z */
#define SVC 32u
#define SECTION "## Mesh messages"

static uint8_t p_pk[32], p_sk[64], e_pk[32], e_sk[64], q_pk[32], q_sk[64];
static const char BODY[] = "d4:city6:berlin4:renti450ee";

static int setup(void **state)
{
	uint8_t seed[32];

	(void)state;
	if (sodium_init() < 0)
		return -1;
	memset(seed, 0x01, 32);
	crypto_sign_seed_keypair(p_pk, p_sk, seed);
	memset(seed, 0x02, 32);
	crypto_sign_seed_keypair(e_pk, e_sk, seed);
	memset(seed, 0x03, 32);
	crypto_sign_seed_keypair(q_pk, q_sk, seed);
	return 0;
}

static size_t build(uint8_t *out, const uint8_t *sk, uint8_t type, const uint8_t *ref,
		    const void *body, size_t blen, uint64_t ts, uint32_t ttl)
{
	struct mesh_msg m = {
		.type = type, .service = SVC, .ref = ref, .body = body, .body_len = blen,
		.max_hops = 6, .ttl_s = ttl, .ts_ms = ts,
	};
	size_t n;

	assert_int_equal(mesh_env_build(sk, &m, out, MESH_ENV_MAX, &n), 0);
	return n;
}

static size_t announce(uint8_t *out, uint64_t ts)
{
	return build(out, p_sk, MESH_ANNOUNCE, NULL, BODY, strlen(BODY), ts, 3600);
}

static void test_types(void **state)
{
	uint8_t a[MESH_ENV_MAX], buf[MESH_ENV_MAX], box[64], q[MESH_BODY_QUERY];
	struct mesh_env e, ea;
	enum mesh_drop why;
	size_t n, an, qn;

	(void)state;
	an = announce(a, NOW);
	assert_int_equal(mesh_env_parse(a, an, &ea, &why), 0);
	assert_int_equal(ea.type, MESH_ANNOUNCE);
	assert_int_equal(ea.service, SVC);
	assert_int_equal(ea.g.hops, 1);
	assert_int_equal(ea.g.max_hops, 6);
	assert_int_equal(ea.g.kind, MESH_GOSSIP_KIND);
	assert_memory_equal(ea.g.origin, p_pk, 32);
	assert_int_equal(ea.body_len, strlen(BODY));
	assert_memory_equal(ea.body, BODY, strlen(BODY));

	assert_int_equal(mesh_query_body("rent<500", 10, q, sizeof(q), &qn), 0);
	n = build(buf, q_sk, MESH_QUERY, NULL, q, qn, NOW, 60);
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), 0);
	assert_int_equal(e.type, MESH_QUERY);
	assert_memory_equal(e.g.origin, q_pk, 32); /* a one-time key, not the node's */

	n = build(buf, p_sk, MESH_RESPONSE, e.g.id, a, an, NOW, 60);
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), 0);
	assert_int_equal(e.body_len, an);

	memset(box, 0xab, sizeof(box));
	for (uint8_t t = MESH_RESERVE; t <= MESH_CANCEL; t++) {
		n = build(buf, q_sk, t, ea.g.id, box, sizeof(box), NOW, 600);
		assert_int_equal(mesh_env_parse(buf, n, &e, &why), 0);
		assert_int_equal(e.type, t);
		assert_memory_equal(e.ref, ea.g.id, 32);
	}
	n = build(buf, p_sk, MESH_UPDATE, ea.g.id, "d4:renti400ee", 13, NOW + 1, 3600);
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), 0);
	n = build(buf, p_sk, MESH_REVOKE, ea.g.id, NULL, 0, NOW + 2, 3600);
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), 0);
	assert_int_equal(e.body_len, 0);
}

/* Bodies and references the builder refuses as the parser would. */
static void test_build_refuses(void **state)
{
	uint8_t buf[MESH_ENV_MAX], big[MESH_BODY_SEALED + 1], id[32];
	struct mesh_msg m = { .service = SVC, .max_hops = 6, .ttl_s = 60, .ts_ms = NOW };
	static const struct {
		uint8_t type;
		int ref;
		const char *body;
		int err;
	} cases[] = {
		{ 0, 0, "de", -EINVAL },
		{ 9, 0, "de", -EINVAL },
		{ MESH_ANNOUNCE, 1, "de", -EINVAL },                 /* a ref on an Announce */
		{ MESH_UPDATE, 0, "de", -EINVAL },                   /* no ref */
		{ MESH_ANNOUNCE, 0, "d4:renti1e4:cityi2ee", -EINVAL }, /* unsorted */
		{ MESH_ANNOUNCE, 0, "d4:Renti1ee", -EINVAL },        /* upper case name */
		{ MESH_ANNOUNCE, 0, "d4:rentli1eee", -EINVAL },      /* nested */
		{ MESH_ANNOUNCE, 0, "l4:rente", -EINVAL },           /* not a dict */
		{ MESH_ANNOUNCE, 0, "d4:renti1eexx", -EINVAL },      /* trailing */
		{ MESH_QUERY, 0, "d1:f1:=1:ni5ee", -EINVAL },        /* bad filter */
		{ MESH_QUERY, 0, "d1:f3:a<51:ni65ee", -EINVAL },     /* n over 64 */
		{ MESH_REVOKE, 1, "de", -E2BIG },                    /* a body: over its cap, 0 */
		{ MESH_RESERVE, 1, "short", -EINVAL },               /* shorter than a sealed box */
		{ MESH_RESPONSE, 1, "de", -EINVAL },                 /* not an announce envelope */
	};
	size_t n;

	(void)state;
	memset(id, 7, sizeof(id));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		m.type = cases[i].type;
		m.ref = cases[i].ref ? id : NULL;
		m.body = (const uint8_t *)cases[i].body;
		m.body_len = strlen(cases[i].body);
		if (mesh_env_build(p_sk, &m, buf, sizeof(buf), &n) != cases[i].err)
			fail_msg("case %zu (%s): not %d", i, cases[i].body, cases[i].err);
	}
	memset(big, 'x', sizeof(big));
	m.type = MESH_RESERVE;
	m.ref = id;
	m.body = big;
	m.body_len = sizeof(big);
	assert_int_equal(mesh_env_build(p_sk, &m, buf, sizeof(buf), &n), -E2BIG);
	m.body_len = sizeof(big) - 1;
	assert_int_equal(mesh_env_build(p_sk, &m, buf, 100, &n), -ENOSPC);
}

static void test_bytes(void **state)
{
	uint8_t a[MESH_ENV_MAX];
	struct mesh_env e, e2;
	enum mesh_drop why;
	size_t an;
	unsigned int counts[MESH_DROP_N] = { 0 };

	(void)state;
	an = announce(a, NOW);
	assert_int_equal(mesh_env_parse(a, an, &e, &why), 0);
	/* The hop count is outside the signature and the id. */
	a[1] = 5;
	assert_int_equal(mesh_env_parse(a, an, &e2, &why), 0);
	assert_int_equal(e2.g.hops, 5);
	assert_memory_equal(e.g.id, e2.g.id, MESH_ID_LEN);
	a[1] = 1;
	for (size_t i = 0; i < an; i++) {
		if (i == 1)
			continue;
		for (unsigned int bit = 0; bit < 8; bit += 3) {
			a[i] ^= (uint8_t)(1u << bit);
			if (mesh_env_parse(a, an, &e2, &why) == 0)
				fail_msg("byte %zu bit %u changed and taken", i, bit);
			assert_true(why == MESH_DROP_MALFORMED || why == MESH_DROP_TOO_BIG ||
				    why == MESH_DROP_BAD_SIG);
			counts[why]++;
			a[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* The signed bytes that keep the structure fail on the signature. */
	assert_true(counts[MESH_DROP_BAD_SIG] > 0);
	assert_true(counts[MESH_DROP_MALFORMED] > 0);
	for (size_t l = 0; l < an; l++)
		assert_int_equal(mesh_env_parse(a, l, &e2, &why), -EBADMSG);
	/* A payload length past the gossip payload's cap: too big. */
	a[COMM_ENV_HDR_LEN - 2] = 0xff;
	a[COMM_ENV_HDR_LEN - 1] = 0x7f;
	assert_int_equal(mesh_env_parse(a, an, &e2, &why), -EBADMSG);
	assert_int_equal(why, MESH_DROP_TOO_BIG);
}

/* A body over its type's cap inside a gossip envelope that is otherwise
 * valid (built by the gossip core directly): too_big, not malformed. */
static void test_over_cap(void **state)
{
	uint8_t p[COMM_ENV_MAX_PAYLOAD], buf[MESH_ENV_MAX];
	struct mesh_env e;
	enum mesh_drop why;
	size_t blen = MESH_BODY_ANNOUNCE + 1, n;

	(void)state;
	memset(p, 0, sizeof(p));
	p[0] = MESH_VERSION;
	p[1] = MESH_ANNOUNCE;
	p[2] = SVC;
	p[MESH_HDR_LEN - 2] = (uint8_t)blen;
	p[MESH_HDR_LEN - 1] = (uint8_t)(blen >> 8);
	assert_int_equal(comm_env_build(p_sk, MESH_GOSSIP_KIND, 6, NOW, 60, p,
					MESH_HDR_LEN + blen + 1, buf, sizeof(buf), &n),
			 0);
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), -EBADMSG);
	assert_int_equal(why, MESH_DROP_TOO_BIG);
	/* Another gossip kind (a community record) is not a mesh envelope. */
	assert_int_equal(comm_env_build(p_sk, 1, 6, NOW, 60, p, 10, buf, sizeof(buf), &n), 0);
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), -EBADMSG);
	assert_int_equal(why, MESH_DROP_MALFORMED);
}

static void test_clock(void **state)
{
	uint8_t buf[MESH_ENV_MAX];
	struct mesh_limits l;
	struct mesh_env e;
	enum mesh_drop why;
	size_t n;

	(void)state;
	mesh_limits_default(&l);
	n = announce(buf, NOW);
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), 0);
	assert_int_equal(mesh_env_check(&e, &l, NOW, &why), 0);
	assert_int_equal(mesh_env_check(&e, &l, NOW - 60000, &why), 0); /* within the skew */
	assert_int_equal(mesh_env_check(&e, &l, NOW - 60001, &why), -ETIME);
	assert_int_equal(why, MESH_DROP_FUTURE);
	assert_int_equal(mesh_env_check(&e, &l, NOW + 3599999, &why), 0);
	assert_int_equal(mesh_env_check(&e, &l, NOW + 3600000, &why), -ETIME);
	assert_int_equal(why, MESH_DROP_EXPIRED);
	l.max_ttl_s[MESH_ANNOUNCE] = 3599;
	assert_int_equal(mesh_env_check(&e, &l, NOW, &why), -ETIME);
	assert_int_equal(why, MESH_DROP_TTL);
	mesh_limits_default(&l);
	/* Hops: the envelope's max (6), our cap for the type (lowered to 3). */
	buf[1] = 6;
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), 0);
	assert_int_equal(mesh_env_check(&e, &l, NOW, &why), 0);
	buf[1] = 7;
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), 0);
	assert_int_equal(mesh_env_check(&e, &l, NOW, &why), -ELOOP);
	assert_int_equal(why, MESH_DROP_HOP_LIMIT);
	l.max_hops[MESH_ANNOUNCE] = 3;
	buf[1] = 4;
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), 0);
	assert_int_equal(mesh_env_check(&e, &l, NOW, &why), -ELOOP);
	buf[1] = 0;
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), 0);
	assert_int_equal(mesh_env_check(&e, &l, NOW, &why), -ELOOP);
}

static void test_endorse(void **state)
{
	uint8_t en[2][MESH_ENDORSE_LEN], buf[MESH_ENV_MAX], other_pk[32], other_sk[64], seed[32];
	struct mesh_msg m = { .type = MESH_ANNOUNCE, .service = SVC, .body = (const uint8_t *)BODY,
			      .body_len = sizeof(BODY) - 1, .max_hops = 6, .ttl_s = 60,
			      .ts_ms = NOW };
	struct mesh_trust t = { 0 };
	struct mesh_endorse d;
	struct mesh_env e;
	enum mesh_drop why;
	char entry[80];
	size_t n;

	(void)state;
	memset(seed, 0x09, 32);
	crypto_sign_seed_keypair(other_pk, other_sk, seed);
	assert_int_equal(mesh_endorse_sign(e_sk, MESH_LEVEL_CREDENTIAL, SVC, p_pk, NOW + 1000, en[0]), 0);
	assert_int_equal(mesh_endorse_parse(en[0], &d), 0);
	assert_int_equal(d.level, MESH_LEVEL_CREDENTIAL);
	assert_memory_equal(d.endorser, e_pk, 32);
	en[0][10] ^= 1;
	assert_int_equal(mesh_endorse_parse(en[0], &d), -EBADMSG);
	en[0][10] ^= 1;
	assert_int_equal(mesh_endorse_sign(e_sk, 0, SVC, p_pk, NOW, en[1]), -EINVAL);
	assert_int_equal(mesh_endorse_sign(e_sk, 4, SVC, p_pk, NOW, en[1]), -EINVAL);
	assert_int_equal(mesh_endorse_sign(other_sk, MESH_LEVEL_ENDORSED, SVC, p_pk, NOW + 5000, en[1]), 0);

	m.endorse = en[0];
	m.n_endorse = 2;
	assert_int_equal(mesh_env_build(p_sk, &m, buf, sizeof(buf), &n), 0);
	assert_int_equal(mesh_env_parse(buf, n, &e, &why), 0);
	assert_int_equal(e.n_endorse, 2);
	/* Nobody trusted: none. The endorser trusted up to registry: its
	 * credential counts as registry, until it expires. */
	assert_int_equal(mesh_level(&t, &e, NOW), MESH_LEVEL_NONE);
	assert_int_equal(mesh_level(NULL, &e, NOW), MESH_LEVEL_NONE);
	util_hex(entry, e_pk, 32);
	strcat(entry, ":registry");
	assert_int_equal(mesh_trust_add(&t, entry), 0);
	assert_int_equal(mesh_level(&t, &e, NOW), MESH_LEVEL_REGISTRY);
	assert_int_equal(mesh_level(&t, &e, NOW + 1000), MESH_LEVEL_NONE);
	util_hex(entry, other_pk, 32);
	strcat(entry, ":credential");
	assert_int_equal(mesh_trust_add(&t, entry), 0);
	assert_int_equal(mesh_level(&t, &e, NOW + 1000), MESH_LEVEL_ENDORSED);
	assert_int_equal(mesh_trust_add(&t, "00:endorsed"), -EINVAL);
	util_hex(entry, other_pk, 32);
	strcat(entry, ":none");
	assert_int_equal(mesh_trust_add(&t, entry), -EINVAL);

	/* An endorsement of another provider or service, or on a Query: refused. */
	assert_int_equal(mesh_endorse_sign(e_sk, 1, SVC + 1, p_pk, NOW + 1000, en[1]), 0);
	assert_int_equal(mesh_env_build(p_sk, &m, buf, sizeof(buf), &n), -EINVAL);
	assert_int_equal(mesh_endorse_sign(e_sk, 1, SVC, other_pk, NOW + 1000, en[1]), 0);
	assert_int_equal(mesh_env_build(p_sk, &m, buf, sizeof(buf), &n), -EINVAL);
	m.n_endorse = 3;
	assert_int_equal(mesh_env_build(p_sk, &m, buf, sizeof(buf), &n), -EINVAL);
	m.n_endorse = 1;
	m.type = MESH_QUERY;
	assert_int_equal(mesh_env_build(p_sk, &m, buf, sizeof(buf), &n), -EINVAL);
	assert_int_equal(mesh_level_parse("registry"), MESH_LEVEL_REGISTRY);
	assert_int_equal(mesh_level_parse("x"), -EINVAL);
}

static void test_names(void **state)
{
	(void)state;
	for (unsigned int t = 1; t <= MESH_TYPE_MAX; t++)
		assert_int_equal(mesh_type_parse(mesh_type_name(t)), (int)t);
	assert_null(mesh_type_name(0));
	assert_null(mesh_type_name(9));
	assert_string_equal(mesh_drop_name(MESH_DROP_BAD_SIG), "bad_sig");
	assert_string_equal(mesh_drop_name(MESH_DROP_N), "unknown");
}

/* ---- the vectors of docs/PROTOCOL.md ---- */

struct vec {
	const char *name;
	uint8_t buf[MESH_ENV_MAX];
	size_t len;
};

static struct vec vecs[8];
static size_t nvecs;

static struct vec *vec_add(const char *name)
{
	struct vec *v = &vecs[nvecs++];

	assert_true(nvecs <= sizeof(vecs) / sizeof(vecs[0]));
	v->name = name;
	return v;
}

static void compute(void)
{
	struct mesh_msg m = { .type = MESH_ANNOUNCE, .service = SVC, .body = (const uint8_t *)BODY,
			      .body_len = sizeof(BODY) - 1, .max_hops = 6, .ttl_s = 3600,
			      .ts_ms = NOW };
	uint8_t q[MESH_BODY_QUERY];
	struct mesh_env e;
	struct vec *v, *a, *en;
	size_t qn;

	nvecs = 0;
	a = vec_add("V1 announce");
	assert_int_equal(mesh_env_build(p_sk, &m, a->buf, sizeof(a->buf), &a->len), 0);
	assert_int_equal(mesh_env_parse(a->buf, a->len, &e, NULL), 0);
	v = vec_add("V1 id");
	memcpy(v->buf, e.g.id, 32);
	v->len = 32;

	en = vec_add("V2 endorsement");
	assert_int_equal(mesh_endorse_sign(e_sk, MESH_LEVEL_ENDORSED, SVC, p_pk,
					   NOW + 365ull * 86400000u, en->buf),
			 0);
	en->len = MESH_ENDORSE_LEN;

	v = vec_add("V3 endorsed announce");
	m.endorse = en->buf;
	m.n_endorse = 1;
	assert_int_equal(mesh_env_build(p_sk, &m, v->buf, sizeof(v->buf), &v->len), 0);

	v = vec_add("V4 query");
	assert_int_equal(mesh_query_body("rent<500", 10, q, sizeof(q), &qn), 0);
	m = (struct mesh_msg){ .type = MESH_QUERY, .service = SVC, .body = q, .body_len = qn,
			       .max_hops = 4, .ttl_s = 60, .ts_ms = NOW };
	assert_int_equal(mesh_env_build(q_sk, &m, v->buf, sizeof(v->buf), &v->len), 0);

	v = vec_add("V5 revoke");
	m = (struct mesh_msg){ .type = MESH_REVOKE, .service = SVC, .ref = e.g.id, .max_hops = 6,
			       .ttl_s = 3600, .ts_ms = NOW + 1000 };
	assert_int_equal(mesh_env_build(p_sk, &m, v->buf, sizeof(v->buf), &v->len), 0);
}

static char *doc_section(void)
{
	return tu_protocol_section(SECTION);
}

static void test_vectors(void **state)
{
	static char hex[2 * MESH_ENV_MAX + 1];
	const char *missing = NULL;
	char *doc;

	(void)state;
	compute();
	if (getenv("MESH_PRINT_VECTORS"))
		for (size_t i = 0; i < nvecs; i++) {
			util_hex(hex, vecs[i].buf, vecs[i].len);
			printf("    %s (%zu bytes)\n", vecs[i].name, vecs[i].len);
			for (size_t o = 0; o < strlen(hex); o += 64)
				printf("        %.64s\n", hex + o);
		}
	doc = doc_section();
	if (!doc)
		fail_msg("no section \"%s\" in docs/PROTOCOL.md", SECTION);
	for (size_t i = 0; i < nvecs && !missing; i++) {
		util_hex(hex, vecs[i].buf, vecs[i].len);
		if (!strstr(doc, hex))
			missing = vecs[i].name;
	}
	free(doc);
	if (missing)
		fail_msg("vector \"%s\" is not in docs/PROTOCOL.md \"%s\"", missing, SECTION);
	/* And they parse: the endorsed announce with its endorsement. */
	{
		struct mesh_env e;

		assert_int_equal(mesh_env_parse(vecs[3].buf, vecs[3].len, &e, NULL), 0);
		assert_int_equal(e.n_endorse, 1);
		assert_int_equal(mesh_env_parse(vecs[4].buf, vecs[4].len, &e, NULL), 0);
		assert_int_equal(e.type, MESH_QUERY);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),     cmocka_unit_test(test_build_refuses),
		cmocka_unit_test(test_bytes),     cmocka_unit_test(test_over_cap),
		cmocka_unit_test(test_clock),     cmocka_unit_test(test_endorse),
		cmocka_unit_test(test_names),     cmocka_unit_test(test_vectors),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
