// SPDX-License-Identifier: MIT
/* Ban list: the XDP program's ban tables (include/weft/xdp.h): per family
 * an exact hash for full-length bans (/32, /128) and an LPM trie for the
 * other prefixes (enum wxdp_ban_table in xdp_abi.h), and in front of each
 * exact hash the direct-mapped index the program reads first (struct
 * wxdp_bani4 in xdp_abi.h says what the program trusts and why). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft/bpflib.h"
#include "weft/xdp.h"
#include "weft/xdp_policy.h"
#include "xdp/xdp_internal.h"

/* Key buffer big enough for both tries. */
union ban_key {
	struct wxdp_ban4_key k4;
	struct wxdp_ban6_key k6;
};

/* The key of b and the table (WXDP_FD_*) it lives in. */
static int key_of(const struct wxdp_ban *b, union ban_key *k)
{
	memset(k, 0, sizeof(*k));
	if (b->family == AF_INET) {
		k->k4.prefixlen = b->prefixlen;
		memcpy(k->k4.addr, b->addr, 4);
		return b->prefixlen == 32 ? WXDP_FD_BANX4 : WXDP_FD_BAN4;
	}
	k->k6.prefixlen = b->prefixlen;
	memcpy(k->k6.addr, b->addr, 16);
	return b->prefixlen == 128 ? WXDP_FD_BANX6 : WXDP_FD_BAN6;
}

/* The program's "this table may hold entries" flag of the table behind fd
 * which (struct wxdp_ban_state in xdp_abi.h says why and the protocol). */
static int state_set(struct wxdp *x, int which, __u32 may_hold)
{
	struct wxdp_ban_state st = { .may_hold = may_hold };
	__u32 key = which == WXDP_FD_BAN4    ? WXDP_BANT_TRIE4
		    : which == WXDP_FD_BAN6  ? WXDP_BANT_TRIE6
		    : which == WXDP_FD_BANX4 ? WXDP_BANT_EXACT4
					     : WXDP_BANT_EXACT6;

	return bpf_map_update_elem(wxdp_fd(x, WXDP_FD_BANST), &key, &st, BPF_ANY) ? -errno : 0;
}

