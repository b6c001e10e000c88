// SPDX-License-Identifier: MIT
/*
 * XDP loader: skeleton + libxdp attach + map pinning + map accessors.
 * See include/weft/xdp.h for the contract and docs/XDP.md for the layout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "weft/bpflib.h"
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
	[WXDP_STAT_RELAY_TX] = "relay_tx",
	[WXDP_STAT_RELAY_USER] = "relay_user",
	[WXDP_STAT_RELAY_DROP] = "relay_drop",
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
	c->quic_valid.pps = WXDP_DEFAULT_QUIC_VALID_PPS;
	c->quic_valid.burst = WXDP_DEFAULT_QUIC_VALID_BURST;
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
	/* An owner only for a configured port. */
	for (int i = 0; i < WXDP_MAX_PORTS; i++)
		if ((!c->quic_ports[i] && ((c->quic_owners >> (2 * i)) & 3)) ||
		    (!c->dht_ports[i] && ((c->dht_owners >> (2 * i)) & 3)))
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
	case 8: return x->skel->maps.WXDP_MAP_RELAY;
	case 9: return x->skel->maps.WXDP_MAP_CIRC;
	case 10: return x->skel->maps.WXDP_MAP_RCFG;
	case 11: return x->skel->maps.WXDP_MAP_RL2;
	case 12: return x->skel->maps.WXDP_MAP_BANST;
	case 13: return x->skel->maps.WXDP_MAP_CLOCK;
	case 14: return x->skel->maps.WXDP_MAP_BANX4;
	case 15: return x->skel->maps.WXDP_MAP_BANX6;
	case 16: return x->skel->maps.WXDP_MAP_BANI4;
	case 17: return x->skel->maps.WXDP_MAP_BANI6;
	case 18: return x->skel->maps.WXDP_MAP_BANC;
	case 19: return x->skel->maps.WXDP_MAP_RLC;
	}
	return NULL;
}
#define NMAPS 20

