#!/bin/bash
# SPDX-License-Identifier: MIT
# A seed serving from a slow disk (issue 29; docs/CONTENT.md "Reads off
# the workers"): one seed (host 1) and NDL downloaders in network
# namespaces on a veth bridge (tests/lib/netns.sh), release binaries,
# root. The seed's chunk reads (O_DIRECT, 256 KiB) go to a disk limited to
# IOPS reads a second for the seed's process (cgroup v1 blkio throttle on
# the device under its state directory; cgroup v2 io.max where v1 is not
# mounted): a spinning disk, or one shared with other work. Each round
# runs the seed twice, alternating: chunk reads on the engine workers
# (content.read_threads=0, as before the reader threads) and on THREADS
# reader threads (the default). Each run: a fresh SIZE_MB file added,
# every downloader fetches it from the seed only (they cannot reach each
# other), and a prober in host 2's namespace pings the seed's DHT port
# every 25 ms (bench/dhtping.py; under the DHT's 50 queries a second per
# source) the whole time: the DHT is answered by
# the same engine workers, so its round trip shows how long a worker is
# held. Printed: per run the time to the last copy, the seed's upload
# rate, its CPU, and the ping's p50 / p99 / max; then the ratios on the
# worker / on threads (same round, same file size, same disk limit).
# Usage: bench/serve_disk.sh [SIZE_MB]  (default 32)
#   IOPS=N (default 100; 0: the disk as it is), NDL=N (default 4),
#   THREADS=N (default 4), ROUNDS=N (default 1)
# The JSON result (weft-bench/1) goes to $WEFT_BENCH_DIR or
# $BUILD/bench/results.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
WEFTD=${WEFTD:-$BUILD/weftd} WEFTCTL=${WEFTCTL:-$BUILD/weftctl} PYTHON=${PYTHON:-/usr/bin/python3}
SIZE_MB=${1:-32} IOPS=${IOPS:-100} NDL=${NDL:-4} THREADS=${THREADS:-4} ROUNDS=${ROUNDS:-1}
export TOP
[ -x "$WEFTD" ] && [ -x "$WEFTCTL" ] || { echo "build $WEFTD and $WEFTCTL first"; exit 1; }
. "$TOP/tests/lib/common.sh"
. "$TOP/tests/lib/netns.sh"
netns_require_root
NH=$((NDL + 1))
netns_create "$NH" || fail "netns setup"
D=$(mktemp -d "${TMPDIR:-/var/tmp}/wsdisk.XXXXXX")
netns_on_exit "rm -rf '$D'"
ctl() { local n=$1; shift; "$WEFTCTL" --socket "$D/n$n/weftd.sock" "$@"; }
STARTED=$(date -u +%FT%TZ)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
SEED=$(netns_ip4 1)
DEV=$(findmnt -n -o MAJ:MIN --target "$D" | tr -d ' ')
[ -n "$DEV" ] || fail "no device under $D"

# the disk limit for one process (all its threads)
CG=""
limit_pid() { # PID
	[ "$IOPS" != 0 ] || return 0
	if [ -d /sys/fs/cgroup/blkio ]; then
		CG=/sys/fs/cgroup/blkio/wsdisk.$$
		mkdir -p "$CG" && echo "$DEV $IOPS" >"$CG/blkio.throttle.read_iops_device" &&
			echo "$1" >"$CG/cgroup.procs" || fail "blkio throttle on $DEV"
	else
		local root
		root=$(findmnt -n -o TARGET -t cgroup2 | head -1)
		[ -n "$root" ] || fail "no cgroup v1 blkio nor cgroup v2: cannot limit the disk (IOPS=0 runs without)"
		echo "+io" >"$root/cgroup.subtree_control" 2>/dev/null
		CG=$root/wsdisk.$$
		mkdir -p "$CG" && echo "$DEV riops=$IOPS" >"$CG/io.max" &&
			echo "$1" >"$CG/cgroup.procs" || fail "io.max on $DEV"
	fi
}
unlimit() {
	[ -n "$CG" ] && [ -d "$CG" ] || return 0
	local p
	for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do
		echo "$p" >"$(dirname "$CG")/cgroup.procs" 2>/dev/null
	done
	rmdir "$CG" 2>/dev/null
	CG=""
}
netns_on_exit unlimit

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
seed_start() { # READ_THREADS
	rm -rf "$D/n1"
	mkdir -p "$D/n1"
	NETNS_EXEC="ip netns exec $(netns_name 1)"
	start_weftd "$D/n1" --state-dir "$D/n1" --io uring --workers 2 --quic-port 4433 \
		--dht-port 6881 --log-level warn --set "content.read_threads=$1"
	SEED_PID=$WEFTD_PID
	ctl 1 content limits --superseed 0 >/dev/null || fail "limits"
}
seed_stop() {
	unlimit
	kill "$SEED_PID" 2>/dev/null
	wait "$SEED_PID" 2>/dev/null
}
for ((n = 2; n <= NH; n++)); do
	mkdir -p "$D/n$n"
	NETNS_EXEC="ip netns exec $(netns_name "$n")"
	start_weftd "$D/n$n" --state-dir "$D/n$n" --io uring --workers 1 --quic-port 4433 \
		--dht-port 6881 --bootstrap "$SEED:6881" --log-level warn
	netns_exec "$n" nft -f - <<NFT || fail "nft"
