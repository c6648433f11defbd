#!/bin/sh
# Runs the unit test binaries and the integration scripts, prints one line per test and a
# summary. Exit status 1 if any test failed. Usage: tests/run.sh [unit|integration] [NAME...]
set -u
: "${BUILD:?BUILD must point at the build directory}"
export BUILD
export OTA_BIN="$BUILD/bin"
top=$(cd "$(dirname "$0")/.." && pwd)
export OTA_TOP="$top"
# Tests preload libfaketime into some binaries; under ASan that is fine as long as ASan does not
# insist on coming first.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
what=${1:-all}
[ $# -gt 0 ] && shift
filter="$*"

pass=0 fail=0 failed=""
logdir="$BUILD/test-logs"
mkdir -p "$logdir"

want() {
    [ -z "$filter" ] && return 0
    for f in $filter; do [ "$f" = "$1" ] && return 0; done
    return 1
}

run_one() { # name, command...
    name=$1; shift
    want "$name" || return 0
    start=$(date +%s)
    if "$@" >"$logdir/$name.log" 2>&1; then
        pass=$((pass + 1)); st=ok
    else
        fail=$((fail + 1)); st=FAIL; failed="$failed $name"
    fi
    printf '%-40s %s (%ss)\n' "$name" "$st" "$(( $(date +%s) - start ))"
    if [ "$st" = FAIL ]; then
        tail -n 40 "$logdir/$name.log" | sed 's/^/    | /'
    fi
}

if [ "$what" = all ] || [ "$what" = unit ]; then
    for t in "$BUILD"/tests/test_*; do
        [ -x "$t" ] || continue
        run_one "$(basename "$t")" "$t"
    done
fi
if [ "$what" = all ] || [ "$what" = integration ]; then
    for t in "$top"/tests/integration/*.sh; do
        [ -f "$t" ] || continue
        run_one "$(basename "$t" .sh)" sh "$t"
    done
fi

echo "tests: $pass passed, $fail failed${failed:+ ($failed )}"
echo "logs: $logdir"
[ "$fail" -eq 0 ]
