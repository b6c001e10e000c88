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

/* Pin the calling thread to one CPU. 0 or a negative errno. */
int bench_pin(int cpu);

/*
 * Pin every NAPI kernel thread of a network device ("napi/<ifname>-<id>")
 * to one CPU. Call it again after attaching XDP, which may re-create them.
 * Returns the number of threads pinned (0: none found) or a negative errno.
 */
int bench_pin_napi(const char *ifname, int cpu);

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

/* ---- results ---- */

struct bench_result;

/*
 * A result of harness name (e.g. "io"); argv is recorded as the command.
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

/* A free-text note (a fallback taken, a caveat of this run). */
int bench_result_note(struct bench_result *r, const char *text);

/*
 * Write the result as DIR/<name>-<UTC time>-<pid>.json, DIR being
 * $WEFT_BENCH_DIR or else "results" next to the executable (build/bench/
 * results/), created if missing. The path written goes to path (if not
 * NULL). 0 or a negative errno.
 */
int bench_result_write(struct bench_result *r, char *path, size_t pathlen);

#endif
