#!/bin/bash
# SPDX-License-Identifier: MIT
# Validated peers keep being served under a spoofed many-source flood.
# Two namespaces joined by one veth; weftd --xdp (native, one worker) on
# h2's end. From h1:
#   - a legitimate DHT peer (Python, 198.51.100.1:7000) that weftd
#     validates first: weftd pings it and it answers with weftd's
#     transaction id (GUARD_EV_REPLY); it then pings weftd at 40/s, under
#     every per-source limit, and counts the replies;
#   - at the same time weft_flood (AF_PACKET, qdisc bypass) sends DHT pings
#     from forged sources walking 10.0.0.0/9 (8M addresses, each under its
#     per-source limit) as fast as it can (the flood's full rate).
# Twice: with priority (the default unvalidated DHT budget) and without
# (budget 0 = off). Checks, from weftd's counters:
#   - with priority: the flood is counted as drop_unvalidated_dht, what it
#     got through is within the budget (per CPU the program ran on), and
#     weft loses <= 1% of the validated peer's replies (issue 12's goal).
#     A sender faster than the receiving veth can overflow the veth's ring
#     before XDP runs (as a NIC's rx ring overflows): those drops are the
#     link's, not weft's, and are counted exactly (h1's eth0 tx_dropped;
#     for the peer's own requests, h1's UdpSndbufErrors: veth_xmit's drop
#     reaches the UDP socket as ENOBUFS, which UDP counts and hides) and
#     reported next to the loss; docs/XDP.md has the figures;
#   - counters agree: every weft datagram got one verdict;
#   - the AF_XDP socket's own statistics are exported per queue (io stats,
#     /metrics): without priority the worker cannot keep up, the socket
#     drops, and redirect == delivered + socket drops (within 2%).
# The release weftd is used: the figures are about the engine's real
# capacity, which the sanitizers would divide.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 2 pair
FLOOD="$BUILD/tools/weft_flood"
[ -x "$FLOOD" ] || fail "$FLOOD not built (make $FLOOD)"
NETNS_EXEC=$(netns_bpffs_exec 2 "$D")
LEGIT_IP=$(netns_ip4 1) DST_IP=$(netns_ip4 2)
SECS=${FLOOD_SECS:-10} RATE=40
# FLOOD_PPS=0 (the default): as fast as the sender goes; N paces it.
FLOOD_PPS=${FLOOD_PPS:-0}
DST_MAC=$(ip -n "$(netns_name 2)" link show eth0 | awk '/link\/ether/ {print $2}')
# weftd answers the forged pings; route the answers back to h1 (which
# drops them, not being 10/9) as an Internet uplink would, so the worker
# pays what it pays in the field (a resolved neighbour, AF_XDP transmit),
# not a failed kernel send per datagram.
ip -n "$(netns_name 2)" route add 10.0.0.0/9 via "$LEGIT_IP" || fail "route"

WEFTD=$WEFTD_REL start_weftd "$D" --state-dir "$D" --xdp eth0 --workers 1 \
	--quic-port 4433 --dht-port 6881
[ "$(CTL --json xdp status | json_get mode)" = native ] || fail "not in native mode"

# legit.py IP PORT SECS RATE GOFILE DST: answer queries (weftd's ping)
# until GOFILE exists, then ping DST for SECS at RATE/s while still
# answering; prints "sent received answered dropped". dropped: its pings
# the kernel refused to send (the veth's backlog full under the flood):
# with IP_RECVERR the send says so; the namespace's UDP SndbufErrors,
# used before, also counts its answers to weftd refused the same way
# (one such answer made "replies weft lost" -1 in CI).
cat >"$D/legit.py" <<'PY'
import os, re, select, socket, struct, sys, time
ip, port, secs, rate, go, dst = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], (sys.argv[6], 6881)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((ip, port)); s.setblocking(False)
s.setsockopt(socket.IPPROTO_IP, 11, 1)  # IP_RECVERR: a local drop fails the send
me = b"LEGITLEGITLEGITLEGIT"
answered = 0; sent = 0; dropped = 0; got = set()
def drain():
    global answered
    while True:
        try:
            p, a = s.recvfrom(2048)
        except BlockingIOError:
            return
        except OSError:
            continue  # an ICMP error queued by IP_RECVERR, consumed
        m = re.search(rb"1:t(\d+):", p)
        if not m:
            continue
        n = int(m.group(1)); t = p[m.end():m.end() + n]
        if b"1:y1:q" in p:
            try:
                s.sendto(b"d1:rd2:id20:" + me + b"e1:t%d:" % n + t + b"1:y1:re", a); answered += 1
            except OSError:
                pass
        elif b"1:y1:r" in p and n == 4 and t[:2] == b"LG":
            got.add(struct.unpack("!H", t[2:])[0])
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:
    select.select([s], [], [], 0.02); drain()
