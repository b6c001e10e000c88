// SPDX-License-Identifier: MIT
/* The configuration table: every key, its type, range and default. */
#include <errno.h>
#include <arpa/inet.h>
#include <ini.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "weft/config.h"
#include "weft/conn.h"
#include "weft/log.h"
#include "weft/mesh.h"
#include "weft/util.h"
#include "weft/xdp_abi.h"

enum cfg_type { CFG_STR, CFG_U32, CFG_U64, CFG_BOOL, CFG_ENUM, CFG_LIST, CFG_CPUS };

struct cfg_key {
	const char *section;
	const char *key;
	enum cfg_type type;
	size_t off;
	size_t size;        /* CFG_STR: buffer size */
	uint64_t min, max;  /* numbers */
	const char *def;    /* default, as text */
	const char *choices; /* CFG_ENUM: "a|b|c" */
	int reloadable;
};

#define OFF(f) offsetof(struct weft_config, f)
#define SZ(f) sizeof(((struct weft_config *)0)->f)

static const struct cfg_key cfg_keys[] = {
	{ "node", "state_dir", CFG_STR, OFF(state_dir), SZ(state_dir), 0, 0, NULL, NULL, 0 },
	{ "node", "log_level", CFG_ENUM, OFF(log_level), SZ(log_level), 0, 0, "info",
	  "error|warn|info|debug", 1 },
	{ "log", "addresses", CFG_BOOL, OFF(log_addresses), 0, 0, 0, "false", NULL, 1 },
	{ "node", "io", CFG_ENUM, OFF(io), SZ(io), 0, 0, "auto", "auto|uring|xdp", 0 },
	{ "node", "workers", CFG_U32, OFF(workers), 0, 0, CONFIG_MAX_WORKERS, "0", NULL, 0 },
	{ "node", "cpus", CFG_CPUS, OFF(cpus), SZ(cpus), 0, 0, "", NULL, 0 },
	{ "node", "helper_sched", CFG_ENUM, OFF(helper_sched), SZ(helper_sched), 0, 0, "batch",
	  "batch|normal", 0 },
	{ "node", "bind", CFG_STR, OFF(bind_addr), SZ(bind_addr), 0, 0, "::", NULL, 0 },
	{ "node", "announce_addrs", CFG_STR, OFF(announce_addrs), SZ(announce_addrs), 0, 0, "",
	  NULL, 0 },
	{ "node", "vote_networks", CFG_STR, OFF(vote_networks), SZ(vote_networks), 0, 0, "",
	  NULL, 0 },
	{ "node", "resolve_cache_max", CFG_U32, OFF(resolve_cache_max), 0, 1, 65536, "256", NULL,
	  0 },
	{ "node", "resolve_cache_ttl_s", CFG_U32, OFF(resolve_cache_ttl_s), 0, 1, 86400, "300",
	  NULL, 0 },
	{ "relay", "enable", CFG_BOOL, OFF(relay_enable), 0, 0, 0, "false", NULL, 0 },
	{ "relay", "max_reservations", CFG_U32, OFF(relay_max_reservations), 0, 1, 1000000, "128",
	  NULL, 0 },
	{ "relay", "circuits_per_reservation", CFG_U32, OFF(relay_circuits_per_res), 0, 1, 65536,
	  "8", NULL, 0 },
	{ "relay", "reservations_per_addr", CFG_U32, OFF(relay_res_per_addr), 0, 1, 1000000, "4",
	  NULL, 0 },
	{ "relay", "reservation_ttl_s", CFG_U32, OFF(relay_reservation_ttl_s), 0, 15, 86400, "60",
	  NULL, 0 },
	{ "relay", "churn_max", CFG_U32, OFF(relay_churn_max), 0, 1, 1000000, "30", NULL, 0 },
	{ "relay", "flood_drops", CFG_U32, OFF(relay_flood_drops), 0, 1, 100000000, "1000", NULL,
	  0 },
	{ "relay", "use", CFG_STR, OFF(relay_use), SZ(relay_use), 0, 0, "", NULL, 0 },
	{ "relay", "reserve", CFG_ENUM, OFF(relay_reserve), SZ(relay_reserve), 0, 0, "auto",
	  "auto|always|never", 0 },
	{ "relay", "accept", CFG_BOOL, OFF(relay_accept), 0, 0, 0, "true", NULL, 0 },
	{ "relay", "announce", CFG_BOOL, OFF(relay_announce), 0, 0, 0, "true", NULL, 0 },
	{ "relay", "seen_max", CFG_U32, OFF(relay_seen_max), 0, 1, 1024, "16", NULL, 0 },
	{ "mailbox", "enabled", CFG_ENUM, OFF(mailbox_enabled), SZ(mailbox_enabled), 0, 0, "auto",
	  "auto|true|false", 0 },
	{ "mailbox", "anchors", CFG_STR, OFF(mailbox_anchors), SZ(mailbox_anchors), 0, 0, "", NULL,
	  0 },
	{ "mailbox", "per_recipient_messages", CFG_U32, OFF(mailbox_rcpt_msgs), 0, 1, 1000000,
	  "256", NULL, 0 },
	{ "mailbox", "per_recipient_bytes", CFG_U32, OFF(mailbox_rcpt_bytes), 0, 65536,
	  1U << 30, "4194304", NULL, 0 },
	{ "mailbox", "max_messages", CFG_U32, OFF(mailbox_max_msgs), 0, 1, 100000000, "100000",
	  NULL, 0 },
	{ "mailbox", "max_bytes", CFG_U64, OFF(mailbox_max_bytes), 0, 65536, 1ULL << 40,
	  "268435456", NULL, 0 },
	{ "mailbox", "max_age_s", CFG_U32, OFF(mailbox_max_age_s), 0, 60, 31536000, "604800",
	  NULL, 0 },
	{ "mailbox", "sender_rate", CFG_U32, OFF(mailbox_sender_rate), 0, 1, 1000000, "30", NULL,
	  0 },
	{ "mailbox", "sender_burst", CFG_U32, OFF(mailbox_sender_burst), 0, 1, 1000000, "30",
	  NULL, 0 },
	{ "mailbox", "fetch_interval_s", CFG_U32, OFF(mailbox_fetch_s), 0, 5, 86400, "60", NULL,
	  0 },
	{ "mailbox", "inbox_max", CFG_U32, OFF(mailbox_inbox_max), 0, 1, 10000000, "10000", NULL,
	  0 },
	{ "mesh", "per_service", CFG_U32, OFF(mesh_per_service), 0, 1, 100000, "4096", NULL, 0 },
	{ "mesh", "per_provider", CFG_U32, OFF(mesh_per_provider), 0, 1, 100000, "64", NULL, 0 },
	{ "mesh", "services_max", CFG_U32, OFF(mesh_services_max), 0, 1, 1024, "64", NULL, 0 },
	{ "mesh", "hops_announce", CFG_U32, OFF(mesh_hops_announce), 0, 1, 6, "6", NULL, 0 },
	{ "mesh", "hops_query", CFG_U32, OFF(mesh_hops_query), 0, 1, 4, "4", NULL, 0 },
	{ "mesh", "fanout", CFG_U32, OFF(mesh_fanout), 0, 1, 32, "4", NULL, 0 },
	{ "mesh", "inbox_max", CFG_U32, OFF(mesh_inbox_max), 0, 1, 100000, "1024", NULL, 0 },
	{ "mesh", "trusted", CFG_STR, OFF(mesh_trusted), SZ(mesh_trusted), 0, 0, "", NULL, 0 },
	{ "mesh", "min_level", CFG_ENUM, OFF(mesh_min_level), SZ(mesh_min_level), 0, 0, "none",
	  "none|endorsed|registry|credential", 0 },
	{ "xdp", "interface", CFG_STR, OFF(xdp_ifname), SZ(xdp_ifname), 0, 0, "", NULL, 0 },
	{ "xdp", "mode", CFG_ENUM, OFF(xdp_mode), SZ(xdp_mode), 0, 0, "native",
	  "native|generic", 0 },
	{ "xdp", "pin_root", CFG_STR, OFF(xdp_pin_root), SZ(xdp_pin_root), 0, 0,
	  "/sys/fs/bpf/weft", NULL, 0 },
	{ "xdp", "first_queue", CFG_U32, OFF(xdp_first_queue), 0, 0, WXDP_MAX_QUEUES - 1, "0",
	  NULL, 0 },
#define UNVAL(cls, f, def)                                                                   \
	{ "xdp", "unvalidated_" cls, CFG_U32, OFF(f), 0, 0, UINT32_MAX, WXDP_STR(def), NULL, 0 }
	UNVAL("quic_pps", unval_quic_pps, WXDP_DEFAULT_UNVAL_QUIC_PPS),
	UNVAL("quic_burst", unval_quic_burst, WXDP_DEFAULT_UNVAL_QUIC_BURST),
	UNVAL("initial_pps", unval_initial_pps, WXDP_DEFAULT_UNVAL_INITIAL_PPS),
	UNVAL("initial_burst", unval_initial_burst, WXDP_DEFAULT_UNVAL_INITIAL_BURST),
	UNVAL("dht_pps", unval_dht_pps, WXDP_DEFAULT_UNVAL_DHT_PPS),
	UNVAL("dht_burst", unval_dht_burst, WXDP_DEFAULT_UNVAL_DHT_BURST),
#undef UNVAL
	{ "ports", "quic", CFG_U32, OFF(quic_port), 0, 1, 65535, "4433", NULL, 0 },
	{ "ports", "dht", CFG_U32, OFF(dht_port), 0, 1, 65535, "6881", NULL, 0 },
	{ "ctl", "socket", CFG_STR, OFF(ctl_socket), SZ(ctl_socket), 0, 0, "", NULL, 0 },
	{ "ctl", "socket_mode", CFG_ENUM, OFF(ctl_socket_mode), SZ(ctl_socket_mode), 0, 0, "0600",
	  "0600|0660", 0 },
	{ "ctl", "max_body", CFG_U32, OFF(ctl_max_body), 0, 1024, 64U << 20, "1048576", NULL, 0 },
	{ "ctl", "max_header", CFG_U32, OFF(ctl_max_header), 0, 2048, 1U << 20, "16384", NULL,
	  0 },
	{ "ctl", "max_conns", CFG_U32, OFF(ctl_max_conns), 0, 1, 4096, "64", NULL, 0 },
	{ "ctl", "timeout", CFG_U32, OFF(ctl_timeout_s), 0, 1, 3600, "10", NULL, 0 },
	{ "dht", "bootstrap", CFG_LIST, OFF(dht_bootstrap), 0, 0, 0, NULL, NULL, 0 },
	{ "dht", "public_routers", CFG_BOOL, OFF(dht_public_routers), 0, 0, 0, "false", NULL,
	  0 },
	{ "dht", "read_only", CFG_BOOL, OFF(dht_read_only), 0, 0, 0, "false", NULL, 0 },
	{ "dht", "read_only_behind_nat", CFG_BOOL, OFF(dht_read_only_behind_nat), 0, 0, 0, "true",
	  NULL, 0 },
	{ "dht", "enforce_bep42", CFG_BOOL, OFF(dht_enforce_bep42), 0, 0, 0, "false", NULL, 0 },
	{ "quic", "idle_timeout_ms", CFG_U32, OFF(quic_idle_timeout_ms), 0, 1000, 3600000, "30000",
	  NULL, 0 },
	{ "quic", "keepalive_ms", CFG_U32, OFF(quic_keepalive_ms), 0, 0, 3600000, "0", NULL, 0 },
	{ "quic", "fair_windows", CFG_BOOL, OFF(quic_fair_windows), 0, 0, 0, "true", NULL, 0 },
	{ "quic", "aead", CFG_ENUM, OFF(quic_aead), SZ(quic_aead), 0, 0, "auto",
	  "auto|gnutls|aesni|vaes256|vaes512", 0 },
	{ "quic", "punch", CFG_BOOL, OFF(quic_punch), 0, 0, 0, "true", NULL, 0 },
	{ "quic", "punch_attempts", CFG_U32, OFF(quic_punch_attempts), 0, 1, 3, "3", NULL, 0 },
	{ "quic", "punch_candidates", CFG_U32, OFF(quic_punch_cands), 0, 1, 8, "8", NULL, 0 },
	{ "quic", "punch_fallback_ms", CFG_U32, OFF(quic_punch_fallback_ms), 0, 500, 60000, "3000",
	  NULL, 0 },
	{ "quic", "punch_probe_ttl", CFG_U32, OFF(quic_punch_probe_ttl), 0, 0, 255, "2", NULL, 0 },
	{ "quic", "punch_peer_attempts", CFG_U32, OFF(quic_punch_peer_attempts), 0, 1, 1000000, "10",
	  NULL, 0 },
	{ "quic", "punch_peer_window_s", CFG_U32, OFF(quic_punch_peer_window_s), 0, 1, 86400, "600",
	  NULL, 0 },
	{ "quic", "max_conns", CFG_U32, OFF(quic_max_conns), 0, 1, 1000000, "4096", NULL, 0 },
	{ "quic", "max_conns_per_addr", CFG_U32, OFF(quic_max_conns_per_addr), 0, 1, 1000000, "64",
	  NULL, 0 },
	{ "quic", "max_streams", CFG_U32, OFF(quic_max_streams), 0, 4, 10000, "100", NULL, 0 },
	{ "quic", "retry_rate", CFG_U32, OFF(quic_retry_rate), 0, 1, 1000000, "200", NULL, 0 },
	{ "quic", "max_queued", CFG_U64, OFF(quic_max_queued), 0, 1ULL << 20, 1ULL << 32, "67108864",
	  NULL, 0 },
	{ "content", "quota", CFG_U64, OFF(content_quota), 0, 0, 1ULL << 50, "0", NULL, 0 },
	{ "content", "direct_io", CFG_BOOL, OFF(content_direct_io), 0, 0, 0, "true", NULL, 0 },
	{ "content", "hot_chunks", CFG_U32, OFF(content_hot_chunks), 0, 0, 1024, "128", NULL, 0 },
	{ "content", "read_threads", CFG_U32, OFF(content_read_threads), 0, 0, 64, "4", NULL, 0 },
	{ "content", "poll_s", CFG_U32, OFF(content_poll_s), 0, 1, 86400, "300", NULL, 0 },
	{ "content", "upload_rate", CFG_U64, OFF(content_upload_rate), 0, 0, 1000000000000ULL, "0",
	  NULL, 0 },
	{ "content", "peer_upload_rate", CFG_U64, OFF(content_peer_upload_rate), 0, 0,
	  1000000000000ULL, "0", NULL, 0 },
	{ "content", "lan_peer_upload_rate", CFG_U64, OFF(content_lan_peer_upload_rate), 0, 0,
	  1000000000000ULL, "0", NULL, 0 },
	{ "content", "lan_capped", CFG_BOOL, OFF(content_lan_capped), 0, 0, 0, "false", NULL, 0 },
	{ "content", "upload_auto", CFG_BOOL, OFF(content_upload_auto), 0, 0, 0, "false", NULL, 0 },
	{ "content", "superseed_s", CFG_U32, OFF(content_superseed_s), 0, 0, 604800, "600", NULL,
	  0 },
	{ "content", "serve_peer_held", CFG_U64, OFF(content_serve_peer_held), 0, 1ULL << 20,
	  1ULL << 30, "8388608", NULL, 0 },
	{ "content", "serve_stall_s", CFG_U32, OFF(content_serve_stall_s), 0, 5, 3600, "20", NULL,
	  0 },
	{ "content", "honour_withdrawals", CFG_BOOL, OFF(content_honour_withdrawals), 0, 0, 0,
	  "true", NULL, 0 },
	{ "gateway", "listen", CFG_STR, OFF(gateway), SZ(gateway), 0, 0, "", NULL, 0 },
	{ "gateway", "allow_public", CFG_BOOL, OFF(gateway_allow_public), 0, 0, 0, "false", NULL,
	  0 },
	{ "gateway", "services", CFG_STR, OFF(gateway_services), SZ(gateway_services), 0, 0, "",
	  NULL, 0 },
	{ "lan", "discovery", CFG_ENUM, OFF(lan_discovery), SZ(lan_discovery), 0, 0, "auto",
	  "auto|on|off", 0 },
	{ "lan", "interfaces", CFG_STR, OFF(lan_interfaces), SZ(lan_interfaces), 0, 0, "", NULL,
	  0 },
	{ "lan", "max_peers", CFG_U32, OFF(lan_max_peers), 0, 1, 65536, "256", NULL, 0 },
	{ "lan", "announce_s", CFG_U32, OFF(lan_announce_s), 0, 10, 86400, "300", NULL, 0 },
	{ "lan", "min_gap_s", CFG_U32, OFF(lan_min_gap_s), 0, 1, 3600, "60", NULL, 0 },
	{ "dashboard", "listen", CFG_STR, OFF(dashboard), SZ(dashboard), 0, 0, "", NULL, 0 },
	{ "dashboard", "allow_public", CFG_BOOL, OFF(dashboard_allow_public), 0, 0, 0, "false",
	  NULL, 0 },
	{ "svc", "peer_calls_per_min", CFG_U32, OFF(svc_peer_calls_per_min), 0, 1, 100000000,
	  "100", NULL, 0 },
	{ "svc", "max_payload", CFG_U32, OFF(svc_max_payload), 0, 1024, 64U << 20, "1048576", NULL,
	  0 },
	{ "svc", "peer_concurrency", CFG_U32, OFF(svc_peer_concurrency), 0, 1, 1000000, "100", NULL,
	  0 },
	{ "svc", "service_calls_per_min", CFG_U32, OFF(svc_service_calls_per_min), 0, 1, 100000000,
	  "60000", NULL, 0 },
	{ "svc", "service_concurrency", CFG_U32, OFF(svc_service_concurrency), 0, 1, 1000000,
	  "1000", NULL, 0 },
	{ "svc", "addr_calls_per_min", CFG_U32, OFF(svc_addr_calls_per_min), 0, 1, 100000000,
	  "1000", NULL, 0 },
	{ "svc", "addr_concurrency", CFG_U32, OFF(svc_addr_concurrency), 0, 1, 1000000, "1000",
	  NULL, 0 },
	{ "svc", "global_concurrency", CFG_U32, OFF(svc_global_concurrency), 0, 1, 65535, "10000",
	  NULL, 0 },
	{ "svc", "max_timeout_ms", CFG_U32, OFF(svc_max_timeout_ms), 0, 100, 600000, "30000", NULL,
	  0 },
	{ "svc", "backend_max_inflight", CFG_U32, OFF(svc_backend_max_inflight), 0, 1, 65536,
	  "1024", NULL, 0 },
	{ "svc", "backend_max_per_service", CFG_U32, OFF(svc_backend_max_per_service), 0, 1, 65536,
	  "256", NULL, 0 },
	{ "svc", "backend_pool_conns", CFG_U32, OFF(svc_backend_pool_conns), 0, 1, 4096, "64", NULL,
	  0 },
	{ "svc", "backend_idle_ms", CFG_U32, OFF(svc_backend_idle_ms), 0, 100, 3600000, "4000", NULL,
	  0 },
	{ "svc", "http_buffer", CFG_U32, OFF(svc_http_buffer), 0, 65536, 64U << 20, "4194304", NULL,
	  0 },
	{ "svc", "ban_threshold", CFG_U32, OFF(svc_ban_threshold), 0, 1, 1000000, "50", NULL,
	  0 },
	{ "svc", "addr_ban_threshold", CFG_U32, OFF(svc_addr_ban_threshold), 0, 1, 1000000,
	  "200", NULL, 0 },
	{ "svc", "conn_streams", CFG_U32, OFF(svc_conn_streams), 0, 1, 96, "96", NULL, 0 },
	{ "svc", "owner_queue", CFG_U32, OFF(svc_owner_queue), 0, 1, 1U << 20, "4096", NULL, 0 },
	{ "svc", "owner", CFG_ENUM, OFF(svc_owner), SZ(svc_owner), 0, 0, "worker", "thread|worker",
	  0 },
	{ "svc", "stream_idle_ms", CFG_U32, OFF(svc_stream_idle_ms), 0, 100, 3600000, "60000", NULL,
	  0 },
	{ "svc", "stream_max_bytes", CFG_U64, OFF(svc_stream_max_bytes), 0, 1024, 1ULL << 50,
	  "1073741824", NULL, 0 },
	{ "svc", "stream_buffer", CFG_U32, OFF(svc_stream_buffer), 0, 65536, 64U << 20, "4194304",
	  NULL, 0 },
	{ "svc", "ws_max_message", CFG_U32, OFF(svc_ws_max_message), 0, 126, 64U << 20, "1048576",
	  NULL, 0 },
	{ "svc", "peer_streams", CFG_U32, OFF(svc_peer_streams), 0, 1, 65536, "16", NULL, 0 },
	{ "svc", "service_streams", CFG_U32, OFF(svc_service_streams), 0, 1, 65536, "256", NULL,
	  0 },
	{ "relay", "ports", CFG_STR, OFF(relay_ports), SZ(relay_ports), 0, 0, "42000-42255", NULL,
	  0 },
	{ "relay", "max_circuits", CFG_U32, OFF(relay_max_circuits), 0, 1, 4096, "256", NULL, 0 },
	{ "relay", "circuit_bytes", CFG_U64, OFF(relay_circuit_bytes), 0, 1024, 1ULL << 50,
	  "134217728", NULL, 0 },
	{ "relay", "circuit_pps", CFG_U32, OFF(relay_circuit_pps), 0, 1, 100000000, "20000", NULL,
	  0 },
	{ "relay", "circuit_burst", CFG_U32, OFF(relay_circuit_burst), 0, 1, 100000000, "4000",
	  NULL, 0 },
	{ "relay", "circuit_lifetime_ms", CFG_U32, OFF(relay_circuit_lifetime_ms), 0, 1000,
	  2000000000, "3600000", NULL, 0 },
	{ "relay", "circuit_idle_ms", CFG_U32, OFF(relay_circuit_idle_ms), 0, 1000, 2000000000,
	  "60000", NULL, 0 },
	{ "store", "map_size", CFG_U64, OFF(store_map_size), 0, 1U << 20, 1ULL << 40,
	  "1073741824", NULL, 0 },
};

