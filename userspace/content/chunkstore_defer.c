// SPDX-License-Identifier: MIT
/*
 * Chunk writes in batches (docs/CONTENT.md "Writes in batches"): a
 * download's chunk is verified when it arrives (cstore_put_chunk_later)
 * and its buffer given to the memory cache as before (chunkstore_hot.c),
 * which lends it here at once; the blob's next commit (cstore_commit_chunks,
 * which a download makes every CN_COMMIT_MAX chunks or CN_COMMIT_MS)
 * writes all of them at once: one io_uring submission of up to
 * CSTORE_DEFER_MAX O_DIRECT writes, so one system call, one block-layer
 * plug and one doorbell of the disk (on a VM, a virtio notify: an exit to
 * the host) for the lot, where a pwrite each paid them per chunk. Then the
 * commit's fdatasync and its transaction as before. Nothing a reader sees
 * changes: a chunk is held, served and trusted only once committed, and the
 * commit writes it first.
 *
 * Bounded: at most CSTORE_DEFER_MAX chunks wait in a store, each a loan of
 * a buffer the cache holds anyway (a slot replaced meanwhile lets its
 * buffer go only when the loan ends); a put that finds no room writes the
 * oldest blob's chunks first. Without a memory cache (hot_chunks < 0)
 * each chunk is written when put, as before.
 * A chunk waiting here is lost with the process (as one written but not yet
 * committed was: its bit was never set, so it is fetched again). A blob
 * deleted drops its chunks. One mutex guards the list (never held across
 * I/O); another lets one batch at a time use the ring, on the download
 * threads, never on a packet path. No io_uring (an old kernel, a seccomp
 * policy): each chunk written with pwrite as before, still at the commit.
 */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "content/chunkstore_int.h"
#include "weft/log.h"

/* A write to a tee's file in flight: its buffer's loan is the slot's
 * until the write is reaped (by a later batch, or cstore_tee_drain). */
struct cn_tio {
	struct cstore_tee *tee; /* NULL: the slot is free */
	uint64_t index;
	void *ref;
	size_t len;
};
#define TIO_TAG (1ULL << 63) /* user_data of a tee write: TIO_TAG | slot */

struct cn_dent {
	uint8_t id[B3TREE_ID_LEN];
	uint64_t index, nchunks;
	const uint8_t *data; /* len bytes, lent by the memory cache (ref) */
	void *ref;
	size_t len;
	int done; /* written (write_batch) */
};

struct cn_defer {
	pthread_mutex_t mu; /* guards ent, n */
	struct cn_dent ent[CSTORE_DEFER_MAX]; /* in put order */
	unsigned int n;
	pthread_mutex_t ring_mu; /* guards ring, ring_state, tio: one batch at a time */
	struct io_uring ring;
	int ring_state; /* 0 not tried, 1 up, -1 unavailable (pwrite) */
	struct cn_tio tio[CSTORE_DEFER_MAX]; /* tee writes in flight */
	unsigned int ntio;
};

static int reap_one(struct cn_defer *d, struct cn_dent *e, unsigned int n);

int cn_defer_new(struct cstore *cs)
{
	struct cn_defer *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->ring_mu, NULL);
	cs->defer = d;
	return 0;
}

void cn_defer_free(struct cstore *cs)
{
	struct cn_defer *d = cs->defer;

	if (!d)
		return;
	for (unsigned int i = 0; i < d->n; i++)
		cn_hot_unlend(d->ent[i].ref);
	if (d->ring_state == 1) {
		while (d->ntio) /* tee writes out (their owners drained first) */
			reap_one(d, NULL, 0);
		io_uring_queue_exit(&d->ring);
	}
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->ring_mu);
	free(d);
	cs->defer = NULL;
}

/* Move id's entries (at most CSTORE_DEFER_MAX) out of the list into out. */
static unsigned int take_blob(struct cn_defer *d, const uint8_t *id, struct cn_dent *out)
{
	unsigned int n = 0, k = 0;

	pthread_mutex_lock(&d->mu);
	for (unsigned int i = 0; i < d->n; i++) {
		if (!memcmp(d->ent[i].id, id, B3TREE_ID_LEN))
			out[n++] = d->ent[i];
		else
			d->ent[k++] = d->ent[i];
	}
	d->n = k;
	pthread_mutex_unlock(&d->mu);
	return n;
}

/* tee's bit of chunk i set (written to its file): counted once. */
static void tee_mark(struct cstore_tee *tee, uint64_t i)
{
	if (i < tee->nbits && !(tee->bits[i / 8] & (1u << (i % 8)))) {
		tee->bits[i / 8] |= (uint8_t)(1u << (i % 8));
		tee->count++;
	}
}

/* ring_mu held: a tee write reaped (res: its result), its loan ended. */
static void tio_done(struct cn_defer *d, unsigned int slot, int res)
{
	struct cn_tio *t = &d->tio[slot];

	if (res == (int)t->len)
		tee_mark(t->tee, t->index);
	cn_hot_unlend(t->ref);
	t->tee = NULL;
	d->ntio--;
}

