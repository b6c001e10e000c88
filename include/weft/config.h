/* SPDX-License-Identifier: MIT */
/*
 * weftd configuration: embedded defaults, then an INI file (libinih), then
 * command-line flags. Every key is listed, with its default and meaning, in
 * docs/CONFIG.md; config.c holds the one table they all come from.
 */
#ifndef WEFT_CONFIG_H
#define WEFT_CONFIG_H

#include <limits.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_BOOTSTRAP 16
#define CONFIG_MAX_WORKERS 64 /* = ENGINE_MAX_WORKERS */
#define CONFIG_MAX_CPU 4095
#define CONFIG_DEFAULT_PATH "/etc/weft/weft.conf"
/* Bytes of command-line settings remembered for SIGHUP (see
 * config_set_flag): 8 KiB holds every key set once with long values. */
#define CONFIG_FLAGS_MAX 8192

struct weft_config {
	/* [node] */
	char state_dir[PATH_MAX];
	char log_level[16];
	int log_addresses;       /* [log] addresses: peer addresses in logs (default off) */
	char io[8];              /* "uring" | "xdp" | "auto" */
	uint32_t workers;        /* 0 = one per CPU (uring) / rx queue (xdp) */
	char cpus[256];          /* CPU list workers are pinned to, "" = not pinned */
	char helper_sched[8];    /* node.helper_sched: "batch" | "normal" */
	char bind_addr[64];      /* UDP bind address for the uring backend */
	/* node.announce_addrs: "ADDR:PORT,..." (at most 8) published in the
	 * node record besides the discovered ones, private ranges included */
	char announce_addrs[512];
	/* node.vote_networks: "CIDR,..." (at most 4) whose hosts may vote on
	 * our reflexive address although the range is not public */
	char vote_networks[256];
	uint32_t resolve_cache_max;   /* node.resolve_cache_max: node records cached */
	uint32_t resolve_cache_ttl_s; /* node.resolve_cache_ttl_s: how long one is used */
	/* [relay], control plane (docs/CONNECTIVITY.md, "Relay") */
	int relay_enable;		  /* relay.enable: offer relaying */
	uint32_t relay_max_reservations;  /* relay.max_reservations */
	uint32_t relay_circuits_per_res;  /* relay.circuits_per_reservation */
	uint32_t relay_res_per_addr;	  /* relay.reservations_per_addr */
	uint32_t relay_reservation_ttl_s; /* relay.reservation_ttl_s */
	uint32_t relay_churn_max;	  /* relay.churn_max: new reservations/min/source */
	uint32_t relay_flood_drops;	  /* relay.flood_drops: drops/s of a circuit end that are a strike */
	char relay_use[640];		  /* relay.use: "KEY@ADDR:PORT,..." (at most 4) */
	char relay_reserve[8];		  /* relay.reserve: "auto" | "always" | "never" */
	int relay_accept;		  /* relay.accept: accept circuits offered to us */
	int relay_announce;		  /* relay.announce: a relay announces itself in the DHT */
	uint32_t relay_seen_max;	  /* relay.seen_max: relay candidates kept from records seen */
	/* [mailbox] (docs/MAILBOX.md) */
	char mailbox_enabled[8];	  /* mailbox.enabled: "auto" (= relay.enable) | "true" | "false" */
	char mailbox_anchors[640];	  /* mailbox.anchors: "KEY@ADDR:PORT,..." (at most 4) */
	uint32_t mailbox_rcpt_msgs;	  /* mailbox.per_recipient_messages */
	uint32_t mailbox_rcpt_bytes;	  /* mailbox.per_recipient_bytes */
	uint32_t mailbox_max_msgs;	  /* mailbox.max_messages */
	uint64_t mailbox_max_bytes;	  /* mailbox.max_bytes */
	uint32_t mailbox_max_age_s;	  /* mailbox.max_age_s */
	uint32_t mailbox_sender_rate;	  /* mailbox.sender_rate: messages per minute per sender */
	uint32_t mailbox_sender_burst;	  /* mailbox.sender_burst */
	/* [mesh] (docs/MESH.md "On a node") */
	uint32_t mesh_per_service;	  /* mesh.per_service: announces held per service id */
	uint32_t mesh_per_provider;	  /* mesh.per_provider: per provider key and service id */
	uint32_t mesh_services_max;	  /* mesh.services_max: service ids held */
	uint32_t mesh_hops_announce;	  /* mesh.hops_announce: our hop cap for announces */
	uint32_t mesh_hops_query;	  /* mesh.hops_query: our hop cap for queries */
	uint32_t mesh_fanout;		  /* mesh.fanout: neighbours an envelope goes to */
	uint32_t mesh_inbox_max;	  /* mesh.inbox_max: reservations held */
	char mesh_trusted[1280];	  /* mesh.trusted: "KEYHEX:LEVEL,..." (at most 16) */
	char mesh_min_level[16];	  /* mesh.min_level: none|endorsed|registry|credential */
	uint32_t mailbox_fetch_s;	  /* mailbox.fetch_interval_s */
	uint32_t mailbox_inbox_max;	  /* mailbox.inbox_max */
	/* [xdp] */
	char xdp_ifname[IF_NAMESIZE];
	char xdp_mode[8];        /* "native" | "generic" */
	char xdp_pin_root[PATH_MAX];
	uint32_t xdp_first_queue; /* xdp.first_queue: AF_XDP on rx queues from this one */
	/* global budgets of unvalidated sources, per worker (both I/O modes) */
	uint32_t unval_quic_pps, unval_quic_burst;
	uint32_t unval_initial_pps, unval_initial_burst;
	uint32_t unval_dht_pps, unval_dht_burst;
	/* [ports] */
	uint32_t quic_port;
	uint32_t dht_port;
	/* [ctl] */
	char ctl_socket[PATH_MAX]; /* "" = $RUNTIME_DIRECTORY or <state_dir>/weftd.sock */
	char ctl_socket_mode[8];   /* "0600" | "0660" */
	uint32_t ctl_max_body;
	uint32_t ctl_max_header;
	uint32_t ctl_max_conns;
	uint32_t ctl_timeout_s;
	/* [dht] */
	char dht_bootstrap[CONFIG_MAX_BOOTSTRAP][128];
	uint32_t dht_nbootstrap;
	int dht_public_routers;  /* use the well-known public routers */
	int dht_read_only;       /* BEP 43 */
	int dht_read_only_behind_nat; /* BEP 43 while conn finds a NAT */
	int dht_enforce_bep42;
	/* [quic] */
	uint32_t quic_idle_timeout_ms;
	uint32_t quic_keepalive_ms;
	int quic_fair_windows;
	char quic_aead[8]; /* quic.aead: "auto" | "gnutls" | "aesni" | "vaes256" | "vaes512" */
	uint32_t quic_max_conns;
	uint32_t quic_max_conns_per_addr;
	uint32_t quic_max_streams; /* quic.max_streams: streams a peer opens at once, each kind */
	int quic_punch; /* hole punching on relayed connections */
	uint32_t quic_punch_attempts, quic_punch_cands, quic_punch_fallback_ms;
	uint32_t quic_punch_probe_ttl; /* 0: off */
	uint32_t quic_punch_peer_attempts, quic_punch_peer_window_s;
	uint32_t quic_retry_rate;
	uint64_t quic_max_queued; /* quic.max_queued: stream bytes written, node-wide, not
				   * yet in a stream's send buffer */
	/* [content] */
	uint64_t content_quota;  /* bytes of blobs kept; 0 = the store's default (10 GiB) */
	int content_direct_io;   /* O_DIRECT chunk I/O (docs/CONTENT.md) */
	uint32_t content_hot_chunks; /* chunks kept in memory once verified; 0: none */
	uint32_t content_read_threads; /* serving's chunk readers off the workers; 0: none */
	uint32_t content_poll_s; /* subscribed share heads polled every N s */
	/* upload caps, bytes/s, 0 = unlimited; super-seeding window, s
	 * (docs/CONTENT.md "Fair, capped serving") */
	uint64_t content_upload_rate, content_peer_upload_rate, content_lan_peer_upload_rate;
	int content_lan_capped;
	int content_upload_auto; /* the automatic upload cap */
	int content_honour_withdrawals;
	uint32_t content_superseed_s;
	/* answers one connection may hold unacknowledged, bytes; such a
	 * connection's answers unmoved this long is closed, s */
	uint64_t content_serve_peer_held;
	uint32_t content_serve_stall_s;
	/* [gateway] */
	char gateway[64];        /* "" = off; else ADDR:PORT */
	int gateway_allow_public;
	/* [lan]: BEP 14 LAN discovery (docs/CONNECTIVITY.md "LAN discovery") */
	char lan_discovery[8];	  /* "auto" (on iff no bootstrap) | "on" | "off" */
	char lan_interfaces[256]; /* "" = every up multicast non-loopback interface */
	uint32_t lan_max_peers, lan_announce_s, lan_min_gap_s;
	/* [dashboard] */
	char dashboard[64]; /* "" = off, else ADDR:PORT */
	int dashboard_allow_public;
	char gateway_services[512]; /* whitelist: "a,b,c", "*" = any, "" = none */
	/* [svc]: service router limits (defaults: SVC_DEFAULT_* in svc_router.h) */
	uint32_t svc_peer_calls_per_min;
	uint32_t svc_max_payload;
	uint32_t svc_peer_concurrency;
	uint32_t svc_conn_streams;
	uint32_t svc_service_calls_per_min;
	uint32_t svc_service_concurrency;
	uint32_t svc_addr_calls_per_min;
	uint32_t svc_addr_concurrency;
	uint32_t svc_global_concurrency;
	uint32_t svc_max_timeout_ms;	   /* cap of every call / pass-through deadline */
	uint32_t svc_backend_max_inflight; /* backend requests in progress, node-wide */
	uint32_t svc_backend_max_per_service; /* ... per service */
	uint32_t svc_backend_pool_conns; /* keep-alive connections per backend */
	uint32_t svc_backend_idle_ms;	 /* idle pooled connection closed after */
	uint32_t svc_http_buffer;	   /* pass-through bytes buffered per request */
	uint32_t svc_ban_threshold;	   /* violation points that ban a peer key */
	uint32_t svc_addr_ban_threshold;   /* ... a source address */
	uint32_t svc_stream_idle_ms;	   /* service streams (docs/SERVICE.md "Streams") */
	uint64_t svc_stream_max_bytes;
	uint32_t svc_stream_buffer;
	uint32_t svc_peer_streams;
	uint32_t svc_service_streams;
	uint32_t svc_ws_max_message;
	uint32_t svc_owner_queue;	   /* stream events waiting for the fabric's owner */
	char svc_owner[8];		   /* "thread" | "worker": where the owner's loop runs */
	/* [store] */
	uint64_t store_map_size;
	/* [relay]: the data plane's keys (include/weft/relay_fwd.h, RELAY_DEF_*) */
	char relay_ports[16];		/* "MIN-MAX", parsed by config_relay_ports() */
	uint32_t relay_max_circuits;
	uint64_t relay_circuit_bytes;
	uint32_t relay_circuit_pps;
	uint32_t relay_circuit_burst;
	uint32_t relay_circuit_lifetime_ms;
	uint32_t relay_circuit_idle_ms;
	/* Keys set on the command line, "section.key=value\n" each, in order:
	 * a SIGHUP reload re-applies them over the file so flags keep winning. */
	char flags[CONFIG_FLAGS_MAX];
	/* Test hooks: no key sets them and the release weftd never reads
	 * them. A test build of weftd (-DWEFT_TEST_HOOKS) fills them from
	 * WEFT_CONTENT_* environment variables at start (docs/CONTENT.md);
	 * in-process tests set them per node. */
	struct {
		int content_corrupt;		 /* content_node_opts.test_corrupt */
		uint32_t content_serve_delay_ms; /* .test_serve_delay_ms */
		uint32_t content_req_timeout_ms; /* .req_timeout_ms (0 = default) */
		uint32_t content_lookup_poll_ms; /* .test_lookup_poll_ms */
		uint64_t quic_hold_credit;	 /* quic_node_opts.test_hold_credit */
	} test;
};

