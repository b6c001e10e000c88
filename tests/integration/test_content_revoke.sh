#!/bin/bash
# SPDX-License-Identifier: MIT
# Revocation of a sealed share, both levels (docs/PRIVATE.md "Revocation"),
# in 4 namespaces: A publishes "doc" sealed to B and D; C (a seed host, not
# a recipient) and B follow it.
#   re-wrap: A's next version is wrapped for B alone, same ciphertext; D,
#     who never fetched, gets not_a_recipient (exit 3); B reads it; C's
#     blobs are the same ones.
#   re-encrypt: new key, new ciphertext, "wd" withdrawing earlier versions;
#     C takes it and drops the old blob (its withdrawal counters say so and
#     the old id is no longer in its store); B pinned the old blob, so B
#     keeps it but refuses to serve it; B reads the new version; D cannot.
#   a seed that missed the withdrawing version (C down during a second
#     re-encrypt and a re-wrap) drops the withdrawn blob when it takes the
#     next version ("wd" is carried on by every later version).
# A seed that changes the ciphertext it serves (the test hook): its chunks
# fail their proof and are refused, it takes the faults, B's plaintext is
# right. Bad input: revoking a share that is not ours, or with a bad key.
. "$TOP/tests/lib/common.sh"
prologue netns 4
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000 WEFT_CONTENT_REQ_TIMEOUT_MS=2000

start_node() { start_ns_node "$1" 1 --set content.poll_s=2; }
for n in 1 2 3 4; do start_node "$n"; done
for n in 1 2 3 4; do eval "K$n=\$(ctl $n --json status | json_get node_key)"; done
A="$(netns_ip4 1):4433"
B="$(netns_ip4 2):4433"

# held N ID: 0 when host N's store has blob ID complete
held() { ctl "$1" --json content ls | grep -q "$2"; }
# fetched N SEQ: host N's subscription has fetched version SEQ or later
fetched() {
	local f
	f=$(ctl "$1" --json content subscriptions | "$PYTHON" -c 'import json,sys; a=json.load(sys.stdin); print(max([s["fetched_seq"] for s in a.get("subscriptions", a)] or [0]))' 2>/dev/null)
	[ "${f:-0}" -ge "$2" ]
}
withdrawn() { # N FIELD
	ctl "$1" --json content stats | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["withdrawn"][sys.argv[1]])' "$2"
}

head -c 700000 /dev/urandom >"$D/doc.bin"
ctl 1 --json content add --private --to "$K2,$K4" --name doc "$D/doc.bin" >"$D/v1" ||
	fail "private add: $(cat "$D/v1")"
SID=$(json_get share_id <"$D/v1")
NAME=$(json_get name <"$D/v1")
OLD=$(json_get items <"$D/v1" | grep -o '[0-9a-f]\{64\}' | head -1)
[ -n "$OLD" ] || fail "no item id: $(cat "$D/v1")"
for n in 2 3; do ctl "$n" content subscribe "$K1/$NAME" >/dev/null || fail "host $n subscribe"; done
wait_for 'fetched 3 1 && fetched 2 1' 600 || fail "followers never fetched version 1"
held 3 "$OLD" || fail "C does not hold the ciphertext of version 1"
ctl 2 content get "$SID" --out "$D/b1" >/dev/null 2>&1 || fail "B reads version 1"
cmp "$D/doc.bin" "$D/b1/doc.bin" || fail "B's version 1 differs"
pass "version 1 sealed to B and D, followed by B and by C (as ciphertext)"

