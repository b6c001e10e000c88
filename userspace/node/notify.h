/* SPDX-License-Identifier: MIT */
#ifndef WEFT_NODE_NOTIFY_H
#define WEFT_NODE_NOTIFY_H
#include <stddef.h>
/* Send "READY=1", "STOPPING=1", "RELOADING=1"... Returns 0 (also when not
 * under systemd) or -errno. */
int node_notify(const char *state);
#endif
