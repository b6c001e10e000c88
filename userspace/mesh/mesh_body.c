// SPDX-License-Identifier: MIT
/*
 * Announce bodies (docs/MESH.md "Bodies"): a flat, strict bencode
 * dictionary of named integer and string fields, what filters look at.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "weft/bencode.h"
#include "weft/mesh.h"

static int name_ok(const uint8_t *s, size_t n)
{
	if (n < 1 || n > MESH_FIELD_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

int mesh_body_fields(const uint8_t *body, size_t len, struct mesh_field *fields, size_t *n)
{
	struct bencode_node nodes[1 + 2 * MESH_FIELDS_MAX];
	struct bencode_doc doc = { nodes, 1 + 2 * MESH_FIELDS_MAX, 0, 2 };
	const struct bencode_node *root, *k;
	size_t i = 0;

	if (n)
		*n = 0;
	if (bencode_decode(&doc, body, len, BENCODE_STRICT, NULL) != 0)
		return -EBADMSG;
	root = bencode_root(&doc);
	if (root->type != BENCODE_DICT || root->count > MESH_FIELDS_MAX)
		return -EBADMSG;
	for (k = bencode_first(&doc, root); k; k = bencode_next(&doc, bencode_next(&doc, k))) {
		const struct bencode_node *v = bencode_next(&doc, k);

		if (!name_ok(k->s, k->slen))
			return -EBADMSG;
		if (v->type == BENCODE_STR) {
			if (v->slen > MESH_FIELD_VALUE_MAX)
				return -EBADMSG;
		} else if (v->type != BENCODE_INT) {
			return -EBADMSG;
		}
		if (fields) {
			fields[i].name = (const char *)k->s;
			fields[i].name_len = k->slen;
			fields[i].is_int = v->type == BENCODE_INT;
			fields[i].i = v->i;
			fields[i].s = v->s;
			fields[i].slen = v->slen;
		}
		i++;
	}
	if (n)
		*n = i;
	return 0;
}


struct key_ref {
	const char *k;
	json_t *v;
};

static int key_cmp(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;

	return strcmp(x->k, y->k); /* names are [a-z0-9_]: bytewise */
}

int mesh_body_from_json(const char *json, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	struct key_ref keys[MESH_FIELDS_MAX];
	struct bencode_buf b;
	json_error_t jerr;
	const char *k;
	size_t n = 0;
	json_t *root, *v;
	int err = 0;

	*out_len = 0;
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root) || json_object_size(root) > MESH_FIELDS_MAX) {
		json_decref(root);
		return -EINVAL;
	}
	json_object_foreach(root, k, v) {
		if (!name_ok((const uint8_t *)k, strlen(k)) ||
		    !(json_is_integer(v) ||
		      (json_is_string(v) && json_string_length(v) <= MESH_FIELD_VALUE_MAX))) {
			err = -EINVAL;
			break;
		}
		keys[n++] = (struct key_ref){ k, v };
	}
	if (!err) {
		qsort(keys, n, sizeof(keys[0]), key_cmp);
		bencode_buf_init(&b, out, cap);
		bencode_put_dict(&b);
		for (size_t i = 0; i < n; i++) {
			bencode_put_cstr(&b, keys[i].k);
			if (json_is_integer(keys[i].v))
				bencode_put_int(&b, json_integer_value(keys[i].v));
			else
				bencode_put_str(&b, json_string_value(keys[i].v),
						json_string_length(keys[i].v));
		}
		bencode_put_end(&b);
		if (b.err)
			err = cap >= MESH_BODY_ANNOUNCE ? -E2BIG : -ENOSPC;
		else if (b.len > MESH_BODY_ANNOUNCE)
			err = -E2BIG;
		else if (mesh_body_fields(out, b.len, NULL, NULL) != 0)
			err = -EINVAL; /* a key with a NUL inside: two keys alike */
		else
			*out_len = b.len;
	}
	json_decref(root);
	return err;
}

int mesh_body_to_json(const uint8_t *body, size_t len, char **out)
{
	struct mesh_field f[MESH_FIELDS_MAX];
	char name[MESH_FIELD_NAME_MAX + 1];
	json_t *root;
	size_t n;
	int err = 0;

	*out = NULL;
	if (mesh_body_fields(body, len, f, &n) != 0)
		return -EBADMSG;
	root = json_object();
	if (!root)
		return -ENOMEM;
	for (size_t i = 0; i < n && !err; i++) {
		json_t *v = f[i].is_int ? json_integer(f[i].i)
					: json_stringn((const char *)f[i].s, f[i].slen);

		memcpy(name, f[i].name, f[i].name_len);
		name[f[i].name_len] = 0;
		if (!v)
			err = f[i].is_int ? -ENOMEM : -EILSEQ;
		else if (json_object_set_new(root, name, v) != 0)
			err = -ENOMEM;
	}
	if (!err) {
		*out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
		if (!*out)
			err = -ENOMEM;
	}
	json_decref(root);
	return err;
}
