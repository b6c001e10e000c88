#!/bin/bash
# SPDX-License-Identifier: MIT
# Service call benchmark: two weftd joined by one veth pair in namespaces
# (198.51.100.1 publishes echo, .2 calls it over one QUIC connection);
# calls/s and latency p50/p99 at concurrency 1, 32 and 64 (64 callers over
# one QUIC connection), then the loopback gateway's latency, local (node 1)
# and remote (node 2), with curl; then the backend contract: a local
# HTTP/1.1 keep-alive backend (tests/tools/http_echo) called through node
# 1's gateway by a keep-alive client (p50, vs the same client straight to
# the backend), as calls and as HTTP pass-through, and 64 concurrent
# callers on node 2 calling it through node 1; then a stream's throughput
# through the fabric against a raw QUIC stream, and a WebSocket echo's
# round trip through the gateway against a direct connection over the same
# veth. The publisher lifts its limits through [svc]. Needs root. Not run
# by make test.
# Each part also prints the CPU time the two weftd spent on it (utime +
# stime of every thread, from /proc) per call, round trip or MiB: a figure
# the host's load inflates far less than the wall clock.
# Usage: TOP=. WEFTD=build/weftd WEFTCTL=build/weftctl bench/svc.sh [calls]
#   SVC_PARTS="calls gw backend stream ws" (the default: all) runs only
#   those parts; SVC_PERF=DIR records each part's weftd with perf record -g
#   (DIR/PART-nN.data); SVC_STREAM_BYTES, SVC_WS_RTT size the last two;
#   SVC_OWNER=thread|worker sets svc.owner on both nodes (unset: the default).
set -u
: "${TOP:=$(cd "$(dirname "$0")/.." && pwd)}" "${WEFTD:=$TOP/build/weftd}" "${WEFTCTL:=$TOP/build/weftctl}"
export TOP WEFTD WEFTCTL
. "$TOP/tests/lib/common.sh"
. "$TOP/tests/lib/netns.sh"
netns_require_root
N=${1:-20000}
PARTS=" ${SVC_PARTS:-calls gw backend stream ws} "
part() { [[ "$PARTS" == *" $1 "* ]]; }
netns_create 2 pair || fail "netns setup"
D=$(mktemp -d "${TMPDIR:-/tmp}/weft-bsvc-XXXXXX")
netns_on_exit "rm -rf '$D'"
CTL() { local i=$1; shift; "$WEFTCTL" --socket "$D/n$i/weftd.sock" "$@"; }
mkdir -p "$D/n1" "$D/n2"
# The benchmark caller is trusted: lift the per-peer limits through config.
LIFT=(--set svc.peer_calls_per_min=100000000 --set svc.service_calls_per_min=100000000
	--set svc.addr_calls_per_min=100000000 --set svc.peer_concurrency=1000)
# SVC_OWNER=thread|worker: where both nodes run the fabric's owner (svc.owner)
[ -n "${SVC_OWNER:-}" ] && LIFT+=(--set "svc.owner=$SVC_OWNER")
NETNS_EXEC="ip netns exec $(netns_name 1)" start_weftd "$D/n1" --state-dir "$D/n1" --io uring --workers 1 \
	--log-level warn "${LIFT[@]}" --gateway 127.0.0.1:5030 --set gateway.services=echo,app \
	--set svc.service_calls_per_min=100000000
W1=$WEFTD_PID
NETNS_EXEC="ip netns exec $(netns_name 2)" start_weftd "$D/n2" --state-dir "$D/n2" --io uring --workers 1 \
	--bootstrap "$(netns_ip4 1):6881" --gateway 127.0.0.1:5030 --set gateway.services=echo,wsecho,app --log-level warn \
	"${LIFT[@]}"
