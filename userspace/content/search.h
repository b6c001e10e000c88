/* SPDX-License-Identifier: MIT */
/*
 * Local search over the items of followed shares (issue 31; docs/CONTENT.md
 * "Search"). search.c: terms (Unicode NFKC + case folding, libunistring),
 * the LMDB index and the query; it knows a store and manifests, not the
 * content node. search_api.c keeps it in step with the heads followed and
 * answers the control route.
 */
#ifndef WEFT_CONTENT_SEARCH_H
#define WEFT_CONTENT_SEARCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/manifest.h"

struct store;

/* Bytes of a term once normalised; a longer word is cut at a character
 * boundary (queries are cut the same way, so they still match). */
#define CN_SEARCH_TERM_MAX 48
/* Terms of one query; more is a 400. */
#define CN_SEARCH_QUERY_TERMS 8
/* Bytes of a query as sent. */
#define CN_SEARCH_QUERY_MAX 512
/* Distinct terms indexed per item (path words and type); the rest ignored. */
#define CN_SEARCH_ITEM_TERMS 64
/* Results per page: default and most. */
#define CN_SEARCH_PAGE_DEF 20
#define CN_SEARCH_PAGE_MAX 100
/* Index entries a page may read before it answers (with a cursor to go on
 * from): what bounds a query's cost whatever it asks. */
#define CN_SEARCH_SCAN_MAX 10000
/* Deadline of an index write's durable wait (ms): a share of 4,096 items
 * writes some 30,000 postings, whose commit on a loaded disk can pass the
 * store's default of 5 s (the write still commits; the wait would only
 * report a timeout). */
#define CN_SEARCH_WRITE_MS 30000
/* Room an index write must leave in the store's map: a share is indexed
 * only when, after the estimated cost of its items, at least 1 / DIV of
 * the map stays free (or on LMDB's free list). An item's cost estimate in
 * bytes, from the bytes of its path and type: its item record, and
 * postings of some 30 bytes of key each plus B-tree overhead at half-full
 * pages (measured: about 450 bytes an item for short paths). */
#define CN_SEARCH_ROOM_DIV 4
#define CN_SEARCH_ITEM_COST(pathtype) (4 * (96 + 2 * (uint64_t)(pathtype)))
/* A cursor: tier (1), share id (20), item index (4); written as hex. */
#define CN_SEARCH_CURSOR_LEN 25

/* Where a term was found in an item: the rank of a result. */
enum cn_search_tier {
	CN_TIER_NAME = 0, /* the item's file name */
	CN_TIER_PATH = 1, /* a folder of its path */
	CN_TIER_TYPE = 2, /* its media type */
	CN_TIERS = 3,
};

struct cn_term {
	uint8_t len;
	uint8_t tier;
	char t[CN_SEARCH_TERM_MAX];
};

/* Normalise text (NFKC, case folded, NFKC again) and split it into terms:
 * runs of letters, marks and digits. Appends to out[*n..cap) the terms not
 * already there (a term already there keeps the lower tier). 0, or
 * -EILSEQ when text is not UTF-8, -ENOMEM. Pure. */
int cn_search_terms(const char *text, size_t len, uint8_t tier, struct cn_term *out,
		    unsigned int *n, unsigned int cap);

struct cn_search;
/* Open (creating) the index's databases in st. */
int cn_search_open(struct store *st, struct cn_search **out);
void cn_search_free(struct cn_search *s);

/* The version of share sid indexed (seq), -ENOENT when none. */
int cn_search_indexed(struct cn_search *s, const uint8_t sid[MANIFEST_SHARE_ID_LEN],
		      uint64_t *seq);
/* Index the items of m, replacing what was indexed of its share; durable
 * when it returns (one write transaction). */
int cn_search_index(struct cn_search *s, const struct manifest *m);
/* Forget share sid; 0 also when it was not indexed. */
int cn_search_remove(struct cn_search *s, const uint8_t sid[MANIFEST_SHARE_ID_LEN]);
/* Whether the four databases agree: every share record well formed, the
 * item records and postings as many as the share records count, the
 * term counts summing to the postings. 0, -EBADMSG when they do not (a
 * database lost or edited: cn_search_clear, then index again), or a store
 * error. Reads each database once (the postings and items only counted);
 * the caller keeps writers out. */
int cn_search_check(struct cn_search *s);
/* Empty the index (one write transaction). */
int cn_search_clear(struct cn_search *s);
/* Call fn(arg, sid) for every share indexed (stops when fn returns >0). */
int cn_search_each(struct cn_search *s, int (*fn)(void *arg, const uint8_t *sid), void *arg);

struct cn_search_q {
	struct cn_term terms[CN_SEARCH_QUERY_TERMS];
	unsigned int nterms;
	int has_share;
	uint8_t share[MANIFEST_SHARE_ID_LEN];
	char type[MANIFEST_MAX_TYPE + 1]; /* "" any; "video" or "video/mp4" */
	int has_cursor;
	uint8_t cursor[CN_SEARCH_CURSOR_LEN];
	unsigned int limit; /* 1..CN_SEARCH_PAGE_MAX */
};

struct cn_search_page {
	json_t *results; /* array, filled */
	int has_next;
	uint8_t next[CN_SEARCH_CURSOR_LEN];
	unsigned int scanned;
	uint64_t matches_max; /* items holding the rarest term: a bound */
};

/* Parse a query's text into q->terms: -EINVAL none, -E2BIG too many,
 * -EILSEQ not UTF-8. */
int cn_search_parse(const char *text, struct cn_search_q *q);
/* One page of q, in order of the rarest term's tier, then share id, then
 * item; every term must be in the item. */
int cn_search_query(struct cn_search *s, const struct cn_search_q *q, struct cn_search_page *pg);

#endif
