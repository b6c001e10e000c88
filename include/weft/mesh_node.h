/* SPDX-License-Identifier: MIT */
/*
 * The mesh on a node (docs/MESH.md "On a node"): mesh envelopes carried on
 * the gossip of the communities this node belongs to (through the
 * community module's hook), one mesh_peer per community over one store in
 * the node's LMDB, the control routes under /v1/mesh and the weft_mesh_*
 * metrics.
 */
#ifndef WEFT_MESH_NODE_H
#define WEFT_MESH_NODE_H

#include <stdint.h>

#include "weft/mesh.h"

struct ctl;
struct store;
struct identity;
struct comm_node;
struct mbox_node;

struct mesh_node_opts {
	struct store *store;       /* required */
	struct comm_node *comm;    /* required: carries the envelopes */
	const struct identity *id; /* the node key: signs announces, responses */
	struct ctl *ctl;           /* routes and metrics when set */
	struct mesh_store_opts store_opts; /* caps (zeros: the core's defaults) */
	uint8_t hops_announce, hops_query; /* our hop caps (0: the core's 6, 4) */
	uint32_t fanout;                   /* 0: the core's 4 */
	/* Carries Reserve, Confirm and Cancel (dial by key, else the
	 * recipient's anchors); NULL: no reservations. */
	struct mbox_node *mbox;
	uint32_t inbox_max; /* reservations held (0: MESH_INBOX_DEF_MAX) */
	/* mesh.trusted and mesh.min_level: announces below min_level (by
	 * the endorsements of trusted keys) are neither stored, forwarded
	 * nor answered. */
	const struct mesh_trust *trust; /* NULL: nobody trusted */
	uint8_t min_level;
};

struct mesh_node;
/* Opens the store and the reservations' inbox, registers the routes, the
 * community hook and the mailbox taker (before mbox_node_start). */
int mesh_node_new(struct mesh_node **out, const struct mesh_node_opts *o);
/* After comm_node_free (its threads call the hook until then) and after
 * the control socket stopped. */
void mesh_node_free(struct mesh_node *mn);

#endif
