// SPDX-License-Identifier: MIT
/*
 * XDP fast-path benchmark harness (never run by make test).
 *
 *   bench_xdp [--repeat N]          ns/packet under BPF test-run for: pass
 *                                   (not weft), redirect (accepted, no socket
 *                                   under test-run), drop banned, drop
 *                                   rate-limited, plus the software policer
 *   bench_xdp attach IFNAME SECONDS [BANCIDR]
 *                                   attach to IFNAME (native mode), optionally
 *                                   ban BANCIDR, sleep, print counters as
 *                                   "name value" lines (used by bench/xdp.sh)
 *   bench_xdp flood DSTIP PORT SECONDS
 *                                   send 64-byte-payload DHT-looking UDP
 *                                   datagrams as fast as sendmmsg allows;
 *                                   prints "sent N"
 *   bench_xdp sink PORT SECONDS     recvmmsg loop that counts and drops;
 *                                   prints "received N"
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "weft/policer.h"
#include "weft/util.h"
#include "weft/xdp.h"
#include "../tests/unit/xdp_testpkt.h"

#define BATCH 64

static double run_ns(struct wxdp *x, const uint8_t *pkt, size_t len, unsigned int repeat,
		     unsigned int *retval)
{
	uint8_t out[TPKT_MAX];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = (__u32)len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = repeat);

	if (bpf_prog_test_run_opts(wxdp_fd(x, WXDP_FD_PROG), &o)) {
		perror("bpf_prog_test_run_opts");
		exit(1);
	}
	*retval = o.retval;
	return o.duration; /* kernel: average ns per run */
}

static int bench_testrun(unsigned int repeat)
{
	static const char dht[] = "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:xx1:y1:qe";
	struct wxdp_opts xo = { .no_attach = 1 };
	struct wxdp_config c;
	struct wxdp_ban b;
	struct wxdp *x = NULL;
	struct policer *p = NULL;
	struct tpkt t = { 0 };
	uint8_t buf[TPKT_MAX];
	unsigned int rv = 0;
	double ns;
	size_t len;
	int err;

	err = wxdp_new(&x, &xo);
	if (err) {
		fprintf(stderr, "load: %s\n", strerror(-err));
		return 1;
	}
	wxdp_config_get(x, &c);
	tpkt_v4(&t, 1);
	t.sport = 40000;
	t.payload = (const uint8_t *)dht;
	t.plen = sizeof(dht) - 1;
	printf("%-28s %10s %8s\n", "case (IPv4, 56-byte DHT)", "ns/packet", "action");

	t.dport = 5353;
	len = tpkt_build(buf, &t);
	ns = run_ns(x, buf, len, repeat, &rv);
	printf("%-28s %10.1f %8u\n", "pass (not weft)", ns, rv);

	c.dht.pps = 0; /* unlimited: every run is accepted */
	wxdp_config_set(x, &c);
	t.dport = 6881;
	len = tpkt_build(buf, &t);
	ns = run_ns(x, buf, len, repeat, &rv);
	printf("%-28s %10.1f %8u\n", "redirect (no socket: pass)", ns, rv);

	wxdp_cidr_parse("192.0.2.0/24", &b);
	wxdp_ban_add(x, &b);
	ns = run_ns(x, buf, len, repeat, &rv);
	printf("%-28s %10.1f %8u\n", "drop banned", ns, rv);
	wxdp_ban_del(x, &b);

	c.dht.pps = 1;
	c.dht.burst = 1;
	wxdp_config_set(x, &c);
	ns = run_ns(x, buf, len, repeat, &rv);
	printf("%-28s %10.1f %8u\n", "drop rate-limited", ns, rv);

	/* The software policer on the same decision, for comparison. */
	if (!policer_new(&p, &(struct policer_opts){ .config = &c, .seed = 1 })) {
		struct policer_pkt k = { .family = AF_INET, .dport = 6881,
					 .payload = (const uint8_t *)dht, .len = sizeof(dht) - 1 };
		uint64_t t0, n = repeat;

		memcpy(k.src, t.src, 4);
		t0 = util_now_ns();
		for (uint64_t i = 0; i < n; i++) {
			k.now_ns = t0;
			policer_check(p, &k);
		}
		printf("%-28s %10.1f %8s\n", "policer drop rate-limited",
		       (double)(util_now_ns() - t0) / (double)n, "-");
		policer_free(p);
	}
	printf("(XDP actions: 1 = drop, 2 = pass; repeat %u; kernel-measured)\n", repeat);
	wxdp_free(x);
	return 0;
}

static int attach(const char *ifname, int seconds, const char *cidr)
{
	struct wxdp_opts xo = { .ifname = ifname, .pin_root = "" };
	uint64_t st[WXDP_STAT__MAX];
	struct wxdp *x = NULL;
	int err;

	err = wxdp_new(&x, &xo);
	if (err)
		return 1;
	if (cidr) {
		struct wxdp_ban b;

		if (wxdp_cidr_parse(cidr, &b) || wxdp_ban_add(x, &b)) {
			fprintf(stderr, "bad ban %s\n", cidr);
			wxdp_free(x);
			return 1;
		}
	}
	printf("attached\n");
	fflush(stdout);
	sleep((unsigned int)seconds);
	wxdp_stats_read(x, st);
	for (unsigned int i = 0; i < WXDP_STAT__MAX; i++)
		printf("%s %llu\n", wxdp_stat_name(i), (unsigned long long)st[i]);
	wxdp_free(x);
	return 0;
}

static int flood(const char *ip, int port, int seconds)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct mmsghdr msgs[BATCH];
	struct iovec iov;
	char payload[64];
	uint64_t end, sent = 0;
	int fd, n;

	if (inet_pton(AF_INET, ip, &to.sin_addr) != 1)
		return 2;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return 1;
	memset(payload, 'x', sizeof(payload));
	payload[0] = 'd';
	iov.iov_base = payload;
	iov.iov_len = sizeof(payload);
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		msgs[i].msg_hdr.msg_name = &to;
		msgs[i].msg_hdr.msg_namelen = sizeof(to);
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	end = util_now_ns() + (uint64_t)seconds * 1000000000ULL;
	while (util_now_ns() < end) {
		n = sendmmsg(fd, msgs, BATCH, 0);
		if (n > 0)
			sent += (uint64_t)n;
	}
	close(fd);
	printf("sent %llu\n", (unsigned long long)sent);
	return 0;
}

static int sink(int port, int seconds)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	static char bufs[BATCH][2048];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	uint64_t end, got = 0;
	int fd, n, rcvbuf = 8 << 20;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("sink");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	printf("ready\n");
	fflush(stdout);
	end = util_now_ns() + (uint64_t)seconds * 1000000000ULL;
	while (util_now_ns() < end) {
		n = recvmmsg(fd, msgs, BATCH, 0, NULL);
		if (n > 0)
			got += (uint64_t)n;
	}
	close(fd);
	printf("received %llu\n", (unsigned long long)got);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "attach"))
		return attach(argv[2], atoi(argv[3]), argc > 4 ? argv[4] : NULL);
	if (argc == 5 && !strcmp(argv[1], "flood"))
		return flood(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "sink"))
		return sink(atoi(argv[2]), atoi(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "--repeat"))
		return bench_testrun((unsigned int)atoi(argv[2]));
	if (argc == 1)
		return bench_testrun(1000000);
	fprintf(stderr, "usage: see the comment at the top of bench/bench_xdp.c\n");
	return 2;
}
