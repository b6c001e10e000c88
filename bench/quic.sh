#!/bin/bash
# SPDX-License-Identifier: MIT
# QUIC: bulk throughput of one connection and sequential handshakes per
# second, weft (two release weftd, POST /v1/quic/bench and
# /v1/quic/handshakes) vs ngtcp2's example programs gtlsserver/gtlsclient
# (HTTP/3 download of a file of the same size, same windows) vs kernel TCP
# (iperf3, the ceiling), on loopback and on a veth pair between two
# namespaces (root only). One table with ratios.
#   usage: bench/quic.sh [BYTES (default 1 GiB)] [HANDSHAKES (default 500)]
# Notes on fairness:
# - weft's figure is stream time (first byte written -> peer's count back);
#   gtlsclient's is the process wall time (start-up + handshake + download),
#   which favours weft by ~1-2 ms per run (< 1% at 1 GiB).
# - The per-source policer (100 kpps per source by default, ~1.1 Gbit/s) and
#   the per-address connection limit are lifted on both nodes for the run:
#   they are abuse limits, not transport limits.
# - gtlsclient handshakes are one process each (start-up included).
# - Every program runs pinned the same way: the sending/dialing side on
#   CPU 0, the serving side on CPU 1 (taskset), weft, gtls and iperf3
#   alike. Unpinned, the scheduler sometimes put both ends on one CPU and
#   the same binary varied 2x between runs.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
BYTES=${1:-1073741824}
NHS=${2:-500}
WEFTD=$BUILD/weftd
for t in "$WEFTD" gtlsserver gtlsclient iperf3 curl taskset; do
	command -v "$t" >/dev/null || { echo "SKIP: bench/quic.sh needs $t (make; apt ngtcp2-server ngtcp2-client iperf3)"; exit 77; }
done
export TOP
W=$(mktemp -d /tmp/wqbench.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
now_ns() { date +%s%N; }
jget() { /usr/bin/python3 -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1:]: v=v[k]
print(v)' "$@"; }
api() { local n=$1 m=$2 p=$3; shift 3; curl -s --unix-socket "$W/n$n/weftd.sock" -X "$m" "http://weftd$p" "$@"; }

# Shared inputs: a file of BYTES for gtlsserver, a tiny one for handshakes,
# an ECDSA P-256 certificate.
mkdir -p "$W/htdocs" "$W/dl"
head -c "$BYTES" /dev/zero >"$W/htdocs/blob"
echo hi >"$W/htdocs/hs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/k.pem" \
	-out "$W/c.pem" -days 2 -subj /CN=bench 2>/dev/null || { echo "openssl failed"; exit 1; }
WIN=(--max-data=16M --max-stream-data-bidi-local=6M --max-stream-data-bidi-remote=6M)

# run_set LABEL EXEC1 EXEC2 ADDR1 ADDR2 [WEFT_IO_ARGS [weft-only]]: one row
# set. EXECn prefixes a command to run on host n ("" on loopback, "ip netns
# exec ..." on veth). WEFT_IO_ARGS replaces weftd's "--io uring"; with
# "weft-only" the reference and TCP figures of the previous set are reused
# (same hosts, same run).
run_set() {
	local label=$1 x1="$2 taskset -c 0" x2="$3 taskset -c 1" a1=$4 a2=$5 p n k2 out t0 t1 i ok
	local wio=${6:---io uring} only=${7:-}
	p=$((20000 + RANDOM % 20000))
	for n in 1 2; do
		rm -rf "$W/n$n"
		mkdir -p "$W/n$n"
		local x=$x1 a=$a1
		[ "$n" = 2 ] && x=$x2 a=$a2
		$x "$WEFTD" --state-dir "$W/n$n" $wio --workers 1 --bind "$a" \
			--quic-port $((p + n)) --dht-port $((p + 10 + n)) --log-level warn \
			--set quic.max_conns_per_addr=100000 >"$W/n$n.log" 2>&1 &
		PIDS+=($!)
	done
	for i in $(seq 100); do
		api 1 GET /v1/status >/dev/null 2>&1 && api 2 GET /v1/status >/dev/null 2>&1 && break
		sleep 0.1
	done
	for n in 1 2; do
		api $n PUT /v1/xdp/limits -d '{"quic":{"pps":0,"burst":0},"quic_initial":{"pps":0,"burst":0}}' >/dev/null
	done
	k2=$(api 2 GET /v1/status | jget node_key) || { echo "weftd did not start"; cat "$W"/n*.log; return 1; }

	# weft bulk (discard: the receiver counts; no hashing on either side)
	api 1 POST /v1/quic/bench -d "{\"peer\":\"$k2@$a2:$((p + 2))\",\"bytes\":4194304,\"mode\":\"discard\"}" >/dev/null
	out=$(api 1 POST /v1/quic/bench -d "{\"peer\":\"$k2@$a2:$((p + 2))\",\"bytes\":$BYTES,\"mode\":\"discard\",\"timeout_ms\":600000}")
	WEFT_MBPS=$(echo "$out" | jget mbit_s) || WEFT_MBPS=0
	out=$(api 1 POST /v1/quic/handshakes -d "{\"peer\":\"$k2@$a2:$((p + 2))\",\"count\":$NHS}")
	WEFT_HS=$(echo "$out" | jget per_s) || WEFT_HS=0

	if [ -n "$only" ]; then
		for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
		wait 2>/dev/null
		PIDS=()
		print_rows "$label"
		return 0
	fi
	# ngtcp2 examples: HTTP/3 GET of the same number of bytes
	$x2 gtlsserver -q --no-quic-dump --no-http-dump -d "$W/htdocs" "${WIN[@]}" \
		--max-dyn-length=1 "$a2" $((p + 3)) "$W/k.pem" "$W/c.pem" >"$W/gs.log" 2>&1 &
	PIDS+=($!)
	sleep 0.5
	local gc=(gtlsclient -q --no-quic-dump --no-http-dump --exit-on-all-streams-close
		"${WIN[@]}" --max-window=64M --max-stream-window=32M)
	local host=$a2
	case "$a2" in *:*) host="[$a2]" ;; esac
	t0=$(now_ns)
	$x1 "${gc[@]}" "$a2" $((p + 3)) "https://$host:$((p + 3))/blob" >"$W/gc.log" 2>&1
	t1=$(now_ns)
	GTLS_MBPS=$(awk -v b="$BYTES" -v t=$((t1 - t0)) 'BEGIN{printf "%.1f", b*8/(t/1e9)/1e6}')
	ok=0
	t0=$(now_ns)
	for i in $(seq "$NHS"); do
		$x1 "${gc[@]}" "$a2" $((p + 3)) "https://$host:$((p + 3))/hs" >/dev/null 2>&1 && ok=$((ok + 1))
	done
	t1=$(now_ns)
	GTLS_HS=$(awk -v n="$ok" -v t=$((t1 - t0)) 'BEGIN{printf "%.1f", n/(t/1e9)}')

	# kernel TCP
	$x2 iperf3 -s -1 -p $((p + 4)) -B "$a2" >/dev/null 2>&1 &
	PIDS+=($!)
	sleep 0.3
	out=$($x1 iperf3 -c "$a2" -p $((p + 4)) -n "$BYTES" -J 2>/dev/null)
	TCP_MBPS=$(echo "$out" | /usr/bin/python3 -c 'import json,sys
print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))' 2>/dev/null) || TCP_MBPS=0

	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	PIDS=()
	print_rows "$label"
}

