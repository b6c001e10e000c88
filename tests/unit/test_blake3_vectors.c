// SPDX-License-Identifier: MIT
/*
 * BLAKE3: the official test vectors (tests/vectors/blake3.json, read at
 * run time) in all three modes with their full extended output, on every
 * backend this CPU can run; incremental updates split at awkward sizes;
 * seeking in the output; multi-threaded hashing equal to single-threaded
 * (on the heap and on a file mapping);
 * and a few long inputs whose digests were computed with b3sum 1.2.0.
 *
 * Vector file: $BLAKE3_VECTORS, else $TOP/tests/vectors/blake3.json, else
 * tests/vectors/blake3.json from the current directory. The project keeps its
 * own copy (identical to the official file) so a clone tests on its own.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "weft/blake3.h"

struct vec_case {
	size_t len;
	size_t outlen;
	uint8_t *out[3]; /* hash, keyed_hash, derive_key */
};

struct vectors {
	json_t *root;
	uint8_t key[BLAKE3_KEY_LEN];
	const char *context;
	struct vec_case *cases;
	size_t n;
	uint8_t *input; /* the 251-byte pattern, as long as the longest case */
	size_t max_len;
};

enum { MODE_HASH, MODE_KEYED, MODE_DERIVE, MODE_COUNT };
static const char *const mode_names[MODE_COUNT] = { "hash", "keyed_hash", "derive_key" };

/* Test-local PRNG (xorshift64*), fixed seeds: runs are reproducible. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

static void fill_pattern(uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(i % 251);
}

static int unhex(const char *hex, uint8_t **out, size_t *outlen)
{
	size_t n = strlen(hex), i;
	uint8_t *b;

	if (n % 2)
		return -EINVAL;
	b = malloc(n / 2 + 1);
	if (!b)
		return -ENOMEM;
	for (i = 0; i < n / 2; i++) {
		unsigned int x;

		if (sscanf(hex + 2 * i, "%2x", &x) != 1) {
			free(b);
			return -EINVAL;
		}
		b[i] = (uint8_t)x;
	}
	*out = b;
	*outlen = n / 2;
	return 0;
}

static FILE *open_vectors(void)
{
	const char *env = getenv("BLAKE3_VECTORS"), *top = getenv("TOP");
	char path[4096];
	FILE *f;

	if (env)
		return fopen(env, "r");
	if (top) {
		snprintf(path, sizeof(path), "%s/tests/vectors/blake3.json", top);
		f = fopen(path, "r");
		if (f)
			return f;
	}
	return fopen("tests/vectors/blake3.json", "r");
}

static int setup_vectors(void **state)
{
	struct vectors *v = calloc(1, sizeof(*v));
	json_error_t jerr;
	json_t *cases, *c;
	const char *key;
	size_t i;
	int m;
	FILE *f;

	if (!v)
		return -1;
	f = open_vectors();
	if (!f) {
		fprintf(stderr, "blake3.json not found: set BLAKE3_VECTORS or TOP\n");
		free(v);
		return -1;
	}
	v->root = json_loadf(f, 0, &jerr);
	fclose(f);
	if (!v->root) {
		fprintf(stderr, "blake3.json: %s\n", jerr.text);
		free(v);
		return -1;
	}
	key = json_string_value(json_object_get(v->root, "key"));
	v->context = json_string_value(json_object_get(v->root, "context_string"));
	cases = json_object_get(v->root, "cases");
	if (!key || strlen(key) != BLAKE3_KEY_LEN || !v->context || !json_is_array(cases))
		return -1;
	memcpy(v->key, key, BLAKE3_KEY_LEN);
	v->n = json_array_size(cases);
	v->cases = calloc(v->n, sizeof(*v->cases));
	if (!v->cases)
		return -1;
	json_array_foreach(cases, i, c) {
		struct vec_case *vc = &v->cases[i];

		vc->len = (size_t)json_integer_value(json_object_get(c, "input_len"));
		for (m = 0; m < MODE_COUNT; m++) {
			const char *hex = json_string_value(json_object_get(c, mode_names[m]));
			size_t outlen;

			if (!hex || unhex(hex, &vc->out[m], &outlen))
				return -1;
			vc->outlen = outlen;
		}
		if (vc->len > v->max_len)
			v->max_len = vc->len;
	}
	v->input = malloc(v->max_len + 1);
	if (!v->input)
		return -1;
	fill_pattern(v->input, v->max_len);
	*state = v;
	return 0;
}

static int teardown_vectors(void **state)
{
	struct vectors *v = *state;
	size_t i;
	int m;

	if (!v)
		return 0;
	for (i = 0; i < v->n; i++)
		for (m = 0; m < MODE_COUNT; m++)
			free(v->cases[i].out[m]);
	free(v->cases);
	free(v->input);
	json_decref(v->root);
	free(v);
	return 0;
}

static void init_mode(struct blake3_hasher *h, const struct vectors *v, int mode)
{
	if (mode == MODE_HASH)
		blake3_hasher_init(h);
	else if (mode == MODE_KEYED)
		blake3_hasher_init_keyed(h, v->key);
	else
		blake3_hasher_init_derive_key(h, v->context, strlen(v->context));
}

/* Hash case c in mode with backend be, feeding the input in pieces from split(). */
typedef size_t split_fn(size_t done, size_t left, uint64_t *rng);

