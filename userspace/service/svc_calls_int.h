/* SPDX-License-Identifier: MIT */
/*
 * What callers (control routes, the gateway) ask of the fabric's owner,
 * besides publishing: lookups and picks (svc_find.c), calls and the load
 * generator (svc_calls.c), the gateway's pass-through (svc_passthru.c).
 * All are jobs or posts the owner drives (svc_jobs_int.h); the caller
 * waits on its own semaphore, holding nothing.
 */
#ifndef WEFT_SVC_CALLS_INT_H
#define WEFT_SVC_CALLS_INT_H

#include "svc_node_int.h"

struct svcn_pipe;

/* The load generator of svc call --count: count calls of name, conc at a
 * time, driven on the owner (no thread per call). Results in *out. */
struct svcn_load_res {
	uint64_t errs[SVC_ERR__COUNT + 1]; /* by result; last: transport failures */
	uint64_t *lat;			   /* count entries: rtt of each ok call */
	long nlat;
	uint64_t max_us;
	int last_errno;
	uint64_t elapsed_ns;
};
int svcn_call_many(struct svc_node *sn, const char *name, const char *method,
		   const uint8_t *payload, size_t len, uint32_t timeout_ms, long count, int conc,
		   struct svcn_load_res *out);
/* The provider to use for name: a result of svc_node_find, first usable
 * endpoint (or local). Returns 0, 1 (this node) or -errno. */
int svcn_pick(struct svc_node *sn, const char *name, struct svc_dir_result *r,
	      struct sockaddr_storage *ss, socklen_t *sl);
/* The same for one service id, from the directory cache or our own
 * offers: 0, 1 (this node) or -ENOENT. */
int svcn_pick_id(struct svc_node *sn, const uint8_t id[SVC_ID_LEN], struct svc_dir_result *r,
		 struct sockaddr_storage *ss, socklen_t *sl);
/* svcn_pick with the owner's turn bounded by turn_ms and the dials by key
 * claim by claim_ms (a call's deadline: svc_calls.c). */
int svcn_pick_within(struct svc_node *sn, const char *name, struct svc_dir_result *r,
		     struct sockaddr_storage *ss, socklen_t *sl, uint32_t turn_ms,
		     uint32_t claim_ms);
/* The providers of name, best first (as svc_node_find), those whose
 * version is in vr (NULL: all): the count, or -errno. */
int svcn_pick_list(struct svc_node *sn, const char *name, const struct svc_vrange *vr,
		   struct svc_dir_result *res, size_t max, uint32_t turn_ms, uint32_t claim_ms);
/* A remote call with at least this timeout falls back to dialling the
 * provider's key when its descriptor's endpoint does not answer within a
 * quarter of it (svc_calls.c); a shorter one leaves no time for it. */
#define SVCN_BY_KEY_MIN_MS 1000u

/* Reaching a provider the way calls do (svc_calls.c), for calls and
 * streams alike. One attempt at one address of provider r: all of it
 * within timeout_ms; direct_ms > 0: the time the address has to answer
 * before a dial by key follows; by_key: an address r's key resolved to.
 * Sets *unsent: it ended before anything reached the provider (the next
 * address may be tried). */
typedef int (*svcn_try_fn)(struct svc_node *sn, void *arg, const struct svc_dir_result *r,
			   const struct sockaddr_storage *ss, socklen_t sl, uint32_t timeout_ms,
			   uint32_t direct_ms, int by_key, int *unsent);
/* Provider r (remote): its descriptor's first endpoint, then (silent, or
 * none) its key resolved like `quic ping KEY` (record -> direct addresses
 * -> relay circuit) within key_end_ns; all within end_ns. *keyed: the key
 * was tried. fn's result. */
int svcn_reach(struct svc_node *sn, const struct svc_dir_result *r, uint64_t end_ns,
	       uint64_t key_end_ns, svcn_try_fn fn, void *arg, int *unsent, int *keyed);
/* Failover: the providers of name (version in vr, NULL: all), best first,
 * up to max_att of them within timeout_ms: fn (svcn_reach) for a remote
 * one, local for this node; after each, again(arg, err, unsent) says
 * whether the next is tried. A remote one that was not reached is marked
 * dead. The last attempt's result; *attempts: how many were made. */
struct svcn_try {
	svcn_try_fn fn;
	int (*local)(struct svc_node *sn, void *arg, const struct svc_dir_result *r,
		     uint64_t end_ns, int *unsent);
	int (*again)(void *arg, int err, int unsent);
	void *arg;
	atomic_ullong *key_failed; /* counts failed dials by key (NULL: none) */
	/* 1: a provider that may be followed by another gets half of what
	 * is left, all of it (a stream's open: only the provider's yes is
	 * waited for); 0: only its key's resolution is so limited (a call:
	 * the backend's work may take the whole deadline) */
	int split;
};
int svcn_try_providers(struct svc_node *sn, const char *name, const struct svc_vrange *vr,
		       uint32_t timeout_ms, uint32_t max_att, const struct svcn_try *t,
		       unsigned int *attempts);
/* A caller assertion by this node (docs/SERVICE.md, "Caller assertions")
 * for service, method and body, with a new request id and the wall
 * clock's time, into out: 1, or 0 (not signed). */
int svcn_assert_new(struct svc_node *sn, uint8_t out[SVC_ASSERT_LEN], const char *service,
		    const char *method, const uint8_t *body, size_t body_len);

/* Reader side (gateway): start a pass-through of req (raw HTTP for a local
 * target; a REQUEST message for a remote one) on the owner; returns the
 * pipe or NULL (-ENOMEM, -ESHUTDOWN in *err). The owner's answer (or its
 * failure) arrives through the pipe (svc_pipe_int.h). req is taken. */
struct svcn_pipe *svcn_http_start(struct svc_node *sn, int local, const char *service,
				  const struct sockaddr_storage *ss, socklen_t sl,
				  const uint8_t *key, uint8_t *req, size_t len, uint32_t timeout_ms,
				  uint64_t idle_ns, int *err);

#endif
