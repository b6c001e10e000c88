/* SPDX-License-Identifier: MIT */
/*
 * weftd's node: owns the configuration, identity, store, control server and
 * (as they arrive) the engine and protocol modules, and runs the main loop
 * on io_uring: signals through a signalfd, a housekeeping tick, commands.
 */
#ifndef WEFT_NODE_H
#define WEFT_NODE_H

#include "weft/config.h"
#include "weft/identity.h"

#define WEFT_VERSION "0.1.0"

struct node;
struct ctl;
struct log_ctx;
struct svc_node;
struct simnet_host;

/* Construction options beyond the configuration (node_new_opts). Zero
 * them for weftd's defaults. */
struct node_opts {
	const char *config_path; /* re-read on SIGHUP; NULL: no reloads */
	int log_fd;		 /* the node's log lines; 0 or -1: stderr */
	const char *log_name;	 /* prefix of the node's log lines; NULL: none */
	/*
	 * Tests: run the packet engine on the in-memory backend as this host
	 * of a simulated network (include/weft/simnet.h), on the network's
	 * clock, with the software policer in front (as in uring mode).
	 * node.io and the XDP keys are then ignored. NULL: uring or XDP.
	 */
	struct simnet_host *sim_host;
};

/*
 * Build a node from a finished configuration: lock and open the state
 * directory, load or create the identity, open the store, bind the control
 * socket. config_path may be NULL (used for SIGHUP reloads).
 * Errors: -EBUSY (state directory in use), -EBADMSG (damaged store or key),
 * -EPERM (key file permissions), -EADDRINUSE (control socket live), -errno.
 */
int node_new(struct node **out, const struct weft_config *cfg, const char *config_path);
/* The same with options (opts may be NULL). Several nodes may live in one
 * process: nothing here is process-wide (each has its own log context,
 * state directory and control socket). */
int node_new_opts(struct node **out, const struct weft_config *cfg, const struct node_opts *opts);
void node_free(struct node *n);

/* Start the packet workers, the DHT, the service fabric and content
 * serving (what node_run does before serving the control socket); for
 * in-process tests, which call the control handlers with ctl_dispatch.
 * Returns 0 or -errno. node_free stops everything. */
int node_start(struct node *n);
/* The node's control API (routes for ctl_dispatch) and log context. */
struct ctl *node_ctl(struct node *n);
struct log_ctx *node_log(struct node *n);
/* The node's service fabric (NULL before node_new finished); for tests. */
struct svc_node *node_svc(struct node *n);
/* The node's content side (NULL when content is off); for tests. */
struct content_node *node_content(struct node *n);

/* Serve until SIGTERM/SIGINT (0) or a fatal error (-errno). SIGHUP reloads
 * the reloadable keys. Reports READY=1 to systemd when NOTIFY_SOCKET is set. */
int node_run(struct node *n);

const struct identity *node_identity(const struct node *n);

/* The process's malloc settings for a daemon that runs for weeks (no pad
 * when a heap grows; a thread's arena hands back what is free at its top
 * above NODE_HEAP_TRIM_THRESHOLD): weftd's main calls it first, before it
 * allocates. Process-wide, so not part of node_new. docs/OPERATIONS.md. */
void node_heap_setup(void);

#endif
