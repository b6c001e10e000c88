/* SPDX-License-Identifier: MIT */
/* The mesh module's shared helpers (its files only). */
#ifndef WEFT_MESH_INT_H
#define WEFT_MESH_INT_H

#include <stdint.h>

static inline uint64_t mesh_rd(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void mesh_wr(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

#endif
