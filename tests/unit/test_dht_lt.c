// SPDX-License-Identifier: MIT
/*
 * Interop with libtorrent 2.0 (python3-libtorrent through tests/lib/lt_dht.py):
 * 8 weft nodes on 127.0.0.1 and one libtorrent session that knows only
 * them. libtorrent's immutable and mutable (salted) puts are read by weft,
 * weft's puts are read by libtorrent (which checks the signature), announces
 * go both ways, and weft answers every query libtorrent sent without error.
 * Skips when /usr/bin/python3 or libtorrent is missing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "weft/dht.h"
#include "weft/util.h"

#define NNODES 8

struct node {
	int fd;
	struct dht *dht;
	struct sockaddr_in addr;
	uint8_t pk[32], sk[64];
};

struct net {
	struct node n[NNODES];
	pid_t pid;
	int to_py, from_py;
	char line[65536];
	size_t linelen;
	int lt_port;
};

static int udp_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		    socklen_t tolen)
{
	struct node *n = arg;

	if (sendto(n->fd, buf, len, 0, to, tolen) < 0)
		return -errno;
	return 0;
}

/* Run the weft nodes for up to ms; returns a malloc'd line from the helper
 * when one arrives (if want_line), else NULL. */
static char *pump(struct net *net, uint64_t ms, int want_line)
{
	uint64_t end = util_now_ms() + ms;
	struct pollfd pfd[NNODES + 1];
	uint8_t buf[2048];

	for (;;) {
		uint64_t now = util_now_ms(), next = end, nx;
		int timeout, np = NNODES;

		if (want_line) {
			char *nl = memchr(net->line, '\n', net->linelen);

			if (nl) {
				size_t l = (size_t)(nl - net->line);
				char *s = strndup(net->line, l);

				memmove(net->line, nl + 1, net->linelen - l - 1);
				net->linelen -= l + 1;
				return s;
			}
		}
		for (int i = 0; i < NNODES; i++) {
			dht_periodic(net->n[i].dht, now, &nx);
			if (nx < next)
				next = nx;
		}
		if (now >= end)
			return NULL;
		timeout = next > now ? (int)(next - now) : 0;
		if (timeout > 20)
			timeout = 20;
		for (int i = 0; i < NNODES; i++) {
			pfd[i].fd = net->n[i].fd;
			pfd[i].events = POLLIN;
		}
		if (net->from_py >= 0) {
			pfd[NNODES].fd = net->from_py;
			pfd[NNODES].events = POLLIN;
			np++;
		}
		if (poll(pfd, (nfds_t)np, timeout) <= 0)
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
		if (np > NNODES && (pfd[NNODES].revents & (POLLIN | POLLHUP))) {
			ssize_t r = read(net->from_py, net->line + net->linelen,
					 sizeof(net->line) - net->linelen - 1);

			if (r <= 0) {
				close(net->from_py);
				net->from_py = -1;
			} else {
				net->linelen += (size_t)r;
			}
		}
	}
}

/* Wait (pumping) for the helper's next event; fails the test on timeout. */
static json_t *py_event(struct net *net, const char *ev)
{
	uint64_t end = util_now_ms() + 60000;

	while (util_now_ms() < end) {
		char *s = pump(net, 100, 1);
		json_t *j;

		if (!s) {
			if (net->from_py < 0)
				break;
			continue;
		}
		j = json_loads(s, 0, NULL);
		printf("# lt: %s\n", s);
		free(s);
		if (j && !strcmp(json_string_value(json_object_get(j, "ev")) ?: "", ev))
			return j;
		json_decref(j);
	}
	fail_msg("no '%s' event from the libtorrent helper", ev);
	return NULL;
}

static void py_cmd(struct net *net, json_t *cmd)
{
	char *s = json_dumps(cmd, JSON_COMPACT);
	size_t l = strlen(s);

	assert_int_equal(write(net->to_py, s, l), (ssize_t)l);
	assert_int_equal(write(net->to_py, "\n", 1), 1);
	free(s);
	json_decref(cmd);
}

struct waiter {
	int done;
	int status;
	int64_t seq;
	uint8_t v[1100];
	size_t vlen;
	uint8_t sig[64];
	struct sockaddr_storage peers[64];
	size_t npeers;
	unsigned int stored;
	uint8_t target[20];
};

