#!/bin/bash
# SPDX-License-Identifier: MIT
# A community with a member behind a NAT (issue 34, docs/COMMUNITY.md
# "Reaching a member behind a NAT"), real weftd processes in namespaces:
#
#   bridge 198.51.100.0/24
#     h1 .1  relay host (--relay: hence also a mailbox anchor)
#     h2 .2  DHT bootstrap, member A (creates the community)
#     h3 .3  member C
#     h4 .4  router: masquerade for 10.0.5.0/24 -> h5 10.0.5.2, member Q,
#            relay.use = h1
#
# A, C and Q join by id and key and publish a share each with content add
# --community: each sees the three members and shares, and Q subscribes to
# A's share by the listed link and fetches it. Then h4 drops everything
# between A and Q's NAT and C stops: a share A binds reaches Q only by
# A's gossip, whose dial of Q's address fails and which then dials Q by
# its key, through a circuit of h1 (the relay Q's node record lists).
. "$TOP/tests/lib/common.sh"
prologue netns 4
command -v nft >/dev/null || fail "nft (nftables) missing: run tools/deps.sh install"
netns_nat_host 4 5 10.0.5 "masquerade" || fail "NAT setup"

IP1=$(netns_ip4 1)
IP2=$(netns_ip4 2)
common=(--workers 1 --set "dht.bootstrap=$IP2:6881" --set content.poll_s=2)
# A logs at debug level: its gossip by key names each target it dials
netns_weftd 2 uring "$D" --workers 1 --set content.poll_s=2 --log-level debug
netns_weftd 1 uring "$D" "${common[@]}" --relay
K1=$(ctl 1 --json status | json_get node_key)
netns_weftd 3 uring "$D" "${common[@]}"
netns_weftd 5 uring "$D" "${common[@]}" --set "relay.use=$K1@$IP1:4433"
for n in 2 3 5; do eval "K$n=\$(ctl $n --json status | json_get node_key)"; done
cfield() { ctl "$1" --json community ls | json_get communities 0 "$2"; }
metric() { ctl "$1" metrics | awk -v m="$2" '$1 == m {print $2}'; }

wait_for '[ "$(ctl 5 --json relay status | json_get use 0 state)" = held ]' 300 ||
	fail "h5 holds no reservation: $(ctl 5 relay status)"
wait_for "ctl 2 --json node resolve $K5 --fresh 2>/dev/null | json_get relays 0 key | grep -q $K1" 300 ||
	fail "h5's record does not list its relay: $(ctl 2 --json node resolve "$K5" --fresh 2>&1)"

ctl 2 --json community create club >"$D/c" || fail "create: $(cat "$D/c")"
ID=$(json_get id <"$D/c") KEY=$(json_get key <"$D/c")
for n in 3 5; do ctl "$n" community join "$ID" "$KEY" >/dev/null || fail "join $n"; done
for n in 2 3 5; do
	mkdir -p "$D/s$n" && echo "share of host $n" >"$D/s$n/f.txt"
	ctl "$n" --json content add "$D/s$n" --name "share$n" --community "$ID" >"$D/a$n" ||
		fail "content add --community on $n: $(cat "$D/a$n")"
done
for n in 2 3 5; do
	wait_for '[ "$(cfield '$n' members)" = 3 ] && [ "$(cfield '$n' shares)" = 3 ]' 600 ||
		fail "host $n: $(ctl $n --json community ls; ctl $n metrics | grep community_)"
done
ctl 2 --json community members "$ID" | grep -q "$K5" || fail "A does not list Q"
# membership is not in a node's own record
for n in 2 5; do
	wait_for 'ctl 3 --json node resolve "$K'$n'" --fresh >"$D/rec'$n'" 2>&1' 300 ||
		fail "resolve $n: $(cat "$D/rec$n")"
	grep -qi "$ID\|$KEY" "$D/rec$n" && fail "host $n's node record names the community: $(cat "$D/rec$n")"
done
pass "A, C and Q (behind a NAT) joined by id and key; each sees the three members and shares; no node record names the community"

LINK=$(ctl 5 --json community shares "$ID" | "$PYTHON" -c '
import json, sys
print([s["link"] for s in json.load(sys.stdin)["shares"] if s["name"] == "share2"][0])')
ctl 5 content subscribe "$LINK" >/dev/null || fail "subscribe"
wait_for '[ "$(ctl 5 --json content subscriptions | json_get subscriptions 0 fetched_seq)" = 1 ]' 600 ||
	fail "Q did not fetch A's share: $(ctl 5 --json content subscriptions)"
pass "Q subscribed to A's share by the listed link and fetched it"

# Nothing between A and Q's NAT any more; C stops.
ip netns exec "$(netns_name 4)" nft -f - <<EOF || fail "cut"
table inet cut {
	chain forward {
		type filter hook forward priority -10;
		ip saddr $IP2 drop
		ip daddr $IP2 drop
	}
}
EOF
stop_weftd "$PID3" || fail "C did not stop cleanly"
circuits0=$(ctl 1 --json relay status | json_get counters circuits)
ctl 2 community share "$ID" "$K2/later" >/dev/null || fail "share later"
wait_for '[ "$(cfield 5 shares)" = 4 ]' 600 ||
	fail "Q did not get the share: $(ctl 5 --json community ls; ctl 2 metrics | grep community_
		echo "--- Q's community metrics:"; ctl 5 metrics | grep '^weft_community_'
		echo "--- h1's relay:"; ctl 1 relay status
		echo "--- A's log:"; grep -E 'community|relay|circuit|dial' "$LOG2" | tail -n 40
		echo "--- Q's relay:"; ctl 5 relay status
		echo "--- Q's record as A resolves it:"; ctl 2 --json node resolve "$K5" --fresh
		echo "--- Q's status:"; ctl 5 --json status
		echo "--- Q's log:"; grep -E 'relay|conn|nat|NAT|reserv' "$LOG5" | tail -n 60)"
[ "$(metric 2 weft_community_dials_by_key_total)" -ge 1 ] ||
	fail "A did not dial Q by key: $(ctl 2 metrics | grep community_)"
[ "$(ctl 1 --json relay status | json_get counters circuits)" -gt "$circuits0" ] ||
	fail "no circuit through h1: $(ctl 1 relay status)"
pass "cut from Q's NAT, A's gossip reached Q by its key through h1's circuit (A: $(metric 2 weft_community_gossip_members_total) of its records sent to members it knew no holder key for)"

for p in "$PID5" "$PID2" "$PID1"; do stop_weftd "$p" || fail "a weftd did not stop cleanly"; done
finish
