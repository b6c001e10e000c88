#!/bin/bash
# SPDX-License-Identifier: MIT
# Fault: no space for the state directory (loopback, uring; root for the
# tmpfs mounts). Two ways to run out:
#  1. the disk: the node's state directory on a 24 MiB tmpfs. A content add
#     that does not fit and a download that does not fit fail with 507
#     {"error": {"code": "no_space"}} (the job: error_code no_space), leave
#     no half-written blob behind, the daemon keeps answering, stops cleanly
#     and starts again on the full disk with what it held intact (verified
#     on export); when the tmpfs grows, the download resumes and completes,
#     and the add that failed succeeds.
#  2. LMDB's map: store.map_size = 1 MiB (the minimum). Shares are added
#     until the map is full: 507 no_space, naming store.map_size; every
#     share acknowledged before is still listed after a restart with a
#     larger map, and adds work again.
set -u
. "$TOP/tests/lib/common.sh"
prologue root

# req SOCK METHOD PATH [BODY]: the answer's body to $D/body, prints the HTTP code.
req() {
	curl -s -m 60 -o "$D/body" -w '%{http_code}' --unix-socket "$1" -X "$2" \
		-H 'Content-Type: application/json' ${4:+--data "$4"} "http://weftd$3"
}
code_of() { json_get error code <"$D/body" 2>/dev/null; }
rand_file() { # PATH MIB SEED
	"$PYTHON" -c 'import random,sys; random.seed(int(sys.argv[2])); sys.stdout.buffer.write(random.randbytes(int(sys.argv[1]) << 20))' "$2" "$3" >"$1"
}

mkdir -p "$D/seed" "$D/full" "$D/files"
mount -t tmpfs -o size=24m,mode=0700 weft-fault "$D/full" || fail "mount tmpfs"
on_exit "umount -l '$D/full'"
# The seed: an ordinary state directory, serving the download.
# Super-seeding off on the seed: this test is about the downloader's disk,
# and a resumed lone downloader of brand-new content is offered 4 chunks
# at a time (docs/CONTENT.md "Super-seeding"); the last chunks of the
# resumed download stalled 60 s so in one run.
start_weftd "$D/seed" --state-dir "$D/seed" --io uring --quic-port $QP --dht-port $DP \
	--set content.superseed_s=0
SEED_PID=$WEFTD_PID
FQ=$((QP + 2)) FD=$((QP + 3))
FARGS=(--state-dir "$D/full" --io uring --quic-port $FQ --dht-port $FD)
FS="$D/full/weftd.sock"
start_weftd "$D/full" "${FARGS[@]}"
FULL_PID=$WEFTD_PID

