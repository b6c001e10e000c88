// SPDX-License-Identifier: MIT
/*
 * LAN discovery on a node (include/weft/lan.h): one UDP socket per family,
 * bound to port 6771 and joined to BEP 14's group on each interface, and
 * one thread (poll with a deadline) that sends this node's announces at
 * the schedule's rate and takes the LAN's through the peer table. A peer
 * heard becomes a DHT contact (pinged: the routing table takes it only if
 * it answers); a weft peer's infohashes become providers downloads find
 * (content_node_set_lan). The sockets are not the engine's data path.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "weft/content_node.h"
#include "weft/ctl.h"
#include "weft/dht.h"
#include "weft/dhtnode.h"
#include "weft/lan.h"
#include "weft/log.h"
#include "weft/util.h"

#define LAN_MOD "lan"
#define LAN_REFRESH_MS 5000 /* the seeded set is read from content this often */
#define LAN_POLL_MS 1000    /* longest sleep: stop is seen within it */
#define LAN_RX_BATCH 64	    /* datagrams taken per wake-up */

struct lan_node {
	struct lan_node_opts o;
	char ifnames[LAN_MAX_IFACES][IF_NAMESIZE];
	unsigned int ifidx[LAN_MAX_IFACES];
	unsigned int nif;
	int fd4, fd6;
	uint16_t port;
	uint32_t cookie;
	pthread_mutex_t mu; /* tab and sched: the thread, the route, content's gathers */
	struct lsd_tab *tab;
	struct lsd_sched *sched;
	pthread_t thr;
	int started;
	atomic_int stop;
	uint8_t (*seeded)[LSD_IH_LEN]; /* LSD_SCHED_MAX */
	atomic_ullong rx, rx_bad, rx_own, rx_limited, rx_refused, rx_ih, tx, tx_err, tx_ih,
		pings, providers;
};

/* ---------------------------------------------------------- interfaces */

static int add_if(struct lan_node *ln, const char *name)
{
	unsigned int idx = if_nametoindex(name);

	if (!idx || strlen(name) >= IF_NAMESIZE)
		return -EINVAL;
	for (unsigned int i = 0; i < ln->nif; i++)
		if (ln->ifidx[i] == idx)
			return 0;
	if (ln->nif == LAN_MAX_IFACES)
		return -EINVAL;
	snprintf(ln->ifnames[ln->nif], IF_NAMESIZE, "%s", name);
	ln->ifidx[ln->nif++] = idx;
	return 0;
}

/* lan.interfaces: a comma list, or every up, multicast, non-loopback one. */
static int pick_ifs(struct lan_node *ln, const char *list)
{
	if (list && *list) {
		char buf[256], *save = NULL, *tok;

		if (strlen(list) >= sizeof(buf))
			return -EINVAL;
		snprintf(buf, sizeof(buf), "%s", list);
		for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
			int rc = add_if(ln, tok);

			if (rc) {
				log_error(LAN_MOD, "lan.interfaces: '%s' is not an interface here "
						   "(or more than %d)", tok, LAN_MAX_IFACES);
				return rc;
			}
		}
	} else {
		struct ifaddrs *ifa, *i;

		if (getifaddrs(&ifa))
			return -errno;
		for (i = ifa; i; i = i->ifa_next)
			if ((i->ifa_flags & IFF_UP) && (i->ifa_flags & IFF_MULTICAST) &&
			    !(i->ifa_flags & IFF_LOOPBACK) && ln->nif < LAN_MAX_IFACES)
				add_if(ln, i->ifa_name);
		freeifaddrs(ifa);
	}
	return ln->nif ? 0 : -ENODEV;
}

