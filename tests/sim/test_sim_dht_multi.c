// SPDX-License-Identifier: MIT
/*
 * 24 DHT instances in one process on real UDP sockets (127.0.0.1, distinct
 * ports), driven by a poll() loop, bootstrapped from node 0 only. They find
 * each other (find_node), each other's peers (announce / get_peers) and
 * items (immutable and mutable put / get, seq managed, cas).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "weft/dht.h"
#include "weft/util.h"

#define NNODES 24

struct node {
	int fd;
	struct dht *dht;
	struct sockaddr_in addr;
	uint8_t pk[32], sk[64];
};

struct net {
	struct node n[NNODES];
};

static int udp_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		    socklen_t tolen)
{
	struct node *n = arg;

	if (sendto(n->fd, buf, len, 0, to, tolen) < 0)
		return -errno;
	return 0;
}

static void pump(struct net *net, uint64_t ms)
{
	uint64_t end = util_now_ms() + ms;
	struct pollfd pfd[NNODES];
	uint8_t buf[2048];

	for (;;) {
		uint64_t now = util_now_ms(), next = end, nx;
		int timeout;

		for (int i = 0; i < NNODES; i++) {
			dht_periodic(net->n[i].dht, now, &nx);
			if (nx < next)
				next = nx;
		}
		if (now >= end)
			return;
		timeout = next > now ? (int)(next - now) : 0;
		if (timeout > 20)
			timeout = 20;
		for (int i = 0; i < NNODES; i++) {
			pfd[i].fd = net->n[i].fd;
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, NNODES, timeout) <= 0)
			continue;
		for (int i = 0; i < NNODES; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			for (;;) {
				struct sockaddr_storage from;
				socklen_t fl = sizeof(from);
				ssize_t r = recvfrom(net->n[i].fd, buf, sizeof(buf), MSG_DONTWAIT,
						     (struct sockaddr *)&from, &fl);

				if (r < 0)
					break;
				dht_input(net->n[i].dht, buf, (size_t)r, (struct sockaddr *)&from,
					  fl, util_now_ms());
			}
		}
	}
}

struct waiter {
	int done;
	struct dht_result r;
	struct sockaddr_storage peers[64];
	uint8_t v[1100];
	struct dht_node_info nodes[DHT_K];
};

static void on_done(void *arg, const struct dht_result *r)
{
	struct waiter *w = arg;

	w->done = 1;
	w->r = *r;
	w->r.npeers = r->npeers < 64 ? r->npeers : 64;
	if (w->r.npeers)
		memcpy(w->peers, r->peers, w->r.npeers * sizeof(w->peers[0]));
	w->r.peers = w->peers;
	if (r->nnodes)
		memcpy(w->nodes, r->nodes, r->nnodes * sizeof(r->nodes[0]));
	w->r.nodes = w->nodes;
	if (r->value) {
		memcpy(w->v, r->value, r->value_len);
		w->r.value = w->v;
	}
}

static void wait_for(struct net *net, struct waiter *w)
{
	uint64_t end = util_now_ms() + 30000;

	while (!w->done && util_now_ms() < end)
		pump(net, 20);
	assert_true(w->done);
}

static int setup(void **state)
{
	struct net *net = calloc(1, sizeof(*net));
	struct dht_limits lim = {0};

	assert_int_equal(sodium_init() >= 0, 1);
	/* every node shares 127.0.0.1: lift the per-source budget */
	lim.budget_rate = 1000000;
	lim.budget_burst = 1000000;
	lim.query_timeout_ms = 1000;
	for (int i = 0; i < NNODES; i++) {
		struct node *n = &net->n[i];
		uint8_t seed[32] = {0}, kseed[32] = {0};
		socklen_t al = sizeof(n->addr);
		struct dht_opts o = {.send = udp_send,
				     .send_arg = n,
				     .seed = seed,
				     .limits = lim,
				     .pk = n->pk,
				     .sk = n->sk};

		seed[0] = (uint8_t)i;
		seed[1] = 0xd1;
		kseed[0] = (uint8_t)i;
		crypto_sign_seed_keypair(n->pk, n->sk, kseed);
		n->fd = socket(AF_INET, SOCK_DGRAM, 0);
		assert_true(n->fd >= 0);
		n->addr.sin_family = AF_INET;
		n->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(n->fd, (struct sockaddr *)&n->addr, sizeof(n->addr)), 0);
		assert_int_equal(getsockname(n->fd, (struct sockaddr *)&n->addr, &al), 0);
		assert_int_equal(dht_new(&n->dht, &o), 0);
	}
	for (int i = 1; i < NNODES; i++)
		assert_int_equal(dht_add_node(net->n[i].dht, (struct sockaddr *)&net->n[0].addr,
					      sizeof(net->n[0].addr), util_now_ms()),
				 0);
	pump(net, 1500);
	*state = net;
	return 0;
}

