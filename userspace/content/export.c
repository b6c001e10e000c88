// SPDX-License-Identifier: MIT
/*
 * Export: a complete blob of the store written out to a path the user
 * chose, every chunk re-verified on the way (a damaged one is marked bad
 * by the store and the export refused); a sealed item is decrypted chunk
 * by chunk on its way to the user's file. Called by a download job when an
 * item is done; calls only the chunk store.
 *
 * A download's plain copy is written as its chunks arrive (docs/CONTENT.md
 * "The user's copy written as it arrives"): the job opens the copy's
 * temporary file at the item's first commit and each commit writes the
 * chunks it makes durable there too, from the buffers they were verified
 * in (cstore_commit_chunks_tee); once the item is held, the export copies
 * only the chunks no commit wrote (held before, reused from a previous
 * version, written early), re-verified as before, then syncs and renames.
 * A 1 GiB download's copy read back and written after its fetch took
 * 1.3-3.0 s of the Zen 5 guest of stop 86, the user waiting.
 *
 * A sealed item's plaintext is written as its chunks are committed too,
 * by a thread of the item's own (export_unseal.c); the export then does
 * the chunks it did not.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "content/chunkbuf.h"
#include "content/chunkstore_int.h"
#include "content/content_node_int.h"
#include "content/export_int.h"
#include "content/swarm_int.h"
#include "weft/log.h"
#include "weft/seal.h"
#include "weft/util.h"

/* A plain copy's chunks go out EXPORT_BATCH at a time, with one O_DIRECT
 * write when the store uses direct I/O: no page-cache copy of the user's
 * file (on a guest whose new pages are dear, 40% of a 1 GiB download's
 * CPU), one trip through the block layer per 4 MiB (docs/CONTENT.md "A
 * download's export"); a refusal (EINVAL) falls back to buffered writes. */
#define EXPORT_BATCH 16

static bool bit_set(const uint8_t *bits, uint64_t i)
{
	return bits && (bits[i / 8] >> (i % 8)) & 1;
}

/* A plain copy into fd (and dfd, the same file opened with O_DIRECT, or
 * -1): every chunk but those set in skip (NULL: none) read back and
 * re-verified (cstore_read_chunk) into bbuf (EXPORT_BATCH chunks,
 * aligned), each run of up to EXPORT_BATCH chunks written with one call. */
static int export_batches(struct content_node *cn, const uint8_t id[32],
			  const struct cstore_info *info, uint8_t *bbuf, int fd, int *dfd,
			  const uint8_t *skip)
{
	for (uint64_t i = 0; i < info->nchunks && info->size;) {
		uint64_t start;
		size_t fill = 0, len;
		int rc;

		if (bit_set(skip, i)) {
			i++;
			continue;
		}
		for (start = i; i < info->nchunks && i - start < EXPORT_BATCH && !bit_set(skip, i);
		     i++) {
			rc = cstore_read_chunk(cn->cs, id, i, bbuf + fill, B3TREE_CHUNK_LEN, &len);
			if (rc)
				return rc;
			fill += len;
		}
		rc = cn_export_write(fd, dfd, bbuf, fill - fill % DIO_ALIGN,
				     start * B3TREE_CHUNK_LEN);
		if (!rc && fill % DIO_ALIGN)
			rc = cn_export_write(fd, dfd, bbuf + fill - fill % DIO_ALIGN,
					     fill % DIO_ALIGN,
					     start * B3TREE_CHUNK_LEN + fill - fill % DIO_ALIGN);
		if (rc)
			return rc;
	}
	return 0;
}

/* Every chunk of a complete blob read back and re-verified (a damaged one
 * is marked bad by cstore_read_chunk and the export refused); with fd >= 0
 * each is also written there, decrypted first when key is given (a sealed
 * item: the plaintext goes to fd only, never to the store). */
static int export_chunks(struct content_node *cn, const uint8_t id[32],
			 const struct cstore_info *info, uint8_t *buf, int fd,
			 const struct cn_export_key *key)
{
	size_t len;
	int rc;

	for (uint64_t i = 0; i < info->nchunks && (info->size || key); i++) {
		rc = cstore_read_chunk(cn->cs, id, i, buf, B3TREE_CHUNK_LEN, &len);
		if (rc)
			return rc;
		if (key) {
			/* -EBADMSG: a chunk that proves out against the CV list
			 * but fails its tag was sealed wrongly by the publisher */
			rc = seal_seg_decrypt(key->item_key, key->plain_size, i,
					      i + 1 == info->nchunks, buf, len, buf);
			if (rc)
				return rc;
			len -= SEAL_TAG_LEN;
		}
		for (size_t off = 0; fd >= 0 && off < len;) {
			ssize_t w = write(fd, buf + off, len - off);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			off += (size_t)w;
		}
	}
	return 0;
}

/*
 * The output file is a copy, written and synced (the default: the user's
 * file and the store's are independent). With link (asked for by the
 * caller: as_link) it is a second name of the store's file (link(2)) when both are
 * on one filesystem, made read-only (0444: the store serves from it, and
 * an edit in place would make it fail re-verification and be marked bad);
 * a copy otherwise. Either way every chunk is re-verified first, but for
 * a link of a blob the caller stored itself whole (self). A copy
 * writes and syncs the whole file again at the end of each download: in
 * a 51-node lab the 50 exports of 256 MiB at once were 10% of the
 * machine's CPU and the last seconds of the distribution (docs/LAB.md).
 */