static const struct cfg_key *cfg_find(const char *section, const char *key)
{
	for (size_t i = 0; i < WEFT_ARRAY_SIZE(cfg_keys); i++)
		if (strcmp(cfg_keys[i].section, section) == 0 && strcmp(cfg_keys[i].key, key) == 0)
			return &cfg_keys[i];
	return NULL;
}

int config_reloadable(const char *section, const char *key)
{
	const struct cfg_key *k = cfg_find(section, key);

	return k && k->reloadable;
}

static int enum_has(const char *choices, const char *v)
{
	size_t vl = strlen(v);

	for (const char *p = choices; *p;) {
		const char *bar = strchr(p, '|');
		size_t l = bar ? (size_t)(bar - p) : strlen(p);

		if (l == vl && strncmp(p, v, l) == 0)
			return 1;
		if (!bar)
			break;
		p = bar + 1;
	}
	return 0;
}

int config_parse_cpus(const char *s, uint16_t *cpus, unsigned int max)
{
	unsigned int n = 0;

	while (*s == ' ')
		s++;
	while (*s) {
		char *end;
		unsigned long a, b;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		a = strtoul(s, &end, 10);
		b = a;
		if (*end == '-') {
			if (end[1] < '0' || end[1] > '9')
				return -EINVAL;
			b = strtoul(end + 1, &end, 10);
		}
		if (a > CONFIG_MAX_CPU || b > CONFIG_MAX_CPU || b < a)
			return -EINVAL;
		for (; a <= b; a++) {
			if (n == max)
				return -E2BIG;
			cpus[n++] = (uint16_t)a;
		}
		while (*end == ' ')
			end++;
		if (*end == ',')
			end++;
		else if (*end)
			return -EINVAL;
		s = end;
		while (*s == ' ')
			s++;
	}
	return (int)n;
}

