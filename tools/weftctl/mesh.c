// SPDX-License-Identifier: MIT
/* weftctl mesh: announce, query and revoke over a community's mesh (docs/MESH.md). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weftctl.h"

/* SERVICE_ID: a decimal 0 .. 4294967295. */
static int service_id(const char *s, json_int_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!*s || *s == '-' || *end || errno || v > UINT32_MAX) {
		fprintf(stderr, "weftctl: SERVICE_ID '%s': a decimal 0 .. 4294967295\n", s);
		return -EINVAL;
	}
	*out = (json_int_t)v;
	return 0;
}

/* A decimal lo .. hi for flag. */
static int int_arg(const char *flag, const char *s, long long lo, long long hi, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	if (!*s || *end || errno || *out < lo || *out > hi) {
		fprintf(stderr, "weftctl: %s '%s': a decimal %lld .. %lld\n", flag, s, lo, hi);
		return -EINVAL;
	}
	return 0;
}

static void print_announce(const json_t *o)
{
	printf("%s\n", weftctl_jstr(o, "id"));
}

static void print_query(const json_t *o)
{
	const json_t *x;
	size_t i;

	if (!json_array_size(json_object_get(o, "announces")))
		fprintf(stderr, "no announces matched\n");
	json_array_foreach(json_object_get(o, "announces"), i, x) {
		char *d = json_dumps(json_object_get(x, "data"), JSON_COMPACT | JSON_SORT_KEYS);

		printf("%s  %.16s  %s\n", weftctl_jstr(x, "id"), weftctl_jstr(x, "provider"),
		       d ? d : "-");
		free(d);
	}
}

/* mesh announce|query SERVICE_ID --community ID ...: argv[2] on. */
static int run(struct weftctl *ctx, int query, int argc, char **argv)
{
	const char *comm = NULL, *data = NULL, *filter = NULL;
	long long ttl = 0, wait = -1;
	json_int_t svc;
	json_t *body, *d = NULL;
	json_error_t je;
	int rc;

	if (argc < 3 || service_id(argv[2], &svc))
		return argc < 3 ? weftctl_usage(ctx) : WEFTCTL_USAGE;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--community") && i + 1 < argc)
			comm = argv[++i];
		else if (!query && !strcmp(argv[i], "--data") && i + 1 < argc)
			data = argv[++i];
		else if (!query && !strcmp(argv[i], "--ttl") && i + 1 < argc) {
			if (int_arg("--ttl", argv[++i], 1, 720, &ttl))
				return WEFTCTL_USAGE;
		} else if (query && !strcmp(argv[i], "--filter") && i + 1 < argc)
			filter = argv[++i];
		else if (query && !strcmp(argv[i], "--wait") && i + 1 < argc) {
			if (int_arg("--wait", argv[++i], 0, 10000, &wait))
				return WEFTCTL_USAGE;
		} else
			return weftctl_usage(ctx);
	}
	if (!comm || (!query && !data))
		return weftctl_usage(ctx);
	if (data) {
		d = json_loads(data, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(d)) {
			fprintf(stderr, "weftctl: --data: a JSON object, e.g. '{\"rent\":450}' (%s)\n",
				d ? "not an object" : je.text);
			json_decref(d);
			return WEFTCTL_USAGE;
		}
	}
	body = json_pack("{s:I,s:s}", "service_id", svc, "community", comm);
	if (d)
		json_object_set_new(body, "data", d);
	if (ttl)
		json_object_set_new(body, "ttl_h", json_integer(ttl));
	if (filter)
		json_object_set_new(body, "filter", json_string(filter));
	if (wait >= 0)
		json_object_set_new(body, "wait_ms", json_integer(wait));
	rc = weftctl_show(ctx, "POST", query ? "/v1/mesh/query" : "/v1/mesh/announce", body,
			  query ? print_query : print_announce);
	json_decref(body);
	return rc;
}

static void print_revoke(const json_t *o)
{
	printf("revoked %s\n", weftctl_jstr(o, "revoked"));
}

/* mesh revoke ENVELOPE_ID --community ID */
static int revoke(struct weftctl *ctx, int argc, char **argv)
{
	json_t *body;
	int rc;

	if (argc != 5 || strcmp(argv[3], "--community"))
		return weftctl_usage(ctx);
	body = json_pack("{s:s,s:s}", "id", argv[2], "community", argv[4]);
	rc = weftctl_show(ctx, "POST", "/v1/mesh/revoke", body, print_revoke);
	json_decref(body);
	return rc;
}

int weftctl_mesh(struct weftctl *ctx, int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "revoke"))
		return revoke(ctx, argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "announce"))
		return run(ctx, 0, argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "query"))
		return run(ctx, 1, argc, argv);
	return weftctl_usage(ctx);
}
