#!/bin/bash
# SPDX-License-Identifier: MIT
# QUIC under loss and reordering between two weftd in two namespaces. This
# kernel has no sch_netem, so a relay we control sits in the path: node 1
# dials node 2 through tests/lib/lossy_relay.py (in namespace 1), which drops
# 5% of the datagrams in each direction and holds back 10% of the rest for
# 1-5 ms (they arrive after later ones), with a fixed seed. Checks: a 16 MiB
# transfer arrives intact (BLAKE2b of what was sent = hash of what arrived),
# a 2 MiB echo comes back complete (loss both ways on data), and the relay
# really dropped and reordered datagrams.
. "$TOP/tests/lib/common.sh"
prologue netns 2 pair
[ -x "$PYTHON" ] || skip "$PYTHON missing"

IP1=$(netns_ip4 1) IP2=$(netns_ip4 2)
QPORT=$((20000 + RANDOM % 20000))
RPORT=$((QPORT + 7))
api() { local n=$1 m=$2 p=$3; shift 3; curl -s --unix-socket "$D/n$n/weftd.sock" -X "$m" "http://weftd$p" "$@"; }

for n in 1 2; do
	mkdir -p "$D/n$n"
	NETNS_EXEC="ip netns exec $(netns_name "$n")"
	start_weftd "$D/n$n" --state-dir "$D/n$n" --quic-port "$QPORT" --dht-port $((QPORT + 1)) \
		--workers 2 --io uring --log-level info
	eval "PID$n=$WEFTD_PID LOG$n=$WEFTD_LOG"
done
WEFTD_LOG=$LOG1
K2=$(api 2 GET /v1/status | json_get node_key)

netns_exec 1 "$PYTHON" "$TOP/tests/lib/lossy_relay.py" "$IP1" "$RPORT" "$IP2" "$QPORT" \
	--loss 0.05 --reorder 0.10 --delay-ms 1,5 --seed 7 --stats "$D/relay.json" \
	>"$D/relay.log" 2>&1 &
RELAY=$!
on_exit "kill_job -TERM $RELAY"
netns_on_exit "kill_job -TERM $RELAY"
wait_for "[ -s '$D/relay.json' ]" 50 || fail "relay did not start: $(cat "$D/relay.log")"

# Through the relay: the peer's key is pinned, the address is the relay's.
out=$(api 1 POST /v1/quic/bench -d "{\"peer\":\"$K2@$IP1:$RPORT\",\"bytes\":16777216,\"mode\":\"sink\",\"seed\":11}")
[ "$(echo "$out" | json_get ok)" = True ] || fail "16 MiB through the lossy relay: $out"
[ "$(echo "$out" | json_get peer_count)" = 16777216 ] || fail "byte count: $out"
sh=$(echo "$out" | json_get sent_hash)
[ -n "$sh" ] && [ "$sh" = "$(echo "$out" | json_get peer_hash)" ] || fail "hash differs: $out"
pass "16 MiB with 5% loss and 10% reordering arrives intact ($(echo "$out" | json_get mbit_s) Mbit/s)"

out=$(api 1 POST /v1/quic/bench -d "{\"peer\":\"$K2@$IP1:$RPORT\",\"bytes\":2097152,\"mode\":\"echo\",\"seed\":12}")
[ "$(echo "$out" | json_get ok)" = True ] || fail "2 MiB echo through the lossy relay: $out"
[ "$(echo "$out" | json_get bytes_back)" = 2097152 ] || fail "echo length: $out"
pass "2 MiB echoed through the lossy relay (loss on data in both directions) intact"

sleep 0.6 # the relay writes its counters every 0.5 s
st=$(cat "$D/relay.json")
fwd=$(echo "$st" | json_get fwd) dropped=$(echo "$st" | json_get dropped)
delayed=$(echo "$st" | json_get delayed)
[ "$fwd" -gt 10000 ] || fail "relay forwarded only $fwd datagrams: $st"
[ "$dropped" -gt $((fwd / 50)) ] || fail "relay dropped only $dropped of $fwd: $st"
[ "$delayed" -gt $((fwd / 20)) ] || fail "relay reordered only $delayed of $fwd: $st"
pass "relay dropped $dropped and reordered $delayed datagrams ($st)"

stop_weftd "$PID2" || fail "node 2 did not stop cleanly"
stop_weftd "$PID1" || fail "node 1 did not stop cleanly"
finish
