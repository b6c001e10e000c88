// SPDX-License-Identifier: MIT
/* weftd's node: wiring of identity, store, control API and the main loop. */
#include <errno.h>
#include <ifaddrs.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <liburing.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "weft/conn.h"
#include "weft/ctl.h"
#include "weft/dash.h"
#include "weft/lan.h"
#include "weft/engine.h"
#include "weft/guard.h"
#include "weft/log.h"
#include "weft/node.h"
#include "weft/quic.h"
#include "weft/quic_node.h"
#include "weft/mailbox.h"
#include "weft/relay.h"
#include "weft/relay_fwd.h"
#include "weft/simnet.h"
#include "weft/store.h"
#include "weft/util.h"
#include "weft/xdp.h"
#include "weft/dhtnode.h"
#include "weft/svc_node.h"
#include "weft/comm_node.h"
#include "weft/mesh_node.h"
#include "weft/content_node.h"
#include "node_int.h"
#include "notify.h"

_Static_assert(CONFIG_MAX_BOOTSTRAP <= DHTNODE_MAX_BOOTSTRAP,
	       "every configured bootstrap contact fits the DHT's options");

/* Housekeeping tick of the main loop. 1 s: coarse work only (expiry,
 * persistence flushes); packet timers live in the engine's wheels. */
#define NODE_TICK_MS 1000
/* Expired bans are removed from the map, policers and store every 10 s;
 * the XDP program already ignores them as soon as they expire. */
#define NODE_BAN_GC_TICKS 10
/* The DHT's routing table and items are written to the store every 5 min
 * and at stop, so a crash loses at most 5 min of DHT state. */
#define DHTNODE_SAVE_TICKS 300

const struct identity *node_identity(const struct node *n)
{
	return &n->id;
}

/* What a node with no way into the DHT tells its operator, in its log at
 * start and in GET /v1/status ("join_hint", weftctl status). */
static const char JOIN_HINT[] =
	"no DHT bootstrap contact and no public routers: this node only learns of nodes that "
	"contact it; join a mesh with --bootstrap HOST:PORT (dht.bootstrap), or the public "
	"Mainline DHT with --set dht.public_routers=true";

static int node_isolated(const struct node *n)
{
	return !n->cfg.dht_nbootstrap && !n->cfg.dht_public_routers;
}

/* GET /v1/lan while LAN discovery is off: say so, and why. */
static void node_lan_off(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct node *n = arg;

	(void)req;
	ctl_resp_json(resp, 200,
		      json_pack("{s:b,s:s}", "enabled", 0, "reason",
				!strcmp(n->cfg.lan_discovery, "off") ? "lan.discovery = off"
				: n->sim_host			      ? "simulated network"
				: !node_isolated(n) ? "lan.discovery = auto and a bootstrap is set"
						    : "cannot listen (see the log)"));
}

/* lan.discovery: "auto" is on for a node with no bootstrap (a home or
 * office machine finding its LAN), off for one given a bootstrap (a
 * data-centre host; the package's weft.conf says off too). Only "on"
 * makes a failure to listen fatal. */
static int node_lan_init(struct node *n)
{
	const char *mode = n->cfg.lan_discovery;
	struct lan_node_opts lo = { .ctl = n->ctl, .dht = n->dht, .content = n->content,
				    .quic_port = (uint16_t)n->cfg.quic_port,
				    .dht_port = (uint16_t)n->cfg.dht_port,
				    .interfaces = n->cfg.lan_interfaces,
				    .max_peers = n->cfg.lan_max_peers,
				    .announce_s = n->cfg.lan_announce_s,
				    .min_gap_s = n->cfg.lan_min_gap_s };
	int err;

	/* a node on a simulated network has no LAN (and must not multicast
	 * on the test machine's) */
	if (!strcmp(mode, "off") || n->sim_host || (!strcmp(mode, "auto") && !node_isolated(n)))
		return ctl_route(n->ctl, "GET", "/v1/lan", node_lan_off, n);
	err = lan_node_new(&n->lan, &lo);
	if (err && !strcmp(mode, "on")) {
		log_error("node", "lan.discovery = on, and LAN discovery cannot start: %s",
			  strerror(-err));
		return err;
	}
	if (err) {
		log_warn("node", "LAN discovery (lan.discovery = auto) is off: %s",
			 strerror(-err));
		return ctl_route(n->ctl, "GET", "/v1/lan", node_lan_off, n);
	}
	return 0;
}

static void node_status(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct node *n = arg;
	json_t *o;

	o = json_pack("{s:s,s:s,s:I,s:s,s:{s:i,s:i},s:s,s:s,s:I}", "node_key", n->pk_hex,
		      "version", WEFT_VERSION, "uptime_s",
		      (json_int_t)((util_now_ms() - n->start_ms) / 1000), "io_mode", n->io_mode,
		      "ports", "quic", (int)n->cfg.quic_port, "dht", (int)n->cfg.dht_port,
		      "state_dir", n->cfg.state_dir, "socket", n->cfg.ctl_socket, "pid",
		      (json_int_t)getpid());
	json_object_set_new(o, "bootstrap",
			    json_pack("{s:i,s:b}", "contacts", (int)n->cfg.dht_nbootstrap,
				      "public_routers", n->cfg.dht_public_routers));
	json_object_set_new(o, "heap", node_heap_json());
	if (node_isolated(n))
		json_object_set_new(o, "join_hint", json_string(JOIN_HINT));
	if (n->conn) {
		json_t *c = conn_node_status_json(n->conn);

		json_object_update(o, c);
		json_decref(c);
	}
	ctl_resp_json(resp, 200, o);
}

