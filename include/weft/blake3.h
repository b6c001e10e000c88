/* SPDX-License-Identifier: MIT */
/*
 * BLAKE3 (hash, keyed hash, key derivation, extendable output), written from
 * the BLAKE3 specification. Portable C plus SSE4.1 (4 lanes), AVX2 (8 lanes)
 * and AVX-512 (16 lanes) kernels that hash many chunks / parent nodes at
 * once; the best one is chosen at run time from the CPU's features, and can
 * be overridden per hasher (tests check every backend on one machine).
 *
 * The hasher is a value type: declare it anywhere (stack, struct), initialise
 * it with one of the blake3_hasher_init*() calls, feed it with update, read
 * any amount of output with finalize. It holds no pointers and needs no
 * free. Hashing is deterministic whatever way the input is split between
 * update calls. No global mutable state: any number of hashers can run in
 * any number of threads.
 */
#ifndef WEFT_BLAKE3_H
#define WEFT_BLAKE3_H

#include <stddef.h>
#include <stdint.h>

#define BLAKE3_KEY_LEN 32
#define BLAKE3_OUT_LEN 32 /* default output length */
#define BLAKE3_BLOCK_LEN 64
#define BLAKE3_CHUNK_LEN 1024
/* 2^64 bytes of input is 2^54 chunks: at most 54 subtrees wait on the stack. */
#define BLAKE3_MAX_DEPTH 54

enum blake3_backend_id {
	BLAKE3_BACKEND_AUTO = 0, /* best available on this CPU */
	BLAKE3_BACKEND_PORTABLE,
	BLAKE3_BACKEND_SSE41,
	BLAKE3_BACKEND_AVX2,
	BLAKE3_BACKEND_AVX512,
	BLAKE3_BACKEND_COUNT,
};

/* State of the chunk being filled (internal; exposed so the hasher is a value type). */
struct blake3_chunk_state {
	uint32_t cv[8];
	uint64_t counter;       /* index of this chunk in the input */
	uint8_t buf[BLAKE3_BLOCK_LEN];
	uint8_t buf_len;        /* bytes in buf, 0..64 */
	uint8_t blocks_done;    /* blocks already compressed into cv, 0..15 */
	uint8_t flags;          /* mode flags (keyed / derive key) */
};

struct blake3_hasher {
	uint32_t key[8];
	struct blake3_chunk_state chunk;
	/* Chaining values of complete subtrees, left to right (merged eagerly). */
	uint8_t cv_stack[BLAKE3_MAX_DEPTH + 1][BLAKE3_OUT_LEN];
	uint8_t stack_len;
	uint8_t flags;
	uint8_t backend;        /* resolved enum blake3_backend_id, never AUTO */
};

/* Plain hash mode. */
void blake3_hasher_init(struct blake3_hasher *h);
/* Keyed hash (MAC / PRF) mode with a 32-byte key (copied). */
void blake3_hasher_init_keyed(struct blake3_hasher *h, const uint8_t key[BLAKE3_KEY_LEN]);
/*
 * Key derivation mode. ctx/ctx_len is the context string (any bytes; the
 * specification asks for a hard-coded, globally unique, application-specific
 * string). Feed the key material with update.
 */
void blake3_hasher_init_derive_key(struct blake3_hasher *h, const void *ctx, size_t ctx_len);

/*
 * Select the compression backend of a hasher (call right after init, before
 * any update). BLAKE3_BACKEND_AUTO picks the best one. Returns 0, -EINVAL for
 * an unknown id, -ENOTSUP if this CPU lacks the instructions.
 */
int blake3_hasher_set_backend(struct blake3_hasher *h, enum blake3_backend_id id);

/* Absorb len bytes (in may be NULL when len is 0). */
void blake3_hasher_update(struct blake3_hasher *h, const void *in, size_t len);

