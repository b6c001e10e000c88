# SPDX-License-Identifier: MIT
# WebSocket clients for test_svc_stream.sh (python3-websockets), each
# through its node's gateway:
#   second URI HOSTHDR OUT  joins, waits for "hi from first", writes it to
#                           OUT, closes with 4001 "bye".
#   idle URI MS             joins asking X-Weft-Idle-Ms: MS, then sends
#                           nothing (no pings): prints the close code the
#                           gateway ends it with and the seconds it took.
#   flood URI MS            256 KiB messages at a backend that never reads,
#                           idle time MS: prints "MiB close_code seconds".
#   rtt URI N               N echo round trips of 16 bytes (after 50 to
#                           warm up): prints "p50_us p99_us" (bench/svc.sh).
#   first URI               joins, waits for "joined 2", says "hi from
#                           first", waits for "left 4001"; "/kick" gets
#                           close 4002; a new connection's 2 MiB message
#                           gets close 1009 from the gateway.
import asyncio, socket, sys, urllib.parse
import websockets

# the gateway's wait for the backend's answer (a loaded test host)
SLOW = {"X-Weft-Timeout-Ms": "20000"}

def sock_for(uri):
    u = urllib.parse.urlparse(uri)
    host = "127.0.0.1" if u.hostname.endswith("localhost") else u.hostname
    s = socket.create_connection((host, u.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

async def recv_until(ws, want, limit=20):
    async def loop():
        while True:
            m = await ws.recv()
            if m == want:
                return m
    return await asyncio.wait_for(loop(), limit)

async def second(uri, out):
    async with websockets.connect(uri, sock=sock_for(uri), open_timeout=30, extra_headers=SLOW) as ws:
        await recv_until(ws, "hi from first", 60)
        open(out, "w").write("hi from first\n")
        await ws.close(4001, "bye")

async def first(uri):
    async with websockets.connect(uri, sock=sock_for(uri), open_timeout=30, extra_headers=SLOW) as ws:
        await recv_until(ws, "joined 2", 60)
        await ws.send("hi from first")
        await recv_until(ws, "left 4001", 30)
        await ws.send("/kick")
        try:
            await asyncio.wait_for(ws.recv(), 20)
            while True:
                await asyncio.wait_for(ws.recv(), 20)
        except websockets.ConnectionClosed as e:
            if e.rcvd is None or e.rcvd.code != 4002:
                sys.exit("kick: close %r, want 4002" % (e.rcvd,))
    async with websockets.connect(uri, sock=sock_for(uri), open_timeout=30, extra_headers=SLOW, max_size=None) as ws:
        try:
            # the gateway may close while the message is still being sent:
            # it judges the frame by its header
            await ws.send("x" * (2 << 20))
            while True:
                await asyncio.wait_for(ws.recv(), 20)
        except websockets.ConnectionClosed as e:
            if e.rcvd is None or e.rcvd.code != 1009:
                sys.exit("big message: close %r, want 1009" % (e.rcvd,))
    print("first: ok")

async def refused(uri, origin):
    try:
        async with websockets.connect(uri, sock=sock_for(uri), open_timeout=30, extra_headers=SLOW, origin=origin):
            sys.exit("connected with Origin %s" % origin)
    except websockets.InvalidStatusCode as e:
        print(e.status_code)

async def idle(uri, ms):
    hdr = dict(SLOW)
    hdr["X-Weft-Idle-Ms"] = str(ms)
    async with websockets.connect(uri, sock=sock_for(uri), open_timeout=30, extra_headers=hdr,
                                  ping_interval=None) as ws:
        t0 = asyncio.get_running_loop().time()
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 30)
        except websockets.ConnectionClosed:
            pass
        print(ws.close_code, "%.1f" % (asyncio.get_running_loop().time() - t0))

async def flood(uri, ms):
    # 256 KiB messages, up to 256 MiB, at a backend that never reads:
    # prints the MiB that left before the sends blocked and the close
    # code and time when the stream's idle time ended it
    hdr = dict(SLOW)
    hdr["X-Weft-Idle-Ms"] = str(ms)
    msg, sent = b"x" * (256 << 10), 0
    loop = asyncio.get_running_loop()
    ws = await websockets.connect(uri, sock=sock_for(uri), open_timeout=30, extra_headers=hdr,
                                  ping_interval=None, compression=None, close_timeout=1)
    t0 = loop.time()
    try:
        while sent < (256 << 20):
            await asyncio.wait_for(ws.send(msg), 60)
            sent += len(msg)
    except websockets.ConnectionClosed:
        pass
    print(sent >> 20, ws.close_code, "%.1f" % (loop.time() - t0))

async def rtt(uri, n):
    import time
    lat = []
    async with websockets.connect(uri, sock=sock_for(uri), open_timeout=30, extra_headers=SLOW, compression=None) as ws:
        for i in range(n + 50):
            t = time.perf_counter_ns()
            await ws.send("0123456789abcdef")
            await ws.recv()
            if i >= 50:
                lat.append(time.perf_counter_ns() - t)
    lat.sort()
    print("%d %d" % (lat[len(lat) // 2] // 1000, lat[len(lat) * 99 // 100] // 1000))

if __name__ == "__main__":
    if sys.argv[1] == "second":
        asyncio.run(second(sys.argv[2], sys.argv[3]))
    elif sys.argv[1] == "first":
        asyncio.run(first(sys.argv[2]))
    elif sys.argv[1] == "idle":
        asyncio.run(idle(sys.argv[2], int(sys.argv[3])))
    elif sys.argv[1] == "flood":
        asyncio.run(flood(sys.argv[2], int(sys.argv[3])))
    elif sys.argv[1] == "rtt":
        asyncio.run(rtt(sys.argv[2], int(sys.argv[3])))
    else:
        asyncio.run(refused(sys.argv[2], sys.argv[3]))
