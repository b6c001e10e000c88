// SPDX-License-Identifier: MIT
/*
 * The reverse path of queries (docs/MESH.md "Queries without identity"):
 * query id -> the neighbour it came from, bounded in entries, in time (the
 * Query's ttl) and in the Responses it lets back (the Query's result
 * limit), so a relay cannot be made to carry answers nobody asked for.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mesh.h"
#include "mesh_int.h"

struct path_ent {
	uint64_t pfx;
	uint8_t id[MESH_ID_LEN];
	uint64_t token;
	uint64_t expires_ms;
	uint32_t answers;
	uint32_t n_seen;
	uint64_t seen[MESH_QUERY_RESULTS_MAX]; /* announce id prefixes sent back */
};

struct mesh_path {
	struct path_ent *e;
	uint32_t n, max;
};

int mesh_path_new(struct mesh_path **out, uint32_t max)
{
	struct mesh_path *p;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->max = max ? max : 1024;
	p->e = calloc(p->max, sizeof(*p->e));
	if (!p->e) {
		free(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

void mesh_path_free(struct mesh_path *p)
{
	if (!p)
		return;
	free(p->e);
	free(p);
}

static struct path_ent *lookup(struct mesh_path *p, const uint8_t *id)
{
	uint64_t pfx = mesh_rd(id, 8);

	for (uint32_t i = 0; i < p->n; i++)
		if (p->e[i].pfx == pfx && !memcmp(p->e[i].id, id, MESH_ID_LEN))
			return &p->e[i];
	return NULL;
}

int mesh_path_add(struct mesh_path *p, const uint8_t id[MESH_ID_LEN], uint64_t token,
		  uint32_t answers, uint64_t expires_ms)
{
	struct path_ent *x;

	if (lookup(p, id))
		return -EALREADY;
	if (p->n < p->max) {
		x = &p->e[p->n++];
	} else {
		x = &p->e[0];
		for (uint32_t i = 1; i < p->n; i++)
			if (p->e[i].expires_ms < x->expires_ms)
				x = &p->e[i];
	}
	memcpy(x->id, id, MESH_ID_LEN);
	x->pfx = mesh_rd(id, 8);
	x->token = token;
	x->answers = answers < MESH_QUERY_RESULTS_MAX ? answers : MESH_QUERY_RESULTS_MAX;
	x->expires_ms = expires_ms;
	x->n_seen = 0;
	return 0;
}

int mesh_path_take(struct mesh_path *p, const uint8_t id[MESH_ID_LEN],
		   const uint8_t announce[MESH_ID_LEN], uint64_t now_ms, uint64_t *token)
{
	struct path_ent *x = lookup(p, id);
	uint64_t a = mesh_rd(announce, 8);

	if (!x || x->expires_ms <= now_ms)
		return -ENOENT;
	/* Every store reached may hold the same announce: only the first
	 * Response carrying it goes back. */
	for (uint32_t i = 0; i < x->n_seen; i++)
		if (x->seen[i] == a)
			return -EALREADY;
	if (x->n_seen == x->answers)
		return -EDQUOT;
	x->seen[x->n_seen++] = a;
	*token = x->token;
	return 0;
}