/* 1 when the table behind fd which holds an entry, 0 when empty, or -errno. */
static int trie_nonempty(struct wxdp *x, int which)
{
	union ban_key next;

	if (!bpf_map_get_next_key(wxdp_fd(x, which), NULL, &next))
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

/* After a delete: clear the flag when the table is empty, then set it again
 * if an entry appeared between the check and the write (another instance
 * sharing the maps). An error leaves the flag set (the program then just
 * looks the trie up). */
static void state_after_del(struct wxdp *x, int which)
{
	if (trie_nonempty(x, which) != 0)
		return;
	if (state_set(x, which, 0))
		return;
	if (trie_nonempty(x, which) != 0)
		state_set(x, which, 1);
}

/* ---- the exact-ban index (xdp_abi.h, struct wxdp_bani4) ---- */

union bani {
	struct wxdp_bani4 s4;
	struct wxdp_bani6 s6;
};

static int bani_fd(struct wxdp *x, int family)
{
	return wxdp_fd(x, family == AF_INET ? WXDP_FD_BANI4 : WXDP_FD_BANI6);
}

static size_t bani_size(int family)
{
	return family == AF_INET ? sizeof(struct wxdp_bani4) : sizeof(struct wxdp_bani6);
}

/* The slot of an exact ban's address, and its hash in *h. */
static uint32_t bani_where(int family, const uint8_t *addr, uint64_t *h)
{
	*h = family == AF_INET ? wxdp_bani_hash4(addr) : wxdp_bani_hash6(addr);
	return wxdp_bani_slot(*h);
}

/* Does slot s hold a ban (of any address; of addr)? */
static int bani_used(int family, const union bani *s)
{
	return (family == AF_INET ? s->s4.check : s->s6.check) != 0;
}

static int bani_holds(int family, const union bani *s, const uint8_t *addr)
{
	return bani_used(family, s) && memcmp(family == AF_INET ? s->s4.addr : s->s6.addr, addr,
					      family == AF_INET ? 4 : 16) == 0;
}

/* Slot i of family as a ban of addr expiring at e (drops 0), or empty. */
static void bani_make(int family, union bani *s, const uint8_t *addr, uint64_t h, uint64_t e)
{
	memset(s, 0, sizeof(*s));
	if (!addr)
		return;
	if (family == AF_INET) {
		memcpy(s->s4.addr, addr, 4);
		s->s4.expires_ns = e;
		s->s4.check = wxdp_bani_check(h, e);
	} else {
		memcpy(s->s6.addr, addr, 16);
		s->s6.expires_ns = e;
		s->s6.check = wxdp_bani_check(h, e);
	}
}

static int bani_read(struct wxdp *x, int family, uint32_t i, union bani *s)
{
	memset(s, 0, sizeof(*s));
	return bpf_map_lookup_elem(bani_fd(x, family), &i, s) ? -errno : 0;
}

static int bani_write(struct wxdp *x, int family, uint32_t i, const union bani *s)
{
	return bpf_map_update_elem(bani_fd(x, family), &i, s, BPF_ANY) ? -errno : 0;
}

/* Set collision bit i of family (before its ban is anywhere the program
 * would need it: the program only ever reads the bits). */
static int banc_set(struct wxdp *x, int family, uint32_t i)
{
	__u32 w = (family == AF_INET ? 0 : WXDP_BANI_WORDS) + i / 64;
	int fd = wxdp_fd(x, WXDP_FD_BANC);
	__u64 bits = 0;

	if (bpf_map_lookup_elem(fd, &w, &bits))
		return -errno;
	if (bits & (1ULL << (i % 64)))
		return 0;
	bits |= 1ULL << (i % 64);
	return bpf_map_update_elem(fd, &w, &bits, BPF_ANY) ? -errno : 0;
}

/* After exact ban b (expiring at e) went into its hash: its slot when the
 * slot is free or already its own, else its collision bit. */
static int bani_add(struct wxdp *x, const struct wxdp_ban *b, uint64_t e)
{
	union bani s;
	uint64_t h;
	uint32_t i = bani_where(b->family, b->addr, &h);
	int err = bani_read(x, b->family, i, &s);

	if (err)
		return err;
	if (bani_used(b->family, &s) && !bani_holds(b->family, &s, b->addr))
		return banc_set(x, b->family, i);
	bani_make(b->family, &s, b->addr, h, e);
	return bani_write(x, b->family, i, &s);
}

/* Empty exact ban b's slot if it holds b: 1 when it did (*old: the slot
 * before), 0 when not, or -errno. */
static int bani_del(struct wxdp *x, const struct wxdp_ban *b, union bani *old)
{
	union bani empty;
	uint64_t h;
	uint32_t i = bani_where(b->family, b->addr, &h);
	int err = bani_read(x, b->family, i, old);

	if (err)
		return err;
	if (!bani_holds(b->family, old, b->addr))
		return 0;
	bani_make(b->family, &empty, NULL, 0, 0);
	err = bani_write(x, b->family, i, &empty);
	return err ? err : 1;
}

/* The drops exact ban b's slot counted (0 when the slot is another's). */
static uint64_t bani_drops(struct wxdp *x, const struct wxdp_ban *b)
{
	union bani s;
	uint64_t h;
	uint32_t i = bani_where(b->family, b->addr, &h);

	if (bani_read(x, b->family, i, &s) || !bani_holds(b->family, &s, b->addr))
		return 0;
	return b->family == AF_INET ? s.s4.drops : s.s6.drops;
}

/* Read n elements of vsize bytes of the array behind fd into vals. */
static int array_read(int fd, uint32_t n, size_t vsize, void *vals)
{
	__u32 out = 0, count = n;
	__u32 *keys = malloc(n * sizeof(*keys));
	int err = 0;

	if (!keys)
		return -ENOMEM;
	/* One batch for the whole array (ENOENT: it reached the end). */
	err = bpf_map_lookup_batch(fd, NULL, &out, keys, vals, &count, NULL) ? -errno : 0;
	if ((!err || err == -ENOENT) && count == n) {
		err = 0;
		goto out;
	}
	err = 0;
	for (__u32 i = 0; i < n; i++)
		if (bpf_map_lookup_elem(fd, &i, (char *)vals + i * vsize)) {
			err = -errno;
			break;
		}
out:
	free(keys);
	return err;
}

/*
 * Rebuild family's index from its exact hash when any collision bit is set
 * (collision bits are only ever set by adds, so they go stale as bans go):
 * a free slot takes a ban that hashes there, and the bits become exactly
 * "another ban that hashes here lives only in the hash". Ban lock held, so
 * no add or delete runs meanwhile; a slot is written before the bits that
 * no longer need to cover it are cleared.
 */
static int bani_rebuild(struct wxdp *x, int family)
{
	__u64 words[WXDP_BANI_WORDS], nbits[WXDP_BANI_WORDS] = { 0 };
	size_t vs = bani_size(family);
	int hfd = wxdp_fd(x, family == AF_INET ? WXDP_FD_BANX4 : WXDP_FD_BANX6);
	int cfd = wxdp_fd(x, WXDP_FD_BANC);
	__u32 base = family == AF_INET ? 0 : WXDP_BANI_WORDS;
	union ban_key k, next;
	struct wxdp_ban_val v;
	uint8_t *slots = NULL;
	int any = 0, have = 0, err = 0;

	for (__u32 w = 0; w < WXDP_BANI_WORDS; w++) {
		__u32 key = base + w;

		if (bpf_map_lookup_elem(cfd, &key, &words[w]))
			return -errno;
		any |= words[w] != 0;
	}
	if (!any)
		return 0;
	slots = malloc((size_t)WXDP_BANI_SLOTS * vs);
	if (!slots)
		return -ENOMEM;
	err = array_read(bani_fd(x, family), WXDP_BANI_SLOTS, vs, slots);
	while (!err) {
		const uint8_t *addr = family == AF_INET ? k.k4.addr : k.k6.addr;
		union bani s;
		uint64_t h;
		uint32_t i;

		if (bpf_map_get_next_key(hfd, have ? &k : NULL, &next)) {
			err = errno == ENOENT ? 0 : -errno;
			break;
		}
		k = next;
		have = 1;
		if (bpf_map_lookup_elem(hfd, &k, &v))
			continue; /* only under a writer that bypasses the lock */
		i = bani_where(family, addr, &h);
		memcpy(&s, slots + i * vs, vs);
		if (bani_holds(family, &s, addr))
			continue;
		if (bani_used(family, &s)) {
			nbits[i / 64] |= 1ULL << (i % 64);
			continue;
		}
		bani_make(family, &s, addr, h, v.expires_ns);
		err = bani_write(x, family, i, &s);
		if (!err)
			memcpy(slots + i * vs, &s, vs);
	}
	for (__u32 w = 0; w < WXDP_BANI_WORDS && !err; w++) {
		__u32 key = base + w;

		if (nbits[w] != words[w] && bpf_map_update_elem(cfd, &key, &nbits[w], BPF_ANY))
			err = -errno;
	}
	free(slots);
	return err;
}

/* The ban lock: this process's mutex, and with pinned (shareable) maps the
 * netns directory's flock, which another weftd on the interface takes for
 * its own changes. *fd: the flock's descriptor or -1. 0 or -errno. */
static int ban_lock(struct wxdp *x, int *fd)
{
	*fd = -1;
	pthread_mutex_lock(&x->ban_mu);
	if (x->pin_dir[0]) {
		*fd = wxdp_ns_lock(x->pin_dir);
		if (*fd < 0) {
			int err = *fd;

			pthread_mutex_unlock(&x->ban_mu);
			*fd = -1;
			return err;
		}
	}
	return 0;
}

static void ban_unlock(struct wxdp *x, int fd)
{
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&x->ban_mu);
}