static int teardown(void **state)
{
	struct net *net = *state;

	for (int i = 0; i < NNODES; i++) {
		dht_free(net->n[i].dht);
		close(net->n[i].fd);
	}
	free(net);
	return 0;
}

static void test_tables_and_find_node(void **state)
{
	struct net *net = *state;
	unsigned int total = 0;

	for (int i = 0; i < NNODES; i++) {
		struct dht_stats st;

		dht_get_stats(net->n[i].dht, &st);
		assert_true(st.nodes4 >= 8); /* everyone learned more than node 0 */
		total += st.nodes4;
	}
	printf("# average routing table size: %.1f nodes\n", (double)total / NNODES);
	for (int k = 0; k < 4; k++) {
		struct waiter w = {0};
		int from = 3 + k * 5, to = (from + 7) % NNODES;

		assert_int_equal(
		    dht_find_node(net->n[from].dht, dht_id(net->n[to].dht), util_now_ms(), on_done, &w),
		    0);
		wait_for(net, &w);
		assert_int_equal(w.r.status, 0);
		assert_true(w.r.nnodes > 0);
		assert_memory_equal(w.r.nodes[0].id, dht_id(net->n[to].dht), DHT_ID_LEN);
		assert_true(w.r.hops >= 1);
		printf("# find_node %d->%d: visited %u queried %u hops %u\n", from, to, w.r.visited,
		       w.r.queried, w.r.hops);
	}
	{
		struct waiter w = {0};

		assert_int_equal(dht_ping(net->n[1].dht, (struct sockaddr *)&net->n[2].addr,
					  sizeof(net->n[2].addr), util_now_ms(), on_done, &w),
				 0);
		wait_for(net, &w);
		assert_int_equal(w.r.status, 0);
		assert_memory_equal(w.r.nodes[0].id, dht_id(net->n[2].dht), DHT_ID_LEN);
	}
}

