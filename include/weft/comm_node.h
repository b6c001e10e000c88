/* SPDX-License-Identifier: MIT */
/*
 * Communities on a node (docs/COMMUNITY.md "On a node"): the communities
 * this node belongs to, each with its index, persisted in LMDB
 * (`communities`, `community_records`), and the control routes under
 * /v1/community (docs/CONTROL_API.md).
 */
#ifndef WEFT_COMM_NODE_H
#define WEFT_COMM_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "weft/comm.h"

struct ctl;
struct store;
struct identity;
struct quic_node;
struct dhtnode;
struct conn_node;

/* QUIC stream types of communities (0x60-0x6f are theirs; docs/PROTOCOL.md
 * "Communities"): pull one page of a community's index, one gossip
 * envelope. */
#define COMM_ST_SYNC 0x60
#define COMM_ST_GOSSIP 0x61

/* Communities one node belongs to at once. */
#define COMM_NODE_MAX 64u
/* Members or shares per page of the control API's listings. */
#define COMM_NODE_PAGE 50u

struct comm_node_opts {
	struct store *store;       /* required */
	struct ctl *ctl;           /* routes registered when set */
	const struct identity *id; /* the node key: signs our records */
	/* The network (docs/COMMUNITY.md "Finding each other"); NULL quic:
	 * local only. dht NULL: holders are learned only from those that
	 * contact us. */
	struct quic_node *quic;
	struct dhtnode *dht;
	uint16_t quic_port; /* announced under each community's DHT key ... */
	struct conn_node *conn; /* ... unless conn knows the port a NAT maps it to */
};

struct comm_node;

/* Load the communities from the store and register the routes. -EIO,
 * -ENOMEM, store errors. */
int comm_node_new(struct comm_node **out, const struct comm_node_opts *opts);
/* Start finding and syncing (after the engine and the DHT started). */
int comm_node_start(struct comm_node *cn);
void comm_node_free(struct comm_node *cn);

/*
 * Mesh envelopes (community gossip kind 2; docs/MESH.md "On a node"): the
 * mesh layer, above this module, takes them through a hook. fn gets each
 * one a member's connection brings on community id's gossip stream, from
 * the community's serve thread with no lock held: 0 taken, < 0 refused.
 * Set it before comm_node_start. Without a hook kind 2 is refused.
 */
typedef int (*comm_node_mesh_fn)(void *arg, const uint8_t id[COMM_ID_LEN],
				 const uint8_t from[COMM_PK_LEN], const uint8_t *env, size_t len);
void comm_node_mesh_hook(struct comm_node *cn, comm_node_mesh_fn fn, void *arg);
/* Send env on community id's gossip stream to its holder whose key is key
 * (any thread, never blocks): 0, -ENOENT (no such community, no network or
 * no such holder), -E2BIG. */
int comm_node_mesh_send(struct comm_node *cn, const uint8_t id[COMM_ID_LEN],
			const uint8_t key[COMM_PK_LEN], const uint8_t *env, size_t len);
/* The keys of community id's holders known by key (ours excluded), at
 * most max: their number, or -ENOENT (not a community of ours, no network). */
int comm_node_mesh_peers(struct comm_node *cn, const uint8_t id[COMM_ID_LEN],
			 uint8_t (*keys)[COMM_PK_LEN], size_t max);

#endif