table inet wsdisk {
	chain out { type filter hook output priority 0; ip daddr 198.51.100.0/24 ip daddr != $SEED drop; }
}
NFT
done
done_job() { [ "$(ctl "$1" --json content jobs "$2" | json_get state)" = done ]; }

RES="$D/runs"
: >"$RES"
run() { # ROUND READ_THREADS
	local r=$1 rt=$2 id t0 t1 c0 c1 i ok=1 pp
	seed_start "$rt"
	head -c $((SIZE_MB << 20)) /dev/urandom >"$D/f"
	id=$(ctl 1 --json content add "$D/f" | json_get items 0 id) || fail "add"
	limit_pid "$SEED_PID"
	sleep 1
	ip netns exec "$(netns_name 2)" "$PYTHON" "$TOP/bench/dhtping.py" "$SEED" 6881 25 >"$D/ping" &
	pp=$!
	sleep 1
	c0=$(cpu_of "$SEED_PID")
	t0=$(date +%s.%N)
	for ((i = 2; i <= NH; i++)); do
		J[$i]=$(ctl "$i" --json content get "$id" --out "$D/n$i" --from "$SEED" --no-wait | json_get job) ||
			fail "get on host $i"
	done
	for ((i = 2; i <= NH; i++)); do
		wait_for "done_job $i ${J[$i]}" 6000 || { ok=0; echo "host $i: not done"; }
	done
	t1=$(date +%s.%N)
	c1=$(cpu_of "$SEED_PID")
	kill -TERM "$pp"
	wait "$pp"
	for ((i = 2; i <= NH; i++)); do
		cmp -s "$D/f" "$D/n$i/$id" || { ok=0; echo "host $i: file differs"; }
		ctl "$i" content rm "$id" >/dev/null 2>&1
		rm -f "$D/n$i/$id"
	done
	printf '{"round":%d,"read_threads":%d,"t0":%s,"t1":%s,"cpu_ticks":%d,"ok":%d,"stats":%s,"ping":%s}\n' \
		"$r" "$rt" "$t0" "$t1" $((c1 - c0)) "$ok" "$(ctl 1 --json content stats | tr -d "\n")" "$(cat "$D/ping")" >>"$RES"
	seed_stop
}
for ((r = 1; r <= ROUNDS; r++)); do
	run "$r" 0
	run "$r" "$THREADS"
done

"$PYTHON" - "$RES" "$SIZE_MB" "$NDL" "$IOPS" "$THREADS" "$STARTED" "$LOAD0" "$*" <<'PY'
import json, os, sys
res, size_mb, ndl, iops, threads, started, load0, args = sys.argv[1:]
size, ndl = int(size_mb) << 20, int(ndl)
hz = os.sysconf("SC_CLK_TCK")
runs = [json.loads(l) for l in open(res) if l.strip()]
def fig(r):
    t = r["t1"] - r["t0"]
    p = r["ping"]
    return {"s": t, "mbit": ndl * size * 8 / t / 1e6, "cpu": r["cpu_ticks"] / hz,
            "p50": p["p50_ms"] or 0, "p99": p["p99_ms"] or 0, "max": p["max_ms"] or 0,
            "lost": p["lost"], "pings": p["count"],
            "on_threads": r["stats"].get("reads", {}).get("on_threads", 0),
            "on_workers": r["stats"].get("reads", {}).get("on_workers", 0)}
