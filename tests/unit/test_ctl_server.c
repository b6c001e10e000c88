// SPDX-License-Identifier: MIT
/* Control server: route table, dispatch, error mapping, socket handling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"
#include "weft/ctl.h"

static char *dir;
static char sock[200];

static int setup(void **state)
{
	dir = tu_tmpdir();
	snprintf(sock, sizeof(sock), "%s/t.sock", dir);
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	tu_rmrf_free(dir);
	return 0;
}

static void h_tag(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	ctl_resp_json(resp, 200,
		      json_pack("{s:s,s:s}", "tag", (const char *)arg, "sub", req->subpath));
}

static void h_silent(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
}

static const char *run(struct ctl *ctl, const char *method, const char *path, int *status,
		       char *buf, size_t len)
{
	struct ctl_req req = {.method = method, .path = path};
	struct ctl_resp resp = {0};
	char *s;

	ctl_dispatch(ctl, &req, &resp);
	*status = resp.status;
	if (resp.json) {
		s = json_dumps(resp.json, JSON_COMPACT | JSON_SORT_KEYS);
		snprintf(buf, len, "%s", s);
		free(s);
	} else {
		snprintf(buf, len, "%.*s", (int)resp.text_len, resp.text ? resp.text : "");
	}
	json_decref(resp.json);
	free(resp.text);
	return buf;
}

static void metric_a(void *arg, FILE *out)
{
	fprintf(out, "weft_test_metric %d\n", *(int *)arg);
}

static void test_routes(void **state)
{
	struct ctl_opts o = {.socket_path = sock};
	struct ctl *ctl;
	char buf[4096]; /* the ctl's own metrics come first */
	int st, val = 42;

	assert_int_equal(ctl_new(&ctl, &o), 0);
	assert_int_equal(ctl_route(ctl, "GET", "/v1/x", h_tag, "exact"), 0);
	assert_int_equal(ctl_route(ctl, "GET", "/v1/x/", h_tag, "tree"), 0);
	assert_int_equal(ctl_route(ctl, "GET", "/v1/x/deep/", h_tag, "deeper"), 0);
	assert_int_equal(ctl_route(ctl, "POST", "/v1/x", h_tag, "post"), 0);
	assert_int_equal(ctl_route(ctl, "GET", "/v1/silent", h_silent, NULL), 0);
	assert_int_equal(ctl_route(ctl, "TOOLONGMETHOD", "/v1/y", h_tag, NULL), -EINVAL);
	assert_int_equal(ctl_metrics(ctl, metric_a, &val), 0);

	run(ctl, "GET", "/v1/x", &st, buf, sizeof(buf));
	assert_int_equal(st, 200);
	assert_string_equal(buf, "{\"sub\":\"\",\"tag\":\"exact\"}");
	run(ctl, "POST", "/v1/x", &st, buf, sizeof(buf));
	assert_string_equal(buf, "{\"sub\":\"\",\"tag\":\"post\"}");
	run(ctl, "GET", "/v1/x/abc", &st, buf, sizeof(buf));
	assert_string_equal(buf, "{\"sub\":\"abc\",\"tag\":\"tree\"}");
	run(ctl, "GET", "/v1/x/deep/er", &st, buf, sizeof(buf));
	assert_string_equal(buf, "{\"sub\":\"er\",\"tag\":\"deeper\"}");
	run(ctl, "GET", "/v1/xy", &st, buf, sizeof(buf));
	assert_int_equal(st, 404);
	assert_non_null(strstr(buf, "not_found"));
	run(ctl, "DELETE", "/v1/x", &st, buf, sizeof(buf));
	assert_int_equal(st, 405);
	run(ctl, "GET", "/v1/silent", &st, buf, sizeof(buf));
	assert_int_equal(st, 500);
	run(ctl, "GET", "/metrics", &st, buf, sizeof(buf));
	assert_int_equal(st, 200);
	assert_non_null(strstr(buf, "weft_test_metric 42\n"));
	assert_non_null(strstr(buf, "weft_ctl_requests_total"));
	assert_non_null(strstr(buf, "# TYPE weft_ctl_request_duration_seconds histogram\n"));
	assert_non_null(strstr(buf, "weft_ctl_request_duration_seconds_bucket{le=\"+Inf\"} "));
	run(ctl, "POST", "/metrics", &st, buf, sizeof(buf));
	assert_int_equal(st, 405);
	ctl_free(ctl);
}