static void check_case(const struct vectors *v, const struct vec_case *c, int mode,
		       enum blake3_backend_id be, split_fn *split, uint64_t seed)
{
	struct blake3_hasher h;
	uint8_t out[1024], digest[BLAKE3_OUT_LEN];
	size_t done = 0;
	uint64_t rng = seed;

	assert_true(c->outlen <= sizeof(out));
	init_mode(&h, v, mode);
	assert_int_equal(blake3_hasher_set_backend(&h, be), 0);
	while (done < c->len) {
		size_t take = split ? split(done, c->len - done, &rng) : c->len - done;

		if (take > c->len - done)
			take = c->len - done;
		blake3_hasher_update(&h, v->input + done, take);
		done += take;
	}
	blake3_hasher_finalize(&h, out, c->outlen);
	if (memcmp(out, c->out[mode], c->outlen)) {
		fail_msg("%s len %zu backend %s: extended output differs", mode_names[mode], c->len,
			 blake3_backend_name(be));
	}
	blake3_hasher_finalize(&h, digest, sizeof(digest));
	assert_memory_equal(digest, c->out[mode], BLAKE3_OUT_LEN);
}

static void for_each_backend(void **state, split_fn *split, uint64_t seed)
{
	const struct vectors *v = *state;
	int be, mode, ran = 0;
	size_t i;

	for (be = BLAKE3_BACKEND_PORTABLE; be < BLAKE3_BACKEND_COUNT; be++) {
		if (!blake3_backend_available(be)) {
			printf("backend %s: not supported by this CPU, not tested\n",
			       blake3_backend_name(be));
			continue;
		}
		for (i = 0; i < v->n; i++)
			for (mode = 0; mode < MODE_COUNT; mode++)
				check_case(v, &v->cases[i], mode, be, split, seed + i);
		ran++;
	}
	assert_true(ran >= 1);
}

static void test_vectors_all_backends(void **state)
{
	for_each_backend(state, NULL, 0);
}

static size_t split_one(size_t done, size_t left, uint64_t *rng)
{
	return 1;
}

static size_t split_awkward(size_t done, size_t left, uint64_t *rng)
{
	static const size_t sizes[] = { 63, 1, 65, 1023, 64, 1025, 2047, 7, 4097, 0, 3000 };

	/* Walk the list, so that a 0-byte update is followed by real ones. */
	return sizes[(*rng)++ % (sizeof(sizes) / sizeof(sizes[0]))];
}

static size_t split_random(size_t done, size_t left, uint64_t *rng)
{
	/* Mostly small pieces, sometimes several chunks at once. */
	uint64_t r = rng_next(rng);

	return (r & 3) ? (size_t)(r >> 8) % 200 : (size_t)(r >> 8) % 9000;
}

static void test_vectors_split_bytewise(void **state)
{
	for_each_backend(state, split_one, 1);
}

static void test_vectors_split_awkward(void **state)
{
	for_each_backend(state, split_awkward, 2);
}

static void test_vectors_split_random(void **state)
{
	for_each_backend(state, split_random, 0x9E3779B97F4A7C15ull);
}

