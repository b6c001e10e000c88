// SPDX-License-Identifier: MIT
/* Complete nodes on a simulated network, for in-process tests. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "simnode.h"
#include "testutil.h"
#include "weft/ctl.h"
#include "weft/log.h"
#include "weft/node.h"
#include "weft/simnet.h"

static void set(struct weft_config *cfg, const char *kv)
{
	char buf[512], err[256], *dot, *eq;

	snprintf(buf, sizeof(buf), "%s", kv);
	dot = strchr(buf, '.');
	eq = strchr(buf, '=');
	assert_non_null(dot);
	assert_non_null(eq);
	*dot = *eq = '\0';
	if (config_set(cfg, buf, dot + 1, eq + 1, err, sizeof(err))) {
		fail_msg("config %s: %s", kv, err);
	}
}

void simnode_new(struct simnode *x, struct simnet *sn, const char *name, const char *ip,
		 struct simnet_nat *nat, const char *const *settings,
		 void (*tweak)(struct weft_config *cfg), const char *log_path)
{
	struct weft_config cfg;
	struct node_opts no = {0};
	struct io_addr a;
	char err[256], kv[600];
	json_t *st;
	int rc;

	/* as weftd (userspace/node/main.c): a write to a socket whose peer
	 * went is EPIPE, not a signal that ends the whole test process */
	signal(SIGPIPE, SIG_IGN);
	memset(x, 0, sizeof(*x));
	x->log_fd = -1;
	snprintf(x->name, sizeof(x->name), "%s", name);
	snprintf(x->ip, sizeof(x->ip), "%s", ip);
	x->dir = tu_tmpdir();
	assert_non_null(x->dir);
	assert_int_equal(io_addr_parse(&a, ip, 0), 0);
	assert_int_equal(simnet_host_add(sn, &a, nat, &x->host), 0);

	config_defaults(&cfg);
	snprintf(kv, sizeof(kv), "node.state_dir=%s", x->dir);
	set(&cfg, kv);
	set(&cfg, "node.workers=1");
	set(&cfg, "ports.quic=4433");
	set(&cfg, "ports.dht=6881");
	/* What the node announces as its endpoint (the mem backend serves
	 * the simulated host's address whatever node.bind says). */
	snprintf(kv, sizeof(kv), "node.bind=%s", ip);
	set(&cfg, kv);
	for (; settings && *settings; settings++)
		set(&cfg, *settings);
	if (config_finish(&cfg, err, sizeof(err)))
		fail_msg("config: %s", err);
	if (tweak)
		tweak(&cfg);
	if (log_path) {
		x->log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		assert_true(x->log_fd > 0);
	}
	no.sim_host = x->host;
	no.log_name = x->name;
	no.log_fd = x->log_fd;
	rc = node_new_opts(&x->node, &cfg, &no);
	if (rc)
		fail_msg("node %s: %s", name, strerror(-rc));
	rc = node_start(x->node);
	if (rc)
		fail_msg("node %s start: %s", name, strerror(-rc));
	st = simnode_ok(x, "GET", "/v1/status", NULL);
	snprintf(x->key, sizeof(x->key), "%s", json_string_value(json_object_get(st, "node_key")));
	assert_int_equal(strlen(x->key), 64);
	json_decref(st);
}

void simnode_free(struct simnode *x)
{
	if (!x->dir)
		return;
	node_free(x->node);
	x->node = NULL;
	if (x->log_fd >= 0)
		close(x->log_fd);
	x->log_fd = -1;
	tu_rmrf_free(x->dir);
	x->dir = NULL;
}

int simnode_ctl(struct simnode *x, const char *method, const char *path, json_t *body, json_t **out)
{
	struct ctl_req req = {0};
	struct ctl_resp resp = {0};
	struct log_ctx *prev;
	char *text = NULL;
	int status;

	req.method = method;
	req.path = path;
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		assert_non_null(text);
		req.body = (const uint8_t *)text;
		req.body_len = strlen(text);
		req.json = body;
	}
	/* The handler runs on this thread: it logs as the node it serves. */
	prev = log_bind(node_log(x->node));
	ctl_dispatch(node_ctl(x->node), &req, &resp);
	log_bind(prev);
	json_decref(body);
	free(text);
	status = resp.status;
	if (out) {
		*out = resp.json;
		resp.json = NULL;
	}
	json_decref(resp.json);
	free(resp.text);
	return status;
}

