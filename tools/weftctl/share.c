// SPDX-License-Identifier: MIT
/*
 * weftctl share show ID|KEY/NAME|MAGNET
 * API: GET /v1/content/shares/ID (docs/CONTENT.md, "Control API"); a share
 * not held is fetched first (its manifest only, verified). A head is
 * turned into its share id with POST /v1/content/link.
 */
#include <stdio.h>
#include <string.h>

#include "weftctl.h"

int weftctl_share(struct weftctl *ctx, int argc, char **argv)
{
	json_t *out = NULL, *it;
	char path[128], b[32];
	size_t i;
	int rc;

	if (argc != 3 || strcmp(argv[1], "show"))
		return weftctl_usage(ctx);
	if (strlen(argv[2]) != 40 || strspn(argv[2], "0123456789abcdefABCDEF") != 40) {
		/* a share head (KEY/NAME or magnet): its share id */
		json_t *body = json_pack("{s:s}", "ref", argv[2]);

		rc = weftctl_do(ctx, "POST", "/v1/content/link", body, &out);
		json_decref(body);
		if (rc)
			return rc;
		snprintf(path, sizeof(path), "/v1/content/shares/%s", weftctl_jstr(out, "share_id"));
		json_decref(out);
		out = NULL;
	} else {
		snprintf(path, sizeof(path), "/v1/content/shares/%s", argv[2]);
	}
	rc = weftctl_do(ctx, "GET", path, NULL, ctx->json ? NULL : &out);
	if (rc || !out)
		return rc;
	printf("share      %s\nname       %s\npublisher  %s\nseq        %lld\ncreated    %lld\n"
	       "visibility %s\nsignature  %s\n",
	       weftctl_jstr(out, "share_id"), weftctl_jstr(out, "name"),
	       weftctl_jstr(out, "publisher"), weftctl_jint(out, "seq"),
	       weftctl_jint(out, "created"), weftctl_jstr(out, "visibility"),
	       weftctl_jstr(out, "sig"));
	if (json_is_true(json_object_get(out, "sealed")))
		printf("sealed     to %lld keys; %s\n", weftctl_jint(out, "keys"),
		       json_is_true(json_object_get(out, "recipient"))
			   ? "this node is a recipient (paths and sizes below are the plaintext's)"
			   : "this node is not a recipient: ciphertext sizes only");
	printf("\n%-64s %10s  %-24s %s\n", "CONTENT ID", "SIZE", "TYPE", "PATH");
	json_array_foreach(json_object_get(out, json_object_get(out, "opened") ? "opened" : "items"), i, it)
	    printf("%-64s %10s  %-24s %s\n", weftctl_jstr(it, "id"),
		   weftctl_fmt_bytes((double)weftctl_jint(it, "size"), b, sizeof(b)),
		   weftctl_jstr(it, "type"), weftctl_jstr(it, "path"));
	json_decref(out);
	return WEFTCTL_OK;
}
