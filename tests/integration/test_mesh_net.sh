#!/bin/bash
# SPDX-License-Identifier: MIT
# The mesh on running nodes (issue 32, docs/MESH.md "On a node"): four
# weftd in namespaces forming a DHT; hosts 1-3 in one community. Host 1
# announces two offers (service 7) with weftctl mesh announce; they reach
# the stores of hosts 2 and 3 over the community's gossip (kind 2). Host 2
# queries `rent<500` with a one-time key: it gets the one match, and hosts
# 1 and 3 answered it over the reverse path. Host 1 revokes one on every
# store; host 2 may not revoke host 1's. Host 4, which joined the id
# with another key (not a member), gets nothing and stores nothing. Bad
# input: 400 with a message, weftctl exit codes 1 and 2.
. "$TOP/tests/lib/common.sh"
. "$TOP/tests/lib/mesh.sh"
prologue netns 4
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000


for n in 1 2 3 4; do start_ns_node "$n" 1; done
wait_for '[ "$(ctl 1 --json dht status | json_get nodes4)" -ge 3 ]' 300 || fail "DHT did not form"

mesh_community flats 1 2 3
pass "hosts 1-3 in one community, each knows the other two"

A1=$(ctl 1 mesh announce 7 --community "$ID" --data '{"city":"berlin","rent":450}' --ttl 2) ||
	fail "announce 1: $A1"
A2=$(ctl 1 mesh announce 7 --community "$ID" --data '{"city":"berlin","rent":900}') ||
	fail "announce 2: $A2"
[[ "$A1" =~ ^[0-9a-f]{64}$ ]] || fail "envelope id: $A1"
for n in 2 3; do
	wait_for '[ "$(metric '$n' weft_mesh_store_announces)" = 2 ]' 300 ||
		fail "host $n did not store them: $(ctl $n metrics | grep -E 'weft_(mesh|community_mesh)')"
done
pass "host 1's two announces reached the stores of hosts 2 and 3 by gossip"

ctl 2 mesh query 7 --community "$ID" --filter 'rent<500' >"$D/q" || fail "query: $(cat "$D/q")"
[ "$(wc -l <"$D/q")" = 1 ] && grep -q "^$A1 " "$D/q" && grep -q '"rent":450' "$D/q" ||
	fail "query rent<500: $(cat "$D/q")"
ctl 2 --json mesh query 7 --community "$ID" >"$D/all" || fail "query all"
[ "$(json_get announces <"$D/all" | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ] ||
	fail "query without a filter: $(cat "$D/all")"
a=$(( $(metric 1 weft_mesh_answered_total) + $(metric 3 weft_mesh_answered_total) ))
[ "$a" -ge 1 ] && [ "$(metric 2 weft_mesh_delivered_total)" -ge 1 ] ||
	fail "no answer came over the network: $(ctl 1 metrics | grep weft_mesh; ctl 2 metrics | grep weft_mesh)"
pass "host 2's query rent<500 returned the one match; hosts 1 and 3 answered over the reverse path"

WRONG=$(ctl 4 --json community create other | json_get key)
ctl 4 community join "$ID" "$WRONG" >/dev/null || fail "host 4 join with another key"
ctl 4 --json mesh query 7 --community "$ID" --wait 2000 >"$D/q4" || fail "query 4: $(cat "$D/q4")"
[ "$(json_get announces <"$D/q4")" = "[]" ] || fail "host 4 got announces: $(cat "$D/q4")"
[ "$(metric 4 weft_mesh_store_announces)" = 0 ] || fail "host 4 stored announces"
pass "host 4, not a member (another key), gets nothing and stores nothing"

ctl 2 mesh revoke "$A1" --community "$ID" >"$D/e" 2>&1
[ $? = 1 ] && grep -q "not this node's" "$D/e" || fail "revoked by another: $(cat "$D/e")"
ctl 1 mesh revoke "$A2" --community "$ID" >"$D/r" || fail "revoke: $(cat "$D/r")"
for n in 1 2 3; do
	wait_for '[ "$(metric '$n' weft_mesh_store_announces)" = 1 ]' 300 ||
		fail "host $n did not apply the revoke: $(ctl $n metrics | grep weft_mesh_store)"
done
ctl 3 --json mesh query 7 --community "$ID" >"$D/all" || fail "query after revoke"
grep -q "$A1" "$D/all" && ! grep -q "$A2" "$D/all" || fail "after revoke: $(cat "$D/all")"
ctl 1 mesh revoke "$A2" --community "$ID" >"$D/e" 2>&1
[ $? = 1 ] && grep -q 'no announce' "$D/e" || fail "revoked twice: $(cat "$D/e")"
pass "host 1 revoked its second announce on every store; host 2 may not revoke host 1's"

ctl 2 mesh query 7 --community "$ID" --filter 'rent' >"$D/e" 2>&1
[ $? = 1 ] && grep -q 'filter' "$D/e" || fail "bad filter: $(cat "$D/e")"
ctl 2 mesh announce 7 --community "$ID" --data '{"rent":1.5}' >"$D/e" 2>&1
[ $? = 1 ] && grep -q 'data' "$D/e" || fail "a float: $(cat "$D/e")"
ctl 2 mesh announce 7 --community "$ID" --data 'nope' >"$D/e" 2>&1
[ $? = 2 ] && grep -q 'JSON object' "$D/e" || fail "not JSON: $(cat "$D/e")"
ctl 2 mesh announce 99999999999 --community "$ID" --data '{}' >"$D/e" 2>&1
[ $? = 2 ] && grep -q 'SERVICE_ID' "$D/e" || fail "bad service id: $(cat "$D/e")"
ctl 2 mesh query 7 --community 00112233445566778899aabbccddeeff >"$D/e" 2>&1
[ $? = 1 ] && grep -q 'not a community' "$D/e" || fail "unknown community: $(cat "$D/e")"
bad_bodies 2 /v1/mesh/announce '{' '[]' '{"service_id":-1,"community":"'$ID'","data":{}}' \
	'{"service_id":7,"community":"'$ID'","data":{"Rent":1}}' \
	'{"service_id":7,"community":"'$ID'","data":{"a":1},"ttl_h":721}' \
	'{"service_id":7,"community":"'$ID'","data":{"a":{"b":1}}}'
bad_bodies 2 /v1/mesh/query '{"service_id":7,"community":"'$ID'","filter":5}' \
	'{"service_id":7,"community":"'$ID'","wait_ms":20000}' '{"service_id":7,"community":"'$ID'","max":0}'
bad_bodies 2 /v1/mesh/revoke '{"community":"'$ID'","id":"00"}'
[ "$(metric 3 weft_mesh_store_announces)" = 1 ] || fail "host 3's store changed"
pass "bad filters, data, service ids and communities: clear errors, weftctl exit codes 1 and 2, the API 400 with a message"
finish