/* One-shot helpers and seeking in the extended output. */
static void test_oneshot_and_seek(void **state)
{
	const struct vectors *v = *state;
	uint8_t out[1024];
	size_t i, off;

	for (i = 0; i < v->n; i++) {
		const struct vec_case *c = &v->cases[i];
		struct blake3_hasher h;

		blake3_hash(v->input, c->len, out, c->outlen);
		assert_memory_equal(out, c->out[MODE_HASH], c->outlen);
		blake3_keyed_hash(v->key, v->input, c->len, out, c->outlen);
		assert_memory_equal(out, c->out[MODE_KEYED], c->outlen);
		blake3_derive_key(v->context, strlen(v->context), v->input, c->len, out,
				  c->outlen);
		assert_memory_equal(out, c->out[MODE_DERIVE], c->outlen);
		assert_int_equal(blake3_hash_mt(v->input, c->len, 2, out, c->outlen), 0);
		assert_memory_equal(out, c->out[MODE_HASH], c->outlen);

		blake3_hasher_init_keyed(&h, v->key);
		blake3_hasher_update(&h, v->input, c->len);
		for (off = 0; off < c->outlen; off += 13) {
			size_t n = c->outlen - off < 70 ? c->outlen - off : 70;

			blake3_hasher_finalize_seek(&h, off, out, n);
			assert_memory_equal(out, c->out[MODE_KEYED] + off, n);
		}
	}
}

/* Finalize does not consume the hasher: more input may follow. */
static void test_finalize_then_continue(void **state)
{
	const struct vectors *v = *state;
	const struct vec_case *c = &v->cases[v->n - 1];
	struct blake3_hasher h;
	uint8_t out[BLAKE3_OUT_LEN];
	size_t half = c->len / 2 + 5;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, v->input, half);
	blake3_hasher_finalize(&h, out, sizeof(out));
	blake3_hasher_update(&h, v->input + half, c->len - half);
	blake3_hasher_finalize(&h, out, sizeof(out));
	assert_memory_equal(out, c->out[MODE_HASH], sizeof(out));
}

/*
 * Pieces that are whole power-of-two subtrees (update then ends on a pair of
 * unmerged halves, folded by the next update or made the root's children by
 * finalize), mixed with pieces that are not, every mode, every backend,
 * finalized after every piece: each output equals that of the same prefix
 * fed in 1000-byte steps (never a whole chunk at a chunk boundary).
 */
static void test_pow2_pieces(void **state)
{
	const struct vectors *v = *state;
	static const size_t pieces[] = { 2048, 2048, 4096, 8192, 1024, 1024, 2048, 1,
					 1023, 4096, 65536, 131072, 3,     61,   16384 };
	size_t total = 0, i, k;
	uint8_t *buf, out[80], ref[80];
	uint64_t rng = 7;
	int mode, be;

	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++)
		total += pieces[i];
	if (total < 600 * 1024)
		total = 600 * 1024; /* the threaded update below reads 600 KiB */
	buf = malloc(total);
	assert_non_null(buf);
	for (i = 0; i < total; i++)
		buf[i] = (uint8_t)rng_next(&rng);
	for (be = BLAKE3_BACKEND_PORTABLE; be < BLAKE3_BACKEND_COUNT; be++) {
		if (!blake3_backend_available(be))
			continue;
		for (mode = 0; mode < MODE_COUNT; mode++) {
			struct blake3_hasher h, r;
			size_t pos = 0;

			init_mode(&h, v, mode);
			assert_int_equal(blake3_hasher_set_backend(&h, be), 0);
			for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
				blake3_hasher_update(&h, buf + pos, pieces[i]);
				pos += pieces[i];
				blake3_hasher_finalize(&h, out, sizeof(out));
				init_mode(&r, v, mode);
				assert_int_equal(blake3_hasher_set_backend(&r, BLAKE3_BACKEND_PORTABLE), 0);
				for (k = 0; k < pos; k += 1000)
					blake3_hasher_update(&r, buf + k, pos - k < 1000 ? pos - k : 1000);
				blake3_hasher_finalize(&r, ref, sizeof(ref));
				if (memcmp(out, ref, sizeof(out)))
					fail_msg("backend %s mode %d: differs after piece %zu (%zu bytes)",
						 blake3_backend_name(be), mode, i, pos);
			}
			/* And on through the threaded path, which folds the pair first. */
			assert_int_equal(blake3_hasher_update_mt(&h, buf, 600 * 1024, 2), 0);
			blake3_hasher_finalize(&h, out, sizeof(out));
			init_mode(&r, v, mode);
			for (k = 0; k < pos; k += 1000)
				blake3_hasher_update(&r, buf + k, pos - k < 1000 ? pos - k : 1000);
			for (k = 0; k < 600 * 1024; k += 1000)
				blake3_hasher_update(&r, buf + k, 600 * 1024 - k < 1000 ? 600 * 1024 - k : 1000);
			blake3_hasher_finalize(&r, ref, sizeof(ref));
			assert_memory_equal(out, ref, sizeof(out));
		}
	}
	free(buf);
}

