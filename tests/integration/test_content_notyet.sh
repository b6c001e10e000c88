#!/bin/bash
# SPDX-License-Identifier: MIT
# A provider asked before it holds the content is asked again (issue 31,
# found by `weftlab run follow`): B downloads an id from A (--from A)
# before A has it; A answers INFO with NOT_FOUND, then adds the file a
# second later. B's job asks A again (1, 2, 4... s after each NOT_FOUND,
# docs/CONTENT.md "Swarm download") and completes; before, A was dropped
# for the item and the job failed after 5 s with "not found". Then an id
# that A never gets: the job still fails within seconds, with that error.
. "$TOP/tests/lib/common.sh"
prologue netns 2
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000 WEFT_CONTENT_REQ_TIMEOUT_MS=2000
for n in 1 2; do start_ns_node "$n" 1; done
A="$(netns_ip4 1):4433"
head -c 300000 /dev/urandom >"$D/f"
ID=$(b3sum --no-names "$D/f")
ctl 2 --json content get "$ID" --from "$A" --out "$D/out" >"$D/get" 2>&1 &
GET=$!
# B's first INFO reaches A before A holds the file (the answer: NOT_FOUND)
wait_for '[ "$(ctl 1 --json content stats | json_get not_found)" -ge 1 ]' 100 ||
	fail "B did not ask A: $(ctl 1 --json content stats)"
ctl 1 --json content add "$D/f" >"$D/add" || fail "add on A: $(cat "$D/add")"
wait "$GET" || fail "B's download failed: $(cat "$D/get")"
cmp "$D/f" "$D/out/$ID" || fail "B's file differs"
pass "A said NOT_FOUND, then added the file: B asked again and got it ($(json_get elapsed_ms <"$D/get") ms)"

head -c 1000 /dev/urandom >"$D/never"
NID=$(b3sum --no-names "$D/never")
t0=$(date +%s)
ctl 2 --json content get "$NID" --from "$A" --out "$D/out2" >"$D/get2" 2>&1 && fail "got an id nobody holds"
t=$(($(date +%s) - t0))
grep -q "not found" "$D/get2" || fail "unclear error: $(cat "$D/get2")"
[ "$t" -le 30 ] || fail "an id nobody holds took $t s to fail"
pass "an id A never holds: 'not found' in $t s"
finish