/* Fill embedded defaults (state dir depends on the effective uid). */
void config_defaults(struct weft_config *cfg);

/*
 * Apply an INI file. Errors: -ENOENT (missing), -EINVAL with a message
 * "FILE:LINE: ..." written into err (errlen bytes) naming the first bad line
 * (unknown section or key, bad value, syntax).
 */
int config_load_file(struct weft_config *cfg, const char *path, char *err, size_t errlen);

/* Set one key, as "section.key" and a value string (used by flags and the
 * file parser). Returns 0, -ENOENT (unknown key) or -EINVAL (bad value; a
 * reason is written to err). */
int config_set(struct weft_config *cfg, const char *section, const char *key, const char *value,
	       char *err, size_t errlen);

/* config_set for a command-line flag: also remembered in cfg->flags.
 * Returns config_set's codes, or -E2BIG (over CONFIG_FLAGS_MAX bytes) and
 * -EINVAL (a newline in the value) with a reason in err. A list key
 * (dht.bootstrap) given as flags replaces the file's list. */
int config_set_flag(struct weft_config *cfg, const char *section, const char *key,
		    const char *value, char *err, size_t errlen);

/* Apply the command-line settings remembered in from->flags to cfg (after
 * config_load_file on a reload) and remember them in cfg->flags too.
 * Returns 0 or config_set's codes with a reason in err. */
