// SPDX-License-Identifier: MIT
/* weftd's configuration reload on SIGHUP (docs/CONFIG.md "live"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/config.h"
#include "weft/log.h"
#include "weft/util.h"
#include "node_int.h"

/*
 * Live keys (config.c marks them reloadable; docs/CONFIG.md "live"): how
 * each is applied to the running node. Every key the table marks live has
 * an entry here; a live key without one would be reported as needing a
 * restart, never as applied.
 */
static int apply_log_level(struct node *n, const struct weft_config *fresh)
{
	enum log_level lvl;

	if (log_level_parse(fresh->log_level, &lvl))
		return -EINVAL;
	log_ctx_set_level(&n->log, lvl);
	snprintf(n->cfg.log_level, sizeof(n->cfg.log_level), "%s", fresh->log_level);
	return 0;
}

static int apply_log_addresses(struct node *n, const struct weft_config *fresh)
{
	log_ctx_set_addresses(&n->log, fresh->log_addresses);
	n->cfg.log_addresses = fresh->log_addresses;
	return 0;
}

static const struct {
	const char *section, *key;
	int (*apply)(struct node *n, const struct weft_config *fresh);
} node_live_keys[] = {
	{ "node", "log_level", apply_log_level },
	{ "log", "addresses", apply_log_addresses },
};

struct reload_ctx {
	struct node *n;
	const struct weft_config *fresh;
	unsigned int applied, restart;
};

/* One line per changed key: "config: SEC.KEY OLD -> NEW (applied)" or
 * "(needs restart)". */
static void reload_key(void *arg, const char *section, const char *key, const char *from,
		       const char *to, int live)
{
	struct reload_ctx *rc = arg;
	int err = -ENOENT;

	for (size_t i = 0; live && i < WEFT_ARRAY_SIZE(node_live_keys); i++)
		if (!strcmp(node_live_keys[i].section, section) &&
		    !strcmp(node_live_keys[i].key, key))
			err = node_live_keys[i].apply(rc->n, rc->fresh);
	if (!err) {
		rc->applied++;
		log_info("node", "config: %s.%s %s -> %s (applied)", section, key, from, to);
		return;
	}
	rc->restart++;
	if (live)
		log_error("node", "config: %s.%s %s -> %s (marked live but not applied: %s; "
				  "needs restart)", section, key, from, to, strerror(-err));
	else
		log_warn("node", "config: %s.%s %s -> %s (needs restart)", section, key, from, to);
}

/* SIGHUP: re-read the file (command-line flags still win), apply the live
 * keys that changed, name the others that need a restart. */
void node_reload(struct node *n)
{
	struct weft_config *fresh;
	struct reload_ctx rc = { .n = n };
	char err[512];
	int changed;

	if (!n->config_path[0]) {
		log_info("node", "SIGHUP: no configuration file to reload");
		return;
	}
	fresh = malloc(sizeof(*fresh)); /* ~30 KiB: not on the stack */
	if (!fresh) {
		log_error("node", "SIGHUP: keeping the running configuration: out of memory");
		return;
	}
	config_defaults(fresh);
	if (config_load_file(fresh, n->config_path, err, sizeof(err)) ||
	    config_reapply_flags(fresh, &n->cfg, err, sizeof(err)) ||
	    config_finish(fresh, err, sizeof(err))) {
		log_error("node", "SIGHUP: keeping the running configuration: %s", err);
		free(fresh);
		return;
	}
	fresh->test = n->cfg.test;
	rc.fresh = fresh;
	changed = config_diff(&n->cfg, fresh, reload_key, &rc);
	free(fresh);
	atomic_fetch_add(&n->reloads, 1);
	log_info("node", "configuration reloaded from %s: %d key(s) changed, %u applied, %u need "
			 "a restart", n->config_path, changed, rc.applied, rc.restart);
}

