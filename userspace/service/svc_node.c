// SPDX-License-Identifier: MIT
/*
 * The service fabric on the node, its hub: lifecycle (new, start, stop,
 * free) and wiring (router, backend thread, directory cache, store, QUIC
 * handlers, control routes, gateway, the router's ban hook into the
 * guard). See weft/svc_node.h and docs/SERVICE.md.
 *
 * The hub calls its parts; no part calls the hub. What they share is the
 * context and the owner's primitives (svc_node_int.h, svc_owner.c). The
 * parts, each with its own header: svc_events.c (QUIC events posted to
 * the owner), svc_ops.c (outgoing streams, connection pool), svc_serve.c
 * (inbound streams into the router and backend), svc_jobs.c (callers'
 * jobs and the owner's tick), svc_find.c (lookups), svc_calls.c (calls,
 * the load generator), svc_passthru.c and svc_pipe.c (the gateway's HTTP
 * pass-through), svc_directory.c and svc_persist.c (publications and
 * descriptors), svc_node_ctl.c (control routes), gateway.c.
 *
 * Owner: the fabric's state is the backend forwarder's loop's alone (a
 * thread of its own, or QUIC worker 0's loop with svc.owner = worker:
 * engine_host), and no lock guards it. QUIC callbacks on packet workers copy
 * their event and post it to the owner (svc_events.c); backend completions
 * run on the owner; the refresher and control routes run their work there
 * (svcn_owner_run, with a deadline); calls, lookups, pass-throughs and the
 * load generator are jobs the owner drives while their callers wait on
 * their own semaphores (svc_jobs.c). The DHT is reached through
 * dhtnode_run from callers (worker 0 runs it); its completions are posted
 * to the owner.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc_ctl_int.h"
#include "svc_dir_int.h"
#include "svc_events_int.h"
#include "svc_jobs_int.h"
#include "svc_node_int.h"
#include "svc_ops_int.h"
#include "svc_rep_int.h"
#include "svc_serve_int.h"
#include "svc_stream_int.h"
#include "weft/engine.h"
#include "weft/guard.h"
#include "weft/io.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/svc_router.h"
#include "weft/util.h"

/* ------------------------------------------------------------------ bans */

/* Router ban callback (on the owner): into the guard, v4-mapped
 * addresses as IPv4 so the XDP IPv4 trie matches. */
static void on_ban(void *ctx, const uint8_t key[IDENTITY_PK_LEN],
		   const struct sockaddr_storage *addr, unsigned int prefixlen, uint64_t expires_ns)
{
	struct svc_node *sn = ctx;
	struct wxdp_ban b = {0};
	char kp[17], as[INET6_ADDRSTRLEN + 8];
	int err;

	if (!memcmp(key, sn->id.pk, IDENTITY_PK_LEN))
		return; /* our own local calls: never ban our own address */
	util_hex(kp, key, 8);
	if (addr->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)addr;

		b.family = AF_INET;
		memcpy(b.addr, &a->sin_addr, 4);
		b.prefixlen = (uint8_t)(prefixlen > 32 ? 32 : prefixlen);
	} else if (addr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)addr;

		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			b.family = AF_INET;
			memcpy(b.addr, &a->sin6_addr.s6_addr[12], 4);
			b.prefixlen =
			    (uint8_t)(prefixlen >= 96 ? (prefixlen > 128 ? 32 : prefixlen - 96)
						      : 32);
		} else {
			b.family = AF_INET6;
			memcpy(b.addr, &a->sin6_addr, 16);
			b.prefixlen = (uint8_t)(prefixlen > 128 ? 128 : prefixlen);
		}
	} else {
		return;
	}
	/* Zero host bits beyond the prefix. */
	for (unsigned int i = b.prefixlen; i < (b.family == AF_INET ? 32u : 128u); i++)
		b.addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
	b.expires_ns = expires_ns;
	inet_ntop(b.family, b.addr, as, sizeof(as));
	log_addr(as, as, sizeof(as)); /* shown in full with log.addresses only */
	err = sn->guard ? guard_ban_add(sn->guard, &b) : -ENODEV;
	sn->st.bans_sent++;
	if (err)
		log_warn("svc", "ban of %s/%u (peer %s...) not applied: %s", as, b.prefixlen, kp,
			 strerror(-err));
	else
		log_warn("svc", "banned %s/%u for %llus: peer %s... kept violating service limits",
			 as, b.prefixlen,
			 (unsigned long long)((expires_ns - svcn_now_ns()) / 1000000000ull), kp);
}

/* ------------------------------------------------------------ lifecycle */

/* One owner of the shim lets go (the fabric, or the QUIC node's release
 * hook after its last callback); the last one frees it. */