/* ring_mu held, the ring up: one completion waited for and taken: 1 when
 * a store write's (user_data < n: e's entry marked done when whole), 0 a
 * tee write's. */
static int reap_one(struct cn_defer *d, struct cn_dent *e, unsigned int n)
{
	struct io_uring_cqe *cqe;
	uint64_t u;

	while (io_uring_wait_cqe(&d->ring, &cqe) < 0)
		; /* -EINTR */
	u = cqe->user_data;
	if (u & TIO_TAG) {
		if ((u & ~TIO_TAG) < CSTORE_DEFER_MAX && d->tio[u & ~TIO_TAG].tee)
			tio_done(d, (unsigned int)(u & ~TIO_TAG), cqe->res);
		u = 0;
	} else {
		if (u < n && cqe->res == (int)e[u].len)
			e[u].done = 1;
		u = 1;
	}
	io_uring_cqe_seen(&d->ring, cqe);
	return (int)u;
}

/* The writes of e[0..n) through fd: one submission through the ring when
 * there is one, waited for; each e written whole is marked done. With a
 * tee, each is written to the tee's file too, in the same submission but
 * not waited for: the write and the buffer's loan (e's ref, NULL then)
 * belong to a tio slot until a later batch or cstore_tee_drain reaps it
 * and sets its bit. Without the ring nothing goes to the tee (its owner
 * copies what has no bit). */
static void write_batch(struct cn_defer *d, int fd, struct cn_dent *e, unsigned int n,
			struct cstore_tee *tee)
{
	unsigned int sub = 0, subt = 0, ks[CSTORE_DEFER_MAX];

	pthread_mutex_lock(&d->ring_mu);
	if (!d->ring_state)
		d->ring_state =
		    io_uring_queue_init(2 * CSTORE_DEFER_MAX, &d->ring, 0) == 0 ? 1 : -1;
	if (d->ring_state == 1) {
		/* room for this batch's tee writes: earlier ones reaped */
		while (tee && d->ntio && d->ntio + n > CSTORE_DEFER_MAX)
			reap_one(d, e, 0);
		for (unsigned int i = 0; i < n; i++) {
			struct io_uring_sqe *s = io_uring_get_sqe(&d->ring);

			if (!s)
				break;
			io_uring_prep_write(s, fd, e[i].data, (unsigned int)e[i].len,
					    e[i].index * B3TREE_CHUNK_LEN);
			io_uring_sqe_set_data64(s, i);
			sub++;
		}
		for (unsigned int i = 0, k = 0; tee && i < sub; i++) {
			struct io_uring_sqe *s;

			while (k < CSTORE_DEFER_MAX && d->tio[k].tee)
				k++;
			if (k == CSTORE_DEFER_MAX || !(s = io_uring_get_sqe(&d->ring)))
				break;
			io_uring_prep_write(s, tee->fd, e[i].data, (unsigned int)e[i].len,
					    e[i].index * B3TREE_CHUNK_LEN);
			io_uring_sqe_set_data64(s, TIO_TAG | k);
			d->tio[k] = (struct cn_tio){tee, e[i].index, e[i].ref, e[i].len};
			e[i].ref = NULL;
			ks[subt++] = k;
			d->ntio++;
		}
		if (sub && io_uring_submit(&d->ring) < 0) {
			/* nothing went in: this batch's tee writes' loans back
			 * to their entries, the earlier ones reaped, then the
			 * ring dropped with its SQEs */
			for (unsigned int i = 0; i < subt; i++) {
				e[i].ref = d->tio[ks[i]].ref;
				d->tio[ks[i]].tee = NULL;
				d->ntio--;
			}
			while (d->ntio)
				reap_one(d, e, 0);
			io_uring_queue_exit(&d->ring);
			d->ring_state = -1;
			sub = 0;
		}
		/* Every submitted store write is reaped before the batch
		 * ends (its buffer is lent to it until then); the tee's
		 * writes may still be out. Waiting on a disk write, not on a
		 * peer: no deadline of our own. */
		for (unsigned int got = 0; got < sub;)
			got += reap_one(d, e, n);
	}
	pthread_mutex_unlock(&d->ring_mu);
}

/* The writes the batch did not finish (short, refused, no ring): one at
 * a time, O_DIRECT then buffered as cstore_put_chunk does. */
static int write_rest(struct cstore *cs, int fd, struct cn_dent *e)
{
	const uint8_t *buf = e->data;
	int err = cn_pwrite_full(fd, buf, e->len, e->index * B3TREE_CHUNK_LEN);

	if (err == -EINVAL) { /* O_DIRECT refused after all: buffered */
		struct cn_fd f;

		cn_dio_refused(cs);
		if ((err = cn_fd_get(cs, e->id, CSTORE_PARTIAL, O_WRONLY, &f)))
			return err;
		err = cn_pwrite_full(f.fd, buf, e->len, e->index * B3TREE_CHUNK_LEN);
		cn_fd_put(cs, &f);
	}
	return err;
}

