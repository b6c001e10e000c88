// SPDX-License-Identifier: MIT
/*
 * BLAKE3 tree hashing, hasher state, backend dispatch and one-shot helpers.
 *
 * Input is cut into 1 KiB chunks, each hashed into a 32-byte chaining value
 * (CV); CVs are paired left to right into parent nodes, an odd last node
 * moving up unchanged, until one root remains, whose compression (with the
 * ROOT flag, repeated with counters 0, 1, 2... for longer output) gives the
 * output. Big inputs are hashed as power-of-two, chunk-aligned subtrees: all
 * chunks of a subtree go through the SIMD kernel LANES at a time, then each
 * level of parents does too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blake3/blake3_impl.h"

/*
 * Subtrees up to this many chunks are hashed level by level through one CV
 * buffer on the stack (8 + 4 KiB); larger ones are split in halves first.
 * 256 (a 256 KiB piece of blake3_mt.c) keeps every parent level but the
 * last three a multiple of 16 lanes, and pays those narrow levels (the
 * narrower kernels, then the portable compression) once per piece instead
 * of once per half: 256 KiB in cache, AVX2 on Zen 3, 4.29 -> 4.34 GB/s.
 */
#define FLAT_CHUNKS 256

/* Output of the last compression before the root: everything needed to finish it. */
struct b3_output {
	uint32_t cv[8];
	uint8_t block[BLAKE3_BLOCK_LEN];
	uint64_t counter;
	uint8_t block_len;
	uint8_t flags;
};

static void store_words(uint8_t *out, const uint32_t *w, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[4 * i] = (uint8_t)w[i];
		out[4 * i + 1] = (uint8_t)(w[i] >> 8);
		out[4 * i + 2] = (uint8_t)(w[i] >> 16);
		out[4 * i + 3] = (uint8_t)(w[i] >> 24);
	}
}

static void load_words(uint32_t *w, const uint8_t *in, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		w[i] = (uint32_t)in[4 * i] | (uint32_t)in[4 * i + 1] << 8 |
		       (uint32_t)in[4 * i + 2] << 16 | (uint32_t)in[4 * i + 3] << 24;
}

/* ---- backends ---- */

int blake3_backend_available(enum blake3_backend_id id)
{
	switch (id) {
	case BLAKE3_BACKEND_AUTO:
	case BLAKE3_BACKEND_PORTABLE:
		return 1;
#if defined(__x86_64__) || defined(__i386__)
	case BLAKE3_BACKEND_SSE41:
		return __builtin_cpu_supports("sse4.1") ? 1 : 0;
	case BLAKE3_BACKEND_AVX2:
		return __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("avx2") ? 1 : 0;
	case BLAKE3_BACKEND_AVX512:
		/* The 16-lane kernel hands its remainder to the AVX2 one. */
		return __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("avx2") &&
		       __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") ?
			       1 :
			       0;
#endif
	default:
		return 0;
	}
}

/* Best backend of this CPU, with no cap. */
static enum blake3_backend_id backend_cpu_best(void)
{
	if (blake3_backend_available(BLAKE3_BACKEND_AVX512))
		return BLAKE3_BACKEND_AVX512;
	if (blake3_backend_available(BLAKE3_BACKEND_AVX2))
		return BLAKE3_BACKEND_AVX2;
	if (blake3_backend_available(BLAKE3_BACKEND_SSE41))
		return BLAKE3_BACKEND_SSE41;
	return BLAKE3_BACKEND_PORTABLE;
}

int blake3_backend_parse(const char *name)
{
	static const struct {
		const char *name;
		enum blake3_backend_id id;
	} names[] = {
		{ "auto", BLAKE3_BACKEND_AUTO },     { "portable", BLAKE3_BACKEND_PORTABLE },
		{ "sse41", BLAKE3_BACKEND_SSE41 },   { "sse4.1", BLAKE3_BACKEND_SSE41 },
		{ "avx2", BLAKE3_BACKEND_AVX2 },     { "avx512", BLAKE3_BACKEND_AVX512 },
	};
	size_t i;

	if (!name)
		return -EINVAL;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i].name) == 0)
			return (int)names[i].id;
	return -EINVAL;
}