static int cfg_apply(struct weft_config *cfg, const struct cfg_key *k, const char *value,
		     char *err, size_t errlen)
{
	char *base = (char *)cfg + k->off;
	uint64_t v;
	int b, rc;

	switch (k->type) {
	case CFG_STR:
		if (strlen(value) >= k->size) {
			snprintf(err, errlen, "%s.%s: value longer than %zu bytes", k->section,
				 k->key, k->size - 1);
			return -EINVAL;
		}
		strcpy(base, value);
		return 0;
	case CFG_ENUM:
		if (!enum_has(k->choices, value)) {
			snprintf(err, errlen, "%s.%s: '%s' is not one of %s", k->section, k->key,
				 value, k->choices);
			return -EINVAL;
		}
		strcpy(base, value);
		return 0;
	case CFG_U32:
	case CFG_U64:
		rc = util_parse_u64(value, k->min, k->max, &v);
		if (rc) {
			snprintf(err, errlen, "%s.%s: '%s' is not %s %llu..%llu", k->section,
				 k->key, value, rc == -ERANGE ? "in range" : "a number in",
				 (unsigned long long)k->min, (unsigned long long)k->max);
			return -EINVAL;
		}
		if (k->type == CFG_U32)
			*(uint32_t *)(void *)base = (uint32_t)v;
		else
			*(uint64_t *)(void *)base = v;
		return 0;
	case CFG_BOOL:
		if (util_parse_bool(value, &b)) {
			snprintf(err, errlen, "%s.%s: '%s' is not a boolean (true/false)",
				 k->section, k->key, value);
			return -EINVAL;
		}
		*(int *)(void *)base = b;
		return 0;
	case CFG_CPUS: {
		uint16_t cpus[CONFIG_MAX_WORKERS];

		if (strlen(value) >= k->size || config_parse_cpus(value, cpus, CONFIG_MAX_WORKERS) < 0) {
			snprintf(err, errlen,
				 "%s.%s: '%s' is not a CPU list (e.g. 2,3 or 4-7; at most %d CPUs)",
				 k->section, k->key, value, CONFIG_MAX_WORKERS);
			return -EINVAL;
		}
		strcpy(base, value);
		return 0;
	}
	case CFG_LIST: {
		struct sockaddr_storage ss;
		unsigned int sl;

		if (cfg->dht_nbootstrap >= CONFIG_MAX_BOOTSTRAP) {
			snprintf(err, errlen, "%s.%s: at most %d entries", k->section, k->key,
				 CONFIG_MAX_BOOTSTRAP);
			return -EINVAL;
		}
		/* HOST:PORT: numeric addresses are checked now, names at start. */
		if (strlen(value) >= sizeof(cfg->dht_bootstrap[0]) || !strchr(value, ':') ||
		    (value[0] == '[' && util_parse_addr(value, &ss, &sl))) {
			snprintf(err, errlen, "%s.%s: '%s' is not HOST:PORT", k->section, k->key,
				 value);
			return -EINVAL;
		}
		strcpy(cfg->dht_bootstrap[cfg->dht_nbootstrap++], value);
		return 0;
	}
	}
	return -EINVAL;
}

