// SPDX-License-Identifier: MIT
/*
 * Control API of the DHT through struct dht_svc: a worker thread owns six
 * weft nodes on 127.0.0.1 (poll loop, lock held around dht_* calls) while
 * the test thread dispatches /v1/dht/... requests through ctl_dispatch(),
 * which block on the svc condition variable until the lookup completes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "weft/ctl.h"
#include "weft/dht.h"
#include "weft/util.h"

#define NNODES 6

struct world {
	int fd[NNODES];
	struct dht *dht[NNODES];
	struct sockaddr_in addr[NNODES];
	uint8_t pk[32], sk[64];
	struct dht_svc *svc;
	struct ctl *ctl;
	pthread_t worker;
	volatile int stop;
	char dir[64];
};

static int udp_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		    socklen_t tolen)
{
	int fd = (int)(intptr_t)arg;

	return sendto(fd, buf, len, 0, to, tolen) < 0 ? -errno : 0;
}

static void *worker(void *arg)
{
	struct world *w = arg;
	struct pollfd pfd[NNODES];
	uint8_t buf[2048];

	while (!w->stop) {
		uint64_t next;

		dht_svc_lock(w->svc);
		for (int i = 0; i < NNODES; i++)
			dht_periodic(w->dht[i], util_now_ms(), &next);
		dht_svc_unlock(w->svc);
		for (int i = 0; i < NNODES; i++) {
			pfd[i].fd = w->fd[i];
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, NNODES, 10) <= 0)
			continue;
		dht_svc_lock(w->svc);
		for (int i = 0; i < NNODES; i++) {
			struct sockaddr_storage from;
			socklen_t fl = sizeof(from);
			ssize_t r;

			while ((r = recvfrom(w->fd[i], buf, sizeof(buf), MSG_DONTWAIT,
					     (struct sockaddr *)&from, &fl)) >= 0) {
				dht_input(w->dht[i], buf, (size_t)r, (struct sockaddr *)&from, fl,
					  util_now_ms());
				fl = sizeof(from);
			}
		}
		dht_svc_unlock(w->svc);
	}
	return NULL;
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	struct dht_limits lim = {
	    .budget_rate = 1000000, .budget_burst = 1000000, .query_timeout_ms = 1000};
	uint8_t kseed[32] = {5};
	char sock[128];
	struct ctl_opts co = {0};

	assert_int_equal(sodium_init() >= 0, 1);
	crypto_sign_seed_keypair(w->pk, w->sk, kseed);
	for (int i = 0; i < NNODES; i++) {
		uint8_t seed[32] = {(uint8_t)i, 0xc7};
		socklen_t al = sizeof(w->addr[i]);
		struct dht_opts o = {.send = udp_send, .seed = seed, .limits = lim};

		w->fd[i] = socket(AF_INET, SOCK_DGRAM, 0);
		w->addr[i].sin_family = AF_INET;
		w->addr[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(w->fd[i], (struct sockaddr *)&w->addr[i], sizeof(w->addr[i])),
				 0);
		getsockname(w->fd[i], (struct sockaddr *)&w->addr[i], &al);
		o.send_arg = (void *)(intptr_t)w->fd[i];
		if (i == 1) {
			o.pk = w->pk;
			o.sk = w->sk;
		}
		assert_int_equal(dht_new(&w->dht[i], &o), 0);
		if (i)
			dht_add_node(w->dht[i], (struct sockaddr *)&w->addr[0], sizeof(w->addr[0]),
				     util_now_ms());
	}
	assert_int_equal(dht_svc_new(&w->svc, w->dht[1], NULL), 0);
	strcpy(w->dir, "/tmp/weft-dhtctl-XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	snprintf(sock, sizeof(sock), "%s/ctl.sock", w->dir);
	co.socket_path = sock;
	assert_int_equal(ctl_new(&w->ctl, &co), 0);
	assert_int_equal(dht_svc_register(w->svc, w->ctl), 0);
	assert_int_equal(pthread_create(&w->worker, NULL, worker, w), 0);
	usleep(1500 * 1000); /* bootstrap */
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	w->stop = 1;
	pthread_join(w->worker, NULL);
	ctl_free(w->ctl);
	dht_svc_free(w->svc);
	for (int i = 0; i < NNODES; i++) {
		dht_free(w->dht[i]);
		close(w->fd[i]);
	}
	rmdir(w->dir);
	free(w);
	return 0;
}