static int is_exact(int which)
{
	return which == WXDP_FD_BANX4 || which == WXDP_FD_BANX6;
}

int wxdp_ban_add(struct wxdp *x, const struct wxdp_ban *in)
{
	struct wxdp_ban b;
	struct wxdp_ban_val v = { 0 };
	union ban_key k;
	int which, err, lock;

	if (!x || !in)
		return -EINVAL;
	b = *in;
	b.drops = 0;
	if (wxdp_ban_norm(&b))
		return -EINVAL;
	which = key_of(&b, &k);
	v.expires_ns = b.expires_ns;
	v.prefixlen = b.prefixlen;
	err = ban_lock(x, &lock);
	if (err)
		return err;
	/* The flag first: the entry is never in a trie the program skips. */
	err = state_set(x, which, 1);
	if (err)
		goto out;
	if (bpf_map_update_elem(wxdp_fd(x, which), &k, &v, BPF_ANY)) {
		err = errno == E2BIG ? -ENOSPC : -errno;
		state_after_del(x, which);
		goto out;
	}
	/* In the hash, then in the index (its slot or its collision bit):
	 * a ban the index cannot show is never only in the hash. */
	if (is_exact(which)) {
		err = bani_add(x, &b, b.expires_ns);
		if (err) {
			union bani old;

			bani_del(x, &b, &old);
			bpf_map_delete_elem(wxdp_fd(x, which), &k);
			state_after_del(x, which);
			goto out;
		}
	}
out:
	ban_unlock(x, lock);
	if (!err && x->on_ban_change)
		x->on_ban_change(x->cb_arg, &b, 1);
	return err;
}

