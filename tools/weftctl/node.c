// SPDX-License-Identifier: MIT
/* weftctl node: node records (docs/CONNECTIVITY.md). */
#include <stdio.h>
#include <string.h>

#include "weftctl.h"

static void print_record(const json_t *o)
{
	json_t *a = json_object_get(o, "addrs"), *r = json_object_get(o, "relays"),
	       *c = json_object_get(o, "caps"), *x;
	size_t i;

	printf("key      %s%s\n", weftctl_jstr(o, "key"),
	       weftctl_jtrue(o, "cached") ? " (cached)" : "");
	printf("version  %lld\n", weftctl_jint(o, "version"));
	printf("written  %lld (unix time)\n", weftctl_jint(o, "ts"));
	printf("caps    ");
	json_array_foreach(c, i, x)
		printf(" %s", json_string_value(x));
	printf("%s\n", json_array_size(c) ? "" : " -");
	if (!json_array_size(a))
		printf("addr     -\n");
	json_array_foreach(a, i, x)
		printf("addr     %s\n", json_string_value(x));
	if (!json_array_size(r))
		printf("relay    -\n");
	json_array_foreach(r, i, x)
		printf("relay    %s %s\n", weftctl_jstr(x, "addr"), weftctl_jstr(x, "key"));
}

int weftctl_node(struct weftctl *ctx, int argc, char **argv)
{
	json_t *body;
	int fresh = 0, rc;

	if (argc < 3 || strcmp(argv[1], "resolve"))
		return weftctl_usage(ctx);
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--fresh"))
			fresh = 1;
		else
			return weftctl_usage(ctx);
	}
	body = json_pack("{s:s,s:b}", "key", argv[2], "fresh", fresh);
	rc = weftctl_show(ctx, "POST", "/v1/node/resolve", body, print_record);
	json_decref(body);
	return rc;
}