enum blake3_backend_id blake3_backend_cap(void)
{
	/* Read once: 0 not yet read, else the id + 1 (AUTO when unset or unknown). */
	static int cached;
	int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);

	if (!c) {
		int id = blake3_backend_parse(getenv(BLAKE3_SIMD_ENV));

		c = (id < 0 ? (int)BLAKE3_BACKEND_AUTO : id) + 1;
		__atomic_store_n(&cached, c, __ATOMIC_RELAXED);
	}
	return (enum blake3_backend_id)(c - 1);
}

enum blake3_backend_id blake3_backend_best(void)
{
	enum blake3_backend_id best = backend_cpu_best(), cap = blake3_backend_cap();

	/* Ids rise with the width: the cap keeps the best level at or below it. */
	if (cap != BLAKE3_BACKEND_AUTO && cap < best)
		best = cap;
	return best;
}

const char *blake3_backend_name(enum blake3_backend_id id)
{
	static const char *const names[BLAKE3_BACKEND_COUNT] = {
		[BLAKE3_BACKEND_AUTO] = "auto",	    [BLAKE3_BACKEND_PORTABLE] = "portable",
		[BLAKE3_BACKEND_SSE41] = "sse41",   [BLAKE3_BACKEND_AVX2] = "avx2",
		[BLAKE3_BACKEND_AVX512] = "avx512",
	};

	if ((unsigned int)id >= BLAKE3_BACKEND_COUNT)
		return NULL;
	return names[id];
}

blake3_hash_many_fn *blake3_backend_fn(unsigned int id)
{
	switch (id) {
	case BLAKE3_BACKEND_SSE41:
		return blake3_hash_many_sse41;
	case BLAKE3_BACKEND_AVX2:
		return blake3_hash_many_avx2;
	case BLAKE3_BACKEND_AVX512:
		return blake3_hash_many_avx512;
	default:
		return blake3_hash_many_portable;
	}
}

unsigned int blake3_backend_lanes(unsigned int id)
{
	switch (id) {
	case BLAKE3_BACKEND_SSE41:
		return 4;
	case BLAKE3_BACKEND_AVX2:
		return 8;
	case BLAKE3_BACKEND_AVX512:
		return 16;
	default:
		return 1;
	}
}

/* ---- tree ---- */

static void output_cv(const struct b3_output *o, uint8_t cv[32])
{
	uint32_t w[16];

	blake3_compress(o->cv, o->block, o->block_len, o->counter, o->flags, w);
	store_words(cv, w, 8);
}

/* Root output bytes [seek, seek + len): output block i is the root compressed with counter i. */
static void output_root(const struct b3_output *o, uint64_t seek, uint8_t *out, size_t len)
{
	uint64_t blk = seek / BLAKE3_BLOCK_LEN;
	size_t off = (size_t)(seek % BLAKE3_BLOCK_LEN);
	uint32_t w[16];
	uint8_t bytes[BLAKE3_BLOCK_LEN];

	while (len) {
		size_t take = BLAKE3_BLOCK_LEN - off;

		if (take > len)
			take = len;
		blake3_compress(o->cv, o->block, o->block_len, blk, o->flags | BLAKE3_F_ROOT, w);
		store_words(bytes, w, 16);
		memcpy(out, bytes + off, take);
		out += take;
		len -= take;
		off = 0;
		blk++;
	}
}

static void parent_output(struct b3_output *o, const uint8_t left[32], const uint8_t right[32],
			  const uint32_t key[8], uint8_t flags)
{
	memcpy(o->cv, key, sizeof(o->cv));
	memcpy(o->block, left, 32);
	memcpy(o->block + 32, right, 32);
	o->counter = 0;
	o->block_len = BLAKE3_BLOCK_LEN;
	o->flags = flags | BLAKE3_F_PARENT;
}

