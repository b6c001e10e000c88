// SPDX-License-Identifier: MIT
/*
 * weftctl dht status
 * weftctl dht ping ADDR
 * weftctl dht find-node ID
 * weftctl dht get-peers INFOHASH
 * weftctl dht announce INFOHASH PORT
 * weftctl dht put --immutable VALUE
 * weftctl dht put --mutable [--salt S] [--cas] VALUE
 * weftctl dht get TARGET | get --key K [--salt S]
 * API: /v1/dht/... (docs/DHT.md, "Control API").
 */
#include <stdio.h>
#include <string.h>

#include "weft/util.h"
#include "weftctl.h"

static void print_status(const json_t *o)
{
	json_t *b, *v;
	const char *k;
	size_t i;

	printf("node id      %s\n", weftctl_jstr(o, "id"));
	printf("nodes        %lld IPv4, %lld IPv6\n", weftctl_jint(o, "nodes4"), weftctl_jint(o, "nodes6"));
	printf("stored       %lld peers in %lld infohashes, %lld items\n", weftctl_jint(o, "peers"),
	       weftctl_jint(o, "infohashes"), weftctl_jint(o, "items"));
	printf("lookups      %lld running\n", weftctl_jint(o, "lookups"));
	printf("buckets v4  ");
	json_array_foreach(json_object_get(o, "buckets4"), i, b)
	    printf(" %lld", (long long)json_integer_value(b));
	printf("\nbuckets v6  ");
	json_array_foreach(json_object_get(o, "buckets6"), i, b)
	    printf(" %lld", (long long)json_integer_value(b));
	printf("\n\n%-14s %12s %12s\n", "QUERY", "IN", "OUT");
	json_object_foreach(json_object_get(o, "queries_in"), k, v)
	    printf("%-14s %12lld %12lld\n", k, (long long)json_integer_value(v),
		   weftctl_jint(json_object_get(o, "queries_out"), k));
	printf("\nerrors sent ");
	json_object_foreach(json_object_get(o, "errors_out"), k, v) if (json_integer_value(v))
	    printf(" %s:%lld", k, (long long)json_integer_value(v));
	printf("\ndropped      %lld malformed, %lld over budget; %lld timeouts, %lld retries\n",
	       weftctl_jint(o, "dropped_malformed"), weftctl_jint(o, "dropped_budget"), weftctl_jint(o, "timeouts"),
	       weftctl_jint(o, "retries"));
}

static void print_result(const json_t *o)
{
	json_t *n, *arr;
	size_t i;

	printf("target   %s\n", weftctl_jstr(o, "target"));
	printf("visited  %lld nodes (%lld queried), %lld hops\n", weftctl_jint(o, "visited"),
	       weftctl_jint(o, "queried"), weftctl_jint(o, "hops"));
	if (json_object_get(o, "rtt_ms"))
		printf("id       %s\nrtt      %lld ms\n", weftctl_jstr(o, "id"), weftctl_jint(o, "rtt_ms"));
	if (json_object_get(o, "stored"))
		printf("stored   on %lld nodes\n", weftctl_jint(o, "stored"));
	if (json_object_get(o, "seq"))
		printf("seq      %lld\nkey      %s\nsig      %s\n", weftctl_jint(o, "seq"), weftctl_jstr(o, "key"),
		       weftctl_jstr(o, "sig"));
	if (json_object_get(o, "value"))
		printf("value    %s\n", weftctl_jstr(o, "value"));
	else if (json_object_get(o, "value_hex"))
		printf("value    (hex) %s\n", weftctl_jstr(o, "value_hex"));
	else if (json_object_get(o, "value_bencode"))
		printf("value    (bencode) %s\n", weftctl_jstr(o, "value_bencode"));
	arr = json_object_get(o, "peers");
	if (arr) {
		printf("peers    %zu\n", json_array_size(arr));
		json_array_foreach(arr, i, n) printf("  %s\n", json_string_value(n));
	}
	arr = json_object_get(o, "nodes");
	if (json_array_size(arr) && !json_object_get(o, "rtt_ms")) {
		printf("%-40s  %s\n", "CLOSEST NODES", "ADDRESS");
		json_array_foreach(arr, i, n) printf("%-40s  %s\n", weftctl_jstr(n, "id"), weftctl_jstr(n, "addr"));
	}
}

