/* SPDX-License-Identifier: MIT */
/*
 * The world the multi-node scenarios of tests/sim/ share: one simulated
 * network (real-time clock, a seed), a public DHT bootstrap B at
 * 198.51.100.2, a public relay R at 198.51.101.3, NATs in front of private
 * nodes, the wait until the DHT has formed, and the teardown (nodes freed
 * in reverse order of creation, then the network). The scenarios keep their
 * own addresses, settings and seeds; this file owns what they repeated.
 */
#ifndef WEFT_TEST_WORLD_H
#define WEFT_TEST_WORLD_H

#include <stddef.h>

#include "simnode.h"
#include "weft/simnet.h"

#define WORLD_BOOT_IP "198.51.100.2"
#define WORLD_RELAY_IP "198.51.101.3"
/* The setting every node but the bootstrap starts with. */
#define WORLD_BOOTSTRAP "dht.bootstrap=" WORLD_BOOT_IP ":6881"
#define WORLD_MAX_NODES 16
#define WORLD_MAX_SETTINGS 16

struct world {
	struct simnet *sn;
	struct simnode *nodes[WORLD_MAX_NODES]; /* in order of creation */
	size_t n;
	/* "relay.use=KEY@198.51.101.3:4433" once world_relay made R: a
	 * scenario lists w->use among a node's settings (the buffer is
	 * stable, so a settings array may point at it before R exists). */
	char use[160];
};

/* A new simulated network with seed, on the real-time clock (the nodes'
 * workers run as threads). Fails the test on error. */
void world_new(struct world *w, unsigned long long seed);
/* Free every node (last created first), then the network. */
void world_free(struct world *w);

/* B, the public DHT bootstrap at WORLD_BOOT_IP, with exactly settings
 * (NULL: none; B needs no bootstrap of its own). */
void world_bootstrap(struct world *w, struct simnode *b, const char *const *settings);
/* R, the public relay at WORLD_RELAY_IP: WORLD_BOOTSTRAP,
 * "relay.enable=true", then extra (NULL-terminated, may be NULL); fills
 * w->use. */
void world_relay(struct world *w, struct simnode *r, const char *const *extra);
/* A node name at ip (behind nat when not NULL): WORLD_BOOTSTRAP, then extra
 * (NULL-terminated, may be NULL). */
void world_node(struct world *w, struct simnode *x, const char *name, const char *ip,
		struct simnet_nat *nat, const char *const *extra);
/* A NAT whose outside address is outside, with filtering filter and
 * mapping mapping (SIMNET_NAT_MAP_EIM or _ADM), default timeout. */
struct simnet_nat *world_nat(struct world *w, const char *outside, enum simnet_nat_filter filter,
			     enum simnet_nat_mapping mapping);

/*
 * Wait (at most timeout_ms of real time) until each node listed (a
 * NULL-terminated list of struct simnode *) knows at least min IPv4 DHT
 * nodes; fails the test on timeout.
 */
void world_dht_formed(int min, unsigned int timeout_ms, ...);

#endif
