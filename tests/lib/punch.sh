# SPDX-License-Identifier: MIT
# Helpers of the hole-punching tests (test_punch_nat, test_punch_v6). The
# test defines ctl N ARGS... (weftctl on node N's socket); node 1 is the
# relay host.

# conn_path N KEY FIELD: FIELD of the path of N's connection to KEY that
# went through the relay (the first one listed).
conn_path() {
	ctl "$1" --json quic conns | "$PYTHON" -c 'import json,sys
key, field = sys.argv[1], sys.argv[2]
for c in json.load(sys.stdin)["conns"]:
    p = c.get("path") or {}
    if c["peer_key"] == key and p.get("relay"):
        print(p.get(field)); break' "$2" "$3"
}

# circ_pkts RELAY_ADDR: packets of both ends of the relay's circuit on
# RELAY_ADDR's port (-1: no such circuit).
circ_pkts() {
	ctl 1 --json relay circuits | "$PYTHON" -c 'import json,sys
port = int(sys.argv[1].rsplit(":", 1)[1])
for c in json.load(sys.stdin)["circuits"]:
    if c["port"] == port:
        print(sum(e["pkts"] for e in c["ends"])); break
else:
    print(-1)' "$1"
}

# circuit_quiet N KEY RELAY_ADDR WHAT: after N's connection to KEY went
# direct, the circuit's counters stop growing. Two samples of them 3 s
# apart (3 keepalives at 1 s on the direct path in between): at most 4
# packets may still have been in flight on the relay at the first sample.
# WHAT names the direct path in the pass line.
circuit_quiet() {
	local n=$1 key=$2 relay=$3 what=$4 tx0 before after
	tx0=$(conn_path "$n" "$key" direct_tx)
	before=$(circ_pkts "$relay")
	wait_for '[ "$(conn_path "$n" "$key" direct_tx)" -ge $((tx0 + 3)) ]' 200 ||
		fail "no keepalives on the direct path: $(ctl "$n" --json quic conns)"
	after=$(circ_pkts "$relay")
	[ "$before" -ge 1 ] && [ "$after" -le $((before + 4)) ] ||
		fail "the circuit's counters grew after the switch: $before -> $after"
	pass "after the switch the circuit's counters go from $before to $after packets while $(($(conn_path "$n" "$key" direct_tx) - tx0)) packets went $what"
}
