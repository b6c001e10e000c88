// SPDX-License-Identifier: MIT
/*
 * Signed share manifests: builder, canonical bencode encoder, strict
 * decoder and signature check. Layout in docs/CONTENT.md.
 *
 * The decoder parses with the strict bencode decoder (sorted, unique keys,
 * canonical integers), checks every field and bound, then re-encodes the
 * decoded value and requires the input to be byte-identical: whatever slips
 * past the field checks cannot slip past that.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/bencode.h"
#include "weft/blake3.h"
#include "weft/manifest.h"
#include "weft/seal.h"

static const char sign_ctx[] = "weft-manifest-v1";
static const char sid_ctx[] = "weft share id v1";

/* Fields of the top-level dictionary, and of an item. */
#define TOP_KEYS 9
#define ITEM_KEYS 4
/* Nodes a valid manifest can need: root + 2 per top-level pair + list +
 * per item a dict and 2 per pair. */
#define SEAL_KEYS 3 /* epk, keys, meta: all or none */
#define MAX_NODES (1 + 2 * (TOP_KEYS + 3 + SEAL_KEYS) + MANIFEST_MAX_ITEMS * (1 + 2 * ITEM_KEYS))

void manifest_init(struct manifest *m)
{
	memset(m, 0, sizeof(*m));
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	for (uint32_t i = 0; i < m->nitems; i++) {
		free(m->items[i].path);
		free(m->items[i].type);
	}
	free(m->items);
	free(m->keys);
	free(m->meta);
	manifest_init(m);
}

void manifest_sealed_path(uint32_t i, char buf[5])
{
	snprintf(buf, 5, "%04u", i % 10000u);
}

int manifest_set_sealed(struct manifest *m, const uint8_t epk[32], const uint8_t *keys,
			uint32_t nkeys, const uint8_t *meta, size_t meta_len)
{
	uint8_t *k, *mt;

	if (!m || !epk || !keys || !meta)
		return -EINVAL;
	if (nkeys > MANIFEST_MAX_KEYS || meta_len > MANIFEST_MAX_META)
		return -E2BIG;
	if (!nkeys || !meta_len)
		return -EINVAL;
	k = malloc((size_t)nkeys * MANIFEST_KEY_LEN);
	mt = malloc(meta_len);
	if (!k || !mt) {
		free(k);
		free(mt);
		return -ENOMEM;
	}
	memcpy(k, keys, (size_t)nkeys * MANIFEST_KEY_LEN);
	memcpy(mt, meta, meta_len);
	free(m->keys);
	free(m->meta);
	m->keys = k;
	m->nkeys = nkeys;
	m->meta = mt;
	m->meta_len = (uint32_t)meta_len;
	memcpy(m->epk, epk, 32);
	m->sealed = 1;
	m->visibility = MANIFEST_PRIVATE;
	m->is_signed = 0;
	return 0;
}

/*
 * Valid UTF-8 (RFC 3629: shortest form, no surrogates, <= U+10FFFF) with no
 * C0 control, DEL or NUL. Returns 1 if valid.
 */
static int utf8_clean(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		uint32_t cp;
		size_t n;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i <= n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
			return 0; /* overlong, out of range, surrogate, C1 control */
		i += n + 1;
	}
	return 1;
}

int manifest_path_valid(const char *path, size_t len)
{
	const uint8_t *p = (const uint8_t *)path;
	size_t start = 0;

	if (!path || len == 0 || len > MANIFEST_MAX_PATH || !utf8_clean(p, len))
		return 0;
	for (size_t i = 0; i <= len; i++) {
		size_t clen;

		if (i < len && p[i] == '\\')
			return 0;
		if (i < len && p[i] != '/')
			continue;
		clen = i - start;
		if (clen == 0 || clen > MANIFEST_MAX_COMPONENT)
			return 0; /* leading, trailing or doubled '/' */
		if ((clen == 1 && p[start] == '.') ||
		    (clen == 2 && p[start] == '.' && p[start + 1] == '.'))
			return 0;
		start = i + 1;
	}
	return 1;
}

static int restricted_char(uint8_t c, int first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return !first && c && strchr("!#$&-^_.+", c) != NULL;
}

