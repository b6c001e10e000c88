// SPDX-License-Identifier: MIT
/* weftctl msg: sealed messages and mailboxes (docs/MAILBOX.md). */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weftctl.h"

#define MSG_MAX 65536 /* MBOX_MAX_BODY */

static void print_send(const json_t *o)
{
	const json_t *x;
	size_t i;

	printf("%s  %s (%lld %s)\n", weftctl_jstr(o, "id"),
	       !strcmp(weftctl_jstr(o, "delivered"), "direct") ? "delivered" : "left at anchors",
	       weftctl_jint(o, "copies"), weftctl_jint(o, "copies") == 1 ? "copy" : "copies");
	json_array_foreach(json_object_get(o, "tried"), i, x)
		printf("  %.16s  %s\n", weftctl_jstr(x, "key"), weftctl_jstr(x, "status"));
}

/* UTC date of unix time t. */
static void when_utc(long long t, char *out, size_t cap)
{
	time_t tt = (time_t)t;

	strftime(out, cap, "%Y-%m-%d %H:%M:%S", gmtime(&tt));
}

static void print_deleted(const json_t *o)
{
	printf("deleted %s\n", weftctl_jstr(o, "deleted"));
}

static void print_inbox(const json_t *o)
{
	const json_t *x;
	size_t i;

	printf("%-32s %-16s %-20s %8s\n", "ID", "FROM", "RECEIVED", "SIZE");
	json_array_foreach(json_object_get(o, "messages"), i, x) {
		char when[32];

		when_utc(weftctl_jint(x, "ts"), when, sizeof(when));
		printf("%-32s %.16s %-20s %8lld\n", weftctl_jstr(x, "id"), weftctl_jstr(x, "sender"),
		       when, weftctl_jint(x, "size"));
	}
}

static void print_status(const json_t *o)
{
	const json_t *x;
	const char *k;
	size_t i;

	printf("mailbox        %s\n", weftctl_jtrue(o, "enabled") ? "offered (anchor)" : "not offered");
	printf("held           %lld messages, %lld bytes, %lld recipients\n",
	       weftctl_jint(o, "messages"), weftctl_jint(o, "bytes"), weftctl_jint(o, "recipients"));
	printf("served         %lld put, %lld acknowledged, %lld expired, %lld direct\n",
	       weftctl_jint(o, "put_total"), weftctl_jint(o, "acked_total"),
	       weftctl_jint(o, "expired_total"), weftctl_jint(o, "direct_total"));
	printf("refused       ");
	json_object_foreach((json_t *)json_object_get(o, "refused"), k, x)
		if (json_integer_value(x))
			printf(" %s %lld", k, (long long)json_integer_value(x));
	printf("\ninbox          %lld messages (fetched %lld in %lld runs, %lld errors)\n",
	       weftctl_jint(o, "inbox"), weftctl_jint(o, "fetched_total"),
	       weftctl_jint(o, "fetch_runs"), weftctl_jint(o, "fetch_errors"));
	printf("our anchors    (%s)\n", weftctl_jstr(o, "anchors_from"));
	json_array_foreach(json_object_get(o, "anchors"), i, x)
		printf("  %.16s  %s\n", weftctl_jstr(x, "key"), weftctl_jstr(x, "addr"));
	json_array_foreach(json_object_get(o, "senders"), i, x)
		printf("sender         %.16s score %lld, refused %lld\n", weftctl_jstr(x, "key"),
		       weftctl_jint(x, "score"), weftctl_jint(x, "refused"));
}

/* --file F: the file's bytes as base64 (at most MSG_MAX bytes). */
static int file_b64(const char *path, json_t *body)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(MSG_MAX + 1);
	size_t n = 0, bl;
	char *b64;

	if (!f || !buf) {
		fprintf(stderr, "weftctl: %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		free(buf);
		return WEFTCTL_ERR;
	}
	n = fread(buf, 1, MSG_MAX + 1, f);
	fclose(f);
	if (n > MSG_MAX) {
		fprintf(stderr, "weftctl: %s: a message holds at most %d bytes\n", path, MSG_MAX);
		free(buf);
		return WEFTCTL_ERR;
	}
	bl = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	b64 = malloc(bl);
	if (!b64) {
		free(buf);
		return WEFTCTL_ERR;
	}
	sodium_bin2base64(b64, bl, buf, n, sodium_base64_VARIANT_ORIGINAL);
	json_object_set_new(body, "data_b64", json_string(b64));
	free(b64);
	free(buf);
	return WEFTCTL_OK;
}

