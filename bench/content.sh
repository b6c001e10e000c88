#!/bin/bash
# SPDX-License-Identifier: MIT
# Swarm download throughput: three providers and two downloaders in network
# namespaces on a bridge (tests/lib/netns.sh, veth). Release binaries;
# needs root, iperf3 and aria2c (Debian's aria2) for the comparison.
# Usage: bench/content.sh [SIZE_MB]   (default 256)
#
# Part 1, against the link: host 4's link is shaped with a token bucket
# (RATE, default 1gbit) so "link capacity" is a property of the setup, not
# of the CPU; iperf3 (TCP, 5 s) measures it in the same run, then
# `weftctl content get` on host 4 fetches SIZE_MB from the three providers
# found through the DHT, and the ratio download / iperf3 is printed (goal
# >= 0.8). RATE=none skips the shaping. KEEP_JOB=FILE keeps part 1's job
# (its JSON: providers, depths, answer times, first_chunk_ms) in FILE.
#
# Part 2, against BitTorrent (issue 17: goal >= 1.5x). Same work: the same
# file (SIZE_MB of random bytes, one copy on disk per seed), the same three
# seeding hosts and the same downloading host 5 over the same unthrottled
# veth bridge, in the same run, one after the other; each side checks
# every piece it receives (weft: BLAKE3 per 256 KiB chunk against the
# signed CV list; aria2: SHA-1 per 1 MiB piece) and writes the file to
# disk. weft: three long-running weftd seeds, providers from the DHT, the
# downloading weftd already running (the job's elapsed time, lookup
# included). aria2: three long-running aria2c seeds of a torrent of the
# same file, peers from a tracker (a minimal one in host 1's namespace:
# aria2's DHT needs a minute to bootstrap and weft's lookup is not
# timed apart either), the downloading aria2c started at t0 (process start
# included, about 0.1 s), done at its on-bt-download-complete hook.
# Differences that stay: weft's transfer is encrypted (QUIC, TLS 1.3
# AES-GCM) and aria2's BitTorrent is plaintext TCP. Ratio = aria2's time /
# weft's time. The JSON result (weft-bench/1) goes to $WEFT_BENCH_DIR
# (bench/run.sh) or $BUILD/bench/results.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
WEFTD=${WEFTD:-$BUILD/weftd} WEFTCTL=${WEFTCTL:-$BUILD/weftctl} PYTHON=${PYTHON:-/usr/bin/python3}
RATE=${RATE:-1gbit} SIZE_MB=${1:-256}
export TOP WEFTD WEFTCTL PYTHON
[ -x "$WEFTD" ] && [ -x "$WEFTCTL" ] || { echo "build $WEFTD and $WEFTCTL first"; exit 1; }
command -v iperf3 >/dev/null || { echo "SKIP: iperf3 missing"; exit 77; }
ARIA2=1
command -v aria2c >/dev/null || { ARIA2=0; echo "note: aria2c missing (Debian package aria2): no BitTorrent comparison"; }
. "$TOP/tests/lib/common.sh"
. "$TOP/tests/lib/netns.sh"
netns_require_root
netns_create 5 || fail "netns setup"
D=$(mktemp -d "${TMPDIR:-/tmp}/wcbench.XXXXXX")
netns_on_exit "rm -rf '$D'"
ctl() { local n=$1; shift; "$WEFTCTL" --socket "$D/n$n/weftd.sock" "$@"; }
STARTED=$(date -u +%FT%TZ)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

if [ "$RATE" != none ]; then
	# Traffic towards host 4 leaves the bridge through p4: shape it there.
	ip netns exec "${NS_PREFIX}br" tc qdisc add dev p4 root tbf rate "$RATE" burst 256kb \
		latency 20ms || fail "tc tbf"
fi

ip netns exec "$(netns_name 4)" iperf3 -s -1 -D -p 5201 >/dev/null 2>&1
sleep 0.5
IPERF=$(ip netns exec "$(netns_name 1)" iperf3 -c "$(netns_ip4 4)" -p 5201 -t 5 -J |
	"$PYTHON" -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))') ||
	fail "iperf3"

for n in 1 2 3 4 5; do
	mkdir -p "$D/n$n"
	NETNS_EXEC="ip netns exec $(netns_name "$n")"
	start_weftd "$D/n$n" --state-dir "$D/n$n" --io uring --workers 2 --quic-port 4433 \
		--dht-port 6881 --bootstrap "$(netns_ip4 1):6881" --log-level warn