# --- re-wrap for B alone
ctl 1 --json content rewrap doc --to "$K2" >"$D/v2" || fail "rewrap: $(cat "$D/v2")"
[ "$(json_get seq <"$D/v2")" = 2 ] || fail "rewrap seq: $(cat "$D/v2")"
[ "$(json_get keys <"$D/v2")" = 2 ] || fail "rewrap keys: $(cat "$D/v2")"
json_get items <"$D/v2" | grep -q "$OLD" || fail "rewrap changed the ciphertext"
wait_for 'fetched 3 2 && fetched 2 2' 600 || fail "followers never fetched version 2"
ctl 4 content get "$SID" --from "$A" --out "$D/d2" >"$D/d2.log" 2>&1
rc=$?
[ "$rc" = 3 ] || fail "D after the rewrap: exit $rc, not 3: $(cat "$D/d2.log")"
ctl 2 content get "$SID" --out "$D/b2" >/dev/null 2>&1 || fail "B reads version 2"
cmp "$D/doc.bin" "$D/b2/doc.bin" || fail "B's version 2 differs"
held 3 "$OLD" || fail "C dropped the (unchanged) ciphertext at a rewrap"
[ "$(withdrawn 3 dropped)" = 0 ] || fail "a rewrap withdrew something on C"
pass "re-wrap: version 2, same ciphertext; D (never fetched) not_a_recipient, B reads it"

# --- re-encrypt: B pins the old blob first
ctl 2 content pin "$OLD" >/dev/null || fail "B pins the old blob"
ctl 1 --json content reencrypt doc --to "$K2" >"$D/v3" || fail "reencrypt: $(cat "$D/v3")"
[ "$(json_get seq <"$D/v3")" = 3 ] || fail "reencrypt seq: $(cat "$D/v3")"
[ "$(json_get withdraws_below <"$D/v3")" = 3 ] || fail "no withdrawal: $(cat "$D/v3")"
NEW=$(json_get items <"$D/v3" | grep -o '[0-9a-f]\{64\}' | head -1)
[ -n "$NEW" ] && [ "$NEW" != "$OLD" ] || fail "reencrypt kept the ciphertext: $(cat "$D/v3")"
held 1 "$OLD" && fail "the publisher still holds the withdrawn ciphertext"
wait_for 'fetched 3 3 && fetched 2 3' 600 || fail "followers never fetched version 3"
held 3 "$NEW" || fail "C does not hold version 3"
held 3 "$OLD" && fail "C still holds the withdrawn blob"
[ "$(withdrawn 3 dropped)" -ge 1 ] || fail "C's withdrawal counters: $(ctl 3 --json content stats)"
held 2 "$OLD" || fail "B dropped a blob it pinned"
[ "$(withdrawn 2 kept)" -ge 1 ] || fail "B's withdrawal counters: $(ctl 2 --json content stats)"
pass "re-encrypt: version 3 new ciphertext; C dropped the old blob, B kept its pinned copy"

# B's kept copy is never served: D asks B for it
ctl 4 content get "$OLD" --raw --from "$B" --out "$D/d-old" >"$D/d-old.log" 2>&1 &&
	fail "B served a withdrawn blob"
[ "$(withdrawn 2 refused)" -ge 1 ] || fail "B's refusals: $(ctl 2 --json content stats)"
ctl 2 content get "$SID" --out "$D/b3" >/dev/null 2>&1 || fail "B reads version 3"
cmp "$D/doc.bin" "$D/b3/doc.bin" || fail "B's version 3 differs"
ctl 4 content get "$SID" --from "$(netns_ip4 3):4433" --out "$D/d3" >"$D/d3.log" 2>&1
rc=$?
[ "$rc" = 3 ] || fail "D after the re-encryption: exit $rc: $(cat "$D/d3.log")"
pass "the kept copy is refused to D; B reads version 3 from the seed, D cannot"

# a seed that missed the withdrawing version: C is down while A re-encrypts
# again (version 4 withdraws version 3) and then re-wraps (version 5
# withdraws nothing of its own and carries "wd" 4 on); C comes back, takes
# version 5 straight from the head, and still drops version 3's blob
stop_weftd "$PID3" || fail "C did not stop"
ctl 1 --json content reencrypt doc --to "$K2" >"$D/v4" || fail "reencrypt 2: $(cat "$D/v4")"
NEW4=$(json_get items <"$D/v4" | grep -o '[0-9a-f]\{64\}' | head -1)
ctl 1 --json content rewrap doc --to "$K2" >"$D/v5" || fail "rewrap 2: $(cat "$D/v5")"
[ "$(json_get seq <"$D/v5")" = 5 ] && [ "$(json_get withdraws_below <"$D/v5")" = 4 ] ||
	fail "version 5 does not carry the withdrawal on: $(cat "$D/v5")"
