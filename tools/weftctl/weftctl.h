/* SPDX-License-Identifier: MIT */
/*
 * weftctl: `weftctl [--socket PATH] [--json] <noun> <verb> ...`.
 * Each noun lives in its own file and registers itself with WEFTCTL_NOUN();
 * no central table to edit. Exit codes: 0 ok, 1 error, 2 usage.
 */
#ifndef WEFTCTL_H
#define WEFTCTL_H

#include <jansson.h>

enum { WEFTCTL_OK = 0, WEFTCTL_ERR = 1, WEFTCTL_USAGE = 2 };

struct weftctl {
	const char *socket; /* control socket path */
	int json;           /* --json: print the API's JSON as is */
};

struct weftctl_noun {
	const char *name;
	const char *usage;  /* one or more lines: "ban add CIDR [--ttl S]\n..." */
	int (*run)(struct weftctl *ctx, int argc, char **argv); /* argv[0] = noun */
	int needs_daemon;   /* 0 for standalone commands (hash) */
};

#define WEFTCTL_NOUN(ident, ...)                                                        \
	static const struct weftctl_noun weftctl_noun_##ident                            \
		__attribute__((used, section("weftctl_nouns"), aligned(sizeof(void *)))) = \
			{ __VA_ARGS__ }

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

/* weftctl_do, then print the reply: the JSON as is with --json, else
 * render(reply) (a human table). Returns WEFTCTL_OK or WEFTCTL_ERR. */
int weftctl_show(struct weftctl *ctx, const char *method, const char *path, json_t *body,
		 void (*render)(const json_t *reply));

void weftctl_print_json(const json_t *j);
/* Field of a JSON object: the integer (0 if absent), the string ("-" if absent). */
long long weftctl_jint(const json_t *o, const char *key);
const char *weftctl_jstr(const json_t *o, const char *key);
/* Print "usage: weftctl <usage line>" of a noun to stderr; returns WEFTCTL_USAGE. */
int weftctl_usage(const char *noun_usage);
/* Human-readable byte count / duration into buf. */
const char *weftctl_fmt_bytes(double b, char *buf, size_t len);

#endif
