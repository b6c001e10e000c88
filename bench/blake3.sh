#!/bin/bash
# SPDX-License-Identifier: MIT
# BLAKE3 benchmark: weft vs b3sum on one 1 GiB file (tmpfs when available,
# so the disk is not measured), at each SIMD level.
# Usage: bench/blake3.sh [--simd LEVEL] [SIZE_MIB] [RUNS]
#   no --simd: the best kernel this CPU has (result "blake3"), then each
#     lower level it has, forced (results "blake3_avx2", "blake3_sse41";
#     portable only when asked: ~10x slower);
#   --simd LEVEL (avx512, avx2, sse41, portable): that level only.
# Each level is compared with b3sum and with b3ref-LEVEL, the blake3 crate
# b3sum is built from at that level only (bench/blake3ref/build.sh, run by
# make bench; without it, b3sum only). The first line names the host: CPU
# model, SIMD flags, load average. Needs $BUILD/bench/bench_blake3 and b3sum.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
BIN="$BUILD/bench/bench_blake3"
SIMD=""
if [ "${1:-}" = --simd ]; then
	SIMD=${2:?--simd wants a level}
	shift 2
fi
SIZE_MIB=${1:-1024}
RUNS=${2:-3}

command -v b3sum >/dev/null || { echo "b3sum not installed"; exit 77; }
[ -x "$BIN" ] || { echo "$BIN not built (make BUILD=$BUILD $BIN)"; exit 1; }
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'sse4_1|avx2|avx512f|avx512vl' | tr '\n' ' ')
echo "host: $cpu, $(nproc) CPUs, SIMD flags: ${flags% }, load average $(cut -d' ' -f1-3 /proc/loadavg)"

dir=/dev/shm
[ -d "$dir" ] && [ -w "$dir" ] || dir=/tmp
file=$(mktemp "$dir/weft-bench-blake3.XXXXXX")
trap 'rm -f "$file"' EXIT
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$file"

if [ -n "$SIMD" ]; then
	levels="$SIMD"
else
	best=$("$BUILD/weftctl" hash --kernel)
	levels=auto
	for lv in avx2 sse41; do
		case "$best:$lv" in avx512:* | avx2:sse41) ;; *) continue ;; esac
		"$BUILD/weftctl" hash --simd "$lv" --kernel >/dev/null 2>&1 && levels="$levels $lv"
	done
fi
rc=0
for lv in $levels; do
	echo
	echo "--- level $lv (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	"$BIN" --simd "$lv" --ref-dir "$BUILD/bench" "$file" "$RUNS" || rc=$?
done
exit $rc
