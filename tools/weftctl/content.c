// SPDX-License-Identifier: MIT
/*
 * weftctl content add [--name NAME] [--community ID] [--private [--to KEY[,KEY...]]... [--to-circle NAME]...] PATH...
 * weftctl content rewrap|reencrypt NAME [--to KEY[,KEY...]]... [--to-circle NAME]... [--to-group GROUP]...
 * weftctl content ls
 * weftctl content get ID [--out DIR [--link]] [--from TARGET]... [--raw] [--no-wait]
 * weftctl content jobs [N]
 * weftctl content stats
 * weftctl content limits ..., content peers: content_serve.c
 * API: /v1/content/... (docs/CONTENT.md, "Control API").
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weftctl.h"

static void print_share(json_t *o)
{
	json_t *it;
	size_t i;
	char b[32];

	printf("share      %s\nname       %s\npublisher  %s\nseq        %lld\nvisibility %s\n",
	       weftctl_jstr(o, "share_id"), weftctl_jstr(o, "name"), weftctl_jstr(o, "publisher"), weftctl_jint(o, "seq"),
	       weftctl_jstr(o, "visibility"));
	printf("\n%-64s %10s  %-24s %s\n", "CONTENT ID", "SIZE", "TYPE", "PATH");
	json_array_foreach(json_object_get(o, json_object_get(o, "opened") ? "opened" : "items"), i, it)
	    printf("%-64s %10s  %-24s %s\n", weftctl_jstr(it, "id"),
		   weftctl_fmt_bytes((double)weftctl_jint(it, "size"), b, sizeof(b)), weftctl_jstr(it, "type"),
		   weftctl_jstr(it, "path"));
}

/* content add --community ID: the published share's head bound to the
 * community (POST /v1/community/ID/shares); the answer gets "community". */
static int bind_community(struct weftctl *ctx, const char *comm, json_t *share)
{
	char path[160], head[256];
	json_t *body, *rec = NULL;
	int rc;

	snprintf(path, sizeof(path), "/v1/community/%s/shares", comm);
	snprintf(head, sizeof(head), "%s/%s", weftctl_jstr(share, "publisher"),
		 weftctl_jstr(share, "name"));
	body = json_pack("{s:s}", "head", head);
	rc = weftctl_do(ctx, "POST", path, body, &rec);
	json_decref(body);
	if (rc != WEFTCTL_OK)
		fprintf(stderr, "weftctl: share %s published but not bound to community %s: bind "
				"it with\n  weftctl community share %s %s\n",
			weftctl_jstr(share, "share_id"), comm, comm, head);
	else if (!ctx->json)
		printf("community  %s (%s)\n", comm, weftctl_jstr(rec, "link"));
	if (rec)
		json_object_set_new(share, "community", json_string(comm));
	json_decref(rec);
	return rc;
}

