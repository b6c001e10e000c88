// SPDX-License-Identifier: MIT
/*
 * An endpoint's connections by deadline: a binary min-heap on each
 * connection's expiry as last computed, and the list of connections
 * touched since (quic_conn_touch, quic_int.h).
 *
 * quic_ep_run_expiry used to ask every connection for its expiry
 * (ngtcp2_conn_get_expiry: the minimum of a dozen timers in several
 * cache lines) twice per pass of a worker that did anything: 3.4% of
 * weftd's CPU in a 51-node lab (docs/QUIC.md "Deadlines by heap"), and
 * on a seed with a thousand peers a cost per pass that grows with them.
 * Now a pass computes again only the expiries of the connections it
 * touched, and finds the due ones at the heap's top.
 *
 * quic_ep_expiry, the public call for drivers of the core (tests, the
 * fuzzer, bench_mem), still asks every connection: the unit tests'
 * simulated network checks each pass that it finds what the heap says,
 * and so do test builds of quic_ep_run_expiry (WEFT_TEST_HOOKS).
 *
 * The heap's room is made before a connection is (quic_dl_reserve): a
 * linked connection is always in the heap or on the touched list, never
 * left out for want of memory. Bounded by the endpoint's max_conns.
 */
#include <errno.h>
#include <stdlib.h>

#include "quic/quic_int.h"

#define DL_MIN_CAP 16

int quic_dl_reserve(struct quic_ep *ep, size_t n)
{
	struct quic_dl_ent *h;
	size_t cap;

	if (n <= ep->dl_cap)
		return 0;
	cap = ep->dl_cap ? ep->dl_cap : DL_MIN_CAP;
	while (cap < n)
		cap *= 2;
	h = realloc(ep->dl, cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	ep->dl = h;
	ep->dl_cap = cap;
	return 0;
}

/* Each entry carries its connection's expiry beside the pointer: a sift
 * compares entries of one array and touches no connection but the one
 * it moves (the walk through the connections' own cache lines was 0.9%
 * of a 51-node lab's samples, docs/QUIC.md "Deadlines by heap"). */
static void put(struct quic_ep *ep, size_t i, struct quic_dl_ent e)
{
	ep->dl[i] = e;
	e.c->dl_idx = i + 1;
}

static void sift_up(struct quic_ep *ep, size_t i)
{
	struct quic_dl_ent e = ep->dl[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (ep->dl[p].exp <= e.exp)
			break;
		put(ep, i, ep->dl[p]);
		i = p;
	}
	put(ep, i, e);
}

static void sift_down(struct quic_ep *ep, size_t i)
{
	struct quic_dl_ent e = ep->dl[i];

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		uint64_t best = e.exp;

		if (l < ep->dl_n && ep->dl[l].exp < best) {
			m = l;
			best = ep->dl[l].exp;
		}
		if (l + 1 < ep->dl_n && ep->dl[l + 1].exp < best)
			m = l + 1;
		if (m == i)
			break;
		put(ep, i, ep->dl[m]);
		i = m;
	}
	put(ep, i, e);
}

/* c, in the heap, to its place after its dl_exp changed either way. */
static void reposition(struct quic_ep *ep, struct quic_conn *c)
{
	size_t i = c->dl_idx - 1;

	ep->dl[i].exp = c->dl_exp;
	sift_up(ep, i);
	sift_down(ep, c->dl_idx - 1);
}

static void heap_remove(struct quic_ep *ep, struct quic_conn *c)
{
	size_t i = c->dl_idx - 1;
	struct quic_dl_ent last = ep->dl[--ep->dl_n];

	c->dl_idx = 0;
	if (last.c == c)
		return;
	put(ep, i, last);
	reposition(ep, last.c);
}

/* c is new (quic_conn_new's calloc: in no heap, on no list). */
void quic_dl_link(struct quic_ep *ep, struct quic_conn *c)
{
	(void)ep;
	c->dl_linked = 1;
	quic_conn_touch(c);
}

void quic_dl_unlink(struct quic_ep *ep, struct quic_conn *c)
{
	struct quic_conn **pp;

	if (c->dl_idx)
		heap_remove(ep, c);
	if (c->dl_dirty) /* a walk, but only when a connection is freed */
		for (pp = &ep->dl_dirty; *pp; pp = &(*pp)->dl_next)
			if (*pp == c) {
				*pp = c->dl_next;
				break;
			}
	c->dl_dirty = 0;
	c->dl_next = NULL;
	c->dl_linked = 0;
}

void quic_dl_refresh(struct quic_ep *ep)
{
	struct quic_conn *c;

	while ((c = ep->dl_dirty)) {
		ep->dl_dirty = c->dl_next;
		c->dl_next = NULL;
		c->dl_dirty = 0;
		c->dl_exp = quic_conn_expiry(c);
		if (c->dl_idx) {
			reposition(ep, c);
		} else {
			/* room was made when the connection was (quic_dl_reserve) */
			put(ep, ep->dl_n++, (struct quic_dl_ent){ c->dl_exp, c });
			sift_up(ep, ep->dl_n - 1);
		}
	}
}

struct quic_conn *quic_dl_take_due(struct quic_ep *ep, uint64_t now)
{
	struct quic_conn *due = NULL, **tail = &due, *c;

	while (ep->dl_n && ep->dl[0].exp <= now) {
		c = ep->dl[0].c;
		heap_remove(ep, c);
		quic_conn_touch(c);
		c->due_next = NULL;
		*tail = c;
		tail = &c->due_next;
	}
	return due;
}

uint64_t quic_dl_next(const struct quic_ep *ep)
{
	return ep->dl_n ? ep->dl[0].exp : UINT64_MAX;
}
