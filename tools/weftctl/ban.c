// SPDX-License-Identifier: MIT
/*
 * weftctl ban add CIDR [--ttl SECONDS]   (default: permanent)
 * weftctl ban del CIDR
 * weftctl ban list | ls        kind: operator (these) or auto (abuse pipeline)
 * API: POST /v1/bans, DELETE /v1/bans/<cidr>, GET /v1/bans (docs/XDP.md).
 */
#include <stdio.h>
#include <string.h>

#include "weft/util.h"
#include "weftctl.h"

static void ban_print(const json_t *o)
{
	json_t *a, *b;
	size_t i;

	a = json_object_get(o, "bans");
	printf("%-44s %-8s %14s %14s\n", "CIDR", "KIND", "EXPIRES IN", "DROPS");
	json_array_foreach(a, i, b) {
		json_t *e = json_object_get(b, "expires_in_s");
		char exp[32];

		if (json_is_integer(e))
			snprintf(exp, sizeof(exp), "%llds", (long long)json_integer_value(e));
		else
			snprintf(exp, sizeof(exp), "never");
		printf("%-44s %-8s %14s %14lld\n", weftctl_jstr(b, "cidr"), weftctl_jstr(b, "kind"),
		       exp, weftctl_jint(b, "drops"));
	}
}

int weftctl_ban(struct weftctl *ctx, int argc, char **argv)
{
	json_t *o = NULL, *body;
	uint64_t ttl = 0;
	char path[256];
	int rc;

	if (argc == 2 && (!strcmp(argv[1], "list") || !strcmp(argv[1], "ls")))
		return weftctl_show(ctx, "GET", "/v1/bans", NULL, ban_print);
	if (argc == 3 && !strcmp(argv[1], "del")) {
		if (strlen(argv[2]) > 100)
			return weftctl_usage(ctx);
		snprintf(path, sizeof(path), "/v1/bans/%s", argv[2]);
		rc = weftctl_do(ctx, "DELETE", path, NULL, &o);
		if (rc)
			return rc;
		if (ctx->json && o)
			weftctl_print_json(o);
		else
			printf("removed %s\n", argv[2]);
		json_decref(o);
		return WEFTCTL_OK;
	}
	if ((argc == 3 || argc == 5) && !strcmp(argv[1], "add")) {
		if (argc == 5 && (strcmp(argv[3], "--ttl") ||
				  util_parse_u64(argv[4], 0, 10ULL * 365 * 86400, &ttl)))
			return weftctl_usage(ctx);
		body = json_pack("{s:s,s:I}", "cidr", argv[2], "ttl", (json_int_t)ttl);
		rc = weftctl_do(ctx, "POST", "/v1/bans", body, &o);
		json_decref(body);
		if (rc)
			return rc;
		if (ctx->json && o)
			weftctl_print_json(o);
		else if (o)
			printf("banned %s%s\n", weftctl_jstr(o, "cidr"), ttl ? "" : " (permanent)");
		json_decref(o);
		return WEFTCTL_OK;
	}
	return weftctl_usage(ctx);
}
