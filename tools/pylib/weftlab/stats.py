# SPDX-License-Identifier: MIT
"""weftlab's statistics: the one definition of a percentile, of the swarm's
completion times (t50/t90/t100) and of a download's throughput, used by
every scenario and by the aria2 comparison, so weft and aria2 are measured
by the same formulas (tests/integration/test_lab_stats.sh checks them on
fixed inputs).

Percentiles are nearest rank: the p-th percentile of n values is the
ceil(p/100 * n)-th smallest (at least the first). No interpolation: every
figure is one that was measured.
"""
import bisect
import math
import os

__all__ = ["rank", "pct", "t_frac", "completion", "throughput", "mid_throughput", "swarm",
           "host_busy_s", "delivered_at", "host_cpu", "cpu_line", "host_stall", "stall_delta",
           "stall_line"]


def rank(n, p):
    """The 1-based nearest rank of the p-th percentile among n values.
    p * n / 100 is rounded to 1e-9 before its ceiling, so float noise
    (0.9 * 70 = 63.00000000000001) does not move the rank."""
    return max(1, math.ceil(round(p * n / 100.0, 9)))


def pct(values, p):
    """The p-th percentile (nearest rank) of values; None values are
    skipped; None when nothing is left."""
    v = sorted(x for x in values if x is not None)
    return v[rank(len(v), p) - 1] if v else None


def t_frac(times, n, f):
    """Seconds until a fraction f of n downloaders were complete: the
    rank(n, 100 f)-th smallest of times (the completed ones); None when
    fewer completed. A node that never completes counts as infinitely
    late, so t100 is None unless every node completed."""
    if n <= 0:
        return None
    k = rank(n, 100.0 * f)
    v = sorted(times)
    return v[k - 1] if k <= len(v) else None


def completion(times, n):
    """t50_s, t90_s, t100_s of a swarm of n downloaders."""
    return {"t50_s": t_frac(times, n, 0.5), "t90_s": t_frac(times, n, 0.9),
            "t100_s": t_frac(times, n, 1.0)}


def throughput(size, seconds):
    """Mbit/s of size bytes in seconds; None without a positive time."""
    return size * 8 / seconds / 1e6 if seconds else None


def mid_throughput(progress, size, lo=0.1, hi=0.9):
    """Mbit/s of one download between lo and hi of its bytes: progress is
    its [seconds, bytes] samples (in time order); the first sample at or
    past lo * size to the first at or past hi * size. Leaves out the
    start (finding providers) and the end game, so it is the swarm's
    steady rate. None when the samples do not span both marks."""
    t_lo = t_hi = b_lo = b_hi = None
    for t, b in progress:
        if t_lo is None and b >= lo * size:
            t_lo, b_lo = t, b
        if b >= hi * size:
            t_hi, b_hi = t, b
            break
    if t_lo is None or t_hi is None or t_hi <= t_lo:
        return None
    return throughput(b_hi - b_lo, t_hi - t_lo)


def swarm(done, verified, others, size, progress):
    """The figures `distribute` and `aria2` both report for one file sent
    to the nodes others: done maps a node to its completion time (s),
    verified to whether its copy checked, progress maps str(node) to its
    [seconds, bytes] samples. Returns t50_s, t90_s, t100_s, per_node,
    mbit_s_p50 (per-node throughput over the whole download) and
    mbit_s_10_90_p50 (between 10% and 90% of the file)."""
    per = {str(i): {"s": done.get(i), "verified": verified.get(i),
                    "mbit_s": throughput(size, done.get(i))} for i in others}
    res = completion(list(done.values()), len(others))
    res["per_node"] = per
    res["mbit_s_p50"] = pct([v["mbit_s"] for v in per.values()], 50)
    res["mbit_s_10_90_p50"] = pct([mid_throughput(progress.get(str(i), []), size)
                                   for i in others], 50)
    return res


def host_busy_s(path="/proc/stat"):
    """Seconds of CPU the whole machine has spent busy since boot, all CPUs
    together: user, nice, system, irq and softirq of /proc/stat's first
    line (idle, iowait and steal left out; guest time is inside user).
    Host-wide on purpose: the kernel's work for a tool's packets and disk
    (softirq on any CPU, the receiver's path run by the sender's system
    call) is counted whoever it is charged to. None when unreadable."""
    try:
        with open(path) as f:
            v = f.readline().split()
        hz = os.sysconf("SC_CLK_TCK")
        return (int(v[1]) + int(v[2]) + int(v[3]) + int(v[6]) + int(v[7])) / float(hz)
    except (OSError, ValueError, IndexError):
        return None


