#!/bin/bash
# SPDX-License-Identifier: MIT
# LAN discovery (BEP 14 Local Service Discovery) in network namespaces on
# one bridge, with no DHT bootstrap anywhere (lan.discovery = auto is on):
# - weft hosts 1 and 2 find each other by multicast: each is in the
#   other's LAN table as a weft peer and in its DHT routing table, heard on
#   both groups (239.192.152.143 and ff15::efc0:988f);
# - libtorrent (python3-libtorrent, LSD on) on host 3 with a torrent added
#   by the infohash host 1 seeds: libtorrent hears weft's announce (its
#   lsd_peer_alert names host 1) and weft hears libtorrent's (host 1's LAN
#   table shows host 3 as a BitTorrent peer announcing that infohash);
# - host 4, whose DHT neither reaches nor hears anyone (UDP to port 6881
#   dropped both ways),
#   downloads host 1's content: the only provider it can know of is the
#   LAN peer that announced it.
. "$TOP/tests/lib/common.sh"
prologue netns 4
"$PYTHON" -c 'import libtorrent' 2>/dev/null || skip "python3-libtorrent not installed (make deps)"
command -v nft >/dev/null || skip "nft missing (make deps)"
# No IGMP querier on this bridge: without snooping it floods the groups.
ip -n "${NS_PREFIX}br" link set br0 type bridge mcast_snooping 0 || fail "bridge snooping off"
# libtorrent runs LSD only on a local network (RFC 1918), and takes an
# announce only from its own subnet: the hosts' IPv4 LAN is 10.77.0.0/24
# here, not the documentation range netns.sh gives them.
ip4() { echo "10.77.0.$1"; }
for n in 1 2 3 4; do
	ip -n "$(netns_name "$n")" -4 addr flush dev eth0 &&
		ip -n "$(netns_name "$n")" addr add "$(ip4 "$n")/24" dev eth0 || fail "addresses"
done

start_lan() { # N [weftd args...]
	local n=$1
	shift
	mkdir -p "$D/n$n"
	NETNS_EXEC="ip netns exec $(netns_name "$n")"
	# BEP 14's rates (an announce a minute, each infohash every 5 min)
	# made short for the test
	TEST_LAN=auto start_weftd "$D/n$n" --state-dir "$D/n$n" --io uring --workers 2 \
		--quic-port 4433 --dht-port 6881 --log-level info --set lan.min_gap_s=1 \
		--set lan.announce_s=10 "$@"
	eval "PID$n=$WEFTD_PID"
	eval "LOG$n=$WEFTD_LOG"
}
lan() { ctl "$1" --json lan status; }
# has_peer N ADDR KIND [IH]: host N's LAN table has ADDR as KIND (weft or
# bittorrent), having announced IH when given.
has_peer() {
	lan "$1" | "$PYTHON" -c 'import json,sys
o=json.load(sys.stdin); a,kind=sys.argv[1],sys.argv[2]; ih=sys.argv[3] if len(sys.argv)>3 else None
ok=[p for p in o["peers"] if p["addr"].split(":")[0]==a and p["weft"]==(kind=="weft")
    and (ih is None or ih in p["infohashes"])]
sys.exit(0 if ok else 1)' "$2" "$3" ${4:+"$4"}
}
dht_nodes() { ctl "$1" --json dht status | json_get nodes4; }

ip netns exec "$(netns_name 4)" nft -f - <<'NFT' || fail "nft on host 4"
table inet lsdtest {
	chain out {
		type filter hook output priority 0;
		udp dport 6881 drop
	}
	chain in {
		type filter hook input priority 0;
		udp dport 6881 drop
	}
}
NFT
for n in 1 2 4; do start_lan "$n"; done
grep -q "LAN discovery (BEP 14) on eth0" "$LOG1" || fail "LAN discovery not on by default without a bootstrap: $(cat "$LOG1")"

# 1. two weft nodes
wait_for 'has_peer 1 "$(ip4 2)" weft && has_peer 2 "$(ip4 1)" weft' 200 ||
	fail "hosts 1 and 2 do not hear each other: $(lan 1) / $(lan 2)"