static void node_metrics(void *arg, FILE *out)
{
	struct node *n = arg;
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	fprintf(out,
		"# HELP weft_build_info weftd version.\n# TYPE weft_build_info gauge\n"
		"weft_build_info{version=\"%s\",io_mode=\"%s\"} 1\n"
		"# HELP process_start_time_seconds Start time of the process since the epoch.\n"
		"# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %llu\n"
		"# HELP weft_node_uptime_seconds Seconds since weftd started.\n"
		"# TYPE weft_node_uptime_seconds gauge\nweft_node_uptime_seconds %llu\n"
		"# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
		"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n"
		"# HELP weft_node_config_reloads_total SIGHUP reloads applied.\n"
		"# TYPE weft_node_config_reloads_total counter\nweft_node_config_reloads_total %llu\n",
		WEFT_VERSION, n->io_mode, (unsigned long long)n->start_wall,
		(unsigned long long)((util_now_ms() - n->start_ms) / 1000),
		rss * sysconf(_SC_PAGESIZE), atomic_load(&n->reloads));
	node_heap_metrics(out);
}

/*
 * Packet engine: AF_XDP behind the XDP program in xdp mode, io_uring UDP
 * sockets otherwise. A failure to open AF_XDP sockets falls back to
 * io_uring, loudly: the XDP program stays attached and keeps filtering,
 * and what it accepts reaches the sockets through the kernel stack.
 */
/* A QUIC handshake proved a peer's address: the guard gives it priority in
 * the kernel and lets the abuse pipeline ban it (quic_node_opts.on_validated). */
static void quic_validated(void *arg, const struct sockaddr *sa, socklen_t len)
{
	struct io_addr a;

	if (!arg || io_addr_from_sockaddr(&a, sa, len))
		return;
	guard_validated_add(arg, a.family, a.addr, GUARD_EV_HANDSHAKE);
}

/* What QUIC peers and DHT repliers say they see us at: votes for the
 * reflexive address (conn). n->conn is set before the workers start. */
static void quic_observed(void *arg, const struct sockaddr *peer, socklen_t peerlen,
			  const struct io_addr *seen, uint16_t local_port)
{
	struct node *n = arg;
	struct io_addr voter;

	if (io_addr_from_sockaddr(&voter, peer, peerlen))
		return;
	/* Over a relay circuit the peer sees us at the relay's address,
	 * which is its own view of the peer too: not a vote about us. */
	if (voter.family == seen->family && voter.port == seen->port &&
	    !memcmp(voter.addr, seen->addr, sizeof(voter.addr)))
		return;
	conn_node_observed(n->conn, CONN_VOTE_QUIC, &voter, seen, local_port);
}

static void dht_reflexive(void *arg, const struct sockaddr *from, socklen_t fromlen,
			  const uint8_t *ip, size_t ip_len)
{
	struct node *n = arg;
	struct io_addr voter, seen = { 0 };

	if (io_addr_from_sockaddr(&voter, from, fromlen))
		return;
	seen.family = ip_len == 6 ? AF_INET : AF_INET6;
	memcpy(seen.addr, ip, ip_len - 2);
	seen.port = (uint16_t)(ip[ip_len - 2] << 8 | ip[ip_len - 1]);
	conn_node_observed(n->conn, CONN_VOTE_KRPC, &voter, &seen, (uint16_t)n->cfg.dht_port);
}

/* Hole punching candidates (quic_node_opts.path_cands). */
static unsigned int node_path_cands(void *arg, struct io_addr *out, unsigned int max, uint8_t *nat)
{
	struct node *n = arg;

	return conn_node_path_cands(n->conn, out, max, nat);
}

/* Dial by key (quic_node_opts.resolve): the addresses of the node record. */
static int node_resolve(void *arg, const uint8_t *key, struct sockaddr_storage *addrs,
			unsigned int max, unsigned int *nrelays, unsigned int timeout_ms,
			unsigned int flags)
{
	struct node *n = arg;
	struct conn_record rec;
	unsigned int i, cnt = 0;
	int err;

	err = conn_node_resolve_opts(n->conn, key, &rec, NULL, timeout_ms,
				     (flags & QUIC_NODE_RESOLVE_FRESH ? CONN_RESOLVE_FRESH : 0) |
					 (flags & QUIC_NODE_RESOLVE_PAST_MISS ? CONN_RESOLVE_PAST_MISS
									      : 0));
	if (err)
		return err;
	*nrelays = rec.nrelays;
	for (i = 0; i < rec.naddrs && cnt < max; i++)
		if (io_addr_to_sockaddr(&rec.addrs[i], rec.addrs[i].family, &addrs[cnt]) > 0)
			cnt++;
	return (int)cnt;
}

/* Dial by key through a relay the node record lists (quic_node_opts.relay):
 * a circuit from the first relay that grants one, all within timeout_ms
 * (0: the relay's own deadlines); *status: the last refusal. */
static int node_relay(void *arg, const uint8_t *key, struct sockaddr_storage *out,
		      unsigned int timeout_ms, unsigned int *status)
{
	struct node *n = arg;
	struct conn_record rec;
	struct io_addr via;
	char hex[2 * CONN_KEY_LEN + 1];
	uint64_t end = util_now_ms() + timeout_ms;
	unsigned int st = 0, left = timeout_ms;
	int err;

	err = conn_node_resolve_within(n->conn, key, &rec, NULL, timeout_ms);
	if (err)
		return err;
	err = -EHOSTUNREACH;
	for (unsigned int i = 0; i < rec.nrelays; i++) {
		if (timeout_ms) {
			uint64_t now = util_now_ms();

			if (now >= end)
				return -ETIMEDOUT;
			left = (unsigned int)(end - now);
		}
		err = relay_node_circuit(n->relay, rec.relays[i].key, &rec.relays[i].addr, key, &via,
					 left, &st);
		if (err == -ECONNREFUSED)
			*status = st;
		if (!err)
			return io_addr_to_sockaddr(&via, via.family, out) > 0 ? 0 : -EINVAL;
		util_hex(hex, key, CONN_KEY_LEN);
		log_info("node", "relay circuit to %.16s... failed: %s%s%s", hex, strerror(-err),
			 err == -ECONNREFUSED ? ": " : "",
			 err == -ECONNREFUSED ? relay_status_name(st) : "");
	}
	return err;
}