static int call(struct weftctl *ctx, const char *method, const char *path, json_t *body, int status)
{
	json_t *o = NULL;
	int rc = weftctl_do(ctx, method, path, body, &o);

	json_decref(body);
	if (rc || !o)
		return rc;
	return weftctl_print(ctx, o, status ? print_status : print_result);
}

static int is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdefABCDEF", s[i]))
			return 0;
	return 1;
}

static int dht_put_cmd(struct weftctl *ctx, int argc, char **argv)
{
	int mut = 0, imm = 0, cas = 0, i;
	const char *salt = NULL, *value = NULL;
	json_t *body;

	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--immutable"))
			imm = 1;
		else if (!strcmp(argv[i], "--mutable"))
			mut = 1;
		else if (!strcmp(argv[i], "--cas"))
			cas = 1;
		else if (!strcmp(argv[i], "--salt") && i + 1 < argc)
			salt = argv[++i];
		else if (!value && argv[i][0] != '-')
			value = argv[i];
		else
			return weftctl_usage(ctx);
	}
	if (!value || mut == imm || (salt && !mut) || (cas && !mut))
		return weftctl_usage(ctx);
	if (imm)
		body = json_pack("{s:b,s:s}", "immutable", 1, "value", value);
	else
		body = json_pack("{s:b,s:s,s:b}", "mutable", 1, "value", value, "cas", cas);
	if (salt)
		json_object_set_new(body, "salt", json_string(salt));
	return call(ctx, "POST", "/v1/dht/put", body, 0);
}

static int dht_get_cmd(struct weftctl *ctx, int argc, char **argv)
{
	const char *key = NULL, *salt = NULL, *target = NULL;
	json_t *body;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--key") && i + 1 < argc)
			key = argv[++i];
		else if (!strcmp(argv[i], "--salt") && i + 1 < argc)
			salt = argv[++i];
		else if (!target && argv[i][0] != '-')
			target = argv[i];
		else
			return weftctl_usage(ctx);
	}
	if (!!target == !!key || (salt && !key) || (target && !is_hex(target, 40)) ||
	    (key && !is_hex(key, 64)))
		return weftctl_usage(ctx);
	body = target ? json_pack("{s:s}", "target", target) : json_pack("{s:s}", "key", key);
	if (salt)
		json_object_set_new(body, "salt", json_string(salt));
	return call(ctx, "POST", "/v1/dht/get", body, 0);
}

int weftctl_dht(struct weftctl *ctx, int argc, char **argv)
{
	const char *verb = argc > 1 ? argv[1] : "";
	uint64_t port;

	if (!strcmp(verb, "status") && argc == 2)
		return call(ctx, "GET", "/v1/dht/status", NULL, 1);
	if (!strcmp(verb, "ping") && argc == 3)
		return call(ctx, "POST", "/v1/dht/ping", json_pack("{s:s}", "addr", argv[2]), 0);
	if (!strcmp(verb, "find-node") && argc == 3 && is_hex(argv[2], 40))
		return call(ctx, "POST", "/v1/dht/find-node", json_pack("{s:s}", "id", argv[2]), 0);
	if (!strcmp(verb, "get-peers") && argc == 3 && is_hex(argv[2], 40))
		return call(ctx, "POST", "/v1/dht/get-peers",
			    json_pack("{s:s}", "infohash", argv[2]), 0);
	if (!strcmp(verb, "announce") && argc == 4 && is_hex(argv[2], 40) &&
	    !util_parse_u64(argv[3], 1, 65535, &port))
		return call(ctx, "POST", "/v1/dht/announce",
			    json_pack("{s:s,s:I}", "infohash", argv[2], "port", (json_int_t)port),
			    0);
	if (!strcmp(verb, "put"))
		return dht_put_cmd(ctx, argc, argv);
	if (!strcmp(verb, "get"))
		return dht_get_cmd(ctx, argc, argv);
	return weftctl_usage(ctx);
}
