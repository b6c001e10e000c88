#!/bin/bash
# SPDX-License-Identifier: MIT
# Bulk CPU per GiB (issue 29, "Bytes per CPU"): weft's QUIC (two weftd,
# io_uring, one worker each, one connection, one stream to discard) and
# kernel TCP (iperf3, one stream) on loopback, same pinning as
# bench/bench_quic.c (receiver CPU 1, sender CPU 0), in one run, REPS
# rounds alternating weft and TCP. CPU = utime + stime of each long-running
# process from /proc/PID/stat (iperf3's client: its rusage), so the load of
# the shared machine moves it far less than the wall figures. Prints CPU
# seconds per GiB of sender and receiver and the ratio weft / TCP, and
# writes one weft-bench/1 result (docs/BENCH.md; means over the rounds).
#   usage: bench/quic_cpu.sh [BYTES (1 GiB) [REPS (3)]]
#   WEFTD=path compares another build; PERF=DIR records a profile of each
#   weftd's first round (perf record -g) into DIR.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
WEFTD=${WEFTD:-$TOP/build/weftd}
BYTES=${1:-1073741824}
REPS=${2:-3}
for t in "$WEFTD" iperf3 curl taskset ${PERF:+perf}; do
	command -v "$t" >/dev/null || { echo "SKIP: needs $t"; exit 77; }
done
D=$(mktemp -d "${TMPDIR:-/tmp}/wbqcpu.XXXXXX")
PORT=$((30000 + $$ % 20000))
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT

cpu_ticks() { # utime + stime of pid, clock ticks
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}
HZ=$(getconf CLK_TCK)
api() { # n method path [body]
	curl -s --max-time 900 --unix-socket "$D/n$1/weftd.sock" -X "$2" "http://weftd$3" \
		${4:+-d "$4"}
}
start_weftd() { # n cpu port
	mkdir -p "$D/n$1"
	taskset -c "$2" "$WEFTD" --state-dir "$D/n$1" --io uring --workers 1 --bind 127.0.0.1 \
		--quic-port "$3" --dht-port $(($3 + 10)) --log-level warn \
		--set quic.max_conns_per_addr=100000 --set quic.retry_rate=1000000 \
		>"$D/n$1.log" 2>&1 &
	PIDS+=($!)
	eval "PID$1=$!"
}
start_weftd 2 1 $((PORT + 2))
start_weftd 1 0 $((PORT + 1))
for _ in $(seq 100); do
	api 1 GET /v1/status >/dev/null 2>&1 && api 2 GET /v1/status >/dev/null 2>&1 && break
	sleep 0.1
done
KEY=$(api 2 GET /v1/status | sed -n 's/.*"node_key":"\([0-9a-f]*\)".*/\1/p')
[ -n "$KEY" ] || { echo "weftd did not start"; cat "$D"/n*.log; exit 1; }
for n in 1 2; do
	api $n PUT /v1/xdp/limits \
		'{"quic":{"pps":0,"burst":0},"quic_initial":{"pps":0,"burst":0}}' >/dev/null
