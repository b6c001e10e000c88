// SPDX-License-Identifier: MIT
/*
 * Which chunks of complete blobs the store has verified itself and may read
 * back without hashing them again (docs/CONTENT.md "Chunks verified once").
 *
 * Per blob (at most CSTORE_TRUST_BLOBS, least recently used evicted; their
 * bitmaps together at most trust_bits_max bytes, CSTORE_TRUST_BITS_MAX by
 * default): the identity of
 * its file when its chunks were verified (device, inode, size, mtime and
 * ctime to the nanosecond) and a bit per chunk verified against that
 * identity. A read is trusted only when the file's identity, taken with
 * fstat after the read, is the one recorded and the chunk's bit is set.
 * Any change to the file through the file system (a write, a truncate, a
 * copy or rename over it, a utimensat) sets its ctime to the current time,
 * so the identity differs and every chunk is verified again.
 *
 * An identity is recorded only when the file's ctime is at least
 * trust_settle_ms old: file timestamps come from a coarse clock, and a
 * write in the same tick as the recorded stat would leave ctime unchanged.
 *
 * A partial blob's file is written by the store itself as chunks arrive,
 * so its identity changes with every chunk: its entry is an "own" one
 * instead (cn_trust_own), set by the store's own writes of chunks it has
 * just verified in memory: the file's device and inode, a bit per chunk
 * written, and the latest ctime seen by an fstat right after one of those
 * writes. A read of a partial blob is trusted when the file is the same
 * (device, inode), its ctime is no later than that, and the chunk's bit is
 * set: a change by anything else after the store's last write shows as a
 * later ctime, unless it lands within the same timestamp tick as that write
 * (docs/CONTENT.md "Chunks verified once"). An own entry never vouches for
 * a complete blob's read, nor a complete one for a partial's.
 *
 * A complete blob the store has just made itself needs no settle time
 * either (cn_trust_sealed): an add hashes the very bytes it writes to its
 * staged copy, and a download's own entry covers what it wrote; once the
 * file is renamed to its final name its identity then (the rename sets
 * ctime) is recorded as a complete blob's, every chunk of an add and the
 * own entry's chunks of a download, provided the file's size and mtime
 * did not move between the store's last write (a download's: its own
 * entry still holding) and the rename. The gap is the own entries' one:
 * a change by anything else between the store's last write and the fstat
 * right after it, or, where file timestamps are coarse, within the same
 * tick as that write. With multigrain timestamps (Linux 6.13 on: ext4,
 * xfs, btrfs, tmpfs; seen on 6.18's ext4 and tmpfs) a change after an
 * fstat always gets a later timestamp, so only the first remains.
 *
 * The table is in memory only: after a restart every chunk is verified on
 * its first read, as before. One mutex (trust_mu) guards it; callers hold
 * it for a scan of at most CSTORE_TRUST_BLOBS entries, never across I/O.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "content/chunkstore_int.h"

struct cn_trust_ent {
	uint8_t id[B3TREE_ID_LEN];
	int used;
	int own; /* set by the store's writes of a partial blob (cn_trust_own) */
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
	uint64_t nchunks;
	uint8_t *bits; /* ceil(nchunks / 8) bytes */
	uint64_t last; /* use stamp, for eviction */
};

struct cn_trust {
	struct cn_trust_ent e[CSTORE_TRUST_BLOBS];
	size_t bits_bytes; /* sum over entries */
	uint64_t stamp;
};

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int same_file(const struct cn_trust_ent *e, const struct stat *st)
{
	return !e->own && e->dev == (uint64_t)st->st_dev && e->ino == (uint64_t)st->st_ino &&
	       e->size == (uint64_t)st->st_size && e->mtime_ns == ts_ns(&st->st_mtim) &&
	       e->ctime_ns == ts_ns(&st->st_ctim);
}

static struct cn_trust_ent *find(struct cn_trust *tr, const uint8_t *id)
{
	for (size_t i = 0; i < CSTORE_TRUST_BLOBS; i++)
		if (tr->e[i].used && !memcmp(tr->e[i].id, id, B3TREE_ID_LEN))
			return &tr->e[i];
	return NULL;
}