int config_set(struct weft_config *cfg, const char *section, const char *key, const char *value,
	       char *err, size_t errlen)
{
	const struct cfg_key *k = cfg_find(section, key);

	if (!k) {
		snprintf(err, errlen, "unknown key '%s.%s'", section, key);
		return -ENOENT;
	}
	return cfg_apply(cfg, k, value, err, errlen);
}

void config_defaults(struct weft_config *cfg)
{
	char err[256];
	const char *xdg, *home;

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < WEFT_ARRAY_SIZE(cfg_keys); i++)
		if (cfg_keys[i].def)
			cfg_apply(cfg, &cfg_keys[i], cfg_keys[i].def, err, sizeof(err));
	/* Under systemd (StateDirectory=weft) the unit's state directory. */
	if ((xdg = getenv("STATE_DIRECTORY")) && xdg[0] == '/' && !strchr(xdg, ':')) {
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%.*s", PATH_MAX - 16, xdg);
	} else if (geteuid() == 0) {
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/weft");
	} else if ((xdg = getenv("XDG_STATE_HOME")) && xdg[0] == '/') {
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%.*s/weft", PATH_MAX - 16, xdg);
	} else {
		home = getenv("HOME");
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%.*s/.local/state/weft",
			 PATH_MAX - 32, home && home[0] ? home : ".");
	}
}