int manifest_type_valid(const char *type, size_t len)
{
	int slash = 0, first = 1;

	if (!type || len < 3 || len > MANIFEST_MAX_TYPE)
		return 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = (uint8_t)type[i];

		if (c == '/') {
			if (slash++ || first)
				return 0;
			first = 1;
			continue;
		}
		if (!restricted_char(c, first))
			return 0;
		first = 0;
	}
	return slash == 1 && !first;
}

static int name_valid(const char *name, size_t len)
{
	return name && len >= 1 && len <= MANIFEST_MAX_NAME &&
	       utf8_clean((const uint8_t *)name, len);
}

int manifest_set_name(struct manifest *m, const char *name, size_t len)
{
	if (!m || !name_valid(name, len))
		return -EINVAL;
	memcpy(m->name, name, len);
	m->name[len] = '\0';
	m->is_signed = 0;
	return 0;
}

static char *dup_n(const void *s, size_t len)
{
	char *p = malloc(len + 1);

	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

/* Append without the duplicate check (decoder: order checked there). */
static int push_item(struct manifest *m, const char *path, size_t plen, const uint8_t id[32],
		     uint64_t size, const char *type, size_t tlen)
{
	struct manifest_item *it;

	if (m->nitems >= MANIFEST_MAX_ITEMS)
		return -E2BIG;
	if (m->nitems == m->cap) {
		uint32_t cap = m->cap ? m->cap * 2 : 16;
		void *p;

		if (cap > MANIFEST_MAX_ITEMS)
			cap = MANIFEST_MAX_ITEMS;
		p = realloc(m->items, cap * sizeof(*m->items));
		if (!p)
			return -ENOMEM;
		m->items = p;
		m->cap = cap;
	}
	it = &m->items[m->nitems];
	it->path = dup_n(path, plen);
	it->type = dup_n(type, tlen);
	if (!it->path || !it->type) {
		free(it->path);
		free(it->type);
		return -ENOMEM;
	}
	memcpy(it->id, id, 32);
	it->size = size;
	m->nitems++;
	return 0;
}

int manifest_add_item(struct manifest *m, const char *path, size_t path_len,
		      const uint8_t id[32], uint64_t size, const char *type)
{
	size_t tlen = type ? strlen(type) : 0;

	if (!m || !id || !manifest_path_valid(path, path_len) || !manifest_type_valid(type, tlen) ||
	    size > INT64_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < m->nitems; i++) {
		if (strlen(m->items[i].path) == path_len && !memcmp(m->items[i].path, path, path_len))
			return -EEXIST;
	}
	m->is_signed = 0;
	return push_item(m, path, path_len, id, size, type, tlen);
}

int manifest_share_id(const uint8_t pk[IDENTITY_PK_LEN], const char *name, size_t name_len,
		      uint8_t out[MANIFEST_SHARE_ID_LEN])
{
	struct blake3_hasher h;

	if (!pk || !out || (name_len && !name) || name_len > MANIFEST_MAX_NAME)
		return -EINVAL;
	blake3_hasher_init_derive_key(&h, sid_ctx, sizeof(sid_ctx) - 1);
	blake3_hasher_update(&h, pk, IDENTITY_PK_LEN);
	blake3_hasher_update(&h, name, name_len);
	blake3_hasher_finalize(&h, out, MANIFEST_SHARE_ID_LEN);
	return 0;
}

/*
 * A sealed manifest shows sizes only: private, 1..500 wrapped keys whose
 * hints ascend strictly (seal_wrap's canonical order: one encoding per
 * recipient set), sealed metadata at least its overhead, and items that
 * are the ciphertext blobs in index order under placeholder paths with the
 * one neutral type and a size some plaintext encrypts to.
 */
static int sealed_valid(const struct manifest *m)
{
	char p[5];

	if (m->visibility != MANIFEST_PRIVATE || !m->nkeys || m->nkeys > MANIFEST_MAX_KEYS ||
	    !m->keys || m->meta_len <= SEAL_META_OVERHEAD || m->meta_len > MANIFEST_MAX_META ||
	    !m->meta)
		return 0;
	for (uint32_t i = 1; i < m->nkeys; i++)
		if (memcmp(m->keys + (size_t)(i - 1) * MANIFEST_KEY_LEN,
			   m->keys + (size_t)i * MANIFEST_KEY_LEN, SEAL_HINT_LEN) >= 0)
			return 0;
	for (uint32_t i = 0; i < m->nitems; i++) {
		manifest_sealed_path(i, p);
		if (strcmp(m->items[i].path, p) || strcmp(m->items[i].type, MANIFEST_SEALED_TYPE) ||
		    seal_plain_size(m->items[i].size) < 0)
			return 0;
	}
	return 1;
}

/* Fields every encoder and the decoder agree on. */
static int fields_valid(const struct manifest *m)
{
	if (!name_valid(m->name, strlen(m->name)) || m->seq > INT64_MAX ||
	    m->created > INT64_MAX || m->visibility > MANIFEST_PRIVATE ||
	    m->nitems > MANIFEST_MAX_ITEMS)
		return 0;
	if (m->has_prev && m->prev_seq >= m->seq)
		return 0; /* a predecessor at or after this version: a loop */
	if (m->withdraw > m->seq)
		return 0; /* withdraws only versions before this one */
	if (m->sealed && !sealed_valid(m))
		return 0;
	return 1;
}

/* Bencode of m; with_sig selects the full form or the signed message. */
static void encode(const struct manifest *m, int with_sig, struct bencode_buf *b)
{
	bencode_put_dict(b);
	bencode_put_cstr(b, "created");
	bencode_put_int(b, (int64_t)m->created);
	if (m->sealed) {
		bencode_put_cstr(b, "epk");
		bencode_put_str(b, m->epk, 32);
	}
	bencode_put_cstr(b, "items");
	bencode_put_list(b);
	for (uint32_t i = 0; i < m->nitems; i++) {
		const struct manifest_item *it = &m->items[i];

		bencode_put_dict(b);
		bencode_put_cstr(b, "id");
		bencode_put_str(b, it->id, 32);
		bencode_put_cstr(b, "path");
		bencode_put_cstr(b, it->path);
		bencode_put_cstr(b, "size");
		bencode_put_int(b, (int64_t)it->size);
		bencode_put_cstr(b, "type");
		bencode_put_cstr(b, it->type);
		bencode_put_end(b);
	}
	bencode_put_end(b);
	if (m->sealed) {
		bencode_put_cstr(b, "keys");
		bencode_put_str(b, m->keys, (size_t)m->nkeys * MANIFEST_KEY_LEN);
		bencode_put_cstr(b, "meta");
		bencode_put_str(b, m->meta, m->meta_len);
	}
	bencode_put_cstr(b, "name");
	bencode_put_cstr(b, m->name);
	bencode_put_cstr(b, "pk");
	bencode_put_str(b, m->pk, IDENTITY_PK_LEN);
	if (m->has_prev) {
		bencode_put_cstr(b, "prev");
		bencode_put_str(b, m->prev, 32);
		bencode_put_cstr(b, "pseq");
		bencode_put_int(b, (int64_t)m->prev_seq);
	}
	bencode_put_cstr(b, "seq");
	bencode_put_int(b, (int64_t)m->seq);
	bencode_put_cstr(b, "sid");
	bencode_put_str(b, m->share_id, MANIFEST_SHARE_ID_LEN);
	if (with_sig) {
		bencode_put_cstr(b, "sig");
		bencode_put_str(b, m->sig, IDENTITY_SIG_LEN);
	}
	bencode_put_cstr(b, "v");
	bencode_put_int(b, MANIFEST_VERSION);
	bencode_put_cstr(b, "vis");
	bencode_put_int(b, m->visibility);
	if (m->withdraw) {
		bencode_put_cstr(b, "wd");
		bencode_put_int(b, (int64_t)m->withdraw);
	}
	bencode_put_end(b);
}

/* The signed message: context string || encoding without "sig" (malloc'd). */
static int signed_message(const struct manifest *m, uint8_t **msg, size_t *len)
{
	size_t pre = sizeof(sign_ctx) - 1;
	struct bencode_buf b;
	uint8_t *p = malloc(MANIFEST_MAX_SIZE);

	if (!p)
		return -ENOMEM;
	memcpy(p, sign_ctx, pre);
	bencode_buf_init(&b, p + pre, MANIFEST_MAX_SIZE - pre);
	encode(m, 0, &b);
	if (b.err) {
		free(p);
		return -E2BIG;
	}
	*msg = p;
	*len = pre + b.len;
	return 0;
}

static int item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct manifest_item *)a)->path,
		      ((const struct manifest_item *)b)->path);
}

