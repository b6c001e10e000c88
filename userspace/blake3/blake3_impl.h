/* SPDX-License-Identifier: MIT */
/*
 * BLAKE3 internals shared by the portable core, the SIMD kernels and the
 * multi-threaded driver. Not a public header.
 */
#ifndef WEFT_CONTENT_BLAKE3_IMPL_H
#define WEFT_CONTENT_BLAKE3_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/blake3.h"

/* Domain separation flags (specification, section 2.1). */
enum {
	BLAKE3_F_CHUNK_START = 1u << 0,
	BLAKE3_F_CHUNK_END = 1u << 1,
	BLAKE3_F_PARENT = 1u << 2,
	BLAKE3_F_ROOT = 1u << 3,
	BLAKE3_F_KEYED_HASH = 1u << 4,
	BLAKE3_F_DERIVE_KEY_CONTEXT = 1u << 5,
	BLAKE3_F_DERIVE_KEY_MATERIAL = 1u << 6,
};

#define BLAKE3_BLOCKS_PER_CHUNK (BLAKE3_CHUNK_LEN / BLAKE3_BLOCK_LEN)

extern const uint32_t blake3_iv[8];
/*
 * Message word order of each of the 7 rounds. Round 0 reads the words in
 * order; the specification permutes them between rounds with
 * P = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8}, so
 * sched[r][i] = sched[r - 1][P[i]]. Defined here, not in one .c file, so
 * that every kernel sees constant indices and keeps the message in
 * registers.
 */
#define BLAKE3_SCHED_0 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
#define BLAKE3_SCHED_1 2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8
#define BLAKE3_SCHED_2 3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1
#define BLAKE3_SCHED_3 10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6
#define BLAKE3_SCHED_4 12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4
#define BLAKE3_SCHED_5 9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7
#define BLAKE3_SCHED_6 11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13
/* (The rows are macros too: the assembly rounds of blake3_x86_rounds.h
 * need them as literals.) */
static const uint8_t blake3_sched[7][16] __attribute__((unused)) = {
	{ BLAKE3_SCHED_0 }, { BLAKE3_SCHED_1 }, { BLAKE3_SCHED_2 }, { BLAKE3_SCHED_3 },
	{ BLAKE3_SCHED_4 }, { BLAKE3_SCHED_5 }, { BLAKE3_SCHED_6 },
};

/*
 * hash_many: n independent inputs, each `blocks` consecutive 64-byte blocks,
 * input i starting at in + i * stride. Each input is compressed block by
 * block from key, with counter (counter + i if inc, else counter), flags on
 * every block, fstart added on the first and fend on the last. The 32-byte
 * chaining value of input i goes to out + 32 * i.
 *   chunks:  stride 1024, blocks 16, inc, fstart CHUNK_START, fend CHUNK_END
 *   parents: stride 64, blocks 1, counter 0, flags |= PARENT
 * Each SIMD kernel handles groups of its lane count and passes the remainder
 * to the next narrower kernel.
 */
typedef void blake3_hash_many_fn(const uint8_t *in, size_t n, size_t stride, size_t blocks,
				 const uint32_t key[8], uint64_t counter, bool inc, uint8_t flags,
				 uint8_t fstart, uint8_t fend, uint8_t *out);

blake3_hash_many_fn blake3_hash_many_portable;
blake3_hash_many_fn blake3_hash_many_sse41;
blake3_hash_many_fn blake3_hash_many_avx2;
blake3_hash_many_fn blake3_hash_many_avx512;

/* The compression function: 16 output words (all of them, for the XOF). */
void blake3_compress(const uint32_t cv[8], const uint8_t block[BLAKE3_BLOCK_LEN],
		     uint8_t block_len, uint64_t counter, uint8_t flags, uint32_t out[16]);

/* Kernel of a resolved backend id, and its lane count. */
blake3_hash_many_fn *blake3_backend_fn(unsigned int id);
unsigned int blake3_backend_lanes(unsigned int id);

/*
 * Chaining value (non-root) of a chunk-aligned piece of input: len >= 1
 * bytes starting at chunk index counter. Any length; the tree shape is the
 * one BLAKE3 gives that range when it is a complete subtree.
 */
void blake3_subtree_cv(unsigned int backend, const uint8_t *in, size_t len,
		       const uint32_t key[8], uint64_t counter, uint8_t flags, uint8_t out[32]);

/*
 * Reduce n (a power of two) adjacent subtree chaining values in cvs to the
 * one of their parent subtree, in place into cvs[0..32). tmp holds n/2 * 32
 * bytes.
 */
void blake3_merge_pow2(unsigned int backend, uint8_t *cvs, size_t n, uint8_t *tmp,
		       const uint32_t key[8], uint8_t flags);

/*
 * Hasher hooks for the multi-threaded driver. next_subtree: how many whole
 * chunks (a power of two, aligned on the hasher's chunk counter) the hasher
 * may take as one subtree from the next len bytes, leaving at least one byte
 * behind; 0 if its current chunk holds data. push_subtree: add the chaining
 * value of the n_chunks chunks just hashed.
 */
uint64_t blake3_hasher_next_subtree(struct blake3_hasher *h, size_t len);
void blake3_hasher_push_subtree(struct blake3_hasher *h, const uint8_t cv[32], uint64_t n_chunks);

#endif
