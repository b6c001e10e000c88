// SPDX-License-Identifier: MIT
/* weftd: the weft node daemon. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft/config.h"
#include "weft/log.h"
#include "weft/node.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: weftd [options]\n"
		"  -c, --config FILE       INI configuration (default %s if it exists)\n"
		"      --state-dir DIR     state directory (default /var/lib/weft as root,\n"
		"                          $XDG_STATE_HOME/weft or ~/.local/state/weft otherwise)\n"
		"      --socket PATH       control socket (default STATE/weftd.sock)\n"
		"      --log-level LEVEL   error|warn|info|debug (default info)\n"
		"      --io MODE           auto|uring|xdp (default auto)\n"
		"      --workers N         packet workers (0 = one per CPU or rx queue)\n"
		"      --cpus LIST         pin workers to these CPUs, e.g. 2,3 or 2-5 (default: not pinned)\n"
		"      --xdp IFNAME        attach the XDP program to IFNAME (implies --io=xdp)\n"
		"      --xdp-mode MODE     native|generic (default native)\n"
		"      --bind ADDR         UDP bind address in uring mode (default ::)\n"
		"      --quic-port PORT    (default 4433)\n"
		"      --dht-port PORT     (default 6881)\n"
		"      --bootstrap H:P     DHT bootstrap node (repeatable; none by default)\n"
		"      --gateway ADDR:PORT loopback HTTP gateway (off by default)\n"
		"      --relay             relay for nodes behind NAT (relay.enable = true)\n"
		"      --set SEC.KEY=VAL   set any configuration key (see docs/CONFIG.md)\n"
		"      --print-config      print the effective configuration and exit\n"
		"      --print-default-config  print every key commented out with its default\n"
		"  -V, --version           print the version and exit\n"
		"  -h, --help              this text\n",
		CONFIG_DEFAULT_PATH);
}

enum {
	OPT_STATE = 256, OPT_SOCKET, OPT_LOG, OPT_IO, OPT_WORKERS, OPT_XDP, OPT_XDP_MODE,
	OPT_BIND, OPT_QUIC, OPT_DHT, OPT_BOOT, OPT_GATEWAY, OPT_SET, OPT_PRINT, OPT_CPUS,
	OPT_PRINT_DEFAULTS, OPT_RELAY,
};

static const struct option longopts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "state-dir", required_argument, NULL, OPT_STATE },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "log-level", required_argument, NULL, OPT_LOG },
	{ "io", required_argument, NULL, OPT_IO },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "xdp", required_argument, NULL, OPT_XDP },
	{ "xdp-mode", required_argument, NULL, OPT_XDP_MODE },
	{ "bind", required_argument, NULL, OPT_BIND },
	{ "quic-port", required_argument, NULL, OPT_QUIC },
	{ "dht-port", required_argument, NULL, OPT_DHT },
	{ "bootstrap", required_argument, NULL, OPT_BOOT },
	{ "gateway", required_argument, NULL, OPT_GATEWAY },
	{ "relay", no_argument, NULL, OPT_RELAY },
	{ "set", required_argument, NULL, OPT_SET },
	{ "print-config", no_argument, NULL, OPT_PRINT },
	{ "print-default-config", no_argument, NULL, OPT_PRINT_DEFAULTS },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Which config key each flag sets. */
static const struct {
	int opt;
	const char *section, *key;
} flag_keys[] = {
	{ OPT_STATE, "node", "state_dir" },   { OPT_SOCKET, "ctl", "socket" },
	{ OPT_LOG, "node", "log_level" },     { OPT_IO, "node", "io" },
	{ OPT_WORKERS, "node", "workers" },   { OPT_XDP, "xdp", "interface" },
	{ OPT_XDP_MODE, "xdp", "mode" },      { OPT_BIND, "node", "bind" },
	{ OPT_QUIC, "ports", "quic" },        { OPT_DHT, "ports", "dht" },
	{ OPT_BOOT, "dht", "bootstrap" },     { OPT_GATEWAY, "gateway", "listen" },
	{ OPT_CPUS, "node", "cpus" },
};

#ifdef WEFT_TEST_HOOKS
/* Test builds only (the sanitized weftd the integration tests run): the
 * per-node test hooks of struct weft_config, from the environment. The
 * release weftd has neither this code nor these names. */