static void test_backend_api(void **state)
{
	struct blake3_hasher h;

	blake3_hasher_init(&h);
	assert_int_equal(blake3_hasher_set_backend(&h, BLAKE3_BACKEND_COUNT), -EINVAL);
	assert_int_equal(blake3_hasher_set_backend(&h, (enum blake3_backend_id)-1), -EINVAL);
	assert_int_equal(blake3_hasher_set_backend(&h, BLAKE3_BACKEND_AUTO), 0);
	assert_int_equal(blake3_hasher_set_backend(&h, BLAKE3_BACKEND_PORTABLE), 0);
	assert_true(blake3_backend_available(blake3_backend_best()));
	assert_string_equal(blake3_backend_name(BLAKE3_BACKEND_AVX2), "avx2");
	assert_null(blake3_backend_name(BLAKE3_BACKEND_COUNT));
	assert_int_equal(blake3_hash_mt(NULL, 1, 2, (uint8_t[32]){ 0 }, 32), -EINVAL);
}

/*
 * Kernel names (weftctl hash --simd, WEFT_BLAKE3_SIMD): every name parses
 * back to its id, "sse4.1" is an alias, anything else is -EINVAL; the best
 * backend never exceeds the cap the environment set at the first call
 * (tests/integration/test_b3sum.sh runs weftctl under each cap).
 */
static void test_backend_names(void **state)
{
	const char *env = getenv(BLAKE3_SIMD_ENV);
	int id;

	(void)state;
	for (id = BLAKE3_BACKEND_AUTO; id < BLAKE3_BACKEND_COUNT; id++)
		assert_int_equal(blake3_backend_parse(blake3_backend_name(id)), id);
	assert_int_equal(blake3_backend_parse("sse4.1"), BLAKE3_BACKEND_SSE41);
	assert_int_equal(blake3_backend_parse("AVX2"), -EINVAL);
	assert_int_equal(blake3_backend_parse("avx"), -EINVAL);
	assert_int_equal(blake3_backend_parse(""), -EINVAL);
	assert_int_equal(blake3_backend_parse(NULL), -EINVAL);
	id = blake3_backend_parse(env);
	assert_int_equal(blake3_backend_cap(), id < 0 ? BLAKE3_BACKEND_AUTO : id);
	assert_true(blake3_backend_available(blake3_backend_best()));
	if (blake3_backend_cap() != BLAKE3_BACKEND_AUTO)
		assert_true(blake3_backend_best() <= blake3_backend_cap());
}

/*
 * Long inputs (the 251-byte pattern) beyond the vectors' 100 KiB, so that
 * multi-level subtrees and the stack are exercised. Digests from b3sum 1.2.0:
 *   python3 -c 'import sys; sys.stdout.buffer.write(bytes(i % 251 for i in range(N)))' | b3sum
 */
static const struct {
	size_t len;
	const char *hex;
} long_cases[] = {
	{ 1048577, "2f053cd7472cf0cd2f9adaf45c1180255b91b9a865404a63671a0ee5f792ed33" },
	{ 3000000, "4713babaefbc2271db70eee8ec588829c0e5aa250951e9a401d11db249256fa8" },
	{ 4194304, "4e94e6f582581a0f3855f3ce504b153e951e65036fe9e2f010b7e25473c54f98" },
};

static void test_long_inputs(void **state)
{
	size_t max = 4194304 + 1, i, j;
	uint8_t *buf = malloc(max), *ref;
	size_t reflen;
	int be;

	assert_non_null(buf);
	fill_pattern(buf, max);
	for (i = 0; i < sizeof(long_cases) / sizeof(long_cases[0]); i++) {
		size_t len = long_cases[i].len;

		assert_int_equal(unhex(long_cases[i].hex, &ref, &reflen), 0);
		assert_int_equal(reflen, BLAKE3_OUT_LEN);
		for (be = BLAKE3_BACKEND_PORTABLE; be < BLAKE3_BACKEND_COUNT; be++) {
			struct blake3_hasher h;
			uint8_t out[BLAKE3_OUT_LEN];

			if (!blake3_backend_available(be))
				continue;
			/* whole buffer (subtree path) */
			blake3_hasher_init(&h);
			assert_int_equal(blake3_hasher_set_backend(&h, be), 0);
			blake3_hasher_update(&h, buf, len);
			blake3_hasher_finalize(&h, out, sizeof(out));
			assert_memory_equal(out, ref, sizeof(out));
			/* one chunk at a time (chunk path only), starting off by 100 bytes */
			blake3_hasher_init(&h);
			assert_int_equal(blake3_hasher_set_backend(&h, be), 0);
			blake3_hasher_update(&h, buf, 100);
			for (j = 100; j < len; j += BLAKE3_CHUNK_LEN)
				blake3_hasher_update(&h, buf + j,
						     len - j < BLAKE3_CHUNK_LEN ? len - j :
										 BLAKE3_CHUNK_LEN);
			blake3_hasher_finalize(&h, out, sizeof(out));
			assert_memory_equal(out, ref, sizeof(out));
		}
		free(ref);
	}
	free(buf);
}

