#!/bin/bash
# SPDX-License-Identifier: MIT
# Memory: idle weftd (RSS, PSS, private, threads), RSS per stored BEP 44 item
# and per announced peer (real KRPC puts to that weftd), heap and RSS per
# idle QUIC connection on each side (bench/bench_mem.c states the method).
# Usage: bench/mem.sh [N_CONNS [N_ITEMS [IDLE_S]]]   (defaults 1000 1000 5)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_mem"
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
[ -x "${WEFTD:-$BUILD/weftd}" ] || { echo "build $BUILD/weftd first (make bench)"; exit 1; }
exec "$B" "${1:-1000}" "${2:-1000}" "${3:-5}"
