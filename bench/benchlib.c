// SPDX-License-Identifier: MIT
/* benchlib: pinning, threaded NAPI, CPU accounting, JSON results (benchlib.h). */
#include "benchlib.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <jansson.h>
#include <linux/bpf.h>

#include "quic/gcm.h"

#define BENCH_SCHEMA "weft-bench/1"

struct bench_result {
	json_t *root;
	json_t *params, *figures, *ratios, *notes, *series;
	json_t *by_id; /* figure id -> value, for ratios */
	char name[64];
	char started[32];
};

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int bench_mkdtemp(char *buf, size_t len, const char *dflt, const char *name)
{
	const char *t = getenv("TMPDIR");
	int n, e;

	if (!len)
		return -EINVAL;
	buf[0] = 0;
	if (!t || t[0] != '/' || strchr(t, '\''))
		t = dflt;
	n = snprintf(buf, len, "%s/%s.XXXXXX", t, name);
	if (n >= 0 && (size_t)n >= len && t != dflt) /* too long here: dflt */
		n = snprintf(buf, len, "%s/%s.XXXXXX", t = dflt, name);
	if (n < 0 || (size_t)n >= len) {
		buf[0] = 0;
		return -ENAMETOOLONG;
	}
	if (!mkdtemp(buf)) {
		e = errno;
		buf[0] = 0;
		return -e;
	}
	return 0;
}

