// SPDX-License-Identifier: MIT
/* Config: defaults, good files, every kind of bad file (with file:line). */
#include <errno.h>
#include <sys/socket.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "weft/config.h"
#include "weft/conn.h"
#include "weft/mesh.h"

#define K64 "af09245cceeb35d4316cb6a80219685d996a1acb77697116f91f6012952bb482"

static char *dir;

static int setup(void **state)
{
	dir = tu_tmpdir();
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	tu_rmrf_free(dir);
	dir = NULL;
	return 0;
}

static int load(struct weft_config *cfg, const char *text, char *err, size_t errlen)
{
	char path[4096];

	assert_int_equal(tu_write(dir, "t.conf", text, strlen(text), 0600), 0);
	snprintf(path, sizeof(path), "%s/t.conf", dir);
	config_defaults(cfg);
	return config_load_file(cfg, path, err, errlen);
}

static void test_defaults(void **state)
{
	struct weft_config cfg;
	char err[256];

	config_defaults(&cfg);
	assert_int_equal(cfg.quic_port, 4433);
	assert_int_equal(cfg.dht_port, 6881);
	assert_string_equal(cfg.io, "auto");
	assert_string_equal(cfg.log_level, "info");
	assert_int_equal(cfg.ctl_max_body, 1048576);
	assert_int_equal(cfg.dht_nbootstrap, 0);
	assert_int_equal(cfg.dht_public_routers, 0);
	assert_string_equal(cfg.gateway, "");
	assert_true(cfg.state_dir[0] == '/');
	assert_int_equal(config_finish(&cfg, err, sizeof(err)), 0);
	assert_non_null(strstr(cfg.ctl_socket, "/weftd.sock"));
}

static void test_good_file(void **state)
{
	struct weft_config cfg;
	char err[512];

	{
		char buf[1024];

		snprintf(buf, sizeof(buf),
			 "; comment\n# another\n[node]\nstate_dir = %s/st\nlog_level = debug\n"
			 "workers = 4\n\n[ports]\nquic = 9443\ndht = 9881\n"
			 "[dht]\nbootstrap = 127.0.0.1:7000\nbootstrap = [::1]:7001\n"
			 "read_only = yes\n[ctl]\nmax_conns = 8\n",
			 dir);
		assert_int_equal(load(&cfg, buf, err, sizeof(err)), 0);
	}
	assert_string_equal(cfg.log_level, "debug");
	assert_int_equal(cfg.workers, 4);
	assert_int_equal(cfg.quic_port, 9443);
	assert_int_equal(cfg.dht_port, 9881);
	assert_int_equal(cfg.dht_nbootstrap, 2);
	assert_string_equal(cfg.dht_bootstrap[1], "[::1]:7001");
	assert_int_equal(cfg.dht_read_only, 1);
	assert_int_equal(cfg.ctl_max_conns, 8);
	assert_int_equal(config_finish(&cfg, err, sizeof(err)), 0);
}

struct bad_case {
	const char *text;
	const char *expect; /* substring of the error */
	int line;
};