static int do_send(struct weftctl *ctx, int argc, char **argv)
{
	json_t *body;
	const char *file = NULL, *data = NULL;
	long long ttl = 0;
	int no_direct = 0, rc;

	if (argc < 3)
		return weftctl_usage(ctx);
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--file") && i + 1 < argc)
			file = argv[++i];
		else if (!strcmp(argv[i], "--data") && i + 1 < argc)
			data = argv[++i];
		else if (!strcmp(argv[i], "--ttl") && i + 1 < argc)
			ttl = atoll(argv[++i]);
		else if (!strcmp(argv[i], "--no-direct"))
			no_direct = 1;
		else
			return weftctl_usage(ctx);
	}
	if (!!file == !!data || ttl < 0)
		return weftctl_usage(ctx);
	body = json_pack("{s:s,s:I,s:b}", "to", argv[2], "ttl_s", (json_int_t)ttl, "no_direct",
			 no_direct);
	if (data) {
		json_object_set_new(body, "data", json_string(data));
	} else if (file_b64(file, body) != WEFTCTL_OK) {
		json_decref(body);
		return WEFTCTL_ERR;
	}
	rc = weftctl_show(ctx, "POST", "/v1/msg/send", body, print_send);
	json_decref(body);
	return rc;
}

static int do_read(struct weftctl *ctx, const char *id)
{
	char path[128];
	json_t *o = NULL;
	unsigned char *bin;
	size_t bl;
	const char *b64;
	int rc;

	snprintf(path, sizeof(path), "/v1/msg/read/%s", id);
	if (ctx->json)
		return weftctl_show(ctx, "GET", path, NULL, NULL);
	rc = weftctl_do(ctx, "GET", path, NULL, &o);
	if (rc != WEFTCTL_OK)
		return rc;
	b64 = weftctl_jstr(o, "data_b64");
	bin = malloc(strlen(b64) / 4 * 3 + 3);
	if (!bin || sodium_base642bin(bin, strlen(b64) / 4 * 3 + 3, b64, strlen(b64), NULL, &bl,
				      NULL, sodium_base64_VARIANT_ORIGINAL)) {
		fprintf(stderr, "weftctl: the daemon's answer is not base64\n");
		rc = WEFTCTL_ERR;
	} else {
		char when[32];

		when_utc(weftctl_jint(o, "written"), when, sizeof(when));
		fprintf(stderr, "from %s, written %s UTC\n", weftctl_jstr(o, "sender"), when);
		fwrite(bin, 1, bl, stdout);
	}
	free(bin);
	json_decref(o);
	return rc;
}

int weftctl_msg(struct weftctl *ctx, int argc, char **argv)
{
	char path[128];

	if (argc < 2)
		return weftctl_usage(ctx);
	if (!strcmp(argv[1], "send"))
		return do_send(ctx, argc, argv);
	if (!strcmp(argv[1], "inbox") && argc == 2)
		return weftctl_show(ctx, "GET", "/v1/msg/inbox", NULL, print_inbox);
	if (!strcmp(argv[1], "read") && argc == 3)
		return do_read(ctx, argv[2]);
	if (!strcmp(argv[1], "rm") && argc == 3) {
		snprintf(path, sizeof(path), "/v1/msg/%s", argv[2]);
		return weftctl_show(ctx, "DELETE", path, NULL, print_deleted);
	}
	if (!strcmp(argv[1], "fetch") && argc == 2)
		return weftctl_show(ctx, "POST", "/v1/msg/fetch", NULL, NULL);
	if (!strcmp(argv[1], "status") && argc == 2)
		return weftctl_show(ctx, "GET", "/v1/mailbox/status", NULL, print_status);
	return weftctl_usage(ctx);
}
