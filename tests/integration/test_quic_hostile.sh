#!/bin/bash
# SPDX-License-Identifier: MIT
# What other QUIC implementations send and weft never does, against a real
# weftd on loopback: crafted datagrams (draft-29, ngtcp2's provisional v2,
# RFC 9369 v2, reserved and unknown versions in every long packet type,
# 255-byte ids, VN packets, Retry / 0-RTT / Handshake / small Initials to
# the server, tiny and truncated long headers, coalesced garbage, short
# headers) from Python; weftd must answer Version Negotiation (ids swapped,
# v1 listed) exactly where RFC 9000 says (long header, other version,
# datagram >= 1200 bytes) and nothing else, and stay up. Then ngtcp2's own
# client (Debian ngtcp2-client) dials weftd starting in draft-29 and in v2:
# it gets VN, moves to v1, and weftd answers it in v1 (the handshake then
# ends on weft's ALPN, which gtlsclient does not speak). The original
# defect: one such Initial made weftd abort inside ngtcp2.
set -u
. "$TOP/tests/lib/common.sh"

prologue
api() { curl -s --unix-socket "$D/weftd.sock" "http://weftd$1"; }

start_weftd "$D" --state-dir "$D" --quic-port $QP --dht-port $DP --io uring
PID=$WEFTD_PID

"$PYTHON" - "$QP" >"$D/craft.out" 2>&1 <<'EOF' || { cat "$D/craft.out"; fail "crafted datagrams: $(tail -1 "$D/craft.out")"; }
import os, socket, struct, sys

port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
dst = ("127.0.0.1", port)

def longhdr(first, version, dcid, scid, total):
    h = bytes([first]) + struct.pack(">I", version) + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    return h + os.urandom(max(0, total - len(h)))

def replies(pkt, wait):
    s.settimeout(wait)
    s.sendto(pkt, dst)
    got = []
    try:
        while True:
            got.append(s.recv(65536))
            s.settimeout(0.05)
    except socket.timeout:
        pass
    return got

def check_vn(r, dcid, scid):
    assert r[0] & 0x80, "VN without the long-header bit"
    assert r[1:5] == b"\0\0\0\0", "VN version field is not 0: %s" % r[1:5].hex()
    dl = r[5]
    assert r[6:6 + dl] == scid, "VN DCID is not our SCID"
    sl = r[6 + dl]
    assert r[7 + dl:7 + dl + sl] == dcid, "VN SCID is not our DCID"
    rest = r[7 + dl + sl:]
    assert rest and len(rest) % 4 == 0, "VN version list malformed"
    vs = [struct.unpack(">I", rest[i:i + 4])[0] for i in range(0, len(rest), 4)]
    assert 1 in vs, "VN does not list QUIC v1: %s" % [hex(v) for v in vs]
    return vs

n_vn = 0
# Other versions, every long packet type, client-Initial-sized: VN.
for v in (0xff00001d, 0x709a50c4, 0x6b3343cf, 0x1a2a3a4a, 0xff000020, 0x00000002, 0x51303530):
    for first in (0xc0, 0xd0, 0xe0, 0xf0):
        dcid, scid = os.urandom(8), os.urandom(8)
        got = replies(longhdr(first, v, dcid, scid, 1200), 2.0)
        assert len(got) == 1, "version %#x type %#x: %d answers" % (v, first, len(got))
        check_vn(got[0], dcid, scid)
        n_vn += 1
        # One byte short of a client Initial: no answer (no amplification).
        assert not replies(longhdr(first, v, dcid, scid, 1199), 0.2), "VN to 1199 bytes (%#x)" % v
# Ids of 255 bytes (legal in versions we do not know) come back whole.
dcid, scid = os.urandom(255), os.urandom(255)
got = replies(longhdr(0xc0, 0x1a2a3a4a, dcid, scid, 1300), 2.0)
assert len(got) == 1, "255-byte ids: %d answers" % len(got)
check_vn(got[0], dcid, scid)
n_vn += 1
print("VN for", n_vn, "datagrams, v1 listed, ids swapped")

