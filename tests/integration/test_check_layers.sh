#!/bin/bash
# SPDX-License-Identifier: MIT
# `make check-layers` must fail on each kind of violation it exists for.
# In a copy of the release objects and the sources, plant one violation at
# a time and check that tools/check-layers.py exits 1 with the right
# message; the untouched copy passes. Kinds: a call up the ladder, a call
# sideways within one rank, a call into node/, an exported symbol without
# its module's prefix, a use of another module's internal prefix, a call
# cycle between two files of one module, another module's private header,
# the node layer's header below it, a file over 1,200 lines, a folder not
# in the Modules table.
set -u
. "$TOP/tests/lib/common.sh"
CC=${CC:-gcc}
OBJ="$BUILD/obj"
[ -d "$OBJ/userspace" ] || fail "$OBJ/userspace: release objects not built (make all)"

tmp=$(mktemp -d /tmp/weft-layers.XXXXXX)
on_exit "rm -rf '$tmp'"
mkdir -p "$tmp/top/docs" "$tmp/obj"
cp -r "$TOP/userspace" "$TOP/include" "$tmp/top/"
cp "$TOP/docs/ARCHITECTURE.md" "$tmp/top/docs/"
cp -r "$OBJ/userspace" "$tmp/obj/"

check() { /usr/bin/python3 "$TOP/tools/check-layers.py" --top "$tmp/top" --objdir "$tmp/obj"; }

out=$(check 2>&1) || fail "the untouched copy does not pass: $out"
pass "untouched copy passes"

# plant_obj MODULE NAME C-SOURCE: compile one object into the copy.
plant_obj() {
	printf '%s\n' "$3" >"$tmp/src.c"
	"$CC" -c -O0 -o "$tmp/obj/userspace/$1/$2.o" "$tmp/src.c" || fail "cannot compile the planted $1/$2"
}
# expect WHAT PATTERN: the check fails and prints PATTERN (a fixed string).
expect() {
	local out rc
	out=$(check 2>&1)
	rc=$?
	[ $rc -eq 1 ] || fail "$1: check-layers exited $rc, not 1: $out"
	grep -qF -- "$2" <<<"$out" || fail "$1: no '$2' in: $out"
	pass "$1 is refused: $2"
}

plant_obj dht planted 'extern void node_free(void *); void dht_planted(void) { node_free(0); }'
expect "a call into node/" "userspace/dht/planted.c: uses node_free of module node (rank 14), which is not below dht (rank 4)"
rm "$tmp/obj/userspace/dht/planted.o"

plant_obj engine planted 'extern int dhtnode_port(void *); int engine_planted(void) { return dhtnode_port(0); }'
expect "a call up the ladder" "userspace/engine/planted.c: uses dhtnode_port of module dhtnode (rank 5), which is not below engine (rank 3)"
rm "$tmp/obj/userspace/engine/planted.o"

plant_obj dht planted 'extern void guard_free(void *); void dht_planted(void) { guard_free(0); }'
expect "a call sideways within one rank" "userspace/dht/planted.c: uses guard_free of module xdp (rank 4), which is not below dht (rank 4)"
rm "$tmp/obj/userspace/dht/planted.o"

plant_obj dht planted 'int foo_planted(void) { return 1; }'
expect "an exported symbol without a prefix" "userspace/dht/planted.c: exports foo_planted, which carries none of module dht's prefixes"
rm "$tmp/obj/userspace/dht/planted.o"

internal=$(nm -P --defined-only -g "$tmp"/obj/userspace/quic/*.o | awk '$1 ~ /^qn_/ && $2 == "T" {print $1; exit}')
[ -n "$internal" ] || fail "no internal qn_ function in quic's objects to plant a use of"
plant_obj dash planted "extern void $internal(void); void dash_planted(void) { $internal(); }"
expect "a use of another module's internal prefix" "userspace/dash/planted.c: uses $internal, internal to module quic"
rm "$tmp/obj/userspace/dash/planted.o"

plant_obj common planted_a 'extern int util_planted_b(int); int util_planted_a(int n) { return n ? util_planted_b(n - 1) : 0; }'
plant_obj common planted_b 'extern int util_planted_a(int); int util_planted_b(int n) { return n ? util_planted_a(n - 1) : 1; }'
expect "a call cycle between the files of a module" "userspace/common/: call cycle between userspace/common/planted_a.c userspace/common/planted_b.c"
rm "$tmp/obj/userspace/common/planted_a.o" "$tmp/obj/userspace/common/planted_b.o"

printf '#include "store/store_int.h"\n' >"$tmp/top/userspace/dht/planted.c"
expect "another module's private header" "userspace/dht/planted.c:1: includes module store's private header store/store_int.h"
printf '#include "weft/config.h"\nstruct weft_config *c;\n' >"$tmp/top/userspace/dht/planted.c"
expect "the node layer's header below it" "userspace/dht/planted.c:1: includes the node layer's weft/config.h"
expect "struct weft_config below node/" "userspace/dht/planted.c:2: names struct weft_config"
rm "$tmp/top/userspace/dht/planted.c"

for i in $(seq 1201); do echo "/* $i */"; done >"$tmp/top/userspace/io/planted.c"
expect "a file over 1,200 lines" "userspace/io/planted.c: 1201 lines, over 1200"
rm "$tmp/top/userspace/io/planted.c"

mkdir "$tmp/top/userspace/newmod"
expect "a module missing from the ladder" "userspace/newmod/: module not in the Modules table of docs/ARCHITECTURE.md"
rmdir "$tmp/top/userspace/newmod"

out=$(check 2>&1) || fail "the copy does not pass again once every plant is gone: $out"
finish
