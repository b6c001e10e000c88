// SPDX-License-Identifier: MIT
/*
 * The chunk store's open (chunkstore_int.h, cstore_new): every index entry
 * checked against its blob file, and what a crash or a lost file left
 * repaired: a damaged entry dropped, an interrupted completion finished, a
 * partial whose file is gone started over, a blob of the wrong length
 * marked bad; staging files of adds cut short removed.
 *
 * The repairs are written in one transaction. When LMDB refuses one of
 * its writes (its map full, store.map_size), that transaction is dead:
 * LMDB accepts nothing else in it, not even a read (reads used to go on,
 * fail, and take every later entry for damaged: its blob file unlinked).
 * The open then starts over in a read-only transaction that repairs
 * nothing: an entry needing a repair is left as it is and not counted
 * (a partial without its file fails its download; reads verify every
 * chunk, so nothing wrong is served), and a start with room makes the
 * repairs.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "content/chunkstore_int.h"
#include "weft/log.h"
#include "weft/store.h"
#include "weft/util.h"

struct idlist {
	uint8_t (*ids)[B3TREE_ID_LEN];
	size_t n, cap;
};

/* One pass over the index. */
struct rpass {
	struct cstore *cs;
	struct store_txn *t;
	int ro;	 /* read-only: no repair (a write of the first pass failed) */
	int err; /* a write LMDB refused: t is dead */
};

static int collect_id(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct idlist *l = arg;

	if (klen != B3TREE_ID_LEN) {
		log_warn(CS_MOD, "ignoring index key of %zu bytes", klen);
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *p = realloc(l->ids, cap * B3TREE_ID_LEN);

		if (!p)
			return -ENOMEM;
		l->ids = p;
		l->cap = cap;
	}
	memcpy(l->ids[l->n++], key, B3TREE_ID_LEN);
	return 0;
}

/* A repair's writes: refused without touching t once t is dead or the
 * pass is read-only. */
static int rp_put(struct rpass *r, unsigned int dbi, const uint8_t *id, const void *val,
		  size_t vlen)
{
	if (r->ro || r->err)
		return -EROFS;
	r->err = store_txn_put(r->t, dbi, id, B3TREE_ID_LEN, val, vlen);
	return r->err;
}

static int rp_del(struct rpass *r, unsigned int dbi, const uint8_t *id)
{
	int err;

	if (r->ro || r->err)
		return -EROFS;
	err = store_txn_del(r->t, dbi, id, B3TREE_ID_LEN);
	if (err != -ENOENT) /* a key not there leaves t alive */
		r->err = err;
	return r->err;
}

/* The blob file goes only with its entry. */
static void drop_entry(struct rpass *r, const uint8_t *id, const char *why)
{
	char hex[65];

	if (r->err)
		return; /* the pass is void: done again read-only */
	util_hex(hex, id, B3TREE_ID_LEN);
	if (r->ro) {
		log_warn(CS_MOD, "index entry %s left as it is (%s): not counted until repaired",
			 hex, why);
		return;
	}
	log_warn(CS_MOD, "dropping index entry %s: %s", hex, why);
	if (!rp_del(r, r->cs->db_idx, id) && !rp_del(r, r->cs->db_cvs, id) &&
	    !rp_del(r, r->cs->db_bits, id))
		cn_blob_unlink(r->cs, id);
}

