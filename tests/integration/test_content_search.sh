#!/bin/bash
# SPDX-License-Identifier: MIT
# Search over followed shares (issue 31) in network namespaces: three weftd
# form a DHT. Host 1 publishes "music" and "other"; host 2 follows "music"
# and fetches "other" by share id without following it. On host 2 a word
# of a "music" item is found (NFKC and case folded: a fullwidth name found
# by its plain word), a word only "other" holds is not; the type filter,
# paging by cursor (weftctl --page), bad queries refused (400, exit 1); a
# new version of "music" is searched at its new seq; the index survives
# SIGKILL and, damaged while weftd is down, is rebuilt at start from the
# manifests held; after unsubscribe nothing of "music" is found. Host 1
# finds its own shares' items.
. "$TOP/tests/lib/common.sh"
prologue netns 3
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000 WEFT_CONTENT_REQ_TIMEOUT_MS=2000

start_node() { start_ns_node "$1" 3 --set content.poll_s=2; }
hits() { # N QUERY [ARGS...]: how many results host N finds
	local n=$1
	shift
	ctl "$n" --json content search "$@" | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["results"]))'
}
sub() { # N FIELD: FIELD of host N's first subscription
	ctl "$1" --json content subscriptions | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)["subscriptions"]
print(s[0][sys.argv[1]] if s else "none")' "$2"
}

for n in 3 1 2; do start_node "$n"; done
wait_for '[ "$(ctl 1 --json dht status | json_get nodes4)" -ge 2 ]' 300 || fail "DHT did not form"

mkdir -p "$D/music/Classical" "$D/other"
echo sonata >"$D/music/Classical/Beethoven Moonlight.ogg"
echo fullwidth >"$D/music/$(printf '\xef\xbc\xb3\xef\xbd\x8f\xef\xbd\x8e\xef\xbd\x81\xef\xbd\x94\xef\xbd\x81') no 2.ogg" # Ｓｏｎａｔａ
echo notes >"$D/music/Classical/liner notes.txt"
echo zebra >"$D/other/zebra stripes.txt"
ctl 1 --json content add "$D/music" --name music >"$D/m1" || fail "publish music"
ctl 1 --json content add "$D/other" --name other >"$D/o1" || fail "publish other"
PK=$(json_get publisher <"$D/m1") OSID=$(json_get share_id <"$D/o1")

ctl 2 content subscribe "$PK/music" >/dev/null || fail "subscribe"
wait_for '[ "$(sub 2 fetched_seq)" = 1 ]' 600 || fail "host 2 did not fetch music: $(ctl 2 --json content subscriptions)"
ctl 2 content get "$OSID" --out "$D/o2" >/dev/null || fail "host 2 fetching other by id"
[ -f "$D/o2/zebra stripes.txt" ] || fail "other not fetched"

[ "$(hits 2 beethoven)" = 1 ] || fail "beethoven not found on host 2: $(ctl 2 --json content search beethoven)"
[ "$(hits 2 MOONLIGHT classical)" = 1 ] || fail "two words, other case"
[ "$(hits 2 sonata)" = 1 ] || fail "the fullwidth name not found by its plain word"
[ "$(hits 2 zebra)" = 0 ] || fail "an item of a share not followed was found"
[ "$(hits 2 classical --type audio)" = 1 ] || fail "--type audio"
[ "$(hits 2 classical --type text/plain)" = 1 ] || fail "--type text/plain"
[ "$(hits 2 classical --share "$PK/music")" = 2 ] || fail "--share"
[ "$(hits 2 classical --share "$OSID")" = 0 ] || fail "--share of a share not followed"
pass "host 2 finds music's items (NFKC, case folded, type and share filters), nothing of other"

# paging: 2 results of "classical", one a page
P1=$(ctl 2 --json content search classical --limit 1 | json_get results 0 path)
P2=$(ctl 2 --json content search classical --limit 1 --page 2 | json_get results 0 path)
[ -n "$P1" ] && [ -n "$P2" ] && [ "$P1" != "$P2" ] || fail "pages 1 and 2: '$P1' '$P2'"
ctl 2 content search classical --limit 1 --page 9 | grep -q "no page 9" || fail "--page past the end"
pass "paging: page 1 '$P1', page 2 '$P2'"

# bad queries: a 400 and exit 1
ctl 2 content search ",,," >"$D/bad" 2>&1
[ $? = 1 ] && grep -q "no word" "$D/bad" || fail "an empty query: $(cat "$D/bad")"
ctl 2 content search a b c d e f g h i >"$D/bad" 2>&1
[ $? = 1 ] && grep -q "too many words" "$D/bad" || fail "nine words: $(cat "$D/bad")"
ctl 2 content search x --cursor zz >"$D/bad" 2>&1
[ $? = 1 ] || fail "a bad cursor accepted"
code=$(curl -s -o "$D/bad" -w '%{http_code}' --unix-socket "$D/n2/weftd.sock" \
	-d '{"q": 5}' http://weft/v1/content/search)
[ "$code" = 400 ] && grep -q bad_request "$D/bad" || fail "q not a string: $code $(cat "$D/bad")"
pass "bad queries refused with clear errors"

# the publisher searches its own shares
[ "$(hits 1 zebra)" = 1 ] && [ "$(hits 1 beethoven)" = 1 ] || fail "host 1 does not find its own items"

# a new version: liner notes gone, a new item found, at the new seq
rm "$D/music/Classical/liner notes.txt"
echo new >"$D/music/Classical/Chopin Nocturne.ogg"
ctl 1 content add "$D/music" --name music >/dev/null || fail "publish music v2"
ctl 2 content sync >/dev/null
wait_for '[ "$(sub 2 fetched_seq)" = 2 ]' 600 || fail "host 2 did not fetch music v2"
wait_for '[ "$(hits 2 chopin)" = 1 ]' 30 || fail "the new item not found"
[ "$(hits 2 liner)" = 0 ] || fail "an item of the old version still found"
[ "$(ctl 2 --json content search chopin | json_get results 0 seq)" = 2 ] || fail "result not at seq 2"
pass "version 2 searched: its new item found, the removed one not"

# kill -9: the index is on disk
kill -9 "$PID2"
wait "$PID2" 2>/dev/null
start_node 2
[ "$(hits 2 chopin)" = 1 ] || fail "after SIGKILL: $(ctl 2 --json content search chopin)"

# a damaged index (the count of "chopin" zeroed behind weftd's back, which
# alone would hide it): found at start by the check, rebuilt from the
# manifests held
kill -9 "$PID2"
wait "$PID2" 2>/dev/null
printf 'VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n %s\n 00000000\nDATA=END\n' \
	"$(printf chopin | od -An -tx1 | tr -d ' \n')" |
	mdb_load -s content_search_df "$D/n2/store" || fail "mdb_load"
start_node 2
grep -q "search index damaged" "$LOG2" || fail "the damage not noticed: $(grep -i search "$LOG2")"
[ "$(hits 2 chopin)" = 1 ] || fail "not rebuilt: $(ctl 2 --json content search chopin)"
[ "$(hits 2 beethoven)" = 1 ] || fail "beethoven after the rebuild"
ctl 2 content unsubscribe "$PK/music" >/dev/null || fail "unsubscribe"
[ "$(hits 2 chopin)" = 0 ] && [ "$(hits 2 classical)" = 0 ] || fail "found after unsubscribe"
pass "the index kept across SIGKILL, rebuilt when damaged; nothing of music found after unsubscribe"
finish
