// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: JSON request bodies of the control API's POST / PUT
 * routes. Byte 0 of the input picks a route, the rest is the body, parsed
 * the way the server does (json_loadb, duplicates rejected; a body that
 * does not parse reaches the handler as NULL).
 *
 * - Routes whose handlers are safe without a running node go through
 *   ctl_dispatch() on a real control server (never started: no socket is
 *   served): the guard in software mode (PUT /v1/xdp/limits, POST and
 *   DELETE /v1/bans) and a DHT core with an empty routing table whose
 *   packets go nowhere (POST /v1/dht/...: lookups end at once with "no
 *   nodes", a ping fails to send).
 * - Routes that need a live QUIC node, service fabric or content node are
 *   checked through the body validators their handlers call first:
 *   quic_node_ctl_parse (/v1/quic/ping|bench|handshakes), svcn_ctl_parse
 *   (/v1/svc/publish|unpublish|call|debug/descriptor), cn_api_parse_add and
 *   cn_api_parse_get (/v1/content/add|get), cn_api_parse_limits
 *   (/v1/content/limits).
 *
 * Every answer must be JSON; every 4xx/5xx an {"error": {"code", "message"}}
 * object. A body that is certainly bad (not an object, a required member
 * missing, a member of the wrong type, an unknown member where the route
 * rejects those) must get a 4xx. State the guard keeps (bans, limits) is
 * reset after each input.
 *
 * Seeds in tests/fuzz/corpus/fuzz_ctl_json/. Run (docs/CONTROL_API.md):
 *   make fuzz && build/fuzz/fuzz_ctl_json CORPUS_COPY/
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "content/content_node_int.h"
#include "quic/quic_node_int.h"
#include "service/svc_ctl_int.h"
#include "service/svc_node_int.h"
#include "weft/ctl.h"
#include "weft/dht.h"
#include "weft/guard.h"
#include "weft/seal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

/* Member types a schema allows (bits). */
enum { T_STR = 1, T_INT = 2, T_BOOL = 4, T_OBJ = 8, T_ARR = 16, T_NULL = 32 };

struct field {
	const char *key;
	int types;
	int required;
};

enum kind { DISPATCH, QUIC, SVC, CN_ADD, CN_GET, CN_LIMITS };

struct route {
	const char *method, *path;
	enum kind kind;
	int id;	     /* QN_CTL_* / SVCN_CTL_* */
	int strict;  /* unknown members are rejected */
	int target;  /* needs "peer" or "addr" (a string) */
	int subpath; /* the input is a path suffix, not a body */
	struct field f[10]; /* ends at a NULL key: at most 9 */
};

static const struct route routes[] = {
    {"PUT",
     "/v1/xdp/limits",
     DISPATCH,
     0,
     1,
     0,
     0,
     /* guard_limits_merge's known members, every one */
     {{"quic", T_OBJ, 0},
      {"quic_validated", T_OBJ, 0},
      {"quic_initial", T_OBJ, 0},
      {"dht", T_OBJ, 0},
      {"stun", T_OBJ, 0},
      {"quic_ports", T_ARR, 0},
      {"dht_ports", T_ARR, 0},
      {"v6_prefix", T_INT, 0},
      {"unvalidated", T_OBJ, 0}}},
    {"POST", "/v1/bans", DISPATCH, 0, 0, 0, 0, {{"cidr", T_STR, 1}, {"ttl", T_INT | T_NULL, 0}}},
    {"DELETE", "/v1/bans/", DISPATCH, 0, 0, 0, 1, {{0}}},
    {"POST", "/v1/dht/ping", DISPATCH, 0, 0, 0, 0, {{"addr", T_STR, 1}}},
    {"POST", "/v1/dht/find-node", DISPATCH, 0, 0, 0, 0, {{"id", T_STR, 1}}},
    {"POST", "/v1/dht/get-peers", DISPATCH, 0, 0, 0, 0, {{"infohash", T_STR, 1}}},
    {"POST",
     "/v1/dht/announce",
     DISPATCH,
     0,
     0,
     0,
     0,
     {{"infohash", T_STR, 1}, {"port", T_INT, 1}}},
    {"POST",
     "/v1/dht/put",
     DISPATCH,
     0,
     0,
     0,
     0,
     {{"value", T_STR, 1},
      {"mutable", T_BOOL, 0},
      {"immutable", T_BOOL, 0},
      {"cas", T_BOOL, 0},
      {"salt", T_STR, 0}}},
    {"POST",
     "/v1/dht/get",
     DISPATCH,
     0,
     0,
     0,
     0,
     {{"target", T_STR, 0}, {"key", T_STR, 0}, {"salt", T_STR, 0}}},
    {"POST",
     "/v1/quic/ping",
     QUIC,
     QN_CTL_PING,
     0,
     1,
     0,
     {{"peer", T_STR, 0}, {"addr", T_STR, 0}, {"timeout_ms", T_INT, 0}, {"keep", T_BOOL, 0}}},
    {"POST",
     "/v1/quic/bench",
     QUIC,
     QN_CTL_BENCH,
     0,
     1,
     0,
     {{"peer", T_STR, 0},
      {"addr", T_STR, 0},
      {"timeout_ms", T_INT, 0},
      {"bytes", T_INT, 0},
      {"seed", T_INT, 0},
      {"mode", T_STR, 0},
      {"verify", T_BOOL, 0}}},
    {"POST",
     "/v1/quic/handshakes",
     QUIC,
     QN_CTL_HANDSHAKES,
     0,
     1,
     0,
     {{"peer", T_STR, 0}, {"addr", T_STR, 0}, {"timeout_ms", T_INT, 0}, {"count", T_INT, 1}}},
    {"POST",
     "/v1/svc/publish",
     SVC,
     SVCN_CTL_PUBLISH,
     0,
     0,
     0,
     {{"name", T_STR, 1}, {"backend", T_STR, 0}}},
    {"POST", "/v1/svc/unpublish", SVC, SVCN_CTL_UNPUBLISH, 0, 0, 0, {{"name", T_STR, 1}}},
    {"POST",
     "/v1/svc/call",
     SVC,
     SVCN_CTL_CALL,
     0,
     0,
     0,
     {{"name", T_STR, 1},
      {"method", T_STR, 0},
      {"data", T_STR, 0},
      {"count", T_INT, 0},
      {"concurrency", T_INT, 0},
      {"timeout_ms", T_INT, 0}}},
    {"POST",
     "/v1/svc/debug/descriptor",
     SVC,
     SVCN_CTL_DEBUG_DESC,
     0,
     0,
     0,
     {{"name", T_STR, 1}, {"mode", T_STR, 1}}},
    {"POST",
     "/v1/content/add",
     CN_ADD,
     0,
     0,
     0,
     0,
     {{"paths", T_ARR, 1}, {"name", T_STR, 0}, {"private", T_BOOL, 0}}},
    {"POST",
     "/v1/content/get",
     CN_GET,
     0,
     0,
     0,
     0,
     {{"id", T_STR, 1}, {"out", T_STR, 0}, {"link", T_BOOL, 0}, {"from", T_ARR, 0}}},
    {"POST",
     "/v1/content/limits",
     CN_LIMITS,
     0,
     1,
     0,
     0,
     {{"upload_rate", T_INT, 0},
      {"peer_rate", T_INT, 0},
      {"lan_peer_rate", T_INT, 0},
      {"lan_capped", T_BOOL, 0},
      {"superseed_s", T_INT, 0},
      {"fair_windows", T_BOOL, 0},
      {"upload_auto", T_BOOL, 0}}},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static char dir[64];
static struct ctl *ctl;
static struct guard *guard;
static struct dht *dht;
static struct dht_svc *dsvc;
static struct wxdp_config cfg0;
static struct wxdp_ban bans[GUARD_MAX_BANS];

/* DHT packets go nowhere: the send fails, so no query is left waiting. */
static int no_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		   socklen_t tolen)
{
	return -ENETUNREACH;
}

static void cleanup(void)
{
	ctl_free(ctl); /* removes the socket file */
	dht_svc_free(dsvc);
	dht_free(dht);
	guard_free(guard);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const uint8_t seed[32] = {0xf2};
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	struct guard_opts go = {.npolicers = 1};
	struct dht_opts dop = {.send = no_send, .seed = seed, .pk = pk, .sk = sk};
	struct dht_svc_opts so = {.timeout_ms = 200};
	struct ctl_opts co = {0};
	char sock[128];

	check(sodium_init() >= 0);
	crypto_sign_seed_keypair(pk, sk, seed);
	snprintf(dir, sizeof(dir), "/tmp/weft-fzctl-XXXXXX");
	check(mkdtemp(dir) != NULL);
	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	co.socket_path = sock;
	check(ctl_new(&ctl, &co) == 0);
	check(guard_new(&guard, &go) == 0);
	check(guard_ctl_register(guard, ctl) == 0);
	check(guard_config_get(guard, &cfg0) == 0);
	check(dht_new(&dht, &dop) == 0);
	check(dht_svc_new(&dsvc, dht, &so) == 0);
	check(dht_svc_register(dsvc, ctl) == 0);
	atexit(cleanup);
	return 0;
}

static int type_bit(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return T_STR;
	case JSON_INTEGER:
		return T_INT;
	case JSON_TRUE:
	case JSON_FALSE:
		return T_BOOL;
	case JSON_OBJECT:
		return T_OBJ;
	case JSON_ARRAY:
		return T_ARR;
	case JSON_NULL:
		return T_NULL;
	default:
		return 0; /* real */
	}
}

