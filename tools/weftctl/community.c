// SPDX-License-Identifier: MIT
/*
 * weftctl community create NAME [--closed]
 * weftctl community join ID KEY [--invite TOKEN] [--name NAME]
 * weftctl community leave ID
 * weftctl community ls
 * weftctl community members ID [--page N]
 * weftctl community shares ID [--page N]
 * weftctl community share ID KEY/NAME [--remove]
 * weftctl community invite ID KEY
 * API: /v1/community (docs/CONTROL_API.md, docs/COMMUNITY.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weftctl.h"

static void print_comm(const json_t *c)
{
	printf("%s %s %s %s%s members %lld shares %lld holders %lld\n", weftctl_jstr(c, "id"),
	       weftctl_jstr(c, "key"), weftctl_jstr(c, "name"),
	       weftctl_jtrue(c, "closed") ? "closed" : "open",
	       weftctl_jtrue(c, "owner") ? " owner" : "", weftctl_jint(c, "members"),
	       weftctl_jint(c, "shares"), weftctl_jint(c, "holders"));
}

static void print_list(const json_t *o)
{
	const json_t *c;
	size_t i;

	json_array_foreach(json_object_get(o, "communities"), i, c)
		print_comm(c);
}

static void print_page(const json_t *o, const char *what)
{
	const json_t *r;
	size_t i;

	json_array_foreach(json_object_get(o, what), i, r)
	{
		if (!strcmp(what, "members")) {
			printf("%s%s%s", weftctl_jstr(r, "key"),
			       weftctl_jtrue(r, "self") ? " (this node)" : "",
			       weftctl_jtrue(r, "gone") ? " (left)" : "");
			if (weftctl_jint(r, "waiting") > 0)
				printf(" (%lld of our records not reached it yet, to be sent again)",
				       weftctl_jint(r, "waiting"));
			printf("\n");
		} else
			printf("%s/%s%s by %s\n  %s\n", weftctl_jstr(r, "head"),
			       weftctl_jstr(r, "name"), weftctl_jtrue(r, "gone") ? " (withdrawn)" : "",
			       weftctl_jstr(r, "member"), weftctl_jstr(r, "link"));
	}
	printf("page %lld of %lld, %lld in all\n", weftctl_jint(o, "page") + 1,
	       weftctl_jint(o, "pages"), weftctl_jint(o, "total"));
}

static void print_members(const json_t *o)
{
	print_page(o, "members");
}

static void print_shares(const json_t *o)
{
	print_page(o, "shares");
}

static void print_invite(const json_t *o)
{
	printf("%s\n", weftctl_jstr(o, "invite"));
}

/* Options after the positional arguments: --name value pairs and flags.
 * Returns 0, or -1 on an unknown or incomplete option. */
static int opts(int argc, char **argv, int from, json_t *body, const char *const *valued,
		const char *const *flags)
{
	for (int i = from; i < argc; i++) {
		int ok = 0;

		for (const char *const *v = valued; *v && !ok; v++)
			if (!strcmp(argv[i], *v) && i + 1 < argc) {
				json_object_set_new(body, *v + 2, json_string(argv[++i]));
				ok = 1;
			}
		for (const char *const *f = flags; *f && !ok; f++)
			if (!strcmp(argv[i], *f)) {
				json_object_set_new(body, *f + 2, json_true());
				ok = 1;
			}
		if (!ok)
			return -1;
	}
	return 0;
}

static void print_left(const json_t *o)
{
	(void)o;
	printf("left the community (its records deleted here)\n");
}

static int run(struct weftctl *ctx, const char *method, const char *path, json_t *body,
	       void (*render)(const json_t *))
{
	int rc = weftctl_show(ctx, method, path, body, render);

	json_decref(body);
	return rc;
}

int weftctl_community(struct weftctl *ctx, int argc, char **argv)
{
	static const char *const none[] = {NULL};
	static const char *const closed[] = {"--closed", NULL};
	static const char *const join_v[] = {"--invite", "--name", NULL};
	static const char *const remove[] = {"--remove", NULL};
	char path[256];
	json_t *body;

	if (argc == 2 && !strcmp(argv[1], "ls"))
		return weftctl_show(ctx, "GET", "/v1/community", NULL, print_list);
	if (argc < 3)
		return weftctl_usage(ctx);
	body = json_object();
	if (!strcmp(argv[1], "create")) {
		json_object_set_new(body, "name", json_string(argv[2]));
		if (opts(argc, argv, 3, body, none, closed))
			goto usage;
		return run(ctx, "POST", "/v1/community/create", body, print_comm);
	}
	if (!strcmp(argv[1], "join") && argc >= 4) {
		json_object_set_new(body, "id", json_string(argv[2]));
		json_object_set_new(body, "key", json_string(argv[3]));
		if (opts(argc, argv, 4, body, join_v, none))
			goto usage;
		return run(ctx, "POST", "/v1/community/join", body, print_comm);
	}
	if (strlen(argv[2]) != 32 || strspn(argv[2], "0123456789abcdefABCDEF") != 32)
		goto usage;
	if (!strcmp(argv[1], "leave") && argc == 3) {
		snprintf(path, sizeof(path), "/v1/community/%s/leave", argv[2]);
		return run(ctx, "POST", path, body, print_left);
	}
	if ((!strcmp(argv[1], "members") || !strcmp(argv[1], "shares")) &&
	    (argc == 3 || (argc == 5 && !strcmp(argv[3], "--page")))) {
		unsigned long long page = 0;

		if (argc == 5) {
			char *end;

			page = strtoull(argv[4], &end, 10);
			if (*end || !page || page > 1000000)
				goto usage;
			page--; /* the CLI counts pages from 1 */
		}
		snprintf(path, sizeof(path), "/v1/community/%s/%s?page=%llu", argv[2], argv[1],
			 page);
		json_decref(body);
		return weftctl_show(ctx, "GET", path, NULL,
				    argv[1][0] == 'm' ? print_members : print_shares);
	}
	if (!strcmp(argv[1], "share") && argc >= 4) {
		json_object_set_new(body, "head", json_string(argv[3]));
		if (opts(argc, argv, 4, body, none, remove))
			goto usage;
		snprintf(path, sizeof(path), "/v1/community/%s/shares", argv[2]);
		return run(ctx, "POST", path, body, NULL);
	}
	if (!strcmp(argv[1], "invite") && argc == 4) {
		json_object_set_new(body, "key", json_string(argv[3]));
		snprintf(path, sizeof(path), "/v1/community/%s/invite", argv[2]);
		return run(ctx, "POST", path, body, print_invite);
	}
usage:
	json_decref(body);
	return weftctl_usage(ctx);
}