static void drop(struct cn_trust *tr, struct cn_trust_ent *e)
{
	tr->bits_bytes -= cn_bits_len(e->nchunks);
	free(e->bits);
	memset(e, 0, sizeof(*e));
}

/* A free entry (free_ok) or else the least recently used one; NULL when
 * none is in use and free ones are not wanted. */
static struct cn_trust_ent *victim(struct cn_trust *tr, int free_ok)
{
	struct cn_trust_ent *v = NULL;

	for (size_t i = 0; i < CSTORE_TRUST_BLOBS; i++) {
		if (!tr->e[i].used) {
			if (free_ok)
				return &tr->e[i];
			continue;
		}
		if (!v || tr->e[i].last < v->last)
			v = &tr->e[i];
	}
	return v;
}

int cn_trust_new(struct cstore *cs)
{
	cs->trust = calloc(1, sizeof(*cs->trust));
	if (!cs->trust)
		return -ENOMEM;
	pthread_mutex_init(&cs->trust_mu, NULL);
	return 0;
}

void cn_trust_free(struct cstore *cs)
{
	if (!cs->trust)
		return;
	for (size_t i = 0; i < CSTORE_TRUST_BLOBS; i++)
		free(cs->trust->e[i].bits);
	free(cs->trust);
	cs->trust = NULL;
	pthread_mutex_destroy(&cs->trust_mu);
}

/* An own entry's file is st's, changed by nothing since the store's last
 * recorded write (ctime: see the top of the file). */
static int own_file(const struct cn_trust_ent *e, const struct stat *st)
{
	return e->own && e->dev == (uint64_t)st->st_dev && e->ino == (uint64_t)st->st_ino &&
	       ts_ns(&st->st_ctim) <= e->ctime_ns;
}

int cn_trust_check(struct cstore *cs, const uint8_t *id, uint64_t index, const struct stat *st,
		   int partial)
{
	struct cn_trust_ent *e;
	int ok = 0;

	if (!cs->trust)
		return 0;
	pthread_mutex_lock(&cs->trust_mu);
	e = find(cs->trust, id);
	if (e && index < e->nchunks && (partial ? own_file(e, st) : same_file(e, st)) &&
	    cn_bit_get(e->bits, index)) {
		e->last = ++cs->trust->stamp;
		ok = 1;
	}
	pthread_mutex_unlock(&cs->trust_mu);
	return ok;
}

/* A fresh entry for id (lock held): room made in the bitmap budget by
 * forgetting the least recently used; NULL when out of memory. */
static struct cn_trust_ent *fresh(struct cstore *cs, const uint8_t *id, uint64_t nchunks,
				  const struct stat *st, int own)
{
	struct cn_trust *tr = cs->trust;
	struct cn_trust_ent *e;
	size_t blen = cn_bits_len(nchunks);

	while (tr->bits_bytes + blen > cs->trust_bits_max && (e = victim(tr, 0)))
		drop(tr, e);
	e = victim(tr, 1);
	if (e->used)
		drop(tr, e);
	e->bits = calloc(1, blen ? blen : 1);
	if (!e->bits)
		return NULL;
	memcpy(e->id, id, B3TREE_ID_LEN);
	e->used = 1;
	e->own = own;
	e->dev = (uint64_t)st->st_dev;
	e->ino = (uint64_t)st->st_ino;
	e->size = (uint64_t)st->st_size;
	e->mtime_ns = ts_ns(&st->st_mtim);
	e->ctime_ns = ts_ns(&st->st_ctim);
	e->nchunks = nchunks;
	tr->bits_bytes += blen;
	return e;
}

static void set_bit(struct cn_trust *tr, struct cn_trust_ent *e, uint64_t index)
{
	e->bits[index / 8] |= (uint8_t)(1u << (index % 8));
	e->last = ++tr->stamp;
}

