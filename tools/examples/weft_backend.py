#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Example weft service backend (docs/SERVICE.md, "Backend contract").

weftd forwards each call to its backend as an HTTP/1.1 request on a
keep-alive connection:

    POST /<method> HTTP/1.1
    Weft-Service: <service>
    Weft-Caller: <the caller's node key, 64 hex>
    Weft-Request-Id: <32 hex>
    Weft-Deadline: <milliseconds left>
    Weft-Caller-Assertion: v1 t=<unix ms> sig=<128 hex>
    Content-Length: <n>

The answer's HTTP status is the call's status (2xx ok, 4xx the caller's
fault, 5xx ours). This backend checks the caller's assertion with
verify_assertion() (a dozen lines, PyNaCl = Debian python3-nacl) and does
not have to trust weftd or the network in between.

Methods: whoami (JSON: who called, checked), echo (the body back),
status/NNN (answers NNN), stats (JSON counters: connections, requests,
verified, rejected; not checked). Every other method: 404.

    weft_backend.py --listen 127.0.0.1:8090          # or --unix /path
    weftctl svc publish app --backend tcp:127.0.0.1:8090
    weft_backend.py --self-test                      # the documented vector
"""
import argparse
import hashlib
import http.server
import json
import os
import socket
import socketserver
import sys
import threading
import time
from collections import OrderedDict

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

DOMAIN = b"weft-call-assert-v1\n"
SKEW_MS = 300_000  # accepted distance between the assertion's time and ours


def assertion_message(service, method, request_id, body, t_ms):
    """The signed byte string (docs/SERVICE.md, "Caller assertions")."""
    s, m = service.encode(), method.encode()
    return (DOMAIN + bytes([len(s)]) + s + bytes([len(m)]) + m + request_id +
            hashlib.sha256(body).digest() + t_ms.to_bytes(8, "big"))


def verify_assertion(headers, method, body, now_ms=None):
    """Check Weft-Caller-Assertion; return the caller's key (hex) or raise
    ValueError saying why not."""
    caller = headers.get("Weft-Caller", "")
    rid = headers.get("Weft-Request-Id", "")
    service = headers.get("Weft-Service", "")
    parts = headers.get("Weft-Caller-Assertion", "").split(" ")
    if len(parts) != 3 or parts[0] != "v1" or not parts[1].startswith("t=") or \
            not parts[2].startswith("sig="):
        raise ValueError("no assertion")
    try:
        t = int(parts[1][2:])
        sig = bytes.fromhex(parts[2][4:])
        key = VerifyKey(bytes.fromhex(caller))
        rid_b = bytes.fromhex(rid)
    except ValueError as e:
        raise ValueError("malformed: %s" % e)
    if len(sig) != 64 or len(rid_b) != 16:
        raise ValueError("malformed")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now - t) > SKEW_MS:
        raise ValueError("assertion outside the time window")
    try:
        key.verify(assertion_message(service, method, rid_b, body, t), sig)
    except BadSignatureError:
        raise ValueError("bad signature")
    return caller


class Replays:
    """Request ids seen within the time window (bounded): a backend that
    must not run one signed request twice refuses a repeat."""

    def __init__(self, cap=100_000):
        self.seen, self.cap, self.lock = OrderedDict(), cap, threading.Lock()

    def fresh(self, rid, now_ms):
        with self.lock:
            while self.seen and (len(self.seen) >= self.cap or
                                 next(iter(self.seen.values())) < now_ms - 2 * SKEW_MS):
                self.seen.popitem(last=False)
            if rid in self.seen:
                return False
            self.seen[rid] = now_ms
            return True


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {"connections": 0, "requests": 0, "verified": 0, "rejected": 0}

    def add(self, k):
        with self.lock:
            self.c[k] += 1

    def json(self):
        with self.lock:
            return json.dumps(self.c).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: weftd reuses the connection

    def setup(self):
        super().setup()
        if self.request.family != socket.AF_UNIX:
            # head and body leave in two writes: without this, Nagle holds
            # the body until weftd's delayed ACK (40 ms a call)
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.stats.add("connections")

    def log_message(self, *args):
        pass

    def answer(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        st = self.server.stats
        st.add("requests")
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if n else b""
        method = self.path[1:]
        if method == "stats":
            return self.answer(200, st.json())
        try:
            caller = verify_assertion(self.headers, method, body)
        except ValueError as e:
            st.add("rejected")
            return self.answer(401, json.dumps({"error": str(e)}).encode())
        if self.server.replays is not None and not self.server.replays.fresh(
                self.headers["Weft-Request-Id"], int(time.time() * 1000)):
            st.add("rejected")
            return self.answer(409, b'{"error": "replayed request id"}')
        st.add("verified")
        if method == "whoami":
            return self.answer(200, json.dumps({
                "caller": caller, "verified": True,
                "service": self.headers.get("Weft-Service"), "method": method,
                "request_id": self.headers.get("Weft-Request-Id"),
                "deadline_ms": int(self.headers.get("Weft-Deadline", "0")),
                "version": self.headers.get("Weft-Service-Version")}).encode())
        if method == "echo":
            return self.answer(200, body, "application/octet-stream")
        if method.startswith("status/") and method[7:].isdigit():
            return self.answer(int(method[7:]), b'{"error": "as asked"}')
        return self.answer(404, b'{"error": "no such method"}')


class TCPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def self_test():
    """The test vector of docs/SERVICE.md, checked as a backend would."""
    from nacl.signing import SigningKey
    sk = SigningKey(bytes(range(32)))
    rid = bytes.fromhex("00112233445566778899aabbccddeeff")
    t = 1700000000000
    msg = assertion_message("echo", "ping", rid, b"hi", t)
    want = ("776566742d63616c6c2d6173736572742d76310a046563686f0470696e67"
            "00112233445566778899aabbccddeeff"
            "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
            "0000018bcfe56800")
    sig = ("40b86aadcb3feb98cfbc29e441cdce14e9e042beb3ff74beb5abaffcf9b70cf8"
           "394b81722ed36c325c5baca17e07e109abd3e8d1ad85df91bb1d2868a2f0c50b")
    assert msg.hex() == want, msg.hex()
    assert sk.sign(msg).signature.hex() == sig
    h = {"Weft-Caller": bytes(sk.verify_key).hex(),
         "Weft-Caller-Assertion": "v1 t=%d sig=%s" % (t, sig),
         "Weft-Request-Id": rid.hex(), "Weft-Service": "echo"}
    assert verify_assertion(h, "ping", b"hi", now_ms=t + 1000) == \
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    for method, body, now in (("pong", b"hi", t), ("ping", b"ho", t),
                              ("ping", b"hi", t + SKEW_MS + 1)):
        try:
            verify_assertion(h, method, body, now_ms=now)
        except ValueError:
            continue
        raise AssertionError("accepted %s %s %d" % (method, body, now))
    print("self-test: vector and verification ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", help="HOST:PORT")
    ap.add_argument("--unix", help="unix socket path")
    ap.add_argument("--reject-replays", action="store_true",
                    help="answer 409 to a request id seen before")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if a.unix:
        if os.path.exists(a.unix):
            os.unlink(a.unix)
        srv = UnixServer(a.unix, Handler)
    elif a.listen:
        host, port = a.listen.rsplit(":", 1)
        srv = TCPServer((host, int(port)), Handler)
    else:
        ap.error("--listen or --unix")
    srv.stats = Stats()
    srv.replays = Replays() if a.reject_replays else None
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
