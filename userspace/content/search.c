/* SPDX-License-Identifier: MIT */
/*
 * The search index (search.h; docs/CONTENT.md "Search"). Four LMDB
 * databases:
 *   content_search_shares  share id -> seq(8) nitems(4) nposts(4) key(32)
 *                          namelen(1) name (nitems, nposts: the item records
 *                          and postings written for it)
 *   content_search_items   share id, item index(4) -> content id(32) size(8)
 *                          typelen(1) type path
 *   content_search_terms   term, 0, tier(1), share id, item index ->
 *                          the item's term signature (8: item_sig)
 *   content_search_df      term -> items holding it (4)
 * Integers big-endian. A share is indexed and removed in one write
 * transaction of the store's writer, so the four always agree; what does
 * not (a database lost or edited) cn_search_check finds by counting.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include "content/search.h"
#include "weft/store.h"
#include "weft/util.h"

#define DB_SHARES "content_search_shares"
#define DB_ITEMS "content_search_items"
#define DB_TERMS "content_search_terms"
#define DB_DF "content_search_df"
#define SID MANIFEST_SHARE_ID_LEN
#define TKEY_MAX (CN_SEARCH_TERM_MAX + 1 + CN_SEARCH_CURSOR_LEN)
/* The share record: seq, nitems, nposts, key, name length, name. */
#define SH_ITEMS 8
#define SH_POSTS 12
#define SH_KEY 16
#define SH_NL 48
#define SH_NAME 49

