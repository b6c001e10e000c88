#!/bin/bash
# SPDX-License-Identifier: MIT
# The stress recipe (docs/OPERATIONS.md "Stress recipe"; issue 30, item 1):
# a dense weftlab lab whose services and relay scenarios run with short
# deadlines, round after round, and (--stops K, default 3) K nodes stopped
# by SIGTERM and restarted each round (the stop path under load: modules
# freed while others' threads still run), while busy loops take the CPUs, on a
# sanitizer build of weftd (ASan: build/san/weftd, TSan: build/tsan/weftd,
# `make tsan`). Stops at the first sanitizer report, heap abort or dead
# daemon (a finding) or after the duration; prints what it covered: rounds,
# calls, their timeouts, dials, and the finding if any.
#   tools/stress.sh [--weftd PATH] [--nodes N] [--duration S] [--busy N]
#                   [--call-timeout MS] [--stops K] [--dir DIR]
# Root (namespaces). Never part of make test.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
WEFTD=$TOP/build/san/weftd NODES=30 DURATION=3600 BUSY=2 CALL_MS=50 STOPS=3 DIR=/tmp/weft-stress
while [ $# -gt 0 ]; do
	case "$1" in
	--weftd) WEFTD=$2; shift ;;
	--nodes) NODES=$2; shift ;;
	--duration) DURATION=$2; shift ;;
	--busy) BUSY=$2; shift ;;
	--call-timeout) CALL_MS=$2; shift ;;
	--stops) STOPS=$2; shift ;;
	--dir) DIR=$2; shift ;;
	*) echo "usage: $0 [--weftd PATH] [--nodes N] [--duration S] [--busy N] [--call-timeout MS] [--stops K] [--dir DIR]" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" -eq 0 ] || { echo "stress: needs root (network namespaces)" >&2; exit 2; }
[ -x "$WEFTD" ] || { echo "stress: $WEFTD missing (make, or make tsan)" >&2; exit 2; }
LAB="$TOP/tools/weftlab --dir $DIR"
# ASan: a report ends the daemon (it is the finding); TSan: go on, report all.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1"
export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:suppressions=$TOP/tools/tsan.supp"
busy=()
cleanup() {
	for p in "${busy[@]}"; do kill "$p" 2>/dev/null; done
	$LAB down >/dev/null 2>&1
}
trap cleanup EXIT
$LAB down >/dev/null 2>&1
rm -rf "$DIR"
NAT=$((NODES / 8))
$LAB up --nodes "$NODES" --nat "g1:port-preserving:$NAT" --nat "g2:random-fully:$NAT" --relay 2 \
	--weftd "$WEFTD" --timeout 300 || { echo "stress: lab did not come up"; exit 1; }
for ((i = 0; i < BUSY; i++)); do
	( while :; do :; done ) &
	busy+=($!)
done
finding() { # the first sanitizer report, heap abort or dead daemon
	grep -l -E "ERROR: AddressSanitizer|WARNING: ThreadSanitizer|ERROR: LeakSanitizer|runtime error:|malloc\(\)|free\(\)|Assertion .* failed|double free" \
		"$DIR"/nodes/n*/weftd.log 2>/dev/null | head -1
}
t0=$(date +%s) round=0 calls=0 ok=0 timeouts=0 dials=0 dials_ok=0 stops=0 stuck=0 slowest=0 # slowest stop, ms
while [ $(($(date +%s) - t0)) -lt "$DURATION" ]; do
	round=$((round + 1))
	$LAB run services --providers 4 --calls 200 --call-concurrency 16 --call-timeout "$CALL_MS" \
		--seed "$round" >/dev/null 2>&1
	read -r c o t < <(/usr/bin/python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))
to=sum((v.get("errors") or {}).get("timeout",0) for v in r["per_node"].values())
print(r["calls"], r["ok"], to)' "$DIR/results/services.json" 2>/dev/null || echo "0 0 0")
	calls=$((calls + c)) ok=$((ok + o)) timeouts=$((timeouts + t))
	$LAB run relay --per-node 2 --ping-timeout 1000 --wait-records 30 --seed "$round" >/dev/null 2>&1
	read -r d dk < <(/usr/bin/python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))
print(len(r.get("pairs") or []), r.get("ok", 0))' "$DIR/results/relay.json" 2>/dev/null || echo "0 0")
	dials=$((dials + d)) dials_ok=$((dials_ok + dk))
	if [ "$STOPS" -gt 0 ]; then
		$LAB run churn --signal term --fraction "$(/usr/bin/python3 -c "print($STOPS / $NODES)")" \
			--duration 20 --down 1 --seed "$round" >/dev/null 2>&1
		read -r k sk sl < <(/usr/bin/python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))
print(len(r.get("stops") or []), r.get("stuck", 0), int(1000 * max([x["s"] for x in r.get("stops") or []] or [0])))' \
			"$DIR/results/churn.json" 2>/dev/null || echo "0 0 0")
		stops=$((stops + k)) stuck=$((stuck + sk))
		[ "$sl" -gt "$slowest" ] && slowest=$sl
	fi
	f=$(finding)
	dead=$($LAB status >/dev/null 2>&1 || echo yes)
	echo "stress: round $round, $(($(date +%s) - t0)) s: calls $calls (ok $ok, timeout $timeouts), dials $dials (ok $dials_ok), stops $stops (stuck $stuck, slowest ${slowest} ms)${f:+, FINDING in $f}${dead:+, a daemon is down}"
	if [ -n "$f" ] || [ -n "$dead" ] || [ "$stuck" -gt 0 ]; then
		[ -n "$f" ] && grep -m1 -A40 -E "Sanitizer|malloc\(\)|free\(\)|Assertion|runtime error" "$f"
		[ -n "$dead" ] && $LAB status
		exit 1
	fi
done
echo "stress: no finding in $round rounds, $(($(date +%s) - t0)) s: $calls calls ($timeouts timed out), $dials dials by key, $stops stops by SIGTERM (slowest $slowest ms)"