/* --to KEY[,KEY...]: each key appended to "to" (the daemon checks them). */
static int add_keys(json_t *to, const char *list)
{
	char buf[64 * 1024];
	char *save = NULL, *k;

	if (strlen(list) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", list);
	for (k = strtok_r(buf, ",", &save); k; k = strtok_r(NULL, ",", &save))
		json_array_append_new(to, json_string(k));
	return 0;
}

/* Recipient options at argv[*i] (--to, --to-circle, --to-group), appended
 * to r[0] (keys), r[1] (circles), r[2] (groups): 1 taken (*i moved past
 * its value), 0 not one of them, -1 bad. */
static int rcpt_opt(json_t *r[3], int argc, char **argv, int *i)
{
	static const char *const opt[3] = {"--to", "--to-circle", "--to-group"};

	for (int k = 0; k < 3; k++) {
		if (strcmp(argv[*i], opt[k]) || *i + 1 >= argc)
			continue;
		++*i;
		if (k == 0)
			return add_keys(r[0], argv[*i]) ? -1 : 1;
		json_array_append_new(r[k], json_string(argv[*i]));
		return 1;
	}
	return 0;
}

/* Set "to", "to_circle", "to_group" of body from r (when not empty) and
 * release r. */
static void rcpt_set(json_t *body, json_t *r[3])
{
	static const char *const key[3] = {"to", "to_circle", "to_group"};

	for (int k = 0; k < 3; k++) {
		if (body && json_array_size(r[k]))
			json_object_set(body, key[k], r[k]);
		json_decref(r[k]);
	}
}

static int cmd_add(struct weftctl *ctx, int argc, char **argv)
{
	json_t *paths = json_array(), *r[3] = {json_array(), json_array(), json_array()}, *body,
	       *out = NULL;
	const char *name = NULL, *comm = NULL;
	char cpath[160];
	int priv = 0, rc, t;

	for (int i = 2; i < argc; i++) {
		char abs[PATH_MAX];

		if (!strcmp(argv[i], "--name") && i + 1 < argc) {
			name = argv[++i];
		} else if (!strcmp(argv[i], "--community") && i + 1 < argc) {
			comm = argv[++i];
		} else if (!strcmp(argv[i], "--private")) {
			priv = 1;
		} else if ((t = rcpt_opt(r, argc, argv, &i))) {
			if (t < 0)
				goto usage;
		} else if (argv[i][0] == '-') {
			goto usage;
		} else {
			if (!realpath(argv[i], abs)) {
				fprintf(stderr, "weftctl: %s: %m\n", argv[i]);
				json_decref(paths);
				rcpt_set(NULL, r);
				return WEFTCTL_ERR;
			}
			json_array_append_new(paths, json_string(abs));
		}
	}
	if (!json_array_size(paths) ||
	    (!priv && (json_array_size(r[0]) || json_array_size(r[1]) || json_array_size(r[2])))) {
		if (!priv && json_array_size(paths))
			fprintf(stderr, "weftctl: --to, --to-circle and --to-group need --private\n");
		goto usage;
	}
	if (comm && priv) {
		fprintf(stderr, "weftctl: --community binds public shares only\n");
		goto usage;
	}
	/* A community we are not a member of fails before anything is published. */
	if (comm && (snprintf(cpath, sizeof(cpath), "/v1/community/%s", comm) >= (int)sizeof(cpath) ||
		     weftctl_do(ctx, "GET", cpath, NULL, &out) != WEFTCTL_OK)) {
		json_decref(paths);
		rcpt_set(NULL, r);
		return WEFTCTL_ERR;
	}
	json_decref(out);
	out = NULL;
	body = json_pack("{s:o,s:b}", "paths", paths, "private", priv);
	if (name)
		json_object_set_new(body, "name", json_string(name));
	rcpt_set(body, r);
	rc = weftctl_do(ctx, "POST", "/v1/content/add", body, ctx->json && !comm ? NULL : &out);
	json_decref(body);
	if (rc == WEFTCTL_OK && comm)
		rc = bind_community(ctx, comm, out);
	if (rc == WEFTCTL_OK && out && ctx->json) {
		weftctl_print_json(out);
	} else if (rc == WEFTCTL_OK && out) {
		print_share(out);
		if (json_is_true(json_object_get(out, "sealed")))
			printf("\nprivate: encrypted; sealed to %lld keys (this node's included). "
			       "Hosts seed the ciphertext; recipients fetch it with\n  weftctl "
			       "content get %s --out DIR\n",
			       weftctl_jint(out, "keys"), weftctl_jstr(out, "share_id"));
	}
	json_decref(out);
	return rc;
usage:
	json_decref(paths);
	rcpt_set(NULL, r);
	return weftctl_usage(ctx);
}

/* content rewrap|reencrypt NAME [recipient options]: the next version of
 * private share NAME for the recipients named (docs/PRIVATE.md
 * "Revocation"). */
static int cmd_revoke(struct weftctl *ctx, int argc, char **argv)
{
	json_t *r[3] = {json_array(), json_array(), json_array()}, *body, *out = NULL;
	int reenc = !strcmp(argv[1], "reencrypt"), rc, t;
	char path[64];

	if (argc < 3 || argv[2][0] == '-')
		goto usage;
	for (int i = 3; i < argc; i++)
		if ((t = rcpt_opt(r, argc, argv, &i)) <= 0)
			goto usage;
	body = json_pack("{s:s}", "name", argv[2]);
	rcpt_set(body, r);
	snprintf(path, sizeof(path), "/v1/content/%s", argv[1]);
	rc = weftctl_do(ctx, "POST", path, body, ctx->json ? NULL : &out);
	json_decref(body);
	if (rc == WEFTCTL_OK && out) {
		print_share(out);
		printf("\n%s: version %lld sealed to %lld keys (this node's included)%s\n",
		       reenc ? "re-encrypted" : "re-wrapped", weftctl_jint(out, "seq"),
		       weftctl_jint(out, "keys"),
		       reenc ? "; earlier versions withdrawn: hosts stop serving them" : "");
	}
	json_decref(out);
	return rc;
usage:
	rcpt_set(NULL, r);
	return weftctl_usage(ctx);
}

static int cmd_ls(struct weftctl *ctx)
{
	json_t *out = NULL, *o;
	size_t i;
	char b[32], q[32];
	int rc;

	rc = weftctl_do(ctx, "GET", "/v1/content", NULL, ctx->json ? NULL : &out);
	if (rc || !out)
		return rc;
	printf("%-64s %10s %9s  %s\n", "CONTENT ID", "SIZE", "CHUNKS", "STATE");
	json_array_foreach(json_object_get(out, "blobs"), i, o)
	    printf("%-64s %10s %4lld/%-4lld  %s\n", weftctl_jstr(o, "id"),
		   weftctl_fmt_bytes((double)weftctl_jint(o, "size"), b, sizeof(b)), weftctl_jint(o, "have"),
		   weftctl_jint(o, "nchunks"), weftctl_jstr(o, "state"));
	printf("\n%-40s %-24s %5s %6s  %s\n", "SHARE ID", "NAME", "SEQ", "ITEMS", "VISIBILITY");
	json_array_foreach(json_object_get(out, "shares"), i, o)
	    printf("%-40s %-24s %5lld %6lld  %s\n", weftctl_jstr(o, "share_id"), weftctl_jstr(o, "name"),
		   weftctl_jint(o, "seq"), weftctl_jint(o, "nitems"), weftctl_jstr(o, "visibility"));
	o = json_object_get(out, "usage");
	printf("\nstore: %s of %s in %lld blobs\n",
	       weftctl_fmt_bytes((double)weftctl_jint(o, "used"), b, sizeof(b)),
	       weftctl_fmt_bytes((double)weftctl_jint(o, "quota"), q, sizeof(q)), weftctl_jint(o, "blobs"));
	json_decref(out);
	return WEFTCTL_OK;
}

static int count_up(json_t *job)
{
	json_t *p;
	size_t i;
	int n = 0;

	json_array_foreach(json_object_get(job, "providers"), i, p) n +=
	    !strcmp(weftctl_jstr(p, "state"), "up") && weftctl_jint(p, "chunks") >= 0;
	return n;
}

/* One progress line: a bar with rate, ETA and providers on a TTY (redrawn
 * in place), a plain line otherwise (kind first: "progress", "done", ...).
 * eta < 0: unknown. */
static void bar_line(int tty, const char *kind, long long done, long long total, long long rate,
		     long long eta, long long providers, long long bad)
{
	char b1[32], b2[32], b3[32], bar[31], etas[32];
	int pct = total ? (int)(done * 100 / total) : 0, fill;

	if (pct > 100)
		pct = 100;
	fill = pct * 30 / 100;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(30 - fill));
	bar[30] = 0;
	weftctl_fmt_bytes((double)done, b1, sizeof(b1));
	weftctl_fmt_bytes((double)total, b2, sizeof(b2));
	weftctl_fmt_bytes((double)rate, b3, sizeof(b3));
	if (eta >= 0)
		snprintf(etas, sizeof(etas), "%lldm%02llds", eta / 60, eta % 60);
	else
		snprintf(etas, sizeof(etas), "-");
	if (tty)
		printf("\r[%s] %3d%% %s/%s %s/s ETA %s, %lld providers, %lld bad   ", bar, pct, b1,
		       b2, b3, etas, providers, bad);
	else
		printf("%s %d%% %lld/%lld bytes rate %lld B/s eta %s providers %lld bad %lld\n",
		       kind, pct, done, total, rate, etas, providers, bad);
	fflush(stdout);
}

