#!/bin/bash
# SPDX-License-Identifier: MIT
# A seed host's controls through weftctl and the real control socket, two
# weftd in network namespaces: `content get` reads its progress from the
# event stream (a bar on a terminal, plain lines when stdout is not one;
# curl sees the stream as newline-delimited JSON), `content pin`/`pins`/
# `unpin`,
# `content rm` then a get of it from that node fails with a clear error,
# as does a download running when its seed removes the content (the seed
# bans no one for the requests in flight),
# a pin acknowledged before a kill -9 is there after the restart,
# `content cancel` stops a running download (reported cancelled), a chunk
# the seed added itself is not hashed when served (/metrics), and the per-chunk
# threads (weft-download, weft-read) run SCHED_BATCH (node.helper_sched).
. "$TOP/tests/lib/common.sh"
prologue netns 2
export WEFT_QUIC_IDLE_TIMEOUT_MS=3000 WEFT_CONTENT_REQ_TIMEOUT_MS=2000

start_node() { # N [ENV=VALUE...]
	local n=$1
	shift
	mkdir -p "$D/n$n"
	NETNS_EXEC="ip netns exec $(netns_name "$n") env $*"
	start_weftd "$D/n$n" --state-dir "$D/n$n" --io uring --workers 2 --quic-port 4433 \
		--dht-port 6881 --bootstrap "$(netns_ip4 1):6881" --log-level info
	eval "PID$n=$WEFTD_PID"
}
# 50 ms per chunk served: an 8 MiB file takes host 2 over a second
start_node 1 WEFT_CONTENT_TEST_SERVE_DELAY_MS=50
start_node 2
A="$(netns_ip4 1):4433"

"$PYTHON" -c 'import random,sys; random.seed(31); sys.stdout.buffer.write(random.randbytes(8 << 20))' >"$D/a.bin"
"$PYTHON" -c 'import random,sys; random.seed(32); sys.stdout.buffer.write(random.randbytes(1 << 20))' >"$D/b.bin"
"$PYTHON" -c 'import random,sys; random.seed(33); sys.stdout.buffer.write(random.randbytes(96 << 20))' >"$D/c.bin"
for f in a b c; do
	ctl 1 --json content add "$D/$f.bin" >"$D/add.$f" || fail "content add $f"
	eval "ID_$f=$(json_get items 0 id <"$D/add.$f")"
done

# progress from the event stream, plain lines (stdout is a file)
ctl 2 content get "$ID_a" --from "$A" --out "$D/out" >"$D/get.out" 2>&1 || fail "get: $(cat "$D/get.out")"
grep -q '^done: ' "$D/get.out" || fail "no final line: $(cat "$D/get.out")"
grep -Eq '^(progress|done) [0-9]+% [0-9]+/8388608 bytes rate [0-9]+ B/s eta ' "$D/get.out" ||
	fail "no progress line from the event stream: $(cat "$D/get.out")"
[ "$(b3sum --no-names "$D/out/$ID_a")" = "$ID_a" ] || fail "downloaded file differs"
pass "content get: $(grep -c '^progress\|^done ' "$D/get.out") progress lines from the event stream"

# on a terminal (script(1) gives weftctl a pty): a bar redrawn in place
# with bytes, rate, ETA and providers, and no plain line
"$PYTHON" -c 'import random,sys; random.seed(34); sys.stdout.buffer.write(random.randbytes(4 << 20))' >"$D/d.bin"
ID_d=$(ctl 1 --json content add "$D/d.bin" | json_get items 0 id) || fail "content add d"
script -qec "$WEFTCTL --socket $D/n2/weftd.sock content get $ID_d --from $A --out $D/outd" \
	/dev/null >"$D/get.tty" 2>&1 || fail "get on a terminal: $(cat -v "$D/get.tty")"
tr '\r' '\n' <"$D/get.tty" | grep -Eq '^\[#*\.*\] +[0-9]+% .*/4\.0 MiB .*/s ETA .*providers' ||
	fail "no progress bar on a terminal: $(cat -v "$D/get.tty")"