W2=$WEFTD_PID
TCK=$(getconf CLK_TCK)
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# every thread's context switches (voluntary: it slept; others: preempted)
csw_of() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }
# cpu_begin NAME / cpu_end UNITS WHAT: the two weftd's CPU time over what
# ran between, per unit (microseconds), and the load average; with
# SVC_PERF set, a perf record of both weftd over the same span.
cpu_begin() {
	C1=$(cpu_of "$W1") C2=$(cpu_of "$W2") S1=$(csw_of "$W1") S2=$(csw_of "$W2")
	PERFPID=
	if [ -n "${SVC_PERF:-}" ]; then
		mkdir -p "$SVC_PERF"
		perf record -g -q -p "$W1,$W2" -o "$SVC_PERF/$1.data" 2>/dev/null &
		PERFPID=$!
		sleep 0.5
	fi
}
cpu_end() {
	local n1 n2 s
	n1=$(cpu_of "$W1") n2=$(cpu_of "$W2") s=$(($(csw_of "$W1") + $(csw_of "$W2") - S1 - S2))
	[ -n "$PERFPID" ] && { kill -INT "$PERFPID"; wait "$PERFPID" 2>/dev/null; }
	awk -v a=$((n1 - C1)) -v b=$((n2 - C2)) -v t="$TCK" -v u="$1" -v w="$2" -v l="$(cut -d' ' -f1 /proc/loadavg)" -v s="$s" \
		'BEGIN {printf "  cpu: node 1 %.1f us + node 2 %.1f us = %.1f us, %.2f context switches per %s (load %s)\n", a * 1e6 / t / u, b * 1e6 / t / u, (a + b) * 1e6 / t / u, s / u, w, l}'
}
CTL 1 svc publish echo --backend builtin >/dev/null
wait_for '[ "$(CTL 1 --json svc ls | json_get services 0 announced)" -ge 1 ]' 100 || fail "announce: $(CTL 1 --json svc ls)"
CTL 2 svc find echo >/dev/null || fail "find"
if part calls; then
	echo "local echo (node 1 calls its own router, no network):"
	CTL 1 svc call echo x --data 0123456789abcdef --count 2000 --concurrency 1
	for c in 1 32 64; do
		echo "remote echo over veth, one connection, concurrency $c, $N calls:"
		CTL 2 svc call echo x --data 0123456789abcdef --count 99 --concurrency 1 >/dev/null
		cpu_begin "calls$c"
		CTL 2 svc call echo x --data 0123456789abcdef --count "$N" --concurrency $c
		cpu_end "$N" call
	done
fi
gw_lat() { # NODE: 200 sequential gateway calls with curl
	ip netns exec "$(netns_name "$1")" bash -c 'for i in $(seq 200); do curl -s -o /dev/null -w "%{time_total}\n" -X POST --data-binary 0123456789abcdef http://127.0.0.1:5030/mesh/v1/call/echo/x; done' |
		sort -n | awk '{a[NR]=$1} END {printf "p50 %.0f us  p99 %.0f us\n", a[int(NR/2)]*1e6, a[int(NR*0.99)]*1e6}'
}
if part gw; then
	echo "local echo through node 1's own gateway (curl, 200 sequential, includes curl's connect):"
	gw_lat 1
	echo "remote echo through node 2's gateway (curl, 200 sequential, includes curl's connect):"
	gw_lat 2
