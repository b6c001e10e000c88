// SPDX-License-Identifier: MIT
/*
 * One community's index (docs/COMMUNITY.md "Index"): member and share
 * records as signed, bounded, replaced by newer seq, listed in pages of
 * sealed boxes and taken in from other holders' pages. No I/O.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weft/comm.h"

struct entry {
	struct comm_rec r;
	uint16_t len;
	uint8_t raw[COMM_REC_MAX_LEN];
};

struct table {
	struct entry *e;
	size_t n, alloc, max;
};

struct comm_index {
	uint8_t id[COMM_ID_LEN], pk[COMM_PK_LEN];
	struct comm_keys keys;
	struct comm_index_opts o;
	struct table mem, sh;
	struct comm_index_stats st;
};

int comm_index_new(struct comm_index **out, const uint8_t id[COMM_ID_LEN],
		   const uint8_t pk[COMM_PK_LEN], const struct comm_index_opts *opts)
{
	struct comm_index *x = calloc(1, sizeof(*x));

	*out = NULL;
	if (!x)
		return -ENOMEM;
	if (opts)
		x->o = *opts;
	if (!x->o.members_max)
		x->o.members_max = 1024;
	if (!x->o.shares_max)
		x->o.shares_max = 4096;
	if (!x->o.shares_per_member)
		x->o.shares_per_member = 64;
	memcpy(x->id, id, COMM_ID_LEN);
	memcpy(x->pk, pk, COMM_PK_LEN);
	comm_keys_derive(id, pk, &x->keys);
	x->mem.max = x->o.members_max;
	x->sh.max = x->o.shares_max;
	*out = x;
	return 0;
}

void comm_index_free(struct comm_index *x)
{
	if (!x)
		return;
	free(x->mem.e);
	free(x->sh.e);
	free(x);
}

static struct table *tab(struct comm_index *x, int type)
{
	return type == COMM_REC_MEMBER ? &x->mem : &x->sh;
}

static const struct table *ctab(const struct comm_index *x, int type)
{
	return type == COMM_REC_MEMBER ? &x->mem : &x->sh;
}

/* The entry r replaces (same member; same name for shares), or NULL. */
static struct entry *find(struct table *t, const struct comm_rec *r)
{
	for (size_t i = 0; i < t->n; i++) {
		struct entry *e = &t->e[i];

		if (memcmp(e->r.member, r->member, COMM_PK_LEN) != 0)
			continue;
		if (r->type == COMM_REC_MEMBER ||
		    (e->r.name_len == r->name_len && memcmp(e->r.name, r->name, r->name_len) == 0))
			return e;
	}
	return NULL;
}

static size_t shares_of(const struct table *t, const uint8_t *member)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n; i++)
		n += memcmp(t->e[i].r.member, member, COMM_PK_LEN) == 0;
	return n;
}

int comm_index_is_member(const struct comm_index *x, const uint8_t member[COMM_PK_LEN])
{
	for (size_t i = 0; i < x->mem.n; i++)
		if (memcmp(x->mem.e[i].r.member, member, COMM_PK_LEN) == 0)
			return !(x->mem.e[i].r.flags & COMM_REC_GONE);
	return 0;
}

static int refuse(uint64_t *counter, int err)
{
	(*counter)++;
	return err;
}

int comm_index_add(struct comm_index *x, const uint8_t *rec, size_t len)
{
	struct comm_rec r;
	struct table *t;
	struct entry *e;
	int err;

	err = comm_rec_parse(rec, len, x->id, x->pk, &r);
	if (err == -EXDEV)
		return refuse(&x->st.foreign, err);
	if (err)
		return refuse(&x->st.bad, err);
	if (r.type == COMM_REC_SHARE && !comm_index_is_member(x, r.member))
		return refuse(&x->st.not_member, -EPERM);
	t = tab(x, r.type);
	e = find(t, &r);
	if (e) {
		if (r.seq <= e->r.seq)
			return refuse(&x->st.stale, -EALREADY);
		err = 1;
		x->st.replaced++;
	} else {
		if (t->n >= t->max)
			return refuse(&x->st.full, -ENOSPC);
		if (r.type == COMM_REC_SHARE &&
		    shares_of(t, r.member) >= x->o.shares_per_member)
			return refuse(&x->st.full, -ENOSPC);
		if (t->n == t->alloc) {
			size_t na = t->alloc ? t->alloc * 2 : 16;
			struct entry *ne;

			if (na > t->max)
				na = t->max;
			ne = realloc(t->e, na * sizeof(*ne));
			if (!ne)
				return -ENOMEM;
			t->e = ne;
			t->alloc = na;
		}
		e = &t->e[t->n++];
		err = 0;
		x->st.added++;
	}
	e->r = r;
	e->len = (uint16_t)len;
	memcpy(e->raw, rec, len);
	return err;
}

