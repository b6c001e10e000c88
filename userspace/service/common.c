// SPDX-License-Identifier: MIT
/* Service fabric: error class names, name rules, service ids. */
#include <errno.h>
#include <string.h>

#include <nettle/sha1.h>

#include "weft/blake3.h"
#include "weft/identity.h"
#include "weft/svc.h"

static const char *const svc_err_names[SVC_ERR__COUNT] = {
    [SVC_OK] = "ok",
    [SVC_ERR_BAD_REQUEST] = "bad_request",
    [SVC_ERR_NOT_FOUND] = "not_found",
    [SVC_ERR_RATE_LIMITED] = "rate_limited",
    [SVC_ERR_TOO_LARGE] = "too_large",
    [SVC_ERR_OVERLOADED] = "overloaded",
    [SVC_ERR_BACKEND_ERROR] = "backend_error",
    [SVC_ERR_TIMEOUT] = "timeout",
    [SVC_ERR_BANNED] = "banned",
    [SVC_ERR_BACKEND_PROTOCOL] = "backend_protocol",
};

const char *svc_err_name(unsigned int e)
{
	return e < SVC_ERR__COUNT ? svc_err_names[e] : "unknown";
}

static int svc_lower_alnum(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int svc_name_valid(const uint8_t *name, size_t len)
{
	if (!name || len == 0 || len > SVC_NAME_MAX || !svc_lower_alnum(name[0]))
		return 0;
	/* the gateway's own mesh routes in gateway.services (docs/SERVICE.md) */
	if (len == 8 && !memcmp(name, "mesh-msg", 8))
		return 0;
	for (size_t i = 1; i < len; i++) {
		uint8_t c = name[i];

		if (!svc_lower_alnum(c) && c != '.' && c != '_' && c != '-')
			return 0;
	}
	return 1;
}

int svc_method_valid(const uint8_t *m, size_t len)
{
	if (len > SVC_METHOD_MAX || (len && !m))
		return 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = m[i];

		if (!svc_lower_alnum(c) && !(c >= 'A' && c <= 'Z') && c != '.' && c != '_' &&
		    c != '-' && c != '/')
			return 0;
	}
	return 1;
}

#define SVC_ID_DOMAIN "weft:svc:id:v1"

void svc_id(uint8_t out[SVC_ID_LEN], const uint8_t owner[IDENTITY_PK_LEN], const char *name,
	    size_t name_len)
{
	struct blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, SVC_ID_DOMAIN, strlen(SVC_ID_DOMAIN));
	blake3_hasher_update(&h, owner, IDENTITY_PK_LEN);
	blake3_hasher_update(&h, name, name_len);
	blake3_hasher_finalize(&h, out, SVC_ID_LEN);
}

int svc_name_target(uint8_t out[20], const char *name, size_t name_len)
{
	static const char prefix[] = "weft:svc:";
	struct sha1_ctx c;

	sha1_init(&c);
	sha1_update(&c, sizeof(prefix) - 1, (const uint8_t *)prefix);
	sha1_update(&c, name_len, (const uint8_t *)name);
	sha1_digest(&c, SHA1_DIGEST_SIZE, out);
	return 0;
}

int svc_private_target(uint8_t out[20], const char *name, size_t name_len,
		       const uint8_t key[IDENTITY_PK_LEN])
{
	static const char prefix[] = "weft:svc:p:";
	struct sha1_ctx c;

	sha1_init(&c);
	sha1_update(&c, sizeof(prefix) - 1, (const uint8_t *)prefix);
	sha1_update(&c, IDENTITY_PK_LEN, key);
	sha1_update(&c, name_len, (const uint8_t *)name);
	sha1_digest(&c, SHA1_DIGEST_SIZE, out);
	return 0;
}

/* ---------------------------------------------------------- key claims */

static const char claim_dom[] = "weft-svc-claim-v1\n";

static void claim_msg(uint8_t msg[sizeof(claim_dom) - 1 + 20 + 8], const uint8_t target[20],
		      uint64_t t)
{
	memcpy(msg, claim_dom, sizeof(claim_dom) - 1);
	memcpy(msg + sizeof(claim_dom) - 1, target, 20);
	for (int i = 0; i < 8; i++)
		msg[sizeof(claim_dom) - 1 + 20 + i] = (uint8_t)(t >> (56 - 8 * i));
}

void svc_claim_sign(uint8_t out[SVC_CLAIM_LEN], const struct identity *id,
		    const uint8_t target[20], uint64_t t)
{
	uint8_t msg[sizeof(claim_dom) - 1 + 20 + 8];

	claim_msg(msg, target, t);
	memcpy(out, id->pk, IDENTITY_PK_LEN);
	memcpy(out + IDENTITY_PK_LEN, msg + sizeof(claim_dom) - 1 + 20, 8);
	identity_sign(id, msg, sizeof(msg), out + IDENTITY_PK_LEN + 8);
}

int svc_claim_verify(const uint8_t claim[SVC_CLAIM_LEN], const uint8_t target[20], uint64_t now,
		     uint8_t key_out[IDENTITY_PK_LEN])
{
	uint8_t msg[sizeof(claim_dom) - 1 + 20 + 8];
	uint64_t t = 0;

	for (int i = 0; i < 8; i++)
		t = t << 8 | claim[IDENTITY_PK_LEN + i];
	claim_msg(msg, target, t);
	if (identity_verify(claim, msg, sizeof(msg), claim + IDENTITY_PK_LEN + 8))
		return -EBADMSG;
	if (t > now + SVC_CLAIM_SKEW_S || t + SVC_CLAIM_MAX_AGE_S < now)
		return -EKEYEXPIRED;
	memcpy(key_out, claim, IDENTITY_PK_LEN);
	return 0;
}
