#!/bin/sh
# Runs every benchmark script tools/bench/bench-*.sh in turn. Benchmarks print figures; they
# never fail on speed, only when they cannot run (missing binary, tool or corpus).
# Usage: BUILD=/path/to/build tools/bench/run.sh [NAME...]   (NAME: pack, for bench-pack.sh)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
: "${BUILD:=$top/build}"
export BUILD
status=0
for s in "$top"/tools/bench/bench-*.sh; do
    [ -f "$s" ] || continue
    name=$(basename "$s" .sh)
    name=${name#bench-}
    if [ $# -gt 0 ]; then
        want=0
        for n in "$@"; do [ "$n" = "$name" ] && want=1; done
        [ $want = 1 ] || continue
    fi
    echo "== bench $name"
    sh "$s" || { echo "bench $name could not run" >&2; status=1; }
done
exit $status