static int export_common(struct content_node *cn, const uint8_t id[32], const char *path,
			 bool as_link, bool self, const struct cn_export_key *key)
{
	struct out_tmp o = {.fd = -1};
	struct cstore_info info;
	char lnk[PATH_MAX + 32], dir[PATH_MAX], blob[PATH_MAX];
	uint8_t *buf = NULL, *bbuf = NULL;
	int rc;

	rc = cn_export_info(cn, id, &info, 0);
	if (rc)
		return rc;
	buf = malloc(B3TREE_CHUNK_LEN);
	if (!buf)
		return -ENOMEM;
	if (as_link && !key && cstore_path(cn->cs, id, 0, blob, sizeof(blob)) == 0 &&
	    cn_out_tmp_name(path, lnk, sizeof(lnk)) == 0 &&
	    cn_out_dir(path, dir, sizeof(dir)) == 0 && link(blob, lnk) == 0) {
		/* self: every chunk was verified as it arrived and written by
		 * this process to a file only it writes, moments ago; reading
		 * the whole blob back to hash it again was 40% of a 51-node
		 * lab's BLAKE3 work (docs/CONTENT.md "A download's export") */
		rc = self ? 0 : export_chunks(cn, id, &info, buf, -1, NULL);
		if (!rc && chmod(lnk, 0444))
			rc = -errno;
		if (!rc)
			rc = rename(lnk, path) ? -errno : 0;
		/* path already a name of the blob (exported before): rename()
		 * of two names of one file succeeds and leaves both */
		(void)unlink(lnk);
		goto out;
	}
	/* a sealed item's plaintext too: the folder the user chose (and the
	 * umask) decide who reads it, as for any download */
	rc = cn_out_open(&o, path, 0);
	if (rc)
		goto out;
	/* a batch's buffer: 4 MiB, or the blob's chunks when fewer; one per
	 * export, so at most CONTENT_MAX_JOBS at once, freed at its end */
	if (!key && info.nchunks > 1 &&
	    !posix_memalign((void **)&bbuf, DIO_ALIGN,
			    (size_t)(info.nchunks < EXPORT_BATCH ? info.nchunks : EXPORT_BATCH) *
				B3TREE_CHUNK_LEN)) {
		int dfd = cstore_direct_io(cn->cs) ? cn_out_reopen(&o, O_DIRECT) : -1;

		rc = export_batches(cn, id, &info, bbuf, o.fd, &dfd, NULL);
		if (dfd >= 0)
			close(dfd);
	} else {
		rc = export_chunks(cn, id, &info, buf, o.fd, key);
	}
	if (!rc)
		rc = cn_out_finish(&o, o.fd, -1, path);
out:
	cn_out_close(&o, !rc);
	if (key)
		sodium_memzero(buf, B3TREE_CHUNK_LEN);
	free(buf);
	free(bbuf);
	return rc;
}

int cn_export(struct content_node *cn, const uint8_t id[32], const char *path, bool as_link,
	      bool self)
{
	return export_common(cn, id, path, as_link, self, NULL);
}

int cn_export_sealed(struct content_node *cn, const uint8_t id[32], const char *path,
		     const struct cn_export_key *key)
{
	return export_common(cn, id, path, false, false, key);
}

/* Not under the job lock: t's writes still out waited for (unless
 * drained already), its follower stopped, its file closed (and removed,
 * if named and not published). */
static void tee_free(struct content_node *cn, struct cn_export_tee *t)
{
	if (!t)
		return;
	if (t->t.fd >= 0)
		cstore_tee_drain(cn->cs, &t->t);
	cn_unseal_stop(t, false); /* the export's stopped it already */
	if (t->bfd >= 0)
		close(t->bfd);
	cn_out_close(&t->o, t->published);
	free(t->t.bits);
	free(t->u.handed);
	sodium_memzero(&t->key, sizeof(t->key));
	free(t);
}

void cn_job_tee_open(struct cn_job *j, const char *rel, const struct cn_export_key *key)
{
	struct cn_export_tee *t;

	cn_job_tee_close(j);
	if (!j->rq.out[0] || (j->rq.link && !key) || !cstore_direct_io(j->cn->cs))
		return;
	t = calloc(1, sizeof(*t));
	if (!t)
		return; /* the export copies it all */
	t->t.fd = -1;
	t->o.fd = -1;
	t->bfd = -1;
	t->cn = j->cn;
	if (snprintf(t->path, sizeof(t->path), "%s/%s", j->rq.out, rel) >= (int)sizeof(t->path)) {
		free(t); /* the export says the path is too long */
		return;
	}
	if (key) {
		t->sealed = 1;
		t->key = *key;
		memcpy(t->id, j->cur, sizeof(t->id));
	}
	j->tee = t;
}

