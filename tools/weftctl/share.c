// SPDX-License-Identifier: MIT
/*
 * weftctl share show ID
 * API: GET /v1/content/shares/ID (docs/CONTENT.md, "Control API"). A share
 * not held yet is fetched with `weftctl content get ID`.
 */
#include <stdio.h>
#include <string.h>

#include "weftctl.h"

static const char share_usage[] = "share show ID";

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

static long long jint(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static int share_run(struct weftctl *ctx, int argc, char **argv)
{
	json_t *out = NULL, *it;
	char path[128], b[32];
	size_t i;
	int rc;

	if (argc != 3 || strcmp(argv[1], "show") || strlen(argv[2]) != 40 ||
	    strspn(argv[2], "0123456789abcdefABCDEF") != 40)
		return weftctl_usage(share_usage);
	snprintf(path, sizeof(path), "/v1/content/shares/%s", argv[2]);
	rc = weftctl_do(ctx, "GET", path, NULL, ctx->json ? NULL : &out);
	if (rc || !out)
		return rc;
	printf("share      %s\nname       %s\npublisher  %s\nseq        %lld\ncreated    %lld\n"
	       "visibility %s\nsignature  %s\n",
	       jstr(out, "share_id"), jstr(out, "name"), jstr(out, "publisher"), jint(out, "seq"),
	       jint(out, "created"), jstr(out, "visibility"), jstr(out, "sig"));
	printf("\n%-64s %10s  %-24s %s\n", "CONTENT ID", "SIZE", "TYPE", "PATH");
	json_array_foreach(json_object_get(out, "items"), i, it)
	    printf("%-64s %10s  %-24s %s\n", jstr(it, "id"),
		   weftctl_fmt_bytes((double)jint(it, "size"), b, sizeof(b)), jstr(it, "type"),
		   jstr(it, "path"));
	json_decref(out);
	return WEFTCTL_OK;
}

WEFTCTL_NOUN(share, .name = "share", .usage = share_usage, .run = share_run, .needs_daemon = 1);
