#!/bin/bash
# SPDX-License-Identifier: MIT
# A live daemon fuzzed from outside (issue 30, item 4; docs/FUZZING.md):
# weftd (the ASan build, a relay: --relay, 16 relay ports) alone in a
# network namespace, with its DHT, QUIC (and STUN) ports, relay ports,
# control socket, gateway and dashboard; the black-box
# harness (tests/tools/blackbox_fuzz.py) throws mutated real traffic at all
# of them from many loopback source addresses and checks after each batch
# that every one still answers. Then SIGTERM: weftd exits 0 with no
# sanitizer report. The short run here (20,000 datagrams, 1,000 HTTP
# requests); the full run by hand: FUZZ_LIVE_DATAGRAMS=1000000
# FUZZ_LIVE_HTTP=100000 tests/run.sh test_fuzz_live (figures in
# docs/FUZZING.md).
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 1
NDG=${FUZZ_LIVE_DATAGRAMS:-20000}
NHTTP=${FUZZ_LIVE_HTTP:-1000}
GW=$((QP + 2)) WP=$((QP + 3)) RLO=$((QP + 10)) RHI=$((QP + 25))
# Per-source and global budgets would drop most datagrams before they are
# parsed: lifted, so that the parsers see them (the harness also rotates
# its source address every 100 datagrams).
NETNS_EXEC="ip netns exec $(netns_name 1)" start_weftd "$D" --state-dir "$D" --io uring --workers 1 \
	--quic-port $QP --dht-port $DP --gateway "127.0.0.1:$GW" --set gateway.services=echo \
	--relay --set "relay.ports=$RLO-$RHI" \
	--set "dashboard.listen=127.0.0.1:$WP" --set xdp.unvalidated_dht_pps=0 --log-level warn
PID=$WEFTD_PID
CTL svc publish echo --backend builtin >/dev/null || fail "publish echo"

netns_exec 1 "$PYTHON" "$TOP/tests/tools/blackbox_fuzz.py" --dht "127.0.0.1:$DP" \
	--quic "127.0.0.1:$QP" --ctl "$SOCK" --gateway "127.0.0.1:$GW" --dashboard "127.0.0.1:$WP" \
	--relay-ports "$RLO-$RHI" --datagrams "$NDG" --http "$NHTTP" --http-timeout 0.2 ${FUZZ_LIVE_KEEP:+--keep-dir "$FUZZ_LIVE_KEEP"} --seed "${FUZZ_LIVE_SEED:-$RANDOM}" >"$D/report.json"
rc=$?
cat "$D/report.json"
[ "$rc" = 0 ] || fail "weftd stopped answering under mutated traffic (report above)"
[ "$(json_get captured_initials <"$D/report.json")" -ge 1 ] ||
	fail "no QUIC Initial captured from weftd to mutate"
kill -0 "$PID" || fail "weftd died"
[ "$("$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["datagrams"]["relay"])' <"$D/report.json")" -ge 1 ] ||
	fail "no datagram went to the relay ports"
pass "$NDG mutated datagrams (KRPC, QUIC, STUN, relay binds) and $NHTTP mutated HTTP requests (control, gateway, dashboard): weftd answered after every batch"

stop_weftd "$PID"
rc=$?
[ "$rc" = 0 ] || fail "weftd exit status $rc after the fuzzing"
grep -q "Sanitizer" "$WEFTD_LOG" && fail "sanitizer report: $(grep -A20 Sanitizer "$WEFTD_LOG" | head -40)"
san_reports && fail "sanitizer report (above)"
pass "SIGTERM: exit 0, no sanitizer report"
finish
