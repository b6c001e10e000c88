// SPDX-License-Identifier: MIT
/*
 * weftctl xdp status                  mode, program id, counters and rates
 * weftctl xdp limits                  show the run-time limits
 * weftctl xdp limits set [--quic PPS/BURST] [--initial PPS/BURST]
 *                        [--dht PPS/BURST] [--v6-prefix N]
 *                        [--quic-ports P[,P..]] [--dht-ports P[,P..]]
 *                        [--unval-quic PPS/BURST] [--unval-initial PPS/BURST]
 *                        [--unval-dht PPS/BURST]
 * weftctl xdp limits reset            back to the configuration file's values
 * Limits set at run time are stored and override the configuration file
 * at every start until reset (docs/CONFIG.md).
 * API: GET /v1/xdp/status, GET/PUT/DELETE /v1/xdp/limits (docs/XDP.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/util.h"
#include "weftctl.h"

static void print_status(const json_t *o)
{
	const char *key;
	json_t *c, *r, *v;

	printf("policy     %s\n", weftctl_jstr(o, "policy"));
	if (json_object_get(o, "interface")) {
		printf("interface  %s\n", weftctl_jstr(o, "interface"));
		printf("mode       %s\n", weftctl_jstr(o, "mode"));
		printf("program    %lld\n", weftctl_jint(o, "prog_id"));
		printf("maps       %s\n", weftctl_jstr(o, "pin_dir"));
	}
	printf("sources    %lld tracked\n", weftctl_jint(o, "sources_tracked"));
	v = json_object_get(o, "validated");
	printf("validated  %lld of %lld (reply %lld, token %lld, handshake %lld reports)\n",
	       weftctl_jint(v, "sources"), weftctl_jint(v, "capacity"),
	       weftctl_jint(json_object_get(v, "evidence"), "reply"),
	       weftctl_jint(json_object_get(v, "evidence"), "token"),
	       weftctl_jint(json_object_get(v, "evidence"), "handshake"));
	v = json_object_get(o, "bans");
	printf("bans       operator %lld of %lld, auto %lld of %lld (%lld evicted)\n",
	       weftctl_jint(v, "operator"), weftctl_jint(v, "operator_max"),
	       weftctl_jint(v, "auto"), weftctl_jint(v, "auto_max"),
	       weftctl_jint(v, "auto_evicted"));
	printf("\n%-24s %16s %14s\n", "COUNTER", "TOTAL", "RATE/s");
	c = json_object_get(o, "counters");
	r = json_object_get(o, "rates_per_s");
	json_object_foreach(c, key, v) {
		printf("%-24s %16lld %14.1f\n", key, json_integer_value(v), weftctl_jreal(r, key));
	}
	printf("(rates over the last %.1f s)\n", weftctl_jreal(o, "interval_s"));
}

static void print_limits(const json_t *o)
{
	static const char *const rates[] = { "quic", "quic_initial", "dht", "stun" };
	const char *names[2] = { "quic_ports", "dht_ports" };

	json_t *u = json_object_get(o, "unvalidated");

	printf("%-14s %12s %12s %16s %14s\n", "CLASS", "PPS", "BURST", "UNVALIDATED PPS",
	       "BURST");
	for (size_t i = 0; i < 4; i++) {
		json_t *r = json_object_get(o, rates[i]), *b = json_object_get(u, rates[i]);

		printf("%-14s %12lld %12lld %16lld %14lld\n", rates[i], weftctl_jint(r, "pps"),
		       weftctl_jint(r, "burst"), weftctl_jint(b, "pps"), weftctl_jint(b, "burst"));
		if (!i) { /* a validated source's QUIC: no budget to pay */
			r = json_object_get(o, "quic_validated");
			printf("%-14s %12lld %12lld %16s %14s\n", "quic_validated",
			       weftctl_jint(r, "pps"), weftctl_jint(r, "burst"), "-", "-");
		}
	}
	for (int i = 0; i < 2; i++) {
		json_t *a = json_object_get(o, names[i]), *v;
		size_t k;

		printf("%-14s", names[i]);
		json_array_foreach(a, k, v)
			printf(" %lld", json_integer_value(v));
		printf("\n");
	}
	printf("%-14s /%lld\n", "v6_prefix", weftctl_jint(o, "v6_prefix"));
	printf("(per source; quic_validated: a validated source's QUIC in place of quic; "
	       "unvalidated: global per worker; pps 0 = unlimited)\n");
}

