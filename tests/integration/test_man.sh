#!/bin/bash
# SPDX-License-Identifier: MIT
# Man pages: weftd(8), weftctl(8), weft.conf(5), weftlab(1) render without a warning;
# every key of docs/CONFIG.md is in weft.conf(5), every weftctl verb (from
# weftctl's own usage text) and every weftd flag in their pages, every
# weftlab command (from weftlab --help) in weftlab(1).
set -u
. "$TOP/tests/lib/common.sh"
prologue
command -v man >/dev/null || fail "man missing (man-db)"
make --no-print-directory -C "$TOP" BUILD="$BUILD" man >/dev/null || fail "make man failed"
M="$BUILD/man"
# Each page is rendered once (man takes ~0.1 s a page) and searched
# from the file.
for p in weftd.8 weftctl.8 weft.conf.5 weftlab.1; do
	w=$(MANWIDTH=80 man --warnings -l "$M/$p" 2>&1 >/dev/null)
	[ -z "$w" ] || fail "$p: warnings: $w"
	MANWIDTH=200 man -l "$M/$p" >"$D/$p.txt" 2>/dev/null
	grep -q . "$D/$p.txt" || fail "$p renders empty"
done
render() { cat "$D/$1.txt"; }
pass "four pages render without warnings"

keys=$(sed -n '/^## Keys/,/^## Files/p' "$TOP/docs/CONFIG.md" |
	grep -o '^| `[a-z_]*\.[a-z_0-9]*`\(, `[a-z_]*\.[a-z_0-9]*`\)*' | grep -o '[a-z_]*\.[a-z_0-9]*')
n=0
for k in $keys; do
	render weft.conf.5 | grep -qF "$k" || fail "weft.conf(5) lacks $k"
	n=$((n + 1))
done
[ $n -ge 40 ] || fail "only $n keys found in docs/CONFIG.md"
pass "weft.conf(5) has all $n keys of docs/CONFIG.md"

verbs=0
while read -r noun verb _; do
	[ -n "$noun" ] || continue
	render weftctl.8 | grep -q "weftctl $noun${verb:+ $verb}" || fail "weftctl(8) lacks '$noun $verb'"
	verbs=$((verbs + 1))
done < <("$WEFTCTL_REL" --help | sed -n 's/^  weftctl \([a-z-]*\) \{0,1\}\([a-z|-]*\).*/\1 \2/p')
[ $verbs -ge 30 ] || fail "only $verbs weftctl commands found"
for f in $("$WEFTD_REL" --help | grep -o '\-\-[a-z-]*' | sort -u); do
	render weftd.8 | grep -q -- "$f" || fail "weftd(8) lacks $f"
done
pass "weftctl(8) has all $verbs commands, weftd(8) every flag"

lab=0
while read -r verb rest; do
	render weftlab.1 | grep -qF -- "weftlab [--dir DIR] $verb" || fail "weftlab(1) lacks '$verb'"
	lab=$((lab + 1))
done < <("$PYTHON" "$TOP/tools/weftlab" --help | sed -n 's/^  weftlab \[--dir DIR\] \([a-z]*\( [a-z0-9]*\)\{0,1\}\).*/\1/p')
[ $lab -ge 12 ] || fail "only $lab weftlab commands found"
for v in up down status report top bootstrap lookups churn distribute services flood; do
	render weftlab.1 | grep -q "$v" || fail "weftlab(1) lacks $v"
done
pass "weftlab(1) has all $lab commands"
finish
