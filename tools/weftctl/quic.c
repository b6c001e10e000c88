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

static void render_conns(const json_t *o)
{
	json_t *arr = json_object_get(o, "conns"), *c;
	char b1[32], b2[32];
	size_t i;

	printf("%-16s %-44s %-3s %9s %10s %5s %10s %10s %7s %3s  %s\n", "PEER", "ADDRESS", "DIR",
	       "RTT", "CWND", "DGRAM", "IN", "OUT", "STREAMS", "WKR", "PATH");
	json_array_foreach(arr, i, c)
	{
		const char *key = weftctl_jstr(c, "peer_key");
		json_t *p = json_object_get(c, "path");
		const char *st = weftctl_jstr_or(p, "state", NULL);
		const char *dir = weftctl_jstr_or(p, "direct", NULL);
		const char *rel = weftctl_jstr_or(p, "relay", NULL);
		char rtt[32], path[160];

		snprintf(rtt, sizeof(rtt), "%.2fms", (double)weftctl_jint(c, "rtt_us") / 1000.0);
		/* direct (no relay), direct via punching (relay listed), relayed,
		 * punching, failed (with both NAT classes) */
		if (st && !strcmp(st, "failed"))
			snprintf(path, sizeof(path), "failed via %s (nat %s, peer %s)",
				 rel ? rel : "-", weftctl_jstr(p, "nat"),
				 weftctl_jstr(p, "peer_nat"));
		else if (st && rel)
			snprintf(path, sizeof(path), "%s%s%s (relay %s)", st, dir ? " " : "",
				 dir ? dir : "", rel);
		else
			snprintf(path, sizeof(path), "%s", st ? st : "-");
		printf("%-16.16s %-44s %-3s %9s %10lld %5lld %10s %10s %7lld %3lld  %s\n",
		       key[0] ? key : "-", weftctl_jstr(c, "addr"),
		       weftctl_jtrue(c, "server") ? "in" : "out", rtt, weftctl_jint(c, "cwnd"),
		       weftctl_jint(json_object_get(c, "pmtu"), "udp_payload"),
		       weftctl_fmt_bytes((double)weftctl_jint(c, "bytes_in"), b1, sizeof(b1)),
		       weftctl_fmt_bytes((double)weftctl_jint(c, "bytes_out"), b2, sizeof(b2)),
		       weftctl_jint(c, "streams_open"), weftctl_jint(c, "worker"), path);
	}
	printf("%zu connection(s)\n", json_array_size(arr));
}

static int quic_conns(struct weftctl *ctx)
{
	return weftctl_show(ctx, "GET", "/v1/quic/conns", NULL, render_conns);
}

static void render_ping(const json_t *o)
{
	printf("peer %s\n", weftctl_jstr(o, "peer_key"));
	printf("handshake %.3f ms, rtt %.3f ms (smoothed %.3f ms), worker %lld\n",
	       (double)weftctl_jint(o, "handshake_us") / 1000.0,
	       (double)weftctl_jint(o, "rtt_us") / 1000.0,
	       (double)weftctl_jint(o, "srtt_us") / 1000.0, weftctl_jint(o, "worker"));
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
	json_t *tot = json_object_get(o, "total"), *au = json_object_get(o, "aead_auto_ns"), *v;
	const char *k;

	weftctl_print_kv(tot, NULL);
	/* who seals 1-RTT AES-GCM packets (quic.aead), and what auto measured */
	printf("%-24s %s\n", "aead", json_string_value(json_object_get(o, "aead")) ?: "-");
	if (json_is_object(au)) {
		printf("%-24s", "aead auto, ns/packet");
		json_object_foreach(au, k, v)
		    printf(" %s %lld", k, (long long)json_integer_value(v));
		printf("\n");
	}
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
		return weftctl_usage(ctx);
	body = json_pack("{s:s,s:I,s:s}", strchr(target, '@') ? "peer" : "addr", target, "bytes",
			 (json_int_t)n, "mode", mode);
	rc = weftctl_do(ctx, "POST", "/v1/quic/bench", body, &o);
	json_decref(body);
	if (rc || !o)
		return rc;
	if (ctx->json)
		weftctl_print_json(o);
	else
		printf("%lld bytes in %.3f s: %.1f Mbit/s, %s\n", weftctl_jint(o, "bytes"),
		       (double)weftctl_jint(o, "elapsed_us") / 1e6, weftctl_jreal(o, "mbit_s"),
		       weftctl_jtrue(o, "ok") ? "verified" : "MISMATCH");
	rc = weftctl_jtrue(o, "ok") ? WEFTCTL_OK : WEFTCTL_ERR;
	json_decref(o);
	return rc;
}

int weftctl_quic(struct weftctl *ctx, int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "conns"))
		return quic_conns(ctx);
	if (argc == 2 && !strcmp(argv[1], "stats"))
		return quic_stats(ctx);
	if (argc == 3 && !strcmp(argv[1], "ping"))
		return quic_ping(ctx, argv[2]);
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "bench"))
		return quic_bench(ctx, argv[2], argv[3], argc == 5 ? argv[4] : "sink");
	return weftctl_usage(ctx);
}