grep -q '^progress ' "$D/get.tty" && fail "plain lines on a terminal: $(cat -v "$D/get.tty")"
[ "$(b3sum --no-names "$D/outd/$ID_d")" = "$ID_d" ] || fail "d downloaded on a terminal differs"
pass "content get on a terminal: a progress bar (bytes, rate, ETA, providers)"

# the stream itself, as a script sees it
ctl 2 --json content get "$ID_b" --from "$A" --no-wait >"$D/getb" || fail "get b"
J=$(json_get job <"$D/getb")
ip netns exec "$(netns_name 2)" timeout 60 curl -sN --unix-socket "$D/n2/weftd.sock" \
	"http://weftd/v1/content/events?job=$J" >"$D/events" || fail "event stream: $(cat "$D/events")"
tail -n 1 "$D/events" | json_get event | grep -qx done || fail "stream does not end with done: $(tail -n 3 "$D/events")"
pass "event stream: $(wc -l <"$D/events") lines, ends with done"

# pin, pins, unpin
ctl 2 content pin "$ID_a" | grep -q "^pinned $ID_a" || fail "pin"
ctl 2 --json content pins | grep -q "$ID_a" || fail "pins does not list it"
ctl 2 content unpin "$ID_a" | grep -q "^unpinned" || fail "unpin"
ctl 2 content pin 0000 >/dev/null 2>&1 && fail "a bad id was accepted"
pass "pin, pins, unpin"

# an acknowledged pin survives kill -9
ctl 2 content pin "$ID_a" >/dev/null || fail "pin again"
kill -9 "$PID2"
wait "$PID2" 2>/dev/null
# from here on host 2's event stream ticks every 10 minutes (a test
# hook): each `content get` below ends on its job's end line, sent when
# the job ends, not at the next tick
start_node 2 WEFT_CONTENT_TEST_EVENT_TICK_MS=600000
ctl 2 --json content pins | grep -q "$ID_a" || fail "the pin was lost to kill -9: $(ctl 2 --json content pins)"
pass "pin kept across kill -9"

# rm on host 1: host 2's get of it from host 1 fails clearly
ctl 1 content rm "$ID_b" | grep -q "^removed content" || fail "rm"
ctl 1 content rm "$ID_b" 2>"$D/rm2" && fail "second rm succeeded"
grep -q "not held here" "$D/rm2" || fail "second rm: $(cat "$D/rm2")"
ctl 2 content rm "$ID_b" >/dev/null || fail "rm on host 2"
T0=$(date +%s)
ctl 2 content get "$ID_b" --from "$A" >"$D/getrm" 2>&1 && fail "get after rm succeeded"
grep -Eq "download failed( \(not_found\))?: not found" "$D/getrm" || fail "get after rm: $(cat "$D/getrm")"
[ $(($(date +%s) - T0)) -lt 300 ] || fail "the failed get waited for the event stream's next tick"
pass "rm then get: $(grep 'download failed' "$D/getrm"), told when the job ended (ticks 10 min apart)"