int bench_pin(int cpu)
{
	cpu_set_t s;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return -pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

/* Calls fn(pid, arg) for every NAPI kernel thread of ifname; returns how
 * many fn accepted (returned 1), or a negative errno. */
static int napi_each(const char *ifname, int (*fn)(int pid, void *arg), void *arg)
{
	char prefix[64], path[64], comm[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	if (!ifname || (size_t)snprintf(prefix, sizeof(prefix), "napi/%s-", ifname) >= sizeof(prefix))
		return -EINVAL;
	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		int pid = atoi(de->d_name), hit;
		FILE *f;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		hit = fgets(comm, sizeof(comm), f) && !strncmp(comm, prefix, strlen(prefix));
		fclose(f);
		if (hit)
			n += fn(pid, arg);
	}
	closedir(d);
	return n;
}

static int pin_one(int pid, void *arg)
{
	return sched_setaffinity(pid, sizeof(cpu_set_t), arg) == 0;
}

int bench_pin_napi(const char *ifname, int cpu)
{
	cpu_set_t s;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return napi_each(ifname, pin_one, &s);
}

static int fifo_one(int pid, void *arg)
{
	struct sched_param sp = { .sched_priority = *(const int *)arg };

	return sched_setscheduler(pid, SCHED_FIFO, &sp) == 0;
}

int bench_napi_fifo(const char *ifname, int prio)
{
	return napi_each(ifname, fifo_one, &prio);
}

long long bench_thread_cpu_ns(int pid, int tid)
{
	char path[96];
	long long ns = -1;
	FILE *f;

	if (tid <= 0)
		snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	else
		snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", pid, tid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	if (fscanf(f, "%lld", &ns) != 1 || ns < 0)
		ns = -EIO;
	fclose(f);
	return ns;
}

long long bench_proc_cpu_ns(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	long hz = sysconf(_SC_CLK_TCK);
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* The command name may hold spaces and parentheses: fields count
	 * from the last ')'; utime and stime are fields 14 and 15. */
	p = strrchr(buf, ')');
	if (!p || hz <= 0 ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -EIO;
	return (long long)((ut + st) * (1000000000ULL / (unsigned long long)hz));
}

static int napi_add_cpu(int pid, void *arg)
{
	long long ns = bench_thread_cpu_ns(pid, 0);

	if (ns > 0)
		*(long long *)arg += ns;
	return 1;
}

double bench_thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct probe {
	int cpu, rounds;
	double ns;
};

static void *probe_run(void *arg)
{
	struct probe *pr = arg;
	uint8_t key[16] = {7}, nonce[QUIC_GCM_NONCE_LEN] = {1}, aad[22] = {3}, *pt, *ct;
	struct quic_gcm_key *k = NULL;

	pr->ns = -ENOMEM;
	pt = calloc(1, 1420);
	ct = calloc(1, 1420 + 16);
	if (bench_pin(pr->cpu)) {
		pr->ns = -EINVAL;
	} else if (pt && ct && quic_gcm_key_new(&k, key, 16, quic_gcm_impl_best()) == 0) {
		for (int r = 0; r < pr->rounds; r++) {
			double ns = bench_thread_cpu_s();

			for (int i = 0; i < 20000; i++) {
				nonce[11] = (uint8_t)i;
				quic_gcm_seal(k, ct, nonce, aad, sizeof(aad), pt, 1420);
			}
			ns = (bench_thread_cpu_s() - ns) * 1e9 / 20000;
			if (!r || ns < pr->ns)
				pr->ns = ns;
		}
		quic_gcm_key_free(k);
	}
	free(pt);
	free(ct);
	return NULL;
}

double bench_cpu_probe_ns(int cpu, int rounds)
{
	struct probe pr = {cpu, rounds > 0 ? rounds : 1, -EINVAL};
	pthread_t t;

	if (quic_gcm_impl_best() == QUIC_GCM_NONE)
		return -ENOTSUP;
	if (pthread_create(&t, NULL, probe_run, &pr))
		return -EAGAIN;
	pthread_join(t, NULL);
	return pr.ns;
}

long long bench_napi_cpu_ns(const char *ifname)
{
	long long sum = 0;

	napi_each(ifname, napi_add_cpu, &sum);
	return sum;
}

static int safe_name(const char *s)
{
	if (!s || !*s || strlen(s) > 63)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
			return 0;
	return 1;
}

int bench_napi_threaded(const char *netns, const char *dev)
{
	char cmd[256];

	if (!safe_name(dev) || (netns && !safe_name(netns)))
		return -EINVAL;
	/* sysfs shows the namespace it was mounted in: "ip netns exec" mounts
	 * the target namespace's sysfs for the command it runs. */
	if (netns)
		snprintf(cmd, sizeof(cmd),
			 "ip netns exec %s sh -c 'echo 1 > /sys/class/net/%s/threaded'", netns,
			 dev);
	else
		snprintf(cmd, sizeof(cmd), "sh -c 'echo 1 > /sys/class/net/%s/threaded'", dev);
	return system(cmd) == 0 ? 0 : -EIO;
}

int bench_cpu_snap(struct bench_cpu *c)
{
	char line[512];
	FILE *f = fopen("/proc/stat", "r");

	memset(c, 0, sizeof(*c));
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v[8] = {0}, t = 0;
		int cpu, i;

		if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0],
			   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 9 ||
		    cpu < 0 || cpu >= BENCH_MAX_CPUS)
			continue;
		for (i = 0; i < 8; i++)
			t += v[i];
		c->total[cpu] = t;
		c->busy[cpu] = t - v[3] - v[4];
		if (cpu + 1 > c->ncpu)
			c->ncpu = cpu + 1;
	}
	fclose(f);
	return 0;
}

double bench_cpu_busy(const struct bench_cpu *a, const struct bench_cpu *b, int cpu)
{
	unsigned long long t;

	if (cpu < 0 || cpu >= BENCH_MAX_CPUS || b->total[cpu] <= a->total[cpu] ||
	    b->busy[cpu] < a->busy[cpu])
		return 0;
	t = b->total[cpu] - a->total[cpu];
	return 100.0 * (double)(b->busy[cpu] - a->busy[cpu]) / (double)t;
}

/* ---- veth pair ---- */

