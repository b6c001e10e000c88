#!/bin/bash
# SPDX-License-Identifier: MIT
# DHT: (a) KRPC replies per CPU-second of a running weftd (the daemon's real
# path) and of a libtorrent 2.0.8 session (python3-libtorrent, run with
# /usr/bin/python3), each a process pinned to CPU 1, under the same load
# generator on CPU 0 at three loads, with the ratio, and a kernel floor
# (canned replies, no DHT work) at the highest load; (b) find_node /
# get_peers latency (p50, p99) and hop counts in a 200-node network of the
# DHT core in one process; (c) as (a) at the highest load on a veth pair
# (root): weftd in xdp mode (AF_XDP) and in uring mode, libtorrent, the
# floor and the AF_XDP floor (canned replies through the engine's xdp path),
# CPU counted with the server side's NAPI thread and ksoftirqd/1;
# BENCH_DHT_ONLY=weftd_xdp,floor_xdp (comma list) runs only those.
# (a) and (b) on loopback only. The "same work" rule is at the top of
# bench/bench_dht.c and in its JSON result.
# Usage: bench/dht.sh [SECONDS] [NODES] [PARTS]   (defaults 3 per load,
# 200 and abc; build first: make bench)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_dht"
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
[ -x "$BUILD/weftd" ] || { echo "build $BUILD/weftd first (make bench)"; exit 1; }
[ "$(nproc)" -ge 2 ] || echo "note: fewer than 2 CPUs, generator and server share one"
exec "$B" "${1:-3}" "${2:-200}" "${3:-abc}"
