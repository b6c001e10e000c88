#!/bin/bash
# SPDX-License-Identifier: MIT
# Share heads (BEP 46) and subscriptions in network namespaces (issue 31):
# four weftd on a bridge forming a DHT. Host 1 publishes a share "photos";
# host 2 (a seed host) and host 3 follow it, by KEY/NAME and by magnet
# link. The share is updated twice: the first update moves only the
# changed item's chunk; the second is published while host 3 is down
# (killed with SIGKILL: its subscription survives) and arrives at host 3
# after the publisher is gone too, through host 2, which fetched it and
# keeps the head alive. Then libtorrent both ways: python3-libtorrent
# reads the head weft put (same key and salt), and a head put through
# libtorrent's dht_put_item (tests/interop/lt_bep46_put.cpp) is followed
# by weft. Bad input: a magnet link with a 65-byte salt, a head of
# another key naming the publisher's share, and a manifest signed by the
# right key whose predecessor link loops, refused with nothing stored.
. "$TOP/tests/lib/common.sh"
prologue netns 4
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000 WEFT_CONTENT_REQ_TIMEOUT_MS=2000

start_node() { start_ns_node "$1" 4 --set content.poll_s=2; }
sub() { # N FIELD: FIELD of host N's first subscription
	ctl "$1" --json content subscriptions | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)["subscriptions"]
print(s[0][sys.argv[1]] if s else "none")' "$2"
}
served() { # total chunks served by hosts 1-3 (those up)
	local t=0 n v
	for n in "$@"; do
		v=$(ctl "$n" --json content stats | json_get served_chunks) || v=0
		t=$((t + v))
	done
	echo "$t"
}

# libtorrent's side is built first: a missing package fails here, not later.
g++ -std=c++17 -O1 $(pkg-config --cflags libtorrent-rasterbar) -o "$D/lt_put" \
	"$TOP/tests/interop/lt_bep46_put.cpp" $(pkg-config --libs libtorrent-rasterbar) ||
	fail "building tests/interop/lt_bep46_put.cpp (libtorrent-rasterbar-dev)"

start_node 4
for n in 1 2 3; do start_node "$n"; done
wait_for '[ "$(ctl 1 --json dht status | json_get nodes4)" -ge 3 ]' 300 || fail "DHT did not form"

mkdir -p "$D/tree"
echo "version 1" >"$D/tree/a.txt"
"$PYTHON" -c 'import random,sys; random.seed(9); sys.stdout.buffer.write(random.randbytes(2 << 20))' >"$D/tree/big.bin"
ctl 1 --json content add "$D/tree" --name photos >"$D/v1" || fail "publish v1"
SID=$(json_get share_id <"$D/v1") PK=$(json_get publisher <"$D/v1")
MAGNET="magnet:?xs=urn:btpk:$PK&s=70686f746f73" # hex of "photos": the salt is the name
[ "$(ctl 1 content link "$SID")" = "$MAGNET" ] || fail "content link: $(ctl 1 content link "$SID")"
[ "$(ctl 3 content link "$PK/photos")" = "$MAGNET" ] || fail "content link KEY/NAME"
pass "share $SID published; link $MAGNET"

ctl 2 content subscribe "$PK/photos" >/dev/null || fail "subscribe by KEY/NAME"
ctl 3 content subscribe "$MAGNET" >/dev/null || fail "subscribe by magnet"
for n in 2 3; do
	wait_for '[ "$(sub '$n' fetched_seq)" = 1 ]' 600 ||
		fail "host $n did not fetch version 1: $(ctl $n --json content subscriptions)"
done
pass "hosts 2 and 3 follow the share and hold version 1"

# Update 1: only a.txt changes. Each follower fetches that one chunk.
S0=$(served 1 2 3)
echo "version 2" >"$D/tree/a.txt"
ctl 1 --json content add "$D/tree" --name photos >"$D/v2" || fail "publish v2"
[ "$(json_get seq <"$D/v2")" = 2 ] && [ "$(json_get prev_seq <"$D/v2")" = 1 ] ||
	fail "v2 does not link to v1: $(cat "$D/v2")"
ctl 3 content sync >/dev/null || fail "content sync"
for n in 2 3; do
	wait_for '[ "$(sub '$n' fetched_seq)" = 2 ]' 600 ||
		fail "host $n did not fetch version 2: $(ctl $n --json content subscriptions)"