done
TGT="$KEY@127.0.0.1:$((PORT + 2))"
api 1 POST /v1/quic/bench "{\"peer\":\"$TGT\",\"bytes\":4194304,\"mode\":\"discard\"}" >/dev/null
taskset -c 1 iperf3 -s -p $((PORT + 4)) -B 127.0.0.1 >"$D/iperf3.log" 2>&1 &
IPS=$!
PIDS+=($IPS)
sleep 0.5
STARTED=$(date -u +%FT%TZ)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
GIB=$(awk -v b="$BYTES" 'BEGIN { print b / 1073741824 }')
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) vCPUs; weftd $WEFTD; $BYTES bytes; load $(cut -d' ' -f1 /proc/loadavg)"
for r in $(seq "$REPS"); do
	a1=$(cpu_ticks "$PID1")
	a2=$(cpu_ticks "$PID2")
	if [ -n "${PERF:-}" ] && [ "$r" = 1 ]; then
		mkdir -p "$PERF"
		perf record -g -o "$PERF/tx.data" -p "$PID1" >/dev/null 2>&1 &
		PT=$!
		perf record -g -o "$PERF/rx.data" -p "$PID2" >/dev/null 2>&1 &
		PR=$!
		sleep 0.5
	fi
	out=$(api 1 POST /v1/quic/bench \
		"{\"peer\":\"$TGT\",\"bytes\":$BYTES,\"mode\":\"discard\",\"timeout_ms\":600000}")
	b1=$(cpu_ticks "$PID1")
	b2=$(cpu_ticks "$PID2")
	if [ -n "${PERF:-}" ] && [ "$r" = 1 ]; then
		kill -INT "$PT" "$PR"
		wait "$PT" "$PR" 2>/dev/null
	fi
	mbit=$(echo "$out" | sed -n 's/.*"mbit_s":\([0-9.]*\).*/\1/p')
	echo "$out" | grep -q "\"peer_count\":$BYTES" || { echo "weft bulk failed: $out"; exit 1; }
	i1=$(cpu_ticks "$IPS")
	iout=$(/usr/bin/time -f '%U %S' -o "$D/ipc.time" taskset -c 0 iperf3 -c 127.0.0.1 \
		-p $((PORT + 4)) -n "$BYTES" -J)
	i2=$(cpu_ticks "$IPS")
	imbit=$(echo "$iout" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))')
	ic=$(awk '{ print $1 + $2 }' "$D/ipc.time")
	awk -v hz="$HZ" -v g="$GIB" -v r="$r" -v wt=$((b1 - a1)) -v wr=$((b2 - a2)) \
		-v f="$D/rounds" -v tt="$ic" -v tr=$((i2 - i1)) -v wm="$mbit" -v tm="$imbit" 'BEGIN {
		wts = wt / hz / g; wrs = wr / hz / g; tts = tt / g; trs = tr / hz / g;
		printf "round %d: CPU s/GiB sender weft %.3f tcp %.3f (%.2fx) | receiver weft %.3f tcp %.3f (%.2fx) | Mbit/s weft %.0f tcp %.0f\n",
			r, wts, tts, wts / tts, wrs, trs, wrs / trs, wm, tm
		printf "%.4f %.4f %.4f %.4f %s %s\n", wts, tts, wrs, trs, wm, tm >> f }'
done
PYTHONPATH="$TOP/bench" /usr/bin/python3 - "$D/rounds" "$BYTES" "$REPS" "$STARTED" "$LOAD0" <<'PY' || exit 1
import sys, benchres
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
nbytes, reps, started, load0 = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
mean = lambda i: sum(r[i] for r in rows) / len(rows)
names = [("weft.tx_cpu", "weft sender CPU per GiB"), ("tcp.tx_cpu", "TCP (iperf3) sender CPU per GiB"),
         ("weft.rx_cpu", "weft receiver CPU per GiB"), ("tcp.rx_cpu", "TCP (iperf3) receiver CPU per GiB (process only)"),
         ("weft.mbit", "weft bulk, one connection"), ("tcp.mbit", "TCP (iperf3), one stream")]
figs = [{"id": i, "label": l + " (mean of %d rounds)" % len(rows), "value": mean(k),
         "unit": "Mbit/s" if i.endswith("mbit") else "CPU s/GiB"} for k, (i, l) in enumerate(names)]
ratios = [{"id": "tx.tcp_vs_weft_cpu", "label": "sender bytes per CPU, weft / TCP (TCP CPU / weft CPU)",
           "num": "tcp.tx_cpu", "den": "weft.tx_cpu", "value": mean(1) / mean(0)},
          {"id": "rx.tcp_vs_weft_cpu", "label": "receiver bytes per CPU, weft / TCP (TCP CPU / weft CPU)",
           "num": "tcp.rx_cpu", "den": "weft.rx_cpu", "value": mean(3) / mean(2)}]
print("result: %s" % benchres.write(
    "quic_cpu", "bench/quic_cpu.sh %d %d" % (nbytes, reps), started, load0,
    params={"bytes": nbytes, "reps": reps},
    same_work="one connection / one stream, BYTES to a discard sink on loopback, sender pinned to CPU 0 and "
              "receiver to CPU 1 for both; CPU = utime + stime of the whole sending and receiving process "
              "(TCP's softirq work on the receiver is not counted)",
    figures=figs, ratios=ratios, notes=["loopback only; CPU figures move less with the machine's load than Mbit/s"]))
PY
echo "load after: $(cut -d' ' -f1 /proc/loadavg)"