void cn_trust_note(struct cstore *cs, const uint8_t *id, uint64_t index, uint64_t nchunks,
		   const struct stat *st)
{
	struct cn_trust *tr = cs->trust;
	struct cn_trust_ent *e;
	struct timespec now;

	if (!tr || index >= nchunks || cn_bits_len(nchunks) > cs->trust_bits_max ||
	    clock_gettime(CLOCK_REALTIME, &now))
		return;
	/* A file changed within the settle time may change again within the
	 * same timestamp tick: not recorded (verified again next time). */
	if (ts_ns(&st->st_ctim) > ts_ns(&now) - (int64_t)cs->trust_settle_ms * 1000000 ||
	    ts_ns(&st->st_mtim) > ts_ns(&now) - (int64_t)cs->trust_settle_ms * 1000000)
		return;
	pthread_mutex_lock(&cs->trust_mu);
	e = find(tr, id);
	if (e && (e->nchunks != nchunks || !same_file(e, st)))
		drop(tr, e); /* another file now: what was verified is forgotten */
	else if (e)
		goto set;
	if (!(e = fresh(cs, id, nchunks, st, 0)))
		goto out;
set:
	set_bit(tr, e, index);
out:
	pthread_mutex_unlock(&cs->trust_mu);
}

void cn_trust_own(struct cstore *cs, const uint8_t *id, uint64_t index, uint64_t nchunks,
		  const struct stat *pre, const struct stat *post)
{
	struct cn_trust *tr = cs->trust;
	struct cn_trust_ent *e;

	if (!tr || index >= nchunks || cn_bits_len(nchunks) > cs->trust_bits_max)
		return;
	pthread_mutex_lock(&cs->trust_mu);
	e = find(tr, id);
	/* A complete blob's entry, another file, or this one changed by
	 * something else since the last write recorded (the change would
	 * hide under this write's ctime): what it vouched for is forgotten. */
	if (e && (e->nchunks != nchunks || !own_file(e, pre) ||
		  e->dev != (uint64_t)post->st_dev || e->ino != (uint64_t)post->st_ino ||
		  ts_ns(&post->st_ctim) < e->ctime_ns))
		drop(tr, e);
	else if (e)
		goto set;
	if (!(e = fresh(cs, id, nchunks, post, 1)))
		goto out;
set:
	e->ctime_ns = ts_ns(&post->st_ctim);
	set_bit(tr, e, index);
out:
	pthread_mutex_unlock(&cs->trust_mu);
}

void cn_trust_sealed(struct cstore *cs, const uint8_t *id, uint64_t nchunks,
		     const struct stat *written, const struct stat *post, int all)
{
	struct cn_trust *tr = cs->trust;
	struct cn_trust_ent *e;
	int same;

	if (!tr)
		return;
	/* the rename sets ctime and nothing else; another writer in between
	 * would have moved mtime too (see the top of the file) */
	same = written->st_dev == post->st_dev && written->st_ino == post->st_ino &&
	       written->st_size == post->st_size &&
	       ts_ns(&written->st_mtim) == ts_ns(&post->st_mtim);
	pthread_mutex_lock(&cs->trust_mu);
	e = find(tr, id);
	if (e && (all || !e->own || e->nchunks != nchunks || !own_file(e, written) || !same)) {
		drop(tr, e);
		e = NULL;
	}
	if (!same || cn_bits_len(nchunks) > cs->trust_bits_max)
		goto out;
	if (all) {
		if (!(e = fresh(cs, id, nchunks, post, 0)))
			goto out;
		memset(e->bits, 0xff, cn_bits_len(nchunks));
		e->last = ++tr->stamp;
	} else if (e) {
		e->own = 0; /* a complete blob's entry now, of the renamed file */
		e->size = (uint64_t)post->st_size;
		e->mtime_ns = ts_ns(&post->st_mtim);
		e->ctime_ns = ts_ns(&post->st_ctim);
		e->last = ++tr->stamp;
	}
out:
	pthread_mutex_unlock(&cs->trust_mu);
}

void cn_trust_forget(struct cstore *cs, const uint8_t *id)
{
	struct cn_trust_ent *e;

	if (!cs->trust)
		return;
	pthread_mutex_lock(&cs->trust_mu);
	e = find(cs->trust, id);
	if (e)
		drop(cs->trust, e);
	pthread_mutex_unlock(&cs->trust_mu);
}
