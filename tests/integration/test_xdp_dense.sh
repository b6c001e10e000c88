#!/bin/bash
# SPDX-License-Identifier: MIT
# Dense nodes: two weftd instances on one interface share one XDP
# attachment (issue 16). Two namespaces joined by one veth; on h2's eth0:
#   A: --xdp eth0, QUIC 4433, DHT 6881: attaches weft's program (native),
#      pins its maps, binds the AF_XDP socket of the veth's one queue;
#   B: --xdp eth0, QUIC 4434, DHT 6882: finds weft's program attached,
#      joins it (the pinned maps, a slot of its own, its ports added to
#      the shared config). The queue's AF_XDP socket is A's (one socket
#      per queue: a kernel rule), so B's engine falls back to kernel
#      sockets and the program passes B's ports to the kernel.
# Both pin under one bpffs (pin root $D/bpf/weft, mounted by the test).
# From h1 a third weftd (io_uring) pings both over QUIC and the DHT.
# Checks:
#   - one program, both instances' ports in the shared config with their
#     owners; each instance's limits show its own ports only; a third
#     asking for a port A owns is refused and changes nothing; a relay
#     (--relay) joining as a further instance is refused with the reason;
#   - both answer QUIC and DHT; A's traffic is redirected to its socket,
#     B's passed to the kernel (pass_no_socket), none to the wrong one;
#   - A (the instance that attached) stops: B keeps answering, the
#     program stays, A's ports leave the config; A restarts and joins;
#   - B stops: A keeps answering; the last to stop detaches the program
#     and removes the pins.
# Then on a two-queue veth: A binds queue 0, B queue 1 (xdp.first_queue),
# each its own AF_XDP socket. The sender's queue is chosen per socket
# (its random flow hash), so 32 pinging sockets per instance land on both
# queues (all on one: probability 2^-31 per instance): each instance gets
# the datagrams of its queue on its socket and the others through the
# kernel, all answered, none on the other instance's socket.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 2 pair
command -v bpftool >/dev/null || fail "bpftool missing (make deps)"
mkdir -p "$D/bpf" "$D/a" "$D/b" "$D/c"
mount -t bpf bpf "$D/bpf" || fail "cannot mount a bpffs on $D/bpf"
netns_on_exit "umount '$D/bpf'"
H2=$(netns_name 2)
IP2=$(netns_ip4 2)
# Each weftd also gets a private /sys/fs/bpf (libxdp looks there); the pins
# live in the shared one.
NETNS_EXEC=$(netns_bpffs_exec 2 "$D")
PINROOT="$D/bpf/weft"
INO=$(ip netns exec "$H2" stat -L -c %i /proc/self/ns/net)
PINDIR="$PINROOT/ns$INO/eth0"

CA() { "$WEFTCTL" --socket "$D/a/weftd.sock" "$@"; }
CB() { "$WEFTCTL" --socket "$D/b/weftd.sock" "$@"; }
CC() { "$WEFTCTL" --socket "$D/c/weftd.sock" "$@"; }
start_a() {
	start_weftd "$D/a" --state-dir "$D/a" --xdp eth0 --workers 1 --quic-port 4433 \
		--dht-port 6881 --set xdp.pin_root="$PINROOT"
	PID_A=$WEFTD_PID LOG_A=$WEFTD_LOG
}
start_b() {
	start_weftd "$D/b" --state-dir "$D/b" --xdp eth0 --workers 1 --quic-port 4434 \
		--dht-port 6882 --set xdp.pin_root="$PINROOT"
	PID_B=$WEFTD_PID LOG_B=$WEFTD_LOG
}
# The shared config as bpftool reads it from the pin: "quic_ports dht_ports
# quic_owners dht_owners" (struct wxdp_config: the ports at bytes 32 and
# 40, the owners at 49 and 50; include/weft/xdp_abi.h).
shared_cfg() {
	bpftool -j map dump pinned "$PINDIR/wxdp_config" | "$PYTHON" -c 'import json,struct,sys
b=bytes(int(x, 16) for x in json.load(sys.stdin)[0]["value"])
q, d = struct.unpack_from("<4H", b, 32), struct.unpack_from("<4H", b, 40)
print(",".join(map(str, q)), ",".join(map(str, d)), b[49], b[50])'
}
attached_id() { ip -n "$H2" -d link show eth0 | awk '/prog\/xdp/ { for (i = 1; i <= NF; i++) if ($i == "id") print $(i + 1) }' | head -1; }
counter() { CA --json xdp status | json_get counters "$1"; }
# ping_both WHAT: QUIC and DHT pings from h1's weftd to each port given.
ping_quic() { CC quic ping "$IP2:$1" >/dev/null 2>&1; }
ping_dht() { CC dht ping "$IP2:$1" >/dev/null 2>&1; }
answers() {
	local p
	for p in "$@"; do
		case $p in
		443?) wait_for "ping_quic $p" 50 || fail "$WHAT: no QUIC answer on $p" ;;
		688?) wait_for "ping_dht $p" 50 || fail "$WHAT: no DHT answer on $p" ;;
		esac
	done
}