static int open_sock(struct lan_node *ln, int v6)
{
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1, zero = 0, hops = 1, joined = 0;

	if (fd < 0)
		return -errno;
	/* other LSD speakers on this host (a BitTorrent client) bind it too */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (v6) {
		struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(ln->port),
					 .sin6_addr = in6addr_any};

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)))
			goto fail;
		/* only the groups this socket joined, on the interfaces it
		 * joined them on (Linux delivers every joined group otherwise) */
		setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, &zero, sizeof(zero));
		/* one hop: BEP 14's groups are wider than a LAN; weft's
		 * autodiscovery is for the LAN only */
		setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops));
		setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &one, sizeof(one));
		for (unsigned int i = 0; i < ln->nif; i++) {
			struct ipv6_mreq mr = {.ipv6mr_interface = ln->ifidx[i]};

			inet_pton(AF_INET6, LSD_GROUP6, &mr.ipv6mr_multiaddr);
			if (setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof(mr)))
				log_debug(LAN_MOD, "%s: cannot join %s: %s", ln->ifnames[i],
					  LSD_GROUP6, strerror(errno));
			else
				joined++;
		}
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(ln->port)};
		unsigned char ttl = 1, loop = 1;

		if (bind(fd, (struct sockaddr *)&a, sizeof(a)))
			goto fail;
		setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero));
		setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
		setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop));
		for (unsigned int i = 0; i < ln->nif; i++) {
			struct ip_mreqn mr = {.imr_ifindex = (int)ln->ifidx[i]};

			inet_pton(AF_INET, LSD_GROUP4, &mr.imr_multiaddr);
			if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)))
				log_debug(LAN_MOD, "%s: cannot join %s: %s", ln->ifnames[i],
					  LSD_GROUP4, strerror(errno));
			else
				joined++;
		}
	}
	if (!joined) {
		close(fd);
		return -ENODEV;
	}
	return fd;
fail: {
	int err = -errno;

	close(fd);
	return err;
}
}

/* ---------------------------------------------------------------- send */

static void send_all(struct lan_node *ln, const struct lsd_msg *m)
{
	for (int v6 = 0; v6 < 2; v6++) {
		int fd = v6 ? ln->fd6 : ln->fd4;
		char buf[LSD_MAX_SEND];
		int len;

		if (fd < 0)
			continue;
		len = lsd_encode(buf, sizeof(buf), m, v6);
		if (len < 0) {
			atomic_fetch_add(&ln->tx_err, 1);
			continue;
		}
		for (unsigned int i = 0; i < ln->nif; i++) {
			int rc;

			if (v6) {
				struct sockaddr_in6 to = {.sin6_family = AF_INET6,
							  .sin6_port = htons(ln->port)};

				inet_pton(AF_INET6, LSD_GROUP6, &to.sin6_addr);
				rc = setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ln->ifidx[i],
						sizeof(ln->ifidx[i]));
				if (!rc)
					rc = (int)sendto(fd, buf, (size_t)len, 0,
							 (struct sockaddr *)&to, sizeof(to));
			} else {
				struct sockaddr_in to = {.sin_family = AF_INET,
							 .sin_port = htons(ln->port)};
				struct ip_mreqn mr = {.imr_ifindex = (int)ln->ifidx[i]};

				inet_pton(AF_INET, LSD_GROUP4, &to.sin_addr);
				rc = setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr));
				if (!rc)
					rc = (int)sendto(fd, buf, (size_t)len, 0,
							 (struct sockaddr *)&to, sizeof(to));
			}
			if (rc < 0) {
				atomic_fetch_add(&ln->tx_err, 1);
				log_debug(LAN_MOD, "announce on %s (IPv%d): %s", ln->ifnames[i],
					  v6 ? 6 : 4, strerror(errno));
			} else {
				atomic_fetch_add(&ln->tx, 1);
				atomic_fetch_add(&ln->tx_ih, m->nih);
			}
		}
	}
}

/* Announce what is due; returns when to look again. */
static uint64_t announce(struct lan_node *ln, uint64_t now)
{
	struct lsd_msg m = {.port = ln->o.dht_port,
			    .weft_quic = ln->o.quic_port,
			    .weft_dht = ln->o.dht_port,
			    .has_cookie = 1,
			    .cookie = ln->cookie};
	uint64_t wake = now + LAN_POLL_MS;
	int n;

	pthread_mutex_lock(&ln->mu);
	n = lsd_sched_next(ln->sched, now, m.ih, LSD_MAX_IH, &wake);
	pthread_mutex_unlock(&ln->mu);
	if (n < 0)
		return wake;
	m.nih = (unsigned int)n;
	send_all(ln, &m);
	return now;
}

/* ------------------------------------------------------------- receive */

static void ping_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct lsd_action *a = arg;

	dht_ping(dht, (const struct sockaddr *)&a->contact, a->contact_len, now, NULL, NULL);
}

