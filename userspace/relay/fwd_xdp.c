// SPDX-License-Identifier: MIT
/*
 * The relay's kernel half (xdp mode): the XDP program's circuit maps
 * (docs/XDP.md, "Circuit map"). A circuit whose two ends are bound gets
 * its state in WXDP_MAP_CIRC[slot] and one hop per end in WXDP_MAP_RELAY
 * (keyed by relay port + the end's latched address, pointing at the other
 * end with the link-layer the other end's bind arrived by, from
 * WXDP_MAP_RL2). From then on its packets are forwarded by the program;
 * userspace reads the counters back (relay_kern_sync) for stats, expiry
 * and on_end. All calls with rf->mu held.
 */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "weft/bpflib.h"
#include "relay/relay_int.h"
#include "weft/log.h"
#include "weft/relay_policy.h"
#include "weft/util.h"
#include "weft/xdp.h"

int relay_kern_init(struct relay_fwd *rf)
{
	struct wxdp_relay_cfg rc = { .port_min = rf->o.port_min, .port_max = rf->o.port_max };
	struct wxdp_circ zero_c;
	__u32 zero = 0;

	rf->circ_fd = wxdp_fd(rf->o.xdp, WXDP_FD_CIRC);
	rf->hop_fd = wxdp_fd(rf->o.xdp, WXDP_FD_RELAY);
	rf->rl2_fd = wxdp_fd(rf->o.xdp, WXDP_FD_RL2);
	if (rf->circ_fd < 0 || rf->hop_fd < 0 || rf->rl2_fd < 0)
		return -EINVAL;
	/* Slots left by an earlier weftd on pinned maps are cleared. */
	memset(&zero_c, 0, sizeof(zero_c));
	for (__u32 i = 0; i < rf->nslots; i++)
		(void)bpf_map_update_elem(rf->circ_fd, &i, &zero_c, BPF_ANY);
	if (bpf_map_update_elem(wxdp_fd(rf->o.xdp, WXDP_FD_RCFG), &zero, &rc, BPF_ANY))
		return -errno;
	return 0;
}

void relay_kern_fini(struct relay_fwd *rf)
{
	struct wxdp_relay_cfg rc = { 0 };
	__u32 zero = 0;

	if (rf->o.xdp)
		(void)bpf_map_update_elem(wxdp_fd(rf->o.xdp, WXDP_FD_RCFG), &zero, &rc, BPF_ANY);
}

static void hop_key(struct wxdp_relay_key *k, const struct io_addr *a, uint16_t rport)
{
	wrelay_key(k, a->family == AF_INET ? 4 : 6, a->addr, htons(a->port), htons(rport));
}

int relay_kern_install(struct relay_fwd *rf, struct relay_circ *c)
{
	struct wxdp_relay_hop hop[2];
	struct wxdp_relay_key k[2];
	struct wxdp_relay_l2 l2[2];
	__u32 slot = (__u32)(c - rf->slots);
	int e, err;

	if (c->end[0].addr.family != c->end[1].addr.family)
		return -EAFNOSUPPORT; /* no 4<->6 translation in the kernel */
	for (e = 0; e < 2; e++) {
		hop_key(&k[e], &c->end[e].addr, c->port);
		if (bpf_map_lookup_elem(rf->rl2_fd, &k[e], &l2[e]))
			return -ENOENT; /* the bind's link layer was not seen */
	}
	for (e = 0; e < 2; e++) {
		memset(&hop[e], 0, sizeof(hop[e]));
		memcpy(hop[e].addr, c->end[!e].addr.addr, 16);
		hop[e].dport = htons(c->end[!e].addr.port);
		hop[e].family = k[e].family;
		hop[e].dir = (__u8)e;
		hop[e].slot = slot;
		hop[e].id = c->id;
		hop[e].l2 = l2[!e];
	}
	/* The state first, then the hops that point at it. A rebind (an end
	 * moved) keeps the kernel's live state and overwrites the hops in
	 * place, then deletes the moved end's old key: no moment in which the
	 * circuit's datagrams go to userspace. */
	if (!c->in_kernel && bpf_map_update_elem(rf->circ_fd, &slot, &c->st, BPF_ANY))
		return -errno;
	for (e = 0; e < 2; e++) {
		if (bpf_map_update_elem(rf->hop_fd, &k[e], &hop[e], BPF_ANY)) {
			err = -errno;
			if (c->in_kernel)
				relay_kern_remove(rf, c);
			else if (e)
				(void)bpf_map_delete_elem(rf->hop_fd, &k[0]);
			return err;
		}
	}
	if (c->in_kernel)
		for (e = 0; e < 2; e++)
			if (memcmp(&c->hop_key[e], &k[0], sizeof(k[0])) &&
			    memcmp(&c->hop_key[e], &k[1], sizeof(k[1])))
				(void)bpf_map_delete_elem(rf->hop_fd, &c->hop_key[e]);
	c->hop_key[0] = k[0];
	c->hop_key[1] = k[1];
	c->in_kernel = 1;
	c->installed_ns = util_now_ns();
	return 0;
}

void relay_kern_sync(struct relay_fwd *rf, struct relay_circ *c)
{
	__u32 slot = (__u32)(c - rf->slots);
	struct wxdp_circ k;

	if (!bpf_map_lookup_elem(rf->circ_fd, &slot, &k) && k.id == c->id)
		c->st = k;
}

void relay_kern_remove(struct relay_fwd *rf, struct relay_circ *c)
{
	__u32 slot = (__u32)(c - rf->slots);
	struct wxdp_circ zero_c;

	relay_kern_sync(rf, c);
	(void)bpf_map_delete_elem(rf->hop_fd, &c->hop_key[0]);
	(void)bpf_map_delete_elem(rf->hop_fd, &c->hop_key[1]);
	memset(&zero_c, 0, sizeof(zero_c));
	(void)bpf_map_update_elem(rf->circ_fd, &slot, &zero_c, BPF_ANY);
	c->in_kernel = 0;
}
