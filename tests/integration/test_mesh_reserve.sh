#!/bin/bash
# SPDX-License-Identifier: MIT
# Reservations on running nodes (issue 32, docs/MESH.md "Reservations on a
# node" and "Example: appointment slots"): the example's commands, in
# namespaces. h1 is the DHT bootstrap and a relay host, hence a mailbox
# anchor; h2 (a clinic, the provider), h3 (a patient) and h4 (another
# member) share a community; h2 and h3 list h1 as their anchor.
#  - h2 announces three slots; h3 queries slot>=2026-12-01 and gets two;
#  - h2 stops; h3 reserves one: left at h1 (which never holds the
#    plaintext); h2 starts, fetches it from its mailbox, and keeps it in
#    its inbox (kill -9 and a restart lose nothing); h2 confirms, h3 sees
#    the confirmation with its data; h3 cancels, h2 sees it;
#  - h2's update and revoke apply on h3; h4's are refused; a revoked slot
#    cannot be reserved; only the provider answers a reservation;
#  - bad input on every new endpoint: 400 with a message, no change;
#  - the same over the gateway's /mesh/v1/msg/... (gateway.services
#    mesh-msg): query, reserve, cancel (h3 offline: its mailbox has it when
#    it returns), inbox; bad bodies 400; h4, whose gateway does not list
#    mesh-msg, 403;
#  - trusted endorsers (mesh.trusted) and a minimum level (a query's,
#    mesh.min_level): h1 endorses h2 for a service.
. "$TOP/tests/lib/common.sh"
. "$TOP/tests/lib/mesh.sh"
prologue netns 4
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000

