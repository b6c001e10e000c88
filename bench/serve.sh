#!/bin/bash
# SPDX-License-Identifier: MIT
# A seed host's serving (issue 29; docs/CONTENT.md "Fair, capped
# serving", "Super-seeding"): one seed (host 1) and downloaders in network
# namespaces on a veth bridge (tests/lib/netns.sh). Release binaries;
# needs root and iperf3. The seed's upload link is shaped with a token
# bucket on its own interface (RATE, default 200mbit), so "the link" is a
# property of the setup; iperf3 (TCP, 5 s, seed -> host 2) measures it in
# the same run.
# Usage: bench/serve.sh [SIZE_MB]   (default 64)
# PARTS=1 (or 12, 3, 23...; default 123) runs only the parts named: part 1
#   alone takes about a minute, for before/after comparisons of the
#   fairness case; part 3 alone, of super-seeding (until 2026-12-04 weft's
#   part 1 ran whatever PARTS said).
# DELAY_MS=N (default 0) holds what every downloader sends N ms
#   (netns_delay_uplink: a delay line between its port and the bridge, as
#   this kernel has no sch_netem; the requests and ACKs, so the seed's
#   shaped path and its queue are untouched): a path with an Internet's
#   round trip instead of the veth's 0.1-0.3 ms.
# WINDOW=S (default 8): the seconds part 1 measures over, for weft and
#   for the TCP reference alike (iperf3 runs S+2 s, its intervals 1..S+1
#   are taken); Cubic's sawtooth at a longer round trip needs more than 8
#   s to average out, for both. A file of SIZE_MB lasts about
#   8*SIZE_MB*8/RATE s: give it room (WINDOW=16 with 128).
# PATHS=M1,M2,... (Mbit/s, default none) shapes what each downloader
#   receives at its own bridge port (downloader 2 gets M1, 3 gets M2...):
#   downloaders limited by their own paths, for the case where the seed's
#   link is not what decides (with RATE=10gbit); the automatic cap must
#   cost them nothing there.
# UPLOAD1=auto (or a RATE) sets part 1's upload limit (`weftctl content
#   limits --upload`; default none): the automatic cap's fairness case
#   (docs/CONTENT.md "The automatic cap"). SETTLE=S (default 1): the
#   seconds between every downloader being served and part 1's window.
# FAIR=false runs the seed without fair windows (default true: the seed is
#   configured as docs/OPERATIONS.md advises a seed host whose uplink is
#   its bottleneck, `quic.fair_windows`, docs/QUIC.md "Fair windows"; the
#   downloaders keep the default, off).
# SET=SEC.KEY=VAL passes one more configuration key to every weftd (e.g.
#   content.read_threads=0 for the seed's reads on its workers, for an A/B).
# TRACE=FILE appends, every 0.5 s of part 1's window, the seed's
#   /v1/content/peers and /v1/quic/conns (one JSON object a line: time,
#   peers, conns) for a look at per-peer rates, queues, cwnd and RTT.
#
# Part 1, fairness: 8 downloaders fetch a SIZE_MB file told about the
#   seed only and unable to reach each other (nftables in their namespaces;
#   super-seeding off). Over an 8 s window (WINDOW) while all 8 run, the
#   seed's per-peer bytes (GET /v1/content/peers): total upload / iperf3
#   (goal >= 0.9) and Jain's fairness index across the 8 (goal >= 0.95).
# Part 2, the cap: `weftctl content limits --upload 100Mbit`, the same 8
#   (still isolated) fetch a second file; the seed's upload over a 10 s window against
#   100 Mbit/s (goal: within 10%), and Jain's index across the 8 there
#   (the cap makes the seed's scheduler, not the link, decide who is served).
# Part 3, super-seeding: 20 downloaders (the DHT bootstrapped on the
#   seed, so they find each other) fetch a third, new file, super-seeded
#   (the default for new content); the seed's upload until all 20 are done
#   / the file's size (goal <= 1.5).
# The JSON result (weft-bench/1) goes to $WEFT_BENCH_DIR (bench/run.sh) or
# $BUILD/bench/results.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
WEFTD=${WEFTD:-$BUILD/weftd} WEFTCTL=${WEFTCTL:-$BUILD/weftctl} PYTHON=${PYTHON:-/usr/bin/python3}
RATE=${RATE:-200mbit} DELAY_MS=${DELAY_MS:-0} SIZE_MB=${1:-64} NDL=${NDL:-8} NSS=${NSS:-20} PARTS=${PARTS:-123} TRACE=${TRACE:-}
WINDOW=${WINDOW:-8} UPLOAD1=${UPLOAD1:-} SETTLE=${SETTLE:-1} PATHS=${PATHS:-} FAIR=${FAIR:-true}
export TOP WEFTD WEFTCTL PYTHON DELAY_MS TCPF WINDOW UPLOAD1 FAIR
[ -x "$WEFTD" ] && [ -x "$WEFTCTL" ] || { echo "build $WEFTD and $WEFTCTL first"; exit 1; }
command -v iperf3 >/dev/null || { echo "SKIP: iperf3 missing"; exit 77; }
. "$TOP/tests/lib/common.sh"
. "$TOP/tests/lib/netns.sh"
netns_require_root
part() { case "$PARTS" in *"$1"*) return 0 ;; esac; return 1; }
NH=$((NSS + 1))
part 3 || NH=$((NDL + 1))
netns_create "$NH" || fail "netns setup"
D=$(mktemp -d "${TMPDIR:-/tmp}/wsbench.XXXXXX")
netns_on_exit "rm -rf '$D'"
ctl() { local n=$1; shift; "$WEFTCTL" --socket "$D/n$n/weftd.sock" "$@"; }
STARTED=$(date -u +%FT%TZ)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
SEED=$(netns_ip4 1)

