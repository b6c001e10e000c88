// SPDX-License-Identifier: MIT
/*
 * Chunks kept in memory after the store verified and wrote them
 * (docs/CONTENT.md "Chunks kept in memory"): in a swarm the chunks a
 * downloader just received are the ones its peers ask it for next (they
 * are the rarest), and reading one back meant an O_DIRECT read from the
 * disk and, the blob being partial, a second BLAKE3 pass. A chunk found
 * here is served from memory with neither: its bytes were verified
 * against the blob's CV list when cstore_put_chunk took them and have not
 * left the process since, and a (content id, index) pair names the same
 * bytes for good, so nothing here can go stale; a blob marked bad or
 * deleted is refused by cstore_read_chunk before it looks here, and
 * cstore_delete drops its chunks to give the memory back.
 *
 * At most cstore_opts.hot_chunks chunks (CSTORE_HOT_CHUNKS by default;
 * 256 KiB each), the least recently used replaced; every buffer
 * goes back to the allocator once the cache has gone CSTORE_HOT_IDLE_TICKS
 * of the node's 1-s ticks without a put or a get. One mutex (hot_mu) guards
 * it; a get copies the chunk out under it (a 256 KiB memcpy, never I/O),
 * a loan (cn_hot_lend: a serving worker writes it to a QUIC stream as it
 * is) takes a reference on its buffer instead: a lent buffer is never
 * written or handed to a giver, its slot takes another, and the last
 * reference frees it (so loans can outlive the slot and the cache; they
 * are bounded by the node's QUIC send queue, which counts their bytes).
 * A put copies the chunk in, unless its caller gives its buffer away
 * (cn_hot_give: a download's answer buffer, taken as it is, and the
 * buffer of the chunk it replaces given back for the next answer: no
 * copy, no allocation).
 *
 * Spares: when the slot a give replaces holds a lent buffer, the giver
 * got nothing back, so the download's next answer allocated 256 KiB
 * afresh (above malloc's mmap threshold: an mmap and 64 page faults as
 * the answer filled it), and the lent buffer's last loan freed it (a
 * munmap, whose TLB flush interrupts the node's other CPUs): ~28 of each
 * a second in a 51-node lab, 2% of its samples in page faults alone
 * (docs/CONTENT.md "Spare chunk buffers"). The last loan now leaves the
 * buffer with the cache's spares (at most CSTORE_HOT_SPARES; the idle
 * trim frees them), and a give that gets no buffer back takes a spare of
 * its shape. The spares outlive the cache while loans do (refcounted):
 * once the cache is gone a returning buffer is freed.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "content/chunkbuf.h"
#include "content/chunkstore_int.h"

/* A chunk's buffer, lent without a copy (cn_hot_lend): a spare (or freed)
 * when the last of the cache's reference and the loans goes. */
struct cn_hot_buf {
	atomic_int refs;
	uint8_t *base;	  /* the allocation, alen bytes, the chunk at off */
	size_t alen, off;
	struct cn_pool *sp; /* the spares (chunkstore_pool.c), a reference */
};

struct cn_hot_ent {
	uint8_t id[B3TREE_ID_LEN];
	uint64_t index;
	size_t len;     /* 0: slot free */
	struct cn_hot_buf *hb; /* kept while the cache is used; the chunk at
				* hb->base + hb->off (room for B3TREE_CHUNK_LEN) */
	uint64_t last;  /* use stamp, for replacement */
};

struct cn_hot {
	unsigned int n;
	uint64_t stamp;
	unsigned long uses, seen;
	unsigned int idle;
	struct cn_pool *sp; /* the spares: their own mutex, as a loan ends on
			     * a serving worker, without hot_mu */
	struct cn_hot_ent e[];
};

int cn_hot_new(struct cstore *cs, unsigned int n)
{
	if (!n)
		return 0;
	cs->hot = calloc(1, sizeof(*cs->hot) + n * sizeof(cs->hot->e[0]));
	if (!cs->hot)
		return -ENOMEM;
	cs->hot->sp = cn_pool_new(CSTORE_HOT_SPARES);
	if (!cs->hot->sp) {
		free(cs->hot);
		cs->hot = NULL;
		return -ENOMEM;
	}
	cs->hot->n = n;
	pthread_mutex_init(&cs->hot_mu, NULL);
	return 0;
}

/* A holder for base, with a reference on the spares. */
static struct cn_hot_buf *hb_new(struct cn_hot *h, void *base, size_t alen, size_t off)
{
	struct cn_hot_buf *b = malloc(sizeof(*b));

	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->base = base;
	b->alen = alen;
	b->off = off;
	b->sp = h->sp;
	cn_pool_ref(h->sp);
	return b;
}

