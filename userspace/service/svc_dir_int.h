/* SPDX-License-Identifier: MIT */
/*
 * The fabric's publications and descriptors: publish, announce, refresh
 * and verification into the directory cache (svc_directory.c); the
 * publications kept in the store (svc_persist.c: a codec and the store,
 * never calling the directory back).
 */
#ifndef WEFT_SVC_DIR_INT_H
#define WEFT_SVC_DIR_INT_H

#include "svc_node_int.h"

/* svc_directory.c: publish every stored record again (svc_node_start):
 * 0 or -errno. */
int svcn_pub_restore(struct svc_node *sn);
/* Our publication of name (len bytes), or NULL (owner). */
struct svcn_pub *svcn_pub_find(struct svc_node *sn, const char *name, size_t len);
struct svcn_pub *svcn_pub_slot(struct svc_node *sn);
/* 1 if p's descriptor may be shown to key (public, or key listed). */
int svcn_pub_visible(const struct svcn_pub *p, const uint8_t key[IDENTITY_PK_LEN]);
/* The name of a descriptor rejection reason (svcn_stats.rejected[i]). */
const char *svcn_reject_name(unsigned int i);
/* Verify a fetched descriptor and cache it (owner). */
void svcn_accept_desc(struct svc_node *sn, const char *name, const uint8_t *buf, size_t len,
		      const uint8_t *peer_key, uint32_t rtt_us);
/* The publisher's refresh thread. */
void *svcn_refresh_main(void *arg);
/* Publish raw descriptor bytes for name (debug route). */
#ifdef WEFT_TEST_HOOKS /* test builds only: POST /v1/svc/debug/descriptor */
int svcn_publish_raw(struct svc_node *sn, const char *name, const uint8_t *buf, size_t len);
/* Build a deliberately bad descriptor (debug route): mode "forged",
 * "tampered", "expired", "future" or "oversized". malloc'd into *out. */
int svcn_bad_descriptor(struct svc_node *sn, const char *name, const char *mode, uint8_t **out,
			size_t *len);
#endif
/* Our endpoints "ip:port" joined by ',' into buf; returns the count. */
int svcn_endpoints(struct svc_node *sn,
		   char eps[SVC_DESC_MAX_ENDPOINTS][SVC_DESC_ENDPOINT_MAX + 1]);

/* svc_persist.c: publications in the store. init opens the database (st
 * may be NULL: nothing persists). queue: the record of p under name (p
 * NULL: its removal) as a durable write; *ticket NULL when there is no
 * store; else store_write_wait it off the owner. each: fn on every
 * stored record that reads well (an unreadable one is logged and
 * skipped), in the store's order. All return 0 or -errno. */
struct store;
struct store_write;
int svcn_pub_store_init(struct svc_node *sn, struct store *st);
int svcn_pub_store_queue(struct svc_node *sn, const char *name, const struct svcn_pub *p,
			 struct store_write **ticket);
int svcn_pub_store_each(struct svc_node *sn,
			void (*fn)(struct svc_node *sn, const char *name, const char *backend,
				   const struct svc_node_pub_opts *po, void *arg),
			void *arg);

#endif
