// SPDX-License-Identifier: MIT
/*
 * A sealed item's follower (export_int.h): its plaintext written as its
 * chunks are committed, by a thread of the item's own ("weft-unseal",
 * docs/CONTENT.md "A sealed download's plaintext written as it arrives"):
 * each chunk the committer made durable is taken from the store (lent
 * from memory, else read), decrypted and written at its plaintext offset,
 * the whole pages with O_DIRECT and the two partial ones at its ends
 * buffered (a segment's plaintext is 16 bytes short of 256 KiB, so its
 * ends fall inside pages its neighbours share). The export (export.c)
 * then writes the chunks it did not, the same way (cn_export_unsealed).
 */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "content/chunkbuf.h"
#include "content/export_int.h"
#include "content/swarm_int.h"
#include "weft/log.h"
#include "weft/seal.h"

/* Followers at once in the process, each with UNSEAL_SLOTS buffers of
 * UNSEAL_BUF_LEN (8.3 MiB in all); a sealed download past them is
 * decrypted by its export, as before followers. */
#define UNSEAL_MAX 4
static atomic_uint unseal_live;

static void bit_put(uint8_t *bits, uint64_t i)
{
	bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* The follower's buffer: a batch of consecutive chunks' plaintext, placed
 * at the first one's offset within a page. */
#define UNSEAL_BUF_LEN (CN_COMMIT_MAX * SEAL_SEG_PLAIN + DIO_ALIGN)

/* Sealed chunk i of t's item decrypted to dst (rbuf: CN_BUF_LEN, for a
 * chunk read from the disk); *plen its plaintext's length. -EBADMSG: the
 * chunk fails its tag; the store's errors for one it cannot give. */
static int unseal_get(struct content_node *cn, struct cn_export_tee *t, uint64_t i, uint8_t *dst,
		      uint8_t *rbuf, size_t *plen)
{
	const uint8_t *data;
	void *ref = NULL;
	size_t len;
	int rc;

	rc = cstore_lend_chunk(cn->cs, t->id, i, &data, &len, &ref);
	if (rc == -EWOULDBLOCK) {
		rc = cstore_read_chunk(cn->cs, t->id, i, rbuf, B3TREE_CHUNK_LEN, &len);
		data = rbuf;
		ref = NULL;
	}
	if (rc)
		return rc;
	rc = len >= SEAL_TAG_LEN && len <= SEAL_SEG_LEN ? 0 : -EBADMSG;
	if (!rc)
		rc = seal_seg_decrypt(t->key.item_key, t->key.plain_size, i, i + 1 == t->t.nbits,
				      data, len, dst);
	if (ref)
		cstore_unlend(ref);
	*plen = len - SEAL_TAG_LEN;
	return rc;
}

/*
 * A run of consecutive chunks' plaintext on its way out: decrypted into
 * buf at its first byte's place within a page, [off, end) of the file;
 * its whole pages [lo, hi) go with one O_DIRECT write, the partial pages
 * at its ends buffered (they hold a neighbour's bytes too). n chunks, in
 * idx (0: the slot is free).
 */
struct unseal_slot {
	uint8_t *buf;
	uint64_t idx[CN_COMMIT_MAX];
	size_t n;
	uint64_t off, end, lo, hi;
};

/* The follower's writes: through its own ring, UNSEAL_SLOTS runs out at
 * once while it decrypts the next (ring_ok), else each waited for (the
 * export's: one slot). */
#define UNSEAL_SLOTS 2
struct unseal_io {
	struct io_uring ring;
	int ring_ok;
	int no_submit; /* a submission failed: its entry may still sit in
			* the ring, so nothing is submitted again (reaping
			* what is out goes on) */
	unsigned int nslots;
	struct unseal_slot s[UNSEAL_SLOTS];
	uint8_t *rbuf; /* a chunk read from the disk */
};

/* sl's chunks written (rc 0: set in t.bits), the slot free again */
static void slot_done(struct cn_export_tee *t, struct unseal_slot *sl, int rc)
{
	for (size_t g = 0; g < sl->n && !rc; g++) {
		bit_put(t->t.bits, sl->idx[g]);
		t->t.count++;
	}
	sl->n = 0;
}

/* sl's whole pages written and waited for: through o.fd (O_DIRECT; -1
 * once refused, then through bfd) */
static int slot_write_sync(struct cn_export_tee *t, struct unseal_slot *sl)
{
	uint64_t base = sl->off / DIO_ALIGN * DIO_ALIGN;

	return cn_export_write(t->bfd, &t->o.fd, sl->buf + (sl->lo - base),
			       (size_t)(sl->hi - sl->lo), sl->lo);
}

/* One O_DIRECT write of the ring's reaped (waited for when wait): a short
 * or failed one written again buffered (-EINVAL: O_DIRECT refused, not
 * tried again). 0 when none was out. */
static int unseal_reap(struct unseal_io *io, struct cn_export_tee *t, bool wait)
{
	struct io_uring_cqe *cqe;
	struct unseal_slot *sl;
	int res, rc;

	do
		rc = wait ? io_uring_wait_cqe(&io->ring, &cqe) : io_uring_peek_cqe(&io->ring, &cqe);
	while (rc == -EINTR);
	if (rc < 0)
		return rc == -EAGAIN ? 0 : rc;
	sl = &io->s[io_uring_cqe_get_data64(cqe) % UNSEAL_SLOTS];
	res = cqe->res;
	io_uring_cqe_seen(&io->ring, cqe);
	if (res == -EINVAL && t->o.fd >= 0) {
		close(t->o.fd);
		t->o.fd = -1;
	}
	rc = res == (int)(sl->hi - sl->lo) ? 0 : slot_write_sync(t, sl);
	slot_done(t, sl, rc);
	return 1;
}

/* A free slot: one whose write is done, reaped (waited for) if need be. */
static struct unseal_slot *unseal_slot_get(struct unseal_io *io, struct cn_export_tee *t)
{
	for (;;) {
		for (unsigned int k = 0; k < io->nslots; k++)
			if (!io->s[k].n)
				return &io->s[k];
		if (!io->ring_ok || unseal_reap(io, t, true) < 0)
			return NULL;
	}
}

/* sl's run written: the partial pages now, the whole ones through the
 * ring (not waited for) or now. */
static int unseal_put(struct unseal_io *io, struct cn_export_tee *t, struct unseal_slot *sl)
{
	uint64_t base = sl->off / DIO_ALIGN * DIO_ALIGN;
	struct io_uring_sqe *sqe;
	int rc = 0;

	sl->lo = base == sl->off ? sl->off : base + DIO_ALIGN;
	sl->hi = sl->end / DIO_ALIGN * DIO_ALIGN;
	if (sl->lo >= sl->hi) { /* within one page or two */
		rc = cn_pwrite_full(t->bfd, sl->buf + (sl->off - base), (size_t)(sl->end - sl->off),
				    sl->off);
		slot_done(t, sl, rc);
		return rc;
	}
	if (sl->lo > sl->off)
		rc = cn_pwrite_full(t->bfd, sl->buf + (sl->off - base), (size_t)(sl->lo - sl->off),
				    sl->off);
	if (!rc && sl->end > sl->hi)
		rc = cn_pwrite_full(t->bfd, sl->buf + (sl->hi - base), (size_t)(sl->end - sl->hi),
				    sl->hi);
	if (!rc && io->ring_ok && !io->no_submit && t->o.fd >= 0 &&
	    (sqe = io_uring_get_sqe(&io->ring))) {
		io_uring_prep_write(sqe, t->o.fd, sl->buf + (sl->lo - base),
				    (unsigned int)(sl->hi - sl->lo), sl->lo);
		io_uring_sqe_set_data64(sqe, (uint64_t)(sl - io->s));
		if (io_uring_submit(&io->ring) == 1)
			return 0; /* out: unseal_reap finishes it */
		io->no_submit = 1;
	}
	if (!rc)
		rc = slot_write_sync(t, sl);
	slot_done(t, sl, rc);
	return rc;
}

/*
 * Sealed chunks idx[0..n) of t's item (ascending, n <= CN_COMMIT_MAX)
 * decrypted run by run of consecutive ones into a slot each and written
 * (unseal_put); each chunk written is set in t.bits, now or when its
 * run's write is reaped. A chunk that fails ends its run; the rest go on.
 * Returns 0 or the first error met now.
 */
static int unseal_batch(struct content_node *cn, struct cn_export_tee *t, struct unseal_io *io,
			const uint64_t *idx, size_t n)
{
	int first = 0;

	for (size_t k = 0; k < n;) {
		struct unseal_slot *sl = unseal_slot_get(io, t);
		size_t lead, plen;
		int rc = 0;

		if (!sl)
			return first ?: -EIO;
		sl->off = sl->end = idx[k] * (uint64_t)SEAL_SEG_PLAIN;
		lead = (size_t)(sl->off % DIO_ALIGN);
		while (k + sl->n < n && idx[k + sl->n] == idx[k] + sl->n) {
			rc = unseal_get(cn, t, idx[k + sl->n], sl->buf + lead + (sl->end - sl->off),
					io->rbuf, &plen);
			if (rc)
				break;
			sl->idx[sl->n] = idx[k + sl->n];
			sl->n++;
			sl->end += plen;
		}
		k += sl->n + (rc != 0); /* a chunk that failed: skipped */
		if (sl->n)
			rc = unseal_put(io, t, sl) ?: rc;
		if (rc && !first)
			first = rc;
	}
	return first;
}

/* io's buffers (UNSEAL_SLOTS slots and its ring when async, else one
 * slot), -ENOMEM; unseal_io_end waits for its writes and frees them. */
static int unseal_io_init(struct unseal_io *io, bool async)
{
	memset(io, 0, sizeof(*io));
	io->ring_ok = async && io_uring_queue_init(UNSEAL_SLOTS, &io->ring, 0) == 0;
	io->nslots = io->ring_ok ? UNSEAL_SLOTS : 1;
	io->rbuf = cn_buf_alloc(CN_BUF_LEN);
	for (unsigned int k = 0; k < io->nslots; k++)
		io->s[k].buf = cn_buf_alloc(UNSEAL_BUF_LEN);
	for (unsigned int k = 0; k < io->nslots; k++)
		if (!io->s[k].buf)
			return -ENOMEM;
	return io->rbuf ? 0 : -ENOMEM;
}

/* Every write out waited for (reaped in any order) before the ring and
 * the buffers it writes from go. */
static void unseal_io_end(struct unseal_io *io, struct cn_export_tee *t)
{
	for (unsigned int k = 0; io->ring_ok && k < io->nslots;) {
		if (!io->s[k].n)
			k++;
		else if (unseal_reap(io, t, true) < 0)
			break; /* the ring is broken */
	}
	if (io->ring_ok)
		io_uring_queue_exit(&io->ring);
	for (unsigned int k = 0; k < io->nslots; k++) {
		if (io->s[k].n) { /* a write never reaped may still read it: kept */
			log_warn(CN_MOD, "sealed copy: a write's buffer kept, its ring broken");
			continue;
		}
		cn_buf_free(io->s[k].buf);
	}
	cn_buf_free(io->rbuf);
}

/* The follower: each chunk the commits hand over (handed) written; one it
 * cannot write (decryption or the disk failed) is left to the export,
 * which says why. Its buffers and ring are its own, taken once. */
static void *unseal_run(void *arg)
{
	struct cn_export_tee *t = arg;
	struct cn_unseal *u = &t->u;
	uint64_t take[CN_COMMIT_MAX];
	struct unseal_io io;
	bool ok = unseal_io_init(&io, true) == 0;
	uint64_t skip = 0; /* test builds: every skip-th chunk left to the export */
	size_t n;

#ifdef WEFT_TEST_HOOKS
	if (getenv("WEFT_CONTENT_TEST_UNSEAL_SKIP"))
		skip = strtoull(getenv("WEFT_CONTENT_TEST_UNSEAL_SKIP"), NULL, 10);
#endif

	pthread_mutex_lock(&u->mu);
	for (;;) {
		while (!u->nhanded && !u->stop)
			pthread_cond_wait(&u->cv, &u->mu);
		if (!u->nhanded)
			break;
		/* ascending from the cursor, to its wrap */
		for (n = 0; n < CN_COMMIT_MAX && u->nhanded; u->cursor++) {
			if (u->cursor >= t->t.nbits) {
				u->cursor = 0;
				if (n)
					break;
			}
			if (cn_bit_get(u->handed, u->cursor)) {
				u->handed[u->cursor / 8] &= (uint8_t) ~(1u << (u->cursor % 8));
				u->nhanded--;
				if (!skip || u->cursor % skip)
					take[n++] = u->cursor;
			}
		}
		pthread_mutex_unlock(&u->mu);
		if (ok)
			(void)unseal_batch(t->cn, t, &io, take, n);
		while (ok && io.ring_ok && unseal_reap(&io, t, false) > 0)
			;
		pthread_mutex_lock(&u->mu);
	}
	pthread_mutex_unlock(&u->mu);
	unseal_io_end(&io, t);
	return NULL;
}

void cn_unseal_stop(struct cn_export_tee *t, bool drain)
{
	if (!t->u.running)
		return;
	pthread_mutex_lock(&t->u.mu);
	if (!drain) { /* the item failed or the job was cancelled */
		memset(t->u.handed, 0, (size_t)(t->t.nbits + 7) / 8);
		t->u.nhanded = 0;
	}
	t->u.stop = 1;
	pthread_cond_signal(&t->u.cv);
	pthread_mutex_unlock(&t->u.mu);
	pthread_join(t->u.th, NULL);
	pthread_cond_destroy(&t->u.cv);
	pthread_mutex_destroy(&t->u.mu);
	t->u.running = 0;
	atomic_fetch_sub(&unseal_live, 1);
}

static int unseal_spawn(struct cn_export_tee *t, uint64_t nchunks)
{
	int rc;

	t->bfd = cn_out_reopen(&t->o, 0);
	t->u.handed = calloc((size_t)(nchunks + 7) / 8, 1);
	if (t->bfd < 0 || !t->u.handed)
		return -ENOMEM;
	pthread_mutex_init(&t->u.mu, NULL);
	pthread_cond_init(&t->u.cv, NULL);
	rc = log_thread_create_helper(&t->u.th, NULL, unseal_run, t, "weft-unseal");
	if (rc) {
		pthread_cond_destroy(&t->u.cv);
		pthread_mutex_destroy(&t->u.mu);
		return -rc;
	}
	t->u.running = 1;
	return 0;
}

int cn_unseal_start(struct cn_export_tee *t, uint64_t nchunks)
{
	int rc;

	if (atomic_fetch_add(&unseal_live, 1) >= UNSEAL_MAX) {
		atomic_fetch_sub(&unseal_live, 1);
		return -EBUSY;
	}
	rc = unseal_spawn(t, nchunks);
	if (rc)
		atomic_fetch_sub(&unseal_live, 1);
	return rc;
}

void cn_unseal_hand(struct cn_export_tee *t, const uint64_t *idx, size_t n)
{
	struct cn_unseal *u = &t->u;
	size_t added = 0;

	if (!u->running)
		return;
	pthread_mutex_lock(&u->mu);
	for (size_t k = 0; k < n; k++) {
		if (idx[k] < t->t.nbits && !cn_bit_get(u->handed, idx[k])) {
			bit_put(u->handed, idx[k]);
			u->nhanded++;
			added++;
		}
	}
	if (added)
		pthread_cond_signal(&u->cv);
	pthread_mutex_unlock(&u->mu);
}

int cn_export_unsealed(struct content_node *cn, const uint8_t id[32], struct cn_export_tee *t)
{
	struct cstore_info info;
	struct unseal_io io = {0};
	uint64_t idx[CN_COMMIT_MAX];
	size_t n = 0;
	int rc;

	rc = memcmp(id, t->id, sizeof(t->id)) ? -EINVAL : cn_export_info(cn, id, &info, t->t.nbits);
	if (rc)
		return rc;
	if (t->t.count < info.nchunks) {
		rc = unseal_io_init(&io, false);
		for (uint64_t i = 0; i < info.nchunks && !rc; i++) {
			if (!cn_bit_get(t->t.bits, i))
				idx[n++] = i;
			if (n == CN_COMMIT_MAX || (n && i + 1 == info.nchunks)) {
				rc = unseal_batch(cn, t, &io, idx, n);
				n = 0;
			}
		}
		unseal_io_end(&io, t);
	}
	if (!rc)
		rc = cn_out_finish(&t->o, t->bfd, (int64_t)t->key.plain_size, t->path);
	t->published = !rc;
	return rc;
}
