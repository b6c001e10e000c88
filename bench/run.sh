#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs the benchmark harnesses (bench/*.sh), each printing its own table of
# weft vs the reference in the same run, with ratios. Never part of make test.
# Harnesses built on bench/benchlib.h also write one JSON result each into
# $BUILD/bench/runs/<UTC time>/; this script adds run-<time>.json there
# (seconds and exit status of every harness, the budget, the load average)
# and each harness's printed output as <name>.log
# and bench/report.py then writes $BUILD/bench/report.md, details.md and
# the PNG plots from that run's results (docs/BENCH.md).
#
# Each harness has a time budget (seconds, BUDGET_<name> overrides it; the
# defaults keep a whole run under 20 minutes on the 2-core development VM):
# past it the harness is stopped (SIGTERM, SIGKILL 15 s later), reported
# as over budget, and the run fails. Arguments per harness come from
# ARGS_<name> (e.g. ARGS_xdp=8), else the harness's defaults.
# Each harness runs with TMPDIR set to a scratch directory of its own
# (/var/tmp/wb.<our PID>.<name>.XXXXXX, on disk; short, since harnesses
# keep paths in 64 bytes and unix sockets in 108), removed when the
# harness ends however it ends: one stopped by the budget's SIGKILL cannot
# run its own cleanup (its network namespaces are swept then too).
# Scratch directories of a run.sh no longer alive (a run cut off) are
# removed at the start.
# Usage: bench/run.sh [NAME...]   e.g. bench/run.sh blake3 xdp
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
export TOP BUILD PYTHON=/usr/bin/python3
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WEFT_BENCH_DIR="$BUILD/bench/runs/$STAMP"
WEFT_BENCH_COMMIT=$(git -C "$TOP" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
export WEFT_BENCH_DIR WEFT_BENCH_COMMIT
mkdir -p "$WEFT_BENCH_DIR"

# Default budgets in seconds (measured run times on the loaded 2-core VM
# with room to spare; docs/BENCH.md "make bench").
# Default arguments (ARGS_<name> overrides): content moves 64 MiB per
# transfer (its four transfers, one of them aria2's, fit its budget).
declare -A ARGS=([content]=64)
declare -A BUDGET=([announce]=240 [blake3]=240 [content]=60 [dht]=110 [io]=100 [quic]=300 [relay]=130 [serve]=600
	[gcm]=40 [mailbox]=180 [mem]=50 [private]=300 [search]=900 [punch]=210 [quic_cpu]=180 [seal]=30 [store]=40
	[svc]=30 [xdp]=40 [follow]=300 [mesh]=300)

# What the machine lost during a harness besides its own work: steal (the
# hypervisor running something else on our virtual CPUs) in seconds from
# /proc/stat, and the pressure-stall totals (CPU "some", I/O "some") in
# seconds from /proc/pressure; "-" where the kernel has none. On a shared
# VM these say how much of a slow figure was the host's.
host_lost() {
	local st cpu io
	st=$(awk -v hz="$(getconf CLK_TCK)" 'NR == 1 { printf "%.2f", $9 / hz }' /proc/stat 2>/dev/null)
	cpu=$(awk '/^some/ { sub("total=", "", $5); printf "%.2f", $5 / 1e6 }' /proc/pressure/cpu 2>/dev/null)
	io=$(awk '/^some/ { sub("total=", "", $5); printf "%.2f", $5 / 1e6 }' /proc/pressure/io 2>/dev/null)
	echo "${st:--} ${cpu:--} ${io:--}"
}
lost_delta() { # before after: "steal cpu io" differences, "-" where either is
	local a b out="" i
	read -r -a a <<<"$1"
	read -r -a b <<<"$2"
	for i in 0 1 2; do
		if [ "${a[$i]}" = - ] || [ "${b[$i]}" = - ]; then
			out="$out -"
		else
			out="$out $(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { printf "%.2f", y - x }')"
		fi
	done
	echo "${out# }"
}

# Scratch directories left by a run.sh that is gone (its PID not alive, or
# ours: a reused PID).
for d in /var/tmp/wb.*.*; do
	[[ -d $d && $d =~ ^/var/tmp/wb\.([0-9]+)\. ]] || continue
	pid=${BASH_REMATCH[1]}
	[ "$pid" = "$$" ] || ! kill -0 "$pid" 2>/dev/null || continue
	rm -rf "$d" && echo "bench: removed $d, left by a run that was cut off"
done

rc=0
T0=$(date +%s.%N)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
RUNLOG="$WEFT_BENCH_DIR/.run.tsv" # name, seconds, status, budget
: >"$RUNLOG"
for s in "$TOP"/bench/*.sh; do
	name=$(basename "$s" .sh)
	# By hand only (docs/BENCH.md "make bench: time budgets"): this
	# script, blake3_cpu.sh (needs a FILE) and serve_disk.sh (changes a
	# cgroup's disk limits, which a whole run should not).
	case $name in run | blake3_cpu | serve_disk) continue ;; esac
	if [ $# -gt 0 ]; then
		case " $* " in *" $name "*) ;; *) continue ;; esac
	fi
	var=BUDGET_$name
	budget=${!var:-${BUDGET[$name]:-120}}
	var=ARGS_$name
	read -r -a args <<<"${!var:-${ARGS[$name]:-}}"
	echo "=== bench: $name ($(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), budget ${budget} s)"
	t=$(date +%s.%N)
	lost0=$(host_lost)
	scratch=$(mktemp -d "/var/tmp/wb.$$.$name.XXXXXX")
	TMPDIR=$scratch timeout -k 15 "$budget" bash "$s" "${args[@]}" 2>&1 |
		tee "$WEFT_BENCH_DIR/$name.log"
	st=${PIPESTATUS[0]}
	rm -rf "$scratch"
	# Namespaces of a harness stopped before its cleanup ran (SIGKILL):
	# those named after a PID no longer alive (tests/lib/netns.sh).
	[ "$(id -u)" -ne 0 ] || bash -c '. "$1/tests/lib/netns.sh"; _netns_sweep_stale' _ "$TOP"
	read -r lsteal lcpu lio <<<"$(lost_delta "$lost0" "$(host_lost)")"
	t=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
	case $st in
	0) ;;
	77) echo "bench $name: skipped (a dependency is missing)" ;;
	124 | 137) echo "bench $name: over its budget of $budget s, stopped"; rc=1 ;;
	*) echo "bench $name failed (status $st)"; rc=1 ;;
	esac
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$t" "$st" "$budget" "$lsteal" "$lcpu" "$lio" \
		>>"$RUNLOG"
	printf 'bench %s: %.0f s (host: steal %s s; pressure stalls: CPU %s s, I/O %s s)\n\n' \
		"$name" "$t" "$lsteal" "$lcpu" "$lio"
done
TOTAL=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
printf 'all harnesses: %.0f s\n' "$TOTAL"

# The run's own result: seconds and status per harness (weft-bench/1).
"$PYTHON" - "$RUNLOG" "$WEFT_BENCH_DIR/run-$STAMP.json" "$TOTAL" "$LOAD0" "$*" <<'EOF' || rc=1
import json, os, platform, sys, time
log, out, total, load0, names = sys.argv[1:]
cpu, simd = "unknown", []
for line in open("/proc/cpuinfo"):
    if line.startswith("model name") and cpu == "unknown":
        cpu = line.split(":", 1)[1].strip()
    if line.startswith("flags") and not simd:
        have = set(line.split(":", 1)[1].split())
        simd = [f for f in ("sse4_1", "avx2", "avx512f", "avx512vl") if f in have]
# The kernel's CPU vulnerability mitigations (retpolines, PTI...), which move
# syscall- and fault-heavy figures: the report names them with the host.
mitig = {}
vdir = "/sys/devices/system/cpu/vulnerabilities"
for name in sorted(os.listdir(vdir)) if os.path.isdir(vdir) else []:
    try:
        with open(os.path.join(vdir, name)) as f:
            mitig[name] = f.read().strip()
    except OSError:
        pass
figs, notes = [], []
for line in open(log):
    name, secs, st, budget, steal, psi_cpu, psi_io = line.rstrip("\n").split("\t")
    figs.append({"id": f"run.{name}.seconds", "label": f"{name}: wall time (budget {budget} s)",
                 "value": float(secs), "unit": "s"})
    # what the host lost meanwhile ("-": the kernel has no such figure)
    for key, v, what in (("steal_seconds", steal, "steal (the hypervisor ran something else)"),
                         ("psi_cpu_some_seconds", psi_cpu, "CPU pressure stall (some task waited)"),
                         ("psi_io_some_seconds", psi_io, "I/O pressure stall (some task waited)")):
        if v != "-":
            figs.append({"id": f"run.{name}.{key}", "label": f"{name}: {what}",
                         "value": float(v), "unit": "s"})
    figs.append({"id": f"run.{name}.status", "label": f"{name}: exit status (0 ok, 77 skipped, 124 over budget)",
                 "value": float(st), "unit": ""})
    if st not in ("0",):
        notes.append(f"{name}: exit status {st}")
figs.append({"id": "run.total_seconds", "label": "all harnesses: wall time (goal < 1200 s)",
             "value": float(total), "unit": "s"})
ratios = []
now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
r = {"schema": "weft-bench/1", "harness": "run", "command": "bench/run.sh " + names,
     "commit": os.environ.get("WEFT_BENCH_COMMIT", "unknown"),
     "kernel": f"{platform.release()} {platform.machine()}", "cpu_model": cpu,
     "simd": " ".join(simd) or "none", "mitigations": mitig,
     "cpus": os.cpu_count(), "loadavg": load0,
     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - float(total))),
     "finished": now, "params": {}, "figures": figs, "ratios": ratios, "notes": notes}
with open(out + ".tmp", "w") as f:
    json.dump(r, f, indent=1, sort_keys=True)
os.replace(out + ".tmp", out)
EOF
rm -f "$RUNLOG"
"$PYTHON" "$TOP/bench/report.py" --out "$BUILD/bench" "$WEFT_BENCH_DIR" || rc=1
exit $rc
