#!/bin/bash
# SPDX-License-Identifier: MIT
# Private (sealed) shares end to end, four weftd in network namespaces
# (issue 28): A publishes a folder sealed to B; C, not a recipient, fetches
# the ciphertext with --raw and seeds it; with A gone, B downloads from C
# and gets the plaintext, under its real paths; C and D get
# not_a_recipient (exit code 3, JSON error code) without --raw; no byte of
# the plaintext, and no file name of the share, is on C's or D's disk (a
# marker searched in their state directories), nor in B's store. Then:
# share show on a recipient and on a host, circles (set, ls, a share to a
# circle, rm), the recipient cap (checked before any key is parsed), a key
# that is no curve point, and a kill -9 in the middle of a private add
# leaves no plaintext in the store.
. "$TOP/tests/lib/common.sh"
prologue netns 4
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000 WEFT_CONTENT_REQ_TIMEOUT_MS=2000

start_node() { start_ns_node "$1" 1; }
for n in 1 2 3 4; do start_node "$n"; done
for n in 1 2 3 4; do eval "K$n=\$(ctl $n --json status | json_get node_key)"; done
A="$(netns_ip4 1):4433"
C="$(netns_ip4 3):4433"
MARK="weft-plaintext-marker-$$-$RANDOM"

# the share: a folder, a 1.5 MiB file (7 chunks of ciphertext) with the
# marker at its start, middle and end, a small one named after the marker
mkdir -p "$D/src/docs"
"$PYTHON" - "$D/src" "$MARK" <<'EOF'
import random, sys
d, mark = sys.argv[1], sys.argv[2].encode()
random.seed(28)
body = random.randbytes(1536 * 1024)
with open(d + "/docs/big.bin", "wb") as f:
    f.write(mark + body[:768 * 1024] + mark + body[768 * 1024:] + mark)
with open(d + "/" + sys.argv[2] + ".txt", "wb") as f:
    f.write(b"the note says " + mark + b"\n")
EOF

ctl 1 --json content add --private --to "$K2" --name secret "$D/src" >"$D/add" ||
	fail "private add: $(cat "$D/add")"
SID=$(json_get share_id <"$D/add")
[ "$(json_get sealed <"$D/add")" = True ] || fail "not sealed: $(cat "$D/add")"
[ "$(json_get keys <"$D/add")" = 2 ] || fail "wrapped for $(json_get keys <"$D/add") keys, not 2"
json_get opened <"$D/add" | grep -q "docs/big.bin" || fail "the publisher cannot open its own share"
grep -q "$MARK" <(json_get items <"$D/add") && fail "a real path in the manifest's items"
pass "private add: share $SID sealed to 2 keys (B and the publisher)"

# a sealed file of 41 chunks (10 MiB and 12,345 bytes): the recipient's
# plaintext written as its chunks are committed, by the item's follower:
# whole pages through O_DIRECT, the partial ones at each chunk's ends
# buffered (docs/CONTENT.md "A sealed download's plaintext written as it
# arrives"); then D, restarted with a test hook that leaves every third
# chunk to the export, so the two writers' partial pages meet
mkdir -p "$D/s2"
head -c $((10 << 20)) /dev/urandom >"$D/s2/f.bin"
head -c 12345 /dev/urandom >>"$D/s2/f.bin"
ctl 1 --json content add --private --to "$K2,$K4" --name s2 "$D/s2/f.bin" >"$D/add2" ||
	fail "private add of 41 chunks: $(cat "$D/add2")"
SID2=$(json_get share_id <"$D/add2")
ctl 2 --json content get "$SID2" --from "$A" --out "$D/b2" >"$D/g2" || fail "get s2: $(cat "$D/g2")"
cmp "$D/s2/f.bin" "$D/b2/f.bin" || fail "the 41-chunk sealed file differs"
DIO=$(ctl 2 --json content stats | json_get direct_io)
[ "$DIO" = True ] && E=41 E3=27 || E=0 E3=0
[ "$(json_get copied_early <"$D/g2")" = "$E" ] ||
	fail "s2: copied_early $(json_get copied_early <"$D/g2"), not $E (direct_io $DIO)"
stop_weftd "$PID4" || fail "D does not stop"
WEFT_CONTENT_TEST_UNSEAL_SKIP=3 start_node 4
ctl 4 --json content get "$SID2" --from "$A" --out "$D/d2" >"$D/g4" || fail "D's get of s2: $(cat "$D/g4")"
cmp "$D/s2/f.bin" "$D/d2/f.bin" || fail "s2 differs with every third chunk left to the export"
[ "$(json_get copied_early <"$D/g4")" = "$E3" ] ||
	fail "s2 on D: copied_early $(json_get copied_early <"$D/g4"), not $E3"
