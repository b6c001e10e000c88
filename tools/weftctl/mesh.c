// SPDX-License-Identifier: MIT
/* weftctl mesh: announce, query, update and revoke over a community's mesh;
 * reserve, inbox, confirm and cancel (docs/MESH.md). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weftctl.h"

#define MESH_CLI_ENDORSE 2 /* --endorse given at most (MESH_ENDORSE_MAX) */

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

/* --data JSON: an object, or NULL with a message. */
static json_t *data_arg(const char *data)
{
	json_error_t je;
	json_t *d = json_loads(data, JSON_REJECT_DUPLICATES, &je);

	if (json_is_object(d))
		return d;
	fprintf(stderr, "weftctl: --data: a JSON object, e.g. '{\"rent\":450}' (%s)\n",
		d ? "not an object" : je.text);
	json_decref(d);
	return NULL;
}

/* --endorse HEX given n times: the request's "endorsements". */
static json_t *endorse_json(const char *const *e, unsigned int n)
{
	json_t *a = json_array();

	for (unsigned int k = 0; k < n; k++)
		json_array_append_new(a, json_string(e[k]));
	return a;
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
	const char *comm = NULL, *data = NULL, *filter = NULL, *level = NULL;
	const char *endorse[MESH_CLI_ENDORSE + 1];
	unsigned int nend = 0;
	long long ttl = 0, wait = -1;
	json_int_t svc;
	json_t *body, *d = NULL;
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
		} else if (!query && !strcmp(argv[i], "--endorse") && i + 1 < argc &&
			   nend <= MESH_CLI_ENDORSE)
			endorse[nend++] = argv[++i]; /* the node says when there are too many */
		else if (query && !strcmp(argv[i], "--min-level") && i + 1 < argc)
			level = argv[++i];
		else if (query && !strcmp(argv[i], "--filter") && i + 1 < argc)
			filter = argv[++i];
		else if (query && !strcmp(argv[i], "--wait") && i + 1 < argc) {
			if (int_arg("--wait", argv[++i], 0, 10000, &wait))
				return WEFTCTL_USAGE;
		} else
			return weftctl_usage(ctx);
	}
	if (!comm || (!query && !data))
		return weftctl_usage(ctx);
	if (data && !(d = data_arg(data)))
		return WEFTCTL_USAGE;
	body = json_pack("{s:I,s:s}", "service_id", svc, "community", comm);
	if (d)
		json_object_set_new(body, "data", d);
	if (ttl)
		json_object_set_new(body, "ttl_h", json_integer(ttl));
	if (filter)
		json_object_set_new(body, "filter", json_string(filter));
	if (wait >= 0)
		json_object_set_new(body, "wait_ms", json_integer(wait));
	if (level)
		json_object_set_new(body, "min_level", json_string(level));
	if (nend)
		json_object_set_new(body, "endorsements", endorse_json(endorse, nend));
	rc = weftctl_show(ctx, "POST", query ? "/v1/mesh/query" : "/v1/mesh/announce", body,
			  query ? print_query : print_announce);
	json_decref(body);
	return rc;
}

static void print_endorse(const json_t *o)
{
	printf("%s\n", weftctl_jstr(o, "endorsement"));
}

/* mesh endorse PROVIDER_KEY SERVICE_ID --level LEVEL [--days N] */
static int endorse(struct weftctl *ctx, int argc, char **argv)
{
	const char *level = NULL;
	long long days = 30;
	json_int_t svc;
	json_t *body;
	int rc;

	if (argc < 4)
		return weftctl_usage(ctx);
	if (service_id(argv[3], &svc))
		return WEFTCTL_USAGE;
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--level") && i + 1 < argc)
			level = argv[++i];
		else if (!strcmp(argv[i], "--days") && i + 1 < argc) {
			if (int_arg("--days", argv[++i], 1, 365, &days))
				return WEFTCTL_USAGE;
		} else
			return weftctl_usage(ctx);
	}
	if (!level)
		return weftctl_usage(ctx);
	body = json_pack("{s:s,s:I,s:s,s:I}", "provider", argv[2], "service_id", svc, "level",
			 level, "days", (json_int_t)days);
	rc = weftctl_show(ctx, "POST", "/v1/mesh/endorse", body, print_endorse);
	json_decref(body);
	return rc;
}

static void print_change(const json_t *o)
{
	const char *r = weftctl_jstr(o, "revoked");

	printf("%s %s\n", *r ? "revoked" : "updated", *r ? r : weftctl_jstr(o, "updated"));
}

/* mesh revoke ENVELOPE_ID --community ID
 * mesh update ENVELOPE_ID --community ID --data JSON [--ttl HOURS] */