/* STUN on the QUIC port (docs/CONNECTIVITY.md): answers to our relay
 * circuit binds, and Binding requests we answer. */
static int quic_stun(void *arg, const uint8_t *buf, size_t len, const struct io_addr *from,
		     uint8_t *out, size_t cap)
{
	struct node *n = arg;

	if (relay_node_stun(n->relay, buf, len, from))
		return 0;
	return conn_stun_answer(buf, len, from, out, cap);
}

/* The node's own addresses: the bind address when it is specific, else
 * the interfaces' (getifaddrs); the simulated host's address in tests. */
static unsigned int node_local_addrs(struct node *n, struct io_addr *out, unsigned int max)
{
	struct sockaddr_storage ss;
	struct ifaddrs *ifa = NULL, *i;
	unsigned int cnt = 0, sl;
	char bind[80];

	if (n->sim_host) {
		simnet_host_addr(n->sim_host, &out[0]);
		return 1;
	}
	if (strchr(n->cfg.bind_addr, ':') && n->cfg.bind_addr[0] != '[')
		snprintf(bind, sizeof(bind), "[%s]:1", n->cfg.bind_addr);
	else
		snprintf(bind, sizeof(bind), "%s:1", n->cfg.bind_addr);
	if (!util_parse_addr(bind, &ss, &sl) &&
	    !io_addr_from_sockaddr(&out[0], (struct sockaddr *)&ss, sl)) {
		static const uint8_t zero[16];

		if (memcmp(out[0].addr, zero, out[0].family == AF_INET ? 4 : 16))
			return 1;
	}
	if (getifaddrs(&ifa))
		return 0;
	for (i = ifa; i && cnt < max; i = i->ifa_next) {
		socklen_t l;

		if (!i->ifa_addr)
			continue;
		l = i->ifa_addr->sa_family == AF_INET	 ? sizeof(struct sockaddr_in)
		    : i->ifa_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							 : 0;
		if (l && !io_addr_from_sockaddr(&out[cnt], i->ifa_addr, l))
			cnt++;
	}
	freeifaddrs(ifa);
	return cnt;
}

static int node_nat_found(void *arg)
{
	struct node *n = arg;

	return conn_node_nat_found(n->conn);
}

static int node_conn_init(struct node *n)
{
	struct sockaddr_storage ann[CONN_REC_MAX_ADDRS];
	struct conn_node_opts co = { .eng = n->engine, .dht = n->dht, .ctl = n->ctl,
				     .id = &n->id, .quic_port = (uint16_t)n->cfg.quic_port };
	int na, err;

	na = config_announce_addrs(&n->cfg, ann, CONN_REC_MAX_ADDRS);
	for (int i = 0; i < na; i++)
		if (!io_addr_from_sockaddr(&co.announce[co.nannounce], (struct sockaddr *)&ann[i],
					   sizeof(ann[i])))
			co.nannounce++;
	co.cache_max = n->cfg.resolve_cache_max;
	co.seen_relays_max = n->cfg.relay_seen_max;
	co.cache_ttl_s = n->cfg.resolve_cache_ttl_s;
	co.caps = CONN_CAP_SEED | (n->cfg.gateway[0] ? CONN_CAP_GATEWAY : 0) |
		  (n->cfg.relay_enable ? CONN_CAP_RELAY : 0) |
		  (config_mailbox_enabled(&n->cfg) ? CONN_CAP_MAILBOX : 0);
	co.nlocal = node_local_addrs(n, co.local, CONN_REC_MAX_ADDRS);
	na = config_vote_networks(&n->cfg, co.voter_nets, CONN_VOTE_NETS_MAX);
	co.nvoter_nets = na > 0 ? (unsigned int)na : 0;
	err = conn_node_new(&n->conn, &co);
	if (err) {
		log_error("node", "connectivity: %s", strerror(-err));
		return err;
	}
	dhtnode_set_reflexive(n->dht, dht_reflexive, n);
	dhtnode_set_nat_probe(n->dht, node_nat_found, n);
	return 0;
}

/* The gateway's /mesh/v1/msg/<op> (svc_node_gw_msg): the mesh's control
 * routes /v1/mesh/<op>, those an application uses. */
static void node_gw_mesh(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	static const char *const ops[] = {"announce", "query",	 "update", "revoke",
					  "reserve",  "inbox",	 "confirm", "cancel"};
	struct node *n = arg;
	struct ctl_req r = *req;
	char path[32];

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(req->subpath, ops[i])) {
			snprintf(path, sizeof(path), "/v1/mesh/%s", ops[i]);
			r.path = path;
			r.subpath = "";
			ctl_dispatch(n->ctl, &r, resp);
			return;
		}
	ctl_resp_error(resp, 404, "not_found",
		       "no mesh operation '%.32s': announce, query, update, revoke, reserve, "
		       "inbox, confirm, cancel",
		       req->subpath);
}

/* Mailboxes (docs/MAILBOX.md): always (our inbox, msg send); serving
 * others with mailbox.enabled. */
static int node_mbox_init(struct node *n)
{
	struct mbox_node_opts mo = {
		.quic = n->quic, .store = n->store, .id = &n->id, .ctl = n->ctl,
		.conn = n->conn, .dht = n->dht, .quic_port = (uint16_t)n->cfg.quic_port,
		.enabled = config_mailbox_enabled(&n->cfg),
		.lim = { .per_rcpt_msgs = n->cfg.mailbox_rcpt_msgs,
			 .per_rcpt_bytes = n->cfg.mailbox_rcpt_bytes,
			 .total_msgs = n->cfg.mailbox_max_msgs,
			 .total_bytes = n->cfg.mailbox_max_bytes,
			 .max_age_s = n->cfg.mailbox_max_age_s,
			 .inbox_max = n->cfg.mailbox_inbox_max },
		.rate_per_min = n->cfg.mailbox_sender_rate,
		.rate_burst = n->cfg.mailbox_sender_burst,
		.fetch_s = n->cfg.mailbox_fetch_s,
	};
	int k = config_mailbox_anchors(&n->cfg, mo.anchors, MBOX_MAX_ANCHORS);
	int err;

	mo.nanchors = k > 0 ? (unsigned int)k : 0;
	err = mbox_node_new(&n->mbox, &mo);
	if (err)
		log_error("node", "mailbox: %s", strerror(-err));
	return err;
}

