#!/bin/bash
# SPDX-License-Identifier: MIT
# Push of new share heads to connected subscribers (issue 31: "when the
# subscriber is already connected to the publisher, the publisher also
# tells it at once over QUIC"), in network namespaces: three weftd form a
# DHT. Host 1 publishes "news"; host 2 follows it with polling set to an
# hour, so only the push can bring it a new version in this test's time.
# Host 2 keeps a watch connection to host 1 (dialled by key, PINGs under
# the 3 s idle timeout); host 1 publishes version 2 and host 2 holds it in
# seconds, counted as a push on both sides; the version fetched verifies.
# After unsubscribe the watch is dropped on both sides and version 3
# reaches nobody.
. "$TOP/tests/lib/common.sh"
prologue netns 3
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000 WEFT_CONTENT_REQ_TIMEOUT_MS=2000

watch() { # N FIELD: FIELD of host N's content stats "watch"
	ctl "$1" --json content stats | json_get watch "$2"
}
sub() { # N FIELD: FIELD of host N's first subscription
	ctl "$1" --json content subscriptions | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)["subscriptions"]
print(s[0][sys.argv[1]] if s else "none")' "$2"
}

start_ns_node 3 3
start_ns_node 1 3
start_ns_node 2 3 --set content.poll_s=3600
wait_for '[ "$(ctl 2 --json dht status | json_get nodes4)" -ge 2 ]' 300 || fail "DHT did not form"

mkdir -p "$D/news"
echo "first" >"$D/news/today.txt"
ctl 1 --json content add "$D/news" --name news >"$D/v1" || fail "publish news"
PK=$(json_get publisher <"$D/v1")
ctl 2 content subscribe "$PK/news" >/dev/null || fail "subscribe"
wait_for '[ "$(sub 2 fetched_seq)" = 1 ]' 600 || fail "host 2 did not fetch version 1: $(ctl 2 --json content subscriptions)"
wait_for '[ "$(watch 2 watching)" = 1 ] && [ "$(watch 1 subscribers)" = 1 ]' 300 ||
	fail "no watch: host 2 $(ctl 2 --json content stats | json_get watch), host 1 $(ctl 1 --json content stats | json_get watch)"
pass "host 2 watches host 1 (one connection, dialled by key)"

# keepalive holds it past the idle timeout (3 s)
sleep 5
[ "$(watch 2 watching)" = 1 ] && [ "$(watch 1 subscribers)" = 1 ] ||
	fail "the watch did not outlive the idle timeout: $(ctl 2 --json content stats | json_get watch)"

echo "second" >"$D/news/today.txt"
t0=$(date +%s%N)
ctl 1 --json content add "$D/news" --name news >"$D/v2" || fail "publish version 2"
[ "$(json_get seq <"$D/v2")" = 2 ] || fail "version 2 has seq $(json_get seq <"$D/v2")"
wait_for '[ "$(sub 2 fetched_seq)" = 2 ]' 300 ||
	fail "version 2 not pushed to host 2 (poll interval 1 h): $(ctl 2 --json content subscriptions) $(ctl 2 --json content stats | json_get watch)"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(watch 2 pushes)" -ge 1 ] || fail "host 2 counts no push"
[ "$(watch 1 notified)" -ge 1 ] || fail "host 1 counts no notification"
grep -q "pushed by its publisher" "$LOG2" || fail "host 2 does not log the push"
ctl 2 content get "$(json_get share_id <"$D/v2")" --out "$D/out" >/dev/null || fail "get version 2 on host 2"
[ "$(cat "$D/out/today.txt")" = second ] || fail "host 2 holds another version 2: $(cat "$D/out/today.txt")"
pass "version 2 held by host 2 ${ms} ms after the publish (pushed; polling every hour)"

ctl 2 content unsubscribe "$PK/news" >/dev/null || fail "unsubscribe"
wait_for '[ "$(watch 2 publishers)" = 0 ] && [ "$(watch 1 subscribers)" = 0 ]' 300 ||
	fail "the watch outlived the subscription: host 2 $(ctl 2 --json content stats | json_get watch), host 1 $(ctl 1 --json content stats | json_get watch)"
n=$(watch 1 notified)
echo "third" >"$D/news/today.txt"
ctl 1 content add "$D/news" --name news >/dev/null || fail "publish version 3"
[ "$(watch 1 notified)" = "$n" ] || fail "version 3 was pushed to a node that unsubscribed"
pass "unsubscribed: the watch dropped on both sides, version 3 pushed to nobody"
finish