/* Whether the body is bad by the route's schema alone. */
static int certainly_bad(const struct route *rt, json_t *body)
{
	const char *key;
	json_t *v;

	if (!json_is_object(body))
		return 1;
	for (const struct field *f = rt->f; f->key; f++) {
		v = json_object_get(body, f->key);
		if (!v ? f->required : !(type_bit(v) & f->types))
			return 1;
	}
	if (rt->target && !json_is_string(json_object_get(body, "peer")) &&
	    !json_is_string(json_object_get(body, "addr")))
		return 1;
	if (rt->strict)
		json_object_foreach(body, key, v)
		{
			const struct field *f = rt->f;

			while (f->key && strcmp(f->key, key))
				f++;
			if (!f->key)
				return 1;
		}
	return 0;
}

/* An answer: JSON; errors as {"error": {"code": S, "message": S}}. */
static void check_resp(const struct ctl_resp *resp)
{
	json_t *e;

	check(resp->json != NULL && resp->text == NULL);
	check(resp->status >= 200 && resp->status <= 599);
	if (resp->status >= 400) {
		e = json_object_get(resp->json, "error");
		check(json_is_object(e));
		check(json_is_string(json_object_get(e, "code")));
		check(json_is_string(json_object_get(e, "message")));
	} else {
		check(json_is_object(resp->json));
	}
}