int cn_defer_flush(struct cstore *cs, const uint8_t *id, struct cstore_tee *tee)
{
	struct cn_defer *d = cs->defer;
	struct cn_dent e[CSTORE_DEFER_MAX];
	struct stat st[2];
	struct cn_fd f;
	unsigned int n;
	int err;

	if (!d || !(n = take_blob(d, id, e)))
		return 0;
	err = cn_fd_get(cs, id, CSTORE_PARTIAL, O_WRONLY | O_DIRECT, &f);
	if (err == -EINVAL) { /* O_DIRECT refused at open: buffered */
		cn_dio_refused(cs);
		err = cn_fd_get(cs, id, CSTORE_PARTIAL, O_WRONLY, &f);
	}
	if (!err) {
		/* the file before and after the store's own writes: its reads
		 * of them need no second pass while nothing else writes it
		 * (chunkstore_trust.c) */
		err = fstat(f.fd, &st[0]) < 0 ? -errno : 0;
		if (!err)
			write_batch(d, f.fd, e, n, tee);
		for (unsigned int i = 0; i < n && !err; i++)
			if (!e[i].done)
				err = write_rest(cs, f.fd, &e[i]);
		if (!err && fstat(f.fd, &st[1]) < 0)
			err = -errno;
		cn_fd_put(cs, &f);
		if (err)
			cn_fds_drop(cs, id);
	}
	for (unsigned int i = 0; i < n; i++) {
		if (!err)
			cn_trust_own(cs, id, e[i].index, e[i].nchunks, &st[0], &st[1]);
		if (e[i].ref) /* NULL: lent on to its tee write (write_batch) */
			cn_hot_unlend(e[i].ref);
	}
	if (err && err != -ENOENT)
		log_warn(CS_MOD, "writing %u chunks: %s", n, strerror(-err));
	return err;
}

void cstore_tee_drain(struct cstore *cs, struct cstore_tee *tee)
{
	struct cn_defer *d = cs ? cs->defer : NULL;
	unsigned int k;

	if (!d || !tee)
		return;
	pthread_mutex_lock(&d->ring_mu);
	for (;;) {
		for (k = 0; k < CSTORE_DEFER_MAX && d->tio[k].tee != tee; k++)
			;
		if (k == CSTORE_DEFER_MAX || d->ring_state != 1)
			break;
		reap_one(d, NULL, 0);
	}
	pthread_mutex_unlock(&d->ring_mu);
}

int cn_defer_put(struct cstore *cs, const uint8_t *id, uint64_t index, uint64_t nchunks,
		 void **alloc, size_t alen, size_t off, size_t len)
{
	struct cn_defer *d = cs->defer;
	uint8_t oldest[B3TREE_ID_LEN];
	struct cn_dent *e;
	unsigned int i;

	if (!d || !cs->hot || !cn_dio_use(cs, len) || ((uintptr_t)*alloc + off) % DIO_ALIGN)
		return 0;
	for (int tries = 0;; tries++) {
		pthread_mutex_lock(&d->mu);
		for (i = 0; i < d->n; i++)
			if (d->ent[i].index == index && !memcmp(d->ent[i].id, id, B3TREE_ID_LEN))
				break;
		if (i < d->n) { /* waiting already: nothing to take */
			pthread_mutex_unlock(&d->mu);
			return 1;
		}
		if (d->n < CSTORE_DEFER_MAX)
			break;
		memcpy(oldest, d->ent[0].id, B3TREE_ID_LEN); /* the list is in put order */
		pthread_mutex_unlock(&d->mu);
		if (tries)
			return 0;
		/* no room: the oldest blob's chunks written now (a download
		 * that ended without its commit leaves them) */
		(void)cn_defer_flush(cs, oldest, NULL);
	}
	/* d->mu held (then hot_mu inside: never the other way round) */
	e = &d->ent[d->n];
	if (!cn_hot_give_lend(cs, id, index, alloc, alen, off, len, &e->data, &e->ref)) {
		pthread_mutex_unlock(&d->mu); /* not taken (kept already): *alloc unchanged */
		return 0;
	}
	memcpy(e->id, id, B3TREE_ID_LEN);
	e->index = index;
	e->nchunks = nchunks;
	e->len = len;
	e->done = 0;
	d->n++;
	pthread_mutex_unlock(&d->mu);
	return 1;
}

void cn_defer_drop(struct cstore *cs, const uint8_t *id)
{
	struct cn_dent e[CSTORE_DEFER_MAX];
	unsigned int n;

	if (!cs->defer)
		return;
	n = take_blob(cs->defer, id, e);
	for (unsigned int i = 0; i < n; i++)
		cn_hot_unlend(e[i].ref);
}

unsigned int cn_defer_count(struct cstore *cs)
{
	unsigned int n;

	if (!cs->defer)
		return 0;
	pthread_mutex_lock(&cs->defer->mu);
	n = cs->defer->n;
	pthread_mutex_unlock(&cs->defer->mu);
	return n;
}
