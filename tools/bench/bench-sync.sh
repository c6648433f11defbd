#!/bin/sh
# Sync throughput and memory: N pending changes (10,000 and 100,000) synced by ota-sync-driver
# to ota-syncd on loopback with the default batch (500 rows). Prints rows, seconds, rows/s and the
# driver's peak RSS; the RSS should not grow with the number of rows. Prints figures only.
set -eu
: "${BUILD:?BUILD must point at the build directory}"
bin="$BUILD/bin"
tmp=$(mktemp -d)
srv_pid=""
cleanup() {
    [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }

printf '%-8s %8s %10s %12s\n' rows seconds rows/s peak_rss_kb
for rows in 10000 100000; do
    rm -f "$tmp"/*.db "$tmp"/*.db-* "$tmp/port"
    "$bin/ota-syncd" --db "$tmp/server.db" --port 0 --port-file "$tmp/port" >/dev/null 2>&1 &
    srv_pid=$!
    while [ ! -s "$tmp/port" ]; do sleep 0.01; done
    "$bin/ota-sync-driver" --db "$tmp/app.db" --init
    sqlite3 "$tmp/app.db" "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
        WHERE x < $rows) INSERT INTO ota_outbox(change_id, model, entity, op, payload,
        created_at) SELECT printf('chg-%07d', x), 'm1', 'site', 'update',
        json_object('id', x, 'name', 'site ' || x, 'lat', 52.37, 'lon', 4.89,
        'notes', 'collected offline on the north route'), 1700000000 + x FROM c;"
    t0=$(now)
    /usr/bin/time -f %M -o "$tmp/rss" "$bin/ota-sync-driver" --db "$tmp/app.db" \
        --url "http://127.0.0.1:$(cat "$tmp/port")/sync/{model}" >/dev/null
    t1=$(now)
    awk -v r="$rows" -v a="$t0" -v b="$t1" -v m="$(cat "$tmp/rss")" \
        'BEGIN { s = b - a; printf "%-8d %8.2f %10.0f %12d\n", r, s, r / s, m }'
    kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true; srv_pid=""
done