const unsigned char bench_mac_a[6] = { 2, 0x77, 0, 0, 0, 1 }, bench_mac_b[6] = { 2, 0x77, 0, 0, 0, 2 };

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* The pairs of harnesses that ended without removing them (killed, or
 * cut off by a pipe before bench_veth_new ignored SIGPIPE): a namespace
 * "wb<tag>A<pid>" / "wb<tag>B<pid>" whose pid runs no more is removed. */
static void veth_sweep_stale(void)
{
	DIR *d = opendir("/run/netns");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		const char *n = e->d_name, *p;
		size_t t;
		char *end;
		long pid;

		if (strncmp(n, "wb", 2))
			continue;
		t = strspn(n + 2, "abcdefghijklmnopqrstuvwxyz");
		p = n + 2 + t;
		if (t < 1 || t > 4 || (*p != 'A' && *p != 'B') || !isdigit((unsigned char)p[1]))
			continue;
		pid = strtol(p + 1, &end, 10);
		if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 ||
		    errno != ESRCH)
			continue;
		if (sh("ip netns del %s 2>/dev/null", n) == 0)
			fprintf(stderr,
				"netns: removed %s, left by a harness that ended without it\n", n);
	}
	closedir(d);
}

int bench_veth_new(struct bench_veth *v, const char *tag)
{
	const char *a = v->ns_a, *b = v->ns_b;

	/* a reader gone (| head) makes a write fail, not end the harness
	 * before it removes its pair */
	signal(SIGPIPE, SIG_IGN);
	veth_sweep_stale();
	memset(v, 0, sizeof(*v));
	v->orig_ns = -1;
	if (!tag || strlen(tag) > 4 || strspn(tag, "abcdefghijklmnopqrstuvwxyz") != strlen(tag))
		return -EINVAL;
	snprintf(v->ns_a, sizeof(v->ns_a), "wb%sA%d", tag, (int)getpid());
	snprintf(v->ns_b, sizeof(v->ns_b), "wb%sB%d", tag, (int)getpid());
	v->orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (v->orig_ns < 0)
		return -errno;
	if (sh("ip netns add %s && ip netns add %s && "
	       "ip link add " BENCH_IF_A " address 02:77:00:00:00:01 netns %s type veth peer name " BENCH_IF_B
	       " address 02:77:00:00:00:02 netns %s && "
	       "ip -n %s addr add " BENCH_ADDR_A "/24 dev " BENCH_IF_A " && "
	       "ip -n %s addr add " BENCH_ADDR_B "/24 dev " BENCH_IF_B " && "
	       "ip -n %s link set " BENCH_IF_A " up && ip -n %s link set " BENCH_IF_B " up && "
	       "ip -n %s link set lo up && ip -n %s link set lo up && "
	       "ip netns exec %s ethtool -K " BENCH_IF_A " gro on tx-udp-segmentation off >/dev/null && "
	       "ip netns exec %s ethtool -K " BENCH_IF_B " gro on tx-udp-segmentation off >/dev/null && "
	       "ip netns exec %s ping -c1 -W2 " BENCH_ADDR_B " >/dev/null",
	       a, b, a, b, a, b, a, b, a, b, a, b, a) ||
	    bench_napi_threaded(a, BENCH_IF_A) || bench_napi_threaded(b, BENCH_IF_B)) {
		fprintf(stderr, "veth setup failed (needs ip, ethtool, threaded NAPI on veth)\n");
		bench_veth_free(v);
		return -EIO;
	}
	return 0;
}

int bench_veth_enter(const struct bench_veth *v, int end)
{
	char path[128];
	int fd, r;

	if (!end)
		return setns(v->orig_ns, CLONE_NEWNET) ? -errno : 0;
	snprintf(path, sizeof(path), "/run/netns/%s", end == 'A' ? v->ns_a : v->ns_b);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = setns(fd, CLONE_NEWNET) ? -errno : 0;
	close(fd);
	return r;
}

