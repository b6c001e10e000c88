#!/bin/bash
# SPDX-License-Identifier: MIT
# Search over followed shares (issue 31): the index of 1,000,000 items and
# the p50/p99 of a query (bench/bench_search.c; goal p99 <= 10 ms).
# Usage: bench/search.sh [ITEMS] [QUERIES]
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_search"
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
"$B" "${1:-1000000}" "${2:-3000}"