struct ini_ctx {
	struct weft_config *cfg;
	char *err;
	size_t errlen;
	int failed;
	int lists_reset;
	FILE *f;
	int line;      /* lines read so far: the line the handler is called for */
	int bad_line;  /* first line a handler rejected */
};

/* fgets with a line count, so handler errors carry their own line number
 * (inih only reports the first error line, which may be a syntax error). */
static char *cfg_reader(char *str, int num, void *stream)
{
	struct ini_ctx *c = stream;
	char *r = fgets(str, num, c->f);

	if (r)
		c->line++;
	return r;
}

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *c = user;
	char msg[256];

	if (!name) /* a section header alone: checked with its first key */
		return 1;
	if (!section[0]) {
		if (!c->failed) {
			snprintf(c->err, c->errlen, "key '%s' outside any [section]", name);
			c->bad_line = c->line;
		}
		c->failed = 1;
		return 0;
	}
	if (!c->lists_reset && strcmp(section, "dht") == 0 && strcmp(name, "bootstrap") == 0) {
		/* A file's list replaces the (empty) default list. */
		c->cfg->dht_nbootstrap = 0;
		c->lists_reset = 1;
	}
	if (config_set(c->cfg, section, name, value, msg, sizeof(msg))) {
		if (!c->failed) {
			snprintf(c->err, c->errlen, "%s", msg);
			c->bad_line = c->line;
		}
		c->failed = 1;
		return 0; /* inih reports the line number */
	}
	return 1;
}

