#!/bin/bash
# SPDX-License-Identifier: MIT
# A NATed node whose only contact is its relay learns its reflexive
# address (issue 30, item 6), with real weftd and a real NAT (nftables
# masquerade):
#
#   bridge 198.51.100.0/24
#     h1 .1  relay host (weftd --relay), the only other weft node
#     h2 .2  router: masquerade for 10.0.7.0/24 -> h3 10.0.7.2
#
# h3's DHT bootstrap and relay are both h1: every observation it gets
# comes from one network, never a quorum of two. h1 holds a reservation
# for h3, so its observed address (QUIC stream 0x04 on the relay's QUIC
# port, authenticated by the handshake) decides alone: h3 reports
# `behind-nat` with the router's outside address, goes read-only, and its
# node record lists that address and the relay. tests/sim/
# test_sim_relay_only.c is the same in one process; this is it on the
# kernel's NAT.
. "$TOP/tests/lib/common.sh"
prologue netns 2
command -v nft >/dev/null || fail "nft (nftables) missing: run tools/deps.sh install"
netns_nat_host 2 3 10.0.7 "masquerade" || fail "NAT setup"
IP1=$(netns_ip4 1) OUT=$(netns_ip4 2)

netns_weftd 1 uring "$D" --workers 1 --relay
K1=$(ctl 1 --json status | json_get node_key)
netns_weftd 3 uring "$D" --workers 1 --set "dht.bootstrap=$IP1:6881" \
	--set "relay.use=$K1@$IP1:4433" --set "node.vote_networks=198.51.100.0/24"

held() { [ "$(ctl 3 --json relay status | json_get use 0 state)" = held ]; }
wait_for held 300 || fail "no reservation with the relay: $(ctl 3 relay status)"
nat() { ctl 3 --json status | json_get nat; }
wait_for '[ "$(nat)" = behind-nat ]' 300 ||
	fail "h3 is '$(nat)', not behind-nat: $(ctl 3 --json status)"
ctl 3 --json status | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)
r = [x["addr"] for x in s.get("reflexive") or []]
assert any(a.rsplit(":", 1)[0] == sys.argv[1] for a in r), s
' "$OUT" || fail "h3's reflexive address is not the router's outside $OUT: $(ctl 3 --json status)"
pass "relay-only NATed node: behind-nat, reflexive address $OUT (the router's outside) from its relay alone"

wait_for '[ "$(ctl 3 --json dht status | json_get read_only)" = True ]' 100 ||
	fail "h3's DHT did not go read-only: $(ctl 3 --json dht status)"
K3=$(ctl 3 --json status | json_get node_key)
wait_for "ctl 1 --json node resolve $K3 --fresh 2>/dev/null | grep -q '$K1'" 300 ||
	fail "h3's record does not list the relay: $(ctl 1 --json node resolve "$K3" --fresh 2>&1)"
pass "h3 read-only in the DHT; its record, resolved at the relay host, lists the relay"

for n in 3 1; do
	eval "stop_weftd \$PID$n" || fail "stop h$n"
done
finish
