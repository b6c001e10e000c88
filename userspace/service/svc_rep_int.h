/* SPDX-License-Identifier: MIT */
/*
 * The fabric's side of provider reputation (svc_reputation.c): the table
 * (weft/svc_rep.h) on the owner, loaded from and written to the store's
 * "svc_reputation" database, outcomes noted by calls, results ordered by
 * it. A leaf part: it calls only the owner's primitives and the store.
 */
#ifndef WEFT_SVC_REP_INT_H
#define WEFT_SVC_REP_INT_H

#include "svc_node_int.h"
#include "weft/svc_rep.h"

/* At svc_node_new: the table, and what the store holds (a bad record is
 * skipped). 0 or -ENOMEM (a store error is logged, not fatal). */
int svcn_rep_init(struct svc_node *sn);
/* Owner: one call outcome of provider key (see svc_rep_record; ok -1:
 * the dead mark alone). */
void svcn_rep_note(struct svc_node *sn, const uint8_t key[IDENTITY_PK_LEN], int ok,
		   uint32_t latency_us, int dead);
/* Owner: queue the changed entries to the store (bounded per turn; the
 * refresher's turn and svc_node_free call it). */
void svcn_rep_flush(struct svc_node *sn);
/* Owner: fill each result's reputation (score) and rtt_us (the call
 * latency EWMA when known) from the table, then order them as the
 * directory does: reputation descending, then RTT, then id. */
void svcn_rep_order(struct svc_node *sn, struct svc_dir_result *res, int n);
/* Owner: what the table says of key (see svc_rep_score). */
int32_t svcn_rep_info(struct svc_node *sn, const uint8_t key[IDENTITY_PK_LEN],
		      struct svc_rep_info *info);
/* Entries flushed per turn (a store write takes at most 64 ops). */
#define SVCN_REP_FLUSH_MAX 64

#endif
