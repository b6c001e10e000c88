// SPDX-License-Identifier: MIT
/*
 * Messages for a module above the mailbox (docs/MAILBOX.md "Messages for
 * other modules"): a message whose body starts with the taker's tag is
 * handed to it once it is in the inbox, and leaves the inbox when taken.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "mailbox/mbn_int.h"
#include "weft/identity.h"

void mbn_offer(struct mbox_node *mn, const struct mbox_opened *m, const uint8_t id[MBOX_ID_LEN])
{
	size_t t = mn->take_tag_len;

	if (!mn->take_fn || m->len < t || memcmp(m->body, mn->take_tag, t) ||
	    mn->take_fn(mn->take_arg, m->sender, m->body + t, m->len - t))
		return;
	if (mbox_inbox_del(mn->ms, id) == 0) {
		pthread_mutex_lock(&mn->mu);
		mn->taken_total++;
		pthread_mutex_unlock(&mn->mu);
	}
}

void mbn_offer_sealed(struct mbox_node *mn, const uint8_t *sealed, size_t len,
		      const uint8_t id[MBOX_ID_LEN])
{
	uint8_t *plain;
	struct mbox_opened m;

	if (!mn->take_fn || !(plain = malloc(len)))
		return;
	if (!mbox_open(mn->o.id->sk, sealed, len, plain, len, &m))
		mbn_offer(mn, &m, id);
	sodium_memzero(plain, len);
	free(plain);
}

struct ids {
	uint8_t (*id)[MBOX_ID_LEN];
	size_t n, cap;
};

static int collect(void *arg, const struct mbox_inbox_entry *e)
{
	struct ids *x = arg;

	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 64;
		void *p = realloc(x->id, cap * MBOX_ID_LEN);

		if (!p)
			return 1;
		x->id = p;
		x->cap = cap;
	}
	memcpy(x->id[x->n++], e->id, MBOX_ID_LEN);
	return 0;
}

int mbox_node_take(struct mbox_node *mn, const char *tag, mbox_take_fn fn, void *arg)
{
	struct mbox_inbox_entry e;
	struct ids x = {0};
	uint8_t *sealed;

	if (!mn || !tag || !fn || !*tag || strlen(tag) > 16)
		return -EINVAL;
	if (mn->take_fn)
		return -EEXIST;
	memcpy(mn->take_tag, tag, strlen(tag) + 1);
	mn->take_tag_len = strlen(tag);
	mn->take_arg = arg;
	mn->take_fn = fn;
	/* what was kept before a restart and not taken yet */
	mbox_inbox_each(mn->ms, collect, &x);
	for (size_t i = 0; i < x.n; i++)
		if (!mbox_inbox_get(mn->ms, x.id[i], &e, &sealed)) {
			mbn_offer_sealed(mn, sealed, e.len, x.id[i]);
			free(sealed);
		}
	free(x.id);
	return 0;
}
