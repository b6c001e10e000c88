#!/bin/bash
# SPDX-License-Identifier: MIT
# Announcing 65,536 blobs into a simulated DHT of 1,024 nodes through the
# content announce schedule: time until all are announced, and the most
# queries any one remote node received from us in a minute
# (bench/bench_announce.c). Usage: bench/announce.sh [IDS [NODES]]
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_announce"
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
exec "$B" "${1:-65536}" "${2:-1024}"