# --- 1. the disk
rand_file "$D/files/small" 4 1
rand_file "$D/files/big" 30 2
rand_file "$D/files/dl" 30 3
SMALL=$(b3sum --no-names "$D/files/small") DL=$(b3sum --no-names "$D/files/dl")
[ "$(req "$FS" POST /v1/content/add "{\"paths\": [\"$D/files/small\"], \"name\": \"small\"}")" = 200 ] ||
	fail "adding a small file: $(cat "$D/body")"
c=$(req "$FS" POST /v1/content/add "{\"paths\": [\"$D/files/big\"], \"name\": \"big\"}")
[ "$c" = 507 ] && [ "$(code_of)" = no_space ] ||
	fail "a 30 MiB add on a 24 MiB disk: HTTP $c $(cat "$D/body") (want 507 no_space)"
grep -q "No space left" "$D/body" || fail "the message does not say why: $(cat "$D/body")"
ls "$D/full/blobs"/*/* | grep -v "/$SMALL\$" && fail "a half-written blob was left behind"
pass "content add past the disk: 507 no_space ($(json_get error message <"$D/body")), nothing left behind"

[ "$(req "$D/seed/weftd.sock" POST /v1/content/add "{\"paths\": [\"$D/files/dl\"]}")" = 200 ] ||
	fail "seed add: $(cat "$D/body")"
CTL --socket "$FS" content get "$DL" --from "127.0.0.1:$QP" >"$D/get1" 2>&1 &&
	fail "a 30 MiB download onto a full disk succeeded: $(cat "$D/get1")"
grep -q "download failed (no_space)" "$D/get1" || fail "weftctl content get: $(cat "$D/get1")"
[ "$(req "$FS" GET /v1/content/jobs/1)" = 200 ] || fail "job 1: $(cat "$D/body")"
mv "$D/body" "$D/job1"
[ "$(json_get error_code <"$D/job1")" = no_space ] && [ "$(json_get state <"$D/job1")" = failed ] ||
	fail "the failed download's job: $(cat "$D/job1")"
[ "$(req "$FS" GET /v1/status)" = 200 ] || fail "daemon not answering on a full disk"
pass "download past the disk: failed with error_code no_space ($(json_get have <"$D/job1") chunks of $(json_get nchunks <"$D/job1") held), daemon answering"

# What it held is intact, through a stop and a start on the full disk.
stop_weftd "$FULL_PID" || fail "weftd did not stop cleanly on a full disk: $(tail -n 5 "$WEFTD_LOG")"
start_weftd "$D/full" "${FARGS[@]}"
FULL_PID=$WEFTD_PID
grep -qi "damaged\|cannot open the store" "$WEFTD_LOG" && fail "store after a full disk: $(cat "$WEFTD_LOG")"
req "$FS" GET /v1/content >/dev/null
"$PYTHON" - "$D/body" "$SMALL" "$DL" <<'PY' || fail "after restart on a full disk: $(cat "$D/body")"
import json, sys
c = json.load(open(sys.argv[1]))
b = {x["id"]: x for x in c["blobs"]}
assert b[sys.argv[2]]["state"] == "complete", b
assert b[sys.argv[3]]["state"] == "partial", b
assert [s["name"] for s in c["shares"]] == ["small"], c["shares"]
PY
CTL --socket "$FS" content get "$SMALL" --out "$D/out" >/dev/null ||
	fail "export of the small file"
[ "$(b3sum --no-names "$D/out/$SMALL")" = "$SMALL" ] || fail "the small file differs after the full disk"
pass "restart on the full disk: the share and its blob intact (verified), the partial download kept"

# Space returns: the download resumes, the add succeeds.
mount -o remount,size=128m "$D/full" || fail "growing the tmpfs"
CTL --socket "$FS" --json content get "$DL" --from "127.0.0.1:$QP" --out "$D/out" >"$D/get2" ||
	fail "download after space returned: $(cat "$D/get2")"
[ "$(json_get state <"$D/get2")" = done ] || fail "download state: $(cat "$D/get2")"
[ "$(json_get resumed <"$D/get2")" -ge 1 ] || fail "nothing resumed of the partial: $(cat "$D/get2")"
[ "$(b3sum --no-names "$D/out/$DL")" = "$DL" ] || fail "the downloaded file differs"
[ "$(req "$FS" POST /v1/content/add "{\"paths\": [\"$D/files/big\"], \"name\": \"big\"}")" = 200 ] ||
	fail "the add after space returned: $(cat "$D/body")"
pass "space back: the download resumed ($(json_get resumed <"$D/get2") chunks kept) and verifies, the add succeeds"
stop_weftd "$FULL_PID" || fail "stop"

# --- 2. LMDB's map full (the state directory on a tmpfs: fast commits)
mkdir -p "$D/map"
mount -t tmpfs -o size=64m,mode=0700 weft-fault-map "$D/map" || fail "mount tmpfs"
on_exit "umount -l '$D/map'"
MS="$D/map/weftd.sock"
MARGS=(--state-dir "$D/map" --io uring --quic-port $FQ --dht-port $FD)
start_weftd "$D/map" "${MARGS[@]}" --set store.map_size=1048576
MAP_PID=$WEFTD_PID
acked=() c=200
for ((k = 1; k <= 40; k++)); do
	mkdir -p "$D/files/t$k"
	for ((i = 0; i < 200; i++)); do echo "$k $i" >"$D/files/t$k/f$i"; done
	c=$(req "$MS" POST /v1/content/add "{\"paths\": [\"$D/files/t$k\"], \"name\": \"t$k\"}")
	[ "$c" = 200 ] || break
	acked+=("t$k")
done
[ "$c" = 507 ] && [ "$(code_of)" = no_space ] ||
	fail "add $k with the map full: HTTP $c $(cat "$D/body") (want 507 no_space)"
pass "map full after ${#acked[@]} shares: 507 no_space ($(json_get error message <"$D/body"))"
# The search index (derived data, rebuilt from the manifests) stopped
# before the map's last quarter: it yields to shares, pins and downloads.
# (indexing follows the adds on the content module's event thread)
wait_for 'req "$MS" GET /v1/content/stats >/dev/null; [ "$(json_get search deferred <"$D/body")" -gt 0 ]' 200 ||
	fail "the search index never yielded: $(cat "$D/body")"
grep -q "search index of .* deferred" "$WEFTD_LOG" || fail "no log of the index deferred"
pass "the search index yielded the map's last quarter ($(json_get search indexed <"$D/body") shares indexed, $(json_get search deferred <"$D/body") deferred)"
# the failure is not a hang or a crash: the node answers reads and a second
# failing write fails the same way
[ "$(req "$MS" GET /v1/status)" = 200 ] || fail "status with the map full"
c=$(req "$MS" POST /v1/content/add "{\"paths\": [\"$D/files/t$k\"], \"name\": \"t$k\"}")
[ "$c" = 507 ] || fail "again with the map full: HTTP $c $(cat "$D/body")"
rand_file "$D/files/dl2" 4 4
DL2=$(b3sum --no-names "$D/files/dl2")
[ "$(req "$D/seed/weftd.sock" POST /v1/content/add "{\"paths\": [\"$D/files/dl2\"]}")" = 200 ] ||
	fail "seed add 2"
# "Full" depends on the size of a write: a share add (its records and its
# head) no longer fits, a small download's records may still. So the
# download either fails with no_space or completes and verifies; never
# anything else.
if CTL --socket "$MS" content get "$DL2" --from "127.0.0.1:$QP" --out "$D/out3" >"$D/get3" 2>&1; then
	[ "$(b3sum --no-names "$D/out3/$DL2")" = "$DL2" ] || fail "download with the map nearly full: the file differs"
	echo "the 4 MiB download's records still fitted the map: it completed and verifies"
else
	grep -q "download failed (no_space)" "$D/get3" || fail "download with the map full: $(cat "$D/get3")"
fi
pass "with the map full: reads answered, adds fail with no_space, a download fails with no_space or completes intact"

# Filled to the end: every held blob pinned (over one connection) until 20
# pins in a row are refused, then a download whose first records (its
# partial blob's, written in the chunk store's own transaction) cannot fit.
# That transaction was left open when a put failed: LMDB's write lock
# stayed with the download's thread, and when the thread ended LMDB took
# its dead owner for a crash and refused every later write of the process
# (MDB_PANIC: 503 "Input/output error" to every write, the stop's too).
req "$MS" GET /v1/content >/dev/null
"$PYTHON" -c 'import json,sys; [print(b["id"]) for b in json.load(open(sys.argv[1]))["blobs"]]' "$D/body" >"$D/ids"
"$PYTHON" - "$MS" "$D/ids" >"$D/pins" <<'PY' || fail "pinning to the end: $(cat "$D/pins")"
import http.client, json, socket, sys
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(sys.argv[1])
c, ok, refused = Unix("weftd", timeout=60), 0, 0
for line in open(sys.argv[2]):
    c.request("POST", "/v1/content/pin", body=json.dumps({"id": line.strip()}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    if r.status == 200:
        ok, refused = ok + 1, 0
    elif r.status == 507 and json.loads(body)["error"]["code"] == "no_space":
        refused += 1
        if refused == 20:
            break
    else:
        sys.exit("pin: HTTP %d %s" % (r.status, body))
print(ok, refused)
PY
[ "$(cut -d' ' -f2 "$D/pins")" = 20 ] || fail "the map never filled with pins: $(cat "$D/pins")"
rand_file "$D/files/dl3" 4 5
DL3=$(b3sum --no-names "$D/files/dl3")
[ "$(req "$D/seed/weftd.sock" POST /v1/content/add "{\"paths\": [\"$D/files/dl3\"]}")" = 200 ] ||
	fail "seed add 3"
CTL --socket "$MS" content get "$DL3" --from "127.0.0.1:$QP" --out "$D/out5" >"$D/get5" 2>&1 &&
	fail "a download with the map filled to the end succeeded"
grep -q "download failed (no_space)" "$D/get5" || fail "download with the map filled to the end: $(cat "$D/get5")"
grep -q "Input/output error" "$WEFTD_LOG" && fail "LMDB refuses writes after the failed download: $(grep -m3 'Input/output' "$WEFTD_LOG")"
pass "map filled to the end ($(cut -d' ' -f1 "$D/pins") pins taken, 20 refused): the download fails with no_space"

# Space freed in the running node (three shares removed): writes work again
# without a restart. (A share add of 200 files needs a run of contiguous
# pages for its manifest, which the pages freed here, scattered, need not
# give: a small share is added.)
req "$MS" GET /v1/content >/dev/null
"$PYTHON" -c 'import json,sys; print("\n".join("%s %s" % (s["share_id"], s["name"]) for s in json.load(open(sys.argv[1]))["shares"][:3]))' "$D/body" >"$D/rm"
while read -r sid name; do
	c=$(req "$MS" POST /v1/content/rm "{\"id\": \"$sid\"}")
	[ "$c" = 200 ] || fail "rm $name with the map full: HTTP $c $(cat "$D/body")"
	for i in "${!acked[@]}"; do [ "${acked[$i]}" = "$name" ] && unset "acked[$i]"; done
done <"$D/rm"
mkdir -p "$D/files/small2"
for ((i = 0; i < 10; i++)); do echo "small $i" >"$D/files/small2/f$i"; done
c=$(req "$MS" POST /v1/content/add "{\"paths\": [\"$D/files/small2\"], \"name\": \"small2\"}")
[ "$c" = 200 ] || fail "a small add after space was freed: HTTP $c $(cat "$D/body")"
acked+=(small2)
CTL --socket "$MS" content get "$DL3" --from "127.0.0.1:$QP" --out "$D/out5" >"$D/get5" 2>&1 ||
	fail "the download after space was freed: $(cat "$D/get5")"
[ "$(b3sum --no-names "$D/out5/$DL3")" = "$DL3" ] || fail "download 3 differs"
grep -q "Input/output error" "$WEFTD_LOG" && fail "LMDB refused a write: $(grep -m3 'Input/output' "$WEFTD_LOG")"
pass "three shares removed: an add and the download work again in the same process"
stop_weftd "$MAP_PID" || fail "weftd did not stop cleanly with the map full"
grep -q "Input/output error" "$WEFTD_LOG" && fail "the stop's writes failed: $(tail -n 5 "$WEFTD_LOG")"

# The operator raises the map: everything acknowledged is there, adds work.
start_weftd "$D/map" "${MARGS[@]}" --set store.map_size=16777216
MAP_PID=$WEFTD_PID
req "$MS" GET /v1/content >/dev/null
"$PYTHON" - "$D/body" "${acked[@]}" <<'PY' || fail "shares lost with the map full"
import json, sys
c = json.load(open(sys.argv[1]))
names = {s["name"] for s in c["shares"]}
lost = [n for n in sys.argv[2:] if n not in names]
assert not lost, lost
bad = [b["id"] for b in c["blobs"] if b["state"] == "bad"]
assert not bad, bad
PY
c=$(req "$MS" POST /v1/content/add "{\"paths\": [\"$D/files/t$k\"], \"name\": \"t$k\"}")
[ "$c" = 200 ] || fail "add after raising store.map_size: HTTP $c $(cat "$D/body")"
cp "$D/body" "$D/add"
CTL --socket "$MS" content get "$DL2" --from "127.0.0.1:$QP" --out "$D/out" >/dev/null ||
	fail "download after raising store.map_size"
[ "$(b3sum --no-names "$D/out/$DL2")" = "$DL2" ] || fail "download 2 differs"
# with room again, the deferred shares are indexed: an item of the last
# share added is found
SID_LAST=$(json_get share_id <"$D/add")
wait_for 'CTL --socket "$MS" content search f7 --share "$SID_LAST" >"$D/found" 2>&1 && grep -q f7 "$D/found"' 100 ||
	fail "the share added last is not searchable: $(cat "$D/found")"
pass "store.map_size raised: ${#acked[@]} acknowledged shares intact, add and download work, the index caught up"
stop_weftd "$MAP_PID" || fail "stop"
stop_weftd "$SEED_PID" || fail "stop the seed"
finish