static void chunk_init(struct blake3_chunk_state *cs, const uint32_t key[8], uint64_t counter,
		       uint8_t flags)
{
	memcpy(cs->cv, key, sizeof(cs->cv));
	cs->counter = counter;
	memset(cs->buf, 0, sizeof(cs->buf));
	cs->buf_len = 0;
	cs->blocks_done = 0;
	cs->flags = flags;
}

static size_t chunk_len(const struct blake3_chunk_state *cs)
{
	return (size_t)cs->blocks_done * BLAKE3_BLOCK_LEN + cs->buf_len;
}

static uint8_t chunk_start_flag(const struct blake3_chunk_state *cs)
{
	return cs->blocks_done == 0 ? BLAKE3_F_CHUNK_START : 0;
}

/* Caller keeps len <= room left in the chunk. The last block always stays buffered. */
static void chunk_update(struct blake3_chunk_state *cs, const uint8_t *in, size_t len)
{
	uint32_t w[16];

	while (len) {
		size_t take;

		if (cs->buf_len == BLAKE3_BLOCK_LEN) {
			blake3_compress(cs->cv, cs->buf, BLAKE3_BLOCK_LEN, cs->counter,
					cs->flags | chunk_start_flag(cs), w);
			memcpy(cs->cv, w, sizeof(cs->cv));
			cs->blocks_done++;
			cs->buf_len = 0;
			memset(cs->buf, 0, sizeof(cs->buf));
		}
		/* Whole blocks straight from the input while more follows. */
		while (cs->buf_len == 0 && len > BLAKE3_BLOCK_LEN) {
			blake3_compress(cs->cv, in, BLAKE3_BLOCK_LEN, cs->counter,
					cs->flags | chunk_start_flag(cs), w);
			memcpy(cs->cv, w, sizeof(cs->cv));
			cs->blocks_done++;
			in += BLAKE3_BLOCK_LEN;
			len -= BLAKE3_BLOCK_LEN;
		}
		take = BLAKE3_BLOCK_LEN - cs->buf_len;
		if (take > len)
			take = len;
		memcpy(cs->buf + cs->buf_len, in, take);
		cs->buf_len += (uint8_t)take;
		in += take;
		len -= take;
	}
}

static void chunk_output(const struct blake3_chunk_state *cs, struct b3_output *o)
{
	memcpy(o->cv, cs->cv, sizeof(o->cv));
	memcpy(o->block, cs->buf, sizeof(o->block));
	o->counter = cs->counter;
	o->block_len = cs->buf_len;
	o->flags = cs->flags | chunk_start_flag(cs) | BLAKE3_F_CHUNK_END;
}

/* CV of one chunk of 1..1024 bytes (the partial last chunk of a subtree). */
static void chunk_cv(const uint8_t *in, size_t len, const uint32_t key[8], uint64_t counter,
		     uint8_t flags, uint8_t out[32])
{
	struct blake3_chunk_state cs;
	struct b3_output o;

	chunk_init(&cs, key, counter, flags);
	chunk_update(&cs, in, len);
	chunk_output(&cs, &o);
	output_cv(&o, out);
}

/* Largest power of two <= x (x >= 1). */
static uint64_t pow2_floor(uint64_t x)
{
	return 1ull << (63 - __builtin_clzll(x));
}

/* Chunks in the left subtree of a node covering len > 1024 bytes. */
static size_t left_len(size_t len)
{
	return (size_t)pow2_floor((len - 1) / BLAKE3_CHUNK_LEN) * BLAKE3_CHUNK_LEN;
}

/* One level of parents: n CVs in `in` to n/2 (+1 carried if odd) in `out`; returns the count. */
static size_t parents_level(blake3_hash_many_fn *fn, const uint8_t *in, size_t n, uint8_t *out,
			    const uint32_t key[8], uint8_t flags)
{
	size_t pairs = n / 2;

	fn(in, pairs, 64, 1, key, 0, false, flags | BLAKE3_F_PARENT, 0, 0, out);
	if (n & 1)
		memcpy(out + 32 * pairs, in + 64 * pairs, 32);
	return pairs + (n & 1);
}

