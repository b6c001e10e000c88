#!/bin/bash
# SPDX-License-Identifier: MIT
# gcm (issue 29, the crypto): one QUIC packet's AES-128-GCM, weft's
# userspace/quic/gcm.c at each width this CPU runs against GnuTLS's
# gnutls_aead_cipher_encrypt / _decrypt (bench/bench_gcm.c), pinned to
# the last CPU. Usage: bench/gcm.sh [ROUNDS]
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
B="$BUILD/bench/bench_gcm"
[ -x "$B" ] || { echo "build $B first (make bench)"; exit 1; }
exec taskset -c "$(($(nproc) - 1))" "$B" "${1:-7}"