/* x's GET /metrics text (caller frees). */
static char *metrics_text(struct simnode *x)
{
	struct ctl_req req = {.method = "GET", .path = "/metrics"};
	struct ctl_resp resp = {0};
	struct log_ctx *prev = log_bind(node_log(x->node));

	ctl_dispatch(node_ctl(x->node), &req, &resp);
	log_bind(prev);
	json_decref(resp.json);
	assert_int_equal(resp.status, 200);
	return resp.text;
}

void simnode_print_metrics(struct simnode *x, const char *prefix)
{
	char *text = metrics_text(x);
	size_t plen = strlen(prefix);

	for (char *l = text, *e; l && *l; l = e ? e + 1 : NULL) {
		e = strchr(l, '\n');
		if (e)
			*e = '\0';
		if (!strncmp(l, prefix, plen))
			fprintf(stderr, "%s: %s\n", x->name, l);
	}
	free(text);
}

double simnode_metric(struct simnode *x, const char *name)
{
	char *text = metrics_text(x);
	size_t nlen = strlen(name);
	double v = -1;

	for (char *l = text, *e; l && *l; l = e ? e + 1 : NULL) {
		e = strchr(l, '\n');
		if (!strncmp(l, name, nlen) && l[nlen] == ' ') {
			v = strtod(l + nlen + 1, NULL);
			break;
		}
	}
	free(text);
	return v;
}

json_t *simnode_ok(struct simnode *x, const char *method, const char *path, json_t *body)
{
	json_t *out = NULL;
	int st = simnode_ctl(x, method, path, body, &out);

	if (st != 200) {
		char *s = out ? json_dumps(out, JSON_COMPACT) : NULL;

		fail_msg("%s %s %s: %d %s", x->name, method, path, st, s ? s : "");
	}
	return out;
}

void simnode_get_from(struct simnode *x, const char *id, const char *out, const char *ip,
		      char *path, size_t cap)
{
	json_t *o = simnode_ok(x, "POST", "/v1/content/get",
			       json_pack("{s:s,s:s,s:[s]}", "id", id, "out", out, "from", ip));

	snprintf(path, cap, "/v1/content/jobs/%lld",
		 (long long)json_integer_value(json_object_get(o, "job")));
	json_decref(o);
}

json_int_t simnode_get_int(struct simnode *x, const char *route, ...)
{
	json_t *o = simnode_ok(x, "GET", route, NULL), *v = o;
	const char *k;
	json_int_t r;
	va_list ap;

	va_start(ap, route);
	while ((k = va_arg(ap, const char *)))
		v = json_object_get(v, k);
	va_end(ap);
	if (!json_is_integer(v))
		fail_msg("%s GET %s: member missing", x->name, route);
	r = json_integer_value(v);
	json_decref(o);
	return r;
}

int simnode_finds(struct simnode *x, const char *name)
{
	char path[128];
	json_t *o = NULL;
	int st, ok;

	snprintf(path, sizeof(path), "/v1/svc/find/%s", name);
	st = simnode_ctl(x, "GET", path, NULL, &o);
	ok = st == 200 && json_array_size(json_object_get(o, "results")) >= 1;
	json_decref(o);
	return ok;
}

int simnode_relay_holds(struct simnode *relay, const char *key)
{
	json_t *o = simnode_ok(relay, "GET", "/v1/relay/reservations", NULL), *x;
	size_t i;
	int found = 0;

	json_array_foreach(json_object_get(o, "reservations"), i, x)
		found |= !strcmp(json_string_value(json_object_get(x, "key")), key);
	json_decref(o);
	return found;
}

int simnode_lists_relay(struct simnode *from, const char *key, const char *relay_key)
{
	json_t *o = NULL, *rel;
	int ok = 0;

	if (simnode_ctl(from, "POST", "/v1/node/resolve",
			json_pack("{s:s,s:b}", "key", key, "fresh", 1), &o) == 200) {
		rel = json_array_get(json_object_get(o, "relays"), 0);
		ok = rel && !strcmp(json_string_value(json_object_get(rel, "key")), relay_key);
	}
	json_decref(o);
	return ok;
}

int simnode_wait_every(int (*cond)(void *arg), void *arg, unsigned int timeout_ms,
		       unsigned int every_ms)
{
	struct timespec ts = {every_ms / 1000, (long)(every_ms % 1000) * 1000000L};

	for (unsigned int i = 0; i < timeout_ms; i += every_ms) {
		if (cond(arg))
			return 0;
		nanosleep(&ts, NULL);
	}
	return cond(arg) ? 0 : -ETIMEDOUT;
}

int simnode_wait(int (*cond)(void *arg), void *arg, unsigned int timeout_ms)
{
	return simnode_wait_every(cond, arg, timeout_ms, 1);
}
