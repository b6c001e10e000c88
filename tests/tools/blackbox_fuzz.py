#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Black-box fuzzing of a running weftd from outside (docs/FUZZING.md,
"A live daemon fuzzed from outside"; issue 30, item 4).

Mutates real traffic and throws it at a live daemon's ports, checking after
every batch that the daemon still answers on each of them:

  DHT (UDP)      KRPC queries and replies: the seeds of tests/fuzz/corpus/
                 fuzz_krpc plus every query kind built here (ping, find_node,
                 get_peers, announce_peer, get, put, replies, errors);
  QUIC (UDP)     Initials weftd itself sent (captured: the daemon is asked to
                 ping a socket of ours, POST /v1/quic/ping), short-header
                 packets, and STUN Binding requests (the QUIC port answers
                 STUN);
  relay ports (UDP, with --relay-ports)
                 circuit binds (the 48-byte STUN Binding with WEFT-CIRCUIT
                 and FINGERPRINT of docs/PROTOCOL.md "Relay bind": valid
                 CRCs with unknown tokens, broken ones), plain STUN and
                 raw datagrams to every port of the relay range (no
                 circuit is latched: tokens are the daemon's secret);
  control, gateway, dashboard (HTTP)
                 requests of each kind (routes, JSON bodies from tests/fuzz/
                 corpus/fuzz_ctl_json, gateway heads from fuzz_gw_head,
                 WebSocket upgrades), mutated at the byte level and at the
                 HTTP level (lengths, duplicate headers, huge lines, chunked
                 garbage).

Datagrams come from many loopback source addresses (127.a.b.c, a new one
every --per-source datagrams) so that per-source budgets do not drop most of
them before they are parsed; the liveness probe uses a source of its own.
Liveness after each batch: GET /v1/status on the control socket answers 200,
a KRPC ping gets its reply, the gateway and the dashboard answer a request
with an HTTP status line. Exit 0 when every check held, 1 otherwise; a JSON
report on stdout (counts per kind and target, statuses, checks, seconds).

Deterministic for a given --seed. Uses only the standard library.
"""
import argparse
import concurrent.futures as cf
import json
import os
import random
import socket
import struct
import sys
import time
import zlib

# ------------------------------------------------------------------ bencode


def benc(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, (bytes, bytearray)):
        return b"%d:%s" % (len(x), bytes(x))
    if isinstance(x, list):
        return b"l" + b"".join(benc(v) for v in x) + b"e"
    if isinstance(x, dict):
        out = b"d"
        for k in sorted(x, key=lambda k: k.encode() if isinstance(k, str) else k):
            out += benc(k) + benc(x[k])
        return out + b"e"
    raise TypeError(type(x))


# ------------------------------------------------------------------ seeds


def krpc_seeds(rnd, corpus):
    nid = lambda: bytes(rnd.getrandbits(8) for _ in range(20))
    t = lambda: bytes(rnd.getrandbits(8) for _ in range(2))
    q = lambda m, a: benc({"t": t(), "y": "q", "q": m, "a": dict(a, id=nid())})
    seeds = [
        q("ping", {}),
        q("find_node", {"target": nid()}),
        q("find_node", {"target": nid(), "want": ["n4", "n6"]}),
        q("get_peers", {"info_hash": nid()}),
        q("get_peers", {"info_hash": nid(), "noseed": 1, "scrape": 1}),
        q("announce_peer", {"info_hash": nid(), "port": 6881, "token": b"tokn1234",
                            "implied_port": 1}),
        q("get", {"target": nid(), "seq": 3}),
        q("put", {"v": b"hello", "token": b"tokn1234"}),
        q("put", {"v": b"record", "k": os.urandom(32), "sig": os.urandom(64), "seq": 9,
                  "salt": b"weft:node", "cas": 8, "token": b"tokn1234"}),
        q("sample_infohashes", {"target": nid()}),
        benc({"t": t(), "y": "r", "r": {"id": nid(), "nodes": os.urandom(26 * 8)}}),
        benc({"t": t(), "y": "r", "r": {"id": nid(), "values": [os.urandom(6)] * 4,
                                        "token": b"abcd"}}),
        benc({"t": t(), "y": "e", "e": [201, "A Generic Error"]}),
        benc({"t": t(), "y": "q", "q": "ping", "a": {"id": nid()}, "ro": 1, "v": b"LT\x01\x02"}),
    ]
    seeds += read_dir(os.path.join(corpus, "fuzz_krpc"))
    return seeds


def stun_seeds(rnd):
    def msg(typ, attrs=b""):
        tid = bytes(rnd.getrandbits(8) for _ in range(12))
        return struct.pack("!HHI", typ, len(attrs), 0x2112A442) + tid + attrs

    software = struct.pack("!HH", 0x8022, 4) + b"weft"
    fingerprint = struct.pack("!HHI", 0x8028, 4, 0x12345678)
    return [msg(0x0001), msg(0x0001, software), msg(0x0001, software + fingerprint),
            msg(0x0101, struct.pack("!HHBBH4s", 0x0020, 8, 0, 1, 0x1234, b"\x01\x02\x03\x04")),
            msg(0x0011)]


def relay_seeds(rnd):
    def bind(token, crc_ok=True):
        tid = bytes(rnd.getrandbits(8) for _ in range(12))
        head = struct.pack("!HHI", 0x0001, 28, 0x2112A442) + tid + struct.pack("!HH", 0xC057, 16) + token
        crc = (zlib.crc32(head) ^ 0x5354554E) & 0xFFFFFFFF
        if not crc_ok:
            crc ^= 1
        return head + struct.pack("!HHI", 0x8028, 4, crc)
    seeds = [bind(os.urandom(16)) for _ in range(6)] + [bind(bytes(16)), bind(os.urandom(16), False)]
    seeds += [stun_seeds(rnd)[0], os.urandom(1), os.urandom(48), os.urandom(1200)]
    return seeds


def quic_seeds(rnd, captured, corpus):
    seeds = list(captured)
    for _ in range(4):  # short header: fixed bit, spin/key phase, a DCID, payload
        seeds.append(bytes([0x40 | rnd.getrandbits(6)]) + os.urandom(8) + os.urandom(40))
    # long headers of other types and versions (version negotiation, 0-RTT, retry)
    for first in (0xC0, 0xD0, 0xE0, 0xF0):
        seeds.append(bytes([first]) + struct.pack("!I", 1) + b"\x08" + os.urandom(8) +
                     b"\x08" + os.urandom(8) + os.urandom(60))
    seeds.append(b"\x80" + b"\x00\x00\x00\x00" + b"\x08" + os.urandom(8) + b"\x08" + os.urandom(8))
    seeds += [s for s in read_dir(os.path.join(corpus, "fuzz_quic_ep")) if len(s) < 1400]
    return seeds


def read_dir(d):
    out = []
    try:
        for f in sorted(os.listdir(d)):
            with open(os.path.join(d, f), "rb") as fh:
                out.append(fh.read(4096))
    except OSError:
        pass
    return out


def http_seeds(corpus, gw_host, dash_host):
    bodies = read_dir(os.path.join(corpus, "fuzz_ctl_json")) or [b"{}"]
    host = b"weftd"
    req = lambda m, p, body=b"", extra=b"": (
        b"%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n%s" %
        (m, p, host, extra, len(body), body))
    ctl = [req(b"GET", b"/v1/status"), req(b"GET", b"/v1/dht/status"),
           req(b"GET", b"/metrics"), req(b"GET", b"/v1/quic/conns"),
           req(b"GET", b"/v1/svc/find/echo"), req(b"GET", b"/v1/content/jobs"),
           req(b"GET", b"/v1/node/resolve?key=" + b"ab" * 32)]
    for b in bodies[:12]:
        for p in (b"/v1/node/resolve", b"/v1/svc/publish", b"/v1/svc/call", b"/v1/content/get",
                  b"/v1/quic/ping", b"/v1/dht/get", b"/v1/relay/connect", b"/v1/bans"):
            ctl.append(req(b"POST", p, b))
    host = gw_host
    gw = [req(b"GET", b"/"), req(b"POST", b"/mesh/v1/call/echo/ping", b"hello"),
          req(b"GET", b"/mesh/v1/find/echo"),
          b"POST /ping HTTP/1.1\r\nHost: echo.localhost:" + gw_host.split(b":")[-1] +
          b"\r\nContent-Length: 5\r\n\r\nhello",
          b"GET /mesh/v1/ws/echo/x HTTP/1.1\r\nHost: " + gw_host + b"\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          b"Sec-WebSocket-Version: 13\r\n\r\n\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
          b"POST / HTTP/1.1\r\nHost: echo.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"5\r\nhello\r\n0\r\n\r\n"]
    gw += read_dir(os.path.join(corpus, "fuzz_gw_head"))
    host = dash_host
    dash = [req(b"GET", b"/"), req(b"GET", b"/app.js"), req(b"GET", b"/app.css"),
            req(b"GET", b"/api/stats"), req(b"GET", b"/events")]
    return {"ctl": ctl, "gateway": gw, "dashboard": dash}


# ------------------------------------------------------------------ mutators

INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x3A, 0x65, 0x69, 0x30, 0x39]


def mutate(rnd, data, pool):
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(11)
        n = len(b)
        if op == 0 and n:  # flip a bit
            i = rnd.randrange(n)
            b[i] ^= 1 << rnd.randrange(8)
        elif op == 1 and n:  # random byte
            b[rnd.randrange(n)] = rnd.getrandbits(8)
        elif op == 2 and n:  # interesting byte
            b[rnd.randrange(n)] = rnd.choice(INTERESTING)
        elif op == 3:  # insert random bytes
            i = rnd.randrange(n + 1)
            b[i:i] = os.urandom(rnd.choice((1, 2, 4, 16, 64)))
        elif op == 4 and n > 1:  # delete a range
            i = rnd.randrange(n)
            del b[i:i + rnd.randint(1, max(1, n // 4))]
        elif op == 5 and n > 1:  # duplicate a range
            i = rnd.randrange(n)
            j = min(n, i + rnd.randint(1, 32))
            b[j:j] = b[i:j]
        elif op == 6 and n:  # truncate
            del b[rnd.randrange(n):]
        elif op == 7:  # splice with another seed
            o = rnd.choice(pool)
            if o:
                i, j = rnd.randrange(len(b) + 1), rnd.randrange(len(o))
                b = b[:i] + bytearray(o[j:])
        elif op == 8:  # a number in the text (bencode length, Content-Length) made huge
            digits = [i for i in range(n) if 0x30 <= b[i] <= 0x39]
            if digits:
                i = rnd.choice(digits)
                b[i:i + 1] = rnd.choice((b"4294967295", b"18446744073709551616", b"-1",
                                         b"99999999", b"0"))
        elif op == 9 and n >= 2:  # a 16-bit field (STUN, QUIC lengths) set to an edge
            i = rnd.randrange(n - 1)
            b[i:i + 2] = struct.pack("!H", rnd.choice((0, 1, 0x7FFF, 0x8000, 0xFFFF, n)))
        else:  # append random
            b += os.urandom(rnd.randint(1, 32))
    return bytes(b[:65000])


def http_mutate(rnd, req, pool):
    r = rnd.random()
    if r < 0.5:
        return mutate(rnd, req, pool)
    head, _, body = req.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    c = rnd.randrange(8)
    if c == 0:
        lines.append(b"Content-Length: " + rnd.choice((b"-5", b"99999999999", b"1e3", b"", b" 7")))
    elif c == 1:
        lines.append(b"X-Long: " + b"a" * rnd.choice((1000, 9000, 70000)))
    elif c == 2:
        lines += [b"Host: other.localhost", b"Host: \x00"]
    elif c == 3:
        lines.append(b"Transfer-Encoding: chunked")
        body = rnd.choice((b"zz\r\nabc\r\n", b"ffffffffffffffff\r\n", b"5\r\nab", b"0\r\n"))
    elif c == 4:
        lines[0] = rnd.choice((b"GET", b"POST", b"PUT", b"DELETE", b"\x00\x01", b"GET " * 50)) + \
            b" " + rnd.choice((b"/" + b"../" * 30, b"/%00%ff", b"*", b"http://x/", b"/v1/" + b"a" * 5000)) + \
            b" " + rnd.choice((b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b"", b"HTTP/1.1 extra"))
    elif c == 5:
        lines.insert(1, b"Upgrade: websocket")
        lines.insert(1, b"Connection: Upgrade")
    elif c == 6:
        lines = lines[:rnd.randint(0, len(lines))]
    else:
        lines.append(b"Expect: 100-continue")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# ------------------------------------------------------------------ targets


def hostport(s):
    h, _, p = s.rpartition(":")
    return h.strip("[]"), int(p)


def http_exchange(target, data, timeout, whole=False):
    """Send data to target (("unix", path) or ("tcp", (host, port))); what
    came back: up to the status line's end, or (whole) until the peer
    closed; None when it refused the connection."""
    kind, where = target
    s = socket.socket(socket.AF_UNIX if kind == "unix" else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(where)
    except OSError:
        s.close()
        return None
    got = b""
    try:
        s.sendall(data)
        while whole or len(got) < 65536:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            if not whole and b"\r\n" in got:
                break
    except OSError:
        pass
    finally:
        s.close()
    return got


def http_once(target, data, timeout):
    """The status line's code (as a string) of data's answer, "noreply" or
    "refused"."""
    got = http_exchange(target, data, timeout)
    if got is None:
        return "refused"
    if got.startswith(b"HTTP/1.") and len(got) >= 12:
        return got[9:12].decode("latin-1")
    return "noreply" if not got else "other"


def krpc_ping(addr, src, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    msg = benc({"t": b"lv", "y": "q", "q": "ping", "a": {"id": b"L" * 20}})
    try:
        for _ in range(3):
            s.sendto(msg, addr)
            try:
                d, _ = s.recvfrom(2048)
                if b"1:y1:r" in d:
                    return True
            except socket.timeout:
                continue
        return False
    finally:
        s.close()


def stun_ping(addr, src, timeout):
    """A STUN Binding request to the QUIC port answered by a success
    response with our transaction id, retransmitted as a STUN client does
    (RFC 8489 7.2.1: after 0.5 s, then twice that) within timeout: one
    request is a datagram the daemon may rightly drop (its unvalidated
    STUN budget, which this harness's own flood of STUN spends)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tid = os.urandom(12)
    req = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid
    end = time.monotonic() + timeout
    rto = 0.5
    try:
        s.bind((src, 0))
        while time.monotonic() < end:
            s.sendto(req, addr)
            retx = min(end, time.monotonic() + rto)
            rto *= 2
            while time.monotonic() < retx:
                s.settimeout(max(0.01, retx - time.monotonic()))
                try:
                    data, _ = s.recvfrom(2048)
                except socket.timeout:
                    break
                if len(data) >= 20 and data[:2] == b"\x01\x01" and data[8:20] == tid:
                    return True
    except OSError:
        return False
    finally:
        s.close()
    return False


def policer_counts(ctl):
    """The daemon's STUN drop counters (GET /metrics over the control
    socket), for a failure's report: what a lost STUN answer ran into."""
    got = http_exchange(("unix", ctl),
                        b"GET /metrics HTTP/1.1\r\nHost: weftd\r\nConnection: close\r\n\r\n",
                        5, whole=True) or b""
    return [l for l in got.decode("latin-1", "replace").splitlines()
            if "stun" in l.lower() and not l.startswith("#")]


def capture_initials(ctl, timeout=2.0):
    """Ask the daemon to ping a socket of ours: its Initials, as sent."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    port = s.getsockname()[1]
    body = json.dumps({"addr": "127.0.0.1:%d" % port, "timeout_ms": 1000}).encode()
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(timeout + 2)
    out = []
    try:
        c.connect(ctl)
        c.sendall(b"POST /v1/quic/ping HTTP/1.1\r\nHost: weftd\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(out) < 4:
            try:
                d, _ = s.recvfrom(65536)
                out.append(d)
            except socket.timeout:
                pass
    except OSError:
        pass
    finally:
        c.close()
        s.close()
    return out


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dht", required=True, help="HOST:PORT of the DHT")
    ap.add_argument("--quic", required=True, help="HOST:PORT of QUIC (and STUN)")
    ap.add_argument("--ctl", required=True, help="the control socket's path")
    ap.add_argument("--gateway", help="HOST:PORT of the gateway")
    ap.add_argument("--dashboard", help="HOST:PORT of the dashboard")
    ap.add_argument("--relay-ports", help="LO-HI: the relay's port range (a --relay daemon)")
    ap.add_argument("--datagrams", type=int, default=20000)
    ap.add_argument("--http", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=5000, help="datagrams between liveness checks")
    ap.add_argument("--http-batch", type=int, default=500)
    ap.add_argument("--per-source", type=int, default=100, help="datagrams per source address")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus"))
    ap.add_argument("--http-timeout", type=float, default=0.5)
    ap.add_argument("--http-parallel", type=int, default=8, help="connections at a time")
    ap.add_argument("--keep-dir", help="write each request answered 500 here")
    a = ap.parse_args()

    rnd = random.Random(a.seed)
    random.seed(a.seed)
    dht, quic = hostport(a.dht), hostport(a.quic)
    t0 = time.monotonic()
    captured = capture_initials(a.ctl)
    pools = {"krpc": krpc_seeds(rnd, a.corpus), "stun": stun_seeds(rnd),
             "quic": quic_seeds(rnd, captured, a.corpus), "relay": relay_seeds(rnd)}
    relay = None
    if a.relay_ports:
        lo, hi = (int(x) for x in a.relay_ports.split("-"))
        relay = (quic[0], lo, hi)
    hs = http_seeds(a.corpus, (a.gateway or "127.0.0.1:0").encode(),
                    (a.dashboard or "127.0.0.1:0").encode())
    targets = {"ctl": ("unix", a.ctl)}
    if a.gateway:
        targets["gateway"] = ("tcp", hostport(a.gateway))
    if a.dashboard:
        targets["dashboard"] = ("tcp", hostport(a.dashboard))
    rep = {"seed": a.seed, "captured_initials": len(captured),
           "datagrams": {"krpc": 0, "quic": 0, "stun": 0, "relay": 0}, "send_errors": 0,
           "http": {k: {} for k in targets}, "checks": 0, "failures": []}

    def alive(where):
        rep["checks"] += 1
        bad = []
        if http_once(("unix", a.ctl), b"GET /v1/status HTTP/1.1\r\nHost: weftd\r\n\r\n", 5) != "200":
            bad.append("control socket: GET /v1/status did not answer 200")
        if not krpc_ping(dht, "127.254.254.254", 2):
            bad.append("DHT: no reply to a KRPC ping")
        if not stun_ping(quic, "127.254.254.253", 3):
            bad.append("QUIC port: no answer to a STUN Binding request (sent 3 times in 3 s; "
                       "the daemon's STUN counters: %s)" % "; ".join(policer_counts(a.ctl)))
        for name in ("gateway", "dashboard"):
            if name in targets:
                st = http_once(targets[name], b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" %
                               getattr(a, name).encode(), 5)
                if not st.isdigit():
                    bad.append("%s: no HTTP status (%s)" % (name, st))
        for b in bad:
            rep["failures"].append("%s: %s" % (where, b))
        # progress on stderr: a long run cut short still has its figures
        print("%.0f s: %s: %s" % (time.monotonic() - t0, where, "alive" if not bad else bad),
              file=sys.stderr, flush=True)
        return not bad

    ok = alive("before")
    socks = {}
    src_n = 0
    sent = 0
    while ok and sent < a.datagrams:
        for _ in range(min(a.batch, a.datagrams - sent)):
            if sent % a.per_source == 0:
                src_n += 1
                for s in socks.values():
                    s.close()
                ip = "127.%d.%d.%d" % (1 + (src_n >> 16) % 250, (src_n >> 8) & 255, 1 + (src_n & 255) % 254)
                socks = {}
                for kind in ("dht", "quic"):
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.bind((ip, 0))
                    s.setblocking(False)
                    socks[kind] = s
            kind = rnd.choices(("krpc", "quic", "stun", "relay"), (5, 4, 1, 3 if relay else 0))[0]
            data = mutate(rnd, rnd.choice(pools[kind]), pools[kind])
            if kind == "krpc":
                dst = dht
            elif kind == "relay":
                dst = (relay[0], rnd.randint(relay[1], relay[2]))
            else:
                dst = quic
            try:
                socks["dht" if kind == "krpc" else "quic"].sendto(data, dst)
                rep["datagrams"][kind] += 1
            except OSError:  # a full socket buffer: counted, not retried
                rep["send_errors"] += 1
            sent += 1
        time.sleep(0.05)  # the daemon drains what is queued
        ok = alive("after %d datagrams" % sent)
    for s in socks.values():
        s.close()
    done = 0
    names = sorted(targets)
    # HTTP: a batch is mutated in order (deterministic), then sent over
    # --http-parallel connections at a time.
    with cf.ThreadPoolExecutor(a.http_parallel) as pool:
        while ok and done < a.http:
            batch = []
            for _ in range(min(a.http_batch, a.http - done)):
                name = names[(done + len(batch)) % len(names)]
                batch.append((name, http_mutate(rnd, rnd.choice(hs[name]), hs[name])))
            for (name, data), st in zip(batch, pool.map(
                    lambda b: http_once(targets[b[0]], b[1], a.http_timeout), batch)):
                rep["http"][name][st] = rep["http"][name].get(st, 0) + 1
                # a 500 is a server's own failure, never bad input's answer
                if st == "500" and a.keep_dir:
                    with open(os.path.join(a.keep_dir, "%s-500-%d" % (name, done)), "wb") as f:
                        f.write(data)
            done += len(batch)
            ok = alive("after %d HTTP requests" % done)
    rep["http_requests"] = done
    rep["seconds"] = round(time.monotonic() - t0, 1)
    rep["ok"] = ok
    print(json.dumps(rep, indent=1, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
