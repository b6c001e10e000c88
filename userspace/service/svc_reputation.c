// SPDX-License-Identifier: MIT
/*
 * Provider reputation on the fabric's owner (docs/SERVICE.md,
 * "Reputation"): the table of weft/svc_rep.h, loaded from the store at
 * start and written back by the refresher's turn (every 2 s, changed
 * entries only, fire-and-forget: losing the last seconds of outcomes in
 * a crash costs nothing but a little history). Key = provider key (32
 * bytes), value = svc_rep's 40-byte record.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "svc_rep_int.h"
#include "weft/log.h"
#include "weft/store.h"
#include "weft/util.h"

#define REP_DB "svc_reputation"

static int load_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct svc_node *sn = arg;

	if (svc_rep_load(sn->rep, key, klen, val, vlen))
		log_warn("svc", "unreadable stored reputation (%zu bytes): skipped", vlen);
	return 0;
}

int svcn_rep_init(struct svc_node *sn)
{
	int err = svc_rep_new(&sn->rep, 0);

	if (err || !sn->store)
		return err;
	err = store_db(sn->store, REP_DB, &sn->rep_db);
	if (err) {
		sn->rep_db_ok = 0; /* kept in memory only */
		log_warn("svc", "reputation database: %s (not kept across restarts)",
			 strerror(-err));
		return 0;
	}
	sn->rep_db_ok = 1;
	err = store_iter(sn->store, sn->rep_db, load_one, sn);
	if (err)
		log_warn("svc", "stored reputation not read: %s", strerror(-err));
	else if (svc_rep_count(sn->rep))
		log_info("svc", "reputation of %zu provider(s) restored", svc_rep_count(sn->rep));
	return 0;
}

void svcn_rep_note(struct svc_node *sn, const uint8_t key[IDENTITY_PK_LEN], int ok,
		   uint32_t latency_us, int dead)
{
	uint8_t ev[IDENTITY_PK_LEN];
	int evicted = 0;

	if (!sn->rep || !memcmp(key, sn->id.pk, IDENTITY_PK_LEN))
		return; /* our own offers are not judged */
	if (svc_rep_record(sn->rep, key, ok, latency_us, dead, util_wall_s(), &evicted, ev))
		return;
	if (evicted && sn->store && sn->rep_db_ok) {
		struct store_op op = {.dbi = sn->rep_db, .key = ev, .klen = IDENTITY_PK_LEN};

		store_write_async(sn->store, &op, 1); /* best effort */
	}
}

void svcn_rep_flush(struct svc_node *sn)
{
	uint8_t keys[SVCN_REP_FLUSH_MAX][IDENTITY_PK_LEN];
	uint8_t recs[SVCN_REP_FLUSH_MAX][SVC_REP_REC_LEN];
	struct store_op ops[SVCN_REP_FLUSH_MAX];
	size_t n;

	if (!sn->rep || !sn->store || !sn->rep_db_ok)
		return;
	n = svc_rep_take_dirty(sn->rep, keys, recs, SVCN_REP_FLUSH_MAX);
	for (size_t i = 0; i < n; i++)
		ops[i] = (struct store_op){.dbi = sn->rep_db,
					   .key = keys[i],
					   .klen = IDENTITY_PK_LEN,
					   .val = recs[i],
					   .vlen = SVC_REP_REC_LEN};
	/* A full queue drops this batch: the entries are written again at
	 * their next outcome. */
	if (n && store_write_async(sn->store, ops, n))
		log_debug("svc", "reputation: %zu entries not written (store busy)", n);
}

int32_t svcn_rep_info(struct svc_node *sn, const uint8_t key[IDENTITY_PK_LEN],
		      struct svc_rep_info *info)
{
	return svc_rep_score(sn->rep, key, util_wall_s(), info);
}

static int res_cmp(const void *a, const void *b)
{
	const struct svc_dir_result *x = a, *y = b;

	if (x->reputation != y->reputation)
		return x->reputation > y->reputation ? -1 : 1;
	if (x->rtt_us != y->rtt_us)
		return x->rtt_us < y->rtt_us ? -1 : 1;
	return memcmp(x->id, y->id, SVC_ID_LEN);
}

void svcn_rep_order(struct svc_node *sn, struct svc_dir_result *res, int n)
{
	uint64_t now = util_wall_s();

	if (!sn->rep || n <= 0)
		return;
	for (int i = 0; i < n; i++) {
		struct svc_rep_info in;

		if (!memcmp(res[i].owner, sn->id.pk, IDENTITY_PK_LEN))
			continue; /* our own: kept as the directory has it */
		res[i].reputation = svc_rep_score(sn->rep, res[i].owner, now, &in);
		res[i].calls_ok = (uint32_t)(in.ok + 0.5);
		res[i].calls_failed = (uint32_t)(in.failed + 0.5);
		res[i].lat_us = in.lat_us;
		res[i].dead = in.dead_until != 0;
		if (in.lat_us)
			res[i].rtt_us = in.lat_us;
	}
	if (n > 1)
		qsort(res, (size_t)n, sizeof(*res), res_cmp);
}
