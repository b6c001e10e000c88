#!/bin/bash
# SPDX-License-Identifier: MIT
# BLAKE3 benchmark: weft vs b3sum on one 1 GiB file (tmpfs when available,
# so the disk is not measured). Usage: bench/blake3.sh [SIZE_MIB] [RUNS]
# Needs $BUILD/bench/bench_blake3 (make bench) and b3sum.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
BIN="$BUILD/bench/bench_blake3"
SIZE_MIB=${1:-1024}
RUNS=${2:-5}

command -v b3sum >/dev/null || { echo "b3sum not installed"; exit 1; }
[ -x "$BIN" ] || { echo "$BIN not built (make BUILD=$BUILD $BIN)"; exit 1; }
dir=/dev/shm
[ -d "$dir" ] && [ -w "$dir" ] || dir=/tmp
file=$(mktemp "$dir/weft-bench-blake3.XXXXXX")
trap 'rm -f "$file"' EXIT
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$file"
"$BIN" "$file" "$RUNS"