int manifest_sign(struct manifest *m, const struct identity *idn)
{
	uint8_t *msg;
	size_t len;
	int err;

	if (!m || !idn || !fields_valid(m))
		return -EINVAL;
	memcpy(m->pk, idn->pk, IDENTITY_PK_LEN);
	err = manifest_share_id(m->pk, m->name, strlen(m->name), m->share_id);
	if (err)
		return err;
	if (m->nitems > 1)
		qsort(m->items, m->nitems, sizeof(*m->items), item_cmp);
	for (uint32_t i = 1; i < m->nitems; i++) {
		if (!strcmp(m->items[i - 1].path, m->items[i].path))
			return -EEXIST;
	}
	err = signed_message(m, &msg, &len);
	if (err)
		return err;
	/* The full form is 5 + 64 bytes longer ("3:sig64:" + signature). */
	if (len - (sizeof(sign_ctx) - 1) + 8 + IDENTITY_SIG_LEN > MANIFEST_MAX_SIZE) {
		free(msg);
		return -E2BIG;
	}
	identity_sign(idn, msg, len, m->sig);
	free(msg);
	m->is_signed = 1;
	return 0;
}

int manifest_encode(const struct manifest *m, uint8_t *buf, size_t cap, size_t *len)
{
	struct bencode_buf b;

	if (!m || !buf || !len || !m->is_signed || !fields_valid(m))
		return -EINVAL;
	bencode_buf_init(&b, buf, cap);
	encode(m, 1, &b);
	if (b.err)
		return cap >= MANIFEST_MAX_SIZE ? -E2BIG : -ENOBUFS;
	if (b.len > MANIFEST_MAX_SIZE)
		return -E2BIG;
	*len = b.len;
	return 0;
}

