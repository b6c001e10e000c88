// SPDX-License-Identifier: MIT
/*
 * XDP loader: skeleton + libxdp attach + map pinning + map accessors.
 * See include/weft/xdp.h for the contract and docs/XDP.md for the layout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "weft/log.h"
#include "weft/util.h"
#include "weft/xdp.h"
#include "xdp/xdp_internal.h"
#include "weft_xdp.skel.h"

#define MOD "xdp"
#define DEFAULT_PIN_ROOT "/sys/fs/bpf/weft"
/* The kernel's internal "not supported" code, which netlink can leak. */
#define KERN_ENOTSUPP 524
#define BPF_FS_MAGIC_ 0xcafe4a11

static const char *const stat_names[WXDP_STAT__MAX] = {
	[WXDP_STAT_RX] = "rx",
	[WXDP_STAT_PASS_NOT_WEFT] = "pass_not_weft",
	[WXDP_STAT_PASS_FRAGMENT] = "pass_fragment",
	[WXDP_STAT_REDIRECT] = "redirect",
	[WXDP_STAT_PASS_NO_SOCKET] = "pass_no_socket",
	[WXDP_STAT_DROP_SHORT] = "drop_short",
	[WXDP_STAT_DROP_UDP_LEN] = "drop_udp_len",
	[WXDP_STAT_DROP_QUIC_FIXED] = "drop_quic_fixed_bit",
	[WXDP_STAT_DROP_DHT_NOT_DICT] = "drop_dht_not_dict",
	[WXDP_STAT_DROP_BANNED] = "drop_banned",
	[WXDP_STAT_DROP_RATE_QUIC] = "drop_rate_quic",
	[WXDP_STAT_DROP_RATE_INITIAL] = "drop_rate_quic_initial",
	[WXDP_STAT_DROP_RATE_DHT] = "drop_rate_dht",
	[WXDP_STAT_DROP_UNVAL_QUIC] = "drop_unvalidated_quic",
	[WXDP_STAT_DROP_UNVAL_INITIAL] = "drop_unvalidated_initial",
	[WXDP_STAT_DROP_UNVAL_DHT] = "drop_unvalidated_dht",
	[WXDP_STAT_DROP_RATE_STUN] = "drop_rate_stun",
	[WXDP_STAT_DROP_UNVAL_STUN] = "drop_unvalidated_stun",
};

uint64_t wxdp_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

const char *wxdp_stat_name(unsigned int idx)
{
	return idx < WXDP_STAT__MAX ? stat_names[idx] : NULL;
}

void wxdp_config_default(struct wxdp_config *c)
{
	memset(c, 0, sizeof(*c));
	c->quic.pps = WXDP_DEFAULT_QUIC_PPS;
	c->quic.burst = WXDP_DEFAULT_QUIC_BURST;
	c->quic_initial.pps = WXDP_DEFAULT_INITIAL_PPS;
	c->quic_initial.burst = WXDP_DEFAULT_INITIAL_BURST;
	c->dht.pps = WXDP_DEFAULT_DHT_PPS;
	c->dht.burst = WXDP_DEFAULT_DHT_BURST;
	c->quic_ports[0] = WXDP_DEFAULT_QUIC_PORT;
	c->dht_ports[0] = WXDP_DEFAULT_DHT_PORT;
	c->v6_prefix = WXDP_DEFAULT_V6_PREFIX;
	c->unval_quic.pps = WXDP_DEFAULT_UNVAL_QUIC_PPS;
	c->unval_quic.burst = WXDP_DEFAULT_UNVAL_QUIC_BURST;
	c->unval_initial.pps = WXDP_DEFAULT_UNVAL_INITIAL_PPS;
	c->unval_initial.burst = WXDP_DEFAULT_UNVAL_INITIAL_BURST;
	c->unval_dht.pps = WXDP_DEFAULT_UNVAL_DHT_PPS;
	c->unval_dht.burst = WXDP_DEFAULT_UNVAL_DHT_BURST;
	c->stun.pps = WXDP_DEFAULT_STUN_PPS;
	c->stun.burst = WXDP_DEFAULT_STUN_BURST;
	c->unval_stun.pps = WXDP_DEFAULT_UNVAL_STUN_PPS;
	c->unval_stun.burst = WXDP_DEFAULT_UNVAL_STUN_BURST;
}

