#!/bin/bash
# SPDX-License-Identifier: MIT
# A removed share's head is no longer ours to keep alive (issue 30, the
# soak): two weftd in network namespaces; host 1 publishes a named share,
# host 2's DHT stores its head (GET /v1/dht/store lists it, with its age
# within BEP 44's 2 h); host 1 removes the share (content rm SHAREID) and
# its head record goes with it (LMDB content_heads empty, the log says
# so), where before it stayed and was put again every 30 min for good: the
# 2-hour soak's DHT items and LMDB grew with every share it ever added.
# The same name published again starts a record of its own.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 2

heads() { # N: entries of host N's content_heads database
	mdb_stat -s content_heads "$D/n$1/store" 2>/dev/null | sed -n 's/^ *Entries: //p'
}
stored_head() { # N NAME: host N's DHT store lists an item with that salt
	curl -sf --unix-socket "$D/n$1/weftd.sock" http://weftd/v1/dht/store | "$PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
it = [x for x in d["items"] if x.get("salt") == sys.argv[1]]
assert it and 0 <= it[0]["age_s"] <= d["item_ttl_s"] and it[0]["left_s"] <= d["item_ttl_s"], d
' "$2" 2>/dev/null
}

start_ns_node 2 1
start_ns_node 1 2
wait_for '[ "$(ctl 1 --json dht status | json_get nodes4)" -ge 1 ]' 300 || fail "DHT did not form"

echo "retire me $RANDOM" >"$D/r.txt"
ctl 1 --json content add "$D/r.txt" --name retire >"$D/v1" || fail "publish"
SID=$(json_get share_id <"$D/v1")
wait_for 'stored_head 2 retire' 300 ||
	fail "host 2 does not store the head: $(curl -s --unix-socket "$D/n2/weftd.sock" http://weftd/v1/dht/store)"
[ "$(heads 1)" = 1 ] || fail "host 1 holds $(heads 1) head records, not 1"
pass "head published, stored by host 2 (GET /v1/dht/store), recorded on host 1"

ctl 1 content rm "$SID" >/dev/null || fail "content rm $SID"
wait_for '[ "$(heads 1)" = 0 ]' 100 || fail "host 1 still holds $(heads 1) head records after content rm"
grep -q "share head retire no longer kept alive" "$LOG1" || fail "no log line for the retired head"
pass "content rm of the share: its head record gone (no longer put again every 30 min)"

# A share of another publisher held here is no head of ours: removing it
# leaves host 2's records alone; the same name again makes a new record.
ctl 1 --json content add "$D/r.txt" --name retire >"$D/v2" || fail "publish again"
[ "$(heads 1)" = 1 ] || fail "publishing the name again: $(heads 1) head records"
pass "the name published again has a record of its own"

for n in 1 2; do
	eval "stop_weftd \$PID$n" || fail "stop host $n"
done
finish