/* A validator: 0 and no answer, or an error and a 4xx answer. */
static void check_parse(int rc, const struct ctl_resp *resp)
{
	if (rc == 0) {
		check(resp->json == NULL && resp->status == 0);
		return;
	}
	check(rc == -EINVAL);
	check_resp(resp);
	check(resp->status >= 400 && resp->status <= 499);
}

static void reset_guard(void)
{
	size_t n = 0;

	check(guard_ban_list(guard, bans, GUARD_MAX_BANS, &n) == 0);
	for (size_t i = 0; i < n; i++)
		guard_ban_del(guard, &bans[i]);
	check(guard_config_set(guard, &cfg0) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct route *rt;
	struct ctl_resp resp = {0};
	json_t *body = NULL;
	int bad, rc = 0;

	if (!size)
		return 0;
	rt = &routes[data[0] % NROUTES];
	data++;
	size--;
	if (!rt->subpath)
		body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	bad = certainly_bad(rt, body);
	switch (rt->kind) {
	case DISPATCH: {
		char path[600];
		struct ctl_req req = {.method = rt->method,
				      .path = path,
				      .body = data,
				      .body_len = size,
				      .json = body};

		if (rt->subpath) /* DELETE /v1/bans/<cidr>: the input, up to a NUL */
			snprintf(path, sizeof(path), "%s%.*s", rt->path,
				 (int)(size < 512 ? size : 512), (const char *)data);
		else
			snprintf(path, sizeof(path), "%s", rt->path);
		ctl_dispatch(ctl, &req, &resp);
		check_resp(&resp);
		if (bad && !rt->subpath)
			check(resp.status >= 400 && resp.status <= 499);
		/* Nothing here fails inside: a 5xx is "no nodes" (503) from a
		 * DHT lookup, or a DHT ping that could not be sent. */
		check(resp.status < 500 || resp.status == 503 || !strcmp(rt->path, "/v1/dht/ping"));
		reset_guard();
		break;
	}
	case QUIC: {
		struct qn_ctl_args a;

		rc = quic_node_ctl_parse(rt->id, body, &a, &resp);
		check_parse(rc, &resp);
		if (!rc)
			check(a.target && a.timeout_ms <= 600000 &&
			      (rt->id != QN_CTL_HANDSHAKES ||
			       (a.count >= 1 && a.count <= QUIC_NODE_HS_MAX && a.window >= 1 &&
				a.window <= QUIC_NODE_HS_WINDOW_MAX)));
		break;
	}
	case SVC: {
		struct svcn_ctl_args a;

		rc = svcn_ctl_parse(rt->id, body, &a, &resp);
		check_parse(rc, &resp);
		if (!rc)
			check(a.name && a.method && a.data && a.count >= 1 && a.concurrency >= 1 &&
			      a.timeout_ms >= 0);
		break;
	}
	case CN_ADD: {
		struct cn_add_args a;

		rc = cn_api_parse_add(body, &a, &resp);
		check_parse(rc, &resp);
		if (!rc)
			check(json_array_size(a.paths) > 0 && a.name[0] &&
			      strlen(a.name) <= MANIFEST_MAX_NAME &&
			      (a.priv || (!a.nto && !json_array_size(a.circles))) &&
			      a.nto < SEAL_MAX_RECIPIENTS);
		cn_api_add_args_free(&a);
		break;
	}
	case CN_GET: {
		struct cn_get_req *rq = malloc(sizeof(*rq));

		check(rq != NULL);
		rc = cn_api_parse_get(body, rq, &resp);
		check_parse(rc, &resp);
		if (!rc)
			/* an id, or a share head (KEY/NAME, a magnet) the
			 * caller resolves: ref set, no id */
			check((rq->ref[0] ? rq->id_len == 0 && memchr(rq->ref, 0, sizeof(rq->ref))
					  : rq->id_len == 32 || rq->id_len == 20) &&
			      rq->nfrom <= 8 && (!rq->out[0] || rq->out[0] == '/'));
		free(rq);
		break;
	}
	case CN_LIMITS: {
		struct content_limits l = {0};
		uint64_t ss = 0;
		int fair = -1;

		rc = cn_api_parse_limits(body, &l, &ss, &fair, &resp);
		check_parse(rc, &resp);
		if (!rc)
			check(l.upload_rate <= 1000000000000ull && l.peer_rate <= 1000000000000ull &&
			      l.lan_peer_rate <= 1000000000000ull && ss <= 7 * 86400 &&
			      fair >= -1 && fair <= 1);
		break;
	}
	}
	if (bad && rt->kind != DISPATCH)
		check(rc != 0);
	json_decref(resp.json);
	free(resp.text);
	json_decref(body);
	return 0;
}
