/* SPDX-License-Identifier: MIT */
/*
 * Bencode (BEP 3): a strict, bounded decoder into a caller-owned node array,
 * and a small encoder writing into a caller-owned buffer.
 *
 * The decoder never copies: string nodes point into the input buffer, which
 * must outlive the document. It rejects non-canonical integers (i-0e, i03e,
 * ie, i-e), leading zeros in string lengths, lengths past the end of the
 * buffer, nesting deeper than max_depth, more than node_cap nodes and
 * (with BENCODE_STRICT) unsorted or duplicate dictionary keys.
 */
#ifndef WEFT_BENCODE_H
#define WEFT_BENCODE_H

#include <stddef.h>
#include <stdint.h>

enum bencode_type {
	BENCODE_INT = 1,
	BENCODE_STR = 2,
	BENCODE_LIST = 3,
	BENCODE_DICT = 4,
};

enum bencode_flags {
	/* Dictionary keys must be sorted (raw byte order) and unique. Without
	 * it, order is free but duplicates are still rejected. */
	BENCODE_STRICT = 1U << 0,
	/* Accept trailing bytes after the first value (consumed reports them). */
	BENCODE_ALLOW_TRAILING = 1U << 1,
};

/* Default nesting bound: KRPC needs 3 levels; 32 leaves room for BEP 44
 * values while stopping depth bombs long before the C stack matters. */
#define BENCODE_DEFAULT_DEPTH 32

struct bencode_node {
	uint8_t type;	  /* enum bencode_type */
	uint32_t next;	  /* index of next sibling, 0 = none */
	uint32_t child;	  /* first child (list/dict), 0 = none; dicts alternate key, value */
	uint32_t count;	  /* list items, or dict pairs */
	int64_t i;	  /* BENCODE_INT value */
	const uint8_t *s; /* BENCODE_STR bytes (not NUL-terminated) */
	size_t slen;
	const uint8_t *raw; /* the encoded form of this value in the input */
	size_t rawlen;
};

struct bencode_doc {
	struct bencode_node *nodes; /* caller-owned array; nodes[0] is the root */
	uint32_t cap;		    /* its size (>= 1) */
	uint32_t n;		    /* used by the last decode */
	unsigned int max_depth;	    /* 0 -> BENCODE_DEFAULT_DEPTH */
};

/*
 * Decode buf[0..len) into doc. flags: enum bencode_flags. consumed (may be
 * NULL) receives the length of the first value. Returns 0, -EINVAL (bad or
 * non-canonical syntax, truncation, trailing bytes), -E2BIG (more nodes than
 * doc->cap) or -ELOOP (too deep).
 */
int bencode_decode(struct bencode_doc *doc, const uint8_t *buf, size_t len, unsigned int flags,
		   size_t *consumed);

/* Root node of a decoded document. */
const struct bencode_node *bencode_root(const struct bencode_doc *doc);
/* Value for key in dict d (NULL if d is not a dict or the key is absent). */
const struct bencode_node *bencode_dict_get(const struct bencode_doc *doc,
					    const struct bencode_node *d, const char *key);
/* Same, with type check: NULL unless the value has the given type. */
const struct bencode_node *bencode_dict_get_type(const struct bencode_doc *doc,
						 const struct bencode_node *d, const char *key,
						 enum bencode_type type);
/* First child / next sibling (NULL at the end). */
const struct bencode_node *bencode_first(const struct bencode_doc *doc,
					 const struct bencode_node *n);
const struct bencode_node *bencode_next(const struct bencode_doc *doc,
					const struct bencode_node *n);

/*
 * Encoder into a fixed buffer. Writes past cap set err = -ENOBUFS and are
 * dropped; check err once at the end. Dictionary keys must be written in
 * sorted order by the caller (every weft encoder does; the strict decoder
 * checks it in tests).
 */
struct bencode_buf {
	uint8_t *p;
	size_t cap;
	size_t len;
	int err;
};

void bencode_buf_init(struct bencode_buf *b, uint8_t *p, size_t cap);
void bencode_put_int(struct bencode_buf *b, int64_t v);
void bencode_put_str(struct bencode_buf *b, const void *s, size_t len);
/* NUL-terminated string as a bencode string. */
void bencode_put_cstr(struct bencode_buf *b, const char *s);
/* Already-encoded bytes (a nested value). */
void bencode_put_raw(struct bencode_buf *b, const void *raw, size_t len);
void bencode_put_dict(struct bencode_buf *b); /* 'd' */
void bencode_put_list(struct bencode_buf *b); /* 'l' */
void bencode_put_end(struct bencode_buf *b);  /* 'e' */

#endif
