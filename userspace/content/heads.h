/* SPDX-License-Identifier: MIT */
/*
 * Share heads (BEP 46) without I/O (heads.c): what names a followed share
 * (a publisher key and a share name, written KEY/NAME or as a BEP 46
 * magnet link), the head's value, and the head record kept in the store.
 * docs/CONTENT.md, "Share heads and subscriptions". Parsers take hostile
 * input and are table-tested by tests/unit/test_content_heads.c.
 */
#ifndef WEFT_CONTENT_HEADS_H
#define WEFT_CONTENT_HEADS_H

#include <stddef.h>
#include <stdint.h>

#include "weft/dht.h"
#include "weft/manifest.h"

/* A share head's address: the publisher's node key and the share name.
 * The BEP 44 salt is the name's bytes, unchanged (1..64 bytes: a share
 * name's bound is BEP 44's salt bound), so a libtorrent user reads a
 * head with dht_get_item(key, name). */
struct cn_head_ref {
	uint8_t pk[32];
	char name[MANIFEST_MAX_NAME + 1]; /* NUL-terminated; the salt */
	size_t name_len;
};

/* Parse "KEY/NAME" (64 hex, '/', a valid share name) or a BEP 46 magnet
 * "magnet:?xs=urn:btpk:<64 hex>&s=<salt hex>" (exactly those two
 * parameters, once each, in either order). *why gets a message for the
 * user on failure. Returns 0, -EINVAL (malformed, or a salt that is not a
 * share name) or -E2BIG (a salt over 64 bytes, BEP 44's bound). */
int cn_head_parse(const char *s, struct cn_head_ref *r, const char **why);
/* "magnet:?xs=urn:btpk:<key hex>&s=<salt hex>" into out (cap >= 226). */
int cn_head_link(const struct cn_head_ref *r, char *out, size_t cap);
/* "KEY/NAME" into out (cap >= 130). */
int cn_head_text(const struct cn_head_ref *r, char *out, size_t cap);

/* The head's value: d2:ih20:<share id>2:mh32:<manifest digest>e. "ih" is
 * BEP 46's key (here the 20-byte share id, what providers announce);
 * "mh" (weft's, ignored by BEP 46 readers) is manifest_digest() of the
 * version. Returns the length or -ENOBUFS. */
int cn_head_value(const uint8_t sid[MANIFEST_SHARE_ID_LEN], const uint8_t mh[32], uint8_t *out,
		  size_t cap);
/* Read a head value (bencoded, from anyone): a dictionary with "ih", a
 * 20-byte string; "mh" when present must be 32 bytes (*has_mh); other
 * keys are ignored (BEP 46). Returns 0 or -EINVAL. */
int cn_head_value_read(const uint8_t *v, size_t len, uint8_t sid[MANIFEST_SHARE_ID_LEN],
		       uint8_t mh[32], int *has_mh);

/* Head records (database content_heads, key = pk || name). */
enum cn_head_flags {
	CN_HEAD_OWN = 1U << 0, /* we publish it (content add --name) */
	CN_HEAD_SUB = 1U << 1, /* we follow it (content subscribe) */
	CN_HEAD_BLOCK = 1U << 2, /* a blocklist (content subscribe --blocklist) */
};
struct cn_head_rec {
	uint32_t flags;	 /* enum cn_head_flags */
	int64_t seq;	 /* newest signed head known, -1 none */
	int64_t got;	 /* seq of the version fetched in full, -1 none */
	uint64_t added;	 /* wall-clock seconds */
	uint8_t sig[64]; /* the head's signature (seq >= 0) */
	uint16_t vlen;
	uint8_t v[DHT_MAX_VALUE]; /* the head's bencoded value */
};
/* Heads followed or published at once: 256 (a poll round is one DHT get
 * and one refresh put each). Subscribing past it is a 507. */
#define CONTENT_MAX_HEADS 256
#define CN_HEAD_REC_HDR 98 /* bytes before the value */
/* Encode rec into out (cap >= CN_HEAD_REC_HDR + rec->vlen): its length. */
size_t cn_head_rec_encode(const struct cn_head_rec *rec, uint8_t *out);
/* Decode a record read from the store for the head key ref: lengths,
 * magic, flags, and the signature of its item. 0 or -EBADMSG. */
int cn_head_rec_decode(const struct cn_head_ref *ref, const uint8_t *buf, size_t len,
		       struct cn_head_rec *rec);

#endif