/* ---- decoder ---- */

static const struct bencode_node *get(const struct bencode_doc *d, const struct bencode_node *n,
				      const char *key, enum bencode_type type)
{
	return bencode_dict_get_type(d, n, key, type);
}

static int get_str(const struct bencode_doc *d, const struct bencode_node *n, const char *key,
		   size_t min, size_t max, const uint8_t **s, size_t *len)
{
	const struct bencode_node *v = get(d, n, key, BENCODE_STR);

	if (!v || v->slen < min || v->slen > max)
		return -EINVAL;
	*s = v->s;
	*len = v->slen;
	return 0;
}

static int get_uint(const struct bencode_doc *d, const struct bencode_node *n, const char *key,
		    uint64_t max, uint64_t *out)
{
	const struct bencode_node *v = get(d, n, key, BENCODE_INT);

	if (!v || v->i < 0 || (uint64_t)v->i > max)
		return -EINVAL;
	*out = (uint64_t)v->i;
	return 0;
}

static int decode_item(struct manifest *m, const struct bencode_doc *d,
		       const struct bencode_node *n)
{
	const uint8_t *id, *path, *type;
	size_t idl, pl, tl;
	uint64_t size;
	int err;

	if (n->type != BENCODE_DICT || n->count != ITEM_KEYS)
		return -EINVAL;
	if ((err = get_str(d, n, "id", 32, 32, &id, &idl)) ||
	    (err = get_str(d, n, "path", 1, MANIFEST_MAX_PATH, &path, &pl)) ||
	    (err = get_uint(d, n, "size", INT64_MAX, &size)) ||
	    (err = get_str(d, n, "type", 3, MANIFEST_MAX_TYPE, &type, &tl)))
		return err;
	if (!manifest_path_valid((const char *)path, pl) ||
	    !manifest_type_valid((const char *)type, tl))
		return -EINVAL;
	/* Strictly ascending paths: sorted and unique. */
	if (m->nitems) {
		const char *prev = m->items[m->nitems - 1].path;
		size_t prevl = strlen(prev), k = prevl < pl ? prevl : pl;
		int c = memcmp(prev, path, k);

		if (c > 0 || (c == 0 && prevl >= pl))
			return -EINVAL;
	}
	return push_item(m, (const char *)path, pl, id, size, (const char *)type, tl);
}

