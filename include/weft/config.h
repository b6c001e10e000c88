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
#define CONFIG_DEFAULT_PATH "/etc/weft/weftd.conf"

struct weft_config {
	/* [node] */
	char state_dir[PATH_MAX];
	char log_level[16];
	char io[8];              /* "uring" | "xdp" | "auto" */
	uint32_t workers;        /* 0 = one per CPU (uring) / rx queue (xdp) */
	char cpus[256];          /* CPU list workers are pinned to, "" = not pinned */
	char bind_addr[64];      /* UDP bind address for the uring backend */
	/* [xdp] */
	char xdp_ifname[IF_NAMESIZE];
	char xdp_mode[8];        /* "native" | "generic" */
	char xdp_pin_root[PATH_MAX];
	/* [ports] */
	uint32_t quic_port;
	uint32_t dht_port;
	/* [ctl] */
	char ctl_socket[PATH_MAX]; /* "" = <state_dir>/weftd.sock */
	uint32_t ctl_max_body;
	uint32_t ctl_max_header;
	uint32_t ctl_max_conns;
	uint32_t ctl_timeout_s;
	/* [dht] */
	char dht_bootstrap[CONFIG_MAX_BOOTSTRAP][128];
	uint32_t dht_nbootstrap;
	int dht_public_routers;  /* use the well-known public routers */
	int dht_read_only;       /* BEP 43 */
	int dht_enforce_bep42;
	/* [quic] */
	uint32_t quic_idle_timeout_ms;
	uint32_t quic_keepalive_ms;
	uint32_t quic_max_conns;
	uint32_t quic_max_conns_per_addr;
	/* [content] */
	uint64_t content_quota;  /* bytes of blobs kept; 0 = the store's default (10 GiB) */
	/* [gateway] */
	char gateway[64];        /* "" = off; else ADDR:PORT */
	int gateway_allow_public;
	char gateway_services[512]; /* whitelist: "a,b,c", "*" = any, "" = none */
	/* [svc]: service router limits (defaults: SVC_DEFAULT_* in svc_router.h) */
	uint32_t svc_peer_calls_per_min;
	uint32_t svc_max_payload;
	uint32_t svc_peer_concurrency;
	uint32_t svc_service_calls_per_min;
	uint32_t svc_service_concurrency;
	uint32_t svc_addr_calls_per_min;
	uint32_t svc_addr_concurrency;
	uint32_t svc_global_concurrency;
	uint32_t svc_max_timeout_ms;	   /* cap of every call / pass-through deadline */
	uint32_t svc_backend_max_inflight; /* backend requests in progress, node-wide */
	uint32_t svc_backend_max_per_service; /* ... per service */
	uint32_t svc_http_buffer;	   /* pass-through bytes buffered per request */
	/* [store] */
	uint64_t store_map_size;
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

/* Final checks and derived values (socket path from state dir). */
int config_finish(struct weft_config *cfg, char *err, size_t errlen);

/* Write the effective configuration as INI. */
void config_print(const struct weft_config *cfg, FILE *out);

/*
 * Parse a CPU list ("2", "0,2-3", "" = none) into cpus[] in order.
 * Returns the number of CPUs, -EINVAL for bad syntax or a CPU above
 * CONFIG_MAX_CPU, -E2BIG for more than max.
 */
int config_parse_cpus(const char *s, uint16_t *cpus, unsigned int max);

/* Nonzero if the key can change on SIGHUP without a restart. */
int config_reloadable(const char *section, const char *key);

#endif
