#!/bin/bash
# SPDX-License-Identifier: MIT
# DHT: (a) KRPC queries answered per second and per CPU-second by one weft
# DHT instance and by a libtorrent 2.0.8 session (python3-libtorrent, run
# with /usr/bin/python3) under the same loopback load generator, side by
# side with the ratio; (b) find_node / get_peers latency (p50, p99) and hop
# counts in a 200-node weft network in one process. Loopback only, no root.
# Usage: bench/dht.sh [SECONDS] [NODES]   (defaults 5 and 200; build first:
# make bench, or make BUILD=... $BUILD/bench/bench_dht)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_dht"
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
[ "$(nproc)" -ge 2 ] || echo "note: fewer than 2 CPUs, generator and server share one"
exec "$B" "${1:-5}" "${2:-200}"
