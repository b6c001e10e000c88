#!/bin/bash
# SPDX-License-Identifier: MIT
# Fault: the link goes down and comes back (ip link set down/up in the
# node's namespace), long enough for every send to fail (no route) and the
# DHT's queries to time out. Three weftd on a bridge, h2 and h3
# bootstrapping from h1. h3's eth0 goes down for 12 s: it keeps running
# (no crash, no spin: its CPU time over the outage stays small), and after
# the link is up it rejoins without a restart: its routing table has nodes
# again, h1 and h2 answer its DHT pings, and QUIC pings by key work both
# ways (h3 -> h2, h2 -> h3). Addresses are untouched by a link down, so the
# node's sockets stay bound; what it must survive is the sends failing.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 3
IP1=$(netns_ip4 1)
netns_weftd 1 uring "$D" --workers 1
for n in 2 3; do
	netns_weftd "$n" uring "$D" --workers 1 --set "dht.bootstrap=$IP1:6881"
done
K2=$(ctl 2 --json status | json_get node_key)
K3=$(ctl 3 --json status | json_get node_key)
nodes() { ctl "$1" --json dht status | json_get nodes4; }
wait_for '[ "$(nodes 3)" -ge 2 ] && [ "$(nodes 2)" -ge 2 ]' 600 ||
	fail "the DHT did not form: $(ctl 3 dht status)"
# (h2's record may not be in the DHT yet when the tables have formed)
wait_for "ctl 3 --json quic ping $K2 >/dev/null 2>&1" 300 || fail "h3 -> h2 before the fault"
pass "three nodes joined; h3 pings h2 by key"

cpu() { awk '{print $14 + $15}' "/proc/$PID3/stat"; } # utime + stime, clock ticks
c0=$(cpu)
ip -n "$(netns_name 3)" link set eth0 down || fail "link down"
t0=$(date +%s)
# while down: sends fail, the node stays up and answers its control socket
ctl 3 --json dht ping "$IP1:6881" >/dev/null 2>&1 && fail "a DHT ping went through a down link"
ctl 3 --json status >/dev/null || fail "h3 not answering with its link down"
# the outage: 12 s (the fault's length, not a wait for something)
sleep 12
kill -0 "$PID3" || fail "h3 died with its link down: $(tail -n 20 "$LOG3")"
c1=$(cpu)
ticks=$(getconf CLK_TCK)
# a node with nothing to send spends well under a CPU-second in 12 s; a
# retry loop spinning on send errors would spend most of the 12
[ $((c1 - c0)) -le $((5 * ticks)) ] ||
	fail "h3 used $(((c1 - c0) / ticks)) CPU-seconds in a 12 s outage (spinning?)"
ip -n "$(netns_name 3)" link set eth0 up || fail "link up"
pass "link down $(($(date +%s) - t0)) s: h3 alive, answering, $(((c1 - c0) * 1000 / ticks)) ms CPU"

# Rejoin, without a restart: DHT pings, the routing table, QUIC by key.
wait_for "ctl 3 --json dht ping $IP1:6881 >/dev/null 2>&1" 300 || fail "h3 cannot ping h1 after the link came back"
wait_for '[ "$(nodes 3)" -ge 2 ]' 600 || fail "h3's routing table did not refill: $(ctl 3 dht status)"
wait_for "ctl 3 --json quic ping $K2 >/dev/null 2>&1" 300 || fail "h3 -> h2 by key after the outage"
wait_for "ctl 2 --json quic ping $K3 >/dev/null 2>&1" 300 || fail "h2 -> h3 by key after the outage"
[ "$(ctl 3 --json status | json_get node_key)" = "$K3" ] || fail "h3 is not the same node"
pass "link up: h3 rejoined without a restart ($(nodes 3) DHT nodes; QUIC by key both ways)"

for n in 3 2 1; do
	eval "stop_weftd \$PID$n" || fail "host $n's weftd did not stop cleanly"
done
finish
