#!/bin/bash
# SPDX-License-Identifier: MIT
# Communities on one node each (issue 34, the local part): three weftd in
# namespaces. Host 1 creates a closed community; host 2 is refused
# without an invite, refused with an invite for another key, admitted
# with its own; host 3 joins an open community by id and key. A bound
# share lists with its BEP 46 link; pages past the last are refused; the
# communities and records survive a restart; leave drops them.
. "$TOP/tests/lib/common.sh"
prologue netns 3

for n in 1 2 3; do start_ns_node "$n" 1; done
for n in 1 2 3; do eval "K$n=\$(ctl $n --json status | json_get node_key)"; done

ctl 1 --json community create club --closed >"$D/c" || fail "create: $(cat "$D/c")"
ID=$(json_get id <"$D/c") KEY=$(json_get key <"$D/c")
[ "$(json_get closed <"$D/c")" = True ] && [ "$(json_get members <"$D/c")" = 1 ] || fail "create: $(cat "$D/c")"
ctl 1 --json community create fair >"$D/o" || fail "create open: $(cat "$D/o")"
OID=$(json_get id <"$D/o") OKEY=$(json_get key <"$D/o")
pass "created a closed and an open community"

ctl 2 community join "$ID" "$KEY" >"$D/j" 2>&1
[ $? = 1 ] && grep -q 'needs an invite' "$D/j" || fail "joined a closed community without an invite: $(cat "$D/j")"
TOK3=$(ctl 1 community invite "$ID" "$K3") || fail "invite"
ctl 2 community join "$ID" "$KEY" --invite "$TOK3" >"$D/j" 2>&1
[ $? = 1 ] && grep -q "not the community key's admission" "$D/j" || fail "joined with another key's invite: $(cat "$D/j")"
TOK2=$(ctl 1 community invite "$ID" "$K2") || fail "invite"
ctl 2 --json community join "$ID" "$KEY" --invite "$TOK2" >"$D/j" || fail "join with invite: $(cat "$D/j")"
ctl 2 community join "$ID" "$KEY" --invite "$TOK2" >"$D/j" 2>&1
[ $? = 1 ] && grep -q 'already a member' "$D/j" || fail "joined twice: $(cat "$D/j")"
ctl 1 community invite "$OID" "$K2" >"$D/j" 2>&1
[ $? = 1 ] && grep -q 'open community admits' "$D/j" || fail "invite to an open community: $(cat "$D/j")"
ctl 2 community invite "$ID" "$K3" >"$D/j" 2>&1
[ $? = 1 ] && grep -q "only the community's creator" "$D/j" || fail "a member signed an invite: $(cat "$D/j")"
ctl 3 --json community join "$OID" "$OKEY" --name fair >"$D/j" || fail "join open: $(cat "$D/j")"
pass "closed: refused without or with another key's invite, admitted with its own; open: joined by id and key"

ctl 2 community share "$ID" "$K2/photos" >/dev/null || fail "share"
ctl 2 --json community shares "$ID" >"$D/s" || fail "shares"
LINK=$(json_get shares 0 link <"$D/s")
[ "$LINK" = "magnet:?xs=urn:btpk:$K2&s=$(printf photos | od -An -tx1 | tr -d ' \n')" ] || fail "link: $LINK"
[ "$(json_get total <"$D/s")" = 1 ] || fail "shares: $(cat "$D/s")"
ctl 2 community members "$ID" | grep -q "$K2 (this node)" || fail "members"
ctl 2 community members "$ID" --page 2 >"$D/p" 2>&1
[ $? = 1 ] && grep -q 'page 1 of 1' "$D/p" || fail "a page past the last: $(cat "$D/p")"
ctl 2 community members nothex >/dev/null 2>&1
[ $? = 2 ] || fail "a bad id is not a usage error"
ctl 2 community share "$ID" "$K2/" >"$D/p" 2>&1
[ $? = 1 ] && grep -q 'head: KEY/NAME' "$D/p" || fail "an empty share name: $(cat "$D/p")"
pass "share bound with its BEP 46 link; bad pages, ids and heads refused"

stop_weftd "$PID2" || fail "stop"
start_ns_node 2 1
ctl 2 --json community ls >"$D/l" || fail "ls"
[ "$(json_get communities 0 id <"$D/l")" = "$ID" ] && [ "$(json_get communities 0 shares <"$D/l")" = 1 ] ||
	fail "after a restart: $(cat "$D/l")"
ctl 2 metrics | grep -q '^weft_community_joined 1$' || fail "metrics"
ctl 2 community leave "$ID" >/dev/null || fail "leave"
[ "$(ctl 2 --json community ls | json_get communities)" = "[]" ] || fail "leave kept it"
stop_weftd "$PID2" || fail "stop"
start_ns_node 2 1
[ "$(ctl 2 --json community ls | json_get communities)" = "[]" ] || fail "leave did not reach the disk"
pass "kept across a restart; leave drops it for good"
finish
