// SPDX-License-Identifier: MIT
/*
 * Sealed shares: a private share's items encrypted on the way into the
 * store, its real paths in sealed metadata, its content key wrapped for
 * each recipient (docs/PRIVATE.md, "Sealed shares"); and the reader's
 * side: the content key opened with this node's key, the metadata checked
 * against the manifest's items. The crypto is seal's; this part applies it
 * to manifests and the chunk store. Called by the hub (adding) and by the
 * download jobs (reading); calls seal, the chunk store and the manifest.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "content/content_node_int.h"
#include "weft/seal.h"

int cn_key_check(const uint8_t k[32])
{
	uint8_t x[SEAL_X_PK_LEN];

	return seal_x25519_from_ed25519_pk(k, x) ? -EINVAL : 0;
}

struct cn_seal_add {
	uint8_t ck[SEAL_KEY_LEN];
	uint8_t (*rcpt)[SEAL_X_PK_LEN];
	size_t nrcpt;
	struct seal_meta_item *meta; /* path and type owned (malloc'd) */
	uint32_t n, cap;
};

int cn_seal_add_new(struct cn_seal_add **out, const uint8_t (*keys)[32], size_t n, size_t *bad)
{
	struct cn_seal_add *sa;

	*out = NULL;
	if (n > SEAL_MAX_RECIPIENTS)
		return -E2BIG; /* before any crypto work */
	if (!n)
		return -EINVAL;
	sa = calloc(1, sizeof(*sa));
	if (!sa || !(sa->rcpt = calloc(n, sizeof(*sa->rcpt)))) {
		free(sa);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < i; k++)
			if (!memcmp(keys[k], keys[i], 32)) {
				*bad = i;
				cn_seal_add_free(sa);
				return -EEXIST;
			}
		if (seal_x25519_from_ed25519_pk(keys[i], sa->rcpt[i])) {
			*bad = i;
			cn_seal_add_free(sa);
			return -EINVAL;
		}
	}
	sa->nrcpt = n;
	seal_content_key_new(sa->ck);
	*out = sa;
	return 0;
}

void cn_seal_add_free(struct cn_seal_add *sa)
{
	if (!sa)
		return;
	for (uint32_t i = 0; i < sa->n; i++) {
		free((void *)sa->meta[i].path);
		free((void *)sa->meta[i].type);
	}
	free(sa->meta);
	free(sa->rcpt);
	sodium_memzero(sa->ck, sizeof(sa->ck));
	free(sa);
}

/* Room for one more item's metadata. */
static int meta_reserve(struct cn_seal_add *sa)
{
	uint32_t nc = sa->cap ? sa->cap * 2 : 16;
	void *p;

	if (sa->n < sa->cap)
		return 0;
	if (sa->n >= SEAL_META_MAX_ITEMS || sa->n >= MANIFEST_MAX_ITEMS)
		return -E2BIG;
	p = realloc(sa->meta, nc * sizeof(*sa->meta));
	if (!p)
		return -ENOMEM;
	sa->meta = p;
	sa->cap = nc;
	return 0;
}

/* Item sa->n: its ciphertext blob id under its placeholder path in m, its
 * real path, type and size in sa's metadata (room reserved). */
static int add_sealed(struct cn_seal_add *sa, struct manifest *m, const uint8_t id[32],
		      uint64_t csize, const char *rel, size_t rel_len, const char *type,
		      size_t type_len, uint64_t size)
{
	char ph[5];
	struct seal_meta_item *mi = &sa->meta[sa->n];
	int rc;

	manifest_sealed_path(sa->n, ph);
	rc = manifest_add_item(m, ph, strlen(ph), id, csize, MANIFEST_SEALED_TYPE);
	if (rc)
		return rc;
	*mi = (struct seal_meta_item){.path = (const uint8_t *)strndup(rel, rel_len),
				      .path_len = rel_len,
				      .type = (const uint8_t *)strndup(type, type_len),
				      .type_len = type_len,
				      .size = size};
	sa->n++;
	if (!mi->path || !mi->type)
		return -ENOMEM;
	return 0;
}

struct seal_xf {
	uint8_t key[SEAL_KEY_LEN];
	uint64_t plain;
	uint64_t nsegs;
};

/* cstore_xform.fn: plaintext segment i in, ciphertext chunk i out. */
static int seal_chunk(void *arg, uint64_t index, const uint8_t *in, size_t in_len, uint8_t *out,
		      size_t out_len)
{
	struct seal_xf *x = arg;

	if (out_len != in_len + SEAL_TAG_LEN)
		return -EINVAL;
	return seal_seg_encrypt(x->key, x->plain, index, index + 1 == x->nsegs, in, in_len, out);
}