/* The relay's control plane (always: a node may hold reservations and
 * dial through relays), and its data plane with relay.enable. */
static int node_relay_init(struct node *n)
{
	struct relay_node_opts ro = { .eng = n->engine, .quic = n->quic, .ctl = n->ctl,
				      .guard = n->guard, .conn = n->conn, .dht = n->dht,
				      .quic_port = (uint16_t)n->cfg.quic_port };
	struct relay_fwd_opts fo;
	int err, nuse;

	ro.tab.max_reservations = n->cfg.relay_max_reservations;
	ro.tab.circuits_per_res = n->cfg.relay_circuits_per_res;
	ro.tab.reservations_per_addr = n->cfg.relay_res_per_addr;
	ro.tab.ttl_s = n->cfg.relay_reservation_ttl_s;
	ro.tab.churn_max = n->cfg.relay_churn_max;
	ro.flood_drops = n->cfg.relay_flood_drops;
	ro.reserve = !strcmp(n->cfg.relay_reserve, "always")  ? 1
		     : !strcmp(n->cfg.relay_reserve, "never") ? 0
							      : -1;
	ro.accept = n->cfg.relay_accept;
	ro.no_announce = !n->cfg.relay_announce;
	ro.circuit_bytes = n->cfg.relay_circuit_bytes;
	ro.circuit_lifetime_ms = n->cfg.relay_circuit_lifetime_ms;
	nuse = config_relay_use(&n->cfg, ro.use, RELAY_MAX_USE);
	ro.nuse = nuse > 0 ? (unsigned int)nuse : 0;
	err = relay_node_new(&n->relay, &ro);
	if (err) {
		log_error("node", "relay: %s", strerror(-err));
		return err;
	}
	if (!n->cfg.relay_enable)
		return 0;
	/* The XDP program hands relay binds (and circuits not in the kernel)
	 * to instance 0's AF_XDP sockets and serves one relay port range per
	 * interface (docs/OPERATIONS.md, "A relay in xdp mode"): a relay in an
	 * instance that joined another weftd's program would never see them,
	 * and would take over that range. */
	if (n->xdp && wxdp_owner(n->xdp) != 0) {
		log_error("node",
			  "relay: this weftd joined weft's XDP program on %s as instance %u; in xdp "
			  "mode the relay must be instance 0, the first weftd on the interface "
			  "(the program hands relay binds to instance 0's sockets, one relay per "
			  "interface): start the relay first, or run it with --io uring",
			  wxdp_ifname(n->xdp), wxdp_owner(n->xdp));
		return -EBUSY;
	}
	relay_fwd_opts_default(&fo);
	fo.eng = n->engine;
	if (config_relay_ports(&n->cfg, &fo.port_min, &fo.port_max))
		return -EINVAL;
	fo.max_circuits = n->cfg.relay_max_circuits;
	fo.defaults.max_bytes = n->cfg.relay_circuit_bytes;
	fo.defaults.pps = n->cfg.relay_circuit_pps;
	fo.defaults.burst = n->cfg.relay_circuit_burst;
	fo.defaults.lifetime_ms = n->cfg.relay_circuit_lifetime_ms;
	fo.defaults.idle_ms = n->cfg.relay_circuit_idle_ms;
	fo.xdp = n->xdp;
	fo.on_end = relay_node_fwd_end;
	fo.arg = n->relay;
	err = relay_fwd_new(&n->relay_fwd, &fo);
	if (err) {
		log_error("node", "relay data plane on udp %u-%u: %s", fo.port_min, fo.port_max,
			  strerror(-err));
		return err;
	}
	relay_node_set_fwd(n->relay, n->relay_fwd);
	return 0;
}

/* The service fabric's settings, from weftd's configuration (the fabric
 * never sees struct weft_config: docs/ARCHITECTURE.md, "Layers"). */
static void node_svc_cfg(const struct weft_config *c, struct svc_node_cfg *s)
{
	memset(s, 0, sizeof(*s));
	s->quic_port = c->quic_port;
	snprintf(s->bind_addr, sizeof(s->bind_addr), "%s", c->bind_addr);
	snprintf(s->gateway, sizeof(s->gateway), "%s", c->gateway);
	s->gateway_allow_public = c->gateway_allow_public;
	snprintf(s->gateway_services, sizeof(s->gateway_services), "%s", c->gateway_services);
	s->svc_peer_calls_per_min = c->svc_peer_calls_per_min;
	s->svc_max_payload = c->svc_max_payload;
	s->svc_peer_concurrency = c->svc_peer_concurrency;
	s->svc_service_calls_per_min = c->svc_service_calls_per_min;
	s->svc_service_concurrency = c->svc_service_concurrency;
	s->svc_addr_calls_per_min = c->svc_addr_calls_per_min;
	s->svc_addr_concurrency = c->svc_addr_concurrency;
	s->svc_global_concurrency = c->svc_global_concurrency;
	s->svc_max_timeout_ms = c->svc_max_timeout_ms;
	s->svc_backend_max_inflight = c->svc_backend_max_inflight;
	s->svc_backend_max_per_service = c->svc_backend_max_per_service;
	s->svc_backend_pool_conns = c->svc_backend_pool_conns;
	s->svc_backend_idle_ms = c->svc_backend_idle_ms;
	s->svc_http_buffer = c->svc_http_buffer;
	s->svc_owner_queue = c->svc_owner_queue;
	s->svc_owner_worker = !strcmp(c->svc_owner, "worker");
	s->svc_conn_streams = c->svc_conn_streams;
	s->svc_ban_threshold = c->svc_ban_threshold;
	s->svc_addr_ban_threshold = c->svc_addr_ban_threshold;
	s->svc_stream_idle_ms = c->svc_stream_idle_ms;
	s->svc_stream_max_bytes = c->svc_stream_max_bytes;
	s->svc_stream_buffer = c->svc_stream_buffer;
	s->svc_peer_streams = c->svc_peer_streams;
	s->svc_service_streams = c->svc_service_streams;
	s->svc_ws_max_message = c->svc_ws_max_message;
}

