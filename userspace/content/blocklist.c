/* SPDX-License-Identifier: MIT */
/*
 * Blocklist shares (issue 31; docs/CONTENT.md "Blocklists"). A share
 * followed with `content subscribe --blocklist` is a list of ids this node
 * refuses: its items are text files, one id a line (a content id, 64 hex;
 * a share id, 40 hex; or a share head KEY/NAME), `#` starts a comment.
 * What every blocklist followed lists, in the versions held in full, is
 * kept in LMDB (content_blocked: id -> the blocklist share id naming it),
 * rewritten in one transaction whenever a blocklist changes, and looked up
 * (lock-free LMDB readers, skipped while the table is empty) by the
 * download, serving and search paths: a blocked id is never fetched,
 * served or shown. Calls shares.c, the chunk store and heads.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "content/content_node_int.h"
#include "content/heads.h"
#include "content/search.h"
#include "weft/log.h"
#include "weft/store.h"
#include "weft/util.h"

#define CN_BLOCKED_DB "content_blocked"
/* Bytes of one blocklist item read (the rest ignored, logged). */
#define CN_BLOCK_ITEM_MAX (1u << 20)

struct blk_id {
	uint8_t len; /* 32 content, 20 share */
	uint8_t id[32];
	uint8_t by[MANIFEST_SHARE_ID_LEN];
};

struct blk_set {
	struct blk_id *v;
	unsigned int n, cap;
	unsigned int bad, over;
	uint8_t by[MANIFEST_SHARE_ID_LEN]; /* the list being read */
};

static int count_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	(void)key, (void)klen, (void)val, (void)vlen;
	(*(unsigned int *)arg)++;
	return 0;
}

int cn_block_init(struct content_node *cn)
{
	unsigned int n = 0;
	int rc = store_db(cn->store, CN_BLOCKED_DB, &cn->blocked_dbi);

	if (rc)
		return rc;
	pthread_mutex_init(&cn->block_mu, NULL);
	cn->block_ready = 1;
	store_iter(cn->store, cn->blocked_dbi, count_one, &n);
	atomic_store(&cn->nblocked, n);
	cn_block_sync(cn); /* a list fetched just before a crash */
	return 0;
}

void cn_block_fini(struct content_node *cn)
{
	if (cn->block_ready)
		pthread_mutex_destroy(&cn->block_mu);
	cn->block_ready = 0;
}

int cn_blocked(struct content_node *cn, const uint8_t *id, size_t len)
{
	void *v = NULL;
	size_t vl;

	if (!atomic_load(&cn->nblocked) || (len != 32 && len != MANIFEST_SHARE_ID_LEN))
		return 0;
	if (store_get(cn->store, cn->blocked_dbi, id, len, &v, &vl))
		return 0;
	free(v);
	return 1;
}

static void set_add(struct blk_set *s, const uint8_t *id, size_t len)
{
	if (s->n == CN_BLOCK_MAX) {
		s->over++;
		return;
	}
	if (s->n == s->cap) {
		unsigned int nc = s->cap ? s->cap * 2 : 256;
		struct blk_id *nv = realloc(s->v, nc * sizeof(*nv));

		if (!nv) {
			s->over++;
			return;
		}
		s->v = nv;
		s->cap = nc;
	}
	s->v[s->n].len = (uint8_t)len;
	memcpy(s->v[s->n].id, id, len);
	memcpy(s->v[s->n].by, s->by, sizeof(s->by));
	s->n++;
}

int cn_block_parse_line(const char *line, size_t len, uint8_t id[32], size_t *idlen)
{
	char w[200];
	size_t a = 0, b;
	struct cn_head_ref ref;
	const char *why;

	while (a < len && (line[a] == ' ' || line[a] == '\t'))
		a++;
	b = a;
	while (b < len && line[b] != ' ' && line[b] != '\t' && line[b] != '\r' && line[b] != '#')
		b++;
	if (b == a)
		return 0; /* blank or a comment */
	if (b - a >= sizeof(w))
		return -EINVAL;
	memcpy(w, line + a, b - a);
	w[b - a] = 0;
	if (b - a == 64 && util_unhex(id, 32, w) == 0) {
		*idlen = 32;
		return 1;
	}
	if (b - a == 40 && util_unhex(id, MANIFEST_SHARE_ID_LEN, w) == 0) {
		*idlen = MANIFEST_SHARE_ID_LEN;
		return 1;
	}
	if (cn_head_parse(w, &ref, &why) == 0 &&
	    manifest_share_id(ref.pk, ref.name, ref.name_len, id) == 0) {
		*idlen = MANIFEST_SHARE_ID_LEN;
		return 1;
	}
	return -EINVAL;
}

