# SPDX-License-Identifier: MIT
"""Lossy, reordering UDP relay for tests (the kernel here has no sch_netem).

    lossy_relay.py LISTEN_ADDR LISTEN_PORT TARGET_ADDR TARGET_PORT \
        [--loss 0.05] [--reorder 0.10] [--delay-ms 1,5] [--seed 1] [--stats FILE]

Datagrams from any client to LISTEN go to TARGET from one upstream socket;
replies go back to the client that sent last. In each direction every
datagram is dropped with probability --loss; of the rest, a share --reorder
is held back for a random delay in --delay-ms (so later datagrams overtake
it). Decisions come from random.Random(seed): the same seed gives the same
sequence of decisions. Counters are written to --stats as JSON every 0.5 s
and on SIGTERM / SIGINT.
"""
import argparse
import heapq
import json
import os
import random
import select
import signal
import socket
import sys
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("listen_addr")
    ap.add_argument("listen_port", type=int)
    ap.add_argument("target_addr")
    ap.add_argument("target_port", type=int)
    ap.add_argument("--loss", type=float, default=0.05)
    ap.add_argument("--reorder", type=float, default=0.10)
    ap.add_argument("--delay-ms", default="1,5")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stats", default="")
    a = ap.parse_args()
    dmin, dmax = (float(x) / 1000.0 for x in a.delay_ms.split(","))
    rnd = random.Random(a.seed)

    down = socket.socket(family(a.listen_addr), socket.SOCK_DGRAM)
    down.bind((a.listen_addr, a.listen_port))
    up = socket.socket(family(a.target_addr), socket.SOCK_DGRAM)
    up.connect((a.target_addr, a.target_port))
    for s in (down, up):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setblocking(False)
    st = {"fwd": 0, "back": 0, "dropped": 0, "delayed": 0, "sent": 0}
    held = []  # heap of (release time, seq, socket, data, address)
    seq = 0
    client = None
    stop = False
    last_stats = 0.0

    def write_stats():
        if a.stats:
            with open(a.stats + ".tmp", "w") as f:
                json.dump(st, f)
            os.replace(a.stats + ".tmp", a.stats)

    def on_signal(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def send(sock, data, addr):
        try:
            if addr is None:
                sock.send(data)
            else:
                sock.sendto(data, addr)
            st["sent"] += 1
        except OSError:
            st["dropped"] += 1

    def relay(sock, data, addr):
        nonlocal seq
        r = rnd.random()
        if r < a.loss:
            st["dropped"] += 1
            return
        if rnd.random() < a.reorder:
            st["delayed"] += 1
            seq += 1
            heapq.heappush(held, (time.monotonic() + rnd.uniform(dmin, dmax), seq, sock,
                                  data, addr))
            return
        send(sock, data, addr)

    while not stop:
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, sock, data, addr = heapq.heappop(held)
            send(sock, data, addr)
        timeout = max(0.0, held[0][0] - now) if held else 0.5
        try:
            rd, _, _ = select.select([down, up], [], [], timeout)
        except InterruptedError:
            continue
        for _ in range(64):
            got = False
            if down in rd:
                try:
                    data, client = down.recvfrom(65535)
                    st["fwd"] += 1
                    relay(up, data, None)
                    got = True
                except BlockingIOError:
                    pass
            if up in rd:
                try:
                    data = up.recv(65535)
                    st["back"] += 1
                    if client is not None:
                        relay(down, data, client)
                    got = True
                except (BlockingIOError, ConnectionRefusedError):
                    pass
            if not got:
                break
        if now - last_stats >= 0.5:
            last_stats = now
            write_stats()
    write_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main())
