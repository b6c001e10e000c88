// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the service descriptor decoder and verifier.
 * Invariants checked on every input the decoder accepts: every field is
 * within its cap, and re-signing the decoded fields with a fixed key gives
 * an encoding that decodes to the same fields (the encoder and decoder
 * agree on the canonical form).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/svc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t seed[IDENTITY_SEED_LEN] = {1};
	uint8_t out[SVC_DESC_MAX_LEN];
	struct svc_desc d, again;
	struct identity id;
	size_t n, meta = 0;

	(void)svc_desc_verify(data, size, NULL, 1700000000, SVC_DESC_DEFAULT_SKEW, NULL, NULL,
			      NULL);
	if (svc_desc_decode(&d, data, size))
		return 0;
	check(size <= SVC_DESC_MAX_LEN);
	check(d.name_len >= 1 && d.name_len <= SVC_NAME_MAX);
	check(d.n_endpoints >= 1 && d.n_endpoints <= SVC_DESC_MAX_ENDPOINTS);
	check(d.n_meta <= SVC_DESC_MAX_META);
	for (uint32_t i = 0; i < d.n_meta; i++)
		meta += d.meta[i].key_len + d.meta[i].val_len;
	check(meta <= SVC_DESC_META_BYTES);
	check(d.expires > d.created);

	identity_from_seed(&id, seed);
	check(svc_desc_sign(&d, &id, out, sizeof(out), &n) == 0);
	check(svc_desc_decode(&again, out, n) == 0);
	check(again.name_len == d.name_len && memcmp(again.name, d.name, d.name_len) == 0);
	check(again.n_endpoints == d.n_endpoints && again.n_meta == d.n_meta);
	check(again.created == d.created && again.expires == d.expires);
	check(again.version == d.version);
	check(svc_desc_verify(out, n, id.pk, d.created, 0, NULL, NULL, NULL) == 0);
	/* same owner as the input: the encoding is byte-identical but for
	 * owner and signature, so equal length */
	check(n == size);
	return 0;
}
