// SPDX-License-Identifier: MIT
/* weftctl: drive weftd through its control API. Owns the table of nouns
 * (every command, its handler in its own file, its usage lines: used for
 * dispatch and for --help), the global flags and the default socket. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weftctl.h"

/* In --help order. hash needs no daemon; every other noun talks to one. */
static const struct weftctl_noun nouns[] = {
	{ "ban", weftctl_ban,
	  "ban add CIDR [--ttl SECONDS]\n"
	  "ban del CIDR\n"
	  "ban list|ls" },
	{ "content", weftctl_content,
	  "content add [--name NAME] [--community ID] [--private [--to KEY[,KEY...]]... [--to-circle NAME]...\n"
	  "            [--to-group NAME|OWNERKEY/NAME]...] PATH...\n"
	  "content rewrap NAME [--to KEY[,KEY...]]... [--to-circle NAME]... [--to-group GROUP]...\n"
	  "content reencrypt NAME [--to KEY[,KEY...]]... [--to-circle NAME]... [--to-group GROUP]...\n"
	  "content ls\n"
	  "content get ID|KEY/NAME|MAGNET [--out DIR [--link]] [--from TARGET]... [--item PATH]... [--raw] [--no-wait]\n"
	  "content jobs [N]\n"
	  "content stats\n"
	  "content link SHAREID|KEY/NAME|MAGNET\n"
	  "content subscribe KEY/NAME|MAGNET [--blocklist]\n"
	  "content subscriptions\n"
	  "content unsubscribe KEY/NAME|MAGNET\n"
	  "content sync [KEY/NAME|MAGNET]\n"
	  "content search WORDS... [--share SHAREID|KEY/NAME] [--type TYPE] [--page N] [--limit N] "
	  "[--cursor C]\n"
	  "content rm ID\n"
	  "content pin ID\n"
	  "content unpin ID\n"
	  "content pins\n"
	  "content cancel JOB\n"
	  "content limits [--upload RATE|auto] [--per-peer RATE] [--lan-peer RATE] [--lan-capped on|off] "
	  "[--superseed S] [--fair on|off]\n"
	  "content peers" },
	{ "circle", weftctl_circle,
	  "circle set NAME KEY...   (a local recipient list for content add --to-circle)\n"
	  "circle ls\n"
	  "circle rm NAME" },
	{ "community", weftctl_community,
	  "community create NAME [--closed]   (prints its id and key)\n"
	  "community join ID KEY [--invite TOKEN] [--name NAME]\n"
	  "community leave ID\n"
	  "community ls\n"
	  "community members ID [--page N]\n"
	  "community shares ID [--page N]\n"
	  "community share ID KEY/NAME [--remove]   (binds a public share)\n"
	  "community invite ID KEY   (closed communities: prints the invite token)" },
	{ "dht", weftctl_dht,
	  "dht status\n"
	  "dht ping ADDR\n"
	  "dht find-node ID\n"
	  "dht get-peers INFOHASH\n"
	  "dht announce INFOHASH PORT\n"
	  "dht put --immutable VALUE\n"
	  "dht put --mutable [--salt S] [--cas] VALUE\n"
	  "dht get TARGET\n"
	  "dht get --key K [--salt S]" },
	{ "group", weftctl_group,
	  "group create NAME\n"
	  "group add NAME KEY...\n"
	  "group rm NAME KEY   (rotates the group key)\n"
	  "group ls\n"
	  "group join OWNERKEY/NAME\n"
	  "group leave OWNERKEY/NAME" },
	{ "hash", weftctl_hash, "hash [--threads N] [--simd LEVEL] [--io read|map|auto] [--kernel] [--no-names] [FILE...]" },
	{ "io", weftctl_io, "io stats" },
	{ "lan", weftctl_lan, "lan status   (LAN discovery, BEP 14: peers heard)" },
	{ "mesh", weftctl_mesh,
	  "mesh announce SERVICE_ID --community ID --data JSON [--ttl HOURS] [--endorse HEX]...   (prints the envelope id; at most 2 endorsements)\n"
	  "mesh query SERVICE_ID --community ID [--filter EXPR] [--wait MS] [--min-level LEVEL]   (e.g. --filter 'rent<500')\n"
	  "mesh endorse PROVIDER_KEY SERVICE_ID --level endorsed|registry|credential [--days N]   (signed by this node)\n"
	  "mesh update ENVELOPE_ID --community ID --data JSON [--ttl HOURS] [--endorse HEX]...   (one of this node's; default: its endorsements)\n"
	  "mesh revoke ENVELOPE_ID --community ID   (one of this node's announces)\n"
	  "mesh reserve ENVELOPE_ID --data JSON   (sealed to its provider; prints the reservation id)\n"
	  "mesh inbox   (reservations received and sent, with their answers)\n"
	  "mesh confirm|cancel ID [--data JSON]   (confirm: one this node received; cancel: received, or sent by it)" },
	{ "msg", weftctl_msg,
	  "msg send KEY --data S | --file F [--ttl S] [--no-direct]   (sealed to KEY)\n"
	  "msg inbox\n"
	  "msg read ID\n"
	  "msg rm ID\n"
	  "msg fetch   (from our anchors, now)\n"
	  "msg status   (the mailbox this node offers, and its anchors)" },
	{ "node", weftctl_node, "node resolve KEY [--fresh]   (the node record, from the DHT)" },
	{ "quic", weftctl_quic,
	  "quic conns\n"
	  "quic ping NODEKEY@ADDR[:PORT] | ADDR[:PORT]\n"
	  "quic stats\n"
	  "quic bench NODEKEY@ADDR|ADDR BYTES [sink|echo|discard]" },
	{ "relay", weftctl_relay, "relay status|reservations|circuits   (relay and reservations)" },
	{ "share", weftctl_share, "share show ID|KEY/NAME|MAGNET   (fetched first when not held)" },
	{ "metrics", weftctl_metrics, "metrics   (Prometheus text)" },
	{ "status", weftctl_status, "status" },
	{ "svc", weftctl_svc,
	  "svc publish NAME --backend tcp:IP:PORT|unix:PATH|builtin [--http-credentials] [--cors ORIGIN]\n"
	  "            [--version V] [--meta KEY=VALUE]... [--calls-per-min N] [--max-payload BYTES]\n"
	  "            [--concurrency N] [--max-streams N] [--visible-to NODE_KEY]...\n"
	  "svc unpublish NAME\n"
	  "svc ls\n"
	  "svc find NAME|SERVICE_ID [--version RANGE]   (RANGE like '>=1.2,<2')\n"
	  "svc call NAME METHOD [--data STR] [--count N] [--concurrency C] [--timeout MS]\n"
	  "         [--version RANGE] [--retry unsent|never|always]\n"
	  "svc stream NAME METHOD [--idle MS] [--timeout MS]\n"
	  "svc streams\n"
	  "svc stats" },
	{ "xdp", weftctl_xdp,
	  "xdp status\n"
	  "xdp limits [set [--quic PPS/BURST] [--initial PPS/BURST] [--dht PPS/BURST]\n"
	  "            [--v6-prefix N] [--quic-ports P,..] [--dht-ports P,..]\n"
	  "            [--unval-quic PPS/BURST] [--unval-initial PPS/BURST] [--unval-dht PPS/BURST]\n"
	  "            [--stun PPS/BURST] [--unval-stun PPS/BURST] [--quic-validated PPS/BURST]]\n"
	  "xdp limits reset" },
};