static void test_bad_files(void **state)
{
	static const struct bad_case cases[] = {
		{ "[node]\nbogus = 1\n", "unknown key 'node.bogus'", 2 },
		{ "[nosuch]\nkey = 1\n", "unknown key 'nosuch.key'", 2 },
		{ "[ports]\nquic = 70000\n", "ports.quic", 2 },
		{ "[ports]\n\n\nquic = abc\n", "not a number", 4 },
		{ "[ports]\nquic = -1\n", "ports.quic", 2 },
		{ "[ports]\nquic = 12 34\n", "ports.quic", 2 },
		{ "[node]\nlog_level = loud\n", "not one of", 2 },
		{ "[node]\nio = dpdk\n", "node.io", 2 },
		{ "[quic]\naead = openssl\n", "quic.aead", 2 },
		{ "[dht]\nread_only = maybe\n", "not a boolean", 2 },
		{ "[dht]\nbootstrap = nocolon\n", "HOST:PORT", 2 },
		{ "[dht]\nbootstrap = [zz]:1\n", "HOST:PORT", 2 },
		{ "[node\nworkers = 1\n", "syntax", 1 },
		{ "just a line\n", "syntax", 1 },
		{ "[ctl]\nmax_body = 10\n", "ctl.max_body", 2 },
		{ "[node]\ncpus = 3-1\n", "not a CPU list", 2 },
		{ "[node]\ncpus = a\n", "node.cpus", 2 },
		{ "[node]\ncpus = 1,,2\n", "node.cpus", 2 },
		{ "[node]\ncpus = 0-64\n", "at most 64", 2 },
		{ "[node]\ncpus = 4096\n", "node.cpus", 2 },
		{ "[node]\ncpus = 1-\n", "node.cpus", 2 },
		{ "[ok]\n", NULL, 0 },
	};
	struct weft_config cfg;
	char err[512], want[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = load(&cfg, cases[i].text, err, sizeof(err));

		if (!cases[i].expect) {
			/* An empty section is harmless. */
			assert_int_equal(rc, 0);
			continue;
		}
		assert_int_equal(rc, -22);
		if (!strstr(err, cases[i].expect))
			fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].expect);
		snprintf(want, sizeof(want), "t.conf:%d:", cases[i].line);
		if (!strstr(err, want))
			fail_msg("case %zu: '%s' lacks '%s'", i, err, want);
	}
}

static void test_cpu_list(void **state)
{
	uint16_t c[64];

	(void)state;
	assert_int_equal(config_parse_cpus("", c, 64), 0);
	assert_int_equal(config_parse_cpus("5", c, 64), 1);
	assert_int_equal(c[0], 5);
	assert_int_equal(config_parse_cpus("0, 2-4,7", c, 64), 5);
	assert_int_equal(c[0], 0);
	assert_int_equal(c[1], 2);
	assert_int_equal(c[3], 4);
	assert_int_equal(c[4], 7);
	assert_int_equal(config_parse_cpus("0-3", c, 3), -E2BIG);
	assert_int_equal(config_parse_cpus("2,", c, 64), 1);
	assert_int_equal(config_parse_cpus("-1", c, 64), -EINVAL);
	assert_int_equal(config_parse_cpus("99999999999999999999", c, 64), -EINVAL);
}

static void test_missing_file(void **state)
{
	struct weft_config cfg;
	char err[256];

	config_defaults(&cfg);
	assert_int_equal(config_load_file(&cfg, "/nonexistent/weft.conf", err, sizeof(err)),
			 -2);
	assert_non_null(strstr(err, "/nonexistent/weft.conf"));
}

