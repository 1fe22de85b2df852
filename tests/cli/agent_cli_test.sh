#!/bin/sh
# vdist host / spawn / ls / kill / store end to end through the command line. Usage: $0 VDIST
set -eu
vdist=$1
dir=$(mktemp -d)
host=cli$$
agent=
epmd_pid=
cleanup() {
    [ -n "$agent" ] && kill -KILL "$agent" 2>/dev/null || true
    [ -n "$epmd_pid" ] && kill -TERM "$epmd_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAILED: $*"; exit 1; }

# The nodes register with EPMD: a private one, so that no epmd outlives the test.
ERL_EPMD_PORT=$((20000 + $$ % 20000))
export ERL_EPMD_PORT
epmd -port "$ERL_EPMD_PORT" -relaxed_command_check &
epmd_pid=$!
sleep 0.2
kill -0 "$epmd_pid" 2>/dev/null || fail "no private epmd on port $ERL_EPMD_PORT"

"$vdist" host --dir "$dir/h" --host "$host" &
agent=$!
i=0
while [ ! -S "$dir/h/agent.sock" ]; do
    i=$((i + 1)); [ $i -lt 200 ] || fail "no agent.sock"; sleep 0.05
done
timeout 30 "$vdist" spawn --dir "$dir/h" --count 2 > "$dir/spawn.txt" || fail "spawn"
cat "$dir/spawn.txt"
grep -q "spawn-to-ready ms: p50" "$dir/spawn.txt" || fail "no spawn-to-ready summary"
timeout 10 "$vdist" ls --dir "$dir/h" > "$dir/ls.txt" || fail "ls"
cat "$dir/ls.txt"
[ "$(grep -c "running" "$dir/ls.txt")" -eq 2 ] || fail "ls does not show two running nodes"
name=$(awk 'NR == 2 { print $1 }' "$dir/spawn.txt")
timeout 10 "$vdist" kill --dir "$dir/h" "$name" > /dev/null || fail "kill"
i=0
while timeout 10 "$vdist" ls --dir "$dir/h" | grep -q "^$name "; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "$name still listed after a clean kill"; sleep 0.05
done
timeout 10 "$vdist" store --dir "$dir/h" | grep -q "/vdist/nodes/" || fail "store lost the other node"
timeout 10 "$vdist" kill --dir "$dir/h" no-such-node > /dev/null && fail "kill of an unknown node succeeded"
kill -TERM "$agent"
wait "$agent" || fail "agent exit status $?"
agent=
[ -z "$(ls -A "$dir/h")" ] || fail "left in DIR: $(ls -A "$dir/h")"
echo "agent cli passed"