done
head -c $((SIZE_MB << 20)) /dev/urandom >"$D/file.bin"
for n in 1 2 3; do ctl "$n" --json content add "$D/file.bin" >"$D/add$n" || fail "add"; done
ID=$(json_get items 0 id <"$D/add1")
npeers() { ctl "$1" --json dht get-peers "${ID:0:40}" | "$PYTHON" -c "import json,sys; print(len(json.load(sys.stdin)[\"peers\"]))"; }
wait_for '[ "$(npeers 4)" -ge 3 ] && [ "$(npeers 5)" -ge 3 ]' 200 || fail "providers not announced"
ctl 4 --json content get "$ID" >"$D/job" || fail "download: $(cat "$D/job")"
[ -n "${KEEP_JOB:-}" ] && cp "$D/job" "$KEEP_JOB"
# Context: one QUIC connection's bulk rate between the same hosts (the
# transport's ceiling on this machine, same run).
K1=$(ctl 1 --json status | json_get node_key)
curl -s --unix-socket "$D/n4/weftd.sock" -X POST http://weftd/v1/quic/bench \
	-d "{\"peer\":\"$K1@$(netns_ip4 1)\",\"bytes\":$((64 << 20)),\"mode\":\"discard\",\"seed\":1}" >"$D/qb"
echo "QUIC one connection host 1 -> host 4, 64 MiB: $(json_get mbit_s <"$D/qb" | cut -d. -f1) Mbit/s (load average $(cut -d' ' -f1 /proc/loadavg), $(nproc) CPUs)"

# Part 2: unthrottled, host 5, weft then aria2.
ctl 5 --json content get "$ID" >"$D/job5" || fail "download on host 5: $(cat "$D/job5")"
ARIA_S=0 ARIA_OK=0
if [ "$ARIA2" = 1 ]; then
	# torrent of the same file: 1 MiB pieces, announce to the tracker on host 1
	"$PYTHON" - "$D/file.bin" "$D/file.torrent" "http://$(netns_ip4 1):6969/announce" <<'PY' || fail "torrent"
import hashlib, os, sys
def be(x):
    if isinstance(x, int): return b"i%de" % x
    if isinstance(x, str): x = x.encode()
    if isinstance(x, bytes): return b"%d:%s" % (len(x), x)
    if isinstance(x, dict): return b"d" + b"".join(be(k) + be(x[k]) for k in sorted(x)) + b"e"
path, out, ann = sys.argv[1:]
pieces = []
with open(path, "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        pieces.append(hashlib.sha1(b).digest())
info = {"name": "file.bin", "length": os.path.getsize(path), "piece length": 1 << 20,
        "pieces": b"".join(pieces)}
open(out, "wb").write(be({"announce": ann, "info": info}))
PY
	# a tracker that names the three seeds (compact peers, BEP 23)
	cat >"$D/tracker.py" <<'PY'
import http.server, socket, sys
peers = b"".join(socket.inet_aton(ip) + (6891).to_bytes(2, "big") for ip in sys.argv[1:])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"d8:intervali600e5:peers%d:%se" % (len(peers), peers)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("0.0.0.0", 6969), H).serve_forever()
PY
	netns_exec 1 "$PYTHON" "$D/tracker.py" "$(netns_ip4 1)" "$(netns_ip4 2)" "$(netns_ip4 3)" \
		>"$D/tracker.log" 2>&1 &
	aria() { # aria NODE DIR ARGS...: aria2c in host NODE, BitTorrent only
		local n=$1 d=$2
		shift 2
		netns_exec "$n" aria2c --dir "$d" --enable-dht=false --enable-dht6=false \
			--bt-enable-lpd=false --enable-peer-exchange=false --listen-port=6891 \
			--file-allocation=none --summary-interval=0 --console-log-level=warn \
			--max-overall-upload-limit=0 --bt-max-peers=64 "$@" "$D/file.torrent" \
			>"$d/aria2.out" 2>&1
	}
	for n in 1 2 3; do
		mkdir -p "$D/a$n"
		ln "$D/file.bin" "$D/a$n/file.bin"
		aria "$n" "$D/a$n" --seed-ratio=0.0 --seed-time=600 --bt-seed-unverified=true \
			--check-integrity=false &
	done
	mkdir -p "$D/a5"
	printf '#!/bin/sh\ndate +%%s.%%N >"%s/done.stamp"\n' "$D/a5" >"$D/done.sh"
	chmod 755 "$D/done.sh"
	wait_for "netns_exec 1 curl -sf http://$(netns_ip4 1):6969/announce >/dev/null" 100 ||
		fail "tracker did not start"
	listening() { netns_exec "$1" ss -ltn | grep -q ':6891 '; }
	wait_for 'listening 1 && listening 2 && listening 3' 200 || fail "aria2 seeds not listening"
	T0=$(date +%s.%N)
	aria 5 "$D/a5" --seed-time=0 --on-bt-download-complete="$D/done.sh" &
	wait_for "[ -s '$D/a5/done.stamp' ]" 3000 || echo "aria2c on host 5: not done in 300 s"
	if [ -s "$D/a5/done.stamp" ] && cmp -s "$D/file.bin" "$D/a5/file.bin"; then
		ARIA_OK=1
		ARIA_S=$(awk -v a="$T0" -v b="$(cat "$D/a5/done.stamp")" 'BEGIN { print b - a }')
	fi
fi

"$PYTHON" - "$D/job" "$IPERF" "$RATE" "$D/job5" "$ARIA2" "$ARIA_OK" "$ARIA_S" "$SIZE_MB" \
	"$STARTED" "$LOAD0" "$*" <<'PY'
