// SPDX-License-Identifier: MIT
/* The node's state, shared by the files of userspace/node (node.c, the hub:
 * wiring and the main loop; reload.c: SIGHUP). Not a public header. */
#ifndef WEFT_NODE_INT_H
#define WEFT_NODE_INT_H

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "weft/identity.h"
#include "weft/log.h"
#include "weft/node.h"

struct node {
	struct weft_config cfg;
	char config_path[PATH_MAX];
	struct identity id;
	char pk_hex[2 * IDENTITY_PK_LEN + 1];
	struct store *store;
	struct ctl *ctl;
	struct wxdp *xdp;    /* xdp mode: the attached program */
	struct guard *guard; /* bans, limits, counters (XDP or software) */
	struct engine *engine;
	struct quic_node *quic;
	struct dhtnode *dht;
	struct svc_node *svc; /* service fabric and gateway */
	struct comm_node *comm; /* communities (docs/COMMUNITY.md) */
	struct mesh_node *mesh; /* the mesh over their gossip (docs/MESH.md) */
	struct content_node *content;
	struct conn_node *conn; /* node record, address discovery, resolution */
	struct relay_node *relay; /* relay control plane (both roles) */
	struct mbox_node *mbox;	  /* mailboxes: the anchor's and our inbox (docs/MAILBOX.md) */
	struct relay_fwd *relay_fwd; /* relay data plane (relay.enable), else NULL */
	struct dash *dash;      /* live dashboard (dashboard.listen), NULL when off */
	struct lan_node *lan;   /* BEP 14 LAN discovery (lan.discovery), NULL when off */
	uint16_t ports[2];   /* served UDP ports: quic, dht */
	unsigned int workers;
	uint64_t start_ms;
	uint64_t start_wall;
	_Atomic unsigned long long reloads;
	const char *io_mode; /* what actually runs: "uring" or "xdp" */
	struct log_ctx log;  /* this node's level and output (node.log_level) */
	struct simnet_host *sim_host; /* tests: engine on the mem backend */
};

/* packets.c: the packet policy (the XDP program or the software
 * policers, behind the guard; n->workers decided here), and the queue
 * steering of QUIC datagrams on io_uring sockets (eo->steer_prog points
 * at fp, which points at insns: the caller's, alive until engine_new
 * returns). */
int node_policy_init(struct node *n);
struct engine_opts;
struct sock_fprog;
struct sock_filter;
void node_steer(struct node *n, struct engine_opts *eo, struct sock_fprog *fp,
		struct sock_filter *insns);

/* SIGHUP (reload.c): re-read the configuration file, apply the live keys
 * that changed, name the others that need a restart. On the main loop. */
void node_reload(struct node *n);

/* heap.c: malloc's heap in /v1/status and /metrics, and its trim every
 * NODE_HEAP_TRIM_TICKS ticks (one a second) of the main loop. Every 60 s
 * (300 until 2026-11-27): what a burst freed is resident at most a minute,
 * for a trim of 0.1-0.4 ms on the main loop (trim_last_us in /v1/status). */
#define NODE_HEAP_TRIM_TICKS 60
/* What a thread's arena may keep of the memory at its top before a free
 * hands it back (glibc's default 128 KiB; malloc_trim never returns it for
 * any arena but the main one): heap.c, docs/OPERATIONS.md. */
#define NODE_HEAP_TRIM_THRESHOLD (16 * 1024)
void node_heap_tick(unsigned long long ticks);
json_t *node_heap_json(void);
void node_heap_metrics(FILE *out);

#endif