void bench_veth_free(struct bench_veth *v)
{
	if (v->ns_a[0])
		sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", v->ns_a, v->ns_b);
	v->ns_a[0] = v->ns_b[0] = 0;
	if (v->orig_ns >= 0)
		close(v->orig_ns);
	v->orig_ns = -1;
}

/*
 * The restore prologue of the source program (bench_lfsrc.restore): with
 * n 8-byte words, r2 = data, r3 = data_end; if data + 8n > data_end skip
 * to the redirect; else store each word of frame (LD_IMM64 into r4, STX).
 * Returns the instructions written.
 */
static int lfsrc_restore(struct bpf_insn *p, const unsigned char *frame, unsigned int n)
{
	int i = 0;

	p[i++] = (struct bpf_insn){ .code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = BPF_REG_2,
				    .src_reg = BPF_REG_1, .off = 0 };
	p[i++] = (struct bpf_insn){ .code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = BPF_REG_3,
				    .src_reg = BPF_REG_1, .off = 4 };
	p[i++] = (struct bpf_insn){ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_4,
				    .src_reg = BPF_REG_2 };
	p[i++] = (struct bpf_insn){ .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_4,
				    .imm = (int)(8 * n) };
	/* jump over the 3 instructions per word */
	p[i++] = (struct bpf_insn){ .code = BPF_JMP | BPF_JGT | BPF_X, .dst_reg = BPF_REG_4,
				    .src_reg = BPF_REG_3, .off = (short)(3 * n) };
	for (unsigned int w = 0; w < n; w++) {
		unsigned long long v;

		memcpy(&v, frame + 8 * w, 8);
		p[i++] = (struct bpf_insn){ .code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = BPF_REG_4,
					    .imm = (int)(unsigned int)v };
		p[i++] = (struct bpf_insn){ .imm = (int)(unsigned int)(v >> 32) };
		p[i++] = (struct bpf_insn){ .code = BPF_STX | BPF_MEM | BPF_DW, .dst_reg = BPF_REG_2,
					    .src_reg = BPF_REG_4, .off = (short)(8 * w) };
	}
	return i;
}

int bench_lfsrc_run(struct bench_lfsrc *src)
{
	struct bpf_insn prog[5 + 3 * BENCH_LFSRC_RESTORE_MAX / 8 + 4];
	unsigned char head[BENCH_LFSRC_RESTORE_MAX] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, o);
	double t0 = bench_now();
	unsigned int words = (src->restore + 7) / 8;
	int fd, err = 0, n = 0;

	if (words * 8 > BENCH_LFSRC_RESTORE_MAX || words * 8 > src->len)
		words = (src->len < BENCH_LFSRC_RESTORE_MAX ? src->len : BENCH_LFSRC_RESTORE_MAX) / 8;
	if (src->restore) {
		memcpy(head, src->frame, words * 8);
		n = lfsrc_restore(prog, head, words);
	}
	prog[n++] = (struct bpf_insn){ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_1,
				       .imm = src->out_ifindex };
	prog[n++] = (struct bpf_insn){ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_2 };
	prog[n++] = (struct bpf_insn){ .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect };
	prog[n++] = (struct bpf_insn){ .code = BPF_JMP | BPF_EXIT };
	fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "bench_gen", "GPL", prog, (size_t)n, NULL);
	if (fd < 0)
		return -errno;
	o.data_in = src->frame;
	o.data_size_in = src->len;
	o.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
	o.repeat = 1 << 16;
	o.batch_size = 64;
	/* Each run sets up and tears down a page pool (an RCU grace period,
	 * tens of ms): size runs to ~250 ms so that is a small share. */
	while (!src->stop) {
		double t = bench_now();

		if (bpf_prog_test_run_opts(fd, &o)) {
			/* A signal (a harness's child exiting) cuts a run short:
			 * the frames it sent are not counted, go on. */
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		__atomic_fetch_add(&src->sent, (unsigned long long)o.repeat, __ATOMIC_RELAXED);
		t = bench_now() - t;
		if (t < 0.15 && o.repeat < (1 << 26))
			o.repeat *= 2;
		else if (t > 0.4 && o.repeat > (1 << 12))
			o.repeat /= 2;
	}
	src->elapsed = bench_now() - t0;
	close(fd);
	return err;
}