static void put_be32(uint8_t *b, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

static uint32_t get_be32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void put_be64(uint8_t *b, uint64_t v)
{
	put_be32(b, (uint32_t)(v >> 32));
	put_be32(b + 4, (uint32_t)v);
}

static uint64_t get_be64(const void *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32((const uint8_t *)p + 4);
}

struct cn_search {
	struct store *st;
	unsigned int sh, it, tm, df;
};

/* A term's two bits of a 64-bit signature (a Bloom filter of k = 2, from
 * the term's FNV-1a hash). Every posting of an item carries its item's
 * signature, the OR of its terms' bits: a query reading one term's
 * postings skips, without another read, an item whose signature lacks a
 * bit of another term, and checks the rest in the postings (bits may be
 * set by other terms: about 7% pass for ten terms an item). */
#define SIG_LEN 8

static uint64_t term_bits(const struct cn_term *t)
{
	uint32_t h = 2166136261u;

	for (unsigned int i = 0; i < t->len; i++)
		h = (h ^ t->t[i]) * 16777619u;
	return (1ull << (h & 63)) | (1ull << ((h >> 6) & 63));
}

/* ------------------------------------------------------------ terms */

static int is_word(ucs4_t uc)
{
	return uc_is_general_category(uc, UC_LETTER) || uc_is_general_category(uc, UC_MARK) ||
	       uc_is_general_category(uc, UC_NUMBER);
}

static void add_term(const uint8_t *w, size_t wl, uint8_t tier, struct cn_term *out,
		     unsigned int *n, unsigned int cap)
{
	size_t cut = 0;

	/* cut at a character boundary */
	while (cut < wl) {
		int l = u8_mblen(w + cut, wl - cut);

		if (l <= 0 || cut + (size_t)l > CN_SEARCH_TERM_MAX)
			break;
		cut += (size_t)l;
	}
	if (!cut)
		return;
	for (unsigned int i = 0; i < *n; i++)
		if (out[i].len == cut && !memcmp(out[i].t, w, cut)) {
			if (tier < out[i].tier)
				out[i].tier = tier;
			return;
		}
	if (*n >= cap)
		return;
	out[*n].len = (uint8_t)cut;
	out[*n].tier = tier;
	memcpy(out[*n].t, w, cut);
	(*n)++;
}

int cn_search_terms(const char *text, size_t len, uint8_t tier, struct cn_term *out,
		    unsigned int *n, unsigned int cap)
{
	uint8_t *nf, *cf;
	size_t nl = 0, cl = 0, i = 0, start = 0;
	int inword = 0;

	if (u8_check((const uint8_t *)text, len))
		return -EILSEQ;
	if (!len)
		return 0;
	nf = u8_normalize(UNINORM_NFKC, (const uint8_t *)text, len, NULL, &nl);
	if (!nf)
		return -ENOMEM;
	cf = u8_casefold(nf, nl, NULL, UNINORM_NFKC, NULL, &cl);
	free(nf);
	if (!cf)
		return -ENOMEM;
	while (i <= cl) {
		ucs4_t uc = 0;
		int l = 1;

		if (i < cl)
			l = u8_mbtouc(&uc, cf + i, cl - i);
		if (i < cl && is_word(uc)) {
			if (!inword)
				start = i;
			inword = 1;
		} else if (inword) {
			add_term(cf + start, i - start, tier, out, n, cap);
			inword = 0;
		}
		i += (size_t)(l > 0 ? l : 1);
	}
	free(cf);
	return 0;
}

/* An item's terms: its file name's, its folders', its type's. */
static int item_terms(const char *path, const char *type, struct cn_term *out, unsigned int *n)
{
	const char *slash = strrchr(path, '/');
	int rc;

	*n = 0;
	rc = cn_search_terms(slash ? slash + 1 : path, strlen(slash ? slash + 1 : path),
			     CN_TIER_NAME, out, n, CN_SEARCH_ITEM_TERMS);
	if (!rc && slash)
		rc = cn_search_terms(path, (size_t)(slash - path), CN_TIER_PATH, out, n,
				     CN_SEARCH_ITEM_TERMS);
	if (!rc)
		rc = cn_search_terms(type, strlen(type), CN_TIER_TYPE, out, n,
				     CN_SEARCH_ITEM_TERMS);
	return rc;
}

int cn_search_parse(const char *text, struct cn_search_q *q)
{
	struct cn_term t[CN_SEARCH_QUERY_TERMS + 1];
	unsigned int n = 0;
	int rc;

	if (!text)
		return -EINVAL;
	if (strlen(text) > CN_SEARCH_QUERY_MAX)
		return -E2BIG;
	rc = cn_search_terms(text, strlen(text), 0, t, &n, CN_SEARCH_QUERY_TERMS + 1);
	if (rc)
		return rc;
	if (!n)
		return -EINVAL;
	if (n > CN_SEARCH_QUERY_TERMS)
		return -E2BIG;
	memcpy(q->terms, t, n * sizeof(t[0]));
	q->nterms = n;
	return 0;
}

/* ------------------------------------------------------------ index */

int cn_search_open(struct store *st, struct cn_search **out)
{
	struct cn_search *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
	s->st = st;
	rc = store_db(st, DB_SHARES, &s->sh);
	if (!rc)
		rc = store_db(st, DB_ITEMS, &s->it);
	if (!rc)
		rc = store_db(st, DB_TERMS, &s->tm);
	if (!rc)
		rc = store_db(st, DB_DF, &s->df);
	if (rc) {
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void cn_search_free(struct cn_search *s)
{
	free(s);
}

static size_t tkey(uint8_t *k, const struct cn_term *t, uint8_t tier, const uint8_t *sid,
		   uint32_t idx)
{
	memcpy(k, t->t, t->len);
	k[t->len] = 0;
	k[t->len + 1] = tier;
	memcpy(k + t->len + 2, sid, SID);
	put_be32(k + t->len + 2 + SID, idx);
	return t->len + 2 + SID + 4;
}

static int df_add(struct store_txn *txn, struct cn_search *s, const struct cn_term *t, int d)
{
	const void *v;
	size_t vl;
	uint8_t b[4];
	uint32_t c = 0;
	int rc = store_txn_get(txn, s->df, t->t, t->len, &v, &vl);

	if (rc == 0 && vl == 4)
		c = get_be32(v);
	else if (rc && rc != -ENOENT)
		return rc;
	if (d < 0 && c == 0)
		return 0;
	c = (uint32_t)((int64_t)c + d);
	if (!c)
		return store_txn_del(txn, s->df, t->t, t->len);
	put_be32(b, c);
	return store_txn_put(txn, s->df, t->t, t->len, b, 4);
}

/* The items of one share, read before they are deleted. */
struct old_items {
	const uint8_t *sid;
	struct old_item {
		uint32_t idx;
		char *type, *path;
	} *v;
	unsigned int n, cap;
};

static int decode_item(const void *val, size_t vl, const char **type, size_t *tl,
		       const char **path, size_t *pl)
{
	const uint8_t *p = val;

	if (vl < 41 || vl < 41 + (size_t)p[40])
		return -EBADMSG;
	*type = (const char *)p + 41;
	*tl = p[40];
	*path = (const char *)p + 41 + p[40];
	*pl = vl - 41 - p[40];
	return 0;
}

static int old_one(void *arg, const void *key, size_t klen, const void *val, size_t vl)
{
	struct old_items *o = arg;
	const char *type, *path;
	size_t tl, pl;

	if (klen != SID + 4 || memcmp(key, o->sid, SID))
		return 1;
	if (o->n == o->cap) {
		unsigned int nc = o->cap ? o->cap * 2 : 64;
		struct old_item *nv = realloc(o->v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		o->v = nv;
		o->cap = nc;
	}
	o->v[o->n].idx = get_be32((const uint8_t *)key + SID);
	if (decode_item(val, vl, &type, &tl, &path, &pl)) {
		o->v[o->n].type = strdup("");
		o->v[o->n].path = strdup("");
	} else {
		o->v[o->n].type = strndup(type, tl);
		o->v[o->n].path = strndup(path, pl);
	}
	if (!o->v[o->n].type || !o->v[o->n].path) {
		free(o->v[o->n].type);
		free(o->v[o->n].path);
		return -ENOMEM;
	}
	o->n++;
	return 0;
}

static void old_free(struct old_items *o)
{
	for (unsigned int i = 0; i < o->n; i++) {
		free(o->v[i].type);
		free(o->v[i].path);
	}
	free(o->v);
}

/* In a write transaction: delete every entry of share sid. */
static int remove_txn(struct store_txn *txn, struct cn_search *s, const uint8_t *sid)
{
	struct old_items o = {.sid = sid};
	struct cn_term t[CN_SEARCH_ITEM_TERMS];
	uint8_t k[TKEY_MAX], ik[SID + 4];
	unsigned int n;
	int rc;

	rc = store_txn_iter_from(txn, s->it, sid, SID, old_one, &o);
	if (rc < 0)
		goto out;
	rc = 0;
	for (unsigned int i = 0; i < o.n && !rc; i++) {
		/* what was indexed was valid UTF-8: a damaged record gives
		 * fewer terms, and its postings stay (found, then dropped by
		 * the query when the item record is gone) */
		if (item_terms(o.v[i].path, o.v[i].type, t, &n))
			n = 0;
		for (unsigned int j = 0; j < n && !rc; j++) {
			rc = store_txn_del(txn, s->tm, k, tkey(k, &t[j], t[j].tier, sid, o.v[i].idx));
			if (rc == 0)
				rc = df_add(txn, s, &t[j], -1);
			else if (rc == -ENOENT)
				rc = 0;
		}
		memcpy(ik, sid, SID);
		put_be32(ik + SID, o.v[i].idx);
		if (!rc) {
			rc = store_txn_del(txn, s->it, ik, sizeof(ik));
			rc = rc == -ENOENT ? 0 : rc;
		}
	}
	if (!rc) {
		rc = store_txn_del(txn, s->sh, sid, SID);
		rc = rc == -ENOENT ? 0 : rc;
	}
out:
	old_free(&o);
	return rc;
}

struct index_call {
	struct cn_search *s;
	const struct manifest *m;
	const uint8_t *sid;
};

static int index_fn(struct store_txn *txn, void *arg)
{
	struct index_call *c = arg;
	const struct manifest *m = c->m;
	struct cn_term t[CN_SEARCH_ITEM_TERMS];
	uint8_t k[TKEY_MAX], ik[SID + 4], rec[32 + 8 + 1 + MANIFEST_MAX_TYPE + MANIFEST_MAX_PATH];
	uint8_t sig[SIG_LEN];
	uint8_t sh[SH_NAME + MANIFEST_MAX_NAME];
	size_t nl = strlen(m->name), tl, pl;
	uint32_t nitems = 0, nposts = 0;
	unsigned int n;
	int rc = remove_txn(txn, c->s, c->sid);

	for (uint32_t i = 0; i < m->nitems && !rc; i++) {
		const struct manifest_item *it = &m->items[i];

		tl = strlen(it->type);
		pl = strlen(it->path);
		if (tl > MANIFEST_MAX_TYPE || pl > MANIFEST_MAX_PATH)
			continue;
		rc = item_terms(it->path, it->type, t, &n);
		if (rc == -EILSEQ) { /* not text: findable by nothing */
			rc = 0;
			continue;
		}
		{
			uint64_t bits = 0;

			for (unsigned int j = 0; j < n; j++)
				bits |= term_bits(&t[j]);
			put_be64(sig, bits);
		}
		for (unsigned int j = 0; j < n && !rc; j++) {
			rc = store_txn_put(txn, c->s->tm, k, tkey(k, &t[j], t[j].tier, c->sid, i),
					   sig, SIG_LEN);
			if (!rc)
				rc = df_add(txn, c->s, &t[j], 1);
			nposts++;
		}
		memcpy(rec, it->id, 32);
		put_be64(rec + 32, it->size);
		rec[40] = (uint8_t)tl;
		memcpy(rec + 41, it->type, tl);
		memcpy(rec + 41 + tl, it->path, pl);
		memcpy(ik, c->sid, SID);
		put_be32(ik + SID, i);
		if (!rc)
			rc = store_txn_put(txn, c->s->it, ik, sizeof(ik), rec, 41 + tl + pl);
		nitems++;
	}
	if (rc)
		return rc;
	put_be64(sh, m->seq);
	put_be32(sh + SH_ITEMS, nitems);
	put_be32(sh + SH_POSTS, nposts);
	memcpy(sh + SH_KEY, m->pk, 32);
	sh[SH_NL] = (uint8_t)nl;
	memcpy(sh + SH_NAME, m->name, nl);
	return store_txn_put(txn, c->s->sh, c->sid, SID, sh, SH_NAME + nl);
}

int cn_search_index(struct cn_search *s, const struct manifest *m)
{
	struct index_call c = {s, m, m->share_id};
	uint64_t room, map, need = 0;
	int rc;

	/* Derived data yields: an index that would leave less than a quarter
	 * of the map free is not written (-EDQUOT), so followed and own
	 * content, pins and downloads get the map's end, not the index. */
	for (uint32_t i = 0; i < m->nitems; i++)
		need += CN_SEARCH_ITEM_COST(strlen(m->items[i].path) + strlen(m->items[i].type));
	rc = store_room(s->st, &room, &map);
	if (rc)
		return rc;
	if (room < map / CN_SEARCH_ROOM_DIV + need)
		return -EDQUOT;
	return store_write_call(s->st, index_fn, &c, CN_SEARCH_WRITE_MS);
}

static int remove_fn(struct store_txn *txn, void *arg)
{
	struct index_call *c = arg;

	return remove_txn(txn, c->s, c->sid);
}

int cn_search_remove(struct cn_search *s, const uint8_t sid[MANIFEST_SHARE_ID_LEN])
{
	struct index_call c = {s, NULL, sid};

	return store_write_call(s->st, remove_fn, &c, CN_SEARCH_WRITE_MS);
}

int cn_search_indexed(struct cn_search *s, const uint8_t sid[MANIFEST_SHARE_ID_LEN],
		      uint64_t *seq)
{
	void *v = NULL;
	size_t vl = 0;
	int rc = store_get(s->st, s->sh, sid, SID, &v, &vl);

	if (rc)
		return rc;
	if (vl < SH_NAME || vl != SH_NAME + (size_t)((uint8_t *)v)[SH_NL]) {
		free(v);
		return -EBADMSG;
	}
	*seq = get_be64(v);
	free(v);
	return 0;
}

struct each_ctx {
	int (*fn)(void *arg, const uint8_t *sid);
	void *arg;
};

static int each_one(void *arg, const void *key, size_t klen, const void *val, size_t vl)
{
	struct each_ctx *e = arg;

	(void)val;
	(void)vl;
	return klen == SID ? e->fn(e->arg, key) : 0;
}

int cn_search_each(struct cn_search *s, int (*fn)(void *arg, const uint8_t *sid), void *arg)
{
	struct each_ctx e = {fn, arg};

	return store_iter(s->st, s->sh, each_one, &e);
}

/* What the share records say the other three hold, against what they do. */
struct check_ctx {
	uint64_t items, posts, df;
	int bad;
};

static int check_share(void *arg, const void *key, size_t klen, const void *val, size_t vl)
{
	struct check_ctx *c = arg;
	const uint8_t *v = val;

	(void)key;
	if (klen != SID || vl < SH_NAME || vl != SH_NAME + (size_t)v[SH_NL]) {
		c->bad = 1;
		return 1;
	}
	c->items += get_be32(v + SH_ITEMS);
	c->posts += get_be32(v + SH_POSTS);
	return 0;
}

static int check_df(void *arg, const void *key, size_t klen, const void *val, size_t vl)
{
	struct check_ctx *c = arg;

	(void)key;
	if (!klen || klen > CN_SEARCH_TERM_MAX || vl != 4 || !get_be32(val)) {
		c->bad = 1;
		return 1;
	}
	c->df += get_be32(val);
	return 0;
}

/* The first posting's value: an index written before postings carried
 * signatures has none (an index is rebuilt whole, so one tells). */
static int first_post(void *arg, const void *key, size_t klen, const void *val, size_t vl)
{
	(void)key;
	(void)klen;
	(void)val;
	*(int *)arg = vl == SIG_LEN ? 1 : -1;
	return 1;
}

int cn_search_check(struct cn_search *s)
{
	struct check_ctx c = {0};
	uint64_t items = 0, posts = 0;
	int fmt = 0;
	int rc = store_iter(s->st, s->sh, check_share, &c);

	if (rc >= 0 && !c.bad)
		rc = store_iter(s->st, s->df, check_df, &c);
	if (rc >= 0)
		rc = store_stat(s->st, s->it, &items);
	if (rc >= 0)
		rc = store_stat(s->st, s->tm, &posts);
	if (rc >= 0)
		rc = store_iter(s->st, s->tm, first_post, &fmt);
	if (rc < 0)
		return rc;
	if (c.bad || items != c.items || posts != c.posts || c.df != c.posts || fmt < 0)
		return -EBADMSG;
	return 0;
}

static int clear_fn(struct store_txn *txn, void *arg)
{
	struct cn_search *s = arg;
	int rc = store_txn_clear(txn, s->sh);

	if (!rc)
		rc = store_txn_clear(txn, s->it);
	if (!rc)
		rc = store_txn_clear(txn, s->tm);
	if (!rc)
		rc = store_txn_clear(txn, s->df);
	return rc;
}

int cn_search_clear(struct cn_search *s)
{
	return store_write_call(s->st, clear_fn, s, CN_SEARCH_WRITE_MS);
}

/* ------------------------------------------------------------ query */

struct qctx {
	struct cn_search *s;
	struct store_txn *txn;
	const struct cn_search_q *q;
	struct cn_search_page *pg;
	const struct cn_term *drv;
	/* the query's terms, and its type's: every one required (the type's
	 * are cheap to check in the postings before its record is read) */
	struct cn_term all[CN_SEARCH_QUERY_TERMS + 4];
	unsigned int nall;
	uint64_t want; /* the bits of every term but the driver's */
	int share_only; /* stop past q->share in tier */
	uint8_t tier;
	uint8_t last[CN_SEARCH_CURSOR_LEN];
	int full;
	int rc;
};

static int has_term(struct qctx *c, const struct cn_term *t, const uint8_t *sid, uint32_t idx)
{
	uint8_t k[TKEY_MAX];
	const void *v;
	size_t vl;

	for (uint8_t tier = 0; tier < CN_TIERS; tier++)
		if (store_txn_get(c->txn, c->s->tm, k, tkey(k, t, tier, sid, idx), &v, &vl) == 0)
			return 1;
	return 0;
}

static int type_ok(const char *want, const char *type, size_t tl)
{
	size_t wl = strlen(want);

	if (!wl)
		return 1;
	if (tl < wl || strncasecmp(type, want, wl))
		return 0;
	return tl == wl || (!strchr(want, '/') && type[wl] == '/');
}

static json_t *result_json(struct qctx *c, const uint8_t *sid, uint32_t idx, uint8_t tier)
{
	static const char *const tiers[CN_TIERS] = {"name", "path", "type"};
	uint8_t ik[SID + 4];
	const void *v, *sv;
	size_t vl, svl, tl, pl;
	const char *type, *path;
	char sidh[41], idh[65], pkh[65];
	int rc;

	memcpy(ik, sid, SID);
	put_be32(ik + SID, idx);
	rc = store_txn_get(c->txn, c->s->it, ik, sizeof(ik), &v, &vl);
	if (rc || decode_item(v, vl, &type, &tl, &path, &pl))
		return NULL;
	if (!type_ok(c->q->type, type, tl))
		return NULL;
	rc = store_txn_get(c->txn, c->s->sh, sid, SID, &sv, &svl);
	if (rc || svl < SH_NAME || svl < SH_NAME + (size_t)((const uint8_t *)sv)[SH_NL])
		return NULL;
	util_hex(sidh, sid, SID);
	util_hex(idh, v, 32);
	util_hex(pkh, (const uint8_t *)sv + SH_KEY, 32);
	return json_pack("{s:s,s:s%,s:s,s:I,s:s%,s:s%,s:I,s:s,s:s,s:i}", "share_id", sidh, "share",
			 (const char *)sv + SH_NAME, (size_t)((const uint8_t *)sv)[SH_NL], "key", pkh,
			 "seq", (json_int_t)get_be64(sv), "path", path, pl, "type", type, tl,
			 "size", (json_int_t)get_be64((const uint8_t *)v + 32), "id", idh,
			 "matched", tiers[tier], "item", (int)idx);
}

static int scan_one(void *arg, const void *key, size_t klen, const void *val, size_t vl)
{
	struct qctx *c = arg;
	const uint8_t *k = key;
	const struct cn_term *d = c->drv;
	const uint8_t *pos = k + d->len + 1; /* tier, sid, idx */
	const uint8_t *sid = pos + 1;
	uint32_t idx;
	json_t *r;

	if (klen != (size_t)d->len + 1 + CN_SEARCH_CURSOR_LEN || memcmp(k, d->t, d->len) ||
	    k[d->len] != 0)
		return 1; /* past the term */
	if (c->share_only && (pos[0] != c->tier || memcmp(sid, c->q->share, SID)))
		return 1; /* past the share, in this tier */
	if (c->pg->scanned >= CN_SEARCH_SCAN_MAX)
		return 1; /* bounded: the cursor says where to go on */
	c->pg->scanned++;
	memcpy(c->last, pos, CN_SEARCH_CURSOR_LEN);
	idx = get_be32(sid + SID);
	/* the item's signature lacks a bit of another term: it lacks the
	 * term (a posting without one, of an older index, is checked) */
	if (vl == SIG_LEN && (get_be64(val) & c->want) != c->want)
		return 0;
	for (unsigned int i = 0; i < c->nall; i++)
		if (&c->all[i] != d && !has_term(c, &c->all[i], sid, idx))
			return 0;
	r = result_json(c, sid, idx, pos[0]);
	if (!r)
		return 0;
	json_array_append_new(c->pg->results, r);
	if (json_array_size(c->pg->results) >= c->q->limit) {
		c->full = 1;
		return 1;
	}
	return 0;
}

static uint32_t df_get(struct store_txn *txn, struct cn_search *s, const struct cn_term *t)
{
	const void *v;
	size_t vl;

	if (store_txn_get(txn, s->df, t->t, t->len, &v, &vl) || vl != 4)
		return 0;
	return get_be32(v);
}

int cn_search_query(struct cn_search *s, const struct cn_search_q *q, struct cn_search_page *pg)
{
	struct qctx c = {.s = s, .q = q, .pg = pg};
	uint8_t k[TKEY_MAX + 1];
	size_t kl;
	uint32_t best = UINT32_MAX;
	int rc;

	pg->has_next = 0;
	pg->scanned = 0;
	pg->matches_max = 0;
	if (!q->nterms || q->nterms > CN_SEARCH_QUERY_TERMS || !q->limit ||
	    q->limit > CN_SEARCH_PAGE_MAX)
		return -EINVAL;
	memcpy(c.all, q->terms, q->nterms * sizeof(q->terms[0]));
	c.nall = q->nterms;
	if (q->type[0] && cn_search_terms(q->type, strlen(q->type), CN_TIER_TYPE, c.all, &c.nall,
					  CN_SEARCH_QUERY_TERMS + 4))
		return -EINVAL;
	rc = store_txn_begin(s->st, 1, &c.txn);
	if (rc)
		return rc;
	for (unsigned int i = 0; i < c.nall; i++) {
		uint32_t n = df_get(c.txn, s, &c.all[i]);

		if (n < best) {
			best = n;
			c.drv = &c.all[i];
		}
	}
	pg->matches_max = best;
	if (!best)
		goto done;
	for (unsigned int i = 0; i < c.nall; i++)
		if (&c.all[i] != c.drv)
			c.want |= term_bits(&c.all[i]);
	memcpy(k, c.drv->t, c.drv->len);
	k[c.drv->len] = 0;
	memset(c.last, 0, sizeof(c.last));
	if (q->has_cursor)
		memcpy(c.last, q->cursor, CN_SEARCH_CURSOR_LEN);
	/* one range per tier with a share, else one range over all */
	for (uint8_t tier = q->has_cursor ? q->cursor[0] : 0; tier < CN_TIERS && !c.full; tier++) {
		uint8_t *pos = k + c.drv->len + 1;

		kl = c.drv->len + 1;
		if (q->has_share) {
			pos[0] = tier;
			memcpy(pos + 1, q->share, SID);
			kl += 1 + SID;
			c.share_only = 1;
			c.tier = tier;
			if (q->has_cursor && tier == q->cursor[0] &&
			    !memcmp(q->cursor + 1, q->share, SID)) {
				memcpy(pos, q->cursor, CN_SEARCH_CURSOR_LEN);
				k[c.drv->len + 1 + CN_SEARCH_CURSOR_LEN] = 0; /* strictly after */
				kl = c.drv->len + 2 + CN_SEARCH_CURSOR_LEN;
			} else if (q->has_cursor && tier == q->cursor[0] &&
				   memcmp(q->cursor + 1, q->share, SID) > 0) {
				continue;
			}
		} else if (q->has_cursor) {
			memcpy(pos, q->cursor, CN_SEARCH_CURSOR_LEN);
			k[c.drv->len + 1 + CN_SEARCH_CURSOR_LEN] = 0;
			kl = c.drv->len + 2 + CN_SEARCH_CURSOR_LEN;
		}
		rc = store_txn_iter_from(c.txn, s->tm, k, kl, scan_one, &c);
		if (rc < 0)
			goto done;
		rc = 0;
		if (pg->scanned >= CN_SEARCH_SCAN_MAX && !c.full) {
			/* stopped by the bound: go on from the last entry read */
			pg->has_next = 1;
			memcpy(pg->next, c.last, CN_SEARCH_CURSOR_LEN);
			goto done;
		}
		if (!q->has_share)
			break;
	}
	if (c.full) {
		pg->has_next = 1;
		memcpy(pg->next, c.last, CN_SEARCH_CURSOR_LEN);
	}
done:
	store_txn_abort(c.txn);
	return rc;
}
