#!/bin/bash
# SPDX-License-Identifier: MIT
# The mesh message layer on 100 simulated nodes: time for an announce to
# reach 99 % of them, datagrams per node per announce against a flood,
# query latency p50/p99, store memory per 10,000 announces
# (bench/bench_mesh.c). Usage: bench/mesh.sh [NODES]
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_mesh"
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
exec "$B" "${1:-100}"
