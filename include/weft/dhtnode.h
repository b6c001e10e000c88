/* SPDX-License-Identifier: MIT */
/* weftd's DHT: the I/O-free core (userspace/dht) on the packet engine. */
#ifndef WEFT_DHTNODE_H
#define WEFT_DHTNODE_H

#include "weft/identity.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct engine;
struct ctl;
struct guard;
struct store;
struct dhtnode;

#define DHTNODE_MAX_BOOTSTRAP 16 /* bootstrap contacts (host:port strings) */

/* What the node layer tells the DHT on the engine (filled from weftd's
 * configuration: dht.* keys, docs/CONFIG.md). */
struct dhtnode_opts {
	uint16_t port;		    /* UDP port served (host order) */
	int dual_stack;		    /* the socket serves both families ("::"): keep both */
	int read_only;		    /* BEP 43 read-only from the start */
	int read_only_behind_nat;   /* BEP 43 read-only while the NAT probe says so */
	int enforce_bep42;	    /* BEP 42 node ids: check others', derive ours */
	int public_routers;	    /* also contact the well-known public routers */
	unsigned int nbootstrap;    /* entries of bootstrap[] used */
	const char *bootstrap[DHTNODE_MAX_BOOTSTRAP]; /* "host:port"; copied by dhtnode_new */
};

/* Create the DHT, restore its routing table and items from the store,
 * register the engine handler for opts->port and the /v1/dht routes.
 * Call between engine_new() and engine_start(). Returns 0, -EINVAL (more
 * than DHTNODE_MAX_BOOTSTRAP contacts, one longer than 127 bytes) or
 * -errno. */
int dhtnode_new(struct dhtnode **out, struct engine *eng, struct ctl *ctl, struct guard *g,
		struct store *st, const struct dhtnode_opts *opts, const struct identity *id);
/* After engine_start(): arm the periodic timer and contact bootstrap nodes. */
int dhtnode_start(struct dhtnode *nd);
/* Hand the routing table and stored items to the store's writer
 * (fire-and-forget: committed with its next batch; the caller never waits
 * on the disk). 0, -EAGAIN (writer queue full: dropped, the next periodic
 * save retries) or -errno. */
int dhtnode_save(struct dhtnode *nd);
/*
 * Run fn(dht, arg, now_ms) on the DHT's owner, worker 0: the way other
 * modules start DHT operations (dht_get_peers, dht_announce, dht_get,
 * dht_put_mutable, ... from include/weft/dht.h).
 * - On worker 0 (inside DHT callbacks too): fn runs now.
 * - On a thread outside the engine: fn runs on worker 0 and this waits
 *   for it (at most 5 s; -ETIMEDOUT then, and fn never runs). Before the
 *   workers start or after they stop, fn runs on the caller's thread.
 * - On another engine worker (which must not block on worker 0): fn is
 *   posted and runs later, so arg must stay valid until fn ran (pass
 *   something fn owns or that is reference-counted).
 * Done callbacks of started operations run on worker 0 later: they must
 * not block. Returns 0, -EINVAL, -ETIMEDOUT, -EAGAIN (command queue full),
 * -ENOMEM, -ESHUTDOWN (after dhtnode_cancel: fn did not run).
 */
struct dht;
typedef void (*dhtnode_fn)(struct dht *dht, void *arg, uint64_t now_ms);
int dhtnode_run(struct dhtnode *nd, dhtnode_fn fn, void *arg);
/* Where the `ip` fields of KRPC replies go (dht_opts.on_reflexive: the
 * replier `from` saw us at ip, 6 or 18 bytes); runs on worker 0. Set it
 * before dhtnode_start(). */
typedef void (*dhtnode_reflexive_fn)(void *arg, const struct sockaddr *from, socklen_t fromlen,
				      const uint8_t *ip, size_t ip_len);
void dhtnode_set_reflexive(struct dhtnode *nd, dhtnode_reflexive_fn fn, void *arg);
/* How the DHT learns whether the node is behind a NAT (1 yes, 0 no); with
 * dht.read_only_behind_nat it then turns BEP 43 read-only mode on (and off
 * again when the answer changes). Called on worker 0 about once a second;
 * must not block. Set it before dhtnode_start(). */
typedef int (*dhtnode_nat_fn)(void *arg);
void dhtnode_set_nat_probe(struct dhtnode *nd, dhtnode_nat_fn fn, void *arg);
/* The UDP port the DHT serves (host order). */
uint16_t dhtnode_port(const struct dhtnode *nd);

/* Save, then free. Call after engine_stop(). NULL-safe. */
/* At shutdown, before the modules whose lookups may still run (content,
 * service, relay, communities) are freed and before the control API
 * stops: every lookup ends as cancelled now (on worker 0 while the workers
 * run, else on this thread), its callback run while its owner is alive,
 * so a control handler waiting on one answers at once, not at its 35 s
 * deadline; from now on dhtnode_run() starts nothing (-ESHUTDOWN): a
 * module's thread still running cannot start one whose callback would
 * outlive the module. Idempotent: call it again after engine_stop(). */
void dhtnode_cancel(struct dhtnode *nd);
void dhtnode_free(struct dhtnode *nd);

#endif
