// SPDX-License-Identifier: MIT
/*
 * Endorsements and verification levels (docs/MESH.md "Endorsements"): a
 * key vouches for a provider key for one service id at a level (endorsed,
 * registry, credential) until a time; the operator lists the endorsers it
 * trusts, each with the highest level it may grant.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mesh.h"
#include "weft/util.h"
#include "mesh_int.h"

static const char LABEL[] = "weft-mesh-endorse-v1";
#define LABEL_LEN (sizeof(LABEL) - 1)
#define BODY_LEN (MESH_ENDORSE_LEN - COMM_SIG_LEN)

static const char *const level_names[] = { "none", "endorsed", "registry", "credential" };

const char *mesh_level_name(unsigned int level)
{
	return level <= MESH_LEVEL_CREDENTIAL ? level_names[level] : "unknown";
}

int mesh_level_parse(const char *name)
{
	for (unsigned int i = 0; i <= MESH_LEVEL_CREDENTIAL; i++)
		if (!strcmp(name, level_names[i]))
			return (int)i;
	return -EINVAL;
}

static void msg_of(uint8_t *m, const uint8_t *body)
{
	memcpy(m, LABEL, LABEL_LEN);
	memcpy(m + LABEL_LEN, body, BODY_LEN);
}

int mesh_endorse_sign(const uint8_t endorser_sk[COMM_SK_LEN], uint8_t level, uint32_t service,
		      const uint8_t provider[MESH_PK_LEN], uint64_t expires_ms,
		      uint8_t out[MESH_ENDORSE_LEN])
{
	uint8_t m[LABEL_LEN + BODY_LEN], pk[32], sk[64];

	if (level < MESH_LEVEL_ENDORSED || level > MESH_LEVEL_CREDENTIAL)
		return -EINVAL;
	crypto_sign_seed_keypair(pk, sk, endorser_sk);
	sodium_memzero(sk, sizeof(sk));
	if (sodium_memcmp(pk, endorser_sk + 32, 32) != 0)
		return -EINVAL;
	out[0] = 1;
	out[1] = level;
	mesh_wr(out + 2, service, 4);
	memcpy(out + 6, provider, MESH_PK_LEN);
	mesh_wr(out + 6 + MESH_PK_LEN, expires_ms, 8);
	memcpy(out + 14 + MESH_PK_LEN, pk, MESH_PK_LEN);
	msg_of(m, out);
	crypto_sign_detached(out + BODY_LEN, NULL, m, sizeof(m), endorser_sk);
	return 0;
}

int mesh_endorse_parse(const uint8_t buf[MESH_ENDORSE_LEN], struct mesh_endorse *out)
{
	uint8_t m[LABEL_LEN + BODY_LEN];

	memset(out, 0, sizeof(*out));
	if (buf[0] != 1 || buf[1] < MESH_LEVEL_ENDORSED || buf[1] > MESH_LEVEL_CREDENTIAL)
		return -EBADMSG;
	out->level = buf[1];
	out->service = (uint32_t)mesh_rd(buf + 2, 4);
	memcpy(out->provider, buf + 6, MESH_PK_LEN);
	out->expires_ms = mesh_rd(buf + 6 + MESH_PK_LEN, 8);
	memcpy(out->endorser, buf + 14 + MESH_PK_LEN, MESH_PK_LEN);
	msg_of(m, buf);
	if (crypto_sign_verify_detached(buf + BODY_LEN, m, sizeof(m), out->endorser) != 0)
		return -EBADMSG;
	return 0;
}

int mesh_trust_add(struct mesh_trust *t, const char *entry)
{
	const char *colon = strchr(entry, ':');
	char hex[65];
	int level;

	if (!colon || colon - entry != 64)
		return -EINVAL;
	memcpy(hex, entry, 64);
	hex[64] = 0;
	level = mesh_level_parse(colon + 1);
	if (level < MESH_LEVEL_ENDORSED)
		return -EINVAL;
	if (t->n >= MESH_TRUST_MAX)
		return -ENOSPC;
	if (util_unhex(t->e[t->n].pk, MESH_PK_LEN, hex) != 0)
		return -EINVAL;
	t->e[t->n].max_level = (uint8_t)level;
	t->n++;
	return 0;
}

unsigned int mesh_level(const struct mesh_trust *t, const struct mesh_env *e, uint64_t now_ms)
{
	unsigned int best = MESH_LEVEL_NONE;

	if (!t)
		return best;
	for (unsigned int i = 0; i < e->n_endorse; i++) {
		const struct mesh_endorse *en = &e->endorse[i];

		if (en->expires_ms <= now_ms)
			continue;
		for (unsigned int j = 0; j < t->n; j++) {
			unsigned int l;

			if (memcmp(t->e[j].pk, en->endorser, MESH_PK_LEN))
				continue;
			l = en->level < t->e[j].max_level ? en->level : t->e[j].max_level;
			if (l > best)
				best = l;
		}
	}
	return best;
}
