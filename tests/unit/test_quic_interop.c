// SPDX-License-Identifier: MIT
/*
 * Interop over real UDP on 127.0.0.1 with ngtcp2's own example programs
 * (Debian ngtcp2-server / ngtcp2-client, HTTP/3, ALPN h3):
 *  - our endpoint as client against gtlsserver presenting OUR node-key
 *    certificate: handshake, key extracted from a foreign TLS stack's
 *    certificate, an HTTP/3 GET and the file body back;
 *  - gtlsclient (with a node-key client certificate) against our endpoint as
 *    server: mutual authentication, the request arrives, our response makes
 *    gtlsclient exit 0.
 * Skips when the programs are not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <sodium.h>

#include <weft/quic.h>

#include "testutil.h"

#define SERVER_BIN "/usr/sbin/gtlsserver"
#define CLIENT_BIN "/usr/bin/gtlsclient"
#define BODY "weft interop body\n"

struct io {
	int fd;
	struct sockaddr_in local;
	struct quic_ep *ep;
	struct quic_conn *conn;
	int connected, closed;
	uint8_t peer[QUIC_KEY_LEN];
	/* request stream (client role) / first request (server role) */
	int64_t req_sid;
	uint8_t rx[65536];
	size_t rx_len;
	int rx_fin;
	uint64_t uni_rx;   /* bytes on peer-opened uni streams (H3 control, QPACK) */
	int responded;
};

/* The child of the running test, killed by the teardown if an assertion
 * ends the test early. */
static pid_t child = -1;

static int teardown(void **state)
{
	int st;

	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, &st, 0);
	}
	child = -1;
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int udp_send(void *arg, const uint8_t *buf, size_t len, size_t gso,
		    const struct sockaddr *to, socklen_t tolen, const struct sockaddr *local)
{
	struct io *io = arg;

	while (len > 0) {
		size_t n = len < gso ? len : gso;

		if (sendto(io->fd, buf, n, 0, to, tolen) < 0)
			return -errno;
		buf += n;
		len -= n;
	}
	return 0;
}

static void on_conn(void *arg, struct quic_conn *c, const uint8_t *peer)
{
	struct io *io = arg;

	io->connected = 1;
	io->conn = c;
	memcpy(io->peer, peer, QUIC_KEY_LEN);
}

static void on_data(void *arg, struct quic_conn *c, int64_t sid, const uint8_t *d, size_t len,
		    int fin)
{
	struct io *io = arg;

	if (sid & 0x2) {
		io->uni_rx += len;
		return;
	}
	if (io->req_sid < 0)
		io->req_sid = sid;
	if (sid != io->req_sid)
		return;
	if (len > sizeof(io->rx) - io->rx_len)
		len = sizeof(io->rx) - io->rx_len;
	memcpy(io->rx + io->rx_len, d, len);
	io->rx_len += len;
	io->rx_fin |= fin;
}

static void on_closed(void *arg, struct quic_conn *c, const struct quic_close_info *info)
{
	struct io *io = arg;

	io->closed = 1;
	io->conn = NULL;
}

/* Who protects our endpoints' 1-RTT packets (default: auto); the suite
 * gtlsclient_run's connection negotiated. */
static enum quic_aead g_aead = QUIC_AEAD_AUTO;
static char g_cipher[24];

static void io_init(struct io *io, const uint8_t *pk, const uint8_t *sk, int server)
{
	struct quic_ep_opts o;
	socklen_t sl = sizeof(io->local);

	memset(io, 0, sizeof(*io));
	io->req_sid = -1;
	io->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(io->fd >= 0);
	io->local.sin_family = AF_INET;
	io->local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(io->fd, (struct sockaddr *)&io->local, sizeof(io->local)), 0);
	assert_int_equal(getsockname(io->fd, (struct sockaddr *)&io->local, &sl), 0);
	memset(&o, 0, sizeof(o));
	o.node_pk = pk;
	o.node_sk = sk;
	o.local = (struct sockaddr *)&io->local;
	o.local_len = sizeof(io->local);
	o.alpn = "h3";
	o.server = server;
	o.send = udp_send;
	o.send_arg = io;
	o.cb.on_conn = on_conn;
	o.cb.on_stream_data = on_data;
	o.cb.on_closed = on_closed;
	o.cb_arg = io;
	o.aead = g_aead;
	assert_int_equal(quic_ep_new(&io->ep, &o), 0);
}

static void io_free(struct io *io)
{
	quic_ep_free(io->ep);
	close(io->fd);
}

