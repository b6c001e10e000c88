/* SPDX-License-Identifier: MIT */
/*
 * benchlib: what every benchmark harness in bench/ needs (docs/BENCH.md).
 *  - CPU pinning of the calling thread and of a veth's NAPI kernel threads,
 *    and threaded NAPI on a veth (so the receive work of a veth end runs in
 *    a thread that can be pinned, not in the sender's softirq);
 *  - per-CPU busy accounting from /proc/stat deltas;
 *  - a result writer: one JSON file per run with every figure, ratios
 *    computed only from figures of the same result (same run), the command,
 *    the commit, the kernel and the CPU model. bench/report.py turns a
 *    directory of them into build/bench/report.md with PNG plots.
 * Never linked into weftd or the tests; harnesses only.
 */
#ifndef WEFT_BENCHLIB_H
#define WEFT_BENCHLIB_H

#include <stddef.h>

/* CPUs bench_cpu_snap() accounts for (cpu0..cpu63); others are ignored. */
#define BENCH_MAX_CPUS 64
/* Limits of one result: figures, ratios, params and notes each. */
#define BENCH_MAX_ITEMS 512

/* Monotonic clock in seconds. */
double bench_now(void);

/* Makes a fresh directory NAME.XXXXXX under $TMPDIR when it is set (an
 * absolute path: bench/run.sh gives each harness a scratch directory there
 * and removes it however the harness ends), else (or when the path would
 * not fit in len) under dflt; its path in buf (empty on failure). Returns
 * 0 or a negative errno. */
int bench_mkdtemp(char *buf, size_t len, const char *dflt, const char *name);

/* Pin the calling thread to one CPU. 0 or a negative errno. */
int bench_pin(int cpu);

/*
 * Pin every NAPI kernel thread of a network device ("napi/<ifname>-<id>")
 * to one CPU. Call it again after attaching XDP, which may re-create them.
 * Returns the number of threads pinned (0: none found) or a negative errno.
 */
int bench_pin_napi(const char *ifname, int cpu);

/*
 * Run every NAPI kernel thread of ifname as SCHED_FIFO at priority prio
 * (1..99), so it preempts the CPU's other work as soon as frames arrive:
 * for a sink that shares its CPU with the source and must keep its small
 * ring drained. Returns the number of threads changed or a negative errno.
 */
int bench_napi_fifo(const char *ifname, int prio);

/*
 * Turn on threaded NAPI on device dev ("echo 1 > /sys/class/net/DEV/threaded"),
 * inside network namespace netns (a name under /run/netns; NULL: the
 * current one). 0 or a negative errno (-EINVAL for a name with characters
 * other than [A-Za-z0-9_.-], -EIO when the kernel refused).
 */
int bench_napi_threaded(const char *netns, const char *dev);

/* Busy (all but idle and iowait) and total jiffies per CPU from /proc/stat. */
struct bench_cpu {
	int ncpu; /* highest CPU seen + 1, at most BENCH_MAX_CPUS */
	unsigned long long busy[BENCH_MAX_CPUS], total[BENCH_MAX_CPUS];
};

/* Snapshot of /proc/stat. 0 or a negative errno (then *c is zeroed). */
int bench_cpu_snap(struct bench_cpu *c);

/* Busy percentage of one CPU between two snapshots (0 when unknown). */
double bench_cpu_busy(const struct bench_cpu *a, const struct bench_cpu *b, int cpu);

/* ---- CPU time of tasks (robust to other load on a shared machine) ---- */

/*
 * Nanoseconds a thread has run (/proc/PID/task/TID/schedstat, first field;
 * tid <= 0: the thread pid itself). Negative errno when it is gone.
 */
long long bench_thread_cpu_ns(int pid, int tid);

/* Seconds of CPU the calling thread has used (CLOCK_THREAD_CPUTIME_ID). */
double bench_thread_cpu_s(void);

/*
 * Nanoseconds a process has run, all its threads, live and exited
 * (utime + stime of /proc/PID/stat, clock-tick resolution). Negative errno.
 */
long long bench_proc_cpu_ns(int pid);

/* Nanoseconds run by the NAPI kernel threads of ifname ("napi/<ifname>-*",
 * threaded NAPI), summed; 0 when there are none. */
long long bench_napi_cpu_ns(const char *ifname);

/*
 * What one CPU gives the packet path now: CPU-time nanoseconds per
 * AES-128-GCM seal of a 1,420-byte packet (weft's widest width on this
 * CPU, userspace/quic/gcm.c), best of rounds rounds of 20,000 seals, run
 * by a thread pinned to cpu. Two vCPUs of one VM can differ by 1.4x at
 * this while a host thread beside one of them is busy (docs/BENCH.md
 * "CPU probe"): a harness that pins its two ends prints both. Negative
 * errno on failure.
 */
double bench_cpu_probe_ns(int cpu, int rounds);

/* ---- a veth pair between two network namespaces ---- */

/*
 * Namespaces "wb<tag>A<pid>" and "wb<tag>B<pid>" joined by veth veA
 * (02:77:00:00:00:01, 198.51.100.1/24) and veB (...:02, 198.51.100.2/24),
 * GRO on and UDP segmentation offload off on both ends (veth then
 * receives through NAPI, one datagram per frame), threaded NAPI on both.
 */
