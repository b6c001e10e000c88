#!/bin/bash
# SPDX-License-Identifier: MIT
# The live dashboard in a real browser: weftd with dashboard.listen on
# loopback, headless Chromium (Debian chromium) opens the page while DHT
# pings arrive, the page's live figures move (snapshots, uptime, received
# packets), a screenshot is saved (build/test-logs/dashboard.png), and the
# page's figures match `weftctl --json status` / `dht status`. Then the
# origin rules: a foreign Host (DNS rebinding) gets 421, a foreign Origin
# and a cross-site embed 403, anything but GET/HEAD 405, a public address
# without dashboard.allow_public is refused at start; the page pulls nothing
# from outside (its CSP and its markup name no other origin).
set -u
. "$TOP/tests/lib/common.sh"
CHROMIUM=$(command -v chromium || true)
if [ -z "$CHROMIUM" ]; then
	[ "$(id -u)" -eq 0 ] && fail "chromium missing (make deps installs it)"
	skip "chromium not installed (make deps, as root)"
fi
prologue
QP=$((20000 + RANDOM % 20000)) DP=$((QP + 1)) WP=$((QP + 2))
URL="http://localhost:$WP"

start_weftd "$D" --state-dir "$D" --quic-port $QP --dht-port $DP --set "dashboard.listen=127.0.0.1:$WP"
grep -q "dashboard on http://127.0.0.1:$WP/" "$WEFTD_LOG" || fail "no dashboard line in the log"

# --- no external assets: the page and its script name no other origin
curl -sf "$URL/" >"$D/index.html" || fail "GET /"
curl -sf "$URL/app.js" >"$D/app.js" || fail "GET /app.js"
curl -sf "$URL/app.css" >"$D/app.css" || fail "GET /app.css"
grep -Eiq '(src|href)="(https?:)?//' "$D/index.html" && fail "the page loads something from outside"
grep -Eiq 'https?://' "$D/app.js" "$D/app.css" && fail "the script or style names another origin"
curl -sfI "$URL/" | grep -qi "^content-security-policy: default-src 'none'; script-src 'self'" ||
	fail "no strict CSP"
pass "page, script and style served by weftd; CSP self only"

"$WEFTCTL" --socket "$SOCK" ban add 203.0.113.0/24 >/dev/null || fail "ban add"
"$WEFTCTL" --socket "$SOCK" svc publish echo --backend builtin >/dev/null || fail "svc publish"
"$WEFTCTL" --socket "$SOCK" svc call echo hi --count 5 >/dev/null || fail "svc call"

# --- the page in Chromium, with traffic arriving meanwhile
cat >"$D/ping.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    s.sendto(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:pk1:y1:qe", ("127.0.0.1", int(sys.argv[1])))
    time.sleep(0.05)
PY
"$PYTHON" "$D/ping.py" $DP 30 &
PING=$!
on_exit "kill_job -TERM $PING"
chrome() {
	timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$(mktemp -d "$D/chrome-XXXXXX")" "$@" 2>>"$D/chrome.err"
}
# virtual time runs the page's 1 s poll quickly; each poll waits for its real fetch
chrome --virtual-time-budget=15000 --dump-dom "$URL/" >"$D/dom.html" ||
	fail "chromium failed: $(tail -n 5 "$D/chrome.err")"
chrome --virtual-time-budget=4000 --window-size=1280,1700 --screenshot="$D/dash.png" "$URL/" >/dev/null ||
	fail "chromium screenshot failed"
[ -s "$D/dash.png" ] || fail "no screenshot"
cp "$D/dash.png" "$BUILD/test-logs/dashboard.png"
kill $PING 2>/dev/null

"$PYTHON" - "$D/dom.html" >"$D/page.json" <<'PY' || fail "cannot read the page's figures"
import html.parser, json, sys
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.vals = {}; self.cur = None; self.body = {}
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = {k[5:]: v for k, v in a.items() if k.startswith("data-")}
        if "id" in a:
            self.cur = a["id"]; self.vals.setdefault(self.cur, "")
    def handle_endtag(self, tag):
        self.cur = None
    def handle_data(self, d):
        if self.cur:
            self.vals[self.cur] += d
p = P(); p.feed(open(sys.argv[1]).read())
print(json.dumps({"ids": p.vals, "body": p.body}))
PY
page() { json_get "$@" <"$D/page.json"; }
n=$(page body updates)
[ "$n" -ge 3 ] || fail "only $n live updates"
[ "$(page body last-time)" -gt "$(page body first-time)" ] || fail "snapshot time did not move"
[ "$(page body last-rx)" -gt "$(page body first-rx)" ] ||
	fail "received packets did not move on the page ($(page body first-rx) -> $(page body last-rx))"
[ "$(page ids conn-state)" = live ] || fail "page state '$(page ids conn-state)'"
pass "live in Chromium: $n updates, rx $(page body first-rx) -> $(page body last-rx), uptime $(page body first-uptime) -> $(page body last-uptime) s; screenshot build/test-logs/dashboard.png"

