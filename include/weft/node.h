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

/*
 * Build a node from a finished configuration: lock and open the state
 * directory, load or create the identity, open the store, bind the control
 * socket. config_path may be NULL (used for SIGHUP reloads).
 * Errors: -EBUSY (state directory in use), -EBADMSG (damaged store or key),
 * -EPERM (key file permissions), -EADDRINUSE (control socket live), -errno.
 */
int node_new(struct node **out, const struct weft_config *cfg, const char *config_path);
void node_free(struct node *n);

/* Serve until SIGTERM/SIGINT (0) or a fatal error (-errno). SIGHUP reloads
 * the reloadable keys. Reports READY=1 to systemd when NOTIFY_SOCKET is set. */
int node_run(struct node *n);

const struct identity *node_identity(const struct node *n);

#endif
