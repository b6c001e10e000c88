// SPDX-License-Identifier: MIT
/*
 * weftctl circle set NAME KEY...
 * weftctl circle ls
 * weftctl circle rm NAME
 * Circles are recipient lists kept by the local node only, for
 * `content add --private --to-circle NAME`. API: /v1/content/circles
 * (docs/CONTROL_API.md).
 */
#include <stdio.h>
#include <string.h>

#include "weftctl.h"

static void print_circles(const json_t *o)
{
	const json_t *c, *k;
	size_t i, j;

	json_array_foreach(json_object_get(o, "circles"), i, c)
	{
		printf("%s (%zu)\n", weftctl_jstr(c, "name"),
		       json_array_size(json_object_get(c, "keys")));
		json_array_foreach(json_object_get(c, "keys"), j, k)
		    printf("  %s\n", json_string_value(k));
	}
}

int weftctl_circle(struct weftctl *ctx, int argc, char **argv)
{
	char path[160];
	int rc;

	if (argc == 2 && !strcmp(argv[1], "ls"))
		return weftctl_show(ctx, "GET", "/v1/content/circles", NULL, print_circles);
	if (argc < 3 || strlen(argv[2]) > 64 || strchr(argv[2], '/') || strchr(argv[2], '?'))
		return weftctl_usage(ctx);
	snprintf(path, sizeof(path), "/v1/content/circles/%s", argv[2]);
	if (!strcmp(argv[1], "rm") && argc == 3)
		return weftctl_show(ctx, "DELETE", path, NULL, NULL);
	if (!strcmp(argv[1], "set") && argc >= 4) {
		json_t *keys = json_array(), *body;

		for (int i = 3; i < argc; i++)
			json_array_append_new(keys, json_string(argv[i]));
		body = json_pack("{s:o}", "keys", keys);
		rc = weftctl_do(ctx, "PUT", path, body, NULL);
		json_decref(body);
		return rc;
	}
	return weftctl_usage(ctx);
}