static void unpin_all(struct wxdp *x)
{
	char path[PATH_MAX];

	if (!x->pin_dir[0])
		return;
	for (int i = 0; i < NMAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", x->pin_dir, bpf_map__name(map_of(x, i)));
		unlink(path);
	}
	for (unsigned int i = 0; i < WXDP_MAX_INSTANCES; i++) {
		snprintf(path, sizeof(path), "%s/owner%u", x->pin_dir, i);
		rmdir(path);
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

/* --- several instances on one interface (docs/XDP.md) --- */

/*
 * Lock the netns directory (pin_dir's parent) with flock: joins, leaves
 * and port changes of the instances on this netns's interfaces are read-
 * modify-writes of the shared config. Returns the fd (close() unlocks;
 * so does the holder's death) or -errno; -ETIMEDOUT after 5 s.
 */
int wxdp_ns_lock(const char *pin_dir)
{
	char dir[1024];
	char *slash;
	int fd, err = 0;

	snprintf(dir, sizeof(dir), "%s", pin_dir);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return -EINVAL;
	*slash = '\0';
	err = util_mkdir_p(dir, 0700);
	if (err)
		return err;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Held for a few map operations: 5 s means a wedged holder. */
	for (int i = 0; i < 500; i++) {
		if (!flock(fd, LOCK_EX | LOCK_NB))
			return fd;
		err = -errno;
		if (err != -EWOULDBLOCK && err != -EINTR)
			break;
		usleep(10000);
	}
	close(fd);
	return err == -EWOULDBLOCK ? -ETIMEDOUT : err;
}

/* An instance is alive in slot i while it holds the flock of the
 * directory pin_dir/owner<i>; a crashed one's lock went with it. */
static int owner_alive(const struct wxdp *x, unsigned int i)
{
	char p[PATH_MAX];
	int fd, alive;

	if (x->owner_fd >= 0 && i == x->owner)
		return 1;
	snprintf(p, sizeof(p), "%s/owner%u", x->pin_dir, i);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	alive = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd); /* releases the lock if we took it */
	return alive;
}

/* Take the first free slot; its lock is held until wxdp_free().
 * -EUSERS: WXDP_MAX_INSTANCES instances are alive on the interface. */
static int owner_claim(struct wxdp *x)
{
	char p[PATH_MAX];
	int fd;

	for (unsigned int i = 0; i < WXDP_MAX_INSTANCES; i++) {
		snprintf(p, sizeof(p), "%s/owner%u", x->pin_dir, i);
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (!flock(fd, LOCK_EX | LOCK_NB)) {
			x->owner = i;
			x->owner_fd = fd;
			return 0;
		}
		close(fd);
	}
	return -EUSERS;
}

/*
 * The config to write: mine's limits, the ports of the other live
 * instances as they are in the shared config s (a dead instance's are
 * dropped), then mine's ports owned by x. -EADDRINUSE when a port of
 * mine is another live instance's, -ENOSPC when a class would have more
 * than WXDP_MAX_PORTS ports on the interface.
 */
static int ports_merge(const struct wxdp *x, struct wxdp_config *out, const struct wxdp_config *s,
		       const struct wxdp_config *mine)
{
	unsigned int live = 0;

	for (unsigned int i = 0; i < WXDP_MAX_INSTANCES; i++)
		if (i != x->owner && owner_alive(x, i))
			live |= 1U << i;
	*out = *mine;
	memset(out->quic_ports, 0, sizeof(out->quic_ports));
	memset(out->dht_ports, 0, sizeof(out->dht_ports));
	out->quic_owners = out->dht_owners = 0;
	for (int k = 0; k < 2; k++) {
		const __u16 *sp = k ? s->dht_ports : s->quic_ports;
		const __u16 *mp = k ? mine->dht_ports : mine->quic_ports;
		unsigned int so = k ? s->dht_owners : s->quic_owners, n = 0;
		__u16 *op = k ? out->dht_ports : out->quic_ports;
		__u8 *oo = k ? &out->dht_owners : &out->quic_owners;

		for (int i = 0; i < WXDP_MAX_PORTS; i++) {
			unsigned int o = (so >> (2 * i)) & 3;

			if (!sp[i] || o == x->owner || !(live & (1U << o)))
				continue;
			op[n] = sp[i];
			*oo = (__u8)(*oo | o << (2 * n));
			n++;
		}
		for (int i = 0; i < WXDP_MAX_PORTS; i++) {
			if (!mp[i])
				continue;
			if (n == WXDP_MAX_PORTS)
				return -ENOSPC;
			op[n] = mp[i];
			*oo = (__u8)(*oo | x->owner << (2 * n));
			n++;
		}
	}
	return wxdp_config_check(out) ? -EADDRINUSE : 0;
}

static int shared_read(struct wxdp *x, struct wxdp_config *c)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(wxdp_fd(x, WXDP_FD_CONFIG), &zero, c) ? -errno : 0;
}

static int shared_write(struct wxdp *x, const struct wxdp_config *c)
{
	__u32 zero = 0;

	return bpf_map_update_elem(wxdp_fd(x, WXDP_FD_CONFIG), &zero, c, 0) ? -errno : 0;
}

/* With the netns lock held: merge mine into the shared config. */
static int shared_set(struct wxdp *x, const struct wxdp_config *mine)
{
	struct wxdp_config s, m;
	int err = shared_read(x, &s);

	if (!err)
		err = ports_merge(x, &m, &s, mine);
	if (!err)
		err = shared_write(x, &m);
	return err;
}

/* Reuse the maps pinned by the instance that attached the program. */
static int join_pinned(struct wxdp *x)
{
	char path[PATH_MAX];
	int fd, err;

	for (int i = 0; i < NMAPS; i++) {
		struct bpf_map *m = map_of(x, i);

		snprintf(path, sizeof(path), "%s/%s", x->pin_dir, bpf_map__name(m));
		fd = bpf_obj_get(path);
		if (fd < 0)
			return -errno;
		err = bpf_map__reuse_fd(m, fd);
		close(fd); /* reuse_fd took its own copy */
		if (err)
			return err;
	}
	/* The program is the attached one; ours is never loaded. */
	return bpf_program__set_autoload(x->skel->progs.weft_xdp, false);
}

