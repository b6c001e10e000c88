// SPDX-License-Identifier: MIT
/*
 * Share records: the signed manifests this node holds, one per share id,
 * in the node's store (database content_shares). A manifest is put only
 * when it supersedes the one held; a public one is then announced
 * (announce.c). Used by the control API, the serve threads and the
 * download jobs; calls nothing of theirs.
 */
#include <errno.h>
#include <stdlib.h>

#include "content/content_node_int.h"
#include "weft/store.h"

#define CN_SHARES_DB "content_shares"

int cn_shares_init(struct content_node *cn)
{
	return store_db(cn->store, CN_SHARES_DB, &cn->shares_dbi);
}

int cn_share_get(struct content_node *cn, const uint8_t share_id[MANIFEST_SHARE_ID_LEN],
		 uint8_t **enc, size_t *len)
{
	void *v = NULL;
	size_t vl = 0;
	int rc;

	rc = store_get(cn->store, cn->shares_dbi, share_id, MANIFEST_SHARE_ID_LEN, &v, &vl);
	if (rc)
		return rc;
	*enc = v;
	*len = vl;
	return 0;
}

struct share_put {
	struct content_node *cn;
	const struct manifest *m;
	const uint8_t *enc;
	size_t len;
	int stored;
	struct manifest *old; /* the version replaced, when m withdraws it */
};

/* On the store's writer: compare with the held version and put, in one
 * transaction, so that two puts of one share cannot both win. */
static int share_put_fn(struct store_txn *txn, void *arg)
{
	struct share_put *sp = arg;
	struct manifest old;
	const void *v;
	size_t vl;
	int rc;

	sp->stored = 0;
	rc =
	    store_txn_get(txn, sp->cn->shares_dbi, sp->m->share_id, MANIFEST_SHARE_ID_LEN, &v, &vl);
	if (rc == 0) {
		manifest_init(&old);
		rc = manifest_decode(&old, v, vl);
		if (rc == 0 && manifest_supersedes(sp->m, &old) != 1) {
			manifest_free(&old);
			return 0; /* we hold this one or a newer one */
		}
		if (rc == 0 && sp->m->withdraw > old.seq && sp->old) {
			manifest_free(sp->old);
			*sp->old = old; /* withdrawn: its items are looked at after */
		} else {
			manifest_free(&old);
		}
	} else if (rc != -ENOENT) {
		return rc;
	}
	rc = store_txn_put(txn, sp->cn->shares_dbi, sp->m->share_id, MANIFEST_SHARE_ID_LEN, sp->enc,
			   sp->len);
	sp->stored = !rc;
	return rc;
}

int cn_share_put(struct content_node *cn, const struct manifest *m, struct manifest *withdrawn)
{
	struct share_put sp = {cn, m, NULL, 0, 0, withdrawn};
	uint8_t *enc;
	int rc;

	if (withdrawn)
		manifest_init(withdrawn);

	enc = malloc(MANIFEST_MAX_SIZE);
	if (!enc)
		return -ENOMEM;
	rc = manifest_encode(m, enc, MANIFEST_MAX_SIZE, &sp.len);
	sp.enc = enc;
	/* Durable when this returns: the control API acknowledges shares. */
	if (!rc)
		rc = store_write_call(cn->store, share_put_fn, &sp, 0);
	free(enc);
	if (!rc && sp.stored && manifest_announced(m))
		cn_announce(cn, m->share_id, MANIFEST_SHARE_ID_LEN);
	if ((rc || !sp.stored) && withdrawn)
		manifest_free(withdrawn); /* nothing replaced */
	return rc;
}