size_t comm_index_count(const struct comm_index *x, enum comm_rec_type type)
{
	return ctab(x, type)->n;
}

int comm_index_get(const struct comm_index *x, enum comm_rec_type type, size_t i,
		   struct comm_rec *out)
{
	const struct table *t = ctab(x, type);

	if (i >= t->n)
		return -ENOENT;
	*out = t->e[i].r;
	return 0;
}

static void wr(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t rd(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

int comm_index_page(const struct comm_index *x, enum comm_rec_type type, uint32_t page,
		    uint8_t *out, size_t cap, size_t *out_len)
{
	const struct table *t = ctab(x, type);
	size_t first = (size_t)page * COMM_PAGE_RECS, off = COMM_PAGE_HDR_LEN, n = 0;

	*out_len = 0;
	if (type != COMM_REC_MEMBER && type != COMM_REC_SHARE)
		return -EINVAL;
	if (first >= t->n && !(page == 0 && t->n == 0))
		return -ENOENT;
	if (cap < COMM_PAGE_HDR_LEN)
		return -ENOSPC;
	for (size_t i = first; i < t->n && n < COMM_PAGE_RECS; i++, n++) {
		size_t bl;
		int err;

		if (cap - off < 2u + COMM_SEAL_OVERHEAD + t->e[i].len)
			return -ENOSPC;
		err = comm_seal(&x->keys, x->id, t->e[i].raw, t->e[i].len, out + off + 2,
				cap - off - 2, &bl);
		if (err)
			return err;
		wr(out + off, bl, 2);
		off += 2 + bl;
	}
	out[0] = 1;
	out[1] = (uint8_t)type;
	wr(out + 2, page, 4);
	wr(out + 6, t->n, 4);
	wr(out + 10, n, 2);
	*out_len = off;
	return 0;
}

int comm_index_ingest(struct comm_index *x, const uint8_t *buf, size_t len, size_t *added,
		      uint32_t *total)
{
	return comm_index_ingest_cb(x, buf, len, NULL, NULL, added, total);
}

int comm_index_ingest_cb(struct comm_index *x, const uint8_t *buf, size_t len,
			 comm_index_taken_fn taken, void *arg, size_t *added, uint32_t *total)
{
	uint8_t plain[COMM_REC_MAX_LEN];
	size_t n, off = COMM_PAGE_HDR_LEN;

	*added = 0;
	*total = 0;
	if (len < COMM_PAGE_HDR_LEN || buf[0] != 1 ||
	    (buf[1] != COMM_REC_MEMBER && buf[1] != COMM_REC_SHARE))
		return refuse(&x->st.bad_page, -EBADMSG);
	n = (size_t)rd(buf + 10, 2);
	if (n > COMM_PAGE_RECS)
		return refuse(&x->st.bad_page, -E2BIG);
	/* Walk the whole page first: a truncated one takes nothing. */
	for (size_t i = 0; i < n; i++) {
		size_t bl;

		if (len - off < 2)
			return refuse(&x->st.bad_page, -EBADMSG);
		bl = (size_t)rd(buf + off, 2);
		if (len - off - 2 < bl)
			return refuse(&x->st.bad_page, -EBADMSG);
		off += 2 + bl;
	}
	if (off != len)
		return refuse(&x->st.bad_page, -EBADMSG);
	*total = (uint32_t)rd(buf + 6, 4);
	off = COMM_PAGE_HDR_LEN;
	for (size_t i = 0; i < n; i++) {
		size_t bl = (size_t)rd(buf + off, 2), pl;

		if (comm_open(&x->keys, x->id, buf + off + 2, bl, plain, sizeof(plain), &pl) != 0)
			x->st.foreign++;
		else if (comm_index_add(x, plain, pl) >= 0) {
			(*added)++;
			if (taken)
				taken(arg, plain, pl);
		}
		off += 2 + bl;
	}
	return 0;
}

void comm_index_stats(const struct comm_index *x, struct comm_index_stats *out)
{
	*out = x->st;
}
