#!/bin/bash
# SPDX-License-Identifier: MIT
# Path MTU probing on the kernel's paths (docs/QUIC.md "Jumbo datagrams off
# loopback"): three weftd on a bridge of 9000-byte links, except host 3's
# bridge port, which carries 1500 (a smaller hop that neither end's route
# knows: the bridge drops the larger frames, no ICMP). Checks: node 1 ->
# node 2 over IPv6 and over IPv4 validates jumbo datagrams by a probe (both
# ends of each connection), and 64 MiB arrive intact; node 1 -> node 3
# loses its jumbo probes, validates 1452 bytes instead, and 16 MiB arrive
# intact; on 1500-byte links (the default) an IPv4 peer on the link is
# probed to 1472 bytes (ngtcp2 stops at 1444), an IPv6 one (1452 either
# way) and one behind a gateway are not.
. "$TOP/tests/lib/common.sh"
prologue netns 3
[ -x "$PYTHON" ] || skip "$PYTHON missing"

BR=$(netns_name 1)
BR=${BR%h1}br
for i in 1 2 3; do
	ip -n "$(netns_name "$i")" link set eth0 mtu 9000 || fail "mtu 9000 on host $i"
done
ip -n "$BR" link set p1 mtu 9000 && ip -n "$BR" link set p2 mtu 9000 || fail "bridge ports"

api() { local n=$1 m=$2 p=$3; shift 3; curl -s --unix-socket "$D/n$n/weftd.sock" -X "$m" "http://weftd$p" "$@"; }
bench() { # FROM TARGET BYTES SEED -> JSON
	api "$1" POST /v1/quic/bench -d "{\"peer\":\"$2\",\"bytes\":$3,\"mode\":\"sink\",\"seed\":$4}"
}
check_bench() { # JSON BYTES WHAT
	[ "$(echo "$1" | json_get ok)" = True ] || fail "$3: $1"
	[ "$(echo "$1" | json_get peer_count)" = "$2" ] || fail "$3: byte count: $1"
	[ "$(echo "$1" | json_get sent_hash)" = "$(echo "$1" | json_get peer_hash)" ] || fail "$3: hash: $1"
}
# pmtu N KEY ADDR_SUBSTRING -> "udp_payload max probes acked lost" of node
# N's connection to KEY (the one whose address contains ADDR_SUBSTRING)
pmtu() {
	api "$1" GET /v1/quic/conns | "$PYTHON" -c '
import json, sys
key, addr = sys.argv[1], sys.argv[2]
for c in json.load(sys.stdin)["conns"]:
    if c["peer_key"] == key and addr in c["addr"]:
        p = c["pmtu"]
        print(p["udp_payload"], p["max"], p["probes"], p["acked"], p["lost"])
        break
' "$2" "$3"
}

for n in 1 2 3; do
	netns_weftd "$n" uring "$D" --workers 2
done
WEFTD_LOG=$LOG1
for n in 1 2 3; do
	eval "K$n=$(api "$n" GET /v1/status | json_get node_key)"
done

# bpmtu JSON -> "udp_payload probes acked lost" of a bench's connection
bpmtu() { echo "$1" | "$PYTHON" -c 'import json,sys; p=json.load(sys.stdin)["pmtu"]; print(p["udp_payload"], p["probes"], p["acked"], p["lost"])'; }
# kept N TARGET: a connection left open (ping keep), for /v1/quic/conns
kept() { api "$1" POST /v1/quic/ping -d "{\"peer\":\"$2\",\"keep\":true}" | grep -q rtt_us; }