#define N_NOUNS (sizeof(nouns) / sizeof(nouns[0]))

static const struct weftctl_noun *find_noun(const char *name)
{
	for (size_t i = 0; i < N_NOUNS; i++)
		if (strcmp(nouns[i].name, name) == 0)
			return &nouns[i];
	return NULL;
}

#define WEFTCTL_SERVICE_SOCKET "/run/weft/weftd.sock"

static const char *default_socket(char *buf, size_t len)
{
	const char *env = getenv("WEFT_SOCKET"), *xdg, *home;

	if (env && env[0])
		return env;
	/* The packaged service's socket (RuntimeDirectory=weft): operators in
	 * group weft use it without root. */
	if (access(WEFTCTL_SERVICE_SOCKET, F_OK) == 0)
		return WEFTCTL_SERVICE_SOCKET;
	if (geteuid() == 0)
		return "/var/lib/weft/weftd.sock";
	if ((xdg = getenv("XDG_STATE_HOME")) && xdg[0] == '/')
		snprintf(buf, len, "%s/weft/weftd.sock", xdg);
	else if ((home = getenv("HOME")) && home[0])
		snprintf(buf, len, "%s/.local/state/weft/weftd.sock", home);
	else
		snprintf(buf, len, "weftd.sock");
	return buf;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: weftctl [--socket PATH] [--json] <noun> <verb> [args]\n\n");
	for (size_t i = 0; i < N_NOUNS; i++)
		weftctl_print_lines(out, "  weftctl ", nouns[i].usage);
	fprintf(out, "\nThe socket defaults to $WEFT_SOCKET, else " WEFTCTL_SERVICE_SOCKET " (the systemd\n"
		     "service's) if it exists, else weftd's default for this user.\n"
		     "Exit codes: 0 ok, 1 error, 2 usage, 3 not a recipient of a private share.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct weftctl ctx = { 0 };
	char sockbuf[4096];
	int c;

	/* '+': stop at the noun; the noun parses its own flags. */
	while ((c = getopt_long(argc, argv, "+s:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			ctx.socket = optarg;
			break;
		case 'j':
			ctx.json = 1;
			break;
		case 'h':
			usage(stdout);
			return WEFTCTL_OK;
		default:
			usage(stderr);
			return WEFTCTL_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return WEFTCTL_USAGE;
	}
	if (!ctx.socket)
		ctx.socket = default_socket(sockbuf, sizeof(sockbuf));
	ctx.noun = find_noun(argv[optind]);
	if (ctx.noun) {
		/* Nouns may take --json after the noun too. */
		int rest = argc - optind, o = 0, rc;
		char **av = calloc((size_t)rest + 1, sizeof(char *));

		if (!av)
			return WEFTCTL_ERR;
		for (int i = optind; i < argc; i++) {
			if (strcmp(argv[i], "--json") == 0)
				ctx.json = 1;
			else
				av[o++] = argv[i];
		}
		optind = 1;
		rc = ctx.noun->run(&ctx, o, av);
		free(av);
		return rc;
	}
	fprintf(stderr, "weftctl: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return WEFTCTL_USAGE;
}