int cn_seal_add_file(struct content_node *cn, struct cn_seal_add *sa, struct manifest *m, int fd,
		     uint64_t size, const char *rel, const char *type)
{
	struct seal_xf x;
	struct cstore_xform xf;
	uint8_t id[32];
	int64_t csize = seal_cipher_size(size);
	int rc;

	if (csize < 0)
		return -EFBIG;
	if (!manifest_path_valid(rel, strlen(rel)) || !manifest_type_valid(type, strlen(type)))
		return -EINVAL;
	if ((rc = meta_reserve(sa)))
		return rc;
	if ((rc = seal_item_key(sa->ck, sa->n, x.key)))
		return rc;
	x.plain = size;
	x.nsegs = seal_nsegs(size);
	xf = (struct cstore_xform){.in_size = size,
				   .out_size = (uint64_t)csize,
				   .in_chunk = SEAL_SEG_PLAIN,
				   .fn = seal_chunk,
				   .arg = &x};
	rc = cstore_add_fd_xform(cn->cs, fd, &xf, id);
	sodium_memzero(x.key, sizeof(x.key));
	if (rc)
		return rc;
	return add_sealed(sa, m, id, (uint64_t)csize, rel, strlen(rel), type, strlen(type), size);
}

static int meta_cmp(const void *a, const void *b)
{
	const struct seal_meta_item *x = *(const struct seal_meta_item *const *)a;
	const struct seal_meta_item *y = *(const struct seal_meta_item *const *)b;
	size_t n = x->path_len < y->path_len ? x->path_len : y->path_len;
	int c = memcmp(x->path, y->path, n);

	return c ? c : (x->path_len > y->path_len) - (x->path_len < y->path_len);
}

/* Two items under one path (two arguments with one base name): -EEXIST,
 * as a public share's signing says. */
static int unique_paths(const struct cn_seal_add *sa)
{
	const struct seal_meta_item **v = malloc(sa->n * sizeof(*v));
	int rc = 0;

	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < sa->n; i++)
		v[i] = &sa->meta[i];
	qsort(v, sa->n, sizeof(*v), meta_cmp);
	for (uint32_t i = 1; i < sa->n && !rc; i++)
		if (!meta_cmp(&v[i - 1], &v[i]))
			rc = -EEXIST;
	free(v);
	return rc;
}

int cn_seal_add_finish(struct cn_seal_add *sa, struct manifest *m)
{
	uint8_t epk[SEAL_X_PK_LEN], *keys, *meta;
	size_t cap = SEAL_META_MAX_LEN + SEAL_META_OVERHEAD, mlen;
	int rc;

	if (!sa->n)
		return -ENOENT; /* nothing to share */
	if ((rc = unique_paths(sa)))
		return rc;
	keys = malloc(sa->nrcpt * SEAL_ENTRY_LEN);
	meta = malloc(cap);
	if (!keys || !meta) {
		free(keys);
		free(meta);
		return -ENOMEM;
	}
	rc = seal_meta_encrypt(sa->ck, sa->meta, sa->n, meta, cap, &mlen);
	if (!rc)
		rc = seal_wrap(sa->ck, (const uint8_t(*)[SEAL_X_PK_LEN])sa->rcpt, sa->nrcpt, epk,
			       keys);
	if (!rc)
		rc = manifest_set_sealed(m, epk, keys, (uint32_t)sa->nrcpt, meta, mlen);
	free(keys);
	free(meta);
	return rc;
}

/* ---- revocation ---- */

struct reseal_xf {
	uint8_t old_key[SEAL_KEY_LEN], new_key[SEAL_KEY_LEN];
	uint64_t plain, nsegs;
};

/* cstore_xform.fn: old ciphertext chunk i in, the same segment under the
 * new key out (opened in out, sealed again in place). */
static int reseal_chunk(void *arg, uint64_t index, const uint8_t *in, size_t in_len, uint8_t *out,
			size_t out_len)
{
	struct reseal_xf *x = arg;
	int fin = index + 1 == x->nsegs, rc;

	if (out_len != in_len || in_len < SEAL_TAG_LEN)
		return -EINVAL;
	rc = seal_seg_decrypt(x->old_key, x->plain, index, fin, in, in_len, out);
	if (!rc)
		rc = seal_seg_encrypt(x->new_key, x->plain, index, fin, out, in_len - SEAL_TAG_LEN,
				      out);
	return rc;
}