static void test_finish_checks(void **state)
{
	struct weft_config cfg;
	char err[256];

	config_defaults(&cfg);
	assert_int_equal(config_set(&cfg, "node", "state_dir", "relative", err, sizeof(err)), 0);
	assert_int_equal(config_finish(&cfg, err, sizeof(err)), -22);
	config_defaults(&cfg);
	config_set(&cfg, "ports", "dht", "4433", err, sizeof(err));
	assert_int_equal(config_finish(&cfg, err, sizeof(err)), -22);
	config_defaults(&cfg);
	config_set(&cfg, "node", "io", "xdp", err, sizeof(err));
	assert_int_equal(config_finish(&cfg, err, sizeof(err)), -22);
	assert_non_null(strstr(err, "xdp.interface"));
	config_defaults(&cfg);
	config_set(&cfg, "gateway", "listen", "localhost", err, sizeof(err));
	assert_int_equal(config_finish(&cfg, err, sizeof(err)), -22);
	assert_int_equal(config_set(&cfg, "x", "y", "z", err, sizeof(err)), -2);
	/* node.vote_networks: CIDRs, at most 4 */
	{
		static const char *bad[] = {"198.18.0.0", "198.18.0.0/33", "2001:db8::/129",
					    "x/8", "198.18.0.0/-1",
					    "10.0.0.0/8,10.1.0.0/16,10.2.0.0/16,10.3.0.0/16,10.4.0.0/16"};
		struct conn_net nets[CONN_VOTE_NETS_MAX];

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			config_defaults(&cfg);
			config_set(&cfg, "node", "vote_networks", bad[i], err, sizeof(err));
			assert_int_equal(config_finish(&cfg, err, sizeof(err)), -22);
			assert_non_null(strstr(err, "node.vote_networks"));
		}
		config_defaults(&cfg);
		config_set(&cfg, "node", "vote_networks", "198.18.0.0/15, 2001:db8::/32", err,
			   sizeof(err));
		assert_int_equal(config_vote_networks(&cfg, nets, CONN_VOTE_NETS_MAX), 2);
		assert_int_equal(nets[0].addr.family, AF_INET);
		assert_int_equal(nets[0].bits, 15);
		assert_int_equal(nets[1].addr.family, AF_INET6);
		assert_int_equal(nets[1].bits, 32);
	}
	/* mesh.trusted: KEYHEX:LEVEL, at most 16; mesh.min_level: a level */
	{
		static const char *bad[] = {"00:registry", K64 ":root", K64 ":none", K64,
					    K64 "00:endorsed", "zz" K64 ":endorsed"};
		char many[sizeof(cfg.mesh_trusted)] = "";
		struct mesh_trust t;

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			config_defaults(&cfg);
			config_set(&cfg, "mesh", "trusted", bad[i], err, sizeof(err));
			assert_int_equal(config_finish(&cfg, err, sizeof(err)), -22);
			assert_non_null(strstr(err, "mesh.trusted"));
		}
		for (int i = 0; i < 17; i++)
			strcat(strcat(many, i ? "," : ""), K64 ":endorsed");
		config_defaults(&cfg);
		assert_int_equal(config_set(&cfg, "mesh", "trusted", many, err, sizeof(err)), 0);
		assert_int_equal(config_finish(&cfg, err, sizeof(err)), -22);
		config_defaults(&cfg);
		config_set(&cfg, "mesh", "trusted", K64 ":registry, " K64 ":credential", err,
			   sizeof(err));
		assert_int_equal(config_finish(&cfg, err, sizeof(err)), 0);
		assert_int_equal(config_mesh_trusted(&cfg, &t), 2);
		assert_int_equal(t.e[0].max_level, MESH_LEVEL_REGISTRY);
		assert_int_equal(t.e[1].max_level, MESH_LEVEL_CREDENTIAL);
		assert_int_not_equal(config_set(&cfg, "mesh", "min_level", "high", err, sizeof(err)), 0);
		assert_int_equal(config_set(&cfg, "mesh", "min_level", "registry", err, sizeof(err)), 0);
	}
}