static void test_errno_map(void **state)
{
	static const struct {
		int err, status;
	} map[] = {
	    {-EINVAL, 400},    {-ENOENT, 404},	 {-EEXIST, 409},     {-EPERM, 403}, {-EAGAIN, 503},
	    {-ETIMEDOUT, 504}, {-EMSGSIZE, 413}, {-EOPNOTSUPP, 501}, {-EIO, 500},
	    {-ENOSPC, 507},    {-EDQUOT, 507},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		struct ctl_resp r = {0};

		ctl_resp_errno(&r, map[i].err, "op");
		assert_int_equal(r.status, map[i].status);
		assert_non_null(json_object_get(json_object_get(r.json, "error"), "message"));
		json_decref(r.json);
	}
}

/* An error message with bytes that are not UTF-8 (a request path, a
 * character cut by the 512-byte message limit) still makes a JSON error
 * with the status asked for; it was a 500 "handler produced no response"
 * (found by tests/fuzz/fuzz_ctl_json.c with DELETE /v1/bans/%FF). */
static void h_bad_path(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	ctl_resp_error(resp, 400, "bad_request", "not a CIDR: \"%s\"", req->subpath);
}

static void test_error_not_utf8(void **state)
{
	struct ctl_opts o = {.socket_path = sock};
	struct ctl_resp r = {0};
	struct ctl *ctl;
	char buf[512], longmsg[600];
	const char *msg;
	int st;

	ctl_resp_error(&r, 400, "bad_request", "x\xff\xfey");
	assert_int_equal(r.status, 400);
	msg = json_string_value(json_object_get(json_object_get(r.json, "error"), "message"));
	assert_string_equal(msg, "x??y");
	json_decref(r.json);
	/* "ab" then "é" (2 bytes) x 298: the 511-byte limit cuts the last "é" */
	memcpy(longmsg, "ab", 2);
	for (size_t i = 2; i + 1 < sizeof(longmsg); i += 2)
		memcpy(longmsg + i, "\xc3\xa9", 2);
	longmsg[sizeof(longmsg) - 1] = '\0';
	memset(&r, 0, sizeof(r));
	ctl_resp_error(&r, 404, "not_found", "%s", longmsg);
	assert_int_equal(r.status, 404);
	msg = json_string_value(json_object_get(json_object_get(r.json, "error"), "message"));
	assert_non_null(msg);
	assert_int_equal(strlen(msg), 511);
	assert_memory_equal(msg, "ab??", 4);
	json_decref(r.json);

	assert_int_equal(ctl_new(&ctl, &o), 0);
	assert_int_equal(ctl_route(ctl, "DELETE", "/v1/b/", h_bad_path, NULL), 0);
	run(ctl, "DELETE", "/v1/b/\xff", &st, buf, sizeof(buf));
	assert_int_equal(st, 400);
	assert_string_equal(buf, "{\"error\":{\"code\":\"bad_request\","
				 "\"message\":\"not a CIDR: \\\"?\\\"\"}}");
	ctl_free(ctl);
}

static void test_socket(void **state)
{
	struct ctl_opts o = {.socket_path = sock};
	struct ctl *a, *b;
	struct stat sb;
	int fd;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char longp[300];

	assert_int_equal(ctl_new(&a, &o), 0);
	assert_int_equal(stat(sock, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(ctl_start(a), 0);
	/* a live socket is not stolen */
	assert_int_equal(ctl_new(&b, &o), -EADDRINUSE);
	ctl_free(a);
	assert_int_equal(stat(sock, &sb), -1);
	/* a stale socket file (nobody listening) is replaced */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sun.sun_path, sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	assert_int_equal(ctl_new(&b, &o), 0);
	ctl_free(b);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	o.socket_path = longp;
	assert_int_equal(ctl_new(&b, &o), -ENAMETOOLONG);
	o.socket_path = "";
	assert_int_equal(ctl_new(&b, &o), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
	    cmocka_unit_test(test_errno_map),
	    cmocka_unit_test_setup_teardown(test_error_not_utf8, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_socket, setup, teardown),
	};

	return cmocka_run_group_tests_name("ctl_server", tests, NULL, NULL);
}
