#!/bin/bash
# SPDX-License-Identifier: MIT
# QUIC: handshakes per server CPU-second and bulk throughput of one
# connection, weft (weftd client and server) vs quic-go (Debian's quic-go
# 0.29, bench/quicgo/quicgo_bench.go, client and server) vs kernel TCP
# (iperf3, bulk), on loopback and on a veth pair between two namespaces
# (root; there weft also over AF_XDP), all in one run: build/bench/bench_quic
# (bench/bench_quic.c).
# Same work (written in full at the top of bench/bench_quic.c and into the
# JSON result): long-running processes on both sides, TLS 1.3 with
# AES-128-GCM and X25519, Ed25519 certificates both ways, no tickets, no
# Retry, a handshake counted once a 32-byte echo came back, server pinned to
# CPU 1 and client to CPU 0, bulk to a discard stream with the same windows;
# ratios only between figures of this run.
#   usage: bench/quic.sh [COUNT (default 2000) [WINDOW (32) [BYTES (1 GiB)]]]
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
for t in "$BUILD/weftd" "$BUILD/bench/bench_quic" go iperf3 curl; do
	command -v "$t" >/dev/null || {
		echo "SKIP: bench/quic.sh needs $t (make bench; apt golang-go golang-github-lucas-clemente-quic-go-dev iperf3 curl)"
		exit 77
	}
done
QGO=$BUILD/bench/quicgo_bench
# Offline build against Debian's Go sources (GOPATH mode, no module fetch).
GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOCACHE="${WEFT_GOCACHE:-$BUILD/gocache}" \
	go build -o "$QGO" "$TOP/bench/quicgo/quicgo_bench.go" || { echo "building $QGO failed"; exit 1; }
exec "$BUILD/bench/bench_quic" "$QGO" "$@"
