#!/bin/bash
# SPDX-License-Identifier: MIT
# Packet I/O: receive and transmit packets/s on one core over veth for
# AF_XDP vs io_uring vs a plain recvmmsg/sendmmsg loop, one run, one table
# with ratios. Needs root. Usage: bench/io.sh [SECONDS [PATH]] (PATH 0-3:
# one row only, for profiling)
# (BUILD defaults to build/; bench_io must be built: make bench).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_io"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: bench/io.sh needs root"; exit 77; }
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
exec "$B" "${1:-3}" ${2:+"$2"}