int config_load_file(struct weft_config *cfg, const char *path, char *err, size_t errlen)
{
	struct ini_ctx c = { 0 };
	char msg[300] = "";
	int line, err_no;

	c.cfg = cfg;
	c.f = fopen(path, "re");
	if (!c.f) {
		err_no = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(err_no));
		return -err_no;
	}
	c.err = msg;
	c.errlen = sizeof(msg);
	line = ini_parse_stream(cfg_reader, &c, ini_cb, &c);
	fclose(c.f);
	if (line == 0)
		return 0;
	if (line < 0) {
		snprintf(err, errlen, "%s: cannot read", path);
		return -EIO;
	}
	if (c.failed && c.bad_line <= line)
		snprintf(err, errlen, "%s:%d: %s", path, c.bad_line, msg);
	else
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
			 path, line);
	return -EINVAL;
}

int config_finish(struct weft_config *cfg, char *err, size_t errlen)
{
	const char *rt;

	if (cfg->state_dir[0] != '/') {
		snprintf(err, errlen, "node.state_dir must be an absolute path");
		return -EINVAL;
	}
	/* Under systemd (RuntimeDirectory=weft): the socket in /run/weft. */
	if (!cfg->ctl_socket[0] && (rt = getenv("RUNTIME_DIRECTORY")) && rt[0] == '/' &&
	    !strchr(rt, ':') && strlen(rt) + sizeof("/weftd.sock") <= 108)
		snprintf(cfg->ctl_socket, sizeof(cfg->ctl_socket), "%s/weftd.sock", rt);
	if (!cfg->ctl_socket[0]) {
		int n = snprintf(cfg->ctl_socket, sizeof(cfg->ctl_socket), "%s/weftd.sock",
				 cfg->state_dir);

		if (n < 0 || (size_t)n >= sizeof(cfg->ctl_socket)) {
			snprintf(err, errlen, "node.state_dir too long");
			return -EINVAL;
		}
	}
	/* sun_path is 108 bytes. */
	if (strlen(cfg->ctl_socket) >= 108) {
		snprintf(err, errlen, "ctl.socket path '%s' is longer than 107 bytes",
			 cfg->ctl_socket);
		return -EINVAL;
	}
	if (cfg->quic_port == cfg->dht_port) {
		snprintf(err, errlen, "ports.quic and ports.dht must differ");
		return -EINVAL;
	}
	if (strcmp(cfg->io, "xdp") == 0 && !cfg->xdp_ifname[0]) {
		snprintf(err, errlen, "node.io = xdp needs xdp.interface (--xdp IFNAME)");
		return -EINVAL;
	}
	if (config_relay_ports(cfg, NULL, NULL)) {
		snprintf(err, errlen, "relay.ports '%s': MIN-MAX, 1..65535, at most 4096 ports",
			 cfg->relay_ports);
		return -EINVAL;
	}
	if (config_announce_addrs(cfg, NULL, 8) < 0) {
		snprintf(err, errlen, "node.announce_addrs '%s': at most 8 ADDR:PORT, comma-separated",
			 cfg->announce_addrs);
		return -EINVAL;
	}
	if (config_vote_networks(cfg, NULL, CONN_VOTE_NETS_MAX) < 0) {
		snprintf(err, errlen,
			 "node.vote_networks '%s': at most %u ADDR/BITS, comma-separated",
			 cfg->vote_networks, CONN_VOTE_NETS_MAX);
		return -EINVAL;
	}
	if (config_mailbox_anchors(cfg, NULL, 4) < 0) {
		snprintf(err, errlen,
			 "mailbox.anchors '%s': at most 4 NODEKEY@ADDR:PORT, comma-separated",
			 cfg->mailbox_anchors);
		return -EINVAL;
	}
	if (config_mesh_trusted(cfg, NULL) < 0) {
		snprintf(err, errlen,
			 "mesh.trusted '%s': at most 16 KEYHEX:LEVEL (LEVEL endorsed, registry or "
			 "credential), comma-separated",
			 cfg->mesh_trusted);
		return -EINVAL;
	}
	if (config_relay_use(cfg, NULL, 4) < 0) {
		snprintf(err, errlen, "relay.use '%s': at most 4 NODEKEY@ADDR:PORT, comma-separated",
			 cfg->relay_use);
		return -EINVAL;
	}
	if (cfg->gateway[0]) {
		struct sockaddr_storage ss;
		unsigned int sl;

		if (util_parse_addr(cfg->gateway, &ss, &sl)) {
			snprintf(err, errlen, "gateway.listen '%s' is not ADDR:PORT", cfg->gateway);
			return -EINVAL;
		}
	}
	return 0;
}

