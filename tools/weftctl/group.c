// SPDX-License-Identifier: MIT
/*
 * weftctl group create NAME
 * weftctl group add NAME KEY...
 * weftctl group rm NAME KEY        (rotates the group's key)
 * weftctl group ls
 * weftctl group join OWNERKEY/NAME (follows the group's record)
 * weftctl group leave OWNERKEY/NAME
 * Groups of private content (docs/PRIVATE.md "Groups"). API:
 * /v1/content/groups; join and leave are subscriptions to the owner's
 * record share, OWNERKEY/weft-group.NAME.
 */
#include <stdio.h>
#include <string.h>

#include "weftctl.h"

#define GROUP_SHARE_PREFIX "weft-group."

static void print_group(const json_t *g)
{
	const json_t *k;
	size_t j;

	printf("%s  epoch %lld  id %s\n", weftctl_jstr(g, "name"), weftctl_jint(g, "epoch"),
	       weftctl_jstr(g, "group_id"));
	json_array_foreach(json_object_get(g, "members"), j, k)
	    printf("  member %s\n", json_string_value(k));
}

static void print_groups(const json_t *o)
{
	const json_t *g;
	size_t i;

	printf("owned:\n");
	json_array_foreach(json_object_get(o, "owned"), i, g)
	    print_group(g);
	printf("keys held (member of):\n");
	json_array_foreach(json_object_get(o, "held"), i, g)
	    printf("  %s/%s  epoch %lld\n", weftctl_jstr(g, "owner"), weftctl_jstr(g, "name"),
		   weftctl_jint(g, "epoch"));
}

/* OWNERKEY/NAME -> OWNERKEY/weft-group.NAME, the record share's head */
static int record_head(const char *ref, char *out, size_t cap)
{
	const char *slash = strchr(ref, '/');

	if (!slash || slash - ref != 64 || !slash[1] || strchr(slash + 1, '/'))
		return -1;
	return snprintf(out, cap, "%.64s/" GROUP_SHARE_PREFIX "%s", ref, slash + 1) >= (int)cap
		   ? -1
		   : 0;
}

int weftctl_group(struct weftctl *ctx, int argc, char **argv)
{
	char path[200], head[200];
	json_t *body;
	int rc;

	if (argc == 2 && !strcmp(argv[1], "ls"))
		return weftctl_show(ctx, "GET", "/v1/content/groups", NULL, print_groups);
	if (argc < 3 || strlen(argv[2]) > 120)
		return weftctl_usage(ctx);
	if (!strcmp(argv[1], "create") && argc == 3) {
		body = json_pack("{s:s}", "name", argv[2]);
		rc = weftctl_show(ctx, "POST", "/v1/content/groups", body, print_group);
		json_decref(body);
		if (rc == WEFTCTL_OK && !ctx->json)
			printf("members join it with: weftctl group join <this node's key>/%s\n",
			       argv[2]);
		return rc;
	}
	if ((!strcmp(argv[1], "join") || !strcmp(argv[1], "leave")) && argc == 3) {
		if (record_head(argv[2], head, sizeof(head))) {
			fprintf(stderr, "weftctl: %s: expected OWNERKEY/NAME\n", argv[2]);
			return WEFTCTL_USAGE;
		}
		body = json_pack("{s:s}", "head", head);
		rc = weftctl_show(ctx, "POST",
				  !strcmp(argv[1], "join") ? "/v1/content/subscribe"
							   : "/v1/content/unsubscribe",
				  body, NULL);
		json_decref(body);
		return rc;
	}
	if (strchr(argv[2], '/') || strchr(argv[2], '?'))
		return weftctl_usage(ctx);
	if (!strcmp(argv[1], "add") && argc >= 4) {
		json_t *keys = json_array();

		for (int i = 3; i < argc; i++)
			json_array_append_new(keys, json_string(argv[i]));
		body = json_pack("{s:o}", "keys", keys);
		snprintf(path, sizeof(path), "/v1/content/groups/%s/add", argv[2]);
	} else if (!strcmp(argv[1], "rm") && argc == 4) {
		body = json_pack("{s:s}", "key", argv[3]);
		snprintf(path, sizeof(path), "/v1/content/groups/%s/rm", argv[2]);
	} else {
		return weftctl_usage(ctx);
	}
	rc = weftctl_show(ctx, "POST", path, body, print_group);
	json_decref(body);
	return rc;
}
