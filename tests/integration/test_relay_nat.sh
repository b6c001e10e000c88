#!/bin/bash
# SPDX-License-Identifier: MIT
# The relay with real weftd processes and real NATs (nftables masquerade):
#
#   bridge 198.51.100.0/24
#     h1 .1  relay host (weftd --relay, relay.circuit_bytes 40 MiB)
#     h2 .2  DHT bootstrap
#     h3 .3  router A: masquerade (port-preserving) for 10.0.5.0/24 -> h5 10.0.5.2
#     h4 .4  router B: masquerade fully-random (iptables: random-fully) for 10.0.6.0/24 -> h6 10.0.6.2
#
# h5 and h6 are unreachable from outside (nothing is forwarded in), find
# themselves behind NAT (relay.reserve = auto), take a reservation with h1
# (relay.use) and list it in their node records. From h5:
#  - `weftctl node resolve KEY6` shows h6's record with the relay;
#  - `weftctl quic ping KEY6` succeeds through a circuit of h1 (the record
#    lists the relay: dial by key asks it at once);
#  - a service h6 publishes is found by name (its announce's key claim,
#    h6's record, a circuit) and called through the relay (uring run);
#  - a 24 MiB `content get ID --from KEY6` completes and verifies (BLAKE3)
#    through the relay;
#  - a 64 MiB `quic bench` to h6 is cut by the relay at its 40 MiB byte
#    limit: the bench fails, h1 counts a circuit ended by "byte limit" and
#    tells the holder (ENDED: its ended_by_relay.byte_limit counts it).
# Twice: with the relay host in uring mode (the engine forwards), then in
# xdp mode (generic XDP on its veth): there the relay's userspace forwards
# none of the circuits' datagrams (every circuit in_kernel; user_pkts 0).
. "$TOP/tests/lib/common.sh"
prologue netns 4
command -v nft >/dev/null || fail "nft (nftables) missing: run tools/deps.sh install"
command -v b3sum >/dev/null || fail "b3sum missing: run tools/deps.sh install"
netns_on_exit "[ -n "${RELAY_NAT_KEEP:-}" ] && cp -r '$D' "$RELAY_NAT_KEEP""

netns_nat_host 3 5 10.0.5 "masquerade" || fail "NAT A setup"
netns_nat_host 4 6 10.0.6 "masquerade fully-random" || fail "NAT B setup"

IP1=$(netns_ip4 1)
IP2=$(netns_ip4 2)
"$PYTHON" -c 'import random,sys; random.seed(14); sys.stdout.buffer.write(random.randbytes(24 << 20))' >"$D/file.bin"
WANT=$(b3sum --no-names "$D/file.bin")