lim = "%s reads/s" % iops if iops != "0" else "no limit"
print("seed serving %d downloaders a %s MiB file each from a disk at %s (O_DIRECT 256 KiB reads); "
      "DHT pings to the seed every 25 ms meanwhile" % (ndl, size_mb, lim))
print("%-5s %-12s %8s %9s %7s %8s %8s %8s %6s %s" % ("round", "reads", "time s", "Mbit/s", "CPU s",
      "ping p50", "p99 ms", "max ms", "lost", "file reads (threads/workers)"))
figs, ratios, bad = [], [], 0
for r in runs:
    f = fig(r)
    bad += 0 if r["ok"] else 1
    where = "on workers" if r["read_threads"] == 0 else "%d threads" % r["read_threads"]
    print("%-5d %-12s %8.2f %9.1f %7.2f %8.2f %8.2f %8.2f %6d %d/%d%s" % (
        r["round"], where, f["s"], f["mbit"], f["cpu"], f["p50"], f["p99"], f["max"], f["lost"],
        f["on_threads"], f["on_workers"], "" if r["ok"] else "  NOT ALL COPIES OK"))
    tag = "r%d_%s" % (r["round"], "workers" if r["read_threads"] == 0 else "threads")
    for k, u, lab in (("s", "s", "time to the last copy"), ("mbit", "Mbit/s", "seed upload"),
                      ("cpu", "s", "seed CPU"), ("p50", "ms", "DHT ping p50"),
                      ("p99", "ms", "DHT ping p99"), ("max", "ms", "DHT ping max")):
        figs.append({"id": "%s_%s" % (tag, k), "label": "round %d, reads %s: %s" % (r["round"], where, lab),
                     "value": f[k], "unit": u})
for rnd in sorted({r["round"] for r in runs}):
    a = [r for r in runs if r["round"] == rnd and r["read_threads"] == 0]
    b = [r for r in runs if r["round"] == rnd and r["read_threads"] != 0]
    if not a or not b:
        continue
    fa, fb = fig(a[0]), fig(b[0])
    print("round %d: on threads / on workers: upload %.2fx, ping p99 %.1fx lower, max %.1fx lower, "
          "CPU %.2fx" % (rnd, fb["mbit"] / fa["mbit"], fa["p99"] / max(fb["p99"], 1e-3),
                        fa["max"] / max(fb["max"], 1e-3), fb["cpu"] / max(fa["cpu"], 1e-3)))
    for k, lab in (("mbit", "seed upload, reader threads / on the workers"),):
        ratios.append({"id": "serve_disk.r%d.upload" % rnd, "label": "round %d: %s" % (rnd, lab),
                       "value": fb["mbit"] / fa["mbit"], "num": "r%d_threads_mbit" % rnd,
                       "den": "r%d_workers_mbit" % rnd})
    ratios.append({"id": "serve_disk.r%d.ping_p99" % rnd,
                   "label": "round %d: DHT ping p99 on the workers / with reader threads" % rnd,
                   "value": fa["p99"] / max(fb["p99"], 1e-3), "num": "r%d_workers_p99" % rnd,
                   "den": "r%d_threads_p99" % rnd})
sys.path.insert(0, os.path.join(os.environ.get("TOP", "."), "bench"))
import benchres
path = benchres.write(
    "serve_disk", "bench/serve_disk.sh " + args, started, load0,
    params={"size_mb": int(size_mb), "downloaders": ndl, "iops": int(iops), "threads": int(threads)},
    same_work="the same seed binary, file size, downloaders and disk limit; only content.read_threads differs",
    figures=figs, ratios=ratios, notes=[] if not bad else ["%d runs with a copy missing or wrong" % bad])
print("result: %s" % path)
sys.exit(1 if bad else 0)
PY