/* ---- results ---- */

/* UTC now, ISO 8601 ("2026-11-22T19:05:00Z") or compact for file names. */
static void utc_now(char *buf, size_t n, int compact)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	if (compact)
		strftime(buf, n, "%Y%m%dT%H%M%SZ", &tm);
	else
		strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* First line of a command's output, trailing newline removed; "" if none. */
static void first_line(const char *cmd, char *buf, size_t n)
{
	FILE *p = popen(cmd, "r");

	buf[0] = 0;
	if (!p)
		return;
	if (!fgets(buf, (int)n, p))
		buf[0] = 0;
	pclose(p);
	buf[strcspn(buf, "\n")] = 0;
}

static void exe_dir(char *buf, size_t n)
{
	ssize_t len = readlink("/proc/self/exe", buf, n - 1);
	char *slash;

	if (len <= 0) {
		snprintf(buf, n, ".");
		return;
	}
	buf[len] = 0;
	slash = strrchr(buf, '/');
	if (slash)
		*slash = 0;
}

static void commit_of_run(char *buf, size_t n)
{
	const char *env = getenv("WEFT_BENCH_COMMIT");
	char dir[PATH_MAX], cmd[PATH_MAX + 96];

	if (env && *env) {
		snprintf(buf, n, "%s", env);
		return;
	}
	exe_dir(dir, sizeof(dir));
	if (!strchr(dir, '\'')) {
		snprintf(cmd, sizeof(cmd),
			 "git -C '%s' describe --always --dirty --abbrev=12 2>/dev/null", dir);
		first_line(cmd, buf, n);
	} else {
		buf[0] = 0;
	}
	if (!buf[0])
		snprintf(buf, n, "unknown");
}

static void cpu_model(char *buf, size_t n)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(buf, n, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) || !colon)
			continue;
		colon++;
		while (*colon == ' ' || *colon == '\t')
			colon++;
		colon[strcspn(colon, "\n")] = 0;
		snprintf(buf, n, "%s", colon);
		break;
	}
	fclose(f);
}

/* "1.23 0.98 0.50" (1, 5, 15 minutes) from /proc/loadavg, or "?". */
static void load_average(char *buf, size_t n)
{
	double a, b, c;
	FILE *f = fopen("/proc/loadavg", "r");

	snprintf(buf, n, "?");
	if (!f)
		return;
	if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
		snprintf(buf, n, "%.2f %.2f %.2f", a, b, c);
	fclose(f);
}

static int valid_id(const char *id)
{
	if (!id || !*id || strlen(id) > 63)
		return 0;
	for (; *id; id++)
		if (!islower((unsigned char)*id) && !isdigit((unsigned char)*id) && *id != '_' &&
		    *id != '.')
			return 0;
	return 1;
}

