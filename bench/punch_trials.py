# SPDX-License-Identifier: MIT
"""Trials of bench/punch.sh: dial a node by key, TRIALS times, through one
weftd's control socket, and print one TSV line per trial.

    punch_trials.py SOCK PAIR KEY TRIALS WAIT [DIRECT_PREFIX]

Each trial is `POST /v1/quic/ping {"addr": KEY, "keep": true}`: the record
lookup, the relay circuit, the QUIC handshake and one echo. Its answer gives
the time from the call to the first byte back (first_byte_us) and to the
address dialled (resolve_us); the connection it kept (conn) is then looked
up in /v1/quic/conns: its path's since_connect_ms (from its first Initial
to the switch) plus resolve_us is the time from the dial to the direct
path. Trials start at least 1.05 s apart, so that a dialler whose record
cache lives 1 s (node.resolve_cache_ttl_s=1) looks the record up in the DHT
every time. WAIT 1: wait (25 s at most) for each trial's outcome before the
next; WAIT 0: dial all, then wait (40 s at most) for every outcome (pairs
whose NATs allow no direct path: each fails only after its third attempt,
+15 s). Every wait has a deadline; a trial still undecided at it is
reported "relayed". With DIRECT_PREFIX (e.g. "[2001:db8:15::2]:"), a
trial is "direct" only when its path's direct address starts with it (an
IPv6 pair: a path that stays on IPv4 is reported "direct_other"; WAIT 1
polls until the address matches or the deadline).

Output, tab-separated, one line per trial:
    trial PAIR I FIRST_BYTE_MS DIRECT_MS OUTCOME RELAYED_RTT_MS RESOLVE_MS HANDSHAKE_MS
DIRECT_MS is -1 unless OUTCOME is "direct"; RELAYED_RTT_MS is the ping's
echo round trip (on the circuit: the punch starts after it).
"""
import http.client
import json
import socket
import sys
import time


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("weftd", timeout=60)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.unix_path)
        self.sock = s


def call(sock, method, url, body=None):
    c = UnixHTTP(sock)
    try:
        c.request(method, url, body=None if body is None else json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data else None
    finally:
        c.close()


def paths(sock, ids):
    """{conn id: path object} for the ids still listed."""
    st, o = call(sock, "GET", "/v1/quic/conns")
    if st != 200:
        return {}
    return {c["id"]: (c.get("path") or {}) for c in o["conns"] if c["id"] in ids}


PREFIX = ""


def settled(p):
    if p.get("state") == "direct":
        return p.get("direct", "").startswith(PREFIX)
    return p.get("state") == "failed"


def main():
    global PREFIX
    sock, pair, key, trials, wait = sys.argv[1:6]
    PREFIX = sys.argv[6] if len(sys.argv) > 6 else ""
    trials, wait = int(trials), int(wait)
    done = []  # (i, ping answer, path)
    pending = []
    last = 0.0
    for i in range(trials):
        gap = last + 1.05 - time.monotonic()
        if gap > 0:
            time.sleep(gap)
        last = time.monotonic()
        st, o = call(sock, "POST", "/v1/quic/ping", {"addr": key, "keep": True, "timeout_ms": 15000})
        if st != 200:
            print(f"trial {i}: ping {key[:16]}... failed: {st} {o}", file=sys.stderr)
            done.append((i, None, {}))
            continue
        if not wait:
            pending.append((i, o))
            continue
        end = time.monotonic() + 25
        p = {}
        while time.monotonic() < end:
            p = paths(sock, {o["conn"]}).get(o["conn"], {})
            if settled(p):
                break
            time.sleep(0.05)
        done.append((i, o, p))
    end = time.monotonic() + 40
    while pending:
        ps = paths(sock, {o["conn"] for _, o in pending})
        if all(settled(ps.get(o["conn"], {})) for _, o in pending) or time.monotonic() >= end:
            done += [(i, o, ps.get(o["conn"], {})) for i, o in pending]
            pending = []
        else:
            time.sleep(0.2)
    for i, o, p in sorted(done, key=lambda t: t[0]):
        if o is None:
            print(f"trial\t{pair}\t{i}\t-1\t-1\terror\t-1\t-1\t-1")
            continue
        state = p.get("state")
        outcome = state if state in ("direct", "failed") else "relayed"
        if outcome == "direct" and not p.get("direct", "").startswith(PREFIX):
            outcome = "direct_other"
        direct_ms = -1.0
        if outcome == "direct" and "since_connect_ms" in p:
            direct_ms = o["resolve_us"] / 1000 + p["since_connect_ms"]
        print(f"trial\t{pair}\t{i}\t{o['first_byte_us'] / 1000:.1f}\t{direct_ms:.1f}\t{outcome}\t"
              f"{o['rtt_us'] / 1000:.1f}\t{o['resolve_us'] / 1000:.1f}\t{o['handshake_us'] / 1000:.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