/*
 * Same result as blake3_hasher_update(), computed by up to `threads` threads
 * (0 = one per online CPU; capped at BLAKE3_MT_MAX_THREADS). The input is cut
 * into power-of-two, chunk-aligned subtrees that threads hash independently;
 * their chaining values are then merged. Small inputs (below
 * BLAKE3_MT_MIN_LEN) are hashed by the calling thread. If threads or memory
 * cannot be had, the calling thread does the work: the result is always
 * right. Returns 0, or -EINVAL if in is NULL with len > 0.
 */
int blake3_hasher_update_mt(struct blake3_hasher *h, const void *in, size_t len,
			    unsigned int threads);

/*
 * Same result as blake3_hasher_update() over len bytes of the file fd from
 * offset off, read with pread (fd's own offset is neither used nor moved),
 * by up to `threads` threads as blake3_hasher_update_mt() cuts the work:
 * each thread reads its 256 KiB pieces into a buffer it reuses. Reading
 * costs a copy but no page-table work: 1 GiB in tmpfs, one thread, 232 ms
 * of CPU against 282 ms from a MAP_POPULATE mapping (docs/BLAKE3.md).
 * Returns 0, -EBADF, -ENOMEM, -EIO when the file ends before off + len (it
 * shrank while hashed), or -errno of pread; after an error the hasher holds
 * part of the input and must be discarded.
 */
int blake3_hasher_update_fd(struct blake3_hasher *h, int fd, uint64_t off, size_t len,
			    unsigned int threads);

/*
 * Write outlen bytes of output starting at byte offset seek of the output
 * stream (extendable output: any length, any offset). The hasher is not
 * modified: more input may follow, finalize may be called again.
 */
void blake3_hasher_finalize_seek(const struct blake3_hasher *h, uint64_t seek, uint8_t *out,
				 size_t outlen);
/* finalize_seek() from offset 0. BLAKE3_OUT_LEN bytes is the usual digest. */
void blake3_hasher_finalize(const struct blake3_hasher *h, uint8_t *out, size_t outlen);

/* One-shot helpers (best backend, calling thread only). */
void blake3_hash(const void *in, size_t len, uint8_t *out, size_t outlen);
void blake3_keyed_hash(const uint8_t key[BLAKE3_KEY_LEN], const void *in, size_t len,
		       uint8_t *out, size_t outlen);
void blake3_derive_key(const void *ctx, size_t ctx_len, const void *material, size_t len,
		       uint8_t *out, size_t outlen);

/*
 * One-shot plain hash of a large buffer by `threads` threads (see
 * blake3_hasher_update_mt). Returns 0 or -EINVAL.
 */
int blake3_hash_mt(const void *buf, size_t len, unsigned int threads, uint8_t *out,
		   size_t outlen);

/* Tunables of the multi-threaded path. */
/* Inputs shorter than this are not worth a thread start (~20 us each): 512 KiB. */
#define BLAKE3_MT_MIN_LEN (512u * 1024u)
/* Upper bound on threads per call: far above any core count we target. */
#define BLAKE3_MT_MAX_THREADS 256u

/* 1 if the CPU can run backend id (AUTO and PORTABLE always can), else 0. */
int blake3_backend_available(enum blake3_backend_id id);
/*
 * Best backend this CPU can run, capped by the environment variable
 * WEFT_BLAKE3_SIMD (read once per process): "avx512", "avx2", "sse41" or
 * "portable" keeps every hasher at the best level at or below the one named
 * (a level the CPU lacks gives the next one down); "auto", unset or an
 * unknown value: no cap. Hasher init uses it, so a process can be pinned to
 * one kernel for a benchmark or a comparison (weftctl hash checks the value).
 */
#define BLAKE3_SIMD_ENV "WEFT_BLAKE3_SIMD"
enum blake3_backend_id blake3_backend_best(void);
/* The cap WEFT_BLAKE3_SIMD sets (AUTO: none). */
enum blake3_backend_id blake3_backend_cap(void);
/* Backend id of a name ("auto", "portable", "sse41" or "sse4.1", "avx2", "avx512"), or -EINVAL. */
int blake3_backend_parse(const char *name);
/* "auto", "portable", "sse41", "avx2", "avx512"; NULL for an unknown id. */
const char *blake3_backend_name(enum blake3_backend_id id);

#endif