# cancel a running download (c: 384 chunks at one per 50 ms, ~19 s: the
# checks before the cancel took over the 6 s of a 32 MiB c on a loaded
# machine, 2026-12-01, and the download was done when it came)
ctl 2 --json content get "$ID_c" --from "$A" --out "$D/outc" --no-wait >"$D/getc" || fail "get c"
J=$(json_get job <"$D/getc")
wait_for '[ "$(ctl 2 --json content jobs "$J" | json_get fetched)" -ge 2 ]' 300 || fail "c does not start"
# its copy is written as its chunks are committed (docs/CONTENT.md "The
# user's copy written as it arrives") to a file with no name yet
# (O_TMPFILE): open in host 2's weftd, growing, nothing in the folder
copy_size() {
	local f
	for f in /proc/"$PID2"/fd/*; do
		case "$(readlink "$f" 2>/dev/null)" in "$D/outc/"*) stat -L -c %s "$f" 2>/dev/null ;; esac
	done | sort -n | tail -1
}
if [ "$(ctl 2 --json content stats | json_get direct_io)" = True ]; then
	wait_for '[ "$(copy_size)" -gt 0 ] 2>/dev/null' 300 ||
		fail "no copy written while c downloads: $(ls -l /proc/"$PID2"/fd 2>&1 | grep outc)"
	[ -z "$(ls -A "$D/outc")" ] || fail "a name in the folder before the copy is done: $(ls -A "$D/outc")"
fi
# its commits run on the job's committer (weft-commit, SCHED_BATCH too),
# there from the first batch (16 chunks or 250 ms) to the item's end
wait_for '[ -n "$(thread_policy "$PID2" weft-commit)" ]' 100 || fail "no weft-commit thread"
[ "$(thread_policy "$PID2" weft-commit)" = 3 ] ||
	fail "weft-commit policy '$(thread_policy "$PID2" weft-commit)', not SCHED_BATCH"
# the per-chunk threads run SCHED_BATCH (node.helper_sched's default): the
# running job's weft-download on host 2, the chunk readers on host 1
[ "$(thread_policy "$PID2" weft-download)" = 3 ] ||
	fail "weft-download policy '$(thread_policy "$PID2" weft-download)', not SCHED_BATCH"
[ "$(thread_policy "$PID1" weft-read)" = 3 ] ||
	fail "weft-read policy '$(thread_policy "$PID1" weft-read)', not SCHED_BATCH"
[ "$(thread_policy "$PID2" weft-io)" = 0 ] || fail "weft-io policy on host 2"
ctl 2 content cancel "$J" | grep -q "job $J cancelled" || fail "cancel"
[ "$(ctl 2 --json content jobs "$J" | json_get state)" = cancelled ] || fail "job not cancelled: $(ctl 2 --json content jobs "$J")"
ctl 2 content cancel "$J" 2>/dev/null && fail "second cancel succeeded"
ctl 2 --json content ls | grep -q "$ID_c" && fail "the cancelled download's partial blob is still there"
[ -z "$(thread_policy "$PID2" weft-commit)" ] || fail "the cancelled job's committer thread is still there"
[ -z "$(ls -A "$D/outc" 2>/dev/null)" ] || fail "the cancelled download's copy is still there: $(ls -la "$D/outc")"
pass "cancel: job $J cancelled, its partial blob and its copy's temporary file deleted, its committer gone (its weft-download and weft-commit, and host 1's weft-read, SCHED_BATCH)"

# rm on the seed while host 2 downloads c: the get fails within seconds
# saying its provider no longer holds the content (it stalled 60 s and
# said "no provider answered"), host 2 keeps the chunks it fetched, and the
# seed scores none of host 2's requests in flight at the rm: they count as
# asked for removed content, and host 2 is not banned (it was, for 600 s)
ctl 2 --json content get "$ID_c" --from "$A" --no-wait >"$D/getc2" || fail "get c again"
J=$(json_get job <"$D/getc2")
wait_for '[ "$(ctl 2 --json content jobs "$J" | json_get fetched)" -ge 4 ]' 300 || fail "c does not start again"
ctl 1 content rm "$ID_c" >/dev/null || fail "rm c on host 1 during the download"
T0=$(date +%s)
wait_for '[ "$(ctl 2 --json content jobs "$J" | json_get state)" = failed ]' 400 ||
	fail "the download of c removed on its seed did not fail in 40 s: $(ctl 2 --json content jobs "$J")"
ctl 2 --json content jobs "$J" | json_get error | grep -q "answered that it no longer holds this content" ||
	fail "c's error: $(ctl 2 --json content jobs "$J" | json_get error)"
ctl 2 --json content ls | grep -q "$ID_c" || fail "the chunks of c fetched before the rm are gone"
m1() { ctl 1 metrics | awk -v k="$1" '$1 == k { print $2 }'; }
[ "$(m1 weft_content_requester_bans_total)" = 0 ] &&
	[ "$(m1 'weft_content_requester_faults_total{kind="unannounced"}')" = 0 ] ||
	fail "host 2 scored for asking for c: $(ctl 1 metrics | grep -E 'requester|removed')"
asked=$(m1 weft_content_requests_for_removed_total)
pass "rm on the seed during a download: failed after $(($(date +%s) - T0)) s ($(ctl 2 --json content jobs "$J" | json_get error)); the fetched chunks kept; $asked requests for the removed content unscored, no ban"

# the announce schedule's figures
ctl 1 --json content stats | json_get announce_backlog >/dev/null || fail "no announce_backlog in stats"
ctl 1 metrics | grep -q '^weft_content_announce_oldest_age_seconds ' || fail "no announce age metric"
pass "announce backlog and age in content stats and /metrics"

# a chunk the seed wrote itself is not hashed when served while its file
# is unchanged (docs/CONTENT.md "Chunks verified once", "Blobs the store
# made itself"): host 1 added d (4 chunks) and serves it twice with no
# BLAKE3 pass but the 1-in-64 sample of trusted reads
reads() { # N check -> weft_content_chunk_reads_total{check=...} of host N
	ctl "$1" metrics | sed -n "s/^weft_content_chunk_reads_total{check=\"$2\"} //p"
}
"$PYTHON" -c 'import random,sys; random.seed(34); sys.stdout.buffer.write(random.randbytes(1 << 20))' >"$D/d.bin"
h0=$(reads 1 hashed)
t0=$(reads 1 trusted)
[ -n "$h0" ] && [ -n "$t0" ] || fail "no chunk read metrics: $(ctl 1 metrics | grep chunk_reads)"
ctl 1 --json content add "$D/d.bin" >"$D/add.d" || fail "content add d"
ID_d=$(json_get items 0 id <"$D/add.d")
ctl 2 content get "$ID_d" --from "$A" --out "$D/out" >/dev/null 2>&1 || fail "get d"
ctl 2 content rm "$ID_d" >/dev/null || fail "rm d on host 2"
ctl 2 content get "$ID_d" --from "$A" --out "$D/out2" >/dev/null 2>&1 || fail "get d again"
[ "$(b3sum --no-names "$D/out2/$ID_d")" = "$ID_d" ] || fail "d differs"
h1=$(reads 1 hashed)
t1=$(reads 1 trusted)
[ $((h1 - h0)) -le 1 ] && [ $((t1 - t0)) -ge 7 ] ||
	fail "chunk reads of d: hashed $h0 -> $h1, trusted $t0 -> $t1 (want +1 hashed at most, +7 or more trusted)"
pass "d served twice: hashed $h0 -> $h1, trusted $t0 -> $t1"

# host 2's chunk buffers (the answers, the chunks it keeps in memory) are
# slots of slabs on 2 MiB pages, counted in /metrics (docs/CONTENT.md
# "Chunk buffers on 2 MiB pages")
metric() { ctl "$1" metrics | sed -n "s/^$2 //p"; }
slabs=$(metric 2 weft_content_chunk_buffer_slabs)
used=$(metric 2 weft_content_chunk_buffers_used)
[ -n "$slabs" ] && [ "$slabs" -ge 1 ] && [ "$slabs" -le 16 ] && [ "$used" -ge 1 ] &&
	[ "$used" -le $((slabs * 15)) ] || fail "chunk buffer slabs '$slabs', buffers used '$used'"
pass "chunk buffers: $used in $slabs slab(s) on host 2"

# those reads were done by the reader threads, not on the engine workers
# (docs/CONTENT.md "Reads off the workers")
fr() { ctl 1 metrics | sed -n "s/^weft_content_serve_file_reads_total{on=\"$1\"} //p"; }
rr=$(fr reader)
rw=$(fr worker)
[ -n "$rr" ] && [ "$rr" -ge 8 ] && [ "$rw" = 0 ] ||
	fail "file reads: reader ${rr:-none}, worker ${rw:-none} (want >= 8 on readers, 0 on workers)"
[ "$(ctl 1 metrics | sed -n 's/^weft_content_reader_threads //p')" -ge 1 ] || fail "no reader thread"
[ "$(ctl 1 --json content stats | json_get reads on_threads)" = "$rr" ] || fail "stats reads differ"
pass "file reads on reader threads: $rr (on workers: $rw)"
