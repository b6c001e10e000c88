/* SPDX-License-Identifier: MIT */
/* The seal module's own helpers (not part of include/weft/seal.h). */
#ifndef WEFT_SEAL_INT_H
#define WEFT_SEAL_INT_H

#include <stddef.h>
#include <stdint.h>

/* Little-endian integers of the seal encodings (seal_item.c). */
void seal_put_le(uint8_t *p, uint64_t v, unsigned int bytes);
uint64_t seal_get_le(const uint8_t *p, unsigned int bytes);

#endif
