// SPDX-License-Identifier: MIT
/*
 * weftctl quic conns                    open connections (table; --json as is)
 * weftctl quic ping NODEKEY@ADDR|ADDR   handshake + echo round trip
 * weftctl quic stats                    endpoint counters (total; --json: per worker)
 * weftctl quic bench PEER BYTES [sink|echo|discard]
 * API: /v1/quic/... (docs/QUIC.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weftctl.h"

static const char quic_usage[] = "quic conns\n"
				 "quic ping NODEKEY@ADDR[:PORT] | ADDR[:PORT]\n"
				 "quic stats\n"
				 "quic bench NODEKEY@ADDR|ADDR BYTES [sink|echo|discard]";

static long long geti(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void render_conns(const json_t *o)
{
	json_t *arr = json_object_get(o, "conns"), *c;
	char b1[32], b2[32];
	size_t i;

	printf("%-16s %-44s %-3s %9s %10s %10s %10s %7s %3s  %s\n", "PEER", "ADDRESS", "DIR", "RTT",
	       "CWND", "IN", "OUT", "STREAMS", "WKR", "PATH");
	json_array_foreach(arr, i, c)
	{
		const char *key = json_string_value(json_object_get(c, "peer_key"));
		json_t *p = json_object_get(c, "path");
		const char *st = json_string_value(json_object_get(p, "state"));
		const char *dir = json_string_value(json_object_get(p, "direct"));
		const char *rel = json_string_value(json_object_get(p, "relay"));
		char rtt[32], path[160];

		snprintf(rtt, sizeof(rtt), "%.2fms", (double)geti(c, "rtt_us") / 1000.0);
		/* direct (no relay), direct via punching (relay listed), relayed,
		 * punching, failed (with both NAT classes) */
		if (st && !strcmp(st, "failed"))
			snprintf(path, sizeof(path), "failed via %s (nat %s, peer %s)", rel ? rel : "-",
				 json_string_value(json_object_get(p, "nat")),
				 json_string_value(json_object_get(p, "peer_nat")));
		else if (st && rel)
			snprintf(path, sizeof(path), "%s%s%s (relay %s)", st, dir ? " " : "",
				 dir ? dir : "", rel);
		else
			snprintf(path, sizeof(path), "%s", st ? st : "-");
		printf("%-16.16s %-44s %-3s %9s %10lld %10s %10s %7lld %3lld  %s\n",
		       key && key[0] ? key : "-", json_string_value(json_object_get(c, "addr")),
		       json_is_true(json_object_get(c, "server")) ? "in" : "out", rtt,
		       geti(c, "cwnd"),
		       weftctl_fmt_bytes((double)geti(c, "bytes_in"), b1, sizeof(b1)),
		       weftctl_fmt_bytes((double)geti(c, "bytes_out"), b2, sizeof(b2)),
		       geti(c, "streams_open"), geti(c, "worker"), path);
	}
	printf("%zu connection(s)\n", json_array_size(arr));
}

static int quic_conns(struct weftctl *ctx)
{
	return weftctl_show(ctx, "GET", "/v1/quic/conns", NULL, render_conns);
}

static void render_ping(const json_t *o)
{
	printf("peer %s\n", json_string_value(json_object_get(o, "peer_key")));
	printf("handshake %.3f ms, rtt %.3f ms (smoothed %.3f ms), worker %lld\n",
	       (double)geti(o, "handshake_us") / 1000.0, (double)geti(o, "rtt_us") / 1000.0,
	       (double)geti(o, "srtt_us") / 1000.0, geti(o, "worker"));
}

static int quic_ping(struct weftctl *ctx, const char *target)
{
	json_t *body = json_pack("{s:s}", strchr(target, '@') ? "peer" : "addr", target);
	int rc = weftctl_show(ctx, "POST", "/v1/quic/ping", body, render_ping);

	json_decref(body);
	return rc;
}

static void render_stats(const json_t *o)
{
	json_t *tot = json_object_get(o, "total"), *v;
	const char *k;

	json_object_foreach(tot, k, v) printf("%-24s %lld\n", k, (long long)json_integer_value(v));
}

static int quic_stats(struct weftctl *ctx)
{
	return weftctl_show(ctx, "GET", "/v1/quic/stats", NULL, render_stats);
}

static int quic_bench(struct weftctl *ctx, const char *target, const char *bytes, const char *mode)
{
	json_t *o, *body;
	char *end;
	unsigned long long n = strtoull(bytes, &end, 10);
	int rc;

	if (*end || !bytes[0])
		return weftctl_usage(quic_usage);
	body = json_pack("{s:s,s:I,s:s}", strchr(target, '@') ? "peer" : "addr", target, "bytes",
			 (json_int_t)n, "mode", mode);
	rc = weftctl_do(ctx, "POST", "/v1/quic/bench", body, &o);
	json_decref(body);
	if (rc || !o)
		return rc;
	if (ctx->json)
		weftctl_print_json(o);
	else
		printf("%lld bytes in %.3f s: %.1f Mbit/s, %s\n", geti(o, "bytes"),
		       (double)geti(o, "elapsed_us") / 1e6,
		       json_real_value(json_object_get(o, "mbit_s")),
		       json_is_true(json_object_get(o, "ok")) ? "verified" : "MISMATCH");
	rc = json_is_true(json_object_get(o, "ok")) ? WEFTCTL_OK : WEFTCTL_ERR;
	json_decref(o);
	return rc;
}

static int quic_run(struct weftctl *ctx, int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "conns"))
		return quic_conns(ctx);
	if (argc == 2 && !strcmp(argv[1], "stats"))
		return quic_stats(ctx);
	if (argc == 3 && !strcmp(argv[1], "ping"))
		return quic_ping(ctx, argv[2]);
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "bench"))
		return quic_bench(ctx, argv[2], argv[3], argc == 5 ? argv[4] : "sink");
	return weftctl_usage(quic_usage);
}

WEFTCTL_NOUN(quic, .name = "quic", .usage = quic_usage, .run = quic_run, .needs_daemon = 1);
