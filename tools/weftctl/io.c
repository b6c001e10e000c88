// SPDX-License-Identifier: MIT
/*
 * weftctl io stats      per-worker packet I/O counters (table; --json as is)
 * API: GET /v1/io/stats (docs/ENGINE.md).
 */
#include <stdio.h>
#include <string.h>

#include "weftctl.h"

/* Counters shown under the table when non-zero (drops by cause). */
static const char *const drops[] = {
	"rx_drop_malformed", "rx_drop_not_ours", "tx_drop_nobuf", "tx_drop_error",
	"drop_filter",       "drop_no_handler",  "cmd_full",
	"rx_kernel",         "tx_gso_sends",     "rx_gro_bufs",   "neigh_updates",
	"xsk_rx_dropped",    "xsk_rx_invalid_descs", "xsk_tx_invalid_descs", "xsk_rx_ring_full",
	"xsk_rx_fill_ring_empty", "xsk_tx_ring_empty",
};

static void row(const char *name, const json_t *w)
{
	char b1[32], b2[32];

	printf("%-8s %12lld %10s %12lld %10s %8.1f %10lld %10lld %10lld\n", name,
	       weftctl_jint(w, "rx_pkts"),
	       weftctl_fmt_bytes((double)weftctl_jint(w, "rx_bytes"), b1, sizeof(b1)),
	       weftctl_jint(w, "tx_pkts"),
	       weftctl_fmt_bytes((double)weftctl_jint(w, "tx_bytes"), b2, sizeof(b2)),
	       weftctl_jreal(w, "rx_batch_avg"), weftctl_jint(w, "rx_ring_full"),
	       weftctl_jint(w, "tx_ring_full"), weftctl_jint(w, "tx_kernel"));
}

static void print_stats(const json_t *o)
{
	json_t *ws, *w, *tot;
	size_t i, k;
	char name[16];

	printf("mode %s, %s\n", weftctl_jstr(o, "mode"),
	       weftctl_jtrue(o, "running") ? "running" : "stopped");
	printf("%-8s %12s %10s %12s %10s %8s %10s %10s %10s\n", "WORKER", "RX PKTS", "RX BYTES",
	       "TX PKTS", "TX BYTES", "BATCH", "RX FULL", "TX FULL", "TX KERNEL");
	ws = json_object_get(o, "workers");
	json_array_foreach(ws, i, w) {
		snprintf(name, sizeof(name), "%lld", weftctl_jint(w, "worker"));
		row(name, w);
	}
	tot = json_object_get(o, "total");
	row("total", tot);
	for (k = 0; k < sizeof(drops) / sizeof(drops[0]); k++) {
		json_int_t v = weftctl_jint(tot, drops[k]);

		if (v)
			printf("%-20s %lld\n", drops[k], (long long)v);
	}
}

int weftctl_io(struct weftctl *ctx, int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "stats"))
		return weftctl_show(ctx, "GET", "/v1/io/stats", NULL, print_stats);
	return weftctl_usage(ctx);
}
