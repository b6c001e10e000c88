#!/bin/bash
# SPDX-License-Identifier: MIT
# Service providers behind real NATs (nftables masquerade), found by name
# and called from a public node and from a node behind the other NAT:
#
#   bridge 198.51.100.0/24
#     h1 .1  relay host (weftd --relay)
#     h2 .2  DHT bootstrap, the public caller
#     h3 .3  router A: masquerade (port-preserving) for 10.0.5.0/24 -> h5 10.0.5.2
#     h4 .4  router B: masquerade fully-random for 10.0.6.0/24 -> h6 10.0.6.2
#
# h5 publishes echo 1.0.0, h6 echo 2.0.0 (the version tells the callers'
# picks apart: `svc call --version`). Each NATed provider holds a
# reservation with h1 and lists it in its node record; a caller that cannot
# reach the announced address (filtered by the NAT) dials the provider's key
# (record, then direct addresses or a relay circuit: the same path as
# `quic ping KEY`). Checked: h2 finds both by name and calls each; h6 calls
# h5's and h5 calls h6's (NAT to NAT).
. "$TOP/tests/lib/common.sh"
prologue netns 4
command -v nft >/dev/null || fail "nft (nftables) missing: run tools/deps.sh install"

netns_nat_host 3 5 10.0.5 "masquerade" || fail "NAT A setup"
netns_nat_host 4 6 10.0.6 "masquerade fully-random" || fail "NAT B setup"

IP1=$(netns_ip4 1)
IP2=$(netns_ip4 2)
netns_weftd 2 uring "$D" --workers 1
netns_weftd 1 uring "$D" --workers 1 --relay --set "dht.bootstrap=$IP2:6881"
K1=$(ctl 1 --json status | json_get node_key)
for n in 5 6; do
	netns_weftd "$n" uring "$D" --workers 1 --set "dht.bootstrap=$IP2:6881" \
		--set "relay.use=$K1@$IP1:4433"
done
K5=$(ctl 5 --json status | json_get node_key)
K6=$(ctl 6 --json status | json_get node_key)

dht_ok() {
	[ "$(ctl "$1" --json dht status | json_get nodes4)" -ge 1 ] && return 0
	ctl "$1" dht ping "$IP2:6881" >/dev/null 2>&1
	return 1
}
wait_for "dht_ok 5 && dht_ok 6 && dht_ok 1" 300 || fail "the nodes did not join the DHT"
held() { [ "$(ctl "$1" --json relay status | json_get use 0 state)" = held ]; }
wait_for "held 5 && held 6" 300 || fail "reservations not held: $(ctl 5 relay status; ctl 6 relay status)"
wait_for "ctl 2 --json node resolve $K6 --fresh 2>/dev/null | grep -q '$K1'" 400 ||
	fail "h6's record does not list the relay"
wait_for "ctl 2 --json node resolve $K5 --fresh 2>/dev/null | grep -q '$K1'" 400 ||
	fail "h5's record does not list the relay"
pass "h5 (port-preserving NAT) and h6 (random-fully) hold reservations and list the relay"

ctl 5 svc publish echo --backend builtin --version 1.0.0 >/dev/null || fail "svc publish on h5"
ctl 6 svc publish echo --backend builtin --version 2.0.0 >/dev/null || fail "svc publish on h6"
announced() { [ "$(ctl "$1" --json svc ls | json_get services 0 announced)" -ge 1 ] 2>/dev/null; }
wait_for "announced 5 && announced 6" 300 || fail "announces not stored: $(ctl 5 svc ls; ctl 6 svc ls)"

# call FROM RANGE WANT_KEY: a call from node FROM to the echo of version
# RANGE answers, from WANT_KEY.
call() {
	local out
	out=$(ctl "$1" --json svc call echo ping --data "to $3" --version "$2" --timeout 20000 2>&1) ||
		fail "svc call echo $2 from h$1: $out"
	[ "$(echo "$out" | json_get peer)" = "$3" ] || fail "h$1's call of echo $2 answered by another: $out"
	[ "$(echo "$out" | json_get data)" = "to $3" ] || fail "h$1's call of echo $2: $out"
}

out=$(ctl 2 --json svc find echo 2>&1)
echo "$out" | grep -q "$K5" && echo "$out" | grep -q "$K6" || fail "h2 does not find both providers: $out"
out=$(ctl 2 svc find echo --version '>=1,<2') || fail "svc find --version from h2"
echo "$out" | grep -q "^${K5:0:16}" && ! echo "$out" | grep -q "^${K6:0:16}" ||
	fail "svc find echo --version '>=1,<2' from h2: $out"
call 2 "=1.0.0" "$K5"
call 2 "=2.0.0" "$K6"
pass "public h2 finds both NATed providers by name and calls each"
call 6 "=1.0.0" "$K5"
call 5 "=2.0.0" "$K6"
pass "h6 (random-fully) calls h5's service (port-preserving) and h5 calls h6's"

# The reputation h2 keeps of both providers lasts across a restart (LMDB:
# written by the refresher every 2 s, and at stop).
rep_n() { ctl 2 --json svc stats | json_get fabric reputation_providers; }
wait_for '[ "$(rep_n)" -ge 2 ]' 50 || fail "h2 keeps no reputation: $(ctl 2 --json svc stats)"
stop_weftd "$PID2" || fail "h2 did not stop cleanly"
netns_weftd 2 uring "$D" --workers 1
[ "$(rep_n)" -ge 2 ] || fail "reputation lost at restart: $(ctl 2 --json svc stats)"
grep -q "reputation of [0-9]* provider(s) restored" "$WEFTD_LOG" || fail "no restore line in h2's log"
pass "h2's reputation of the providers ($(rep_n)) lasts across its restart"

for p in "$PID5" "$PID6" "$PID1" "$PID2"; do
	stop_weftd "$p" || fail "a weftd did not stop cleanly"
done
finish
