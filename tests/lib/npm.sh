# Node packages for the interoperability tests (tests/interop: tuf-js and @tufjs/models at
# the versions pinned in package-lock.json). POSIX sh, to be sourced:
#
#   . "$OTA_TOP/tests/lib/npm.sh"
#   interop_npm_install || exit 1     # sets INTEROP_DIR=$OTA_TOP/tests/interop
#   node "$INTEROP_DIR/make-repo.mjs" ...
#
# Runs `npm ci` into tests/interop/node_modules only when it is missing or was installed from
# another package.json / package-lock.json (a stamp file records their digest). When npm or
# the registry cannot be reached the function says so and returns non-zero: interop tests
# never pass without having run.

interop_npm_install() {
    : "${OTA_TOP:?OTA_TOP must point at the source tree}"
    INTEROP_DIR="$OTA_TOP/tests/interop"
    export INTEROP_DIR
    for _cmd in node npm sha256sum; do
        if ! command -v "$_cmd" >/dev/null 2>&1; then
            echo "interop_npm_install: '$_cmd' not found; install it with tools/deps.sh install" >&2
            return 1
        fi
    done
    _want=$(cat "$INTEROP_DIR/package.json" "$INTEROP_DIR/package-lock.json" | sha256sum |
        cut -c1-64) || return 1
    _stamp="$INTEROP_DIR/node_modules/.ota-install-stamp"
    if [ -f "$_stamp" ] && [ "$(cat "$_stamp")" = "$_want" ]; then
        return 0
    fi
    _log=$(mktemp "${TMPDIR:-/tmp}/ota-npm-ci.XXXXXX") || return 1
    echo "interop_npm_install: npm ci in $INTEROP_DIR" >&2
    if ! (cd "$INTEROP_DIR" && npm ci --no-audit --no-fund --fetch-retries=2 \
        --fetch-retry-maxtimeout=10000 --fetch-timeout=60000) >"$_log" 2>&1; then
        echo "interop_npm_install: npm ci failed (is the npm registry reachable?):" >&2
        tail -n 30 "$_log" >&2
        rm -f "$_log"
        return 1
    fi
    rm -f "$_log"
    echo "$_want" >"$_stamp"
}
