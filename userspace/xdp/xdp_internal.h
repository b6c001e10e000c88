/* SPDX-License-Identifier: MIT */
/* Private to userspace/xdp/: the loader handle shared by xdp.c, ban.c and
 * xdp_ctl.c. */
#ifndef WEFT_XDP_INTERNAL_H
#define WEFT_XDP_INTERNAL_H

#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <stdint.h>

#include "weft/xdp.h"

struct weft_xdp;
struct xdp_program;

struct wxdp {
	struct weft_xdp *skel;
	struct xdp_program *prog; /* NULL with no_attach */
	int ifindex;
	int mode; /* enum xdp_attach_mode; XDP_MODE_UNSPEC = not attached */
	char ifname[IF_NAMESIZE];
	char pin_dir[1024]; /* shorter than PATH_MAX: room for "/<map name>" */
	/* Sharing the interface with other weftd instances (docs/XDP.md):
	 * this instance's slot, the flock that says it is alive (a
	 * directory "owner<N>" in pin_dir), and whether it joined a program
	 * another instance attached (then mode and prog_id are that one's). */
	unsigned int owner;
	int owner_fd;
	int joined;
	uint32_t prog_id;
	wxdp_ban_change_fn on_ban_change;
	void *cb_arg;
	/* Serialises this process's changes of the exact-ban index (ban.c);
	 * wxdp_ns_lock() does it between instances sharing pinned maps. */
	pthread_mutex_t ban_mu;
};

/* Lock the netns directory of pin_dir (flock) for a read-modify-write of
 * maps the instances on it share: the fd (close() unlocks) or -errno,
 * -ETIMEDOUT after 5 s. */
int wxdp_ns_lock(const char *pin_dir);

/* 64-bit finaliser (MurmurHash3 fmix64): the policer's and the guard's
 * table hashes, keyed by a random seed. */
uint64_t wxdp_mix64(uint64_t x);

/* Validate family/prefixlen and clear host bits. 0 or -EINVAL. */
int wxdp_ban_norm(struct wxdp_ban *b);

#endif
