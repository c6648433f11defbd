#!/bin/sh
# Crash safety of sync: 2,000 changes, 200 sync runs killed with SIGKILL at random moments
# (0-50 ms after start; SEED env, default 1) against ota-syncd, which also fails 5% of requests
# on purpose (half of them after storing the batch). Then one run that is not killed. Every
# change must be on the server exactly once, with its payload, and every row must still be in
# the outbox, acked: none lost, none duplicated.
set -eu
: "${OTA_BIN:?}" "${BUILD:?}"
SEED=${SEED:-1}
ROWS=2000
RUNS=200

tmp=$(mktemp -d)
srv_pid=""
cleanup() {
    [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }

"$OTA_BIN/ota-syncd" --db "$tmp/server.db" --port 0 --port-file "$tmp/port" \
    --fail-rate 5 >"$tmp/syncd.log" 2>&1 &
srv_pid=$!
i=0
while [ ! -s "$tmp/port" ]; do
    i=$((i + 1)); [ $i -lt 1000 ] || fail "ota-syncd did not start"
    sleep 0.01
done
port=$(cat "$tmp/port")
url="http://127.0.0.1:$port/sync/{model}"

# The app's side: create the outbox, then write rows with plain SQL as formats/outbox.md says.
"$OTA_BIN/ota-sync-driver" --db "$tmp/app.db" --init
sqlite3 "$tmp/app.db" "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
    WHERE x < $ROWS) INSERT INTO ota_outbox(change_id, model, entity, op, payload, created_at)
    SELECT printf('chg-%05d', x), CASE WHEN x % 3 = 0 THEN 'm2' ELSE 'm1' END, 'site', 'insert',
    json_object('n', x, 'lat', 52.37, 'note', 'kill test'), 1700000000 + x FROM c;"

# Delays for the kills, from the seed.
awk -v seed="$SEED" -v n="$RUNS" 'BEGIN { srand(seed); for (i = 0; i < n; i++)
    printf "%.3f\n", int(rand() * 51) / 1000 }' >"$tmp/delays"

start=$(date +%s)
killed_mid=0
while read -r delay; do
    "$OTA_BIN/ota-sync-driver" --db "$tmp/app.db" --url "$url" --batch-rows 3 \
        --max-attempts 1 >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pending=$(sqlite3 "$tmp/app.db" "SELECT count(*) FROM ota_outbox WHERE state='pending'")
    [ "$pending" -gt 0 ] && killed_mid=$((killed_mid + 1))
    [ $(( $(date +%s) - start )) -lt 120 ] || fail "killed runs took over 120 s"
done <"$tmp/delays"
echo "killed $RUNS runs (seed $SEED); $killed_mid of them left rows pending"

"$OTA_BIN/ota-sync-driver" --db "$tmp/app.db" --url "$url" --max-attempts 10 \
    || fail "final sync did not drain"

q() { sqlite3 "$1" "$2"; }
[ "$(q "$tmp/app.db" 'PRAGMA integrity_check')" = ok ] || fail "outbox database damaged"
[ "$(q "$tmp/server.db" 'PRAGMA integrity_check')" = ok ] || fail "server database damaged"
n=$(q "$tmp/app.db" "SELECT count(*) FROM ota_outbox")
[ "$n" -eq $ROWS ] || fail "outbox holds $n rows, expected $ROWS"
n=$(q "$tmp/app.db" "SELECT count(*) FROM ota_outbox WHERE state='acked' AND acked_at > 0")
[ "$n" -eq $ROWS ] || fail "$n rows acked, expected $ROWS"
n=$(q "$tmp/server.db" "SELECT count(*) FROM changes")
[ "$n" -eq $ROWS ] || fail "server holds $n changes, expected $ROWS"
# Each outbox row is on the server once, under its own model, with its payload.
n=$(q "$tmp/app.db" "ATTACH '$tmp/server.db' AS s; SELECT count(*) FROM ota_outbox o
    JOIN s.changes c ON c.id = o.change_id AND c.model = o.model AND c.entity = o.entity
    AND c.payload = o.payload AND c.seq = o.seq AND c.created_at = o.created_at")
[ "$n" -eq $ROWS ] || fail "only $n changes match the outbox exactly"
stats=$(curl -sf "http://127.0.0.1:$port/admin/stats") || fail "no stats"
applied=$(printf '%s' "$stats" | sed -n 's/.*"applied":\([0-9]*\).*/\1/p')
dups=$(printf '%s' "$stats" | sed -n 's/.*"duplicates":\([0-9]*\).*/\1/p')
[ "$applied" -eq $ROWS ] || fail "server applied $applied changes, expected $ROWS"
echo "ok: $ROWS changes on the server exactly once, all acked; $dups resent changes were" \
     "answered without being applied again"