static void test_print_roundtrip(void **state)
{
	struct weft_config a, b;
	char err[256], path[4096];
	FILE *f;

	config_defaults(&a);
	config_set(&a, "ports", "quic", "5000", err, sizeof(err));
	config_set(&a, "dht", "bootstrap", "127.0.0.1:1", err, sizeof(err));
	assert_int_equal(config_finish(&a, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/printed.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	config_print(&a, f);
	fclose(f);
	/* What --print-config prints is a valid config file giving the same result. */
	config_defaults(&b);
	assert_int_equal(config_load_file(&b, path, err, sizeof(err)), 0);
	assert_int_equal(config_finish(&b, err, sizeof(err)), 0);
	assert_int_equal(b.quic_port, 5000);
	assert_int_equal(b.dht_nbootstrap, 1);
	assert_string_equal(a.ctl_socket, b.ctl_socket);
	assert_true(config_reloadable("node", "log_level"));
	assert_false(config_reloadable("ports", "quic"));
}

struct diff_rec {
	char lines[8][160];
	int n;
};

static void diff_cb(void *arg, const char *section, const char *key, const char *from,
		    const char *to, int live)
{
	struct diff_rec *r = arg;

	assert_true(r->n < 8);
	snprintf(r->lines[r->n++], sizeof(r->lines[0]), "%s.%s %s -> %s%s", section, key, from, to,
		 live ? " live" : "");
}

/* SIGHUP's view: a key-by-key diff (lists joined, "" shown), and flags
 * given at start re-applied over a freshly loaded file. */
static void test_diff_and_flags(void **state)
{
	struct weft_config run, fresh;
	struct diff_rec r = { 0 };
	char err[256];

	/* running: file, then flags */
	assert_int_equal(load(&run, "[node]\nlog_level = info\nworkers = 1\n"
				    "[dht]\nbootstrap = 10.0.0.1:1\n",
			      err, sizeof(err)),
			 0);
	assert_int_equal(config_set_flag(&run, "svc", "peer_concurrency", "7", err, sizeof(err)), 0);
	assert_int_equal(config_set_flag(&run, "dht", "bootstrap", "10.0.0.9:9", err, sizeof(err)), 0);
	assert_int_equal(run.dht_nbootstrap, 1); /* a flag list replaces the file's */
	assert_int_equal(config_set_flag(&run, "dht", "bootstrap", "10.0.0.8:8", err, sizeof(err)), 0);
	assert_int_equal(run.dht_nbootstrap, 2);
	assert_int_equal(config_set_flag(&run, "node", "log_level", "x\ny", err, sizeof(err)), -EINVAL);
	assert_int_equal(config_set_flag(&run, "no", "such", "1", err, sizeof(err)), -ENOENT);
	assert_int_equal(config_finish(&run, err, sizeof(err)), 0);
	assert_int_equal(config_diff(&run, &run, diff_cb, &r), 0);

	/* the file changes; the flags still win */
	assert_int_equal(load(&fresh, "[node]\nlog_level = debug\nworkers = 2\n"
				      "[svc]\npeer_concurrency = 3\n[gateway]\nlisten = 127.0.0.1:9\n",
			      err, sizeof(err)),
			 0);
	assert_int_equal(config_reapply_flags(&fresh, &run, err, sizeof(err)), 0);
	assert_int_equal(config_finish(&fresh, err, sizeof(err)), 0);
	assert_int_equal(fresh.svc_peer_concurrency, 7);
	assert_int_equal(fresh.dht_nbootstrap, 2);
	assert_string_equal(fresh.flags, run.flags);
	assert_int_equal(config_diff(&run, &fresh, diff_cb, &r), 3);
	assert_string_equal(r.lines[0], "node.log_level info -> debug live");
	assert_string_equal(r.lines[1], "node.workers 1 -> 2");
	assert_string_equal(r.lines[2], "gateway.listen \"\" -> 127.0.0.1:9");
	/* a list is compared whole */
	r.n = 0;
	fresh.dht_nbootstrap = 1;
	assert_int_equal(config_diff(&run, &fresh, NULL, NULL), 4);
	assert_int_equal(config_diff(&run, &fresh, diff_cb, &r), 4);
	/* table order: [node], [dht], ..., [gateway] */
	assert_string_equal(r.lines[2], "dht.bootstrap 10.0.0.9:9,10.0.0.8:8 -> 10.0.0.9:9");
	assert_string_equal(r.lines[3], "gateway.listen \"\" -> 127.0.0.1:9");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test_setup_teardown(test_good_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_cpu_list),
		cmocka_unit_test(test_finish_checks),
		cmocka_unit_test_setup_teardown(test_print_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_diff_and_flags, setup, teardown),
	};

	return cmocka_run_group_tests_name("node_config", tests, NULL, NULL);
}