print_rows() {
	awk -v l="$1" -v w="$WEFT_MBPS" -v g="$GTLS_MBPS" -v t="$TCP_MBPS" -v wh="$WEFT_HS" \
		-v gh="$GTLS_HS" 'BEGIN{
		printf "%-9s %-22s %12.1f %12.1f %12.1f %8.2f %8.2f\n", l, "bulk Mbit/s", w, g, t,
			(g > 0 ? w / g : 0), (t > 0 ? w / t : 0);
		printf "%-9s %-22s %12.1f %12.1f %12s %8.2f %8s\n", l, "handshakes/s (seq)", wh, gh,
			"-", (gh > 0 ? wh / gh : 0), "-" }'
}

echo "QUIC bulk: $BYTES bytes, one connection; handshakes: $NHS sequential (weft: one daemon dialing; gtlsclient: one process each)"
printf "%-9s %-22s %12s %12s %12s %8s %8s\n" path metric weft gtls-ngtcp2 tcp-iperf3 weft/gtls weft/tcp
run_set loopback "" "" 127.0.0.1 127.0.0.1
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then
	. "$TOP/tests/lib/netns.sh"
	netns_on_exit cleanup
	if netns_create 2 pair; then
		run_set veth "ip netns exec $(netns_name 1)" "ip netns exec $(netns_name 2)" \
			"$(netns_ip4 1)" "$(netns_ip4 2)"
		# weft over AF_XDP (native XDP on the veth pair, copy mode)
		run_set veth-xdp "ip netns exec $(netns_name 1)" "ip netns exec $(netns_name 2)" \
			"$(netns_ip4 1)" "$(netns_ip4 2)" "--io xdp --xdp $(netns_ifname 1)" weft-only
	else
		echo "veth: namespace setup failed"
	fi
else
	echo "veth: skipped (needs root)"
fi
