// SPDX-License-Identifier: MIT
/*
 * A seed host's hold on its store: pins (database content_pins: a content
 * id or a share id the store quota may never evict, durable before the
 * control API acknowledges it), eviction when an add or a download would
 * pass the quota (cstore_opts.make_room), and removal (content rm). Calls
 * the chunk store, share records and announce.c; nothing above them.
 *
 * What eviction may take, first to last: complete blobs that no held
 * manifest lists (older versions of a followed share, content fetched by
 * id alone), oldest first; then blobs of shares published by others,
 * oldest first. Never: a pinned content id, an item of a pinned share, an
 * item of a share this node publishes (its own `content add`), a partial
 * download (its job is running).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "content/content_node_int.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/store.h"
#include "weft/util.h"

#define CN_PINS_DB "content_pins"
#define CN_WITHDRAWN_DB "content_withdrawn"

/* A pin's value: when it was set, wall-clock seconds, big-endian. */
static void be64_put(uint8_t b[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

static uint64_t be64_get(const uint8_t b[8])
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static int count_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	(void)key, (void)klen, (void)val, (void)vlen;
	atomic_fetch_add((atomic_uint *)arg, 1);
	return 0;
}

int cn_pins_init(struct content_node *cn)
{
	int rc = store_db(cn->store, CN_PINS_DB, &cn->pins_dbi);

	if (!rc)
		rc = store_db(cn->store, CN_WITHDRAWN_DB, &cn->withdrawn_dbi);
	if (!rc)
		store_iter(cn->store, cn->withdrawn_dbi, count_one, &cn->nwithdrawn);
	return rc;
}

int cn_pin_set(struct content_node *cn, const uint8_t *id, size_t len, int on)
{
	uint8_t when[8];
	struct store_op op = {.dbi = cn->pins_dbi, .key = id, .klen = len};

	if (len != 32 && len != MANIFEST_SHARE_ID_LEN)
		return -EINVAL;
	be64_put(when, util_wall_s());
	if (on) {
		op.val = when;
		op.vlen = sizeof(when);
	}
	/* Durable when this returns 0: the answer says "pinned". */
	return store_write_sync(cn->store, &op, 1, 0);
}

int cn_pinned(struct content_node *cn, const uint8_t *id, size_t len)
{
	void *v = NULL;
	size_t vl = 0;
	int rc = store_get(cn->store, cn->pins_dbi, id, len, &v, &vl);

	free(v);
	return rc == 0;
}

static int pin_json(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	char hex[65];

	if ((klen != 32 && klen != MANIFEST_SHARE_ID_LEN) || vlen != 8)
		return 0;
	util_hex(hex, key, klen);
	json_array_append_new(arg, json_pack("{s:s,s:s,s:I}", "id", hex, "kind",
					     klen == 32 ? "content" : "share", "since",
					     (json_int_t)be64_get(val)));
	return 0;
}

json_t *cn_pins_json(struct content_node *cn)
{
	json_t *a = json_array();

	store_iter(cn->store, cn->pins_dbi, pin_json, a);
	return a;
}

/* ---------------------------------------------------------- eviction */

/* A set of content ids (sorted after filling, searched by bsearch). */
struct idset {
	uint8_t (*id)[32];
	size_t n, cap;
};

static int idset_add(struct idset *s, const uint8_t id[32])
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 256;
		void *p = realloc(s->id, nc * 32);

		if (!p)
			return -ENOMEM;
		s->id = p;
		s->cap = nc;
	}
	memcpy(s->id[s->n++], id, 32);
	return 0;
}

