#!/bin/bash
# SPDX-License-Identifier: MIT
# An independent QUIC stack against weftd: quic-go (Debian's
# golang-github-lucas-clemente-quic-go-dev 0.29, built offline here into
# tests/interop/quicgo_dial.go) dials a weftd on loopback starting in
# draft-29 and in v2 (0x709a50c4) with v1 as its fallback: weftd answers
# Version Negotiation, quic-go moves to v1, the handshake completes (Ed25519
# client certificate, ALPN weft/1) and 32 bytes come back on an echo
# stream. Offering only draft-29 or only v2 fails cleanly on quic-go's side.
# weftd stays up throughout: one draft-29 Initial from quic-go used to
# abort it inside ngtcp2 (conn_write_pkt: negotiated_version assertion).
set -u
. "$TOP/tests/lib/common.sh"

command -v go >/dev/null && [ -d /usr/share/gocode/src/github.com/lucas-clemente/quic-go ] ||
	fail "golang-go / golang-github-lucas-clemente-quic-go-dev missing: run tools/deps.sh install"
prologue
# Offline build against Debian's Go sources (GOPATH mode, no module fetch).
GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOCACHE="${WEFT_GOCACHE:-$BUILD/gocache}" \
	go build -o "$D/quicgo_dial" "$TOP/tests/interop/quicgo_dial.go" >"$D/go.log" 2>&1 ||
	fail "building the quic-go client: $(tail -5 "$D/go.log")"

api() { curl -s --unix-socket "$D/weftd.sock" "http://weftd$1"; }
start_weftd "$D" --state-dir "$D" --quic-port $QP --dht-port $DP --io uring
PID=$WEFTD_PID

for vs in draft29,v1 v2,v1 v1; do
	out=$(timeout -k 2 20 "$D/quicgo_dial" "127.0.0.1:$QP" "$vs" 2>&1)
	kill -0 "$PID" 2>/dev/null || fail "weftd died on quic-go offering $vs"
	[ "$out" = "ok version=0x1" ] || fail "quic-go offering $vs: $out"
done
[ "$(api /v1/quic/stats | json_get total version_negotiations)" -ge 2 ] ||
	fail "no Version Negotiation counted: $(api /v1/quic/stats)"
pass "quic-go starting in draft-29 and in v2: VN, then v1, handshake and echo"

for vs in draft29 v2; do
	out=$(timeout -k 2 20 "$D/quicgo_dial" "127.0.0.1:$QP" "$vs" 2>&1) && fail "quic-go offering only $vs connected: $out"
	echo "$out" | grep -q "server offered \[v1\]" || fail "quic-go offering only $vs: $out"
	kill -0 "$PID" 2>/dev/null || fail "weftd died on quic-go offering only $vs"
done
pass "quic-go offering only draft-29 or v2: told v1 is offered, weftd up"
# A peer presenting a node's certificate without holding its key: the
# certificate (key B, validly self-signed) is signed for, in the TLS
# CertificateVerify, by another key. weftd must refuse the handshake and
# never record key B as a peer (verify_cb reads the key from the
# certificate; the CertificateVerify check by that key is what binds it).
out=$(timeout -k 2 20 "$D/quicgo_dial" "127.0.0.1:$QP" v1 forged 2>"$D/forged.err") &&
	fail "quic-go with a certificate whose key it does not hold connected: $out"
keyB=$(sed -n 's/^certificate key //p' "$D/forged.err")
[ ${#keyB} -eq 64 ] || fail "no certificate key printed: $(cat "$D/forged.err")"
# The client's side completes first (it sent its Finished); weftd answers
# the bad CertificateVerify with TLS alert decrypt_error (51): QUIC error
# 0x133, seen by the dial or by the echo that follows it.
echo "$out" | grep -q "CRYPTO_ERROR (0x133)" || fail "forged CertificateVerify: $out"
api /v1/quic/conns | grep -qi "$keyB" && fail "key $keyB recorded as a peer: $(api /v1/quic/conns)"
kill -0 "$PID" 2>/dev/null || fail "weftd died on a forged CertificateVerify"
pass "a certificate signed for by another key (forged CertificateVerify) is refused"
stop_weftd "$PID" || fail "weftd did not stop cleanly (sanitizer report?)"
finish