static void test_announce_get_peers(void **state)
{
	struct net *net = *state;
	uint8_t ih[20];
	struct waiter w = {0};

	crypto_generichash(ih, sizeof(ih), (const uint8_t *)"weft-test", 9, NULL, 0);
	assert_int_equal(dht_announce(net->n[5].dht, ih, 4242, 0, util_now_ms(), on_done, &w), 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_true(w.r.stored >= 3);
	memset(&w, 0, sizeof(w));
	/* implied_port: the announcer's UDP port */
	assert_int_equal(dht_announce(net->n[9].dht, ih, 0, 1, util_now_ms(), on_done, &w), 0);
	wait_for(net, &w);
	assert_true(w.r.stored >= 3);
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_get_peers(net->n[17].dht, ih, util_now_ms(), on_done, &w), 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_int_equal(w.r.npeers, 2);
	{
		int p4242 = 0, pimplied = 0;

		for (size_t i = 0; i < w.r.npeers; i++) {
			const struct sockaddr_in *s = (const struct sockaddr_in *)&w.r.peers[i];

			assert_int_equal(s->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
			p4242 |= ntohs(s->sin_port) == 4242;
			pimplied |= s->sin_port == net->n[9].addr.sin_port;
		}
		assert_true(p4242 && pimplied);
	}
	printf("# get_peers: visited %u hops %u peers %zu\n", w.r.visited, w.r.hops, w.r.npeers);
}

static void test_items(void **state)
{
	struct net *net = *state;
	struct waiter w = {0};
	uint8_t target[20];

	/* immutable */
	assert_int_equal(dht_put_immutable(net->n[3].dht, (const uint8_t *)"hello weft", 10,
					   util_now_ms(), on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_true(w.r.stored >= 3);
	memcpy(target, w.r.target, 20);
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_get(net->n[20].dht, target, NULL, NULL, 0, util_now_ms(), on_done, &w), 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_int_equal(w.r.value_len, 13);
	assert_memory_equal(w.r.value, "10:hello weft", 13);
	/* missing item */
	memset(&w, 0, sizeof(w));
	target[0] ^= 0xff;
	assert_int_equal(dht_get(net->n[20].dht, target, NULL, NULL, 0, util_now_ms(), on_done, &w), 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, -ENOENT);

	/* mutable with salt, seq managed */
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_put_mutable(net->n[8].dht, (const uint8_t *)"v1", 2,
					 (const uint8_t *)"weft:node", 9, 0, util_now_ms(), on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_int_equal(w.r.seq, 1);
	assert_true(w.r.stored >= 3);
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_get(net->n[12].dht, NULL, net->n[8].pk, (const uint8_t *)"weft:node",
				 9, util_now_ms(), on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_int_equal(w.r.seq, 1);
	assert_memory_equal(w.r.value, "2:v1", 4);
	/* second put: seq 2, with cas against the seq seen on the network */
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_put_mutable(net->n[8].dht, (const uint8_t *)"v2", 2,
					 (const uint8_t *)"weft:node", 9, 1, util_now_ms(), on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.seq, 2);
	assert_true(w.r.stored >= 3);
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_get(net->n[15].dht, NULL, net->n[8].pk, (const uint8_t *)"weft:node",
				 9, util_now_ms(), on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.seq, 2);
	assert_memory_equal(w.r.value, "2:v2", 4);
	/* the same key without the salt is another target: nothing there */
	memset(&w, 0, sizeof(w));
	assert_int_equal(
	    dht_get(net->n[15].dht, NULL, net->n[8].pk, NULL, 0, util_now_ms(), on_done, &w), 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, -ENOENT);
}

/* A head kept alive by others (docs/CONTENT.md, "Share heads"): node 5
 * signs a BEP 46 value, node 17 stores the signed item as is; a get with
 * the last seq sees nothing new; the next seq put with cas is seen; a
 * refresh of an item every close node holds sends nothing; a forged
 * signature is refused before anything is sent. */
static void test_presigned(void **state)
{
	struct net *net = *state;
	struct waiter w = {0};
	uint8_t v1[64], v2[64], sig1[64], sig2[64];
	const uint8_t *salt = (const uint8_t *)"photos";
	struct dht_item_in it = {.pk = net->n[5].pk, .salt = salt, .salt_len = 6};
	int n1 = snprintf((char *)v1, sizeof(v1), "d2:ih20:%s2:mhi1ee", "aaaaaaaaaaaaaaaaaaaa");
	int n2 = snprintf((char *)v2, sizeof(v2), "d2:ih20:%s2:mhi2ee", "bbbbbbbbbbbbbbbbbbbb");

	assert_int_equal(dht_bep44_sign(sig1, net->n[5].sk, salt, 6, 1, v1, (size_t)n1), 0);
	assert_int_equal(dht_bep44_sign(sig2, net->n[5].sk, salt, 6, 2, v2, (size_t)n2), 0);
	it.sig = sig1, it.seq = 1, it.v = v1, it.vlen = (size_t)n1;
	assert_int_equal(dht_put_signed(net->n[17].dht, &it, DHT_PUT_CAS, util_now_ms(), on_done,
					&w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_true(w.r.stored >= 3);
	assert_int_equal(w.r.seq, 1);
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_get_since(net->n[2].dht, net->n[5].pk, salt, 6, -1, util_now_ms(),
				       on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_int_equal(w.r.seq, 1);
	assert_memory_equal(w.r.value, v1, (size_t)n1);
	/* nothing newer than 1 */
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_get_since(net->n[2].dht, net->n[5].pk, salt, 6, 1, util_now_ms(),
				       on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, -ENOENT);
	/* refresh of what every close node holds: nothing stored */
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_put_signed(net->n[9].dht, &it, DHT_PUT_REFRESH, util_now_ms(),
					on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_true(w.r.held >= 3);
	/* (the first put's own node did not hold it: stored there now) */
	assert_true(w.r.stored <= 1);
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_put_signed(net->n[9].dht, &it, DHT_PUT_REFRESH, util_now_ms(),
					on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_true(w.r.held >= 3);
	assert_int_equal(w.r.stored, 0);
	/* seq 2 with cas, by yet another node */
	it.sig = sig2, it.seq = 2, it.v = v2, it.vlen = (size_t)n2;
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_put_signed(net->n[11].dht, &it, DHT_PUT_CAS | DHT_PUT_REFRESH,
					util_now_ms(), on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_true(w.r.stored >= 3);
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_get_since(net->n[2].dht, net->n[5].pk, salt, 6, 1, util_now_ms(),
				       on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.r.status, 0);
	assert_int_equal(w.r.seq, 2);
	assert_memory_equal(w.r.value, v2, (size_t)n2);
	/* a signature that is not the key's: refused, nothing started */
	sig2[10] ^= 1;
	assert_int_equal(dht_put_signed(net->n[11].dht, &it, 0, util_now_ms(), on_done, &w),
			 -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tables_and_find_node),
	    cmocka_unit_test(test_announce_get_peers),
	    cmocka_unit_test(test_items),
	    cmocka_unit_test(test_presigned),
	};

	return cmocka_run_group_tests_name("sim_dht_multi", tests, setup, teardown);
}