/* The attached weft program (from whichever instance attached it): its
 * mode and id (for a joiner), or detach it (the last one out). */
static int attached_prog(struct wxdp *x, int detach)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(x->ifindex);
	struct xdp_program *p = NULL;
	int err = -ENOENT;

	if (!mp || libxdp_get_error(mp))
		return -ENOENT;
	if (xdp_multiprog__is_legacy(mp)) {
		p = xdp_multiprog__main_prog(mp);
		if (p && strcmp(xdp_program__name(p), "weft_xdp"))
			p = NULL;
	} else {
		while ((p = xdp_multiprog__next_prog(p, mp)))
			if (!strcmp(xdp_program__name(p), "weft_xdp"))
				break;
	}
	if (p) {
		x->mode = xdp_multiprog__attach_mode(mp);
		x->prog_id = xdp_program__id(p);
		err = 0;
		if (detach)
			err = xdp_multiprog__is_legacy(mp) ? xdp_multiprog__detach(mp)
							  : xdp_program__detach(p, x->ifindex, x->mode, 0);
	}
	xdp_multiprog__close(mp);
	return err;
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
	int err, lock = -1;

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
	{
		char why[320];

		err = io_bpflib_load(why, sizeof(why));
		if (err) {
			log_error(MOD, "%s", why);
			return err;
		}
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->on_ban_change = opts->on_ban_change;
	x->cb_arg = opts->cb_arg;
	pthread_mutex_init(&x->ban_mu, NULL);
	x->mode = XDP_MODE_UNSPEC;
	x->owner = WXDP_MAX_INSTANCES; /* none until owner_claim() */
	x->owner_fd = -1;
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
		/* A bpffs before attaching: libxdp's dispatcher wants one, and
		 * the pins are how other instances share the program. */
		if (!(opts->pin_root && !opts->pin_root[0])) {
			const char *root = opts->pin_root ? opts->pin_root : DEFAULT_PIN_ROOT;
			int merr = ensure_bpffs(root);

			if (merr)
				log_warn(MOD, "no bpffs under %s and cannot mount one: %s", root,
					 strerror(-merr));
			err = pin_dir_for(x->pin_dir, sizeof(x->pin_dir), root, x->ifname);
			if (err)
				goto out;
			if (!on_bpffs(x->pin_dir)) {
				/* no bpffs and none could be mounted (no
				 * CAP_SYS_ADMIN): run without pins rather
				 * than refuse to start. */
				log_warn(MOD, "%s is not on a bpffs: maps not pinned "
					 "(mount -t bpf bpf /sys/fs/bpf, or give CAP_SYS_ADMIN)", x->pin_dir);
				x->pin_dir[0] = '\0';
			} else {
				lock = wxdp_ns_lock(x->pin_dir);
				if (lock < 0) {
					err = lock;
					log_error(MOD, "cannot lock %s: %s", x->pin_dir, strerror(-err));
					goto out;
				}
			}
		}
		/* Another weftd attached weft's program here: share it. */
		if (weft_attached(x->ifindex)) {
			char path[PATH_MAX];

			snprintf(path, sizeof(path), "%s/%s", x->pin_dir, WXDP_STR(WXDP_MAP_CONFIG));
			if (!x->pin_dir[0] || access(path, F_OK)) {
				err = -EBUSY;
				log_error(MOD, "weft XDP program already attached to %s, its maps not "
					  "pinned under %s: cannot share it", opts->ifname,
					  x->pin_dir[0] ? x->pin_dir : "(no pins)");
				goto out;
			}
			x->joined = 1;
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
		err = bpf_map__set_max_entries(x->skel->maps.WXDP_MAP_BANX4,
					       opts->bans ? opts->bans : WXDP_DEFAULT_BANS);
	if (!err)
		err = bpf_map__set_max_entries(x->skel->maps.WXDP_MAP_BANX6,
					       opts->bans ? opts->bans : WXDP_DEFAULT_BANS);
	if (!err)
		err = bpf_map__set_max_entries(x->skel->maps.WXDP_MAP_VALID,
					       opts->valid ? opts->valid : WXDP_DEFAULT_VALID);
	if (err)
		goto out;

	if (x->joined) {
		err = join_pinned(x);
		if (!err)
			err = weft_xdp__load(x->skel);
		if (!err)
			err = attached_prog(x, 0);
		if (err) {
			log_error(MOD, "cannot join weft's XDP program on %s: %s", x->ifname,
				  strerror(-err));
			goto out;
		}
	} else if (opts->no_attach) {
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
		/* Loads the object (as a dispatcher extension when possible). */
		err = xdp_program__attach(x->prog, x->ifindex, mode, 0);
		if (err) {
			err = explain(err, "attaching the XDP program", x->ifname);
			goto out;
		}
		x->mode = mode;
	}

	if (!x->joined) {
		err = bpf_map_update_elem(bpf_map__fd(x->skel->maps.WXDP_MAP_CONFIG), &zero, &cfg, 0);
		if (err) {
			err = -errno;
			log_error(MOD, "cannot write the XDP config: %s", strerror(-err));
			goto out;
		}
		if (x->pin_dir[0]) {
			err = pin_all(x);
			if (err)
				goto out;
		}
	}
	if (x->pin_dir[0]) {
		/* A slot, then our ports into the shared config. */
		err = owner_claim(x);
		if (!err)
			err = shared_set(x, &cfg);
		if (err) {
			log_error(MOD, "cannot share %s: %s", x->ifname,
				  err == -EADDRINUSE ? "a port is another weftd's on this interface"
				  : err == -ENOSPC  ? "more than 4 ports of a class on this interface"
				  : err == -EUSERS  ? "4 weftd instances already share it"
						    : strerror(-err));
			goto out;
		}
	}
	if (x->prog || x->joined)
		log_info(MOD, "%s %s (%s mode), program id %u, maps in %s, instance %u",
			 x->joined ? "joined weft's program on" : "attached to", x->ifname,
			 x->mode == XDP_MODE_SKB ? "skb" : "native", wxdp_prog_id(x),
			 x->pin_dir[0] ? x->pin_dir : "(not pinned)",
			 x->owner_fd >= 0 ? x->owner : 0);
	if (lock >= 0)
		close(lock);
	*out = x;
	return 0;
out:
	/* Unlocked first: wxdp_free() takes the lock itself to leave. */
	if (lock >= 0)
		close(lock);
	wxdp_free(x);
	return err;
}

/* Is another instance alive on x's interface? */
static int others_alive(const struct wxdp *x)
{
	for (unsigned int i = 0; i < WXDP_MAX_INSTANCES; i++)
		if (i != x->owner && owner_alive(x, i))
			return 1;
	return 0;
}

void wxdp_free(struct wxdp *x)
{
	int last = 1, lock = -1;

	if (!x)
		return;
	if (x->owner_fd >= 0 || x->joined) {
		/* Best effort without the lock (a wedged holder): leaving
		 * must not hang. */
		lock = wxdp_ns_lock(x->pin_dir);
		last = !others_alive(x);
		if (!last && x->owner_fd >= 0) {
			struct wxdp_config s, none;

			/* Take our ports out; the program stays for the others. */
			if (!shared_read(x, &s)) {
				none = s;
				memset(none.quic_ports, 0, sizeof(none.quic_ports));
				memset(none.dht_ports, 0, sizeof(none.dht_ports));
				none.quic_owners = none.dht_owners = 0;
				if (shared_set(x, &none))
					log_warn(MOD, "cannot take our ports out of %s's config", x->ifname);
			}
		}
	}
	if (x->skel && last)
		unpin_all(x);
	if (x->joined && last && x->mode != XDP_MODE_UNSPEC) {
		int err = attached_prog(x, 1);

		if (err)
			log_warn(MOD, "detach from %s: %s", x->ifname, strerror(-err));
	}
	if (x->owner_fd >= 0) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/owner%u", x->pin_dir, x->owner);
		close(x->owner_fd);
		if (!last)
			rmdir(path);
	}
	if (x->prog) {
		if (x->mode != XDP_MODE_UNSPEC && last) {
			int err = xdp_program__detach(x->prog, x->ifindex, x->mode, 0);

			if (err)
				log_warn(MOD, "detach from %s: %s", x->ifname, strerror(-err));
		}
		xdp_program__close(x->prog);
	}
	if (lock >= 0)
		close(lock);
	weft_xdp__destroy(x->skel);
	pthread_mutex_destroy(&x->ban_mu);
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
	case WXDP_FD_RELAY: return bpf_map__fd(x->skel->maps.WXDP_MAP_RELAY);
	case WXDP_FD_CIRC: return bpf_map__fd(x->skel->maps.WXDP_MAP_CIRC);
	case WXDP_FD_RCFG: return bpf_map__fd(x->skel->maps.WXDP_MAP_RCFG);
	case WXDP_FD_RL2: return bpf_map__fd(x->skel->maps.WXDP_MAP_RL2);
	case WXDP_FD_BANST: return bpf_map__fd(x->skel->maps.WXDP_MAP_BANST);
	case WXDP_FD_BANX4: return bpf_map__fd(x->skel->maps.WXDP_MAP_BANX4);
	case WXDP_FD_BANX6: return bpf_map__fd(x->skel->maps.WXDP_MAP_BANX6);
	case WXDP_FD_BANI4: return bpf_map__fd(x->skel->maps.WXDP_MAP_BANI4);
	case WXDP_FD_BANI6: return bpf_map__fd(x->skel->maps.WXDP_MAP_BANI6);
	case WXDP_FD_BANC: return bpf_map__fd(x->skel->maps.WXDP_MAP_BANC);
	case WXDP_FD_RLC: return bpf_map__fd(x->skel->maps.WXDP_MAP_RLC);
	}
	return -EINVAL;
}

