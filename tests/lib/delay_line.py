# SPDX-License-Identifier: MIT
"""One-way delay between two interfaces, for namespace tests (the kernel here
has no sch_netem; tc's other qdiscs cannot hold a packet for a time).

    delay_line.py SLOW_IF FAST_IF DELAY_MS [--stats FILE]

Run in the namespace that holds both interfaces, neither of them enslaved
to a bridge. Every Ethernet frame received on SLOW_IF goes out FAST_IF
DELAY_MS later (a FIFO: the delay is constant, order is kept); every frame
received on FAST_IF goes out SLOW_IF at once. Frames larger than the
1500-byte MTU (GSO super-frames: turn GSO off on the sender's side) are
dropped and counted. Counters are written to --stats as JSON on SIGTERM /
SIGINT. The queue is bounded (65536 frames, then drops are counted).
"""
import argparse
import collections
import json
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 3
PACKET_OUTGOING = 4
QUEUE_MAX = 65536
FRAME_MAX = 1514


def open_if(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    s.bind((name, 0))
    s.setblocking(False)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("slow_if")
    ap.add_argument("fast_if")
    ap.add_argument("delay_ms", type=float)
    ap.add_argument("--stats")
    a = ap.parse_args()
    slow, fast = open_if(a.slow_if), open_if(a.fast_if)
    delay = a.delay_ms / 1000.0
    q = collections.deque()
    st = {"delayed": 0, "passed": 0, "dropped_big": 0, "dropped_full": 0, "send_err": 0}
    done = []

    def stop(*_):
        done.append(1)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not done:
        now = time.monotonic()
        while q and q[0][0] <= now:
            try:
                fast.send(q.popleft()[1])
            except OSError:
                st["send_err"] += 1
        timeout = max(0.0, q[0][0] - now) if q else 0.5
        try:
            r, _, _ = select.select([slow, fast], [], [], timeout)
        except InterruptedError:
            continue
        for s in r:
            for _ in range(64):
                try:
                    frame, addr = s.recvfrom(65536)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own transmissions, seen again
                if len(frame) > FRAME_MAX:
                    st["dropped_big"] += 1
                    continue
                if s is slow:
                    if len(q) >= QUEUE_MAX:
                        st["dropped_full"] += 1
                        continue
                    q.append((time.monotonic() + delay, frame))
                    st["delayed"] += 1
                else:
                    try:
                        slow.send(frame)
                        st["passed"] += 1
                    except OSError:
                        st["send_err"] += 1
    if a.stats:
        with open(a.stats, "w") as f:
            json.dump(st, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
