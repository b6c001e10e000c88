#!/bin/bash
# SPDX-License-Identifier: MIT
# Mailboxes (issue 34, docs/MAILBOX.md) with real weftd processes:
#
#   bridge 198.51.100.0/24
#     h1 .1  relay host, hence an anchor (--relay: mailbox.enabled = auto)
#     h2 .2  DHT bootstrap, the sender
#     h3 .3  router: masquerade for 10.0.5.0/24 -> h5 10.0.5.2, the recipient
#
# h5 holds a reservation with h1 (relay.use), finds h1 a mailbox host (its
# record's flag) and lists it as its anchor in its own record. Then:
#  - a message to h5 while it runs is delivered directly (through the relay);
#  - h5 stops; a message carrying a marker is left at h1; h1's state
#    directory never holds the marker; h1 is killed (SIGKILL) and
#    restarted: it still holds the message it acknowledged;
#  - h5 starts, fetches it on its own (mailbox.fetch_interval_s), reads the
#    marker; h1 holds nothing after the acknowledgement;
#  - the per-recipient quota answers mailbox_full, the sender's rate
#    rate_limited.
. "$TOP/tests/lib/common.sh"
prologue netns 3
command -v nft >/dev/null || fail "nft (nftables) missing: run tools/deps.sh install"
netns_nat_host 3 5 10.0.5 "masquerade" || fail "NAT setup"

IP1=$(netns_ip4 1)
IP2=$(netns_ip4 2)
MARK="weft-mailbox-marker-$RANDOM$RANDOM"

start_anchor() {
	netns_weftd 1 uring "$D" --workers 1 --relay --set "dht.bootstrap=$IP2:6881" \
		--set mailbox.per_recipient_messages=3 --set mailbox.sender_rate=1 \
		--set mailbox.sender_burst=5
}
start_b() {
	netns_weftd 5 uring "$D" --workers 1 --set "dht.bootstrap=$IP2:6881" \
		--set "relay.use=$K1@$IP1:4433" --set mailbox.fetch_interval_s=5
}
netns_weftd 2 uring "$D" --workers 1
start_anchor
K1=$(ctl 1 --json status | json_get node_key)
start_b
K5=$(ctl 5 --json status | json_get node_key)

held() { [ "$(ctl 5 --json relay status | json_get use 0 state)" = held ]; }
wait_for held 300 || fail "h5 holds no reservation: $(ctl 5 relay status)"
# msg fetch chooses the anchors again at once (the fetcher's own first
# choice may have come before the reservation)
anchored() { ctl 5 msg fetch >/dev/null 2>&1; [ "$(ctl 5 --json msg status | json_get anchors_from)" = relays ]; }
wait_for anchored 300 || fail "h5 did not take h1 as its anchor: $(ctl 5 msg status; ctl 5 relay status)"
wait_for "ctl 2 --json node resolve $K5 --fresh 2>/dev/null | json_get anchors 0 key | grep -q $K1" 600 ||
	fail "h5's record does not list its anchor: $(ctl 2 --json node resolve "$K5" --fresh 2>&1)"
pass "h5 (behind NAT) lists h1, its relay and a mailbox host, as its anchor in its record"
# h2 has neither mailbox.anchors nor a relay: it finds h1 in the DHT.
from_dht() { ctl 2 msg fetch >/dev/null 2>&1; [ "$(ctl 2 --json msg status | json_get anchors 0 key)" = "$K1" ]; }
wait_for from_dht 100 || fail "h2 did not find h1 in the DHT: $(ctl 2 msg status; ctl 1 --json msg status)"
[ "$(ctl 2 --json msg status | json_get anchors_from)" = dht ] || fail "h2's anchors: $(ctl 2 msg status)"
pass "h2 (no relay, no mailbox.anchors) takes h1 as its anchor from the DHT"

