#!/bin/bash
# SPDX-License-Identifier: MIT
# bash completion for weftctl: sourced, driven through COMP_WORDS and
# COMP_CWORD: nouns, verbs, flags, and service names and share ids from a
# running weftd.
set -u
. "$TOP/tests/lib/common.sh"
. "$TOP/tools/completion/weftctl"

prologue
# The words are completed with the release weftctl: each completion runs
# `weftctl --help`, hundreds of times here, ~0.1 s each in the ASan build
# (its exit's leak scan) against a few ms; the ASan weftctl is exercised by
# every other test.
WC=${WEFTCTL_REL:-$WEFTCTL}

# comp_with FN WORD...: complete the last word with FN; prints COMPREPLY
# one per line. comp: weftctl's, lcomp: weftlab's.
comp_with() {
	local fn=$1
	shift
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	"$fn"
	printf '%s\n' "${COMPREPLY[@]}"
}
comp() { comp_with _weftctl "$@"; }
has() { grep -qx -- "$2" <<<"$1" || fail "completion lacks '$2': $(echo $1)"; }

out=$(comp "$WC" "")
for w in ban content dht status svc xdp --json --socket; do has "$out" "$w"; done
out=$(comp "$WC" s)
[ "$(echo $out)" = "share status svc" ] || fail "prefix s: $(echo $out)"
out=$(comp "$WC" svc "")
for w in publish unpublish ls find call stats; do has "$out" "$w"; done
out=$(comp "$WC" dht g)
[ "$(echo $out)" = "get get-peers" ] || fail "dht g: $(echo $out)"
out=$(comp "$WC" xdp limits --unval-)
[ "$(echo $out)" = "--unval-quic --unval-initial --unval-dht --unval-stun" ] || fail "xdp limits: $(echo $out)"
out=$(comp "$WC" svc publish x --b)
has "$out" --backend
# every noun and verb of weftctl's own usage text is offered
while read -r noun verbs; do
	[ -n "$noun" ] || continue # a usage line's continuation
	has "$(comp "$WC" "")" "$noun"
	for v in ${verbs//|/ }; do
		has "$(comp "$WC" "$noun" "")" "$v"
	done
done < <("$WC" --help | sed -n 's/^  weftctl \([a-z-]*\) \{0,1\}\([a-z|-]*\).*/\1 \2/p' | sort -u)
pass "nouns, verbs and flags (every command of weftctl --help)"

start_weftd "$D" --state-dir "$D" --quic-port $QP --dht-port $DP
"$WEFTCTL" --socket "$SOCK" svc publish echo --backend builtin >/dev/null || fail "publish"
echo hello >"$D/f"
"$WEFTCTL" --socket "$SOCK" content add --name f "$D/f" >/dev/null || fail "content add"
sid=$("$WEFTCTL" --socket "$SOCK" --json content ls | json_get shares 0 share_id) || fail "no share"
out=$(comp "$WC" --socket "$SOCK" svc call "")
has "$out" echo
out=$(comp "$WC" --socket "$SOCK" svc unpublish ec)
[ "$(echo $out)" = echo ] || fail "unpublish ec: $(echo $out)"
out=$(comp "$WC" --socket "$SOCK" share show "")
has "$out" "$sid"
out=$(comp "$WC" --socket "$SOCK" content get "${sid:0:6}")
[ "$(echo $out)" = "$sid" ] || fail "content get prefix: $(echo $out)"
pass "service names and share ids from the running daemon"
stop_weftd "$WEFTD_PID" || fail "stop"

# weftlab: its completion is generated from its argparse parser (make);
# the built one is what a fresh generation gives, and offers every command
# (sim too), every scenario of run and of sim (as weftlab --help lists
# them), and options
make --no-print-directory -C "$TOP" BUILD="$BUILD" "$BUILD/completion/weftlab" >/dev/null ||
	fail "make $BUILD/completion/weftlab failed"
(cd "$TOP/tools/pylib" && "$PYTHON" -B -m weftlab.completion) >"$D/weftlab.comp" ||
	fail "weftlab.completion failed"
cmp -s "$D/weftlab.comp" "$BUILD/completion/weftlab" || fail "the built weftlab completion is stale"
. "$BUILD/completion/weftlab"
lcomp() { comp_with _weftlab "$@"; }
help=$("$PYTHON" "$TOP/tools/weftlab" --help)
cmds=$(sed -n 's/^  weftlab \[--dir DIR\] \([a-z]*\).*/\1/p' <<<"$help" | sort -u)
has "$cmds" sim
[ "$(wc -w <<<"$cmds")" -ge 7 ] || fail "weftlab --help lists only: $(echo $cmds)"
out=$(lcomp weftlab --dir "$D" "")
for w in $cmds; do has "$out" "$w"; done
out=$(lcomp weftlab run "")
for w in $(sed -n 's/^  weftlab \[--dir DIR\] run \([a-z0-9]*\).*/\1/p' <<<"$help"); do
	has "$out" "$w"
done
for w in $(sed -n 's/^  weftlab \[--dir DIR\] sim .* \([a-z|]*|[a-z|]*\) .*/\1/p' <<<"$help" | tr '|' ' '); do
	has "$(lcomp weftlab sim --nodes 10 "")" "$w"
done
has "$(lcomp weftlab sim --nodes 10 lookups --l)" --lookups
out=$(lcomp weftlab up --n)
[ "$(echo $out)" = "--nodes --nat" ] || fail "weftlab up --n: $(echo $out)"
out=$(lcomp weftlab run distribute --s)
has "$out" --size
[ "$(lcomp weftlab --dir "$D" st)" = status ] || fail "weftlab --dir D st"
for c in $cmds; do
	[ -n "$(lcomp weftlab "$c" --)" ] || fail "weftlab $c: no options offered"
done
pass "weftlab: every command (sim too), every scenario, options"
finish