/* Dispatch; returns the status and the reply in *out (caller decrefs). */
static int req(struct world *w, const char *method, const char *path, json_t *body, json_t **out)
{
	struct ctl_req r = {.method = method, .path = path, .json = body};
	struct ctl_resp resp = {0};
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;

	r.body = (const uint8_t *)s;
	r.body_len = s ? strlen(s) : 0;
	ctl_dispatch(w->ctl, &r, &resp);
	free(s);
	json_decref(body);
	free(resp.text);
	*out = resp.json;
	return resp.status;
}

static void test_endpoints(void **state)
{
	struct world *w = *state;
	json_t *o;
	char addr[64], idhex[41], target[41];
	const char *s;

	/* status */
	assert_int_equal(req(w, "GET", "/v1/dht/status", NULL, &o), 200);
	util_hex(idhex, dht_id(w->dht[1]), 20);
	assert_string_equal(json_string_value(json_object_get(o, "id")), idhex);
	assert_true(json_integer_value(json_object_get(o, "nodes4")) >= 3);
	json_decref(o);
	/* ping node 2 */
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(w->addr[2].sin_port));
	assert_int_equal(req(w, "POST", "/v1/dht/ping", json_pack("{s:s}", "addr", addr), &o), 200);
	util_hex(idhex, dht_id(w->dht[2]), 20);
	assert_string_equal(json_string_value(json_object_get(o, "id")), idhex);
	json_decref(o);
	/* find-node of node 4 */
	util_hex(idhex, dht_id(w->dht[4]), 20);
	assert_int_equal(req(w, "POST", "/v1/dht/find-node", json_pack("{s:s}", "id", idhex), &o),
			 200);
	s = json_string_value(
	    json_object_get(json_array_get(json_object_get(o, "nodes"), 0), "id"));
	assert_string_equal(s, idhex);
	json_decref(o);
	/* put/get immutable */
	assert_int_equal(req(w, "POST", "/v1/dht/put",
			     json_pack("{s:b,s:s}", "immutable", 1, "value", "hello ctl"), &o),
			 200);
	assert_true(json_integer_value(json_object_get(o, "stored")) >= 1);
	strcpy(target, json_string_value(json_object_get(o, "target")));
	json_decref(o);
	assert_int_equal(req(w, "POST", "/v1/dht/get", json_pack("{s:s}", "target", target), &o),
			 200);
	assert_string_equal(json_string_value(json_object_get(o, "value")), "hello ctl");
	json_decref(o);
	/* put/get mutable with salt */
	assert_int_equal(
	    req(w, "POST", "/v1/dht/put",
		json_pack("{s:b,s:s,s:s}", "mutable", 1, "salt", "weft:node", "value", "addr=1"),
		&o),
	    200);
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), 1);
	json_decref(o);
	{
		char pkh[65];

		util_hex(pkh, w->pk, 32);
		assert_int_equal(req(w, "POST", "/v1/dht/get",
				     json_pack("{s:s,s:s}", "key", pkh, "salt", "weft:node"), &o),
				 200);
		assert_string_equal(json_string_value(json_object_get(o, "value")), "addr=1");
		assert_int_equal(json_integer_value(json_object_get(o, "seq")), 1);
		json_decref(o);
	}
	/* announce / get-peers */
	memset(target, 'a', 40);
	target[40] = 0;
	assert_int_equal(req(w, "POST", "/v1/dht/announce",
			     json_pack("{s:s,s:i}", "infohash", target, "port", 9999), &o),
			 200);
	json_decref(o);
	assert_int_equal(
	    req(w, "POST", "/v1/dht/get-peers", json_pack("{s:s}", "infohash", target), &o), 200);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "peers"), 0)),
			    "127.0.0.1:9999");
	json_decref(o);
	/* errors */
	memset(target, 'b', 40);
	assert_int_equal(req(w, "POST", "/v1/dht/get", json_pack("{s:s}", "target", target), &o),
			 404);
	json_decref(o);
	assert_int_equal(req(w, "POST", "/v1/dht/get", json_pack("{s:s}", "target", "xyz"), &o),
			 400);
	json_decref(o);
	assert_int_equal(req(w, "POST", "/v1/dht/ping", json_pack("{s:s}", "addr", "nope"), &o),
			 400);
	json_decref(o);
	assert_int_equal(req(w, "POST", "/v1/dht/announce",
			     json_pack("{s:s,s:i}", "infohash", target, "port", 0), &o),
			 400);
	json_decref(o);
	assert_int_equal(req(w, "POST", "/v1/dht/put",
			     json_pack("{s:b,s:b,s:s}", "mutable", 1, "immutable", 1, "value", "x"),
			     &o),
			 400);
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
	};

	return cmocka_run_group_tests_name("dht_ctl", tests, NULL, NULL);
}
