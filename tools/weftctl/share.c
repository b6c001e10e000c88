// SPDX-License-Identifier: MIT
/*
 * weftctl share show ID
 * API: GET /v1/content/shares/ID (docs/CONTENT.md, "Control API"). A share
 * not held yet is fetched with `weftctl content get ID`.
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

	if (argc != 3 || strcmp(argv[1], "show") || strlen(argv[2]) != 40 ||
	    strspn(argv[2], "0123456789abcdefABCDEF") != 40)
		return weftctl_usage(ctx);
	snprintf(path, sizeof(path), "/v1/content/shares/%s", argv[2]);
	rc = weftctl_do(ctx, "GET", path, NULL, ctx->json ? NULL : &out);
	if (rc || !out)
		return rc;
	printf("share      %s\nname       %s\npublisher  %s\nseq        %lld\ncreated    %lld\n"
	       "visibility %s\nsignature  %s\n",
	       weftctl_jstr(out, "share_id"), weftctl_jstr(out, "name"),
	       weftctl_jstr(out, "publisher"), weftctl_jint(out, "seq"),
	       weftctl_jint(out, "created"), weftctl_jstr(out, "visibility"),
	       weftctl_jstr(out, "sig"));
	printf("\n%-64s %10s  %-24s %s\n", "CONTENT ID", "SIZE", "TYPE", "PATH");
	json_array_foreach(json_object_get(out, "items"), i, it)
	    printf("%-64s %10s  %-24s %s\n", weftctl_jstr(it, "id"),
		   weftctl_fmt_bytes((double)weftctl_jint(it, "size"), b, sizeof(b)),
		   weftctl_jstr(it, "type"), weftctl_jstr(it, "path"));
	json_decref(out);
	return WEFTCTL_OK;
}