wait_for '[ "$(dht_nodes 1)" -ge 1 ] && [ "$(dht_nodes 2)" -ge 1 ]' 200 ||
	fail "LAN peers not in the DHT tables: $(ctl 1 --json dht status) / $(ctl 2 --json dht status)"
pass "hosts 1 and 2 found each other by LSD (DHT nodes: $(dht_nodes 1), $(dht_nodes 2))"
# v6_peer N ADDR6: host N heard a weft announce from ADDR6 (the IPv6 group)
v6_peer() {
	lan "$1" | "$PYTHON" -c 'import json,sys
sys.exit(0 if any(p["addr"].startswith("[" + sys.argv[1] + "]:") and p["weft"]
                  for p in json.load(sys.stdin)["peers"]) else 1)' "$2"
}
wait_for 'v6_peer 1 "$(netns_ip6 2)" && v6_peer 2 "$(netns_ip6 1)"' 200 ||
	fail "hosts 1 and 2 do not hear each other over IPv6: $(lan 1) / $(lan 2)"
pass "hosts 1 and 2 also heard each other on [ff15::efc0:988f]:6771 (IPv6)"

# 2. content on host 1, announced on the LAN
"$PYTHON" -c 'import random,sys; random.seed(14); sys.stdout.buffer.write(random.randbytes(3 << 20))' >"$D/file.bin"
ctl 1 --json content add "$D/file.bin" >"$D/add" || fail "content add"
ID=$(json_get items 0 id <"$D/add")
IH=${ID:0:40}

# 3. libtorrent, both ways
ip netns exec "$(netns_name 3)" "$PYTHON" "$TOP/tests/lib/lt_lsd.py" "$(ip4 3)" 6881 "$IH" 60 \
	</dev/null >"$D/lt.out" 2>"$D/lt.err" &
LTPID=$!
on_exit "kill_job -TERM $LTPID"
wait_for 'grep -q "\"ev\": \"ready\"" "$D/lt.out"' 200 || fail "libtorrent did not start: $(cat "$D/lt.err")"
wait_for 'grep -q "\"ip\": \"$(ip4 1)\"" "$D/lt.out"' 300 ||
	fail "libtorrent did not hear host 1's announce of $IH: $(cat "$D/lt.out") $(lan 1)"
pass "libtorrent heard weft's LSD announce of $IH ($(grep lsd_peer "$D/lt.out" | head -1))"
wait_for 'has_peer 1 "$(ip4 3)" bittorrent "$IH"' 300 ||
	fail "host 1 did not hear libtorrent's announce: $(lan 1)"
grep -q "LAN peer .*BitTorrent, port 6881" "$LOG1" || fail "no log line for the libtorrent peer"
pass "weft heard libtorrent's LSD announce of $IH"

# 4. a download that only the LAN can find providers for
wait_for 'has_peer 4 "$(ip4 1)" weft "$IH"' 300 || fail "host 4 did not hear host 1: $(lan 4)"
[ "$(dht_nodes 4)" = 0 ] || fail "host 4's DHT reached someone: $(ctl 4 --json dht status)"
ctl 4 --json content get "$ID" --out "$D/out" --no-wait >"$D/get" || fail "content get"
J=$(json_get job <"$D/get")
wait_for '[ "$(ctl 4 --json content jobs "$J" | json_get done)" = True ]' 300 ||
	fail "download did not finish: $(ctl 4 --json content jobs "$J")"
[ "$(ctl 4 --json content jobs "$J" | json_get state)" = done ] || fail "download failed: $(ctl 4 --json content jobs "$J")"
[ "$(b3sum --no-names "$D/out/$ID")" = "$ID" ] || fail "downloaded file differs"
LP=$(ctl 4 metrics | awk '$1 == "weft_content_lan_providers_total" { print $2 }')
[ "${LP:-0}" -ge 1 ] || fail "the download did not take a LAN provider (weft_content_lan_providers_total=$LP)"
pass "host 4 downloaded from its LAN provider with an empty DHT (lan providers taken: $LP)"

for n in 1 2 4; do eval "stop_weftd \$PID$n" || fail "host $n did not stop cleanly"; done
finish