static void take(struct lan_node *ln, const uint8_t *buf, size_t len,
		 const struct sockaddr_storage *from, socklen_t fromlen, uint64_t now)
{
	struct lsd_action act;
	struct lsd_msg m;
	char ab[INET6_ADDRSTRLEN + 8], lb[64];
	int rc, admit;

	atomic_fetch_add(&ln->rx, 1);
	pthread_mutex_lock(&ln->mu);
	admit = lsd_tab_admit(ln->tab, now);
	pthread_mutex_unlock(&ln->mu);
	if (!admit) {
		atomic_fetch_add(&ln->rx_limited, 1);
		return;
	}
	if (lsd_parse(buf, len, &m)) {
		atomic_fetch_add(&ln->rx_bad, 1);
		return;
	}
	if (m.has_cookie && m.cookie == ln->cookie) {
		atomic_fetch_add(&ln->rx_own, 1);
		return;
	}
	pthread_mutex_lock(&ln->mu);
	rc = lsd_tab_input(ln->tab, (const struct sockaddr *)from, fromlen, &m, now, &act);
	pthread_mutex_unlock(&ln->mu);
	if (rc == -EAGAIN) {
		atomic_fetch_add(&ln->rx_limited, 1);
		return;
	}
	if (rc) {
		atomic_fetch_add(&ln->rx_refused, 1);
		return;
	}
	atomic_fetch_add(&ln->rx_ih, m.nih);
	util_fmt_addr(from, ab, sizeof(ab));
	if (act.new_peer) {
		char ih[2 * LSD_IH_LEN + 1] = "-";

		if (m.nih)
			util_hex(ih, m.ih[0], LSD_IH_LEN);
		log_info(LAN_MOD, "LAN peer %s (%s, port %u): %u infohash(es), first %s",
			 log_addr(ab, lb, sizeof(lb)), m.weft_quic ? "weft" : "BitTorrent", m.port,
			 m.nih, ih);
	}
	if (act.ping && ln->o.dht) {
		atomic_fetch_add(&ln->pings, 1);
		/* from this thread (outside the engine) it runs on worker 0
		 * and returns when it ran, within dhtnode_run's deadline */
		dhtnode_run(ln->o.dht, ping_fn, &act);
	}
}

static void drain(struct lan_node *ln, int fd)
{
	for (int i = 0; i < LAN_RX_BATCH; i++) {
		uint8_t buf[LSD_MAX_RECV + 1];
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);

		if (n < 0)
			return;
		/* one byte more than we take: a longer datagram is refused */
		take(ln, buf, (size_t)n, &from, fl, util_now_ms());
	}
}

/* --------------------------------------------------------------- thread */

static void refresh(struct lan_node *ln)
{
	size_t n = ln->o.content ? content_node_seeded(ln->o.content, ln->seeded, LSD_SCHED_MAX)
				 : 0;

	pthread_mutex_lock(&ln->mu);
	lsd_sched_set(ln->sched, (const uint8_t(*)[LSD_IH_LEN])ln->seeded, n);
	pthread_mutex_unlock(&ln->mu);
}

static void *lan_thread(void *arg)
{
	struct lan_node *ln = arg;
	uint64_t next_refresh = 0, wake = 0;

	while (!atomic_load(&ln->stop)) {
		struct pollfd pf[2] = {{.fd = ln->fd4, .events = POLLIN},
				       {.fd = ln->fd6, .events = POLLIN}};
		uint64_t now = util_now_ms();
		int timeout;

		if (now >= next_refresh) {
			refresh(ln);
			next_refresh = now + LAN_REFRESH_MS;
			wake = now;
		}
		if (now >= wake)
			wake = announce(ln, now);
		if (wake <= now)
			wake = now + 1;
		timeout = (int)(wake - now);
		if (timeout > LAN_POLL_MS)
			timeout = LAN_POLL_MS;
		util_heap_release_due(now);
		if (poll(pf, 2, timeout) <= 0)
			continue;
		if (pf[0].revents & POLLIN)
			drain(ln, ln->fd4);
		if (pf[1].revents & POLLIN)
			drain(ln, ln->fd6);
	}
	return NULL;
}