int cn_seal_add_reseal(struct content_node *cn, struct cn_seal_add *sa, struct manifest *m,
		       const uint8_t old_ck[32], const struct manifest *old, uint32_t index,
		       const struct seal_meta_item *it)
{
	struct reseal_xf x;
	struct cstore_xform xf;
	struct stat st;
	char blob[PATH_MAX];
	uint8_t id[32];
	int fd, rc;

	if (index >= old->nitems || seal_cipher_size(it->size) != (int64_t)old->items[index].size)
		return -EINVAL;
	if ((rc = meta_reserve(sa)))
		return rc;
	if ((rc = cstore_path(cn->cs, old->items[index].id, 0, blob, sizeof(blob))))
		return rc;
	fd = open(blob, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno == -ENOENT ? -ENODATA : -errno; /* not held here */
	if (fstat(fd, &st) || (uint64_t)st.st_size != old->items[index].size) {
		close(fd);
		return -ENODATA;
	}
	rc = seal_item_key(old_ck, index, x.old_key);
	if (!rc)
		rc = seal_item_key(sa->ck, sa->n, x.new_key);
	x.plain = it->size;
	x.nsegs = seal_nsegs(it->size);
	xf = (struct cstore_xform){.in_size = old->items[index].size,
				   .out_size = old->items[index].size,
				   .in_chunk = B3TREE_CHUNK_LEN,
				   .fn = reseal_chunk,
				   .arg = &x};
	if (!rc)
		rc = cstore_add_fd_xform(cn->cs, fd, &xf, id);
	close(fd);
	sodium_memzero(&x, sizeof(x));
	if (rc)
		return rc;
	return add_sealed(sa, m, id, old->items[index].size, (const char *)it->path, it->path_len,
			  (const char *)it->type, it->type_len, it->size);
}

int cn_seal_rewrap(struct cn_seal_add *sa, const uint8_t ck[32], const struct manifest *old,
		   struct manifest *m)
{
	uint8_t epk[SEAL_X_PK_LEN], *keys;
	int rc = 0;

	if (!old->sealed)
		return -EINVAL;
	for (uint32_t i = 0; i < old->nitems && !rc; i++)
		rc = manifest_add_item(m, old->items[i].path, strlen(old->items[i].path),
				       old->items[i].id, old->items[i].size, old->items[i].type);
	if (rc)
		return rc;
	keys = malloc(sa->nrcpt * SEAL_ENTRY_LEN);
	if (!keys)
		return -ENOMEM;
	rc = seal_wrap(ck, (const uint8_t(*)[SEAL_X_PK_LEN])sa->rcpt, sa->nrcpt, epk, keys);
	if (!rc)
		rc = manifest_set_sealed(m, epk, keys, (uint32_t)sa->nrcpt, old->meta, old->meta_len);
	free(keys);
	return rc;
}

/* ---- reading ---- */

int cn_seal_key(struct content_node *cn, const struct manifest *m, uint8_t ck[SEAL_KEY_LEN])
{
	uint8_t xsk[SEAL_X_SK_LEN], xpk[SEAL_X_PK_LEN];
	int rc;

	if (!m->sealed)
		return -EINVAL;
	if (m->nkeys > SEAL_MAX_RECIPIENTS)
		return -E2BIG; /* before any crypto (the decoder refused it already) */
	if (seal_x25519_from_ed25519_sk(cn->id->sk, xsk) ||
	    seal_x25519_from_ed25519_pk(cn->id->pk, xpk))
		return -EINVAL;
	rc = seal_unwrap(xsk, xpk, m->epk, m->keys, m->nkeys, ck);
	sodium_memzero(xsk, sizeof(xsk));
	if (rc == -ENOENT)
		rc = cn_group_unwrap(cn, m, ck); /* posted to a group we hold */
	return rc;
}

int cn_seal_view_open(const uint8_t ck[SEAL_KEY_LEN], const struct manifest *m,
		      struct cn_seal_view *v)
{
	int rc;

	memset(v, 0, sizeof(*v));
	if (!m->sealed || m->meta_len <= SEAL_META_OVERHEAD)
		return -EINVAL;
	v->plain = malloc(m->meta_len - SEAL_META_OVERHEAD);
	v->it = calloc(m->nitems ? m->nitems : 1, sizeof(*v->it));
	if (!v->plain || !v->it) {
		cn_seal_view_free(v);
		return -ENOMEM;
	}
	rc = seal_meta_decrypt(ck, m->meta, m->meta_len, v->plain, m->meta_len - SEAL_META_OVERHEAD,
			       v->it, m->nitems, &v->n);
	if (rc == -ENOSPC)
		rc = -EBADMSG; /* more items in the metadata than in the manifest */
	/* The publisher's own bytes must agree with what hosts see: one entry
	 * per item, each plaintext size encrypting to its blob's size, paths
	 * that can be written under a download folder, and none twice. */
	if (!rc && v->n != m->nitems)
		rc = -EBADMSG;
	for (uint32_t i = 0; !rc && i < v->n; i++) {
		if (seal_cipher_size(v->it[i].size) != (int64_t)m->items[i].size ||
		    !manifest_path_valid((const char *)v->it[i].path, v->it[i].path_len))
			rc = -EBADMSG;
		for (uint32_t k = 0; !rc && k < i; k++)
			if (v->it[k].path_len == v->it[i].path_len &&
			    !memcmp(v->it[k].path, v->it[i].path, v->it[i].path_len))
				rc = -EBADMSG;
	}
	if (rc)
		cn_seal_view_free(v);
	return rc;
}

void cn_seal_view_free(struct cn_seal_view *v)
{
	free(v->plain);
	free(v->it);
	memset(v, 0, sizeof(*v));
}

int cn_seal_view_path(const struct cn_seal_view *v, uint32_t i, char *buf, size_t cap)
{
	if (i >= v->n || v->it[i].path_len >= cap)
		return -ENAMETOOLONG;
	memcpy(buf, v->it[i].path, v->it[i].path_len);
	buf[v->it[i].path_len] = 0;
	return 0;
}