/* The same from a job's JSON (polling, and the last line). */
static void progress(json_t *job, int tty)
{
	long long total = weftctl_jint(job, "total_bytes"), done = weftctl_jint(job, "done_bytes");
	long long rate = weftctl_jint(job, "rate_bps");

	if (!total)
		total = weftctl_jint(job, "size");
	bar_line(tty, "progress", done, total, rate,
		 rate && total > done ? (total - done) / rate : -1, count_up(job),
		 weftctl_jint(job, "bad_chunks"));
}

/* The event stream of one job (GET /v1/content/events?job=N): a bar on a
 * terminal, a plain line every 4 events (2 s) otherwise. */
struct get_watch {
	int tty, quiet, over;
	unsigned int n;
};

static int on_event(void *arg, json_t *ev)
{
	struct get_watch *gw = arg;
	const char *kind = weftctl_jstr(ev, "event");
	int end = strcmp(kind, "progress") != 0;

	if (!strcmp(kind, "heartbeat"))
		return 0;
	if (!strcmp(kind, "dropped")) {
		fprintf(stderr, "weftctl: progress stream dropped by weftd: %s\n",
			weftctl_jstr(ev, "error"));
		return 1;
	}
	if (end)
		gw->over = 1;
	if (gw->quiet || (!gw->tty && !end && gw->n++ % 4))
		return end;
	bar_line(gw->tty, kind, weftctl_jint(ev, "done_bytes"), weftctl_jint(ev, "total_bytes"),
		 weftctl_jint(ev, "rate_bps"), weftctl_jint(ev, "eta_s"),
		 weftctl_jint(ev, "providers"), weftctl_jint(ev, "bad_chunks"));
	return end;
}

