#!/bin/bash
# SPDX-License-Identifier: MIT
# A changed item of a share moves only its changed chunks (issue 31: "only
# changed chunks move"), two namespaces: A publishes "doc" (a 2 MiB file:
# 8 chunks, and a small one); B takes version 1. A changes 256 KiB in the
# middle of the big file (chunk 3) and appends 100 KiB (a ninth, partial
# chunk), then publishes version 2; B's download of it fetches the changed
# and the new chunk only (2) and copies the other 7 from
# its copy of version 1, verified; the small file, unchanged, is already
# held. B's result is byte for byte A's new file. Then a change that
# shifts everything (one byte inserted at the start): every chunk moves.
. "$TOP/tests/lib/common.sh"
prologue netns 2
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000 WEFT_CONTENT_REQ_TIMEOUT_MS=2000
for n in 1 2; do start_ns_node "$n" 1; done
A="$(netns_ip4 1):4433"
mkdir -p "$D/src"
head -c $((2 << 20)) /dev/urandom >"$D/src/big.bin"
echo "small and unchanged" >"$D/src/small.txt"
ctl 1 --json content add --name doc "$D/src" >"$D/v1" || fail "add v1: $(cat "$D/v1")"
SID=$(json_get share_id <"$D/v1")
ctl 2 --json content get "$SID" --from "$A" --out "$D/b1" >"$D/g1" || fail "get v1: $(cat "$D/g1")"
cmp "$D/src/big.bin" "$D/b1/big.bin" || fail "v1 differs"
[ "$(json_get fetched <"$D/g1")" = 9 ] || fail "v1: fetched $(json_get fetched <"$D/g1") chunks, not 9"
# the copy of big.bin written by the commits as its chunks arrived, from
# the buffers they were verified in (docs/CONTENT.md "The user's copy
# written as it arrives"): all 8 when the store writes through O_DIRECT;
# the one-chunk small file by the export
DIO=$(ctl 2 --json content stats | json_get direct_io)
[ "$DIO" = True ] && E1=8 E2=2 || E1=0 E2=0
[ "$(json_get copied_early <"$D/g1")" = "$E1" ] ||
	fail "v1: copied_early $(json_get copied_early <"$D/g1"), not $E1 (direct_io $DIO)"
pass "version 1: 9 chunks fetched, $E1 of them written to the copy as they arrived"

# chunk 3 rewritten in place, 100 KiB appended
"$PYTHON" - "$D/src/big.bin" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(3 * 262144)
    f.write(os.urandom(262144))
    f.seek(0, 2)
    f.write(os.urandom(100 * 1024))
PY
ctl 1 --json content add --name doc "$D/src" >"$D/v2" || fail "add v2: $(cat "$D/v2")"
[ "$(json_get seq <"$D/v2")" = 2 ] || fail "v2 seq: $(cat "$D/v2")"
ctl 2 --json content get "$SID" --from "$A" --out "$D/b2" >"$D/g2" || fail "get v2: $(cat "$D/g2")"
cmp "$D/src/big.bin" "$D/b2/big.bin" || fail "v2 differs from A's file"
cmp "$D/src/small.txt" "$D/b2/small.txt" || fail "the small file differs"
F=$(json_get fetched <"$D/g2") R=$(json_get reused <"$D/g2")
[ "$F" = 2 ] && [ "$R" = 7 ] || fail "v2: fetched $F, reused $R (want 2 and 7): $(cat "$D/g2")"
# the two fetched (the changed chunk, the new ninth: 100 KiB, a whole
# number of 4 KiB blocks for O_DIRECT) written to the copy by their
# commits; the 7 reused copied by the export
[ "$(json_get copied_early <"$D/g2")" = "$E2" ] ||
	fail "v2: copied_early $(json_get copied_early <"$D/g2"), not $E2"
[ -z "$(ls -A "$D/b2" | grep weft-part)" ] || fail "a temporary file left in $D/b2: $(ls -A "$D/b2")"
pass "version 2: 2 chunks fetched (the changed one, the new one; $E2 written to the copy as they arrived), 7 reused, the small file already held"

# one byte inserted at the start: every chunk of the big file moves
"$PYTHON" - "$D/src/big.bin" <<'PY'
import sys
p = sys.argv[1]
b = open(p, "rb").read()
open(p, "wb").write(b"!" + b)
PY
ctl 1 --json content add --name doc "$D/src" >"$D/v3" || fail "add v3"
ctl 2 --json content get "$SID" --from "$A" --out "$D/b3" >"$D/g3" || fail "get v3: $(cat "$D/g3")"
cmp "$D/src/big.bin" "$D/b3/big.bin" || fail "v3 differs"
[ "$(json_get reused <"$D/g3")" = 0 ] || fail "v3 reused chunks of shifted data: $(cat "$D/g3")"
pass "version 3 (data shifted by one byte): nothing reused, $(json_get fetched <"$D/g3") chunks fetched"

# copies are written to files with no name until done (O_TMPFILE), so no
# name in the output folder is taken or removed on the way: a share with
# items "x" and "x.weft-part", into a folder holding the user's own
# "y.weft-part" beside the share's "y"
mkdir -p "$D/src4"
head -c $((600 << 10)) /dev/urandom >"$D/src4/x"
head -c $((300 << 10)) /dev/urandom >"$D/src4/x.weft-part"
head -c $((512 << 10)) /dev/urandom >"$D/src4/y"
ctl 1 --json content add --name names "$D/src4" >"$D/v4" || fail "add names: $(cat "$D/v4")"
# get_names DIR WHAT: the share into DIR, which holds the user's own
# y.weft-part; every item equal to the publisher's, that file untouched,
# nothing else left
get_names() {
	mkdir -p "$1"
	echo "the user's own file" >"$1/y.weft-part"
	ctl 2 --json content get "$(json_get share_id <"$D/v4")" --from "$A" --out "$1" >"$1.get" ||
		fail "get names ($2): $(cat "$1.get")"
	for f in x x.weft-part y; do cmp "$D/src4/$f" "$1/$f" || fail "$f differs ($2)"; done
	[ "$(cat "$1/y.weft-part")" = "the user's own file" ] || fail "the user's y.weft-part was touched ($2)"
	[ "$(ls -A "$1" | wc -l)" = 4 ] || fail "files left beside the items ($2): $(ls -A "$1")"
}
get_names "$D/b4" "O_TMPFILE"
pass "items named x and x.weft-part both written; the user's own y.weft-part untouched, nothing else left"

# the same on a filesystem without O_TMPFILE (a test hook in the
# sanitized weftd makes it fail): each copy written under a random name
# (NAME.weft-part-<16 hex>), created O_EXCL, renamed at its end
stop_weftd "$PID2" || fail "stop node 2"
WEFT_TEST_NO_TMPFILE=1 start_ns_node 2 1
get_names "$D/b5" "no O_TMPFILE"
pass "without O_TMPFILE: the same items written through random temporary names, nothing left"
finish