fi
# The backend contract: a fast local HTTP/1.1 backend, so what is measured
# is weft's part (gateway, call job, owner, router, pool, parser).
HE=$TOP/build/tools/http_echo
if part backend; then
	[ -x "$HE" ] || fail "build/tools/http_echo missing (make build/tools/http_echo)"
	ip netns exec "$(netns_name 1)" "$HE" serve 8099 &
	netns_on_exit "kill $!"
	wait_for "ip netns exec $(netns_name 1) $HE load 127.0.0.1:8099 /echo 1 >/dev/null 2>&1" 50 || fail "http_echo"
	CTL 1 svc publish app --backend tcp:127.0.0.1:8099 >/dev/null
	echo "HTTP/1.1 backend straight, keep-alive client (the reference, no weft):"
	ip netns exec "$(netns_name 1)" "$HE" load 127.0.0.1:8099 /echo 2000
	echo "node 1's gateway -> its built-in echo, keep-alive client (the fabric without a backend):"
	ip netns exec "$(netns_name 1)" "$HE" load 127.0.0.1:5030 /mesh/v1/call/echo/x 2000
	echo "node 1's gateway -> its own HTTP/1.1 backend, keep-alive client (goal p50 <= 150 us):"
	ip netns exec "$(netns_name 1)" "$HE" load 127.0.0.1:5030 /mesh/v1/call/app/echo 500 >/dev/null
	cpu_begin gwbackend
	ip netns exec "$(netns_name 1)" "$HE" load 127.0.0.1:5030 /mesh/v1/call/app/echo 2000
	cpu_end 2000 call
	echo "node 1's gateway -> its own HTTP/1.1 backend by HTTP pass-through (/mesh/v1/http/app/echo), keep-alive client:"
	ip netns exec "$(netns_name 1)" "$HE" load 127.0.0.1:5030 /mesh/v1/http/app/echo 500 >/dev/null
	ip netns exec "$(netns_name 1)" "$HE" load 127.0.0.1:5030 /mesh/v1/http/app/echo 2000
	echo "backend connections opened so far: $(CTL 1 --json svc stats | json_get backend conns_opened)"
	CTL 2 svc find app >/dev/null || fail "find app"
	echo "node 2's gateway -> node 1's HTTP/1.1 backend by HTTP pass-through, keep-alive client:"
	ip netns exec "$(netns_name 2)" "$HE" load 127.0.0.1:5030 /mesh/v1/http/app/echo 500 >/dev/null
	ip netns exec "$(netns_name 2)" "$HE" load 127.0.0.1:5030 /mesh/v1/http/app/echo 2000
	echo "backend connections opened so far: $(CTL 1 --json svc stats | json_get backend conns_opened)"
	echo "node 2 -> node 1's HTTP/1.1 backend, 64 concurrent callers over one connection, $((N / 4)) calls:"
	CTL 2 svc call app echo --data 0123456789abcdef --count 99 --concurrency 1 >/dev/null
	CTL 2 svc call app echo --data 0123456789abcdef --count $((N / 4)) --concurrency 64
	echo "node 1's backend pool: $(CTL 1 --json svc stats | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["backend"])')"
fi

# Streams (docs/SERVICE.md, "Streams"): BYTES through node 1's built-in echo
# from node 2 (weftctl svc stream: stdin -> control socket -> stream -> echo
# -> back to stdout), against a raw QUIC echo stream between the same nodes
# (weftctl quic bench ... echo: generated and checked inside weftd).
if part stream; then
	SB=${SVC_STREAM_BYTES:-268435456}
	head -c "$SB" /dev/zero >"$D/zero.bin"
	CTL 2 svc stream echo warm <"$D/zero.bin" >/dev/null || fail "stream warm-up"
	cpu_begin stream
	t0=$(date +%s%N)
	CTL 2 svc stream echo bench <"$D/zero.bin" >"$D/zero.out" || fail "stream"
	t1=$(date +%s%N)
	cpu_end $((SB >> 20)) "MiB each way (fabric)"
	[ "$(stat -c %s "$D/zero.out")" = "$SB" ] || fail "stream: $(stat -c %s "$D/zero.out") bytes back"
	fab=$(awk -v b="$SB" -v ns=$((t1 - t0)) 'BEGIN {printf "%.1f", b * 8 / ns * 1000}')
	K1=$(CTL 1 --json status | json_get node_key)
	# (a raw echo bench sometimes fails to start on a loaded host: three tries)
	raw=
	cpu_begin rawquic
	for i in 1 2 3; do
		raw=$(CTL 2 --json quic bench "$K1@$(netns_ip4 1):4433" "$SB" echo 2>"$D/raw.err" | json_get mbit_s 2>/dev/null) && break
		echo "  (raw QUIC bench try $i: $(head -c 300 "$D/raw.err"))"
	done
	cpu_end $((SB >> 20)) "MiB each way (raw QUIC, with its generator and check)"
	echo "stream echo through the fabric, $SB bytes: $fab Mbit/s; raw QUIC echo stream: $raw Mbit/s;" \
		"ratio $(awk -v a="$fab" -v b="$raw" 'BEGIN {printf "%.2f", a / b}') (goal >= 0.9)"