NETNS_EXEC="ip netns exec $(netns_name 1)" start_weftd "$D/c" --state-dir "$D/c" --io uring \
	--workers 1 --quic-port 4433 --dht-port 6881
PID_C=$WEFTD_PID

start_a
[ "$(CA --json xdp status | json_get mode)" = native ] || fail "A: not in native mode"
[ "$(CA --json xdp status | json_get instance)" = 0 ] || fail "A: not instance 0"
[ "$(CA --json status | json_get io_mode)" = xdp ] || fail "A: not on AF_XDP"
PROG=$(attached_id)
[ -n "$PROG" ] || fail "no XDP program on eth0"
start_b
grep -q "joined weft's program on eth0" "$LOG_B" || fail "B did not join: $(grep xdp "$LOG_B" | tail -3)"
[ "$(CB --json xdp status | json_get instance)" = 1 ] || fail "B: not instance 1"
[ "$(CB --json xdp status | json_get prog_id)" = "$PROG" ] || fail "B: another program"
[ "$(attached_id)" = "$PROG" ] || fail "the attachment changed when B joined"
[ "$(CB --json status | json_get io_mode)" = uring ] ||
	fail "B: expected the kernel path (the queue's socket is A's)"
# Quic ports 4433 (A, owner 0) and 4434 (B, owner 1 = bits 2-3 of slot 1).
[ "$(shared_cfg)" = "4433,4434,0,0 6881,6882,0,0 4 4" ] || fail "shared config: $(shared_cfg)"
[ "$(CA --json xdp limits | json_get quic_ports)" = "[4433]" ] || fail "A's limits: $(CA --json xdp limits)"
[ "$(CB --json xdp limits | json_get dht_ports)" = "[6882]" ] || fail "B's limits: $(CB --json xdp limits)"
pass "B joined A's program $PROG (instance 1, ports added to the shared config, kernel steering)"

# A third instance asking for A's QUIC port is refused, clearly, and
# leaves the shared config as it was.
mkdir -p "$D/x"
timeout 30 $NETNS_EXEC "$WEFTD" --state-dir "$D/x" --xdp eth0 --workers 1 --quic-port 4433 \
	--dht-port 6883 --set xdp.pin_root="$PINROOT" >"$D/x.log" 2>&1 &&
	fail "a third instance started on A's port"
grep -q "a port is another weftd's on this interface" "$D/x.log" ||
	fail "the refusal does not say why: $(tail -3 "$D/x.log")"
[ "$(shared_cfg)" = "4433,4434,0,0 6881,6882,0,0 4 4" ] || fail "refused join changed: $(shared_cfg)"
[ "$(attached_id)" = "$PROG" ] || fail "the refused join touched the attachment"
pass "a third instance on A's port is refused and changes nothing"

# A relay in a joining instance is refused: the program hands relay binds
# to instance 0's sockets (docs/OPERATIONS.md, "A relay in xdp mode").
timeout 30 $NETNS_EXEC "$WEFTD" --state-dir "$D/x" --xdp eth0 --workers 1 --quic-port 4435 \
	--dht-port 6883 --relay --set xdp.pin_root="$PINROOT" >"$D/x.log" 2>&1 &&
	fail "a relay started as instance 2"
grep -q "in xdp mode the relay must be instance 0" "$D/x.log" ||
	fail "the relay's refusal does not say why: $(tail -3 "$D/x.log")"
wait_for '[ "$(shared_cfg)" = "4433,4434,0,0 6881,6882,0,0 4 4" ]' 50 ||
	fail "the refused relay left its ports: $(shared_cfg)"
[ "$(attached_id)" = "$PROG" ] || fail "the refused relay touched the attachment"
pass "a relay joining as instance 2 is refused with the reason, and leaves nothing behind"

WHAT="both up"
r0=$(counter redirect) n0=$(counter pass_no_socket)
answers 4433 6881 4434 6882
r1=$(counter redirect) n1=$(counter pass_no_socket)
[ "$r1" -gt "$r0" ] || fail "A's traffic was not redirected to its socket"
[ "$n1" -gt "$n0" ] || fail "B's traffic was not passed to the kernel"
[ "$(CA --json io stats | json_get workers 0 rx_drop_not_ours)" = 0 ] ||
	fail "A's socket received B's packets"
pass "both answer QUIC and DHT: redirect +$((r1 - r0)) (A), pass_no_socket +$((n1 - n0)) (B)"