int config_reapply_flags(struct weft_config *cfg, const struct weft_config *from, char *err,
			 size_t errlen);

/* Final checks and derived values (socket path from state dir). */
int config_finish(struct weft_config *cfg, char *err, size_t errlen);

/* Write the effective configuration as INI. */
void config_print(const struct weft_config *cfg, FILE *out);
/* Print every key commented out with its embedded default (the packaged
 * /etc/weft/weft.conf is generated with this). */
void config_print_defaults(FILE *out);

/*
 * Parse a CPU list ("2", "0,2-3", "" = none) into cpus[] in order.
 * Returns the number of CPUs, -EINVAL for bad syntax or a CPU above
 * CONFIG_MAX_CPU, -E2BIG for more than max.
 */
int config_parse_cpus(const char *s, uint16_t *cpus, unsigned int max);
/* node.vote_networks parsed into out (may be NULL: validate only), at
 * most max. Returns the count or -EINVAL. */
struct conn_net;
int config_vote_networks(const struct weft_config *cfg, struct conn_net *out, unsigned int max);
/* node.announce_addrs parsed into out (may be NULL: validate only), at
 * most max. Returns the count or -EINVAL. */
struct sockaddr_storage;
/* relay.ports "MIN-MAX" (or one port) into *min / *max: 1 <= MIN <= MAX,
 * at most 4096 ports. Returns 0 or -EINVAL. */