int wxdp_config_check(const struct wxdp_config *c)
{
	const __u16 *all[2];

	if (!c || c->v6_prefix < 1 || c->v6_prefix > 128)
		return -EINVAL;
	all[0] = c->quic_ports;
	all[1] = c->dht_ports;
	for (size_t i = 0; i < sizeof(c->pad); i++)
		if (c->pad[i])
			return -EINVAL;
	for (int a = 0; a < 2; a++)
		for (int i = 0; i < WXDP_MAX_PORTS; i++) {
			if (!all[a][i])
				continue;
			for (int b = 0; b < 2; b++)
				for (int j = 0; j < WXDP_MAX_PORTS; j++)
					if ((a != b || i != j) && all[a][i] == all[b][j])
						return -EINVAL;
		}
	return 0;
}

/* --- CIDR helpers --- */

static void mask_addr(uint8_t *addr, unsigned int bytes, unsigned int prefixlen)
{
	for (unsigned int i = 0; i < bytes; i++) {
		int left = (int)prefixlen - 8 * (int)i;

		if (left >= 8)
			continue;
		addr[i] &= left <= 0 ? 0 : (uint8_t)(0xff << (8 - left));
	}
}

int wxdp_ban_norm(struct wxdp_ban *b)
{
	if (b->family == AF_INET) {
		if (b->prefixlen > 32)
			return -EINVAL;
		memset(b->addr + 4, 0, 12);
		mask_addr(b->addr, 4, b->prefixlen);
		return 0;
	}
	if (b->family == AF_INET6) {
		if (b->prefixlen > 128)
			return -EINVAL;
		mask_addr(b->addr, 16, b->prefixlen);
		return 0;
	}
	return -EINVAL;
}

int wxdp_cidr_parse(const char *s, struct wxdp_ban *b)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash;
	size_t hl;
	uint64_t plen = 0;

	if (!s || !b)
		return -EINVAL;
	memset(b, 0, sizeof(*b));
	slash = strchr(s, '/');
	hl = slash ? (size_t)(slash - s) : strlen(s);
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, b->addr) == 1) {
		b->family = AF_INET;
		plen = 32;
	} else if (inet_pton(AF_INET6, host, b->addr) == 1) {
		b->family = AF_INET6;
		plen = 128;
	} else {
		return -EINVAL;
	}
	if (slash && util_parse_u64(slash + 1, 0, plen, &plen))
		return -EINVAL;
	b->prefixlen = (uint8_t)plen;
	return wxdp_ban_norm(b);
}