ls -A "$D/b2" "$D/d2" | grep -q weft-part && fail "a temporary file left: $(ls -A "$D/b2" "$D/d2")"
pass "a 41-chunk sealed file: $E chunks written as they arrived; with every third left to the export, $E3 and the rest by it"

# a sealed download cancelled while its follower writes: the follower
# stops (no weft-unseal thread left), the copy with no name is gone (the
# same file sealed to D alone: only A holds it, paced by a test hook at
# 50 ms a chunk, 2 s for the 41)
stop_weftd "$PID4" || fail "D does not stop"
start_node 4
stop_weftd "$PID1" || fail "A does not stop"
WEFT_CONTENT_TEST_SERVE_DELAY_MS=50 start_node 1
ctl 1 --json content add --private --to "$K4" --name s3 "$D/s2/f.bin" >"$D/add3" ||
	fail "private add to D: $(cat "$D/add3")"
ctl 4 --json content get "$(json_get share_id <"$D/add3")" --from "$A" --out "$D/d3" --no-wait >"$D/g4c" ||
	fail "D's get of s3"
J=$(json_get job <"$D/g4c")
wait_for '[ "$(ctl 4 --json content jobs "$J" | json_get committed)" -ge 1 ]' 300 || fail "s3 on D does not start"
if [ "$DIO" = True ]; then
	wait_for '[ -n "$(thread_policy "$PID4" weft-unseal)" ]' 100 ||
		fail "no weft-unseal thread on D: $(ctl 4 --json content jobs "$J")"
fi
ctl 4 content cancel "$J" | grep -q "job $J cancelled" || fail "cancel of a sealed download"
[ -z "$(thread_policy "$PID4" weft-unseal)" ] || fail "the cancelled sealed download's follower is still there"
[ -z "$(ls -A "$D/d3" 2>/dev/null)" ] || fail "the cancelled sealed download left: $(ls -la "$D/d3")"
stop_weftd "$PID1" || fail "A does not stop"
start_node 1
pass "a sealed download cancelled: its follower gone, nothing left in its folder"

# C (a seed host) takes the ciphertext; without --raw it is refused
ctl 3 content get "$SID" --from "$A" --out "$D/c-out" >"$D/c-get" 2>&1
rc=$?
[ "$rc" = 3 ] || fail "non-recipient get: exit $rc, not 3: $(cat "$D/c-get")"
grep -q "download failed (not_a_recipient): not a recipient" "$D/c-get" || fail "no not_a_recipient: $(cat "$D/c-get")"
[ -e "$D/c-out" ] && fail "something was written for a non-recipient: $(ls -R "$D/c-out")"
ctl 3 --json content get "$SID" --from "$A" --no-wait >"$D/c-j" || fail "get --no-wait"
J=$(json_get job <"$D/c-j")
wait_for '[ "$(ctl 3 --json content jobs "$J" | json_get done)" = True ]' 300 || fail "job $J never ends"
ctl 3 --json content jobs "$J" >"$D/c-job"
[ "$(json_get error_code <"$D/c-job")" = not_a_recipient ] || fail "job error code: $(cat "$D/c-job")"
pass "non-recipient: exit 3, error code not_a_recipient, nothing written"

ctl 3 content get "$SID" --raw --from "$A" --out "$D/c-raw" >"$D/c-raw.log" 2>&1 || fail "--raw: $(cat "$D/c-raw.log")"
[ -f "$D/c-raw/0000" ] || fail "raw: no ciphertext item 0000: $(ls -R "$D/c-raw")"
ctl 3 share show "$SID" >"$D/c-show" || fail "share show on C"
grep -q "this node is not a recipient" "$D/c-show" || fail "C's share show: $(cat "$D/c-show")"
grep -q "$MARK\|big.bin" "$D/c-show" && fail "C's share show names a real path"
pass "--raw: C holds the ciphertext ($(ls "$D/c-raw" | wc -l) items), share show shows sizes only"

# A leaves; B fetches from C alone and reads it
stop_weftd "$PID1"
ctl 2 content get "$SID" --from "$C" --out "$D/b-out" >"$D/b-get" 2>&1 || fail "recipient get from the seed: $(cat "$D/b-get")"
cmp "$D/src/docs/big.bin" "$D/b-out/docs/big.bin" || fail "big.bin differs"
cmp "$D/src/$MARK.txt" "$D/b-out/$MARK.txt" || fail "the note differs"
ctl 2 share show "$SID" >"$D/b-show" || fail "share show on B"
grep -q "this node is a recipient" "$D/b-show" && grep -q "docs/big.bin" "$D/b-show" ||
	fail "B's share show: $(cat "$D/b-show")"
