# SPDX-License-Identifier: MIT
# Backends for test_svc_stream.sh and bench/svc.sh, on the provider's loopback:
#   upgrade PORT  an HTTP/1.1 backend of weft streams: "POST /<method>" with
#                 Upgrade: weft-stream and a Weft-Caller key; answers 101 and
#                 echoes every byte until EOF (the half-close), then closes.
#                 Anything else (a pass-through GET): 400. Each head seen
#                 is appended to HEADS.
#   chat PORT     a WebSocket chat (python3-websockets): every message goes
#                 to every client; "joined N" and "left CODE" on arrivals and
#                 departures; "/kick" closes the sender with 4002; Origin
#                 must be absent (origins=[None]): the backend's own rule.
#   wsecho PORT [HOST]  a WebSocket echo (bench/svc.sh), on HOST (127.0.0.1).
# upgrade and chat check the caller headers of each upgrade (docs/SERVICE.md,
# "Streams to backends") with PyNaCl when it is there: "verified KEY METHOD"
# or "bad WHY" per upgrade, appended to CALLERS (chat: its third argument).
import asyncio, hashlib, os, socket, sys, threading, time

def check_callers(hdr, method, callers):
    """hdr: lower-case name -> value. The assertion over (service, method,
    request id, empty body, t) verified with Weft-Caller's key."""
    if not callers:
        return
    try:
        import nacl.signing
        svc = hdr["weft-service"].encode()
        caller, rid = hdr["weft-caller"], hdr["weft-request-id"]
        if not hdr.get("weft-deadline", "").isdigit():
            raise ValueError("no Weft-Deadline")
        f = dict(x.split("=", 1) for x in hdr["weft-caller-assertion"].split()[1:])
        t = int(f["t"])
        msg = (b"weft-call-assert-v1\n" + bytes([len(svc)]) + svc + bytes([len(method)]) + method
               + bytes.fromhex(rid) + hashlib.sha256(b"").digest() + t.to_bytes(8, "big"))
        nacl.signing.VerifyKey(bytes.fromhex(caller)).verify(msg, bytes.fromhex(f["sig"]))
        if abs(time.time() * 1000 - t) > 300000:
            raise ValueError("stale t")
        line = "verified %s %s\n" % (caller, method.decode())
    except ImportError:
        return
    except Exception as e:
        line = "bad %r\n" % (e,)
    with open(callers, "a") as fh:
        fh.write(line)

def head_fields(h):
    out = {}
    for ln in h.split(b"\r\n")[1:]:
        k, _, v = ln.partition(b":")
        out[k.strip().lower().decode()] = v.strip().decode()
    return out

def upgrade(port, heads, callers=None):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)

    def serve(c):
        with c:
            head = b""
            while b"\r\n\r\n" not in head:
                d = c.recv(4096)
                if not d:
                    return
                head += d
            h, rest = head.split(b"\r\n\r\n", 1)
            with open(heads, "ab") as f:
                f.write(h + b"\r\n\r\n")
            # a stream signs its method; a pass-through (GET, no body) "http"
            check_callers(head_fields(h), h.split(b" ")[1][1:] if h.startswith(b"POST /") else b"http",
                          callers)
            low = h.lower()
            if not h.startswith(b"POST /") or b"upgrade: weft-stream" not in low or b"weft-caller: " not in low:
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: weft-stream\r\n\r\n")
            if rest:
                c.sendall(rest)
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)

    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()

async def chat(port, callers=None):
    import websockets
    clients = set()

    async def bcast(msg, skip=None):
        for c in list(clients):
            if c is not skip:
                try:
                    await c.send(msg)
                except Exception:
                    pass

    async def handler(ws, path=None):
        rh = getattr(ws, "request_headers", None) or ws.request.headers
        check_callers({k.lower(): v for k, v in rh.raw_items()}, b"ws", callers)
        if (path or getattr(getattr(ws, "request", None), "path", "")).endswith("/stall"):
            # a backend that never reads: what the client sends must stop
            # at the stream's window, not pile up in weftd
            await asyncio.sleep(120)
            return
        clients.add(ws)
        await bcast("joined %d" % len(clients))
        try:
            async for m in ws:
                if m == "/kick":
                    await ws.close(4002, "kicked")
                    break
                await bcast(m)
        except Exception:
            pass
        clients.discard(ws)
        await bcast("left %s" % ws.close_code)

    async with websockets.serve(handler, "127.0.0.1", port, origins=[None], max_size=8 << 20):
        await asyncio.Future()

async def wsecho(port, host):
    import websockets

    async def handler(ws, path=None):
        async for m in ws:
            await ws.send(m)

    async with websockets.serve(handler, host, port, max_size=8 << 20, compression=None):
        await asyncio.Future()

if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "upgrade":
        upgrade(port, sys.argv[3] if len(sys.argv) > 3 else os.devnull,
                sys.argv[4] if len(sys.argv) > 4 else None)
    elif mode == "chat":
        asyncio.run(chat(port, sys.argv[3] if len(sys.argv) > 3 else None))
    else:
        asyncio.run(wsecho(port, sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"))
