#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A DHT node's answer time, sampled: BEP 5 pings to HOST PORT every
# INTERVAL_MS until SIGTERM (or SECONDS), one outstanding at a time is not
# required: each ping has its own transaction id, a reply is matched to
# its ping, one not answered within 2 s counts as lost. Prints one JSON
# object: count, lost, and the round trip's p50 / p90 / p99 / max in ms.
# bench/serve_disk.sh uses it to see whether a seed's engine worker is
# held by something (a chunk read waiting on the disk) while it serves.
# Usage: dhtping.py HOST PORT [INTERVAL_MS [SECONDS]]
import json
import os
import select
import signal
import socket
import sys
import time

host, port = sys.argv[1], int(sys.argv[2])
interval = (float(sys.argv[3]) if len(sys.argv) > 3 else 10.0) / 1000.0
limit = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
LOST_S = 2.0

stop = False


def on_term(signum, frame):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
sock.connect((host, port))
nid = os.urandom(20)
sent = {}
rtts = []
lost = 0
seq = 0
start = time.monotonic()
next_send = start
while not stop and not (limit and time.monotonic() - start > limit):
    now = time.monotonic()
    if now >= next_send:
        tid = seq.to_bytes(4, "big")
        seq += 1
        msg = b"d1:ad2:id20:" + nid + b"e1:q4:ping1:t4:" + tid + b"1:y1:qe"
        sent[tid] = now
        try:
            sock.send(msg)
        except OSError:
            pass
        next_send += interval
        if next_send < now:
            next_send = now + interval
        for t in [t for t, at in sent.items() if now - at > LOST_S]:
            del sent[t]
            lost += 1
    wait = max(0.0, next_send - time.monotonic())
    try:
        r, _, _ = select.select([sock], [], [], wait)
    except InterruptedError:
        continue
    if not r:
        continue
    try:
        data = sock.recv(2048)
    except OSError:
        continue
    got = time.monotonic()
    i = data.find(b"1:t4:")
    if i < 0:
        continue
    tid = data[i + 5:i + 9]
    at = sent.pop(tid, None)
    if at is not None:
        rtts.append((got - at) * 1000.0)
lost += len(sent)
rtts.sort()


def pct(p):
    if not rtts:
        return None
    return rtts[min(len(rtts) - 1, int(p / 100.0 * len(rtts)))]


print(json.dumps({"count": seq, "answered": len(rtts), "lost": lost, "p50_ms": pct(50),
                  "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": rtts[-1] if rtts else None}))