done
S1=$(served 1 2 3)
# Each follower's download of version 2 fetched a.txt's one chunk; served
# may count a chunk twice (the end game asks two providers for the last).
for n in 2 3; do
	F=$(ctl $n --json content jobs | "$PYTHON" -c '
import json, sys
print(max(json.load(sys.stdin)["jobs"], key=lambda j: j["job"])["fetched"])')
	[ "$F" = 1 ] || fail "host $n fetched $F chunks for update 1, want 1: $(ctl $n --json content jobs)"
done
[ $((S1 - S0)) -le 4 ] || fail "update 1: $((S1 - S0)) chunks served (big.bin moved again?)"
A2=$(b3sum --no-names "$D/tree/a.txt")
ctl 3 --json share show "$SID" | grep -q "$A2" || fail "host 3's manifest lacks the new a.txt"
pass "update 1: version 2 on both followers, one chunk fetched by each ($((S1 - S0)) served), big.bin's 8 kept"

# Update 2 while host 3 is down; then the publisher goes too.
kill -9 "$PID3"
wait "$PID3" 2>/dev/null
echo "version 3" >"$D/tree/a.txt"
ctl 1 --json content add "$D/tree" --name photos >"$D/v3" || fail "publish v3"
ctl 2 content sync >/dev/null
wait_for '[ "$(sub 2 fetched_seq)" = 3 ]' 600 ||
	fail "host 2 did not fetch version 3: $(ctl 2 --json content subscriptions)"
kill -9 "$PID1"
wait "$PID1" 2>/dev/null
start_node 3
[ "$(sub 3 fetched_seq)" = 2 ] || fail "host 3's subscription after SIGKILL: $(ctl 3 --json content subscriptions)"
ctl 3 content sync >/dev/null
wait_for '[ "$(sub 3 fetched_seq)" = 3 ]' 900 ||
	fail "host 3 did not get version 3 without the publisher: $(ctl 3 --json content subscriptions)"
A3=$(b3sum --no-names "$D/tree/a.txt")
ctl 3 --json share show "$SID" | grep -q "$A3" || fail "host 3's manifest lacks a.txt v3"
[ "$(ctl 2 --json content subscriptions | json_get reputs)" -ge 1 ] ||
	fail "host 2 never put the head again: $(ctl 2 --json content subscriptions)"
pass "update 2 reached host 3 with the publisher offline, through host 2 (subscription kept across SIGKILL)"

# weft -> libtorrent: python3-libtorrent reads the head weft put.
ip netns exec "$(netns_name 4)" "$PYTHON" - "$PK" "$SID" "$(netns_ip4 4)" "$(netns_ip4 2)" "$(netns_ip4 3)" <<'PY' ||
import sys, time, warnings
import libtorrent as lt
warnings.simplefilter("ignore", DeprecationWarning)
pk, sid, me, peers = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3], sys.argv[4:]
ses = lt.session({"listen_interfaces": me + ":6890", "enable_dht": True, "dht_bootstrap_nodes": "",
                  "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
                  "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
                  "dht_prefer_verified_node_ids": False,
                  "alert_mask": lt.alert.category_t.all_categories})
for p in peers + [me]:
    ses.add_dht_node((p, 6881))
end = time.time() + 120
while time.time() < end:
    time.sleep(0.5)
    ses.pop_alerts()
    if ses.status().dht_nodes >= 2:
        break
for attempt in range(6):
    ses.dht_get_mutable_item(pk, b"photos")
    t = time.time() + 30
    while time.time() < t:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            # Not only the authoritative answer: libtorrent alerts an
            # item only once its signature verified, and the traversal's
            # end waits out its 15 s timeout for host 1 (down, still in
            # the others' routing tables).
            if isinstance(a, lt.dht_mutable_item_alert):
                # The 2.0 bindings convert .item only when it is a string
                # (what their put makes); a BEP 46 value is a dictionary,
                # which the alert's message prints (entry::to_string, binary
                # strings in hex).
                try:
                    v = a.item
                    ih = v.get(b"ih", v.get("ih")) if isinstance(v, dict) else None
                    ok = ih == sid
                except RuntimeError:
                    ok = "'ih': '" + sid.hex() in a.message()
                print("libtorrent read seq", a.seq, a.message(), flush=True)
                if ok and a.seq >= 3:
                    sys.exit(0)
    time.sleep(1)
sys.exit(1)
PY
	fail "python3-libtorrent did not read the head weft put"
pass "python3-libtorrent reads the weft head (same key and salt)"

