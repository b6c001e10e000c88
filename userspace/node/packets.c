// SPDX-License-Identifier: MIT
/*
 * What meets a datagram before its worker's handler: the packet policy
 * (the XDP program, or a software policer per worker, behind the guard)
 * and, on io_uring sockets, the kernel's choice of the worker
 * (node_steer). Called by node.c while the node is made.
 */
#include <errno.h>
#include <linux/filter.h>
#include <string.h>
#include <unistd.h>

#include "weft/engine.h"
#include "weft/guard.h"
#include "weft/log.h"
#include "weft/quic.h"
#include "weft/xdp.h"
#include "node_int.h"

/*
 * Packet policy: in xdp mode load and attach the XDP program; otherwise one
 * software policer per worker. Either way the guard fronts it, restores the
 * persisted bans and serves /v1/xdp/... and /v1/bans.
 */
int node_policy_init(struct node *n)
{
	const struct weft_config *cfg = &n->cfg;
	struct guard_opts go = { 0 };
	struct wxdp_config wc;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int err;

	wxdp_config_default(&wc);
	memset(wc.quic_ports, 0, sizeof(wc.quic_ports));
	memset(wc.dht_ports, 0, sizeof(wc.dht_ports));
	wc.quic_ports[0] = (uint16_t)cfg->quic_port;
	wc.dht_ports[0] = (uint16_t)cfg->dht_port;
	wc.unval_quic = (struct wxdp_rate){ cfg->unval_quic_pps, cfg->unval_quic_burst };
	wc.unval_initial = (struct wxdp_rate){ cfg->unval_initial_pps, cfg->unval_initial_burst };
	wc.unval_dht = (struct wxdp_rate){ cfg->unval_dht_pps, cfg->unval_dht_burst };
	n->workers = cfg->workers ? cfg->workers : (unsigned int)(ncpu > 0 ? ncpu : 1);
	if (n->workers > ENGINE_MAX_WORKERS)
		n->workers = ENGINE_MAX_WORKERS;
	if (cfg->xdp_ifname[0] && strcmp(cfg->io, "uring") != 0 && !n->sim_host) {
		struct wxdp_opts xo = { 0 };

		xo.ifname = cfg->xdp_ifname;
		xo.skb_mode = strcmp(cfg->xdp_mode, "generic") == 0;
		xo.pin_root = cfg->xdp_pin_root;
		xo.config = &wc;
		err = wxdp_new(&n->xdp, &xo);
		if (err) {
			log_error("node", "cannot attach XDP to %s: %s", cfg->xdp_ifname,
				  strerror(-err));
			return err;
		}
		n->io_mode = "xdp";
		go.xdp = n->xdp;
	} else {
		go.npolicers = n->workers;
	}
	go.config = &wc;
	go.store = n->store;
	err = guard_new(&n->guard, &go);
	if (err) {
		log_error("node", "packet policy: %s", strerror(-err));
		return err;
	}
	return guard_ctl_register(n->guard, n->ctl);
}

/* uring: the kernel hands each QUIC datagram to the worker that owns its
 * connection (quic_cid_route_cbpf), not to the one its 4-tuple hashes to;
 * without it the replies to a connection we dialed went through another
 * worker, copied and handed over, half the time (docs/QUIC.md "Worker
 * routing"). */
void node_steer(struct node *n, struct engine_opts *eo, struct sock_fprog *fp,
		struct sock_filter *insns)
{
	int len = n->workers > 1
		      ? quic_cid_route_cbpf(n->workers, insns, QUIC_CID_ROUTE_CBPF_LEN)
		      : -EINVAL;

	if (len <= 0)
		return;
	fp->len = (unsigned short)len;
	fp->filter = insns;
	eo->steer_prog = fp;
	eo->steer_port = (uint16_t)n->cfg.quic_port;
}
