// SPDX-License-Identifier: MIT
/* weftctl status: the node's identity and state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weftctl.h"

static void print_status(const json_t *o)
{
	json_int_t up = weftctl_jint(o, "uptime_s");
	json_t *ports = json_object_get(o, "ports");

	printf("node key   %s\n", weftctl_jstr(o, "node_key"));
	printf("version    %s\n", weftctl_jstr(o, "version"));
	printf("uptime     %lldd %02lld:%02lld:%02lld\n", up / 86400, up / 3600 % 24, up / 60 % 60,
	       up % 60);
	printf("io mode    %s\n", weftctl_jstr(o, "io_mode"));
	printf("ports      quic %lld, dht %lld (udp)\n", weftctl_jint(ports, "quic"),
	       weftctl_jint(ports, "dht"));
	printf("state dir  %s\n", weftctl_jstr(o, "state_dir"));
	printf("pid        %lld\n", weftctl_jint(o, "pid"));
	if (json_object_get(o, "heap")) {
		json_t *h = json_object_get(o, "heap");
		char a[32], b[32], c[32];

		printf("heap       %s in use, %s free, %s mapped alone\n",
		       weftctl_fmt_bytes((double)weftctl_jint(h, "in_use"), a, sizeof(a)),
		       weftctl_fmt_bytes((double)weftctl_jint(h, "free"), b, sizeof(b)),
		       weftctl_fmt_bytes((double)weftctl_jint(h, "mmap"), c, sizeof(c)));
	}
	if (json_object_get(o, "join_hint"))
		printf("join       %s\n", weftctl_jstr(o, "join_hint"));
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

int weftctl_status(struct weftctl *ctx, int argc, char **argv)
{
	if (argc != 1)
		return weftctl_usage(ctx);
	return weftctl_show(ctx, "GET", "/v1/status", NULL, print_status);
}

int weftctl_metrics(struct weftctl *ctx, int argc, char **argv)
{
	char *text = NULL;
	int st;

	if (argc != 1)
		return weftctl_usage(ctx);
	st = weftctl_call_text(ctx, "/metrics", &text);
	if (st < 0)
		return WEFTCTL_ERR;
	fputs(text, stdout);
	free(text);
	return st == 200 ? WEFTCTL_OK : WEFTCTL_ERR;
}
