#!/bin/bash
# SPDX-License-Identifier: MIT
# POST /v1/quic/handshakes with a window and an echo (bench/bench_quic.c
# uses both) and quic.retry_rate, between two weftd on loopback:
#  - 40 handshakes, 8 in flight, each with a 32-byte echo: all 40 done, and
#    the server counts 40 more established connections (with "echo" the
#    server has completed its side before the client closes), no Retry
#    when quic.retry_rate is lifted;
#  - window 0 or 257, and a non-boolean echo, are refused (400);
#  - with quic.retry_rate=1 and one worker (the token bucket is per
#    worker), 12 handshakes started 4 at a time go through Retry: one token
#    at the start and one more per second, so unless the run took 11 s or
#    more (then it is not judged) at least one Retry is certain by
#    construction, whatever the machine's speed.
set -u
. "$TOP/tests/lib/common.sh"

prologue
P=$((20000 + RANDOM % 20000))
api() { local n=$1 m=$2 p=$3; shift 3; curl -s --unix-socket "$D/n$n/weftd.sock" -X "$m" "http://weftd$p" "$@"; }
st() { api "$1" GET /v1/quic/stats | json_get total "$2"; }
mkdir -p "$D/n1" "$D/n2" "$D/n3"
start_weftd "$D/n1" --state-dir "$D/n1" --bind 127.0.0.1 --quic-port $P --dht-port $((P + 10))
P1=$WEFTD_PID
start_weftd "$D/n2" --state-dir "$D/n2" --bind 127.0.0.1 --quic-port $((P + 1)) \
	--dht-port $((P + 11)) --set quic.retry_rate=1000000
P2=$WEFTD_PID
start_weftd "$D/n3" --state-dir "$D/n3" --bind 127.0.0.1 --quic-port $((P + 2)) \
	--dht-port $((P + 12)) --workers 1 --set quic.retry_rate=1
P3=$WEFTD_PID
K2=$(api 2 GET /v1/status | json_get node_key) || fail "node 2 status"
K3=$(api 3 GET /v1/status | json_get node_key) || fail "node 3 status"

e0=$(st 2 conns_established)
out=$(api 1 POST /v1/quic/handshakes -d "{\"peer\":\"$K2@127.0.0.1:$((P + 1))\",\"count\":40,\"window\":8,\"echo\":true}")
[ "$(echo "$out" | json_get done)" = 40 ] || fail "40 handshakes, window 8, echo: $out"
wait_for '[ "$(st 2 conns_established)" -ge $((e0 + 40)) ]' 50 ||
	fail "node 2 established $(($(st 2 conns_established) - e0)) of 40: $(api 2 GET /v1/quic/stats)"
[ "$(st 2 retries_sent)" = 0 ] || fail "node 2 sent a Retry with quic.retry_rate lifted"
pass "40 handshakes, 8 in flight, each with an echo: all done, all established on the server, no Retry"

for body in '"window":0' '"window":257' '"echo":"yes"'; do
	out=$(api 1 POST /v1/quic/handshakes -d "{\"peer\":\"$K2@127.0.0.1:$((P + 1))\",\"count\":2,$body}")
	[ "$(echo "$out" | json_get error code 2>/dev/null)" = bad_request ] || fail "{$body} accepted: $out"
done
pass "window 0 or 257, a non-boolean echo: refused as bad_request"

out=$(api 1 POST /v1/quic/handshakes -d "{\"peer\":\"$K3@127.0.0.1:$((P + 2))\",\"count\":12,\"window\":4,\"echo\":true}")
[ "$(echo "$out" | json_get done)" = 12 ] || fail "12 handshakes through Retry: $out"
el=$(echo "$out" | json_get elapsed_us)
if [ "$el" -lt 11000000 ]; then
	[ "$(st 3 retries_sent)" -ge 1 ] || fail "quic.retry_rate=1: no Retry in $el us: $(api 3 GET /v1/quic/stats)"
	pass "quic.retry_rate=1: $(st 3 retries_sent) Retries, all 12 handshakes done"
else
	pass "quic.retry_rate=1: all 12 handshakes done (run took $el us: Retry count not judged)"
fi
for p in $P1 $P2 $P3; do
	kill -0 "$p" || fail "a weftd died"
	stop_weftd "$p" || fail "a weftd did not stop cleanly (sanitizer report?)"
done
finish
