// SPDX-License-Identifier: MIT
/*
 * weftctl svc publish NAME --backend tcp:IP:PORT|unix:PATH|builtin
 *                          [--http-credentials] [--cors ORIGIN]
 * weftctl svc unpublish NAME
 * weftctl svc ls
 * weftctl svc find NAME|SERVICE_ID
 * weftctl svc call NAME METHOD [--data STR] [--count N] [--concurrency C] [--timeout MS]
 * weftctl svc stats
 * API: /v1/svc/... (docs/CONTROL_API.md, docs/SERVICE.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weftctl.h"

static const char svc_usage[] =
	"svc publish NAME --backend tcp:IP:PORT|unix:PATH|builtin [--http-credentials] [--cors ORIGIN]\n"
	"svc unpublish NAME\n"
	"svc ls\n"
	"svc find NAME|SERVICE_ID\n"
	"svc call NAME METHOD [--data STR] [--count N] [--concurrency C] [--timeout MS]\n"
	"svc stats";

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static long long jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static int print_or(struct weftctl *ctx, json_t *o, void (*fn)(json_t *))
{
	if (ctx->json)
		weftctl_print_json(o);
	else
		fn(o);
	json_decref(o);
	return WEFTCTL_OK;
}

static void print_ls(json_t *o)
{
	json_t *a = json_object_get(o, "services"), *s;
	size_t i;

	printf("%-24s %-40s %-28s %9s\n", "NAME", "ID", "BACKEND", "ANNOUNCED");
	json_array_foreach(a, i, s)
		printf("%-24s %-40s %-28s %9lld\n", jstr(s, "name"), jstr(s, "id"),
		       jstr(s, "backend"), jint(s, "announced"));
}

static void print_find(json_t *o)
{
	json_t *a = json_object_get(o, "results"), *r, *e;
	size_t i, j;

	printf("%-16s %-40s %6s %8s  %s\n", "OWNER", "ID", "REP", "RTT_US", "ENDPOINTS");
	json_array_foreach(a, i, r) {
		printf("%-16.16s %-40s %6lld %8lld ", jstr(r, "owner"), jstr(r, "id"),
		       jint(r, "reputation"), jint(r, "rtt_us"));
		json_array_foreach(json_object_get(r, "endpoints"), j, e)
			printf(" %s", json_string_value(e));
		printf("\n");
	}
	if (!json_array_size(a))
		printf("(no valid provider found)\n");
}

static void print_call(json_t *o)
{
	if (json_object_get(o, "calls")) {
		char *e = json_dumps(json_object_get(o, "errors"), JSON_COMPACT);

		printf("calls %lld ok %lld  p50 %lld us  p99 %lld us  %.0f calls/s  errors %s\n",
		       jint(o, "calls"), jint(o, "ok"), jint(o, "p50_us"), jint(o, "p99_us"),
		       json_real_value(json_object_get(o, "calls_per_s")), e ? e : "{}");
		free(e);
		return;
	}
	if (strcmp(jstr(o, "error"), "ok"))
		fprintf(stderr, "weftctl: call failed: %s (status %lld)\n", jstr(o, "error"),
			jint(o, "status"));
	if (json_object_get(o, "data"))
		printf("%s\n", jstr(o, "data"));
	else
		printf("%s\n", jstr(o, "data_hex"));
}

static void print_stats(json_t *o)
{
	json_t *r = json_object_get(o, "router"), *f = json_object_get(o, "fabric");
	char *res = json_dumps(json_object_get(r, "results"), JSON_COMPACT);
	char *rej = json_dumps(json_object_get(f, "rejected"), JSON_COMPACT);

	printf("router: admitted %lld inflight %lld peers %lld bans %lld services %lld\n",
	       jint(r, "admitted"), jint(r, "inflight"), jint(r, "peers"), jint(r, "bans"),
	       jint(r, "services"));
	printf("results: %s\n", res ? res : "");
	if (json_object_get(o, "backend"))
		printf("backend: inflight %lld, refused busy %lld, timeouts %lld\n",
		       jint(json_object_get(o, "backend"), "inflight"),
		       jint(json_object_get(o, "backend"), "busy"),
		       jint(json_object_get(o, "backend"), "timeouts"));
	printf("fabric: calls in %lld out %lld (ok %lld), http in %lld out %lld, "
	       "descriptors served %lld, lookups %lld, accepted %lld\n",
	       jint(f, "calls_in"), jint(f, "calls_out"), jint(f, "calls_out_ok"),
	       jint(f, "http_in"), jint(f, "http_out"), jint(f, "descriptors_served"),
	       jint(f, "lookups"), jint(f, "accepted"));
	printf("rejected descriptors: %s\n", rej ? rej : "");
	free(res);
	free(rej);
}

static int svc_run(struct weftctl *ctx, int argc, char **argv)
{
	json_t *o = NULL, *body;
	char path[256];
	int rc;

	if (argc < 2)
		return weftctl_usage(svc_usage);
	if (!strcmp(argv[1], "ls") && argc == 2) {
		rc = weftctl_do(ctx, "GET", "/v1/svc/ls", NULL, &o);
		return rc || !o ? rc : print_or(ctx, o, print_ls);
	}
	if (!strcmp(argv[1], "stats") && argc == 2) {
		rc = weftctl_do(ctx, "GET", "/v1/svc/stats", NULL, &o);
		return rc || !o ? rc : print_or(ctx, o, print_stats);
	}
	if (!strcmp(argv[1], "find") && argc == 3) {
		if (strlen(argv[2]) > 64 || strchr(argv[2], '/') || strchr(argv[2], '?'))
			return weftctl_usage(svc_usage);
		snprintf(path, sizeof(path), "/v1/svc/find/%s", argv[2]);
		rc = weftctl_do(ctx, "GET", path, NULL, &o);
		return rc || !o ? rc : print_or(ctx, o, print_find);
	}
	if (!strcmp(argv[1], "unpublish") && argc == 3) {
		body = json_pack("{s:s}", "name", argv[2]);
		rc = weftctl_do(ctx, "POST", "/v1/svc/unpublish", body, NULL);
		json_decref(body);
		return rc;
	}
	if (!strcmp(argv[1], "publish") && argc >= 5 && !strcmp(argv[3], "--backend")) {
		body = json_pack("{s:s,s:s}", "name", argv[2], "backend", argv[4]);
		for (int i = 5; i < argc; i++) {
			if (!strcmp(argv[i], "--http-credentials")) {
				json_object_set_new(body, "http_credentials", json_true());
			} else if (!strcmp(argv[i], "--cors") && i + 1 < argc) {
				json_object_set_new(body, "cors", json_string(argv[++i]));
			} else {
				json_decref(body);
				return weftctl_usage(svc_usage);
			}
		}
		rc = weftctl_do(ctx, "POST", "/v1/svc/publish", body, &o);
		json_decref(body);
		if (rc || !o)
			return rc;
		if (ctx->json)
			weftctl_print_json(o);
		else
			printf("published %s (id %s)\n", jstr(o, "name"), jstr(o, "id"));
		json_decref(o);
		return WEFTCTL_OK;
	}
	if (!strcmp(argv[1], "call") && argc >= 4) {
		long long count = 1, conc = 1, timeout = 0;
		const char *data = "";
		int i, failed;

		for (i = 4; i < argc; i += 2) {
			char *end = NULL;

			if (i + 1 >= argc)
				return weftctl_usage(svc_usage);
			if (!strcmp(argv[i], "--data")) {
				data = argv[i + 1];
				continue;
			}
			if (!strcmp(argv[i], "--count"))
				count = strtoll(argv[i + 1], &end, 10);
			else if (!strcmp(argv[i], "--concurrency"))
				conc = strtoll(argv[i + 1], &end, 10);
			else if (!strcmp(argv[i], "--timeout"))
				timeout = strtoll(argv[i + 1], &end, 10);
			else
				return weftctl_usage(svc_usage);
			if (!end || *end || end == argv[i + 1])
				return weftctl_usage(svc_usage);
		}
		body = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "name", argv[2], "method", argv[3],
				 "data", data, "count", (json_int_t)count, "concurrency",
				 (json_int_t)conc, "timeout_ms", (json_int_t)timeout);
		rc = weftctl_do(ctx, "POST", "/v1/svc/call", body, &o);
		json_decref(body);
		if (rc || !o)
			return rc;
		failed = !json_object_get(o, "calls") && strcmp(jstr(o, "error"), "ok");
		print_or(ctx, o, print_call);
		return failed ? WEFTCTL_ERR : WEFTCTL_OK;
	}
	return weftctl_usage(svc_usage);
}

WEFTCTL_NOUN(svc, .name = "svc", .usage = svc_usage, .run = svc_run, .needs_daemon = 1);
