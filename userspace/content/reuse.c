// SPDX-License-Identifier: MIT
/*
 * A changed item of a followed share moves only its changed chunks: when a
 * download job fetches an item whose path the share's previous version
 * (held here) also lists under another content id, the chunks whose CVs
 * are equal at the same index are copied from the old blob instead of
 * fetched. A chunk's CV is BLAKE3's subtree CV, which binds its bytes and
 * its position, so equal CVs at one index are equal chunks; each copy is
 * read back verified from the old blob (cstore_read_chunk) and checked
 * again against the new CV list before it is written (cstore_put_chunk),
 * so a copy can never put a byte in the new blob that the signed manifest
 * does not name. An edit that shifts data (an insert) changes every later
 * chunk: those move. Called by the download hub (swarm.c) with j->mu held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "content/swarm_int.h"
#include "weft/chunk.h"

void cn_reuse_pick(struct cn_job *j, const struct manifest *held, const char *path,
		   const uint8_t id[32])
{
	struct cstore_info info;

	j->has_donor = 0;
	if (!held->is_signed || held->sealed)
		return; /* a sealed share's next version is under another key */
	for (uint32_t i = 0; i < held->nitems; i++) {
		if (strcmp(held->items[i].path, path) || !memcmp(held->items[i].id, id, 32))
			continue;
		if (cstore_info(j->cn->cs, held->items[i].id, &info) == 0 &&
		    info.state == CSTORE_COMPLETE) {
			memcpy(j->donor, held->items[i].id, 32);
			j->has_donor = 1;
		}
		return;
	}
}

void cn_reuse_chunks(struct cn_job *j)
{
	uint8_t *dcv = NULL, *ncv = NULL, *buf = NULL, *want = NULL;
	uint64_t dn = 0, nn = 0, idx[CN_COMMIT_MAX], bytes = 0, got = 0;
	size_t n = 0, len;
	uint8_t donor[32];
	int rc = 0;

	if (!j->has_donor || j->have_n == j->nchunks)
		return;
	memcpy(donor, j->donor, 32);
	want = malloc(j->nchunks);
	if (!want)
		return;
	for (uint64_t i = 0; i < j->nchunks; i++)
		want[i] = !j->have[i];
	pthread_mutex_unlock(&j->mu); /* store reads and writes */
	if (cstore_cvs(j->cn->cs, donor, &dcv, &dn) || cstore_cvs(j->cn->cs, j->cur, &ncv, &nn) ||
	    !(buf = malloc(B3TREE_CHUNK_LEN)))
		goto out;
	for (uint64_t i = 0; i < nn && i < dn && !rc; i++) {
		if (!want[i] || memcmp(dcv + i * B3TREE_CV_LEN, ncv + i * B3TREE_CV_LEN, B3TREE_CV_LEN))
			continue;
		if (cstore_read_chunk(j->cn->cs, donor, i, buf, B3TREE_CHUNK_LEN, &len) ||
		    cstore_put_chunk(j->cn->cs, j->cur, i, buf, len))
			continue; /* fetched like any other */
		idx[n++] = i;
		bytes += len;
		if (n == CN_COMMIT_MAX || i + 1 == nn || i + 1 == dn) {
			rc = cstore_commit_chunks(j->cn->cs, j->cur, idx, n);
			got += rc >= 0 ? n : 0;
			n = 0;
		}
	}
	if (n && !rc)
		got += cstore_commit_chunks(j->cn->cs, j->cur, idx, n) >= 0 ? n : 0;
out:
	pthread_mutex_lock(&j->mu);
	free(dcv);
	free(ncv);
	free(buf);
	free(want);
	if (!got)
		return;
	/* what was committed is held: counted as the chunks held already */
	for (uint64_t i = 0; i < j->nchunks; i++)
		if (!j->have[i] && cstore_has_chunk(j->cn->cs, j->cur, i) == 1) {
			j->have[i] = 1;
			j->have_n++;
		}
	j->reused += got;
	j->committed = j->have_n;
	j->done_bytes += bytes;
}
