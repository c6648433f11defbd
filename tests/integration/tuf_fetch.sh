#!/bin/sh
# The TUF client command (tools/ota-tuf-client, the `tuf` command of ota-agent) over http
# against nginx, on repositories written by another implementation (@tufjs/models, through
# tests/interop/make-repo.mjs): init, refresh, download with the conformance suite's file
# naming, a cached target not fetched again, a check that finds nothing new fetching only the
# timestamp, delegated targets, and refusals (tampered target, expired timestamp, expiry
# reached later under faketime, unknown target) that leave nothing behind.
# Resuming with Range and servers that ignore Range are covered by tests/unit/test_fetch.c.
set -eu
: "${OTA_TOP:?OTA_TOP must point at the source tree}"
: "${OTA_BIN:?OTA_BIN must point at the built binaries}"
. "$OTA_TOP/tests/lib/nginx.sh"
. "$OTA_TOP/tests/lib/npm.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ota-tuf-fetch.XXXXXX")
trap 'nginx_stop; rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

client="$OTA_BIN/ota-tuf-client"
[ -x "$client" ] || fail "no $client (make builds it)"

interop_npm_install
www="$tmp/www"
mkdir -p "$www"
head -c 300000 /dev/urandom >"$tmp/app-1.2.0.ota"
head -c 4000 /dev/urandom >"$tmp/tool.ota"
node "$INTEROP_DIR/make-repo.mjs" --out "$www/plain" \
    --target app/app-1.2.0.ota="$tmp/app-1.2.0.ota" --custom '{"ota":{"yanked":false}}'