# Direct while the recipient runs.
out=$(ctl 2 --json msg send "$K5" --data "hello h5" 2>&1) || fail "direct send: $out"
[ "$(echo "$out" | json_get delivered)" = direct ] || fail "not delivered directly: $out"
ID=$(echo "$out" | json_get id)
got=$(ctl 5 msg read "$ID" 2>/dev/null) || fail "msg read $ID on h5: $(ctl 5 msg inbox)"
[ "$got" = "hello h5" ] || fail "h5 read '$got'"
ctl 5 msg rm "$ID" >/dev/null || fail "msg rm"
ctl 5 msg read "$ID" >/dev/null 2>&1 && fail "a removed message is still read"
pass "a message to a running node is delivered directly (through its relay), read and removed"

# Offline: left at the anchor.
stop_weftd "$PID5" || fail "h5 did not stop cleanly"
out=$(ctl 2 --json msg send "$K5" --data "to the offline h5: $MARK" 2>&1) || fail "send to offline h5: $out"
[ "$(echo "$out" | json_get delivered)" = anchors ] || fail "not left at the anchors: $out"
[ "$(echo "$out" | json_get copies)" = 1 ] || fail "copies: $out"
ID=$(echo "$out" | json_get id)
[ "$(ctl 1 --json msg status | json_get messages)" = 1 ] || fail "h1 holds: $(ctl 1 msg status)"
grep -rqa "$MARK" "$D/n1" && fail "the anchor's state directory holds the plaintext"
pass "a message to an offline node is left at its anchor, which never holds the plaintext"

# kill -9 of the anchor between send and fetch loses nothing acknowledged.
kill -9 "$PID1"
wait "$PID1" 2>/dev/null
start_anchor
[ "$(ctl 1 --json msg status | json_get messages)" = 1 ] || fail "after kill -9 h1 holds: $(ctl 1 msg status)"
pass "after kill -9 and a restart the anchor still holds the acknowledged message"

start_b
wait_for "ctl 5 msg read $ID >/dev/null 2>&1" 900 || fail "h5 did not fetch its message: $(ctl 5 msg status; ctl 5 msg inbox)"
got=$(ctl 5 msg read "$ID" 2>/dev/null)
[ "$got" = "to the offline h5: $MARK" ] || fail "h5 read '$got'"
wait_for '[ "$(ctl 1 --json msg status | json_get messages)" = 0 ]' 100 ||
	fail "the anchor still holds it after the acknowledgement: $(ctl 1 msg status)"
[ "$(ctl 1 --json msg status | json_get acked_total)" = 1 ] || fail "acked: $(ctl 1 msg status)"
grep -rqa "$MARK" "$D/n1" && fail "the anchor's state directory holds the plaintext"
pass "h5 started, fetched and read it; the anchor holds nothing after the acknowledgement"

# Quota (3 per recipient) and rate (burst 5 since the restart: the 6th is refused).
stop_weftd "$PID5" || fail "h5 did not stop cleanly"
for i in 1 2 3; do
	ctl 2 msg send "$K5" --data "fill $i" --no-direct >/dev/null || fail "send $i to the anchor"
done
out=$(ctl 2 msg send "$K5" --data "one too many" --no-direct 2>&1)
rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "mailbox_full" || fail "over quota: rc $rc: $out"
ctl 2 msg send "$K5" --data "again" --no-direct >/dev/null 2>&1
out=$(ctl 2 msg send "$K5" --data "and again" --no-direct 2>&1)
rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "rate_limited" || fail "over rate: rc $rc: $out"
out=$(ctl 2 --json msg send "$K5" --data "x" --no-direct 2>&1)
st=$(ctl 1 --json msg status)
[ "$(echo "$st" | json_get refused mailbox_full)" -ge 1 ] && [ "$(echo "$st" | json_get refused rate_limited)" -ge 1 ] ||
	fail "anchor counters: $st"
[ "$(echo "$st" | json_get senders 0 score)" -ge 2 ] || fail "the sender is not scored: $st"
pass "over quota: mailbox_full; over rate: rate_limited; the anchor scores the sender"

for p in "$PID1" "$PID2"; do
	stop_weftd "$p" || fail "a weftd did not stop cleanly"
done
finish
