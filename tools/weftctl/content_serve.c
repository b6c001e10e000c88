// SPDX-License-Identifier: MIT
/*
 * The seed host's side of `weftctl content`:
 *   weftctl content limits [--upload RATE|auto] [--per-peer RATE] [--lan-peer RATE]
 *                          [--lan-capped on|off] [--superseed SECONDS] [--fair on|off]
 *   weftctl content peers
 * RATE: bytes/s with an optional unit: 500k, 12M, 1G (bytes, powers of
 * 1000), or bits: 100Mbit, 1Gbit; 0 or "off" is unlimited. API:
 * GET/POST /v1/content/limits, GET /v1/content/peers (docs/CONTENT.md,
 * "Fair, capped serving").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "weftctl.h"

/* RATE into bytes/s: 0 or -EINVAL. */
int weftctl_parse_rate(const char *s, unsigned long long *out)
{
	static const struct {
		const char *suf;
		double mul;
	} units[] = {
	    {"", 1},	     {"b", 1},		{"k", 1e3},	  {"kb", 1e3},	      {"m", 1e6},
	    {"mb", 1e6},     {"g", 1e9},	{"gb", 1e9},	  {"kbit", 1e3 / 8},  {"mbit", 1e6 / 8},
	    {"gbit", 1e9 / 8}, {"bit", 1.0 / 8},
	};
	char *end;
	double v;

	if (!strcasecmp(s, "off") || !strcasecmp(s, "unlimited")) {
		*out = 0;
		return 0;
	}
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0 || v > 1e12)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcasecmp(end, units[i].suf)) {
			v *= units[i].mul;
			if (v > 1e12)
				return -EINVAL;
			*out = (unsigned long long)(v + 0.5);
			return 0;
		}
	return -EINVAL;
}

static const char *rate_str(long long bps, char *buf, size_t len)
{
	char b[32];

	if (bps <= 0)
		return "unlimited";
	snprintf(buf, len, "%s/s (%.1f Mbit/s)", weftctl_fmt_bytes((double)bps, b, sizeof(b)),
		 (double)bps * 8 / 1e6);
	return buf;
}

/* The node's cap as the limits object says it: a rate, "unlimited", or the
 * automatic cap's state and rate (under a fixed one when set). */
static const char *cap_str(const json_t *lim, char *buf, size_t len)
{
	const json_t *a = json_object_get(lim, "auto");
	const char *st = json_string_value(json_object_get(a, "state"));
	char c[64], f[64];
	int n;

	if (!weftctl_jtrue(lim, "upload_auto"))
		return rate_str(weftctl_jint(lim, "upload_rate"), buf, len);
	n = snprintf(buf, len, "auto, %s: %s", st ? st : "?",
		     rate_str(weftctl_jint(a, "cap"), c, sizeof(c)));
	if (n >= 0 && (size_t)n < len && weftctl_jint(lim, "upload_rate") > 0)
		snprintf(buf + n, len - (size_t)n, ", under %s",
			 rate_str(weftctl_jint(lim, "upload_rate"), f, sizeof(f)));
	return buf;
}

static void render_limits(const json_t *o)
{
	char b[160];

	printf("upload          %s\n", cap_str(o, b, sizeof(b)));
	if (weftctl_jtrue(o, "upload_auto")) {
		const json_t *a = json_object_get(o, "auto");

		printf("  served        %lld peers at %s, Jain %.3f\n", weftctl_jint(a, "served"),
		       rate_str(weftctl_jint(a, "total_bps"), b, sizeof(b)),
		       json_number_value(json_object_get(a, "jain")));
		printf("  trials        %lld kept, %lld given up; %lld probes\n",
		       weftctl_jint(a, "kept"), weftctl_jint(a, "given_up"), weftctl_jint(a, "probes"));
	}
	printf("per peer (WAN)  %s\n", rate_str(weftctl_jint(o, "peer_rate"), b, sizeof(b)));
	printf("per peer (LAN)  %s\n", rate_str(weftctl_jint(o, "lan_peer_rate"), b, sizeof(b)));
	printf("LAN capped      %s\n", weftctl_jtrue(o, "lan_capped") ? "yes (counts against upload)"
								  : "no (exempt from upload)");
	printf("super-seeding   %lld s for new content\n", weftctl_jint(o, "superseed_s"));
	printf("fair windows    %s\n", weftctl_jtrue(o, "fair_windows") ? "on (QUIC: backlogged peers "
									 "held to one rate)"
									: "off");
}