silent = {
    "VN packet": longhdr(0x80, 0, os.urandom(8), os.urandom(8), 1200),
    "VN packet listing v1": longhdr(0x80, 0, os.urandom(8), os.urandom(8), 23)[:23] + b"\0\0\0\1",
    "v1 Retry to a server": longhdr(0xf0, 1, os.urandom(8), os.urandom(8), 1200),
    "v1 0-RTT, tiny": longhdr(0xd0, 1, os.urandom(8), os.urandom(8), 40),
    "v1 0-RTT, 1200": longhdr(0xd0, 1, os.urandom(8), os.urandom(8), 1200),
    "v1 Handshake": longhdr(0xe0, 1, os.urandom(8), os.urandom(8), 1200),
    "v1 Initial, 500 bytes": longhdr(0xc0, 1, os.urandom(8), os.urandom(8), 500),
    "v1 ids over 20 bytes": longhdr(0xc0, 1, os.urandom(21), os.urandom(8), 1200),
    "draft-29, 100 bytes": longhdr(0xc0, 0xff00001d, os.urandom(8), os.urandom(8), 100),
}
for n in range(1, 8):
    silent["long header cut to %d bytes" % n] = longhdr(0xc0, 0xff00001d, b"\1" * 8, b"\2" * 8, 30)[:n]
silent["DCID length past the end"] = bytes([0xc0, 0xff, 0, 0, 0x1d, 250]) + os.urandom(200)
silent["coalesced garbage"] = b"".join(
    longhdr(f, v, os.urandom(4), os.urandom(4), 60)
    for f, v in [(0xf0, 1), (0x80, 0), (0xe0, 1), (0xd0, 1)] * 5)
for name, pkt in silent.items():
    got = replies(pkt, 0.3)
    assert not got, "%s: answered (%d bytes)" % (name, len(got[0]))
# A v1 Initial of garbage (may make a connection that never completes)
# and a short header for no connection (maybe a stateless reset, itself a
# short header, never a VN).
for pkt in (longhdr(0xc0, 1, os.urandom(8), os.urandom(8), 1200), bytes([0x40]) + os.urandom(1199)):
    for r in replies(pkt, 0.3):
        assert not (r[0] & 0x80), "long-header answer to %s" % pkt[:1].hex()
print("silent where it must be:", len(silent), "cases")
print("VN_TOTAL", n_vn)
EOF
kill -0 "$PID" 2>/dev/null || fail "weftd died on crafted datagrams"
NVN=$(grep VN_TOTAL "$D/craft.out" | cut -d' ' -f2)
[ "$(api /v1/quic/stats | json_get total version_negotiations)" -ge "$NVN" ] ||
	fail "VN counter below $NVN: $(api /v1/quic/stats)"
pass "$(head -1 "$D/craft.out"); $(sed -n 2p "$D/craft.out"); weftd up"

# ngtcp2's client starting in draft-29 and in v2: VN, then v1.
if [ -x /usr/bin/gtlsclient ]; then
	for v in 0xff00001d v2draft; do
		timeout -k 2 15 /usr/bin/gtlsclient --version=$v --preferred-versions=$v,v1 \
			--handshake-timeout=5s --timeout=5s --exit-on-first-stream-close \
			127.0.0.1 $QP "https://127.0.0.1:$QP/" >"$D/gtls.$v" 2>&1
		kill -0 "$PID" 2>/dev/null || fail "weftd died on gtlsclient --version=$v"
		grep -q "type=VN" "$D/gtls.$v" || fail "$v: no Version Negotiation: $(tail -5 "$D/gtls.$v")"
		grep -q "pkt rx .*version=0x00000001 type=Initial" "$D/gtls.$v" ||
			fail "$v: weftd did not answer in v1 after VN: $(grep 'pkt rx' "$D/gtls.$v" | tail -3)"
	done
	pass "gtlsclient in draft-29 and v2: VN, then weftd answers in v1"
else
	fail "gtlsclient (ngtcp2-client) missing: run tools/deps.sh install"
fi

curl -sf --unix-socket "$D/weftd.sock" http://weftd/v1/status >/dev/null || fail "status after the run"
stop_weftd "$PID" || fail "weftd did not stop cleanly (sanitizer report?)"
finish