static void hb_put(struct cn_hot_buf *b)
{
	if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
		cn_pool_keep(b->sp, b->base, b->alen, b->off);
		cn_pool_unref(b->sp);
		free(b);
	}
}

/* Under hot_mu: the slot's buffer is the cache's alone (no loan), so it
 * may be written or handed on. Loans only end meanwhile, never begin. */
static int hb_alone(const struct cn_hot_buf *b)
{
	return atomic_load(&b->refs) == 1;
}

/* Under hot_mu: the slot lets go of a buffer that is lent out (its last
 * loan frees it); 1 when it did. */
static int slot_unshare(struct cn_hot_ent *e)
{
	if (!e->hb || hb_alone(e->hb))
		return 0;
	hb_put(e->hb);
	e->hb = NULL;
	return 1;
}

void cn_hot_free(struct cstore *cs)
{
	if (!cs->hot)
		return;
	/* closed first: the slots' buffers are freed, not kept as spares */
	cn_pool_drop(cs->hot->sp, 1);
	for (unsigned int i = 0; i < cs->hot->n; i++)
		hb_put(cs->hot->e[i].hb);
	cn_pool_unref(cs->hot->sp);
	free(cs->hot);
	cs->hot = NULL;
	pthread_mutex_destroy(&cs->hot_mu);
}

static struct cn_hot_ent *find(struct cn_hot *h, const uint8_t *id, uint64_t index)
{
	for (unsigned int i = 0; i < h->n; i++) {
		struct cn_hot_ent *e = &h->e[i];

		if (e->len && e->index == index && !memcmp(e->id, id, B3TREE_ID_LEN))
			return e;
	}
	return NULL;
}

/* Under hot_mu: the slot for a new chunk (a free one, else the least
 * recently used), or NULL when the chunk is kept already. */
static struct cn_hot_ent *victim(struct cn_hot *h, const uint8_t *id, uint64_t index)
{
	struct cn_hot_ent *v = NULL;

	h->uses++;
	if (find(h, id, index))
		return NULL;
	for (unsigned int i = 0; i < h->n; i++) {
		struct cn_hot_ent *e = &h->e[i];

		if (!e->len)
			return e;
		if (!v || e->last < v->last)
			v = e;
	}
	return v;
}

static void keep(struct cn_hot *h, struct cn_hot_ent *v, const uint8_t *id, uint64_t index,
		 size_t len)
{
	memcpy(v->id, id, B3TREE_ID_LEN);
	v->index = index;
	v->len = len;
	v->last = ++h->stamp;
}

void cn_hot_put(struct cstore *cs, const uint8_t *id, uint64_t index, const uint8_t *buf,
		size_t len)
{
	struct cn_hot *h = cs->hot;
	struct cn_hot_ent *v;

	if (!h || !len || len > B3TREE_CHUNK_LEN)
		return;
	pthread_mutex_lock(&cs->hot_mu);
	if (!(v = victim(h, id, index)))
		goto out;
	slot_unshare(v); /* never written while a stream reads it */
	/* under the lock (outside, two puts would race for the slot): a
	 * spare, or a 256 KiB malloc (an mmap, not I/O), once per slot while
	 * in use */
	if (!v->hb) {
		void *p = cn_pool_take(h->sp, B3TREE_CHUNK_LEN, 0);

		if (!p)
			p = cn_buf_alloc(B3TREE_CHUNK_LEN);
		if (!p || !(v->hb = hb_new(h, p, B3TREE_CHUNK_LEN, 0))) {
			cn_buf_free(p);
			v->len = 0;
			goto out;
		}
	}
	memcpy(v->hb->base + v->hb->off, buf, len);
	keep(h, v, id, index, len);
out:
	pthread_mutex_unlock(&cs->hot_mu);
}

int cn_hot_give(struct cstore *cs, const uint8_t *id, uint64_t index, void **alloc, size_t alen,
		size_t off, size_t len)
{
	return cn_hot_give_lend(cs, id, index, alloc, alen, off, len, NULL, NULL);
}

