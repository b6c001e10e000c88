// SPDX-License-Identifier: MIT
/*
 * weftctl svc publish NAME --backend tcp:IP:PORT|unix:PATH|builtin
 *                          [--http-credentials] [--cors ORIGIN] [--version V]
 *                          [--meta KEY=VALUE]... [--calls-per-min N]
 *                          [--max-payload BYTES] [--concurrency N] [--max-streams N]
 *                          [--visible-to NODE_KEY]...
 * weftctl svc unpublish NAME
 * weftctl svc ls
 * weftctl svc find NAME|SERVICE_ID [--version RANGE]
 * weftctl svc call NAME METHOD [--data STR] [--count N] [--concurrency C] [--timeout MS]
 *                              [--version RANGE] [--retry unsent|never|always]
 * weftctl svc stats
 * API: /v1/svc/... (docs/CONTROL_API.md, docs/SERVICE.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weftctl.h"

static void print_ls(const json_t *o)
{
	json_t *a = json_object_get(o, "services"), *s;
	size_t i;

	printf("%-24s %-40s %-28s %9s %-11s %s\n", "NAME", "ID", "BACKEND", "ANNOUNCED", "VERSION",
	       "VISIBILITY");
	json_array_foreach(a, i, s)
	    printf("%-24s %-40s %-28s %9lld %-11s %s\n", weftctl_jstr_or(s, "name", ""),
		   weftctl_jstr_or(s, "id", ""), weftctl_jstr_or(s, "backend", ""),
		   weftctl_jint(s, "announced"), weftctl_jstr_or(s, "version", ""),
		   weftctl_jstr_or(s, "visibility", ""));
}

static void print_find(const json_t *o)
{
	json_t *a = json_object_get(o, "results"), *r, *e;
	size_t i, j;

	printf("%-16s %-40s %-11s %5s %7s %6s %8s  %s\n", "OWNER", "ID", "VERSION", "REP",
	       "OK/FAIL", "", "RTT_US", "ENDPOINTS");
	json_array_foreach(a, i, r) {
		char okf[32];

		snprintf(okf, sizeof(okf), "%lld/%lld", weftctl_jint(r, "calls_ok"),
			 weftctl_jint(r, "calls_failed"));
		printf("%-16.16s %-40s %-11s %5lld %7s %6s %8lld ", weftctl_jstr_or(r, "owner", ""),
		       weftctl_jstr_or(r, "id", ""), weftctl_jstr_or(r, "version_str", ""),
		       weftctl_jint(r, "reputation"), okf,
		       json_is_true(json_object_get(r, "dead")) ? "dead" : "",
		       weftctl_jint(r, "rtt_us"));
		json_array_foreach(json_object_get(r, "endpoints"), j, e)
			printf(" %s", json_string_value(e));
		printf("\n");
	}
	if (!json_array_size(a))
		printf("(no valid provider found)\n");
}

static void print_call(const json_t *o)
{
	if (json_object_get(o, "calls")) {
		char *e = json_dumps(json_object_get(o, "errors"), JSON_COMPACT);

		printf("calls %lld ok %lld  p50 %lld us  p99 %lld us  %.0f calls/s  errors %s\n",
		       weftctl_jint(o, "calls"), weftctl_jint(o, "ok"), weftctl_jint(o, "p50_us"),
		       weftctl_jint(o, "p99_us"), weftctl_jreal(o, "calls_per_s"), e ? e : "{}");
		free(e);
		return;
	}
	if (strcmp(weftctl_jstr_or(o, "error", ""), "ok"))
		fprintf(stderr, "weftctl: call failed: %s (status %lld)\n",
			weftctl_jstr_or(o, "error", ""), weftctl_jint(o, "status"));
	if (json_object_get(o, "data"))
		printf("%s\n", weftctl_jstr_or(o, "data", ""));
	else
		printf("%s\n", weftctl_jstr_or(o, "data_hex", ""));
}

static void print_stats(const json_t *o)
{
	json_t *r = json_object_get(o, "router"), *f = json_object_get(o, "fabric");
	char *res = json_dumps(json_object_get(r, "results"), JSON_COMPACT);
	char *rej = json_dumps(json_object_get(f, "rejected"), JSON_COMPACT);

	printf("router: admitted %lld inflight %lld peers %lld bans %lld services %lld\n",
	       weftctl_jint(r, "admitted"), weftctl_jint(r, "inflight"), weftctl_jint(r, "peers"),
	       weftctl_jint(r, "bans"), weftctl_jint(r, "services"));
	printf("results: %s\n", res ? res : "");
	if (json_object_get(o, "backend"))
		printf("backend: inflight %lld, refused busy %lld, timeouts %lld\n",
		       weftctl_jint(json_object_get(o, "backend"), "inflight"),
		       weftctl_jint(json_object_get(o, "backend"), "busy"),
		       weftctl_jint(json_object_get(o, "backend"), "timeouts"));
	printf("fabric: calls in %lld out %lld (ok %lld), http in %lld out %lld, "
	       "descriptors served %lld, lookups %lld, accepted %lld\n",
	       weftctl_jint(f, "calls_in"), weftctl_jint(f, "calls_out"),
	       weftctl_jint(f, "calls_out_ok"), weftctl_jint(f, "http_in"),
	       weftctl_jint(f, "http_out"), weftctl_jint(f, "descriptors_served"),
	       weftctl_jint(f, "lookups"), weftctl_jint(f, "accepted"));
	printf("rejected descriptors: %s\n", rej ? rej : "");
	free(res);
	free(rej);
}

int weftctl_svc(struct weftctl *ctx, int argc, char **argv)
{
	json_t *o = NULL, *body;
	char path[256];
	int rc;

	if (argc < 2)
		return weftctl_usage(ctx);
	if (!strcmp(argv[1], "ls") && argc == 2) {
		return weftctl_show(ctx, "GET", "/v1/svc/ls", NULL, print_ls);
	}
	if (!strcmp(argv[1], "stats") && argc == 2) {
		return weftctl_show(ctx, "GET", "/v1/svc/stats", NULL, print_stats);
	}
	if (!strcmp(argv[1], "find") && (argc == 3 || (argc == 5 && !strcmp(argv[3], "--version")))) {
		if (strlen(argv[2]) > 64 || strchr(argv[2], '/') || strchr(argv[2], '?'))
			return weftctl_usage(ctx);
		if (argc == 5) {
			/* the range travels in the body: no URL escaping of <, >, = */
			body = json_pack("{s:s,s:s}", "name", argv[2], "version", argv[4]);
			rc = weftctl_show(ctx, "POST", "/v1/svc/find", body, print_find);
			json_decref(body);
			return rc;
		}
		snprintf(path, sizeof(path), "/v1/svc/find/%s", argv[2]);
		return weftctl_show(ctx, "GET", path, NULL, print_find);
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
			} else if (!strcmp(argv[i], "--version") && i + 1 < argc) {
				json_object_set_new(body, "version", json_string(argv[++i]));
			} else if (!strcmp(argv[i], "--meta") && i + 1 < argc &&
				   strchr(argv[i + 1], '=')) {
				char *kv = argv[++i], *eq = strchr(kv, '=');
				json_t *m = json_object_get(body, "meta");

				if (!m) {
					m = json_object();
					json_object_set_new(body, "meta", m);
				}
				*eq = '\0';
				json_object_set_new(m, kv, json_string(eq + 1));
				*eq = '=';
			} else if ((!strcmp(argv[i], "--calls-per-min") ||
				    !strcmp(argv[i], "--max-payload") ||
				    !strcmp(argv[i], "--concurrency") ||
				    !strcmp(argv[i], "--max-streams")) &&
				   i + 1 < argc) {
				const char *k = !strcmp(argv[i], "--calls-per-min") ? "calls_per_min"
						: !strcmp(argv[i], "--max-payload") ? "max_payload"
						: !strcmp(argv[i], "--max-streams") ? "streams"
										     : "concurrency";
				json_t *l = json_object_get(body, "limits");
				char *end = NULL;
				long long v = strtoll(argv[++i], &end, 10);

				if (!end || *end || end == argv[i] || v < 0) {
					json_decref(body);
					return weftctl_usage(ctx);
				}
				if (!l) {
					l = json_object();
					json_object_set_new(body, "limits", l);
				}
				json_object_set_new(l, k, json_integer(v));
			} else if (!strcmp(argv[i], "--visible-to") && i + 1 < argc) {
				json_t *v = json_object_get(body, "visible_to");

				if (!v) {
					v = json_array();
					json_object_set_new(body, "visible_to", v);
				}
				json_array_append_new(v, json_string(argv[++i]));
			} else {
				json_decref(body);
				return weftctl_usage(ctx);
			}
		}
		rc = weftctl_do(ctx, "POST", "/v1/svc/publish", body, &o);
		json_decref(body);
		if (rc || !o)
			return rc;
		if (ctx->json)
			weftctl_print_json(o);
		else
			printf("published %s (id %s)\n", weftctl_jstr_or(o, "name", ""),
			       weftctl_jstr_or(o, "id", ""));
		json_decref(o);
		return WEFTCTL_OK;
	}
	if (!strcmp(argv[1], "stream"))
		return weftctl_svc_stream(ctx, argc, argv);
	if (!strcmp(argv[1], "streams") && argc == 2)
		return weftctl_show(ctx, "GET", "/v1/svc/streams", NULL, NULL);
	if (!strcmp(argv[1], "call") && argc >= 4) {
		long long count = 1, conc = 1, timeout = 0;
		const char *data = "", *version = NULL, *retry = NULL;
		int i, failed;

		for (i = 4; i < argc; i += 2) {
			char *end = NULL;

			if (i + 1 >= argc)
				return weftctl_usage(ctx);
			if (!strcmp(argv[i], "--data")) {
				data = argv[i + 1];
				continue;
			}
			if (!strcmp(argv[i], "--version")) {
				version = argv[i + 1];
				continue;
			}
			if (!strcmp(argv[i], "--retry")) {
				retry = argv[i + 1];
				continue;
			}
			if (!strcmp(argv[i], "--count"))
				count = strtoll(argv[i + 1], &end, 10);
			else if (!strcmp(argv[i], "--concurrency"))
				conc = strtoll(argv[i + 1], &end, 10);
			else if (!strcmp(argv[i], "--timeout"))
				timeout = strtoll(argv[i + 1], &end, 10);
			else
				return weftctl_usage(ctx);
			if (!end || *end || end == argv[i + 1])
				return weftctl_usage(ctx);
		}
		body = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "name", argv[2], "method", argv[3],
				 "data", data, "count", (json_int_t)count, "concurrency",
				 (json_int_t)conc, "timeout_ms", (json_int_t)timeout);
		if (version)
			json_object_set_new(body, "version", json_string(version));
		if (retry)
			json_object_set_new(body, "retry", json_string(retry));
		rc = weftctl_do(ctx, "POST", "/v1/svc/call", body, &o);
		json_decref(body);
		if (rc || !o)
			return rc;
		failed =
		    !json_object_get(o, "calls") && strcmp(weftctl_jstr_or(o, "error", ""), "ok");
		weftctl_print(ctx, o, print_call);
		return failed ? WEFTCTL_ERR : WEFTCTL_OK;
	}
	return weftctl_usage(ctx);
}