static void shim_release(void *arg)
{
	svcn_shim_put(arg);
}

int svc_node_new(struct svc_node **out, const struct svc_node_opts *o)
{
	struct svc_router_opts ro = {0};
	struct svc_backend_opts bo = {0};
	struct svc_dir_opts dopts = {0};
	pthread_condattr_t ca;
	struct quic_node_handler h = {0};
	struct svc_node *sn;
	int err;

	*out = NULL;
	if (!o || !o->eng || !o->quic || !o->id || !o->cfg)
		return -EINVAL;
	sn = calloc(1, sizeof(*sn));
	if (!sn)
		return -ENOMEM;
	sn->shim = calloc(1, sizeof(*sn->shim));
	if (!sn->shim) {
		free(sn);
		return -ENOMEM;
	}
	sn->shim->sn = sn;
	sn->cl_handler = &svcn_cl_handler;
	atomic_init(&sn->shim->refs, 1); /* until registered: svc_node_free frees it */
	sn->due_ns = UINT64_MAX;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sn->refresh_cv, &ca);
	pthread_mutex_init(&sn->refresh_mu, NULL);
	pthread_mutex_init(&sn->attach_mu, NULL);
	pthread_condattr_destroy(&ca);
	sn->eng = o->eng;
	sn->ctl = o->ctl;
	sn->quic = o->quic;
	sn->dht = o->dht;
	sn->guard = o->guard;
	sn->announce_port = o->announce_port;
	sn->announce_port_arg = o->announce_port_arg;
	sn->id = *o->id;
	sn->cfg = *o->cfg;
	util_hex(sn->key_hex, sn->id.pk, IDENTITY_PK_LEN);

	/* [svc] limits; a zero (a caller without config_defaults()) is the
	 * router's own default. */
	ro.peer.calls_per_min = sn->cfg.svc_peer_calls_per_min;
	ro.peer.max_payload = sn->cfg.svc_max_payload;
	ro.peer.max_concurrent = sn->cfg.svc_peer_concurrency;
	ro.svc.calls_per_min = sn->cfg.svc_service_calls_per_min;
	ro.svc.max_payload = sn->cfg.svc_max_payload;
	ro.svc.max_concurrent = sn->cfg.svc_service_concurrency;
	ro.addr_calls_per_min = sn->cfg.svc_addr_calls_per_min;
	ro.addr_concurrent = sn->cfg.svc_addr_concurrency;
	ro.global_concurrent = sn->cfg.svc_global_concurrency;
	ro.ban_threshold = sn->cfg.svc_ban_threshold;
	ro.addr_ban_threshold = sn->cfg.svc_addr_ban_threshold;
	ro.ban = on_ban;
	ro.ban_ctx = sn;
	err = svc_router_new(&sn->router, &ro);
	if (!err)
		err = svc_router_register_builtins(sn->router);
	bo.max_inflight = sn->cfg.svc_backend_max_inflight;
	bo.max_per_service = sn->cfg.svc_backend_max_per_service;
	bo.pool_conns = sn->cfg.svc_backend_pool_conns;
	bo.idle_ms = sn->cfg.svc_backend_idle_ms;
	bo.max_response = svcn_max_payload(sn);
	bo.tick = svcn_tick; /* jobs and pass-throughs: their deadlines */
	bo.tick_ctx = sn;
	bo.hosted = sn->cfg.svc_owner_worker && engine_mode(o->eng) != IO_MODE_MEM;
	if (!err)
		err = svc_backend_new(&sn->backend, &bo);
	if (!err && bo.hosted) {
		/* the owner's loop in QUIC worker 0's turns (docs/SERVICE.md,
		 * "The owner on the QUIC worker") */
		err = engine_host(o->eng, 0, svc_backend_fd(sn->backend), svc_backend_step,
				  sn->backend);
		if (err)
			log_error("svc", "svc.owner = worker: %s", strerror(-err));
	}
	if (!err)
		err = svcn_strm_init(sn);
	if (!err)
		svcn_strm_srv_init(sn);
	if (!err)
		err = svc_dir_new(&sn->dir, &dopts);
	if (!err)
		err = svcn_pub_store_init(sn, o->store);
	if (!err)
		err = svcn_rep_init(sn);
	if (err)
		goto fail;
	h.release = shim_release;
	svcn_srv_handler(&h, SVC_NODE_ST_DESC);
	atomic_store(&sn->shim->refs, 2); /* the QUIC node's release lets go of one */
	err = quic_node_register(sn->quic, SVC_NODE_ST_DESC, &h, sn->shim);
	if (err)
		atomic_store(&sn->shim->refs, 1); /* never registered: no release */
	svcn_srv_handler(&h, SVC_NODE_ST_CALL);
	if (!err)
		err = quic_node_register(sn->quic, SVC_NODE_ST_CALL, &h, sn->shim);
	svcn_srv_handler(&h, SVC_NODE_ST_HTTP);
	if (!err)
		err = quic_node_register(sn->quic, SVC_NODE_ST_HTTP, &h, sn->shim);
	svcn_srv_handler(&h, SVC_NODE_ST_STREAM);
	if (!err)
		err = quic_node_register(sn->quic, SVC_NODE_ST_STREAM, &h, sn->shim);
	svcn_srv_handler(&h, SVC_NODE_ST_WS);
	if (!err)
		err = quic_node_register(sn->quic, SVC_NODE_ST_WS, &h, sn->shim);
	if (!err && sn->ctl)
		err = svcn_ctl_register(sn);
	if (!err && sn->ctl)
		err = svcn_strm_ctl_register(sn);
	if (err)
		goto fail;
	atomic_store(&sn->shim->live, sn); /* workers may post from now on */
	*out = sn;
	return 0;