/* svc_node_opts.announce_port: the NAT's mapping of our QUIC socket. */
static uint16_t node_announce_port(void *arg)
{
	struct node *n = arg;

	return conn_node_quic_mapped_port(n->conn, AF_INET);
}

static int node_engine_init(struct node *n)
{
	struct sock_filter insns[QUIC_CID_ROUTE_CBPF_LEN];
	struct sock_fprog fp;
	struct engine_opts eo;
	uint16_t list[CONFIG_MAX_WORKERS];
	int cpus[ENGINE_MAX_WORKERS];
	int err, ncpus;

	engine_opts_default(&eo);
	/* Worker i runs on the i-th CPU of node.cpus, wrapping round. */
	ncpus = config_parse_cpus(n->cfg.cpus, list, CONFIG_MAX_WORKERS);
	if (ncpus > 0) {
		for (unsigned int i = 0; i < n->workers; i++)
			cpus[i] = list[i % (unsigned int)ncpus];
		eo.pin_cpus = 1;
		eo.cpus = cpus;
	}
	n->ports[0] = (uint16_t)n->cfg.quic_port;
	n->ports[1] = (uint16_t)n->cfg.dht_port;
	eo.ports = n->ports;
	eo.nports = 2;
	if (n->cfg.relay_enable &&
	    config_relay_ports(&n->cfg, &eo.range_min, &eo.range_max)) /* checked by config */
		return -EINVAL;
	/* Commands per worker: 4096 (64 KiB of ring), not the engine's 256:
	 * the service fabric's owner and the content serve threads reach
	 * QUIC through it (every answer, stream open and reset), and a
	 * connection coming up flushes up to 96 waiting stream opens at once. */
	eo.cmdq_size = 4096;
	eo.workers = n->workers;
	eo.bind_addr = n->cfg.bind_addr;
	if (n->xdp) {
		eo.mode = IO_MODE_XDP;
		eo.ifname = n->cfg.xdp_ifname;
		eo.xskmap_fd = wxdp_fd(n->xdp, WXDP_FD_XSKS);
		eo.xskmap_base = wxdp_owner(n->xdp) * WXDP_MAX_QUEUES;
		eo.xdp_first_queue = n->cfg.xdp_first_queue;
		err = engine_new(&n->engine, &eo);
		if (!err)
			goto registered;
		log_error("node", "AF_XDP on %s failed: %s", n->cfg.xdp_ifname, strerror(-err));
		log_warn("node", "falling back to io_uring sockets; the XDP program still filters");
		n->io_mode = "uring";
		eo.mode = IO_MODE_URING;
		eo.ifname = NULL;
		eo.xskmap_fd = -1;
		node_steer(n, &eo, &fp, insns);
	} else {
		eo.mode = IO_MODE_URING;
		eo.filter = guard_filter;
		eo.filter_arg = n->guard;
		node_steer(n, &eo, &fp, insns);
		if (n->sim_host) {
			eo.mode = IO_MODE_MEM;
			eo.sim_host = n->sim_host;
			eo.clock = simnet_now_ns;
			eo.clock_arg = simnet_host_net(n->sim_host);
		}
	}
	err = engine_new(&n->engine, &eo);
	if (err) {
		log_error("node", "cannot open UDP ports %u/%u on %s: %s", n->ports[0], n->ports[1],
			  n->cfg.bind_addr, strerror(-err));
		return err;
	}
registered:
	{
		struct quic_node_opts qo = {
			.eng = n->engine,
			.ctl = n->ctl,
			.id = &n->id,
			.port = (uint16_t)n->cfg.quic_port,
			.idle_timeout_ms = n->cfg.quic_idle_timeout_ms,
			.keepalive_ms = n->cfg.quic_keepalive_ms,
			.fair_windows = n->cfg.quic_fair_windows,
			.aead = quic_aead_parse(n->cfg.quic_aead),
			.max_conns = n->cfg.quic_max_conns,
			.max_conns_per_addr = n->cfg.quic_max_conns_per_addr,
			.max_streams = n->cfg.quic_max_streams,
			.retry_rate = n->cfg.quic_retry_rate,
			.max_queued = (size_t)n->cfg.quic_max_queued,
			.test_hold_credit = n->cfg.test.quic_hold_credit,
			.on_validated = quic_validated,
			.validated_arg = n->guard,
			.on_observed = quic_observed,
			.observed_arg = n,
			.on_stun = quic_stun,
			.stun_arg = n,
			.resolve = node_resolve,
			.resolve_arg = n,
			.relay = node_relay,
			.relay_arg = n,
			.punch_off = !n->cfg.quic_punch,
			.path_cands = node_path_cands,
			.path_cands_arg = n,
			.path = { .attempts = n->cfg.quic_punch_attempts,
				  .max_cands = n->cfg.quic_punch_cands,
				  .fallback_ms = n->cfg.quic_punch_fallback_ms,
				  .probe_ttl = n->cfg.quic_punch_probe_ttl
						   ? n->cfg.quic_punch_probe_ttl
						   : PATH_PROBE_TTL_OFF },
			.punch_peer_attempts = n->cfg.quic_punch_peer_attempts,
			.punch_peer_window_s = n->cfg.quic_punch_peer_window_s,
		};

		err = quic_node_new(&n->quic, &qo);
		if (err == -EOPNOTSUPP) {
			log_error("node", "quic.aead = %s: this CPU lacks it (its widest: %s)",
				  n->cfg.quic_aead, quic_aead_widest());
			return err;
		}
		if (err) {
			log_error("node", "QUIC on udp %u: %s", qo.port, strerror(-err));
			return err;
		}
	}
	ctl_route(n->ctl, "GET", "/v1/io/stats", engine_ctl_stats, n->engine);
	ctl_metrics(n->ctl, engine_metrics, n->engine);
	{
		struct dhtnode_opts dop = {
			.port = (uint16_t)n->cfg.dht_port,
			/* a socket bound to "::" serves both families */
			.dual_stack = strchr(n->cfg.bind_addr, ':') != NULL,
			.read_only = n->cfg.dht_read_only,
			.read_only_behind_nat = n->cfg.dht_read_only_behind_nat,
			.enforce_bep42 = n->cfg.dht_enforce_bep42,
			.public_routers = n->cfg.dht_public_routers,
			.nbootstrap = n->cfg.dht_nbootstrap,
		};

		for (unsigned int i = 0; i < dop.nbootstrap && i < DHTNODE_MAX_BOOTSTRAP; i++)
			dop.bootstrap[i] = n->cfg.dht_bootstrap[i];
		err = dhtnode_new(&n->dht, n->engine, n->ctl, n->guard, n->store, &dop, &n->id);
		if (err)
			return err;
	}
	err = node_conn_init(n);
	if (err)
		return err;
	err = node_relay_init(n);
	if (err)
		return err;
	err = node_mbox_init(n);
	if (err)
		return err;
	{
		struct content_node_opts cno = {
		    .eng = n->engine,
		    .store = n->store,
		    .state_dir = n->cfg.state_dir,
		    .quic = n->quic,
		    .dht = n->dht,
		    .guard = n->guard,
		    .ctl = n->ctl,
		    .id = &n->id,
		    .quic_port = (uint16_t)n->cfg.quic_port,
		    .quota_bytes = n->cfg.content_quota,
		    .direct_io = n->cfg.content_direct_io,
		    .hot_chunks = n->cfg.content_hot_chunks ? (int)n->cfg.content_hot_chunks : -1,
		    .read_threads =
			n->cfg.content_read_threads ? (int)n->cfg.content_read_threads : -1,
		    .poll_s = n->cfg.content_poll_s,
		    .watch_keepalive_ms = n->cfg.quic_idle_timeout_ms / 3,
		    .req_timeout_ms = n->cfg.test.content_req_timeout_ms,
		    .limits = {.upload_rate = n->cfg.content_upload_rate,
			       .peer_rate = n->cfg.content_peer_upload_rate,
			       .lan_peer_rate = n->cfg.content_lan_peer_upload_rate,
			       .lan_capped = n->cfg.content_lan_capped,
			       .upload_auto = n->cfg.content_upload_auto},
		    .superseed_s =
			n->cfg.content_superseed_s ? (int)n->cfg.content_superseed_s : -1,
		    .serve_peer_held = n->cfg.content_serve_peer_held,
		    .serve_stall_s = n->cfg.content_serve_stall_s,
		    .ignore_withdrawals = !n->cfg.content_honour_withdrawals,
		    .test_corrupt = n->cfg.test.content_corrupt,
		    .test_serve_delay_ms = n->cfg.test.content_serve_delay_ms,
		    .test_lookup_poll_ms = n->cfg.test.content_lookup_poll_ms};

		err = content_node_new(&n->content, &cno);
		if (err)
			return err;
	}
	err = node_lan_init(n);
	if (err)
		return err;
	{
		struct svc_node_cfg sc;
		struct svc_node_opts so = { .eng = n->engine, .ctl = n->ctl, .quic = n->quic,
					    .dht = n->dht, .guard = n->guard, .store = n->store,
					    .id = &n->id,
					    .cfg = &sc,
					    .announce_port = node_announce_port,
					    .announce_port_arg = n };

		node_svc_cfg(&n->cfg, &sc);

		err = svc_node_new(&n->svc, &so);
		if (err) {
			log_error("node", "service fabric: %s", strerror(-err));
			return err;
		}
	}
	{
		struct comm_node_opts co = { .store = n->store, .ctl = n->ctl, .id = &n->id,
					     .quic = n->quic, .dht = n->dht, .conn = n->conn,
					     .quic_port = (uint16_t)n->cfg.quic_port };

		err = comm_node_new(&n->comm, &co);
		if (err) {
			log_error("node", "communities: %s", strerror(-err));
			return err;
		}
	}
	{
		struct mesh_node_opts mo = {
			.store = n->store, .comm = n->comm, .id = &n->id, .ctl = n->ctl,
			.store_opts = {.per_service = n->cfg.mesh_per_service,
				       .per_provider = n->cfg.mesh_per_provider,
				       .services_max = n->cfg.mesh_services_max},
			.hops_announce = (uint8_t)n->cfg.mesh_hops_announce,
			.hops_query = (uint8_t)n->cfg.mesh_hops_query, .fanout = n->cfg.mesh_fanout,
			.mbox = n->mbox, .inbox_max = n->cfg.mesh_inbox_max,
			.min_level = (uint8_t)mesh_level_parse(n->cfg.mesh_min_level)};
		struct mesh_trust trust;

		if (config_mesh_trusted(&n->cfg, &trust) >= 0)
			mo.trust = &trust;
		err = mesh_node_new(&n->mesh, &mo);
		if (err) {
			log_error("node", "mesh: %s", strerror(-err));
			return err;
		}
		svc_node_gw_msg(n->svc, node_gw_mesh, n);
	}
	return 0;
}

