#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""An HTTP/1.1 keep-alive backend for test_svc_passthru.sh (python3
http.server, protocol_version HTTP/1.1): counts the connections it accepts
(ACCEPTS_FILE rewritten at each accept) and answers by path:
  /n/<any>     200, "n<any>\\n" (Content-Length)
  /echo        200, the request body back (POST)
  /chunked     200, BODY in chunks of 1, 7, 4096, 65536 bytes and the
               rest, with chunk extensions and a trailer
  /close       200 "bye" with Connection: close
  /drop        200 "bye", then closes without saying so
  /nocontent   204
  /notmod      304 with an ETag
  /garbage     a head with "Transfer-Encoding: gzip", then closes
  /hugehead    a head of 80 KiB
  /stall       nothing for 20 s
  /hop         200 with hop-by-hop headers and one named by Connection
HEAD on any path: the head of GET without the body.
Usage: svc_passthru_backend.py PORT ACCEPTS_FILE BODY_FILE (BODY written there)"""
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, ACCEPTS = int(sys.argv[1]), sys.argv[2]
BODY = bytes(range(256)) * 800  # 204800 bytes
with open(sys.argv[3], "wb") as f:
    f.write(BODY)
lock = threading.Lock()
accepts = 0


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def get_request(self):
        global accepts
        c, a = super().get_request()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with lock:
            accepts += 1
            with open(ACCEPTS + ".tmp", "w") as f:
                f.write(str(accepts))
            os.replace(ACCEPTS + ".tmp", ACCEPTS)
        return c, a


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body, headers=(), send_body=True):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body and status not in (204, 304):
            self.wfile.write(body)

    def route(self, head):
        p = self.path
        if p.startswith("/n/"):
            self.reply(200, ("n%s\n" % p[3:]).encode(), send_body=not head)
        elif p == "/echo":
            n = int(self.headers.get("Content-Length", "0"))
            self.reply(200, self.rfile.read(n), send_body=not head)
        elif p == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Framing", "chunked")
            self.end_headers()
            if head:
                return
            off = 0
            for n in (1, 7, 4096, 65536, len(BODY)):
                part = BODY[off:off + n]
                if not part:
                    break
                self.wfile.write(b"%x;ext=1\r\n" % len(part) + part + b"\r\n")
                self.wfile.flush()
                off += len(part)
            self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
        elif p == "/close":
            self.reply(200, b"bye", [("Connection", "close")], send_body=not head)
        elif p == "/drop":
            self.reply(200, b"bye", send_body=not head)
            self.close_connection = True
        elif p == "/nocontent":
            self.reply(204, b"")
        elif p == "/notmod":
            self.reply(304, b"", [("ETag", '"v1"')])
        elif p == "/garbage":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxxxx")
            self.close_connection = True
        elif p == "/hugehead":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * (80 << 10) + b"\r\n\r\n")
            self.close_connection = True
        elif p == "/stall":
            time.sleep(20)
            self.close_connection = True
        elif p == "/hop":
            self.reply(200, b"hop", [("Connection", "X-Secret"), ("X-Secret", "1"),
                                     ("Keep-Alive", "timeout=60"), ("X-End", "e")],
                       send_body=not head)
        else:
            self.reply(404, b"no\n", send_body=not head)

    def do_GET(self):
        self.route(False)

    def do_POST(self):
        self.route(False)

    def do_HEAD(self):
        self.route(True)


Server(("127.0.0.1", PORT), H).serve_forever()
