#!/bin/sh
# Crash safety of the switch of `current`, with real processes: `activate` and `rollback` are
# killed with SIGKILL at random moments (0-40 ms after start; SEED env, default 1), then the next
# command recovers. After every round the device must be on one complete release: `current`
# points at an extracted tree, the database's active release is that tree, and no switch is
# left half-done.
set -eu
: "${OTA_BIN:?}" "${OTA_TOP:?}"
. "$OTA_TOP/tests/lib/npm.sh"
SEED=${SEED:-1}
ROUNDS=40

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ota-agent-crash.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

interop_npm_install
REPO="node $INTEROP_DIR/agent-repo.mjs"
app=com.example.field
seed=$($REPO --print-targets-seed)
state="$tmp/state"
echo placeholder >"$tmp/placeholder"
$REPO --out "$tmp/pub" --target "other/placeholder=$tmp/placeholder" || fail "repository"

for v in 1.0.0 2.0.0; do
    mkdir -p "$tmp/src/$v"
    echo "{\"version\":\"$v\"}" >"$tmp/src/$v/app.json"
    head -c 300000 /dev/urandom >"$tmp/src/$v/payload.bin"
    "$OTA_BIN/ota-test-pack" --seed "$seed" --src "$tmp/src/$v" --out "$tmp/$v.ota" --release \
        "{\"app\":\"$app\",\"version\":\"$v\",\"model\":\"m1\",\"reads_models\":[],
          \"runtime\":{\"min\":\"1\"},\"min_agent\":\"0.1\",\"mandatory\":false}" ||
        fail "packing $v"
done
cat >"$tmp/agent.json" <<EOF
{"repository_url": "http://127.0.0.1:9", "state_dir": "$state", "app": "$app",
 "runtime_version": "3.1", "trusted_root": "$tmp/pub/metadata/1.root.json"}
EOF
A() { "$OTA_BIN/ota-agent" --config "$tmp/agent.json" "$@"; }
A install "$tmp/1.0.0.ota" >/dev/null || fail "install 1.0.0"
A install "$tmp/2.0.0.ota" >/dev/null || fail "install 2.0.0"

awk -v seed="$SEED" -v n="$ROUNDS" 'BEGIN { srand(seed); for (i = 0; i < n; i++)
    printf "%.3f\n", int(rand() * 41) / 1000 }' >"$tmp/delays"

on1=0 on2=0 round=0
while read -r delay; do
    round=$((round + 1))
    cur=$(readlink "$state/current")
    # The binary itself in the background (a shell function would run in a subshell, and the
    # kill would miss the agent).
    if [ "$cur" = bundles/2.0.0 ]; then
        "$OTA_BIN/ota-agent" --config "$tmp/agent.json" rollback --to 1.0.0 >/dev/null 2>&1 &
    else
        "$OTA_BIN/ota-agent" --config "$tmp/agent.json" activate 2.0.0 >/dev/null 2>&1 &
    fi
    pid=$!
    sleep "$delay"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true

    A gc >/dev/null 2>"$tmp/err" || fail "round $round: recovery failed: $(cat "$tmp/err")"
    A status --json >"$tmp/status" || fail "round $round: status"
    cur=$(readlink "$state/current") || fail "round $round: no current"
    ver=${cur#bundles/}
    [ -f "$state/current/app.json" ] || fail "round $round: current -> $cur is not a tree"
    grep -q "\"version\":\"$ver\"" "$state/current/app.json" ||
        fail "round $round: current -> $cur holds another release"
    node -e 'const s = JSON.parse(require("fs").readFileSync(process.argv[1]));
      if (s.active === null || s.active.version !== process.argv[2] ||
          s.current_target !== process.argv[2] || s.activating !== null) process.exit(1);' \
        "$tmp/status" "$ver" || fail "round $round: database disagrees: $(cat "$tmp/status")"
    ls -a "$state" | grep -q ota-tmp && fail "round $round: temp link left"
    [ -z "$(ls "$state/staging")" ] || fail "round $round: staging leftovers"
    case $ver in
    1.0.0) on1=$((on1 + 1)) ;;
    2.0.0) on2=$((on2 + 1)) ;;
    *) fail "round $round: on '$ver'" ;;
    esac
done <"$tmp/delays"
# Both outcomes must have happened, and some switches must have been cut short, or the kills
# all landed before or after the switch.
A history >"$tmp/history"
undone=$(grep -c "activation_undone" "$tmp/history" || true)
finished=$(grep -c "activating" "$tmp/history" || true)
[ "$on1" -gt 0 ] && [ "$on2" -gt 0 ] || fail "rounds ended on 1.0.0 $on1 times, 2.0.0 $on2 times"
echo "agent_crash: $ROUNDS rounds, ended on 1.0.0 $on1 times and on 2.0.0 $on2 times;" \
    "$finished switches started, $undone undone by recovery: ok"
