// SPDX-License-Identifier: MIT
/*
 * Service versions and version ranges (include/weft/svc.h, docs/SERVICE.md
 * "Versions"): MAJOR.MINOR.PATCH packed into the descriptor's integer,
 * and the constraint lists `svc find --version` filters with. Parsers of
 * user input: every character checked, no NUL assumed past len.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "weft/svc.h"

enum { OP_EQ = 1, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

int svc_version_parse(const char *s, size_t len, uint32_t *out)
{
	uint32_t part[3] = {0, 0, 0};
	const uint32_t cap[3] = {SVC_VERSION_MAJOR_MAX, 999, 999};
	unsigned int np = 0, digits = 0;

	if (!len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9') {
			/* no leading zeros but "0" itself: one spelling each */
			if (digits == 1 && part[np] == 0)
				return -EINVAL;
			part[np] = part[np] * 10 + (uint32_t)(c - '0');
			if (part[np] > cap[np])
				return -EINVAL;
			digits++;
		} else if (c == '.' && digits && np < 2) {
			np++;
			digits = 0;
		} else {
			return -EINVAL;
		}
	}
	if (!digits)
		return -EINVAL;
	*out = part[0] * 1000000u + part[1] * 1000u + part[2];
	return 0;
}

void svc_version_fmt(uint32_t v, char *buf, size_t cap)
{
	snprintf(buf, cap, "%u.%u.%u", v / 1000000u, v / 1000u % 1000u, v % 1000u);
}

int svc_vrange_parse(const char *s, struct svc_vrange *out)
{
	memset(out, 0, sizeof(*out));
	while (*s == ' ')
		s++;
	if (!*s || !strcmp(s, "*"))
		return 0;
	for (;;) {
		const char *e;
		size_t l;
		uint8_t op = OP_EQ;

		while (*s == ' ')
			s++;
		if (s[0] == '>' && s[1] == '=')
			op = OP_GE, s += 2;
		else if (s[0] == '<' && s[1] == '=')
			op = OP_LE, s += 2;
		else if (s[0] == '=' && s[1] == '=')
			op = OP_EQ, s += 2;
		else if (s[0] == '!' && s[1] == '=')
			op = OP_NE, s += 2;
		else if (s[0] == '>')
			op = OP_GT, s++;
		else if (s[0] == '<')
			op = OP_LT, s++;
		else if (s[0] == '=')
			op = OP_EQ, s++;
		while (*s == ' ')
			s++;
		for (e = s; *e && *e != ',' && *e != ' '; e++)
			;
		l = (size_t)(e - s);
		if (out->n == SVC_VRANGE_MAX || svc_version_parse(s, l, &out->c[out->n].v))
			return -EINVAL;
		out->c[out->n++].op = op;
		while (*e == ' ')
			e++;
		if (!*e)
			return 0;
		if (*e != ',')
			return -EINVAL;
		s = e + 1;
	}
}

int svc_vrange_match(const struct svc_vrange *r, uint32_t v)
{
	for (uint32_t i = 0; i < r->n; i++) {
		uint32_t w = r->c[i].v;
		int ok;

		switch (r->c[i].op) {
		case OP_EQ:
			ok = v == w;
			break;
		case OP_NE:
			ok = v != w;
			break;
		case OP_LT:
			ok = v < w;
			break;
		case OP_LE:
			ok = v <= w;
			break;
		case OP_GT:
			ok = v > w;
			break;
		case OP_GE:
			ok = v >= w;
			break;
		default:
			ok = 0;
		}
		if (!ok)
			return 0;
	}
	return 1;
}
