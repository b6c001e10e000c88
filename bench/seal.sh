#!/bin/bash
# SPDX-License-Identifier: MIT
# seal (issue 28): wrap and unwrap for 500 recipients, a group record for
# 500 members (a rotation), segment encryption (bench/bench_seal.c).
# Usage: bench/seal.sh [ROUNDS]
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_seal"
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
"$B" "${1:-5}"