static int cmd_limits(struct weftctl *ctx, int argc, char **argv)
{
	static const struct {
		const char *opt, *key;
	} rates[] = {{"--upload", "upload_rate"},
		     {"--per-peer", "peer_rate"},
		     {"--lan-peer", "lan_peer_rate"}};
	json_t *body = json_object();
	unsigned long long v;
	int i, rc;

	for (i = 2; i < argc; i++) {
		size_t k;

		for (k = 0; k < sizeof(rates) / sizeof(rates[0]); k++)
			if (!strcmp(argv[i], rates[k].opt))
				break;
		if (k == 0 && i + 1 < argc && !strcmp(argv[i + 1], "auto")) {
			/* the automatic cap alone (the API also takes it under a
			 * fixed upload_rate) */
			json_object_set_new(body, "upload_auto", json_true());
			json_object_set_new(body, "upload_rate", json_integer(0));
			i++;
		} else if (k < sizeof(rates) / sizeof(rates[0]) && i + 1 < argc) {
			if (k == 0)
				json_object_set_new(body, "upload_auto", json_false());
			if (weftctl_parse_rate(argv[++i], &v)) {
				fprintf(stderr, "weftctl: %s: not a rate (e.g. 100Mbit, 12M, off)\n",
					argv[i]);
				json_decref(body);
				return WEFTCTL_USAGE;
			}
			json_object_set_new(body, rates[k].key, json_integer((json_int_t)v));
		} else if (!strcmp(argv[i], "--lan-capped") && i + 1 < argc &&
			   (!strcmp(argv[i + 1], "on") || !strcmp(argv[i + 1], "off"))) {
			json_object_set_new(body, "lan_capped", json_boolean(!strcmp(argv[++i], "on")));
		} else if (!strcmp(argv[i], "--fair") && i + 1 < argc &&
			   (!strcmp(argv[i + 1], "on") || !strcmp(argv[i + 1], "off"))) {
			json_object_set_new(body, "fair_windows", json_boolean(!strcmp(argv[++i], "on")));
		} else if (!strcmp(argv[i], "--superseed") && i + 1 < argc) {
			char *end;
			long s = strtol(argv[++i], &end, 10);

			if (*end || s < 0) {
				json_decref(body);
				return weftctl_usage(ctx);
			}
			json_object_set_new(body, "superseed_s", json_integer(s));
		} else {
			json_decref(body);
			return weftctl_usage(ctx);
		}
	}
	if (json_object_size(body))
		rc = weftctl_show(ctx, "POST", "/v1/content/limits", body, render_limits);
	else
		rc = weftctl_show(ctx, "GET", "/v1/content/limits", NULL, render_limits);
	json_decref(body);
	return rc;
}

/* A sparkline of the last minutes of upload: one cell per 10 s, its mean,
 * scaled to the highest cell; the peak is the busiest second (as on the
 * dashboard), which the current 5-second rate above cannot exceed. */
static void spark(const json_t *hist)
{
	static const char *const bars[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
	size_t n = json_array_size(hist), cells = n / 10;
	double max = 0, peak = 0, c[64];
	char b[32];

	if (cells > 64)
		cells = 64;
	for (size_t i = 0; i < cells; i++) {
		c[i] = 0;
		for (size_t k = 0; k < 10; k++) {
			double v = (double)json_integer_value(
			    json_array_get(hist, n - cells * 10 + i * 10 + k));

			c[i] += v;
			if (v > peak)
				peak = v;
		}
		c[i] /= 10;
		if (c[i] > max)
			max = c[i];
	}
	printf("last %zu min    ", cells / 6);
	for (size_t i = 0; i < cells; i++)
		printf("%s", bars[max > 0 ? (int)(c[i] / max * 8 + 0.5) : 0]);
	printf("  peak %s/s\n", weftctl_fmt_bytes(peak, b, sizeof(b)));
}

static void render_peers(const json_t *o)
{
	const json_t *p;
	const json_t *lim = json_object_get(o, "limits");
	size_t i;
	char b[64], r[32], s[32], c[160], h[32];

	weftctl_fmt_bytes((double)weftctl_jint(o, "upload_bps"), b, sizeof(b));
	printf("upload          %s/s (%.1f Mbit/s), cap %s, %lld requests queued\n", b,
	       (double)weftctl_jint(o, "upload_bps") * 8 / 1e6, cap_str(lim, c, sizeof(c)),
	       weftctl_jint(o, "queued"));
	spark(json_object_get(o, "upload_history"));
	printf("\n%-30s %-4s %10s %9s %8s %6s %9s %7s %5s\n", "PEER", "NET", "RATE", "SENT",
	       "ANSWERS", "QUEUE", "HELD", "STREAMS", "SCORE");
	json_array_foreach(json_object_get(o, "peers"), i, p)
	{
		weftctl_fmt_bytes((double)weftctl_jint(p, "rate_bps"), r, sizeof(r));
		printf("%-30s %-4s %8s/s %9s %8lld %6lld %9s %7lld %5lld\n",
		       weftctl_jstr(p, "addr"), weftctl_jstr(p, "class"), r,
		       weftctl_fmt_bytes((double)weftctl_jint(p, "sent_bytes"), s, sizeof(s)),
		       weftctl_jint(p, "served"), weftctl_jint(p, "queued"),
		       weftctl_fmt_bytes((double)weftctl_jint(p, "held_bytes"), h, sizeof(h)),
		       weftctl_jint(p, "streams"), weftctl_jint(p, "score"));
	}
	json_array_foreach(json_object_get(o, "superseed"), i, p)
	{
		if (!i)
			printf("\n%-64s %8s %8s %8s\n", "SUPER-SEEDING", "CHUNKS", "OFFERED", "LEFT");
		printf("%-64s %8lld %8lld %7llds\n", weftctl_jstr(p, "id"), weftctl_jint(p, "nchunks"),
		       weftctl_jint(p, "offered_once"), weftctl_jint(p, "remaining_s"));
	}
}

int weftctl_content_serve(struct weftctl *ctx, int argc, char **argv)
{
	if (!strcmp(argv[1], "limits"))
		return cmd_limits(ctx, argc, argv);
	if (!strcmp(argv[1], "peers") && argc == 2)
		return weftctl_show(ctx, "GET", "/v1/content/peers", NULL, render_peers);
	return weftctl_usage(ctx);
}
