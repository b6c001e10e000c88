/* SPDX-License-Identifier: MIT */
/*
 * The fabric's front doors: its control routes (svc_node_ctl.c) and the
 * loopback HTTP gateway (gateway.c). Both only call down into the parts.
 */
#ifndef WEFT_SVC_CTL_INT_H
#define WEFT_SVC_CTL_INT_H

#include <jansson.h>

#include "svc_node_int.h"

/* svc_node_ctl.c: the routes /v1/svc/... and the fabric's /metrics. */
int svcn_ctl_register(struct svc_node *sn);
/* Request bodies of POST /v1/svc/publish, /unpublish, /call and
 * /debug/descriptor, checked without a node (tests/fuzz/fuzz_ctl_json.c):
 * 0 with *a filled, or -EINVAL with a 4xx answer (JSON error) put in resp.
 * Strings in *a point into body. */
enum { SVCN_CTL_PUBLISH = 1, SVCN_CTL_UNPUBLISH, SVCN_CTL_CALL, SVCN_CTL_DEBUG_DESC };
struct svcn_ctl_args {
	const char *name;
	const char *backend;	       /* publish: NULL = built-in */
	int http_credentials;	       /* publish: SVC_HTTP_F_CREDENTIALS */
	const char *cors;	       /* publish: NULL = none */
	const char *method, *data;     /* call: default "" */
	json_int_t count, concurrency; /* call: 1..SVCN_CTL_MAX_COUNT, 1..SVCN_CTL_MAX_CONC */
	json_int_t timeout_ms;	       /* call: 0..600000, 0 = default */
	const char *mode;	       /* debug/descriptor */
};
struct ctl_resp;
int svcn_ctl_parse(int route, json_t *body, struct svcn_ctl_args *a, struct ctl_resp *resp);

/* gateway.c */
int svc_gateway_start(struct svc_node *sn, struct svc_gateway **out);
void svc_gateway_stop(struct svc_gateway *gw);

#endif
