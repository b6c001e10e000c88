#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs the benchmark harnesses (bench/*.sh), each printing its own table of
# weft vs the reference in the same run, with ratios. Never part of make test.
# Usage: bench/run.sh [NAME...]   e.g. bench/run.sh blake3 xdp
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
export TOP BUILD PYTHON=/usr/bin/python3
rc=0
for s in "$TOP"/bench/*.sh; do
	name=$(basename "$s" .sh)
	[ "$name" = run ] && continue
	if [ $# -gt 0 ]; then
		case " $* " in *" $name "*) ;; *) continue ;; esac
	fi
	echo "=== bench: $name ($(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r))"
	bash "$s" || { echo "bench $name failed"; rc=1; }
	echo
done
exit $rc