# the seed view: upload plot drawn, byte counts in human units
[ -n "$(page ids seed-rate)" ] && page ids seed-rate | grep -Eq '^[0-9.]+ (B|KiB|MiB|GiB)$' ||
	fail "upload rate not in human units: '$(page ids seed-rate)'"
page ids content-served | grep -Eq '^[0-9.]+ (B|KiB|MiB|GiB|TiB)$' ||
	fail "served bytes not in human units: '$(page ids content-served)'"
grep -q 'id="seed-line"[^>]*points="[0-9]' "$D/dom.html" || grep -q 'points="[0-9][^"]*"[^>]*id="seed-line"' "$D/dom.html" ||
	fail "no upload plot"
pass "seed view: upload $(page ids seed-rate)/s, served $(page ids content-served), plot drawn"

st=$("$WEFTCTL" --socket "$SOCK" --json status) || fail "weftctl status"
for k in node_key version io_mode; do
	id=${k//_/-}
	[ "$(page ids "$id")" = "$(echo "$st" | json_get "$k")" ] ||
		fail "$k: page '$(page ids "$id")', weftctl '$(echo "$st" | json_get "$k")'"
done
[ "$(page ids port-quic)" = "$(echo "$st" | json_get ports quic)" ] || fail "quic port"
[ "$(page ids port-dht)" = "$(echo "$st" | json_get ports dht)" ] || fail "dht port"
[ "$(page ids addrs)" = "$(echo "$st" | "$PYTHON" -c 'import json,sys; print(" ".join(json.load(sys.stdin)["record"]["addrs"]))')" ] ||
	fail "addresses: page '$(page ids addrs)'"
up=$(echo "$st" | json_get uptime_s)
[ "$(page body last-uptime)" -le "$up" ] || fail "page uptime ahead of weftctl's"
# durations as weftctl status shows them, not raw seconds
page ids uptime | grep -Eq '^[0-9]+d [0-2][0-9]:[0-5][0-9]:[0-5][0-9]$' ||
	fail "uptime not a duration: '$(page ids uptime)'"
dht=$("$WEFTCTL" --socket "$SOCK" --json dht status)
[ "$(page ids dht-nodes4)" = "$(echo "$dht" | json_get nodes4)" ] || fail "dht nodes4"
[ "$(page ids dht-nodes6)" = "$(echo "$dht" | json_get nodes6)" ] || fail "dht nodes6"
nb=$("$WEFTCTL" --socket "$SOCK" --json ban ls | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["bans"]))')
[ "$(page ids bans-count)" = "$nb" ] || fail "bans: page $(page ids bans-count), weftctl $nb"
grep -q '203.0.113.0/24' "$D/dom.html" || fail "the ban is not listed on the page"
sv=$("$WEFTCTL" --socket "$SOCK" --json svc stats)
[ "$(page ids svc-lat-count)" = "$(echo "$sv" | json_get call_latency_us count)" ] ||
	fail "service call latency count: page $(page ids svc-lat-count), weftctl $(echo "$sv" | json_get call_latency_us count)"
[ "$(page ids svc-lat-count)" -ge 5 ] || fail "service calls not counted"
case "$(page ids svc-lat-mean)" in [0-9]*.[0-9][0-9]) ;; *) fail "no mean latency: '$(page ids svc-lat-mean)'" ;; esac
[ "$(page ids svc-count)" = 1 ] || fail "published services: $(page ids svc-count)"
pass "page figures match weftctl --json status, dht status, ban ls and svc stats (latency of $(page ids svc-lat-count) calls, mean $(page ids svc-lat-mean) ms)"

# --- origin rules (the gateway's)
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code -H "Host: rebind.example:$WP" "$URL/api/snapshot")" = 421 ] || fail "foreign Host not 421"
[ "$(code -H "Host: localhost:1" "$URL/api/snapshot")" = 421 ] || fail "wrong port in Host not 421"
[ "$(code -H 'Origin: http://evil.example' "$URL/api/snapshot")" = 403 ] || fail "foreign Origin not 403"
[ "$(code -H 'Sec-Fetch-Site: cross-site' -H 'Sec-Fetch-Mode: no-cors' "$URL/api/snapshot")" = 403 ] ||
	fail "cross-site embed not 403"
[ "$(code -H "Origin: http://localhost:$WP" "$URL/api/snapshot")" = 200 ] || fail "same origin refused"
[ "$(code -X POST --data x "$URL/api/snapshot")" = 405 ] || fail "POST not 405"
[ "$(code "$URL/v1/status")" = 404 ] || fail "the control API leaks through the dashboard"
pass "Host, Origin, cross-site and method rules"
stop_weftd "$WEFTD_PID" || fail "weftd exit status $?"

# --- a public address needs dashboard.allow_public
"$WEFTD" --state-dir "$D" --quic-port $QP --dht-port $DP --set "dashboard.listen=0.0.0.0:$WP" \
	>"$D/pub.log" 2>&1 && fail "weftd served the dashboard on 0.0.0.0 without allow_public"
grep -q 'not a loopback address; set dashboard.allow_public' "$D/pub.log" || fail "no clear error: $(tail -n 3 "$D/pub.log")"
pass "non-loopback address refused without dashboard.allow_public"
finish