# the seed's upload: its own egress
netns_exec 1 tc qdisc add dev eth0 root tbf rate "$RATE" burst 256kb latency 20ms || fail "tc tbf"
if [ "$DELAY_MS" != 0 ]; then
	for ((n = 2; n <= NH; n++)); do
		netns_exec "$n" ethtool -K eth0 tx off gso off tso off tx-udp-segmentation off >/dev/null 2>&1
		netns_delay_uplink "$n" "$DELAY_MS" || fail "delay line"
	done
fi
if [ -n "$PATHS" ]; then
	n=2
	for m in ${PATHS//,/ }; do
		ip netns exec "${NS_PREFIX}br" tc qdisc add dev "p$n" root tbf rate "${m}mbit" burst 64kb \
			latency 20ms || fail "tc tbf on p$n"
		n=$((n + 1))
	done
	echo "downloaders' own paths (Mbit/s, from host 2): $PATHS"
fi
ip netns exec "$(netns_name 2)" iperf3 -s -1 -D -p 5201 >/dev/null 2>&1
sleep 0.5
IPERF=$(ip netns exec "$(netns_name 1)" iperf3 -c "$(netns_ip4 2)" -p 5201 -t 5 -J |
	"$PYTHON" -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))') ||
	fail "iperf3"
echo "link (seed egress $RATE, downloaders +${DELAY_MS} ms): iperf3 TCP $((IPERF / 1000000)) Mbit/s"

for ((n = 1; n <= NH; n++)); do
	mkdir -p "$D/n$n"
	NETNS_EXEC="ip netns exec $(netns_name "$n")"
	w=1 seedset=()
	[ "$n" = 1 ] && w=2 seedset=(--set "quic.fair_windows=$FAIR")
	start_weftd "$D/n$n" --state-dir "$D/n$n" --io uring --workers $w --quic-port 4433 \
		--dht-port 6881 --bootstrap "$SEED:6881" --log-level warn "${seedset[@]}" \
		${SET:+--set "$SET"}