t0 = time.monotonic(); nxt = t0
while True:
    now = time.monotonic()
    if now >= t0 + secs + 1.5:
        break
    if now < t0 + secs and now >= nxt:
        try:
            s.sendto(b"d1:ad2:id20:" + me + b"e1:q4:ping1:t4:LG" + struct.pack("!H", sent) + b"1:y1:qe", dst)
        except OSError:
            dropped += 1  # never left this namespace
        sent += 1; nxt += 1.0 / rate
    select.select([s], [], [], max(0.0, min(nxt - now, 0.01))); drain()
print(sent, len(got), answered, dropped)
PY

counters() { CTL --json xdp status | json_get counters; }
# h1's drops before weft: "TX_DROPPED UDP_SNDBUF_ERRORS" (the flood's and
# the peer's; the peer's own pings dropped are counted by legit.py).
linkdrops() {
	netns_exec 1 sh -c 'cat /sys/class/net/eth0/statistics/tx_dropped;
		awk "/^Udp:/ { if (h) print \$(f); else for (i = 1; i <= NF; i++) if (\$i == \"SndbufErrors\") f = i; h = 1 }" /proc/net/snmp' |
		tr '\n' ' '
}
iostats() { CTL --json io stats | json_get workers; }
# py EXPR JSON...: evaluate with a=json0, b=json1, ...
py() { "$PYTHON" -c 'import json,sys
j=[json.loads(x) for x in sys.argv[2:]]
a=j[0] if j else None; b=j[1] if len(j)>1 else None; c=j[2] if len(j)>2 else None; d=j[3] if len(j)>3 else None
print(eval(sys.argv[1]))' "$@"; }
NCPU=$(nproc)

# round NAME: validate the peer, then flood and ping at once.
round() {
	local name=$1 go="$D/go.$1"
	rm -f "$go"
	netns_exec 1 "$PYTHON" "$D/legit.py" "$LEGIT_IP" 7000 $SECS $RATE "$go" "$DST_IP" \
		>"$D/legit.$name" &
	local lpid=$!
	wait_for "CTL dht ping $LEGIT_IP:7000 >/dev/null 2>&1" 50 || fail "$name: weftd cannot ping the peer"
	[ "$(CTL --json xdp status | json_get validated sources)" -ge 1 ] ||
		fail "$name: the peer's answer did not validate it"
	sleep 1
	C0=$(counters) I0=$(iostats) K0=$(linkdrops)
	netns_exec 1 "$FLOOD" eth0 "$DST_MAC" "$DST_IP" 6881 10.0.0.0/9 $((SECS + 1)) $FLOOD_PPS >"$D/flood.$name" &
	local fpid=$!
	sleep 0.5
	touch "$go"
	wait $fpid || fail "$name: flood sender failed: $(cat "$D/flood.$name")"
	wait $lpid || fail "$name: legitimate peer failed"
	# Let the worker drain its ring and refresh the socket statistics.
	sleep 1.5
	C1=$(counters) I1=$(iostats) K1=$(linkdrops)
	read -r LS LR LA LD <"$D/legit.$name"
	read -r _ FS _ FSECS _ FPPS _ <"$D/flood.$name"
	LOSS=$(py "'%.2f' % (100.0 * (a - b) / a)" "$LS" "$LR")
	read -r k0tx k0udp <<<"$K0"
	read -r k1tx k1udp <<<"$K1"
	LINKDROP=$((k1tx - k0tx)) LEGIT_LINKDROP=$LD
	# Replies weft lost: requests that reached the interface's XDP
	# program and got no answer.
	WEFT_LOST=$((LS - LEGIT_LINKDROP - LR))
	echo "$name: flood sent $FS in ${FSECS}s (${FPPS} pps), legit sent $LS got $LR (loss $LOSS%)"
	echo "$name: dropped before XDP: $LINKDROP packets by the veth, $((k1udp - k0udp)) UDP sends refused (SndbufErrors), $LEGIT_LINKDROP of them the peer's pings; replies weft lost: $WEFT_LOST"
	echo "$name: verdicts $(py '{k: b[k]-a[k] for k in b if b[k]-a[k]}' "$C0" "$C1")"
	echo "$name: worker 0 $(py '{k: b[0][k]-a[0][k] for k in b[0] if k.startswith(("rx_pkts","xsk_")) and isinstance(b[0][k], int)}' "$I0" "$I1")"
	local weft sent
	weft=$(py 'sum(b[k]-a[k] for k in b if k.startswith(("redirect","pass_no_socket","drop_")))' "$C0" "$C1")
	sent=$((FS + LS))
	# Up to 0.1% may be lost before XDP (the veth's own ring, counted by
	# sendmmsg as sent); + our ping exchange with the peer, a few more.
	[ "$weft" -ge $((sent - sent / 1000 - 10)) ] && [ "$weft" -le $((sent + 20)) ] ||
		fail "$name: weft verdicts $weft != sent $sent"
}

round priority
[ "$LA" -ge 1 ] || fail "priority: the peer never answered weftd"
unval=$(py 'b["drop_unvalidated_dht"]-a["drop_unvalidated_dht"]' "$C0" "$C1")
acc=$(py 'b["redirect"]-a["redirect"]' "$C0" "$C1")
# The flood's accepted share: budget (pps x time + burst) per CPU the
# program ran on, 25% slack for the clock edges.
L=$(CTL --json xdp limits | json_get unvalidated dht)
bound=$(py "int(1.25 * $NCPU * (b['burst'] + b['pps'] * (float(a) + 1)))" "$FSECS" "$L")
echo "priority: flood dropped as unvalidated $unval, accepted $acc (bound $bound)"
[ "$unval" -gt 0 ] || fail "priority: the flood was not counted as drop_unvalidated_dht"
[ "$acc" -le "$bound" ] || fail "priority: $acc accepted, over the unvalidated budget $bound"
[ "$LEGIT_LINKDROP" -ge 0 ] && [ "$WEFT_LOST" -ge 0 ] ||
	fail "priority: link drops $LEGIT_LINKDROP of the peer's $LS requests, $LR answered: counters disagree"
[ $((100 * WEFT_LOST)) -le "$LS" ] ||
	fail "priority: weft lost $WEFT_LOST of the validated peer's $LS replies (> 1%) at $FPPS pps"
PRIO_LOSS=$LOSS
pass "with priority at $FPPS pps: weft lost $WEFT_LOST of $LS replies to the validated peer (total loss $LOSS%, $LEGIT_LINKDROP requests dropped by the veth before XDP), flood counted as drop_unvalidated_dht ($unval)"

CTL xdp limits set --unval-dht 0/0 >/dev/null || fail "priority off"
[ "$(CTL --json xdp limits | json_get unvalidated dht pps)" = 0 ] || fail "budget not off"
round off
red=$(py 'b["redirect"]-a["redirect"]' "$C0" "$C1")
read -r del xdrop <<<"$(py '"%d %d" % (b[0]["rx_pkts"]-a[0]["rx_pkts"] + b[0]["rx_drop_malformed"]-a[0]["rx_drop_malformed"] + b[0]["rx_drop_not_ours"]-a[0]["rx_drop_not_ours"], sum(b[0][k]-a[0][k] for k in ("xsk_rx_dropped","xsk_rx_ring_full","xsk_rx_invalid_descs")))' "$I0" "$I1")"
echo "off: redirect $red, delivered $del, socket drops $xdrop"
[ "$xdrop" -gt 0 ] || fail "off: overload but the AF_XDP socket reports no drops"
py "1 if abs(a - b - c) <= 0.02 * a + 64 else 0" "$red" "$del" "$xdrop" | grep -q 1 ||
	fail "off: redirect $red != delivered $del + dropped $xdrop"
CTL metrics | grep -q '^weft_io_xsk_rx_ring_full_total{queue="0"} ' || fail "xsk metrics missing"
CTL io stats | grep -q xsk_rx || fail "io stats do not show the socket drops"
pass "without priority: validated peer lost $LOSS% (with: $PRIO_LOSS%); socket drops exported, redirect = delivered + dropped"
stop_weftd "$WEFTD_PID" || fail "weftd did not stop cleanly"
finish
