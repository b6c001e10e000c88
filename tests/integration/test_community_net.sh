#!/bin/bash
# SPDX-License-Identifier: MIT
# Communities across nodes (issue 34): four weftd in namespaces forming a
# DHT. Hosts 1-3 join an open community by id and key and publish a share
# each with content add --community: each finds the others through the
# community's DHT key, pulls their pages and sees all three members and
# shares, and host 3 subscribes to host 1's share by the link listed. A
# share bound later reaches the others by gossip; one bound while host 3
# is down reaches it by the pull at its start. Host 4 joins with the id
# and another key: it finds nobody and sees nothing. A closed community
# refuses host 2 without an invite and admits it with one, across nodes.
. "$TOP/tests/lib/common.sh"
prologue netns 4
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000 WEFT_CONTENT_REQ_TIMEOUT_MS=2000

start_node() { start_ns_node "$1" 1 --set content.poll_s=2; }
cfield() { # N FIELD: FIELD of host N's first community
	ctl "$1" --json community ls | json_get communities 0 "$2"
}

for n in 1 2 3 4; do start_node "$n"; done
wait_for '[ "$(ctl 1 --json dht status | json_get nodes4)" -ge 3 ]' 300 || fail "DHT did not form"
for n in 1 2 3 4; do eval "K$n=\$(ctl $n --json status | json_get node_key)"; done

ctl 1 --json community create club >"$D/c" || fail "create: $(cat "$D/c")"
ID=$(json_get id <"$D/c") KEY=$(json_get key <"$D/c")
ctl 2 community join "$ID" "$KEY" >/dev/null || fail "join 2"
ctl 3 community join "$ID" "$KEY" >/dev/null || fail "join 3"
for n in 1 2 3; do
	mkdir -p "$D/s$n" && echo "share of host $n" >"$D/s$n/f.txt"
	ctl "$n" --json content add "$D/s$n" --name "share$n" --community "$ID" >"$D/a$n" ||
		fail "content add --community on $n: $(cat "$D/a$n")"
	[ "$(json_get community <"$D/a$n")" = "$ID" ] || fail "not bound: $(cat "$D/a$n")"
done
ctl 1 content add "$D/s1" --name nope --community 00112233445566778899aabbccddeeff >"$D/x" 2>&1
[ $? = 1 ] && grep -q 'not a member' "$D/x" || fail "bound to a community it is not in: $(cat "$D/x")"
ctl 1 --json content ls | grep -q '"nope"' && fail "published before the community was checked"
pass "hosts 1-3 joined by id and key; content add --community published and bound a share each"

for n in 1 2 3; do
	wait_for '[ "$(cfield '$n' members)" = 3 ] && [ "$(cfield '$n' shares)" = 3 ]' 600 ||
		fail "host $n: $(ctl $n --json community ls; ctl $n metrics | grep community)"
	ctl "$n" --json community members "$ID" >"$D/m$n"
	for k in "$K1" "$K2" "$K3"; do grep -q "$k" "$D/m$n" || fail "host $n misses member $k"; done
done
[ "$(cfield 1 holders)" = 2 ] || fail "holders: $(ctl 1 --json community ls)"
pass "each host sees the other two and the three shares (DHT key, pulls)"

LINK=$(ctl 3 --json community shares "$ID" | "$PYTHON" -c '
import json, sys
print([s["link"] for s in json.load(sys.stdin)["shares"] if s["name"] == "share1"][0])')
[ "$LINK" = "magnet:?xs=urn:btpk:$K1&s=$(printf share1 | od -An -tx1 | tr -d ' \n')" ] || fail "link: $LINK"
ctl 3 content subscribe "$LINK" >/dev/null || fail "subscribe"
wait_for '[ "$(ctl 3 --json content subscriptions | json_get subscriptions 0 fetched_seq)" = 1 ]' 600 ||
	fail "host 3 did not fetch host 1's share: $(ctl 3 --json content subscriptions)"
pass "host 3 subscribed to host 1's share by the listed link and fetched it"

ctl 2 community share "$ID" "$K2/later" >/dev/null || fail "share later"
for n in 1 3; do
	wait_for '[ "$(cfield '$n' shares)" = 4 ]' 600 || fail "host $n did not learn the new share"
done
t=0
for n in 1 3; do
	v=$(ctl "$n" metrics | awk '/^weft_community_gossip_taken_total /{print $2}')
	t=$((t + ${v:-0}))
done
[ "$t" -ge 2 ] || fail "not by gossip: $(ctl 1 metrics | grep community_)"
pass "a share bound later reached hosts 1 and 3 by gossip"

stop_weftd "$PID3" || fail "stop 3"
ctl 1 community share "$ID" "$K1/offline" >/dev/null || fail "share offline"
start_node 3
wait_for '[ "$(cfield 3 shares)" = 5 ]' 600 || fail "host 3 did not catch up: $(ctl 3 --json community ls)"
pass "a share bound while host 3 was down reached it by the pull at its start"

WRONG=$(ctl 4 --json community create other | json_get key)
ctl 4 community join "$ID" "$WRONG" >/dev/null || fail "join with another key"
sleep 5
ctl 4 --json community ls >"$D/o"
"$PYTHON" - "$D/o" "$ID" <<'PY' || fail "host 4 saw something: $(cat "$D/o")"
import json, sys
c = [c for c in json.load(open(sys.argv[1]))["communities"] if c["id"] == sys.argv[2]][0]
sys.exit(0 if (c["members"], c["shares"], c["holders"]) == (1, 0, 0) else 1)
PY
pass "host 4 without the key found no holder and sees nothing"

ctl 1 --json community create inner --closed >"$D/cc" || fail "create closed"
CID=$(json_get id <"$D/cc") CKEY=$(json_get key <"$D/cc")
ctl 2 community join "$CID" "$CKEY" >"$D/j" 2>&1
[ $? = 1 ] && grep -q 'needs an invite' "$D/j" || fail "closed: joined without an invite: $(cat "$D/j")"
ctl 2 community join "$CID" "$CKEY" --invite "$(ctl 1 community invite "$CID" "$K2")" >/dev/null ||
	fail "closed: join with an invite"
wait_for '[ "$(ctl 2 --json community members '$CID' | json_get total)" = 2 ]' 600 ||
	fail "closed: host 2 does not see host 1"
pass "closed community: refused without an invite, admitted with one, members found across nodes"
finish
