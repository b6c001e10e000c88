// SPDX-License-Identifier: MIT
/* Identity: creation, reuse, wrong permissions, wrong size, signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "weft/identity.h"

static char *dir;

static int setup(void **state)
{
	dir = tu_tmpdir();
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	tu_rmrf_free(dir);
	return 0;
}

static void test_create_and_reuse(void **state)
{
	struct identity a, b;
	char path[4096];
	struct stat sb;
	int created;

	assert_int_equal(identity_load(&a, dir, 0, &created), -ENOENT);
	assert_int_equal(identity_load(&a, dir, 1, &created), 0);
	assert_int_equal(created, 1);
	snprintf(path, sizeof(path), "%s/node.key", dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sb.st_size, 32);
	assert_int_equal(identity_load(&b, dir, 1, &created), 0);
	assert_int_equal(created, 0);
	assert_memory_equal(a.pk, b.pk, 32);
	assert_memory_equal(a.sk, b.sk, 64);
}

static void test_bad_mode(void **state)
{
	struct identity id;
	uint8_t seed[32];

	tu_fill(seed, sizeof(seed), 1);
	assert_int_equal(tu_write(dir, "node.key", seed, 32, 0644), 0);
	assert_int_equal(identity_load(&id, dir, 1, NULL), -EPERM);
	assert_int_equal(tu_write(dir, "node.key", seed, 32, 0640), 0);
	assert_int_equal(identity_load(&id, dir, 1, NULL), -EPERM);
	/* never overwritten: the file is still the operator's */
	assert_int_equal(tu_write(dir, "node.key", seed, 32, 0600), 0);
	assert_int_equal(identity_load(&id, dir, 1, NULL), 0);
}

static void test_bad_size(void **state)
{
	struct identity id;
	uint8_t buf[100];
	struct stat sb;
	char path[4096];

	tu_fill(buf, sizeof(buf), 2);
	snprintf(path, sizeof(path), "%s/node.key", dir);
	for (size_t len = 0; len < sizeof(buf); len += (len < 40 ? 1 : 30)) {
		if (len == 32)
			continue;
		assert_int_equal(tu_write(dir, "node.key", buf, len, 0600), 0);
		assert_int_equal(identity_load(&id, dir, 1, NULL), -EBADMSG);
		/* the bad file is left as it was, not replaced */
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal((size_t)sb.st_size, len);
	}
}

static void test_seed_and_sign(void **state)
{
	/* RFC 8032 test 1: secret key 9d61b1...7f60, public key d75a98...511a */
	static const uint8_t seed[32] = {
		0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
		0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
		0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
	};
	static const uint8_t pk[32] = {
		0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe,
		0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6,
		0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
	};
	struct identity id;
	uint8_t sig[64];

	identity_from_seed(&id, seed);
	assert_memory_equal(id.pk, pk, 32);
	identity_sign(&id, (const uint8_t *)"weft", 4, sig);
	assert_int_equal(identity_verify(id.pk, (const uint8_t *)"weft", 4, sig), 0);
	sig[10] ^= 1;
	assert_int_equal(identity_verify(id.pk, (const uint8_t *)"weft", 4, sig), -EBADMSG);
	identity_wipe(&id);
}

static void test_symlink_refused(void **state)
{
	struct identity id;
	char path[4096], target[4096];
	uint8_t seed[32] = { 0 };

	assert_int_equal(tu_write(dir, "real.key", seed, 32, 0600), 0);
	snprintf(target, sizeof(target), "%s/real.key", dir);
	snprintf(path, sizeof(path), "%s/node.key", dir);
	assert_int_equal(symlink(target, path), 0);
	assert_true(identity_load(&id, dir, 1, NULL) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_and_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_size, setup, teardown),
		cmocka_unit_test(test_seed_and_sign),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
	};

	return cmocka_run_group_tests_name("identity_key", tests, NULL, NULL);
}