/* content's gather: the LAN providers of ih */
static size_t lan_providers(void *arg, const uint8_t ih[20], struct sockaddr_storage *out,
			    size_t cap)
{
	struct lan_node *ln = arg;
	size_t n;

	pthread_mutex_lock(&ln->mu);
	n = lsd_tab_providers(ln->tab, ih, util_now_ms(), out, cap);
	pthread_mutex_unlock(&ln->mu);
	atomic_fetch_add(&ln->providers, n);
	return n;
}

/* -------------------------------------------------------- control API */

static void api_lan(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct lan_node *ln = arg;
	json_t *o, *peers = json_array(), *ifs = json_array();
	uint64_t now = util_now_ms();
	struct lsd_peer_info pi;
	char cookie[16];

	(void)req;
	for (unsigned int i = 0; i < ln->nif; i++)
		json_array_append_new(ifs, json_string(ln->ifnames[i]));
	pthread_mutex_lock(&ln->mu);
	for (unsigned int i = 0; lsd_tab_peer(ln->tab, i, now, &pi) == 0; i++) {
		char ab[INET6_ADDRSTRLEN + 8];
		json_t *ihs = json_array();

		for (unsigned int k = 0; k < pi.nih; k++) {
			char hex[2 * LSD_IH_LEN + 1];

			util_hex(hex, pi.ih[k], LSD_IH_LEN);
			json_array_append_new(ihs, json_string(hex));
		}
		util_fmt_addr(&pi.addr, ab, sizeof(ab));
		json_array_append_new(
		    peers, json_pack("{s:s,s:i,s:b,s:i,s:i,s:I,s:I,s:o}", "addr", ab, "port",
				     pi.port, "weft", pi.weft_quic != 0, "quic_port", pi.weft_quic,
				     "dht_port", pi.weft_dht, "age_s",
				     (json_int_t)((now - pi.last_ms) / 1000), "messages",
				     (json_int_t)pi.msgs, "infohashes", ihs));
	}
	pthread_mutex_unlock(&ln->mu);
	snprintf(cookie, sizeof(cookie), "%x", ln->cookie);
	o = json_pack("{s:b,s:o,s:i,s:s,s:o}", "enabled", 1, "interfaces", ifs, "port", ln->port,
		      "cookie", cookie, "peers", peers);
	json_object_set_new(
	    o, "stats",
	    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "received",
		      (json_int_t)atomic_load(&ln->rx), "malformed",
		      (json_int_t)atomic_load(&ln->rx_bad), "own", (json_int_t)atomic_load(&ln->rx_own),
		      "rate_limited", (json_int_t)atomic_load(&ln->rx_limited), "refused_full",
		      (json_int_t)atomic_load(&ln->rx_refused), "infohashes_heard",
		      (json_int_t)atomic_load(&ln->rx_ih), "sent", (json_int_t)atomic_load(&ln->tx),
		      "send_errors", (json_int_t)atomic_load(&ln->tx_err), "infohashes_sent",
		      (json_int_t)atomic_load(&ln->tx_ih), "dht_pings",
		      (json_int_t)atomic_load(&ln->pings)));
	ctl_resp_json(resp, 200, o);
}