static int cmd_get(struct weftctl *ctx, int argc, char **argv)
{
	json_t *from = json_array(), *items = json_array(), *body, *out = NULL;
	const char *id = NULL;
	char outdir[PATH_MAX] = "", path[64];
	int nowait = 0, link = 0, raw = 0, rc, tty = isatty(1), ticks = 0;
	long long jid;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--out") && i + 1 < argc) {
			char cwd[PATH_MAX];

			/* The daemon creates it; it needs an absolute path. */
			i++;
			if (argv[i][0] == '/')
				snprintf(outdir, sizeof(outdir), "%s", argv[i]);
			else if (getcwd(cwd, sizeof(cwd)))
				snprintf(outdir, sizeof(outdir), "%.2047s/%.2047s", cwd, argv[i]);
		} else if (!strcmp(argv[i], "--from") && i + 1 < argc) {
			json_array_append_new(from, json_string(argv[++i]));
		} else if (!strcmp(argv[i], "--item") && i + 1 < argc) {
			json_array_append_new(items, json_string(argv[++i]));
		} else if (!strcmp(argv[i], "--no-wait")) {
			nowait = 1;
		} else if (!strcmp(argv[i], "--link")) {
			link = 1;
		} else if (!strcmp(argv[i], "--raw")) {
			raw = 1;
		} else if (argv[i][0] != '-' && !id) {
			id = argv[i];
		} else {
			json_decref(from);
			json_decref(items);
			return weftctl_usage(ctx);
		}
	}
	/* a content id, a share id, or a share head (KEY/NAME, magnet) */
	if (!id || (strlen(id) != 64 && strlen(id) != 40 && !strchr(id, '/') &&
		    strncmp(id, "magnet:", 7))) {
		json_decref(from);
		json_decref(items);
		return weftctl_usage(ctx);
	}
	body = json_pack("{s:s,s:o}", "id", id, "from", from);
	if (json_array_size(items))
		json_object_set(body, "items", items);
	json_decref(items);
	if (outdir[0])
		json_object_set_new(body, "out", json_string(outdir));
	if (link)
		json_object_set_new(body, "link", json_true());
	if (raw)
		json_object_set_new(body, "raw", json_true());
	rc = weftctl_do(ctx, "POST", "/v1/content/get", body, &out);
	json_decref(body);
	if (rc)
		return rc;
	jid = weftctl_jint(out, "job");
	json_decref(out);
	if (nowait) {
		if (ctx->json)
			printf("{\"job\": %lld}\n", jid);
		else
			printf("job %lld\n", jid);
		return WEFTCTL_OK;
	}
	/* Progress from the event stream; polling when the daemon has none. */
	{
		struct get_watch gw = {.tty = tty, .quiet = ctx->json};
		char epath[64];

		snprintf(epath, sizeof(epath), "/v1/content/events?job=%lld", jid);
		if (weftctl_stream(ctx, epath, on_event, &gw) == 200 && gw.over)
			ticks = -1;
	}
	snprintf(path, sizeof(path), "/v1/content/jobs/%lld", jid);
	for (;;) {
		out = NULL;
		rc = weftctl_do(ctx, "GET", path, NULL, &out);
		if (rc)
			return rc;
		if (weftctl_jtrue(out, "done"))
			break;
		if (!ctx->json && ticks >= 0 && (tty || ticks % 20 == 0))
			progress(out, tty);
		json_decref(out);
		if (ticks >= 0)
			ticks++;
		usleep(100 * 1000);
	}
	if (ctx->json) {
		weftctl_print_json(out);
	} else {
		char b[32];

		if (ticks >= 0)
			progress(out, tty);
		if (tty)
			printf("\n");
		if (!strcmp(weftctl_jstr(out, "state"), "done"))
			printf("done: %s, %lld chunks fetched, %lld already held, %lld bad chunks "
			       "rejected, %.1f s%s%s\n",
			       weftctl_fmt_bytes((double)weftctl_jint(out, "done_bytes"), b, sizeof(b)),
			       weftctl_jint(out, "fetched"), weftctl_jint(out, "resumed"), weftctl_jint(out, "bad_chunks"),
			       (double)weftctl_jint(out, "elapsed_ms") / 1000.0, outdir[0] ? " -> " : "",
			       outdir);
	}
	rc = strcmp(weftctl_jstr(out, "state"), "done") ? WEFTCTL_ERR : WEFTCTL_OK;
	if (rc && !strcmp(weftctl_jstr_or(out, "error_code", ""), "not_a_recipient"))
		rc = WEFTCTL_NOT_RECIPIENT;
	if (rc && !ctx->json)
		fprintf(stderr, "weftctl: download failed (%s): %s\n",
			weftctl_jstr_or(out, "error_code", "error"), weftctl_jstr(out, "error"));
	json_decref(out);
	return rc;
}