fail:
	svc_node_free(sn);
	return err;
}

void svc_node_stop(struct svc_node *sn)
{
	if (!sn)
		return;
	/* Callers waiting on jobs look at stopping at least every
	 * SVCN_JOB_POLL_MS and leave. */
	pthread_mutex_lock(&sn->attach_mu);
	atomic_store(&sn->stopping, 1);
	pthread_mutex_unlock(&sn->attach_mu);
	/* Streams release their sockets now, before the gateway and the
	 * control API that lent them stop (svcn_strm_stop_wait). */
	svcn_strm_stop(sn);
	svcn_strm_stop_wait(sn);
	pthread_mutex_lock(&sn->refresh_mu);
	pthread_cond_broadcast(&sn->refresh_cv);
	pthread_mutex_unlock(&sn->refresh_mu);
}

void svc_node_gateway_stop(struct svc_node *sn)
{
	if (!sn)
		return;
	svc_gateway_stop(sn->gw);
	sn->gw = NULL;
}

int svc_node_start(struct svc_node *sn)
{
	int err;

	if (!sn)
		return -EINVAL;
	err = svcn_pub_restore(sn);
	if (err)
		log_warn("svc", "stored publications: %s", strerror(-err));
	err = log_thread_create(&sn->refresher, NULL, svcn_refresh_main, sn, "weft-svc-pub");
	if (err)
		return -err;
	sn->refresher_on = 1;
	if (sn->cfg.gateway[0]) {
		err = svc_gateway_start(sn, &sn->gw);
		if (err)
			return err;
	}
	return 0;
}

void svc_node_free(struct svc_node *sn)
{
	struct svcn_shim *shim;

	if (!sn)
		return;
	svc_node_stop(sn);
	/* No worker posts from now on; those inside a callback finish (they
	 * never block). Events queued are run or released by the owner
	 * (svc_backend_free below). */
	if (sn->shim) {
		atomic_store(&sn->shim->live, NULL);
		while (atomic_load(&sn->shim->active))
			sched_yield();
	}
	svc_node_gateway_stop(sn);
	if (sn->refresher_on) {
		pthread_mutex_lock(&sn->refresh_mu);
		pthread_cond_broadcast(&sn->refresh_cv);
		pthread_mutex_unlock(&sn->refresh_mu);
		pthread_join(sn->refresher, NULL);
	}
	/* Backend completions and streams see stopping and do not write; the
	 * backend ends every request in progress without waiting on any. */
	svc_backend_free(sn->backend);
	/* The owner's loop is over: this thread is the state's only user. */
	svcn_jobs_free(sn);
	shim = sn->shim;
	if (shim)
		shim->sn = NULL;
	svcn_strm_free_all(sn); /* before the pool's slots go */
	svcn_ops_free(sn);
	svcn_ins_free(sn);
	for (size_t i = 0; i < sn->npubs; i++)
		free(sn->pubs[i].desc);
	svc_dir_free(sn->dir);
	svcn_rep_flush(sn);
	svc_rep_free(sn->rep);
	svc_router_free(sn->router);
	pthread_cond_destroy(&sn->refresh_cv);
	pthread_mutex_destroy(&sn->refresh_mu);
	pthread_mutex_destroy(&sn->attach_mu);
	identity_wipe(&sn->id);
	free(sn);
	/* The shim stays while the QUIC node may still call our handlers
	 * (quic_node_free() after us reports closes, which find it dead);
	 * shim_release() frees it then. If the QUIC node went first, now. */
	if (shim)
		svcn_shim_put(shim);
}
