/* SPDX-License-Identifier: MIT */
/*
 * svc_serve.c: the provider side of the fabric, on the owner: inbound
 * streams (descriptor requests, calls, HTTP pass-through) into the router
 * and the backend, answers back on the stream. Its events arrive from
 * svc_events.c.
 */
#ifndef WEFT_SVC_SERVE_INT_H
#define WEFT_SVC_SERVE_INT_H

#include "svc_node_int.h"

/* Stream bytes of type (SVC_NODE_ST_*) from peer (NULL: unknown: the
 * stream is reset), and the stream's close. */
void svcn_srv_data(struct svc_node *sn, int type, uint64_t conn, int64_t sid,
		   const struct svc_peer *peer, const uint8_t *data, size_t len, int fin);
void svcn_srv_closed_own(struct svc_node *sn, uint64_t conn, int64_t sid);
/* svc_node_free, once the owner's loop ended: free every inbound stream. */
void svcn_ins_free(struct svc_node *sn);

#endif