def host_stall(stat="/proc/stat", psi="/proc/pressure"):
    """What the machine lost that is not a tool's CPU, in seconds since
    boot: steal (time the hypervisor ran something else on a virtual
    CPU: on a VM, the host's own load) and iowait from /proc/stat's first
    line, and the pressure-stall totals (PSI: /proc/pressure/cpu "some",
    /proc/pressure/io "some" and "full", /proc/pressure/memory "some":
    wall time in which at least one task, or every task, waited for a
    CPU, the disk or memory). A key is missing when its file cannot be
    read (no PSI: a kernel without it, or psi=0)."""
    out = {}
    try:
        with open(stat) as f:
            v = f.readline().split()
        hz = float(os.sysconf("SC_CLK_TCK"))
        out["iowait_s"] = int(v[5]) / hz
        out["steal_s"] = int(v[8]) / hz
    except (OSError, ValueError, IndexError):
        pass
    for res, kinds in (("cpu", ("some",)), ("io", ("some", "full")), ("memory", ("some",))):
        try:
            with open(os.path.join(psi, res)) as f:
                for line in f:
                    w = line.split()
                    if w and w[0] in kinds:
                        tot = [x for x in w if x.startswith("total=")]
                        if tot:
                            out["psi_%s_%s_s" % (res, w[0])] = int(tot[0][6:]) / 1e6
        except (OSError, ValueError):
            pass
    return out


def stall_delta(a, b):
    """host_stall's figures over a run: b less a, rounded, for the keys
    both have."""
    return {k: round(b[k] - a[k], 2) for k in b if k in a}


def stall_line(d):
    """The line a run prints for stall_delta's figures ("" without any)."""
    if not d:
        return ""
    f = lambda k: "-" if k not in d else "%.1f" % d[k]
    return ("host: steal %s s, iowait %s s; pressure stalls: CPU (some) %s s, I/O some %s s, "
            "full %s s, memory (some) %s s" % (f("steal_s"), f("iowait_s"), f("psi_cpu_some_s"),
                                               f("psi_io_some_s"), f("psi_io_full_s"),
                                               f("psi_memory_some_s")))


def delivered_at(progress, t):
    """Bytes every download together held at time t: per node, its last
    [seconds, bytes] sample at or before t."""
    total = 0
    for pts in progress.values():
        k = bisect.bisect_right(pts, [t, math.inf])
        if k:
            total += pts[k - 1][1]
    return total


def host_cpu(cpu, progress, n, size, t_end, lo=0.1, hi=0.9):
    """The machine's CPU for the bytes a swarm delivered, the same formula
    for weft and aria2: cpu is [[seconds, busy_s]] (host_busy_s less its
    value at the start, in time order, on the progress samples' clock).
    host_cpu_s: busy seconds from the start to t_end (the last completion,
    or the run's end); host_cpu_s_per_gib: per GiB delivered by then; and
    host_cpu_s_per_gib_10_90: per GiB delivered between the first moments
    the swarm as a whole held lo and hi of its n * size bytes (its moving
    part: no discovery, no end game). Each figure None when the samples
    do not span it."""
    def busy_at(t):  # the last sample at or before t
        v = None
        for ts, b in cpu:
            if ts > t:
                break
            v = b
        return v

    res = {"host_cpu_s": None, "host_cpu_s_per_gib": None, "host_cpu_s_per_gib_10_90": None}
    if not cpu or n <= 0 or size <= 0:
        return res
    b_end = busy_at(t_end)
    got = delivered_at(progress, t_end)
    if b_end is not None:
        res["host_cpu_s"] = round(b_end, 2)
        if got:
            res["host_cpu_s_per_gib"] = round(b_end / (got / 2.0 ** 30), 3)
    want = n * size
    times = sorted({ts for pts in progress.values() for ts, _ in pts})
    t_lo = next((t for t in times if delivered_at(progress, t) >= lo * want), None)
    t_hi = next((t for t in times if delivered_at(progress, t) >= hi * want), None)
    if t_lo is None or t_hi is None or t_hi <= t_lo:
        return res
    b_lo, b_hi = busy_at(t_lo), busy_at(t_hi)
    moved = delivered_at(progress, t_hi) - delivered_at(progress, t_lo)
    if b_lo is None or b_hi is None or moved <= 0:
        return res
    res["host_cpu_s_per_gib_10_90"] = round((b_hi - b_lo) / (moved / 2.0 ** 30), 3)
    return res


def cpu_line(res, tool):
    """The line distribute and the aria2 comparison both print for
    host_cpu's figures and the tool's own processes' CPU (tool_cpu_s)."""
    f = lambda v, nd: "-" if v is None else ("%." + str(nd) + "f") % v
    return ("host CPU %s s to the last completion: %s s per GiB delivered, %s s per GiB "
            "between 10%% and 90%% of the swarm's bytes (%s: %s CPU s)"
            % (f(res.get("host_cpu_s"), 1), f(res.get("host_cpu_s_per_gib"), 2),
               f(res.get("host_cpu_s_per_gib_10_90"), 2), tool, f(res.get("tool_cpu_s"), 1)))