static void on_done(void *arg, const struct dht_result *r)
{
	struct waiter *w = arg;

	w->done = 1;
	w->status = r->status;
	w->seq = r->seq;
	w->stored = r->stored;
	memcpy(w->target, r->target, 20);
	if (r->value) {
		memcpy(w->v, r->value, r->value_len);
		w->vlen = r->value_len;
	}
	if (r->sig)
		memcpy(w->sig, r->sig, 64);
	w->npeers = r->npeers < 64 ? r->npeers : 64;
	if (w->npeers)
		memcpy(w->peers, r->peers, w->npeers * sizeof(w->peers[0]));
}

static void wait_for(struct net *net, struct waiter *w)
{
	uint64_t end = util_now_ms() + 40000;

	while (!w->done && util_now_ms() < end)
		pump(net, 20, 0);
	assert_true(w->done);
}

static int free_udp_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), tfd = socket(AF_INET, SOCK_STREAM, 0), port;

	/* libtorrent listens on TCP and UDP with the same port: find one free for both */
	for (;;) {
		a.sin_port = 0;
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
		    getsockname(fd, (struct sockaddr *)&a, &al))
			return -1;
		if (!bind(tfd, (struct sockaddr *)&a, sizeof(a)))
			break;
		close(fd);
		fd = socket(AF_INET, SOCK_DGRAM, 0);
	}
	port = ntohs(a.sin_port);
	close(fd);
	close(tfd);
	return port;
}

