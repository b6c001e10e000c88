// SPDX-License-Identifier: MIT
/*
 * Two complete nodes in one process do not affect each other: X logs at
 * debug to its own file, Y at error to another; X allows 50 service calls
 * a minute per peer, Y the default 100. Both work (DHT contact, a QUIC
 * ping and a service call between them), then:
 *  - X's file holds X's lines only, debug ones included; Y's holds no
 *    line under error and none of X's;
 *  - raising Y's level at run time (what SIGHUP does) makes Y log info
 *    lines and leaves X's level alone; the test thread's own binding is
 *    untouched by every call into either node;
 *  - each node reports its own limits.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "simnode.h"
#include "testutil.h"
#include "weft/log.h"
#include "weft/node.h"
#include "weft/simnet.h"

static char *slurp(const char *path)
{
	char *buf = calloc(1, 1 << 20);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_non_null(buf);
	assert_true(fd >= 0);
	n = read(fd, buf, (1 << 20) - 1);
	assert_true(n >= 0);
	close(fd);
	return buf;
}

/* Every line starts "TIME LEVEL NAME/module:"; count lines of name and
 * of level (either may be NULL for "any"). */
static unsigned int count_lines(const char *text, const char *name, const char *level)
{
	unsigned int n = 0;
	const char *l = text;

	while (*l) {
		const char *end = strchr(l, '\n');
		char line[1100], lvl[16], who[64];

		if (!end)
			end = l + strlen(l);
		snprintf(line, sizeof(line), "%.*s", (int)(end - l), l);
		if (sscanf(line, "%*s %15s %63s", lvl, who) == 2) {
			char *slash = strchr(who, '/');

			if (slash)
				*slash = '\0';
			else
				who[0] = '\0';
			if ((!name || !strcmp(who, name)) && (!level || !strcmp(lvl, level)))
				n++;
		}
		l = *end ? end + 1 : end;
	}
	return n;
}

static int y_knows_x(void *arg)
{
	struct simnode *y = arg;

	return simnode_get_int(y, "/v1/dht/status", "nodes4", NULL) >= 1;
}

static int x_announced(void *arg)
{
	struct simnode *x = arg;
	json_t *o = simnode_ok(x, "GET", "/v1/svc/ls", NULL);
	json_t *s0 = json_array_get(json_object_get(o, "services"), 0);
	int ok = s0 && json_integer_value(json_object_get(s0, "announced")) >= 1;

	json_decref(o);
	return ok;
}

static void test_two_nodes_isolated(void **state)
{
	struct simnet_opts so = {.seed = 3, .clock = SIMNET_CLOCK_REAL};
	static const char *const xs[] = {"node.log_level=debug", "svc.peer_calls_per_min=50", NULL};
	static const char *const ys[] = {"node.log_level=error", "dht.bootstrap=198.51.100.10:6881",
					 NULL};
	struct simnode x, y;
	struct simnet *sn;
	char *dir = tu_tmpdir(), xlog[512], ylog[512], *xt, *yt;
	unsigned int y_info_before;
	json_t *o;

	(void)state;
	assert_non_null(dir);
	snprintf(xlog, sizeof(xlog), "%s/x.log", dir);
	snprintf(ylog, sizeof(ylog), "%s/y.log", dir);
	assert_int_equal(simnet_new(&sn, &so), 0);
	assert_null(log_current());
	simnode_new(&x, sn, "X", "198.51.100.10", NULL, xs, NULL, xlog);
	simnode_new(&y, sn, "Y", "198.51.100.11", NULL, ys, NULL, ylog);
	assert_null(log_current()); /* node_new and node_start restored it */
	assert_int_equal(log_ctx_level(node_log(x.node)), LOG_LVL_DEBUG);
	assert_int_equal(log_ctx_level(node_log(y.node)), LOG_LVL_ERROR);

	assert_int_equal(simnode_wait(y_knows_x, &y, 10000), 0);
	o = simnode_ok(&y, "POST", "/v1/quic/ping", json_pack("{s:s}", "peer", "198.51.100.10"));
	json_decref(o);
	json_decref(simnode_ok(&x, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s}", "name", "echo", "backend", "builtin")));
	assert_int_equal(simnode_wait(x_announced, &x, 10000), 0);
	/* Served on X's packet worker: a successful call is a debug line,
	 * logged only because X's level (not Y's) is debug. */
	o = simnode_ok(&y, "POST", "/v1/svc/call",
		       json_pack("{s:s,s:s,s:s}", "name", "echo", "method", "m", "data", "d"));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "ok");
	json_decref(o);
	assert_int_equal(simnode_get_int(&x, "/v1/svc/stats", "limits", "peer_calls_per_min", NULL),
			 50);
	assert_int_equal(simnode_get_int(&y, "/v1/svc/stats", "limits", "peer_calls_per_min", NULL),
			 100);
	assert_null(log_current());

	xt = slurp(xlog);
	yt = slurp(ylog);
	assert_true(count_lines(xt, "X", NULL) > 0);
	assert_true(count_lines(xt, "X", "debug") > 0);
	assert_non_null(strstr(xt, "service=echo method=m"));
	assert_int_equal(count_lines(xt, NULL, NULL), count_lines(xt, "X", NULL));
	assert_int_equal(count_lines(yt, "X", NULL), 0);
	assert_int_equal(count_lines(yt, NULL, "info"), 0);
	assert_int_equal(count_lines(yt, NULL, "debug"), 0);
	assert_int_equal(count_lines(yt, NULL, "warn"), 0);
	print_message("X logged %u lines (%u debug), Y %u\n", count_lines(xt, NULL, NULL),
		      count_lines(xt, NULL, "debug"), count_lines(yt, NULL, NULL));
	free(xt);
	free(yt);

	/* Y's level changes at run time (SIGHUP path); X's does not move. */
	log_ctx_set_level(node_log(y.node), LOG_LVL_INFO);
	json_decref(simnode_ok(&y, "POST", "/v1/svc/publish",
			       json_pack("{s:s,s:s}", "name", "echo", "backend", "builtin")));
	assert_int_equal(log_ctx_level(node_log(x.node)), LOG_LVL_DEBUG);
	yt = slurp(ylog);
	y_info_before = count_lines(yt, "Y", "info");
	assert_true(y_info_before > 0);
	assert_int_equal(count_lines(yt, "X", NULL), 0);
	free(yt);
	xt = slurp(xlog);
	assert_int_equal(count_lines(xt, "Y", NULL), 0);
	free(xt);

	simnode_free(&y);
	simnode_free(&x);
	simnet_free(sn);
	tu_rmrf_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_nodes_isolated),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("sim_isolation", tests, NULL, NULL);
}
