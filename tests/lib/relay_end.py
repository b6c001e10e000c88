# SPDX-License-Identifier: MIT
"""One end of a relay circuit, for namespace tests and bench/relay.sh.

  relay_end.py echo RELAY_IP PORT TOKEN N      bind, then echo every datagram
                                               back until 5 s pass without one
  relay_end.py ping RELAY_IP PORT TOKEN N SIZE bind, then send N datagrams of
                                               SIZE bytes one at a time, each
                                               echoed by the other end; checks
                                               every byte; a datagram not echoed
                                               within 1 s is sent again (10 s
                                               deadline each); prints
                                               "ok N resent R"
Binds as docs/PROTOCOL.md "Relay bind" says: a STUN Binding request with
WEFT-CIRCUIT (0xC057) = token and FINGERPRINT, retried after 200, 400,
800 ms ... until a 5 s deadline. Every receive has a deadline.
"""
import os
import socket
import struct
import sys
import time
import zlib


def bind_msg(tok, tid):
    m = struct.pack(">HHI", 1, 28, 0x2112A442) + tid + struct.pack(">HH", 0xC057, 16) + tok
    fp = zlib.crc32(m) ^ 0x5354554E
    return m + struct.pack(">HHI", 0x8028, 4, fp)


def do_bind(s, relay, tok):
    tid = os.urandom(12)
    msg = bind_msg(tok, tid)
    deadline = time.monotonic() + 5.0
    wait = 0.2
    while time.monotonic() < deadline:
        s.sendto(msg, relay)
        s.settimeout(min(wait, max(0.01, deadline - time.monotonic())))
        try:
            while True:
                data, src = s.recvfrom(2048)
                if src == relay and len(data) >= 20 and data[0:2] == b"\x01\x01" and data[8:20] == tid:
                    return
        except socket.timeout:
            wait *= 2
    sys.exit("relay_end: bind not answered within 5 s")


def main():
    role, ip, port, tok, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4]), int(sys.argv[5])
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 0))
    relay = (ip, port) if fam == socket.AF_INET else (ip, port, 0, 0)
    do_bind(s, relay, tok)
    print("bound", flush=True)
    if role == "echo":
        s.settimeout(20.0)  # the other end binds and starts within this
        while True:
            try:
                data, src = s.recvfrom(65535)
            except socket.timeout:
                return
            s.settimeout(5.0)
            if data[:1] == b"\x01":  # a late bind answer: not data
                continue
            s.sendto(data, relay)
    size = int(sys.argv[6])
    ok = resent = 0
    for i in range(n):
        payload = (b"\x40" + struct.pack(">I", i) + bytes((i + k) & 0xFF for k in range(size)))[:size]
        s.sendto(payload, relay)
        deadline = time.monotonic() + 10.0
        again = time.monotonic() + 1.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                sys.exit("relay_end: datagram %d not echoed within 10 s (ok %d)" % (i, ok))
            if now >= again:  # lost on a loaded machine: once more
                s.sendto(payload, relay)
                resent += 1
                again = now + 1.0
            s.settimeout(max(0.01, min(again, deadline) - now))
            try:
                data, src = s.recvfrom(65535)
            except socket.timeout:
                continue
            if src[0] == relay[0] and src[1] == port and data == payload:
                ok += 1
                break
    print("ok", ok, "resent", resent, flush=True)


if __name__ == "__main__":
    main()