static void print_job(json_t *o)
{
	json_t *p;
	size_t i;
	char wb[32];

	/* wasted: chunk answers received and dropped (docs/CONTENT.md) */
	printf("job %lld %s %s: %s, %lld/%lld chunks, fetched %lld, resumed %lld, bad %lld, "
	       "retries %lld, wasted %s%s%s\n",
	       weftctl_jint(o, "job"), weftctl_jstr(o, "kind"), weftctl_jstr(o, "id"), weftctl_jstr(o, "state"), weftctl_jint(o, "have"),
	       weftctl_jint(o, "nchunks"), weftctl_jint(o, "fetched"), weftctl_jint(o, "resumed"), weftctl_jint(o, "bad_chunks"),
	       weftctl_jint(o, "retries"), weftctl_fmt_bytes((double)weftctl_jint(o, "wasted_bytes"), wb, sizeof(wb)),
	       *weftctl_jstr(o, "error") ? ": " : "", weftctl_jstr(o, "error"));
	json_array_foreach(json_object_get(o, "providers"), i, p)
	    printf("  %-46s %-10s score %4lld chunks %6lld faults %3lld timeouts %3lld\n",
		   weftctl_jstr(p, "addr"), weftctl_jstr(p, "state"), weftctl_jint(p, "score"), weftctl_jint(p, "chunks"),
		   weftctl_jint(p, "faults"), weftctl_jint(p, "timeouts"));
}

static int cmd_jobs(struct weftctl *ctx, int argc, char **argv)
{
	json_t *out = NULL, *o;
	char path[64];
	size_t i;
	int rc;

	if (argc > 2)
		snprintf(path, sizeof(path), "/v1/content/jobs/%s", argv[2]);
	else
		snprintf(path, sizeof(path), "/v1/content/jobs");
	rc = weftctl_do(ctx, "GET", path, NULL, ctx->json ? NULL : &out);
	if (rc || !out)
		return rc;
	if (argc > 2)
		print_job(out);
	else
		json_array_foreach(json_object_get(out, "jobs"), i, o) print_job(o);
	json_decref(out);
	return WEFTCTL_OK;
}

