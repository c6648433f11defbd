#!/bin/sh
# make demo: the whole story on this machine, with real components on 127.0.0.1.
#  1. a release engineer creates a repository, packs and releases v1, and verifies it;
#  2. nginx serves it; a device installs v1, updates to v1.1, confirms, rolls back;
#  3. the data gate: offline changes under model m1 while the sync server is down, a breaking
#     release v2 (entity renamed, model m2) is staged but not activated until the changes are
#     synced; then a rollback with m2 changes pending is gated the same way.
# Everything lives in $OTA_DEMO_DIR (default build/demo), which is recreated.
set -eu
: "${BUILD:?run through make demo}"
top=$(cd "$(dirname "$0")/.." && pwd)
export OTA_TOP="$top"
export PATH="$BUILD/bin:$PATH"
W=${OTA_DEMO_DIR:-$BUILD/demo}
rm -rf "$W"
mkdir -p "$W"
W=$(cd "$W" && pwd)
export OTA_PASSPHRASE="demo passphrase (use a real one)"
. "$top/tests/lib/nginx.sh"
SYNCD_PID=""
cleanup() {
    nginx_stop >/dev/null 2>&1 || true
    [ -z "$SYNCD_PID" ] || kill "$SYNCD_PID" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# A command that is expected to be refused: show its message, go on.
refused() { printf '$ %s\n' "$*"; if "$@"; then echo "unexpected success" >&2; exit 1; fi; }

mkapp() { # DIR VERSION ENTITY
    mkdir -p "$1/pages" "$1/assets"
    printf 'export const version = "%s";\n' "$2" >"$1/app.js"
    printf '<h1>Field visits %s</h1>\n' "$2" >"$1/pages/index.html"
    printf '{"entities":{"%s":{"fields":["site","notes"]}}}\n' "$3" >"$1/model.json"
    head -c 300000 /dev/urandom >"$1/assets/photo.jpg"
}

syncd_start() { # the first start picks a free port; restarts reuse it, as a real server would
    rm -f "$W/syncd.port"
    ota-syncd --db "$W/server.db" --port "${SYNCD_PORT:-0}" --port-file "$W/syncd.port" \
        >>"$W/syncd.log" 2>&1 &
    SYNCD_PID=$!
    i=0
    while [ ! -s "$W/syncd.port" ]; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "sync server did not start" >&2; exit 1; }
        sleep 0.05
    done
    SYNCD_PORT=$(cat "$W/syncd.port")
    echo "sync server up on 127.0.0.1:$SYNCD_PORT"
}
syncd_stop() { kill "$SYNCD_PID"; wait "$SYNCD_PID" 2>/dev/null || true; SYNCD_PID=""; echo "sync server down"; }

say "1. release engineer: a repository, a signed release, a verification"
run ota-publish init "$W/repo" --root-keys 3 --root-threshold 2
mkapp "$W/src-1.0.0" 1.0.0 Visit
run ota-publish pack "$W/src-1.0.0" -o "$W/field-1.0.0.ota" --repo "$W/repo" \
    --app com.example.field --version 1.0.0 --model m1 --runtime 3.0..3.9 --notes "first release"
run ota-publish inspect "$W/field-1.0.0.ota" --repo "$W/repo"
run ota-publish release "$W/repo" "$W/field-1.0.0.ota" --channel stable
run ota-publish verify "$W/repo"

say "2. the repository is static files: nginx serves it; a device starts for the first time"
nginx_start "$W/repo/public"
echo "serving $W/repo/public at $NGINX_URL"
# The sync server's port is chosen at run time; the device is told where it will be.
syncd_start
SYNC_URL="http://127.0.0.1:$SYNCD_PORT/sync/{model}"
cat >"$W/agent.json" <<JSON
{"repository_url": "$NGINX_URL", "state_dir": "$W/device", "app": "com.example.field",
 "channel": "stable", "runtime_version": "3.2", "trusted_root": "$W/device-root.json",
 "check_timeout_s": 10, "connect_timeout_s": 2, "trial_launches": 3,
 "outbox_db": "$W/app.db", "sync_url": "$SYNC_URL"}