void blake3_merge_pow2(unsigned int backend, uint8_t *cvs, size_t n, uint8_t *tmp,
		       const uint32_t key[8], uint8_t flags)
{
	blake3_hash_many_fn *fn = blake3_backend_fn(backend);

	while (n > 1) {
		n = parents_level(fn, cvs, n, tmp, key, flags);
		memcpy(cvs, tmp, 32 * n);
	}
}

/*
 * A subtree of 1 < len <= FLAT_CHUNKS * 1024 bytes hashed flat: every chunk
 * through the kernel, then parent levels until `keep` (1 or 2) CVs are left,
 * to out: its CV, or (keep 2, more than one chunk) its two children's CVs.
 */
static void subtree_flat(unsigned int backend, const uint8_t *in, size_t len, const uint32_t key[8],
			 uint64_t counter, uint8_t flags, uint8_t *out, size_t keep)
{
	blake3_hash_many_fn *fn = blake3_backend_fn(backend);
	uint8_t a[FLAT_CHUNKS * 32], b[FLAT_CHUNKS / 2 * 32 + 32], *src = a, *dst = b, *t;
	size_t full = len / BLAKE3_CHUNK_LEN, n = full;

	fn(in, full, BLAKE3_CHUNK_LEN, BLAKE3_BLOCKS_PER_CHUNK, key, counter, true, flags,
	   BLAKE3_F_CHUNK_START, BLAKE3_F_CHUNK_END, a);
	if (len % BLAKE3_CHUNK_LEN) {
		chunk_cv(in + full * BLAKE3_CHUNK_LEN, len % BLAKE3_CHUNK_LEN, key, counter + full,
			 flags, a + 32 * full);
		n++;
	}
	/* Each level from one buffer to the other (b holds any level but the first). */
	while (n > keep) {
		n = parents_level(fn, src, n, dst, key, flags);
		t = src;
		src = dst;
		dst = t;
	}
	memcpy(out, src, 32 * n);
}

void blake3_subtree_cv(unsigned int backend, const uint8_t *in, size_t len,
		       const uint32_t key[8], uint64_t counter, uint8_t flags, uint8_t out[32])
{
	if (len <= BLAKE3_CHUNK_LEN) {
		chunk_cv(in, len, key, counter, flags, out);
	} else if (len <= (size_t)FLAT_CHUNKS * BLAKE3_CHUNK_LEN) {
		subtree_flat(backend, in, len, key, counter, flags, out, 1);
	} else {
		size_t l = left_len(len);
		uint8_t cvs[64];
		struct b3_output o;

		blake3_subtree_cv(backend, in, l, key, counter, flags, cvs);
		blake3_subtree_cv(backend, in + l, len - l, key, counter + l / BLAKE3_CHUNK_LEN,
				  flags, cvs + 32);
		parent_output(&o, cvs, cvs + 32, key, flags);
		output_cv(&o, out);
	}
}

/* ---- hasher ---- */

static void hasher_init(struct blake3_hasher *h, const uint32_t key[8], uint8_t flags)
{
	memcpy(h->key, key, sizeof(h->key));
	chunk_init(&h->chunk, key, 0, flags);
	h->stack_len = 0;
	h->flags = flags;
	h->backend = (uint8_t)blake3_backend_best();
}

void blake3_hasher_init(struct blake3_hasher *h)
{
	hasher_init(h, blake3_iv, 0);
}

void blake3_hasher_init_keyed(struct blake3_hasher *h, const uint8_t key[BLAKE3_KEY_LEN])
{
	uint32_t k[8];

	load_words(k, key, 8);
	hasher_init(h, k, BLAKE3_F_KEYED_HASH);
}