# run_mode MODE: the whole scenario with the relay host in MODE (uring:
# the engine forwards; xdp: the XDP program does, userspace sees binds only).
run_mode() {
local mode=$1 T="$1:"
netns_weftd 2 uring "$D" --workers 1
netns_weftd 1 "$mode" "$D" --workers 1 --relay --set "dht.bootstrap=$IP2:6881" \
	--set relay.circuit_bytes=41943040
K1=$(ctl 1 --json status | json_get node_key)
for n in 5 6; do
	netns_weftd "$n" uring "$D" --workers 1 --set "dht.bootstrap=$IP2:6881" \
		--set "relay.use=$K1@$IP1:4433"
done
K5=$(ctl 5 --json status | json_get node_key)
K6=$(ctl 6 --json status | json_get node_key)

# Each NATed node knows DHT nodes (a lost bootstrap ping is pinged again:
# the DHT pings its bootstrap node once, with one retry).
dht_ok() {
	[ "$(ctl "$1" --json dht status | json_get nodes4)" -ge 1 ] && return 0
	ctl "$1" dht ping "$IP2:6881" >/dev/null 2>&1
	return 1
}
wait_for "dht_ok 5 && dht_ok 6" 300 || fail "$T the NATed nodes did not join the DHT"
held() { [ "$(ctl "$1" --json relay status | json_get use 0 state)" = held ]; }
wait_for "held 5 && held 6" 300 || fail "$T reservations not held: $(ctl 5 relay status; ctl 6 relay status)"
out=$(ctl 1 relay reservations)
echo "$out" | grep -q "^${K5:0:16}" && echo "$out" | grep -q "^${K6:0:16}" ||
	fail "$T relay does not list both holders: $out"
pass "$T h5 (port-preserving NAT) and h6 (random-fully) hold reservations with the relay"

# h6's record lists the relay (republished when the relay set changed).
wait_for "ctl 5 --json node resolve $K6 --fresh 2>/dev/null | grep -q '$K1'" 400 ||
	fail "$T h6's record does not list the relay: $(ctl 5 --json node resolve "$K6" --fresh 2>&1)"
out=$(ctl 5 node resolve "$K6")
echo "$out" | grep -q "^relay    $IP1:4433 $K1" || fail "$T resolve table: $out"
pass "$T weftctl node resolve KEY6 (from h5) lists the relay"

out=$(ctl 5 --json quic ping "$K6")
[ "$(echo "$out" | json_get peer_key)" = "$K6" ] || fail "$T quic ping KEY6 through the relay: $out"
[ "$(ctl 1 --json relay status | json_get counters circuits)" -ge 1 ] || fail "$T no circuit at the relay"
pass "$T weftctl quic ping KEY6 from h5 succeeds through the relay (rtt $(echo "$out" | json_get rtt_us) us)"

# A service of h6 (random-fully NAT: its announce's address is filtered
# and its port unknown) found by name from h5 through its announce's key
# claim, h6's record and a circuit of the relay, then called (uring only:
# the relay's mode does not change the control path).
if [ "$mode" = uring ]; then
	ctl 6 svc publish echo --backend builtin >/dev/null || fail "$T svc publish on h6"
	announced() { [ "$(ctl 6 --json svc ls | json_get services 0 announced)" -ge 1 ] 2>/dev/null; }
	wait_for announced 300 || fail "$T h6's announce was not stored: $(ctl 6 svc ls)"
	out=$(ctl 5 --json svc find echo 2>&1)
	[ "$(echo "$out" | json_get results 0 owner)" = "$K6" ] || fail "$T svc find echo from h5: $out"
	[ "$(ctl 5 --json svc stats | json_get fabric find_by_key found)" -ge 1 ] ||
		fail "$T not found by key claim: $(ctl 5 --json svc stats)"
	out=$(ctl 5 svc call echo ping --data "through the relay" --timeout 20000 2>&1) ||
		fail "$T svc call echo from h5: $out"
	[ "$out" = "through the relay" ] || fail "$T echo answered '$out'"
	pass "$T h6's service found by name (key claim, record, circuit) and called from h5 through the relay"
fi

ctl 6 --json content add "$D/file.bin" >"$D/add" || fail "$T content add on h6"
ID=$(json_get items 0 id <"$D/add")
t0=$(date +%s%N)
ctl 5 --json content get "$ID" --out "$D/out" --from "$K6" >"$D/get" 2>&1 ||
	fail "$T content get --from KEY6: $(cat "$D/get")"
t1=$(date +%s%N)
[ "$(b3sum --no-names "$D/out/$ID")" = "$WANT" ] || fail "$T downloaded file differs"
pass "$T 24 MiB content get --from KEY6 through the relay verified ($(((t1 - t0) / 1000000)) ms)"
ctl 1 relay circuits
if [ "$mode" = xdp ]; then
	# Forwarded in the kernel: the circuits say in_kernel and carried the
	# transfer, and the relay's userspace forwarded none of their
	# datagrams (user_pkts 0). An end's data can reach the relay only
	# after its bind was answered, and the relay answers binds only once
	# both ends are bound and the hops installed (hold_binds); a rebind
	# rewrites the hops in place (test_relay_xdp).
	st=$(ctl 1 --json relay status)
	up=$(echo "$st" | json_get data_plane user_pkts)
	ctl 1 --json relay circuits | "$PYTHON" -c 'import json,sys
c=json.load(sys.stdin)["circuits"]
big=[x for x in c if sum(e["bytes"] for e in x["ends"]) > (16 << 20)]
sys.exit(0 if big and all(x["in_kernel"] for x in c) and int(sys.argv[1]) == 0 else 1)' "$up" ||
		fail "$T the circuits were not forwarded in the kernel alone (user_pkts $up): $(ctl 1 --json relay circuits)"
	pass "$T the relay's userspace forwarded none of the circuits' datagrams (user_pkts $up; every circuit in_kernel)"
fi

# 64 MiB through one circuit of at most 40 MiB: cut by the relay.
out=$(ctl 5 --json quic bench "$K6" 67108864 sink 2>&1) &&
	fail "$T a 64 MiB bench passed a 40 MiB circuit: $out"
wait_for '[ "$(ctl 1 --json relay status | json_get counters ended_bytes)" -ge 1 ]' 100 ||
	fail "$T no circuit ended by its byte limit: $(ctl 1 relay status)"
grep -q "ended: byte limit" "$LOG1" || fail "$T relay log does not name the byte limit"
# The dialler is told why (ENDED on its CONNECT stream; the connection
# through relay:PORT closed with relay_circuit_ended), not a timeout.
echo "$out" | grep -q "relay_circuit_ended: byte_limit" ||
	fail "$T the dialler's error does not name the byte limit: $out"
wait_for '[ "$(ctl 6 --json relay status | json_get ended_by_relay byte_limit)" -ge 1 ]' 100 ||
	fail "$T the holder was not told the byte limit (ENDED): $(ctl 6 --json relay status)"
pass "$T a circuit over its byte limit is cut; the dialler's error: $(echo "$out" | tr -d "\n" | cut -c1-120)"

for p in "$PID5" "$PID6" "$PID1" "$PID2"; do
	stop_weftd "$p" || fail "$T a weftd did not stop cleanly"
done
rm -rf "$D/n1" "$D/n2" "$D/n5" "$D/n6" "$D/out"
}

for m in ${RELAY_NAT_MODES:-uring xdp}; do
	run_mode "$m"
done
finish