int config_relay_ports(const struct weft_config *cfg, uint16_t *min, uint16_t *max)
{
	unsigned long lo, hi;
	char *end;

	errno = 0;
	lo = strtoul(cfg->relay_ports, &end, 10);
	hi = lo;
	if (*end == '-')
		hi = strtoul(end + 1, &end, 10);
	if (errno || end == cfg->relay_ports || *end || lo < 1 || hi > 65535 || hi < lo ||
	    hi - lo >= 4096 || !(cfg->relay_ports[0] >= '0' && cfg->relay_ports[0] <= '9'))
		return -EINVAL;
	if (min)
		*min = (uint16_t)lo;
	if (max)
		*max = (uint16_t)hi;
	return 0;
}

/* A list of "KEY@ADDR:PORT" entries (relay.use, mailbox.anchors). */
static int key_addr_list(const char *list, char (*out)[128], unsigned int max)
{
	char buf[640], *tok, *save = NULL;
	unsigned int n = 0;

	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		struct sockaddr_storage ss;
		uint8_t key[32];
		unsigned int sl;
		char hex[65];

		if (n == max || strlen(tok) >= 128 || strlen(tok) < 66 || tok[64] != '@')
			return -EINVAL;
		memcpy(hex, tok, 64);
		hex[64] = '\0';
		if (util_unhex(key, sizeof(key), hex) || util_parse_addr(tok + 65, &ss, &sl))
			return -EINVAL;
		if (out)
			snprintf(out[n], 128, "%s", tok);
		n++;
	}
	return (int)n;
}

int config_relay_use(const struct weft_config *cfg, char (*out)[128], unsigned int max)
{
	return key_addr_list(cfg->relay_use, out, max);
}

int config_mailbox_anchors(const struct weft_config *cfg, char (*out)[128], unsigned int max)
{
	return key_addr_list(cfg->mailbox_anchors, out, max);
}

int config_mesh_trusted(const struct weft_config *cfg, struct mesh_trust *out)
{
	char buf[sizeof(cfg->mesh_trusted)], *tok, *save = NULL;
	struct mesh_trust t = {0};

	snprintf(buf, sizeof(buf), "%s", cfg->mesh_trusted);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
		if (t.n == 16 || mesh_trust_add(&t, tok))
			return -EINVAL;
	if (out)
		*out = t;
	return (int)t.n;
}

/* mailbox.enabled: "auto" follows relay.enable (a relay host keeps mail). */
int config_mailbox_enabled(const struct weft_config *cfg)
{
	return !strcmp(cfg->mailbox_enabled, "true") ||
	       (!strcmp(cfg->mailbox_enabled, "auto") && cfg->relay_enable);
}

int config_vote_networks(const struct weft_config *cfg, struct conn_net *out, unsigned int max)
{
	char buf[sizeof(cfg->vote_networks)], *tok, *save = NULL;
	unsigned int n = 0;

	snprintf(buf, sizeof(buf), "%s", cfg->vote_networks);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		struct conn_net net = {0};
		char *slash = strchr(tok, '/');
		uint64_t bits;

		if (n == max || !slash)
			return -EINVAL;
		*slash = '\0';
		if (inet_pton(AF_INET, tok, net.addr.addr) == 1)
			net.addr.family = AF_INET;
		else if (inet_pton(AF_INET6, tok, net.addr.addr) == 1)
			net.addr.family = AF_INET6;
		else
			return -EINVAL;
		if (util_parse_u64(slash + 1, 0, net.addr.family == AF_INET ? 32 : 128, &bits))
			return -EINVAL;
		net.bits = (uint8_t)bits;
		if (out)
			out[n] = net;
		n++;
	}
	return (int)n;
}

int config_announce_addrs(const struct weft_config *cfg, struct sockaddr_storage *out,
			  unsigned int max)
{
	char buf[sizeof(cfg->announce_addrs)], *tok, *save = NULL;
	unsigned int n = 0;

	snprintf(buf, sizeof(buf), "%s", cfg->announce_addrs);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		struct sockaddr_storage ss;
		unsigned int sl;

		if (n == max || util_parse_addr(tok, &ss, &sl))
			return -EINVAL;
		if (out)
			out[n] = ss;
		n++;
	}
	return (int)n;
}