node "$INTEROP_DIR/make-repo.mjs" --out "$www/deleg" --delegate apps:app/* \
    --delegate tools:tools/* --target app/app-1.2.0.ota="$tmp/app-1.2.0.ota" \
    --target tools/tool.ota="$tmp/tool.ota"
node "$INTEROP_DIR/make-repo.mjs" --out "$www/expired" --expired \
    --target app/app-1.2.0.ota="$tmp/app-1.2.0.ota"
nginx_start "$www"
log="$NGINX_RUN/access.log"

# Requests nginx logged since mark N (a line count): "PATH STATUS" lines.
requests_since() {
    tail -n +"$(($1 + 1))" "$log" | awk '{ print $7, $9 }'
}
mark() {
    wc -l <"$log" | tr -d ' '
}
# Files in a directory, hidden ones included, "." and ".." excluded.
count_files() {
    find "$1" -mindepth 1 | wc -l | tr -d ' '
}

# --- init, refresh, download -----------------------------------------------------------
md="$tmp/md-plain"
td="$tmp/targets-plain"
mkdir -p "$md" "$td"
"$client" --metadata-dir "$md" init "$www/plain/metadata/1.root.json" || fail "init"
cmp -s "$md/root.json" "$www/plain/metadata/1.root.json" || fail "init did not copy the root"
[ "$(count_files "$md")" = 1 ] || fail "init wrote more than root.json"

"$client" --metadata-url "$NGINX_URL/plain/metadata" refresh --metadata-dir "$md" ||
    fail "refresh"
for f in root.json timestamp.json snapshot.json targets.json; do
    [ -f "$md/$f" ] || fail "refresh did not persist $f"
done
cmp -s "$md/snapshot.json" "$www/plain/metadata/1.snapshot.json" ||
    fail "snapshot.json is not the served 1.snapshot.json"

m=$(mark)
"$client" --metadata-dir "$md" --metadata-url "$NGINX_URL/plain/metadata" \
    --target-name app/app-1.2.0.ota --target-dir "$td" \
    --target-base-url "$NGINX_URL/plain/targets" download || fail "download"
cmp -s "$td/app%2Fapp-1.2.0.ota" "$tmp/app-1.2.0.ota" ||
    fail "downloaded target missing or different (expected the name app%2Fapp-1.2.0.ota)"
[ "$(count_files "$td")" = 1 ] || fail "download left more than the target in $td"
# Nothing new in the repository: the refresh before the download asks for 2.root.json (404)
# and timestamp.json only; then the hash-prefixed target.
sha=$(sha256sum "$tmp/app-1.2.0.ota" | cut -c1-64)
got=$(requests_since "$m")
want="/plain/metadata/2.root.json 404
/plain/metadata/timestamp.json 200
/plain/targets/app/$sha.app-1.2.0.ota 200"
[ "$got" = "$want" ] || fail "unexpected requests:
$got
expected:
$want"

# --- a cached copy with the signed digest is not fetched again ---------------------------
m=$(mark)
"$client" --target-dir "$td" --target-name app/app-1.2.0.ota --metadata-dir "$md" \
    --target-base-url "$NGINX_URL/plain/targets" --metadata-url "$NGINX_URL/plain/metadata" \
    download || fail "download of a cached target"
if requests_since "$m" | grep -q '/plain/targets/'; then
    fail "a cached target was fetched again"
fi

# --- a tampered target is refused and nothing is stored -----------------------------------
rm "$td/app%2Fapp-1.2.0.ota"
served="$www/plain/targets/app/$sha.app-1.2.0.ota"
cp "$served" "$tmp/served.bak"
byte=$(dd if="$served" bs=1 skip=1000 count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
# shellcheck disable=SC2059 # the octal escape is the format on purpose
printf "\\$(printf '%03o' $(((byte + 1) % 256)))" |
    dd of="$served" bs=1 seek=1000 conv=notrunc 2>/dev/null
cmp -s "$served" "$tmp/served.bak" && fail "the served target was not changed"
if "$client" --metadata-dir "$md" --metadata-url "$NGINX_URL/plain/metadata" \
    --target-name app/app-1.2.0.ota --target-dir "$td" \
    --target-base-url "$NGINX_URL/plain/targets" download 2>"$tmp/err"; then
    fail "a tampered target was accepted"
fi
grep -q 'OTA_E_DIGEST' "$tmp/err" || fail "no digest error reported: $(cat "$tmp/err")"
[ "$(count_files "$td")" = 0 ] || fail "a refused download left files in $td"
# a longer one is cut at the signed length
cp "$tmp/served.bak" "$served"
printf 'trailing' >>"$served"
if "$client" --metadata-dir "$md" --metadata-url "$NGINX_URL/plain/metadata" \
    --target-name app/app-1.2.0.ota --target-dir "$td" \
    --target-base-url "$NGINX_URL/plain/targets" download 2>"$tmp/err"; then
    fail "a longer target was accepted"
fi
grep -q 'OTA_E_LENGTH' "$tmp/err" || fail "no length error reported: $(cat "$tmp/err")"
[ "$(count_files "$td")" = 0 ] || fail "a refused download left files in $td"
cp "$tmp/served.bak" "$served"

# --- an unknown target --------------------------------------------------------------------
if "$client" --metadata-dir "$md" --metadata-url "$NGINX_URL/plain/metadata" \
    --target-name app/app-9.9.9.ota --target-dir "$td" \
    --target-base-url "$NGINX_URL/plain/targets" download 2>"$tmp/err"; then
    fail "an unknown target was downloaded"
fi
grep -q "no target 'app/app-9.9.9.ota'" "$tmp/err" || fail "unclear message: $(cat "$tmp/err")"

# --- the repository expires a year from now: frozen metadata is refused later -------------
command -v faketime >/dev/null 2>&1 || fail "faketime not found; install it with tools/deps.sh"
before=$(cd "$md" && sha256sum ./*)
# faketime is an LD_PRELOAD library: a sanitizer build must be told to accept it first.
asan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
if ASAN_OPTIONS=$asan faketime -f +400d "$client" --metadata-dir "$md" \
    --metadata-url "$NGINX_URL/plain/metadata" refresh 2>"$tmp/err"; then
    fail "refresh accepted metadata 400 days past its expiry"
fi
grep -q 'OTA_E_EXPIRED' "$tmp/err" || fail "no expiry error reported: $(cat "$tmp/err")"
[ "$(cd "$md" && sha256sum ./*)" = "$before" ] || fail "a refused refresh changed metadata"

# --- delegated targets --------------------------------------------------------------------
md="$tmp/md-deleg"
td="$tmp/targets-deleg"
mkdir -p "$md" "$td"
"$client" --metadata-dir "$md" init "$www/deleg/metadata/1.root.json" || fail "init (deleg)"
"$client" --metadata-dir "$md" --metadata-url "$NGINX_URL/deleg/metadata" \
    --target-name app/app-1.2.0.ota --target-name tools/tool.ota --target-dir "$td" \
    --target-base-url "$NGINX_URL/deleg/targets" download || fail "download (deleg)"
cmp -s "$td/app%2Fapp-1.2.0.ota" "$tmp/app-1.2.0.ota" || fail "delegated target app"
cmp -s "$td/tools%2Ftool.ota" "$tmp/tool.ota" || fail "delegated target tool"
for f in apps.json tools.json; do
    [ -f "$md/$f" ] || fail "delegated role metadata $f not persisted"
done

# --- an expired timestamp on a fresh client -------------------------------------------------
md="$tmp/md-expired"
mkdir -p "$md"
"$client" --metadata-dir "$md" init "$www/expired/metadata/1.root.json" || fail "init (expired)"
if "$client" --metadata-dir "$md" --metadata-url "$NGINX_URL/expired/metadata" refresh \
    2>"$tmp/err"; then
    fail "an expired timestamp was accepted"
fi
grep -q 'OTA_E_EXPIRED' "$tmp/err" || fail "no expiry error reported: $(cat "$tmp/err")"
[ "$(count_files "$md")" = 1 ] || fail "a refused refresh persisted metadata"

echo "tuf_fetch: ok"
