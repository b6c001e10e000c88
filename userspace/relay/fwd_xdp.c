// SPDX-License-Identifier: MIT
/*
 * The relay's kernel half (xdp mode): WXDP_MAP_CIRC and WXDP_MAP_RELAY of
 * weft's XDP program. This build's program has no circuit maps yet, so
 * xdp mode is refused (relay_fwd_new: -EOPNOTSUPP) and circuits stay in
 * userspace.
 */
#include <errno.h>

#include "relay/relay_int.h"

int relay_kern_init(struct relay_fwd *rf)
{
	return -EOPNOTSUPP;
}

int relay_kern_install(struct relay_fwd *rf, struct relay_circ *c)
{
	return -EOPNOTSUPP;
}

void relay_kern_sync(struct relay_fwd *rf, struct relay_circ *c)
{
}

void relay_kern_remove(struct relay_fwd *rf, struct relay_circ *c)
{
	c->in_kernel = 0;
}

void relay_kern_fini(struct relay_fwd *rf)
{
}