int cn_hot_give_lend(struct cstore *cs, const uint8_t *id, uint64_t index, void **alloc,
		     size_t alen, size_t off, size_t len, const uint8_t **data, void **ref)
{
	struct cn_hot *h = cs->hot;
	struct cn_hot_buf *nb;
	struct cn_hot_ent *v;
	uint8_t *old = NULL;
	size_t old_alen = 0, old_off = 0;

	if (!h || !*alloc || !len || len > B3TREE_CHUNK_LEN || off > alen ||
	    alen - off < B3TREE_CHUNK_LEN)
		return 0;
	/* a holder for the given buffer, should the slot's be lent out */
	if (!(nb = hb_new(h, *alloc, alen, off)))
		return 0;
	pthread_mutex_lock(&cs->hot_mu);
	if ((v = victim(h, id, index))) {
		slot_unshare(v); /* a buffer lent out is not handed on */
		if (v->hb) {
			old = v->hb->base;
			old_alen = v->hb->alen;
			old_off = v->hb->off;
			v->hb->base = *alloc;
			v->hb->alen = alen;
			v->hb->off = off;
		} else {
			v->hb = nb;
			nb = NULL;
		}
		keep(h, v, id, index, len);
		if (ref) { /* a loan taken with it (not a read: not counted) */
			atomic_fetch_add(&v->hb->refs, 1);
			*data = v->hb->base + v->hb->off;
			*ref = v->hb;
		}
	}
	pthread_mutex_unlock(&cs->hot_mu);
	if (nb) { /* not needed: the holder only */
		cn_pool_unref(nb->sp);
		free(nb);
	}
	if (!v)
		return 0; /* kept already: the giver keeps its buffer */
	/* the replaced chunk's buffer goes to the giver when of its shape,
	 * else a spare of its shape (the slot's was lent, or empty) */
	if (old && (old_alen != alen || old_off != off)) {
		cn_buf_free(old);
		old = NULL;
	}
	*alloc = old ? old : cn_pool_take(h->sp, alen, off);
	return 1;
}

/* A kept chunk copied to buf, or (buf NULL) lent: *data, *ref. */
static int hot_use(struct cstore *cs, const uint8_t *id, uint64_t index, size_t len, uint8_t *buf,
		   const uint8_t **data, void **ref)
{
	struct cn_hot *h = cs->hot;
	struct cn_hot_ent *e;
	int hit = 0;

	if (!h)
		return 0;
	pthread_mutex_lock(&cs->hot_mu);
	h->uses++;
	e = find(h, id, index);
	if (e && e->len == len) {
		if (buf) {
			memcpy(buf, e->hb->base + e->hb->off, len);
		} else {
			atomic_fetch_add(&e->hb->refs, 1);
			*data = e->hb->base + e->hb->off;
			*ref = e->hb;
		}
		e->last = ++h->stamp;
		hit = 1;
	}
	pthread_mutex_unlock(&cs->hot_mu);
	if (hit) {
		atomic_fetch_add(&cs->hot_hits, 1);
		if (!buf)
			atomic_fetch_add(&cs->hot_lent, 1);
	}
	return hit;
}

int cn_hot_get(struct cstore *cs, const uint8_t *id, uint64_t index, uint8_t *buf, size_t len)
{
	return buf && hot_use(cs, id, index, len, buf, NULL, NULL);
}

int cn_hot_lend(struct cstore *cs, const uint8_t *id, uint64_t index, size_t len,
		const uint8_t **data, void **ref)
{
	return hot_use(cs, id, index, len, NULL, data, ref);
}

void cn_hot_unlend(void *ref)
{
	hb_put(ref);
}

void cn_hot_drop(struct cstore *cs, const uint8_t *id)
{
	struct cn_hot *h = cs->hot;

	if (!h)
		return;
	pthread_mutex_lock(&cs->hot_mu);
	for (unsigned int i = 0; i < h->n; i++)
		if (h->e[i].len && !memcmp(h->e[i].id, id, B3TREE_ID_LEN))
			h->e[i].len = 0;
	pthread_mutex_unlock(&cs->hot_mu);
}

void cn_hot_trim(struct cstore *cs)
{
	struct cn_hot *h = cs->hot;

	if (!h)
		return;
	pthread_mutex_lock(&cs->hot_mu);
	if (h->uses != h->seen) {
		h->seen = h->uses;
		h->idle = 0;
	} else if (++h->idle >= CSTORE_HOT_IDLE_TICKS) {
		/* under the lock: nothing has used the cache for a minute */
		for (unsigned int i = 0; i < h->n; i++) {
			hb_put(h->e[i].hb);
			h->e[i].hb = NULL;
			h->e[i].len = 0;
		}
		cn_pool_drop(h->sp, 0); /* and those buffers, kept as spares */
		h->idle = 0;
	}
	pthread_mutex_unlock(&cs->hot_mu);
}

unsigned int cn_hot_spares(struct cstore *cs)
{
	return cs->hot ? cn_pool_count(cs->hot->sp) : 0;
}

unsigned int cn_hot_held(struct cstore *cs)
{
	unsigned int n = 0;

	if (!cs->hot)
		return 0;
	pthread_mutex_lock(&cs->hot_mu);
	for (unsigned int i = 0; i < cs->hot->n; i++)
		n += !!cs->hot->e[i].hb;
	pthread_mutex_unlock(&cs->hot_mu);
	return n;
}