int node_new(struct node **out, const struct weft_config *cfg, const char *config_path)
{
	struct node_opts o = { .config_path = config_path };

	return node_new_opts(out, cfg, &o);
}

struct ctl *node_ctl(struct node *n)
{
	return n->ctl;
}

struct svc_node *node_svc(struct node *n)
{
	return n->svc;
}

struct content_node *node_content(struct node *n)
{
	return n->content;
}

struct log_ctx *node_log(struct node *n)
{
	return &n->log;
}

int node_new_opts(struct node **out, const struct weft_config *cfg, const struct node_opts *opts)
{
	static const struct node_opts none;
	const char *config_path;
	struct store_opts so = { 0 };
	struct ctl_opts co = { 0 };
	struct log_ctx *prev_log;
	enum log_level lvl;
	struct node *n;
	int created, err;

	*out = NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->cfg = *cfg;
	if (log_level_parse(cfg->log_level, &lvl))
		lvl = LOG_LVL_INFO;
	if (!opts)
		opts = &none;
	config_path = opts->config_path;
	n->sim_host = opts->sim_host;
	log_ctx_init(&n->log, lvl, opts->log_fd > 0 ? opts->log_fd : -1, opts->log_name);
	log_ctx_set_addresses(&n->log, cfg->log_addresses);
	/* process-wide: the helper threads started from here on */
	log_thread_helpers_batch(strcmp(cfg->helper_sched, "normal") != 0);
	/* Everything node_new starts (threads included) logs with the node's
	 * context; the caller's binding is restored on return. */
	prev_log = log_bind(&n->log);
	if (config_path)
		snprintf(n->config_path, sizeof(n->config_path), "%s", config_path);
	n->start_ms = util_now_ms();
	n->start_wall = util_wall_s();
	n->io_mode = n->sim_host ? "mem" : "uring";

	err = util_mkdir_p(cfg->state_dir, 0700);
	if (err) {
		log_error("node", "cannot create state directory %s: %s", cfg->state_dir,
			  strerror(-err));
		goto fail;
	}
	/* The store's flock guards the whole state directory. */
	char sdir[PATH_MAX + 8];

	snprintf(sdir, sizeof(sdir), "%s/store", cfg->state_dir);
	so.dir = sdir;
	so.map_size = cfg->store_map_size;
	err = store_new(&n->store, &so);
	if (err) {
		if (err == -EBUSY)
			log_error("node", "state directory %s is in use by another weftd",
				  cfg->state_dir);
		else
			log_error("node", "cannot open the store in %s: %s", sdir, strerror(-err));
		goto fail;
	}
	err = identity_load(&n->id, cfg->state_dir, 1, &created);
	if (err) {
		log_error("node", "cannot load the node key in %s: %s", cfg->state_dir,
			  strerror(-err));
		goto fail;
	}
	util_hex(n->pk_hex, n->id.pk, IDENTITY_PK_LEN);
	log_info("node", "%s node key %s", created ? "created" : "loaded", n->pk_hex);

	co.socket_path = cfg->ctl_socket;
	co.mode = strcmp(cfg->ctl_socket_mode, "0660") ? 0600 : 0660;
	co.max_body = cfg->ctl_max_body;
	co.max_header = cfg->ctl_max_header;
	co.max_conns = cfg->ctl_max_conns;
	co.timeout_s = cfg->ctl_timeout_s;
	err = ctl_new(&n->ctl, &co);
	if (err) {
		log_error("node", "control socket %s: %s", cfg->ctl_socket,
			  err == -EADDRINUSE ? "another process is serving it"
			  : err == -ENOTSOCK ? "the path exists and is not a socket (left "
					       "untouched): remove it or set ctl.socket"
					     : strerror(-err));
		goto fail;
	}
	ctl_route(n->ctl, "GET", "/v1/status", node_status, n);
	ctl_metrics(n->ctl, node_metrics, n);
	ctl_metrics(n->ctl, store_metrics, n->store);

	err = node_policy_init(n);
	if (err)
		goto fail;
	err = node_engine_init(n);
	if (err)
		goto fail;
	*out = n;
	log_bind(prev_log);
	return 0;
fail:
	node_free(n);
	log_bind(prev_log);
	return err;
}

