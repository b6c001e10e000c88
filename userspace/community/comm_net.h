/* SPDX-License-Identifier: MIT */
/*
 * Communities on the network (docs/COMMUNITY.md "Finding each other"),
 * internal to the community module: holders found through the community's
 * DHT key, pages pulled from them over QUIC stream type 0x60, records
 * gossiped over stream type 0x61. comm_node.c owns the index and the
 * store; this file reaches them only through struct comm_net_ops, so it
 * never calls comm_node.c back.
 */
#ifndef WEFT_COMM_NET_H
#define WEFT_COMM_NET_H

#include <stddef.h>
#include <stdint.h>

#include "weft/comm.h"

struct quic_node;
struct dhtnode;
struct identity;
struct conn_node;

typedef int (*comm_net_mesh_fn)(void *arg, const uint8_t id[COMM_ID_LEN],
				const uint8_t from[COMM_PK_LEN], const uint8_t *env, size_t len);

struct comm_net_ops {
	void *arg;
	/* Page `page` of type of the community whose DHT key is dht_key:
	 * 0, -ENOENT (no such community or page), -ENOSPC. */
	int (*page)(void *arg, const uint8_t dht_key[COMM_DHT_KEY_LEN], uint8_t type,
		    uint32_t page, uint8_t *out, size_t cap, size_t *len);
	/* A signed record (plain) of community id from gossip: add and
	 * persist; comm_index_add's result. */
	int (*take)(void *arg, const uint8_t id[COMM_ID_LEN], const uint8_t *rec, size_t len);
	/* A page pulled from a holder: take it in and persist what it added;
	 * *total the holder's count. The records added or replaced (>= 0), or
	 * comm_index_ingest's error. */
	int (*ingest)(void *arg, const uint8_t id[COMM_ID_LEN], const uint8_t *page, size_t len,
		      uint32_t *total);
	/* Sign our member record of community id anew and store it: its
	 * publication (comm_net_publish) then reaches the holders now known.
	 * Called once per community and start, after the first pull. */
	void (*introduce)(void *arg, const uint8_t id[COMM_ID_LEN]);
	/* 1 when key is a present member of community id. */
	int (*member)(void *arg, const uint8_t id[COMM_ID_LEN], const uint8_t key[COMM_PK_LEN]);
};

struct comm_net_opts {
	struct quic_node *quic; /* required */
	struct dhtnode *dht;    /* NULL: holders only from inbound contacts */
	const struct identity *me;
	uint16_t quic_port; /* announced under the DHT key, unless: */
	struct conn_node *conn; /* knows the port our QUIC socket is mapped to */
	struct comm_net_ops ops;
};

struct comm_net_stats {
	uint64_t announces, announced, finds, found, pulls, pull_fail, pulled, served,
		served_unknown, gossip_sent, gossip_in, gossip_taken, gossip_forwarded,
		gossip_refused, busy, not_member;
	uint64_t mesh_in, mesh_refused; /* kind-2 envelopes handed to the mesh, refused */
	uint64_t by_key, by_key_fail, gossip_retried, gossip_dropped; /* by key (comm_dial.c) */
	uint64_t gossip_again, gossip_given_up; /* ... tried again later; rounds over */
	uint64_t gossip_late_ok; /* ... reached the holder in a later round */
	uint64_t gossip_members; /* our records sent by key to members no holder entry names */
	uint64_t gossip_bytes_sent, gossip_bytes_in; /* stream payloads (type varint and QUIC aside) */
};

struct comm_net;

/* Registers the stream types (before the engine starts). */
int comm_net_new(struct comm_net **out, const struct comm_net_opts *o);
/* The threads (after the engine and the DHT started). */
int comm_net_start(struct comm_net *net);
void comm_net_free(struct comm_net *net);
/* A community we belong to, from now (announce, find, pull at once) /
 * no longer. */
int comm_net_add(struct comm_net *net, const uint8_t id[COMM_ID_LEN],
		 const uint8_t pk[COMM_PK_LEN]);
void comm_net_remove(struct comm_net *net, const uint8_t id[COMM_ID_LEN]);
/* Gossip one of our own records (signed, plain) to up to the fan-out of
 * the community's holders; when fewer are known by key, to members (keys
 * of present members from the index, at most nmembers) that no holder
 * entry names, by key, up to the fan-out. Any thread; never blocks on the
 * network. */
void comm_net_publish(struct comm_net *net, const uint8_t id[COMM_ID_LEN], const uint8_t *rec,
		      size_t len, const uint8_t (*members)[COMM_PK_LEN], size_t nmembers);
/* Holders of the community known by key (ours excluded). */
size_t comm_net_peers(struct comm_net *net, const uint8_t id[COMM_ID_LEN]);
void comm_net_stats(struct comm_net *net, struct comm_net_stats *out);
/* Sends of our records to the holder whose key is key that reached
 * nobody and wait for a later round (queued; one being dialled is not
 * counted). Any thread. */
unsigned int comm_net_waiting(struct comm_net *net, const uint8_t key[COMM_PK_LEN]);
/* Mesh envelopes (gossip kind 2, docs/MESH.md "On a node"): fn takes each
 * one a member's connection brings on the community's gossip (0 taken,
 * or a negative errno: refused), from the serve thread, no lock held.
 * Set before comm_net_start. */
void comm_net_set_mesh(struct comm_net *net, comm_net_mesh_fn fn, void *arg);
/* Send a mesh envelope (any thread, never blocks) to the holder of
 * community id whose key is key: 0, -ENOENT (no such community or holder). */
int comm_net_mesh_send(struct comm_net *net, const uint8_t id[COMM_ID_LEN],
		       const uint8_t key[COMM_PK_LEN], const uint8_t *env, size_t len);
/* The keys of the community's holders known by key (ours excluded), at
 * most max: their number, or -ENOENT. */
int comm_net_mesh_peers(struct comm_net *net, const uint8_t id[COMM_ID_LEN],
			uint8_t (*keys)[COMM_PK_LEN], size_t max);

#endif