done
mkfile() { head -c $((SIZE_MB << 20)) /dev/urandom >"$D/$1"; }
add() { ctl 1 --json content add "$D/$1" | json_get items 0 id; }
get() { # get HOST ID: a job started, its number printed
	ctl "$1" --json content get "$2" --out "$D/n$1" --from "$SEED" --no-wait | json_get job
}
peers() { curl -s --unix-socket "$D/n1/weftd.sock" http://weftd/v1/content/peers; }
conns() { curl -s --unix-socket "$D/n1/weftd.sock" http://weftd/v1/quic/conns; }
trace() { # trace SECONDS: snapshots into $TRACE every 0.5 s
	local k
	for ((k = 0; k < $1 * 2; k++)); do
		printf '{"t":%s,"peers":%s,"conns":%s}\n' "$(date +%s.%N)" "$(peers)" "$(conns)" >>"$TRACE"
		sleep 0.5
	done
}
served() { ctl 1 --json content stats | json_get served_bytes; }
done_job() { [ "$(ctl "$1" --json content jobs "$2" | json_get state)" = done ]; }

# Parts 1 and 2 measure the seed's own serving: downloaders reach the seed
# only (they would learn each other from its PEERS answers and take most
# chunks from each other, which weft's downloader prefers); part 3 lifts it.
isolate() { # isolate on|off: each downloader drops traffic to the others
	local i
	for ((i = 2; i <= NH; i++)); do
		if [ "$1" = on ]; then
			netns_exec "$i" nft -f - <<NFT || fail "nft"
table inet wsbench {
	chain out { type filter hook output priority 0; ip daddr 198.51.100.0/24 ip daddr != $SEED drop; }
}
NFT
		else
			netns_exec "$i" nft delete table inet wsbench
		fi
	done
}
isolate on

# --- part 1: fairness across NDL downloaders, no cap
# The reference first: NDL TCP flows (iperf3, Cubic as weft's QUIC uses)
# from the seed to the same downloaders, over the same shaped path, the
# same window (seconds 1 to WINDOW+1 of WINDOW+2): how fairly the kernel's own TCP
# shares this link among as many flows.
TCPF="$D/tcpfair"
mkdir -p "$TCPF"
if part 1; then
	PIDS=()
	for ((i = 2; i <= NDL + 1; i++)); do
		ip netns exec "$(netns_name "$i")" iperf3 -s -1 -D -p 5202 >/dev/null 2>&1
	done
	sleep 0.5
	for ((i = 2; i <= NDL + 1; i++)); do
		ip netns exec "$(netns_name 1)" iperf3 -c "$(netns_ip4 "$i")" -p 5202 -t $((WINDOW + 2)) -C cubic -J \
			>"$TCPF/$i.json" 2>/dev/null &
		PIDS+=($!)
	done
	wait "${PIDS[@]}"
fi
ctl 1 content limits --superseed 0 >/dev/null || fail "limits"
T1=0 T2=1
echo '{"peers":[]}' >"$D/p1a"
echo '{"peers":[]}' >"$D/p1b"
if part 1; then
[ -z "$UPLOAD1" ] || ctl 1 content limits --upload "$UPLOAD1" >/dev/null || fail "limits"
mkfile f1
ID1=$(add f1) || fail "add f1"
for ((i = 2; i <= NDL + 1; i++)); do J1[$i]=$(get $i "$ID1") || fail "get on host $i"; done
active() { [ "$(peers | "$PYTHON" -c 'import json,sys; print(sum(1 for p in json.load(sys.stdin)["peers"] if p["sent_bytes"] > 0))')" -ge "$NDL" ]; }
wait_for active 300 || fail "not every downloader is being served"
sleep "$SETTLE"
peers >"$D/p1a"
T1=$(date +%s.%N)
if [ -n "$TRACE" ]; then trace "$WINDOW"; else sleep "$WINDOW"; fi
peers >"$D/p1b"
T2=$(date +%s.%N)
[ -z "$UPLOAD1" ] || ctl 1 content limits
for ((i = 2; i <= NDL + 1; i++)); do wait_for "done_job $i ${J1[$i]}" 1200 || echo "host $i: part 1 not done"; done
fi
S1=0 S2=0 T3=0 T4=1 S3=0 S4=0 T5=0 T6=1 ok3=1
echo '{"peers":[]}' >"$D/p2a"
echo '{"peers":[]}' >"$D/p2b"

# --- part 2: the 100 Mbit/s cap, a second file
if part 2; then
ctl 1 content limits --upload 100Mbit >/dev/null || fail "limits"
mkfile f2
ID2=$(add f2) || fail "add f2"
for ((i = 2; i <= NDL + 1; i++)); do J2[$i]=$(get $i "$ID2") || fail "get on host $i"; done
sleep 3
S1=$(served)
peers >"$D/p2a"
T3=$(date +%s.%N)
sleep 10
S2=$(served)
peers >"$D/p2b"
T4=$(date +%s.%N)
ctl 1 content limits --upload off >/dev/null || fail "limits"
for ((i = 2; i <= NDL + 1; i++)); do wait_for "done_job $i ${J2[$i]}" 1200 || echo "host $i: part 2 not done"; done
fi

# --- part 3: super-seeding a new file to NSS downloaders
if part 3; then
isolate off
ctl 1 content limits --superseed 600 >/dev/null || fail "limits"
mkfile f3
ID3=$(add f3) || fail "add f3"
S3=$(served)
T5=$(date +%s.%N)
for ((i = 2; i <= NSS + 1; i++)); do J3[$i]=$(get $i "$ID3") || fail "get on host $i"; done
ok3=1
for ((i = 2; i <= NSS + 1; i++)); do wait_for "done_job $i ${J3[$i]}" 3000 || { ok3=0; echo "host $i: part 3 not done"; }; done
T6=$(date +%s.%N)
S4=$(served)
for ((i = 2; i <= NSS + 1; i++)); do cmp -s "$D/f3" "$D/n$i/$ID3" || { ok3=0; echo "host $i: file differs"; }; done
fi

"$PYTHON" - "$D/p1a" "$D/p1b" "$D/p2a" "$D/p2b" "$T1" "$T2" "$IPERF" "$S1" "$S2" "$T3" "$T4" "$S3" "$S4" "$T5" "$T6" \
	"$ok3" "$SIZE_MB" "$NDL" "$NSS" "$RATE" "$STARTED" "$LOAD0" "$PARTS" "$*" <<'PY'
import json, os, platform, subprocess, sys, time
(p1a, p1b, p2a, p2b, t1, t2, iperf, s1, s2, t3, t4, s3, s4, t5, t6, ok3, size_mb, ndl, nss, rate, started,
 load0, parts, args) = sys.argv[1:]
t1, t2, t3, t4, t5, t6 = map(float, (t1, t2, t3, t4, t5, t6))
iperf = int(iperf); ndl = int(ndl); nss = int(nss); size = int(size_mb) << 20
def by_ip(f):
    m = {}
    for p in json.load(open(f))["peers"]:
        ip = p["addr"].rsplit(":", 1)[0]
        m[ip] = m.get(ip, 0) + p["sent_bytes"]
    return m
def window(fa, fb):
    a, b = by_ip(fa), by_ip(fb)
    return [b[k] - a.get(k, 0) for k in b if b[k] - a.get(k, 0) > 0]
def jain_of(x):
    return sum(x) ** 2 / (len(x) * sum(v * v for v in x)) if x else 0
x = window(p1a, p1b)
x2 = window(p2a, p2b)
tot_bps = sum(x) * 8 / (t2 - t1)
jain = jain_of(x)
jain2 = jain_of(x2)
cap_bps = (int(s2) - int(s1)) * 8 / (t4 - t3)
ss = (int(s4) - int(s3)) / size
tcp = []
W = int(os.environ["WINDOW"])
tdir = os.environ.get("TCPF", "")
for fn in sorted(os.listdir(tdir)) if tdir and os.path.isdir(tdir) else []:
    try:
        iv = json.load(open(os.path.join(tdir, fn)))["intervals"][1:1 + W]
        tcp.append(sum(i["sum"]["bytes"] for i in iv))
    except (OSError, ValueError, KeyError, TypeError):
        pass
jain_tcp = jain_of(tcp) if len(tcp) == ndl else 0
if tcp:
    print("part 1 reference: %d TCP flows (iperf3, Cubic) over the same path, %d s: %.0f Mbit/s, "
          "Jain's index %.3f; per flow Mbit/s: %s" %
          (len(tcp), W, sum(tcp) * 8 / (W * 1e6), jain_tcp, " ".join("%.0f" % (v / 1e6) for v in sorted(tcp))))
lim1 = os.environ.get("UPLOAD1", "")
fairw = "fair windows " + ("on" if os.environ.get("FAIR", "true") in ("true", "1", "yes", "on") else "off")
if "1" in parts:
  print("seed: %s (quic.fair_windows)" % fairw)
  print("part 1%s: %d downloaders served, seed upload %.0f Mbit/s over %.1f s = %.2fx the link "
      "(goal >= 0.90); Jain's index %.3f (goal >= 0.95); per peer Mbit/s: %s" %
      (" (upload " + lim1 + ")" if lim1 else "", len(x), tot_bps / 1e6, t2 - t1, tot_bps / iperf, jain,
       " ".join("%.0f" % (v * 8 / (t2 - t1) / 1e6) for v in sorted(x))))
if jain_tcp and "1" in parts:
    print("part 1: Jain's index weft / TCP %.2f" % (jain / jain_tcp))
if "2" in parts:
    print("part 2: cap 100 Mbit/s, seed upload %.1f Mbit/s over %.1f s: %.3fx the cap (goal 0.9-1.1); "
      "%d downloaders served, Jain's index %.3f; per peer Mbit/s: %s" %
      (cap_bps / 1e6, t4 - t3, cap_bps / 1e8, len(x2), jain2,
       " ".join("%.1f" % (v * 8 / (t4 - t3) / 1e6) for v in sorted(x2))))
if "3" in parts:
    print("part 3: super-seeding, %d downloaders of %d MiB: the seed sent %.0f MiB = %.2fx the file "
      "(goal <= 1.5), all done in %.1f s%s" % (nss, size >> 20, (int(s4) - int(s3)) / 2**20, ss,
                                               t6 - t5, "" if ok3 == "1" else " (NOT ALL DONE)"))
figs0 = [
    {"id": "iperf3_mbit_s", "label": "iperf3 TCP, seed egress %s" % rate, "value": iperf / 1e6, "unit": "Mbit/s"},
    {"id": "seed_upload_mbit_s", "label": "seed upload, %d downloaders" % ndl, "value": tot_bps / 1e6, "unit": "Mbit/s"},
    {"id": "jain", "label": "Jain's fairness index, %d downloaders%s" % (ndl, ", upload " + lim1 if lim1 else ""),
     "value": jain, "unit": ""},
    {"id": "one", "label": "one", "value": 1.0, "unit": ""},
    {"id": "jain_tcp", "label": "Jain's fairness index, %d TCP flows (iperf3, Cubic), same path" % ndl,
     "value": jain_tcp, "unit": ""},
    {"id": "jain_capped", "label": "Jain's fairness index, %d downloaders, 100 Mbit/s cap" % ndl,
     "value": jain2, "unit": ""},
    {"id": "capped_mbit_s", "label": "seed upload under a 100 Mbit/s cap", "value": cap_bps / 1e6, "unit": "Mbit/s"},
    {"id": "cap_mbit_s", "label": "the cap", "value": 100.0, "unit": "Mbit/s"},
    {"id": "ss_upload_mib", "label": "seed upload, super-seeding %d downloaders" % nss,
     "value": (int(s4) - int(s3)) / 2**20, "unit": "MiB"},
    {"id": "file_mib", "label": "the file", "value": size / 2**20, "unit": "MiB"},
    {"id": "goal.ss_upload_mib", "label": "goal: seed upload at most 1.5x the file",
     "value": 1.5 * size / 2**20, "unit": "MiB"},
]
ratios0 = [
    {"id": "serve.upload_vs_link", "label": "seed upload / link (iperf3), %d downloaders" % ndl,
     "value": tot_bps / iperf, "num": "seed_upload_mbit_s", "den": "iperf3_mbit_s", "goal": 0.9},
    {"id": "serve.jain", "label": "Jain's fairness index across %d downloaders (%s)" % (ndl, fairw), "value": jain,
     "num": "jain", "den": "one", "goal": 0.95},
    {"id": "serve.jain_vs_tcp", "label": "Jain's index, weft / %d TCP flows over the same path" % ndl,
     "value": jain / jain_tcp if jain_tcp else 0, "num": "jain", "den": "jain_tcp"},
    {"id": "serve.jain_capped", "label": "Jain's fairness index under the 100 Mbit/s cap", "value": jain2,
     "num": "jain_capped", "den": "one", "goal": 0.95},
    {"id": "serve.cap", "label": "seed upload / 100 Mbit/s cap (goal within 10%)", "value": cap_bps / 1e8,
     "num": "capped_mbit_s", "den": "cap_mbit_s", "goal": 0.9},
    {"id": "serve.superseed_size", "label": "seed upload / file size, %d downloaders, super-seeding" % nss,
     "value": ss, "num": "ss_upload_mib", "den": "file_mib"},
    # A "<=" goal as goal / measured, met at >= 1.0x (docs/BENCH.md, "Results").
    {"id": "serve.superseed", "label": "super-seeding, %d downloaders: 1.5x the file / seed upload "
     "(goal: upload <= 1.5x the file)" % nss,
     "value": 1.5 / ss if ss else 0, "num": "goal.ss_upload_mib", "den": "ss_upload_mib", "goal": 1.0},
]
# the figures of the parts run (PARTS)
skip = set() if "1" in parts else {"seed_upload_mbit_s", "jain", "jain_tcp", "serve.upload_vs_link", "serve.jain",
                                   "serve.jain_vs_tcp"}
skip |= set() if "2" in parts else {"jain_capped", "capped_mbit_s", "cap_mbit_s", "serve.jain_capped", "serve.cap"}
skip |= set() if "3" in parts else {"ss_upload_mib", "file_mib", "goal.ss_upload_mib", "serve.superseed_size",
                                     "serve.superseed"}
figs = [f for f in figs0 if f["id"] not in skip]
ratios = [r for r in ratios0 if r["id"] not in skip]
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
def first(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.split("\n")[0].strip()
    except OSError:
        return ""
top = os.environ.get("TOP", ".")
res = {"schema": "weft-bench/1", "harness": "serve", "command": "bench/serve.sh " + args,
       "commit": os.environ.get("WEFT_BENCH_COMMIT") or
       first(["git", "-C", top, "describe", "--always", "--dirty", "--abbrev=12"]) or "unknown",
       "kernel": platform.release(), "cpu_model": cpu, "started": started,
       "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg": load0,
       "params": {"size_mb": int(size_mb), "rate": rate, "downloaders": ndl, "superseed_downloaders": nss,
                  "parts": parts, "delay_ms": int(os.environ.get("DELAY_MS", "0")), "window_s": W},
       "same_work": "one seed, its egress shaped; iperf3 over the same path in the same run",
       "figures": figs, "ratios": ratios, "notes": [] if ok3 == "1" else ["part 3 incomplete"]}
out = os.environ.get("WEFT_BENCH_DIR") or os.path.join(os.environ.get("BUILD", "build"), "bench", "results")
os.makedirs(out, exist_ok=True)
path = os.path.join(out, "serve-%s-%d.json" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), os.getpid()))
with open(path + ".tmp", "w") as f:
    json.dump(res, f, indent=1)
os.rename(path + ".tmp", path)
print("result: %s" % path)
PY