pass "recipient: B's plaintext from C (not a recipient) matches, real paths"

# D: not a recipient either, from the seed
ctl 4 content get "$SID" --from "$C" --out "$D/d-out" >"$D/d-get" 2>&1
rc=$?
[ "$rc" = 3 ] || fail "D: exit $rc: $(cat "$D/d-get")"

# no plaintext or file name on C's or D's disk, none in B's store
for n in 3 4 2; do
	if grep -rlaF "$MARK" "$D/n$n" >"$D/found"; then
		fail "the marker is on host $n's disk: $(cat "$D/found")"
	fi
done
pass "the marker is in no state directory of C, D, nor B's store"

# share show before download on D: fetched, sizes only
ctl 4 share show "$SID" >"$D/d-show" || fail "share show on D"
grep -q "not a recipient" "$D/d-show" || fail "D's share show: $(cat "$D/d-show")"

# circles: a local list, a share sealed to it
ctl 2 circle set friends "$K4" "$K3" || fail "circle set"
ctl 2 --json circle ls | grep -q "$K4" || fail "circle ls: $(ctl 2 --json circle ls)"
printf 'for friends %s\n' "$MARK" >"$D/f.txt"
ctl 2 --json content add --private --to-circle friends "$D/f.txt" >"$D/fadd" || fail "add --to-circle: $(cat "$D/fadd")"
[ "$(json_get keys <"$D/fadd")" = 3 ] || fail "circle share wrapped for $(json_get keys <"$D/fadd") keys"
FSID=$(json_get share_id <"$D/fadd")
ctl 4 content get "$FSID" --from "$(netns_ip4 2):4433" --out "$D/d-f" >"$D/d-fget" 2>&1 || fail "circle member get: $(cat "$D/d-fget")"
cmp "$D/f.txt" "$D/d-f/f.txt" || fail "circle share differs"
ctl 2 circle rm friends || fail "circle rm"
ctl 2 content add --private --to-circle friends "$D/f.txt" >"$D/frm" 2>&1 && fail "a removed circle was used"
grep -q "no circle friends" "$D/frm" || fail "removed circle: $(cat "$D/frm")"
pass "circles: set, ls, a share to a circle read by a member, rm"

# the cap: 500 keys and this node are 501, refused before any key is read
KEYS=$("$PYTHON" -c 'print(",".join("%064x" % (i + 1) for i in range(500)))')
ctl 2 content add --private --to "$KEYS" "$D/f.txt" >"$D/cap" 2>&1 && fail "501 recipients accepted"
grep -q "too_many_recipients\|at most 500" "$D/cap" || fail "cap: $(cat "$D/cap")"
ctl 2 content add --private --to "$(printf '%064d' 0)" "$D/f.txt" >"$D/badkey" 2>&1 && fail "a zero key accepted"
grep -q "not a node key" "$D/badkey" || fail "bad key: $(cat "$D/badkey")"
ctl 2 content add --to "$K3" "$D/f.txt" >"$D/pub" 2>&1 && fail "--to without --private accepted"
pass "recipient cap (501 refused), a key off the curve, --to without --private: clear errors"

# kill -9 in the middle of a private add: no plaintext in the store
"$PYTHON" - "$D/huge.bin" "$MARK" <<'EOF'
import sys
m = sys.argv[2].encode()
with open(sys.argv[1], "wb") as f:
    for _ in range(4096):
        f.write((m * (65536 // len(m) + 1))[:65536])
EOF
ctl 2 content add --private --to "$K3" "$D/huge.bin" >/dev/null 2>&1 &
ADD=$!
wait_for 'ls "$D/n2/blobs"/.add-* >/dev/null 2>&1' 200 || fail "the add never started staging"
kill -9 "$PID2"
wait "$PID2" 2>/dev/null || true
wait "$ADD" 2>/dev/null || true
if grep -rlaF "$MARK" "$D/n2" >"$D/found"; then
	fail "plaintext in B's state directory after kill -9: $(cat "$D/found")"
fi
start_node 2
ctl 2 --json status >/dev/null || fail "B does not restart"
ctl 2 --json content ls | grep -q huge && fail "the killed add was kept"
pass "kill -9 during a private add (while staging): no plaintext in the state directory, restart fine"
finish