uint32_t wxdp_prog_id(struct wxdp *x)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);
	int fd;

	if (x && x->joined)
		return x->prog_id;
	fd = wxdp_fd(x, WXDP_FD_PROG);
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

unsigned int wxdp_owner(struct wxdp *x)
{
	return x && x->owner_fd >= 0 ? x->owner : 0;
}

const char *wxdp_pin_dir(struct wxdp *x)
{
	return x ? x->pin_dir : "";
}

/* --- config --- */

int wxdp_config_get(struct wxdp *x, struct wxdp_config *c)
{
	struct wxdp_config s;
	int err;

	if (!x || !c)
		return -EINVAL;
	err = shared_read(x, &s);
	if (err)
		return err;
	*c = s;
	if (x->owner_fd < 0)
		return 0;
	/* Sharing the interface: our own ports only. */
	memset(c->quic_ports, 0, sizeof(c->quic_ports));
	memset(c->dht_ports, 0, sizeof(c->dht_ports));
	c->quic_owners = c->dht_owners = 0;
	for (int k = 0; k < 2; k++) {
		const __u16 *sp = k ? s.dht_ports : s.quic_ports;
		unsigned int so = k ? s.dht_owners : s.quic_owners, n = 0;
		__u16 *op = k ? c->dht_ports : c->quic_ports;

		for (int i = 0; i < WXDP_MAX_PORTS; i++)
			if (sp[i] && ((so >> (2 * i)) & 3) == x->owner)
				op[n++] = sp[i];
	}
	return 0;
}

