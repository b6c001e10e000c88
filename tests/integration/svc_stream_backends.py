# SPDX-License-Identifier: MIT
# Backends for test_svc_stream.sh and bench/svc.sh, on the provider's loopback:
#   upgrade PORT  an HTTP/1.1 backend of weft streams: "POST /<method>" with
#                 Upgrade: weft-stream and a Weft-Caller key; answers 101 and
#                 echoes every byte until EOF (the half-close), then closes.
#                 Anything else: 400. Each head seen is appended to HEADS.
#   chat PORT     a WebSocket chat (python3-websockets): every message goes
#                 to every client; "joined N" and "left CODE" on arrivals and
#                 departures; "/kick" closes the sender with 4002; Origin
#                 must be absent (origins=[None]): the backend's own rule.
#   wsecho PORT [HOST]  a WebSocket echo (bench/svc.sh), on HOST (127.0.0.1).
import asyncio, os, socket, sys, threading

def upgrade(port, heads):
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

async def chat(port):
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
        upgrade(port, sys.argv[3] if len(sys.argv) > 3 else os.devnull)
    elif mode == "chat":
        asyncio.run(chat(port))
    else:
        asyncio.run(wsecho(port, sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"))