/* Multi-threaded equals single-threaded, in every mode, prefix and thread count. */
static void test_mt_equals_st(void **state)
{
	const struct vectors *v = *state;
	static const size_t lens[] = { 0, 1, 1024, 524288, 524289, 1048576, 1048577,
				       2097152 + 3 * 1024 + 5, 5 * 1048576 + 777 };
	static const size_t prefixes[] = { 0, 1, 1023, 1024, 5000 };
	static const unsigned int threads[] = { 0, 1, 2, 3, 4, 7 };
	size_t max = 5 * 1048576 + 777 + 5000, li, pi, ti;
	uint8_t *buf = malloc(max);
	uint64_t rng = 42;
	int mode;

	assert_non_null(buf);
	for (li = 0; li < max; li++)
		buf[li] = (uint8_t)rng_next(&rng);
	for (mode = 0; mode < MODE_COUNT; mode++)
		for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++)
			for (pi = 0; pi < sizeof(prefixes) / sizeof(prefixes[0]); pi++) {
				struct blake3_hasher st;
				uint8_t ref[100];

				init_mode(&st, v, mode);
				blake3_hasher_update(&st, buf, prefixes[pi] + lens[li]);
				blake3_hasher_finalize(&st, ref, sizeof(ref));
				for (ti = 0; ti < sizeof(threads) / sizeof(threads[0]); ti++) {
					struct blake3_hasher mt;
					uint8_t out[100];

					init_mode(&mt, v, mode);
					blake3_hasher_update(&mt, buf, prefixes[pi]);
					assert_int_equal(blake3_hasher_update_mt(&mt,
										 buf + prefixes[pi],
										 lens[li], threads[ti]),
							 0);
					blake3_hasher_finalize(&mt, out, sizeof(out));
					if (memcmp(out, ref, sizeof(out)))
						fail_msg("%s len %zu prefix %zu threads %u differs",
							 mode_names[mode], lens[li], prefixes[pi],
							 threads[ti]);
				}
			}
	/* blake3_hash_mt over every backend's kernel through the hasher. */
	for (mode = BLAKE3_BACKEND_PORTABLE; mode < BLAKE3_BACKEND_COUNT; mode++) {
		struct blake3_hasher h;
		uint8_t a[32], b[32];

		if (!blake3_backend_available(mode))
			continue;
		blake3_hasher_init(&h);
		assert_int_equal(blake3_hasher_set_backend(&h, mode), 0);
		assert_int_equal(blake3_hasher_update_mt(&h, buf, max, 3), 0);
		blake3_hasher_finalize(&h, a, sizeof(a));
		assert_int_equal(blake3_hash_mt(buf, max, 1, b, sizeof(b)), 0);
		assert_memory_equal(a, b, sizeof(a));
	}
	free(buf);
}

/*
 * A file mapped without MAP_POPULATE, as `weftctl hash` maps it for several
 * threads: the threads populate their own pieces (madvise) and every kernel
 * prefetches past the end of the mapping. Digests equal those of the same
 * bytes on the heap, for each backend and thread count, at an offset that is
 * not page aligned.
 */
