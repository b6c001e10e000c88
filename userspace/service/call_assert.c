// SPDX-License-Identifier: MIT
/* Caller assertions: the caller's Ed25519 signature over one call, which a
 * provider hands to its HTTP backend (weft/svc.h, docs/SERVICE.md). */
#include <errno.h>
#include <string.h>

#include <nettle/sha2.h>

#include "weft/identity.h"
#include "weft/svc.h"

static const char assert_dom[] = SVC_ASSERT_DOMAIN;

int svc_assert_message(uint8_t out[SVC_ASSERT_MSG_MAX], const char *service, size_t service_len,
		       const char *method, size_t method_len, const uint8_t req_id[SVC_REQ_ID_LEN],
		       const uint8_t *body, size_t body_len, uint64_t time_ms)
{
	struct sha256_ctx h;
	size_t o = sizeof(assert_dom) - 1;

	if (!svc_name_valid((const uint8_t *)service, service_len) ||
	    !svc_method_valid((const uint8_t *)method, method_len) || (!body && body_len))
		return -EINVAL;
	memcpy(out, assert_dom, o);
	out[o++] = (uint8_t)service_len;
	memcpy(out + o, service, service_len);
	o += service_len;
	out[o++] = (uint8_t)method_len;
	if (method_len)
		memcpy(out + o, method, method_len);
	o += method_len;
	memcpy(out + o, req_id, SVC_REQ_ID_LEN);
	o += SVC_REQ_ID_LEN;
	sha256_init(&h);
	if (body_len)
		sha256_update(&h, body_len, body);
	sha256_digest(&h, SHA256_DIGEST_SIZE, out + o);
	o += SHA256_DIGEST_SIZE;
	for (int i = 0; i < 8; i++)
		out[o++] = (uint8_t)(time_ms >> (56 - 8 * i));
	return (int)o;
}

int svc_assert_sign(uint8_t out[SVC_ASSERT_LEN], const struct identity *id, const char *service,
		    size_t service_len, const char *method, size_t method_len,
		    const uint8_t req_id[SVC_REQ_ID_LEN], const uint8_t *body, size_t body_len,
		    uint64_t time_ms)
{
	uint8_t msg[SVC_ASSERT_MSG_MAX];
	int n = svc_assert_message(msg, service, service_len, method, method_len, req_id, body,
				   body_len, time_ms);

	if (n < 0)
		return n;
	memcpy(out, req_id, SVC_REQ_ID_LEN);
	memcpy(out + SVC_REQ_ID_LEN, msg + n - 8, 8);
	identity_sign(id, msg, (uint64_t)n, out + SVC_REQ_ID_LEN + 8);
	return 0;
}

int svc_assert_verify(const uint8_t a[SVC_ASSERT_LEN], const uint8_t key[IDENTITY_PK_LEN],
		      const char *service, size_t service_len, const char *method,
		      size_t method_len, const uint8_t *body, size_t body_len, uint64_t now_ms,
		      uint64_t skew_ms)
{
	uint8_t msg[SVC_ASSERT_MSG_MAX];
	uint64_t t = 0;
	int n;

	for (int i = 0; i < 8; i++)
		t = t << 8 | a[SVC_REQ_ID_LEN + i];
	n = svc_assert_message(msg, service, service_len, method, method_len, a, body, body_len,
			       t);
	if (n < 0 || identity_verify(key, msg, (uint64_t)n, a + SVC_REQ_ID_LEN + 8))
		return -EBADMSG;
	if (t > now_ms + skew_ms || t + skew_ms < now_ms)
		return -EKEYEXPIRED;
	return 0;
}
