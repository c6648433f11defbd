# Assertions for integration tests (POSIX sh). Source it; it sets -eu and a temp dir $T that
# is removed on exit (with servers stopped by the test's own cleanup hooks, if any).
set -eu
: "${OTA_BIN:?}" "${OTA_TOP:?}"
T=$(mktemp -d "${TMPDIR:-/tmp}/ota-test.XXXXXX")
CLEANUP_HOOKS=""
on_exit() {
    rc=$?
    for h in $CLEANUP_HOOKS; do $h || true; done
    if [ "$rc" -eq 0 ]; then rm -rf "$T"; else echo "test failed (status $rc); files kept in $T" >&2; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM
add_cleanup() { CLEANUP_HOOKS="$1 $CLEANUP_HOOKS"; }

PUB="$OTA_BIN/ota-publish"
AGENT="$OTA_BIN/ota-agent"
step() { printf '== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# expect_fail STATUS PATTERN CMD...: CMD must exit with STATUS and print PATTERN on stderr.
expect_fail() {
    want=$1 pat=$2
    shift 2
    set +e
    "$@" >"$T/.out" 2>"$T/.err"
    got=$?
    set -e
    [ "$got" -eq "$want" ] || { cat "$T/.out" "$T/.err" >&2; die "'$*' exited $got, expected $want"; }
    grep -q -- "$pat" "$T/.err" || { cat "$T/.err" >&2; die "'$*' did not say '$pat'"; }
    printf '   refused as expected: %s\n' "$(head -n 1 "$T/.err")"
}

# tree_sum DIR: one digest over every path, type, mode and content below DIR.
tree_sum() {
    (cd "$1" && find . -printf '%p %y %m %s\n' | LC_ALL=C sort && \
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum | cut -d' ' -f1
}
