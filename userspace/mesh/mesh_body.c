// SPDX-License-Identifier: MIT
/*
 * Announce bodies (docs/MESH.md "Bodies"): a flat, strict bencode
 * dictionary of named integer and string fields, what filters look at.
 */
#include <errno.h>
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