/* A key's value as text (a list joined by ','), truncated to len. */
static void cfg_format(const struct weft_config *cfg, const struct cfg_key *k, char *buf,
		       size_t len)
{
	const char *base = (const char *)cfg + k->off;
	size_t used = 0;

	buf[0] = '\0';
	switch (k->type) {
	case CFG_STR:
	case CFG_ENUM:
	case CFG_CPUS:
		snprintf(buf, len, "%s", base);
		break;
	case CFG_U32:
		snprintf(buf, len, "%u", *(const uint32_t *)(const void *)base);
		break;
	case CFG_U64:
		snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)(const void *)base);
		break;
	case CFG_BOOL:
		snprintf(buf, len, "%s", *(const int *)(const void *)base ? "true" : "false");
		break;
	case CFG_LIST:
		for (uint32_t j = 0; j < cfg->dht_nbootstrap && used < len; j++)
			used += (size_t)snprintf(buf + used, len - used, "%s%s", j ? "," : "",
						 cfg->dht_bootstrap[j]);
		break;
	}
}

void config_print(const struct weft_config *cfg, FILE *out)
{
	const char *cur = "";
	char v[PATH_MAX];

	fprintf(out, "# effective weftd configuration\n");
	for (size_t i = 0; i < WEFT_ARRAY_SIZE(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];

		if (strcmp(cur, k->section)) {
			fprintf(out, "%s[%s]\n", i ? "\n" : "", k->section);
			cur = k->section;
		}
		if (k->type != CFG_LIST) {
			cfg_format(cfg, k, v, sizeof(v));
			fprintf(out, "%s = %s\n", k->key, v);
			continue;
		}
		if (!cfg->dht_nbootstrap)
			fprintf(out, "# %s = (none)\n", k->key);
		for (uint32_t j = 0; j < cfg->dht_nbootstrap; j++)
			fprintf(out, "%s = %s\n", k->key, cfg->dht_bootstrap[j]);
	}
}

void config_print_defaults(FILE *out)
{
	const char *cur = "";

	fprintf(out, "# weft.conf: weftd's configuration (see weft.conf(5) and docs/CONFIG.md).\n"
		     "# Every key is shown commented out with its embedded default; uncomment\n"
		     "# and edit a line to change it. weftd re-reads this file on SIGHUP\n"
		     "# (systemctl reload weft).\n");
	for (size_t i = 0; i < WEFT_ARRAY_SIZE(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];
		const char *def = k->def ? k->def : "";

		if (strcmp(cur, k->section)) {
			fprintf(out, "\n[%s]\n", k->section);
			cur = k->section;
		}
		if (k->type == CFG_LIST)
			fprintf(out, "# %s =    (repeatable; none by default)\n", k->key);
		else if (k->off == OFF(state_dir))
			fprintf(out, "# %s = /var/lib/weft\n", k->key);
		else if (k->off == OFF(ctl_socket))
			fprintf(out, "# %s = /run/weft/weftd.sock\n", k->key);
		else if (k->type == CFG_ENUM)
			fprintf(out, "# %s: one of %s\n# %s = %s\n", k->key, k->choices, k->key, def);
		else
			fprintf(out, "# %s =%s%s\n", k->key, def[0] ? " " : "", def);
	}
}

int config_diff(const struct weft_config *a, const struct weft_config *b, config_diff_fn fn,
		void *arg)
{
	char va[PATH_MAX], vb[PATH_MAX];
	int n = 0;

	for (size_t i = 0; i < WEFT_ARRAY_SIZE(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];

		cfg_format(a, k, va, sizeof(va));
		cfg_format(b, k, vb, sizeof(vb));
		if (!strcmp(va, vb))
			continue;
		n++;
		if (fn)
			fn(arg, k->section, k->key, va[0] ? va : "\"\"", vb[0] ? vb : "\"\"",
			   k->reloadable);
	}
	return n;
}

int config_set_flag(struct weft_config *cfg, const char *section, const char *key,
		    const char *value, char *err, size_t errlen)
{
	size_t used = strlen(cfg->flags), need;
	int rc;

	if (strchr(value, '\n')) {
		snprintf(err, errlen, "%s.%s: a value cannot contain a newline", section, key);
		return -EINVAL;
	}
	need = strlen(section) + strlen(key) + strlen(value) + 3;
	if (used + need >= sizeof(cfg->flags)) {
		snprintf(err, errlen, "too many command-line settings (over %d bytes)",
			 CONFIG_FLAGS_MAX);
		return -E2BIG;
	}
	/* The first list entry given as a flag replaces the file's list. */
	if (!strcmp(section, "dht") && !strcmp(key, "bootstrap") && !strstr(cfg->flags, "dht.bootstrap="))
		cfg->dht_nbootstrap = 0;
	rc = config_set(cfg, section, key, value, err, errlen);
	if (rc)
		return rc;
	snprintf(cfg->flags + used, sizeof(cfg->flags) - used, "%s.%s=%s\n", section, key, value);
	return 0;
}

int config_reapply_flags(struct weft_config *cfg, const struct weft_config *from, char *err,
			 size_t errlen)
{
	char flags[CONFIG_FLAGS_MAX];
	char *line, *save = NULL;
	int rc;

	snprintf(flags, sizeof(flags), "%s", from->flags);
	cfg->flags[0] = '\0';
	for (line = strtok_r(flags, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *dot = strchr(line, '.'), *eq = strchr(line, '=');

		if (!dot || !eq || dot > eq)
			continue; /* never written by config_set_flag */
		*dot = *eq = '\0';
		rc = config_set_flag(cfg, line, dot + 1, eq + 1, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}
