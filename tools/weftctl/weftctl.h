/* SPDX-License-Identifier: MIT */
/*
 * weftctl: `weftctl [--socket PATH] [--json] <noun> <verb> ...`.
 * Each noun lives in its own file (weftctl_<noun>()); main.c lists them all
 * in one table with their usage lines, used for dispatch and for --help.
 * Exit codes: 0 ok, 1 error, 2 usage.
 */
#ifndef WEFTCTL_H
#define WEFTCTL_H

#include <stdio.h>

#include <jansson.h>

/* Exit codes: 3 is a download of a sealed share this node cannot open
 * (error code not_a_recipient), so scripts can tell it from a failure. */
enum { WEFTCTL_OK = 0, WEFTCTL_ERR = 1, WEFTCTL_USAGE = 2, WEFTCTL_NOT_RECIPIENT = 3 };

struct weftctl_noun;

struct weftctl {
	const char *socket;		 /* control socket path */
	int json;			 /* --json: print the API's JSON as is */
	const struct weftctl_noun *noun; /* the noun being run */
};

/* A noun: argv[0] is the noun, its verb and arguments follow; returns an
 * exit code. */
typedef int (*weftctl_noun_fn)(struct weftctl *ctx, int argc, char **argv);

struct weftctl_noun {
	const char *name;
	weftctl_noun_fn run;
	const char *usage; /* one or more lines: "ban add CIDR [--ttl S]\n..." */
};

/* The nouns (one file each; main.c's table). */
int weftctl_ban(struct weftctl *ctx, int argc, char **argv);
int weftctl_content(struct weftctl *ctx, int argc, char **argv);
int weftctl_community(struct weftctl *ctx, int argc, char **argv);
/* content link|subscribe|subscriptions|unsubscribe|sync (heads.c) */
int weftctl_content_heads(struct weftctl *ctx, int argc, char **argv);
/* search.c: `content search WORDS... [--share S] [--type T] [--page N]`. */
int weftctl_content_search(struct weftctl *ctx, int argc, char **argv);
/* content_serve.c: `content limits` and `content peers` (argv as weftctl_content's). */
int weftctl_content_serve(struct weftctl *ctx, int argc, char **argv);
/* A rate ("100Mbit", "12M", "500k", "off") into bytes/s: 0 or -EINVAL. */
int weftctl_parse_rate(const char *s, unsigned long long *out);
int weftctl_dht(struct weftctl *ctx, int argc, char **argv);
int weftctl_hash(struct weftctl *ctx, int argc, char **argv);
int weftctl_io(struct weftctl *ctx, int argc, char **argv);
int weftctl_lan(struct weftctl *ctx, int argc, char **argv);
/* mesh.c: `mesh announce|query|revoke` (docs/MESH.md). */
int weftctl_mesh(struct weftctl *ctx, int argc, char **argv);
/* msg.c: `msg send|inbox|read|rm|fetch|status` (docs/MAILBOX.md). */
int weftctl_msg(struct weftctl *ctx, int argc, char **argv);
int weftctl_node(struct weftctl *ctx, int argc, char **argv);
int weftctl_quic(struct weftctl *ctx, int argc, char **argv);
int weftctl_relay(struct weftctl *ctx, int argc, char **argv);
int weftctl_share(struct weftctl *ctx, int argc, char **argv);
/* circle.c: `circle set|ls|rm`, local recipient lists. */
int weftctl_circle(struct weftctl *ctx, int argc, char **argv);
/* group.c: `group create|add|rm|ls|join|leave`. */
int weftctl_group(struct weftctl *ctx, int argc, char **argv);
int weftctl_metrics(struct weftctl *ctx, int argc, char **argv);
int weftctl_status(struct weftctl *ctx, int argc, char **argv);
int weftctl_svc(struct weftctl *ctx, int argc, char **argv);
/* svc_stream.c: weftctl svc stream NAME METHOD (stdin/stdout as the stream). */
int weftctl_svc_stream(struct weftctl *ctx, int argc, char **argv);
int weftctl_xdp(struct weftctl *ctx, int argc, char **argv);

/* ---- client.c: the control API ---- */

/*
 * One HTTP request to the daemon. body may be NULL (borrowed). On success
 * returns the HTTP status (>= 100) and sets *out to the parsed JSON reply (or
 * NULL if the reply was not JSON; caller json_decref()s). On failure to talk
 * to the daemon prints a clear message and returns a negative errno.
 */
int weftctl_call(struct weftctl *ctx, const char *method, const char *path, json_t *body,
		 json_t **out);
/* Text of a non-JSON reply (e.g. /metrics): malloc'd string in *out. */
int weftctl_call_text(struct weftctl *ctx, const char *path, char **out);

/*
 * Convenience: call, and on HTTP >= 400 print "weftctl: <message>" from the
 * JSON error and return WEFTCTL_ERR; on transport failure WEFTCTL_ERR;
 * otherwise WEFTCTL_OK with *out set (or printed and freed when out is NULL
 * and --json is set).
 */
int weftctl_do(struct weftctl *ctx, const char *method, const char *path, json_t *body,
	       json_t **out);

/*
 * A stream of JSON lines (GET path): fn(arg, event) for each object line,
 * until fn returns non-zero, the daemon ends the stream, or 30 s pass
 * without a byte. Returns the HTTP status, -EPROTO (an error status: the
 * stream was not started), or a negative errno when the daemon cannot be
 * reached (message printed).
 */
int weftctl_stream(struct weftctl *ctx, const char *path, int (*fn)(void *arg, json_t *ev),
		   void *arg);

/* weftctl_do, then weftctl_print the reply. Returns WEFTCTL_OK or WEFTCTL_ERR. */
int weftctl_show(struct weftctl *ctx, const char *method, const char *path, json_t *body,
		 void (*render)(const json_t *reply));

/* ---- json.c: output helpers shared by every noun ---- */

/* Print the reply (owned: freed): the JSON as is with --json or without a
 * render, else render(reply) (a human table). Returns WEFTCTL_OK. */
int weftctl_print(struct weftctl *ctx, json_t *reply, void (*render)(const json_t *reply));
void weftctl_print_json(const json_t *j);
/* Fields of a JSON object (o may be NULL): the integer, the real (0 if
 * absent), whether it is true, the string ("-" if absent; dflt if absent). */
long long weftctl_jint(const json_t *o, const char *key);
double weftctl_jreal(const json_t *o, const char *key);
int weftctl_jtrue(const json_t *o, const char *key);
const char *weftctl_jstr(const json_t *o, const char *key);
const char *weftctl_jstr_or(const json_t *o, const char *key, const char *dflt);
/* Each line of text to out, after prefix. */
void weftctl_print_lines(FILE *out, const char *prefix, const char *text);
/* Print "usage: weftctl <line>" for each usage line of the noun being run
 * to stderr; returns WEFTCTL_USAGE. */
int weftctl_usage(const struct weftctl *ctx);
/* Human-readable byte count into buf. */
const char *weftctl_fmt_bytes(double b, char *buf, size_t len);
/* A flat object's members, a line each, keys aligned: integers as they
 * are (a byte count, a key ending in "_bytes" or named in bytes_keys, a
 * NULL-ended list, followed by its human form), booleans yes / no,
 * strings as they are, reals %g, anything else as compact JSON. */
void weftctl_print_kv(const json_t *o, const char *const *bytes_keys);

#endif