void node_free(struct node *n)
{
	struct log_ctx *prev_log;

	if (!n)
		return;
	prev_log = log_bind(&n->log);
	/* Control handlers waiting on service calls return now, so that
	 * ctl_free() does not wait out their deadlines. */
	svc_node_stop(n->svc);
	/* The gateway's requests reach the control API and the mesh (its
	 * /mesh/v1 routes): it stops before they are freed. */
	svc_node_gateway_stop(n->svc);
	/* Every DHT lookup ends now and none starts: a control request
	 * waiting on one (weftctl dht lookup, a lab's lookups) answers at
	 * once instead of holding ctl_free, and so the stop, for up to its
	 * 35 s deadline (found by the stress recipe's SIGTERM churn). */
	dhtnode_cancel(n->dht);
	/* Event streams of the control API end at once (their reads wait up
	 * to 1 s): its stop closes every connection and waits for them. */
	content_node_stop_readers(n->content);
	dash_free(n->dash); /* before the control routes it answers from */
	ctl_free(n->ctl);
	/* The mailbox's threads end before the modules they call. In weftd
	 * node_run has already stopped the engine: their last QUIC exchanges
	 * and record updates (engine_call) are refused with -ESHUTDOWN at
	 * once (engine_halted) instead of waiting on the network; where the
	 * engine still runs (an embedder, the tests) they finish. Either way
	 * nothing is posted to a module freed before engine_free. Its memory
	 * goes back with the QUIC node's. */
	mbox_node_free(n->mbox);
	engine_stop(n->engine); /* no-op after node_run's */
	/* Lookups still running end now (cancelled), while the content,
	 * service and relay state their callbacks write into is alive:
	 * dhtnode_free ran them after svc_node_free, a use after free of a
	 * find job that the live fuzzing found (docs/FUZZING.md). */
	lan_node_stop(n->lan); /* its thread reads content and pings the DHT */
	dhtnode_cancel(n->dht);
	content_node_free(n->content);
	lan_node_free(n->lan); /* downloads asked it for LAN providers until now */
	comm_node_free(n->comm);
	mesh_node_free(n->mesh); /* the communities' threads called it until now */
	svc_node_free(n->svc);
	relay_node_free(n->relay); /* its memory goes back with the QUIC node's */
	relay_fwd_free(n->relay_fwd);
	dhtnode_free(n->dht);
	conn_node_free(n->conn); /* after the DHT: its puts call back into conn */
	quic_node_free(n->quic);
	engine_free(n->engine);
	guard_free(n->guard);
	wxdp_free(n->xdp);
	store_free(n->store);
	identity_wipe(&n->id);
	log_bind(prev_log);
	free(n);
}