void blake3_hasher_init_derive_key(struct blake3_hasher *h, const void *ctx, size_t ctx_len)
{
	struct blake3_hasher c;
	uint8_t ck[BLAKE3_KEY_LEN];
	uint32_t k[8];

	hasher_init(&c, blake3_iv, BLAKE3_F_DERIVE_KEY_CONTEXT);
	blake3_hasher_update(&c, ctx, ctx_len);
	blake3_hasher_finalize(&c, ck, sizeof(ck));
	load_words(k, ck, 8);
	hasher_init(h, k, BLAKE3_F_DERIVE_KEY_MATERIAL);
}

int blake3_hasher_set_backend(struct blake3_hasher *h, enum blake3_backend_id id)
{
	if ((unsigned int)id >= BLAKE3_BACKEND_COUNT)
		return -EINVAL;
	if (!blake3_backend_available(id))
		return -ENOTSUP;
	h->backend = (uint8_t)(id == BLAKE3_BACKEND_AUTO ? blake3_backend_best() : id);
	return 0;
}

/*
 * Add the CV of a complete subtree of n_chunks (power of two) chunks that
 * starts at the current chunk counter. More input is known to follow, so
 * every subtree the stack can now complete is merged at once (never a root).
 * The stack then holds one CV per set bit of the chunk count.
 */
void blake3_hasher_push_subtree(struct blake3_hasher *h, const uint8_t cv[32], uint64_t n_chunks)
{
	uint64_t total = h->chunk.counter + n_chunks;
	uint8_t cur[32];
	struct b3_output o;

	memcpy(cur, cv, 32);
	total >>= __builtin_ctzll(n_chunks);
	while ((total & 1) == 0) {
		h->stack_len--;
		parent_output(&o, h->cv_stack[h->stack_len], cur, h->key, h->flags);
		output_cv(&o, cur);
		total >>= 1;
	}
	memcpy(h->cv_stack[h->stack_len++], cur, 32);
	chunk_init(&h->chunk, h->key, h->chunk.counter + n_chunks, h->flags);
}

/*
 * update() may end on a subtree that takes the rest of its input exactly
 * (hasher_take_last): its two halves' CVs then sit on top of the stack,
 * unmerged, because one of them may be the root's child. That is the only
 * state with an empty chunk and more stack entries than the chunk count
 * has bits. More input: merge them now, as push_subtree would have.
 */
static void hasher_fold_pending(struct blake3_hasher *h)
{
	unsigned int want = (unsigned int)__builtin_popcountll(h->chunk.counter);
	struct b3_output o;

	if (chunk_len(&h->chunk) != 0)
		return;
	while (h->stack_len > want) {
		h->stack_len--;
		parent_output(&o, h->cv_stack[h->stack_len - 1], h->cv_stack[h->stack_len], h->key,
			      h->flags);
		output_cv(&o, h->cv_stack[h->stack_len - 1]);
	}
}

uint64_t blake3_hasher_next_subtree(struct blake3_hasher *h, size_t len)
{
	uint64_t n;

	if (len == 0)
		return 0;
	hasher_fold_pending(h);
	if (chunk_len(&h->chunk) == BLAKE3_CHUNK_LEN) {
		/* A full chunk and more input: it is no longer the last one. */
		struct b3_output o;
		uint8_t cv[32];

		chunk_output(&h->chunk, &o);
		output_cv(&o, cv);
		blake3_hasher_push_subtree(h, cv, 1);
	}
	if (chunk_len(&h->chunk) != 0 || len <= BLAKE3_CHUNK_LEN)
		return 0;
	n = pow2_floor((len - 1) / BLAKE3_CHUNK_LEN);
	/* A subtree must start on a multiple of its own size. */
	while (h->chunk.counter & (n - 1))
		n >>= 1;
	return n;
}

/*
 * The rest of the input, len bytes, is a whole subtree of 2 or more chunks
 * aligned on the chunk counter: hash its halves and push both CVs without
 * merging them (finalize makes their parent the root, or more input folds
 * them). Without this, a power-of-two input would keep its last chunk for
 * finalize and go down 64, 32 ... 1 chunks through ever narrower kernels:
 * 256 KiB in cache, AVX-512, 5.5 -> 7.x GB/s (docs/BLAKE3.md).
 */
