#!/bin/bash
# SPDX-License-Identifier: MIT
# Fault: the open-file limit near the node's needs (loopback, uring, no
# root). Node A runs under `ulimit -n 48` (it needs about 25 descriptors
# idle); node B is unlimited and talks QUIC to A. A client opens 64
# control-socket connections, more than A has descriptors left. A caps its
# control connections at half the descriptors free at start (it says so
# in its log): before that, they took every descriptor and
# libmicrohttpd's listen thread spun on accept() failing with EMFILE
# (2.75 s of CPU in 3 s). With the connections held:
#  - A keeps descriptors free and does not spin (CPU over 3 s near idle);
#  - a control connection opened before answers (existing ones live);
#  - B's QUIC ping to A works (UDP: no descriptor per peer);
#  - a new control connection is closed at once or waits in the listen
#    backlog (the kernel holds it, not A).
# Once the client lets go, A answers new connections, adds content, and
# stops cleanly.
set -u
. "$TOP/tests/lib/common.sh"
prologue
LIM=48
mkdir -p "$D/a" "$D/b"
(
	ulimit -n $LIM
	exec "$WEFTD" --state-dir "$D/a" --io uring --quic-port $QP --dht-port $DP
) >"$D/a.log" 2>&1 &
A=$!
on_exit "kill_job -9 $A"
WEFTD_LOG="$D/a.log"
wait_for "curl -sf --unix-socket '$D/a/weftd.sock' http://weftd/v1/status >/dev/null" 300 ||
	fail "weftd did not start under ulimit -n $LIM"
grep -q "^Max open files *$LIM " "/proc/$A/limits" || fail "limit not applied: $(grep files "/proc/$A/limits")"
start_weftd "$D/b" --state-dir "$D/b" --io uring --quic-port $((QP + 2)) --dht-port $((QP + 3))
B=$WEFTD_PID
WEFTD_LOG="$D/a.log"
KA=$("$WEFTCTL" --socket "$D/a/weftd.sock" --json status | json_get node_key)
"$WEFTCTL" --socket "$D/b/weftd.sock" --json quic ping "$KA@127.0.0.1:$QP" >/dev/null || fail "B -> A before"
grep -q "at most [0-9]* control connections at once" "$D/a.log" || fail "A does not say it capped its control connections"
pass "A runs under ulimit -n $LIM with $(ls "/proc/$A/fd" | wc -l) descriptors open: $(grep -o 'at most [0-9]* control connections' "$D/a.log")"

"$PYTHON" - "$D/a/weftd.sock" "$A" "$(getconf CLK_TCK)" "$WEFTCTL" "$D/b/weftd.sock" "$KA@127.0.0.1:$QP" \
	>"$D/out" 2>&1 <<'PY' || { cat "$D/out"; fail "at the limit (above)"; }
import os, socket, subprocess, sys, time
path, pid, hz, ctl, bsock, target = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
lim = int([l for l in open(f"/proc/{pid}/limits") if l.startswith("Max open files")][0].split()[3])
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
def nfds():
    return len(os.listdir(f"/proc/{pid}/fd"))
def ask(s):
    s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: weftd\r\n\r\n")
    s.settimeout(5)
    got = s.recv(65536)
    if not got.startswith(b"HTTP/1.1 200"):
        print("answer:", got[:600])
    return got.startswith(b"HTTP/1.1 200")
c0 = cpu(); time.sleep(3); idle = cpu() - c0
early = socket.socket(socket.AF_UNIX); early.connect(path)
assert ask(early), "the early connection does not answer"
held = []
# more than the descriptors left; each accepted one holds one in A
for i in range(lim + 16):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
# A takes what its connection limit allows (the early connection asks
# every second: ctl.timeout closes one idle 10 s)
last, stable = -1, 0
while stable < 2:
    time.sleep(1)
    assert ask(early), "the early connection does not answer while A takes connections"
    n = nfds()
    stable, last = (stable + 1 if n == last else 0), n
assert nfds() < lim, f"A holds {nfds()} descriptors of {lim}: control connections took them all"
assert ask(early), "an existing control connection does not answer at the connection limit"
c0 = cpu(); time.sleep(3); full = cpu() - c0
print(f"{len(held)} connections held: A at {nfds()}/{lim} descriptors; CPU {full * 1000 // hz} ms in 3 s (idle {idle * 1000 // hz} ms)")
assert full <= idle + hz, "spinning at the connection limit"
assert ask(early), "an existing control connection stopped answering at the limit"
r = subprocess.run([ctl, "--socket", bsock, "--json", "quic", "ping", target], capture_output=True, text=True, timeout=60)
assert r.returncode == 0, "QUIC ping to A at its limit: " + r.stdout + r.stderr
# a new connection: refused cleanly (closed or reset at once), or left
# waiting in the listen backlog; never a hang of A
new = socket.socket(socket.AF_UNIX); new.connect(path)
new.settimeout(2)
try:
    new.sendall(b"GET /v1/status HTTP/1.1\r\nHost: weftd\r\n\r\n")
    got = new.recv(64)
except socket.timeout:
    got = "no answer within 2 s (in the listen backlog)"
except (ConnectionResetError, BrokenPipeError):
    got = b""
print("a new connection:", "closed at once" if got == b"" else got[:40])
assert isinstance(got, str) or got == b"" or b" 200 " in got, got
for s in held + [new, early]:
    s.close()
PY
sed 's/^/  /' "$D/out"
kill -0 "$A" || fail "A died at its descriptor limit"
pass "64 connections held: descriptors left, no spin, an existing control connection and QUIC answered, new connections refused"

wait_for "curl -sf -m 5 --unix-socket '$D/a/weftd.sock' http://weftd/v1/status >/dev/null" 300 ||
	fail "A does not answer after the connections went"
echo "after the fault" >"$D/f"
"$WEFTCTL" --socket "$D/a/weftd.sock" --json content add "$D/f" >/dev/null || fail "content add after the fault"
pass "descriptors back: A answers and adds content"
stop_weftd "$B" || fail "stop B"
stop_weftd "$A" || fail "A did not stop cleanly: $(tail -n 5 "$D/a.log")"
finish
