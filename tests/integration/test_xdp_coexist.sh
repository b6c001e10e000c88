#!/bin/bash
# SPDX-License-Identifier: MIT
# Kernel plumbing for operators:
#  1. under plain `ip netns exec` (which remounts /sys without a bpffs)
#     weftd --xdp mounts a bpffs itself, pins its maps, `xdp status` shows
#     where, and bpftool reads them there;
#  2. weft's XDP program and another one (xdp-tools' xdp-filter) on one
#     interface. Where the kernel can load libxdp's dispatcher (it needs
#     BPF_PROG_TYPE_EXT): both run, chained, weft answers a DHT ping and
#     xdp-filter drops a port it was told to. Where it cannot (kernels that
#     refuse trampoline program types, see docs/XDP.md): either order is
#     refused with an error naming the other program, and the program already
#     attached keeps working.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 2 pair
for c in xdp-filter xdp-loader bpftool nsenter; do
	command -v $c >/dev/null || fail "$c missing (make deps: xdp-tools, bpftool, util-linux)"
done
H1=$(netns_name 1)
DP=6881

cat >"$D/ping.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:pk1:y1:qe"
for _ in range(int(sys.argv[3])):
    s.sendto(q, (sys.argv[1], int(sys.argv[2])))
    try:
        r, _a = s.recvfrom(2048)
    except socket.timeout:
        continue
    if b"1:y1:r" in r:
        sys.exit(0)
sys.exit(1)
PY
# udp_through PORT: does a datagram from host 2 reach a socket on host 1?
udp_through() {
	netns_exec 1 "$PYTHON" -c 'import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("0.0.0.0",int(sys.argv[1]))); s.settimeout(3)
try: s.recvfrom(64); sys.exit(0)
except socket.timeout: sys.exit(1)' "$1" &
	local l=$!
	sleep 0.3
	netns_exec 2 "$PYTHON" -c 'import socket,sys,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
for _ in range(10): s.sendto(b"x",(sys.argv[1],int(sys.argv[2]))); time.sleep(0.1)' "$(netns_ip4 1)" "$1"
	wait $l
}
ping_dht() { netns_exec 2 "$PYTHON" "$D/ping.py" "$(netns_ip4 1)" "${1:-$DP}" "${2:-10}"; }

# --- 1. no bpffs under `ip netns exec`: weftd mounts one and pins there
mkdir -p "$D/n1"
ip netns exec "$H1" "$WEFTD" --state-dir "$D/n1" --xdp eth0 --xdp-mode generic --workers 1 \
	--quic-port 4433 --dht-port $DP >"$D/w1.log" 2>&1 &
PID=$!
on_exit "kill_job -9 $PID"
WEFTD_LOG="$D/w1.log"
SOCK="$D/n1/weftd.sock"
wait_for "curl -sf --unix-socket '$SOCK' http://weftd/v1/status >/dev/null" 300 || fail "weftd did not start"
pin=$("$WEFTCTL" --socket "$SOCK" --json xdp status | json_get pin_dir)
case "$pin" in /sys/fs/bpf/weft/ns*/eth0) ;; *) fail "pin_dir '$pin'" ;; esac
grep -q 'mounted one on /sys/fs/bpf' "$D/w1.log" || fail "no bpffs mount logged"
nsenter -t "$PID" -m bpftool map show pinned "$pin/wxdp_stats" | grep -q wxdp_stats ||
	fail "bpftool cannot read $pin/wxdp_stats"
ping_dht || fail "no DHT answer"
pass "no bpffs under ip netns exec: weftd mounted one, maps in $pin, bpftool reads them"

# --- 2. another XDP program on the same interface (weftd's mount namespace,
#     where the bpffs is, so libxdp's state is shared)
in_ns() { nsenter -t "$PID" -m -n "$@"; }
if bpftool feature probe kernel 2>/dev/null | grep -q 'program_type ext is available'; then
	in_ns xdp-filter load -m skb eth0 >"$D/f.log" 2>&1 || fail "xdp-filter load: $(cat "$D/f.log")"
	in_ns xdp-loader status eth0 >"$D/st" 2>&1
	grep -q xdp_dispatcher "$D/st" && grep -q weft_xdp "$D/st" && grep -q xdpfilt "$D/st" ||
		fail "not both under the dispatcher: $(cat "$D/st")"
	ping_dht || fail "weft no longer answers with xdp-filter beside it"
	# a port weft does not own: weft passes it on, xdp-filter drops it
	in_ns xdp-filter port 9999 -m dst >/dev/null 2>&1 || fail "xdp-filter port"
	udp_through 9999 && fail "xdp-filter (after weft in the chain) did not drop port 9999"
	in_ns xdp-filter port 9999 -m dst -r >/dev/null 2>&1
	udp_through 9999 || fail "port 9999 still dropped after the rule was removed"
	in_ns xdp-filter unload eth0 >/dev/null 2>&1 || fail "xdp-filter unload"
	ping_dht || fail "weft lost its program when xdp-filter was unloaded"
	pass "weft and xdp-filter share eth0 under libxdp's dispatcher; both act on packets"
else
	# This kernel refuses BPF_PROG_TYPE_EXT (freplace), so there is no
	# dispatcher; both orders must fail cleanly and leave the first working.
	in_ns xdp-filter load -m skb eth0 >"$D/f.log" 2>&1 && fail "xdp-filter replaced weft's program"
	grep -qi 'dispatcher\|busy' "$D/f.log" || fail "xdp-filter: $(cat "$D/f.log")"
	ping_dht || fail "weft stopped answering after xdp-filter was refused"
	stop_weftd "$PID" || fail "weftd exit status $?"
	ip netns exec "$H1" sh -c "mount -t bpf bpf /sys/fs/bpf && xdp-filter load -m skb eth0 &&
		'$WEFTD' --state-dir '$D/n1' --xdp eth0 --xdp-mode generic --workers 1 --dht-port $DP" \
		>"$D/w2.log" 2>&1 && fail "weftd started over xdp-filter"
	grep -q 'already has the XDP program xdpfilt_[a-z_]* (id [0-9]*) attached without libxdp' "$D/w2.log" ||
		fail "weftd's refusal does not name the other program: $(grep -v libbpf "$D/w2.log" | tail -n 4)"
	ip -n "$H1" link show eth0 | grep -q 'prog/xdp' || fail "xdp-filter's program gone"
	pass "no dispatcher on this kernel (no BPF_PROG_TYPE_EXT): each order refused, naming the other program; the first keeps working"
fi
finish