static int setup(void **state)
{
	struct net *net = calloc(1, sizeof(*net));
	struct dht_limits lim = {0};
	char nodes[NNODES * 24] = "", helper[4096], portbuf[16];
	const char *top = getenv("TOP");
	int in[2], outp[2];

	*state = net;
	net->from_py = net->to_py = -1;
	net->pid = -1;
	if (access("/usr/bin/python3", X_OK))
		return 0;
	snprintf(helper, sizeof(helper), "%s/tests/lib/lt_dht.py", top ? top : ".");
	if (access(helper, R_OK))
		return 0;
	assert_int_equal(sodium_init() >= 0, 1);
	lim.budget_rate = 1000000; /* all peers share 127.0.0.1 */
	lim.budget_burst = 1000000;
	lim.query_timeout_ms = 1500;
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
		seed[1] = 0x17;
		kseed[0] = (uint8_t)(100 + i);
		crypto_sign_seed_keypair(n->pk, n->sk, kseed);
		n->fd = socket(AF_INET, SOCK_DGRAM, 0);
		n->addr.sin_family = AF_INET;
		n->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(n->fd, (struct sockaddr *)&n->addr, sizeof(n->addr)), 0);
		assert_int_equal(getsockname(n->fd, (struct sockaddr *)&n->addr, &al), 0);
		assert_int_equal(dht_new(&n->dht, &o), 0);
		snprintf(nodes + strlen(nodes), sizeof(nodes) - strlen(nodes), "%s127.0.0.1:%d",
			 i ? "," : "", ntohs(n->addr.sin_port));
	}
	for (int i = 1; i < NNODES; i++)
		dht_add_node(net->n[i].dht, (struct sockaddr *)&net->n[0].addr,
			     sizeof(net->n[0].addr), util_now_ms());
	pump(net, 1000, 0);
	net->lt_port = free_udp_port();
	snprintf(portbuf, sizeof(portbuf), "%d", net->lt_port);
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(outp), 0);
	net->pid = fork();
	assert_true(net->pid >= 0);
	if (net->pid == 0) {
		dup2(in[0], 0);
		dup2(outp[1], 1);
		close(in[1]);
		close(outp[0]);
		execl("/usr/bin/python3", "python3", helper, nodes, portbuf, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(outp[1]);
	net->to_py = in[1];
	net->from_py = outp[0];
	return 0;
}

static int teardown(void **state)
{
	struct net *net = *state;

	if (net->to_py >= 0) {
		if (write(net->to_py, "{\"cmd\":\"quit\"}\n", 15) < 0)
			kill(net->pid, SIGTERM);
		close(net->to_py);
	}
	if (net->pid > 0) {
		uint64_t end = util_now_ms() + 10000;
		int st;

		while (waitpid(net->pid, &st, WNOHANG) == 0) {
			if (util_now_ms() > end) {
				kill(net->pid, SIGKILL);
				waitpid(net->pid, &st, 0);
				break;
			}
			pump(net, 50, 0);
		}
	}
	if (net->from_py >= 0)
		close(net->from_py);
	for (int i = 0; i < NNODES; i++) {
		dht_free(net->n[i].dht);
		if (net->n[i].dht)
			close(net->n[i].fd);
	}
	free(net);
	return 0;
}

static void hex(char *out, const uint8_t *in, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
}

static void test_interop(void **state)
{
	struct net *net = *state;
	json_t *j;
	struct waiter w;
	uint8_t target[20], kseed[32], pk[32], sk[64], esk[64];
	char pkh[65], skh[129], th[41];
	int port_found = 0;

	if (net->pid < 0)
		skip();
	{
		char *s = pump(net, 30000, 1);

		if (!s)
			fail_msg("libtorrent helper did not start");
		if (!strncmp(s, "SKIP", 4)) {
			printf("%s\n", s);
			free(s);
			skip();
		}
		j = json_loads(s, 0, NULL);
		printf("# lt: %s\n", s);
		free(s);
		assert_non_null(j);
		assert_true(json_integer_value(json_object_get(j, "dht_nodes")) >= 1);
		json_decref(j);
	}

	/* 1. libtorrent puts an immutable item, weft reads it */
	py_cmd(net, json_pack("{s:s,s:s}", "cmd", "put_imm", "value", "lt-immutable-value"));
	j = py_event(net, "put_imm");
	assert_true(json_integer_value(json_object_get(j, "num_success")) >= 1);
	memset(target, 0, sizeof(target));
	for (int i = 0; i < 20; i++) {
		unsigned int v;

		sscanf(json_string_value(json_object_get(j, "target")) + 2 * i, "%2x", &v);
		target[i] = (uint8_t)v;
	}
	json_decref(j);
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_get(net->n[3].dht, target, NULL, NULL, 0, util_now_ms(), on_done, &w), 0);
	wait_for(net, &w);
	assert_int_equal(w.status, 0);
	assert_int_equal(w.vlen, strlen("18:lt-immutable-value"));
	assert_memory_equal(w.v, "18:lt-immutable-value", w.vlen);

	/* 2. libtorrent puts a salted mutable item (expanded key), weft reads and verifies it */
	memset(kseed, 0x33, sizeof(kseed));
	crypto_sign_seed_keypair(pk, sk, kseed);
	crypto_hash_sha512(esk, kseed, 32);
	esk[0] &= 248;
	esk[31] &= 127;
	esk[31] |= 64;
	hex(pkh, pk, 32);
	hex(skh, esk, 64);
	py_cmd(net, json_pack("{s:s,s:s,s:s,s:s,s:s}", "cmd", "put_mut", "pk", pkh, "sk", skh,
			      "salt", "lt-salt", "value", "lt-mutable"));
	j = py_event(net, "put_mut");
	assert_true(json_integer_value(json_object_get(j, "num_success")) >= 1);
	{
		int64_t seq = json_integer_value(json_object_get(j, "seq"));

		json_decref(j);
		memset(&w, 0, sizeof(w));
		assert_int_equal(dht_get(net->n[5].dht, NULL, pk, (const uint8_t *)"lt-salt", 7,
					 util_now_ms(), on_done, &w),
				 0);
		wait_for(net, &w);
		assert_int_equal(w.status, 0);
		assert_int_equal(w.seq, seq);
		assert_memory_equal(w.v, "10:lt-mutable", 13);
	}

	/* 3. weft puts an immutable item, libtorrent reads it */
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_put_immutable(net->n[2].dht, (const uint8_t *)"weft-immutable", 14,
					   util_now_ms(), on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.status, 0);
	hex(th, w.target, 20);
	py_cmd(net, json_pack("{s:s,s:s}", "cmd", "get_imm", "target", th));
	j = py_event(net, "get_imm");
	assert_string_equal(json_string_value(json_object_get(j, "value")) ?: "", "weft-immutable");
	json_decref(j);

	/* 4. weft puts a salted mutable item, libtorrent reads it (and checks the signature) */
	memset(&w, 0, sizeof(w));
	assert_int_equal(dht_put_mutable(net->n[6].dht, (const uint8_t *)"weft-mutable", 12,
					 (const uint8_t *)"weft-salt", 9, 0, util_now_ms(), on_done, &w),
			 0);
	wait_for(net, &w);
	assert_int_equal(w.status, 0);
	hex(pkh, net->n[6].pk, 32);
	py_cmd(net, json_pack("{s:s,s:s,s:s}", "cmd", "get_mut", "pk", pkh, "salt", "weft-salt"));
	j = py_event(net, "get_mut");
	assert_string_equal(json_string_value(json_object_get(j, "value")) ?: "", "weft-mutable");
	assert_int_equal(json_integer_value(json_object_get(j, "seq")), w.seq);
	{
		char sigh[129];

		hex(sigh, w.sig, 64);
		assert_string_equal(json_string_value(json_object_get(j, "sig")) ?: "", sigh);
	}
	json_decref(j);

	/* 5. weft announces, libtorrent's get_peers finds it */
	{
		uint8_t ih[20];

		crypto_generichash(ih, sizeof(ih), (const uint8_t *)"weft-announce", 13, NULL, 0);
		memset(&w, 0, sizeof(w));
		assert_int_equal(dht_announce(net->n[4].dht, ih, 7777, 0, util_now_ms(), on_done, &w),
				 0);
		wait_for(net, &w);
		assert_true(w.stored >= 1);
		hex(th, ih, 20);
		py_cmd(net, json_pack("{s:s,s:s}", "cmd", "get_peers", "ih", th));
		j = py_event(net, "get_peers");
		{
			json_t *p;
			size_t i;
			int found = 0;

			json_array_foreach(json_object_get(j, "peers"), i, p) found |=
			    !strcmp(json_string_value(p), "127.0.0.1:7777");
			assert_true(found);
		}
		json_decref(j);
	}

	/* 6. libtorrent announces (tracker-less torrent), weft's get_peers finds its port */
	{
		uint8_t ih[20];
		uint64_t end;

		crypto_generichash(ih, sizeof(ih), (const uint8_t *)"lt-announce", 11, NULL, 0);
		hex(th, ih, 20);
		py_cmd(net, json_pack("{s:s,s:s}", "cmd", "announce", "ih", th));
		j = py_event(net, "announce");
		json_decref(j);
		end = util_now_ms() + 30000;
		while (!port_found && util_now_ms() < end) {
			memset(&w, 0, sizeof(w));
			assert_int_equal(dht_get_peers(net->n[7].dht, ih, util_now_ms(), on_done, &w),
					 0);
			wait_for(net, &w);
			for (size_t i = 0; i < w.npeers; i++)
				port_found |=
				    ntohs(((struct sockaddr_in *)&w.peers[i])->sin_port) ==
				    net->lt_port;
			if (!port_found)
				pump(net, 1000, 0);
		}
		assert_true(port_found);
	}

	/* 7. every query libtorrent sent was answered, none with an error */
	{
		uint64_t q[DHT_Q_COUNT] = {0}, errs = 0, malformed = 0, budget = 0;

		for (int i = 0; i < NNODES; i++) {
			struct dht_stats st;

			dht_get_stats(net->n[i].dht, &st);
			for (int k = 0; k < DHT_Q_COUNT; k++)
				q[k] += st.queries_in[k];
			for (int k = 0; k < 10; k++)
				errs += st.errors_out[k];
			malformed += st.dropped_malformed;
			budget += st.dropped_budget;
		}
		for (int k = 0; k < DHT_Q_COUNT; k++)
			printf("# weft answered %-14s %llu\n", dht_stat_q_names[k],
			       (unsigned long long)q[k]);
		assert_int_equal(errs, 0);
		assert_int_equal(malformed, 0);
		assert_int_equal(budget, 0);
		assert_true(q[DHT_Q_GET] > 0 && q[DHT_Q_PUT] > 0 && q[DHT_Q_GET_PEERS] > 0 &&
			    q[DHT_Q_ANNOUNCE] > 0 && q[DHT_Q_FIND_NODE] + q[DHT_Q_PING] > 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_interop, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("dht_lt", tests, NULL, NULL);
}