static void test_file_mapping(void **state)
{
	static const unsigned int threads[] = { 1, 2, 3 };
	size_t len = 3 * 1048576 + 12345, i, ti;
	char path[] = "/tmp/weft-test-blake3.XXXXXX";
	uint8_t *buf = malloc(len), *map;
	uint64_t rng = 7;
	int fd, be;

	(void)state;
	assert_non_null(buf);
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)rng_next(&rng);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(map != MAP_FAILED);
	for (be = BLAKE3_BACKEND_PORTABLE; be < BLAKE3_BACKEND_COUNT; be++) {
		struct blake3_hasher ref;
		uint8_t want[32], got[32];

		if (!blake3_backend_available(be))
			continue;
		blake3_hasher_init(&ref);
		assert_int_equal(blake3_hasher_set_backend(&ref, be), 0);
		blake3_hasher_update(&ref, buf + 100, len - 100);
		blake3_hasher_finalize(&ref, want, sizeof(want));
		for (ti = 0; ti < sizeof(threads) / sizeof(threads[0]); ti++) {
			struct blake3_hasher h;

			blake3_hasher_init(&h);
			assert_int_equal(blake3_hasher_set_backend(&h, be), 0);
			assert_int_equal(blake3_hasher_update_mt(&h, map + 100, len - 100,
								 threads[ti]),
					 0);
			blake3_hasher_finalize(&h, got, sizeof(got));
			if (memcmp(got, want, sizeof(want)))
				fail_msg("backend %s threads %u differs", blake3_backend_name(be),
					 threads[ti]);
		}
	}
	munmap(map, len);
	close(fd);
	free(buf);
}

/*
 * blake3_hasher_update_fd (what `weftctl hash` calls): the same digest as
 * the bytes hashed from memory, in every mode, length, prefix already
 * absorbed (the file read from that offset) and thread count; a file that
 * ends before the length asked is -EIO, a bad descriptor -EBADF.
 */
static void test_file_pread(void **state)
{
	const struct vectors *v = *state;
	static const size_t lens[] = { 0, 1, 1024, 524288, 524289, 2097152 + 3 * 1024 + 5,
				       5 * 1048576 + 777 };
	static const size_t prefixes[] = { 0, 1, 1023, 5000 };
	static const unsigned int threads[] = { 0, 1, 2, 3 };
	size_t max = 5 * 1048576 + 777 + 5000, li, pi, ti;
	char path[] = "/tmp/weft-test-blake3.XXXXXX";
	uint8_t *buf = malloc(max), out[100], ref[100];
	struct blake3_hasher h;
	uint64_t rng = 99;
	int fd, mode;

	assert_non_null(buf);
	for (li = 0; li < max; li++)
		buf[li] = (uint8_t)rng_next(&rng);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, buf, max), (ssize_t)max);
	for (mode = 0; mode < MODE_COUNT; mode++)
		for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++)
			for (pi = 0; pi < sizeof(prefixes) / sizeof(prefixes[0]); pi++) {
				init_mode(&h, v, mode);
				blake3_hasher_update(&h, buf, prefixes[pi] + lens[li]);
				blake3_hasher_finalize(&h, ref, sizeof(ref));
				for (ti = 0; ti < sizeof(threads) / sizeof(threads[0]); ti++) {
					init_mode(&h, v, mode);
					blake3_hasher_update(&h, buf, prefixes[pi]);
					assert_int_equal(blake3_hasher_update_fd(&h, fd, prefixes[pi],
										 lens[li], threads[ti]),
							 0);
					blake3_hasher_finalize(&h, out, sizeof(out));
					if (memcmp(out, ref, sizeof(out)))
						fail_msg("%s len %zu prefix %zu threads %u differs",
							 mode_names[mode], lens[li], prefixes[pi],
							 threads[ti]);
				}
			}
	/* The file ends before off + len: serial and threaded paths. */
	for (ti = 0; ti < sizeof(threads) / sizeof(threads[0]); ti++) {
		blake3_hasher_init(&h);
		assert_int_equal(blake3_hasher_update_fd(&h, fd, 1000, max, threads[ti]), -EIO);
	}
	assert_int_equal(blake3_hasher_update_fd(&h, -1, 0, 10, 1), -EBADF);
	close(fd);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_api),
		cmocka_unit_test(test_backend_names),
		cmocka_unit_test(test_vectors_all_backends),
		cmocka_unit_test(test_vectors_split_bytewise),
		cmocka_unit_test(test_vectors_split_awkward),
		cmocka_unit_test(test_vectors_split_random),
		cmocka_unit_test(test_oneshot_and_seek),
		cmocka_unit_test(test_finalize_then_continue),
		cmocka_unit_test(test_pow2_pieces),
		cmocka_unit_test(test_long_inputs),
		cmocka_unit_test(test_mt_equals_st),
		cmocka_unit_test(test_file_mapping),
		cmocka_unit_test(test_file_pread),
	};

	return cmocka_run_group_tests_name("blake3_vectors", tests, setup_vectors, teardown_vectors);
}