int wxdp_config_set(struct wxdp *x, const struct wxdp_config *c)
{
	int err, lock;

	if (!x || !c || wxdp_config_check(c))
		return -EINVAL;
	if (x->owner_fd < 0)
		return shared_write(x, c);
	/* Sharing the interface: our ports replace ours, the others' stay;
	 * the limits are the interface's (the last set applies). */
	lock = wxdp_ns_lock(x->pin_dir);
	if (lock < 0)
		return lock;
	err = shared_set(x, c);
	close(lock);
	return err;
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
	/* rx: the program counts each packet in exactly one verdict counter
	 * and not in rx (xdp_abi.h enum wxdp_stat). */
	out[WXDP_STAT_RX] = 0;
	for (__u32 i = WXDP_STAT_RX + 1; !err && i < WXDP_STAT__MAX; i++)
		out[WXDP_STAT_RX] += out[i];
	return err;
}

#ifndef ENOTSUPP
#define ENOTSUPP 524 /* the kernel's, for a map without batch operations */
#endif

/* Entries per BPF_MAP_LOOKUP_BATCH call of map_walk. */
#define WXDP_WALK_BATCH 512

/* Called by map_walk with each batch: count entries, vals their values
 * (vsz bytes each: all CPUs' copies for a per-CPU map). */
