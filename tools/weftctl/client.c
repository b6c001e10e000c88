// SPDX-License-Identifier: MIT
/*
 * HTTP over the control socket with libcurl (CURLOPT_UNIX_SOCKET_PATH).
 *
 * libcurl is loaded at the first request (dlopen), not linked: it brings
 * about thirty shared libraries (GnuTLS, OpenSSL, Kerberos, LDAP, ...) and
 * their constructors, 3.4 ms of weftctl's 4.7 ms start on the Intel Xeon
 * host and ~14 ms on the AMD Zen 5 guest, paid until now by commands that
 * never talk to weftd (`weftctl hash`, `keygen`, `--help`). Its soname,
 * libcurl.so.4, has not changed since 2006; debian/control names the
 * package, which dpkg-shlibdeps cannot see through dlopen.
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weftctl.h"

#define WEFTCTL_LIBCURL "libcurl.so.4"

static struct {
	int state; /* 0 not tried yet, 1 loaded, -1 could not be */
	CURL *(*init)(void);
	CURLcode (*setopt)(CURL *c, CURLoption o, ...);
	CURLcode (*perform)(CURL *c);
	CURLcode (*getinfo)(CURL *c, CURLINFO i, ...);
	void (*cleanup)(CURL *c);
	const char *(*strerror)(CURLcode rc);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
} lc;

/* libcurl's functions in lc: 0, or -ENOSYS (said on stderr, once). */
static int curl_load(void)
{
	void *h;

	if (lc.state)
		return lc.state > 0 ? 0 : -ENOSYS;
	lc.state = -1;
	h = dlopen(WEFTCTL_LIBCURL, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "weftctl: cannot load %s (%s): install libcurl4\n", WEFTCTL_LIBCURL,
			dlerror());
		return -ENOSYS;
	}
	lc.init = (CURL * (*)(void)) dlsym(h, "curl_easy_init");
	lc.setopt = (CURLcode(*)(CURL *, CURLoption, ...))dlsym(h, "curl_easy_setopt");
	lc.perform = (CURLcode(*)(CURL *))dlsym(h, "curl_easy_perform");
	lc.getinfo = (CURLcode(*)(CURL *, CURLINFO, ...))dlsym(h, "curl_easy_getinfo");
	lc.cleanup = (void (*)(CURL *))dlsym(h, "curl_easy_cleanup");
	lc.strerror = (const char *(*)(CURLcode))dlsym(h, "curl_easy_strerror");
	lc.slist_append = (struct curl_slist * (*)(struct curl_slist *, const char *))
	    dlsym(h, "curl_slist_append");
	lc.slist_free_all = (void (*)(struct curl_slist *))dlsym(h, "curl_slist_free_all");
	if (!lc.init || !lc.setopt || !lc.perform || !lc.getinfo || !lc.cleanup || !lc.strerror ||
	    !lc.slist_append || !lc.slist_free_all) {
		fprintf(stderr, "weftctl: %s lacks the functions weftctl calls\n", WEFTCTL_LIBCURL);
		dlclose(h);
		return -ENOSYS;
	}
	lc.state = 1; /* kept loaded until exit */
	return 0;
}

/* Replies larger than this are refused: the API never sends that much. */
#define WEFTCTL_MAX_REPLY (64U << 20)

struct buf {
	char *p;
	size_t len;
	int overflow;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;
	char *np;

	if (b->len + n > WEFTCTL_MAX_REPLY) {
		b->overflow = 1;
		return 0;
	}
	np = realloc(b->p, b->len + n + 1);
	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->len, ptr, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* A handle for path on weftd's socket whose body goes to fn(ud): NULL
 * with *err set (libcurl not loaded, no memory). */
static CURL *easy_new(struct weftctl *ctx, const char *path, curl_write_callback fn, void *ud,
		      int *err)
{
	char url[2048];
	CURL *c;

	*err = curl_load();
	if (*err)
		return NULL;
	c = lc.init();
	if (!c) {
		*err = -ENOMEM;
		return NULL;
	}
	snprintf(url, sizeof(url), "http://weftd%s", path);
	lc.setopt(c, CURLOPT_UNIX_SOCKET_PATH, ctx->socket);
	lc.setopt(c, CURLOPT_URL, url); /* copied by libcurl */
	lc.setopt(c, CURLOPT_WRITEFUNCTION, fn);
	lc.setopt(c, CURLOPT_WRITEDATA, ud);
	lc.setopt(c, CURLOPT_NOSIGNAL, 1L);
	lc.setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	return c;
}

static int http(struct weftctl *ctx, const char *method, const char *path, const char *body,
		struct buf *out, long *status)
{
	struct curl_slist *hdrs = NULL;
	CURLcode rc;
	int err;
	CURL *c = easy_new(ctx, path, on_data, out, &err);

