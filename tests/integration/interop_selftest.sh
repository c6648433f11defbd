#!/bin/sh
# The interoperability harness checks itself before other tests rely on it: make-repo.mjs
# builds repositories with @tufjs/models, nginx serves them (tests/lib/nginx.sh), and the tuf-js
# client (tufjs-client.mjs) must download the target with its custom metadata, through a
# delegation too, and must refuse a tampered target, tampered targets metadata (caught by the
# snapshot hash, and by the targets signature once the snapshot is made to match), and an
# expired timestamp. nginx_start must also survive a port taken between choosing and binding.
set -eu
: "${OTA_TOP:?OTA_TOP must point at the source tree}"
. "$OTA_TOP/tests/lib/nginx.sh"
. "$OTA_TOP/tests/lib/npm.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ota-interop-selftest.XXXXXX")
trap 'nginx_stop; rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

interop_npm_install
www="$tmp/www"
mkdir -p "$www"

# The custom member as given (any order, any spacing) and as the client prints it (canonical).
custom_in='{ "ota": { "release": {"version": "1.2.0", "app": "app"}, "yanked": false,
  "channels": {"stable": 100, "beta": 25}, "breaking": false,
  "published": "2026-11-24T10:00:00Z" } }'
custom_want='{"ota":{"breaking":false,"channels":{"beta":25,"stable":100},'
custom_want="$custom_want"'"published":"2026-11-24T10:00:00Z",'
custom_want="$custom_want"'"release":{"app":"app","version":"1.2.0"},"yanked":false}}'

head -c 200000 /dev/urandom >"$tmp/app-1.2.0.ota"
head -c 5000 /dev/urandom >"$tmp/other.ota"
node "$INTEROP_DIR/make-repo.mjs" --out "$www/plain" --keys-out "$tmp/keys-plain" \
    --target app/app-1.2.0.ota="$tmp/app-1.2.0.ota" --custom "$custom_in"