int wxdp_ban_del(struct wxdp *x, const struct wxdp_ban *in)
{
	struct wxdp_ban b;
	union ban_key k;
	union bani old;
	int which, err, lock, had = 0;

	if (!x || !in)
		return -EINVAL;
	b = *in;
	if (wxdp_ban_norm(&b))
		return -EINVAL;
	which = key_of(&b, &k);
	err = ban_lock(x, &lock);
	if (err)
		return err;
	/* Out of the index, then out of the hash; a failed hash delete puts
	 * the slot back, so a ban is never only in the hash without its
	 * collision bit. */
	if (is_exact(which)) {
		had = bani_del(x, &b, &old);
		if (had < 0) {
			err = had;
			goto out;
		}
	}
	if (bpf_map_delete_elem(wxdp_fd(x, which), &k)) {
		err = -errno;
		if (had)
			bani_write(x, b.family, bani_where(b.family, b.addr, &(uint64_t){ 0 }), &old);
		goto out;
	}
	state_after_del(x, which);
out:
	ban_unlock(x, lock);
	if (!err && x->on_ban_change)
		x->on_ban_change(x->cb_arg, &b, 0);
	return err;
}

int wxdp_ban_get(struct wxdp *x, struct wxdp_ban *b)
{
	struct wxdp_ban_val v;
	union ban_key k;
	int which;

	if (!x || !b || wxdp_ban_norm(b))
		return -EINVAL;
	which = key_of(b, &k);
	if (bpf_map_lookup_elem(wxdp_fd(x, which), &k, &v))
		return -errno;
	b->expires_ns = v.expires_ns;
	b->drops = v.drops;
	if (is_exact(which))
		b->drops += bani_drops(x, b); /* the slot's count, while the ban had it */
	return 0;
}

/*
 * Walk one table; for each entry call fn. Iteration over an LPM trie with
 * get_next_key is stable against concurrent deletes of the current key only
 * if we fetch the next key before acting, which we do.
 */