#define BENCH_IF_A "veA"
#define BENCH_IF_B "veB"
#define BENCH_ADDR_A "198.51.100.1"
#define BENCH_ADDR_B "198.51.100.2"
extern const unsigned char bench_mac_a[6], bench_mac_b[6];

struct bench_veth {
	char ns_a[32], ns_b[32];
	int orig_ns; /* fd of the namespace the pair was made from */
};

/* Make the pair (tag: [a-z], at most 4 characters). 0 or a negative errno
 * (-EIO: ip, ethtool or threaded NAPI refused; the message is on stderr). */
int bench_veth_new(struct bench_veth *v, const char *tag);
/* Move the calling thread into end 'A', 'B', or back (0). 0 or -errno. */
int bench_veth_enter(const struct bench_veth *v, int end);
/* Remove both namespaces (the pair goes with them). */
void bench_veth_free(struct bench_veth *v);

/*
 * The live-frame source that cannot be the bottleneck: BPF_PROG_TEST_RUN
 * with BPF_F_TEST_XDP_LIVE_FRAMES runs a four-instruction XDP program
 * (bpf_redirect to out_ifindex) over one prebuilt frame, in batches, in
 * the kernel: no socket, no skb on the source side. The peer of a veth
 * end receives each frame as an xdp_frame through its NAPI, as a NIC
 * driver receives a DMA buffer; frames its ring cannot take are dropped at
 * the sending end (counted as offered), so the source never slows to the
 * receiver's pace. Run it in a thread in the sending namespace, pinned.
 */
struct bench_lfsrc {
	volatile int stop;
	unsigned long long sent; /* frames offered, updated per test-run */
	const void *frame;
	unsigned int len;
	int out_ifindex;
	/* > 0: the program rewrites the frame's first restore bytes (rounded
	 * up to 8, at most BENCH_LFSRC_RESTORE_MAX and len) from frame before
	 * each redirect. The kernel recycles live frames without copying the
	 * data in again, so a receiver that rewrites frames in place (a relay
	 * turning addresses round) would otherwise get its own output back. */
	unsigned int restore;
	double elapsed; /* seconds it ran */
};
#define BENCH_LFSRC_RESTORE_MAX 128

/* Runs until src->stop. 0, or a negative errno when the kernel refused. */
int bench_lfsrc_run(struct bench_lfsrc *src);

/* ---- results ---- */

struct bench_result;

/*
 * A result of harness name (e.g. "io"); argv is recorded as the command,
 * /proc/loadavg at this call as "loadavg" (the load the run started under).
 * The commit comes from $WEFT_BENCH_COMMIT (bench/run.sh sets it) or else
 * from git in the executable's directory. 0, -EINVAL or -ENOMEM.
 */
int bench_result_new(struct bench_result **out, const char *name, int argc, char **argv);
void bench_result_free(struct bench_result *r);

/* A parameter of the run (payload size, seconds per measurement, ...). */
int bench_result_param(struct bench_result *r, const char *key, double value);

/*
 * A measured figure: id unique in the result ([a-z0-9_.]), a label for
 * people, the value and its unit ("pps", "%", "ns/packet"). 0, -EINVAL
 * (bad or duplicate id, non-finite value), -ENOSPC or -ENOMEM.
 */
int bench_result_figure(struct bench_result *r, const char *id, const char *label, double value,
			const char *unit);

/*
 * A ratio num/den of two figures already added to this result (so both
 * come from the same run). goal > 0: the target, shown against it
 * in the report (a ratio >= goal meets it); 0: no goal. Returns 0, -ENOENT
 * when a figure is missing, -EDOM when den is 0 (nothing is recorded
 * then), -EINVAL, -ENOSPC or -ENOMEM.
 */
int bench_result_ratio(struct bench_result *r, const char *id, const char *label, const char *num,
		       const char *den, double goal);

/*
 * The harness's "same work" rule (docs/BENCH.md), the text written at the
 * top of its source: what both sides of every ratio share. 0, -EINVAL or
 * -ENOMEM.
 */
int bench_result_same_work(struct bench_result *r, const char *text);

/*
 * A point (x, y) of line line_label in series series_id (a line plot in the
 * report: cost against size or load). The series is made on first use with
 * title and the axis units; at most 16 series, 16 lines each and
 * BENCH_MAX_ITEMS points per line. 0, -EINVAL (bad id, non-finite value),
 * -ENOSPC or -ENOMEM.
 */
int bench_result_point(struct bench_result *r, const char *series_id, const char *title,
		       const char *x_unit, const char *y_unit, const char *line_label, double x,
		       double y);

/* A free-text note (a fallback taken, a caveat of this run). */
int bench_result_note(struct bench_result *r, const char *text);

/*
 * Write the result as DIR/<name>-<UTC time>-<pid>.json, DIR being
 * $WEFT_BENCH_DIR or else "results" next to the executable (build/bench/
 * results/), created if missing. The path written goes to path (if not
 * NULL). 0 or a negative errno.
 */
int bench_result_write(struct bench_result *r, char *path, size_t pathlen);

/*
 * The end of a harness: note "one run", write the result (printing its
 * path, or the error on stderr) and free it. Returns 0, or 1 when the
 * write failed (an exit status).
 */
int bench_result_finish(struct bench_result *r);

#endif
