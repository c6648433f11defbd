#!/bin/sh
# The data gate end to end, with the real outbox and sync code and the reference sync server:
# offline changes under model m1 keep a staged release of model m2 (which cannot read m1) from
# activating while the sync server is unreachable, and status/explain say why; once the server
# is up, startup syncs the changes and switches. Rollback obeys the same rule in reverse, and
# --force exports the pending changes first and loses none of them.
set -eu
: "${OTA_BIN:?}" "${OTA_TOP:?}"
. "$OTA_TOP/tests/lib/nginx.sh"
. "$OTA_TOP/tests/lib/npm.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ota-agent-gate.XXXXXX")
srv_pid=""
hang_pid=""
cleanup() {
    [ -n "$hang_pid" ] && kill "$hang_pid" 2>/dev/null && wait "$hang_pid" 2>/dev/null
    nginx_stop || true
    [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*" >&2
    for f in "$tmp"/out "$tmp"/err; do
        [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
    done
    exit 1
}

interop_npm_install
REPO="node $INTEROP_DIR/agent-repo.mjs"
app=com.example.field
seed=$($REPO --print-targets-seed)
state="$tmp/state"
pub="$tmp/pub"
mkdir -p "$tmp/b"

rel() { # version model reads
    printf '{"app":"%s","version":"%s","model":"%s","reads_models":[%s],' "$app" "$1" "$2" "$3"
    printf '"runtime":{"min":"3.0"},"min_agent":"0.1","mandatory":false}'
}

release() { # version model reads: pack and publish
    mkdir -p "$tmp/src/$1"
    echo "{\"version\":\"$1\"}" >"$tmp/src/$1/app.json"
    "$OTA_BIN/ota-test-pack" --seed "$seed" --src "$tmp/src/$1" --out "$tmp/b/$1.ota" \
        --release "$(rel "$1" "$2" "$3")" || fail "packing $1"
    $REPO --out "$pub" --target "$app/$app-$1.ota=$tmp/b/$1.ota" --custom \
        "{\"ota\":{\"release\":$(rel "$1" "$2" "$3"),\"channels\":{\"stable\":100},
          \"breaking\":false,\"yanked\":false,\"published\":\"2026-11-24T10:00:00Z\"}}" ||
        fail "publishing $1"
}

config() { # sync_url; BOUND sets check_timeout_s (default 10)
    cat >"$tmp/agent.json" <<EOF
{"repository_url": "$NGINX_URL", "state_dir": "$state", "app": "$app",
 "runtime_version": "3.1", "trusted_root": "$pub/metadata/1.root.json",
 "check_timeout_s": ${BOUND:-10},
 "outbox_db": "$tmp/app.db", "sync_url": "$1"}
EOF
}

agent() {
    "$OTA_BIN/ota-agent" --config "$tmp/agent.json" "$@" >"$tmp/out" 2>"$tmp/err"
}

running() {
    sed 's/.*"version":"\([^"]*\)".*/\1/' "$state/current/app.json" 2>/dev/null
}

pending() { # model
    sqlite3 "$tmp/app.db" "SELECT count(*) FROM ota_outbox WHERE state = 'pending' AND model = '$1'"
}

release 1.0.0 m1 ""
nginx_start "$pub" || fail "nginx"
dead="http://127.0.0.1:9/sync/{model}"
config "$dead"
agent startup || fail "first startup"
[ "$(running)" = 1.0.0 ] || fail "1.0.0 not installed"

# The app works offline under m1.
for i in 1 2 3; do
    agent outbox add --model m1 --entity site --op insert --payload "{\"n\":$i}" ||
        fail "outbox add"
done
[ "$(pending m1)" = 3 ] || fail "outbox rows not written"

# 2.0.0 uses m2 and cannot read m1.
release 2.0.0 m2 ""
agent startup || fail "startup (stage 2.0.0)"
grep -q "2.0.0 is staged" "$tmp/err" || fail "2.0.0 not staged"
agent startup || fail "a gated startup must still run the app"
[ "$(running)" = 1.0.0 ] || fail "activated with unsynced m1 changes"
grep -q "waiting for sync: 3 changes under model m1" "$tmp/err" || fail "gate not reported"
[ "$(pending m1)" = 3 ] || fail "outbox rows changed"
agent status || fail "status"
grep -q "gate      closed for 2.0.0: waiting for sync: 3 changes under model m1" "$tmp/out" ||
    fail "status does not show the gate"
agent explain || fail "explain"
grep -q "gate .*closed: waiting for sync: 3 changes under model m1" "$tmp/out" ||
    fail "explain does not show the gate"
set +e
agent activate; rc=$?
set -e
[ $rc -eq 1 ] && grep -q OTA_E_GATED "$tmp/err" || fail "activate through a closed gate"

# A sync server that accepts and never answers: startup gives up on the sync at its bound
# and runs the current release.
node -e 'const s = require("net").createServer(() => {});
  s.listen(0, "127.0.0.1", () => console.log(s.address().port));' >"$tmp/hang.port" &
hang_pid=$!
n=0
while [ ! -s "$tmp/hang.port" ]; do
    n=$((n + 1)); [ $n -lt 200 ] || fail "hanging server did not start"; sleep 0.05
done
BOUND=2 config "http://127.0.0.1:$(cat "$tmp/hang.port")/sync/{model}"
t0=$(date +%s%3N)
agent startup || fail "startup with a hanging sync server"
t1=$(date +%s%3N)
[ "$(running)" = 1.0.0 ] || fail "switched without a sync"
grep -q "sync did not finish within 2 s" "$tmp/err" || fail "sync bound not reported"
[ $((t1 - t0)) -lt 5000 ] || fail "startup took $((t1 - t0)) ms with a hanging sync server"
[ "$(pending m1)" = 3 ] || fail "outbox rows changed by a killed sync"
kill "$hang_pid"; wait "$hang_pid" 2>/dev/null || true; hang_pid=""

# The sync server comes up: the next startup syncs, then switches.
"$OTA_BIN/ota-syncd" --db "$tmp/server.db" --port 0 --port-file "$tmp/port" \
    >"$tmp/syncd.log" 2>&1 &
srv_pid=$!
n=0
while [ ! -s "$tmp/port" ]; do
    n=$((n + 1)); [ $n -lt 500 ] || fail "ota-syncd did not start"; sleep 0.02
done
live="http://127.0.0.1:$(cat "$tmp/port")/sync/{model}"
config "$live"
agent startup || fail "startup with the sync server up"
[ "$(running)" = 2.0.0 ] || fail "2.0.0 not activated after the sync: $(cat "$tmp/err")"
[ "$(pending m1)" = 0 ] || fail "m1 changes not synced"
agent status
grep -q "gate      open" "$tmp/out" || fail "gate still shown closed"

# Rollback in reverse: m2 changes, 1.0.0 cannot read m2, server gone.
kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true; srv_pid=""
config "$dead"
agent outbox add --model m2 --entity site --op update --payload '{"n":9}' || fail "outbox add"
set +e
agent rollback; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "waiting for sync: 1 change under model m2" "$tmp/err" ||
    fail "rollback through a closed gate"
[ "$(running)" = 2.0.0 ] || fail "rolled back with unsynced m2 changes"
agent rollback --force || fail "rollback --force"
grep -q "exported 1 pending change to $state/exports/" "$tmp/out" || fail "no export reported"
export_file=$(sed -n 's/^exported 1 pending change to //p' "$tmp/out")
[ -s "$export_file" ] || fail "export file missing"
grep -qF '"model":"m2"' "$export_file" && grep -qF '{\"n\":9}' "$export_file" ||
    fail "export lacks the change"
[ "$(running)" = 1.0.0 ] || fail "forced rollback did not switch"
[ "$(pending m2)" = 1 ] || fail "a forced rollback deleted an outbox row"
agent history
grep -q "gate_forced" "$tmp/out" || fail "forced gate not in history"
echo "agent_gate: ok"