const char *wxdp_cidr_fmt(const struct wxdp_ban *b, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(b->family == AF_INET ? AF_INET : AF_INET6, b->addr, a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s/%u", a, b->prefixlen);
	return buf;
}

/* --- lifecycle --- */

static int pin_dir_for(char *out, size_t len, const char *root, const char *ifname)
{
	struct stat st;
	int n;

	if (stat("/proc/self/ns/net", &st) < 0)
		return -errno;
	n = snprintf(out, len, "%s/ns%llu/%s", root, (unsigned long long)st.st_ino, ifname);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

static struct bpf_map *map_of(struct wxdp *x, int i)
{
	switch (i) {
	case 0: return x->skel->maps.WXDP_MAP_CONFIG;
	case 1: return x->skel->maps.WXDP_MAP_STATS;
	case 2: return x->skel->maps.WXDP_MAP_BAN4;
	case 3: return x->skel->maps.WXDP_MAP_BAN6;
	case 4: return x->skel->maps.WXDP_MAP_BUCKETS;
	case 5: return x->skel->maps.WXDP_MAP_XSKS;
	case 6: return x->skel->maps.WXDP_MAP_VALID;
	case 7: return x->skel->maps.WXDP_MAP_BUDGET;
	}
	return NULL;
}
#define NMAPS 8

static void unpin_all(struct wxdp *x)
{
	char path[PATH_MAX];

	if (!x->pin_dir[0])
		return;
	for (int i = 0; i < NMAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", x->pin_dir, bpf_map__name(map_of(x, i)));
		unlink(path);
	}
	rmdir(x->pin_dir);
	x->pin_dir[0] = '\0';
}

/* Is a program called weft_xdp attached to ifindex (in this netns)? */
static int weft_attached(int ifindex)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
	struct xdp_program *p = NULL;
	int found = 0;

	if (!mp || libxdp_get_error(mp))
		return 0;
	if (xdp_multiprog__is_legacy(mp)) {
		p = xdp_multiprog__main_prog(mp);
		found = p && !strcmp(xdp_program__name(p), "weft_xdp");
	} else {
		while ((p = xdp_multiprog__next_prog(p, mp)))
			if (!strcmp(xdp_program__name(p), "weft_xdp"))
				found = 1;
	}
	xdp_multiprog__close(mp);
	return found;
}

/* Is the nearest existing ancestor of path on a bpffs? */
static int on_bpffs(const char *path)
{
	char p[1024];
	struct statfs sf;
	char *slash;

	snprintf(p, sizeof(p), "%s", path);
	for (;;) {
		if (!statfs(p, &sf))
			return sf.f_type == BPF_FS_MAGIC_;
		slash = strrchr(p, '/');
		if (!slash || slash == p)
			return 0;
		*slash = '\0';
	}
}

/*
 * Where the pin root is not on a bpffs (`ip netns exec` remounts /sys
 * without one; some hosts mount none), mount one, as libxdp does with
 * LIBXDP_BPFFS_AUTOMOUNT: on /sys/fs/bpf when the root is under it (libxdp's
 * dispatcher finds it there too), else on the pin root itself. Needs
 * CAP_SYS_ADMIN; without it the caller runs unpinned and says why.
 */
static int ensure_bpffs(const char *root)
{
	static const char sysbpf[] = "/sys/fs/bpf";
	const char *mnt = root;
	struct stat st;
	int err;

	if (on_bpffs(root))
		return 0;
	if (!strncmp(root, sysbpf, sizeof(sysbpf) - 1) &&
	    (root[sizeof(sysbpf) - 1] == '/' || !root[sizeof(sysbpf) - 1]) &&
	    stat(sysbpf, &st) == 0 && S_ISDIR(st.st_mode)) {
		mnt = sysbpf;
	} else {
		err = util_mkdir_p(root, 0700);
		if (err)
			return err;
	}
	if (mount("bpf", mnt, "bpf", 0, "mode=0700") < 0)
		return -errno;
	log_info(MOD, "no bpffs under %s: mounted one on %s", root, mnt);
	return 0;
}

static int pin_all(struct wxdp *x)
{
	char path[PATH_MAX];
	int err;

	err = util_mkdir_p(x->pin_dir, 0700);
	if (err) {
		log_error(MOD, "cannot create pin directory %s: %s", x->pin_dir, strerror(-err));
		return err;
	}
	for (int i = 0; i < NMAPS; i++) {
		struct bpf_map *m = map_of(x, i);

		snprintf(path, sizeof(path), "%s/%s", x->pin_dir, bpf_map__name(m));
		unlink(path); /* stale pin from a crashed run (we checked that no
			       * weft program is attached here) */
		err = bpf_map__pin(m, path);
		if (err) {
			log_error(MOD, "cannot pin %s: %s", path, strerror(-err));
			return err;
		}
	}
	return 0;
}

/* Another XDP program holds the interface without libxdp's dispatcher:
 * name it, and say what the operator can do. */
static void explain_busy(const char *what, const char *ifname)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex((int)if_nametoindex(ifname));
	struct xdp_program *p = NULL;

	if (mp && !libxdp_get_error(mp) && xdp_multiprog__is_legacy(mp))
		p = xdp_multiprog__main_prog(mp);
	if (p)
		log_error(MOD,
			  "%s: %s already has the XDP program %s (id %u) attached without libxdp's "
			  "dispatcher, which cannot share the interface (the dispatcher needs "
			  "BPF_PROG_TYPE_EXT, see docs/XDP.md): unload it first (xdp-loader unload), "
			  "or run weft with --io uring",
			  what, ifname, xdp_program__name(p), xdp_program__id(p));
	else
		log_error(MOD, "%s on %s: %s", what, ifname, strerror(EBUSY));
	if (mp && !libxdp_get_error(mp))
		xdp_multiprog__close(mp);
}

