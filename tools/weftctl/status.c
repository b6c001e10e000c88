// SPDX-License-Identifier: MIT
/* weftctl status: the node's identity and state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weftctl.h"

static const char status_usage[] = "status";

static void print_status(const json_t *o)
{
	json_int_t up = json_integer_value(json_object_get(o, "uptime_s"));
	json_t *ports = json_object_get(o, "ports");

	printf("node key   %s\n", json_string_value(json_object_get(o, "node_key")));
	printf("version    %s\n", json_string_value(json_object_get(o, "version")));
	printf("uptime     %lldd %02lld:%02lld:%02lld\n", up / 86400, up / 3600 % 24, up / 60 % 60,
	       up % 60);
	printf("io mode    %s\n", json_string_value(json_object_get(o, "io_mode")));
	printf("ports      quic %lld, dht %lld (udp)\n",
	       json_integer_value(json_object_get(ports, "quic")),
	       json_integer_value(json_object_get(ports, "dht")));
	printf("state dir  %s\n", json_string_value(json_object_get(o, "state_dir")));
	printf("pid        %lld\n", json_integer_value(json_object_get(o, "pid")));
	if (json_object_get(o, "nat")) {
		json_t *refl = json_object_get(o, "reflexive"), *r;
		size_t i;

		printf("nat        %s\n", weftctl_jstr(o, "nat"));
		if (!json_array_size(refl))
			printf("reflexive  - (%lld votes so far)\n", weftctl_jint(o, "votes"));
		json_array_foreach(refl, i, r)
			printf("reflexive  %s (%lld voters)\n", weftctl_jstr(r, "addr"),
			       weftctl_jint(r, "voters"));
	}
}

static int status_run(struct weftctl *ctx, int argc, char **argv)
{
	if (argc != 1)
		return weftctl_usage(status_usage);
	return weftctl_show(ctx, "GET", "/v1/status", NULL, print_status);
}

static int metrics_run(struct weftctl *ctx, int argc, char **argv)
{
	char *text = NULL;
	int st;

	if (argc != 1)
		return weftctl_usage("metrics");
	st = weftctl_call_text(ctx, "/metrics", &text);
	if (st < 0)
		return WEFTCTL_ERR;
	fputs(text, stdout);
	free(text);
	return st == 200 ? WEFTCTL_OK : WEFTCTL_ERR;
}

WEFTCTL_NOUN(status, .name = "status", .usage = "status", .run = status_run, .needs_daemon = 1);
WEFTCTL_NOUN(metrics, .name = "metrics", .usage = "metrics   (Prometheus text)",
	     .run = metrics_run, .needs_daemon = 1);