static void lan_metrics(void *arg, FILE *out)
{
	struct lan_node *ln = arg;
	size_t npeers;
	static const struct {
		const char *name, *help;
		size_t off;
	} c[] = {
#define C(n, f, h) {n, h, offsetof(struct lan_node, f)}
	    C("received", rx, "BEP 14 messages received."),
	    C("malformed", rx_bad, "Messages that did not parse."),
	    C("own", rx_own, "Our own announces heard back (cookie)."),
	    C("rate_limited", rx_limited, "Messages dropped over a source's or the overall rate."),
	    C("refused_full", rx_refused, "Messages of new sources refused: the peer table full."),
	    C("infohashes_heard", rx_ih, "Infohashes in the messages taken."),
	    C("sent", tx, "Announces sent (one per interface and family)."),
	    C("send_errors", tx_err, "Announces that could not be sent."),
	    C("infohashes_sent", tx_ih, "Infohashes announced."),
	    C("dht_pings", pings, "LAN peers pinged as DHT contacts."),
	    C("providers", providers, "Providers given to downloads."),
#undef C
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		fprintf(out, "# HELP weft_lan_%s_total %s\n# TYPE weft_lan_%s_total counter\n"
			     "weft_lan_%s_total %llu\n",
			c[i].name, c[i].help, c[i].name, c[i].name,
			(unsigned long long)atomic_load(
			    (atomic_ullong *)((char *)ln + c[i].off)));
	pthread_mutex_lock(&ln->mu);
	npeers = lsd_tab_count(ln->tab, util_now_ms());
	pthread_mutex_unlock(&ln->mu);
	fprintf(out, "# HELP weft_lan_peers LAN peers heard within their TTL.\n"
		     "# TYPE weft_lan_peers gauge\nweft_lan_peers %zu\n",
		npeers);
}

/* ------------------------------------------------------------ lifecycle */

int lan_node_new(struct lan_node **out, const struct lan_node_opts *opts)
{
	struct lan_node *ln = calloc(1, sizeof(*ln));
	int err;

	*out = NULL;
	if (!ln)
		return -ENOMEM;
	ln->o = *opts;
	ln->o.interfaces = NULL; /* not kept: the caller's */
	ln->fd4 = ln->fd6 = -1;
	ln->port = opts->lsd_port ? opts->lsd_port : LSD_PORT;
	pthread_mutex_init(&ln->mu, NULL);
	if (getrandom(&ln->cookie, sizeof(ln->cookie), 0) != sizeof(ln->cookie))
		ln->cookie = (uint32_t)util_now_ms() ^ (uint32_t)getpid();
	ln->cookie &= 0x7fffffff; /* as libtorrent's: it reads the cookie with strtol */
	ln->seeded = calloc(LSD_SCHED_MAX, sizeof(*ln->seeded));
	err = ln->seeded ? 0 : -ENOMEM;
	if (!err)
		err = lsd_tab_new(&ln->tab, opts->max_peers);
	if (!err)
		err = lsd_sched_new(&ln->sched, (uint64_t)opts->announce_s * 1000,
				    (uint64_t)opts->min_gap_s * 1000);
	if (!err)
		err = pick_ifs(ln, opts->interfaces);
	if (err)
		goto fail;
	ln->fd4 = open_sock(ln, 0);
	ln->fd6 = open_sock(ln, 1);
	if (ln->fd4 < 0 && ln->fd6 < 0) {
		err = ln->fd4;
		log_error(LAN_MOD, "cannot listen on udp port %u for BEP 14: %s", ln->port,
			  strerror(-err));
		goto fail;
	}
	if (ln->fd4 < 0)
		ln->fd4 = -1;
	if (ln->fd6 < 0)
		ln->fd6 = -1;
	if (opts->ctl) {
		ctl_route(opts->ctl, "GET", "/v1/lan", api_lan, ln);
		ctl_metrics(opts->ctl, lan_metrics, ln);
	}
	if (opts->content)
		content_node_set_lan(opts->content, lan_providers, ln);
	*out = ln;
	return 0;
fail:
	lan_node_free(ln);
	return err;
}

int lan_node_start(struct lan_node *ln)
{
	int rc = log_thread_create(&ln->thr, NULL, lan_thread, ln, "weft-lan");
	char names[LAN_MAX_IFACES * (IF_NAMESIZE + 1)] = "";

	if (rc)
		return -rc;
	ln->started = 1;
	for (unsigned int i = 0; i < ln->nif; i++) {
		if (i)
			strcat(names, ",");
		strcat(names, ln->ifnames[i]);
	}
	log_info(LAN_MOD, "LAN discovery (BEP 14) on %s, udp %u, IPv4%s%s", names, ln->port,
		 ln->fd4 < 0 ? " off" : "", ln->fd6 < 0 ? ", IPv6 off" : " and IPv6");
	return 0;
}

void lan_node_stop(struct lan_node *ln)
{
	if (!ln || !ln->started)
		return;
	atomic_store(&ln->stop, 1);
	pthread_join(ln->thr, NULL);
	ln->started = 0;
}

void lan_node_free(struct lan_node *ln)
{
	if (!ln)
		return;
	lan_node_stop(ln);
	if (ln->fd4 >= 0)
		close(ln->fd4);
	if (ln->fd6 >= 0)
		close(ln->fd6);
	lsd_tab_free(ln->tab);
	lsd_sched_free(ln->sched);
	free(ln->seeded);
	pthread_mutex_destroy(&ln->mu);
	free(ln);
}
