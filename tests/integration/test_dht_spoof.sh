#!/bin/bash
# SPDX-License-Identifier: MIT
# Forged sources cannot weaponise bans. Three hosts on a bridge: A (the
# victim, weftd), B (a real weftd node that A has validated: it answered
# A's ping), C (the attacker). C sends thousands of DHT queries whose IPv4
# source is forged to be B's address (raw socket, IP_HDRINCL). Afterwards:
# B is not banned on A, B's own pings are answered, and A's counters show
# the forged traffic as rate-limited drops. Run twice: A with the software
# policer (io_uring) and A with the XDP program (native, on its veth).
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 3
printf '#!/bin/sh\nmount -t bpf bpf /sys/fs/bpf || exit 1\nexec "$@"\n' >"$D/bpffs.sh"
chmod +x "$D/bpffs.sh"
IPA=$(netns_ip4 1) IPB=$(netns_ip4 2)
N=5000

# spoof.py DST SRC COUNT: forged find_node queries, as fast as Python goes.
cat >"$D/spoof.py" <<'PY'
import socket, struct, sys
dst, src, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
sent = 0
for i in range(n):
    payload = (b"d1:ad2:id20:SPOOFSPOOFSPOOFSPOOF6:target20:%020de1:q9:find_node1:t2:%02x1:y1:qe"
               % (i, i & 0xff))
    udp = struct.pack("!HHHH", 6881, 6881, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0x4000, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    s.sendto(ip + udp, (dst, 0))
    sent += 1
print(sent)
PY

mkdir -p "$D/n2"
NETNS_EXEC="ip netns exec $(netns_name 2)" start_weftd "$D/n2" --state-dir "$D/n2" --io uring --workers 1

round() { # MODE ARGS...
	local mode=$1; shift
	rm -rf "$D/n1"; mkdir -p "$D/n1"
	NETNS_EXEC="ip netns exec $(netns_name 1) $D/bpffs.sh" start_weftd "$D/n1" --state-dir "$D/n1" \
		--workers 1 "$@"
	local pid=$WEFTD_PID
	# A validates B: B answers A's query with A's transaction id.
	wait_for "ctl 1 dht ping $IPB:6881 >/dev/null 2>&1" 50 || fail "$mode: A cannot ping B"
	local ev
	ev=$(ctl 1 metrics | awk '/^weft_dht_evidence_total/ {print $2}')
	[ "${ev:-0}" -ge 1 ] || fail "$mode: B's reply not counted as evidence: $ev"
	local c0 d0
	c0=$(ctl 1 --json xdp status | json_get counters)
	d0=$(ctl 1 --json dht status)
	sent=$(netns_exec 3 "$PYTHON" "$D/spoof.py" "$IPA" "$IPB" $N) || fail "$mode: spoof sender"
	[ "$sent" -eq $N ] || fail "$mode: sent $sent"
	sleep 1
	local c1 d1
	c1=$(ctl 1 --json xdp status | json_get counters)
	d1=$(ctl 1 --json dht status)
	read -r rate acc <<<"$("$PYTHON" -c 'import json,sys
a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2])
print(b["drop_rate_dht"]-a["drop_rate_dht"], b["redirect"]-a["redirect"])' "$c0" "$c1")"
	read -r fn unp <<<"$("$PYTHON" -c 'import json,sys
a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2])
print(b["queries_in"]["find_node"]-a["queries_in"]["find_node"], b["budget_unproven"]-a["budget_unproven"])' "$d0" "$d1")"
	echo "$mode: forged $N, rate-limited $rate, accepted $acc, find_node answered $fn, DHT budget drops (unproven) $unp"
	[ "$rate" -ge $((N / 2)) ] || fail "$mode: forged flood not rate-limited: $rate of $N"
	[ "$fn" -le $((N - rate)) ] || fail "$mode: more find_node handled ($fn) than accepted"
	ctl 1 --json ban list | grep -q "\"$IPB/32\"" && fail "$mode: B banned on forged evidence"
	grep -q "exceeded its query budget" "$WEFTD_LOG" && fail "$mode: forged overrun reported for a ban"
	# B's own queries are answered once its bucket refills (100/s, burst 200).
	sleep 2
	ctl 2 dht ping "$IPA:6881" >/dev/null || fail "$mode: B's ping to A not answered"
	ctl 1 dht ping "$IPB:6881" >/dev/null || fail "$mode: A cannot reach B after the flood"
	pass "$mode: forged flood from B's address rate-limited ($rate of $N), B not banned, B answered"
	# With the packet limit out of the way the DHT itself sees the whole
	# forged flood: it overruns B's query budget, which is dropped and
	# counted as unproven, and still bans nobody.
	ctl 1 xdp limits set --dht 1000000/1000000 >/dev/null || fail "$mode: raise limits"
	d0=$(ctl 1 --json dht status | json_get budget_unproven)
	netns_exec 3 "$PYTHON" "$D/spoof.py" "$IPA" "$IPB" $N >/dev/null || fail "$mode: spoof sender 2"
	sleep 1
	unp=$(($(ctl 1 --json dht status | json_get budget_unproven) - d0))
	echo "$mode: limits raised: DHT budget drops (unproven) $unp of $N"
	[ "$unp" -ge $((N / 2)) ] || fail "$mode: DHT budget did not see the flood: $unp"
	ctl 1 --json ban list | grep -q "\"$IPB/32\"" && fail "$mode: B banned after the budget overrun"
	sleep 4 # B's DHT budget refills (50/s, burst 200)
	ctl 2 dht ping "$IPA:6881" >/dev/null || fail "$mode: B's ping not answered after the overrun"
	pass "$mode: DHT budget overrun by forged queries ($unp dropped): no ban"
	stop_weftd "$pid" || fail "$mode: stop"
}

round software --io uring
round xdp --xdp eth0 --xdp-mode native
finish
