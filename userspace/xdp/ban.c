// SPDX-License-Identifier: MIT
/* Ban list: the XDP program's ban tables (include/weft/xdp.h): per family
 * an exact hash for full-length bans (/32, /128) and an LPM trie for the
 * other prefixes (enum wxdp_ban_table in xdp_abi.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <bpf/bpf.h>

#include "weft/xdp.h"
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

int wxdp_ban_add(struct wxdp *x, const struct wxdp_ban *in)
{
	struct wxdp_ban b;
	struct wxdp_ban_val v = { 0 };
	union ban_key k;
	int which, err;

	if (!x || !in)
		return -EINVAL;
	b = *in;
	b.drops = 0;
	if (wxdp_ban_norm(&b))
		return -EINVAL;
	which = key_of(&b, &k);
	v.expires_ns = b.expires_ns;
	v.prefixlen = b.prefixlen;
	/* The flag first: the entry is never in a trie the program skips. */
	err = state_set(x, which, 1);
	if (err)
		return err;
	if (bpf_map_update_elem(wxdp_fd(x, which), &k, &v, BPF_ANY)) {
		err = errno == E2BIG ? -ENOSPC : -errno;
		state_after_del(x, which);
		return err;
	}
	if (x->on_ban_change)
		x->on_ban_change(x->cb_arg, &b, 1);
	return 0;
}

int wxdp_ban_del(struct wxdp *x, const struct wxdp_ban *in)
{
	struct wxdp_ban b;
	union ban_key k;
	int which;

	if (!x || !in)
		return -EINVAL;
	b = *in;
	if (wxdp_ban_norm(&b))
		return -EINVAL;
	which = key_of(&b, &k);
	if (bpf_map_delete_elem(wxdp_fd(x, which), &k))
		return -errno;
	state_after_del(x, which);
	if (x->on_ban_change)
		x->on_ban_change(x->cb_arg, &b, 0);
	return 0;
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
	int removed = 0, err;

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
	}
	return removed;
}
