// SPDX-License-Identifier: MIT
/*
 * The io hub: default options, the backend of each mode and the mode
 * names. It names the backends (uring.c, xsk.c, mem.c); they never call
 * back here, and the address helpers they share live below them in addr.c.
 */
#include <errno.h>
#include <string.h>

#include "weft/io.h"

void io_opts_default(struct io_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->mode = IO_MODE_URING;
	opts->batch = 64;
	opts->wake_fd = -1;
	opts->uring_gro = 1;
	opts->uring_gso = 1;
	opts->xskmap_fd = -1;
}

const struct io_backend *io_backend_get(enum io_mode mode)
{
	switch (mode) {
	case IO_MODE_URING:
		return &io_backend_uring;
	case IO_MODE_XDP:
		return &io_backend_xsk;
	case IO_MODE_MEM:
		return &io_backend_mem;
	}
	return NULL;
}

const char *io_mode_name(enum io_mode mode)
{
	return mode == IO_MODE_XDP     ? "xdp"
	       : mode == IO_MODE_URING ? "uring"
	       : mode == IO_MODE_MEM   ? "mem"
				       : "?";
}

int io_mode_parse(const char *s, enum io_mode *out)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "xdp")) {
		*out = IO_MODE_XDP;
		return 0;
	}
	if (!strcmp(s, "uring")) {
		*out = IO_MODE_URING;
		return 0;
	}
	return -EINVAL;
}