static bool hasher_take_last(struct blake3_hasher *h, const uint8_t *p, size_t len)
{
	uint64_t n = len / BLAKE3_CHUNK_LEN;
	size_t half = len / 2;

	if (chunk_len(&h->chunk) != 0 || len % BLAKE3_CHUNK_LEN || n < 2 || (n & (n - 1)) ||
	    (h->chunk.counter & (n - 1)))
		return false;
	hasher_fold_pending(h);
	if (n <= FLAT_CHUNKS) {
		/* Both halves flat at once: their CVs are the last level but one. */
		subtree_flat(h->backend, p, len, h->key, h->chunk.counter, h->flags,
			     h->cv_stack[h->stack_len], 2);
	} else {
		blake3_subtree_cv(h->backend, p, half, h->key, h->chunk.counter, h->flags,
				  h->cv_stack[h->stack_len]);
		blake3_subtree_cv(h->backend, p + half, half, h->key, h->chunk.counter + n / 2,
				  h->flags, h->cv_stack[h->stack_len + 1]);
	}
	h->stack_len += 2;
	chunk_init(&h->chunk, h->key, h->chunk.counter + n, h->flags);
	return true;
}

void blake3_hasher_update(struct blake3_hasher *h, const void *in, size_t len)
{
	const uint8_t *p = in;

	while (len) {
		uint64_t n;
		size_t take;

		if (hasher_take_last(h, p, len))
			return;
		n = blake3_hasher_next_subtree(h, len);

		if (n) {
			uint8_t cv[32];
			size_t bytes = (size_t)n * BLAKE3_CHUNK_LEN;

			blake3_subtree_cv(h->backend, p, bytes, h->key, h->chunk.counter, h->flags,
					  cv);
			blake3_hasher_push_subtree(h, cv, n);
			p += bytes;
			len -= bytes;
			continue;
		}
		take = BLAKE3_CHUNK_LEN - chunk_len(&h->chunk);
		if (take > len)
			take = len;
		chunk_update(&h->chunk, p, take);
		p += take;
		len -= take;
	}
}

void blake3_hasher_finalize_seek(const struct blake3_hasher *h, uint64_t seek, uint8_t *out,
				 size_t outlen)
{
	struct b3_output o;
	uint8_t cv[32];
	size_t i = h->stack_len;

	if (chunk_len(&h->chunk) == 0 && i >= 2) {
		/* The input ended on a whole subtree (hasher_take_last). */
		parent_output(&o, h->cv_stack[i - 2], h->cv_stack[i - 1], h->key, h->flags);
		i -= 2;
	} else {
		chunk_output(&h->chunk, &o);
	}
	for (; i > 0; i--) {
		output_cv(&o, cv);
		parent_output(&o, h->cv_stack[i - 1], cv, h->key, h->flags);
	}
	output_root(&o, seek, out, outlen);
}

void blake3_hasher_finalize(const struct blake3_hasher *h, uint8_t *out, size_t outlen)
{
	blake3_hasher_finalize_seek(h, 0, out, outlen);
}

/* ---- one-shot ---- */

void blake3_hash(const void *in, size_t len, uint8_t *out, size_t outlen)
{
	struct blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, in, len);
	blake3_hasher_finalize(&h, out, outlen);
}

void blake3_keyed_hash(const uint8_t key[BLAKE3_KEY_LEN], const void *in, size_t len,
		       uint8_t *out, size_t outlen)
{
	struct blake3_hasher h;

	blake3_hasher_init_keyed(&h, key);
	blake3_hasher_update(&h, in, len);
	blake3_hasher_finalize(&h, out, outlen);
}

void blake3_derive_key(const void *ctx, size_t ctx_len, const void *material, size_t len,
		       uint8_t *out, size_t outlen)
{
	struct blake3_hasher h;

	blake3_hasher_init_derive_key(&h, ctx, ctx_len);
	blake3_hasher_update(&h, material, len);
	blake3_hasher_finalize(&h, out, outlen);
}
