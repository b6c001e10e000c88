#!/bin/bash
# SPDX-License-Identifier: MIT
# Blocklist shares (issue 31) in network namespaces: three weftd form a
# DHT. Host 1 publishes "media" (ok.txt, bad.bin), "other", and a blocklist
# share "bl" whose list names bad.bin's content id and "other"'s share id.
# Host 2 follows "media" (holding bad.bin), then follows "bl" with
# --blocklist: from then on bad.bin is not served by host 2 (host 3 asking
# host 2 alone for it fails: not found), not shown by its search, and
# neither it nor "other" is fetched (403 "blocked", exit 1); a new share
# fetched by id skips a listed item. The table survives SIGKILL;
# unsubscribing the blocklist lifts it.
. "$TOP/tests/lib/common.sh"
prologue netns 3
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000 WEFT_CONTENT_REQ_TIMEOUT_MS=2000

start_node() { start_ns_node "$1" 3 --set content.poll_s=2; }
fetched() { # N NAME: fetched_seq of host N's subscription to NAME
	ctl "$1" --json content subscriptions | "$PYTHON" -c '
import json, sys
s = [x for x in json.load(sys.stdin)["subscriptions"] if x["name"] == sys.argv[1]]
print(s[0]["fetched_seq"] if s else "none")' "$2"
}
blocked() { ctl "$1" --json content stats | json_get blocked ids; }
hits() { ctl "$1" --json content search "$2" | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["results"]))'; }

for n in 3 1 2; do start_node "$n"; done
wait_for '[ "$(ctl 1 --json dht status | json_get nodes4)" -ge 2 ]' 300 || fail "DHT did not form"

mkdir -p "$D/media" "$D/other" "$D/bl" "$D/mixed"
echo fine >"$D/media/ok.txt"
echo "not wanted here" >"$D/media/bad.bin"
echo other >"$D/other/o.txt"
ctl 1 --json content add "$D/media" --name media >"$D/m" || fail "publish media"
ctl 1 --json content add "$D/other" --name other >"$D/o" || fail "publish other"
PK=$(json_get publisher <"$D/m") OSID=$(json_get share_id <"$D/o")
BAD=$(b3sum --no-names "$D/media/bad.bin")
printf '# our list\n%s  # bad.bin\n\n%s\nnot an id\n' "$BAD" "$OSID" >"$D/bl/list.txt"
ctl 1 content add "$D/bl" --name bl >/dev/null || fail "publish bl"

ctl 2 content subscribe "$PK/media" >/dev/null || fail "subscribe media"
wait_for '[ "$(fetched 2 media)" = 1 ]' 600 || fail "host 2 did not fetch media"
[ "$(hits 2 bad)" = 1 ] || fail "bad.bin not found before the blocklist"
ctl 2 content subscribe --blocklist "$PK/bl" | grep -q "a blocklist" || fail "subscribe --blocklist"
wait_for '[ "$(blocked 2)" = 2 ]' 600 || fail "host 2's blocklist: $(ctl 2 --json content stats | json_get blocked) $(ctl 2 --json content subscriptions)"
pass "host 2 follows the blocklist: 2 ids refused (a comment, a blank and a bad line skipped)"

# never shown
[ "$(hits 2 bad)" = 0 ] || fail "bad.bin still shown by search"
[ "$(hits 2 ok)" = 1 ] || fail "ok.txt no longer found"
# never fetched
ctl 2 content get "$BAD" --out "$D/g" >"$D/err" 2>&1
[ $? = 1 ] && grep -q "blocklist" "$D/err" || fail "a listed content id fetched: $(cat "$D/err")"
ctl 2 content get "$OSID" --out "$D/g" >"$D/err" 2>&1
[ $? = 1 ] && grep -q "blocklist" "$D/err" || fail "a listed share fetched: $(cat "$D/err")"
[ ! -e "$D/g/o.txt" ] || fail "other's item written"
pass "listed ids never shown or fetched (403)"

# a share fetched by id skips a listed item
cp "$D/media/bad.bin" "$D/mixed/bad copy.bin"
echo keep >"$D/mixed/keep.txt"
MSID=$(ctl 1 --json content add "$D/mixed" --name mixed | json_get share_id) || fail "publish mixed"
ctl 2 content get "$MSID" --out "$D/mx" >"$D/err" 2>&1 || fail "mixed: $(cat "$D/err")"
[ -f "$D/mx/keep.txt" ] && [ ! -e "$D/mx/bad copy.bin" ] || fail "mixed: $(ls "$D/mx")"
pass "a share's listed item skipped, the rest fetched"

# never served: the publisher gone, host 3 asks host 2, which holds it
kill -9 "$PID1"
wait "$PID1" 2>/dev/null
R0=$(ctl 2 --json content stats | json_get blocked refused)
J=$(ctl 3 --json content get "$BAD" --from "$(netns_ip4 2):4433" --out "$D/g3" --no-wait | json_get job) ||
	fail "host 3's get not started"
wait_for '[ "$(ctl 2 --json content stats | json_get blocked refused)" -gt "$R0" ]' 30 ||
	fail "host 2 did not refuse host 3's request"
ctl 3 content cancel "$J" >/dev/null 2>&1
[ "$(ctl 3 --json content jobs "$J" | json_get done_bytes)" = 0 ] && [ ! -e "$D/g3/$BAD" ] ||
	fail "host 3 got the blob: $(ctl 3 --json content jobs "$J")"
pass "a listed blob held is not served (NOT_FOUND)"

kill -9 "$PID2"
wait "$PID2" 2>/dev/null
start_node 2
[ "$(blocked 2)" = 2 ] || fail "after SIGKILL: $(blocked 2)"
ctl 2 content get "$OSID" --out "$D/g" >/dev/null 2>&1 && fail "fetched after a restart"
ctl 2 content unsubscribe "$PK/bl" >/dev/null || fail "unsubscribe bl"
[ "$(blocked 2)" = 0 ] || fail "unsubscribed, still blocking"
ctl 2 content get "$OSID" --out "$D/g" --no-wait >"$D/err" 2>&1 || fail "other after unsubscribe: $(cat "$D/err")"
pass "the blocklist kept across SIGKILL, lifted by unsubscribe"
finish
