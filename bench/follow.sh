#!/bin/bash
# SPDX-License-Identifier: MIT
# Following a share (issue 31): time from a publisher's update to every one
# of 20 subscribers holding the new version, in a 21-node weftlab lab
# (network namespaces, release weftd; docs/LAB.md "Following a share").
# The subscribers poll the head at the default content.poll_s (300 s) and
# are told of a new version by the publisher over QUIC (the push): that is
# run A. The reference, in the same lab right after, is run B, the best
# polling can do: every subscriber asked to poll every 0.25 s
# (`weftlab run follow --sync`), so each learns of the version within a
# quarter second, by the DHT. Each run: version 1 on subscribe, then
# UPDATES versions of an 8 MiB file (1 MiB rewritten each). Printed: per
# version t50/t90/t100 of both runs, and the ratio of the t100 means.
# Usage: bench/follow.sh [SUBSCRIBERS [UPDATES]]   (needs root)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
K=${1:-20}
N=${2:-3}
[ "$(id -u)" = 0 ] || { echo "bench follow: needs root (network namespaces)"; exit 77; }
[ -x "$BUILD/weftd" ] || { echo "build $BUILD/weftd first"; exit 1; }
LAB=$(mktemp -d "${TMPDIR:-/tmp}/weft-bench-follow-XXXXXX")
LABCMD=("$TOP/tools/weftlab" --dir "$LAB")
export WEFTD="$BUILD/weftd" WEFTCTL="$BUILD/weftctl"
cleanup() {
	"${LABCMD[@]}" down >/dev/null 2>&1
	rm -rf "$LAB"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

START=$(date -u +%FT%TZ)
echo "follow: $((K + 1)) nodes, $K subscribers, $N updates; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
"${LABCMD[@]}" up --nodes $((K + 1)) >"$LAB/up.log" 2>&1 || {
	tail -20 "$LAB/up.log"
	exit 1
}
for run in push sync; do
	extra=()
	[ $run = sync ] && extra=(--sync)
	"${LABCMD[@]}" run follow --subscribers "$K" --updates "$N" --timeout 600 "${extra[@]}" \
		>"$LAB/$run.log" 2>&1 || {
		tail -20 "$LAB/$run.log"
		exit 1
	}
	cp "$LAB/results/follow.json" "$LAB/$run.json"
	sed -n '/^poll interval/,$p' "$LAB/$run.log"
done
STARTED=$START /usr/bin/python3 "$TOP/bench/follow_result.py" "$LAB/push.json" "$LAB/sync.json" "$K" "$N"
