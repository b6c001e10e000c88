#!/bin/bash
# SPDX-License-Identifier: MIT
# Groups of private content end to end (issue 28), four weftd in network
# namespaces forming a DHT: host 1 creates group "crew" with hosts 2, 3 and
# 4; each joins (follows the owner's record share through its BEP 46
# head) and holds the group key; a share posted to the group (one wrapped
# key for all of them) is read by all three. Host 1 removes host 4: the
# group key rotates (epoch 2), hosts 2 and 3 take the new record, host 4
# cannot open it (not a member of epoch 2). The next version of the share,
# posted to the group again, is read by hosts 2 and 3; host 4 gets
# not_a_recipient (exit 3) and none of that version's plaintext on its
# disk. A member posts to the group too (OWNERKEY/NAME). Bad input: a
# group name with a slash, adding a key that is no curve point, removing
# the owner, a record share of another key under the group's name.
. "$TOP/tests/lib/common.sh"
prologue netns 4
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000 WEFT_CONTENT_REQ_TIMEOUT_MS=2000

start_node() { start_ns_node "$1" 1 --set content.poll_s=2; }
held_epoch() { # N: the epoch of group crew held by host N, 0 if none
	ctl "$1" --json group ls | "$PYTHON" -c '
import json, sys
h = [g for g in json.load(sys.stdin)["held"] if g["name"] == "crew"]
print(h[0]["epoch"] if h else 0)'
}
for n in 1 2 3 4; do start_node "$n"; done
for n in 1 2 3 4; do eval "K$n=\$(ctl $n --json status | json_get node_key)"; done
wait_for '[ "$(ctl 1 --json dht status | json_get nodes4)" -ge 3 ]' 300 || fail "DHT did not form"

ctl 1 --json group create crew >"$D/create" || fail "group create: $(cat "$D/create")"
ctl 1 --json group add crew "$K2" "$K3" "$K4" >"$D/add" || fail "group add: $(cat "$D/add")"
[ "$(json_get epoch <"$D/add")" = 1 ] || fail "adding members rotated the key: $(cat "$D/add")"
[ "$(json_get members <"$D/add" | grep -o '[0-9a-f]\{64\}' | wc -l)" = 4 ] || fail "members: $(cat "$D/add")"
for n in 2 3 4; do ctl "$n" group join "$K1/crew" >/dev/null || fail "join on host $n"; done
for n in 2 3 4; do
	wait_for "[ \"\$(held_epoch $n)\" = 1 ]" 600 || fail "host $n never held the group key: $(ctl $n --json group ls)"
done
pass "group crew: 3 members joined, each holds the epoch-1 key"

MARK1="weft-group-marker-one-$$"
MARK2="weft-group-marker-two-$$"
printf 'first post %s\n' "$MARK1" >"$D/post.txt"
ctl 1 --json content add --private --to-group crew --name board "$D/post.txt" >"$D/p1" || fail "post: $(cat "$D/p1")"
[ "$(json_get keys <"$D/p1")" = 2 ] || fail "a group post wraps once for the group (and the publisher): $(json_get keys <"$D/p1") keys"
SID=$(json_get share_id <"$D/p1")
for n in 2 3 4; do
	ctl "$n" content get "$SID" --from "$(netns_ip4 1):4433" --out "$D/r$n.1" >"$D/g$n.1" 2>&1 || fail "member $n: $(cat "$D/g$n.1")"
	cmp "$D/post.txt" "$D/r$n.1/post.txt" || fail "member $n read something else"
done
pass "a post to the group (one wrapped key) read by all 3 members"

ctl 1 --json group rm crew "$K4" >"$D/rm" || fail "group rm: $(cat "$D/rm")"
[ "$(json_get epoch <"$D/rm")" = 2 ] || fail "removal did not rotate: $(cat "$D/rm")"
for n in 2 3; do
	wait_for "ctl $n content sync >/dev/null; [ \"\$(held_epoch $n)\" = 2 ]" 600 || fail "host $n never took epoch 2"
