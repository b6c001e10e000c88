#!/bin/bash
# SPDX-License-Identifier: MIT
# Store writer: durable writes committed one per transaction on the caller's
# thread vs through the writer (group commit), 16 concurrent callers and 1;
# and the caller-side cost of a fire-and-forget write (bench/bench_store.c).
# Usage: bench/store.sh [DIR]   (default: a fresh directory under /var/tmp;
# give one on the disk weftd uses: the figures are its fsync)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_store"
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
"$B" "${1:-}" 16 200 && "$B" "${1:-}" 1 300
