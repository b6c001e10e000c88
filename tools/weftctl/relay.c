// SPDX-License-Identifier: MIT
/* weftctl relay: the relay's control and data plane (docs/CONNECTIVITY.md, "Relay"). */
#include <stdio.h>
#include <string.h>

#include "weftctl.h"

static void print_status(const json_t *o)
{
	const json_t *lim = json_object_get(o, "limits"), *c = json_object_get(o, "counters");
	const json_t *dp = json_object_get(o, "data_plane"), *x;
	const char *key;
	size_t i;

	printf("relaying       %s\n", weftctl_jtrue(o, "enabled") ? "yes" : "no");
	if (weftctl_jtrue(o, "enabled")) {
		printf("reservations   %lld of %lld (%lld per address, %lld circuits each, ttl %lld s)\n",
		       weftctl_jint(o, "reservations"), weftctl_jint(lim, "max_reservations"),
		       weftctl_jint(lim, "reservations_per_addr"),
		       weftctl_jint(lim, "circuits_per_reservation"),
		       weftctl_jint(lim, "reservation_ttl_s"));
		printf("circuits       %lld live, %lld granted, %lld requests\n",
		       dp ? weftctl_jint(dp, "circuits") : 0, weftctl_jint(c, "circuits"),
		       weftctl_jint(c, "connects"));
		printf("ended          lifetime %lld, idle %lld, byte limit %lld, deleted %lld\n",
		       weftctl_jint(c, "ended_lifetime"), weftctl_jint(c, "ended_idle"),
		       weftctl_jint(c, "ended_bytes"), weftctl_jint(c, "ended_deleted"));
		printf("refused       ");
		json_object_foreach((json_t *)json_object_get(c, "refused"), key, x)
			if (json_integer_value(x))
				printf(" %s %lld", key, (long long)json_integer_value(x));
		printf("\n");
		if (dp)
			printf("forwarded      %lld packets, %lld bytes (userspace), binds %lld ok / %lld bad\n",
			       weftctl_jint(dp, "user_pkts"), weftctl_jint(dp, "user_bytes"),
			       weftctl_jint(dp, "binds_ok"), weftctl_jint(dp, "binds_bad"));
	}
	printf("reserve        %s, accept circuits: %s\n", weftctl_jstr(o, "reserve"),
	       weftctl_jtrue(o, "accept") ? "yes" : "no");
	json_array_foreach(json_object_get(o, "use"), i, x)
		printf("relay used     %s  %s (%s; expires in %lld s, last %s)\n",
		       weftctl_jstr(x, "relay"), weftctl_jstr(x, "state"), weftctl_jstr(x, "source"),
		       weftctl_jint(x, "expires_in_s"), weftctl_jstr(x, "last_status"));
	printf("our circuits   binds %lld ok / %lld failed, offers %lld accepted / %lld refused\n",
	       weftctl_jint(c, "binds_ok"), weftctl_jint(c, "binds_failed"),
	       weftctl_jint(c, "offers_accepted"), weftctl_jint(c, "offers_refused"));
}

static void print_reservations(const json_t *o)
{
	const json_t *x;
	size_t i;

	if (!weftctl_jtrue(o, "enabled")) {
		printf("this node does not relay (relay.enable = false)\n");
		return;
	}
	printf("%-16s %-24s %8s %8s %8s %8s\n", "KEY", "ADDR", "AGE_S", "EXPIRES", "CIRCUITS",
	       "TOTAL");
	json_array_foreach(json_object_get(o, "reservations"), i, x)
		printf("%.16s %-24s %8lld %8lld %8lld %8lld\n", weftctl_jstr(x, "key"),
		       weftctl_jstr(x, "addr"), weftctl_jint(x, "age_s"),
		       weftctl_jint(x, "expires_in_s"), weftctl_jint(x, "circuits"),
		       weftctl_jint(x, "circuits_total"));
}

static void print_circuits(const json_t *o)
{
	const json_t *x;
	size_t i;

	if (!weftctl_jtrue(o, "enabled")) {
		printf("this node does not relay (relay.enable = false)\n");
		return;
	}
	printf("%-8s %-6s %-16s %-16s %-22s %-22s %10s %10s %8s\n", "ID", "PORT", "DIALLER",
	       "TARGET", "END A", "END B", "PKTS A>B", "PKTS B>A", "DROPS");
	json_array_foreach(json_object_get(o, "circuits"), i, x) {
		const json_t *a = json_array_get(json_object_get(x, "ends"), 0);
		const json_t *b = json_array_get(json_object_get(x, "ends"), 1);

		printf("%-8lld %-6lld %-16.16s %-16.16s %-22s %-22s %10lld %10lld %8lld%s\n",
		       weftctl_jint(x, "id"), weftctl_jint(x, "port"), weftctl_jstr(x, "dialler"),
		       weftctl_jstr(x, "target"),
		       weftctl_jtrue(a, "bound") ? weftctl_jstr(a, "addr") : "-",
		       weftctl_jtrue(b, "bound") ? weftctl_jstr(b, "addr") : "-",
		       weftctl_jint(a, "pkts"), weftctl_jint(b, "pkts"),
		       weftctl_jint(a, "drops") + weftctl_jint(b, "drops"),
		       weftctl_jtrue(x, "in_kernel") ? " (xdp)" : "");
	}
}

int weftctl_relay(struct weftctl *ctx, int argc, char **argv)
{
	if (argc != 2)
		return weftctl_usage(ctx);
	if (!strcmp(argv[1], "status"))
		return weftctl_show(ctx, "GET", "/v1/relay/status", NULL, print_status);
	if (!strcmp(argv[1], "reservations"))
		return weftctl_show(ctx, "GET", "/v1/relay/reservations", NULL, print_reservations);
	if (!strcmp(argv[1], "circuits"))
		return weftctl_show(ctx, "GET", "/v1/relay/circuits", NULL, print_circuits);
	return weftctl_usage(ctx);
}