/* epk, keys, meta of a sealed manifest; the key count is bounded before
 * anything is copied (a reader's crypto work follows from it). */
static int decode_sealed(struct manifest *m, const struct bencode_doc *d,
			 const struct bencode_node *root)
{
	const uint8_t *epk, *keys, *meta;
	size_t el, kl, ml;
	int err;

	if ((err = get_str(d, root, "epk", 32, 32, &epk, &el)))
		return err;
	if (!get(d, root, "keys", BENCODE_STR) || !get(d, root, "meta", BENCODE_STR))
		return -EINVAL;
	if (get(d, root, "keys", BENCODE_STR)->slen > (size_t)MANIFEST_MAX_KEYS * MANIFEST_KEY_LEN ||
	    get(d, root, "meta", BENCODE_STR)->slen > MANIFEST_MAX_META)
		return -E2BIG;
	if ((err = get_str(d, root, "keys", MANIFEST_KEY_LEN,
			   (size_t)MANIFEST_MAX_KEYS * MANIFEST_KEY_LEN, &keys, &kl)) ||
	    (err = get_str(d, root, "meta", SEAL_META_OVERHEAD + 1, MANIFEST_MAX_META, &meta, &ml)))
		return err;
	if (kl % MANIFEST_KEY_LEN)
		return -EINVAL;
	return manifest_set_sealed(m, epk, keys, (uint32_t)(kl / MANIFEST_KEY_LEN), meta, ml);
}

static int decode_fields(struct manifest *m, const struct bencode_doc *d)
{
	const struct bencode_node *root = bencode_root(d), *items, *it;
	const uint8_t *s;
	size_t sl;
	uint64_t v, vis;
	uint8_t sid[MANIFEST_SHARE_ID_LEN];
	int err;

	size_t extra;

	if (!root || root->type != BENCODE_DICT || root->count < TOP_KEYS)
		return -EINVAL;
	extra = root->count - TOP_KEYS;
	/* Optional keys: the predecessor link (prev, pseq), the seal (epk,
	 * keys, meta), the withdrawal (wd); each group all or none, nothing
	 * else. */
	{
		size_t want = (bencode_dict_get(d, root, "prev") ? 2 : 0) +
			      (bencode_dict_get(d, root, "epk") ? SEAL_KEYS : 0) +
			      (bencode_dict_get(d, root, "wd") ? 1 : 0);

		if (extra != want)
			return -EINVAL;
	}
	if ((err = get_uint(d, root, "v", MANIFEST_VERSION, &v)) || v != MANIFEST_VERSION)
		return -EINVAL;
	if ((err = get_uint(d, root, "created", INT64_MAX, &m->created)) ||
	    (err = get_uint(d, root, "seq", INT64_MAX, &m->seq)) ||
	    (err = get_uint(d, root, "vis", MANIFEST_PRIVATE, &vis)))
		return err;
	m->visibility = (uint32_t)vis;
	if (bencode_dict_get(d, root, "epk") && (err = decode_sealed(m, d, root)))
		return err;
	if (bencode_dict_get(d, root, "prev")) {
		/* both predecessor keys or neither; the link must point back */
		if ((err = get_str(d, root, "prev", 32, 32, &s, &sl)) ||
		    (err = get_uint(d, root, "pseq", INT64_MAX, &m->prev_seq)))
			return err;
		if (m->prev_seq >= m->seq)
			return -ELOOP;
		memcpy(m->prev, s, 32);
		m->has_prev = 1;
	}
	if (bencode_dict_get(d, root, "wd")) {
		/* 1..seq: the versions below it are withdrawn */
		if ((err = get_uint(d, root, "wd", INT64_MAX, &m->withdraw)))
			return err;
		if (!m->withdraw || m->withdraw > m->seq)
			return -EINVAL;
	}
	if ((err = get_str(d, root, "name", 1, MANIFEST_MAX_NAME, &s, &sl)))
		return err;
	if (!name_valid((const char *)s, sl))
		return -EINVAL;
	memcpy(m->name, s, sl);
	m->name[sl] = '\0';
	if ((err = get_str(d, root, "pk", IDENTITY_PK_LEN, IDENTITY_PK_LEN, &s, &sl)))
		return err;
	memcpy(m->pk, s, sl);
	if ((err = get_str(d, root, "sid", MANIFEST_SHARE_ID_LEN, MANIFEST_SHARE_ID_LEN, &s, &sl)))
		return err;
	memcpy(m->share_id, s, sl);
	manifest_share_id(m->pk, m->name, strlen(m->name), sid);
	if (memcmp(sid, m->share_id, MANIFEST_SHARE_ID_LEN))
		return -EINVAL;
	if ((err = get_str(d, root, "sig", IDENTITY_SIG_LEN, IDENTITY_SIG_LEN, &s, &sl)))
		return err;
	memcpy(m->sig, s, sl);
	items = get(d, root, "items", BENCODE_LIST);
	if (!items)
		return -EINVAL;
	if (items->count > MANIFEST_MAX_ITEMS)
		return -E2BIG;
	for (it = bencode_first(d, items); it; it = bencode_next(d, it)) {
		if ((err = decode_item(m, d, it)))
			return err;
	}
	if (m->nitems != items->count)
		return -EINVAL;
	return m->sealed && !sealed_valid(m) ? -EINVAL : 0;
}