static void test_hooks_from_env(struct weft_config *cfg)
{
	const char *e;

	if ((e = getenv("WEFT_CONTENT_TEST_CORRUPT")) && !strcmp(e, "1"))
		cfg->test.content_corrupt = 1;
	if ((e = getenv("WEFT_CONTENT_TEST_SERVE_DELAY_MS")))
		cfg->test.content_serve_delay_ms = (uint32_t)strtoul(e, NULL, 10);
	if ((e = getenv("WEFT_CONTENT_REQ_TIMEOUT_MS")))
		cfg->test.content_req_timeout_ms = (uint32_t)strtoul(e, NULL, 10);
	if ((e = getenv("WEFT_CONTENT_TEST_LOOKUP_POLL_MS")))
		cfg->test.content_lookup_poll_ms = (uint32_t)strtoul(e, NULL, 10);
}
#endif

int main(int argc, char **argv)
{
	struct weft_config cfg;
	const char *config_path = NULL;
	char err[600];
	int print = 0, c, rc;
	struct node *n = NULL;
	struct log_ctx mlog;
	enum log_level lvl;
	sigset_t mask;

	node_heap_setup(); /* before anything allocates: heap.c */

	/* First pass: only the config file, so flags override it. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
		if (c == 'c')
			config_path = optarg;
	}
	config_defaults(&cfg);
	if (config_path || access(CONFIG_DEFAULT_PATH, F_OK) == 0) {
		const char *p = config_path ? config_path : CONFIG_DEFAULT_PATH;

		if (config_load_file(&cfg, p, err, sizeof(err))) {
			fprintf(stderr, "weftd: %s\n", err);
			return 1;
		}
		config_path = p;
	}
	optind = 1;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
		const char *sec = NULL, *key = NULL;

		switch (c) {
		case 'c':
			continue;
		case 'V':
			printf("weftd %s\n", WEFT_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_PRINT:
			print = 1;
			continue;
		case OPT_RELAY:
			if (config_set_flag(&cfg, "relay", "enable", "true", err, sizeof(err))) {
				fprintf(stderr, "weftd: --relay: %s\n", err);
				return 2;
			}
			continue;
		case OPT_PRINT_DEFAULTS:
			config_print_defaults(stdout);
			return 0;
		case OPT_SET: {
			char buf[512], *dot, *eq;

			snprintf(buf, sizeof(buf), "%s", optarg);
			dot = strchr(buf, '.');
			eq = strchr(buf, '=');
			if (!dot || !eq || dot > eq) {
				fprintf(stderr, "weftd: --set wants SECTION.KEY=VALUE, got '%s'\n",
					optarg);
				return 2;
			}
			*dot = *eq = '\0';
			if (config_set_flag(&cfg, buf, dot + 1, eq + 1, err, sizeof(err))) {
				fprintf(stderr, "weftd: --set: %s\n", err);
				return 2;
			}
			continue;
		}
		case '?':
			usage(stderr);
			return 2;
		}
		for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++)
			if (flag_keys[i].opt == c)
				sec = flag_keys[i].section, key = flag_keys[i].key;
		if (!sec) {
			usage(stderr);
			return 2;
		}
		/* --xdp implies node.io = xdp */
		if (c == OPT_XDP &&
		    config_set_flag(&cfg, "node", "io", "xdp", err, sizeof(err)))
			return 2;
		if (config_set_flag(&cfg, sec, key, optarg, err, sizeof(err))) {
			fprintf(stderr, "weftd: %s\n", err);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "weftd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (config_finish(&cfg, err, sizeof(err))) {
		fprintf(stderr, "weftd: %s\n", err);
		return 2;
	}
	if (print) {
		config_print(&cfg, stdout);
		return 0;
	}
#ifdef WEFT_TEST_HOOKS
	test_hooks_from_env(&cfg);
#endif
	/* The node applies node.log_level to its own log context; main's own
	 * lines (after the node is gone) use the same level. */
	if (log_level_parse(cfg.log_level, &lvl))
		lvl = LOG_LVL_INFO;
	log_ctx_init(&mlog, lvl, -1, NULL);
	log_bind(&mlog);
	/* Block the signals in every thread; the main loop reads them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = node_new(&n, &cfg, config_path);
	if (rc) {
		fprintf(stderr, "weftd: cannot start: %s\n", strerror(-rc));
		return 1;
	}
	rc = node_run(n);
	node_free(n);
	if (rc) {
		fprintf(stderr, "weftd: %s\n", strerror(-rc));
		return 1;
	}
	log_info("node", "stopped");
	return 0;
}
