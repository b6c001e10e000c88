// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the mesh message layer's parsers. An envelope the
 * parser accepts has its body and reference inside the buffer, a type in
 * range, a body within its type's cap, and parses again to the same id
 * with another hop count; an Announce body the field parser accepts has
 * at most MESH_FIELDS_MAX fields pointing into the input; the filter
 * parser and matcher take the input as a filter (and the body as an
 * Announce) without reading past it; a Query body accepted names a filter
 * that parses; a JSON object accepted as a body is a valid body and
 * converts back; an inbox record accepted (a node's reservation) holds
 * bodies within their cap that are valid, and encodes back to the same
 * bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t body[] = "d4:city6:berlin4:renti450ee";
	static uint8_t copy[MESH_ENV_MAX];
	struct mesh_field fields[MESH_FIELDS_MAX];
	struct mesh_limits lim;
	struct mesh_filter f;
	struct mesh_env e, e2;
	enum mesh_drop why;
	const char *fl;
	size_t n, flen;
	uint32_t max;

	if (mesh_env_parse(data, size, &e, &why) == 0) {
		check(e.type >= 1 && e.type <= MESH_TYPE_MAX);
		check(e.body >= data && e.body + e.body_len <= data + size);
		check(e.n_endorse <= MESH_ENDORSE_MAX);
		check(size <= MESH_ENV_MAX);
		mesh_limits_default(&lim);
		mesh_env_check(&e, &lim, 1767225600000ull, &why);
		memcpy(copy, data, size);
		copy[1] ^= 0x55;
		check(mesh_env_parse(copy, size, &e2, &why) == 0);
		check(!memcmp(e.g.id, e2.g.id, MESH_ID_LEN));
	} else {
		check(why < MESH_DROP_N);
	}
	if (mesh_body_fields(data, size, fields, &n) == 0) {
		check(n <= MESH_FIELDS_MAX);
		for (size_t i = 0; i < n; i++)
			check((const uint8_t *)fields[i].name >= data &&
			      (const uint8_t *)fields[i].name + fields[i].name_len <= data + size);
	}
	if (mesh_filter_parse((const char *)data, size, &f) == 0) {
		check(f.n <= MESH_FILTER_CLAUSES);
		mesh_filter_match(&f, body, sizeof(body) - 1);
		mesh_filter_match(&f, data, size);
	}
	if (mesh_body_from_json((const char *)data, size, copy, sizeof(copy), &n) == 0) {
		char *js;

		/* A body from JSON is a valid body, and goes back to JSON. */
		check(n <= MESH_BODY_ANNOUNCE && mesh_body_fields(copy, n, NULL, NULL) == 0);
		check(mesh_body_to_json(copy, n, &js) == 0);
		free(js);
	}
	{
		static struct mesh_rsv r;
		static uint8_t again[MESH_RSV_REC_MAX];

		if (mesh_rsv_decode(data, size, &r) == 0) {
			check(r.data_len <= MESH_BODY_ANNOUNCE && r.answer_len <= MESH_BODY_ANNOUNCE);
			check(mesh_body_fields(r.data, r.data_len, NULL, NULL) == 0);
			check(mesh_rsv_encode(&r, again, sizeof(again), &n) == 0);
			check(n == size && !memcmp(again, data, size));
		}
	}
	if (mesh_query_parse(data, size, &fl, &flen, &max) == 0) {
		check(max >= 1 && max <= MESH_QUERY_RESULTS_MAX);
		check(mesh_filter_parse(fl, flen, &f) == 0);
	}
	return 0;
}
