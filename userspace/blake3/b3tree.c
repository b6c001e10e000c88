// SPDX-License-Identifier: MIT
/*
 * BLAKE3 tree layer at content-chunk granularity: chunk CVs (level 8 of the
 * BLAKE3 tree), and the root over a CV list. Built on the BLAKE3 internals
 * (blake3_subtree_cv, blake3_compress); it computes nothing BLAKE3 itself
 * would not, so b3tree_root(b3tree_chunk_cvs(x)) == blake3_hash(x) for all x.
 */
#include <errno.h>
#include <string.h>

#include "blake3/blake3_impl.h"
#include "weft/chunk.h"

#define SUBTREE_CHUNKS (B3TREE_CHUNK_LEN / BLAKE3_CHUNK_LEN) /* 256 */

_Static_assert(B3TREE_CHUNK_LEN % BLAKE3_CHUNK_LEN == 0, "chunk must be whole BLAKE3 chunks");
_Static_assert((SUBTREE_CHUNKS & (SUBTREE_CHUNKS - 1)) == 0, "chunk must be a power of two");

uint64_t b3tree_nchunks(uint64_t total_len)
{
	if (total_len == 0)
		return 1;
	return (total_len - 1) / B3TREE_CHUNK_LEN + 1;
}

uint64_t b3tree_chunk_size(uint64_t total_len, uint64_t index)
{
	uint64_t n = b3tree_nchunks(total_len);

	if (index >= n)
		return 0;
	if (index + 1 < n)
		return B3TREE_CHUNK_LEN;
	return total_len - index * B3TREE_CHUNK_LEN;
}

static void words_to_bytes(uint8_t out[32], const uint32_t w[8])
{
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)w[i];
		out[4 * i + 1] = (uint8_t)(w[i] >> 8);
		out[4 * i + 2] = (uint8_t)(w[i] >> 16);
		out[4 * i + 3] = (uint8_t)(w[i] >> 24);
	}
}

/* Parent node of two CVs; root adds the ROOT flag (output block 0). */
static void parent_cv(const uint8_t left[32], const uint8_t right[32], int root, uint8_t out[32])
{
	uint8_t block[BLAKE3_BLOCK_LEN];
	uint32_t w[16];

	memcpy(block, left, 32);
	memcpy(block + 32, right, 32);
	blake3_compress(blake3_iv, block, BLAKE3_BLOCK_LEN, 0,
			BLAKE3_F_PARENT | (root ? BLAKE3_F_ROOT : 0), w);
	words_to_bytes(out, w);
}

int b3tree_chunk_cv(const uint8_t *chunk, size_t len, uint64_t index, int is_only_chunk,
		    uint8_t out[B3TREE_CV_LEN])
{
	if (len > B3TREE_CHUNK_LEN || (len && !chunk))
		return -EINVAL;
	if (is_only_chunk) {
		if (index != 0)
			return -EINVAL;
		blake3_hash(chunk, len, out, B3TREE_CV_LEN);
		return 0;
	}
	if (len == 0 || index > UINT64_MAX / SUBTREE_CHUNKS)
		return -EINVAL;
	blake3_subtree_cv(blake3_backend_best(), chunk, len, blake3_iv, index * SUBTREE_CHUNKS, 0,
			  out);
	return 0;
}

int b3tree_chunk_cvs(const uint8_t *buf, size_t len, uint8_t *out_cvs)
{
	uint64_t n = b3tree_nchunks(len);

	if ((len && !buf) || !out_cvs)
		return -EINVAL;
	if (n == 1)
		return b3tree_chunk_cv(buf, len, 0, 1, out_cvs);
	for (uint64_t i = 0; i < n; i++) {
		int err = b3tree_chunk_cv(buf + i * B3TREE_CHUNK_LEN,
					  (size_t)b3tree_chunk_size(len, i), i, 0,
					  out_cvs + i * B3TREE_CV_LEN);

		if (err)
			return err;
	}
	return 0;
}

static uint64_t pow2_floor(uint64_t x)
{
	return 1ull << (63 - __builtin_clzll(x));
}

/*
 * CV of the subtree over n >= 1 CVs (left-balanced as BLAKE3: the left part
 * holds the largest power of two strictly below n). Recursion depth is at
 * most log2(n) + 1 <= 47.
 */
static void subtree(const uint8_t *cvs, uint64_t n, int root, uint8_t out[32])
{
	uint8_t lr[64];
	uint64_t l;

	if (n == 1) {
		memcpy(out, cvs, 32);
		return;
	}
	l = pow2_floor(n - 1);
	subtree(cvs, l, 0, lr);
	subtree(cvs + l * B3TREE_CV_LEN, n - l, 0, lr + 32);
	parent_cv(lr, lr + 32, root, out);
}

int b3tree_root(const uint8_t *cvs, uint64_t nchunks, uint8_t out[B3TREE_ID_LEN])
{
	if (!cvs || nchunks == 0 || nchunks > UINT64_MAX / B3TREE_CHUNK_LEN + 1)
		return -EINVAL;
	subtree(cvs, nchunks, 1, out);
	return 0;
}

/* Constant-time compare: ids are public, but it costs nothing. */
static int eq32(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;

	for (int i = 0; i < 32; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

int b3tree_verify_cvs(const uint8_t *cvs, uint64_t nchunks, uint64_t total_len,
		      const uint8_t content_id[B3TREE_ID_LEN])
{
	uint8_t root[32];
	int err;

	if (!cvs || !content_id || nchunks != b3tree_nchunks(total_len))
		return -EINVAL;
	err = b3tree_root(cvs, nchunks, root);
	if (err)
		return err;
	return eq32(root, content_id) ? 0 : -EBADMSG;
}

int b3tree_verify_chunk(const uint8_t cv[B3TREE_CV_LEN], uint64_t total_len, uint64_t index,
			const uint8_t *chunk, size_t len)
{
	uint64_t n = b3tree_nchunks(total_len);
	uint8_t got[32];
	int err;

	if (!cv || index >= n || len != b3tree_chunk_size(total_len, index))
		return -EINVAL;
	err = b3tree_chunk_cv(chunk, len, index, n == 1, got);
	if (err)
		return err;
	return eq32(got, cv) ? 0 : -EBADMSG;
}
