#!/bin/bash
# SPDX-License-Identifier: MIT
# CPU time of the BLAKE3 commands (issue 29; not in make bench): on a
# shared machine the wall-clock figures of bench/blake3.sh are mostly the
# scheduler's, the CPU time of each process much less so. For each LEVEL and
# 1 and 2 threads, ROUNDS rounds alternating `weftctl hash --no-names --simd
# LEVEL --threads T`, the same of OLD (another build's weftctl, optional),
# b3ref-LEVEL --num-threads T (bench/blake3ref) and b3sum --num-threads T on
# FILE, each line: the load average, task-clock ms of each (perf stat) and
# the first 8 hex digits of its digest (they must all be equal).
#   usage: bench/blake3_cpu.sh FILE [ROUNDS (3) [LEVEL...]]   (levels:
#   avx512 avx2 sse41 by default; ones the CPU lacks are skipped)
#   BUILD=dir (default build), OLD=path to another weftctl
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
F=${1:?usage: bench/blake3_cpu.sh FILE [ROUNDS [LEVEL...]]}
R=${2:-3}
shift $(($# < 2 ? $# : 2))
LEVELS=${*:-avx512 avx2 sse41}
for t in perf b3sum; do
	command -v $t >/dev/null || { echo "SKIP: needs $t"; exit 77; }
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "host: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs"
for L in $LEVELS; do
	"$BUILD/weftctl" hash --simd "$L" --kernel >/dev/null 2>&1 || { echo "$L: not on this CPU"; continue; }
	for T in 1 2; do
		for r in $(seq "$R"); do
			line="$L threads $T round $r load $(cut -d' ' -f1 /proc/loadavg):"
			for c in weft ${OLD:+old} b3ref b3sum; do
				case $c in
				weft) cmd=("$BUILD/weftctl" hash --no-names --simd "$L" --threads "$T" "$F") ;;
				old) cmd=("$OLD" hash --no-names --simd "$L" --threads "$T" "$F") ;;
				b3ref) cmd=("$BUILD/bench/b3ref-$L" --num-threads "$T" "$F") ;;
				b3sum) cmd=(b3sum --no-names --num-threads "$T" "$F") ;;
				esac
				[ -x "${cmd[0]}" ] || command -v "${cmd[0]}" >/dev/null || continue
				ms=$(perf stat -x, -e task-clock "${cmd[@]}" 2>&1 >"$out" | grep task-clock | cut -d, -f1)
				line="$line $c ${ms%.*} ms ($(cut -c1-8 "$out"))"
			done
			echo "$line"
		done
	done
done
