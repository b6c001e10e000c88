#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs the benchmark harnesses (bench/*.sh), each printing its own table of
# weft vs the reference in the same run, with ratios. Never part of make test.
# Harnesses built on bench/benchlib.h also write one JSON result each into
# $BUILD/bench/runs/<UTC time>/; bench/report.py then writes
# $BUILD/bench/report.md with PNG plots from that run's results (docs/BENCH.md).
# Usage: bench/run.sh [NAME...]   e.g. bench/run.sh blake3 xdp
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
export TOP BUILD PYTHON=/usr/bin/python3
WEFT_BENCH_DIR="$BUILD/bench/runs/$(date -u +%Y%m%dT%H%M%SZ)"
WEFT_BENCH_COMMIT=$(git -C "$TOP" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
export WEFT_BENCH_DIR WEFT_BENCH_COMMIT
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
if compgen -G "$WEFT_BENCH_DIR/*.json" >/dev/null; then
	"$PYTHON" "$TOP/bench/report.py" --out "$BUILD/bench" "$WEFT_BENCH_DIR" || rc=1
else
	echo "no JSON results in this run (harnesses without bench/benchlib.h print tables only)"
fi
exit $rc
