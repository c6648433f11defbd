#!/bin/sh
# Pack benchmark: time and peak memory of packing the v1 corpus (2,001 files, ~200 MiB) into a
# bundle, against what a user would otherwise run. Rounds alternate the tools (A B C A B C ...)
# so that drifts in machine speed hit all of them alike; the figures are medians.
#
#   ota     build/bin/ota-pack-bench: ota_bundle_pack at zstd level 3, 2 threads, with a
#           throwaway key. `ota-publish pack` calls the same function, so this is its cost
#           (walk, SHA-256 of every file, signed manifest, pax tar, zstd, hash of the output).
#   tar     tar -cf - app | zstd -3 -T0
#   bsdtar  bsdtar --zstd, level 3, 2 threads (libarchive's own pipeline)
#
# Peak memory is /usr/bin/time's maximum resident set size: for the tar pipe, that of its
# largest process (zstd). CPU is user + system seconds of all processes and threads: on a
# machine shared with other work it moves less than the elapsed time does.
#
# Environment: BUILD (build directory, default ./build), BENCH_DIR (corpus, default
# /var/tmp/ota-bench; generated once if absent), BENCH_ROUNDS (default 5).
# Builds nothing; prints figures and never fails on speed.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
: "${BUILD:=$top/build}"
: "${BENCH_DIR:=/var/tmp/ota-bench}"
: "${BENCH_ROUNDS:=5}"
bin=$BUILD/bin/ota-pack-bench
tools="ota tar bsdtar"

[ -x "$bin" ] || { echo "bench-pack: $bin is missing; run make first" >&2; exit 1; }
for t in tar zstd bsdtar python3; do
    command -v $t >/dev/null 2>&1 || { echo "bench-pack: '$t' is not installed" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench-pack: /usr/bin/time is not installed" >&2; exit 1; }

if [ ! -d "$BENCH_DIR/v1/app" ]; then
    gen=/work/shared/bench/gen_corpus.py
    [ -f "$gen" ] || gen=$top/../shared/bench/gen_corpus.py
    [ -f "$gen" ] || { echo "bench-pack: cannot find gen_corpus.py" >&2; exit 1; }
    echo "generating the corpus in $BENCH_DIR (once)"
    python3 "$gen" "$BENCH_DIR" --no-big >/dev/null
fi

work=$(mktemp -d "$BENCH_DIR/pack.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cd "$BENCH_DIR/v1"

# One run of a tool writing $work/<tool>.out; with "timed", appends
# "seconds kib bytes cpu-seconds" to $work/<tool>.txt.
run() { # tool [timed]
    out=$work/$1.out
    rm -f "$out"
    case $1 in
    ota) set -- "$1" "${2:-}" "$bin" app "$out" 3 2 ;;
    tar) set -- "$1" "${2:-}" sh -c 'tar -cf - app | zstd -q -3 -T0 -f -o "$1"' sh "$out" ;;
    bsdtar)
        set -- "$1" "${2:-}" bsdtar --zstd --options zstd:compression-level=3,zstd:threads=2 \
            -cf "$out" app ;;
    esac
    tool=$1 timed=$2
    shift 2
    if ! /usr/bin/time -f '%e %M %U %S' -o "$work/time" "$@" >/dev/null; then
        echo "bench-pack: $tool failed" >&2
        exit 1
    fi
    [ -z "$timed" ] || awk -v b="$(wc -c <"$out")" '{ printf "%s %s %s %.2f\n", $1, $2, b, $3 + $4 }' \
        "$work/time" >>"$work/$tool.txt"
}

median() { # file column
    sort -n -k "$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

for t in $tools; do run "$t"; done # warm the page cache, untimed
i=0
while [ $i -lt "$BENCH_ROUNDS" ]; do
    for t in $tools; do run "$t" timed; done
    i=$((i + 1))
done

nfiles=$(find app -type f | wc -l)
mib=$(du -sm --apparent-size app | cut -f1)
echo "pack v1: $nfiles files, $mib MiB; $BENCH_ROUNDS rounds alternating, medians"
printf '%-34s %8s %10s %12s %8s\n' tool seconds "peak MiB" "out bytes" "cpu s"
best_t="" best_m="" best_c=""
for t in $tools; do
    s=$(median "$work/$t.txt" 1)
    m=$(median "$work/$t.txt" 2 | awk '{ printf "%.1f", $1 / 1024 }')
    b=$(median "$work/$t.txt" 3)
    c=$(median "$work/$t.txt" 4)
    case $t in
    ota) label="ota (ota_bundle_pack, -3, 2 thr)" ots=$s otm=$m otc=$c ;;
    tar) label="tar -cf - | zstd -3 -T0" ;;
    bsdtar) label="bsdtar --zstd (level 3, 2 thr)" ;;
    esac
    if [ "$t" != ota ]; then
        best_t=$(echo "$best_t $s" | awk '{ b = $1; for (i = 2; i <= NF; i++) if ($i < b) b = $i; print b }')
        best_m=$(echo "$best_m $m" | awk '{ b = $1; for (i = 2; i <= NF; i++) if ($i < b) b = $i; print b }')
        best_c=$(echo "$best_c $c" | awk '{ b = $1; for (i = 2; i <= NF; i++) if ($i < b) b = $i; print b }')
    fi
    printf '%-34s %8s %10s %12s %8s\n' "$label" "$s" "$m" "$b" "$c"
done
awk -v a="$ots" -v b="$best_t" -v c="$otm" -v d="$best_m" -v e="$otc" -v f="$best_c" 'BEGIN {
    printf "ota / best peer: time %.2f, peak memory %.2f, cpu %.2f\n", (b > 0 ? a / b : 0),
        (d > 0 ? c / d : 0), (f > 0 ? e / f : 0) }'