static int cmd_stats(struct weftctl *ctx)
{
	static const char *const bytes_keys[] = {"used", "quota", NULL};
	json_t *out = NULL;
	int rc;

	rc = weftctl_do(ctx, "GET", "/v1/content/stats", NULL, ctx->json ? NULL : &out);
	if (rc || !out)
		return rc;
	weftctl_print_kv(out, bytes_keys);
	json_decref(out);
	return WEFTCTL_OK;
}

/* content rm|pin|unpin ID */
static int cmd_id(struct weftctl *ctx, const char *verb, const char *id)
{
	json_t *body, *out = NULL;
	char path[64];
	int rc;

	if (strlen(id) != 64 && strlen(id) != 40)
		return weftctl_usage(ctx);
	snprintf(path, sizeof(path), "/v1/content/%s", verb);
	body = json_pack("{s:s}", "id", id);
	rc = weftctl_do(ctx, "POST", path, body, ctx->json ? NULL : &out);
	json_decref(body);
	if (rc || !out)
		return rc;
	if (!strcmp(verb, "rm"))
		printf("removed %s %s (%lld blobs deleted, no longer announced)\n",
		       weftctl_jstr(out, "kind"), id, weftctl_jint(out, "blobs"));
	else
		printf("%s %s\n", weftctl_jtrue(out, "pinned") ? "pinned" : "unpinned", id);
	json_decref(out);
	return WEFTCTL_OK;
}

static void print_pins(const json_t *o)
{
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(o, "pins"), i, p)
	    printf("%-7s %s\n", weftctl_jstr(p, "kind"), weftctl_jstr(p, "id"));
}

/* content cancel JOB */
static int cmd_cancel(struct weftctl *ctx, const char *job)
{
	json_t *body, *out = NULL;
	char *end;
	long long jid = strtoll(job, &end, 10);
	int rc;

	if (*end || jid <= 0)
		return weftctl_usage(ctx);
	body = json_pack("{s:I}", "job", (json_int_t)jid);
	rc = weftctl_do(ctx, "POST", "/v1/content/cancel", body, ctx->json ? NULL : &out);
	json_decref(body);
	if (rc || !out)
		return rc;
	printf("job %lld cancelled%s\n", jid,
	       weftctl_jtrue(out, "partial_deleted") ? ", its partial download deleted" : "");
	json_decref(out);
	return WEFTCTL_OK;
}

int weftctl_content(struct weftctl *ctx, int argc, char **argv)
{
	if (argc < 2)
		return weftctl_usage(ctx);
	if (!strcmp(argv[1], "add"))
		return cmd_add(ctx, argc, argv);
	if (!strcmp(argv[1], "rewrap") || !strcmp(argv[1], "reencrypt"))
		return cmd_revoke(ctx, argc, argv);
	if (!strcmp(argv[1], "ls") && argc == 2)
		return cmd_ls(ctx);
	if (!strcmp(argv[1], "get"))
		return cmd_get(ctx, argc, argv);
	if (!strcmp(argv[1], "jobs") && argc <= 3)
		return cmd_jobs(ctx, argc, argv);
	if (!strcmp(argv[1], "stats") && argc == 2)
		return cmd_stats(ctx);
	if (!strcmp(argv[1], "limits") || !strcmp(argv[1], "peers"))
		return weftctl_content_serve(ctx, argc, argv);
	if ((!strcmp(argv[1], "rm") || !strcmp(argv[1], "pin") || !strcmp(argv[1], "unpin")) &&
	    argc == 3)
		return cmd_id(ctx, argv[1], argv[2]);
	if (!strcmp(argv[1], "pins") && argc == 2)
		return weftctl_show(ctx, "GET", "/v1/content/pins", NULL, print_pins);
	if (!strcmp(argv[1], "cancel") && argc == 3)
		return cmd_cancel(ctx, argv[2]);
	if (!strcmp(argv[1], "search"))
		return weftctl_content_search(ctx, argc, argv);
	return weftctl_content_heads(ctx, argc, argv); /* heads.c, or usage */
}
