#!/bin/bash
# SPDX-License-Identifier: MIT
# Swarm download throughput: three providers and one downloader in network
# namespaces on a bridge (tests/lib/netns.sh, veth). The downloader's link
# is shaped with a token bucket (RATE, default 1gbit) so "link capacity" is
# a property of the setup, not of the CPU; iperf3 (TCP, 5 s) measures it in
# the same run, then `weftctl content get` fetches SIZE_MB from the three
# providers found through the DHT, and the ratio download / iperf3 is
# printed (goal >= 0.8). RATE=none skips shaping (veth at CPU speed; then
# the figure is weftd's own ceiling). Release binaries; needs root, iperf3.
# Usage: bench/content.sh [SIZE_MB]   (default 256)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
WEFTD=${WEFTD:-$BUILD/weftd} WEFTCTL=${WEFTCTL:-$BUILD/weftctl} PYTHON=${PYTHON:-/usr/bin/python3}
RATE=${RATE:-1gbit} SIZE_MB=${1:-256}
export TOP WEFTD WEFTCTL PYTHON
[ -x "$WEFTD" ] && [ -x "$WEFTCTL" ] || { echo "build $WEFTD and $WEFTCTL first"; exit 1; }
command -v iperf3 >/dev/null || { echo "SKIP: iperf3 missing"; exit 77; }
. "$TOP/tests/lib/common.sh"
. "$TOP/tests/lib/netns.sh"
netns_require_root
netns_create 4 || fail "netns setup"
D=$(mktemp -d /tmp/wcbench.XXXXXX)
netns_on_exit "rm -rf '$D'"
ctl() { local n=$1; shift; "$WEFTCTL" --socket "$D/n$n/weftd.sock" "$@"; }

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

for n in 1 2 3 4; do
	mkdir -p "$D/n$n"
	NETNS_EXEC="ip netns exec $(netns_name "$n")"
	start_weftd "$D/n$n" --state-dir "$D/n$n" --io uring --workers 2 --quic-port 4433 \
		--dht-port 6881 --bootstrap "$(netns_ip4 1):6881" --log-level warn
done
head -c $((SIZE_MB << 20)) /dev/urandom >"$D/file.bin"
for n in 1 2 3; do ctl "$n" --json content add "$D/file.bin" >"$D/add$n" || fail "add"; done
rm -f "$D/file.bin"
ID=$(json_get items 0 id <"$D/add1")
wait_for '[ "$(ctl 4 --json dht get-peers "${ID:0:40}" | "$PYTHON" -c "import json,sys; print(len(json.load(sys.stdin)[\"peers\"]))")" -ge 3 ]' 200 ||
	fail "providers not announced"
ctl 4 --json content get "$ID" >"$D/job" || fail "download: $(cat "$D/job")"
# Context: one QUIC connection's bulk rate between the same hosts (the
# transport's ceiling on this machine, same run).
K1=$(ctl 1 --json status | json_get node_key)
curl -s --unix-socket "$D/n4/weftd.sock" -X POST http://weftd/v1/quic/bench \
	-d "{\"peer\":\"$K1@$(netns_ip4 1)\",\"bytes\":$((64 << 20)),\"mode\":\"discard\",\"seed\":1}" >"$D/qb"
echo "QUIC one connection host 1 -> host 4, 64 MiB: $(json_get mbit_s <"$D/qb" | cut -d. -f1) Mbit/s (load average $(cut -d' ' -f1 /proc/loadavg), $(nproc) CPUs)"
"$PYTHON" - "$D/job" "$IPERF" "$RATE" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); iperf = int(sys.argv[2])
# rate over the transfer itself: elapsed_ms starts before the DHT lookup
bps = j["bytes"] * 8 * 1000 / max(j["elapsed_ms"], 1)
prov = ", ".join("%s %d chunks" % (p["addr"], p["chunks"]) for p in j["providers"])
print("link %s: iperf3 TCP %.0f Mbit/s" % (sys.argv[3], iperf / 1e6))
print("swarm download %d MiB from %d providers (%s): %.1f s, %.0f Mbit/s" %
      (j["bytes"] >> 20, len(j["providers"]), prov, j["elapsed_ms"] / 1000, bps / 1e6))
print("ratio download / iperf3: %.2f (goal >= 0.80)" % (bps / iperf))
PY
