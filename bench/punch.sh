#!/bin/bash
# SPDX-License-Identifier: MIT
# Hole punching benchmark (issue 15), one run, one JSON result
# (bench/bench_punch.c computes the figures and writes it).
#
# The NAT matrix of tests/integration/test_punch_nat.sh, with real weftd
# processes in namespaces on one bridge:
#   h1 relay (weftd --relay), h2 DHT bootstrap (also on 198.51.101.0/24:
#   two /24s of voters), h3 a public node P;
#   routers h4 (A) and h5 (B): nftables masquerade, port-preserving;
#   routers h6 (C) and h7 (D): masquerade fully-random (symmetric-like);
#   routers h8 (E) and h9 (F): dual-stack homes: masquerade (port-
#   preserving) for IPv4, and IPv6 forwarded without NAT behind a
#   stateful firewall (established/related in, nothing unsolicited:
#   netns_nat_host_v6); their hosts have global IPv6 addresses
#   (2001:db8:14::2, 2001:db8:15::2);
#   hosts h10 behind A, h11 behind B, h12 behind C, h13 behind D, h14
#   behind E, h15 behind F, each holding a reservation with h1 (found
#   unreachable: relay.reserve=auto).
# P and the routers each sit behind a provider's router of their own
# (netns_isp_hop: one more forwarding hop, where the first probe round's
# TTL of 2 ends). Every router's provider holds what it sends 30 ms
# (tests/lib/delay_line.py: no sch_netem on this kernel), so every path
# between two NATed hosts, relayed or direct, has a 60 ms round trip (the
# relay adds no delay of its own).
#
# Pairs (dialler -> target), TRIALS dials each (default 20):
#   pp_pp   A -> B   both port-preserving: a direct path exists
#   pub_pp  P -> B   public -> port-preserving: a direct path exists
#   pp_rf   A -> C   port-preserving -> fully-random: none
#   rf_rf   C -> D   fully-random both: none
#   v6_v6   E -> F   dual-stack homes: direct, over IPv6 (a trial counts
#                    as direct only when its path ends on F's IPv6 address)
# Each trial dials the target's bare key (bench/punch_trials.py): the
# record lookup in the DHT (every trial: the diallers cache records 1 s),
# a circuit of h1, the QUIC handshake, one echo (the first byte), then the
# punch. Figures: time from the dial (the control API call) to the first
# byte and to the direct path, how many trials reached it; then, on the
# IPv4 pairs with a direct path, RTT and throughput both ways: direct (a new
# connection to the punched address KEY@ADDR, whose 5-tuple the punched
# connection's keepalives keep open in both NATs) and relayed (a dial by
# key while the target's router drops everything from the dialler's public
# address: the punch fails, the circuit carries it). RTT with the delay
# lines (60 ms paths). Throughput after bypassing them (no added delay:
# the Python delay line forwards every frame and would be the bottleneck
# of both paths): TPUT_RUNS (3) transfers each way, alternating relayed
# and direct, median of each; a relayed run counts only when the relay's
# circuits carried at least BYTES more, a direct run only when they did
# not. The relay keeps its default circuit policer (relay.circuit_pps).
# The per-peer punch budget is raised (quic.punch_peer_attempts): 20
# trials with one peer exceed its default of 10 per 10 min; so is the
# relay's circuits per reservation (every trial keeps its connection).
#
# Needs root. Never part of make test.
#   bench/punch.sh [TRIALS] [BYTES]   (BYTES per throughput transfer,
#   default 8 MiB)
# Build first: make bench (build/bench/bench_punch, build/weftd,
# build/weftctl).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
TRIALS=${1:-20}
BYTES=${2:-8388608}
B="$BUILD/bench/bench_punch"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: bench/punch.sh needs root"; exit 77; }
[ -x "$B" ] && [ -x "$BUILD/weftd" ] && [ -x "$BUILD/weftctl" ] ||
	{ echo "build $B, $BUILD/weftd and $BUILD/weftctl first (make bench)"; exit 1; }
