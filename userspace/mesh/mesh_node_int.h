/* SPDX-License-Identifier: MIT */
/* The mesh on a node: state shared by mesh_node.c (gossip, announce,
 * query, update, revoke) and mesh_rsv.c (reservations). Not exported. */
#ifndef WEFT_MESH_NODE_INT_H
#define WEFT_MESH_NODE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "weft/comm_node.h"
#include "weft/mesh_node.h"

#define NEIGH_MAX 32u
#define PENDING_MAX 8u	      /* queries waiting for answers at once */
#define QUERY_WAIT_MS 1500u   /* default wait for answers */
#define QUERY_WAIT_MAX 10000u /* longest wait a request may ask */
#define GC_MS 60000u
#define SEEN_MAX 256u  /* announces remembered from query results */
#define TTL_H_MAX 720u /* 30 days: the core's longest Announce TTL */

struct mcomm {
	uint8_t id[COMM_ID_LEN];
	struct mesh_peer *p;
};

/* The neighbours of the input being handled (for send's token -> key). */
struct cur {
	const uint8_t *id;
	uint8_t keys[NEIGH_MAX][COMM_PK_LEN];
	uint64_t tok[NEIGH_MAX];
	size_t n;
};

struct mesh_node;
struct pending {
	struct mesh_node *mn;
	unsigned int min_level; /* answers below it are left out */
	int used;
	uint32_t service, max;
	uint8_t qid[MESH_ID_LEN];
	json_t *arr; /* the announces gathered */
	uint8_t seen[MESH_QUERY_RESULTS_MAX][MESH_ID_LEN];
	size_t nseen;
};

struct mesh_node {
	struct mesh_node_opts o;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct mesh_store *store;
	struct mesh_trust trust;
	struct mcomm c[COMM_NODE_MAX];
	size_t n;
	struct cur cur;
	struct pending q[PENDING_MAX];
	uint64_t next_gc_ms;
	uint64_t refused, answers_in;
	/* reservations (mesh_rsv.c) */
	struct mesh_inbox *inbox;
	struct {
		uint8_t id[MESH_ID_LEN], provider[MESH_PK_LEN];
		uint32_t service;
	} seen[SEEN_MAX]; /* announces our queries returned, for a Reserve */
	size_t nseen_next;
	uint64_t rsv_sent, rsv_received, rsv_answered, rsv_answers_in, rsv_dropped;
};

static inline uint64_t mesh_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* mesh_rsv.c: an Announce-style body from a request's "data" (a JSON
 * object): 0 or -EINVAL; MESH_NODE_DATA_MSG is the 400's message (its
 * arguments: MESH_FIELDS_MAX, MESH_FIELD_VALUE_MAX, MESH_BODY_ANNOUNCE). */
int mesh_node_data_body(const json_t *d, uint8_t body[MESH_BODY_ANNOUNCE], size_t *bl);
#define MESH_NODE_DATA_MSG                                                                         \
	"\"data\": a JSON object of at most %u fields named [a-z0-9_], values integers or "        \
	"strings of at most %u bytes, %u bytes encoded"

/* mesh_rsv.c */
#define MESH_MBOX_TAG "weft-mesh-v1" /* a mailbox message carrying one mesh envelope */
int mesh_rsv_init(struct mesh_node *mn);
void mesh_rsv_seen(struct mesh_node *mn, const struct mesh_env *a);
void mesh_rsv_metrics(struct mesh_node *mn, FILE *out);

#endif