done
ctl 4 content sync >/dev/null
sleep 3
[ "$(held_epoch 4)" = 1 ] || fail "host 4 holds epoch $(held_epoch 4) after its removal"
pass "removal rotated the key: hosts 2 and 3 at epoch 2, host 4 kept epoch 1"

printf 'second post %s\n' "$MARK2" >"$D/post.txt"
ctl 1 --json content add --private --to-group crew --name board "$D/post.txt" >"$D/p2" || fail "post 2: $(cat "$D/p2")"
[ "$(json_get share_id <"$D/p2")" = "$SID" ] && [ "$(json_get seq <"$D/p2")" = 2 ] || fail "not the next version: $(cat "$D/p2")"
for n in 2 3; do
	ctl "$n" content get "$SID" --from "$(netns_ip4 1):4433" --out "$D/r$n.2" >"$D/g$n.2" 2>&1 || fail "member $n, version 2: $(cat "$D/g$n.2")"
	cmp "$D/post.txt" "$D/r$n.2/post.txt" || fail "member $n read something else in version 2"
done
ctl 4 content get "$SID" --from "$(netns_ip4 1):4433" --out "$D/r4.2" >"$D/g4.2" 2>&1
rc=$?
[ "$rc" = 3 ] || fail "removed member: exit $rc: $(cat "$D/g4.2")"
grep -q not_a_recipient "$D/g4.2" || fail "removed member: $(cat "$D/g4.2")"
if grep -rlaF "$MARK2" "$D/n4" "$D/r4.2" >"$D/found" 2>/dev/null; then
	fail "version 2's plaintext on host 4's disk: $(cat "$D/found")"
fi
pass "version 2: read by hosts 2 and 3; host 4 (removed) gets not_a_recipient, no plaintext on its disk"

# a member posts to the group by OWNERKEY/NAME
printf 'from a member\n' >"$D/m.txt"
ctl 2 --json content add --private --to-group "$K1/crew" "$D/m.txt" >"$D/pm" || fail "member post: $(cat "$D/pm")"
ctl 3 content get "$(json_get share_id <"$D/pm")" --from "$(netns_ip4 2):4433" --out "$D/r3.m" >"$D/g3.m" 2>&1 ||
	fail "member's post: $(cat "$D/g3.m")"
cmp "$D/m.txt" "$D/r3.m/m.txt" || fail "member's post differs"
pass "a member's post to OWNERKEY/crew read by another member"

# bad input
ctl 1 group create "a/b" >"$D/b1" 2>&1 && fail "a group name with a slash"
ctl 1 group add crew "$(printf '%064d' 0)" >"$D/b2" 2>&1 && fail "a zero key added"
grep -q "not a node key" "$D/b2" || fail "zero key: $(cat "$D/b2")"
ctl 1 group rm crew "$K1" >"$D/b3" 2>&1 && fail "the owner removed"
ctl 1 content add --private --to-group nosuch "$D/m.txt" >"$D/b4" 2>&1 && fail "an unknown group"
grep -q "no group nosuch" "$D/b4" || fail "unknown group: $(cat "$D/b4")"
# host 3 publishes a share under the group's record name: host 2 follows
# it as K3/crew, and the record it holds is K1's (another owner: -EPERM
# for a record that is not K3's own group, none here at all)
ctl 3 group create crew >/dev/null || fail "host 3's own group crew"
ctl 2 group join "$K3/crew" >/dev/null || fail "join host 3's crew"
ctl 2 content sync >/dev/null
sleep 4
[ "$(held_epoch 2)" = 2 ] || fail "host 2's key of K1/crew changed: $(ctl 2 --json group ls)"
pass "bad input: names, keys, owner removal, unknown group; another owner's crew leaves K1/crew alone"
finish