static int explain(int err, const char *what, const char *ifname)
{
	if (err == -EBUSY || err == -EEXIST)
		explain_busy(what, ifname);
	else if (err == -EPERM || err == -EACCES)
		log_error(MOD, "%s: permission denied (needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)", what);
	else if (err == -EOPNOTSUPP || err == -KERN_ENOTSUPP || err == -EINVAL)
		log_error(MOD, "%s on %s: XDP not supported in this mode (try generic/skb mode): %s",
			  what, ifname, strerror(err == -KERN_ENOTSUPP ? EOPNOTSUPP : -err));
	else
		log_error(MOD, "%s: %s", what, strerror(-err));
	if (err == -KERN_ENOTSUPP || err == -EINVAL)
		return -EOPNOTSUPP;
	return err == -EACCES ? -EPERM : err;
}

int wxdp_new(struct wxdp **out, const struct wxdp_opts *opts)
{
	struct wxdp_config cfg;
	struct wxdp *x = NULL;
	__u32 zero = 0;
	int err;

	if (!out || !opts)
		return -EINVAL;
	*out = NULL;
	if (opts->config) {
		cfg = *opts->config;
	} else {
		wxdp_config_default(&cfg);
	}
	if (wxdp_config_check(&cfg)) {
		log_error(MOD, "invalid initial XDP config");
		return -EINVAL;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->on_ban_change = opts->on_ban_change;
	x->cb_arg = opts->cb_arg;
	x->mode = XDP_MODE_UNSPEC;
	if (!opts->no_attach) {
		if (!opts->ifname || !opts->ifname[0] || strlen(opts->ifname) >= IF_NAMESIZE) {
			err = -EINVAL;
			goto out;
		}
		snprintf(x->ifname, sizeof(x->ifname), "%s", opts->ifname);
		x->ifindex = (int)if_nametoindex(opts->ifname);
		if (!x->ifindex) {
			err = -ENODEV;
			log_error(MOD, "interface %s not found", opts->ifname);
			goto out;
		}
		if (weft_attached(x->ifindex)) {
			err = -EBUSY;
			log_error(MOD, "weft XDP program already attached to %s", opts->ifname);
			goto out;
		}
	}

	x->skel = weft_xdp__open();
	if (!x->skel) {
		err = -errno;
		log_error(MOD, "cannot open the BPF skeleton: %s", strerror(-err));
		goto out;
	}
	err = bpf_map__set_max_entries(x->skel->maps.WXDP_MAP_BUCKETS,
				       opts->buckets ? opts->buckets : WXDP_DEFAULT_BUCKETS);
	if (!err)
		err = bpf_map__set_max_entries(x->skel->maps.WXDP_MAP_BAN4,
					       opts->bans ? opts->bans : WXDP_DEFAULT_BANS);
	if (!err)
		err = bpf_map__set_max_entries(x->skel->maps.WXDP_MAP_BAN6,
					       opts->bans ? opts->bans : WXDP_DEFAULT_BANS);
	if (!err)
		err = bpf_map__set_max_entries(x->skel->maps.WXDP_MAP_VALID,
					       opts->valid ? opts->valid : WXDP_DEFAULT_VALID);
	if (err)
		goto out;

	if (opts->no_attach) {
		err = weft_xdp__load(x->skel);
		if (err) {
			err = explain(err, "loading the XDP program", "-");
			goto out;
		}
	} else {
		enum xdp_attach_mode mode = opts->skb_mode ? XDP_MODE_SKB : XDP_MODE_NATIVE;

		x->prog = xdp_program__from_bpf_obj(x->skel->obj, "xdp");
		err = (int)libxdp_get_error(x->prog);
		if (err) {
			x->prog = NULL;
			log_error(MOD, "libxdp cannot use the object: %s", strerror(-err));
			goto out;
		}
		/* Before attaching: libxdp's dispatcher wants a bpffs too. */
		if (!(opts->pin_root && !opts->pin_root[0])) {
			const char *root = opts->pin_root ? opts->pin_root : DEFAULT_PIN_ROOT;
			int merr = ensure_bpffs(root);

			if (merr)
				log_warn(MOD, "no bpffs under %s and cannot mount one: %s", root,
					 strerror(-merr));
		}
		/* Loads the object (as a dispatcher extension when possible). */
		err = xdp_program__attach(x->prog, x->ifindex, mode, 0);
		if (err) {
			err = explain(err, "attaching the XDP program", x->ifname);
			goto out;
		}
		x->mode = mode;
	}

	err = bpf_map_update_elem(bpf_map__fd(x->skel->maps.WXDP_MAP_CONFIG), &zero, &cfg, 0);
	if (err) {
		err = -errno;
		log_error(MOD, "cannot write the XDP config: %s", strerror(-err));
		goto out;
	}

	if (!opts->no_attach && !(opts->pin_root && !opts->pin_root[0])) {
		err = pin_dir_for(x->pin_dir, sizeof(x->pin_dir),
				  opts->pin_root ? opts->pin_root : DEFAULT_PIN_ROOT, x->ifname);
		if (!err && !on_bpffs(x->pin_dir)) {
			/* no bpffs and none could be mounted (no CAP_SYS_ADMIN):
			 * run without pins rather than refuse to start. */
			log_warn(MOD, "%s is not on a bpffs: maps not pinned "
				 "(mount -t bpf bpf /sys/fs/bpf, or give CAP_SYS_ADMIN)", x->pin_dir);
			x->pin_dir[0] = '\0';
		} else if (!err) {
			err = pin_all(x);
		}
		if (err)
			goto out;
	}
	if (x->prog)
		log_info(MOD, "attached to %s (%s mode), program id %u, maps in %s", x->ifname,
			 x->mode == XDP_MODE_SKB ? "skb" : "native", wxdp_prog_id(x),
			 x->pin_dir[0] ? x->pin_dir : "(not pinned)");
	*out = x;
	return 0;
out:
	wxdp_free(x);
	return err;
}

void wxdp_free(struct wxdp *x)
{
	if (!x)
		return;
	if (x->skel)
		unpin_all(x);
	if (x->prog) {
		if (x->mode != XDP_MODE_UNSPEC) {
			int err = xdp_program__detach(x->prog, x->ifindex, x->mode, 0);

			if (err)
				log_warn(MOD, "detach from %s: %s", x->ifname, strerror(-err));
		}
		xdp_program__close(x->prog);
	}
	weft_xdp__destroy(x->skel);
	free(x);
}

/* --- accessors --- */

int wxdp_fd(struct wxdp *x, enum wxdp_fd which)
{
	if (!x)
		return -EINVAL;
	switch (which) {
	case WXDP_FD_PROG:
		return x->prog ? xdp_program__fd(x->prog) : bpf_program__fd(x->skel->progs.weft_xdp);
	case WXDP_FD_CONFIG: return bpf_map__fd(x->skel->maps.WXDP_MAP_CONFIG);
	case WXDP_FD_STATS: return bpf_map__fd(x->skel->maps.WXDP_MAP_STATS);
	case WXDP_FD_BAN4: return bpf_map__fd(x->skel->maps.WXDP_MAP_BAN4);
	case WXDP_FD_BAN6: return bpf_map__fd(x->skel->maps.WXDP_MAP_BAN6);
	case WXDP_FD_BUCKETS: return bpf_map__fd(x->skel->maps.WXDP_MAP_BUCKETS);
	case WXDP_FD_XSKS: return bpf_map__fd(x->skel->maps.WXDP_MAP_XSKS);
	case WXDP_FD_VALID: return bpf_map__fd(x->skel->maps.WXDP_MAP_VALID);
	case WXDP_FD_BUDGET: return bpf_map__fd(x->skel->maps.WXDP_MAP_BUDGET);
	}
	return -EINVAL;
}

uint32_t wxdp_prog_id(struct wxdp *x)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);
	int fd = wxdp_fd(x, WXDP_FD_PROG);

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