# leave WHO PID CONFIG PORTS...: WHO stops while the other stays: the
# program stays attached, the shared config is CONFIG (WHO's ports out),
# and the other still answers on PORTS.
leave() {
	local who=$1 pid=$2 want=$3
	shift 3
	stop_weftd "$pid" || fail "$who did not stop cleanly"
	[ "$(attached_id)" = "$PROG" ] || fail "$who took the program with it"
	[ "$(shared_cfg)" = "$want" ] || fail "$who's ports left behind: $(shared_cfg)"
	WHAT="$who stopped"
	answers "$@"
}

# The instance that attached leaves: the program stays for B.
leave A "$PID_A" "4434,0,0,0 6882,0,0,0 1 1" 4434 6882
ping_dht 6881 && fail "A's port still answered after A stopped"
pass "A stopped: B still answers, the program stays, A's ports left the config"

start_a
grep -q "joined weft's program on eth0" "$LOG_A" || fail "restarted A did not join"
[ "$(CA --json xdp status | json_get instance)" = 0 ] || fail "restarted A: not instance 0"
[ "$(CA --json status | json_get io_mode)" = xdp ] || fail "restarted A: not on AF_XDP"
WHAT="A back"
answers 4433 6881 4434 6882
pass "A restarted, joined as instance 0 with its AF_XDP socket; both answer"

leave B "$PID_B" "4433,0,0,0 6881,0,0,0 0 0" 4433 6881
pass "B stopped: A still answers"

stop_weftd "$PID_A" || fail "A did not stop cleanly"
[ -z "$(attached_id)" ] || fail "the last instance left the program attached"
[ ! -e "$PINDIR" ] || fail "the last instance left its pins: $(ls "$PINDIR")"
pass "the last instance out detached the program and removed the pins"

# --- two queues: each instance its own AF_XDP socket
ip -n "$(netns_name 1)" link del eth0 || fail "veth del"
ip link add eth0 netns "$(netns_name 1)" numtxqueues 2 numrxqueues 2 type veth peer name eth0 \
	netns "$H2" numtxqueues 2 numrxqueues 2 || fail "two-queue veth"
_netns_addr 1
_netns_addr 2
_netns_wait_dad
cat >"$D/pings.py" <<'PY'
# pings.py IP PORT N: N sockets (N flow hashes) each get a DHT ping answered.
import socket, sys, time
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
left = set(range(n)); end = time.monotonic() + 10
while left and time.monotonic() < end:
    for i in left:
        socks[i].sendto(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:%02d1:y1:qe" % i, (ip, port))
    time.sleep(0.2)
    for i in list(left):
        socks[i].setblocking(False)
        try:
            if b"1:y1:r" in socks[i].recv(2048):
                left.discard(i)
        except BlockingIOError:
            pass
sys.exit(1 if left else 0)
PY
start_a
start_b_q1() {
	start_weftd "$D/b" --state-dir "$D/b" --xdp eth0 --workers 1 --quic-port 4434 \
		--dht-port 6882 --set xdp.pin_root="$PINROOT" --set xdp.first_queue=1
	PID_B=$WEFTD_PID LOG_B=$WEFTD_LOG
}
start_b_q1
[ "$(CB --json status | json_get io_mode)" = xdp ] || fail "B on queue 1: not on AF_XDP"
grep -q "AF_XDP eth0 queue 1 bound" "$LOG_B" || fail "B did not bind queue 1"
netns_exec 1 "$PYTHON" "$D/pings.py" "$IP2" 6881 32 || fail "A: not every socket answered"
netns_exec 1 "$PYTHON" "$D/pings.py" "$IP2" 6882 32 || fail "B: not every socket answered"
for who in A B; do
	read -r xsk kern notours <<<"$(C$who --json io stats | "$PYTHON" -c 'import json,sys
w=json.load(sys.stdin)["workers"][0]; print(w["rx_pkts"], w["rx_kernel"], w["rx_drop_not_ours"])')"
	[ "$xsk" -gt 0 ] && [ "$kern" -gt 0 ] ||
		fail "$who: AF_XDP $xsk, kernel $kern: both queues should have carried its pings"
	[ "$notours" = 0 ] || fail "$who's socket received $notours datagrams of the other"
	echo "$who: $xsk datagrams on its AF_XDP socket, $kern through the kernel (the other queue)"
done
stop_weftd "$PID_B" || fail "B did not stop cleanly"
stop_weftd "$PID_A" || fail "A did not stop cleanly"
[ -z "$(attached_id)" ] || fail "two queues: the last instance left the program attached"
pass "two queues: A on queue 0 and B on queue 1, each its own AF_XDP socket, every ping answered"
stop_weftd "$PID_C" || fail "C did not stop cleanly"
finish
