// SPDX-License-Identifier: MIT
/* Caller assertions (docs/SERVICE.md, "Caller assertions"): the signed
 * byte string and signature of the documented test vector, verification,
 * and what makes it fail. The same vector is checked by the Python example
 * backend (tools/examples/weft_backend.py --self-test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "weft/identity.h"
#include "weft/svc.h"
#include "weft/util.h"

#define T0 1700000000000ull

static const char vec_pk[] = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
static const char vec_msg[] =
    "776566742d63616c6c2d6173736572742d76310a046563686f0470696e67"
    "00112233445566778899aabbccddeeff"
    "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
    "0000018bcfe56800";
static const char vec_sig[] = "40b86aadcb3feb98cfbc29e441cdce14e9e042beb3ff74beb5abaffcf9b70cf8"
			      "394b81722ed36c325c5baca17e07e109abd3e8d1ad85df91bb1d2868a2f0c50b";

static void vec_id(struct identity *id, uint8_t rid[SVC_REQ_ID_LEN])
{
	uint8_t seed[IDENTITY_SEED_LEN];

	for (int i = 0; i < IDENTITY_SEED_LEN; i++)
		seed[i] = (uint8_t)i;
	identity_from_seed(id, seed);
	assert_int_equal(util_unhex(rid, SVC_REQ_ID_LEN, "00112233445566778899aabbccddeeff"), 0);
}

static void test_vector(void **state)
{
	uint8_t rid[SVC_REQ_ID_LEN], msg[SVC_ASSERT_MSG_MAX], want[86], a[SVC_ASSERT_LEN];
	uint8_t pk[IDENTITY_PK_LEN], sig[IDENTITY_SIG_LEN];
	struct identity id;
	int n;

	vec_id(&id, rid);
	assert_int_equal(util_unhex(pk, sizeof(pk), vec_pk), 0);
	assert_memory_equal(id.pk, pk, sizeof(pk));
	n = svc_assert_message(msg, "echo", 4, "ping", 4, rid, (const uint8_t *)"hi", 2, T0);
	assert_int_equal(n, 86);
	assert_int_equal(util_unhex(want, sizeof(want), vec_msg), 0);
	assert_memory_equal(msg, want, sizeof(want));
	assert_int_equal(svc_assert_sign(a, &id, "echo", 4, "ping", 4, rid, (const uint8_t *)"hi",
					 2, T0),
			 0);
	assert_memory_equal(a, rid, SVC_REQ_ID_LEN);
	assert_memory_equal(a + SVC_REQ_ID_LEN, want + 86 - 8, 8);
	assert_int_equal(util_unhex(sig, sizeof(sig), vec_sig), 0);
	assert_memory_equal(a + SVC_REQ_ID_LEN + 8, sig, sizeof(sig));
	assert_int_equal(svc_assert_verify(a, pk, "echo", 4, "ping", 4, (const uint8_t *)"hi", 2,
					   T0 + 1000, SVC_ASSERT_SKEW_MS),
			 0);
}

/* Everything the signature covers: a change in any of it fails. */
static void test_tamper(void **state)
{
	uint8_t rid[SVC_REQ_ID_LEN], a[SVC_ASSERT_LEN], b[SVC_ASSERT_LEN], other[IDENTITY_PK_LEN];
	const uint8_t *hi = (const uint8_t *)"hi";
	struct identity id;

	vec_id(&id, rid);
	assert_int_equal(svc_assert_sign(a, &id, "echo", 4, "ping", 4, rid, hi, 2, T0), 0);
	assert_int_equal(svc_assert_verify(a, id.pk, "echo", 4, "pong", 4, hi, 2, T0, 1000),
			 -EBADMSG);
	assert_int_equal(svc_assert_verify(a, id.pk, "echo2", 5, "ping", 4, hi, 2, T0, 1000),
			 -EBADMSG);
	assert_int_equal(svc_assert_verify(a, id.pk, "echo", 4, "ping", 4, (const uint8_t *)"ho",
					   2, T0, 1000),
			 -EBADMSG);
	assert_int_equal(svc_assert_verify(a, id.pk, "echo", 4, "ping", 4, NULL, 0, T0, 1000),
			 -EBADMSG);
	/* service "ec" + method "hoping" is not "echo" + "ping": lengths
	 * are part of the string */
	assert_int_equal(svc_assert_verify(a, id.pk, "ec", 2, "hoping", 6, hi, 2, T0, 1000),
			 -EBADMSG);
	memcpy(b, a, sizeof(b));
	b[0] ^= 1; /* request id */
	assert_int_equal(svc_assert_verify(b, id.pk, "echo", 4, "ping", 4, hi, 2, T0, 1000),
			 -EBADMSG);
	memcpy(b, a, sizeof(b));
	b[SVC_REQ_ID_LEN + 7] ^= 1; /* time */
	assert_int_equal(svc_assert_verify(b, id.pk, "echo", 4, "ping", 4, hi, 2, T0, 1000),
			 -EBADMSG);
	memcpy(other, id.pk, sizeof(other));
	other[5] ^= 0x20;
	assert_int_equal(svc_assert_verify(a, other, "echo", 4, "ping", 4, hi, 2, T0, 1000),
			 -EBADMSG);
	/* time window */
	assert_int_equal(svc_assert_verify(a, id.pk, "echo", 4, "ping", 4, hi, 2, T0 + 1000, 1000),
			 0);
	assert_int_equal(svc_assert_verify(a, id.pk, "echo", 4, "ping", 4, hi, 2, T0 + 1001, 1000),
			 -EKEYEXPIRED);
	assert_int_equal(svc_assert_verify(a, id.pk, "echo", 4, "ping", 4, hi, 2, T0 - 1001, 1000),
			 -EKEYEXPIRED);
	/* an empty method signs as length 0 */
	assert_int_equal(svc_assert_sign(a, &id, "echo", 4, "", 0, rid, NULL, 0, T0), 0);
	assert_int_equal(svc_assert_verify(a, id.pk, "echo", 4, "", 0, NULL, 0, T0, 1000), 0);
	/* bad names are refused, not signed */
	assert_int_equal(svc_assert_sign(a, &id, "Echo", 4, "", 0, rid, NULL, 0, T0), -EINVAL);
	assert_int_equal(svc_assert_sign(a, &id, "echo", 4, "a b", 3, rid, NULL, 0, T0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vector),
	    cmocka_unit_test(test_tamper),
	};

	return cmocka_run_group_tests_name("service_assert", tests, NULL, NULL);
}