	if (!c)
		return err;
	lc.setopt(c, CURLOPT_CUSTOMREQUEST, method);
	/* Long enough for DHT lookups and swarm operations the daemon bounds itself. */
	lc.setopt(c, CURLOPT_TIMEOUT, 600L);
	if (body) {
		hdrs = lc.slist_append(hdrs, "Content-Type: application/json");
		lc.setopt(c, CURLOPT_HTTPHEADER, hdrs);
		lc.setopt(c, CURLOPT_POSTFIELDS, body);
		lc.setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	rc = lc.perform(c);
	if (rc != CURLE_OK) {
		if (rc == CURLE_COULDNT_CONNECT) {
			fprintf(stderr,
				"weftctl: cannot reach weftd at %s: is it running? "
				"(start it with 'make run' or weftd; --socket PATH to choose)\n",
				ctx->socket);
			err = -ECONNREFUSED;
		} else {
			fprintf(stderr, "weftctl: %s: %s\n", ctx->socket, lc.strerror(rc));
			err = out->overflow ? -EMSGSIZE : -EIO;
		}
	} else {
		lc.getinfo(c, CURLINFO_RESPONSE_CODE, status);
	}
	lc.slist_free_all(hdrs);
	lc.cleanup(c);
	return err;
}

int weftctl_call(struct weftctl *ctx, const char *method, const char *path, json_t *body,
		 json_t **out)
{
	struct buf b = { 0 };
	char *bs = NULL;
	long status = 0;
	int err;

	*out = NULL;
	if (body) {
		bs = json_dumps(body, JSON_COMPACT);
		if (!bs)
			return -ENOMEM;
	}
	err = http(ctx, method, path, bs, &b, &status);
	free(bs);
	if (!err && b.len)
		*out = json_loadb(b.p, b.len, 0, NULL);
	free(b.p);
	return err ? err : (int)status;
}

int weftctl_call_text(struct weftctl *ctx, const char *path, char **out)
{
	struct buf b = { 0 };
	long status = 0;
	int err = http(ctx, "GET", path, NULL, &b, &status);

	if (err) {
		free(b.p);
		return err;
	}
	*out = b.p ? b.p : strdup("");
	return (int)status;
}

int weftctl_do(struct weftctl *ctx, const char *method, const char *path, json_t *body,
	       json_t **out)
{
	json_t *reply = NULL;
	int st = weftctl_call(ctx, method, path, body, &reply);

	if (out)
		*out = NULL;
	if (st < 0)
		return WEFTCTL_ERR;
	if (st >= 400) {
		const char *msg = weftctl_jstr_or(json_object_get(reply, "error"), "message", NULL);
		if (ctx->json && reply)
			weftctl_print_json(reply);
		fprintf(stderr, "weftctl: %s (HTTP %d)\n", msg ? msg : "request failed", st);
		json_decref(reply);
		return WEFTCTL_ERR;
	}
	if (!reply) {
		fprintf(stderr, "weftctl: the daemon's reply is not JSON (HTTP %d)\n", st);
		return WEFTCTL_ERR;
	}
	if (out) {
		*out = reply;
		return WEFTCTL_OK;
	}
	if (ctx->json)
		weftctl_print_json(reply);
	json_decref(reply);
	return WEFTCTL_OK;
}

int weftctl_show(struct weftctl *ctx, const char *method, const char *path, json_t *body,
		 void (*render)(const json_t *reply))
{
	json_t *o = NULL;
	int rc = weftctl_do(ctx, method, path, body, &o);

	if (rc || !o)
		return rc;
	return weftctl_print(ctx, o, render);
}

/* ---- a stream of JSON lines (GET /v1/content/events) ---- */

struct lines {
	char line[4096];
	size_t len;
	int (*fn)(void *arg, json_t *ev);
	void *arg;
	int stop;
};

static size_t on_lines(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct lines *l = ud;
	size_t n = size * nmemb;

	for (size_t i = 0; i < n; i++) {
		if (ptr[i] != '\n') {
			if (l->len < sizeof(l->line) - 1)
				l->line[l->len++] = ptr[i];
			continue;
		}
		l->line[l->len] = '\0';
		if (l->len) {
			json_t *ev = json_loads(l->line, 0, NULL);

			if (ev && json_is_object(ev) && l->fn(l->arg, ev))
				l->stop = 1;
			json_decref(ev);
		}
		l->len = 0;
		if (l->stop)
			return 0; /* ends the transfer */
	}
	return n;
}

int weftctl_stream(struct weftctl *ctx, const char *path, int (*fn)(void *arg, json_t *ev),
		   void *arg)
{
	struct lines *l = calloc(1, sizeof(*l));
	long status = 0;
	CURLcode rc;
	CURL *c;
	int err;

	if (!l)
		return -ENOMEM;
	c = easy_new(ctx, path, on_lines, l, &err);
	if (!c) {
		free(l);
		return err;
	}
	l->fn = fn;
	l->arg = arg;
	/* no overall deadline (a download takes what it takes); the daemon
	 * sends a line at least every 2 s: 30 s of silence is a dead daemon */
	lc.setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	lc.setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
	rc = lc.perform(c);
	lc.getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && l->stop)) {
		fprintf(stderr, "weftctl: %s: %s\n", ctx->socket, lc.strerror(rc));
		err = rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EIO;
	} else if (status >= 400) {
		err = -EPROTO;
	}
	lc.cleanup(c);
	free(l);
	return err ? err : (int)status;
}