/* The ids one item of a list names (the blob complete in the store). */
static void read_item(struct content_node *cn, const struct manifest_item *it, struct blk_set *s)
{
	size_t cap = it->size < CN_BLOCK_ITEM_MAX ? (size_t)it->size : CN_BLOCK_ITEM_MAX;
	uint8_t *buf = malloc(cap + 1), id[32];
	size_t got = 0, idlen, start = 0;

	if (!buf)
		return;
	for (uint64_t c = 0; got < cap; c++) {
		uint8_t *chunk = malloc(B3TREE_CHUNK_LEN);
		size_t l = 0;
		int rc = chunk ? cstore_read_chunk(cn->cs, it->id, c, chunk, B3TREE_CHUNK_LEN, &l)
			       : -ENOMEM;

		if (!rc) {
			if (l > cap - got)
				l = cap - got;
			memcpy(buf + got, chunk, l);
			got += l;
		}
		free(chunk);
		if (rc || !l)
			break;
	}
	if (it->size > CN_BLOCK_ITEM_MAX)
		log_warn(CN_MOD, "blocklist item %s: only its first %u bytes read", it->path,
			 CN_BLOCK_ITEM_MAX);
	buf[got] = '\n';
	for (size_t i = 0; i <= got; i++) {
		if (buf[i] != '\n')
			continue;
		int rc = cn_block_parse_line((const char *)buf + start, i - start, id, &idlen);

		if (rc == 1)
			set_add(s, id, idlen);
		else if (rc < 0)
			s->bad++;
		start = i + 1;
	}
	free(buf);
}

static int list_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct content_node *cn = ((void **)arg)[0];
	struct blk_set *s = ((void **)arg)[1];
	struct cn_head_ref ref = {0};
	struct cn_head_rec rec;
	uint8_t *enc = NULL;
	struct manifest m;
	size_t len;

	if (klen <= 32 || klen > 32 + MANIFEST_MAX_NAME)
		return 0;
	memcpy(ref.pk, key, 32);
	ref.name_len = klen - 32;
	memcpy(ref.name, (const uint8_t *)key + 32, ref.name_len);
	if (cn_head_rec_decode(&ref, val, vlen, &rec) || !(rec.flags & CN_HEAD_BLOCK) ||
	    rec.got < 0)
		return 0;
	manifest_share_id(ref.pk, ref.name, ref.name_len, s->by);
	if (cn_share_get(cn, s->by, &enc, &len))
		return 0;
	manifest_init(&m);
	if (manifest_decode(&m, enc, len) == 0 && !m.sealed)
		for (uint32_t i = 0; i < m.nitems; i++)
			read_item(cn, &m.items[i], s);
	manifest_free(&m);
	free(enc);
	return 0;
}

static int write_fn(struct store_txn *txn, void *arg)
{
	struct content_node *cn = ((void **)arg)[0];
	struct blk_set *s = ((void **)arg)[1];
	int rc = store_txn_clear(txn, cn->blocked_dbi);

	for (unsigned int i = 0; i < s->n && !rc; i++)
		rc = store_txn_put(txn, cn->blocked_dbi, s->v[i].id, s->v[i].len, s->v[i].by,
				   sizeof(s->v[i].by));
	return rc;
}

void cn_block_sync(struct content_node *cn)
{
	struct blk_set s = {0};
	void *a[2] = {cn, &s};
	unsigned int n = 0;
	int rc;

	if (!cn->block_ready)
		return;
	pthread_mutex_lock(&cn->block_mu);
	store_iter(cn->store, cn->heads_dbi, list_one, a);
	rc = store_write_call(cn->store, write_fn, a, CN_SEARCH_WRITE_MS); /* up to 100,000 ids */
	if (rc) {
		log_warn(CN_MOD, "blocklist not updated: %s", strerror(-rc));
	} else {
		store_iter(cn->store, cn->blocked_dbi, count_one, &n);
		if (n != atomic_load(&cn->nblocked))
			log_info(CN_MOD, "blocklists: %u ids refused (%u lines not ids)", n, s.bad);
		atomic_store(&cn->nblocked, n);
	}
	if (s.over)
		log_warn(CN_MOD, "blocklists list more than %d ids: %u ignored", CN_BLOCK_MAX,
			 s.over);
	pthread_mutex_unlock(&cn->block_mu);
	free(s.v);
}