import json, os, platform, subprocess, sys, time
(jobf, iperf, rate, job5f, have_aria, aria_ok, aria_s, size_mb, started, load0,
 args) = sys.argv[1:]
j = json.load(open(jobf)); iperf = int(iperf)
# rate over the transfer itself: elapsed_ms starts before the DHT lookup
bps = j["bytes"] * 8 * 1000 / max(j["elapsed_ms"], 1)
prov = ", ".join("%s %d chunks" % (p["addr"], p["chunks"]) for p in j["providers"])
print("link %s: iperf3 TCP %.0f Mbit/s" % (rate, iperf / 1e6))
print("swarm download %d MiB from %d providers (%s): %.1f s, %.0f Mbit/s; first chunk at %d ms" %
      (j["bytes"] >> 20, len(j["providers"]), prov, j["elapsed_ms"] / 1000, bps / 1e6,
       j.get("first_chunk_ms", -1)))
print("ratio download / iperf3: %.2f (goal >= 0.80)" % (bps / iperf))
j5 = json.load(open(job5f))
ok5 = j5.get("state") == "done" and j5["have"] == j5["nchunks"]
w_s = j5["elapsed_ms"] / 1000.0
size = int(size_mb) << 20
figs = [
    {"id": "iperf3_mbit_s", "label": "iperf3 TCP, link %s" % rate, "value": iperf / 1e6, "unit": "Mbit/s"},
    {"id": "weft_shaped_mbit_s", "label": "weft swarm download, 3 providers, link %s" % rate,
     "value": bps / 1e6, "unit": "Mbit/s"},
    {"id": "weft_s", "label": "weft swarm download %d MiB, 3 providers, unthrottled veth" % int(size_mb),
     "value": w_s, "unit": "s"},
]
ratios = [{"id": "content.shaped_vs_iperf3", "label": "weft swarm download / iperf3 (link %s)" % rate,
           "value": (bps / 1e6) / (iperf / 1e6), "num": "weft_shaped_mbit_s",
           "den": "iperf3_mbit_s", "goal": 0.8}]
notes = []
print("unthrottled, host 5: weft %d MiB from 3 providers in %.2f s (%.0f Mbit/s)%s" %
      (int(size_mb), w_s, size * 8 / w_s / 1e6, "" if ok5 else " NOT COMPLETE"))
if have_aria == "1" and aria_ok == "1":
    a_s = float(aria_s)
    figs.append({"id": "aria2_s", "label": "aria2c BitTorrent download %d MiB, 3 aria2c seeds, "
                 "unthrottled veth" % int(size_mb), "value": a_s, "unit": "s"})
    ratios.append({"id": "content.weft_vs_aria2", "label": "weft vs aria2 (BitTorrent), 3 "
                   "providers, unthrottled veth: aria2 time / weft time", "value": a_s / w_s,
                   "num": "aria2_s", "den": "weft_s", "goal": 1.5})
    print("unthrottled, host 5: aria2 (BitTorrent, 3 seeds) %d MiB in %.2f s (%.0f Mbit/s), file identical"
          % (int(size_mb), a_s, size * 8 / a_s / 1e6))
    print("ratio weft vs aria2 (aria2 time / weft time): %.2f (goal >= 1.50)" % (a_s / w_s))
elif have_aria == "1":
    notes.append("aria2c did not complete the download (or the file differed): no ratio")
    print("aria2: the download did not complete or the file differs: no ratio")
else:
    notes.append("aria2c missing: no BitTorrent comparison")
def first(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.split("\n")[0].strip()
    except OSError:
        return ""
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
top = os.environ.get("TOP", ".")
res = {"schema": "weft-bench/1", "harness": "content",
       "command": "bench/content.sh " + args, "commit": os.environ.get("WEFT_BENCH_COMMIT") or
       first(["git", "-C", top, "describe", "--always", "--dirty", "--abbrev=12"]) or "unknown",
       "kernel": platform.release(), "cpu_model": cpu, "started": started,
       "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "loadavg": load0, "params": {"size_mb": int(size_mb), "rate": rate,
                                    "aria2": first(["aria2c", "--version"]) if have_aria == "1" else ""},
       "same_work": "same file, same 3 seeding hosts and downloading host, same unthrottled veth "
                    "bridge, same run; every piece checked (weft BLAKE3 per 256 KiB, aria2 SHA-1 per "
                    "1 MiB) and written to disk; long-running seeds on both sides; weft encrypted "
                    "(QUIC, AES-GCM), BitTorrent plaintext TCP",
       "figures": figs, "ratios": ratios, "notes": notes}
out = os.environ.get("WEFT_BENCH_DIR") or os.path.join(os.environ.get("BUILD", "build"), "bench", "results")
os.makedirs(out, exist_ok=True)
path = os.path.join(out, "content-%s-%d.json" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), os.getpid()))
with open(path + ".tmp", "w") as f:
    json.dump(res, f, indent=1)
os.rename(path + ".tmp", path)
print("result: %s" % path)
if not ok5:
    sys.exit(1)
PY