/* One turn of the event loop: wait for a datagram or the next timer. */
static void io_step(struct io *io, int max_ms)
{
	struct pollfd p = { .fd = io->fd, .events = POLLIN };
	uint64_t exp = quic_ep_expiry(io->ep), now = now_ns();
	int ms = max_ms;
	uint8_t buf[65536];
	struct sockaddr_in from;
	socklen_t fl;
	ssize_t n;

	if (exp != UINT64_MAX)
		ms = exp <= now ? 0 : (int)((exp - now) / 1000000 + 1);
	if (ms > max_ms)
		ms = max_ms;
	if (poll(&p, 1, ms) > 0) {
		for (;;) {
			fl = sizeof(from);
			n = recvfrom(io->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from,
				     &fl);
			if (n < 0)
				break;
			quic_ep_input(io->ep, buf, (size_t)n, NULL, 0, (struct sockaddr *)&from, fl,
				      now_ns());
		}
	}
	if (quic_ep_expiry(io->ep) <= now_ns())
		quic_ep_handle_expiry(io->ep, now_ns());
}

static pid_t spawn(char *const argv[], const char *dir)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int log;

		if (dir && chdir(dir) != 0)
			_exit(126);
		log = open("prog.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(log, 1);
		dup2(log, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	child = pid;
	return pid;
}

static void mk_tmpdir(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/weft-quic-interop-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void rm_tmpdir(const char *dir)
{
	char path[512];
	static const char *const names[] = { "key.pem", "cert.pem", "index.html", "prog.log" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void test_client_vs_gtlsserver(void **state)
{
	uint8_t pk[32], sk[64], cpk[32], csk[64];
	char dir[64], key[128], cert[128], idx[128], port_s[16];
	struct sockaddr_in srv = { .sin_family = AF_INET };
	struct io io;
	pid_t pid;
	uint64_t deadline;
	int port, fd, status;
	/* HTTP/3: control stream (type 0) with an empty SETTINGS frame. */
	static const uint8_t control[] = { 0x00, 0x04, 0x00 };
	/* HEADERS frame, QPACK with the static table only:
	 * :method GET (17), :scheme https (23), :path / (1),
	 * :authority (0) = "localhost" as a literal with a name reference. */
	static const uint8_t get[] = { 0x01, 0x10, 0x00, 0x00, 0xd1, 0xd7, 0xc1, 0x50, 0x09,
				       'l',  'o',  'c',  'a',  'l',  'h',  'o',  's',  't' };
	int64_t csid;

	if (access(SERVER_BIN, X_OK) != 0)
		skip();
	crypto_sign_keypair(pk, sk);
	mk_tmpdir(dir, sizeof(dir));
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(idx, sizeof(idx), "%s/index.html", dir);
	assert_int_equal(quic_cert_write_pem(pk, sk, key, cert), 0);
	fd = open(idx, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, BODY, strlen(BODY)), (ssize_t)strlen(BODY));
	close(fd);
	port = tu_free_udp_port();
	assert_true(port > 0);
	snprintf(port_s, sizeof(port_s), "%d", port);
	{
		char *argv[] = { SERVER_BIN, "-d", dir, "127.0.0.1", port_s, key, cert, NULL };

		pid = spawn(argv, dir);
	}
	srv.sin_port = htons((uint16_t)port);
	srv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	crypto_sign_keypair(cpk, csk);
	io_init(&io, cpk, csk, 0);
	deadline = now_ns() + 20ULL * 1000000000ULL;
	/* The server may not listen yet: retry the dial until it answers. */
	while (!io.connected && now_ns() < deadline) {
		struct quic_conn *c;

		if (!io.conn) {
			assert_int_equal(quic_ep_connect(io.ep, (struct sockaddr *)&srv, sizeof(srv),
							 NULL, now_ns(), &c),
					 0);
			io.conn = c;
			io.closed = 0;
		}
		io_step(&io, 200);
	}
	assert_true(io.connected);
	/* gtlsserver presented our node certificate: the key is ours. */
	assert_memory_equal(io.peer, pk, 32);
	assert_int_equal(quic_stream_open(io.conn, 0, &csid), 0);
	assert_int_equal(quic_stream_send(io.conn, csid, control, sizeof(control), 0),
			 sizeof(control));
	assert_int_equal(quic_stream_open(io.conn, 1, &io.req_sid), 0);
	assert_int_equal(quic_stream_send(io.conn, io.req_sid, get, sizeof(get), 1), sizeof(get));
	while (!io.rx_fin && !io.closed && now_ns() < deadline)
		io_step(&io, 200);
	assert_true(io.rx_fin);
	/* The response: a HEADERS frame first, the file in a DATA frame. */
	assert_true(io.rx_len > strlen(BODY));
	assert_int_equal(io.rx[0], 0x01);
	assert_memory_equal(io.rx + io.rx_len - strlen(BODY), BODY, strlen(BODY));
	assert_true(io.uni_rx > 0); /* server's control stream arrived */
	assert_int_equal(quic_conn_close(io.conn, 0x100 /* H3_NO_ERROR */, ""), 0);
	io_free(&io);
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	child = -1;
	rm_tmpdir(dir);
}

/* Run gtlsclient (with a node-key client certificate) against our endpoint
 * as server; version: its -v argument (NULL: its default, v1); extra: one
 * more argument (NULL: none); hold_ms: the answer in four parts, hold_ms
 * apart from the request on (0: at once).
 * Returns our endpoint's statistics; asserts the exchange completed. */
static struct quic_ep_stats gtlsclient_run(const char *version, const char *preferred,
					   const char *extra, const char *extra2,
					   unsigned int hold_ms)
{
	uint8_t pk[32], sk[64], cpk[32], csk[64];
	char dir[64], key[128], cert[128], port_s[16], uri[64];
	struct quic_ep_stats st;
	struct io io;
	pid_t pid, r = 0;
	uint64_t deadline, asked = 0;
	int status = -1, part = 0;
	/* :status 200 (static index 25), then the body in a DATA frame. */
	static const uint8_t resp[] = { 0x01, 0x03, 0x00, 0x00, 0xd9, 0x00, 0x05,
					'h',  'e',  'l',  'l',  'o' };

	g_cipher[0] = 0;
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(cpk, csk);
	mk_tmpdir(dir, sizeof(dir));
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	/* gtlsclient authenticates with a node-key certificate of its own. */
	assert_int_equal(quic_cert_write_pem(cpk, csk, key, cert), 0);
	io_init(&io, pk, sk, 1);
	snprintf(port_s, sizeof(port_s), "%u", ntohs(io.local.sin_port));
	snprintf(uri, sizeof(uri), "https://127.0.0.1:%u/", ntohs(io.local.sin_port));
	{
		char *argv[] = { CLIENT_BIN, "--exit-on-all-streams-close", "--key", key,
				 "--cert", cert, "127.0.0.1", port_s, uri, NULL, NULL, NULL, NULL, NULL };
		char vopt[64], popt[64];
		int n = 9;

		if (version) {
			/* Start with that version; after Version Negotiation
			 * retry with v1, the one weft speaks (gtlsclient wants
			 * the first version among the preferred ones unless it
			 * is a reserved one). */
			snprintf(vopt, sizeof(vopt), "--version=%s", version);
			argv[n++] = vopt;
		}
		if (preferred) {
			snprintf(popt, sizeof(popt), "--preferred-versions=%s", preferred);
			argv[n++] = popt;
		}
		if (extra)
			argv[n++] = (char *)extra;
		if (extra2)
			argv[n++] = (char *)extra2;
		pid = spawn(argv, dir);
	}
	deadline = now_ns() + 20ULL * 1000000000ULL;
	while (now_ns() < deadline) {
		io_step(&io, 100);
		if (io.connected && io.rx_fin && !asked)
			asked = now_ns();
		if (asked && io.conn && !g_cipher[0]) {
			struct quic_conn_info in;

			assert_int_equal(quic_conn_get_info(io.conn, &in), 0);
			memcpy(g_cipher, in.cipher, sizeof(g_cipher));
		}
		if (!hold_ms && asked && !io.responded && io.conn) {
			/* A complete request: answer it. */
			assert_int_equal(quic_stream_send(io.conn, io.req_sid, resp, sizeof(resp), 1),
					 sizeof(resp));
			io.responded = 1;
		}
		/* Held: the answer in four parts hold_ms apart (HEADERS, the
		 * DATA frame's header, two pieces of its body), each part
		 * acknowledged before the next one leaves. */
		while (hold_ms && asked && part < 4 && io.conn &&
		       now_ns() - asked >= (uint64_t)(part + 1) * hold_ms * 1000000ULL) {
			static const size_t cut[5] = { 0, 5, 7, 9, sizeof(resp) };

			assert_int_equal(quic_stream_send(io.conn, io.req_sid, resp + cut[part],
							  cut[part + 1] - cut[part], part == 3),
					 (ssize_t)(cut[part + 1] - cut[part]));
			if (++part == 4)
				io.responded = 1;
		}
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
	}
	if (r != pid) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	child = -1;
	assert_true(io.connected);
	assert_memory_equal(io.peer, cpk, 32); /* mutual authentication */
	assert_true(io.rx_len > 0);
	assert_int_equal(io.rx[0], 0x01); /* the request starts with HEADERS */
	assert_true(io.responded);
	assert_int_equal(r, pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	quic_ep_get_stats(io.ep, &st);
	io_free(&io);
	rm_tmpdir(dir);
	return st;
}

static uint64_t gtlsclient_vs_server(const char *version, const char *preferred)
{
	return gtlsclient_run(version, preferred, NULL, NULL, 0).version_negotiations;
}

static void test_gtlsclient_vs_server(void **state)
{
	if (access(CLIENT_BIN, X_OK) != 0)
		skip();
	assert_int_equal(gtlsclient_vs_server(NULL, NULL), 0);
}

/* A client starting with another version (ngtcp2 0.12 speaks draft-29 and
 * the provisional v2, 0x709a50c4; 0x1a2a3a4a is one nobody speaks) gets
 * Version Negotiation listing v1, and the connection then completes in v1. */
static void test_gtlsclient_other_versions(void **state)
{
	static const char *const versions[][2] = {
		{ "0xff00001d", "0xff00001d,v1" },
		{ "v2draft", "v2draft,v1" },
		{ "0x1a2a3a4a", "v1" },
	};
	size_t i;

	if (access(CLIENT_BIN, X_OK) != 0)
		skip();
	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		assert_true(gtlsclient_vs_server(versions[i][0], versions[i][1]) >= 1);
}

/* An independent stack's key update, and AES-256-GCM, against the AES-GCM
 * the endpoint runs (weft's own where the CPU has VAES, docs/QUIC.md
 * "AES-GCM on wide vectors"): gtlsclient offers only AES-256-GCM, then
 * the default suites, and updates its keys 50 ms after the handshake;
 * the answer comes in four parts 300 ms apart, so they travel under the
 * next keys, which gtlsclient accepted (exit 0). ngtcp2 derives next keys
 * once a connection is confirmed, and again only once a key update is
 * confirmed (a part acknowledged in the new phase) and another part
 * leaves: two derivations show the update happened on our side (a part
 * to spare for a loaded machine's late timers). Both with `auto`
 * and with GnuTLS on our side. */
static void test_gtlsclient_key_update(void **state)
{
	static const char *const ciphers[] = {
		"--ciphers=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM", NULL };
	struct quic_ep_stats st;
	size_t i;

	if (access(CLIENT_BIN, X_OK) != 0)
		skip();
	for (i = 0; i < 4; i++) {
		/* our side on weft's AES-GCM where the CPU has VAES, then GnuTLS */
		g_aead = i < 2 ? QUIC_AEAD_AUTO : QUIC_AEAD_GNUTLS;
		st = gtlsclient_run(NULL, NULL, ciphers[i % 2], NULL, 300);
		assert_int_equal(st.next_keys, 1);
		st = gtlsclient_run(NULL, NULL, "--key-update=50ms", ciphers[i % 2], 300);
		if (st.next_keys < 2)
			fail_msg("run %zu (%s, %s): %llu next keys", i, i < 2 ? "auto" : "gnutls",
				 ciphers[i % 2] ? "AES-256-GCM" : "default suites",
				 (unsigned long long)st.next_keys);
	}
	g_aead = QUIC_AEAD_AUTO;
}

/* Our order of suites wins (%SERVER_PRECEDENCE): a client that prefers
 * ChaCha20-Poly1305 but offers AES-128-GCM gets AES-128-GCM (weft's
 * AES-GCM where the CPU has VAES, about 18x cheaper a packet than
 * GnuTLS's ChaCha20 on the Intel host); one that offers only ChaCha20
 * still connects, with it. */
static void test_gtlsclient_suite_order(void **state)
{
	if (access(CLIENT_BIN, X_OK) != 0)
		skip();
	gtlsclient_run(NULL, NULL,
		       "--ciphers=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305:"
		       "+AES-256-GCM:+AES-128-GCM",
		       NULL, 0);
	assert_string_equal(g_cipher, "AES-128-GCM");
	gtlsclient_run(NULL, NULL,
		       "--ciphers=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305", NULL,
		       0);
	assert_string_equal(g_cipher, "CHACHA20-POLY1305");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_client_vs_gtlsserver, teardown),
		cmocka_unit_test_teardown(test_gtlsclient_vs_server, teardown),
		cmocka_unit_test_teardown(test_gtlsclient_other_versions, teardown),
		cmocka_unit_test_teardown(test_gtlsclient_key_update, teardown),
		cmocka_unit_test_teardown(test_gtlsclient_suite_order, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("quic_interop", tests, NULL, NULL);
}
