# SPDX-License-Identifier: MIT
# Helpers of the mesh's namespace tests (docs/MESH.md), sourced after
# common.sh.

# cfield N FIELD: the field of node N's first community.
cfield() { ctl "$1" --json community ls | json_get communities 0 "$2"; }
# metric N NAME: the value of metric NAME on node N.
metric() { ctl "$1" metrics | awk -v m="$2" '$1 == m {print $2}'; }

# mesh_community NAME OWNER MEMBER...: a community NAME made on node
# OWNER and joined by each MEMBER; waits until every one of them counts
# them all as members and the others as holders. Sets ID and KEY.
mesh_community() {
	local name=$1 owner=$2 n all
	shift 2
	ctl "$owner" --json community create "$name" >"$D/c" || fail "create: $(cat "$D/c")"
	ID=$(json_get id <"$D/c") KEY=$(json_get key <"$D/c")
	for n in "$@"; do
		ctl "$n" community join "$ID" "$KEY" >/dev/null || fail "join $n"
	done
	all=$(($# + 1))
	for n in "$owner" "$@"; do
		wait_for '[ "$(cfield '$n' members)" = '$all' ] && [ "$(cfield '$n' holders)" = '$((all - 1))' ]' 600 ||
			fail "host $n: $(ctl $n --json community ls)"
	done
}

# post N PATH BODY: POST to node N's control API; the HTTP status, the
# answer in $D/body.
post() {
	curl -s -m 30 -o "$D/body" -w '%{http_code}' --unix-socket "$D/n$1/weftd.sock" -X POST \
		-H 'Content-Type: application/json' --data-binary "$3" "http://weftd$2"
}

# bad_bodies N PATH BODY...: each BODY posted to PATH on node N is answered
# 400 with a JSON message.
bad_bodies() {
	local n=$1 p=$2 b
	shift 2
	for b in "$@"; do
		[ "$(post "$n" "$p" "$b")" = 400 ] && grep -q '"message"' "$D/body" ||
			fail "$p $b: $(cat "$D/body")"
	done
}
