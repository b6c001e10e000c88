// SPDX-License-Identifier: MIT
/* weftctl's shared output helpers: fields of the daemon's JSON replies,
 * the --json or human view of a reply, usage text and byte counts. Every
 * noun uses these instead of a private copy, so a missing field reads the
 * same everywhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weftctl.h"

long long weftctl_jint(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

double weftctl_jreal(const json_t *o, const char *key)
{
	return json_real_value(json_object_get(o, key));
}

int weftctl_jtrue(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

const char *weftctl_jstr_or(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : dflt;
}

const char *weftctl_jstr(const json_t *o, const char *key)
{
	return weftctl_jstr_or(o, key, "-");
}

void weftctl_print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s) {
		puts(s);
		free(s);
	}
}

int weftctl_print(struct weftctl *ctx, json_t *reply, void (*render)(const json_t *reply))
{
	if (ctx->json || !render)
		weftctl_print_json(reply);
	else
		render(reply);
	json_decref(reply);
	return WEFTCTL_OK;
}

void weftctl_print_lines(FILE *out, const char *prefix, const char *text)
{
	while (text && *text) {
		size_t l = strcspn(text, "\n");

		fprintf(out, "%s%.*s\n", prefix, (int)l, text);
		text += l;
		if (*text == '\n')
			text++;
	}
}

int weftctl_usage(const struct weftctl *ctx)
{
	weftctl_print_lines(stderr, "usage: weftctl ", ctx->noun->usage);
	return WEFTCTL_USAGE;
}

const char *weftctl_fmt_bytes(double b, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned int i = 0;

	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, units[i]);
	return buf;
}

static int bytes_key(const char *k, const char *const *bytes_keys)
{
	size_t n = strlen(k);

	if (n >= 6 && !strcmp(k + n - 6, "_bytes"))
		return 1;
	for (; bytes_keys && *bytes_keys; bytes_keys++)
		if (!strcmp(k, *bytes_keys))
			return 1;
	return 0;
}

void weftctl_print_kv(const json_t *o, const char *const *bytes_keys)
{
	const char *k;
	json_t *v;
	int w = 0;

	json_object_foreach((json_t *)o, k, v) if ((int)strlen(k) > w) w = (int)strlen(k);
	json_object_foreach((json_t *)o, k, v)
	{
		char b[32], *s;

		printf("%-*s ", w, k);
		if (json_is_integer(v) && bytes_key(k, bytes_keys))
			printf("%lld (%s)\n", (long long)json_integer_value(v),
			       weftctl_fmt_bytes((double)json_integer_value(v), b, sizeof(b)));
		else if (json_is_integer(v))
			printf("%lld\n", (long long)json_integer_value(v));
		else if (json_is_boolean(v))
			printf("%s\n", json_is_true(v) ? "yes" : "no");
		else if (json_is_string(v))
			printf("%s\n", json_string_value(v));
		else if (json_is_real(v))
			printf("%g\n", json_real_value(v));
		else if ((s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY))) {
			printf("%s\n", s);
			free(s);
		} else {
			printf("-\n");
		}
	}
}