start_node 3
wait_for 'fetched 3 5' 600 || fail "C never fetched version 5"
held 3 "$NEW4" || fail "C does not hold version 5's ciphertext"
held 3 "$NEW" && fail "C still holds version 3's blob, withdrawn by a version it never saw"
[ "$(withdrawn 3 dropped)" -ge 1 ] || fail "C's withdrawal counters: $(ctl 3 --json content stats)"
pass "a seed that missed the withdrawing version drops the withdrawn blob at the next version"

# a seed that changes the ciphertext it serves: its chunks fail their
# proof at B and are refused, the seed takes the faults, the rest comes
# from the publisher; what B writes is the plaintext
# B's subscription takes versions 4 and 5 on its own: before C turns
# corrupt (fetched from it, they would get C banned by B before the get
# below, and B's removal of the share is refused, 409, while it runs)
wait_for 'fetched 2 5' 600 || fail "B never fetched version 5"
stop_weftd "$PID3" || fail "C did not stop"
WEFT_CONTENT_TEST_CORRUPT=1 start_node 3
# The share is 3 chunks: the publisher, found through the DHT, could serve
# them all before the seed answers. So B cannot reach the publisher's QUIC
# port until the seed's first chunk was refused; then the rest comes from
# the publisher, and what B writes must be the plaintext.
ctl 2 content rm "$SID" >/dev/null || fail "B rm"
rm -rf "$D/b-bad"
netns_exec 2 nft -f - <<NFT || fail "nft"
table inet revoke {
	chain out { type filter hook output priority 0; ip daddr $(netns_ip4 1) udp dport 4433 drop; }
}
NFT
JOB=$(ctl 2 --json content get "$SID" --from "$(netns_ip4 3):4433" --out "$D/b-bad" --no-wait |
	json_get job) || fail "B's get with a corrupting seed did not start"
bad_chunks() { [ "$(ctl 2 --json content jobs "$JOB" | json_get bad_chunks)" -ge 1 ]; }
wait_for bad_chunks 600 || fail "no chunk from the corrupting seed refused: $(ctl 2 --json content jobs "$JOB")"
netns_exec 2 nft delete table inet revoke || fail "nft delete"
job_done() { [ "$(ctl 2 --json content jobs "$JOB" | json_get done)" = True ]; }
wait_for job_done 1200 || fail "B's get never ended: $(ctl 2 --json content jobs "$JOB")"
[ "$(ctl 2 --json content jobs "$JOB" | json_get state)" = done ] ||
	fail "B's get with a corrupting seed: $(ctl 2 --json content jobs "$JOB")"
cmp "$D/doc.bin" "$D/b-bad/doc.bin" || fail "B wrote something else than the plaintext"
grep -q "sent a chunk that does not verify" "$LOG2" || fail "no fault against the corrupting seed"
pass "a seed that changes the ciphertext: its chunks refused, the seed faulted, B's plaintext right"

# bad input
ctl 2 content rewrap doc --to "$K4" >"$D/bad1" 2>&1 && fail "B re-wrapped a share it does not publish"
grep -q "no private share doc published by this node" "$D/bad1" || fail "not ours: $(cat "$D/bad1")"
ctl 1 content reencrypt doc --to "$(printf '%064d' 0)" >"$D/bad2" 2>&1 && fail "a zero key accepted"
grep -q "not a node key" "$D/bad2" || fail "bad key: $(cat "$D/bad2")"
ctl 1 content rewrap 'a/b' >"$D/bad3" 2>&1 && fail "a bad name accepted"
[ "$(ctl 1 --json share show "$SID" | json_get seq)" = 5 ] || fail "bad input changed the share"
pass "bad input: another's share, a key off the curve, a bad name; nothing changed"
finish
