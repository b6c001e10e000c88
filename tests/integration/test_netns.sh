#!/bin/bash
# SPDX-License-Identifier: MIT
# The namespace helper every multi-node test uses: hosts joined through a
# bridge reach each other over IPv4 and IPv6, and everything is removed on
# exit, also when the test fails.
set -u
. "$TOP/tests/lib/common.sh"
prologue root

# A failing test in a subshell must still clean up after itself.
prefix=$(bash -c '. "$TOP/tests/lib/netns.sh"; netns_create 3 >/dev/null; echo "$NS_PREFIX"; exit 3')
[ -n "$prefix" ] || fail "helper printed no prefix"
ip netns list | grep -q "^$prefix" && fail "namespaces left behind after a failing test"
pass "cleanup on failure"

# A test killed before its cleanup (SIGKILL: no trap runs) leaves its
# namespaces; the next netns_create removes those of a dead PID (a later
# test given that PID failed at `ip netns add` with "File exists") and
# leaves those of a live one alone.
f=$(mktemp)
(bash -c '. "$TOP/tests/lib/netns.sh"; netns_create 2 >/dev/null; echo "$NS_PREFIX" >"$0"; kill -9 $$' "$f"; true) 2>/dev/null
dead=$(cat "$f")
rm -f "$f"
[ -n "$dead" ] || fail "the helper printed no prefix"
[ "$(ip netns list | grep -c "^$dead[a-z]")" -eq 3 ] || fail "the killed helper's namespaces are not there to be swept"
sleep 300 &
live=$!
ip netns add "wt${live}h1" || fail "cannot plant a live test's namespace"
bash -c '. "$TOP/tests/lib/netns.sh"; netns_create 2 pair >/dev/null' || fail "netns_create after a killed test"
ip netns list | grep -q "^$dead[a-z]" && fail "a dead test's namespaces were not removed: $(ip netns list | grep "^$dead")"
ip netns list | grep -q "^wt${live}h1" || fail "a live test's namespace was removed"
ip netns del "wt${live}h1"
kill "$live"
wait "$live" 2>/dev/null
pass "namespaces of a killed test removed by the next (live tests' kept)"

. "$TOP/tests/lib/netns.sh"
netns_create 3 || fail "netns_create"
[ "$(ip netns list | grep -c "^$NS_PREFIX")" -eq 4 ] || fail "expected 3 hosts + bridge"
for i in 1 2 3; do
	for j in 1 2 3; do
		[ $i = $j ] && continue
		netns_exec $i ping -c1 -W2 "$(netns_ip4 $j)" >/dev/null || fail "v4 $i -> $j"
		netns_exec $i ping -6 -c1 -W2 "$(netns_ip6 $j)" >/dev/null || fail "v6 $i -> $j"
	done
done
pass "hosts reach each other"
# Nothing leaks to the root namespace.
ip addr | grep -q "198.51.100." && fail "test address in the root namespace"
netns_cleanup
ip netns list | grep -q "^$NS_PREFIX" && fail "namespaces left after cleanup"

netns_create 2 pair || fail "pair"
netns_exec 1 ping -c1 -W2 "$(netns_ip4 2)" >/dev/null || fail "pair v4"
netns_cleanup
pass "veth pair"
finish