int node_start(struct node *n)
{
	struct log_ctx *prev_log = log_bind(&n->log);
	int err;

	err = engine_start(n->engine);
	if (err) {
		log_error("node", "cannot start the packet workers: %s", strerror(-err));
		goto out;
	}
	err = dhtnode_start(n->dht);
	if (err) {
		log_error("node", "cannot start the DHT: %s", strerror(-err));
		goto out;
	}
	if (node_isolated(n))
		log_warn("node", "%s", JOIN_HINT);
	err = conn_node_start(n->conn);
	if (err) {
		log_error("node", "cannot start the node record publisher: %s", strerror(-err));
		goto out;
	}
	err = relay_node_start(n->relay);
	if (err) {
		log_error("node", "cannot start the relay: %s", strerror(-err));
		goto out;
	}
	err = svc_node_start(n->svc);
	if (err) {
		log_error("node", "cannot start the service fabric: %s", strerror(-err));
		goto out;
	}
	err = content_node_start(n->content);
	if (err) {
		log_error("node", "cannot start content serving: %s", strerror(-err));
		goto out;
	}
	if (n->lan) {
		err = lan_node_start(n->lan);
		if (err) {
			log_error("node", "cannot start LAN discovery: %s", strerror(-err));
			goto out;
		}
	}
	err = mbox_node_start(n->mbox);
	if (err) {
		log_error("node", "cannot start the mailbox: %s", strerror(-err));
		goto out;
	}
	err = comm_node_start(n->comm);
	if (err)
		log_error("node", "cannot start communities: %s", strerror(-err));
out:
	log_bind(prev_log);
	return err;
}

int node_run(struct node *n)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct __kernel_timespec tick = { .tv_sec = NODE_TICK_MS / 1000,
					  .tv_nsec = (NODE_TICK_MS % 1000) * 1000000L };
	struct signalfd_siginfo si;
	struct log_ctx *prev_log;
	sigset_t mask;
	int sfd = -1, err, stop = 0;
	unsigned long ticks = 0;
	enum { EV_SIGNAL = 1, EV_TICK = 2 };

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	/* Blocked in every thread: main() blocks them before any thread starts. */
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0)
		return -errno;
	/* The calling thread (weftd's main thread) logs as the node until
	 * node_run returns. */
	prev_log = log_bind(&n->log);
	err = io_uring_queue_init(16, &ring, 0);
	if (err < 0) {
		log_error("node", "io_uring: %s", strerror(-err));
		close(sfd);
		log_bind(prev_log);
		return err;
	}
	err = node_start(n);
	if (err)
		goto out;
	err = ctl_start(n->ctl);
	if (err) {
		log_error("node", "cannot start the control API: %s", strerror(-err));
		goto out;
	}
	if (n->cfg.dashboard[0]) {
		struct dash_opts dopt = {.listen = n->cfg.dashboard,
					 .allow_public = n->cfg.dashboard_allow_public,
					 .ctl = n->ctl};

		err = dash_new(&n->dash, &dopt);
		if (err) {
			log_error("node", "cannot start the dashboard on %s: %s", n->cfg.dashboard,
				  strerror(-err));
			goto out;
		}
	}
	log_info("node", "weftd %s ready: control API on %s, state in %s, io %s x%u, udp %u/%u",
		 WEFT_VERSION, n->cfg.ctl_socket, n->cfg.state_dir, n->io_mode,
		 engine_workers(n->engine), n->ports[0], n->ports[1]);
	node_notify("READY=1\nSTATUS=serving");

	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read(sqe, sfd, &si, sizeof(si), 0);
	io_uring_sqe_set_data64(sqe, EV_SIGNAL);
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_timeout(sqe, &tick, 0, 0);
	io_uring_sqe_set_data64(sqe, EV_TICK);
	while (!stop) {
		err = io_uring_submit_and_wait(&ring, 1);
		if (err < 0 && err != -EINTR) {
			log_error("node", "io_uring wait: %s", strerror(-err));
			goto out;
		}
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			uint64_t ev = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(&ring, cqe);
			if (ev == EV_SIGNAL) {
				if (res != (int)sizeof(si)) {
					log_error("node", "signalfd read: %d", res);
					err = res < 0 ? res : -EIO;
					goto out;
				}
				if (si.ssi_signo == SIGHUP) {
					node_notify("RELOADING=1");
					node_reload(n);
					node_notify("READY=1");
				} else {
					log_info("node", "signal %u: stopping", si.ssi_signo);
					stop = 1;
				}
				if (!stop) {
					sqe = io_uring_get_sqe(&ring);
					io_uring_prep_read(sqe, sfd, &si, sizeof(si), 0);
					io_uring_sqe_set_data64(sqe, EV_SIGNAL);
				}
			} else if (ev == EV_TICK) {
				if (++ticks % NODE_BAN_GC_TICKS == 0)
					guard_ban_gc(n->guard);
				if (ticks % DHTNODE_SAVE_TICKS == 0)
					dhtnode_save(n->dht);
				quic_node_trim(n->quic, util_now_ns());
				content_node_trim(n->content, util_now_ms());
				node_heap_tick(ticks);
				sqe = io_uring_get_sqe(&ring);
				io_uring_prep_timeout(sqe, &tick, 0, 0);
				io_uring_sqe_set_data64(sqe, EV_TICK);
			}
		}
	}
	err = 0;
	node_notify("STOPPING=1");
out:
	engine_stop(n->engine);
	io_uring_queue_exit(&ring);
	close(sfd);
	log_bind(prev_log);
	return err;
}