int manifest_decode(struct manifest *m, const uint8_t *buf, size_t len)
{
	struct bencode_doc d = { 0 };
	uint8_t *re = NULL, *msg = NULL;
	size_t relen, msglen, cap;
	int err;

	if (!m || (!buf && len))
		return -EINVAL;
	manifest_init(m);
	if (len > MANIFEST_MAX_SIZE)
		return -E2BIG;
	/* Every bencode value takes at least 2 input bytes. */
	cap = len / 2 + 2;
	if (cap > MAX_NODES + 1) /* + node 0, reserved by the decoder */
		cap = MAX_NODES + 1;
	d.nodes = calloc(cap, sizeof(*d.nodes));
	if (!d.nodes)
		return -ENOMEM;
	d.cap = (uint32_t)cap;
	d.max_depth = 3; /* containers: dict > list > dict */
	err = bencode_decode(&d, buf, len, BENCODE_STRICT, NULL);
	if (err == -ELOOP)
		err = -EINVAL;
	if (err)
		goto out;
	if ((err = decode_fields(m, &d)))
		goto out; /* -ELOOP stays: a predecessor link that loops */
	/* Canonical: the input must be exactly our encoding of what it says. */
	re = malloc(len);
	if (!re) {
		err = -ENOMEM;
		goto out;
	}
	m->is_signed = 1;
	err = manifest_encode(m, re, len, &relen);
	if (err || relen != len || memcmp(re, buf, len)) {
		err = err == -ENOMEM ? err : -EINVAL;
		goto out;
	}
	if ((err = signed_message(m, &msg, &msglen)))
		goto out;
	err = identity_verify(m->pk, msg, msglen, m->sig);
out:
	free(msg);
	free(re);
	free(d.nodes);
	if (err)
		manifest_free(m);
	return err;
}

int manifest_digest(const struct manifest *m, uint8_t out[32])
{
	uint8_t *buf;
	size_t len;
	int err;

	if (!m || !out)
		return -EINVAL;
	buf = malloc(MANIFEST_MAX_SIZE);
	if (!buf)
		return -ENOMEM;
	err = manifest_encode(m, buf, MANIFEST_MAX_SIZE, &len);
	if (!err)
		blake3_hash(buf, len, out, 32);
	free(buf);
	return err;
}

int manifest_link_prev(struct manifest *m, const struct manifest *prev)
{
	int err;

	if (!m || !prev || !prev->is_signed || prev->seq >= m->seq)
		return -EINVAL;
	err = manifest_digest(prev, m->prev);
	if (err)
		return err;
	m->prev_seq = prev->seq;
	m->has_prev = 1;
	return 0;
}

int manifest_supersedes(const struct manifest *a, const struct manifest *b)
{
	if (!a || !b || memcmp(a->share_id, b->share_id, MANIFEST_SHARE_ID_LEN) ||
	    memcmp(a->pk, b->pk, IDENTITY_PK_LEN))
		return -EINVAL;
	return a->seq > b->seq;
}