int bench_result_new(struct bench_result **out, const char *name, int argc, char **argv)
{
	struct bench_result *r;
	char buf[512], cmd[4096] = "";
	struct utsname u;
	size_t used = 0;
	int i;

	*out = NULL;
	if (!valid_id(name) || strlen(name) >= sizeof(r->name))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	snprintf(r->name, sizeof(r->name), "%s", name);
	utc_now(r->started, sizeof(r->started), 0);
	for (i = 0; i < argc && used < sizeof(cmd); i++)
		used +=
		    (size_t)snprintf(cmd + used, sizeof(cmd) - used, "%s%s", i ? " " : "", argv[i]);
	r->root = json_object();
	r->params = json_object();
	r->figures = json_array();
	r->ratios = json_array();
	r->notes = json_array();
	r->by_id = json_object();
	r->series = json_array();
	if (!r->root || !r->params || !r->figures || !r->ratios || !r->notes || !r->by_id ||
	    !r->series) {
		bench_result_free(r);
		return -ENOMEM;
	}
	json_object_set_new(r->root, "schema", json_string(BENCH_SCHEMA));
	json_object_set_new(r->root, "harness", json_string(name));
	json_object_set_new(r->root, "command", json_string(cmd));
	commit_of_run(buf, sizeof(buf));
	json_object_set_new(r->root, "commit", json_string(buf));
	if (uname(&u) == 0) {
		snprintf(buf, sizeof(buf), "%s %s", u.release, u.machine);
		json_object_set_new(r->root, "kernel", json_string(buf));
	}
	cpu_model(buf, sizeof(buf));
	json_object_set_new(r->root, "cpu_model", json_string(buf));
	load_average(buf, sizeof(buf));
	json_object_set_new(r->root, "loadavg", json_string(buf));
	json_object_set_new(r->root, "cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_set_new(r->root, "started", json_string(r->started));
	json_object_set(r->root, "params", r->params);
	json_object_set(r->root, "figures", r->figures);
	json_object_set(r->root, "ratios", r->ratios);
	json_object_set(r->root, "notes", r->notes);
	json_object_set(r->root, "series", r->series);
	*out = r;
	return 0;
}

void bench_result_free(struct bench_result *r)
{
	if (!r)
		return;
	json_decref(r->root);
	json_decref(r->params);
	json_decref(r->figures);
	json_decref(r->ratios);
	json_decref(r->notes);
	json_decref(r->by_id);
	json_decref(r->series);
	free(r);
}

int bench_result_param(struct bench_result *r, const char *key, double value)
{
	if (!valid_id(key) || !isfinite(value))
		return -EINVAL;
	if (json_object_size(r->params) >= BENCH_MAX_ITEMS)
		return -ENOSPC;
	return json_object_set_new(r->params, key, json_real(value)) ? -ENOMEM : 0;
}

int bench_result_figure(struct bench_result *r, const char *id, const char *label, double value,
			const char *unit)
{
	json_t *f;

	if (!valid_id(id) || !label || !unit || !isfinite(value) || json_object_get(r->by_id, id))
		return -EINVAL;
	if (json_array_size(r->figures) >= BENCH_MAX_ITEMS)
		return -ENOSPC;
	f = json_pack("{s:s, s:s, s:f, s:s}", "id", id, "label", label, "value", value, "unit",
		      unit);
	if (!f || json_array_append_new(r->figures, f) ||
	    json_object_set_new(r->by_id, id, json_real(value)))
		return -ENOMEM;
	return 0;
}

int bench_result_ratio(struct bench_result *r, const char *id, const char *label, const char *num,
		       const char *den, double goal)
{
	json_t *n, *d, *o;
	double v;

	if (!valid_id(id) || !label || !num || !den || !isfinite(goal) || goal < 0)
		return -EINVAL;
	if (json_array_size(r->ratios) >= BENCH_MAX_ITEMS)
		return -ENOSPC;
	n = json_object_get(r->by_id, num);
	d = json_object_get(r->by_id, den);
	if (!n || !d)
		return -ENOENT;
	if (json_real_value(d) == 0)
		return -EDOM;
	v = json_real_value(n) / json_real_value(d);
	o = json_pack("{s:s, s:s, s:f, s:s, s:s}", "id", id, "label", label, "value", v, "num", num,
		      "den", den);
	if (!o)
		return -ENOMEM;
	if (goal > 0)
		json_object_set_new(o, "goal", json_real(goal));
	return json_array_append_new(r->ratios, o) ? -ENOMEM : 0;
}

int bench_result_same_work(struct bench_result *r, const char *text)
{
	if (!text || !*text)
		return -EINVAL;
	return json_object_set_new(r->root, "same_work", json_string(text)) ? -ENOMEM : 0;
}

#define BENCH_MAX_SERIES 16

/* The element of array a whose string field key equals val, or NULL. */
static json_t *find_by(json_t *a, const char *key, const char *val)
{
	size_t i;
	json_t *e;

	json_array_foreach(a, i, e)
	{
		const char *s = json_string_value(json_object_get(e, key));

		if (s && !strcmp(s, val))
			return e;
	}
	return NULL;
}

int bench_result_point(struct bench_result *r, const char *series_id, const char *title,
		       const char *x_unit, const char *y_unit, const char *line_label, double x,
		       double y)
{
	json_t *s, *lines, *l, *pts, *pt;

	if (!valid_id(series_id) || !title || !x_unit || !y_unit || !line_label || !isfinite(x) ||
	    !isfinite(y))
		return -EINVAL;
	s = find_by(r->series, "id", series_id);
	if (!s) {
		if (json_array_size(r->series) >= BENCH_MAX_SERIES)
			return -ENOSPC;
		s = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "id", series_id, "title", title, "x_unit",
			      x_unit, "y_unit", y_unit, "lines");
		if (!s || json_array_append_new(r->series, s))
			return -ENOMEM;
	}
	lines = json_object_get(s, "lines");
	l = find_by(lines, "label", line_label);
	if (!l) {
		if (json_array_size(lines) >= BENCH_MAX_SERIES)
			return -ENOSPC;
		l = json_pack("{s:s, s:[]}", "label", line_label, "points");
		if (!l || json_array_append_new(lines, l))
			return -ENOMEM;
	}
	pts = json_object_get(l, "points");
	if (json_array_size(pts) >= BENCH_MAX_ITEMS)
		return -ENOSPC;
	pt = json_pack("[f, f]", x, y);
	return !pt || json_array_append_new(pts, pt) ? -ENOMEM : 0;
}

