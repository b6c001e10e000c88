#!/bin/bash
# SPDX-License-Identifier: MIT
# mailbox (issue 34): an anchor holding a message for each of 10,000
# recipients: memory and disk per message, fetch p99 (bench/bench_mailbox.c).
# Usage: bench/mailbox.sh [RECIPIENTS [BODY]]
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_mailbox"
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
"$B" "${1:-10000}" "${2:-1024}"
