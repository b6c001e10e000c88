// SPDX-License-Identifier: MIT
/*
 * relay_node: the relay data plane alone, for namespace tests and
 * bench/relay.sh. weft's XDP program on IFNAME (xdp mode) or UDP sockets
 * (uring mode), the engine, relay_fwd, and one circuit with the two
 * tokens given; prints "port N" once ready, then writes the counters as
 * JSON to STATS every 100 ms (atomically, by rename) until SIGTERM/SIGINT.
 *
 *   relay_node xdp|xdp-generic|uring IFNAME PORT_MIN PORT_MAX TOK_A TOK_B STATS [CPU]
 *
 * TOK_A / TOK_B: 32 hex digits. Limits: the defaults, except
 * RELAY_NODE_PPS (per-direction rate, environment) for benchmarks.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weft/engine.h"
#include "weft/relay_fwd.h"
#include "weft/xdp.h"

static volatile sig_atomic_t stop;

static void on_sig(int s)
{
	(void)s;
	stop = 1;
}

static int hex16(const char *s, uint8_t out[16])
{
	if (strlen(s) != 32)
		return -1;
	for (int i = 0; i < 16; i++)
		if (sscanf(s + 2 * i, "%2hhx", &out[i]) != 1)
			return -1;
	return 0;
}

static void write_stats(const char *path, struct relay_fwd *rf, struct wxdp *x, struct engine *eng)
{
	char tmp[4096];
	json_t *j = relay_fwd_json(rf), *xs = json_object(), *es;
	uint64_t c[WXDP_STAT__MAX];
	FILE *f;

	if (!j || !xs)
		goto out;
	if (x && wxdp_stats_read(x, c) == 0)
		for (unsigned int i = 0; i < WXDP_STAT__MAX; i++)
			json_object_set_new(xs, wxdp_stat_name(i), json_integer((json_int_t)c[i]));
	json_object_set_new(j, "xdp", xs);
	xs = NULL;
	es = engine_stats_json(eng);
	if (es)
		json_object_set_new(j, "engine", es);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		goto out;
	json_dumpf(j, f, JSON_COMPACT);
	fclose(f);
	rename(tmp, path);
out:
	json_decref(xs);
	json_decref(j);
}

int main(int argc, char **argv)
{
	struct engine_opts eo;
	struct relay_fwd_opts ro;
	struct relay_fwd_limits lim = { 0 };
	struct engine *eng = NULL;
	struct relay_fwd *rf = NULL;
	struct wxdp *x = NULL;
	struct wxdp_opts xo;
	uint8_t ta[16], tb[16];
	uint16_t ports[1] = { 4433 }, port;
	uint64_t id;
	int cpu = -1, err, xdp;
	const char *mode, *pps;

	if (argc < 8 || hex16(argv[5], ta) || hex16(argv[6], tb)) {
		fprintf(stderr, "usage: relay_node xdp|xdp-generic|uring IFNAME PORT_MIN PORT_MAX "
				"TOK_A TOK_B STATS [CPU]\n");
		return 2;
	}
	mode = argv[1];
	xdp = strncmp(mode, "xdp", 3) == 0;
	if (argc > 8)
		cpu = atoi(argv[8]);
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	if (xdp) {
		memset(&xo, 0, sizeof(xo));
		xo.ifname = argv[2];
		xo.pin_root = "";
		xo.skb_mode = strcmp(mode, "xdp-generic") == 0;
		err = wxdp_new(&x, &xo);
		if (err) {
			fprintf(stderr, "relay_node: wxdp_new: %s\n", strerror(-err));
			return 1;
		}
	}
	engine_opts_default(&eo);
	eo.mode = xdp ? IO_MODE_XDP : IO_MODE_URING;
	eo.ifname = argv[2];
	eo.xskmap_fd = x ? wxdp_fd(x, WXDP_FD_XSKS) : -1;
	eo.ports = ports;
	eo.nports = 1;
	eo.range_min = (uint16_t)atoi(argv[3]);
	eo.range_max = (uint16_t)atoi(argv[4]);
	eo.workers = 1;
	if (cpu >= 0) {
		eo.pin_cpus = 1;
		eo.cpus = &cpu;
	}
	err = engine_new(&eng, &eo);
	if (err) {
		fprintf(stderr, "relay_node: engine_new: %s\n", strerror(-err));
		goto out;
	}
	relay_fwd_opts_default(&ro);
	ro.eng = eng;
	ro.xdp = x;
	ro.port_min = eo.range_min;
	ro.port_max = eo.range_max;
	err = relay_fwd_new(&rf, &ro);
	if (err) {
		fprintf(stderr, "relay_node: relay_fwd_new: %s\n", strerror(-err));
		goto out;
	}
	pps = getenv("RELAY_NODE_PPS");
	if (pps) {
		lim.pps = (uint32_t)strtoul(pps, NULL, 10);
		lim.burst = lim.pps;
		lim.max_bytes = 1ULL << 50;
	}
	err = relay_fwd_add(rf, ta, tb, &lim, &id, &port);
	if (!err)
		err = engine_start(eng);
	if (err) {
		fprintf(stderr, "relay_node: %s\n", strerror(-err));
		goto out;
	}
	printf("port %u\n", port);
	fflush(stdout);
	while (!stop) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		write_stats(argv[7], rf, x, eng);
		nanosleep(&ts, NULL);
	}
	write_stats(argv[7], rf, x, eng);
out:
	engine_stop(eng);
	relay_fwd_free(rf);
	engine_free(eng);
	wxdp_free(x);
	return err ? 1 : 0;
}
