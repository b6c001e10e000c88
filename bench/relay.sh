#!/bin/bash
# SPDX-License-Identifier: MIT
# Relay forwarding per core: packets forwarded per CPU-second of the relay's
# core by (a) weft's XDP relay, (b) weft's userspace relay, (c) coturn, from
# one live-frame source over the same veth pair, 100-byte payload, in one
# run, with ratios from that run. The "same work" rule is at the top of
# bench/bench_relay.c and in its JSON result. Needs root.
#   bench/relay.sh [SECONDS] [ROUNDS]   (each relay SECONDS per round,
#   default 3; ROUNDS rounds alternating the relays, default 2)
# Build first: make bench (build/bench/bench_relay, build/tools/relay_node).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_relay"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: bench/relay.sh needs root"; exit 77; }
[ -x "$B" ] && [ -x "$BUILD/tools/relay_node" ] || { echo "build $B and $BUILD/tools/relay_node first (make bench)"; exit 1; }
command -v turnserver >/dev/null || echo "coturn (turnserver) missing: no coturn row"
RELAY_NODE="$BUILD/tools/relay_node" exec "$B" "${1:-3}" "${2:-2}"