fi

# WebSocket echo round trip: a python3-websockets client in node 2's
# namespace, through node 2's gateway to node 1's backend, against the same
# client straight to the backend over the veth.
part ws || exit 0
"$PYTHON" -c "import websockets" 2>/dev/null || { echo "python3-websockets missing: WebSocket bench skipped"; exit 0; }
HERE=$TOP/tests/integration
ip netns exec "$(netns_name 1)" "$PYTHON" "$HERE/svc_stream_backends.py" wsecho 8092 0.0.0.0 >/dev/null 2>&1 &
WPID=$!
netns_on_exit "kill $WPID"
CTL 1 svc publish wsecho --backend tcp:127.0.0.1:8092 >/dev/null || fail "publish wsecho"
CTL 2 svc call echo x --data y >/dev/null
wait_for "CTL 2 --json svc find wsecho 2>/dev/null | grep -q owner" 100 || fail "find wsecho"
wait_for "ip netns exec $(netns_name 2) curl -s -o /dev/null http://$(netns_ip4 1):8092/" 50
NR=${SVC_WS_RTT:-2000}
cpu_begin ws
gw=$(ip netns exec "$(netns_name 2)" "$PYTHON" "$HERE/svc_ws_client.py" rtt "ws://127.0.0.1:5030/mesh/v1/ws/wsecho/" "$NR") || fail "ws via gateway"
cpu_end "$NR" "WebSocket round trip"
direct=$(ip netns exec "$(netns_name 2)" "$PYTHON" "$HERE/svc_ws_client.py" rtt "ws://$(netns_ip4 1):8092/" "$NR") || fail "ws direct"
echo "WebSocket echo round trip, $NR x 16 bytes: through the gateway p50 ${gw% *} us p99 ${gw#* } us;" \
	"direct over the veth p50 ${direct% *} us p99 ${direct#* } us;" \
	"ratio $(awk -v a="${gw% *}" -v b="${direct% *}" 'BEGIN {printf "%.2f", a / b}') (goal <= 1.5)"
# The floor of any two-proxy path on this host: the same client and backend
# through two minimal C relays (bench/bench_proxy_floor.c: TCP in, UDP over
# the veth, TCP out; poll, no QUIC, no crypto) in the same namespaces.
case "${BUILD:-build}" in /*) FLOOR=$BUILD ;; *) FLOOR=$TOP/${BUILD:-build} ;; esac
FLOOR=$FLOOR/bench/bench_proxy_floor # (bench/run.sh passes BUILD absolute)
if [ -x "$FLOOR" ]; then
	ip netns exec "$(netns_name 1)" "$FLOOR" out 7440 127.0.0.1 8092 &
	FP1=$!
	ip netns exec "$(netns_name 2)" "$FLOOR" in 5040 "$(netns_ip4 1)" 7440 &
	FP2=$!
	netns_on_exit "kill $FP1 $FP2"
	sleep 0.2
	F0=$(( $(cpu_of "$FP1") + $(cpu_of "$FP2") ))
	floor=$(ip netns exec "$(netns_name 2)" "$PYTHON" "$HERE/svc_ws_client.py" rtt "ws://127.0.0.1:5040/" "$NR") || fail "ws via the floor relays"
	echo "  the same through two minimal relays (the floor of any proxy pair here): p50 ${floor% *} us p99 ${floor#* } us;" \
		"floor / direct $(awk -v a="${floor% *}" -v b="${direct% *}" 'BEGIN {printf "%.2f", a / b}');" \
		"gateway / floor $(awk -v a="${gw% *}" -v b="${floor% *}" 'BEGIN {printf "%.2f", a / b}');" \
		"the two relays' CPU $(awk -v c=$(( $(cpu_of "$FP1") + $(cpu_of "$FP2") - F0 )) -v t="$TCK" -v n="$NR" 'BEGIN {printf "%.1f", c * 1e6 / t / n}') us per round trip"
else
	echo "  $FLOOR not built (make bench builds it): the floor skipped"
fi
