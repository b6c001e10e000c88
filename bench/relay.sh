#!/bin/bash
# SPDX-License-Identifier: MIT
# Relay forwarding rate: packets/s one relay forwards from end A to end B,
# for (a) weft's XDP relay (weft's XDP program, generic mode on veth),
# (b) weft's userspace relay (the engine, io_uring), (c) coturn
# (turnserver, one relay thread; load from turnutils_uclient). Same set-up
# for all: three namespaces on one bridge (A = h1, B = h2, relay = h3),
# same UDP payload size, the relay pinned to CPU $RELAY_CPU and the sender
# to CPU $SEND_CPU, one run each. Forwarded rate = datagrams arriving at
# B's UDP layer per second over the measured window (B never reads, so the
# sink costs no CPU), counted the same way for every relay.
# Never part of make test. Needs root.
#   bench/relay.sh [SECONDS] [PAYLOAD_BYTES]
# (BUILD defaults to build/; needs build/tools/relay_node and relay_load:
# make build/tools/relay_node build/tools/relay_load)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
SECS=${1:-5} SIZE=${2:-100}
RELAY_CPU=${RELAY_CPU:-1} SEND_CPU=${SEND_CPU:-0}
RN="$BUILD/tools/relay_node" RL="$BUILD/tools/relay_load"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: bench/relay.sh needs root"; exit 77; }
[ -x "$RN" ] && [ -x "$RL" ] || { echo "build $RN and $RL first"; exit 1; }
command -v turnserver >/dev/null && command -v turnutils_uclient >/dev/null ||
	{ echo "SKIP: coturn (turnserver, turnutils_uclient) missing"; exit 77; }
. "$TOP/tests/lib/netns.sh"
netns_create 3 || exit 1
D=$(mktemp -d /tmp/weft-relaybench-XXXXXX)
netns_on_exit "rm -rf '$D'"
RIP=$(netns_ip4 3) BIP=$(netns_ip4 2)
TA=000102030405060708090a0b0c0d0e0f TB=f0e0d0c0b0a090807060504030201000
for h in 1 2; do netns_exec $h ethtool -K eth0 tx off >/dev/null 2>&1; done
# (full UDP checksums from the ends: the XDP relay updates them incrementally)
for h in 1 2; do netns_exec $h ping -c1 -W2 "$RIP" >/dev/null || exit 1; done

# Datagrams that reached B's UDP layer (delivered, or dropped for a full
# socket buffer; bad checksums excluded), from B's /proc/net/snmp: counted
# per datagram after GSO segmentation, unlike the interface's rx_packets
# (one per GSO train the userspace relay sends).
rx_b() { netns_exec 2 awk '$1 == "Udp:" && $2 ~ /^[0-9]/ {print $2 + $3 + $4 - $8}' /proc/net/snmp; }
# Packets the kernel dropped for a full per-CPU backlog (softnet_stat
# column 2), all CPUs: where datagrams a relay sent but B never saw went.
# (hex; summed in bash: Debian's awk, mawk, has no strtonum)
backlog_drops() {
	local s=0 _a d _r
	while read -r _a d _r; do s=$((s + 0x$d)); done </proc/net/softnet_stat
	echo "$s"
}

# measure: B's rx_packets over SECS while the sender (started before) runs;
# the first second is warm-up. Prints the rate.
measure() {
	local a b
	sleep 1
	a=$(rx_b)
	sleep "$SECS"
	b=$(rx_b)
	echo $(((b - a) / SECS))
}

