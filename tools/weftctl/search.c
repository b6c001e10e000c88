// SPDX-License-Identifier: MIT
/*
 * weftctl content search WORDS... [--share S] [--type T] [--page N]
 * [--limit N] [--cursor C]: search the items of the shares this node
 * follows (POST /v1/content/search; docs/CONTENT.md "Search"). --page N
 * follows the daemon's cursors from the first page (at most 50 pages);
 * --cursor goes on from a "next" printed before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weftctl.h"

#define PAGE_MAX 50

static void show_results(const json_t *o)
{
	json_t *r;
	size_t i;

	json_array_foreach(json_object_get(o, "results"), i, r)
	{
		printf("%-40s %12lld  %-24s %s (%s seq %lld)\n", weftctl_jstr(r, "path"),
		       weftctl_jint(r, "size"), weftctl_jstr(r, "type"), weftctl_jstr(r, "share"),
		       weftctl_jstr(r, "share_id"), weftctl_jint(r, "seq"));
	}
	if (!json_array_size(json_object_get(o, "results")))
		printf("nothing found in the shares followed\n");
	if (json_is_string(json_object_get(o, "next")))
		printf("more: --cursor %s\n", weftctl_jstr(o, "next"));
}

int weftctl_content_search(struct weftctl *ctx, int argc, char **argv)
{
	char q[1024] = "";
	json_t *body = json_object(), *out = NULL;
	long page = 1;
	int rc = WEFTCTL_OK;

	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (i + 1 < argc && (!strcmp(a, "--share") || !strcmp(a, "--type") ||
				     !strcmp(a, "--cursor"))) {
			json_object_set_new(body, a + 2, json_string(argv[++i]));
		} else if (i + 1 < argc && !strcmp(a, "--limit")) {
			json_object_set_new(body, "limit", json_integer(atoll(argv[++i])));
		} else if (i + 1 < argc && !strcmp(a, "--page")) {
			char *end;

			page = strtol(argv[++i], &end, 10);
			if (*end || page < 1 || page > PAGE_MAX) {
				fprintf(stderr, "weftctl: --page: 1 to %d\n", PAGE_MAX);
				json_decref(body);
				return WEFTCTL_USAGE;
			}
		} else if (a[0] == '-' && a[1] == '-') {
			json_decref(body);
			return weftctl_usage(ctx);
		} else if (strlen(q) + strlen(a) + 2 < sizeof(q)) {
			if (*q)
				strcat(q, " ");
			strcat(q, a);
		} else {
			fprintf(stderr, "weftctl: the query is too long (at most 512 bytes)\n");
			json_decref(body);
			return WEFTCTL_USAGE;
		}
	}
	if (!*q) {
		json_decref(body);
		return weftctl_usage(ctx);
	}
	json_object_set_new(body, "q", json_string(q));
	/* pages before the one asked for: follow their cursors */
	for (long p = 1; p < page; p++) {
		rc = weftctl_do(ctx, "POST", "/v1/content/search", body, &out);
		if (rc)
			goto done;
		if (!json_is_string(json_object_get(out, "next"))) {
			printf("no page %ld: the results end on page %ld\n", page, p);
			goto done;
		}
		json_object_set(body, "cursor", json_object_get(out, "next"));
		json_decref(out);
		out = NULL;
	}
	rc = weftctl_show(ctx, "POST", "/v1/content/search", body, show_results);
done:
	json_decref(out);
	json_decref(body);
	return rc;
}