typedef void map_walk_fn(const void *vals, __u32 count, size_t vsz, int ncpu, void *arg);

/* Hand every entry of map fd to fn, WXDP_WALK_BATCH at a time (one
 * syscall per batch instead of one or two per entry). Returns 0 or
 * -errno; -EOPNOTSUPP when the kernel has no batch lookup for the map. */
static int map_walk(int fd, map_walk_fn *fn, void *arg)
{
	DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts);
	struct bpf_map_info info;
	__u32 ilen = sizeof(info);
	__u64 in_batch = 0, out_batch = 0;
	int ncpu = 1, err = 0;
	void *keys, *vals;
	size_t vsz;
	bool first = true;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		return -errno;
	vsz = info.value_size;
	if (info.type == BPF_MAP_TYPE_PERCPU_ARRAY || info.type == BPF_MAP_TYPE_PERCPU_HASH ||
	    info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH) {
		ncpu = libbpf_num_possible_cpus();
		if (ncpu <= 0)
			return ncpu < 0 ? ncpu : -EINVAL;
		vsz = ((vsz + 7) & ~(size_t)7) * (size_t)ncpu;
	}
	keys = calloc(WXDP_WALK_BATCH, info.key_size);
	vals = calloc(WXDP_WALK_BATCH, vsz);
	if (!keys || !vals) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		__u32 count = WXDP_WALK_BATCH;
		int r = bpf_map_lookup_batch(fd, first ? NULL : &in_batch, &out_batch, keys, vals,
					     &count, &opts);

		if (r && errno != ENOENT) {
			err = errno == EINVAL || errno == ENOTSUPP || errno == EOPNOTSUPP ?
			      -EOPNOTSUPP : -errno;
			break;
		}
		if (count)
			fn(vals, count, vsz, ncpu, arg);
		if (r)
			break; /* ENOENT: the walk reached the end */
		in_batch = out_batch;
		first = false;
	}
out:
	free(keys);
	free(vals);
	return err;
}

/* Used per-CPU bucket slots (struct wxdp_rlc_slot), all CPUs. */
static void rlc_used(const void *vals, __u32 count, size_t vsz, int ncpu, void *arg)
{
	size_t *n = arg;

	for (__u32 i = 0; i < count; i++) {
		const struct wxdp_rlc_slot *v = (const void *)((const char *)vals + i * vsz);

		for (int c = 0; c < ncpu; c++)
			for (int k = 0; k < WXDP_CLASS__MAX; k++)
				if (v[c].v.b[k].last_ns) {
					(*n)++;
					break;
				}
	}
}

static void entries(const void *vals, __u32 count, size_t vsz, int ncpu, void *arg)
{
	(void)vals;
	(void)vsz;
	(void)ncpu;
	*(size_t *)arg += count;
}

int wxdp_bucket_count(struct wxdp *x, size_t *n)
{
	struct wxdp_src_key k, next;
	void *prev = NULL;
	size_t cnt = 0;
	int fd, err;

	if (!x || !n)
		return -EINVAL;
	fd = wxdp_fd(x, WXDP_FD_BUCKETS);
	err = map_walk(fd, entries, &cnt);
	if (err == -EOPNOTSUPP) {
		cnt = 0;
		while (!bpf_map_get_next_key(fd, prev, &next)) {
			cnt++;
			k = next;
			prev = &k;
		}
		err = errno == ENOENT ? 0 : -errno;
	}
	if (err)
		return err;
	err = map_walk(wxdp_fd(x, WXDP_FD_RLC), rlc_used, &cnt);
	if (err)
		return err;
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