# weft MODE: relay_node in h3 (pinned), B holds its binding, A floods.
weft() {
	local exec rp rate
	exec=$(netns_bpffs_exec 3 "$D")
	RELAY_NODE_PPS=100000000 $exec taskset -c "$RELAY_CPU" "$RN" "$1" eth0 42000 42003 $TA $TB \
		"$D/stats.json" >"$D/rn.out" 2>"$D/rn.err" &
	rp=$!
	for _ in $(seq 1 300); do grep -q '^port' "$D/rn.out" 2>/dev/null && break; sleep 0.1; done
	port=$(awk '/^port/ {print $2}' "$D/rn.out")
	[ -n "$port" ] || {
		echo "relay_node $1 did not start in 30 s: $(cat "$D/rn.err")" >&2
		kill $rp
		echo "0 0 0 0 0 0 0 0" >"$D/$1.res"
		return 1
	}
	netns_exec 2 "$RL" hold "$RIP" "$port" $TB $((SECS + 4)) >/dev/null &
	sleep 0.5
	netns_exec 1 taskset -c "$SEND_CPU" "$RL" send "$RIP" "$port" $TA "$SIZE" $((SECS + 2)) >"$D/send.out" &
	sp=$!
	bd=$(backlog_drops)
	rate=$(measure)
	bd=$(($(backlog_drops) - bd))
	wait $sp
	sleep 0.3
	echo "$rate $(awk '/^sent/ {print int($4)}' "$D/send.out") $(json_stat totals user_pkts) $(json_stat xdp relay_tx) $(json_stat engine total tx_pkts) $(json_stat engine total tx_drop_error) $(json_stat engine total rx_pkts) $bd" >"$D/$1.res"
	kill $rp
	wait 2>/dev/null
}

json_stat() {
	/usr/bin/python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v=v.get(k, 0) if isinstance(v, dict) else 0
print(v)' "$D/stats.json" "$@"
}

coturn() {
	local tp up rate
	netns_exec 3 taskset -c "$RELAY_CPU" turnserver -n --no-auth --no-tls --no-dtls --no-cli \
		--listening-ip "$RIP" --relay-ip "$RIP" --relay-threads 1 --log-file stdout \
		--min-port 49152 --max-port 49999 >"$D/turn.log" 2>&1 &
	tp=$!
	sleep 1
	# B: a bound socket on the peer port that never reads (no ICMP back).
	netns_exec 2 /usr/bin/python3 -c "import socket,time
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 3480)); time.sleep($SECS + 6)" &
	up=$!
	sleep 0.5
	netns_exec 1 taskset -c "$SEND_CPU" timeout $((SECS + 4)) turnutils_uclient -n 100000000 -m 4 \
		-l "$SIZE" -z 0 -c -e "$BIP" -r 3480 "$RIP" >"$D/uclient.out" 2>&1 &
	sleep 1
	rate=$(measure)
	kill $tp $up 2>/dev/null
	wait 2>/dev/null
	echo "$rate"
}

weft xdp-generic
weft uring
read -r X XOFF XUSER XKERN _ _ _ XBD <"$D/xdp-generic.res"
read -r U UOFF UUSER _ UTX UTXERR URX UBD <"$D/uring.res"
C=$(coturn)
[ "${C:-0}" -gt 0 ] || { echo "coturn forwarded nothing: see $D/turn.log, $D/uclient.out"; C=0; }
ratio() { [ "$2" -gt 0 ] && awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1fx", a / b}' || echo "-"; }
echo "relay forwarding, $SIZE-byte UDP payload, A -> B, relay on CPU $RELAY_CPU, sender on CPU $SEND_CPU, $SECS s, $(nproc) CPUs, $(uname -r)"
printf '%-36s %14s %14s %12s\n' relay "forwarded pps" "vs coturn" "offered pps"
printf '%-36s %14d %14s %12s\n' "weft XDP (generic, in the kernel)" "$X" "$(ratio "$X" "$C")" "${XOFF:-?}"
printf '%-36s %14d %14s %12s\n' "weft userspace (engine, io_uring)" "$U" "$(ratio "$U" "$C")" "${UOFF:-?}"
printf '%-36s %14d %14s %12s\n' "coturn (turnserver, 1 relay thread)" "$C" "1.0x" "uclient"
echo "weft XDP run: userspace forwarded $XUSER, the program forwarded $XKERN; backlog drops in the window $XBD"
echo "weft uring run: engine received $URX, forwarded $UUSER, kernel accepted $UTX, send errors $UTXERR; backlog drops in the window $UBD"
