// SPDX-License-Identifier: MIT
/* weftctl: drive weftd through its control API. Nouns register themselves
 * (WEFTCTL_NOUN) from their own files. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weftctl.h"

extern const struct weftctl_noun __start_weftctl_nouns[];
extern const struct weftctl_noun __stop_weftctl_nouns[];

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
	for (const struct weftctl_noun *n = __start_weftctl_nouns; n < __stop_weftctl_nouns; n++) {
		const char *u = n->usage;

		while (u && *u) {
			size_t l = strcspn(u, "\n");

			fprintf(out, "  weftctl %.*s\n", (int)l, u);
			u += l;
			if (*u == '\n')
				u++;
		}
	}
	fprintf(out, "\nThe socket defaults to $WEFT_SOCKET, else " WEFTCTL_SERVICE_SOCKET " (the systemd\n"
		     "service's) if it exists, else weftd's default for this user.\n"
		     "Exit codes: 0 ok, 1 error, 2 usage.\n");
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
	for (const struct weftctl_noun *n = __start_weftctl_nouns; n < __stop_weftctl_nouns; n++) {
		if (strcmp(n->name, argv[optind]) == 0) {
			/* Nouns may take --json after the noun too. */
			int rest = argc - optind, o = 0;
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
			int rc = n->run(&ctx, o, av);

			free(av);
			return rc;
		}
	}
	fprintf(stderr, "weftctl: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return WEFTCTL_USAGE;
}