# libtorrent -> weft: the publisher's key put a head through libtorrent's
# dht_put_item (seq 10, {"ih": share id}, no weft "mh"); both followers
# take it and the newest version the providers have.
SEED=$(od -An -tx1 -v "$D/n1/node.key" | tr -d ' \n')
[ ${#SEED} = 64 ] || fail "publisher seed"
ip netns exec "$(netns_name 4)" "$D/lt_put" "$(netns_ip4 4):6891" \
	"$(netns_ip4 2):6881,$(netns_ip4 3):6881,$(netns_ip4 4):6881" "$SEED" photos "$SID" 10 \
	>"$D/ltput" 2>&1 || fail "libtorrent put: $(cat "$D/ltput")"
ctl 3 content sync >/dev/null
wait_for '[ "$(sub 3 seq)" = 10 ] && [ "$(sub 3 fetched_seq)" = 10 ]' 900 ||
	fail "host 3 did not follow the libtorrent head: $(ctl 3 --json content subscriptions)"
pass "a head put by libtorrent (seq 10) is followed by weft ($(cat "$D/ltput"))"

# Browse and select, from host 4 (which follows nothing and holds
# nothing of the share): the manifest is fetched and verified first.
ctl 4 share show "$PK/photos" >"$D/show" 2>&1 || fail "share show of a remote share: $(cat "$D/show")"
grep -q "big.bin" "$D/show" && grep -q "a.txt" "$D/show" && grep -q "text/plain" "$D/show" ||
	fail "share show: $(cat "$D/show")"
ctl 4 content get "$MAGNET" --item big.bin --out "$D/sel" >"$D/selget" 2>&1 ||
	fail "selective get: $(cat "$D/selget")"
cmp "$D/tree/big.bin" "$D/sel/big.bin" || fail "selected item differs"
[ ! -e "$D/sel/a.txt" ] || fail "an item not asked for was fetched"
ctl 4 content get "$SID" --item nothere.txt >"$D/selbad" 2>&1 && fail "a selection matching nothing succeeded"
grep -q "no item" "$D/selbad" || fail "selection matching nothing: $(cat "$D/selbad")"
pass "browse a remote share (items, sizes, types) and fetch one item of it"

# A folder prefix and a repeated --item: a second share with a tree.
mkdir -p "$D/tree2/sub/deep" "$D/tree2/other"
echo top >"$D/tree2/top.txt"
echo x >"$D/tree2/sub/x.txt"
echo y >"$D/tree2/sub/deep/y.txt"
echo z >"$D/tree2/other/z.txt"
SID2=$(ctl 2 --json content add "$D/tree2" --name nested | json_get share_id) || fail "publish nested"
ctl 4 content get "$SID2" --from "$(netns_ip4 2):4433" --item sub --item top.txt --out "$D/sel2" \
	>"$D/sel2get" 2>&1 || fail "get --item sub --item top.txt: $(cat "$D/sel2get")"
for f in top.txt sub/x.txt sub/deep/y.txt; do
	cmp "$D/tree2/$f" "$D/sel2/$f" || fail "selected item $f missing or different: $(cat "$D/sel2get")"
done
[ ! -e "$D/sel2/other/z.txt" ] || fail "other/z.txt was fetched though not selected"
pass "a folder prefix (sub: sub/x.txt, sub/deep/y.txt) and a repeated --item (top.txt) fetch exactly those"

# kill -9 during a subscription update: host 4 follows host 2's "nested";
# version 2 adds 24 MiB, served slowly (2 MB/s), and host 4 is killed in
# the middle of fetching it. After the restart its subscription and
# version 1 are there, and version 2 completes and verifies.
subn() { # N NAME FIELD: FIELD of host N's subscription to NAME
	ctl "$1" --json content subscriptions | "$PYTHON" -c '
import json, sys
s = [x for x in json.load(sys.stdin)["subscriptions"] if x["name"] == sys.argv[1]]
print(s[0][sys.argv[2]] if s else "none")' "$2" "$3"
}
K2=$(ctl 2 --json status | json_get node_key)
ctl 4 content subscribe "$K2/nested" >/dev/null || fail "subscribe to $K2/nested"
wait_for '[ "$(subn 4 nested fetched_seq)" = 1 ]' 600 ||
	fail "host 4 did not fetch nested v1: $(ctl 4 --json content subscriptions)"
ctl 2 content limits --upload 2M --per-peer 2M --lan-peer 2M --lan-capped on >/dev/null ||
	fail "limits on host 2"
"$PYTHON" -c 'import random,sys; random.seed(77); sys.stdout.buffer.write(random.randbytes(24 << 20))' >"$D/tree2/sub/big2.bin"
BIG2=$(b3sum --no-names "$D/tree2/sub/big2.bin")
ctl 2 --json content add "$D/tree2" --name nested >"$D/n2v2" || fail "publish nested v2"
ctl 4 content sync >/dev/null
midway() {
	ctl 4 --json content jobs | "$PYTHON" -c '
import json, sys
j = [x for x in json.load(sys.stdin)["jobs"] if x.get("state") == "fetching"]
sys.exit(0 if j and max(x.get("fetched", 0) for x in j) >= 8 else 1)'
}
wait_for midway 600 || fail "host 4 never was in the middle of nested v2: $(ctl 4 --json content jobs)"
kill -9 "$PID4"
wait "$PID4" 2>/dev/null
start_node 4
[ "$(subn 4 nested fetched_seq)" = 1 ] ||
	fail "host 4's subscription after SIGKILL mid-update: $(ctl 4 --json content subscriptions)"
ctl 2 content limits --upload 0 --per-peer 0 --lan-peer 0 --lan-capped off >/dev/null ||
	fail "lifting the limits on host 2"
ctl 4 content sync >/dev/null
wait_for '[ "$(subn 4 nested fetched_seq)" = 2 ]' 900 ||
	fail "host 4 did not finish nested v2 after the restart: $(ctl 4 --json content subscriptions)"
ctl 4 --json content ls | grep -q "$BIG2" || fail "host 4 does not hold sub/big2.bin"
ctl 4 content get "$BIG2" --out "$D/big2out" >/dev/null 2>&1 || fail "exporting big2.bin on host 4"
[ "$(b3sum --no-names "$D/big2out/$BIG2")" = "$BIG2" ] || fail "big2.bin on host 4 does not verify"
pass "kill -9 in the middle of a subscription update: subscription and v1 kept, v2 completed after the restart and verifies"

# Bad input: a 65-byte salt.
SALT65=$(printf '61%.0s' $(seq 65))
ctl 3 content subscribe "magnet:?xs=urn:btpk:$PK&s=$SALT65" >"$D/bad1" 2>&1 && fail "65-byte salt accepted"
grep -q "64 bytes" "$D/bad1" || fail "65-byte salt: unclear error: $(cat "$D/bad1")"
[ "$(ctl 3 --json content subscriptions | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["subscriptions"]))')" = 1 ] ||
	fail "a refused subscription was stored"
# A head of another key naming the publisher's share id.
ip netns exec "$(netns_name 4)" "$D/lt_put" "$(netns_ip4 4):6892" \
	"$(netns_ip4 2):6881,$(netns_ip4 3):6881,$(netns_ip4 4):6881" \
	"$(printf '42%.0s' $(seq 32))" photos "$SID" 1 >"$D/ltput2" 2>&1 ||
	fail "libtorrent put (other key): $(cat "$D/ltput2")"
PK2=$(sed -n "s/^key //p" "$D/ltput2")
[ ${#PK2} = 64 ] || fail "other key: $PK2"
ctl 3 content get "$PK2/photos" >"$D/bad2" 2>&1 && fail "a head naming another key's share was followed"
grep -q "not this key's share" "$D/bad2" || fail "forged head: unclear error: $(cat "$D/bad2")"
ctl 3 content subscribe "$PK2/photos" >/dev/null || fail "subscribe (forged head)"
wait_for 'ctl 3 --json content subscriptions | grep -q "not this key"' 300 ||
	fail "forged head not refused: $(ctl 3 --json content subscriptions)"
ctl 3 --json content subscriptions | "$PYTHON" -c '
import json, sys
s = [x for x in json.load(sys.stdin)["subscriptions"] if x["key"] == sys.argv[1]]
assert s and s[0]["seq"] == -1 and s[0]["fetched_seq"] == -1, s' "$PK2" ||
	fail "the forged head was stored"
ctl 3 content unsubscribe "$PK2/photos" >/dev/null || fail "unsubscribe"
pass "refused with nothing stored: a 65-byte magnet salt, a head naming another key's share"

# Bad input: a manifest whose predecessor link loops (pseq at or after its
# own seq), signed by host 2's key, which no weft encoder writes: forged
# here (python3-nacl), put into host 2's content_shares while it is down
# and served from there (host 2 announces its share id by hand: a node
# announces only the manifests it can decode). Host 3 refuses it, by share
# id and through a head (put by libtorrent, seq 5), with the reason, and
# stores neither the manifest nor its item.
"$PYTHON" -c 'import os,sys; sys.stdout.buffer.write(os.urandom(300000))' >"$D/loop.bin"
ctl 2 content add "$D/loop.bin" >/dev/null || fail "add loop.bin on host 2"
LID=$(b3sum --no-names "$D/loop.bin")
SIDL=$(ctl 2 --json content link "$K2/loopy" | json_get share_id) || fail "share id of loopy"
stop_weftd "$PID2" || fail "stop host 2"
"$PYTHON" - "$D/n2/node.key" "$SIDL" "$LID" >"$D/loopy.load" <<'PY' || fail "forging the looping manifest"
import sys, nacl.signing
seed, sid, lid = open(sys.argv[1], "rb").read(), bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
sk = nacl.signing.SigningKey(seed)
def be(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(be(x) for x in v) + b"e"
    return b"d" + b"".join(be(k) + be(v[k]) for k in sorted(v)) + b"e"
m = {b"created": 1700000000, b"name": b"loopy", b"pk": bytes(sk.verify_key),
     b"items": [{b"id": lid, b"path": b"loop.bin", b"size": 300000,
                 b"type": b"application/octet-stream"}],
     b"prev": bytes(32), b"pseq": 5, b"seq": 5, b"sid": sid, b"v": 1, b"vis": 0}
m[b"sig"] = sk.sign(b"weft-manifest-v1" + be(m)).signature
print("VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n %s\n %s\nDATA=END" % (sid.hex(), be(m).hex()))
PY
mdb_load -s content_shares -f "$D/loopy.load" "$D/n2/store" || fail "mdb_load of the forged manifest"
start_node 2
ctl 2 dht announce "$SIDL" 4433 >/dev/null || fail "announce the forged share on host 2"
ctl 3 content get "$SIDL" --out "$D/loopout" >"$D/loopget" 2>&1 && fail "a looping manifest was taken"
grep -q "predecessor link loops" "$D/loopget" || fail "looping manifest: unclear error: $(tail -3 "$D/loopget")"
ip netns exec "$(netns_name 4)" "$D/lt_put" "$(netns_ip4 4):6893" \
	"$(netns_ip4 2):6881,$(netns_ip4 3):6881,$(netns_ip4 4):6881" \
	"$(od -An -tx1 -v "$D/n2/node.key" | tr -d ' \n')" loopy "$SIDL" 5 >"$D/ltput3" 2>&1 ||
	fail "libtorrent put (loopy head): $(cat "$D/ltput3")"
ctl 3 content subscribe "$K2/loopy" >/dev/null || fail "subscribe to $K2/loopy"
wait_for 'subn 3 loopy error | grep -q "predecessor link loops"' 600 ||
	fail "the looping version not refused: $(ctl 3 --json content subscriptions)"
[ "$(subn 3 loopy fetched_seq)" = -1 ] || fail "a looping version counted as held: $(ctl 3 --json content subscriptions)"
ctl 3 --json content ls >"$D/ls3"
grep -q "$SIDL" "$D/ls3" && fail "host 3 stored the looping manifest"
grep -q "$LID" "$D/ls3" && fail "host 3 fetched the looping manifest's item"
ctl 3 content unsubscribe "$K2/loopy" >/dev/null || fail "unsubscribe loopy"
pass "a manifest whose predecessor link loops, refused by id and through its head with the reason; nothing stored"

# Following and leaving more heads than the schedule holds (256), one at a
# time: each unsubscribe frees its slot, so the 300th subscribe still works.
# The 600 requests go over one client's connections to the control socket
# (the same routes weftctl calls; a weftctl process each took ~80 s).
"$PYTHON" - "$D/n4/weftd.sock" <<'PY' || fail "subscribe/unsubscribe churn"
import http.client, json, socket, sys

class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(sys.argv[1])

def post(path, body):
    c = Conn("weftd")
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data

for i in range(1, 301):
    head = "%064x/churn" % i
    st, data = post("/v1/content/subscribe", {"head": head})
    if st != 200:
        sys.exit("subscribe number %d after %d unsubscribes: %d %s" % (i, i - 1, st, data[:200]))
    st, data = post("/v1/content/unsubscribe", {"head": head})
    if st != 200 or not json.loads(data).get("unsubscribed"):
        sys.exit("unsubscribe number %d: %d %s" % (i, st, data[:200]))
PY
pass "300 heads followed and left one after the other: no slot leaks (at most 256 at once)"

for n in 2 3 4; do
	eval "stop_weftd \$PID$n" && continue
	eval "WEFTD_LOG=\$LOG$n"
	grep -A40 "ERROR: AddressSanitizer" "$WEFTD_LOG" | head -60 >&2
	fail "stop host $n"
done
finish