nres() { ctl "$1" --json mesh inbox | json_get reservations | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
IP1=$(netns_ip4 1)
MARK="slot-marker-$RANDOM$RANDOM"

start_ns_node 1 1 --relay
K1=$(ctl 1 --json status | json_get node_key)
anchor=(--set "mailbox.anchors=$K1@$IP1:4433" --set mailbox.fetch_interval_s=5
	--gateway 127.0.0.1:8088 --set gateway.services=mesh-msg)
start_ns_node 2 1 "${anchor[@]}"
start_ns_node 3 1 "${anchor[@]}" --set "mesh.trusted=$K1:registry"
start_ns_node 4 1 "${anchor[@]}" --set gateway.services=echo
K2=$(ctl 2 --json status | json_get node_key)
K3=$(ctl 3 --json status | json_get node_key)
wait_for '[ "$(ctl 2 --json dht status | json_get nodes4)" -ge 3 ]' 300 || fail "DHT did not form"

mesh_community clinic 2 3 4
pass "h2, h3, h4 in one community"

# --- the example (docs/MESH.md "Example: appointment slots") ---
S1=$(ctl 2 mesh announce 42 --community "$ID" --data '{"slot":"2026-12-01T09:00","doctor":"lee"}') || fail "announce: $S1"
S2=$(ctl 2 mesh announce 42 --community "$ID" --data '{"slot":"2026-12-01T10:00","doctor":"lee"}') || fail "announce"
S3=$(ctl 2 mesh announce 42 --community "$ID" --data '{"slot":"2026-11-30T15:00","doctor":"kim"}') || fail "announce"
wait_for '[ "$(metric 3 weft_mesh_store_announces)" = 3 ] && [ "$(metric 4 weft_mesh_store_announces)" = 3 ]' 300 ||
	fail "the slots did not reach h3 and h4"
ctl 3 mesh query 42 --community "$ID" --filter 'slot>=2026-12-01' >"$D/q" || fail "query: $(cat "$D/q")"
[ "$(wc -l <"$D/q")" = 2 ] && grep -q "^$S1 " "$D/q" && grep -q "^$S2 " "$D/q" || fail "query: $(cat "$D/q")"
pass "h2 announced three slots; h3's query slot>=2026-12-01 returned the two"

wait_for "ctl 3 --json node resolve $K2 --fresh 2>/dev/null | json_get anchors 0 key 2>/dev/null | grep -q $K1" 600 ||
	fail "h2's record does not list its anchor: $(ctl 3 --json node resolve "$K2" --fresh 2>&1)"
stop_weftd "$PID2" || fail "h2 did not stop cleanly"
ctl 3 --json mesh reserve "$S1" --data '{"name":"ada","note":"'"$MARK"'"}' >"$D/r" || fail "reserve: $(cat "$D/r")"
R=$(json_get id <"$D/r")
[ "$(json_get delivered <"$D/r")" = mailbox ] || fail "not left in the mailbox: $(cat "$D/r")"
[ "$(ctl 1 --json msg status | json_get messages)" = 1 ] || fail "h1 holds: $(ctl 1 msg status)"
grep -rqa "$MARK" "$D/n1" && fail "the anchor's state directory holds the plaintext"
ctl 3 mesh inbox | grep -q "^$R  sent .* pending " || fail "h3's inbox: $(ctl 3 mesh inbox)"
pass "h2 offline: h3's reserve is left at h2's anchor h1, which cannot read it"

start_ns_node 2 1 "${anchor[@]}"
wait_for '[ "$(nres 2)" = 1 ]' 600 || fail "h2 did not take the reserve: $(ctl 2 mesh inbox; ctl 2 msg status)"
ctl 2 --json mesh inbox >"$D/i"
[ "$(json_get reservations 0 id <"$D/i")" = "$R" ] && [ "$(json_get reservations 0 role <"$D/i")" = received ] &&
	[ "$(json_get reservations 0 state <"$D/i")" = pending ] &&
	[ "$(json_get reservations 0 announce <"$D/i")" = "$S1" ] &&
	[ "$(json_get reservations 0 data note <"$D/i")" = "$MARK" ] || fail "h2's inbox: $(cat "$D/i")"
[ "$(ctl 2 --json msg inbox | json_get messages)" = "[]" ] || fail "left in h2's mailbox inbox: $(ctl 2 msg inbox)"
wait_for '[ "$(ctl 1 --json msg status | json_get messages)" = 0 ]' 100 || fail "h1 still holds it"
kill -9 "$PID2"
wait "$PID2" 2>/dev/null
start_ns_node 2 1 "${anchor[@]}"
[ "$(nres 2)" = 1 ] || fail "kill -9 lost the reservation: $(ctl 2 mesh inbox)"
pass "h2 back: the reserve came from its mailbox into its inbox, opened; kill -9 and a restart keep it"

ctl 2 --json mesh confirm "$R" --data '{"room":"3"}' >"$D/a" || fail "confirm: $(cat "$D/a")"
[ "$(json_get state <"$D/a")" = confirmed ] || fail "confirm: $(cat "$D/a")"
wait_for '[ "$(ctl 3 --json mesh inbox | json_get reservations 0 state)" = confirmed ]' 300 ||
	fail "h3 did not see the confirmation: $(ctl 3 mesh inbox)"
[ "$(ctl 3 --json mesh inbox | json_get reservations 0 answer room)" = 3 ] || fail "h3's answer: $(ctl 3 mesh inbox)"
ctl 2 mesh confirm "$R" >"$D/e" 2>&1
[ $? = 1 ] && grep -q "confirmed already" "$D/e" || fail "confirmed twice: $(cat "$D/e")"
ctl 3 mesh confirm "$R" >"$D/e" 2>&1
[ $? = 1 ] && grep -q "its provider confirms it" "$D/e" || fail "the consumer confirmed: $(cat "$D/e")"
ctl 4 mesh cancel "$R" >"$D/e" 2>&1
[ $? = 1 ] && grep -q "no reservation" "$D/e" || fail "h4 cancelled: $(cat "$D/e")"
pass "h2 confirmed; h3 sees the confirmation and its data; only the provider confirms, once"

ctl 3 --json mesh cancel "$R" --data '{"why":"flu"}' >"$D/a" || fail "h3 cancel: $(cat "$D/a")"
[ "$(json_get state <"$D/a")" = cancelled ] && [ "$(json_get delivered <"$D/a")" = direct ] ||
	fail "h3 cancel: $(cat "$D/a")"
wait_for '[ "$(ctl 2 --json mesh inbox | json_get reservations 0 state)" = cancelled ]' 300 ||
	fail "h2 did not see h3's cancel: $(ctl 2 mesh inbox)"
[ "$(ctl 2 --json mesh inbox | json_get reservations 0 answer why)" = flu ] || fail "h2's answer: $(ctl 2 mesh inbox)"
ctl 2 mesh cancel "$R" >"$D/e" 2>&1
[ $? = 1 ] && grep -q "cancelled already" "$D/e" || fail "cancelled twice: $(cat "$D/e")"
pass "h3 cancelled its own reservation; h2 sees it with its data; a cancel is final"

ctl 4 mesh update "$S2" --community "$ID" --data '{"slot":"2026-12-01T10:00","doctor":"x"}' >"$D/e" 2>&1
[ $? = 1 ] && grep -q "not this node's" "$D/e" || fail "h4 updated h2's slot: $(cat "$D/e")"
ctl 4 mesh revoke "$S2" --community "$ID" >"$D/e" 2>&1
[ $? = 1 ] && grep -q "not this node's" "$D/e" || fail "h4 revoked h2's slot: $(cat "$D/e")"
ctl 2 mesh update "$S2" --community "$ID" --data '{"slot":"2026-12-01T10:00","doctor":"kim"}' >/dev/null ||
	fail "update"
ctl 2 mesh revoke "$S3" --community "$ID" >/dev/null || fail "revoke"
wait_for 'ctl 3 mesh query 42 --community "$ID" --filter doctor=kim 2>/dev/null | grep -q "^$S2 "' 300 ||
	fail "h3 does not see the update: $(ctl 3 mesh query 42 --community "$ID")"
wait_for '[ "$(metric 3 weft_mesh_store_announces)" = 2 ]' 300 || fail "h3 did not apply the revoke"
ctl 3 mesh query 42 --community "$ID" >"$D/q"
! grep -q "$S3" "$D/q" && ! grep -q '"doctor":"x"' "$D/q" || fail "after update and revoke: $(cat "$D/q")"
ctl 3 mesh reserve "$S3" --data '{"name":"bob"}' >"$D/e" 2>&1
[ $? = 1 ] && grep -q "revoked" "$D/e" || fail "a revoked slot reserved: $(cat "$D/e")"
pass "h2's update and revoke apply on h3; h4's are refused; a revoked slot cannot be reserved"

Z=0000000000000000000000000000000000000000000000000000000000000000
bad=('{' '[]' '{"id":"zz"}' '{"id":"'$S1'","data":{"a":1.5}}' '{"id":"'$S1'","data":[1]}'
	'{"id":"'$S1'","data":{"A":1}}')
for p in /v1/mesh/reserve /v1/mesh/confirm /v1/mesh/cancel; do bad_bodies 3 $p "${bad[@]}"; done
bad_bodies 3 /v1/mesh/update "${bad[@]/\{\"id\"/\{\"community\":\"$ID\",\"id\"}"
[ "$(post 3 /v1/mesh/reserve '{"id":"'$Z'","data":{}}')" = 404 ] || fail "unknown announce: $(cat "$D/body")"
bad_bodies 3 /v1/mesh/endorse '{' '[]' '{"provider":"zz","service_id":1,"level":"registry"}' \
	'{"provider":"'$K2'","service_id":-1,"level":"registry"}' \
	'{"provider":"'$K2'","service_id":1,"level":"none"}' \
	'{"provider":"'$K2'","service_id":1,"level":"registry","days":0}'
bad_bodies 3 /v1/mesh/query '{"service_id":42,"community":"'$ID'","min_level":"top"}'
bad_bodies 3 /v1/mesh/announce '{"service_id":42,"community":"'$ID'","data":{"a":1},"endorsements":["00"]}' \
	'{"service_id":42,"community":"'$ID'","data":{"a":1},"endorsements":"x"}'
ctl 3 mesh reserve "$S1" --data 'nope' >"$D/e" 2>&1
[ $? = 2 ] && grep -q 'JSON object' "$D/e" || fail "weftctl bad data: $(cat "$D/e")"
[ "$(nres 2)" = 1 ] && [ "$(nres 3)" = 1 ] || fail "an inbox changed: $(ctl 2 mesh inbox; ctl 3 mesh inbox)"
[ "$(metric 3 weft_mesh_store_announces)" = 2 ] || fail "h3's store changed"
pass "bad bodies on reserve, confirm, cancel, update, endorse, announce's endorsements, query's min_level: 400 with a message; nothing changed"

gw() { # N METHOD OP [BODY]: the HTTP status; the answer in $D/body
	local a=(-s -m 30 -o "$D/body" -w '%{http_code}' -X "$2" -H 'Content-Type: application/json')
	[ -n "${4:-}" ] && a+=(--data-binary "$4")
	ip netns exec "$(netns_name "$1")" curl "${a[@]}" "http://127.0.0.1:8088/mesh/v1/msg/$3"
}
[ "$(gw 3 POST query '{"service_id":42,"community":"'$ID'","filter":"doctor=kim"}')" = 200 ] &&
	grep -q "$S2" "$D/body" || fail "gateway query: $(cat "$D/body")"
[ "$(gw 3 POST reserve '{"id":"'$S2'","data":{"name":"bob"}}')" = 200 ] || fail "gateway reserve: $(cat "$D/body")"
R2=$(json_get id <"$D/body")
wait_for '[ "$(nres 2)" = 2 ]' 300 || fail "h2 did not get the second reserve: $(ctl 2 mesh inbox)"
# the consumer offline: the cancel waits at its anchor
wait_for "ctl 2 --json node resolve $K3 --fresh 2>/dev/null | json_get anchors 0 key 2>/dev/null | grep -q $K1" 600 ||
	fail "h3's record does not list its anchor"
stop_weftd "$PID3" || fail "h3 did not stop cleanly"
[ "$(gw 2 POST cancel '{"id":"'$R2'","data":{"why":"sick"}}')" = 200 ] || fail "gateway cancel: $(cat "$D/body")"
[ "$(json_get delivered <"$D/body")" = mailbox ] || fail "the cancel was not left in h3's mailbox: $(cat "$D/body")"
start_ns_node 3 1 "${anchor[@]}" --set "mesh.trusted=$K1:registry"
wait_for '[ "$(gw 3 GET inbox)" = 200 ] && grep -q "\"id\":\"$R2\",\"role\":\"sent\",\"state\":\"cancelled\"" "$D/body"' 300 ||
	fail "h3 (back) did not see the cancel through the gateway: $(cat "$D/body")"
for b in '{' '[]' '{"id":"zz"}' '{"id":"'$S2'","data":{"a":0.5}}'; do
	[ "$(gw 3 POST reserve "$b")" = 400 ] && grep -q '"message"' "$D/body" || fail "gateway $b: $(cat "$D/body")"
done
[ "$(gw 3 POST nope '{}')" = 404 ] && grep -q '"message"' "$D/body" || fail "gateway nope: $(cat "$D/body")"
[ "$(gw 3 GET reserve)" = 405 ] || fail "gateway GET reserve: $(cat "$D/body")"
[ "$(gw 4 GET inbox)" = 403 ] && grep -q "mesh-msg" "$D/body" || fail "h4's gateway: $(cat "$D/body")"
[ "$(nres 2)" = 2 ] && [ "$(nres 3)" = 2 ] || fail "an inbox changed: $(ctl 2 mesh inbox; ctl 3 mesh inbox)"
pass "over the gateway: query, reserve, cancel (to the offline consumer's mailbox) and inbox; bad bodies 400; not whitelisted 403"

# Trusted endorsers: h1 endorses h2 for service 43 at level registry; h3
# trusts h1 up to registry; h4 restarts trusting h1 up to endorsed only,
# with mesh.min_level = endorsed.
EN=$(ctl 1 mesh endorse "$K2" 43 --level registry --days 2) || fail "endorse: $EN"
[[ "$EN" =~ ^[0-9a-f]{284}$ ]] || fail "endorsement: $EN"
ctl 1 mesh endorse "$K2" 43 --level root >"$D/e" 2>&1
[ $? = 1 ] && grep -q "level" "$D/e" || fail "a bad level: $(cat "$D/e")"
stop_weftd "$PID4" || fail "h4 did not stop cleanly"
start_ns_node 4 1 "${anchor[@]}" --set gateway.services=echo --set "mesh.trusted=$K1:endorsed" \
	--set mesh.min_level=endorsed
wait_for '[ "$(cfield 4 holders)" = 2 ]' 600 || fail "h4 back: $(ctl 4 --json community ls)"
base4=$(metric 4 weft_mesh_store_announces)
E1=$(ctl 2 mesh announce 43 --community "$ID" --data '{"clinic":"north"}' --endorse "$EN") || fail "announce endorsed: $E1"
E2=$(ctl 2 mesh announce 43 --community "$ID" --data '{"clinic":"south"}') || fail "announce"
ctl 2 mesh announce 43 --community "$ID" --data '{"clinic":"x"}' --endorse 00 >"$D/e" 2>&1
[ $? = 1 ] && grep -q "endorsements" "$D/e" || fail "a bad endorsement: $(cat "$D/e")"
wait_for '[ "$(metric 3 weft_mesh_store_announces)" = 4 ]' 300 || fail "h3 did not store both"
wait_for '[ "$(metric 4 weft_mesh_store_announces)" = $((base4 + 1)) ]' 300 ||
	fail "h4 did not store the endorsed one"
sleep 1
[ "$(metric 4 weft_mesh_store_announces)" = $((base4 + 1)) ] || fail "h4 stored the unendorsed one"
ctl 3 --json mesh query 43 --community "$ID" --min-level registry >"$D/q" || fail "query: $(cat "$D/q")"
grep -q "$E1" "$D/q" && ! grep -q "$E2" "$D/q" && [ "$(json_get announces 0 level <"$D/q")" = registry ] ||
	fail "h3 --min-level registry: $(cat "$D/q")"
[ "$(ctl 3 --json mesh query 43 --community "$ID" | json_get announces | grep -o '"level"' | wc -l)" = 2 ] ||
	fail "h3 without a minimum: $(ctl 3 --json mesh query 43 --community "$ID")"
ctl 4 --json mesh query 43 --community "$ID" >"$D/q" || fail "query 4"
grep -q "$E1" "$D/q" && ! grep -q "$E2" "$D/q" && [ "$(json_get announces 0 level <"$D/q")" = endorsed ] ||
	fail "h4 (min_level endorsed, h1 capped at endorsed): $(cat "$D/q")"
ctl 4 mesh announce 43 --community "$ID" --data '{"clinic":"h4"}' >"$D/e" 2>&1
[ $? = 1 ] && grep -q "min_level" "$D/e" || fail "h4 announced below its minimum: $(cat "$D/e")"
ctl 2 mesh update "$E1" --community "$ID" --data '{"clinic":"north2"}' >/dev/null || fail "update E1"
wait_for 'ctl 3 mesh query 43 --community "$ID" --min-level registry 2>/dev/null | grep -q "^$E1 .*north2"' 300 ||
	fail "the update lost its endorsement: $(ctl 3 --json mesh query 43 --community "$ID")"
wait_for 'ctl 4 mesh query 43 --community "$ID" 2>/dev/null | grep -q "^$E1 .*north2"' 300 ||
	fail "h4 (min_level endorsed) refused the update: $(ctl 4 --json mesh query 43 --community "$ID")"
pass "trusted endorsers: a query's minimum level, mesh.min_level on h4 (stored, answered), each endorser capped; an update keeps its announce's endorsements"

for p in "$PID1" "$PID2" "$PID3" "$PID4"; do
	stop_weftd "$p" || fail "a weftd did not stop cleanly"
done
finish
