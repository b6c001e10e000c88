#!/bin/bash
# SPDX-License-Identifier: MIT
# A refusal during the handshake reaches the dialler as the precise error,
# in a small server Initial (RFC 9000 14.1: a server's Initial carrying
# only ACK or CONNECTION_CLOSE need not be padded to 1200 bytes), through
# the whole receive path of a weftd: the software policer (io_uring) and
# the XDP program (--xdp, generic mode). Two namespaces joined by a veth:
#  - weftd 2 takes one connection per source address; a second dial from
#    weftd 1 is refused (CONNECTION_REFUSED in a small Initial): the ping
#    fails with "refused", not with a timeout;
#  - ngtcp2's gtlsserver (HTTP/3 only) closes weft's dial for want of a
#    common ALPN (TLS alert 120, error 0x178, in a small Initial): the ping
#    fails with "handshake_failed", not with a timeout.
# Before, both small Initials were dropped on the dialler's side and every
# refusal became a 5 s timeout.
. "$TOP/tests/lib/common.sh"
prologue netns 2 pair
[ -x /usr/sbin/gtlsserver ] || fail "gtlsserver (ngtcp2-server) missing: run tools/deps.sh install"
command -v openssl >/dev/null || fail "openssl missing"
IP2=$(netns_ip4 2)
api() { local n=$1 m=$2 p=$3; shift 3; curl -s --unix-socket "$D/n$n/weftd.sock" -X "$m" "http://weftd$p" "$@"; }
ping2() { api 1 POST /v1/quic/ping -d "{\"peer\":\"$1\",\"keep\":true,\"timeout_ms\":8000}"; }

# An HTTP/3 server with an ordinary certificate, on node 2's address.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=h3 -keyout "$D/key.pem" -out "$D/cert.pem" >/dev/null 2>&1 || fail "openssl"
mkdir -p "$D/www"
netns_exec 2 /usr/sbin/gtlsserver -q -d "$D/www" "$IP2" 4443 "$D/key.pem" "$D/cert.pem" \
	>"$D/gtlsserver.log" 2>&1 &
GPID=$!
netns_on_exit "kill_job -TERM $GPID"
wait_for "netns_exec 2 ss -Huln | grep -q ':4443 '" 100 || fail "gtlsserver did not listen: $(cat "$D/gtlsserver.log")"

for mode in uring xdp; do
	netns_weftd 1 "$mode" "$D" --workers 1
	netns_weftd 2 "$mode" "$D" --workers 1 --set quic.max_conns_per_addr=1
	WEFTD_LOG=$LOG1
	grep -q "io $mode" "$LOG1" || fail "$mode: node 1 did not run the $mode backend: $(grep ready "$LOG1")"
	K2=$(api 2 GET /v1/status | json_get node_key)

	out=$(ping2 "$K2@$IP2")
	[ "$(echo "$out" | json_get peer_key 2>/dev/null)" = "$K2" ] || fail "$mode: first dial: $out"
	out=$(ping2 "$K2@$IP2")
	code=$(echo "$out" | json_get error code 2>/dev/null)
	[ "$code" = refused ] || fail "$mode: second dial (over the limit) ended with \"$code\", want refused: $out"
	[ "$(api 2 GET /v1/quic/stats | json_get total drop_limit)" -ge 1 ] || fail "$mode: node 2 did not count the refusal"
	pass "$mode: a refused dial fails at once as refused (CONNECTION_REFUSED in a small Initial)"

	out=$(ping2 "$IP2:4443")
	code=$(echo "$out" | json_get error code 2>/dev/null)
	[ "$code" = handshake_failed ] ||
		fail "$mode: dial to an h3-only server ended with \"$code\", want handshake_failed: $out"
	pass "$mode: an h3-only server's ALPN close (0x178, small Initial) fails the dial as handshake_failed"

	kill -0 "$PID1" && kill -0 "$PID2" || fail "$mode: a weftd died"
	stop_weftd "$PID1" || fail "$mode: node 1 did not stop cleanly"
	stop_weftd "$PID2" || fail "$mode: node 2 did not stop cleanly"
	rm -rf "$D/n1" "$D/n2"
done
finish
