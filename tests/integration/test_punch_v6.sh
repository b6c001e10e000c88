#!/bin/bash
# SPDX-License-Identifier: MIT
# Hole punching between two dual-stack homes (docs/CONNECTIVITY.md "Direct
# paths": global IPv6 candidates first), real weftd processes:
#
#   bridge 198.51.100.0/24, 2001:db8:77::/64 (and 198.51.101.0/24)
#     h1 .1  relay host (weftd --relay; circuits policed to 2000 packets/s)
#     h2 .2  DHT bootstrap (also 198.51.101.2, the address the others know)
#     h3 .3  router A -> h5: 10.0.5.2 and 2001:db8:5::2
#     h4 .4  router B -> h6: 10.0.6.2 and 2001:db8:6::2
#
# Both routers do what a home router does: IPv4 masquerade (port-
# preserving), and IPv6 forwarded without NAT behind a stateful firewall
# (nftables forward chain: established/related and the LAN's own packets
# pass, anything else from outside is dropped). Each sits behind a
# provider's router of its own (netns_isp_hop, IPv4 and IPv6) whose
# uplink holds what it sends 30 ms (tests/lib/delay_line.py), as in
# test_punch_nat. h5 and h6 are unreachable from outside on both families
# and hold reservations with h1; their records list their IPv6 address.
#  - h5 dials h6 by key and keeps the connection: it starts on a circuit of
#    h1 (IPv4), punches, and both sides end direct on the peer's IPv6
#    address (the candidate tried first); the circuit's packet counters
#    stop growing while keepalives flow direct;
#  - an 8 MiB `content get --from KEY6` (a new connection, relayed first)
#    verifies (BLAKE3) across its connection's switch;
#  - the firewall is real: h1 cannot reach h6's IPv6 address directly.
# Every wait polls for a state under a deadline.
. "$TOP/tests/lib/common.sh"
prologue netns 4
. "$TOP/tests/lib/punch.sh"
command -v nft >/dev/null || fail "nft (nftables) missing: run tools/deps.sh install"
command -v b3sum >/dev/null || fail "b3sum missing: run tools/deps.sh install"
command -v ethtool >/dev/null || fail "ethtool missing: run tools/deps.sh install"
api() { curl -sf --unix-socket "$D/n$1/weftd.sock" -X "$2" "http://weftd$3" ${4:+-d "$4"}; }

netns_nat_host 3 5 10.0.5 "masquerade" || fail "NAT A setup"
netns_nat_host 4 6 10.0.6 "masquerade" || fail "NAT B setup"
netns_nat_host_v6 3 5 2001:db8:5 || fail "IPv6 home A setup"
netns_nat_host_v6 4 6 2001:db8:6 || fail "IPv6 home B setup"
DELAY_MS=30
for n in 1 2 3 4; do
	ip netns exec "$(netns_name "$n")" ethtool -K eth0 tx off gso off tso off \
		tx-udp-segmentation off >/dev/null 2>&1 || fail "ethtool on h$n"
done
netns_isp_hop 3 2001:db8:5 || fail "provider's router of h3"
netns_isp_hop 4 2001:db8:6 || fail "provider's router of h4"
for n in 3 4; do netns_delay_uplink "$n" "$DELAY_MS" || fail "delay line setup"; done
# Providers' routers know their neighbours: one IPv6 round trip between the
# homes' routers fills the neighbour caches on the way (else the first
# IPv6 probe waits for neighbour discovery across two delay lines).
netns_exec 3 ping -6 -c 1 -W 2 "$(netns_ip6 4)" >/dev/null || fail "IPv6 between the routers"

IP1=$(netns_ip4 1)
ip -n "$(netns_name 2)" addr add 198.51.101.2/24 dev eth0 || fail "second network"
for n in 1 3 4; do
	ip -n "$(netns_name "$n")" route add 198.51.101.0/24 dev eth0 || fail "route"
done
IP2=198.51.101.2
"$PYTHON" -c 'import random,sys; random.seed(16); sys.stdout.buffer.write(random.randbytes(8 << 20))' >"$D/file.bin"
WANT=$(b3sum --no-names "$D/file.bin")

netns_weftd 2 uring "$D" --workers 1
netns_weftd 1 uring "$D" --workers 1 --relay --set "dht.bootstrap=$IP2:6881" \
	--set relay.circuit_pps=2000 --set relay.circuit_burst=2000
K1=$(ctl 1 --json status | json_get node_key)
for n in 5 6; do
	netns_weftd "$n" uring "$D" --workers 2 --set "dht.bootstrap=$IP2:6881" \
		--set "relay.use=$K1@$IP1:4433" --set quic.keepalive_ms=1000
done
K5=$(ctl 5 --json status | json_get node_key)
K6=$(ctl 6 --json status | json_get node_key)

