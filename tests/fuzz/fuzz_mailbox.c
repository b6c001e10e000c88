// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the mailbox protocol core (stream type 0x50) and the
 * sealed-message opener. A request the parser accepts re-encodes to exactly
 * its bytes; the frame header never announces more than the limits; a LIST
 * the parser accepts has entries inside the buffer; mbox_open refuses
 * anything not sealed for the fixed key without reading past len.
 */
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mailbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[MBOX_REQ_MAX], plain[MBOX_MAX_SEALED], sk[64], pk[32];
	static int init;
	struct mbox_item items[MBOX_FETCH_MAX];
	struct mbox_opened m;
	struct mbox_req r;
	unsigned int n;
	uint8_t st, id[MBOX_ID_LEN];
	long need;
	int more;

	if (!init) {
		uint8_t seed[32] = { 2 };

		if (sodium_init() < 0)
			abort();
		crypto_sign_seed_keypair(pk, sk, seed);
		init = 1;
	}
	need = mbox_frame_need(data, size, MBOX_REQ_MAX);
	check(need == -EBADMSG || need == 0 || (need >= 5 && need <= (long)MBOX_REQ_MAX));
	if (!mbox_req_parse(data, size, &r)) {
		check(mbox_req_encode(&r, out, sizeof(out)) == (int)size);
		check(!memcmp(out, data, size));
	}
	if (!mbox_list_parse(data, size, &st, &more, items, MBOX_FETCH_MAX, &n))
		for (unsigned int i = 0; i < n; i++)
			check(items[i].sealed >= data && items[i].sealed + items[i].len <= data + size);
	mbox_result_parse(data, size, &st, id);
	if (size <= MBOX_MAX_SEALED && !mbox_open(sk, data, size, plain, sizeof(plain), &m))
		check(m.len + MBOX_SEAL_OVERHEAD == size);
	return 0;
}
