#!/bin/bash
# SPDX-License-Identifier: MIT
# Veth flood: packets/s dropped by the XDP program (source banned) versus
# the same flood received and dropped by a userspace recvmmsg loop, same
# machine, one run each. Needs root. Usage: bench/xdp.sh [SECONDS]
# (BUILD defaults to build/; bench_xdp must be built: make bench).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_xdp"
SECS=${1:-5}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: bench/xdp.sh needs root"; exit 77; }
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
. "$TOP/tests/lib/netns.sh"
netns_create 2 pair || exit 1
DST=$(netns_ip4 2)
# The flood goes to a port nothing but the sink listens on; the sender in
# h1 floods h2. Both phases use the same sender and duration.

# Phase 1: userspace receives and drops.
netns_exec 2 "$B" sink 6881 $((SECS + 1)) >/tmp/wxdp_sink.$$ &
sp=$!
sleep 0.5
s1=$(netns_exec 1 "$B" flood "$DST" 6881 "$SECS" | awk '/^sent/ {print $2}')
wait $sp
r1=$(awk '/^received/ {print $2}' /tmp/wxdp_sink.$$)
rm -f /tmp/wxdp_sink.$$

# Phase 2: XDP (native on veth) drops the banned source before the stack.
netns_exec 2 "$B" attach eth0 $((SECS + 1)) "$(netns_ip4 1)/32" >/tmp/wxdp_att.$$ 2>/dev/null &
ap=$!
for _ in $(seq 1 50); do grep -q attached /tmp/wxdp_att.$$ 2>/dev/null && break; sleep 0.1; done
s2=$(netns_exec 1 "$B" flood "$DST" 6881 "$SECS" | awk '/^sent/ {print $2}')
wait $ap
d2=$(awk '/^drop_banned/ {print $2}' /tmp/wxdp_att.$$)
rm -f /tmp/wxdp_att.$$

printf '%-34s %12s %14s\n' "path ($SECS s flood, 64-byte UDP)" "sent pps" "dropped pps"
printf '%-34s %12d %14d\n' "userspace recvmmsg loop" $((s1 / SECS)) $((r1 / SECS))
printf '%-34s %12d %14d\n' "XDP (native, banned source)" $((s2 / SECS)) $((d2 / SECS))
awk -v a="$r1" -v b="$d2" 'BEGIN { if (a > 0) printf "ratio XDP / userspace: %.2fx\n", b / a }'
