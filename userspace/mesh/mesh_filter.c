// SPDX-License-Identifier: MIT
/*
 * The query filter language (docs/MESH.md "Filters"): clauses `field op
 * value` joined by `,` (and), op one of = != < <= > >= ^=, on the
 * top-level fields of an Announce body. Small on purpose: no
 * alternatives, no nesting, no patterns, so a match costs at most
 * MESH_FILTER_CLAUSES lookups among MESH_FIELDS_MAX fields.
 */
#include <errno.h>
#include <string.h>

#include "weft/bencode.h"
#include "weft/mesh.h"

static int name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* A canonical decimal integer (no '+', no leading zeros, no "-0"). */
static int int_of(const uint8_t *s, size_t n, int64_t *out)
{
	size_t i = 0;
	int neg = 0;
	uint64_t v = 0, lim;

	if (n && s[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == n || n - i > 19 || (s[i] == '0' && (n - i > 1 || neg)))
		return 0;
	lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (v > (lim - (uint64_t)(s[i] - '0')) / 10u)
			return 0;
		v = v * 10u + (uint64_t)(s[i] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 1;
}

static int clause_parse(const char *s, size_t n, struct mesh_clause *c)
{
	size_t i = 0, ol;

	while (i < n && name_char(s[i]))
		i++;
	if (i == 0 || i > MESH_FIELD_NAME_MAX)
		return i ? -E2BIG : -EINVAL;
	memcpy(c->name, s, i);
	c->name[i] = 0;
	c->name_len = i;
	if (n - i >= 2 && s[i] == '^' && s[i + 1] == '=') {
		c->op = MESH_OP_PREFIX, ol = 2;
	} else if (n - i >= 2 && s[i] == '!' && s[i + 1] == '=') {
		c->op = MESH_OP_NE, ol = 2;
	} else if (n - i >= 2 && s[i] == '<' && s[i + 1] == '=') {
		c->op = MESH_OP_LE, ol = 2;
	} else if (n - i >= 2 && s[i] == '>' && s[i + 1] == '=') {
		c->op = MESH_OP_GE, ol = 2;
	} else if (n - i >= 1 && s[i] == '=') {
		c->op = MESH_OP_EQ, ol = 1;
	} else if (n - i >= 1 && s[i] == '<') {
		c->op = MESH_OP_LT, ol = 1;
	} else if (n - i >= 1 && s[i] == '>') {
		c->op = MESH_OP_GT, ol = 1;
	} else {
		return -EINVAL;
	}
	i += ol;
	c->vlen = n - i;
	if (c->vlen > MESH_FILTER_VALUE_MAX)
		return -E2BIG;
	for (size_t j = i; j < n; j++)
		if ((unsigned char)s[j] < 0x20 || s[j] == 0x7f)
			return -EINVAL;
	memcpy(c->val, s + i, c->vlen);
	c->is_int = int_of(c->val, c->vlen, &c->i);
	return 0;
}

int mesh_filter_parse(const char *s, size_t len, struct mesh_filter *out)
{
	size_t start = 0;

	memset(out, 0, sizeof(*out));
	if (len > MESH_FILTER_MAX)
		return -E2BIG;
	if (len == 0)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		int r;

		if (i < len && s[i] != ',')
			continue;
		if (out->n == MESH_FILTER_CLAUSES)
			return -E2BIG;
		r = clause_parse(s + start, i - start, &out->c[out->n]);
		if (r)
			return r;
		out->n++;
		start = i + 1;
	}
	return 0;
}

static int cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int r = memcmp(a, b, an < bn ? an : bn);

	if (r)
		return r;
	return an < bn ? -1 : an > bn;
}

static int holds(const struct mesh_clause *c, const struct mesh_field *f)
{
	int r;

	if (f->is_int) {
		if (!c->is_int || c->op == MESH_OP_PREFIX)
			return 0;
		r = f->i < c->i ? -1 : f->i > c->i;
	} else {
		if (c->op == MESH_OP_PREFIX)
			return f->slen >= c->vlen && !memcmp(f->s, c->val, c->vlen);
		r = cmp_bytes(f->s, f->slen, c->val, c->vlen);
	}
	switch (c->op) {
	case MESH_OP_EQ:
		return r == 0;
	case MESH_OP_NE:
		return r != 0;
	case MESH_OP_LT:
		return r < 0;
	case MESH_OP_LE:
		return r <= 0;
	case MESH_OP_GT:
		return r > 0;
	case MESH_OP_GE:
		return r >= 0;
	}
	return 0;
}

int mesh_filter_match(const struct mesh_filter *f, const uint8_t *body, size_t len)
{
	struct mesh_field fields[MESH_FIELDS_MAX];
	size_t n;

	if (mesh_body_fields(body, len, fields, &n) != 0)
		return 0;
	for (unsigned int i = 0; i < f->n; i++) {
		const struct mesh_clause *c = &f->c[i];
		const struct mesh_field *hit = NULL;

		for (size_t j = 0; j < n && !hit; j++)
			if (fields[j].name_len == c->name_len &&
			    !memcmp(fields[j].name, c->name, c->name_len))
				hit = &fields[j];
		if (!hit || !holds(c, hit))
			return 0;
	}
	return 1;
}

/* ---- Query bodies ---- */

int mesh_query_body(const char *filter, uint32_t max, uint8_t *out, size_t cap, size_t *out_len)
{
	struct mesh_filter f;
	struct bencode_buf b;
	size_t flen = strlen(filter);

	*out_len = 0;
	if (max < 1 || max > MESH_QUERY_RESULTS_MAX || mesh_filter_parse(filter, flen, &f) != 0)
		return -EINVAL;
	bencode_buf_init(&b, out, cap);
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "f");
	bencode_put_str(&b, filter, flen);
	bencode_put_cstr(&b, "n");
	bencode_put_int(&b, max);
	bencode_put_end(&b);
	if (b.err)
		return -ENOSPC;
	if (b.len > MESH_BODY_QUERY)
		return -E2BIG;
	*out_len = b.len;
	return 0;
}

int mesh_query_parse(const uint8_t *body, size_t len, const char **filter, size_t *flen,
		     uint32_t *max)
{
	struct bencode_node nodes[8];
	struct bencode_doc doc = { nodes, 8, 0, 2 };
	const struct bencode_node *root, *f, *n;
	struct mesh_filter fl;

	if (bencode_decode(&doc, body, len, BENCODE_STRICT, NULL) != 0)
		return -EBADMSG;
	root = bencode_root(&doc);
	if (root->type != BENCODE_DICT || root->count != 2)
		return -EBADMSG;
	f = bencode_dict_get_type(&doc, root, "f", BENCODE_STR);
	n = bencode_dict_get_type(&doc, root, "n", BENCODE_INT);
	if (!f || !n || n->i < 1 || n->i > (int64_t)MESH_QUERY_RESULTS_MAX)
		return -EBADMSG;
	if (mesh_filter_parse((const char *)f->s, f->slen, &fl) != 0)
		return -EBADMSG;
	*filter = (const char *)f->s;
	*flen = f->slen;
	*max = (uint32_t)n->i;
	return 0;
}