node "$INTEROP_DIR/make-repo.mjs" --out "$www/deleg" \
    --delegate apps:app/* --delegate tools:tools/* \
    --custom '{"n":1}' --target app/app-1.2.0.ota="$tmp/app-1.2.0.ota" \
    --target tools/other.ota="$tmp/other.ota"
node "$INTEROP_DIR/make-repo.mjs" --out "$www/expired" --expired \
    --target app/app-1.2.0.ota="$tmp/app-1.2.0.ota" --custom "$custom_in"

# Layout promised by the repository layout contract.
sha=$(sha256sum "$tmp/app-1.2.0.ota" | cut -c1-64)
for f in metadata/1.root.json metadata/root.json metadata/timestamp.json \
    metadata/1.snapshot.json metadata/1.targets.json "targets/app/$sha.app-1.2.0.ota"; do
    [ -f "$www/plain/$f" ] || fail "make-repo wrote no $f"
done
cmp -s "$www/plain/metadata/1.root.json" "$www/plain/metadata/root.json" ||
    fail "root.json differs from 1.root.json"
for f in 1.apps.json 1.tools.json; do
    [ -f "$www/deleg/metadata/$f" ] || fail "make-repo wrote no delegated role metadata $f"
done
grep -q '"app/app-1.2.0.ota"' "$www/deleg/metadata/1.apps.json" ||
    fail "the target is not in the delegated role 'apps'"
if grep -q '"app/app-1.2.0.ota"' "$www/deleg/metadata/1.targets.json"; then
    fail "the delegated target is also in the top-level targets"
fi

nginx_start "$www"
echo "serving $www at $NGINX_URL"

# Byte ranges (resumable downloads depend on them) and read-only serving.
code=$(curl -s -o "$tmp/range" -w '%{http_code}' -r 10-19 \
    "$NGINX_URL/plain/targets/app/$sha.app-1.2.0.ota")
[ "$code" = 206 ] || fail "range request answered $code, not 206"
dd if="$tmp/app-1.2.0.ota" bs=1 skip=10 count=10 2>/dev/null | cmp -s - "$tmp/range" ||
    fail "range request returned the wrong bytes"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data x "$NGINX_URL/plain/metadata/x.json")
[ "$code" = 403 ] || fail "PUT answered $code, not 403"
[ ! -e "$www/plain/metadata/x.json" ] || fail "PUT created a file"

# client REPO NAME ARGS...: run the tuf-js client with fresh state against $www/REPO.
client() {
    _repo=$1 _name=$2
    shift 2
    rm -rf "$tmp/c-$_name"
    node "$INTEROP_DIR/tufjs-client.mjs" \
        --metadata-url "$NGINX_URL/$_repo/metadata" --targets-url "$NGINX_URL/$_repo/targets" \
        --root "$www/$_repo/metadata/1.root.json" \
        --metadata-dir "$tmp/c-$_name/metadata" --target-dir "$tmp/c-$_name/targets" \
        --out "$tmp/c-$_name/out" "$@" >"$tmp/c-$_name.out" 2>"$tmp/c-$_name.err"
}

# must_fail REPO NAME PATTERN: the client must exit 1, saying PATTERN, and write no target.
must_fail() {
    _st=0
    client "$1" "$2" --target app/app-1.2.0.ota || _st=$?
    [ "$_st" = 1 ] || {
        cat "$tmp/c-$2.err" >&2
        fail "$2: tuf-js exited $_st, not 1"
    }
    grep -Eqi "$3" "$tmp/c-$2.err" || {
        cat "$tmp/c-$2.err" >&2
        fail "$2: tuf-js failed, but not with /$3/"
    }
    [ ! -e "$tmp/c-$2/out" ] || fail "$2: tuf-js wrote the target anyway"
    echo "ok: $2 refused: $(tail -n 1 "$tmp/c-$2.err")"
}

# 1. The target and its custom metadata, as published.
client plain good --target app/app-1.2.0.ota --print-custom || {
    cat "$tmp/c-good.err" >&2
    fail "tuf-js could not fetch the target"
}
cmp "$tmp/app-1.2.0.ota" "$tmp/c-good/out" || fail "downloaded target differs from the original"
[ "$(cat "$tmp/c-good.out")" = "$custom_want" ] ||
    fail "custom is '$(cat "$tmp/c-good.out")', want '$custom_want'"
grep -q "GET /plain/targets/app/$sha.app-1.2.0.ota " "$NGINX_RUN/access.log" ||
    fail "the target was not fetched by its hash-prefixed name"
grep -q "GET /plain/metadata/1.snapshot.json " "$NGINX_RUN/access.log" ||
    fail "the snapshot was not fetched by its versioned name"
echo "ok: target and custom metadata verified by tuf-js"

# 2. Through peer delegations: each target is found in its own delegated role.
client deleg deleg-app --target app/app-1.2.0.ota --print-custom || {
    cat "$tmp/c-deleg-app.err" >&2
    fail "tuf-js could not fetch the delegated target"
}
cmp -s "$tmp/app-1.2.0.ota" "$tmp/c-deleg-app/out" || fail "delegated target differs"
[ "$(cat "$tmp/c-deleg-app.out")" = '{"n":1}' ] || fail "delegated custom is wrong"
client deleg deleg-tools --target tools/other.ota --print-custom ||
    fail "tuf-js could not fetch tools/other.ota"
cmp -s "$tmp/other.ota" "$tmp/c-deleg-tools/out" || fail "tools/other.ota differs"
[ "$(cat "$tmp/c-deleg-tools.out")" = "{}" ] || fail "tools/other.ota has a custom member"
grep -q "GET /deleg/metadata/1.apps.json " "$NGINX_RUN/access.log" ||
    fail "the delegated role was not fetched"
echo "ok: targets found through peer delegations"

# 3. An expired timestamp.
must_fail expired expired 'expired'

# 4. A tampered target: same length with one byte changed, then a longer file.
target="$www/plain/targets/app/$sha.app-1.2.0.ota"
cp "$target" "$tmp/target.orig"
{ printf 'X'; tail -c +2 "$tmp/target.orig"; } >"$target"
cmp -s "$target" "$tmp/target.orig" && fail "the tampering changed nothing"
must_fail plain tampered-bytes 'hash'
cat "$tmp/target.orig" "$tmp/target.orig" >"$target"
must_fail plain tampered-length 'length|size|hash|bytes'
cp "$tmp/target.orig" "$target"

# 5. Tampered targets metadata: the snapshot's hash catches it ...
tmeta="$www/plain/metadata/1.targets.json"
cp "$tmeta" "$tmp/targets.orig"
sed 's/"yanked": false/"yanked": true/' "$tmp/targets.orig" >"$tmeta"
cmp -s "$tmeta" "$tmp/targets.orig" && fail "the tampering changed nothing"
must_fail plain tampered-meta-hash 'hash|length'
# ... and with snapshot and timestamp made to match it, the targets signature does.
node "$INTEROP_DIR/rehash.mjs" --repo "$www/plain" --keys "$tmp/keys-plain"
must_fail plain tampered-meta-sig 'signed by|signature|unsigned'
# The same change signed with the targets key is accepted: the failures above were the
# tampering, not a broken rehash.
node "$INTEROP_DIR/rehash.mjs" --repo "$www/plain" --keys "$tmp/keys-plain" --sign targets
client plain resigned --target app/app-1.2.0.ota --print-custom || {
    cat "$tmp/c-resigned.err" >&2
    fail "tuf-js refused legitimately signed metadata"
}
grep -q '"yanked":true' "$tmp/c-resigned.out" || fail "the re-signed custom was not served"
echo "ok: re-signed metadata accepted"

# 6. nginx_start chooses again when its port is taken before nginx binds: the first choice
# is the running server's port.
(
    busy=$NGINX_PORT
    # shellcheck disable=SC2030 # this subshell's server is its own
    NGINX_RUN='' NGINX_PORT='' NGINX_URL=''
    echo 0 >"$tmp/port-calls"
    _nginx_free_port() {
        _c=$(($(cat "$tmp/port-calls") + 1))
        echo "$_c" >"$tmp/port-calls"
        if [ "$_c" = 1 ]; then echo "$busy"; else _nginx_pick_port; fi
    }
    nginx_start "$www" || exit 1
    [ "$NGINX_PORT" != "$busy" ] || exit 1
    [ "$(cat "$tmp/port-calls")" -ge 2 ] || exit 1
    curl -sf -o /dev/null "$NGINX_URL/plain/metadata/root.json" || exit 1
    nginx_stop
) || fail "nginx_start did not recover from a taken port"
echo "ok: nginx_start retried on a taken port"

# 7. nginx_stop stops the server it started.
# shellcheck disable=SC2031 # the subshell above did not touch this shell's server
url=$NGINX_URL pid=$(cat "$NGINX_RUN/nginx.pid")
nginx_stop
if kill -0 "$pid" 2>/dev/null; then fail "nginx $pid still runs after nginx_stop"; fi
if curl -s -o /dev/null "$url/plain/metadata/root.json"; then fail "$url still answers"; fi
echo "ok: nginx stopped"
echo "interop harness: all checks passed"