int config_relay_ports(const struct weft_config *cfg, uint16_t *min, uint16_t *max);
/* relay.use split into "NODEKEY@ADDR:PORT" entries (out may be NULL:
 * validate only), at most max. Returns the count or -EINVAL. */
int config_relay_use(const struct weft_config *cfg, char (*out)[128], unsigned int max);
/* mailbox.anchors into out (at most max entries): the count or -EINVAL. */
int config_mailbox_anchors(const struct weft_config *cfg, char (*out)[128], unsigned int max);
/* mesh.trusted into out (NULL: validate only): the count or -EINVAL. */
struct mesh_trust;
int config_mesh_trusted(const struct weft_config *cfg, struct mesh_trust *out);
/* Whether this node offers a mailbox (mailbox.enabled; auto: relay.enable). */
int config_mailbox_enabled(const struct weft_config *cfg);
int config_announce_addrs(const struct weft_config *cfg, struct sockaddr_storage *out,
			  unsigned int max);

/* Nonzero if the key can change on SIGHUP without a restart. */
int config_reloadable(const char *section, const char *key);

/*
 * Compare two configurations key by key, in table order: fn is called once
 * per key whose value differs, with both values as text (a list joined by
 * ',', "" shown as "\"\"") and whether the key is live (config_reloadable).
 * Returns the number of keys that differ.
 */
typedef void (*config_diff_fn)(void *arg, const char *section, const char *key,
			       const char *from, const char *to, int live);
int config_diff(const struct weft_config *a, const struct weft_config *b, config_diff_fn fn,
		void *arg);

#endif