for c in nft ethtool; do command -v $c >/dev/null || { echo "SKIP: $c missing"; exit 77; }; done
export TOP WEFTD="$BUILD/weftd" WEFTCTL="$BUILD/weftctl" PYTHON=/usr/bin/python3
T_NAME=punch
. "$TOP/tests/lib/common.sh"
. "$TOP/tests/lib/netns.sh"
T0=$(date +%s)
netns_create 9 || fail "netns setup"
D=$(mktemp -d "${TMPDIR:-/tmp}/weft-punchbench-XXXXXX")
netns_on_exit "rm -rf '$D'"
TSV="$D/trials.tsv"
ctl() { local n=$1; shift; "$WEFTCTL" --socket "$D/n$n/weftd.sock" "$@"; }

netns_nat_host 4 10 10.0.10 "masquerade" || fail "NAT A"
netns_nat_host 5 11 10.0.11 "masquerade" || fail "NAT B"
netns_nat_host 6 12 10.0.12 "masquerade fully-random" || fail "NAT C"
netns_nat_host 7 13 10.0.13 "masquerade fully-random" || fail "NAT D"
netns_nat_host 8 14 10.0.14 "masquerade" || fail "NAT E"
netns_nat_host 9 15 10.0.15 "masquerade" || fail "NAT F"
netns_nat_host_v6 8 14 2001:db8:14 || fail "IPv6 home E"
netns_nat_host_v6 9 15 2001:db8:15 || fail "IPv6 home F"
# P and every router reach the bridge through a provider's router of their
# own (one more hop: quic.punch_probe_ttl's first round dies there).
for n in 3 4 5 6 7; do netns_isp_hop "$n" || fail "provider's router of h$n"; done
for n in 8 9; do netns_isp_hop "$n" "2001:db8:$((n + 6))" || fail "provider's router of h$n"; done
DELAY_MS=30
for n in 1 2 3 4 5 6 7 8 9; do
	ip netns exec "$(netns_name "$n")" ethtool -K eth0 tx off gso off tso off \
		tx-udp-segmentation off >/dev/null 2>&1 || fail "ethtool on h$n"
done
# (the delay lines' complaints when the namespaces go at exit: not shown)
for n in 4 5 6 7 8 9; do netns_delay_uplink "$n" "$DELAY_MS" 2>/dev/null || fail "delay line"; done
# Providers' routers know their neighbours: one IPv6 round trip between E
# and F fills the neighbour caches on the way (as in test_punch_v6).
netns_exec 8 ping -6 -c 1 -W 2 "$(netns_ip6 9)" >/dev/null || fail "IPv6 between E and F"
IP1=$(netns_ip4 1)
ip -n "$(netns_name 2)" addr add 198.51.101.2/24 dev eth0 || fail "second network"
for n in 1 3 4 5 6 7 8 9; do
	ip -n "$(netns_name "$n")" route add 198.51.101.0/24 dev eth0 || fail "route"
done
IP2=198.51.101.2
COMMON=(--set "dht.bootstrap=$IP2:6881" --set quic.keepalive_ms=1000
	--set quic.punch_peer_attempts=100000 --set node.resolve_cache_ttl_s=1 --log-level warn)
netns_weftd 2 uring "$D" --workers 1 --log-level warn
# Every trial keeps its connection, and with it its circuit (ended when
# idle for relay.circuit_idle_ms): room for all of them.
netns_weftd 1 uring "$D" --workers 1 --relay "${COMMON[@]}" \
	--set relay.circuits_per_reservation=1000
K1=$(ctl 1 --json status | json_get node_key)
netns_weftd 3 uring "$D" --workers 1 "${COMMON[@]}"
for n in 10 11 12 13 14 15; do
	netns_weftd "$n" uring "$D" --workers 1 "${COMMON[@]}" --set "relay.use=$K1@$IP1:4433"
done
declare -A K
for n in 3 10 11 12 13 14 15; do K[$n]=$(ctl "$n" --json status | json_get node_key); done
dht_ok() {
	[ "$(ctl "$1" --json dht status | json_get nodes4)" -ge 1 ] && return 0
	ctl "$1" dht ping "$IP2:6881" >/dev/null 2>&1
	return 1
}
wait_for "dht_ok 3 && dht_ok 10 && dht_ok 11 && dht_ok 12 && dht_ok 13 && dht_ok 14 && dht_ok 15" 300 || fail "DHT not joined"
held() { [ "$(ctl "$1" --json relay status | json_get use 0 state)" = held ]; }
wait_for "held 10 && held 11 && held 12 && held 13 && held 14 && held 15" 300 || fail "reservations not held"
# Each dialler sees its target's record listing the relay.
for dt in "10 11" "3 11" "10 12" "12 13" "14 15"; do
	set -- $dt
	wait_for "ctl $1 --json node resolve ${K[$2]} --fresh 2>/dev/null | grep -q '$K1'" 400 ||
		fail "h$1 does not see h$2's record with the relay"
