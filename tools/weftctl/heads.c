// SPDX-License-Identifier: MIT
/*
 * weftctl content link|subscribe|subscriptions|unsubscribe|sync: share
 * heads (BEP 46) and the shares this node follows. API: POST
 * /v1/content/{link,subscribe,unsubscribe,sync}, GET
 * /v1/content/subscriptions (docs/CONTENT.md, "Share heads and
 * subscriptions"). A head is KEY/NAME or magnet:?xs=urn:btpk:KEY&s=SALT;
 * the daemon parses it.
 */
#include <stdio.h>
#include <string.h>

#include "weftctl.h"

static void show_ref(const json_t *o)
{
	printf("%s\n", weftctl_jstr(o, "magnet"));
}

static void show_sub(const json_t *o)
{
	printf("subscribed to %s%s\n  %s\n  share %s\n", weftctl_jstr(o, "head"),
	       weftctl_jtrue(o, "blocklist") ? " (a blocklist: the ids it lists are refused)" : "",
	       weftctl_jstr(o, "magnet"), weftctl_jstr(o, "share_id"));
}

static void show_subs(const json_t *o)
{
	json_t *s;
	size_t i;

	printf("poll every %lld s; %lld polls, %lld new versions, %lld fetched, %lld refused, "
	       "%lld refresh puts (%lld found every close node holding it)\n",
	       weftctl_jint(o, "poll_s"), weftctl_jint(o, "polls"), weftctl_jint(o, "updates"),
	       weftctl_jint(o, "fetched"), weftctl_jint(o, "refused"), weftctl_jint(o, "reputs"),
	       weftctl_jint(o, "reputs_held"));
	printf("%-40s %6s %8s  %s\n", "SHARE", "SEQ", "FETCHED", "HEAD");
	json_array_foreach(json_object_get(o, "subscriptions"), i, s)
	{
		printf("%-40s %6lld %8lld  %s\n", weftctl_jstr(s, "share_id"),
		       weftctl_jint(s, "seq"), weftctl_jint(s, "fetched_seq"),
		       weftctl_jstr(s, "head"));
		if (*weftctl_jstr(s, "error"))
			printf("  last poll: %s\n", weftctl_jstr(s, "error"));
	}
}

static void show_sync(const json_t *o)
{
	printf("polling %lld head(s) now\n", weftctl_jint(o, "polling"));
}

static void show_unsub(const json_t *o)
{
	(void)o;
	printf("unsubscribed\n");
}

static int post(struct weftctl *ctx, const char *path, const char *key, const char *val,
		void (*render)(const json_t *reply))
{
	json_t *body = val ? json_pack("{s:s}", key, val) : json_object();
	int rc = weftctl_show(ctx, "POST", path, body, render);

	json_decref(body);
	return rc;
}

int weftctl_content_heads(struct weftctl *ctx, int argc, char **argv)
{
	const char *verb = argv[1];

	if (!strcmp(verb, "link") && argc == 3)
		return post(ctx, "/v1/content/link", "ref", argv[2], show_ref);
	if (!strcmp(verb, "subscribe") && argc == 3)
		return post(ctx, "/v1/content/subscribe", "head", argv[2], show_sub);
	if (!strcmp(verb, "subscribe") && argc == 4 &&
	    (!strcmp(argv[2], "--blocklist") || !strcmp(argv[3], "--blocklist"))) {
		json_t *body = json_pack("{s:s,s:b}", "head",
					 argv[!strcmp(argv[2], "--blocklist") ? 3 : 2], "blocklist", 1);
		int rc = weftctl_show(ctx, "POST", "/v1/content/subscribe", body, show_sub);

		json_decref(body);
		return rc;
	}
	if (!strcmp(verb, "unsubscribe") && argc == 3)
		return post(ctx, "/v1/content/unsubscribe", "head", argv[2], show_unsub);
	if (!strcmp(verb, "subscriptions") && argc == 2)
		return weftctl_show(ctx, "GET", "/v1/content/subscriptions", NULL, show_subs);
	if (!strcmp(verb, "sync") && argc <= 3)
		return post(ctx, "/v1/content/sync", "head", argc == 3 ? argv[2] : NULL, show_sync);
	return weftctl_usage(ctx);
}