void cn_job_tee_start(struct cn_job *j)
{
	struct cn_export_tee *t = j->tee;
	uint8_t *bits;
	int rc;

	if (!t || t->tried)
		return;
	t->tried = 1;
	if (j->nchunks < 2 || !(bits = calloc((size_t)(j->nchunks + 7) / 8, 1)))
		return; /* the export copies it */
	pthread_mutex_unlock(&j->mu);
	rc = cn_out_open(&t->o, t->path, O_DIRECT);
	if (!rc && t->sealed) {
		t->t.nbits = j->nchunks; /* before the follower reads it */
		t->t.bits = bits;
		rc = cn_unseal_start(t, j->nchunks);
		if (rc) {
			t->t.bits = NULL;
			if (t->bfd >= 0)
				close(t->bfd);
			t->bfd = -1;
			cn_out_close(&t->o, false);
		}
	}
	pthread_mutex_lock(&j->mu);
	if (rc) {
		free(bits);
		return;
	}
	t->t.bits = bits;
	t->t.nbits = j->nchunks;
	if (!t->sealed)
		t->t.fd = t->o.fd;
}

struct cstore_tee *cn_job_tee(struct cn_job *j)
{
	return j->tee && j->tee->t.fd >= 0 ? &j->tee->t : NULL;
}

void cn_job_tee_committed(struct cn_job *j, const uint64_t *idx, size_t n)
{
	if (j->tee)
		cn_unseal_hand(j->tee, idx, n);
}

void cn_job_tee_close(struct cn_job *j)
{
	struct cn_export_tee *t = j->tee;

	if (!t)
		return;
	j->tee = NULL;
	pthread_mutex_unlock(&j->mu);
	tee_free(j->cn, t);
	pthread_mutex_lock(&j->mu);
}

/* The export of a download whose commits wrote t (its writes drained,
 * t->t.fd given back to t->o): the chunks they did not write copied
 * (re-verified) through a second, buffered descriptor beside the O_DIRECT
 * one, then the file sized, synced and named. A close failing after that
 * is no failure: the file is the user's, its bytes synced. */
static int export_teed(struct content_node *cn, const uint8_t id[32], struct cn_export_tee *t)
{
	struct cstore_info info;
	uint8_t *bbuf = NULL;
	uint64_t left;
	int fd, rc;

	rc = cn_export_info(cn, id, &info, t->t.nbits);
	if (rc)
		return rc;
	fd = cn_out_reopen(&t->o, 0);
	if (fd < 0)
		return -errno;
	left = info.nchunks - t->t.count;
	if (left &&
	    posix_memalign((void **)&bbuf, DIO_ALIGN,
			   (size_t)(left < EXPORT_BATCH ? left : EXPORT_BATCH) * B3TREE_CHUNK_LEN))
		rc = -ENOMEM;
	if (left && !rc)
		rc = export_batches(cn, id, &info, bbuf, fd, &t->o.fd, t->t.bits);
	if (!rc)
		rc = cn_out_finish(&t->o, fd, (int64_t)info.size, t->path);
	t->published = !rc;
	close(fd);
	free(bbuf);
	return rc;
}

void cn_job_export(struct cn_job *j, const uint8_t id[32], const char *rel,
		   const struct cn_export_key *key)
{
	struct cn_export_tee *t = j->tee;
	bool self = j->stored_self == j->nchunks;
	char path[PATH_MAX];
	uint64_t t0, early = 0;
	int rc;

	if (!j->rq.out[0]) {
		cn_job_tee_close(j);
		return;
	}
	if (snprintf(path, sizeof(path), "%s/%s", j->rq.out, rel) >= (int)sizeof(path)) {
		cn_job_tee_close(j);
		j->status = -ENAMETOOLONG;
		return;
	}
	j->tee = NULL; /* ours until freed below */
	t0 = util_now_ms();
	pthread_mutex_unlock(&j->mu);
	if (t && t->sealed && t->u.running && key) {
		cn_unseal_stop(t, true); /* what the commits handed it, written */
		early = t->t.count;
		rc = cn_export_unsealed(j->cn, id, t);
		early = rc ? 0 : early;
	} else if (t && t->t.fd >= 0 && !key) {
		cstore_tee_drain(j->cn->cs, &t->t); /* its bits final */
		t->t.fd = -1;			    /* the descriptor o's alone */
		rc = export_teed(j->cn, id, t);
		early = rc ? 0 : t->t.count;
	} else
		rc = key ? cn_export_sealed(j->cn, id, path, key)
			 : cn_export(j->cn, id, path, j->rq.link, self);
	tee_free(j->cn, t);
	pthread_mutex_lock(&j->mu);
	j->export_ms += util_now_ms() - t0;
	j->copied_early += early;
	if (rc == -EBADMSG && key) {
		/* the chunk proved out against the CV list the publisher
		 * signed, so the publisher sealed it wrongly */
		snprintf(j->error, sizeof(j->error),
			 "%.80s: a chunk fails its seal (sealed wrongly by the publisher)", rel);
		j->status = rc;
	} else if (rc) {
		snprintf(j->error, sizeof(j->error), "writing %.100s: %s", path, strerror(-rc));
		j->status = rc;
	}
}