JSON
cp "$W/repo/public/metadata/1.root.json" "$W/device-root.json"   # shipped inside the app
export OTA_AGENT_CONFIG="$W/agent.json"
run ota-agent startup
run ota-agent status

say "3. an update: v1.1 (same data model) is staged by one start and activated by the next"
mkapp "$W/src-1.1.0" 1.1.0 Visit
run ota-publish pack "$W/src-1.1.0" -o "$W/field-1.1.0.ota" --repo "$W/repo" \
    --app com.example.field --version 1.1.0 --model m1 --runtime 3.0..3.9 --notes "faster sync"
run ota-publish release "$W/repo" "$W/field-1.1.0.ota"
run ota-agent startup
run ota-agent startup
run ota-agent status
echo "the app runs $(readlink -f "$W/device/current") and, once healthy, confirms:"
run ota-agent confirm

say "4. rollback on the command line, then forward again"
run ota-agent rollback
run ota-agent status
run ota-agent activate 1.1.0
run ota-agent confirm
run ota-agent history

say "5. the data gate: offline changes under model m1 while the server is unreachable"
syncd_stop
for i in 1 2 3; do
    run ota-agent outbox add --model m1 --entity Visit --op insert \
        --payload "{\"site\":\"pump station $i\",\"notes\":\"checked valves\"}"
done
echo "the release engineer ships v2: entity Visit renamed to Inspection (model m2), breaking"
mkapp "$W/src-2.0.0" 2.0.0 Inspection
run ota-publish pack "$W/src-2.0.0" -o "$W/field-2.0.0.ota" --repo "$W/repo" \
    --app com.example.field --version 2.0.0 --model m2 --runtime 3.0..3.9 --notes "Inspections"
refused ota-publish release "$W/repo" "$W/field-2.0.0.ota"
run ota-publish release "$W/repo" "$W/field-2.0.0.ota" --breaking
run ota-agent startup
run ota-agent startup
run ota-agent status
run ota-agent explain
echo "the device still runs $(readlink "$W/device/current"): its offline changes are safe"

say "6. back in coverage: the sync server is up; the next start syncs under m1, then switches"
syncd_start
run ota-agent startup
run ota-agent status
echo "changes held by the server (each exactly once):"
curl -s "http://127.0.0.1:$SYNCD_PORT/admin/stats"; echo
n=$(sqlite3 "$W/server.db" "SELECT count(*) FROM changes" 2>/dev/null || echo "?")
echo "server rows: $n"

say "7. a rollback request from v2 while m2 changes are pending is gated the same way"
run ota-agent confirm
syncd_stop
run ota-agent outbox add --model m2 --entity Inspection --op insert \
    --payload '{"site":"pump station 4","notes":"new form"}'
refused ota-agent rollback
run ota-agent status
syncd_start
run ota-agent rollback
run ota-agent status
echo "server after the rollback:"
curl -s "http://127.0.0.1:$SYNCD_PORT/admin/stats"; echo

# The story's claim, checked rather than asserted: every change the device wrote is on the
# server exactly once and acknowledged on the device.
added=$(sqlite3 "$W/app.db" "SELECT count(*) FROM ota_outbox")
acked=$(sqlite3 "$W/app.db" "SELECT count(*) FROM ota_outbox WHERE state = 'acked'")
stored=$(curl -s "http://127.0.0.1:$SYNCD_PORT/admin/stats" | sed 's/.*"stored":\([0-9]*\).*/\1/')
echo "device wrote $added changes, $acked acknowledged; the server stored $stored"
[ "$added" = 4 ] && [ "$acked" = 4 ] && [ "$stored" = 4 ] || { echo "demo: changes lost or duplicated" >&2; exit 1; }
say "done: every change reached the server exactly once; the device never ran a release"
echo "whose data model could not carry its pending offline changes. Files: $W"
