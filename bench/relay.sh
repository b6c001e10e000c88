#!/bin/bash
# SPDX-License-Identifier: MIT
# Relay benchmark (issue 14), one run, one JSON result:
#  1. QUIC bulk A -> B relayed vs direct: three weftd in namespaces on one
#     bridge (h1 the relay, --relay, uring; h2 = A; h3 = B holding a
#     reservation with h1, relay.reserve=always); B drops UDP from A's
#     address (nftables), so `weftctl quic bench KEY_B` from A goes through
#     a circuit of h1; then B accepts A and `quic bench KEY_B@IP_B` goes
#     direct. Same BYTES, sink mode, one connection each. Mbit/s, and the
#     relay's weftd CPU time per GB relayed. The circuit's policer
#     (relay.circuit_pps) is lifted: the relay's capacity, not the policy.
#  2. forwarding per core: packets forwarded per CPU-second of the relay's
#     core by weft's XDP relay, weft's userspace relay and coturn, from one
#     live-frame source over one veth pair, 100-byte payload
#     (bench/bench_relay.c, whose "same work" rule is at its top and in its
#     JSON result, which also carries part 1's figures).
# Needs root. Never part of make test.
#   bench/relay.sh [SECONDS] [ROUNDS] [BYTES]   (part 2: each relay SECONDS
#   per round, default 3, ROUNDS rounds, default 2; part 1: BYTES per
#   transfer, default 64 MiB)
# Build first: make bench (build/bench/bench_relay, build/tools/relay_node,
# build/weftd, build/weftctl).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_relay"
BYTES=${3:-67108864}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: bench/relay.sh needs root"; exit 77; }
[ -x "$B" ] && [ -x "$BUILD/tools/relay_node" ] || { echo "build $B and $BUILD/tools/relay_node first (make bench)"; exit 1; }
command -v turnserver >/dev/null || echo "coturn (turnserver) missing: no coturn row"
export TOP WEFTD="$BUILD/weftd" WEFTCTL="$BUILD/weftctl" PYTHON=/usr/bin/python3
. "$TOP/tests/lib/common.sh"
. "$TOP/tests/lib/netns.sh"
EXTRA=$(mktemp "${TMPDIR:-/tmp}/weft-relaybench-quic-XXXXXX")
on_exit "rm -f '$EXTRA'"

# proc_cpu PID: seconds of CPU time (utime + stime) the process has used.
proc_cpu() { awk -v t="$(getconf CLK_TCK)" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }
fig() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$EXTRA"; }

# quic_part: part 1; on any failure it says why and records nothing.
quic_part() {
	local D K1 K3 IP1 IP2 IP3 out c0 c1 mb
	[ -x "$WEFTD" ] && [ -x "$WEFTCTL" ] && command -v nft >/dev/null ||
		{ echo "QUIC part skipped: build/weftd, build/weftctl or nft missing"; return 1; }
	netns_create 3 || return 1
	D=$(mktemp -d "${TMPDIR:-/tmp}/weft-relaybench-XXXXXX")
	netns_on_exit "rm -rf '$D'"
	ctl() { local n=$1; shift; "$WEFTCTL" --socket "$D/n$n/weftd.sock" "$@"; }
	IP1=$(netns_ip4 1) IP2=$(netns_ip4 2) IP3=$(netns_ip4 3)
	# The circuit's policer lifted (default 20 kpps per direction, ~190-240
	# Mbit/s of QUIC): the relay's own capacity is measured.
	netns_weftd 1 uring "$D" --workers 1 --relay --set relay.circuit_pps=10000000 \
		--set relay.circuit_burst=1000000
	K1=$(ctl 1 --json status | json_get node_key)
	netns_weftd 3 uring "$D" --workers 1 --set "dht.bootstrap=$IP1:6881" \
		--set "relay.use=$K1@$IP1:4433" --set relay.reserve=always
	netns_weftd 2 uring "$D" --workers 1 --set "dht.bootstrap=$IP1:6881"
	K3=$(ctl 3 --json status | json_get node_key)
	# B drops everything from A (IPv4 and IPv6): only the circuit (from h1)
	# reaches it.
	ip netns exec "$(netns_name 3)" nft -f - <<EOF2 || return 1
table inet benchdrop {
	chain in {
		type filter hook input priority 0;
		ip saddr $IP2 drop
		ip6 saddr $(netns_ip6 2) drop
	}
}
EOF2
	wait_for '[ "$(ctl 3 --json relay status | json_get use 0 state)" = held ]' 300 ||
		{ echo "QUIC part: B's reservation not held"; return 1; }
	# B's record (with the relay) must be in the DHT before A resolves it.
	wait_for 'ctl 2 --json node resolve "$K3" --fresh 2>/dev/null | grep -q "$K1"' 300 ||
		{ echo "QUIC part: A cannot resolve B's record with the relay"; return 1; }
	c0=$(proc_cpu "$PID1")
	out=$(ctl 2 --json quic bench "$K3" "$BYTES" sink 2>&1) || { echo "QUIC part, relayed: $out"; return 1; }
	c1=$(proc_cpu "$PID1")
	[ "$(ctl 1 --json relay status | json_get counters circuits)" -ge 1 ] ||
		{ echo "QUIC part: no circuit at the relay: $out; $(ctl 1 --json relay status)"; return 1; }
	mb=$(echo "$out" | json_get mbit_s)
	fig quic.relayed_mbit_s "QUIC bulk A -> B through a relay circuit (relay: weftd uring, 1 worker, policer lifted)" "$mb" "Mbit/s"
	fig quic.relay_cpu_s_per_gb "relay weftd CPU time per GB relayed (process; bridge softirq not counted)" \
		"$(awk -v a="$c0" -v b="$c1" -v n="$BYTES" 'BEGIN { print (b - a) / (n / 1e9) }')" "s/GB"
	echo "QUIC bulk $BYTES bytes A -> B relayed: $mb Mbit/s, relay CPU $(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }') s"
	ip netns exec "$(netns_name 3)" nft delete table inet benchdrop
	out=$(ctl 2 --json quic bench "$K3@$IP3:4433" "$BYTES" sink 2>&1) || { echo "QUIC part, direct: $out"; return 1; }
	mb=$(echo "$out" | json_get mbit_s)
	fig quic.direct_mbit_s "QUIC bulk A -> B direct (same nodes)" "$mb" "Mbit/s"
	echo "QUIC bulk $BYTES bytes A -> B direct: $mb Mbit/s"
	fig quic.bytes "QUIC bulk: bytes per transfer" "$BYTES" "bytes"
	return 0
}
# A subshell runs no EXIT trap of its parent's: its own hooks (the
# namespaces and their weftd) run when it ends, before the forwarding
# rounds, which they would otherwise share the CPUs with.
( _EXIT_HOOKS=(); trap _run_exit_hooks EXIT; quic_part ) || : >"$EXTRA"
BENCH_RELAY_EXTRA="$EXTRA" RELAY_NODE="$BUILD/tools/relay_node" "$B" "${1:-3}" "${2:-2}"
