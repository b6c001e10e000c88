/* SPDX-License-Identifier: MIT */
/* The seal module's own helpers (not part of include/weft/seal.h). */
#ifndef WEFT_SEAL_INT_H
#define WEFT_SEAL_INT_H

#include <stddef.h>
#include <stdint.h>

/* Little-endian integers of the seal encodings (seal_item.c). */
void seal_put_le(uint8_t *p, uint64_t v, unsigned int bytes);
uint64_t seal_get_le(const uint8_t *p, unsigned int bytes);

/* XChaCha20-Poly1305 (aad 8 bytes) as seal_seg_* use it: enc: in (len) ->
 * out (len + tag); else in (len, tag last) -> out, -EBADMSG (out wiped)
 * when the tag does not match. sodium: libsodium's even when libcrypto
 * loaded (tests compare the two). */
/* 1 when libcrypto was loaded (after the first seal_xchacha). */
int seal_have_libcrypto(void);

int seal_xchacha(int enc, int sodium, const uint8_t key[32], const uint8_t nonce[24],
		 const uint8_t aad[8], const uint8_t *in, size_t len, uint8_t *out);

#endif