static int file_size(const char *p, uint64_t *size)
{
	struct stat sb;

	if (stat(p, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EINVAL;
	*size = (uint64_t)sb.st_size;
	return 0;
}

/* A partial's bitmap zeroed (nothing verified): 0 or -errno. */
static int reset_bits(struct rpass *r, const uint8_t *id, uint64_t nchunks)
{
	uint8_t *zero = calloc(1, cn_bits_len(nchunks));
	int err = zero ? rp_put(r, r->cs->db_bits, id, zero, cn_bits_len(nchunks)) : -ENOMEM;

	free(zero);
	return err;
}

/* Check one entry; returns 0 (kept, *size counted) or 1 (dropped or left). */
static int check_one(struct rpass *r, const uint8_t *id, uint64_t *size)
{
	struct cstore *cs = r->cs;
	struct cstore_info in;
	const uint8_t *cvs, *bits;
	char fin[4096], part[4096];
	uint64_t fsz = 0;
	uint8_t rec[REC_LEN];
	int err;

	err = cn_load_rec(cs, r->t, id, &in);
	if (err) {
		drop_entry(r, id, "damaged record");
		return 1;
	}
	err = cn_load_cvs(cs, r->t, id, in.nchunks, &cvs);
	if (!err)
		err = b3tree_verify_cvs(cvs, in.nchunks, in.size, id);
	if (err) {
		drop_entry(r, id, "CV list missing or not matching the id");
		return 1;
	}
	if (cstore_path(cs, id, 0, fin, sizeof(fin)) ||
	    cstore_path(cs, id, 1, part, sizeof(part))) {
		drop_entry(r, id, "path too long");
		return 1;
	}
	*size = in.size;
	if (in.state == CSTORE_PARTIAL) {
		if (cn_load_bits(cs, r->t, id, in.nchunks, &bits)) {
			log_warn(CS_MOD, "resetting damaged bitmap of a partial download");
			if (reset_bits(r, id, in.nchunks)) {
				drop_entry(r, id, "cannot reset bitmap");
				return 1;
			}
		}
		if (file_size(part, &fsz) == 0 && fsz == in.size)
			return 0;
		if (file_size(fin, &fsz) == 0 && fsz == in.size && rename(fin, part) == 0)
			return 0;
		/* Data gone: start the download over (the file made only once
		 * the bitmap is reset, never a fresh file under old bits). */
		if (reset_bits(r, id, in.nchunks) || cn_blob_create_part(cs, id, in.size)) {
			drop_entry(r, id, "partial file missing and cannot be recreated");
			return 1;
		}
		log_warn(CS_MOD, "partial download file was missing: restarted");
		return 0;
	}
	if (file_size(fin, &fsz) == 0) {
		if (fsz == in.size || in.state == CSTORE_BAD)
			return 0;
	} else if (file_size(part, &fsz) == 0 && fsz == in.size) {
		/* Completion interrupted between commit and rename. */
		if (rename(part, fin) == 0)
			return 0;
	} else {
		drop_entry(r, id, "blob file missing");
		return 1;
	}
	if (in.state != CSTORE_BAD) {
		char hex[65];

		util_hex(hex, id, B3TREE_ID_LEN);
		log_error(CS_MOD, "blob %s has the wrong length on disk: marked bad", hex);
		cn_rec_encode(rec, CSTORE_BAD, in.size, in.added);
		rp_put(r, cs->db_idx, id, rec, REC_LEN);
	}
	return 0;
}

/* One pass: 0, or -errno when the index cannot be read (r->err: a
 * repair was refused, the pass is void). */
static int check_all(struct rpass *r, struct idlist *l)
{
	int err;

	r->cs->used = 0;
	r->cs->nblobs = 0;
	l->n = 0;
	if ((err = store_txn_begin(r->cs->st, r->ro, &r->t)))
		return err;
	if ((err = store_txn_iter(r->t, r->cs->db_idx, collect_id, l)))
		goto out;
	for (size_t i = 0; i < l->n && !r->err; i++) {
		uint64_t size = 0;

		if (check_one(r, l->ids[i], &size))
			continue;
		r->cs->used += size;
		r->cs->nblobs++;
	}
	if (!r->err) {
		r->err = store_txn_commit(r->t);
		r->t = NULL;
	}
out:
	store_txn_abort(r->t);
	r->t = NULL;
	return err;
}

int cn_reconcile(struct cstore *cs)
{
	struct idlist l = {0};
	struct rpass r = { .cs = cs };
	int err = check_all(&r, &l);

	if (!err && r.err) {
		log_warn(CS_MOD,
			 "the chunk index's repairs cannot be stored (%s%s): opened without "
			 "them; a start with room makes them",
			 strerror(-r.err), r.err == -ENOSPC ? ": LMDB's map full, store.map_size" : "");
		r = (struct rpass){ .cs = cs, .ro = 1 };
		err = check_all(&r, &l);
	}
	free(l.ids);
	return err;
}

void cn_clean_staging(const char *blobdir)
{
	DIR *d = opendir(blobdir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, ".add-", 5))
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}