/* "PPS/BURST" -> {"pps":..,"burst":..} */
static json_t *parse_rate(const char *s)
{
	char buf[64];
	char *slash;
	uint64_t pps, burst;

	if (strlen(s) >= sizeof(buf))
		return NULL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	if (util_parse_u64(buf, 0, UINT32_MAX, &pps) ||
	    util_parse_u64(slash + 1, 0, UINT32_MAX, &burst))
		return NULL;
	return json_pack("{s:I,s:I}", "pps", (json_int_t)pps, "burst", (json_int_t)burst);
}

static json_t *parse_ports(const char *s)
{
	json_t *a = json_array();
	char buf[128], *save = NULL, *tok;
	uint64_t p;

	if (strlen(s) >= sizeof(buf)) {
		json_decref(a);
		return NULL;
	}
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (util_parse_u64(tok, 1, 65535, &p)) {
			json_decref(a);
			return NULL;
		}
		json_array_append_new(a, json_integer((json_int_t)p));
	}
	return a;
}

static int xdp_limits_set(struct weftctl *ctx, int argc, char **argv)
{
	json_t *body = json_object(), *unval = json_object(), *v;
	uint64_t n;
	int rc;

	for (int i = 0; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!val)
			goto usage;
		i++;
		if (!strcmp(opt, "--quic") || !strcmp(opt, "--initial") || !strcmp(opt, "--dht") ||
		    !strcmp(opt, "--stun") || !strcmp(opt, "--quic-validated")) {
			v = parse_rate(val);
			if (!v)
				goto usage;
			json_object_set_new(body,
					    !strcmp(opt, "--quic")	       ? "quic"
					    : !strcmp(opt, "--quic-validated") ? "quic_validated"
					    : !strcmp(opt, "--dht")	       ? "dht"
					    : !strcmp(opt, "--stun")	       ? "stun"
									       : "quic_initial",
					    v);
		} else if (!strcmp(opt, "--quic-ports") || !strcmp(opt, "--dht-ports")) {
			v = parse_ports(val);
			if (!v)
				goto usage;
			json_object_set_new(body, opt[2] == 'q' ? "quic_ports" : "dht_ports", v);
		} else if (!strcmp(opt, "--unval-quic") || !strcmp(opt, "--unval-initial") ||
			   !strcmp(opt, "--unval-dht") || !strcmp(opt, "--unval-stun")) {
			v = parse_rate(val);
			if (!v)
				goto usage;
			json_object_set_new(unval,
					    !strcmp(opt, "--unval-quic")   ? "quic"
					    : !strcmp(opt, "--unval-dht")  ? "dht"
					    : !strcmp(opt, "--unval-stun") ? "stun"
									   : "quic_initial",
					    v);
		} else if (!strcmp(opt, "--v6-prefix")) {
			if (util_parse_u64(val, 1, 128, &n))
				goto usage;
			json_object_set_new(body, "v6_prefix", json_integer((json_int_t)n));
		} else {
			goto usage;
		}
	}
	if (json_object_size(unval))
		json_object_set(body, "unvalidated", unval);
	json_decref(unval);
	rc = weftctl_show(ctx, "PUT", "/v1/xdp/limits", body, print_limits);
	json_decref(body);
	return rc;
usage:
	json_decref(unval);
	json_decref(body);
	return weftctl_usage(ctx);
}

int weftctl_xdp(struct weftctl *ctx, int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "status"))
		return weftctl_show(ctx, "GET", "/v1/xdp/status", NULL, print_status);
	if (argc >= 3 && !strcmp(argv[1], "limits") && !strcmp(argv[2], "set"))
		return xdp_limits_set(ctx, argc - 3, argv + 3);
	if (argc == 3 && !strcmp(argv[1], "limits") && !strcmp(argv[2], "reset"))
		return weftctl_show(ctx, "DELETE", "/v1/xdp/limits", NULL, print_limits);
	if (argc != 2 || strcmp(argv[1], "limits"))
		return weftctl_usage(ctx);
	return weftctl_show(ctx, "GET", "/v1/xdp/limits", NULL, print_limits);
}