const char *wxdp_mode(struct wxdp *x)
{
	if (!x || x->mode == XDP_MODE_UNSPEC)
		return "none";
	return x->mode == XDP_MODE_SKB ? "skb" : "native";
}

const char *wxdp_ifname(struct wxdp *x)
{
	return x ? x->ifname : "";
}

const char *wxdp_pin_dir(struct wxdp *x)
{
	return x ? x->pin_dir : "";
}

/* --- config --- */

int wxdp_config_get(struct wxdp *x, struct wxdp_config *c)
{
	__u32 zero = 0;

	if (!x || !c)
		return -EINVAL;
	if (bpf_map_lookup_elem(wxdp_fd(x, WXDP_FD_CONFIG), &zero, c))
		return -errno;
	return 0;
}

int wxdp_config_set(struct wxdp *x, const struct wxdp_config *c)
{
	__u32 zero = 0;

	if (!x || !c || wxdp_config_check(c))
		return -EINVAL;
	if (bpf_map_update_elem(wxdp_fd(x, WXDP_FD_CONFIG), &zero, c, 0))
		return -errno;
	return 0;
}

/* --- stats --- */

int wxdp_stats_read(struct wxdp *x, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus();
	int fd = wxdp_fd(x, WXDP_FD_STATS);
	__u64 *vals;
	int err = 0;

	if (!x || !out)
		return -EINVAL;
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (__u32 i = 0; i < WXDP_STAT__MAX; i++) {
		out[i] = 0;
		if (bpf_map_lookup_elem(fd, &i, vals)) {
			err = -errno;
			break;
		}
		for (int c = 0; c < ncpu; c++)
			out[i] += vals[c];
	}
	free(vals);
	return err;
}

int wxdp_bucket_count(struct wxdp *x, size_t *n)
{
	struct wxdp_src_key k, next;
	int fd = wxdp_fd(x, WXDP_FD_BUCKETS);
	void *prev = NULL;
	size_t cnt = 0;

	if (!x || !n)
		return -EINVAL;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		cnt++;
		k = next;
		prev = &k;
	}
	if (errno != ENOENT)
		return -errno;
	*n = cnt;
	return 0;
}

/* --- validated sources --- */

int wxdp_valid_set(struct wxdp *x, const struct wxdp_src_key *k, uint64_t expires_ns)
{
	struct wxdp_valid_val v = { .expires_ns = expires_ns };

	if (!x || !k)
		return -EINVAL;
	if (bpf_map_update_elem(wxdp_fd(x, WXDP_FD_VALID), k, &v, BPF_ANY))
		return -errno;
	return 0;
}

int wxdp_valid_del(struct wxdp *x, const struct wxdp_src_key *k)
{
	if (!x || !k)
		return -EINVAL;
	if (bpf_map_delete_elem(wxdp_fd(x, WXDP_FD_VALID), k))
		return -errno;
	return 0;
}