static int cmp32(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

static int idset_has(const struct idset *s, const uint8_t id[32])
{
	return s->n && bsearch(id, s->id, s->n, 32, cmp32) != NULL;
}

struct ev_ctx {
	struct content_node *cn;
	struct idset keep, listed;
	struct cn_evict_cand *c;
	size_t n, cap;
	const uint8_t *skip; /* rm: the share being removed */
};

/* Every held manifest: its items are "listed"; kept when the share is
 * ours or pinned. Pinned content ids are kept. */
static int ev_share(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct ev_ctx *e = arg;
	struct manifest m;
	int keep;

	(void)klen;
	manifest_init(&m);
	if (manifest_decode(&m, val, vlen) == 0) {
		keep = !memcmp(m.pk, e->cn->id->pk, sizeof(m.pk)) ||
		       cn_pinned(e->cn, m.share_id, MANIFEST_SHARE_ID_LEN);
		for (uint32_t i = 0; i < m.nitems; i++) {
			idset_add(&e->listed, m.items[i].id);
			if (keep)
				idset_add(&e->keep, m.items[i].id);
		}
	}
	(void)key;
	manifest_free(&m);
	return 0;
}

static int ev_pin(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct ev_ctx *e = arg;

	(void)val;
	(void)vlen;
	if (klen == 32)
		idset_add(&e->keep, key);
	return 0;
}

static int ev_blob(void *arg, const struct cstore_info *info)
{
	struct ev_ctx *e = arg;

	if (info->state == CSTORE_PARTIAL || idset_has(&e->keep, info->id))
		return 0;
	if (e->n == e->cap) {
		size_t nc = e->cap ? e->cap * 2 : 256;
		void *p = realloc(e->c, nc * sizeof(*e->c));

		if (!p)
			return -ENOMEM;
		e->c = p;
		e->cap = nc;
	}
	memcpy(e->c[e->n].id, info->id, 32);
	e->c[e->n].size = info->size;
	e->c[e->n].added = info->added;
	/* a bad blob is never served: the first to go */
	e->c[e->n].listed = info->state == CSTORE_BAD ? -1 : idset_has(&e->listed, info->id);
	e->n++;
	return 0;
}

static int cand_cmp(const void *a, const void *b)
{
	const struct cn_evict_cand *x = a, *y = b;

	if (x->listed != y->listed)
		return x->listed < y->listed ? -1 : 1;
	if (x->added != y->added)
		return x->added < y->added ? -1 : 1;
	return memcmp(x->id, y->id, 32);
}

size_t cn_evict_plan(struct cn_evict_cand *c, size_t n, uint64_t need, uint64_t used,
		     uint64_t quota, uint32_t nblobs, uint32_t max_blobs)
{
	size_t k = 0;

	qsort(c, n, sizeof(*c), cand_cmp);
	while (k < n && (used + need > quota || (max_blobs && nblobs >= max_blobs))) {
		used = used > c[k].size ? used - c[k].size : 0;
		if (nblobs)
			nblobs--;
		k++;
	}
	/* Evicting everything allowed still would not make room: evict
	 * nothing (the add fails with -ENOSPC, nothing lost for nothing). */
	if (used + need > quota)
		return 0;
	return k;
}

int cn_make_room(void *arg, uint64_t need)
{
	struct content_node *cn = arg;
	struct ev_ctx e = {.cn = cn};
	uint64_t used, quota;
	uint32_t nblobs;
	size_t k;

	pthread_mutex_lock(&cn->emu);
	store_iter(cn->store, cn->shares_dbi, ev_share, &e);
	store_iter(cn->store, cn->pins_dbi, ev_pin, &e);
	if (e.keep.n)
		qsort(e.keep.id, e.keep.n, 32, cmp32);
	if (e.listed.n)
		qsort(e.listed.id, e.listed.n, 32, cmp32);
	cstore_list(cn->cs, ev_blob, &e);
	cstore_usage(cn->cs, &used, &quota, &nblobs);
	k = cn_evict_plan(e.c, e.n, need, used, quota, nblobs, CSTORE_DEFAULT_MAX_BLOBS);
	for (size_t i = 0; i < k; i++) {
		char hex[65];

		util_hex(hex, e.c[i].id, 32);
		cn_unannounce(cn, e.c[i].id, 32);
		if (cstore_delete(cn->cs, e.c[i].id) == 0) {
			atomic_fetch_add(&cn->evicted, 1);
			log_info(CN_MOD, "evicted %s (%llu bytes, %s) to make room for %llu bytes",
				 hex, (unsigned long long)e.c[i].size,
				 e.c[i].listed > 0 ? "in a share held" : "in no share held",
				 (unsigned long long)need);
		}
	}
	if (!k)
		log_warn(CN_MOD, "store full: nothing unpinned to evict for %llu bytes",
			 (unsigned long long)need);
	pthread_mutex_unlock(&cn->emu);
	free(e.keep.id);
	free(e.listed.id);
	free(e.c);
	return (int)k;
}

/* -------------------------------------------------------------- rm */

/* Items of the held manifests other than skip (a share id, or NULL). */
static int rm_listed(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct ev_ctx *e = arg;
	struct manifest m;

	if (klen == MANIFEST_SHARE_ID_LEN && e->skip &&
	    !memcmp(key, e->skip, MANIFEST_SHARE_ID_LEN))
		return 0;
	manifest_init(&m);
	if (manifest_decode(&m, val, vlen) == 0)
		for (uint32_t i = 0; i < m.nitems; i++)
			idset_add(&e->listed, m.items[i].id);
	manifest_free(&m);
	return 0;
}

static int rm_blob(struct content_node *cn, const uint8_t id[32])
{
	int rc;

	cn_unannounce(cn, id, 32);
	rc = cstore_delete(cn->cs, id);
	cn_pin_set(cn, id, 32, 0);
	return rc;
}

int cn_remove(struct content_node *cn, const uint8_t *id, size_t len, unsigned int *nblobs)
{
	struct ev_ctx e = {.cn = cn};
	struct manifest m;
	uint8_t *enc = NULL;
	size_t elen;
	int rc;

	*nblobs = 0;
	if (len == 32) {
		rc = rm_blob(cn, id);
		if (!rc)
			*nblobs = 1;
		return rc;
	}
	if (len != MANIFEST_SHARE_ID_LEN)
		return -EINVAL;
	rc = cn_share_get(cn, id, &enc, &elen);
	if (rc)
		return rc;
	manifest_init(&m);
	rc = manifest_decode(&m, enc, elen);
	free(enc);
	cn_unannounce(cn, id, MANIFEST_SHARE_ID_LEN);
	/* The record first (durable): a crash after it leaves blobs that
	 * eviction takes first, never a share whose blobs are gone. */
	{
		struct store_op op = {.dbi = cn->shares_dbi, .key = id, .klen = len};
		int drc = store_write_sync(cn->store, &op, 1, 0);

		if (drc) {
			manifest_free(&m);
			return drc;
		}
	}
	cn_pin_set(cn, id, len, 0);
	if (rc == 0) {
		/* Items no other held share lists go with it. */
		e.skip = id;
		store_iter(cn->store, cn->shares_dbi, rm_listed, &e);
		if (e.listed.n)
			qsort(e.listed.id, e.listed.n, 32, cmp32);
		for (uint32_t i = 0; i < m.nitems; i++)
			if (!idset_has(&e.listed, m.items[i].id) && rm_blob(cn, m.items[i].id) == 0)
				(*nblobs)++;
	}
	manifest_free(&m);
	free(e.listed.id);
	return 0;
}

/* ------------------------------------------------------- withdrawals */

int cn_withdrawn(struct content_node *cn, const uint8_t id[32])
{
	void *v = NULL;
	size_t vl = 0;
	int rc;

	if (!atomic_load(&cn->nwithdrawn))
		return 0; /* the usual case costs no lookup */
	rc = store_get(cn->store, cn->withdrawn_dbi, id, 32, &v, &vl);
	free(v);
	return rc == 0;
}

int cn_withdraw_items(struct content_node *cn, const struct manifest *old)
{
	struct ev_ctx e = {.cn = cn};
	uint8_t when[8];
	int rc = 0;

	/* what every held manifest lists now, the new version included */
	store_iter(cn->store, cn->shares_dbi, rm_listed, &e);
	if (e.listed.n)
		qsort(e.listed.id, e.listed.n, 32, cmp32);
	be64_put(when, util_wall_s());
	for (uint32_t i = 0; i < old->nitems && !rc; i++) {
		const uint8_t *id = old->items[i].id;

		if (idset_has(&e.listed, id))
			continue;
		if (cn_pinned(cn, id, 32) || cn_pinned(cn, old->share_id, MANIFEST_SHARE_ID_LEN)) {
			struct store_op op = {.dbi = cn->withdrawn_dbi,
					      .key = id,
					      .klen = 32,
					      .val = when,
					      .vlen = sizeof(when)};

			cn_unannounce(cn, id, 32);
			rc = store_write_sync(cn->store, &op, 1, 0);
			if (!rc) {
				atomic_fetch_add(&cn->nwithdrawn, 1);
				atomic_fetch_add(&cn->withdrawn_kept, 1);
			}
		} else if (rm_blob(cn, id) == 0) {
			atomic_fetch_add(&cn->withdrawn_dropped, 1);
		}
	}
	free(e.listed.id);
	return rc;
}

int cn_share_take(struct content_node *cn, const struct manifest *m)
{
	struct manifest old;
	int rc = cn_share_put(cn, m, cn->honour_withdrawals ? &old : NULL);

	/* the new version is durable before anything of the old one goes */
	if (!rc && cn->honour_withdrawals && old.is_signed) {
		log_info(CN_MOD, "share %s: version %llu withdrawn by version %llu", m->name,
			 (unsigned long long)old.seq, (unsigned long long)m->seq);
		rc = cn_withdraw_items(cn, &old);
	}
	if (cn->honour_withdrawals)
		manifest_free(&old);
	return rc;
}
