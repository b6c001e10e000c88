#!/bin/bash
# SPDX-License-Identifier: MIT
# Fault: the wall clock stepped by +1 h, then -1 h, without touching the
# host's clock (loopback, uring, no root). Node A (the release weftd) runs
# with tests/integration/wallclock_shift.c preloaded: its CLOCK_REALTIME,
# gettimeofday and time are shifted by the seconds in a file the test
# rewrites; its monotonic clock and the kernel's timers are not (a time
# namespace cannot shift the realtime clock, and libfaketime's timed-wait
# wrappers broke weftd's monotonic condition variables). Node B is
# unshifted. Before the steps A holds: a ban with a 600 s TTL, B's BEP 44
# item and announce in its DHT storage, B's node record. After each step:
#  - A's wall clock is stepped (a share's creation time shows it);
#  - nothing expired en masse: the ban still has its TTL, the DHT storage
#    lost nothing (expiry runs on the monotonic clock);
#  - node records: A and B resolve each other's (--fresh: A's record put
#    after the step; BEP 44 seq does not come from the clock) and QUIC-ping
#    each other (KEY@ADDR: on loopback the records list no address); B's
#    BEP 44 item is still got from A;
#  - A does not spin: the content announcer's and download jobs' waits had
#    CLOCK_REALTIME deadlines; an hour in the past, each returned at once
#    and the announcer's loop took a CPU (1 h ahead, a wait lasted until
#    something else woke it); fixed, they are monotonic;
#  - A's community sync thread keeps its tick: a lone community created
#    after each step is looked up again every 3 s (its waits had
#    CLOCK_REALTIME deadlines: an hour ahead, it slept for the hour; an
#    hour behind, it spun);
#  - a download from B to A completes and verifies within its deadline;
#  - A's service descriptor is signed again at once after each step (it
#    carries A's wall time: 15 min of a descriptor from the future, or
#    expired, after NTP corrects a clock is what the step detection
#    avoids), and once A's clock is back B calls A's echo.
set -u
. "$TOP/tests/lib/common.sh"
prologue
: "${WEFTD_REL:=$TOP/build/weftd}"
gcc -shared -fPIC -O2 -o "$D/shift.so" "$TOP/tests/integration/wallclock_shift.c" -ldl ||
	fail "cannot build the clock shim"
echo 0 >"$D/shift"
mkdir -p "$D/a" "$D/b"
start_weftd "$D/b" --state-dir "$D/b" --io uring --quic-port $QP --dht-port $DP
B=$WEFTD_PID
AQ=$((QP + 2))
WALLCLOCK_SHIFT_FILE="$D/shift" LD_PRELOAD="$D/shift.so" WEFTD="$WEFTD_REL" \
	start_weftd "$D/a" --state-dir "$D/a" --io uring --quic-port $AQ --dht-port $((AQ + 1)) \
	--bootstrap "127.0.0.1:$DP"
A=$WEFTD_PID ALOG=$WEFTD_LOG
grep -q "shift.so" "/proc/$A/maps" || fail "the shim is not loaded in A"
ca() { "$WEFTCTL" --socket "$D/a/weftd.sock" "$@"; }
cb() { "$WEFTCTL" --socket "$D/b/weftd.sock" "$@"; }
KA=$(ca --json status | json_get node_key) KB=$(cb --json status | json_get node_key)
wait_for '[ "$(ca --json dht status | json_get nodes4)" -ge 1 ] && [ "$(cb --json dht status | json_get nodes4)" -ge 1 ]' 300 ||
	fail "A and B did not meet in the DHT"