# 9000 bytes end to end, IPv6 then IPv4 (each its own connection). The
# bench's connection (node 1 the client) says what it validated; a kept
# connection shows both ends in /v1/quic/conns (the server probes too).
for fam in 6 4; do
	if [ "$fam" = 6 ]; then a2="[$(netns_ip6 2)]" a1=$(netns_ip6 1); else a2=$(netns_ip4 2) a1=$(netns_ip4 1); fi
	out=$(bench 1 "$K2@$a2:4433" 67108864 "$fam")
	check_bench "$out" 67108864 "IPv$fam 64 MiB on 9000-byte links"
	read -r sz pr ac lo <<<"$(bpmtu "$out")"
	[ "$ac" -ge 1 ] && [ "$sz" -ge 8949 ] && [ "$sz" -le 8952 ] ||
		fail "IPv$fam: bench connection not validated: size $sz probes $pr acked $ac lost $lo"
	kept 1 "$K2@$a2:4433" || fail "IPv$fam: ping keep"
	wait_for "[ \"\$(pmtu 1 $K2 '${a2#[}' | cut -d' ' -f4)\" -ge 1 ] 2>/dev/null && [ \"\$(pmtu 2 $K1 '$a1' | cut -d' ' -f4)\" -ge 1 ] 2>/dev/null" 50 ||
		fail "IPv$fam: kept connection: client $(pmtu 1 "$K2" "${a2#[}"), server $(pmtu 2 "$K1" "$a1") (want acked >= 1 each)"
	read -r csz cmx _ <<<"$(pmtu 1 "$K2" "${a2#[}")"
	read -r ssz smx _ <<<"$(pmtu 2 "$K1" "$a1")"
	[ "$cmx" = 8952 ] && [ "$smx" = 8952 ] || fail "IPv$fam: ceilings $cmx / $smx, want 8952 (9000 less headers, lo_udp_payload)"
	[ "$csz" -ge 8949 ] && [ "$ssz" -ge 8949 ] || fail "IPv$fam: sizes $csz / $ssz"
	pass "IPv$fam: jumbo datagrams validated (bench $sz bytes after $pr probe(s); kept connection: client $csz, server $ssz), 64 MiB intact ($(echo "$out" | json_get mbit_s) Mbit/s)"
done

# Host 3's bridge port carries 1500 bytes, unknown to either end's route:
# the jumbo probe is lost QUIC_PM_TRIES (3) times, 1452 is validated.
a3=$(netns_ip4 3)
out=$(bench 1 "$K3@$a3:4433" 16777216 7)
check_bench "$out" 16777216 "16 MiB across the 1500-byte hop"
kept 1 "$K3@$a3:4433" || fail "ping keep to node 3"
wait_for "[ \"\$(pmtu 1 $K3 $a3 | cut -d' ' -f5)\" -ge 3 ] && [ \"\$(pmtu 1 $K3 $a3 | cut -d' ' -f4)\" -ge 1 ]" 100 ||
	fail "across the 1500-byte hop: $(pmtu 1 "$K3" "$a3") (want 3 or more lost (a probe late under load counts), one acked)"
read -r sz mx pr ac lo <<<"$(pmtu 1 "$K3" "$a3")"
[ "$sz" -ge 1449 ] && [ "$sz" -le 1452 ] || fail "across the 1500-byte hop: size $sz"
read -r bsz bpr bac blo <<<"$(bpmtu "$out")"
pass "across a 1500-byte hop: $lo jumbo probes lost, $sz bytes validated (the bench's connection: $bsz bytes, $blo lost), 16 MiB intact"

# Back to 1500-byte links on hosts 1 and 2. Host 2 also answers at an
# address host 1 reaches through a gateway (host 2 itself): not on the
# link as far as the route says.
stop_weftd "$PID1" || fail "node 1 did not stop cleanly"
for i in 1 2; do
	ip -n "$(netns_name "$i")" link set eth0 mtu 1500
done
GW=203.0.113.2
ip -n "$(netns_name 2)" addr add "$GW/32" dev eth0 || fail "address on host 2"
ip -n "$(netns_name 1)" route add "$GW/32" via "$(netns_ip4 2)" || fail "route via host 2"
netns_weftd 1 uring "$D" --workers 2
WEFTD_LOG=$LOG1
# Meanwhile every IPv4 datagram on host 1's bridge port, both ways, is
# looked at: DF set on each (RFC 9000 section 14), the GSO trains' too
# (the kernel's default set it only on a packet within the route's MTU,
# which a train is not: io_sock_no_frag).
rm -f "$D/df" "$D/df.up" "$D/df.stop"
ip netns exec "$BR" "$PYTHON" - p1 4433 "$D/df" <<'PY' &
import socket, struct, sys, time, os
# ETH_P_ALL: a bridge port's frames go to the bridge before any socket
# bound to one protocol would see them
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((sys.argv[1], 0))
s.settimeout(0.2)
port, out = int(sys.argv[2]), sys.argv[3]
n = df = 0
end = time.time() + 60
open(out + ".up", "w").close()
while time.time() < end and not os.path.exists(out + ".stop"):
    try:
        f = s.recv(65535)
    except socket.timeout:
        continue
    ip = f[14:]
    if f[12:14] != b"\x08\x00" or len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
        continue
    ihl = (ip[0] & 15) * 4
    if len(ip) < ihl + 4 or port not in struct.unpack("!HH", ip[ihl:ihl + 4]):
        continue
    n += 1
    df += (struct.unpack("!H", ip[6:8])[0] & 0x4000) != 0
open(out, "w").write("%d %d\n" % (n, df))
PY
CAP=$!
wait_for '[ -f "$D/df.up" ]' 50 || fail "capture did not start"
out=$(bench 1 "$K2@$(netns_ip4 2):4433" 4194304 9)
touch "$D/df.stop"
wait "$CAP"
check_bench "$out" 4194304 "4 MiB on 1500-byte links"
read -r sz pr ac lo <<<"$(bpmtu "$out")"
[ "$ac" = 1 ] && [ "$lo" = 0 ] && [ "$sz" -ge 1469 ] && [ "$sz" -le 1472 ] ||
	fail "IPv4 on a 1500-byte link: size $sz probes $pr acked $ac lost $lo (want 1469-1472, one probe acked)"
pass "IPv4 on a 1500-byte link: $sz-byte datagrams after $pr probe (ngtcp2's own probing stops at 1444)"
out=$(bench 1 "$K2@[$(netns_ip6 2)]:4433" 4194304 10)
check_bench "$out" 4194304 "IPv6 4 MiB on 1500-byte links"
read -r sz pr ac lo <<<"$(bpmtu "$out")"
[ "$pr" = 0 ] && [ "$sz" -le 1452 ] || fail "IPv6 on a 1500-byte link probed: $sz $pr $ac $lo"
out=$(bench 1 "$K2@$GW:4433" 4194304 11)
check_bench "$out" 4194304 "4 MiB through a gateway"
read -r gsz gpr gac glo <<<"$(bpmtu "$out")"
[ "$gpr" = 0 ] && [ "$gsz" -le 1452 ] || fail "a peer behind a gateway probed: $gsz $gpr $gac $glo"
pass "not probed: IPv6 on the link ($sz bytes), IPv4 behind a gateway ($gsz bytes): ngtcp2's own sizing"
read -r cn cdf <"$D/df" || fail "no capture result"
[ "$cn" -ge 20 ] && [ "$cdf" = "$cn" ] || fail "DF: $cdf of $cn IPv4 frames of the transfer carry it"
pass "DF on all $cn IPv4 frames of the transfer (GSO trains included)"

for p in "$PID1" "$PID2" "$PID3"; do
	stop_weftd "$p" || fail "a node did not stop cleanly"
done
finish