dht_ok() {
	[ "$(ctl "$1" --json dht status | json_get nodes4)" -ge 1 ] && return 0
	ctl "$1" dht ping "$IP2:6881" >/dev/null 2>&1
	return 1
}
wait_for "dht_ok 5 && dht_ok 6" 300 || fail "the home nodes did not join the DHT"
held() { [ "$(ctl "$1" --json relay status | json_get use 0 state)" = held ]; }
wait_for "held 5 && held 6" 300 || fail "reservations not held"
wait_for "ctl 5 --json node resolve $K6 --fresh 2>/dev/null | grep -q '$K1'" 400 ||
	fail "h6's record does not list the relay: $(ctl 5 --json node resolve "$K6" --fresh 2>&1)"
ctl 5 --json node resolve "$K6" | grep -qF '[2001:db8:6::2]:4433' ||
	fail "h6's record does not list its IPv6 address: $(ctl 5 --json node resolve "$K6")"
pass "h5 and h6 (dual-stack homes) hold reservations; h6's record lists the relay and [2001:db8:6::2]:4433"


# 1. h5 -> h6 by key, kept open: relayed, then direct over IPv6 on both sides.
t0=$(date +%s%N)
api 5 POST /v1/quic/ping "{\"addr\":\"$K6\",\"keep\":true,\"timeout_ms\":15000}" >"$D/ping" ||
	fail "ping K6 (keep): $(cat "$D/ping")"
RELAY6=$(conn_path 5 "$K6" relay)
case "$RELAY6" in "$IP1":*) ;; *) fail "h5's connection to h6 did not start on the relay: $(ctl 5 --json quic conns)" ;; esac
wait_for '[ "$(conn_path 5 "$K6" state)" = direct ] && [ "$(conn_path 6 "$K5" state)" = direct ]' 200 ||
	fail "h5-h6 did not move to a direct path: $(ctl 5 --json quic conns; ctl 6 --json quic conns; ctl 5 --json quic stats | grep -E 'punch|path')"
t1=$(date +%s%N)
# h5 knew it dialled a circuit: it punched at its handshake's end.
[ "$(ctl 5 --json quic stats | json_get total punch_early)" -ge 1 ] ||
	fail "h5 did not punch at the handshake's end: $(ctl 5 --json quic stats | grep punch)"
# Both sides on the other's IPv6 address (an upgrade from IPv4 may take
# one more ack or VALIDATED: polled).
wait_for '[ "$(conn_path 5 "$K6" direct)" = "[2001:db8:6::2]:4433" ] &&
	[ "$(conn_path 6 "$K5" direct)" = "[2001:db8:5::2]:4433" ]' 50 ||
	fail "not direct over IPv6: $(ctl 5 --json quic conns; ctl 6 --json quic conns)"
pass "h5 -> h6 by key: relayed via $RELAY6, direct at $(conn_path 5 "$K6" direct) after $(conn_path 5 "$K6" to_direct_ms) ms of punching ($(((t1 - t0) / 1000000)) ms from the dial; h6 at $(conn_path 6 "$K5" direct); upgrades from IPv4 $(conn_path 5 "$K6" upgrades) / $(conn_path 6 "$K5" upgrades))"

circuit_quiet 5 "$K6" "$RELAY6" "direct over IPv6"

# 2. 8 MiB across a switch (a new connection, dialled by key).
ctl 6 --json content add "$D/file.bin" >"$D/add" || fail "content add on h6"
ID=$(json_get items 0 id <"$D/add")
direct0=$(ctl 5 --json quic stats | json_get total punch_direct)
ctl 5 --json content get "$ID" --out "$D/out" --from "$K6" >"$D/get" 2>&1 ||
	fail "content get --from KEY6: $(cat "$D/get")"
[ "$(b3sum --no-names "$D/out/$ID")" = "$WANT" ] || fail "downloaded file differs"
direct1=$(ctl 5 --json quic stats | json_get total punch_direct)
[ "$direct1" -ge $((direct0 + 1)) ] || fail "the download's connection did not switch ($direct0 -> $direct1)"
pass "8 MiB content get --from KEY6 verified across its connection's switch"

# 3. The firewall drops what nobody inside asked for: h1 (public) cannot
# dial h6's IPv6 address.
out=$(curl -s --unix-socket "$D/n1/weftd.sock" -X POST http://weftd/v1/quic/ping \
	-d "{\"addr\":\"$K6@[2001:db8:6::2]:4433\",\"timeout_ms\":1500}" 2>&1)
echo "$out" | grep -q rtt_us && fail "h1 reached h6 directly through its firewall: $out"
echo "$out" | grep -q error || fail "h1's direct ping of h6 gave no error: $out"
pass "h1 -> [2001:db8:6::2]:4433 directly: dropped by h6's firewall ($out)"

for p in "$PID5" "$PID6" "$PID1" "$PID2"; do
	stop_weftd "$p" || fail "a weftd did not stop cleanly"
done
finish