ca --json ban add 192.0.2.0/24 --ttl 600 >/dev/null || fail "ban add"
ITEM=$(cb --json dht put --immutable "clock fault item" | json_get target) || fail "dht put"
# what A's DHT stores, by kind (the figures of `dht status`)
storage() { ca --json dht status | "$PYTHON" -c 'import json,sys
s=json.load(sys.stdin)
print(" ".join("%s=%s" % (k, v) for k, v in sorted(s.items()) if k.startswith("stor") or k in ("items", "peers", "infohashes")))'; }
wait_for 'ca --json dht get "$ITEM" >/dev/null 2>&1' 100 || fail "A cannot get B's item"
S0=$(storage)
ca svc publish echo --backend builtin >/dev/null || fail "svc publish on A"
pass "A (clock shim) and B joined; A holds a 600 s ban, B's item ($S0) and publishes echo"

# signed_off: when A's descriptor of echo expires, in seconds from now by
# the true clock (signed at A's wall time t: t + 3600)
signed_off() { echo $(($(ca --json svc ls | json_get services 0 expires) - $(date +%s))); }

# check_all LABEL: everything above, with A's clock as it is now.
n=0
check_all() {
	local l=$1 ttl f id
	n=$((n + 1))
	ttl=$(ca --json ban list | "$PYTHON" -c 'import json,sys
print([b["expires_in_s"] for b in json.load(sys.stdin)["bans"] if b["cidr"] == "192.0.2.0/24"][0])')
	[ "$ttl" -gt 0 ] && [ "$ttl" -le 600 ] || fail "$l: the 600 s ban now expires in $ttl s"
	# nothing expired: no figure went down (announces of the downloads add)
	S1=$(storage)
	"$PYTHON" -c 'import sys
a, b = (dict(x.split("=") for x in v.split()) for v in sys.argv[1:3])
sys.exit(0 if all(int(b[k]) >= int(a[k]) for k in a) else 1)' "$S0" "$S1" ||
		fail "$l: A's DHT storage lost entries: $S0 -> $S1"
	S0=$S1
	ca --json dht get "$ITEM" >/dev/null || fail "$l: A cannot get B's BEP 44 item"
	# the community sync thread keeps its tick: a community created now,
	# alone, is looked up again every 3 s (finds_total); its waits had
	# CLOCK_REALTIME deadlines: an hour ahead, the thread slept an hour
	# once the create had woken it; an hour behind, it spun (the CPU
	# check below)
	ca --json community create "clock$n" >/dev/null || fail "$l: community create on A"
	fin=$(ca metrics | awk '$1 == "weft_community_finds_total" {print $2}')
	wait_for '[ "$(ca metrics | awk '"'"'$1 == "weft_community_finds_total" {print $2}'"'"')" -ge $((fin + 2)) ]' 300 ||
		fail "$l: A's lone community clock$n not looked up again twice within 30 s (its sync thread does not tick)"
	# no spin: a wait on a CLOCK_REALTIME deadline an hour in the past
	# returns at once, and a loop of them takes a whole CPU
	c0=$(awk '{print $14 + $15}' "/proc/$A/stat")
	sleep 3
	c1=$(awk '{print $14 + $15}' "/proc/$A/stat")
	cpu=$(((c1 - c0) * 1000 / $(getconf CLK_TCK)))
	[ "$cpu" -le 1500 ] || fail "$l: A used $cpu ms of CPU in 3 s idle (spinning)"
	wait_for "cb --json node resolve $KA --fresh >/dev/null 2>&1" 300 || fail "$l: B cannot resolve A's record"
	wait_for "ca --json node resolve $KB --fresh >/dev/null 2>&1" 300 || fail "$l: A cannot resolve B's record"
	ca --json quic ping "$KB@127.0.0.1:$QP" >/dev/null || fail "$l: A -> B by key"
	cb --json quic ping "$KA@127.0.0.1:$AQ" >/dev/null || fail "$l: B -> A by key"
	f="$D/file$n"
	"$PYTHON" -c 'import random,sys; random.seed(int(sys.argv[1])); sys.stdout.buffer.write(random.randbytes(8 << 20))' "$n" >"$f"
	id=$(cb --json content add "$f" | json_get items 0 id) || fail "$l: add on B"
	timeout 120 "$WEFTCTL" --socket "$D/a/weftd.sock" --json content get "$id" --from "127.0.0.1:$QP" \
		--out "$D/out$n" >"$D/get$n" 2>&1 || fail "$l: download to A: $(cat "$D/get$n")"
	[ "$(b3sum --no-names "$D/out$n/$id")" = "$id" ] || fail "$l: the download does not verify"
	pass "$l: $cpu ms CPU in 3 s idle, ban TTL $ttl s, DHT storage kept ($S1), records resolved, QUIC both ways, item got, 8 MiB download in $(json_get elapsed_ms <"$D/get$n") ms"
}
check_all "clock as is"
for s in 3600 -3600 0; do
	echo "$s" >"$D/shift"
	# A signs its descriptors again at once (within a refresh turn, 2 s):
	# one signed under the old time would be from the future, or expired,
	# for everyone else for up to 15 min (svc.refresh)
	want=$((s + 3600))
	wait_for 'o=$(signed_off); [ $((o - want)) -le 60 ] && [ $((want - o)) -le 60 ]' 100 ||
		fail "A's descriptor not signed again after the step to $s s: it expires in $(signed_off) s, not ~$want s"
	grep -q "wall clock was stepped" "$ALOG" || fail "A did not log the step"
	pass "wall clock stepped to $s s: A's descriptor signed again (expires in $(signed_off) s by the true clock)"
	# A sees the step: a share's creation time is its wall clock
	echo "$s" >"$D/t$s"
	c=$(ca --json content add "$D/t$s" | json_get created) || fail "add on A"
	d=$((c - $(date +%s) - s))
	[ "${d#-}" -le 120 ] || fail "A's wall clock is not stepped by $s s (a share created at $c)"
	check_all "wall clock stepped to $s s"
done
# back on the true time: B finds and calls A's echo (its descriptor valid
# for B again)
wait_for 'cb svc call echo clock >/dev/null 2>&1' 300 || fail "B cannot call A's echo: $(cb svc call echo clock 2>&1)"
pass "clock back: B calls A's echo"
kill -0 "$A" || fail "A died"
stop_weftd "$A" || fail "A did not stop cleanly"
stop_weftd "$B" || fail "B did not stop cleanly"
finish
