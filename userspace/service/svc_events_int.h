/* SPDX-License-Identifier: MIT */
/*
 * svc_events.c: the fabric's QUIC handlers, run on packet workers: each
 * copies its event and posts it to the owner, where it runs the client
 * side (svc_ops.c) or the provider side (svc_serve.c).
 */
#ifndef WEFT_SVC_EVENTS_INT_H
#define WEFT_SVC_EVENTS_INT_H

#include "svc_node_int.h"

/* cl: our outgoing connections' handlers (the hub puts them in
 * sn->cl_handler); srv: those of provider streams of type type, filled
 * into *h. Their argument is the fabric's shim. */
extern const struct quic_node_handler svcn_cl_handler;
void svcn_srv_handler(struct quic_node_handler *h, int type);

#endif