static int change(struct weftctl *ctx, int update, int argc, char **argv)
{
	const char *comm = NULL, *endorse[MESH_CLI_ENDORSE + 1];
	unsigned int nend = 0;
	json_t *body, *d = NULL;
	long long ttl = 0;
	int rc;

	if (argc < 3)
		return weftctl_usage(ctx);
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--community") && i + 1 < argc) {
			comm = argv[++i];
		} else if (update && !strcmp(argv[i], "--data") && i + 1 < argc && !d) {
			if (!(d = data_arg(argv[++i])))
				return WEFTCTL_USAGE;
		} else if (update && !strcmp(argv[i], "--endorse") && i + 1 < argc &&
			   nend <= MESH_CLI_ENDORSE) {
			endorse[nend++] = argv[++i];
		} else if (update && !strcmp(argv[i], "--ttl") && i + 1 < argc) {
			if (int_arg("--ttl", argv[++i], 1, 720, &ttl)) {
				json_decref(d);
				return WEFTCTL_USAGE;
			}
		} else {
			json_decref(d);
			return weftctl_usage(ctx);
		}
	}
	if (!comm || (update && !d)) {
		json_decref(d);
		return weftctl_usage(ctx);
	}
	body = json_pack("{s:s,s:s}", "id", argv[2], "community", comm);
	if (d)
		json_object_set_new(body, "data", d);
	if (ttl)
		json_object_set_new(body, "ttl_h", json_integer(ttl));
	if (nend)
		json_object_set_new(body, "endorsements", endorse_json(endorse, nend));
	rc = weftctl_show(ctx, "POST", update ? "/v1/mesh/update" : "/v1/mesh/revoke", body,
			  print_change);
	json_decref(body);
	return rc;
}

static void print_reserve(const json_t *o)
{
	printf("%s\n", weftctl_jstr(o, "id"));
	fprintf(stderr, "delivered: %s\n", weftctl_jstr(o, "delivered"));
}

static void print_answer(const json_t *o)
{
	printf("%s %s (%s)\n", weftctl_jstr(o, "state"), weftctl_jstr(o, "id"),
	       weftctl_jstr(o, "delivered"));
}

/* mesh reserve ENVELOPE_ID --data JSON; mesh confirm|cancel ID [--data JSON] */
static int reserve(struct weftctl *ctx, const char *what, int argc, char **argv)
{
	int res = !strcmp(what, "reserve");
	json_t *body, *d = NULL;
	char path[32];
	int rc;

	if (argc == 5 && !strcmp(argv[3], "--data")) {
		if (!(d = data_arg(argv[4])))
			return WEFTCTL_USAGE;
	} else if (argc != 3 || res) {
		return weftctl_usage(ctx);
	}
	body = json_pack("{s:s}", "id", argv[2]);
	if (d)
		json_object_set_new(body, "data", d);
	snprintf(path, sizeof(path), "/v1/mesh/%s", what);
	rc = weftctl_show(ctx, "POST", path, body, res ? print_reserve : print_answer);
	json_decref(body);
	return rc;
}

static void print_inbox(const json_t *o)
{
	const json_t *x;
	size_t i;

	if (!json_array_size(json_object_get(o, "reservations")))
		fprintf(stderr, "no reservations\n");
	json_array_foreach(json_object_get(o, "reservations"), i, x) {
		int rcv = !strcmp(weftctl_jstr(x, "role"), "received");
		char *d = json_dumps(json_object_get(x, "data"), JSON_COMPACT | JSON_SORT_KEYS);
		char *a = json_dumps(json_object_get(x, "answer"),
				     JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

		printf("%s  %-8s  %-9s  %.16s  %s  %s\n", weftctl_jstr(x, "id"),
		       weftctl_jstr(x, "role"), weftctl_jstr(x, "state"),
		       weftctl_jstr(x, rcv ? "consumer" : "provider"), d ? d : "-", a ? a : "-");
		free(d);
		free(a);
	}
}

int weftctl_mesh(struct weftctl *ctx, int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "revoke"))
		return change(ctx, 0, argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "update"))
		return change(ctx, 1, argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "announce"))
		return run(ctx, 0, argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "query"))
		return run(ctx, 1, argc, argv);
	if (argc >= 2 && (!strcmp(argv[1], "reserve") || !strcmp(argv[1], "confirm") ||
			  !strcmp(argv[1], "cancel")))
		return reserve(ctx, argv[1], argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "endorse"))
		return endorse(ctx, argc, argv);
	if (argc == 2 && !strcmp(argv[1], "inbox"))
		return weftctl_show(ctx, "GET", "/v1/mesh/inbox", NULL, print_inbox);
	return weftctl_usage(ctx);
}