done
T1=$(date +%s)
echo "setup: $((T1 - T0)) s (9 namespaces, 6 NATs, 9 weftd, records with the relay)"

SOCK() { echo "$D/n$1/weftd.sock"; }
trials() { # PAIR DIALLER TARGET WAIT [DIRECT_PREFIX]
	"$PYTHON" "$TOP/bench/punch_trials.py" "$(SOCK "$2")" "$1" "${K[$3]}" "$TRIALS" "$4" ${5:+"$5"} >>"$TSV" ||
		fail "trials of $1"
}
fig() { printf 'fig\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$TSV"; }
# conn_direct N KEY: the direct address of N's newest direct connection to KEY.
conn_direct() {
	ctl "$1" --json quic conns | "$PYTHON" -c 'import json,sys
cs = [c for c in json.load(sys.stdin)["conns"] if c["peer_key"] == sys.argv[1]
      and (c.get("path") or {}).get("state") == "direct" and (c.get("path") or {}).get("relay")]
print(max(cs, key=lambda c: c["id"])["path"]["direct"] if cs else "")' "$2"
}
median_rtt() { # N TARGET: median rtt_us of 5 pings (ms)
	local i out v=()
	for i in 1 2 3 4 5; do
		out=$(ctl "$1" --json quic ping "$2" 2>&1) || { echo "ping $2: $out" >&2; return 1; }
		v+=("$(echo "$out" | json_get rtt_us)")
	done
	printf '%s\n' "${v[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[3] / 1000 }'
}
# block R IP / unblock R: router R drops everything from IP (a dialler's
# public address): the punch toward R's host fails, circuits carry it.
block() {
	ip netns exec "$(netns_name "$1")" nft -f - <<EOF
table inet benchblock {
	chain pre {
		type filter hook prerouting priority -300;
		ip saddr $2 drop
	}
}
EOF
}
unblock() { ip netns exec "$(netns_name "$1")" nft delete table inet benchblock; }
# relay_bytes: UDP payload bytes all of h1's circuits carried so far.
relay_bytes() {
	ctl 1 --json relay circuits | "$PYTHON" -c 'import json,sys
print(sum(e["bytes"] for c in json.load(sys.stdin)["circuits"] for e in c["ends"]))'
}
# RTT on the 60 ms paths (the delay lines in place).
# rtt PAIR DIALLER TARGET ROUTER_OF_TARGET DIALLER_PUBLIC_IP
declare -A ADDR
rtt() {
	local pair=$1 d=$2 t=$3 r=$4 ip=$5 addr v
	addr=$(conn_direct "$d" "${K[$t]}")
	[ -n "$addr" ] || { echo "$pair: no direct connection left for the direct figures"; return 1; }
	ADDR[$pair]=$addr
	v=$(median_rtt "$d" "${K[$t]}@$addr") || return 1
	fig "$pair.direct_rtt_ms" "$pair: RTT on the direct path (median of 5 pings to KEY@$addr)" "$v" ms
	echo "$pair direct ($addr): RTT $v ms"
	block "$r" "$ip" || return 1
	v=$(median_rtt "$d" "${K[$t]}")
	unblock "$r"
	[ -n "$v" ] || return 1
	fig "$pair.relayed_rtt_ms" "$pair: RTT through the relay (median of 5 pings by key, direct path blocked)" "$v" ms
	echo "$pair relayed: RTT $v ms"
}
# Throughput with no added delay (the delay lines bypassed: every frame
# of every path crosses only veths, bridge, NAT routers and, relayed, h1's
# weftd): TPUT_RUNS transfers each way, alternating relayed and direct,
# median of each. A relayed run counts only when h1's circuits carried at
# least BYTES more than before it; a direct run only when they did not.
TPUT_RUNS=${TPUT_RUNS:-3}
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
# tput PAIR DIALLER TARGET ROUTER_OF_TARGET DIALLER_PUBLIC_IP
tput() {
	local pair=$1 d=$2 t=$3 r=$4 ip=$5 addr=${ADDR[$1]:-} i out b0 b1 rel=() dir=()
	[ -n "$addr" ] || { echo "$pair: no direct address for the throughput figures"; return 1; }
	for ((i = 0; i < TPUT_RUNS; i++)); do
		block "$r" "$ip" || return 1
		b0=$(relay_bytes)
		out=$(ctl "$d" --json quic bench "${K[$t]}" "$BYTES" sink 2>&1)
		b1=$(relay_bytes)
		unblock "$r"
		if echo "$out" | grep -q mbit_s && [ $((b1 - b0)) -ge "$BYTES" ]; then
			rel+=("$(echo "$out" | json_get mbit_s)")
		else
			echo "$pair relayed run $i not counted (relay carried $((b1 - b0)) bytes): $out"
		fi
		b0=$(relay_bytes)
		out=$(ctl "$d" --json quic bench "${K[$t]}@$addr" "$BYTES" sink 2>&1)
		b1=$(relay_bytes)
		if echo "$out" | grep -q mbit_s && [ $((b1 - b0)) -lt "$BYTES" ]; then
			dir+=("$(echo "$out" | json_get mbit_s)")
		else
			echo "$pair direct run $i not counted (relay carried $((b1 - b0)) bytes): $out"
		fi
	done
	echo "$pair Mbit/s, no added delay: relayed ${rel[*]:-none}; direct ${dir[*]:-none}"
	[ ${#rel[@]} -gt 0 ] && fig "$pair.relayed_mbit_s" \
		"$pair: QUIC bulk $BYTES bytes through the relay, no added delay (median of ${#rel[@]}; direct path blocked)" \
		"$(printf '%s\n' "${rel[@]}" | median)" "Mbit/s"
	[ ${#dir[@]} -gt 0 ] && fig "$pair.direct_mbit_s" \
		"$pair: QUIC bulk $BYTES bytes on the direct path, no added delay (median of ${#dir[@]})" \
		"$(printf '%s\n' "${dir[@]}" | median)" "Mbit/s"
	[ ${#rel[@]} -gt 0 ] && [ ${#dir[@]} -gt 0 ]
}

trials pp_pp 10 11 1
trials pub_pp 3 11 1
trials v6_v6 14 15 1 "[2001:db8:15::2]:"
# The two pairs without a direct path at once (other diallers, other
# targets): each trial ends only after its third attempt (+15 s).
trials pp_rf 10 12 0 &
P_RF=$!
trials rf_rf 12 13 0
wait "$P_RF" || fail "trials of pp_rf"
T2=$(date +%s)
rtt pp_pp 10 11 5 "$(netns_ip4 4)" || echo "pp_pp: no RTT figures"
rtt pub_pp 3 11 5 "$(netns_ip4 3)" || echo "pub_pp: no RTT figures"
for n in 4 5 6 7 8 9; do netns_delay_bypass "$n" || fail "delay line bypass of h$n"; done
tput pp_pp 10 11 5 "$(netns_ip4 4)" || echo "pp_pp: throughput figures incomplete"
tput pub_pp 3 11 5 "$(netns_ip4 3)" || echo "pub_pp: throughput figures incomplete"
T3=$(date +%s)
fig load_avg "load average (1 min) at the end of the trials" "$(cut -d' ' -f1 /proc/loadavg)" ""
fig seconds.setup "setup (namespaces, NATs, weftd, DHT, reservations, records)" "$((T1 - T0))" s
fig seconds.trials "trials ($TRIALS per pair, 5 pairs)" "$((T2 - T1))" s
fig seconds.throughput "RTT and throughput, relayed and direct" "$((T3 - T2))" s
for n in 2 1 3 10 11 12 13 14 15; do
	eval "stop_weftd \"\$PID$n\"" || echo "weftd h$n did not stop cleanly"
done
# The raw trials next to the result (bench/run.sh's run directory).
[ -n "${WEFT_BENCH_DIR:-}" ] && cp "$TSV" "$WEFT_BENCH_DIR/punch-trials.tsv"
BENCH_PUNCH_TSV="$TSV" "$B" "$TRIALS" "$BYTES" "$DELAY_MS"
