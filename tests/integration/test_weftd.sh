#!/bin/bash
# SPDX-License-Identifier: MIT
# weftd + weftctl end to end: status over weftctl and curl, hostile HTTP,
# graceful stop, restart with the same identity, reload, readiness, and the
# errors a new operator meets (bad config, second daemon, missing daemon).
set -u
. "$TOP/tests/lib/common.sh"

prologue

start_weftd "$D" --state-dir "$D" --quic-port $QP --dht-port $DP
PID=$WEFTD_PID

# --- status through weftctl (table and JSON) and curl
out=$("$WEFTCTL" --socket "$SOCK" status) || fail "weftctl status failed"
echo "$out" | grep -q '^node key ' || fail "no node key line: $out"
echo "$out" | grep -q "quic $QP, dht $DP" || fail "ports missing: $out"
# malloc's heap in human units (GET /v1/status "heap")
echo "$out" | grep -Eq '^heap +[0-9.]+ [KMG]?i?B in use, [0-9.]+ [KMG]?i?B free, [0-9.]+ [KMG]?i?B mapped alone$' ||
	fail "no heap line: $out"
key1=$("$WEFTCTL" --socket "$SOCK" --json status | json_get node_key)
[ ${#key1} -eq 64 ] || fail "bad node key '$key1'"
j=$(curl -sf --unix-socket "$SOCK" http://weftd/v1/status) || fail "curl status"
[ "$(echo "$j" | json_get node_key)" = "$key1" ] || fail "curl and weftctl disagree"
[ "$(echo "$j" | json_get io_mode)" = uring ] || fail "io_mode: $j"
[ "$(echo "$j" | json_get state_dir)" = "$D" ] || fail "state_dir: $j"
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "socket mode $(stat -c %a "$SOCK")"
[ "$(stat -c %a "$D/node.key")" = 600 ] || fail "key mode"
pass "status"

# --- node.helper_sched changes only the per-chunk threads (weft-read,
# weft-download: test_content_seed); the packet workers and the periodic
# threads keep normal scheduling
[ "$(thread_policy $PID weft-io)" = 0 ] || fail "weft-io policy '$(thread_policy $PID weft-io)'"
[ "$(thread_policy $PID weft-store)" = 0 ] || fail "weft-store policy '$(thread_policy $PID weft-store)'"
pass "packet workers and the store writer: normal scheduling"

# --- a node with no bootstrap contact and no public routers says how to join
echo "$out" | grep -q '^join .*--bootstrap HOST:PORT.*dht.public_routers=true' ||
	fail "no join line in weftctl status: $out"
[ "$(echo "$j" | json_get bootstrap contacts)" = 0 ] || fail "bootstrap.contacts: $j"
grep -q 'no DHT bootstrap contact.*--bootstrap HOST:PORT' "$WEFTD_LOG" || fail "no join hint in the log"
pass "join hint (status, JSON, log)"

# --- errors as JSON
code=$(curl -s -o "$D/r" -w '%{http_code}' --unix-socket "$SOCK" http://weftd/v1/nope)
[ "$code" = 404 ] && grep -q '"not_found"' "$D/r" || fail "404: $code $(cat "$D/r")"
code=$(curl -s -o "$D/r" -w '%{http_code}' --unix-socket "$SOCK" -X DELETE http://weftd/v1/status)
[ "$code" = 405 ] && grep -q '"error"' "$D/r" || fail "405: $code"
code=$(curl -s -o "$D/r" -w '%{http_code}' --unix-socket "$SOCK" -H 'Content-Type: application/json' \
	-X POST --data '{"broken' http://weftd/v1/status)
[ "$code" = 400 ] && grep -q '"bad_json"' "$D/r" || fail "400: $code $(cat "$D/r")"
head -c 2000000 /dev/zero >"$D/big"
code=$(curl -s -o "$D/r" -w '%{http_code}' --unix-socket "$SOCK" -X POST --data-binary @"$D/big" \
	http://weftd/v1/status)
[ "$code" = 413 ] || fail "413 expected, got $code"
pass "json errors"

# --- metrics
m=$(curl -sf --unix-socket "$SOCK" http://weftd/metrics) || fail "metrics"
echo "$m" | grep -q '^weft_node_uptime_seconds ' || fail "no uptime metric"
echo "$m" | grep -q '^weft_ctl_requests_total{class="4xx"} [1-9]' || fail "4xx not counted"
"$WEFTCTL" --socket "$SOCK" metrics | grep -q '^process_resident_memory_bytes' || fail "weftctl metrics"
# quic.aead = auto: the fastest on this CPU, measured at start (GnuTLS
# always among the candidates), and what it measured (weftctl quic stats)
echo "$m" | grep -Eq '^weft_quic_aead_info\{impl="(gnutls|aesni|vaes256|vaes512)"\} 1$' || fail "aead info"
"$WEFTCTL" --socket "$SOCK" quic stats | grep -Eq '^aead +(gnutls|aesni|vaes256|vaes512)$' || fail "weftctl quic stats: aead"
"$WEFTCTL" --socket "$SOCK" quic stats | grep -Eq '^aead auto, ns/packet +gnutls [1-9]' ||
	fail "weftctl quic stats: what auto measured"
# weftctl's stats views: a boolean as yes/no (it printed 0 for true), a
# byte count with its human form, every other figure as the JSON has it
out=$("$WEFTCTL" --socket "$SOCK" content stats) || fail "weftctl content stats"
d=$("$WEFTCTL" --socket "$SOCK" --json content stats | json_get direct_io)
case "$d" in True) d=yes ;; False) d=no ;; *) fail "content stats: direct_io $d" ;; esac
grep -Eq "^direct_io +$d\$" <<<"$out" || fail "content stats: direct_io not $d: $out"
grep -Eq '^quota +[0-9]+ \([0-9.]+ (B|KiB|MiB|GiB|TiB)\)$' <<<"$out" || fail "content stats: quota: $out"
grep -Eq '^blobs +[0-9]+$' <<<"$out" || fail "content stats: blobs: $out"
"$WEFTCTL" --socket "$SOCK" quic stats | grep -Eq '^rx_bytes +[0-9]+ \(' || fail "weftctl quic stats: rx_bytes"
pass "metrics"

# --- hostile HTTP; the daemon keeps answering others
$PYTHON - "$SOCK" <<'PY' || fail "hostile HTTP"
import socket, sys, time
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(path); return s
def status_line(s):
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk: break
            data += chunk
    except socket.timeout:
        pass
    return data.split(b"\r\n", 1)[0]
# a stuck client that never finishes its request, held open throughout
stuck = conn(); stuck.send(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
slow = conn(); slow.send(b"POST /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
# garbage bytes
g = conn(); g.send(bytes(range(256)) * 4 + b"\r\n\r\n"); line = status_line(g)
assert line == b"" or b" 400 " in line, line
g = conn(); g.send(b"HELLO WORLD\r\n\r\n"); line = status_line(g)
assert line == b"" or b" 400 " in line or b" 505 " in line, line
# a 1 MiB header
h = conn()
try:
    h.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
except (BrokenPipeError, ConnectionResetError):
    pass
line = status_line(h)
assert line == b"" or b" 431 " in line or b" 413 " in line, line
# a truncated body, then close
t = conn(); t.send(b"POST /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nshort"); t.close()
# others still get answers while stuck/slow are open
for i in range(20):
    c = conn(); c.send(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    line = status_line(c)
    assert b" 200 " in line, line
    c.close()
stuck.close(); slow.close()
PY
kill -0 "$PID" || fail "weftd died on hostile input"
curl -sf --unix-socket "$SOCK" http://weftd/v1/status >/dev/null || fail "no answer after hostile input"
pass "hostile http"

# --- a second weftd on the same state directory is refused, clearly
if "$WEFTD" --state-dir "$D" --socket "$D/other.sock" 2>"$D/err2"; then
	fail "second weftd started"
fi
grep -q "in use by another weftd" "$D/err2" || fail "no clear message: $(cat "$D/err2")"
pass "double start"

# --- SIGHUP: live keys (docs/CONFIG.md) applied, every changed key named
# with "(applied)" or "(needs restart)", command-line flags still winning.
cat >"$D/w.conf" <<CONF
[node]
state_dir = $D
log_level = info
workers = 1
[ports]
quic = $QP
dht = $DP
[svc]
peer_calls_per_min = 100
peer_concurrency = 9
CONF
stop_weftd "$PID" || fail "SIGTERM stop not clean"
[ -e "$SOCK" ] && fail "socket left behind"
start_weftd "$D" --config "$D/w.conf" --set svc.peer_concurrency=7 --set quic.aead=gnutls
PID=$WEFTD_PID
curl -sf --unix-socket "$SOCK" http://weftd/metrics | grep -q '^weft_quic_aead_info{impl="gnutls"} 1$' ||
	fail "quic.aead=gnutls not taken"
curl -sf --unix-socket "$SOCK" http://weftd/v1/quic/stats | grep -q '"aead_auto_ns": *null' ||
	fail "auto's figures with quic.aead=gnutls"
key2=$("$WEFTCTL" --socket "$SOCK" --json status | json_get node_key)
[ "$key1" = "$key2" ] || fail "identity changed across restart"
# at info level a request leaves no debug line
curl -sf --unix-socket "$SOCK" http://weftd/v1/status >/dev/null || fail "status"
grep -q 'ctl: GET /v1/status' "$WEFTD_LOG" && fail "debug lines at info level"
sed -i -e 's/log_level = info/log_level = debug/' -e 's/workers = 1/workers = 2/' \
	-e 's/peer_calls_per_min = 100/peer_calls_per_min = 50/' -e 's/peer_concurrency = 9/peer_concurrency = 8/' "$D/w.conf"
kill -HUP "$PID"
wait_for "grep -q 'configuration reloaded from' '$WEFTD_LOG'" || fail "SIGHUP reload"
grep -qF 'config: node.log_level info -> debug (applied)' "$WEFTD_LOG" || fail "log_level line: $(grep config: "$WEFTD_LOG")"
grep -qF 'config: node.workers 1 -> 2 (needs restart)' "$WEFTD_LOG" || fail "workers line: $(grep config: "$WEFTD_LOG")"
grep -qF 'config: svc.peer_calls_per_min 100 -> 50 (needs restart)' "$WEFTD_LOG" ||
	fail "svc line: $(grep config: "$WEFTD_LOG")"
grep -q 'config: svc.peer_concurrency' "$WEFTD_LOG" && fail "a key set by a flag was taken from the file"
grep -q '3 key(s) changed, 1 applied, 2 need a restart' "$WEFTD_LOG" || fail "reload summary: $(grep reloaded "$WEFTD_LOG")"
[ "$(grep -c 'config: ' "$WEFTD_LOG")" = 3 ] || fail "unchanged keys reported: $(grep 'config: ' "$WEFTD_LOG")"
# applied for real: the same request is now logged at debug level
curl -sf --unix-socket "$SOCK" http://weftd/v1/status >/dev/null || fail "status"
wait_for "grep -q 'ctl: GET /v1/status -> 200' '$WEFTD_LOG'" || fail "log level debug not in force after SIGHUP"
# not applied for real either: the running limit is still 100
lim=$(curl -sf --unix-socket "$SOCK" http://weftd/v1/svc/stats | json_get limits peer_calls_per_min)
[ "$lim" = 100 ] || fail "a restart-only key changed at run time: peer_calls_per_min $lim"
echo "[node]" >"$D/bad.conf"; echo "nonsense = 1" >>"$D/bad.conf"
cp "$D/bad.conf" "$D/w.conf"
kill -HUP "$PID"
wait_for "grep -q 'keeping the running configuration' '$WEFTD_LOG'" || fail "bad reload not refused"
kill -0 "$PID" || fail "bad reload killed weftd"
curl -sf --unix-socket "$SOCK" http://weftd/metrics | grep -q '^weft_node_config_reloads_total 1' || fail "reload count"
stop_weftd "$PID" || fail "stop 2"
pass "restart and reload"

# --- the control socket: only a stale socket is ever removed; a regular
# file or a symlink at the path is refused and left as it was; the mode is
# 0600 whatever the umask (which weftd never changes)
echo precious >"$D/reg.sock"
"$WEFTD" --state-dir "$D" --socket "$D/reg.sock" --quic-port $QP --dht-port $DP 2>"$D/e"
[ $? -eq 1 ] || fail "a regular file at the socket path was accepted"
grep -q "reg.sock exists and is a regular file, not a socket" "$D/e" || fail "regular file message: $(cat "$D/e")"
[ "$(cat "$D/reg.sock")" = precious ] && [ -f "$D/reg.sock" ] || fail "regular file touched"
echo target >"$D/target"
ln -s "$D/target" "$D/link.sock"
"$WEFTD" --state-dir "$D" --socket "$D/link.sock" --quic-port $QP --dht-port $DP 2>"$D/e"
[ $? -eq 1 ] || fail "a symlink at the socket path was accepted"
grep -q "link.sock exists and is a symbolic link, not a socket" "$D/e" || fail "symlink message: $(cat "$D/e")"
[ -L "$D/link.sock" ] && [ "$(readlink "$D/link.sock")" = "$D/target" ] && [ "$(cat "$D/target")" = target ] ||
	fail "symlink or its target touched"
$PYTHON -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$D/stale.sock" || fail "stale socket"
(umask 000; exec "$WEFTD" --state-dir "$D" --socket "$D/stale.sock" --quic-port $QP --dht-port $DP \
	>"$D/stale.log" 2>&1) &
PID=$!
wait_for "curl -sf --unix-socket '$D/stale.sock' http://weftd/v1/status >/dev/null" 200 ||
	fail "stale socket not replaced: $(tail -3 "$D/stale.log")"
[ "$(stat -c %a "$D/stale.sock")" = 600 ] || fail "socket mode $(stat -c %a "$D/stale.sock") under umask 000"
stop_weftd "$PID" || fail "stop (stale socket)"
[ -e "$D/stale.sock" ] && fail "socket left behind"
pass "control socket path"

# --- test hooks are in the test build only: the release weftd has none of
# their names, and its control API does not know the diagnostic route
if [ -x "$WEFTD_REL" ]; then
	strings "$WEFTD" | grep -q WEFT_CONTENT_TEST_CORRUPT || fail "the test build has no test hooks: this check proves nothing"
	n=$(strings "$WEFTD_REL" | grep -c -e WEFT_CONTENT_ -e 'debug/descriptor' -e 'TEST HOOK')
	[ "$n" = 0 ] || fail "release weftd contains $n test hook string(s)"
	for bin in "$WEFTD_REL" "$WEFTD"; do
		WEFTD=$bin start_weftd "$D" --state-dir "$D" --quic-port $QP --dht-port $DP
		code=$(curl -s -o "$D/r" -w '%{http_code}' --unix-socket "$SOCK" -X POST \
			-H 'Content-Type: application/json' --data '{"name":"x","mode":"nope"}' \
			http://weftd/v1/svc/debug/descriptor)
		if [ "$bin" = "$WEFTD_REL" ]; then
			# quic.aead = auto in a release build: what it measured
			# picks it (the fastest width at <= 90% of GnuTLS's time)
			curl -sf --unix-socket "$SOCK" http://weftd/v1/quic/stats | $PYTHON -c '
import json, sys
s = json.load(sys.stdin)
ns = s["aead_auto_ns"]
w = [k for k in ("aesni", "vaes256", "vaes512") if k in ns]
best = min(w, key=lambda k: ns[k]) if w else None
want = best if best and ns[best] * 10 <= ns["gnutls"] * 9 else "gnutls"
sys.exit(0 if s["aead"] == want else "aead %s, the figures %s pick %s" % (s["aead"], ns, want))
' || fail "release weftd: quic.aead = auto against its own figures"
			grep -q 'quic.aead = auto chose [a-z0-9]* (CPU per' "$WEFTD_LOG" ||
				fail "release weftd: no measured auto line"
			# libbpf and libxdp are loaded when XDP or AF_XDP is
			# first used (include/weft/bpflib.h): io_uring maps
			# neither, nor libelf and zlib behind them
			readelf -d "$bin" | grep -Eq 'NEEDED.*lib(bpf|xdp|elf)\.' &&
				fail "release weftd links libbpf/libxdp/libelf"
			grep -Eq '/lib(bpf|xdp|elf)[.-]' "/proc/$WEFTD_PID/maps" &&
				fail "release weftd on io_uring mapped libbpf/libxdp/libelf"
		fi
		stop_weftd "$WEFTD_PID" || fail "stop ($bin)"
		if [ "$bin" = "$WEFTD_REL" ]; then
			[ "$code" = 404 ] || fail "release weftd answers the debug route: $code $(cat "$D/r")"
		else
			[ "$code" = 400 ] || fail "test weftd debug route: $code $(cat "$D/r")"
		fi
	done
	pass "test hooks only in test builds"
else
	fail "release weftd $WEFTD_REL not built"
fi

# --- readiness to systemd
$PYTHON - "$D" <<'PY' &
import socket, sys, os
p = os.path.join(sys.argv[1], "notify.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(p); s.settimeout(20)
open(os.path.join(sys.argv[1], "notify.ready"), "w").close()
msg = s.recv(4096)
open(os.path.join(sys.argv[1], "notify.got"), "wb").write(msg)
PY
wait_for "[ -e '$D/notify.ready' ]" || fail "notify listener"
cp /dev/null "$D/w.conf"
NOTIFY_SOCKET="$D/notify.sock" start_weftd "$D" --state-dir "$D" --quic-port $QP --dht-port $DP
wait_for "[ -e '$D/notify.got' ]" || fail "no READY from weftd"
grep -q 'READY=1' "$D/notify.got" || fail "notify content: $(cat "$D/notify.got")"
stop_weftd "$WEFTD_PID" || fail "stop 3"
pass "sd_notify"

# --- workers pinned with --cpus: each packet thread allowed on that CPU only
start_weftd "$D" --state-dir "$D" --quic-port $QP --dht-port $DP --workers 2 --cpus 0
n=0
for t in /proc/$WEFTD_PID/task/*; do
	grep -q '^weft-io/' "$t/comm" 2>/dev/null || continue
	n=$((n + 1))
	c=$(awk '/^Cpus_allowed_list/ {print $2}' "$t/status")
	[ "$c" = 0 ] || fail "worker $(cat "$t/comm") allowed on CPUs '$c', want 0"
done
[ "$n" -eq 2 ] || fail "want 2 weft-io threads, found $n"
# every long-lived thread has a name (top -H, perf): the store's writer,
# the announcer, the service publisher; none left as the process's
names=$(cat /proc/$WEFTD_PID/task/*/comm)
for want in weft-store weft-announce weft-svc-pub; do
	echo "$names" | grep -qx "$want" || fail "no thread named $want: $(echo $names)"
done
stop_weftd "$WEFTD_PID" || fail "stop 4"
"$WEFTD" --state-dir "$D" --cpus 3-1 2>"$D/e"; [ $? -eq 2 ] || fail "bad --cpus exit (usage: 2)"
grep -q "not a CPU list" "$D/e" || fail "bad --cpus message: $(cat "$D/e")"
pass "worker CPU pinning, thread names"

# --- operator errors: exit codes and messages
"$WEFTD" --state-dir "$D" --config /nonexistent.conf 2>"$D/e"; [ $? -eq 1 ] || fail "missing config exit"
grep -q nonexistent.conf "$D/e" || fail "missing config message"
printf '[ports]\nquic = 99999\n' >"$D/bad.conf"
"$WEFTD" --config "$D/bad.conf" 2>"$D/e"; [ $? -eq 1 ] || fail "bad config exit"
grep -q "bad.conf:2:" "$D/e" || fail "bad config message: $(cat "$D/e")"
"$WEFTD" --no-such-flag 2>/dev/null; [ $? -eq 2 ] || fail "bad flag exit"
"$WEFTD" --state-dir "$D" --print-config >"$D/pc" || fail "print-config"
grep -q "^quic = 4433" "$D/pc" && grep -q "^state_dir = $D" "$D/pc" || fail "print-config content"
"$WEFTCTL" --socket "$D/none.sock" status 2>"$D/e"; [ $? -eq 1 ] || fail "weftctl no daemon exit"
grep -q "is it running" "$D/e" || fail "weftctl no daemon message"
"$WEFTCTL" 2>/dev/null; [ $? -eq 2 ] || fail "weftctl usage exit"
"$WEFTCTL" nosuchnoun 2>/dev/null; [ $? -eq 2 ] || fail "weftctl unknown noun exit"
"$WEFTCTL" status extra 2>/dev/null; [ $? -eq 2 ] || fail "weftctl status extra arg"
# weftctl loads libcurl when it first talks to weftd: without it (the
# library hidden in a mount namespace of our own), hash still works and
# status says what is missing
LIBCURL=$(ldconfig -p | sed -n 's/.*libcurl\.so\.4 (libc6,x86-64) => //p' | head -n 1)
if [ "$(id -u)" = 0 ] && [ -n "$LIBCURL" ]; then
	unshare -m sh -c "mount --bind /dev/null '$(readlink -f "$LIBCURL")' &&
		'$WEFTCTL' hash --kernel >'$D/k' && ! '$WEFTCTL' --socket '$SOCK' status 2>'$D/e'" ||
		fail "weftctl without libcurl: $(cat "$D/e")"
	grep -q "cannot load libcurl.so.4.*install libcurl4" "$D/e" || fail "no libcurl message: $(cat "$D/e")"
	[ -s "$D/k" ] || fail "weftctl hash without libcurl printed nothing"
fi
pass "operator errors"

# --- a damaged key or store: clear error, files untouched
cp "$D/node.key" "$D/key.bak"
chmod 644 "$D/node.key"
"$WEFTD" --state-dir "$D" 2>"$D/e"; [ $? -eq 1 ] || fail "0644 key accepted"
grep -q "must be 0600" "$D/e" || fail "key mode message: $(cat "$D/e")"
chmod 600 "$D/node.key"
head -c 5000 /dev/urandom >"$D/store/data.mdb"
sum=$(md5sum <"$D/store/data.mdb")
"$WEFTD" --state-dir "$D" 2>"$D/e"; [ $? -eq 1 ] || fail "garbage store accepted"
grep -q "not a weft store or is damaged" "$D/e" || fail "store message: $(cat "$D/e")"
[ "$(md5sum <"$D/store/data.mdb")" = "$sum" ] || fail "damaged store was modified"
pass "damaged state"
finish
