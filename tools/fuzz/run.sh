#!/bin/sh
# Runs every libFuzzer harness built in BUILD_FUZZ for SECONDS each, over a scratch corpus that
# starts from the seeds in tests/fuzz/<harness>/, and prints per harness: executions, coverage
# (cov: of libFuzzer's final statistics) and findings (crash, leak, timeout and out-of-memory
# inputs, kept in BUILD_FUZZ/findings/<harness>/). With -r, first runs every input in
# tests/fuzz/regressions/<harness>/ once. Exit status 1 if anything was found or a regression
# input fails.
#   usage: tools/fuzz/run.sh [-r] BUILD_FUZZ SECONDS
set -u

regress=0
if [ "${1:-}" = -r ]; then
    regress=1
    shift
fi
if [ $# -ne 2 ]; then
    echo "usage: tools/fuzz/run.sh [-r] BUILD_FUZZ SECONDS" >&2
    exit 2
fi
top=$(cd "$(dirname "$0")/../.." && pwd)
bdir=$(cd "$1" && pwd)
secs=$2

# Largest input per harness: a little above the biggest meaningful document of each kind.
max_len() {
    case "$1" in
    bundle) echo 65536 ;;
    cjson | tuf) echo 32768 ;;
    *) echo 8192 ;;
    esac
}

# Token dictionaries: manifest and tar fields for bundles, JSON and ota's keys for the rest.
dict() {
    case "$1" in
    bundle) echo "-dict=$top/tools/fuzz/bundle.dict" ;;
    *) echo "-dict=$top/tools/fuzz/json.dict" ;;
    esac
}

status=0
total_execs=0
total_found=0
summary=""
for bin in "$bdir"/fuzz_*; do
    [ -x "$bin" ] || continue
    h=${bin##*/fuzz_}
    seeds="$top/tests/fuzz/$h"
    corpus="$bdir/corpus/$h"
    found="$bdir/findings/$h"
    log="$bdir/logs/$h.log"
    mkdir -p "$corpus" "$found" "$bdir/logs"
    rm -f "$found"/*

    regr="-"
    if [ "$regress" = 1 ]; then
        rdir="$top/tests/fuzz/regressions/$h"
        n=$(find "$rdir" -type f 2>/dev/null | wc -l)
        regr="$n ok"
        if [ "$n" -gt 0 ]; then
            if ! find "$rdir" -type f -print0 | xargs -0 "$bin" \
                    >"$bdir/logs/$h.regressions.log" 2>&1; then
                regr="$n FAILED"
                status=1
                tail -n 30 "$bdir/logs/$h.regressions.log" | sed 's/^/    | /'
            fi
        fi
    fi

    if [ -d "$seeds" ]; then
        find "$seeds" -maxdepth 1 -type f -exec cp -p {} "$corpus"/ \;
    fi
    # -timeout: one input taking over 10 s is a finding (a hang); rss cap below CI's memory.
    # shellcheck disable=SC2046
    "$bin" -max_total_time="$secs" -max_len="$(max_len "$h")" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$found/" $(dict "$h") "$corpus" >"$log" 2>&1
    rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
    nfound=$(find "$found" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | wc -l)
    if [ "$rc" -ne 0 ] && [ "$nfound" -eq 0 ]; then
        nfound=1 # the harness died without an artifact (e.g. a sanitizer in the driver)
    fi
    if [ "$nfound" -gt 0 ]; then
        status=1
        echo "fuzz_$h: findings in $found (log: $log)"
        grep -m 1 -A 12 -E '^==[0-9]+==ERROR|runtime error|property broken|deadly signal' \
            "$log" | sed 's/^/    | /'
    fi
    total_execs=$((total_execs + ${execs:-0}))
    total_found=$((total_found + nfound))
    line=$(printf '%-22s %12s %8s %9s %12s' "fuzz_$h" "${execs:-?}" "${cov:-?}" "$nfound" \
        "$regr")
    summary="$summary$line
"
done

printf '%-22s %12s %8s %9s %12s\n' harness executions cov findings regressions
printf '%s' "$summary"
printf '%-22s %12s %8s %9s\n' total "$total_execs" "" "$total_found"
exit $status
