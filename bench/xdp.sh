#!/bin/bash
# SPDX-License-Identifier: MIT
# XDP: ns/packet of every verdict under BPF test-run (IPv4 and IPv6, and
# against payload size), and a veth flood dropped by the XDP program (banned
# source, over-limit source; and the floor: a program that reads, counts and
# drops) vs a userspace recvmmsg drop loop on the same
# pinned core, as packets dropped per CPU-second, from one live-frame source
# in one run. The "same work" rule is at the top of bench/bench_xdp.c and
# in its JSON result. Needs root. Usage: bench/xdp.sh [SECONDS]
# (3 rounds, each path SECONDS per round, default 2; BENCH_XDP_PATHS and
# BENCH_XDP_ROUNDS pick the flood's paths and rounds, bench/bench_xdp.c;
# build first: make bench).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_xdp"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: bench/xdp.sh needs root"; exit 77; }
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
exec "$B" "${1:-2}"
