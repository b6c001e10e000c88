// SPDX-License-Identifier: MIT
/*
 * weftctl lan status    LAN discovery (BEP 14): interfaces, the LAN peers
 *                       heard and what they announced, counters
 * API: GET /v1/lan (docs/CONNECTIVITY.md, "LAN discovery").
 */
#include <stdio.h>
#include <string.h>

#include "weftctl.h"

static void print_lan(const json_t *o)
{
	json_t *a, *p, *st, *v;
	size_t i, k;

	if (!weftctl_jtrue(o, "enabled")) {
		printf("LAN discovery off (%s)\n", weftctl_jstr_or(o, "reason", "lan.discovery"));
		return;
	}
	printf("LAN discovery on udp %lld, interfaces:", weftctl_jint(o, "port"));
	a = json_object_get(o, "interfaces");
	json_array_foreach(a, i, v)
		printf(" %s", json_string_value(v));
	printf("\n%-40s %6s %-10s %6s %6s %6s  %s\n", "PEER", "PORT", "KIND", "QUIC", "DHT", "AGE",
	       "INFOHASHES (newest first)");
	a = json_object_get(o, "peers");
	json_array_foreach(a, i, p) {
		json_t *ihs = json_object_get(p, "infohashes");

		printf("%-40s %6lld %-10s %6lld %6lld %5llds ", weftctl_jstr(p, "addr"),
		       weftctl_jint(p, "port"), weftctl_jtrue(p, "weft") ? "weft" : "bittorrent",
		       weftctl_jint(p, "quic_port"), weftctl_jint(p, "dht_port"),
		       weftctl_jint(p, "age_s"));
		json_array_foreach(ihs, k, v)
			printf(" %s", json_string_value(v));
		printf("\n");
	}
	st = json_object_get(o, "stats");
	printf("received %lld (malformed %lld, own %lld, rate-limited %lld, refused %lld), "
	       "sent %lld (errors %lld), infohashes heard %lld sent %lld, DHT pings %lld\n",
	       weftctl_jint(st, "received"), weftctl_jint(st, "malformed"), weftctl_jint(st, "own"),
	       weftctl_jint(st, "rate_limited"), weftctl_jint(st, "refused_full"),
	       weftctl_jint(st, "sent"), weftctl_jint(st, "send_errors"),
	       weftctl_jint(st, "infohashes_heard"), weftctl_jint(st, "infohashes_sent"),
	       weftctl_jint(st, "dht_pings"));
}

int weftctl_lan(struct weftctl *ctx, int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "status"))
		return weftctl_show(ctx, "GET", "/v1/lan", NULL, print_lan);
	return weftctl_usage(ctx);
}