typedef int (*ban_fn)(struct wxdp *x, const struct wxdp_ban *b, void *arg);

static int walk_table(struct wxdp *x, int which, int family, ban_fn fn, void *arg)
{
	int fd = wxdp_fd(x, which);
	union ban_key k, next;
	struct wxdp_ban_val v;
	struct wxdp_ban b;
	int have = 0, err;

	for (;;) {
		if (bpf_map_get_next_key(fd, have ? &k : NULL, &next)) {
			if (errno == ENOENT)
				return 0;
			return -errno;
		}
		k = next;
		have = 1;
		if (bpf_map_lookup_elem(fd, &k, &v))
			continue; /* deleted under us */
		memset(&b, 0, sizeof(b));
		b.family = (uint8_t)family;
		if (family == AF_INET) {
			b.prefixlen = (uint8_t)k.k4.prefixlen;
			memcpy(b.addr, k.k4.addr, 4);
		} else {
			b.prefixlen = (uint8_t)k.k6.prefixlen;
			memcpy(b.addr, k.k6.addr, 16);
		}
		b.expires_ns = v.expires_ns;
		b.drops = v.drops;
		if (is_exact(which))
			b.drops += bani_drops(x, &b);
		err = fn(x, &b, arg);
		if (err)
			return err;
	}
}

/* Both tables of a family: the exact bans, then the prefixes. */
static int walk(struct wxdp *x, int family, ban_fn fn, void *arg)
{
	int err = walk_table(x, family == AF_INET ? WXDP_FD_BANX4 : WXDP_FD_BANX6, family, fn, arg);

	return err ? err : walk_table(x, family == AF_INET ? WXDP_FD_BAN4 : WXDP_FD_BAN6, family,
				      fn, arg);
}

struct list_ctx {
	struct wxdp_ban *out;
	size_t cap, n;
};

static int list_one(struct wxdp *x, const struct wxdp_ban *b, void *arg)
{
	struct list_ctx *c = arg;

	if (c->n < c->cap)
		c->out[c->n] = *b;
	c->n++;
	return 0;
}

int wxdp_ban_list(struct wxdp *x, struct wxdp_ban *out, size_t cap, size_t *n)
{
	struct list_ctx c = { .out = out, .cap = out ? cap : 0 };
	int err;

	if (!x || !n)
		return -EINVAL;
	err = walk(x, AF_INET, list_one, &c);
	if (!err)
		err = walk(x, AF_INET6, list_one, &c);
	*n = c.n;
	return err;
}

/* Deleting while walking an LPM trie can restart get_next_key from the
 * first key; collect expired entries first (bounded batches), then delete. */
#define GC_BATCH 256

struct gc_ctx {
	uint64_t now;
	struct wxdp_ban dead[GC_BATCH];
	size_t n;
};

static int gc_one(struct wxdp *x, const struct wxdp_ban *b, void *arg)
{
	struct gc_ctx *c = arg;

	if (b->expires_ns == 0 || b->expires_ns > c->now)
		return 0;
	if (c->n == GC_BATCH)
		return 0;
	c->dead[c->n++] = *b;
	return 0;
}

int wxdp_ban_gc(struct wxdp *x, uint64_t now_ns)
{
	static const int fams[2] = { AF_INET, AF_INET6 };
	struct gc_ctx c;
	int removed = 0, err, lock;

	if (!x)
		return -EINVAL;
	for (int f = 0; f < 2; f++) {
		do {
			c.now = now_ns;
			c.n = 0;
			err = walk(x, fams[f], gc_one, &c);
			if (err)
				return err;
			for (size_t i = 0; i < c.n; i++)
				if (!wxdp_ban_del(x, &c.dead[i]))
					removed++;
		} while (c.n == GC_BATCH);
		err = ban_lock(x, &lock);
		if (err)
			return err;
		err = bani_rebuild(x, fams[f]);
		ban_unlock(x, lock);
		if (err)
			return err;
	}
	return removed;
}