int bench_result_note(struct bench_result *r, const char *text)
{
	if (!text)
		return -EINVAL;
	if (json_array_size(r->notes) >= BENCH_MAX_ITEMS)
		return -ENOSPC;
	return json_array_append_new(r->notes, json_string(text)) ? -ENOMEM : 0;
}

static int mkdirs(const char *dir)
{
	char tmp[PATH_MAX], *p;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s", dir) >= sizeof(tmp))
		return -ENAMETOOLONG;
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

int bench_result_write(struct bench_result *r, char *path, size_t pathlen)
{
	const char *env = getenv("WEFT_BENCH_DIR");
	char dir[PATH_MAX], file[PATH_MAX + 128], tmp[PATH_MAX + 140], stamp[32], fin[32];
	int err;

	if (env && *env) {
		snprintf(dir, sizeof(dir), "%s", env);
	} else {
		exe_dir(dir, sizeof(dir));
		if (strlen(dir) + sizeof("/results") > sizeof(dir))
			return -ENAMETOOLONG;
		strcat(dir, "/results");
	}
	err = mkdirs(dir);
	if (err)
		return err;
	utc_now(fin, sizeof(fin), 0);
	json_object_set_new(r->root, "finished", json_string(fin));
	utc_now(stamp, sizeof(stamp), 1);
	snprintf(file, sizeof(file), "%s/%s-%s-%d.json", dir, r->name, stamp, (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	/* Written whole, then renamed: a report never reads half a result. */
	if (json_dump_file(r->root, tmp, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10)))
		return -EIO;
	if (rename(tmp, file)) {
		err = -errno;
		unlink(tmp);
		return err;
	}
	if (path && pathlen)
		snprintf(path, pathlen, "%s", file);
	return 0;
}

int bench_result_finish(struct bench_result *r)
{
	char path[PATH_MAX + 160];
	int err;

	bench_result_note(r, "one run; ratios are between figures of this run only");
	err = bench_result_write(r, path, sizeof(path));
	if (err)
		fprintf(stderr, "writing the JSON result: %s\n", strerror(-err));
	else
		printf("\nresult: %s\n", path);
	bench_result_free(r);
	return err ? 1 : 0;
}
